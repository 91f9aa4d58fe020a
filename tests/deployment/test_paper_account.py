"""What every paper account does, once for one instrument (N = 1, ``PaperAccount.instrument``) and
for a universe (N = 5, one ticker listed mid-window, ``PaperAccount.universe``): a rerun with no new
bar changes nothing and a feed that grows bar by bar (or in chunks) gives the bytes of one run, the
position cap, the drawdown kill switch, the day-loss stop and a non-finite decision. What is special
to one front end (fill timing and hand-computed costs at N = 1, a universe's feed checks at N > 1)
is in test_broker.py and test_portfolio_account.py."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from reinforce_strategy_creator.deployment import (
    AccountStateError,
    AccountStore,
    CostModel,
    PaperAccount,
    RiskLimits,
    clear_halt,
    reconcile,
)
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
    default), read its logs, and see each order's targets, each mark's weights and the holdings as
    one list per account (one entry per asset)."""

    store: AccountStore
    runs: Callable[..., Any]  # (rows=None, max_bars=None) -> RunSummary
    dates: list[str]
    targets: Callable[[dict], list[float]]
    policy: Callable[[dict], list[float] | None]
    weights: Callable[[dict], list[float]]
    shares: Callable[[dict], list[float]]  # a mark's holdings
    closes: Callable[[dict], list[float | None]]  # a mark's closes

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
    ``target`` of None: long after an up close, short-ish after a down one. ``costs``: commission,
    slippage and borrow in basis points; ``seed``: the bars' (8 by default); ``store``: the account's
    store (an ``AccountStore`` of ``tmp_path / "acct"`` by default)."""
    if target is None:
        policy = lambda h: alternating_policy(h, None)  # noqa: E731
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
        lambda o: [o["target"]],
        lambda o: None if o["policy_target"] is None else [o["policy_target"]],
        lambda m: [m["position"]],
        lambda m: [m["shares"]],
        lambda m: [m["close"]],
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
    config = dataclasses.replace(CONFIG, commission_bps=costs[0], slippage_bps=costs[1], borrow_bps_per_bar=costs[2])
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
        lambda o: o["targets"],
        lambda o: o["policy_weights"],
        lambda m: m["weights"],
        lambda m: m["shares"],
        lambda m: m["closes"],
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
    assert all(max(abs(x) for x in acct.targets(o)) <= 0.25 + 1e-12 for o in orders)
    assert any(o["reason"] == "clipped to max_position_fraction=0.25" for o in orders)
    assert any(max(acct.policy(o)) > 0.25 for o in orders)  # the limit did bind
    assert all(max(abs(w) for w in acct.weights(m)) <= 0.26 for m in acct.log("equity"))


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
        not any(acct.targets(o)) and acct.policy(o) is None and o["reason"].startswith("halted")
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
    for target, weight in zip(acct.targets(orders[i]), acct.weights(mark), strict=True):
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
