"""Sampling speed per batch size (windows per network call): the measurement behind the CPU default of 512.

    .venv/bin/python bench/batch_size.py --model DIR [--n 4096] [--sizes 4096,2048,1024,512,256] [--threads 2]

Any fitted model will do (e.g. one from ``findiffusion fit`` or bench/sampler_vol.py's cache). Prints the wall
time of ``model.sample(n, window, sampler="dpm", steps=10, batch_size=b)`` for each b.
"""

from __future__ import annotations

import argparse
import time

import torch

import findiffusion


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="a fitted model directory")
    p.add_argument("--n", type=int, default=4096, help="windows to generate (default 4096)")
    p.add_argument("--sizes", default="4096,2048,1024,512,256", help="batch sizes to time")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    m = findiffusion.load(a.model, device=a.device)
    print(f"{a.n} windows of {m.window} days, DPM++ 10 steps, {a.threads} threads, {a.device}")
    print("batch  wall s  windows/s")
    for b in (int(s) for s in a.sizes.split(",")):
        t0 = time.time()
        m.sample(a.n, m.window, sampler="dpm", steps=10, seed=0, batch_size=b)
        dt = time.time() - t0
        print(f"{b:5d}  {dt:6.1f}  {a.n / dt:9.0f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
