"""A model's first window against the training windows, stratified by the start state: where short-dated wings go wrong.

Unconditional paths start from a variance drawn from the training filter's states, and the deep short-dated wings
are priced almost entirely after the most volatile starts (the importance pilot of bench/pricing.py puts start powers
of 2.4-10 there). Plain draws put 1 % of the paths in the top 1 % of starts; this bench draws ``--n`` windows *in each*
start-quantile group (start uniforms drawn inside the group's quantile range, as ``start_variance(u=...)`` takes
them) and compares them with every training window whose filter start variance ranks in the same range. Per group,
model / training:

* E r^2 over each day range of the window (days 1-5, 6-21, 22-63, 64-L), as model / training - 1: how the
  variance the network generates after such a start evolves along the window;
* var(sum) / sum of the days' variances of the 21- and 63-day sums: what the days' co-movement adds to the width;
* European wing payoffs on S = 100 exp(sum) at 21 and 63 days, each group's paths scaled so that E S_h = 100 e^{rh}
  (a martingale normalisation per group, r = 3 %), model against training in % (SE; the training windows overlap and
  are taken as independent, so their part of it is a lower bound), and stratified over the groups with their
  probabilities as weights.

A second table gives the shape of each group's 21-day sums, model / training: sd, skewness, its leverage part
(:func:`findiffusion.stylized_facts.skew_parts`), excess kurtosis and the 1 % quantile of the standardised sum (the
lower tail the 21-day 80 put sees).

With ``--what-if-r2 DIR`` the bench also fits a what-if on top of the model's calibration and saves it to DIR for
``bench/pricing.py --heston-model DIR``: one factor per start-state group (``--r2-quantiles``) and day range applied to
the first window's residuals (as c of eq. (7) of findiffusion/startstate.py is), chosen so that the *decoded returns*
have the training windows' E r^2 in every group and range, by damped fixed-point iteration on
``--calibration-windows`` draws; k, g, a_g and the stitch view are kept as they are, so only the first window's prices
(21/63 days on a 128-day window) are meaningful for it. The saved model's ``start_targets`` carry the what-if's groups
with the training E r^2 (moment "r2"). The library's ``calibrate --by-start --start-moment r2`` (session 40) is this
what-if made a calibration: c fitted after a_g with the targets of its own groups, then k and the stitch view again.

    .venv/bin/python bench/start_strata.py --market heston --years 10000 \
        --model bench/out/pricing/recalibrated-c97fc414c7ec8a90 [--what-if-r2 bench/out/pricing/what-if-r2]

(five groups of 10 000 windows: about 4 minutes on 2 cores; the what-if draws 40 000 more, about 3 minutes.)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

import findiffusion
from findiffusion.errors import InputError, ModelFileError
from findiffusion.startstate import START_CUTS, StartTargets, start_targets_from
from findiffusion.stylized_facts import skew_parts

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pricing import training_returns  # noqa: E402

RATE = 0.03
CONTRACTS = [(h, o, k) for h in (21, 63) for o, k in (("put", 80.0), ("put", 90.0), ("call", 110.0), ("call", 120.0))]


def _floats(text: str, flag: str) -> tuple[float, ...]:
    try:
        v = tuple(float(x) for x in text.split(","))
    except ValueError:
        raise ValueError(f"{flag} takes comma-separated probabilities, e.g. 0.8,0.95, got {text!r}") from None
    if not v or list(v) != sorted(set(v)) or not all(0 < x < 1 for x in v):
        raise ValueError(f"{flag} must be increasing probabilities strictly between 0 and 1, got {text!r}")
    return v


def normalised_payoffs(x: np.ndarray, h: int, option: str, strike: float) -> np.ndarray:
    """Payoffs of S = 100 exp(sum of the first h days), the paths scaled so that E S = 100 e^{rh} (r = RATE).
    Shape: x (n, >= h) -> (n,)."""
    s = np.exp(x[:, :h].sum(axis=1))
    s = 100 * s * np.exp(RATE * h / 252) / s.mean()
    return np.maximum(strike - s, 0) if option == "put" else np.maximum(s - strike, 0)


#: the horizon of the second table, the shape of the sums the short-dated deep wings see
H_SHAPE = 21


def sum_shape(x: np.ndarray) -> tuple[float, float, float, float, float]:
    """(sd in %, skewness, its leverage part, excess kurtosis, 1 % quantile of the standardised sum) of the row sums.
    Shape: x (n, h)."""
    s = x.sum(axis=1)
    z = (s - s.mean()) / s.std()
    parts = skew_parts(x)
    return 100 * s.std(), parts["skew"], parts["leverage"], float(np.mean(z ** 4) - 3), float(np.quantile(z, 0.01))


def r2_table(r: np.ndarray, groups: np.ndarray, n_groups: int, ranges: np.ndarray) -> np.ndarray:
    """Mean r^2 per start group and day range (nan for an empty group). Shape: r (n, L), groups (n,), ranges (L,) ->
    (n_groups, n_ranges)."""
    r2 = r ** 2
    out = np.full((n_groups, int(ranges.max()) + 1), np.nan)
    for j in range(n_groups):
        if np.any(groups == j):
            out[j] = [r2[groups == j][:, ranges == i].mean() for i in range(out.shape[1])]
    return out


def r2_targets(returns: np.ndarray, s2_over_v: np.ndarray, window: int, quantiles: tuple[float, ...],
               cuts: tuple[int, ...] = START_CUTS) -> tuple[StartTargets, np.ndarray]:
    """Groups (at ``quantiles`` of the training windows' start variances, units of v) and day ranges of the what-if,
    and the training windows' E r^2 per group and range: :func:`findiffusion.startstate.start_targets_from` with the
    returns in place of the residuals (every window start; moment "r2", its z2 hold E r^2). Shape: returns (T,),
    s2_over_v (T + 1,) -> (groups, ranges)."""
    t = start_targets_from(np.asarray(returns, dtype=float), s2_over_v, window, quantiles, cuts, moment="r2")
    return t, np.asarray(t.z2)


def fit_r2_factors(model, u: np.ndarray, var0: np.ndarray, t: StartTargets, target: np.ndarray, *,
                   iters: int = 12, damping: float = 0.5, sampler: str | None = None,
                   steps: int | None = None) -> np.ndarray:
    """The what-if's factors: c per start group and day range (set on the model as ``start_factors`` with ``t`` as
    its ``start_targets``) such that the first window's decoded returns have E r^2 = target in every cell, by
    c <- c (target / E r^2)^(damping / 2) (the filter carries a wider day into the later days' variance, so the full
    step overshoots). ``sampler``/``steps``: those u were drawn with (the model must be calibrated for them, or
    decoding ignores the factors). Shape: u (n, L), var0 (n,), target (groups, ranges) -> (groups, ranges)."""
    f, L = model.vol_filter, model.window
    grp, rng = t.group(np.asarray(var0) / f.var), t.day_range(L)
    c = np.ones(t.shape)
    for _ in range(iters):
        model.start_targets, model.start_factors = t, tuple(tuple(float(v) for v in row) for row in c)
        have = r2_table(model.decode_generated(u, var0, sampler=sampler, steps=steps), grp, t.shape[0], rng)  # (groups, ranges)
        c = np.where(np.isfinite(have), c * (target / np.where(np.isfinite(have), have, 1.0)) ** (damping / 2), c)
    model.start_targets, model.start_factors = t, tuple(tuple(float(v) for v in row) for row in c)
    return c


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--market", choices=("gbm", "heston"), default="heston")
    p.add_argument("--model", required=True, help="a model with a volatility filter fitted by bench/pricing.py")
    p.add_argument("--years", type=int, default=10000, help="years of the training series (as bench/pricing.py)")
    p.add_argument("--n", type=int, default=10_000, help="model windows drawn in each start group")
    p.add_argument("--seed", type=int, default=5)
    p.add_argument("--edges", default="0.8,0.95,0.99,0.999", help="start-quantile edges of the groups")
    p.add_argument("--what-if-r2", metavar="DIR", help="fit the E r^2 what-if and save the model to DIR")
    p.add_argument("--r2-quantiles", default="0.2,0.4,0.6,0.8,0.95,0.99", help="start groups of the what-if")
    p.add_argument("--calibration-windows", type=int, default=40_000, help="windows the what-if is fitted on")
    a = p.parse_args(argv)
    if a.n < 100 or a.calibration_windows < 1000:
        p.error(f"--n must be at least 100 and --calibration-windows at least 1000, got {a.n} and "
                f"{a.calibration_windows}")
    try:
        edges, r2_quantiles = (0.0, *_floats(a.edges, "--edges"), 1.0), _floats(a.r2_quantiles, "--r2-quantiles")
    except ValueError as e:
        p.error(str(e))  # exit 2
    torch.set_num_threads(2)
    try:
        model = findiffusion.load(a.model)
    except (InputError, ModelFileError) as e:
        p.error(str(e))  # exit 2
    f, L = model.vol_filter, model.window
    if not f.active or not f.start_quantiles:
        p.error(f"{a.model} has no volatility filter with a start law: its windows have no start state to group by")
    r = training_returns(a.market, a.years)
    _, s2 = f.filter(r)  # (T + 1,)
    H = min(63, L)
    starts = np.arange(len(r) - L + 1)
    rank = np.argsort(np.argsort(s2[starts], kind="stable"), kind="stable") / len(starts)  # start quantile, (m,)
    windows = np.lib.stride_tricks.sliding_window_view(r, L)
    bounds = [0, *[c for c in START_CUTS if c < L], L]
    rng_days = np.searchsorted(np.asarray(bounds[1:-1]), np.arange(L), side="right")
    contracts = [c for c in CONTRACTS if c[0] <= H]
    gen = torch.Generator().manual_seed(a.seed)
    print(f"{a.market}, {a.years} years; model {a.model}; {a.n} windows per start group (seed {a.seed}) against the "
          f"training windows whose start variance ranks in the same range\n")
    print("E r^2 over days " + ", ".join(f"{lo + 1}-{hi}" for lo, hi in zip(bounds[:-1], bounds[1:], strict=True))
          + " (model / training - 1, %), var(sum) / sum var at 21 / 63 days (model / training), and normalised "
            "wing payoffs (model / training - 1, %, SE)\n")
    head = [f"E r2 {lo + 1}-{hi}" for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]
    head += [f"ratio {h}" for h in (21, 63) if h <= H] + [f"{o[0]}{k:.0f}/{h}" for h, o, k in contracts]
    print("| start quantiles | " + " | ".join(head) + " |\n" + "|---" * (len(head) + 1) + "|")
    total = {c: np.zeros(3) for c in contracts}  # weighted model mean, training mean, model variance
    shapes = []  # the second table's rows
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        t0 = time.time()
        uu = lo + (hi - lo) * torch.rand(a.n, generator=gen, dtype=torch.float64).numpy()
        var0 = model.start_variance(a.n, gen, u=uu)  # (n,)
        x_m = model.decode_generated(model.sample_model_space(a.n, L, var=var0, generator=gen), var0)  # (n, L)
        x_t = windows[starts[(rank >= lo) & (rank < hi)]]  # (m_j, L)
        e_m = r2_table(x_m, np.zeros(a.n, int), 1, rng_days)[0]  # mean r^2 per day range, (ranges,)
        e_t = r2_table(x_t, np.zeros(len(x_t), int), 1, rng_days)[0]
        cells = [f"{100 * (m / t - 1):+.1f}" for m, t in zip(e_m, e_t, strict=True)]
        for h in (21, 63):
            if h <= H:
                ratio = [x[:, :h].sum(1).var() / x[:, :h].var(0).sum() for x in (x_m, x_t)]
                cells.append(f"{ratio[0]:.3f} / {ratio[1]:.3f}")
        for c in contracts:
            pm, pt = normalised_payoffs(x_m, *c), normalised_payoffs(x_t, *c)
            se = np.sqrt(pm.var() / len(pm) + pt.var() / len(pt)) / pt.mean()
            cells.append(f"{100 * (pm.mean() / pt.mean() - 1):+.1f} ({100 * se:.1f})")
            total[c] += (hi - lo) * np.array([pm.mean(), pt.mean(), 0.0]) + [0, 0, (hi - lo) ** 2 * pm.var() / a.n]
        print(f"| {lo:g}-{hi:g} | " + " | ".join(cells) + f" |  ({time.time() - t0:.0f} s)", flush=True)
        shapes.append(f"| {lo:g}-{hi:g} | " + " | ".join(f"{m:.3f} / {t:.3f}" for m, t in
                                                          zip(sum_shape(x_m[:, :H_SHAPE]), sum_shape(x_t[:, :H_SHAPE]),
                                                              strict=True)) + " |")
    pad = " | " * (len(head) - len(contracts) + 1)
    print("| stratified" + pad + " | ".join(f"{100 * (m / t - 1):+.1f} ({100 * np.sqrt(v) / t:.1f})"
                                           for m, t, v in total.values()) + " |")
    print(f"\nShape of the {H_SHAPE}-day sums (model / training): sd (%), skewness, its leverage part (stylized_facts."
          "skew_parts), excess kurtosis, 1 % quantile of the standardised sum\n\n| start quantiles | sd % | skew | "
          "leverage | excess kurtosis | q 1 % |\n|---|---|---|---|---|---|\n" + "\n".join(shapes))
    if a.what_if_r2:
        t, target = r2_targets(r, s2 / f.var, L, r2_quantiles)
        t0 = time.time()
        g2 = torch.Generator().manual_seed(11)
        var0 = model.start_variance(a.calibration_windows, g2)
        u = model.sample_model_space(a.calibration_windows, L, var=var0, generator=g2, progress=True)
        before = r2_table(model.decode_generated(u, var0), t.group(var0 / f.var), t.shape[0], t.day_range(L))
        c = fit_r2_factors(model, u, var0, t, target)
        after = r2_table(model.decode_generated(u, var0), t.group(var0 / f.var), t.shape[0], t.day_range(L))
        model.history["what_if"] = ("bench/start_strata.py --what-if-r2: start_factors fitted to the training windows' "
                                    "E r^2 per start group and day range on top of the model's calibration (k, g, a_g, "
                                    "a_s kept)")
        out = model.save(a.what_if_r2)
        print(f"\nwhat-if (E r^2 by start group and day range, {a.calibration_windows} windows, {time.time() - t0:.0f} "
              f"s), saved to {out}: group edges (units of v) {np.round(t.edges, 3).tolist()}\n"
              f"E r^2 model / training before:\n{np.round(before / target, 3)}\nafter:\n"
              f"{np.round(after / target, 3)}\nfactors:\n{np.round(c, 4)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
