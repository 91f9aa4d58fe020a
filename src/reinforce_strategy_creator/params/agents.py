"""The hyperparameter blocks of the agents (``training.<agent>``, ``portfolio.training.agents.<agent>``).

One typed block per algorithm, one field per hyperparameter with its documentation, like
CleanRL's ``Args``: :class:`PPOConfig`, :class:`A2CConfig`, :class:`DQNConfig` (the project's own
agents, ``agents/<algo>.py`` train them), :class:`Sb3Config` (the stable-baselines3 backend) and
one block per algorithm for any N: the fields that only a universe (N >= 2, ``PortfolioCore``
members) reads are marked so and refused, by name, on single-asset members. They are
:class:`~.base.Params`, so a bad value is an error naming ``training.<agent>.<key>``.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
from pydantic import AfterValidator, Field, field_validator

from .base import Flag, NonNegativeInt, Number, ParameterError, Params, PositiveInt

#: > 0 (learning rates, clip ranges, gradient-norm limits, scales)
Positive = Annotated[Number, Field(gt=0)]
#: >= 0 (loss coefficients)
NonNegative = Annotated[Number, Field(ge=0)]
#: a discount factor in (0, 1] (0 would make every target myopic by accident)
Discount = Annotated[Number, Field(gt=0, le=1)]
#: a fraction in [0, 1]
Fraction = Annotated[Number, Field(ge=0, le=1)]
Activation = Literal["tanh", "relu", "elu", "gelu"]


def _non_empty(v: tuple[int, ...]) -> tuple[int, ...]:
    if not v:
        raise ValueError("must be a non-empty list of positive ints")
    return v


#: hidden layer widths: a non-empty list of positive ints
HiddenSizes = Annotated[tuple[PositiveInt, ...], AfterValidator(_non_empty)]

#: Kept for callers that catch an agent's own parameter errors.
AgentConfigError = ParameterError


class AgentConfig(Params):
    """Base of the per-algorithm hyperparameter blocks (``training.<agent>`` minus the common keys)."""

    PATH: ClassVar[str] = "training.agent"
    FILE: ClassVar[str] = "conf/base/parameters_training.yml"

    @classmethod
    def from_params(cls, params: Any = None, prefix: str | None = None):
        """The block validated, errors naming ``prefix.<key>`` (default ``training.<algorithm>``)."""
        return cls.parse(params, prefix or cls.PATH)

    def check_batch(self, num_envs: int, prefix: str | None = None) -> None:
        """Checks that need the number of env lanes (e.g. minibatch vs rollout size); none by default."""

    def to_dict(self) -> dict[str, Any]:
        return self.to_params()


Distribution = Literal["logistic_normal", "dirichlet"]
#: what the learner subtracts from each reward (``reward_baseline``)
REWARD_BASELINES = ("benchmark", "none")


class LearnerConfig(AgentConfig):
    """The fields every algorithm shares, read at any N (``reward_baseline``,
    ``deviation_penalty``, ``start_at_benchmark``, ``benchmark_margin``); subclasses list the
    fields only universe members (N >= 2) read in ``UNIVERSE_ONLY``."""

    UNIVERSE_ONLY: ClassVar[tuple[str, ...]] = ()

    reward_baseline: Literal["benchmark", "none"] = "none"
    """What learning subtracts from each bar's reward: the benchmark book's log return over the
    same bar (benchmark: buy-and-hold of the asset at N = 1, its close-to-close log return;
    equal weight over the tradable assets at N >= 2; so the agent learns its excess log return
    over the benchmark, after its own costs) or nothing (none). The same for every action, so it
    lowers the variance without changing which policy is best; histories always report the
    reward."""
    deviation_penalty: NonNegative = 0.0
    """Learning only: subtracted from each bar's reward per unit of L1 distance between the book
    the agent chose and the benchmark's (at N = 1 |position - 1|, buy-and-hold being fully
    long; at N >= 2 the sum over assets of |weight - 1/n| over the n tradable assets), in log
    return per bar (0.0002 = 2 bps a day for being fully out of the market). It anchors the
    agent on the benchmark: a deviation must earn more than this to be learnt, so on a market
    with nothing to find the agent holds the benchmark. Histories always report the reward."""
    start_at_benchmark: Flag = False
    """The untrained policy chooses the benchmark's book: fully long at N = 1 (buy-and-hold),
    equal weight with almost no cash at N >= 2 (the output layer starts at zero with the
    benchmark's action leading by 0.05: the argmax, while exploration stays about uniform), and
    this untrained policy is scored as the first checkpoint (step 0): a
    checkpoint that deviates is kept only if it beats holding the benchmark on the evaluation
    window. Only the output layer changes; every other weight is the seed's plain start."""
    benchmark_margin: NonNegative = 0.0
    """With start_at_benchmark: how much a trained checkpoint's evaluation score (the validation
    Sharpe, annualised) must exceed the untrained benchmark-holding policy's to replace it. A
    deviation kept on the strength of a small validation edge is mostly noise on a market with
    nothing to find (docs/learning.md, "Do no harm")."""

    @field_validator("reward_baseline", mode="before")
    @classmethod
    def _renamed_baseline(cls, v: Any) -> Any:
        if v == "equal_weight":
            raise ValueError(
                "'equal_weight' is now called 'benchmark' (equal weight at N >= 2, buy-and-hold "
                "at N = 1); write reward_baseline: benchmark"
            )
        return v

    def check_members(self, universe: bool, prefix: str | None = None) -> None:
        """Refuse, by name, a universe-only field set on single-asset members."""
        if universe:
            return
        for name in self.UNIVERSE_ONLY:
            if name in self.model_fields_set and getattr(self, name) != type(self).model_fields[name].default:
                raise AgentConfigError(
                    f"{prefix or self.PATH}.{name}={getattr(self, name)!r} applies to universes (N >= 2) "
                    "only; a single-asset agent chooses among environment.positions. Remove it."
                )


class ActorConfig(LearnerConfig):
    """The actor-critic's fields that only universe members (N >= 2) read: the action
    distribution over the simplex (docs/agents.md, "Policies at N >= 1")."""

    UNIVERSE_ONLY: ClassVar[tuple[str, ...]] = (
        "distribution",
        "log_std",
        "log_concentration",
        "decision_temperature",
    )

    distribution: Distribution = "logistic_normal"
    """Universes only: the actor's distribution over the simplex, logistic_normal (weights =
    softmax of a Gaussian point) or dirichlet (mean x learned concentration)."""
    log_std: float = 0.0
    """Universes only: initial log-std of the logistic-normal policy's Gaussian (learned; clamped
    to [-5, 2])."""
    log_concentration: float = 1.0
    """Universes only: initial log concentration of the Dirichlet policy (learned; clamped to
    [-2, 6])."""
    decision_temperature: float = Field(default=1.0, gt=0)
    """Universes only: the logistic-normal policy's deterministic action, softmax(scores / T);
    below 1 sharper (towards all-in on the best-scored asset) than the softmax of the Gaussian's
    mean."""


class PPOConfig(ActorConfig):
    """PPO hyperparameters (``training.<agent>`` with ``algorithm: ppo``)."""

    PATH: ClassVar[str] = "training.ppo"

    total_steps: PositiveInt = 100_000
    """Env transitions to collect (all lanes together)."""
    num_steps: PositiveInt = 128
    """Steps per lane per rollout; a rollout holds num_steps × num_envs transitions."""
    learning_rate: Positive = 2.5e-4
    """Adam learning rate."""
    anneal_lr: Flag = True
    """Anneal the learning rate linearly to 0 over the run."""
    gamma: Discount = 0.99
    """Discount factor, in (0, 1]."""
    gae_lambda: Fraction = 0.95
    """GAE(λ) bias/variance trade-off, in [0, 1]."""
    num_minibatches: PositiveInt = 4
    """Minibatches per epoch over the rollout."""
    update_epochs: PositiveInt = 4
    """Passes over each rollout."""
    norm_adv: Flag = True
    """Normalise advantages within each minibatch."""
    clip_coef: Positive = 0.2
    """Clip range of the probability ratio (and of the value loss when clip_vloss)."""
    clip_vloss: Flag = True
    """Clip the value loss around the old values."""
    ent_coef: NonNegative = 0.01
    """Entropy bonus coefficient."""
    vf_coef: NonNegative = 0.5
    """Value loss coefficient."""
    max_grad_norm: Positive = 0.5
    """Global gradient-norm clip."""
    target_kl: Positive | None = None
    """Stop the epoch loop early when the approximate KL exceeds this; null = never."""
    hidden_sizes: HiddenSizes = (64, 64)
    """Hidden layer widths of the actor and of the critic (separate MLPs)."""
    activation: Activation = "tanh"
    """Activation of the hidden layers."""
    log_every: PositiveInt = 1
    """Updates per history row (and progress-bar refresh)."""

    def check_batch(self, num_envs: int, prefix: str | None = None) -> None:
        prefix = prefix or self.path
        rollout = self.num_steps * int(num_envs)
        if self.num_minibatches > rollout:
            raise AgentConfigError(
                f"{prefix}.num_minibatches={self.num_minibatches} is larger than the rollout "
                f"({self.num_steps} num_steps x {num_envs} lanes = {rollout} transitions): "
                f"each minibatch would be empty; use at most {rollout} minibatches or a longer "
                "rollout"
            )


class A2CConfig(ActorConfig):
    """A2C hyperparameters (``training.<agent>`` with ``algorithm: a2c``)."""

    PATH: ClassVar[str] = "training.a2c"

    total_steps: PositiveInt = 200_000
    """Env transitions to collect (all lanes together)."""
    num_steps: PositiveInt = 5
    """Steps per lane per update (n-step returns / GAE over this horizon)."""
    learning_rate: Positive = 7e-4
    """Optimiser learning rate."""
    optimizer: Literal["rmsprop", "adam"] = "rmsprop"
    """`rmsprop` (as in the A2C paper and SB3) or `adam`."""
    rms_alpha: Annotated[Number, Field(gt=0, lt=1)] = 0.99
    """RMSprop smoothing constant, in (0, 1)."""
    eps: Positive = 1e-5
    """Optimiser epsilon."""
    anneal_lr: Flag = False
    """Anneal the learning rate linearly to 0 over the run."""
    gamma: Discount = 0.99
    """Discount factor, in (0, 1]."""
    gae_lambda: Fraction = 1.0
    """GAE(λ); 1.0 = plain n-step returns."""
    norm_adv: Flag = False
    """Normalise advantages within each update."""
    ent_coef: NonNegative = 0.0
    """Entropy bonus coefficient."""
    vf_coef: NonNegative = 0.5
    """Value loss coefficient."""
    max_grad_norm: Positive = 0.5
    """Global gradient-norm clip."""
    hidden_sizes: HiddenSizes = (64, 64)
    """Hidden layer widths of the actor and of the critic (separate MLPs)."""
    activation: Activation = "tanh"
    """Activation of the hidden layers."""
    log_every: PositiveInt = 20
    """Updates per history row (and progress-bar refresh)."""


class DQNConfig(LearnerConfig):
    """DQN hyperparameters (``training.<agent>`` with ``algorithm: dqn``)."""

    PATH: ClassVar[str] = "training.dqn"

    total_steps: PositiveInt = 100_000
    """Env transitions to collect (all lanes together)."""
    learning_rate: Positive = 1e-3
    """Adam learning rate."""
    buffer_size: PositiveInt = 50_000
    """Replay buffer capacity (transitions)."""
    batch_size: PositiveInt = 128
    """Transitions per gradient step."""
    gamma: Discount = 0.99
    """Discount factor, in (0, 1]."""
    n_step: PositiveInt = 1
    """n-step returns (stopping at episode ends)."""
    tau: Annotated[Number, Field(gt=0, le=1)] = 1.0
    """Target-network update rate, in (0, 1]; 1 = hard copy every target_update_every steps."""
    target_update_every: PositiveInt = 250
    """Gradient steps between target-network updates."""
    learning_starts: NonNegativeInt = 1_000
    """Transitions collected before the first gradient step."""
    train_frequency: PositiveInt = 1
    """Vector steps between training iterations."""
    gradient_steps: PositiveInt = 1
    """Gradient steps per training iteration."""
    eps_start: Fraction = 1.0
    """Initial ε of the ε-greedy exploration."""
    eps_end: Fraction = 0.05
    """Final ε."""
    exploration_fraction: Fraction = 0.2
    """Fraction of the run over which ε decays linearly."""
    double: Flag = True
    """Double DQN targets (online argmax, target value)."""
    dueling: Flag = True
    """Dueling head Q = V + A − mean(A)."""
    loss: Literal["huber", "mse"] = "huber"
    """TD loss."""
    reward_scale: Positive = 1.0
    """Rewards are multiplied by this for learning only (daily log returns are ~1e-2)."""
    max_grad_norm: Positive = 10.0
    """Global gradient-norm clip."""
    hidden_sizes: HiddenSizes = (128, 128)
    """Hidden layer widths of the Q-network trunk."""
    activation: Activation = "relu"
    """Activation of the hidden layers."""
    log_every: PositiveInt = 10
    """Iterations per history row (and progress-bar refresh)."""

    def check_batch(self, num_envs: int, prefix: str | None = None) -> None:
        prefix = prefix or self.path
        if self.batch_size > self.buffer_size:
            raise AgentConfigError(
                f"{prefix}.batch_size={self.batch_size} is larger than "
                f"{prefix}.buffer_size={self.buffer_size}: the replay buffer could never fill one "
                "minibatch; lower batch_size or raise buffer_size"
            )


# --------------------------------------------------------------------------- stable-baselines3
SB3_ALGORITHMS = {"ppo": "PPO", "a2c": "A2C", "dqn": "DQN"}
CONTINUOUS_ONLY = ("sac", "td3", "ddpg", "tqc")
OWN_KEYS = ("hidden_sizes", "activation", "total_steps")
# constructor arguments the backend sets itself
RESERVED = (
    "policy",
    "env",
    "policy_kwargs",
    "seed",
    "device",
    "verbose",
    "tensorboard_log",
    "_init_setup_model",
    "stats_window_size",
    "monitor_wrapper",
    "replay_buffer_class",
)


def import_sb3():
    """The ``stable_baselines3`` module (optional extra), or an error saying how to install it."""
    try:
        import stable_baselines3
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise AgentConfigError(
            "backend: sb3 needs stable-baselines3; install the optional extra: "
            "pip install 'reinforce-strategy-creator[sb3]'"
        ) from exc
    return stable_baselines3


def _number(x) -> bool:
    return (
        isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool) and math.isfinite(x)
    )


class _Sb3Own(AgentConfig):
    """The keys an SB3 block shares with the project's agents (the rest go to the SB3
    constructor)."""

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
        _check_algorithm(algorithm, prefix)
        params = dict(params)
        own = _Sb3Own.parse({k: params.pop(k) for k in OWN_KEYS if k in params}, prefix)
        sig = inspect.signature(getattr(import_sb3(), SB3_ALGORITHMS[algorithm]).__init__).parameters
        _check_keys(algorithm, params, sig, prefix)
        kw = {k: (tuple(v) if isinstance(v, list) else v) for k, v in params.items()}
        _check_values(algorithm, kw, {k: v.default for k, v in sig.items()}, prefix, num_envs)
        return cls(
            algorithm, int(own.total_steps), tuple(int(h) for h in own.hidden_sizes), str(own.activation), kw
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "backend": "sb3",
            "total_steps": self.total_steps,
            "hidden_sizes": list(self.hidden_sizes),
            "activation": self.activation,
            **{k: (list(v) if isinstance(v, tuple) else v) for k, v in self.kwargs.items()},
        }


def _check_algorithm(algorithm: str, prefix: str) -> None:
    if algorithm in CONTINUOUS_ONLY:
        raise AgentConfigError(
            f"{prefix}.algorithm={algorithm!r} needs continuous actions, which the project's "
            "policies do not support (they act over discrete target positions); choose one of "
            f"{sorted(SB3_ALGORITHMS)}"
        )
    if algorithm not in SB3_ALGORITHMS:
        raise AgentConfigError(
            f"{prefix}.algorithm={algorithm!r} is not supported by backend sb3; choose one of "
            f"{sorted(SB3_ALGORITHMS)}"
        )


def _check_keys(algorithm: str, params: Mapping[str, Any], sig: Mapping[str, Any], prefix: str) -> None:
    """Every key left after the own ones must be an argument of the SB3 constructor."""
    allowed = sorted(k for k in sig if k not in RESERVED and k != "self")
    for key in params:
        if key not in allowed:
            raise AgentConfigError(
                f"unknown parameter {prefix}.{key} for stable-baselines3 "
                f"{SB3_ALGORITHMS[algorithm]}; valid keys are {sorted(OWN_KEYS)} and the SB3 "
                f"constructor arguments {allowed}"
            )


def _check_values(
    algorithm: str, kw: Mapping[str, Any], default: Mapping[str, Any], prefix: str, num_envs: int
) -> None:
    """The value checks SB3 would only fail on (or silently accept) once training started."""
    if "learning_rate" in kw and not (_number(kw["learning_rate"]) and kw["learning_rate"] > 0):
        raise AgentConfigError(f"{prefix}.learning_rate must be > 0 (got {kw['learning_rate']!r})")
    if "gamma" in kw and not (_number(kw["gamma"]) and 0 < kw["gamma"] <= 1):
        raise AgentConfigError(f"{prefix}.gamma must be in (0, 1] (got {kw['gamma']!r})")
    if algorithm == "ppo":
        n_steps = kw.get("n_steps", default["n_steps"])
        batch = kw.get("batch_size", default["batch_size"])
        if _number(batch) and _number(n_steps) and batch > n_steps * num_envs:
            raise AgentConfigError(
                f"{prefix}.batch_size={batch} is larger than the rollout ({n_steps} n_steps x "
                f"{num_envs} lanes = {n_steps * num_envs}); lower batch_size or raise n_steps"
            )
    if algorithm == "dqn":
        batch = kw.get("batch_size", default["batch_size"])
        buf = kw.get("buffer_size", default["buffer_size"])
        if _number(batch) and _number(buf) and batch > buf:
            raise AgentConfigError(f"{prefix}.batch_size={batch} is larger than {prefix}.buffer_size={buf}")


#: algorithm -> its hyperparameter block, for ``training.<agent>`` (backend ``torch``) and
#: ``portfolio.training.agents.<agent>``
AGENT_CONFIGS: dict[str, type[LearnerConfig]] = {"ppo": PPOConfig, "a2c": A2CConfig, "dqn": DQNConfig}


def agent_config(algorithm: str, config: Any, universe: bool = False) -> LearnerConfig:
    """``config`` (a typed block, a dict or None) as ``algorithm``'s block, checked for members
    that are a universe (``PortfolioCore``, N >= 2 fields allowed) or single-asset vector envs
    (a universe-only field set is refused by name)."""
    cls = AGENT_CONFIGS[algorithm]
    cfg = config if isinstance(config, cls) else cls.from_params(config)
    cfg.check_members(universe)
    return cfg
