"""Correctness: each agent really learns CartPole-v1 (a problem with a known optimum: 500).

Budgets and seeds are fixed here; each agent trains one member, seed 1 (a member's weights are
bit for bit those of its seed's population of one: tests/agents/test_population.py). Model
selection uses ``eval_fn`` on 20 validation episodes (env seeds from 10_000); the returned
policy is then judged on 20 *different* test episodes (env seeds from 123), deterministically.
Thresholds: PPO and A2C >= 475, DQN >= 400 mean return.

A run stops after ``PATIENCE`` evaluations without improvement, or at its step budget. Once a
member scores the optimum 500 on validation no later checkpoint can replace it (ties never do),
so the policy judged is the one the whole budget would return; a run that stalls below 500 for
``PATIENCE`` evaluations returns its best so far, which has to meet the same thresholds.
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


#: evaluations without improvement before a run stops; with these seeds and budgets the longest
#: stretch without improvement before the first 500 on validation is 6 evaluations (PPO)
PATIENCE = 10

#: algorithm -> (config, lanes, eval_every in updates, least mean test return)
CASES = {
    "ppo": (PPO_CFG, 8, 5, 475),
    "a2c": (A2C_CFG, 8, 100, 475),
    "dqn": (DQN_CFG, 4, 4, 400),
}


@pytest.mark.parametrize("algo", sorted(CASES))
def test_agent_solves_cartpole(algo):
    torch.set_num_threads(1)
    cfg, num_envs, eval_every, threshold = CASES[algo]
    val_envs = gym.make_vec("CartPole-v1", num_envs=20, vectorization_mode="sync")

    def eval_fn(policy):
        return float(evaluate_episodes(val_envs, policy, seed=10_000).mean())

    res = ALGORITHMS[algo][1](
        [gym.make_vec("CartPole-v1", num_envs=num_envs, vectorization_mode="sync")],
        cfg,
        seeds=[1],
        device="cpu",
        eval_fns=[eval_fn],
        eval_every=eval_every,
        patience=PATIENCE,
        progress=False,
    )[0]
    test_envs = gym.make_vec("CartPole-v1", num_envs=20, vectorization_mode="sync")
    returns = evaluate_episodes(test_envs, res.policy, seed=123)
    print(f"{algo}: test mean {returns.mean():.1f}, best validation {res.best_score}, steps {res.steps}")
    assert res.steps <= cfg["total_steps"]
    assert returns.mean() >= threshold, (returns, res.history.tail())
