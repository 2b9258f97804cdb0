"""Short-dated European prices from a later day of the generated paths: is the model's law the same at every position?

Unconditional paths of a stationary market have the same law from any day on, so a 21- or 63-day option priced on
days d+1..d+D of the paths should cost the same for every offset d. A generated path is not stationary by
construction: its first window is drawn from the start state alone, and the days after it come from stitched chunks,
each drawn given the days before it (findiffusion.stitching). This bench prices the 21- and 63-day Europeans of goal
(b) (strikes 80-120, calls and puts, r = 3 %, conditional martingale correction) on days d+1.. of paths of d + 63
days, for each offset d in ``--offsets``, against the stationary QuantLib Heston price of bench/pricing.py, with
importance sampling whose noise shifts sit on those days (eq. (2) of findiffusion.importance with the shifted days
moved by d; weights exact for any d) and a pilot of ``--pilot`` paths choosing the shifts and start powers (eqs.
(4)-(5) there, the pilot's payoffs taken on the same days). With offset 0 it is bench/pricing.py's
``--importance --importance-pilot N`` run of the short maturities, to the bit.

    .venv/bin/python bench/pricing_offset.py --model bench/out/pricing/recalibrated-<key> --offsets 0,64,128 --n 30000

(the recalibrated model that bench/pricing.py saved; 30 000 paths: about 3 minutes an offset up to the window, 5-6
minutes beyond it, on 2 cores.)
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import findiffusion  # noqa: E402
from findiffusion.importance import (  # noqa: E402
    ImportanceConfig,
    MixtureTilt,
    cross_entropy_powers,
    cross_entropy_shifts,
    effective_sample_size,
)
from findiffusion.pricing import price_paths  # noqa: E402
from pricing import heston_stationary_price  # noqa: E402

MATURITIES, STRIKES, S0, RATE = (21, 63), [80.0, 90.0, 100.0, 110.0, 120.0], 100.0, 0.03


class OffsetTilt(MixtureTilt):
    """The proposal of eqs. (2)-(3) of findiffusion.importance with the shifted days moved by ``offset``: component m
    shifts the noise of path days [offset, offset + D_m), and s_m is the standardised noise sum of those days."""

    def __init__(self, config: ImportanceConfig, n: int, length: int, generator: torch.Generator, offset: int) -> None:
        super().__init__(config, n, length, generator)
        self.offset = offset

    def shift(self, rows: slice, days: int) -> np.ndarray:
        """The library's shifts of the days from the offset on, zeros before. Shape: (rows, days)."""
        later = super().shift(rows, days - self.offset)  # (rows, days - offset)
        return np.concatenate([np.zeros((later.shape[0], self.offset)), later], axis=1)

    def record(self, rows: slice, xi: np.ndarray) -> None:
        """The library's noise sums of the days from the offset on. xi: Shape (rows, days)."""
        super().record(rows, xi[:, self.offset:])


def draw(model, config: ImportanceConfig, n: int, seed: int, offset: int) -> tuple[np.ndarray, OffsetTilt]:
    """n paths of offset + max(horizons) days from the proposal, seeded as findiffusion.importance does; returns the
    days from the offset on and the proposal's record. Shape: (n, max(horizons))."""
    gen = torch.Generator().manual_seed(int(seed))
    length = offset + max(config.horizons)
    tilt = OffsetTilt(config, n, length, gen, offset)
    r = model.sample(n, length, generator=gen, tilt=tilt, progress=True)  # (n, length)
    return r[:, offset:], tilt


def price_from(model, offset: int, n: int, seed: int, pilot: int) -> tuple[list[tuple], str]:
    """Rows (option, strike, days, price, oracle, error %, SE %) priced on days offset+1.., and a note."""
    config = ImportanceConfig(MATURITIES)
    if pilot:  # eqs. (4)-(5) on the pilot's paths, with tune_shifts's pilot seed
        pilot_seed = int(np.random.SeedSequence([int(seed), 4_711]).generate_state(1)[0])
        rp, tp = draw(model, config, pilot, pilot_seed, offset)
        wp, money = tp.weights(), (max(STRIKES) / S0, min(STRIKES) / S0)
        config = dataclasses.replace(
            config, shifts=cross_entropy_shifts(rp, tp.s[:, ::2], wp, MATURITIES, money, fallback=config.means()),
            start_powers=cross_entropy_powers(rp, tp.u, wp, MATURITIES, money, fallback=config.powers()))
    r, tilt = draw(model, config, n, seed, offset)
    w = tilt.weights()
    t = price_paths(r, s0=S0, strikes=STRIKES, maturities_days=list(MATURITIES), rate=RATE, greeks=False,
                    correction="conditional", weights=w).table
    rows = []
    for _, row in t.iterrows():
        o = heston_stationary_price(S0, row.strike, int(row.maturity_days), RATE, row.option)
        rows.append((row.option, row.strike, int(row.maturity_days), row.price, o, 100 * (row.price - o) / o,
                     100 * row.se / o))
    note = (f"shifts {np.round(config.means(), 2).tolist()}, start powers {np.round(config.powers(), 1).tolist()}, "
            f"effective sample size {effective_sample_size(w):.0f} of {n}")
    return rows, note


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="a calibrated Heston model (e.g. the one bench/pricing.py saved)")
    p.add_argument("--offsets", default="0,64,128", help="days d skipped before the priced days (default 0,64,128)")
    p.add_argument("--n", type=int, default=30_000, help="paths per offset")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--pilot", type=int, default=5000, help="pilot paths for the shifts and start powers (0: none)")
    a = p.parse_args(argv)
    try:
        offsets = [int(x) for x in a.offsets.split(",")]
    except ValueError:
        p.error(f"--offsets must be whole numbers of days separated by commas, got {a.offsets!r}")
    if min(offsets) < 0 or a.n < 100 or a.seed < 0 or not (a.pilot == 0 or a.pilot >= 100):
        p.error("--offsets must be >= 0, --n at least 100, --seed >= 0 and --pilot 0 or at least 100")
    if not (Path(a.model) / "model.json").exists():
        p.error(f"no model at {a.model}: pass a folder with model.json (bench/pricing.py saves them in bench/out/pricing)")
    torch.set_num_threads(2)
    model = findiffusion.load(a.model)
    print(f"bench/pricing_offset.py  model={Path(a.model).name}  n={a.n}  seed={a.seed}  pilot={a.pilot}  "
          f"window={model.window}\n")
    table = {}
    for off in offsets:
        t0 = time.time()
        rows, note = price_from(model, off, a.n, a.seed, a.pilot)
        table[off] = rows
        strict = sum(abs(e) <= 2 for *_, e, _ in rows)
        within = sum(abs(e) <= 2 + 2 * s for *_, e, s in rows)
        print(f"days {off + 1}..: {note}; {strict}/{len(rows)} within 2 %, {within}/{len(rows)} within 2 % + 2 SE "
              f"({time.time() - t0:.0f} s)", flush=True)
    print("\nerror % (SE %) against the stationary Heston price, by the first priced day\n")
    print("| contract | " + " | ".join(f"from day {off + 1}" for off in offsets) + " |")
    print("|---" * (len(offsets) + 1) + "|")
    for i, (opt, k, d, *_) in enumerate(table[offsets[0]]):
        if opt == "call" and k < 100 or opt == "put" and k > 100:
            continue  # deep in the money: the forward, not the tail
        print(f"| {opt} {k:.0f}, {d} days | "
              + " | ".join(f"{table[off][i][5]:+.1f} ({table[off][i][6]:.1f})" for off in offsets) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
