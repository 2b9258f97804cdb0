"""The command line: happy paths on tiny configs, and one-line errors with exit code 2 for bad input."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from findiffusion.cli import main
from findiffusion.config import to_json

from .conftest import tiny_config


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _one_line_error(code, err, pattern):
    assert code == 2
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert pattern in lines[0], lines[0]


@pytest.fixture
def prices_csv(tmp_path):
    rng = np.random.default_rng(0)
    p = 50 * np.exp(np.cumsum(rng.normal(0, 0.01, 400)))
    path = tmp_path / "prices.csv"
    pd.DataFrame({"Date": pd.bdate_range("2001-01-01", periods=400), "Adj Close": p, "Volume": 1.0}).to_csv(
        path, index=False
    )
    return path


def test_fit_and_sample_end_to_end(tmp_path, capsys, prices_csv):
    cfg = tmp_path / "cfg.json"
    cfg.write_text(to_json(tiny_config(steps=6)))
    out = tmp_path / "m"
    code, stdout, _ = _run(capsys, "fit", "--data", str(prices_csv), "--column", "Adj Close", "--out", str(out),
                           "--config", str(cfg), "--quiet", "--start", "2001-02-01")
    assert code == 0 and "model saved to" in stdout and "final loss" in stdout and "wall time" in stdout
    meta = json.loads((out / "model.json").read_text())
    assert meta["data"]["column"] == "Adj Close" and meta["data"]["start"] >= "2001-02-01"
    for suffix in ("npy", "parquet", "csv"):
        f = tmp_path / f"paths.{suffix}"
        code, stdout, _ = _run(capsys, "sample", "--model", str(out), "--n", "5", "--length", "70",
                               "--steps", "3", "--out", str(f), "--quiet")
        assert code == 0, stdout
        arr = np.load(f) if suffix == "npy" else (pd.read_parquet(f) if suffix == "parquet" else pd.read_csv(f)).to_numpy()
        assert arr.shape == (5, 70)
    f = tmp_path / "prices.npy"
    assert _run(capsys, "sample", "--model", str(out), "--n", "3", "--length", "10", "--steps", "2", "--prices",
                "--s0", "100", "--out", str(f), "--quiet")[0] == 0
    p = np.load(f)
    assert p.shape == (3, 11) and np.all(p[:, 0] == 100) and np.all(p > 0)
    # --vol-filter garch: a model of filtered returns, and forecasts from it continue the history
    fm = tmp_path / "mf"
    code, stdout, _ = _run(capsys, "fit", "--data", str(prices_csv), "--column", "Adj Close", "--out", str(fm),
                           "--config", str(cfg), "--quiet", "--vol-filter", "garch")
    meta = json.loads((fm / "model.json").read_text())
    assert code == 0 and meta["vol_filter"]["kind"] == "garch" and meta["calibrated_for"] == ["dpm", 10]
    assert f"residual scale {meta['residual_scale']:.4f} (dpm 10)" in stdout
    g = meta["state_factors"]  # eq. (5): one factor per volatility-state bin, printed after k (none with alpha = 0)
    assert ("state factors" in stdout) == (g is not None) == (meta["vol_filter"]["alpha"] > 0)
    if g is not None:
        assert len(g) == len(meta["vol_filter"]["state_edges"]) + 1
        assert "state factors " + " / ".join(f"{v:.3f}" for v in g) in stdout
    f = meta["vol_filter"]
    assert f["alpha_max"] == 0.03 and f"filter reaction alpha {f['alpha']:.4f} (fitted, bound 0.03)" in stdout
    # with the reaction kept at 0.03 the variance moves: 400 days give three bins (the 95 % edge has < 50 days above)
    cfg_a = tmp_path / "cfg_a.json"
    cfg_a.write_text(to_json(dataclasses.replace(tiny_config(steps=6), train=dataclasses.replace(
        tiny_config().train, steps=6, vol_fit_alpha=False))))
    code, stdout, _ = _run(capsys, "fit", "--data", str(prices_csv), "--column", "Adj Close", "--out",
                           str(tmp_path / "ma"), "--config", str(cfg_a), "--quiet", "--vol-filter", "garch")
    g = json.loads((tmp_path / "ma" / "model.json").read_text())["state_factors"]
    assert code == 0 and len(g) == 3 and "state factors " + " / ".join(f"{v:.3f}" for v in g) in stdout
    assert "start factors" not in stdout and json.loads((tmp_path / "ma" / "model.json").read_text())["start_targets"]
    # --calibrate-by-start: c of eq. (7) fitted with the calibration, stored and printed
    code, stdout, _ = _run(capsys, "fit", "--data", str(prices_csv), "--column", "Adj Close", "--out",
                           str(tmp_path / "mc"), "--config", str(cfg_a), "--quiet", "--vol-filter", "garch",
                           "--calibrate-by-start")
    c = json.loads((tmp_path / "mc" / "model.json").read_text())["start_factors"]
    assert code == 0 and "start factors " + " ; ".join(" / ".join(f"{v:.3f}" for v in row) for row in c) in stdout
    # --vol-asym: the filter's asymmetry is fitted within the bound, stored and printed; out of [0, 1] is bad input
    code, stdout, _ = _run(capsys, "fit", "--data", str(prices_csv), "--column", "Adj Close", "--out",
                           str(tmp_path / "mg"), "--config", str(cfg), "--quiet", "--vol-asym", "0.5")
    f = json.loads((tmp_path / "mg" / "model.json").read_text())["vol_filter"]
    assert code == 0 and f["asym_max"] == 0.5 and -0.5 <= f["asym"] <= 0.5 and f"asymmetry {f['asym']:+.3f}" in stdout
    code, _, err = _run(capsys, "fit", "--data", str(prices_csv), "--out", str(tmp_path / "bad"), "--vol-asym", "2")
    _one_line_error(code, err, "--vol-asym")
    # --vol-ito: the filter mean gets the Ito term (var_drift 1/2), stored and printed; without it the mean is constant
    code, stdout, _ = _run(capsys, "fit", "--data", str(prices_csv), "--column", "Adj Close", "--out",
                           str(tmp_path / "mi"), "--config", str(cfg), "--quiet", "--vol-ito")
    f = json.loads((tmp_path / "mi" / "model.json").read_text())["vol_filter"]
    assert code == 0 and f["var_drift"] == 0.5 and "- 0.5 sigma^2 (Ito term)" in stdout
    assert json.loads((tmp_path / "mg" / "model.json").read_text())["vol_filter"]["var_drift"] == 0.0
    # --state-oversample: stored in the fit config; outside [0, 1) is bad input
    code, _, _ = _run(capsys, "fit", "--data", str(prices_csv), "--column", "Adj Close", "--out",
                      str(tmp_path / "mo"), "--config", str(cfg), "--quiet", "--state-oversample", "0.5")
    assert code == 0 and json.loads((tmp_path / "mo" / "model.json").read_text())["fit_config"]["train"][
        "state_oversample"] == 0.5
    assert json.loads((tmp_path / "mg" / "model.json").read_text())["fit_config"]["train"]["state_oversample"] == 0.0
    code, _, err = _run(capsys, "fit", "--data", str(prices_csv), "--out", str(tmp_path / "bad"),
                        "--state-oversample", "1")
    _one_line_error(code, err, "--state-oversample")
    code, stdout, _ = _run(capsys, "fit", "--data", str(prices_csv), "--column", "Adj Close", "--out",
                           str(tmp_path / "m0"), "--config", str(cfg), "--quiet", "--calibration-windows", "0")
    meta0 = json.loads((tmp_path / "m0" / "model.json").read_text())
    assert code == 0 and meta0["residual_scale"] == 1.0 and meta0["calibrated_for"] is None
    assert "residual scale" not in stdout
    code, _, err = _run(capsys, "fit", "--data", str(prices_csv), "--out", str(tmp_path / "bad"),
                        "--calibration-windows", "-1")
    _one_line_error(code, err, "calibration-windows")
    code, stdout, _ = _run(capsys, "forecast", "--model", str(fm), "--data", str(prices_csv), "--column", "Adj Close",
                           "--horizon", "5", "--n", "50", "--steps", "2", "--out", str(tmp_path / "fc"), "--quiet")
    assert code == 0, stdout
    # --prediction v is stored with the model and sampled with --sampler dpm
    fv = tmp_path / "mv"
    code, _, _ = _run(capsys, "fit", "--data", str(prices_csv), "--column", "Adj Close", "--out", str(fv),
                      "--config", str(cfg), "--quiet", "--prediction", "v")
    assert code == 0 and json.loads((fv / "model.json").read_text())["fit_config"]["train"]["prediction"] == "v"
    code, stdout, _ = _run(capsys, "sample", "--model", str(fv), "--n", "4", "--sampler", "dpm", "--steps", "4",
                           "--out", str(tmp_path / "v.npy"), "--quiet")
    assert code == 0 and np.load(tmp_path / "v.npy").shape == (4, 32), stdout
    # resume from the finished run's checkpoint is accepted
    code, _, _ = _run(capsys, "fit", "--data", str(prices_csv), "--column", "Adj Close", "--out", str(out),
                      "--config", str(cfg), "--quiet", "--start", "2001-02-01", "--resume")
    assert code == 0


def test_help_everywhere(capsys):
    for argv in (["--help"], ["fit", "--help"], ["sample", "--help"], ["demo", "--help"]):
        assert main(argv) == 0
        assert "usage" in capsys.readouterr().out


def test_fit_bad_inputs(tmp_path, capsys, prices_csv):
    out = str(tmp_path / "m")
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "x.json").write_text("{}")
    cases = [
        (["--data", str(tmp_path / "missing.csv")], "does not exist"),
        (["--data", str(tmp_path / "empty.csv")], "is empty"),
        (["--data", str(tmp_path / "x.json")], "not a CSV or Parquet"),
        (["--data", str(prices_csv)], "several numeric columns"),
        (["--data", str(prices_csv), "--column", "Nope"], "not found"),
        (["--data", "sp500", "--start", "2018-12-01"], "window needs"),
        (["--data", "sp500", "--device", "tpu"], "invalid choice"),
        (["--data", "sp500", "--steps", "-3"], "positive integer"),
        (["--data", "sp500", "--config", str(tmp_path / "nope.json")], "does not exist"),
        (["--data", "sp500", "--config", str(tmp_path / "x.json"), "--resume"], "no checkpoint"),
    ]
    for extra, msg in cases:
        code, _, err = _run(capsys, "fit", "--out", out, "--quiet", *extra)
        _one_line_error(code, err, msg)


def test_sample_bad_inputs(tmp_path, capsys, tiny_model):
    _, model_dir = tiny_model
    good = ["--model", str(model_dir), "--out", str(tmp_path / "o.npy"), "--quiet"]
    cases = [
        (["--n", "0"], "positive number of paths"),
        (["--n", "-5"], "positive number of paths"),
        (["--length", "0"], "positive number of days"),
        (["--sampler", "heun"], "unknown sampler"),
        (["--steps", "0"], "steps must be between"),
        (["--steps", "5000"], "steps must be between"),
        (["--n", "abc"], "expected an integer"),
    ]
    for extra, msg in cases:
        code, _, err = _run(capsys, "sample", *good, *extra)
        _one_line_error(code, err, msg)
    code, _, err = _run(capsys, "sample", "--model", str(model_dir), "--out", str(tmp_path / "o.txt"))
    _one_line_error(code, err, "must end in")
    code, _, err = _run(capsys, "sample", "--model", str(tmp_path / "none"), "--out", str(tmp_path / "o.npy"))
    _one_line_error(code, err, "does not exist")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.json").write_text("garbage")
    code, _, err = _run(capsys, "sample", "--model", str(broken), "--out", str(tmp_path / "o.npy"))
    _one_line_error(code, err, "corrupted")
    assert not (tmp_path / "o.npy").exists()  # nothing half-written


def test_output_dir_refuses_a_file(tmp_path):
    from findiffusion.commands.common import output_dir
    from findiffusion.errors import InputError

    f = tmp_path / "taken.txt"
    f.write_text("x")
    with pytest.raises(InputError, match="is a file; give a directory"):
        output_dir(str(f))
    assert output_dir(str(tmp_path / "new")) == tmp_path / "new"
    assert output_dir(None) is None


def test_calibrate_re_estimates_k_and_g_in_place(tmp_path, capsys):
    """``calibrate`` redraws the calibration windows with the given count and seed, saves the model in place with the
    same network, and gives exactly what DiffusionModel.calibrate gives; bad input is one line, exit 2."""
    import findiffusion as fd

    cfg = dataclasses.replace(tiny_config(steps=5), calibration_windows=200)
    d = tmp_path / "m"
    r, _ = fd.load_series("sp500")
    fd.fit(r.iloc[:1500], cfg).save(d)  # volatility clustering: alpha > 0 and several state bins
    before = json.loads((d / "model.json").read_text())
    assert fd.load(d).calibration_windows == 200 and before["history"]["calibration"] == {"windows": 200, "seed": 0}
    code, out, _ = _run(capsys, "calibrate", "--model", str(d), "--windows", "300", "--seed", "5", "--quiet")
    assert code == 0 and "before: k" in out and "(dpm 10, 200 windows)" in out and "(dpm 10, 300 windows)" in out
    after = json.loads((d / "model.json").read_text())
    assert after["weights"] == before["weights"] and after["history"]["calibration"] == {"windows": 300, "seed": 5}
    assert sorted(p.name for p in d.iterdir()) == ["model.json", before["weights"]]  # no temp files left
    ref = fd.load(d)
    k = ref.calibrate(300, seed=5)
    assert len(ref.state_factors) > 1
    assert after["residual_scale"] == k and after["state_factors"] == list(ref.state_factors)
    assert after["residual_scale"] != before["residual_scale"]  # other windows, another estimate
    code, out, _ = _run(capsys, "calibrate", "--model", str(d), "--windows", "300", "--sampler", "ddim", "--steps", "5",
                        "--quiet")
    assert code == 0 and fd.load(d).calibrated_for == ("ddim", 5)
    # --by-position: a second set of g for the days after stitch_context, as DiffusionModel.calibrate(by_position=True)
    code, out, _ = _run(capsys, "calibrate", "--model", str(d), "--windows", "300", "--seed", "5", "--by-position",
                        "--quiet")
    got, ref = fd.load(d), fd.load(d)
    ref.calibrate(300, seed=5, by_position=True)
    assert code == 0 and got.state_factors_late == ref.state_factors_late is not None
    assert got.state_factors == ref.state_factors and "g_late " in out.splitlines()[1]
    # --by-start: c of eq. (7) from the targets the fit stored; --data recomputes them from the training series
    code, out, _ = _run(capsys, "calibrate", "--model", str(d), "--windows", "300", "--seed", "5", "--by-start",
                        "--quiet")
    got, ref = fd.load(d), fd.load(d)
    ref.calibrate(300, seed=5, by_start=True)
    assert code == 0 and got.start_factors == ref.start_factors is not None and "  c " in out.splitlines()[1]
    _one_line_error(*_run(capsys, "calibrate", "--model", str(d), "--data", "sp500")[::2], "--by-start")
    meta = json.loads((d / "model.json").read_text())
    stored = meta.pop("start_targets")
    del meta["start_factors"]
    (d / "model.json").write_text(json.dumps(meta))  # a model fitted before the targets were stored
    _one_line_error(*_run(capsys, "calibrate", "--model", str(d), "--by-start")[::2], "--data")
    code, out, _ = _run(capsys, "calibrate", "--model", str(d), "--windows", "300", "--seed", "5", "--by-start",
                        "--data", "sp500", "--end", str(r.index[1499].date()), "--quiet")
    assert code == 0 and json.loads((d / "model.json").read_text())["start_targets"] == stored
    assert fd.load(d).start_factors == got.start_factors
    # --start-moment r2: c matches the decoded returns' E r^2, targets from --data; without --by-start, or without
    # --data on a model that holds E z^2 targets, one line
    _one_line_error(*_run(capsys, "calibrate", "--model", str(d), "--start-moment", "r2")[::2], "--by-start")
    _one_line_error(*_run(capsys, "calibrate", "--model", str(d), "--by-start", "--start-moment", "r2")[::2], "--data")
    code, out, _ = _run(capsys, "calibrate", "--model", str(d), "--windows", "300", "--seed", "5", "--by-start",
                        "--start-moment", "r2", "--data", "sp500", "--end", str(r.index[1499].date()), "--quiet")
    got, ref = fd.load(d), fd.load(d)
    ref.calibrate(300, seed=5, by_start=True, start_moment="r2", returns=r.iloc[:1500].to_numpy())
    assert code == 0 and got.start_targets.moment == "r2" and "  c (r2) " in out.splitlines()[1]
    np.testing.assert_allclose(got.start_factors, ref.start_factors, rtol=1e-12)
    # --by-correlation, --by-leverage, --by-stitch: the map of eq. (8), the asymmetries of eqs. (9) and (10), their
    # targets from --data (required); each run replaces the last one's option (the one before comes back None)
    before = "start_factors"
    for flag, shown, attr in (("correlation", "shock map", "shock_map"), ("leverage", " a_g ", "leverage_asym"),
                              ("stitch", " a_s ", "stitch_asym")):
        _one_line_error(*_run(capsys, "calibrate", "--model", str(d), f"--by-{flag}")[::2], "--data")
        code, out, _ = _run(capsys, "calibrate", "--model", str(d), "--windows", "300", "--seed", "5", f"--by-{flag}",
                            "--data", "sp500", "--end", str(r.index[1499].date()), "--quiet")
        got, ref = fd.load(d), fd.load(d)
        ref.calibrate(300, seed=5, returns=r.iloc[:1500].to_numpy(), **{f"by_{flag}": True})
        assert code == 0 and shown in out.splitlines()[1] and getattr(got, before) is None
        assert getattr(got, attr) is not None
        np.testing.assert_allclose(getattr(got, attr), getattr(ref, attr), rtol=1e-12)
        assert got.stitch_scale == pytest.approx(ref.stitch_scale, rel=1e-12)
        before = attr

    _one_line_error(*_run(capsys, "calibrate", "--model", str(d), "--windows", "0")[::2], "--windows")
    _one_line_error(*_run(capsys, "calibrate", "--model", str(d), "--sampler", "warp")[::2], "warp")
    _one_line_error(*_run(capsys, "calibrate", "--model", str(tmp_path / "none"))[::2], "does not exist")
    meta = json.loads((d / "model.json").read_text())
    del meta["history"]["calibration"]  # files written before the record: the fit's count
    (d / "model.json").write_text(json.dumps(meta))
    assert fd.load(d).calibration_windows == 200
    plain = tmp_path / "plain"
    fd.fit(np.random.default_rng(0).normal(0, 0.01, 400), dataclasses.replace(
        cfg, train=dataclasses.replace(cfg.train, vol_filter="none"))).save(plain)
    _one_line_error(*_run(capsys, "calibrate", "--model", str(plain))[::2], "no volatility filter")
    assert fd.load(plain).calibration_windows == 0
