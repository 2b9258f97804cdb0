"""``findiffusion calibrate``: re-estimate a filter model's residual calibration (k and g) in place."""

from __future__ import annotations

import argparse
import time

from findiffusion.commands.common import add_model_arg, add_sampler_args, load_model, positive_int, require


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
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def _describe(model) -> str:
    if model.calibrated_for is None:
        return "not calibrated"
    g = "" if model.state_factors is None else "  g " + " / ".join(f"{v:.3f}" for v in model.state_factors)
    if model.state_factors_late is not None:
        g += "  g_late " + " / ".join(f"{v:.3f}" for v in model.state_factors_late)
    return (f"k {model.residual_scale:.4f}{g}  ({model.calibrated_for[0]} {model.calibrated_for[1]}, "
            f"{model.calibration_windows} windows)")


def run(args: argparse.Namespace) -> int:
    from findiffusion.sampling import check_sample_args

    model = load_model(args)
    require(model.vol_filter.active and model.vol_filter.reaction is not None,
            f"the model in {args.model!r} has no volatility filter, so there is nothing to calibrate "
            "(its residual scale stays 1)")
    before = _describe(model)
    sampler, steps = model.resolve_sampler(args.sampler, args.steps)
    check_sample_args(1, model.window, sampler, steps, model.denoiser.schedule.T)  # a known sampler, valid steps
    seed = model.config.seed if args.seed is None else args.seed
    t0 = time.time()
    model.calibrate(args.windows, seed=seed, sampler=sampler, steps=steps, progress=not args.quiet,
                    by_position=args.by_position)
    model.save(args.model)
    print(f"before: {before}\nafter:  {_describe(model)}\nsaved {args.model}  ({time.time() - t0:.1f} s)")
    return 0
