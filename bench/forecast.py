"""Rolling-origin forecast evaluation on the S&P 500: diffusion vs GARCH(1,1)-t vs historical simulation.

The diffusion model is trained on 1999-01-04 .. 2014-12-31 (``--model DIR``, or fitted here with
default settings and cached under bench/out/). Origins run through 2015-2018 every ``--every``
trading days; at each origin every method forecasts the next 20 daily returns as an ensemble of
paths, scored on 1-, 5- and 20-day cumulative returns (CRPS, pinball loss over the 5/25/50/75/95 %
quantiles, coverage of the central 90 % interval, QLIKE of the forecast E[R_h^2] against R_h^2).
GARCH parameters are fitted once on the same training span and then filtered through the test span.

    .venv/bin/python bench/forecast.py [--model models/spx-2014] [--quick]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

import findiffusion
from findiffusion import forecasting as F
from findiffusion.config import config_tag

OUT = Path(__file__).resolve().parent / "out"
TRAIN_END = "2014-12-31"


def get_model(path: str | None, quick: bool, returns: pd.Series, seed: int, device: str = "cpu"):
    from findiffusion.networks import NetworkConfig
    from findiffusion.training import FitConfig, TrainConfig

    if path:
        return findiffusion.load(path, device=device), path
    if quick:
        cfg, name = FitConfig(network=NetworkConfig(channels=32), train=TrainConfig(steps=400), seed=seed), "dev-2014"
    else:
        cfg, name = FitConfig(seed=seed), "spx-2014-default"
    d = OUT / f"{name}-{config_tag(cfg)}"  # a new default gets a new cache
    if (d / "model.json").exists():
        return findiffusion.load(d, device=device), str(d)
    print(f"fitting {name} on 1999..{TRAIN_END} (cached in {d}) ...", file=sys.stderr)
    model = findiffusion.fit(returns.loc[:TRAIN_END], cfg, progress=True, device=device)
    model.save(d)
    return model, str(d)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="model trained on 1999..2014 (default: fit or reuse one in bench/out)")
    ap.add_argument("--quick", action="store_true", help="small smoke run (tiny model, few origins and paths)")
    ap.add_argument("--every", type=int, default=None, help="days between origins (default 10; quick 40)")
    ap.add_argument("--n", type=int, default=None, help="paths per origin (default 200; quick 100)")
    ap.add_argument("--sampler", default=None, help="sampler (default: the model's own, model.default_sampler)")
    ap.add_argument("--steps", type=int, default=None, help="sampler steps (default: the model's for its sampler)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    every = a.every or (40 if a.quick else 10)
    n = a.n or (100 if a.quick else 200)
    H, horizons = 20, (1, 5, 20)

    r, _ = findiffusion.load_series("sp500")
    x = r.to_numpy()
    train_end = int(r.index.searchsorted(pd.Timestamp(TRAIN_END), side="right"))  # first test index
    origins = np.arange(train_end - 1, len(x) - H, every)  # last observed day of each forecast
    realized = x[origins[:, None] + 1 + np.arange(H)]  # (M, H)
    model, mpath = get_model(a.model, a.quick, r, a.seed, a.device)
    a.sampler, steps = model.resolve_sampler(a.sampler, a.steps)
    print(f"model {mpath}; {len(origins)} origins {r.index[origins[0]].date()} .. {r.index[origins[-1]].date()}"
          f" every {every} days; {n} paths each; diffusion sampler {a.sampler} {steps} steps; seed {a.seed}")

    results, timing = {}, {}
    t0 = time.time()
    p = F.diffusion_paths(model, x, origins, H, n, sampler=a.sampler, steps=steps, seed=a.seed, progress=True)
    timing["diffusion"] = time.time() - t0
    results["diffusion"] = F.evaluate_paths(p, realized, horizons)
    sd_diff = p[:, :, 0].std(1)
    t0 = time.time()
    p, _ = F.garch_t_paths(r, train_end, origins, H, n, seed=a.seed)
    timing["garch-t"] = time.time() - t0
    results["garch-t"] = F.evaluate_paths(p, realized, horizons)
    sd_garch = p[:, :, 0].std(1)
    t0 = time.time()
    p = F.historical_paths(x, origins, H, n, lookback=1000, seed=a.seed)
    timing["hist-sim"] = time.time() - t0
    results["hist-sim"] = F.evaluate_paths(p, realized, horizons)

    table = pd.concat(results, names=["method"]).reset_index()
    table["crps"] *= 100  # percent log-return units
    table["pinball"] *= 100
    table["coverage"] *= 100
    table = table.sort_values(["horizon", "method"])
    print()
    print("horizon  method      CRPS(%)  pinball(%)  cover90(%)  QLIKE")
    for _, row in table.iterrows():
        print(f"{row['horizon']:>7}  {row['method']:<10} {row['crps']:8.4f}  {row['pinball']:10.4f}"
              f"  {row['coverage']:10.1f}  {row['qlike']:6.3f}")
    print()
    print("wall time (s): " + ", ".join(f"{k} {v:.1f}" for k, v in timing.items()))
    print(f"1-day forecast sd, median over origins: diffusion {100 * np.median(sd_diff):.3f} %, "
          f"garch-t {100 * np.median(sd_garch):.3f} %; corr {np.corrcoef(sd_diff, sd_garch)[0, 1]:.3f}")
    OUT.mkdir(exist_ok=True)
    table.to_csv(OUT / ("forecast_quick.csv" if a.quick else "forecast.csv"), index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
