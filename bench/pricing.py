r"""Option pricing against closed forms: models trained on simulated GBM and Heston markets.

    .venv/bin/python bench/pricing.py            # full size (default-config models, 100 000 paths)
    .venv/bin/python bench/pricing.py --quick    # smoke run: tiny models, few paths
    .venv/bin/python bench/pricing.py --gbm-model DIR --heston-model DIR   # reuse fitted models

Oracles (issue 5):
(a) a model fitted to GBM log returns (sigma = 20 %) prices European calls and puts within
    2 SE + 1 % of Black–Scholes, strikes 80–120, maturities 21/63/252 days;
(b) a model fitted to daily Heston paths (rho < 0) prices Europeans within 2 % of QuantLib's
    AnalyticHestonEngine averaged over the stationary Gamma law of v_0 (generated paths start
    unconditioned, i.e. from the stationary regime), and its smile slopes down;
(c) put–call parity on the corrected paths.
A model cannot be more right than its training sample: each part also prices a stationary block bootstrap
(mean block 20 days) of the same simulated training series with the same correction, as a reference, and
fresh paths of the simulated process itself (what a perfect generator would give at the same n: the Monte
Carlo and correction error alone). The correction is the library default, conditional EMS (eq. (4b) of
findiffusion.pricing); --correction ems gives plain EMS.
The default 1000 simulated years keep that sample's own error small on GBM (the fit costs the same number of
optimisation steps at any length): there the model passes 20 / 30 at 200 years and 29 / 30 at 1000
(docs/pricing.md). Not on Heston: its variance is so persistent and volatile that 1000 years hold 3.3 % less
variance than the Heston law (relative sd of the sample's mean variance about 1.25 / sqrt(years)), and the
training series' own one-year stretches, priced like the model (the sample reference), pass only 20 / 30;
at --years 10000 they pass 28 / 30. So each Heston table also prints that sample reference.
It also measures the antithetic variance-reduction factor (same paths, same seed).

The simulators and QuantLib oracles here are imported by tests/test_pricing.py.
Outputs (models, tables, smile plots) go to bench/out/pricing/.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import math
import sys
import time
from pathlib import Path

import numpy as np

DAYS = 252
OUT = Path(__file__).resolve().parent / "out" / "pricing"  # models, recalibrations, tables, plots
# Heston parameters of the synthetic market (annual units), rho < 0: a downward-sloping smile
HESTON = {"kappa": 2.0, "theta": 0.04, "xi": 0.5, "rho": -0.7}


# ---- simulators ------------------------------------------------------------------------------------
def simulate_gbm(n: int, days: int, sigma: float = 0.2, mu: float = 0.07, seed: int = 0) -> np.ndarray:
    r"""Exact GBM daily log returns: r = (mu - sigma^2/2) dt + sigma sqrt(dt) Z. Shape: (n, days)."""
    dt = 1.0 / DAYS
    z = np.random.default_rng(seed).standard_normal((n, days))
    return (mu - 0.5 * sigma**2) * dt + sigma * math.sqrt(dt) * z


def heston_stationary_shape_scale(kappa: float, theta: float, xi: float) -> tuple[float, float]:
    """The CIR variance's stationary law is Gamma(shape 2 kappa theta / xi^2, scale xi^2 / (2 kappa))."""
    return 2 * kappa * theta / xi**2, xi**2 / (2 * kappa)


def simulate_heston(n: int, days: int, *, v0: float | np.ndarray | None = None, mu: float = 0.03,
                    kappa: float = HESTON["kappa"], theta: float = HESTON["theta"], xi: float = HESTON["xi"],
                    rho: float = HESTON["rho"], substeps: int = 8, seed: int = 0, ito_drift: bool = True) -> np.ndarray:
    r"""Heston daily log returns, full-truncation Euler (Lord et al. 2010) with ``substeps`` per day.

    d ln S = (mu - v/2) dt + sqrt(v) dW_1,  dv = kappa (theta - v) dt + xi sqrt(v) dW_2,  d<W_1, W_2> = rho dt.
    ``v0=None`` draws v_0 from the stationary Gamma law. ``ito_drift=False`` drops the -v/2 term (a diagnostic:
    bench/residual_profile.py measures what that term adds to the variance of multi-day sums). Shape: (n, days).
    """
    half = 0.5 if ito_drift else 0.0
    rng = np.random.default_rng(seed)
    a, s = heston_stationary_shape_scale(kappa, theta, xi)
    v = rng.gamma(a, s, n) if v0 is None else np.broadcast_to(np.asarray(v0, float), (n,)).copy()
    dt = 1.0 / (DAYS * substeps)
    out = np.empty((n, days))
    for d in range(days):
        acc = np.zeros(n)
        for _ in range(substeps):
            z1 = rng.standard_normal(n)
            z2 = rho * z1 + math.sqrt(1 - rho**2) * rng.standard_normal(n)
            vp = np.maximum(v, 0.0)
            acc += (mu - half * vp) * dt + np.sqrt(vp * dt) * z1
            v = v + kappa * (theta - vp) * dt + xi * np.sqrt(vp * dt) * z2
        out[:, d] = acc
    return out


# ---- QuantLib oracles (time in trading days: Business252 on a calendar without holidays) ---------
def _ql_setup(s0: float, rate: float):
    import QuantLib as ql

    today = ql.Date(3, 1, 2022)
    ql.Settings.instance().evaluationDate = today
    dc = ql.Business252(ql.NullCalendar())
    spot = ql.QuoteHandle(ql.SimpleQuote(s0))
    rts = ql.YieldTermStructureHandle(ql.FlatForward(today, rate, dc))
    qts = ql.YieldTermStructureHandle(ql.FlatForward(today, 0.0, dc))
    return ql, today, dc, spot, rts, qts


def heston_price(s0: float, strike: float, days: int, rate: float, v0: float, kappa: float = HESTON["kappa"],
                 theta: float = HESTON["theta"], xi: float = HESTON["xi"], rho: float = HESTON["rho"],
                 option: str = "call") -> float:
    """European price from QuantLib's AnalyticHestonEngine."""
    ql, today, _, spot, rts, qts = _ql_setup(s0, rate)
    proc = ql.HestonProcess(rts, qts, spot, v0, kappa, theta, xi, rho)
    eng = ql.AnalyticHestonEngine(ql.HestonModel(proc))
    typ = ql.Option.Call if option == "call" else ql.Option.Put
    opt = ql.VanillaOption(ql.PlainVanillaPayoff(typ, strike), ql.EuropeanExercise(today + days))
    opt.setPricingEngine(eng)
    return float(opt.NPV())


def heston_stationary_price(s0: float, strike: float, days: int, rate: float, option: str = "call",
                            nodes: int = 48, **params: float) -> float:
    r"""E[Heston price(v_0)] over v_0 ~ stationary Gamma(a, s): generalised Gauss–Laguerre quadrature,
    E f(v) = \Gamma(a)^{-1} \sum_i w_i f(s x_i) with weight x^{a-1} e^{-x}."""
    from scipy.special import gamma, roots_genlaguerre

    p = HESTON | params
    a, s = heston_stationary_shape_scale(p["kappa"], p["theta"], p["xi"])
    x, w = roots_genlaguerre(nodes, a - 1)
    vals = [heston_price(s0, strike, days, rate, s * xi_, p["kappa"], p["theta"], p["xi"], p["rho"], option)
            for xi_ in x]
    return float(np.dot(w, vals) / gamma(a))


def barrier_price_bgk(s0: float, strike: float, barrier: float, days: int, rate: float, sigma: float,
                      kind: str) -> float:
    r"""Daily-monitored barrier under Black–Scholes: continuous-barrier price (QuantLib AnalyticBarrierEngine)
    at the shifted barrier B e^{\pm 0.5826 \sigma \sqrt{\Delta t}} (Broadie, Glasserman & Kou 1997)."""
    ql, today, dc, spot, rts, qts = _ql_setup(s0, rate)
    shift = math.exp(0.5826 * sigma * math.sqrt(1.0 / DAYS))
    vol = ql.BlackVolTermStructureHandle(ql.BlackConstantVol(today, ql.NullCalendar(), sigma, dc))
    proc = ql.BlackScholesMertonProcess(spot, qts, rts, vol)
    btype, typ, b = {"up-and-out-call": (ql.Barrier.UpOut, ql.Option.Call, barrier * shift),
                     "down-and-in-put": (ql.Barrier.DownIn, ql.Option.Put, barrier / shift)}[kind]
    opt = ql.BarrierOption(btype, b, 0.0, ql.PlainVanillaPayoff(typ, strike), ql.EuropeanExercise(today + days))
    opt.setPricingEngine(ql.AnalyticBarrierEngine(proc))
    return float(opt.NPV())


def asian_price_tw(s0: float, strike: float, days: int, rate: float, sigma: float, option: str = "call") -> float:
    """Discrete arithmetic-average Asian (fixings on days 1..T) under Black–Scholes: QuantLib's
    TurnbullWakemanAsianEngine (moment matching; ChoiAsianEngine is exact but takes minutes at 63 fixings)."""
    ql, today, dc, spot, rts, qts = _ql_setup(s0, rate)
    vol = ql.BlackVolTermStructureHandle(ql.BlackConstantVol(today, ql.NullCalendar(), sigma, dc))
    proc = ql.BlackScholesMertonProcess(spot, qts, rts, vol)
    typ = ql.Option.Call if option == "call" else ql.Option.Put
    fixings = [today + d for d in range(1, days + 1)]
    opt = ql.DiscreteAveragingAsianOption(ql.Average.Arithmetic, fixings, ql.PlainVanillaPayoff(typ, strike),
                                          ql.EuropeanExercise(today + days))
    opt.setPricingEngine(ql.TurnbullWakemanAsianEngine(proc))
    return float(opt.NPV())


# ---- the bench -------------------------------------------------------------------------------------
CHAIN_YEARS = 1000  # the longest single Heston path of a training series


def training_returns(kind: str, years: int, data_seed: int = 0) -> np.ndarray:
    """The simulated training series of the bench's models (fixed seeds), read-only. Shape: (years * 252,).
    ``data_seed`` 0 is the series of every run before session 37 (simulation seeds 11 for GBM, 12 for Heston);
    another value n simulates another series of the same law (seeds 11 + 100 n, 12 + 100 n).

    Memoised per (kind, years, CHAIN_YEARS, data_seed): a Heston run uses the series three times (fit, bootstrap and
    sample references) and 10 000 years take about 20 s to simulate.

    Heston: one stationary path up to CHAIN_YEARS; longer series are independent stationary paths of equal
    length joined end to end (simulated in parallel: a single path of 10 000 years would take minutes in the
    day-by-day loop), so 1000 years is the same series as before and a window rarely straddles a join."""
    return _training_returns(kind, years, CHAIN_YEARS, data_seed)


@functools.lru_cache(maxsize=4)
def _training_returns(kind: str, years: int, chain_years: int, data_seed: int = 0) -> np.ndarray:
    if kind == "gbm":
        r = simulate_gbm(1, years * DAYS, seed=11 + 100 * data_seed)[0]
    else:  # stationary paths of at most chain_years each (one path up to that length), simulated side by side
        # and joined end to end; risk-neutral drift (mu = r) so no change of measure touches v
        chains = -(-years // chain_years)
        r = simulate_heston(chains, -(-years * DAYS // chains), mu=0.03, seed=12 + 100 * data_seed)
        r = r.ravel()[: years * DAYS]
    r.flags.writeable = False  # shared by every caller
    return r


def bootstrap_reference(kind: str, years: int, n: int, days: int, seed: int, data_seed: int = 0) -> np.ndarray:
    """Stationary block bootstrap (mean block 20 days) of the training series: what its finite sample
    supports, priced with the same correction as the model. Shape: (n, days)."""
    from findiffusion.baselines import StationaryBootstrap

    return StationaryBootstrap(training_returns(kind, years, data_seed)).sample(n, days, seed=seed)


def segment_reference(kind: str, years: int, n: int, days: int, seed: int, data_seed: int = 0) -> np.ndarray:
    """Contiguous ``days``-day stretches of the training series at uniform random starts: the training sample's own
    paths, what a generator that learned that sample perfectly would give (its own sampling error included:
    1000 Heston years hold 3.3 % less variance than the Heston law). Shape: (n, days)."""
    r = training_returns(kind, years, data_seed)
    starts = np.random.default_rng(20_000 + seed).integers(0, len(r) - days + 1, n)
    return np.lib.stride_tricks.sliding_window_view(r, days)[starts]  # (n, days), a copy


def process_reference(kind: str, n: int, days: int, seed: int) -> np.ndarray:
    """Fresh paths of the simulated process itself (GBM, or Heston from its stationary law, as the training
    series): a perfect generator, priced like the model to show the Monte Carlo error alone. Shape: (n, days)."""
    if kind == "gbm":
        return simulate_gbm(n, days, seed=10_000 + seed)
    return simulate_heston(n, days, mu=0.03, seed=10_000 + seed)


def _filter_overrides(vol_asym: float, vol_beta: float | None, vol_alpha: float | None, vol_ito: bool = False,
                      state_oversample: float = 0.0) -> dict:
    """The TrainConfig filter (and window-draw) fields the flags set (``None``: keep the library default)."""
    given = {"vol_asym": vol_asym, "vol_beta": vol_beta, "vol_alpha": vol_alpha, "vol_ito": vol_ito or None,
             "state_oversample": state_oversample or None}
    return {k: v for k, v in given.items() if v is not None}


def window_dilations(window: int) -> tuple[int, ...]:
    """Dilations 1, 2, ..., 2^k with the smallest k whose receptive field 2^(k+2) - 1 spans the window in both
    directions (>= 2 window - 1): the default six layers for 64 days, seven for 128."""
    d = [1]
    while 2 * d[-1] < window:
        d.append(2 * d[-1])
    return tuple(d)


def bench_config(quick: bool = False, prediction: str = "eps", train_steps: int | None = None, vol_asym: float = 0.0,
                 vol_beta: float | None = None, vol_alpha: float | None = None, window: int | None = None,
                 batch_size: int | None = None, channels: int | None = None, vol_ito: bool = False,
                 state_oversample: float = 0.0, fit_seed: int = 0):
    """The FitConfig of the bench's models: the library default (``quick``: a tiny one) with the flags' overrides
    (``None`` / 0: keep the default; ``fit_seed``: FitConfig.seed, training's and the calibration's draws)."""
    from findiffusion.networks import NetworkConfig
    from findiffusion.training import FitConfig, TrainConfig

    cfg = (FitConfig(network=NetworkConfig(channels=16), train=TrainConfig(steps=600, batch_size=64, window=32),
                     stitch_context=16) if quick else FitConfig())
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(
        cfg.train, prediction=prediction, steps=train_steps or cfg.train.steps, batch_size=batch_size or cfg.train.batch_size,
        **_filter_overrides(vol_asym, vol_beta, vol_alpha, vol_ito, state_oversample)))
    if window:  # a longer native window: a network that spans it and the same stitching ratio (half the window)
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, window=window), stitch_context=window // 2,
                                  network=dataclasses.replace(cfg.network, dilations=window_dilations(window)))
    if channels:
        cfg = dataclasses.replace(cfg, network=dataclasses.replace(cfg.network, channels=channels))
    return dataclasses.replace(cfg, seed=fit_seed)


def _label(quick: bool, prediction: str = "eps", train_steps: int | None = None, vol_asym: float = 0.0,
           vol_beta: float | None = None, vol_alpha: float | None = None, window: int | None = None,
           batch_size: int | None = None, channels: int | None = None, vol_ito: bool = False,
           state_oversample: float = 0.0, fit_seed: int = 0) -> str:
    """The readable part of a cached model's directory name (the config tag makes it unique)."""
    return (("quick" if quick else "default") + ("" if prediction == "eps" else f"-{prediction}")
            + (f"-steps{train_steps}" if train_steps else "") + (f"-asym{vol_asym:g}" if vol_asym else "")
            + (f"-beta{vol_beta:g}" if vol_beta is not None else "")
            + (f"-alpha{vol_alpha:g}" if vol_alpha is not None else "") + (f"-window{window}" if window else "")
            + (f"-batch{batch_size}" if batch_size else "") + (f"-ch{channels}" if channels else "")
            + ("-ito" if vol_ito else "") + (f"-oversample{state_oversample:g}" if state_oversample else "")
            + (f"-fitseed{fit_seed}" if fit_seed else ""))


def _model(kind: str, path: str | None, quick: bool, out: Path, years: int, device: str = "cpu", data_seed: int = 0,
           **settings):
    """A model fitted (or loaded from ``path``, or from the cache in ``out``) with :func:`bench_config`'s
    ``settings`` on the training series of ``data_seed``."""
    import findiffusion
    from findiffusion.config import config_tag

    if str(Path(__file__).resolve().parent) not in sys.path:  # bench/model_cache.py, also when tests import this file
        sys.path.insert(0, str(Path(__file__).resolve().parent))
    from model_cache import cached_model

    if path:
        return findiffusion.load(path, device=device), f"loaded {path}"
    cfg = bench_config(quick, **settings)
    data = f"-data{data_seed}" if data_seed else ""  # another training series, another cache
    cache = out / f"model-{kind}-{_label(quick, **settings)}-{years}y{data}-{config_tag(cfg)}"  # new default, new cache
    model = cached_model(cache, cfg, device)  # None: fit (or refit: bench/model_cache.py)
    if model is not None:
        return model, f"cached {cache}"
    r = training_returns(kind, years, data_seed)
    t0 = time.time()
    model = findiffusion.fit(r, cfg, progress=not quick, device=device)
    model.save(cache)
    return model, f"fitted in {time.time() - t0:.0f} s on {years} years of simulated {kind} returns -> {cache}"


def _table(rows: list[dict], cols: list[str]) -> str:
    import pandas as pd

    return pd.DataFrame(rows)[cols].to_string(index=False, float_format=lambda v: f"{v:.4f}")


def _boot_table(kind: str, years: int, seed: int, n: int, mats: list[int], s0: float, strikes: list[float],
                rate: float, correction: str, process: bool = False, segments: bool = False, data_seed: int = 0):
    """Prices on the bootstrap reference paths, with ``process`` on fresh paths of the process itself, with
    ``segments`` on stretches of the training series (rows in the order of price_with_model's table)."""
    from findiffusion.pricing import price_paths

    paths = (process_reference(kind, n, max(mats), seed) if process
             else segment_reference(kind, years, n, max(mats), seed, data_seed) if segments
             else bootstrap_reference(kind, years, n, max(mats), seed, data_seed))
    return price_paths(paths, s0=s0, strikes=strikes, maturities_days=mats, rate=rate, greeks=False,
                       correction=correction).table


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny models and few paths (smoke run)")
    ap.add_argument("--gbm-model", help="a model fitted to GBM returns (default: fit one, cached in bench/out)")
    ap.add_argument("--heston-model", help="a model fitted to Heston returns (default: fit one, cached)")
    ap.add_argument("--n", type=int, default=None, help="paths (default 100000; --quick 2000)")
    ap.add_argument("--sampler", default=None,
                    help="sampler (default: the model's own, dpm for a volatility-filter model, else ode)")
    ap.add_argument("--steps", type=int, default=None, help="sampler steps (default: the model's own)")
    ap.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    ap.add_argument("--maturities", default=None, help="days, comma-separated (default 21,63,252)")
    ap.add_argument("--years", type=int, default=1000,
                    help="years of simulated training data (default 1000; the fit takes the same number of steps at "
                         "any length; at 40 years the sample's own 21-day variance was 6 %% above sigma^2 on GBM; "
                         "Heston needs about 10000: see the sample reference)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the sampled paths and the references (default 0)")
    ap.add_argument("--fit-seed", type=int, default=0,
                    help="seed of the fitted models' training and calibration draws (FitConfig.seed; default 0, the "
                         "cached models of earlier runs); another seed fits and caches another model")
    ap.add_argument("--data-seed", type=int, default=0,
                    help="which simulated training series (default 0: the series of every earlier run); another value "
                         "simulates another series of the same law, fits and caches a model on it, and prices the "
                         "bootstrap and sample references on it")
    ap.add_argument("--only", choices=["gbm", "heston"], help="run one part")
    ap.add_argument("--prediction", default="eps", choices=["eps", "v"],
                    help="the fitted models' parameterization (default eps, the library default)")
    ap.add_argument("--train-steps", type=int, default=None,
                    help="optimisation steps of the fitted models (default: the library default, 3200; at 1000 "
                         "simulated years that is under one pass over the windows: see docs/pricing.md)")
    ap.add_argument("--vol-asym", type=float, default=0.0,
                    help="fit the models with this bound on the filter's asymmetry (TrainConfig.vol_asym; default 0)")
    ap.add_argument("--vol-beta", type=float, default=None,
                    help="fit the models with this filter persistence beta (TrainConfig.vol_beta; default 0.965)")
    ap.add_argument("--vol-alpha", type=float, default=None,
                    help="bound on the filter's fitted reaction alpha (TrainConfig.vol_alpha; default 0.03)")
    ap.add_argument("--vol-ito", action="store_true",
                    help="fit the models with the Ito term in the filter mean, r = m - sigma^2/2 + sigma z "
                         "(TrainConfig.vol_ito)")
    ap.add_argument("--state-oversample", type=float, default=0.0, metavar="LAMBDA",
                    help="fit the models with training windows drawn (1 - LAMBDA) uniformly + LAMBDA in proportion to "
                         "their start variance (TrainConfig.state_oversample; default 0)")
    ap.add_argument("--calibrate-by-position", action="store_true",
                    help="re-estimate the models' residual calibration with one set of state factors g for a window's "
                         "first stitch_context days and one for the rest (DiffusionModel.calibrate(by_position=True); "
                         "in memory, the cached model is not changed)")
    ap.add_argument("--calibrate-by-start", action="store_true",
                    help="re-estimate the models' residual calibration with the factors c of eq. (7) by start state "
                         "and day range of a window, targets from the training series "
                         "(DiffusionModel.calibrate(by_start=True); in memory, the cached model is not changed)")
    ap.add_argument("--calibrate-start-moment", choices=("z2", "r2"), default="z2",
                    help="with --calibrate-by-start: what c of eq. (7) matches, the residuals' E z^2 (z2, default) or "
                         "the decoded returns' E r^2 (r2; calibrate(start_moment=...), findiffusion/startstate.py)")
    ap.add_argument("--calibration-windows", type=int, default=None, metavar="N",
                    help="windows of the --calibrate-by-* recalibration (default: as many as the model was calibrated "
                         "on); the recalibrated model is cached in the output folder under a key of everything it "
                         "depends on, so a second seed reuses it")
    ap.add_argument("--calibrate-by-correlation", action="store_true",
                    help="re-estimate the models' residual calibration with the shock correlation map of eq. (8), "
                         "target from the training series (DiffusionModel.calibrate(by_correlation=True); in memory)")
    ap.add_argument("--calibrate-by-leverage", action="store_true",
                    help="re-estimate the models' residual calibration with the decoding asymmetry of eq. (9), target "
                         "the training windows' leverage (DiffusionModel.calibrate(by_leverage=True); in memory)")
    ap.add_argument("--calibrate-by-stitch", action="store_true",
                    help="re-estimate the models' residual calibration with the view at the stitch of eq. (10): the "
                         "pairs of days across the stitch get the training leverage and the stitched days the training "
                         "variance (DiffusionModel.calibrate(by_stitch=True); in memory)")
    ap.add_argument("--window", type=int, default=None,
                    help="the fitted models' window in days (default 64); the network's dilations grow to span it "
                         "and the stitching context is half of it")
    ap.add_argument("--batch-size", type=int, default=None,
                    help="training windows per optimisation step of the fitted models (default 64; on a GPU a larger "
                         "batch costs about the same time per step)")
    ap.add_argument("--channels", type=int, default=None, help="residual channels of the fitted models' network "
                    "(default 48)")
    ap.add_argument("--importance", action="store_true",
                    help="the model's prices by importance sampling (findiffusion.importance: horizons = the "
                         "maturities, shift 2); the references stay plain")
    ap.add_argument("--importance-pilot", type=int, default=0, metavar="N",
                    help="with --importance: choose each maturity's shifts and start powers on an N-path pilot "
                         "(eqs. (4)-(5) of findiffusion.importance); default 0 (shift 2)")
    ap.add_argument("--no-antithetic", action="store_true", help="skip the antithetic variance-reduction part")
    ap.add_argument("--correction", default="conditional", choices=["conditional", "ems"],
                    help="martingale correction (default conditional, the library default; ems: plain EMS)")
    a = ap.parse_args(argv)
    from findiffusion.errors import InputError
    from findiffusion.training import TrainConfig

    try:  # a bad filter setting gets one line and exit 2 before any data is simulated
        TrainConfig(**_filter_overrides(a.vol_asym, a.vol_beta, a.vol_alpha, a.vol_ito, a.state_oversample))
    except InputError as exc:
        ap.error(str(exc))
    if a.window is not None and a.window < 8:
        ap.error(f"--window must be at least 8 days, got {a.window}")
    if a.calibrate_start_moment != "z2" and not a.calibrate_by_start:
        ap.error("--calibrate-start-moment is what --calibrate-by-start matches: add --calibrate-by-start")
    for flag, v, least in (("--batch-size", a.batch_size, 1), ("--channels", a.channels, 1),
                           ("--fit-seed", a.fit_seed, 0), ("--data-seed", a.data_seed, 0)):
        if v is not None and v < least:
            ap.error(f"{flag} must be {'a positive integer' if least else '0 or a positive integer'}, got {v}")
    settings = {"prediction": a.prediction, "train_steps": a.train_steps, "vol_asym": a.vol_asym, "vol_beta": a.vol_beta,
                "vol_alpha": a.vol_alpha, "window": a.window, "batch_size": a.batch_size, "channels": a.channels,
                "vol_ito": a.vol_ito, "state_oversample": a.state_oversample, "fit_seed": a.fit_seed}
    import torch

    from findiffusion.pricing import black_scholes_price, price_with_model

    torch.set_num_threads(2)
    out = OUT
    out.mkdir(parents=True, exist_ok=True)
    n = a.n or (2000 if a.quick else 100_000)
    steps = a.steps
    mats = [int(x) for x in (a.maturities or "21,63,252").split(",")]
    rate, s0, strikes = 0.03, 100.0, [80.0, 90.0, 100.0, 110.0, 120.0]
    print(f"bench/pricing.py  quick={a.quick}  n={n}  sampler={a.sampler or 'model default'} steps={steps or 'model default'}  maturities={mats}  seed={a.seed}  r={rate}  correction={a.correction}"
          + (f"  fit_seed={a.fit_seed}" if a.fit_seed else "") + (f"  data_seed={a.data_seed}" if a.data_seed else ""))
    ok = True

    def priced(model):  # the model's prices of every contract, and the seconds sampling and pricing took
        t0 = time.time()
        res = price_with_model(model, s0=s0, strikes=strikes, maturities_days=mats, rate=rate, n_paths=n,
                               sampler=a.sampler, steps=steps, seed=a.seed, greeks=False, correction=a.correction,
                               importance=a.importance, importance_pilot=a.importance_pilot if a.importance else 0,
                               progress=not a.quick)
        for note in res.notes:
            if note.startswith("importance"):
                print("   ", note)
        return res, time.time() - t0

    def recalibrated(model, how: str, kind: str) -> str:  # --calibrate-by-position / --calibrate-by-start
        if not (a.calibrate_by_position or a.calibrate_by_start or a.calibrate_by_correlation
                or a.calibrate_by_leverage or a.calibrate_by_stitch):
            return how
        from model_cache import recalibrate  # importable once _model has put bench/ on sys.path

        returns = (training_returns(kind, a.years, a.data_seed) if a.calibrate_by_start or a.calibrate_by_correlation
                   or a.calibrate_by_leverage or a.calibrate_by_stitch else None)  # the targets of eqs. (7)-(10)
        n_cal, secs = recalibrate(model, by_position=a.calibrate_by_position, by_start=a.calibrate_by_start,
                                  returns=returns, progress=not a.quick, by_correlation=a.calibrate_by_correlation,
                                  n_windows=a.calibration_windows, cache=None if a.quick else out,
                                  by_leverage=a.calibrate_by_leverage, by_stitch=a.calibrate_by_stitch,
                                  sampler=a.sampler, steps=steps,  # the draws it prices
                                  start_moment=a.calibrate_start_moment)
        fmt = lambda g: "/".join(f"{v:.3f}" for v in g or ())  # noqa: E731
        start = f"start state ({a.calibrate_start_moment})"
        ways = " and ".join(w for w, on in (("position", a.calibrate_by_position), (start, a.calibrate_by_start),
                                            ("shock correlation", a.calibrate_by_correlation),
                                            ("leverage", a.calibrate_by_leverage),
                                            ("stitch view", a.calibrate_by_stitch)) if on)
        c = "" if model.start_factors is None else ", c " + "; ".join(fmt(row) for row in model.start_factors)
        c += "" if model.leverage_asym is None else f", a_g {model.leverage_asym:.4f}"
        c += "" if model.stitch_asym is None else f", a_s {model.stitch_asym:.4f}"
        when = "loaded from the recalibration cache" if secs == 0 else f"in {secs:.0f} s"
        return (f"{how}; recalibrated by {ways} on {n_cal} windows {when} (k "
                f"{model.residual_scale:.4f}, g {fmt(model.state_factors)}, g_late {fmt(model.state_factors_late)}, "
                f"k_s {model.stitch_scale or 1:.4f}{c})")

    if a.only in (None, "gbm"):
        model, how = _model("gbm", a.gbm_model, a.quick, out, a.years, a.device, a.data_seed, **settings)
        how = recalibrated(model, how, "gbm")
        print(f"\n(a) GBM sigma=20 %: model {how}; sampler", *model.resolve_sampler(a.sampler, steps))
        res, t_s = priced(model)
        res.plot(out / "smile-gbm.png")
        boot = _boot_table("gbm", a.years, a.seed, n, mats, s0, strikes, rate, a.correction,
                           data_seed=a.data_seed)
        proc = _boot_table("gbm", a.years, a.seed, n, mats, s0, strikes, rate, a.correction, process=True,
                           data_seed=a.data_seed)
        rows = []
        for (_, row), b, q in zip(res.table.iterrows(), boot.itertuples(), proc.itertuples(), strict=True):
            bs = float(black_scholes_price(s0, row.strike, row.maturity_days / DAYS, rate, 0.2, row.option))
            rows.append({"option": row.option, "K": row.strike, "days": row.maturity_days, "mc": row.price,
                         "se": row.se, "bs": bs, "err%": 100 * (row.price - bs) / bs, "iv": row.iv,
                         "pass": abs(row.price - bs) <= 2 * row.se + 0.01 * bs,
                         "boot_err%": 100 * (b.price - bs) / bs, "boot_iv": b.iv,
                         "boot_pass": abs(b.price - bs) <= 2 * b.se + 0.01 * bs,
                         "proc_pass": abs(q.price - bs) <= 2 * q.se + 0.01 * bs})
        print(_table(rows, ["option", "K", "days", "mc", "se", "bs", "err%", "iv", "pass", "boot_err%", "boot_iv",
                            "boot_pass", "proc_pass"]))
        npass = sum(r["pass"] for r in rows)
        ok &= npass == len(rows)
        print(f"(a) {npass}/{len(rows)} within 2 SE + 1 % of Black–Scholes; sampling+pricing {t_s:.0f} s; "
              f"paths' annualised vol {res.settings['annual_vol_of_paths']:.4f}")
        print(f"    reference, block bootstrap of the {a.years}-year training series (same n and correction): "
              f"{sum(r['boot_pass'] for r in rows)}/{len(rows)}; fresh GBM paths: {sum(r['proc_pass'] for r in rows)}"
              f"/{len(rows)}")
        t = res.table
        par = (t[t.option == "call"].price.to_numpy() - t[t.option == "put"].price.to_numpy()
               - (s0 - t[t.option == "call"].strike.to_numpy() * np.exp(-rate * t[t.option == "call"].maturity_days
                                                                       / DAYS)))
        print(f"(c) put–call parity on corrected paths: max |C - P - (S0 - K e^-rT)| = {np.abs(par).max():.2e}")
        if not a.no_antithetic:
            # antithetic noise: variance factor at equal path count, with and without the EMS correction
            from findiffusion.pricing import price_paths, sample_antithetic

            d0 = mats[0]
            r_plain = model.sample(n, d0, sampler=a.sampler, steps=steps, seed=a.seed + 1)
            r_anti = sample_antithetic(model, n, d0, sampler=a.sampler, steps=steps, seed=a.seed + 2)
            vr = []
            for corr in ("ems", "none"):
                kw = {"s0": s0, "strikes": [90.0, 100.0, 110.0], "maturities_days": [d0], "rate": rate, "greeks": False,
                      "options": ["call"], "correction": corr, "control_variate": False, "batches": 50}
                tp, ta = price_paths(r_plain, **kw).table, price_paths(r_anti, antithetic=True, **kw).table
                vr += [{"correction": corr, "K": p.strike, "days": d0, "se_plain": p.se, "se_antithetic": q.se,
                        "var_ratio": (p.se / q.se) ** 2} for p, q in zip(tp.itertuples(), ta.itertuples(), strict=True)]
            print("antithetic noise, calls (var_ratio = plain variance / antithetic variance; > 1 is a gain):")
            print(_table(vr, ["correction", "K", "days", "se_plain", "se_antithetic", "var_ratio"]))
    if a.only in (None, "heston"):
        model, how = _model("heston", a.heston_model, a.quick, out, a.years, a.device, a.data_seed, **settings)
        how = recalibrated(model, how, "heston")
        p = HESTON
        print(f"\n(b) Heston kappa={p['kappa']} theta={p['theta']} xi={p['xi']} rho={p['rho']}: model {how}; "
              "sampler", *model.resolve_sampler(a.sampler, steps))
        res, t_s = priced(model)
        res.plot(out / "smile-heston.png")
        boot = _boot_table("heston", a.years, a.seed, n, mats, s0, strikes, rate, a.correction,
                           data_seed=a.data_seed)
        proc = _boot_table("heston", a.years, a.seed, n, mats, s0, strikes, rate, a.correction, process=True,
                           data_seed=a.data_seed)
        seg = _boot_table("heston", a.years, a.seed, n, mats, s0, strikes, rate, a.correction, segments=True,
                          data_seed=a.data_seed)
        rows = []
        for (_, row), b, q, g in zip(res.table.iterrows(), boot.itertuples(), proc.itertuples(), seg.itertuples(),
                                     strict=True):
            orc = heston_stationary_price(s0, row.strike, row.maturity_days, rate, row.option)
            tau = row.maturity_days / DAYS
            from findiffusion.pricing import implied_volatility

            iv_o = float(implied_volatility(orc, s0, row.strike, tau, rate, row.option))
            rows.append({"option": row.option, "K": row.strike, "days": row.maturity_days, "mc": row.price,
                         "se": row.se, "heston": orc, "err%": 100 * (row.price - orc) / orc, "iv": row.iv,
                         "iv_heston": iv_o, "pass": abs(row.price - orc) <= 0.02 * orc,
                         "pass_2se": abs(row.price - orc) <= 0.02 * orc + 2 * row.se,
                         "boot_err%": 100 * (b.price - orc) / orc, "boot_pass": abs(b.price - orc) <= 0.02 * orc,
                         "proc_err%": 100 * (q.price - orc) / orc, "proc_se%": 100 * q.se / orc,
                         "proc_pass": abs(q.price - orc) <= 0.02 * orc,
                         "sample_err%": 100 * (g.price - orc) / orc, "sample_pass": abs(g.price - orc) <= 0.02 * orc})
        print(_table(rows, ["option", "K", "days", "mc", "se", "heston", "err%", "iv", "iv_heston", "pass",
                            "boot_err%", "boot_pass", "proc_err%", "proc_se%", "proc_pass", "sample_err%",
                            "sample_pass"]))
        npass = sum(r["pass"] for r in rows)
        ok &= npass == len(rows)
        print(f"    reference, block bootstrap of the {a.years}-year training series (same n and correction): "
              f"{sum(r['boot_pass'] for r in rows)}/{len(rows)} within 2 %; fresh Heston paths (a perfect generator): "
              f"{sum(r['proc_pass'] for r in rows)}/{len(rows)}; the training series' own {max(mats)}-day stretches "
              f"(a perfect learner of the sample): {sum(r['sample_pass'] for r in rows)}/{len(rows)}")
        slopes = []
        for d in mats:
            calls = res.table[(res.table.option == "call") & (res.table.maturity_days == d)].set_index("strike")
            slopes.append(f"{d}d: iv(90)-iv(110) = {calls.iv[90.0] - calls.iv[110.0]:+.4f}")
        print(f"(b) {npass}/{len(rows)} within 2 % of the stationary Heston price; smile slope: " + ", ".join(slopes)
              + f"; sampling+pricing {t_s:.0f} s")
        print(f"    with the model's Monte Carlo error allowed for (within 2 % + 2 SE): "
              f"{sum(r['pass_2se'] for r in rows)}/{len(rows)}")
    print(f"\nplots: {out}/smile-*.png")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
