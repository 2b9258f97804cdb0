"""Observation masks for conditional (CSDI-style) training and sampling.

A mask has the window's shape; 1 marks an *observed* day (context), 0 a day
to generate. One model trained on a mixture of masks serves

* unconditional generation (no day observed),
* continuation / forecasting (a prefix observed),
* imputation and anomaly scoring (scattered days observed).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class MaskConfig:
    """Mixture of training masks.

    Attributes:
        p_unconditional: share of windows with nothing observed.
        p_prefix: share with an observed prefix (continuation, forecasting).
        p_scattered: share with days observed independently at a random rate in (0, 1).
            The three shares must add up to 1.
        prefix_at_stitch: fraction of the prefix masks whose length is exactly the
            stitching context (the task long paths, forecasts and backtests ask of
            the model); the others have a length uniform in [1, L-1].
    """

    p_unconditional: float = 0.4
    p_prefix: float = 0.45
    p_scattered: float = 0.15
    prefix_at_stitch: float = 0.5

    def __post_init__(self) -> None:
        ps = (self.p_unconditional, self.p_prefix, self.p_scattered)
        if min(ps) < 0 or abs(sum(ps) - 1.0) > 1e-6:
            raise ValueError(f"mask shares must be >= 0 and add up to 1, got {ps}")
        if not 0.0 <= self.prefix_at_stitch <= 1.0:
            raise ValueError(f"prefix_at_stitch must be in [0, 1], got {self.prefix_at_stitch}")


def prefix_mask(batch: int, length: int, n_observed: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Mask observing the first ``n_observed`` days. Shape: (batch, length)."""
    m = torch.zeros(batch, length, device=device)
    m[:, :n_observed] = 1.0
    return m


def random_masks(
    batch: int,
    length: int,
    cfg: MaskConfig,
    generator: torch.Generator | None = None,
    stitch_context: int | None = None,
) -> torch.Tensor:
    """Draw a batch of training masks from the mixture in ``cfg``. Shape: (batch, length).

    ``stitch_context`` (default ``length // 2``) is the prefix length that a share
    ``cfg.prefix_at_stitch`` of the prefix masks observe exactly.
    """
    c = length // 2 if stitch_context is None else int(stitch_context)
    if not 1 <= c < length:
        raise ValueError(f"stitch_context must be in [1, {length - 1}], got {c}")
    kind = torch.rand(batch, generator=generator)  # (B,)
    # prefix of length k: exactly c with probability prefix_at_stitch, else uniform in [1, L-1]
    k = torch.randint(1, length, (batch,), generator=generator)  # (B,)
    at_c = torch.rand(batch, generator=generator) < cfg.prefix_at_stitch  # (B,)
    k = torch.where(at_c, torch.full_like(k, c), k)
    pos = torch.arange(length)[None, :]  # (1, L)
    prefix = (pos < k[:, None]).float()  # (B, L)
    rate = torch.rand(batch, 1, generator=generator)  # (B, 1)
    scattered = (torch.rand(batch, length, generator=generator) < rate).float()  # (B, L)
    # never observe every day: keep at least one target
    full = scattered.sum(1) == length
    if full.any():
        j = torch.randint(0, length, (int(full.sum()),), generator=generator)
        scattered[full.nonzero(as_tuple=True)[0], j] = 0.0
    c1 = cfg.p_unconditional
    c2 = c1 + cfg.p_prefix
    is_prefix = ((kind >= c1) & (kind < c2)).float()[:, None]
    is_scat = (kind >= c2).float()[:, None]
    return is_prefix * prefix + is_scat * scattered
