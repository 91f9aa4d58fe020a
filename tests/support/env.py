"""Small synthetic markets for the environment tests."""

from __future__ import annotations

import numpy as np

from reinforce_strategy_creator.env import EnvConfig, MarketArrays


def make_market(n_bars: int = 120, n_features: int = 3, seed: int = 0, vol: float = 0.02) -> MarketArrays:
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, vol, n_bars)))
    open_ = close * np.exp(rng.normal(0.0, vol / 3, n_bars))
    feats = rng.normal(size=(n_bars, n_features)).astype(np.float32)
    return MarketArrays.from_arrays(feats, open_, close)


def market_from_returns(log_returns, gaps, n_features: int = 2) -> MarketArrays:
    close = 50.0 * np.exp(np.cumsum(np.asarray(log_returns, dtype=np.float64)))
    open_ = close * np.exp(np.asarray(gaps, dtype=np.float64))
    rng = np.random.default_rng(len(close))
    feats = rng.normal(size=(len(close), n_features)).astype(np.float32)
    return MarketArrays.from_arrays(feats, open_, close)


#: The universe account the portfolio tests were written with: these costs on the CPU.
UNIVERSE_ACCOUNT = {"commission_bps": 1.0, "slippage_bps": 2.0, "borrow_bps_per_bar": 0.0, "device": "cpu"}


def universe_env(**changes) -> EnvConfig:
    """The ``environment`` block with :data:`UNIVERSE_ACCOUNT`, then ``changes``, validated."""
    return EnvConfig.parse({**UNIVERSE_ACCOUNT, **changes})
