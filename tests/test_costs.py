"""Execution-cost models: hand-computed values, autograd against finite differences and the closed-form
slippage gradient (eq. C5), finiteness at q = 0, and the no-round-trip-cost property of linear permanent
impact (Huberman & Stanzl 2004)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from findiffusion.costs import (
    AlmgrenChrissCost,
    CallableCost,
    ProportionalCost,
    SqrtImpactCost,
    ZeroCost,
    make_cost,
    slippage_gradient,
    slippage_profile,
)
from findiffusion.errors import InputError

D = torch.float64


def test_hand_computed_values():
    # proportional: 1e-3 * 50 * |-2000| = 100
    assert float(ProportionalCost(1e-3)(torch.tensor(-2000.0, dtype=D), 50.0)) == pytest.approx(100.0, rel=1e-9)
    # square-root law: 0.8 * 0.02 * 50 * 2500 * sqrt(2500 / 1e6) = 0.8 * 0.02 * 50 * 2500 * 0.05 = 100
    c = SqrtImpactCost(y=0.8)(torch.tensor([2500.0, -2500.0], dtype=D), 50.0, sigma=0.02, volume=1e6)
    np.testing.assert_allclose(c.numpy(), [100.0, 100.0], rtol=1e-9)
    # Almgren-Chriss: sigma S / V = 1e-6; buy 1e4 holding 3e4: 0.1 * 1e8 + 0.2 * 1e4 * 3.5e4 = 8e7 -> 80
    #                                      sell 1e4 holding 3e4: 1e7 - 0.2 * 1e4 * 2.5e4 = -4e7 -> -40
    ac = AlmgrenChrissCost(eta=0.1, gamma=0.2)
    c = ac(torch.tensor([1e4, -1e4], dtype=D), 50.0, sigma=0.02, volume=1e6, holding=3e4)
    np.testing.assert_allclose(c.numpy(), [80.0, -40.0], rtol=1e-12)
    assert float(ZeroCost()(torch.tensor(5.0, dtype=D), 50.0)) == 0.0
    assert float(make_cost("zero")(torch.tensor(5.0, dtype=D), 50.0)) == 0.0


def test_spread_adds_on_top():
    q = torch.tensor([400.0, -900.0], dtype=D)
    both = make_cost("sqrt", spread=2e-4, y=0.5)(q, 20.0, sigma=0.01, volume=1e5)
    ref = 2e-4 * 20 * q.abs() + 0.5 * 0.01 * 20 * q.abs() * torch.sqrt(q.abs() / 1e5)
    np.testing.assert_allclose(both.numpy(), ref.numpy(), rtol=1e-6)
    assert make_cost("proportional").describe() == "proportional c=0.0005"


def _closed_form_gradient(name, q, s, sig, v, h):
    if name == "proportional":
        return 7e-4 * s * np.sign(q)
    if name == "sqrt":
        return 1.5 * 0.9 * sig * s * np.sqrt(np.abs(q) / v) * np.sign(q)
    return (2 * 0.15 * q + 0.3 * (h + q)) * sig * s / v  # eq. (C5), Almgren-Chriss


@pytest.mark.parametrize("name,model", [("proportional", ProportionalCost(7e-4)), ("sqrt", SqrtImpactCost(0.9)),
                                        ("almgren-chriss", AlmgrenChrissCost(0.15, 0.3))])
def test_slippage_gradient_matches_finite_differences_and_closed_form(name, model):
    q = np.array([-5e4, -300.0, -2.0, 3.0, 700.0, 2e5])
    s = np.array([80.0, 95.0, 100.0, 101.0, 120.0, 60.0])
    sig, v, h = 0.015, 1e6, 1e4
    g = slippage_gradient(model, q, s, sigma=sig, volume=v, holding=h)
    step = 1e-4 * np.maximum(np.abs(q), 1.0)

    def c(x):
        return model(torch.as_tensor(x, dtype=D), torch.as_tensor(s, dtype=D), sigma=sig, volume=v, holding=h).numpy()

    fd = (c(q + step) - c(q - step)) / (2 * step)
    np.testing.assert_allclose(g, fd, rtol=1e-6)
    np.testing.assert_allclose(g, _closed_form_gradient(name, q, s, sig, v, h), rtol=1e-5)


@pytest.mark.parametrize("model", [ProportionalCost(), SqrtImpactCost(), AlmgrenChrissCost(), ZeroCost()])
def test_gradient_finite_and_continuous_at_zero(model):
    q = torch.tensor([-1e-6, 0.0, 1e-6], dtype=D, requires_grad=True)
    c = model(q, 100.0, sigma=0.01, volume=1e6, holding=0.0)
    (g,) = torch.autograd.grad(c.sum(), q, allow_unused=True) if c.requires_grad else (torch.zeros(3, dtype=D),)
    g = torch.zeros(3, dtype=D) if g is None else g
    assert torch.isfinite(g).all()
    assert float(c[1].detach()) == 0.0  # no cost for no trade
    assert abs(float(g[1])) < 1e-12  # smooth |q|: zero slope at zero (|q| itself has none)
    # second derivative exists too (the learned policy differentiates through it): no NaN anywhere
    q2 = torch.tensor([0.0, 1e-3, 50.0], dtype=D, requires_grad=True)
    c2 = model(q2, 100.0, sigma=0.01, volume=1e6)
    if c2.requires_grad:
        (g2,) = torch.autograd.grad(c2.sum(), q2, create_graph=True)
        if g2.requires_grad:
            (h2,) = torch.autograd.grad(g2.sum(), q2, allow_unused=True)
            assert h2 is None or torch.isfinite(h2).all()


def test_smoothing_is_negligible_away_from_zero():
    # default smoothing eps = 1e-9 V = 1e-3 shares: relative error eps/|q|
    q = torch.tensor([10.0, 1000.0], dtype=D)
    c = ProportionalCost(1e-3)(q, 100.0, volume=1e6)
    np.testing.assert_allclose(c.numpy(), 0.1 * q.numpy(), rtol=2e-4)


def test_almgren_chriss_permanent_impact_round_trip_costs_nothing():
    # At a constant price, the permanent part telescopes: sum_k q_k (h_{k-1} + q_k / 2) = (h_end^2 - h_0^2) / 2 = 0
    rng = np.random.default_rng(3)
    q = rng.normal(0, 5e3, 50)
    q = np.append(q, -q.sum())  # back to flat
    h = np.concatenate([[0.0], np.cumsum(q)[:-1]])
    perm = AlmgrenChrissCost(eta=0.0, gamma=0.3)(torch.as_tensor(q), 100.0, sigma=0.02, volume=1e6,
                                                  holding=torch.as_tensor(h))
    temp = AlmgrenChrissCost(eta=0.2, gamma=0.0)(torch.as_tensor(q), 100.0, sigma=0.02, volume=1e6)
    assert abs(float(perm.sum())) < 1e-9 * float(temp.sum())
    assert float(temp.sum()) == pytest.approx(0.2 * 0.02 * 100 / 1e6 * float((q**2).sum()), rel=1e-12)


def test_callable_cost_and_errors():
    quad = CallableCost(lambda q, s, sig, v, h: 0.5 * s * q**2 / v, label="quadratic")
    g = slippage_gradient(quad, [100.0, -40.0], 10.0, volume=1e3)
    np.testing.assert_allclose(g, [10.0 * 100 / 1e3, -10.0 * 40 / 1e3], rtol=1e-12)
    with pytest.raises(InputError, match="torch.Tensor"):
        CallableCost(lambda q, s, sig, v, h: np.abs(q.numpy()))(torch.ones(2, dtype=D), 1.0)
    with pytest.raises(InputError, match="unknown cost model"):
        make_cost("linear")
    with pytest.raises(InputError, match=">= 0"):
        SqrtImpactCost(y=-1.0)
    total = ProportionalCost(1e-3) + quad
    assert float(total(torch.tensor(10.0, dtype=D), 10.0, volume=1e3)) == pytest.approx(0.1 + 0.5, rel=1e-12)


def test_slippage_profile_sqrt_law():
    prof = slippage_profile(SqrtImpactCost(1.0), spot=100.0, sigma=0.01, volume=1e6, fractions=(1e-4, 1e-2))
    # cost = sigma S q sqrt(q/V): 1e-2 * 100 * 100 * 1e-2 = 1;  1e-2 * 100 * 1e4 * 0.1 = 1000
    np.testing.assert_allclose(prof.cost, [1.0, 1000.0], rtol=1e-6)
    np.testing.assert_allclose(prof.gradient, [1.5 * 1e-2, 1.5 * 0.1], rtol=1e-6)  # 3/2 sigma sqrt(q/V) S
    assert "dC/dq" in prof.summary()
