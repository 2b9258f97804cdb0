"""Training: a small model recovers GBM moments; checkpoints and resume are exact."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import findiffusion.training as training
from findiffusion import fit
from findiffusion.config import from_json, to_json
from findiffusion.errors import InputError
from findiffusion.training import FitConfig, TrainConfig, draw_windows, window_probabilities

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


def test_window_probabilities_and_draws():
    """state_oversample's window law: the exact mixture, drawn by inverting its cdf."""
    w = np.array([0.5, 1.0, 2.5])  # start variances / v
    p = window_probabilities(w, 0.4)
    np.testing.assert_allclose(p, 0.6 / 3 + 0.4 * w / 4.0)
    np.testing.assert_allclose(window_probabilities(w, 0.0), np.full(3, 1 / 3))
    # each window is drawn with its probability: within 5 SE on 200 000 draws (SE about 0.001)
    idx = draw_windows(3, 200_000, torch.Generator().manual_seed(0), torch.from_numpy(np.cumsum(p))).numpy()
    freq = np.bincount(idx, minlength=3) / len(idx)
    assert np.all(np.abs(freq - p) < 5 * np.sqrt(p * (1 - p) / len(idx))), (freq, p)
    # without a cdf the draw is the uniform torch.randint stream of every fit before the option existed
    assert torch.equal(draw_windows(10, 7, torch.Generator().manual_seed(1)),
                       torch.randint(0, 10, (7,), generator=torch.Generator().manual_seed(1)))
    for bad in ([], [1.0, 0.0], [1.0, np.nan], [[1.0]]):
        with pytest.raises(InputError, match="start variances"):
            window_probabilities(np.array(bad), 0.5)
    for lam in (1.0, -0.1, "0.5"):
        with pytest.raises(InputError, match=r"state_oversample must be in \[0, 1\)"):
            TrainConfig(state_oversample=lam)
    with pytest.raises(InputError, match="needs a volatility filter"):
        TrainConfig(vol_filter="none", state_oversample=0.5)
    cfg = FitConfig(train=TrainConfig(state_oversample=0.25))
    assert from_json(FitConfig, to_json(cfg)) == cfg


def test_fit_draws_windows_by_start_variance(monkeypatch):
    """fit weights window i by the filter variance on its first day (the state the network is given), and only
    with state_oversample; the same seed gives the same model."""
    rng = np.random.default_rng(3)
    r = np.concatenate([rng.normal(0, 0.005, 400), rng.normal(0, 0.02, 200), rng.normal(0, 0.005, 400)])
    seen: list = []

    def spy(n, batch, gen, cdf=None):
        seen.append(cdf)
        return draw_windows(n, batch, gen, cdf)

    monkeypatch.setattr(training, "draw_windows", spy)
    base = tiny_config(steps=3)
    cfg = dataclasses.replace(base, calibration_windows=0, train=dataclasses.replace(base.train, state_oversample=0.7))
    a = fit(r, cfg)
    f, n_win = a.vol_filter, len(r) - cfg.train.window + 1
    _, s2 = f.filter(r)  # (T + 1,): s2[i] is the variance on day i, the first day of window i
    expected = np.cumsum(0.3 / n_win + 0.7 * s2[:n_win] / s2[:n_win].sum())
    assert len(seen) == 3 and all(c is not None for c in seen)
    np.testing.assert_allclose(seen[0].numpy(), expected, rtol=1e-12)
    p = np.diff(expected, prepend=0.0)
    assert p[400:500].mean() > 2 * p[:300].mean()  # the volatile stretch is drawn far more often
    b = fit(r, cfg)
    for (k, x), (_, y) in zip(a.denoiser.state_dict().items(), b.denoiser.state_dict().items(), strict=True):
        assert torch.equal(x, y), k
    seen.clear()
    fit(r, dataclasses.replace(cfg, train=base.train))
    assert seen and all(c is None for c in seen)
