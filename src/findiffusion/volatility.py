"""The volatility filter: a causal GARCH(1,1)-type variance filter between returns and residuals.

The model learns windows of standardized residuals z_t = (r_t - m) / sigma_t; :class:`VolatilityFilter`
computes sigma_t from the days before t (eq. (3)), carries the volatility level across windows and stitched
chunks, and records what the residual calibration of :mod:`findiffusion.model` needs (the reaction moment
M and E z^2 by volatility state).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from scipy import optimize

from findiffusion.errors import InputError


def _asym_factor(z: np.ndarray, asym: float | np.ndarray) -> np.ndarray:
    """1 - a sgn z: the asymmetry's weight on a residual's reaction in (3) (1 + a for falls, 1 - a for rises)."""
    return 1 - asym * np.sign(z)


@dataclass
class VolatilityFilter:
    r"""A causal GARCH(1,1)-type variance filter: returns <-> standardized residuals.

    With mean m and variance targeting (\omega = v (1 - \alpha - \beta), v the sample variance)

    (3)  \sigma^2_{t+1} = \omega + \alpha (1 - a \operatorname{sgn} z_t) \sigma^2_t \min(z_t^2, c^2) + \beta \sigma^2_t,
         z_t = (r_t - m) / \sigma_t,

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

    The asymmetry a in [-1, 1] (default 0: symmetric) makes the filter react by \alpha (1 + a) to falls and
    \alpha (1 - a) to rises, a GJR-type leverage term (Glosten, Jagannathan & Runkle 1993) parameterized so
    that the mean reaction, and with it the persistence \alpha + \beta and the variance target, do not
    depend on a (E sgn(z) z^2 = 0 for symmetric z). With ``asym_max`` set, :meth:`fit` chooses (\alpha, a)
    jointly by the same quasi-likelihood,

    (3b)  (\hat\alpha, \hat a) = \arg\max_{0 \le \alpha \le \alpha_{max}, |a| \le a_{max}} -\tfrac12 \sum_t
          [\log \sigma^2_t(\alpha, a) + z_t(\alpha, a)^2]

    (on a grid, then a finer grid around the best point). The filter is what carries the volatility level
    beyond one generated window, so only an asymmetric filter carries the leverage effect (falls raise
    later volatility) across stitched chunks.

    With ``var_drift`` \lambda > 0 the mean moves with the variance, an in-mean term

    (3c)  r_t = m - \lambda \sigma^2_t + \sigma_t z_t,

    and \lambda = 1/2 is the Ito term of a log price: d\log S = (\mu - v/2) dt + \sqrt{v} dW. With it a fall
    that raises the filter variance lowers the drift of the days after it, the small positive dependence of
    daily returns that Heston's -v/2 drift makes with \rho < 0 (docs/pricing.md, session 22), built into the
    rebuild instead of left to the network. m is then the mean of r_t + \lambda \sigma^2_t.

    Attributes:
        kind: ``"garch"`` or ``"none"``.
        alpha, beta: reaction and persistence in (3); alpha + beta < 1.
        alpha_max: the bound of (3a) when :meth:`fit` chooses alpha (``None``: alpha is kept as given).
        asym: the asymmetry a of (3), in [-1, 1] (0: symmetric; 1: the filter reacts to falls only).
        asym_max: with ``alpha_max``, :meth:`fit` chooses a in [-asym_max, asym_max] jointly with alpha,
            eq. (3b) (``None`` or 0: a is kept as given).
        winsor: c in (3) (default 4; ``None``: no winsorizing, c = inf).
        mean, var: m and v, estimated on the training returns.
        var_drift: \lambda of (3c) (default 0: a constant mean; 1/2: the Ito term).
        var_max: cap on \sigma^2_t in (3), ``CAP`` times the largest filtered training
            variance (a volatility about three times the worst in the data): a generated
            run of large shocks cannot feed back into ever larger variances.
        start_quantiles: quantiles of the filtered training variances \sigma^2_t at the probabilities
            ``start_probs``, from which unconditional paths draw their start variance (:meth:`sample_start`).
        start_probs: the probabilities of ``start_quantiles`` (:attr:`START_PROBS` when fitted; empty in files
            written before 2026-12-04, whose quantiles sit at 201 equally spaced probabilities).
        reaction: the variance-weighted winsorized second moment of the training residuals,
            M = \sum_t \sigma^2_t (1 - a \operatorname{sgn} z_t) \min(z_t^2, c^2) / \sum_t \sigma^2_t
            (:meth:`reaction_moment`): (3) is
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
    asym: float = 0.0
    asym_max: float | None = None
    start_probs: tuple[float, ...] = field(default=(), repr=False)
    var_drift: float = 0.0

    KINDS = ("garch", "none")
    _FIELDS = ("kind", "alpha", "beta", "winsor", "mean", "var", "var_max", "start_quantiles", "reaction",
               "alpha_max", "state_quantiles", "state_edges", "state_z2", "asym", "asym_max",
               "start_probs", "var_drift")
    #: the cap on \sigma^2_t, as a multiple of the largest filtered training variance
    CAP = 10.0
    #: training days a volatility-state bin needs on each side of its edge
    MIN_BIN_DAYS = 50
    #: probabilities of the stored start-variance quantiles: steps of 0.5 % up to 99 %, then eight per decade
    #: of the upper tail 1 - p down to 1e-6, so no draw falls in a wide top bin (see :meth:`sample_start`)
    START_PROBS = tuple(float(p) for p in np.round(np.concatenate([np.linspace(0.0, 0.99, 199),
                                                                   1.0 - 10.0 ** -np.linspace(2.125, 6.0, 32)]), 12))

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
        if not (math.isfinite(self.var_drift) and self.var_drift >= 0):
            raise InputError(f"volatility filter var_drift must be a number >= 0 (0: constant mean; 0.5: the Ito term), "
                             f"got {self.var_drift}")
        if not -1 <= self.asym <= 1:
            raise InputError(f"volatility filter asymmetry must be in [-1, 1] (0: symmetric), got {self.asym}")
        if self.asym_max is not None and not 0 <= self.asym_max <= 1:
            raise InputError(f"volatility filter asym_max must be in [0, 1], got {self.asym_max}")
        q = self.state_quantiles
        if not all(0 < v < 1 for v in q) or np.any(np.diff(q) <= 0):
            raise InputError(f"volatility-state quantiles must be increasing and strictly between 0 and 1, got {q}")

    @property
    def active(self) -> bool:
        return self.kind != "none"

    @property
    def legacy_start_grid(self) -> bool:
        """Whether the start quantiles are the 201 equally spaced ones of files written before 2026-12-04
        (no ``start_probs``; :meth:`sample_start`). Such a model is best refitted: training does not use the
        start law, so a refit gives the same network with the current one."""
        return self.active and bool(self.start_quantiles) and not self.start_probs

    @property
    def asym_bound(self) -> float:
        """The largest asymmetry with which (3) stays positive whatever the (winsorized) residual: a rise of c sd
        changes the variance by the factor beta + alpha (1 - a) c^2 at worst, so a <= 1 + beta / (alpha c^2) (1
        without winsorizing; inf when alpha = 0). :meth:`view_variance` takes any a up to it."""
        if self.alpha <= 0:
            return math.inf
        return 1.0 if self.winsor is None else 1 + self.beta / (self.alpha * self.winsor ** 2)

    def view_variance(self, r: np.ndarray, var0: np.ndarray | float | None = None, asym: float | None = None
                      ) -> np.ndarray:
        """The variance after the last day of returns r by recursion (3) with the asymmetry a replaced by ``asym``
        (default: the filter's own; any value in [-1, :attr:`asym_bound`], beyond the [-1, 1] of a fitted filter):
        how a filter that reacts more (or less) to falls than to rises would see the same days (eq. (10) of
        :mod:`findiffusion.stitching`). Shape: r (..., T) -> (...).

        Raises:
            InputError: ``asym`` outside [-1, asym_bound]."""
        a = self.asym if asym is None else float(asym)
        if not -1 <= a <= self.asym_bound:
            raise InputError(f"a view asymmetry must be in [-1, {self.asym_bound:.4g}] (where recursion (3) stays "
                             f"positive for this filter), got {asym}")
        r = np.asarray(r, dtype=float)
        s2 = np.broadcast_to(np.asarray(self.var if var0 is None else var0, dtype=float), r.shape[:-1]).copy()
        if not self.active:
            return np.ones(r.shape[:-1])
        for t in range(r.shape[-1]):
            z = (r[..., t] - self.mean_return(s2)) / np.sqrt(s2)
            s2 = np.minimum(np.maximum(self._update(s2, z, self.alpha, a), 0.0), self.var_max)  # (3) with a = asym
        return s2

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
        self.var, self.var_max = float(r.var()), math.inf
        self.mean = float(r.mean()) + self.var_drift * self.var  # (3c): E sigma^2_t ~ v
        if self.alpha_max is not None and self.asym_max:
            self.alpha, self.asym = self._fit_alpha_asym(r, self.alpha_max, self.asym_max)
        elif self.alpha_max is not None:
            self.alpha = self._fit_alpha(r, self.alpha_max)
        if self.var_drift:  # m = mean of r_t + lambda sigma^2_t with the fitted filter's variances (one fixed-point
            # step: m moves sigma^2_t only through z_t, by far less than the standard error of m)
            self.mean = float(np.mean(r + self.var_drift * self.filter(r)[1][:-1]))
        z, s2 = self.filter(r)  # the cap set next (CAP >= 1 times the largest s2) leaves these unchanged
        self.var_max = self.CAP * float(s2.max())
        self.start_probs = self.START_PROBS
        self.start_quantiles = tuple(float(q) for q in np.quantile(s2[:-1], self.start_probs))
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

    def scale_by_state(self, z: np.ndarray, s2: np.ndarray, state_factors: np.ndarray | None) -> np.ndarray:
        """Residuals z of one day times the factor of the volatility-state bin of their variances s2 (eq. (5) of
        :mod:`findiffusion.model`); z itself without factors. Shape: z, s2 (n,) -> (n,)."""
        return z if state_factors is None else z * np.asarray(state_factors, dtype=float)[self.state_bin(s2)]

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

    #: grid points per axis of eq. (3b), coarse then fine (around the best coarse point)
    GRID = 13

    def _fit_alpha_asym(self, r: np.ndarray, alpha_max: float, asym_max: float) -> tuple[float, float]:
        """Eq. (3b): the quasi-likelihood on a GRID x GRID grid of (alpha, a), then on a finer one spanning
        one coarse step either side of the best point (all candidates filtered at once, one pass over r)."""
        alphas, asyms = np.linspace(0, alpha_max, self.GRID), np.linspace(-asym_max, asym_max, self.GRID)
        for _ in range(2):
            aa, ss = (x.ravel() for x in np.meshgrid(alphas, asyms, indexing="ij"))  # (K,) candidates
            i = int(np.argmin(self._nll_grid(r, aa, ss)))
            da, ds = alphas[1] - alphas[0], asyms[1] - asyms[0]
            alphas = np.linspace(max(aa[i] - da, 0.0), min(aa[i] + da, alpha_max), self.GRID)
            asyms = np.linspace(max(ss[i] - ds, -asym_max), min(ss[i] + ds, asym_max), self.GRID)
        return float(aa[i]), float(ss[i])

    def _nll_grid(self, r: np.ndarray, alphas: np.ndarray, asyms: np.ndarray) -> np.ndarray:
        """Negative quasi-log-likelihood of (3) (up to constants, summed over days) for K candidate
        (alpha, a) pairs at once. Shape: r (T,), alphas, asyms (K,) -> (K,)."""
        s2, out = np.full(alphas.shape, self.var), np.zeros(alphas.shape)
        for x in r:
            z = (x - self.mean + self.var_drift * s2) / np.sqrt(s2)
            out += np.log(s2) + z * z
            s2 = self._update(s2, z, alphas, asyms)  # (K,); no cap while fitting (var_max is inf then)
        return 0.5 * out

    def reaction_moment(self, z: np.ndarray, s2: np.ndarray) -> float:
        r"""M = \sum \sigma^2_t (1 - a \operatorname{sgn} z_t) \min(z_t^2, c^2) / \sum \sigma^2_t over all days and
        rows: what drives (3) on average.

        Args:
            z: residuals, Shape (..., T); s2: the variances :meth:`filter` returns with them, Shape (..., T + 1).
        """
        c2 = math.inf if self.winsor is None else self.winsor ** 2
        w, z = np.asarray(s2)[..., :-1], np.asarray(z)
        return float(np.sum(w * _asym_factor(z, self.asym) * np.minimum(z * z, c2)) / np.sum(w))

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
            z[..., t] = (r[..., t] - self.mean_return(s2[..., t])) / np.sqrt(s2[..., t])
            s2[..., t + 1] = self._next_var(s2[..., t], z[..., t])
        return z, s2

    def unfilter(self, z: np.ndarray, var0: np.ndarray | float | None = None,
                 state_factors: tuple[float, ...] | np.ndarray | None = None) -> np.ndarray:
        """Rebuild returns from residuals z, eq. (3) forwards. Shape: (..., T) -> (..., T).

        ``state_factors`` (one per volatility-state bin, :meth:`state_bin`; Shape (bins,), or (T, bins) for
        factors that differ by day): day t's residual is first scaled by the factor of the bin sigma^2_t falls
        in (the state-binned calibration of generated residuals); the scaled residual also drives (3)."""
        z = np.asarray(z, dtype=float)
        if not self.active:
            return z.copy()
        g = None if state_factors is None else np.asarray(state_factors, dtype=float)
        bins = len(self.state_edges) + 1
        if g is not None and (g.shape[-1] != bins or g.ndim > 2 or (g.ndim == 2 and len(g) != z.shape[-1])):
            raise InputError(f"state_factors needs one factor per volatility-state bin ({bins}), as a ({bins},) or a "
                             f"(days, {bins}) array for {z.shape[-1]} days; got shape {g.shape}")
        r = np.empty_like(z)
        s2 = np.broadcast_to(np.asarray(self.var if var0 is None else var0, dtype=float), z.shape[:-1]).copy()
        for t in range(z.shape[-1]):
            zt = self.scale_by_state(z[..., t], s2, g if g is None or g.ndim == 1 else g[t])
            r[..., t] = self.mean_return(s2) + np.sqrt(s2) * zt
            s2 = self._next_var(s2, zt)
        return r

    def mean_return(self, s2: np.ndarray | float) -> np.ndarray:
        """The mean of a day's return given its filter variance, m - lambda sigma^2_t (eq. (3c); m when
        ``var_drift`` is 0). Shape: any -> the same."""
        s2 = np.asarray(s2, dtype=float)
        return self.mean - self.var_drift * s2 if self.var_drift else np.full_like(s2, self.mean)

    def _next_var(self, s2: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Eq. (3), one day: sigma^2_{t+1} from sigma^2_t and z_t (the one update both directions share)."""
        return np.minimum(self._update(s2, z, self.alpha, self.asym), self.var_max)

    def _update(self, s2: np.ndarray, z: np.ndarray, alpha: float | np.ndarray, asym: float | np.ndarray) -> np.ndarray:
        """The right-hand side of (3) before the cap, for this filter's (alpha, a) or for K candidates at once
        (:meth:`_nll_grid`). Shape: s2, z and alpha, asym broadcast together."""
        c2 = math.inf if self.winsor is None else self.winsor ** 2
        omega = self.var * (1 - alpha - self.beta)
        react = alpha if np.ndim(asym) == 0 and asym == 0 else alpha * _asym_factor(z, asym)
        return omega + react * s2 * np.minimum(z * z, c2) + self.beta * s2

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
            react = self.alpha * (1 - self.asym * torch.sign(z[:, t]))  # (B,)
            h = ((1 - self.alpha - self.beta) + react * h * (z[:, t] ** 2).clamp_max(c2)
                 + self.beta * h).clamp_max(h_max)  # eq. (3) in units of v
        return 0.5 * torch.log(torch.stack(out, dim=-1))  # (B, L)

    def sample_start(self, n: int, u: np.ndarray) -> np.ndarray:
        r"""Start variances for ``n`` unconditional paths from uniforms ``u`` in [0, 1): the stored quantile
        function of the training variances, interpolated linearly in x = -\log(1 - p) (exact for an
        exponential upper tail, such as Heston's Gamma-distributed variance), constant above the last
        stored probability (1 - 1e-6). Shape: (n,).

        Files written before 2026-12-04 keep their 201 equally spaced quantiles and linear interpolation in p.
        There the top bin drew uniformly between the 99.5 % quantile and the largest training variance, far
        heavier than the data: on 10 000 simulated Heston years its 99.9 % start variance was 1.8 times the
        training one, and 21-day returns had excess kurtosis 6.8 against Heston's 5.0 (docs/pricing.md)."""
        if not self.active or not self.start_quantiles:
            return np.full(n, self.var)
        q, u = np.asarray(self.start_quantiles), np.asarray(u, dtype=float)
        if self.legacy_start_grid:
            return np.interp(u, np.linspace(0, 1, len(q)), q)
        return np.interp(-np.log1p(-u), -np.log1p(-np.asarray(self.start_probs)), q)

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self._FIELDS}
        for k in ("start_quantiles", "state_quantiles", "state_edges", "state_z2", "start_probs"):
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
                    state_z2=tuple(float(v) for v in d.get("state_z2", ())),
                    asym=float(d.get("asym", 0.0)),  # older files: symmetric
                    asym_max=None if d.get("asym_max") is None else float(d["asym_max"]),
                    start_probs=tuple(float(v) for v in d.get("start_probs", ())),  # older files: equal steps
                    var_drift=float(d.get("var_drift", 0.0)))  # older files: constant mean
        except (KeyError, TypeError, ValueError, InputError):
            raise InputError("invalid volatility-filter state in the model directory; refit the model") from None
        q, p = np.asarray(f.start_quantiles, dtype=float), np.asarray(f.start_probs, dtype=float)
        if not (math.isfinite(f.var) and f.var > 0 and math.isfinite(f.mean) and f.var_max > 0
                and (p.size == 0 or (p.size == q.size and p[0] == 0 and p[-1] < 1 and (np.diff(p) > 0).all()))
                and np.isfinite(q).all() and (q > 0).all() and (np.diff(q) >= 0).all()
                and (f.reaction is None or (math.isfinite(f.reaction) and f.reaction > 0))
                and np.all(np.diff(f.state_edges) > 0) and np.all(np.asarray(f.state_edges) > 0)
                and (len(f.state_z2) in (0, len(f.state_edges) + 1))
                and all(math.isfinite(v) and v > 0 for v in f.state_z2)):
            raise InputError("invalid volatility-filter state in the model directory; refit the model")
        return f
