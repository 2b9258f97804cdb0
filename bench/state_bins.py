"""The state-binned calibration (eq. (5) of findiffusion.model): residual width by volatility state.

For a fitted filter model and the training returns it was fitted on, prints E[z^2] by volatility-state bin
of the filter (the model's own bins, ``VolatilityFilter.state_edges``):

* unconditional windows: the training residuals against N generated windows decoded with k alone and with
  k and the state factors g (what ``sample`` does without a context);
* continuations: M random training days with their 32 observed days before them (the model's context) and
  K continuations of H days each, against the real H days that followed; decoded with k alone (what
  ``sample(context=...)`` does) and with k and g (what it would do if g applied to conditional draws).

    .venv/bin/python bench/state_bins.py --model bench/out/spx-2014-default-<tag> --end 2014-12-31
    .venv/bin/python bench/state_bins.py --model bench/out/models/sp500-80-seed0-default-<tag> --split 80
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import torch

import findiffusion
from findiffusion.data import make_windows


def by_bin(f, z: np.ndarray, b: np.ndarray) -> list[str]:
    """E z^2 per bin and the share of days in it, as table cells."""
    return [f"{np.mean(z[b == j] ** 2):.3f} ({np.mean(b == j):.2f})" if np.any(b == j) else "–"
            for j in range(len(f.state_edges) + 1)]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="a calibrated filter model")
    p.add_argument("--data", default="sp500")
    p.add_argument("--split", default=None, help="80: the model was fitted on the first 80 %% of --data")
    p.add_argument("--end", default=None, help="or: it was fitted on --data up to this date")
    p.add_argument("--n", type=int, default=4000, help="unconditional windows (default 4000)")
    p.add_argument("--contexts", type=int, default=400, help="training days to continue from (default 400)")
    p.add_argument("--k", type=int, default=20, help="continuations per context (default 20)")
    p.add_argument("--horizon", type=int, default=32, help="days per continuation (default 32)")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    torch.set_num_threads(2)
    model = findiffusion.load(a.model)
    f = model.vol_filter
    if not f.state_edges or model.state_factors is None:
        raise SystemExit(f"{a.model}: no state factors (not a calibrated filter model with volatility-state bins)")
    r, _ = findiffusion.load_series(a.data)
    x = (r.iloc[: int(round(0.8 * len(r)))] if a.split == "80" else r.loc[: a.end] if a.end else r).to_numpy()
    u_all, s2_all = model.encode(x)
    z_all = model.transform.inverse(u_all)
    k, g, L, C, H = model.scale_for(), np.asarray(model.state_factors), model.window, model.config.stitch_context, a.horizon

    def decoded(u: np.ndarray, var0: np.ndarray, factors: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        zz, s2 = f.filter(f.unfilter(model.transform.inverse(k * u), var0, factors), var0)
        return zz, f.state_bin(s2[..., :-1])

    print(f"{a.model}: k {k:.4f}, g {' / '.join(f'{v:.3f}' for v in g)}; bins of sigma^2 / v at "
          f"{' / '.join(f'{e:.2f}' for e in f.state_edges)}\n")
    head = "| | " + " | ".join(f"bin {j}" for j in range(len(g))) + " | all days |"
    rule = "|---" * (len(g) + 2) + "|"
    # 1. unconditional windows
    gen = torch.Generator().manual_seed(a.seed)
    var0 = model.start_variance(a.n, gen)
    u = model.sample_model_space(a.n, L, var=var0, generator=gen)  # (N, L), raw model space
    zr, br = make_windows(z_all, L), make_windows(f.state_bin(s2_all[:-1]), L)
    print(f"E z^2 (share of days) by bin, {a.n} unconditional windows of {L} days vs the training windows")
    print(head + "\n" + rule)
    print("| training residuals | " + " | ".join(by_bin(f, zr, br)) + f" | {np.mean(zr ** 2):.3f} |")
    for name, fac in (("generated, k", None), ("generated, k and g (sample)", g)):
        zz, b = decoded(u, var0, fac)
        print(f"| {name} | " + " | ".join(by_bin(f, zz, b)) + f" | {np.mean(zz ** 2):.3f} |")
    # 2. continuations of real training contexts
    rng = np.random.default_rng(a.seed)
    warm = max(C, f.warmup_days(1e-2))
    ts = np.sort(rng.choice(np.arange(warm, len(x) - H), a.contexts, replace=False))
    ctx = np.stack([u_all[t - C:t] for t in ts])  # (M, C)
    var = np.stack([s2_all[t - C:t + 1] for t in ts])  # (M, C + 1)
    uc = model.sample_model_space(a.k, H, context_u=ctx, var=var,
                                  generator=torch.Generator().manual_seed(a.seed + 1)).reshape(-1, H)  # (M K, H)
    v0 = np.repeat(s2_all[ts], a.k)
    zn = np.stack([z_all[t:t + H] for t in ts])  # the real days that followed, (M, H)
    bn = f.state_bin(np.stack([s2_all[t:t + H] for t in ts]))
    print(f"\nE z^2 (share of days) by bin, {a.contexts} training contexts x {a.k} continuations of {H} days "
          "vs the real days that followed")
    print(head + " days 1-4 |\n" + rule + "---|")
    print("| real days that followed | " + " | ".join(by_bin(f, zn, bn))
          + f" | {np.mean(zn ** 2):.3f} | {np.mean(zn[:, :4] ** 2):.3f} |")
    for name, fac in (("generated, k (sample with a context)", None), ("generated, k and g", g)):
        zz, b = decoded(uc, v0, fac)
        print(f"| {name} | " + " | ".join(by_bin(f, zz, b)) + f" | {np.mean(zz ** 2):.3f} | {np.mean(zz[:, :4] ** 2):.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
