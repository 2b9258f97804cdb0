r"""Loading price/return series, windowing, and invertible return transforms.

The model never sees raw returns. A causal :class:`VolatilityFilter`
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
from dataclasses import dataclass, field, replace
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


@dataclass
class VolatilityFilter:
    r"""A causal GARCH(1,1)-type variance filter: returns <-> standardized residuals.

    With mean m and variance targeting (\omega = v (1 - \alpha - \beta), v the sample variance)

    (3)  \sigma^2_{t+1} = \omega + \alpha \sigma^2_t \min(z_t^2, c^2) + \beta \sigma^2_t,   z_t = (r_t - m) / \sigma_t,

    so r_t = m + \sigma_t z_t can be rebuilt day by day from z and a start variance
    \sigma^2_1. The model learns windows of z (the diffusion model's job: the shape
    of the shocks and their dependence inside a window), while (3) carries the slow
    volatility level across windows and stitched chunks. \beta is fixed: a slow filter
    (memory 1/(1-\beta) ~ 30 days) leaves the fast clustering to the model. With
    ``alpha_max`` set (the default of :class:`~findiffusion.training.TrainConfig`), :meth:`fit`
    chooses \alpha in [0, alpha_max] by the Gaussian quasi-likelihood of (3) itself,

    (3a)  \hat\alpha = \arg\max_{0 \le \alpha \le \alpha_{max}} -\tfrac12 \sum_t [\log \sigma^2_t(\alpha) + z_t(\alpha)^2],

    so the filter never reacts more than the data's volatility clustering warrants: on a market
    with none (GBM) \hat\alpha = 0 and \sigma_t is the constant v, instead of a variance that wanders
    on noise (relative sd ~16 % at \alpha = 0.03) and that the generated residuals would have to undo.
    Real series with clustering hit the bound (S&P 500, WTI, NASDAQ, simulated Heston: \alpha = 0.03).
    ``kind="none"`` is the identity (\sigma_t = 1, m = 0). The filter is the default of
    :class:`~findiffusion.training.TrainConfig` (bench/realism.py). With c = inf, (3) is
    GARCH(1,1); a finite c (winsorized update) lets a shock beyond c sd raise the
    variance no more than one of c sd, so a generated extreme day cannot set off a spiral.

    Attributes:
        kind: ``"garch"`` or ``"none"``.
        alpha, beta: reaction and persistence in (3); alpha + beta < 1.
        alpha_max: the bound of (3a) when :meth:`fit` chooses alpha (``None``: alpha is kept as given).
        winsor: c in (3) (default 4; ``None``: no winsorizing, c = inf).
        mean, var: m and v, estimated on the training returns.
        var_max: cap on \sigma^2_t in (3), ``CAP`` times the largest filtered training
            variance (a volatility about three times the worst in the data): a generated
            run of large shocks cannot feed back into ever larger variances.
        start_quantiles: quantiles of the filtered training variances \sigma^2_t,
            from which unconditional paths draw their start variance.
        reaction: the variance-weighted winsorized second moment of the training residuals,
            M = \sum_t \sigma^2_t \min(z_t^2, c^2) / \sum_t \sigma^2_t (:meth:`reaction_moment`): (3) is
            stationary at the training level when generated residuals have the same M (eq. (4) of
            :mod:`findiffusion.model`). ``None`` in files written before it existed.
        state_quantiles: quantiles of the filtered training variances that split days into volatility
            states for the residual calibration (:meth:`~findiffusion.model.DiffusionModel.calibrate`);
            a quantile is used only where at least ``MIN_BIN_DAYS`` training days lie on each side.
        state_edges: the variance levels of those quantiles, in units of v (fitted; interior bin edges,
            so ``len(state_edges) + 1`` bins; empty when the variance does not move, e.g. alpha = 0).
        state_z2: E[z_t^2] of the training residuals in each bin of sigma^2_t / v (fitted): how wide the
            residuals are at each volatility state, the target of the state-binned calibration.
    """

    kind: str = "garch"
    alpha: float = 0.03
    beta: float = 0.965
    winsor: float | None = 4.0
    mean: float = 0.0
    var: float = 1.0
    var_max: float = math.inf
    start_quantiles: tuple[float, ...] = field(default=(), repr=False)
    reaction: float | None = None
    alpha_max: float | None = None
    state_quantiles: tuple[float, ...] = ()
    state_edges: tuple[float, ...] = ()
    state_z2: tuple[float, ...] = ()

    KINDS = ("garch", "none")
    _FIELDS = ("kind", "alpha", "beta", "winsor", "mean", "var", "var_max", "start_quantiles", "reaction",
               "alpha_max", "state_quantiles", "state_edges", "state_z2")
    #: the cap on \sigma^2_t, as a multiple of the largest filtered training variance
    CAP = 10.0
    #: training days a volatility-state bin needs on each side of its edge
    MIN_BIN_DAYS = 50

    def __post_init__(self) -> None:
        if self.kind not in self.KINDS:
            raise InputError(f"unknown volatility filter {self.kind!r}; use one of {self.KINDS}")
        if self.winsor is not None and not (self.winsor > 0 and math.isfinite(self.winsor)):
            raise InputError(f"volatility filter winsor level must be a positive number of sd (or None for no "
                             f"winsorizing), got {self.winsor}")
        if self.kind == "garch" and not (self.alpha >= 0 and self.beta >= 0 and self.alpha + self.beta < 1):
            raise InputError(
                f"volatility filter needs alpha >= 0, beta >= 0 and alpha + beta < 1, got {self.alpha}, {self.beta}"
            )
        if self.alpha_max is not None and not (self.alpha_max >= 0 and self.alpha_max + self.beta < 1):
            raise InputError(f"volatility filter needs 0 <= alpha_max and alpha_max + beta < 1, got alpha_max = "
                             f"{self.alpha_max}, beta = {self.beta}")
        q = self.state_quantiles
        if not all(0 < v < 1 for v in q) or np.any(np.diff(q) <= 0):
            raise InputError(f"volatility-state quantiles must be increasing and strictly between 0 and 1, got {q}")

    @property
    def active(self) -> bool:
        return self.kind != "none"

    def warmup_days(self, tol: float = 1e-4) -> int:
        """Days of history after which the start variance weighs less than ``tol``: beta^days < tol."""
        if not self.active or self.beta <= 0:
            return 0
        return int(math.ceil(math.log(tol) / math.log(self.beta)))

    def fit(self, r: np.ndarray) -> VolatilityFilter:
        """Estimate m, v, alpha (eq. (3a), when ``alpha_max`` is set), the variance cap, the start-variance
        quantiles and the reaction moment on returns ``r``. Shape: (T,)."""
        r = np.asarray(r, dtype=float)
        if not self.active:
            return self
        self.mean, self.var, self.var_max = float(r.mean()), float(r.var()), math.inf
        if self.alpha_max is not None:
            self.alpha = self._fit_alpha(r, self.alpha_max)
        z, s2 = self.filter(r)  # the cap set next (CAP >= 1 times the largest s2) leaves these unchanged
        self.var_max = self.CAP * float(s2.max())
        self.start_quantiles = tuple(float(q) for q in np.quantile(s2[:-1], np.linspace(0, 1, 201)))
        self.reaction = self.reaction_moment(z, s2)
        self.state_edges, self.state_z2 = self._state_bins(z, s2[:-1] / self.var)
        return self

    def _state_bins(self, z: np.ndarray, h: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Interior edges of the volatility-state bins (``state_quantiles`` of h = sigma^2 / v, those with
        ``MIN_BIN_DAYS`` days on each side and strictly inside the range of h) and E z^2 in each bin."""
        edges: list[float] = []
        for q in self.state_quantiles:
            e = float(np.quantile(h, q))
            lo = edges[-1] if edges else -math.inf
            if e > lo and np.sum((h >= lo) & (h < e)) >= self.MIN_BIN_DAYS and np.sum(h >= e) >= self.MIN_BIN_DAYS:
                edges.append(e)
        b = np.searchsorted(edges, h, side="right")  # bin of each day, 0..len(edges)
        return tuple(edges), tuple(float(np.mean(z[b == j] ** 2)) for j in range(len(edges) + 1))

    def state_bin(self, s2: np.ndarray) -> np.ndarray:
        """Volatility-state bin (0 .. len(state_edges)) of variances sigma^2. Shape: any -> the same."""
        return np.searchsorted(np.asarray(self.state_edges, dtype=float), np.asarray(s2, dtype=float) / self.var,
                               side="right")

    def quasi_loglik(self, r: np.ndarray) -> float:
        r"""Mean Gaussian quasi-log-likelihood of returns under (3), up to a constant:
        -\tfrac12 mean_t [\log \sigma^2_t + z_t^2]. Shape: (T,)."""
        z, s2 = self.filter(r)
        return float(-0.5 * np.mean(np.log(s2[..., :-1]) + z * z))

    def _fit_alpha(self, r: np.ndarray, alpha_max: float) -> float:
        """Eq. (3a): bounded scalar search on (0, alpha_max), compared with both ends (the optimum is often
        an end: 0 without clustering, the bound with strong clustering)."""
        def nll(a: float) -> float:
            return -replace(self, alpha=float(a), alpha_max=None).quasi_loglik(r)

        if alpha_max == 0:
            return 0.0
        scores = {0.0: nll(0.0), float(alpha_max): nll(alpha_max)}  # alpha -> negative log-likelihood
        opt = optimize.minimize_scalar(nll, bounds=(0.0, alpha_max), method="bounded", options={"xatol": 1e-4 * alpha_max})
        if opt.success:
            scores[float(opt.x)] = float(opt.fun)
        return min(scores, key=scores.__getitem__)

    def reaction_moment(self, z: np.ndarray, s2: np.ndarray) -> float:
        r"""M = \sum \sigma^2_t \min(z_t^2, c^2) / \sum \sigma^2_t over all days and rows: what drives (3) on average.

        Args:
            z: residuals, Shape (..., T); s2: the variances :meth:`filter` returns with them, Shape (..., T + 1).
        """
        c2 = math.inf if self.winsor is None else self.winsor ** 2
        w = np.asarray(s2)[..., :-1]
        return float(np.sum(w * np.minimum(np.asarray(z) ** 2, c2)) / np.sum(w))

    def filter(self, r: np.ndarray, var0: np.ndarray | float | None = None) -> tuple[np.ndarray, np.ndarray]:
        r"""Standardized residuals and variances, eq. (3), from the first day on.

        Args:
            r: returns. Shape: (..., T).
            var0: \sigma^2_1 (default: v, the unconditional variance).

        Returns:
            ``(z, s2)``: z of shape (..., T) and \sigma^2_1..\sigma^2_{T+1} of shape (..., T + 1);
            ``s2[..., -1]`` is the variance of the next, unseen day.
        """
        r = np.asarray(r, dtype=float)
        if not self.active:
            return r.copy(), np.ones(r.shape[:-1] + (r.shape[-1] + 1,))
        z = np.empty_like(r)
        s2 = np.empty(r.shape[:-1] + (r.shape[-1] + 1,))
        s2[..., 0] = self.var if var0 is None else var0
        for t in range(r.shape[-1]):
            z[..., t] = (r[..., t] - self.mean) / np.sqrt(s2[..., t])
            s2[..., t + 1] = self._next_var(s2[..., t], z[..., t])
        return z, s2

    def unfilter(self, z: np.ndarray, var0: np.ndarray | float | None = None,
                 state_factors: tuple[float, ...] | np.ndarray | None = None) -> np.ndarray:
        """Rebuild returns from residuals z, eq. (3) forwards. Shape: (..., T) -> (..., T).

        ``state_factors`` (one per volatility-state bin, :meth:`state_bin`): day t's residual is first
        scaled by the factor of the bin sigma^2_t falls in (the state-binned calibration of generated
        residuals); the scaled residual also drives (3)."""
        z = np.asarray(z, dtype=float)
        if not self.active:
            return z.copy()
        g = None if state_factors is None else np.asarray(state_factors, dtype=float)
        if g is not None and len(g) != len(self.state_edges) + 1:
            raise InputError(f"state_factors needs one factor per volatility-state bin ({len(self.state_edges) + 1}), "
                             f"got {len(g)}")
        r = np.empty_like(z)
        s2 = np.broadcast_to(np.asarray(self.var if var0 is None else var0, dtype=float), z.shape[:-1]).copy()
        for t in range(z.shape[-1]):
            zt = z[..., t] if g is None else z[..., t] * g[self.state_bin(s2)]
            r[..., t] = self.mean + np.sqrt(s2) * zt
            s2 = self._next_var(s2, zt)
        return r

    def _next_var(self, s2: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Eq. (3), one day: sigma^2_{t+1} from sigma^2_t and z_t (the one update both directions share)."""
        c2 = math.inf if self.winsor is None else self.winsor ** 2
        omega = self.var * (1 - self.alpha - self.beta)
        return np.minimum(omega + self.alpha * s2 * np.minimum(z * z, c2) + self.beta * s2, self.var_max)

    def state(self, s2: np.ndarray) -> np.ndarray:
        r"""The state a model conditions on: s = \tfrac12 \log(\sigma^2_t / v), the log of the filter
        volatility relative to the long-run one (0 without a filter). Shape: any -> the same."""
        s2 = np.asarray(s2, dtype=float)
        if not self.active:
            return np.zeros_like(s2)
        return 0.5 * np.log(s2 / self.var)

    def state_path(self, z: torch.Tensor, state0: torch.Tensor) -> torch.Tensor:
        r"""The state s_t = \tfrac12\log(\sigma^2_t / v) of every day of windows of residuals z, by (3)
        from the first day's state ``state0`` (in torch, for the denoiser's day-state channel).
        Shape: z (B, L), state0 (B,) -> (B, L); zeros without a filter."""
        if not self.active:
            return torch.zeros_like(z)
        c2 = math.inf if self.winsor is None else self.winsor ** 2
        h = torch.exp(2.0 * state0.to(z.dtype))  # sigma^2_1 / v, (B,)
        h_max = self.var_max / self.var
        out = []
        for t in range(z.shape[-1]):
            out.append(h)
            h = ((1 - self.alpha - self.beta) + self.alpha * h * (z[:, t] ** 2).clamp_max(c2)
                 + self.beta * h).clamp_max(h_max)  # eq. (3) in units of v
        return 0.5 * torch.log(torch.stack(out, dim=-1))  # (B, L)

    def sample_start(self, n: int, u: np.ndarray) -> np.ndarray:
        """Start variances for ``n`` unconditional paths from uniforms ``u`` in [0, 1). Shape: (n,)."""
        if not self.active or not self.start_quantiles:
            return np.full(n, self.var)
        q = np.asarray(self.start_quantiles)
        return np.interp(np.asarray(u, dtype=float), np.linspace(0, 1, len(q)), q)

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self._FIELDS}
        for k in ("start_quantiles", "state_quantiles", "state_edges", "state_z2"):
            d[k] = list(d[k])
        d["var_max"] = None if math.isinf(self.var_max) else self.var_max  # strict JSON has no Infinity
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> VolatilityFilter:
        """``None`` (model files written before the filter existed) gives the identity filter."""
        if d is None:
            return cls(kind="none")
        try:
            f = cls(kind=str(d["kind"]), alpha=float(d["alpha"]), beta=float(d["beta"]),
                    winsor=None if d["winsor"] is None else float(d["winsor"]), mean=float(d["mean"]),
                    var=float(d["var"]), var_max=math.inf if d["var_max"] is None else float(d["var_max"]),
                    start_quantiles=tuple(float(v) for v in d["start_quantiles"]),
                    reaction=None if d.get("reaction") is None else float(d["reaction"]),
                    alpha_max=None if d.get("alpha_max") is None else float(d["alpha_max"]),
                    state_quantiles=tuple(float(v) for v in d.get("state_quantiles", ())),  # older files: none
                    state_edges=tuple(float(v) for v in d.get("state_edges", ())),
                    state_z2=tuple(float(v) for v in d.get("state_z2", ())))
        except (KeyError, TypeError, ValueError, InputError):
            raise InputError("invalid volatility-filter state in the model directory; refit the model") from None
        q = np.asarray(f.start_quantiles, dtype=float)
        if not (math.isfinite(f.var) and f.var > 0 and math.isfinite(f.mean) and f.var_max > 0
                and np.isfinite(q).all() and (q > 0).all() and (np.diff(q) >= 0).all()
                and (f.reaction is None or (math.isfinite(f.reaction) and f.reaction > 0))
                and np.all(np.diff(f.state_edges) > 0) and np.all(np.asarray(f.state_edges) > 0)
                and (len(f.state_z2) in (0, len(f.state_edges) + 1))
                and all(math.isfinite(v) and v > 0 for v in f.state_z2)):
            raise InputError("invalid volatility-filter state in the model directory; refit the model")
        return f
