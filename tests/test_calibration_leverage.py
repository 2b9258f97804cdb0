"""The decoding asymmetry of the first window (eq. (9) of findiffusion.calibration) on an exact oracle: an i.i.d.
network whose training returns came from the filter with a known asymmetry."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from findiffusion import load
from findiffusion.errors import InputError
from tests.test_calibration import _assert_contexts_ignore, _assert_field_checked, _chunk_states, _exact_filter_model


def test_calibration_by_leverage_gives_fresh_draws_the_training_leverage(tmp_path):
    """Eq. (9) on an oracle network whose residuals are i.i.d. normal, against training returns rebuilt by the same
    filter with asymmetry 0.6 from i.i.d. normal residuals: the decoding asymmetry found is 0.6 (the law that made the
    training series), fresh draws' window sums take the training leverage (with the fitted a = 0 they have none), the
    calibration windows keep the training M of eq. (4) at a_g, sample() tracks states with a_g, real contexts and other
    samplers decode with the fitted filter, and a_g survives save / load (bad or older files handled)."""
    import torch

    from findiffusion.calibration import fit_leverage_asym, leverage_target
    from findiffusion.stylized_facts import skew_parts

    model = _exact_filter_model(tmp_path, 1.0)
    L, C, a_true = model.window, model.config.stitch_context, 0.6
    f = dataclasses.replace(model.vol_filter, alpha=0.15, beta=0.8, asym=a_true, alpha_max=None, asym_max=None)
    r = f.unfilter(np.random.default_rng(8).standard_normal(40_000))  # (T,): the GJR process (3) with a = 0.6
    # the filter fitted on them (start states, bins, M) with the asymmetry set to 0: decoding i.i.d. residuals with
    # a = 0.6 gives exactly the training law, with the fitted a = 0 none of its leverage
    f = model.vol_filter = dataclasses.replace(f.fit(r), asym=0.0)
    target = leverage_target(model, r)
    assert target < -0.3
    with pytest.raises(InputError, match="training returns"):
        model.calibrate(500, seed=1, sampler="ddim", steps=10, by_leverage=True)
    with pytest.raises(InputError, match="two windows"):
        leverage_target(model, r[:2 * L - 1])

    def fresh(model) -> tuple[np.ndarray, np.ndarray]:  # returns of fresh unconditional windows and their var0
        gen = torch.Generator().manual_seed(11)
        var0 = model.start_variance(4000, gen)
        u = model.sample_model_space(4000, L, var=var0, sampler="ddim", steps=10, generator=gen)
        return model.decode_generated(u, var0, sampler="ddim", steps=10), var0

    model.calibrate(4000, seed=1, sampler="ddim", steps=10)
    assert model.leverage_asym is None and model.filter_for("ddim", 10) is f
    lev_off = skew_parts(fresh(model)[0])["leverage"]
    model.calibrate(4000, seed=1, sampler="ddim", steps=10, by_leverage=True, returns=r)
    assert model.leverage_asym == pytest.approx(a_true, abs=0.15)
    x_on, _ = fresh(model)
    assert abs(lev_off) < 0.1 < abs(target)  # the symmetric filter and i.i.d. residuals: no leverage
    assert skew_parts(x_on)["leverage"] == pytest.approx(target, abs=0.1)
    # k last: calibrate's own windows, decoded with a_g, have the training M (eq. (4) weighs falls by 1 + a_g)
    fg = model.filter_for("ddim", 10)
    assert fg.asym == model.leverage_asym and fg.alpha == f.alpha and fg.reaction == f.reaction
    gen = torch.Generator().manual_seed(1)
    var_c = model.start_variance(4000, gen)
    u_c = model.sample_model_space(4000, L, var=var_c, sampler="ddim", steps=10, generator=gen)
    x_c = model.decode_generated(u_c, var_c, sampler="ddim", steps=10)
    assert fg.reaction_moment(*fg.filter(x_c, var_c)) == pytest.approx(f.reaction, rel=1e-8)
    z_c = model.transform.inverse(model.residual_scale * u_c)
    g_rows = model.factor_rows(L, "ddim", 10)
    np.testing.assert_allclose(x_c[:, :L], fg.unfilter(z_c, var_c, g_rows), rtol=1e-12)
    # stitched days: the fitted filter (and k_s), from the fitted filter's view of the first window decoded with a_g
    gen = torch.Generator().manual_seed(3)
    var_l = model.start_variance(50, gen)
    u_l = model.sample_model_space(50, L + 8, var=var_l, sampler="ddim", steps=10, generator=gen)
    x_l = model.decode_generated(u_l, var_l, sampler="ddim", steps=10)
    k = model.residual_scale
    np.testing.assert_allclose(x_l[:, :L], fg.unfilter(model.transform.inverse(k * u_l[:, :L]), var_l, g_rows),
                               rtol=1e-12)
    _, s2 = f.filter(x_l[:, :L], var_l)
    z_st = model.transform.inverse(k * model.stitch_scale * u_l[:, L:])
    np.testing.assert_allclose(x_l[:, L:], f.unfilter(z_st, s2[:, -1], model.factor_rows(L + 8, "ddim", 10)[L:]),
                               rtol=1e-10)
    # the bisection: a target beyond what [-1, 1] reaches gives the nearer end
    assert fit_leverage_asym(model, z_c, var_c, g_rows, -50.0) == 1.0
    assert fit_leverage_asym(model, z_c, var_c, g_rows, 50.0) == -1.0
    # sample() feeds later chunks the fitted filter's states of the days it decodes (a_g on the first window)
    r_s, var_s, starts, states = _chunk_states(model, 2 * L + 8)
    _, s2 = f.filter(r_s, var_s)  # (40, T + 1)
    assert starts[1] == L - C and starts[-1] >= L  # the second chunk's state lies in the first window, the last's not
    for i in (1, len(starts) - 1):
        np.testing.assert_allclose(states[i], f.state(s2[:, starts[i]]), rtol=1e-5)
    _, s2_g = fg.filter(r_s[:, :L], var_s)
    assert np.max(np.abs(f.state(s2_g[:, L - C]) - states[1])) > 1e-3  # a_g's view differs
    # real contexts and other samplers: the fitted filter
    assert model.filter_for("ddim", 11) is f and model.filter_for("ddim", 10, conditional=True) is f
    _assert_contexts_ignore(model, leverage_asym=None)
    # save / load; bad and older files
    model.save(tmp_path / "m9")
    back = load(tmp_path / "m9")
    assert back.leverage_asym == model.leverage_asym
    np.testing.assert_array_equal(back.decode_generated(u_c, var_c, sampler="ddim", steps=10), x_c)
    _assert_field_checked(tmp_path / "m9", "leverage_asym", (1.5, "0.5", True))
