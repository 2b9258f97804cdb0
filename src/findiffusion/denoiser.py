r"""The denoiser: owns the noise parameterisation, the conditioning and the loss.

The network receives three channels over the window (CSDI-style conditioning,
Tashiro et al., 2021):

  channel 0: x_t on the days to generate, 0 on observed days
  channel 1: the observed values x_0 on observed days, 0 elsewhere
  channel 2: the mask (1 = observed)
  channel 3 (models with a volatility filter only, ``network.cfg.in_channels == 4``): the filter
            state at the window's first day, s = \tfrac12\log(\sigma^2_1/\bar\sigma^2), constant over
            the window, so the network generates residuals that fit the volatility they will be
            scaled by (in the data, windows that start at a high variance have calm residuals)
  channel 4 (models fitted with ``TrainConfig.day_state``, ``in_channels == 5``): the filter state of
            every day, s_t - s_1, that the denoiser's own previous clean estimate \hat x_0 implies
            through the filter recursion (``day_state``), or 0 when there is none yet: self-conditioning
            (Chen et al., 2023, sec. 3.3). With channel 3 alone the network must infer each day's
            volatility state from noisy values; in the data the residuals' spread and tails depend on it.
            Measured on the S&P 500 it did not change that dependence (docs/realism.md); off by default.

and its output F is turned into the predicted noise \varepsilon_\theta in one of two ways
(``prediction``), with \alpha_t = \sqrt{\bar\alpha_t}, \sigma_t = \sqrt{1-\bar\alpha_t} and
x_t = \alpha_t x_0 + \sigma_t\varepsilon:

  (1) "eps" (Ho et al., 2020, eq. 14): \varepsilon_\theta = F, trained on
      L = E_{t, x_0, \varepsilon, m} \| (1-m) \odot (\varepsilon - F) \|^2;
  (2) "v" (Salimans & Ho, 2022, sec. 4 and App. D): F predicts v = \alpha_t\varepsilon - \sigma_t x_0, so
      \varepsilon_\theta = \sigma_t x_t + \alpha_t F and \hat x_0 = \alpha_t x_t - \sigma_t F, trained on
      L = E \| (1-m) \odot (v - F) \|^2 = E \| (1-m) \odot (\varepsilon - \varepsilon_\theta) \|^2 + E \| (1-m) \odot (x_0 - \hat x_0) \|^2.

The loss is over the days to generate only. Why (2): the samplers use
\hat x_0 = (x_t - \sigma_t\varepsilon_\theta)/\alpha_t, so with (1) an error in F is multiplied by
\sigma_t/\alpha_t (up to 160 at t = T) — at high noise a small miss on a rare, large x_t becomes a
wild \hat x_0 that the deterministic samplers carry into isolated extreme days. With (2) the error of
\hat x_0 is \sigma_t times the error of F, never amplified; and \varepsilon_\theta is exact for
unit-variance Gaussian data when F = 0 (the model space is standardized to unit variance).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from findiffusion.schedules import NoiseSchedule


class Denoiser(nn.Module):
    """Epsilon-prediction wrapper around a network.

    Args:
        network: maps (B, C, L) inputs (C = 3; 4 with the filter-state channel; 5 with the day-state channel too)
            and (B,) times to (B, 1, L).
        schedule: the noise schedule.
        prediction: what the network's output F stands for, ``"eps"`` (eq. 1) or ``"v"`` (eq. 2).
        day_state: for a network with the day-state channel (5 inputs): maps clean windows (B, L) in
            model space and first-day states (B,) to every day's filter state (B, L) (built from the
            model's transform and filter by :func:`findiffusion.training.build_denoiser`).
    """

    PREDICTIONS = ("eps", "v")
    #: share of training windows whose day-state channel comes from a first, gradient-free pass
    SELF_COND_P = 0.5
    #: guard on a clean estimate \hat x_0 in model space (~N(0, 1); 10 sd is far beyond any day seen): the
    #: self-conditioning estimate here, the samplers' estimate in :mod:`findiffusion.model` (CLIP_X0)
    CLIP = 10.0

    def __init__(self, network: nn.Module, schedule: NoiseSchedule, prediction: str = "eps",
                 day_state: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None) -> None:
        super().__init__()
        if prediction not in self.PREDICTIONS:
            raise ValueError(f"unknown prediction {prediction!r}; use one of {self.PREDICTIONS}")
        self.network = network
        self.schedule = schedule
        self.prediction = prediction
        self.day_state = day_state
        if self.uses_day_state and day_state is None:
            raise ValueError("a network with the day-state channel needs day_state (the filter recursion)")

    @property
    def _in_channels(self) -> int:
        return int(getattr(getattr(self.network, "cfg", None), "in_channels", 3))

    @property
    def uses_state(self) -> bool:
        """Whether the network takes the filter-state channel (channel 3)."""
        return self._in_channels >= 4

    @property
    def uses_day_state(self) -> bool:
        """Whether the network takes the self-conditioned day-state channel (channel 4)."""
        return self._in_channels == 5

    def day_channel(self, x0_hat: torch.Tensor, state: torch.Tensor, context: torch.Tensor | None = None,
                    mask: torch.Tensor | None = None) -> torch.Tensor:
        """Channel 4 from a clean estimate: s_t - s_1 along the window, observed days taken from the
        context. Shape: x0_hat, context, mask (B, L); state (B,) -> (B, L)."""
        x = x0_hat.clamp(-self.CLIP, self.CLIP)
        if mask is not None and context is not None:
            x = torch.where(mask > 0, context.to(x.dtype), x)
        st = state.to(x.device, x.dtype)
        return (self.day_state(x, st) - st[:, None]).to(x0_hat.dtype)  # (B, L)

    def x0_from(self, out: torch.Tensor, x_t: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
        """The clean estimate implied by the network's output F (eq. 1 or 2). Shape: (B, L) -> (B, L)."""
        a, s = self._alpha_sigma(tau, out)
        if self.prediction == "eps":
            return (x_t.to(out.dtype) - s * out) / a
        return a * x_t.to(out.dtype) - s * out

    def _time_input(self, tau: torch.Tensor) -> torch.Tensor:
        # the network sees time on a fixed 0..1000 scale whatever T is
        return tau.float() * (1000.0 / self.schedule.T)

    def forward(
        self,
        x_t: torch.Tensor,
        tau: torch.Tensor,
        context: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        state: torch.Tensor | None = None,
        day: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Predict eps. Shape: x_t, context, mask, day (B, L); tau, state (B,) -> (B, L)."""
        out = self.raw(x_t, tau, context, mask, state, day)  # (B, L)
        if self.prediction == "eps":
            return out  # eq. (1)
        a, s = self._alpha_sigma(tau, out)
        return s * x_t.to(out.dtype) + a * out  # eq. (2): eps = sigma x_t + alpha v

    def _alpha_sigma(self, tau: torch.Tensor, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ab = self.schedule.alpha_bar(tau).to(like.device, like.dtype).view(-1, *([1] * (like.dim() - 1)))
        return ab.sqrt(), (1 - ab).sqrt()  # (B, 1, ...)

    def raw(
        self,
        x_t: torch.Tensor,
        tau: torch.Tensor,
        context: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        state: torch.Tensor | None = None,
        day: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The network's output F (eps or v, see ``prediction``). Shape: as :meth:`forward`.

        ``state`` (B,) is the filter state of channel 3; required by a network with that channel,
        ignored otherwise. ``day`` (B, L) is channel 4 (:meth:`day_channel`; ``None``: zeros, no
        estimate yet), ignored by a network without it."""
        dtype = next(self.network.parameters()).dtype
        x = x_t.to(dtype)
        if mask is None:
            mask = torch.zeros_like(x)
            context = torch.zeros_like(x)
        else:
            mask = mask.to(dtype)
            context = context.to(dtype) if context is not None else torch.zeros_like(x)
        chans = [x * (1 - mask), context * mask, mask]
        if self.uses_state:
            if state is None:
                raise ValueError("this model conditions on the volatility-filter state: pass state (B,)")
            chans.append(state.to(x.device, dtype)[:, None].expand_as(x))
        if self.uses_day_state:
            chans.append(torch.zeros_like(x) if day is None else day.to(x.device, dtype))
        inp = torch.stack(chans, dim=1)  # (B, 3..5, L)
        return self.network(inp, self._time_input(tau.to(x.device))).squeeze(1)  # (B, L)

    def eps_fn(self, context: torch.Tensor | None = None, mask: torch.Tensor | None = None,
               clip_x0: float | None = None, state: torch.Tensor | None = None):
        r"""A sampler-ready callable ``eps_fn(x_t, tau)`` with fixed context, mask and filter state.

        With ``clip_x0`` the implied clean estimate
        \hat x_0 = (x_t - \sqrt{1-\bar\alpha}\,\varepsilon)/\sqrt{\bar\alpha} is clipped to
        [-clip_x0, clip_x0] and eps recomputed from it, a guard against the
        blow-up of an imperfect network at very high noise.

        With the day-state channel the callable keeps the clean estimate of its last call and feeds
        the day states it implies into the next (self-conditioning); the first call sees zeros. So
        make one callable per sampling run.
        """
        prev: list[torch.Tensor] = []  # the last clean estimate, (B, L)

        def fn(x_t: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
            day = None
            if self.uses_day_state and prev:
                day = self.day_channel(prev[0], state, context, mask)
            eps = self(x_t, tau, context, mask, state, day).to(x_t.dtype)
            if clip_x0 is None and not self.uses_day_state:
                return eps
            a, s = self._alpha_sigma(tau, x_t)  # (B, 1)
            x0 = (x_t - s * eps) / a
            if self.uses_day_state:
                prev[:] = [x0.detach()]
            if clip_x0 is None:
                return eps
            x0 = x0.clamp(-clip_x0, clip_x0)
            return (x_t - a * x0) / s

        return fn

    def loss(
        self,
        x0: torch.Tensor,
        mask: torch.Tensor,
        generator: torch.Generator | None = None,
        state: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Masked MSE of the network's target (eps or v) for a batch of clean windows.

        Shape: x0, mask (B, L); state (B,) or None -> ()."""
        B = x0.shape[0]
        t = torch.randint(1, self.schedule.T + 1, (B,), generator=generator).to(x0.device)  # (B,)
        noise = torch.randn(x0.shape, generator=generator).to(x0.device)  # (B, L)
        x_t = self.schedule.q_sample(x0, t, noise)
        tau = t.to(torch.float64)
        day = None
        if self.uses_day_state:
            # self-conditioning: for a share SELF_COND_P of the windows, channel 4 comes from the clean
            # estimate of a first pass without it (no gradient); the others see zeros, as the first step of
            # a sampler does
            use = torch.rand(B, generator=generator).to(x0.device) < self.SELF_COND_P  # (B,)
            with torch.no_grad():
                x0_hat = self.x0_from(self.raw(x_t, tau, x0, mask, state), x_t, tau)  # (B, L)
                day = torch.where(use[:, None], self.day_channel(x0_hat, state, x0, mask), 0.0)
        pred = self.raw(x_t, tau, x0, mask, state, day)  # (B, L)
        if self.prediction == "eps":
            target = noise  # eq. (1)
        else:
            a, s = self._alpha_sigma(tau, x0)
            target = a * noise - s * x0  # eq. (2): v
        target_w = 1.0 - mask  # (B, L) weight 1 on days to generate
        return ((pred - target) ** 2 * target_w).sum() / target_w.sum().clamp_min(1.0)
