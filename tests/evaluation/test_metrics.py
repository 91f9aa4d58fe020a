"""Metrics: hand-computed examples, identities, and agreement with independent formulas."""

from __future__ import annotations

import math

import empyrical
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from reinforce_strategy_creator.evaluation.metrics import (
    EvaluationInputError,
    bar_returns,
    evaluate_backtest,
    infer_periods_per_year,
    json_safe,
    performance_metrics,
    round_trips,
    trade_metrics,
)
from tests.support.ledger import simulate_ledger
from tests.support.project import SP500_CSV


# ----------------------------------------------------------------- hand-computed example
def test_hand_computed_performance():
    # equity 100 -> 100 -> 110 -> 99 -> 108.9 : returns 0, +10 %, -10 %, +10 %
    eq = pd.Series([100.0, 110.0, 99.0, 108.9], index=pd.date_range("2020-01-01", periods=4, freq="QS"))
    r = bar_returns(eq, initial_capital=100.0)
    np.testing.assert_allclose(r.to_numpy(), [0.0, 0.1, -0.1, 0.1], atol=1e-12)
    m = performance_metrics(r, periods_per_year=4)  # 4 bars = exactly one year
    assert m["total_return"] == pytest.approx(0.089)
    assert m["annual_return"] == pytest.approx(0.089)  # one year: CAGR = total return
    # mean 0.025, sample std sqrt(0.0275/3) = 0.0957427; per-bar SR 0.261116; x sqrt(4)
    assert m["sharpe_per_bar"] == pytest.approx(0.025 / math.sqrt(0.0275 / 3))
    assert m["sharpe"] == pytest.approx(2 * 0.025 / math.sqrt(0.0275 / 3))
    assert m["annual_volatility"] == pytest.approx(2 * math.sqrt(0.0275 / 3))
    # downside deviation sqrt(mean(min(r,0)^2)) = sqrt(0.01/4) = 0.05, annualised 0.1;
    # Sortino = mean * 4 / 0.1 = 1.0
    assert m["sortino"] == pytest.approx(1.0)
    assert m["max_drawdown"] == pytest.approx(99 / 110 - 1)
    assert m["calmar"] == pytest.approx(0.089 / 0.1)
    # VaR: 5th percentile with linear interpolation of sorted [-.1, 0, .1, .1] at 0.15 -> -0.085
    assert m["var_95"] == pytest.approx(-0.085)
    assert m["cvar_95"] == pytest.approx(-0.1)  # the single worst bar
    assert m["n_bars"] == 4 and math.isnan(m["alpha"])


def test_alpha_beta_against_benchmark_hand():
    idx = pd.bdate_range("2021-01-04", periods=6)
    bench = pd.Series([0.01, -0.02, 0.015, 0.0, -0.005, 0.02], index=idx)
    agent = 2.0 * bench  # twice leveraged: beta 2, alpha 0
    m = performance_metrics(agent, bench)
    assert m["beta"] == pytest.approx(2.0)
    assert m["alpha"] == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(EvaluationInputError, match="same bars"):
        performance_metrics(agent, bench.iloc[1:])


# ----------------------------------------------------------------- random series
returns_arrays = arrays(
    np.float64, st.integers(5, 300), elements=st.floats(-0.2, 0.2, allow_nan=False, allow_subnormal=False)
)


@settings(max_examples=60, deadline=None)
@given(returns_arrays)
def test_against_empyrical_and_independent_formulas(r):
    idx = pd.bdate_range("2010-01-01", periods=r.size)
    m = performance_metrics(pd.Series(r, index=idx))
    assert m["periods_per_year"] == 252
    assert m["total_return"] == pytest.approx(np.prod(1 + r) - 1, rel=1e-9, abs=1e-12)
    assert m["annual_return"] == pytest.approx(empyrical.annual_return(r, annualization=252), nan_ok=True)
    assert m["sortino"] == pytest.approx(empyrical.sortino_ratio(r, annualization=252), nan_ok=True)
    assert m["stability"] == pytest.approx(empyrical.stability_of_timeseries(r), nan_ok=True)
    # independent formulas, not empyrical
    sd = np.std(r, ddof=1)
    if sd > 1e-9:
        assert m["sharpe"] == pytest.approx(np.mean(r) / sd * math.sqrt(252), rel=1e-7, abs=1e-9)
    wealth = np.concatenate([[1.0], np.cumprod(1 + r)])
    mdd = min(0.0, float(np.min(wealth / np.maximum.accumulate(wealth) - 1)))
    assert m["max_drawdown"] == pytest.approx(mdd, abs=1e-12)
    assert m["cvar_95"] <= m["var_95"] + 1e-12  # the tail mean is below the tail cutoff
    assert json_safe(m) is not None


def test_rejects_bad_returns():
    idx = pd.bdate_range("2020-01-01", periods=3)
    with pytest.raises(EvaluationInputError, match="row 1"):
        performance_metrics(pd.Series([0.01, np.nan, 0.02], index=idx))
    with pytest.raises(EvaluationInputError, match="at least 2"):
        performance_metrics(pd.Series([0.01], index=idx[:1]))
    with pytest.raises(EvaluationInputError, match="row 2"):
        bar_returns(pd.Series([100.0, 90.0, 0.0]))


# ----------------------------------------------------------------- periods per year
@pytest.mark.parametrize(
    ("index", "expected"),
    [
        (pd.bdate_range("2020-01-01", periods=60), 252),
        (pd.date_range("2020-01-01", periods=60, freq="D"), 365),  # 7-day market
        (pd.date_range("2020-01-03", periods=30, freq="W-FRI"), 52),
        (pd.date_range("2020-01-31", periods=24, freq="ME"), 12),
        (pd.date_range("2020-03-31", periods=8, freq="QE"), 4),
        (pd.date_range("2000-12-31", periods=5, freq="YE"), 1),
    ],
)
def test_infer_periods_per_year(index, expected):
    assert infer_periods_per_year(index) == expected


def test_infer_intraday_hourly_session():
    days = pd.bdate_range("2021-03-01", periods=10)
    idx = pd.DatetimeIndex(
        [d + pd.Timedelta(hours=9, minutes=30) + pd.Timedelta(hours=h) for d in days for h in range(7)]
    )
    assert infer_periods_per_year(idx) == 7 * 252  # 9:30 ... 15:30 = 7 bars per session


def test_infer_on_real_sp500_dates():
    dates = pd.to_datetime(pd.read_csv(SP500_CSV, usecols=["Date"])["Date"], format="%m/%d/%Y")
    assert infer_periods_per_year(pd.DatetimeIndex(dates).sort_values()) == 252


def test_infer_rejects_unsorted():
    idx = pd.DatetimeIndex(["2020-01-02", "2020-01-01", "2020-01-03"])
    with pytest.raises(EvaluationInputError, match="strictly increasing"):
        infer_periods_per_year(idx)


# ----------------------------------------------------------------- round trips, by hand
def _hand_ledger():
    """Long 10 @ 100, add 5 @ 104, exit @ 110; short 4 @ 108, flip to long 6 @ 100, open.
    Commission 1.0 per fill row, deducted from cash; borrow 0.5 on the short's holding row.
    Last close 103."""
    rows = [  # shares, fill, fee paid in cash on the row, close
        (0, np.nan, 0.0, 99.0),  # pre-trade start row
        (10, 100.0, 1.0, 101.0),  # entry long
        (15, 104.0, 1.0, 105.0),  # resize
        (0, 110.0, 1.0, 109.0),  # exit: +10*... see below
        (0, np.nan, 0.0, 108.0),  # flat
        (-4, 108.0, 1.0, 107.0),  # entry short
        (-4, 107.0, 0.5, 106.0),  # borrow
        (6, 100.0, 1.0, 101.0),  # flip: close 4, open 6 (fee split 4/10, 6/10)
        (6, np.nan, 0.0, 103.0),  # hold to the end, marked at 103
    ]
    cash, prev, out = 1000.0, 0, []
    for i, (sh, fill, fee, close) in enumerate(rows):
        cash -= ((sh - prev) * fill if sh != prev else 0.0) + fee
        out.append(
            dict(
                date=pd.Timestamp("2022-01-03") + pd.Timedelta(days=i),
                position=np.sign(sh) * 0.5,
                shares=float(sh),
                cash=cash,
                equity=cash + sh * close,
                fill_price=fill,
                cost=fee,
                reward=0.0,
            )
        )
        prev = sh
    return pd.DataFrame(out)


def test_round_trips_by_hand():
    trips = round_trips(_hand_ledger())
    assert [(t.entry_row, t.exit_row, t.direction, t.closed) for t in trips] == [
        (1, 3, 1, True),
        (5, 7, -1, True),
        (7, None, 1, False),
    ]
    # long: -10*100 - 5*104 + 15*110 - 3 fees = 127
    assert trips[0].pnl == pytest.approx(127.0)
    # short: +4*108 - 4*100 - 1 (entry fee) - 0.5 borrow - 0.4 (4/10 of the flip fee) = 30.1
    assert trips[1].pnl == pytest.approx(30.1)
    # open long: -6*100 - 0.6 fee + 6*103 = 17.4
    assert trips[2].pnl == pytest.approx(17.4)
    assert [t.bars_held for t in trips] == [2, 2, 2]
    tm = trade_metrics(_hand_ledger())
    assert tm["n_trades"] == 2 and tm["n_open_trades"] == 1
    assert tm["win_rate"] == 1.0 and tm["profit_factor"] == math.inf
    assert tm["avg_holding_bars"] == 2.0
    assert tm["open_trade_pnl"] == pytest.approx(17.4)
    assert tm["exposure"] == pytest.approx(6 / 8)  # 6 of the 8 bars after the start row
    assert tm["total_costs"] == pytest.approx(5.5)
    # traded notional: 1000 + 520 + 1650 + 432 + 1000 = 4602 over mean equity
    eq = _hand_ledger()["equity"].iloc[1:].mean()
    assert tm["turnover"] == pytest.approx(4602 / eq)


def test_profit_factor_with_losses():
    df = _hand_ledger()
    # make the short lose: cover at 120 instead of 100 (loss), long keeps +127
    df = df.iloc[:8].copy()
    df.loc[7, "fill_price"] = 120.0
    df.loc[7, "shares"] = 0.0
    cash = 1000.0 - 10 * 100 - 1 - 5 * 104 - 1 + 15 * 110 - 1 + 4 * 108 - 1 - 0.5 - 4 * 120 - 1
    df.loc[7, "cash"] = cash
    df.loc[7, "equity"] = cash
    tm = trade_metrics(df)
    short_pnl = 4 * 108 - 4 * 120 - 1 - 0.5 - 1
    assert tm["n_trades"] == 2 and tm["win_rate"] == 0.5
    assert tm["profit_factor"] == pytest.approx(127.0 / -short_pnl)


# ----------------------------------------------------------------- identities on a ledger
def _prices(rng, n):
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = close * np.exp(rng.normal(0, 0.003, n))
    return open_, close


def test_buy_and_hold_identity():
    rng = np.random.default_rng(7)
    open_, close = _prices(rng, 250)
    capital = 10_000.0
    df = simulate_ledger(open_, close, np.ones(250), capital=capital)
    shares = df["shares"].iloc[1]
    cost0 = df["cost"].iloc[1]
    assert (df["shares"].iloc[1:] == shares).all() and df["cost"].iloc[2:].sum() == 0
    # first fill at open[1] (unslipped price; slippage is part of the cost), last close, minus costs
    expected = (shares * (close[-1] - open_[1]) - cost0) / capital
    m = evaluate_backtest(df)
    assert m["total_return"] == pytest.approx(expected, rel=1e-10)
    assert m["final_equity"] - capital == pytest.approx(expected * capital, abs=0.005)
    assert m["total_costs"] == pytest.approx(cost0)
    assert m["n_trades"] == 0 and m["n_open_trades"] == 1
    assert m["open_trade_pnl"] == pytest.approx(expected * capital, abs=0.005)
    assert m["exposure"] == 1.0


def test_flat_is_zero():
    rng = np.random.default_rng(1)
    open_, close = _prices(rng, 50)
    m = evaluate_backtest(simulate_ledger(open_, close, np.zeros(50)))
    assert m["total_return"] == 0 and m["total_costs"] == 0 and m["n_trades"] == 0
    assert m["exposure"] == 0 and math.isnan(m["sharpe"])


@settings(max_examples=40, deadline=None)
@given(
    st.integers(0, 10_000), st.lists(st.sampled_from([-1.0, -0.5, 0.0, 0.5, 1.0]), min_size=3, max_size=80)
)
def test_trip_pnl_reconciles_to_the_cent(seed, targets):
    """Sum of all round-trip P&Ls == final equity - initial capital, with flips and resizes."""
    rng = np.random.default_rng(seed)
    n = len(targets) + 1
    open_, close = _prices(rng, n)
    capital = 10_000.0
    df = simulate_ledger(open_, close, np.array(targets + [0.0]), capital=capital)
    trips = round_trips(df)
    assert sum(t.pnl for t in trips) == pytest.approx(df["equity"].iloc[-1] - capital, abs=0.005)
    assert sum(not t.closed for t in trips) <= 1
    tm = trade_metrics(df)
    assert tm["n_trades"] + tm["n_open_trades"] == len(trips)
    assert 0 <= tm["exposure"] <= 1
    # entries are exactly the bars where the sign becomes non-zero or flips
    sign = np.sign(df["shares"].to_numpy())
    prev = np.concatenate([[0], sign[:-1]])
    assert len(trips) == int(np.sum((sign != 0) & (sign != prev)))


def test_frame_errors_name_column_and_row():
    df = _hand_ledger()
    with pytest.raises(EvaluationInputError, match="missing column"):
        trade_metrics(df.drop(columns="cash"))
    bad = df.copy()
    bad.loc[4, "equity"] = np.nan
    with pytest.raises(EvaluationInputError, match="'equity'.*row 4"):
        evaluate_backtest(bad)
    late = df.iloc[1:]
    with pytest.raises(EvaluationInputError, match="pre-trade row"):
        round_trips(late)
    two = pd.concat([df.assign(lane=0), df.assign(lane=1)])
    with pytest.raises(EvaluationInputError, match="lanes"):
        evaluate_backtest(two)
    traded_nan = df.copy()
    traded_nan.loc[1, "fill_price"] = np.nan  # a trade without a fill price
    with pytest.raises(EvaluationInputError, match="'fill_price'.*row 1"):
        trade_metrics(traded_nan)
