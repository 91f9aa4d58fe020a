"""Paper broker: turns one new bar at a time into fills, marks, risk checks and one decision.

What: :class:`PaperBroker` walks the bars of a price table that come after the account's last
processed bar. For each bar t, in this order and committed as one unit (see :mod:`.state`):

1. day roll-over: a bar on a new calendar date resets the day-loss stop and the day's start equity;
2. the order decided at bar t-1's close fills at bar t's reference price, ``Close[t]`` or
   ``Open[t]`` as ``environment.fill_price`` says, through the environment's execution kernel
   (``env.execution``: sizing, slippage against the trader, commission on traded notional);
3. equity is marked at ``Close[t]`` (a short pays borrow, by the same kernel); peak equity and
   drawdown are updated;
4. risk: drawdown beyond ``max_drawdown`` halts the account (kill switch: flat from the next
   open until a person clears it with ``kedro paper clear-halt``); a loss of ``max_daily_loss``
   since the day's start sets the day-loss stop (no risk increase for orders decided that day);
   an optional drift check may record alerts and halt the account;
5. exactly one decision: the policy's target position (fraction of equity) is clipped to
   ``max_position_fraction``, restricted by the stops above, and left pending for bar t+1.

The policy only ever sees ``prices`` up to and including bar t, so nothing decided at t can
depend on later data. Costs follow the environment's contract (docs/contracts.md).

Granularity (fixed when the account is created, recorded in its state): ``whole`` shares
(the default; money in integer cents) or ``fractional`` shares (money in float64 dollars, the
environment's arithmetic in the environment's order, so the account reproduces a backtest of
the same policy to the cent; cents derived for display, logs and risk checks).

Mode guard: ``paper_trading`` is the default and the only mode this package can execute.
``live_trading`` is refused with :class:`LiveTradingRefused` because no live broker adapter
ships with the project; credentials are never logged or written.
"""

from __future__ import annotations

import dataclasses
import getpass
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Annotated, Any

from pydantic import Field

import pandas as pd

from ..env import EnvConfig, fill_and_costs
from ..env import execution as ex
from ..env.config import DEFAULT_FILL_PRICE
from ..errors import InputError
from ..params.base import Number, ParameterError
from ..params.deployment import RiskParams
from ..env.ops import SCALAR
from .state import AccountState, AccountStateError, AccountStore, new_account

logger = logging.getLogger(__name__)

Decide = Callable[[pd.DataFrame, AccountState], float]
DriftCheck = Callable[[pd.DataFrame], list[dict[str, Any]]]


class PriceDataError(InputError):
    """The price table handed to the broker is unusable; the message names what and where."""


class PolicyOutputError(InputError):
    """The decision function returned something that is not a finite target position."""


class LiveTradingRefused(InputError):
    """``deployment.mode: live_trading`` was requested but cannot be honoured."""


# ---------------------------------------------------------------------------------------
# Costs
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CostModel:
    """The environment's execution costs and fill price, as the broker reads them.

    Not a parameter block of its own: in a deployment it is built from ``environment``
    (:meth:`from_environment`, validated there), never from copies, so the paper account pays
    exactly what the agents were trained and evaluated with.
    """

    commission_bps: float = 0.0
    slippage_bps: float = 0.0
    borrow_bps_per_bar: float = 0.0
    fill_price: str = DEFAULT_FILL_PRICE  # next_close | next_open, as in the environment

    @classmethod
    def from_environment(cls, environment: EnvConfig | Mapping[str, Any]) -> CostModel:
        """Costs and fill price of the ``environment`` block shared by training and evaluation."""
        env = EnvConfig.parse(environment)
        return cls(commission_bps=env.commission_bps, slippage_bps=env.slippage_bps,
                   borrow_bps_per_bar=env.borrow_bps_per_bar, fill_price=env.fill_price)


def execution_price_and_commission(
    open_price: float, delta_shares: float, costs: CostModel
) -> tuple[float, float]:
    """Fill price and commission for trading ``delta_shares`` at ``open_price``.

    This *is* the training environment's cost model: it calls
    :func:`reinforce_strategy_creator.env.fill_and_costs` (the fill is the open moved by
    ``slippage_bps`` against the trader, commission is ``commission_bps`` of the traded
    notional at the fill price), so agents and the paper account can never disagree.
    """
    fill, commission, _slippage = fill_and_costs(
        open_price, delta_shares, costs.commission_bps, costs.slippage_bps
    )
    return fill, commission


# ---------------------------------------------------------------------------------------
# Risk limits
# ---------------------------------------------------------------------------------------
class RiskLimits(RiskParams):
    """Risk limits given in code (library use, tests): no stop unless one is asked for. The
    ``deployment.risk`` parameter block (:class:`~..params.deployment.RiskParams`) has the same
    fields and checks, with the project's default stops."""

    max_daily_loss: Annotated[Number, Field(gt=0, lt=1)] | None = None
    max_drawdown: Annotated[Number, Field(gt=0, lt=1)] | None = None


# ---------------------------------------------------------------------------------------
# Mode guard
# ---------------------------------------------------------------------------------------
LIVE_ADAPTERS: dict[str, Callable[..., Any]] = {}
"""Registered live broker adapters. None ships with this project: live trading is refused."""

LEGACY_LIVE_KEYS = ("api_endpoint", "api_key", "api_secret")


def resolve_mode(
    params: Mapping[str, Any], credentials: Mapping[str, Any] | None = None
) -> str:
    """Validate ``deployment.mode`` and return it; only ``paper_trading`` can run.

    ``live_trading`` needs both a registered adapter (``deployment.broker_adapter``) and a
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
        raise LiveTradingRefused(
            f"deployment.mode must be 'paper_trading' or 'live_trading', got {mode!r}."
        )
    adapter = params.get("broker_adapter")
    if not adapter or adapter not in LIVE_ADAPTERS:
        raise LiveTradingRefused(
            "deployment.mode is 'live_trading' but no live broker adapter is available "
            f"(deployment.broker_adapter={adapter!r}; registered adapters: "
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
# Broker
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunSummary:
    bars_processed: int
    first_bar: str | None
    last_bar: str | None
    state: AccountState


def _iso(ts: pd.Timestamp) -> str:
    return pd.Timestamp(ts).isoformat()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def validate_prices(prices: pd.DataFrame, source: str = "prices") -> None:
    if not isinstance(prices, pd.DataFrame) or not isinstance(prices.index, pd.DatetimeIndex):
        raise PriceDataError(f"{source}: expected a DataFrame with a DatetimeIndex of bars.")
    missing = [c for c in ("Open", "Close") if c not in prices.columns]
    if missing:
        raise PriceDataError(f"{source}: missing columns {missing}; need Open and Close.")
    if prices.index.tz is not None:
        raise PriceDataError(f"{source}: index must be tz-naive like primary_prices.")
    if not prices.index.is_monotonic_increasing or not prices.index.is_unique:
        raise PriceDataError(f"{source}: index must be sorted and unique; sort and de-duplicate it.")


class PaperBroker:
    """Processes new bars into one paper account folder. See the module docstring.

    ``granularity``: ``"whole"`` or ``"fractional"`` shares for a new account; ``None`` (the
    default) means the account's recorded granularity, and ``whole`` for a new account. An
    explicit value that differs from an existing account's is refused.
    """

    def __init__(
        self,
        store: AccountStore,
        *,
        initial_capital: float,
        costs: CostModel,
        limits: RiskLimits,
        drift_check: DriftCheck | None = None,
        halt_on_drift: bool = False,
        granularity: str | None = None,
    ) -> None:
        if granularity is not None and granularity not in ex.GRANULARITIES:
            raise ParameterError(
                f"granularity must be one of {list(ex.GRANULARITIES)} (or None for the account's "
                f"own), got {granularity!r}")
        self.store = store
        self.initial_capital = initial_capital
        self.costs = costs
        self.limits = limits
        self.drift_check = drift_check
        self.halt_on_drift = halt_on_drift
        self.granularity = granularity

    def run(
        self,
        prices: pd.DataFrame,
        decide: Decide,
        *,
        model_id: str | None = None,
        max_bars: int | None = None,
        start: pd.Timestamp | str | None = None,
    ) -> RunSummary:
        """Process every bar after the last committed one (at most ``max_bars``).

        ``start``: a new account's first bar is the first bar on or after this date; earlier
        bars are only history that ``decide`` may look at (e.g. for feature warm-up).
        """
        validate_prices(prices)
        with self.store.locked():
            if not self.store.exists():
                self.store.initialize(new_account(self.initial_capital, model_id,
                                                  self.granularity or "whole"))
            state = self.store.load()
            if self.granularity is not None and state.granularity != self.granularity:
                raise AccountStateError(
                    f"{self.store.folder}: the account trades {state.granularity} shares (recorded "
                    f"when it was created) and cannot switch to {self.granularity} shares; use a new "
                    "account folder for another granularity. Nothing was traded.")
            self._rules = execution_rules(self.costs, state.granularity)
            start_i = 0
            if state.last_bar is not None:
                start_i = int(prices.index.searchsorted(pd.Timestamp(state.last_bar), side="right"))
            elif start is not None:
                start_i = int(prices.index.searchsorted(pd.Timestamp(start), side="left"))
            start = start_i
            stop = len(prices) if max_bars is None else min(len(prices), start + max_bars)
            first = None
            for i in range(start, stop):
                state = self._process_bar(state, prices, i, decide, model_id)
                first = first or state.last_bar
            return RunSummary(stop - start, first, state.last_bar, state)

    # -- one bar -------------------------------------------------------------------------
    def _process_bar(
        self,
        state: AccountState,
        prices: pd.DataFrame,
        i: int,
        decide: Decide,
        model_id: str | None,
    ) -> AccountState:
        ts = prices.index[i]
        bar = _iso(ts)
        open_, close = float(prices["Open"].iloc[i]), float(prices["Close"].iloc[i])
        if not (math.isfinite(open_) and math.isfinite(close) and open_ > 0 and close > 0):
            raise PriceDataError(
                f"prices: bar {bar} has Open={open_!r}, Close={close!r}; prices must be finite "
                "and positive. Fix the source data; nothing was traded for this bar."
            )
        events: list[dict[str, Any]] = []
        trades: list[dict[str, Any]] = []
        s = state

        if model_id is not None and model_id != s.active_model_id:
            events.append({"bar": bar, "kind": "model_switch", "from": s.active_model_id,
                           "to": model_id})
            s = dataclasses.replace(s, active_model_id=model_id)

        # 1. day roll-over
        day = ts.date().isoformat()
        if day != s.day:
            s = dataclasses.replace(s, day=day, day_start_equity_cents=s.equity_cents,
                                    day_loss_stop=False)

        # 2. fill the order decided at the previous bar's close, at this bar's reference price
        ref = close if self.costs.fill_price == "next_close" else open_
        shares_before, delta, fill = s.shares, 0, ref
        if s.pending_target is not None:
            s, trade = self._fill(s, bar, ref)
            if trade is not None:
                trades.append(trade)
                delta, fill = trade["shares"], trade["fill_price"]
            s = dataclasses.replace(s, pending_target=None, pending_decided_at=None)
        # entry price and bars held of the holding (the observation's inputs), by the kernel
        _, entry, held_bars = ex.position_after(
            SCALAR, float(shares_before), float(delta), fill, s.entry_price, s.bars_held)
        s = dataclasses.replace(s, entry_price=entry, bars_held=held_bars)

        # 3. mark at the close; a short pays borrow on its notional at the mark, as in the env
        borrow, cash, equity = ex.mark(SCALAR, self._rules, s.cash, float(s.shares), close)
        borrow_cents = round(borrow * 100)
        if s.fractional:
            exact = {"cash": cash, "equity": equity, "borrow": borrow}
            s = dataclasses.replace(s, exact_cash=cash, exact_equity=equity,
                                    cash_cents=round(cash * 100), equity_cents=round(equity * 100))
        else:  # integer cents: the borrow fee is rounded to the cent once, then booked
            exact = {}
            cash_cents = s.cash_cents - borrow_cents
            s = dataclasses.replace(s, cash_cents=cash_cents,
                                    equity_cents=cash_cents + round(s.shares * close * 100))
        equity_cents = s.equity_cents
        peak = max(s.peak_equity_cents, equity_cents)
        position = (s.shares * close / s.equity) if equity_cents > 0 else 0.0
        s = dataclasses.replace(s, peak_equity_cents=peak, position=position, last_close=close)

        # 4. risk checks
        lim = self.limits
        if lim.max_drawdown is not None and not s.halted and s.drawdown <= -lim.max_drawdown:
            reason = (f"max drawdown kill switch: drawdown {s.drawdown:.4%} at {bar} breached "
                      f"deployment.risk.max_drawdown={lim.max_drawdown}")
            s = dataclasses.replace(s, halted=True, halt_reason=reason)
            events.append({"bar": bar, "kind": "halt", "cause": "max_drawdown", "reason": reason})
        if (lim.max_daily_loss is not None and not s.day_loss_stop and s.day_start_equity_cents > 0
                and equity_cents <= s.day_start_equity_cents * (1 - lim.max_daily_loss)):
            loss = equity_cents / s.day_start_equity_cents - 1
            s = dataclasses.replace(s, day_loss_stop=True)
            events.append({"bar": bar, "kind": "day_loss_stop", "day": day, "loss": loss,
                           "reason": f"day loss {loss:.4%} breached "
                                     f"deployment.risk.max_daily_loss={lim.max_daily_loss}"})
        history = prices.iloc[: i + 1]
        if self.drift_check is not None:
            alerts = self.drift_check(history)
            for alert in alerts:
                events.append({"bar": bar, "kind": "drift_alert", **alert})
            if alerts and self.halt_on_drift and not s.halted:
                feats = sorted({str(a.get("feature")) for a in alerts})
                reason = f"drift alert on {feats} at {bar}; flat until a person clears it"
                s = dataclasses.replace(s, halted=True, halt_reason=reason)
                events.append({"bar": bar, "kind": "halt", "cause": "drift", "reason": reason})

        # 5. exactly one decision for this bar
        policy_target = None
        if s.halted:
            target, why = 0.0, "halted: " + str(s.halt_reason)
        else:
            raw = decide(history, s)
            try:
                policy_target = float(raw)
            except (TypeError, ValueError) as exc:
                raise PolicyOutputError(
                    f"decision at bar {bar} returned {raw!r}, not a number; nothing was traded."
                ) from exc
            if not math.isfinite(policy_target):
                raise PolicyOutputError(
                    f"decision at bar {bar} returned {policy_target!r}; a target position must "
                    "be finite. Check the policy and its features; nothing was traded."
                )
            cap = lim.max_position_fraction
            target = min(max(policy_target, -cap), cap)
            why = "policy" if target == policy_target else "clipped to max_position_fraction"
            if s.day_loss_stop:
                current = s.position
                if target * current < 0 or (current == 0 and target != 0):
                    target, why = 0.0, "day-loss stop: no new risk"
                elif abs(target) > abs(current):
                    target, why = math.copysign(abs(current), target), "day-loss stop: capped"
        order = {"bar": bar, "policy_target": policy_target, "target": target, "reason": why,
                 "model_id": s.active_model_id,
                 "fills_at": "next bar " + ("close" if self.costs.fill_price == "next_close" else "open")}
        s = dataclasses.replace(s, pending_target=target, pending_decided_at=bar, last_bar=bar,
                                bars_processed=s.bars_processed + 1)
        mark = {"bar": bar, "open": open_, "close": close, "cash_cents": s.cash_cents,
                "shares": s.shares, "equity_cents": s.equity_cents, "position": s.position,
                "peak_equity_cents": s.peak_equity_cents, "drawdown": s.drawdown,
                "borrow_cents": borrow_cents, **exact}
        return self.store.commit(
            s, {"orders": [order], "trades": trades, "equity": [mark], "events": events}
        )

    def _fill(self, s: AccountState, bar: str, ref: float) -> tuple[AccountState, dict | None]:
        target = float(s.pending_target)
        if target == s.held_target:  # like the env: trade only when the target changes
            return s, None
        s = dataclasses.replace(s, held_target=target)
        rules = self._rules
        delta, fill, commission, slippage = ex.execute_order(
            SCALAR, rules, target, s.cash, float(s.shares), ref)
        trade = {"bar": bar, "decided_at": s.pending_decided_at, "reference_price": ref,
                 "fill_rule": self.costs.fill_price, "target": target}
        if s.fractional:
            if delta == 0.0:
                return s, None
            cash = ex.cash_after_fill(s.exact_cash, delta, fill, commission)
            shares = s.shares + delta
            trade.update(
                side="buy" if delta > 0 else "sell", shares=delta, fill_price=fill,
                notional_cents=round(delta * fill * 100), commission_cents=round(commission * 100),
                slippage_cents=round(slippage * 100), cash_after_cents=round(cash * 100),
                shares_after=shares, commission=commission, slippage=slippage, cash_after=cash)
            return dataclasses.replace(s, exact_cash=cash, cash_cents=round(cash * 100),
                                       shares=shares), trade

        # whole shares, integer cents: each amount is rounded to the cent once, then booked
        delta = int(delta)

        def booked(d: int) -> tuple[int, int, int, float, float]:
            f, comm, slip = ex.fill_price_and_costs(SCALAR, rules, ref, float(d))
            notional, commission_cents = round(d * f * 100), round(comm * 100)
            return s.cash_cents - notional - commission_cents, notional, commission_cents, slip, f

        new_cash, notional, commission_cents, slippage, fill = booked(delta)
        # Safety net (cent rounding): no leverage for targets within [0, 1].
        while delta > 0 and 0 <= target <= 1 and new_cash < 0:
            delta -= 1
            new_cash, notional, commission_cents, slippage, fill = booked(delta)
        if delta == 0:
            return s, None
        new_shares = s.shares + delta
        trade.update(
            side="buy" if delta > 0 else "sell", shares=delta, fill_price=fill,
            notional_cents=notional, commission_cents=commission_cents,
            slippage_cents=round(slippage * 100), cash_after_cents=new_cash, shares_after=new_shares)
        return dataclasses.replace(s, cash_cents=new_cash, shares=new_shares), trade


def execution_rules(costs: CostModel, granularity: str = "whole") -> ex.ExecutionRules:
    """The kernel's rules for ``costs`` (``environment.*`` basis points) at ``granularity``."""
    try:
        return ex.ExecutionRules.from_bps(costs.commission_bps, costs.slippage_bps,
                                          costs.borrow_bps_per_bar, granularity)
    except ValueError as exc:
        raise ParameterError(
            f"environment costs (commission_bps={costs.commission_bps}, slippage_bps="
            f"{costs.slippage_bps}, borrow_bps_per_bar={costs.borrow_bps_per_bar}): {exc}; "
            "costs are basis points below 10000.") from exc

# ---------------------------------------------------------------------------------------
# Reconciliation and operator actions
# ---------------------------------------------------------------------------------------
def replay_trades(
    initial_capital_cents: int, trades: list[dict[str, Any]],
    equity: list[dict[str, Any]] | None = None, *, granularity: str = "whole",
    initial_cash: float | None = None,
) -> tuple[int, int] | tuple[float, float]:
    """Cash and shares implied by the trade log (and the borrow fees in ``equity``).

    ``whole`` accounts: ``(cash_cents, shares)`` from the logged cents. ``fractional``
    accounts: ``(cash, shares)`` as floats from ``initial_cash`` and the logged exact amounts,
    replayed bar by bar in the kernel's order (each bar's fill, then its mark's borrow), so
    the result equals the account's state bit for bit.
    """
    if granularity == "whole":
        cash, shares = initial_capital_cents, 0
        for t in trades:
            cash -= t["notional_cents"] + t["commission_cents"]
            shares += t["shares"]
        for mark in equity or ():
            cash -= mark.get("borrow_cents", 0)
        return cash, shares
    if granularity != "fractional" or initial_cash is None:
        raise AccountStateError(
            f"replay_trades: granularity {granularity!r} with initial_cash {initial_cash!r}; a "
            "fractional account replays from its exact_initial_cash.")
    cash, shares, k = float(initial_cash), 0.0, 0
    for mark in equity or ():
        while k < len(trades) and trades[k]["bar"] <= mark["bar"]:
            t = trades[k]
            cash = ex.cash_after_fill(cash, t["shares"], t["fill_price"], t["commission"])
            shares, k = shares + t["shares"], k + 1
        cash = ex.cash_after_borrow(cash, mark["borrow"])
    for t in trades[k:]:  # no marks given (or trades after the last mark)
        cash = ex.cash_after_fill(cash, t["shares"], t["fill_price"], t["commission"])
        shares = shares + t["shares"]
    return cash, shares


def reconcile(store: AccountStore) -> AccountState:
    """Check that the committed logs replay to the committed state; raise if not."""
    state = store.load()
    trades = store.read_log("trades", state)
    orders = store.read_log("orders", state)
    equity = store.read_log("equity", state)
    cash, shares = replay_trades(state.initial_capital_cents, trades, equity,
                                 granularity=state.granularity, initial_cash=state.exact_initial_cash)
    problems = []
    if state.fractional:
        if (cash, shares) != (state.exact_cash, state.shares):
            problems.append(f"trade log replays to cash {cash!r}/shares {shares!r}, state has "
                            f"{state.exact_cash!r}/{state.shares!r}")
        bad = [m["bar"] for m in equity
               if m["equity"] != m["cash"] + m["shares"] * m["close"]  # ex.mark's equity
               or (m["cash_cents"], m["equity_cents"]) != (round(m["cash"] * 100), round(m["equity"] * 100))]
        if bad:
            problems.append(f"{len(bad)} equity mark(s) (first {bad[0]}) are not cash + shares x close, "
                            "or their cents are not the rounded exact amounts")
        if equity and (equity[-1]["cash"], equity[-1]["equity"]) != (state.exact_cash, state.exact_equity):
            problems.append("last equity mark's exact cash/equity differ from state")
    elif (cash, shares) != (state.cash_cents, state.shares):
        problems.append(f"trade log replays to cash {cash / 100:.2f}/shares {shares}, state has "
                        f"{state.cash:.2f}/{state.shares}")
    bars = [o["bar"] for o in orders]
    if len(bars) != len(set(bars)) or len(bars) != state.bars_processed:
        problems.append(f"{len(bars)} decisions for {state.bars_processed} processed bars "
                        f"({len(bars) - len(set(bars))} duplicated)")
    if len(equity) != state.bars_processed:
        problems.append(f"{len(equity)} equity marks for {state.bars_processed} bars")
    if equity and (equity[-1]["cash_cents"], equity[-1]["shares"], equity[-1]["equity_cents"]) != (
            state.cash_cents, state.shares, state.equity_cents):
        problems.append("last equity mark differs from state")
    if bars and bars[-1] != state.last_bar:
        problems.append(f"last decision {bars[-1]} is not the last processed bar {state.last_bar}")
    if problems:
        raise AccountStateError(
            f"{store.folder}: account does not reconcile: {'; '.join(problems)}. Stop trading "
            "and restore the folder from backup."
        )
    return state


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
        event = {"bar": state.last_bar, "kind": "clear_halt", "at": _now(),
                 "by": actor or current_actor(), "reason": reason.strip(),
                 "cleared": state.halt_reason, "peak_reset_to_cents": state.equity_cents}
        new = dataclasses.replace(state, halted=False, halt_reason=None,
                                  peak_equity_cents=state.equity_cents)
        return store.commit(new, {"events": [event]})
