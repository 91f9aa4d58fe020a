"""Explicit observation feature blocks (``MarketArrays.obs_windows``) and bar-aware decisions.

A walk-forward record replays one account across folds whose features are scaled by different
scalers: each bar's observation block is given explicitly, and the decision is told the bar so
that it can switch policy at a fold boundary.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reinforce_strategy_creator.env import EnvConfig, MarketDataError, replay
from reinforce_strategy_creator.env.observation import build_windows
from tests.support.env import make_market

W = 4


def _cfg() -> EnvConfig:
    return EnvConfig(window=W, commission_bps=5, slippage_bps=2, episode_length=None, device="cpu")


class _ByFeature:
    """Long when the newest observed first feature is positive, else flat."""

    def __init__(self, n_features: int):
        self.col = (W - 1) * n_features

    def __call__(self, obs):
        return (obs[:, self.col] > 0).long()


def test_explicit_blocks_equal_to_the_built_ones_replay_identically():
    market = make_market(n_bars=80, n_features=3, seed=3)
    blocks = build_windows(market.features, W, 0)
    explicit = market.with_obs_windows(blocks)
    a = replay(market, _cfg(), _ByFeature(3))
    b = replay(explicit, _cfg(), _ByFeature(3))
    np.testing.assert_array_equal(a["equity"].to_numpy(), b["equity"].to_numpy())
    assert a["position"].abs().sum() > 0  # the policy traded, so the comparison means something


def test_explicit_blocks_drive_the_decisions():
    market = make_market(n_bars=60, n_features=2, seed=5)
    blocks = build_windows(market.features, W, 0)
    flipped = market.with_obs_windows(-blocks)
    a = replay(market, _cfg(), _ByFeature(2)).lane(0)
    b = replay(flipped, _cfg(), _ByFeature(2)).lane(0)
    traded = a["position"].iloc[1:].to_numpy()
    assert ((traded + b["position"].iloc[1:].to_numpy()) == 1).all()  # opposite decisions every bar


def test_bar_aware_decision_sees_every_decision_bar_once_in_order():
    market = make_market(n_bars=50, n_features=2, seed=1)
    seen: list[int] = []

    def decide(obs, bar):
        seen.append(int(bar))
        return torch.zeros(obs.shape[0], dtype=torch.long)

    decide.needs_bar = True
    replay(market, _cfg(), decide)
    assert seen == list(range(W - 1, market.n_bars - 1))


@pytest.mark.parametrize("shape", [(10, 8), (60, 7)])
def test_blocks_of_the_wrong_shape_are_refused(shape):
    market = make_market(n_bars=60, n_features=2, seed=1)
    with pytest.raises(MarketDataError, match="obs_windows"):
        market.with_obs_windows(np.zeros(shape, dtype=np.float32))


def test_blocks_for_another_window_are_refused_by_the_environment():
    market = make_market(n_bars=60, n_features=2, seed=1).with_obs_windows(np.zeros((60, 6), np.float32))
    with pytest.raises(ValueError, match="environment.window"):
        replay(market, _cfg(), _ByFeature(2))


def test_non_finite_blocks_are_refused():
    market = make_market(n_bars=60, n_features=2, seed=1)
    blocks = build_windows(market.features, W, 0)
    blocks[30, 0] = np.nan
    with pytest.raises(MarketDataError, match="non-finite"):
        market.with_obs_windows(blocks)
