"""The stitched-chunk scale k_s (eq. (6) of findiffusion.model): long paths' volatility with and without it.

Samples ``--n`` unconditional paths of ``--length`` days from a calibrated filter model twice with the same seed:
with its k_s and with k_s = 1 (the first window is the same in both; the stitched days differ only by the scale),
and prints the annualized volatility of the first window, the rest of the first year and each later year, next to
that of the training returns (``--data``, ``--end``).

    .venv/bin/python bench/stitch_scale.py --model bench/out/models/sp500-80-seed0-default-2e7a0b7b --end 2014-12-31

(about 70 s for 1000 paths of 504 days of the default S&P 500 model on 2 cores).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import findiffusion


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="a calibrated model directory with a volatility filter")
    p.add_argument("--data", default="sp500", help="the training series to compare with (default sp500)")
    p.add_argument("--end", default=None, help="last date of the training series (default: all of it)")
    p.add_argument("--n", type=int, default=1000, help="paths (default 1000)")
    p.add_argument("--length", type=int, default=504, help="days per path (default 504, two years)")
    p.add_argument("--seed", type=int, default=3, help="sampling seed, the same for both rows (default 3)")
    a = p.parse_args(argv)
    torch.set_num_threads(2)
    m = findiffusion.load(a.model)
    if m.stitch_scale is None:
        p.error("the model has no stitched-chunk scale: run 'findiffusion calibrate --model DIR' first")
    W = m.window
    if a.length <= W:
        p.error(f"--length must exceed the window ({W} days) so that paths are stitched, got {a.length}")
    r_tr, _ = findiffusion.load_series(a.data, end=a.end)
    spans = [(0, W), (W, min(252, a.length))] + [(s, min(s + 252, a.length)) for s in range(252, a.length, 252)]
    spans = [(s, e) for s, e in spans if e > s]
    names = [f"days {s + 1}-{e}" for s, e in spans]
    print(f"{a.n} paths x {a.length} days, seed {a.seed}; training returns {a.data}: annualized vol "
          f"{np.std(r_tr) * np.sqrt(252):.4f}; k {m.residual_scale:.4f}, k_s {m.stitch_scale:.4f}")
    print(f"{'k_s':>8} | " + " | ".join(f"{n:>14}" for n in names) + " | wall s")
    for ks in (m.stitch_scale, 1.0):
        m.stitch_scale, t0 = ks, time.time()
        r = m.sample(a.n, a.length, seed=a.seed)
        vols = [r[:, s:e].std() * np.sqrt(252) for s, e in spans]
        print(f"{ks:8.4f} | " + " | ".join(f"{v:14.4f}" for v in vols) + f" | {time.time() - t0:.0f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
