"""The account report (status JSON + equity PNG vs buy-and-hold) and bad input.

Every bad input must be a clear error and leave the account folder byte-for-byte unchanged.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

from benchmarks.deployment_world import V1, raw_rows
from reinforce_strategy_creator.deployment import AccountStore
from reinforce_strategy_creator.deployment.report import (
    FeedMismatchError,
    check_feed_matches_training,
)
from tests.support.paper import account_files

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("role", ["production", "shadow"])
def test_status_and_png_report_the_committed_account_against_buy_and_hold(traded, role):
    status = json.loads(traded.status.read_text())[role]
    store = AccountStore(traded.account if role == "production" else traded.shadow_account)
    state = store.load()
    assert status["model_version"] == V1 and status["role"] == role
    assert status["account_exists"] is True
    for key in ("cash", "equity", "last_bar", "halted"):
        assert status[key] == getattr(state, key), key
    assert (status["shares"], status["position"]) == (state.shares[0], state.weights()[0])
    assert status["pnl"] == pytest.approx(state.equity - state.initial_capital_cents / 100, abs=0.005)
    assert traded.png.read_bytes()[:8] == PNG_MAGIC

    # buy-and-hold on the account's own bars, same capital: close to the frictionless
    # close[-1]/open[1] growth, and strictly below it because it paid the same costs
    marks = store.read_log("equity", state)
    capital = state.initial_capital_cents / 100
    frictionless = capital * marks[-1]["closes"][0] / marks[1]["opens"][0]
    env = traded.params["environment"]
    assert env["commission_bps"] + env["slippage_bps"] > 0
    assert status["buy_and_hold_equity"] < frictionless
    assert status["buy_and_hold_equity"] == pytest.approx(frictionless, rel=0.01)
    assert status["buy_and_hold_pnl"] == pytest.approx(status["buy_and_hold_equity"] - capital, abs=0.01)


THIS_RUN = ("status", "bars_processed_this_run", "first_bar", "events_this_run", "message")
WHERE = ("account", "model_artifact")  # paths of the world's own folder


def test_a_run_killed_after_its_commit_loses_nothing_from_the_next_status(world, tmp_path):
    """A run killed after both accounts committed and before the status report (the run up to
    ``paper_trade``, whose outputs are the commits): the next run has no new bar, and its status
    still shows the killed run's session, built from the accounts' committed state and logs;
    every account figure equals the status of a run that was never interrupted."""
    from tests.pipelines.deployment.conftest import copy_world

    world.write_evaluation(V1, passed=True)
    uninterrupted = copy_world(world.folder, tmp_path / "uninterrupted").run()
    assert world.run(to_nodes=["deployment.paper_trade"]) is None  # committed, no status
    assert AccountStore(world.shadow_account).load().bars_processed > 0
    rerun = world.run()
    for role in ("production", "shadow"):
        after, clean = rerun[role], uninterrupted[role]
        assert after["status"] == "no_new_bars" and after["bars_processed_this_run"] == 0
        assert clean["status"] == "traded"
        session = after["last_session"]
        assert session == clean["last_session"]
        assert session["bars"] == clean["bars_processed_this_run"] == after["bars_processed_total"]
        assert (session["first_bar"], session["last_bar"]) == (clean["first_bar"], clean["last_bar"])
        assert session["events"] == clean["events_this_run"] and session["model"] == after["model"]
        store = AccountStore(world.account if role == "production" else world.shadow_account)
        assert session["trades"] == len(store.read_log("trades")) > 0
        assert {k: v for k, v in after.items() if k not in THIS_RUN + WHERE} == {
            k: v for k, v in clean.items() if k not in THIS_RUN + WHERE
        }
        assert f"Last session {session['first_bar'][:10]}" in " ".join(rerun["summary"])


def test_png_labels_both_accounts(world):
    """The figure has one titled column per account; without a production model that column
    says so and the shadow column still shows the champion's equity."""
    from reinforce_strategy_creator.datasets.deployment import PaperAccountDataset
    from reinforce_strategy_creator.pipelines.deployment.nodes import report_accounts

    world.write_evaluation(V1, passed=False)
    written = world.run()
    production = PaperAccountDataset(str(world.account)).load()
    shadow = PaperAccountDataset(str(world.shadow_account)).load()
    assert production.state is None and shadow.state is not None
    session = {
        r: {**written[r], "mode": written["mode"], "registry": written["registry"]}
        for r in ("production", "shadow")
    }
    status, fig = report_accounts(production, shadow, session, world.params["environment"])
    assert status == written  # what the pipeline wrote
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles[0].startswith("PRODUCTION account") and titles[1].startswith("SHADOW account")
    assert f"ppo-{V1}-seed0" in titles[1] and "verdict FAILED" in titles[1]
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert any("No production account: no model is promoted" in t for t in texts)
    curves = [line for ax in fig.axes for line in ax.get_lines() if line.get_label() == "shadow account"]
    assert len(curves) == 1 and len(curves[0].get_xdata()) == shadow.state.bars_processed


def test_no_production_model_still_writes_a_report_that_says_so(world):
    world.write_evaluation(V1, passed=False)
    status = world.run()
    assert status["production"]["status"] == "no_production_model"
    assert status["production"]["account_exists"] is False
    assert status["shadow"]["status"] == "traded" and status["shadow"]["account_exists"] is True
    assert world.png.read_bytes()[:8] == PNG_MAGIC
    assert not world.account.exists() or not (world.account / "state.json").exists()


def test_require_production_model_makes_it_an_error(world):
    world.write_evaluation(V1, passed=False)
    world.params["deployment"]["require_production_model"] = True
    with pytest.raises(ValueError, match="require_production_model"):
        world.run()
    assert not (world.account / "state.json").exists()


def _rewrite_feed(world, rows: pd.DataFrame) -> None:
    rows.to_csv(world.feed, index=False)


def _assert_refused(world, match: str, tags=("paper",)) -> None:
    """Refused with ``match``; both account folders byte-identical afterwards."""
    before = [account_files(f) if f.exists() else None for f in (world.account, world.shadow_account)]
    with pytest.raises(Exception, match=match):
        world.run(tags=list(tags) if tags else None)
    assert [account_files(f) if f.exists() else None for f in (world.account, world.shadow_account)] == before


def test_feed_rewriting_an_already_processed_bar_is_refused(traded):
    rows = raw_rows()
    i = int((pd.to_datetime(rows["Date"], format="%m/%d/%Y") == "2018-01-10").to_numpy().argmax())
    rows.loc[i, "Close"] = str(float(rows.loc[i, "Close"]) - 0.5)  # stays inside [Low, High]
    rows.loc[i, "Adj Close"] = rows.loc[i, "Close"]
    _rewrite_feed(traded, rows)
    _assert_refused(traded, r"2018-01-10 .*differs .*equity\.jsonl")


def test_feed_missing_an_already_processed_bar_is_refused(traded):
    rows = raw_rows()
    rows = rows[pd.to_datetime(rows["Date"], format="%m/%d/%Y") != "2018-01-10"]
    _rewrite_feed(traded, rows)
    _assert_refused(traded, r"2018-01-10 was already processed")


def test_stale_feed_ending_before_the_accounts_last_bar_is_refused(traded):
    _rewrite_feed(traded, raw_rows(end="2018-02-20"))  # an older copy of the feed file
    _assert_refused(
        traded,
        r"feed ends at 2018-02-20, but the paper account .*account already "
        r"processed bars up to 2018-02-27 .*stale",
    )


def test_feed_going_back_in_time_is_refused(traded):
    rows = raw_rows(end="2018-02-28")
    rows = pd.concat([rows.iloc[:-2], rows.iloc[[-1, -2]]])  # the last two bars swapped
    _rewrite_feed(traded, rows)
    _assert_refused(traded, "goes back in time")


def test_feed_of_another_frequency_is_refused(traded):
    traded.params["deployment"]["feed"]["min_rows"] = 50
    rows = raw_rows()
    _rewrite_feed(traded, rows.iloc[::5])  # weekly bars
    _assert_refused(traded, "median bar spacing")


def test_feed_columns_must_match_the_training_price_columns(traded):
    train = pd.read_parquet(traded.train_path)
    prices = train[[c for c in train.columns if not c.startswith("feat_")]]
    check_feed_matches_training(prices, train)  # the training prices themselves pass
    with pytest.raises(FeedMismatchError, match="columns .* differ"):
        check_feed_matches_training(prices.drop(columns=["Volume"]), train)
    with pytest.raises(FeedMismatchError, match="median bar spacing"):
        check_feed_matches_training(prices.iloc[::5], train)


def test_policy_artifact_that_fails_to_load_names_entry_artifact_and_version(traded):
    for path in (traded.policy_dir / V1).rglob("*"):
        if path.is_file():
            path.write_bytes(b"not a policy")
    _assert_refused(traded, rf"ppo-{V1}-seed0.*ppo_policy.*version {V1}")


@pytest.mark.parametrize("garbage", [b"{not json", b"", b"[1, 2]"])
@pytest.mark.parametrize("which", ["account", "shadow_account"])
def test_corrupt_state_is_never_reset(traded, garbage, which):
    (getattr(traded, which) / "state.json").write_bytes(garbage)
    _assert_refused(traded, rf"{which}/state\.json.*(restore|Restore).*backup")


def test_one_folder_for_both_accounts_is_refused(world):
    world.write_evaluation(V1, passed=True)
    world.shadow_account = world.account  # a catalog that gives both accounts one folder
    with pytest.raises(Exception, match="same folder .*own filepath"):
        world.run()
    assert not world.account.exists() or not (world.account / "state.json").exists()
