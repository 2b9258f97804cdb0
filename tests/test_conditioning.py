"""Training masks: the mixture shares, prefix shapes and the stitching-context share."""

from __future__ import annotations

import pytest
import torch

from findiffusion.conditioning import MaskConfig, prefix_mask, random_masks


def _kinds(m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(is unconditional, is a prefix) per row. Shape: (B, L) -> (B,), (B,)."""
    n_obs = m.sum(1)
    first_zero = (m == 0).float().argmax(1)  # index of the first unobserved day
    is_prefix = (n_obs > 0) & (n_obs == first_zero)  # observed days are exactly days 0..k-1
    return n_obs == 0, is_prefix


def test_mixture_shares_and_stitch_prefix():
    cfg = MaskConfig(p_unconditional=0.3, p_prefix=0.5, p_scattered=0.2, prefix_at_stitch=0.6)
    B, L, c = 40_000, 24, 7
    m = random_masks(B, L, cfg, torch.Generator().manual_seed(0), stitch_context=c)
    assert m.shape == (B, L) and set(m.unique().tolist()) <= {0.0, 1.0}
    uncond, prefix = _kinds(m)
    se = 3 * (0.25 / B) ** 0.5 + 0.01  # binomial error (3 sd) + the scattered masks that look like prefixes
    assert abs(uncond.float().mean() - 0.3) < se
    assert abs(prefix.float().mean() - 0.5) < se + 0.01
    at_c = prefix & (m.sum(1) == c)
    # a share prefix_at_stitch of prefix masks has length exactly c, plus 1/(L-1) of the uniform ones
    expect = 0.5 * (0.6 + 0.4 / (L - 1))
    assert abs(at_c.float().mean() - expect) < se
    assert (m.sum(1) < L).all()  # at least one day to generate in every window


def test_default_stitch_context_is_half_window():
    cfg = MaskConfig(p_unconditional=0.0, p_prefix=1.0, p_scattered=0.0, prefix_at_stitch=1.0)
    m = random_masks(100, 10, cfg, torch.Generator().manual_seed(1))
    assert torch.equal(m, prefix_mask(100, 10, 5))


@pytest.mark.parametrize("kw", [dict(p_unconditional=0.5, p_prefix=0.5, p_scattered=0.5),
                                dict(p_unconditional=-0.1, p_prefix=0.9, p_scattered=0.2),
                                dict(prefix_at_stitch=1.5)])
def test_bad_mask_config(kw):
    with pytest.raises(ValueError):
        MaskConfig(**kw)


def test_bad_stitch_context():
    with pytest.raises(ValueError, match="stitch_context"):
        random_masks(4, 8, MaskConfig(), stitch_context=8)
