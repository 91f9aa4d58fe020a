"""The deployment pipeline through Kedro's SequentialRunner on real S&P 500 bars."""

from __future__ import annotations

import json
import logging

import pandas as pd
import pytest

from benchmarks.deployment_world import V1, V2, raw_rows, write_feed
from reinforce_strategy_creator.deployment import AccountStore, ModelRegistry, reconcile
from reinforce_strategy_creator.deployment.session import PaperSessionError
from reinforce_strategy_creator.env import fill_and_costs
from reinforce_strategy_creator.env.execution import GRANULARITIES
from reinforce_strategy_creator.params.base import ParameterError
from reinforce_strategy_creator.params.deployment import DeploymentParams
from tests.support.paper import account_files


def _orders(folder):
    store = AccountStore(folder)
    return store.read_log("orders", store.load())


def test_a_failed_champion_trades_in_the_shadow_account_and_not_in_production(world, caplog):
    world.write_evaluation(V1, passed=False)
    with caplog.at_level(logging.WARNING):
        status = world.run()
    prod, shadow = status["production"], status["shadow"]
    assert prod["status"] == "no_production_model" and prod["account_exists"] is False
    assert "kedro models promote" in prod["message"] and "--force --reason" in prod["message"]
    assert "kedro models promote" in caplog.text
    assert not (world.account / "state.json").exists()  # production untouched (never created)
    entries = ModelRegistry(world.registry).list()
    assert [e.status for e in entries] == ["candidate"] and not entries[0].passed

    # the shadow account traded the failed champion on the held-back bars
    v1 = f"ppo-{V1}-seed0"
    n_2018 = int((pd.to_datetime(raw_rows()["Date"], format="%m/%d/%Y") >= "2018-01-01").sum())
    assert shadow["status"] == "traded" and shadow["model"] == v1 and shadow["model_verdict_passed"] is False
    assert shadow["bars_processed_this_run"] == n_2018 and shadow["first_bar"] == "2018-01-02T00:00:00"
    store = AccountStore(world.shadow_account)
    state = reconcile(store)
    assert state.bars_processed == n_2018 and state.active_model_id == v1
    assert {o["model_id"] for o in store.read_log("orders", state)} == {v1}
    assert shadow["equity"] == state.equity and shadow["buy_and_hold_equity"] is not None
    assert status["summary"][0].startswith("production: no model is promoted")
    assert status["summary"][1].startswith(f"shadow: {v1} (verdict FAILED) traded {n_2018} bar(s)")


def test_register_once_trade_rerun_and_append_one_bar(world):
    world.write_evaluation(V1, passed=True)
    status = world.run()
    prod = status["production"]
    assert prod["status"] == "traded" and prod["model"] == f"ppo-{V1}-seed0"
    n_2018 = int((pd.to_datetime(raw_rows()["Date"], format="%m/%d/%Y") >= "2018-01-01").sum())
    assert prod["bars_processed_this_run"] == n_2018 and prod["first_bar"] == "2018-01-02T00:00:00"
    # the same champion in the shadow account: the same decisions on the same bars
    assert status["shadow"]["model"] == prod["model"] and status["shadow"]["equity"] == prod["equity"]
    registry_bytes = world.registry.read_bytes()
    account, shadow = account_files(world.account), account_files(world.shadow_account)
    events = [json.loads(line)["event"] for line in registry_bytes.splitlines()]
    assert events == ["register", "promote"]

    # same evaluation again, no new bars: nothing changes anywhere
    again = world.run()
    for role in ("production", "shadow"):
        assert again[role]["status"] == "no_new_bars" and again[role]["bars_processed_this_run"] == 0
    assert world.registry.read_bytes() == registry_bytes
    assert account_files(world.account) == account and account_files(world.shadow_account) == shadow

    # one more bar in the feed: exactly one new decision in each account, logs still reconcile
    write_feed(world.feed, end="2018-02-28")
    one = world.run(tags=["paper"])
    for role, folder in (("production", world.account), ("shadow", world.shadow_account)):
        assert one[role]["bars_processed_this_run"] == 1 and one[role]["last_bar"] == "2018-02-28T00:00:00"
        orders = _orders(folder)
        assert len(orders) == n_2018 + 1 and orders[-1]["bar"] == "2018-02-28T00:00:00"
        assert len({o["bar"] for o in orders}) == len(orders)
        assert reconcile(AccountStore(folder)).bars_processed == n_2018 + 1


def test_fills_use_the_environment_costs_and_capital(traded):
    world = traded  # V1 registered, promoted, traded in both accounts
    store = AccountStore(world.account)
    state = store.load()
    env = world.params["environment"]
    assert state.initial_capital_cents == round(env["initial_capital"] * 100)
    trades = store.read_log("trades", state)
    assert trades, "the test policy should trade"
    for t in trades:
        fill, commission, slip = fill_and_costs(
            t["reference_price"], t["shares"], env["commission_bps"], env["slippage_bps"]
        )
        assert t["fill_price"] == fill
        assert t["commission_cents"] == round(commission * 100)
        assert t["slippage_cents"] == round(slip * 100)
    assert reconcile(store) == state  # the logs replay to the state, to the cent


def test_model_switch_after_promotion_and_rollback_continues_the_account(traded, caplog):
    world = traded  # V1 registered, promoted, traded in both accounts
    n_before = AccountStore(world.account).load().bars_processed
    world.write_evaluation(V2, passed=True, sharpe=1.4)  # a new champion, auto-promoted
    write_feed(world.feed, end="2018-02-28")
    with caplog.at_level(logging.INFO):
        world.run()
    v2 = f"ppo-{V2}-seed0"
    assert ModelRegistry(world.registry).production().entry_id == v2
    store = AccountStore(world.account)
    state = store.load()
    assert state.bars_processed == n_before + 1 and state.active_model_id == v2
    switch = [e for e in store.read_log("events", state) if e["kind"] == "model_switch"]
    assert switch == [
        {"bar": "2018-02-28T00:00:00", "kind": "model_switch", "from": f"ppo-{V1}-seed0", "to": v2}
    ]
    assert _orders(world.account)[-1]["model_id"] == v2 and "switches model" in caplog.text
    shadow = AccountStore(world.shadow_account)  # the shadow account switched to the new champion too
    assert [e for e in shadow.read_log("events") if e["kind"] == "model_switch"] == switch

    ModelRegistry(world.registry).rollback(reason="test rollback", actor="pytest")
    write_feed(world.feed, end="2018-03-01")
    world.run()  # the same evaluation (V2) is already registered: the rollback sticks
    state = AccountStore(world.account).load()
    assert ModelRegistry(world.registry).production().entry_id == f"ppo-{V1}-seed0"
    assert state.active_model_id == f"ppo-{V1}-seed0" and state.bars_processed == n_before + 2
    reconcile(AccountStore(world.account))
    # the shadow account keeps trading the newest registered champion, whatever production is
    assert reconcile(shadow).active_model_id == v2 and shadow.load().bars_processed == n_before + 2


def test_drift_alerts_are_recorded_and_can_halt_flat(world):
    world.params["deployment"]["drift"].update(halt_on_drift=True, psi=0.25, ks=0.2)
    world.write_evaluation(V1, passed=True)
    status = world.run()
    store = AccountStore(world.account)
    state = store.load()
    events = store.read_log("events", state)
    assert any(e["kind"] == "drift_alert" for e in events)
    halts = [e for e in events if e["kind"] == "halt"]
    assert halts and halts[0]["cause"] == "drift" and state.halted and status["production"]["halted"]
    after = [o for o in store.read_log("orders", state) if o["bar"] >= halts[0]["bar"]]
    assert after and all(o["targets"] == [0.0] and o["reason"].startswith("halted") for o in after)


def test_live_trading_is_refused_and_secrets_never_logged(world, caplog):
    world.write_evaluation(V1, passed=True)
    secret = "sk-live-DO-NOT-LEAK-42"
    world.params["deployment"].update(mode="live_trading", api_key=secret)
    with pytest.raises(Exception, match="no live broker adapter"):
        world.run()
    assert not (world.account / "state.json").exists()
    world.params["deployment"]["mode"] = "paper_trading"
    with caplog.at_level(logging.DEBUG):
        world.run()
    assert "api_key" in caplog.text and secret not in caplog.text
    assert secret not in world.status.read_text()
    assert all(secret not in p.read_text() for p in world.account.iterdir() if p.is_file())


def test_paper_start_inside_a_split_is_refused(world):
    world.write_evaluation(V1, passed=True)
    world.params["deployment"]["paper_start"] = "2017-09-01"
    with pytest.raises(Exception, match=r"deployment.paper_start=2017-09-01 .*test split"):
        world.run()


def test_moved_parameters_are_refused_with_the_new_place(world):
    world.params["deployment"]["costs"] = {"commission_bps": 2.0}
    with pytest.raises(Exception, match="environment.commission_bps"):
        world.run()


def test_a_concurrent_writer_makes_the_save_refuse_without_writing(world):
    from reinforce_strategy_creator.datasets.deployment import PaperAccountDataset
    from reinforce_strategy_creator.deployment import CostModel, PaperAccount, RiskLimits

    world.write_evaluation(V1, passed=True)
    world.run()
    ds = PaperAccountDataset(str(world.account))
    first, second = ds.load(), ds.load()
    write_feed(world.feed, end="2018-03-02")
    feed = pd.read_csv(world.feed, dtype=str)
    from reinforce_strategy_creator.market_data import normalise_prices

    bars, _ = normalise_prices(feed, source="feed")
    for staged in (first, second):
        PaperAccount.instrument(staged, initial_capital=1e5, costs=CostModel(), limits=RiskLimits()).run(
            bars, lambda h, s: 0.0
        )
    ds.save(first)
    committed = account_files(world.account)
    with pytest.raises(Exception, match="another writer committed meanwhile. Nothing was written"):
        ds.save(second)
    assert account_files(world.account) == committed


def test_a_policy_trained_with_another_scaler_is_refused(world):
    V3 = "2026-03-03T00.00.00.000Z"
    world.make_policy(V3, torch_seed=3, scaler_sha="0" * 64)
    world.write_evaluation(V3, passed=True)
    with pytest.raises(Exception, match="feature_scaler .*differs"):
        world.run()
    assert not (world.account / "state.json").exists()  # nothing traded, nothing half-written
    assert not (world.shadow_account / "state.json").exists()


@pytest.mark.parametrize("granularity,other", [("fractional", "whole"), ("whole", "fractional")])
def test_the_accounts_granularity_comes_from_the_parameter_and_never_changes(world, granularity, other):
    """deployment.granularity opens both accounts at that granularity (recorded in state.json);
    another value for an existing account is refused, naming the parameter and the account."""
    world.params["deployment"]["granularity"] = granularity
    world.write_evaluation(V1, passed=True)
    status = world.run()
    for role, folder in (("production", world.account), ("shadow", world.shadow_account)):
        state = reconcile(AccountStore(folder))  # the logs replay to the state at this granularity
        recorded = json.loads((folder / "state.json").read_text())
        assert recorded["granularity"] == state.granularity == granularity
        trades = AccountStore(folder).read_log("trades", state)
        fractional_fills = [t["shares"] for t in trades if t["shares"] != int(t["shares"])]
        assert trades and bool(fractional_fills) == (granularity == "fractional")
        assert (state.exact_cash is not None) == (granularity == "fractional")
        assert status[role]["equity"] == state.equity

    before = (account_files(world.account), account_files(world.shadow_account))
    write_feed(world.feed, end="2018-02-28")  # a new bar to trade
    world.params["deployment"]["granularity"] = other
    with pytest.raises(PaperSessionError) as info:
        world.run(tags=["paper"])
    message = str(info.value)
    assert f"deployment.granularity is {other!r}" in message
    assert f"production paper account {world.account} trades {granularity!r} shares" in message
    assert f"set deployment.granularity: {granularity}" in message and "new folder" in message
    assert (account_files(world.account), account_files(world.shadow_account)) == before  # nothing written


def test_the_granularity_parameter_takes_the_kernels_values_only():
    assert DeploymentParams.parse({}).granularity == "whole"
    for value in GRANULARITIES:
        assert DeploymentParams.parse({"granularity": value}).granularity == value
    with pytest.raises(
        ParameterError, match=r"deployment\.granularity: Input should be 'whole' or 'fractional'"
    ):
        DeploymentParams.parse({"granularity": "half"})


def test_a_production_entry_of_another_universe_leaves_the_account_untouched(world):
    """One registry for every universe: the single-instrument production account does not trade
    a production entry of a 20-asset universe (nor a shadow entry of one), and says why."""
    world.write_evaluation(V1, passed=True)
    champion = json.loads(world.champion.read_text())
    registry = ModelRegistry(world.registry)
    twenty = [f"T{i:02d}" for i in range(20)]
    entry_id = registry.register(
        agent="ppo",
        version=V1,
        seed=3,
        metrics={},
        verdict={"passed": True},
        artifact_path=champion["policy_filepath"],
        artifact_sha256=champion["policy_sha256"],
        universe=twenty,
    )
    registry.promote(entry_id)
    status = world.run(tags=["paper"])
    for role in ("production", "shadow"):
        assert status[role]["status"] == "other_universe", status[role]
        assert "T00" in status[role]["message"] and "one instrument" in status[role]["message"]
    assert "trades another universe" in status["summary"][0]
    assert not (world.account / "state.json").exists() and not (world.shadow_account / "state.json").exists()
