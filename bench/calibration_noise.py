"""Sampling error of the residual calibration (k and g of DiffusionModel.calibrate) and what it does to option prices.

k and g are estimated from generated unconditional windows, and the estimate's error is carried by every path the
model draws afterwards: it is a bias of the fitted model, not Monte Carlo noise of one pricing run. This bench draws
``--windows`` windows once, calibrates on all of them (the reference) and on disjoint subsets of ``--subset``
windows, and prices European options on *the same* windows decoded with each calibration (paired: only the
calibration differs). It prints, per subset, k, g and the relative price change against the reference, then the
sd of those changes across subsets, scaled by sqrt(subset / n) to other calibration sizes n.

    .venv/bin/python bench/calibration_noise.py --model bench/out/pricing/model-heston-default-steps16000-window128-10000y-f60a25d5

(about 4 minutes for 40 000 windows of 128 days on 2 cores). Prices: conditional martingale correction, r = 3 %,
s0 = 100; the out-of-the-money strikes 80 / 90 puts and 110 / 120 calls, and the 100 call, at 21 and ``--days``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import findiffusion
from findiffusion.pricing import price_paths

STRIKES = [80.0, 90.0, 100.0, 110.0, 120.0]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="a model directory with a volatility filter")
    p.add_argument("--windows", type=int, default=40_000, help="windows drawn in all (default 40000)")
    p.add_argument("--subset", type=int, default=4000, help="windows per subset calibration (default 4000)")
    p.add_argument("--days", type=int, default=63, help="longest maturity, at most the window (default 63)")
    p.add_argument("--seed", type=int, default=0, help="seed of the windows (default 0)")
    p.add_argument("--scale-to", default="4000,20000", help="calibration sizes to scale the sd to")
    a = p.parse_args(argv)
    torch.set_num_threads(2)
    m = findiffusion.load(a.model)
    if not m.vol_filter.active:
        p.error("the model has no volatility filter: nothing is calibrated")
    if not 21 < a.days <= m.window:
        p.error(f"--days must be above 21 and at most the window ({m.window}), got {a.days}")
    if not 2 * a.subset <= a.windows:
        p.error(f"--windows must hold at least two subsets of --subset, got {a.windows} and {a.subset}")
    t0 = time.time()
    gen = torch.Generator().manual_seed(a.seed)
    var0 = m.start_variance(a.windows, gen)  # (n,)
    u = m.sample_model_space(a.windows, m.window, var=var0, generator=gen, progress=True)  # (n, L)
    f, mats = m.vol_filter, [21, a.days]

    def prices(k: float, g: tuple[float, ...] | None) -> tuple[np.ndarray, list[str]]:
        r = f.unfilter(m.transform.inverse(k * u[:, :a.days]), var0, g)  # (n, days): eqs. (4), (5)
        tab = price_paths(r, s0=100.0, strikes=STRIKES, maturities_days=mats, rate=0.03, greeks=False,
                          correction="conditional").table
        tab = tab[(tab.option == "call") == (tab.strike >= 100.0)]  # out of the money, and the 100 call
        return tab.price.to_numpy(), [f"{o[0]}{k:.0f}/{d}" for o, k, d in
                                     zip(tab.option, tab.strike, tab.maturity_days, strict=True)]

    k_ref, g_ref = m.estimate_calibration(u, var0)
    p_ref, names = prices(k_ref, g_ref)
    print(f"{m.window}-day windows: {a.windows} drawn (seed {a.seed}, {m.default_sampler[0]} {m.default_sampler[1]}), "
          f"{time.time() - t0:.0f} s; reference calibration on all: k {k_ref:.4f} g "
          + ("-" if g_ref is None else " / ".join(f"{v:.3f}" for v in g_ref)))
    print(f"price change against the reference, % (subsets of {a.subset} windows)")
    print(f"{'subset':>6} {'k':>7} {'g':>36} | " + " ".join(f"{n:>8}" for n in names))
    rows = []
    for i in range(a.windows // a.subset):
        s = slice(i * a.subset, (i + 1) * a.subset)
        k, g = m.estimate_calibration(u[s], var0[s])
        rows.append(100 * (prices(k, g)[0] - p_ref) / p_ref)
        gs = "-" if g is None else " / ".join(f"{v:.3f}" for v in g)
        print(f"{i:>6} {k:7.4f} {gs:>36} | " + " ".join(f"{v:+8.2f}" for v in rows[-1]), flush=True)
    sd = np.std(rows, axis=0, ddof=1)
    for n in (int(v) for v in a.scale_to.split(",")):
        label = f"sd at {n}" + ("" if n == a.subset else " (scaled)")
        print(f"{label:>52} | " + " ".join(f"{v * np.sqrt(a.subset / n):8.2f}" for v in sd))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
