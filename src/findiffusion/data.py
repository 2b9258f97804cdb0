r"""Loading price/return series, windowing, and invertible return transforms.

The model never sees raw returns. A causal :class:`~findiffusion.volatility.VolatilityFilter`
(eq. 3, on by default; ``TrainConfig.vol_filter = "none"`` turns it off) divides each return by a slow GARCH-type volatility
estimate from the days before it, and a :class:`ReturnTransform` maps those
residuals z (z = r without the filter) to approximately Gaussian,
unit-variance values u and back:

* ``"standard"`` (default): u = (z - m) / s.
* ``"lambertw"``: the heavy-tail Lambert W x Gaussian transform of
  Goerg (2015). With z = (x - m)/s (x the filter's residual, or the return
  without a filter) the generative direction is

  (1)  z = u \exp(\tfrac{\delta}{2} u^2),   \delta \ge 0,

  and the Gaussianizing inverse is

  (2)  u = \operatorname{sign}(z)\sqrt{W_0(\delta z^2)/\delta}.

  (m, s, \delta) are maximum-likelihood estimates with u ~ N(0, 1); then u
  is re-standardised to mean 0 and variance 1. 1/\delta is the tail index.
  Beyond the largest |u| of the data, (1) is continued along its tangent. Because (1) is unbounded,
  generated paths can reach returns beyond the largest one in the data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy import optimize, special, stats

from findiffusion.errors import InputError

#: Data sets shipped inside the ``arch`` package: name -> (module, column).
EMBEDDED: dict[str, tuple[str, str]] = {
    "sp500": ("arch.data.sp500", "Adj Close"),
    "nasdaq": ("arch.data.nasdaq", "Adj Close"),
    "wti": ("arch.data.wti", "DCOILWTICO"),
}

_DATE_NAMES = ("date", "datetime", "time", "timestamp", "day")


@dataclass
class SeriesInfo:
    """Description of the data a model was fitted on (saved with the model)."""

    source: str
    column: str
    n_returns: int
    start: str | None
    end: str | None
    last_price: float | None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


# ---------------------------------------------------------------------------
# loading
# ---------------------------------------------------------------------------
def load_embedded(name: str) -> pd.Series:
    """Return the price series of an embedded data set (see :data:`EMBEDDED`)."""
    import importlib

    if name not in EMBEDDED:
        raise InputError(f"unknown embedded data set {name!r}; use one of {sorted(EMBEDDED)} or a CSV/Parquet path")
    module, column = EMBEDDED[name]
    frame = importlib.import_module(module).load()
    s = frame[column].dropna().astype(float)
    s.name = column
    return s


def _read_table(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise InputError(f"data file {str(path)!r} does not exist; give a CSV or Parquet path, or an embedded data set ({', '.join(EMBEDDED)})")
    if path.is_dir():
        raise InputError(f"{str(path)!r} is a directory; give a CSV or Parquet file")
    if path.stat().st_size == 0:
        raise InputError(f"data file {str(path)!r} is empty; it needs a header row and one row per day")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv" or suffix == ".txt":
            frame = pd.read_csv(path)
        elif suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
        else:
            raise InputError(f"{str(path)!r} is not a CSV or Parquet file; use a .csv or .parquet extension")
    except InputError:
        raise
    except Exception as exc:  # parser errors of many kinds
        raise InputError(f"could not read {str(path)!r} as {suffix[1:]}: {str(exc).splitlines()[0]}") from None
    if frame.shape[0] == 0 or frame.shape[1] == 0:
        raise InputError(f"data file {str(path)!r} has no rows; it needs one row per day")
    return frame


def _find_date_column(frame: pd.DataFrame, date_column: str | None) -> str | None:
    if date_column is not None:
        if date_column not in frame.columns:
            raise InputError(f"date column {date_column!r} not found; columns are {list(map(str, frame.columns))}")
        return date_column
    for c in frame.columns:
        if str(c).strip().lower() in _DATE_NAMES:
            return c
    for c in frame.columns:  # a non-numeric column that parses as dates
        if frame[c].dtype == object or pd.api.types.is_datetime64_any_dtype(frame[c]):
            parsed = pd.to_datetime(frame[c], errors="coerce", format="mixed")
            if parsed.notna().mean() > 0.95:
                return c
    return None


def load_series(
    source: str | Path = "sp500",
    *,
    column: str | None = None,
    date_column: str | None = None,
    returns: bool = False,
    start: str | None = None,
    end: str | None = None,
) -> tuple[pd.Series, SeriesInfo]:
    """Load daily log returns from an embedded data set or a CSV/Parquet file.

    Args:
        source: ``"sp500"`` (default), another name in :data:`EMBEDDED`, or a path.
        column: the value column; detected when the file has a single numeric column.
        date_column: the date column; detected by name or content when omitted.
        returns: the column holds log returns already (default: prices).
        start, end: optional inclusive date bounds (need a date column).

    Returns:
        The log-return series (float64) and a :class:`SeriesInfo`.

    Raises:
        InputError: with a one-line message for every kind of bad input.
    """
    src = str(source)
    dates: pd.Index | None
    if src in EMBEDDED:
        values = load_embedded(src)
        col = str(values.name)
        dates = values.index
        if column is not None and column != col:
            frame = __import__("importlib").import_module(EMBEDDED[src][0]).load()
            if column not in frame.columns:
                raise InputError(f"column {column!r} not in {src}; columns are {list(frame.columns)}")
            values, col = frame[column].dropna().astype(float), column
            dates = values.index
        raw = values.to_numpy(dtype=float)
    else:
        frame = _read_table(Path(src))
        dcol = _find_date_column(frame, date_column)
        numeric = [c for c in frame.columns if c != dcol and pd.api.types.is_numeric_dtype(frame[c])]
        if column is not None:
            if column not in frame.columns:
                raise InputError(f"column {column!r} not found; columns are {list(map(str, frame.columns))}")
            col = column
            try:
                raw = pd.to_numeric(frame[col], errors="raise").to_numpy(dtype=float)
            except (ValueError, TypeError):
                raise InputError(f"column {col!r} is not numeric; choose a numeric column with --column") from None
        else:
            if not numeric:
                raise InputError(f"{src!r} has no numeric column; it needs a column of prices or returns")
            if len(numeric) > 1:
                raise InputError(
                    f"{src!r} has several numeric columns {list(map(str, numeric))}; name one with --column"
                )
            col = numeric[0]
            raw = frame[col].to_numpy(dtype=float)
        dates = None
        if dcol is not None:
            parsed = pd.to_datetime(frame[dcol], errors="coerce", format="mixed")
            if parsed.isna().any():
                row = int(np.flatnonzero(parsed.isna().to_numpy())[0])
                raise InputError(f"date column {str(dcol)!r} has an unparseable value at row {row + 2}; fix or remove it")
            dates = pd.DatetimeIndex(parsed)
            if dates.has_duplicates:
                d = dates[dates.duplicated()][0]
                raise InputError(f"date {d.date()} appears more than once in {src!r}; remove the duplicate rows")
            if not dates.is_monotonic_increasing:
                raise InputError(f"dates in {src!r} are not sorted; sort the file by date (oldest first)")
    col = str(col)
    bad = ~np.isfinite(raw)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        where = f"on {dates[i].date()}" if dates is not None else f"at row {i + 2}"
        raise InputError(f"column {col!r} has a NaN or infinite value {where}; fill or drop missing rows first")
    series = pd.Series(raw, index=dates if dates is not None else pd.RangeIndex(len(raw)), name=col)
    if start is not None or end is not None:
        if dates is None:
            raise InputError("--start/--end need a date column; name it with --date-column")
        try:
            series = series.loc[pd.Timestamp(start) if start else None : pd.Timestamp(end) if end else None]
        except ValueError:
            raise InputError(f"could not parse --start {start!r} / --end {end!r} as dates (use YYYY-MM-DD)") from None
    last_price: float | None = None
    if returns:
        r = series
    else:
        if (series <= 0).any():
            i = int(np.flatnonzero(series.to_numpy() <= 0)[0])
            raise InputError(
                f"column {col!r} has a price <= 0 at {series.index[i]}; prices must be positive "
                "(pass --returns if the column holds returns)"
            )
        r = np.log(series).diff().iloc[1:]
        last_price = float(series.iloc[-1]) if len(series) else None
    if len(r) < 2:
        raise InputError(f"{src!r} gives {len(r)} returns; at least a few hundred are needed")
    if float(np.std(r.to_numpy())) == 0.0:
        raise InputError(f"column {col!r} gives a constant return series; a model needs varying returns")
    idx = r.index
    is_dt = isinstance(idx, pd.DatetimeIndex)
    info = SeriesInfo(
        source=src,
        column=col,
        n_returns=len(r),
        start=str(idx[0].date()) if is_dt else None,
        end=str(idx[-1].date()) if is_dt else None,
        last_price=last_price,
    )
    r = r.astype(float)
    r.name = "log_return"
    return r, info


def as_returns(returns: Any) -> np.ndarray:
    """Validate user-supplied returns (Series or array) and return a float64 1-D array."""
    x = np.asarray(returns.to_numpy() if isinstance(returns, pd.Series) else returns, dtype=float)
    if x.ndim != 1:
        raise InputError(f"returns must be one-dimensional, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise InputError("returns contain NaN or inf; drop or fill them first")
    if x.size < 2 or float(np.std(x)) == 0.0:
        raise InputError("returns are constant or too short; a model needs a varying series")
    return x


def make_windows(x: np.ndarray, length: int, stride: int = 1) -> np.ndarray:
    """All windows of ``length`` consecutive values. Shape: (T,) -> (N, length)."""
    if len(x) < length:
        raise InputError(
            f"the series has {len(x)} returns but the window needs {length}; "
            "use a longer series or a smaller window"
        )
    w = np.lib.stride_tricks.sliding_window_view(x, length)[::stride]
    return np.ascontiguousarray(w)


# ---------------------------------------------------------------------------
# transforms
# ---------------------------------------------------------------------------
def _lambertw_gaussianize(z: np.ndarray, delta: float) -> np.ndarray:
    """Eq. (2): u = sign(z) sqrt(W0(delta z^2)/delta)."""
    if delta <= 0:
        return z.copy()
    w = special.lambertw(delta * z * z).real
    return np.sign(z) * np.sqrt(w / delta)


def _lambertw_nll(params: np.ndarray, r: np.ndarray) -> float:
    """Negative log-likelihood of Lambert W x Gaussian data (Goerg, 2015)."""
    loc, log_scale, delta = params
    if delta < 0 or delta > 2:
        return 1e300
    z = (r - loc) / np.exp(log_scale)
    w = special.lambertw(delta * z * z).real
    u = np.sign(z) * np.sqrt(w / delta) if delta > 0 else z
    # du/dz = u / (z (1 + W(delta z^2))), -> 1 as z -> 0
    safe = np.abs(z) > 1e-12
    jac = np.ones_like(z)
    jac[safe] = u[safe] / (z[safe] * (1 + w[safe]))
    return float(-(stats.norm.logpdf(u) + np.log(jac)).sum() + len(r) * log_scale)


@dataclass
class ReturnTransform:
    """Invertible map between log returns and model space (see module docstring).

    Attributes:
        kind: ``"lambertw"`` or ``"standard"``.
        loc, scale: location and scale of returns.
        delta: Lambert W tail parameter (0 for ``"standard"``).
        u_mean, u_std: re-standardisation of the Gaussianized values.
    """

    kind: str = "lambertw"
    loc: float = 0.0
    scale: float = 1.0
    delta: float = 0.0
    u_mean: float = 0.0
    u_std: float = 1.0
    v_max: float = math.inf

    KINDS = ("lambertw", "standard")

    def fit(self, r: np.ndarray) -> ReturnTransform:
        """Estimate the parameters on returns ``r``. Shape: (T,)."""
        if self.kind not in self.KINDS:
            raise InputError(f"unknown transform {self.kind!r}; use one of {self.KINDS}")
        r = np.asarray(r, dtype=float)
        if self.kind == "standard":
            self.loc, self.scale = float(r.mean()), float(r.std())
            return self
        # maximum likelihood of (loc, scale, delta) with u ~ N(0, 1), eq. (2) and its Jacobian
        x0 = np.array([np.median(r), np.log(r.std()), 0.1])
        res = optimize.minimize(_lambertw_nll, x0, args=(r,), method="Nelder-Mead",
                                options={"xatol": 1e-7, "fatol": 1e-7, "maxiter": 4000})
        loc, log_scale, delta = (float(v) for v in res.x)
        if not (res.success or res.nit > 100) or not np.isfinite([loc, log_scale, delta]).all():
            loc, log_scale, delta = float(np.median(r)), float(np.log(r.std())), 0.0
        self.loc, self.scale, self.delta = loc, float(np.exp(log_scale)), max(delta, 0.0)
        z = (r - self.loc) / self.scale
        u = _lambertw_gaussianize(z, self.delta)
        self.u_mean, self.u_std = float(u.mean()), float(u.std())
        # beyond the largest |u| seen, eq. (1) continues along its tangent (see inverse)
        self.v_max = float(np.abs(u).max())
        return self

    def forward(self, r: np.ndarray) -> np.ndarray:
        """Returns -> model space."""
        z = (np.asarray(r, dtype=float) - self.loc) / self.scale
        if self.kind == "standard":
            return z
        return (_lambertw_gaussianize(z, self.delta) - self.u_mean) / self.u_std

    def inverse(self, u: np.ndarray) -> np.ndarray:
        """Model space -> returns (eq. 1)."""
        u = np.asarray(u, dtype=float)
        if self.kind == "standard":
            return self.loc + self.scale * u
        v = u * self.u_std + self.u_mean
        # eq. (1) inside the observed range |v| <= v_max; beyond it the tangent line
        # z(v_max) + z'(v_max)(|v| - v_max): still monotone and unbounded, but a
        # sample a little past the data cannot explode exponentially.
        a = np.minimum(np.abs(v), self.v_max)
        g = np.exp(0.5 * self.delta * a * a)
        z = np.sign(v) * (a * g + g * (1 + self.delta * a * a) * (np.abs(v) - a))
        return self.loc + self.scale * z

    def inverse_torch(self, u: torch.Tensor) -> torch.Tensor:
        """:meth:`inverse` on a tensor (the same eq. (1) and tangent continuation). Shape: any -> the same."""
        if self.kind == "standard":
            return self.loc + self.scale * u
        v = u * self.u_std + self.u_mean
        a = v.abs().clamp_max(self.v_max)
        g = torch.exp(0.5 * self.delta * a * a)
        z = torch.sign(v) * (a * g + g * (1 + self.delta * a * a) * (v.abs() - a))
        return self.loc + self.scale * z

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self._FIELDS}
        d["v_max"] = None if math.isinf(self.v_max) else self.v_max  # strict JSON has no Infinity
        return d

    _FIELDS = ("kind", "loc", "scale", "delta", "u_mean", "u_std", "v_max")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ReturnTransform:
        vals = {k: d[k] for k in cls._FIELDS}
        vals["v_max"] = math.inf if vals["v_max"] is None else float(vals["v_max"])
        t = cls(**vals)
        if t.kind not in cls.KINDS or not all(math.isfinite(float(d[k])) for k in ("loc", "scale", "delta")):
            raise InputError("invalid preprocessing state in the model directory; refit the model")
        return t
