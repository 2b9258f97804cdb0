"""The noise-prediction network: shapes, receptive field, and the window-wide pooling path."""

from __future__ import annotations

import torch

from findiffusion.networks import DilatedResNet, NetworkConfig


def _dependence(cfg: NetworkConfig, L: int, pos: int) -> torch.Tensor:
    """|d out[pos] / d in[:, j]| summed over input channels, for every j. Shape: (L,)."""
    torch.manual_seed(0)
    net = DilatedResNet(cfg)
    torch.nn.init.normal_(net.head[-1].weight)  # the zero-initialised head would hide every path
    x = torch.randn(1, cfg.in_channels, L, requires_grad=True)
    out = net(x, torch.tensor([10.0]))
    assert out.shape == (1, 1, L)
    out[0, 0, pos].backward()
    return x.grad.abs().sum(dim=(0, 1))


def test_zero_initialised_head():
    net = DilatedResNet(NetworkConfig(channels=8, dilations=(1, 2)))
    assert torch.count_nonzero(net(torch.randn(3, 3, 16), torch.ones(3))) == 0


def test_receptive_field_without_pooling():
    cfg = NetworkConfig(channels=8, dilations=(1, 2, 4), global_pool=False)
    rf = cfg.receptive_field()  # 15 days: 7 each side
    g = _dependence(cfg, 40, 20)
    half = (rf - 1) // 2
    assert (g[20 - half: 20 + half + 1] > 0).all()
    assert torch.count_nonzero(g[: 20 - half]) == 0 and torch.count_nonzero(g[20 + half + 1:]) == 0


def test_global_pooling_reaches_the_whole_window():
    cfg = NetworkConfig(channels=8, dilations=(1, 2, 4), global_pool=True)
    g = _dependence(cfg, 40, 20)
    assert (g > 0).all()  # days far outside the 15-day receptive field now matter
