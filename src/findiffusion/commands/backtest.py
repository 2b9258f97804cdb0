"""``findiffusion backtest``: rolling one-day VaR/ES of the model, HS and GARCH-t, with coverage and ES tests."""

from __future__ import annotations

import argparse

from findiffusion.commands.common import (
    add_model_arg,
    add_sampler_args,
    float_list,
    load_model,
    output_dir,
    positive_int,
    require,
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "backtest", help="backtest one-day VaR/ES against HS and GARCH-t",
        description="Rolling one-day-ahead VaR/ES for every day from --start on, from the model (trained only on "
                    "data before --start), historical simulation and GARCH(1,1)-t, with Kupiec, Christoffersen and "
                    "Acerbi-Szekely tests.")
    add_model_arg(p)
    g = p.add_argument_group("data")
    g.add_argument("--data", default="sp500", help="'sp500' (default), 'nasdaq', 'wti', or a CSV/Parquet file")
    g.add_argument("--column", help="value column (detected when the file has one numeric column)")
    g.add_argument("--date-column", help="date column (detected by name or content)")
    g.add_argument("--returns", action="store_true", help="the column holds log returns, not prices")
    p.add_argument("--start", required=True, help="first out-of-sample day, YYYY-MM-DD")
    p.add_argument("--end", help="last out-of-sample day (default: the end of the data)")
    p.add_argument("--level", type=float_list("--level"), default=[0.99, 0.975], help="levels (default 0.99,0.975)")
    p.add_argument("--n", type=positive_int("--n"), default=500, help="generated next-day returns per day (default 500)")
    add_sampler_args(p)
    p.add_argument("--estimator", default="pooled", choices=["pooled", "empirical"],
                   help="model VaR/ES location-scale pooled over days (default; see docs/risk.md) or "
                        "from each day's samples alone (empirical)")
    p.add_argument("--hs-window", type=positive_int("--hs-window"), default=250, help="HS window (default 250)")
    p.add_argument("--garch-refit", type=positive_int("--garch-refit"), default=1,
                   help="refit GARCH-t every this many days (default 1)")
    p.add_argument("--sims", type=positive_int("--sims"), default=2000, help="simulations for the ES-test p-value")
    p.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    p.add_argument("--out", help="directory for backtest.csv, backtest.json and plots")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:

    from findiffusion.backtest import backtest, check_out_of_sample, split_index
    from findiffusion.data import load_series
    from findiffusion.risk import _check_level
    from findiffusion.sampling import check_sample_args

    require(len(args.level) > 0, "--level needs at least one confidence level, e.g. 0.99,0.975")
    for lv in args.level:
        _check_level(lv)
    check_sample_args(args.n, 1, args.sampler, None, 1)
    output_dir(args.out)
    returns, _ = load_series(args.data, column=args.column, date_column=args.date_column, returns=args.returns)
    r, i0 = split_index(returns, args.start, args.end)
    require(i0 >= args.hs_window, f"--start leaves {i0} days of history; HS needs {args.hs_window} (and GARCH 250)")
    model = load_model(args)
    check_out_of_sample(model, r.index[i0])
    check_sample_args(args.n, 1, args.sampler, args.steps, model.denoiser.schedule.T)
    res = backtest(returns, args.start, args.end, args.level, model=model, n_paths=args.n, sampler=args.sampler,
                   steps=args.steps, estimator=args.estimator, hs_window=args.hs_window,
                   garch_refit=args.garch_refit, n_sims=args.sims, seed=args.seed, progress=not args.quiet)
    print(res.summary())
    if args.out:
        files = res.save(args.out)
        print("wrote " + ", ".join(str(f) for f in files))
    return 0
