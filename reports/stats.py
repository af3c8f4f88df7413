"""The statistics behind reports/metrics.py, each a pure function of float64 arrays.

Formulas: docs/metrics.md. ``net_usd`` is the per-trade net result in exit order (see
reports/trades.py). As in MT5, a trade wins (is a *profit trade*) when ``net_usd >= 0`` and
loses when ``net_usd < 0``: a trade of exactly 0 counts as a profit trade everywhere (counts,
averages, runs, Z-score).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

TRADING_DAYS_PER_YEAR = 252
SECONDS_PER_DAY = 86400
NAN = float("nan")


def ratio(num: float, den: float) -> float:
    """num/den with x/0 = +-inf for x != 0 and 0/0 = nan (den is a magnitude, >= 0)."""
    if math.isnan(num) or math.isnan(den):
        return NAN
    if den == 0.0:
        return NAN if num == 0.0 else math.copysign(math.inf, num)
    return float(num / den)


def _f(x) -> float:
    return float(x)  # numpy scalar -> Python float, so dataclasses hold plain JSON-able values


@dataclass(frozen=True)
class Drawdown:
    absolute_usd: float  # deposit - lowest value, 0 if never below the deposit
    maximal_usd: float  # largest peak-to-trough fall in money
    maximal_pct: float  # that fall as % of its peak
    relative_pct: float  # largest fall as % of its peak
    relative_usd: float  # that fall in money
    longest_underwater_points: int  # longest run of points strictly below the running peak


def drawdown(values_usd: np.ndarray, deposit_usd: float) -> Drawdown:
    """Drawdowns of a money curve whose running peak starts at the deposit."""
    v = np.asarray(values_usd, dtype=np.float64)
    if len(v) == 0:
        return Drawdown(0.0, 0.0, 0.0, 0.0, 0.0, 0)
    peak = np.maximum.accumulate(np.concatenate([[float(deposit_usd)], v]))[1:]
    dd = peak - v
    with np.errstate(divide="ignore", invalid="ignore"):
        pct = np.where(peak > 0, dd / peak * 100.0, np.nan)
    i = int(np.argmax(dd))  # first occurrence on ties
    if np.all(np.isnan(pct)):
        rel_pct, rel_usd = NAN, NAN
    else:
        j = int(np.nanargmax(pct))
        rel_pct, rel_usd = _f(pct[j]), _f(dd[j])
    longest = run = 0
    for under in dd > 0:
        run = run + 1 if under else 0
        longest = max(longest, run)
    return Drawdown(
        absolute_usd=max(0.0, float(deposit_usd) - _f(v.min())),
        maximal_usd=_f(dd[i]),
        maximal_pct=_f(pct[i]),
        relative_pct=rel_pct,
        relative_usd=rel_usd,
        longest_underwater_points=longest,
    )


@dataclass(frozen=True)
class TradeStats:
    total_trades: int
    gross_profit_usd: float
    gross_loss_usd: float  # <= 0, as MT5 shows it
    profit_factor: float
    expected_payoff_usd: float
    profit_trades: int
    profit_trades_pct: float
    loss_trades: int
    loss_trades_pct: float
    short_trades: int
    short_trades_won_pct: float
    long_trades: int
    long_trades_won_pct: float
    largest_profit_trade_usd: float
    largest_loss_trade_usd: float
    average_profit_trade_usd: float
    average_loss_trade_usd: float


def wins(net_usd: np.ndarray) -> np.ndarray:
    """MT5's profit trades: ``net >= 0`` (a trade of exactly 0 is a profit trade)."""
    return np.asarray(net_usd, dtype=np.float64) >= 0


def mt5_round(x: float) -> float:
    """A whole number as MT5 shows averages of run lengths: halves round up; nan stays."""
    return x if math.isnan(x) else float(math.floor(x + 0.5))


def _pct(part: int, whole: int) -> float:
    return 100.0 * part / whole if whole else NAN


def trade_stats(net_usd: np.ndarray, direction: np.ndarray) -> TradeStats:
    """Counts and sums over trades; ``direction`` is +1 long, -1 short."""
    net = np.asarray(net_usd, dtype=np.float64)
    d = np.asarray(direction)
    n = len(net)
    win = wins(net)
    loss = ~win
    short, long_ = d < 0, d > 0
    gp, gl = _f(net[win].sum()), _f(net[loss].sum())
    nw, nl = int(win.sum()), int(loss.sum())
    return TradeStats(
        total_trades=n,
        gross_profit_usd=gp,
        gross_loss_usd=gl,
        profit_factor=ratio(gp, -gl),
        expected_payoff_usd=_f(net.mean()) if n else NAN,
        profit_trades=nw,
        profit_trades_pct=_pct(nw, n),
        loss_trades=nl,
        loss_trades_pct=_pct(nl, n),
        short_trades=int(short.sum()),
        short_trades_won_pct=_pct(int((win & short).sum()), int(short.sum())),
        long_trades=int(long_.sum()),
        long_trades_won_pct=_pct(int((win & long_).sum()), int(long_.sum())),
        largest_profit_trade_usd=_f(net[win].max()) if nw else NAN,
        largest_loss_trade_usd=_f(net[loss].min()) if nl else NAN,
        average_profit_trade_usd=gp / nw if nw else NAN,
        average_loss_trade_usd=gl / nl if nl else NAN,
    )


def runs(net_usd: np.ndarray) -> list[tuple[int, int, float]]:
    """Maximal runs of wins (+1) and losses (-1) in trade order: [(sign, length, sum of net)]."""
    out: list[tuple[int, int, float]] = []
    for x in np.asarray(net_usd, dtype=np.float64):
        s = 1 if x >= 0 else -1
        if out and out[-1][0] == s:
            _, k, total = out[-1]
            out[-1] = (s, k + 1, total + float(x))
        else:
            out.append((s, 1, float(x)))
    return out


@dataclass(frozen=True)
class Streaks:
    max_wins_count: int  # longest run of wins ...
    max_wins_usd: float  # ... and its money (the first such run on ties)
    max_losses_count: int
    max_losses_usd: float
    maximal_profit_usd: float  # most money won in one run of wins ...
    maximal_profit_count: int  # ... and that run's length
    maximal_loss_usd: float  # most money lost in one run of losses (<= 0)
    maximal_loss_count: int
    average_wins: float  # mean length of the runs of wins, rounded as MT5 shows it
    average_losses: float
    average_wins_exact: float  # the unrounded means
    average_losses_exact: float


def streaks(net_usd: np.ndarray) -> Streaks:
    rs = runs(net_usd)
    won = [(k, t) for s, k, t in rs if s > 0]
    losses = [(k, t) for s, k, t in rs if s < 0]
    mean_wins = float(np.mean([k for k, _ in won])) if won else NAN
    mean_losses = float(np.mean([k for k, _ in losses])) if losses else NAN

    def first_max(items, key):
        best = None
        for it in items:
            if best is None or key(it) > key(best):
                best = it
        return best

    lw = first_max(won, lambda r: r[0]) or (0, 0.0)
    ll = first_max(losses, lambda r: r[0]) or (0, 0.0)
    pw = first_max(won, lambda r: r[1]) or (0, 0.0)
    pl = first_max(losses, lambda r: -r[1]) or (0, 0.0)
    return Streaks(
        max_wins_count=lw[0], max_wins_usd=lw[1],
        max_losses_count=ll[0], max_losses_usd=ll[1],
        maximal_profit_usd=pw[1], maximal_profit_count=pw[0],
        maximal_loss_usd=pl[1], maximal_loss_count=pl[0],
        average_wins=mt5_round(mean_wins),
        average_losses=mt5_round(mean_losses),
        average_wins_exact=mean_wins,
        average_losses_exact=mean_losses,
    )


@dataclass(frozen=True)
class ZScore:
    z: float
    probability_pct: float  # P(|N(0,1)| < |z|): confidence that wins/losses are not random


def z_score(net_usd: np.ndarray) -> ZScore:
    """Runs test on the win/loss sequence (a zero trade is a win), Vince's form as in MT5."""
    seq = runs(net_usd)
    n = sum(k for _, k, _ in seq)
    w = sum(k for s, k, _ in seq if s > 0)
    p = 2.0 * w * (n - w)
    if n < 2 or p * (p - n) <= 0:
        return ZScore(NAN, NAN)
    z = (n * (len(seq) - 0.5) - p) / math.sqrt(p * (p - n) / (n - 1))
    return ZScore(z, 100.0 * math.erf(abs(z) / math.sqrt(2.0)))


@dataclass(frozen=True)
class HprStats:
    ahpr: float  # arithmetic mean of HPR_i = b_i / b_(i-1)
    ghpr: float  # geometric mean of HPR_i
    sharpe_mt5: float  # (AHPR - 1) / population std of HPR, as MT5's reports


def trade_balance(net_usd: np.ndarray, deposit_usd: float) -> np.ndarray:
    """b_0 = deposit, b_i = b_(i-1) + net_i: the balance as the trades see it (len N + 1)."""
    net = np.asarray(net_usd, dtype=np.float64)
    return np.concatenate([[float(deposit_usd)], float(deposit_usd) + np.cumsum(net)])


def hpr_stats(net_usd: np.ndarray, deposit_usd: float) -> HprStats:
    b = trade_balance(net_usd, deposit_usd)
    if len(b) < 2:
        return HprStats(NAN, NAN, NAN)
    if np.any(b <= 0):  # a blown account has no holding-period return
        return HprStats(NAN, NAN, NAN)
    hpr = b[1:] / b[:-1]
    ahpr = _f(hpr.mean())
    ghpr = _f(np.exp(np.log(hpr).mean()))
    sharpe = ratio(ahpr - 1.0, _f(hpr.std(ddof=0))) if len(hpr) >= 2 else NAN
    return HprStats(ahpr, ghpr, sharpe)


@dataclass(frozen=True)
class LinearRegression:
    correlation: float  # Pearson r between trade number and trade balance
    standard_error_usd: float  # sqrt(sum of squared residuals / (points - 2))


def lr_stats(net_usd: np.ndarray, deposit_usd: float) -> LinearRegression:
    """Least-squares line through the points (i, b_i), i = 0..N."""
    y = trade_balance(net_usd, deposit_usd)
    n = len(y)
    if n < 2:
        return LinearRegression(NAN, NAN)
    x = np.arange(n, dtype=np.float64)
    dx, dy = x - x.mean(), y - y.mean()
    sxx, syy, sxy = _f(dx @ dx), _f(dy @ dy), _f(dx @ dy)
    corr = sxy / math.sqrt(sxx * syy) if syy > 0 else NAN
    slope = sxy / sxx
    resid = dy - slope * dx
    se = math.sqrt(_f(resid @ resid) / (n - 2)) if n > 2 else NAN
    return LinearRegression(corr, se)


def daily_sharpe(time_s: np.ndarray, equity_usd: np.ndarray, deposit_usd: float
                 ) -> tuple[float, int]:
    """Annualised Sharpe of daily equity returns (calendar days on the bars' clock).

    ``time_s`` are the bars' naive timestamps as Unix seconds, so ``time_s // 86400`` splits
    at midnight of the bar file's clock (broker time unless ``data.tz`` converted the bars).

    Returns (sharpe, number of daily returns). The first day's return is against the deposit.
    """
    t = np.asarray(time_s, dtype=np.int64)
    e = np.asarray(equity_usd, dtype=np.float64)
    if len(t) == 0:
        return NAN, 0
    day = t // SECONDS_PER_DAY
    last = np.concatenate([day[1:] != day[:-1], [True]])
    close = e[last]
    prev = np.concatenate([[float(deposit_usd)], close[:-1]])
    r = close / prev - 1.0
    if len(r) < 2:
        return NAN, len(r)
    return ratio(_f(r.mean()), _f(r.std(ddof=1))) * math.sqrt(TRADING_DAYS_PER_YEAR), len(r)


def min_margin_level(margin_level_pct: np.ndarray) -> float:
    """Lowest finite margin level; nan when no bar used margin."""
    m = np.asarray(margin_level_pct, dtype=np.float64)
    m = m[np.isfinite(m)]
    return _f(m.min()) if len(m) else NAN


def holding_times(holding_hours: np.ndarray) -> tuple[float, float, float]:
    """(min, max, mean) holding time in hours; nan with no trades."""
    h = np.asarray(holding_hours, dtype=np.float64)
    if len(h) == 0:
        return NAN, NAN, NAN
    return _f(h.min()), _f(h.max()), _f(h.mean())
