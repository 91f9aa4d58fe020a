"""The execution kernel: the one place the order-execution rules are written.

Every simulation mode executes orders through these functions: the batched core
(`BatchedTradingCore`, torch lanes: training, evaluation, `replay`), the one-account gymnasium
facade (Python scalars) and the paper account (`deployment.account.PaperAccount`, Python scalars,
fractional or whole shares). Nothing else computes a traded quantity, a fill price, a cost,
a borrow charge, a cash balance, an equity mark or the entry price / bars held of a position.

Rules (docs/environment.md, "Positions and sizing" and "Cost model"):

* **sizing** (:func:`execute_order`): a target position p is the
  fraction of *post-cost* equity held after the fill at the reference price ``ref`` (the next
  bar's close or open, ``environment.fill_price``): ``x = p·cash/ref − (1−p)·shares`` is the
  frictionless trade, ``Δ = x / (1 − p + p·k)`` with ``k = (1+slip)(1+comm)`` for buys (shrunk
  by a relative 1e-12, so float rounding never overdraws cash) and ``(1−slip)(1−comm)`` for
  sells. ``p = 0`` gives ``Δ = −shares`` exactly (exits flatten exactly). Granularity
  ``fractional`` keeps Δ; ``whole`` truncates the resulting holding toward zero to whole
  shares (``Δ = trunc(shares + Δ) − shares``), so a long target ≤ 1 never borrows cash and a
  whole holding never exceeds the fractional one in absolute value.
* **fill and costs** (:func:`fill_price_and_costs`): fill = ``ref·(1 ± slip)`` against the
  trader, commission = ``|Δ|·fill·comm``, slippage cost = ``|Δ|·ref·slip``.
* **cash and mark** (:func:`settle`; :func:`mark` for a bar without a fill): ``cash − Δ·fill − commission`` at
  the fill; at the mark a short pays ``borrow = max(−shares, 0)·close·borrow_rate``, then
  ``cash − borrow`` and ``equity = cash + shares·close``. Float64, in this order: a ledger
  that replays these operations in the same order (:func:`cash_after_fill`,
  :func:`cash_after_borrow`) reproduces the cash bit for bit.
* **holding, entry price and bars held** (:func:`position_after`), the inputs of the observation's
  ``unrealised`` and ``bars_held`` columns (layout in :mod:`.observation`).

Back ends (:mod:`.ops`): every function takes ``xp``, `TorchOps` (tensors on any device) or
`ScalarOps` (Python floats; ``SCALAR``), and uses element-wise operations only, so it works on
(B,) lanes and on (B, N) arrays (N assets per account) alike: a single-asset account gives
the same numbers whatever the shape around it (tests/env/test_execution.py checks (B, N)
tensors against scalars bit for bit). :class:`ExecutionRules` holds the rates as floats;
per-asset costs are (N,) tensors in the same fields (they broadcast over (B, N)).

Settlement (:func:`settle`) is written once for every caller and every N: the batched cores
(N = 1 and N assets), the paper accounts. An account's equity is shared by its N assets, so the
N-asset core solves the post-cost equity every target weight refers to jointly
(``PortfolioCore.size_orders``, around the kernel's per-asset costs) and then settles here;
at N = 1 :func:`execute_order` is that solve in closed form.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .ops import SCALAR

GRANULARITIES = ("fractional", "whole")
"""``fractional``: any real number of shares (backtests, the environment); ``whole``: whole
shares, the resulting holding truncated toward zero (the default paper account)."""

BUY_HAIRCUT_EPS = 1e-12  # buys are sized with k * (1 + eps) so rounding never overdraws cash


@dataclass(frozen=True)
class ExecutionRules:
    """Cost rates (fractions, not bps) and size granularity of one execution venue.

    ``commission``: of traded notional at the fill price; ``slippage``: of the reference
    price, against the trader; ``borrow``: of short notional at the mark, per bar.
    Build from basis points with :meth:`from_bps` or from an ``EnvConfig`` with
    :meth:`from_config`.
    """

    commission: float
    slippage: float
    borrow: float = 0.0
    granularity: str = "fractional"
    # k = k_mid + k_half * side gives the (haircut) buy factor for side = +1 and the sell
    # factor for side = -1, so the size needs no branch per lane.
    k_mid: float = field(init=False, repr=False)
    k_half: float = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.granularity not in GRANULARITIES:
            raise ValueError(
                f"granularity must be one of {list(GRANULARITIES)}, got {self.granularity!r} "
                "(fractional: any number of shares, as in backtests; whole: whole shares)"
            )
        for name in ("commission", "slippage", "borrow"):
            v = getattr(self, name)
            lo, hi = (float(v.min()), float(v.max())) if hasattr(v, "min") else (v, v)  # (N,) per asset
            if isinstance(lo, bool) or not (
                isinstance(lo, (int, float))
                and math.isfinite(lo)
                and math.isfinite(hi)
                and 0.0 <= lo
                and hi < 1.0
            ):
                raise ValueError(f"the {name} rate must be a fraction in [0, 1), got {v!r}")
        k_buy = (1.0 + self.slippage) * (1.0 + self.commission) * (1.0 + BUY_HAIRCUT_EPS)
        k_sell = (1.0 - self.slippage) * (1.0 - self.commission)
        object.__setattr__(self, "k_mid", 0.5 * (k_buy + k_sell))
        object.__setattr__(self, "k_half", 0.5 * (k_buy - k_sell))

    @classmethod
    def from_bps(
        cls,
        commission_bps: float,
        slippage_bps: float,
        borrow_bps_per_bar: float = 0.0,
        granularity: str = "fractional",
    ) -> ExecutionRules:
        return cls(commission_bps / 1e4, slippage_bps / 1e4, borrow_bps_per_bar / 1e4, granularity)

    @classmethod
    def from_config(cls, config, granularity: str = "fractional") -> ExecutionRules:
        """The environment's rules (``environment.commission_bps`` ...) at ``granularity``."""
        return cls.from_bps(
            config.commission_bps, config.slippage_bps, config.borrow_bps_per_bar, granularity
        )


# ---------------------------------------------------------------------------------------
# Order: target position -> traded quantity -> fill price and costs
# ---------------------------------------------------------------------------------------
def execute_order(xp, rules: ExecutionRules, target, cash, shares, ref, trade=None):
    """The order function: ``(delta, fill_price, commission, slippage_cost)`` of moving an
    account holding ``cash`` and ``shares`` to ``target`` (fraction of post-cost equity) at
    the reference price ``ref``, at ``rules.granularity`` (see the module docstring).

    ``trade`` (optional bool mask): lanes where it is False trade nothing (``delta = 0``).
    Where ``delta`` is 0 the fill price is the one a trade on that side would have had;
    report it as no fill.
    """
    x = target * cash / ref - (1.0 - target) * shares  # frictionless trade; -shares when p = 0
    side = xp.sign(x)  # +1 buy, -1 sell
    k = rules.k_mid + rules.k_half * side
    delta = x / (1.0 - target + target * k)
    if trade is not None:
        delta = xp.where(trade, delta, xp.zero)
    if rules.granularity == "whole":  # truncate the resulting holding toward zero
        delta = xp.trunc(shares + delta) - shares
    # side of x == side of delta wherever delta != 0 (the divisor is > 0)
    fill, commission, slippage = fill_price_and_costs(xp, rules, ref, delta, side)
    return delta, fill, commission, slippage


def fill_price_and_costs(xp, rules: ExecutionRules, ref, delta, side=None):
    """``(fill_price, commission, slippage_cost)`` of trading ``delta`` shares (> 0 buy) at
    ``ref``: fill ``ref * (1 + slip * side)``, commission ``|delta| * fill * comm``, slippage
    cost ``|delta| * ref * slip``; ``side`` defaults to ``sign(delta)``."""
    if side is None:
        side = xp.sign(delta)
    fill = ref * (1.0 + rules.slippage * side)
    qty = xp.abs(delta)
    return fill, qty * fill * rules.commission, qty * ref * rules.slippage


# ---------------------------------------------------------------------------------------
# Cash, borrow, mark
# ---------------------------------------------------------------------------------------
def cash_after_fill(cash, delta, fill, commission):
    """Cash after paying for ``delta`` shares at ``fill`` plus ``commission`` (any back end)."""
    return cash - delta * fill - commission


def cash_after_borrow(cash, borrow):
    """Cash after the borrow charge of the mark (the second and last cash operation of a bar)."""
    return cash - borrow


def mark(xp, rules: ExecutionRules, cash, shares, close):
    """``(borrow, cash, equity)`` at the mark: a short pays ``max(-shares, 0) * close * borrow``
    (0 for longs), then ``equity = cash + shares * close``."""
    borrow = xp.clip(-shares, 0.0, None) * close * rules.borrow
    cash = cash - borrow
    return borrow, cash, cash + shares * close


def settle(xp, rules: ExecutionRules, cash, shares, delta, fill, commission, close) -> tuple:
    """Settle one bar: pay for the fills, then mark at ``close`` (the settlement order, written once).

    Returns ``(shares, value, borrow, cash, equity, commission)``: the holdings after the fill
    (shaped like ``shares``), ``shares * close`` per asset (the marked positions), then per
    account the borrow paid at the mark, the cash after the fill and the borrow, the equity
    ``cash + Σ value`` and the commission paid ``Σ commission``.

    ``shares``, ``delta`` (traded shares, > 0 bought), ``fill`` (fill prices), ``commission``
    and ``close`` are per asset: (B, N) tensors with ``cash`` (B,), or, for one asset, shaped
    like ``cash`` ((B,) lanes, or Python floats on the scalar back end; ``cash`` a float means one
    asset). In this order, float64:

    1. ``cash − Σ_i Δ_i·fill_i − Σ_i commission_i`` (:func:`cash_after_fill`);
    2. shares ``+ Δ``; each short pays ``borrow_i = max(−shares_i, 0)·close_i·borrow_rate``;
    3. ``cash − Σ_i borrow_i`` (:func:`cash_after_borrow`);
    4. ``equity = cash + Σ_i shares_i·close_i``.

    Each Σ runs over the asset axis (the last one) in ticker order, so runs reproduce bit for
    bit; with one asset there is no sum and the operations are the single-asset ledger's. With a
    zero borrow rate the borrow is exactly 0 and is not computed.
    """
    sh_new = shares + delta
    if isinstance(cash, float) or shares.ndim == cash.ndim:  # one asset: no sums
        cash_filled = cash - delta * fill - commission
        if rules.borrow > 0.0:
            borrow = xp.clip(-sh_new, 0.0, None) * close * rules.borrow
            cash_new = cash_filled - borrow
        else:  # max(-shares, 0) * close * 0 is exactly 0
            borrow, cash_new = xp.zeros_like(cash), cash_filled
        value = sh_new * close
        return sh_new, value, borrow, cash_new, cash_new + value, commission
    commission_total = commission.sum(-1)
    cash_filled = cash - (delta * fill).sum(-1) - commission_total
    if rules.borrow > 0.0:
        borrow = (xp.clip(-sh_new, 0.0, None) * close * rules.borrow).sum(-1)
        cash_new = cash_filled - borrow
    else:
        borrow, cash_new = xp.zeros_like(cash), cash_filled
    value = sh_new * close
    return sh_new, value, borrow, cash_new, cash_new + value.sum(-1), commission_total


# ---------------------------------------------------------------------------------------
# Position bookkeeping (inputs of the observation)
# ---------------------------------------------------------------------------------------
def position_after(xp, shares, delta, fill, entry, bars, traded=None):
    """``(shares, entry, bars)`` after trading ``delta`` shares at ``fill``: the new holding,
    its average entry price and the bars it has been held (the observation's inputs).

    Opening (from flat) or flipping a position sets the entry to the fill and bars held to 1;
    adding to it averages the entry (weighted by shares); reducing keeps it; being flat gives
    ``(1.0, 0.0)`` (1.0 keeps the unrealised term finite); otherwise bars held grows by one.
    ``traded`` (optional) is a mask that is False wherever ``delta == 0`` (the core passes its
    ``target != held``); by default ``delta != 0``.
    """
    if traded is None:
        traded = delta != 0.0
    sh_new = shares + delta
    abs_sh, abs_new = xp.abs(shares), xp.abs(sh_new)
    opened = traded & (sh_new != 0.0) & (shares * sh_new <= 0.0)
    grown = abs_new > abs_sh  # implies delta != 0; `opened` is applied after, so it wins
    entry = xp.where(grown, (abs_sh * entry + xp.abs(delta) * fill) / xp.where(grown, abs_new, xp.one), entry)
    entry = xp.where(opened, fill, entry)
    flat = sh_new == 0.0
    entry = xp.where(flat, xp.one, entry)
    bars = xp.where(flat, xp.zero, xp.where(opened, xp.one, bars + 1.0))
    return sh_new, entry, bars


# ---------------------------------------------------------------------------------------
# One-account conveniences (Python floats); the same functions, not copies
# ---------------------------------------------------------------------------------------
def fill_and_costs(
    open_price: float, delta_shares: float, commission_bps: float, slippage_bps: float
) -> tuple[float, float, float]:
    """:func:`fill_price_and_costs` for one fill as plain floats, costs in basis points.

    Returns ``(fill_price, commission, slippage_cost)`` for trading ``delta_shares`` (> 0 buy,
    < 0 sell) against the reference price ``open_price`` (the next bar's open or close, per
    ``environment.fill_price``).
    """
    rules = ExecutionRules.from_bps(commission_bps, slippage_bps)
    return fill_price_and_costs(SCALAR, rules, float(open_price), float(delta_shares))
