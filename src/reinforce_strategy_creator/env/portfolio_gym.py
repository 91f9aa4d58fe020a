"""Gymnasium facades over `PortfolioCore` (docs/environment.md); ``opens`` as `PortfolioCore`'s.

* `PortfolioEnv` — one account, a `gymnasium.Env` (passes gymnasium's and stable-baselines3's
  `check_env`). No auto-reset: after ``terminated or truncated`` call ``reset()``.
* `PortfolioVectorEnv` — B accounts, a `gymnasium.vector.VectorEnv` with numpy in/out and
  same-step auto-reset (``info["final_obs"]`` with mask ``info["_final_obs"]``), as
  `TradingVectorEnv`.

The gymnasium action is a raw vector that the facade maps to valid target weights (so any
point of the action space is a legal action; `PortfolioCore.step` itself takes weights and
rejects invalid ones):

* long-only: ``Box(0, 1, (N + 1,))`` — N asset scores then a cash score;
  ``w_i = a_i * m_i / sum(a * m)`` with ``m`` the tradable mask at the decision bar (cash is
  always tradable), all cash when the sum is 0;
* long/short: ``Box(-1, 1, (N,))``; ``w_i = L * a_i * m_i / max(1, sum|a * m|)`` with
  ``L = gross_leverage``, so ``sum|w| <= L``.

Tickers without a price yet get weight 0 here (documented forcing in the facade; the core
raises on them).
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
from .portfolio import PortfolioCore, PortfolioInputError


def _spaces(core: PortfolioCore):
    obs = spaces.Box(low=-np.inf, high=np.inf, shape=(core.obs_dim,), dtype=np.float32)
    if core.config.long_only:
        act = spaces.Box(low=0.0, high=1.0, shape=(core.n_assets + 1,), dtype=np.float32)
    else:
        act = spaces.Box(low=-1.0, high=1.0, shape=(core.n_assets,), dtype=np.float32)
    return obs, act


def action_to_weights(core: PortfolioCore, actions) -> torch.Tensor:
    """(B, N) float64 target weights from raw gymnasium actions (see the module docstring)."""
    B, N = core.num_envs, core.n_assets
    a = torch.as_tensor(np.asarray(actions, dtype=np.float64), device=core.device).reshape(B, -1)
    if bool(torch.isnan(a).any()):
        raise PortfolioInputError("a portfolio action is NaN; the policy produced an invalid output")
    m = core.tradable.index_select(0, core.t).to(torch.float64)
    if core.config.long_only:
        a = a.clamp(0.0, 1.0)
        scores = torch.cat([a[:, :N] * m, a[:, N:]], dim=1)
        total = scores.sum(1, keepdim=True)
        w = torch.where(total > 0, scores[:, :N] / torch.where(total > 0, total, 1.0), 0.0)
        return w.clamp(min=0.0)
    a = a.clamp(-1.0, 1.0) * m
    gross = a.abs().sum(1, keepdim=True)
    return a * (core.bound / gross.clamp(min=1.0))


class PortfolioEnv(gym.Env):
    """One portfolio account; `info` values are numpy arrays / Python floats (``fill_price`` is
    0 where an asset had no fill, so that info compares equal across identical runs)."""

    metadata = {"render_modes": []}

    def __init__(self, close, features, tickers, config: EnvConfig | None = None, seed=None, opens=None):
        super().__init__()
        self.core = PortfolioCore(close, features, tickers, config, 1, seed, autoreset=False, opens=opens)
        self.observation_space, self.action_space = _spaces(self.core)
        self._done = True

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        obs = self.core.reset(starts=(options or {}).get("start"), seed=seed)
        self._done = False
        return obs[0].cpu().numpy(), {"bar": int(self.core.t[0])}

    def step(self, action):
        if self._done:
            raise RuntimeError("the episode has ended; call reset() before step()")
        obs, r, te, tr, info = self.core.step(action_to_weights(self.core, action))
        terminated, truncated = bool(te[0]), bool(tr[0])
        self._done = terminated or truncated
        out = {k: (v[0].cpu().numpy() if v.ndim > 1 else v[0].item()) for k, v in info.items()}
        out["fill_price"] = np.nan_to_num(out["fill_price"], nan=0.0)  # 0 = no fill (comparable info)
        return obs[0].cpu().numpy(), float(r[0]), terminated, truncated, out


class PortfolioVectorEnv(VectorEnv):
    """B portfolio accounts with same-step auto-reset; see the module docstring."""

    metadata = {"render_modes": [], "autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(
        self,
        close,
        features,
        tickers,
        config: EnvConfig | None = None,
        num_envs: int = 1,
        seed=None,
        opens=None,
    ):
        self.core = PortfolioCore(
            close, features, tickers, config, num_envs, seed, autoreset=True, opens=opens
        )
        self.num_envs = num_envs
        self.single_observation_space, self.single_action_space = _spaces(self.core)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is not None:
            self._np_random, _ = gym.utils.seeding.np_random(seed)
        obs = self.core.reset(starts=(options or {}).get("start"), seed=seed)
        return obs.cpu().numpy(), {"bar": self.core.t.cpu().numpy()}

    def step(self, actions):
        obs, r, te, tr, info = self.core.step(action_to_weights(self.core, actions))
        info_np = {k: v.cpu().numpy() for k, v in info.items()}
        if "final_obs" in info_np:
            info_np["_final_obs"] = info_np.pop("done")
        return obs.cpu().numpy(), r.cpu().numpy(), te.cpu().numpy(), tr.cpu().numpy(), info_np

    def close_extras(self, **kwargs: Any) -> None:
        pass
