"""``findiffusion forecast``: probabilistic forecast of the next days, as CSV quantiles and a fan chart."""

from __future__ import annotations

import argparse
import time

from findiffusion.commands.common import (
    add_data_args,
    add_model_arg,
    add_sampler_args,
    load_data,
    load_model,
    output_dir,
    positive_int,
    require,
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "forecast", help="probabilistic forecast: quantiles and a fan chart",
        description="Generate paths conditionally on the days up to --as-of and write the 5/25/50/75/95 %% "
                    "quantiles of daily and cumulative returns and prices per day ahead "
                    "(forecast_quantiles.csv) and a fan chart (fan_chart.png). Models with the volatility filter "
                    "(the fit default) gave the calibrated intervals in bench/forecast.py (docs/forecasting.md).")
    add_model_arg(p)
    add_data_args(p)
    p.add_argument("--as-of", help="last observed day, YYYY-MM-DD (default: the last day of the data)")
    p.add_argument("--horizon", type=positive_int("--horizon"), default=20, help="days ahead (default 20)")
    p.add_argument("--n", type=positive_int("--n"), default=2000, help="number of paths (default 2000)")
    add_sampler_args(p)
    p.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from findiffusion.forecasting import forecast
    from findiffusion.sampling import check_sample_args

    out = output_dir(args.out)
    require(args.n >= 2, f"--n must be at least 2 paths, got {args.n}")
    check_sample_args(args.n, args.horizon, args.sampler, None, 1)
    returns, info = load_data(args)
    model = load_model(args)
    check_sample_args(args.n, args.horizon, args.sampler, args.steps, model.denoiser.schedule.T)
    t0 = time.time()
    fc = forecast(model, returns, as_of=args.as_of, horizon=args.horizon, n_paths=args.n,
                  last_price=info.last_price, sampler=args.sampler, steps=args.steps, seed=args.seed,
                  progress=not args.quiet)
    files = fc.write(out)
    print(fc.summary())
    print(f"wrote {', '.join(str(f) for f in files)}  ({time.time() - t0:.1f} s)")
    return 0
