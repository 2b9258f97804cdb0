"""The ``findiffusion`` command line.

Each subcommand lives in :mod:`findiffusion.commands` as a module with
``register(subparsers)`` (adds its parser) and ``run(args) -> int``. Bad input
of any kind ends in one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from findiffusion.errors import InputError

#: subcommand modules, in the order ``--help`` lists them
COMMANDS = ("fit", "calibrate", "sample", "demo", "report", "risk", "backtest", "price", "hedge", "forecast", "anomalies")


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors in one line (exit 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: error: {message} (see '{self.prog} --help')\n")
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    from findiffusion import __version__

    parser = _Parser(
        prog="findiffusion",
        description="Denoising diffusion models of daily financial returns: fit, sample, and put them to work.",
    )
    parser.add_argument("--version", action="version", version=f"findiffusion {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        try:
            mod = importlib.import_module(f"findiffusion.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"findiffusion.commands.{name}":
                continue  # not built yet
            raise
        mod.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors (already printed)
        return int(exc.code or 0)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        return int(args.run(args) or 0)
    except InputError as exc:
        sys.stderr.write(f"findiffusion {args.command}: error: {exc}\n")
        return 2
    except (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError) as exc:
        sys.stderr.write(f"findiffusion {args.command}: error: {exc.strerror or exc}: {exc.filename}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write(f"findiffusion {args.command}: interrupted; written files are complete (atomic writes)\n")
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
