"""Optional stable-baselines3 backend: train with SB3, ship the project's own policy artifact.

``backend: sb3`` in a ``training.<agent>`` block trains that agent with SB3's PPO, A2C or
DQN on ``TradingEnv`` lanes. Checkpoints are chosen by the same :class:`CheckpointSelector`
as the project's agents, and the SB3 weights are mapped one to one onto the project's policy
modules, so evaluation and deployment never import SB3 and the artifact stays a
safetensors file that cannot run code. The parameters, the weight mapping and the
limits are described in docs/training.md ("the optional SB3 backend").
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from ..params.agents import SB3_ALGORITHMS, Sb3Config, import_sb3
from .checkpoint import CheckpointSelector
from .errors import TrainingDivergedError
from .networks import ACTIVATIONS, ActorCriticPolicy, QPolicy
from .tracking import TrainResult, history_frame, history_row


# --------------------------------------------------------------------------- conversion
def _linear_indices(n_hidden: int) -> list[int]:
    return [2 * i for i in range(n_hidden)]  # Linear, activation, Linear, activation, ...


def to_project_policy(model, cfg: Sb3Config, obs_dim: int, n_actions: int) -> nn.Module:
    """The project's policy module carrying the SB3 model's current weights (on CPU)."""
    sd = {k: v.detach().to("cpu").clone() for k, v in model.policy.state_dict().items()}
    n = len(cfg.hidden_sizes)
    new: dict[str, torch.Tensor] = {}
    if cfg.algorithm in ("ppo", "a2c"):
        policy: nn.Module = ActorCriticPolicy(
            obs_dim, n_actions, cfg.hidden_sizes, cfg.activation, algorithm=cfg.algorithm
        )
        for ours, theirs, head in (
            ("actor", "policy_net", "action_net"),
            ("critic", "value_net", "value_net"),
        ):
            for i in _linear_indices(n):
                for p in ("weight", "bias"):
                    new[f"{ours}.{i}.{p}"] = sd[f"mlp_extractor.{theirs}.{i}.{p}"]
            for p in ("weight", "bias"):
                new[f"{ours}.{2 * n}.{p}"] = sd[f"{head}.{p}"]
    else:
        policy = QPolicy(obs_dim, n_actions, cfg.hidden_sizes, cfg.activation, dueling=False, algorithm="dqn")
        for i in _linear_indices(n):
            for p in ("weight", "bias"):
                new[f"trunk.{i}.{p}"] = sd[f"q_net.q_net.{i}.{p}"]
        for p in ("weight", "bias"):
            new[f"q_head.{p}"] = sd[f"q_net.q_net.{2 * n}.{p}"]
    policy.load_state_dict(new, strict=True)
    policy.spec["backend"] = "sb3"
    return policy.eval()


def build_model(cfg: Sb3Config, venv, *, seed: int, device: str):
    """The SB3 model with a network layout that :func:`to_project_policy` can map."""
    sb3 = import_sb3()
    act = ACTIVATIONS[cfg.activation]
    hidden = list(cfg.hidden_sizes)
    if cfg.algorithm == "dqn":
        policy_kwargs = dict(net_arch=hidden, activation_fn=act)
    else:
        policy_kwargs = dict(
            net_arch=dict(pi=hidden, vf=hidden), activation_fn=act, share_features_extractor=True
        )
    cls = getattr(sb3, SB3_ALGORITHMS[cfg.algorithm])
    return cls(
        "MlpPolicy", venv, policy_kwargs=policy_kwargs, seed=seed, device=device, verbose=0, **cfg.kwargs
    )


# --------------------------------------------------------------------------- training
class _ValidationRun:
    """What the SB3 callback does, in plain Python: episode returns from ``Monitor``, a
    history row per rollout, checkpoint selection and a divergence guard.

    The hooks receive the SB3 callback (``cb``) for its ``model``, ``logger``, ``locals``
    and ``num_timesteps``.
    """

    def __init__(
        self,
        cfg: Sb3Config,
        agent: str,
        seed: int,
        obs_dim: int,
        n_actions: int,
        eval_fn: Callable[[nn.Module], float] | None,
        eval_every: int,
        patience: int | None,
    ):
        self.cfg, self.agent, self.seed = cfg, agent, seed
        self.obs_dim, self.n_actions = obs_dim, n_actions
        self.eval_fn, self.eval_every = eval_fn, int(eval_every)
        self.selector = CheckpointSelector(patience)
        self.loss_keys = {
            "policy_loss": ("train/policy_gradient_loss", "train/policy_loss"),
            "value_loss": ("train/value_loss",),
            "q_loss": ("train/loss",) if cfg.algorithm == "dqn" else (),
        }
        self.rollouts = 0
        self.rows: list[dict[str, float]] = []
        self.ep_sum, self.ep_n = 0.0, 0
        self.evaluated_last = False
        self._t, self._steps = time.perf_counter(), 0

    # -- the hooks, in the order SB3 calls them
    def on_step(self, cb) -> bool:
        for info in cb.locals.get("infos", ()):
            ep = info.get("episode")
            if ep is not None:
                self.ep_sum += float(ep["r"])
                self.ep_n += 1
        return not self.selector.should_stop

    def on_rollout_end(self, cb) -> None:
        # SB3 trains after this hook, so the losses logged now are those of the previous update
        self.rollouts += 1
        self._guard(cb)
        score = math.nan
        self.evaluated_last = False
        if self.eval_fn is not None and self.rollouts % self.eval_every == 0:
            score = self._evaluate(cb)
            self.evaluated_last = True
        self._row(cb, score)

    def on_training_end(self, cb) -> None:
        self._guard(cb)
        if self.eval_fn is not None and not self.evaluated_last and not self.selector.should_stop:
            self._row(cb, self._evaluate(cb))

    # -- the steps
    def _guard(self, cb) -> None:
        for k, v in cb.logger.name_to_value.items():
            if k.startswith("train/") and k.endswith("loss") and not math.isfinite(float(v)):
                raise TrainingDivergedError(self.agent, self.seed, self.rollouts, k, float(v))
        for name, p in cb.model.policy.named_parameters():
            if not bool(torch.isfinite(p).all()):
                raise TrainingDivergedError(self.agent, self.seed, self.rollouts, f"weight {name}", math.nan)

    def _evaluate(self, cb) -> float:
        policy = to_project_policy(cb.model, self.cfg, self.obs_dim, self.n_actions)
        with torch.no_grad():
            score = float(self.eval_fn(policy))
        self.selector.offer(cb.num_timesteps, score, policy.state_dict)
        return score

    def _row(self, cb, score: float) -> None:
        now = time.perf_counter()
        row = history_row(cb.num_timesteps, self.ep_sum / self.ep_n if self.ep_n else math.nan)
        self.ep_sum, self.ep_n = 0.0, 0
        logged = cb.logger.name_to_value
        for col, keys in self.loss_keys.items():
            for k in keys:
                if k in logged:
                    row[col] = float(logged[k])
        if "train/entropy_loss" in logged:
            row["entropy"] = -float(logged["train/entropy_loss"])
        row["eval_score"] = score
        row["steps_per_s"] = (cb.num_timesteps - self._steps) / max(now - self._t, 1e-9)
        self._t, self._steps = now, cb.num_timesteps
        self.rows.append(row)


def _make_callback(run: _ValidationRun):
    """The SB3 callback that hands its hooks to ``run`` (SB3 is imported only here)."""
    from stable_baselines3.common.callbacks import BaseCallback

    class Hooks(BaseCallback):
        def _on_step(self) -> bool:
            return run.on_step(self)

        def _on_rollout_end(self) -> None:
            run.on_rollout_end(self)

        def _on_training_end(self) -> None:
            run.on_training_end(self)

    return Hooks(verbose=0)


def train_sb3(
    market,
    env_config,
    cfg: Sb3Config,
    *,
    agent: str,
    seed: int,
    num_envs: int,
    device: str = "cpu",
    eval_fn: Callable[[nn.Module], float] | None = None,
    eval_every: int = 10,
    patience: int | None = None,
) -> TrainResult:
    """Train one seed with SB3 on ``TradingEnv`` lanes over ``market``; see module docstring.

    ``eval_every`` counts SB3 rollouts (PPO/A2C: ``n_steps`` per lane; DQN: ``train_freq``).
    The returned policy is the project's module with the best validation checkpoint.
    """
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv

    from ..env import TradingEnv

    env_cfg = env_config.replace(device="cpu")  # SB3 steps numpy envs one lane at a time
    venv = DummyVecEnv(
        [lambda i=i: Monitor(TradingEnv(market, env_cfg, seed=seed * 100_003 + i)) for i in range(num_envs)]
    )
    try:
        model = build_model(cfg, venv, seed=seed, device=device)
        obs_dim = int(np.prod(venv.observation_space.shape))
        n_actions = int(venv.action_space.n)
        run = _ValidationRun(cfg, agent, seed, obs_dim, n_actions, eval_fn, int(eval_every), patience)
        model.learn(total_timesteps=cfg.total_steps, callback=_make_callback(run), progress_bar=False)
    finally:
        venv.close()
    policy = to_project_policy(model, cfg, obs_dim, n_actions)
    if run.selector.best_state is not None:
        policy.load_state_dict(run.selector.best_state)
    return TrainResult(
        policy=policy.eval(),
        history=history_frame(run.rows),
        best_score=run.selector.best_score,
        steps=int(model.num_timesteps),
    )
