"""Anomaly detection benchmark: planted anomalies in held-out S&P 500 returns, and known dislocations.

1. Planted anomalies. The held-out returns of 2015-2018 (the model is trained on 1999-2014) get
   anomalies of one kind at random, well-separated days (``findiffusion.anomaly.plant_anomalies``):
   ``shock`` (10 isolated days of 4-8 local sd), ``vol_burst`` (8 bursts of 5 days x 3-5),
   ``resample`` (6 stretches of 20 days replaced by days drawn from anywhere in 2015-2018: breaks
   volatility clustering) and ``sign_flip`` (6 stretches of 20 days multiplied by -1). Every planted
   day is a positive. Detectors, all in the same run: the diffusion imputation score (single day,
   and with the 5-day block score), the diffusion denoising score, a 60-day rolling z-score, the
   |standardised residual| of a GARCH(1,1)-t fitted on 1999-2014, an isolation forest.
   AUROC and AUPRC per kind, pooled over ``--reps`` replicates (seeds 0..reps-1).
2. Known dislocations: every day of 1999-2018 is scored, and the rank (1 = most anomalous of ~5000)
   of 2008-10 (best day of the month), 2010-05-06, 2011-08-08, 2015-08-24 and 2018-02-05 is printed.

    .venv/bin/python bench/anomaly.py [--model models/spx-2014] [--quick]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

import findiffusion
from findiffusion import anomaly as A

sys.path.insert(0, str(Path(__file__).resolve().parent))
from forecast import OUT, TRAIN_END, get_model  # noqa: E402

EVENTS = {"shock": (10, 10), "vol_burst": (8, 10), "resample": (6, 20), "sign_flip": (6, 20)}  # (n, length)
DISLOCATIONS = ["2008-10", "2010-05-06", "2011-08-08", "2015-08-24", "2018-02-05"]


def detectors(model, x: np.ndarray, train: np.ndarray, a: argparse.Namespace, timing: dict) -> dict[str, np.ndarray]:
    kw = {"n_samples": a.samples, "steps": a.steps, "seed": a.seed}
    out = {}

    def timed(name, fn):
        if a.detectors and name not in a.detectors.split(","):
            return
        t0 = time.time()
        out[name] = fn()
        timing[name] = timing.get(name, 0.0) + time.time() - t0

    timed("diff-impute", lambda: A.imputation_scores(model, x, **kw).score)
    if a.causal:
        timed("diff-causal", lambda: A.causal_scores(model, x, **kw).score)
    if not a.no_block and "diff-impute" in out:  # the same combination as score_anomalies("impute+block")
        timed("diff-impute+block", lambda: np.fmax(out["diff-impute"],
                                                   A.imputation_scores(model, x, block=5, stride=3, **kw).score))
    timed("diff-denoise", lambda: A.denoising_scores(model, x, n_levels=16, n_noise=a.noise, seed=a.seed).score)
    timed("diff-denoise-block5", lambda: A.denoising_scores(model, x, n_levels=16, n_noise=a.noise, block=5, stride=3,
                                                            seed=a.seed).score)
    if "diff-denoise" in out and "diff-denoise-block5" in out:  # = score_anomalies("denoise+block")
        out["diff-denoise+block"] = np.fmax(out["diff-denoise"], out["diff-denoise-block5"])
    timed("rolling-z", lambda: A.rolling_zscore(x, 60))
    timed("garch-t", lambda: A.garch_scores(x, fit_returns=train))
    timed("iforest", lambda: A.isolation_forest_scores(x, seed=a.seed))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="model trained on 1999..2014 (default: fit or reuse one in bench/out)")
    ap.add_argument("--quick", action="store_true", help="small smoke run (tiny model, 1 replicate, fewer draws)")
    ap.add_argument("--reps", type=int, default=None, help="replicates per kind (default 2; quick 1)")
    ap.add_argument("--samples", type=int, default=None, help="imputations per day (default 32; quick 16)")
    ap.add_argument("--steps", type=int, default=None, help="DDIM steps per imputation (default 10; quick 8)")
    ap.add_argument("--noise", type=int, default=2, help="noise draws per level of the denoising score")
    ap.add_argument("--no-block", action="store_true", help="skip the (slower) block score")
    ap.add_argument("--causal", action="store_true", help="add the one-sided (causal) diffusion score (4x impute)")
    ap.add_argument("--skip-dislocations", action="store_true")
    ap.add_argument("--only-dislocations", action="store_true", help="skip the planted-anomaly part")
    ap.add_argument("--detectors", help="comma list to run only some (diff-impute, diff-causal, ...)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    a.reps = a.reps or (1 if a.quick else 2)
    a.samples = a.samples or (16 if a.quick else 32)
    a.steps = a.steps or (8 if a.quick else 10)

    r, _ = findiffusion.load_series("sp500")
    train = r.loc[:TRAIN_END].to_numpy()
    test = r.loc[pd.Timestamp(TRAIN_END) + pd.Timedelta(days=1):]
    model, mpath = get_model(a.model, a.quick, r, a.seed, a.device)
    print(f"model {mpath}; test {test.index[0].date()} .. {test.index[-1].date()} ({len(test)} days); "
          f"{a.reps} replicate(s); imputation K={a.samples}, ddim {a.steps} steps; denoise 16 levels x {a.noise}")

    rows, timing = [], {}
    for kind, (n_ev, length) in ({} if a.only_dislocations else EVENTS).items():
        scores: dict[str, list[np.ndarray]] = {}
        labels = []
        for rep in range(a.reps):
            x, lab = A.plant_anomalies(test.to_numpy(), kind, n_ev, seed=1000 * rep + 7, length=length)
            for k, v in detectors(model, x, train, a, timing).items():
                scores.setdefault(k, []).append(v)
            labels.append(lab)
        y = np.concatenate(labels)
        for k, v in scores.items():
            auroc, auprc = A.auroc_auprc(np.concatenate(v), y)
            rows.append({"kind": kind, "detector": k, "auroc": auroc, "auprc": auprc, "base_rate": y.mean()})
        print(f"  {kind} done", file=sys.stderr)
    t = pd.DataFrame(rows, columns=["kind", "detector", "auroc", "auprc", "base_rate"])
    print()
    print("kind        detector            AUROC   AUPRC   (positives share)")
    for _, row in t.iterrows():
        best = row["auroc"] >= t.loc[t["kind"] == row["kind"], "auroc"].max() - 0.005
        print(f"{row['kind']:<11} {row['detector']:<18} {row['auroc']:6.3f}  {row['auprc']:6.3f}"
              f"  ({row['base_rate']:.3f}){'  *' if best else ''}")
    print("(* = best or within 0.005 of the best AUROC for the kind)")
    print("wall time (s, all replicates and kinds): " + ", ".join(f"{k} {v:.1f}" for k, v in timing.items()))
    OUT.mkdir(exist_ok=True)
    if len(t):
        t.to_csv(OUT / ("anomaly_quick.csv" if a.quick else "anomaly.csv"), index=False)

    if not a.skip_dislocations:
        timing = {}
        sc = detectors(model, r.to_numpy(), train, a, timing)
        dates = r.index
        print(f"\nrank of known dislocations among all {len(r)} days of {dates[0].date()} .. {dates[-1].date()}"
              " (1 = most anomalous)")
        print("date         return   " + "  ".join(f"{k:>17}" for k in sc))
        for d in DISLOCATIONS:
            sel = np.flatnonzero(dates.strftime("%Y-%m-%d").str.startswith(d))
            ranks = {k: (-v).argsort().argsort() + 1 for k, v in sc.items()}
            best = {k: int(rk[sel].min()) for k, rk in ranks.items()}
            day = sel[np.argmin(ranks[next(iter(ranks))][sel])]
            print(f"{d:<11} {100 * r.iloc[day]:+6.2f}%  " + "  ".join(f"{best[k]:>17}" for k in sc))
        print("wall time (s): " + ", ".join(f"{k} {v:.1f}" for k, v in timing.items()))
        first = next(iter(sc))
        top = np.argsort(-sc[first])[:10]
        print(f"top 10 days by {first}: " + ", ".join(f"{dates[i].date()} ({100 * r.iloc[i]:+.1f}%)" for i in top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
