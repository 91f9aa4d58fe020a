"""What is special to one instrument's front end (``PaperAccount.instrument``): fill timing and
hand-computed costs, one decision per new bar on the history up to it, trading only when the
target changes, bad prices and decisions, its cost parameters. What every account does, at
N = 1 and N > 1 (the journal, damaged folders, tampered logs, accounting to the cent):
test_paper_account.py, test_paper_backtest_parity.py, test_crash_safety.py, test_state_schema.py."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from reinforce_strategy_creator.deployment import (
    AccountStateError,
    AccountStore,
    CostModel,
    PaperAccount,
    PolicyOutputError,
    PriceDataError,
    RiskLimits,
)
from reinforce_strategy_creator.deployment.state import INSTRUMENT
from reinforce_strategy_creator.params.base import ParameterError
from tests.support.paper import account_files, alternating_policy, make_prices


def _broker(folder, limits=None, costs=None, capital=100_000.0):
    return PaperAccount.instrument(
        AccountStore(folder),
        initial_capital=capital,
        costs=costs or CostModel(commission_bps=10, slippage_bps=5),
        limits=limits or RiskLimits(),
    )


@pytest.mark.parametrize("fill_price,ref", [("next_open", 101.0), ("next_close", 102.0)])
def test_decision_fills_at_the_next_bar_with_costs_hand_computed(tmp_path, fill_price, ref):
    idx = pd.date_range("2021-01-04", periods=3, freq="B", name="date")
    prices = pd.DataFrame({"Open": [100.0, 101.0, 99.0], "Close": [100.5, 102.0, 98.0]}, index=idx)
    broker = _broker(
        tmp_path / "a",
        capital=10_000,
        costs=CostModel(commission_bps=10, slippage_bps=5, fill_price=fill_price),
    )
    s = broker.run(prices.iloc[:1], lambda h, st: 0.5).state
    assert s.shares == (0,) and s.pending_weights == (0.5,)  # decided at close of bar 0, nothing filled
    s = broker.run(prices.iloc[:2], lambda h, st: 0.5).state
    # fill at bar 1's Open=101 or Close=102 with 5 bps slippage against a buyer, 10 bps commission
    fill = ref * 1.0005
    # post-cost sizing (env closed form): shares * ref = 0.5 * equity after costs
    shares = math.trunc(0.5 * 10_000 / (ref * (0.5 + 0.5 * 1.0005 * 1.001)))  # 49 at 101, 48 at 102
    notional = round(shares * fill * 100)
    commission = round(shares * fill * 10 / 1e4 * 100)
    assert s.shares == (shares,) and shares == {101.0: 49, 102.0: 48}[ref]
    assert s.cash_cents == 1_000_000 - notional - commission
    assert s.equity_cents == s.cash_cents + round(shares * 102.0 * 100)
    trade = AccountStore(tmp_path / "a").read_log("trades")[0]
    assert trade["bar"] == idx[1].isoformat() and trade["decided_at"] == idx[0].isoformat()
    assert trade["fill_price"] == pytest.approx(fill) and trade["fill_rule"] == fill_price
    order = AccountStore(tmp_path / "a").read_log("orders")[0]
    assert order["fills_at"] == {"next_open": "next bar open", "next_close": "next bar close"}[fill_price]


def test_a_new_bar_is_decided_once_on_the_history_up_to_it(tmp_path):
    prices = make_prices(30, seed=1)
    folder = tmp_path / "acct"
    broker = _broker(folder)
    broker.run(prices.iloc[:20], alternating_policy)
    calls = []
    summary = broker.run(prices.iloc[:21], lambda h, s: calls.append(h.index[-1]) or 0.5)
    assert summary.bars_processed == 1 and calls == [prices.index[20]]
    orders = AccountStore(folder).read_log("orders")
    assert len(orders) == 21 and orders[-1]["bar"] == prices.index[20].isoformat()


def test_trades_only_when_target_changes(tmp_path):
    prices = make_prices(30, seed=6)
    s = _broker(tmp_path / "a").run(prices, lambda h, st: 0.5).state
    trades = AccountStore(tmp_path / "a").read_log("trades", s)
    assert len(trades) == 1 and trades[0]["bar"] == prices.index[1].isoformat()
    assert s.held_weights == (0.5,)


def test_policy_sees_only_data_up_to_the_decision_bar(tmp_path):
    prices = make_prices(25, seed=2)
    seen = []
    _broker(tmp_path / "a").run(prices, lambda h, s: seen.append(h.index.max()) or 0.0)
    assert seen == list(prices.index)


def test_a_decision_that_is_not_a_number_and_bad_prices_commit_nothing(tmp_path):
    prices = make_prices(5, seed=4)
    folder = tmp_path / "a"
    broker = _broker(folder)
    broker.run(prices.iloc[:3], alternating_policy)
    before = account_files(folder)
    with pytest.raises(PolicyOutputError, match="not a number"):
        broker.run(prices, lambda h, s: "buy")
    assert account_files(folder) == before
    bad = prices.copy()
    bad.iloc[3, bad.columns.get_loc("Open")] = -1.0
    with pytest.raises(PriceDataError, match="Open=-1.0"):
        broker.run(bad, alternating_policy)
    with pytest.raises(PriceDataError, match="sorted"):
        broker.run(prices.iloc[::-1], alternating_policy)
    with pytest.raises(PriceDataError, match="Close"):
        broker.run(prices[["Open"]], alternating_policy)
    assert account_files(folder) == before


def test_bad_parameters_are_named():
    with pytest.raises(ParameterError, match=r"deployment\.risk\.max_drawdown: Input should be less than 1"):
        RiskLimits.parse({"max_drawdown": 1.5}, "deployment.risk")
    with pytest.raises(
        ParameterError, match=r"environment\.slippage_bps: Input should be greater than or equal to 0"
    ):
        CostModel.from_environment({"slippage_bps": -1})
    with pytest.raises(ParameterError, match=r"deployment\.risk\.max_leverage: unknown parameter"):
        RiskLimits.parse({"max_leverage": 2}, "deployment.risk")


def test_the_account_is_a_universe_of_its_one_ticker_and_another_is_refused(tmp_path):
    prices = make_prices(5)
    store = AccountStore(tmp_path / "a")
    PaperAccount.instrument(store, initial_capital=1e4, costs=CostModel(), ticker="SPY").run(
        prices.iloc[:3], lambda h, st: 0.5
    )
    state = store.load()
    assert state.tickers == ("SPY",) and state.holdings() == {"SPY": state.shares[0]} and state.shares[0] > 0
    assert {t["ticker"] for t in store.read_log("trades")} == {"SPY"}
    with pytest.raises(AccountStateError, match=r"tickers \['SPY'\] \(asked for \['QQQ'\]\)"):
        PaperAccount.instrument(store, initial_capital=1e4, costs=CostModel(), ticker="QQQ").run(
            prices, lambda h, st: 0.5
        )
    # an account made without a name (the placeholder) trades any one-ticker feed under it
    _broker(tmp_path / "b").run(prices.iloc[:3], alternating_policy)
    named = PaperAccount.instrument(
        AccountStore(tmp_path / "b"), initial_capital=1e4, costs=CostModel(), ticker="SPY"
    )
    assert named.run(prices, alternating_policy).state.tickers == (INSTRUMENT,)
