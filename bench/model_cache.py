"""The benches' model caches: one rule for when a cached model can be used, recalibrated or must be refitted.

A cache directory is named ``...-<config tag>`` (:func:`findiffusion.config.config_tag` of the FitConfig), so a new
default gets a new cache. Two exceptions keep old fits usable or mark them stale:

* ``FitConfig.calibration_windows`` went from 4000 to 20 000 on 2026-12-04 (session 20). Training never sees the calibration
  (it draws its windows from its own generator after training), so a model cached under the old tag is
  recalibrated with the new count and saved under the new tag: the model a refit would give, without the refit.
* Models fitted before the start-variance fix of 2026-12-04 (:attr:`VolatilityFilter.legacy_start_grid`) are
  refitted.
* Models calibrated before the stitched-chunk scale k_s (eq. (6) of :mod:`findiffusion.model`, 2026-12-04,
  session 20) are recalibrated in place.

:func:`recalibrate` is the benches' one way to recalibrate a loaded model in memory (``--calibrate-by-position``,
``--calibrate-by-start``) with the window count and seed it was calibrated with.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

#: FitConfig.calibration_windows until 2026-12-04 (session 20)
OLD_CALIBRATION = 4000


def cached_model(cache: Path, cfg: Any, device: str = "cpu", progress: bool = True):
    """The model of ``cfg`` cached in ``cache`` (named with ``config_tag(cfg)`` last), or the one cached under the
    old calibration count, recalibrated and saved to ``cache``; ``None`` when it must be fitted."""
    import findiffusion
    from findiffusion.config import config_tag

    if (cache / "model.json").exists():
        model = findiffusion.load(cache, device=device)
        if not model.vol_filter.legacy_start_grid:
            return _with_stitch_scale(model, cache, cfg, progress)
    tag = config_tag(cfg)
    if not cache.name.endswith(tag) or cfg.calibration_windows == OLD_CALIBRATION:
        return None
    old = cache.with_name(cache.name[: -len(tag)] + config_tag(dataclasses.replace(cfg, calibration_windows=OLD_CALIBRATION)))
    if not (old / "model.json").exists():
        return None
    model = findiffusion.load(old, device=device)
    if model.vol_filter.legacy_start_grid:
        return None
    model.config = dataclasses.replace(model.config, calibration_windows=cfg.calibration_windows)
    if model.vol_filter.active and cfg.calibration_windows:
        print(f"recalibrating {old.name} with {cfg.calibration_windows} windows -> {cache.name}", flush=True)
        model.calibrate(cfg.calibration_windows, seed=cfg.seed, progress=progress)
    model.save(cache)
    return model


def _with_stitch_scale(model, cache: Path, cfg: Any, progress: bool):
    """A calibrated model saved before the stitched-chunk scale k_s (eq. (6) of findiffusion.model), recalibrated
    in place (k and g are drawn again the same way, k_s added); other models as they are."""
    if model.calibrated_for is None or model.stitch_scale is not None or not cfg.calibration_windows:
        return model
    print(f"recalibrating {cache.name} with {cfg.calibration_windows} windows (stitched-chunk scale)", flush=True)
    model.calibrate(cfg.calibration_windows, seed=cfg.seed, progress=progress)
    model.save(cache)
    return model


def recalibrate(model: Any, *, by_position: bool = False, by_start: bool = False, returns: Any = None,
                progress: bool = False, by_correlation: bool = False) -> tuple[int, float]:
    """Recalibrate ``model`` in place (:meth:`DiffusionModel.calibrate`) on as many windows as it was calibrated on
    (the fit's count if it never was), with its fit seed; ``returns`` are the training returns (the targets of
    eq. (7) for ``by_start``, of eq. (8) for ``by_correlation``). Returns (windows, seconds)."""
    t0, n_cal = time.time(), model.calibration_windows or model.config.calibration_windows
    model.calibrate(n_cal, seed=model.config.seed, by_position=by_position, by_start=by_start, returns=returns,
                    progress=progress, by_correlation=by_correlation)
    return n_cal, time.time() - t0
