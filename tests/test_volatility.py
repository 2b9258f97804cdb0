"""The volatility filter: GARCH innovations recovered, round trips, reaction moment, fitted alpha, state bins."""

from __future__ import annotations

import json

import numpy as np
import pytest

from findiffusion.errors import InputError
from findiffusion.volatility import VolatilityFilter


def _garch_path(n: int, alpha: float, beta: float, mean: float, var: float, seed: int):
    """A GARCH(1,1) path with variance targeting: returns, innovations and sigma^2_1."""
    rng = np.random.default_rng(seed)
    eps = rng.standard_t(6, n) / np.sqrt(6 / 4)  # unit variance
    omega = var * (1 - alpha - beta)
    s2, r = 2.5 * var, np.empty(n)
    s2_0 = s2
    for t in range(n):
        r[t] = mean + np.sqrt(s2) * eps[t]
        s2 = omega + alpha * (r[t] - mean) ** 2 + beta * s2
    return r, eps, s2_0


def test_volatility_filter_recovers_garch_innovations():
    """Filtering a GARCH path with its own parameters and start variance gives back its innovations."""
    r, eps, s2_0 = _garch_path(3000, 0.05, 0.93, 3e-4, 1e-4, seed=1)
    f = VolatilityFilter(alpha=0.05, beta=0.93, winsor=None, mean=3e-4, var=1e-4)
    z, s2 = f.filter(r, var0=s2_0)
    np.testing.assert_allclose(z, eps, rtol=1e-9, atol=1e-9)
    assert s2.shape == (3001,)
    # fitted m and v are the sample moments; residuals of a fitted filter have unit variance roughly
    g = VolatilityFilter(alpha=0.05, beta=0.93, winsor=None).fit(r)
    assert g.mean == pytest.approx(r.mean()) and g.var == pytest.approx(r.var())
    assert np.var(g.filter(r)[0]) == pytest.approx(1.0, abs=0.1)
    # the filtered variance tracks the true one
    assert np.corrcoef(g.filter(r)[1][:-1], f.filter(r, var0=s2_0)[1][:-1])[0, 1] > 0.99


@pytest.mark.parametrize("winsor", [None, 3.0])
def test_volatility_filter_round_trip_batched_and_capped(winsor):
    rng = np.random.default_rng(0)
    f = VolatilityFilter(winsor=winsor).fit(rng.standard_t(4, 2000) * 0.01)
    r = rng.standard_t(4, (3, 5, 40)) * 0.01  # any leading shape
    var0 = rng.uniform(0.5, 2, (3, 5)) * f.var
    z, s2 = f.filter(r, var0)
    assert z.shape == r.shape and s2.shape == (3, 5, 41)
    np.testing.assert_allclose(f.unfilter(z, var0), r, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(f.unfilter(z[0, 0], s2[0, 0, 0]), r[0, 0], rtol=1e-10, atol=1e-14)
    # winsorized: a shock beyond c raises the variance as much as one of c sd, no more
    if winsor is not None:
        s_big = f.filter(f.mean + np.array([0.0, -50 * np.sqrt(f.var)]), f.var)[1]
        s_c = f.filter(f.mean + np.array([0.0, -winsor * np.sqrt(s_big[1])]), f.var)[1]
        assert s_big[2] == pytest.approx(s_c[2], rel=1e-12)
    # a run of huge residuals cannot push the variance past the cap
    big = f.unfilter(np.full((1, 500), 20.0), f.var)
    assert np.isfinite(big).all() and f.filter(big, f.var)[1].max() <= f.var_max * (1 + 1e-12)
    # start variances come from the range of the training variances
    s = f.sample_start(1000, rng.uniform(size=1000))
    assert f.start_quantiles[0] <= s.min() and s.max() <= f.start_quantiles[-1]


def test_volatility_filter_identity_state_and_errors():
    r = np.random.default_rng(0).normal(0, 0.01, 100)
    none = VolatilityFilter(kind="none").fit(r)
    z, s2 = none.filter(r)
    assert np.array_equal(z, r) and np.all(s2 == 1) and np.array_equal(none.unfilter(z), r)
    assert VolatilityFilter.from_dict(None).kind == "none"  # model files from before the filter
    for f in (VolatilityFilter(winsor=None).fit(r), VolatilityFilter(winsor=4.0).fit(r)):
        g = VolatilityFilter.from_dict(json.loads(json.dumps(f.to_dict(), allow_nan=False)))  # strict JSON
        assert g == f
    with pytest.raises(InputError, match="alpha"):
        VolatilityFilter(alpha=0.5, beta=0.6)
    for bad in (0.0, float("inf"), float("nan")):  # inf would write Infinity into model.json
        with pytest.raises(InputError, match="winsor"):
            VolatilityFilter(winsor=bad)
    good = f.to_dict()
    for key, value in (("var_max", -1.0), ("start_quantiles", [1e-4, float("nan")]),
                       ("start_quantiles", [2e-4, 1e-4]), ("start_quantiles", [-1e-4, 1e-4]),
                       ("reaction", -1.0), ("reaction", float("nan"))):
        with pytest.raises(InputError, match="refit"):
            VolatilityFilter.from_dict({**good, key: value})
    # warm-up: beta^days < 1e-4
    assert VolatilityFilter(beta=0.965).warmup_days() == 259 and 0.965 ** 259 < 1e-4 < 0.965 ** 258
    assert VolatilityFilter(kind="none").warmup_days() == 0
    with pytest.raises(InputError, match="unknown volatility filter"):
        VolatilityFilter(kind="egarch")
    with pytest.raises(InputError, match="refit"):
        VolatilityFilter.from_dict({"kind": "garch"})


def test_volatility_filter_reaction_moment():
    """M = sum s2_t min(z_t^2, c^2) / sum s2_t: by hand, as fitted, and None in older files."""
    f = VolatilityFilter(winsor=4.0)
    assert f.reaction_moment(np.array([1.0, 2.0, 5.0]), np.array([1.0, 2.0, 3.0, 99.0])) == pytest.approx(
        (1 * 1 + 2 * 4 + 3 * 16) / 6)  # the last variance (the next day's) carries no residual
    r = np.random.default_rng(3).standard_t(5, 3000) * 0.01
    f.fit(r)
    assert f.reaction == pytest.approx(f.reaction_moment(*f.filter(r)))
    assert 0.5 < f.reaction < 1.2  # residuals of a fitted filter are about unit variance
    d = f.to_dict()
    del d["reaction"]
    assert VolatilityFilter.from_dict(d).reaction is None


def test_volatility_filter_fits_alpha_by_quasi_likelihood():
    """Eq. (3a): alpha = 0 without clustering, the bound with strong clustering, the truth in between."""
    beta = 0.965
    cases = {  # (returns, expected alpha range)
        "iid normal": (np.random.default_rng(0).normal(3e-4, 0.01, 8000), (0.0, 0.002)),
        "strong garch": (_garch_path(8000, 0.08, 0.9, 3e-4, 1e-4, seed=2)[0], (0.025, 0.03)),
        "weak garch": (_garch_path(20000, 0.012, beta, 3e-4, 1e-4, seed=3)[0], (0.005, 0.02)),
    }
    for name, (r, (lo, hi)) in cases.items():
        f = VolatilityFilter(alpha=0.03, beta=beta, alpha_max=0.03).fit(r)
        assert lo <= f.alpha <= hi, (name, f.alpha)
        # the chosen alpha is at least as likely as any on a grid over [0, alpha_max]
        best = max(VolatilityFilter(alpha=a, beta=beta).fit(r).quasi_loglik(r) for a in np.linspace(0, 0.03, 31))
        assert f.quasi_loglik(r) >= best - 1e-6, name
        # the rest of the fit uses the chosen alpha
        assert f.reaction == pytest.approx(f.reaction_moment(*f.filter(r)))
    # alpha = 0: the filter variance is the constant v, so residuals are standardized returns
    r = cases["iid normal"][0]
    f0 = VolatilityFilter(alpha=0.03, alpha_max=0.0).fit(r)
    z, s2 = f0.filter(r)
    assert f0.alpha == 0.0 and np.allclose(s2, r.var()) and np.allclose(z, (r - r.mean()) / r.std())
    # without alpha_max alpha is kept; the bound is saved and old files (no alpha_max) load
    assert VolatilityFilter(alpha=0.03).fit(r).alpha == 0.03
    g = VolatilityFilter.from_dict(json.loads(json.dumps(f0.to_dict())))
    assert g == f0 and g.alpha_max == 0.0
    d = f0.to_dict()
    del d["alpha_max"]
    assert VolatilityFilter.from_dict(d).alpha_max is None
    for bad in (-0.01, 0.04):
        with pytest.raises(InputError, match="alpha_max"):
            VolatilityFilter(beta=beta, alpha_max=bad)


@pytest.mark.parametrize("winsor", [None, 3.0])
def test_state_path_in_torch_is_the_filter_recursion(winsor):
    """VolatilityFilter.state_path (the denoiser's day-state channel) gives 0.5 log(sigma^2_t / v) of
    :meth:`filter` for every day, from the first day's state, including winsorizing and the cap."""
    import torch

    rng = np.random.default_rng(3)
    f = VolatilityFilter(winsor=winsor).fit(rng.standard_t(4, 2000) * 0.01)
    r = rng.standard_t(3, (6, 50)) * 0.02
    r[0, 5:45] = 0.5  # a run of huge days that meets the cap
    var0 = rng.uniform(0.3, 3, 6) * f.var
    z, s2 = f.filter(r, var0)
    got = f.state_path(torch.from_numpy(z), torch.from_numpy(f.state(var0)))
    np.testing.assert_allclose(got.numpy(), f.state(s2[:, :-1]), rtol=1e-10, atol=1e-12)
    assert np.isclose(s2[0].max(), f.var_max)  # the cap was reached
    none = VolatilityFilter(kind="none")
    assert torch.equal(none.state_path(torch.ones(2, 5), torch.zeros(2)), torch.zeros(2, 5))



def test_volatility_state_bins_are_fitted_from_training_quantiles():
    """state_edges are the state_quantiles of sigma^2 / v with at least MIN_BIN_DAYS days in every bin;
    state_z2 is E z^2 of the training residuals in each bin; alpha = 0 (constant variance) gives one bin."""
    r = _garch_path(3000, 0.08, 0.9, 3e-4, 1e-4, seed=4)[0]
    f = VolatilityFilter(state_quantiles=(0.5, 0.8, 0.95, 0.99)).fit(r)
    z, s2 = f.filter(r)
    h = s2[:-1] / f.var
    # 3000 days: 30 above the 99 % quantile, fewer than MIN_BIN_DAYS = 50, so that edge is dropped
    np.testing.assert_allclose(f.state_edges, np.quantile(h, [0.5, 0.8, 0.95]), rtol=1e-12)
    b = f.state_bin(s2[:-1])
    assert b.min() == 0 and b.max() == 3 and np.bincount(b).min() >= VolatilityFilter.MIN_BIN_DAYS
    np.testing.assert_allclose(f.state_z2, [np.mean(z[b == j] ** 2) for j in range(4)], rtol=1e-12)
    back = VolatilityFilter.from_dict(json.loads(json.dumps(f.to_dict(), allow_nan=False)))
    assert back == f
    # unfilter with one factor per bin scales day t's residual by the factor of sigma^2_t's bin
    g = np.array([0.9, 1.0, 1.1, 1.2])
    rg = f.unfilter(z, s2[0], g)
    zg, s2g = f.filter(rg, s2[0])
    np.testing.assert_allclose(zg, z * g[f.state_bin(s2g[:-1])], rtol=1e-9)
    with pytest.raises(InputError, match="one factor per volatility-state bin"):
        f.unfilter(z, s2[0], g[:3])
    # no clustering: alpha = 0, a constant variance, no edges, one bin
    iid = np.random.default_rng(0).normal(0, 0.01, 3000)
    f0 = VolatilityFilter(alpha_max=0.03, state_quantiles=(0.5, 0.8)).fit(iid)
    assert f0.alpha == 0 and f0.state_edges == () and len(f0.state_z2) == 1
    # bad quantiles and files with inconsistent bins
    for bad in ((0.5, 0.5), (0.0, 0.5), (0.8, 0.5), (1.0,)):
        with pytest.raises(InputError, match="quantiles"):
            VolatilityFilter(state_quantiles=bad)
    for key, value in (("state_edges", [2.0, 1.0, 3.0]), ("state_z2", [1.0, 1.0]), ("state_z2", [1, 1, -1, 1])):
        with pytest.raises(InputError, match="refit"):
            VolatilityFilter.from_dict({**f.to_dict(), key: value})
    d = f.to_dict()
    for key in ("state_quantiles", "state_edges", "state_z2"):  # files from before the bins: one bin
        del d[key]
    assert VolatilityFilter.from_dict(d).state_edges == ()


def _gjr_path(n: int, alpha: float, asym: float, beta: float, var: float, seed: int):
    """A path of eq. (3) with asymmetry a (no winsorizing, mean 0): returns, innovations, sigma^2_1."""
    rng = np.random.default_rng(seed)
    eps = rng.standard_t(6, n) / np.sqrt(6 / 4)  # unit variance, symmetric
    s2, r = var, np.empty(n)
    for t in range(n):
        r[t] = np.sqrt(s2) * eps[t]
        s2 = var * (1 - alpha - beta) + alpha * (1 - asym * np.sign(eps[t])) * s2 * eps[t] ** 2 + beta * s2
    return r, eps, var


def test_asymmetric_filter_is_the_gjr_recursion():
    """With asymmetry a the filter inverts eq. (3): falls raise the variance by alpha (1 + a), rises by alpha (1 - a)."""
    r, eps, s2_0 = _gjr_path(3000, 0.05, 0.7, 0.93, 1e-4, seed=4)
    f = VolatilityFilter(alpha=0.05, asym=0.7, beta=0.93, winsor=None, mean=0.0, var=1e-4)
    z, s2 = f.filter(r, var0=s2_0)
    np.testing.assert_allclose(z, eps, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(f.unfilter(z, s2_0), r, rtol=1e-10, atol=1e-14)
    # one shock of -3 sd against one of +3 sd: sigma^2 rises by alpha (1 -/+ a) sigma^2 z^2 (+ omega + beta s2)
    v = f.var
    down, up = f.unfilter(np.array([-3.0]), v), f.unfilter(np.array([3.0]), v)
    step = (1 - f.alpha - f.beta) * v + f.beta * v
    assert f.filter(down, v)[1][1] == pytest.approx(step + 0.05 * 1.7 * v * 9)
    assert f.filter(up, v)[1][1] == pytest.approx(step + 0.05 * 0.3 * v * 9)
    # a symmetric filter reacts to both alike
    g = VolatilityFilter(alpha=0.05, beta=0.93, winsor=None, var=v)
    assert g.filter(down, v)[1][1] == pytest.approx(g.filter(up, v)[1][1])
    # the reaction moment weighs each residual by (1 - a sgn z), by hand
    assert f.reaction_moment(np.array([1.0, -2.0]), np.array([1.0, 2.0, 9.0])) == pytest.approx(
        (1 * 0.3 * 1 + 2 * 1.7 * 4) / 3)
    # the torch state path (denoiser channel) follows the same recursion
    import torch

    zz, ss = f.filter(r[None, :200], s2_0)
    got = f.state_path(torch.from_numpy(zz), torch.from_numpy(f.state(np.array([s2_0]))))
    np.testing.assert_allclose(got.numpy(), f.state(ss[:, :-1]), rtol=1e-10, atol=1e-12)


def test_view_variance_is_recursion_3_with_another_asymmetry():
    """view_variance (eq. (10) of findiffusion.calibration): the filter's own end variance with its own a, another
    filter's with another a in [-1, 1], the recursion by hand beyond 1 (up to asym_bound, where a rise of c sd leaves
    exactly omega), and errors outside [-1, asym_bound]."""
    import dataclasses

    r, _, s2_0 = _gjr_path(400, 0.05, 0.7, 0.93, 1e-4, seed=5)
    f = VolatilityFilter(alpha=0.05, asym=0.3, beta=0.93, winsor=4.0, mean=1e-4, var=1e-4)
    batch = np.stack([r[:200], r[200:]])  # (2, 200)
    np.testing.assert_allclose(f.view_variance(batch, s2_0), f.filter(batch, s2_0)[1][:, -1], rtol=1e-12)
    for a in (-1.0, 0.0, 0.9):
        np.testing.assert_allclose(f.view_variance(batch, s2_0, a),
                                   dataclasses.replace(f, asym=a).filter(batch, s2_0)[1][:, -1], rtol=1e-12)
    # beyond 1, by hand: a fall of 2 sd, then a rise of 1 sd, at a = 1.8
    v, omega = f.var, f.var * (1 - f.alpha - f.beta)
    two = f.mean + np.sqrt(v) * np.array([-2.0, 0.0])
    s1 = omega + f.beta * v + f.alpha * (1 + 1.8) * 4 * v
    two[1] = f.mean + np.sqrt(s1) * 1.0
    s2 = omega + f.beta * s1 + f.alpha * (1 - 1.8) * 1 * s1
    assert f.view_variance(two, v, 1.8) == pytest.approx(s2, rel=1e-12)
    # the bound: 1 + beta / (alpha c^2); there a rise of c sd (or more: winsorized) leaves omega
    assert f.asym_bound == pytest.approx(1 + 0.93 / (0.05 * 16))
    for z in (4.0, 7.0):
        assert f.view_variance(np.array([f.mean + z * np.sqrt(v)]), v, f.asym_bound) == pytest.approx(omega, rel=1e-9)
    with pytest.raises(InputError, match="view asymmetry"):
        f.view_variance(two, v, f.asym_bound + 0.01)
    with pytest.raises(InputError, match="view asymmetry"):
        f.view_variance(two, v, -1.5)
    assert dataclasses.replace(f, winsor=None).asym_bound == 1.0
    assert dataclasses.replace(f, alpha=0.0).asym_bound == np.inf


def test_asymmetric_filter_fits_the_asymmetry_by_quasi_likelihood():
    """Eq. (3b): the fitted a has the sign and size of the simulated one, about 0 on a symmetric GARCH."""
    beta = 0.965
    cases = {"leverage": (0.6, (0.35, 0.85)), "symmetric": (0.0, (-0.25, 0.25)), "inverse": (-0.6, (-0.85, -0.35))}
    for name, (a, (lo, hi)) in cases.items():
        r = _gjr_path(20000, 0.025, a, beta, 1e-4, seed=5)[0]
        f = VolatilityFilter(beta=beta, winsor=None, alpha_max=0.03, asym_max=1.0).fit(r)
        assert lo <= f.asym <= hi and 0.015 <= f.alpha <= 0.03, (name, f.alpha, f.asym)
        # at least as likely as every point of a plain 21 x 21 grid (up to the fine grid's resolution), the grid
        # scored by the vectorised likelihood, itself checked against the filter's own quasi_loglik at three points
        aa, ss = (x.ravel() for x in np.meshgrid(np.linspace(0, 0.03, 21), np.linspace(-1, 1, 21)))
        grid = f._nll_grid(r, aa, ss) / len(r)  # negative mean quasi-log-likelihood per day
        for i in (0, 200, 440):
            g = VolatilityFilter(alpha=aa[i], asym=ss[i], beta=beta, winsor=None, mean=f.mean, var=f.var)
            assert -g.quasi_loglik(r) == pytest.approx(grid[i], rel=1e-9, abs=1e-12)
        assert f.quasi_loglik(r) >= -grid.min() - 1e-5, name
        assert f.reaction == pytest.approx(f.reaction_moment(*f.filter(r)))
    # without asym_max the asymmetry is kept (0 by default); it round-trips and older files load symmetric
    r = _gjr_path(3000, 0.025, 0.6, beta, 1e-4, seed=6)[0]
    assert VolatilityFilter(alpha_max=0.03).fit(r).asym == 0.0
    assert VolatilityFilter(asym=0.4).fit(r).asym == 0.4
    f = VolatilityFilter(alpha_max=0.03, asym_max=0.5).fit(r)
    assert -0.5 <= f.asym <= 0.5
    assert VolatilityFilter.from_dict(json.loads(json.dumps(f.to_dict()))) == f
    d = f.to_dict()
    del d["asym"], d["asym_max"]
    assert VolatilityFilter.from_dict(d).asym == 0.0
    with pytest.raises(InputError, match="asymmetry"):
        VolatilityFilter(asym=1.5)
    with pytest.raises(InputError, match="asym_max"):
        VolatilityFilter(asym_max=-0.1)
    with pytest.raises(InputError, match="refit"):
        VolatilityFilter.from_dict({**d, "asym": 2.0})


def test_train_config_vol_asym_is_the_filter_asymmetry():
    """TrainConfig.vol_asym: the bound of the fitted asymmetry (with vol_fit_alpha), else the asymmetry itself."""
    from findiffusion.training import TrainConfig

    assert TrainConfig().volatility_filter().asym_max == 0.0  # the default: symmetric
    f = TrainConfig(vol_asym=0.7).volatility_filter()
    assert f.asym_max == 0.7 and f.asym == 0.0
    g = TrainConfig(vol_asym=-0.4, vol_fit_alpha=False).volatility_filter()
    assert g.asym == -0.4 and g.asym_max is None
    r = _gjr_path(4000, 0.025, 0.6, 0.965, 1e-4, seed=7)[0]
    assert g.fit(r).asym == -0.4 and TrainConfig(vol_asym=1.0).volatility_filter().fit(r).asym > 0
    with pytest.raises(InputError, match="vol_asym"):
        TrainConfig(vol_asym=1.5)


def _clustered_returns(n: int, seed: int) -> np.ndarray:
    """Returns with a persistent, heavy-tailed variance: v_t = exp(2 h_t), h an AR(1) with phi = 0.99."""
    rng = np.random.default_rng(seed)
    h = np.zeros(n)
    for t in range(1, n):
        h[t] = 0.99 * h[t - 1] + 0.06 * rng.standard_normal()
    return 0.01 * np.exp(h) * rng.standard_normal(n)


def test_start_variances_follow_the_training_variances_into_the_tail():
    """The start law is the training filter variances' own: mean, E v^2 (what day-1 kurtosis rests on) and
    upper quantiles of many draws match the empirical ones. The old 201-point grid drew its top 0.5 %
    uniformly up to the largest variance, which inflated E v^2 and the 99.9 % quantile."""
    r = _clustered_returns(40_000, 0)
    f = VolatilityFilter().fit(r)
    s2 = f.filter(r)[1][:-1]  # the training variances the start law describes, (T,)
    u = np.random.default_rng(1).uniform(size=400_000)
    v = f.sample_start(len(u), u)
    assert v.mean() == pytest.approx(s2.mean(), rel=0.01)
    assert np.mean(v ** 2) == pytest.approx(np.mean(s2 ** 2), rel=0.03)
    for q in (0.5, 0.9, 0.99, 0.999):
        assert np.quantile(v, q) == pytest.approx(np.quantile(s2, q), rel=0.02)
    assert s2.min() <= v.min() and v.max() <= s2.max()
    # the same quantiles at 201 equal steps (files written before start_probs): a heavier top
    old = VolatilityFilter.from_dict({**f.to_dict(), "start_probs": [],
                                      "start_quantiles": list(np.quantile(s2, np.linspace(0, 1, 201)))})
    assert old.legacy_start_grid and not f.legacy_start_grid and not VolatilityFilter(kind="none").legacy_start_grid
    assert np.quantile(old.sample_start(len(u), u), 0.999) > 1.1 * np.quantile(s2, 0.999)
    # round trip and validation of the probabilities
    assert VolatilityFilter.from_dict(json.loads(json.dumps(f.to_dict(), allow_nan=False))) == f
    good = f.to_dict()
    for probs in (good["start_probs"][:-1], [0.5] + good["start_probs"][1:], good["start_probs"][:-1] + [1.0],
                  good["start_probs"][::-1]):
        with pytest.raises(InputError, match="refit"):
            VolatilityFilter.from_dict({**good, "start_probs": probs})


def test_ito_mean_is_the_in_mean_recursion():
    """Eq. (3c): with var_drift lambda the filter inverts r_t = m - lambda sigma^2_t + sigma_t z_t, fits m as the
    mean of r_t + lambda sigma^2_t, and a fall that raises the variance lowers the mean of the days after it."""
    rng = np.random.default_rng(8)
    m, v, alpha, a, beta, lam = 0.01, 0.04, 0.03, 0.5, 0.95, 0.5  # a large variance, so lambda v = 0.02 >> the SE of m
    f = VolatilityFilter(alpha=alpha, asym=a, beta=beta, winsor=None, mean=m, var=v, var_drift=lam)
    eps = rng.standard_normal(40000)
    r = f.unfilter(eps, v)
    # by hand, day by day: the in-mean GJR recursion
    s2, want = v, np.empty(200)
    for t in range(200):
        want[t] = m - lam * s2 + np.sqrt(s2) * eps[t]
        s2 = v * (1 - alpha - beta) + alpha * (1 - a * np.sign(eps[t])) * s2 * eps[t] ** 2 + beta * s2
    np.testing.assert_allclose(r[:200], want, rtol=1e-12, atol=1e-15)
    z, s2s = f.filter(r, v)
    np.testing.assert_allclose(z, eps, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(f.mean_return(s2s[:-1]), m - lam * s2s[:-1])
    # a fall (-3 sd) against a rise (+3 sd), then a quiet day: the next day's mean differs by -lambda (s2_down - s2_up)
    down, up = f.unfilter(np.array([-3.0, 0.0]), v), f.unfilter(np.array([3.0, 0.0]), v)
    assert down[1] - up[1] == pytest.approx(-lam * alpha * 2 * a * v * 9, rel=1e-12)
    assert down[1] < up[1]
    # fitted on the path with the true alpha, a: m within 4 SE of the truth; the constant-mean filter's m is mean(r)
    se = np.sqrt(v / len(r))
    g = VolatilityFilter(alpha=alpha, asym=a, beta=beta, winsor=None, var_drift=lam).fit(r)
    assert abs(g.mean - m) < 4 * se  # one fixed-point step: m moves s2 only through z, far below the SE
    assert g.mean == pytest.approx(np.mean(r + lam * g.filter(r)[1][:-1]), abs=se / 100)
    assert VolatilityFilter(alpha=alpha, asym=a, beta=beta, winsor=None).fit(r).mean == pytest.approx(r.mean())
    assert abs(r.mean() - m) > 10 * se  # the constant mean would be biased by about lambda v
    # it round-trips; older files load with a constant mean; TrainConfig.vol_ito sets lambda = 1/2
    assert VolatilityFilter.from_dict(json.loads(json.dumps(g.to_dict()))) == g
    d = g.to_dict()
    del d["var_drift"]
    assert VolatilityFilter.from_dict(d).var_drift == 0.0
    from findiffusion.training import TrainConfig

    assert TrainConfig().volatility_filter().var_drift == 0.0
    assert TrainConfig(vol_ito=True).volatility_filter().var_drift == 0.5
    with pytest.raises(InputError, match="var_drift"):
        VolatilityFilter(var_drift=-0.5)
    with pytest.raises(InputError, match="refit"):
        VolatilityFilter.from_dict({**d, "var_drift": "x"})
