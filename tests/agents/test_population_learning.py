"""Members still learn inside a population: each agent's seed 0, trained next to seed 1 on one
planted-signal market (one fused env), reaches 70 % of the oracle's Sharpe out of sample, with the
budgets and thresholds of tests/agents/test_planted_signal.py. CartPole inside a population:
tests/agents/test_cartpole_learning.py."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from reinforce_strategy_creator.agents import POPULATION_ALGORITHMS
from reinforce_strategy_creator.env import EnvConfig, TradingVectorEnv

from .test_planted_signal import AGENTS as PLANTED
from .test_planted_signal import ENV as PLANTED_ENV
from .test_planted_signal import POSITIONS, _oracle_decide, _sharpe, _split

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _one_thread():
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)


@pytest.mark.parametrize("algo", sorted(PLANTED))
def test_population_member_reaches_70pct_of_oracle_sharpe(algo):
    """Seed 0 (the single-model test's seed) inside a population with seed 1 on one market
    (fused env); budgets and thresholds of tests/agents/test_planted_signal.py."""
    from reinforce_strategy_creator.env import replay

    _, params, eval_every = PLANTED[algo]
    cfg = EnvConfig.from_params(PLANTED_ENV)
    m_train, m_val, m_test = _split()

    def eval_fn(policy):
        return _sharpe(replay(m_val, cfg, lambda obs: policy.act(obs, deterministic=True)))

    envs = [TradingVectorEnv(m_train, cfg, num_envs=32, seed=s) for s in (0, 1)]
    res = POPULATION_ALGORITHMS[algo][1](
        envs,
        params,
        seeds=[0, 1],
        device="cpu",
        eval_fns=[eval_fn, eval_fn],
        eval_every=eval_every,
        progress=False,
    )
    policy = res[0].policy
    agent = _sharpe(replay(m_test, cfg, lambda obs: policy.act(obs, deterministic=True)))
    oracle = _sharpe(replay(m_test, cfg, _oracle_decide(cfg, m_test.n_features)))
    rng = np.random.default_rng(0)
    rand_bt = replay(
        m_test, cfg, lambda obs: torch.as_tensor(rng.integers(0, len(POSITIONS), size=16)), num_envs=16
    )
    rand = [float(np.nan_to_num(_sharpe_lane(rand_bt, i), nan=-math.inf)) for i in range(16)]
    other = _sharpe(replay(m_test, cfg, lambda obs: res[1].policy.act(obs, deterministic=True)))
    print(f"{algo} population: member 0 {agent:.2f} (member 1 {other:.2f}) oracle {oracle:.2f}")
    assert oracle > 1.0
    assert agent >= 0.7 * oracle, f"{algo}: member Sharpe {agent:.2f} < 70% of oracle {oracle:.2f}"
    assert agent > max(rand)


def _sharpe_lane(bt, i):
    import empyrical

    return float(empyrical.sharpe_ratio(bt.lane(i)["equity"].pct_change().dropna().to_numpy()))
