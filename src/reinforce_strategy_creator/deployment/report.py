"""Account report of a paper deployment: equity against buy-and-hold, positions, P&L, checks.

What:

* :func:`buy_and_hold_marks` — buy-and-hold over exactly the bars the account processed,
  with the same capital and costs. It is not new math: the account's own
  :class:`~.broker.PaperBroker` (fills through ``env.fill_and_costs``) runs an in-memory
  account whose decision is the evaluation's ``buy_and_hold_targets`` (always 1.0), on the
  Open/Close the account recorded in ``equity.jsonl``, with no risk stops. Decided at the
  first bar's close, filled at the next open, exactly like the paper account's first order.
* :func:`account_report_figure` — one PNG: equity vs buy-and-hold, position (fraction of
  equity) and cumulative P&L of both. With no account (no production model yet) it is a
  figure that says so, so a scheduled report never crashes.
* :func:`check_feed_against_account` — the feed must agree with the bars the account already
  processed (same Open/Close for every recorded bar inside the feed's date range, none
  missing): a feed that rewrites history is refused, nothing is traded.
* :func:`check_feed_matches_training` — the feed's columns and bar frequency (median spacing)
  must match the training table's.

Why: the report must be honest (benchmark on the same bars, costs and capital as the
account) and bad feeds must fail loudly before any bar is traded.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..evaluation.benchmarks import buy_and_hold_targets
from .broker import CostModel, PaperBroker, RiskLimits
from .state import AccountState, StagedAccount


class FeedMismatchError(ValueError):
    """The market feed does not fit the training data or the account's recorded history."""


def marks_frame(equity_log: list[dict[str, Any]]) -> pd.DataFrame:
    """The committed equity marks as a table indexed by bar (open, close, equity, position)."""
    if not equity_log:
        return pd.DataFrame(columns=["open", "close", "equity", "position", "cash"],
                            index=pd.DatetimeIndex([], name="bar"))
    df = pd.DataFrame(equity_log)
    out = pd.DataFrame({
        "open": df["open"].astype(float).to_numpy(),
        "close": df["close"].astype(float).to_numpy(),
        "equity": df["equity_cents"].to_numpy(dtype=np.int64) / 100.0,
        "cash": df["cash_cents"].to_numpy(dtype=np.int64) / 100.0,
        "position": df["position"].astype(float).to_numpy(),
    }, index=pd.DatetimeIndex(pd.to_datetime(df["bar"]), name="bar"))
    return out


def buy_and_hold_marks(marks: pd.DataFrame, initial_capital: float,
                       environment: Mapping[str, Any]) -> pd.Series:
    """Buy-and-hold equity on the account's bars, same capital and costs (see module doc)."""
    if marks.empty:
        return pd.Series(dtype=float, name="buy_and_hold")
    prices = pd.DataFrame({"Open": marks["open"].to_numpy(), "Close": marks["close"].to_numpy()},
                          index=marks.index)
    targets = buy_and_hold_targets(prices["Close"].to_numpy())
    staged = StagedAccount("buy_and_hold (in memory)", None)
    broker = PaperBroker(staged, initial_capital=initial_capital,
                         costs=CostModel.from_environment(environment),
                         limits=RiskLimits(max_position_fraction=1.0))
    position = {bar: float(t) for bar, t in zip(prices.index, targets)}
    broker.run(prices, lambda history, _state: position[history.index[-1]])
    equity = [r["equity_cents"] / 100.0 for r in staged.records["equity"]]
    return pd.Series(equity, index=marks.index, name="buy_and_hold")


def check_feed_matches_training(feed: pd.DataFrame, train_table: pd.DataFrame,
                                source: str = "deployment.market_feed") -> None:
    """Columns (non-feature columns of the training table) and median bar spacing must match."""
    train_cols = sorted(c for c in train_table.columns if not str(c).startswith("feat_"))
    feed_cols = sorted(map(str, feed.columns))
    if feed_cols != train_cols:
        raise FeedMismatchError(
            f"{source}: columns {feed_cols} differ from the training data's price columns "
            f"{train_cols} (model_input_train). Feed the same kind of bars the model was trained "
            "on (same source and deployment.feed settings as data_ingestion); nothing was traded.")
    if len(feed) < 2 or len(train_table) < 2:
        return
    feed_step = pd.Series(feed.index).diff().median()
    train_step = pd.Series(train_table.index).diff().median()
    ratio = feed_step / train_step
    if not (1 / 1.5 <= ratio <= 1.5):
        raise FeedMismatchError(
            f"{source}: median bar spacing {feed_step} differs from the training data's "
            f"{train_step} (model_input_train): the feed has another frequency than the model "
            "was trained on. Feed bars of the training frequency; nothing was traded.")


def check_feed_against_account(feed: pd.DataFrame, equity_log: list[dict[str, Any]],
                               account: str, source: str = "deployment.market_feed") -> None:
    """Every bar the account processed inside the feed's date range must be in the feed with
    the same Open and Close (relative tolerance 1e-9): the feed may not rewrite history."""
    marks = marks_frame(equity_log)
    if marks.empty or feed.empty:
        return
    inside = marks[(marks.index >= feed.index[0]) & (marks.index <= feed.index[-1])]
    missing = inside.index.difference(feed.index)
    if len(missing):
        raise FeedMismatchError(
            f"{source}: bar {missing[0].date()} was already processed by the paper account "
            f"{account} but is missing from the feed ({len(missing)} such bar(s)). The feed lost "
            "history; restore the full feed. Nothing was traded and the account is unchanged.")
    got = feed.loc[inside.index, ["Open", "Close"]].to_numpy(dtype=float)
    want = inside[["open", "close"]].to_numpy(dtype=float)
    bad = ~np.isclose(got, want, rtol=1e-9, atol=0.0)
    if bad.any():
        row = int(np.flatnonzero(bad.any(axis=1))[0])
        j = int(np.flatnonzero(bad[row])[0])
        raise FeedMismatchError(
            f"{source}: bar {inside.index[row].date()} {['Open', 'Close'][j]}={got[row, j]!r} differs "
            f"from the {want[row, j]!r} the paper account {account} traded on "
            "(equity.jsonl): the feed rewrites bars older than the last processed one. Fix the "
            "feed (or, for a deliberate re-adjustment, start a new account folder); nothing was "
            "traded and the account is unchanged.")


def account_report_figure(state: AccountState | None, equity_log: list[dict[str, Any]],
                          buy_and_hold: pd.Series, status: Mapping[str, Any]) -> Figure:
    """Equity vs buy-and-hold, position and P&L; a message figure when there is no account."""
    fig = Figure(figsize=(10, 8), layout="constrained")
    FigureCanvasAgg(fig)
    marks = marks_frame(equity_log)
    if state is None or marks.empty:
        ax = fig.add_subplot(1, 1, 1)
        ax.axis("off")
        why = ("no production model in the registry" if status.get("status") == "no_production_model"
               else "no bar processed yet")
        ax.text(0.5, 0.5, f"No paper account to report: {why}.\n{status.get('message') or ''}",
                ha="center", va="center", wrap=True, fontsize=11)
        return fig
    eq, pos, pnl = fig.subplots(3, 1, sharex=True, height_ratios=[3, 1, 2])
    capital = state.initial_capital_cents / 100.0
    eq.plot(marks.index, marks["equity"], label="paper account", lw=1.3)
    eq.plot(buy_and_hold.index, buy_and_hold.to_numpy(), label="buy-and-hold (same bars, costs, capital)",
            lw=1.1, ls="--")
    halted = " — HALTED" if state.halted else ""
    eq.set_title(f"Paper account, model {status.get('production_model')} "
                 f"(version {status.get('production_model_version')}){halted}")
    eq.set_ylabel("equity")
    eq.legend(fontsize=8)
    eq.grid(True, alpha=0.3)
    pos.step(marks.index, marks["position"], where="post", lw=1.0)
    pos.set_ylabel("position\n(fraction of equity)")
    pos.grid(True, alpha=0.3)
    pnl.plot(marks.index, marks["equity"] - capital, label="paper account P&L", lw=1.2)
    pnl.plot(buy_and_hold.index, buy_and_hold.to_numpy() - capital, label="buy-and-hold P&L", lw=1.0, ls="--")
    pnl.axhline(0.0, color="grey", lw=0.8)
    pnl.set_ylabel("P&L")
    pnl.legend(fontsize=8)
    pnl.grid(True, alpha=0.3)
    return fig


def report_status(state: AccountState | None, equity_log: list[dict[str, Any]],
                  buy_and_hold: pd.Series, session_status: Mapping[str, Any]) -> dict[str, Any]:
    """The session status plus the committed account: cash, position, equity, last bar,
    halted, production model version and buy-and-hold on the same bars."""
    out = dict(session_status)
    if state is None:
        out.update(account_exists=False)
        return out
    bh = float(buy_and_hold.iloc[-1]) if len(buy_and_hold) else None
    out.update(
        account_exists=True,
        cash=state.cash, shares=state.shares, position=state.position, equity=state.equity,
        initial_capital=state.initial_capital_cents / 100.0,
        pnl=(state.equity_cents - state.initial_capital_cents) / 100.0,
        drawdown=state.drawdown, last_bar=state.last_bar, halted=state.halted,
        halt_reason=state.halt_reason, pending_target=state.pending_target,
        active_model_id=state.active_model_id, bars_processed_total=state.bars_processed,
        buy_and_hold_equity=bh,
        buy_and_hold_pnl=None if bh is None else round(bh - state.initial_capital_cents / 100.0, 2),
    )
    return out
