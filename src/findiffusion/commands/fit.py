"""``findiffusion fit``: train a model on a return series."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from findiffusion.commands.common import add_data_args, load_data, positive_int
from findiffusion.startstate import MOMENTS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("fit", help="train a diffusion model on daily returns",
                       description="Train a diffusion model on daily log returns and save it to --out.")
    add_data_args(p)
    p.add_argument("--out", required=True, help="model directory to write")
    p.add_argument("--seed", type=int, default=0, help="seed of every random draw (default 0)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="default: cuda when present")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --out")
    p.add_argument("--steps", type=positive_int("--steps"), help="optimisation steps (default: the tuned default)")
    p.add_argument("--window", type=positive_int("--window"), help="days per training window (default 64)")
    p.add_argument("--vol-filter", choices=["none", "garch"],
                   help="garch (default): the model learns returns standardized by a slow GARCH-type volatility "
                        "filter; none: standardized returns (weaker volatility clustering: see README)")
    p.add_argument("--vol-asym", type=float, default=None,
                   help="bound of the filter's fitted asymmetry a in [0, 1] (reaction alpha(1+a) to falls, "
                        "alpha(1-a) to rises: leverage carried across windows; default 0, symmetric)")
    p.add_argument("--vol-ito", action="store_true",
                   help="give the filter mean the Ito term, r = m - sigma^2/2 + sigma z, so a rise of the volatility "
                        "lowers the drift after it (default: a constant mean; see docs/pricing.md)")
    p.add_argument("--state-oversample", type=float, default=None, metavar="LAMBDA",
                   help="draw training windows from (1 - LAMBDA) uniform + LAMBDA in proportion to their start "
                        "variance, in [0, 1): more training on volatile starts (default 0; docs/pricing.md)")
    p.add_argument("--prediction", choices=["eps", "v"],
                   help="what the network predicts (default eps; v is exact on Gaussian markets but measured "
                        "thinner-tailed on the S&P 500: see docs/realism.md)")
    p.add_argument("--calibration-windows", type=int, default=None,
                   help="windows drawn after training to calibrate a filter model's residual scale "
                        "(default 20000; 0 = off; see README, Residual calibration)")
    p.add_argument("--calibrate-by-start", action="store_true",
                   help="the calibration also fits one factor per start state and day range of a window (eq. (7); "
                        "off by default; docs/pricing.md)")
    p.add_argument("--calibrate-start-moment", choices=MOMENTS, default=None,
                   help="with --calibrate-by-start: match the residuals' E z^2 (z2, default) or the decoded returns' "
                        "E r^2 (r2) per start state and day range (findiffusion/startstate.py)")
    p.add_argument("--config", help="JSON file with a full FitConfig (overrides the defaults)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def make_config(args: argparse.Namespace):
    import dataclasses

    from findiffusion.config import from_json
    from findiffusion.errors import InputError
    from findiffusion.training import FitConfig

    cfg = FitConfig()
    if args.config:
        try:
            cfg = from_json(FitConfig, Path(args.config).read_text())
        except FileNotFoundError:
            raise InputError(f"config file {args.config!r} does not exist") from None
        except ValueError as exc:
            raise InputError(f"config file {args.config!r} is invalid: {exc}") from None
    train = cfg.train
    if args.steps:
        train = dataclasses.replace(train, steps=args.steps)
    if args.vol_filter:
        train = dataclasses.replace(train, vol_filter=args.vol_filter)
    if args.vol_asym is not None:
        if not 0 <= args.vol_asym <= 1:
            raise InputError(f"--vol-asym must be in [0, 1] (the bound of the fitted asymmetry), got {args.vol_asym}")
        train = dataclasses.replace(train, vol_asym=args.vol_asym)
    if args.vol_ito:
        train = dataclasses.replace(train, vol_ito=True)
    if args.state_oversample is not None:
        try:
            train = dataclasses.replace(train, state_oversample=args.state_oversample)
        except InputError as exc:
            raise InputError(f"--state-oversample: {exc}") from None
    if args.prediction:
        train = dataclasses.replace(train, prediction=args.prediction)
    if args.window:
        train = dataclasses.replace(train, window=args.window)
        cfg = dataclasses.replace(cfg, stitch_context=min(cfg.stitch_context, max(1, args.window // 2)))
    if args.calibration_windows is not None:
        if args.calibration_windows < 0:
            raise InputError(f"--calibration-windows must be 0 (off) or a positive number, got {args.calibration_windows}")
        cfg = dataclasses.replace(cfg, calibration_windows=args.calibration_windows)
    if args.calibrate_by_start:
        cfg = dataclasses.replace(cfg, calibrate_by_start=True)
    if args.calibrate_start_moment is not None:
        if not cfg.calibrate_by_start:
            raise InputError("--calibrate-start-moment is what --calibrate-by-start matches: add --calibrate-by-start")
        cfg = dataclasses.replace(cfg, calibrate_start_moment=args.calibrate_start_moment)
    return dataclasses.replace(cfg, train=train, seed=args.seed)


def run(args: argparse.Namespace) -> int:
    from findiffusion.training import fit

    t0 = time.time()
    cfg = make_config(args)
    returns, info = load_data(args)
    model = fit(returns, cfg, out_dir=args.out, resume=args.resume, device=args.device,
                progress=not args.quiet, data_info=info)
    loss = model.history["losses_every_50"][-1]
    print(f"model saved to {args.out}  ({info.n_returns} returns of {info.source}, {info.start} .. {info.end})")
    f, cal = model.vol_filter, ""
    if f.active:
        cal = f"  filter reaction alpha {f.alpha:.4f}" + ("" if f.alpha_max is None else f" (fitted, bound {f.alpha_max:g})")
        cal += f"  asymmetry {f.asym:+.3f}" if f.asym or f.asym_max else ""
        cal += f"  mean {f.mean:.3g} - {f.var_drift:g} sigma^2 (Ito term)" if f.var_drift else ""
    if model.calibrated_for:
        cal += f"  residual scale {model.residual_scale:.4f} ({model.calibrated_for[0]} {model.calibrated_for[1]})"
        if model.state_factors:
            cal += "  state factors " + " / ".join(f"{v:.3f}" for v in model.state_factors)
        if model.start_factors:
            cal += "  start factors " + " ; ".join(" / ".join(f"{v:.3f}" for v in row) for row in model.start_factors)
    print(f"final loss {loss:.4f}  wall time {time.time() - t0:.1f} s  device {model.history['device']}{cal}")
    return 0
