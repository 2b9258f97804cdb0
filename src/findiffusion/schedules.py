r"""Variance schedules and the forward (noising) process.

Notation follows Ho et al. (2020), "Denoising Diffusion Probabilistic Models":

(1) one step:     x_t = \sqrt{1-\beta_t}\, x_{t-1} + \sqrt{\beta_t}\, \varepsilon,   t = 1..T
(2) closed form:  q(x_t | x_0) = N(\sqrt{\bar\alpha_t}\, x_0, (1-\bar\alpha_t) I),
                  \alpha_t = 1-\beta_t,  \bar\alpha_t = \prod_{s\le t} \alpha_s

For the samplers that work in continuous time (reverse SDE, probability-flow
ODE) the schedule is extended to a continuous index :math:`\tau \in [0, T]` by
linear interpolation of :math:`\log\bar\alpha` between integer steps, with
:math:`\bar\alpha(0) = 1`. Then

(3) \beta(\tau) = -\frac{d}{d\tau}\log\bar\alpha(\tau)

is the rate of the variance-preserving SDE
(4) dx = -\tfrac12\beta(\tau)\,x\,d\tau + \sqrt{\beta(\tau)}\,dW   (Song et al., 2021),
whose marginals at integer :math:`\tau` equal those of the discrete chain (2).

Array layout: index 0 of every array stands for t = 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class ScheduleConfig:
    """Variance schedule.

    Attributes:
        kind: ``"linear"`` (Ho et al., 2020; default) or ``"cosine"`` (Nichol & Dhariwal, 2021).
            The cosine schedule ends at abar_T ~ 1e-9, which makes few-step samplers
            amplify small errors of an imperfect network; the linear one ends at ~4e-5.
        n_steps: number of diffusion steps T.
        beta_start: first beta of the linear schedule.
        beta_end: last beta of the linear schedule.
        cosine_s: offset s of the cosine schedule.
    """

    kind: str = "linear"
    n_steps: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 0.02
    cosine_s: float = 0.008

    def __post_init__(self) -> None:
        if self.kind not in ("cosine", "linear"):
            raise ValueError(f"unknown schedule kind {self.kind!r}; use 'cosine' or 'linear'")
        if self.n_steps < 2:
            raise ValueError(f"n_steps must be at least 2, got {self.n_steps}")
        if not 0 < self.beta_start < self.beta_end < 1:
            raise ValueError("need 0 < beta_start < beta_end < 1 for the linear schedule")


def make_betas(cfg: ScheduleConfig) -> np.ndarray:
    """Return beta_1..beta_T as float64. Shape: (T,)."""
    T = cfg.n_steps
    if cfg.kind == "linear":
        return np.linspace(cfg.beta_start, cfg.beta_end, T, dtype=np.float64)
    # cosine: \bar\alpha_t = f(t)/f(0), f(t) = cos^2(((t/T)+s)/(1+s) * pi/2); beta clipped at 0.999
    s = cfg.cosine_s
    steps = np.arange(T + 1, dtype=np.float64) / T
    f = np.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
    abar = f / f[0]
    betas = 1.0 - abar[1:] / abar[:-1]
    return np.clip(betas, 1e-8, 0.999)


class NoiseSchedule:
    """Discrete schedule with its continuous-time extension.

    Args:
        cfg: the schedule configuration.
    """

    def __init__(self, cfg: ScheduleConfig | None = None) -> None:
        self.cfg = cfg or ScheduleConfig()
        self.T = self.cfg.n_steps
        betas = make_betas(self.cfg)
        self.betas = torch.from_numpy(betas)  # (T,)  beta_t, t = 1..T
        self.alphas = 1.0 - self.betas  # (T,)
        self.alpha_bars = torch.cumprod(self.alphas, 0)  # (T,)  eq. (2)
        # log \bar\alpha at tau = 0..T for the continuous extension, eq. (3)
        self._log_abar = torch.cat([torch.zeros(1, dtype=torch.float64), self.alpha_bars.log()])

    # ---- discrete chain -------------------------------------------------
    def forward_step(self, x_prev: torch.Tensor, t: int, noise: torch.Tensor) -> torch.Tensor:
        """One step of eq. (1): x_t from x_{t-1}, for integer t in 1..T."""
        b = float(self.betas[t - 1])
        return math.sqrt(1.0 - b) * x_prev + math.sqrt(b) * noise

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Closed form eq. (2): x_t = sqrt(abar_t) x0 + sqrt(1-abar_t) eps.

        Shape: x0, noise (B, ...); t (B,) integer steps in 1..T.
        """
        ab = self.alpha_bars.to(x0.device)[t - 1].to(x0.dtype)
        ab = ab.view(-1, *([1] * (x0.dim() - 1)))
        return ab.sqrt() * x0 + (1 - ab).sqrt() * noise

    # ---- continuous extension ------------------------------------------
    def log_alpha_bar(self, tau: torch.Tensor | float) -> torch.Tensor:
        """log abar(tau) for continuous tau in [0, T] (piecewise linear)."""
        tau_t = torch.as_tensor(tau, dtype=torch.float64).clamp(0.0, float(self.T))
        lo = tau_t.floor().long().clamp(max=self.T - 1)
        w = tau_t - lo.to(torch.float64)
        la = self._log_abar.to(tau_t.device)  # tau may live on the GPU
        return la[lo] * (1 - w) + la[lo + 1] * w

    def alpha_bar(self, tau: torch.Tensor | float) -> torch.Tensor:
        """abar(tau) for continuous tau."""
        return self.log_alpha_bar(tau).exp()

    def beta_continuous(self, tau: torch.Tensor | float) -> torch.Tensor:
        """beta(tau) = -d log abar / d tau, eq. (3) (piecewise constant)."""
        tau_t = torch.as_tensor(tau, dtype=torch.float64).clamp(0.0, float(self.T))
        lo = (tau_t.ceil().long() - 1).clamp(0, self.T - 1)
        la = self._log_abar.to(tau_t.device)
        return la[lo] - la[lo + 1]

    def sigma_bar(self, tau: torch.Tensor | float) -> torch.Tensor:
        """sigma_bar(tau) = sqrt((1 - abar)/abar): noise level of x/sqrt(abar)."""
        la = self.log_alpha_bar(tau)
        return torch.sqrt(torch.expm1(-la))

    def tau_from_sigma_bar(self, sigma_bar: torch.Tensor | float) -> torch.Tensor:
        """Inverse of :meth:`sigma_bar` (log abar is monotone in tau)."""
        target = -torch.log1p(torch.as_tensor(sigma_bar, dtype=torch.float64) ** 2)  # log abar
        la = self._log_abar.to(target.device)  # decreasing in tau
        # searchsorted needs increasing values: use -la
        idx = torch.searchsorted(-la, -target).clamp(1, self.T)
        lo, hi = la[idx - 1], la[idx]
        w = ((lo - target) / (lo - hi)).clamp(0, 1)
        return (idx - 1).to(torch.float64) + w
