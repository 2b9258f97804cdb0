"""Forecast scores against closed forms, baselines against known processes, the forecast command."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats

from findiffusion import forecasting as F
from findiffusion.cli import main
from findiffusion.errors import InputError
from tests.test_anomaly import iid_gaussian_model, untrained_model


def normal_grid(n: int, mu: float = 0.0, sd: float = 1.0) -> np.ndarray:
    """n evenly spread quantiles of N(mu, sd^2): a low-noise 'ensemble'."""
    return mu + sd * stats.norm.ppf((np.arange(n) + 0.5) / n)


@pytest.mark.parametrize("y", [-2.5, 0.0, 0.7, 3.0])
def test_crps_ensemble_converges_to_the_gaussian_closed_form(y):
    x = normal_grid(20000, 0.3, 1.7)
    assert F.crps_ensemble(x, y) == pytest.approx(F.crps_gaussian(0.3, 1.7, y), abs=2e-4)


def test_crps_gaussian_closed_form_matches_the_integral_definition():
    # CRPS(F, y) = int (F(x) - 1{x >= y})^2 dx
    mu, sd, y = 0.5, 2.0, -1.2
    f = lambda x: (stats.norm.cdf(x, mu, sd) - (x >= y)) ** 2  # noqa: E731
    val = integrate.quad(f, -40, y)[0] + integrate.quad(f, y, 40)[0]
    assert F.crps_gaussian(mu, sd, y) == pytest.approx(val, rel=1e-7)


def test_crps_ensemble_is_the_fair_energy_form():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((3, 7)), np.array([0.2, -1.0, 2.0])
    n = x.shape[1]
    brute = [np.abs(x[k] - y[k]).mean() - np.abs(x[k][:, None] - x[k][None, :]).sum() / (2 * n * (n - 1))
             for k in range(3)]
    assert np.allclose(F.crps_ensemble(x, y), brute)


def test_pinball_loss_at_the_true_quantile_is_the_normal_density():
    # E rho_q(Y - z_q) = phi(z_q) for Y ~ N(0, 1)
    y = normal_grid(200000)
    levels = (0.05, 0.25, 0.5, 0.9)
    zq = stats.norm.ppf(levels)
    loss = F.pinball_loss(np.broadcast_to(zq, (len(y), 4)), y, levels).mean(0)
    assert np.allclose(loss, stats.norm.pdf(zq), atol=1e-4)


def test_qlike_is_minimised_by_the_true_variance():
    y = normal_grid(100000, 0.0, 0.02)
    hs = 0.02**2 * np.linspace(0.5, 1.5, 101)
    losses = [F.qlike(h, y**2).mean() for h in hs]
    assert hs[int(np.argmin(losses))] == pytest.approx(0.02**2, rel=0.011)
    assert min(losses) == pytest.approx(np.log(0.02**2) + 1, abs=1e-3)
    with pytest.raises(InputError):
        F.qlike(np.array([0.0]), np.array([1.0]))


def test_coverage_of_a_calibrated_forecast_is_nominal():
    rng = np.random.default_rng(1)
    sd = rng.uniform(0.5, 2.0, 4000)
    samples = sd[:, None] * normal_grid(400)[None, :]
    y = sd * rng.standard_normal(4000)
    assert F.interval_coverage(samples, y, 0.9) == pytest.approx(0.9, abs=0.015)


def test_historical_paths_are_contiguous_blocks_from_the_lookback():
    r = np.arange(500, dtype=float)  # values name their own index
    origins = np.array([300, 350, 499])
    p = F.historical_paths(r, origins, 5, 200, lookback=100, seed=0)
    assert p.shape == (3, 200, 5)
    assert np.all(np.diff(p, axis=-1) == 1)  # contiguous days
    assert np.all(p[..., 0] >= (origins - 99)[:, None]) and np.all(p[..., -1] <= origins[:, None])


def test_garch_paths_one_day_variance_matches_the_recursion():
    from arch import arch_model

    sim = arch_model(None, mean="Zero", vol="GARCH", p=1, q=1, dist="t")
    y = sim.simulate([0.02, 0.08, 0.9, 8.0], 1400, burn=500)["data"].to_numpy() / 100
    origins = np.arange(1000, 1399, 3)  # spans several memory chunks
    paths, res = F.garch_t_paths(pd.Series(y), 1000, origins, 2, 3000, seed=0)
    assert paths.shape == (len(origins), 3000, 2)
    mu, om, al, be = (res.params[k] for k in ("mu", "omega", "alpha[1]", "beta[1]"))
    h = np.asarray(res.conditional_volatility) ** 2  # in-sample part, then the recursion by hand
    yy = 100 * y
    h_full = np.empty(len(yy) + 1)
    h_full[: 1000] = h[:1000]
    for t in range(999, len(yy)):
        h_full[t + 1] = om + al * (yy[t] - mu) ** 2 + be * h_full[t]
    expected = h_full[origins + 1] / 1e4  # variance of r_{t+1} given data to t
    ratio = paths[:, :, 0].var(axis=1) / expected
    assert np.median(ratio) == pytest.approx(1.0, abs=0.06)
    assert np.corrcoef(paths[:, :, 0].var(axis=1), expected)[0, 1] > 0.95


def test_evaluate_paths_scores_a_calibrated_iid_forecast():
    rng = np.random.default_rng(2)
    M, N, H = 600, 300, 5
    paths = 0.01 * rng.standard_normal((M, N, H))
    realized = 0.01 * rng.standard_normal((M, H))
    t = F.evaluate_paths(paths, realized, horizons=(1, 5))
    for h in (1, 5):
        sd = 0.01 * np.sqrt(h)
        assert t.loc[h, "coverage"] == pytest.approx(0.9, abs=0.04)
        # expected CRPS of N(0, s^2) at its own draws: E|X - Y| - E|X - X'|/2 = 2s/sqrt(pi) - s/sqrt(pi)
        assert t.loc[h, "crps"] == pytest.approx(sd / np.sqrt(np.pi), rel=0.06)
        assert t.loc[h, "qlike"] == pytest.approx(np.log(sd**2) + 1, abs=0.15)


def test_diffusion_forecast_of_iid_gaussian_model_is_calibrated():
    # the exact denoiser of i.i.d. N(0, 0.01^2) returns: forecasts must be N(0, 0.01^2 h)
    m = iid_gaussian_model(0.01)
    rng = np.random.default_rng(3)
    r = 0.01 * rng.standard_normal(400)
    origins = np.arange(100, 390, 2)
    paths = F.diffusion_paths(m, r, origins, 5, 400, sampler="ode", steps=10, seed=0)
    assert paths.shape == (len(origins), 400, 5)
    realized = r[origins[:, None] + 1 + np.arange(5)]
    t = F.evaluate_paths(paths, realized, horizons=(1, 5))
    assert t.loc[1, "coverage"] == pytest.approx(0.9, abs=0.06)
    assert paths.std() == pytest.approx(0.01, rel=0.04)


@pytest.fixture(scope="module")
def dated(tmp_path_factory):
    d = tmp_path_factory.mktemp("fc")
    rng = np.random.default_rng(4)
    prices = 50 * np.exp(np.cumsum(np.r_[0.0, 0.01 * rng.standard_normal(200)]))
    dates = pd.bdate_range("2021-01-01", periods=len(prices))
    pd.DataFrame({"date": dates, "close": prices}).to_csv(d / "prices.csv", index=False)
    untrained_model().save(d / "model")
    return d, pd.Series(prices, index=dates)


def test_forecast_as_of_a_date_uses_the_price_and_history_of_that_date(dated):
    from findiffusion.data import load_series

    d, prices = dated
    r, info = load_series(str(d / "prices.csv"))
    fc = F.forecast(iid_gaussian_model(), r, as_of="2021-06-05", horizon=10, n_paths=500, last_price=info.last_price,
                    sampler="ode", steps=10)  # 2021-06-05 is a Saturday: the Friday before is used
    assert fc.as_of == pd.Timestamp("2021-06-04")
    assert fc.last_price == pytest.approx(prices.loc["2021-06-04"])
    assert fc.dates[0] == pd.Timestamp("2021-06-07") and len(fc.dates) == 10
    assert np.allclose(fc.realized, r.loc["2021-06-07":].to_numpy()[:10])
    t = fc.quantile_table()
    q = t[["cum_q05", "cum_q25", "cum_q50", "cum_q75", "cum_q95"]].to_numpy()
    assert np.all(np.diff(q, axis=1) > 0)
    # i.i.d. N(0, 0.01^2): the 95 % quantile of the h-day sum is 1.645 * 0.01 * sqrt(h)
    assert t["cum_q95"].iloc[-1] == pytest.approx(1.645 * 0.01 * np.sqrt(10), rel=0.12)
    with pytest.raises(InputError, match="before the first day"):
        F.forecast(iid_gaussian_model(), r, as_of="1990-01-01")


def test_cli_forecast_writes_quantiles_and_fan_chart(dated, capsys, monkeypatch):
    import findiffusion.commands.forecast as cmd

    d, _ = dated
    monkeypatch.setattr(cmd, "load_model", lambda args: iid_gaussian_model())
    rc = main(["forecast", "--model", str(d / "model"), "--data", str(d / "prices.csv"), "--as-of", "2021-05-03",
               "--horizon", "7", "--n", "300", "--steps", "10", "--out", str(d / "out"), "--quiet"])
    assert rc == 0
    t = pd.read_csv(d / "out" / "forecast_quantiles.csv")
    assert len(t) == 7 and list(t["day_ahead"]) == list(range(1, 8))
    assert {"daily_q05", "daily_q95", "cum_q50", "price_q95", "date", "cum_realized"} <= set(t.columns)
    assert (d / "out" / "fan_chart.png").stat().st_size > 1000
    assert "forecast as of 2021-05-03" in capsys.readouterr().out


@pytest.mark.parametrize("extra,msg", [
    (["--as-of", "1999-01-01"], "before the first day"),
    (["--as-of", "not-a-date"], "could not parse"),
    (["--horizon", "0"], "--horizon must be a positive integer"),
    (["--n", "1"], "--n must be at least 2"),
])
def test_cli_forecast_bad_input(dated, capsys, extra, msg, monkeypatch):
    d, _ = dated
    monkeypatch.chdir(d)
    try:
        rc = main(["forecast", "--model", "model", "--data", "prices.csv", *extra, "--out", "o", "--quiet"])
    except SystemExit as exc:  # argparse-level errors exit directly
        rc = exc.code
    assert rc == 2
    err = capsys.readouterr().err
    assert msg in err and err.count("\n") == 1


def test_garch_paths_are_reproducible_from_the_seed():
    rng = np.random.default_rng(5)
    y = pd.Series(0.01 * rng.standard_normal(600))
    a, _ = F.garch_t_paths(y, 500, np.array([510, 550]), 3, 50, seed=7)
    b, _ = F.garch_t_paths(y, 500, np.array([510, 550]), 3, 50, seed=7)
    c, _ = F.garch_t_paths(y, 500, np.array([510, 550]), 3, 50, seed=8)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
