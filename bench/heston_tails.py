"""Short-horizon tails of Heston-fitted models: sampler steps, fit seeds and the per-day state input (issue 5).

Why the 128-day model fitted on 10 000 simulated Heston years prices the out-of-the-money wings too rich
(docs/pricing.md, "Where the 128-day model's rich wings come from"). For each model and sampler: N paths of
``--days`` days (one native window: no stitching), each sampler recalibrated (k and g of
:meth:`~findiffusion.model.DiffusionModel.calibrate`), priced with the conditional martingale correction against
the stationary Heston price of QuantLib (bench/pricing.py); the excess kurtosis of 1-, 21- and ``--days``-day
sums and the relative price errors of the out-of-the-money contracts. Fresh Heston paths are the reference row.

Models: ``--model DIR`` (repeatable), or ``--fit-seed S`` (repeatable) to fit, and cache in bench/out/pricing, the
bench's 128-day configuration (``bench/pricing.py --window 128 --train-steps 16000``) with fit seed S on
``--years`` simulated years; ``--day-state`` adds the per-day filter state input (``TrainConfig.day_state``).
A fit takes 25-35 min on 2 cores.

    .venv/bin/python bench/heston_tails.py --model bench/out/pricing/model-heston-default-steps16000-window128-10000y-05c252bd \\
        --samplers dpm:10,dpm:20
    .venv/bin/python bench/heston_tails.py --fit-seed 1 --fit-seed 0 --day-state
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parent))
import findiffusion  # noqa: E402
from findiffusion.config import config_tag  # noqa: E402
from findiffusion.pricing import price_paths  # noqa: E402
from model_cache import cached_model  # noqa: E402
from pricing import OUT, bench_config, heston_stationary_price, process_reference, training_returns  # noqa: E402

STRIKES = [80.0, 90.0, 100.0, 110.0, 120.0]


def fitted(seed: int, day_state: bool, years: int) -> Path:
    """The bench's 128-day Heston configuration with fit seed ``seed`` (cached; fitted if missing)."""
    cfg = bench_config(False, train_steps=16000, window=128)
    cfg = dataclasses.replace(cfg, seed=seed, train=dataclasses.replace(cfg.train, day_state=day_state))
    d = OUT / f"model-heston-tails-{years}y-{config_tag(cfg)}"
    if cached_model(d, cfg) is None:
        t0 = time.time()
        findiffusion.fit(training_returns("heston", years), cfg, progress=True).save(d)
        print(f"fitted {d} in {time.time() - t0:.0f} s", flush=True)
    return d


def kurtoses(r: np.ndarray, days: int) -> str:
    """Excess kurtosis of the 1-, 21- and ``days``-day sums of paths r. Shape: r (N, T >= days)."""
    return " / ".join(f"{stats.kurtosis(r[:, :d].sum(1)):.2f}" for d in (1, 21, days))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", action="append", default=[], help="a Heston-fitted model directory (repeatable)")
    p.add_argument("--fit-seed", type=int, action="append", default=[],
                   help="fit (cached) the 128-day configuration with this seed (repeatable)")
    p.add_argument("--day-state", action="store_true", help="with --fit-seed: the per-day filter state input")
    p.add_argument("--years", type=int, default=10_000, help="simulated training years for --fit-seed (default 10000)")
    p.add_argument("--samplers", default="dpm:10", help="sampler:steps list (default dpm:10)")
    p.add_argument("--n", type=int, default=30_000, help="paths per row (default 30000)")
    p.add_argument("--days", type=int, default=63, help="path length and longest maturity (default 63)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed, the same for every row (paired)")
    p.add_argument("--calibration-windows", type=int, default=bench_config().calibration_windows,
                   help="windows each sampler is recalibrated on (default: the fit default, FitConfig.calibration_windows)")
    a = p.parse_args(argv)
    if a.n < 2 or a.days <= 21:
        p.error(f"--n must be at least 2 and --days above 21, got {a.n} and {a.days}")
    if not a.model and not a.fit_seed:
        p.error("give --model DIR or --fit-seed S")
    specs = [s.split(":") for s in a.samplers.split(",")]
    if not all(len(s) == 2 and s[1].isdigit() for s in specs):
        p.error(f"--samplers must be sampler:steps items, got {a.samplers!r}")
    torch.set_num_threads(2)
    models = [Path(m) for m in a.model] + [fitted(s, a.day_state, a.years) for s in a.fit_seed]
    mats, rate = [21, a.days], 0.03
    oracle = {(o, k, d): heston_stationary_price(100.0, k, d, rate, o)
              for o in ("call", "put") for k in STRIKES for d in mats}
    otm = [(o, k, d) for (o, k, d) in oracle if (o == "call") == (k > 100.0) and k != 100.0]
    print(f"{a.n} paths of {a.days} days, sampling seed {a.seed}, conditional martingale correction, r = 3 %; "
          "price errors against the stationary Heston price of QuantLib")
    print("row | excess kurtosis 1 / 21 / " + str(a.days) + " days | "
          + " ".join(f"{o[0]}{k:.0f}/{d}" for o, k, d in otm) + " | wall s")

    def row(name: str, r: np.ndarray, t0: float) -> None:
        tab = price_paths(r, s0=100.0, strikes=STRIKES, maturities_days=mats, rate=rate, greeks=False,
                          correction="conditional").table.set_index(["option", "strike", "maturity_days"])
        errs = " ".join(f"{100 * (tab.price[c] - oracle[c]) / oracle[c]:+.1f}%" for c in otm)
        print(f"{name} | {kurtoses(r, a.days)} | {errs} | {time.time() - t0:.0f}", flush=True)

    t0 = time.time()
    row("fresh Heston paths", process_reference("heston", a.n, a.days, a.seed), t0)
    for d in models:
        m = findiffusion.load(d)
        for name, steps in specs:
            t0 = time.time()
            m.calibrate(a.calibration_windows, seed=0, sampler=name, steps=int(steps))
            row(f"{d.name} {name} {steps}", m.sample(a.n, a.days, sampler=name, steps=int(steps), seed=a.seed), t0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
