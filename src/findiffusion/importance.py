r"""Importance sampling of generated paths: more paths in the tails, exact likelihood-ratio weights.

A deterministic sampler (probability-flow ODE, DPM-Solver, DDIM with eta = 0) maps its noise to a path,
path = G(\xi, u), with \xi \sim N(0, I) the noise x_T of every new day (every stitched chunk) and u \sim U(0, 1)
the quantile of the path's start state (models with a volatility filter). (The weights below would stay exact
with a stochastic sampler too, its per-step noise being untilted; but there x_T does not decide the path, so
shifting it would not move the paths into the tails. Hence deterministic samplers only.) A payoff that lives in the tails
(a deep out-of-the-money option) is non-zero on few draws, so its Monte Carlo error is large. Drawing
(\xi, u) from a proposal q instead of p and weighting each path by w = p / q keeps every expectation:

(1) E_p[f(G(\xi, u))] = E_q[w(\xi, u) f(G(\xi, u))],  w = p(\xi, u) / q(\xi, u)   (Glasserman 2004, sec. 4.6).

The proposal is a defensive mixture (Hesterberg 1995) of the model's own law (probability \pi_0) and
components m = 1..M, each a mean shift of the noise along the days before a horizon D_m and a tilt of the
start quantile towards volatile states:

(2) component m: \xi \sim N(\mu_m, I),  \mu_{m,d} = a_m / \sqrt{D_m} for path days d < D_m, else 0;
    u \sim density (1 + \gamma_m) u^{\gamma_m} on [0, 1) (u = U^{1/(1+\gamma_m)}; \gamma_m = 0: uniform).

With s_m = \sum_{d < D_m} \xi_d / \sqrt{D_m} (the standardised noise sum, N(a_m, 1) under component m),

(3) q / p = \pi_0 + \sum_m \pi_m (1 + \gamma_m) u^{\gamma_m} \exp(a_m s_m - a_m^2 / 2),  w = 1 / (q / p) \le 1 / \pi_0,

exact for any model: the weights need only the noise, not the map G. The defaults put one component at
a = +2 and one at a = -2 for every horizon (the option maturities): under the tilted components the noise
sum sits two standard deviations out, where a deep wing's payoff is, whichever way the model maps the
noise (the pair covers both signs). The defensive part bounds every weight by 1/\pi_0 = 1/0.3, so the
variance of the weighted (self-normalised) estimate of a mean can grow by at most about that factor over
plain sampling (Hesterberg 1995). E_q[w] = 1; the effective sample size
(\sum w)^2 / \sum w^2 says how many plain paths the weighted ones are worth for the average payoff.

A pilot can choose the two means of each horizon instead (the cross-entropy method, Rubinstein & Kroese
2004, one step, with the pilot's own weights): among mean shifts along the days before D, the one closest
to the zero-variance proposal (density \propto f p) in Kullback–Leibler divergence has the f-weighted mean
noise sum as its mean,

(4) a_D^{\pm} = E_p[f^{\pm} s_D] / E_p[f^{\pm}] = \sum_i w_i f_i^{\pm} s_{D,i} / \sum_i w_i f_i^{\pm},

with f^+ the payoff of a call at the highest strike and f^- of a put at the lowest, maturity D, on the
pilot's paths (:func:`tune_shifts`). Where the map G turns a noise sum into a return sum of about the same
standard deviation, a^{\pm} lands near the strike's distance in standard deviations; where volatile start
states (or fat tails) reach the strike, it lands nearer the centre. The same rule for the start quantile's
power family (maximise E_p[f log((1 + \gamma) u^\gamma)] over \gamma) gives

(5) \gamma_D^{\pm} = -1 / E_f[log u] - 1,  E_f[log u] = \sum_i w_i f_i^{\pm} log u_i / \sum_i w_i f_i^{\pm}

(uniform u: E log u = -1, \gamma = 0; the more the payoff comes from volatile starts, u near 1, the larger
\gamma). Any means and powers keep (1) exact; (4)-(5) only decide how small the error is.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from findiffusion.errors import InputError

if TYPE_CHECKING:
    from findiffusion.model import DiffusionModel


@dataclass(frozen=True)
class ImportanceConfig:
    """The proposal of eqs. (2)-(3).

    Attributes:
        horizons: the days D of the shifted components (e.g. the option maturities); two components (+a, -a)
            per horizon.
        shift: a, the mean of the standardised noise sum s_D under a shifted component.
        start_power: γ of the start quantile's density (1 + γ) u^γ under the shifted components
            (0: none).
        defensive: \\pi_0, the probability of the model's own law; the rest is shared equally.
        shifts: optional means (a_D^+, a_D^-) of s_D under the two components of each horizon, signed (e.g.
            from :func:`tune_shifts`, eq. (4)); default (+shift, -shift) for every horizon.
        start_powers: optional (γ_D^+, γ_D^-) of the two components of each horizon (eq. (5)); default
            start_power for every component.
    """

    horizons: tuple[int, ...]
    shift: float = 2.0
    start_power: float = 1.0
    defensive: float = 0.3
    shifts: tuple[tuple[float, float], ...] | None = None
    start_powers: tuple[tuple[float, float], ...] | None = None

    def __post_init__(self) -> None:
        if not self.horizons or not all(isinstance(d, int | np.integer) and d > 0 for d in self.horizons):
            raise InputError(f"importance horizons must be positive whole numbers of days, got {self.horizons}")
        if not (math.isfinite(self.shift) and 0 <= self.shift <= 6):
            raise InputError(f"importance shift must be between 0 and 6 (standard deviations), got {self.shift}")
        if not (math.isfinite(self.start_power) and 0 <= self.start_power <= 10):
            raise InputError(f"importance start_power must be between 0 and 10, got {self.start_power}")
        if not 0 < self.defensive <= 1:
            raise InputError(f"importance defensive probability must be in (0, 1], got {self.defensive}; "
                             "0.3 bounds every weight by 3.3")
        if self.shifts is not None:
            object.__setattr__(self, "shifts", self._pairs("shifts", self.shifts, -6, 6, "(standard deviations)"))
        if self.start_powers is not None:
            object.__setattr__(self, "start_powers", self._pairs("start_powers", self.start_powers, 0, 10, ""))

    def _pairs(self, name: str, value: tuple, lo: float, hi: float, unit: str) -> tuple[tuple[float, float], ...]:
        """``value`` checked as one (up, down) pair per horizon, each in [lo, hi], and returned as float pairs."""
        pairs = [tuple(p) for p in value]
        if len(pairs) != len(self.horizons) or any(len(p) != 2 for p in pairs):
            raise InputError(f"importance {name} must be one (up, down) pair per horizon ({len(self.horizons)}), "
                             f"got {value}")
        if not all(math.isfinite(v) and lo <= v <= hi for p in pairs for v in p):
            raise InputError(f"importance {name} must be between {lo} and {hi}{' ' + unit if unit else ''}, got {value}")
        return tuple((float(u), float(d)) for u, d in pairs)

    def means(self) -> tuple[tuple[float, float], ...]:
        """(a_D^+, a_D^-) of every horizon: ``shifts``, else (+shift, -shift)."""
        return self.shifts if self.shifts is not None else tuple((self.shift, -self.shift) for _ in self.horizons)

    def powers(self) -> tuple[tuple[float, float], ...]:
        """(γ_D^+, γ_D^-) of every horizon: ``start_powers``, else start_power for both."""
        if self.start_powers is not None:
            return self.start_powers
        return tuple((self.start_power, self.start_power) for _ in self.horizons)

    def components(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(D_m, a_m, \\pi_m) of the shifted components, eq. (2). Each Shape: (M,)."""
        d = np.repeat(np.asarray(self.horizons, dtype=int), 2)
        a = np.asarray(self.means(), dtype=float).reshape(-1)  # (a_1^+, a_1^-, a_2^+, ...), as d
        pi = np.full(len(d), (1 - self.defensive) / len(d))
        return d, a, pi


class MixtureTilt:
    """One draw of the proposal for ``n`` rows: draws each row's component, then, through
    :meth:`DiffusionModel.sample`'s ``tilt``, the start quantiles and the noise shifts; records the noise
    sums s_m and returns the weights of eq. (3)."""

    def __init__(self, config: ImportanceConfig, n: int, length: int, generator: torch.Generator) -> None:
        self.config, self.n, self.length = config, n, length
        self.days, self.a, self.pi = config.components()
        self.gamma = np.asarray(config.powers(), dtype=float).reshape(-1)  # γ_m, ordered as the components, (M,)
        if self.days.max() > length:
            raise InputError(f"importance horizon {int(self.days.max())} days is longer than the paths ({length} "
                             f"days): use horizons of at most {length} days or longer paths")
        probs = torch.tensor(np.concatenate([[config.defensive], self.pi]), dtype=torch.float64)
        self.comp = torch.multinomial(probs, n, replacement=True, generator=generator).numpy() - 1  # -1: own law
        self.u: np.ndarray | None = None  # start quantiles, set when the model draws start states
        self.s = np.full((n, len(self.a)), np.nan)  # s_m per row, eq. (3)

    def start_uniforms(self, generator: torch.Generator) -> np.ndarray:
        """Start quantiles u: uniform for the defensive rows, density (1 + γ) u^γ for the others.
        Shape: (n,)."""
        v = torch.rand(self.n, generator=generator, dtype=torch.float64).numpy()
        gamma = self.gamma[np.maximum(self.comp, 0)]  # each row's component's γ (unused for own-law rows), (n,)
        self.u = np.where(self.comp >= 0, v ** (1.0 / (1.0 + gamma)), v)
        return self.u

    def shift(self, rows: slice, days: int) -> np.ndarray:
        """Noise mean of each row's new days, eq. (2). Shape: (rows, days)."""
        comp = self.comp[rows]
        out = np.zeros((len(comp), days))
        on = comp >= 0
        d_m, a_m = self.days[comp[on]], self.a[comp[on]]  # (k,)
        out[on] = (np.arange(days)[None, :] < d_m[:, None]) * (a_m / np.sqrt(d_m))[:, None]
        return out

    def record(self, rows: slice, xi: np.ndarray) -> None:
        """Noise sums s_m of the rows from their new days' noise ``xi``, Shape (rows, days)."""
        csum = np.cumsum(xi, axis=1)  # (rows, days)
        self.s[rows] = csum[:, self.days - 1] / np.sqrt(self.days)

    def weights(self) -> np.ndarray:
        """w = p / q of every row, eq. (3). Shape: (n,)."""
        if np.isnan(self.s).any():
            raise RuntimeError("MixtureTilt.weights() before every row's noise was recorded (or a new day's noise was "
                               "never recorded)")
        ratio = np.exp(self.a[None, :] * self.s - self.a[None, :] ** 2 / 2)  # (n, M)
        if self.u is not None:
            ratio = ratio * (1 + self.gamma[None, :]) * self.u[:, None] ** self.gamma[None, :]  # (n, M)
        return 1.0 / (self.config.defensive + ratio @ self.pi)


def sample_importance(model: DiffusionModel, n_paths: int, length: int, config: ImportanceConfig | None = None, *,
                      sampler: str | None = None, steps: int | None = None, seed: int = 0,
                      context: np.ndarray | None = None, batch_size: int | None = None,
                      progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Log-return paths from the proposal of eqs. (2)-(3) and their weights.

    Args:
        model: a fitted :class:`~findiffusion.model.DiffusionModel` with a deterministic sampler.
        n_paths, length: N paths of T days.
        config: the proposal (default: horizon T, shift 2, start power 1, defensive 0.3).
        sampler, steps: default the model's own; must be deterministic ("ode", "dpm", "ddim" with eta 0).
        seed: seed of every draw (components, start states, noise).
        context: optional recent real log returns (1-D, oldest first); the start state is then the
            context's, and only the noise is tilted.

    Returns:
        (log returns, weights): Shape (N, T) and (N,); E[weights] = 1 and weighted means estimate the
        model's own expectations, eq. (1).
    """
    config = config or ImportanceConfig(horizons=(int(length),))
    if context is not None and np.asarray(context).ndim != 1:
        raise InputError("importance sampling takes one context: a 1-D array of log returns (oldest first)")
    if not (isinstance(n_paths, int | np.integer) and n_paths > 0):
        raise InputError(f"n_paths must be a positive whole number, got {n_paths}")
    r, tilt = _sample_tilted(model, n_paths, length, config, sampler=sampler, steps=steps, seed=seed, context=context,
                             batch_size=batch_size, progress=progress)
    return r, tilt.weights()


def _sample_tilted(model: DiffusionModel, n_paths: int, length: int, config: ImportanceConfig, *, seed: int,
                   **kwargs: Any) -> tuple[np.ndarray, MixtureTilt]:
    """Paths from the proposal and the proposal's record (noise sums, weights). Shape of paths: (N, T)."""
    gen = torch.Generator().manual_seed(int(seed))
    tilt = MixtureTilt(config, int(n_paths), int(length), gen)
    r = model.sample(n_paths, length, generator=gen, tilt=tilt, **kwargs)
    return r, tilt


def _cross_entropy(log_returns: np.ndarray, weights: np.ndarray, horizons: tuple[int, ...],
                   moneyness: tuple[float, float], fallback: tuple[tuple[float, float], ...],
                   rule: Callable[[np.ndarray, int], float]) -> tuple[tuple[float, float], ...]:
    """``rule(w f, j)`` for every horizon j and side (the call at K_high, the put at K_low) of eqs. (4)-(5), with f
    the payoff per unit of S_0 on each pilot path (Shape: (N,)); the fallback where no path pays."""
    r, w = np.asarray(log_returns, float), np.asarray(weights, float)
    hi, lo = moneyness
    out = [list(p) for p in fallback]
    for j, d in enumerate(horizons):
        growth = np.exp(r[:, :d].sum(axis=1))  # S_D / S_0, (N,)
        for side, f in enumerate((np.maximum(growth - hi, 0.0), np.maximum(lo - growth, 0.0))):
            wf = w * f  # (N,)
            if wf.sum() > 0:
                out[j][side] = rule(wf, j)
    return tuple((a, b) for a, b in out)


def cross_entropy_shifts(log_returns: np.ndarray, noise_sums: np.ndarray, weights: np.ndarray,
                         horizons: tuple[int, ...], moneyness: tuple[float, float],
                         fallback: tuple[tuple[float, float], ...]) -> tuple[tuple[float, float], ...]:
    """Eq. (4): the means (a_D^+, a_D^-) of each horizon from weighted pilot paths.

    Args:
        log_returns: the pilot's paths. Shape: (N, T).
        noise_sums: s_D of every path and horizon. Shape: (N, len(horizons)).
        weights: the pilot's weights p / q. Shape: (N,).
        horizons: the days D.
        moneyness: (K_high / S_0, K_low / S_0): f^+ = (e^{R_D} - K_high/S_0)^+, f^- = (K_low/S_0 - e^{R_D})^+
            with R_D the path's D-day log return.
        fallback: the means to keep where no pilot path pays (f = 0 on every path), per horizon.

    Returns:
        One (a_D^+, a_D^-) per horizon, clipped to [-6, 6].
    """
    s = np.asarray(noise_sums, float)  # (N, H)

    def mean_sum(wf: np.ndarray, j: int) -> float:
        return float(np.clip((wf * s[:, j]).sum() / wf.sum(), -6, 6))

    return _cross_entropy(log_returns, weights, horizons, moneyness, fallback, mean_sum)


def cross_entropy_powers(log_returns: np.ndarray, start_uniforms: np.ndarray, weights: np.ndarray,
                         horizons: tuple[int, ...], moneyness: tuple[float, float],
                         fallback: tuple[tuple[float, float], ...]) -> tuple[tuple[float, float], ...]:
    """Eq. (5): the start powers (γ_D^+, γ_D^-) of each horizon from weighted pilot paths; arguments as
    :func:`cross_entropy_shifts`, with the paths' start quantiles u (Shape: (N,)) for the noise sums.
    Returns one pair per horizon, clipped to [0, 10]."""
    log_u = np.log(np.clip(np.asarray(start_uniforms, float), 1e-300, 1.0))  # (N,)

    def power(wf: np.ndarray, j: int) -> float:
        mean_log_u = (wf * log_u).sum() / wf.sum()  # E_f[log u] <= 0
        return float(np.clip(-1.0 / min(mean_log_u, -0.09) - 1.0, 0.0, 10.0))  # -0.09: γ <= 10

    return _cross_entropy(log_returns, weights, horizons, moneyness, fallback, power)


def tune_shifts(model: DiffusionModel, config: ImportanceConfig, strikes: list[float], *, s0: float, n_pilot: int,
                seed: int = 0, **kwargs: Any) -> ImportanceConfig:
    """``config`` with each horizon's means (eq. (4)) and, where the model draws start states, start powers
    (eq. (5)) chosen on ``n_pilot`` paths drawn from ``config`` itself.

    The pilot has its own seed (derived from ``seed``), so the paths priced afterwards are independent of the
    choice; like any proposal, the tuned one keeps the weighted prices exact (eq. (1)). ``kwargs`` go to
    :meth:`DiffusionModel.sample` (sampler, steps, context, batch_size).
    """
    if not (isinstance(n_pilot, int | np.integer) and n_pilot >= 100):
        raise InputError(f"the importance pilot needs at least 100 paths, got {n_pilot}")
    if not strikes or min(strikes) <= 0:
        raise InputError(f"tune_shifts needs positive strikes, got {strikes}")
    pilot_seed = int(np.random.SeedSequence([int(seed), 4_711]).generate_state(1)[0])
    r, tilt = _sample_tilted(model, int(n_pilot), max(config.horizons), config, seed=pilot_seed, **kwargs)
    sums = tilt.s[:, ::2]  # one column per horizon: components are (D_1, +), (D_1, -), (D_2, +), ...  (N, H)
    w, money = tilt.weights(), (max(strikes) / s0, min(strikes) / s0)
    shifts = cross_entropy_shifts(r, sums, w, config.horizons, money, fallback=config.means())
    powers = config.start_powers
    if tilt.u is not None:  # the model drew start states from the tilted quantiles
        powers = cross_entropy_powers(r, tilt.u, w, config.horizons, money, fallback=config.powers())
    return replace(config, shifts=shifts, start_powers=powers)


def effective_sample_size(weights: np.ndarray) -> float:
    """(\\sum w)^2 / \\sum w^2: the number of equally weighted paths with the same variance of a mean."""
    w = np.asarray(weights, dtype=float)
    return float(w.sum() ** 2 / (w**2).sum())
