"""What every paper account does, once for one instrument (N = 1, ``PaperAccount.instrument``) and
for a universe (N = 5, one ticker listed mid-window, ``PaperAccount.universe``): a rerun with no new
bar changes nothing and a feed that grows bar by bar (or in chunks) gives the bytes of one run, the
position cap, the drawdown kill switch, the day-loss stop, a non-finite decision, a feed of the
wrong shape; the journal (a crash between the log append and the ``state.json`` commit, log lines
left without a state, a staged batch), a damaged folder, a tampered log and accounting to the
cent. What is special to one front end (fill timing and hand-computed costs at N = 1, a universe's
feed checks at N > 1) is in test_broker.py and test_portfolio_account.py; random SIGKILLs in
test_crash_safety.py."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reinforce_strategy_creator.deployment import (
    AccountStateError,
    AccountStore,
    CostModel,
    PaperAccount,
    RiskLimits,
    clear_halt,
    reconcile,
)
from reinforce_strategy_creator.deployment import state as state_mod
from reinforce_strategy_creator.deployment.state import StagedAccount, market_value_cents
from reinforce_strategy_creator.errors import InputError
from tests.support.paper import (
    CONFIG,
    account_files,
    alternating_policy,
    make_decider,
    make_panel,
    make_prices,
)

N_BARS = 30


@dataclass
class Account:
    """One account under test, whatever its N: run it over the feed's first ``rows`` bars (all by
    default) and read its logs (one layout for every N: per-asset lists)."""

    store: AccountStore
    runs: Callable[..., Any]  # (rows=None, max_bars=None) -> RunSummary
    dates: list[str]

    def log(self, name: str) -> list[dict]:
        return self.store.read_log(name)

    def run(self, rows: int | None = None) -> Any:
        """Run over the feed's first ``rows`` bars; the state after it."""
        return self.runs(rows).state


def one_instrument(
    tmp_path,
    limits,
    shock_row=None,
    shock=1.0,
    granularity="whole",
    target=1.0,
    nan_from=None,
    costs=(10.0, 5.0, 0.0),
    seed=None,
    store=None,
) -> Account:
    """A single-asset account on random-walk bars (Open and Close times ``shock`` from
    ``shock_row``) whose policy always asks for ``target`` (NaN from row ``nan_from``); a
    ``target`` of None: long after an up close, short-ish after a down one; a list: its i-th entry
    at bar i. ``costs``: commission,
    slippage and borrow in basis points; ``seed``: the bars' (8 by default); ``store``: the account's
    store (an ``AccountStore`` of ``tmp_path / "acct"`` by default)."""
    if target is None:
        policy = lambda h: alternating_policy(h, None)  # noqa: E731
    elif isinstance(target, list):
        policy = lambda h: target[len(h) - 1]  # noqa: E731
    else:
        policy = lambda h: target  # noqa: E731
    prices = make_prices(N_BARS, seed=8 if seed is None else seed)
    if shock_row is not None:
        prices.iloc[shock_row:, [prices.columns.get_loc("Open"), prices.columns.get_loc("Close")]] *= shock
    store = store or AccountStore(tmp_path / "acct")
    broker = PaperAccount.instrument(
        store,
        initial_capital=100_000.0,
        costs=CostModel(*costs),
        limits=limits,
        granularity=granularity,
    )
    return Account(
        store,
        lambda rows=None, max_bars=None: broker.run(
            prices.iloc[:rows] if rows else prices,
            lambda h, s: float("nan") if nan_from is not None and len(h) > nan_from else policy(h),
            max_bars=max_bars,
        ),
        [t.isoformat() for t in prices.index],
    )


def universe(
    tmp_path,
    limits,
    shock_row=None,
    shock=1.0,
    granularity="whole",
    target=None,
    nan_from=None,
    costs=(10.0, 5.0, 0.0),
    seed=None,
    store=None,
) -> Account:
    """A 5-ticker account (one ticker listed at row 12) whose closes are times ``shock`` from
    ``shock_row``, with a decider that reads its whole observation (NaN weights from row
    ``nan_from``); ``costs``, ``seed`` (the panel's, 11 by default) and ``store`` as
    :func:`one_instrument`'s (a long-only universe pays no borrow)."""
    panel = make_panel(N_BARS, seed=11 if seed is None else seed)
    if shock_row is not None:
        close = panel.close.copy()
        close[shock_row:] *= shock
        panel = dataclasses.replace(panel, close=close)
    store = store or AccountStore(tmp_path / "acct")
    config = CONFIG.replace(commission_bps=costs[0], slippage_bps=costs[1], borrow_bps_per_bar=costs[2])
    account = PaperAccount.universe(store, panel.tickers, config, granularity=granularity, limits=limits)
    policy = make_decider(panel.n_assets, CONFIG.window)

    def decide(obs, bar):
        return (
            np.full((1, panel.n_assets), np.nan)
            if nan_from is not None and bar >= nan_from
            else policy(obs, bar)
        )

    return Account(
        store,
        lambda rows=None, max_bars=None: account.run(
            panel.rows(0, rows) if rows else panel, decide, max_bars=max_bars
        ),
        [d.isoformat() for d in panel.dates],
    )


ACCOUNTS = [pytest.param(one_instrument, id="N=1"), pytest.param(universe, id="N=5")]


@pytest.mark.parametrize("granularity", ["whole", "fractional"])
@pytest.mark.parametrize("make", ACCOUNTS)
def test_a_rerun_changes_nothing_and_a_growing_feed_equals_one_run(tmp_path, make, granularity):
    def account(name: str) -> Account:
        return make(tmp_path / name, RiskLimits(), granularity=granularity, target=None)

    ref = account("ref")
    first = ref.runs()
    assert first.bars_processed == len(ref.log("orders")) > 20
    before = account_files(ref.store.folder)
    again = ref.runs()
    assert again.bars_processed == 0 and account_files(ref.store.folder) == before  # not a byte changed
    reconcile(ref.store)

    # the paper-trading use: the feed grows by one bar per run (the last row is "today")
    daily = account("daily")
    daily.runs(CONFIG.window)
    for rows in range(CONFIG.window + 1, N_BARS + 1):
        done = daily.runs(rows)
        assert done.bars_processed == 1 and done.last_bar == daily.dates[rows - 1]
        assert done.state.session_first_bar == done.state.last_bar  # each run is its own session
    assert account_files(daily.store.folder, split_runs=True) == account_files(
        ref.store.folder, split_runs=True
    )
    # and in uneven chunks
    chunked = account("chunks")
    for k in (1, 5, 2, 100):
        last = chunked.runs(None, k)
    assert last.state.session_first_bar == last.first_bar
    assert account_files(chunked.store.folder, split_runs=True) == account_files(
        ref.store.folder, split_runs=True
    )


@pytest.mark.parametrize("make", ACCOUNTS)
def test_max_position_fraction_caps_every_target(tmp_path, make):
    acct = make(tmp_path, RiskLimits(max_position_fraction=0.25))
    acct.run()
    orders = acct.log("orders")
    assert all(max(abs(x) for x in o["targets"]) <= 0.25 + 1e-12 for o in orders)
    assert any(o["reason"] == "clipped to max_position_fraction=0.25" for o in orders)
    assert any(max(o["policy_weights"]) > 0.25 for o in orders)  # the limit did bind
    assert all(max(abs(w) for w in m["weights"]) <= 0.26 for m in acct.log("equity"))


@pytest.mark.parametrize("make", ACCOUNTS)
def test_the_granularity_is_recorded_and_never_changes(tmp_path, make):
    whole = make(tmp_path / "w", RiskLimits(), target=None)
    s = whole.run(15)
    assert s.granularity == "whole" and all(isinstance(x, int) for x in s.shares) and s.exact_cash is None
    with pytest.raises(AccountStateError, match=r"whole shares \(asked for fractional\)"):
        make(tmp_path / "w", RiskLimits(), target=None, granularity="fractional").run()
    assert whole.run().bars_processed == len(whole.log("orders")) > 15
    frac = make(tmp_path / "f", RiskLimits(), target=None, granularity="fractional")
    s = frac.run()
    assert s.granularity == "fractional" and any(x != int(x) for x in s.shares)
    with pytest.raises(AccountStateError, match=r"fractional shares \(asked for whole\)"):
        make(tmp_path / "f", RiskLimits(), target=None).run()
    reconcile(whole.store)
    reconcile(frac.store)
    # a cash balance off by a millionth of a cent does not reconcile
    data = json.loads(frac.store.state_path.read_text())
    data["exact_cash"] += 1e-8
    frac.store.state_path.write_text(json.dumps(data))
    with pytest.raises(AccountStateError, match="does not reconcile: the logs replay to cash"):
        reconcile(frac.store)


@pytest.mark.parametrize("make", ACCOUNTS)
def test_the_drawdown_kill_switch_flattens_until_a_person_clears_it(tmp_path, make):
    acct = make(tmp_path, RiskLimits(max_drawdown=0.2), shock_row=15, shock=0.6)
    state = acct.run(20)
    assert state.halted and "max drawdown" in state.halt_reason
    events = acct.log("events")
    assert [e["kind"] for e in events] == ["halt"] and events[0]["bar"] == acct.dates[15]
    assert not any(np.atleast_1d(state.shares))  # flat from the bar after the halt
    after = [o for o in acct.log("orders") if o["bar"] >= acct.dates[15]]
    assert after and all(
        not any(o["targets"]) and o["policy_weights"] is None and o["reason"].startswith("halted")
        for o in after
    )
    state = clear_halt(acct.store, "reviewed the crash", actor="ops")
    assert not state.halted and state.peak_equity_cents == state.equity_cents
    state = acct.run(None)  # the rest of the feed
    assert not state.halted and any(np.atleast_1d(state.shares))  # trading again
    assert [e["kind"] for e in acct.log("events")] == ["halt", "clear_halt"]
    reconcile(acct.store)
    with pytest.raises(AccountStateError, match="not halted"):
        clear_halt(acct.store, "again")


@pytest.mark.parametrize("make", ACCOUNTS)
def test_the_day_loss_stop_allows_no_new_risk_for_the_rest_of_the_day(tmp_path, make):
    acct = make(tmp_path, RiskLimits(max_daily_loss=0.05), shock_row=15, shock=0.9, granularity="fractional")
    acct.run()
    (event,) = [e for e in acct.log("events") if e["kind"] == "day_loss_stop"]
    assert event["bar"] == acct.dates[15]
    orders = acct.log("orders")
    i = next(k for k, o in enumerate(orders) if o["bar"] == event["bar"])
    mark = next(m for m in acct.log("equity") if m["bar"] == event["bar"])
    assert orders[i]["reason"] == "day-loss stop: no new risk"
    for target, weight in zip(orders[i]["targets"], mark["weights"], strict=True):
        assert target * weight >= 0 and abs(target) <= abs(weight) + 1e-12  # no new position, no flip
    assert orders[i + 1]["reason"] == "policy"  # the next day (daily bars) trades freely again


@pytest.mark.parametrize("make", ACCOUNTS)
def test_a_non_finite_decision_is_refused_naming_its_bar_and_writes_nothing_of_it(tmp_path, make):
    acct = make(tmp_path, RiskLimits(), nan_from=20)
    acct.run(20)  # rows 0..19 decided and committed
    before = account_files(acct.store.folder)
    with pytest.raises(InputError, match=acct.dates[20][:10]) as err:
        acct.run(None)
    assert "nan" in str(err.value) and "finite" in str(err.value)
    assert account_files(acct.store.folder) == before  # the bars before stay, nothing of bar 20
    assert reconcile(acct.store).last_bar == acct.dates[19]


@pytest.mark.parametrize(
    ("open_account", "feed", "match"),
    [
        pytest.param(
            lambda store: PaperAccount.instrument(
                store, initial_capital=1e5, costs=CostModel(), limits=RiskLimits()
            ),
            make_prices(10).drop(columns="Open"),
            "missing columns",
            id="N=1",
        ),
        pytest.param(
            lambda store: PaperAccount.universe(store, make_panel(N_BARS).tickers, CONFIG),
            make_prices(10),
            "must be a PortfolioPanel",
            id="N=5",
        ),
    ],
)
def test_a_feed_of_the_wrong_shape_is_refused_before_the_account_is_created(
    tmp_path, open_account, feed, match
):
    with pytest.raises(InputError, match=match):
        open_account(AccountStore(tmp_path / "acct")).run(feed, lambda *args: 0.0)
    assert account_files(tmp_path / "acct") in (None, {})  # no state, no log


# ------------------------------------------------------------------ the journal and the ledger
def _torn(folder) -> dict[str, bytes]:
    """The tails set aside in ``folder``: ``{log file name: bytes}``."""
    return {p.name.split(".torn-")[0]: p.read_bytes() for p in folder.glob("*.torn-*")}


@pytest.mark.parametrize("make", ACCOUNTS)
def test_crash_between_log_append_and_state_commit_is_redone_once(tmp_path, make, monkeypatch, caplog):
    ref = make(tmp_path / "ref", RiskLimits(), target=None)
    ref.run()
    acct = make(tmp_path / "crash", RiskLimits(), target=None)
    committed_bars = acct.runs(15).state.bars_processed
    real = state_mod.atomic_write_json

    def die(*a, **k):
        raise KeyboardInterrupt("simulated kill after logs were appended")

    monkeypatch.setattr(state_mod, "atomic_write_json", die)
    with pytest.raises(KeyboardInterrupt):
        acct.run()
    monkeypatch.setattr(state_mod, "atomic_write_json", real)
    store, folder = acct.store, acct.store.folder
    assert store.load().bars_processed == committed_bars  # the next bar not committed
    assert len(store.read_log("orders")) == committed_bars  # its appended tail is ignored by readers
    assert (folder / "orders.jsonl").stat().st_size > store.load().log_sizes["orders"]
    committed = store.load().log_sizes
    tails = {f"{n}.jsonl": (folder / f"{n}.jsonl").read_bytes()[committed[n] :] for n in committed}
    with caplog.at_level("WARNING"):
        acct.run()
    # the uncommitted tail is not deleted: moved aside, byte for byte, with a warning naming it
    assert _torn(folder) == {name: tail for name, tail in tails.items() if tail} and _torn(folder)
    assert all(str(p) in caplog.text for p in folder.glob("*.torn-*"))
    # and the account is byte-identical to a run never killed, but for where the newest run started
    assert account_files(folder, split_runs=True) == account_files(ref.store.folder, split_runs=True)


@pytest.mark.parametrize("make", ACCOUNTS)
def test_a_damaged_folder_is_refused_naming_what_to_do(tmp_path, make):
    acct = make(tmp_path, RiskLimits())
    acct.runs(10)
    folder = acct.store.folder
    (folder / "orders.jsonl").write_bytes(b"")
    with pytest.raises(AccountStateError, match="committed history was lost. Restore the folder"):
        acct.run()
    (folder / "state.json").unlink()
    (folder / "orders.jsonl").write_bytes(b'{"bar": 1}\n')
    with pytest.raises(AccountStateError, match="without a state.json: the folder is damaged"):
        AccountStore(folder).load()
    (folder / "state.json").write_text("{not json")
    with pytest.raises(AccountStateError, match="is not valid JSON .* never reset automatically"):
        acct.run()


@pytest.mark.parametrize("make", ACCOUNTS)
def test_a_tampered_log_does_not_reconcile(tmp_path, make):
    acct = make(tmp_path, RiskLimits(), target=None)
    acct.run()
    path = acct.store.folder / "trades.jsonl"
    lines = path.read_text().splitlines()
    rec = json.loads(lines[0])
    rec["commission_cents"] += 1
    lines[0] = json.dumps(rec, sort_keys=True)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(AccountStateError, match="does not reconcile"):
        reconcile(acct.store)
    with pytest.raises(AccountStateError, match="does not reconcile"):  # checked by every run
        acct.run()


def _log_lines_left_without_a_state_are_set_aside(folder, caplog, make):
    folder.mkdir(parents=True)
    leftover = b'{"bar": "2020-01-01T00:00:00", "kind": "order"}\n{"bar": "2020-01'
    (folder / "orders.jsonl").write_bytes(leftover)  # a run killed before its first commit
    with caplog.at_level("WARNING"):
        make().runs(12)
    assert _torn(folder) == {"orders.jsonl": leftover} and "orders.jsonl.torn-" in caplog.text


@pytest.mark.parametrize("make", ACCOUNTS)
def test_log_lines_left_without_a_state_are_set_aside_when_the_account_starts(tmp_path, make, caplog):
    _log_lines_left_without_a_state_are_set_aside(
        tmp_path / "acct", caplog, lambda: make(tmp_path, RiskLimits())
    )
    reconcile(AccountStore(tmp_path / "acct"))


@pytest.mark.parametrize("make", ACCOUNTS)
def test_a_staged_batch_publishes_the_bytes_of_bar_by_bar_commits(tmp_path, make):
    ref = make(tmp_path / "ref", RiskLimits(), target=None)
    ref.run()
    folder = tmp_path / "staged" / "acct"
    staged = StagedAccount(folder, None)
    make(tmp_path / "staged", RiskLimits(), target=None, store=staged).run()
    assert not folder.exists()  # nothing written until the batch is published
    AccountStore(folder).commit_batch(staged)
    assert account_files(folder) == account_files(ref.store.folder)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seed=st.integers(0, 10_000),
    commission=st.floats(0, 50),
    slippage=st.floats(0, 50),
    borrow=st.floats(0, 5),
    granularity=st.sampled_from(["whole", "fractional"]),
    targets=st.lists(st.floats(-1.5, 1.5, allow_nan=False), min_size=N_BARS, max_size=N_BARS),
)
@pytest.mark.parametrize("make", ACCOUNTS)
def test_accounting_reconciles_to_the_cent(
    tmp_path_factory, make, seed, commission, slippage, borrow, granularity, targets
):
    """Every mark is cash + sum(shares x close) = equity (whole: in cents, exactly; fractional: the
    cents are the float64 amounts rounded), the logs replay to the state, and each fill pays the
    commission and slippage its basis points say, and a whole account's buy within its equity
    (N = 1: a target in [0, 1]; N = 5: long-only weights) never overdraws. N = 1 trades the drawn
    ``targets`` (within +-1 by the position cap), N = 5 its decider's weights."""
    acct = make(
        tmp_path_factory.mktemp("acct"),
        RiskLimits(max_position_fraction=1.0),
        granularity=granularity,
        target=targets,
        costs=(commission, slippage, borrow),
        seed=seed,
    )
    state = acct.run()
    assert reconcile(acct.store) == state
    marks, trades = acct.log("equity"), acct.log("trades")
    for m in marks:
        shares, closes = m["shares"], m["closes"]
        if granularity == "whole":
            assert all(isinstance(x, int) for x in shares)
            assert m["equity_cents"] == m["cash_cents"] + market_value_cents(shares, closes)
        else:
            value = math.fsum(x * (c or 0.0) for x, c in zip(shares, closes, strict=True))
            assert abs(m["cash"] + value - m["equity"]) <= 0.005
            assert (m["cash_cents"], m["equity_cents"]) == (round(m["cash"] * 100), round(m["equity"] * 100))
    assert (marks[-1]["cash_cents"], marks[-1]["equity_cents"]) == (state.cash_cents, state.equity_cents)
    assert [m["shares"] for m in marks[-1:]] == [list(state.shares)]
    if granularity == "whole" and make is universe:
        assert all(m["cash_cents"] >= 0 for m in marks)
    for t in trades:
        if "target" in t:  # one instrument: its trades record the target they fill
            assert abs(t["target"]) <= 1.0
            if t["shares"] > 0 and 0 <= t["target"]:
                assert t["cash_after_cents"] >= 0
        side = 1 if t["shares"] > 0 else -1
        assert t["fill_price"] == pytest.approx(t["reference_price"] * (1 + side * slippage / 1e4))
        expected = round(abs(t["shares"]) * t["fill_price"] * commission / 1e4 * 100)
        assert abs(t["commission_cents"] - expected) <= (0 if granularity == "whole" else 1)
    assert json.loads((acct.store.folder / "state.json").read_text())["generation"] == len(marks)
