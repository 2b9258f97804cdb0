r"""Stylized facts of daily returns: the metrics that say how realistic generated paths are.

Every function is pure and takes windows of daily log returns, ``Shape: (N, T)``
(one window per row). Real data enters as all overlapping T-day windows of the
series, generated data as N independent windows, and **both are scored the same
way**: time-series statistics (ACF, leverage, aggregated returns) are computed
*within* windows and pooled over windows, so no statistic ever crosses the
boundary between two unrelated generated windows. A 1-D array is treated as a
single window.

Metrics (numbers refer to the equations in the docstrings):

* distribution: Wasserstein-1 distance of h-day aggregated returns (1),
  excess kurtosis (2), skewness, Hill left-tail index (3), VaR/ES (4);
* dependence: ACF of r and |r| (5), leverage correlation (6), the skewness
  of multi-day sums by part (6b), aggregational Gaussianity (kurtosis vs horizon);
* a discriminative score (7) from a small GRU classifier;
* a memorization ratio (8) from nearest-neighbour distances.

References:
    R. Cont (2001), "Empirical properties of asset returns: stylized facts and
    statistical issues", Quantitative Finance 1, 223-236.
    B. M. Hill (1975), "A simple general approach to inference about the tail
    of a distribution", Annals of Statistics 3, 1163-1174.
    J. Yoon, D. Jarrett, M. van der Schaar (2019), "Time-series generative
    adversarial networks" (the discriminative score), NeurIPS.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from findiffusion.errors import InputError

#: default lags of the ACF and leverage curves
LAGS = tuple(range(1, 21))
#: horizons (days) of the aggregated-return distances and kurtosis curve
HORIZONS = (1, 5, 20)
KURT_HORIZONS = (1, 2, 5, 10, 20)
#: fraction of the sample used as the Hill tail, k = ceil(HILL_FRACTION * n); 5 % reproduces the issue's table (2.72 on the S&P 500)
HILL_FRACTION = 0.05


def as_windows(x: np.ndarray, name: str = "returns") -> np.ndarray:
    """Validate windows of log returns. Shape: (T,) or (N, T) -> (N, T) float64."""
    a = np.asarray(x, dtype=float)
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2 or a.size == 0:
        raise InputError(f"{name} must be a 1-D series or a 2-D array of windows (N, T), got shape {a.shape}")
    if not np.isfinite(a).all():
        raise InputError(f"{name} contain NaN or inf; drop them first")
    return a


# ---------------------------------------------------------------------------
# distribution
# ---------------------------------------------------------------------------
def aggregate(x: np.ndarray, horizon: int) -> np.ndarray:
    """Sums of ``horizon`` consecutive days over non-overlapping blocks inside each window.

    Shape: (N, T) -> (N * floor(T / h),), pooled over windows.
    """
    w = as_windows(x)
    n_blocks = w.shape[1] // horizon
    if n_blocks < 1:
        raise InputError(f"windows of {w.shape[1]} days are shorter than the horizon {horizon}")
    return w[:, : n_blocks * horizon].reshape(w.shape[0], n_blocks, horizon).sum(axis=2).ravel()


def wasserstein1(real: np.ndarray, synth: np.ndarray, horizon: int = 1, scale: float | None = None) -> float:
    r"""Wasserstein-1 distance of h-day aggregated returns, in units of the real daily sd.

    (1)  W_1(P, Q) = \int |F_P(x) - F_Q(x)| dx,

    computed between the empirical distributions of :func:`aggregate` of both
    samples and divided by ``scale`` (default: the sd of the real daily returns).
    """
    r = as_windows(real, "real")
    s = float(np.std(r)) if scale is None else float(scale)
    d = stats.wasserstein_distance(aggregate(r, horizon), aggregate(synth, horizon))
    return float(d / s)


def excess_kurtosis(x: np.ndarray) -> float:
    r"""Pooled excess kurtosis: (2)  \kappa = E[(r - \mu)^4] / \sigma^4 - 3 (0 for a Gaussian)."""
    return float(stats.kurtosis(as_windows(x).ravel(), fisher=True, bias=True))


def skewness(x: np.ndarray) -> float:
    r"""Pooled skewness E[(r - \mu)^3] / \sigma^3."""
    return float(stats.skew(as_windows(x).ravel(), bias=True))


def hill_tail_index(x: np.ndarray, k: int | None = None, tail: str = "left") -> float:
    r"""Hill estimate of the tail index \alpha (P(L > x) ~ x^{-\alpha}) of the losses L = -r.

    With L_{(1)} >= L_{(2)} >= ... the order statistics of the pooled losses,

    (3)  1/\hat\alpha = \frac{1}{k} \sum_{i=1}^{k} \ln L_{(i)} - \ln L_{(k+1)}.

    ``k`` defaults to ceil(5 % of the sample) (:data:`HILL_FRACTION`), the
    choice that reproduces the issue's reference table. A Student-t with \nu
    degrees of freedom has \alpha = \nu, but with k = 5 % the estimate is biased
    down (about 2.4 for \nu = 3, 2.8 for \nu = 4): the default is a tail-shape
    index for comparing samples with each other, not an unbiased \alpha; pass a
    small ``k`` (about 0.1 % of a large sample) to estimate \alpha itself.
    ``tail="right"`` uses the gains instead.
    """
    v = as_windows(x).ravel()
    v = -v if tail == "left" else v
    n = v.size
    k = int(np.ceil(HILL_FRACTION * n)) if k is None else int(k)
    if not 1 <= k < n:
        raise InputError(f"Hill k must be between 1 and {n - 1}, got {k}")
    top = np.sort(v)[::-1][: k + 1]  # largest losses, descending
    if top[k] <= 0:
        return float("nan")  # fewer than k + 1 positive losses
    return float(1.0 / (np.mean(np.log(top[:k])) - np.log(top[k])))


def var_es(x: np.ndarray, level: float = 0.99) -> tuple[float, float]:
    r"""Historical one-day Value-at-Risk and Expected Shortfall of the pooled returns, as positive losses.

    (4)  VaR_a = -q_{1-a}(r),   ES_a = -E[r | r <= q_{1-a}(r)].
    """
    v = as_windows(x).ravel()
    q = float(np.quantile(v, 1 - level))
    return -q, -float(np.mean(v[v <= q]))


# ---------------------------------------------------------------------------
# dependence
# ---------------------------------------------------------------------------
def _pooled_corr(a: np.ndarray, b: np.ndarray, lag: int) -> float:
    """Correlation of a[:, t] with b[:, t + lag], pooled over windows and t (pooled means and sds)."""
    u = a[:, : a.shape[1] - lag].ravel()
    v = b[:, lag:].ravel()
    su, sv = u.std(), v.std()
    if su == 0 or sv == 0:
        return float("nan")
    return float(np.mean((u - u.mean()) * (v - v.mean())) / (su * sv))


def acf(x: np.ndarray, lags: tuple[int, ...] = LAGS, absolute: bool = False) -> np.ndarray:
    r"""Autocorrelation of r (or |r|) within windows, pooled over windows.

    (5)  \rho(k) = corr(y_{i,t}, y_{i,t+k}) over all windows i and t = 1..T-k,
         y = r or |r|.

    Shape: (N, T) -> (len(lags),).
    """
    w = as_windows(x)
    if max(lags) >= w.shape[1]:
        raise InputError(f"lag {max(lags)} needs windows longer than {w.shape[1]} days")
    y = np.abs(w) if absolute else w
    return np.array([_pooled_corr(y, y, k) for k in lags])


def leverage(x: np.ndarray, lags: tuple[int, ...] = LAGS) -> np.ndarray:
    r"""Leverage effect: (6)  L(k) = corr(r_{i,t}, r_{i,t+k}^2), pooled within windows.

    Negative for equities: falls raise future volatility more than rises.
    Shape: (N, T) -> (len(lags),).
    """
    w = as_windows(x)
    if max(lags) >= w.shape[1]:
        raise InputError(f"lag {max(lags)} needs windows longer than {w.shape[1]} days")
    return np.array([_pooled_corr(w, w**2, k) for k in lags])

#: the keys of :func:`skew_parts`, in its order
SKEW_PARTS = ("skew", "own", "leverage", "reverse", "triples")


def skew_parts(x: np.ndarray) -> dict[str, float]:
    r"""The skewness of the h-day sums S = \sum_t x_t split by which days meet in E S^3 (each day centred over rows):

    (6b)  E S^3 = \sum_t E x_t^3 + 3 \sum_{s<t} E x_s x_t^2 + 3 \sum_{s>t} E x_s x_t^2
                  + 6 \sum_{s<t<u} E x_s x_t x_u,

    each divided by sd(S)^3, so the four parts add up to skew(S). ``"own"``: the days' own skewness; ``"leverage"``:
    an earlier shock with a later square (negative when a fall raises later volatility: equities, Heston with
    \rho < 0); ``"reverse"``: an earlier square with a later shock; ``"triples"``: the rest. On equity indices and
    Heston almost all of the skewness of multi-day returns is the leverage part (docs/pricing.md, session 31).
    Shape: (N, h) -> dict with the keys :data:`SKEW_PARTS`."""
    x = as_windows(x)
    if len(x) < 3:
        raise InputError(f"skew_parts needs the h-day windows of at least 3 paths (rows), got {len(x)}")
    x = x - x.mean(0)
    s = x.sum(1)
    sd3 = s.std() ** 3
    c = x.T @ (x ** 2) / len(x)  # (h, h): c[s, t] = E x_s x_t^2
    own, lev, rev = np.trace(c), 3 * np.triu(c, 1).sum(), 3 * np.tril(c, -1).sum()
    total = float(np.mean(s ** 3))
    return {"skew": total / sd3, "own": float(own / sd3), "leverage": float(lev / sd3), "reverse": float(rev / sd3),
            "triples": float((total - own - lev - rev) / sd3)}


def kurtosis_by_horizon(x: np.ndarray, horizons: tuple[int, ...] = KURT_HORIZONS) -> np.ndarray:
    """Aggregational Gaussianity: excess kurtosis of h-day sums (:func:`aggregate`) for each h."""
    return np.array([float(stats.kurtosis(aggregate(x, h), fisher=True, bias=True)) for h in horizons])


def rmse(a: np.ndarray, b: np.ndarray) -> float:
    """Root mean square difference of two curves."""
    return float(np.sqrt(np.mean((np.asarray(a) - np.asarray(b)) ** 2)))


# ---------------------------------------------------------------------------
# discriminative score
# ---------------------------------------------------------------------------
def time_split(n_windows: int, length: int, test_fraction: float = 0.3, n_folds: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Split overlapping windows of one series into train/test indices by time.

    The window starts are cut into ``n_folds`` contiguous folds; evenly spread
    folds (a ``test_fraction`` of them) are the test set, and training windows
    that share a day with any test window (start within ``length - 1`` days)
    are dropped ("purged"), so no day is seen in both sets.
    """
    n_test_folds = max(1, round(test_fraction * n_folds))
    folds = np.array_split(np.arange(n_windows), n_folds)
    test_ids = set(np.linspace(1, n_folds - 1, n_test_folds).round().astype(int).tolist())
    test = np.concatenate([folds[i] for i in sorted(test_ids)])
    is_test = np.zeros(n_windows, bool)
    is_test[test] = True
    # distance from each start to the nearest test start
    near = np.convolve(is_test.astype(float), np.ones(2 * length - 1), mode="same") > 0
    train = np.flatnonzero(~near)
    return train, test


def _gru_accuracy(xtr: np.ndarray, ytr: np.ndarray, xte: np.ndarray, yte: np.ndarray, seed: int,
                  hidden: int, epochs: int) -> float:
    """Train the GRU classifier on (xtr, ytr) and return its accuracy on (xte, yte). Shape: x (B, T)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a small recurrent net is fastest (and kindest) on one thread
    try:
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        gru, head = torch.nn.GRU(2, hidden, batch_first=True), torch.nn.Linear(hidden, 1)

        def logits(x: torch.Tensor) -> torch.Tensor:  # (B, T) -> (B,)
            out, _ = gru(torch.stack([x, x.abs()], dim=-1))  # reads (r_t, |r_t|); (B, T, H)
            return head(out.mean(dim=1)).squeeze(-1)

        opt = torch.optim.Adam([*gru.parameters(), *head.parameters()], lr=3e-3)
        xt, yt = torch.from_numpy(xtr).float(), torch.from_numpy(ytr).float()
        batch = 128
        for _ in range(epochs):
            perm = torch.randperm(len(xt), generator=gen)
            for b0 in range(0, len(xt), batch):
                idx = perm[b0:b0 + batch]
                loss = torch.nn.functional.binary_cross_entropy_with_logits(logits(xt[idx]), yt[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
        with torch.no_grad():
            pred = (logits(torch.from_numpy(xte).float()) > 0).numpy()
    finally:
        torch.set_num_threads(threads)
    return float(np.mean(pred == (yte > 0.5)))


@dataclass
class DiscriminativeResult:
    """|accuracy - 0.5| per classifier seed and their mean."""

    scores: list[float]
    accuracies: list[float]

    @property
    def mean(self) -> float:
        return float(np.mean(self.scores))

    @property
    def accuracy(self) -> float:
        """Mean held-out accuracy. Below 1/2 the classifier took held-out real windows for synthetic ones:
        it learned the years it was trained on, and the score measures how the series changed over time."""
        return float(np.mean(self.accuracies))

    def summary(self) -> str:
        return (f"discriminative score {self.mean:.3f} (seeds: {', '.join(f'{s:.3f}' for s in self.scores)}; "
                f"accuracy {self.accuracy:.3f})")


def discriminative_score(real: np.ndarray, synth: np.ndarray, seeds: tuple[int, ...] = (1, 2, 3),
                         max_per_class: int = 2000, hidden: int = 16, epochs: int = 8,
                         test_fraction: float = 0.3) -> DiscriminativeResult:
    r"""How well a small GRU tells real windows from synthetic ones.

    (7)  D = |acc - 1/2|,  acc = accuracy on held-out windows (balanced classes),

    averaged over classifier ``seeds``: 0 when the classifier cannot tell them
    apart, 0.5 when it always can. ``real`` are the overlapping windows of one
    series in time order, split by :func:`time_split` (purged, so no day is in
    both sets); ``synth`` are independent windows, split at random with the
    same fraction. Both classes are subsampled to the same size (at most
    ``max_per_class`` in training) and scaled by the real sd. The GRU reads
    (r_t, |r_t|) and averages its hidden states over time.
    """
    r, s = as_windows(real, "real"), as_windows(synth, "synthetic")
    if r.shape[1] != s.shape[1]:
        raise InputError(f"real windows have {r.shape[1]} days but synthetic ones {s.shape[1]}; use the same length")
    tr_idx, te_idx = time_split(len(r), r.shape[1], test_fraction)
    if len(tr_idx) < 10 or len(te_idx) < 10 or len(s) < 20:
        raise InputError("too few windows for a discriminative score (need at least ~100 real and 20 synthetic)")
    scale = float(np.std(r))
    scores, accs = [], []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        perm = rng.permutation(len(s))
        n_s_te = max(1, int(round(test_fraction * len(s))))
        s_te, s_tr = s[perm[:n_s_te]], s[perm[n_s_te:]]
        n_tr = min(len(tr_idx), len(s_tr), max_per_class)
        n_te = min(len(te_idx), len(s_te))
        r_tr = r[rng.choice(tr_idx, n_tr, replace=False)]
        r_te = r[rng.choice(te_idx, n_te, replace=False)]
        xtr = np.concatenate([r_tr, s_tr[:n_tr]]) / scale
        ytr = np.concatenate([np.ones(n_tr), np.zeros(n_tr)])
        xte = np.concatenate([r_te, s_te[:n_te]]) / scale
        yte = np.concatenate([np.ones(n_te), np.zeros(n_te)])
        acc = _gru_accuracy(xtr, ytr, xte, yte, seed, hidden, epochs)
        accs.append(acc)
        scores.append(abs(acc - 0.5))
    return DiscriminativeResult(scores, accs)


def discriminative_floor(real: np.ndarray, n: int = 2000, seed: int = 0,
                         **kwargs: Any) -> DiscriminativeResult:
    r"""The discriminative score of the real windows themselves: (7) with ``synth`` = ``n`` real windows
    drawn at random (``seed``) from all of ``real``.

    This is what a generator that reproduces the training windows' law exactly scores, the floor of (7)
    on this series. It is not 0 when the series changes over time: the classifier trains on the real
    windows of some years but is tested on others, while the resampled windows cover all of them, so
    held-out real windows unlike the training years are taken for synthetic ones (accuracy < 1/2). It is a
    reference, not a lower bound: a generator that does not carry the years' differences can score below it.
    The resampled windows include copies of the classifier's own training and test windows.
    ``kwargs`` go to :func:`discriminative_score`. Shape: real (M, T).
    """
    r = as_windows(real, "real")
    if not isinstance(n, int | np.integer) or n < 20:
        raise InputError(f"n must be at least 20 resampled windows, got {n}")
    idx = np.random.default_rng(seed).choice(len(r), size=n, replace=n > len(r))
    return discriminative_score(r, r[idx], **kwargs)


# ---------------------------------------------------------------------------
# memorization
# ---------------------------------------------------------------------------
def nearest_distance(x: np.ndarray, reference: np.ndarray, batch: int = 1024) -> np.ndarray:
    r"""Relative distance of each window to its nearest reference window.

    d(x) = \min_j \|x - y_j\|_2 / \|x\|_2.   Shape: (N, T), (M, T) -> (N,).
    Dividing by \|x\| removes the volatility level (a calm window is close to
    many windows in absolute terms).
    """
    import torch

    a = torch.from_numpy(as_windows(x)).double()
    b = torch.from_numpy(as_windows(reference, "reference")).double()
    if a.shape[1] != b.shape[1]:
        raise InputError(f"windows have {a.shape[1]} days but reference windows {b.shape[1]}")
    out = []
    for i in range(0, len(a), batch):
        d = torch.cdist(a[i:i + batch], b).min(dim=1).values
        out.append(d / a[i:i + batch].norm(dim=1).clamp_min(1e-300))
    return torch.cat(out).numpy()


def memorization_ratio(synth: np.ndarray, train: np.ndarray, heldout: np.ndarray) -> float:
    r"""Memorization check: (8)  M = median_i d(s_i) / median_j d(h_j),

    with d the relative nearest-training-window distance (:func:`nearest_distance`),
    s the synthetic windows and h real windows the model never saw. About 1 for
    a generator as novel as fresh real data; near 0 for one that copies
    training windows.
    """
    return float(np.median(nearest_distance(synth, train)) / np.median(nearest_distance(heldout, train)))


# ---------------------------------------------------------------------------
# all at once
# ---------------------------------------------------------------------------
@dataclass
class Facts:
    """The stylized facts of one set of windows (no comparison)."""

    kurtosis: float
    skewness: float
    hill: float
    var99: float
    es99: float
    acf_r: np.ndarray
    acf_abs: np.ndarray
    leverage: np.ndarray
    kurt_horizon: np.ndarray
    sd: float


def facts(x: np.ndarray, lags: tuple[int, ...] = LAGS) -> Facts:
    """Compute every single-sample statistic of ``x``. Shape: (N, T)."""
    w = as_windows(x)
    v, e = var_es(w)
    hs = tuple(h for h in KURT_HORIZONS if h <= w.shape[1])
    return Facts(kurtosis=excess_kurtosis(w), skewness=skewness(w), hill=hill_tail_index(w), var99=v, es99=e,
                 acf_r=acf(w, lags), acf_abs=acf(w, lags, absolute=True), leverage=leverage(w, lags),
                 kurt_horizon=kurtosis_by_horizon(w, hs), sd=float(np.std(w)))
