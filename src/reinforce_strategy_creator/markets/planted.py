"""Null markets and markets with one planted structure, for N >= 1 assets, each with its rule.

Every market is real days resampled i.i.d. (``days``); a planted structure only changes the log
moves of the drawn days and records the change in ``truth``. Every builder takes the same
source and calendar arguments, so a single-asset market is a universe of one built by the same
code. Strengths and why: docs/markets.md. The seed drives two random streams: the first draws
the real days, the second (``[seed, 1]``) picks the tickers (``n_assets``) and then draws the
hidden regimes, so a planted market and the null market of the same seed and tickers are built
from the same real days.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.signal import lfilter

from . import rules
from .days import (
    MARKET_ENVIRONMENT,
    SYNTHETIC_START,
    MarketSpecError,
    SyntheticMarket,
    assemble,
    check_number,
    check_seed,
    draw_days,
    fields_moves,
    source_fields,
    source_volatility,
)

__all__ = [
    "BARS_PER_YEAR",
    "DEFAULT_EDGE",
    "null_market",
    "planted_lead_lag_market",
    "planted_momentum_market",
    "planted_reversal_market",
    "planted_reversion_market",
    "planted_rotation_market",
    "planted_slow_momentum_market",
    "planted_trend_market",
    "planted_volatility_market",
]

#: Annualised strengths are per-bar drifts times this (daily bars).
BARS_PER_YEAR = 252
#: Daily log drift the rotation leader shares (docs/markets.md, "Rotation").
DEFAULT_EDGE = 0.003


@dataclass(frozen=True)
class _Draw:
    """A market's seed, calendar, real days, drawn rows and the seed's second random stream."""

    seed: int
    index: pd.DatetimeIndex
    moves: pd.DataFrame
    days: dict
    tickers: tuple[str, ...]
    flat: bool
    initial_price: float
    rng: np.random.Generator

    @property
    def environment(self) -> dict:
        """Fill at the next open where the opens are real (OHLCV), else at the next close."""
        return dict(MARKET_ENVIRONMENT) if "log_high" in self.days else {"fill_price": "next_close"}

    def assemble(self, **planted) -> tuple[pd.DataFrame, pd.DataFrame]:
        return assemble(self.index, self.days, self.initial_price, self.tickers, self.flat, **planted)


def _choose(available: list[str], flat: bool, tickers, n_assets, rng: np.random.Generator) -> list[str]:
    if tickers is not None:
        chosen = [str(t) for t in tickers]
        missing = [t for t in chosen if t not in available]
        if flat or missing or not chosen or len(set(chosen)) != len(chosen):
            raise MarketSpecError(
                f"markets.tickers={list(tickers)}: give distinct tickers of the source panel "
                f"({'one series has none' if flat else available}); unknown: {missing}."
            )
        return chosen
    if n_assets is None:
        return available
    n_assets = check_number("n_assets", n_assets, 1, len(available), integer=True, lo_open=False)
    return [available[i] for i in np.sort(rng.choice(len(available), n_assets, replace=False))]


def _draw(source, seed, tickers, n_assets, index, n_bars, real_opens_only, initial_price) -> _Draw:
    seed = check_seed(seed)
    initial_price = check_number("initial_price", initial_price, 0.0, 1e12)
    fields, flat = source_fields(source)
    rng = np.random.default_rng([seed, 1])
    chosen = _choose([str(t) for t in fields["Close"].columns], flat, tickers, n_assets, rng)
    if not flat:
        fields = {k: v.set_axis([str(t) for t in v.columns], axis=1)[chosen] for k, v in fields.items()}
    if index is not None and n_bars is not None:
        raise MarketSpecError("markets: give index or n_bars, not both.")
    if n_bars is not None:
        n_bars = check_number("n_bars", n_bars, 2, 10**7, integer=True, lo_open=False)
        index = pd.bdate_range(SYNTHETIC_START, periods=n_bars)
    idx = pd.DatetimeIndex(fields["Close"].index if index is None else index, name="date")
    moves = fields_moves(fields, flat, real_opens_only)
    days = draw_days(moves, len(idx), np.random.default_rng(seed))
    return _Draw(seed, idx, moves, days, tuple(chosen), flat, initial_price, rng)


def markov_regimes(rng: np.random.Generator, n: int, mean_days: tuple[float, float]) -> np.ndarray:
    """Two-state regimes (0, 1) over ``n`` bars, each spell lasting a geometric number of bars
    with mean ``mean_days[state]``; the first state is drawn from the long-run shares."""
    state = int(rng.random() < mean_days[1] / (mean_days[0] + mean_days[1]))
    states, lengths, total = [], [], 0
    while total < n:
        length = int(rng.geometric(1.0 / mean_days[state]))
        states.append(state)
        lengths.append(length)
        total += length
        state = 1 - state
    return np.repeat(np.asarray(states, dtype=np.int64), lengths)[:n]


def null_market(source, seed: int, **calendar) -> SyntheticMarket:
    """Real days resampled i.i.d.: nothing to learn beyond the drift. Its rule is buy-and-hold
    (equal weight for a panel).

    ``source``: one OHLCV series, a ``Universe`` or a date x ticker close frame. ``calendar``,
    the same for every builder: ``tickers`` or ``n_assets`` (chosen by the seed) take part of a
    panel; the bars lie on ``index``, else on ``n_bars`` business days from ``SYNTHETIC_START``,
    else on the source's dates; ``real_opens_only`` (True) and ``initial_price`` (100).
    """
    d = _draw(source, seed, **_calendar(calendar))
    prices, truth = d.assemble()
    return SyntheticMarket(
        prices, rules.always_long(prices), "null", 0.0, d.seed, rules.always_long, {}, truth, d.environment
    )


def _one_day_market(kind, coef, strength, rule, d: _Draw) -> SyntheticMarket:
    """Day t's log body gets ``coef`` times day t-1's close-to-close log return, per ticker."""
    x = d.days["log_gap"] + d.days["log_body"]
    x[0] = 0.0  # the first bar has no previous close, so no close-to-close return
    cc = lfilter([1.0], [1.0, -coef], x, axis=0)  # cc_t = x_t + coef * cc_{t-1}
    drift = coef * np.concatenate([np.zeros((1, x.shape[1])), cc[:-1]])
    prices, truth = d.assemble(drift=drift)
    return SyntheticMarket(
        prices, rule(prices), kind, float(strength), d.seed, rule, {}, truth, d.environment
    )


def planted_momentum_market(source, seed: int, strength: float = 0.2, **calendar) -> SyntheticMarket:
    """One-day momentum: the open-to-close log move of day t gets ``strength`` (in (0, 1)) times
    the close-to-close log return of day t-1, per ticker. Rule: hold after an up day
    (``hold_after_up_day``): decided at close t-1, filled at open t, so the position earns day
    t's planted move. ``calendar``: the source and calendar arguments of ``null_market``."""
    strength = check_number("strength", strength, 0.0, 1.0, hi_open=True)
    d = _draw(source, seed, **_calendar(calendar))
    return _one_day_market("momentum", strength, strength, rules.hold_after_up_day, d)


def planted_reversion_market(source, seed: int, strength: float = 0.25, **calendar) -> SyntheticMarket:
    """Short-term mean reversion: the open-to-close log move of day t gets ``-strength`` (in
    (0, 1)) times the close-to-close log return of day t-1, per ticker. Rule: hold after a down
    day (``hold_after_down_day``), filled at the next open."""
    strength = check_number("strength", strength, 0.0, 1.0, hi_open=True)
    d = _draw(source, seed, **_calendar(calendar))
    return _one_day_market("reversion", -strength, strength, rules.hold_after_down_day, d)


def planted_trend_market(
    source, seed: int, strength: float = 0.7, *, regime_days: float = 63.0, lookback: int = 20, **calendar
) -> SyntheticMarket:
    """A slow persistent drift: up-trends and down-trends alternate, each lasting a geometric number
    of bars with mean ``regime_days``, each ticker on its own spells. A bar of an up-trend (+1)
    gets ``+strength / 252`` added to its open-to-close log move, of a down-trend (-1)
    ``-strength / 252`` (``strength`` is annualised). Rule: long while the trailing
    ``lookback``-bar return is positive (``trend_filter``)."""
    strength = check_number("strength", strength, 0.0, 5.0)
    regime_days = check_number("regime_days", regime_days, 2.0, 10_000.0, lo_open=False)
    lookback = check_number("lookback", lookback, 1, 1000, integer=True, lo_open=False)
    d = _draw(source, seed, **_calendar(calendar))
    n = len(d.index)
    spells = np.column_stack([markov_regimes(d.rng, n, (regime_days, regime_days)) for _ in d.tickers])
    regime = np.where(spells == 1, 1, -1)
    prices, truth = d.assemble(drift=regime * strength / BARS_PER_YEAR, regime=regime)
    rule = functools.partial(rules.trend_filter, lookback=lookback)
    params = {"regime_days": regime_days, "lookback": lookback}
    return SyntheticMarket(
        prices, rule(prices), "trend", strength, d.seed, rule, params, truth, d.environment
    )


def planted_volatility_market(
    source,
    seed: int,
    strength: float = 1.5,
    *,
    vol_ratio: float = 3.0,
    calm_days: float = 60.0,
    turbulent_days: float = 20.0,
    lookback: int = 10,
    **calendar,
) -> SyntheticMarket:
    """Volatility regimes where cutting exposure pays.

    Calm and turbulent spells of the whole market alternate (geometric lengths, means
    ``calm_days`` and ``turbulent_days``). Every log move of a turbulent day (gap, body, range,
    of every ticker) is ``vol_ratio`` times that of a calm day, both scaled so the long-run
    variance is the source's. Turbulent days also drift ``strength`` (annualised) below calm
    ones, split so the long-run drift stays the source's: calm days get
    ``+strength * p_turbulent / 252``, turbulent days ``-strength * p_calm / 252`` (p = long-run
    share of the regime). Rule: flat in a ticker while its trailing ``lookback``-bar realised
    volatility is above the geometric mean of its two regimes' volatilities
    (``low_volatility_filter``; that threshold, one per ticker, comes from the source and the
    parameters, not from the market's prices).
    """
    strength = check_number("strength", strength, 0.0, 10.0)
    vol_ratio = check_number("vol_ratio", vol_ratio, 1.0, 20.0)
    calm_days = check_number("calm_days", calm_days, 2.0, 10_000.0, lo_open=False)
    turbulent_days = check_number("turbulent_days", turbulent_days, 2.0, 10_000.0, lo_open=False)
    lookback = check_number("lookback", lookback, 2, 1000, integer=True, lo_open=False)
    d = _draw(source, seed, **_calendar(calendar))
    p_turbulent = turbulent_days / (calm_days + turbulent_days)
    p_calm = 1.0 - p_turbulent
    calm_scale = 1.0 / math.sqrt(p_calm + p_turbulent * vol_ratio**2)
    regime = markov_regimes(d.rng, len(d.index), (calm_days, turbulent_days))[:, None]
    turbulent = regime == 1
    vol_scale = np.where(turbulent, calm_scale * vol_ratio, calm_scale)
    drift = np.where(turbulent, -p_calm, p_turbulent) * strength / BARS_PER_YEAR
    prices, truth = d.assemble(vol_scale=vol_scale, drift=drift, regime=regime)
    vols = calm_scale * math.sqrt(vol_ratio) * source_volatility(d.moves)
    max_vol = float(vols[0]) if d.flat else tuple(float(v) for v in vols)
    rule = functools.partial(rules.low_volatility_filter, lookback=lookback, max_vol=max_vol)
    params = {
        "vol_ratio": vol_ratio,
        "calm_days": calm_days,
        "turbulent_days": turbulent_days,
        "lookback": lookback,
        "max_vol": max_vol,
    }
    return SyntheticMarket(
        prices, rule(prices), "volatility", strength, d.seed, rule, params, truth, d.environment
    )


def planted_rotation_market(
    source, seed: int, strength: float = DEFAULT_EDGE, *, lookback: int = 20, hold: int = 5, **calendar
) -> SyntheticMarket:
    """Cross-sectional rotation (N >= 2): the trailing leader keeps outperforming for a while.

    Bar by bar, the *leader* at bar s (``rules.trailing_leaders``: best return over the last
    ``lookback`` bars of the market being built, closes up to s) gets a share of the daily log
    drift ``strength`` (the edge) on each of the next ``hold`` bars: on bar u, ticker i's log
    move gets ``strength * (k_i - K / N) / hold``, ``k_i`` = how many of bars ``u - hold .. u - 1``
    had leader i, ``K = sum(k_i)``. The added drifts sum to zero across tickers (the
    cross-sectional mean move is the real day's) and a persistent leader gains
    ``strength * (1 - 1/N)`` a bar over the others. A rule deciding at bar t that fills at the
    next close earns from bar t+2 on, so ``hold`` must be at least 2 to be exploitable. Rule:
    all-in on the trailing leader (``hold_trailing_ranked`` with one ticker, i.e.
    ``hold_trailing_leader``). ``regime`` in ``truth`` marks each bar's leader; ``params``
    records ``n_selected = 1``.
    """
    return _ranked_builder("rotation", source, seed, strength, lookback, hold, 1, False, calendar)


def planted_reversal_market(
    source,
    seed: int,
    strength: float = 0.008,
    *,
    lookback: int = 5,
    hold: int = 5,
    n_selected: int = 2,
    **calendar,
) -> SyntheticMarket:
    """Short-horizon cross-sectional reversal (N >= 2): the trailing laggards bounce back.

    The rotation's drift with the ranking reversed: bar by bar, the ``n_selected`` tickers with
    the worst return over the last ``lookback`` bars (``rules.trailing_ranked``, ``worst=True``;
    closes of the market being built, up to bar s) share the daily log drift ``strength`` on each
    of the next ``hold`` bars: on bar u, ticker i's log move gets
    ``strength * (k_i / n_selected - K / N) / hold``, ``k_i`` = how many of bars
    ``u - hold .. u - 1`` selected i, ``K`` = how many of them selected any. The drifts sum to
    zero across tickers. Unlike the rotation the drift undoes its own cause (a laggard that
    bounces stops being one), so the selection changes often. Rule: equal shares in the trailing
    laggards (``hold_trailing_ranked``, ``worst=True``), which at the next close earns from bar
    t+2 on (``hold >= 2`` to be exploitable). ``regime`` in ``truth`` marks each bar's selection.
    """
    return _ranked_builder("reversal", source, seed, strength, lookback, hold, n_selected, True, calendar)


def planted_slow_momentum_market(
    source,
    seed: int,
    strength: float = 0.005,
    *,
    lookback: int = 60,
    hold: int = 20,
    n_selected: int = 2,
    **calendar,
) -> SyntheticMarket:
    """Slow cross-sectional momentum (N >= 2): the winners of the last quarter keep winning.

    The rotation's drift at a longer horizon and on more than one ticker: bar by bar, the
    ``n_selected`` tickers with the best return over the last ``lookback`` bars share the daily
    log drift ``strength`` on each of the next ``hold`` bars (the formula of
    ``planted_reversal_market``, best instead of worst). A ticker that stays among the winners
    gains ``strength * (1 / n_selected - 1 / N)`` a bar over equal weight. Rule: equal shares in
    the trailing winners (``hold_trailing_ranked``), which trades rarely (the ranking over 60
    bars changes slowly). ``regime`` in ``truth`` marks each bar's selection.
    """
    return _ranked_builder(
        "slow_momentum", source, seed, strength, lookback, hold, n_selected, False, calendar
    )


def planted_lead_lag_market(
    source, seed: int, strength: float = 0.3, *, hold: int = 2, **calendar
) -> SyntheticMarket:
    """A lead-lag (N >= 2): the first ticker's moves are passed on to the others a few bars later.

    The leader is the first ticker of the market (``params["leader"]``). Its close-to-close log
    move of bar s is passed on to every other ticker over bars s+1 .. s+``hold``: on bar u, a
    follower's log move gets ``strength * (sum of the leader's moves over bars u-hold .. u-1) /
    hold``; the leader's own moves are the real days'. ``strength`` is the share of the leader's
    move passed on, in [0, 1]. Unlike the ranked kinds the drift is not relative: equal weight
    holds the followers too, but cannot tell when to. Rule: equal shares in the followers after
    a bar on which the leader closed up, cash otherwise (``hold_followers_after_leader_up``); at
    the next close it earns from bar t+2 on, so ``hold`` must be at least 2 to be exploitable.
    ``regime`` in ``truth`` marks the leader (1) and the followers (0).
    """
    strength = check_number("strength", strength, 0.0, 1.0, lo_open=False)
    hold = check_number("hold", hold, 1, 1000, integer=True, lo_open=False)
    d = _draw(source, seed, **_calendar(calendar))
    _check_cross_section("lead_lag", d, 1)
    moves = d.days["log_gap"] + d.days["log_body"]
    leader = moves[:, 0].copy()
    leader[0] = 0.0  # bar 0 has no previous close
    passed = lfilter(np.ones(hold), [1.0], leader)  # sum of the leader's moves over bars u-hold+1 .. u
    drift = np.zeros_like(moves)
    drift[1:, 1:] = strength * passed[:-1, None] / hold
    regime = np.zeros(moves.shape, dtype=np.int64)
    regime[:, 0] = 1
    prices, truth = d.assemble(drift=drift, regime=regime)
    rule = functools.partial(rules.hold_followers_after_leader_up, leader=d.tickers[0])
    params = {"hold": hold, "leader": d.tickers[0]}
    return SyntheticMarket(
        prices, rule(prices), "lead_lag", strength, d.seed, rule, params, truth, d.environment
    )


def _ranked_builder(kind, source, seed, strength, lookback, hold, n_selected, worst, calendar):
    """Check the parameters of a ranked kind, draw the days, plant its drift, attach its rule."""
    strength = check_number("strength", strength, 0.0, 0.05, lo_open=False)
    lookback = check_number("lookback", lookback, 1, 10**5, integer=True, lo_open=False)
    hold = check_number("hold", hold, 1, 10**5, integer=True, lo_open=False)
    n_selected = check_number("n_selected", n_selected, 1, 10**5, integer=True, lo_open=False)
    d = _draw(source, seed, **_calendar(calendar))
    _check_cross_section(kind, d, n_selected)
    rule = functools.partial(
        rules.hold_trailing_ranked, lookback=lookback, n_selected=n_selected, worst=worst
    )
    moves = d.days["log_gap"] + d.days["log_body"]
    drift, selected = _ranked_drift(moves, lookback, hold, strength, n_selected, worst)
    prices, truth = d.assemble(drift=drift, regime=selected.astype(np.int64))
    params = {"lookback": lookback, "hold": hold, "n_selected": n_selected}
    return SyntheticMarket(prices, rule(prices), kind, strength, d.seed, rule, params, truth, d.environment)


def _check_cross_section(kind: str, d: _Draw, n_selected: int) -> None:
    """A cross-sectional kind needs N >= 2 tickers and selects fewer than N of them."""
    if len(d.tickers) < 2:
        raise MarketSpecError(
            f"markets.n_assets: a {kind} needs at least 2 tickers, got {list(d.tickers)}; "
            "give a panel source (and n_assets >= 2)."
        )
    if n_selected >= len(d.tickers):
        raise MarketSpecError(
            f"markets.n_selected must be below the number of tickers ({len(d.tickers)}), got "
            f"{n_selected}: selecting every ticker plants nothing; see docs/markets.md."
        )


def _ranked_drift(
    log_move: np.ndarray, lookback: int, hold: int, edge: float, n_selected: int, worst: bool
) -> tuple[np.ndarray, np.ndarray]:
    """The drift of a ranked kind on each bar, added bar by bar (the ranking reads the planted
    closes), and each bar's selection ((n, N) bool; none before bar ``lookback``).

    ``log_move``: each bar's close-to-close log move before planting (bar 0's is ignored)."""
    n, n_tickers = log_move.shape
    drift = np.zeros((n, n_tickers))
    level = np.zeros((n, n_tickers))  # log closes, bar 0 = 0
    selected = np.zeros((n, n_tickers), dtype=bool)
    counts = np.zeros(n_tickers)
    bars = 0  # of bars u-hold .. u-1, those with a selection
    sign = 1.0 if worst else -1.0  # ascending sort: the selected come first
    for u in range(1, n):
        s = u - 1  # the selection of bar u-1 is known at its close
        if s >= lookback:
            ranked = np.argsort(sign * (level[s] - level[s - lookback]), kind="stable")
            selected[s, ranked[:n_selected]] = True
            counts += selected[s]
            bars += 1
        old = s - hold
        if old >= lookback:
            counts -= selected[old]
            bars -= 1
        if bars:
            drift[u] = edge * (counts / n_selected - bars / n_tickers) / hold
        level[u] = level[u - 1] + (log_move[u] + drift[u])
    if n - 1 >= lookback:
        ranked = np.argsort(sign * (level[n - 1] - level[n - 1 - lookback]), kind="stable")
        selected[n - 1, ranked[:n_selected]] = True
    return drift, selected


_CALENDAR = ("tickers", "n_assets", "index", "n_bars", "real_opens_only", "initial_price")


def _calendar(options: dict) -> dict:
    """The source and calendar arguments of ``null_market`` (defaults filled), refusing others."""
    unknown = sorted(set(options) - set(_CALENDAR))
    if unknown:
        raise MarketSpecError(f"markets: unknown option(s) {unknown}; see docs/markets.md for each kind's.")
    defaults = {"tickers": None, "n_assets": None, "index": None, "n_bars": None}
    return {**defaults, "real_opens_only": True, "initial_price": 100.0, **options}
