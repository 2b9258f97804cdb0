"""``findiffusion demo``: the main job on the embedded S&P 500 — fit, sample, summarise, plot."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="fit on the embedded S&P 500, sample paths, write a summary and a plot",
                       description="The README's first command: fit the default model on the S&P 500 shipped "
                                   "with arch, sample paths, and write summary.md and demo.png to --out.")
    p.add_argument("--out", default="demo_output", help="output directory (default demo_output)")
    p.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    p.add_argument("--steps", type=int, default=None, help="training steps (default: the tuned default)")
    p.add_argument("--n", type=int, default=2000, help="synthetic windows to compare (default 2000)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.set_defaults(run=run)


def _stats(r: np.ndarray) -> dict[str, float]:
    """Summary statistics of windows of returns. Shape: (N, T); ACFs pooled within windows."""
    from scipy import stats

    flat = r.ravel()

    def acf1(x: np.ndarray) -> float:
        x = x - x.mean()
        return float((x[:, 1:] * x[:, :-1]).mean() / (x * x).mean())

    return {
        "mean (bp/day)": 1e4 * float(flat.mean()),
        "sd (%/day)": 100 * float(flat.std()),
        "skewness": float(stats.skew(flat)),
        "excess kurtosis": float(stats.kurtosis(flat)),
        "1% quantile (%)": 100 * float(np.quantile(flat, 0.01)),
        "ACF r lag 1": acf1(r),
        "ACF |r| lag 1": acf1(np.abs(r)),
    }


def run(args: argparse.Namespace) -> int:
    import dataclasses

    from findiffusion.commands.common import require
    from findiffusion.data import load_series, make_windows
    from findiffusion.files import atomic_write_text, write_array
    from findiffusion.training import FitConfig, fit

    require(args.n > 0, f"--n must be positive, got {args.n}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    returns, info = load_series("sp500")
    cfg = dataclasses.replace(FitConfig(), seed=args.seed)
    if args.steps:
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, steps=args.steps))
    print(f"fitting on {info.n_returns} daily S&P 500 log returns ({info.start} .. {info.end}) ...")
    model = fit(returns, cfg, out_dir=out / "model", device=args.device, progress=True, data_info=info)
    fit_s = time.time() - t0
    t1 = time.time()
    synth = model.sample(args.n, model.window, seed=args.seed, progress=True)
    sample_s = time.time() - t1
    long_paths = model.sample(5, 2520, seed=args.seed + 1, progress=True)
    write_array(out / "synthetic_returns.npy", synth)
    real = make_windows(returns.to_numpy(), model.window)
    s_real, s_syn = _stats(real), _stats(synth)
    sampler_name = "{} {} steps".format(*model.default_sampler)
    lines = [
        "# findiffusion demo: S&P 500",
        "",
        f"Model fitted on {info.n_returns} daily log returns of the S&P 500 ({info.start} .. {info.end}) "
        f"in {fit_s:.0f} s on {model.history['device']}; {args.n} synthetic {model.window}-day windows "
        f"sampled in {sample_s:.1f} s (sampler {sampler_name}, seed {args.seed}).",
        "",
        "| statistic | real windows | synthetic |",
        "|---|---|---|",
    ]
    lines += [f"| {k} | {s_real[k]:.3f} | {s_syn[k]:.3f} |" for k in s_real]
    lines += ["", "Figure: demo.png (price paths, return density, ACF of |r|).",
              "For the full stylized-facts report run `findiffusion report --model " + str(out / "model") + "`.", ""]
    atomic_write_text(out / "summary.md", "\n".join(lines))
    _plot(out / "demo.png", returns.to_numpy(), real, synth, long_paths)
    print("\n".join(lines[4:-3]))
    print(f"wrote {out / 'summary.md'}, {out / 'demo.png'}, model in {out / 'model'}  (total {time.time() - t0:.0f} s)")
    return 0


def _plot(path: Path, r: np.ndarray, real: np.ndarray, synth: np.ndarray, long_paths: np.ndarray) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from findiffusion.files import save_figure

    fig, ax = plt.subplots(1, 3, figsize=(15, 4.2))
    n = long_paths.shape[1]
    start = max(0, len(r) - n)
    ax[0].plot(100 * np.exp(np.cumsum(r[start:start + n])), color="black", lw=1.2, label="S&P 500 (last 10 y)")
    for i, p in enumerate(long_paths):
        ax[0].plot(100 * np.exp(np.cumsum(p)), lw=0.8, alpha=0.8, label="synthetic" if i == 0 else None)
    ax[0].set_yscale("log")
    ax[0].set_title(f"price paths, {n} days (start = 100)")
    ax[0].legend()
    sd = r.std()
    bins = np.linspace(-10, 10, 121)
    for x, lab, c in ((real.ravel(), "real", "black"), (synth.ravel(), "synthetic", "C1")):
        h, e = np.histogram(x / sd, bins=bins, density=True)
        ax[1].semilogy(0.5 * (e[1:] + e[:-1]), np.where(h > 0, h, np.nan), label=lab, color=c)
    g = np.exp(-0.5 * ((bins) ** 2)) / np.sqrt(2 * np.pi)
    ax[1].semilogy(bins, g, ls="--", color="grey", label="Gaussian")
    ax[1].set_ylim(1e-5, 1)
    ax[1].set_title("daily returns / real sd (log density)")
    ax[1].legend()
    lags = np.arange(1, 21)
    for x, lab, c in ((real, "real", "black"), (synth, "synthetic", "C1")):
        a = np.abs(x) - np.abs(x).mean()
        acf = [(a[:, k:] * a[:, :-k]).mean() / (a * a).mean() for k in lags]
        ax[2].plot(lags, acf, marker="o", ms=3, label=lab, color=c)
    ax[2].axhline(0, color="grey", lw=0.5)
    ax[2].set_title("ACF of |r| within windows")
    ax[2].legend()
    fig.tight_layout()
    save_figure(fig, path)
