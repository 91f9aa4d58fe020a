"""Trading environment: one account engine for B accounts x N assets and its facades.

`BatchedTradingCore` is the engine at N = 1 (closed-form sizing), `PortfolioCore`
(`env.portfolio`) at N >= 1 (joint sizing); both build on `env.engine.AccountEngine` and settle
through `env.execution.settle`.

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
    "AccountEngine": ".engine",
    "BatchedTradingCore": ".core",
    "GRANULARITIES": ".execution",
    "ExecutionRules": ".execution",
    "fill_and_costs": ".execution",
    "settle": ".execution",
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
    "AccountEngine",
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
    "settle",
]
__getattr__, __dir__ = lazy_attributes(__name__, WHERE)
