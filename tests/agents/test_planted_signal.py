"""Agents learn a planted signal through the project's trading environment.

A synthetic market (``markets.planted_signal_market``, tests/markets/test_signal.py) whose
next-bar return has the sign of an observable feature; the oracle policy takes that sign. Each agent trains on
the first 2,000 bars via ``TradingVectorEnv`` (tensor path), selects weights on the next
500 bars (validation Sharpe, via ``env.replay``) and is judged out of sample on the last
1,000 bars, with the same env, costs and capital for agent, oracle, flat and random
policies. The agent is seed 0, trained as a population of one (a member's weights are bit for
bit those of its seed's population of one, whatever members share it: tests/agents/
test_population.py). Requirements: agent Sharpe >= 70% of the oracle's, and better than flat (Sharpe
0, equity unchanged) and than every one of 16 random policies.
"""

from __future__ import annotations

import empyrical
import numpy as np
import pytest
import torch

from reinforce_strategy_creator.agents import train_a2c, train_dqn, train_ppo
from reinforce_strategy_creator.env import EnvConfig, MarketArrays, TradingVectorEnv, replay
from reinforce_strategy_creator.markets import oracle_action_index, planted_signal_market

POSITIONS = (-1.0, 0.0, 1.0)
ENV = dict(
    window=4,
    positions=POSITIONS,
    episode_length=128,
    commission_bps=2.0,
    slippage_bps=3.0,
    fill_price="next_open",
    reward="log_return",
    device="cpu",
)


# ------------------------------------------------------------------ learning (slow)
def _sharpe(bt) -> float:
    eq = bt.lane(0)["equity"]
    return float(empyrical.sharpe_ratio(eq.pct_change().dropna().to_numpy()))


def _split():
    m = planted_signal_market(3_500, snr=0.3, seed=11, n_noise=2, positions=POSITIONS)
    f = m.frame
    # validation/test slices keep W-1 bars of history in front so their first decision is real
    W = ENV["window"]
    train, val, test = f.iloc[:2_000], f.iloc[2_000 - W + 1 : 2_500], f.iloc[2_500 - W + 1 :]
    return [MarketArrays.from_frame(x) for x in (train, val, test)]


def _oracle_decide(cfg: EnvConfig, n_features: int):
    col = (cfg.window - 1) * n_features  # feat_signal of the decision bar (newest window row)

    def decide(obs):
        sig = obs[:, col].cpu().numpy()
        return torch.as_tensor(oracle_action_index(sig, cfg.positions))

    return decide


# gamma is small because the planted signal predicts one bar only (persistence 0);
# DQN uses gamma=0.01 (nearly a contextual bandit: Q = expected next-bar reward incl. its trading cost).
AGENTS = {
    "ppo": (
        train_ppo,
        dict(
            total_steps=60_000,
            num_steps=32,
            learning_rate=1e-3,
            num_minibatches=4,
            update_epochs=4,
            ent_coef=0.01,
            gamma=0.9,
            gae_lambda=0.9,
            log_every=5,
        ),
        5,
    ),
    "a2c": (
        train_a2c,
        dict(
            total_steps=150_000,
            num_steps=8,
            learning_rate=1e-3,
            ent_coef=0.01,
            gamma=0.5,
            optimizer="adam",
            log_every=20,
        ),
        25,
    ),
    "dqn": (
        train_dqn,
        dict(
            total_steps=60_000,
            learning_rate=1e-3,
            batch_size=256,
            buffer_size=50_000,
            learning_starts=2_000,
            train_frequency=1,
            gradient_steps=4,
            tau=0.005,
            target_update_every=1,
            gamma=0.01,
            reward_scale=100.0,
            exploration_fraction=0.3,
            eps_end=0.05,
            hidden_sizes=[64, 64],
            log_every=25,
        ),
        50,
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("algo", sorted(AGENTS))
def test_agent_reaches_70pct_of_oracle_sharpe_out_of_sample(algo):
    torch.set_num_threads(1)
    train, params, eval_every = AGENTS[algo]
    cfg = EnvConfig.from_params(ENV)
    m_train, m_val, m_test = _split()

    def eval_fn(policy):
        return _sharpe(replay(m_val, cfg, lambda obs: policy.act(obs, deterministic=True)))

    res = train(
        [TradingVectorEnv(m_train, cfg, num_envs=32, seed=0)],
        params,
        seeds=[0],
        device="cpu",
        eval_fns=[eval_fn],
        eval_every=eval_every,
        progress=False,
    )[0]
    agent = _sharpe(replay(m_test, cfg, lambda obs: res.policy.act(obs, deterministic=True)))
    oracle = _sharpe(replay(m_test, cfg, _oracle_decide(cfg, m_test.n_features)))
    rng = np.random.default_rng(0)
    B = 16
    rand_bt = replay(
        m_test, cfg, lambda obs: torch.as_tensor(rng.integers(0, len(POSITIONS), size=B)), num_envs=B
    )
    rand_sharpes = [
        float(empyrical.sharpe_ratio(rand_bt.lane(i)["equity"].pct_change().dropna().to_numpy()))
        for i in range(B)
    ]
    flat_bt = replay(m_test, cfg, lambda obs: torch.full((1,), POSITIONS.index(0.0)))
    assert (flat_bt["equity"] == cfg.initial_capital).all()
    agent_eq = (
        replay(m_test, cfg, lambda obs: res.policy.act(obs, deterministic=True)).lane(0)["equity"].iloc[-1]
    )

    print(
        f"{algo}: agent {agent:.2f} oracle {oracle:.2f} best random {max(rand_sharpes):.2f} steps {res.steps}"
    )
    assert oracle > 1.0, f"oracle Sharpe {oracle:.2f}: the planted signal is too weak for a meaningful test"
    assert agent >= 0.7 * oracle, f"{algo}: agent Sharpe {agent:.2f} < 70% of oracle {oracle:.2f}"
    assert agent > 0.0 and agent_eq > cfg.initial_capital, "agent does not beat the flat policy"
    assert agent > max(rand_sharpes), f"agent {agent:.2f} vs best random {max(rand_sharpes):.2f}"
