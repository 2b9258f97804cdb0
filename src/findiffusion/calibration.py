r"""The residual calibration of a fitted model: k, g and k_s of eqs. (4)-(6), and the options c (7), the shock map (8),
the decoding asymmetry (9) and the view at the stitch (10).

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

**By start state and day range** (``by_start``, off by default). Short-dated options see a window's first days
and mostly through its start state, and the network's residual width there depends on both: on the 128-day Heston
model, after the 5 % most volatile starts, E z^2 of days 6-63 was 3-4 % below the training windows' while g, pooled
over all days, put it right on average (bench/residual_profile.py). With ``by_start``, after k and g, the first
window of an unconditional path gets one more factor per start-state group j (quantiles ``START_QUANTILES`` of the
training start variances) and day range i (days 1-5, 6-21, 22-63, 64-L: ``START_CUTS``),

(7)  z_t -> c_{j(sigma^2_0), i(t)} z_t,   c such that E[z_t^2 | j, i] = E_train[z_t^2 | j, i],

by fixed-point iteration with k and g held (each pass re-runs (3)). The targets are the training residuals of every
window of the training series, grouped by the filter variance on its first day
(:func:`~findiffusion.startstate.start_targets`: fitted with the model, or computed from the training returns passed
to :func:`calibrate`). With ``start_moment="r2"`` c matches the decoded *returns'* E r^2 instead (the filter carries
a wider day into the later days' variance, so residuals of the right width can still give returns that are not;
findiffusion/startstate.py), fitted after a_g of eq. (9) with a_g and g held, then k again (fitted before a_g and
again in each of its passes, it moved a_g from 0.926 to 0.953 on the 128-day Heston model and the one-year calls
0.3-1 point richer; session 40). Stitched chunks and draws from a real context get no c; k_s (6) is then estimated
on chunks that follow c-scaled windows.

**Shock correlation** (``by_correlation``, off by default). Matching each day's width leaves how the days move
together to the network, and it misses a small but priced part of it: on the 128-day Heston model the shock parts
a_t = sigma_t z_t of the first 21 days correlate slightly positively in the training windows (variance of their sum
1.7 % above the sum of their variances) and slightly negatively in the generated ones (-2.2 %), so 21-day sums are
about 2 % too narrow and the 21-day wings 5-6 % cheap (docs/pricing.md). With ``by_correlation``, after k, g and c,
the first window of an unconditional path is recoloured by a lower-triangular (causal) map,

(8)  z -> mu + D T D^{-1} (z - mu),   T = chol(R_train) chol(R_gen)^{-1},

where R_train is the correlation matrix of the shock parts a_t over the days of every window of the training series
(:func:`shock_correlation`), R_gen that of the generated windows' decoded shock parts, and mu, D the mean and sd of
the generated residuals by day of the window. The recoloured standardized residuals have the training correlation
and keep unit variance, so each day keeps its width (to the difference between the correlation of z and of sigma z)
and day t depends only on days 1..t. The map acts on z while its target is of sigma z, and sigma moves with the
recoloured days, so it is solved in ``SHOCK_ITERS`` composed rounds, each on the days the rounds before recoloured.
Nor does it keep the reaction moment M of eq. (4) that k was fitted to (on the 128-day Heston model the map fitted
once after k raised the filter state at the window's end in a probe, and the one-year wings came out 2-3 points
rich; session 29, docs/pricing.md), so g and k are then fitted again on the recoloured days and the map again on
the result, ``SHOCK_PASSES`` rounds, k last: the recoloured calibration windows have the training M exactly.
Stitched chunks and draws from a real context get no map; k_s (6) is then estimated on chunks that follow
recoloured windows.

**Leverage** (``by_leverage``, off by default). With rho < 0 almost all of the skewness of multi-day returns is
leverage, 3 sum_{s<t} E x_s x_t^2 (an earlier fall with a later square; part (6b) of
:func:`findiffusion.stylized_facts.skew_parts`), and a generated window gets it from two places: the filter's reaction
to falls when its residuals are decoded (a of eq. (3)) and how the network's later residuals depend on earlier ones.
On the 128-day Heston model the generated windows' leverage part was 5-8 % too strong on every block of day pairs
(docs/pricing.md, session 32), which thins the upper tail of multi-day sums. With ``by_leverage`` the first window
of unconditional paths is decoded with its own asymmetry a_g,

(9)  a_g such that the leverage part of the skewness of L-day sums of the decoded windows equals the training
     windows' (:func:`leverage_target`: every window of the training returns, evenly spaced when capped),

solved by bisection on [-1, 1] with k, g (and c) held, then g and k fitted again at a_g, ``LEVERAGE_PASSES`` rounds,
k last, so the windows keep the training M of eq. (4) *at* a_g (M weights falls and rises by 1 - a_g sgn z). The
training residuals are still filtered with the fitted a; stitched chunks and draws from a real context decode with
it, k_s (6) estimated so. The stitched chunks start from the fitted filter's view of the first window's returns, the
state a real context of those returns would give (the network was trained on contexts filtered so). (Decoding the
stitched chunks with a_g too made one-year calls 1.5-3.5 points rich on the 128-day Heston model: the network's
excess leverage is a property of the window it was measured on.) Needs the training returns; before the shock map
(8), which is then fitted on windows decoded with a_g.

**The view at the stitch** (``by_stitch``, off by default): the stitched days of unconditional paths start from the
variance a filter with asymmetry a_s gives after the first window, and a_s and k_s are solved so that the pairs of
days across the stitch carry the training leverage and the stitched days the training variance, eq. (10) of
:mod:`findiffusion.stitching` (k_s then has that target instead of eq. (6)'s M). Needs the training returns.

k, g and k_s are estimates from a sample of windows, and their error does not average out over paths: every
path of the model carries it. Its spread falls as 1 / sqrt(n_windows). With 4000 windows it moved
out-of-the-money Heston prices by 1-3 % (sd); hence 20 000 by default (bench/calibration_noise.py).

The functions here take the model; :class:`~findiffusion.model.DiffusionModel` exposes them as methods
(``model.calibrate(...)``, ``model.estimate_calibration(...)``, ``model.estimate_scale(...)``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from findiffusion import stitching
from findiffusion.errors import InputError
from findiffusion.startstate import check_moment, filtered_training, fit_start_factors, start_rows, start_targets
from findiffusion.stylized_facts import skew_parts

if TYPE_CHECKING:
    from findiffusion.model import DiffusionModel
    from findiffusion.volatility import VolatilityFilter

#: passes of the fixed-point iteration of eq. (5), generated days a bin needs to be rescaled, range of g
STATE_ITERS, STATE_MIN_DAYS, STATE_RANGE = 12, 100, (0.5, 2.0)
#: the range k of eq. (4) is searched in (a barely trained network can fall outside it), and that of k_s (6)
SCALE_RANGE, STITCH_RANGE = (0.25, 4.0), (0.5, 2.0)

#: training windows :func:`shock_correlation` averages over at most (evenly spaced starts), and per chunk
SHOCK_MAX_WINDOWS, SHOCK_CHUNK = 200_000, 20_000
#: passes of eq. (8) with g and k re-estimated on the recoloured days (the map moves the reaction moment M of eq. (4))
SHOCK_PASSES = 2
#: rounds of eq. (8) itself, each on the days recoloured by the rounds before (the maps compose)
SHOCK_ITERS = 3
#: passes of eq. (9): a_g solved with g and k held, then g and k re-estimated at it (k last)
LEVERAGE_PASSES = 2
#: bisection steps of eq. (9) on [-1, 1] (2^-30: far below the asymmetry's sampling error)
LEVERAGE_BISECTIONS = 30


def shock_correlation(model: DiffusionModel, returns: np.ndarray, max_windows: int = SHOCK_MAX_WINDOWS) -> np.ndarray:
    """The target of eq. (8): the correlation matrix of the shock parts a_t = sigma_t z_t by day of a window, over the
    training series' windows (the model's filter run over the whole series, as in training; at most ``max_windows``
    evenly spaced starts, all of them when there are fewer).

    Raises:
        InputError: no active filter, or a series shorter than two windows. Shape: returns (T,) -> (L, L).
    """
    L = model.window
    z, s2 = filtered_training(model, returns, "the shock correlation of eq. (8) needs")  # (T,), (T + 1,)
    a = np.sqrt(s2[:-1]) * z  # (T,) the shock part of every day
    starts = _window_starts(len(a) - L + 1, max_windows)
    wins = np.lib.stride_tricks.sliding_window_view(a, L)  # (n, L), a view
    total, cross = np.zeros(L), np.zeros((L, L))
    for i in range(0, len(starts), SHOCK_CHUNK):  # sums by chunk: 200 000 x 128 windows would be 200 MB at once
        w = wins[starts[i:i + SHOCK_CHUNK]]  # (chunk, L)
        total += w.sum(0)
        cross += w.T @ w
    return _correlation(cross / len(starts) - np.outer(total, total) / len(starts) ** 2)


def _window_starts(n: int, max_windows: int) -> np.ndarray:
    """At most ``max_windows`` evenly spaced starts among ``n`` windows (all of them when there are fewer): the training
    windows of the targets of eqs. (8) and (9). Shape: (<= max_windows,)."""
    return np.arange(0, n, max(1, -(-n // max_windows)))


def _correlation(cov: np.ndarray) -> np.ndarray:
    """Covariance -> correlation. Shape: (L, L) -> (L, L)."""
    sd = np.sqrt(np.diag(cov))
    return cov / np.outer(sd, sd)


def fit_shock_map(model: DiffusionModel, z: np.ndarray, var0: np.ndarray, g: np.ndarray | tuple[float, ...] | None,
                  target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(D T D^{-1}, mu) of eq. (8) for generated residual windows z (k and c applied) with start variances var0 and
    state factors g: R_gen is the correlation of their decoded shock parts sigma_t z_t, mu and D the mean and sd of z
    by day; in ``SHOCK_ITERS`` rounds, each fitted on z recoloured by the rounds before and composed with them (a
    product of lower-triangular maps is one). Shape: z (n, L), var0 (n,), target (L, L) -> (L, L) lower triangular,
    (L,)."""
    f, L = decoding_filter(model), z.shape[-1]
    if np.shape(target) != (L, L):
        raise InputError(f"the shock correlation target must be {L} x {L} (the window), got {np.shape(target)}")
    mu, m = z.mean(0), np.eye(L)  # (L,), (L, L)
    try:
        c_target = np.linalg.cholesky(np.asarray(target, dtype=float))
        for _ in range(SHOCK_ITERS):  # the map acts on z but the target is of sigma z, and sigma moves with z
            zm = apply_shock_map(z, m, mu)  # (n, L)
            zz, s2 = f.filter(f.unfilter(zm, var0, g), var0)  # the decoded residuals and their states
            a = np.sqrt(s2[:, :-1]) * zz  # (n, L)
            a = a - a.mean(0)
            t = c_target @ np.linalg.inv(np.linalg.cholesky(_correlation(a.T @ a / len(a))))
            sd = zm.std(0)  # (L,)
            m = np.tril(sd[:, None] * t / sd[None, :]) @ m  # the maps compose (mu is kept: E zm = mu)
    except np.linalg.LinAlgError:
        raise InputError("a shock correlation matrix is not positive definite: calibrate on more windows") from None
    return m, mu


def check_shock_map(m: np.ndarray | None, mu: np.ndarray | None, window: int) -> None:
    """Raise InputError unless the map and day means of eq. (8) are both ``None`` or come together as a
    ``window`` x ``window`` finite lower-triangular matrix with a positive diagonal and ``window`` finite means."""
    L = window
    if (m is None) != (mu is None) or m is not None and not (
            np.shape(m) == (L, L) and np.shape(mu) == (L,) and np.isfinite(m).all() and np.isfinite(mu).all()
            and np.all(np.diag(m) > 0) and not np.triu(m, 1).any()):
        raise InputError(f"shock_map and shock_mean must come together: a {L} x {L} lower-triangular matrix with a "
                         f"positive diagonal and {L} day means (eq. (8)); got shapes {np.shape(m)}, {np.shape(mu)}")


def apply_shock_map(z: np.ndarray, m: np.ndarray, mu: np.ndarray) -> np.ndarray:
    """Eq. (8) on the first min(days, L) days of residual paths: mu + M (z - mu), the rest unchanged (a
    lower-triangular M maps the first d days by its leading d x d block). Shape: z (n, days) -> (n, days)."""
    d = min(z.shape[-1], len(mu))
    out = z.copy()
    out[..., :d] = mu[:d] + (z[..., :d] - mu[:d]) @ m[:d, :d].T
    return out


def decoding_filter(model: DiffusionModel) -> VolatilityFilter:
    """The filter the calibration decodes generated days with: the fitted one, with the asymmetry a_g of eq. (9) when
    the model holds one (:attr:`~findiffusion.model.DiffusionModel.leverage_asym`)."""
    f = model.vol_filter
    return f if model.leverage_asym is None else dataclasses.replace(f, asym=model.leverage_asym)


def leverage_target(model: DiffusionModel, returns: np.ndarray, max_windows: int = SHOCK_MAX_WINDOWS) -> float:
    """The target of eq. (9): the leverage part of the skewness of L-day sums (:func:`skew_parts`) over the windows of
    the training returns (at most ``max_windows`` evenly spaced starts, all of them when there are fewer).

    Raises:
        InputError: a series shorter than two windows or with NaN. Shape: returns (T,) -> float.
    """
    r, L = np.asarray(returns, dtype=float).ravel(), model.window
    if len(r) < 2 * L or not np.isfinite(r).all():
        raise InputError(f"the leverage target of eq. (9) needs at least two windows ({2 * L} days) of finite training "
                         f"returns, got {len(r)} days: pass the series the model was fitted on")
    starts = _window_starts(len(r) - L + 1, max_windows)
    return skew_parts(np.lib.stride_tricks.sliding_window_view(r, L)[starts])["leverage"]


def fit_leverage_asym(model: DiffusionModel, z: np.ndarray, var0: np.ndarray, g: np.ndarray | tuple[float, ...] | None,
                      target: float) -> float:
    """a_g of eq. (9) for generated residual windows z (k, c applied) with start variances var0 and state factors g,
    by bisection on [-1, 1]: a stronger reaction to falls makes the leverage part more negative. A target beyond what
    [-1, 1] reaches gives the end that comes closest. Shape: z (n, L), var0 (n,)."""
    f = model.vol_filter

    def leverage(a: float) -> float:  # the leverage part of the L-day sums decoded with asymmetry a
        return skew_parts(dataclasses.replace(f, asym=a).unfilter(z, var0, g))["leverage"]

    # leverage(-1) > leverage(1) for a market whose falls raise volatility
    return bisect(leverage, -1.0, 1.0, target, increasing=False, steps=LEVERAGE_BISECTIONS)


def bisect(fn: Callable[[float], float], lo: float, hi: float, target: float, *, increasing: bool,
           steps: int) -> float:
    """x in [lo, hi] with fn(x) = target for a monotone fn, by ``steps`` halvings (the nearer end when the target is
    beyond both): k and k_s of eqs. (4), (6), a_g of (9), a_s and k_s of (10)."""
    sign = 1.0 if increasing else -1.0
    if sign * (fn(lo) - target) >= 0:
        return lo
    if sign * (fn(hi) - target) <= 0:
        return hi
    for _ in range(steps):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if sign * (fn(mid) - target) < 0 else (lo, mid)
    return 0.5 * (lo + hi)


def calibrate(model: DiffusionModel, n_windows: int = 20000, *, seed: int = 0, sampler: str | None = None,
              steps: int | None = None, progress: bool = False, by_position: bool = False, by_start: bool = False,
              returns: np.ndarray | None = None, by_correlation: bool = False, by_leverage: bool = False,
              by_stitch: bool = False, start_moment: str = "z2") -> float:
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
    ``by_start``: then the factors c of eq. (7) (``start_factors``) by start state and day range of a window, with
    the targets ``model.start_targets`` (:func:`start_targets`); ``returns``: the training returns to compute
    those targets from first (models fitted before they were stored with the fit); ``start_moment``: what c matches,
    the residuals' E z^2 ("z2", the targets stored with a fit) or the decoded returns' E r^2 ("r2", needs ``returns``
    or targets of that moment; c is then fitted after a_g of eq. (9) and g, and followed by k, so that k comes
    last). ``by_leverage``: then the
    decoding asymmetry of eq. (9) (``leverage_asym``), its target from ``returns`` (required). ``by_correlation``:
    then the map of eq. (8) (``shock_map``, ``shock_mean``), its target from ``returns`` (required). ``by_stitch``:
    last, the view asymmetry a_s and k_s of eq. (10) (``stitch_asym``), their targets from ``returns`` (required).

    Raises:
        InputError: ``n_windows`` is not a positive integer, an unknown ``start_moment``, ``by_start`` without
            targets of that moment or ``returns``, or ``by_correlation``, ``by_leverage`` or ``by_stitch`` without
            ``returns``.
    """
    check_moment(start_moment, "start_moment")
    if returns is not None:
        model.start_targets = start_targets(model, returns, start_moment)
    if by_start and model.start_targets is None:
        raise InputError("this model holds no start-state targets (fitted before they were stored): pass the training "
                         "returns (calibrate(..., returns=r); findiffusion calibrate --by-start --data ...)")
    if by_start and model.start_targets.moment != start_moment:
        raise InputError(f"this model's start-state targets are of {model.start_targets.moment}, not {start_moment}: "
                         "pass the training returns (calibrate(..., returns=r); findiffusion calibrate --by-start "
                         f"--start-moment {start_moment} --data ...)")
    if by_correlation and returns is None:
        raise InputError("the shock correlation map of eq. (8) needs the training returns: calibrate(..., returns=r, "
                         "by_correlation=True); findiffusion calibrate --by-correlation --data ...")
    for on, what, flag in ((by_leverage, "decoding asymmetry of eq. (9)", "leverage"),
                           (by_stitch, "view at the stitch of eq. (10)", "stitch")):
        if on and returns is None:
            raise InputError(f"the {what} needs the training returns: calibrate(..., returns=r, by_{flag}=True); "
                             f"findiffusion calibrate --by-{flag} --data ...")
    model.start_factors, model.shock_map, model.shock_mean, model.leverage_asym = None, None, None, None
    model.stitch_asym = None
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
    g, g_late, rows = _state_factors(model, model.transform.inverse(u), var0, by_position)
    k = estimate_scale(model, u, var0, rows)
    z = model.transform.inverse(k * u)  # (n, L), the residuals before state factors
    c, m = None, 1.0
    returns_moment = by_start and start_moment == "r2"

    def start_pass(k: float, rows: Any) -> tuple[np.ndarray, np.ndarray, float]:  # eq. (7) with k and g held
        c = fit_start_factors(model.start_targets, decoding_filter(model), model.transform.inverse(k * u), var0, rows)
        m = start_rows(c, model.start_targets, var0 / f.var, model.window, model.window)  # (n, L)
        if returns_moment:  # then k again, so that the windows keep the training M of eq. (4)
            k = estimate_scale(model, u, var0, rows, post=lambda x: x * m)
        return c, m, k

    if by_start and not returns_moment:  # eq. (7) on E z^2, with k and g held
        c, m, k = start_pass(k, rows)  # (groups, ranges), (n, L)
        z = z * m
    if by_leverage:  # LEVERAGE_PASSES times: eq. (9) with k, g and c held, then g and k again at a_g (c held)
        target = leverage_target(model, returns)
        for _ in range(LEVERAGE_PASSES):
            model.leverage_asym = fit_leverage_asym(model, z, var0, rows, target)
            g, g_late, rows = _state_factors(model, model.transform.inverse(k * u) * m, var0, by_position)
            k = estimate_scale(model, u, var0, rows, post=lambda x: x * m)
            z = model.transform.inverse(k * u) * m  # (n, L)
    if returns_moment:  # eq. (7) on E r^2, on the windows as a_g, g and k decode them; then k again
        c, m, k = start_pass(k, rows)
        z = model.transform.inverse(k * u) * m
    shock = None
    if by_correlation:  # SHOCK_PASSES times: eq. (8) with k, g and c held, then g and k again with the map (c held)
        target = shock_correlation(model, returns)
        for _ in range(SHOCK_PASSES):
            shock = fit_shock_map(model, z, var0, rows, target)  # (L, L), (L,)

            def post(x: np.ndarray, shock: tuple[np.ndarray, np.ndarray] = shock) -> np.ndarray:
                return apply_shock_map(x * m, *shock)  # c, then the map: (n, L) -> (n, L)

            g, g_late, rows = _state_factors(model, post(model.transform.inverse(k * u)), var0, by_position)
            k = estimate_scale(model, u, var0, rows, post=post)
            z = model.transform.inverse(k * u) * m  # (n, L), before the map
        z = apply_shock_map(z, *shock)
    # eq. (6): one stitched chunk after each window, given its last stitch_context days and the state (k, g, c) gives
    first = decoding_filter(model).unfilter(z, var0, rows)  # (n, L) eq. (9): the first window decodes with a_g,
    _, s2 = model.vol_filter.filter(first, var0)  # (n, L + 1) seen by the fitted filter after it
    u2 = model.sample_model_space(1, model.window - C, context_u=u, var=s2, sampler=sampler,
                                  steps=steps, generator=gen, progress=progress)[:, 0]  # (n, L - C)
    g2 = g if g_late is None else g_late
    ks = estimate_scale(model, k * u2, s2[:, -1], g2, *STITCH_RANGE, vf=model.vol_filter)  # the fitted filter's
    if by_stitch and f.alpha > 0:  # eq. (10): a_s and k_s (a filter that does not react has no view to change)
        targets = stitching.stitch_targets(model, returns, model.window - C)
        model.stitch_asym, ks = stitching.fit_stitch_view(model, first, var0, k * u2, g2, targets, ks)
    model.residual_scale, model.calibrated_for = k, model.resolve_sampler(sampler, steps)
    model.state_factors, model.state_factors_late, model.stitch_scale = g, g_late, ks
    model.start_factors = None if c is None else tuple(tuple(map(float, row)) for row in c)
    model.shock_map, model.shock_mean = (None, None) if shock is None else shock
    model.history["calibration"] = {"windows": int(n_windows), "seed": int(seed)}
    return k


def _state_factors(model: DiffusionModel, z: np.ndarray, var0: np.ndarray, by_position: bool
                   ) -> tuple[tuple[float, ...] | None, tuple[float, ...] | None, np.ndarray | tuple[float, ...] | None]:
    """(g, g_late, the factors each day of a window gets) of eq. (5), g_late and the rows by day with
    ``by_position`` (:func:`factor_rows`), else None and g itself. Shape: z (n, L), var0 (n,)."""
    if not by_position:
        g = fit_state_factors(model, z, var0)  # (bins,) or None
        g = None if g is None else tuple(float(v) for v in g)
        return g, None, g
    gg = fit_state_factors(model, z, var0, split=model.config.stitch_context)  # (2, bins) or None
    g, g_late = (None, None) if gg is None else (tuple(map(float, gg[0])), tuple(map(float, gg[1])))
    return g, g_late, factor_rows(g, g_late, model.window, model.config.stitch_context)  # (L, bins) or None


def estimate_calibration(model: DiffusionModel, u: np.ndarray,
                         var0: np.ndarray) -> tuple[float, tuple[float, ...] | None]:
    """(k, g) of eqs. (4), (5) from generated unconditional windows u with start variances var0, as
    :func:`calibrate` estimates them (which draws the windows and sets the result). Shape: u (n, L), var0 (n,)."""
    g, _, rows = _state_factors(model, model.transform.inverse(u), var0, by_position=False)  # eq. (5)
    return estimate_scale(model, u, var0, rows), g


def estimate_scale(model: DiffusionModel, u: np.ndarray, var0: np.ndarray, g: np.ndarray | tuple[float, ...] | None,
                   lo: float = SCALE_RANGE[0], hi: float = SCALE_RANGE[1],
                   post: Callable[[np.ndarray], np.ndarray] | None = None,
                   vf: VolatilityFilter | None = None) -> float:
    """The scale k in [lo, hi] that gives generated model-space days u, decoded as k u with state factors g
    from start variances var0, the training reaction moment M (eq. (4)): bisection on M, which increases
    with k. ``post``: applied to the residuals before g (c and the map of eq. (8)); ``vf``: the filter that decodes
    them (default :func:`decoding_filter`: a first window). Shape: u (n, D), var0 (n,)."""
    f = decoding_filter(model) if vf is None else vf

    def moment(k: float) -> float:  # M of the days decoded with scale k (and post, g)
        z = model.transform.inverse(k * u)
        z = z if post is None else post(z)
        return f.reaction_moment(*f.filter(f.unfilter(z, var0, g), var0))

    # to ~1e-12 relative; a barely trained network can fall outside the range (an end is returned then)
    return bisect(moment, lo, hi, f.reaction, increasing=True, steps=40)


def fit_state_factors(model: DiffusionModel, z: np.ndarray, var0: np.ndarray,
                      split: int | None = None) -> np.ndarray | None:
    """g of eq. (5) for generated residual windows z with start variances var0, by fixed-point iteration:
    g_b <- g_b sqrt(target_b / E[(g z)^2 | bin b]) on the re-filtered states. ``None`` with one bin.
    ``split``: one g for days [0, split) of the windows and one for days [split, L), solved together (each pass
    re-runs (3) over the whole window). Shape: z (n, L), var0 (n,) -> (bins,), or (2, bins) with ``split``."""
    f = decoding_filter(model)
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
