"""``findiffusion risk``: VaR and ES of a long position from generated paths."""

from __future__ import annotations

import argparse

from findiffusion.commands.common import (
    add_data_args,
    add_model_arg,
    add_sampler_args,
    float_list,
    int_list,
    load_data,
    load_model,
    output_dir,
    positive_float,
    positive_int,
    require,
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "risk", help="VaR and ES of a long position over horizons",
        description="VaR and ES (positive losses) of a long position over each horizon, from paths generated "
                    "conditionally on the days up to --as-of; writes a P&L histogram with --out.")
    add_model_arg(p)
    add_data_args(p)
    p.add_argument("--as-of", help="last day of history (default: the last day of the data); the horizon starts after it")
    p.add_argument("--level", type=float_list("--level"), default=[0.99], help="confidence level(s), e.g. 0.99 or 0.99,0.975")
    p.add_argument("--horizon", type=int_list("--horizon"), default=[1, 10], help="horizons in days (default 1,10)")
    p.add_argument("--n", type=positive_int("--n"), default=10_000, help="generated paths (default 10000)")
    p.add_argument("--position", type=positive_float("--position"), default=1e6, help="position value (default 1e6)")
    add_sampler_args(p)
    p.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    p.add_argument("--out", help="directory for risk.json and risk_pnl.png")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import pandas as pd

    from findiffusion.errors import InputError
    from findiffusion.files import atomic_write_text
    from findiffusion.risk import _check_level, risk_report
    from findiffusion.sampling import check_sample_args

    for lv in args.level:
        _check_level(lv)
    require(len(args.level) > 0, "--level needs at least one confidence level, e.g. 0.99")
    require(max(args.horizon) <= 2520, f"--horizon {max(args.horizon)} is over 10 years of days; use at most 2520")
    check_sample_args(args.n, max(args.horizon), args.sampler, None, 1)
    output_dir(args.out)
    returns, info = load_data(args)
    if args.as_of:
        require(isinstance(returns.index, pd.DatetimeIndex), "--as-of needs dated data; name it with --date-column")
        try:
            as_of = pd.Timestamp(args.as_of)
        except ValueError:
            raise InputError(f"could not parse --as-of {args.as_of!r} as a date (use YYYY-MM-DD)") from None
        returns = returns.loc[:as_of]
        require(len(returns) > 0, f"no data on or before --as-of {args.as_of} (the data starts {info.start})")
    model = load_model(args)
    check_sample_args(args.n, max(args.horizon), args.sampler, args.steps, model.denoiser.schedule.T)
    idx = returns.index[-1]
    label = str(idx.date()) if isinstance(returns.index, pd.DatetimeIndex) else f"row {len(returns)}"
    rep = risk_report(model, returns.to_numpy()[-model.context_days:], args.level, args.horizon,
                      n_paths=args.n, position=args.position, sampler=args.sampler, steps=args.steps,
                      seed=args.seed, as_of=label, progress=not args.quiet)
    print(rep.summary())
    if args.out:
        import json

        d = Path(args.out)
        atomic_write_text(d / "risk.json", json.dumps(rep.to_dict(), indent=2))
        rep.plot(d / "risk_pnl.png")
        print(f"wrote {d / 'risk.json'} and {d / 'risk_pnl.png'}")
    return 0
