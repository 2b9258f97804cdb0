"""Denoiser calibration by noise level, on training and held-out windows (over- and under-fitting).

For clean windows x_0 (model space), noise eps and a diffusion step t, the network's prediction
e = eps_theta(x_t, t) of the best possible predictor E[eps | x_t] satisfies E[e . eps] = E[e . e]
(its error is orthogonal to it), so

    slope(t) = E[e . eps] / E[e . e]

is 1 for a calibrated denoiser, below 1 where its predictions are too large (overconfident: a
network that has memorized training windows predicts their noise on them and pays for it
elsewhere), above 1 where they are too timid. With the MSE E|e - eps|^2 per day, on the training
windows and on the held-out last 20 % (windows the model never saw), a gap between the two at low
noise is memorization. Unconditional windows (no context); every other window; the same noise
draws (seeded) for every model.

    .venv/bin/python bench/denoiser_calibration.py --model bench/out/models/A --model bench/out/models/B
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import torch

import findiffusion
from findiffusion.data import make_windows

STEPS = (10, 25, 50, 100, 200, 400, 700)


def calibration(model, returns: np.ndarray, steps=STEPS, seed: int = 0, stride: int = 2) -> list[tuple[float, float]]:
    """(slope, mse) per diffusion step for the unconditional windows of ``returns``."""
    den = model.denoiser
    u, s2 = model.encode(returns[None, :])  # (1, T), (1, T + 1)
    L = model.window
    x0 = torch.from_numpy(make_windows(u[0], L)[::stride]).float()  # (W, L)
    state = torch.from_numpy(model.vol_filter.state(s2[0, :-1])[: len(u[0]) - L + 1][::stride]).float()  # (W,)
    eps_fn = den.eps_fn(state=state if den.uses_state else None)
    g = torch.Generator().manual_seed(seed)
    out = []
    for t in steps:
        eps = torch.randn(x0.shape, generator=g)  # (W, L)
        tt = torch.full((len(x0),), t)
        xt = den.schedule.q_sample(x0, tt, eps)
        with torch.no_grad():
            e = eps_fn(xt, tt.double())
        out.append((float((e * eps).mean() / (e * e).mean()), float(((e - eps) ** 2).mean())))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", action="append", required=True, help="model fitted on the first 80 %% (repeat)")
    p.add_argument("--data", default="sp500")
    p.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    r, _ = findiffusion.load_series(a.data)
    n = int(round(0.8 * len(r)))
    parts = {"train": r.iloc[:n].to_numpy(), "held-out": r.iloc[n:].to_numpy()}
    print(f"slope E[e.eps]/E[e.e] (1 = calibrated) / MSE per day, {a.data}, noise seed {a.seed}")
    print("| model | windows | " + " | ".join(f"t = {t}" for t in STEPS) + " |")
    print("|---|---|" + "---|" * len(STEPS))
    for m in a.model:
        model = findiffusion.load(m)
        for name, ret in parts.items():
            cells = [f"{s:.2f} / {e:.2f}" for s, e in calibration(model, ret, seed=a.seed)]
            print(f"| {m} | {name} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
