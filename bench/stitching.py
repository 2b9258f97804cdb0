"""Does stitching long paths leave a mark at chunk boundaries?

Samples paths of 2520 days (10 years) from a model. A path is built from a
first window of L days and then chunks of L - C new days, each conditioned
on the C days before it (the boundaries come from the model's own chunk plan).
If stitching works, nothing is special about the
days next to a boundary:

* volatility: the cross-path sd of returns on the last day before and the
  first day after each boundary equals that of all other days;
* clustering: corr(|r_t|, |r_{t+1}|) over pairs that straddle a boundary
  equals that over pairs inside a chunk, and the ACF of |r| at lags 1..20
  computed on the long paths matches that of the real series.

Each ratio comes with a 90 % bootstrap interval over paths. The extreme-day rows
(days below -10 %, paths with a day below -15 %, worst day) are also given for
GARCH(1,1)-t fitted on the same returns and simulated at the same size and seed,
the generator most users would otherwise reach for.

Run:  python bench/stitching.py [--model DIR] [--n 200] [--length 2520] [--seed 0]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import findiffusion as fd
from findiffusion.stitching import chunk_plan


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
    ap.add_argument("--sampler", default=None, help="default: the model's own (model.default_sampler)")
    ap.add_argument("--steps", type=int, default=None)
    args = ap.parse_args()
    r, info = fd.load_series("sp500")
    model = fd.load(args.model) if args.model else fd.fit(r, progress=True)
    L, C = model.window, model.config.stitch_context
    t0 = time.time()
    x = model.sample(args.n, args.length, sampler=args.sampler, steps=args.steps, seed=args.seed, progress=True)
    dt = time.time() - t0
    # boundary b = index of the first day of a new chunk, from the model's own chunk plan
    bounds = np.cumsum([new for _, new in chunk_plan(model.window, model.config.stitch_context, args.length, False)])[:-1]
    inside = np.setdiff1d(np.arange(1, args.length), bounds)
    absx = np.abs(x)
    def boundary_stats(idx: np.ndarray) -> np.ndarray:
        """(sd first day after / others, sd last day before / others, corr across, corr inside) on paths idx."""
        sd = x[idx].std(axis=0)  # cross-path sd per day, (T,)
        a = absx[idx]
        return np.array([sd[bounds].mean() / sd[inside].mean(), sd[bounds - 1].mean() / sd[inside].mean(),
                         pair_corr(a[:, bounds - 1], a[:, bounds]), pair_corr(a[:, inside - 1], a[:, inside])])

    # 90 % intervals by resampling whole paths (days within a path are dependent)
    rng = np.random.default_rng(args.seed)
    est = boundary_stats(np.arange(args.n))
    boot = np.array([boundary_stats(rng.integers(0, args.n, args.n)) for _ in range(200)])
    lo, hi = np.quantile(boot, [0.05, 0.95], axis=0)
    ci = [f"{e:.3f}  (90 % CI {a:.3f}-{b:.3f})" for e, a, b in zip(est, lo, hi, strict=True)]
    rows = [
        ("days", f"{args.n} paths x {args.length} days, {len(bounds)} boundaries, window {L}, context {C}"),
        ("sampling time", f"{dt:.0f} s ({args.sampler or 'model default'})"),
        ("sd, first day after boundary / other days", ci[0]),
        ("sd, last day before boundary / other days", ci[1]),
        ("corr(|r_t|,|r_t+1|) across boundary", ci[2]),
        ("corr(|r_t|,|r_t+1|) inside chunks", ci[3]),
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
    # extreme days: the model vs GARCH(1,1)-t on the same returns, same size and seed, and the real series
    from findiffusion.baselines import fit_garch

    g = fit_garch(real).sample(args.n, args.length, seed=args.seed)
    rows.append(("days below -10 % per 10 000: model / GARCH-t / real",
                 f"{1e4 * (x < -0.10).mean():.1f} / {1e4 * (g < -0.10).mean():.1f} / {1e4 * (real < -0.10).mean():.1f}"))
    rows.append(("paths with a day below -15 %: model / GARCH-t",
                 f"{int((x.min(axis=1) < -0.15).sum())} / {int((g.min(axis=1) < -0.15).sum())} of {args.n}"))
    rows.append(("worst / best day: model; GARCH-t; real",
                 f"{x.min():.1%} / {x.max():.1%}; {g.min():.1%} / {g.max():.1%}; {real.min():.1%} / {real.max():.1%}"))
    rows.append(("GARCH-t: ACF |r| lags 1,5,10,20", ", ".join(f"{acf_abs(g)[k - 1]:.3f}" for k in (1, 5, 10, 20))))
    w = max(len(k) for k, _ in rows)
    print(f"\nstitching check (seed {args.seed})")
    for k, v in rows:
        print(f"  {k:<{w}}  {v}")


if __name__ == "__main__":
    main()
