"""The fitted model: reproducibility, long stitched paths, conditioning, the filter state, batching."""

from __future__ import annotations

import json

import numpy as np
import pytest

from findiffusion import load
from findiffusion.errors import InputError, ModelFileError
from findiffusion.model import returns_to_prices
from findiffusion.stitching import chunk_plan


def test_same_seed_same_samples_and_reload(tiny_model):
    model, path = tiny_model
    for sampler in ("ddpm", "ddim", "sde", "ode", "dpm", "dpm-sde"):
        steps = {"ddpm": 20, "ddim": 5, "sde": 10, "ode": 4, "dpm": 6, "dpm-sde": 6}[sampler]
        a = model.sample(8, 40, sampler=sampler, steps=steps, seed=3)
        b = model.sample(8, 40, sampler=sampler, steps=steps, seed=3)
        assert np.array_equal(a, b)
        assert a.shape == (8, 40) and np.isfinite(a).all()
    # dpm-sde: eta=None is the reverse SDE (eta 1); eta=0 is the deterministic dpm exactly
    sde = model.sample(8, 40, sampler="dpm-sde", steps=6, seed=3)
    assert np.array_equal(sde, model.sample(8, 40, sampler="dpm-sde", steps=6, seed=3, eta=1.0))
    np.testing.assert_allclose(model.sample(8, 40, sampler="dpm-sde", steps=6, seed=3, eta=0.0),
                               model.sample(8, 40, sampler="dpm", steps=6, seed=3), rtol=1e-5, atol=1e-7)
    assert not np.allclose(sde, model.sample(8, 40, sampler="dpm", steps=6, seed=3))
    c = model.sample(8, 40, steps=5, seed=4)
    assert not np.array_equal(a, c)
    reloaded = load(path)
    assert np.array_equal(model.sample(8, 70, steps=5, seed=9), reloaded.sample(8, 70, steps=5, seed=9))
    assert reloaded.data_info.source == "sp500"


def test_any_length_and_batching(tiny_model):
    model, _ = tiny_model
    for length in (1, 5, model.window, model.window + 1, 200):
        out = model.sample(3, length, steps=3, seed=0)
        assert out.shape == (3, length)
    # splitting into batches does not change the distribution shape; sizes add up
    assert model.sample(10, 20, steps=3, seed=0, batch_size=3).shape == (10, 20)


def test_context_continuation(tiny_model):
    model, _ = tiny_model
    hist = np.random.default_rng(0).normal(0, 0.01, 50)
    one = model.sample(4, 10, context=hist, steps=3, seed=1)
    many = model.sample(4, 10, context=np.stack([hist, hist[::-1]]), steps=3, seed=1)
    assert one.shape == (4, 10) and many.shape == (2, 4, 10)
    np.testing.assert_allclose(many[0], one)
    with pytest.raises(InputError):
        model.sample(4, 10, context=np.array([np.nan]))


def test_prices():
    r = np.array([[0.0, np.log(1.1), np.log(0.5)]])
    np.testing.assert_allclose(returns_to_prices(r, 100.0), [[100, 100, 110, 55]])


@pytest.mark.parametrize(
    "bad,kw",
    [("n", {"n_paths": 0}), ("length", {"length": 0}), ("sampler", {"sampler": "euler"}), ("steps", {"steps": 0}),
     ("steps", {"steps": 10_000})],
)
def test_bad_sample_args(tiny_model, bad, kw):
    model, _ = tiny_model
    args = {"n_paths": 2, "length": 4} | kw
    with pytest.raises(InputError, match=bad):
        model.sample(**args)


def _fit_tiny_and_read_meta(tmp_path, section: str, **changes):
    """Fit a 5-step tiny model with ``cfg.<section>`` changed, save it; return it and its model.json dict."""
    import dataclasses

    import findiffusion as fd
    from tests.conftest import tiny_config

    cfg = tiny_config(steps=5)
    cfg = dataclasses.replace(cfg, **{section: dataclasses.replace(getattr(cfg, section), **changes)})
    model = fd.fit(np.random.default_rng(0).normal(0, 0.01, 300), cfg)
    model.save(tmp_path)
    return model, json.loads((tmp_path / "model.json").read_text())


def test_conditional_sample_is_decoded_from_the_filter_state(tmp_path):
    """sample(context=c) = decode(model-space sample given encode(c), start variance = the state after c)."""
    import dataclasses

    import torch

    import findiffusion as fd
    from tests.conftest import tiny_config

    cfg = tiny_config(steps=20)
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, vol_filter="garch", vol_winsor=4.0))
    r, _ = fd.load_series("sp500")
    fd.fit(r.iloc[:1500], cfg, out_dir=tmp_path, device="cpu")
    model = load(tmp_path)  # the filter's state survives the round trip
    assert model.vol_filter.active and model.vol_filter.winsor == 4.0
    assert model.vol_filter.alpha == 0.03 and model.vol_filter.alpha_max == 0.03  # S&P clusters: the bound
    assert model.context_days == max(model.config.stitch_context, model.vol_filter.warmup_days()) == 259
    c = np.random.default_rng(2).standard_t(4, 300) * 0.01
    u, s2 = model.encode(c)
    np.testing.assert_allclose(model.decode(u, s2[0]), c, rtol=1e-9, atol=1e-12)
    a = model.sample(5, 30, context=c, steps=3, seed=7)
    u_new = model.sample_model_space(5, 30, context_u=u[None], var=s2[None], steps=3,
                                     generator=torch.Generator().manual_seed(7))
    np.testing.assert_allclose(a, model.decode_generated(u_new[0], s2[-1], steps=3), rtol=1e-9)
    # k applies to the calibrated sampler (the default: DPM 10), not to DPM 3
    assert model.calibrated_for == model.default_sampler and model.residual_scale != 1.0
    assert model.scale_for(steps=3) == 1.0 and model.scale_for() == model.residual_scale
    # eqs. (4), (5): residuals of k u, day t's scaled by g of the bin its filter variance falls in, then eq. (3)
    f, g = model.vol_filter, np.asarray(model.state_factors)
    assert len(f.state_edges) == 3 and len(g) == 4  # 1500 days: the 99 % quantile leaves < 50 days above, dropped
    z, v, expect = model.transform.inverse(model.residual_scale * u_new[0]), np.full(5, s2[-1]), []
    for t in range(z.shape[1]):
        zt = z[:, t] * g[np.searchsorted(f.state_edges, v / f.var, side="right")]
        expect.append(f.mean + np.sqrt(v) * zt)
        v = f._next_var(v, zt)
    np.testing.assert_allclose(model.decode_generated(u_new[0], s2[-1]), np.stack(expect, 1), rtol=1e-12)
    assert model.factors_for(steps=3) is None and model.factors_for() == model.state_factors
    # given a real context the default sampler's draws get k but not g (calibrated on unconditional windows)
    assert model.factors_for(conditional=True) is None
    a = model.sample(5, 30, context=c, seed=7)
    u_def = model.sample_model_space(5, 30, context_u=u[None], var=s2[None], generator=torch.Generator().manual_seed(7))
    np.testing.assert_allclose(a, model.decode(model.residual_scale * u_def[0], s2[-1]), rtol=1e-9)
    with pytest.raises(InputError, match="context_u"):
        model.sample_model_space(2, 5, context_u=u, var=s2, steps=2)  # 1-D: one history must be shape (1, C)
    with pytest.raises(InputError, match="pass var"):
        model.sample_model_space(2, 5, context_u=u[None], steps=2)  # the model conditions on the filter state
    # a model.json whose filter state and config disagree is refused
    meta = json.loads((tmp_path / "model.json").read_text())
    meta["fit_config"]["train"]["vol_filter"] = "none"
    (tmp_path / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelFileError, match="does not match"):
        load(tmp_path)
    del meta["vol_filter"]
    meta["fit_config"]["train"]["vol_filter"] = "garch"
    (tmp_path / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelFileError, match="no filter state"):
        load(tmp_path)
    # the same model-space draws after a calm and after a wild history: returns scale with the state
    calm = model.decode(u_new[0], s2[-1])
    wild = model.decode(u_new[0], 4 * s2[-1])
    m = model.vol_filter.mean
    np.testing.assert_allclose(wild[:, 0] - m, 2 * (calm[:, 0] - m), rtol=1e-9)


def _filter_model(tmp_path, in_channels: int | None = None):
    """A 5-step tiny model with the GARCH filter (4 network channels), or rebuilt with 3 (as an older file).
    Its reaction is kept at 0.03 (i.i.d. training returns would fit alpha = 0, a constant filter)."""
    import dataclasses

    from findiffusion.model import DiffusionModel
    from findiffusion.training import build_denoiser

    model, _ = _fit_tiny_and_read_meta(tmp_path, "train", vol_filter="garch", vol_fit_alpha=False)
    assert model.vol_filter.alpha == 0.03
    if in_channels is None:
        return model
    cfg = dataclasses.replace(model.config, network=dataclasses.replace(model.config.network, in_channels=in_channels))
    old = DiffusionModel(cfg, build_denoiser(cfg), model.transform, vol_filter=model.vol_filter)
    old.save(tmp_path / "old")
    return load(tmp_path / "old")


def _states_seen(model):
    """Record the state channel of every network call: list of (n,) arrays."""
    seen = []
    model.denoiser.network.register_forward_hook(lambda mod, args, out: seen.append(args[0][:, 3, 0].numpy().copy()))
    return seen


def test_filter_models_see_the_filter_state_at_each_window_start(tmp_path):
    """Stitched unconditional and conditional paths: every chunk's window gets 0.5 log(sigma^2 / v) of the
    filter variance at its first day, the variance the decoded returns were scaled by on that day."""
    import torch

    model = _filter_model(tmp_path)
    assert model.config.network.in_channels == 4 and model.denoiser.uses_state
    # an exact sampler of N(0, 1) model-space days (v-parameterization, F = 0: tests/test_denoiser.py), so the
    # paths' variances wander as a GARCH's do instead of running into the cap
    model.denoiser.prediction = "v"
    for p in model.denoiser.network.head[-1].parameters():
        p.data.zero_()
    L, C, f = model.window, model.config.stitch_context, model.vol_filter
    T = L + 2 * (L - C)  # three chunks
    seen = _states_seen(model)
    r = model.sample(3, T, sampler="ddim", steps=10, seed=4)
    var0 = model.start_variance(3, torch.Generator().manual_seed(4))  # sample() draws it first
    _, s2 = f.filter(r, var0)  # (3, T + 1)
    starts = [0, L - C, 2 * (L - C)]  # window starts: C days before each new chunk
    for k, day in enumerate(starts):
        np.testing.assert_allclose(seen[10 * k], f.state(s2[:, day]), atol=1e-5)  # 10 calls (steps) per chunk
    assert np.ptp(f.state(s2[:, starts[1]])) > 0.01  # the paths' states have drifted apart
    # conditional: the first window starts at the first of the last C context days
    c = np.random.default_rng(1).standard_t(4, 300) * 0.012
    seen.clear()
    r = model.sample(2, L - C + 5, sampler="ddim", steps=2, seed=4, context=c)
    _, s2c = f.filter(np.concatenate([np.tile(c, (2, 1)), r], axis=1))  # (2, 300 + T + 1)
    np.testing.assert_allclose(seen[0], f.state(s2c[:, 300 - C]), atol=1e-5)
    np.testing.assert_allclose(seen[2], f.state(s2c[:, 300 + L - 2 * C]), atol=1e-5)


def test_antithetic_pairs_start_every_chunk_from_opposite_noise(tmp_path):
    """Stitched antithetic paths: each chunk's first network call sees x_T = z for row 2i and -z for
    row 2i+1 on the days it generates, and both rows of a pair share the filter state."""
    model = _filter_model(tmp_path)
    calls = []
    model.denoiser.network.register_forward_hook(lambda mod, args, out: calls.append(args[0].numpy().copy()))
    L, C = model.window, model.config.stitch_context
    r = model.sample(6, 2 * L, sampler="ode", steps=2, seed=3, antithetic=True)
    assert r.shape == (6, 2 * L) and np.isfinite(r).all()
    first = [c for i, c in enumerate(calls) if i % 3 == 0]  # ode, 2 steps: 3 network calls per chunk
    assert len(first) == len(chunk_plan(L, C, 2 * L, False)) >= 2
    for k, inp in enumerate(first):
        new = slice(0 if k == 0 else C, None)  # days the chunk generates (channel 0, unmasked)
        x0 = inp[:, 0, new]
        np.testing.assert_allclose(x0[0::2], -x0[1::2], atol=1e-5)
        assert np.abs(x0).mean() > 0.5  # real noise, not zeros
        if k == 0:  # one start variance per pair; later states follow each path's own days
            np.testing.assert_allclose(inp[0::2, 3, 0], inp[1::2, 3, 0])
    assert not np.allclose(r[0::2], r[1::2])
    for kw, msg in (({"n_paths": 5}, "even"), ({"sampler": "sde"}, "deterministic"),
                    ({"sampler": "ddim", "eta": 0.5}, "eta 0.5")):
        args = {"n_paths": 4, "length": 10, "sampler": "ode", "steps": 2} | kw
        with pytest.raises(InputError, match=msg):
            model.sample(args.pop("n_paths"), args.pop("length"), antithetic=True, **args)


def test_filter_model_files_from_before_the_state_channel_still_sample(tmp_path):
    """A filter model with a 3-channel network (written before the state channel) samples without a state."""
    from findiffusion.anomaly import score_anomalies
    from findiffusion.pricing import sample_antithetic

    old = _filter_model(tmp_path, in_channels=3)
    assert old.vol_filter.active and not old.denoiser.uses_state
    r = old.sample(3, 50, sampler="ddim", steps=2, seed=1)
    assert r.shape == (3, 50) and np.isfinite(r).all()
    assert sample_antithetic(old, 4, 40, sampler="ddim", steps=2).shape == (4, 40)
    assert np.isfinite(score_anomalies(old, r[0], "denoise", n_levels=3, n_noise=1).score).all()


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA GPU")
def test_sampling_on_the_gpu_matches_the_cpu(tiny_model):
    model, path = tiny_model
    gpu = load(path, device="cuda")
    for sampler in ("ddpm", "ddim", "sde", "ode"):
        a = gpu.sample(16, 40, sampler=sampler, steps=4, seed=1, context=np.full(60, 0.001))
        b = model.sample(16, 40, sampler=sampler, steps=4, seed=1, context=np.full(60, 0.001))
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)  # same noise (drawn on the CPU), float32 kernels


def test_default_batch_size_depends_on_the_device(tiny_model):
    """512 windows per call on a CPU (bench/batch_size.py: 4096 is ~4x slower there), 4096 on a GPU."""
    from findiffusion.model import default_batch_size

    model, _ = tiny_model
    assert default_batch_size("cpu") == 512 and default_batch_size("cuda") == 4096
    seen: list[int] = []  # windows per network call
    hook = model.denoiser.network.register_forward_hook(lambda mod, inp, out: seen.append(inp[0].shape[0]))
    try:
        a = model.sample(600, 20, sampler="dpm", steps=2, seed=3)
    finally:
        hook.remove()
    assert max(seen) == 512 and sorted(set(seen)) == [88, 512]  # 600 = 512 + 88
    assert np.array_equal(a, model.sample(600, 20, sampler="dpm", steps=2, seed=3, batch_size=512))


@pytest.mark.parametrize("vol_filter", ["garch", "none"])
def test_default_sampler_and_grid_follow_the_model_space(tmp_path, vol_filter):
    """Filter models sample with DPM-Solver++ 10 steps on [0.05, 10] (eq. 8 of sampling); models of
    unfiltered returns with the ODE, 20 steps, from sigma_bar(T). The first network call shows where."""
    model, _ = _fit_tiny_and_read_meta(tmp_path, "train", vol_filter=vol_filter)
    sched = model.denoiser.schedule
    taus = []
    model.denoiser.network.register_forward_hook(lambda mod, args, out: taus.append(float(args[1][0])))
    a = model.sample(3, 20, seed=4)
    sampler, steps = model.default_sampler
    first = taus[0]
    taus.clear()
    b = model.sample(3, 20, sampler=sampler, steps=steps, seed=4)
    np.testing.assert_array_equal(a, b)
    if vol_filter == "garch":
        assert (sampler, steps) == ("dpm", 10) and model.sigma_range == (10.0, 0.05)
        assert len(taus) == 10 and np.isclose(first, float(sched.tau_from_sigma_bar(10.0)))
    else:
        assert (sampler, steps) == ("ode", 20) and model.sigma_range == (None, None)
        assert len(taus) == 39 and np.isclose(first, sched.T)
    assert model.resolve_sampler("ddim", None) == ("ddim", 50)  # other samplers keep their own defaults


def test_day_state_models_fit_save_load_and_condition(tmp_path):
    """TrainConfig.day_state: a 5-channel network whose sampling callable self-conditions (channel 4 non-zero
    after the first call); same seed, same paths after a reload; conditional paths keep their context."""
    from findiffusion.training import TrainConfig

    with pytest.raises(InputError, match="day_state needs a volatility filter"):
        TrainConfig(vol_filter="none", day_state=True)
    model, meta = _fit_tiny_and_read_meta(tmp_path, "train", vol_filter="garch", vol_fit_alpha=False, day_state=True)
    assert meta["fit_config"]["network"]["in_channels"] == 5 and model.denoiser.uses_day_state
    seen = []
    model.denoiser.network.register_forward_hook(lambda mod, args, out: seen.append(args[0][:, 4].abs().max().item()))
    a = model.sample(4, 50, steps=4, seed=2)
    assert seen[0] == 0 and all(v > 0 for v in seen[1:4])
    again = load(tmp_path)
    assert np.array_equal(a, again.sample(4, 50, steps=4, seed=2)) and np.isfinite(a).all()
    ctx = np.random.default_rng(1).normal(0, 0.01, 100)
    cond = again.sample(3, 20, steps=4, seed=2, context=ctx)
    assert cond.shape == (3, 20) and np.isfinite(cond).all()
