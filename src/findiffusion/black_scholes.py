r"""Black–Scholes closed forms (prices, delta, gamma, vega) and implied volatility.

Black–Scholes with continuous rate r, volatility \sigma, time to expiry \tau (years):

(1) d_1 = \frac{\ln(S/K) + (r + \sigma^2/2)\tau}{\sigma\sqrt\tau},  d_2 = d_1 - \sigma\sqrt\tau
(2) C = S N(d_1) - K e^{-r\tau} N(d_2),  P = K e^{-r\tau} N(-d_2) - S N(-d_1)
(3) \Delta_C = N(d_1),  \Delta_P = N(d_1) - 1,  \Gamma = \frac{\varphi(d_1)}{S\sigma\sqrt\tau},
    \mathcal V = S\varphi(d_1)\sqrt\tau

The closed forms accept NumPy arrays or torch tensors (differentiable) and broadcast. Monte Carlo prices on
generated paths are in :mod:`findiffusion.pricing`, which re-exports these functions.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch


# ---- closed forms --------------------------------------------------------------------------------
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


def black_scholes_gamma(spot: Any, strike: Any, tau: Any, rate: float, sigma: Any) -> Any:
    """Black–Scholes gamma (calls and puts), eq. (3). NumPy."""
    d1, _ = _d1_d2(np.asarray(spot, float), strike, tau, rate, sigma)
    return np.exp(-0.5 * d1**2) / math.sqrt(2 * math.pi) / (spot * sigma * np.sqrt(tau))


def black_scholes_vega(spot: Any, strike: Any, tau: Any, rate: float, sigma: Any) -> Any:
    """Black–Scholes vega per unit of volatility (calls and puts), eq. (3). NumPy."""
    d1, _ = _d1_d2(np.asarray(spot, float), strike, tau, rate, sigma)
    return spot * np.exp(-0.5 * d1**2) / math.sqrt(2 * math.pi) * np.sqrt(tau)


def implied_volatility(price: Any, spot: float, strike: Any, tau: Any, rate: float, option: str = "call",
                       lo: float = 1e-4, hi: float = 5.0, iters: int = 100) -> np.ndarray:
    """Black–Scholes implied volatility by bisection (vectorised; the price is monotone in sigma).

    Prices outside the no-arbitrage bounds (intrinsic value, S or K e^{-r tau}) or not bracketed by
    [lo, hi] give NaN.
    """
    p, k, t = np.broadcast_arrays(np.asarray(price, float), np.asarray(strike, float), np.asarray(tau, float))
    a, b = np.full(p.shape, lo), np.full(p.shape, hi)
    f_lo = black_scholes_price(spot, k, t, rate, a, option) - p
    f_hi = black_scholes_price(spot, k, t, rate, b, option) - p
    ok = np.isfinite(p) & (f_lo <= 0) & (f_hi >= 0)
    for _ in range(iters):
        m = 0.5 * (a + b)
        above = black_scholes_price(spot, k, t, rate, m, option) > p
        b, a = np.where(above, m, b), np.where(above, a, m)
    return np.where(ok, 0.5 * (a + b), np.nan)
