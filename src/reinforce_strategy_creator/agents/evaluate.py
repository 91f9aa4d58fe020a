"""Score a policy on whole episodes of a gymnasium ``VectorEnv`` (one episode per lane).

Used to judge agents on environments other than the trading env (the CartPole learning
tests select and judge on separate episodes); the trading env is judged by
``env.replay`` instead. See docs/agents.md ("Evidence that they learn").
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from .vec_env import TensorVecEnv


@torch.no_grad()
def evaluate_episodes(envs: Any, policy: nn.Module, *, seed: int, deterministic: bool = True) -> np.ndarray:
    """Return of the FIRST episode of every lane of ``envs`` under ``policy`` (one per lane).

    Use a vector env with as many lanes as episodes wanted; lanes that finish keep being
    stepped (their later episodes are ignored) until all lanes have finished one.
    """
    dev = next(policy.parameters()).device
    env = TensorVecEnv(envs, dev)
    obs = env.reset(seed=seed)
    total = torch.zeros(env.num_envs, dtype=torch.float64, device=dev)
    finished = torch.zeros(env.num_envs, dtype=torch.bool, device=dev)
    while not bool(finished.all()):
        step = env.step(policy.act(obs, deterministic=deterministic))
        live = step.valid & ~finished
        total += torch.where(live, step.reward.double(), torch.zeros_like(total))
        finished |= step.done & step.valid
        obs = step.obs
    return total.cpu().numpy()
