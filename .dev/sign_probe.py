"""Scratch: day-level semi-variances model vs training, and the CRN price change of scaling positive residuals."""
import sys, time
from pathlib import Path
import numpy as np, torch
sys.path.insert(0, "/work/main/bench")
import findiffusion
from model_cache import recalibrate
from pricing import heston_stationary_price, training_returns
from findiffusion.pricing import price_paths

torch.set_num_threads(2)
M = "bench/out/pricing/model-heston-default-steps16000-asym1-window128-ito-10000y-f76e6e3f"
MB = Path("bench/out/pricing/M-bypos")
if (MB / "model.json").exists():
    model = findiffusion.load(MB)
else:
    model = findiffusion.load(M)
    n, s = recalibrate(model, by_position=True)
    print("recal", n, round(s)); model.save(MB)
n = int(sys.argv[1]) if len(sys.argv) > 1 else 30000
f, L = model.vol_filter, model.window
gen = torch.Generator().manual_seed(0)
var0 = model.start_variance(n, gen)
t0 = time.time()
u = model.sample_model_space(n, L, var=var0, generator=gen, progress=False)
print("draw", round(time.time() - t0))
r_model = model.decode_generated(u, var0)
r = training_returns("heston", 10000)
_, s2 = f.filter(r)
starts = np.random.default_rng(0).integers(0, len(r) - L + 1, 200000)
r_train = np.lib.stride_tricks.sliding_window_view(r, L)[starts]
z_m, _ = f.filter(r_model, var0)
z_t, _ = f.filter(r_train, s2[starts])
segs = [(0, 5), (5, 21), (21, 63), (63, L)]
print("semi-variances E[z^2;z>0] / E[z^2;z<0], model | training; and skew")
for x, y in segs:
    zm, zt = z_m[:, x:y], z_t[:, x:y]
    sp = lambda z: (np.mean(np.where(z > 0, z * z, 0)), np.mean(np.where(z < 0, z * z, 0)))
    a, b = sp(zm), sp(zt)
    sk = lambda z: float(np.mean((z - z.mean()) ** 3) / z.std() ** 3)
    print(f"days {x+1}-{y}: {a[0]:.4f}/{a[1]:.4f} | {b[0]:.4f}/{b[1]:.4f}  ratio+ {np.sqrt(b[0]/a[0]):.4f} ratio- {np.sqrt(b[1]/a[1]):.4f}  skew {sk(zm):+.3f} | {sk(zt):+.3f}")
for h in (21, 63, 126):
    cm = r_model[:, :h].sum(1); ct = r_train[:, :h].sum(1)
    cm, ct = cm - cm.mean(), ct - ct.mean()
    qs = [0.01, 0.05, 0.95, 0.99]
    print(f"{h}d sums q", " ".join(f"{100*a:+.2f}/{100*b:+.2f}({100*(a/b-1):+.1f}%)" for a, b in zip(np.quantile(cm, qs), np.quantile(ct, qs))),
          f"sd {100*cm.std():.2f}/{100*ct.std():.2f}")
# what-if: positive residuals scaled by cp on days [0, D)
k_res = model.residual_scale
z0 = model.transform.inverse(k_res * u)
g_rows = model.factor_rows(L)
base = f.unfilter(z0, var0, g_rows)
print("decode check max|diff|", float(np.abs(base - r_model).max()))
mats, strikes = [21, 63], [80.0, 90.0, 100.0, 110.0, 120.0]
def prices(rr):
    t = price_paths(rr[:, :63], s0=100.0, strikes=strikes, maturities_days=mats, rate=0.03, greeks=False,
                    correction="conditional").table.set_index(["option", "strike", "maturity_days"])
    return t.price
p0 = prices(base)
keys = [(o, k, h) for h in mats for o, k in [("put", 80.0), ("put", 90.0), ("call", 100.0), ("call", 110.0), ("call", 120.0)]]
print("CRN change of price, % : " + " ".join(f"{o[0]}{k:.0f}/{h}" for o, k, h in keys))
for D in (63, 128):
    for cp, cm_ in ((1.02, 1.0), (1.03, 1.0), (1.02, 0.99), (1.01, 1.01)):
        sc = np.ones_like(z0); sel = np.zeros_like(z0, dtype=bool); sel[:, :D] = True
        sc = np.where(sel & (z0 > 0), cp, np.where(sel & (z0 <= 0), cm_, 1.0))
        p = prices(f.unfilter(z0 * sc, var0, g_rows))
        print(f"D={D} c+={cp} c-={cm_}: " + " ".join(f"{100*(p[c]/p0[c]-1):+.2f}" for c in keys))
