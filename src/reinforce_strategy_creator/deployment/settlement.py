"""The settlement of a paper account's bar over its N assets (N >= 1), written once, on the kernel.

What: :func:`settle_bar` books one bar: the fills of the traded shares of each asset (already
sized) at their reference prices, then the mark at the closes (a short pays borrow; equity is
the cash plus :func:`~.state.market_value_cents`). The paper account
(:class:`~.account.PaperAccount`) calls it for every bar, whatever its front end and N.

Why: the amounts are the execution kernel's (``env.execution``): the fill price and costs of each
asset are :func:`~..env.execution.fill_price_and_costs`, and the cash, holdings, borrow and
equity of the account are :func:`~..env.execution.settle`, the settlement order every
simulation mode uses. One asset is settled on the kernel's scalar back end (Python floats, as
the one-account environment: no tensor per bar); N assets on (1, N) float64 tensors with the
asset axis summed once per account, as the N-asset core settles. So a fractional paper
ledger is the backtest's bit for bit at any N. Granularity (docs/paper_trading.md, "Share
granularity"): a ``fractional`` account books the float64 dollars as they are and derives its
cents by rounding; a ``whole`` account rounds each trade's notional and commission and each
asset's borrow (the kernel's :func:`~..env.execution.mark`) to the cent once and books integer
cents, and an order that only buys within the equity (every target weight >= 0, together <= 1)
never overdraws: one share less of the largest purchase until the cents fit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..env import execution as ex
from ..env.ops import SCALAR
from ..env.torch_ops import TorchOps
from .state import market_value_cents

XP = TorchOps("cpu")


@dataclass(frozen=True)
class Book:
    """An account's money and holdings as the settlement books them: ``cash_cents`` (integer
    cents; a fractional account's rounding of ``exact_cash``), ``exact_cash`` (float64 dollars,
    fractional accounts only) and ``shares`` (one per asset)."""

    granularity: str
    cash_cents: int
    exact_cash: float | None
    shares: tuple[float, ...]

    @property
    def fractional(self) -> bool:
        return self.granularity == "fractional"


def _costs(rules: ex.ExecutionRules, ref: Sequence[float], delta: Sequence[float]):
    """Per asset, the kernel's ``(fill, commission, slippage)`` lists (element-wise, so the scalar
    back end gives the tensor back end's numbers)."""
    out = [ex.fill_price_and_costs(SCALAR, rules, r, d) for r, d in zip(ref, delta, strict=True)]
    return [o[0] for o in out], [o[1] for o in out], [o[2] for o in out]


def _no_overdraft(book: Book, rules, ref, delta, fill, commission, slippage):
    """Whole shares, an order that only buys within the equity: while the cent-rounded payments
    would overdraw the cash, buy one share less of the largest purchase (the kernel re-prices)."""

    def spent(d, f, comm) -> int:
        return sum(round(a * b * 100) for a, b in zip(d, f, strict=True)) + sum(round(x * 100) for x in comm)

    delta = list(delta)
    while book.cash_cents - spent(delta, fill, commission) < 0 and any(x > 0 for x in delta):
        j = max(range(len(delta)), key=lambda k: delta[k] * fill[k] if delta[k] > 0 else -1.0)
        delta[j] -= 1.0
        fill, commission, slippage = _costs(rules, ref, delta)
    return delta, fill, commission, slippage


def _kernel_settle(rules, cash: float, shares, delta, fill, commission, close):
    """:func:`~..env.execution.settle` of one account: ``(shares, borrow, cash, equity)`` as
    Python floats, on the scalar back end at N = 1 and on (1, N) tensors otherwise."""
    if len(shares) == 1:
        sh, _, borrow, cash, equity, _ = ex.settle(
            SCALAR, rules, cash, float(shares[0]), delta[0], fill[0], commission[0], close[0]
        )
        return [sh], float(borrow), cash, equity

    def row(v) -> torch.Tensor:
        return torch.tensor([[float(x) for x in v]], dtype=torch.float64)

    cash_t = torch.tensor([cash], dtype=torch.float64)
    sh, _, borrow, cash_t, equity, _ = ex.settle(
        XP, rules, cash_t, row(shares), row(delta), row(fill), row(commission), row(close)
    )
    return sh[0].tolist(), float(borrow[0]), float(cash_t[0]), float(equity[0])


def _total(values: list[float]) -> float:
    """The account's sum of per-asset amounts, summed as :func:`~..env.execution.settle` sums the
    asset axis (nothing to sum at N = 1)."""
    if len(values) == 1:
        return values[0]
    return float(torch.tensor([values], dtype=torch.float64).sum(-1)[0])


def _borrow_per_asset(rules: ex.ExecutionRules, shares, close) -> list[float]:
    """Each asset's borrow at the mark (the kernel's :func:`~..env.execution.mark`)."""
    if rules.borrow == 0.0:
        return [0.0] * len(shares)
    return [ex.mark(SCALAR, rules, 0.0, float(s), c)[0] for s, c in zip(shares, close, strict=True)]


def settle_bar(
    book: Book,
    rules: ex.ExecutionRules,
    ref: Sequence[float],
    delta: Sequence[float],
    close: Sequence[float],
    *,
    long_order: bool = False,
) -> tuple[Book, list[dict[str, Any]], dict[str, Any], dict[str, Any]]:
    """Settle one bar: fill the traded shares ``delta`` (one per asset, > 0 buys; whole numbers
    for a whole account, as the kernel sizes them) against the reference prices ``ref`` with the
    kernel's fill prices and costs, then mark at ``close`` (one per asset; any positive
    placeholder where an asset is not listed and not held). ``long_order``: the order only buys
    within the equity, so a whole account takes one share less of its largest purchase until its
    cents do not overdraw.

    Returns ``(book, trades, totals, mark)``: the book after the bar; one record per traded asset
    (``asset``: its position; ``shares``, ``fill_price``, ``notional_cents``,
    ``commission_cents``, ``slippage_cents``; a fractional account adds the float64
    ``notional``, ``commission`` and ``slippage``); the fills' totals (``paid``, ``commission``,
    ``slippage``, ``traded_notional`` in dollars and their cents); the mark (``borrow`` and
    ``borrow_cents``, ``equity_cents``, ``market_value_cents``; a fractional account adds the
    float64 ``cash`` and ``equity``)."""
    ref, close, delta = [float(x) for x in ref], [float(x) for x in close], [float(x) for x in delta]
    traded = any(delta)
    fill, commission, slippage = _costs(rules, ref, delta) if traded else ([0.0] * len(delta),) * 3
    if traded and long_order and not book.fractional:
        delta, fill, commission, slippage = _no_overdraft(book, rules, ref, delta, fill, commission, slippage)
    trades = []
    for j, q in enumerate(delta):
        if q == 0.0:
            continue
        rec = {
            "asset": j,
            "shares": q if book.fractional else int(q),
            "fill_price": fill[j],
            "notional_cents": round(q * fill[j] * 100),
            "commission_cents": round(commission[j] * 100),
            "slippage_cents": round(slippage[j] * 100),
        }
        if book.fractional:
            rec.update(notional=q * fill[j], commission=commission[j], slippage=slippage[j])
        trades.append(rec)
    cash0 = book.exact_cash if book.fractional else book.cash_cents / 100
    shares, borrow, cash, equity = _kernel_settle(rules, cash0, book.shares, delta, fill, commission, close)
    if not book.fractional:
        shares = [int(round(x)) for x in shares]
    value = market_value_cents(shares, close)
    if book.fractional:
        totals = {
            "paid": _total([q * f for q, f in zip(delta, fill, strict=True)]),
            "commission": _total(commission),
            "slippage": _total(slippage),
            "traded_notional": _total([abs(q) * r for q, r in zip(delta, ref, strict=True)]),
        }
        cents = {f"{k}_cents": round(totals[k] * 100) for k in ("commission", "slippage", "traded_notional")}
        mark = {
            "borrow": borrow,
            "borrow_cents": round(borrow * 100),
            "cash": cash,
            "equity": equity,
            "equity_cents": round(equity * 100),
            "market_value_cents": value,
        }
        return (
            Book(book.granularity, round(cash * 100), cash, tuple(shares)),
            trades,
            {**totals, **cents},
            mark,
        )
    cents = {
        "commission_cents": sum(t["commission_cents"] for t in trades),
        "slippage_cents": sum(t["slippage_cents"] for t in trades),
        "traded_notional_cents": sum(round(abs(q) * r * 100) for q, r in zip(delta, ref, strict=True)),
    }
    totals = {k.removesuffix("_cents"): v / 100 for k, v in cents.items()}
    spent = sum(t["notional_cents"] + t["commission_cents"] for t in trades)
    borrow_cents = sum(round(b * 100) for b in _borrow_per_asset(rules, shares, close))
    cash_cents = book.cash_cents - spent - borrow_cents
    mark = {
        "borrow": borrow_cents / 100,
        "borrow_cents": borrow_cents,
        "equity_cents": cash_cents + value,
        "market_value_cents": value,
    }
    return Book(book.granularity, cash_cents, None, tuple(shares)), trades, {**totals, **cents}, mark
