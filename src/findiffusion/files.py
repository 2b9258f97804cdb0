"""Atomic file writes and path-array output (npy, parquet, csv)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from findiffusion.errors import InputError

OUTPUT_SUFFIXES = (".npy", ".parquet", ".csv")


def atomic_write(path: str | Path, writer: Callable[[str], None]) -> Path:
    """Write ``path`` atomically: ``writer(tmp_path)`` then ``os.replace``.

    A crash leaves either the old file or the new one, never half a file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        writer(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give outputs the usual permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Atomically write a text file."""

    def w(tmp: str) -> None:
        Path(tmp).write_text(text)

    return atomic_write(path, w)


def save_figure(fig: Any, path: str | Path, *, dpi: int = 110, bbox_inches: str | None = None) -> Path:
    """Write a matplotlib figure as PNG atomically, then close it (frees its memory)."""
    import matplotlib.pyplot as plt

    try:
        return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi, bbox_inches=bbox_inches))
    finally:
        plt.close(fig)


def check_output_path(path: str | Path) -> Path:
    """Validate an output file name before any expensive work starts."""
    p = Path(path)
    if p.suffix.lower() not in OUTPUT_SUFFIXES:
        raise InputError(f"output {str(p)!r} must end in one of {', '.join(OUTPUT_SUFFIXES)}")
    if p.exists() and p.is_dir():
        raise InputError(f"output {str(p)!r} is a directory; give a file name")
    return p


def write_array(path: str | Path, arr: np.ndarray, column_prefix: str = "day") -> Path:
    """Write a 2-D array (one path per row) as .npy, .parquet or .csv, atomically.

    Parquet and CSV get columns ``day_1 .. day_n`` (or ``day_0`` first for prices).
    """
    p = check_output_path(path)
    arr = np.asarray(arr)
    suffix = p.suffix.lower()
    if suffix == ".npy":
        return atomic_write(p, lambda tmp: np.save(open(tmp, "wb"), arr))
    first = 0 if column_prefix == "day0" else 1
    cols = [f"day_{i}" for i in range(first, first + arr.shape[1])]
    frame = pd.DataFrame(arr, columns=cols)
    if suffix == ".parquet":
        return atomic_write(p, lambda tmp: frame.to_parquet(tmp, index=False))
    return atomic_write(p, lambda tmp: frame.to_csv(tmp, index=False, float_format="%.10g"))
