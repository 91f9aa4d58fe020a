"""A fractional paper account reproduces the backtest ledger of the same policy to the cent.

Both run the environment's execution kernel (env/execution.py); this checks the whole path
end to end on real S&P 500 bars: the policy reads the observation (feature window, held
position, unrealised return, bars held), so the accounts only stay together if observations,
fills, costs, borrow, cash and marks agree bar for bar.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from benchmarks.deployment_world import project_params
from reinforce_strategy_creator.deployment import (
    AccountStateError,
    AccountStore,
    CostModel,
    PaperBroker,
    RiskLimits,
    reconcile,
    replay_trades,
)
from reinforce_strategy_creator.deployment.state import StagedAccount
from reinforce_strategy_creator.env import EnvConfig, MarketArrays, observation_from_window, replay
from reinforce_strategy_creator.env.config import FILL_PRICES
from reinforce_strategy_creator.features import compute_features, fit_scaler, max_lookback
from reinforce_strategy_creator.market_data import normalise_prices
from tests.support.project import SP500_CSV

POSITIONS = (-1.0, -0.5, 0.0, 0.5, 1.0)


@pytest.fixture(scope="session")  # session: not rebuilt when xdist interleaves modules
def sp500_market() -> MarketArrays:
    """Real S&P 500 bars 2014-2018 with the project's default features, scaled on 2014-2015."""
    raw = pd.read_csv(SP500_CSV, dtype=str, keep_default_na=False)
    prices, _ = normalise_prices(raw, source="sp500")
    prices = prices.loc["2013-01-01":]
    spec = project_params()["feature_engineering"]["features"]
    feats = compute_features(prices, spec).iloc[max_lookback(spec) :]
    scaler = fit_scaler(feats.loc[:"2015-12-31"], "standard")
    scaled = pd.DataFrame(
        scaler.transform(feats.to_numpy()).astype(np.float32), index=feats.index, columns=feats.columns
    )
    return MarketArrays.from_frame(scaled.join(prices).loc["2016-01-01":])


def _policy(obs_dim: int):
    """A deterministic policy that reads the whole observation: argmax of fixed random scores."""
    w = np.random.default_rng(7).normal(size=(len(POSITIONS), obs_dim))
    w[:, -3:] *= 8.0  # lean on the account-state columns (position, unrealised, bars held)
    return lambda obs: int(np.argmax(w @ np.asarray(obs, dtype=np.float64)))


@pytest.mark.parametrize("fill_price", FILL_PRICES)
def test_fractional_paper_account_reproduces_the_backtest_ledger_to_the_cent(
    sp500_market, tmp_path, fill_price
):
    market = sp500_market
    cfg = EnvConfig(
        window=8, positions=POSITIONS, fill_price=fill_price, episode_length=None, device="cpu"
    )  # default costs: 2 bps commission, 3 bps slippage, borrow
    W, T = cfg.window, market.n_bars
    act = _policy(W * market.n_features + 3)

    seen = []  # the backtest's observations, one per decision bar W-1 .. T-2

    def decide_backtest(obs):
        seen.append(obs.numpy()[0].copy())
        return torch.tensor([act(seen[-1])])

    ledger = replay(market, cfg, decide_backtest).lane(0)

    prices = pd.DataFrame({"Open": market.open, "Close": market.close}, index=market.index)
    bar_of = {ts: i for i, ts in enumerate(market.index)}

    def decide(history, state):
        t = bar_of[history.index[-1]]
        obs = observation_from_window(
            market.features[t - W + 1 : t + 1],
            cfg,
            held=state.held_target,
            shares=state.shares,
            last_close=state.last_close,
            entry=state.entry_price,
            bars_held=state.bars_held,
        )
        if t < T - 1:  # the live observation is the backtest's, bit for bit
            assert obs.dtype == np.float32 and obs.tobytes() == seen[t - (W - 1)].tobytes()
        return POSITIONS[act(obs)]

    staged = StagedAccount(tmp_path / "acct", None)
    costs = CostModel(cfg.commission_bps, cfg.slippage_bps, cfg.borrow_bps_per_bar, fill_price)
    broker = PaperBroker(
        staged,
        initial_capital=cfg.initial_capital,
        costs=costs,
        limits=RiskLimits(max_position_fraction=1.0),
        granularity="fractional",
    )
    state = broker.run(prices, decide, start=market.index[W - 1]).state
    marks, trades, orders = (staged.records[k] for k in ("equity", "trades", "orders"))

    # one mark per replay row: bars W-1 .. T-1 (the first is the start, nothing traded yet)
    assert len(marks) == len(ledger) == T - W + 1
    assert [m["bar"] for m in marks] == [d.isoformat() for d in ledger.index]
    fills = ledger[ledger["fill_price"].notna()]
    by_bar = {t["bar"]: t for t in trades}
    assert sorted(by_bar) == [d.isoformat() for d in fills.index]  # the same bars trade
    assert len(trades) > 100 and (ledger["shares"] < 0).any() and (ledger["shares"] > 0).any()
    prev_shares = 0.0
    for i, (date, row) in enumerate(ledger.iterrows()):
        m = marks[i]
        # shares, cash and equity are the backtest's, bit for bit, hence to the cent
        assert (m["shares"], m["cash"], m["equity"]) == (row["shares"], row["cash"], row["equity"])
        assert m["equity_cents"] == round(row["equity"] * 100)
        assert m["cash_cents"] == round(row["cash"] * 100)
        trade = by_bar.get(date.isoformat())
        assert prev_shares + (trade["shares"] if trade else 0.0) == row["shares"]  # same quantity
        if trade:  # same fill price; same costs (commission + slippage + the mark's borrow)
            assert trade["fill_price"] == row["fill_price"]
            assert (
                trade["reference_price"]
                == (market.close if fill_price == "next_close" else market.open)[i + W - 1]
            )
        cost = (trade["commission"] + trade["slippage"] if trade else 0.0) + m["borrow"]
        assert cost == row["cost"]
        if i:  # the position held over the bar is the target decided at the previous bar
            assert orders[i - 1]["target"] == row["position"]
        prev_shares = row["shares"]
    assert math.isclose(state.equity, ledger["equity"].iloc[-1], rel_tol=0, abs_tol=0)
    assert sum(m["borrow"] for m in marks) > 0  # shorts paid borrow on both sides

    # the committed account replays from its own logs, to the same floats
    store = AccountStore(tmp_path / "acct")
    store.commit_batch(staged)
    state = reconcile(store)
    assert state.granularity == "fractional"
    assert replay_trades(
        state.initial_capital_cents,
        store.read_log("trades", state),
        store.read_log("equity", state),
        granularity="fractional",
        initial_cash=state.exact_initial_cash,
    ) == (row["cash"], row["shares"])


def test_the_granularity_is_recorded_and_never_changes(tmp_path):
    idx = pd.date_range("2021-01-04", periods=6, freq="B", name="date")
    prices = pd.DataFrame(
        {"Open": [100.0, 101, 99, 98, 102, 103], "Close": [100.5, 102, 98, 99, 101, 104]}, index=idx
    )
    store = AccountStore(tmp_path / "a")
    costs = CostModel(commission_bps=10, slippage_bps=5)

    def broker(granularity=None):
        return PaperBroker(
            store, initial_capital=10_000, costs=costs, limits=RiskLimits(), granularity=granularity
        )

    s = broker().run(prices.iloc[:3], lambda h, st: 0.5).state  # the default: whole shares
    assert s.granularity == "whole" and isinstance(s.shares, int) and s.exact_cash is None
    with pytest.raises(AccountStateError, match="trades whole shares .* cannot switch to fractional"):
        broker("fractional").run(prices, lambda h, st: 0.5)
    s = broker().run(prices, lambda h, st: 0.5).state  # None: the account's own granularity
    assert s.granularity == "whole" and s.bars_processed == 6
    reconcile(store)

    frac = AccountStore(tmp_path / "f")
    s = (
        PaperBroker(frac, initial_capital=10_000, costs=costs, limits=RiskLimits(), granularity="fractional")
        .run(prices, lambda h, st: 0.5)
        .state
    )
    assert s.granularity == "fractional" and s.shares != int(s.shares)
    with pytest.raises(AccountStateError, match="trades fractional shares"):
        PaperBroker(frac, initial_capital=10_000, costs=costs, limits=RiskLimits(), granularity="whole").run(
            prices, lambda h, st: 0.5
        )
    reconcile(frac)
    # a cash balance off by a millionth of a cent does not reconcile
    data = json.loads(frac.state_path.read_text())
    data["exact_cash"] += 1e-8
    frac.state_path.write_text(json.dumps(data))
    with pytest.raises(AccountStateError, match="does not reconcile: trade log replays to cash"):
        reconcile(frac)
