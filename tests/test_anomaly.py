"""Anomaly scores: exact checks with the optimal denoiser of i.i.d. Gaussian data, and the baselines."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from findiffusion import anomaly as A
from findiffusion.cli import main
from findiffusion.data import ReturnTransform
from findiffusion.denoiser import Denoiser
from findiffusion.errors import InputError
from findiffusion.model import DiffusionModel
from findiffusion.schedules import NoiseSchedule, ScheduleConfig
from findiffusion.training import FitConfig, TrainConfig


class IIDGaussianOptimalNet(nn.Module):
    r"""The optimal noise predictor for i.i.d. N(0, 1) data in model space.

    For x_0 ~ N(0, 1) per day, x_t = a x_0 + s eps with a^2 + s^2 = 1 gives
    E[eps | x_t] = s x_t on every day to generate, whatever is observed (days are independent).
    """

    def __init__(self, schedule: NoiseSchedule) -> None:
        super().__init__()
        self.schedule = schedule
        self.dummy = nn.Parameter(torch.zeros(()))  # the denoiser reads the dtype from a parameter

    def forward(self, inp: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        tau = t.double() * self.schedule.T / 1000.0  # undo Denoiser._time_input
        ab = self.schedule.alpha_bar(tau).to(inp.dtype)[:, None]  # (B, 1)
        return ((1 - ab).sqrt() * inp[:, 0])[:, None, :]  # (B, 1, L)


def iid_gaussian_model(scale: float = 0.01, window: int = 32) -> DiffusionModel:
    """A DiffusionModel whose returns are exactly i.i.d. N(0, scale^2)."""
    sch = NoiseSchedule(ScheduleConfig(n_steps=200))
    cfg = FitConfig(schedule=sch.cfg, train=TrainConfig(window=window, transform="standard", vol_filter="none"),
                    stitch_context=16)
    tr = ReturnTransform(kind="standard", loc=0.0, scale=scale)
    return DiffusionModel(cfg, Denoiser(IIDGaussianOptimalNet(sch), sch), tr)


def untrained_model(window: int = 32) -> DiffusionModel:
    """A real (loadable) model with random weights: for CLI wiring, not for its scores."""
    from findiffusion.networks import NetworkConfig
    from findiffusion.training import build_denoiser

    cfg = FitConfig(network=NetworkConfig(channels=8, dilations=(1, 2)), train=TrainConfig(window=window, vol_filter="none"),
                    stitch_context=16)
    return DiffusionModel(cfg, build_denoiser(cfg), ReturnTransform(kind="standard", scale=0.01))


@pytest.fixture(scope="module")
def shocked():
    rng = np.random.default_rng(3)
    r = rng.standard_normal(300) * 0.01
    days = np.array([20, 75, 150, 151 + 60, 290])  # includes days near both ends
    r[days] = 0.08 * np.array([1, -1, 1, -1, 1])  # 8 sigma
    idx = pd.bdate_range("2020-01-01", periods=len(r))
    return pd.Series(r, index=idx), days


@pytest.mark.parametrize("method", ["impute", "impute+block", "denoise", "denoise+block", "causal"])
def test_planted_8_sigma_shocks_are_the_top_scored_days(shocked, method):
    r, days = shocked
    kw = {"n_samples": 16, "steps": 5} if not method.startswith("denoise") else {"n_levels": 12, "n_noise": 2}
    s = A.score_anomalies(iid_gaussian_model(), r, method, **kw)
    assert not np.isnan(s.score).any()
    top = np.argsort(-s.score)[: len(days)]
    assert set(top) == set(days)


def test_block_denoising_score_is_the_block_average_of_the_gaussian_log_likelihood():
    # exact i.i.d. N(0, 1) model: the loss of eq. (3) at a day is -log p(u_t) + c = u_t^2 / 2 + c
    # (slope a little under 1 from the truncated log-SNR range). A day's 5-day block score averages
    # the per-day loss of the 5 blocks holding it: u^2 / 2 under the triangular weights (5 - |k|) / 25.
    rng = np.random.default_rng(3)
    r = rng.standard_normal(400) * 0.01
    u, m = r / 0.01, iid_gaussian_model()
    day = A.denoising_scores(m, r, n_levels=16, n_noise=8, seed=1).score
    blk = A.denoising_scores(m, r, n_levels=16, n_noise=8, block=5, stride=3, seed=1).score
    assert not np.isnan(blk).any()
    slope_day = np.polyfit(u**2 / 2, day, 1)[0]
    tri = np.convolve(u**2 / 2, np.r_[1:6, 4:0:-1] / 25, mode="same")[4:-4]  # away from the ends
    slope_blk, corr = np.polyfit(tri, blk[4:-4], 1)[0], np.corrcoef(tri, blk[4:-4])[0, 1]
    assert 0.85 < slope_day < 1.02
    assert corr > 0.97 and slope_blk == pytest.approx(slope_day, rel=0.05)


def test_imputation_z_is_the_standardised_value_for_iid_data(shocked):
    # imputations are N(0, 1) draws in model space, so z = (u - mean_K) / sd_K ~ u / 1
    # (the ODE sampler keeps the spread: few DDIM steps shrink it)
    r, days = shocked
    s = A.imputation_scores(iid_gaussian_model(), r, n_samples=64, steps=10, sampler="ode", seed=1)
    u = r.to_numpy() / 0.01
    keep = np.setdiff1d(np.arange(len(u)), days)
    assert np.corrcoef(s.extra["z"][keep], u[keep])[0, 1] > 0.97
    assert abs(np.median(np.abs(s.extra["z"][keep]) / np.abs(u[keep])) - 1) < 0.1
    # the empirical two-sided tail probability of an 8-sigma day is the smallest possible
    assert np.allclose(s.extra["tail_prob"][days], 1 / 65)


@pytest.mark.parametrize("n,block,stride,offset", [(300, 1, 8, 0), (301, 5, 3, 0), (64, 1, 4, 0), (100, 3, 2, 0),
                                                   (301, 5, 3, 2), (100, 3, 2, 1)])
def test_window_plan_masks_every_day_once_with_context_on_both_sides(n, block, stride, offset):
    L = 32
    starts, rows = A.window_plan(n, L, block, stride, offset)
    count = np.zeros(n, int)
    for w, pos in rows:
        count[starts[w] + pos] += 1
        assert pos.min() >= 0 and pos.max() < L
        blocks = np.unique((starts[w] + pos - offset) // block)  # the days before offset: block -1
        assert np.all(np.diff(blocks) >= stride)  # masked blocks are stride blocks apart
        for p in pos:
            d = starts[w] + p
            if L // 4 <= d < n - L // 4:  # away from the ends: a quarter window of context each side
                assert min(p, L - 1 - p) >= L // 4 - block
    assert np.all(count == 1)


def test_window_plan_rejects_a_series_shorter_than_the_window():
    with pytest.raises(InputError, match="at least the model window"):
        A.window_plan(20, 32)


@pytest.mark.parametrize("kind", A.KINDS)
def test_plant_anomalies(kind):
    rng = np.random.default_rng(0)
    r = rng.standard_normal(1000) * 0.01
    x, lab = A.plant_anomalies(r, kind, 6, seed=2, length=10)
    span = {"shock": 1, "vol_burst": 5}.get(kind, 10)
    assert lab.sum() == 6 * span
    assert np.array_equal(x[lab == 0], r[lab == 0])  # nothing else touched
    on = lab == 1
    if kind == "shock":
        starts = np.flatnonzero(on)
        k = np.abs(x[starts]) / np.array([r[s - 60: s].std() for s in starts])
        assert np.all((k >= 4) & (k <= 8))
    elif kind == "vol_burst":
        f = x[on] / r[on]
        assert np.all((f >= 3) & (f <= 5))
    elif kind == "sign_flip":
        assert np.array_equal(x[on], -r[on])
    else:
        assert np.isin(x[on], r).all() and not np.array_equal(x[on], r[on])


def test_rolling_zscore_matches_a_loop():
    rng = np.random.default_rng(1)
    r = rng.standard_normal(120)
    z = A.rolling_zscore(r, window=20)
    for t in (25, 60, 119):
        past = r[t - 20: t]
        assert z[t] == pytest.approx(abs(r[t] - past.mean()) / past.std(ddof=1))


def test_garch_residuals_recover_the_true_innovations():
    from arch import arch_model

    sim = arch_model(None, mean="Zero", vol="GARCH", p=1, q=1, dist="t")
    data = sim.simulate([0.02, 0.08, 0.9, 8.0], 2500, burn=500)  # omega, alpha, beta, nu
    y = data["data"].to_numpy() / 100
    true_z = (data["data"] / data["volatility"]).to_numpy()
    z = A.garch_scores(y[1500:], fit_returns=y[:1500])
    assert np.corrcoef(z, np.abs(true_z[1500:]))[0, 1] > 0.97


def test_isolation_forest_finds_shocks(shocked):
    r, days = shocked
    s = A.isolation_forest_scores(r, seed=0)
    assert set(np.argsort(-s)[:5]) == set(days)


def test_auroc_auprc_textbook_values():
    # scikit-learn's documented example: AUROC 0.75, average precision 0.8333
    auc, ap = A.auroc_auprc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1]))
    assert auc == pytest.approx(0.75) and ap == pytest.approx(0.83333, abs=1e-4)
    assert A.auroc_auprc(np.array([3.0, 2.0, 1.0]), np.array([1, 0, 0])) == (1.0, 1.0)


# ---- CLI -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def cli_files(tmp_path_factory, shocked):
    d = tmp_path_factory.mktemp("anom")
    untrained_model().save(d / "model")  # a real, loadable model directory
    r, _ = shocked
    prices = 100 * np.exp(np.concatenate([[0.0], np.cumsum(r.to_numpy())]))
    dates = pd.bdate_range("2019-12-31", periods=len(prices))
    pd.DataFrame({"date": dates, "close": prices}).to_csv(d / "prices.csv", index=False)
    return d


def test_cli_anomalies_writes_scores_and_plot(cli_files, capsys, shocked, monkeypatch):
    import findiffusion.commands.anomalies as cmd

    d = cli_files
    _, days = shocked
    monkeypatch.setattr(cmd, "load_model", lambda args: iid_gaussian_model())  # exact scores, not random ones
    rc = main(["anomalies", "--model", str(d / "model"), "--data", str(d / "prices.csv"), "--top", "5",
               "--method", "impute", "--samples", "8", "--steps", "4", "--out", str(d / "out"), "--quiet"])
    assert rc == 0
    f = pd.read_csv(d / "out" / "anomaly_scores.csv")
    assert len(f) == 300 and {"date", "log_return", "score", "rank", "z", "tail_prob"} <= set(f.columns)
    assert set(f.sort_values("rank").index[:5]) == set(days)
    assert (d / "out" / "anomalies.png").stat().st_size > 1000
    assert "top 5" in capsys.readouterr().out


def test_cli_anomalies_default_is_denoise_plus_block(cli_files, shocked, monkeypatch):
    import findiffusion.commands.anomalies as cmd

    d = cli_files
    _, days = shocked
    monkeypatch.setattr(cmd, "load_model", lambda args: iid_gaussian_model())
    rc = main(["anomalies", "--model", str(d / "model"), "--data", str(d / "prices.csv"), "--top", "5",
               "--out", str(d / "out-db"), "--quiet"])
    assert rc == 0
    f = pd.read_csv(d / "out-db" / "anomaly_scores.csv")
    assert {"denoise_day", "denoise_block5"} <= set(f.columns)
    assert np.allclose(f["score"], np.fmax(f["denoise_day"], f["denoise_block5"]), rtol=1e-5)
    assert set(f.sort_values("rank").index[:5]) == set(days)


@pytest.mark.parametrize("extra,msg", [
    (["--data", "missing.csv"], "does not exist"),
    (["--data", "prices.csv", "--end", "2020-01-20"], "at least the model window"),
])
def test_cli_anomalies_bad_input(cli_files, capsys, extra, msg, monkeypatch):
    monkeypatch.chdir(cli_files)
    rc = main(["anomalies", "--model", "model", *extra, "--out", "o2", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and msg in err and err.count("\n") == 1


def test_planted_shocks_on_a_model_with_a_volatility_filter():
    """Exact model of GARCH-type returns (i.i.d. N(0, 1) residuals through the filter): shocks of 8 sigma_t,
    planted in residual space, are the top days for the two-sided and the one-sided score."""
    from findiffusion.volatility import VolatilityFilter

    model = iid_gaussian_model(scale=1.0)
    model.vol_filter = VolatilityFilter(alpha=0.05, beta=0.93, winsor=4.0, mean=2e-4, var=1e-4,
                                        start_quantiles=(5e-5, 1e-4, 4e-4))
    z = np.random.default_rng(5).standard_normal(300)
    days = np.array([30, 120, 200, 270])
    z[days] = 8.0 * np.array([-1, 1, -1, 1])
    r = pd.Series(model.vol_filter.unfilter(z), index=pd.bdate_range("2020-01-01", periods=300))
    for method in ("impute", "causal"):
        s = A.score_anomalies(model, r, method, n_samples=16, steps=5)
        assert set(np.argsort(-s.score)[: len(days)]) == set(days), method
    # the predicted mean return is back in return units: m + sigma_t * (mean of the imputed residuals)
    s = A.imputation_scores(model, r, n_samples=16, steps=5)
    assert np.nanmax(np.abs(s.extra["pred_mean_return"] - 2e-4)) < 0.02
