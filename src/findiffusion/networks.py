"""Noise-prediction networks.

The network knows nothing of noise schedules: it maps an input tensor of
``in_channels`` channels over a window and a continuous time value to one
output channel. :class:`findiffusion.denoiser.Denoiser` decides what goes in
(noisy values, observed context, mask) and what comes out means (epsilon).

:class:`DilatedResNet` is a DiffWave-style stack of gated, dilated residual
convolutions. With kernel 3 and dilations 1, 2, ..., 2^(k-1) its receptive
field is 2^(k+1) - 1 days, so the default six layers (127 days) span the
whole default 64-day window in both directions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class NetworkConfig:
    """Architecture of the noise-prediction network.

    Attributes:
        channels: residual channels.
        dilations: dilation of each gated residual layer (kernel 3).
        time_embed_dim: width of the sinusoidal time embedding.
        in_channels: input channels: 3 = noisy, context, mask; 4 adds the volatility-filter state
            (set by :func:`findiffusion.training.fit` for models with a filter); 5 adds every day's state
            (``TrainConfig.day_state``).
        global_pool: give every layer the window mean of its features as a
            per-channel bias (like the time embedding), so each position sees
            window-wide statistics such as the volatility level at once instead
            of through the dilated stack alone.
    """

    channels: int = 48
    dilations: tuple[int, ...] = (1, 2, 4, 8, 16, 32)
    time_embed_dim: int = 64
    in_channels: int = 3
    global_pool: bool = False

    def receptive_field(self) -> int:
        """Days seen by one output position: 1 + 2 * sum(dilations)."""
        return 1 + 2 * sum(self.dilations)


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Sinusoidal embedding of continuous times. Shape: (B,) -> (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None, :]  # (B, half)
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class _ResidualLayer(nn.Module):
    def __init__(self, channels: int, dilation: int, embed_dim: int, global_pool: bool) -> None:
        super().__init__()
        self.time = nn.Linear(embed_dim, channels)
        self.pool = nn.Linear(channels, channels) if global_pool else None
        self.conv = nn.Conv1d(channels, 2 * channels, 3, padding=dilation, dilation=dilation)
        self.out = nn.Conv1d(channels, 2 * channels, 1)

    def forward(self, h: torch.Tensor, emb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = h + self.time(emb)[:, :, None]  # (B, C, L)
        if self.pool is not None:
            y = y + self.pool(h.mean(dim=-1))[:, :, None]  # window mean -> (B, C, 1) bias
        a, b = self.conv(y).chunk(2, dim=1)  # (B, C, L) each
        y = torch.tanh(a) * torch.sigmoid(b)
        res, skip = self.out(y).chunk(2, dim=1)
        return (h + res) / math.sqrt(2.0), skip


class DilatedResNet(nn.Module):
    """Gated dilated residual network. Shape: x (B, in_channels, L), t (B,) -> (B, 1, L)."""

    def __init__(self, cfg: NetworkConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or NetworkConfig()
        c = cfg.channels
        self.inp = nn.Conv1d(cfg.in_channels, c, 1)
        self.embed = nn.Sequential(
            nn.Linear(cfg.time_embed_dim, 4 * c), nn.SiLU(), nn.Linear(4 * c, 4 * c), nn.SiLU()
        )
        self.layers = nn.ModuleList(_ResidualLayer(c, d, 4 * c, cfg.global_pool) for d in cfg.dilations)
        self.head = nn.Sequential(nn.Conv1d(c, c, 1), nn.SiLU(), nn.Conv1d(c, 1, 1))
        nn.init.zeros_(self.head[-1].weight)
        nn.init.zeros_(self.head[-1].bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        emb = self.embed(timestep_embedding(t, self.cfg.time_embed_dim))  # (B, 4C)
        h = torch.nn.functional.silu(self.inp(x))  # (B, C, L)
        skips = torch.zeros_like(h)
        for layer in self.layers:
            h, s = layer(h, emb)
            skips = skips + s
        return self.head(skips / math.sqrt(len(self.layers)))  # (B, 1, L)
