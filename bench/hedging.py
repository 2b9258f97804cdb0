r"""Hedging a short call under non-linear market impact, on held-out generated paths (issue 6).

    .venv/bin/python bench/hedging.py --model models/spx-2014   # a fitted S&P 500 model
    .venv/bin/python bench/hedging.py                           # fits a default-config model (cached)
    .venv/bin/python bench/hedging.py --quick                   # smoke run: tiny model, few paths

Measures
(A) sanity: zero cost, exact GBM paths; the std of delta-hedging P&L shrinks as rebalancing gets finer,
    against the Derman & Kamal (1999) prediction sqrt(pi/4) vega sigma / sqrt(N rebalances);
(B) generated S&P 500 paths (training and held-out sets from different seeds), short ATM 63-day call,
    |position| / ADV = --size: delta, Whalley-Wilmott band and learned policy (deep hedging, ES95 objective)
    fitted under the square-root law, under proportional-only costs (pfhedge's model: a rate matched to the
    sqrt law's delta-hedge cost at this size, and a 5 bp spread that ignores impact) and under zero cost,
    all scored on held-out paths under the square-root law (and under the matched proportional cost);
    ES differences to delta hedging carry a paired-bootstrap 2 SE;
(C) the fragility curve: cost and ES per option of delta hedging as the position grows, square-root law
    against the matched proportional cost;
(D) the slippage-gradient profile dC/dq of the three cost models.
Seeds are fixed; outputs (model cache, tables, plots) go to bench/out/hedging/.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from findiffusion.costs import (  # noqa: E402
    AlmgrenChrissCost,
    ProportionalCost,
    SqrtImpactCost,
    ZeroCost,
    slippage_profile,
)
from findiffusion.hedging import (  # noqa: E402
    HedgeSpec,
    calibrate_band,
    delta_policy,
    fragility_curve,
    hedge,
    train_policy,
)

OUT = Path(__file__).resolve().parent / "out" / "hedging"


def gbm_prices(n: int, days: int, vol: float, seed: int, s0: float = 100.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    dt = 1 / 252
    r = -0.5 * vol**2 * dt + vol * math.sqrt(dt) * rng.standard_normal((n, days))
    return s0 * np.exp(np.concatenate([np.zeros((n, 1)), np.cumsum(r, axis=1)], axis=1))


def section_a(n: int) -> str:
    vol, days = 0.2, 63
    paths = gbm_prices(n, days, vol, seed=11)
    tau = days / 252
    d1 = 0.5 * vol * math.sqrt(tau)
    vega = 100 * math.exp(-0.5 * d1 * d1) / math.sqrt(2 * math.pi) * math.sqrt(tau)
    lines = [f"(A) zero cost, GBM sigma=20%, short 1 ATM call, 63 days, {n} paths (seed 11)",
             f"{'rebalance':>10} {'N':>4} {'P&L std':>9} {'Derman-Kamal':>13} {'ratio':>7} {'mean P&L':>9} {'+/-':>7}"]
    for reb in (1, 2, 5, 10, 21):
        st = hedge(paths, HedgeSpec(position=-1.0, vol=vol, rebalance=reb)).stats()
        nreb = math.ceil(days / reb)
        dk = math.sqrt(math.pi / 4) * vega * vol / math.sqrt(nreb)
        lines.append(f"{reb:>9}d {nreb:>4} {st['std_pnl']:9.4f} {dk:13.4f} {st['std_pnl'] / dk:7.3f} "
                     f"{st['mean_pnl']:9.4f} {2 * st['se_mean']:7.4f}")
    return "\n".join(lines)


def section_a2(n: int, steps: int, size: float = 0.5) -> str:
    """GBM paths under the square-root law: is the learned/band gain over delta due to the costs?"""
    vol, V = 0.2, 1e6
    train, test = gbm_prices(n // 2, 63, vol, seed=12), gbm_prices(n, 63, vol, seed=13)
    n_opt = size * V
    spec = HedgeSpec(maturity_days=63, position=-n_opt, vol=vol, volume=V, sigma_daily=vol / math.sqrt(252),
                     cost=SqrtImpactCost(1.0))
    zero = HedgeSpec(**{**spec.__dict__, "cost": ZeroCost()})
    ref = _per_option(hedge(test, spec), n_opt)
    band, _ = calibrate_band(train, spec)
    t0 = time.time()
    pol, _ = train_policy(train, spec, steps=steps, seed=0)
    tl = time.time() - t0
    pol0, _ = train_policy(train, zero, steps=steps, seed=0)
    head = (f"{'strategy (fitted under)':<30} {'mean P&L':>9} {'std':>8} {'ES95':>8} {'ES-ES(delta) 2se':>17} "
            f"{'cost':>8} {'shares':>7} {'fit s':>8}")
    return "\n".join([
        f"(A2) GBM sigma=20%, short ATM call 63 days, |position|/ADV = {size:g}, square-root law Y=1, daily "
        f"rebalancing; {n // 2} training (seed 12) / {n} held-out (seed 13) paths; per option", head,
        _row("delta", ref, None),
        _row(f"band c={band.c:g} (sqrt)", _per_option(hedge(test, spec, band, "band"), n_opt), ref),
        _row("learned (sqrt)", _per_option(hedge(test, spec, pol, "learned"), n_opt), ref, tl),
        _row("learned (zero cost)", _per_option(hedge(test, spec, pol0, "learned"), n_opt), ref)])


def get_model(args: argparse.Namespace):
    import findiffusion as fd
    from findiffusion.config import config_tag
    from findiffusion.networks import NetworkConfig
    from findiffusion.training import FitConfig, TrainConfig
    from model_cache import cached_model

    if args.model:
        return fd.load(args.model, device=args.device), args.model
    cfg = FitConfig(network=NetworkConfig(channels=32), train=TrainConfig(steps=400)) if args.quick else FitConfig()
    cache = OUT / f"model-{'tiny' if args.quick else 'default'}-{config_tag(cfg)}"  # a new default, a new cache
    model = cached_model(cache, cfg, args.device)  # None: fit (bench/model_cache.py)
    if model is not None:
        return model, str(cache)
    returns, _ = fd.load_series("sp500", end="2014-12-31")
    print(f"fitting {'a tiny' if args.quick else 'a default-config'} model on S&P 500 1999-2014 -> {cache}", flush=True)
    model = fd.fit(returns, cfg, progress=True, device=args.device)
    model.save(cache)
    return model, str(cache)


def _es(x: np.ndarray, alpha: float = 0.95) -> float:
    k = max(1, math.ceil((1 - alpha) * len(x) - 1e-9))
    return float(np.sort(-x)[-k:].mean())


def _es_diff_se(pnl: np.ndarray, ref: np.ndarray, reps: int = 300, seed: int = 0) -> float:
    """Paired bootstrap standard error of ES(pnl) - ES(ref) over the same held-out paths."""
    rng = np.random.default_rng(seed)
    n = len(pnl)
    d = [_es(pnl[i]) - _es(ref[i]) for i in (rng.integers(0, n, n) for _ in range(reps))]
    return float(np.std(d, ddof=1))


def _row(name: str, res, ref, secs: float | None = None) -> str:
    st = res.stats()
    t = "" if secs is None else f"{secs:8.1f}"
    if ref is None:
        d = f"{'':>17}"
    else:
        d = f"{st['es'] - _es(ref.pnl):8.3f} +/-{2 * _es_diff_se(res.pnl, ref.pnl):5.3f}"
    return (f"{name:<30} {st['mean_pnl']:9.4f} {st['std_pnl']:8.4f} {st['es']:8.4f} {d} {st['mean_cost']:8.4f} "
            f"{st['mean_turnover']:7.3f} {t}")


def _per_option(res, n_opt: float):
    res.pnl, res.cost, res.turnover = res.pnl / n_opt, res.cost / n_opt, res.turnover / n_opt
    return res


def section_b(train: np.ndarray, test: np.ndarray, sigma: float, size: float, steps: int) -> tuple[str, float]:
    vol = sigma * math.sqrt(252)
    V = 1e6
    n_opt = size * V
    base = HedgeSpec(option="call", strike=100.0, maturity_days=63, position=-n_opt, vol=vol, volume=V,
                     sigma_daily=sigma)

    def with_cost(c):
        return HedgeSpec(**{**base.__dict__, "cost": c})

    sq = with_cost(SqrtImpactCost(1.0))
    # proportional rate matching delta hedging's mean cost under the sqrt law at this size (training paths)
    c_eq = hedge(train, sq).stats()["mean_cost"] / hedge(train, with_cost(ProportionalCost(1.0))).stats()["mean_cost"]
    worlds = {"sqrt": sq, "prop-matched": with_cost(ProportionalCost(c_eq)),
              "spread 5bp": with_cost(ProportionalCost(5e-4)), "zero cost": with_cost(ZeroCost())}
    fitted = {}
    for name, spec in worlds.items():
        t0 = time.time()
        band, _ = calibrate_band(train, spec)
        tb = time.time() - t0
        pol, rep = train_policy(train, spec, steps=steps, seed=0)
        fitted[name] = (band, tb, pol, rep.seconds)
        print(f"  fitted under {name}: band c={band.c:g} ({tb:.1f} s), learned {rep.seconds:.1f} s", flush=True)
    head = (f"{'strategy (fitted under)':<30} {'mean P&L':>9} {'std':>8} {'ES95':>8} {'ES-ES(delta) 2se':>17} "
            f"{'cost':>8} {'shares':>7} {'fit s':>8}")
    text = [f"(B) short ATM call, 63 days, |position|/ADV = {size:g} ({n_opt:g} options, V = 1e6), "
            f"daily sigma {sigma:.4f} (BS vol {vol:.3f}); {len(train)} training / {len(test)} held-out paths; "
            f"per option, S0 = 100",
            f"    square-root law Y = 1; prop-matched: c = {c_eq:.3e} ({1e4 * c_eq:.1f} bps) gives delta hedging the "
            f"same mean cost on the training paths; learned: {steps} Adam steps x 1024 paths, MLP 4-32-32-3, ES95 loss"]
    for score in ("sqrt", "prop-matched"):
        spec = worlds[score]
        ref = _per_option(hedge(test, spec), n_opt)
        text += [f"  held-out, scored under {score}:", head, _row("delta", ref, None)]
        for fw in worlds:
            band, tb, pol, tl = fitted[fw]
            text.append(_row(f"band c={band.c:g} ({fw})", _per_option(hedge(test, spec, band, "band"), n_opt), ref, tb))
            text.append(_row(f"learned ({fw})", _per_option(hedge(test, spec, pol, "learned"), n_opt), ref, tl))
    return "\n".join(text), c_eq


def section_c(test: np.ndarray, sigma: float, c_eq: float, size: float) -> str:
    vol = sigma * math.sqrt(252)
    base = HedgeSpec(maturity_days=63, position=-1.0, vol=vol, sigma_daily=sigma)
    fr = np.array([1e-4, 1e-3, 1e-2, 0.03, 0.1, 0.3, 1.0, 3.0])
    sq = fragility_curve(test, HedgeSpec(**{**base.__dict__, "cost": SqrtImpactCost(1.0)}), fr, strategies=("delta",))
    pr = fragility_curve(test, HedgeSpec(**{**base.__dict__, "cost": ProportionalCost(c_eq)}), fr,
                         strategies=("delta",))
    sq.plot(OUT / "fragility_sqrt.png")
    lines = [f"(C) fragility of delta hedging, per option (rate {c_eq:.2e} matches the sqrt law at |pos|/ADV={size:g})",
             f"{'|pos|/V':>9} {'sqrt cost':>10} {'sqrt ES95':>10} {'prop cost':>10} {'prop ES95':>10} {'P&L std':>9}"]
    for i, f in enumerate(fr):
        lines.append(f"{f:9.0e} {sq.cost['delta'][i]:10.4f} {sq.es['delta'][i]:10.4f} {pr.cost['delta'][i]:10.4f} "
                     f"{pr.es['delta'][i]:10.4f} {sq.std['delta'][i]:9.4f}")
    x = sq.crossover("delta")
    lines.append(f"  sqrt law: mean cost exceeds the P&L std from |pos|/ADV = {x:.2g}" if math.isfinite(x)
                 else "  sqrt law: mean cost stays below the P&L std on this grid")
    return "\n".join(lines)


def section_d(sigma: float) -> str:
    out = ["(D) slippage gradient dC/dq at S = 100, V = 1e6"]
    for m in (ProportionalCost(5e-4), SqrtImpactCost(1.0), AlmgrenChrissCost()):
        out.append(slippage_profile(m, spot=100.0, sigma=sigma, volume=1e6, fractions=(1e-4, 1e-3, 1e-2, 1e-1)).summary())
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="fitted model directory (default: fit one, cached in bench/out/hedging/)")
    ap.add_argument("--quick", action="store_true", help="smoke run: tiny model, few paths, short training")
    ap.add_argument("--device", default="cpu", help="cpu, cuda or auto: fitting and sampling (default cpu)")
    ap.add_argument("--size", type=float, default=0.5, help="|position| / ADV of section B (default 0.5)")
    ap.add_argument("--no-gbm", action="store_true", help="skip sections A and A2 (GBM)")
    ap.add_argument("--n-train", type=int, help="training paths of section B (default 10000; quick 2000)")
    ap.add_argument("--n-test", type=int, help="held-out paths of section B (default 20000; quick 4000)")
    ap.add_argument("--train-steps", type=int, help="Adam steps of the learned policies (default 300; quick 100)")
    ap.add_argument("--sampler", help="sampler of section B (default: the model's own, model.default_sampler)")
    ap.add_argument("--steps", type=int, help="sampler steps of section B (default: the model's own)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    OUT.mkdir(parents=True, exist_ok=True)
    n_gbm, n_train, n_test, train_steps = (4000, 2000, 4000, 100) if args.quick else (20000, 10000, 20000, 300)
    n_train, n_test = args.n_train or n_train, args.n_test or n_test
    train_steps = args.train_steps or train_steps
    t0 = time.time()
    report: list[str] = []
    if not args.no_gbm:
        report.append(section_a(n_gbm))
        print(report[-1], flush=True)
        report.append(section_a2(n_gbm, train_steps))
        print(report[-1], flush=True)
    model, where = get_model(args)
    ts = time.time()
    sampler, sampler_steps = model.resolve_sampler(args.sampler, args.steps)
    train = model.sample_prices(n_train, 63, s0=100.0, sampler=sampler, steps=sampler_steps, seed=1)
    test = model.sample_prices(n_test, 63, s0=100.0, sampler=sampler, steps=sampler_steps, seed=2)
    sigma = float(np.diff(np.log(train), axis=1).std())
    report.append(f"model {where}: sampled {n_train} + {n_test} paths x 63 days ({sampler} {sampler_steps} steps, seeds 1/2) "
                  f"in {time.time() - ts:.0f} s; daily sigma {sigma:.4f}")
    print(report[-1], flush=True)
    b, c_eq = section_b(train, test, sigma, args.size, train_steps)
    report.append(b)
    print(b, flush=True)
    report.append(section_c(test, sigma, c_eq, args.size))
    print(report[-1], flush=True)
    report.append(section_d(sigma))
    print(report[-1], flush=True)
    hedge(test, HedgeSpec(maturity_days=63, position=-args.size * 1e6, vol=sigma * math.sqrt(252), sigma_daily=sigma,
                          cost=SqrtImpactCost()), delta_policy).plot(OUT / "pnl_delta_sqrt.png")
    report.append(f"total {time.time() - t0:.0f} s")
    print(report[-1])
    (OUT / ("hedging-quick.txt" if args.quick else "hedging.txt")).write_text("\n\n".join(report) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
