"""The settlement of a paper account's bar over its N assets (N >= 1), written once.

What: :func:`book_fills` books one bar's fills (the traded shares of each asset, already sized)
into an account's money and :func:`book_mark` marks the account at the close (a short pays
borrow; equity is the cash plus :func:`~.state.market_value_cents`). Both paper accounts call them:
the single-asset :class:`~.broker.PaperBroker` (N = 1) and the universe's
:class:`~.portfolio_account.PortfolioPaperAccount`.

Why: the amounts are the execution kernel's (``env.execution``: ``fill_price_and_costs``,
``cash_after_fill``, ``cash_after_borrow``, ``mark``), in the order the environment applies them,
over (1, N) float64 tensors with the asset axis summed once per account, as the environment's
N-asset core settles (``PortfolioCore._settle``); at N = 1 every sum is one element, so the
single-asset ledger is the scalar kernel's bit for bit. Granularity (docs/paper_trading.md, "Share
granularity"): a ``fractional`` account books the float64 dollars as they are and derives its
cents by rounding; a ``whole`` account rounds each trade's notional and commission and each
asset's borrow to the cent once and books integer cents, and an order that only buys within the
equity (every target weight >= 0, together <= 1) never overdraws: one share less of the largest
purchase until the cents fit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..env import execution as ex
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


def _row(values: Sequence[float]) -> torch.Tensor:
    return torch.tensor([list(values)], dtype=torch.float64)


def book_fills(
    book: Book,
    rules: ex.ExecutionRules,
    ref: Sequence[float],
    delta: Sequence[float],
    *,
    long_order: bool = False,
) -> tuple[Book, list[dict[str, Any]], dict[str, Any]]:
    """Book the traded shares ``delta`` (one per asset, > 0 buys; whole numbers for a whole
    account, as the kernel sizes them) filled against the reference
    prices ``ref`` with the kernel's fill prices and costs. ``long_order``: the order only buys
    within the equity, so a whole account takes one share less of its largest purchase until
    its cents do not overdraw.

    Returns the new book, one record per traded asset (``asset``: its position; ``shares``,
    ``fill_price``, ``notional_cents``, ``commission_cents``, ``slippage_cents``; a fractional
    account adds the float64 ``notional``, ``commission`` and ``slippage``) and the bar's totals
    (``paid``, ``commission``, ``slippage``, ``traded_notional`` in dollars and their cents)."""
    if not any(delta):  # nothing traded: the kernel's amounts are all zero, the book unchanged
        zero = {"paid": 0.0, "commission": 0.0, "slippage": 0.0, "traded_notional": 0.0}
        cents = {"commission_cents": 0, "slippage_cents": 0, "traded_notional_cents": 0}
        return book, [], ({**zero, **cents} if book.fractional else {**cents, **zero})
    c, d = _row(ref), _row(delta)
    fill, commission, slippage = ex.fill_price_and_costs(XP, rules, c, d)
    if long_order and not book.fractional:
        d, fill, commission, slippage = _no_overdraft(book, rules, c, d, fill, commission, slippage)
    trades = []
    for j in range(d.shape[1]):
        q = float(d[0, j])
        if q == 0.0:
            continue
        f, comm, slip = float(fill[0, j]), float(commission[0, j]), float(slippage[0, j])
        rec = {
            "asset": j,
            "shares": q if book.fractional else int(q),
            "fill_price": f,
            "notional_cents": round(q * f * 100),
            "commission_cents": round(comm * 100),
            "slippage_cents": round(slip * 100),
        }
        if book.fractional:
            rec.update(notional=q * f, commission=comm, slippage=slip)
        trades.append(rec)
    shares = tuple(float(x) if book.fractional else int(round(float(x))) for x in (_row(book.shares) + d)[0])
    if book.fractional:
        paid = (d * fill).sum(1)
        cash0 = torch.tensor([book.exact_cash], dtype=torch.float64)
        cash = float(ex.cash_after_fill(cash0, paid, 1.0, commission.sum(1))[0])
        totals = {
            "paid": float(paid[0]),
            "commission": float(commission.sum(1)[0]),
            "slippage": float(slippage.sum(1)[0]),
            "traded_notional": float((d.abs() * c).sum(1)[0]),
        }
        cents = {f"{k}_cents": round(totals[k] * 100) for k in ("commission", "slippage", "traded_notional")}
        return Book(book.granularity, round(cash * 100), cash, shares), trades, {**totals, **cents}
    spent = sum(t["notional_cents"] + t["commission_cents"] for t in trades)
    cents = {
        "commission_cents": sum(t["commission_cents"] for t in trades),
        "slippage_cents": sum(t["slippage_cents"] for t in trades),
        "traded_notional_cents": sum(round(float(x) * 100) for x in (d.abs() * c)[0]),
    }
    totals = {k.removesuffix("_cents"): v / 100 for k, v in cents.items()}
    return Book(book.granularity, book.cash_cents - spent, None, shares), trades, {**totals, **cents}


def _no_overdraft(book: Book, rules, c, d, fill, commission, slippage):
    """Whole shares, an order that only buys within the equity: while the cent-rounded payments
    would overdraw the cash, buy one share less of the largest purchase (the kernel re-prices)."""

    def spent(dd, f, comm) -> int:
        return sum(round(float(a) * 100) for a in (dd * f)[0]) + sum(round(float(x) * 100) for x in comm[0])

    while book.cash_cents - spent(d, fill, commission) < 0 and bool((d > 0).any()):
        j = int(torch.argmax(torch.where(d > 0, d * fill, -1.0)[0]))
        d = d.clone()
        d[0, j] -= 1.0
        fill, commission, slippage = ex.fill_price_and_costs(XP, rules, c, d)
    return d, fill, commission, slippage


def book_mark(book: Book, rules: ex.ExecutionRules, close: Sequence[float]) -> tuple[Book, dict[str, Any]]:
    """Mark the book at the closes (one per asset; any positive placeholder where an asset is not
    listed and not held): a short pays the kernel's borrow, then equity = cash + the holdings'
    value. Returns the book after the borrow and the mark: ``borrow`` and ``borrow_cents``,
    ``equity_cents``, ``market_value_cents``; a fractional account adds the float64 ``cash``
    and ``equity``."""
    c, sh = _row(close), _row(book.shares)
    borrow_n = ex.mark(XP, rules, torch.zeros_like(sh), sh, c)[0]
    if book.fractional:
        borrow = borrow_n.sum(1)
        cash = ex.cash_after_borrow(torch.tensor([book.exact_cash], dtype=torch.float64), borrow)
        equity = float((cash + (sh * c).sum(1))[0])
        cash = float(cash[0])
        mark = {
            "borrow": float(borrow[0]),
            "borrow_cents": round(float(borrow[0]) * 100),
            "cash": cash,
            "equity": equity,
            "equity_cents": round(equity * 100),
            "market_value_cents": market_value_cents(book.shares, close),
        }
        return Book(book.granularity, round(cash * 100), cash, book.shares), mark
    borrow_cents = sum(round(float(b) * 100) for b in borrow_n[0])
    cash_cents = book.cash_cents - borrow_cents
    value = market_value_cents(book.shares, close)
    mark = {
        "borrow": borrow_cents / 100,
        "borrow_cents": borrow_cents,
        "equity_cents": cash_cents + value,
        "market_value_cents": value,
    }
    return Book(book.granularity, cash_cents, None, book.shares), mark
