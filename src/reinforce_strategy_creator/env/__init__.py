"""Trading environment: one batched core (`BatchedTradingCore`) and its facades.

The order-execution rules (sizing, fills, costs, borrow, cash, marks, entry price and bars
held) live in one kernel, `env.execution`, shared with the paper broker; the observation
layout in `env.observation`; the array back ends in `env.ops` (scalar) and `env.torch_ops`.

Import without Kedro. See docs/environment.md for timing, costs, rewards and config, and
docs/contracts.md ("Environment") for the interface other stages rely on.
"""

from ..lazy import lazy_attributes

#: Public names and the submodule of each, imported when the name is first used: ``env.config``
#: and ``env.execution`` import without torch, the cores and facades with it.
WHERE = {
    "EnvConfig": ".config",
    "EnvConfigError": ".config",
    "BatchedTradingCore": ".core",
    "GRANULARITIES": ".execution",
    "ExecutionRules": ".execution",
    "fill_and_costs": ".execution",
    "update_entry_and_bars": ".execution",
    "TradingEnv": ".gym_env",
    "TradingVectorEnv": ".gym_env",
    "MarketArrays": ".market",
    "MarketDataError": ".market",
    "observation_from_window": ".observation",
    "BacktestResult": ".replay",
    "replay": ".replay",
}
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
__getattr__, __dir__ = lazy_attributes(__name__, WHERE)
