"""Model files (findiffusion.modelfile): corrupted and incompatible directories refused with one clear error, and
files written by earlier versions (before a config key existed) loaded with the old meaning."""

from __future__ import annotations

import json

import numpy as np
import pytest

from findiffusion import load
from findiffusion.errors import ModelFileError
from tests.test_model import _fit_tiny_and_read_meta


def test_corrupted_and_incompatible_model_dirs(tiny_model, tmp_path):
    model, _ = tiny_model
    d = tmp_path / "m"
    model.save(d)
    # a complete save leaves exactly one weights file and the JSON
    assert sorted(p.name for p in d.iterdir() if not p.name.startswith(".")) == sorted(
        ["model.json", json.loads((d / "model.json").read_text())["weights"]]
    )
    with pytest.raises(ModelFileError, match="does not exist"):
        load(tmp_path / "nope")
    with pytest.raises(ModelFileError, match="no model.json"):
        load(tmp_path)
    meta = json.loads((d / "model.json").read_text())
    w = d / meta["weights"]
    blob = w.read_bytes()
    w.write_bytes(blob[:-10] + b"0123456789")
    with pytest.raises(ModelFileError, match="checksum"):
        load(d)
    w.write_bytes(blob)
    (d / "model.json").write_text(json.dumps(meta | {"format_version": 99}))
    with pytest.raises(ModelFileError, match="version"):
        load(d)
    (d / "model.json").write_text("{not json")
    with pytest.raises(ModelFileError, match="not valid JSON"):
        load(d)
    bad_cfg = json.loads(json.dumps(meta))
    bad_cfg["fit_config"]["network"]["channels"] = 99
    (d / "model.json").write_text(json.dumps(bad_cfg))
    with pytest.raises(ModelFileError, match="corrupted or incompatible"):
        load(d)
    w.unlink()
    (d / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelFileError, match="missing"):
        load(d)


def test_model_files_from_before_global_pool_still_load(tmp_path):
    """A model.json without network.global_pool describes a network without the pooling path."""
    model, meta = _fit_tiny_and_read_meta(tmp_path, "network", global_pool=False)
    del meta["fit_config"]["network"]["global_pool"]
    (tmp_path / "model.json").write_text(json.dumps(meta))
    old = load(tmp_path)
    assert old.config.network.global_pool is False
    assert np.array_equal(model.sample(4, 20, steps=3, seed=1), old.sample(4, 20, steps=3, seed=1))


def test_model_files_from_before_v_prediction_load_as_eps(tmp_path):
    """A model.json without train.prediction describes an eps-prediction network."""
    model, meta = _fit_tiny_and_read_meta(tmp_path, "train", prediction="eps")
    del meta["fit_config"]["train"]["prediction"]
    (tmp_path / "model.json").write_text(json.dumps(meta))
    old = load(tmp_path)
    assert old.config.train.prediction == "eps" and old.denoiser.prediction == "eps"
    assert np.array_equal(model.sample(4, 20, steps=3, seed=1), old.sample(4, 20, steps=3, seed=1))
    # the same weights read as a v network give other samples: the key matters
    meta["fit_config"]["train"]["prediction"] = "v"
    (tmp_path / "model.json").write_text(json.dumps(meta))
    assert not np.allclose(model.sample(4, 20, steps=3, seed=1), load(tmp_path).sample(4, 20, steps=3, seed=1))


def test_model_files_from_before_the_volatility_filter_still_load(tmp_path):
    """A model.json without vol_filter describes a model of unfiltered returns."""
    _, meta = _fit_tiny_and_read_meta(tmp_path, "train", vol_filter="none")
    del meta["vol_filter"]
    for key in ("vol_filter", "vol_alpha", "vol_beta"):
        del meta["fit_config"]["train"][key]
    (tmp_path / "model.json").write_text(json.dumps(meta))
    old = load(tmp_path)
    assert old.vol_filter.kind == "none" and old.config.train.vol_filter == "none"
    assert old.context_days == old.config.stitch_context
    # without the filter, returns are the transform's inverse of the model-space draws
    u = old.sample_model_space(4, 20, steps=3)
    assert np.allclose(old.decode(u), old.transform.inverse(u))
