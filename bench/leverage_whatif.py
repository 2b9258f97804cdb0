"""Leverage of the generated windows: the skewness of 21- and 63-day sums by part, and what the filter's asymmetry at decoding would change.

On Heston with rho < 0 the skewness of multi-day log returns is almost all leverage: an earlier shock with a later
square (findiffusion.stylized_facts.skew_parts, eq. (6b)). The generated windows of a model with the asymmetric filter (3) get
their leverage from two places, the filter's reaction to falls when the residuals are decoded (a of eq. (3)) and
what the network learned of how later residuals depend on earlier ones. This bench draws ``--n`` unconditional
windows of a model fitted by bench/pricing.py (recalibrated by position, the model of record of docs/pricing.md)
and ``--train-windows`` training windows at uniform random starts, and prints, for the training windows, the model,
and the model's residuals decoded with the asymmetry replaced by each value of ``--asym`` (k and g kept, so M of
eq. (4) moves a little):

* 21- and 63-day European prices (conditional martingale correction, r = 3 %) against the stationary Heston price,
  SE in brackets; on the same windows, so the rows differ by the decoding alone;
* the skewness of the 21- and 63-day sums of the returns, with its own and leverage parts;
* for the model and the training windows, every part of the skewness with an SE from ``--batches`` batches.

    .venv/bin/python bench/leverage_whatif.py --years 10000 --n 40000 --seed 5 \\
        --model bench/out/pricing/model-heston-default-steps16000-asym1-window128-ito-10000y-c451bcb3

(40 000 windows of 128 days: about 5 minutes on 2 cores, plus the recalibration unless cached.)
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import torch

import findiffusion
from findiffusion.pricing import price_paths
from findiffusion.stylized_facts import SKEW_PARTS, skew_parts

sys.path.insert(0, str(Path(__file__).resolve().parent))
from model_cache import recalibrate  # noqa: E402
from pricing import heston_stationary_price, training_returns  # noqa: E402
from residual_profile import CACHE  # noqa: E402

MATS, STRIKES = (21, 63), (80.0, 90.0, 100.0, 110.0, 120.0)
CONTRACTS = [(o, k, h) for h in MATS for o, k in (("put", 80.0), ("put", 90.0), ("call", 100.0), ("call", 110.0),
                                                  ("call", 120.0))]


def batch_se(x: np.ndarray, batches: int) -> dict[str, float]:
    """SE of each part of :func:`skew_parts` from the spread over ``batches`` batches of paths. Shape: x (N, h)."""
    parts = [skew_parts(b) for b in np.array_split(x, batches)]
    return {k: float(np.std([p[k] for p in parts], ddof=1) / np.sqrt(batches)) for k in SKEW_PARTS}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="a Heston model with an asymmetric filter fitted by bench/pricing.py")
    p.add_argument("--years", type=int, default=10_000, help="years of the training series (as bench/pricing.py)")
    p.add_argument("--n", type=int, default=40_000, help="windows drawn from the model")
    p.add_argument("--train-windows", type=int, default=200_000, help="training windows at random starts")
    p.add_argument("--seed", type=int, default=5)
    p.add_argument("--asym", default="0.95,0.9,0.8", help="asymmetries to decode with, comma-separated, in [-1, 1]")
    p.add_argument("--batches", type=int, default=10, help="batches for the SEs of the skewness parts")
    a = p.parse_args(argv)
    try:
        asyms = [float(x) for x in a.asym.split(",")]
    except ValueError:
        p.error(f"--asym must be comma-separated numbers in [-1, 1], got {a.asym!r}")
    if any(abs(x) > 1 for x in asyms):
        p.error(f"--asym values must lie in [-1, 1], got {a.asym}")
    if a.n < 100 * a.batches or a.batches < 2:
        p.error(f"--n must be at least 100 windows per batch (--batches {a.batches} >= 2), got {a.n}")
    torch.set_num_threads(2)
    model = findiffusion.load(a.model)
    f, L = model.vol_filter, model.window
    if not f.active or L < max(MATS):
        p.error(f"{a.model} needs a volatility filter and a window of at least {max(MATS)} days")
    n_cal, secs = recalibrate(model, by_position=True, cache=CACHE)
    t0 = time.time()
    gen = torch.Generator().manual_seed(a.seed)
    var0 = model.start_variance(a.n, gen)  # (n,)
    u = model.sample_model_space(a.n, L, var=var0, generator=gen, progress=True)  # (n, L)
    z0 = model.transform.inverse(model.residual_scale * u)  # (n, L): residuals with k, before g
    g_rows = model.factor_rows(L)  # (L, bins)
    r = training_returns("heston", a.years)
    starts = np.random.default_rng(3).integers(0, len(r) - L + 1, a.train_windows)
    r_train = np.lib.stride_tricks.sliding_window_view(r, L)[starts]  # (train_windows, L)
    print(f"heston, {a.years} years; {a.n} model windows (seed {a.seed}, drawn in {time.time() - t0:.0f} s; "
          f"recalibrated by position on {n_cal} windows{' (cached)' if secs == 0 else ''}), {a.train_windows} "
          f"training windows; the model's filter asymmetry {f.asym}\n")
    oracle = {c: heston_stationary_price(100.0, c[1], c[2], 0.03, c[0]) for c in CONTRACTS}
    print("| windows | " + " | ".join(f"{o[0]}{k:.0f}/{h}" for o, k, h in CONTRACTS)
          + " | skew 21 d (own / leverage) | skew 63 d (own / leverage) |")
    print("|---" * (len(CONTRACTS) + 3) + "|")

    def row(name: str, x: np.ndarray) -> None:
        t = price_paths(x[:, :max(MATS)], s0=100.0, strikes=list(STRIKES), maturities_days=list(MATS), rate=0.03,
                        greeks=False, correction="conditional").table.set_index(["option", "strike", "maturity_days"])
        cells = [f"{100 * (t.price[c] - oracle[c]) / oracle[c]:+.1f} ({100 * t.se[c] / oracle[c]:.1f})"
                 for c in CONTRACTS]
        sk = [skew_parts(x[:, :h]) for h in MATS]
        print(f"| {name} | " + " | ".join(cells) + " | "
              + " | ".join(f"{q['skew']:+.3f} ({q['own']:+.3f} / {q['leverage']:+.3f})" for q in sk) + " |", flush=True)

    r_model = f.unfilter(z0, var0, g_rows)  # (n, L): as sample() decodes a first window
    row("training", r_train)
    row(f"model (a = {f.asym})", r_model)
    for x in asyms:
        row(f"decoded with a = {x}", dataclasses.replace(f, asym=x).unfilter(z0, var0, g_rows))
    print("\nskewness of the h-day sums by part, SE from batches in brackets\n\n| windows | h | "
          + " | ".join(SKEW_PARTS) + " |\n|---|---|" + "---|" * len(SKEW_PARTS))
    for h in MATS:
        for name, x in (("model", r_model), ("training", r_train)):
            q, se = skew_parts(x[:, :h]), batch_se(x[:, :h], a.batches)
            print(f"| {name} | {h} | " + " | ".join(f"{q[k]:+.3f} ({se[k]:.3f})" for k in SKEW_PARTS) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
