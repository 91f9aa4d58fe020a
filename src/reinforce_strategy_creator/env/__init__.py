"""Trading environment: one batched core (`BatchedTradingCore`) and its facades.

Import without Kedro. See docs/environment.md for timing, costs, rewards and config, and
docs/contracts.md ("Environment") for the interface other stages rely on.
"""

from .config import EnvConfig, EnvConfigError
from .core import BatchedTradingCore, fill_and_costs, observation_from_window, update_entry_and_bars
from .gym_env import TradingEnv, TradingVectorEnv
from .market import MarketArrays, MarketDataError
from .replay import BacktestResult, replay

__all__ = [
    "BacktestResult",
    "BatchedTradingCore",
    "EnvConfig",
    "EnvConfigError",
    "MarketArrays",
    "MarketDataError",
    "TradingEnv",
    "TradingVectorEnv",
    "fill_and_costs",
    "observation_from_window",
    "replay",
    "update_entry_and_bars",
]
