r"""The calibration by start state and day range of a window, eq. (7) of :mod:`findiffusion.calibration`.

Short-dated options see a window's first days, mostly through its start state, and the network's width error there
depends on both. The first window of an unconditional path gets one factor per start-state group j (quantiles of the
training start variances) and day range i (days 1-5, 6-21, 22-63, 64-L: ``START_CUTS``),

(7)  z_t -> c_{j(sigma^2_0), i(t)} z_t,   c such that  E[x_t^2 | j, i] = E_train[x_t^2 | j, i],

by fixed-point iteration with k and g held (each pass re-runs eq. (3) of the filter, since c moves the states). What
x is, is the ``moment`` of the targets:

* ``"z2"`` (the default, sessions 25-35): x = z, the filter residuals. Groups at ``START_QUANTILES``.
* ``"r2"``: x = r = m_t + sigma_t z_t, the decoded returns (groups at ``START_QUANTILES_R2``, which split off the top
  1 % of starts). The filter carries a wider day into the later days' variance, so matching the residuals' width
  leaves the *returns'* width wrong wherever the states the network's days produce differ from the training ones:
  on the 128-day Heston model, after the top 5 % of starts, E r^2 over days 22-63 was 6-15 % and over days 64-128
  13-32 % short while E z^2 was right to a few % (bench/start_strata.py, docs/pricing.md, session 39). The step is
  damped, c <- c (target / E x^2)^(1/4), since a full step overshoots through the filter.

The targets are every window of the training series, grouped by the filter variance on its first day
(:func:`start_targets`: fitted with the model for ``"z2"``, or computed from the training returns).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from findiffusion.errors import InputError

if TYPE_CHECKING:
    from findiffusion.model import DiffusionModel
    from findiffusion.volatility import VolatilityFilter

#: start-state groups (quantiles of the training start variances) of the two moments, and the day-range cuts
START_QUANTILES, START_QUANTILES_R2 = (0.2, 0.4, 0.6, 0.8, 0.95), (0.2, 0.4, 0.6, 0.8, 0.95, 0.99)
START_CUTS = (5, 21, 63)
#: what eq. (7) matches: the residuals' E z^2 or the decoded returns' E r^2, and the damping of each one's step
MOMENTS, DAMPING = ("z2", "r2"), {"z2": 1.0, "r2": 0.5}
#: the start-state groups of each moment
MOMENT_QUANTILES = {"z2": START_QUANTILES, "r2": START_QUANTILES_R2}
#: passes of the fixed-point iteration, generated days a cell needs to be rescaled, range of c (as g of eq. (5))
START_ITERS, START_MIN_DAYS, START_RANGE = 12, 100, (0.5, 2.0)


@dataclass(frozen=True)
class StartTargets:
    """Training E z^2 (or E r^2) by start-state group and day range of a window, the targets of eq. (7).

    Attributes:
        edges: interior edges of the start-state groups, start variance sigma^2_0 in units of the filter's long-run
            variance v (group j holds edges[j-1] <= sigma^2_0 / v < edges[j]).
        cuts: interior day cuts of the ranges (range i holds days cuts[i-1] <= t < cuts[i], 0-based).
        z2: the training moment per group and range: E z^2 of the residuals, or E r^2 of the returns with
            ``moment`` "r2". Shape: (groups, ranges).
        moment: "z2" or "r2" (:data:`MOMENTS`).
    """

    edges: tuple[float, ...]
    cuts: tuple[int, ...]
    z2: tuple[tuple[float, ...], ...]
    moment: str = "z2"

    def __post_init__(self) -> None:
        ok = (all(math.isfinite(e) and e > 0 for e in self.edges) and list(self.edges) == sorted(set(self.edges))
              and all(isinstance(c, int) and c > 0 for c in self.cuts) and list(self.cuts) == sorted(set(self.cuts))
              and len(self.z2) == len(self.edges) + 1
              and all(len(row) == len(self.cuts) + 1 and all(math.isfinite(v) and v > 0 for v in row)
                      for row in self.z2))
        if not ok:
            raise InputError("start targets need increasing positive edges and cuts and one positive E z^2 per "
                             f"group and range, got edges {self.edges}, cuts {self.cuts}, z2 {self.z2}")
        check_moment(self.moment, "the moment of start targets")

    @property
    def shape(self) -> tuple[int, int]:
        """(groups, ranges)."""
        return len(self.edges) + 1, len(self.cuts) + 1

    def group(self, var0_over_v: np.ndarray) -> np.ndarray:
        """Start-state group of start variances in units of v. Shape: any -> the same (ints)."""
        return np.searchsorted(np.asarray(self.edges, dtype=float), np.asarray(var0_over_v, dtype=float), side="right")

    def day_range(self, days: int) -> np.ndarray:
        """Day range of each day 0 .. days - 1. Shape: (days,)."""
        return np.searchsorted(np.asarray(self.cuts), np.arange(days), side="right")

    def to_dict(self) -> dict[str, Any]:
        return {"edges": list(self.edges), "cuts": list(self.cuts), "z2": [list(row) for row in self.z2],
                "moment": self.moment}

    @classmethod
    def from_dict(cls, d: Any) -> StartTargets:
        """From :meth:`to_dict`'s form (files written before the moment was stored hold E z^2). Raises InputError on
        anything else."""
        try:
            return cls(tuple(float(v) for v in d["edges"]), tuple(int(v) for v in d["cuts"]),
                       tuple(tuple(float(v) for v in row) for row in d["z2"]), str(d.get("moment", "z2")))
        except (AttributeError, KeyError, TypeError, ValueError):
            raise InputError(f"start targets must be {{'edges', 'cuts', 'z2'}} lists, got {d!r}") from None


def filtered_training(model: DiffusionModel, returns: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    """The model's filter run over the whole training series: (z, sigma^2), as :meth:`VolatilityFilter.filter`
    returns them; ``what`` starts the error message. Raises InputError without an active filter or with fewer
    than two windows of finite returns. Shape: returns (T,) -> (T,), (T + 1,)."""
    f, L = model.vol_filter, model.window
    if not f.active:
        raise InputError(f"{what} a model with a volatility filter")
    r = np.asarray(returns, dtype=float).ravel()
    if len(r) < 2 * L or not np.isfinite(r).all():
        raise InputError(f"{what} at least {2 * L} finite training returns (two windows), got {len(r)}; pass the "
                         "series the model was fitted on")
    return f.filter(r)


def check_moment(moment: str, name: str) -> None:
    """Raise InputError unless ``moment`` (called ``name`` in the message) is one of :data:`MOMENTS`."""
    if moment not in MOMENTS:
        raise InputError(f"{name} is one of {', '.join(MOMENTS)} (eq. (7) matches the residuals' E z^2 or the "
                         f"decoded returns' E r^2), got {moment!r}")


def start_targets(model: DiffusionModel, returns: np.ndarray, moment: str = "z2",
                  quantiles: tuple[float, ...] | None = None, cuts: tuple[int, ...] = START_CUTS) -> StartTargets:
    """The targets of eq. (7) from the training returns: the model's filter run over the whole series gives the
    residuals z_t and variances sigma^2_t, then :func:`moment_targets`.

    Raises:
        InputError: an unknown moment, no active filter, or a series shorter than two windows. Shape: returns (T,).
    """
    check_moment(moment, "the moment of eq. (7)")
    z, s2 = filtered_training(model, returns, "start-state targets need")  # (T,), (T + 1,)
    return moment_targets(moment, z, returns, s2 / model.vol_filter.var, model.window, quantiles, cuts)


def moment_targets(moment: str, z: np.ndarray, returns: np.ndarray, h: np.ndarray, window: int,
                   quantiles: tuple[float, ...] | None = None, cuts: tuple[int, ...] = START_CUTS) -> StartTargets:
    """:func:`start_targets_from` for ``moment`` on a filtered training series: z (``moment`` "z2") or the returns
    ("r2"), with the moment's groups (:data:`MOMENT_QUANTILES`) unless ``quantiles`` are given.
    Shape: z, returns (T,), h (T + 1,)."""
    x = z if moment == "z2" else np.asarray(returns, dtype=float).ravel()
    q = MOMENT_QUANTILES[moment] if quantiles is None else quantiles
    return start_targets_from(x, h, window, q, cuts, moment)


def start_targets_from(x: np.ndarray, h: np.ndarray, window: int, quantiles: tuple[float, ...] = START_QUANTILES,
                       cuts: tuple[int, ...] = START_CUTS, moment: str = "z2") -> StartTargets:
    """The targets of eq. (7) from the filter residuals z_t (or the returns r_t, ``moment`` "r2") and variances
    h_t = sigma^2_t / v of the training series (as :meth:`VolatilityFilter.filter` returns them, the variances divided
    by v): every window start s (s = 0 .. T - L, as in training) is grouped by h_s at ``quantiles`` of those start
    variances (tied or empty groups merged: one group when the variance does not move), and E x^2 is averaged over the
    days s + a .. s + b - 1 of each range [a, b) (cuts beyond the window dropped) of the group's windows (exact, by
    cumulative sums). Shape: x (T,), h (T + 1,)."""
    L = window
    n = len(x) - L + 1  # window starts
    v0 = h[:n]  # (n,) start variance of every window, units of v
    edges = list(np.unique(np.quantile(v0, quantiles)))  # tied quantiles (a variance that barely moves) merge
    while True:
        grp = np.searchsorted(np.asarray(edges), v0, side="right")  # (n,) group of every start
        empty = [j for j in range(len(edges) + 1) if not np.any(grp == j)]  # e.g. below the lowest edge
        if not empty:
            break
        edges.pop(min(empty[0], len(edges) - 1))  # merge the empty group into a neighbour
    bounds = [0, *[c for c in cuts if c < L], L]
    cum = np.concatenate([[0.0], np.cumsum(np.asarray(x, dtype=float) ** 2)])  # (T + 1,)
    s = np.arange(n)
    z2 = []
    for j in range(len(edges) + 1):
        sj = s[grp == j]
        z2.append(tuple(float((cum[sj + b] - cum[sj + a]).sum() / (len(sj) * (b - a)))
                        for a, b in zip(bounds[:-1], bounds[1:], strict=True)))
    return StartTargets(tuple(float(e) for e in edges), tuple(bounds[1:-1]), tuple(z2), moment)


def start_rows(c: np.ndarray | tuple[tuple[float, ...], ...], targets: StartTargets, var0_over_v: np.ndarray,
               days: int, window: int) -> np.ndarray:
    """The factor of eq. (7) of every day of unconditional paths with start variances ``var0_over_v`` (units of v):
    c of the path's start group and the day's range on days 0 .. window - 1, 1 after (stitched chunks).
    Shape: var0_over_v (n,) -> (n, days)."""
    c = np.asarray(c, dtype=float)
    m = np.ones((np.size(var0_over_v), days))  # (n, days)
    w = min(days, window)
    m[:, :w] = c[targets.group(np.ravel(var0_over_v))][:, targets.day_range(w)]  # (n, groups->ranges) -> (n, w)
    return m


def fit_start_factors(targets: StartTargets, f: VolatilityFilter, z: np.ndarray, var0: np.ndarray,
                      g: np.ndarray | tuple[float, ...] | None) -> np.ndarray:
    """c of eq. (7) for generated residual windows z (k applied) with start variances var0, decoded by the filter f
    with state factors g (Shape (bins,) or (L, bins)), by fixed-point iteration: c_ji <- c_ji (target_ji / E[x^2 |
    group j, range i])^(d / 2) on the residuals (x = z) or returns (x = r) decoded with g and c, d = ``DAMPING`` of
    the targets' moment (each pass re-runs (3), since c moves the states and so g's bins).
    Shape: z (n, L), var0 (n,) -> (groups, ranges)."""
    target = np.asarray(targets.z2)  # (groups, ranges)
    grp, rng = targets.group(np.asarray(var0) / f.var), targets.day_range(z.shape[-1])  # (n,), (L,)
    power = DAMPING[targets.moment] / 2
    c = np.ones(targets.shape)
    for _ in range(START_ITERS):
        r = f.unfilter(z * c[grp][:, rng], var0, g)  # (n, L)
        x = r if targets.moment == "r2" else f.filter(r, var0)[0]  # the decoded returns or residuals, (n, L)
        for j in range(targets.shape[0]):
            xj = x[grp == j]  # (n_j, L)
            for i in range(targets.shape[1]):
                cell = xj[:, rng == i]
                if cell.size >= START_MIN_DAYS:
                    c[j, i] *= (target[j, i] / np.mean(cell ** 2)) ** power
        c = np.clip(c, *START_RANGE)
    return c
