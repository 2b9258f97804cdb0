"""``findiffusion anomalies``: an anomaly score for every day, as CSV and a plot of the top days."""

from __future__ import annotations

import argparse
import time

from findiffusion.commands.common import (
    add_data_args,
    add_model_arg,
    load_data,
    load_model,
    output_dir,
    positive_int,
    require,
)

METHODS = ("impute", "impute+block", "denoise", "denoise+block", "causal")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "anomalies", help="score every day for anomalies",
        description="Score every day by the model's denoising loss on it and on the 5-day blocks that hold it, "
                    "masked from the days on both sides (a bound on how improbable they are given their "
                    "surroundings), or by how far it falls into the tail of its imputations (--method impute); "
                    "write anomaly_scores.csv and anomalies.png.")
    add_model_arg(p)
    add_data_args(p, default=None)
    p.add_argument("--top", type=positive_int("--top"), default=20, help="days to mark and list (default 20)")
    p.add_argument("--method", default="denoise+block", choices=METHODS,
                   help="denoise+block (default: the model's loss on each day and on every 5-day block masked "
                        "from its context; best on the benchmark's shocks, bursts and broken dependence), "
                        "denoise (single days only), impute (the day against its imputations from both sides), "
                        "impute+block or causal (against forecasts from the past)")
    p.add_argument("--samples", type=positive_int("--samples"), default=32,
                   help="imputations per day for the impute and causal methods (default 32)")
    p.add_argument("--steps", type=positive_int("--steps"), default=10, help="DDIM steps per imputation, impute and causal methods (default 10)")
    p.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from findiffusion.anomaly import score_anomalies

    out = output_dir(args.out)
    require(args.samples >= 2, f"--samples must be at least 2, got {args.samples}")
    returns, _ = load_data(args)
    model = load_model(args)
    require(len(returns) >= model.window,
            f"the series has {len(returns)} returns; scoring needs at least the model window ({model.window})")
    require(model.denoiser.schedule.T >= args.steps, f"--steps must be at most {model.denoiser.schedule.T}")
    t0 = time.time()
    kw = {"seed": args.seed, "progress": not args.quiet}
    if not args.method.startswith("denoise"):
        kw |= {"n_samples": args.samples, "steps": args.steps}
    scores = score_anomalies(model, returns, args.method, **kw)
    files = scores.write(out, top=args.top)
    print(scores.summary(min(args.top, len(returns))))
    print(f"wrote {', '.join(str(f) for f in files)}  ({time.time() - t0:.1f} s)")
    return 0
