"""Paths longer than the window, chunk by chunk: the chunk plan, the loop that draws a batch of paths through it, and
the volatility-filter states it tracks between chunks.

A path of T days is a first window of L new days (or, after a real context, a window whose first ``stitch_context``
days are observed) and then chunks of L - C new days, each drawn conditionally on the C = ``stitch_context`` days
before it. Models that condition on the filter state see, for each chunk, the state of the day its window starts on,
computed from the days decoded so far exactly as :meth:`~findiffusion.model.DiffusionModel.decode_generated` will
decode them (eqs. (4)-(9) of :mod:`findiffusion.calibration`). :meth:`~findiffusion.model.DiffusionModel.sample` is
the public entry point.

**The view at the stitch** (eq. (10); ``calibrate(by_stitch=True)`` of :mod:`findiffusion.calibration`). The first
stitched chunk sees only the last ``stitch_context`` days of the first window, so the part of the leverage effect (an
earlier fall, a later square) that the network itself carries within a window does not reach it from the days before
its context; only the filter's variance carries a fall across. On the 128-day Heston model the pairs of days the stitch
cuts (s < L <= t) held 16-17 % less leverage than the training stretches' (bench/leverage_blocks.py, docs/pricing.md).
With a view asymmetry a_s, the stitched days of unconditional paths start from the variance that a filter reacting to
falls by alpha (1 + a_s) and to rises by alpha (1 - a_s) gives after the first window's returns
(:meth:`~findiffusion.volatility.VolatilityFilter.view_variance`; a_s may exceed the fitted filter's [-1, 1], up to
where (3) stays positive), and

(10a) a_s such that the leverage of the pairs across the stitch, 3 sum_{s<L<=t} E x_s x_t^2 / sd(sum_t x_t)^3 of
      (L + L - C)-day paths (:func:`straddle_leverage`; x centred by day), equals the training stretches';
(10b) k_s such that the stitched days' mean variance E x_t^2 equals the training stretches' on those days

(:func:`fit_stitch_view`: bisection on each, ``STITCH_PASSES`` rounds, k_s last). (10b) replaces the reaction-moment
target of eq. (6) for k_s: what one-year prices see is the stitched days' width, and on the 128-day Heston model the M
of eq. (6) left it 1.3 % wide (bench/leverage_blocks.py). Later chunks continue from the first stitched chunk's days
with the fitted filter (their windows see those days as context).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from findiffusion import calibration
from findiffusion.errors import InputError
from findiffusion.volatility import VolatilityFilter

#: rounds of eq. (10): a_s with k_s held, then k_s at a_s (k_s last); bisection steps of each
STITCH_PASSES, STITCH_BISECTIONS = 2, 30

if TYPE_CHECKING:
    from findiffusion.model import DiffusionModel


def chunk_plan(window: int, stitch_context: int, length: int, has_context: bool) -> list[tuple[int, int]]:
    """(observed days, new days) of each chunk of a ``length``-day path: the first chunk observes nothing (or the
    context's last ``stitch_context`` days with ``has_context``), every later one the ``stitch_context`` days before
    it, and each adds at most ``window`` minus its observed days."""
    plan: list[tuple[int, int]] = []
    done = 0
    while done < length:
        obs = stitch_context if (done > 0 or has_context) else 0
        new = min(window - obs, length - done)
        plan.append((obs, new))
        done += new
    return plan


def sample_chunks(model: DiffusionModel, n: int, chunks: list[tuple[int, int]], sampler: str, steps: int | None,
                  gen: torch.Generator, ctx_u: torch.Tensor | None, eta: float | None, bar: Any, *,
                  s2: np.ndarray | None = None, antithetic: bool = False, k: float = 1.0,
                  g: np.ndarray | None = None, ks: float = 1.0, c: np.ndarray | None = None,
                  shift: torch.Tensor | None = None, xi: torch.Tensor | None = None,
                  shock: tuple[np.ndarray, np.ndarray] | None = None,
                  vf: VolatilityFilter | None = None, view: float | None = None) -> torch.Tensor:
    """n stitched model-space paths, chunk by chunk (``ctx_u``: their model-space context, Shape (n, C')).

    ``s2``: filter variances of the path's days so far and the next day (models that condition on the filter state),
    Shape (n, days + 1); ``k``, ``ks``: the residual scale and the further scale of chunks after the first (eqs. (4),
    (6)); ``g``: the state factors of each new day, Shape (T, bins); ``c``: the start factors of each path's new days
    (eq. (7)), Shape (n, T); ``shift``: noise shift of each new day, Shape (n, T), with the noise x_T of each new day
    written to ``xi``, Shape (n, T); ``shock``: the map of eq. (8) for the first chunk of unconditional paths; ``vf``:
    the filter that decodes the first chunk (eq. (9)); ``view``: a_s of eq. (10), the view the first chunk of
    unconditional paths hands the next one. Shape: -> (n, new days).
    """
    L = model.window
    path = torch.zeros(n, 0)
    if ctx_u is not None:
        path = ctx_u.clone()  # (n, C')
    n_ctx = path.shape[1]
    for i, (obs, new) in enumerate(chunks):
        obs = min(obs, path.shape[1])
        context = torch.zeros(n, L)
        mask = torch.zeros(n, L)
        if obs > 0:
            context[:, :obs] = path[:, -obs:]
            mask[:, :obs] = 1.0
        state = window_state(model, s2, path.shape[1] - obs)  # the window starts obs days back
        day0 = path.shape[1] - n_ctx  # new days generated so far
        win_shift, latents = None, None
        if shift is not None:
            win_shift = torch.zeros(n, L)  # observed days keep unshifted noise, (n, L)
            win_shift[:, obs:obs + new] = shift[:, day0:day0 + new]
            latents = []
        w = model._generate(n, sampler, steps, gen, context if obs else None, mask if obs else None, eta,
                            state=state, antithetic=antithetic, shift=win_shift, latents=latents).cpu()
        if xi is not None and latents:
            xi[:, day0:day0 + new] = latents[0][:, obs:obs + new]
        path = torch.cat([path, w[:, obs:obs + new]], dim=1)  # (n, days so far)
        if s2 is not None:
            s2 = extend_variances(model, s2, w[:, obs:obs + new], k * (ks if i else 1.0),
                                  None if g is None else g[day0:day0 + new],
                                  None if c is None else c[:, day0:day0 + new],
                                  shock if i == 0 and ctx_u is None else None,
                                  vf if i == 0 else None, view if i == 0 and ctx_u is None else None)
        if bar:
            bar[0].update(bar[1], advance=1)
    return path[:, n_ctx:]


def window_state(model: DiffusionModel, s2: np.ndarray | None, day: int) -> torch.Tensor | None:
    """Filter state (channel 3 of the denoiser) of windows that start at path day ``day``. Shape: (n,)."""
    if s2 is None:
        return None
    return torch.from_numpy(model.vol_filter.state(s2[:, day])).float()


def extend_variances(model: DiffusionModel, s2: np.ndarray, u_new: torch.Tensor, k: float = 1.0,
                     g: tuple[float, ...] | np.ndarray | None = None, c: np.ndarray | None = None,
                     shock: tuple[np.ndarray, np.ndarray] | None = None,
                     vf: VolatilityFilter | None = None, view: float | None = None) -> np.ndarray:
    """Run the filter over new generated model-space days, decoded with scale ``k``, state factors ``g``
    (eqs. (4), (5); Shape (bins,) or (D, bins), one row per new day) and start factors ``c`` (eq. (7); Shape
    (n, D)) and the map ``shock`` of eq. (8) (the first window's days) through the filter ``vf`` (eq. (9);
    default the fitted one) as ``sample()`` decodes them: (n, P + 1) variances -> (n, P + 1 + D). With another
    ``vf`` the new variances are the fitted filter's view of the returns ``vf`` decodes (what later chunks start
    from, as ``decode_generated()``); with ``view`` (a_s of eq. (10)) the last one, the variance the next chunk starts
    from, is the view of a filter with asymmetry a_s (:meth:`VolatilityFilter.view_variance`)."""
    f = model.vol_filter if vf is None else vf
    z = model.transform.inverse(k * u_new.numpy().astype(np.float64))  # (n, D) residuals
    z = z if c is None else z * c
    z = z if shock is None else calibration.apply_shock_map(z, *shock)
    cols, last = [s2], s2[:, -1]
    rows = None if g is None else np.broadcast_to(np.asarray(g, dtype=float), (z.shape[1], len(f.state_edges) + 1))
    r = np.empty_like(z)  # (n, D): the decoded returns
    for t in range(z.shape[1]):
        zt = f.scale_by_state(z[:, t], last, None if rows is None else rows[t])  # eq. (5), as decode_generated
        r[:, t] = f.mean_return(last) + np.sqrt(last) * zt
        last = f._next_var(last, zt)  # eq. (3)
        cols.append(last[:, None])
    if f is model.vol_filter and view is None:
        return np.concatenate(cols, axis=1)
    new = model.vol_filter.filter(r, s2[:, -1])[1][:, 1:]  # eq. (9): the fitted filter's view of the days, (n, D)
    if view is not None:  # eq. (10): the day after them from a_s's view
        new[:, -1] = model.vol_filter.view_variance(r, s2[:, -1], view)
    return np.concatenate([s2, new], axis=1)


def straddle_leverage(x: np.ndarray, split: int) -> float:
    """The leverage of the pairs of days a split cuts, eq. (10a): 3 sum_{s < split <= t} E x_s x_t^2 / sd(sum_t x_t)^3,
    x centred by day (the part of :func:`findiffusion.stylized_facts.skew_parts`' leverage (6b) whose earlier day
    falls before ``split`` and later day from it on). Shape: x (n, T) -> float."""
    x = np.asarray(x, dtype=float)
    if x.ndim != 2 or not 0 < split < x.shape[1] or len(x) < 2:
        raise InputError(f"straddle_leverage needs (paths, days) with at least 2 paths and 0 < split < days, got "
                         f"shape {x.shape} and split {split}")
    x = x - x.mean(0)  # (n, T)
    a, b, tot = x[:, :split].sum(1), (x[:, split:] ** 2).sum(1), x.sum(1)  # (n,) each
    return float(3 * np.mean(a * b) / np.mean(tot ** 2) ** 1.5)


def stitch_targets(model: DiffusionModel, returns: np.ndarray, days: int,
                   max_windows: int | None = None) -> tuple[float, float]:
    """The targets of eq. (10) over stretches of L + ``days`` training returns (at most ``max_windows`` evenly
    spaced starts, default as eqs. (8), (9)): (the leverage across the split at L (10a), the mean variance E x_t^2
    of days L .. L + days - 1 (10b)), x centred by day. Exact, by per-stretch sums in chunks.

    Raises:
        InputError: fewer than two stretches' worth of finite returns. Shape: returns (T,)."""
    r, L = np.asarray(returns, dtype=float).ravel(), model.window
    T = L + days
    if len(r) < 2 * T or not np.isfinite(r).all():
        raise InputError(f"the stitch targets of eq. (10) need at least {2 * T} finite training returns (two stretches "
                         f"of window + stitched days), got {len(r)}: pass the series the model was fitted on")
    starts = calibration._window_starts(len(r) - T + 1, max_windows or calibration.SHOCK_MAX_WINDOWS)
    wins = np.lib.stride_tricks.sliding_window_view(r, T)  # (n, T), a view
    chunks = [starts[i:i + calibration.SHOCK_CHUNK] for i in range(0, len(starts), calibration.SHOCK_CHUNK)]
    mu = sum(wins[c].sum(0) for c in chunks) / len(starts)  # (T,) the mean of each day
    sab = stot2 = sb = 0.0
    for c in chunks:
        x = wins[c] - mu  # (chunk, T)
        a, b = x[:, :L].sum(1), (x[:, L:] ** 2).sum(1)
        sab, stot2, sb = sab + float(a @ b), stot2 + float((x.sum(1) ** 2).sum()), sb + float(b.sum())
    n = len(starts)
    return 3 * (sab / n) / (stot2 / n) ** 1.5, sb / (n * days)


def fit_stitch_view(model: DiffusionModel, first: np.ndarray, var0: np.ndarray, u2: np.ndarray,
                    g: np.ndarray | tuple[float, ...] | None, targets: tuple[float, float],
                    ks: float = 1.0) -> tuple[float, float]:
    """(a_s, k_s) of eq. (10) for unconditional first windows (their returns ``first``, start variances ``var0``)
    and one stitched chunk after each (model-space days ``u2`` with k applied, drawn given the fitted filter's view,
    decoded with the fitted filter and state factors ``g``), from k_s = ``ks``: ``STITCH_PASSES`` rounds of a_s by
    bisection on [-1, asym_bound] with k_s held (more reaction to falls, more negative leverage across the stitch;
    a target beyond the range gives the end that comes closest), then k_s by bisection on the stitched days' variance
    in ``calibration.STITCH_RANGE``. Shape: first (n, L), var0 (n,), u2 (n, D)."""
    f, L = model.vol_filter, first.shape[1]
    lev_target, var_target = targets
    for _ in range(STITCH_PASSES):
        z2 = model.transform.inverse(ks * u2)  # (n, D): the chunk's residuals at the k_s held

        def leverage(a: float, z2: np.ndarray = z2) -> float:  # across the stitch, the chunk from a's view
            return straddle_leverage(np.concatenate([first, f.unfilter(z2, f.view_variance(first, var0, a), g)],
                                                    axis=1), L)

        a_s = calibration.bisect(leverage, -1.0, min(f.asym_bound, 10.0), lev_target, increasing=False,
                                 steps=STITCH_BISECTIONS)
        s2 = f.view_variance(first, var0, a_s)  # (n,): the variance the chunk starts from, a_s held

        def variance(k: float, s2: np.ndarray = s2) -> float:  # the stitched days' mean variance at scale k
            return float(f.unfilter(model.transform.inverse(k * u2), s2, g).var(0).mean())

        ks = calibration.bisect(variance, *calibration.STITCH_RANGE, var_target, increasing=True,
                                steps=STITCH_BISECTIONS)
    return a_s, ks
