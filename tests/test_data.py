"""Loading, validation of bad input, windows, and the return transforms."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from findiffusion.data import ReturnTransform, as_returns, load_series, make_windows
from findiffusion.errors import InputError


def _prices(n=300, seed=0):
    rng = np.random.default_rng(seed)
    return 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))


def _write(tmp_path, frame, name="p.csv"):
    path = tmp_path / name
    if name.endswith(".parquet"):
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)
    return path


def test_embedded_sp500():
    r, info = load_series("sp500")
    assert info.column == "Adj Close" and info.start == "1999-01-05" and info.end == "2018-12-31"
    assert len(r) == 5030 and 0.005 < r.std() < 0.02
    r2, _ = load_series("sp500", start="2015-01-01", end="2015-12-31")
    assert r2.index[0].year == 2015 and r2.index[-1].year == 2015


@pytest.mark.parametrize("name", ["p.csv", "p.parquet"])
def test_file_with_detected_columns(tmp_path, name):
    p = _prices()
    dates = pd.bdate_range("2010-01-01", periods=len(p))
    path = _write(tmp_path, pd.DataFrame({"Date": dates, "Close": p}), name)
    r, info = load_series(path)
    np.testing.assert_allclose(r.to_numpy(), np.diff(np.log(p)))
    assert info.column == "Close" and info.last_price == pytest.approx(p[-1])
    assert isinstance(r.index, pd.DatetimeIndex)


def test_returns_column_and_named_columns(tmp_path):
    rng = np.random.default_rng(1)
    ret = rng.normal(0, 0.01, 200)
    frame = pd.DataFrame({"when": pd.bdate_range("2020-01-01", periods=200).strftime("%Y-%m-%d"),
                          "ret": ret, "vol": rng.uniform(1, 2, 200)})
    path = _write(tmp_path, frame)
    r, _ = load_series(path, column="ret", returns=True)
    np.testing.assert_allclose(r.to_numpy(), ret)
    r2, _ = load_series(path, column="ret", date_column="when", returns=True, start="2020-03-01")
    assert r2.index[0] >= pd.Timestamp("2020-03-01")


BAD = {
    "missing file": (None, "does not exist"),
    "empty file": ("", "is empty"),
    "no numeric column": (pd.DataFrame({"Date": ["2020-01-01", "2020-01-02"], "x": ["a", "b"]}), "no numeric column"),
    "several columns": (pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [1.0, 2.0, 3.0]}), "several numeric columns"),
    "nan": (pd.DataFrame({"p": [1.0, np.nan, 3.0, 4.0]}), "NaN or infinite"),
    "inf": (pd.DataFrame({"p": [1.0, np.inf, 3.0, 4.0]}), "NaN or infinite"),
    "non-positive price": (pd.DataFrame({"p": [1.0, 0.0, 3.0, 4.0]}), "price <= 0"),
    "unsorted dates": (pd.DataFrame({"Date": ["2020-01-03", "2020-01-02", "2020-01-06"], "p": [1.0, 2.0, 3.0]}), "not sorted"),
    "duplicate dates": (pd.DataFrame({"Date": ["2020-01-02", "2020-01-02", "2020-01-03"], "p": [1.0, 2.0, 3.0]}), "more than once"),
    "constant": (pd.DataFrame({"p": [5.0] * 50}), "constant"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input(tmp_path, case):
    content, msg = BAD[case]
    path = tmp_path / "bad.csv"
    if isinstance(content, str):
        path.write_text(content)
    elif content is not None:
        content.to_csv(path, index=False)
    with pytest.raises(InputError, match=msg):
        load_series(path)


def test_bad_input_other(tmp_path):
    (tmp_path / "x.xlsx").write_text("not really")
    with pytest.raises(InputError, match="not a CSV or Parquet"):
        load_series(tmp_path / "x.xlsx")
    (tmp_path / "broken.parquet").write_text("garbage")
    with pytest.raises(InputError, match="could not read"):
        load_series(tmp_path / "broken.parquet")
    path = _write(tmp_path, pd.DataFrame({"p": _prices(20)}))
    with pytest.raises(InputError, match="column 'q' not found"):
        load_series(path, column="q")
    with pytest.raises(InputError, match="does not exist.*sp500"):
        load_series("nosuchset")
    with pytest.raises(InputError, match="window needs"):
        make_windows(np.zeros(10), 64)
    with pytest.raises(InputError):
        as_returns(np.array([0.1, np.nan]))


def test_windows():
    w = make_windows(np.arange(10.0), 4)
    assert w.shape == (7, 4) and w[0].tolist() == [0, 1, 2, 3] and w[-1].tolist() == [6, 7, 8, 9]


def test_lambertw_recovers_known_parameters():
    """Oracle: data simulated from a Lambert W x Gaussian law with known (loc, scale, delta)."""
    rng = np.random.default_rng(3)
    u = rng.standard_normal(20_000)
    delta, loc, scale = 0.2, 0.0005, 0.008
    r = loc + scale * u * np.exp(0.5 * delta * u * u)
    t = ReturnTransform("lambertw").fit(r)
    assert t.delta == pytest.approx(delta, abs=0.02)
    assert t.scale == pytest.approx(scale, rel=0.03)
    assert t.loc == pytest.approx(loc, abs=0.0003)
    g = t.forward(r)
    assert abs(float(np.mean(g))) < 0.02 and float(np.std(g)) == pytest.approx(1.0, abs=0.01)
    from scipy import stats

    assert abs(stats.kurtosis(g)) < 0.15  # Gaussianized
    np.testing.assert_allclose(t.inverse(g), r, rtol=1e-9, atol=1e-12)


def test_transform_tail_extension_and_round_trip():
    rng = np.random.default_rng(4)
    r = rng.standard_t(3, 5000) * 0.01
    for kind in ("lambertw", "standard"):
        t = ReturnTransform(kind).fit(r)
        np.testing.assert_allclose(t.inverse(t.forward(r)), r, rtol=1e-8, atol=1e-12)
        assert ReturnTransform.from_dict(t.to_dict()) == t
    t = ReturnTransform("lambertw").fit(r)
    grid = np.linspace(-12, 12, 2001)
    out = t.inverse(grid)
    assert np.all(np.diff(out) > 0) and np.isfinite(out).all()  # monotone, no overflow beyond the data
    # beyond the data the extension is linear: equal steps give equal increments
    far = t.inverse(np.array([10.0, 11.0, 12.0]))
    assert far[2] - far[1] == pytest.approx(far[1] - far[0], rel=1e-9)


# ---- the volatility filter -----------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["lambertw", "standard"])
def test_transform_inverse_in_torch_matches_numpy(kind):
    import torch

    rng = np.random.default_rng(0)
    t = ReturnTransform(kind=kind).fit(rng.standard_t(3, 3000) * 0.01)
    u = np.concatenate([np.linspace(-8, 8, 101), rng.normal(size=50)])  # beyond v_max too
    np.testing.assert_allclose(t.inverse_torch(torch.from_numpy(u)).numpy(), t.inverse(u), rtol=1e-12, atol=1e-15)
