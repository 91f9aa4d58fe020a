"""Optional stable-baselines3 backend: train with SB3, ship the project's own policy artifact.

What: ``backend: sb3`` in a ``training.<agent>`` block trains that agent with the
stable-baselines3 algorithm named by ``algorithm`` (``ppo``, ``a2c``, ``dqn``) on the
project's own ``TradingEnv`` (one account per SB3 lane, in a ``DummyVecEnv`` with
``Monitor`` for episode returns). Checkpoints are selected exactly as for the torch agents:
every ``eval_every`` SB3 rollouts a callback converts the current SB3 policy into the
project's policy module and scores it with the same ``eval_fn`` (validation Sharpe); the
best checkpoint is kept and ``patience`` evaluations without a new best stop training.

Why convert rather than pickle SB3 models: the artifact contract (``spec.json`` +
safetensors, loadable without executing code) must not depend on the backend, so
evaluation and deployment never import SB3. SB3 is built with the same MLP layout as our
modules (``net_arch`` = ``hidden_sizes`` for separate actor/critic or Q trunks,
``activation_fn`` = ``activation``), so its weights map one to one:

* PPO / A2C: ``mlp_extractor.policy_net.{2i}`` -> ``actor.{2i}``, ``action_net`` -> the
  actor's last layer; ``mlp_extractor.value_net.{2i}`` -> ``critic.{2i}``, ``value_net`` ->
  the critic's last layer (``ActorCriticPolicy``; deterministic action = argmax logits, as
  SB3's ``predict(deterministic=True)``);
* DQN: ``q_net.q_net.{2i}`` -> ``trunk.{2i}``, the last layer -> ``q_head``
  (``QPolicy`` with ``dueling: false``; greedy over Q, as SB3).

Continuous-action algorithms (SAC, TD3, DDPG) are refused with a clear error: the project's
policies act over discrete target positions.

Parameters of an SB3 block: ``algorithm``, ``backend``, the ``training.common`` overrides,
``hidden_sizes``, ``activation``, ``total_steps``; every other key is passed to the SB3
constructor and must be one of its arguments (checked against its signature, so a typo is
an error naming ``training.<agent>.<key>``). SB3 is an optional dependency (extra ``sb3``);
it is imported only when this backend is used.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..params.base import PositiveInt
from .common import HISTORY_COLUMNS, TrainingDivergedError, TrainResult
from .config import Activation, AgentConfig, AgentConfigError, HiddenSizes
from .networks import ACTIVATIONS, ActorCriticPolicy, QPolicy

SB3_ALGORITHMS = {"ppo": "PPO", "a2c": "A2C", "dqn": "DQN"}
CONTINUOUS_ONLY = ("sac", "td3", "ddpg", "tqc")
OWN_KEYS = ("hidden_sizes", "activation", "total_steps")
# constructor arguments the backend sets itself
RESERVED = ("policy", "env", "policy_kwargs", "seed", "device", "verbose", "tensorboard_log",
            "_init_setup_model", "stats_window_size", "monitor_wrapper", "replay_buffer_class")


def _sb3():
    try:
        import stable_baselines3
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise AgentConfigError(
            "backend: sb3 needs stable-baselines3; install the optional extra: pip install 'reinforce-strategy-creator[sb3]'"
        ) from exc
    return stable_baselines3


def _number(x) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool) and math.isfinite(x)


class _Sb3Own(AgentConfig):
    """The keys an SB3 block shares with the project's agents (the rest go to the SB3 constructor)."""

    total_steps: PositiveInt = 100_000
    """Env transitions to collect."""
    hidden_sizes: HiddenSizes = (64, 64)
    """Hidden layer widths (SB3 net_arch), mapped one to one onto the project's policy."""
    activation: Activation = "tanh"
    """Activation of the hidden layers."""


@dataclass(frozen=True)
class Sb3Config:
    """A validated ``training.<agent>`` block for the SB3 backend."""

    algorithm: str
    total_steps: int
    hidden_sizes: tuple
    activation: str
    kwargs: dict

    @classmethod
    def from_params(cls, algorithm: str, params: Mapping[str, Any], prefix: str, num_envs: int) -> Sb3Config:
        if algorithm in CONTINUOUS_ONLY:
            raise AgentConfigError(
                f"{prefix}.algorithm={algorithm!r} needs continuous actions, which the project's policies do not "
                f"support (they act over discrete target positions); choose one of {sorted(SB3_ALGORITHMS)}"
            )
        if algorithm not in SB3_ALGORITHMS:
            raise AgentConfigError(
                f"{prefix}.algorithm={algorithm!r} is not supported by backend sb3; choose one of {sorted(SB3_ALGORITHMS)}"
            )
        params = dict(params)
        own = _Sb3Own.parse({k: params.pop(k) for k in OWN_KEYS if k in params}, prefix)
        hidden, activation, total = own.hidden_sizes, own.activation, own.total_steps
        sb3_cls = getattr(_sb3(), SB3_ALGORITHMS[algorithm])
        sig = inspect.signature(sb3_cls.__init__).parameters
        allowed = sorted(k for k in sig if k not in RESERVED and k != "self")
        for key in params:
            if key not in allowed:
                raise AgentConfigError(
                    f"unknown parameter {prefix}.{key} for stable-baselines3 {SB3_ALGORITHMS[algorithm]}; "
                    f"valid keys are {sorted(OWN_KEYS)} and the SB3 constructor arguments {allowed}"
                )
        kw = {k: (tuple(v) if isinstance(v, list) else v) for k, v in params.items()}
        if "learning_rate" in kw and not (_number(kw["learning_rate"]) and kw["learning_rate"] > 0):
            raise AgentConfigError(f"{prefix}.learning_rate must be > 0 (got {kw['learning_rate']!r})")
        if "gamma" in kw and not (_number(kw["gamma"]) and 0 < kw["gamma"] <= 1):
            raise AgentConfigError(f"{prefix}.gamma must be in (0, 1] (got {kw['gamma']!r})")
        default = {k: v.default for k, v in sig.items()}
        if algorithm == "ppo":
            n_steps = kw.get("n_steps", default["n_steps"])
            batch = kw.get("batch_size", default["batch_size"])
            if _number(batch) and _number(n_steps) and batch > n_steps * num_envs:
                raise AgentConfigError(
                    f"{prefix}.batch_size={batch} is larger than the rollout ({n_steps} n_steps x {num_envs} lanes = "
                    f"{n_steps * num_envs}); lower batch_size or raise n_steps"
                )
        if algorithm == "dqn":
            batch = kw.get("batch_size", default["batch_size"])
            buf = kw.get("buffer_size", default["buffer_size"])
            if _number(batch) and _number(buf) and batch > buf:
                raise AgentConfigError(f"{prefix}.batch_size={batch} is larger than {prefix}.buffer_size={buf}")
        return cls(algorithm, int(total), tuple(int(h) for h in hidden), str(activation), kw)

    def to_dict(self) -> dict[str, Any]:
        return {"backend": "sb3", "total_steps": self.total_steps, "hidden_sizes": list(self.hidden_sizes),
                "activation": self.activation,
                **{k: (list(v) if isinstance(v, tuple) else v) for k, v in self.kwargs.items()}}


# --------------------------------------------------------------------------- conversion
def _linear_indices(n_hidden: int) -> list[int]:
    return [2 * i for i in range(n_hidden)]  # Linear, activation, Linear, activation, ...


def to_project_policy(model, cfg: Sb3Config, obs_dim: int, n_actions: int) -> nn.Module:
    """The project's policy module carrying the SB3 model's current weights (on CPU)."""
    sd = {k: v.detach().to("cpu").clone() for k, v in model.policy.state_dict().items()}
    n = len(cfg.hidden_sizes)
    new: dict[str, torch.Tensor] = {}
    if cfg.algorithm in ("ppo", "a2c"):
        policy: nn.Module = ActorCriticPolicy(obs_dim, n_actions, cfg.hidden_sizes, cfg.activation, algorithm=cfg.algorithm)
        for ours, theirs, head in (("actor", "policy_net", "action_net"), ("critic", "value_net", "value_net")):
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
    sb3 = _sb3()
    act = ACTIVATIONS[cfg.activation]
    hidden = list(cfg.hidden_sizes)
    if cfg.algorithm == "dqn":
        policy_kwargs = dict(net_arch=hidden, activation_fn=act)
    else:
        policy_kwargs = dict(net_arch=dict(pi=hidden, vf=hidden), activation_fn=act, share_features_extractor=True)
    cls = getattr(sb3, SB3_ALGORITHMS[cfg.algorithm])
    return cls("MlpPolicy", venv, policy_kwargs=policy_kwargs, seed=seed, device=device, verbose=0, **cfg.kwargs)


# --------------------------------------------------------------------------- training
def _make_callback(cfg: Sb3Config, agent: str, seed: int, obs_dim: int, n_actions: int,
                   eval_fn, eval_every: int, patience: int | None):
    from stable_baselines3.common.callbacks import BaseCallback

    loss_keys = {"policy_loss": ("train/policy_gradient_loss", "train/policy_loss"),
                 "value_loss": ("train/value_loss",), "q_loss": ("train/loss",) if cfg.algorithm == "dqn" else ()}

    class Selector(BaseCallback):
        """Validation checkpoint selection, early stopping, history rows and a divergence guard."""

        def __init__(self):
            super().__init__(verbose=0)
            self.rollouts = 0
            self.rows: list[dict[str, float]] = []
            self.best_score = -math.inf
            self.best_state: dict[str, torch.Tensor] | None = None
            self.bad = 0
            self.stop = False
            self.ep_sum, self.ep_n = 0.0, 0
            self.evaluated_last = False
            self._t, self._steps = time.perf_counter(), 0

        def _on_step(self) -> bool:
            for info in self.locals.get("infos", ()):
                ep = info.get("episode")
                if ep is not None:
                    self.ep_sum += float(ep["r"])
                    self.ep_n += 1
            return not self.stop

        def _row(self, score: float) -> None:
            now = time.perf_counter()
            row = {c: math.nan for c in HISTORY_COLUMNS}
            row["step"] = self.num_timesteps
            row["episode_return"] = self.ep_sum / self.ep_n if self.ep_n else math.nan
            self.ep_sum, self.ep_n = 0.0, 0
            logged = self.logger.name_to_value
            for col, keys in loss_keys.items():
                for k in keys:
                    if k in logged:
                        row[col] = float(logged[k])
            if "train/entropy_loss" in logged:
                row["entropy"] = -float(logged["train/entropy_loss"])
            row["eval_score"] = score
            row["steps_per_s"] = (self.num_timesteps - self._steps) / max(now - self._t, 1e-9)
            self._t, self._steps = now, self.num_timesteps
            self.rows.append(row)

        def _guard(self) -> None:
            for k, v in self.logger.name_to_value.items():
                if k.startswith("train/") and k.endswith("loss") and not math.isfinite(float(v)):
                    raise TrainingDivergedError(agent, seed, self.rollouts, k, float(v))
            for name, p in self.model.policy.named_parameters():
                if not bool(torch.isfinite(p).all()):
                    raise TrainingDivergedError(agent, seed, self.rollouts, f"weight {name}", math.nan)

        def _evaluate(self) -> float:
            policy = to_project_policy(self.model, cfg, obs_dim, n_actions)
            with torch.no_grad():
                score = float(eval_fn(policy))
            if math.isfinite(score) and score > self.best_score:
                self.best_score, self.best_state, self.bad = score, policy.state_dict(), 0
            else:
                self.bad += 1
                if patience is not None and self.bad >= patience:
                    self.stop = True
            return score

        def _on_rollout_end(self) -> None:
            # SB3 trains after this hook, so the losses logged now are those of the previous update
            self.rollouts += 1
            self._guard()
            score = math.nan
            self.evaluated_last = False
            if eval_fn is not None and self.rollouts % eval_every == 0:
                score = self._evaluate()
                self.evaluated_last = True
            self._row(score)

        def _on_training_end(self) -> None:
            self._guard()
            if eval_fn is not None and not self.evaluated_last and not self.stop:
                self._row(self._evaluate())

    return Selector()


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
    venv = DummyVecEnv([lambda i=i: Monitor(TradingEnv(market, env_cfg, seed=seed * 100_003 + i))
                        for i in range(num_envs)])
    try:
        model = build_model(cfg, venv, seed=seed, device=device)
        obs_dim = int(np.prod(venv.observation_space.shape))
        n_actions = int(venv.action_space.n)
        cb = _make_callback(cfg, agent, seed, obs_dim, n_actions, eval_fn, int(eval_every), patience)
        model.learn(total_timesteps=cfg.total_steps, callback=cb, progress_bar=False)
    finally:
        venv.close()
    policy = to_project_policy(model, cfg, obs_dim, n_actions)
    if cb.best_state is not None:
        policy.load_state_dict(cb.best_state)
    history = pd.DataFrame(cb.rows, columns=HISTORY_COLUMNS)
    history["step"] = history["step"].astype("int64")
    best = cb.best_score if cb.best_state is not None else math.nan
    return TrainResult(policy=policy.eval(), history=history, best_score=best, steps=int(model.num_timesteps))
