"""``evaluate_backtests`` (all lanes of a run at once) equals ``evaluate_backtest`` lane by lane, bit for
bit: same keys in the same order, same types, same floats (NaN where the lane has NaN)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from reinforce_strategy_creator.evaluation.metrics import (
    EvaluationInputError,
    evaluate_backtest,
    evaluate_backtests,
)
from tests.support.ledger import simulate_ledger

BARS = 120
DATES = pd.bdate_range("2021-01-04", periods=BARS)


def _market(rng, bars=BARS, drift=0.0):
    close = 100.0 * np.exp(np.cumsum(rng.normal(drift, 0.02, bars)))
    open_ = np.r_[close[0], close[:-1]] * np.exp(rng.normal(0.0, 0.003, bars))
    return open_, close


def _lanes(seed: int) -> tuple[list[pd.DataFrame], pd.DataFrame]:
    """Random-policy lanes on one market, plus lanes that are flat, ruined (a leveraged short on a
    market that runs up, mid-way and on the first bar), trade once, and a portfolio ledger."""
    rng = np.random.default_rng(seed)
    open_, close = _market(rng)
    lane = lambda targets: simulate_ledger(open_, close, targets, dates=DATES)  # noqa: E731
    lanes = []
    for _ in range(12):
        hold = rng.choice([-1.0, 0.0, 1.0], BARS)
        keep = rng.random(BARS) < 0.85
        lanes.append(lane(pd.Series(np.where(keep, np.nan, hold)).ffill().fillna(0.0).to_numpy()))
    lanes.append(lane(np.zeros(BARS)))  # flat: every return 0, the dispersion figures NaN
    lanes.append(lane(np.r_[1.0, np.zeros(BARS - 1)]))  # one round trip, then flat
    up_open, up_close = _market(rng, drift=0.08)
    squeeze = simulate_ledger(up_open, up_close, -4.0 * np.ones(BARS), dates=DATES)
    k = int(np.flatnonzero(squeeze["equity"].to_numpy() <= 0)[0])
    frozen = squeeze.iloc[[k] * (BARS - 1 - k)].assign(fill_price=np.nan, cost=0.0)
    lanes.append(pd.concat([squeeze.iloc[: k + 1], frozen], ignore_index=True))  # ruined, frozen
    first = lane(np.zeros(BARS)).copy()
    first.loc[1:, "equity"] = -1.0  # ruined on its first bar
    lanes.append(first)
    lanes.append(lane(rng.choice([0.0, 1.0], BARS)).assign(traded_notional=rng.random(BARS) * 1e3))
    order = rng.permutation(len(lanes))
    return [lanes[i] for i in order], lane(np.ones(BARS))


def _bits(rec: dict) -> list[tuple[str, str, str]]:
    return [(k, type(v).__name__, repr(v)) for k, v in rec.items()]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("benchmark", [True, False])
@pytest.mark.parametrize("periods_per_year", [252.0, None])
def test_all_lanes_at_once_equal_each_lane_alone(seed, benchmark, periods_per_year):
    lanes, bh = _lanes(seed)
    bench = bh if benchmark else None
    together = evaluate_backtests(lanes, benchmark_frame=bench, periods_per_year=periods_per_year)
    alone = [evaluate_backtest(f, benchmark_frame=bench, periods_per_year=periods_per_year) for f in lanes]
    assert [_bits(r) for r in together] == [_bits(r) for r in alone]
    ruined = [r["ruined"] for r in alone]
    assert sum(ruined) == 2 and not all(np.isnan(r["sharpe"]) for r in alone)
    assert any(np.isnan(r["sharpe"]) and not r["ruined"] for r in alone)  # the flat lane


@pytest.mark.parametrize(
    "spoil",
    [
        lambda f: f.assign(cash=np.r_[f["cash"].to_numpy()[:-1], np.nan]),  # incomplete ledger
        lambda f: f.iloc[:2],  # too short for the benchmark's bars
        lambda f: f.assign(equity=f["equity"] * 2.0),  # another capital than the benchmark's
    ],
)
def test_a_bad_lane_stops_all_lanes_with_the_error_of_the_lane_by_lane_loop(spoil):
    lanes, bh = _lanes(3)
    lanes[5] = spoil(lanes[5])
    with pytest.raises(EvaluationInputError) as alone:
        for f in lanes:
            evaluate_backtest(f, benchmark_frame=bh)
    with pytest.raises(EvaluationInputError) as together:
        evaluate_backtests(lanes, benchmark_frame=bh)
    assert str(together.value) == str(alone.value)
