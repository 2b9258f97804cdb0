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
    u \sim density (1 + \gamma) u^\gamma on [0, 1) (u = U^{1/(1+\gamma)}; \gamma = 0: uniform).

With s_m = \sum_{d < D_m} \xi_d / \sqrt{D_m} (the standardised noise sum, N(a_m, 1) under component m),

(3) q / p = \pi_0 + \sum_m \pi_m (1 + \gamma) u^\gamma \exp(a_m s_m - a_m^2 / 2),  w = 1 / (q / p) \le 1 / \pi_0,

exact for any model: the weights need only the noise, not the map G. The defaults put one component at
a = +2 and one at a = -2 for every horizon (the option maturities): under the tilted components the noise
sum sits two standard deviations out, where a deep wing's payoff is, whichever way the model maps the
noise (the pair covers both signs). The defensive part bounds every weight by 1/\pi_0 = 1/0.3, so the
variance of the weighted (self-normalised) estimate of a mean can grow by at most about that factor over
plain sampling (Hesterberg 1995). E_q[w] = 1; the effective sample size
(\sum w)^2 / \sum w^2 says how many plain paths the weighted ones are worth for the average payoff.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

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
    """

    horizons: tuple[int, ...]
    shift: float = 2.0
    start_power: float = 1.0
    defensive: float = 0.3

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

    def components(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(D_m, a_m, \\pi_m) of the shifted components, eq. (2). Each Shape: (M,)."""
        d = np.repeat(np.asarray(self.horizons, dtype=int), 2)
        a = np.tile([self.shift, -self.shift], len(self.horizons))
        pi = np.full(len(d), (1 - self.defensive) / len(d))
        return d, a, pi


class MixtureTilt:
    """One draw of the proposal for ``n`` rows: draws each row's component, then, through
    :meth:`DiffusionModel.sample`'s ``tilt``, the start quantiles and the noise shifts; records the noise
    sums s_m and returns the weights of eq. (3)."""

    def __init__(self, config: ImportanceConfig, n: int, length: int, generator: torch.Generator) -> None:
        self.config, self.n, self.length = config, n, length
        self.days, self.a, self.pi = config.components()
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
        gamma = self.config.start_power
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
            gamma = self.config.start_power
            ratio = ratio * ((1 + gamma) * self.u**gamma)[:, None]
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
    gen = torch.Generator().manual_seed(int(seed))
    tilt = MixtureTilt(config, int(n_paths), int(length), gen)
    r = model.sample(n_paths, length, sampler=sampler, steps=steps, generator=gen, context=context,
                     batch_size=batch_size, progress=progress, tilt=tilt)
    return r, tilt.weights()


def effective_sample_size(weights: np.ndarray) -> float:
    """(\\sum w)^2 / \\sum w^2: the number of equally weighted paths with the same variance of a mean."""
    w = np.asarray(weights, dtype=float)
    return float(w.sum() ** 2 / (w**2).sum())
