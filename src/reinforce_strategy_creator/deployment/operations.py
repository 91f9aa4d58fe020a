"""What is done to a paper account outside a trading run, and the mode guard before one.

What: :func:`resolve_mode` (only ``paper_trading`` runs; no live broker adapter ships),
:func:`reconcile` (the committed logs replay to the committed state) and
:func:`clear_halt` (who, when and why a halt was cleared).

Why a module of its own: ``kedro paper status`` / ``clear-halt`` and ``kedro models`` need these
and nothing of the paper account's bar processing, so they import no pandas or torch and answer at once.
The arithmetic is the environment's scalar kernel (``env.execution``), the paper account's own.
"""

from __future__ import annotations

import dataclasses
import getpass
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from ..env import execution as ex
from ..errors import InputError
from .state import AccountState, AccountStateError, AccountStore, market_value_cents

logger = logging.getLogger(__name__)


def utc_now() -> str:
    """Now, as the registry and the account events record it (UTC, ISO, seconds)."""
    return datetime.now(UTC).isoformat(timespec="seconds")


# ---------------------------------------------------------------------------------------
# Mode guard
# ---------------------------------------------------------------------------------------
class LiveTradingRefused(InputError):
    """``deployment.mode: live_trading`` was requested but cannot be honoured."""


LIVE_ADAPTERS: dict[str, Callable[..., Any]] = {}
"""Registered live broker adapters. None ships with this project: live trading is refused."""

LEGACY_LIVE_KEYS = ("api_endpoint", "api_key", "api_secret")


def resolve_mode(params: Mapping[str, Any], credentials: Mapping[str, Any] | None = None) -> str:
    """Validate ``deployment.mode`` and return it; only ``paper_trading`` can run.

    ``live_trading`` needs both a registered adapter (``deployment.account_adapter``) and a
    ``conf/local/credentials.yml`` entry for it. No adapter ships, so it is always refused.
    Legacy ``api_endpoint``/``api_key`` settings are ignored in paper mode; their *names* are
    logged, never their values.
    """
    mode = params.get("mode", "paper_trading")
    if mode == "paper_trading":
        legacy = [k for k in LEGACY_LIVE_KEYS if k in params]
        if legacy:
            logger.warning(
                "deployment.%s ignored in paper_trading mode (values not shown).",
                ", deployment.".join(legacy),
            )
        return mode
    if mode != "live_trading":
        raise LiveTradingRefused(f"deployment.mode must be 'paper_trading' or 'live_trading', got {mode!r}.")
    adapter = params.get("broker_adapter")
    if not adapter or adapter not in LIVE_ADAPTERS:
        raise LiveTradingRefused(
            "deployment.mode is 'live_trading' but no live broker adapter is available "
            f"(deployment.account_adapter={adapter!r}; registered adapters: "
            f"{sorted(LIVE_ADAPTERS) or 'none ship with this project'}). Set "
            "deployment.mode: paper_trading, or implement and register an adapter."
        )
    if not credentials or adapter not in credentials:
        raise LiveTradingRefused(
            f"deployment.mode is 'live_trading' but conf/local/credentials.yml has no "
            f"'{adapter}' entry. Add it there (never in conf/base) or use paper_trading."
        )
    return mode  # pragma: no cover - unreachable until an adapter is registered


# ---------------------------------------------------------------------------------------
# Reconciliation and operator actions
# ---------------------------------------------------------------------------------------
def reconcile(store: AccountStore) -> AccountState:
    """Check that the committed logs replay to the committed state; raise if not: every mark
    replays from the trade log (the kernel's operations in the kernel's order) and has
    cash + sum(shares x close) = equity to the cent, one decision and one mark per processed bar."""
    state = store.load()
    trades = store.read_log("trades", state)
    orders = store.read_log("orders", state)
    marks = store.read_log("equity", state)
    idx = {t: j for j, t in enumerate(state.tickers)}
    problems = []
    by_bar: dict[str, list[dict]] = {}
    for t in trades:
        by_bar.setdefault(t["bar"], []).append(t)
    n = len(state.tickers)
    if state.fractional:
        cash, shares = float(state.exact_initial_cash), [0.0] * n
    else:
        cash, shares = state.initial_capital_cents, [0] * n
    for m in marks:
        bar_trades = by_bar.pop(m["bar"], [])
        for t in bar_trades:
            shares[idx[t["ticker"]]] += t["shares"]
        cash, ok = _replay_mark(state.fractional, cash, m, bar_trades)
        if not ok or list(shares) != list(m["shares"]):
            problems.append(
                f"the mark of {m['bar']} does not replay from the trade log or is not cash + shares x close"
            )
            break
    if by_bar:
        problems.append(f"trades on bars without a mark: {sorted(by_bar)[:3]}")
    final_cash = state.exact_cash if state.fractional else state.cash_cents
    if not problems and (cash, list(shares)) != (final_cash, list(state.shares)):
        problems.append(
            f"the logs replay to cash {cash} / shares {shares}, the state has {final_cash} / "
            f"{list(state.shares)}"
        )
    bars = [o["bar"] for o in orders]
    if len(bars) != len(set(bars)) or len(bars) != state.bars_processed or len(marks) != state.bars_processed:
        problems.append(
            f"{len(bars)} decisions ({len(bars) - len(set(bars))} duplicated) and {len(marks)} marks for "
            f"{state.bars_processed} processed bars"
        )
    if bars and bars[-1] != state.last_bar:
        problems.append(f"the last decision {bars[-1]} is not the last processed bar {state.last_bar}")
    last = (marks[-1]["cash_cents"], marks[-1]["equity_cents"]) if marks else None
    if last is not None and last != (state.cash_cents, state.equity_cents):
        problems.append("the last equity mark differs from the state")
    if problems:
        raise AccountStateError(
            f"{store.folder}: the account does not reconcile: {'; '.join(problems)}. Stop "
            "trading and restore the folder from backup."
        )
    return state


def _replay_mark(fractional: bool, cash, m: dict[str, Any], bar_trades: list[dict]) -> tuple[Any, bool]:
    """Cash after one bar replayed from its trades and mark (the kernel's operations in the
    kernel's order for fractional accounts, cents for whole ones), and whether the mark agrees
    with it and has cash + sum(shares x close) = equity to the cent."""
    if fractional:
        if "paid" in m:
            paid, commission = m["paid"], m["commission"]
        else:  # a one-asset mark written before the one log layout: at most one trade
            paid = sum(t["shares"] * t["fill_price"] for t in bar_trades)
            commission = sum(t["commission"] for t in bar_trades)
        cash = ex.cash_after_fill(cash, paid, 1.0, commission)
        cash = ex.cash_after_borrow(cash, m["borrow"])
        value = sum(s * (c or 0.0) for s, c in zip(m["shares"], m["closes"], strict=True))
        ok = (
            cash == m["cash"]
            and abs(m["cash"] + value - m["equity"]) < 0.005
            and m["equity_cents"] == round(m["equity"] * 100)
        )
        return cash, ok
    cash -= sum(t["notional_cents"] + t["commission_cents"] for t in bar_trades) + m["borrow_cents"]
    mv = market_value_cents(m["shares"], m["closes"])
    return cash, cash == m["cash_cents"] and m["cash_cents"] + mv == m["equity_cents"]


def current_actor() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user database in some containers
        return "unknown"


def clear_halt(store: AccountStore, reason: str, actor: str | None = None) -> AccountState:
    """Clear a kill-switch or drift halt, recording who, when and why.

    The drawdown peak is reset to the current equity, otherwise the kill switch would fire
    again on the very next bar.
    """
    if not reason or not reason.strip():
        raise AccountStateError("clear-halt needs a non-empty --reason saying why it is safe.")
    with store.locked():
        state = store.load()
        if not state.halted:
            raise AccountStateError(f"{store.folder}: account is not halted; nothing to clear.")
        event = {
            "bar": state.last_bar,
            "kind": "clear_halt",
            "at": utc_now(),
            "by": actor or current_actor(),
            "reason": reason.strip(),
            "cleared": state.halt_reason,
            "peak_reset_to_cents": state.equity_cents,
        }
        new = dataclasses.replace(state, halted=False, halt_reason=None, peak_equity_cents=state.equity_cents)
        return store.commit(new, {"events": [event]})
