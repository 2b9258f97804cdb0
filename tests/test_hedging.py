"""Hedging engine, strategies and the ``hedge`` command.

Oracles: Black–Scholes replication on GBM (QuantLib price), the Derman–Kamal (1999) standard deviation
of discrete delta-hedging error, exact scaling laws of the cost models, closed-form risk measures."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import QuantLib as ql
import torch

from findiffusion.cli import main
from findiffusion.costs import ProportionalCost, SqrtImpactCost
from findiffusion.errors import InputError
from findiffusion.hedging import (
    BandPolicy,
    HedgeSpec,
    delta_policy,
    entropic_risk,
    expected_shortfall,
    fragility_curve,
    hedge,
    simulate,
    train_policy,
)


def gbm(n: int, days: int, s0: float = 100.0, vol: float = 0.2, mu: float = 0.0, seed: int = 0) -> np.ndarray:
    """Exact GBM prices on the trading-day grid. Shape: (n, days + 1)."""
    rng = np.random.default_rng(seed)
    dt = 1 / 252
    r = (mu - 0.5 * vol**2) * dt + vol * math.sqrt(dt) * rng.standard_normal((n, days))
    return s0 * np.exp(np.concatenate([np.zeros((n, 1)), np.cumsum(r, axis=1)], axis=1))


def ql_bs_price(s0, k, days, rate, vol, kind):
    t = days / 252
    payoff = ql.PlainVanillaPayoff(ql.Option.Call if kind == "call" else ql.Option.Put, k)
    df = math.exp(-rate * t)
    return ql.BlackCalculator(payoff, s0 * math.exp(rate * t), vol * math.sqrt(t), df).value()


@pytest.mark.parametrize("kind,strike,rate", [("call", 100.0, 0.03), ("put", 95.0, 0.0)])
def test_zero_cost_delta_hedge_replicates_black_scholes(kind, strike, rate):
    # Under a drift mu != r the option's expected payoff is not its price, but the delta-hedged
    # replication cost e^{-rT} g(S_T) - sum a_k (S~_{k+1} - S~_k) averages to the Black-Scholes price.
    n, days, vol = 20_000, 63, 0.25
    paths = gbm(n, days, vol=vol, mu=0.12, seed=1)
    spec = HedgeSpec(option=kind, strike=strike, maturity_days=days, position=-1.0, vol=vol, rate=rate)
    res = hedge(paths, spec)
    replication = res.premium - res.pnl  # per path, for one option
    price = ql_bs_price(100.0, strike, days, rate, vol, kind)
    assert res.premium == pytest.approx(price, rel=1e-9)
    se = replication.std(ddof=1) / math.sqrt(n)
    assert abs(replication.mean() - price) < 4 * se + 2e-3 * price
    st = paths[:, -1] * math.exp(-rate * days / 252)
    payoff = np.maximum(st - strike * math.exp(-rate * days / 252), 0) if kind == "call" \
        else np.maximum(strike * math.exp(-rate * days / 252) - st, 0)  # discounted, unhedged
    assert abs(payoff.mean() - price) > 10 * se  # the drift matters without hedging ...
    assert replication.std() < 0.2 * payoff.std()  # ... and the hedge removes most of the risk


@pytest.mark.parametrize("rebalance", [1, 3, 9])
def test_delta_hedge_std_follows_derman_kamal(rebalance):
    # Derman & Kamal (1999): std of discrete hedging P&L ~ sqrt(pi/4) * vega * sigma / sqrt(N rebalances)
    days, vol, n = 63, 0.2, 20_000
    paths = gbm(n, days, vol=vol, seed=2)
    res = hedge(paths, HedgeSpec(maturity_days=days, position=-1.0, vol=vol, rebalance=rebalance))
    tau = days / 252
    d1 = 0.5 * vol * math.sqrt(tau)
    vega = 100.0 * math.exp(-0.5 * d1**2) / math.sqrt(2 * math.pi) * math.sqrt(tau)
    n_reb = math.ceil(days / rebalance)
    expected = math.sqrt(math.pi / 4) * vega * vol / math.sqrt(n_reb)
    assert res.pnl.std() == pytest.approx(expected, rel=0.1)


def test_finer_rebalancing_shrinks_std_without_costs():
    paths = gbm(8000, 63, seed=3)
    stds = [hedge(paths, HedgeSpec(position=-1.0, vol=0.2, rebalance=r)).pnl.std() for r in (21, 7, 3, 1)]
    assert all(a > b for a, b in zip(stds, stds[1:], strict=False))


def test_simulate_matches_an_independent_numpy_hedge():
    from scipy.stats import norm

    paths = gbm(50, 10, seed=4)
    c, vol, k, p, reb = 2e-3, 0.3, 102.0, -7.0, 2
    spec = HedgeSpec(strike=k, maturity_days=10, position=p, vol=vol, rebalance=reb,
                     cost=ProportionalCost(c, smooth=1e-16))  # |q| smoothed over 1e-10 shares only
    out = simulate(paths, spec)
    pnl = np.zeros(50)
    for i, s in enumerate(paths):
        h_prev, gains, cost = 0.0, 0.0, 0.0
        for t in range(0, 10, reb):
            tau = (10 - t) / 252
            d1 = (math.log(s[t] / k) + 0.5 * vol**2 * tau) / (vol * math.sqrt(tau))
            h = -p * norm.cdf(d1)
            cost += c * s[t] * abs(h - h_prev)
            gains += h * (s[min(t + reb, 10)] - s[t])
            h_prev = h
        cost += c * s[10] * abs(h_prev)
        d1 = (math.log(100 / k) + 0.5 * vol**2 * 10 / 252) / (vol * math.sqrt(10 / 252))
        v0 = 100 * norm.cdf(d1) - k * norm.cdf(d1 - vol * math.sqrt(10 / 252))
        pnl[i] = p * (max(s[10] - k, 0) - v0) + gains - cost
    np.testing.assert_allclose(out.pnl.numpy(), pnl, rtol=1e-7, atol=1e-7)


def test_band_limits():
    from scipy.stats import norm

    paths = gbm(500, 21, seed=5)
    spec = HedgeSpec(maturity_days=21, cost=ProportionalCost(1e-3), position=-10.0)
    a = simulate(paths, spec, delta_policy)
    b = simulate(paths, spec, BandPolicy(0.0))
    torch.testing.assert_close(a.pnl, b.pnl)
    # Whalley-Wilmott: the ratio stays inside delta +/- c (S Gamma)^(2/3) and moves only when it would leave it
    c = 0.05
    band = simulate(paths, spec, BandPolicy(c))
    ratio = np.cumsum(band.trades.numpy(), axis=1)[:, :21] / 10.0  # a_k, (N, 21)
    tau = (21 - np.arange(21)) / 252
    s = paths[:, :21]
    d1 = (np.log(s / 100) + 0.02 * tau) / (0.2 * np.sqrt(tau))
    delta, gamma = norm.cdf(d1), norm.pdf(d1) / (s * 0.2 * np.sqrt(tau))
    w = c * (s * gamma) ** (2 / 3)
    assert (np.abs(ratio - delta) <= w + 1e-9).all()
    prev = np.concatenate([np.zeros((500, 1)), ratio[:, :-1]], axis=1)
    inside = np.abs(prev - delta) <= w
    assert inside.mean() > 0.3 and np.allclose(ratio[inside], prev[inside])
    assert float(band.cost.mean()) < float(a.cost.mean())


def test_risk_measures_closed_forms():
    pnl = -torch.arange(1, 101, dtype=torch.float64)  # losses 1..100
    assert float(expected_shortfall(pnl, 0.95)) == pytest.approx((96 + 97 + 98 + 99 + 100) / 5)
    g = torch.Generator().manual_seed(0)
    x = 0.3 + 2.0 * torch.randn(400_000, generator=g, dtype=torch.float64)
    # entropic risk of N(mu, s^2): -mu + lam s^2 / 2;  ES_a: -mu + s phi(z_a) / (1 - a)
    assert float(entropic_risk(x, 0.5)) == pytest.approx(-0.3 + 0.5 * 4 / 2, abs=0.02)
    es = -0.3 + 2.0 * math.exp(-0.5 * 1.6448536**2) / math.sqrt(2 * math.pi) / 0.05
    assert float(expected_shortfall(x, 0.95)) == pytest.approx(es, rel=0.01)


def test_fragility_scaling_laws():
    # delta hedge trades scale with the position, so per option: proportional cost is flat and the
    # square-root cost grows like sqrt(|position| / V) (eq. C2)
    paths = gbm(400, 21, seed=6)
    fr = np.array([1e-3, 1e-1])
    base = HedgeSpec(maturity_days=21, position=-1.0, sigma_daily=0.0126)
    prop = fragility_curve(paths, HedgeSpec(**{**base.__dict__, "cost": ProportionalCost(1e-3)}), fr,
                           strategies=("delta",))
    sq = fragility_curve(paths, HedgeSpec(**{**base.__dict__, "cost": SqrtImpactCost()}), fr, strategies=("delta",))
    assert prop.cost["delta"][1] == pytest.approx(prop.cost["delta"][0], rel=1e-6)
    assert sq.cost["delta"][1] / sq.cost["delta"][0] == pytest.approx(10.0, rel=1e-6)
    assert math.isfinite(sq.crossover("delta")) or sq.cost["delta"][-1] < sq.std["delta"][-1]
    assert "fragility" in sq.summary()


def test_learned_policy_beats_delta_under_sqrt_impact():
    # |position| = V/2: impact is a large part of the risk; a short training must already cut ES
    days = 21
    train, test = gbm(4000, days, seed=7), gbm(4000, days, seed=8)
    spec = HedgeSpec(maturity_days=days, position=-5e5, vol=0.2, sigma_daily=0.2 / math.sqrt(252),
                     cost=SqrtImpactCost())
    torch.manual_seed(0)
    policy, rep = train_policy(train, spec, steps=60, batch_size=512, lr=1e-2, seed=0)
    assert np.mean(rep.losses[-10:]) < rep.losses[0]
    learned, delta = hedge(test, spec, policy, "learned"), hedge(test, spec)
    assert learned.es < 0.95 * delta.es
    assert learned.stats()["mean_cost"] < delta.stats()["mean_cost"]


def test_spec_validation():
    with pytest.raises(InputError, match="rebalance"):
        HedgeSpec(maturity_days=5, rebalance=10)
    with pytest.raises(InputError, match="option type"):
        HedgeSpec(option="straddle")
    with pytest.raises(InputError, match="non-zero"):
        HedgeSpec(position=0.0)
    with pytest.raises(InputError, match="maturity_days"):
        simulate(gbm(3, 10), HedgeSpec(maturity_days=63))
    with pytest.raises(InputError, match="positive"):
        simulate(-gbm(3, 63), HedgeSpec(maturity_days=63))


# ---------------------------------------------------------------------------
# the command
# ---------------------------------------------------------------------------
class _GBMModel:
    """Stands in for a DiffusionModel: exact GBM price paths."""

    denoiser = SimpleNamespace(schedule=SimpleNamespace(T=1000))

    def sample_prices(self, n, length, *, s0=100.0, seed=0, **kw):
        return gbm(n, length, s0=s0, vol=0.2, seed=seed)


@pytest.fixture
def gbm_model(monkeypatch):
    monkeypatch.setattr("findiffusion.commands.hedge.load_model", lambda args: _GBMModel())


def test_cli_zero_cost_on_gbm(gbm_model, tmp_path, capsys):
    out = tmp_path / "h"
    rc = main(["hedge", "--model", "x", "--cost", "zero", "--n", "4000", "--vol", "0.2", "--out", str(out), "--quiet",
               "--fragility", "1e-3,1e-1"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "95% ES" in text and "fragility" in text and "dC/dq" in text
    for f in ("pnl_hist.png", "fragility.png", "pnl.csv", "summary.txt"):
        assert (out / f).stat().st_size > 0
    pnl = np.loadtxt(out / "pnl.csv", delimiter=",", skiprows=1)[:, 0]
    assert abs(pnl.mean()) < 4 * pnl.std() / math.sqrt(len(pnl))  # fair premium, zero cost: mean P&L 0


def test_cli_band_and_learned(gbm_model, tmp_path, capsys):
    for strat in ("band", "learned"):
        rc = main(["hedge", "--model", "x", "--strategy", strat, "--position=-2e5", "--n", "600", "--n-train", "600",
                   "--maturity-days", "10", "--train-steps", "5", "--out", str(tmp_path / strat), "--quiet",
                   "--fragility", "0.1"])
        assert rc == 0
        assert "vs delta hedging" in capsys.readouterr().out


@pytest.mark.parametrize("argv,msg", [
    (["--position", "0"], "--position"),
    (["--rebalance", "100"], "--rebalance"),
    (["--alpha", "1.5"], "--alpha"),
    (["--impact-y", "-1"], "--impact-y"),
    (["--n", "5"], "--n"),
])
def test_cli_bad_input(gbm_model, tmp_path, capsys, argv, msg):
    rc = main(["hedge", "--model", "x", "--out", str(tmp_path / "o"), *argv])
    err = capsys.readouterr().err
    assert rc == 2 and msg in err and err.count("\n") == 1


def test_cli_missing_model(tmp_path, capsys):
    rc = main(["hedge", "--model", str(tmp_path / "nope"), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "does not exist" in err
