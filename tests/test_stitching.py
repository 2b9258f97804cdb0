"""Tests of findiffusion.stitching: the chunk plan, the leverage across the stitch and the view of eq. (10) on an oracle
network (the sampling loop and its states are also checked through DiffusionModel.sample in tests/test_model.py and
tests/test_calibration.py)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from findiffusion import load
from findiffusion.errors import InputError
from findiffusion.stitching import chunk_plan, fit_stitch_view, stitch_targets, straddle_leverage
from findiffusion.stylized_facts import skew_parts


@pytest.mark.parametrize(("L", "C"), [(32, 8), (128, 64), (64, 63)])
def test_chunk_plan_covers_the_path(L, C):
    for has_context in (False, True):
        for length in (1, L - C, L, L + 1, 3 * L + 7):
            plan = chunk_plan(L, C, length, has_context)
            assert sum(new for _, new in plan) == length
            assert all(new >= 1 for _, new in plan)
            first_obs = C if has_context else 0
            assert [obs for obs, _ in plan] == [first_obs] + [C] * (len(plan) - 1)
            assert all(obs + new <= L for obs, new in plan)
            assert all(obs + new == L for obs, new in plan[:-1])  # every window but the last is used whole


def test_straddle_leverage_is_the_leverage_of_the_pairs_the_split_cuts():
    """Eq. (10a) against its definition summed pair by pair, and against skew_parts' leverage (6b) for two days (the
    one pair there is)."""
    rng = np.random.default_rng(2)
    e = rng.standard_normal((5000, 6))
    x = e * np.exp(-0.3 * np.cumsum(np.roll(e, 1, axis=1) * (np.arange(6) > 0), axis=1))  # falls widen later days
    xc = x - x.mean(0)
    sd = xc.sum(1).std()
    for split in (1, 3, 5):
        pairs = sum(np.mean(xc[:, s] * xc[:, t] ** 2) for s in range(split) for t in range(split, 6))
        assert straddle_leverage(x, split) == pytest.approx(3 * pairs / sd ** 3, rel=1e-10)
    assert straddle_leverage(x, 3) < -0.05  # the construction has leverage
    assert straddle_leverage(x[:, :2], 1) == pytest.approx(skew_parts(x[:, :2])["leverage"], rel=1e-10)
    for bad in ((x, 0), (x, 6), (x[0], 1), (x[:1], 1)):
        with pytest.raises(InputError, match="split"):
            straddle_leverage(*bad)


def test_stitch_targets_are_those_of_every_training_stretch(tmp_path):
    """Eq. (10)'s targets from per-stretch sums in chunks equal straddle_leverage and the mean day variance of the
    stretches of L + D days written out (every start, and evenly spaced ones when capped); too short a series is an
    error."""
    from tests.test_calibration import _exact_filter_model

    model = _exact_filter_model(tmp_path, 1.0)
    L, D = model.window, 16
    r = np.random.default_rng(3).standard_t(4, 21_000) * 0.01  # more stretches than one chunk of 20 000
    for cap in (None, 5000):
        lev, var = stitch_targets(model, r, D, cap)
        starts = np.arange(len(r) - L - D + 1)
        starts = starts if cap is None else starts[::-(-len(starts) // cap)]
        x = np.lib.stride_tricks.sliding_window_view(r, L + D)[starts]
        assert lev == pytest.approx(straddle_leverage(x, L), rel=1e-9)
        assert var == pytest.approx(x[:, L:].var(0).mean(), rel=1e-9)
    with pytest.raises(InputError, match="stretches"):
        stitch_targets(model, r[:2 * (L + D) - 1], D)


def test_calibration_by_stitch_gives_fresh_paths_the_training_leverage_across_the_stitch(tmp_path):
    """Eq. (10) on an oracle network whose residuals are i.i.d. normal, against training returns from the same filter
    with asymmetry 0.6 while the model's filter is fitted with none: without the view no leverage crosses the stitch;
    with it fresh paths' pairs across the stitch take the training leverage and the stitched days the training
    variance (the calibration's own draws exactly); decode_generated and sample() start the stitched days from a_s's
    view; real contexts and other samplers keep the fitted filter's; a_s survives save / load (bad or older files
    handled)."""
    from tests.test_calibration import (
        _assert_contexts_ignore,
        _assert_field_checked,
        _chunk_states,
        _exact_filter_model,
    )

    model = _exact_filter_model(tmp_path, 1.0)
    L, C = model.window, model.config.stitch_context
    f = dataclasses.replace(model.vol_filter, alpha=0.08, beta=0.9, asym=0.6, alpha_max=None, asym_max=None)
    r = f.unfilter(np.random.default_rng(8).standard_normal(40_000))  # (T,): the GJR process (3) with a = 0.6
    f = model.vol_filter = dataclasses.replace(f.fit(r), asym=0.0)
    lev_target, var_target = stitch_targets(model, r, L - C)
    assert lev_target < -0.15
    with pytest.raises(InputError, match="training returns"):
        model.calibrate(500, seed=1, sampler="ddim", steps=10, by_stitch=True)

    def fresh(model, seed: int = 11, n: int = 8000) -> np.ndarray:  # fresh unconditional (L + L - C)-day paths
        gen = torch.Generator().manual_seed(seed)
        var0 = model.start_variance(n, gen)
        u = model.sample_model_space(n, 2 * L - C, var=var0, sampler="ddim", steps=10, generator=gen)
        return model.decode_generated(u, var0, sampler="ddim", steps=10)

    model.calibrate(8000, seed=1, sampler="ddim", steps=10)
    assert model.stitch_asym is None and model.stitch_asym_for("ddim", 10) is None
    assert abs(straddle_leverage(fresh(model), L)) < 0.05  # i.i.d. residuals, a symmetric filter: none
    model.calibrate(8000, seed=1, sampler="ddim", steps=10, by_stitch=True, returns=r)
    a_s, k_s = model.stitch_asym, model.stitch_scale
    assert 0.3 < a_s < f.asym_bound
    x = fresh(model)
    assert straddle_leverage(x, L) == pytest.approx(lev_target, abs=0.06)
    assert x[:, L:].var(0).mean() == pytest.approx(var_target, rel=0.04)
    # the calibration's own draws meet both targets to the bisection's precision (k_s last)
    gen = torch.Generator().manual_seed(1)
    var_c = model.start_variance(8000, gen)
    u_c = model.sample_model_space(8000, L, var=var_c, sampler="ddim", steps=10, generator=gen)
    k, g = model.residual_scale, model.factor_rows(2 * L - C, "ddim", 10)
    first = f.unfilter(model.transform.inverse(k * u_c), var_c, g[:L])  # (n, L)
    _, s2 = f.filter(first, var_c)
    u2 = model.sample_model_space(1, L - C, context_u=u_c, var=s2, sampler="ddim", steps=10, generator=gen)[:, 0]
    x_c = model.decode_generated(np.concatenate([u_c, u2], axis=1), var_c, sampler="ddim", steps=10)
    assert x_c[:, L:].var(0).mean() == pytest.approx(var_target, rel=1e-6)
    assert straddle_leverage(x_c, L) == pytest.approx(lev_target, abs=2e-3)
    # decode_generated: the first window as before, the stitched days (k k_s) from a_s's view of it
    np.testing.assert_allclose(x_c[:, :L], first, rtol=1e-12)
    view = f.view_variance(first, var_c, a_s)
    assert np.max(np.abs(view / s2[:, -1] - 1)) > 0.05  # a_s's view differs from the fitted filter's
    np.testing.assert_allclose(x_c[:, L:], f.unfilter(model.transform.inverse(k * k_s * u2), view, g[L:]), rtol=1e-10)
    assert fit_stitch_view(model, first, var_c, k * u2, g[L:], (-50.0, var_target))[0] == pytest.approx(
        min(f.asym_bound, 10.0))  # a target beyond reach: the nearer end
    # sample(): the chunk whose window starts at or after the stitch sees the state from a_s's view
    r_s, var_s, starts, states = _chunk_states(model, 2 * L + 8)
    assert starts[-1] >= L
    s2_s = np.concatenate([f.filter(r_s[:, :L], var_s)[1][:, :-1],
                           f.filter(r_s[:, L:], f.view_variance(r_s[:, :L], var_s, a_s))[1]], axis=1)  # (40, T + 1)
    for i in (1, len(starts) - 1):
        np.testing.assert_allclose(states[i], f.state(s2_s[:, starts[i]]), rtol=1e-5)
    # real contexts and other samplers: the fitted filter's view
    assert model.stitch_asym_for("ddim", 11) is None and model.stitch_asym_for("ddim", 10, conditional=True) is None
    _assert_contexts_ignore(model, stitch_asym=None)
    # save / load; bad and older files
    model.save(tmp_path / "m10")
    back = load(tmp_path / "m10")
    assert back.stitch_asym == a_s
    np.testing.assert_array_equal(back.decode_generated(np.concatenate([u_c, u2], axis=1), var_c, sampler="ddim",
                                                        steps=10), x_c)
    _assert_field_checked(tmp_path / "m10", "stitch_asym", (f.asym_bound + 0.1, -1.5, "0.5", True))
