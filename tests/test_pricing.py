"""Option pricing: closed forms, payoffs, the martingale correction and Monte Carlo machinery against
oracles (Black–Scholes, QuantLib's Heston/barrier/Asian engines) on exact simulations, then a small
fitted model end to end, then the CLI."""

from __future__ import annotations

import dataclasses
import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from findiffusion.errors import InputError
from findiffusion.pricing import (
    black_scholes_delta,
    black_scholes_gamma,
    black_scholes_price,
    black_scholes_vega,
    conditional_martingale_correction,
    implied_volatility,
    martingale_correction,
    payoff,
    price_paths,
    price_with_model,
    sample_antithetic,
)

_spec = importlib.util.spec_from_file_location("bench_pricing", Path(__file__).parents[1] / "bench" / "pricing.py")
bp = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bp)

R, S0 = 0.03, 100.0


def _bs(k, d, opt="call", sigma=0.2):
    return float(black_scholes_price(S0, k, d / 252, R, sigma, opt))


# ---- closed forms -----------------------------------------------------------------------------------
def test_black_scholes_textbook_values():
    # Hull, Options, Futures and Other Derivatives, example 15.6: S=42, K=40, r=10 %, sigma=20 %, T=0.5
    assert black_scholes_price(42.0, 40.0, 0.5, 0.1, 0.2, "call") == pytest.approx(4.76, abs=0.005)
    assert black_scholes_price(42.0, 40.0, 0.5, 0.1, 0.2, "put") == pytest.approx(0.81, abs=0.005)


def test_gamma_vega_are_derivatives_of_the_price():
    s, k, t, sig, h = 100.0, np.array([80.0, 100.0, 125.0]), 0.4, 0.25, 1e-3
    g_fd = (black_scholes_price(s + h, k, t, R, sig) - 2 * black_scholes_price(s, k, t, R, sig)
            + black_scholes_price(s - h, k, t, R, sig)) / h**2
    v_fd = (black_scholes_price(s, k, t, R, sig + h) - black_scholes_price(s, k, t, R, sig - h)) / (2 * h)
    np.testing.assert_allclose(black_scholes_gamma(s, k, t, R, sig), g_fd, rtol=1e-4)
    np.testing.assert_allclose(black_scholes_vega(s, k, t, R, sig), v_fd, rtol=1e-4)


def test_implied_volatility_round_trip_and_bounds():
    k = np.array([70.0, 90.0, 100.0, 110.0, 140.0])
    sig = np.array([0.1, 0.2, 0.35, 0.6, 0.9])
    for opt in ("call", "put"):
        p = black_scholes_price(S0, k, 0.5, R, sig, opt)
        np.testing.assert_allclose(implied_volatility(p, S0, k, 0.5, R, opt), sig, atol=1e-8)
    # below intrinsic value / above the spot: no volatility fits
    bad = implied_volatility([S0 - 80.0 - 1.0, S0 + 1.0], S0, 80.0, 0.5, R, "call")
    assert np.isnan(bad).all()


# ---- payoffs and the correction -----------------------------------------------------------------------
def test_payoffs_on_hand_made_paths():
    p = np.array([[100.0, 110.0, 130.0, 115.0],   # peaks at 130
                  [100.0, 95.0, 80.0, 90.0],      # touches 80
                  [100.0, 100.0, 100.0, 100.0]])
    np.testing.assert_allclose(payoff(p, 100.0, "call"), [15.0, 0.0, 0.0])
    np.testing.assert_allclose(payoff(p, 100.0, "put"), [0.0, 10.0, 0.0])
    # arithmetic average of the fixings S_1..S_T (S_0 is not a fixing)
    np.testing.assert_allclose(payoff(p, 100.0, "asian"), [(110 + 130 + 115) / 3 - 100, 0.0, 0.0])
    np.testing.assert_allclose(payoff(p, 90.0, "asian-put"), [0.0, 90 - (95 + 80 + 90) / 3, 0.0])
    # up-and-out at 130 is knocked out by a touch; at 131 it survives
    np.testing.assert_allclose(payoff(p, 100.0, "up-and-out", barrier=130.0), [0.0, 0.0, 0.0])
    np.testing.assert_allclose(payoff(p, 100.0, "up-and-out", barrier=131.0), [15.0, 0.0, 0.0])
    # down-and-in put at 80 is knocked in by the touch; at 79 it never is
    np.testing.assert_allclose(payoff(p, 100.0, "down-and-in", barrier=80.0), [0.0, 10.0, 0.0])
    np.testing.assert_allclose(payoff(p, 100.0, "down-and-in", barrier=79.0), [0.0, 0.0, 0.0])
    with pytest.raises(InputError, match="barrier"):
        payoff(p, 100.0, "up-and-out")
    with pytest.raises(InputError, match="unknown option"):
        payoff(p, 100.0, "straddle")


def test_martingale_correction_holds_at_every_date():
    r = bp.simulate_gbm(500, 30, mu=0.4, seed=1)  # strong drift, far from risk-neutral
    p = S0 * np.exp(np.concatenate([np.zeros((500, 1)), np.cumsum(r, 1)], 1))
    q = martingale_correction(p, R)
    disc = np.exp(-R * np.arange(31) / 252)
    np.testing.assert_allclose((disc * q).mean(0), S0, rtol=1e-12)
    assert np.abs((disc * p).mean(0)[-1] - S0) > 0.5  # the raw paths were not
    # homogeneous of degree one (what the Greeks rely on); daily returns keep their ranks
    np.testing.assert_allclose(martingale_correction(2 * p, R), 2 * q, rtol=1e-12)
    ranks = np.argsort(np.diff(np.log(q), axis=0), axis=0)
    np.testing.assert_array_equal(ranks, np.argsort(np.diff(np.log(p), axis=0), axis=0))
    with pytest.raises(InputError, match="same price"):
        martingale_correction(p * np.linspace(1, 2, 500)[:, None], R)


def test_conditional_correction_is_ems_with_one_bin_and_keeps_every_state_risk_neutral():
    r = bp.simulate_heston(1200, 40, mu=0.4, seed=3)  # stochastic volatility, strong drift
    p = S0 * np.exp(np.concatenate([np.zeros((1200, 1)), np.cumsum(r, 1)], 1))
    np.testing.assert_allclose(conditional_martingale_correction(p, R, max_bins=1), martingale_correction(p, R),
                               rtol=1e-12)
    q = conditional_martingale_correction(p, R, max_bins=4, min_paths=100)
    disc = np.exp(-R * np.arange(41) / 252)
    np.testing.assert_allclose((disc * q).mean(0), S0, rtol=1e-12)  # (4) at every date
    np.testing.assert_allclose(conditional_martingale_correction(2 * p, R, max_bins=4, min_paths=100), 2 * q,
                               rtol=1e-12)  # homogeneous of degree one
    # eq. (4b) by hand on day 10: bins of the EWMA state known on day 9; every bin grows by e^{r/252}
    lr2 = np.diff(np.log(p), axis=1) ** 2
    h = np.full(1200, lr2.mean())
    for j in range(9):
        h = 0.94 * h + 0.06 * lr2[:, j]
    b = np.empty(1200, dtype=int)
    b[np.argsort(h, kind="stable")] = np.arange(1200) * 4 // 1200  # four bins of 300 by rank of h
    for k in range(4):
        np.testing.assert_allclose(q[b == k, 10].sum(), np.exp(R / 252) * q[b == k, 9].sum(), rtol=1e-12)
    assert not np.allclose(q, martingale_correction(p, R))
    # ties (599 paths flat on day 1) still give equal bins: a quantile cut would leave the next path alone in
    # its bin, its day-2 growth forced to exactly e^{r/252}
    flat = p.copy()
    flat[:599, 1:] = flat[:599, 1:] / flat[:599, 1:2] * S0
    qf = conditional_martingale_correction(flat, R, max_bins=4, min_paths=100)
    assert np.unique(np.round(qf[:, 2] / qf[:, 1], 12)).size > 1000
    assert not np.isclose(qf[:, 2] / qf[:, 1], np.exp(R / 252), rtol=0, atol=1e-13).any()
    with pytest.raises(InputError, match="ewma"):
        conditional_martingale_correction(p, R, ewma=1.0)


def test_conditional_correction_prices_a_volatility_mixture_whose_drift_ignores_volatility():
    """Half the paths at 10 % volatility, half at 40 %, all with one log drift r - mean(sigma^2)/2: right on
    average, wrong in each state. The risk-neutral price is the mean of the two Black–Scholes prices; (4)
    misses it by many SE, (4b) finds the states from the paths' own returns."""
    rng = np.random.default_rng(4)
    sig = np.where(np.arange(20_000) % 2 == 0, 0.1, 0.4)[:, None]  # (N, 1)
    r = (R - 0.5 * np.mean(sig**2)) / 252 + sig / np.sqrt(252) * rng.standard_normal((20_000, 252))
    kw = {"s0": S0, "strikes": [80.0, 100.0, 120.0], "maturities_days": [63, 252], "rate": R, "greeks": False}
    z = {}
    for corr in ("ems", "conditional"):
        t = price_paths(r, correction=corr, **kw).table
        ref = np.array([0.5 * (_bs(row.strike, row.maturity_days, row.option, 0.1)
                               + _bs(row.strike, row.maturity_days, row.option, 0.4)) for row in t.itertuples()])
        z[corr] = (t.price.to_numpy() - ref) / t.se.to_numpy()
    assert np.abs(z["ems"]).max() > 6
    assert np.abs(z["conditional"]).max() < 3, z["conditional"]


# ---- Monte Carlo on exact simulations ----------------------------------------------------------------
@pytest.fixture(scope="module")
def gbm_drifted():
    return bp.simulate_gbm(20_000, 252, mu=0.12, seed=2)  # physical drift 12 %, EMS must remove it


def test_european_on_exact_gbm_matches_black_scholes(gbm_drifted):
    k, mats = [80.0, 90.0, 100.0, 110.0, 120.0], [21, 63, 252]
    res = price_paths(gbm_drifted, s0=S0, strikes=k, maturities_days=mats, rate=R, greeks=False)
    t = res.table
    bs = np.array([_bs(row.strike, row.maturity_days, row.option) for row in t.itertuples()])
    err = np.abs(t.price.to_numpy() - bs)
    assert np.all(err < 4 * t.se.to_numpy() + 1e-3), err / t.se.to_numpy()  # +1e-3: deep OTM, se = 0
    inside = (t.ci_low.to_numpy() <= bs + 1e-3) & (bs - 1e-3 <= t.ci_high.to_numpy())
    assert inside.mean() > 0.85  # 95 % intervals (contracts share paths, so this is loose)
    # implied vols of the MC prices recover sigma where the option has time value
    atm = t[(t.strike == 100.0)]
    np.testing.assert_allclose(atm.iv, 0.2, atol=0.006)
    # put–call parity holds exactly on EMS paths (c)
    c, p = t[t.option == "call"], t[t.option == "put"]
    par = c.price.to_numpy() - p.price.to_numpy() - (S0 - c.strike.to_numpy() * np.exp(-R * c.maturity_days / 252))
    assert np.abs(par).max() < 1e-9


def test_without_correction_the_drift_biases_prices(gbm_drifted):
    """The oracle test above can fail: uncorrected drifted paths miss Black–Scholes by many SE."""
    res = price_paths(gbm_drifted, s0=S0, strikes=[100.0], maturities_days=[252], rate=R, correction="none",
                      control_variate=False, greeks=False, options=["call"])
    row = res.table.iloc[0]
    assert (row.price - _bs(100.0, 252)) / row.se > 8


def test_control_variate_and_parity_on_risk_neutral_paths():
    r = bp.simulate_gbm(20_000, 63, mu=R, seed=3)  # risk-neutral already
    kw = {"s0": S0, "strikes": [80.0, 100.0], "maturities_days": [63], "rate": R, "correction": "none",
          "greeks": False}
    plain = price_paths(r, control_variate=False, **kw).table
    cv = price_paths(r, control_variate=True, **kw).table
    for t in (plain, cv):
        bs = np.array([_bs(row.strike, 63, row.option) for row in t.itertuples()])
        assert np.all(np.abs(t.price - bs) < 4 * t.se)
    deep = (plain.option == "call") & (plain.strike == 80.0)
    assert float(cv.se[deep].iloc[0]) < 0.3 * float(plain.se[deep].iloc[0])  # ITM call ~ linear in S_T
    # parity holds within MC error without the correction (c)
    c, p = plain[plain.option == "call"], plain[plain.option == "put"]
    gap = c.price.to_numpy() - p.price.to_numpy() - (S0 - c.strike.to_numpy() * math.exp(-R * 63 / 252))
    dsd = np.exp(-R * 63 / 252) * S0 * np.sqrt(np.exp(0.04 * 63 / 252) - 1) / np.sqrt(20_000)  # sd of mean S_T
    assert np.all(np.abs(gap) < 4 * dsd)


def test_antithetic_pairs_help_raw_paths_but_not_after_ems():
    """Antithetic pairs are unbiased either way; they cut the variance of the raw estimator, but EMS already
    removes the part of the payoff that is odd in the noise, and what is left is even, so antithetic
    pairs are positively correlated and the variance goes up (ATM call ratio ~0.5 measured)."""
    z = np.random.default_rng(4).standard_normal((20_000, 63))
    dt = 1 / 252
    anti = np.empty((40_000, 63))
    anti[0::2], anti[1::2] = z, -z
    ra = (R - 0.02) * dt + 0.2 * math.sqrt(dt) * anti
    rp = bp.simulate_gbm(40_000, 63, mu=R, seed=14)
    kw = {"s0": S0, "strikes": [90.0, 100.0], "maturities_days": [63], "rate": R, "greeks": False,
          "options": ["call"], "batches": 50, "control_variate": False}
    a = price_paths(ra, antithetic=True, correction="none", **kw).table
    p = price_paths(rp, correction="none", **kw).table
    bs = np.array([_bs(k, 63) for k in a.strike])
    assert np.all(np.abs(a.price - bs) < 4 * a.se)
    assert float(a.se.iloc[0]) < 0.5 * float(p.se.iloc[0])  # ITM call: variance ratio ~4-10
    a_ems = price_paths(ra, antithetic=True, **kw).table
    p_ems = price_paths(rp, **kw).table
    assert np.all(np.abs(a_ems.price - bs) < 4 * a_ems.se)
    assert float(a_ems.se.iloc[1]) > float(p_ems.se.iloc[1])  # ATM: antithetic + EMS is worse


def test_greeks_by_common_random_numbers_match_black_scholes(gbm_drifted):
    res = price_paths(gbm_drifted[:, :63], s0=S0, strikes=[90.0, 100.0, 110.0], maturities_days=[63], rate=R,
                      options=["call", "put"])
    t, tau = res.table, 63 / 252
    sig = res.settings["annual_vol_of_paths"]
    for row in t.itertuples():
        d = float(black_scholes_delta(S0, row.strike, tau, R, sig, row.option))
        g = float(black_scholes_gamma(S0, row.strike, tau, R, sig))
        v = float(black_scholes_vega(S0, row.strike, tau, R, sig))
        assert abs(row.delta - d) < 4 * row.delta_se + 0.01, (row, d)
        assert abs(row.gamma - g) < 4 * row.gamma_se + 0.002, (row, g)
        assert abs(row.vega - v) < 4 * row.vega_se + 0.02 * v, (row, v)
    assert abs(sig - 0.2) < 0.003


def test_barriers_on_exact_gbm_match_quantlib_with_bgk_correction():
    r = bp.simulate_gbm(40_000, 63, mu=0.1, seed=6)
    res = price_paths(r, s0=S0, strikes=[95.0, 105.0], maturities_days=[63], rate=R, greeks=False,
                      options=["up-and-out", "down-and-in"], barriers=[120.0, 90.0])
    for row in res.table.itertuples():
        ref = bp.barrier_price_bgk(S0, row.strike, row.barrier, 63, R, 0.2, row.option)
        assert abs(row.price - ref) < 3 * row.se + 0.01 * ref, (row, ref)


def test_asian_on_exact_gbm_matches_quantlib():
    r = bp.simulate_gbm(20_000, 63, mu=0.1, seed=7)
    res = price_paths(r, s0=S0, strikes=[95.0, 105.0], maturities_days=[21, 63], rate=R, greeks=False,
                      options=["asian-call", "asian-put"])
    for row in res.table.itertuples():
        ref = bp.asian_price_tw(S0, row.strike, row.maturity_days, R, 0.2, row.option.split("-")[1])
        assert abs(row.price - ref) < 3 * row.se + 0.01 * ref, (row, ref)


def test_exact_heston_matches_quantlib_and_smile_slopes_down():
    # v0 from the stationary Gamma law: the oracle is the analytic price averaged over that law
    r = bp.simulate_heston(20_000, 63, v0=None, mu=R, substeps=4, seed=8)
    res = price_paths(r, s0=S0, strikes=[90.0, 100.0, 110.0], maturities_days=[63], rate=R, greeks=False,
                      options=["call"])
    t = res.table
    for row in t.itertuples():
        ref = bp.heston_stationary_price(S0, row.strike, 63, R, "call", nodes=24)
        assert abs(row.price - ref) < 3 * row.se + 0.01 * ref, (row, ref)
    assert t.iv.iloc[0] > t.iv.iloc[2] + 0.01  # rho < 0: implied vols fall with the strike
    # a fixed v0 is a different law: the same test against the wrong oracle fails
    wrong = bp.heston_price(S0, 90.0, 63, R, v0=0.09)
    assert abs(t.price.iloc[0] - wrong) > 10 * t.se.iloc[0]


def test_bad_inputs_are_input_errors():
    r = np.zeros((100, 10)) + 0.001
    with pytest.raises(InputError, match="longest maturity"):
        price_paths(r, maturities_days=[21])
    with pytest.raises(InputError, match="barrier above"):
        price_paths(r, maturities_days=[5], options=["up-and-out"], barriers=[90.0])
    with pytest.raises(InputError, match="strikes"):
        price_paths(r, maturities_days=[5], strikes=[-1.0])
    with pytest.raises(InputError, match="correction"):
        price_paths(r, maturities_days=[5], correction="girsanov")


# ---- a small fitted model ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def gbm_model():
    from findiffusion import fit
    from findiffusion.networks import NetworkConfig
    from findiffusion.training import FitConfig, TrainConfig

    torch.set_num_threads(1)
    r = bp.simulate_gbm(1, 5000, mu=0.07, seed=9)[0]
    cfg = FitConfig(network=NetworkConfig(channels=16), train=TrainConfig(steps=400, batch_size=64, window=32, vol_filter="none"),
                    stitch_context=16)
    return fit(r, cfg)


def test_antithetic_sampler_matches_the_core_sampler(gbm_model):
    """Rows 0, 2, 4, ... use the same x_T as model.sample with the same seed (one chunk, DDIM eta=0)."""
    a = sample_antithetic(gbm_model, 16, 20, sampler="ddim", steps=5, seed=3)
    b = gbm_model.sample(8, 20, sampler="ddim", steps=5, seed=3)
    np.testing.assert_allclose(a[0::2], b, rtol=1e-5, atol=1e-8)
    assert not np.allclose(a[1::2], b)
    with pytest.raises(InputError, match="deterministic"):
        sample_antithetic(gbm_model, 4, 5, sampler="sde")


def test_small_gbm_model_prices_near_black_scholes(gbm_model, tmp_path):
    """Honest tolerance for a 400-step, 16-channel model: implied vols within 0.2 +- 0.04 (the full-size
    check, 2 SE + 1 % of Black–Scholes, is bench/pricing.py)."""
    res = price_with_model(gbm_model, s0=S0, strikes=[95.0, 100.0, 105.0], maturities_days=[21], rate=R,
                           n_paths=2000, sampler="ddim", steps=10, seed=1, batches=10)
    t = res.table
    assert np.all(np.abs(t.iv - 0.2) < 0.04), t.iv
    c, p = t[t.option == "call"], t[t.option == "put"]
    par = c.price.to_numpy() - p.price.to_numpy() - (S0 - c.strike.to_numpy() * math.exp(-R * 21 / 252))
    assert np.abs(par).max() < 1e-9
    assert "call" in res.summary() and "correction=conditional" in res.summary()
    png = res.plot(tmp_path / "smile.png")
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_cli_price(gbm_model, tmp_path, capsys):
    from findiffusion.cli import main

    d = tmp_path / "m"
    gbm_model.save(d)
    out = tmp_path / "out"
    rc = main(["price", "--model", str(d), "--strike", "100", "--maturity-days", "5", "--n", "200", "--steps", "3",
               "--type", "call,up-and-out", "--barrier", "110", "--batches", "5", "--antithetic", "--out", str(out), "--quiet"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "up-and-out-call" in text and "call" in text
    assert (out / "prices.csv").exists() and (out / "smile.png").exists() and (out / "summary.txt").exists()
    for bad, msg in ((["--type", "up-and-out"], "barrier"), (["--strike", "-5"], "strike"),
                     (["--type", "digital"], "unknown option")):
        args = ["price", "--model", str(d), "--maturity-days", "5", "--n", "100", *bad]
        assert main(args) == 2
        err = capsys.readouterr().err.strip()
        assert msg in err and len(err.splitlines()) == 1, err


def test_antithetic_pairs_share_the_volatility_filter_state():
    """With a filter, both members of a pair start from the same variance: their first days mirror each other."""
    from findiffusion.volatility import VolatilityFilter
    from tests.test_anomaly import iid_gaussian_model

    model = iid_gaussian_model(scale=1.0)
    model.vol_filter = VolatilityFilter(alpha=0.05, beta=0.93, mean=1e-4, var=1e-4,
                                        start_quantiles=(2e-5, 1e-4, 9e-4))
    for context in (None, np.random.default_rng(0).normal(0, 0.02, 300)):
        a = sample_antithetic(model, 64, 40, steps=5, seed=1, context=context)
        np.testing.assert_allclose(a[0::2, 0] - 1e-4, -(a[1::2, 0] - 1e-4), rtol=1e-6, atol=1e-12)
        assert np.isfinite(a).all()


def test_bench_rejects_a_filter_without_persistence_room(capsys):
    """bench/pricing.py checks --vol-beta / --vol-alpha / --vol-asym before simulating anything: one line, exit 2."""
    with pytest.raises(SystemExit) as exc:
        bp.main(["--quick", "--only", "heston", "--vol-beta", "0.99", "--vol-alpha", "0.03"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "alpha + beta < 1" in err and "Traceback" not in err
    with pytest.raises(SystemExit) as exc:
        bp.main(["--quick", "--only", "heston", "--vol-asym", "2"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        bp.main(["--quick", "--only", "heston", "--window", "4"])
    assert exc.value.code == 2
    assert "--window must be at least 8" in capsys.readouterr().err


@pytest.mark.parametrize("window", [8, 33, 64, 100, 128, 256])
def test_bench_window_network_spans_the_window(window):
    """bench/pricing.py --window W: the network's receptive field covers the window in both directions
    (>= 2 W - 1 days) with no layer to spare, and W = 64 keeps the library's default network."""
    from findiffusion.networks import NetworkConfig

    d = bp.window_dilations(window)
    rf = NetworkConfig(dilations=d).receptive_field()
    assert rf >= 2 * window - 1
    assert NetworkConfig(dilations=d[:-1]).receptive_field() < 2 * window - 1
    if window == 64:
        assert d == NetworkConfig().dilations


def test_bench_config_overrides_reach_the_fit_config(capsys):
    """bench/pricing.py's flags set exactly their own fields: no flags is the library default, --batch-size and
    --channels change only the batch and the width (and the cache label), --fit-seed only FitConfig.seed, and a
    non-positive width or batch or a negative seed is one line, exit 2."""
    from findiffusion.config import config_tag
    from findiffusion.training import FitConfig

    assert bp.bench_config() == FitConfig()
    cfg = bp.bench_config(batch_size=512, channels=96, window=128, train_steps=9000)
    assert (cfg.train.batch_size, cfg.network.channels, cfg.train.window, cfg.train.steps) == (512, 96, 128, 9000)
    assert cfg.network.dilations == bp.window_dilations(128) and cfg.stitch_context == 64
    base = bp.bench_config(window=128, train_steps=9000)
    assert config_tag(cfg) != config_tag(base)
    assert base.train.batch_size == FitConfig().train.batch_size and base.network.channels == FitConfig().network.channels
    assert bp._label(False, batch_size=512, channels=96) == "default-batch512-ch96"
    seeded = bp.bench_config(window=128, train_steps=9000, fit_seed=3)  # --fit-seed: FitConfig.seed alone
    assert seeded == dataclasses.replace(base, seed=3) and config_tag(seeded) != config_tag(base)
    assert bp._label(False, window=128, fit_seed=3) == "default-window128-fitseed3"
    for flag, bad, says in (("--batch-size", "0", "must be a positive integer"),
                            ("--channels", "0", "must be a positive integer"),
                            ("--fit-seed", "-1", "must be 0 or a positive integer"),
                            ("--data-seed", "-1", "must be 0 or a positive integer")):
        with pytest.raises(SystemExit) as exc:
            bp.main(["--quick", "--only", "heston", flag, bad])
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert f"{flag} {says}" in err and "Traceback" not in err


def test_bench_heston_training_series_joins_independent_chains(monkeypatch):
    """Up to CHAIN_YEARS the Heston training series is one stationary path (the series of earlier runs); longer
    series are equal-length independent stationary paths joined end to end, cut to years * 252 days."""
    monkeypatch.setattr(bp, "CHAIN_YEARS", 2)
    one = bp.training_returns("heston", 2)
    np.testing.assert_array_equal(one, bp.simulate_heston(1, 2 * 252, mu=0.03, seed=12)[0])
    four = bp.training_returns("heston", 4)
    np.testing.assert_array_equal(four, bp.simulate_heston(2, 2 * 252, mu=0.03, seed=12).ravel())
    three = bp.training_returns("heston", 3)
    assert three.shape == (3 * 252,)
    np.testing.assert_array_equal(three, bp.simulate_heston(2, 378, mu=0.03, seed=12).ravel())
    assert not np.array_equal(four[:504], four[504:])  # the chains are not copies of one another
    assert bp.training_returns("heston", 4) is four and not four.flags.writeable  # memoised, shared read-only
    other = bp.training_returns("heston", 2, data_seed=1)  # --data-seed 1: another series of the same law
    np.testing.assert_array_equal(other, bp.simulate_heston(1, 2 * 252, mu=0.03, seed=112)[0])
    assert not np.array_equal(other, one) and bp.training_returns("heston", 2, 0) is one
    np.testing.assert_array_equal(bp.training_returns("gbm", 2, data_seed=2), bp.simulate_gbm(1, 2 * 252, seed=211)[0])


def test_bench_segment_reference_takes_contiguous_stretches(monkeypatch):
    """The sample reference is the training series' own stretches: consecutive days from starts that cover the
    whole series (the last possible start included), reproducible by seed."""
    monkeypatch.setattr(bp, "training_returns", lambda kind, years, data_seed=0: np.arange(300.0) + 1000 * data_seed)
    seg = bp.segment_reference("heston", 1, 4000, 252, seed=0)
    assert seg.shape == (4000, 252)
    np.testing.assert_array_equal(np.diff(seg, axis=1), 1.0)
    assert seg[:, 0].min() == 0 and seg[:, 0].max() == 300 - 252
    np.testing.assert_array_equal(seg, bp.segment_reference("heston", 1, 4000, 252, seed=0))
    np.testing.assert_array_equal(bp.segment_reference("heston", 1, 4000, 252, seed=0, data_seed=1), seg + 1000)


def test_bench_heston_tails_rejects_bad_arguments(capsys):
    """bench/heston_tails.py: no model, a malformed sampler list or too short a path is one line, exit 2, before
    any model is loaded or fitted."""
    spec = importlib.util.spec_from_file_location("heston_tails", Path(__file__).resolve().parents[1] / "bench" / "heston_tails.py")
    ht = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ht)
    for argv, msg in ((["--n", "10"], "give --model DIR or --fit-seed S"),
                      (["--model", "nowhere", "--samplers", "dpm"], "--samplers must be sampler:steps items"),
                      (["--model", "nowhere", "--days", "21"], "--days above 21")):
        with pytest.raises(SystemExit) as exc:
            ht.main(argv)
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert msg in err and "Traceback" not in err


def test_bench_model_cache_recalibrates_instead_of_refitting(tmp_path):
    """bench/model_cache.py: a model cached under the old calibration count, recalibrated, is exactly the model a fit
    with the new count gives (training never sees the calibration); a pre-fix start grid is refitted (None)."""
    import dataclasses
    import json
    import sys

    import findiffusion as fd
    from findiffusion.config import config_tag

    from .conftest import tiny_config

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    from model_cache import OLD_CALIBRATION, cached_model

    r, _ = fd.load_series("sp500")
    r = r.iloc[:1500]
    old_cfg = dataclasses.replace(tiny_config(steps=5), calibration_windows=OLD_CALIBRATION)
    new_cfg = dataclasses.replace(old_cfg, calibration_windows=300)
    fd.fit(r, old_cfg).save(tmp_path / f"m-{config_tag(old_cfg)}")
    new_dir = tmp_path / f"m-{config_tag(new_cfg)}"
    assert cached_model(tmp_path / "m-00000000", new_cfg) is None  # nothing cached under that tag
    got = cached_model(new_dir, new_cfg, progress=False)
    ref = fd.fit(r, new_cfg)
    assert got.calibration_windows == 300 and got.config.calibration_windows == 300
    assert (got.residual_scale, got.state_factors) == (ref.residual_scale, ref.state_factors)
    assert all(torch.equal(a, b) for a, b in zip(got.denoiser.state_dict().values(), ref.denoiser.state_dict().values(),
                                                 strict=True))
    assert fd.load(new_dir).residual_scale == ref.residual_scale  # saved under the new tag, then used as it is
    assert cached_model(new_dir, new_cfg).residual_scale == ref.residual_scale
    old_dir = tmp_path / f"m-{config_tag(old_cfg)}"
    meta = json.loads((old_dir / "model.json").read_text())
    meta["vol_filter"]["start_probs"] = []  # as written before the start-law fix
    meta["vol_filter"]["start_quantiles"] = meta["vol_filter"]["start_quantiles"][:201]
    (old_dir / "model.json").write_text(json.dumps(meta))
    assert fd.load(old_dir).vol_filter.legacy_start_grid
    assert cached_model(old_dir, old_cfg) is None  # refit
    assert cached_model(tmp_path / f"m2-{config_tag(new_cfg)}", new_cfg) is None  # no old cache of that name
    # the benches' in-memory recalibration (--calibrate-by-position ...): the model's own window count and fit seed
    from model_cache import recalibrate

    mine, ref = fd.load(new_dir), fd.load(new_dir)
    n_cal, secs = recalibrate(mine, by_position=True)
    ref.calibrate(300, seed=new_cfg.seed, by_position=True)
    assert n_cal == 300 and secs >= 0 and mine.state_factors_late is not None
    assert (mine.residual_scale, mine.state_factors, mine.state_factors_late) == (
        ref.residual_scale, ref.state_factors, ref.state_factors_late)
    # --calibration-windows with the recalibration cache: the first run saves, a second loads the same calibration
    cache = tmp_path / "recal"
    first, again, other = fd.load(new_dir), fd.load(new_dir), fd.load(new_dir)
    assert recalibrate(first, by_position=True, n_windows=200, cache=cache)[0] == 200
    ref.calibrate(200, seed=new_cfg.seed, by_position=True)
    assert (first.residual_scale, first.state_factors_late, first.stitch_scale) == (
        ref.residual_scale, ref.state_factors_late, ref.stitch_scale)
    assert len(list(cache.iterdir())) == 1
    assert recalibrate(again, by_position=True, n_windows=200, cache=cache) == (200, 0.0)  # loaded
    assert (again.residual_scale, again.state_factors, again.state_factors_late, again.stitch_scale,
            again.calibration_windows) == (ref.residual_scale, ref.state_factors, ref.state_factors_late,
                                           ref.stitch_scale, 200)
    recalibrate(other, n_windows=200, cache=cache)  # other options, another key: recalibrated, not loaded
    assert len(list(cache.iterdir())) == 2 and other.state_factors_late is None
    # another sampler: calibrated for the draws it names (else they would decode uncalibrated), under its own key
    ddim = fd.load(new_dir)
    assert recalibrate(ddim, by_position=True, n_windows=200, cache=cache, sampler="ddim", steps=5)[1] > 0
    ref.calibrate(200, seed=new_cfg.seed, by_position=True, sampler="ddim", steps=5)
    assert ddim.calibrated_for == ("ddim", 5) and ddim.scale_for("ddim", 5) == ref.residual_scale
    assert ddim.state_factors == ref.state_factors and len(list(cache.iterdir())) == 3
    steps_only = fd.load(new_dir)  # the model's own sampler with other steps: its own key too, not the default's
    assert recalibrate(steps_only, by_position=True, n_windows=200, cache=cache, steps=3)[1] > 0
    assert steps_only.calibrated_for == (steps_only.default_sampler[0], 3) and len(list(cache.iterdir())) == 4
    same = fd.load(new_dir)  # the default named: the default's key
    assert recalibrate(same, by_position=True, n_windows=200, cache=cache, sampler=same.default_sampler[0])[1] == 0


def test_bench_sample_limit_prices_every_stretch_like_the_law():
    """bench/sample_limit.py: every 63-day stretch of a long GBM series, in 20 blocks, priced with the conditional
    correction, is Black–Scholes within the sample's own error; pricing neighbouring stretches (which share almost
    all their days) in one correction batch would take their common move out as drift and price far too low."""
    spec = importlib.util.spec_from_file_location("sample_limit", Path(__file__).parents[1] / "bench" / "sample_limit.py")
    sl = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sl)
    sigma, days = 0.2, 63
    r = np.random.default_rng(5).normal((R - sigma ** 2 / 2) / 252, sigma / np.sqrt(252), 200 * 252)  # 200 years
    prices, keys = sl.block_prices(r, 20, days, strikes=[100.0, 110.0], mats=[days], rate=R, progress=False)
    assert prices.shape == (20, 4) and keys == [("call", 100.0, 63), ("call", 110.0, 63), ("put", 100.0, 63),
                                                ("put", 110.0, 63)]
    mean, se = prices.mean(0), prices.std(0, ddof=1) / np.sqrt(20)  # the series' own sampling error, by blocks
    for (opt, k, d), m, s in zip(keys, mean, se, strict=True):
        bs = _bs(k, d, opt, sigma)
        assert abs(m - bs) <= 3 * s + 0.01 * bs, (opt, k, m, bs, s)  # unshuffled: at-the-money -22 %, 15 SE
    with pytest.raises(ValueError, match="fewer --blocks"):
        sl.block_prices(r[:40], 2, days, strikes=[100.0], mats=[days], rate=R, progress=False)
    # width elasticity against Black–Scholes: sigma * vega / price (common random numbers make it precise)
    el = sl.width_elasticity(r, 20, days, strikes=[100.0, 110.0], mats=[days], rate=R, price=mean)
    for (opt, k, d), e in zip(keys, el, strict=True):
        exact = sigma * float(black_scholes_vega(S0, k, d / 252, R, sigma)) / _bs(k, d, opt, sigma)
        assert e == pytest.approx(exact, rel=0.1), (opt, k, e, exact)


def test_bench_pricing_offset_weights_later_days_exactly():
    """bench/pricing_offset.py: with the shifted noise moved to days d+1..d+D, the proposal still weights back exactly.
    On the exactly Gaussian model (a linear denoiser: every day has the same law, so every offset prices alike) a
    deep 21-day put on days d+1..d+21 matches the lognormal closed form within 3 SE + 1 % for d = 0 and for d = 40
    (a stitched chunk), with a smaller SE than plain paths; only those days' noise is shifted; d = 0 is
    findiffusion.importance's own proposal, to the bit."""
    from findiffusion.importance import ImportanceConfig, sample_importance
    from tests.test_anomaly import iid_gaussian_model

    spec = importlib.util.spec_from_file_location("pricing_offset",
                                                  Path(__file__).parents[1] / "bench" / "pricing_offset.py")
    po = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(po)
    torch.set_num_threads(1)
    model = iid_gaussian_model(scale=0.2 / np.sqrt(252))  # window 32, context 16
    n, cfg = 8000, ImportanceConfig((21,))
    plain = model.sample(n, 61, seed=3)  # (n, 61)
    sd_day = float(np.sqrt((plain**2).mean()))
    kw = {"s0": 100.0, "rate": 0.0, "correction": "none", "control_variate": False, "greeks": False, "batches": 20,
          "strikes": [85.0], "maturities_days": [21], "options": ["put"]}
    exact = float(black_scholes_price(100 * np.exp(21 * sd_day**2 / 2), 85.0, 1.0, 0.0, sd_day * np.sqrt(21), "put"))
    for off in (0, 40):
        r, tilt = po.draw(model, cfg, n, 2, off)  # (n, 21): days off+1..off+21
        assert r.shape == (n, 21)
        shifted = tilt.shift(slice(0, n), off + 21)  # (n, off + 21)
        assert not shifted[:, :off].any() and np.abs(shifted[:, off:]).max() > 0
        a = price_paths(r, weights=tilt.weights(), **kw).table.iloc[0]
        b = price_paths(plain[:, off:off + 21], **kw).table.iloc[0]
        assert abs(a.price - exact) < 3 * a.se + 0.01 * exact, (off, a.price, a.se, exact)
        assert a.se < b.se, (off, a.se, b.se)
    r0, t0 = po.draw(model, cfg, 300, 5, 0)
    r1, w1 = sample_importance(model, 300, 21, cfg, seed=5)
    np.testing.assert_array_equal(r0, r1)
    np.testing.assert_array_equal(t0.weights(), w1)
