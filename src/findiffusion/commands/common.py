"""Argument groups and validators shared by subcommands."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from findiffusion.errors import InputError


def positive_int(name: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a positive integer, got {text!r}") from None
        if v <= 0:
            raise argparse.ArgumentTypeError(f"{name} must be a positive integer, got {v}")
        return v

    return parse


def positive_float(name: str) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a positive number, got {text!r}") from None
        if not v > 0 or v == float("inf"):
            raise argparse.ArgumentTypeError(f"{name} must be a positive number, got {text}")
        return v

    return parse


def float_list(name: str) -> Callable[[str], list[float]]:
    def parse(text: str) -> list[float]:
        try:
            return [float(x) for x in text.split(",") if x.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be comma-separated numbers, got {text!r}") from None

    return parse


def int_list(name: str) -> Callable[[str], list[int]]:
    def parse(text: str) -> list[int]:
        try:
            vals = [int(x) for x in text.split(",") if x.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be comma-separated integers, got {text!r}") from None
        if not vals or min(vals) <= 0:
            raise argparse.ArgumentTypeError(f"{name} must be positive integers, got {text!r}")
        return vals

    return parse


def add_data_args(p: argparse.ArgumentParser, default: str | None = "sp500", required: bool | None = None,
                  data_help: str | None = None) -> None:
    """--data/--column/--date-column/--returns/--start/--end (``--data`` required when ``required``, by default when
    it has no default)."""
    g = p.add_argument_group("data")
    g.add_argument("--data", default=default, required=default is None if required is None else required,
                   help=data_help or "'sp500' (embedded S&P 500, default), 'nasdaq', 'wti', or a CSV/Parquet file")
    g.add_argument("--column", help="value column (detected when the file has one numeric column)")
    g.add_argument("--date-column", help="date column (detected by name or content)")
    g.add_argument("--returns", action="store_true", help="the column holds log returns, not prices")
    g.add_argument("--start", help="first date to use, YYYY-MM-DD")
    g.add_argument("--end", help="last date to use, YYYY-MM-DD")


def load_data(args: argparse.Namespace):
    """Load the series named by :func:`add_data_args` options: (returns, info)."""
    from findiffusion.data import load_series

    return load_series(args.data, column=args.column, date_column=args.date_column, returns=args.returns,
                       start=args.start, end=args.end)


def add_model_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="model directory written by 'findiffusion fit'")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="where to run (default: auto)")


def sampler_names() -> str:
    """The sampler names for help texts: "ddpm, ddim, ..., dpm or dpm-sde"."""
    from findiffusion.sampling import SAMPLERS

    return ", ".join(SAMPLERS[:-1]) + " or " + SAMPLERS[-1]


def add_sampler_args(p: argparse.ArgumentParser) -> None:
    """``--sampler`` and ``--steps`` of the conditional commands (risk, backtest, forecast): the model's default."""
    p.add_argument("--sampler", default=None, help=f"{sampler_names()} (default: the model's, {default_sampler_help()})")
    p.add_argument("--steps", type=positive_int("--steps"), default=None,
                   help="sampler steps (default: the model's for its default sampler, else the sampler's own)")


def default_sampler_help() -> str:
    """The model's default sampler in words, from :attr:`DiffusionModel.default_sampler`'s constants."""
    from findiffusion.model import DEFAULT_SAMPLER, DEFAULT_STEPS, FILTER_SAMPLER

    return (f"{FILTER_SAMPLER[0]} {FILTER_SAMPLER[1]} steps with a volatility filter, "
            f"{DEFAULT_SAMPLER} {DEFAULT_STEPS[DEFAULT_SAMPLER]} without")


def load_model(args: argparse.Namespace):
    from findiffusion.modelfile import load
    from findiffusion.training import resolve_device

    return load(args.model, device=str(resolve_device(args.device)))


def output_dir(value: str | None) -> Path | None:
    """``--out`` as a directory path (``None`` stays ``None``); an error when it names a file."""
    if value is None:
        return None
    require(not Path(value).is_file(), f"--out {value!r} is a file; give a directory")
    return Path(value)


def require(cond: bool, message: str) -> None:
    """Raise :class:`InputError` with ``message`` unless ``cond``."""
    if not cond:
        raise InputError(message)
