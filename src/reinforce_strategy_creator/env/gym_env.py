"""Gymnasium facades over `BatchedTradingCore`.

* `TradingEnv` — one account, a standard `gymnasium.Env` (passes gymnasium's and
  stable-baselines3's `check_env`). On the CPU it runs the core's scalar back end (Python
  floats: a one-element step would otherwise be dominated by per-call torch overhead); on
  an accelerator it uses the torch back end. No auto-reset: after
  `terminated or truncated` call `reset()`.
* `TradingVectorEnv` — B accounts, a `gymnasium.vector.VectorEnv` with numpy in/out and
  **same-step** auto-reset (`metadata["autoreset_mode"] = AutoresetMode.SAME_STEP`): when a
  lane ends, the returned observation is already the first observation of its next
  episode; `info["final_obs"]` is a dense (B, obs_dim) array whose rows where the mask
  `info["_final_obs"]` is True are the last observations of the finished episodes.
  `reset_tensors`/`step_tensors` give the same as torch tensors on the core's device for
  torch-native agents (no numpy round trip; the mask is `info["done"]`); `core` is the
  underlying engine.

`reset(options={"start": bar})` fixes the first decision bar (int, or (B,) for the vector
env); otherwise starts are random when `episode_length` is set, and bar W-1 when it is null.
`TradingEnv.step` info holds python floats and has `fill_price` only on bars with a fill.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from .config import EnvConfig
from .core import BatchedTradingCore
from .market import MarketArrays


def _spaces(config: EnvConfig, obs_dim: int):
    obs_space = spaces.Box(low=-np.inf, high=np.inf, shape=(obs_dim,), dtype=np.float32)
    if config.continuous:
        lo, hi = config.position_bounds
        act_space = spaces.Box(low=np.float32(lo), high=np.float32(hi), shape=(1,), dtype=np.float32)
    else:
        act_space = spaces.Discrete(config.n_actions)
    return obs_space, act_space


class TradingEnv(gym.Env):
    """One trading account; see module docstring. `info` values are python floats/ints."""

    metadata = {"render_modes": []}

    def __init__(
        self,
        market: MarketArrays,
        config: EnvConfig | None = None,
        seed: int | None = None,
        backend: str | None = None,
    ):
        super().__init__()
        config = config or EnvConfig()
        device = config.resolve_device()
        backend = backend or ("scalar" if device == "cpu" else "torch")
        self.core = BatchedTradingCore(
            market, config, 1, seed, autoreset=False, backend=backend, device=device
        )
        self.config = config
        self.observation_space, self.action_space = _spaces(config, self.core.obs_dim)
        self._scalar = backend == "scalar"
        self._done = True

    def _one(self, x):
        """The single lane's value: a Python scalar / (obs_dim,) array."""
        return x if self._scalar else x[0].detach().cpu().numpy()

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        start = (options or {}).get("start")
        obs = self.core.reset(starts=start, seed=seed)
        self._done = False
        return self._one(obs), {"bar": int(self._one(self.core.t))}

    def step(self, action):
        if self._done:
            raise RuntimeError("episode has ended; call reset() before step()")
        if self.config.continuous:
            a = np.asarray(action, dtype=np.float64).reshape(1)
        elif self._scalar and isinstance(action, (int, np.integer)):  # fast path: no array round trip
            a = int(action)
            if not 0 <= a < self.config.n_actions:
                raise ValueError(f"action {action!r} is not in Discrete({self.config.n_actions})")
        else:
            a = np.asarray(action).reshape(1)
            if not (0 <= int(a[0]) < self.config.n_actions) or a[0] != int(a[0]):
                raise ValueError(f"action {action!r} is not in Discrete({self.config.n_actions})")
        if not self._scalar:
            a = torch.as_tensor(a.astype(np.float64 if self.config.continuous else np.int64))
        obs, reward, term, trunc, info = self.core.step(a)
        if self._scalar:
            terminated, truncated = bool(term), bool(trunc)
            out = {k: float(v) for k, v in info.items()}
        else:
            terminated, truncated = bool(self._one(term)), bool(self._one(trunc))
            out = {k: float(self._one(v)) for k, v in info.items()}
        self._done = terminated or truncated
        out["bar"] = int(out["bar"])
        if out["fill_price"] != out["fill_price"]:  # no trade: omit rather than report NaN
            del out["fill_price"]
        return self._one(obs), float(self._one(reward)), terminated, truncated, out


class TradingVectorEnv(VectorEnv):
    """B trading accounts with same-step auto-reset; see module docstring."""

    metadata = {"render_modes": [], "autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(
        self,
        market: MarketArrays,
        config: EnvConfig | None = None,
        num_envs: int = 1,
        seed: int | None = None,
        device: str | None = None,
        compile_step: bool = False,
    ):
        self.config = config = config or EnvConfig()
        self.core = BatchedTradingCore(
            market, config, num_envs, seed, autoreset=True, device=device, compile_step=compile_step
        )
        self.num_envs = num_envs
        self.device = self.core.device
        self.single_observation_space, self.single_action_space = _spaces(config, self.core.obs_dim)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)

    # -- torch-native API
    def reset_tensors(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        start = (options or {}).get("start")
        obs = self.core.reset(starts=start, seed=seed)
        return obs, {"bar": self.core.t}

    def step_tensors(self, actions: torch.Tensor):
        if self.config.continuous and isinstance(actions, torch.Tensor) and actions.ndim == 2:
            actions = actions[:, 0]
        return self.core.step(actions)

    # -- gymnasium API (numpy)
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is not None:
            self._np_random, _ = gym.utils.seeding.np_random(seed)
        obs, info = self.reset_tensors(seed=seed, options=options)
        return obs.cpu().numpy(), {k: v.cpu().numpy() for k, v in info.items()}

    def step(self, actions):
        a = np.asarray(actions)
        a = a.reshape(self.num_envs) if self.config.continuous else a.reshape(self.num_envs).astype(np.int64)
        obs, reward, term, trunc, info = self.core.step(torch.as_tensor(a, device=self.device))
        info_np = {k: v.cpu().numpy() for k, v in info.items()}
        if "final_obs" in info_np:
            info_np["_final_obs"] = info_np.pop("done")
        return (
            obs.cpu().numpy(),
            reward.cpu().numpy(),
            term.cpu().numpy(),
            trunc.cpu().numpy(),
            info_np,
        )

    def close_extras(self, **kwargs: Any) -> None:
        pass
