"""The decoding asymmetry of the first window (eqs. (9), (9b) of findiffusion.calibration) on an exact oracle: an
i.i.d. network whose training returns came from the filter with a known asymmetry."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from findiffusion import load
from findiffusion.errors import InputError
from findiffusion.volatility import VolatilityFilter
from tests.test_calibration import (
    _assert_contexts_ignore,
    _assert_field_checked,
    _calm_wide_model,
    _chunk_states,
    _exact_filter_model,
)


def _gjr_model(tmp_path, a_true: float, calm_wide: bool = False):
    """The oracle of eq. (9): a model whose network draws i.i.d. normal residuals, its filter fitted on returns that
    filter rebuilt from i.i.d. normal residuals with asymmetry ``a_true``, then set symmetric; ``calm_wide``: the
    network 1.4 times too wide on days 1-5 after calm starts (tests/test_calibration.py). (model, returns)."""
    model = _calm_wide_model(tmp_path) if calm_wide else _exact_filter_model(tmp_path, 1.0)
    f = dataclasses.replace(model.vol_filter, alpha=0.15, beta=0.8, asym=a_true, alpha_max=None, asym_max=None)
    r = f.unfilter(np.random.default_rng(8).standard_normal(40_000))  # (T,): the GJR process (3)
    model.vol_filter = dataclasses.replace(f.fit(r), asym=0.0)
    return model, r


def test_calibration_by_leverage_gives_fresh_draws_the_training_leverage(tmp_path):
    """Eq. (9) on an oracle network whose residuals are i.i.d. normal, against training returns rebuilt by the same
    filter with asymmetry 0.6 from i.i.d. normal residuals: the decoding asymmetry found is 0.6 (the law that made the
    training series), fresh draws' window sums take the training leverage (with the fitted a = 0 they have none), the
    calibration windows keep the training M of eq. (4) at a_g, sample() tracks states with a_g, real contexts and other
    samplers decode with the fitted filter, and a_g survives save / load (bad or older files handled)."""
    import torch

    from findiffusion.calibration import fit_leverage_asym, leverage_target
    from findiffusion.stylized_facts import skew_parts

    a_true = 0.6
    model, r = _gjr_model(tmp_path, a_true)  # decoding i.i.d. residuals with a = 0.6 gives exactly the training law,
    f, L, C = model.vol_filter, model.window, model.config.stitch_context  # with the fitted a = 0 none of its leverage
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


def test_leverage_split_fits_the_first_days_and_the_rest(tmp_path):
    """Eq. (9b) on the oracle of eq. (9), whose training law has asymmetry 0.6 on every day: a_e of the first D days
    and a_g of the rest both come out near 0.6, D-day and L-day sums of fresh draws take the training leverage, the
    first D days decode with a_e and the rest with a_g (eq. (3) by hand, day by day), sample() tracks those states,
    and (a_e, D) survives save / load (bad files named); a split without by_leverage or outside the window is an
    InputError."""
    import torch

    from findiffusion.calibration import leverage_target
    from findiffusion.stylized_facts import skew_parts

    model, r = _gjr_model(tmp_path, 0.6)
    f, L = model.vol_filter, model.window
    D = L // 2
    for bad in (0, L, 2.5, True):
        with pytest.raises(InputError, match="leverage_split"):
            model.calibrate(500, seed=1, sampler="ddim", steps=10, by_leverage=True, returns=r, leverage_split=bad)
    with pytest.raises(InputError, match="by_leverage=True"):
        model.calibrate(500, seed=1, sampler="ddim", steps=10, returns=r, leverage_split=D)
    target_d, target_l = leverage_target(model, r, days=D), leverage_target(model, r)
    assert target_d < -0.2 and target_l < target_d  # longer sums hold more pairs of a fall and a later square
    model.calibrate(4000, seed=1, sampler="ddim", steps=10, by_leverage=True, returns=r, leverage_split=D)
    a_e, d = model.leverage_early
    assert d == D and a_e == pytest.approx(0.6, abs=0.15) and model.leverage_asym == pytest.approx(0.6, abs=0.15)
    gen = torch.Generator().manual_seed(11)
    var0 = model.start_variance(4000, gen)
    u = model.sample_model_space(4000, L, var=var0, sampler="ddim", steps=10, generator=gen)
    x = model.decode_generated(u, var0, sampler="ddim", steps=10)  # (4000, L)
    assert skew_parts(x[:, :D])["leverage"] == pytest.approx(target_d, abs=0.1)
    assert skew_parts(x)["leverage"] == pytest.approx(target_l, abs=0.1)
    # eq. (3) by hand: a_e on days 1..D, then a_g from the state the first D days leave
    fg = model.filter_for("ddim", 10)
    assert (fg.early_asym, fg.early_days, fg.asym) == (a_e, D, model.leverage_asym)
    z, rows = model.transform.inverse(model.residual_scale * u), model.factor_rows(L, "ddim", 10)
    g = None if rows is None else np.broadcast_to(rows, (L, len(f.state_edges) + 1))
    f_e, f_g = dataclasses.replace(f, asym=a_e), dataclasses.replace(f, asym=model.leverage_asym)
    first = f_e.unfilter(z[:, :D], var0, None if g is None else g[:D])
    s2_d = f_e.filter(first, var0)[1][:, -1]
    np.testing.assert_allclose(x, np.concatenate([first, f_g.unfilter(z[:, D:], s2_d, None if g is None else g[D:])],
                                                 axis=1), rtol=1e-12)
    # sample() feeds the second chunk the fitted filter's state of the first window decoded with a_e and a_g
    r_s, var_s, starts, states = _chunk_states(model, L + 8)
    np.testing.assert_allclose(states[1], f.state(f.filter(r_s[:, :L], var_s)[1][:, starts[1]]), rtol=1e-5)
    # a model without the split decodes every day of the window with a_g
    model.leverage_early = None
    assert model.filter_for("ddim", 10).early_asym is None
    assert np.max(np.abs(model.decode_generated(u, var0, sampler="ddim", steps=10) - x)) > 1e-6
    model.leverage_early = (a_e, D)
    model.save(tmp_path / "m9b")
    back = load(tmp_path / "m9b")
    assert back.leverage_early == (a_e, D)
    np.testing.assert_array_equal(back.decode_generated(u, var0, sampler="ddim", steps=10), x)
    _assert_field_checked(tmp_path / "m9b", "leverage_early", ([1.5, D], [0.5, L], [0.5], "x"))


def test_early_asymmetry_of_the_filter_is_recursion_3_day_by_day():
    """A filter with an early asymmetry runs eq. (3) with it on days 1..D of every sequence and with its own a after,
    in both directions (filter inverts unfilter); a bad early asymmetry or day count is an InputError."""
    f = VolatilityFilter(alpha=0.05, asym=0.2, beta=0.93, winsor=4.0, mean=1e-4, var=1e-4)
    fe = dataclasses.replace(f, early_asym=0.9, early_days=5)
    z = np.random.default_rng(3).standard_normal((7, 12))
    r = fe.unfilter(z, 2e-4)
    zz, s2 = fe.filter(r, 2e-4)
    np.testing.assert_allclose(zz, z, rtol=1e-10, atol=1e-12)
    first = dataclasses.replace(f, asym=0.9).filter(r[:, :5], 2e-4)[1]  # (7, 6): a_e on days 1..5
    np.testing.assert_allclose(s2[:, :6], first, rtol=1e-12)
    np.testing.assert_allclose(s2[:, 5:], f.filter(r[:, 5:], first[:, -1])[1], rtol=1e-12)  # then a
    assert np.max(np.abs(s2 - f.filter(r, 2e-4)[1])) > 1e-8
    for bad in ((1.5, 5), (0.5, 0), (0.5, 2.0)):
        with pytest.raises(InputError, match="early asymmetry"):
            dataclasses.replace(f, early_asym=bad[0], early_days=bad[1])


def test_leverage_split_is_fitted_again_after_c_of_returns(tmp_path):
    """With c of eq. (7) on the returns' E r^2 (fitted after eq. (9)), eq. (9b) is solved again on the windows as c
    decodes them: on a network too wide after calm starts (which c narrows) the calibration's own windows, decoded by
    the calibrated model, have the training leverage of D-day and L-day sums to within what the last refit of g and k
    moves it, and still the training M (k last)."""
    import torch

    from findiffusion.calibration import leverage_target
    from findiffusion.stylized_facts import skew_parts

    model, r = _gjr_model(tmp_path, 0.6, calm_wide=True)
    L = model.window
    D = L // 2
    model.calibrate(3000, seed=2, sampler="ddim", steps=10, by_leverage=True, returns=r, leverage_split=D,
                    by_start=True, start_moment="r2")
    assert model.start_factors is not None and model.leverage_early[1] == D
    gen = torch.Generator().manual_seed(2)  # the calibration's own windows, as calibrate draws them
    var0 = model.start_variance(3000, gen)
    u = model.sample_model_space(3000, L, var=var0, sampler="ddim", steps=10, generator=gen)
    x = model.decode_generated(u, var0, sampler="ddim", steps=10)
    assert skew_parts(x[:, :D])["leverage"] == pytest.approx(leverage_target(model, r, days=D), abs=0.02)
    assert skew_parts(x)["leverage"] == pytest.approx(leverage_target(model, r), abs=0.02)
    fg = model.filter_for("ddim", 10)
    assert fg.reaction_moment(*fg.filter(x, var0)) == pytest.approx(model.vol_filter.reaction, rel=1e-8)
