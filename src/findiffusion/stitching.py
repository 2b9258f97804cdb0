"""Paths longer than the window, chunk by chunk: the chunk plan, the loop that draws a batch of paths through it, and
the volatility-filter states it tracks between chunks.

A path of T days is a first window of L new days (or, after a real context, a window whose first ``stitch_context``
days are observed) and then chunks of L - C new days, each drawn conditionally on the C = ``stitch_context`` days
before it. Models that condition on the filter state see, for each chunk, the state of the day its window starts on,
computed from the days decoded so far exactly as :meth:`~findiffusion.model.DiffusionModel.decode_generated` will
decode them (eqs. (4)-(9) of :mod:`findiffusion.calibration`). :meth:`~findiffusion.model.DiffusionModel.sample` is
the public entry point.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from findiffusion import calibration
from findiffusion.volatility import VolatilityFilter

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
                  vf: VolatilityFilter | None = None) -> torch.Tensor:
    """n stitched model-space paths, chunk by chunk (``ctx_u``: their model-space context, Shape (n, C')).

    ``s2``: filter variances of the path's days so far and the next day (models that condition on the filter state),
    Shape (n, days + 1); ``k``, ``ks``: the residual scale and the further scale of chunks after the first (eqs. (4),
    (6)); ``g``: the state factors of each new day, Shape (T, bins); ``c``: the start factors of each path's new days
    (eq. (7)), Shape (n, T); ``shift``: noise shift of each new day, Shape (n, T), with the noise x_T of each new day
    written to ``xi``, Shape (n, T); ``shock``: the map of eq. (8) for the first chunk of unconditional paths; ``vf``:
    the filter that decodes the first chunk (eq. (9)). Shape: -> (n, new days).
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
                                  vf if i == 0 else None)
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
                     vf: VolatilityFilter | None = None) -> np.ndarray:
    """Run the filter over new generated model-space days, decoded with scale ``k``, state factors ``g``
    (eqs. (4), (5); Shape (bins,) or (D, bins), one row per new day) and start factors ``c`` (eq. (7); Shape
    (n, D)) and the map ``shock`` of eq. (8) (the first window's days) through the filter ``vf`` (eq. (9);
    default the fitted one) as ``sample()`` decodes them: (n, P + 1) variances -> (n, P + 1 + D). With another
    ``vf`` the new variances are the fitted filter's view of the returns ``vf`` decodes (what later chunks start
    from, as ``decode_generated()``)."""
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
    if f is not model.vol_filter:  # eq. (9): the fitted filter's view of the days decoded with a_g
        return np.concatenate([s2, model.vol_filter.filter(r, s2[:, -1])[1][:, 1:]], axis=1)
    return np.concatenate(cols, axis=1)
