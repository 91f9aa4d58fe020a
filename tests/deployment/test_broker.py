"""What is special to one instrument's paper account (the broker) and the account state: fill
timing and hand-computed costs, idempotence, trading only when the target changes, bad prices,
the journal's torn tails, reconciliation. The rules every account shares, at N = 1 and N > 1:
test_paper_account.py, test_paper_backtest_parity.py, test_crash_safety.py."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reinforce_strategy_creator.deployment import (
    AccountStateError,
    AccountStore,
    CostModel,
    PaperAccount,
    PolicyOutputError,
    PriceDataError,
    RiskLimits,
    reconcile,
    replay_trades,
)
from reinforce_strategy_creator.deployment import state as state_mod
from reinforce_strategy_creator.deployment.state import StagedAccount, new_account
from reinforce_strategy_creator.params.base import ParameterError
from tests.support.paper import account_files, alternating_policy, make_prices


def _broker(folder, limits=None, costs=None, capital=100_000.0):
    return PaperAccount.instrument(
        AccountStore(folder),
        initial_capital=capital,
        costs=costs or CostModel(commission_bps=10, slippage_bps=5),
        limits=limits or RiskLimits(),
    )


def _torn(folder):
    """The tails set aside in ``folder``: ``{log file name: bytes}``."""
    return {p.name.split(".torn-")[0]: p.read_bytes() for p in folder.glob("*.torn-*")}


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


def test_crash_between_log_append_and_state_commit_is_redone_once(tmp_path, monkeypatch, caplog):
    prices = make_prices(40, seed=5)
    ref_folder, folder = tmp_path / "ref", tmp_path / "crash"
    _broker(ref_folder).run(prices, alternating_policy)
    broker = _broker(folder)
    broker.run(prices.iloc[:15], alternating_policy)
    real = state_mod.atomic_write_json

    def die(*a, **k):
        raise KeyboardInterrupt("simulated kill after logs were appended")

    monkeypatch.setattr(state_mod, "atomic_write_json", die)
    with pytest.raises(KeyboardInterrupt):
        broker.run(prices, alternating_policy)
    monkeypatch.setattr(state_mod, "atomic_write_json", real)
    store = AccountStore(folder)
    assert store.load().bars_processed == 15  # bar 16 not committed
    assert len(store.read_log("orders")) == 15  # its appended tail is ignored by readers
    assert (folder / "orders.jsonl").stat().st_size > store.load().log_sizes["orders"]
    committed = store.load().log_sizes
    tails = {f"{n}.jsonl": (folder / f"{n}.jsonl").read_bytes()[committed[n] :] for n in committed}
    with caplog.at_level("WARNING"):
        broker.run(prices, alternating_policy)
    # the uncommitted tail is not deleted: moved aside, byte for byte, with a warning naming it
    assert _torn(folder) == {name: tail for name, tail in tails.items() if tail} and _torn(folder)
    assert all(str(p) in caplog.text for p in folder.glob("*.torn-*"))
    # and the account is byte-identical to a run never killed, but for where the newest run started
    assert account_files(folder, split_runs=True) == account_files(ref_folder, split_runs=True)


def _staged_new_account(folder):
    staged = StagedAccount(folder, None)
    staged.initialize(new_account(1_000.0))
    staged.commit(staged.load(), {"events": [{"kind": "opened"}]})
    return staged


def test_log_lines_left_without_a_state_are_set_aside_when_the_account_starts(tmp_path, caplog):
    folder = tmp_path / "a"
    folder.mkdir()
    leftover = b'{"bar": "2020-01-01T00:00:00", "kind": "order"}\n{"bar": "2020-01'
    (folder / "orders.jsonl").write_bytes(leftover)  # a run killed before its first commit
    with caplog.at_level("WARNING"):
        AccountStore(folder).commit_batch(_staged_new_account(folder))
    assert _torn(folder) == {"orders.jsonl": leftover} and "orders.jsonl.torn-" in caplog.text
    assert AccountStore(folder).load().generation == 1


def test_damaged_folder_refused(tmp_path):
    prices = make_prices(5)
    folder = tmp_path / "a"
    _broker(folder).run(prices, alternating_policy)
    (folder / "orders.jsonl").write_bytes(b"")
    with pytest.raises(AccountStateError, match="committed history was lost"):
        AccountStore(folder).load()
    (folder / "state.json").unlink()
    (folder / "orders.jsonl").write_bytes(b'{"bar": 1}\n')
    with pytest.raises(AccountStateError, match="without a state.json"):
        AccountStore(folder).load()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(2, 40),
    targets=st.lists(st.floats(-1.5, 1.5, allow_nan=False), min_size=40, max_size=40),
    commission=st.floats(0, 50),
    slippage=st.floats(0, 50),
    borrow=st.floats(0, 5),
    capital=st.floats(1_000, 1_000_000),
    granularity=st.sampled_from(["whole", "fractional"]),
)
def test_accounting_reconciles_to_the_cent(
    tmp_path_factory, seed, n, targets, commission, slippage, borrow, capital, granularity
):
    folder = tmp_path_factory.mktemp("acct")
    prices = make_prices(n, seed=seed)
    it = iter(targets)
    broker = PaperAccount.instrument(
        AccountStore(folder),
        initial_capital=capital,
        costs=CostModel(commission, slippage, borrow),
        limits=RiskLimits(max_position_fraction=1.0),
        granularity=granularity,
    )
    s = broker.run(prices, lambda h, st: next(it)).state
    store = AccountStore(folder)
    reconcile(store)
    trades, marks = store.read_log("trades", s), store.read_log("equity", s)
    if granularity == "whole":
        assert replay_trades(s.initial_capital_cents, trades, marks) == (s.cash_cents, s.shares[0])
        for m in marks:  # cash + shares * price == equity, to the cent
            assert m["equity_cents"] == m["cash_cents"] + round(m["shares"] * m["close"] * 100)
        assert all(isinstance(t["shares"], int) for t in trades)
    else:  # float64 ledger replayed in the kernel's order: exact; cents are its rounding
        assert replay_trades(
            s.initial_capital_cents,
            trades,
            marks,
            granularity="fractional",
            initial_cash=s.exact_initial_cash,
        ) == (s.exact_cash, s.shares[0])
        for m in marks:
            assert m["equity"] == m["cash"] + m["shares"] * m["close"]
            assert (m["cash_cents"], m["equity_cents"]) == (round(m["cash"] * 100), round(m["equity"] * 100))
    for t in trades:
        assert abs(t["target"]) <= 1.0
        if t["shares"] > 0 and 0 <= t["target"]:
            assert t["cash_after_cents"] >= 0  # no leverage from long targets <= 1
        expected_comm = round(abs(t["shares"]) * t["fill_price"] * commission / 1e4 * 100)
        assert abs(t["commission_cents"] - expected_comm) <= (0 if granularity == "whole" else 1)
        side = 1 if t["shares"] > 0 else -1
        assert t["fill_price"] == pytest.approx(t["reference_price"] * (1 + side * slippage / 1e4))
    assert json.loads((folder / "state.json").read_text())["generation"] == n
