"""VaR/ES, backtest statistics, rolling forecasts and the risk/backtest commands."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import integrate, stats

from findiffusion.backtest import (
    VaRForecast,
    backtest,
    diffusion_samples,
    evaluate,
    forecast_from_samples,
    garch_t_forecast,
    historical_simulation_forecast,
)
from findiffusion.cli import main
from findiffusion.errors import InputError
from findiffusion.risk import (
    acerbi_szekely_z2,
    christoffersen_conditional_coverage,
    christoffersen_independence,
    es_backtest,
    expected_shortfall,
    kupiec_pof,
    normal_var_es,
    risk_report,
    student_t_var_es,
    transition_counts,
    value_at_risk,
)


# ---------------------------------------------------------------- VaR / ES
def test_empirical_var_es_hand_computed():
    rng = np.random.default_rng(0)
    pnl = -rng.permutation(np.arange(1.0, 101.0))  # losses 1..100
    assert value_at_risk(pnl, 0.95) == 96.0  # 5th worst
    assert expected_shortfall(pnl, 0.95) == pytest.approx(98.0)  # mean of 96..100
    assert value_at_risk(pnl, 0.99) == 100.0 and expected_shortfall(pnl, 0.99) == 100.0
    # n p = 2.5: ES = (10 + 9 + 0.5 * 8) / 2.5 (Acerbi-Tasche), VaR = third worst
    x = -np.arange(1.0, 11.0)
    assert value_at_risk(x, 0.75) == 8.0
    assert expected_shortfall(x, 0.75) == pytest.approx(9.2)


def test_var_es_vectorised_rows_match_1d():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 333))
    np.testing.assert_allclose(value_at_risk(x, 0.99), [value_at_risk(r, 0.99) for r in x])
    np.testing.assert_allclose(expected_shortfall(x, 0.975), [expected_shortfall(r, 0.975) for r in x])


def test_normal_closed_form_textbook_and_large_sample():
    # z_0.99 = 2.3263, ES_0.99 = phi(z)/0.01 = 2.6652, ES_0.975 = 2.3378 (McNeil et al. 2015, Ex. 2.14)
    v, e = normal_var_es(0.99)
    assert v == pytest.approx(2.326348, abs=1e-6) and e == pytest.approx(2.665214, abs=1e-6)
    assert normal_var_es(0.975)[1] == pytest.approx(2.337803, abs=1e-6)
    mu, sd = 0.0005, 0.012
    x = np.random.default_rng(2).normal(mu, sd, 2_000_000)
    for lv in (0.99, 0.975):
        v, e = normal_var_es(lv, mu, sd)
        assert value_at_risk(x, lv) == pytest.approx(v, rel=0.01)
        assert expected_shortfall(x, lv) == pytest.approx(e, rel=0.01)


@pytest.mark.parametrize("df", [3.0, 5.0, 10.0])
def test_student_t_closed_form_against_quadrature_and_samples(df):
    lv, loc, scale = 0.99, 0.001, 0.01
    v, e = student_t_var_es(lv, df, loc, scale)
    # eq. (2) by numerical integration of the quantile function
    es_quad = -integrate.quad(lambda u: loc + scale * stats.t.ppf(u, df), 0, 0.01, limit=200)[0] / 0.01
    assert e == pytest.approx(es_quad, rel=1e-6)
    assert v == pytest.approx(-(loc + scale * stats.t.ppf(0.01, df)), rel=1e-12)
    x = loc + scale * np.random.default_rng(3).standard_t(df, 2_000_000)
    assert value_at_risk(x, lv) == pytest.approx(v, rel=0.015)
    assert expected_shortfall(x, lv) == pytest.approx(e, rel=0.03)


def test_standardized_t_has_unit_variance_and_tends_to_normal():
    v, e = student_t_var_es(0.975, 5.0, 0.0, 1.0, standardized=True)
    x = np.random.default_rng(4).standard_t(5.0, 2_000_000) * math.sqrt(3 / 5)
    assert x.std() == pytest.approx(1.0, rel=0.01)
    assert expected_shortfall(x, 0.975) == pytest.approx(e, rel=0.02)
    np.testing.assert_allclose(student_t_var_es(0.99, 1e7, 0.0, 1.0), normal_var_es(0.99), rtol=1e-5)


def test_var_es_bad_input():
    with pytest.raises(InputError):
        value_at_risk([1.0, 2.0], 99)
    with pytest.raises(InputError):
        expected_shortfall([1.0, np.nan], 0.99)
    with pytest.raises(InputError):
        student_t_var_es(0.99, 2.0, standardized=True)


# ---------------------------------------------------------------- test statistics
def _hits(T: int, x: int) -> np.ndarray:
    return np.r_[np.ones(x), np.zeros(T - x)]


@pytest.mark.parametrize("level,T,lo,hi", [
    # Kupiec (1995) / Jorion, Value at Risk, Table 6-3: non-rejection regions lo < N < hi at 5 %
    (0.99, 510, 1, 11), (0.99, 1000, 4, 17),
    (0.975, 255, 2, 12), (0.975, 510, 6, 21), (0.975, 1000, 15, 36),
    (0.95, 255, 6, 21), (0.95, 510, 16, 36), (0.95, 1000, 37, 65),
])
def test_kupiec_non_rejection_regions_match_published_table(level, T, lo, hi):
    accepted = [x for x in range(0, hi + 10) if not kupiec_pof(_hits(T, x), level).rejected()]
    assert min(accepted) == lo + 1 and max(accepted) == hi - 1


def test_kupiec_t255_upper_bound_and_hand_value():
    # table: N < 7 at T = 255, p = 1 % (the table omits the lower bound: x = 0 has LR = -2*255*ln 0.99 = 5.13)
    assert not kupiec_pof(_hits(255, 6), 0.99).rejected() and kupiec_pof(_hits(255, 7), 0.99).rejected()
    assert kupiec_pof(_hits(255, 0), 0.99).statistic == pytest.approx(-2 * 255 * math.log(0.99))
    # T = 250, x = 8, p = 1 %
    lr = -2 * (242 * math.log(0.99) + 8 * math.log(0.01)) + 2 * (242 * math.log(242 / 250) + 8 * math.log(8 / 250))
    t = kupiec_pof(_hits(250, 8), 0.99)
    assert t.statistic == pytest.approx(lr) and t.p_value == pytest.approx(math.erfc(math.sqrt(lr / 2)))


def test_christoffersen_hand_computed_table():
    h = [0, 0, 1, 1, 0, 0, 0, 1, 0, 0]
    # transitions: 00 01 11 10 00 00 01 10 00 -> n00=4, n01=2, n10=2, n11=1
    np.testing.assert_array_equal(transition_counts(h), [[4, 2], [2, 1]])
    l1 = 4 * math.log(4 / 6) + 2 * math.log(2 / 6) + 2 * math.log(2 / 3) + 1 * math.log(1 / 3)
    l0 = 6 * math.log(6 / 9) + 3 * math.log(3 / 9)
    ind = christoffersen_independence(h)
    assert ind.statistic == pytest.approx(2 * (l1 - l0))
    assert ind.p_value == pytest.approx(stats.chi2.sf(2 * (l1 - l0), 1))
    lp = 6 * math.log(0.9) + 3 * math.log(0.1)
    cc = christoffersen_conditional_coverage(h, 0.90)
    assert cc.statistic == pytest.approx(2 * (l1 - lp))
    assert cc.p_value == pytest.approx(math.exp(-(l1 - lp)))  # chi2(2) survival = exp(-x/2)


def test_christoffersen_no_hit_after_hit_is_finite():
    h = np.zeros(500)
    h[[50, 200, 400]] = 1
    t = christoffersen_independence(h)
    assert np.isfinite(t.statistic) and not t.rejected()


def test_iid_hits_at_nominal_rate_reject_about_five_percent():
    rng = np.random.default_rng(5)
    level, reps = 0.975, 400
    rej = np.zeros(3)
    for _ in range(reps):
        h = rng.random(1000) < 0.025
        rej += [kupiec_pof(h, level).rejected(), christoffersen_independence(h).rejected(),
                christoffersen_conditional_coverage(h, level).rejected()]
    rate = rej / reps
    assert np.all(rate > 0.015) and np.all(rate < 0.10), rate


def test_planted_clusters_reject_independence_not_coverage():
    h = np.zeros(1000, dtype=int)
    for s in (100, 400, 700):  # 3 clusters of 4 consecutive hits: 12 hits, 1.2 % at a 1 % VaR
        h[s:s + 4] = 1
    assert not kupiec_pof(h, 0.99).rejected()
    assert christoffersen_independence(h).p_value < 1e-4
    assert christoffersen_conditional_coverage(h, 0.99).rejected()


def test_too_many_hits_reject_coverage():
    h = np.random.default_rng(6).random(1000) < 0.03
    assert kupiec_pof(h, 0.99).p_value < 1e-3
    assert christoffersen_conditional_coverage(h, 0.99).p_value < 1e-3


def test_z2_mean_zero_under_null_and_rejects_underestimated_risk():
    rng = np.random.default_rng(7)
    T, lv = 1000, 0.975
    sig = np.exp(rng.normal(np.log(0.01), 0.4, T))  # time-varying forecast scale, (T,)
    var, es = normal_var_es(lv, 0.0, sig)
    z_null = acerbi_szekely_z2(rng.standard_normal((4000, T)) * sig, var, es, lv)
    assert abs(z_null.mean()) < 0.01  # E[Z2] = 0 when forecasts are right

    def draw(g, n):
        return g.standard_normal((n, T)) * sig

    good = es_backtest(rng.standard_normal(T) * sig, var, es, lv, draw, n_sims=1000, seed=1)
    bad = es_backtest(1.4 * rng.standard_normal(T) * sig, var, es, lv, draw, n_sims=1000, seed=1)
    assert good.p_value > 0.05 and bad.p_value < 0.01 and bad.statistic < -0.7


@pytest.mark.parametrize("n,estimator", [(100, "empirical"), (250, "empirical"), (50, "empirical"), (100, "pooled")])
def test_z2_is_centred_under_empirical_forecast_laws(n, estimator):
    # VaR = worst sample (n p = 1), n p = 2.5 and n p < 1: E[Z2] = 0 exactly under the forecast's own law
    rng = np.random.default_rng(9)
    f = forecast_from_samples(rng.standard_t(4, (300, n)) * 0.01, (0.99,), "x", estimator)
    z = acerbi_szekely_z2(f.draw(rng, 20_000), f.var[0], f.es[0], 0.99, f.tie_weight[0])
    assert abs(z.mean()) < 0.01
    if estimator == "empirical":  # counting only x < -VaR (no tie weight) is biased for these discrete laws
        strict = acerbi_szekely_z2(f.draw(rng, 20_000), f.var[0], f.es[0], 0.99, tie_weight=0.0)
        assert strict.mean() > 0.1


# ---------------------------------------------------------------- rolling forecasts
@pytest.fixture(scope="module")
def spx():
    import findiffusion

    r, _ = findiffusion.load_series("sp500", end="2004-12-31")
    return r


def test_historical_simulation_matches_numpy_quantile(spx):
    x = spx.to_numpy()
    f = historical_simulation_forecast(x, 300, [0.99], window=250)
    for j in (0, 7, len(x) - 301):
        w = x[300 + j - 250:300 + j]
        assert f.var[0, j] == pytest.approx(-np.quantile(w, 0.01, method="inverted_cdf"))
        s = np.sort(w)  # n p = 2.5: ES = -(X_(1) + X_(2) + 0.5 X_(3)) / 2.5
        assert f.es[0, j] == pytest.approx(-(s[0] + s[1] + 0.5 * s[2]) / 2.5)
    assert f.var.shape == (1, len(x) - 300)


def test_garch_forecast_matches_arch_reference(spx):
    from arch import arch_model

    x = spx.to_numpy()[:1100]
    start = 1000
    f = garch_t_forecast(x, start, [0.99, 0.975], refit_every=50)
    res = arch_model(100 * x[:start], mean="Constant", vol="GARCH", p=1, q=1, dist="t").fit(disp="off")
    sd = math.sqrt(res.forecast(horizon=1, reindex=False).variance.to_numpy()[-1, 0]) / 100
    mu, nu = res.params["mu"] / 100, res.params["nu"]
    q = stats.t.ppf(0.01, nu) * math.sqrt((nu - 2) / nu)
    assert f.var[0, 0] == pytest.approx(-(mu + sd * q), rel=2e-3)
    d = f.draw(np.random.default_rng(0), 20000)[:, 0]
    assert d.std() == pytest.approx(sd, rel=0.05)


class _EchoModel:
    """Stub with the sampling API: every path repeats the last context day plus noise of known sd."""

    config = SimpleNamespace(stitch_context=8)
    context_days = 8
    data_info = SimpleNamespace(end="2003-12-31")

    def sample(self, n, length, *, context, generator, sigma=0.01, **_):
        c = np.asarray(context)
        shape = (*c.shape[:-1], n, length)
        noise = torch.randn(shape, generator=generator, dtype=torch.float64).numpy()
        return c[..., -1][..., None, None] + sigma * noise


def test_diffusion_samples_are_conditioned_on_the_days_before(spx):
    x = spx.to_numpy()
    s = diffusion_samples(_EchoModel(), x, 100, n_paths=4000, steps=None, chunk_days=37)
    assert s.shape == (len(x) - 100, 4000)
    np.testing.assert_allclose(s.mean(axis=1), x[99:-1], atol=5 * 0.01 / math.sqrt(4000))


def test_evaluate_passes_right_forecast_and_rejects_too_narrow():
    rng = np.random.default_rng(8)
    T = 1000
    sig = 0.01 * np.exp(np.sin(np.arange(T) / 50))  # (T,)
    x = rng.standard_normal(T) * sig
    dates = pd.bdate_range("2015-01-01", periods=T)

    def fc(name, s):
        var, es = np.stack([normal_var_es(lv, 0.0, s) for lv in (0.99, 0.975)], axis=1)
        return VaRForecast(name, (0.99, 0.975), var, es, lambda g, n: g.standard_normal((n, T)) * s)

    res = evaluate(dates, x, [fc("true", sig), fc("narrow", 0.7 * sig)], n_sims=500)
    tab = res.table().set_index(["method", "level"])
    assert (tab.loc["true", ["kupiec_p", "cc_p", "Z2_p"]] > 0.05).all().all()
    assert (tab.loc["narrow", ["kupiec_p", "Z2_p"]] < 0.01).all().all()
    assert "narrow" in res.summary()


def test_backtest_refuses_overlapping_model(spx):
    with pytest.raises(InputError, match="overlaps"):
        backtest(spx, "2003-06-02", model=_EchoModel())


def test_risk_report_against_normal_closed_form():
    class Gauss:
        config = SimpleNamespace(stitch_context=4)

        def sample(self, n, length, seed=0, **_):
            return np.random.default_rng(seed).normal(0.0, 0.01, (n, length))

    rep = risk_report(Gauss(), np.zeros(4), [0.99], [1, 10], n_paths=400_000, position=1e6)
    for h in (1, 10):
        v, e = normal_var_es(0.99, 0.0, 0.01 * math.sqrt(h))  # in log-return units
        assert rep.var[h][0.99] == pytest.approx(1e6 * -math.expm1(-v), rel=0.02)  # P&L = V (e^R - 1)
        assert rep.es[h][0.99] > rep.var[h][0.99]


# ---------------------------------------------------------------- CLI (tiny model)
@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    import findiffusion
    from findiffusion.networks import NetworkConfig
    from findiffusion.training import FitConfig, TrainConfig

    torch.set_num_threads(1)
    r, info = findiffusion.load_series("sp500", end="2003-12-31")
    cfg = FitConfig(network=NetworkConfig(channels=16, dilations=(1, 2, 4, 8)),
                    train=TrainConfig(steps=60, batch_size=32), calibration_windows=4000)
    d = tmp_path_factory.mktemp("model")
    findiffusion.fit(r, cfg, out_dir=d, data_info=info, device="cpu")
    return d


def test_cli_backtest_runs_and_writes(tiny_model, tmp_path, capsys):
    out = tmp_path / "bt"
    rc = main(["backtest", "--model", str(tiny_model), "--start", "2004-01-02", "--end", "2004-02-20", "--n", "20",
               "--steps", "2", "--sims", "100", "--garch-refit", "20", "--out", str(out), "--quiet"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "diffusion" in text and "GARCH-t" in text and "HS-250" in text
    frame = pd.read_csv(out / "backtest.csv", index_col=0)
    import findiffusion

    days = len(findiffusion.load_series("sp500")[0].loc["2004-01-02":"2004-02-20"])
    assert len(frame) == days and {"diffusion_0.99_VaR", "GARCH-t_0.975_ES"} <= set(frame.columns)
    assert (out / "backtest_99.png").stat().st_size > 0 and (out / "backtest_97.5.png").exists()
    assert json.loads((out / "backtest.json").read_text())["info"]["diffusion"]["n_paths"] == 20


def test_cli_risk_runs_and_writes(tiny_model, tmp_path, capsys):
    rc = main(["risk", "--model", str(tiny_model), "--as-of", "2003-12-31", "--level", "0.99", "--horizon", "1,5",
               "--n", "200", "--steps", "2", "--out", str(tmp_path), "--quiet"])
    assert rc == 0
    assert "2003-12-31" in capsys.readouterr().out
    rows = json.loads((tmp_path / "risk.json").read_text())["rows"]
    assert [r["horizon"] for r in rows] == [1, 5] and all(r["ES"] >= r["VaR"] > 0 for r in rows)
    assert (tmp_path / "risk_pnl.png").stat().st_size > 0


@pytest.mark.parametrize("argv,needle", [
    (["backtest", "--start", "2003-06-02"], "overlaps"),
    (["backtest", "--start", "2030-01-01"], "no returns on or after"),
    (["backtest", "--start", "1999-06-01"], "history"),
    (["backtest", "--start", "2004-01-02", "--level", "99"], "level"),
    (["backtest", "--start", "soon"], "could not parse"),
    (["risk", "--as-of", "1990-01-01"], "no data on or before"),
    (["risk", "--as-of", "yesterday"], "could not parse"),
    (["risk", "--level", "1.5"], "level"),
])
def test_cli_bad_input_one_line_exit_2(tiny_model, argv, needle, capsys):
    rc = main([argv[0], "--model", str(tiny_model), *argv[1:], "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and needle in err and err.count("\n") == 1


def test_cli_missing_model_exit_2(tmp_path, capsys):
    assert main(["risk", "--model", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err
