"""The benches' model caches: one rule for when a cached model can be used, recalibrated or must be refitted.

A cache directory is named ``...-<config tag>`` (:func:`findiffusion.config.config_tag` of the FitConfig), so a new
default gets a new cache. Two exceptions keep old fits usable or mark them stale:

* ``FitConfig.calibration_windows`` went from 4000 to 20 000 on 2026-12-05. Training never sees the calibration
  (it draws its windows from its own generator after training), so a model cached under the old tag is
  recalibrated with the new count and saved under the new tag: the model a refit would give, without the refit.
* Models fitted before the start-variance fix of 2026-12-04 (:attr:`VolatilityFilter.legacy_start_grid`) are
  refitted.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

#: FitConfig.calibration_windows before 2026-12-05
OLD_CALIBRATION = 4000


def cached_model(cache: Path, cfg: Any, device: str = "cpu", progress: bool = True):
    """The model of ``cfg`` cached in ``cache`` (named with ``config_tag(cfg)`` last), or the one cached under the
    old calibration count, recalibrated and saved to ``cache``; ``None`` when it must be fitted."""
    import findiffusion
    from findiffusion.config import config_tag

    if (cache / "model.json").exists():
        model = findiffusion.load(cache, device=device)
        if not model.vol_filter.legacy_start_grid:
            return model
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
