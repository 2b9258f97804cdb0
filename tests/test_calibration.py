"""The residual calibration (eqs. (4)-(6) of findiffusion.calibration) on exact oracle networks: k, g and k_s
found, long paths at eq. (4)'s level, saved and reloaded, unfiltered models left alone."""

from __future__ import annotations

import json

import numpy as np
import pytest

from findiffusion import load
from findiffusion.calibration import estimate_calibration
from findiffusion.errors import InputError, ModelFileError
from findiffusion.stitching import chunk_plan, extend_variances
from tests.test_model import _filter_model, _fit_tiny_and_read_meta


def _exact_filter_model(tmp_path, scale: float):
    """A tiny filter model whose generated model-space windows are exactly ``scale`` x N(0, I): the
    v-parameterized network with a zero head samples N(0, I) exactly (tests/test_denoiser.py), then scaled."""
    model = _filter_model(tmp_path)
    model.denoiser.prediction = "v"
    for p in model.denoiser.network.head[-1].parameters():
        p.data.zero_()
    inner = model._generate
    model._generate = lambda *a, **kw: scale * inner(*a, **kw)
    return model


@pytest.mark.parametrize("scale", [0.8, 1.5])  # DDIM 10 alone gives rms 0.82: nets 0.65 and 1.23
def test_calibration_sets_the_residual_scale_and_the_long_run_variance_of_eq_4(tmp_path, scale):
    """Generated residuals too wide or too narrow: after calibrate(), fresh draws decode to residuals with the
    training reaction moment M, and stitched paths' filter variance settles at eq. (4)'s level
    omega / (1 - alpha M - beta); uncalibrated, it settles far from it (too wide: it runs away to the cap)."""
    import torch

    model = _exact_filter_model(tmp_path, scale)
    f = model.vol_filter
    assert f.reaction is not None and 0.5 < f.reaction < 1.5  # fitted on i.i.d. normal returns
    k = model.calibrate(1000, seed=1, sampler="ddim", steps=10)
    g = torch.Generator().manual_seed(5)
    var0 = model.start_variance(1000, g)
    u = model.sample_model_space(1000, model.window, var=var0, sampler="ddim", steps=10, generator=g)
    z, s2 = f.filter(model.decode_generated(u, var0, sampler="ddim", steps=10), var0)
    assert f.reaction_moment(z, s2) == pytest.approx(f.reaction, rel=0.03)
    level = f.var * (1 - f.alpha - f.beta) / (1 - f.alpha * f.reaction - f.beta)  # eq. (4)

    def late_variance(model) -> float:
        """Mean filter variance over days 500..700 of stitched paths (0.995^500 < 0.1 of the start left)."""
        r = model.sample(300, 700, sampler="ddim", steps=10, seed=2)
        var0 = model.start_variance(300, torch.Generator().manual_seed(2))
        _, s2 = f.filter(r, var0)
        return float(s2[:, 500:700].mean())

    assert late_variance(model) == pytest.approx(level, rel=0.15)
    # eq. (5) per state bin, then k: the generated residuals are i.i.d. with sd 0.82 x scale whatever the state,
    # so k g_b brings them to the training residuals' sd in bin b
    f_bins = np.asarray(model.state_factors)
    assert len(f_bins) == len(f.state_edges) + 1 == 3  # 300 training days: the 95 and 99 % quantiles dropped
    np.testing.assert_allclose(k * f_bins, np.sqrt(f.state_z2) / (0.82 * scale), rtol=0.05)
    model.residual_scale, model.state_factors = 1.0, None
    off = late_variance(model)
    assert (off < 0.6 * level) if scale < 1 else (off > 2 * level)


def test_calibration_is_saved_and_leaves_unfiltered_models_alone(tmp_path):
    model = _exact_filter_model(tmp_path / "f", 1.1)
    model.calibrate(500, seed=0, sampler="ddim", steps=5)
    model.save(tmp_path / "f")
    back = load(tmp_path / "f")
    assert back.residual_scale == model.residual_scale and back.calibrated_for == ("ddim", 5)
    assert back.state_factors == model.state_factors is not None
    assert back.scale_for("ddim", 5) == model.residual_scale and back.scale_for("ddim", 6) == 1.0
    meta = json.loads((tmp_path / "f" / "model.json").read_text())
    for bad in (["warp", 5], ["ddim", 0], "ddim"):
        (tmp_path / "f" / "model.json").write_text(json.dumps({**meta, "calibrated_for": bad}))
        with pytest.raises(ModelFileError, match="calibrated_for"):
            load(tmp_path / "f")
    for bad in ([1.0], [1.0, -1.0, 1.0], "x"):
        (tmp_path / "f" / "model.json").write_text(json.dumps({**meta, "state_factors": bad}))
        with pytest.raises(ModelFileError, match="state_factors"):
            load(tmp_path / "f")
    for bad in (0, -1.0, "x", None):
        meta["residual_scale"] = bad
        (tmp_path / "f" / "model.json").write_text(json.dumps(meta))
        with pytest.raises(ModelFileError, match="residual_scale"):
            load(tmp_path / "f")
    plain, meta = _fit_tiny_and_read_meta(tmp_path / "n", "train", vol_filter="none")
    assert plain.residual_scale == 1.0 == meta["residual_scale"] and plain.calibrate(10) == 1.0
    with pytest.raises(InputError, match="n_windows"):
        model.calibrate(0)
    model.vol_filter.reaction = None  # a file from before the reaction moment: nothing to calibrate to
    assert model.calibrate(10) == 1.0 == model.residual_scale


@pytest.mark.parametrize("wider", [1.25, 0.8])
def test_stitched_chunks_get_their_own_scale_of_eq_6(tmp_path, wider):
    """Stitched chunks ``wider`` times as wide as a first window (an exact oracle network: N(0, I) windows, times
    ``wider`` when conditioned on earlier days): calibrate() finds k_s = 1 / wider, long paths then settle at
    eq. (4)'s level, and without k_s they do not; days of the first window and draws from a real context do not
    see k_s; k_s is saved, and files without it sample with k_s = 1."""
    import torch

    model = _exact_filter_model(tmp_path, 1.0)
    inner = model._generate
    model._generate = lambda *a, **kw: inner(*a, **kw) * (wider if a[4] is not None else 1.0)  # a[4]: the context
    f = model.vol_filter
    model.calibrate(1000, seed=1, sampler="ddim", steps=10)
    assert model.stitch_scale == pytest.approx(1 / wider, rel=0.03)
    level = f.var * (1 - f.alpha - f.beta) / (1 - f.alpha * f.reaction - f.beta)  # eq. (4)

    def late_variance() -> float:  # mean filter variance over days 500..700 of stitched paths
        r = model.sample(300, 700, sampler="ddim", steps=10, seed=2)
        _, s2 = f.filter(r, model.start_variance(300, torch.Generator().manual_seed(2)))
        return float(s2[:, 500:700].mean())

    assert late_variance() == pytest.approx(level, rel=0.15)
    W = model.window
    a = model.sample(50, W + 10, sampler="ddim", steps=10, seed=3)
    ctx = np.random.default_rng(0).normal(0, 0.01, 300)
    c1 = model.sample(20, 40, sampler="ddim", steps=10, seed=4, context=ctx)
    ks, model.stitch_scale = model.stitch_scale, 1.0
    off = late_variance()
    assert (off > 1.3 * level) if wider > 1 else (off < 0.8 * level)
    b = model.sample(50, W + 10, sampler="ddim", steps=10, seed=3)
    np.testing.assert_array_equal(a[:, :W], b[:, :W])  # the first window: k and g only
    assert np.std(a[:, W:]) / np.std(b[:, W:]) == pytest.approx(ks, rel=0.02)
    np.testing.assert_array_equal(c1, model.sample(20, 40, sampler="ddim", steps=10, seed=4, context=ctx))
    assert model.stitch_scale_for("ddim", 10) == 1.0 and model.stitch_scale_for("ddim", 10, conditional=True) == 1.0

    model.stitch_scale = ks
    model.save(tmp_path / "s")
    assert load(tmp_path / "s").stitch_scale == ks and load(tmp_path / "s").stitch_scale_for("ddim", 11) == 1.0
    meta = json.loads((tmp_path / "s" / "model.json").read_text())
    for bad in (0, -1.0, "x", True):
        (tmp_path / "s" / "model.json").write_text(json.dumps({**meta, "stitch_scale": bad}))
        with pytest.raises(ModelFileError, match="stitch_scale"):
            load(tmp_path / "s")
    del meta["stitch_scale"]  # a file written before eq. (6)
    (tmp_path / "s" / "model.json").write_text(json.dumps(meta))
    old = load(tmp_path / "s")
    assert old.stitch_scale is None and old.stitch_scale_for("ddim", 10) == 1.0


def test_calibrate_is_estimate_calibration_on_its_own_draws(tmp_path):
    """calibrate() = estimate_calibration() on the windows it draws (seeded generator: start variances, then
    windows), and the model method is the module function; a file's k and g are then exactly reproducible."""
    import torch

    from findiffusion import calibration

    model = _exact_filter_model(tmp_path, 1.2)
    k = calibration.calibrate(model, 400, seed=7, sampler="ddim", steps=5)
    gen = torch.Generator().manual_seed(7)
    var0 = model.start_variance(400, gen)
    u = model.sample_model_space(400, model.window, var=var0, sampler="ddim", steps=5, generator=gen)
    k2, g2 = estimate_calibration(model, u, var0)
    assert (k2, g2) == (k, model.state_factors) and model.history["calibration"] == {"windows": 400, "seed": 7}
    assert model.calibrate(400, seed=7, sampler="ddim", steps=5) == k and model.calibrated_for == ("ddim", 5)
    assert model.estimate_scale(u, var0, g2) == k
    with pytest.raises(InputError, match="n_windows"):
        calibration.calibrate(model, True)


def test_calibration_by_position_fits_a_window_s_first_days_and_the_rest_apart(tmp_path):
    """by_position: generated residuals whose width differs between a window's first stitch_context days and the
    rest get one g for each (k g_b -> the training sd in bin b over the oracle's sd of those days), where pooled
    factors land between; sampling decodes, tracks the filter state and saves with the two sets."""
    import torch

    model = _exact_filter_model(tmp_path, 1.0)
    L, C = model.window, model.config.stitch_context
    s_pos = torch.where(torch.arange(L) < C, 0.8, 1.4)  # the oracle's width by position in the window, (L,)
    inner = model._generate
    model._generate = lambda *a, **kw: s_pos * inner(*a, **kw)
    f = model.vol_filter
    k = model.calibrate(2000, seed=1, sampler="ddim", steps=10, by_position=True)
    g, g_late = np.asarray(model.state_factors), np.asarray(model.state_factors_late)
    want = np.sqrt(f.state_z2) / 0.82  # the DDIM 10 oracle alone has rms 0.82 (the test above)
    np.testing.assert_allclose(k * g * 0.8, want, rtol=0.06)
    np.testing.assert_allclose(k * g_late * 1.4, want, rtol=0.06)
    assert model.calibrate(2000, seed=1, sampler="ddim", steps=10) > 0 and model.state_factors_late is None
    pooled = model.residual_scale * np.asarray(model.state_factors)
    assert np.all(k * g_late < pooled) and np.all(pooled < k * g)  # one g for all days sits between the two
    model.calibrate(2000, seed=1, sampler="ddim", steps=10, by_position=True)
    # decoding: day t < C scaled by g of its bin, later days by g_late, through eq. (3) by hand
    gen = torch.Generator().manual_seed(3)
    var0 = model.start_variance(50, gen)
    u = model.sample_model_space(50, L, var=var0, sampler="ddim", steps=10, generator=gen)
    z, v, expect = model.transform.inverse(model.residual_scale * u), var0.copy(), []
    for t in range(L):
        zt = z[:, t] * (g if t < C else g_late)[f.state_bin(v)]
        expect.append(f.mean_return(v) + np.sqrt(v) * zt)
        v = f._next_var(v, zt)
    r = model.decode_generated(u, var0, sampler="ddim", steps=10)
    np.testing.assert_allclose(r, np.stack(expect, 1), rtol=1e-12)
    # the states sample() tracks chunk by chunk (extend_variances on row slices) are those of the decoded days
    rows = model.factor_rows(L, "ddim", 10)
    s2 = extend_variances(model, var0[:, None], torch.from_numpy(u[:, :C]), model.residual_scale, rows[:C])
    s2 = extend_variances(model, s2, torch.from_numpy(u[:, C:]), model.residual_scale, rows[C:])
    np.testing.assert_allclose(s2, f.filter(r, var0)[1], rtol=1e-12)
    # saved and reloaded; a late set without the first is a bad file
    model.save(tmp_path / "p")
    back = load(tmp_path / "p")
    assert back.state_factors_late == model.state_factors_late is not None
    np.testing.assert_array_equal(back.factor_rows(L + 5, "ddim", 10)[C:], np.tile(g_late, (L + 5 - C, 1)))
    assert back.factor_rows(L, "ddim", 11) is None  # another sampler: no state scaling
    meta = json.loads((tmp_path / "p" / "model.json").read_text())
    for bad in ({"state_factors_late": [1.0]}, {"state_factors": None}):
        (tmp_path / "p" / "model.json").write_text(json.dumps({**meta, **bad}))
        with pytest.raises(ModelFileError, match="state_factors"):
            load(tmp_path / "p")
    with pytest.raises(InputError, match="split"):
        from findiffusion.calibration import fit_state_factors

        fit_state_factors(model, z, var0, split=L)


def _assert_contexts_ignore(model, **off) -> None:
    """Draws from a real context are the same with the model's attributes ``off`` set as given (restored after):
    what is named there applies to unconditional draws only."""
    ctx = np.random.default_rng(0).normal(0, 0.01, 300)
    before = model.sample(10, 20, sampler="ddim", steps=10, seed=4, context=ctx)
    saved = {name: getattr(model, name) for name in off}
    try:
        for name, value in off.items():
            setattr(model, name, value)
        np.testing.assert_array_equal(before, model.sample(10, 20, sampler="ddim", steps=10, seed=4, context=ctx))
    finally:
        for name, value in saved.items():
            setattr(model, name, value)


def _chunk_states(model, T: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[np.ndarray]]:
    """sample() 40 unconditional T-day paths (DDIM 10, seed 5) and record the state channel the network sees: (the
    returns (40, T), their start variances (40,), the day each chunk's window starts on, the state of each chunk's
    window (40,) each)."""
    import torch

    seen = []
    hook = model.denoiser.network.register_forward_hook(lambda mod, args, out: seen.append(args[0][:, 3, 0].clone()))
    var_s = model.start_variance(40, torch.Generator().manual_seed(5))  # as sample(seed=5) draws them
    r_s = model.sample(40, T, sampler="ddim", steps=10, seed=5)
    hook.remove()
    plan = chunk_plan(model.window, model.config.stitch_context, T, False)
    starts = np.cumsum([0] + [new for _, new in plan])[:-1] - np.array([obs for obs, _ in plan])  # window starts
    per_chunk = len(seen) // len(plan)
    return r_s, var_s, starts, [seen[(i + 1) * per_chunk - 1].numpy() for i in range(len(plan))]


def _assert_field_checked(folder, name: str, bad_values: tuple) -> None:
    """model.json's ``name``: each of ``bad_values`` makes loading a ModelFileError that names it; a file without it
    (written before the field) loads with None."""
    meta = json.loads((folder / "model.json").read_text())
    for bad in bad_values:
        (folder / "model.json").write_text(json.dumps({**meta, name: bad}))
        with pytest.raises(ModelFileError, match=name):
            load(folder)
    del meta[name]
    (folder / "model.json").write_text(json.dumps(meta))
    assert getattr(load(folder), name) is None


def _with_alpha(model, alpha: float):
    """A shallow copy of ``model`` whose filter has reaction ``alpha`` (alpha = 0: a constant variance)."""
    import copy
    import dataclasses

    out = copy.copy(model)
    out.vol_filter = dataclasses.replace(model.vol_filter, alpha=alpha)
    return out


def _calm_wide_model(tmp_path):
    """An exact oracle network (:func:`_exact_filter_model`) whose first windows are 1.4 times too wide on days 1-5
    after calm starts (filter state < 0): what eq. (7) is for."""
    import torch

    model = _exact_filter_model(tmp_path, 1.0)
    L, inner = model.window, model._generate

    def oracle(*a, **kw):  # a[4]: the context (None for a path's first window); kw["state"]: 0.5 log(s2 / v)
        x = inner(*a, **kw)
        if a[4] is None:
            x = x * (1 + 0.4 * (kw["state"] < 0).float()[:, None] * (torch.arange(L) < 5).float()[None])
        return x

    model._generate = oracle
    return model


def test_calibration_by_start_matches_the_targets_by_start_state_and_day_range(tmp_path):
    """An oracle network 1.4 times too wide on days 1-5 after calm starts (state < 0): calibrate(by_start=True) makes
    fresh draws' E z^2 match the training targets in every start group and day range (without it the calm groups'
    first days are far off); decoding applies c by hand-checked rule, sample() tracks the same states, stitched days
    and conditional draws see no c, and the factors survive save/load."""
    import torch

    model = _calm_wide_model(tmp_path)
    L, f = model.window, model.vol_filter
    r = np.random.default_rng(7).normal(0, 0.01, 6000)  # training returns for the targets (i.i.d.: z^2 by start
    with pytest.raises(InputError, match="start-state targets"):  # state differs through the filter only)
        model.start_targets = None
        model.calibrate(500, seed=1, sampler="ddim", steps=10, by_start=True)

    def z2_table(model) -> np.ndarray:  # E z^2 of fresh decoded draws per start group and day range
        gen = torch.Generator().manual_seed(11)
        var0 = model.start_variance(3000, gen)
        u = model.sample_model_space(3000, L, var=var0, sampler="ddim", steps=10, generator=gen)
        z, _ = f.filter(model.decode_generated(u, var0, sampler="ddim", steps=10), var0)
        t = model.start_targets
        grp, rng = t.group(var0 / f.var), t.day_range(L)
        return np.array([[np.mean(z[grp == j][:, rng == i] ** 2) for i in range(t.shape[1])]
                         for j in range(t.shape[0])])

    model.calibrate(3000, seed=1, sampler="ddim", steps=10, returns=r)  # targets stored, no c
    assert model.start_factors is None and model.start_targets.shape == (6, 3)
    target = np.asarray(model.start_targets.z2)
    off = z2_table(model)
    model.calibrate(3000, seed=1, sampler="ddim", steps=10, by_start=True)
    on = z2_table(model)
    np.testing.assert_allclose(on, target, rtol=0.06)
    assert np.max(np.abs(off / target - 1)) > 0.3  # the calm groups' first days, uncalibrated by start
    c = np.asarray(model.start_factors)
    assert np.all(c[:2, 0] < 0.85) and np.all(np.abs(c[-2:] - 1) < 0.1)  # narrowed where the oracle was wide
    # decoding by hand: c of the start group and day range on the first window, g of the day's bin, eq. (3)
    gen = torch.Generator().manual_seed(3)
    var_d = var0 = model.start_variance(60, gen)
    u = model.sample_model_space(60, L + 8, var=var0, sampler="ddim", steps=10, generator=gen)
    grp, rng = model.start_targets.group(var0 / f.var), model.start_targets.day_range(L)
    mult = np.concatenate([c[grp][:, rng], np.ones((60, 8))], axis=1)  # (60, L + 8): no c on the stitched days
    scale = np.r_[np.ones(L), np.full(8, model.stitch_scale)] * model.residual_scale
    z, v, expect, g = model.transform.inverse(scale * u) * mult, var0.copy(), [], np.asarray(model.state_factors)
    for t in range(L + 8):
        zt = z[:, t] * g[f.state_bin(v)]
        expect.append(f.mean_return(v) + np.sqrt(v) * zt)
        v = f._next_var(v, zt)
    decoded = model.decode_generated(u, var0, sampler="ddim", steps=10)
    np.testing.assert_allclose(decoded, np.stack(expect, 1), rtol=1e-12)
    # sample() tracks those states chunk by chunk, and draws the same paths decode_generated gives
    states = []
    model.denoiser.network.register_forward_hook(lambda mod, args, out: states.append(args[0][:, 3, 0].clone()))
    gen = torch.Generator().manual_seed(5)
    var0 = model.start_variance(40, gen)
    r_s = model.sample(40, L + 8, sampler="ddim", steps=10, seed=5)
    _, s2 = f.filter(r_s, var0)
    C = model.config.stitch_context
    np.testing.assert_allclose(states[-1].numpy(), f.state(s2[:, L - C]), rtol=1e-5)  # the stitched chunk's start
    # other samplers and real contexts: no c
    assert model.start_rows(var0, L, "ddim", 11) is None and model.start_rows(var0, L, "ddim", 10, conditional=True) is None
    _assert_contexts_ignore(model, start_factors=None)
    # saved and reloaded; factors without targets, or of the wrong shape, are a bad file
    model.save(tmp_path / "c")
    back = load(tmp_path / "c")
    assert back.start_factors == model.start_factors and back.start_targets == model.start_targets
    np.testing.assert_array_equal(back.decode_generated(u, var_d, sampler="ddim", steps=10), decoded)
    meta = json.loads((tmp_path / "c" / "model.json").read_text())
    for bad in ({"start_targets": None}, {"start_factors": [[1.0, 1.0]]}, {"start_factors": [[0.0] * 3] * 6}):
        (tmp_path / "c" / "model.json").write_text(json.dumps({**meta, **bad}))
        with pytest.raises(ModelFileError, match="start_factors"):
            load(tmp_path / "c")
    (tmp_path / "c" / "model.json").write_text(json.dumps({**meta, "start_targets": {"edges": [2.0, 1.0]}}))
    with pytest.raises(ModelFileError, match="start targets"):
        load(tmp_path / "c")
    for key in ("start_targets", "start_factors"):  # a file written before eq. (7)
        del meta[key]
    (tmp_path / "c" / "model.json").write_text(json.dumps(meta))
    old = load(tmp_path / "c")
    assert old.start_targets is None and old.start_factors is None and old.start_rows(var0, L, "ddim", 10) is None


def test_fit_can_calibrate_by_start_and_stores_the_targets(tmp_path):
    """FitConfig.calibrate_by_start: the fit's calibration fits c of eq. (7) as calibrate(by_start=True) does on the
    same windows; every filter fit stores the targets (computed from its own series); too short a series is refused."""
    import dataclasses

    import findiffusion as fd
    from findiffusion.startstate import start_targets
    from tests.conftest import tiny_config

    cfg = tiny_config(steps=5)
    cfg = dataclasses.replace(cfg, calibration_windows=500, calibrate_by_start=True,
                              train=dataclasses.replace(cfg.train, vol_filter="garch", vol_fit_alpha=False))
    r = np.random.default_rng(0).normal(0, 0.01, 400)
    model = fd.fit(r, cfg, out_dir=tmp_path / "m")
    assert model.start_targets == start_targets(model, r) and model.start_factors is not None
    ref = load(tmp_path / "m")
    assert ref.start_factors == model.start_factors and ref.config.calibrate_by_start
    ref.calibrate(500, seed=cfg.seed, by_start=True)
    assert ref.start_factors == model.start_factors
    plain = fd.fit(r, dataclasses.replace(cfg, calibrate_by_start=False))
    assert plain.start_factors is None and plain.start_targets == model.start_targets
    with pytest.raises(InputError, match="two windows"):
        fd.fit(r[: 2 * cfg.train.window - 1], cfg)


def test_shock_correlation_is_the_correlation_of_every_training_window_s_shock_parts(tmp_path):
    """The target of eq. (8) against a loop over the windows of a fat-tailed series (all of them, or evenly spaced
    starts when capped); a series shorter than two windows is refused."""
    from findiffusion.calibration import shock_correlation

    model = _filter_model(tmp_path)
    f, L = model.vol_filter, model.window
    r = 0.01 * np.random.default_rng(3).standard_t(5, 30 * L)
    z, s2 = f.filter(r)
    a = np.sqrt(s2[:-1]) * z  # the shock part sigma_t z_t of every day
    wins = np.array([a[s:s + L] for s in range(len(a) - L + 1)])  # (n, L)
    np.testing.assert_allclose(shock_correlation(model, r), np.corrcoef(wins.T), atol=1e-10)
    cap = len(wins) // 3
    stride = -(-len(wins) // cap)
    assert stride > 1
    np.testing.assert_allclose(shock_correlation(model, r, max_windows=cap), np.corrcoef(wins[::stride].T), atol=1e-10)
    with pytest.raises(InputError, match="two windows"):
        shock_correlation(model, r[:2 * L - 1])


def test_calibration_by_correlation_gives_fresh_draws_the_training_shock_correlation(tmp_path, monkeypatch):
    """Eq. (8) on an oracle network whose days are independent, against MA(1) training returns (lag-1 correlation
    0.4): fresh draws' shock parts take the training correlation (without the map they have none), k is re-fitted so
    that the recoloured windows keep the training M, each day keeps its width, day t depends on days 1..t only, sample() tracks the recoloured states, stitched days, real contexts and
    other samplers are untouched, and the map survives save / load (bad or older files handled)."""
    import torch

    from findiffusion.calibration import shock_correlation

    model = _exact_filter_model(tmp_path, 1.0)
    L, f, C = model.window, model.vol_filter, model.config.stitch_context
    e = np.random.default_rng(5).normal(0, 0.01, 20_001)
    r = e[1:] + 0.5 * e[:-1]  # MA(1): corr(r_t, r_t+1) = 0.5 / 1.25
    target = shock_correlation(model, r)
    lag1 = lambda m: np.mean(np.diag(m, 1))  # noqa: E731
    assert 0.3 < lag1(target) < 0.45
    with pytest.raises(InputError, match="training returns"):
        model.calibrate(500, seed=1, sampler="ddim", steps=10, by_correlation=True)

    def shocks(model) -> tuple[np.ndarray, np.ndarray]:  # decoded shock parts and residuals of fresh draws, (n, L)
        gen = torch.Generator().manual_seed(11)
        var0 = model.start_variance(4000, gen)
        u = model.sample_model_space(4000, L, var=var0, sampler="ddim", steps=10, generator=gen)
        z, s2 = f.filter(model.decode_generated(u, var0, sampler="ddim", steps=10), var0)
        return np.sqrt(s2[:, :-1]) * z, z

    model.calibrate(4000, seed=1, sampler="ddim", steps=10)
    assert model.shock_map is None and model.shock_for("ddim", 10) is None
    (a_off, z_off), k_off = shocks(model), model.residual_scale
    model.calibrate(4000, seed=1, sampler="ddim", steps=10, by_correlation=True, returns=r)
    a_on, z_on = shocks(model)
    # g and k re-fitted with the map in the loop: calibrate's own windows, recoloured, have the training M (eq. (4))
    gen = torch.Generator().manual_seed(1)
    var_c = model.start_variance(4000, gen)
    u_c = model.sample_model_space(4000, L, var=var_c, sampler="ddim", steps=10, generator=gen)
    moment = lambda: f.reaction_moment(*f.filter(model.decode_generated(u_c, var_c, sampler="ddim", steps=10),  # noqa: E731
                                                  var_c))
    assert moment() == pytest.approx(f.reaction, rel=1e-8)
    # eq. (8) solved in composed rounds: on the windows it is fitted to, the decoded shocks take the target closely
    import findiffusion.calibration as cal

    z_c, g_c = model.transform.inverse(model.residual_scale * u_c), model.state_factors
    miss = {}
    for iters in (1, cal.SHOCK_ITERS):
        monkeypatch.setattr(cal, "SHOCK_ITERS", iters)
        zm = cal.apply_shock_map(z_c, *cal.fit_shock_map(model, z_c, var_c, g_c, target))
        zz, s2 = f.filter(f.unfilter(zm, var_c, g_c), var_c)
        miss[iters] = np.abs(np.corrcoef((np.sqrt(s2[:, :-1]) * zz).T) - target).max()
    monkeypatch.undo()
    assert miss[cal.SHOCK_ITERS] < 0.002 < 0.004 < miss[1]  # one round leaves about 0.009 (sigma moved with z)
    k_on, model.residual_scale = model.residual_scale, k_off  # the k fitted without the map misses M by 2-3 %
    assert abs(moment() / f.reaction - 1) > 0.01
    model.residual_scale = k_on
    assert abs(lag1(np.corrcoef(a_off.T))) < 0.05
    assert abs(lag1(np.corrcoef(a_on.T)) - lag1(target)) < 0.04
    assert np.max(np.abs(np.corrcoef(a_on.T) - target)) < 0.12  # every pair of days, 4000 windows
    ratio = lambda a: a.sum(1).var() / a.var(0).sum()  # noqa: E731  var of the window sum / sum of the days' variances
    assert ratio(a_off) < 1.1 and abs(ratio(a_on) / (1 + 2 * np.triu(target, 1).sum() / L) - 1) < 0.1
    np.testing.assert_allclose(np.mean(z_on ** 2, 0), np.mean(z_off ** 2, 0), rtol=0.1)  # widths kept by day
    m = model.shock_map
    assert not np.triu(m, 1).any() and np.all(np.diag(m) > 0)
    from findiffusion.calibration import check_shock_map

    check_shock_map(m, model.shock_mean, L)  # what calibrate stores is valid; upper, non-positive or unpaired is not
    for bad_m, bad_mu in ((m + np.triu(np.ones((L, L)), 1), model.shock_mean), (-m, model.shock_mean),
                          (m, None), (m[:-1, :-1], model.shock_mean[:-1])):
        with pytest.raises(InputError, match="lower-triangular"):
            check_shock_map(bad_m, bad_mu, L)
    # causal: moving day t of a window moves no earlier day
    gen = torch.Generator().manual_seed(3)
    var0 = model.start_variance(50, gen)
    u = model.sample_model_space(50, L + 8, var=var0, sampler="ddim", steps=10, generator=gen)
    base = model.decode_generated(u, var0, sampler="ddim", steps=10)
    u2 = u.copy()
    u2[:, L // 2] += 1.0
    moved = model.decode_generated(u2, var0, sampler="ddim", steps=10)
    np.testing.assert_array_equal(moved[:, :L // 2], base[:, :L // 2])
    assert np.all(moved[:, L // 2] != base[:, L // 2])
    # the stitched days get no map: the same as decoding without it from the first window's end state
    saved = model.shock_map, model.shock_mean
    model.shock_map = model.shock_mean = None
    plain = model.decode_generated(u, var0, sampler="ddim", steps=10)
    model.shock_map, model.shock_mean = saved
    assert np.max(np.abs(plain[:, :L] - base[:, :L])) > 1e-4
    _, s2 = f.filter(base[:, :L], var0)
    scale = np.r_[np.ones(L), np.full(8, model.stitch_scale)] * model.residual_scale
    z_st = model.transform.inverse(scale * u)[:, L:]
    np.testing.assert_allclose(base[:, L:], f.unfilter(z_st, s2[:, -1], model.factor_rows(8, "ddim", 10)), rtol=1e-10)
    # sample() feeds the network the states of the recoloured days
    states = []
    model.denoiser.network.register_forward_hook(lambda mod, args, out: states.append(args[0][:, 3, 0].clone()))
    gen = torch.Generator().manual_seed(5)
    var_s = model.start_variance(40, gen)
    r_s = model.sample(40, L + 8, sampler="ddim", steps=10, seed=5)
    _, s2 = f.filter(r_s, var_s)
    np.testing.assert_allclose(states[-1].numpy(), f.state(s2[:, L - C]), rtol=1e-5)
    # real contexts and other samplers: no map
    assert model.shock_for("ddim", 11) is None and model.shock_for("ddim", 10, conditional=True) is None
    _assert_contexts_ignore(model, shock_map=None, shock_mean=None)
    # save / load; bad and older files
    model.save(tmp_path / "m8")
    back = load(tmp_path / "m8")
    np.testing.assert_array_equal(back.shock_map, model.shock_map)
    np.testing.assert_array_equal(back.decode_generated(u, var0, sampler="ddim", steps=10),
                                  model.decode_generated(u, var0, sampler="ddim", steps=10))
    meta = json.loads((tmp_path / "m8" / "model.json").read_text())
    for bad in ({"shock_mean": None}, {"shock_map": meta["shock_map"][:-1]}, {"shock_map": [[1.0, 0.0]] * L}):
        (tmp_path / "m8" / "model.json").write_text(json.dumps({**meta, **bad}))
        with pytest.raises(ModelFileError, match="shock_map"):
            load(tmp_path / "m8")
    del meta["shock_map"], meta["shock_mean"]  # a file written before eq. (8)
    (tmp_path / "m8" / "model.json").write_text(json.dumps(meta))
    assert load(tmp_path / "m8").shock_for("ddim", 10) is None
