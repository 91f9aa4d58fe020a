"""Preallocated torch buffers on the agent's device.

* :class:`RolloutBuffer` -- (T, B) on-policy storage for PPO/A2C plus :func:`compute_gae`.
  It stores, per transition, the true successor observation ``next_obs`` so that
  truncated episodes are bootstrapped with V(true last obs) and terminated ones are not,
  and a ``valid`` mask that removes gymnasium NEXT_STEP reset transitions from the loss.
* :class:`ReplayBuffer` -- circular buffer of (obs, action, n-step return, next obs,
  bootstrap discount) tensors for DQN; sampling with an explicit generator.
* :class:`NStepAccumulator` -- turns per-step vector transitions into n-step transitions,
  vectorised across lanes, stopping at episode ends.

Hand-written: SB3's buffers are numpy-based and would force device round trips.
"""

from __future__ import annotations

import torch

from .vec_env import Step


class RolloutBuffer:
    """(T, B) rollout storage; ``action_shape`` () stores one action index per lane (long), a
    non-empty shape stores a float action of that shape (e.g. a point of the simplex)."""

    def __init__(
        self, num_steps: int, num_envs: int, obs_dim: int, device: torch.device, action_shape: tuple = ()
    ):
        T, B = num_steps, num_envs
        f = dict(device=device, dtype=torch.float32)
        self.obs = torch.zeros(T, B, obs_dim, **f)
        self.next_obs = torch.zeros(T, B, obs_dim, **f)
        if action_shape:
            self.actions = torch.zeros(T, B, *action_shape, **f)
        else:
            self.actions = torch.zeros(T, B, dtype=torch.long, device=device)
        self.logprobs = torch.zeros(T, B, **f)
        self.rewards = torch.zeros(T, B, **f)
        self.values = torch.zeros(T, B, **f)
        self.terminated = torch.zeros(T, B, **f)
        self.dones = torch.zeros(T, B, **f)
        self.valid = torch.zeros(T, B, **f)
        self.num_steps = T

    def store(self, t: int, obs, action, logprob, value, step: Step) -> None:
        self.obs[t] = obs
        self.actions[t] = action
        self.logprobs[t] = logprob
        self.values[t] = value
        self.rewards[t] = step.reward
        self.next_obs[t] = step.next_obs
        self.terminated[t] = step.terminated.float()
        self.dones[t] = step.done.float()
        self.valid[t] = step.valid.float()


@torch.no_grad()
def compute_gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    next_values: torch.Tensor,
    terminated: torch.Tensor,
    dones: torch.Tensor,
    valid: torch.Tensor,
    gamma: float,
    gae_lambda: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over (T, B) tensors.

    ``next_values[t]`` = V(true successor of transition t). The TD error bootstraps unless
    the transition terminated; the GAE recursion is cut at any episode end (terminated or
    truncated), and at the rollout's end it continues from the last transition's own
    bootstrap (lambda-return truncated there). Invalid transitions get advantage 0.
    Returns ``(advantages, returns)`` with ``returns = advantages + values``.
    """
    T = rewards.shape[0]
    delta = rewards + gamma * next_values * (1.0 - terminated) - values
    adv = torch.zeros_like(rewards)
    last = torch.zeros_like(rewards[0])
    for t in reversed(range(T)):
        last = delta[t] + gamma * gae_lambda * (1.0 - dones[t]) * last
        last = last * valid[t]
        adv[t] = last
    return adv, adv + values


class ReplayBuffer:
    """Circular replay memory of preallocated tensors on ``device``."""

    def __init__(self, capacity: int, obs_dim: int, device: torch.device):
        self.capacity = int(capacity)
        self.device = device
        self.obs = torch.zeros(self.capacity, obs_dim, device=device)
        self.next_obs = torch.zeros(self.capacity, obs_dim, device=device)
        self.actions = torch.zeros(self.capacity, dtype=torch.long, device=device)
        self.returns = torch.zeros(self.capacity, device=device)
        self.discounts = torch.zeros(self.capacity, device=device)
        self.pos = 0
        self.size = 0

    def add(self, obs, actions, returns, next_obs, discounts) -> None:
        n = obs.shape[0]
        if n == 0:
            return
        idx = (torch.arange(n, device=self.device) + self.pos) % self.capacity
        self.obs[idx] = obs
        self.actions[idx] = actions
        self.returns[idx] = returns
        self.next_obs[idx] = next_obs
        self.discounts[idx] = discounts
        self.pos = (self.pos + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def sample(self, batch_size: int, generator: torch.Generator):
        idx = torch.randint(0, self.size, (batch_size,), generator=generator).to(self.device)
        return (self.obs[idx], self.actions[idx], self.returns[idx], self.next_obs[idx], self.discounts[idx])

    def __len__(self) -> int:
        return self.size


class NStepAccumulator:
    """Rolling (n, B) window -> n-step transitions for the oldest step of every lane.

    For the oldest entry: ``R = sum_i gamma^i r_i`` over steps until (and including) the
    first episode end; the bootstrap target uses the true successor of the last included
    step with discount ``gamma^k`` (0 if that step terminated). Invalid (reset) oldest
    entries are dropped. With n=1 this is the ordinary one-step transition.
    """

    def __init__(self, n: int, num_envs: int, obs_dim: int, gamma: float, device: torch.device):
        self.n, self.gamma = int(n), float(gamma)
        f = dict(device=device)
        self.obs = torch.zeros(self.n, num_envs, obs_dim, **f)
        self.next_obs = torch.zeros(self.n, num_envs, obs_dim, **f)
        self.actions = torch.zeros(self.n, num_envs, dtype=torch.long, **f)
        self.rewards = torch.zeros(self.n, num_envs, **f)
        self.term = torch.zeros(self.n, num_envs, dtype=torch.bool, **f)
        self.done = torch.zeros(self.n, num_envs, dtype=torch.bool, **f)
        self.valid = torch.zeros(self.n, num_envs, dtype=torch.bool, **f)
        self.count = 0
        self.powers = self.gamma ** torch.arange(self.n, device=device, dtype=torch.float32)

    def push(self, obs, actions, step: Step):
        """Add one vector step; returns (obs, act, R, next_obs, discount) for ready transitions
        or None."""
        if self.count == self.n:  # drop the oldest
            for buf in (
                self.obs,
                self.next_obs,
                self.actions,
                self.rewards,
                self.term,
                self.done,
                self.valid,
            ):
                buf[:-1] = buf[1:].clone()
            self.count -= 1
        i = self.count
        self.obs[i], self.actions[i], self.rewards[i] = obs, actions, step.reward
        self.next_obs[i], self.term[i] = step.next_obs, step.terminated
        self.done[i], self.valid[i] = step.done, step.valid
        self.count += 1
        if self.count < self.n:
            return None
        # alive[i] = no episode end strictly before step i (within the window)
        ended_before = torch.cumsum(self.done.float(), 0) - self.done.float()
        alive = (ended_before == 0).float()  # (n, B)
        ret = (self.powers[:, None] * self.rewards * alive).sum(0)
        k = alive.sum(0).long() - 1  # index of last included step
        lanes = torch.arange(self.rewards.shape[1], device=self.rewards.device)
        nxt = self.next_obs[k, lanes]
        term_k = self.term[k, lanes]
        disc = (self.gamma ** (k + 1).float()) * (~term_k).float()
        keep = self.valid[0]
        return self.obs[0][keep], self.actions[0][keep], ret[keep], nxt[keep], disc[keep]
