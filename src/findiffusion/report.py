"""The realism report: stylized facts of real vs generated windows, as a table, plots, HTML and Markdown.

:func:`evaluate` scores any number of generators (the diffusion model and the
baselines of :mod:`findiffusion.baselines`) against the same real windows with
the metrics of :mod:`findiffusion.stylized_facts`; :func:`build_report` does the
whole protocol for a fitted model and a return series (split, baselines,
sampling, scoring). :meth:`RealismReport.write` writes ``report.html`` (self
contained: PNGs embedded as base64), ``report.md`` and the PNGs.
"""

from __future__ import annotations

import base64
import html
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from findiffusion import stylized_facts as sf
from findiffusion.errors import InputError
from findiffusion.files import atomic_write_text, save_figure

REAL = "real"


@dataclass(frozen=True)
class Metric:
    """One row of the table: how to compute it, what it means, and the issue's target for the model."""

    key: str
    label: str
    explanation: str
    target: str = ""
    check: Callable[[float, float], bool] | None = None  # (value, real value) -> meets the target


def _rel(tol: float) -> Callable[[float, float], bool]:
    return lambda v, r: abs(v - r) <= tol * abs(r)


METRICS: tuple[Metric, ...] = (
    Metric("disc", "discriminative score", "|accuracy - 0.5| of a GRU telling real from generated windows on held-out "
           "windows (mean of classifier seeds); 0 = indistinguishable. The real column is the score of real "
           "windows resampled, what a perfect copy of the training law scores: the floor on this series",
           "<= 0.08", lambda v, r: v <= 0.08),
    Metric("disc_acc", "classifier accuracy", "held-out accuracy of that classifier; below 0.5 it took held-out real "
           "windows for generated ones, having learned the years it was trained on (the series changed over time)"),
    Metric("w1_1", "Wasserstein-1, 1 day", "distance between the distributions of daily returns, in real daily sds",
           "<= 0.04", lambda v, r: v <= 0.04),
    Metric("w1_5", "Wasserstein-1, 5 days", "same for 5-day sums (non-overlapping, within windows)"),
    Metric("w1_20", "Wasserstein-1, 20 days", "same for 20-day sums", "<= 0.4", lambda v, r: v <= 0.4),
    Metric("kurtosis", "excess kurtosis", "fat tails of daily returns (0 for a Gaussian)", "real +-25 %", _rel(0.25)),
    Metric("skewness", "skewness", "asymmetry of daily returns (negative: larger falls than rises)"),
    Metric("hill", "Hill left-tail index", "tail index of losses from the top 5 % (smaller = heavier tail)",
           "real +-0.4", lambda v, r: abs(v - r) <= 0.4),
    Metric("var99", "VaR 99 %", "1-day loss exceeded on 1 % of days", "real +-10 %", _rel(0.10)),
    Metric("es99", "ES 99 %", "mean loss on the worst 1 % of days", "real +-10 %", _rel(0.10)),
    Metric("acf_r_rmse", "ACF of r, RMSE (lags 1-20)", "linear predictability of returns vs real (within windows)"),
    Metric("acf_abs_1", "ACF of |r| at lag 1", "volatility clustering at one day"),
    Metric("acf_abs_rmse", "ACF of |r|, RMSE (lags 1-20)", "volatility clustering curve vs real", "<= 0.035",
           lambda v, r: v <= 0.035),
    Metric("lev_rmse", "leverage RMSE (lags 1-20)", "corr(r_t, r_{t+k}^2) curve vs real (falls raise later volatility)",
           "<= 0.04", lambda v, r: v <= 0.04),
    Metric("kurt_5", "excess kurtosis, 5-day sums", "aggregational Gaussianity: tails thin out with the horizon"),
    Metric("kurt_20", "excess kurtosis, 20-day sums", "same at 20 days"),
    Metric("memorization", "memorization ratio", "median distance to the nearest training window, relative to "
           "real windows never seen in training; ~1 = novel, ~0 = copies", ">= 0.8", lambda v, r: v >= 0.8),
)


@dataclass
class RealismReport:
    """Scores and curves of several generators against the same real windows.

    Attributes:
        names: generator names in column order.
        values: ``values[name][metric key]``; ``values["real"]`` holds the real statistics.
        facts: :class:`~findiffusion.stylized_facts.Facts` per name (and ``"real"``).
        windows: the windows per name, ``Shape: (N, T)`` (kept for the plots).
        notes: caveats shown in the report (data split, sample sizes, timings).
    """

    names: list[str]
    values: dict[str, dict[str, float]]
    facts: dict[str, sf.Facts]
    windows: dict[str, np.ndarray]
    notes: list[str] = field(default_factory=list)
    title: str = "findiffusion realism report"

    # ---- tables -----------------------------------------------------------------
    def rows(self) -> list[list[str]]:
        """Table rows: metric, real, one column per generator, target (the target applies to the first)."""
        out = []
        for m in METRICS:
            if all(m.key not in self.values[n] for n in self.names):
                continue
            real = self.values[REAL].get(m.key, math.nan)
            row = [m.label, _fmt(real)]
            for i, n in enumerate(self.names):
                v = self.values[n].get(m.key, math.nan)
                mark = ""
                if i == 0 and m.check is not None and np.isfinite(v):
                    mark = " ok" if m.check(v, real) else " MISS"
                row.append(_fmt(v) + mark)
            row.append(m.target or "")
            out.append(row)
        return out

    def header(self) -> list[str]:
        return ["metric", REAL, *self.names, f"target ({self.names[0]})" if self.names else "target"]

    def summary(self) -> str:
        """The table as fixed-width text."""
        rows = [self.header(), *self.rows()]
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(lines + [f"note: {n}" for n in self.notes])

    def markdown_table(self) -> str:
        rows = [self.header(), *self.rows()]
        out = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
        out += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows[1:]]
        return "\n".join(out)

    def explanations(self) -> list[tuple[str, str]]:
        return [(m.label, m.explanation) for m in METRICS if any(m.key in self.values[n] for n in self.names)]

    # ---- plots --------------------------------------------------------------------
    def plot(self, directory: str | Path) -> list[Path]:
        """Write the PNGs to ``directory``; returns their paths."""
        return plot_all(self, Path(directory))

    # ---- files --------------------------------------------------------------------
    def write(self, directory: str | Path) -> dict[str, Path]:
        """Write ``report.html`` (images embedded), ``report.md`` and the PNGs into ``directory``."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        pngs = self.plot(d)
        md = [f"# {self.title}", "", self.markdown_table(), "", "## What the metrics mean", ""]
        md += [f"- **{label}**: {text}" for label, text in self.explanations()]
        md += ["", "## Notes", ""] + [f"- {n}" for n in self.notes] + ["", "## Plots", ""]
        md += [f"![{p.stem}]({p.name})" for p in pngs]
        atomic_write_text(d / "report.md", "\n".join(md) + "\n")
        atomic_write_text(d / "report.html", self._html(pngs))
        return {"html": d / "report.html", "md": d / "report.md", **{p.stem: p for p in pngs}}

    def _html(self, pngs: Sequence[Path]) -> str:
        e = html.escape
        rows = [self.header(), *self.rows()]
        head = "".join(f"<th>{e(c)}</th>" for c in rows[0])
        body = ""
        for r in rows[1:]:
            cells = "".join(f"<td class='{'miss' if c.endswith('MISS') else ''}'>{e(c)}</td>" for c in r)
            body += f"<tr>{cells}</tr>\n"
        expl = "".join(f"<li><b>{e(a)}</b>: {e(b)}</li>" for a, b in self.explanations())
        notes = "".join(f"<li>{e(n)}</li>" for n in self.notes)
        imgs = ""
        for p in pngs:
            b64 = base64.b64encode(Path(p).read_bytes()).decode("ascii")
            imgs += f"<h3>{e(p.stem)}</h3><img alt='{e(p.stem)}' src='data:image/png;base64,{b64}'>\n"
        style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
                 "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
                 "td:first-child{text-align:left}.miss{color:#b00}img{max-width:100%}")
        return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{e(self.title)}</title>"
                f"<style>{style}</style></head><body><h1>{e(self.title)}</h1>"
                f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
                f"<h2>What the metrics mean</h2><ul>{expl}</ul><h2>Notes</h2><ul>{notes}</ul>"
                f"<h2>Plots</h2>{imgs}</body></html>\n")


def _fmt(v: float) -> str:
    if v is None or not np.isfinite(v):
        return "-"
    a = abs(v)
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    if a >= 0.1:
        return f"{v:.3f}"
    return f"{v:.4f}"


def evaluate(real: np.ndarray, generated: dict[str, np.ndarray], heldout: np.ndarray | None = None,
             disc_seeds: Sequence[int] = (1, 2, 3), discriminator: bool = True,
             memorization: bool = True, notes: Sequence[str] = ()) -> RealismReport:
    """Score generated windows against real ones.

    Args:
        real: all overlapping windows of the training returns, in time order. Shape: (M, T).
        generated: name -> generated windows. Shape: (N, T) each.
        heldout: real windows the model never saw (for memorization). Shape: (H, T).
        disc_seeds: classifier seeds of the discriminative score (empty: skip). The real column gets the
            score of resampled real windows (:func:`~findiffusion.stylized_facts.discriminative_floor`).
        discriminator: compute the discriminative score (the slow part: seconds per seed).
        memorization: compute the memorization ratio (needs ``heldout``).
        notes: caveats for the report.
    """
    r = sf.as_windows(real, "real windows")
    if r.shape[1] <= max(sf.LAGS) or r.shape[1] < max(sf.HORIZONS):
        raise InputError(f"windows must be longer than {max(sf.LAGS)} days for the ACF lags, got {r.shape[1]}")
    fr = sf.facts(r)
    scale = fr.sd
    values: dict[str, dict[str, float]] = {REAL: _single(fr)}
    facts = {REAL: fr}
    windows = {REAL: r}
    notes = list(notes)
    for name, g in generated.items():
        s = sf.as_windows(g, name)
        if s.shape[1] != r.shape[1]:
            raise InputError(f"{name}: windows of {s.shape[1]} days, but the real ones have {r.shape[1]}")
        f = sf.facts(s)
        v = _single(f)
        for h in sf.HORIZONS:
            v[f"w1_{h}"] = sf.wasserstein1(r, s, h, scale=scale)
        v["acf_r_rmse"] = sf.rmse(f.acf_r, fr.acf_r)
        v["acf_abs_rmse"] = sf.rmse(f.acf_abs, fr.acf_abs)
        v["lev_rmse"] = sf.rmse(f.leverage, fr.leverage)
        if discriminator and disc_seeds:
            d = sf.discriminative_score(r, s, seeds=tuple(disc_seeds))
            v["disc"], v["disc_acc"] = d.mean, d.accuracy
        if memorization and heldout is not None and len(heldout) > 0:
            v["memorization"] = sf.memorization_ratio(s, r, heldout)
        values[name], facts[name], windows[name] = v, f, s
    if discriminator and disc_seeds and generated:
        d = sf.discriminative_floor(r, n=max(len(windows[k]) for k in generated), seeds=tuple(disc_seeds))
        values[REAL]["disc"], values[REAL]["disc_acc"] = d.mean, d.accuracy  # the floor of (7) on this series
    if memorization and (heldout is None or len(heldout) == 0):
        notes.append("memorization not computed: no held-out real windows (data after the training period)")
    return RealismReport(list(generated), values, facts, windows, notes)


def _single(f: sf.Facts) -> dict[str, float]:
    out = {"kurtosis": f.kurtosis, "skewness": f.skewness, "hill": f.hill, "var99": f.var99, "es99": f.es99,
           "acf_abs_1": float(f.acf_abs[0])}
    hs = sf.KURT_HORIZONS[: len(f.kurt_horizon)]
    for h, k in zip(hs, f.kurt_horizon, strict=True):
        if h in (5, 20):
            out[f"kurt_{h}"] = float(k)
    return out


def split_returns(returns: Any, model: Any | None = None, train_end: str | None = None,
                  train_fraction: float | None = None) -> tuple[np.ndarray, np.ndarray, str]:
    """Split a return series into (training part, later held-out part, description).

    Priority: ``train_end`` (a date), else ``train_fraction`` (first share of the
    days), else the model's own training range (``model.data_info``), else all
    of it is the training part (no held-out data).
    """
    import pandas as pd

    s = returns if isinstance(returns, pd.Series) else pd.Series(np.asarray(returns, dtype=float))
    dated = isinstance(s.index, pd.DatetimeIndex)
    info = getattr(model, "data_info", None) if model is not None else None
    if train_end is not None:
        if not dated:
            raise InputError("--train-end needs a dated series")
        try:
            end = pd.Timestamp(train_end)
        except ValueError:
            raise InputError(f"--train-end {train_end!r} is not a date; use YYYY-MM-DD") from None
        train, rest = s[s.index <= end], s[s.index > end]
        desc = f"training part: up to {end.date()} (--train-end)"
    elif train_fraction is not None:
        if not 0 < train_fraction < 1:
            raise InputError(f"train fraction must be between 0 and 1, got {train_fraction}")
        n = int(round(train_fraction * len(s)))
        train, rest = s.iloc[:n], s.iloc[n:]
        desc = f"training part: first {train_fraction:.0%} of the days"
    elif dated and info is not None and info.end and info.start:
        lo, hi = pd.Timestamp(info.start), pd.Timestamp(info.end)
        train, rest = s[(s.index >= lo) & (s.index <= hi)], s[s.index > hi]
        desc = f"training part: the model's training range {info.start} .. {info.end}"
        if len(train) == 0:
            train, rest = s, s.iloc[:0]
            desc = "the data does not overlap the model's training range: all of it is used as the real reference"
    else:
        train, rest = s, s.iloc[:0]
        desc = "all of the data is the real reference (no training range known); no held-out part"
    if dated and len(train):
        desc += f"; {len(train)} training days {train.index[0].date()} .. {train.index[-1].date()}, {len(rest)} later days"
    return train.to_numpy(dtype=float), rest.to_numpy(dtype=float), desc


def build_report(model: Any, returns: Any, *, n: int = 2000, length: int = 64, seed: int = 0,
                 sampler: str | None = None, steps: int | None = None, train_end: str | None = None,
                 train_fraction: float | None = None, baselines: bool = True, gjr: bool = False,
                 disc_seeds: Sequence[int] = (1, 2, 3), model_name: str = "findiffusion",
                 progress: bool = False) -> RealismReport:
    """The whole protocol for one model: split, fit baselines on the training part, sample, score.

    Args:
        model: a fitted :class:`~findiffusion.model.DiffusionModel`.
        returns: daily log returns (a dated Series for the model's training range to apply).
        n: generated windows per generator.
        length: days per window (> 20).
        seed: seed of the model's and baselines' samples.
        sampler, steps: the model's sampler.
        train_end, train_fraction: how to split (see :func:`split_returns`).
        baselines: also score GARCH(1,1)-t and the block bootstrap (``gjr``: GJR-skew-t too).
        disc_seeds: classifier seeds of the discriminative score (empty: skip it).
        model_name: the model's column name.
        progress: progress bar while sampling.
    """
    from findiffusion.baselines import fit_baselines
    from findiffusion.data import make_windows

    if n < 20:
        raise InputError(f"n must be at least 20 windows for a report, got {n}")
    if length <= max(sf.LAGS):
        raise InputError(f"length must be more than {max(sf.LAGS)} days (ACF lags 1-20), got {length}")
    train, rest, desc = split_returns(returns, model, train_end, train_fraction)
    if len(train) < 2 * length + 100:
        raise InputError(f"the training part has {len(train)} days; need at least {2 * length + 100} "
                         f"for {length}-day windows (use a longer series or a smaller --length)")
    real = make_windows(train, length)  # (M, T)
    heldout = make_windows(rest, length) if len(rest) >= length + 20 else None
    t0 = time.time()
    sampler, steps = model.resolve_sampler(sampler, steps)
    gen = {model_name: model.sample(n, length, sampler=sampler, steps=steps, seed=seed, progress=progress)}
    t_model = time.time() - t0
    if baselines:
        for b in fit_baselines(train, gjr=gjr):
            gen[b.name] = b.sample(n, length, seed=seed)
    notes = [desc, f"{len(real)} real {length}-day windows (all overlapping windows of the training part) vs "
             f"{n} generated windows per generator, seed {seed}",
             f"{model_name}: sampler {sampler}, steps {steps or 'default'}, sampling took {t_model:.1f} s",
             "ACF, leverage and aggregated returns are computed within windows and pooled over windows, "
             "the same way for real and generated data"]
    if heldout is not None:
        notes.append(f"memorization: {len(heldout)} held-out real windows after the training part")
    return evaluate(real, gen, heldout, disc_seeds=disc_seeds, discriminator=bool(disc_seeds), notes=notes)


def save_png(fig: Any, path: Path) -> Path:
    """Save a matplotlib figure atomically and close it."""
    save_figure(fig, path, bbox_inches="tight")
    return path


# ---------------------------------------------------------------------------
# plots (matplotlib, Agg backend)
# ---------------------------------------------------------------------------
_COLORS = {REAL: "black"}
_PALETTE = ("tab:red", "tab:blue", "tab:green", "tab:purple", "tab:orange", "tab:brown")


def _color(rep: RealismReport, name: str) -> str:
    return _COLORS.get(name) or _PALETTE[rep.names.index(name) % len(_PALETTE)]


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_all(rep: RealismReport, d: Path) -> list[Path]:
    """All report figures; returns their paths."""
    d.mkdir(parents=True, exist_ok=True)
    return [plot_density(rep, d / "density.png"), plot_acf(rep, d / "acf.png"),
            plot_leverage(rep, d / "leverage.png"), plot_kurtosis(rep, d / "kurtosis_horizon.png"),
            plot_paths(rep, d / "paths.png"), plot_fan(rep, d / "fan.png")]


def plot_density(rep: RealismReport, path: Path) -> Path:
    """Density of standardized daily returns on a log scale, and a QQ plot against the real quantiles."""
    plt = _plt()
    sd = rep.facts[REAL].sd
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4.5))
    bins = np.linspace(-10, 10, 81)  # 0.25 sd wide
    centers = 0.5 * (bins[1:] + bins[:-1])
    for name in [REAL, *rep.names]:
        v = rep.windows[name].ravel() / sd
        h, _ = np.histogram(v, bins=bins)
        dens = np.where(h > 0, h / (len(v) * np.diff(bins)), np.nan)  # empty bins are left out, not drawn at 0
        a1.plot(centers, dens, marker="o", ms=3 if name == REAL else 2, color=_color(rep, name),
                lw=2.0 if name == REAL else 0.9, label=name, zorder=5 if name == REAL else 2)
    x = np.linspace(-6, 6, 200)
    a1.plot(x, np.exp(-x**2 / 2) / np.sqrt(2 * np.pi), color="gray", ls=":", label="Gaussian")
    a1.set_yscale("log")
    a1.set_ylim(1e-5, 1)
    a1.set_xlabel("daily log return / real sd")
    a1.set_ylabel("density (log scale)")
    a1.set_title("return density")
    a1.legend(fontsize=8)
    q = np.concatenate([np.linspace(0.0005, 0.01, 20), np.linspace(0.01, 0.99, 99), np.linspace(0.99, 0.9995, 20)])
    qr = np.quantile(rep.windows[REAL].ravel(), q) / sd
    lim = [qr.min() * 1.1, qr.max() * 1.1]
    for name in rep.names:
        qs = np.quantile(rep.windows[name].ravel(), q) / sd
        a2.plot(qr, qs, ".", ms=4, color=_color(rep, name), label=name)
        lim = [min(lim[0], qs.min()), max(lim[1], qs.max())]
    a2.plot(lim, lim, color="black", lw=1)
    a2.set_xlabel("real quantile (sd)")
    a2.set_ylabel("generated quantile (sd)")
    a2.set_title("QQ plot vs real, quantiles 0.05 % .. 99.95 %")
    a2.legend(fontsize=8)
    return save_png(fig, path)


def _curve_panel(ax: Any, rep: RealismReport, attr: str, title: str) -> None:
    lags = np.array(sf.LAGS)
    for name in [REAL, *rep.names]:
        y = getattr(rep.facts[name], attr)
        ax.plot(lags, y, marker="o" if name == REAL else None, ms=3, color=_color(rep, name),
                lw=2.2 if name == REAL else 1.2, label=name)
    ax.axhline(0, color="gray", lw=0.8)
    ax.set_xlabel("lag (days)")
    ax.set_title(title)
    ax.legend(fontsize=8)


def plot_acf(rep: RealismReport, path: Path) -> Path:
    """ACF of r and of |r| for lags 1-20, real vs generators."""
    plt = _plt()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4.2))
    _curve_panel(a1, rep, "acf_r", "ACF of returns r")
    _curve_panel(a2, rep, "acf_abs", "ACF of |r| (volatility clustering)")
    return save_png(fig, path)


def plot_leverage(rep: RealismReport, path: Path) -> Path:
    """Leverage curve corr(r_t, r_{t+k}^2)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    _curve_panel(ax, rep, "leverage", "leverage effect corr(r_t, r_{t+k}^2)")
    return save_png(fig, path)


def plot_kurtosis(rep: RealismReport, path: Path) -> Path:
    """Aggregational Gaussianity: excess kurtosis of h-day sums vs h."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for name in [REAL, *rep.names]:
        k = rep.facts[name].kurt_horizon
        hs = sf.KURT_HORIZONS[: len(k)]
        ax.plot(hs, np.maximum(k, 1e-2), marker="o", color=_color(rep, name), lw=2.2 if name == REAL else 1.2,
                label=name)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(list(sf.KURT_HORIZONS), [str(h) for h in sf.KURT_HORIZONS])
    ax.set_xlabel("horizon h (days)")
    ax.set_ylabel("excess kurtosis of h-day sums")
    ax.set_title("aggregational Gaussianity")
    ax.legend(fontsize=8)
    return save_png(fig, path)


def plot_paths(rep: RealismReport, path: Path, k: int = 4, seed: int = 0) -> Path:
    """A handful of windows per source: daily returns (top row) and prices from 100 (bottom row)."""
    plt = _plt()
    names = [REAL, *rep.names]
    fig, axes = plt.subplots(2, len(names), figsize=(3.3 * len(names), 5.5), sharey="row", squeeze=False)
    rng = np.random.default_rng(seed)
    for j, name in enumerate(names):
        w = rep.windows[name]
        pick = w[rng.choice(len(w), size=min(k, len(w)), replace=False)]  # (k, T)
        t = np.arange(1, w.shape[1] + 1)
        for i, row in enumerate(pick):
            axes[0, j].plot(t, row, lw=0.8, color=_PALETTE[i % len(_PALETTE)])
            axes[1, j].plot(np.arange(w.shape[1] + 1), 100 * np.exp(np.concatenate([[0.0], np.cumsum(row)])),
                            lw=1, color=_PALETTE[i % len(_PALETTE)])
        axes[0, j].set_title(name, fontsize=9)
        axes[1, j].set_xlabel("day")
    axes[0, 0].set_ylabel("log return")
    axes[1, 0].set_ylabel("price (start 100)")
    return save_png(fig, path)


def plot_fan(rep: RealismReport, path: Path) -> Path:
    """Fan chart of cumulative log returns: 5-95 % and 25-75 % bands and median per generator; real quantiles dashed."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(rep.names), figsize=(4.2 * len(rep.names), 4), sharey=True, squeeze=False)
    qs = (0.05, 0.25, 0.5, 0.75, 0.95)

    def bands(w: np.ndarray) -> np.ndarray:  # (5, T + 1)
        c = np.concatenate([np.zeros((len(w), 1)), np.cumsum(w, axis=1)], axis=1)
        return np.quantile(c, qs, axis=0)

    br = bands(rep.windows[REAL])
    t = np.arange(br.shape[1])
    for ax, name in zip(axes[0], rep.names, strict=True):
        b = bands(rep.windows[name])
        col = _color(rep, name)
        ax.fill_between(t, b[0], b[4], color=col, alpha=0.18, label="5-95 %")
        ax.fill_between(t, b[1], b[3], color=col, alpha=0.35, label="25-75 %")
        ax.plot(t, b[2], color=col, lw=1.5, label="median")
        for i in range(5):
            ax.plot(t, br[i], color="black", ls="--", lw=0.9, label="real quantiles" if i == 0 else None)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("day")
    axes[0, 0].set_ylabel("cumulative log return")
    axes[0, 0].legend(fontsize=7, loc="upper left")
    return save_png(fig, path)
