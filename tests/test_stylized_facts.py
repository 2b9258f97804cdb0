"""Stylized-facts metrics against known answers (closed forms and known processes)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from findiffusion import stylized_facts as sf
from findiffusion.data import make_windows
from findiffusion.errors import InputError


@pytest.fixture(scope="module")
def gauss() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((2000, 64))


def garch_series(n: int, seed: int, omega: float = 0.05, alpha: float = 0.1, beta: float = 0.85) -> np.ndarray:
    """GARCH(1,1) with Gaussian innovations, simulated with arch's own simulator (an independent oracle)."""
    from arch.univariate import GARCH, Normal, ZeroMean

    sim = ZeroMean(None, volatility=GARCH(p=1, q=1), distribution=Normal(seed=seed))
    return sim.simulate([omega, alpha, beta], n, burn=500)["data"].to_numpy()


def test_gaussian_iid_has_no_stylized_facts(gauss):
    f = sf.facts(gauss)
    # standard errors: ACF ~ 1/sqrt(2000 * 44) = 0.0034, kurtosis ~ sqrt(24 / 128000) = 0.014
    assert np.all(np.abs(f.acf_r) < 0.02)
    assert np.all(np.abs(f.acf_abs) < 0.02)
    assert np.all(np.abs(f.leverage) < 0.02)
    assert abs(f.kurtosis) < 0.1
    assert abs(f.skewness) < 0.05
    assert np.all(np.abs(f.kurt_horizon) < 0.3)


def test_var_es_of_gaussian_match_closed_form(gauss):
    z = stats.norm.ppf(0.99)
    var, es = sf.var_es(gauss, 0.99)
    assert var == pytest.approx(z, rel=0.03)  # 2.326
    assert es == pytest.approx(stats.norm.pdf(z) / 0.01, rel=0.04)  # 2.665


def test_ar1_acf_is_phi_to_the_k():
    rng = np.random.default_rng(1)
    phi, n = 0.4, 200_000
    e = rng.standard_normal(n)
    x = np.empty(n)
    x[0] = e[0] / np.sqrt(1 - phi**2)
    for t in range(1, n):
        x[t] = phi * x[t - 1] + e[t]
    w = make_windows(x, 64)[::16]  # (N, 64)
    a = sf.acf(w, (1, 2, 3))
    np.testing.assert_allclose(a, phi ** np.arange(1, 4), atol=0.02)


def test_garch_process_has_positive_acf_of_abs_returns_and_none_of_returns():
    w = make_windows(garch_series(60_000, seed=3), 64)[::8]
    a_abs, a_r = sf.acf(w, absolute=True), sf.acf(w)
    assert np.all(a_abs > 0.05)
    assert a_abs[0] > 0.1
    assert a_abs[0] > a_abs[-1]  # decays
    assert np.all(np.abs(a_r) < 0.03)
    # Bollerslev (1986): kurtosis = 3 (1 - (a + b)^2) / (1 - (a + b)^2 - 2 a^2) = 3.774 for Gaussian innovations
    assert sf.excess_kurtosis(w) == pytest.approx(3 * (1 - 0.95**2) / (1 - 0.95**2 - 2 * 0.1**2) - 3, abs=0.2)


def test_leverage_matches_closed_form():
    # r_t = z_t exp(-a z_{t-1}): corr(r_t, r_{t+1}^2) = -2a e^{1.5 a^2} / sqrt(3 e^{8a^2} - e^{4a^2}), 0 for k >= 2
    a, rng = 0.2, np.random.default_rng(4)
    z = rng.standard_normal((4000, 65))
    r = z[:, 1:] * np.exp(-a * z[:, :-1])  # (N, 64)
    lev = sf.leverage(r, (1, 2, 3, 5))
    expected = -2 * a * np.exp(1.5 * a**2) / np.sqrt(3 * np.exp(8 * a**2) - np.exp(4 * a**2))  # -0.247
    assert lev[0] == pytest.approx(expected, abs=0.03)
    assert np.all(np.abs(lev[1:]) < 0.03)


def test_kurtosis_falls_like_one_over_horizon_for_iid():
    # iid sums: kappa_h = kappa_1 / h; Laplace has excess kurtosis 3
    x = np.random.default_rng(5).laplace(size=(4000, 60))
    k = sf.kurtosis_by_horizon(x, (1, 5, 20))
    assert np.all(np.abs(k - np.array([3.0, 0.6, 0.15])) < np.array([0.25, 0.15, 0.15]))


@pytest.mark.parametrize("nu", [3, 4])
def test_hill_index_of_student_t_is_nu_with_small_k(nu):
    x = np.random.default_rng(nu).standard_t(nu, size=(8000, 64))  # 512k draws
    assert sf.hill_tail_index(x, k=500) == pytest.approx(nu, abs=0.45)


def test_hill_index_of_pareto_with_default_k():
    alpha = 3.0
    losses = np.random.default_rng(6).pareto(alpha, size=(1000, 64)) + 1.0  # P(L > x) = x^-3, x >= 1
    assert sf.hill_tail_index(-losses) == pytest.approx(alpha, abs=0.1)
    assert sf.hill_tail_index(losses, tail="right") == pytest.approx(alpha, abs=0.1)


def test_wasserstein_of_a_shift_is_the_shift_in_sd_units(gauss):
    assert sf.wasserstein1(gauss, gauss) == 0.0
    sd = gauss.std()
    assert sf.wasserstein1(gauss, gauss + 0.3 * sd, horizon=1) == pytest.approx(0.3, rel=1e-6)
    # a shift of c per day is a shift of 20c on 20-day sums
    assert sf.wasserstein1(gauss, gauss + 0.01 * sd, horizon=20) == pytest.approx(0.2, rel=1e-6)


def test_aggregate_sums_non_overlapping_blocks():
    x = np.arange(12.0).reshape(2, 6)
    np.testing.assert_array_equal(sf.aggregate(x, 3), [3, 12, 21, 30])


def test_time_split_shares_no_day():
    tr, te = sf.time_split(1000, 64)
    assert len(te) > 250 and len(tr) > 300
    gaps = np.abs(tr[:, None] - te[None, :]).min()
    assert gaps >= 64


def test_discriminator_cannot_tell_identical_processes_and_can_tell_different_ones():
    rng = np.random.default_rng(7)
    real = make_windows(rng.standard_normal(2000), 32)  # overlapping windows of one series
    same = rng.standard_normal((600, 32))
    louder = 1.8 * rng.standard_normal((600, 32))
    kw = {"max_per_class": 400, "epochs": 5}
    d_same = sf.discriminative_score(real, same, **kw)
    d_diff = sf.discriminative_score(real, louder, **kw)
    assert d_same.mean < 0.06
    assert d_diff.mean > 0.3
    assert len(d_same.scores) == 3


def test_discriminative_floor_is_near_zero_on_a_stationary_series_and_high_when_held_out_years_differ():
    rng = np.random.default_rng(20)
    kw = {"max_per_class": 400, "epochs": 5}
    iid = make_windows(rng.standard_normal(2000), 32)
    floor = sf.discriminative_floor(iid, 600, **kw)
    assert floor.mean < 0.04 and len(floor.accuracies) == 3
    # loud years exactly where time_split puts the held-out real windows: the resampled windows (all years)
    # hold loud ones, the classifier's real training windows none, so held-out real windows look generated
    vol = np.ones(2000)
    vol[200:420] = vol[990:1210] = vol[1780:] = 2.0
    era = make_windows(rng.standard_normal(2000) * vol, 32)
    tr, te = sf.time_split(len(era), 32)
    loud = make_windows(vol, 32) == 2.0  # (M, 32)
    assert loud[te].mean() > 0.95 and loud[tr].mean() < 0.05  # the set-up is what the comment says
    shifted = sf.discriminative_floor(era, 600, **kw)
    assert shifted.mean > 0.15 and shifted.accuracy < 0.35
    with pytest.raises(InputError, match="at least 20"):
        sf.discriminative_floor(iid, 5)


def test_memorization_copying_generator_scores_zero_and_fresh_data_one():
    rng = np.random.default_rng(8)
    series = rng.standard_normal(6000) * np.exp(0.5 * np.sin(np.arange(6000) / 200))
    train, held = make_windows(series[:4000], 32), make_windows(series[4000:], 32)
    copies = train[rng.choice(len(train), 500)] + 1e-4 * rng.standard_normal((500, 32))
    assert sf.memorization_ratio(copies, train, held) < 0.05
    fresh = make_windows(rng.standard_normal(3000) * np.exp(0.5 * np.sin(np.arange(3000) / 200)), 32)[::3]
    assert 0.85 < sf.memorization_ratio(fresh, train, held) < 1.15


def test_bad_input_is_an_input_error():
    with pytest.raises(InputError, match="NaN"):
        sf.excess_kurtosis(np.array([1.0, np.nan]))
    with pytest.raises(InputError, match="lag"):
        sf.acf(np.zeros((3, 10)) + 1.0)
    with pytest.raises(InputError, match="same length"):
        sf.discriminative_score(np.ones((300, 32)), np.ones((100, 30)))
    with pytest.raises(InputError, match="Hill k"):
        sf.hill_tail_index(np.ones(10), k=10)


def test_skew_parts_add_up_and_find_leverage():
    """skew_parts (6b): the four parts add up to the skewness of the sums, the triples part is the
    brute-force sum over s < t < u, and on a process with a known leverage term it puts the skewness there.
    x_t = sqrt(1 + a z_{t-1}) z_t with Rademacher z: uncorrelated, unit variance, no own skewness, and
    E x_{t-1} x_t^2 = a E sqrt(1 + a z) is the only non-zero third moment, so skew(S_h) = 3 (h - 1) a E sqrt(1 + a z)
    / h^1.5, all of it leverage."""
    import itertools

    from findiffusion.stylized_facts import SKEW_PARTS, skew_parts

    rng = np.random.default_rng(7)
    x = rng.standard_gamma(2.0, (4000, 5)) + 0.3 * rng.standard_normal((4000, 5)).cumsum(1)  # skewed, correlated
    p = skew_parts(x)
    xc = x - x.mean(0)
    s = xc.sum(1)
    assert p["skew"] == pytest.approx(np.mean(s ** 3) / s.std() ** 3, rel=1e-12)
    assert sum(p[k] for k in ("own", "leverage", "reverse", "triples")) == pytest.approx(p["skew"], rel=1e-10)
    brute = 6 * sum(np.mean(xc[:, i] * xc[:, j] * xc[:, k]) for i, j, k in itertools.combinations(range(5), 3))
    assert p["triples"] == pytest.approx(brute / s.std() ** 3, rel=1e-8)
    a, h, n = 0.5, 6, 400_000
    z = rng.choice([-1.0, 1.0], size=(n, h + 1))  # (n, h + 1): z_0 .. z_h
    lev = np.sqrt(1 + a * z[:, :-1]) * z[:, 1:]  # (n, h): x_1 .. x_h
    q = skew_parts(lev)
    want = 3 * (h - 1) * a * (np.sqrt(1 + a) + np.sqrt(1 - a)) / 2 / h ** 1.5
    assert q["leverage"] == pytest.approx(want, abs=0.02)
    assert q["skew"] == pytest.approx(want, abs=0.02)
    assert max(abs(q["own"]), abs(q["reverse"]), abs(q["triples"])) < 0.02
    assert tuple(q) == SKEW_PARTS
    assert skew_parts(-lev)["leverage"] == pytest.approx(-q["leverage"], rel=1e-12)  # a fall raising later vol
    with pytest.raises(InputError, match="at least 3 paths"):
        skew_parts(lev[:2])
