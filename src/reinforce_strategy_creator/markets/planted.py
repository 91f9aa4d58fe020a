"""Null markets and markets with one planted structure, each with the rule that exploits it.

Every market is real days resampled i.i.d. (``days``); a planted structure only changes the log
moves of the drawn days and records the change in ``truth``. Strengths and why: docs/markets.md.
Hidden regimes are drawn from a second random stream of the seed, so a planted market and the
null market of the same seed are built from the same real days.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pandas as pd
from scipy.signal import lfilter

from . import rules
from .days import (
    SyntheticMarket,
    assemble,
    check_number,
    check_seed,
    day_ratios,
    draw_days,
    source_volatility,
)

__all__ = [
    "BARS_PER_YEAR",
    "null_market",
    "planted_momentum_market",
    "planted_reversion_market",
    "planted_trend_market",
    "planted_volatility_market",
]

#: Annualised strengths are per-bar drifts times this (daily bars).
BARS_PER_YEAR = 252


def _setup(source: pd.DataFrame, seed, index, real_opens_only: bool, initial_price):
    seed = check_seed(seed)
    check_number("initial_price", initial_price, 0.0, 1e12)
    idx = pd.DatetimeIndex(source.index if index is None else index, name="date")
    ratios = day_ratios(source, real_opens_only)
    return seed, idx, ratios, draw_days(ratios, len(idx), np.random.default_rng(seed))


def _regime_rng(seed: int) -> np.random.Generator:
    return np.random.default_rng([seed, 1])


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


def null_market(
    source: pd.DataFrame,
    seed: int,
    *,
    index: pd.DatetimeIndex | None = None,
    real_opens_only: bool = True,
    initial_price: float = 100.0,
) -> SyntheticMarket:
    """Real days resampled i.i.d.: nothing to learn beyond the drift. Its rule is buy-and-hold."""
    seed, idx, _, days = _setup(source, seed, index, real_opens_only, initial_price)
    prices, truth = assemble(idx, days, initial_price)
    return SyntheticMarket(prices, rules.always_long(prices), "null", 0.0, seed, rules.always_long, {}, truth)


def _one_day_market(kind, coef, strength, rule, source, seed, index, real_opens_only, initial_price):
    """Day t's open-to-close log move gets ``coef`` times day t-1's close-to-close log return."""
    seed, idx, _, days = _setup(source, seed, index, real_opens_only, initial_price)
    x = days["log_gap"] + days["log_body"]
    x[0] = 0.0  # the first bar has no previous close, so no close-to-close return
    cc = lfilter([1.0], [1.0, -coef], x)  # cc_t = x_t + coef * cc_{t-1}
    drift = coef * np.concatenate([[0.0], cc[:-1]])
    prices, truth = assemble(idx, days, initial_price, drift=drift)
    return SyntheticMarket(prices, rule(prices), kind, float(strength), seed, rule, {}, truth)


def planted_momentum_market(
    source: pd.DataFrame,
    seed: int,
    strength: float = 0.2,
    *,
    index: pd.DatetimeIndex | None = None,
    real_opens_only: bool = True,
    initial_price: float = 100.0,
) -> SyntheticMarket:
    """One-day momentum: the open-to-close log move of day t gets ``strength`` (in (0, 1)) times
    the close-to-close log return of day t-1. Rule: hold after an up day (``hold_after_up_day``):
    decided at close t-1, filled at open t, so the position earns day t's planted move."""
    strength = check_number("strength", strength, 0.0, 1.0, hi_open=True)
    rule = rules.hold_after_up_day
    return _one_day_market(
        "momentum", strength, strength, rule, source, seed, index, real_opens_only, initial_price
    )


def planted_reversion_market(
    source: pd.DataFrame,
    seed: int,
    strength: float = 0.25,
    *,
    index: pd.DatetimeIndex | None = None,
    real_opens_only: bool = True,
    initial_price: float = 100.0,
) -> SyntheticMarket:
    """Short-term mean reversion: the open-to-close log move of day t gets ``-strength`` (in (0, 1))
    times the close-to-close log return of day t-1. Rule: hold after a down day
    (``hold_after_down_day``), filled at the next open."""
    strength = check_number("strength", strength, 0.0, 1.0, hi_open=True)
    rule = rules.hold_after_down_day
    return _one_day_market(
        "reversion", -strength, strength, rule, source, seed, index, real_opens_only, initial_price
    )


def planted_trend_market(
    source: pd.DataFrame,
    seed: int,
    strength: float = 0.7,
    *,
    regime_days: float = 63.0,
    lookback: int = 20,
    index: pd.DatetimeIndex | None = None,
    real_opens_only: bool = True,
    initial_price: float = 100.0,
) -> SyntheticMarket:
    """A slow persistent drift: up-trends and down-trends alternate, each lasting a geometric number
    of bars with mean ``regime_days``; every day of an up-trend (``regime`` +1) gets a log drift of
    ``+strength / 252`` on its open-to-close move, of a down-trend (-1) ``-strength / 252``
    (``strength`` is annualised). Rule: long while the trailing ``lookback``-bar return is positive
    (``trend_filter``)."""
    strength = check_number("strength", strength, 0.0, 5.0)
    regime_days = check_number("regime_days", regime_days, 2.0, 10_000.0, lo_open=False)
    lookback = check_number("lookback", lookback, 1, 1000, integer=True, lo_open=False)
    seed, idx, _, days = _setup(source, seed, index, real_opens_only, initial_price)
    regime = np.where(markov_regimes(_regime_rng(seed), len(idx), (regime_days, regime_days)) == 1, 1, -1)
    prices, truth = assemble(idx, days, initial_price, drift=regime * strength / BARS_PER_YEAR, regime=regime)
    rule = functools.partial(rules.trend_filter, lookback=lookback)
    return SyntheticMarket(
        prices,
        rule(prices),
        "trend",
        strength,
        seed,
        rule,
        {"regime_days": regime_days, "lookback": lookback},
        truth,
    )


def planted_volatility_market(
    source: pd.DataFrame,
    seed: int,
    strength: float = 1.5,
    *,
    vol_ratio: float = 3.0,
    calm_days: float = 60.0,
    turbulent_days: float = 20.0,
    lookback: int = 10,
    index: pd.DatetimeIndex | None = None,
    real_opens_only: bool = True,
    initial_price: float = 100.0,
) -> SyntheticMarket:
    """Volatility regimes where cutting exposure pays.

    Calm and turbulent spells alternate (geometric lengths, means ``calm_days`` and
    ``turbulent_days``). Every log move of a turbulent day (gap, body, range) is ``vol_ratio``
    times that of a calm day, both scaled so the long-run variance is the source's. Turbulent days
    also drift ``strength`` (annualised) below calm ones, split so the long-run drift stays the
    source's: calm days get ``+strength * p_turbulent / 252``, turbulent days
    ``-strength * p_calm / 252`` (p = long-run share of the regime). Rule: flat while the trailing
    ``lookback``-bar realised volatility is above the geometric mean of the two regimes'
    volatilities (``low_volatility_filter``; that threshold comes from the source and the
    parameters, not from the market's prices).
    """
    strength = check_number("strength", strength, 0.0, 10.0)
    vol_ratio = check_number("vol_ratio", vol_ratio, 1.0, 20.0)
    calm_days = check_number("calm_days", calm_days, 2.0, 10_000.0, lo_open=False)
    turbulent_days = check_number("turbulent_days", turbulent_days, 2.0, 10_000.0, lo_open=False)
    lookback = check_number("lookback", lookback, 2, 1000, integer=True, lo_open=False)
    seed, idx, ratios, days = _setup(source, seed, index, real_opens_only, initial_price)
    p_turbulent = turbulent_days / (calm_days + turbulent_days)
    p_calm = 1.0 - p_turbulent
    calm_scale = 1.0 / math.sqrt(p_calm + p_turbulent * vol_ratio**2)
    regime = markov_regimes(_regime_rng(seed), len(idx), (calm_days, turbulent_days))
    turbulent = regime == 1
    vol_scale = np.where(turbulent, calm_scale * vol_ratio, calm_scale)
    drift = np.where(turbulent, -p_calm, p_turbulent) * strength / BARS_PER_YEAR
    prices, truth = assemble(idx, days, initial_price, vol_scale=vol_scale, drift=drift, regime=regime)
    max_vol = calm_scale * math.sqrt(vol_ratio) * source_volatility(ratios)
    rule = functools.partial(rules.low_volatility_filter, lookback=lookback, max_vol=max_vol)
    params = {
        "vol_ratio": vol_ratio,
        "calm_days": calm_days,
        "turbulent_days": turbulent_days,
        "lookback": lookback,
        "max_vol": max_vol,
    }
    return SyntheticMarket(prices, rule(prices), "volatility", strength, seed, rule, params, truth)
