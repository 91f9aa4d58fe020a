"""agents.buffers.successor_values (the PPO/A2C speed-up) equals V on every stored successor."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from reinforce_strategy_creator.agents.buffers import RolloutBuffer, successor_values


@settings(max_examples=30, deadline=None)
@given(T=st.integers(1, 6), B=st.integers(1, 5), p_done=st.floats(0, 1), seed=st.integers(0, 10_000))
def test_successor_values_match_brute_force(T, B, p_done, seed):
    g = torch.Generator().manual_seed(seed)
    critic = torch.nn.Linear(3, 1)
    value = lambda x: critic(x).squeeze(-1)  # noqa: E731
    buf = RolloutBuffer(T, B, 3, torch.device("cpu"))
    buf.obs = torch.randn(T, B, 3, generator=g)
    buf.dones = (torch.rand(T, B, generator=g) < p_done).float()
    nxt = torch.randn(T, B, 3, generator=g)  # true final obs of ended episodes / after the rollout
    buf.next_obs = nxt.clone()
    buf.next_obs[:-1] = torch.where(buf.dones[:-1, :, None].bool(), nxt[:-1], buf.obs[1:])
    with torch.no_grad():
        buf.values = value(buf.obs)
        brute = value(buf.next_obs)
        fast = successor_values(buf, value)
    torch.testing.assert_close(fast, brute, rtol=1e-6, atol=1e-6)
