"""agents.population.population_successor_values (the PPO/A2C speed-up) equals V of the lane's
own member on every stored successor, for a population of one and of several."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from reinforce_strategy_creator.agents.buffers import RolloutBuffer
from reinforce_strategy_creator.agents.networks import ActorCriticPolicy
from reinforce_strategy_creator.agents.population import PopulationActorCritic, population_successor_values


@settings(max_examples=30, deadline=None)
@given(
    K=st.integers(1, 3),
    T=st.integers(1, 6),
    B=st.integers(1, 5),
    p_done=st.floats(0, 1),
    seed=st.integers(0, 10_000),
)
def test_successor_values_match_brute_force(K, T, B, p_done, seed):
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    members = [ActorCriticPolicy(3, 3, (8,)) for _ in range(K)]
    pop = PopulationActorCritic(members)
    buf = RolloutBuffer(T, K * B, 3, torch.device("cpu"))
    buf.obs = torch.randn(T, K * B, 3, generator=g)
    buf.dones = (torch.rand(T, K * B, generator=g) < p_done).float()
    nxt = torch.randn(T, K * B, 3, generator=g)  # true final obs of ended episodes / after the rollout
    buf.next_obs = nxt.clone()
    buf.next_obs[:-1] = torch.where(buf.dones[:-1, :, None].bool(), nxt[:-1], buf.obs[1:])
    with torch.no_grad():
        # lane l belongs to member l // B (member-major lanes)
        buf.values = torch.cat([members[i].value(buf.obs[:, i * B : (i + 1) * B]) for i in range(K)], 1)
        brute = torch.cat([members[i].value(buf.next_obs[:, i * B : (i + 1) * B]) for i in range(K)], 1)
        fast = population_successor_values(pop, buf, K)
    torch.testing.assert_close(fast, brute, rtol=1e-6, atol=1e-6)
