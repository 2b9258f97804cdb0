r"""Option pricing: Monte Carlo on generated price paths, with standard errors, implied vols and Greeks.

Black–Scholes closed forms, eqs. (1)-(3), are in :mod:`findiffusion.black_scholes` (re-exported here).

Monte Carlo on generated paths S_0..S_T (day t_j = j / 252 years):

(4) Empirical martingale simulation (Duan & Simonato 1998, eqs. 6–8): with raw paths S_i(t_j),
    Z_i(t_j) = S^*_i(t_{j-1}) S_i(t_j) / S_i(t_{j-1}),
    S^*_i(t_j) = S_0 Z_i(t_j) / \big(\tfrac1n\sum_k e^{-r t_j} Z_k(t_j)\big),
    so that \tfrac1n\sum_i e^{-r t_j} S^*_i(t_j) = S_0 exactly at every date: the sample is
    risk-neutral in the sense of the discounted price being a martingale in mean.
(4b) Conditional EMS, the default: (4) within volatility states. Each path's state at t_{j-1} is the
    EWMA of its own squared log returns up to t_{j-1}, h_i(t_j) = \lambda h_i(t_{j-1}) + (1-\lambda) r_i(t_{j-1})^2
    (\lambda = 0.94, h(t_1) = the sample's mean r^2); at each date the paths are cut into B equal-count bins by
    rank of h (B = min(10, n / 250) with n the paths of one batch of (5), one bin on the first day), and with
    R_i(t_j) = S_i(t_j)/S_i(t_{j-1})
    S^*_i(t_j) = S^*_i(t_{j-1}) R_i(t_j) c_b,  c_b = e^{r/252} \sum_{k \in b} S^*_k(t_{j-1}) / \sum_{k \in b} S^*_k(t_{j-1}) R_k(t_j).
    Every bin keeps its discounted total, so (4) holds at every date, and with B = 1 this *is* (4). Within a
    state the one-day discounted growth is 1 in mean, as risk neutrality asks of every state, not just on
    average: the log drift of a volatile day is lower (r - \sigma^2/2 for a Gaussian day). (4) alone moves
    every path by the same factor, so a generator whose daily mean does not fall with volatility (a
    difference far too small to learn from daily data) keeps volatile paths too high: on paths of a model
    trained on Heston returns (rho = -0.7) it priced the one-year 80 put 21 % low, (4b) 4 % (docs/pricing.md).
(5) Price = e^{-r\tau}\,\overline{f(S^*)}; standard error by batch means: the N paths are split into
    B independent batches, each corrected by (4) or (4b) on its own, and
    SE = sd(batch prices)/\sqrt B, 95 % interval = mean \pm t_{B-1,0.975} SE.
(6) Control variate (Glasserman 2004, sec. 4.1) X = e^{-r\tau} S_\tau with known mean S_0:
    \hat V_{cv} = \bar Y - \hat\beta(\bar X - S_0),  \hat\beta = \widehat{cov}(Y, X)/\widehat{var}(X).
    After (4) or (4b) \bar X = S_0 exactly, so the control variate adds nothing: EMS *is* a (multiplicative)
    control variate on the discounted price. It is applied only with ``correction="none"``
    (paths that are already risk-neutral, such as exact simulations).
(7) Antithetic noise: a sampler maps standard normal noise \xi to a path G(\xi). N(0, I) is symmetric,
    so G(-\xi) has the law of G(\xi): the pair average is unbiased for ANY sampler as long as ALL the
    noise is negated (x_T and every per-step draw, in every stitched chunk). Variance falls only if
    payoff\circ G is close to monotone in \xi (Glasserman 2004, sec. 4.2): the pair average cancels the
    odd part of f(\xi) and doubles the weight of the even part. EMS (4) already removes the part that is
    linear in S_T, so after EMS the residual is mostly even and antithetic pairs RAISE the variance
    (measured: ATM call on GBM, variance x1.8); they pay off only with ``correction="none"``. Off by
    default. :func:`sample_antithetic` supports the deterministic samplers (DDIM with eta = 0,
    probability-flow ODE), where x_T is all the noise.
(8) Greeks by central finite differences with common random numbers. Model paths are returns, so
    S_0 \to S_0(1 \pm h) scales every corrected path ((4) and (4b) are homogeneous of degree one):
    \Delta = (V_+ - V_-)/(2 h S_0),  \Gamma = (V_+ - 2V + V_-)/(h S_0)^2.
    Vega proxy: the model has no volatility parameter, so log returns are scaled about their mean,
    r \to \bar r + (1 \pm \epsilon)(r - \bar r), corrected again, and
    \mathcal V \approx (V_+ - V_-)/(2\epsilon\hat\sigma) with \hat\sigma the paths' annualised volatility;
    for geometric Brownian motion this is exactly the Black–Scholes vega in the limit.
(9) Importance sampling (:mod:`findiffusion.importance`): paths drawn from a proposal with weights
    w_i = p/q. Every mean above becomes a self-normalised weighted mean, \sum_i w_i y_i / \sum_i w_i, in the
    corrections (4), (4b) (bins of equal total weight) and in the batch prices (5), and the control (6) is
    w_i (X_i - S_0), mean 0; the weights do not depend on S_0 or the volatility bump, so (8) keeps common
    random numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from findiffusion.black_scholes import (  # noqa: F401  (re-exported: the public pricing API)
    black_scholes_delta,
    black_scholes_gamma,
    black_scholes_price,
    black_scholes_vega,
    implied_volatility,
)
from findiffusion.errors import InputError
from findiffusion.importance import ImportanceConfig, effective_sample_size, sample_importance, tune_shifts

DAYS_PER_YEAR = 252
#: option types; aliases: "asian" = "asian-call", "up-and-out" = "up-and-out-call", "down-and-in" = "down-and-in-put"
OPTION_TYPES = ("call", "put", "asian-call", "asian-put", "up-and-out-call", "up-and-out-put",
                "down-and-in-call", "down-and-in-put")
ALIASES = {"asian": "asian-call", "up-and-out": "up-and-out-call", "down-and-in": "down-and-in-put"}
EUROPEAN = ("call", "put")


# ---- payoffs ---------------------------------------------------------------------------------------
def canonical_option(option: str) -> str:
    """Resolve an alias; raise :class:`InputError` for an unknown type."""
    name = ALIASES.get(option, option)
    if name not in OPTION_TYPES:
        raise InputError(f"unknown option type {option!r}; use one of {', '.join(OPTION_TYPES + tuple(ALIASES))}")
    return name


def needs_barrier(option: str) -> bool:
    return canonical_option(option).startswith(("up-", "down-"))


@dataclass
class _PathStats:
    """What every payoff needs at maturity T. Each Shape: (N,)."""

    last: np.ndarray  # S_T
    mean: np.ndarray  # arithmetic mean of S_1..S_T (daily fixings)
    high: np.ndarray  # max of S_1..S_T (daily barrier monitoring)
    low: np.ndarray  # min of S_1..S_T

    def scaled(self, c: float) -> _PathStats:
        return _PathStats(self.last * c, self.mean * c, self.high * c, self.low * c)


def _stats(prices: np.ndarray, days: int) -> _PathStats:
    seg = prices[:, 1:days + 1]  # Shape: (N, T)
    return _PathStats(seg[:, -1], seg.mean(axis=1), seg.max(axis=1), seg.min(axis=1))


def _payoff(st: _PathStats, option: str, strike: float, barrier: float | None) -> np.ndarray:
    right = option.rsplit("-", 1)[-1]
    under = st.mean if option.startswith("asian") else st.last
    value = np.maximum(under - strike, 0.0) if right == "call" else np.maximum(strike - under, 0.0)
    if option.startswith("up-and-out"):
        value = np.where(st.high < barrier, value, 0.0)
    elif option.startswith("down-and-in"):
        value = np.where(st.low <= barrier, value, 0.0)
    return value


def payoff(prices: np.ndarray, strike: float, option: str = "call", barrier: float | None = None) -> np.ndarray:
    """Undiscounted payoff of each path at its last column.

    ``prices`` are S_0..S_T, Shape: (N, T + 1). European: (S_T - K)^+ / (K - S_T)^+. Asian: arithmetic
    mean of the daily fixings S_1..S_T in place of S_T. Barriers, monitored daily on S_1..S_T:
    up-and-out pays only if every S_j < B; down-and-in pays only if some S_j <= B.

    Returns:
        Shape: (N,).
    """
    name = canonical_option(option)
    p = np.asarray(prices, dtype=float)
    if p.ndim != 2 or p.shape[1] < 2:
        raise InputError(f"prices must be (paths, days + 1) with at least one day, got shape {p.shape}")
    if needs_barrier(name) and barrier is None:
        raise InputError(f"option {name!r} needs a barrier")
    return _payoff(_stats(p, p.shape[1] - 1), name, float(strike), barrier)


# ---- martingale correction -------------------------------------------------------------------------
def martingale_correction(prices: np.ndarray, rate: float, days_per_year: int = DAYS_PER_YEAR, *,
                          weights: np.ndarray | None = None) -> np.ndarray:
    """Empirical martingale simulation (Duan & Simonato 1998), eq. (4).

    Args:
        prices: raw paths S_0..S_T, all with the same S_0. Shape: (N, T + 1).
        rate: continuous risk-free rate per year.
        days_per_year: trading days per year (t_j = j / days_per_year).
        weights: importance weights of the paths (eq. (9)); means are then weighted means. Shape: (N,).

    Returns:
        Corrected paths with mean(e^{-r t_j} S*_j) = S_0 at every j. Shape: (N, T + 1).
    """
    p = _check_prices(prices)
    w = _check_weights(weights, p.shape[0])
    s0 = p[0, 0]
    out = np.empty_like(p)
    out[:, 0] = s0
    for j in range(1, p.shape[1]):
        z = out[:, j - 1] * (p[:, j] / p[:, j - 1])  # Z_i(t_j)
        out[:, j] = s0 * z / (math.exp(-rate * j / days_per_year) * np.average(z, weights=w))
    return out


#: eq. (4b): EWMA weight of the state, most bins, fewest paths per bin
STATE_EWMA, STATE_MAX_BINS, STATE_MIN_PATHS = 0.94, 10, 250
CORRECTIONS = ("conditional", "ems", "none")


def conditional_martingale_correction(prices: np.ndarray, rate: float, days_per_year: int = DAYS_PER_YEAR, *,
                                      ewma: float = STATE_EWMA, max_bins: int = STATE_MAX_BINS,
                                      min_paths: int = STATE_MIN_PATHS, weights: np.ndarray | None = None) -> np.ndarray:
    """Conditional empirical martingale simulation, eq. (4b): (4) within bins of each path's volatility state.

    Args:
        prices: raw paths S_0..S_T, all with the same S_0. Shape: (N, T + 1).
        rate: continuous risk-free rate per year.
        days_per_year: trading days per year.
        ewma: lambda of the state h (the EWMA of the path's own squared log returns, known the day before).
        max_bins, min_paths: B = min(max_bins, N // min_paths) equal-count bins by rank of h per date (at
            least 1). :func:`price_paths` corrects each batch on its own, so there N is the paths per batch.
        weights: importance weights of the paths (eq. (9)): bins hold equal total weight, every sum is
            weighted, and N in B is the effective sample size (Σ w)² / Σ w². Shape: (N,).

    Returns:
        Corrected paths: mean(e^{-r t_j} S*_j) = S_0 at every j, and within every bin of every date the
        price-weighted one-day discounted growth is exactly 1. With B = 1, equal to :func:`martingale_correction`.
        Shape: (N, T + 1).
    """
    p = _check_prices(prices)
    if not (0 <= ewma < 1):
        raise InputError(f"ewma must be in [0, 1), got {ewma}")
    if max_bins < 1 or min_paths < 1:
        raise InputError(f"max_bins and min_paths must be at least 1, got {max_bins} and {min_paths}")
    n, s0 = p.shape[0], p[0, 0]
    w = _check_weights(weights, n)
    if w is not None and np.ptp(w) == 0:
        w = None  # equal weights: the unweighted correction, bit for bit
    growth = p[:, 1:] / p[:, :-1]  # R_i(t_j), (N, T)
    lr2 = np.log(growth) ** 2
    n_eff = n if w is None else int(effective_sample_size(w))  # weighted: the effective sample size
    n_bins = max(1, min(max_bins, n_eff // min_paths))
    g = math.exp(rate / days_per_year)
    h = np.full(n, lr2.mean() if w is None else np.average(lr2.mean(axis=1), weights=w))  # state at t_1, (N,)
    out = np.empty_like(p)
    out[:, 0] = s0
    for j in range(1, p.shape[1]):
        prev, rj = out[:, j - 1], growth[:, j - 1]
        bins = np.zeros(n, dtype=int)
        if j > 1 and n_bins > 1:  # equal-count bins by rank of h (ties broken by path order), (N,)
            order = np.argsort(h, kind="stable")
            if w is None:
                bins[order] = np.arange(n) * n_bins // n
            else:  # equal-weight bins: the weight below each path, in units of total / B
                below = np.concatenate([[0.0], np.cumsum(w[order])[:-1]])
                bins[order] = np.minimum((below * n_bins / w.sum()).astype(int), n_bins - 1)
        pw = prev if w is None else prev * w
        total = np.bincount(bins, pw, n_bins)  # sum of S*(t_{j-1}) per bin (weighted)
        grown = np.bincount(bins, pw * rj, n_bins)  # sum of S*(t_{j-1}) R(t_j) per bin (weighted)
        c = g * total / np.where(grown > 0, grown, 1.0)  # c_b; an empty bin gets no paths
        out[:, j] = prev * rj * c[bins]
        h = ewma * h + (1 - ewma) * lr2[:, j - 1]
    return out


def _check_weights(weights: np.ndarray | None, n: int) -> np.ndarray | None:
    if weights is None:
        return None
    w = np.asarray(weights, dtype=float)
    if w.shape != (n,) or not np.isfinite(w).all() or (w < 0).any() or not w.sum() > 0:
        raise InputError(f"weights must be {n} finite non-negative numbers, not all zero (one per path)")
    return w


def _check_prices(prices: np.ndarray) -> np.ndarray:
    p = np.asarray(prices, dtype=float)
    if p.ndim != 2 or p.shape[0] < 2 or not np.all(p > 0) or not np.isfinite(p).all():
        raise InputError("prices must be a (paths >= 2, days + 1) array of positive finite prices")
    if not np.allclose(p[:, 0], p[0, 0]):
        raise InputError("all paths must start from the same price S_0 (column 0)")
    return p


# ---- antithetic sampling ---------------------------------------------------------------------------
def sample_antithetic(model: Any, n_paths: int, length: int, *, sampler: str | None = None, steps: int | None = None,
                      seed: int = 0, context: np.ndarray | None = None, batch_size: int | None = None,
                      progress: bool = False) -> np.ndarray:
    """Antithetic log-return paths from a fitted model, eq. (7): rows 2i and 2i+1 use noise xi and -xi.

    Only deterministic samplers ("ddim" with eta = 0, "ode", "dpm"), where x_T in each stitched chunk is
    all the noise; each row is an exact draw from the model. A thin wrapper of
    :meth:`DiffusionModel.sample` with ``antithetic=True`` for one (1-D) context or none. ``sampler``/``steps``
    default to the model's own (:attr:`~findiffusion.model.DiffusionModel.default_sampler`).

    Returns:
        Log returns. Shape: (N, T), N = ``n_paths`` rounded up to even.
    """
    if context is not None:
        context = np.asarray(context, dtype=float)
        if context.ndim != 1:
            raise InputError("context must be a 1-D array of finite log returns (oldest first)")
    n_even = n_paths + (n_paths % 2) if isinstance(n_paths, int | np.integer) and n_paths > 0 else n_paths
    return model.sample(n_even, length, sampler=sampler, steps=steps, seed=seed, context=context,
                        batch_size=batch_size, progress=progress, antithetic=True)  # checks the sampler


# ---- Monte Carlo pricing ---------------------------------------------------------------------------
@dataclass
class PricingResult:
    """Monte Carlo prices, intervals, implied vols and Greeks; one row per contract.

    Attributes:
        table: columns option, strike, maturity_days, barrier, price, se, ci_low, ci_high, iv, iv_low,
            iv_high, delta, delta_se, gamma, gamma_se, vega, vega_se.
        s0, rate: spot and continuous rate.
        n_paths: paths used; settings: how they were made and corrected; notes: caveats.
    """

    table: pd.DataFrame
    s0: float
    rate: float
    n_paths: int
    settings: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_frame(self) -> pd.DataFrame:
        return self.table.copy()

    def summary(self) -> str:
        """A plain-text table of prices, intervals, implied vols and Greeks."""
        s = self.settings
        head = (f"Monte Carlo option prices: S0={self.s0:g}  r={self.rate:g}  paths={self.n_paths}  "
                f"correction={s.get('correction')}  antithetic={s.get('antithetic')}  "
                f"control_variate={s.get('control_variate_used')}  batches={s.get('batches')}")
        cols = ["option", "strike", "maturity_days", "barrier", "price", "se", "ci_low", "ci_high", "iv",
                "delta", "gamma", "vega"]
        t = self.table[cols].copy()
        t["barrier"] = t["barrier"].map(lambda b: "" if not np.isfinite(b) else f"{b:g}")
        fmt = {"price": "{:.4f}", "se": "{:.4f}", "ci_low": "{:.4f}", "ci_high": "{:.4f}", "iv": "{:.4f}",
               "delta": "{:.4f}", "gamma": "{:.5f}", "vega": "{:.3f}", "strike": "{:g}"}
        for c, f in fmt.items():
            t[c] = t[c].map(lambda v, f=f: "" if isinstance(v, float) and not np.isfinite(v) else f.format(v))
        lines = [head, t.to_string(index=False)]
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    def plot(self, path: str | Path) -> Path:
        """Implied-volatility smile per maturity (European rows) with 95 % bands; prices otherwise. PNG."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from findiffusion.files import save_figure

        eu = self.table[self.table["option"].isin(EUROPEAN)]
        fig, ax = plt.subplots(figsize=(7, 4.5))
        if len(eu) and eu["iv"].notna().any():
            # one smile per maturity: OTM side (puts below S0, calls above); parity makes them agree under EMS
            for days, g in eu.groupby("maturity_days"):
                otm = g[((g["option"] == "put") & (g["strike"] < self.s0)) | ((g["option"] == "call")
                                                                             & (g["strike"] >= self.s0))]
                g = (otm if len(otm) else g).sort_values("strike").drop_duplicates("strike")
                line = ax.plot(g["strike"], g["iv"], marker="o", label=f"{days} days")[0]
                ax.fill_between(g["strike"], g["iv_low"], g["iv_high"], color=line.get_color(), alpha=0.2)
            ax.set_ylabel("Black–Scholes implied volatility")
            ax.set_title("Implied-volatility smile of generated paths (95 % bands)")
        else:
            for (opt, days), g in self.table.groupby(["option", "maturity_days"]):
                g = g.sort_values("strike")
                ax.errorbar(g["strike"], g["price"], yerr=1.96 * g["se"], marker="o", label=f"{opt} {days}d")
            ax.set_ylabel("price")
            ax.set_title("Monte Carlo prices (95 % intervals)")
        ax.axvline(self.s0, color="grey", lw=0.8, ls=":")
        ax.set_xlabel("strike")
        ax.legend(fontsize=8)
        fig.tight_layout()
        return save_figure(fig, path, dpi=120)


def _contracts(options: list[str], strikes: list[float], maturities: list[int],
               barriers: list[float] | None, s0: float) -> list[tuple[str, float, int, float | None]]:
    out = []
    for opt in options:
        name = canonical_option(opt)
        bars: list[float | None] = [None]
        if needs_barrier(name):
            if not barriers:
                raise InputError(f"option {name!r} needs a barrier level (--barrier)")
            up = name.startswith("up-")
            bars = [b for b in barriers if (b > s0 if up else b < s0)]
            if not bars:
                side = "above" if up else "below"
                raise InputError(f"option {name!r} needs a barrier {side} s0 = {s0:g}; got {barriers}")
        for b in bars:
            out += [(name, float(k), int(d), b) for d in maturities for k in strikes]
    return out


def _check_inputs(s0: float, strikes: list[float], maturities: list[int], rate: float) -> None:
    if not (s0 > 0 and math.isfinite(s0)):
        raise InputError(f"s0 must be a positive price, got {s0}")
    if not strikes or not all(k > 0 and math.isfinite(k) for k in strikes):
        raise InputError(f"strikes must be positive numbers, got {strikes}")
    if not maturities or not all(int(d) == d and d > 0 for d in maturities):
        raise InputError(f"maturities must be positive whole numbers of days, got {maturities}")
    if not (math.isfinite(rate) and -1 < rate < 1):
        raise InputError(f"rate must be a continuous annual rate such as 0.03, got {rate}")


def price_paths(
    log_returns: np.ndarray,
    *,
    s0: float = 100.0,
    strikes: list[float] = (100.0,),  # type: ignore[assignment]
    maturities_days: list[int] = (21,),  # type: ignore[assignment]
    rate: float = 0.0,
    options: list[str] = ("call", "put"),  # type: ignore[assignment]
    barriers: list[float] | None = None,
    correction: str = "conditional",
    control_variate: bool = True,
    antithetic: bool = False,
    weights: np.ndarray | None = None,
    greeks: bool = True,
    bump: float = 0.01,
    vol_bump: float = 0.05,
    batches: int = 20,
    days_per_year: int = DAYS_PER_YEAR,
    settings: dict[str, Any] | None = None,
) -> PricingResult:
    """Monte Carlo prices of every (option, strike, maturity, barrier) on the same paths, eqs. (4)-(8).

    Args:
        log_returns: daily log-return paths (generated or simulated). Shape: (N, T), T >= max maturity.
        s0: spot; paths are S_t = s0 exp(cumulative returns).
        strikes, maturities_days, options, barriers: the contracts (barriers apply to barrier types).
        rate: continuous annual risk-free rate.
        correction: ``"conditional"`` (eq. 4b, default), ``"ems"`` (eq. 4) or ``"none"`` (paths taken as
            risk-neutral already).
        control_variate: eq. (6) with the discounted S_T; used only with ``correction="none"``.
        antithetic: rows 2i, 2i+1 are antithetic pairs (:func:`sample_antithetic`); batches keep pairs.
        weights: importance weights of the paths, eq. (9) (:func:`findiffusion.importance.sample_importance`).
            Shape: (N,).
        greeks: compute delta, gamma (relative bump ``bump``) and vega proxy (``vol_bump``), eq. (8).
        batches: B in eq. (5).

    Returns:
        A :class:`PricingResult`.
    """
    r = np.asarray(log_returns, dtype=float)
    if r.ndim != 2 or not np.isfinite(r).all():
        raise InputError(f"log_returns must be a finite (paths, days) array, got shape {r.shape}")
    strikes, maturities = [float(k) for k in strikes], [int(d) for d in maturities_days]
    _check_inputs(s0, strikes, maturities, rate)
    if correction not in CORRECTIONS:
        raise InputError(f"correction must be one of {', '.join(CORRECTIONS)}, got {correction!r}")
    if max(maturities) > r.shape[1]:
        raise InputError(f"paths have {r.shape[1]} days but the longest maturity is {max(maturities)} days")
    if not 2 <= batches <= r.shape[0] // 4:
        raise InputError(f"need at least 4 paths per batch and 2 batches; got {r.shape[0]} paths, {batches} batches")
    n, T = r.shape[0], max(maturities)
    wts = _check_weights(weights, n)
    if wts is not None and antithetic:
        raise InputError("importance weights and antithetic pairs cannot be combined: choose one")
    r = r[:, :T]
    contracts = _contracts(list(options), strikes, maturities, barriers, s0)
    use_cv = control_variate and correction == "none"
    unit = 2 if antithetic else 1
    edges = (np.linspace(0, n // unit, batches + 1).round().astype(int)) * unit  # batch boundaries, pairs kept
    w_day = None if wts is None else np.broadcast_to(wts[:, None], r.shape)  # each path's weight on its days
    rbar = float(np.average(r, weights=w_day))
    sig = float(math.sqrt(np.average((r - rbar) ** 2, weights=w_day) * days_per_year))
    disc = {d: math.exp(-rate * d / days_per_year) for d in maturities}
    variants = {"base": 1.0} | ({"vol_up": 1 + vol_bump, "vol_dn": 1 - vol_bump} if greeks else {})
    n_c = len(contracts)
    est = {v: np.zeros((batches, n_c)) for v in ["base", "up", "dn", "vol_up", "vol_dn"]}
    y_all, x_all, w_all = np.zeros((n, n_c)), np.zeros((n, len(maturities))), np.ones(n)
    for b in range(batches):
        sl = slice(edges[b], edges[b + 1])
        wb = None if wts is None else wts[sl] / wts[sl].mean()  # eq. (9), normalised per batch
        if wb is not None:
            w_all[sl] = wb

        def avg(y: np.ndarray, wb: np.ndarray | None = wb) -> float:
            return float(np.average(y, weights=wb))

        for v, scale in variants.items():
            rv = r[sl] if scale == 1.0 else rbar + scale * (r[sl] - rbar)
            paths = s0 * np.exp(np.concatenate([np.zeros((rv.shape[0], 1)), np.cumsum(rv, axis=1)], axis=1))
            if correction == "ems":
                paths = martingale_correction(paths, rate, days_per_year, weights=wb)
            elif correction == "conditional":
                paths = conditional_martingale_correction(paths, rate, days_per_year, weights=wb)
            stats = {d: _stats(paths, d) for d in maturities}
            for ci, (opt, k, d, bar) in enumerate(contracts):
                y = disc[d] * _payoff(stats[d], opt, k, bar)
                est[v][b, ci] = avg(y)
                if v == "base":
                    y_all[sl, ci] = y * w_all[sl]
                    if greeks:
                        est["up"][b, ci] = disc[d] * avg(_payoff(stats[d].scaled(1 + bump), opt, k, bar))
                        est["dn"][b, ci] = disc[d] * avg(_payoff(stats[d].scaled(1 - bump), opt, k, bar))
            if v == "base":
                for mi, d in enumerate(maturities):
                    x_all[sl, mi] = disc[d] * (stats[d].last - s0 * math.exp(rate * d / days_per_year)) * w_all[sl]
    notes: list[str] = []
    if use_cv:  # eq. (6), beta from all paths, then batch means of the adjusted values
        for ci, (_, _, d, _) in enumerate(contracts):
            x = x_all[:, maturities.index(d)]  # w (X - S_0), mean 0
            vx = x.var()
            beta = float(np.cov(y_all[:, ci], x)[0, 1] / vx) if vx > 0 else 0.0
            adj = y_all[:, ci] - beta * x
            est["base"][:, ci] = [adj[edges[b]:edges[b + 1]].mean() for b in range(batches)]
    elif control_variate:
        notes.append("control variate e^{-rT} S_T skipped: after the correction its sample mean is exactly S0 (no effect)")
    per_batch = int(n if wts is None else effective_sample_size(wts)) // batches  # weighted: effective paths
    if correction == "conditional" and per_batch // STATE_MIN_PATHS < 2:
        notes.append(f"conditional correction with one volatility bin (= plain EMS): {per_batch} "
                     f"{'effective ' if wts is not None else ''}paths per batch, two bins need {2 * STATE_MIN_PATHS}; "
                     "use more paths or fewer batches")
    from scipy import stats as sps

    tq = float(sps.t.ppf(0.975, batches - 1))

    def mean_se(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return a.mean(axis=0), a.std(axis=0, ddof=1) / math.sqrt(batches)

    price, se = mean_se(est["base"])
    rows = []
    h = bump * s0
    for ci, (opt, k, d, bar) in enumerate(contracts):
        row: dict[str, Any] = {"option": opt, "strike": k, "maturity_days": d,
                               "barrier": np.nan if bar is None else bar, "price": price[ci], "se": se[ci],
                               "ci_low": price[ci] - tq * se[ci], "ci_high": price[ci] + tq * se[ci]}
        row["iv"] = row["iv_low"] = row["iv_high"] = np.nan
        if opt in EUROPEAN:
            tau = d / days_per_year
            ivs = implied_volatility([row["price"], row["ci_low"], row["ci_high"]], s0, k, tau, rate, opt)
            row["iv"], row["iv_low"], row["iv_high"] = (float(v) for v in ivs)
        if greeks:
            dlt, dse = mean_se((est["up"][:, ci] - est["dn"][:, ci]) / (2 * h))
            gam, gse = mean_se((est["up"][:, ci] - 2 * est["base"][:, ci] + est["dn"][:, ci]) / h**2)
            veg, vse = mean_se((est["vol_up"][:, ci] - est["vol_dn"][:, ci]) / (2 * vol_bump * sig))
            row |= {"delta": dlt, "delta_se": dse, "gamma": gam, "gamma_se": gse, "vega": veg, "vega_se": vse}
        else:
            row |= {k2: np.nan for k2 in ("delta", "delta_se", "gamma", "gamma_se", "vega", "vega_se")}
        rows.append(row)
    if greeks and use_cv:
        notes.append("Greeks use plain batch means (no control variate)")
    table = pd.DataFrame(rows)
    info = {"correction": correction, "antithetic": antithetic, "control_variate_used": use_cv,
            "batches": batches, "bump": bump, "vol_bump": vol_bump, "annual_vol_of_paths": sig,
            "days_per_year": days_per_year} | (settings or {})
    return PricingResult(table, float(s0), float(rate), int(n), info, notes)


def price_with_model(
    model: Any,
    *,
    s0: float = 100.0,
    strikes: list[float] = (90.0, 100.0, 110.0),  # type: ignore[assignment]
    maturities_days: list[int] = (21, 63, 252),  # type: ignore[assignment]
    rate: float = 0.0,
    options: list[str] = ("call", "put"),  # type: ignore[assignment]
    barriers: list[float] | None = None,
    n_paths: int = 100_000,
    seed: int = 0,
    sampler: str | None = None,
    steps: int | None = None,
    antithetic: bool = False,
    importance: bool | ImportanceConfig = False,
    importance_pilot: int = 0,
    context: np.ndarray | None = None,
    batch_size: int | None = None,
    progress: bool = False,
    **kwargs: Any,
) -> PricingResult:
    """Generate ``n_paths`` paths from ``model`` and price on them with :func:`price_paths`.

    ``sampler``/``steps``: default the model's own (:attr:`~findiffusion.model.DiffusionModel.default_sampler`).
    ``antithetic`` needs a deterministic sampler (ddim/ode/dpm) and is switched off otherwise (noted).
    ``importance``: True (the maturities as horizons, :class:`~findiffusion.importance.ImportanceConfig`'s
    defaults) or a config: importance sampling, eq. (9); needs a deterministic sampler (an error otherwise).
    ``importance_pilot``: with ``importance``, first draw this many pilot paths (own seed) and choose each
    maturity's two noise shifts and start powers by the cross-entropy rule, eqs. (4)-(5) of
    :mod:`findiffusion.importance`, for the highest-strike call and the lowest-strike put (0: the config's own).
    ``context``: recent real log returns (oldest first) to price conditionally on today's regime.
    Other keyword arguments go to :func:`price_paths`.
    """
    strikes, maturities = [float(k) for k in strikes], [int(d) for d in maturities_days]
    _check_inputs(s0, strikes, maturities, rate)
    _contracts(list(options), strikes, maturities, barriers, s0)  # fail fast, before sampling
    T = max(maturities)
    notes = []
    from findiffusion.sampling import ANTITHETIC_SAMPLERS

    sampler, steps = model.resolve_sampler(sampler, steps)
    if antithetic and sampler not in ANTITHETIC_SAMPLERS:
        antithetic = False
        notes.append(f"antithetic noise off: sampler {sampler!r} draws noise at every step (needs a core hook)")
    weights, info = None, {}
    if not (isinstance(importance, bool | ImportanceConfig) or importance is None):
        raise InputError(f"importance must be True, False or an ImportanceConfig, got {importance!r}")
    if importance:
        if antithetic:
            raise InputError("importance sampling and antithetic noise cannot be combined: choose one")
        config = importance if isinstance(importance, ImportanceConfig) else ImportanceConfig(tuple(maturities))
        if importance_pilot:
            config = tune_shifts(model, config, strikes, s0=s0, n_pilot=importance_pilot, seed=seed, sampler=sampler,
                                 steps=steps, context=context, batch_size=batch_size)
        r, weights = sample_importance(model, n_paths, T, config, sampler=sampler, steps=steps, seed=seed,
                                       context=context, batch_size=batch_size, progress=progress)
        ess = effective_sample_size(weights)
        pairs = zip(config.horizons, config.means(), config.powers(), strict=True)
        shifts = (f"shift {config.shift:g}" if config.shifts is None and config.start_powers is None
                  else "shifts " + ", ".join(f"{d}d {u:+.2f}/{v:+.2f} (start powers {gu:.1f}/{gv:.1f})"
                                             for d, (u, v), (gu, gv) in pairs)
                  + (f" from a {importance_pilot}-path pilot" if importance_pilot else ""))
        notes.append(f"importance sampling (horizons {','.join(map(str, config.horizons))} days, {shifts}): "
                     f"effective sample size {ess:.0f} of {len(weights)}")
        info = {"importance_horizons": list(config.horizons), "importance_shift": config.shift,
                "importance_shifts": [list(p) for p in config.means()],
                "importance_start_powers": [list(p) for p in config.powers()], "importance_pilot": int(importance_pilot),
                "importance_start_power": config.start_power, "importance_defensive": config.defensive,
                "effective_sample_size": ess}
    elif importance_pilot:
        raise InputError("importance_pilot needs importance sampling (importance=True or a config)")
    elif antithetic:
        r = sample_antithetic(model, n_paths, T, sampler=sampler, steps=steps, seed=seed, context=context,
                              batch_size=batch_size, progress=progress)
    else:
        r = model.sample(n_paths, T, sampler=sampler, steps=steps, seed=seed, context=context,
                         batch_size=batch_size, progress=progress)
    res = price_paths(r, s0=s0, strikes=strikes, maturities_days=maturities, rate=rate, options=options,
                      barriers=barriers, antithetic=antithetic, weights=weights,
                      settings={"sampler": sampler, "steps": steps, "seed": seed, "importance": weights is not None,
                                "context": context is not None} | info, **kwargs)
    res.notes = notes + res.notes
    return res
