r"""Probabilistic forecasts from the conditional diffusion model, baselines and scores.

A forecast made *as of* day t is the predictive distribution of the next H
daily log returns r_{t+1..t+H} given the returns up to and including day t.
The diffusion model gives it as N sample paths generated conditionally on the
last ``stitch_context`` observed days (prefix-masked conditional sampling,
see :mod:`findiffusion.conditioning`). Cumulative returns are
R_{t,h} = \sum_{j=1}^{h} r_{t+j}, prices S_{t+h} = S_t e^{R_{t,h}}.

Scores (lower is better; y is the realized value, X, X' independent forecast draws):

(1) CRPS, energy form (Gneiting & Raftery, 2007, eq. 21):
    CRPS(F, y) = E|X - y| - \tfrac12 E|X - X'|,
    estimated from an ensemble x_1..x_N with the unbiased ("fair") second term
    \frac{1}{2N(N-1)}\sum_{i \ne j}|x_i - x_j| (Ferro, 2014); with sorted draws
    \sum_{i,j}|x_i - x_j| = 2\sum_i (2i - N - 1) x_{(i)}.
(2) Closed form for a Gaussian N(\mu, \sigma^2) (Gneiting et al., 2005, eq. 5), z = (y-\mu)/\sigma:
    CRPS = \sigma\,[z(2\Phi(z) - 1) + 2\varphi(z) - 1/\sqrt\pi].
(3) Pinball (quantile) loss at level q of a quantile forecast \hat y_q (Koenker & Bassett, 1978):
    \rho_q(y - \hat y_q) = (y - \hat y_q)(q - 1\{y < \hat y_q\});
    for Y ~ N(0, 1) and the true quantile z_q, E\rho_q = \varphi(z_q).
(4) QLIKE of a variance forecast h against a realized squared return r^2 (Patton, 2011, eq. 24,
    dropping terms free of h):  QLIKE(h, r^2) = \log h + r^2 / h,
    minimised in expectation by h = E[r^2]; then E\,QLIKE = \log h + 1.
(5) Coverage of the central 1-a interval: share of y inside [\hat y_{a/2}, \hat y_{1-a/2}].

Baselines share the ensemble interface, so every score is computed the same way:

* GARCH(1,1) with Student-t innovations (Bollerslev, 1986, 1987) from ``arch``,
  parameters estimated once on the training span, then filtered through the
  test span; paths by simulation (``arch`` ``method="simulation"``).
* Historical simulation: contiguous H-day blocks drawn from the last
  ``lookback`` days before each origin (so h-day sums keep their serial dependence).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from findiffusion.errors import InputError
from findiffusion.files import atomic_write_text, save_figure

#: quantile levels written by :meth:`Forecast.quantile_table`
QUANTILES: tuple[float, ...] = (0.05, 0.25, 0.5, 0.75, 0.95)


# ---------------------------------------------------------------------------
# scores
# ---------------------------------------------------------------------------
def crps_ensemble(samples: np.ndarray, y: np.ndarray | float) -> np.ndarray:
    """Fair CRPS of ensembles, eq. (1). Shape: samples (..., N), y (...) -> (...)."""
    x = np.sort(np.asarray(samples, dtype=float), axis=-1)
    n = x.shape[-1]
    if n < 2:
        raise InputError("CRPS needs at least 2 ensemble members")
    yv = np.asarray(y, dtype=float)[..., None]
    term1 = np.abs(x - yv).mean(axis=-1)
    i = np.arange(1, n + 1, dtype=float)
    pair_sum = 2.0 * ((2 * i - n - 1) * x).sum(axis=-1)  # sum_{i,j} |x_i - x_j|
    return term1 - pair_sum / (2.0 * n * (n - 1))


def crps_gaussian(mu: np.ndarray | float, sigma: np.ndarray | float, y: np.ndarray | float) -> np.ndarray:
    """Closed-form CRPS of N(mu, sigma^2) at y, eq. (2)."""
    s = np.asarray(sigma, dtype=float)
    z = (np.asarray(y, dtype=float) - np.asarray(mu, dtype=float)) / s
    return s * (z * (2 * stats.norm.cdf(z) - 1) + 2 * stats.norm.pdf(z) - 1 / math.sqrt(math.pi))


def pinball_loss(quantiles: np.ndarray, y: np.ndarray | float, levels: tuple[float, ...] | np.ndarray) -> np.ndarray:
    """Pinball loss, eq. (3). Shape: quantiles (..., Q), y (...) -> (..., Q)."""
    qs = np.asarray(levels, dtype=float)
    d = np.asarray(y, dtype=float)[..., None] - np.asarray(quantiles, dtype=float)
    return d * (qs - (d < 0))


def qlike(variance: np.ndarray, realized_sq: np.ndarray) -> np.ndarray:
    """QLIKE loss of variance forecasts, eq. (4). Shapes broadcast."""
    h = np.asarray(variance, dtype=float)
    if np.any(h <= 0):
        raise InputError("QLIKE needs positive variance forecasts")
    return np.log(h) + np.asarray(realized_sq, dtype=float) / h


def interval_coverage(samples: np.ndarray, y: np.ndarray, level: float = 0.9) -> float:
    """Share of ``y`` inside the central ``level`` interval of ``samples``, eq. (5). Shape: (M, N), (M,)."""
    a = (1 - level) / 2
    lo, hi = np.quantile(samples, [a, 1 - a], axis=-1)
    y = np.asarray(y, dtype=float)
    return float(np.mean((y >= lo) & (y <= hi)))


def cumulative(paths: np.ndarray, horizons: tuple[int, ...] | list[int]) -> dict[int, np.ndarray]:
    """h-day cumulative log returns of paths. Shape: (..., H) -> {h: (...)}."""
    c = np.cumsum(np.asarray(paths, dtype=float), axis=-1)
    return {h: c[..., h - 1] for h in horizons}


def evaluate_paths(paths: np.ndarray, realized: np.ndarray, horizons: tuple[int, ...] = (1, 5, 20),
                   levels: tuple[float, ...] = QUANTILES, coverage_level: float = 0.9) -> pd.DataFrame:
    """Scores of rolling-origin ensemble forecasts.

    Args:
        paths: forecast paths per origin. Shape: (M, N, H).
        realized: realized returns after each origin. Shape: (M, H).
        horizons: cumulative horizons h to score (each <= H).
        levels: quantile levels of the pinball loss.
        coverage_level: nominal level of the central interval.

    Returns:
        One row per horizon: ``crps``, ``pinball``, ``coverage``, ``qlike``
        (variance = forecast E[R_h^2] against realized R_h^2), averaged over origins.
    """
    paths = np.asarray(paths, dtype=float)
    realized = np.asarray(realized, dtype=float)
    if paths.ndim != 3 or realized.shape != (paths.shape[0], paths.shape[2]):
        raise InputError(f"paths must be (M, N, H) and realized (M, H); got {paths.shape} and {realized.shape}")
    if max(horizons) > paths.shape[2]:
        raise InputError(f"horizon {max(horizons)} exceeds the {paths.shape[2]} days forecast")
    fc, obs = cumulative(paths, horizons), cumulative(realized, horizons)
    rows = []
    for h in horizons:
        x, y = fc[h], obs[h]  # (M, N), (M,)
        q = np.quantile(x, levels, axis=-1).T  # (M, Q)
        rows.append({
            "horizon": h,
            "crps": float(crps_ensemble(x, y).mean()),
            "pinball": float(pinball_loss(q, y, levels).mean()),
            "coverage": interval_coverage(x, y, coverage_level),
            "qlike": float(qlike(np.maximum((x**2).mean(-1), 1e-12), y**2).mean()),
        })
    return pd.DataFrame(rows).set_index("horizon")


# ---------------------------------------------------------------------------
# forecasters: diffusion, GARCH(1,1)-t, historical simulation
# ---------------------------------------------------------------------------
def diffusion_paths(model: Any, returns: np.ndarray, origins: np.ndarray, horizon: int, n_paths: int, *,
                    sampler: str | None = None, steps: int | None = None, seed: int = 0, batch_size: int | None = None,
                    progress: bool = False) -> np.ndarray:
    """Conditional diffusion paths after each origin, batched over origins.

    Args:
        model: a fitted :class:`~findiffusion.model.DiffusionModel`.
        returns: the whole return series. Shape: (T,).
        origins: indices t of the last observed day of each forecast. Shape: (M,).
        horizon: days ahead H.
        n_paths: paths per origin N.

    Returns:
        Paths of r_{t+1..t+H}. Shape: (M, N, H).
    """
    r = np.asarray(returns, dtype=float)
    origins = np.asarray(origins, dtype=int)
    c = int(model.config.stitch_context)
    if origins.min() < c - 1:
        raise InputError(f"every origin needs {c} days of history before it; the first is at index {origins.min()}")
    h = min(model.context_days, int(origins.min()) + 1)  # history days per origin
    idx = origins[:, None] + np.arange(-h + 1, 1)[None, :]  # (M, h)
    return model.sample(n_paths, horizon, sampler=sampler, steps=steps, seed=seed, context=r[idx],
                        batch_size=batch_size, progress=progress)


def garch_t_paths(returns: pd.Series, train_end: int, origins: np.ndarray, horizon: int, n_paths: int, *,
                  seed: int = 0, scale: float = 100.0) -> tuple[np.ndarray, Any]:
    """GARCH(1,1)-t paths, parameters fitted on ``returns[:train_end]`` and filtered through the rest.

    Returns:
        (paths, fit result). Paths: Shape (M, N, H) in log-return units.
    """
    from arch import arch_model

    y = np.asarray(returns, dtype=float) * scale
    am = arch_model(y, mean="Constant", vol="GARCH", p=1, q=1, dist="t")
    res = am.fit(last_obs=train_end, disp="off")
    origins = np.asarray(origins, dtype=int)
    if origins.min() < train_end - 1 or origins.max() >= len(y):
        raise InputError("GARCH origins must lie in the test span, after the training data")
    out = np.empty((len(origins), n_paths, horizon))
    from arch.univariate import StudentsT

    gen = np.random.default_rng(seed)  # arch's simulation draws from the distribution's own generator
    # arch simulates every day from `start` to the end of the data it holds, so
    # forecast chunk by chunk on truncated data (same fixed parameters) to bound memory
    span = max(1, 2_000_000 // max(1, n_paths * horizon))
    k = 0
    while k < len(origins):
        o = origins[k:][origins[k:] < origins[k] + span]
        am_k = arch_model(y[: o[-1] + 1], mean="Constant", vol="GARCH", p=1, q=1, dist="t")
        am_k.distribution = StudentsT(seed=gen)
        fc = am_k.forecast(res.params, horizon=horizon, start=int(o[0]), method="simulation",
                           simulations=n_paths, reindex=False)
        sims = fc.simulations.values  # (days o[0] .. o[-1], N, H)
        out[k:k + len(o)] = sims[o - o[0]] / scale
        k += len(o)
    return out, res


def historical_paths(returns: np.ndarray, origins: np.ndarray, horizon: int, n_paths: int, *,
                     lookback: int = 1000, seed: int = 0) -> np.ndarray:
    """Historical simulation: contiguous H-day blocks from the ``lookback`` days up to each origin.

    Returns:
        Shape (M, N, H).
    """
    r = np.asarray(returns, dtype=float)
    origins = np.asarray(origins, dtype=int)
    if lookback < horizon + 1:
        raise InputError(f"lookback ({lookback}) must exceed the horizon ({horizon})")
    if origins.min() + 1 < lookback:
        raise InputError(f"historical simulation needs {lookback} days before the first origin")
    rng = np.random.default_rng(seed)
    n_blocks = lookback - horizon + 1
    starts = origins[:, None] - lookback + 1 + rng.integers(0, n_blocks, size=(len(origins), n_paths))  # (M, N)
    return r[starts[..., None] + np.arange(horizon)]  # (M, N, H)


# ---------------------------------------------------------------------------
# one forecast as of a date: the result object behind `findiffusion forecast`
# ---------------------------------------------------------------------------
@dataclass
class Forecast:
    """Predictive paths of the next H days as of one date.

    Attributes:
        paths: daily log returns. Shape: (N, H).
        history: observed returns up to and including the as-of day.
        last_price: price on the as-of day (prices are ``last_price * exp(cumsum)``).
        dates: business days forecast (None without a date index).
        realized: realized returns after the as-of day when the data has them. Shape: (<= H,).
    """

    paths: np.ndarray
    history: pd.Series
    last_price: float
    dates: pd.DatetimeIndex | None
    realized: np.ndarray

    @property
    def horizon(self) -> int:
        return int(self.paths.shape[1])

    @property
    def as_of(self) -> Any:
        return self.history.index[-1]

    def quantile_table(self, levels: tuple[float, ...] = QUANTILES) -> pd.DataFrame:
        """Quantiles of daily and cumulative returns and of the price, one row per day ahead."""
        daily = np.quantile(self.paths, levels, axis=0).T  # (H, Q)
        cum = np.quantile(np.cumsum(self.paths, axis=1), levels, axis=0).T  # (H, Q)
        frame = pd.DataFrame({"day_ahead": np.arange(1, self.horizon + 1)})
        if self.dates is not None:
            frame["date"] = [d.date().isoformat() for d in self.dates]
        for j, q in enumerate(levels):
            frame[f"daily_q{round(q * 100):02d}"] = daily[:, j]
        for j, q in enumerate(levels):
            frame[f"cum_q{round(q * 100):02d}"] = cum[:, j]
        for j, q in enumerate(levels):
            frame[f"price_q{round(q * 100):02d}"] = self.last_price * np.exp(cum[:, j])
        real = np.full(self.horizon, np.nan)
        real[: len(self.realized)] = np.cumsum(self.realized)
        frame["cum_realized"] = real
        return frame

    def summary(self) -> str:
        t = self.quantile_table()
        last = t.iloc[-1]
        sd1 = float(self.paths[:, 0].std())
        lines = [
            f"forecast as of {_fmt(self.as_of)}: {self.paths.shape[0]} paths x {self.horizon} days",
            f"  1-day sd {100 * sd1:.2f} %  (annualised {100 * sd1 * math.sqrt(252):.1f} %)",
            f"  {self.horizon}-day cumulative return: 5 % {100 * last['cum_q05']:+.2f} %,"
            f" median {100 * last['cum_q50']:+.2f} %, 95 % {100 * last['cum_q95']:+.2f} %",
            f"  price {self.last_price:.2f} -> median {last['price_q50']:.2f}"
            f" (90 % band {last['price_q05']:.2f} .. {last['price_q95']:.2f})",
        ]
        if len(self.realized):
            lines.append(f"  realized {len(self.realized)}-day cumulative return {100 * self.realized.sum():+.2f} %")
        return "\n".join(lines)

    def plot(self, path: str | Path, history_days: int = 120) -> Path:
        """Fan chart of the price: recent history, 5-95 % and 25-75 % bands, median (PNG)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        hist = self.history.iloc[-history_days:]
        # history prices: S_{t-k} = S_t exp(-(r_{t-k+1} + ... + r_t))
        back = np.concatenate([np.cumsum(hist.to_numpy()[::-1])[::-1][1:], [0.0]])
        h_price = self.last_price * np.exp(-back)
        t = self.quantile_table()
        if self.dates is not None and isinstance(hist.index, pd.DatetimeIndex):
            hx, fx = hist.index, pd.DatetimeIndex([hist.index[-1], *self.dates])
        else:
            hx, fx = np.arange(-len(hist) + 1, 1), np.arange(0, self.horizon + 1)

        def col(name: str) -> np.ndarray:
            return np.concatenate([[self.last_price], t[name].to_numpy()])

        fig, ax = plt.subplots(figsize=(9, 4.5))
        ax.plot(hx, h_price, color="black", lw=1.2, label="history")
        ax.fill_between(fx, col("price_q05"), col("price_q95"), color="tab:blue", alpha=0.2, label="5-95 %")
        ax.fill_between(fx, col("price_q25"), col("price_q75"), color="tab:blue", alpha=0.4, label="25-75 %")
        ax.plot(fx, col("price_q50"), color="tab:blue", lw=1.5, label="median")
        if len(self.realized):
            rp = self.last_price * np.exp(np.concatenate([[0.0], np.cumsum(self.realized)]))
            ax.plot(fx[: len(rp)], rp, color="tab:red", lw=1.2, ls="--", label="realized")
        ax.set_title(f"{self.horizon}-day diffusion forecast as of {_fmt(self.as_of)} ({self.paths.shape[0]} paths)")
        ax.set_ylabel("price")
        ax.legend(loc="upper left", fontsize=8)
        fig.autofmt_xdate()
        fig.tight_layout()
        return save_figure(fig, path)

    def write(self, out_dir: str | Path) -> list[Path]:
        """Write ``forecast_quantiles.csv`` and ``fan_chart.png`` into ``out_dir``."""
        d = Path(out_dir)
        d.mkdir(parents=True, exist_ok=True)
        csv = atomic_write_text(d / "forecast_quantiles.csv", self.quantile_table().to_csv(index=False,
                                                                                          float_format="%.6g"))
        return [csv, self.plot(d / "fan_chart.png")]


def _fmt(x: Any) -> str:
    return x.date().isoformat() if isinstance(x, pd.Timestamp) else str(x)


def forecast(model: Any, returns: pd.Series, *, as_of: str | None = None, horizon: int = 20, n_paths: int = 2000,
             last_price: float | None = None, sampler: str | None = None, steps: int | None = None, seed: int = 0,
             progress: bool = False) -> Forecast:
    """Forecast the next ``horizon`` days after ``as_of`` (default: the last day of ``returns``).

    Args:
        model: a fitted :class:`~findiffusion.model.DiffusionModel`.
        returns: daily log returns with a DatetimeIndex (or a RangeIndex when ``as_of`` is None).
        as_of: last observed day, YYYY-MM-DD; a non-trading day means the last trading day before it.
        horizon: days ahead.
        n_paths: sample paths.
        last_price: price at the end of ``returns`` (default 100); the as-of price is backed out of it.
        sampler, steps, seed: passed to :meth:`~findiffusion.model.DiffusionModel.sample`.

    Returns:
        A :class:`Forecast`.
    """
    if not isinstance(horizon, int | np.integer) or horizon < 1:
        raise InputError(f"horizon must be a positive number of days, got {horizon}")
    if not isinstance(n_paths, int | np.integer) or n_paths < 2:
        raise InputError(f"n must be at least 2 paths, got {n_paths}")
    r = returns if isinstance(returns, pd.Series) else pd.Series(np.asarray(returns, dtype=float))
    end = len(r) - 1
    if as_of is not None:
        if not isinstance(r.index, pd.DatetimeIndex):
            raise InputError("--as-of needs dated data; the series has no date column")
        try:
            ts = pd.Timestamp(as_of)
        except ValueError:
            raise InputError(f"could not parse --as-of {as_of!r} as a date (use YYYY-MM-DD)") from None
        end = int(r.index.searchsorted(ts, side="right")) - 1
        if end < 0:
            raise InputError(f"--as-of {as_of} is before the first day of data ({_fmt(r.index[0])})")
    c = int(model.config.stitch_context)
    if end + 1 < c:
        raise InputError(f"the forecast needs at least {c} days of history up to --as-of; the data has {end + 1}")
    hist = r.iloc[: end + 1]
    realized = r.to_numpy()[end + 1: end + 1 + horizon]
    s_end = 100.0 if last_price is None else float(last_price)
    s_asof = s_end * math.exp(-float(r.to_numpy()[end + 1:].sum()))
    paths = model.sample(n_paths, horizon, sampler=sampler, steps=steps, seed=seed,
                         context=hist.to_numpy()[-model.context_days:], progress=progress)
    dates = None
    if isinstance(r.index, pd.DatetimeIndex):
        dates = pd.bdate_range(hist.index[-1] + pd.offsets.BDay(1), periods=horizon)
    return Forecast(paths=paths, history=hist, last_price=s_asof, dates=dates, realized=realized)
