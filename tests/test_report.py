"""The realism report: scoring, files (HTML with embedded PNGs, Markdown), the build protocol and the CLI."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

import findiffusion
from findiffusion import cli
from findiffusion import stylized_facts as sf
from findiffusion.data import make_windows
from findiffusion.errors import InputError
from findiffusion.networks import NetworkConfig
from findiffusion.report import REAL, build_report, evaluate, split_returns
from findiffusion.training import FitConfig, TrainConfig

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def garch_like(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    s2, out = 1e-4, np.empty(n)
    for t, z in enumerate(rng.standard_normal(n)):
        out[t] = np.sqrt(s2) * z
        s2 = 5e-6 + 0.1 * out[t] ** 2 + 0.85 * s2
    return out


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    torch.set_num_threads(1)
    returns, info = findiffusion.load_series("sp500", end="2004-12-31")
    cfg = FitConfig(network=NetworkConfig(channels=16), train=TrainConfig(steps=150, batch_size=64, window=32),
                    stitch_context=16, calibration_windows=4000)
    d = tmp_path_factory.mktemp("model")
    findiffusion.fit(returns, cfg, out_dir=d, data_info=info)
    return d


def test_evaluate_puts_the_resampled_real_windows_score_in_the_real_column():
    series = garch_like(3000, 2)
    real = make_windows(series, 32)
    rng = np.random.default_rng(3)
    loud = 2.5 * rng.standard_normal((300, 32)) * series.std()
    rep = evaluate(real, {"loud": loud}, None, disc_seeds=(1,), memorization=False)
    floor = sf.discriminative_floor(real, 300, seeds=(1,))
    assert rep.values[REAL]["disc"] == pytest.approx(floor.mean)
    assert rep.values[REAL]["disc_acc"] == pytest.approx(floor.accuracy)
    assert rep.values["loud"]["disc"] > 0.3 and rep.values["loud"]["disc_acc"] > 0.8  # told apart, not mistaken
    acc_row = next(r for r in rep.rows() if r[0] == "classifier accuracy")
    assert acc_row[1] == f"{floor.accuracy:.3f}"


def test_evaluate_scores_a_copy_as_perfect_and_iid_noise_as_unclustered(tmp_path):
    series = garch_like(5000, 0)
    real, held = make_windows(series[:4000], 32), make_windows(series[4000:], 32)
    rng = np.random.default_rng(1)
    copy = real[rng.choice(len(real), 600, replace=False)]
    iid = rng.standard_normal((600, 32)) * series.std()
    rep = evaluate(real, {"copy": copy, "iid": iid}, held, disc_seeds=(1,), discriminator=False)
    v = rep.values
    assert v["copy"]["memorization"] < 0.01  # copies sit on training windows
    assert v["iid"]["memorization"] > 0.8
    assert v["copy"]["w1_1"] < 0.05
    assert v[REAL]["acf_abs_1"] > 0.1
    assert v["iid"]["acf_abs_rmse"] > 3 * v["copy"]["acf_abs_rmse"]  # iid noise has no volatility clustering
    assert abs(v["iid"]["kurtosis"]) < 0.3 < v[REAL]["kurtosis"]
    text = rep.summary()
    assert "copy" in text and "iid" in text and "memorization ratio" in text
    assert "disc" not in v[REAL]  # discriminator=False: no floor either
    mem_row = next(r for r in rep.rows() if r[0] == "memorization ratio")
    assert mem_row[2].endswith("MISS")  # the target applies to the first generator: a copier fails it

    files = rep.write(tmp_path / "rep")
    html = files["html"].read_text()
    imgs = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", html)
    assert len(imgs) == 6  # self-contained: every plot embedded
    import base64

    assert all(base64.b64decode(b)[:8] == PNG_MAGIC for b in imgs)
    md = files["md"].read_text()
    for name in ("density", "acf", "leverage", "kurtosis_horizon", "paths", "fan"):
        assert f"({name}.png)" in md
        assert (tmp_path / "rep" / f"{name}.png").read_bytes()[:8] == PNG_MAGIC


def test_split_returns_uses_the_models_training_range(tiny_model_dir):
    model = findiffusion.load(tiny_model_dir)
    returns, _ = findiffusion.load_series("sp500", end="2006-12-31")
    train, rest, desc = split_returns(returns, model)
    assert len(train) == model.data_info.n_returns
    assert len(train) + len(rest) == len(returns)
    assert "training range" in desc
    tr2, rest2, _ = split_returns(returns, model, train_fraction=0.5)
    assert len(tr2) == round(0.5 * len(returns))
    with pytest.raises(InputError, match="not a date"):
        split_returns(returns, model, train_end="yesterday-ish")


def test_build_report_scores_model_and_baselines(tiny_model_dir):
    model = findiffusion.load(tiny_model_dir)
    returns, _ = findiffusion.load_series("sp500", end="2006-12-31")
    rep = build_report(model, returns, n=120, length=32, seed=0, steps=8, disc_seeds=())
    assert rep.names == ["findiffusion", "GARCH(1,1)-t", "block bootstrap (20)"]
    for name in rep.names:
        assert rep.windows[name].shape == (120, 32)
        for key in ("w1_1", "w1_20", "kurtosis", "hill", "var99", "acf_abs_rmse", "lev_rmse", "memorization"):
            assert np.isfinite(rep.values[name][key]), (name, key)
    assert rep.values[REAL]["var99"] > 0
    with pytest.raises(InputError, match="length"):
        build_report(model, returns, n=120, length=16)


def test_cli_report_writes_files(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "report"
    rc = cli.main(["report", "--model", str(tiny_model_dir), "--end", "2006-12-31", "--n", "100", "--length", "32",
                   "--steps", "8", "--disc-seeds", "1", "--out", str(out), "--quiet"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "discriminative score" in printed and "GARCH(1,1)-t" in printed
    assert (out / "report.html").stat().st_size > 10_000
    assert (out / "report.md").exists() and (out / "fan.png").exists()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--length", "10"], "--length must be more than 20"),
        (["--train-end", "not-a-date"], "not a date"),
        (["--sampler", "magic"], "unknown sampler"),
    ],
)
def test_cli_report_bad_input_is_one_line_exit_2(tiny_model_dir, tmp_path, capsys, extra, message):
    rc = cli.main(["report", "--model", str(tiny_model_dir), "--n", "50", "--no-disc", "--quiet",
                   "--out", str(tmp_path / "r"), *extra])
    err = capsys.readouterr().err
    assert rc == 2
    assert message in err and err.count("\n") == 1


def test_cli_report_missing_model_is_exit_2(tmp_path, capsys):
    rc = cli.main(["report", "--model", str(tmp_path / "nope"), "--out", str(tmp_path / "r")])
    assert rc == 2
    assert "does not exist" in capsys.readouterr().err
