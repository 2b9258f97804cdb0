r"""Execution-cost models for hedge trades, differentiable in torch.

A trade of :math:`q` shares (signed: :math:`q > 0` buys) executed at mid price
:math:`S` by a trader who holds :math:`h` shares before the trade costs, in
currency, relative to trading at the mid price:

(C1) proportional cost (half-spread :math:`c`):
     :math:`C(q) = c\,S\,|q|`
(C2) square-root law of temporary impact (Tóth et al. 2011; Bouchaud et al. 2018, ch. 12):
     :math:`C(q) = Y\,\sigma\,S\,|q|\sqrt{|q|/V}`, with :math:`Y` of order one,
     :math:`\sigma` the daily volatility and :math:`V` the daily volume in shares
(C3) Almgren–Chriss linear impact (Almgren & Chriss 2001; scaled by volatility and
     volume as in Almgren, Thum, Hauptmann & Li 2005): the execution price moves
     by the temporary impact :math:`\eta\,\sigma\,S\,q/V` during the trade and the
     mid price moves permanently by :math:`\gamma\,\sigma\,S\,q/V` and stays there:
     :math:`C(q; h) = \eta\,\sigma\,S\,q^2/V + \gamma\,\sigma\,S\,q\,(h + q/2)/V`.
     The second term is what trade :math:`q` pays because the trader's earlier
     trades (net :math:`h`) have already pushed the price, plus half its own
     permanent impact. Summed over a round trip that starts and ends flat at a
     constant price it telescopes to :math:`\tfrac{\gamma\sigma S}{2V}(h_{end}^2 - h_0^2) = 0`
     (Huberman & Stanzl 2004: linear permanent impact admits no round-trip profit or cost).
(C4) any user callable ``fn(q, spot, sigma, volume, holding) -> tensor``.

Near :math:`q = 0`, :math:`|q|` is replaced by the smooth
:math:`|q|_\epsilon = q^2/\sqrt{q^2 + \epsilon^2}` (:math:`\epsilon` = ``smooth`` x
:math:`V` shares; relative error :math:`\epsilon^2/2q^2`), so the slippage gradient :math:`\partial C / \partial q`
(eq. C5, computed by autograd) stays finite and continuous:

(C5) :math:`\partial C/\partial q = c S \operatorname{sgn} q` (C1);
     :math:`\tfrac32 Y \sigma S \sqrt{|q|/V}\operatorname{sgn} q` (C2);
     :math:`(2\eta q + \gamma (h + q))\,\sigma S/V` (C3).

Every model is elementwise and broadcasts over its inputs; it returns one
cost per trade with the broadcast shape of ``q`` and ``spot``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from findiffusion.errors import InputError

#: default relative smoothing of |q| (x daily volume): 1e-3 shares at V = 1e6
DEFAULT_SMOOTH = 1e-9
#: cost-model names accepted by :func:`make_cost` and the CLI
COST_NAMES = ("zero", "proportional", "sqrt", "almgren-chriss")


def smooth_abs(x: torch.Tensor, eps: float | torch.Tensor) -> torch.Tensor:
    r"""Smooth absolute value :math:`x^2/\sqrt{x^2 + \epsilon^2}`: 0 with slope 0 at 0, relative error
    :math:`\epsilon^2/2x^2` for :math:`|x| \gg \epsilon`, slope bounded by 1.09 in absolute value."""
    x2 = x * x
    return x2 / torch.sqrt(x2 + eps * eps)


def _t(x: Any, like: torch.Tensor) -> torch.Tensor:
    return x if isinstance(x, torch.Tensor) else torch.as_tensor(x, dtype=like.dtype, device=like.device)


class CostModel:
    """Base class: ``model(q, spot, sigma=..., volume=..., holding=...)`` -> cost per trade (currency).

    Args (of the call):
        q: shares traded (signed). Shape: any, broadcast with ``spot``.
        spot: mid price at the trade.
        sigma: daily volatility of returns (e.g. 0.012).
        volume: daily volume V in shares.
        holding: shares held before the trade (only Almgren–Chriss permanent impact uses it).
    """

    name = "cost"

    def cost(self, q: torch.Tensor, spot: torch.Tensor, sigma: Any, volume: Any,
             holding: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, q: Any, spot: Any, *, sigma: Any = 0.01, volume: Any = 1e6,
                 holding: Any = 0.0) -> torch.Tensor:
        q = q if isinstance(q, torch.Tensor) else torch.as_tensor(q, dtype=torch.float64)
        spot, holding = _t(spot, q), _t(holding, q)
        return self.cost(q, spot, _t(sigma, q), _t(volume, q), holding)

    def __add__(self, other: CostModel) -> CostModel:
        return SumCost((self, other))

    def describe(self) -> str:
        """One line naming the model and its parameters."""
        return self.name


@dataclass(frozen=True)
class ZeroCost(CostModel):
    """No execution cost (frictionless)."""

    name = "zero"

    def cost(self, q, spot, sigma, volume, holding):
        return torch.zeros_like(q * spot)


@dataclass(frozen=True)
class ProportionalCost(CostModel):
    """Eq. (C1): ``rate`` x |q| x S (``rate`` = half-spread as a fraction, 5e-4 = 5 bps)."""

    rate: float = 5e-4
    smooth: float = DEFAULT_SMOOTH
    name = "proportional"

    def __post_init__(self) -> None:
        _check_nonneg(rate=self.rate)
        _check_pos(smooth=self.smooth)

    def cost(self, q, spot, sigma, volume, holding):
        return self.rate * spot * smooth_abs(q, self.smooth * volume)

    def describe(self) -> str:
        return f"proportional c={self.rate:g}"


@dataclass(frozen=True)
class SqrtImpactCost(CostModel):
    """Eq. (C2): square-root law, Y sigma S |q| sqrt(|q| / V)."""

    y: float = 1.0
    smooth: float = DEFAULT_SMOOTH
    name = "sqrt"

    def __post_init__(self) -> None:
        _check_nonneg(y=self.y)
        _check_pos(smooth=self.smooth)

    def cost(self, q, spot, sigma, volume, holding):
        a = smooth_abs(q, self.smooth * volume)
        a = a.clamp_min(torch.finfo(a.dtype).tiny)  # finite first and second derivatives at q = 0
        return self.y * sigma * spot * a**1.5 / torch.sqrt(volume)

    def describe(self) -> str:
        return f"sqrt-law Y={self.y:g}"


@dataclass(frozen=True)
class AlmgrenChrissCost(CostModel):
    """Eq. (C3): linear temporary (``eta``) and permanent (``gamma``) impact, scaled by sigma S / V.

    Defaults are the estimates of Almgren, Thum, Hauptmann & Li (2005) for US large caps
    (eta = 0.142, gamma = 0.314), with the temporary exponent set to 1 (linear) as in
    Almgren & Chriss (2001).
    """

    eta: float = 0.142
    gamma: float = 0.314
    name = "almgren-chriss"

    def __post_init__(self) -> None:
        _check_nonneg(eta=self.eta, gamma=self.gamma)

    def cost(self, q, spot, sigma, volume, holding):
        scale = sigma * spot / volume
        return scale * (self.eta * q * q + self.gamma * q * (holding + 0.5 * q))

    def describe(self) -> str:
        return f"Almgren-Chriss eta={self.eta:g} gamma={self.gamma:g}"


@dataclass(frozen=True)
class CallableCost(CostModel):
    """Eq. (C4): a user function ``fn(q, spot, sigma, volume, holding) -> torch.Tensor``.

    The function must use torch operations (so that the slippage gradient and the
    learned policy can differentiate through it) and return one cost per trade.
    """

    fn: Callable[..., torch.Tensor]
    label: str = "custom"
    name = "custom"

    def cost(self, q, spot, sigma, volume, holding):
        out = self.fn(q, spot, sigma, volume, holding)
        if not isinstance(out, torch.Tensor):
            raise InputError(f"custom cost function must return a torch.Tensor (use torch operations), "
                             f"got {type(out).__name__}")
        shape = torch.broadcast_shapes(q.shape, spot.shape)
        if out.shape != shape:
            try:
                out = out.expand(shape)
            except RuntimeError:
                raise InputError(f"custom cost function returned shape {tuple(out.shape)}; "
                                 f"expected one cost per trade, shape {tuple(shape)}") from None
        return out

    def describe(self) -> str:
        return self.label


@dataclass(frozen=True)
class SumCost(CostModel):
    """The sum of several cost models (e.g. spread + square-root impact)."""

    parts: tuple[CostModel, ...] = ()
    name = "sum"

    def cost(self, q, spot, sigma, volume, holding):
        total = torch.zeros_like(q * spot)
        for p in self.parts:
            total = total + p.cost(q, spot, sigma, volume, holding)
        return total

    def describe(self) -> str:
        return " + ".join(p.describe() for p in self.parts)


def _check_nonneg(**kw: float) -> None:
    for k, v in kw.items():
        if not (isinstance(v, int | float) and math.isfinite(v) and v >= 0):
            raise InputError(f"cost parameter {k} must be a finite number >= 0, got {v!r}")


def _check_pos(**kw: float) -> None:
    for k, v in kw.items():
        if not (isinstance(v, int | float) and math.isfinite(v) and v > 0):
            raise InputError(f"cost parameter {k} must be a finite number > 0, got {v!r}")


def make_cost(name: str, *, spread: float | None = None, y: float = 1.0, eta: float = 0.142,
              gamma: float = 0.314) -> CostModel:
    """Cost model by name: ``zero``, ``proportional``, ``sqrt`` or ``almgren-chriss``.

    ``spread`` is the proportional rate of ``proportional`` (default 5e-4); for the
    other models a given ``spread`` adds a proportional term on top.
    """
    if name == "zero":
        base: CostModel = ZeroCost()
    elif name == "proportional":
        return ProportionalCost(5e-4 if spread is None else spread)
    elif name == "sqrt":
        base = SqrtImpactCost(y)
    elif name == "almgren-chriss":
        base = AlmgrenChrissCost(eta, gamma)
    else:
        raise InputError(f"unknown cost model {name!r}; use one of {', '.join(COST_NAMES)}")
    if spread:
        return ProportionalCost(spread) + base
    return base


# ---------------------------------------------------------------------------
# the slippage gradient
# ---------------------------------------------------------------------------
def slippage_gradient(cost: CostModel, q: Any, spot: Any, *, sigma: Any = 0.01, volume: Any = 1e6,
                      holding: Any = 0.0) -> np.ndarray:
    r"""Marginal cost of hedge volume :math:`\partial C/\partial q` (eq. C5) by autograd, per trade.

    Because every cost model is elementwise, the gradient of the summed cost with
    respect to ``q`` is the vector of per-trade derivatives. Shape: that of ``q``
    broadcast with ``spot``.
    """
    qt = torch.as_tensor(np.asarray(q, dtype=float), dtype=torch.float64).clone().requires_grad_(True)
    st = torch.as_tensor(np.asarray(spot, dtype=float), dtype=torch.float64)
    c = cost(qt, st, sigma=sigma, volume=volume, holding=holding)
    g = torch.autograd.grad(c.sum(), qt, allow_unused=True)[0] if c.requires_grad else None
    if g is None:  # a cost that does not depend on q
        g = torch.zeros_like(qt)
    return np.broadcast_to(g.detach().numpy(), c.shape).copy()


@dataclass(frozen=True)
class SlippageProfile:
    """Cost and marginal cost of one trade across sizes (a row per trade size).

    Attributes:
        fractions: trade size as a fraction of daily volume q / V. Shape: (K,)
        shares: q. Shape: (K,)
        cost: C(q) in currency. Shape: (K,)
        gradient: dC/dq in currency per share. Shape: (K,)
        spot, sigma, volume: where it was evaluated.
        model: the cost model's description.
    """

    fractions: np.ndarray
    shares: np.ndarray
    cost: np.ndarray
    gradient: np.ndarray
    spot: float
    sigma: float
    volume: float
    model: str

    def summary(self) -> str:
        lines = [f"slippage gradient, {self.model}  (S={self.spot:g}, daily sigma={self.sigma:.4f}, V={self.volume:g})",
                 f"{'q/V':>9} {'shares':>12} {'cost':>13} {'avg bps':>9} {'dC/dq':>11} {'marg bps':>9}"]
        for f, q, c, g in zip(self.fractions, self.shares, self.cost, self.gradient, strict=True):
            avg = 1e4 * c / (q * self.spot) if q > 0 else 0.0
            lines.append(f"{f:9.2e} {q:12.4g} {c:13.5g} {avg:9.3f} {g:11.5g} {1e4 * g / self.spot:9.3f}")
        return "\n".join(lines)


def slippage_profile(cost: CostModel, *, spot: float, sigma: float, volume: float,
                     fractions: Sequence[float] = (1e-5, 1e-4, 1e-3, 1e-2, 3e-2, 1e-1, 3e-1)) -> SlippageProfile:
    """Evaluate C(q) and dC/dq (autograd) for buys of ``fractions`` x ``volume`` shares, from a flat position."""
    fr = np.asarray(fractions, dtype=float)
    q = fr * volume
    c = cost(torch.as_tensor(q), torch.as_tensor(spot, dtype=torch.float64), sigma=sigma, volume=volume)
    g = slippage_gradient(cost, q, spot, sigma=sigma, volume=volume)
    return SlippageProfile(fr, q, c.detach().numpy(), g, float(spot), float(sigma), float(volume), cost.describe())
