"""GBM option prices per sampler, reduced size: is the pricing error the sampler's or the model's?

The GBM-fitted default model of bench/sampler_vol.py (fitted there if missing), N paths of 63 days,
calls and puts at strikes 80-120 and 21/63 days, EMS correction, 20 batches; for each sampler the count
within 2 SE + 1 % of Black-Scholes (sigma = 20 %), the ATM implied vols and the paths' daily vol.

    .venv/bin/python bench/pricing_samplers.py [--n 10000] [--samplers dpm:40,ddim:20,ode:20] [--model DIR]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import findiffusion  # noqa: E402
from findiffusion.config import config_tag  # noqa: E402
from findiffusion.pricing import black_scholes_price, price_paths  # noqa: E402
from findiffusion.training import FitConfig  # noqa: E402
from sampler_vol import OUT  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=10_000, help="paths per sampler (default 10000)")
    p.add_argument("--samplers", default="dpm:40,ddim:20,ode:20", help="sampler:steps list")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model", help="a GBM-fitted model directory (default: bench/sampler_vol.py's cached one)")
    a = p.parse_args(argv)
    torch.set_num_threads(2)
    d = Path(a.model) if a.model else OUT / f"model-gbm-{config_tag(FitConfig())}"
    if not (d / "model.json").exists() and not a.model:
        from sampler_vol import main as fit_it

        fit_it(["--n", "10", "--samplers", "ode:2"])  # fits and caches the GBM model
    m = findiffusion.load(d)
    strikes, mats = [80.0, 90.0, 100.0, 110.0, 120.0], [21, 63]
    print(f"{a.n} paths, strikes {strikes}, maturities {mats}, r = 3 %, Black-Scholes sigma = 20 %")
    print("sampler  steps  paths' vol  ATM call IV (21 / 63 d)  within 2 SE + 1 %  median |err| %  wall s")
    for item in a.samplers.split(","):
        name, steps = item.split(":")
        t0 = time.time()
        r = m.sample(a.n, max(mats), sampler=name, steps=int(steps), seed=a.seed, batch_size=1000)  # (N, 63)
        res = price_paths(r, s0=100.0, strikes=strikes, maturities_days=mats, rate=0.03, options=["call", "put"],
                          greeks=False, correction="ems")  # EMS, as the table in docs/pricing.md was measured
        ok, errs = 0, []
        for _, row in res.table.iterrows():
            bs = float(black_scholes_price(100.0, row.strike, row.maturity_days / 252, 0.03, 0.2, row.option))
            ok += abs(row.price - bs) <= 2 * row.se + 0.01 * bs
            errs.append(100 * (row.price - bs) / bs)
        atm = res.table[(res.table.strike == 100) & (res.table.option == "call")].iv.to_numpy()
        print(f"{name:7s} {int(steps):6d}  {r.std() * np.sqrt(252):10.4f}  {atm[0]:10.4f} / {atm[1]:.4f}  "
              f"{ok:8d} / {len(res.table)}  {np.median(np.abs(errs)):14.2f}  {time.time() - t0:6.0f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
