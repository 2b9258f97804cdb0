r"""Baseline generators of daily log returns to compare a diffusion model against.

* :class:`GarchBaseline`: GARCH(1,1) with Student-t innovations (Bollerslev
  1986, 1987), optionally with the GJR asymmetry term and Hansen's skewed t
  (Glosten, Jagannathan & Runkle 1993; Hansen 1994), fitted by maximum
  likelihood with the ``arch`` package:

  (1)  r_t = \mu + \epsilon_t,   \epsilon_t = \sigma_t z_t,   z_t iid, E z = 0, Var z = 1,
  (2)  \sigma_t^2 = \omega + (\alpha + \gamma 1[\epsilon_{t-1} < 0]) \epsilon_{t-1}^2 + \beta \sigma_{t-1}^2.

  Windows are simulated with a burn-in of ``burn`` days from the unconditional
  variance \omega / (1 - \alpha - \gamma/2 - \beta), so each window starts in
  the stationary distribution.

* :class:`StationaryBootstrap`: the stationary block bootstrap of Politis &
  Romano (1994): a window starts at a uniform random day of the training
  series and at every following day, with probability p = 1 / mean_block, jumps
  to a new uniform random day, otherwise takes the next day (circularly):

  (3)  I_{t+1} = U_{t+1} with probability p,  (I_t + 1) mod n otherwise.

  Block lengths are geometric with mean 1 / p (20 by default).

Every ``sample`` takes a ``seed`` and returns ``Shape: (N, T)`` log returns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from findiffusion.data import as_returns
from findiffusion.errors import InputError


class Generator(Protocol):
    """Anything that generates windows of log returns (the diffusion model adapts to this too)."""

    name: str

    def sample(self, n_paths: int, length: int, seed: int = 0) -> np.ndarray:  # Shape: (N, T)
        ...


def _check(n_paths: int, length: int) -> None:
    if n_paths < 1 or length < 1:
        raise InputError(f"n_paths and length must be positive, got {n_paths} and {length}")


@dataclass
class GarchBaseline:
    """A fitted GARCH(1,1) (optionally GJR) with t or skew-t innovations, Eq. (1)-(2).

    Parameters are in units of log returns (``arch`` is fitted on percent
    returns for numerical stability and rescaled here).
    """

    mu: float
    omega: float
    alpha: float
    beta: float
    gamma: float = 0.0
    nu: float = 8.0
    skew: float = 0.0  # Hansen's lambda; 0 = symmetric Student t
    dist: str = "t"
    burn: int = 500
    name: str = field(default="GARCH(1,1)-t")

    @property
    def persistence(self) -> float:
        r"""\alpha + \gamma / 2 + \beta (< 1 for a finite unconditional variance)."""
        return self.alpha + self.gamma / 2 + self.beta

    def unconditional_variance(self) -> float:
        r"""\omega / (1 - \alpha - \gamma/2 - \beta)."""
        return self.omega / max(1e-12, 1.0 - self.persistence)

    def innovations(self, size: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        """Unit-variance innovations z_t by inverse CDF of ``arch``'s standardized distribution."""
        from arch.univariate import SkewStudent, StudentsT

        u = rng.random(size).ravel()
        u = np.clip(u, 1e-15, 1 - 1e-15)
        if self.dist == "skewt":
            z = SkewStudent().ppf(u, [self.nu, self.skew])
        else:
            z = StudentsT().ppf(u, [self.nu])
        return np.asarray(z).reshape(size)

    def sample(self, n_paths: int, length: int, seed: int = 0) -> np.ndarray:
        """Simulate ``n_paths`` independent windows. Shape: (N, T)."""
        _check(n_paths, length)
        rng = np.random.default_rng(seed)
        total = self.burn + length
        z = self.innovations((total, n_paths), rng)  # (burn + T, N)
        s2 = np.full(n_paths, self.unconditional_variance())
        out = np.empty((total, n_paths))
        for t in range(total):
            eps = np.sqrt(s2) * z[t]
            out[t] = eps
            s2 = self.omega + (self.alpha + self.gamma * (eps < 0)) * eps**2 + self.beta * s2
        return (self.mu + out[self.burn:]).T.copy()  # (N, T)


def fit_garch(returns: np.ndarray, gjr: bool = False, dist: str = "t", burn: int = 500) -> GarchBaseline:
    """Fit GARCH(1,1) (``gjr=True``: GJR-GARCH(1,1,1)) with ``dist`` "t" or "skewt" by maximum likelihood.

    Args:
        returns: daily log returns of the training period. Shape: (n,).
        gjr: add the asymmetry term gamma of Eq. (2).
        dist: innovation distribution, ``"t"`` (Student) or ``"skewt"`` (Hansen).
        burn: burn-in days when simulating.
    """
    from arch import arch_model

    if dist not in ("t", "skewt"):
        raise InputError(f"dist must be 't' or 'skewt', got {dist!r}")
    r = as_returns(returns)
    if len(r) < 100:
        raise InputError(f"GARCH needs at least 100 returns, got {len(r)}")
    scale = 100.0
    am = arch_model(r * scale, mean="Constant", vol="GARCH", p=1, o=1 if gjr else 0, q=1, dist=dist, rescale=False)
    res = am.fit(disp="off", show_warning=False)
    p = res.params
    name = ("GJR" if gjr else "GARCH(1,1)") + ("-skew-t" if dist == "skewt" else "-t")
    return GarchBaseline(
        mu=float(p["mu"]) / scale,
        omega=float(p["omega"]) / scale**2,
        alpha=float(p["alpha[1]"]),
        beta=float(p["beta[1]"]),
        gamma=float(p["gamma[1]"]) if gjr else 0.0,
        nu=float(p["nu"]) if "nu" in p else float(p["eta"]),
        skew=float(p["lambda"]) if dist == "skewt" else 0.0,
        dist=dist,
        burn=burn,
        name=name,
    )


@dataclass
class StationaryBootstrap:
    """Politis-Romano stationary block bootstrap of a return series, Eq. (3)."""

    returns: np.ndarray
    mean_block: float = 20.0
    name: str = "block bootstrap (20)"

    def __post_init__(self) -> None:
        self.returns = as_returns(self.returns)
        if not self.mean_block >= 1:
            raise InputError(f"mean_block must be at least 1 day, got {self.mean_block}")

    def indices(self, n_paths: int, length: int, seed: int = 0) -> np.ndarray:
        """Day indices into the series, Eq. (3). Shape: (N, T)."""
        _check(n_paths, length)
        rng = np.random.default_rng(seed)
        n = len(self.returns)
        p = 1.0 / self.mean_block
        idx = np.empty((n_paths, length), dtype=np.int64)
        idx[:, 0] = rng.integers(0, n, n_paths)
        for t in range(1, length):
            jump = rng.random(n_paths) < p
            idx[:, t] = np.where(jump, rng.integers(0, n, n_paths), (idx[:, t - 1] + 1) % n)
        return idx

    def sample(self, n_paths: int, length: int, seed: int = 0) -> np.ndarray:
        """Resampled windows. Shape: (N, T)."""
        return self.returns[self.indices(n_paths, length, seed)]


def fit_baselines(returns: np.ndarray, gjr: bool = False, mean_block: float = 20.0) -> list[Generator]:
    """The standard baselines fitted on the same training returns: GARCH(1,1)-t, block bootstrap (and GJR-skew-t)."""
    out: list[Generator] = [fit_garch(returns)]
    if gjr:
        out.append(fit_garch(returns, gjr=True, dist="skewt"))
    out.append(StationaryBootstrap(returns, mean_block, name=f"block bootstrap ({mean_block:g})"))
    return out
