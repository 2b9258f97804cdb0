r"""Option pricing: Black–Scholes closed forms (more to come: Monte Carlo on generated paths).

Black–Scholes with continuous rate r, volatility \sigma, time to expiry \tau (years):

(1) d_1 = \frac{\ln(S/K) + (r + \sigma^2/2)\tau}{\sigma\sqrt\tau},  d_2 = d_1 - \sigma\sqrt\tau
(2) C = S N(d_1) - K e^{-r\tau} N(d_2),  P = K e^{-r\tau} N(-d_2) - S N(-d_1)
(3) \Delta_C = N(d_1),  \Delta_P = N(d_1) - 1

The functions accept NumPy arrays or torch tensors (differentiable) and broadcast.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch


def _ncdf(x: Any) -> Any:
    if isinstance(x, torch.Tensor):
        return 0.5 * (1 + torch.erf(x / math.sqrt(2.0)))
    from scipy.special import ndtr

    return ndtr(x)


def _log(x: Any) -> Any:
    return torch.log(x) if isinstance(x, torch.Tensor) else np.log(x)


def _exp(x: Any) -> Any:
    return torch.exp(x) if isinstance(x, torch.Tensor) else np.exp(x)


def _d1_d2(spot: Any, strike: Any, tau: Any, rate: float, sigma: Any) -> tuple[Any, Any]:
    vol = sigma * (tau**0.5)
    d1 = (_log(spot / strike) + (rate + 0.5 * sigma**2) * tau) / vol  # eq. (1)
    return d1, d1 - vol


def black_scholes_price(spot: Any, strike: Any, tau: Any, rate: float, sigma: Any, option: str = "call") -> Any:
    """Black–Scholes price, eq. (2). ``tau`` in years (> 0); ``option`` 'call' or 'put'."""
    d1, d2 = _d1_d2(spot, strike, tau, rate, sigma)
    disc = strike * _exp(-rate * tau)
    if option == "call":
        return spot * _ncdf(d1) - disc * _ncdf(d2)
    if option == "put":
        return disc * _ncdf(-d2) - spot * _ncdf(-d1)
    raise ValueError(f"option must be 'call' or 'put', got {option!r}")


def black_scholes_delta(spot: Any, strike: Any, tau: Any, rate: float, sigma: Any, option: str = "call") -> Any:
    """Black–Scholes delta, eq. (3)."""
    d1, _ = _d1_d2(spot, strike, tau, rate, sigma)
    if option == "call":
        return _ncdf(d1)
    if option == "put":
        return _ncdf(d1) - 1.0
    raise ValueError(f"option must be 'call' or 'put', got {option!r}")
