"""Ruin is an outcome, not a crash: metrics of equity paths that reach zero or below.

Hand-made paths (ruin on the first bar, mid-way, at exactly 0, below 0) checked against values
worked out here, plus invariants with hypothesis: any path with a non-positive value is ruined
with total return and max drawdown -100 %, nothing after the bar of ruin matters, and a positive
path gives exactly what the plain (non-ruin) functions give.
"""

from __future__ import annotations

import math

import empyrical
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from reinforce_strategy_creator.evaluation.gate import GateParams, evaluate_gate
from reinforce_strategy_creator.evaluation.metrics import (
    EvaluationInputError,
    bar_returns,
    equity_returns,
    evaluate_backtest,
    is_ruined,
    performance_metrics,
    round_trips,
    ruin_index,
    trade_metrics,
)
from reinforce_strategy_creator.evaluation.stats import (
    add_psr_dsr,
    deflated_sharpe_ratio,
    percentile_of,
    rank_agents,
    record_dsr,
    record_psr,
    ruin_aware_scores,
    seed_summary,
)
from reinforce_strategy_creator.evaluation.verdict import deflated_psr
from tests.support.ledger import simulate_ledger

pytestmark = pytest.mark.filterwarnings("ignore:invalid value encountered in log:RuntimeWarning")  # simulator

IDX = pd.bdate_range("2021-01-04", periods=8)
RUIN_KEYS = ("total_return", "annual_return", "max_drawdown", "calmar")


def curve(values) -> pd.Series:
    return pd.Series(np.asarray(values, dtype=float), index=IDX[: len(values)])


# --------------------------------------------------------------------------- the rule
@pytest.mark.parametrize(
    ("values", "k"),
    [
        ([100.0, 90.0, 80.0], None),
        ([100.0, 0.0, 0.0], 1),  # exactly zero on the first bar
        ([100.0, 120.0, 40.0, -5.0, -5.0], 3),  # below zero mid-way, frozen afterwards
        ([100.0, 1e-9, 50.0], None),  # tiny but positive is not ruin
        ([100.0, np.nan, 0.0], 2),  # NaN is not ruin (bad input, refused elsewhere)
        ([0.0, 100.0], 0),
    ],
)
def test_ruin_index(values, k):
    assert ruin_index(values) == k and ruin_index(curve(values)) == k
    assert is_ruined(values) is (k is not None)


# --------------------------------------------------------------------------- returns
def test_equity_returns_ruin_mid_way_below_zero():
    r, ruined = equity_returns(curve([100.0, 110.0, 55.0, -20.0, -20.0, -20.0]))
    assert ruined
    assert list(r.index) == list(IDX[1:4])  # the frozen bars after ruin are dropped
    np.testing.assert_allclose(r.to_numpy(), [0.1, -0.5, -1.0])  # -120 % is recorded as -100 %


def test_equity_returns_ruin_exactly_zero_on_first_bar():
    r, ruined = equity_returns(curve([100.0, 0.0, 0.0]))
    assert ruined and r.tolist() == [-1.0] and r.index[0] == IDX[1]
    r2, ruined2 = equity_returns(curve([-3.0, -3.0]), initial_capital=100.0)
    assert ruined2 and r2.tolist() == [-1.0] and r2.index[0] == IDX[0]


def test_equity_returns_without_ruin_is_bar_returns():
    e = curve([100.0, 101.0, 99.0, 105.0])
    r, ruined = equity_returns(e)
    assert not ruined
    pd.testing.assert_series_equal(r, bar_returns(e))
    pd.testing.assert_series_equal(equity_returns(e, 90.0)[0], bar_returns(e, 90.0))


def test_equity_returns_refuses_a_curve_that_starts_ruined():
    with pytest.raises(EvaluationInputError, match="first value"):
        equity_returns(curve([0.0, 100.0]))


def test_bar_returns_still_refuses_non_positive_equity():
    with pytest.raises(EvaluationInputError, match="row 2"):
        bar_returns(curve([100.0, 90.0, 0.0]))


# --------------------------------------------------------------------------- performance
def test_performance_of_a_ruined_path_by_hand():
    r = pd.Series([0.1, -0.5, -1.2, 0.3, 0.0], index=IDX[:5])  # the third return wipes it out
    m = performance_metrics(r, periods_per_year=252)
    kept = np.array([0.1, -0.5, -1.0])
    assert m["ruined"] is True and m["n_bars"] == 3
    assert all(m[k] == -1.0 for k in RUIN_KEYS)
    assert math.isnan(m["stability"])  # log wealth is -inf at ruin
    sd = kept.std(ddof=1)
    assert m["annual_volatility"] == pytest.approx(sd * math.sqrt(252))
    assert m["sharpe"] == pytest.approx(kept.mean() / sd * math.sqrt(252))
    assert m["sharpe_per_bar"] == pytest.approx(kept.mean() / sd)
    assert m["sortino"] == pytest.approx(empyrical.sortino_ratio(kept, annualization=252))
    assert m["var_95"] == pytest.approx(np.percentile(kept, 5))
    assert m["cvar_95"] == -1.0  # the worst bar
    assert m["skew"] == pytest.approx(sps.skew(kept))
    assert m["kurtosis"] == pytest.approx(sps.kurtosis(kept, fisher=False))


def test_performance_of_ruin_on_the_first_bar():
    m = performance_metrics(pd.Series([-1.0, 0.2], index=IDX[:2]), periods_per_year=252)
    assert m["ruined"] and m["n_bars"] == 1 and all(m[k] == -1.0 for k in RUIN_KEYS)
    assert m["var_95"] == m["cvar_95"] == -1.0
    for k in ("annual_volatility", "sharpe", "sharpe_per_bar", "sortino", "skew", "kurtosis", "stability"):
        assert math.isnan(m[k]), k  # one return has no dispersion
    # a single return is accepted only when it is the ruin
    m1 = performance_metrics(pd.Series([-1.0], index=IDX[:1]), periods_per_year=252)
    assert m1["ruined"] and m1["total_return"] == -1.0
    with pytest.raises(EvaluationInputError, match="at least 2"):
        performance_metrics(pd.Series([-0.5], index=IDX[:1]), periods_per_year=252)


def test_benchmark_is_cut_at_the_same_bar():
    r = pd.Series([0.02, -0.3, 0.05, -1.0, 0.1], index=IDX[:5])
    b = pd.Series([0.01, -0.02, 0.03, 0.01, 0.0], index=IDX[:5])
    m = performance_metrics(r, b, periods_per_year=252)
    alpha, beta = empyrical.alpha_beta(r.to_numpy()[:4], b.to_numpy()[:4], annualization=252)
    assert m["alpha"] == pytest.approx(alpha) and m["beta"] == pytest.approx(beta)
    with pytest.raises(EvaluationInputError, match="same bars"):
        performance_metrics(r, b.iloc[:4], periods_per_year=252)


# --------------------------------------------------------------------------- ledgers
def _short_squeeze():
    """A -1 short on a market that doubles: the account is wiped out on bar 9 and (as the simple
    simulator keeps trading) goes on below zero; env.replay would freeze it instead."""
    close = 100.0 * 1.09 ** np.arange(14)
    open_ = np.r_[close[0], close[:-1]]
    return simulate_ledger(
        open_, close, -np.ones(14), capital=10_000.0, dates=pd.bdate_range("2021-01-04", periods=14)
    )


def test_backtest_ledger_of_a_ruined_short():
    df = _short_squeeze()
    k = int(np.flatnonzero(df["equity"].to_numpy() <= 0)[0])
    assert 2 < k < len(df) - 1  # ruined mid-way, with bars after it
    m = evaluate_backtest(df, periods_per_year=252)
    assert m["ruined"] and m["n_bars"] == k and all(m[key] == -1.0 for key in RUIN_KEYS)
    assert m["final_equity"] == df["equity"].iloc[k] <= 0  # the deficit is reported as it is
    assert m["initial_capital"] == 10_000.0
    # trade metrics up to the bar of ruin: one open short, its P&L reconciles to the cent
    assert m["n_trades"] == 0 and m["n_open_trades"] == 1
    assert m["open_trade_pnl"] == pytest.approx(m["final_equity"] - 10_000.0, abs=0.01)
    assert m["exposure"] == 1.0
    assert m["total_costs"] == pytest.approx(df["cost"].iloc[: k + 1].sum())
    steps = df.iloc[1 : k + 1]
    alive = steps[steps["equity"] > 0]
    gross = (alive["equity"] - alive["cash"]).abs() / alive["equity"]
    assert m["avg_gross_exposure"] == pytest.approx(gross.mean())
    traded = df["shares"].diff().abs().iloc[1 : k + 1] * df["fill_price"].iloc[1 : k + 1].fillna(0.0)
    assert m["turnover"] == pytest.approx(traded.sum() / alive["equity"].mean())
    assert m["annual_turnover"] == pytest.approx(m["turnover"] * 252 / k)
    # the bars after ruin change nothing (env.replay freezes them; here they keep trading)
    m_cut = evaluate_backtest(df.iloc[: k + 1], periods_per_year=252)
    assert m_cut.keys() == m.keys()
    for key in m:
        assert m[key] == pytest.approx(m_cut[key], nan_ok=True), key
    trips = round_trips(df)
    assert len(trips) == 1 and not trips[0].closed and trips[0].bars_held == k


def test_frozen_rows_as_env_replay_writes_them():
    """env.replay freezes a ruined lane: later rows repeat the bar of ruin with no trade and no cost."""
    df = _short_squeeze()
    k = int(np.flatnonzero(df["equity"].to_numpy() <= 0)[0])
    frozen = df.iloc[[k] * 4].assign(fill_price=np.nan, cost=0.0, reward=0.0)
    ledger = pd.concat([df.iloc[: k + 1], frozen], ignore_index=True)
    assert not pd.DatetimeIndex(ledger["date"]).is_unique
    m = evaluate_backtest(ledger)  # periods per year inferred from the dates up to ruin
    assert m["ruined"] and m["periods_per_year"] == 252.0 and m["n_bars"] == k
    assert trade_metrics(ledger) == pytest.approx(trade_metrics(df.iloc[: k + 1]), nan_ok=True)


def test_ruin_on_the_first_bar_of_a_ledger():
    """Short 10 shares at 100 with 1,000 of capital; the close of that bar is 250: equity -501."""
    df = pd.DataFrame(
        {
            "date": pd.bdate_range("2021-01-04", periods=3),
            "position": [0.0, -1.0, -1.0],
            "shares": [0.0, -10.0, -10.0],
            "cash": [1000.0, 1999.0, 1999.0],
            "equity": [1000.0, -501.0, -501.0],  # the last row is frozen, as env.replay writes it
            "fill_price": [np.nan, 100.0, np.nan],
            "cost": [0.0, 1.0, 0.0],
        }
    )
    m = evaluate_backtest(df, periods_per_year=252)
    assert m["ruined"] and m["n_bars"] == 1 and all(m[key] == -1.0 for key in RUIN_KEYS)
    assert m["final_equity"] == -501.0 and m["total_costs"] == 1.0
    assert math.isnan(m["sharpe"]) and math.isnan(m["sharpe_per_bar"])  # PSR/DSR are NaN from these
    assert math.isnan(m["avg_gross_exposure"])  # no bar with positive equity to measure it on
    assert m["turnover"] == pytest.approx(1000.0 / 1000.0)  # traded notional / the initial capital
    assert m["open_trade_pnl"] == pytest.approx(-1501.0)  # reconciles: final equity - capital


def test_a_ledger_that_starts_ruined_is_refused():
    df = _short_squeeze()
    df.loc[0, "equity"] = 0.0
    with pytest.raises(EvaluationInputError, match="start row"):
        evaluate_backtest(df)


# --------------------------------------------------------------------------- invariants
positive = st.floats(min_value=1.0, max_value=1e6, allow_nan=False)
non_positive = st.floats(min_value=-1e6, max_value=0.0, allow_nan=False)
any_value = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


@settings(max_examples=150, deadline=None)
@given(
    head=st.lists(positive, min_size=1, max_size=30),
    ruin=non_positive,
    tail=st.lists(any_value, min_size=0, max_size=10),
    tail2=st.lists(any_value, min_size=0, max_size=10),
)
def test_any_path_with_a_non_positive_value_is_ruined(head, ruin, tail, tail2):
    values = [*head, ruin, *tail]
    idx = pd.bdate_range("2020-01-01", periods=len(values))
    e = pd.Series(values, index=idx)
    r, ruined = equity_returns(e)
    assert ruined and len(r) == len(head) and r.iloc[-1] == -1.0
    m = performance_metrics(r, periods_per_year=252)
    assert m["ruined"] is True and m["total_return"] == -1.0 and m["max_drawdown"] == -1.0
    assert m["annual_return"] == -1.0 and m["n_bars"] == len(head)
    # nothing after the bar of ruin matters
    values2 = [*head, ruin, *tail2]
    other = pd.Series(values2, index=pd.bdate_range("2020-01-01", periods=len(values2)))
    m2 = performance_metrics(equity_returns(other)[0], periods_per_year=252)
    assert m2.keys() == m.keys() and all(m2[k] == pytest.approx(m[k], nan_ok=True) for k in m)


@settings(max_examples=150, deadline=None)
@given(values=st.lists(positive, min_size=3, max_size=40))
def test_a_positive_path_gives_the_plain_results(values):
    e = pd.Series(values, index=pd.bdate_range("2020-01-01", periods=len(values)))
    r, ruined = equity_returns(e)
    assert not ruined
    pd.testing.assert_series_equal(r, bar_returns(e))
    m = performance_metrics(r, periods_per_year=252)
    x = r.to_numpy()
    assert m["ruined"] is False
    assert m["total_return"] == pytest.approx(values[-1] / values[0] - 1.0, rel=1e-9, abs=1e-9)
    assert m["max_drawdown"] == pytest.approx(empyrical.max_drawdown(x)) and m["max_drawdown"] > -1.0
    assert m["stability"] == pytest.approx(empyrical.stability_of_timeseries(x), nan_ok=True)
    assert m["sharpe"] == pytest.approx(empyrical.sharpe_ratio(x, annualization=252), nan_ok=True)


@settings(max_examples=100, deadline=None)
@given(returns=st.lists(st.floats(min_value=-3.0, max_value=3.0, allow_nan=False), min_size=2, max_size=30))
def test_returns_path_ruined_iff_wealth_reaches_zero(returns):
    r = pd.Series(returns, index=pd.bdate_range("2020-01-01", periods=len(returns)))
    wealth = np.cumprod(1.0 + np.asarray(returns))
    m = performance_metrics(r, periods_per_year=252)
    assert m["ruined"] == bool((wealth <= 0).any())
    if m["ruined"]:
        assert m["total_return"] == -1.0 and m["max_drawdown"] == -1.0
        assert m["n_bars"] == int(np.flatnonzero(wealth <= 0)[0]) + 1
    else:
        assert m["total_return"] > -1.0 and m["max_drawdown"] > -1.0 - 1e-12


# --------------------------------------------------------------------------- statistics and gate
def _records():
    return pd.DataFrame(
        {
            "agent": ["a", "a", "b", "b", "c"],
            "seed": [0, 1, 0, 1, 0],
            "ruined": [False, True, False, False, False],
            "sharpe": [3.0, 2.5, 0.5, 0.7, 0.1],
            "sharpe_per_bar": [0.19, 0.16, 0.03, 0.044, 0.006],
            "n_bars": [250, 120, 250, 250, 250],
            "skew": [0.0, -2.0, 0.1, 0.0, 0.0],
            "kurtosis": [3.0, 9.0, 3.2, 3.0, 3.0],
            "total_return": [0.5, -1.0, 0.1, 0.12, 0.01],
        }
    )


def test_psr_and_dsr_of_a_ruined_run_are_nan_and_it_still_counts_as_a_trial():
    rec = add_psr_dsr(_records(), 0.02)
    assert rec.loc[1, ["psr", "dsr"]].isna().all()
    trials = [0.19, np.nan, 0.03, 0.044, 0.006]  # counted (N = 5), not in the variance
    for i in (0, 2, 3, 4):
        r = rec.loc[i]
        expected = deflated_sharpe_ratio(r["sharpe_per_bar"], 250, trials, r["skew"], r["kurtosis"])
        assert r["dsr"] == pytest.approx(expected)
        assert 0 <= r["psr"] <= 1
    assert math.isnan(record_psr(0.1, 0.0, 1, 0.0, 3.0))  # one return: no PSR, no error


@pytest.mark.parametrize("ruined", [False, True])
def test_a_ruined_record_has_no_deflated_psr_or_dsr(ruined):
    """The gate's deflated PSR and the walk-forward's DSR of a record: NaN once it is ruined, like
    its plain PSR, even with a positive Sharpe up to the bar of ruin; the ruined trial (-inf) is
    counted in N but not in the variance."""
    rec = _records().iloc[1].to_dict() | {"ruined": ruined}
    dpsr = deflated_psr(rec, 0.02, 3)
    trials = ruin_aware_scores(_records()["sharpe_per_bar"], _records()["ruined"])
    dsr = record_dsr(rec["sharpe_per_bar"], rec["n_bars"], trials, rec["skew"], rec["kurtosis"], ruined)
    if ruined:
        assert math.isnan(dpsr["value"]) and math.isnan(dsr)
        return
    assert 0 < dpsr["value"] < 1 and dpsr["hurdle_sharpe_per_bar"] > 0.02
    expected = deflated_sharpe_ratio(0.16, 120, [0.19, np.nan, 0.03, 0.044, 0.006], -2.0, 9.0)
    assert dsr == pytest.approx(expected)


def test_seed_summary_counts_ruined_seeds_and_ranking_puts_them_last():
    s = seed_summary(_records()).set_index("agent")
    assert "ruined_mean" not in s.columns  # booleans are not averaged unless asked
    assert s["n_ruined"].to_dict() == {"a": 1, "b": 0, "c": 0}
    assert s.loc["a", "total_return_min"] == -1.0
    ranked = rank_agents(seed_summary(_records(), ["sharpe"]))
    # a has the best mean Sharpe (2.75) but ruined one of its two seeds
    assert list(ranked["agent"]) == ["b", "c", "a"]
    asked = seed_summary(_records(), ["ruined"]).set_index("agent")
    assert asked.loc["a", "ruined_mean"] == 0.5


def test_percentile_ranks_ruined_runs_below_all_others():
    scores = ruin_aware_scores([1.0, -2.0, 0.5, np.nan], [False, False, True, False])
    assert scores[2] == -np.inf and np.isnan(scores[3])
    random = ruin_aware_scores([-3.0, -1.0, 0.0, 2.0], [True, True, False, False])
    assert percentile_of(-np.inf, random) == 25.0  # ties with the two ruined seeds
    assert percentile_of(-5.0, random) == 50.0  # alive, however bad, beats a ruined run
    assert percentile_of(0.0, random) == 62.5  # 2 below + half of 1 equal


def test_a_ruined_run_never_passes_the_gate_even_after_great_gains():
    """Ruin after a long rise: the Sharpe up to ruin can be positive; the gate still fails."""
    r = pd.Series(np.r_[np.full(250, 0.01), -1.0], index=pd.bdate_range("2020-01-01", periods=251))
    m = performance_metrics(r, periods_per_year=252)
    assert m["ruined"] and m["sharpe"] > 0  # Sharpe alone would not see the ruin
    m["psr"] = record_psr(m["sharpe_per_bar"], 0.0, m["n_bars"], m["skew"], m["kurtosis"], m["ruined"])
    lenient = GateParams(min_sharpe=-100.0, max_drawdown=1.0, must_beat_buy_and_hold=False, min_psr=0.0)
    verdict = evaluate_gate(m, {"sharpe": 0.0}, lenient)
    assert not verdict["passed"] and not verdict["rules"]["min_psr"]["passed"]
    strict = GateParams(min_sharpe=0.5, max_drawdown=0.25, must_beat_buy_and_hold=True, min_psr=0.95)
    rules = evaluate_gate(m, {"sharpe": 0.0}, strict)["rules"]
    assert not rules["max_drawdown"]["passed"] and not rules["min_psr"]["passed"]
