"""The forward process: one-step recursion vs closed form, schedules, continuous extension."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from findiffusion.config import from_json, to_json
from findiffusion.schedules import NoiseSchedule, ScheduleConfig, make_betas


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_recursion_moments_equal_closed_form(kind):
    """Exact moment propagation of x_t = sqrt(1-b) x_{t-1} + sqrt(b) eps gives sqrt(abar) and 1 - abar."""
    s = NoiseSchedule(ScheduleConfig(kind=kind))
    coef, var = 1.0, 0.0  # x_t = coef * x_0 + noise of variance var
    for t in range(1, s.T + 1):
        b = float(s.betas[t - 1])
        coef, var = math.sqrt(1 - b) * coef, (1 - b) * var + b
        if t in (1, 10, 250, 500, s.T):
            ab = float(s.alpha_bars[t - 1])
            assert coef == pytest.approx(math.sqrt(ab), rel=1e-9)
            assert var == pytest.approx(1 - ab, rel=1e-9, abs=1e-12)


def test_iterated_steps_match_q_sample_in_distribution():
    """Monte Carlo: iterating forward_step from fixed x_0 gives N(sqrt(abar) x_0, 1 - abar)."""
    s = NoiseSchedule()
    g = torch.Generator().manual_seed(0)
    n = 200_000
    x0 = torch.full((n,), 1.5, dtype=torch.float64)
    x = x0.clone()
    for t in range(1, 301):
        x = s.forward_step(x, t, torch.randn(n, generator=g, dtype=torch.float64))
    ab = float(s.alpha_bars[299])
    assert float(x.mean()) == pytest.approx(math.sqrt(ab) * 1.5, abs=5 * math.sqrt((1 - ab) / n))
    assert float(x.var()) == pytest.approx(1 - ab, rel=5 * math.sqrt(2 / n))
    closed = s.q_sample(x0, torch.full((n,), 300), torch.randn(n, generator=g, dtype=torch.float64))
    assert float(closed.mean()) == pytest.approx(float(x.mean()), abs=0.01)
    assert float(closed.var()) == pytest.approx(float(x.var()), rel=0.02)


def test_linear_and_cosine_betas():
    lin = make_betas(ScheduleConfig(kind="linear", n_steps=100, beta_start=1e-4, beta_end=0.02))
    assert lin[0] == pytest.approx(1e-4) and lin[-1] == pytest.approx(0.02) and np.all(np.diff(lin) > 0)
    cos = ScheduleConfig(kind="cosine", n_steps=1000)
    s = NoiseSchedule(cos)
    # abar_t = f(t)/f(0) with f(t) = cos^2(((t/T)+s)/(1+s) pi/2), away from the clipped end
    t = 500
    f = lambda u: math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    assert float(s.alpha_bars[t - 1]) == pytest.approx(f(t / 1000) / f(0), rel=1e-9)
    assert np.all(make_betas(cos) <= 0.999)


def test_continuous_extension_matches_discrete():
    s = NoiseSchedule()
    for t in (1, 2, 17, 500, 1000):
        assert float(s.alpha_bar(float(t))) == pytest.approx(float(s.alpha_bars[t - 1]), rel=1e-12)
    assert float(s.alpha_bar(0.0)) == 1.0
    # beta(tau) integrates to -log abar
    taus = torch.linspace(0, 1000, 100_001, dtype=torch.float64)
    integral = torch.trapezoid(s.beta_continuous(taus[1:]), taus[1:]) + float(s.beta_continuous(0.5)) * 0
    assert float(integral) == pytest.approx(-float(s.log_alpha_bar(1000.0)), rel=1e-3)
    # sigma_bar and its inverse
    for tau in (0.3, 1.0, 77.7, 999.5):
        assert float(s.tau_from_sigma_bar(s.sigma_bar(tau))) == pytest.approx(tau, abs=1e-6)


def test_config_round_trip_and_validation():
    cfg = ScheduleConfig(kind="cosine", n_steps=500)
    assert from_json(ScheduleConfig, to_json(cfg)) == cfg
    with pytest.raises(ValueError, match="unknown schedule kind"):
        ScheduleConfig(kind="sigmoid")
    with pytest.raises(ValueError, match="unknown key"):
        from_json(ScheduleConfig, '{"kind": "linear", "bogus": 1}')
