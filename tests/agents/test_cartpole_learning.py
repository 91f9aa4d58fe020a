"""Correctness: each agent really learns CartPole-v1 (a problem with a known optimum: 500).

Budgets and seeds are fixed here. Model selection uses ``eval_fn`` on 20 validation
episodes (env seeds from 10_000); the returned policy is then judged on 20 *different*
test episodes (env seeds from 123), deterministically. Thresholds: PPO and A2C >= 475,
DQN >= 400 mean return.
"""

from __future__ import annotations

import gymnasium as gym
import pytest
import torch

from reinforce_strategy_creator.agents import ALGORITHMS
from reinforce_strategy_creator.agents.evaluate import evaluate_episodes

pytestmark = pytest.mark.slow

PPO_CFG = dict(
    total_steps=100_000,
    num_steps=32,
    learning_rate=1e-3,
    gamma=0.98,
    gae_lambda=0.8,
    num_minibatches=1,
    update_epochs=20,
    ent_coef=0.0,
    log_every=10,
)
A2C_CFG = dict(total_steps=200_000, num_steps=5, learning_rate=7e-4, ent_coef=0.0, gamma=0.99)
DQN_CFG = dict(
    total_steps=50_000,
    learning_rate=2.3e-3,
    batch_size=64,
    buffer_size=100_000,
    learning_starts=1_000,
    target_update_every=128,
    train_frequency=64,
    gradient_steps=128,
    exploration_fraction=0.16,
    eps_end=0.04,
    hidden_sizes=[256, 256],
    log_every=5,
)


def _run(algo, cfg, num_envs, eval_every):
    """Seed 1 inside a population with seed 2; the returned member is seed 1."""
    torch.set_num_threads(1)
    val_envs = gym.make_vec("CartPole-v1", num_envs=20, vectorization_mode="sync")

    def eval_fn(policy):
        return float(evaluate_episodes(val_envs, policy, seed=10_000).mean())

    res = ALGORITHMS[algo][1](
        [gym.make_vec("CartPole-v1", num_envs=num_envs, vectorization_mode="sync") for _ in range(2)],
        cfg,
        seeds=[1, 2],
        device="cpu",
        eval_fns=[eval_fn, eval_fn],
        eval_every=eval_every,
        progress=False,
    )[0]
    test_envs = gym.make_vec("CartPole-v1", num_envs=20, vectorization_mode="sync")
    returns = evaluate_episodes(test_envs, res.policy, seed=123)
    return res, returns


def test_ppo_solves_cartpole():
    res, returns = _run("ppo", PPO_CFG, num_envs=8, eval_every=5)
    assert res.steps <= 100_000
    assert returns.mean() >= 475, (returns, res.history.tail())


def test_a2c_solves_cartpole():
    res, returns = _run("a2c", A2C_CFG, num_envs=8, eval_every=100)
    assert res.steps <= 200_000
    assert returns.mean() >= 475, (returns, res.history.tail())
