"""What the training sample itself pins down: Heston prices on every stretch of the bench's training series.

Goal (b) of issue #5 asks a model trained on simulated Heston returns to price 30 Europeans within 2 % of the
stationary Heston price. A generator can at best learn the law of its training sample; this bench prices that
sample's own law, every ``days``-day stretch of the training series of bench/pricing.py (one stretch per start
day, the same conditional martingale correction as the model), and measures how far it sits from the oracle
and how precisely the sample fixes each price:

* the series (``--years`` simulated years) is cut into ``--blocks`` contiguous blocks; each block's stretches
  (those that end inside it) are priced on their own;
* the sample's price is the mean over blocks, its standard error the sd over blocks / sqrt(blocks) (blocks of
  hundreds of years are close to independent: Heston's variance forgets in about half a year);
* ``err%`` is the sample's price against :func:`heston_stationary_price`; ``se%`` is the sampling error of the
  training sample itself, the error a perfect learner of that sample inherits, before any Monte Carlo error of
  its own;
* ``elast`` (with ``--elasticity``, three times the time) is how much a contract's price moves per 1 % of width of
  the daily returns, (P(1 + d) - P(1 - d)) / (2 d P(1)) with every return of the series scaled by 1 +- d about
  the series mean (d = 1 %, the same stretches, so common random numbers): a generator whose returns are 1 % too
  narrow misses that contract by about ``elast`` %, so within 2 % needs the width right to 2 / ``elast`` %.

    .venv/bin/python bench/sample_limit.py --years 10000 --blocks 20 --elasticity

(about 2 minutes on 2 cores for 10 000 years, 5 with ``--elasticity``.)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from findiffusion.pricing import price_paths

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pricing import DAYS, heston_stationary_price, training_returns  # noqa: E402


def block_prices(r: np.ndarray, blocks: int, days: int, *, strikes: list[float], mats: list[int], rate: float,
                 s0: float = 100.0, progress: bool = True) -> tuple[np.ndarray, list[tuple[str, float, int]]]:
    """Prices of every contract on each block's stretches. Shape: r (T,) -> ((blocks, contracts), contracts)."""
    size = len(r) // blocks
    if size <= days:
        raise ValueError(f"blocks of {size} days cannot hold a {days}-day stretch: use fewer --blocks")
    out, keys = [], None
    for b in range(blocks):
        t0 = time.time()
        paths = np.lib.stride_tricks.sliding_window_view(r[b * size:(b + 1) * size], days)  # (size - days + 1, days)
        # shuffled: price_paths corrects each of its batches on its own, and a batch of neighbouring stretches
        # (which share almost all their days) would have its common move taken out as if it were drift
        paths = paths[np.random.default_rng(b).permutation(len(paths))]
        res = price_paths(paths, s0=s0, strikes=strikes, maturities_days=mats, rate=rate,
                          greeks=False)
        tab = res.table
        keys = [(row.option, float(row.strike), int(row.maturity_days)) for row in tab.itertuples()]
        out.append(tab["price"].to_numpy())
        if progress:
            print(f"  block {b + 1}/{blocks}: {len(paths)} stretches priced in {time.time() - t0:.0f} s", flush=True)
    return np.array(out), keys  # (blocks, contracts)


def width_elasticity(r: np.ndarray, blocks: int, days: int, *, strikes: list[float], mats: list[int], rate: float,
                     price: np.ndarray, d: float = 0.01) -> np.ndarray:
    """Price change in % per 1 % of return width, (P(1 + d) - P(1 - d)) / (2 d P): the same stretches as
    :func:`block_prices` with every return scaled by 1 +- d about the series mean (common random numbers);
    ``price`` is P, the mean over blocks at width 1. Shape: r (T,), price (contracts,) -> (contracts,)."""
    m = r.mean()
    up, down = (block_prices(m + (1 + x) * (r - m), blocks, days, strikes=strikes, mats=mats, rate=rate,
                             progress=False)[0].mean(0) for x in (d, -d))
    return (up - down) / (2 * d * price)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--years", type=int, default=10_000, help="years of the training series (as bench/pricing.py)")
    p.add_argument("--blocks", type=int, default=20, help="contiguous blocks the series is cut into for the SE")
    p.add_argument("--strikes", default="80,90,100,110,120")
    p.add_argument("--maturity-days", default="21,63,252")
    p.add_argument("--rate", type=float, default=0.03)
    p.add_argument("--elasticity", action="store_true", help="also the price change per 1 %% of return width")
    a = p.parse_args(argv)
    if a.blocks < 2:
        p.error(f"--blocks must be at least 2 (the SE is the spread over blocks), got {a.blocks}")
    strikes = [float(x) for x in a.strikes.split(",")]
    mats = [int(x) for x in a.maturity_days.split(",")]
    if a.years * DAYS // a.blocks <= max(mats):
        p.error(f"--blocks {a.blocks} leaves blocks of {a.years * DAYS // a.blocks} days, too short for a "
                f"{max(mats)}-day stretch: use fewer --blocks or more --years")
    r = training_returns("heston", a.years)
    t0 = time.time()
    prices, keys = block_prices(r, a.blocks, max(mats), strikes=strikes, mats=mats, rate=a.rate)
    mean, se = prices.mean(0), prices.std(0, ddof=1) / np.sqrt(a.blocks)
    elast = (width_elasticity(r, a.blocks, max(mats), strikes=strikes, mats=mats, rate=a.rate, price=mean)
             if a.elasticity else np.full(len(keys), np.nan))
    print(f"\nheston, {a.years} training years in {a.blocks} blocks ({len(r) // a.blocks // DAYS} years each), "
          f"every {max(mats)}-day stretch, conditional correction, r = {a.rate}; {time.time() - t0:.0f} s\n")
    print("| option | K | days | sample | se% | heston | err% | within 2 % | within 2 % + 2 se | elast |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    n2 = n2se = 0
    for (opt, k, d), m, s, e in zip(keys, mean, se, elast, strict=True):
        orc = heston_stationary_price(100.0, k, d, a.rate, opt)
        err, sep = 100 * (m - orc) / orc, 100 * s / orc
        ok, ok_se = abs(err) <= 2, abs(err) <= 2 + 2 * sep
        n2, n2se = n2 + ok, n2se + ok_se
        print(f"| {opt} | {k:g} | {d} | {m:.4f} | {sep:.2f} | {orc:.4f} | {err:+.2f} | {ok} | {ok_se} | {e:.1f} |")
    print(f"\nthe training sample's own law: {n2}/{len(keys)} within 2 % of the stationary Heston price, "
          f"{n2se}/{len(keys)} within 2 % + 2 se")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
