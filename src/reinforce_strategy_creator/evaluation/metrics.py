"""Performance and trade metrics of one backtest.

What: turns a per-bar backtest frame (``date, position, shares, cash, equity, fill_price,
cost, ...`` as produced by ``env.replay``) or a plain equity curve into

* risk/return metrics (annual return, volatility, Sharpe, Sortino, max drawdown, Calmar,
  VaR, CVaR, stability, alpha/beta against a benchmark), computed by empyrical-reloaded;
* trade metrics empyrical does not have (round trips, win rate, profit factor, holding
  period, turnover, exposure, costs paid), hand-written here because no maintained library
  computes them from a per-bar position/fill ledger with the round-trip definition this
  project needs (flip = exit + new entry, costs and borrow attributed to the trip).

Why this shape: every function takes plain pandas/numpy inputs so it can be tested on
hand-made series and does not depend on the environment or Kedro. Conventions (simple
returns of equity net of costs, risk-free 0, how periods per year are inferred) are listed
in ``docs/metrics.md``.

Portfolio ledgers (``evaluation.ledger.run_ledger``: one account over N assets) are recognised by
their ``traded_notional`` column and measured with the same performance metrics; their trade
metrics come from the per-bar money columns instead of round trips (``portfolio_trade_metrics``;
docs/metrics.md, "Trade metrics of a universe's ledger").

Ruin is an outcome, not an error: an account whose equity reaches zero or below
(:func:`ruin_index`, the one definition used by the metrics, the figures and training's
checkpoint selection) is measured up to and including the bar of ruin, whose return is
-100 %, and flagged ``ruined: true`` (definitions in ``docs/metrics.md``, "Ruin").
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import empyrical
import numpy as np
import pandas as pd
from scipy import stats as _sps

from ..errors import InputError

__all__ = [
    "EvaluationInputError",
    "RoundTrip",
    "bar_returns",
    "equity_returns",
    "is_ruined",
    "ruin_index",
    "equity_from_frame",
    "infer_periods_per_year",
    "is_portfolio_ledger",
    "performance_metrics",
    "portfolio_trade_metrics",
    "round_trips",
    "trade_metrics",
    "evaluate_backtest",
    "evaluate_backtests",
    "TRADING_DAYS_PER_YEAR",
]

TRADING_DAYS_PER_YEAR = 252
VAR_CUTOFF = 0.05
REQUIRED_FRAME_COLUMNS = ("position", "shares", "cash", "equity", "fill_price", "cost")
#: what a portfolio ledger (``evaluation.ledger.run_ledger``) must hold, complete on every row
PORTFOLIO_FRAME_COLUMNS = ("cash", "equity", "cost", "traded_notional")


def is_portfolio_ledger(frame) -> bool:
    """Whether ``frame`` is a portfolio ledger (N assets): it has a ``traded_notional`` column."""
    return isinstance(frame, pd.DataFrame) and "traded_notional" in frame.columns


class EvaluationInputError(InputError):
    """Bad input to an evaluation function; the message says what and how to fix it."""


def positive_series(values, name: str, what: str, fix: str) -> np.ndarray:
    """``values`` as a non-empty 1-D float64 array of positive finite numbers, or a clear error.

    ``name`` is the argument named in the message, ``what`` says what a valid element is, and
    ``fix`` says what to do; the first offending row is named.
    """
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise EvaluationInputError(f"{name}: expected a non-empty 1-D {what}.")
    bad = np.flatnonzero(~np.isfinite(arr) | (arr <= 0))
    if bad.size:
        raise EvaluationInputError(f"{name}: value {arr[bad[0]]!r} at row {int(bad[0])} is not a {fix}")
    return arr


def ruin_index(equity) -> int | None:
    """Row (position) of the bar of ruin: the first equity value ``<= 0``; ``None`` if the
    account never reaches zero.

    This is the project's one definition of ruin. The environment terminates a lane on the
    same condition (``equity <= 0``) and ``env.replay`` then freezes it, so every row after
    the first non-positive one is a frozen copy. NaN is not ruin (it is bad input, refused
    elsewhere).
    """
    values = np.asarray(equity, dtype=np.float64).reshape(-1)
    with np.errstate(invalid="ignore"):
        hits = np.flatnonzero(values <= 0)
    return int(hits[0]) if hits.size else None


def is_ruined(equity) -> bool:
    """Whether an equity curve reaches zero or below (``ruin_index`` is not None)."""
    return ruin_index(equity) is not None


# --------------------------------------------------------------------------- helpers
def _until_ruin(frame: pd.DataFrame, name: str = "frame") -> pd.DataFrame:
    """The ledger up to and including the bar of ruin (the whole ledger if never ruined)."""
    k = ruin_index(pd.to_numeric(frame["equity"], errors="coerce"))
    if k is None:
        return frame
    if k == 0:
        raise EvaluationInputError(
            f"{name}: the start row has equity {frame['equity'].iloc[0]!r}; the ledger must start with "
            "the pre-trade row at the initial capital (> 0), as env.replay writes it."
        )
    return frame.iloc[: k + 1]


def _check_frame(frame: pd.DataFrame, columns=REQUIRED_FRAME_COLUMNS, name: str = "frame"):
    """Validate one account's ledger as produced by ``env.replay`` (one lane).

    ``fill_price`` may be NaN on rows without a trade (the env writes NaN there); every
    other value must be finite. The first row must be the pre-trade start row (no shares),
    whose equity is the initial capital.
    """
    if not isinstance(frame, pd.DataFrame):
        raise EvaluationInputError(
            f"{name}: expected a per-bar backtest DataFrame, got {type(frame).__name__}."
        )
    portfolio = columns is REQUIRED_FRAME_COLUMNS and is_portfolio_ledger(frame)
    if portfolio:
        columns = PORTFOLIO_FRAME_COLUMNS
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise EvaluationInputError(
            f"{name}: missing column(s) {missing}; a backtest frame needs {list(columns)} "
            "(the BacktestResult of env.replay has them)."
        )
    if len(frame) < 2:
        raise EvaluationInputError(
            f"{name}: the backtest frame has {len(frame)} row(s); need the start row and at least one bar."
        )
    if "lane" in frame.columns and frame["lane"].nunique() > 1:
        raise EvaluationInputError(
            f"{name}: holds {frame['lane'].nunique()} lanes; evaluate one account at a time "
            "(BacktestResult.lane(i))."
        )
    shares = None
    if "shares" in frame.columns:
        shares = pd.to_numeric(frame["shares"], errors="coerce").to_numpy(dtype=float)
    for col in columns:
        values = pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=float)
        bad = ~np.isfinite(values)
        if col == "fill_price" and shares is not None:
            traded = np.diff(shares, prepend=0.0) != 0
            bad &= traded
        bad = np.flatnonzero(bad)
        if bad.size:
            raise EvaluationInputError(
                f"{name}: column '{col}' has a missing or non-finite value at row "
                f"{int(bad[0])}; the backtest ledger must be complete."
            )
    if portfolio and "n_positions" in frame.columns and float(frame["n_positions"].iloc[0]) != 0:
        raise EvaluationInputError(
            f"{name}: the first row holds {frame['n_positions'].iloc[0]!r} positions; a portfolio "
            "ledger must start with the pre-trade row (all cash, equity = initial capital) as "
            "replay_weights writes it."
        )
    if "shares" in columns and shares[0] != 0:
        raise EvaluationInputError(
            f"{name}: the first row holds {shares[0]!r} shares; the ledger must start with the "
            "pre-trade row (flat, equity = initial capital) as env.replay writes it."
        )


def _date_index(frame: pd.DataFrame) -> pd.Index:
    if "date" in frame.columns:
        return pd.DatetimeIndex(frame["date"])
    return frame.index


def equity_from_frame(frame: pd.DataFrame) -> pd.Series:
    """Equity curve of a backtest frame, indexed by its ``date`` column (or its index)."""
    _check_frame(frame, ("equity",))
    return pd.Series(frame["equity"].to_numpy(dtype=float), index=_date_index(frame), name="equity")


def bar_returns(equity: pd.Series | pd.DataFrame, initial_capital: float | None = None) -> pd.Series:
    """Simple per-bar returns of equity (net of every cost already booked in equity).

    ``r_t = E_t / E_{t-1} - 1``; the first row has no return and is dropped. An
    ``env.replay`` ledger starts with the pre-trade row at the initial capital, so its first
    return already includes the first fill's costs. For a bare curve that starts after the
    first fill, pass ``initial_capital`` to measure the first bar from it instead.
    """
    if isinstance(equity, pd.DataFrame):
        equity = equity_from_frame(equity)
    values = positive_series(
        equity,
        "equity",
        "equity curve",
        "positive finite number; returns are undefined once the account is wiped out or the curve has gaps.",
    )
    index = equity.index if isinstance(equity, pd.Series) else pd.RangeIndex(values.size)
    if initial_capital is not None:
        if not (np.isfinite(initial_capital) and initial_capital > 0):
            raise EvaluationInputError(
                f"initial_capital: must be a positive number, got {initial_capital!r}."
            )
        prev = np.concatenate([[float(initial_capital)], values[:-1]])
        return pd.Series(values / prev - 1.0, index=index, name="return")
    return pd.Series(values[1:] / values[:-1] - 1.0, index=index[1:], name="return")


def equity_returns(
    equity: pd.Series | pd.DataFrame, initial_capital: float | None = None
) -> tuple[pd.Series, bool]:
    """Per-bar returns of an equity curve that may reach zero: ``(returns, ruined)``.

    Without ruin this is exactly ``bar_returns``. With ruin (``ruin_index``) the returns run
    up to and including the bar of ruin, whose return is -1 (-100 %: the account lost all
    of its capital; a deficit below zero is not a return below -100 %), and the frozen
    bars after it are dropped. The curve's first value must be positive (it is the initial
    capital), unless ``initial_capital`` is given (then the first bar is measured from it).
    """
    if isinstance(equity, pd.DataFrame):
        equity = equity_from_frame(_until_ruin(equity, "equity"))
    if not isinstance(equity, pd.Series):
        equity = pd.Series(np.asarray(equity, dtype=np.float64))
    k = ruin_index(equity)
    if k is None:
        return bar_returns(equity, initial_capital), False
    if k == 0 and initial_capital is None:
        raise EvaluationInputError(
            f"equity: the first value {equity.iloc[0]!r} is not positive; an equity curve starts at the "
            "initial capital (or pass initial_capital)."
        )
    if k > 0:
        before = bar_returns(equity.iloc[:k], initial_capital)
    else:
        if not (np.isfinite(initial_capital) and initial_capital > 0):
            raise EvaluationInputError(
                f"initial_capital: must be a positive number, got {initial_capital!r}."
            )
        before = pd.Series([], index=equity.index[:0], dtype=np.float64)
    ruin = pd.Series([-1.0], index=equity.index[k : k + 1])
    return pd.concat([before, ruin]).rename("return"), True


def infer_periods_per_year(index: pd.Index) -> float:
    """Bars per year from the spacing of a DatetimeIndex.

    Rule (see docs/metrics.md): take the median spacing between consecutive bars.
    * >= 300 days: yearly (1); >= 80 days: quarterly (4); >= 25 days: monthly (12);
      >= 5 days: weekly (52);
    * >= 20 hours: daily bars. 252 trading days per year, unless more than 10 % of bars fall
      on a Saturday or Sunday (a 7-day market such as crypto), then 365;
    * shorter: intraday bars. bars per session = median number of bars per calendar date,
      times the days per year found as for daily bars (so hourly bars of a 6.5-hour equity
      session stamped 9:30 … 15:30 give 7 × 252).
    """
    if not isinstance(index, pd.DatetimeIndex):
        try:
            index = pd.DatetimeIndex(index)
        except (TypeError, ValueError) as exc:
            raise EvaluationInputError(
                "periods_per_year: the returns need a DatetimeIndex (dates of the bars) to "
                "infer the bar frequency; pass periods_per_year explicitly otherwise."
            ) from exc
    if len(index) < 2:
        raise EvaluationInputError(
            "periods_per_year: need at least 2 dated bars to infer the bar frequency; "
            "pass periods_per_year explicitly."
        )
    diffs = np.diff(index.values.astype("datetime64[ns]").astype(np.int64))
    if np.any(diffs <= 0):
        row = int(np.flatnonzero(diffs <= 0)[0]) + 1
        raise EvaluationInputError(
            f"periods_per_year: dates must be strictly increasing; row {row} "
            f"({index[row]}) is not after the previous bar. Sort and de-duplicate the dates."
        )
    median_days = float(np.median(diffs)) / 86_400e9
    weekend_share = float(np.mean(index.day_of_week >= 5))
    days_per_year = 365 if weekend_share > 0.10 else TRADING_DAYS_PER_YEAR
    if median_days >= 300:
        return 1.0
    if median_days >= 80:
        return 4.0
    if median_days >= 25:
        return 12.0
    if median_days >= 5:
        return 52.0
    if median_days >= 20 / 24:
        return float(days_per_year)
    bars_per_day = float(pd.Series(1, index=index).groupby(index.normalize()).size().median())
    return float(days_per_year) * bars_per_day


def _has_moments(r: np.ndarray) -> bool:
    """Whether skewness and kurtosis of ``r`` are defined: 3 bars or more, not (near-)constant."""
    return not (r.size < 3 or np.std(r) <= 1e-12 * max(1.0, float(np.max(np.abs(r)))))


def _moments(r: np.ndarray) -> tuple[float, float]:
    """Sample skewness and (non-excess, Pearson) kurtosis of per-bar returns."""
    if not _has_moments(r):
        return float("nan"), float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # near-constant series: precision note
        return float(_sps.skew(r, bias=True)), float(_sps.kurtosis(r, fisher=False, bias=True))


# --------------------------------------------------------------------------- performance
def performance_metrics(
    returns: pd.Series,
    benchmark_returns: pd.Series | None = None,
    periods_per_year: float | None = None,
) -> dict[str, float]:
    """Risk/return metrics of simple per-bar returns (risk-free rate 0), via empyrical.

    Returns a flat JSON-able dict: ``total_return, annual_return (CAGR), annual_volatility,
    sharpe, sortino, max_drawdown (<= 0), calmar, var_95, cvar_95 (per-bar, 5 % left tail),
    stability (R² of log cumulative return on time), alpha (annualised), beta`` (NaN without
    a benchmark), plus ``n_bars, periods_per_year, sharpe_per_bar, skew, kurtosis`` used by
    the probabilistic/deflated Sharpe ratios, and ``ruined``.

    Ruin: where the wealth ``Π(1 + r)`` first reaches zero or below (a return <= -1,
    ``ruin_index`` of the wealth), the returns are cut after that bar and its return is set
    to -1. Then ``ruined`` is True, ``total_return``, ``annual_return`` and ``max_drawdown``
    are -1, ``calmar`` is -1, ``stability`` is NaN (log wealth is -inf) and every other
    figure is computed on the returns up to and including the bar of ruin (``n_bars`` counts
    them; with a single bar the dispersion-based figures are NaN). The benchmark returns must
    cover the same bars as ``returns`` and are cut the same way.
    """
    if not isinstance(returns, pd.Series):
        returns = pd.Series(np.asarray(returns, dtype=float))
    r = returns.to_numpy(dtype=float)
    if r.size < 2 and not (r.size == 1 and r[0] <= -1.0):  # one bar is enough to measure ruin
        raise EvaluationInputError(
            f"returns: need at least 2 bars of returns to compute metrics, got {r.size}."
        )
    bad = np.flatnonzero(~np.isfinite(r))
    if bad.size:
        raise EvaluationInputError(
            f"returns: non-finite return at row {int(bad[0])} ({returns.index[bad[0]]}); "
            "metrics need a complete return series."
        )
    ppy = float(periods_per_year) if periods_per_year is not None else infer_periods_per_year(returns.index)
    if not ppy > 0:
        raise EvaluationInputError(f"periods_per_year: must be positive, got {periods_per_year!r}.")
    ann = dict(annualization=ppy)
    if benchmark_returns is not None:
        if not isinstance(benchmark_returns, pd.Series):
            benchmark_returns = pd.Series(np.asarray(benchmark_returns, dtype=float), index=returns.index)
        if len(benchmark_returns) != len(returns) or not benchmark_returns.index.equals(returns.index):
            raise EvaluationInputError(
                "benchmark_returns: must cover exactly the same bars as the returns "
                f"({len(returns)} bars from {returns.index[0]} to {returns.index[-1]}); "
                f"got {len(benchmark_returns)} bars. Replay the benchmark on the same period."
            )
    with np.errstate(over="ignore", under="ignore"):
        k = ruin_index(np.cumprod(1.0 + r))
    ruined = k is not None
    if ruined:
        r = r[: k + 1].copy()
        r[k] = -1.0
        if benchmark_returns is not None:
            benchmark_returns = benchmark_returns.iloc[: k + 1]
    with warnings.catch_warnings():
        # a ruined run may keep a single return: dispersion figures are NaN (numpy warns)
        warnings.simplefilter("ignore", RuntimeWarning)
        out = _performance(r, ann, ruined)
        if benchmark_returns is not None:
            alpha, beta = empyrical.alpha_beta(r, benchmark_returns.to_numpy(dtype=float), **ann)
            out["alpha"], out["beta"] = float(alpha), float(beta)
    return out


def _performance(r: np.ndarray, ann: dict, ruined: bool, lane: dict | None = None) -> dict[str, float]:
    """The performance record of returns ``r``; ``lane`` holds the ``sharpe``, ``volatility``,
    ``sortino`` and ``drawdown`` already reduced over all lanes at once (``_performance_lanes``)."""
    ppy = ann["annualization"]
    skew, kurt = _moments(r)
    if lane is None:
        lane = {
            "sharpe": empyrical.sharpe_ratio(r, **ann),
            "volatility": empyrical.annual_volatility(r, **ann),
            "sortino": empyrical.sortino_ratio(r, **ann),
            "drawdown": empyrical.max_drawdown(r),
        }
    sharpe = float(lane["sharpe"])
    out = {
        "n_bars": int(r.size),
        "periods_per_year": ppy,
        "ruined": ruined,
        "total_return": float(np.prod(1.0 + r) - 1.0),
        "annual_return": float(empyrical.annual_return(r, **ann)),
        "annual_volatility": float(lane["volatility"]),
        "sharpe": sharpe,
        "sharpe_per_bar": sharpe / math.sqrt(ppy) if np.isfinite(sharpe) else float("nan"),
        "sortino": float(lane["sortino"]),
        "max_drawdown": float(lane["drawdown"]),
        "calmar": float(empyrical.calmar_ratio(r, **ann)),
        "var_95": float(empyrical.value_at_risk(r, cutoff=VAR_CUTOFF)),
        "cvar_95": float(empyrical.conditional_value_at_risk(r, cutoff=VAR_CUTOFF)),
        "stability": float("nan") if ruined else float(empyrical.stability_of_timeseries(r)),
        "skew": skew,
        "kurtosis": kurt,
        "alpha": float("nan"),
        "beta": float("nan"),
    }
    if ruined:
        # definitional, not left to rounding: the account lost all of its capital
        out.update(total_return=-1.0, annual_return=-1.0, max_drawdown=-1.0, calmar=-1.0)
    return out


# --------------------------------------------------------------------------- trades
@dataclass(frozen=True)
class RoundTrip:
    """One round trip: opened at ``entry_row``, closed at ``exit_row`` (None if still open)."""

    entry_row: int
    exit_row: int | None
    entry_date: str
    exit_date: str | None
    direction: int  # +1 long, -1 short
    bars_held: int
    pnl: float  # cash P&L net of commissions, slippage and borrow attributed to the trip
    closed: bool

    def to_dict(self) -> dict:
        return asdict(self)


def round_trips(frame: pd.DataFrame) -> list[RoundTrip]:
    """Split a backtest ledger into round trips.

    Definition (docs/metrics.md): the ledger starts with the flat pre-trade row (cash =
    initial capital), as ``env.replay`` writes it.
    A trip is *entered* at the row where the sign of ``shares`` goes from 0 to non-zero and
    *exited* at the row where it goes back to 0 or flips sign; a flip exits the old trip
    and enters a new one on the same row. Resizing without a sign change stays inside the
    trip.

    The trip P&L comes from the cash ledger, so it reconciles to the cent whatever the
    ``cost`` column includes: it is the sum of the cash changes on the trip's rows (fills at
    ``fill_price``, commissions, borrow), plus, for a trip still open at the end, the last
    position marked at the last close (recovered as ``(equity - cash) / shares``). On a
    flip row, the fill is split into its closing part (``prev_shares × fill_price``) and
    its opening part, and the row's fees (cash change not explained by the fill) are split
    in proportion to the shares each part trades. The P&L of all trips therefore adds up to
    final equity − initial capital (when flat bars carry no cash change).
    ``bars_held`` = exit row − entry row (bars from the entry fill to the exit fill; for an
    open trip, to the last row + 1).
    """
    if is_portfolio_ledger(frame):
        raise EvaluationInputError(
            "frame: a portfolio ledger (traded_notional column) has no round trips; they are defined for "
            "one asset. Use trade_metrics, which measures a portfolio from its traded notional."
        )
    _check_frame(frame)
    return _round_trips(_until_ruin(frame))


def _round_trips(frame: pd.DataFrame) -> list[RoundTrip]:
    """``round_trips`` of a checked one-asset ledger cut at its bar of ruin."""
    shares = frame["shares"].to_numpy(dtype=float)
    fill = np.nan_to_num(frame["fill_price"].to_numpy(dtype=float), nan=0.0)  # NaN = no trade
    equity = frame["equity"].to_numpy(dtype=float)
    cash = frame["cash"].to_numpy(dtype=float)
    index = _date_index(frame)
    sign = np.sign(shares).astype(int)
    prev_shares = np.concatenate([[0.0], shares[:-1]])
    prev_sign = np.sign(prev_shares).astype(int)
    d_cash = np.diff(cash, prepend=cash[0])
    d_shares = shares - prev_shares
    fees = -(d_cash + d_shares * fill)  # cash outflow not explained by the fill itself

    spans: list[tuple] = []  # (entry row, exit row, direction, bars held, pnl, closed)
    open_entry: int | None = None
    open_dir = 0
    pnl = 0.0
    for t in range(len(shares)):
        if prev_sign[t] != 0 and sign[t] != prev_sign[t]:
            # exit (and a new entry on the same row when the sign flips)
            frac = abs(prev_shares[t]) / abs(d_shares[t])
            pnl += prev_shares[t] * fill[t] - fees[t] * frac
            spans.append((open_entry, t, open_dir, t - open_entry, float(pnl), True))
            open_entry, open_dir, pnl = None, 0, 0.0
            if sign[t] != 0:
                open_entry, open_dir = t, int(sign[t])
                pnl = -shares[t] * fill[t] - fees[t] * (1.0 - frac)
        elif prev_sign[t] == 0 and sign[t] != 0:
            open_entry, open_dir = t, int(sign[t])
            pnl = d_cash[t]
        elif open_entry is not None:
            pnl += d_cash[t]
        # a cash change while flat belongs to no trip (it still shows in equity)
    if open_entry is not None:
        last = len(shares) - 1
        mark = (equity[last] - cash[last]) / shares[last]
        pnl += shares[last] * mark
        spans.append((open_entry, None, open_dir, last + 1 - open_entry, float(pnl), False))
    rows = sorted({row for entry, exit_, *_ in spans for row in (entry, exit_) if row is not None})
    date = dict(zip(rows, map(str, index[rows])))  # only the rows of fills are spelled out
    return [
        RoundTrip(entry, exit_, date[entry], None if exit_ is None else date[exit_], *rest)
        for entry, exit_, *rest in spans
    ]


def trade_metrics(frame: pd.DataFrame, periods_per_year: float | None = None) -> dict[str, float]:
    """Trade statistics of a backtest ledger (definitions in ``round_trips`` and docs/metrics.md).

    ``n_trades`` completed round trips; ``win_rate`` share of completed trips with P&L > 0;
    ``profit_factor`` gross profit / gross loss of completed trips (inf with no losing trip,
    NaN with no trip); ``avg_holding_bars`` mean bars held of completed trips;
    ``open_trade_pnl`` marked-to-market P&L of a trip still open at the end (0 if none);
    ``turnover`` total traded notional / mean equity; ``annual_turnover`` the same per year;
    ``exposure`` share of bars with a non-zero position; ``avg_gross_exposure`` mean
    |shares × mark| / equity; ``total_costs`` sum of the ``cost`` column as booked by the
    environment (commission + slippage + borrow per docs/contracts.md).

    A ruined ledger (``ruin_index``) is measured up to and including the bar of ruin; the
    equity-weighted figures (turnover's mean equity, gross exposure) use the bars with
    positive equity only (turnover divides by the initial capital, and gross exposure is NaN,
    when the account is ruined on its first bar).

    A portfolio ledger (``is_portfolio_ledger``) is measured by ``portfolio_trade_metrics``.
    """
    if is_portfolio_ledger(frame):
        return portfolio_trade_metrics(frame, periods_per_year)
    _check_frame(frame)
    return _trade_metrics(_until_ruin(frame), periods_per_year)


def _trade_metrics(frame: pd.DataFrame, periods_per_year: float | None) -> dict[str, float]:
    """``trade_metrics`` of a checked ledger (one asset or a portfolio) cut at its bar of ruin."""
    if is_portfolio_ledger(frame):
        return _portfolio_trade_metrics(frame, periods_per_year)
    trips = _round_trips(frame)
    closed = [t for t in trips if t.closed]
    pnls = np.array([t.pnl for t in closed], dtype=float)
    gains = pnls[pnls > 0].sum()
    losses = -pnls[pnls < 0].sum()
    if pnls.size == 0:
        profit_factor = float("nan")
    elif losses == 0:
        profit_factor = float("inf") if gains > 0 else float("nan")
    else:
        profit_factor = float(gains / losses)
    steps = frame.iloc[1:]  # bars after the pre-trade start row
    shares_all = frame["shares"].to_numpy(dtype=float)
    fill = np.nan_to_num(steps["fill_price"].to_numpy(dtype=float), nan=0.0)
    shares = steps["shares"].to_numpy(dtype=float)
    equity = steps["equity"].to_numpy(dtype=float)
    cash = steps["cash"].to_numpy(dtype=float)
    traded = np.abs(np.diff(shares_all))[: len(steps)] * fill
    alive = equity > 0  # every bar, unless the last one is the bar of ruin
    gross = np.abs(equity[alive] - cash[alive]) / equity[alive]  # |shares × close| / equity
    n = len(steps)
    if periods_per_year is None:
        idx = _date_index(frame)
        periods_per_year = infer_periods_per_year(idx) if isinstance(idx, pd.DatetimeIndex) else float("nan")
    mean_equity = equity[alive].mean() if alive.any() else float(frame["equity"].iloc[0])
    turnover = float(traded.sum() / mean_equity)
    open_trip = [t for t in trips if not t.closed]
    return {
        "n_trades": int(len(closed)),
        "n_open_trades": int(len(open_trip)),
        "win_rate": float(np.mean(pnls > 0)) if pnls.size else float("nan"),
        "profit_factor": profit_factor,
        "avg_holding_bars": float(np.mean([t.bars_held for t in closed])) if closed else float("nan"),
        "open_trade_pnl": float(open_trip[0].pnl) if open_trip else 0.0,
        "turnover": turnover,
        "annual_turnover": turnover * float(periods_per_year) / n,
        "exposure": float(np.mean(shares != 0)),
        "avg_gross_exposure": float(gross.mean()) if gross.size else float("nan"),
        "total_costs": float(frame["cost"].to_numpy(dtype=float).sum()),
    }


def portfolio_trade_metrics(frame: pd.DataFrame, periods_per_year: float | None = None) -> dict[str, float]:
    """Trade statistics of a portfolio ledger (one account over N assets, ``portfolio.ledger``), with
    the keys of ``trade_metrics`` so the tables line up:

    ``turnover`` total ``traded_notional`` (|traded shares| x close, summed over assets and bars) /
    mean equity; ``annual_turnover`` the same per year; ``exposure`` share of bars (after the start
    row) with ``gross_exposure`` > 0 (on a bar of ruin, where it is undefined: with a position
    open); ``avg_gross_exposure`` mean sum(|w|) over the bars with positive equity;
    ``total_costs`` the sum of ``cost``; ``n_trades`` the number of asset fills (``n_fills``
    summed; NaN when the ledger has no ``n_fills``); ``n_open_trades`` positions held at the end
    (``n_positions``). ``win_rate``, ``profit_factor``, ``avg_holding_bars`` and
    ``open_trade_pnl`` are NaN: round trips are a one-asset notion (a rebalance resizes many
    positions at once, so "a trade" has no entry and exit of its own). Ruin as in
    ``trade_metrics``.
    """
    _check_frame(frame)
    return _portfolio_trade_metrics(_until_ruin(frame), periods_per_year)


def _portfolio_trade_metrics(frame: pd.DataFrame, periods_per_year: float | None) -> dict[str, float]:
    """``portfolio_trade_metrics`` of a checked portfolio ledger cut at its bar of ruin."""
    steps = frame.iloc[1:]
    equity = steps["equity"].to_numpy(dtype=float)
    traded = steps["traded_notional"].to_numpy(dtype=float)
    alive = equity > 0
    n = len(steps)
    if periods_per_year is None:
        idx = _date_index(frame)
        periods_per_year = infer_periods_per_year(idx) if isinstance(idx, pd.DatetimeIndex) else float("nan")
    mean_equity = equity[alive].mean() if alive.any() else float(frame["equity"].iloc[0])
    turnover = float(traded.sum() / mean_equity)
    nan = float("nan")
    if "gross_exposure" in steps.columns:
        gross = pd.to_numeric(steps["gross_exposure"], errors="coerce").to_numpy(dtype=float)
    else:  # long-only: sum(w) = 1 - cash / equity
        with np.errstate(divide="ignore", invalid="ignore"):
            gross = np.where(alive, 1.0 - steps["cash"].to_numpy(dtype=float) / equity, nan)
    exposed = gross > 0
    if "n_positions" in steps.columns:
        exposed = np.where(np.isfinite(gross), exposed, steps["n_positions"].to_numpy(dtype=float) > 0)
    g = gross[alive & np.isfinite(gross)]
    has = {c: c in frame.columns for c in ("n_fills", "n_positions")}
    return {
        "n_trades": int(steps["n_fills"].to_numpy(dtype=float).sum()) if has["n_fills"] else nan,
        "n_open_trades": int(frame["n_positions"].iloc[-1]) if has["n_positions"] else nan,
        "win_rate": nan,
        "profit_factor": nan,
        "avg_holding_bars": nan,
        "open_trade_pnl": nan,
        "turnover": turnover,
        "annual_turnover": turnover * float(periods_per_year) / n,
        "exposure": float(np.mean(exposed)),
        "avg_gross_exposure": float(g.mean()) if g.size else nan,
        "total_costs": float(frame["cost"].to_numpy(dtype=float).sum()),
    }


def evaluate_backtest(
    frame: pd.DataFrame,
    benchmark_frame: pd.DataFrame | None = None,
    periods_per_year: float | None = None,
) -> dict[str, float]:
    """All metrics of one account's backtest ledger (one lane of ``env.replay``).

    Performance metrics use the equity returns from the start row on (so the first fill's
    costs count), alpha/beta are against ``benchmark_frame`` (e.g. buy-and-hold replayed on
    the same bars with the same config); trade metrics as in ``trade_metrics``. One flat,
    JSON-able dict (use ``json_safe`` before writing strict JSON). A portfolio ledger
    (``traded_notional`` column, ``evaluation.ledger.run_ledger``) gets the same performance
    metrics and ``portfolio_trade_metrics``.

    A ledger whose equity reaches zero or below is measured up to and including the bar of
    ruin (``equity_returns``; the frozen rows ``env.replay`` writes after it are dropped,
    alpha/beta use the benchmark over the same bars) and has ``ruined: True``;
    ``final_equity`` is the equity at the bar of ruin (<= 0).
    """
    _check_frame(frame)
    bench = None if benchmark_frame is None else _benchmark_returns(benchmark_frame)
    cut, rets, _, bench, ppy = _lane_returns(frame, benchmark_frame, bench, periods_per_year)
    out = performance_metrics(rets, bench, ppy)
    out.update(_trade_metrics(cut, ppy))
    return _with_capital(out, cut)


def evaluate_backtests(
    frames,
    benchmark_frame: pd.DataFrame | None = None,
    periods_per_year: float | None = None,
) -> list[dict[str, float]]:
    """``evaluate_backtest`` of every ledger in ``frames`` (the lanes of one run), equal bit for bit
    to calling it lane by lane, errors included.

    The benchmark is checked once, and the lanes that were not ruined and span the same bars are
    measured together: ``sharpe``, ``annual_volatility``, ``sortino`` and ``max_drawdown`` are one
    reduction over a bars x lanes array each, laid out so that every lane is summed in the order it
    is alone. The other figures stay per lane, because reducing them over lanes changes their last
    bits (``annual_return``, ``calmar``, ``skew``, ``kurtosis``) or empyrical has no form over lanes
    (``var_95``, ``cvar_95``, ``stability``, ``alpha``, ``beta``).
    """
    perf: list[dict | None] = []
    trades, frames_cut = [], []
    groups: dict[tuple, list[int]] = {}
    bench_full = None
    for i, frame in enumerate(frames):
        _check_frame(frame)
        if benchmark_frame is not None and i == 0:
            bench_full = _benchmark_returns(benchmark_frame)
        cut, rets, ruined, bench, ppy = _lane_returns(frame, benchmark_frame, bench_full, periods_per_year)
        if _batchable(rets, bench, ppy, ruined):
            perf.append(None)
            groups.setdefault((len(rets), float(ppy)), []).append(i)
        else:  # measured alone, which also raises performance_metrics' errors in lane order
            perf.append(performance_metrics(rets, bench, ppy))
        trades.append(_trade_metrics(cut, ppy))
        frames_cut.append((cut, rets, bench))
    for (_, ppy), lanes in groups.items():
        rets = np.stack([frames_cut[i][1].to_numpy(dtype=float) for i in lanes])
        bench = frames_cut[lanes[0]][2]
        for i, out in zip(lanes, _performance_lanes(rets, bench, dict(annualization=ppy))):
            perf[i] = out
    return [_with_capital({**p, **t}, f[0]) for p, t, f in zip(perf, trades, frames_cut)]


def _benchmark_returns(benchmark_frame: pd.DataFrame) -> pd.Series:
    _check_frame(benchmark_frame, name="benchmark_frame")
    return bar_returns(equity_from_frame(benchmark_frame))


def _lane_returns(frame, benchmark_frame, bench, periods_per_year):
    """A checked ledger cut at its bar of ruin, its returns, whether it was ruined, the benchmark's
    returns over the same bars and the periods per year (``evaluate_backtest``)."""
    full_dates = _date_index(frame)
    frame = _until_ruin(frame)
    rets, ruined = equity_returns(equity_from_frame(frame))
    if benchmark_frame is not None:
        if float(benchmark_frame["equity"].iloc[0]) != float(frame["equity"].iloc[0]):
            raise EvaluationInputError(
                f"benchmark_frame: starts with capital {benchmark_frame['equity'].iloc[0]!r} but the "
                f"frame with {frame['equity'].iloc[0]!r}; replay benchmarks with the same config."
            )
        if ruined:
            # the same bars as the run's returns; a misaligned benchmark is still refused below
            if len(full_dates) != len(benchmark_frame):
                raise EvaluationInputError(
                    "benchmark_returns: must cover exactly the same bars as the returns "
                    f"({len(full_dates) - 1} bars); got {len(bench)} bars. Replay the benchmark on the same "
                    "period."
                )
            bench = bench.iloc[: len(rets)]
    if periods_per_year is None:
        periods_per_year = infer_periods_per_year(_date_index(frame) if ruined else rets.index)
    return frame, rets, ruined, bench, periods_per_year


def _with_capital(out: dict, frame: pd.DataFrame) -> dict:
    out["initial_capital"] = float(frame["equity"].iloc[0])
    out["final_equity"] = float(frame["equity"].iloc[-1])
    return out


def _batchable(rets: pd.Series, bench: pd.Series | None, ppy: float, ruined: bool) -> bool:
    """Whether ``performance_metrics`` measures these returns without ruin and without an error."""
    r = rets.to_numpy(dtype=float)
    if ruined or r.size < 2 or not np.isfinite(r).all() or not float(ppy) > 0:
        return False
    if bench is not None and (len(bench) != len(rets) or not bench.index.equals(rets.index)):
        return False
    with np.errstate(over="ignore", under="ignore"):
        return ruin_index(np.cumprod(1.0 + r)) is None


def _performance_lanes(rets: np.ndarray, bench: pd.Series | None, ann: dict) -> list[dict[str, float]]:
    """``_performance`` (plus alpha/beta against ``bench``) of each row of ``rets`` (lanes x bars, no
    ruin), the reductions that keep every lane's bits done over all lanes at once."""
    by_bar = rets.T  # bars x lanes, each lane contiguous in memory: reduced in its own order
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        sharpe = empyrical.sharpe_ratio(by_bar, **ann)
        volatility = empyrical.annual_volatility(by_bar, **ann)
        sortino = empyrical.sortino_ratio(by_bar, **ann)
        drawdown = empyrical.max_drawdown(by_bar)
        bench_r = None if bench is None else bench.to_numpy(dtype=float)
        out = []
        for j, r in enumerate(rets):
            lane = {
                "sharpe": sharpe[j],
                "volatility": volatility[j],
                "sortino": sortino[j],
                "drawdown": drawdown[j],
            }
            rec = _performance(r, ann, False, lane)
            if bench_r is not None:
                alpha, beta = empyrical.alpha_beta(r, bench_r, **ann)
                rec["alpha"], rec["beta"] = float(alpha), float(beta)
            out.append(rec)
    return out


def json_safe(obj):
    """Recursively replace NaN/inf by None and numpy scalars by Python ones (strict JSON)."""
    if isinstance(obj, Mapping):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return v if math.isfinite(v) else None
    return obj
