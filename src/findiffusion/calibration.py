r"""The residual calibration of a fitted model: k, g and k_s of eqs. (4)-(6).

With a volatility filter, r_t = m + sigma_t z_t and the variance recursion (3) of
:class:`~findiffusion.volatility.VolatilityFilter` is driven by the *generated* residuals. Taking
expectations of (3), its long-run level is

(4)  E sigma^2 = omega / (1 - alpha M - beta),   M = E[sigma^2 (1 - a sgn z) min(z^2, c^2)] / E[sigma^2]
     (a the filter's asymmetry, 0 by default),

so with alpha = 0.03 and beta = 0.965 (persistence 0.995) an error in the generated residuals'
M is multiplied by alpha / (1 - alpha - beta) = 6: residuals 3 % too wide (variance) give paths whose
variance drifts about 20 % too high over a year. M weights each residual by its variance because a
residual that comes with a large sigma^2 moves the recursion more; matching E z^2 alone is not
enough when the network does not reproduce how residuals shrink or grow with sigma^2 (on simulated
GBM, corr(log sigma^2, z^2) is -0.12 in the data and -0.03 in the samples). :func:`calibrate` sets
k so that the decoded generated residuals have the training M (``VolatilityFilter.reaction``),
which puts the generated paths' long-run level (4) at the training one; the shape of the residuals
(tails, dependence) is unchanged. With a fitted alpha = 0 (a market without volatility clustering,
eq. (3a) of the filter) sigma is constant and matching M sets the paths' variance directly.

**State-binned calibration.** One k fixes the level but not how the residuals' width depends on
the volatility state: on the S&P 500 the training residuals have E z^2 = 0.81 on the calmest half of
the days and 0.96-1.11 on the most volatile 5 %, while the network's are 0.87 and 0.96-1.07 (it sees
few independent calm or crisis episodes, and none of them day by day). So, before k, :func:`calibrate`
scales day t's generated residual by a factor of its filter state's bin b(t) (bins at the
``state_quantiles`` of the training variances, :class:`~findiffusion.volatility.VolatilityFilter`),

(5)  z_t -> g_{b(t)} z_t,   g chosen so that E[z_t^2 | b(t) = b] = E_train[z_t^2 | b(t) = b] for every b,

by fixed-point iteration (each pass re-runs (3), since g moves the states). Then k restores M exactly.
With alpha = 0 there is one bin and (5) is the old single k.

**Stitched chunks.** Paths longer than the window continue chunk by chunk, each chunk generated given the
``stitch_context`` days before it, and such a chunk's residuals need not have the width of a first window's:
on the default S&P 500 model their M was 2.4 % below the training M, and by (4) two-year paths' second-year
volatility fell to 0.190 against the data's 0.202 (k_s = 1.012 restores 0.203; on the 128-day Heston model
k_s = 1.0006; bench/stitch_scale.py, docs/pricing.md). So :func:`calibrate` also draws one stitched chunk after
each calibration window and sets

(6)  z_t -> k_s z_t on the days of stitched chunks (with k and g),   k_s such that those days have the training M,

applied to unconditional paths only (draws from a real context get k alone, as they get no g).

**By position in the window** (``by_position``, off by default). The network's residual width after a given
start state also depends on the day of the window: on the 128-day Heston model, after the 5 % most volatile
starts, E z^2 was too small on days 6-63 and too large on days 64-128 (bench/residual_profile.py), and one g
pooled over all days averages the two errors. With ``by_position`` (5) is solved separately for the first
``stitch_context`` days of a window (g) and for the rest (g_late); g_late also scales the days of stitched
chunks, which are the same positions of their windows.

k, g and k_s are estimates from a sample of windows, and their error does not average out over paths: every
path of the model carries it. Its spread falls as 1 / sqrt(n_windows). With 4000 windows it moved
out-of-the-money Heston prices by 1-3 % (sd); hence 20 000 by default (bench/calibration_noise.py).

The functions here take the model; :class:`~findiffusion.model.DiffusionModel` exposes them as methods
(``model.calibrate(...)``, ``model.estimate_calibration(...)``, ``model.estimate_scale(...)``).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import torch

from findiffusion.errors import InputError

if TYPE_CHECKING:
    from findiffusion.model import DiffusionModel

#: passes of the fixed-point iteration of eq. (5), generated days a bin needs to be rescaled, range of g
STATE_ITERS, STATE_MIN_DAYS, STATE_RANGE = 12, 100, (0.5, 2.0)
#: the range k of eq. (4) is searched in (a barely trained network can fall outside it), and that of k_s (6)
SCALE_RANGE, STITCH_RANGE = (0.25, 4.0), (0.5, 2.0)


def calibrate(model: DiffusionModel, n_windows: int = 20000, *, seed: int = 0, sampler: str | None = None,
              steps: int | None = None, progress: bool = False, by_position: bool = False) -> float:
    """Set the model's state factors g (eq. (5)), residual scale k (eq. (4)) and stitched-chunk scale k_s
    (eq. (6)) from ``n_windows`` unconditional windows; returns k.

    g makes the decoded residuals have the training E z^2 in every volatility-state bin of the filter
    (``VolatilityFilter.state_z2``; none with one bin), then k gives them the training reaction moment M of
    eq. (4) (:attr:`VolatilityFilter.reaction`), then k_s gives one stitched chunk after each window that M.

    The windows are drawn once (``sampler``/``steps``: default the model's own; their own generator,
    seeded with ``seed``) with their start variances, then the stitched chunks; k is found by bisection,
    decoding k u and re-filtering for each trial k (exact: one window sees only its start state).
    Models without a volatility filter, or files without M, keep k = 1 and no g or k_s. ``by_position``: g for
    the first ``stitch_context`` days of a window and ``state_factors_late`` for the rest and for stitched chunks.

    Raises:
        InputError: ``n_windows`` is not a positive integer.
    """
    model.residual_scale, model.calibrated_for, model.state_factors, model.stitch_scale = 1.0, None, None, None
    model.state_factors_late = None
    model.history.pop("calibration", None)
    f = model.vol_filter
    if not f.active or f.reaction is None:
        return 1.0
    if not isinstance(n_windows, int | np.integer) or isinstance(n_windows, bool) or n_windows < 1:
        raise InputError(f"n_windows must be a positive number of windows, got {n_windows}")
    gen = torch.Generator().manual_seed(seed)
    var0 = model.start_variance(n_windows, gen)  # (n,)
    u = model.sample_model_space(n_windows, model.window, var=var0, sampler=sampler, steps=steps,
                                 generator=gen, progress=progress)  # (n, L)
    C = model.config.stitch_context
    if by_position:
        gg = fit_state_factors(model, model.transform.inverse(u), var0, split=C)  # (2, bins) or None
        g, g_late = (None, None) if gg is None else (tuple(map(float, gg[0])), tuple(map(float, gg[1])))
        rows = factor_rows(g, g_late, model.window, C)  # (L, bins) or None
        k = estimate_scale(model, u, var0, rows)
    else:
        (k, g), g_late = estimate_calibration(model, u, var0), None
        rows = g
    # eq. (6): one stitched chunk after each window, given its last stitch_context days and the state (k, g) gives
    _, s2 = f.filter(f.unfilter(model.transform.inverse(k * u), var0, rows), var0)  # (n, L + 1)
    u2 = model.sample_model_space(1, model.window - C, context_u=u, var=s2, sampler=sampler,
                                  steps=steps, generator=gen, progress=progress)[:, 0]  # (n, L - C)
    ks = estimate_scale(model, k * u2, s2[:, -1], g if g_late is None else g_late, *STITCH_RANGE)
    model.residual_scale, model.calibrated_for = k, model.resolve_sampler(sampler, steps)
    model.state_factors, model.state_factors_late, model.stitch_scale = g, g_late, ks
    model.history["calibration"] = {"windows": int(n_windows), "seed": int(seed)}
    return k


def estimate_calibration(model: DiffusionModel, u: np.ndarray,
                         var0: np.ndarray) -> tuple[float, tuple[float, ...] | None]:
    """(k, g) of eqs. (4), (5) from generated unconditional windows u with start variances var0, as
    :func:`calibrate` estimates them (which draws the windows and sets the result). Shape: u (n, L), var0 (n,)."""
    g = fit_state_factors(model, model.transform.inverse(u), var0)  # eq. (5), None with one bin
    return estimate_scale(model, u, var0, g), None if g is None else tuple(float(v) for v in g)


def estimate_scale(model: DiffusionModel, u: np.ndarray, var0: np.ndarray, g: np.ndarray | tuple[float, ...] | None,
                   lo: float = SCALE_RANGE[0], hi: float = SCALE_RANGE[1]) -> float:
    """The scale k in [lo, hi] that gives generated model-space days u, decoded as k u with state factors g
    from start variances var0, the training reaction moment M (eq. (4)): bisection on M, which increases
    with k. Shape: u (n, D), var0 (n,)."""
    f = model.vol_filter

    def moment(k: float) -> float:  # M of the days decoded with scale k (and g)
        return f.reaction_moment(*f.filter(f.unfilter(model.transform.inverse(k * u), var0, g), var0))

    if moment(lo) >= f.reaction:  # a barely trained network can fall outside the range
        return lo
    if moment(hi) <= f.reaction:
        return hi
    for _ in range(40):  # bisection to ~1e-12 relative
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if moment(mid) < f.reaction else (lo, mid)
    return 0.5 * (lo + hi)


def fit_state_factors(model: DiffusionModel, z: np.ndarray, var0: np.ndarray,
                      split: int | None = None) -> np.ndarray | None:
    """g of eq. (5) for generated residual windows z with start variances var0, by fixed-point iteration:
    g_b <- g_b sqrt(target_b / E[(g z)^2 | bin b]) on the re-filtered states. ``None`` with one bin.
    ``split``: one g for days [0, split) of the windows and one for days [split, L), solved together (each pass
    re-runs (3) over the whole window). Shape: z (n, L), var0 (n,) -> (bins,), or (2, bins) with ``split``."""
    f = model.vol_filter
    if not f.state_edges or len(f.state_z2) != len(f.state_edges) + 1:
        return None
    L = z.shape[-1]
    if split is not None and not 0 < split < L:
        raise InputError(f"split must be a day strictly inside the {L}-day windows, got {split}")
    groups = [np.arange(L)] if split is None else [np.arange(split), np.arange(split, L)]  # days of each g
    target, g = np.asarray(f.state_z2), np.ones((len(groups), len(f.state_z2)))
    pos = np.zeros(L, dtype=int) if split is None else (np.arange(L) >= split).astype(int)  # group of each day
    for _ in range(STATE_ITERS):
        zz, s2 = f.filter(f.unfilter(z, var0, g[pos]), var0)  # the scaled residuals and their states, (n, L)
        b = f.state_bin(s2[:, :-1])  # (n, L)
        for i, days in enumerate(groups):
            zi, bi = zz[:, days], b[:, days]
            for j in range(g.shape[1]):
                if np.sum(bi == j) >= STATE_MIN_DAYS:
                    g[i, j] *= math.sqrt(target[j] / np.mean(zi[bi == j] ** 2))
        g = np.clip(g, *STATE_RANGE)
    return g[0] if split is None else g


def factor_rows(g: tuple[float, ...] | None, g_late: tuple[float, ...] | None, days: int,
                split: int) -> np.ndarray | None:
    """The state factors of each day of an unconditional path (eq. (5)): g for days [0, split) and ``g_late`` (or g
    when there is none) from day ``split`` on, the later positions of the first window and every stitched chunk.
    ``None`` without g. Shape: (days, bins)."""
    if g is None:
        return None
    rows = np.tile(np.asarray(g, dtype=float), (days, 1))  # (days, bins)
    if g_late is not None:
        rows[split:] = np.asarray(g_late, dtype=float)
    return rows
