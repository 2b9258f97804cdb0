"""Realism bench: the issue-4 protocol, findiffusion vs GARCH(1,1)-t, GJR-skew-t and a block bootstrap.

Protocol (per data set): daily log returns; train on the first 80 % of the days;
2000 generated windows of 64 days per generator, scored against all 64-day
windows of the training part (:mod:`findiffusion.stylized_facts`); the held-out
last 20 % serves the memorization check. findiffusion is fitted with the
default FitConfig for each model seed (cached under bench/out/models/), the
baselines on the same training returns. Prints one table per data set with
the issue's targets and how many model seeds meet each, and writes the full
report (HTML, Markdown, PNGs) of the first seed under bench/out/.

    .venv/bin/python bench/realism.py                       # sp500, 3 model seeds (fits ~5 min each on CPU)
    .venv/bin/python bench/realism.py --data sp500,wti      # and a commodity
    .venv/bin/python bench/realism.py --model models/spx-80 # reuse a model fitted on the first 80 %
    .venv/bin/python bench/realism.py --quick               # smoke run: tiny model, 500 windows
    .venv/bin/python bench/realism.py --no-gjr --vol-ito    # the off-by-default options on the S&P 500:
    .venv/bin/python bench/realism.py --no-gjr --calibrate by-start   # (also by-position)
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import torch

import findiffusion
from findiffusion import report as rp
from findiffusion.baselines import fit_baselines
from findiffusion.config import config_tag
from findiffusion.data import SeriesInfo, make_windows
from findiffusion.networks import NetworkConfig
from findiffusion.training import FitConfig, TrainConfig
from model_cache import cached_model, recalibrate

OUT = Path(__file__).resolve().parent / "out"


def get_model(data: str, returns, seed: int, quick: bool, model_dir: str | None, device: str = "cpu",
              vol_asym: float = 0.0, vol_ito: bool = False):
    """Load ``model_dir`` or the cached default-config model of this data set and seed (fit it if missing)."""
    if model_dir:
        return findiffusion.load(model_dir, device=device), model_dir
    tag = "quick" if quick else "default"
    cfg = FitConfig(seed=seed)
    if quick:
        cfg = dataclasses.replace(cfg, network=NetworkConfig(channels=32), train=TrainConfig(steps=400))
    if vol_asym:  # a variant: the filter's fitted asymmetry bound (TrainConfig.vol_asym), also with --quick
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, vol_asym=vol_asym))
    if vol_ito:  # a variant: the filter mean with the Ito term, eq. (3c) (TrainConfig.vol_ito)
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, vol_ito=True))
    d = OUT / "models" / f"{Path(data).stem}-80-seed{seed}-{tag}-{config_tag(cfg)}"  # a new default gets a new cache
    model = cached_model(d, cfg, device)  # or fitted before the start-law fix, or recalibrated (bench/model_cache.py)
    if model is not None:
        return model, str(d)
    info = SeriesInfo(source=data, column="", n_returns=len(returns), start=str(returns.index[0].date()),
                      end=str(returns.index[-1].date()), last_price=None)
    t0 = time.time()
    print(f"  fitting {tag} model seed {seed} on {len(returns)} days ...", file=sys.stderr, flush=True)
    model = findiffusion.fit(returns, cfg, out_dir=d, data_info=info, device=device)
    print(f"  fitted in {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
    return model, str(d)


def err(key: str, v: float, real: float) -> float:
    """The size of a miss: comparison metrics as they are, single-sample statistics as |v - real|."""
    return v if key in ("disc", "w1_1", "w1_5", "w1_20", "acf_r_rmse", "acf_abs_rmse", "lev_rmse") else abs(v - real)


def run_data(data: str, args: argparse.Namespace) -> None:
    returns, info = findiffusion.load_series(data)
    n_train = int(round(0.8 * len(returns)))
    train, rest = returns.iloc[:n_train], returns.iloc[n_train:]
    real = make_windows(train.to_numpy(), args.length)  # (M, T)
    held = make_windows(rest.to_numpy(), args.length)
    print(f"\n## {data}: train {train.index[0].date()} .. {train.index[-1].date()} ({len(train)} days, "
          f"{len(real)} windows), held out {len(rest)} days", flush=True)
    gens: dict[str, np.ndarray] = {}
    timings: dict[str, float] = {}
    model_dirs = args.model or [None] * len(args.seeds)
    for seed, mdir in zip(args.seeds if not args.model else range(len(args.model)), model_dirs, strict=True):
        model, where = get_model(data, train, seed, args.quick, mdir, args.device, args.vol_asym, args.vol_ito)
        if args.calibrate:  # in memory: the cached model on disk keeps its own calibration
            n_cal, secs = recalibrate(model, by_position=args.calibrate == "by-position",
                                      by_start=args.calibrate == "by-start", returns=train.to_numpy(),
                                      sampler=args.sampler, steps=args.steps)  # the draws it compares
            print(f"  recalibrated {Path(where).name} {args.calibrate} on {n_cal} windows in {secs:.0f} s",
                  file=sys.stderr, flush=True)
        name = f"findiffusion s{seed}" if not args.model else f"findiffusion {Path(where).name}"
        t0 = time.time()
        gens[name] = model.sample(args.n, args.length, sampler=args.sampler, steps=args.steps, seed=args.sample_seed)
        timings[name] = time.time() - t0
    n_model = len(gens)
    for b in fit_baselines(train.to_numpy(), gjr=not args.no_gjr):
        t0 = time.time()
        gens[b.name] = b.sample(args.n, args.length, seed=args.sample_seed)
        timings[b.name] = time.time() - t0
    t0 = time.time()
    rep = rp.evaluate(real, gens, held, disc_seeds=tuple(args.disc_seeds))
    t_eval = time.time() - t0

    names = list(gens)
    header = ["metric", "real", *names, "target", f"met ({n_model} seeds)"]
    rows = []
    for m in rp.METRICS:
        real_v = rep.values["real"].get(m.key, np.nan)
        row = [m.label, rp._fmt(real_v)] + [rp._fmt(rep.values[n].get(m.key, np.nan)) for n in names]
        met = ""
        if m.check is not None:
            vals = [rep.values[n].get(m.key, np.nan) for n in names[:n_model]]
            met = f"{sum(bool(np.isfinite(v) and m.check(v, real_v)) for v in vals)}/{n_model}"
        rows.append(row + [m.target, met])
    rows.append(["sampling wall time (s)", "-"] + [f"{timings[n]:.1f}" for n in names] + ["", ""])
    widths = [max(len(r[i].replace("|", "\\|")) for r in [header, *rows]) for i in range(len(header))]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print("| " + " | ".join(c.replace("|", "\\|").ljust(w) for c, w in zip(r, widths, strict=True)) + " |")
    used = "{} {} steps".format(*model.resolve_sampler(args.sampler, args.steps))
    print(f"\n{args.n} windows x {args.length} days per generator, sample seed {args.sample_seed}, sampler "
          f"{used}, classifier seeds {args.disc_seeds}, "
          f"scoring {t_eval:.0f} s", flush=True)
    # full report (plots) of the first model seed and the baselines
    first = names[0]
    sub = {first: gens[first], **{n: gens[n] for n in names[n_model:]}}
    sub_rep = rp.RealismReport([*sub], {k: rep.values[k] for k in ["real", *sub]},
                               {k: rep.facts[k] for k in ["real", *sub]}, {k: rep.windows[k] for k in ["real", *sub]},
                               notes=[f"{data}: trained on the first 80 % ({train.index[0].date()} .. "
                                      f"{train.index[-1].date()}); bench/realism.py, sample seed {args.sample_seed}"],
                               title=f"findiffusion realism report: {data}")
    out = OUT / f"realism-{Path(data).stem}{'-quick' if args.quick else ''}"
    sub_rep.write(out)
    print(f"report of {first}: {out / 'report.html'}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="sp500", help="comma-separated: sp500, nasdaq, wti or CSV/Parquet files")
    p.add_argument("--model", action="append", help="model directory fitted on the first 80 %% (repeat per seed)")
    p.add_argument("--seeds", default="0,1,2", help="model seeds to fit when no --model (default 0,1,2)")
    p.add_argument("--n", type=int, default=2000, help="generated windows per generator (default 2000)")
    p.add_argument("--length", type=int, default=64, help="days per window (default 64)")
    p.add_argument("--sampler", default=None, help="sampler (default: each model's own, model.default_sampler)")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--sample-seed", type=int, default=0)
    p.add_argument("--disc-seeds", default="1,2,3", help="classifier seeds (default 1,2,3)")
    p.add_argument("--vol-asym", type=float, default=0.0,
                   help="fit models with this bound on the volatility filter's asymmetry (default 0: the default model)")
    p.add_argument("--vol-ito", action="store_true", help="fit models with the Ito drift in the filter mean (fit --vol-ito)")
    p.add_argument("--calibrate", choices=("by-position", "by-start"), default=None,
                   help="recalibrate each model so (calibrate --by-position / --by-start) before sampling, in memory")
    p.add_argument("--no-gjr", action="store_true", help="leave out the GJR-skew-t baseline")
    p.add_argument("--quick", action="store_true", help="smoke run: tiny model (400 steps), 500 windows, 1 seed")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    args = p.parse_args(argv)
    args.seeds = [int(s) for s in args.seeds.split(",")]
    args.disc_seeds = [int(s) for s in args.disc_seeds.split(",")]
    if args.quick:
        args.n, args.seeds, args.disc_seeds = min(args.n, 500), args.seeds[:1], args.disc_seeds[:1]
    torch.set_num_threads(args.threads)
    t0 = time.time()
    for data in args.data.split(","):
        run_data(data.strip(), args)
    print(f"\ntotal wall time {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
