"""Volatility bias of the samplers on a Gaussian market: a model fitted to simulated GBM (sigma = 20 %).

A default-config model is fitted on 40 years of exact GBM daily log returns (bench/pricing.py's
simulator, seed 11; cached under bench/out/sampler_vol/) and each sampler generates windows of
64 days; the table gives their annualised volatility and excess kurtosis (truth: 20 % and 0).
Option prices move about one for one with volatility, so this is the error the pricing bench sees.

    .venv/bin/python bench/sampler_vol.py [--n 4000] [--samplers ode:20,ode:40,ddim:20,ddim:50,ddim:100]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

import findiffusion
from findiffusion.config import config_tag
from findiffusion.training import FitConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pricing import DAYS, simulate_gbm  # noqa: E402

OUT = Path(__file__).resolve().parent / "out" / "sampler_vol"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=4000, help="windows per sampler (default 4000)")
    p.add_argument("--samplers", default="ode:20,ode:40,ddim:20,ddim:50,ddim:100", help="sampler:steps list")
    p.add_argument("--seed", type=int, default=1, help="sample seed (default 1)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    r = simulate_gbm(1, 40 * DAYS, seed=11)[0]
    cfg = FitConfig()
    d = OUT / f"model-gbm-{config_tag(cfg)}"
    if (d / "model.json").exists():
        model = findiffusion.load(d, device=a.device)
    else:
        t0 = time.time()
        model = findiffusion.fit(r, cfg, out_dir=d, device=a.device, progress=True)
        print(f"fitted in {time.time() - t0:.0f} s -> {d}")
    print(f"data: annualised volatility {r.std() * np.sqrt(DAYS):.4f}; {a.n} windows of 64 days per sampler")
    print("sampler     steps  ann. vol  excess kurt  wall s")
    for item in a.samplers.split(","):
        name, steps = item.split(":")
        t0 = time.time()
        x = model.sample(a.n, 64, sampler=name, steps=int(steps), seed=a.seed)  # (n, 64)
        k = ((x - x.mean()) ** 4).mean() / x.var() ** 2 - 3
        print(f"{name:10s} {int(steps):6d}  {x.std() * np.sqrt(DAYS):8.4f}  {k:11.2f}  {time.time() - t0:6.0f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
