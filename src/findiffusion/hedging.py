r"""Hedging an option position along price paths, with execution costs that grow faster than volume.

Set-up. A book holds :math:`p` European options (``position``; :math:`p < 0` is
short) of strike :math:`K` and maturity :math:`T` trading days, bought or sold at
the Black–Scholes price :math:`V_0` (implied volatility ``vol``). It holds
:math:`H_k = -p\,a_k` shares between rebalancing days :math:`t_k` (every
``rebalance`` days), where :math:`a_k` is the strategy's hedge ratio per option.
With discounted prices :math:`\tilde S_t = e^{-rt} S_t` and trades
:math:`q_k = H_k - H_{k-1}` (:math:`H_{-1} = 0`, and a final unwind
:math:`q = -H_{last}` at :math:`T` unless ``unwind=False``), the hedger's P&L in
time-0 money is

(H1) :math:`\Pi = p\,(e^{-rT} g(S_T) - V_0) + \sum_k H_k (\tilde S_{t_{k+1}} - \tilde S_{t_k})
     - \sum_k e^{-r t_k} C(q_k; S_{t_k}, H_{k-1})`,

:math:`g` the payoff and :math:`C` an execution-cost model of :mod:`findiffusion.costs`.
Everything is a torch computation, so :math:`\Pi` is differentiable in the
strategy's parameters.

Strategies (hedge ratio :math:`a_k` per option):

(H2) Black–Scholes delta: :math:`a_k = \Delta_{BS}(S_{t_k}, \tau_k)`.
(H3) Whalley–Wilmott (1997) no-transaction band: keep :math:`a_{k-1}` while it lies within
     :math:`\Delta_{BS} \pm w_k` and otherwise trade to the nearest edge, with the asymptotic
     half-width :math:`w_k = (\tfrac{3 \lambda}{2 \gamma} e^{-r\tau_k}(S\Gamma_{BS})^2)^{1/3}`; the
     constant :math:`c = (3\lambda/2\gamma)^{1/3}` (cost over risk aversion) is calibrated on
     training paths by minimising the risk measure over a grid (:func:`calibrate_band`).
(H4) Learned policy (deep hedging, Buehler et al. 2019): a small MLP of
     :math:`(\ln S/K, \sqrt\tau, \Delta_{BS}, a_{k-1})` outputs band widths
     :math:`w^-, w^+ \ge 0` and a trade rate :math:`\rho \in (0, 1)` and sets
     :math:`a_k = a_{k-1} + \rho\,(\mathrm{clip}(a_{k-1}, \Delta_{BS} - w^-, \Delta_{BS} + w^+) - a_{k-1})`:
     the no-transaction band network of Imaki et al. (2021) extended with partial trading
     toward the band (optimal under costs that grow faster than volume, Rogers & Singh 2010).
     Trained by Adam through (H1) to minimise a risk measure of :math:`\Pi` on generated paths.

Risk measures of the P&L :math:`\Pi` (reported as positive losses):

(H5) expected shortfall :math:`ES_\alpha = E[-\Pi \mid -\Pi \ge VaR_\alpha]` (mean of the worst
     :math:`1 - \alpha` fraction of outcomes);
(H6) entropic risk :math:`\frac{1}{\lambda}\ln E[e^{-\lambda \Pi}]`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from findiffusion.costs import CostModel, ZeroCost
from findiffusion.errors import InputError
from findiffusion.pricing import black_scholes_delta, black_scholes_price

DAYS_PER_YEAR = 252
STRATEGIES = ("delta", "band", "learned")
RISK_MEASURES = ("es", "entropic")
#: grid of the band constant c in (H3), searched by calibrate_band
BAND_GRID = (0.0, 0.0025, 0.005, 0.01, 0.015, 0.02, 0.03, 0.045, 0.07, 0.1, 0.15, 0.25, 0.4)


@dataclass(frozen=True)
class HedgeSpec:
    """The option book and the market it is hedged in.

    Attributes:
        option: ``"call"`` or ``"put"``.
        strike: strike K.
        maturity_days: trading days to expiry T (paths must have T + 1 prices).
        position: options held p (negative = short), each on one share.
        vol: annual Black–Scholes volatility for premium, delta and gamma.
        rate: continuous annual interest rate.
        volume: daily volume V of the underlying in shares (ADV).
        sigma_daily: daily volatility of returns used by the impact laws.
        cost: execution-cost model (default: none).
        rebalance: days between rebalancing.
        unwind: sell the hedge at expiry (cash-settled option) and pay its cost.
    """

    option: str = "call"
    strike: float = 100.0
    maturity_days: int = 63
    position: float = -1000.0
    vol: float = 0.2
    rate: float = 0.0
    volume: float = 1e6
    sigma_daily: float = 0.0126
    cost: CostModel = field(default_factory=ZeroCost)
    rebalance: int = 1
    unwind: bool = True

    def __post_init__(self) -> None:
        if self.option not in ("call", "put"):
            raise InputError(f"option type must be 'call' or 'put', got {self.option!r}")
        for k in ("strike", "vol", "volume", "sigma_daily"):
            v = getattr(self, k)
            if not (math.isfinite(v) and v > 0):
                raise InputError(f"{k} must be a positive number, got {v}")
        if not (isinstance(self.maturity_days, int | np.integer) and self.maturity_days >= 1):
            raise InputError(f"maturity_days must be a positive integer, got {self.maturity_days}")
        if not (isinstance(self.rebalance, int | np.integer) and 1 <= self.rebalance <= self.maturity_days):
            raise InputError(f"rebalance must be between 1 and maturity_days={self.maturity_days} days, "
                             f"got {self.rebalance}")
        if not (math.isfinite(self.position) and self.position != 0):
            raise InputError(f"position must be a non-zero number of options, got {self.position}")
        if not math.isfinite(self.rate):
            raise InputError(f"rate must be finite, got {self.rate}")


def bs_gamma(spot: torch.Tensor, strike: float, tau: torch.Tensor, rate: float, vol: float) -> torch.Tensor:
    r"""Black–Scholes gamma :math:`\Gamma = \varphi(d_1)/(S\sigma\sqrt\tau)` (same for calls and puts)."""
    sq = vol * torch.sqrt(tau)
    d1 = (torch.log(spot / strike) + (rate + 0.5 * vol * vol) * tau) / sq
    return torch.exp(-0.5 * d1 * d1) / math.sqrt(2 * math.pi) / (spot * sq)


# ---------------------------------------------------------------------------
# policies: (features) -> hedge ratio per option
# ---------------------------------------------------------------------------
@dataclass
class HedgeState:
    """What a policy sees at a rebalancing day. Tensors of shape (N,)."""

    spot: torch.Tensor
    tau: torch.Tensor  # years to expiry
    delta: torch.Tensor  # Black–Scholes delta
    prev: torch.Tensor  # hedge ratio held before this day
    spec: HedgeSpec
    gamma: torch.Tensor  # Black–Scholes gamma


Policy = Callable[[HedgeState], torch.Tensor]


def delta_policy(state: HedgeState) -> torch.Tensor:
    """Eq. (H2): Black–Scholes delta."""
    return state.delta


@dataclass(frozen=True)
class BandPolicy:
    """Eq. (H3): Whalley–Wilmott no-transaction band with constant ``c``."""

    c: float

    def width(self, state: HedgeState) -> torch.Tensor:
        s = state.spec
        return self.c * (torch.exp(-s.rate * state.tau) * (state.spot * state.gamma) ** 2) ** (1.0 / 3.0)

    def __call__(self, state: HedgeState) -> torch.Tensor:
        w = self.width(state)
        return torch.minimum(torch.maximum(state.prev, state.delta - w), state.delta + w)


class LearnedPolicy(nn.Module):
    """Eq. (H4): MLP -> (band widths, trade rate). Starts close to delta hedging."""

    def __init__(self, hidden: int = 32, layers: int = 2) -> None:
        super().__init__()
        mods: list[nn.Module] = []
        d = 4
        for _ in range(layers):
            mods += [nn.Linear(d, hidden), nn.ReLU()]
            d = hidden
        last = nn.Linear(d, 3)
        nn.init.zeros_(last.weight)
        with torch.no_grad():
            last.bias.copy_(torch.tensor([-4.0, -4.0, 3.0]))  # widths ~0.018, rate ~0.95
        self.net = nn.Sequential(*mods, last)  # float32: 2-3x faster on CPU than float64

    def forward(self, state: HedgeState) -> torch.Tensor:
        s = state.spec
        x = torch.stack([torch.log(state.spot / s.strike), torch.sqrt(state.tau), state.delta, state.prev], dim=-1)
        out = self.net(x.float()).to(x.dtype)  # (N, 3)
        lo = state.delta - nn.functional.softplus(out[:, 0])
        hi = state.delta + nn.functional.softplus(out[:, 1])
        rate = torch.sigmoid(out[:, 2])
        target = torch.minimum(torch.maximum(state.prev, lo), hi)
        return state.prev + rate * (target - state.prev)


# ---------------------------------------------------------------------------
# the P&L of eq. (H1)
# ---------------------------------------------------------------------------
@dataclass
class HedgeOutcome:
    """Per-path results of :func:`simulate` (torch, differentiable). Shapes: (N,)."""

    pnl: torch.Tensor
    cost: torch.Tensor
    turnover: torch.Tensor  # shares traded, sum |q|
    premium: torch.Tensor  # V_0 per option
    trades: torch.Tensor  # (N, K+1) shares traded at each rebalancing day and at the unwind


def _as_prices(prices: Any) -> torch.Tensor:
    p = prices if isinstance(prices, torch.Tensor) else torch.as_tensor(np.asarray(prices, dtype=float))
    if p.dtype != torch.float32:  # float32 is kept (faster training); everything else is float64
        p = p.to(torch.float64)
    if p.ndim != 2 or p.shape[1] < 2:
        raise InputError(f"prices must be a 2-D array (paths, days + 1), got shape {tuple(p.shape)}")
    if not bool(torch.isfinite(p).all()) or not bool((p > 0).all()):
        raise InputError("prices must be finite and positive")
    return p


def simulate(prices: Any, spec: HedgeSpec, policy: Policy = delta_policy) -> HedgeOutcome:
    """Hedge ``spec`` along price paths with ``policy``; eq. (H1).

    Args:
        prices: price paths S_0..S_T. Shape: (N, T + 1) with T = ``spec.maturity_days``.
        spec: the book, costs and rebalancing.
        policy: maps a :class:`HedgeState` to the hedge ratio per option. Shape: (N,).

    Returns:
        :class:`HedgeOutcome` (torch tensors; gradients flow to the policy's parameters).
    """
    S = _as_prices(prices)  # (N, T + 1)
    T = spec.maturity_days
    if S.shape[1] != T + 1:
        raise InputError(f"prices have {S.shape[1] - 1} days but maturity_days is {T}; give paths of T + 1 prices")
    dt = 1.0 / DAYS_PER_YEAR
    r, p = spec.rate, spec.position
    disc = torch.exp(-r * dt * torch.arange(T + 1, dtype=S.dtype))  # (T + 1,)
    St = S * disc  # discounted prices, (N, T + 1)
    days = list(range(0, T, spec.rebalance))  # rebalancing days t_k, K of them
    spot = S[:, days]  # (N, K)
    tau = ((T - torch.tensor(days, dtype=S.dtype)) * dt).expand_as(spot)  # (N, K)
    delta = black_scholes_delta(spot, spec.strike, tau, r, spec.vol, spec.option)  # (N, K)
    gamma = bs_gamma(spot, spec.strike, tau, r, spec.vol)  # (N, K)
    a = torch.zeros_like(spot[:, 0])  # hedge ratio a_{k-1}, (N,)
    ratios = []
    for i in range(len(days)):  # only the policy is sequential
        a = policy(HedgeState(spot[:, i], tau[:, i], delta[:, i], a, spec, gamma[:, i]))
        ratios.append(a)
    H = -p * torch.stack(ratios, dim=1)  # shares held from t_k, (N, K)
    if spec.unwind:
        H_full = torch.cat([H, torch.zeros_like(H[:, :1])], dim=1)  # flat after the unwind at T
        trade_days = days + [T]
    else:
        H_full, trade_days = H, days
    H_before = torch.cat([torch.zeros_like(H[:, :1]), H_full[:, :-1]], dim=1)  # H_{k-1}, (N, K')
    q = H_full - H_before  # trades, (N, K')
    c = spec.cost(q, S[:, trade_days], sigma=spec.sigma_daily, volume=spec.volume, holding=H_before)
    cost = (c * disc[trade_days]).sum(dim=1)
    nxt = days[1:] + [T]
    gains = (H * (St[:, nxt] - St[:, days])).sum(dim=1)
    s0 = S[:, 0]
    v0 = black_scholes_price(s0, spec.strike, torch.full_like(s0, T * dt), r, spec.vol, spec.option)
    payoff = torch.clamp(S[:, T] - spec.strike, min=0) if spec.option == "call" else torch.clamp(spec.strike - S[:, T], min=0)
    pnl = p * (disc[T] * payoff - v0) + gains - cost
    return HedgeOutcome(pnl, cost, q.abs().sum(dim=1), v0, q)


# ---------------------------------------------------------------------------
# risk measures
# ---------------------------------------------------------------------------
def expected_shortfall(pnl: torch.Tensor, alpha: float = 0.95) -> torch.Tensor:
    """Eq. (H5): mean loss -pnl over the worst ceil((1 - alpha) N) paths (differentiable)."""
    k = max(1, math.ceil((1 - alpha) * pnl.shape[0] - 1e-9))  # guard 0.05 * 100 = 5.000000000000004
    return torch.topk(-pnl, k).values.mean()


def entropic_risk(pnl: torch.Tensor, lam: float = 1.0) -> torch.Tensor:
    """Eq. (H6): (1/lam) log E exp(-lam pnl), computed stably."""
    x = -lam * pnl
    return (torch.logsumexp(x, 0) - math.log(pnl.shape[0])) / lam


def risk(pnl: torch.Tensor, measure: str = "es", alpha: float = 0.95, lam: float = 1.0) -> torch.Tensor:
    """Risk of ``pnl`` by name: ``es`` (H5) or ``entropic`` (H6)."""
    if measure == "es":
        return expected_shortfall(pnl, alpha)
    if measure == "entropic":
        return entropic_risk(pnl, lam)
    raise InputError(f"unknown risk measure {measure!r}; use one of {', '.join(RISK_MEASURES)}")


# ---------------------------------------------------------------------------
# fitting the band and the learned policy on training paths
# ---------------------------------------------------------------------------
def _scale(prices: torch.Tensor, spec: HedgeSpec) -> float:
    """P&L unit for training: the notional |p| S_0 / 100 (P&L in per cent of notional)."""
    return abs(spec.position) * float(prices[:, 0].mean()) / 100.0


def calibrate_band(prices: Any, spec: HedgeSpec, *, measure: str = "es", alpha: float = 0.95, lam: float = 1.0,
                   grid: tuple[float, ...] = BAND_GRID) -> tuple[BandPolicy, dict[float, float]]:
    """Choose the band constant c of (H3) minimising the risk measure on training ``prices``.

    Returns:
        (the best :class:`BandPolicy`, {c: risk in currency}).
    """
    S = _as_prices(prices)
    unit = _scale(S, spec)
    table: dict[float, float] = {}
    with torch.no_grad():
        for c in grid:
            pnl = simulate(S, spec, BandPolicy(c)).pnl
            table[c] = float(risk(pnl / unit, measure, alpha, lam)) * unit
    best = min(table, key=table.__getitem__)
    return BandPolicy(best), table


@dataclass
class TrainReport:
    """How a learned policy was trained: losses (per cent of notional) and wall time."""

    steps: int
    batch_size: int
    seconds: float
    losses: list[float]
    measure: str


def train_policy(prices: Any, spec: HedgeSpec, *, measure: str = "es", alpha: float = 0.95, lam: float = 1.0,
                 steps: int = 300, batch_size: int = 1024, lr: float = 5e-3, hidden: int = 32, seed: int = 0,
                 progress: bool = False) -> tuple[LearnedPolicy, TrainReport]:
    """Deep hedging, eq. (H4): Adam on the risk of the differentiable P&L (H1) over mini-batches of paths.

    The P&L is measured in per cent of notional (|p| S_0 / 100) so that the
    learning rate and the entropic ``lam`` do not depend on the book's size.

    Args:
        prices: training price paths. Shape: (N, T + 1).
        spec: the book, costs and rebalancing.
        measure: ``"es"`` (alpha) or ``"entropic"`` (lam).
        steps, batch_size, lr, hidden: optimisation and network size.
        seed: seeds the initialisation and the mini-batch draws.
        progress: show a progress bar.
    """
    from findiffusion.progress import progress_bar

    S = _as_prices(prices).float()  # float32 training: ~1.5x faster, precise enough for gradients
    risk(torch.zeros(2), measure, alpha, lam)  # validate the name early
    if steps < 1 or batch_size < 2:
        raise InputError("training needs steps >= 1 and batch_size >= 2")
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        policy = LearnedPolicy(hidden)
    opt = torch.optim.Adam(policy.parameters(), lr=lr)
    unit = _scale(S, spec)
    losses: list[float] = []
    bar = progress_bar(progress, steps, "train hedge")
    t0 = time.time()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small tensors: intra-op threads cost more than they give (30x on a busy 2-core box)
    try:
        _train_loop(policy, opt, S, spec, unit, measure, alpha, lam, steps, batch_size, lr, gen, losses, bar)
    finally:
        torch.set_num_threads(threads)
    if bar:
        bar[0].stop()
    policy.eval()
    return policy, TrainReport(steps, batch_size, time.time() - t0, losses, measure)


def _train_loop(policy: LearnedPolicy, opt: torch.optim.Optimizer, S: torch.Tensor, spec: HedgeSpec, unit: float,
                measure: str, alpha: float, lam: float, steps: int, batch_size: int, lr: float,
                gen: torch.Generator, losses: list[float], bar: Any) -> None:
    for step in range(steps):
        idx = torch.randint(0, S.shape[0], (min(batch_size, S.shape[0]),), generator=gen)
        loss = risk(simulate(S[idx], spec, policy).pnl / unit, measure, alpha, lam)
        opt.zero_grad()
        loss.backward()
        opt.step()
        for g in opt.param_groups:  # cosine decay to 10 %
            g["lr"] = lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (step + 1) / steps)))
        losses.append(float(loss.detach()))
        if bar:
            bar[0].update(bar[1], advance=1)


# ---------------------------------------------------------------------------
# results
# ---------------------------------------------------------------------------
@dataclass
class HedgeResult:
    """Hedging P&L distribution of one strategy on (held-out) paths.

    Attributes:
        strategy: its name.
        pnl: P&L per path in time-0 currency, eq. (H1). Shape: (N,)
        cost: execution cost per path. Shape: (N,)
        turnover: shares traded per path. Shape: (N,)
        premium: V_0 x |position| (mean over paths).
        spec: the book.
        alpha: ES level.
        mean_slippage: mean marginal cost dC/dq per share over the trades (autograd), or NaN.
    """

    strategy: str
    pnl: np.ndarray
    cost: np.ndarray
    turnover: np.ndarray
    premium: float
    spec: HedgeSpec
    alpha: float = 0.95
    mean_slippage: float = float("nan")
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def es(self) -> float:
        """Expected shortfall of the P&L at ``alpha`` (positive = loss), eq. (H5)."""
        return float(expected_shortfall(torch.as_tensor(self.pnl), self.alpha))

    def stats(self) -> dict[str, float]:
        n = len(self.pnl)
        return {"mean_pnl": float(self.pnl.mean()), "std_pnl": float(self.pnl.std(ddof=1)),
                "es": self.es, "var": float(-np.quantile(self.pnl, 1 - self.alpha)),
                "mean_cost": float(self.cost.mean()), "mean_turnover": float(self.turnover.mean()),
                "se_mean": float(self.pnl.std(ddof=1) / math.sqrt(n)), "premium": self.premium}

    def summary(self) -> str:
        s, st = self.spec, self.stats()
        lines = [
            f"hedging {s.position:g} x {s.option} K={s.strike:g} T={s.maturity_days}d, strategy {self.strategy}, "
            f"rebalance every {s.rebalance}d, cost {s.cost.describe()}, V={s.volume:g}, paths={len(self.pnl)}",
            f"  premium (BS, vol {s.vol:.3f})  {st['premium']:14.2f}",
            f"  mean P&L                  {st['mean_pnl']:14.2f}  (+/- {st['se_mean']:.2f})",
            f"  P&L std                   {st['std_pnl']:14.2f}",
            f"  {100 * self.alpha:.0f}% VaR                   {st['var']:14.2f}",
            f"  {100 * self.alpha:.0f}% ES                    {st['es']:14.2f}",
            f"  mean execution cost       {st['mean_cost']:14.2f}",
            f"  mean shares traded        {st['mean_turnover']:14.1f}",
        ]
        if math.isfinite(self.mean_slippage):
            lines.append(f"  mean slippage dC/dq       {self.mean_slippage:14.5f} per share")
        return "\n".join(lines)

    def plot(self, path: str | Path) -> Path:
        """Histogram of the P&L with mean and ES marked (PNG)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from findiffusion.files import save_figure

        st = self.stats()
        fig, ax = plt.subplots(figsize=(7, 4))
        ax.hist(self.pnl, bins=80, color="tab:blue", alpha=0.8)
        ax.axvline(st["mean_pnl"], color="k", lw=1, label=f"mean {st['mean_pnl']:.1f}")
        ax.axvline(-st["es"], color="tab:red", lw=1, label=f"-ES{100 * self.alpha:.0f} {-st['es']:.1f}")
        ax.set_xlabel("hedging P&L (time-0 currency)")
        ax.set_ylabel("paths")
        ax.set_title(f"{self.strategy} hedge, {self.spec.cost.describe()}")
        ax.legend()
        fig.tight_layout()
        return save_figure(fig, path)


def mean_slippage(outcome: HedgeOutcome, prices: Any, spec: HedgeSpec) -> float:
    """Volume-weighted mean marginal cost dC/dq (autograd) over every trade of ``outcome``, per share."""
    from findiffusion.costs import slippage_gradient

    q = outcome.trades.detach()  # (N, K + 1)
    S = _as_prices(prices)
    days = list(range(0, spec.maturity_days, spec.rebalance)) + ([spec.maturity_days] if spec.unwind else [])
    spot = S[:, days]
    hold = torch.cumsum(q, dim=1) - q  # holdings before each trade
    g = slippage_gradient(spec.cost, q.numpy(), spot.numpy(), sigma=spec.sigma_daily, volume=spec.volume,
                          holding=hold)
    w = np.abs(q.numpy())
    return float((np.abs(g) * w).sum() / max(w.sum(), 1e-300))


def hedge(prices: Any, spec: HedgeSpec, policy: Policy = delta_policy, strategy: str = "delta",
          alpha: float = 0.95) -> HedgeResult:
    """Evaluate ``policy`` on ``prices`` (no gradients) and collect a :class:`HedgeResult`."""
    S = _as_prices(prices)
    with torch.no_grad():
        out = simulate(S, spec, policy)
    slip = mean_slippage(out, S, spec)
    return HedgeResult(strategy, out.pnl.numpy(), out.cost.numpy(), out.turnover.numpy(),
                       float(out.premium.mean()) * abs(spec.position), spec, alpha, slip)


# ---------------------------------------------------------------------------
# fragility: cost and ES as the book grows relative to volume
# ---------------------------------------------------------------------------
@dataclass
class FragilityCurve:
    """Total cost and ES per option as |position| / V grows, per strategy.

    Attributes:
        fractions: |position| / volume. Shape: (K,)
        cost: {strategy: mean cost per option}. Each shape (K,)
        es: {strategy: ES per option}. Each shape (K,)
        std: {strategy: P&L std per option}. Each shape (K,)
        spec: the base book.
    """

    fractions: np.ndarray
    cost: dict[str, np.ndarray]
    es: dict[str, np.ndarray]
    std: dict[str, np.ndarray]
    spec: HedgeSpec
    alpha: float = 0.95

    def crossover(self, strategy: str = "delta") -> float:
        """Smallest |position|/V where the mean cost exceeds the P&L std (impact dominates), NaN if none."""
        hit = np.nonzero(self.cost[strategy] > self.std[strategy])[0]
        return float(self.fractions[hit[0]]) if len(hit) else float("nan")

    def summary(self) -> str:
        names = list(self.cost)
        head = f"{'|pos|/V':>9}" + "".join(f" {n + ' cost':>14} {n + ' ES':>12} {n + ' std':>12}" for n in names)
        head = head.replace(" ES", f" ES{100 * self.alpha:.0f}")
        lines = [f"fragility curve (per option), cost {self.spec.cost.describe()}", head]
        for i, f in enumerate(self.fractions):
            lines.append(f"{f:9.2e}" + "".join(
                f" {self.cost[n][i]:14.4f} {self.es[n][i]:12.4f} {self.std[n][i]:12.4f}" for n in names))
        for n in names:
            x = self.crossover(n)
            lines.append(f"  {n}: impact cost exceeds P&L std from |pos|/V = "
                         + ("(not reached)" if math.isnan(x) else f"{x:.2e}"))
        return "\n".join(lines)

    def plot(self, path: str | Path) -> Path:
        """Cost and ES per option against |position| / V, log-log (PNG)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from findiffusion.files import save_figure

        fig, ax = plt.subplots(figsize=(7, 4))
        for n in self.cost:
            ax.plot(self.fractions, self.cost[n], "o-", label=f"{n}: mean cost")
            ax.plot(self.fractions, self.es[n], "s--", label=f"{n}: ES{100 * self.alpha:.0f}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("|position| / daily volume")
        ax.set_ylabel("per option (currency)")
        ax.set_title(f"fragility: {self.spec.cost.describe()}")
        ax.legend(fontsize=8)
        fig.tight_layout()
        return save_figure(fig, path)


def fragility_curve(prices: Any, spec: HedgeSpec, fractions: Any = (1e-4, 1e-3, 1e-2, 0.03, 0.1, 0.3, 1.0, 3.0),
                    *, strategies: tuple[str, ...] = ("delta", "band"), train_prices: Any = None,
                    alpha: float = 0.95) -> FragilityCurve:
    """Mean cost, ES and std per option as |position| = fraction x V grows (sign of ``spec.position`` kept).

    The band (H3) is recalibrated at every size on ``train_prices`` (default: ``prices``).
    The learned policy is not included (it would need one training per size).
    """
    S = _as_prices(prices)
    St = S if train_prices is None else _as_prices(train_prices)
    fr = np.asarray(fractions, dtype=float)
    if fr.ndim != 1 or len(fr) == 0 or not (fr > 0).all():
        raise InputError("fragility fractions must be positive numbers")
    bad = [s for s in strategies if s not in ("delta", "band")]
    if bad:
        raise InputError(f"fragility curve supports strategies delta and band, got {bad}")
    cost = {s: np.zeros(len(fr)) for s in strategies}
    es, std = {s: np.zeros(len(fr)) for s in strategies}, {s: np.zeros(len(fr)) for s in strategies}
    sign = 1.0 if spec.position > 0 else -1.0
    for i, f in enumerate(fr):
        sp = replace(spec, position=sign * f * spec.volume)
        n_opt = f * spec.volume
        for s in strategies:
            pol: Policy = delta_policy if s == "delta" else calibrate_band(St, sp, alpha=alpha)[0]
            with torch.no_grad():
                out = simulate(S, sp, pol)
            pnl = out.pnl
            cost[s][i] = float(out.cost.mean()) / n_opt
            es[s][i] = float(expected_shortfall(pnl, alpha)) / n_opt
            std[s][i] = float(pnl.std()) / n_opt
    return FragilityCurve(fr, cost, es, std, spec, alpha)
