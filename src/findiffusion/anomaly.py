r"""Anomaly scores for every day of a return series, from the conditional diffusion model.

Both diffusion scores condition on days on *both sides* of the scored day: the
series is cut into model windows, and within a window the scored days are
masked (mask 0) while every other day is observed context (mask 1) -- the
scattered masks the model was trained with (:mod:`findiffusion.conditioning`).
Scored days are spread ``stride`` days apart, so every masked day has
``stride - 1`` observed neighbours on each side, and each day is scored in the
window where it sits most centrally (at least ``window/4`` days of context on
both sides, except within that distance of the ends of the series).
All maths is in model space u (:meth:`~findiffusion.model.DiffusionModel.encode`: the volatility
filter's residuals through the fitted return transform, the filter run over the whole series).

**Imputation score** (``method="impute"``). Draw K imputations
\tilde u^{(k)}_t ~ p_\theta(u_t | u_{\text{context}}) with a sampler and score the observed value by its
standardised distance from the predictive distribution:

(1) z_t = (u_t - \bar u_t) / s_t,  \bar u_t, s_t = mean and sd of the K imputations,  score_t = |z_t|,

and an empirical two-sided tail probability
(2) p_t = (1 + \#\{k: |\tilde u^{(k)}_t - m_t| \ge |u_t - m_t|\}) / (K + 1),  m_t = median.

With ``block = b > 1`` a whole block of b consecutive days is masked and the statistic is the
block's log mean square, v = \log(\frac1b\sum u^2), scored as |z| of v against its K imputed values
(a volatility-burst detector; every day of the block gets the block's score).

**Denoising score** (``method="denoise"``, cheaper: no sampler chain). The continuous-time
diffusion loss of Kingma et al. (2021, eq. 17) bounds the conditional negative log-likelihood:

(3) -\log p_\theta(u_t | \text{context}) \lesssim \tfrac12 \int_{\lambda_{min}}^{\lambda_{max}}
    E_\varepsilon\,\|\varepsilon - \hat\varepsilon_\theta(x_\lambda, \lambda)\|^2_t \,d\lambda,
    \lambda = \log(\bar\alpha / (1 - \bar\alpha)),  x_\lambda = \sqrt{\bar\alpha}u + \sqrt{1-\bar\alpha}\,\varepsilon,

evaluated at the masked day t only, with the trapezoid rule on ``n_levels`` values of
\lambda evenly spaced between the schedule's ends and ``n_noise`` noise draws each. The
control variate \bar\alpha(\varepsilon_t^2 - 1) (mean zero) is subtracted from the integrand:
at low noise \hat\varepsilon \approx 0 and the integrand is \approx \varepsilon_t^2, whose chi-square noise
would otherwise swamp the differences between days.

**Block denoising score** (``denoising_scores(block=b)``; with the single-day score it makes
``method="denoise+block"``, the default). Whole blocks of b consecutive days are masked, so (3)
summed over the block bounds -\log p_\theta(u_{t..t+b-1} | \text{context}): the days of a
volatility burst are each unsurprising next to their large neighbours, but improbable as a
block. Blocks start at every offset, and a day's score is the mean, over the b blocks holding it,
of the block's loss per day:

(4) s_t = \frac1b \sum_{o=0}^{b-1} \frac1{|B_o(t)|} \sum_{j \in B_o(t)} \ell_j,
    B_o(t) = the block of offset o that holds t,  \ell_j = the integrand of (3) at day j.

**Causal score** (``method="causal"``): the one-sided counterpart of (1), u_t against K
one-day-ahead forecasts from the ``stitch_context`` days before t (prefix mask). Two-sided scores
ask whether a day fits *between its neighbours*, so a big day inside a volatility cluster (most
market dislocations) scores low; the causal score asks whether it was a *surprise given the past*.

Baselines (same interface: a score per day, higher = more anomalous):

* rolling z-score |r_t - \text{mean}| / \text{sd} over the previous ``window`` days;
* |standardised residual| of a GARCH(1,1)-t (Bollerslev, 1987) from ``arch``;
* an isolation forest (Liu, Ting & Zhou, 2008) on per-day features
  (z_t, log local-to-past volatility ratio) from scikit-learn.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from findiffusion.errors import InputError
from findiffusion.files import atomic_write_text, save_figure
from findiffusion.model import default_batch_size
from findiffusion.progress import progress_bar
from findiffusion.sampling import get_sampler

CLIP_X0 = 10.0


# ---------------------------------------------------------------------------
# window plan: which window scores which day, and the masks
# ---------------------------------------------------------------------------
def window_plan(n: int, window: int, block: int = 1, stride: int = 8,
                offset: int = 0) -> tuple[np.ndarray, list[tuple[int, np.ndarray]]]:
    """Windows and masks that score every day of an n-day series once.

    Days are grouped in blocks of ``block`` consecutive days, the first full block starting at day
    ``offset`` (days before it form one shorter block); each block is scored in the
    window (start s, length L) that holds it most centrally; blocks whose index is
    congruent mod ``stride`` are masked together.

    Returns:
        ``starts`` (W,) and a list of rows ``(window index, masked positions)``; every day
        0..n-1 is masked in exactly one row.
    """
    L = window
    if n < L:
        raise InputError(f"the series has {n} returns; scoring needs at least the model window ({L} days)")
    if block < 1 or stride < 1 or block > L // 4:
        raise InputError(f"block must be between 1 and {L // 4} days (a quarter window) and stride positive")
    if not 0 <= offset < block:
        raise InputError(f"offset must be between 0 and block - 1 = {block - 1}")
    step = max(1, L // 2)
    starts = list(range(0, n - L + 1, step))
    if starts[-1] != n - L:
        starts.append(n - L)
    s = np.array(starts)
    b_first = np.unique(np.r_[0, np.arange(offset, n, block)])  # (n_blocks,)
    b_last = np.r_[b_first[1:], n] - 1
    n_blocks = len(b_first)
    inside = (b_first[:, None] >= s[None, :]) & (b_last[:, None] < s[None, :] + L)  # (n_blocks, W)
    centrality = np.minimum(b_first[:, None] - s[None, :], s[None, :] + L - 1 - b_last[:, None])
    best = np.where(inside, centrality, -1).argmax(axis=1)  # (n_blocks,)
    rows: list[tuple[int, np.ndarray]] = []
    for w in range(len(s)):
        for o in range(stride):
            ks = np.flatnonzero((best == w) & (np.arange(n_blocks) % stride == o))
            if len(ks):
                days = np.concatenate([np.arange(b_first[k], b_last[k] + 1) for k in ks])
                rows.append((w, days - s[w]))
    return s, rows


def _row_states(model: Any, s2: np.ndarray, first_days: list[int]) -> torch.Tensor | None:
    """Filter state at each row's window start, for models that condition on it. Shape: (R,)."""
    if not model.denoiser.uses_state:
        return None
    return torch.from_numpy(model.vol_filter.state(s2[np.asarray(first_days, dtype=int)])).float()


def _batches(rows: list[tuple[int, np.ndarray]], starts: np.ndarray, u: np.ndarray, L: int):
    """Context (R, L) and mask (R, L) tensors for the rows of a plan."""
    ctx = np.stack([u[starts[w]: starts[w] + L] for w, _ in rows])  # (R, L)
    mask = np.ones_like(ctx)
    for i, (_, pos) in enumerate(rows):
        mask[i, pos] = 0.0
    return torch.from_numpy(ctx).float(), torch.from_numpy(mask).float()


# ---------------------------------------------------------------------------
# result object
# ---------------------------------------------------------------------------
@dataclass
class AnomalyScores:
    """A score per day (higher = more anomalous).

    Attributes:
        returns: the scored returns (index = dates when known).
        score: Shape (T,).
        method: how the score was made.
        extra: further per-day columns (e.g. ``z``, ``tail_prob``, ``pred_mean``). Shapes (T,).
    """

    returns: pd.Series
    score: np.ndarray
    method: str
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    def frame(self) -> pd.DataFrame:
        """One row per day: date, return, score, rank (1 = most anomalous), extra columns."""
        idx = self.returns.index
        f = pd.DataFrame({"date": [d.date().isoformat() for d in idx] if isinstance(idx, pd.DatetimeIndex)
                          else np.arange(len(idx)), "log_return": self.returns.to_numpy(), "score": self.score})
        f["rank"] = f["score"].rank(ascending=False, method="first").astype(int)
        for k, v in self.extra.items():
            f[k] = v
        return f

    def top(self, k: int = 20) -> pd.DataFrame:
        return self.frame().sort_values("rank").head(k)

    def rank_of(self, date: str) -> int:
        """Rank (1 = top) of the day ``date`` (YYYY-MM-DD)."""
        f = self.frame()
        hit = f.loc[f["date"] == date, "rank"]
        if hit.empty:
            raise InputError(f"{date} is not a day of the scored series")
        return int(hit.iloc[0])

    def summary(self, k: int = 10) -> str:
        lines = [f"anomaly scores ({self.method}) for {len(self.score)} days; top {k}:"]
        for _, row in self.top(k).iterrows():
            lines.append(f"  {row['rank']:>4}  {row['date']}  return {100 * row['log_return']:+7.2f} %"
                         f"  score {row['score']:.2f}")
        return "\n".join(lines)

    def plot(self, path: str | Path, top: int = 20) -> Path:
        """Returns with the top-scored days marked, and the score below (PNG)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        x = self.returns.index
        t = self.top(top)
        sel = np.flatnonzero(np.isin(self.frame()["rank"].to_numpy(), t["rank"].to_numpy()))
        fig, (a1, a2) = plt.subplots(2, 1, figsize=(11, 6), sharex=True, height_ratios=[2, 1])
        a1.plot(x, 100 * self.returns.to_numpy(), color="0.4", lw=0.6)
        a1.scatter(x[sel], 100 * self.returns.to_numpy()[sel], color="tab:red", s=18, zorder=3,
                   label=f"top {top} scores")
        a1.set_ylabel("log return, %")
        a1.legend(loc="lower left", fontsize=8)
        a1.set_title(f"anomaly scores ({self.method})")
        a2.plot(x, self.score, color="tab:blue", lw=0.6)
        a2.set_ylabel("score")
        fig.autofmt_xdate()
        fig.tight_layout()
        return save_figure(fig, path)

    def write(self, out_dir: str | Path, top: int = 20) -> list[Path]:
        """Write ``anomaly_scores.csv`` (every day) and ``anomalies.png`` into ``out_dir``."""
        d = Path(out_dir)
        d.mkdir(parents=True, exist_ok=True)
        csv = atomic_write_text(d / "anomaly_scores.csv", self.frame().to_csv(index=False, float_format="%.6g"))
        return [csv, self.plot(d / "anomalies.png", top=top)]


def _as_series(returns: Any) -> pd.Series:
    if isinstance(returns, pd.Series):
        r = returns.astype(float)
    else:
        r = pd.Series(np.asarray(returns, dtype=float))
    if r.ndim != 1 or not np.isfinite(r.to_numpy()).all():
        raise InputError("returns must be a 1-D series of finite log returns")
    return r


# ---------------------------------------------------------------------------
# diffusion scores
# ---------------------------------------------------------------------------
@torch.no_grad()
def imputation_scores(model: Any, returns: Any, *, n_samples: int = 32, steps: int = 10, sampler: str = "ddim",
                      block: int = 1, stride: int = 8, seed: int = 0, batch_size: int | None = None,
                      progress: bool = False) -> AnomalyScores:
    """Imputation score, eqs. (1)-(2) (``block=1``) or the block log-variance score (``block>1``).

    Args:
        model: a fitted :class:`~findiffusion.model.DiffusionModel`.
        returns: daily log returns (Series or 1-D array), at least one window long.
        n_samples: imputations K per masked day.
        steps: sampler steps per imputation.
        sampler: ``"ddim"`` (default), ``"ode"``, ``"sde"`` or ``"ddpm"``. Few DDIM steps shrink the
            spread of the imputations (sd 0.92 of the exact value at 10 steps on Gaussian data), which
            scales every z up alike and leaves the ranking unchanged.
        block: days masked together (1 = single days).
        stride: masked blocks are ``stride`` blocks apart within a window.
        seed: seed of the sampler's generator.
        batch_size: windows per network call.

    Cost: about K * steps * stride * (T / (window/2)) window evaluations.
    """
    if n_samples < 2 or steps < 1:
        raise InputError("n_samples must be >= 2 and steps >= 1")
    r = _as_series(returns)
    L = model.window
    u, s2 = model.encode(r.to_numpy())  # (T,), (T + 1,)
    starts, rows = window_plan(len(u), L, block, stride)
    ctx, mask = _batches(rows, starts, u, L)  # (R, L) each
    R = ctx.shape[0]
    den, dev = model.denoiser, model.device
    states = _row_states(model, s2, [starts[w] for w, _ in rows])  # (R,) or None
    gen = torch.Generator().manual_seed(seed)
    fn = get_sampler(sampler)
    imps = np.empty((R, n_samples, L))
    per = max(1, (batch_size or default_batch_size(model.device)) // n_samples)  # rows per call
    bar = progress_bar(progress, math.ceil(R / per), "impute")
    for b0 in range(0, R, per):
        c = ctx[b0:b0 + per].repeat_interleave(n_samples, 0).to(dev)  # (rows * K, L)
        m = mask[b0:b0 + per].repeat_interleave(n_samples, 0).to(dev)
        x = torch.randn(c.shape, generator=gen).to(dev)
        st = states[b0:b0 + per].repeat_interleave(n_samples).to(dev) if states is not None else None
        out = fn(den.eps_fn(c, m, clip_x0=CLIP_X0, state=st), x, den.schedule, steps=steps, generator=gen)
        imps[b0:b0 + per] = out.float().cpu().numpy().reshape(-1, n_samples, L)
        if bar:
            bar[0].update(bar[1], advance=1)
    if bar:
        bar[0].stop()
    T = len(u)
    z, tail, mean, zv = (np.full(T, np.nan) for _ in range(4))
    for i, (w, pos) in enumerate(rows):
        days = starts[w] + pos
        sims = imps[i][:, pos]  # (K, P)
        mu, s = sims.mean(0), sims.std(0, ddof=1) + 1e-9
        med = np.median(sims, 0)
        z[days], mean[days] = (u[days] - mu) / s, mu  # eq. (1)
        tail[days] = (1 + (np.abs(sims - med) >= np.abs(u[days] - med)).sum(0)) / (n_samples + 1)  # eq. (2)
        if block > 1:
            for b in range(0, len(pos), block):  # blocks are contiguous runs of `block` positions
                dd, sl = days[b:b + block], slice(b, b + block)
                v_obs = math.log(float(np.mean(u[dd] ** 2)) + 1e-8)
                v_sim = np.log(np.mean(sims[:, sl] ** 2, axis=1) + 1e-8)  # (K,)
                zv[dd] = (v_obs - v_sim.mean()) / (v_sim.std(ddof=1) + 1e-9)
    # back to returns day by day: r_t = m - lambda sigma_t^2 + sigma_t g^{-1}(u_t) (eq. (3c)), with sigma_t of the observed history
    # (without a filter m = 0 and sigma_t = 1)
    pred = model.vol_filter.mean_return(s2[:-1]) + np.sqrt(s2[:-1]) * model.transform.inverse(mean)
    extra = {"z": z, "tail_prob": tail, "pred_mean_return": pred}
    score = np.abs(z)
    if block > 1:
        extra["z_block_logvar"] = zv
        score = np.fmax(score, zv)
    name = f"impute (K={n_samples}, {sampler} {steps} steps" + (f", block {block})" if block > 1 else ")")
    return AnomalyScores(r, score, name, extra)


@torch.no_grad()
def denoising_scores(model: Any, returns: Any, *, n_levels: int = 16, n_noise: int = 4, stride: int = 8,
                     block: int = 1, seed: int = 0, batch_size: int | None = None,
                     progress: bool = False) -> AnomalyScores:
    """Denoising score, eq. (3): the conditional diffusion loss of each masked day across noise levels.

    With ``block = b > 1`` whole blocks of b consecutive days are masked together, so the loss
    (summed over the block) bounds -log p(block | context) and the block's own days are not
    context for one another; a burst of large days, each unsurprising next to its large
    neighbours, is then improbable as a whole. Blocks start at every offset 0..b-1 and a day's score
    is the mean, over the b blocks that hold it, of the block's loss per day (eq. 3 divided by the
    block length), in the same units as the single-day score. ``stride`` then counts blocks.

    Cost: about n_levels * n_noise * stride * (T / (window/2)) window evaluations (no sampler chain),
    times b with blocks.
    """
    if n_levels < 2 or n_noise < 1:
        raise InputError("n_levels must be >= 2 and n_noise >= 1")
    r = _as_series(returns)
    L = model.window
    u, s2 = model.encode(r.to_numpy())
    T = len(u)
    plans = [(o, *window_plan(T, L, block, stride, o)) for o in range(block)]  # (offset, starts, rows)
    rows = [(p, w, pos) for p, (_, _, rs) in enumerate(plans) for w, pos in rs]
    parts = [_batches(rs, st, u, L) for _, st, rs in plans]
    ctx, mask = torch.cat([c for c, _ in parts]), torch.cat([m for _, m in parts])  # (R, L) each, plan-major
    R = ctx.shape[0]
    den, dev = model.denoiser, model.device
    states = _row_states(model, s2, [plans[p][1][w] for p, w, _ in rows])  # (R,) or None
    sch = den.schedule
    lam_max = float(torch.log(sch.alpha_bar(1.0) / (1 - sch.alpha_bar(1.0))))
    lam_min = float(torch.log(sch.alpha_bar(float(sch.T)) / (1 - sch.alpha_bar(float(sch.T)))))
    lams = np.linspace(lam_min, lam_max, n_levels)
    wts = np.full(n_levels, (lam_max - lam_min) / (n_levels - 1))  # trapezoid weights
    wts[[0, -1]] /= 2
    # tau from lambda: abar = sigmoid(lambda), sigma_bar^2 = (1 - abar)/abar = exp(-lambda)
    taus = [float(sch.tau_from_sigma_bar(math.exp(-0.5 * lam))) for lam in lams]
    gen = torch.Generator().manual_seed(seed)
    loss = np.zeros((R, L))
    reps = n_levels * n_noise
    per = max(1, (batch_size or default_batch_size(model.device)) // reps)
    bar = progress_bar(progress, math.ceil(R / per), "denoise")
    for b0 in range(0, R, per):
        c = ctx[b0:b0 + per]
        nb = c.shape[0]
        c_rep = c.repeat(reps, 1).to(dev)  # (reps * nb, L), level-major
        m_rep = mask[b0:b0 + per].repeat(reps, 1).to(dev)
        tau = torch.tensor(np.repeat(np.repeat(taus, n_noise), nb), dtype=torch.float64)  # (reps * nb,)
        ab = sch.alpha_bar(tau).float()[:, None].to(dev)
        eps = torch.randn(c_rep.shape, generator=gen).to(dev)
        x_t = ab.sqrt() * c_rep + (1 - ab).sqrt() * eps
        st = states[b0:b0 + per].repeat(reps).to(dev) if states is not None else None  # level-major like c_rep
        eps_hat = den.eps_fn(c_rep, m_rep, clip_x0=CLIP_X0, state=st)(x_t, tau.to(dev))
        # control variate abar * (eps^2 - 1) (mean 0): removes the chi-square noise of
        # ||eps - eps_hat||^2 at low noise, where eps_hat ~ 0 and the integrand ~ eps^2
        err = (eps - eps_hat) ** 2 - ab * (eps**2 - 1)
        err = err.float().cpu().numpy().reshape(n_levels, n_noise, nb, L).mean(1)  # (J, nb, L)
        loss[b0:b0 + nb] = 0.5 * np.tensordot(wts, err, axes=(0, 0))
        if bar:
            bar[0].update(bar[1], advance=1)
    if bar:
        bar[0].stop()
    total, count = np.zeros(T), np.zeros(T)
    for i, (p, w, pos) in enumerate(rows):
        o, starts = plans[p][0], plans[p][1]
        days = starts[w] + pos
        _, blk = np.unique((days - o) // block, return_inverse=True)  # block of each day (the days before o: -1)
        per_day = np.bincount(blk, weights=loss[i, pos]) / np.bincount(blk)  # each block's loss per day
        total[days] += per_day[blk]
        count[days] += 1
    score = total / count
    name = f"denoise ({n_levels} levels x {n_noise} draws" + (f", block {block})" if block > 1 else ")")
    return AnomalyScores(r, score, name, {})


@torch.no_grad()
def causal_scores(model: Any, returns: Any, *, n_samples: int = 32, steps: int = 10, sampler: str = "ddim",
                  seed: int = 0, batch_size: int | None = None, progress: bool = False) -> AnomalyScores:
    """One-sided (causal) score: |z| of u_t against K one-day-ahead forecasts from the days before t.

    Each day is the first generated day of a prefix-conditioned window (the last ``stitch_context``
    days observed), so only the past is used: a day is scored as a *surprise* given its history,
    like the rolling z-score and the GARCH residual, whereas :func:`imputation_scores` asks whether
    the day fits between its neighbours. Days without a full context are scored 0.
    Cost: about K * steps * T window evaluations (four times the imputation score).
    """
    if n_samples < 2 or steps < 1:
        raise InputError("n_samples must be >= 2 and steps >= 1")
    r = _as_series(returns)
    x = r.to_numpy()
    c = int(model.config.stitch_context)
    if len(x) <= c:
        raise InputError(f"the series has {len(x)} returns; the causal score needs more than {c}")
    t = np.arange(c, len(x))  # scored days
    idx = t[:, None] + np.arange(-c, 0)[None, :]  # (M, C) the days before each
    u_all, s2_all = model.encode(x)  # (T,), (T + 1,): the filter state of each day comes from all days before it
    var = s2_all[np.c_[idx, t]]  # (M, C + 1) variances of the context days and the scored day
    us = model.sample_model_space(n_samples, 1, context_u=u_all[idx], var=var, sampler=sampler, steps=steps,
                                  generator=torch.Generator().manual_seed(seed), batch_size=batch_size,
                                  progress=progress)[:, :, 0]  # (M, K) model space
    u = u_all[t]
    z = np.zeros(len(x))
    z[t] = (u - us.mean(1)) / (us.std(1, ddof=1) + 1e-9)
    return AnomalyScores(r, np.abs(z), f"causal (K={n_samples}, {sampler} {steps} steps)", {"z": z})


def score_anomalies(model: Any, returns: Any, method: str = "denoise+block", **kwargs: Any) -> AnomalyScores:
    """Score every day with ``method``: ``"denoise+block"`` (default), ``"denoise"``, ``"impute"``,
    ``"impute+block"`` or ``"causal"``.

    ``"denoise+block"`` is the larger, per day, of the single-day denoising score and the 5-day
    block score (:func:`denoising_scores` with ``block=5, stride=3``), both in nats per day: a day
    is anomalous if it is improbable on its own or lies in an improbable stretch.

    ``"impute+block"`` is the larger, per day, of the single-day |z| and the score with 5-day
    blocks masked (10 observed days between blocks).
    """
    if method == "impute":
        return imputation_scores(model, returns, **kwargs)
    if method == "denoise":
        return denoising_scores(model, returns, **kwargs)
    if method == "causal":
        return causal_scores(model, returns, **kwargs)
    if method == "denoise+block":
        a = denoising_scores(model, returns, **kwargs)
        b = denoising_scores(model, returns, **(kwargs | {"block": 5, "stride": 3}))
        return AnomalyScores(a.returns, np.fmax(a.score, b.score), "denoise + 5-day block",
                             {"denoise_day": a.score, "denoise_block5": b.score})
    if method == "impute+block":
        a = imputation_scores(model, returns, **kwargs)
        b = imputation_scores(model, returns, **(kwargs | {"block": 5, "stride": 3}))
        extra = dict(a.extra) | {"z_block5": b.extra["z"]}
        return AnomalyScores(a.returns, np.fmax(a.score, b.score), "impute + 5-day block", extra)
    raise InputError(f"unknown anomaly method {method!r}; use impute, impute+block, denoise, denoise+block or causal")


# ---------------------------------------------------------------------------
# baselines
# ---------------------------------------------------------------------------
def rolling_zscore(returns: Any, window: int = 60) -> np.ndarray:
    """|r_t - mean| / sd over the ``window`` previous days (expanding at the start). Shape: (T,)."""
    r = _as_series(returns).reset_index(drop=True)
    past = r.shift(1).rolling(window, min_periods=5)
    z = ((r - past.mean()) / past.std()).abs().to_numpy()
    return np.nan_to_num(z, nan=0.0)


def garch_scores(returns: Any, fit_returns: Any | None = None, scale: float = 100.0) -> np.ndarray:
    """|standardised residual| of a GARCH(1,1)-t, parameters fitted on ``fit_returns`` (default: the series).

    With ``fit_returns`` the model is fitted on [fit_returns, returns] up to the end of
    ``fit_returns`` and filtered through ``returns`` with those fixed parameters. Shape: (T,).
    """
    from arch import arch_model

    r = _as_series(returns).to_numpy()
    head = np.asarray(fit_returns, dtype=float) if fit_returns is not None else np.empty(0)
    y = np.concatenate([head, r]) * scale
    am = arch_model(y, mean="Constant", vol="GARCH", p=1, q=1, dist="t")
    res = am.fit(last_obs=len(head) if len(head) else None, disp="off")
    fixed = am.fix(res.params)
    std = fixed.std_resid[len(head):]
    return np.abs(np.asarray(std, dtype=float))


def isolation_forest_scores(returns: Any, seed: int = 0, window: int = 60) -> np.ndarray:
    """Isolation-forest anomaly score on per-day features (z_t, log local / past vol). Shape: (T,)."""
    from sklearn.ensemble import IsolationForest

    r = _as_series(returns).reset_index(drop=True)
    past_sd = r.shift(1).rolling(window, min_periods=5).std().bfill()
    z = (r / past_sd).to_numpy()
    local = r.rolling(5, center=True, min_periods=1).std().bfill().ffill()
    v = np.log((local / past_sd).to_numpy() + 1e-8)
    feats = np.column_stack([z, v])
    forest = IsolationForest(n_estimators=200, random_state=seed).fit(feats)
    return -forest.score_samples(feats)


# ---------------------------------------------------------------------------
# planted anomalies (benchmark and tests)
# ---------------------------------------------------------------------------
KINDS = ("shock", "vol_burst", "resample", "sign_flip")


def plant_anomalies(returns: Any, kind: str, n_events: int, seed: int = 0, *, length: int = 10,
                    min_gap: int = 70, margin: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """Plant ``n_events`` anomalies of one ``kind`` at random, well-separated days.

    Kinds (sigma = sd of the 60 days before the event):

    * ``"shock"``: one day replaced by +-k sigma, k ~ U(4, 8);
    * ``"vol_burst"``: ``length`` // 2 days multiplied by a factor ~ U(3, 5);
    * ``"resample"``: ``length`` days replaced by days drawn at random from the whole series
      (breaks volatility clustering: the dependence, not the marginal);
    * ``"sign_flip"``: ``length`` days multiplied by -1 (keeps |r| exactly).

    Returns:
        (modified returns, labels) with labels 1 on planted days. Shapes (T,), (T,).
    """
    if kind not in KINDS:
        raise InputError(f"unknown anomaly kind {kind!r}; use one of {KINDS}")
    r = _as_series(returns).to_numpy().copy()
    T = len(r)
    span = {"shock": 1, "vol_burst": max(1, length // 2)}.get(kind, length)
    rng = np.random.default_rng(seed)
    slots = np.arange(margin, T - margin - span, min_gap)
    if len(slots) < n_events:
        raise InputError(f"{T} days leave room for only {len(slots)} events {min_gap} days apart")
    starts = np.sort(rng.choice(slots, n_events, replace=False)) + rng.integers(0, min_gap - span, n_events)
    starts = np.minimum(starts, T - margin - span)
    labels = np.zeros(T, dtype=int)
    orig = r.copy()
    for s in starts:
        sd = float(orig[s - 60: s].std())
        sl = slice(s, s + span)
        if kind == "shock":
            r[s] = rng.choice([-1.0, 1.0]) * rng.uniform(4, 8) * sd
        elif kind == "vol_burst":
            r[sl] = orig[sl] * rng.uniform(3, 5)
        elif kind == "resample":
            r[sl] = orig[rng.integers(0, T, span)]
        else:
            r[sl] = -orig[sl]
        labels[sl] = 1
    return r, labels


def auroc_auprc(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Area under the ROC curve and average precision (area under precision-recall)."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    s = np.asarray(scores, dtype=float)
    s = np.where(np.isfinite(s), s, np.nanmin(s[np.isfinite(s)]) - 1.0)  # unscored days rank last
    return float(roc_auc_score(labels, s)), float(average_precision_score(labels, s))
