"""``findiffusion sample``: generate return or price paths from a model."""

from __future__ import annotations

import argparse
import time

from findiffusion.commands.common import add_model_arg, default_sampler_help, load_model, positive_float, sampler_names


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sample", help="generate return or price paths",
                       description="Generate paths of daily log returns (one per row) from a fitted model.")
    add_model_arg(p)
    p.add_argument("--n", type=_int, default=1000, help="number of paths (default 1000)")
    p.add_argument("--length", type=_int, default=None, help="days per path, any positive integer (default: the window)")
    p.add_argument("--sampler", default=None, help=f"{sampler_names()} (default: the model's, {default_sampler_help()})")
    p.add_argument("--steps", type=_int, default=None, help="sampler steps (default: the model's for its default "
                   "sampler; otherwise 20 ode, 40 dpm and dpm-sde, 50 ddim, 200 sde, all ddpm)")
    p.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    p.add_argument("--prices", action="store_true", help="write price paths S_0..S_T instead of log returns")
    p.add_argument("--s0", type=positive_float("--s0"), default=100.0, help="starting price with --prices (default 100)")
    p.add_argument("--out", required=True, help="output file: .npy, .parquet or .csv")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from findiffusion.files import check_output_path, write_array
    from findiffusion.sampling import check_sample_args

    out = check_output_path(args.out)
    check_sample_args(args.n, args.length, args.sampler, args.steps, None)  # fail fast, before loading
    model = load_model(args)
    length = model.window if args.length is None else args.length
    check_sample_args(args.n, length, args.sampler, args.steps, model.denoiser.schedule.T)
    t0 = time.time()
    kw = {"sampler": args.sampler, "steps": args.steps, "seed": args.seed, "progress": not args.quiet}
    if args.prices:
        arr = model.sample_prices(args.n, length, s0=args.s0, **kw)
    else:
        arr = model.sample(args.n, length, **kw)
    write_array(out, arr, column_prefix="day0" if args.prices else "day")
    what = "price paths" if args.prices else "log-return paths"
    print(f"wrote {arr.shape[0]} {what} x {arr.shape[1]} columns to {out}  ({time.time() - t0:.1f} s)")
    return 0
