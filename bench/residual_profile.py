"""Residual width by start state and by day of the window: where a model's short-dated option prices come from.

The calibration of eq. (5) (findiffusion/calibration.py) matches E z^2 of the generated residuals to the
training one in each volatility-state bin, pooled over all days of the window. Short-dated options see only
the first days of a window, and mostly through its start state; if the network's residual width depends on
the day of the window, the pooled factors g put it right on average and wrong on those days. This bench
draws ``--n`` unconditional windows of a model fitted by bench/pricing.py (as ``sample`` does: start
variances from the training filter, k and g applied) and as many training windows at uniform random starts
(their start variance the filter's on the whole series), and prints, model / training:

* E z^2 by start-state group (quantiles of the start variance) and by days of the window;
* E z^2 by the filter's own state bins (those of eq. (5)) and by days of the window;
* the sd of the 21- and 63-day sums by start-state group (the width that sets 21- and 63-day option prices),
  and var(sum) / sum of the days' variances (1 + what the days' autocorrelation adds), which on Heston the
  -v/2 drift of the log price raises: a shock down raises v and so lowers the later drift (the ratio on fresh
  Heston paths with and without that term is printed with ``--market heston``);
* pooled, var(sum) / sum of the days' variances of the returns and of their shock parts sigma_t z_t at 21 and 63
  days: how the days move together, which the shock correlation map of eq. (8) matches to the training windows;
* the sd of the log of each window's mean z² and mean r² over its first 21 and 63 days, by start-state group: how
  much the windows' realized variance varies around their start state (a network that shrank each window towards the
  typical window of its start state would have too little of it, and thin tails of multi-day sums);
* quantiles 1 / 5 / 95 / 99 % of the centred 21- and 63-day sums by start-state group and pooled: whether the
  width a wing misses is on the down or the up side;
* the skewness of the 21- and 63-day sums split into the days' own skewness, leverage (an earlier shock with a
  later square), its reverse and triples (:func:`skew_parts`): where the asymmetry between a put wing and a call
  wing comes from;
* with ``--price`` (Heston only), 21- and 63-day European prices on the same windows against the stationary
  Heston price of bench/pricing.py (conditional martingale correction, r = 3 %), decoded with the model's g
  and with g refitted (eq. (5)) on the first P days of the windows only, P in ``--first-days``: what a
  calibration by day of the window would change at short maturities (k kept); and with the model's g times one
  factor per start-state group that matches E z^2 over the first 63 days to the training windows': what a
  calibration by start state would change; and with one such factor per start-state group and day range (the
  ranges of the tables); then each start-state group's share of the 21- and 63-day wing prices, model / training
  windows (both corrected as the bench prices them, payoffs split by group): which start states a wing's error
  comes from.

    .venv/bin/python bench/residual_profile.py --market heston --years 10000 \
        --model bench/out/pricing/model-heston-default-steps16000-asym1-window128-10000y-9c596694

(100 000 windows of 128 days: about 9 minutes on 2 cores.) With ``--calibrate-by-start`` the model is first
recalibrated with the factors c of eq. (7) (findiffusion/calibration.py; 20 000 windows, about 5 minutes), so the
tables show what that calibration leaves. z are the filter residuals of the decoded returns,
run from each window's start variance. With ``--calibrate-by-correlation`` the model is recalibrated by position
and then with the map of eq. (8) (target from the training series) first.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

import findiffusion
from findiffusion.stylized_facts import SKEW_PARTS, skew_parts

sys.path.insert(0, str(Path(__file__).resolve().parent))
from model_cache import recalibrate  # noqa: E402
from pricing import OUT as CACHE  # noqa: E402  (recalibrated models, shared with bench/pricing.py)
from pricing import heston_stationary_price, simulate_heston, training_returns  # noqa: E402

GROUPS = (0.2, 0.4, 0.6, 0.8, 0.95)  # start-state group edges, quantiles of the start variance


def segments(window: int) -> list[tuple[int, int]]:
    """Day ranges [a, b) of a window: 1-5, 6-21, 22-63 and the rest, cut at the window's length."""
    cuts = [0] + [c for c in (5, 21, 63) if c < window] + [window]
    return list(zip(cuts[:-1], cuts[1:], strict=False))


def sum_ratio(x: np.ndarray) -> float:
    """var of the h-day sums over the sum of the days' variances (each day centred over the paths): 1 for
    uncorrelated days. Shape: (N, h)."""
    x = x - x.mean(0)
    return float(x.sum(1).var() / (x ** 2).mean(0).sum())


def _cell(zm: np.ndarray, zt: np.ndarray, mm: np.ndarray, mt: np.ndarray) -> str:
    """'model / training' E z^2 over the days where the masks hold, '–' where either has none."""
    if not mm.any() or not mt.any():
        return "–"
    return f"{np.mean(zm[mm] ** 2):.3f} / {np.mean(zt[mt] ** 2):.3f}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--market", choices=("gbm", "heston"), required=True)
    p.add_argument("--model", required=True, help="a model with a volatility filter fitted by bench/pricing.py")
    p.add_argument("--years", type=int, default=1000, help="years of the training series (as bench/pricing.py)")
    p.add_argument("--n", type=int, default=20_000, help="windows drawn from the model and from the training series")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sampler", default=None, help="sampler of the drawn windows (default: the model's own); "
                   "the recalibrations below are for it (without one, another sampler's draws decode uncalibrated)")
    p.add_argument("--steps", type=int, default=None, help="sampler steps (default: the model's own for its sampler)")
    p.add_argument("--price", action="store_true", help="price 21/63-day Europeans with the model's g and refitted g")
    p.add_argument("--first-days", default="21,64", help="P of the refitted g (days from the window start)")
    p.add_argument("--calibrate-by-position", action="store_true",
                   help="recalibrate the model by position (g of eq. (5) for the first days and the rest, in memory) "
                        "before drawing: the model of record of docs/pricing.md")
    p.add_argument("--calibrate-by-correlation", action="store_true",
                   help="recalibrate the model (by position, then the shock correlation map of eq. (8), target from "
                        "the training series, in memory) before drawing")
    p.add_argument("--calibration-windows", type=int, default=None, metavar="N",
                   help="windows of the recalibration (default: the model's own count); recalibrated models are "
                        "cached in bench/out/pricing, shared with bench/pricing.py")
    p.add_argument("--calibrate-by-start", action="store_true",
                   help="recalibrate the model with c of eq. (7) (calibrate(by_start=True), targets from the training "
                        "series, in memory) before drawing: the tables then show the calibrated model")
    a = p.parse_args(argv)
    if a.n < 100:
        p.error(f"--n must be at least 100 windows, got {a.n}")
    if a.calibrate_by_start and a.calibrate_by_correlation:
        p.error("--calibrate-by-start and --calibrate-by-correlation are two what-ifs: pick one")
    if a.price and (a.calibrate_by_start or a.calibrate_by_correlation):
        p.error("--price decodes its what-if rows without c or the map: use it without --calibrate-by-start/-correlation "
                "(bench/pricing.py --calibrate-by-start prices the calibrated model)")
    if a.price and a.sampler is not None:
        p.error("--price decodes its what-if rows with the k and g of the model's own sampler: use it without --sampler")
    if a.price and a.market != "heston":
        p.error("--price compares with the Heston price: use it with --market heston")
    torch.set_num_threads(2)
    model = findiffusion.load(a.model)
    f, L = model.vol_filter, model.window
    if not f.active:
        p.error(f"{a.model} has no volatility filter: its residual width does not depend on a state")
    common = {"progress": True, "n_windows": a.calibration_windows, "cache": CACHE, "sampler": a.sampler,
              "steps": a.steps}  # every recalibration below: for the sampler the windows are drawn with
    if a.calibrate_by_start:
        n_cal, secs = recalibrate(model, by_start=True, by_position=a.calibrate_by_position,
                                  returns=training_returns(a.market, a.years), **common)
        also = " and position" if a.calibrate_by_position else ""
        print(f"recalibrated by start state{also} on {n_cal} windows in {secs:.0f} s: c "
              + "; ".join("/".join(f"{v:.3f}" for v in row) for row in model.start_factors))
    if a.calibrate_by_position and not (a.calibrate_by_start or a.calibrate_by_correlation):
        n_cal, secs = recalibrate(model, by_position=True, **common)
        print(f"recalibrated by position on {n_cal} windows in {secs:.0f} s")
    if a.calibrate_by_correlation:
        n_cal, secs = recalibrate(model, by_position=True, by_correlation=True,
                                  returns=training_returns(a.market, a.years), **common)
        print(f"recalibrated by position and shock correlation on {n_cal} windows in {secs:.0f} s")
    t0 = time.time()
    gen = torch.Generator().manual_seed(a.seed)
    var0 = model.start_variance(a.n, gen)  # (n,)
    u = model.sample_model_space(a.n, L, var=var0, generator=gen, progress=True, sampler=a.sampler,
                                 steps=a.steps)  # (n, L)
    r_model = model.decode_generated(u, var0, sampler=a.sampler, steps=a.steps)  # (n, L), k and g as sample() applies
    t_s = time.time() - t0
    sampler_name = "{} {} steps".format(*model.resolve_sampler(a.sampler, a.steps))
    r = training_returns(a.market, a.years)
    _, s2 = f.filter(r)  # (T + 1,): s2[t] is day t's variance
    starts = np.random.default_rng(a.seed).integers(0, len(r) - L + 1, a.n)
    r_train = np.lib.stride_tricks.sliding_window_view(r, L)[starts]  # (n, L)
    z_m, s_m = f.filter(r_model, var0)  # (n, L), (n, L + 1)
    z_t, s_t = f.filter(r_train, s2[starts])
    print(f"{a.market}, {a.years} years; {a.n} windows of {L} days from the model ({sampler_name}, drawn in {t_s:.0f} s, "
          f"seed {a.seed}; k {model.scale_for(a.sampler, a.steps):.4f}, g "
          f"{np.round(model.factors_for(a.sampler, a.steps) or [], 3).tolist()}) and from the "
          "training series\n")
    segs = segments(L)
    head = " | ".join(f"days {x + 1}–{y}" for x, y in segs)
    edges = np.quantile(var0, GROUPS)
    gm, gt = np.digitize(var0, edges), np.digitize(s2[starts], edges)
    names = [f"{100 * lo:.0f}–{100 * hi:.0f} %" for lo, hi in zip((0.0, *GROUPS), (*GROUPS, 1.0), strict=True)]
    print(f"E z² by start-state group (quantiles of the start variance), model / training\n\n| start state | {head} |")
    print("|---" * (len(segs) + 1) + "|")
    days = np.arange(L)
    for j, name in enumerate(names):
        cells = [_cell(z_m, z_t, (gm == j)[:, None] & ((days >= x) & (days < y))[None],
                       (gt == j)[:, None] & ((days >= x) & (days < y))[None]) for x, y in segs]
        print(f"| {name} | " + " | ".join(cells) + " |")
    bm, bt = f.state_bin(s_m[:, :-1]), f.state_bin(s_t[:, :-1])  # (n, L): the bin of eq. (5) of every day
    print(f"\nE z² by the filter's state bin of the day (eq. (5)), model / training\n\n| bin | {head} |")
    print("|---" * (len(segs) + 1) + "|")
    for j in range(len(f.state_edges) + 1):
        cells = [_cell(z_m, z_t, (bm == j) & ((days >= x) & (days < y))[None],
                       (bt == j) & ((days >= x) & (days < y))[None]) for x, y in segs]
        print(f"| {j} | " + " | ".join(cells) + " |")
    hs = [h for h in (21, 63) if h <= L]
    print("\nsd of h-day sums (%) by start-state group, model / training (ratio); var(sum) / sum of the days' "
          "variances, model / training\n\n| start state | "
          + " | ".join(f"sd, {h} days | var ratio, {h} days" for h in hs) + " |")
    print("|---" * (2 * len(hs) + 1) + "|")
    for j, name in enumerate(names):
        cells = []
        for h in hs:
            sm, st = r_model[gm == j, :h].sum(1).std(), r_train[gt == j, :h].sum(1).std()
            cells += [f"{100 * sm:.3f} / {100 * st:.3f} ({sm / st:.3f})",
                      f"{sum_ratio(r_model[gm == j, :h]):.3f} / {sum_ratio(r_train[gt == j, :h]):.3f}"]
        print(f"| {name} | " + " | ".join(cells) + " |")
    print("\npooled over start states, var(sum) / sum of the days' variances of the returns and of their shock parts "
          "sigma_t z_t (what eq. (8) matches), model / training\n\n| | "
          + " | ".join(f"{h} days" for h in hs) + " |\n" + "|---" * (len(hs) + 1) + "|")
    a_m, a_t = np.sqrt(s_m[:, :-1]) * z_m, np.sqrt(s_t[:, :-1]) * z_t  # (n, L): the shock parts
    for name, (xm, xt) in (("returns", (r_model, r_train)), ("shock parts", (a_m, a_t))):
        print(f"| {name} | " + " | ".join(f"{sum_ratio(xm[:, :h]):.4f} / {sum_ratio(xt[:, :h]):.4f}" for h in hs) + " |")
    print("\nhow much the windows' realized variance varies around its start state: sd of log of the mean of z² and of "
          "r² over the first h days, by start-state group, model / training (a network that shrinks each window "
          "towards the typical window of its start state has too little of it, and thin tails of h-day sums)\n\n"
          "| start state | " + " | ".join(f"sd log mean z², {h} days | sd log mean r², {h} days" for h in hs) + " |")
    print("|---" * (2 * len(hs) + 1) + "|")
    for j, name in [*enumerate(names), (-1, "all")]:
        mm, mt = (gm == j) if j >= 0 else np.ones_like(gm, bool), (gt == j) if j >= 0 else np.ones_like(gt, bool)
        cells = []
        for h in hs:
            for xm, xt in ((z_m, z_t), (r_model, r_train)):
                dm, dt = np.log(np.mean(xm[mm, :h] ** 2, 1)).std(), np.log(np.mean(xt[mt, :h] ** 2, 1)).std()
                cells.append(f"{dm:.3f} / {dt:.3f} ({dm / dt:.3f})")
        print(f"| {name} | " + " | ".join(cells) + " |")
    qs = (0.01, 0.05, 0.95, 0.99)
    print("\nquantiles of the centred h-day sums (%; each group's mean removed, as the martingale correction "
          "re-centres), model / training: the two tails a put and a call wing see\n\n| start state | "
          + " | ".join(f"q{100 * q:.0f}, {h} days" for h in hs for q in qs) + " |")
    print("|---" * (len(qs) * len(hs) + 1) + "|")
    for j, name in [*enumerate(names), (-1, "all")]:
        mm, mt = (gm == j) if j >= 0 else np.ones_like(gm, bool), (gt == j) if j >= 0 else np.ones_like(gt, bool)
        cells = []
        for h in hs:
            sm, st = r_model[mm, :h].sum(1), r_train[mt, :h].sum(1)
            sm, st = sm - sm.mean(), st - st.mean()
            cells += [f"{100 * np.quantile(sm, q):+.2f} / {100 * np.quantile(st, q):+.2f}" for q in qs]
        print(f"| {name} | " + " | ".join(cells) + " |")
    print("\nskewness of the h-day sums split by which days meet in E S^3 (skew_parts), model / training: own skewness "
          "of the days, leverage (an earlier shock with a later square), reverse, triples\n\n| series | h | "
          + " | ".join(SKEW_PARTS) + " |\n|---|---|" + "---|" * len(SKEW_PARTS))
    for name, (xm, xt) in (("returns", (r_model, r_train)), ("shock parts", (a_m, a_t))):
        for h in hs:
            pm, pt = skew_parts(xm[:, :h]), skew_parts(xt[:, :h])
            print(f"| {name} | {h} | " + " | ".join(f"{pm[k]:+.3f} / {pt[k]:+.3f}" for k in SKEW_PARTS) + " |")
    if a.market == "heston":
        fresh = {d: simulate_heston(50_000, max(hs), seed=30_000 + a.seed, ito_drift=d) for d in (True, False)}
        print("\nvar(sum) / sum of the days' variances on 50 000 fresh stationary Heston paths: "
              + "; ".join(f"{h} days {sum_ratio(fresh[True][:, :h]):.3f} with the -v/2 drift, "
                          f"{sum_ratio(fresh[False][:, :h]):.3f} without" for h in hs))
    if a.price:
        _price_table(model, u, var0, [int(x) for x in a.first_days.split(",")], r_model, gm=gm, gt=gt, z_m=z_m, z_t=z_t)
        _wings_by_start(r_model, r_train, gm, gt, names, L)
    return 0


def _wings_by_start(r_model: np.ndarray, r_train: np.ndarray, gm: np.ndarray, gt: np.ndarray, names: list[str],
                    window: int) -> None:
    """Where a wing's price comes from: each start-state group's share of the 21/63-day wing prices, model / training.

    Both sets of windows are corrected together (conditional EMS on all paths, as the bench prices them), and the
    discounted payoffs are then split by start-state group: share_j = mean_i(payoff_i 1{group(i) = j}), so the
    shares add up to the price. Printed as % of the stationary Heston price, with the model's minus the training
    windows' share and its SE (the two samples independent; the training windows, overlapping stretches of one
    series, are taken as independent, so their SE is a lower bound). Shape: r_model, r_train (n, L), gm, gt (n,)."""
    from findiffusion import returns_to_prices
    from findiffusion.pricing import conditional_martingale_correction, payoff

    rate, s0 = 0.03, 100.0
    contracts = [(o, k, h) for h in (21, 63) if h <= window for o, k in (("put", 80.0), ("put", 90.0),
                                                                          ("call", 110.0), ("call", 120.0))]
    print("\nshare of each start-state group in the wing prices (% of the stationary Heston price), model / training "
          "(model − training, SE)\n\n| start state | " + " | ".join(f"{o[0]}{k:.0f}/{h}" for o, k, h in contracts) + " |")
    print("|---" * (len(contracts) + 1) + "|")
    pay, h_max = {}, max(c[2] for c in contracts)
    for tag, r in (("m", r_model), ("t", r_train)):
        paths = conditional_martingale_correction(returns_to_prices(r[:, :h_max], s0), rate)  # (n, h_max + 1)
        for o, k, h in contracts:
            pay[tag, (o, k, h)] = np.exp(-rate * h / 252) * payoff(paths[:, :h + 1], k, o)  # (n,)
    oracle = {c: heston_stationary_price(s0, c[1], c[2], rate, c[0]) for c in contracts}
    for j, name in [*enumerate(names), (-1, "all")]:
        cells = []
        for c in contracts:
            xm = pay["m", c] * ((gm == j) if j >= 0 else 1.0)
            xt = pay["t", c] * ((gt == j) if j >= 0 else 1.0)
            se = np.sqrt(xm.var() / len(xm) + xt.var() / len(xt))
            cells.append(f"{100 * xm.mean() / oracle[c]:.1f} / {100 * xt.mean() / oracle[c]:.1f} "
                         f"({100 * (xm.mean() - xt.mean()) / oracle[c]:+.1f}, {100 * se / oracle[c]:.1f})")
        print(f"| {name} | " + " | ".join(cells) + " |")


def _start_factors(z_m: np.ndarray, z_t: np.ndarray, gm: np.ndarray, gt: np.ndarray,
                   ranges: list[tuple[int, int]]) -> np.ndarray:
    """Residual factors by start-state group and day range, c = sqrt(E z^2 training / E z^2 model) over the days
    [a, b) of each range of the group's windows. Shape: z_m, z_t (n, L), gm, gt (n,) -> (groups, ranges)."""
    return np.array([[np.sqrt(np.mean(z_t[gt == j, x:y] ** 2) / np.mean(z_m[gm == j, x:y] ** 2)) for x, y in ranges]
                     for j in range(len(GROUPS) + 1)])


def _price_table(model, u: np.ndarray, var0: np.ndarray, firsts: list[int], r_model: np.ndarray, *,
                 gm: np.ndarray, gt: np.ndarray, z_m: np.ndarray, z_t: np.ndarray) -> None:
    """Relative errors (%) of 21/63-day prices on the windows decoded with the model's g, with g refitted on
    the first P days, and with the model's g times factors by start-state group (:func:`_start_factors`; over the
    first 63 days, then by the day ranges of :func:`segments`), against the stationary Heston price.
    gm, gt: start-state groups of the model and training windows; z_m, z_t: their residuals.
    Shape: u (n, L), var0 (n,), gm, gt (n,), z_m, z_t (n, L)."""
    from findiffusion.calibration import fit_state_factors
    from findiffusion.pricing import price_paths

    mats = [h for h in (21, 63) if h <= model.window]
    strikes = [80.0, 90.0, 100.0, 110.0, 120.0]
    contracts = [(o, k, h) for h in mats for o, k in [("put", 80.0), ("put", 90.0), ("call", 100.0),
                                                      ("call", 110.0), ("call", 120.0)]]
    oracle = {c: heston_stationary_price(100.0, c[1], c[2], 0.03, c[0]) for c in contracts}  # the printed ones only
    print("\nerror of 21/63-day prices (%, SE in brackets) against the stationary Heston price, same windows\n")
    print("| g | " + " | ".join(f"{o[0]}{k:.0f}/{h}" for o, k, h in contracts) + " |")
    print("|---" * (len(contracts) + 1) + "|")
    k_res, f = model.residual_scale, model.vol_filter
    z0 = model.transform.inverse(k_res * u)  # (n, L): the generated residuals before any state factor
    variants = [("model's g", r_model)]
    for first in firsts:
        g = fit_state_factors(model, model.transform.inverse(u[:, :first]), var0)  # eq. (5) on days [0, P)
        variants.append((f"first {first} days: {np.round(g, 3).tolist()}",
                         f.unfilter(z0, var0, g)))
    g_rows = model.factor_rows(u.shape[-1])  # (L, bins): the model's own g
    c = _start_factors(z_m, z_t, gm, gt, [(0, max(mats))])[:, 0]  # (groups,): fitted on days 1-63
    variants.append((f"model's g, start-state factors {np.round(c, 3).tolist()}",
                     f.unfilter(z0 * c[gm][:, None], var0, g_rows)))  # every day of a window scaled by its group's c
    segs = segments(u.shape[-1])  # day ranges 1-5, 6-21, 22-63, the rest
    c = _start_factors(z_m, z_t, gm, gt, segs)  # (groups, ranges)
    day_seg = np.concatenate([np.full(y - x, i) for i, (x, y) in enumerate(segs)])  # (L,) range of each day
    variants.append((f"model's g, factors by start state and day range (top group {np.round(c[-1], 3).tolist()})",
                     f.unfilter(z0 * c[gm][:, day_seg], var0, g_rows)))  # c of the window's group and the day's range
    for name, r in variants:
        t = price_paths(r[:, :max(mats)], s0=100.0, strikes=strikes, maturities_days=mats, rate=0.03, greeks=False,
                        correction="conditional").table.set_index(["option", "strike", "maturity_days"])
        cells = [f"{100 * (t.price[c] - oracle[c]) / oracle[c]:+.1f} ({100 * t.se[c] / oracle[c]:.1f})"
                 for c in contracts]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    sys.exit(main())
