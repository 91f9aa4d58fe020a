"""Portfolios over a universe of assets (docs/walk_forward.md), importable without Kedro.

:mod:`.panel` holds a universe's prices and features as arrays, :mod:`.replay` is the one
deterministic replay of weight deciders through :class:`~..env.portfolio.PortfolioCore` that
validation scoring, backtests, benchmarks, the stitched walk-forward record and the paper
account's parity check all use.
"""

from .panel import PortfolioPanel
from .replay import PortfolioRun, replay_weights

__all__ = ["PortfolioPanel", "PortfolioRun", "replay_weights"]
