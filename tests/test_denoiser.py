"""The denoiser's two parameterizations: eps and v (Salimans & Ho, 2022)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from findiffusion.denoiser import Denoiser
from findiffusion.networks import DilatedResNet, NetworkConfig
from findiffusion.schedules import NoiseSchedule


class ZeroNet(nn.Module):
    """Outputs F = 0 whatever the input. Shape: (B, 3, L) -> (B, 1, L)."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))

    def forward(self, inp: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.w * inp[:, :1]


def test_v_with_zero_output_is_the_optimal_denoiser_of_unit_gaussian_data():
    """For x0 ~ N(0, I), E[eps | x_t] = sigma_t x_t: the v-parameterization gives it at F = 0, at every t."""
    sch = NoiseSchedule()
    den = Denoiser(ZeroNet(), sch, prediction="v")
    g = torch.Generator().manual_seed(0)
    x = torch.randn(6, 16, generator=g)
    tau = torch.tensor([1.0, 10.0, 100.0, 500.0, 900.0, 1000.0], dtype=torch.float64)
    ab = sch.alpha_bar(tau).float()[:, None]
    assert torch.allclose(den(x, tau), (1 - ab).sqrt() * x, atol=1e-6)
    assert torch.allclose(Denoiser(ZeroNet(), sch, prediction="eps")(x, tau), torch.zeros_like(x))


def test_v_loss_is_eps_loss_plus_x0_loss():
    """|v - F|^2 = |eps - eps_theta|^2 + |x0 - x0_hat|^2 (alpha^2 + sigma^2 = 1), on the days to generate."""
    torch.manual_seed(0)
    sch = NoiseSchedule()
    den = Denoiser(DilatedResNet(NetworkConfig(channels=8, dilations=(1, 2), time_embed_dim=16)), sch, "v")
    x0 = torch.randn(32, 24, generator=torch.Generator().manual_seed(1))
    mask = torch.zeros(32, 24)
    mask[:16, :8] = 1.0  # half the rows observe their first 8 days
    loss = den.loss(x0, mask, torch.Generator().manual_seed(2))
    # redraw the same t and noise as the loss did
    g = torch.Generator().manual_seed(2)
    t = torch.randint(1, sch.T + 1, (32,), generator=g)
    noise = torch.randn(x0.shape, generator=g)
    x_t = sch.q_sample(x0, t, noise)
    tau = t.to(torch.float64)
    with torch.no_grad():
        eps_hat = den(x_t, tau, x0, mask)
        ab = sch.alpha_bar(tau).float()[:, None]
        x0_hat = (x_t - (1 - ab).sqrt() * eps_hat) / ab.sqrt()
    w = 1 - mask
    expected = (((noise - eps_hat) ** 2 + (x0 - x0_hat) ** 2) * w).sum() / w.sum()
    assert float(loss.detach()) == pytest.approx(float(expected), rel=1e-3)


def test_unknown_prediction():
    with pytest.raises(ValueError, match="unknown prediction"):
        Denoiser(ZeroNet(), NoiseSchedule(), prediction="x0")


def test_the_filter_state_channel_is_required_and_used():
    """A 4-channel network sees the filter state as a constant channel; without a state it refuses."""
    torch.manual_seed(0)
    den = Denoiser(DilatedResNet(NetworkConfig(channels=8, dilations=(1, 2), time_embed_dim=16, in_channels=4)),
                   NoiseSchedule())
    assert den.uses_state
    torch.nn.init.normal_(den.network.head[-1].weight)  # the head starts at zero: give the output a say
    x, tau = torch.randn(2, 16), torch.tensor([300.0, 300.0], dtype=torch.float64)
    with pytest.raises(ValueError, match="state"):
        den(x, tau)
    seen = {}
    den.network.register_forward_hook(lambda mod, args, out: seen.update(inp=args[0]))
    den(x, tau, state=torch.tensor([0.5, -1.0]))
    assert seen["inp"].shape == (2, 4, 16)
    assert torch.equal(seen["inp"][:, 3], torch.tensor([[0.5], [-1.0]]).expand(2, 16))
    assert not torch.allclose(den(x, tau, state=torch.zeros(2)), den(x, tau, state=torch.ones(2)))
    three = Denoiser(DilatedResNet(NetworkConfig(channels=8, dilations=(1, 2), time_embed_dim=16)), NoiseSchedule())
    torch.nn.init.normal_(three.network.head[-1].weight)
    assert not three.uses_state and torch.equal(three(x, tau), three(x, tau, state=torch.ones(2)))


def _day_state_denoiser() -> tuple[Denoiser, list]:
    """A 5-channel denoiser whose day-state map records its inputs and returns state0 + cumulative sum of x."""
    torch.manual_seed(0)
    calls: list = []

    def day_state(u: torch.Tensor, state0: torch.Tensor) -> torch.Tensor:
        calls.append(u.clone())
        return state0[:, None] + torch.cumsum(u, dim=-1)

    net = DilatedResNet(NetworkConfig(channels=8, dilations=(1, 2), time_embed_dim=16, in_channels=5))
    torch.nn.init.normal_(net.head[-1].weight)  # the head starts at zero: give the output a say
    return Denoiser(net, NoiseSchedule(), day_state=day_state), calls


def test_the_day_state_channel_self_conditions_on_the_last_clean_estimate():
    """eps_fn's first call sees channel 4 = 0; each later call sees the day states (minus the first day's)
    of the previous call's clean estimate, with observed days taken from the context."""
    den, calls = _day_state_denoiser()
    assert den.uses_state and den.uses_day_state
    with pytest.raises(ValueError, match="day_state"):
        Denoiser(DilatedResNet(NetworkConfig(channels=8, dilations=(1,), in_channels=5)), NoiseSchedule())
    seen = []
    den.network.register_forward_hook(lambda mod, args, out: seen.append(args[0].clone()))
    x, state = torch.randn(2, 16), torch.tensor([0.3, -0.2])
    ctx, mask = torch.full((2, 16), 0.7), (torch.arange(16) < 4).float().expand(2, 16)
    fn = den.eps_fn(ctx, mask, state=state)
    tau1, tau2 = torch.full((2,), 600.0, dtype=torch.float64), torch.full((2,), 400.0, dtype=torch.float64)
    eps1 = fn(x, tau1)
    assert torch.equal(seen[0][:, 4], torch.zeros(2, 16))
    ab = den.schedule.alpha_bar(tau1).float()[:, None]
    x0 = (x - (1 - ab).sqrt() * eps1) / ab.sqrt()
    expect = torch.where(mask > 0, ctx, x0.clamp(-den.CLIP, den.CLIP))
    fn(x, tau2)
    torch.testing.assert_close(calls[-1], expect)
    torch.testing.assert_close(seen[1][:, 4], torch.cumsum(expect, dim=-1))
    assert torch.equal(seen[1][:, 3], state[:, None].expand(2, 16))
    # a fresh callable starts again from zeros
    den.eps_fn(ctx, mask, state=state)(x, tau2)
    assert torch.equal(seen[2][:, 4], torch.zeros(2, 16))


def test_the_day_state_loss_self_conditions_half_the_windows():
    """Training: a gradient-free first pass gives x0_hat; about half the windows see its day states."""
    den, _ = _day_state_denoiser()
    seen = []
    den.network.register_forward_hook(lambda mod, args, out: seen.append(args[0].clone()))
    x0 = torch.randn(400, 16)
    loss = den.loss(x0, torch.zeros(400, 16), torch.Generator().manual_seed(0), state=torch.zeros(400))
    loss.backward()
    assert len(seen) == 2 and torch.equal(seen[0][:, 4], torch.zeros(400, 16))
    used = seen[1][:, 4].abs().sum(dim=1) > 0
    assert 0.4 < used.float().mean() < 0.6
    assert all(p.grad is not None for p in den.parameters())
