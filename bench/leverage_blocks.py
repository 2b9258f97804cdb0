"""Leverage across the stitch: the skewness of one-year sums of stitched paths by where its day pairs fall.

A generated path longer than the window L is a first window and then stitched chunks, each drawn given the
``stitch_context`` days before it; beyond those days, what carries a fall into later volatility is the filter state.
This bench splits the leverage part of the skewness of T-day sums, 3 sum_{s<t} E x_s x_t^2 / sd(S)^3 (part (6b) of
findiffusion.stylized_facts.skew_parts), into the pairs inside the first window (s, t < L), the pairs from it to the
stitched days (s < L <= t) and the pairs among the stitched days (L <= s < t), and prints it, with the skewness, the sd
and the 1 / 5 / 95 / 99 % quantiles of the sums (SE from ``--batches`` batches of paths), for:

* ``--train-windows`` T-day stretches of the simulated training series at uniform random starts;
* the model recalibrated by position (the model of record of docs/pricing.md, ``--record-windows`` windows);
* the same model recalibrated by position and leverage (eq. (9), ``--calibration-windows`` windows);
* what-ifs on the latter: the stitched days decoded from the state that a filter with asymmetry a_v (``--view-asym``,
  up to the filter's ``asym_bound``: a_v > 1 lowers the variance after a rise) gives the first window's returns, instead
  of the fitted filter's (``calibrate --by-stitch`` now fits such an a_s, eq. (10) of findiffusion.stitching).
  The model-space paths are drawn once (from the first model), so the rows differ by decoding alone.

A second table gives the mean squared centred return of each range of days against the training stretches'.

    .venv/bin/python bench/leverage_blocks.py --n 20000 --seed 7 \\
        --model bench/out/pricing/model-heston-default-steps16000-asym1-window128-ito-10000y-c451bcb3

(20 000 one-year paths: about 5 minutes on 2 cores, plus the recalibrations unless cached.)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

import findiffusion

sys.path.insert(0, str(Path(__file__).resolve().parent))
from model_cache import recalibrate  # noqa: E402
from pricing import OUT, training_returns  # noqa: E402

COLUMNS = ("lev s,t<L", "lev s<L<=t", "lev L<=s<t", "leverage", "skew", "sd", "q1", "q5", "q95", "q99")


def block_stats(x: np.ndarray, L: int) -> np.ndarray:
    """The statistics of :data:`COLUMNS` of the T-day sums of paths x whose first window has L days. Shape: (N, T)."""
    y = x - x.mean(0)  # days centred over paths, (N, T)
    s = y.sum(1)  # (N,)
    sd = s.std()
    c = 3 * np.triu(y.T @ (y ** 2) / len(y), 1) / sd ** 3  # (T, T): 3 E x_s x_t^2 / sd^3 for s < t
    q = np.quantile(s, [0.01, 0.05, 0.95, 0.99])
    return np.array([c[:L, :L].sum(), c[:L, L:].sum(), c[L:, L:].sum(), c.sum(), np.mean(s ** 3) / sd ** 3, sd, *q])


def with_se(x: np.ndarray, L: int, batches: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`block_stats` and its SE from the spread over ``batches`` batches of paths."""
    parts = np.array([block_stats(b, L) for b in np.array_split(x, batches)])
    return block_stats(x, L), parts.std(0, ddof=1) / np.sqrt(batches)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="a Heston model with an asymmetric filter fitted by bench/pricing.py")
    p.add_argument("--years", type=int, default=10_000, help="years of the training series (as bench/pricing.py)")
    p.add_argument("--days", type=int, default=252, help="days T of each path (more than the window)")
    p.add_argument("--n", type=int, default=20_000, help="paths drawn from the model")
    p.add_argument("--train-windows", type=int, default=200_000, help="training stretches at random starts")
    p.add_argument("--record-windows", type=int, default=None, help="calibration windows of the model of record "
                   "(default: as many as the model was calibrated on)")
    p.add_argument("--calibration-windows", type=int, default=40_000, help="calibration windows of the by-leverage row")
    p.add_argument("--view-asym", default="1.5,2", help="asymmetries a_v of the what-if rows, comma-separated")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--batches", type=int, default=10, help="batches for the SEs")
    a = p.parse_args(argv)
    try:
        views = [float(v) for v in a.view_asym.split(",") if v.strip()]
    except ValueError:
        p.error(f"--view-asym must be comma-separated numbers, got {a.view_asym!r}")
    if a.n < 100 * a.batches or a.batches < 2:
        p.error(f"--n must be at least 100 paths per batch (--batches {a.batches} >= 2), got {a.n}")
    torch.set_num_threads(2)
    record, lev = findiffusion.load(a.model), findiffusion.load(a.model)
    f, L, T = record.vol_filter, record.window, a.days
    if not f.active or T <= L:
        p.error(f"{a.model} needs a volatility filter, and --days more than its {L}-day window (got {T})")
    if not all(-1 <= v <= f.asym_bound for v in views):
        p.error(f"--view-asym values must be in [-1, {f.asym_bound:.3g}] for this filter (where (3) stays positive)")
    r = training_returns("heston", a.years)
    t0 = time.time()
    n_rec, _ = recalibrate(record, by_position=True, n_windows=a.record_windows, cache=OUT)
    n_lev, _ = recalibrate(lev, by_position=True, by_leverage=True, returns=r, n_windows=a.calibration_windows,
                           cache=OUT)
    t1 = time.time()
    gen = torch.Generator().manual_seed(a.seed)
    var0 = record.start_variance(a.n, gen)  # (n,)
    u = record.sample_model_space(a.n, T, var=var0, generator=gen, progress=True)  # (n, T)
    starts = np.random.default_rng(3).integers(0, len(r) - T + 1, a.train_windows)
    r_train = np.lib.stride_tricks.sliding_window_view(r, T)[starts]  # (train_windows, T)
    print(f"heston, {a.years} years; {a.n} model paths of {T} days (seed {a.seed}, drawn in {time.time() - t1:.0f} s), "
          f"{a.train_windows} training stretches; recalibrations ({t1 - t0:.0f} s): by position on {n_rec} windows, "
          f"by position and leverage on {n_lev} (a_g {lev.leverage_asym:.4f}); the model's filter asymmetry {f.asym}\n")
    rows = {"training": r_train, "by position (record)": record.decode_generated(u, var0),
            "by position + leverage": lev.decode_generated(u, var0)}
    # the what-ifs: decode_generated of the by-leverage model with the stitched days' start state from a_v
    scale = np.full(T, lev.scale_for())  # k, then k * k_s from the window on (eqs. (4), (6))
    scale[L:] *= lev.stitch_scale_for()
    z, g = lev.transform.inverse(scale * u), lev.factor_rows(T)  # (n, T), (T, bins)
    first = lev.filter_for().unfilter(z[:, :L], var0, g[:L])  # (n, L): the first window decoded with a_g
    for av in views:
        s2 = f.view_variance(first, var0, av)  # (n,): eq. (10)'s view with a_s = a_v
        rows[f"+ stitched from a_v = {av:g}"] = np.concatenate([first, f.unfilter(z[:, L:], s2, g[L:])], axis=1)
    ref, _ = with_se(r_train, L, a.batches)
    print("| paths | " + " | ".join(COLUMNS) + " |\n" + "|---" * (len(COLUMNS) + 1) + "|")
    for name, x in rows.items():
        v, se = with_se(x, L, a.batches)
        print(f"| {name} | " + " | ".join(f"{vi:+.4f} ({si:.4f})" for vi, si in zip(v, se, strict=True)) + " |", flush=True)
    cuts = sorted({c for c in (0, 21, 63, L, L + L - record.config.stitch_context, T) if c <= T})
    ranges = list(zip(cuts[:-1], cuts[1:], strict=True))  # (first day, end) of each range
    print(f"\nE x_t^2 of each range of days (centred over paths) over the training stretches' (sd of the T-day sums: "
          f"training {ref[5]:.4f})\n\n| paths | " + " | ".join(f"days {lo}-{hi - 1}" for lo, hi in ranges) + " |\n"
          + "|---" * (len(ranges) + 1) + "|")
    v_train = ((r_train - r_train.mean(0)) ** 2).mean(0)  # (T,)
    for name, x in list(rows.items())[1:]:
        v = ((x - x.mean(0)) ** 2).mean(0)  # (T,)
        print(f"| {name} | " + " | ".join(f"{v[lo:hi].mean() / v_train[lo:hi].mean():.4f}" for lo, hi in ranges) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
