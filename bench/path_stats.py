"""Long generated paths against their training market: leverage, volatility persistence, yearly realized vol.

Why a model's long-dated option prices miss (issue 5): this compares stitched 256-day paths of a model fitted
by bench/pricing.py with the 256-day windows of the same simulated training series (GBM or Heston, the
series of bench/pricing.py), on the statistics that set a one-year smile:

* leverage at long horizons, corr(r_t, sum of r^2 over the next h days), t in the first 64 days;
* volatility persistence, corr(realized variance of days [0, h), of days [h, 2h));
* quantiles of the one-year realized volatility, and skewness / excess kurtosis of 252-day sums;
* with ``--caps``, the same quantiles with the filter variance capped at C times the largest filtered
  training variance (the library caps at 10 times).

    .venv/bin/python bench/path_stats.py --market heston --model bench/out/pricing/model-heston-default-1000y-b34d26d0
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np
import torch

import findiffusion
from findiffusion import stylized_facts as sf
from findiffusion.data import make_windows

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pricing import training_returns  # noqa: E402

QS = (0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 0.999)


def leverage(x: np.ndarray, h: int) -> float:
    """corr(r_t, sum_{k=1..h} r_{t+k}^2), pooled over t = 0, 4, ..., 60. Shape: (N, T >= 64 + h)."""
    a = np.concatenate([x[:, t] for t in range(0, 64, 4)])
    b = np.concatenate([(x[:, t + 1:t + 1 + h] ** 2).sum(1) for t in range(0, 64, 4)])
    return float(np.corrcoef(a, b)[0, 1])


def persistence(x: np.ndarray, h: int) -> float:
    """corr of realized variance over days [0, h) and [h, 2h). Shape: (N, T >= 2h)."""
    return float(np.corrcoef((x[:, :h] ** 2).sum(1), (x[:, h:2 * h] ** 2).sum(1))[0, 1])


def yearly(x: np.ndarray) -> str:
    rv = np.sqrt((x[:, :252] ** 2).mean(1) * 252)
    s = x[:, :252].sum(1)
    return (" / ".join(f"{q:.3f}" for q in np.quantile(rv, QS))
            + f" | {sf.skewness(s):.2f} | {sf.excess_kurtosis(s):.2f}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--market", choices=("gbm", "heston"), required=True)
    p.add_argument("--model", required=True, help="a model fitted by bench/pricing.py on this market")
    p.add_argument("--years", type=int, default=1000, help="years of the training series (as bench/pricing.py)")
    p.add_argument("--n", type=int, default=3000, help="generated paths of 256 days")
    p.add_argument("--seed", type=int, default=3)
    p.add_argument("--caps", default="1", help="variance caps to compare, multiples of the training maximum")
    a = p.parse_args(argv)
    torch.set_num_threads(2)
    r = training_returns(a.market, a.years)
    real = make_windows(r, 256, stride=7)  # (W, 256)
    model = findiffusion.load(a.model)
    g = model.sample(a.n, 256, seed=a.seed)  # (N, 256), stitched from unconditional starts
    print(f"{a.market}, {a.years} years ({len(real)} real windows of 256 days, stride 7); "
          f"{a.n} generated paths, seed {a.seed}\n")
    print("| statistic | training series | generated |\n|---|---|---|")
    for h in (5, 21, 63, 126, 190):
        print(f"| leverage corr(r_t, Σ r² next {h} days) | {leverage(real, h):+.3f} | {leverage(g, h):+.3f} |")
    for h in (21, 63, 126):
        print(f"| persistence corr(RV days 0–{h}, RV next {h}) | {persistence(real, h):.3f} | {persistence(g, h):.3f} |")
    head = " / ".join(f"{q:g}" for q in QS)
    print(f"\n| paths | one-year realized vol, quantiles {head} | skewness of 252-day sums | excess kurtosis |")
    print("|---|---|---|---|")
    print(f"| training series | {yearly(real)} |")
    print(f"| generated | {yearly(g)} |")
    f = model.vol_filter
    if f.active and a.caps:
        smax = float(f.filter(r)[1].max())
        above = float(np.mean(f.filter(g)[1] > smax))
        for c in (float(v) for v in a.caps.split(",")):
            model.vol_filter = dataclasses.replace(f, var_max=c * smax)
            print(f"| generated, variance cap {c:g}× | {yearly(model.sample(a.n, 256, seed=a.seed))} |")
        model.vol_filter = f
        print("\nshare of generated days whose filter variance exceeds the largest training one "
              f"(filter re-run from the long-run variance): {above:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
