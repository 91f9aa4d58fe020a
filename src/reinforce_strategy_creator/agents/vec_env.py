"""One tensor interface over any gymnasium ``VectorEnv``, whatever its autoreset convention.

:class:`TensorVecEnv` hides how an env auto-resets (gymnasium NEXT_STEP, SAME_STEP,
DISABLED, or the project's tensor-native trading env) and returns a :class:`Step` that
says which transitions are real (``valid``) and what the true successor of each is
(``next_obs``), so every algorithm bootstraps on truncation, never on termination, and
never trains on a reset transition. The conventions are described in docs/agents.md
("Autoreset"); hand-written because SB3's wrappers are tied to numpy buffers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .errors import AgentEnvError

_MODES = {"nextstep": "next_step", "samestep": "same_step", "disabled": "disabled"}


@dataclass
class Step:
    """One vector step, as torch tensors on the agent's device (B = number of lanes)."""

    obs: torch.Tensor  # (B, obs_dim) observation to act on next
    reward: torch.Tensor  # (B,) float32
    terminated: torch.Tensor  # (B,) bool: true end, do not bootstrap
    truncated: torch.Tensor  # (B,) bool: time limit, bootstrap from next_obs
    next_obs: torch.Tensor  # (B, obs_dim) true successor of this transition
    valid: torch.Tensor  # (B,) bool: False for NEXT_STEP reset transitions

    @property
    def done(self) -> torch.Tensor:
        return self.terminated | self.truncated


def _autoreset_mode(envs: Any, tensor_native: bool) -> str:
    """``tensor``, ``next_step`` (gymnasium's default), ``same_step`` or ``disabled``."""
    if tensor_native:
        return "tensor"
    mode = getattr(envs, "metadata", {}).get("autoreset_mode", None)
    if mode is None:
        return "next_step"
    name = str(getattr(mode, "value", mode)).lower().replace("_", "")
    return _MODES.get(name, "next_step")


class TensorVecEnv:
    """One tensor interface over a gymnasium ``VectorEnv`` (numpy or tensor-native)."""

    def __init__(self, envs: Any, device: torch.device):
        self.envs = envs
        self.device = device
        self.num_envs = int(envs.num_envs)
        act_space = getattr(envs, "single_action_space", None)
        n = getattr(act_space, "n", None)
        if n is None:
            raise AgentEnvError(
                f"agents need a Discrete action space, got {act_space!r}; "
                "configure the env with discrete target positions (continuous=False)"
            )
        self.n_actions = int(n)
        self.obs_dim = int(np.prod(envs.single_observation_space.shape))
        self.tensor_native = hasattr(envs, "step_tensors") and hasattr(envs, "reset_tensors")
        self.mode = _autoreset_mode(envs, self.tensor_native)
        self._prev_done = torch.zeros(self.num_envs, dtype=torch.bool, device=device)
        #: the wrapped env's ``info`` of the last step (e.g. ``info["bar"]``: the bar each lane moved to)
        self.info: Any = None

    # -- conversion helpers
    def _obs(self, obs: Any) -> torch.Tensor:
        if isinstance(obs, torch.Tensor):
            t = obs.to(self.device, torch.float32)
        else:
            t = torch.as_tensor(np.asarray(obs, dtype=np.float32), device=self.device)
        return t.reshape(self.num_envs, self.obs_dim)

    def _vec(self, x: Any, dtype: torch.dtype) -> torch.Tensor:
        if isinstance(x, torch.Tensor):
            return x.to(self.device, dtype).reshape(self.num_envs)
        return torch.as_tensor(np.asarray(x), device=self.device).to(dtype).reshape(self.num_envs)

    def reset(self, seed: int | None = None) -> torch.Tensor:
        self._prev_done.zero_()
        if self.tensor_native:
            out = self.envs.reset_tensors(seed=seed)
        else:
            out = self.envs.reset(seed=seed)
        obs = out[0] if isinstance(out, tuple) else out
        return self._obs(obs)

    def step(self, actions: torch.Tensor) -> Step:
        if self.tensor_native:
            obs, rew, term, trunc, info = self.envs.step_tensors(actions.to(self.device))
        else:
            obs, rew, term, trunc, info = self.envs.step(actions.detach().cpu().numpy())
        self.info = info
        obs_t = self._obs(obs)
        term_t = self._vec(term, torch.bool)
        trunc_t = self._vec(trunc, torch.bool)
        rew_t = self._vec(rew, torch.float32)
        done = term_t | trunc_t
        next_obs = obs_t
        valid = torch.ones_like(done)
        if self.mode == "next_step":
            valid = ~self._prev_done
            self._prev_done = done & valid
            # an invalid (reset) step never reports done in gymnasium; be safe anyway
            term_t = term_t & valid
            trunc_t = trunc_t & valid
        elif self.mode in ("same_step", "tensor") and bool(done.any()):
            next_obs = self._true_last_obs(obs_t, done, info)
        elif self.mode == "disabled" and bool(done.any()):
            obs_t = self._reset_finished(obs_t, done)
        return Step(obs_t, rew_t, term_t, trunc_t, next_obs, valid)

    def _true_last_obs(self, obs_t: torch.Tensor, done: torch.Tensor, info: Any) -> torch.Tensor:
        """SAME_STEP: ``obs`` of finished lanes is already the reset one; the true last
        observation is ``info["final_obs"]``."""
        final = info.get("final_obs", None) if isinstance(info, Mapping) else None
        if final is None:
            raise AgentEnvError(
                "env auto-resets in the same step but gives no info['final_obs']; "
                "agents cannot bootstrap truncated episodes correctly"
            )
        next_obs = obs_t.clone()
        if isinstance(final, torch.Tensor):
            f = final.to(self.device, torch.float32).reshape(self.num_envs, self.obs_dim)
            next_obs[done] = f[done]
        else:
            for i in np.flatnonzero(done.cpu().numpy()):
                next_obs[i] = torch.as_tensor(
                    np.asarray(final[i], dtype=np.float32).reshape(-1), device=self.device
                )
        return next_obs

    def _reset_finished(self, obs_t: torch.Tensor, done: torch.Tensor) -> torch.Tensor:
        """DISABLED: reset the finished lanes here; they act on their reset observation next."""
        new_obs, _ = self.envs.reset(options={"reset_mask": done.cpu().numpy()})
        obs_t = obs_t.clone()
        obs_t[done] = self._obs(new_obs)[done]
        return obs_t
