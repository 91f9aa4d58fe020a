"""Account folders written by earlier code are read into :class:`AccountState` and the one log
layout and trade on as if they had always been one: schema 1 (before the one state type: an
instrument account with scalar shares, a universe account with ``kind: portfolio``;
fixtures/state_v1/make_v1.py) and schema 2 written by the two front ends (an instrument account's
own log layout, next-open fills and a max-weight clip; fixtures/state_v2/make_v2.py). A schema-1
file that is neither is refused, naming the file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from reinforce_strategy_creator.deployment import (
    AccountStateError,
    AccountStore,
    PaperAccount,
    RiskLimits,
    reconcile,
)
from reinforce_strategy_creator.deployment.state import INSTRUMENT, AccountState
from tests.deployment.fixtures.state_v1 import make_v1
from tests.deployment.fixtures.state_v2 import make_v2
from tests.support.paper import (
    CONFIG,
    TICKERS,
    alternating_policy,
    make_decider,
    make_panel,
    make_prices,
)

FIXTURES = Path(__file__).parent / "fixtures"
KINDS = [f"{front}_{g}" for front in ("instrument", "universe") for g in ("whole", "fractional")]
MAKERS = {"state_v1": make_v1, "state_v2": make_v2}


def _run(version: str, kind: str, folder: Path) -> AccountState:
    """Run the fixture's account over its whole feed (40 bars) with the fixture's decider, costs
    and limits."""
    front, g = kind.split("_")
    maker = MAKERS[version]
    limits = getattr(maker, "LIMITS", RiskLimits())
    if front == "instrument":
        acct = PaperAccount.instrument(
            AccountStore(folder), initial_capital=100_000.0, costs=maker.COSTS, limits=limits, granularity=g
        )
        return acct.run(make_prices(40, seed=8), alternating_policy).state
    acct = PaperAccount.universe(AccountStore(folder), TICKERS, CONFIG, granularity=g, limits=limits)
    return acct.run(make_panel(40), make_decider(5, CONFIG.window)).state


def _logs(folder: Path) -> dict[str, list[dict]]:
    store = AccountStore(folder)
    return {name: store.read_log(name) for name in ("orders", "trades", "equity", "events")}


def fresh_first(kind: str) -> str:
    """The first bar of a run over the whole feed: the instrument's first, the universe's window - 1."""
    if kind.startswith("instrument"):
        return make_prices(40, seed=8).index[0].isoformat()
    return make_panel(40).dates[CONFIG.window - 1].isoformat()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("version", ["state_v1", "state_v2"])
def test_an_old_folder_loads_and_trades_on_as_one_run(version, kind, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(FIXTURES / version / kind, old)
    raw = json.loads((old / "state.json").read_text())
    assert raw["schema_version"] == int(version[-1])
    state = reconcile(AccountStore(old))  # read into the one type; its logs replay to it
    n = 1 if kind.startswith("instrument") else 5
    assert state.tickers == ((INSTRUMENT,) if n == 1 else TICKERS) and len(state.shares) == n
    assert (state.cash_cents, state.equity_cents, state.generation) == (
        raw["cash_cents"],
        raw["equity_cents"],
        raw["generation"],
    )
    before = _logs(old)
    if version == "state_v2":
        assert state.to_dict() == raw
    elif n == 1:
        assert state.shares == (raw["shares"],) and state.pending_weights == (raw["pending_target"],)
        assert (state.held_weights, state.entry_price, state.bars_held) == (
            (raw["held_target"],),
            (raw["entry_price"],),
            (raw["bars_held"],),
        )
        assert state.weights()[0] == pytest.approx(raw["position"], rel=1e-12)
    else:
        assert list(state.shares) == raw["shares"] and state.config == raw["config"]
    final = _run(version, kind, old)
    assert json.loads((old / "state.json").read_text())["schema_version"] == 2
    fresh = tmp_path / "fresh"
    same = {**final.to_dict(), "session_first_bar": fresh_first(kind)}
    same["log_sizes"] = None  # the old records' bytes are in their own layout
    assert {**_run(version, kind, fresh).to_dict(), "log_sizes": None} == same
    # the old records read in the one layout (the fields they had) equal a fresh run's, the new
    # records are a fresh run's byte for byte
    old_logs, fresh_logs = _logs(old), _logs(fresh)
    for name, records in before.items():
        k = len(records)
        assert old_logs[name][:k] == records and old_logs[name][k:] == fresh_logs[name][k:], name
        for rec, new in zip(records, fresh_logs[name], strict=False):
            assert rec == {key: new[key] for key in rec}, (name, rec["bar"])


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
    shutil.copytree(FIXTURES / "state_v1" / "instrument_whole", folder)
    path = folder / "state.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **change}))
    with pytest.raises(AccountStateError, match=str(path)):
        AccountStore(folder).load()
