"""Synthetic universes with a known truth, for statistical tests of portfolio agents and gates.

The multi-asset counterpart of :mod:`..markets` (docs/portfolio_data.md). A universe is built
from real days resampled i.i.d.: a *day* is a whole cross-sectional row of close-to-close
returns of a real close panel (every ticker's move on the same real date, so the correlations
and fat tails of the real universe survive), drawn with replacement and laid end to end on a
business-day calendar. Nothing else survives: no autocorrelation, no momentum, no reversal.

* :func:`null_universe`: only that, so no allocation rule can beat equal weight except by luck.
* :func:`planted_rotation_universe`: the same, plus a planted rotation edge: the asset with the
  best trailing ``lookback``-bar return keeps outperforming for the next ``hold`` bars.
* :func:`rotation_oracle`: the replay decider that knows the planted rule (not the future).

Hand-written (numpy) like :mod:`..markets`: no maintained library builds such universes.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..markets.days import MarketSpecError, check_number, check_seed
from ..paths import project_root
from .panel import PortfolioInputError

__all__ = [
    "DEFAULT_EDGE",
    "DEFAULT_SOURCE",
    "SYNTHETIC_START",
    "leader_excess_tstat",
    "null_universe",
    "planted_rotation_universe",
    "rotation_oracle",
    "trailing_leaders",
    "universe_returns",
]

#: The shipped 20-stock close panel (1990-2022) that planted universes resample by default.
DEFAULT_SOURCE = "data/01_raw/sp500_20_stocks_close_1990_2022.csv"
#: The first date of every synthetic universe (a business day); rows are consecutive business days.
SYNTHETIC_START = "2000-01-03"
#: Daily log drift the planted leader shares (docs/portfolio_data.md, "The planted edge"):
#: a persistent leader gains ``0.003 * (1 - 1/N)`` log a bar over the others (0.24 % a day at N=5,
#: about a tenth of a stock's daily volatility); the oracle then reaches a Sharpe near 1.2-2.7
#: against about 0.7 for equal weight after 3 bps costs (seeds 0-5, 2520 bars).
DEFAULT_EDGE = 0.003
_INITIAL_PRICE = 100.0


class SyntheticUniverseError(PortfolioInputError):
    """A parameter or the source panel of a synthetic universe is unusable (names which)."""


def _num(name: str, value, lo: float, hi: float, **kw):
    """``markets.days.check_number`` with errors naming ``synthetic.<name>`` and this module's docs."""
    try:
        return check_number(name, value, lo, hi, **kw)
    except MarketSpecError as err:
        msg = str(err).replace("markets.", "synthetic.").replace("docs/markets.md", "docs/portfolio_data.md")
        raise SyntheticUniverseError(msg) from None


def _seed(seed) -> int:
    try:
        return check_seed(seed)
    except MarketSpecError as err:
        raise SyntheticUniverseError(str(err).replace("markets.", "synthetic.")) from None


# --------------------------------------------------------------------------- real days
def _check_close(close: pd.DataFrame, name: str = "close") -> pd.DataFrame:
    if not isinstance(close, pd.DataFrame) or close.shape[1] < 1:
        raise SyntheticUniverseError(
            f"{name} must be a date x ticker DataFrame of closes (e.g. Universe.field('Close')), "
            f"got {type(close).__name__}"
        )
    values = close.to_numpy(dtype=np.float64)
    bad = np.isfinite(values) & (values <= 0)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise SyntheticUniverseError(
            f"{name}: ticker {close.columns[c]!r} has a non-positive close at row {r} "
            f"({close.index[r]}); closes must be > 0"
        )
    return close


def _real_rows(close: pd.DataFrame) -> tuple[np.ndarray, pd.DatetimeIndex]:
    """(D, N) log close-to-close returns of the real dates where every ticker has a close on that
    date and on the previous row (a real one-day move of the whole cross-section), and those dates."""
    values = np.log(close.to_numpy(dtype=np.float64))
    moves = values[1:] - values[:-1]
    ok = np.isfinite(moves).all(axis=1)
    if ok.sum() < 250:
        raise SyntheticUniverseError(
            f"close panel of tickers {list(close.columns)} has only {int(ok.sum())} dates on which every "
            "ticker has a move (a close on that date and the previous one); at least 250 are needed. "
            "Drop late-listed tickers or give a longer history."
        )
    return moves[ok], pd.DatetimeIndex(close.index[1:][ok])


def _draw(close: pd.DataFrame, seed: int, n_bars: int) -> tuple[np.ndarray, pd.DatetimeIndex]:
    """``n_bars - 1`` real rows drawn i.i.d. with replacement (bar 0 has no move) and their dates."""
    moves, dates = _real_rows(close)
    pick = np.random.default_rng(seed).integers(0, len(moves), size=n_bars - 1)
    return moves[pick], dates[pick]


def _assemble(log_moves: np.ndarray, tickers: Sequence[str], attrs: dict) -> pd.DataFrame:
    """Closes starting at 100 on :data:`SYNTHETIC_START`, one business day per row."""
    n = len(log_moves) + 1
    levels = np.vstack([np.zeros((1, log_moves.shape[1])), np.cumsum(log_moves, axis=0)])
    index = pd.bdate_range(SYNTHETIC_START, periods=n, name="date")
    out = pd.DataFrame(_INITIAL_PRICE * np.exp(levels), index=index, columns=list(tickers))
    out.columns.name = "ticker"
    out.attrs.update(attrs)  # scalars only (pandas compares attrs when combining frames)
    return out


def universe_returns(close: pd.DataFrame | np.ndarray) -> np.ndarray:
    """(T-1, N) simple close-to-close returns of a close panel (NaN where a close is missing)."""
    c = np.asarray(close, dtype=np.float64)
    return c[1:] / c[:-1] - 1.0


def null_universe(close: pd.DataFrame, seed: int, n_bars: int | None = None) -> pd.DataFrame:
    """Real days of ``close`` (date x ticker) resampled i.i.d.: no structure survives.

    Every row of returns of the result is a whole real cross-sectional row of ``close``: the
    tickers' close-to-close moves on one real date where all of them have a close on that date
    and the previous row (so late listings and gaps are skipped, never filled). ``n_bars`` rows
    (default ``len(close)``), the first at 100 for every ticker on :data:`SYNTHETIC_START`, then
    consecutive business days. Same ``seed``, same universe. ``attrs``: kind, seed.
    """
    seed = _seed(seed)
    close = _check_close(close)
    n_bars = len(close) if n_bars is None else _num("n_bars", n_bars, 2, 10**7, integer=True, lo_open=False)
    moves, _ = _draw(close, seed, n_bars)
    return _assemble(moves, [str(t) for t in close.columns], {"kind": "null", "seed": seed})


# --------------------------------------------------------------------------- planted rotation
def trailing_leaders(close: np.ndarray, lookback: int) -> np.ndarray:
    """(T,) int: at each row t, the column with the best return over rows ``t - lookback .. t``
    (closes up to t only; the first such column on ties); -1 where no column has both closes
    (the first ``lookback`` rows, or tickers not listed yet)."""
    c = np.asarray(close, dtype=np.float64)
    T = c.shape[0]
    out = np.full(T, -1, dtype=np.int64)
    if T <= lookback:
        return out
    ret = c[lookback:] / c[:-lookback]
    ok = np.isfinite(ret)
    any_ok = ok.any(axis=1)
    best = np.argmax(np.where(ok, ret, -np.inf), axis=1)
    out[lookback:] = np.where(any_ok, best, -1)
    return out


@functools.lru_cache(maxsize=2)
def _shipped_close(path: str) -> pd.DataFrame:
    from ..universe import read_universe_csv

    return read_universe_csv(path).field("Close")


def _default_source() -> pd.DataFrame:
    root = project_root(Path(__file__)) or project_root() or Path.cwd()
    path = Path(root) / DEFAULT_SOURCE
    if not path.is_file():
        raise SyntheticUniverseError(
            f"the default source of planted universes, {path}, is missing; pass close=<date x ticker closes>"
        )
    return _shipped_close(str(path)).copy()


def planted_rotation_universe(
    seed: int,
    *,
    n_assets: int = 5,
    n_bars: int = 2520,
    lookback: int = 20,
    hold: int = 5,
    edge: float = DEFAULT_EDGE,
    close: pd.DataFrame | None = None,
    tickers: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Real days resampled i.i.d. plus a planted rotation edge (docs/portfolio_data.md).

    ``n_assets`` tickers of ``close`` (default: the shipped 20-stock panel, :data:`DEFAULT_SOURCE`)
    are chosen by the seed (or given as ``tickers``), and ``n_bars`` real cross-sectional days of
    them are drawn as in :func:`null_universe` (same seed and tickers, same days). Then, bar by
    bar, the *leader* at bar s (:func:`trailing_leaders`: best return over the last ``lookback``
    bars of the universe being built, closes up to s) gets a share of the edge on each of the
    next ``hold`` bars: on bar u, asset i's log move gets

        ``edge * (k_i - K / n_assets) / hold``,  ``k_i`` = how many of bars ``u - hold .. u - 1``
        had leader i, ``K = sum(k_i)`` (``hold`` once ``lookback + hold`` bars have passed),

    so the added drifts sum to zero across assets (the cross-sectional average move is the real
    day's) and a persistent leader gains ``edge * (1 - 1/n_assets)`` a bar over the others. No
    drift is added before the first leader (bar ``lookback``). A rule deciding at bar t fills at
    the next close and earns from bar t+2 on, so ``hold`` must be at least 2 to be exploitable.
    ``attrs``: kind, seed, lookback, hold, edge.
    """
    seed = _seed(seed)
    n_assets = _num("n_assets", n_assets, 2, 1000, integer=True, lo_open=False)
    n_bars = _num("n_bars", n_bars, 2, 10**7, integer=True, lo_open=False)
    lookback = _num("lookback", lookback, 1, 10**5, integer=True, lo_open=False)
    hold = _num("hold", hold, 1, 10**5, integer=True, lo_open=False)
    edge = _num("edge", edge, 0.0, 0.05, lo_open=False)
    source = _default_source() if close is None else _check_close(close)
    available = [str(t) for t in source.columns]
    if tickers is None:
        if n_assets > len(available):
            raise SyntheticUniverseError(
                f"n_assets={n_assets} but the source panel has only {len(available)} tickers ({available})"
            )
        pick = np.sort(np.random.default_rng([seed, 1]).choice(len(available), n_assets, replace=False))
        chosen = [available[i] for i in pick]
    else:
        chosen = [str(t) for t in tickers]
        missing = [t for t in chosen if t not in available]
        if missing or len(set(chosen)) != len(chosen) or len(chosen) < 2:
            raise SyntheticUniverseError(
                f"tickers={list(tickers)}: give at least 2 distinct tickers of the source panel "
                f"({available}); unknown: {missing}"
            )
        n_assets = len(chosen)
    moves, _ = _draw(source[chosen], seed, n_bars)
    moves = _plant(moves, lookback, hold, edge)
    attrs = {"kind": "rotation", "seed": seed, "lookback": lookback, "hold": hold, "edge": edge}
    return _assemble(moves, chosen, attrs)


def _plant(moves: np.ndarray, lookback: int, hold: int, edge: float) -> np.ndarray:
    """The moves with the rotation drift added bar by bar (the leaders depend on planted prices)."""
    T1, N = moves.shape
    out = moves.copy()
    level = np.zeros((T1 + 1, N))  # log closes, bar 0 = 0
    leaders = np.full(T1 + 1, -1, dtype=np.int64)
    counts = np.zeros(N)
    for u in range(1, T1 + 1):
        s = u - 1  # the leader of bar u-1 is known at its close
        if s >= lookback:
            leaders[s] = int(np.argmax(level[s] - level[s - lookback]))
            counts[leaders[s]] += 1
        old = s - hold
        if old >= lookback:
            counts[leaders[old]] -= 1
        if counts.any():  # bars u-hold .. u-1 hold at least one leader
            out[u - 1] += edge * (counts - counts.sum() / N) / hold
        level[u] = level[u - 1] + out[u - 1]
    return out


def rotation_oracle(close: np.ndarray, lookback: int):
    """A replay decider that holds 100 % of the asset with the best trailing ``lookback``-bar
    return at the decision bar, computed from ``close[..bar]`` only (:func:`trailing_leaders`).

    ``close`` must be the (T, N) closes of the panel being replayed (``panel.close``), row for
    row. Where no asset has a ``lookback``-bar history yet (early rows, late listings) it holds
    cash. ``decide(obs, bar) -> (L, N)`` float64 weights, the same for every lane.
    """
    c = np.asarray(close, dtype=np.float64)
    if c.ndim != 2:
        raise SyntheticUniverseError(f"rotation_oracle: close must be (T, N), got shape {c.shape}")
    lookback = _num("lookback", lookback, 1, 10**5, integer=True, lo_open=False)
    leaders = trailing_leaders(c, lookback)
    N = c.shape[1]

    def decide(obs: torch.Tensor, bar: int) -> np.ndarray:
        w = np.zeros((obs.shape[0], N))
        if leaders[bar] >= 0:
            w[:, leaders[bar]] = 1.0
        return w

    return decide


def leader_excess_tstat(close: pd.DataFrame | np.ndarray, lookback: int = 20, skip: int = 1) -> float:
    """How well the trailing ``lookback``-bar leader predicts returns: the t-statistic of
    ``d_t = r[leader_t, t+skip] - mean_i r[i, t+skip]`` (the leader's simple return ``skip`` bars
    after the decision bar t minus the cross-sectional mean). Under i.i.d. days ``d_t`` is a
    martingale difference, so the statistic is about N(0, 1); a planted edge makes it large."""
    c = np.asarray(close, dtype=np.float64)
    leaders = trailing_leaders(c, lookback)
    r = universe_returns(c)  # r[k] = move from row k to k+1
    t = np.arange(len(c))
    use = (leaders >= 0) & (t + skip < len(c))
    t = t[use]
    rows = r[t + skip - 1]
    d = rows[np.arange(len(t)), leaders[t]] - np.nanmean(rows, axis=1)
    d = d[np.isfinite(d)]
    return float(d.mean() / (d.std(ddof=1) / np.sqrt(len(d))))
