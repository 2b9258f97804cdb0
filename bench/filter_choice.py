"""Fit the volatility-filter variants compared in the README (bench for issue 4).

Each variant is the default FitConfig with a different volatility filter
(:class:`findiffusion.volatility.VolatilityFilter`); score them with bench/realism.py:

    python bench/filter_choice.py --variant garch --data sp500 --seed 0 --out bench/out/models/fc-sp500-garch-s0
    python bench/realism.py --data sp500 --model bench/out/models/fc-sp500-garch-s0 --model ... --no-gjr

The mid/f40/f45/fast variants are the persistence comparison of docs/realism.md (*The filter's
persistence*: 0.99 meets the clustering goal on three S&P seeds but costs tails; not adopted).
``--global-pool`` fits the network with the window-mean pooling path (*Clustering against tails*, not adopted).

``--split 80`` (default) trains on the first 80 % of the days (the realism protocol);
``--split 2014`` on the S&P 500 up to 2014-12-31 (the backtest and forecast benches).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time

import findiffusion
from findiffusion.data import SeriesInfo
from findiffusion.training import FitConfig

BASE = FitConfig()
VARIANTS = {
    "none": dict(vol_filter="none"),  # the model of raw (standardized) returns
    "garch": dict(vol_filter="garch", vol_alpha=0.03, vol_beta=0.965, vol_winsor=None),
    "garch-w4": dict(vol_filter="garch", vol_alpha=0.03, vol_beta=0.965, vol_winsor=4.0),  # = fit --vol-filter garch
    "fast-w4": dict(vol_filter="garch", vol_alpha=0.05, vol_beta=0.94, vol_winsor=4.0),
    "mid-w4": dict(vol_filter="garch", vol_alpha=0.04, vol_beta=0.955, vol_winsor=4.0),
    "fast-w3": dict(vol_filter="garch", vol_alpha=0.05, vol_beta=0.94, vol_winsor=3.0),
    "f45-w4": dict(vol_filter="garch", vol_alpha=0.045, vol_beta=0.945, vol_winsor=4.0),
    "f40-w4": dict(vol_filter="garch", vol_alpha=0.04, vol_beta=0.95, vol_winsor=4.0),
}


def config(variant: str, seed: int, prediction: str = "eps", global_pool: bool = False,
           day_state: bool = False) -> FitConfig:
    train = dataclasses.replace(BASE.train, prediction=prediction, day_state=day_state, **VARIANTS[variant])
    network = dataclasses.replace(BASE.network, global_pool=global_pool)
    return dataclasses.replace(BASE, seed=seed, train=train, network=network)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variant", choices=sorted(VARIANTS), required=True)
    p.add_argument("--data", default="sp500")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--split", choices=("80", "2014"), default="80")
    p.add_argument("--prediction", choices=("eps", "v"), default="eps", help="network target (default eps)")
    p.add_argument("--global-pool", action="store_true",
                   help="network with the window-mean pooling path (NetworkConfig.global_pool; off by default)")
    p.add_argument("--day-state", action="store_true",
                   help="network with the self-conditioned day-state channel (TrainConfig.day_state)")
    p.add_argument("--device", default="auto")
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    r, _ = findiffusion.load_series(a.data)
    train = r.iloc[: int(round(0.8 * len(r)))] if a.split == "80" else r.loc[:"2014-12-31"]
    info = SeriesInfo(source=a.data, column="", n_returns=len(train), start=str(train.index[0].date()),
                      end=str(train.index[-1].date()), last_price=None)
    t0 = time.time()
    findiffusion.fit(train, config(a.variant, a.seed, a.prediction, a.global_pool, a.day_state), out_dir=a.out, device=a.device, data_info=info)
    print(f"{a.variant} {a.prediction} {a.data} seed {a.seed} split {a.split}: fitted in {time.time() - t0:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
