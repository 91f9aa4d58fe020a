"""Torch reinforcement-learning agents (PPO, A2C, DQN) for any gymnasium ``VectorEnv``.

Plain library, no Kedro. See docs/agents.md for the algorithms, hyperparameters, the
policy interface, the module layout and how to add an agent.

Every trainer trains a population (docs/populations.md): ``ALGORITHMS[algo] = (ConfigClass,
train_<algo>)`` trains K >= 1 members (seeds, or seeds x folds) as one and returns one
``TrainResult`` per member; one member is a plain run, and a member's weights do not depend on
the others. Training calls it, for one agent block whose seeds (and folds) it wants trained
together, as::

    config_cls, train = ALGORITHMS[plan.algorithm]
    results = train(
        [make_train_env(market_k, env_cfg, settings.num_envs, seed_k) for (market_k, seed_k) in members],
        plan.config,
        seeds=[seed_k for _, seed_k in members],
        device=str(device),
        eval_fns=[score_fn_k for ...],   # each member's own validation scorer (its fold's)
        eval_every=settings.eval_every,
        patience=settings.patience,
        progress=settings.progress,
    )

Members that share one market *object* (seeds of one fold, built from the same
``MarketArrays``) are stepped as one fused env automatically; members on different markets
step their own envs. All members need the same ``num_envs``, observation size and actions.
A ``TrainingDivergedError`` from any member ends the whole population (it names that
member's seed). The stable-baselines3 backend (``sb3_backend``) trains one seed at a time.
"""

from ..params.agents import AgentConfigError
from .a2c import A2CConfig, train_a2c
from .checkpoint import CheckpointSelector
from .dqn import DQNConfig, train_dqn
from .ensemble import ENSEMBLE_SEED, PolicyLanes, SeedEnsemble, seed_label
from .errors import AgentEnvError, TrainingDivergedError
from .evaluate import evaluate_episodes
from .networks import ActorCriticPolicy, QPolicy
from .policy import PolicySpecError, build_policy
from .ppo import PPOConfig, train_ppo
from .seeding import resolve_device
from .tracking import TrainResult
from .vec_env import TensorVecEnv

ALGORITHMS = {
    "ppo": (PPOConfig, train_ppo),
    "a2c": (A2CConfig, train_a2c),
    "dqn": (DQNConfig, train_dqn),
}
BACKENDS = ("torch", "sb3")  # sb3: optional stable-baselines3 backend (agents/sb3_backend.py)

__all__ = [
    "ALGORITHMS",
    "BACKENDS",
    "A2CConfig",
    "ActorCriticPolicy",
    "AgentConfigError",
    "AgentEnvError",
    "CheckpointSelector",
    "DQNConfig",
    "ENSEMBLE_SEED",
    "PPOConfig",
    "PolicyLanes",
    "PolicySpecError",
    "QPolicy",
    "SeedEnsemble",
    "TensorVecEnv",
    "TrainingDivergedError",
    "TrainResult",
    "build_policy",
    "evaluate_episodes",
    "resolve_device",
    "seed_label",
    "train_a2c",
    "train_dqn",
    "train_ppo",
]
