r"""Value at risk, expected shortfall, and their backtests.

Loss convention
---------------
``pnl`` is the profit and loss of a **long** position (negative = loss). VaR and
ES are reported as **positive losses**. With the tail probability p = 1 - level
(p = 1 % for a 99 % VaR) and F the distribution function of the P&L X:

(1)  VaR_level(X) = -\inf\{x : F(x) \ge p\}                  (a loss exceeded with probability p)
(2)  ES_level(X)  = -\frac{1}{p} \int_0^p F^{-1}(u)\, du       (mean loss in the worst p of outcomes)

Empirical estimators on a sample sorted as X_{(1)} \le \dots \le X_{(n)}
(Acerbi & Tasche, 2002, eq. 3.1, for ES):

(3)  \widehat{VaR} = -X_{(\lceil np \rceil)},
     \widehat{ES}  = -\frac{1}{np}\Big[\sum_{i=1}^{\lfloor np \rfloor} X_{(i)}
                     + (np - \lfloor np \rfloor) X_{(\lfloor np \rfloor + 1)}\Big].

Closed forms (McNeil, Frey & Embrechts, 2015, Examples 2.14 and 2.15): for X ~ N(\mu, \sigma^2),
with z = \Phi^{-1}(p),

(4)  VaR = -(\mu + \sigma z),    ES = -\mu + \sigma \varphi(z) / p;

for X = \mu + s T with T ~ t_\nu and q = t_\nu^{-1}(p),

(5)  VaR = -(\mu + s q),    ES = -\mu + s \frac{g_\nu(q)}{p} \frac{\nu + q^2}{\nu - 1}

(g_\nu the t density; unit variance when s = \sigma \sqrt{(\nu - 2)/\nu}).

Backtests on the hit sequence I_t = 1\{x_t < -VaR_t\} (T days, x hits):

(6)  Kupiec (1995) proportion of failures, \chi^2_1 under H0: P(I_t = 1) = p,
     LR_{pof} = -2 \ln[(1-p)^{T-x} p^x] + 2 \ln[(1-\hat\pi)^{T-x} \hat\pi^x],  \hat\pi = x/T.
(7)  Christoffersen (1998) independence, \chi^2_1, from the transition counts n_{ij}
     (day t-1 in state i, day t in state j), \pi_{01} = n_{01}/(n_{00}+n_{01}),
     \pi_{11} = n_{11}/(n_{10}+n_{11}), \pi = (n_{01}+n_{11})/\sum n_{ij}:
     LR_{ind} = -2 \ln[(1-\pi)^{n_{00}+n_{10}} \pi^{n_{01}+n_{11}}]
                + 2 \ln[(1-\pi_{01})^{n_{00}} \pi_{01}^{n_{01}} (1-\pi_{11})^{n_{10}} \pi_{11}^{n_{11}}].
(8)  Conditional coverage, \chi^2_2: the likelihood ratio of the Markov chain against
     i.i.d. Bernoulli(p) on the same T - 1 transitions,
     LR_{cc} = -2 \ln[(1-p)^{n_{00}+n_{10}} p^{n_{01}+n_{11}}] + 2 \ln L(\pi_{01}, \pi_{11})
     (= LR_{pof} on those T - 1 days + LR_{ind}, Christoffersen 1998, eq. 9).
(9)  Acerbi & Szekely (2014) ES test Z_2,
     Z_2 = \sum_t \frac{x_t I_t}{T p\, ES_t} + 1,
     E[Z_2] = 0 when the forecasts are right, negative when risk is under-estimated.
     For a forecast that is the empirical law of N samples, a draw equal to the VaR sample
     counts with weight \theta = Np - \lceil Np \rceil + 1 \in (0, 1] (ties have probability 0 for
     real returns), which makes E[Z_2] = 0 exactly under that discrete law with eq. (3).
     Its p-value here is **simulated** as in Acerbi & Szekely (2014, section 3):
     draw x_t from each day's forecast distribution, recompute Z_2, p = P(Z_2^{sim} \le Z_2).
     (Their fixed 5 % threshold -0.70 for level 97.5 % is printed for reference.)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats
from scipy.special import xlogy

from findiffusion.errors import InputError

#: Acerbi & Szekely (2014) 5 % critical value of Z_2 at level 97.5 % (stable across t tails)
AS_Z2_CRITICAL_975 = -0.70


# ---------------------------------------------------------------------------
# VaR / ES
# ---------------------------------------------------------------------------
def _check_level(level: float) -> float:
    level = float(level)
    if not 0.5 < level < 1.0:
        raise InputError(f"level must be a confidence level between 0.5 and 1 (e.g. 0.99), got {level}")
    return level


def _tail(pnl: Any, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Eq. (3) along the last axis: (VaR, ES). Shape: (..., n) -> (...), (...)."""
    p = 1.0 - _check_level(level)
    x = np.sort(np.asarray(pnl, dtype=float), axis=-1)  # (..., n) ascending
    n = x.shape[-1]
    if n == 0 or not np.isfinite(x).all():
        raise InputError("pnl must be a non-empty array of finite numbers")
    npk = n * p
    if abs(npk - round(npk)) < 1e-9:  # 100 * 0.05 = 5.000000000000001 is 5
        npk = float(round(npk))
    k = max(math.ceil(npk), 1)  # order statistic of VaR (1-based)
    var = -x[..., k - 1]
    m = math.floor(npk)
    if m == 0:  # fewer than one tail sample: the worst outcome
        return var, -x[..., 0]
    frac = npk - m
    s = x[..., :m].sum(axis=-1)
    if frac > 0 and m < n:
        s = s + frac * x[..., m]
    return var, -s / npk


def value_at_risk(pnl: Any, level: float = 0.99) -> np.ndarray | float:
    """Empirical VaR (eq. 1, 3) of P&L samples, a positive loss of a long position.

    Args:
        pnl: P&L samples along the last axis. Shape: (n,) or (..., n).
        level: confidence level, e.g. 0.99.

    Returns:
        VaR; a float for 1-D input. Shape: (...).
    """
    v = _tail(pnl, level)[0]
    return float(v) if np.ndim(v) == 0 else v


def expected_shortfall(pnl: Any, level: float = 0.975) -> np.ndarray | float:
    """Empirical ES (eq. 2, 3): the mean loss beyond VaR, as a positive number. Shape: (..., n) -> (...)."""
    e = _tail(pnl, level)[1]
    return float(e) if np.ndim(e) == 0 else e


def normal_var_es(level: float, mu: Any = 0.0, sigma: Any = 1.0) -> tuple[Any, Any]:
    """Closed-form VaR and ES of N(mu, sigma^2) P&L, eq. (4). Broadcasts over mu, sigma."""
    p = 1.0 - _check_level(level)
    z = stats.norm.ppf(p)
    return -(mu + sigma * z), -mu + sigma * stats.norm.pdf(z) / p


def student_t_var_es(level: float, df: Any, loc: Any = 0.0, scale: Any = 1.0,
                     standardized: bool = False) -> tuple[Any, Any]:
    """Closed-form VaR and ES of P&L ``loc + scale * T``, T ~ t_df, eq. (5).

    Args:
        standardized: ``scale`` is the standard deviation (unit-variance t, needs df > 2),
            as in GARCH-t models; otherwise it is the t scale.
    """
    p = 1.0 - _check_level(level)
    df = np.asarray(df, dtype=float)
    if np.any(df <= (2.0 if standardized else 1.0)):
        raise InputError("Student-t ES needs df > 1 (df > 2 for a unit-variance t)")
    s = scale * np.sqrt((df - 2.0) / df) if standardized else scale
    q = stats.t.ppf(p, df)
    var = -(loc + s * q)
    es = -loc + s * stats.t.pdf(q, df) / p * (df + q * q) / (df - 1.0)
    return var, es


# ---------------------------------------------------------------------------
# backtest statistics
# ---------------------------------------------------------------------------
@dataclass
class HypothesisTest:
    """A test statistic, its p-value, and what it tests."""

    name: str
    statistic: float
    p_value: float
    note: str = ""

    def rejected(self, alpha: float = 0.05) -> bool:
        return bool(self.p_value < alpha)


def _hits(hits: Any) -> np.ndarray:
    h = np.asarray(hits)
    if h.ndim != 1 or h.size < 2:
        raise InputError("hits must be a 1-D sequence of at least two 0/1 values")
    if not np.isin(h, (0, 1)).all():
        raise InputError("hits must contain only 0 and 1 (True/False)")
    return h.astype(int)


def kupiec_pof(hits: Any, level: float) -> HypothesisTest:
    """Kupiec's proportion-of-failures test, eq. (6); chi-square with 1 degree of freedom."""
    h = _hits(hits)
    p = 1.0 - _check_level(level)
    T, x = h.size, int(h.sum())
    pi = x / T
    ll0 = xlogy(T - x, 1 - p) + xlogy(x, p)
    ll1 = xlogy(T - x, 1 - pi) + xlogy(x, pi)
    lr = max(-2.0 * (ll0 - ll1), 0.0)
    return HypothesisTest("Kupiec POF", lr, float(stats.chi2.sf(lr, 1)), f"{x} hits in {T} days, expected {p * T:.1f}")


def transition_counts(hits: Any) -> np.ndarray:
    """Counts n_ij of day t-1 in state i and day t in state j. Shape: (2, 2)."""
    h = _hits(hits)
    n = np.zeros((2, 2), dtype=int)
    np.add.at(n, (h[:-1], h[1:]), 1)
    return n


def _markov_ll(n: np.ndarray) -> float:
    n00, n01, n10, n11 = (float(v) for v in n.ravel())
    p01 = n01 / (n00 + n01) if n00 + n01 else 0.0
    p11 = n11 / (n10 + n11) if n10 + n11 else 0.0
    return float(xlogy(n00, 1 - p01) + xlogy(n01, p01) + xlogy(n10, 1 - p11) + xlogy(n11, p11))


def christoffersen_independence(hits: Any) -> HypothesisTest:
    """Christoffersen's independence test, eq. (7); chi-square with 1 degree of freedom."""
    n = transition_counts(hits)
    n0, n1 = n[0, 0] + n[1, 0], n[0, 1] + n[1, 1]
    pi = n1 / (n0 + n1)
    lr = max(2.0 * (_markov_ll(n) - float(xlogy(n0, 1 - pi) + xlogy(n1, pi))), 0.0)
    return HypothesisTest("Christoffersen ind", lr, float(stats.chi2.sf(lr, 1)),
                          f"n00={n[0, 0]} n01={n[0, 1]} n10={n[1, 0]} n11={n[1, 1]}")


def christoffersen_conditional_coverage(hits: Any, level: float) -> HypothesisTest:
    """Christoffersen's conditional-coverage test, eq. (8); chi-square with 2 degrees of freedom."""
    n = transition_counts(hits)
    p = 1.0 - _check_level(level)
    n0, n1 = n[0, 0] + n[1, 0], n[0, 1] + n[1, 1]
    lr = max(2.0 * (_markov_ll(n) - float(xlogy(n0, 1 - p) + xlogy(n1, p))), 0.0)
    return HypothesisTest("Christoffersen cc", lr, float(stats.chi2.sf(lr, 2)))


def acerbi_szekely_z2(returns: Any, var: Any, es: Any, level: float, tie_weight: float = 1.0) -> np.ndarray | float:
    """Z_2 of eq. (9); a return exactly at -VaR counts with ``tie_weight``. Shape: returns (..., T), var/es (T,) -> (...)."""
    p = 1.0 - _check_level(level)
    x = np.asarray(returns, dtype=float)
    var, es = np.asarray(var, dtype=float), np.asarray(es, dtype=float)
    w = (x < -var) + tie_weight * (x == -var)
    z = (w * x / es).sum(axis=-1) / (x.shape[-1] * p) + 1.0
    return float(z) if np.ndim(z) == 0 else z


def es_backtest(returns: Any, var: Any, es: Any, level: float,
                draw: Callable[[np.random.Generator, int], np.ndarray],
                n_sims: int = 2000, seed: int = 0, tie_weight: float = 1.0) -> HypothesisTest:
    """Acerbi–Szekely Z_2 with a simulated p-value (eq. 9).

    Args:
        returns: realised returns. Shape: (T,).
        var, es: the day's forecasts (positive losses). Shape: (T,).
        draw: ``draw(rng, n)`` returns n draws from every day's forecast distribution. Shape: (n, T).
        n_sims: simulations of Z_2 under the null.
        tie_weight: theta of eq. (9) for empirical forecast laws (1 for continuous ones).
    """
    z = acerbi_szekely_z2(returns, var, es, level, tie_weight)
    rng = np.random.default_rng(seed)
    sims = np.concatenate([acerbi_szekely_z2(draw(rng, min(500, n_sims - i)), var, es, level, tie_weight)
                           for i in range(0, n_sims, 500)])
    pv = float((np.sum(sims <= z) + 1) / (n_sims + 1))
    note = f"simulated p ({n_sims} draws)"
    if abs(level - 0.975) < 1e-9:
        note += f"; AS 5% critical value {AS_Z2_CRITICAL_975}"
    return HypothesisTest("Acerbi-Szekely Z2", float(z), pv, note)



def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save_png(fig: Any, path: str | Path) -> Path:
    from findiffusion.files import save_figure

    fig.tight_layout()
    return save_figure(fig, path)


# ---------------------------------------------------------------------------
# risk of a position over horizons
# ---------------------------------------------------------------------------
@dataclass
class RiskReport:
    """VaR/ES of a long position over several horizons from generated paths.

    Attributes:
        as_of: the last day of the context (the horizon starts the day after).
        levels, horizons: confidence levels and horizons (days).
        position: value of the long position.
        var, es: ``var[h][level]`` in currency. pnl: ``pnl[h]`` P&L samples. Shape: (N,).
    """

    as_of: str
    levels: tuple[float, ...]
    horizons: tuple[int, ...]
    position: float
    var: dict[int, dict[float, float]]
    es: dict[int, dict[float, float]]
    pnl: dict[int, np.ndarray] = field(repr=False)
    info: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        n = len(next(iter(self.pnl.values())))
        lines = [f"VaR / ES of a long position of {self.position:,.0f} as of {self.as_of} ({n} generated paths)",
                 f"{'horizon':>8} {'level':>6} {'VaR':>14} {'VaR %':>7} {'ES':>14} {'ES %':>7}"]
        for h in self.horizons:
            for lv in self.levels:
                v, e = self.var[h][lv], self.es[h][lv]
                lines.append(f"{h:>7}d {lv:>6.3f} {v:>14,.0f} {100 * v / self.position:>7.2f} {e:>14,.0f} "
                             f"{100 * e / self.position:>7.2f}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"as_of": self.as_of, "position": self.position, "info": self.info,
                "rows": [{"horizon": h, "level": lv, "VaR": self.var[h][lv], "ES": self.es[h][lv]}
                         for h in self.horizons for lv in self.levels]}

    def plot(self, path: str | Path) -> Path:
        """Histogram of the P&L per horizon with VaR and ES marked, as a PNG."""
        plt = _pyplot()
        k = len(self.horizons)
        fig, axes = plt.subplots(1, k, figsize=(5.5 * k, 4), squeeze=False)
        for ax, h in zip(axes[0], self.horizons, strict=True):
            ax.hist(self.pnl[h], bins=100, color="0.7", edgecolor="0.5", lw=0.3)
            for j, lv in enumerate(self.levels):
                ax.axvline(-self.var[h][lv], color=f"C{2 * j}", ls="--", label=f"VaR {100 * lv:g}% {self.var[h][lv]:,.0f}")
                ax.axvline(-self.es[h][lv], color=f"C{2 * j + 1}", ls="-", label=f"ES {100 * lv:g}% {self.es[h][lv]:,.0f}")
            ax.set_title(f"{h}-day P&L as of {self.as_of}")
            ax.set_xlabel("P&L")
            ax.legend(fontsize=8)
        return _save_png(fig, path)


def risk_report(model: Any, context: Any, levels: Sequence[float] = (0.99,), horizons: Sequence[int] = (1, 10),
                n_paths: int = 10_000, position: float = 1e6, sampler: str | None = None, steps: int | None = None,
                seed: int = 0, as_of: str = "", progress: bool = False) -> RiskReport:
    r"""VaR/ES of a long position from paths continuing ``context`` (recent log returns, oldest first).

    Over horizon h the P&L of a position V is V (e^{R_h} - 1), R_h = r_1 + ... + r_h on one path;
    all horizons use the same N paths.
    """
    levels = tuple(_check_level(lv) for lv in levels)
    if not horizons or min(horizons) < 1:
        raise InputError("horizons must be positive numbers of days")
    if not (position > 0 and math.isfinite(position)):
        raise InputError(f"position must be a positive amount, got {position}")
    ctx = np.asarray(context, dtype=float)
    paths = model.sample(n_paths, max(horizons), sampler=sampler, steps=steps, seed=seed, context=ctx,
                         progress=progress)  # (N, H)
    cum = np.cumsum(paths, axis=1)  # (N, H)
    pnl = {int(h): position * np.expm1(cum[:, h - 1]) for h in horizons}
    var = {h: {lv: float(value_at_risk(p, lv)) for lv in levels} for h, p in pnl.items()}
    es = {h: {lv: float(expected_shortfall(p, lv)) for lv in levels} for h, p in pnl.items()}
    info = {"n_paths": n_paths, "sampler": sampler or "model default", "steps": steps, "seed": seed, "context_days": int(ctx.size)}
    return RiskReport(as_of, levels, tuple(int(h) for h in horizons), float(position), var, es, pnl, info)
