"""Sampling-grid accuracy with the exact denoiser of Gaussian data: sd error per grid, sampler and steps.

For data N(0, lam) the optimal noise predictor is known in closed form (tests/conftest.py), so any
error in the samples' sd is the sampler's: discretization, and for a late start (eq. 8 of
findiffusion.sampling) the start's bias (1 + s^2)/(lam + s^2) in variance. The noise x is
normalized to sd exactly 1, so the numbers are the samplers' errors alone. Seconds on a CPU.

    .venv/bin/python bench/sampler_grid.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from findiffusion.sampling import SIGMA_MAX, SIGMA_MIN, get_sampler
from findiffusion.schedules import NoiseSchedule

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.conftest import GaussianOptimalEps  # noqa: E402

GRIDS = {"chain (sigma_bar(T) .. sigma_bar(1))": (None, None), "[0.01, 10]": (SIGMA_MAX, None),
         f"[{SIGMA_MIN}, {SIGMA_MAX:g}] (filter models)": (SIGMA_MAX, SIGMA_MIN)}
RUNS = (("ode", 10), ("ode", 20), ("dpm", 10), ("dpm", 20), ("dpm", 40))
LAMS = (0.3, 1.0, 3.0)


def main() -> int:
    sched = NoiseSchedule()
    x = torch.randn(20_000, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x = (x - x.mean()) / x.std()  # exactly mean 0, sd 1: what is left is the sampler's error
    print("sd of the samples / sqrt(lam) - 1, in %, for lam = " + " / ".join(f"{v:g}" for v in LAMS))
    print("| grid | " + " | ".join(f"{n} {k}" for n, k in RUNS) + " |")
    print("|---|" + "---|" * len(RUNS))
    for label, (smax, smin) in GRIDS.items():
        cells = []
        for name, steps in RUNS:
            errs = []
            for lam in LAMS:
                eps_fn = GaussianOptimalEps(np.zeros(1), np.array([[lam]]), sched)
                y = get_sampler(name)(eps_fn, x, sched, steps=steps, sigma_max=smax, sigma_min=smin)
                errs.append(100 * (float(y.std()) / np.sqrt(lam) - 1))
            cells.append(" / ".join(f"{e:+.1f}" for e in errs))
        print(f"| {label} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
