r"""Samplers: small pure functions over any noise predictor.

Every sampler has the signature ``sampler(eps_fn, x, schedule, *, steps, generator, ...)``:

* ``eps_fn(x_t, tau) -> eps``: predicted noise for a batch ``x_t`` at continuous
  time ``tau`` (tensor of shape (B,), values in [0, T]; integer values are the
  discrete steps of the chain). Any callable works: a trained
  :class:`~findiffusion.denoiser.Denoiser`, or an analytic optimum.
* ``x``: the starting noise x_T ~ N(0, I), any shape (B, ...).
* ``generator``: a :class:`torch.Generator` for every random draw (same seed,
  same output).

Equations (numbers are cited in the code):

DDPM, ancestral (Ho et al., 2020, eq. 11), on a possibly respaced chain
(Nichol & Dhariwal, 2021, sec. 4):
  (1) x_{t-1} = \frac{1}{\sqrt{\alpha_t}}\big(x_t - \frac{\beta_t}{\sqrt{1-\bar\alpha_t}}\varepsilon\big) + \tilde\beta_t^{1/2} z,
      \tilde\beta_t = \frac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}\beta_t

DDIM (Song, Meng & Ermon, 2021, eq. 12):
  (2) \hat x_0 = (x_t - \sqrt{1-\bar\alpha_t}\,\varepsilon)/\sqrt{\bar\alpha_t}
  (3) x_s = \sqrt{\bar\alpha_s}\hat x_0 + \sqrt{1-\bar\alpha_s-\sigma^2}\,\varepsilon + \sigma z,
      \sigma = \eta\sqrt{\tfrac{1-\bar\alpha_s}{1-\bar\alpha_t}}\sqrt{1-\tfrac{\bar\alpha_t}{\bar\alpha_s}}

Score-based view (Song et al., 2021). With \bar x = x/\sqrt{\bar\alpha} and
\bar\sigma = \sqrt{(1-\bar\alpha)/\bar\alpha}, the VP SDE dx = -\tfrac12\beta x\,d\tau + \sqrt\beta\,dW
becomes d\bar x = \sqrt{d\bar\sigma^2/d\tau}\,dW, and the score is
\nabla\log p = -\varepsilon/\bar\sigma in \bar x. Hence

  (4) reverse-time SDE:  d\bar x = -\frac{d\bar\sigma^2}{d\tau}\nabla\log p\,d\tau + \sqrt{\frac{d\bar\sigma^2}{d\tau}}\,d\bar W
      Euler–Maruyama on a grid \bar\sigma_0 > \bar\sigma_1 > ...:
      \bar x_{i+1} = \bar x_i - \frac{\bar\sigma_i^2-\bar\sigma_{i+1}^2}{\bar\sigma_i}\varepsilon + \sqrt{\bar\sigma_i^2-\bar\sigma_{i+1}^2}\,z
  (5) probability-flow ODE:  d\bar x/d\bar\sigma = \varepsilon(\bar x\sqrt{\bar\alpha}, \tau(\bar\sigma)),
      integrated with Heun's method (Karras et al., 2022, Alg. 1).

DPM-Solver++(2M) (Lu et al., 2022, "DPM-Solver++", Alg. 2), an exponential integrator of (5) in
\lambda = -\log\bar\sigma with the denoised estimate D = \bar x - \bar\sigma\varepsilon and a
two-step (multistep) linear extrapolation of D in \lambda:

  (6) \bar x_{i+1} = \frac{\bar\sigma_{i+1}}{\bar\sigma_i}\bar x_i + \big(1 - \frac{\bar\sigma_{i+1}}{\bar\sigma_i}\big)
      \big[(1 + \tfrac{1}{2r_i})D_i - \tfrac{1}{2r_i}D_{i-1}\big],  r_i = h_{i-1}/h_i,  h_i = \log\bar\sigma_i - \log\bar\sigma_{i+1}
      (the first step uses D_i alone; the last, to \bar\sigma = 0, returns D_i).
      One network evaluation per step; exact when D is constant in \lambda.

SDE-DPM-Solver++(2M) (Lu et al., 2022, sec. 5 and App. B), the same exponential integrator for the
reverse SDE (4), with a noise scale \eta (0: eq. (6); 1: the reverse SDE) and c_i = 1 - e^{-(1+\eta)h_i}:

  (7) \bar x_{i+1} = \frac{\bar\sigma_{i+1}}{\bar\sigma_i}e^{-\eta h_i}\bar x_i + c_i D_i
      + \tfrac{c_i}{2r_i}(D_i - D_{i-1}) + \bar\sigma_{i+1}\sqrt{1 - e^{-2\eta h_i}}\,z
      (first step without the D_{i-1} term; the last returns D_i). With \eta = 1 the first-order part
      is the exact posterior q(\bar x_{i+1} | \bar x_i, x_0 = D_i), i.e. an ancestral step.

The grids of (4) to (7) are spaced as in Karras et al. (2022, eq. 5) with \rho = 7 between
\sigma_{max} and \sigma_{min}, then one last step to \bar\sigma = 0 (Tweedie's denoised estimate):

  (8) \bar\sigma_i = \big(\sigma_{max}^{1/\rho} + \tfrac{i}{n-1}(\sigma_{min}^{1/\rho} - \sigma_{max}^{1/\rho})\big)^\rho,
      by default from \sigma_{max} = \bar\sigma(T) to \sigma_{min} = \bar\sigma(1), the ends of the chain,

and they start from x ~ N(0, I) at \sigma_{max}, i.e. \bar x ~ N(0, (1 + \sigma_{max}^2) I). At \bar\sigma(T)
that is the chain's own start, right for any data. A lower start (``sigma_max=10``, :data:`SIGMA_MAX`)
is exact for data of mean 0 and covariance I at any \sigma_{max}; for a component of variance \lambda
the start is off by a factor (1 + \sigma_{max}^2)/(\lambda + \sigma_{max}^2) in variance, and so, through
the flow, is the sample (under 1 % for \lambda in [0, 2] at \sigma_{max} = 10). For a trained network
it pays where the data fit that (the residuals of a volatility filter, window by window:
:attr:`findiffusion.model.DiffusionModel.sigma_range`): above \bar\sigma = 10 x_t holds less than
a tenth of the data, and a small error \delta in the predicted noise moves the flow by about
\delta\,d\bar\sigma, which integrated from \bar\sigma(T) (157 for the linear schedule) spreads the
samples' tails (docs/realism.md, *The sampling grid*). Such models also stop at
``sigma_min=0.05`` (:data:`SIGMA_MIN`): below 0.05 sd a data point barely moves, the last step takes
it to 0, and the steps go where the flow bends (with the exact denoiser of unit-variance Gaussian
data, 10 DPM-Solver++ steps on [0.05, 10] put the sd 3.6 % too high, on [0.01, 10] 6.1 %).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from findiffusion.errors import InputError
from findiffusion.schedules import NoiseSchedule

EpsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Callback = Callable[[int, int], None] | None

#: the noise range of eq. (8) for data close to N(0, I) (models with a volatility filter), in data sd
SIGMA_MAX = 10.0
SIGMA_MIN = 0.05
SAMPLERS = ("ddpm", "ddim", "sde", "ode", "dpm", "dpm-sde")
#: the samplers that integrate on the grid of eq. (8) (they take sigma_max and sigma_min)
SIGMA_GRID_SAMPLERS = ("sde", "ode", "dpm", "dpm-sde")


def _tau(x: torch.Tensor, value: float) -> torch.Tensor:
    return torch.full((x.shape[0],), float(value), dtype=torch.float64, device=x.device)


def _randn(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return torch.randn(x.shape, generator=generator, dtype=x.dtype, device="cpu").to(x.device)


def timestep_subsequence(T: int, steps: int) -> list[int]:
    """Evenly spaced integer steps T = t_S > ... > t_1 >= 1 (descending), S = ``steps``."""
    if not 1 <= steps <= T:
        raise InputError(f"steps must be between 1 and {T} (the model's diffusion steps), got {steps}")
    ts = np.unique(np.round(np.linspace(1, T, steps)).astype(int))
    return [int(t) for t in ts[::-1]]


@torch.no_grad()
def sample_ddpm(
    eps_fn: EpsFn,
    x: torch.Tensor,
    schedule: NoiseSchedule,
    *,
    steps: int | None = None,
    generator: torch.Generator | None = None,
    callback: Callback = None,
) -> torch.Tensor:
    """Ancestral DDPM sampling, eq. (1). ``steps=None`` uses all T steps;
    fewer steps respace the chain (betas recomputed from the kept abar)."""
    ts = timestep_subsequence(schedule.T, steps or schedule.T)
    abar = schedule.alpha_bars
    for i, t in enumerate(ts):
        ab_t = float(abar[t - 1])
        ab_prev = float(abar[ts[i + 1] - 1]) if i + 1 < len(ts) else 1.0
        alpha = ab_t / ab_prev  # respaced alpha_t
        beta = 1.0 - alpha
        eps = eps_fn(x, _tau(x, t)).to(x.dtype)
        mean = (x - beta / math.sqrt(1.0 - ab_t) * eps) / math.sqrt(alpha)  # eq. (1)
        if i + 1 < len(ts):
            var = (1.0 - ab_prev) / (1.0 - ab_t) * beta  # \tilde\beta_t
            x = mean + math.sqrt(var) * _randn(x, generator)
        else:
            x = mean
        if callback:
            callback(i + 1, len(ts))
    return x


@torch.no_grad()
def sample_ddim(
    eps_fn: EpsFn,
    x: torch.Tensor,
    schedule: NoiseSchedule,
    *,
    steps: int = 50,
    eta: float = 0.0,
    generator: torch.Generator | None = None,
    callback: Callback = None,
) -> torch.Tensor:
    """DDIM sampling, eqs. (2)-(3); ``eta=0`` is deterministic given x_T, ``eta=1`` is DDPM-like."""
    if eta < 0:
        raise InputError(f"eta must be >= 0, got {eta}")
    ts = timestep_subsequence(schedule.T, steps)
    abar = schedule.alpha_bars
    for i, t in enumerate(ts):
        ab_t = float(abar[t - 1])
        ab_s = float(abar[ts[i + 1] - 1]) if i + 1 < len(ts) else 1.0
        eps = eps_fn(x, _tau(x, t)).to(x.dtype)
        x0 = (x - math.sqrt(1.0 - ab_t) * eps) / math.sqrt(ab_t)  # eq. (2)
        sigma = eta * math.sqrt((1.0 - ab_s) / (1.0 - ab_t)) * math.sqrt(max(1.0 - ab_t / ab_s, 0.0))
        x = math.sqrt(ab_s) * x0 + math.sqrt(max(1.0 - ab_s - sigma**2, 0.0)) * eps  # eq. (3)
        if sigma > 0:
            x = x + sigma * _randn(x, generator)
        if callback:
            callback(i + 1, len(ts))
    return x


def sigma_grid(schedule: NoiseSchedule, steps: int, rho: float = 7.0, sigma_max: float | None = None,
               sigma_min: float | None = None) -> list[float]:
    """Karras et al. (2022, eq. 5) grid from sigma_max to sigma_min, then 0, eq. (8). Length steps + 1.

    ``sigma_max`` is capped at sigma_bar(T), ``sigma_min`` floored at sigma_bar(1); ``None``: those ends
    of the chain.
    """
    if steps < 1:
        raise InputError(f"steps must be at least 1, got {steps}")
    top = float(schedule.sigma_bar(schedule.T))
    s_max = top if sigma_max is None else min(float(sigma_max), top)
    bottom = float(schedule.sigma_bar(1.0))
    s_min = bottom if sigma_min is None else max(float(sigma_min), bottom)
    if not s_min < s_max:
        raise InputError(f"the sampling grid needs sigma_min < sigma_max, got {s_min:g} and {s_max:g}")
    if steps == 1:
        return [s_max, 0.0]
    i = np.arange(steps, dtype=np.float64) / (steps - 1)
    grid = (s_max ** (1 / rho) + i * (s_min ** (1 / rho) - s_max ** (1 / rho))) ** rho
    return [float(g) for g in grid] + [0.0]


def _eps_at_sigma(eps_fn: EpsFn, xbar: torch.Tensor, sigma: float, schedule: NoiseSchedule) -> torch.Tensor:
    """Evaluate eps at x = xbar * sqrt(abar) = xbar / sqrt(1 + sigma^2)."""
    tau = float(schedule.tau_from_sigma_bar(sigma))
    x = xbar / math.sqrt(1.0 + sigma * sigma)
    return eps_fn(x, _tau(xbar, tau)).to(xbar.dtype)


@torch.no_grad()
def sample_sde(
    eps_fn: EpsFn,
    x: torch.Tensor,
    schedule: NoiseSchedule,
    *,
    steps: int = 200,
    generator: torch.Generator | None = None,
    callback: Callback = None,
    sigma_max: float | None = None,
    sigma_min: float | None = None,
) -> torch.Tensor:
    """Reverse-time SDE, Euler–Maruyama, eq. (4). Needs more steps than the ODE."""
    grid = sigma_grid(schedule, steps, sigma_max=sigma_max, sigma_min=sigma_min)
    # x ~ N(0, I) at sigma_max, eq. (8); in scaled coordinates xbar = x * sqrt(1 + sigma_max^2)
    xbar = x.double() * math.sqrt(1.0 + grid[0] ** 2)
    for i in range(steps):
        s, s_next = grid[i], grid[i + 1]
        eps = _eps_at_sigma(eps_fn, xbar, s, schedule)
        d2 = s * s - s_next * s_next
        xbar = xbar - d2 / s * eps  # drift: -(d sigma^2) * score, score = -eps/sigma
        if s_next > 0:
            xbar = xbar + math.sqrt(d2) * _randn(xbar, generator)
        if callback:
            callback(i + 1, steps)
    return xbar.to(x.dtype)


@torch.no_grad()
def sample_ode(
    eps_fn: EpsFn,
    x: torch.Tensor,
    schedule: NoiseSchedule,
    *,
    steps: int = 20,
    generator: torch.Generator | None = None,
    callback: Callback = None,
    sigma_max: float | None = None,
    sigma_min: float | None = None,
) -> torch.Tensor:
    """Probability-flow ODE, eq. (5), with Heun's 2nd-order method (Euler on the last step).

    Deterministic given x; ``generator`` is accepted for a uniform signature.
    Network evaluations: 2 * steps - 1.
    """
    del generator
    grid = sigma_grid(schedule, steps, sigma_max=sigma_max, sigma_min=sigma_min)
    xbar = x.double() * math.sqrt(1.0 + grid[0] ** 2)
    for i in range(steps):
        s, s_next = grid[i], grid[i + 1]
        d = _eps_at_sigma(eps_fn, xbar, s, schedule)  # d xbar / d sigma
        x_euler = xbar + (s_next - s) * d
        if s_next > 0:
            d2 = _eps_at_sigma(eps_fn, x_euler, s_next, schedule)
            xbar = xbar + (s_next - s) * 0.5 * (d + d2)
        else:
            xbar = x_euler
        if callback:
            callback(i + 1, steps)
    return xbar.to(x.dtype)


@torch.no_grad()
def sample_dpm(
    eps_fn: EpsFn,
    x: torch.Tensor,
    schedule: NoiseSchedule,
    *,
    steps: int = 40,
    generator: torch.Generator | None = None,
    callback: Callback = None,
    sigma_max: float | None = None,
    sigma_min: float | None = None,
) -> torch.Tensor:
    """DPM-Solver++(2M), eq. (6), on the Karras grid: deterministic given x, ``steps`` network evaluations.

    At equal cost it is more accurate than Heun on (5): with the exact denoiser of Gaussian
    data (variance 0.3 to 3), 40 evaluations put the samples' standard deviation about 1 % too
    high where ``sample_ode`` with 20 steps (39 evaluations) is 3.5-5 % too high
    (tests/test_sampling.py checks the ordering).
    ``generator`` is accepted for a uniform signature.
    """
    del generator
    # eq. (7) with eta = 0 is eq. (6)
    return sample_dpm_sde(eps_fn, x, schedule, steps=steps, callback=callback, eta=0.0,
                          sigma_max=sigma_max, sigma_min=sigma_min)


@torch.no_grad()
def sample_dpm_sde(
    eps_fn: EpsFn,
    x: torch.Tensor,
    schedule: NoiseSchedule,
    *,
    steps: int = 40,
    generator: torch.Generator | None = None,
    callback: Callback = None,
    sigma_max: float | None = None,
    sigma_min: float | None = None,
    eta: float = 1.0,
) -> torch.Tensor:
    """SDE-DPM-Solver++(2M), eq. (7), on the Karras grid: stochastic, ``steps`` network evaluations.

    ``eta`` scales the injected noise: 0 is :func:`sample_dpm` (the ODE), 1 the reverse SDE.
    """
    if eta < 0:
        raise InputError(f"eta must be >= 0, got {eta}")
    grid = sigma_grid(schedule, steps, sigma_max=sigma_max, sigma_min=sigma_min)
    xbar = x.double() * math.sqrt(1.0 + grid[0] ** 2)
    d_prev: torch.Tensor | None = None
    h_prev = 0.0
    for i in range(steps):
        s, s_next = grid[i], grid[i + 1]
        d = xbar - s * _eps_at_sigma(eps_fn, xbar, s, schedule)  # denoised estimate D_i
        if s_next == 0.0:
            xbar = d  # last step: Tweedie's estimate
        else:
            h = math.log(s) - math.log(s_next)
            c = -math.expm1(-(1.0 + eta) * h)  # 1 - e^{-(1+eta)h}
            xbar = (s_next / s) * math.exp(-eta * h) * xbar + c * d  # eq. (7), first order
            if d_prev is not None:
                xbar = xbar + 0.5 * c * (h / h_prev) * (d - d_prev)  # second-order multistep term
            if eta > 0:
                xbar = xbar + s_next * math.sqrt(-math.expm1(-2.0 * eta * h)) * _randn(xbar, generator)
            d_prev, h_prev = d, h
        if callback:
            callback(i + 1, steps)
    return xbar.to(x.dtype)


def get_sampler(name: str) -> Callable[..., torch.Tensor]:
    """Look up a sampler by name: one of :data:`SAMPLERS`."""
    table = {"ddpm": sample_ddpm, "ddim": sample_ddim, "sde": sample_sde, "ode": sample_ode, "dpm": sample_dpm,
             "dpm-sde": sample_dpm_sde}
    if name not in table:
        raise InputError(f"unknown sampler {name!r}; use one of {', '.join(SAMPLERS)}")
    return table[name]


def check_sample_args(n: int, length: int | None, sampler: str | None, steps: int | None, T: int | None) -> None:
    """Validate sampling arguments; ``length=None`` and ``T=None`` (model not loaded yet) skip those bounds."""
    if not isinstance(n, int | np.integer) or n <= 0:
        raise InputError(f"n must be a positive number of paths, got {n}")
    if length is not None and (not isinstance(length, int | np.integer) or length <= 0):
        raise InputError(f"length must be a positive number of days, got {length}")
    if sampler is not None and sampler not in SAMPLERS:  # None: the model's default sampler
        raise InputError(f"unknown sampler {sampler!r}; use one of {', '.join(SAMPLERS)}")
    if steps is not None and (steps < 1 or (T is not None and steps > T)):
        upper = T if T is not None else "the model's diffusion steps"
        raise InputError(f"steps must be between 1 and {upper} (the model's diffusion steps), got {steps}")


#: samplers whose only noise is x_T, so that x_T -> -x_T gives an exact antithetic draw
ANTITHETIC_SAMPLERS = ("ddim", "ode", "dpm")


def check_deterministic(sampler: str, eta: float | None, what: str) -> None:
    """Validate that x_T is all the noise: antithetic pairs need it to be exact, importance sampling (which
    shifts x_T) to move the paths at all. ``what`` names the feature in the error."""
    if sampler not in ANTITHETIC_SAMPLERS or (sampler == "ddim" and eta not in (None, 0, 0.0)):
        raise InputError(f"{what} needs a deterministic sampler ({', '.join(ANTITHETIC_SAMPLERS)}; "
                         f"ddim with eta 0), got {sampler!r}" + (f" with eta {eta}" if eta else ""))


def check_antithetic(n: int, sampler: str, eta: float | None) -> None:
    """Validate antithetic sampling: a deterministic sampler and an even number of paths."""
    check_deterministic(sampler, eta, "antithetic sampling")
    if n % 2:
        raise InputError(f"antithetic sampling makes pairs of paths: n must be even, got {n}")
