"""Kernel parity: the engine's ledgers equal the frozen references' to the cent.

For random decision sequences on an N = 1 market and an N = 20 panel, with fills at the next
close or the next open (and a close-only panel, which fills at closes), whole or fractional
shares, long-only or long/short, random costs and every reward: every lane's cash, shares,
equity and costs (commission, slippage, borrow) after every bar equal the reference's to the
cent, every account trades the same bars, and the rewards equal the frozen single-asset
rewards of the reference's equity path. References: tests/env/single_asset_reference.py (the single-asset
core as it was, self-contained) and benchmarks/portfolio_reference.py (the straightforward
portfolio core).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from benchmarks.portfolio_reference import ReferencePortfolioCore
from reinforce_strategy_creator.env import BatchedTradingCore, EnvConfig, MarketArrays
from reinforce_strategy_creator.env.portfolio import PortfolioCore
from tests.env.single_asset_reference import ReferenceSingleAssetCore, reference_reward
from tests.support.env import universe_env

torch.set_num_threads(1)
CENT = 0.005  # two ledgers agree to the cent when they differ by less than half a cent
B, T, W = 4, 70, 4
MONEY = ("cash", "equity", "commission", "slippage", "borrow", "cost")


def _panel(n_assets: int, seed: int):
    """(opens, closes, features) of a random-walk panel with gapped opens."""
    rng = np.random.default_rng(seed)
    close = 40.0 * np.exp(np.cumsum(rng.normal(0.0, 0.02, (T, n_assets)), axis=0))
    opens = close * np.exp(rng.normal(0.0, 0.006, (T, n_assets)))
    feats = rng.normal(size=(T, n_assets, 2)).astype(np.float32)
    return opens, close, feats


class _SingleAsset:
    """The engine at N = 1 (`BatchedTradingCore`) and its reference, driven by position choices."""

    def __init__(self, seed, fill_price, granularity, long_only, costs, reward):
        opens, close, feats = _panel(1, seed)
        market = MarketArrays.from_arrays(feats[:, 0], opens[:, 0], close[:, 0])
        positions = (0.0, 0.3, 1.0) if long_only else (-1.0, -0.4, 0.0, 0.6, 1.0)
        comm, slip, borrow = costs
        cfg = EnvConfig(
            window=W,
            positions=positions,
            fill_price=fill_price,
            episode_length=None,
            commission_bps=comm,
            slippage_bps=slip,
            borrow_bps_per_bar=borrow,
            reward=reward,
            drawdown_lambda=2.0,
            device="cpu",
            granularity=granularity,
        )
        self.n_actions = len(positions)
        self.engine = BatchedTradingCore(market, cfg, B, seed=0, autoreset=False)
        self.reference = ReferenceSingleAssetCore(market, cfg, B, granularity=granularity)
        self.engine.reset(starts=W - 1)
        self.reference.reset(W - 1)
        self.close = float(close.max())

    def decisions(self, rng):
        return torch.as_tensor(rng.integers(0, self.n_actions, B))

    def step(self, decision):
        """(engine's reward, info), (reference's reward, info) of one bar."""
        _, reward, _, _, info = self.engine.step(decision)
        _, ref_reward, _, _, ref_info = self.reference.step(decision)
        return (reward, info), (ref_reward, ref_info)


class _Universe:
    """The engine at N = 20 (`PortfolioCore`) and its reference, driven by target weights."""

    N = 20

    def __init__(self, seed, fill_price, granularity, long_only, costs, reward, with_opens=True):
        opens, close, feats = _panel(self.N, seed)
        comm, slip, borrow = costs
        cfg = universe_env(
            window=W,
            episode_length=None,
            commission_bps=comm,
            slippage_bps=slip,
            borrow_bps_per_bar=borrow,
            long_only=long_only,
            gross_leverage=1.0 if long_only else 1.5,
            fill_price=fill_price,
            granularity=granularity,
            reward=reward,
            drawdown_lambda=2.0,
        )
        tickers = [f"T{i:02d}" for i in range(self.N)]
        panel_opens = opens if with_opens else None
        self.engine = PortfolioCore(close, feats, tickers, cfg, B, seed=0, autoreset=False, opens=panel_opens)
        ref_opens = panel_opens if fill_price == "next_open" else None  # the reference fills where told
        self.reference = ReferencePortfolioCore(
            close, feats, tickers, cfg, B, seed=0, autoreset=False, opens=ref_opens, granularity=granularity
        )
        self.engine.reset(starts=W - 1)
        self.reference.reset(starts=W - 1)
        self.long_only, self.bound = long_only, cfg.gross_leverage
        self.close = float(close.max())
        self.cfg, zero = cfg, torch.zeros(B, dtype=torch.float64)
        # the reference's reward state: the frozen single-asset rewards on its equity path
        self.reward_state = (torch.full((B,), cfg.initial_capital, dtype=torch.float64), zero, zero, zero)

    def decisions(self, rng):
        if self.long_only:
            raw = rng.random((B, self.N + 1)) ** 3  # the last column is cash
            w = raw[:, : self.N] / raw.sum(1, keepdims=True)
        else:
            raw = rng.uniform(-1.0, 1.0, (B, self.N))
            w = raw * self.bound / np.maximum(np.abs(raw).sum(1, keepdims=True), 1.0)
        hold = rng.random(B) < 0.3  # some accounts keep their book this bar
        return torch.as_tensor(w), torch.as_tensor(hold)

    def step(self, decision):
        """(engine's reward, info), (reference's reward, info) of one bar."""
        w, hold = decision
        _, reward, _, _, info = self.engine.step(w.clone(), hold=hold)
        ref, active, prev = self.reference, self.reference.active.clone(), self.reference.equity.clone()
        ref_info = ref.step(w.clone(), hold=hold)[4]
        out = reference_reward(
            self.cfg, self.cfg.initial_capital, ref_info["equity"], prev, *self.reward_state
        )
        ref_reward = torch.where(active, out[0], 0.0)
        self.reward_state = tuple(
            torch.where(active, new, old) for new, old in zip(out[1:], self.reward_state)
        )
        return (reward, info), (ref_reward, ref_info)


@pytest.mark.parametrize("n_assets", [1, 20])
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**20),
    fills=st.sampled_from(["next_close", "next_open", "close_only_panel"]),
    granularity=st.sampled_from(["fractional", "whole"]),
    long_only=st.booleans(),
    costs=st.tuples(st.floats(0.0, 50.0), st.floats(0.0, 50.0), st.floats(0.0, 5.0)),
    reward=st.sampled_from(["log_return", "differential_sharpe", "drawdown_penalised"]),
)
def test_engine_ledgers_match_references_to_the_cent(  # noqa: PLR0913 - one argument per dimension
    n_assets, seed, fills, granularity, long_only, costs, reward
):
    """Every bar of a random decision sequence: the same trades, and cash, shares, equity and costs
    to the cent (shares: their value at the highest close to the cent; whole shares exactly); the
    reward of every kind equals the frozen single-asset reward of the reference's equity path."""
    if n_assets == 1:
        assume(fills != "close_only_panel")  # a single-asset market always carries its opens
        pair = _SingleAsset(seed, fills, granularity, long_only, costs, reward)
    else:
        fill_price = "next_close" if fills == "next_close" else "next_open"
        pair = _Universe(
            seed, fill_price, granularity, long_only, costs, reward, with_opens=fills != "close_only_panel"
        )
    rng = np.random.default_rng(seed)
    traded_bars, last = 0, None
    for _ in range(T - W):
        decision = pair.decisions(rng)
        if last is not None and rng.random() < 0.4:  # the same decision again: positions drift
            decision = last
        last = decision
        (got_reward, got), (want_reward, want) = pair.step(decision)
        torch.testing.assert_close(got_reward, want_reward, rtol=1e-7, atol=1e-9)
        assert torch.equal(got["bar"], want["bar"])
        assert torch.equal(got["traded_shares"] != 0, want["traded_shares"] != 0)
        traded_bars += int((want["traded_shares"] != 0).any())
        for k in MONEY:
            diff = (got[k] - want[k]).abs().max().item()
            assert diff < CENT, f"{k} differs by {diff} at bar {int(want['bar'].max())}"
        if granularity == "whole":
            assert torch.equal(got["shares"], want["shares"])
        else:
            diff = ((got["shares"] - want["shares"]).abs() * pair.close).max().item()
            assert diff < CENT, f"shares differ by {diff} dollars"
    assert traded_bars > 0  # the sequence traded
