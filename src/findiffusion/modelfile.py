"""Model files: saving and loading a :class:`~findiffusion.model.DiffusionModel`.

A model directory holds

* ``weights-<hash>.safetensors``: the EMA weights of the network (safetensors, never pickled),
* ``model.json``: format version, :class:`~findiffusion.training.FitConfig`,
  the volatility filter and the return transform, the residual calibration (k, g, k_s, the start-state
  factors and the shock correlation map of eqs. (4)-(8)), a description of the data, training history, and the
  name and SHA-256 of the weights file.

``model.json`` is written last and atomically and names its weights file, so
a directory is always either the old model or the new one. Fields added after format version 1 are optional:
older files load with their defaults (no g, k_s = 1, no start-state factors, no shock map).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from safetensors.torch import load as safetensors_load
from safetensors.torch import save as safetensors_save

from findiffusion.config import to_dict
from findiffusion.data import ReturnTransform, SeriesInfo
from findiffusion.errors import InputError, ModelFileError
from findiffusion.files import atomic_write, atomic_write_text
from findiffusion.sampling import SAMPLERS
from findiffusion.startstate import StartTargets
from findiffusion.volatility import VolatilityFilter

if TYPE_CHECKING:
    from findiffusion.model import DiffusionModel

FORMAT_VERSION = 1


def save(model: DiffusionModel, directory: str | Path) -> Path:
    """Save ``model`` to ``directory`` (created if needed) atomically: the weights under a content-addressed name,
    then model.json naming them, then the weights no longer named removed."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.denoiser.state_dict().items()}
    blob = safetensors_save(tensors)
    digest = hashlib.sha256(blob).hexdigest()
    wname = f"weights-{digest[:16]}.safetensors"
    atomic_write(d / wname, lambda tmp: Path(tmp).write_bytes(blob))
    meta = {
        "format_version": FORMAT_VERSION,
        "library": "findiffusion",
        "weights": wname,
        "weights_sha256": digest,
        "fit_config": to_dict(model.config),
        "transform": model.transform.to_dict(),
        "vol_filter": model.vol_filter.to_dict(),
        "residual_scale": model.residual_scale,
        "calibrated_for": None if model.calibrated_for is None else list(model.calibrated_for),
        "state_factors": None if model.state_factors is None else list(model.state_factors),
        "state_factors_late": None if model.state_factors_late is None else list(model.state_factors_late),
        "stitch_scale": model.stitch_scale,
        "start_targets": None if model.start_targets is None else model.start_targets.to_dict(),
        "start_factors": None if model.start_factors is None else [list(row) for row in model.start_factors],
        "shock_map": None if model.shock_map is None else [row[:i + 1].tolist() for i, row in enumerate(model.shock_map)],
        "shock_mean": None if model.shock_mean is None else model.shock_mean.tolist(),
        "leverage_asym": model.leverage_asym,
        "stitch_asym": model.stitch_asym,
        "data": model.data_info.to_dict() if model.data_info else None,
        "history": model.history,
    }
    atomic_write_text(d / "model.json", json.dumps(meta, indent=2))
    for old in d.glob("weights-*.safetensors"):  # drop weights no longer referenced
        if old.name != wname:
            old.unlink(missing_ok=True)
    return d


def load(directory: str | Path, device: str = "cpu") -> DiffusionModel:
    """Load a model saved by :meth:`DiffusionModel.save`. Never unpickles.

    Raises:
        ModelFileError: a missing, corrupted or incompatible model directory.
    """
    from findiffusion.model import DiffusionModel
    from findiffusion.training import build_denoiser, fit_config_from_dict, resolve_device

    d = Path(directory)
    if not d.is_dir():
        raise ModelFileError(f"model directory {str(d)!r} does not exist; train one with 'findiffusion fit'")
    mj = d / "model.json"
    if not mj.exists():
        raise ModelFileError(f"{str(d)!r} holds no model.json; it is not a findiffusion model (or its fit never finished)")
    try:
        meta = json.loads(mj.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ModelFileError(f"{str(mj)!r} is corrupted (not valid JSON); refit the model") from None
    if not isinstance(meta, dict) or meta.get("library") != "findiffusion":
        raise ModelFileError(f"{str(mj)!r} is not a findiffusion model file")
    ver = meta.get("format_version")
    if ver != FORMAT_VERSION:
        raise ModelFileError(
            f"model format version {ver} is not supported by this findiffusion (reads {FORMAT_VERSION}); refit the model"
        )
    try:
        cfg = fit_config_from_dict(meta["fit_config"])
        transform = ReturnTransform.from_dict(meta["transform"])
        vol_filter = VolatilityFilter.from_dict(meta.get("vol_filter"))
        if "vol_filter" not in meta:  # files written before the filter existed, unless the config names one
            if "vol_filter" in meta["fit_config"]["train"] and cfg.train.vol_filter != "none":
                raise ModelFileError(f"{str(mj)!r} names a volatility filter but holds no filter state; refit the model")
            cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, vol_filter="none"))
        if "vol_state_quantiles" not in meta["fit_config"]["train"]:  # files from before eq. (5): one k
            cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, vol_state_quantiles=()))
        if "prediction" not in meta["fit_config"]["train"]:  # files written before v-prediction: eps
            cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, prediction="eps"))
        if vol_filter.kind != cfg.train.vol_filter:
            raise ModelFileError(f"{str(mj)!r}: the volatility filter ({vol_filter.kind}) does not match the "
                                 f"config ({cfg.train.vol_filter}); refit the model")
        wpath = d / str(meta["weights"])
        blob = wpath.read_bytes()
        if hashlib.sha256(blob).hexdigest() != meta["weights_sha256"]:
            raise ModelFileError(f"weights file {str(wpath)!r} does not match its checksum; the model is corrupted, refit it")
        den = build_denoiser(cfg, transform, vol_filter)
        den.load_state_dict(safetensors_load(blob))
    except ModelFileError:
        raise
    except FileNotFoundError:
        raise ModelFileError(f"weights file named in {str(mj)!r} is missing; the model is incomplete, refit it") from None
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        msg = str(exc).splitlines()[0][:160]
        raise ModelFileError(f"model in {str(d)!r} is corrupted or incompatible ({msg}); refit it") from None
    data = meta.get("data")
    info = SeriesInfo(**data) if isinstance(data, dict) else None
    k, cal = meta.get("residual_scale", 1.0), meta.get("calibrated_for")  # older files: 1, none
    if not _positive_number(k):
        raise ModelFileError(f"{str(mj)!r}: residual_scale must be a positive number, got {k!r}; refit the model")
    if cal is not None and not (isinstance(cal, list) and len(cal) == 2 and cal[0] in SAMPLERS
                                and (cal[1] is None or (isinstance(cal[1], int) and cal[1] > 0))):
        raise ModelFileError(f"{str(mj)!r}: calibrated_for must be [sampler, steps], got {cal!r}; refit the model")
    g, g_late = meta.get("state_factors"), meta.get("state_factors_late")  # older files: none
    for name, v in (("state_factors", g), ("state_factors_late", g_late)):
        if v is not None and not (isinstance(v, list) and len(v) == len(vol_filter.state_edges) + 1 and all(
                _positive_number(x) for x in v)) or (name == "state_factors_late" and v is not None and g is None):
            raise ModelFileError(f"{str(mj)!r}: {name} must be one positive number per volatility-state bin, "
                                 f"got {v!r}; refit the model")
    ks = meta.get("stitch_scale")  # older files: none (1)
    if ks is not None and not _positive_number(ks):
        raise ModelFileError(f"{str(mj)!r}: stitch_scale must be a positive number, got {ks!r}; refit the model")
    targets, c = _start_calibration(meta, mj, vol_filter)
    shock_map, shock_mean = _shock_map(meta, mj, int(cfg.train.window))
    try:
        model = DiffusionModel(cfg, den, transform, data_info=info, history=meta.get("history") or {},
                               vol_filter=vol_filter, residual_scale=float(k), calibrated_for=cal, state_factors=g,
                               stitch_scale=ks, state_factors_late=g_late, start_targets=targets, start_factors=c,
                               shock_map=shock_map, shock_mean=shock_mean,
                               leverage_asym=meta.get("leverage_asym"),
                               stitch_asym=meta.get("stitch_asym"))  # older files: none; checked by the model
    except InputError as exc:
        raise ModelFileError(f"{str(mj)!r}: {exc}; refit the model") from None
    return model.to(resolve_device(device))


def _positive_number(v: Any) -> bool:
    """Whether a value read from model.json is a finite positive number (not a bool)."""
    return isinstance(v, int | float) and not isinstance(v, bool) and v > 0 and math.isfinite(v)


def _shock_map(meta: dict[str, Any], mj: Path, window: int) -> tuple[Any, Any]:
    """The map and day means of eq. (8) in model.json (rows of the lower triangle; older files: none)."""
    m, mu = meta.get("shock_map"), meta.get("shock_mean")
    if m is None and mu is None:
        return None, None
    ok = (isinstance(m, list) and isinstance(mu, list) and len(m) == window == len(mu)
          and all(isinstance(row, list) and len(row) == i + 1 for i, row in enumerate(m))
          and all(isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)
                  for row in [*m, mu] for x in row))
    if not ok:
        raise ModelFileError(f"{str(mj)!r}: shock_map must be the {window} rows of a lower-triangular matrix (row i "
                             f"has i + 1 numbers) with {window} shock_mean values; refit the model")
    full = np.zeros((window, window))
    for i, row in enumerate(m):
        full[i, :i + 1] = row
    return full, np.asarray(mu, dtype=float)


def _start_calibration(meta: dict[str, Any], mj: Path,
                       vol_filter: VolatilityFilter) -> tuple[StartTargets | None, tuple[tuple[float, ...], ...] | None]:
    """The start-state targets and factors c of eq. (7) in model.json (older files: none)."""
    t, c = meta.get("start_targets"), meta.get("start_factors")
    try:
        targets = None if t is None else StartTargets.from_dict(t)
    except InputError as exc:
        raise ModelFileError(f"{str(mj)!r}: {exc}; refit the model") from None
    if c is None:
        return targets, None
    if targets is None or not (isinstance(c, list) and len(c) == targets.shape[0] and all(
            isinstance(row, list) and len(row) == targets.shape[1] and all(_positive_number(x) for x in row)
            for row in c)):
        raise ModelFileError(f"{str(mj)!r}: start_factors must be one positive number per start-state group and day "
                             f"range of start_targets, got {c!r}; refit the model")
    return targets, tuple(tuple(float(x) for x in row) for row in c)
