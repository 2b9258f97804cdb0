"""Is conditional generation calibrated next to its context?

Stitched long paths, risk forecasts, backtests and probabilistic forecasts all
ask the model for the days that follow ``stitch_context`` observed days. This
bench draws ``--contexts`` random stretches of the training part (first 80 %)
of a series, generates ``--n`` continuations of ``window - stitch_context`` days
for each, and compares the generated days with the real days that followed,
by position after the context:

* rms and mean |r| of generated days / the same of the real continuations
  (all their days pooled, which is less noisy than day by day), for the first day, days 2-4, 5-16 and 17 onwards (1.0 = calibrated; a value
  that falls with position is the chunk-boundary mark that stitching leaves);
* the share of days beyond 6 real daily sd (tail calibration);
* corr(context volatility, continuation volatility) over contexts, synthetic
  (mean over its continuations) and real: how strongly the regime carries over.

Run:  python bench/conditional.py --model models/spx-2014 [--model OTHER ...] [--contexts 300] [--n 10]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import findiffusion as fd

WARMUP = 300  # days before the first context start: room for a volatility filter's history

BUCKETS = ((0, 1), (1, 4), (4, 16), (16, None))


def bucket_name(a: int, b: int | None) -> str:
    return f"day {a + 1}" if b == a + 1 else f"days {a + 1}-{b}" if b else f"days {a + 1}+"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", required=True, help="model directory (repeat to compare)")
    ap.add_argument("--data", default="sp500")
    ap.add_argument("--contexts", type=int, default=300)
    ap.add_argument("--n", type=int, default=10, help="continuations per context")
    ap.add_argument("--sampler", default="ode")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    r, _ = fd.load_series(args.data)
    x = r.to_numpy()
    train = x[: int(round(0.8 * len(x)))]
    sd = train.std()
    rows: dict[str, list[str]] = {}
    for d in args.model:
        m = fd.load(d)
        L, C, H = m.window, m.config.stitch_context, m.context_days
        # the same starts for every model: each context ends at s + C, with H <= WARMUP days of history
        if H - C > WARMUP:
            raise SystemExit(f"{d}: needs {H} days of context, more than this bench's {WARMUP + C}")
        starts = np.random.default_rng(args.seed).integers(WARMUP, len(train) - L, args.contexts)
        ctx = np.stack([train[s + C - H:s + C] for s in starts])  # (M, H)
        nxt = np.stack([train[s + C:s + L] for s in starts]) / sd  # (M, L - C)
        t0 = time.time()
        g = m.sample(args.n, L - C, sampler=args.sampler, steps=args.steps, seed=args.seed + 1,
                     context=ctx) / sd  # (M, N, L - C)
        dt = time.time() - t0
        col = []
        for a, b in BUCKETS:
            gb = g[:, :, a:b]  # (M, N, days in bucket)
            col.append(f"{np.sqrt((gb ** 2).mean() / (nxt ** 2).mean()):.3f} / {np.abs(gb).mean() / np.abs(nxt).mean():.3f}")
        col.append(f"{np.mean(np.abs(g[:, :, :4]) > 6):.4f} / {np.mean(np.abs(g[:, :, 4:]) > 6):.4f}")
        cv = np.abs(ctx[:, -10:]).mean(1)
        col.append(f"{np.corrcoef(cv, np.abs(g).mean(axis=(1, 2)))[0, 1]:.3f}")
        col.append(f"{dt:.0f} s")
        rows[d] = col
    labels = [f"rms / mean abs r vs real, {bucket_name(a, b)}" for a, b in BUCKETS]
    labels += ["share of abs r > 6 sd, days 1-4 / days 5+", "corr(context vol, continuation vol)", "sampling time"]
    real = ["1 / 1"] * len(BUCKETS)
    real += [f"{np.mean(np.abs(train / sd) > 6):.4f} (whole training part)",
             f"{np.corrcoef(np.abs(ctx[:, -10:]).mean(1), np.abs(nxt).mean(1))[0, 1]:.3f}", "-"]
    print(f"\nconditional calibration: {args.contexts} contexts x {args.n} continuations, {args.data} "
          f"training part, sampler {args.sampler}, seed {args.seed}")
    names = list(rows)
    print("| metric | real | " + " | ".join(names) + " |")
    print("|---|---|" + "---|" * len(names))
    for i, lab in enumerate(labels):
        print(f"| {lab} | {real[i]} | " + " | ".join(rows[n][i] for n in names) + " |")


if __name__ == "__main__":
    main()
