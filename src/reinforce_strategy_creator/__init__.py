"""reinforce_strategy_creator: honest reinforcement-learning trading strategies on Kedro.

The library modules (market data, features, environment, agents, backtest, broker,
datasets) import without Kedro; ``pipelines/`` is a thin Kedro layer over them.
"""

__version__ = "0.1.0"
