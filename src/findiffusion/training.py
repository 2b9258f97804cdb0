"""Fitting a diffusion model to a return series: the training loop.

Read top to bottom: returns -> variance filter -> transform -> windows -> AdamW on the masked
epsilon loss with an EMA of the weights -> :class:`~findiffusion.model.DiffusionModel`.
Checkpoints (weights, EMA, optimiser, RNG state) are written atomically every
``checkpoint_every`` steps when an output directory is given, and
``resume=True`` continues from the last one with the same result as an
uninterrupted run.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from findiffusion.conditioning import MaskConfig, random_masks
from findiffusion.config import from_dict, to_dict
from findiffusion.data import ReturnTransform, SeriesInfo, as_returns, make_windows
from findiffusion.denoiser import Denoiser
from findiffusion.errors import InputError, ModelFileError
from findiffusion.files import atomic_write, atomic_write_text
from findiffusion.networks import DilatedResNet, NetworkConfig
from findiffusion.progress import progress_bar
from findiffusion.schedules import NoiseSchedule, ScheduleConfig
from findiffusion.startstate import check_moment, moment_targets
from findiffusion.volatility import VolatilityFilter


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings.

    Attributes:
        window: days per training window (the model's native length).
        transform: return preprocessing, ``"lambertw"`` or ``"standard"``.
        vol_filter: ``"garch"`` (default) or ``"none"``: the model learns returns standardized by a
            slow GARCH(1,1)-type variance filter (:class:`~findiffusion.volatility.VolatilityFilter`), or
            standardized returns. bench/realism.py: the filter model with its default sampler
            (DPM-Solver++ 10 steps from sigma_bar = 10) meets 28 of the 30 realism targets on three
            seeds, the unfiltered one with ODE 20 25 (volatility clustering too weak).
        vol_alpha, vol_beta: the filter's reaction and persistence; with ``vol_fit_alpha`` vol_alpha is the
            upper bound of the reaction, which is fitted on the data (eq. (3a) of
            :class:`~findiffusion.volatility.VolatilityFilter`: 0 on a market without volatility clustering).
        vol_fit_alpha: fit the reaction in [0, vol_alpha] (default) or keep vol_alpha as it is.
        vol_asym: the filter's asymmetry a (reaction alpha (1 + a) to falls, alpha (1 - a) to rises; 0:
            symmetric). With ``vol_fit_alpha`` and vol_asym > 0, a is fitted in [-vol_asym, vol_asym]
            jointly with the reaction (eq. (3b) of :class:`~findiffusion.volatility.VolatilityFilter`).
        vol_winsor: the filter's winsorizing level c in sd (default 4; ``None``: none).
        vol_ito: give the filter mean the Ito term, r_t = m - sigma^2_t / 2 + sigma_t z_t (eq. (3c) of
            :class:`~findiffusion.volatility.VolatilityFilter`), so a rise of the variance lowers the drift of the
            days after it; default off (a constant mean).
        vol_state_quantiles: quantiles of the training filter variance that split days into volatility
            states for the residual calibration (``VolatilityFilter.state_quantiles``; ``()``: one scale k
            for all states, as before). Default 50 / 80 / 95 / 99 %.
        prediction: what the network predicts, ``"eps"`` (the noise) or ``"v"`` (Salimans & Ho's
            v = alpha eps - sigma x0, from which the noise follows); see :mod:`findiffusion.denoiser`.
        batch_size: windows per optimisation step.
        steps: optimisation steps.
        lr: peak learning rate (linear warm-up, cosine decay to 10 %).
        warmup: warm-up steps.
        weight_decay: AdamW weight decay.
        ema_decay: decay of the exponential moving average of weights used for sampling.
        grad_clip: gradient-norm clip.
        checkpoint_every: steps between checkpoints (with an output directory).
        masks: the mixture of context masks (conditional training).
        day_state: with a volatility filter, also give the network the filter state of every day of the
            window, computed from its own previous clean estimate (self-conditioning, channel 4 of
            :mod:`findiffusion.denoiser`), not only the first day's.
        state_oversample: lambda in [0, 1): draw training windows from the mixture (1 - lambda) uniform +
            lambda in proportion to the window's start variance (:func:`window_probabilities`), so the rare volatile
            starts get more of the training (default 0: uniform). The network sees the start state (channel 3), so
            the law it is trained towards, that of a window *given* its start state, is the same; only the share
            of the optimisation each state gets changes. Samples still draw their start states from the training
            law (:meth:`~findiffusion.volatility.VolatilityFilter.sample_start`). Needs a volatility filter.
    """

    window: int = 64
    transform: str = "standard"
    vol_filter: str = "garch"
    vol_alpha: float = 0.03
    vol_beta: float = 0.965
    vol_winsor: float | None = 4.0
    vol_fit_alpha: bool = True
    vol_asym: float = 0.0
    vol_ito: bool = False
    vol_state_quantiles: tuple[float, ...] = (0.5, 0.8, 0.95, 0.99)
    prediction: str = "eps"
    batch_size: int = 64
    steps: int = 3200
    lr: float = 2e-3
    warmup: int = 100
    weight_decay: float = 0.0
    ema_decay: float = 0.998
    grad_clip: float = 1.0
    checkpoint_every: int = 250
    masks: MaskConfig = field(default_factory=MaskConfig)
    day_state: bool = False
    state_oversample: float = 0.0

    def __post_init__(self) -> None:
        if self.day_state and self.vol_filter == "none":
            raise InputError("day_state needs a volatility filter (TrainConfig.vol_filter = 'garch')")
        if not (isinstance(self.state_oversample, int | float) and 0 <= self.state_oversample < 1):
            raise InputError(f"state_oversample must be in [0, 1) (0: windows drawn uniformly), got {self.state_oversample!r}")
        if self.state_oversample and self.vol_filter == "none":
            raise InputError("state_oversample needs a volatility filter, whose start states it weights "
                             "(TrainConfig.vol_filter = 'garch', or state_oversample = 0)")
        if self.window < 4:
            raise InputError(f"window must be at least 4 days, got {self.window}")
        if self.batch_size < 1 or self.steps < 1:
            raise InputError("batch_size and steps must be positive")
        if self.transform not in ReturnTransform.KINDS:
            raise InputError(f"unknown transform {self.transform!r}; use one of {ReturnTransform.KINDS}")
        if self.prediction not in Denoiser.PREDICTIONS:
            raise InputError(f"unknown prediction {self.prediction!r}; use one of {Denoiser.PREDICTIONS}")
        try:
            self.volatility_filter()
        except InputError as exc:  # the same check, in the config's own names
            raise InputError(f"{exc} (TrainConfig.vol_filter / vol_alpha / vol_beta / vol_winsor / vol_asym / "
                             "vol_state_quantiles)") from None

    def volatility_filter(self) -> VolatilityFilter:
        """The (unfitted) volatility filter these settings describe."""
        return VolatilityFilter(kind=self.vol_filter, alpha=self.vol_alpha, beta=self.vol_beta, winsor=self.vol_winsor,
                                alpha_max=self.vol_alpha if self.vol_fit_alpha else None,
                                asym=0.0 if self.vol_fit_alpha else self.vol_asym,
                                asym_max=abs(self.vol_asym) if self.vol_fit_alpha else None,
                                state_quantiles=tuple(self.vol_state_quantiles),
                                var_drift=0.5 if self.vol_ito else 0.0)


@dataclass(frozen=True)
class FitConfig:
    """Everything that defines a model: schedule, network, training, stitching.

    Attributes:
        schedule: the variance schedule.
        network: the noise-prediction network.
        train: optimisation settings.
        stitch_context: observed days each new chunk is conditioned on when
            sampling paths longer than the window.
        seed: seed of every random draw in training.
        calibration_windows: unconditional windows generated after training to calibrate the residual
            scale of a volatility-filter model (:meth:`~findiffusion.model.DiffusionModel.calibrate`);
            0 leaves the scale at 1. Ignored without a filter. The calibration is an estimate: with 4000
            windows (the default until session 20, 2026-12-04) its sampling error moved out-of-the-money Heston prices by
            1-3 % (sd), about sqrt(5) times less with 20 000 (bench/calibration_noise.py).
        calibrate_by_start: the calibration also fits the factors c of eq. (7) by start state and day range of a
            window (``calibrate(by_start=True)``, :mod:`findiffusion.calibration`; off by default, measured on
            simulated Heston only, docs/pricing.md). Needs a series of at least two windows; ignored without a
            filter or with ``calibration_windows = 0``.
        calibrate_start_moment: what c of eq. (7) matches and the stored start targets hold: the residuals' E z^2
            ("z2", default) or the decoded returns' E r^2 ("r2", :mod:`findiffusion.startstate`).
    """

    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    stitch_context: int = 32
    seed: int = 0
    calibration_windows: int = 20000
    calibrate_by_start: bool = False
    calibrate_start_moment: str = "z2"

    def __post_init__(self) -> None:
        check_moment(self.calibrate_start_moment, "calibrate_start_moment")
        if self.calibration_windows < 0:
            raise InputError(f"calibration_windows must be 0 (off) or a positive number of windows, "
                             f"got {self.calibration_windows}")
        if not 1 <= self.stitch_context < self.train.window:
            raise InputError(
                f"stitch_context must be between 1 and window - 1 = {self.train.window - 1}, got {self.stitch_context}"
            )


def resolve_device(device: str = "auto") -> torch.device:
    """``"auto"`` picks CUDA when present, else CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise InputError(f"unknown device {device!r}; use cpu, cuda or auto")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError("--device cuda was asked for but no CUDA GPU is available; use --device cpu")
    return torch.device(device)


def build_denoiser(cfg: FitConfig, transform: ReturnTransform | None = None,
                   vol_filter: VolatilityFilter | None = None) -> Denoiser:
    """A fresh denoiser for ``cfg`` (weights from the current torch RNG). A network with the day-state
    channel (``in_channels == 5``) needs the fitted ``transform`` and ``vol_filter``: the recursion that
    turns a clean window into every day's filter state."""
    day_state = None
    if cfg.network.in_channels == 5:
        if transform is None or vol_filter is None:
            raise ValueError("a day-state network needs the fitted transform and volatility filter")

        def day_state(u: torch.Tensor, state0: torch.Tensor) -> torch.Tensor:
            return vol_filter.state_path(transform.inverse_torch(u), state0)  # (B, L)

    return Denoiser(DilatedResNet(cfg.network), NoiseSchedule(cfg.schedule), prediction=cfg.train.prediction,
                    day_state=day_state)


def window_probabilities(start_var: np.ndarray, oversample: float) -> np.ndarray:
    r"""Probabilities of drawing each training window: the mixture

        p_i = (1 - \lambda) / N + \lambda w_i / \sum_j w_j,   w_i = \sigma^2_{0,i} / v,

    of the uniform draw and one in proportion to the window's start variance (``TrainConfig.state_oversample``
    \lambda). On simulated Heston (stationary variance Gamma with shape 2 kappa theta / xi^2 = 0.64) \lambda = 1/2
    draws the windows of the 5 % most volatile starts about 3 times as often as the uniform draw, and those
    of the calmest 20 % about half as often.
    Shape: start_var (N,) (start variances in units of the long-run one) -> (N,)."""
    w = np.asarray(start_var, dtype=float)
    if w.ndim != 1 or len(w) == 0 or not np.isfinite(w).all() or (w <= 0).any():
        raise InputError("window start variances must be a non-empty 1-D array of positive numbers")
    if not 0 <= oversample < 1:
        raise InputError(f"state_oversample must be in [0, 1), got {oversample}")
    return (1 - oversample) / len(w) + oversample * w / w.sum()


def draw_windows(n_windows: int, batch: int, generator: torch.Generator, cdf: torch.Tensor | None = None) -> torch.Tensor:
    """Indices of ``batch`` training windows: uniform, or by inversion of ``cdf`` (the cumulative
    :func:`window_probabilities`, float64). Shape: (batch,)."""
    if cdf is None:
        return torch.randint(0, n_windows, (batch,), generator=generator)
    u = torch.rand(batch, generator=generator, dtype=torch.float64)
    return torch.searchsorted(cdf, u, right=True).clamp_(max=n_windows - 1)  # first i with cdf_i > u


def _lr_at(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    p = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(p, 1.0))))


# ---- checkpoints -----------------------------------------------------------
_CKPT_W = "checkpoint.safetensors"
_CKPT_J = "checkpoint.json"


def _save_checkpoint(out: Path, step: int, den: Denoiser, ema: Denoiser, opt: torch.optim.Optimizer,
                     gen: torch.Generator, losses: list[float], cfg: FitConfig) -> None:
    tensors: dict[str, torch.Tensor] = {}
    for k, v in den.state_dict().items():
        tensors[f"model.{k}"] = v.detach().cpu().contiguous()
    for k, v in ema.state_dict().items():
        tensors[f"ema.{k}"] = v.detach().cpu().contiguous()
    for i, p in enumerate(den.parameters()):
        st = opt.state.get(p, {})
        for name in ("exp_avg", "exp_avg_sq"):
            if name in st:
                tensors[f"opt.{i}.{name}"] = st[name].detach().cpu().contiguous()
        if "step" in st:
            tensors[f"opt.{i}.step"] = torch.as_tensor(st["step"]).detach().cpu().reshape(1).float()
    tensors["rng"] = gen.get_state()
    atomic_write(out / _CKPT_W, lambda tmp: save_file(tensors, tmp))
    meta = {"step": step, "losses": losses, "fit_config": to_dict(cfg)}
    atomic_write_text(out / _CKPT_J, json.dumps(meta))


def _load_checkpoint(out: Path, den: Denoiser, ema: Denoiser, opt: torch.optim.Optimizer,
                     gen: torch.Generator, cfg: FitConfig) -> tuple[int, list[float]]:
    try:
        meta = json.loads((out / _CKPT_J).read_text())
        tensors = load_file(str(out / _CKPT_W))
    except FileNotFoundError:
        raise InputError(f"--resume: no checkpoint in {str(out)!r}; run fit without --resume first") from None
    except Exception as exc:
        raise ModelFileError(f"--resume: checkpoint in {str(out)!r} is corrupted ({exc}); delete it and refit") from None
    if meta.get("fit_config") != to_dict(cfg):
        raise InputError("--resume: the checkpoint was made with different settings; use the same options or drop --resume")
    device = next(den.parameters()).device
    den.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    ema.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("ema.")})
    for i, p in enumerate(den.parameters()):
        if f"opt.{i}.exp_avg" in tensors:
            opt.state[p] = {
                "step": tensors[f"opt.{i}.step"].reshape(()).clone(),
                "exp_avg": tensors[f"opt.{i}.exp_avg"].to(device),
                "exp_avg_sq": tensors[f"opt.{i}.exp_avg_sq"].to(device),
            }
    gen.set_state(tensors["rng"])
    return int(meta["step"]), list(meta["losses"])


def fit(
    returns: Any,
    config: FitConfig | None = None,
    *,
    out_dir: str | Path | None = None,
    resume: bool = False,
    device: str = "auto",
    progress: bool = False,
    data_info: SeriesInfo | None = None,
    on_step: Callable[[int, float], None] | None = None,
):
    """Fit a diffusion model to daily log returns.

    Args:
        returns: log returns, a pandas Series or a 1-D array.
        config: a :class:`FitConfig` (defaults: the measured defaults in the README).
        out_dir: where checkpoints and the final model go (optional).
        resume: continue from the checkpoint in ``out_dir``.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        progress: show a rich progress bar.
        data_info: description of the data, stored with the model.
        on_step: called as ``on_step(step, loss)`` after every step.

    Returns:
        The fitted :class:`~findiffusion.model.DiffusionModel` (also saved to
        ``out_dir`` when given).
    """
    from findiffusion.model import DiffusionModel

    cfg = config or FitConfig()
    tc = cfg.train
    if data_info is None:
        data_info = describe_returns(returns)
    r = as_returns(returns)
    if len(r) < tc.window:
        raise InputError(
            f"the series has {len(r)} returns but the window needs at least {tc.window}; "
            "use a longer series (--start/--end) or a smaller window"
        )
    if cfg.calibrate_by_start and len(r) < 2 * tc.window:
        raise InputError(f"calibrate_by_start needs at least two windows of returns ({2 * tc.window}), got {len(r)}; "
                         "use a longer series or leave it off")
    dev = resolve_device(device)
    t0 = time.time()

    # 1. preprocessing: returns -> residuals of the variance filter (identity by default) -> unit-variance values
    vol_filter = tc.volatility_filter().fit(r)  # alpha (and a) fitted, eqs. (3a)-(3b)
    z, s2 = vol_filter.filter(r)  # (T,), (T + 1,)
    transform = ReturnTransform(kind=tc.transform).fit(z)
    u = transform.forward(z).astype(np.float32)
    windows = torch.from_numpy(make_windows(u, tc.window)).to(dev)  # (N, L)
    n_win = windows.shape[0]
    # with a filter the network also sees the filter state at each window's first day (denoiser channel 3)
    # (and, with day_state, every day's state from its own clean estimate: channel 4)
    if vol_filter.active and cfg.network.in_channels == 3:
        cfg = dataclasses.replace(cfg, network=dataclasses.replace(cfg.network, in_channels=5 if tc.day_state else 4))
    states = torch.from_numpy(vol_filter.state(s2[:n_win])).float().to(dev)  # (N,)
    cdf = None  # uniform window draws; with state_oversample the cumulative mixture of window_probabilities
    if tc.state_oversample and vol_filter.active:
        cdf = torch.from_numpy(np.cumsum(window_probabilities(s2[:n_win] / vol_filter.var, tc.state_oversample)))

    # 2. model, EMA copy, optimiser; every random draw from one generator
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    den = build_denoiser(cfg, transform, vol_filter).to(dev)
    ema = copy.deepcopy(den).requires_grad_(False)
    opt = torch.optim.AdamW(den.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    start, losses = 0, []
    out = Path(out_dir) if out_dir is not None else None
    if resume:
        if out is None:
            raise InputError("resume needs an output directory")
        start, losses = _load_checkpoint(out, den, ema, opt, gen, cfg)

    # 3. the loop
    bar = progress_bar(progress, tc.steps, "fit", completed=start)
    loss_acc = 0.0
    for step in range(start, tc.steps):
        for g in opt.param_groups:
            g["lr"] = _lr_at(step, tc)
        idx = draw_windows(n_win, tc.batch_size, gen, cdf).to(dev)  # (B,)
        x0 = windows[idx]  # (B, L)
        mask = random_masks(tc.batch_size, tc.window, tc.masks, gen, cfg.stitch_context).to(dev)  # (B, L)
        loss = den.loss(x0, mask, gen, states[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(den.parameters(), tc.grad_clip)
        opt.step()
        with torch.no_grad():
            d = min(tc.ema_decay, (1 + step) / (10 + step))
            for pe, p in zip(ema.parameters(), den.parameters(), strict=True):
                pe.lerp_(p, 1 - d)
        lv = float(loss.detach())
        loss_acc += lv
        if (step + 1) % 50 == 0 or step + 1 == tc.steps:
            losses.append(loss_acc / (50 if (step + 1) % 50 == 0 else (step + 1) % 50))
            loss_acc = 0.0
        if on_step:
            on_step(step + 1, lv)
        if bar:
            bar[0].update(bar[1], advance=1, description=f"fit  loss {losses[-1] if losses else lv:.4f}")
        if out is not None and ((step + 1) % tc.checkpoint_every == 0 or step + 1 == tc.steps):
            _save_checkpoint(out, step + 1, den, ema, opt, gen, losses, cfg)
    if bar:
        bar[0].stop()

    model = DiffusionModel(
        cfg,
        ema.cpu() if dev.type != "cpu" else ema,
        transform,
        data_info=data_info,
        vol_filter=vol_filter,
        history={"losses_every_50": losses, "wall_time_s": time.time() - t0, "steps": tc.steps,
                 "n_windows": n_win, "device": str(dev)},
    )
    model.to(dev)
    if vol_filter.active and len(r) >= 2 * tc.window:  # the targets of eq. (7), for calibrate(by_start=True)
        model.start_targets = moment_targets(cfg.calibrate_start_moment, z, r, s2 / vol_filter.var,
                                             tc.window)  # the series filtered in step 1
    # 4. calibrate the residual scale of a filter model (DiffusionModel.calibrate: the filter compounds
    #    a residual-variance error over long paths), with its own generator so training is unchanged
    if vol_filter.active and cfg.calibration_windows:
        model.calibrate(cfg.calibration_windows, seed=cfg.seed, progress=progress, by_start=cfg.calibrate_by_start,
                        start_moment=cfg.calibrate_start_moment)
    if out is not None:
        model.save(out)
    return model


def describe_returns(returns: Any) -> SeriesInfo:
    """A :class:`SeriesInfo` for returns passed directly to :func:`fit` (dates when it is a dated Series)."""
    import pandas as pd

    start = end = None
    if isinstance(returns, pd.Series) and isinstance(returns.index, pd.DatetimeIndex) and len(returns):
        start, end = str(returns.index[0].date()), str(returns.index[-1].date())
    return SeriesInfo(source="python", column=str(getattr(returns, "name", None) or "returns"),
                      n_returns=len(returns), start=start, end=end, last_price=None)


def fit_config_from_dict(d: dict[str, Any]) -> FitConfig:
    """Parse a :class:`FitConfig` from a JSON dict."""
    return from_dict(FitConfig, d)
