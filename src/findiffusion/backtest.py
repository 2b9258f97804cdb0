"""Rolling one-day VaR/ES backtests: forecasters, evaluation and results.

Rolling one-day forecasts for a backtest: historical simulation (the last 250
returns), GARCH(1,1) with Student-t innovations (``arch``; refitted on all data
before each day, every ``refit_every`` days), and the diffusion model (paths
generated conditionally on the days before each forecast day, all days in one
batched call per chunk). The backtest works on daily **log returns** of a unit
long position; hits do not depend on log vs simple returns (quantiles commute
with the monotone map), ES does slightly.

The risk measures and test statistics it uses, with their equations, are in
:mod:`findiffusion.risk`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from findiffusion.errors import InputError
from findiffusion.risk import (
    AS_Z2_CRITICAL_975,
    HypothesisTest,
    _check_level,
    _pyplot,
    _save_png,
    christoffersen_conditional_coverage,
    christoffersen_independence,
    es_backtest,
    expected_shortfall,
    kupiec_pof,
    student_t_var_es,
    value_at_risk,
)


# ---------------------------------------------------------------------------
# rolling one-day forecasts
# ---------------------------------------------------------------------------
@dataclass
class VaRForecast:
    """One-day VaR/ES forecasts of one method over the out-of-sample days.

    Attributes:
        method: a label.
        levels: confidence levels.
        var, es: positive losses in log-return units. Shape: (K levels, T days).
        draw: ``draw(rng, n)``: n draws from each day's forecast distribution. Shape: (n, T).
        tie_weight: per level, theta of eq. (9) when ``draw`` is an N-sample empirical law
            whose VaR/ES are eq. (3); None for continuous laws.
    """

    method: str
    levels: tuple[float, ...]
    var: np.ndarray
    es: np.ndarray
    draw: Callable[[np.random.Generator, int], np.ndarray] = field(repr=False)
    tie_weight: tuple[float, ...] | None = None


def _sample_draw(samples: np.ndarray) -> Callable[[np.random.Generator, int], np.ndarray]:
    """Draws from per-day empirical distributions. samples Shape: (T, N)."""

    def draw(rng: np.random.Generator, n: int) -> np.ndarray:
        idx = rng.integers(0, samples.shape[1], size=(n, samples.shape[0]))  # (n, T)
        return samples[np.arange(samples.shape[0])[None, :], idx]

    return draw


def forecast_from_samples(samples: np.ndarray, levels: Sequence[float], method: str,
                          estimator: str = "empirical") -> VaRForecast:
    r"""VaR/ES forecasts from per-day samples of the next return. Shape: samples (T, N).

    ``estimator="empirical"``: eq. (3) on each day's N samples. ``"pooled"``: each day's
    samples are standardised by their own median m_t and robust scale s_t = IQR_t / 1.349,
    eq. (3) is applied to all T N standardised samples at once, and VaR_t = -m_t + s_t VaR_z
    (same for ES): a location–scale assumption that trades bias for far less Monte Carlo
    noise when N is small (the median and IQR are stable where a 1 % quantile of a few
    hundred samples is not). Both use the model's samples only, never realised returns.
    The ES test then draws from the standardised pool rescaled per day, the law those
    VaR/ES belong to.
    """
    samples = np.asarray(samples, dtype=float)
    N = samples.shape[1]
    if estimator == "empirical":
        var = np.stack([value_at_risk(samples, lv) for lv in levels])  # (K, T)
        es = np.stack([expected_shortfall(samples, lv) for lv in levels])
        return VaRForecast(method, tuple(levels), var, es, _sample_draw(samples), _theta(N, levels))
    if estimator != "pooled":
        raise InputError(f"unknown estimator {estimator!r}; use 'empirical' or 'pooled'")
    q75, m, q25 = np.percentile(samples, [75, 50, 25], axis=1)  # (T,) each
    s = np.maximum((q75 - q25) / 1.349, 1e-12)
    z = ((samples - m[:, None]) / s[:, None]).ravel()  # (T N,)
    var = np.stack([-m + s * value_at_risk(z, lv) for lv in levels])
    es = np.stack([-m + s * expected_shortfall(z, lv) for lv in levels])

    def draw(rng: np.random.Generator, n: int) -> np.ndarray:
        return m + s * z[rng.integers(0, z.size, size=(n, len(m)))]  # (n, T)

    return VaRForecast(method, tuple(levels), var, es, draw, _theta(z.size, levels))


def _theta(n: int, levels: Sequence[float]) -> tuple[float, ...]:
    """Tie weight of eq. (9) for an n-sample empirical law."""
    out = []
    for lv in levels:
        npk = n * (1.0 - lv)
        npk = float(round(npk)) if abs(npk - round(npk)) < 1e-9 else npk
        out.append(npk - max(math.ceil(npk), 1) + 1.0)
    return tuple(out)


def historical_simulation_forecast(returns: np.ndarray, start: int, levels: Sequence[float],
                                   window: int = 250) -> VaRForecast:
    """Historical simulation: each day's forecast is the empirical law of the previous ``window`` returns."""
    r = np.asarray(returns, dtype=float)
    if start < window:
        raise InputError(f"historical simulation needs {window} days before the first forecast; got {start}")
    win = np.lib.stride_tricks.sliding_window_view(r, window)[start - window:len(r) - window]  # (T, window)
    return forecast_from_samples(win, levels, f"HS-{window}")


def garch_t_forecast(returns: np.ndarray, start: int, levels: Sequence[float], refit_every: int = 1,
                     progress: bool = False) -> VaRForecast:
    r"""GARCH(1,1)-t one-day forecasts with ``arch``.

    Model (returns scaled by 100): r_t = \mu + \sigma_t \epsilon_t, \sigma_t^2 = \omega +
    \alpha (r_{t-1}-\mu)^2 + \beta \sigma_{t-1}^2, \epsilon_t unit-variance t_\nu. Parameters are
    estimated by maximum likelihood on all returns before the forecast day, refitted every
    ``refit_every`` days (filtering with fixed parameters in between); VaR/ES by eq. (5).
    """
    from arch import arch_model

    from findiffusion.progress import progress_bar

    r = np.asarray(returns, dtype=float)
    if start < 250:
        raise InputError(f"GARCH-t needs at least 250 days before the first forecast; got {start}")
    y = 100.0 * r
    am = arch_model(y, mean="Constant", vol="GARCH", p=1, q=1, dist="t", rescale=False)
    T = len(r) - start
    mu, sig, nu = np.empty(T), np.empty(T), np.empty(T)
    bar = progress_bar(progress, T, "GARCH-t")
    sv = None
    for a in range(0, T, refit_every):
        b = min(a + refit_every, T)
        res = am.fit(last_obs=start + a, disp="off", starting_values=sv, options={"maxiter": 200})
        sv = res.params.to_numpy()
        f = res.forecast(horizon=1, start=start + a - 1, reindex=False)
        sig[a:b] = np.sqrt(f.variance.to_numpy()[: b - a, 0]) / 100.0
        mu[a:b] = res.params["mu"] / 100.0
        nu[a:b] = res.params["nu"]
        if bar:
            bar[0].update(bar[1], advance=b - a)
    if bar:
        bar[0].stop()
    var = np.stack([student_t_var_es(lv, nu, mu, sig, standardized=True)[0] for lv in levels])
    es = np.stack([student_t_var_es(lv, nu, mu, sig, standardized=True)[1] for lv in levels])

    def draw(rng: np.random.Generator, n: int) -> np.ndarray:
        e = rng.standard_t(nu, size=(n, T)) * np.sqrt((nu - 2.0) / nu)  # unit variance, (n, T)
        return mu + sig * e

    return VaRForecast("GARCH-t", tuple(levels), var, es, draw)


def diffusion_samples(model: Any, returns: np.ndarray, start: int, n_paths: int = 500, sampler: str | None = None,
                      steps: int | None = None, seed: int = 0, chunk_days: int = 50,
                      progress: bool = False) -> np.ndarray:
    """Next-day returns from the model for every day from ``start`` on, each conditioned on the
    ``model.context_days`` returns before it (fewer when the history is shorter; 2-D ``context``:
    many days per call). Shape: (T, N)."""
    import torch

    from findiffusion.progress import progress_bar

    r = np.asarray(returns, dtype=float)
    C = int(model.config.stitch_context)
    if start < C:
        raise InputError(f"the model needs {C} days of history before the first forecast; got {start}")
    H = min(model.context_days, start)
    ctx = np.lib.stride_tricks.sliding_window_view(r, H)[start - H:len(r) - H]  # (T, H): r[t-H:t]
    gen = torch.Generator().manual_seed(seed)
    out = []
    bar = progress_bar(progress, len(ctx), "diffusion forecasts")
    for a in range(0, len(ctx), chunk_days):
        c = ctx[a:a + chunk_days]
        out.append(model.sample(n_paths, 1, sampler=sampler, steps=steps, generator=gen, context=c)[:, :, 0])
        if bar:
            bar[0].update(bar[1], advance=len(c))
    if bar:
        bar[0].stop()
    return np.concatenate(out)  # (T, N)


# ---------------------------------------------------------------------------
# backtest
# ---------------------------------------------------------------------------
@dataclass
class BacktestResult:
    """Rolling VaR/ES forecasts, hits and tests of several methods.

    Attributes:
        dates: out-of-sample dates. Shape: (T,).
        returns: realised log returns. Shape: (T,).
        forecasts: one :class:`VaRForecast` per method.
        tests: ``tests[method][level]`` -> list of :class:`HypothesisTest`.
        info: free-form description (model, settings, timings).
    """

    dates: pd.DatetimeIndex
    returns: np.ndarray
    forecasts: list[VaRForecast]
    tests: dict[str, dict[float, list[HypothesisTest]]]
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def levels(self) -> tuple[float, ...]:
        return self.forecasts[0].levels

    def hits(self, method: str, level: float) -> np.ndarray:
        """Exceedances I_t. Shape: (T,)."""
        f = next(f for f in self.forecasts if f.method == method)
        return self.returns < -f.var[f.levels.index(level)]

    def table(self) -> pd.DataFrame:
        rows = []
        for f in self.forecasts:
            for lv in f.levels:
                h = self.hits(f.method, lv)
                t = {x.name: x for x in self.tests[f.method][lv]}
                rows.append({
                    "level": lv, "method": f.method, "days": len(h), "hits": int(h.sum()),
                    "rate_%": 100 * h.mean(), "expected_%": 100 * (1 - lv),
                    "kupiec_p": t["Kupiec POF"].p_value, "ind_p": t["Christoffersen ind"].p_value,
                    "cc_p": t["Christoffersen cc"].p_value, "Z2": t["Acerbi-Szekely Z2"].statistic,
                    "Z2_p": t["Acerbi-Szekely Z2"].p_value,
                    "mean_VaR_%": 100 * float(f.var[f.levels.index(lv)].mean()),
                })
        return pd.DataFrame(rows)

    def summary(self) -> str:
        d = self.dates
        head = f"one-day VaR/ES backtest, {len(d)} days {d[0].date()} .. {d[-1].date()}"
        tab = self.table()
        lines = [head, f"{'level':>6} {'method':<16} {'hits':>5} {'rate%':>6} {'exp%':>5} {'Kupiec p':>9} "
                 f"{'ind p':>7} {'cc p':>7} {'Z2':>7} {'Z2 p':>7} {'VaR%':>6}"]
        for _, r in tab.iterrows():
            lines.append(f"{r['level']:>6.3f} {r['method']:<16} {r['hits']:>5d} {r['rate_%']:>6.2f} "
                         f"{r['expected_%']:>5.2f} {r['kupiec_p']:>9.3f} {r['ind_p']:>7.3f} {r['cc_p']:>7.3f} "
                         f"{r['Z2']:>7.3f} {r['Z2_p']:>7.3f} {r['mean_VaR_%']:>6.2f}")
        lines.append("p-values < 0.05 reject at 5 %; Z2 p simulated from each method's forecast distributions"
                     f" (AS 2014 fixed 5 % critical value at 97.5 %: {AS_Z2_CRITICAL_975})")
        return "\n".join(lines)

    def to_frame(self) -> pd.DataFrame:
        """Date, return, and every method's VaR/ES and hits per level."""
        cols: dict[str, Any] = {"return": self.returns}
        for f in self.forecasts:
            for k, lv in enumerate(f.levels):
                tag = f"{f.method}_{lv:g}"
                cols[f"{tag}_VaR"], cols[f"{tag}_ES"] = f.var[k], f.es[k]
                cols[f"{tag}_hit"] = (self.returns < -f.var[k]).astype(int)
        return pd.DataFrame(cols, index=pd.Index(self.dates, name="date"))

    def plot(self, path: str | Path, level: float | None = None) -> Path:
        """Returns, each method's -VaR line, and exceedances marked, as a PNG."""
        plt = _pyplot()
        lv = self.levels[0] if level is None else level
        fig, ax = plt.subplots(figsize=(12, 5))
        ax.plot(self.dates, 100 * self.returns, color="0.6", lw=0.6, label="daily log return")
        markers = ["v", "o", "s", "^", "D"]
        for i, f in enumerate(self.forecasts):
            v = 100 * f.var[f.levels.index(lv)]
            (ln,) = ax.plot(self.dates, -v, lw=1.0, label=f"-VaR {f.method}")
            h = self.returns < -f.var[f.levels.index(lv)]
            ax.scatter(self.dates[h], 100 * self.returns[h], marker=markers[i % 5], s=28, color=ln.get_color(),
                       edgecolor="k", lw=0.4, zorder=3, label=f"exceedances {f.method} ({int(h.sum())})")
        med = max(float(np.median(f.var[f.levels.index(lv)])) for f in self.forecasts)
        lo = 1.15 * min(float(self.returns.min()), -2.5 * med)  # wild forecasts go off-scale, returns never
        ax.set_ylim(100 * lo, 100 * 1.15 * float(self.returns.max()))
        ax.set_ylabel("% log return")
        ax.set_title(f"one-day VaR {100 * lv:g} %: {len(self.dates)} days, expected {len(self.dates) * (1 - lv):.1f}"
                     " exceedances")
        ax.legend(fontsize=8, ncol=2, loc="lower left")
        return _save_png(fig, path)

    def save(self, out_dir: str | Path) -> list[Path]:
        """Write backtest.csv, backtest.json and one plot per level to ``out_dir`` (atomic writes)."""
        from findiffusion.files import atomic_write, atomic_write_text

        d = Path(out_dir)
        frame = self.to_frame()
        files = [atomic_write(d / "backtest.csv", lambda tmp: frame.to_csv(tmp, float_format="%.8g"))]
        js = {"info": self.info, "table": self.table().to_dict(orient="records"),
              "tests": {m: {str(lv): [t.__dict__ for t in ts] for lv, ts in v.items()} for m, v in self.tests.items()}}
        files.append(atomic_write_text(d / "backtest.json", json.dumps(js, indent=2, default=float)))
        files += [self.plot(d / f"backtest_{100 * lv:g}.png", lv) for lv in self.levels]
        return files


def evaluate(dates: pd.DatetimeIndex, returns: np.ndarray, forecasts: list[VaRForecast], n_sims: int = 2000,
             seed: int = 0, info: dict[str, Any] | None = None) -> BacktestResult:
    """Hits and all tests (eq. 6–9) of each forecast against realised returns. Shape: returns (T,)."""
    x = np.asarray(returns, dtype=float)
    tests: dict[str, dict[float, list[HypothesisTest]]] = {}
    for f in forecasts:
        if f.var.shape[1] != len(x):
            raise InputError(f"forecast {f.method} covers {f.var.shape[1]} days, returns {len(x)}")
        tests[f.method] = {}
        for k, lv in enumerate(f.levels):
            h = x < -f.var[k]
            tests[f.method][lv] = [kupiec_pof(h, lv), christoffersen_independence(h),
                                   christoffersen_conditional_coverage(h, lv),
                                   es_backtest(x, f.var[k], f.es[k], lv, f.draw, n_sims, seed,
                                               f.tie_weight[k] if f.tie_weight else 1.0)]
    return BacktestResult(pd.DatetimeIndex(dates), x, forecasts, tests, info or {})


def split_index(returns: pd.Series, start: str, end: str | None = None) -> tuple[pd.Series, int]:
    """Cut ``returns`` at ``end`` and find the position of the first day on or after ``start``."""
    if not isinstance(returns.index, pd.DatetimeIndex):
        raise InputError("a backtest needs dated returns; name the date column with --date-column")
    try:
        t0 = pd.Timestamp(start)
        t1 = pd.Timestamp(end) if end else None
    except ValueError:
        raise InputError(f"could not parse --start {start!r} / --end {end!r} as dates (use YYYY-MM-DD)") from None
    r = returns.loc[:t1] if t1 is not None else returns
    i = int(r.index.searchsorted(t0))
    if i >= len(r):
        raise InputError(f"no returns on or after --start {start} (the data ends {r.index[-1].date()})")
    if len(r) - i < 2:
        raise InputError("the out-of-sample period needs at least two days; move --start earlier or --end later")
    return r, i


def backtest(returns: pd.Series, start: str, end: str | None = None, levels: Sequence[float] = (0.99, 0.975),
             model: Any = None, n_paths: int = 500, sampler: str | None = None, steps: int | None = None,
             estimator: str = "pooled", hs_window: int = 250, garch_refit: int = 1, n_sims: int = 2000,
             seed: int = 0, progress: bool = False) -> BacktestResult:
    """Rolling one-day VaR/ES from the diffusion model (when given), HS and GARCH-t, and their tests.

    Args:
        returns: dated daily log returns including the history before ``start``.
        start, end: the out-of-sample period (inclusive dates).
        model: a fitted model trained on data before ``start`` (checked when it records its data).
        n_paths, sampler, steps: diffusion samples per forecast day and sampler settings.
        estimator: ``"pooled"`` (default) or ``"empirical"`` (see :func:`forecast_from_samples`) for the
            diffusion forecasts: bench/backtest.py on the default model, 2015-2018, passes Kupiec,
            Christoffersen and the ES test at 99 % and 97.5 % with pooled; with empirical the
            exceedances cluster (docs/risk.md).
        hs_window: days of historical simulation.
        garch_refit: refit the GARCH every this many days.
        n_sims: simulations for the ES test p-value.
    """
    import time

    levels = tuple(_check_level(lv) for lv in levels)
    r, i0 = split_index(returns, start, end)
    if model is not None:
        check_out_of_sample(model, r.index[i0])
    x = r.to_numpy(dtype=float)
    info: dict[str, Any] = {"start": str(r.index[i0].date()), "end": str(r.index[-1].date()),
                            "levels": list(levels), "hs_window": hs_window, "garch_refit": garch_refit}
    fcs = []
    if model is not None:
        t = time.time()
        samples = diffusion_samples(model, x, i0, n_paths, sampler, steps, seed, progress=progress)
        fcs.append(forecast_from_samples(samples, levels, "diffusion", estimator))
        info["diffusion"] = {"n_paths": n_paths, "sampler": sampler or "model default", "steps": steps, "estimator": estimator,
                             "seconds": round(time.time() - t, 1)}
    fcs.append(historical_simulation_forecast(x, i0, levels, hs_window))
    t = time.time()
    fcs.append(garch_t_forecast(x, i0, levels, garch_refit, progress=progress))
    info["garch_seconds"] = round(time.time() - t, 1)
    return evaluate(r.index[i0:], x[i0:], fcs, n_sims, seed, info)


def check_out_of_sample(model: Any, first_day: pd.Timestamp) -> None:
    """Raise :class:`InputError` unless the model's training data ended before ``first_day``."""
    info = getattr(model, "data_info", None)
    end = getattr(info, "end", None)
    if end is None:
        raise InputError("the model does not record the dates of its training data, so an out-of-sample "
                         "backtest cannot be verified; fit it with 'findiffusion fit --end DATE'")
    if pd.Timestamp(end) >= first_day:
        raise InputError(f"the model was trained on data up to {end}, which overlaps the backtest starting "
                         f"{first_day.date()}; fit a model with --end before it or move --start after {end}")
