"""Does stitching long paths leave a mark at chunk boundaries?

Samples paths of 2520 days (10 years) from a model. A path is built from a
first window of L days and then chunks of L - C new days, each conditioned
on the C days before it. If stitching works, nothing is special about the
days next to a boundary:

* volatility: the cross-path sd of returns on the last day before and the
  first day after each boundary equals that of all other days;
* clustering: corr(|r_t|, |r_{t+1}|) over pairs that straddle a boundary
  equals that over pairs inside a chunk, and the ACF of |r| at lags 1..20
  computed on the long paths matches that of the real series.

Run:  python bench/stitching.py [--model DIR] [--n 200] [--length 2520] [--seed 0]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import findiffusion as fd


def acf_abs(x: np.ndarray, lags: int = 20) -> np.ndarray:
    """ACF of |r| pooled over paths. Shape: (N, T) -> (lags,)."""
    a = np.abs(x) - np.abs(x).mean()
    return np.array([(a[:, k:] * a[:, :-k]).mean() / (a * a).mean() for k in range(1, lags + 1)])


def pair_corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="model directory (default: fit the default model on the S&P 500)")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--length", type=int, default=2520)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sampler", default="ode")
    ap.add_argument("--steps", type=int, default=None)
    args = ap.parse_args()
    r, info = fd.load_series("sp500")
    model = fd.load(args.model) if args.model else fd.fit(r, progress=True)
    L, C = model.window, model.config.stitch_context
    t0 = time.time()
    x = model.sample(args.n, args.length, sampler=args.sampler, steps=args.steps, seed=args.seed, progress=True)
    dt = time.time() - t0
    # first chunk: days 0..L-1; then chunks of L - C days; boundary b = index of first day of a new chunk
    bounds = np.arange(L, args.length, L - C)
    inside = np.setdiff1d(np.arange(1, args.length), bounds)
    sd_all = x.std(axis=0)  # cross-path sd per day, (T,)
    absx = np.abs(x)
    rows = [
        ("days", f"{args.n} paths x {args.length} days, {len(bounds)} boundaries, window {L}, context {C}"),
        ("sampling time", f"{dt:.0f} s ({args.sampler})"),
        ("sd, first day after boundary / other days", f"{sd_all[bounds].mean() / sd_all[inside].mean():.3f}"),
        ("sd, last day before boundary / other days", f"{sd_all[bounds - 1].mean() / sd_all[inside].mean():.3f}"),
        ("corr(|r_t|,|r_t+1|) across boundary", f"{pair_corr(absx[:, bounds - 1], absx[:, bounds]):.3f}"),
        ("corr(|r_t|,|r_t+1|) inside chunks", f"{pair_corr(absx[:, inside - 1], absx[:, inside]):.3f}"),
    ]
    real = r.to_numpy()
    n_real = len(real) // args.length
    acf_syn = acf_abs(x)
    acf_real = acf_abs(real[None, :])
    rows.append(("ACF |r| lags 1,5,10,20 synthetic", ", ".join(f"{acf_syn[k - 1]:.3f}" for k in (1, 5, 10, 20))))
    rows.append(("ACF |r| lags 1,5,10,20 real (whole series)", ", ".join(f"{acf_real[k - 1]:.3f}" for k in (1, 5, 10, 20))))
    # annualised vol per path: its dispersion shows regimes carried across chunks
    vol_path = x.std(axis=1) * np.sqrt(252)
    rows.append(("annualised vol per path: 10/50/90 %", ", ".join(f"{v:.1%}" for v in np.quantile(vol_path, [0.1, 0.5, 0.9]))))
    blocks = real[: n_real * args.length].reshape(n_real, args.length) if n_real else real[None, :]
    rows.append(("real series vol over 2520-day blocks", ", ".join(f"{v:.1%}" for v in blocks.std(axis=1) * np.sqrt(252))))
    w = max(len(k) for k, _ in rows)
    print(f"\nstitching check (seed {args.seed})")
    for k, v in rows:
        print(f"  {k:<{w}}  {v}")


if __name__ == "__main__":
    main()
