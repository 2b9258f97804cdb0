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
              steps: int | None = None, progress: bool = False) -> float:
    """Set the model's state factors g (eq. (5)), residual scale k (eq. (4)) and stitched-chunk scale k_s
    (eq. (6)) from ``n_windows`` unconditional windows; returns k.

    g makes the decoded residuals have the training E z^2 in every volatility-state bin of the filter
    (``VolatilityFilter.state_z2``; none with one bin), then k gives them the training reaction moment M of
    eq. (4) (:attr:`VolatilityFilter.reaction`), then k_s gives one stitched chunk after each window that M.

    The windows are drawn once (``sampler``/``steps``: default the model's own; their own generator,
    seeded with ``seed``) with their start variances, then the stitched chunks; k is found by bisection,
    decoding k u and re-filtering for each trial k (exact: one window sees only its start state).
    Models without a volatility filter, or files without M, keep k = 1 and no g or k_s.

    Raises:
        InputError: ``n_windows`` is not a positive integer.
    """
    model.residual_scale, model.calibrated_for, model.state_factors, model.stitch_scale = 1.0, None, None, None
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
    k, g = estimate_calibration(model, u, var0)
    # eq. (6): one stitched chunk after each window, given its last stitch_context days and the state (k, g) gives
    _, s2 = f.filter(f.unfilter(model.transform.inverse(k * u), var0, g), var0)  # (n, L + 1)
    u2 = model.sample_model_space(1, model.window - model.config.stitch_context, context_u=u, var=s2, sampler=sampler,
                                  steps=steps, generator=gen, progress=progress)[:, 0]  # (n, L - C)
    ks = estimate_scale(model, k * u2, s2[:, -1], g, *STITCH_RANGE)
    model.residual_scale, model.calibrated_for = k, model.resolve_sampler(sampler, steps)
    model.state_factors, model.stitch_scale = g, ks
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


def fit_state_factors(model: DiffusionModel, z: np.ndarray, var0: np.ndarray) -> np.ndarray | None:
    """g of eq. (5) for generated residual windows z with start variances var0, by fixed-point iteration:
    g_b <- g_b sqrt(target_b / E[(g z)^2 | bin b]) on the re-filtered states. ``None`` with one bin.
    Shape: z (n, L), var0 (n,) -> (bins,)."""
    f = model.vol_filter
    if not f.state_edges or len(f.state_z2) != len(f.state_edges) + 1:
        return None
    target, g = np.asarray(f.state_z2), np.ones(len(f.state_z2))
    for _ in range(STATE_ITERS):
        zz, s2 = f.filter(f.unfilter(z, var0, g), var0)  # the scaled residuals and their states, (n, L)
        b = f.state_bin(s2[:, :-1])
        for j in range(len(g)):
            if np.sum(b == j) >= STATE_MIN_DAYS:
                g[j] *= math.sqrt(target[j] / np.mean(zz[b == j] ** 2))
        g = np.clip(g, *STATE_RANGE)
    return g
