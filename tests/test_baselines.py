"""Baselines: GARCH fitting recovers known parameters, simulation matches closed forms, bootstrap mechanics."""

from __future__ import annotations

import numpy as np
import pytest

from findiffusion import stylized_facts as sf
from findiffusion.baselines import GarchBaseline, StationaryBootstrap, fit_baselines, fit_garch
from findiffusion.errors import InputError

TRUE = {"mu": 0.05, "omega": 0.02, "alpha": 0.08, "beta": 0.9, "nu": 6.0}  # percent units


@pytest.fixture(scope="module")
def arch_garch_t_returns() -> np.ndarray:
    """20 000 days of GARCH(1,1)-t simulated by arch itself (independent of our simulator), as log returns."""
    from arch.univariate import GARCH, ConstantMean, StudentsT

    sim = ConstantMean(None, volatility=GARCH(p=1, q=1), distribution=StudentsT(seed=11))
    pct = sim.simulate([TRUE[k] for k in ("mu", "omega", "alpha", "beta", "nu")], 20_000, burn=500)["data"]
    return pct.to_numpy() / 100.0


def test_fit_garch_recovers_the_parameters_of_a_garch_t_process(arch_garch_t_returns):
    g = fit_garch(arch_garch_t_returns)
    assert g.mu == pytest.approx(TRUE["mu"] / 100, abs=2e-4)
    assert g.omega == pytest.approx(TRUE["omega"] / 1e4, rel=0.4)
    assert g.alpha == pytest.approx(TRUE["alpha"], abs=0.02)
    assert g.beta == pytest.approx(TRUE["beta"], abs=0.025)
    assert g.nu == pytest.approx(TRUE["nu"], abs=1.2)
    assert g.name == "GARCH(1,1)-t"


def test_garch_simulation_matches_unconditional_variance_and_kurtosis():
    # Bollerslev (1986): E r^2 = w / (1 - a - b); kurtosis = k (1 - (a+b)^2) / (1 - (a+b)^2 - (k - 1) a^2),
    # k = E z^4 = 3 + 6 / (nu - 4) for a standardized Student t
    a, b, w, nu = 0.05, 0.9, 1e-5, 10.0
    g = GarchBaseline(mu=0.0, omega=w, alpha=a, beta=b, nu=nu)
    x = g.sample(4000, 64, seed=1)  # independent windows, each from the stationary distribution
    assert x.shape == (4000, 64)
    assert np.mean(x**2) == pytest.approx(w / (1 - a - b), rel=0.05)
    k = 3 + 6 / (nu - 4)
    kurt = k * (1 - (a + b) ** 2) / (1 - (a + b) ** 2 - (k - 1) * a**2)
    assert sf.excess_kurtosis(x) == pytest.approx(kurt - 3, abs=0.35)  # 1.33
    assert np.all(sf.acf(x, absolute=True)[:5] > 0.03)  # volatility clustering within windows


def test_garch_simulation_statistics_agree_with_arch_simulator(arch_garch_t_returns):
    from findiffusion.data import make_windows

    ours = GarchBaseline(mu=TRUE["mu"] / 100, omega=TRUE["omega"] / 1e4, alpha=TRUE["alpha"], beta=TRUE["beta"],
                         nu=TRUE["nu"]).sample(3000, 64, seed=2)
    ref = make_windows(arch_garch_t_returns, 64)[::4]
    assert np.std(ours) == pytest.approx(np.std(ref), rel=0.08)
    assert sf.acf(ours, (1,), absolute=True)[0] == pytest.approx(sf.acf(ref, (1,), absolute=True)[0], abs=0.04)


def test_gjr_skew_t_fits_asymmetry_and_samples():
    rng = np.random.default_rng(3)
    # GJR data: only negative shocks raise volatility
    n, s2, r = 8000, 1e-4, []
    for z in rng.standard_t(8, n) * np.sqrt(6 / 8):
        e = np.sqrt(s2) * z
        r.append(e)
        s2 = 2e-6 + 0.15 * e**2 * (e < 0) + 0.88 * s2
    g = fit_garch(np.array(r), gjr=True, dist="skewt")
    assert g.gamma > 0.08 and g.alpha < 0.04
    assert g.name == "GJR-skew-t"
    x = g.sample(500, 64, seed=0)
    assert np.isfinite(x).all() and sf.leverage(x, (1,))[0] < -0.05


def test_sampling_is_seeded():
    g = GarchBaseline(mu=0.0, omega=1e-6, alpha=0.1, beta=0.85, burn=50)
    np.testing.assert_array_equal(g.sample(10, 20, seed=5), g.sample(10, 20, seed=5))
    assert not np.array_equal(g.sample(10, 20, seed=5), g.sample(10, 20, seed=6))
    b = StationaryBootstrap(np.random.default_rng(0).standard_normal(500))
    np.testing.assert_array_equal(b.sample(10, 20, seed=5), b.sample(10, 20, seed=5))
    assert not np.array_equal(b.sample(10, 20, seed=5), b.sample(10, 20, seed=6))


def test_stationary_bootstrap_blocks_are_geometric_with_mean_20():
    data = np.arange(10_000, dtype=float) * 1e-6
    b = StationaryBootstrap(data, mean_block=20)
    idx = b.indices(4000, 64, seed=1)
    np.testing.assert_array_equal(b.sample(4000, 64, seed=1), data[idx])
    cont = np.diff(idx, axis=1) % len(data) == 1  # the next day of the series: same block
    # P(continue) = 1 - p + p / n, p = 1 / 20; SE ~ sqrt(.05 * .95 / 252000) = 4e-4
    assert cont.mean() == pytest.approx(1 - 1 / 20, abs=0.002)
    # starts are uniform over the series
    assert idx[:, 0].mean() == pytest.approx((len(data) - 1) / 2, rel=0.05)


def test_stationary_bootstrap_agrees_with_arch_implementation():
    from arch.bootstrap import StationaryBootstrap as ArchSB

    data = np.arange(5000, dtype=float)
    ours = StationaryBootstrap(data, mean_block=20).indices(100, 100, seed=0)  # (100, 100)
    ref = next(iter(ArchSB(20, data, seed=0).bootstrap(1)))[0][0].astype(int)  # one resample of 5000 days
    ours_cont = np.mean(np.diff(ours, axis=1) % 5000 == 1)
    ref_cont = np.mean(np.diff(ref) % 5000 == 1)
    assert ours_cont == pytest.approx(ref_cont, abs=0.01)


def test_fit_baselines_names_and_bad_input():
    r = np.random.default_rng(0).standard_t(5, 1500) * 0.01
    names = [b.name for b in fit_baselines(r, gjr=True)]
    assert names == ["GARCH(1,1)-t", "GJR-skew-t", "block bootstrap (20)"]
    with pytest.raises(InputError, match="at least 100"):
        fit_garch(r[:50])
    with pytest.raises(InputError, match="dist"):
        fit_garch(r, dist="normal")
    with pytest.raises(InputError, match="mean_block"):
        StationaryBootstrap(r, mean_block=0.5)
    with pytest.raises(InputError, match="positive"):
        StationaryBootstrap(r).sample(0, 10)
