"""Shared fixtures: the analytically optimal denoiser for Gaussian data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from findiffusion.schedules import NoiseSchedule

# tiny models in tests run faster on one thread, and do not fight over cores
torch.set_num_threads(1)


def ar1_covariance(dim: int, rho: float, sd: float = 1.0) -> np.ndarray:
    """Stationary AR(1) covariance: sd^2 rho^|i-j|."""
    i = np.arange(dim)
    return sd**2 * rho ** np.abs(i[:, None] - i[None, :])


class GaussianOptimalEps:
    r"""E[eps | x_t] for data x_0 ~ N(mu, Sigma): the best possible noise predictor.

    With x_t = a x_0 + s eps (a = sqrt(abar), s = sqrt(1 - abar)),
    E[eps | x_t] = s (a^2 Sigma + s^2 I)^{-1} (x_t - a mu).
    """

    def __init__(self, mu: np.ndarray, sigma: np.ndarray, schedule: NoiseSchedule) -> None:
        self.mu = torch.as_tensor(mu, dtype=torch.float64)
        lam, vec = np.linalg.eigh(sigma)
        self.lam = torch.as_tensor(lam, dtype=torch.float64)
        self.vec = torch.as_tensor(vec, dtype=torch.float64)
        self.schedule = schedule

    def __call__(self, x: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
        ab = self.schedule.alpha_bar(tau).to(torch.float64)[:, None]  # (B, 1)
        a, s = ab.sqrt(), (1 - ab).sqrt()
        y = (x.double() - a * self.mu) @ self.vec  # eigen-coordinates, (B, D)
        y = y * s / (a**2 * self.lam + s**2)
        return (y @ self.vec.T).to(x.dtype)


@pytest.fixture
def gaussian_problem():
    dim = 12
    mu = np.linspace(-1.0, 1.0, dim)
    sigma = ar1_covariance(dim, rho=0.9, sd=0.7)
    return mu, sigma


def tiny_config(steps: int = 150, seed: int = 0, window: int = 32, channels: int = 16):
    """A model small enough to train in seconds on a CPU."""
    from findiffusion.networks import NetworkConfig
    from findiffusion.training import FitConfig, TrainConfig

    return FitConfig(
        network=NetworkConfig(channels=channels, dilations=(1, 2, 4, 8), time_embed_dim=32),
        train=TrainConfig(window=window, steps=steps, batch_size=64, checkpoint_every=max(1, steps // 2)),
        stitch_context=window // 2,
        seed=seed,
        calibration_windows=4000,  # tests need the calibration, not its precision (the fit default is 20000)
    )


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """A tiny model fitted on the first 1500 S&P 500 returns, saved to disk."""
    from findiffusion import fit, load_series

    r, info = load_series("sp500")
    out = tmp_path_factory.mktemp("tiny_model")
    model = fit(r.iloc[:1500], tiny_config(steps=60), out_dir=out, data_info=info, device="cpu")
    return model, out
