"""Account folders written before the one state type (schema 1: an instrument account with scalar
shares, a universe account with ``kind: portfolio``; fixtures written by that code, see
fixtures/state_v1/make_v1.py) are read into :class:`AccountState` and trade on as if they had
always been one; a schema-1 file that is neither is refused, naming the file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from reinforce_strategy_creator.deployment import AccountStateError, AccountStore, PaperAccount, reconcile
from reinforce_strategy_creator.deployment.state import INSTRUMENT, AccountState
from tests.deployment.fixtures.state_v1.make_v1 import COSTS
from tests.support.paper import (
    CONFIG,
    TICKERS,
    account_files,
    alternating_policy,
    make_decider,
    make_panel,
    make_prices,
)

FIXTURES = Path(__file__).parent / "fixtures" / "state_v1"
KINDS = [f"{front}_{g}" for front in ("instrument", "universe") for g in ("whole", "fractional")]


def _run(kind: str, folder: Path) -> AccountState:
    """Run the fixture's account over its whole feed (40 bars) with the fixture's decider."""
    front, g = kind.split("_")
    if front == "instrument":
        acct = PaperAccount.instrument(
            AccountStore(folder), initial_capital=100_000.0, costs=COSTS, granularity=g
        )
        return acct.run(make_prices(40, seed=8), alternating_policy).state
    acct = PaperAccount.universe(AccountStore(folder), TICKERS, CONFIG, granularity=g)
    return acct.run(make_panel(40), make_decider(5, CONFIG.window)).state


def fresh_first(kind: str) -> str:
    """The first bar of a run over the whole feed: the instrument's first, the universe's window - 1."""
    if kind.startswith("instrument"):
        return make_prices(40, seed=8).index[0].isoformat()
    return make_panel(40).dates[CONFIG.window - 1].isoformat()


@pytest.mark.parametrize("kind", KINDS)
def test_a_schema_1_folder_loads_and_trades_on_as_one_run(kind, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(FIXTURES / kind, old)
    raw = json.loads((old / "state.json").read_text())
    assert raw["schema_version"] == 1
    state = reconcile(AccountStore(old))  # read into the one type; its logs replay to it
    n = 1 if kind.startswith("instrument") else 5
    assert state.tickers == ((INSTRUMENT,) if n == 1 else TICKERS) and len(state.shares) == n
    assert (state.cash_cents, state.equity_cents, state.generation) == (
        raw["cash_cents"],
        raw["equity_cents"],
        raw["generation"],
    )
    if n == 1:
        assert state.shares == (raw["shares"],) and state.pending_weights == (raw["pending_target"],)
        assert (state.held_weights, state.entry_price, state.bars_held) == (
            (raw["held_target"],),
            (raw["entry_price"],),
            (raw["bars_held"],),
        )
        assert state.weights()[0] == pytest.approx(raw["position"], rel=1e-12)
    else:
        assert list(state.shares) == raw["shares"] and state.config == raw["config"]
    final = _run(kind, old)
    assert json.loads((old / "state.json").read_text())["schema_version"] == 2
    fresh = tmp_path / "fresh"
    assert _run(kind, fresh).to_dict() == {**final.to_dict(), "session_first_bar": fresh_first(kind)}
    assert account_files(old, split_runs=True) == account_files(fresh, split_runs=True)


@pytest.mark.parametrize(
    "change",
    [
        {"shares": [1, 2]},  # an instrument account with a list of shares
        {"kind": "single"},
        {"position": None, "tickers": ["X"]},  # neither layout
        {"schema_version": 7},
    ],
)
def test_a_schema_1_file_of_neither_layout_is_refused_naming_the_file(change, tmp_path):
    folder = tmp_path / "acct"
    shutil.copytree(FIXTURES / "instrument_whole", folder)
    path = folder / "state.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **change}))
    with pytest.raises(AccountStateError, match=str(path)):
        AccountStore(folder).load()
