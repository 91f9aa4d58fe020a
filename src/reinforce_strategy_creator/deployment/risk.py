"""A paper account's bar around its fills, written once for N >= 1 assets: model switch, day roll,
risk checks at the close (drawdown kill switch, day-loss stop, drift halt) and the limits on a
decision's target weights.

What: functions over an account's :class:`~.state.AccountState` that return the new state and
the events they record; :class:`RiskLimits` are the limits. The paper account calls them in the
same order at any N.

Why: a halt, a stop or a clipped target must mean the same thing for one asset and for twenty;
each check may only add a restriction. Limits and halts: docs/paper_trading.md ("Risk limits").
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Annotated, Any, TypeVar

import numpy as np
from pydantic import Field

from ..params.base import Number
from ..params.deployment import RiskParams

S = TypeVar("S")


class RiskLimits(RiskParams):
    """Risk limits given in code (library use, tests): no limit unless one is asked for. The
    ``deployment.risk`` parameter block (:class:`~..params.deployment.RiskParams`) has the same
    fields and checks, with the project's default limits. ``max_position_fraction`` caps each
    asset's target weight in absolute value."""

    max_position_fraction: Annotated[Number, Field(ge=0)] | None = None
    max_daily_loss: Annotated[Number, Field(gt=0, lt=1)] | None = None
    max_drawdown: Annotated[Number, Field(gt=0, lt=1)] | None = None


def show(at: str | None) -> str:
    """A bar's time stamp for messages: the date alone for a daily bar (midnight)."""
    return str(at).removesuffix("T00:00:00")


def switch_model(s: S, at: str, model_id: str | None) -> tuple[S, list[dict[str, Any]]]:
    """Another model takes over: a ``model_switch`` event; the account (cash, shares, history)
    continues."""
    if model_id is None or model_id == s.active_model_id:
        return s, []
    event = {"bar": at, "kind": "model_switch", "from": s.active_model_id, "to": model_id}
    return dataclasses.replace(s, active_model_id=model_id), [event]


def roll_day(s: S, day: str) -> S:
    """A bar on a new calendar date resets the day-loss stop and the day's start equity."""
    if day == s.day:
        return s
    return dataclasses.replace(s, day=day, day_start_equity_cents=s.equity_cents, day_loss_stop=False)


def risk_checks(
    s: S,
    at: str,
    day: str,
    limits: RiskLimits,
    alerts: Sequence[dict[str, Any]] = (),
    halt_on_drift: bool = False,
) -> tuple[S, list[dict[str, Any]]]:
    """The checks at the close, in this order: the drawdown kill switch (drawdown beyond
    ``max_drawdown`` halts the account: flat from the next bar until a person clears it), the
    day-loss stop (a loss of ``max_daily_loss`` since the day's start: no new risk for the rest
    of the day), then the drift monitor's ``alerts`` (recorded; with ``halt_on_drift`` an alert
    halts the account). Returns the state and the events they record."""
    events: list[dict[str, Any]] = []
    limit = limits.max_drawdown
    if limit is not None and not s.halted and s.drawdown <= -limit:
        reason = (
            f"max drawdown kill switch: drawdown {s.drawdown:.4%} at {show(at)} breached risk limit "
            f"max_drawdown={limit}; flat until a person clears the halt"
        )
        s = dataclasses.replace(s, halted=True, halt_reason=reason)
        events.append({"bar": at, "kind": "halt", "cause": "max_drawdown", "reason": reason})
    limit, start = limits.max_daily_loss, s.day_start_equity_cents
    if limit is not None and not s.day_loss_stop and start > 0 and s.equity_cents <= start * (1 - limit):
        loss = s.equity_cents / start - 1
        reason = f"day loss {loss:.4%} breached risk limit max_daily_loss={limit}"
        s = dataclasses.replace(s, day_loss_stop=True)
        events.append({"bar": at, "kind": "day_loss_stop", "day": day, "loss": loss, "reason": reason})
    events += [{"bar": at, "kind": "drift_alert", **alert} for alert in alerts]
    if alerts and halt_on_drift and not s.halted:
        feats = sorted({str(a.get("feature")) for a in alerts})
        reason = f"drift alert on {feats} at {show(at)}; flat until a person clears it"
        s = dataclasses.replace(s, halted=True, halt_reason=reason)
        events.append({"bar": at, "kind": "halt", "cause": "drift", "reason": reason})
    return s, events


def limit_weights(
    weights: Sequence[float], current: Sequence[float], limits: RiskLimits, day_loss_stop: bool
) -> tuple[np.ndarray, str]:
    """The target weights within the limits, with the reason: each clipped to
    ``±max_position_fraction``; under the day-loss stop no asset may open a position, flip one or
    grow beyond its ``current`` weight."""
    w, why = np.asarray(weights, dtype=np.float64), "policy"
    cap = limits.max_position_fraction
    if cap is not None and (np.abs(w) > cap).any():
        w, why = np.clip(w, -cap, cap), f"clipped to max_position_fraction={cap}"
    if day_loss_stop:
        cur = np.asarray(current, dtype=np.float64)
        limited = np.where(w * cur <= 0, 0.0, np.sign(w) * np.minimum(np.abs(w), np.abs(cur)))
        if not np.array_equal(limited, w):
            w, why = limited, "day-loss stop: no new risk"
    return w, why
