"""Training: a small model recovers GBM moments; checkpoints and resume are exact."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from findiffusion import fit
from findiffusion.config import from_json, to_json
from findiffusion.errors import InputError
from findiffusion.training import FitConfig, TrainConfig

from .conftest import tiny_config


def test_small_model_recovers_gbm_mean_and_std():
    """GBM log returns are i.i.d. N((mu - sigma^2/2) dt, sigma^2 dt): the model must get both moments."""
    rng = np.random.default_rng(0)
    mu_d, sd_d = 0.004, 0.012  # strong drift so that getting the mean right is informative
    r = rng.normal(mu_d, sd_d, 3000)
    cfg = tiny_config(steps=400, window=32, channels=32)
    model = fit(r, cfg)
    paths = model.sample(1000, 32, sampler="ddpm", steps=100, seed=1)
    assert paths.mean() == pytest.approx(mu_d, abs=0.1 * sd_d)
    assert paths.std() == pytest.approx(sd_d, rel=0.1)
    # an untrained model does not pass the same check
    untrained = fit(r, dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, steps=1)))
    bad = untrained.sample(1000, 32, sampler="ddpm", steps=100, seed=1)
    assert abs(bad.std() / sd_d - 1) > 0.1 or abs(bad.mean() - mu_d) > 0.1 * sd_d


def test_resume_equals_uninterrupted(tmp_path):
    r = np.random.default_rng(1).normal(0, 0.01, 600)
    cfg = tiny_config(steps=20)
    full = fit(r, cfg, out_dir=tmp_path / "a")
    # interrupted after 10 steps (checkpoint_every = 10), then resumed
    cfg10 = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, steps=10))
    fit(r, cfg10, out_dir=tmp_path / "b")
    import json

    ck = json.loads((tmp_path / "b" / "checkpoint.json").read_text())
    assert ck["step"] == 10
    ck["fit_config"]["train"]["steps"] = 20  # pretend the run was planned for 20 steps
    (tmp_path / "b" / "checkpoint.json").write_text(json.dumps(ck))
    resumed = fit(r, cfg, out_dir=tmp_path / "b", resume=True)
    for (k, a), (_, b) in zip(full.denoiser.state_dict().items(), resumed.denoiser.state_dict().items(), strict=True):
        assert torch.equal(a, b), k


def test_resume_errors(tmp_path):
    r = np.random.default_rng(1).normal(0, 0.01, 600)
    with pytest.raises(InputError, match="no checkpoint"):
        fit(r, tiny_config(steps=4), out_dir=tmp_path, resume=True)
    fit(r, tiny_config(steps=4), out_dir=tmp_path)
    with pytest.raises(InputError, match="different settings"):
        fit(r, tiny_config(steps=4, seed=5), out_dir=tmp_path, resume=True)


def test_too_short_series_and_config_json():
    with pytest.raises(InputError, match="window needs"):
        fit(np.random.default_rng(0).normal(0, 0.01, 20), tiny_config(window=32))
    cfg = FitConfig()
    assert from_json(FitConfig, to_json(cfg)) == cfg
    with pytest.raises(InputError):
        TrainConfig(transform="boxcox")
    with pytest.raises(InputError):
        FitConfig(stitch_context=64)
