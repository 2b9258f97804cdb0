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
                progress: bool = False, by_correlation: bool = False, n_windows: int | None = None,
                cache: Path | None = None, by_leverage: bool = False, by_stitch: bool = False,
                sampler: str | None = None, steps: int | None = None, start_moment: str = "z2") -> tuple[int, float]:
    """Recalibrate ``model`` in place (:meth:`DiffusionModel.calibrate`) on ``n_windows`` windows (default as many as
    it was calibrated on, the fit's count if it never was), with its fit seed; ``returns`` are the training returns
    (the targets of eq. (7) for ``by_start``, of eq. (8) for ``by_correlation``, of eq. (9) for ``by_leverage``, of
    eq. (10) for ``by_stitch``); ``start_moment``: what eq. (7) matches ("z2" or "r2"); ``sampler``/``steps`` the draws it calibrates (default the model's own: a bench that
    samples with another sampler must pass it, or its draws decode uncalibrated).
    Returns (windows, seconds).

    ``cache``: a folder for recalibrated models, each under a key of everything the result depends on (the network's
    weights and filter, the options, the windows, the returns and the source of
    findiffusion/calibration.py, with ``by_start`` startstate.py, with ``by_stitch`` stitching.py): a second run with the same key loads it
    (seconds 0) instead of recalibrating."""
    import findiffusion

    t0, n_cal = time.time(), n_windows or model.calibration_windows or model.config.calibration_windows
    kw = {"by_position": by_position, "by_start": by_start, "by_correlation": by_correlation,
          "by_leverage": by_leverage, "by_stitch": by_stitch}
    kw |= {"start_moment": start_moment} if start_moment != "z2" else {}  # named only when not the default
    used = model.resolve_sampler(sampler, steps)  # named in the key only when not the model's own: default keys stay
    drawn = {} if used == model.default_sampler else {"sampler": used[0], "steps": used[1]}
    path = None if cache is None else cache / f"recalibrated-{_recalibration_key(model, kw | drawn, n_cal, returns)}"
    if path is not None and (path / "model.json").exists():
        done = findiffusion.load(path, device=str(model.device))
        for name in CALIBRATION_ATTRS:
            setattr(model, name, getattr(done, name))
        model.history["calibration"] = done.history.get("calibration")
        return n_cal, 0.0
    model.calibrate(n_cal, seed=model.config.seed, returns=returns, progress=progress, sampler=sampler, steps=steps,
                    **kw)
    if path is not None:
        model.save(path)
    return n_cal, time.time() - t0


#: what DiffusionModel.calibrate sets
CALIBRATION_ATTRS = ("residual_scale", "calibrated_for", "state_factors", "state_factors_late", "stitch_scale",
                     "start_targets", "start_factors", "shock_map", "shock_mean", "leverage_asym",
                     "stitch_asym")


def _recalibration_key(model: Any, options: dict, n_windows: int, returns: Any) -> str:
    """A 16-hex-digit digest of the network's weights and volatility filter, the model's calibration seed, ``options``,
    ``n_windows``, ``returns`` and the source of findiffusion/calibration.py (and of startstate.py with ``by_start``,
    of stitching.py with ``by_stitch``)."""
    import hashlib
    import json

    import numpy as np

    import findiffusion.calibration as cal
    import findiffusion.startstate as startstate

    h = hashlib.sha256()
    for name, t in sorted(model.denoiser.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().numpy().tobytes())
    h.update(json.dumps([repr(model.vol_filter), model.config.seed, options, int(n_windows)], sort_keys=True).encode())
    h.update(b"" if returns is None else np.ascontiguousarray(returns, dtype=float).tobytes())
    h.update(Path(cal.__file__).read_bytes())
    if options.get("by_start"):  # eq. (7) lives in findiffusion/startstate.py
        h.update(Path(startstate.__file__).read_bytes())
    if options.get("by_stitch"):  # eq. (10) lives in findiffusion/stitching.py
        h.update(Path(cal.stitching.__file__).read_bytes())
    return h.hexdigest()[:16]
