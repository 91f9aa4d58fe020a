"""Account report and feed checks of a paper deployment.

What: buy-and-hold on each account's own bars (:func:`buy_and_hold_marks`), the report figure
(:func:`accounts_figure`, one labelled column per account) and ``paper_status.json``
(:func:`report_status`, :func:`paper_status`); and the checks that refuse a feed that does not
fit the training data or an account's history (:func:`check_feed_matches_training`,
:func:`check_feed_against_account`).

Why: the benchmark must see the same bars, costs and capital as the account, and a bad feed
must fail before any bar is traded. See docs/paper_trading.md ("Account report", "Bad input").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..errors import InputError
from ..evaluation.benchmarks import buy_and_hold_targets
from .account import CostModel, PaperAccount, RiskLimits
from .state import AccountState, StagedAccount, last_session


class FeedMismatchError(InputError):
    """The market feed does not fit the training data or the account's recorded history."""


_FEED = "deployment.market_feed"  # the catalog entry the feed checks name


def marks_frame(equity_log: list[dict[str, Any]]) -> pd.DataFrame:
    """A one-asset account's committed equity marks as a table indexed by bar (its open, close,
    equity, cash and position)."""
    if not equity_log:
        return pd.DataFrame(
            columns=["open", "close", "equity", "position", "cash"], index=pd.DatetimeIndex([], name="bar")
        )

    def first(key: str) -> np.ndarray:
        return np.array([float(m[key][0]) for m in equity_log])

    cents = {
        k: np.array([m[f"{k}_cents"] for m in equity_log], dtype=np.int64) / 100.0 for k in ("equity", "cash")
    }
    return pd.DataFrame(
        {"open": first("opens"), "close": first("closes"), **cents, "position": first("weights")},
        index=pd.DatetimeIndex(pd.to_datetime([m["bar"] for m in equity_log]), name="bar"),
    )


def buy_and_hold_marks(
    marks: pd.DataFrame, initial_capital: float, environment: Mapping[str, Any], granularity: str = "whole"
) -> pd.Series:
    """Buy-and-hold equity on the account's bars, with the same capital, costs and share granularity.

    Not new math: the account's own :class:`~.account.PaperAccount` runs an in-memory account
    whose decision is the evaluation's ``buy_and_hold_targets`` (always 1.0), on the Open/Close
    the account recorded in ``equity.jsonl``, with no risk stops: decided at the first bar's
    close and filled at the next bar, exactly like the paper account's first order.
    """
    if marks.empty:
        return pd.Series(dtype=float, name="buy_and_hold")
    prices = pd.DataFrame(
        {"Open": marks["open"].to_numpy(), "Close": marks["close"].to_numpy()}, index=marks.index
    )
    targets = buy_and_hold_targets(prices["Close"].to_numpy())
    staged = StagedAccount("buy_and_hold (in memory)", None)
    paper = PaperAccount.instrument(
        staged,
        initial_capital=initial_capital,
        costs=CostModel.from_environment(environment),
        limits=RiskLimits(max_position_fraction=1.0),
        granularity=granularity,
    )
    position = {bar: float(t) for bar, t in zip(prices.index, targets)}
    paper.run(prices, lambda history, _state: position[history.index[-1]])
    equity = [
        r["equity"] if granularity == "fractional" else r["equity_cents"] / 100.0
        for r in staged.records["equity"]
    ]
    return pd.Series(equity, index=marks.index, name="buy_and_hold")


def check_feed_matches_training(feed: pd.DataFrame, train_table: pd.DataFrame) -> None:
    """The feed's columns (the training table's non-feature columns) and its median bar spacing
    (within a factor 1.5) must be the training data's."""
    train_cols = sorted(c for c in train_table.columns if not str(c).startswith("feat_"))
    feed_cols = sorted(map(str, feed.columns))
    if feed_cols != train_cols:
        raise FeedMismatchError(
            f"{_FEED}: columns {feed_cols} differ from the training data's price columns "
            f"{train_cols} (model_input_train). Feed the same kind of bars the model was trained "
            "on (same source and deployment.feed settings as data_ingestion); nothing was traded."
        )
    if len(feed) < 2 or len(train_table) < 2:
        return
    feed_step = pd.Series(feed.index).diff().median()
    train_step = pd.Series(train_table.index).diff().median()
    ratio = feed_step / train_step
    if not (1 / 1.5 <= ratio <= 1.5):
        raise FeedMismatchError(
            f"{_FEED}: median bar spacing {feed_step} differs from the training data's "
            f"{train_step} (model_input_train): the feed has another frequency than the model "
            "was trained on. Feed bars of the training frequency; nothing was traded."
        )


def check_feed_against_account(feed: pd.DataFrame, equity_log: list[dict[str, Any]], account: str) -> None:
    """The feed may not rewrite or lose history, nor be stale: every bar the account processed
    inside the feed's date range must be in the feed with the same Open and Close (relative
    tolerance 1e-9), and the feed may not end before the account's last bar."""
    marks = marks_frame(equity_log)
    if marks.empty or feed.empty:
        return
    if feed.index[-1] < marks.index[-1]:
        raise FeedMismatchError(
            f"{_FEED}: the feed ends at {feed.index[-1].date()}, but the paper account {account} "
            f"already processed bars up to {marks.index[-1].date()} (equity.jsonl): the feed is stale "
            "(an older copy of the file?). Point deployment.market_feed at the current feed "
            "(--params deployment.feed.filepath=...); nothing was traded and the account is unchanged."
        )
    inside = marks[(marks.index >= feed.index[0]) & (marks.index <= feed.index[-1])]
    missing = inside.index.difference(feed.index)
    if len(missing):
        raise FeedMismatchError(
            f"{_FEED}: bar {missing[0].date()} was already processed by the paper account "
            f"{account} but is missing from the feed ({len(missing)} such bar(s)). The feed lost "
            "history; restore the full feed. Nothing was traded and the account is unchanged."
        )
    got = feed.loc[inside.index, ["Open", "Close"]].to_numpy(dtype=float)
    want = inside[["open", "close"]].to_numpy(dtype=float)
    bad = ~np.isclose(got, want, rtol=1e-9, atol=0.0)
    if bad.any():
        row = int(np.flatnonzero(bad.any(axis=1))[0])
        j = int(np.flatnonzero(bad[row])[0])
        raise FeedMismatchError(
            f"{_FEED}: bar {inside.index[row].date()} {['Open', 'Close'][j]}={got[row, j]!r} differs "
            f"from the {want[row, j]!r} the paper account {account} traded on "
            "(equity.jsonl): the feed rewrites bars older than the last processed one. Fix the "
            "feed (or, for a deliberate re-adjustment, start a new account folder); nothing was "
            "traded and the account is unchanged."
        )


ROLE_TITLES = {
    "production": "PRODUCTION account (trades only the promoted model)",
    "shadow": "SHADOW account (trades the newest registered champion, whatever its verdict)",
}


def _column_title(role: str, status: Mapping[str, Any], state: AccountState | None) -> str:
    title = ROLE_TITLES[role]
    if status.get("model"):
        verdict = status.get("model_verdict_passed")
        verdict_txt = "" if verdict is None else f", verdict {'passed' if verdict else 'FAILED'}"
        title += f"\nmodel {status.get('model')}\n(version {status.get('model_version')}{verdict_txt})"
    if state is not None and state.halted:
        title += " — HALTED"
    return title


def accounts_figure(
    reports: Mapping[str, tuple[AccountState | None, list[dict[str, Any]], pd.Series, Mapping[str, Any]]],
    status: Mapping[str, Any],
) -> Figure:
    """One figure, one labelled column per account (production, shadow): equity against
    buy-and-hold, position and P&L; a column that says why when an account has no bars."""
    fig = Figure(figsize=(15, 9), layout="constrained")
    FigureCanvasAgg(fig)
    fig.suptitle(
        "Paper accounts on the held-back bars (same feed, costs and capital; "
        "buy-and-hold over each account's own bars)",
        fontsize=12,
    )
    grid = fig.add_gridspec(3, 2, height_ratios=[3, 1, 2])
    for col, role in enumerate(("production", "shadow")):
        state, equity_log, buy_and_hold, st = reports[role]
        marks = marks_frame(equity_log)
        if state is None or marks.empty:
            ax = fig.add_subplot(grid[:, col])
            ax.axis("off")
            ax.set_title(_column_title(role, st, state), fontsize=10)
            ax.text(
                0.5,
                0.5,
                _no_account_text(role, st),
                ha="center",
                va="center",
                wrap=True,
                fontsize=10,
                transform=ax.transAxes,
            )
            continue
        eq = fig.add_subplot(grid[0, col])
        pos = fig.add_subplot(grid[1, col], sharex=eq)
        pnl = fig.add_subplot(grid[2, col], sharex=eq)
        capital = state.initial_capital_cents / 100.0
        eq.plot(marks.index, marks["equity"], label=f"{role} account", lw=1.3)
        eq.plot(
            buy_and_hold.index,
            buy_and_hold.to_numpy(),
            lw=1.1,
            ls="--",
            label="buy-and-hold (same bars, costs, capital)",
        )
        eq.set_title(_column_title(role, st, state), fontsize=10)
        eq.set_ylabel("equity")
        eq.legend(fontsize=8)
        eq.grid(True, alpha=0.3)
        pos.step(marks.index, marks["position"], where="post", lw=1.0)
        pos.set_ylabel("position\n(fraction of equity)")
        pos.grid(True, alpha=0.3)
        pnl.plot(marks.index, marks["equity"] - capital, label=f"{role} account P&L", lw=1.2)
        pnl.plot(
            buy_and_hold.index, buy_and_hold.to_numpy() - capital, label="buy-and-hold P&L", lw=1.0, ls="--"
        )
        pnl.axhline(0.0, color="grey", lw=0.8)
        pnl.set_ylabel("P&L")
        pnl.legend(fontsize=8)
        pnl.grid(True, alpha=0.3)
        eq.tick_params(labelbottom=False)
        pos.tick_params(labelbottom=False)
        for label in pnl.get_xticklabels():
            label.set_rotation(30)
    return fig


def _no_account_text(role: str, status: Mapping[str, Any]) -> str:
    kind = status.get("status")
    if kind == "no_production_model":
        why = (
            "No production account: no model is promoted.\nNothing was traded here; the shadow "
            "account shows how the newest champion traded.\n`kedro models list`, then "
            "`kedro models promote <id>`."
        )
    elif kind == "no_champion":
        why = "No shadow account: no champion is registered yet.\nRun `kedro run --pipelines full_cycle`."
    else:
        why = f"No {role} account bars yet: no feed bar on or after deployment.paper_start."
    return why


def report_status(
    state: AccountState | None,
    logs: Mapping[str, list[dict[str, Any]]],
    buy_and_hold: pd.Series,
    session_status: Mapping[str, Any],
) -> dict[str, Any]:
    """What this run did (``session_status``) plus the committed account, read from its state
    and logs alone: cash, position, equity, last bar, halted, model, its newest session
    (``last_session``: bars, trades and events of the newest run that traded, whichever run
    reports it) and buy-and-hold on the same bars."""
    out = dict(session_status)
    if state is None:
        out.update(account_exists=False, last_session=None)
        return out
    equity_log = logs.get("equity", [])
    bh = float(buy_and_hold.iloc[-1]) if len(buy_and_hold) else None
    out.update(
        account_exists=True,
        cash=state.cash,
        shares=state.shares[0],
        position=state.weights()[0],
        equity=state.equity,
        initial_capital=state.initial_capital_cents / 100.0,
        pnl=(state.equity_cents - state.initial_capital_cents) / 100.0,
        drawdown=state.drawdown,
        last_bar=state.last_bar,
        halted=state.halted,
        halt_reason=state.halt_reason,
        pending_target=None if state.pending_weights is None else state.pending_weights[0],
        active_model_id=state.active_model_id,
        bars_processed_total=state.bars_processed,
        trading_since=equity_log[0]["bar"] if equity_log else None,
        last_session=last_session(state, logs),
        buy_and_hold_equity=bh,
        buy_and_hold_pnl=None if bh is None else round(bh - state.initial_capital_cents / 100.0, 2),
    )
    return out


def _summary_line(role: str, st: Mapping[str, Any]) -> str:
    if st.get("status") == "no_production_model":
        return "production: no model is promoted, nothing traded (see production.message)."
    if st.get("status") == "no_champion":
        return "shadow: no champion registered yet, nothing traded."
    if st.get("status") == "other_universe":
        return f"{role}: {st.get('model')} trades another universe, nothing traded (see {role}.message)."
    verdict = st.get("model_verdict_passed")
    who = st.get("model") + ("" if verdict is None else f" (verdict {'passed' if verdict else 'FAILED'})")
    if not st.get("account_exists"):
        return f"{role}: {who}: no bar traded yet."
    bh = st.get("buy_and_hold_equity")
    vs = "" if bh is None else f" vs buy-and-hold {bh:,.2f}"
    halted = " HALTED." if st.get("halted") else ""
    session = st.get("last_session")
    last = (
        ""
        if not session
        else f" Last session {session['first_bar'][:10]} .. {str(session['last_bar'])[:10]}: "
        f"{session['bars']} bar(s), {session['trades']} trade(s)."
    )
    return (
        f"{role}: {who} traded {st['bars_processed_total']} bar(s) {st.get('trading_since', '')[:10]}"
        f" .. {str(st.get('last_bar'))[:10]}: equity {st['equity']:,.2f}{vs} "
        f"(capital {st['initial_capital']:,.2f}).{last} This run: {st.get('bars_processed_this_run', 0)} "
        f"new bar(s).{halted}"
    )


def paper_status(
    session_status: Mapping[str, Any], accounts: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any]:
    """``paper_status.json``: mode and registry once, a one-line summary per account, and each
    account's report under ``production`` / ``shadow`` (paths relative to the project root)."""
    first = next(iter(session_status.values()))
    out: dict[str, Any] = {"mode": first.get("mode"), "registry": first.get("registry")}
    out["summary"] = [_summary_line(role, accounts[role]) for role in ("production", "shadow")]
    for role in ("production", "shadow"):
        out[role] = {k: v for k, v in accounts[role].items() if k not in ("mode", "registry")}
    return out
