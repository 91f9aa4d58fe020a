"""The one deterministic replay of weight deciders over a portfolio panel.

Validation scoring, backtests, benchmarks, the stitched walk-forward record and the paper
account's parity check all call :func:`replay_weights`: L lanes (one account each) step together
through one :class:`~..env.portfolio.PortfolioCore` (the execution kernel's costs, same capital),
from the panel's first decision row ``window - 1`` to its last bar.

A decider is ``decide(obs, bar) -> weights`` or ``-> (weights, hold)``: ``obs`` the (L, obs_dim)
observation at the decision bar (features up to ``bar``, current weights), ``bar`` the decision
row in the panel (data up to this row may be used; never later rows), ``weights`` (L, N) targets
filled at the next close, ``hold`` an optional (L,) bool mask of lanes that keep their shares
this bar (no order, no cost: buy-and-hold, or between rebalances).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from ..env.portfolio import PortfolioConfig, PortfolioCore, PortfolioInputError
from .panel import PortfolioPanel

__all__ = ["LEDGER_COLUMNS", "PortfolioRun", "replay_weights"]

Decider = Callable[[torch.Tensor, int], object]

#: per-lane, per-bar columns of :meth:`PortfolioRun.frame` (money in account currency)
LEDGER_COLUMNS = (
    "lane",
    "bar",
    "date",
    "equity",
    "cash",
    "cost",
    "commission",
    "slippage",
    "borrow",
    "traded_notional",
    "gross_exposure",
    "n_positions",
)


@dataclass(frozen=True)
class PortfolioRun:
    """A replay's record. Row 0 is the pre-trade start row (the first decision bar, all cash);
    row s >= 1 is the bar after the s-th decision (fills and mark at its close).

    ``equity``, ``cash``, ``cost``, ``commission``, ``slippage``, ``borrow``, ``traded_notional``:
    (L, S+1) float64; ``weights`` (at the mark), ``shares``, ``traded_shares``, ``fill_price``
    (NaN where nothing traded), ``targets`` (the decided weights, row s = decision for row s+1's
    fill; the last row is NaN): (L, S+1, N).
    """

    tickers: tuple[str, ...]
    dates: pd.DatetimeIndex  # (S+1,)
    bars: np.ndarray  # (S+1,) panel rows
    equity: np.ndarray
    cash: np.ndarray
    cost: np.ndarray
    commission: np.ndarray
    slippage: np.ndarray
    borrow: np.ndarray
    traded_notional: np.ndarray
    weights: np.ndarray
    shares: np.ndarray
    traded_shares: np.ndarray
    fill_price: np.ndarray
    targets: np.ndarray
    close: np.ndarray  # (S+1, N) the closes of the recorded bars (NaN before a listing)
    config: PortfolioConfig

    @property
    def n_lanes(self) -> int:
        return int(self.equity.shape[0])

    def returns(self) -> np.ndarray:
        """(L, S) simple bar returns of equity."""
        return self.equity[:, 1:] / self.equity[:, :-1] - 1.0

    def frame(self) -> pd.DataFrame:
        """The long ledger: one row per lane and bar (:data:`LEDGER_COLUMNS`)."""
        L, S1 = self.equity.shape
        eq = self.equity
        with np.errstate(divide="ignore", invalid="ignore"):
            gross = np.where(eq > 0, np.abs(self.weights).sum(2), np.nan)
        return pd.DataFrame(
            {
                "lane": np.repeat(np.arange(L), S1),
                "bar": np.tile(self.bars, L),
                "date": np.tile(self.dates.to_numpy(), L),
                "equity": eq.ravel(),
                "cash": self.cash.ravel(),
                "cost": self.cost.ravel(),
                "commission": self.commission.ravel(),
                "slippage": self.slippage.ravel(),
                "borrow": self.borrow.ravel(),
                "traded_notional": self.traded_notional.ravel(),
                "gross_exposure": gross.ravel(),
                "n_positions": (self.shares != 0).sum(2).ravel(),
            }
        )

    def weights_frame(self, lane: int) -> pd.DataFrame:
        """Date x ticker weights (at the mark) of one lane, cash as the last column."""
        w = pd.DataFrame(self.weights[lane], index=self.dates, columns=list(self.tickers))
        w["cash"] = self.cash[lane] / self.equity[lane]
        return w

    def contributions(self, lane: int) -> pd.DataFrame:
        """Date x ticker profit of one lane before costs: the shares held into each bar times the
        change of the close (row s: held from row s-1's mark to row s's); costs in their own
        column. Each row sums to the equity change, to float rounding."""
        held = self.shares[lane][:-1]
        move = np.nan_to_num(self.close[1:] - self.close[:-1], nan=0.0)
        out = pd.DataFrame(held * move, index=self.dates[1:], columns=list(self.tickers))
        out["costs"] = -self.cost[lane][1:]
        return out


def _np(x: torch.Tensor) -> np.ndarray:
    return x.detach().cpu().numpy()


def replay_weights(
    panel: PortfolioPanel,
    config: PortfolioConfig,
    decide: Decider,
    num_lanes: int = 1,
    device: str | None = None,
) -> PortfolioRun:
    """Replay ``decide`` on ``num_lanes`` accounts over the whole ``panel`` (see the module
    docstring); ``episode_length`` of ``config`` is ignored (the replay covers the full period)."""
    from dataclasses import replace

    cfg = replace(config, episode_length=None, device=device or config.device)
    core = PortfolioCore(
        panel.close, panel.features, panel.tickers, cfg, num_envs=num_lanes, seed=0, autoreset=False
    )
    L, N = num_lanes, panel.n_assets
    obs = core.reset(starts=core.lo_start)
    zeros = torch.zeros(L, dtype=torch.float64)
    rows: dict[str, list[np.ndarray]] = {
        "equity": [_np(core.equity)],
        "cash": [_np(core.cash)],
        "cost": [_np(zeros)],
        "commission": [_np(zeros)],
        "slippage": [_np(zeros)],
        "borrow": [_np(zeros)],
        "traded_notional": [_np(zeros)],
        "weights": [np.zeros((L, N))],
        "shares": [np.zeros((L, N))],
        "traded_shares": [np.zeros((L, N))],
        "fill_price": [np.full((L, N), np.nan)],
    }
    targets: list[np.ndarray] = []
    bars = [int(core.lo_start)]
    n_steps = core.last_bar - core.lo_start
    with torch.no_grad():
        for step in range(n_steps):
            bar = core.lo_start + step
            w, hold = decide(obs, bar), None
            if isinstance(w, tuple):
                w, hold = w
            w = w if isinstance(w, torch.Tensor) else torch.as_tensor(np.array(w, dtype=np.float64))
            if w.ndim != 2 or w.shape[0] != L:
                raise PortfolioInputError(
                    f"a decider returned weights of shape {tuple(w.shape)} at {panel.dates[bar].date()}; "
                    f"expected ({L} lanes, {N} tickers)"
                )
            if hold is not None:
                hold = torch.as_tensor(np.asarray(hold), dtype=torch.bool).reshape(-1)
                if hold.shape != (L,):
                    raise PortfolioInputError(
                        f"a decider returned a hold mask of shape {tuple(hold.shape)}; expected ({L},)"
                    )
                w = torch.where(hold[:, None], 0.0, w.to(torch.float64))
            w = core.check_weights(w)
            targets.append(_np(w) if hold is None else np.where(_np(hold)[:, None], np.nan, _np(w)))
            obs, _, _, _, info = core.step(w, hold=hold)
            for k in ("equity", "cash", "cost", "commission", "slippage", "borrow"):
                rows[k].append(_np(info[k]))
            rows["traded_notional"].append(_np(info["turnover"]))
            for k in ("weights", "shares", "traded_shares", "fill_price"):
                rows[k].append(_np(info[k]))
            bars.append(bar + 1)
    targets.append(np.full((L, N), np.nan))
    stacked = {k: np.stack(v, axis=1) for k, v in rows.items()}
    bars_a = np.asarray(bars, dtype=np.int64)
    return PortfolioRun(
        tickers=panel.tickers,
        dates=panel.dates[bars_a],
        bars=bars_a,
        targets=np.stack(targets, axis=1),
        close=panel.close[bars_a],
        config=cfg,
        **stacked,
    )


def constant_weights(weights: Sequence[float] | np.ndarray) -> Decider:
    """A decider that always targets the same (L, N) or (N,) weights (tests, examples)."""
    w = np.atleast_2d(np.asarray(weights, dtype=np.float64))

    def decide(obs: torch.Tensor, bar: int) -> np.ndarray:
        return np.broadcast_to(w, (obs.shape[0], w.shape[1]))

    return decide
