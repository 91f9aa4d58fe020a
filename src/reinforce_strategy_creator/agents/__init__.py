"""Torch reinforcement-learning agents (PPO, A2C, DQN) for any gymnasium ``VectorEnv``.

Plain library, no Kedro. See docs/agents.md for the algorithms, hyperparameters, the
policy interface, the module layout and how to add an agent.
"""

from .a2c import A2CConfig, train_a2c
from .checkpoint import CheckpointSelector
from .config import AgentConfigError
from .dqn import DQNConfig, train_dqn
from .ensemble import ENSEMBLE_SEED, SeedEnsemble, seed_label
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
