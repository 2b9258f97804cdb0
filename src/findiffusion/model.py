"""The fitted model: encoding and decoding, sampling paths of any length, the residual calibration.

Saving and loading are in :mod:`findiffusion.modelfile` (``model.save(dir)``, ``findiffusion.load(dir)``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from findiffusion import calibration, sampling, stitching
from findiffusion.data import ReturnTransform, SeriesInfo
from findiffusion.denoiser import Denoiser
from findiffusion.errors import InputError
from findiffusion.importance import MixtureTilt
from findiffusion.progress import progress_bar as _progress
from findiffusion.sampling import SIGMA_GRID_SAMPLERS, SIGMA_MAX, SIGMA_MIN, get_sampler
from findiffusion.startstate import StartTargets, start_rows
from findiffusion.volatility import VolatilityFilter

#: guard on the clean estimate in model space (u is ~N(0, 1); 10 sd is far beyond any day seen)
CLIP_X0 = Denoiser.CLIP
#: default sampler and steps of models without a volatility filter / with one (see DiffusionModel.default_sampler)
DEFAULT_SAMPLER = "ode"
FILTER_SAMPLER = ("dpm", 10)
CPU_BATCH, GPU_BATCH = 512, 4096  # windows per network call (bench/batch_size.py: 4096 is ~4x slower on a 2-core CPU)


def default_batch_size(device: torch.device | str) -> int:
    """Windows per network call when none is given: 4096 on a GPU, 512 on a CPU."""
    return GPU_BATCH if torch.device(device).type == "cuda" else CPU_BATCH
#: history weight left on the volatility filter's start variance after ``context_days`` (beta^days)
FILTER_TOL = 1e-4
DEFAULT_STEPS = {"ddpm": None, "ddim": 50, "sde": 200, "ode": 20, "dpm": 40, "dpm-sde": 40}


class DiffusionModel:
    """A fitted diffusion model of daily log returns.

    Args:
        config: the :class:`~findiffusion.training.FitConfig` it was built with.
        denoiser: the trained denoiser (EMA weights).
        transform: the fitted return transform.
        data_info: description of the training data.
        history: training history (losses, wall time).
        vol_filter: the fitted volatility filter (default: none, the identity).
        residual_scale: k of eq. (4), applied to generated model-space values before decoding
            when they come from ``calibrated_for`` (:meth:`calibrate`; 1 = none).
        calibrated_for: the (sampler, steps) k was measured with; other samplers decode with k = 1,
            since each sampler's spread error is its own (:meth:`scale_for`).
        state_factors: g_b of eq. (5), one per volatility-state bin of the filter (``None``: none), applied
            with k to draws of ``calibrated_for``.
        state_factors_late: g of eq. (5) for the days of a window from ``stitch_context`` on and for stitched chunks,
            when :meth:`calibrate` ran ``by_position`` (``None``: ``state_factors`` for every day).
        stitch_scale: k_s of eq. (6), a further scale of the stitched chunks of unconditional paths (days
            from the window on) of ``calibrated_for`` (``None``: files written before it, taken as 1).
        start_targets: training E z^2 (or E r^2) by start-state group and day range
            (:class:`~findiffusion.startstate.StartTargets`,
            the targets of eq. (7); ``None``: models fitted before they were stored).
        start_factors: c of eq. (7), one factor per start-state group and day range of ``start_targets``, applied with
            k and g to the first window of unconditional draws of ``calibrated_for`` (``None``: none; set by
            ``calibrate(by_start=True)``).
        shock_map, shock_mean: the lower-triangular map D T D^{-1} and the day means mu of eq. (8), applied after c to
            the first window of unconditional draws of ``calibrated_for`` (``None``: none; set by
            ``calibrate(by_correlation=True)``). Shape: (L, L), (L,).
        leverage_asym: the filter asymmetry a_g of eq. (9) with which the first window of unconditional draws of
            ``calibrated_for`` is decoded (``None``: the filter's own; set by ``calibrate(by_leverage=True)``).
        stitch_asym: the view asymmetry a_s of eq. (10) (:mod:`findiffusion.stitching`): the stitched days of
            unconditional draws of ``calibrated_for`` start from the variance a filter with it gives after the first
            window (``None``: the fitted filter's; set by ``calibrate(by_stitch=True)``).

    Model space: returns r -> residuals z of the volatility filter -> u = transform(z);
    :meth:`encode` and :meth:`decode` go both ways. Generated values are decoded as k u
    (:meth:`decode_generated`), real ones (contexts) as u.

    **Residual calibration** (:mod:`findiffusion.calibration`, eqs. (4)-(6)): with a filter the generated
    residuals drive the variance recursion (3), so an error in their width moves the paths' long-run level six
    times over. :meth:`calibrate` sets k (the training reaction moment M), g (the training E z^2 per
    volatility state) and k_s (the same M for stitched chunks) from unconditional windows.
    """

    def __init__(self, config: Any, denoiser: Denoiser, transform: ReturnTransform,
                 data_info: SeriesInfo | None = None, history: dict[str, Any] | None = None,
                 vol_filter: VolatilityFilter | None = None, residual_scale: float = 1.0,
                 calibrated_for: tuple[str, int | None] | None = None,
                 state_factors: tuple[float, ...] | None = None, stitch_scale: float | None = None,
                 state_factors_late: tuple[float, ...] | None = None,
                 start_targets: StartTargets | None = None,
                 start_factors: tuple[tuple[float, ...], ...] | None = None,
                 shock_map: np.ndarray | None = None, shock_mean: np.ndarray | None = None,
                 leverage_asym: float | None = None, stitch_asym: float | None = None) -> None:
        if not (residual_scale > 0 and math.isfinite(residual_scale)):
            raise InputError(f"residual_scale must be a positive number, got {residual_scale}")
        if stitch_scale is not None and not (stitch_scale > 0 and math.isfinite(stitch_scale)):
            raise InputError(f"stitch_scale must be a positive number, got {stitch_scale}")
        self.stitch_scale = None if stitch_scale is None else float(stitch_scale)
        f = vol_filter if vol_filter is not None else VolatilityFilter(kind="none")
        for name, g in (("state_factors", state_factors), ("state_factors_late", state_factors_late)):
            if g is not None and (len(g) != len(f.state_edges) + 1 or not all(v > 0 and math.isfinite(v) for v in g)):
                raise InputError(f"{name} must be {len(f.state_edges) + 1} positive numbers (one per volatility-state "
                                 f"bin of the filter), got {g}")
        if state_factors_late is not None and state_factors is None:
            raise InputError("state_factors_late needs state_factors (the factors of a window's first days)")
        if start_factors is not None and (start_targets is None or np.shape(start_factors) != start_targets.shape
                                          or not all(v > 0 and math.isfinite(v) for v in np.ravel(start_factors))):
            raise InputError("start_factors must be one positive number per start-state group and day range of "
                             f"start_targets, got {start_factors}")
        calibration.check_shock_map(shock_map, shock_mean, int(config.train.window))
        if leverage_asym is not None and (isinstance(leverage_asym, bool) or not isinstance(leverage_asym, int | float)
                                          or not -1 <= leverage_asym <= 1):
            raise InputError(f"leverage_asym must be a filter asymmetry in [-1, 1] (or None), got {leverage_asym}")
        self.leverage_asym = None if leverage_asym is None else float(leverage_asym)
        if stitch_asym is not None and (isinstance(stitch_asym, bool) or not isinstance(stitch_asym, int | float)
                                        or not -1 <= stitch_asym <= f.asym_bound):
            raise InputError(f"stitch_asym must be a view asymmetry in [-1, {f.asym_bound:.4g}] (where the filter's "
                             f"recursion stays positive; or None), got {stitch_asym}")
        self.stitch_asym = None if stitch_asym is None else float(stitch_asym)
        self.shock_map = None if shock_map is None else np.asarray(shock_map, dtype=float)
        self.shock_mean = None if shock_mean is None else np.asarray(shock_mean, dtype=float)
        self.start_targets = start_targets
        self.start_factors = None if start_factors is None else tuple(tuple(map(float, row)) for row in start_factors)
        self.state_factors = None if state_factors is None else tuple(float(v) for v in state_factors)
        self.state_factors_late = None if state_factors_late is None else tuple(float(v) for v in state_factors_late)
        self.residual_scale = float(residual_scale)
        self.calibrated_for = None if calibrated_for is None else (str(calibrated_for[0]), calibrated_for[1])
        self.config = config
        self.denoiser = denoiser.eval()
        self.transform = transform
        self.vol_filter = vol_filter if vol_filter is not None else VolatilityFilter(kind="none")
        self.data_info = data_info
        self.history = history or {}
        self.device = torch.device("cpu")

    @property
    def context_days(self) -> int:
        """Days of history to pass as ``context`` to :meth:`sample`: the network's ``stitch_context``,
        or, with a volatility filter, the days its state needs to settle (beta^days < 1e-4: 259 days
        at beta = 0.965). A shorter context works but starts the filter partly from the long-run variance."""
        return max(int(self.config.stitch_context), self.vol_filter.warmup_days(FILTER_TOL))

    @property
    def window(self) -> int:
        """The model's native window length in days."""
        return int(self.config.train.window)

    @property
    def sigma_range(self) -> tuple[float | None, float | None]:
        """(sigma_max, sigma_min) of the sigma-grid samplers (sde, ode, dpm, dpm-sde), eq. (8) of
        :mod:`findiffusion.sampling`: (10, 0.05) with a volatility filter, the chain's ends otherwise.

        With a volatility filter the model space is filter residuals, close to N(0, I) window by window
        (their sd given the state is 0.94-1.04 on the S&P 500), so starting at sigma_bar = 10 from
        x ~ N(0, I) is exact to about 1 % and skips the high-noise part of the chain where small network
        errors spread the tails (docs/realism.md, *The sampling grid*). Without a filter the windows
        are standardized returns, a scale mixture (window sd from about 0.4 to 4): the start must be
        sigma_bar(T) (``None``)."""
        return (SIGMA_MAX, SIGMA_MIN) if self.vol_filter.active else (None, None)

    @property
    def default_sampler(self) -> tuple[str, int]:
        """(sampler, steps) used when none is given: DPM-Solver++(2M) with 10 steps for models with a
        volatility filter, the probability-flow ODE with 20 Heun steps otherwise (bench/samplers.py)."""
        return FILTER_SAMPLER if self.vol_filter.active else (DEFAULT_SAMPLER, DEFAULT_STEPS[DEFAULT_SAMPLER])

    def resolve_sampler(self, sampler: str | None, steps: int | None) -> tuple[str, int | None]:
        """Fill in the defaults: no sampler -> :attr:`default_sampler`; no steps -> the model's default
        steps for its default sampler, else the sampler's own (``DEFAULT_STEPS``)."""
        default, default_steps = self.default_sampler
        sampler = default if sampler is None else sampler
        if steps is None:
            steps = default_steps if sampler == default else DEFAULT_STEPS.get(sampler)
        return sampler, steps

    def to(self, device: str | torch.device) -> DiffusionModel:
        """Move the network to ``device`` (sampling output is always NumPy)."""
        self.device = torch.device(device)
        self.denoiser.to(self.device)
        return self

    # ---- model space ---------------------------------------------------------
    def encode(self, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Returns -> model space along the last axis, the filter starting at the first day.

        Returns:
            ``(u, s2)``: u of shape (..., T) and the filter variances sigma^2 of days 1..T+1,
            shape (..., T + 1) (all ones without a filter); ``s2[..., -1]`` is the state a
            continuation starts from (:meth:`decode`).
        """
        z, s2 = self.vol_filter.filter(r)
        return self.transform.forward(z), s2

    def decode(self, u: np.ndarray, var0: np.ndarray | float | None = None) -> np.ndarray:
        """Model space -> returns, the filter starting from variance ``var0``. Shape: (..., T) -> (..., T)."""
        return self.vol_filter.unfilter(self.transform.inverse(u), var0)

    def scale_for(self, sampler: str | None = None, steps: int | None = None) -> float:
        """k for draws of ``sampler``/``steps`` (default: the model's own): :attr:`residual_scale` if that is
        what it was calibrated with, else 1."""
        return self.residual_scale if self._calibrated(sampler, steps) else 1.0

    def stitch_scale_for(self, sampler: str | None = None, steps: int | None = None, *,
                         conditional: bool = False) -> float:
        """k_s of eq. (6) for the stitched chunks of unconditional draws of ``sampler``/``steps``; 1 for other
        samplers, for draws from a real context and for files without it."""
        if conditional or self.stitch_scale is None or not self._calibrated(sampler, steps):
            return 1.0
        return self.stitch_scale

    def _calibrated(self, sampler: str | None, steps: int | None) -> bool:
        """Whether draws of ``sampler``/``steps`` (default: the model's own) are what k and g were measured on."""
        return self.resolve_sampler(sampler, steps) == self.calibrated_for

    def factors_for(self, sampler: str | None = None, steps: int | None = None, *,
                    conditional: bool = False) -> tuple[float, ...] | None:
        """g of eq. (5) for unconditional draws of ``sampler``/``steps``: :attr:`state_factors` if that is what
        it was calibrated with, else ``None`` (no state scaling). Draws conditioned on an observed (real)
        context get ``None``: g is measured on unconditional windows, where the network knows only the
        first day's state, and on the S&P 500 backtest it made VaR exceedances cluster (docs/risk.md)."""
        if conditional:
            return None
        return self.state_factors if self._calibrated(sampler, steps) else None

    def factor_rows(self, days: int, sampler: str | None = None, steps: int | None = None, *,
                    conditional: bool = False) -> np.ndarray | None:
        """g of eq. (5) for each day of a ``days``-day path (:meth:`factors_for`; with :attr:`state_factors_late`,
        those from day ``stitch_context`` on). Shape: (days, bins), or ``None`` (no state scaling)."""
        g = self.factors_for(sampler, steps, conditional=conditional)
        return calibration.factor_rows(g, self.state_factors_late, days, self.config.stitch_context)

    def start_rows(self, var0: np.ndarray | None, days: int, sampler: str | None = None, steps: int | None = None, *,
                   conditional: bool = False) -> np.ndarray | None:
        """c of eq. (7) for each day of unconditional ``days``-day paths that start from variances ``var0``
        (:func:`findiffusion.startstate.start_rows`); ``None`` without start factors, for draws from a real
        context and for other samplers than ``calibrated_for``. Shape: var0 (n,) -> (n, days)."""
        if (conditional or self.start_factors is None or var0 is None or not self.vol_filter.active
                or not self._calibrated(sampler, steps)):
            return None
        return start_rows(self.start_factors, self.start_targets, np.asarray(var0) / self.vol_filter.var,
                                      days, self.window)

    def shock_for(self, sampler: str | None = None, steps: int | None = None, *,
                  conditional: bool = False) -> tuple[np.ndarray, np.ndarray] | None:
        """(map, day means) of eq. (8) for the first window of unconditional draws of ``sampler``/``steps``; ``None``
        without one, for draws from a real context and for other samplers than ``calibrated_for``."""
        if conditional or self.shock_map is None or not self._calibrated(sampler, steps):
            return None
        return self.shock_map, self.shock_mean

    def filter_for(self, sampler: str | None = None, steps: int | None = None, *,
                   conditional: bool = False) -> VolatilityFilter:
        """The filter that decodes the first window of generated paths of ``sampler``/``steps``: with
        :attr:`leverage_asym` (eq. (9)), unconditional draws of ``calibrated_for`` get the filter with that asymmetry;
        all else, and every stitched chunk, the fitted filter."""
        if conditional or self.leverage_asym is None or not self._calibrated(sampler, steps):
            return self.vol_filter
        return calibration.decoding_filter(self)

    def stitch_asym_for(self, sampler: str | None = None, steps: int | None = None, *,
                        conditional: bool = False) -> float | None:
        """a_s of eq. (10) for unconditional draws of ``calibrated_for`` (the view their stitched days start from);
        ``None`` without one, for draws from a real context and for other samplers (the fitted filter's view)."""
        if conditional or self.stitch_asym is None or not self._calibrated(sampler, steps):
            return None
        return self.stitch_asym

    def decode_generated(self, u: np.ndarray, var0: np.ndarray | float | None = None, *, sampler: str | None = None,
                         steps: int | None = None, conditional: bool = False) -> np.ndarray:
        """Generated model-space values -> returns: the residuals of k u, each day scaled by g of its volatility
        state (eqs. (4), (5)), through the filter from ``var0``; k and g those of the sampler that drew them
        (:meth:`scale_for`, :meth:`factors_for`; ``conditional``: drawn given a real context, no g). Days from
        the window on of an unconditional path come from stitched chunks and are scaled by k_s as well (eq. (6)); with
        start factors, the first window's days by c of the path's start state and the day's range (eq. (7)).
        Shape: (..., T) -> (..., T)."""
        u = np.asarray(u, dtype=float)
        scale = np.full(u.shape[-1], self.scale_for(sampler, steps))  # (T,)
        scale[self.window:] *= self.stitch_scale_for(sampler, steps, conditional=conditional)
        z = self.transform.inverse(scale * u)
        if self.start_factors is not None:  # eq. (7): c by the start state and day of each path's first window
            v0 = np.broadcast_to(self.vol_filter.var if var0 is None else np.asarray(var0, dtype=float), u.shape[:-1])
            m = self.start_rows(v0.ravel(), u.shape[-1], sampler, steps, conditional=conditional)  # (n, T) or None
            z = z if m is None else z * m.reshape(z.shape)
        shock = self.shock_for(sampler, steps, conditional=conditional)
        z = z if shock is None else calibration.apply_shock_map(z, *shock)  # eq. (8): the first window's days
        g = self.factor_rows(u.shape[-1], sampler, steps, conditional=conditional)  # (T, bins) or None
        f, L = self.filter_for(sampler, steps, conditional=conditional), self.window
        view = self.stitch_asym_for(sampler, steps, conditional=conditional)
        if (f is self.vol_filter and view is None) or u.shape[-1] <= L:
            return f.unfilter(z, var0, g)
        # eq. (9): the first window decodes with a_g; the stitched days with the fitted a, from the fitted filter's
        # view of the first window (the state a real context of those returns would give), or a_s's (eq. (10))
        first = f.unfilter(z[..., :L], var0, None if g is None else g[:L])  # (..., L)
        s2 = self.vol_filter.view_variance(first, var0, view)  # (...,): the variance of day L + 1
        return np.concatenate([first, self.vol_filter.unfilter(z[..., L:], s2, None if g is None else g[L:])], axis=-1)

    def calibrate(self, n_windows: int = 20000, *, seed: int = 0, sampler: str | None = None,
                  steps: int | None = None, progress: bool = False, by_position: bool = False, by_start: bool = False,
                  returns: np.ndarray | None = None, by_correlation: bool = False, by_leverage: bool = False,
                  by_stitch: bool = False, start_moment: str = "z2") -> float:
        """Set k, g and k_s (eqs. (4)-(6)), with ``by_start`` c (eq. (7), matching ``start_moment``), with
        ``by_leverage`` the decoding asymmetry (eq. (9)), with ``by_correlation`` the shock map (eq. (8)) and with
        ``by_stitch`` the view at the stitch and k_s (eq. (10)), the targets of (8)-(10) from ``returns``, from
        ``n_windows`` unconditional windows of ``sampler``/``steps`` (default: the model's own) drawn with ``seed``;
        returns k. See :func:`findiffusion.calibration.calibrate`."""
        return calibration.calibrate(self, n_windows, seed=seed, sampler=sampler, steps=steps, progress=progress,
                                     by_position=by_position, by_start=by_start, returns=returns,
                                     by_correlation=by_correlation, by_leverage=by_leverage, by_stitch=by_stitch,
                                     start_moment=start_moment)

    def estimate_calibration(self, u: np.ndarray, var0: np.ndarray) -> tuple[float, tuple[float, ...] | None]:
        """(k, g) of eqs. (4), (5) from generated windows u with start variances var0, without setting them
        (:func:`findiffusion.calibration.estimate_calibration`). Shape: u (n, L), var0 (n,)."""
        return calibration.estimate_calibration(self, u, var0)

    def estimate_scale(self, u: np.ndarray, var0: np.ndarray, g: np.ndarray | tuple[float, ...] | None,
                       lo: float = calibration.SCALE_RANGE[0], hi: float = calibration.SCALE_RANGE[1]) -> float:
        """The k in [lo, hi] that gives days u the training M of eq. (4)
        (:func:`findiffusion.calibration.estimate_scale`). Shape: u (n, D), var0 (n,)."""
        return calibration.estimate_scale(self, u, var0, g, lo, hi)

    @property
    def calibration_windows(self) -> int:
        """Windows k and g were estimated on (0: not calibrated): :meth:`calibrate`'s record, or, in files written
        before it kept one, the fit's ``calibration_windows``."""
        if self.calibrated_for is None:
            return 0
        rec = self.history.get("calibration")
        return int(rec["windows"]) if isinstance(rec, dict) else int(self.config.calibration_windows)

    def start_variance(self, n: int, generator: torch.Generator, u: np.ndarray | None = None) -> np.ndarray | None:
        """Start variances of ``n`` unconditional paths, drawn from the training filter's states: the quantile
        function at uniforms ``u`` (a tilted draw, :mod:`findiffusion.importance`), or at uniforms drawn from
        ``generator``. Shape: (n,)."""
        if not self.vol_filter.active:
            return None
        if u is None:
            u = torch.rand(n, generator=generator, dtype=torch.float64).numpy()
        return self.vol_filter.sample_start(n, u)

    # ---- sampling ------------------------------------------------------------
    def _generate(self, n: int, sampler: str, steps: int | None, generator: torch.Generator,
                  context: torch.Tensor | None, mask: torch.Tensor | None, eta: float | None,
                  callback: Any = None, state: torch.Tensor | None = None, antithetic: bool = False,
                  shift: torch.Tensor | None = None, latents: list[torch.Tensor] | None = None) -> torch.Tensor:
        """One window of model-space values (``state``: filter state per row, models with a filter). Shape: (n, L).

        ``antithetic``: rows 2i and 2i+1 start from x_T = z and -z (n even; deterministic samplers only).
        ``shift``: added to x_T (importance sampling, :mod:`findiffusion.importance`), Shape (n, L); the x_T
        used is appended to ``latents``."""
        fn = get_sampler(sampler)
        if antithetic:
            z = torch.randn(n // 2, self.window, generator=generator)  # (n/2, L)
            x = torch.stack([z, -z], dim=1).reshape(n, self.window).to(self.device)  # pairs interleaved, (n, L)
        else:
            x = torch.randn(n, self.window, generator=generator).to(self.device)  # x_T, (n, L)
        if shift is not None:
            x = x + shift.to(self.device)  # x_T ~ N(shift, I)
        if latents is not None:
            latents.append(x.cpu())
        if context is not None:
            context, mask = context.to(self.device), mask.to(self.device)
        eps_fn = self.denoiser.eps_fn(context, mask, clip_x0=CLIP_X0, state=state)  # raw() moves state to x's device
        kwargs: dict[str, Any] = {"generator": generator, "callback": callback}
        if sampler in ("ddim", "dpm-sde") and eta is not None:
            kwargs["eta"] = eta  # None: the sampler's own default (DDIM 0, DPM-SDE 1)
        if sampler in SIGMA_GRID_SAMPLERS:
            kwargs["sigma_max"], kwargs["sigma_min"] = self.sigma_range
        out = fn(eps_fn, x, self.denoiser.schedule, steps=steps, **kwargs).float()
        if context is not None:
            out = torch.where(mask > 0, context, out)  # observed days keep their values
        return out

    def sample(
        self,
        n_paths: int,
        length: int | None = None,
        *,
        sampler: str | None = None,
        steps: int | None = None,
        seed: int | None = 0,
        generator: torch.Generator | None = None,
        context: np.ndarray | None = None,
        eta: float | None = None,
        batch_size: int | None = None,
        progress: bool = False,
        antithetic: bool = False,
        tilt: MixtureTilt | None = None,
    ) -> np.ndarray:
        """Generate daily log-return paths.

        Paths longer than the window are stitched: each new chunk of
        ``window - stitch_context`` days is generated conditionally on the
        last ``stitch_context`` days before it, so volatility regimes carry
        across chunk boundaries.

        Args:
            n_paths: number of paths N.
            length: days per path T (any positive integer; default: the window).
            sampler: ``"ode"`` (probability-flow ODE, Heun), ``"dpm"`` (DPM-Solver++(2M): the same ODE,
                more accurately at equal cost), ``"dpm-sde"`` (its stochastic version, eq. (7) of
                :mod:`findiffusion.sampling`), ``"ddim"``, ``"ddpm"`` or ``"sde"``. Default
                (:attr:`default_sampler`): ``"dpm"`` with 10 steps for models with a volatility
                filter, ``"ode"`` with 20 steps otherwise (the best few-step samplers in bench/samplers.py).
            steps: sampler steps (default: as above for the default sampler; otherwise 20 for ODE,
                40 DPM and DPM-SDE, 50 DDIM, 200 SDE, all for DDPM).
            seed: seed of the generator (ignored when ``generator`` is given).
            generator: a :class:`torch.Generator` for every random draw.
            context: optional recent real log returns (oldest first); paths
                continue from them. The network sees their last ``stitch_context``
                days; the volatility filter runs over all of them (pass a year or
                more so its state has settled).
                Shape (C,) for one history, or (M, C) for M histories at once
                (batched: rolling backtests and forecasts).
            eta: noise scale of ``"ddim"`` (default 0, deterministic) and ``"dpm-sde"`` (default 1, the
                reverse SDE); ignored by the other samplers.
            batch_size: paths generated at once (default: 512 on a CPU, 4096 on a GPU).
            progress: show a rich progress bar.
            antithetic: paths 2i and 2i+1 are an antithetic pair: every chunk of one starts from the
                noise x_T = z, of the other from -z, and they share the filter's start variance
                (N must be even; deterministic samplers only: ``"ode"``, ``"dpm"``, ``"ddim"`` with eta 0).
            tilt: draw from an importance-sampling proposal instead of the model's law
                (:class:`findiffusion.importance.MixtureTilt`; it draws the start states, shifts the noise and
                records what its weights need). Use :func:`findiffusion.importance.sample_importance`.

        Returns:
            Log returns. Shape: (N, T); (M, N, T) for a 2-D ``context``.
        """
        length = self.window if length is None else length
        sampler, steps = self.resolve_sampler(sampler, steps)
        sampling.check_sample_args(n_paths, length, sampler, steps, self.denoiser.schedule.T)
        if antithetic:
            sampling.check_antithetic(n_paths, sampler, eta)
        gen = generator if generator is not None else torch.Generator().manual_seed(0 if seed is None else seed)
        ctx_u = None
        if context is not None:
            c = np.asarray(context, dtype=float)
            if c.ndim not in (1, 2) or c.shape[-1] < 1 or not np.isfinite(c).all():
                raise InputError("context must be a 1-D (days) or 2-D (cases, days) array of finite log returns")
            ctx_u, s2 = self.encode(c.reshape(-1, c.shape[-1]))  # (M, C), (M, C + 1)
            var0 = np.repeat(s2[:, -1], n_paths)  # (M * N,), case-major (ignored without a filter)
            var = s2
        elif antithetic and self.vol_filter.active:
            var = var0 = np.repeat(self.start_variance(n_paths // 2, gen), 2)  # one start per pair, (N,)
        elif tilt is not None and self.vol_filter.active and self.vol_filter.start_quantiles:
            var = var0 = self.start_variance(n_paths, gen, u=tilt.start_uniforms(gen))  # tilted starts, (N,)
        else:
            var = var0 = self.start_variance(n_paths, gen)
        u = self.sample_model_space(n_paths, length, context_u=ctx_u, var=var, sampler=sampler, steps=steps,
                                    generator=gen, eta=eta, batch_size=batch_size,
                                    progress=progress, antithetic=antithetic, tilt=tilt)  # (M, N, T) or (N, T)
        r = self.decode_generated(u.reshape(-1, length), var0, sampler=sampler, steps=steps,
                                  conditional=context is not None)  # (M * N, T), eqs. (4), (5)
        if context is not None and np.asarray(context).ndim == 2:
            return r.reshape(-1, n_paths, length)  # (M, N, T)
        return r

    def sample_model_space(self, n_paths: int, length: int, *, context_u: np.ndarray | None = None,
                           var: np.ndarray | None = None, sampler: str | None = None, steps: int | None = None,
                           generator: torch.Generator | None = None, eta: float | None = None, batch_size: int | None = None,
                           progress: bool = False, antithetic: bool = False,
                           tilt: MixtureTilt | None = None) -> np.ndarray:
        """Like :meth:`sample` but in model space u, with a model-space context (see :meth:`encode`).

        Args:
            context_u: model-space context, its last ``stitch_context`` days are used. Shape: (M, C) or None.
            var: filter variances, needed by models that condition on the filter state
                (:attr:`Denoiser.uses_state`): with ``context_u`` the variances :meth:`encode` returns
                with it, Shape (M, C + 1); without, the start variance of each path, Shape (N,)
                (:meth:`start_variance`). Ignored by other models.
            antithetic: antithetic pairs of rows, as in :meth:`sample`.
            tilt: importance-sampling proposal, as in :meth:`sample`: ``tilt.shift(rows, days)`` is added to the
                noise of each row's new days, ``tilt.record(rows, xi)`` gets the noise they were drawn from.

        Returns:
            Shape: (M, N, T) with a context, else (N, T).
        """
        sampler, steps = self.resolve_sampler(sampler, steps)
        sampling.check_sample_args(n_paths, length, sampler, steps, self.denoiser.schedule.T)
        if antithetic:
            sampling.check_antithetic(n_paths, sampler, eta)
        if tilt is not None:
            if antithetic:
                raise InputError("importance sampling and antithetic noise cannot be combined: choose one")
            sampling.check_deterministic(sampler, eta, "importance sampling")
        gen = generator if generator is not None else torch.Generator().manual_seed(0)
        ctx_rows = None  # (N_total, C') model-space context per path
        n_ctx = 1
        if context_u is not None:
            cu = np.asarray(context_u, dtype=float)
            if cu.ndim != 2 or cu.shape[1] < 1 or not np.isfinite(cu).all():
                raise InputError("context_u must be a 2-D (cases, days) array of finite model-space values")
            u = torch.from_numpy(cu[:, -self.config.stitch_context:]).float()  # (M, C')
            n_ctx = u.shape[0]
            ctx_rows = u.repeat_interleave(n_paths, dim=0)  # (M * N, C'), case-major
        total = n_ctx * n_paths
        if tilt is not None and tilt.n != total:
            raise InputError(f"the importance proposal was drawn for {tilt.n} paths, not {total}: pass one 1-D "
                             f"context, or draw the proposal for {total} paths")
        s2_rows = None  # (N_total, C' + 1) filter variances of the context days and the next day
        if self.denoiser.uses_state:
            if var is None:
                raise InputError("this model conditions on its volatility-filter state: pass var (the filter "
                                 "variances encode() returns with the context, or start_variance())")
            v = np.asarray(var, dtype=float)
            if context_u is not None:
                s2_rows = np.repeat(v.reshape(n_ctx, -1)[:, -(ctx_rows.shape[1] + 1):], n_paths, axis=0)
            else:
                s2_rows = v.reshape(total, 1)
        chunks = stitching.chunk_plan(self.window, self.config.stitch_context, length, ctx_rows is not None)
        batch_size = batch_size or default_batch_size(self.device)
        if antithetic:
            batch_size = 2 * max(1, batch_size // 2)  # batches keep pairs together
        bar = _progress(progress, len(chunks) * math.ceil(total / batch_size), "sample")
        k = self.scale_for(sampler, steps)  # eqs. (4), (5): the filter state tracks the days as sample() decodes them
        g = self.factor_rows(length, sampler, steps, conditional=context_u is not None)  # (T, bins) or None
        ks = self.stitch_scale_for(sampler, steps, conditional=context_u is not None)  # eq. (6)
        c = None if s2_rows is None else self.start_rows(s2_rows[:, 0], length, sampler, steps,
                                                          conditional=context_u is not None)  # eq. (7), (N, T)
        shock = self.shock_for(sampler, steps, conditional=context_u is not None)  # eq. (8), first window
        vf = self.filter_for(sampler, steps, conditional=context_u is not None)  # eq. (9)
        view = self.stitch_asym_for(sampler, steps, conditional=context_u is not None)  # eq. (10)
        out = []
        for b0 in range(0, total, batch_size):
            nb = min(batch_size, total - b0)
            rows = ctx_rows[b0:b0 + nb] if ctx_rows is not None else None
            s2b = s2_rows[b0:b0 + nb] if s2_rows is not None else None
            cb = c[b0:b0 + nb] if c is not None else None
            xi = torch.full((nb, length), float("nan")) if tilt is not None else None  # noise of each new day, (nb, T)
            shift = torch.from_numpy(tilt.shift(slice(b0, b0 + nb), length)).float() if tilt is not None else None
            out.append(stitching.sample_chunks(self, nb, chunks, sampler, steps, gen, rows, eta, bar, s2=s2b,
                                               antithetic=antithetic, k=k, g=g, ks=ks, c=cb, shift=shift, xi=xi,
                                               shock=shock, vf=vf, view=view))
            if tilt is not None:
                tilt.record(slice(b0, b0 + nb), xi.numpy().astype(np.float64))
        if bar:
            bar[0].stop()
        u_out = torch.cat(out).numpy().astype(np.float64)  # (M * N, T)
        return u_out.reshape(n_ctx, n_paths, length) if context_u is not None else u_out

    def sample_prices(self, n_paths: int, length: int | None = None, *, s0: float = 100.0,
                      **kwargs: Any) -> np.ndarray:
        """Price paths S_0..S_T with S_t = s0 * exp(cumulative log return). Shape: (N, T + 1)."""
        if not (s0 > 0 and math.isfinite(s0)):
            raise InputError(f"s0 must be a positive price, got {s0}")
        r = self.sample(n_paths, length, **kwargs)
        return returns_to_prices(r, s0)

    # ---- persistence ----------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Save to ``directory`` (created if needed) atomically (:func:`findiffusion.modelfile.save`)."""
        from findiffusion import modelfile

        return modelfile.save(self, directory)


def returns_to_prices(r: np.ndarray, s0: float) -> np.ndarray:
    """Price paths from log returns. Shape: (N, T) -> (N, T + 1), column 0 = s0."""
    r = np.asarray(r, dtype=float)
    cum = np.concatenate([np.zeros((r.shape[0], 1)), np.cumsum(r, axis=1)], axis=1)
    return s0 * np.exp(cum)
