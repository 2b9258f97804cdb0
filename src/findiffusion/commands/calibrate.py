"""``findiffusion calibrate``: re-estimate a filter model's residual calibration (k, g, k_s; options c, a_g, map, a_s)
in place."""

from __future__ import annotations

import argparse
import time

from findiffusion.commands.common import (
    add_data_args,
    add_model_arg,
    add_sampler_args,
    load_data,
    load_model,
    positive_int,
    require,
)
from findiffusion.startstate import MOMENTS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "calibrate", help="re-estimate a model's residual calibration with more windows or another sampler",
        description="Re-estimate the residual scale k and the volatility-state factors g of a model with a volatility "
                    "filter (README, Residual calibration) from fresh unconditional windows, and save the model in "
                    "place (atomically; the network is unchanged). More windows, less sampling error: with 4000 "
                    "(the fit default until 2026-12-04) the error moved out-of-the-money option prices by 1-3 %.")
    add_model_arg(p)
    p.add_argument("--windows", type=positive_int("--windows"), default=20000,
                   help="unconditional windows to estimate k and g on (default 20000)")
    p.add_argument("--seed", type=int, default=None, help="seed of the windows (default: the fit's seed)")
    add_sampler_args(p)
    p.add_argument("--by-position", action="store_true",
                   help="one set of g for a window's first stitch_context days and one for the rest and for stitched "
                        "chunks (the network's width error can differ between them; see docs/pricing.md)")
    p.add_argument("--by-start", action="store_true",
                   help="then one factor per start-state group and day range of a window (eq. (7), docs/pricing.md): "
                        "short-dated option prices see a window's first days, where the network's width error depends "
                        "on the start state; models fitted before 2026-12-05 need --data with their training series")
    p.add_argument("--start-moment", choices=MOMENTS, default="z2",
                   help="with --by-start: what the factors match in every start group and day range, the residuals' "
                        "E z^2 (z2, default) or the decoded returns' E r^2 (r2: the filter carries a wider day into "
                        "the later days' variance, so matching z^2 can leave the returns' width wrong after volatile "
                        "starts; docs/pricing.md); r2 needs --data unless the model holds r2 targets")
    p.add_argument("--by-correlation", action="store_true",
                   help="then recolour a window's days so that their shocks sigma_t z_t correlate as the training "
                        "windows' do (eq. (8), docs/pricing.md): the network misses the small co-movement of the days "
                        "that sets the width of multi-day sums; needs --data with the training series")
    p.add_argument("--by-leverage", action="store_true",
                   help="then decode the first window of unconditional paths with the filter asymmetry that gives "
                        "window sums the training windows' leverage, the part of their skewness from an earlier fall "
                        "with a later square (eq. (9), docs/pricing.md); needs --data with the training series")
    p.add_argument("--by-stitch", action="store_true",
                   help="then start the stitched days of unconditional paths from the view of a filter whose asymmetry "
                        "gives the pairs of days across the stitch the training leverage, and scale them to the "
                        "training variance (eq. (10), docs/pricing.md): paths longer than the window; needs --data")
    add_data_args(p, default=None, required=False,
                  data_help="with --by-start: the training series to take the targets from (the fit's --data, --start, "
                            "--end...; default: the targets stored with the model); with --by-correlation or "
                            "--by-leverage or --by-stitch: required")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def _describe(model) -> str:
    if model.calibrated_for is None:
        return "not calibrated"
    g = "" if model.state_factors is None else "  g " + " / ".join(f"{v:.3f}" for v in model.state_factors)
    if model.state_factors_late is not None:
        g += "  g_late " + " / ".join(f"{v:.3f}" for v in model.state_factors_late)
    if model.start_factors is not None:
        g += f"  c ({model.start_targets.moment}) " + " ; ".join(" / ".join(f"{v:.3f}" for v in row)
                                                                for row in model.start_factors)
    if model.shock_map is not None:
        g += f"  shock map (eq. (8); diagonal {model.shock_map.diagonal().min():.3f}-{model.shock_map.diagonal().max():.3f})"
    if model.leverage_asym is not None:
        g += f"  a_g {model.leverage_asym:.3f} (eq. (9); the filter's a {model.vol_filter.asym:.3f})"
    if model.stitch_asym is not None:
        g += f"  a_s {model.stitch_asym:.3f} k_s {model.stitch_scale:.4f} (eq. (10))"
    return (f"k {model.residual_scale:.4f}{g}  ({model.calibrated_for[0]} {model.calibrated_for[1]}, "
            f"{model.calibration_windows} windows)")


def run(args: argparse.Namespace) -> int:
    from findiffusion.sampling import check_sample_args

    model = load_model(args)
    require(model.vol_filter.active and model.vol_filter.reaction is not None,
            f"the model in {args.model!r} has no volatility filter, so there is nothing to calibrate "
            "(its residual scale stays 1)")
    require(args.data is None or args.by_start or args.by_correlation or args.by_leverage or args.by_stitch,
            "--data is only read with --by-start, --by-correlation, --by-leverage or --by-stitch (the targets of eqs. "
            "(7)-(10)); drop it, or add one of them")
    for flag, on in (("--by-correlation", args.by_correlation), ("--by-leverage", args.by_leverage),
                     ("--by-stitch", args.by_stitch)):
        require(not on or args.data is not None, f"{flag} needs the training series the model was fitted on: add "
                "--data (and the fit's --start/--end/--column)")
    require(not args.by_start or args.data is not None or model.start_targets is not None,
            f"the model in {args.model!r} holds no start-state targets (fitted before they were stored): pass its "
            "training series with --data (and the fit's --start/--end/--column)")
    require(args.start_moment == "z2" or args.by_start, "--start-moment is what --by-start matches: add --by-start")
    held = None if model.start_targets is None else model.start_targets.moment
    require(not args.by_start or args.data is not None or held == args.start_moment,
            f"the model in {args.model!r} holds start-state targets of {held}, not {args.start_moment}: pass its "
            "training series with --data (and the fit's --start/--end/--column)")
    returns = load_data(args)[0].to_numpy() if args.data is not None else None
    before = _describe(model)
    sampler, steps = model.resolve_sampler(args.sampler, args.steps)
    check_sample_args(1, model.window, sampler, steps, model.denoiser.schedule.T)  # a known sampler, valid steps
    seed = model.config.seed if args.seed is None else args.seed
    t0 = time.time()
    model.calibrate(args.windows, seed=seed, sampler=sampler, steps=steps, progress=not args.quiet,
                    by_position=args.by_position, by_start=args.by_start, returns=returns,
                    by_correlation=args.by_correlation, by_leverage=args.by_leverage, by_stitch=args.by_stitch,
                    start_moment=args.start_moment)
    model.save(args.model)
    print(f"before: {before}\nafter:  {_describe(model)}\nsaved {args.model}  ({time.time() - t0:.1f} s)")
    return 0
