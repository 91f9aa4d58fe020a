"""An independent, minimal ledger simulator for the evaluation tests.

It follows the env timing of docs/contracts.md (decision at bar t, fill at open[t+1] with
slippage against the trader and commission on traded notional, mark at close[t+1]) so the
metrics can be tested on realistic per-bar frames before the real env exists.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def simulate_ledger(
    open_, close, targets, capital=10_000.0, commission_bps=10.0, slippage_bps=5.0, dates=None
) -> pd.DataFrame:
    """Per-bar frame (date, position, shares, cash, equity, fill_price, cost, reward) like one
    lane of env.replay: a pre-trade start row at bar 0 (equity = capital), then one row per
    step t = 0 .. T-2: target[t] is filled at open[t+1] and marked at close[t+1]. The account
    trades only when the target changes; fill_price is NaN on rows without a trade; cost =
    commission + slippage (the slippage is inside the fill price, the commission is paid
    from cash)."""
    open_, close, targets = (np.asarray(a, dtype=float) for a in (open_, close, targets))
    T = close.size
    if dates is None:
        dates = pd.bdate_range("2020-01-01", periods=T)
    shares, cash, equity_prev = 0.0, float(capital), float(capital)
    held = 0.0
    rows = [
        dict(
            date=dates[0],
            position=0.0,
            shares=0.0,
            cash=cash,
            equity=cash,
            fill_price=np.nan,
            cost=0.0,
            reward=0.0,
        )
    ]
    for t in range(T - 1):
        px = open_[t + 1]
        equity_at_open = cash + shares * px
        want = targets[t] * equity_at_open / px if targets[t] != held else shares
        delta = want - shares
        held = targets[t]
        if delta != 0:
            fill = px * (1 + np.sign(delta) * slippage_bps / 1e4)
            slip_cost = abs(delta) * abs(fill - px)
            commission = abs(delta) * fill * commission_bps / 1e4
            cash -= delta * fill + commission
            shares = want
            cost = commission + slip_cost
        else:
            fill, cost = np.nan, 0.0
        equity = cash + shares * close[t + 1]
        rows.append(
            dict(
                date=dates[t + 1],
                position=targets[t],
                shares=shares,
                cash=cash,
                equity=equity,
                fill_price=fill,
                cost=cost,
                reward=np.log(equity / equity_prev),
            )
        )
        equity_prev = equity
    return pd.DataFrame(rows)
