"""``findiffusion report``: the stylized-facts realism report of a model vs real data and baselines."""

from __future__ import annotations

import argparse
import time

from findiffusion.commands.common import (
    add_data_args,
    add_model_arg,
    default_sampler_help,
    int_list,
    load_data,
    load_model,
    output_dir,
    positive_int,
    sampler_names,
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report", help="realism report: stylized facts of generated vs real returns and baselines",
        description="Compare a model's generated windows with the real windows of its training period and with "
                    "two baselines fitted on the same returns (GARCH(1,1)-t, stationary block bootstrap). "
                    "Writes report.html (self-contained), report.md and the PNGs to --out.")
    add_model_arg(p)
    add_data_args(p)
    p.add_argument("--out", required=True, help="report directory to write")
    p.add_argument("--n", type=positive_int("--n"), default=2000, help="generated windows per generator (default 2000)")
    p.add_argument("--length", type=positive_int("--length"), default=64, help="days per window, > 20 (default 64)")
    p.add_argument("--seed", type=int, default=0, help="seed of the generated windows (default 0)")
    p.add_argument("--sampler", default=None, help=f"{sampler_names()} (default: the model's, {default_sampler_help()})")
    p.add_argument("--steps", type=positive_int("--steps"), default=None, help="sampler steps (default: its default)")
    p.add_argument("--train-end", help="last day of the training part, YYYY-MM-DD (default: the model's training range)")
    p.add_argument("--gjr", action="store_true", help="add a GJR-GARCH skew-t baseline")
    p.add_argument("--no-baselines", action="store_true", help="score the model only")
    p.add_argument("--disc-seeds", type=int_list("--disc-seeds"), default=[1, 2, 3],
                   help="classifier seeds of the discriminative score (default 1,2,3)")
    p.add_argument("--no-disc", action="store_true", help="skip the discriminative score (the slow part)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from findiffusion.commands.common import require
    from findiffusion.report import build_report
    from findiffusion.sampling import check_sample_args

    require(args.length > 20, f"--length must be more than 20 days (the ACF uses lags 1-20), got {args.length}")
    require(args.n >= 20, f"--n must be at least 20 windows, got {args.n}")
    out = output_dir(args.out)
    check_sample_args(args.n, args.length, args.sampler, None, None)
    t0 = time.time()
    returns, _ = load_data(args)
    model = load_model(args)
    check_sample_args(args.n, args.length, args.sampler, args.steps, model.denoiser.schedule.T)
    rep = build_report(model, returns, n=args.n, length=args.length, seed=args.seed, sampler=args.sampler,
                       steps=args.steps, train_end=args.train_end, baselines=not args.no_baselines, gjr=args.gjr,
                       disc_seeds=() if args.no_disc else tuple(args.disc_seeds), progress=not args.quiet)
    files = rep.write(out)
    print(rep.summary())
    print(f"wrote {files['html']}, {files['md']} and {len(files) - 2} PNGs  ({time.time() - t0:.1f} s)")
    return 0
