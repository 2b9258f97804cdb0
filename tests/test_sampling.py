"""Every sampler must pass the same test: with the optimal denoiser for N(mu, Sigma) data
it reproduces mu and Sigma within Monte Carlo error."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from findiffusion.errors import InputError
from findiffusion.sampling import get_sampler, sample_ddim, sigma_grid, timestep_subsequence
from findiffusion.schedules import NoiseSchedule, ScheduleConfig

from .conftest import GaussianOptimalEps, ar1_covariance

N = 20_000

# Steps are chosen so that discretisation error is below Monte Carlo error
# (test_discretisation_error_shrinks shows the few-step error itself).
CASES = [
    ("ddpm", {"steps": None}, "linear"),
    ("ddpm", {"steps": None}, "cosine"),
    ("ddim", {"steps": 1000}, "linear"),
    ("ddim", {"steps": 1000}, "cosine"),
    ("ddim", {"steps": 1000, "eta": 0.5}, "linear"),
    ("sde", {"steps": 1000}, "linear"),
    ("ode", {"steps": 80}, "linear"),
    ("ode", {"steps": 100}, "cosine"),
    ("dpm", {"steps": 80}, "linear"),
    ("dpm", {"steps": 100}, "cosine"),
    ("dpm-sde", {"steps": 200}, "linear"),
    ("dpm-sde", {"steps": 200, "eta": 0.5}, "cosine"),
]


@pytest.mark.parametrize("name,kwargs,kind", CASES)
def test_sampler_reproduces_gaussian(name, kwargs, kind, gaussian_problem):
    mu, sigma = gaussian_problem
    sched = NoiseSchedule(ScheduleConfig(kind=kind))
    eps_fn = GaussianOptimalEps(mu, sigma, sched)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(N, len(mu), generator=gen, dtype=torch.float64)
    out = get_sampler(name)(eps_fn, x, sched, generator=gen, **kwargs).numpy()
    m = out.mean(0)
    c = np.cov(out.T)
    sd = np.sqrt(np.diag(sigma))
    # mean: 5 standard errors; covariance: var(S_ij) = (S_ij^2 + S_ii S_jj)/N
    assert np.all(np.abs(m - mu) < 5 * sd / np.sqrt(N) + 0.01), (m - mu)
    se_c = np.sqrt((sigma**2 + np.outer(np.diag(sigma), np.diag(sigma))) / N)
    assert np.all(np.abs(c - sigma) < 5 * se_c + 0.01), np.abs(c - sigma).max()
    # the strong AR(1) correlation itself is reproduced
    corr = c[0, 1] / np.sqrt(c[0, 0] * c[1, 1])
    assert abs(corr - 0.9) < 0.02


def test_wrong_denoiser_fails_the_same_test(gaussian_problem):
    """The oracle test can fail: a denoiser for the wrong covariance gives the wrong Sigma."""
    mu, sigma = gaussian_problem
    sched = NoiseSchedule()
    wrong = GaussianOptimalEps(mu, sigma * 2.0, sched)
    x = torch.randn(4000, len(mu), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    out = sample_ddim(wrong, x, sched, steps=20).numpy()
    assert np.abs(np.cov(out.T) - sigma).max() > 0.3


@pytest.mark.parametrize("name", ["ddpm", "ddim", "sde", "ode", "dpm", "dpm-sde"])
def test_same_generator_same_samples(name, gaussian_problem):
    mu, sigma = gaussian_problem
    sched = NoiseSchedule()
    eps_fn = GaussianOptimalEps(mu, sigma, sched)
    fn = get_sampler(name)
    steps = {"ddpm": 50, "ddim": 10, "sde": 20, "ode": 5, "dpm": 10, "dpm-sde": 10}[name]
    outs = []
    for _ in range(2):
        g = torch.Generator().manual_seed(7)
        x = torch.randn(64, len(mu), generator=g, dtype=torch.float64)
        kw = {"eta": 0.5} if name == "ddim" else {}
        outs.append(fn(eps_fn, x, sched, steps=steps, generator=g, **kw))
    assert torch.equal(outs[0], outs[1])


def test_timestep_subsequence_and_grid():
    ts = timestep_subsequence(1000, 10)
    assert ts[0] == 1000 and ts[-1] == 1 and len(ts) == 10 and ts == sorted(ts, reverse=True)
    with pytest.raises(InputError):
        timestep_subsequence(1000, 0)
    with pytest.raises(InputError):
        timestep_subsequence(1000, 1001)
    sched = NoiseSchedule()
    g = sigma_grid(sched, 8)
    assert len(g) == 9 and g[-1] == 0.0 and all(a > b for a, b in zip(g, g[1:], strict=False))
    assert np.isclose(g[0], float(sched.sigma_bar(1000))) and np.isclose(g[-2], float(sched.sigma_bar(1)))


def test_unknown_sampler():
    with pytest.raises(InputError, match="unknown sampler"):
        get_sampler("euler")


@pytest.mark.parametrize("name,few,many", [("ode", 10, 80), ("ddim", 20, 500), ("dpm", 20, 160)])
def test_discretisation_error_shrinks(name, few, many):
    """Deterministic samplers map x_T to x_0 = x_T * sqrt(lam / var(x_T)) exactly in the limit."""
    lam = 0.3
    sched = NoiseSchedule()
    eps_fn = GaussianOptimalEps(np.zeros(1), np.array([[lam]]), sched)
    x = torch.tensor([[2.0]], dtype=torch.float64)
    ab = float(sched.alpha_bars[-1])
    exact = 2.0 * np.sqrt(lam / (1 - ab + ab * lam))
    err = [abs(float(get_sampler(name)(eps_fn, x, sched, steps=s)[0, 0]) / exact - 1) for s in (few, many)]
    assert err[1] < err[0] / 3
    assert err[1] < 0.01


@pytest.mark.parametrize("lam", [0.1, 1.0, 3.0])
def test_dpm_beats_heun_at_equal_cost(lam):
    """DPM-Solver++(2M) with 2k evaluations is closer to the exact flow map than Heun with k steps (2k - 1)."""
    sched = NoiseSchedule()
    eps_fn = GaussianOptimalEps(np.zeros(1), np.array([[lam]]), sched)
    x = torch.tensor([[2.0]], dtype=torch.float64)
    ab = float(sched.alpha_bars[-1])
    exact = 2.0 * np.sqrt(lam / (1 - ab + ab * lam))
    for k in (10, 20):
        e_dpm = abs(float(get_sampler("dpm")(eps_fn, x, sched, steps=2 * k)[0, 0]) / exact - 1)
        e_ode = abs(float(get_sampler("ode")(eps_fn, x, sched, steps=k)[0, 0]) / exact - 1)
        assert e_dpm < e_ode / 2, (k, e_dpm, e_ode)


def test_dpm_sde_noise_scale(gaussian_problem):
    """eta = 0 draws no noise (it is the dpm ODE solver, eq. (6)); eta > 0 does, and the result depends on it."""
    mu, sigma = gaussian_problem
    sched = NoiseSchedule()
    eps_fn = GaussianOptimalEps(mu, sigma, sched)
    x = torch.randn(256, len(mu), generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    g = torch.Generator().manual_seed(4)
    before = g.get_state().clone()
    ode = get_sampler("dpm-sde")(eps_fn, x, sched, steps=15, eta=0.0, generator=g)
    assert torch.equal(g.get_state(), before)
    assert torch.equal(ode, get_sampler("dpm")(eps_fn, x, sched, steps=15))
    sde = get_sampler("dpm-sde")(eps_fn, x, sched, steps=15, eta=1.0, generator=g)
    assert not torch.equal(g.get_state(), before) and (sde - ode).abs().max() > 0.1
    with pytest.raises(InputError, match="eta"):
        get_sampler("dpm-sde")(eps_fn, x, sched, steps=5, eta=-1.0)


def test_grid_range_and_its_checks():
    sched = NoiseSchedule()
    g = sigma_grid(sched, 10, sigma_max=10.0, sigma_min=0.05)
    assert len(g) == 11 and np.isclose(g[0], 10.0) and np.isclose(g[-2], 0.05) and g[-1] == 0.0
    assert np.isclose(sigma_grid(sched, 4, sigma_max=1e6)[0], float(sched.sigma_bar(1000)))  # capped at the chain
    assert np.isclose(sigma_grid(sched, 4, sigma_min=1e-9)[-2], float(sched.sigma_bar(1)))
    with pytest.raises(InputError, match="sigma_min < sigma_max"):
        sigma_grid(sched, 4, sigma_max=0.05, sigma_min=0.1)


@pytest.mark.parametrize("name,steps", [("ode", 40), ("dpm", 60), ("sde", 600), ("dpm-sde", 150)])
def test_late_start_is_exact_for_standard_data(name, steps):
    """Started at sigma_bar = 10 from N(0, I) (eq. 8), every sigma-grid sampler reproduces data of mean 0
    and covariance close to I within Monte Carlo error (the model space of a filter model)."""
    dim = 8
    sigma = ar1_covariance(dim, 0.1)
    sched = NoiseSchedule()
    eps_fn = GaussianOptimalEps(np.zeros(dim), sigma, sched)
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(N, dim, generator=gen, dtype=torch.float64)
    out = get_sampler(name)(eps_fn, x, sched, steps=steps, generator=gen, sigma_max=10.0, sigma_min=0.05).numpy()
    se_c = np.sqrt((sigma**2 + np.outer(np.diag(sigma), np.diag(sigma))) / N)
    assert np.all(np.abs(out.mean(0)) < 5 / np.sqrt(N))
    assert np.all(np.abs(np.cov(out.T) - sigma) < 5 * se_c + 0.005), np.abs(np.cov(out.T) - sigma).max()


@pytest.mark.parametrize("lam", [0.2, 4.0])
def test_late_start_bias_follows_eq_8(lam):
    """For data of variance lam the late start is off by (1 + s^2)/(lam + s^2) in variance, and the flow
    carries that factor to the samples: the deterministic map is x -> x sqrt(lam (1 + s^2) / (lam + s^2))."""
    sched = NoiseSchedule()
    eps_fn = GaussianOptimalEps(np.zeros(1), np.array([[lam]]), sched)
    x = torch.tensor([[1.5]], dtype=torch.float64)
    s = 10.0
    out = float(get_sampler("dpm")(eps_fn, x, sched, steps=200, sigma_max=s, sigma_min=0.05)[0, 0])
    tweedie = lam / (lam + 0.05**2)  # the last step returns E[x0 | x at sigma_min]: shrink by lam / (lam + s_min^2)
    expected = 1.5 * np.sqrt(lam * (1 + s * s) / (lam + s * s)) * np.sqrt(tweedie)
    assert abs(out / expected - 1) < 2e-3, (out, expected)
    unbiased = 1.5 * np.sqrt(lam) * np.sqrt(tweedie)  # what a start at sigma_bar(T) gives
    assert abs(out / unbiased - 1) > (0.01 if lam == 4.0 else 0.0)  # the bias is real, and measured
