"""Trading environment: one batched core (`BatchedTradingCore`) and its facades.

The order-execution rules (sizing, fills, costs, borrow, cash, marks, entry price and bars
held) live in one kernel, `env.execution`, shared with the paper broker; the observation
layout in `env.observation`; the array back ends in `env.ops`.

Import without Kedro. See docs/environment.md for timing, costs, rewards and config, and
docs/contracts.md ("Environment") for the interface other stages rely on.
"""

from .config import EnvConfig, EnvConfigError
from .core import BatchedTradingCore
from .execution import GRANULARITIES, ExecutionRules, fill_and_costs, update_entry_and_bars
from .gym_env import TradingEnv, TradingVectorEnv
from .market import MarketArrays, MarketDataError
from .observation import observation_from_window
from .replay import BacktestResult, replay

__all__ = [
    "GRANULARITIES",
    "BacktestResult",
    "BatchedTradingCore",
    "EnvConfig",
    "EnvConfigError",
    "ExecutionRules",
    "MarketArrays",
    "MarketDataError",
    "TradingEnv",
    "TradingVectorEnv",
    "fill_and_costs",
    "observation_from_window",
    "replay",
    "update_entry_and_bars",
]
