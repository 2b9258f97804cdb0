"""The calibration by start state and day range (eq. (7), findiffusion.startstate): its targets against brute-force
loops over every training window, for the residuals' E z^2 and the returns' E r^2, and c fitted to the returns'
moment on an oracle network that is too wide after calm starts."""

from __future__ import annotations

import json

import numpy as np
import pytest

from findiffusion import load
from findiffusion.calibration import decoding_filter
from findiffusion.errors import InputError, ModelFileError
from findiffusion.startstate import START_QUANTILES, START_QUANTILES_R2, StartTargets, start_targets
from tests.test_calibration import _calm_wide_model, _with_alpha
from tests.test_model import _filter_model


def _garch_returns(n: int = 3000, seed: int = 4) -> np.ndarray:
    """GARCH(1,1) with t(5) shocks: clustering, so the start groups differ. Shape: (n,)."""
    rng, r, v = np.random.default_rng(seed), [], 1e-4
    for _ in range(n):
        x = np.sqrt(v) * rng.standard_t(5) / np.sqrt(5 / 3)
        r.append(x)
        v = 1e-6 + 0.1 * x ** 2 + 0.88 * v
    return np.asarray(r)


@pytest.mark.parametrize("moment", ["z2", "r2"])
def test_start_targets_are_the_training_windows_moment_by_start_group_and_day_range(tmp_path, moment):
    """start_targets (eq. (7)) by cumulative sums = a brute-force loop over every window of a GARCH series (each
    window filtered from its own start variance, grouped by it): E z^2 of the residuals, or E r^2 of the returns with
    the moment "r2" (and its extra top-1 % group); a filter whose variance does not move has one group; too short a
    series and an unknown moment are refused."""
    model = _filter_model(tmp_path)
    f, L = model.vol_filter, model.window
    r = _garch_returns()
    t = start_targets(model, r, moment)
    _, s2 = f.filter(r)
    v0 = s2[: len(r) - L + 1] / f.var
    np.testing.assert_allclose(t.edges, np.quantile(v0, START_QUANTILES if moment == "z2" else START_QUANTILES_R2))
    assert t.cuts == (5, 21) and t.shape == (6 if moment == "z2" else 7, 3)  # 32-day windows: days 1-5, 6-21, 22-32
    assert t.moment == moment
    sums, counts = np.zeros(t.shape), np.zeros(t.shape)
    for s in range(len(r) - L + 1):
        z, _ = f.filter(r[s:s + L], s2[s])  # the window's residuals from its own start variance
        x = z if moment == "z2" else r[s:s + L]
        j = np.sum(v0[s] >= np.asarray(t.edges))
        for i, (a, b) in enumerate([(0, 5), (5, 21), (21, L)]):
            sums[j, i] += np.sum(x[a:b] ** 2)
            counts[j, i] += b - a
    np.testing.assert_allclose(t.z2, sums / counts, rtol=1e-9)
    spread = np.asarray(t.z2)[:, 0]
    assert spread.max() / spread.min() > (1.1 if moment == "z2" else 3.0)  # the returns' width follows the start
    flat = _with_alpha(model, 0.0)
    assert start_targets(flat, r, moment).shape == (1, 3)  # constant variance: every start in one group
    with pytest.raises(InputError, match="two windows"):
        start_targets(model, r[: 2 * L - 1], moment)
    with pytest.raises(InputError, match="z2, r2"):
        start_targets(model, r, "r3")


def test_start_targets_round_trip_and_refuse_bad_input():
    """to_dict / from_dict keep the moment; a dict written before the moment was stored reads as E z^2; an unknown
    moment or malformed lists are one InputError."""
    t = StartTargets((0.5, 2.0), (5, 21), ((1.0, 1.1, 1.2), (0.9, 1.0, 1.0), (1.3, 1.2, 1.1)), "r2")
    assert StartTargets.from_dict(json.loads(json.dumps(t.to_dict()))) == t
    old = {k: v for k, v in t.to_dict().items() if k != "moment"}
    assert StartTargets.from_dict(old).moment == "z2"
    for bad in ({**t.to_dict(), "moment": "z3"}, {**t.to_dict(), "z2": [[1.0]]}, {"edges": [1.0]}, [1, 2], None):
        with pytest.raises(InputError, match="start targets|moment"):
            StartTargets.from_dict(bad)


def test_calibration_by_start_matches_the_returns_e_r2_and_keeps_m(tmp_path):
    """An oracle network 1.4 times too wide on days 1-5 after calm starts: calibrate(by_start=True,
    start_moment="r2") makes the decoded *returns* have the training E r^2 in every start group and day range up to
    the one level k sets (without it the calm groups' first days are far off), k, fitted last, keeping the training
    reaction moment M of eq. (4) exactly on the calibration windows and to sampling error on fresh ones; with
    by_leverage c is fitted after a_g and still matches. The factors and the moment survive save/load; a bad moment or
    targets of the other moment without returns are refused."""
    import torch

    model = _calm_wide_model(tmp_path)
    L, f = model.window, model.vol_filter
    r = np.random.default_rng(0).normal(0, 0.01, 300)  # the series it was fitted on (its M; E r^2 flat by start)

    def r2_table(model, seed: int = 11) -> tuple[np.ndarray, float]:  # E r^2 of draws by start group, range; M
        gen = torch.Generator().manual_seed(seed)  # seed 1: the calibration's own windows
        var0 = model.start_variance(3000, gen)
        u = model.sample_model_space(3000, L, var=var0, sampler="ddim", steps=10, generator=gen)
        x = model.decode_generated(u, var0, sampler="ddim", steps=10)
        t = model.start_targets
        grp, rng = t.group(var0 / f.var), t.day_range(L)
        table = np.array([[np.mean(x[grp == j][:, rng == i] ** 2) for i in range(t.shape[1])]
                          for j in range(t.shape[0])])
        fd = decoding_filter(model)  # M as k is fitted to it: through the first window's filter (a_g with leverage)
        return table, fd.reaction_moment(*fd.filter(x, var0))

    model.calibrate(3000, seed=1, sampler="ddim", steps=10, returns=r, start_moment="r2")  # targets stored, no c
    assert model.start_factors is None and model.start_targets.moment == "r2" and model.start_targets.shape == (7, 3)
    target = np.asarray(model.start_targets.z2)
    off, _ = r2_table(model)
    assert np.max(np.abs(off / target - 1)) > 0.3  # the calm groups' first days, uncalibrated by start
    for leverage in (False, True):
        model.calibrate(3000, seed=1, sampler="ddim", steps=10, by_start=True, start_moment="r2", returns=r,
                        by_leverage=leverage)
        on, m = r2_table(model, seed=1)  # c fitted to these to the fixed point, then k: one step for all cells
        level = np.mean(on / target)  # the training M and the training E r^2 need not agree exactly (here 3-4 %)
        np.testing.assert_allclose(on, level * target, rtol=0.015)
        assert abs(level - 1) < 0.06 and m == pytest.approx(f.reaction, rel=1e-6)  # k last: M exactly on them
        fresh, m = r2_table(model)  # fresh draws: to sampling error (2-4 % a cell in the 20 % groups)
        np.testing.assert_allclose(fresh[:4], level * target[:4], rtol=0.1)
        assert np.mean(np.abs(fresh / on - 1)) < 0.05 and m == pytest.approx(f.reaction, rel=0.03)
        assert (model.leverage_asym is not None) == leverage
    c = np.asarray(model.start_factors)
    assert np.all(c[:2, 0] < 0.85)  # narrowed where the oracle was wide
    model.save(tmp_path / "c")
    back = load(tmp_path / "c")
    assert back.start_factors == model.start_factors and back.start_targets == model.start_targets
    assert back.start_targets.moment == "r2"
    meta = json.loads((tmp_path / "c" / "model.json").read_text())
    (tmp_path / "c" / "model.json").write_text(json.dumps({**meta, "start_targets": {**meta["start_targets"],
                                                                                      "moment": "r4"}}))
    with pytest.raises(ModelFileError, match="moment"):
        load(tmp_path / "c")
    with pytest.raises(InputError, match="start_moment"):
        model.calibrate(100, seed=1, sampler="ddim", steps=10, by_start=True, start_moment="r4")
    with pytest.raises(InputError, match="of r2, not z2"):  # the held targets are of E r^2: returns needed for z2
        model.calibrate(100, seed=1, sampler="ddim", steps=10, by_start=True)


def test_fit_can_calibrate_by_start_on_the_returns_moment(tmp_path, capsys):
    """FitConfig.calibrate_start_moment="r2": the fit stores E r^2 targets computed from its own series (what
    start_targets(model, r, "r2") gives) and fits c to them as calibrate(by_start=True, start_moment="r2") does on the
    same windows; the moment survives save/load; an unknown moment is refused, and so is the CLI flag without
    --calibrate-by-start (one line, exit 2)."""
    import dataclasses

    import findiffusion as fd
    from findiffusion.cli import main
    from tests.conftest import tiny_config

    cfg = tiny_config(steps=5)
    cfg = dataclasses.replace(cfg, calibration_windows=500, calibrate_by_start=True, calibrate_start_moment="r2",
                              train=dataclasses.replace(cfg.train, vol_filter="garch", vol_fit_alpha=False))
    r = np.random.default_rng(0).normal(0, 0.01, 400)
    model = fd.fit(r, cfg, out_dir=tmp_path / "m")
    assert model.start_targets == start_targets(model, r, "r2") and model.start_factors is not None
    ref = load(tmp_path / "m")
    assert ref.start_targets.moment == "r2" and ref.config.calibrate_start_moment == "r2"
    ref.calibrate(500, seed=cfg.seed, by_start=True, start_moment="r2")
    assert ref.start_factors == model.start_factors
    with pytest.raises(InputError, match="calibrate_start_moment"):
        dataclasses.replace(cfg, calibrate_start_moment="r3")
    code = main(["fit", "--data", "sp500", "--out", str(tmp_path / "x"), "--calibrate-start-moment", "r2"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "--calibrate-by-start" in err and len(err.splitlines()) == 1
