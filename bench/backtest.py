"""One-day VaR/ES backtest on the S&P 500: diffusion model vs historical simulation vs GARCH(1,1)-t.

Train 1999-01-04 .. 2014-12-31, test 2015-01-02 .. 2018-12-31 (about 1006 days), levels 99 % and 97.5 %.
Prints exceedances, rate, Kupiec / Christoffersen p-values and the Acerbi-Szekely Z2 test per method.
The diffusion model is evaluated with two estimators on the same samples: the empirical
quantile of each day's N samples ("diffusion") and the location-scale pooled estimator
("diffusion-pooled", see findiffusion.risk.forecast_from_samples).

    .venv/bin/python bench/backtest.py --model models/spx-2014          # full run
    .venv/bin/python bench/backtest.py --quick                           # smoke run (tiny model, 6 months)

Without --model a default-config model is fitted on 1999-2014 and cached under bench/out/.
Outputs (CSV, JSON, plots) go to bench/out/backtest[-quick]/.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

import findiffusion
from findiffusion.backtest import (
    diffusion_samples,
    evaluate,
    forecast_from_samples,
    garch_t_forecast,
    historical_simulation_forecast,
    split_index,
)
from findiffusion.config import config_tag
from findiffusion.networks import NetworkConfig
from findiffusion.training import FitConfig, TrainConfig

OUT = Path(__file__).resolve().parent / "out"
TRAIN_END = "2014-12-31"
LEVELS = (0.99, 0.975)


def get_model(path: str | None, quick: bool, seed: int, device: str = "cpu"):
    if path:
        return findiffusion.load(path, device=device)
    cfg = FitConfig(seed=seed) if not quick else FitConfig(
        network=NetworkConfig(channels=32), train=TrainConfig(steps=400), seed=seed)
    d = OUT / f"model-{'quick' if quick else 'default'}-2014-{config_tag(cfg)}"  # a new default gets a new cache
    if (d / "model.json").exists():
        return findiffusion.load(d, device=device)
    r, info = findiffusion.load_series("sp500", end=TRAIN_END)
    print(f"fitting a {'tiny' if quick else 'default'} model on {info.start} .. {info.end} -> {d}", file=sys.stderr)
    return findiffusion.fit(r, cfg, out_dir=d, data_info=info, progress=True, device=device)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="model trained on data up to 2014-12-31 (default: fit one, cached)")
    ap.add_argument("--quick", action="store_true", help="tiny model, 2015-01-02 .. 2015-06-30, few paths")
    ap.add_argument("--n", type=int, help="next-day samples per day (default 400; quick 100)")
    ap.add_argument("--sampler", default=None, help="sampler (default: the model's own, model.default_sampler)")
    ap.add_argument("--steps", type=int, help="sampler steps (default: the model's for its sampler; quick 5)")
    ap.add_argument("--garch-refit", type=int, default=1, help="refit GARCH-t every this many days (default 1)")
    ap.add_argument("--sims", type=int, default=2000, help="simulations for the Z2 p-value")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    ap.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    n = args.n or (100 if args.quick else 400)
    end = "2015-06-30" if args.quick else "2018-12-31"

    model = get_model(args.model, args.quick, args.seed, args.device)
    args.sampler, steps = model.resolve_sampler(args.sampler, args.steps or (5 if args.quick else None))
    returns, _ = findiffusion.load_series("sp500")
    r, i0 = split_index(returns, "2015-01-01", end)
    x = r.to_numpy()
    t0 = time.time()
    samples = diffusion_samples(model, x, i0, n_paths=n, sampler=args.sampler, steps=steps, seed=args.seed,
                                progress=True)
    t_diff = time.time() - t0
    t0 = time.time()
    garch = garch_t_forecast(x, i0, LEVELS, refit_every=args.garch_refit, progress=True)
    t_garch = time.time() - t0
    fcs = [forecast_from_samples(samples, LEVELS, "diffusion"),
           forecast_from_samples(samples, LEVELS, "diffusion-pooled", estimator="pooled"),
           historical_simulation_forecast(x, i0, LEVELS, 250), garch]
    info = {"model": args.model or "bench-fitted", "model_data_end": model.data_info.end if model.data_info else None,
            "n_paths": n, "sampler": args.sampler, "steps": steps, "seed": args.seed, "garch_refit": args.garch_refit,
            "diffusion_seconds": round(t_diff, 1), "garch_seconds": round(t_garch, 1)}
    res = evaluate(r.index[i0:], x[i0:], fcs, n_sims=args.sims, seed=args.seed, info=info)
    out = OUT / ("backtest-quick" if args.quick else "backtest")
    res.save(out)
    print(res.summary())
    print(f"\nmodel {info['model']} (trained to {info['model_data_end']}); diffusion: N={n} samples/day, {args.sampler} "
          f"{steps} steps, seed {args.seed}: {t_diff:.0f} s; GARCH-t refit every {args.garch_refit} d: {t_garch:.0f} s;"
          f" Z2 sims {args.sims}")
    print(f"outputs in {out}")


if __name__ == "__main__":
    main()
