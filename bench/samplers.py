"""Sampler trade-off: realism metrics and wall time for DDPM (all steps), DDIM 50/20/10 and the ODE sampler.

Same protocol as bench/realism.py (train on the first 80 %, N windows of 64 days
scored against all training windows); every sampler starts from the same seed.
The last columns give each few-step sampler's error relative to DDPM with all
steps (the reference), metric by metric: 1.00 = the same, 1.10 = 10 % worse.

    .venv/bin/python bench/samplers.py --model models/spx-80   # a model fitted on the first 80 %
    .venv/bin/python bench/samplers.py                         # fits (or reuses) the bench's default model, seed 0
    .venv/bin/python bench/samplers.py --quick                 # smoke run: tiny model, 100 windows
    .venv/bin/python bench/samplers.py --model M --configs sde:200,ode:20,dpm-sde:40 --no-disc

``--grid chain`` runs the sigma-grid samplers (sde, ode, dpm, dpm-sde) from sigma_bar(T) to sigma_bar(1),
the chain's ends, as every model did before filter models got the [0.05, 10] range of eq. (8) in
findiffusion.sampling; ``--grid late`` on [0.05, 10] whatever the model; ``--grid model`` (default) on
the model's own :attr:`sigma_range`.
``--configs`` picks the samplers (``name:steps``, ``name`` alone for its default steps; the first one
is the reference of the ratio columns). ``--no-disc`` skips the classifier (minutes per sampler on a
CPU); the other metrics are those of bench/realism.py.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch

import findiffusion
from findiffusion import report as rp
from findiffusion.data import make_windows
from findiffusion.model import DEFAULT_STEPS
from findiffusion.sampling import SAMPLERS, SIGMA_MAX, SIGMA_MIN

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))
from realism import err, get_model  # noqa: E402

CONFIGS = "ddpm,ddim:50,ddim:20,ddim:10,ode:20,ode:10"


def parse_configs(text: str) -> list[tuple[str, int | None]]:
    """``"ddpm,ddim:50"`` -> [("ddpm", None), ("ddim", 50)]."""
    out = []
    for item in text.split(","):
        name, _, steps = item.strip().partition(":")
        if name not in SAMPLERS:
            raise SystemExit(f"unknown sampler {name!r} in --configs; use {', '.join(SAMPLERS)}")
        out.append((name, int(steps) if steps else None))
    return out
KEYS = ("disc", "w1_1", "w1_20", "kurtosis", "hill", "var99", "es99", "acf_abs_rmse", "lev_rmse")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="sp500")
    p.add_argument("--model", help="model directory fitted on the first 80 %% of --data")
    p.add_argument("--n", type=int, default=2000, help="windows per sampler (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="sample seed (default 0)")
    p.add_argument("--grid", choices=("model", "chain", "late"), default="model",
                   help="sigma range of the sigma-grid samplers: the model's (default) or the whole chain")
    p.add_argument("--configs", default=CONFIGS, help=f"samplers to compare, name[:steps] (default {CONFIGS})")
    p.add_argument("--disc-seeds", default="1,2,3")
    p.add_argument("--no-disc", action="store_true", help="skip the discriminative score")
    p.add_argument("--quick", action="store_true", help="smoke run: tiny model, 100 windows, 1 classifier seed")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    disc_seeds = () if args.no_disc else tuple(int(s) for s in args.disc_seeds.split(","))
    if args.quick:
        args.n, disc_seeds = min(args.n, 100), disc_seeds[:1]
    returns, _ = findiffusion.load_series(args.data)
    n_train = int(round(0.8 * len(returns)))
    train = returns.iloc[:n_train]
    model, where = get_model(args.data, train, 0, args.quick, args.model, args.device)
    if args.grid != "model":  # the whole chain (as before eq. (8)'s late start) or the late start for any model
        rng = (None, None) if args.grid == "chain" else (SIGMA_MAX, SIGMA_MIN)
        type(model).sigma_range = property(lambda self: rng)
    real = make_windows(train.to_numpy(), model.window)
    held = make_windows(returns.iloc[n_train:].to_numpy(), model.window)
    gens, wall = {}, {}
    for sampler, steps in parse_configs(args.configs):
        steps = steps or DEFAULT_STEPS[sampler] or model.denoiser.schedule.T
        name = f"{sampler} {steps}"
        t0 = time.time()
        gens[name] = model.sample(args.n, model.window, sampler=sampler, steps=steps, seed=args.seed)
        wall[name] = time.time() - t0
        print(f"  {name}: {wall[name]:.1f} s", file=sys.stderr, flush=True)
    rep = rp.evaluate(real, gens, held, disc_seeds=disc_seeds, discriminator=bool(disc_seeds))
    names = list(gens)
    ref = names[0]
    labels = {m.key: m.label for m in rp.METRICS}
    header = ["metric", "real", *names, *[f"{n} / {ref}" for n in names[1:]]]
    rows = []
    for k in KEYS:
        if k not in rep.values[ref]:
            continue
        rv = rep.values["real"].get(k, np.nan)
        errs = [err(k, rep.values[n][k], rv) for n in names]
        rel = [f"{e / errs[0]:.2f}" if errs[0] > 0 else "-" for e in errs[1:]]
        rows.append([labels[k] + ("" if k in ("disc", "w1_1", "w1_20", "acf_abs_rmse", "lev_rmse") else " (|err|)"),
                     rp._fmt(rv), *[rp._fmt(e) for e in errs], *rel])
    rows.append(["wall time (s)", "-", *[f"{wall[n]:.1f}" for n in names], *[f"{wall[n] / wall[ref]:.2f}" for n in names[1:]]])
    widths = [max(len(r[i].replace("|", "\\|")) for r in [header, *rows]) for i in range(len(header))]
    print(f"\nmodel {where}, grid {args.grid} {model.sigma_range}, {args.n} windows of {model.window} days, seed {args.seed}, classifier seeds {disc_seeds}")
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print("| " + " | ".join(c.replace("|", "\\|").ljust(w) for c, w in zip(r, widths, strict=True)) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
