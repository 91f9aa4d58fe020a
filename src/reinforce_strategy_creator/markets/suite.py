"""The planted-market suite and the report of each market's rule against buy-and-hold.

``planted_suite`` builds every planted kind for a few seeds plus several null markets, with
stable names (``momentum-s1``, ``null-s2``). ``rule_report`` replays a single-asset market's
rule and buy-and-hold on the train, validation and test windows of the splits it is given,
through the same ``env.replay`` and metrics as the agents' evaluation, so its figures compare
with theirs. It reads no project configuration: the caller passes the ``environment`` and
``feature_engineering`` parameters. See docs/markets.md.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from .. import features as fe
from ..env import EnvConfig, MarketArrays, replay
from ..evaluation.benchmarks import ScheduledDecision, buy_and_hold_targets
from ..evaluation.metrics import evaluate_backtest, infer_periods_per_year
from ..params.features import FeatureParams
from .days import MarketSpecError, SyntheticMarket, is_panel
from .planted import (
    null_market,
    planted_lead_lag_market,
    planted_momentum_market,
    planted_reversal_market,
    planted_reversion_market,
    planted_rotation_market,
    planted_slow_momentum_market,
    planted_trend_market,
    planted_volatility_market,
)

__all__ = [
    "BUILDERS",
    "PLANTED_KINDS",
    "REPORT_COLUMNS",
    "UNIVERSE_KINDS",
    "make_market",
    "planted_suite",
    "rule_report",
]

#: Market builders by kind; each takes ``(source, seed, strength=..., **options)`` except ``null``.
BUILDERS: Mapping[str, Callable[..., SyntheticMarket]] = {
    "momentum": planted_momentum_market,
    "reversion": planted_reversion_market,
    "trend": planted_trend_market,
    "volatility": planted_volatility_market,
    "rotation": planted_rotation_market,
    "reversal": planted_reversal_market,
    "slow_momentum": planted_slow_momentum_market,
    "lead_lag": planted_lead_lag_market,
    "null": null_market,
}
#: The kinds planted at any N, the default of ``planted_suite``.
PLANTED_KINDS = ("momentum", "reversion", "trend", "volatility")
#: The cross-sectional kinds, planted on panels of N >= 2 tickers only: a ranking at three
#: horizons (a 5-bar reversal held 5 bars, the 20-bar rotation held 5, a 60-bar momentum held
#: 20) and a lead-lag (one ticker's move passed on to the others over the next 2 bars).
UNIVERSE_KINDS = ("reversal", "rotation", "slow_momentum", "lead_lag")
REPORT_COLUMNS = [
    "market",
    "kind",
    "window",
    "start",
    "end",
    "bars",
    "rule_sharpe",
    "buy_and_hold_sharpe",
    "rule_total_return",
    "buy_and_hold_total_return",
    "rule_exposure",
    "rule_trades",
]


def make_market(kind: str, source: pd.DataFrame, seed: int, **options) -> SyntheticMarket:
    """The market of ``kind`` (a key of ``BUILDERS``) for ``seed``; ``options`` go to its builder
    (``strength``, regime lengths, ``tickers``, ``n_bars``, ``index`` ...)."""
    if kind not in BUILDERS:
        raise MarketSpecError(f"markets.kind must be one of {sorted(BUILDERS)}, got {kind!r}.")
    return BUILDERS[kind](source, seed, **options)


def _seeds(name: str, seeds: Sequence[int]) -> list[int]:
    seeds = list(seeds)
    if len(set(seeds)) != len(seeds):
        raise MarketSpecError(f"markets.{name} must be distinct, got {seeds}; each seed names one market.")
    return seeds


def planted_suite(
    source: pd.DataFrame,
    seeds: Sequence[int] = (1, 2),
    null_seeds: Sequence[int] = (1, 2, 3),
    *,
    kinds: Sequence[str] = PLANTED_KINDS,
    options: Mapping[str, Mapping[str, object]] | None = None,
) -> list[SyntheticMarket]:
    """Every planted kind in ``kinds`` for every seed of ``seeds`` (default strengths), then a
    null market per seed of ``null_seeds``; in that order, names ``<kind>-s<seed>``.

    ``options`` maps a kind to the options of its builder (e.g. ``{"trend": {"strength": 0.5}}``);
    the names do not show them, so compare markets built with the same options.
    """
    options = dict(options or {})
    planted = [k for k in BUILDERS if k != "null"]
    unknown = sorted(set(kinds) - set(planted)) + sorted(set(options) - set(BUILDERS))
    if unknown:
        raise MarketSpecError(
            f"markets.kinds: unknown kind(s) {unknown}; planted kinds are {planted} "
            "(options may also name 'null')."
        )
    plan = [(kind, seed) for kind in kinds for seed in _seeds("seeds", seeds)]
    plan += [("null", seed) for seed in _seeds("null_seeds", null_seeds)]
    return [make_market(kind, source, seed, **dict(options.get(kind, {}))) for kind, seed in plan]


def _windows(index: pd.DatetimeIndex, feature_engineering, splits) -> dict[str, np.ndarray]:
    """Row positions of each split, exactly as ``feature_engineering`` cuts ``model_input_*``:
    the feature warm-up and the embargo are dropped."""
    params = FeatureParams.parse(feature_engineering)
    if splits is not None:
        params = params.replace(splits=splits)
    lookback = fe.max_lookback(params.features)
    plan = fe.plan_splits(
        index,
        fe.validate_split_dates(params.splits),
        lookback=lookback,
        embargo_bars=fe.resolve_embargo(params.embargo_bars, lookback),
        min_split_rows=params.min_split_rows,
    )
    return {name: plan[name]["positions"] for name in fe.SPLIT_NAMES}


def _replay_window(market: SyntheticMarket, rows: np.ndarray, config: EnvConfig, window: str) -> dict:
    prices = market.prices.iloc[rows]
    if len(prices) <= config.window:
        raise MarketSpecError(
            f"rule_report: the {window} window of {market.name} has {len(prices)} bars, but a "
            f"replay needs more than environment.window={config.window}."
        )
    close = prices["Close"].to_numpy(dtype=float)
    arrays = MarketArrays.from_arrays(
        np.zeros(len(prices)), prices["Open"].to_numpy(dtype=float), close, prices.index
    )
    # lane 0: the rule (decided on the whole history, cut to the window), lane 1: buy-and-hold
    targets = np.vstack([market.rule_position.to_numpy(dtype=float)[rows], buy_and_hold_targets(close)])
    positions = None if config.continuous else config.positions
    decision = ScheduledDecision(targets, positions, config.window - 1)
    result = replay(arrays, config, decision, num_envs=2)
    rule, bh = result.lane(0), result.lane(1)
    ppy = infer_periods_per_year(bh.index)
    rule_m = evaluate_backtest(rule, benchmark_frame=bh, periods_per_year=ppy)
    bh_m = evaluate_backtest(bh, periods_per_year=ppy)
    return {
        "market": market.name,
        "kind": market.kind,
        "window": window,
        "start": prices.index[config.window - 1].date().isoformat(),
        "end": prices.index[-1].date().isoformat(),
        "bars": int(rule_m["n_bars"]),
        "rule_sharpe": rule_m["sharpe"],
        "buy_and_hold_sharpe": bh_m["sharpe"],
        "rule_total_return": rule_m["total_return"],
        "buy_and_hold_total_return": bh_m["total_return"],
        "rule_exposure": rule_m["exposure"],
        "rule_trades": int(rule_m["n_trades"]),
    }


def rule_report(
    market: SyntheticMarket,
    environment: Mapping,
    feature_engineering: Mapping,
    *,
    splits: Mapping | None = None,
    windows: Sequence[str] = fe.SPLIT_NAMES,
) -> pd.DataFrame:
    """The rule's and buy-and-hold's figures on each window of ``market`` (one row per window).

    Windows are the rows of ``model_input_<window>`` a run on this market would score: the
    splits of the ``feature_engineering`` parameters (``splits`` replaces them) less the
    feature warm-up and the embargo. Each window is replayed from its first decision bar
    (``environment.window - 1``) like an agent's, through ``env.replay`` with ONE config built
    from the ``environment`` parameters plus ``market.environment`` (the fill at the
    next open), so both runs pay the agents' costs on the agents' capital; figures come from
    ``evaluation.metrics.evaluate_backtest``. Columns ``REPORT_COLUMNS``: ``start`` is the first
    decision bar, ``bars`` the returns measured, ``rule_trades`` closed round trips;
    ``attrs["environment"]`` holds the environment parameters used.
    """
    if is_panel(market.prices):
        raise MarketSpecError(
            f"rule_report replays single-asset markets; {market.name} has {market.close.shape[1]} "
            "tickers (replay a panel's rule with portfolio.replay_weights)."
        )
    unknown = [w for w in windows if w not in fe.SPLIT_NAMES]
    if unknown or not windows:
        raise MarketSpecError(
            f"rule_report: windows must be among {list(fe.SPLIT_NAMES)}, got {list(windows)}."
        )
    config = EnvConfig.from_params({**environment, **market.environment}).replace(episode_length=None)
    positions = _windows(market.prices.index, feature_engineering, splits)
    rows = [_replay_window(market, positions[w], config, w) for w in windows]
    out = pd.DataFrame(rows, columns=REPORT_COLUMNS)
    out.attrs["environment"] = config.to_params()
    return out
