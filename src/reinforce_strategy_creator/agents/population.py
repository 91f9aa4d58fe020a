"""Populations: K small models of one architecture trained as one.

A population trains K *members* (seeds, or seeds x walk-forward folds) in one loop: every
vector step runs the K policies as one batched forward pass, every gradient step is one
backward pass and one optimiser step over parameters stacked along a leading member axis.
Each member is still its own training run (see docs/populations.md):

* its own env (its own market / date range and its own episode-start RNG stream), its own
  generator for action sampling, exploration and minibatch shuffles, its own initial
  weights (built exactly as a one-member run builds them for that seed);
* per-member loss reductions (advantage normalisation, means over the member's own
  minibatch), per-member gradient-norm clipping (the norm over that member's slice of every
  stacked parameter), a per-member optimiser step (:class:`StackedAdam`,
  :class:`StackedRMSprop`: each member has its own step count, and a member that is not
  active this step keeps its parameters and optimiser state unchanged);
* its own ``RunTracker`` (history, evaluation, ``CheckpointSelector``, patience); a member
  that stops early is frozen and its best checkpoint returned; the population ends when all
  members have stopped or the budget is spent.

Why batched matmuls (``torch.baddbmm`` over stacked weights) rather than
``torch.func.stack_module_state`` + ``functional_call`` + ``vmap``: on CPU, for the
project's MLPs (2 x 64 tanh actor + critic, 3 members, 64 lanes), a batched forward took
~195 µs against ~440 µs for vmap and ~300 µs for three separate module calls, forward +
backward ~480 µs against ~870 µs (vmap) and ~720 µs (separate); at 1024 rows per member
(a PPO minibatch) all three are within noise of each other because the matmuls dominate.
vmap re-traces the module and dispatches through functorch's batching rules on every call;
``baddbmm`` is one ATen call per layer. (Measured 2026-11-30 on the shared 2-core box,
provisional.)

Member modules are *views*: ``Population`` keeps the stacked parameters and rebinds every
member module's parameters to its slice, so ``eval_fn(member)``, the tracker's checkpoint
snapshot and ``TrainResult.policy`` see the member's current weights without copies. A member
is released (its parameters get their own storage) when it finishes.

Only the stacked forward, the optimisers and the rollout helpers are shared machinery here;
each algorithm's loop lives in its own file (``ppo.py``, ``a2c.py``, ``dqn.py``) with its loss
(``ppo_loss``, ``a2c_loss``, ``td_loss``), which reduces over the last axis so that it returns
one loss per member for ``(K, N)`` inputs. A population of one member is a plain run, and a
member's weights do not depend on K (bit for bit: see :meth:`Population.linear` and
:func:`clip_grad_norm_per_member`).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from ..env.core import BatchedTradingCore
from ..env.fused import fuse_trading_envs
from ..env.portfolio import PortfolioCore, PortfolioInputError
from ..params.agents import REWARD_BASELINES, AgentConfigError
from .buffers import RolloutBuffer, compute_gae
from .distributions import CATEGORICAL
from .networks import ActorCriticPolicy, QPolicy
from .tracking import RunTracker, _open_progress
from .vec_env import Step, TensorVecEnv


# --------------------------------------------------------------------------- arguments
def check_members(
    member_envs: Sequence[Any], seeds: Sequence[int], eval_fns: Sequence[Callable | None] | None
) -> list[Callable | None]:
    """Validate the per-member arguments; returns ``eval_fns`` as a list (Nones when absent)."""
    k = len(member_envs)
    if k < 1:
        raise AgentConfigError("a population needs at least one member env; member_envs is empty")
    if len(seeds) != k:
        raise AgentConfigError(
            f"a population needs one seed per member env: {k} member_envs but {len(seeds)} seeds"
        )
    for s in seeds:
        if not isinstance(s, int) or isinstance(s, bool):
            raise AgentConfigError(f"seeds must be ints, got {s!r}")
    if eval_fns is None:
        return [None] * k
    eval_fns = list(eval_fns)
    if len(eval_fns) != k:
        raise AgentConfigError(
            f"a population needs one eval_fn (or None) per member: {k} member_envs but "
            f"{len(eval_fns)} eval_fns"
        )
    return eval_fns


# --------------------------------------------------------------------------- stacked networks
class Population(nn.Module):
    """K member modules of one architecture with their parameters stacked along dim 0.

    ``self.stacked[name]`` has shape ``(K, *p.shape)`` for every parameter ``name`` of a
    member; the member modules' parameters are rebound to their slices (views).
    """

    def __init__(self, members: Sequence[nn.Module]):
        super().__init__()
        self._members = (members[0],)  # a tuple: not registered as a submodule
        names = [n for n, _ in members[0].named_parameters()]
        self.names = names
        for m in members[1:]:
            if [n for n, _ in m.named_parameters()] != names or m.spec != members[0].spec:
                raise AgentConfigError("population members must share one architecture (same spec)")
        self.params = nn.ParameterList(
            [
                nn.Parameter(torch.stack([dict(m.named_parameters())[n].detach() for m in members]))
                for n in names
            ]
        )
        self.stacked = dict(zip(names, self.params, strict=True))
        self.members: list[nn.Module] = list(members)  # plain list: not submodules
        self.released = [False] * len(members)
        for k in range(len(members)):
            self._bind(k)

    @property
    def template(self) -> nn.Module:
        """Member 0, whose layer structure the batched forward follows."""
        return self._members[0]

    @property
    def k(self) -> int:
        return len(self.members)

    def _bind(self, k: int) -> None:
        """Member k's parameters become views of slice k of the stacked parameters."""
        for name, p in self.members[k].named_parameters():
            p.data = self.stacked[name].data[k]

    def release(self, k: int) -> nn.Module:
        """Give member k's parameters their own storage (it no longer follows the stack)."""
        if not self.released[k]:
            for p in self.members[k].parameters():
                p.data = p.data.clone()
            self.released[k] = True
        return self.members[k]

    # -- batched layers: x is (K, N, in)
    def linear(self, prefix: str, x: torch.Tensor) -> torch.Tensor:
        """Layer ``prefix`` of every member on ``(K, N, in)`` rows. A one-output layer (a
        critic or dueling value head) is a row-wise product-sum: batched matmul takes a gemv
        path there whose rounding differs between one member and several; this does not."""
        w, b = self.stacked[f"{prefix}.weight"], self.stacked[f"{prefix}.bias"]
        if w.shape[1] == 1:
            return (x * w).sum(-1, keepdim=True) + b.unsqueeze(1)
        return torch.baddbmm(b.unsqueeze(1), x, w.transpose(1, 2))

    def sequential(self, prefix: str, seq: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(seq):
            x = self.linear(f"{prefix}.{i}", x) if isinstance(layer, nn.Linear) else layer(x)
        return x


class PopulationActorCritic(Population):
    """K :class:`ActorCriticPolicy` members; inputs ``(K, N, obs_dim)``; a categorical over
    the discrete action table (``distributions.CATEGORICAL``)."""

    action_dist = CATEGORICAL

    def __init__(self, members: Sequence[ActorCriticPolicy]):
        super().__init__(members)

    def logits(self, obs: torch.Tensor) -> torch.Tensor:
        return self.sequential("actor", self.template.actor, obs)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.sequential("critic", self.template.critic, obs).squeeze(-1)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, None, torch.Tensor]:
        """(logits, mask None: every action is in play, value): the actor-critic contract of
        ``distributions``."""
        return self.logits(obs), None, self.value(obs)


class PopulationQ(Population):
    """K :class:`QPolicy` members (dueling or not); inputs ``(K, N, obs_dim)``, output ``(K, N, A)``."""

    def __init__(self, members: Sequence[QPolicy]):
        super().__init__(members)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        h = self.sequential("trunk", self.template.trunk, obs)
        if self.template.dueling:
            a = self.linear("adv_head", h)
            return self.linear("value_head", h) + a - a.mean(-1, keepdim=True)
        return self.linear("q_head", h)


def member_major(x: torch.Tensor, k: int) -> torch.Tensor:
    """A rollout tensor ``(T, K*B, *rest)`` (lanes member-major) -> ``(K, T*B, *rest)``, each
    member's transitions flattened in the same (t, lane) order as a one-member run."""
    t, kb = x.shape[0], x.shape[1]
    rest = x.shape[2:]
    return x.reshape(t, k, kb // k, *rest).transpose(0, 1).reshape(k, t * (kb // k), *rest)


# --------------------------------------------------------------------------- actor-critic helpers
@torch.no_grad()
def collect_rollout(env, pop, buf: RolloutBuffer, trackers, obs, gens) -> torch.Tensor:
    """``num_steps`` vector steps of every member's stochastic policy (one batched forward;
    member k samples from ``pop.action_dist`` with its own generator) on any member-major env;
    returns the next observation. Learning sees :func:`learning_step` (the reward minus the env's
    ``baseline`` where it has one); the history keeps the reward."""
    k, b = env.k, env.lanes
    dist = pop.action_dist
    for t in range(buf.num_steps):
        params, mask, value = pop(obs.reshape(k, b, -1))
        x = torch.cat([dist.sample(params[i], None if mask is None else mask[i], gens[i]) for i in range(k)])
        params, mask = params.reshape(k * b, -1), None if mask is None else mask.reshape(k * b, -1)
        logprob = dist.log_prob(params, mask, x)
        step = env.step(dist.env_action(x, mask))
        buf.store(t, obs, x, logprob, value.reshape(k * b), learning_step(env, step))
        trackers.on_step(step)
        obs = step.obs
    return obs


def learning_step(env, step: Step) -> Step:
    """The step as learning sees it: its reward minus the env's ``baseline`` (the benchmark's log
    return over the step's bar, :func:`benchmark_log_return`) where the env reports one, minus
    ``deviation_penalty`` times the env's ``deviation`` (the L1 distance of the chosen book from
    the benchmark's, :func:`benchmark_deviation`) where the penalty is on, else ``step`` itself.
    Every trainer (rollouts and replay) learns through this one function; the history is fed the
    reported ``step``."""
    reward = step.reward
    if env.baseline is not None:
        reward = reward - env.baseline
    if env.deviation is not None:
        reward = reward - env.deviation_penalty * env.deviation
    return step if reward is step.reward else dataclasses.replace(step, reward=reward)


@torch.no_grad()
def population_successor_values(pop, buf: RolloutBuffer, k: int) -> torch.Tensor:
    """V(next_obs[t, lane]) for every (t, lane) of a filled member-major rollout, with the
    critic of the lane's member and as few critic calls as possible: where a lane did not end
    its episode at t its successor is the next stored observation, whose value the rollout
    already computed; the critic runs only on the last step's successors and on the true final
    observations of finished episodes. Episode ends are few, so their successors are run through
    every member's critic and the lane's own member's value is kept."""
    T, kb = buf.values.shape
    b = kb // k
    nv = torch.empty_like(buf.values)
    nv[:-1] = buf.values[1:]
    nv[-1] = pop.value(buf.next_obs[-1].reshape(k, b, -1)).reshape(kb)
    ended = buf.dones[:-1].bool()
    if bool(ended.any()):
        t, lane = ended.nonzero(as_tuple=True)
        rows = buf.next_obs[t, lane]
        vals = pop.value(rows.unsqueeze(0).expand(k, -1, -1))  # (K, n)
        nv[t, lane] = vals[lane // b, torch.arange(rows.shape[0], device=rows.device)]
    return nv


@torch.no_grad()
def population_gae(pop, buf: RolloutBuffer, cfg, k: int):
    """GAE(lambda) advantages and returns of a population rollout (``buffers.compute_gae``
    is per lane, so it serves member-major lanes unchanged)."""
    next_values = population_successor_values(pop, buf, k)
    return compute_gae(
        buf.rewards, buf.values, next_values, buf.terminated, buf.dones, buf.valid, cfg.gamma, cfg.gae_lambda
    )


# --------------------------------------------------------------------------- optimisers
@torch.no_grad()
def clip_grad_norm_per_member(params: Sequence[torch.Tensor], max_norm: float) -> torch.Tensor:
    """``nn.utils.clip_grad_norm_`` applied to each member separately: the norm is taken over
    member k's slice of every stacked parameter; returns the (K,) norms before clipping.

    Every norm is taken on one member's contiguous slice (not a (K, n) row-wise norm, which
    rounds differently for K = 1 and K > 1), so a member is clipped the same bits in a
    population of any size. Every trainer (single asset and portfolio) clips with this."""
    grads = [p.grad for p in params if p.grad is not None]
    k = grads[0].shape[0]
    total = torch.stack([torch.stack([g[i].reshape(-1).norm(2) for g in grads]).norm(2) for i in range(k)])
    coef = (max_norm / (total + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(coef.reshape(-1, *([1] * (g.dim() - 1))))
    return total


def _member_shape(mask: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    return mask.reshape(-1, *([1] * (p.dim() - 1)))


class StackedAdam:
    """Adam over stacked parameters with a per-member step count and an ``active`` mask.

    Elementwise the same arithmetic as ``torch.optim.Adam`` (no weight decay, no amsgrad), so
    member k's update equals a ``torch.optim.Adam`` step on its slice (to float rounding); a
    member that is not active keeps its parameters, moments and step count unchanged.
    """

    def __init__(
        self, params: Sequence[nn.Parameter], k: int, lr: float, betas=(0.9, 0.999), eps: float = 1e-8
    ):
        self.params = list(params)
        self.lr, self.betas, self.eps = float(lr), betas, float(eps)
        self.steps = torch.zeros(k, dtype=torch.float64)
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self, active: torch.Tensor) -> None:
        b1, b2 = self.betas
        self.steps += active.cpu().to(torch.float64)
        steps = self.steps.clamp(min=1.0)
        bc1 = (1.0 - b1**steps).to(torch.float32)
        bc2_sqrt = (1.0 - b2**steps).sqrt().to(torch.float32)
        step_size = self.lr / bc1
        # every member active (the usual case): the same arithmetic without the masks, so the same
        # bits for each member as the masked path gives an active one
        everyone = bool(active.all())
        for p, m, v in zip(self.params, self.m, self.v, strict=True):
            if p.grad is None:
                continue
            g = p.grad
            if everyone:  # in place, op for op the masked path's arithmetic
                m.lerp_(g, 1 - b1)
                v.mul_(b2).add_((1 - b2) * g * g)
                denom = v.sqrt().div_(_member_shape(bc2_sqrt.to(p.device), p)).add_(self.eps)
                p.sub_(m.div(denom).mul_(_member_shape(step_size.to(p.device), p)))
                continue
            a = _member_shape(active.to(p.device), p)
            m.copy_(torch.where(a, torch.lerp(m, g, 1 - b1), m))
            v.copy_(torch.where(a, v * b2 + (1 - b2) * g * g, v))
            denom = v.sqrt() / _member_shape(bc2_sqrt.to(p.device), p) + self.eps
            upd = m / denom * _member_shape(step_size.to(p.device), p)
            p.sub_(torch.where(a, upd, torch.zeros_like(upd)))


class StackedRMSprop:
    """RMSprop (``torch.optim.RMSprop`` defaults: no momentum, not centered) over stacked
    parameters with an ``active`` mask; inactive members keep parameters and state."""

    def __init__(self, params: Sequence[nn.Parameter], k: int, lr: float, alpha: float, eps: float):
        self.params = list(params)
        self.lr, self.alpha, self.eps = float(lr), float(alpha), float(eps)
        self.sq = [torch.zeros_like(p) for p in self.params]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self, active: torch.Tensor) -> None:
        everyone = bool(active.all())  # as StackedAdam: no masks when every member is active
        for p, sq in zip(self.params, self.sq, strict=True):
            if p.grad is None:
                continue
            g = p.grad
            if everyone:
                sq.copy_(sq * self.alpha + (1 - self.alpha) * g * g)
                p.sub_(g / (sq.sqrt() + self.eps) * self.lr)
                continue
            a = _member_shape(active.to(p.device), p)
            sq.copy_(torch.where(a, sq * self.alpha + (1 - self.alpha) * g * g, sq))
            upd = g / (sq.sqrt() + self.eps) * self.lr
            p.sub_(torch.where(a, upd, torch.zeros_like(upd)))


# --------------------------------------------------------------------------- envs
def benchmark_action(positions: Sequence[float]) -> int:
    """The index of the position closest to fully long in a discrete position table: the action
    that holds the benchmark (buy-and-hold) at N = 1."""
    return int(torch.as_tensor(positions, dtype=torch.float64).sub(1.0).abs().argmin())


class _BenchmarkSignal:
    """What member lanes report for learning (:func:`learning_step`): ``baseline``, the
    benchmark's log return over each lane's last bar (with ``reward_baseline="benchmark"``), and
    ``deviation``, each lane's distance from the benchmark's book (with a ``deviation_penalty``
    above 0); each is (K*B,) float32 or None."""

    def _init_signal(self, reward_baseline: str, deviation_penalty: float, error: type[Exception]) -> None:
        self.reward_baseline = _check_baseline(reward_baseline, error)
        self.deviation_penalty = float(deviation_penalty)
        self.baseline: torch.Tensor | None = None
        self.deviation: torch.Tensor | None = None

    def _keep_signal(self, base: list[torch.Tensor], dev: list[torch.Tensor]) -> None:
        """The step's per-group parts of ``baseline`` and ``deviation``, member-major."""
        if base:
            self.baseline = torch.cat(base).to(self.device, torch.float32)
        if dev:
            self.deviation = torch.cat(dev).to(self.device, torch.float32)


class MemberEnvs(_BenchmarkSignal):
    """The members' envs as one lane-concatenated tensor env (lanes member-major: member k
    owns lanes ``k*B .. (k+1)*B - 1``).

    Consecutive members whose envs can share one core (``env.fused.fuse_trading_envs``: plain
    ``TradingVectorEnv`` s over the same market object, e.g. the seeds of one fold) are
    stepped as ONE :class:`~reinforce_strategy_creator.env.fused.MemberBlockTradingVectorEnv`
    with a start RNG per member block; any other member env is stepped on its own. So order
    the members fold by fold (all seeds of a fold next to each other) to get the fusion.

    With ``reward_baseline="benchmark"`` (members must then be ``TradingVectorEnv`` s: their
    ``BatchedTradingCore`` knows the bars) it also reports ``baseline``, the buy-and-hold book's
    log return over each lane's bar (:func:`benchmark_log_return`), and with a
    ``deviation_penalty`` above 0 ``deviation``, each lane's distance from buy-and-hold
    (:func:`benchmark_deviation`); the trainers take both off the reward for learning
    (:func:`learning_step`).
    """

    def __init__(
        self,
        member_envs: Sequence[Any],
        seeds: Sequence[int],
        device: torch.device,
        reward_baseline: str = "none",
        deviation_penalty: float = 0.0,
    ):
        self._init_signal(reward_baseline, deviation_penalty, AgentConfigError)
        #: the action whose position is closest to fully long (buy-and-hold), or None when the
        #: members are not the project's TradingVectorEnv s
        self.benchmark_action: int | None = None
        core = getattr(member_envs[0], "core", None)
        if isinstance(core, BatchedTradingCore) and not core.config.continuous:
            self.benchmark_action = benchmark_action(core.config.positions)
        self.k = len(member_envs)
        self.seeds = list(seeds)
        first = TensorVecEnv(member_envs[0], device)
        self.lanes = first.num_envs  # B per member
        self.obs_dim, self.n_actions = first.obs_dim, first.n_actions
        for i, e in enumerate(member_envs):
            te = TensorVecEnv(e, device) if i else first
            if (te.num_envs, te.obs_dim, te.n_actions) != (self.lanes, self.obs_dim, self.n_actions):
                raise AgentConfigError(
                    f"population member {i} (seed {seeds[i]}) has {te.num_envs} lanes, obs_dim "
                    f"{te.obs_dim}, {te.n_actions} actions but member 0 has {self.lanes}, "
                    f"{self.obs_dim}, {self.n_actions}: members must share lanes and spaces "
                    "(same num_envs, window, features and positions)"
                )
        # (tensor env, seed to reset with or None when the env seeds its blocks, members)
        self.groups: list[tuple[TensorVecEnv, int | None, int]] = []
        i = 0
        while i < self.k:
            j = i + 1
            while j < self.k and fuse_trading_envs(member_envs[i : j + 1], seeds[i : j + 1], check_only=True):
                j += 1
            fused = fuse_trading_envs(member_envs[i:j], seeds[i:j]) if j - i > 1 else None
            if fused is not None:
                self.groups.append((TensorVecEnv(fused, device), None, j - i))
            else:
                self.groups.append((TensorVecEnv(member_envs[i], device), self.seeds[i], 1))
                j = i + 1
            i = j
        self.num_envs, self.device = self.k * self.lanes, device
        #: per-lane action shape: one index into the position table
        self.action_shape: tuple[int, ...] = ()
        if self.reward_baseline == "benchmark" or self.deviation_penalty > 0:
            for i, e in enumerate(member_envs):
                core = getattr(e, "core", None)
                if not isinstance(core, BatchedTradingCore) or not hasattr(e, "step_tensors"):
                    raise AgentConfigError(
                        f"reward_baseline='benchmark' and deviation_penalty need the project's "
                        f"TradingVectorEnv members (their core knows each lane's bar and position); "
                        f"member {i} (seed {seeds[i]}) is a {type(e).__name__}. Use TradingVectorEnv, "
                        "or reward_baseline: none and deviation_penalty: 0."
                    )

    @property
    def n_fused(self) -> int:
        """How many of the members step inside a fused env."""
        return sum(n for _, seed, n in self.groups if seed is None)

    def reset(self) -> torch.Tensor:
        return torch.cat([e.reset(seed=seed) for e, seed, _ in self.groups])

    def step(self, actions: torch.Tensor) -> Step:
        steps, base, dev, start = [], [], [], 0
        for e, _, n in self.groups:
            part = actions[start : start + n * self.lanes]
            t0 = e.envs.core.t if self.reward_baseline == "benchmark" else None
            if self.deviation_penalty > 0:
                dev.append(benchmark_deviation(e.envs.core, part))
            steps.append(e.step(part))
            if t0 is not None:
                base.append(benchmark_log_return(e.envs.core, t0, e.info["bar"]))
            start += n * self.lanes
        self._keep_signal(base, dev)
        if len(steps) == 1:
            return steps[0]
        return Step(*(torch.cat([getattr(s, f) for s in steps]) for f in _STEP_FIELDS))


_STEP_FIELDS = ("obs", "reward", "terminated", "truncated", "next_obs", "valid")


class PortfolioLanes(_BenchmarkSignal):
    """K members' ``PortfolioCore`` s (B lanes each, autoreset) as one tensor env; lanes are
    member-major (member k owns lanes ``k*B .. (k+1)*B - 1``): the member env of the N-asset
    book, as :class:`MemberEnvs` is of the discrete position table. ``step`` takes (K*B, N)
    float64 weights and returns a ``Step`` whose ``next_obs`` is the true successor (the core's
    ``final_obs`` where an episode ended). With ``reward_baseline="benchmark"`` it also
    reports ``baseline``, the equal-weight book's log return over the step's bar
    (:func:`benchmark_log_return`), and with a ``deviation_penalty`` above 0 ``deviation``, each
    lane's distance from equal weight (:func:`benchmark_deviation`); the trainers take both off
    the reward for learning (:func:`learning_step`)."""

    def __init__(
        self,
        cores: Sequence[PortfolioCore],
        seeds: Sequence[int],
        device: torch.device,
        reward_baseline: str = "none",
        deviation_penalty: float = 0.0,
    ):
        self._init_signal(reward_baseline, deviation_penalty, PortfolioInputError)
        if not cores:
            raise PortfolioInputError("a portfolio run needs at least one member core")
        c0 = cores[0]
        for i, c in enumerate(cores):
            if not c.autoreset:
                raise PortfolioInputError(f"member {i}: training needs a PortfolioCore with autoreset=True")
            if (c.num_envs, c.obs_dim, c.n_assets) != (c0.num_envs, c0.obs_dim, c0.n_assets):
                raise PortfolioInputError(
                    f"member {i} (seed {seeds[i]}) has {c.num_envs} lanes, obs_dim {c.obs_dim}, "
                    f"{c.n_assets} assets but member 0 has {c0.num_envs}, {c0.obs_dim}, {c0.n_assets}"
                )
        self.cores, self.seeds, self.device = list(cores), [int(s) for s in seeds], device
        self.k, self.lanes = len(cores), c0.num_envs
        self.num_envs = self.k * self.lanes
        self.n_assets, self.obs_dim = c0.n_assets, c0.obs_dim
        self.window, self.n_features = c0.config.window, c0.n_features
        #: per-lane action shape: a point of the (N+1)-simplex (``distributions``)
        self.action_shape: tuple[int, ...] = (self.n_assets + 1,)

    def reset(self) -> torch.Tensor:
        return torch.cat([c.reset(seed=s) for c, s in zip(self.cores, self.seeds, strict=True)]).to(
            self.device
        )

    def step(self, weights: torch.Tensor) -> Step:
        b = self.lanes
        parts, base, dev = [], [], []
        for i, core in enumerate(self.cores):
            t0 = core.t
            if self.deviation_penalty > 0:
                dev.append(benchmark_deviation(core, weights[i * b : (i + 1) * b]))
            obs, rew, term, trunc, info = core.step(weights[i * b : (i + 1) * b])
            nxt = info.get("final_obs", obs)
            parts.append((obs, rew, term, trunc, nxt))
            if self.reward_baseline == "benchmark":
                base.append(benchmark_log_return(core, t0, info["bar"]))
        obs, rew, term, trunc, nxt = (torch.cat(x) for x in zip(*parts, strict=True))
        self._keep_signal(base, dev)
        f = dict(device=self.device)
        return Step(
            obs=obs.to(**f),
            reward=rew.to(torch.float32).to(**f),
            terminated=term.to(**f),
            truncated=trunc.to(**f),
            next_obs=nxt.to(**f),
            valid=torch.ones_like(term, dtype=torch.bool).to(**f),
        )


def _check_baseline(reward_baseline: str, error: type[Exception]) -> str:
    if reward_baseline not in REWARD_BASELINES:
        raise error(f"reward_baseline={reward_baseline!r} unknown; choose one of {list(REWARD_BASELINES)}")
    return reward_baseline


def benchmark_log_return(
    core: BatchedTradingCore | PortfolioCore, t0: torch.Tensor, t1: torch.Tensor
) -> torch.Tensor:
    """(B,) float64 log return from bar ``t0`` to ``t1`` (per lane) of the benchmark book: equally
    weighted over the assets tradable at both bars (0 where none is); at N = 1 (a
    ``BatchedTradingCore``, every bar tradable) that is buy-and-hold, ``log(close[t1] /
    close[t0])``. Close to close whatever ``environment.fill_price``: the held book is marked at
    the closes and pays no costs between them, as the agent's reward is. The same for every
    action, so subtracting it from the reward changes no policy's ranking (a control variate for
    the common market move)."""
    if isinstance(core, BatchedTradingCore):
        return torch.log(core.close.index_select(0, t1) / core.close.index_select(0, t0))
    ok = core.tradable.index_select(0, t0) & core.tradable.index_select(0, t1)
    ratio = core.close.index_select(0, t1) / core.close.index_select(0, t0)
    n = ok.sum(1)
    mean = torch.where(ok, ratio, torch.zeros_like(ratio)).sum(1) / n.clamp_min(1)
    return torch.where(n > 0, torch.log(mean), torch.zeros_like(mean))


def benchmark_deviation(core: BatchedTradingCore | PortfolioCore, actions: torch.Tensor) -> torch.Tensor:
    """(B,) float64 L1 distance between the book each lane's action asks for at the core's
    current bar and the benchmark's book: at N = 1 (a ``BatchedTradingCore``) ``|position - 1|``,
    buy-and-hold being fully long; at N >= 2 ``sum_i |w_i - 1/n|`` over the n assets tradable at
    the bar (``actions`` are (B, N) weights; an untradable asset's benchmark weight is 0)."""
    if isinstance(core, BatchedTradingCore):
        target = torch.as_tensor(core.targets_from_actions(actions), dtype=torch.float64)
        return (target - 1.0).abs()
    ok = core.tradable.index_select(0, core.t)
    ew = ok.to(torch.float64) / ok.sum(1, keepdim=True).clamp_min(1)
    return (torch.as_tensor(actions, dtype=torch.float64).to(ew.device) - ew).abs().sum(1)


# --------------------------------------------------------------------------- bookkeeping
class PopulationTrackers:
    """The members' ``RunTracker`` s plus one progress display for the whole population.

    Episode returns are accumulated for all K*B lanes at once and handed to each active
    member's tracker; the display shows the summed steps and steps/s of all members and
    honours tracking.PROGRESS_LOG_INTERVAL_S when not on a terminal. With ``score_start`` each
    member's untrained policy is scored and offered as its first checkpoint (step 0) with
    ``start_handicap`` added, so a policy started at the benchmark (``start_at_benchmark``) keeps
    holding it unless a trained checkpoint beats it on the evaluation window by
    ``benchmark_margin``.
    """

    def __init__(
        self,
        members: Sequence[nn.Module],
        lanes: int,
        device: torch.device,
        *,
        total_steps: int,
        eval_fns: Sequence[Callable | None],
        eval_every: int,
        patience: int | None,
        progress: bool,
        log_every: int,
        desc: str,
        seeds: Sequence[int],
        stream: Any = None,
        score_start: bool = False,
        start_handicap: float = 0.0,
    ):
        self.k, self.lanes = len(members), lanes
        self.trackers = [
            RunTracker(
                m,
                lanes,
                device,
                total_steps=total_steps,
                eval_fn=f,
                eval_every=eval_every,
                patience=patience,
                progress=False,
                log_every=log_every,
                desc=f"{desc} seed {s}",
            )
            for m, f, s in zip(members, eval_fns, seeds, strict=True)
        ]
        self.active = torch.ones(self.k, dtype=torch.bool)
        self.results: list[Any] = [None] * self.k
        self.ep_ret = torch.zeros(self.k, lanes, dtype=torch.float64, device=device)
        self.t0 = time.perf_counter()
        self.display = None
        if progress:
            self.display = _open_progress(stream, total_steps * self.k, f"{desc} x{self.k}", self.t0)
        if score_start:  # the untrained policy is the first checkpoint (a history row at step 0)
            for tr in self.trackers:
                if tr.eval_fn is not None:
                    tr.end_update(0, handicap=start_handicap)

    @property
    def steps(self) -> int:
        """Env transitions per member so far (all active members step together)."""
        return max(self.trackers[k].steps for k in range(self.k))

    def on_step(self, step: Step) -> None:
        k, b = self.k, self.lanes
        valid = step.valid.reshape(k, b)
        r = torch.where(valid, step.reward.to(torch.float64).reshape(k, b), torch.zeros_like(self.ep_ret))
        self.ep_ret += r
        done = step.done.reshape(k, b) & valid
        if bool(done.any()):
            sums = (self.ep_ret * done).sum(1).tolist()
            counts = done.sum(1).tolist()
            for i in range(k):
                if counts[i] and bool(self.active[i]):
                    self.trackers[i].finished_sum += sums[i]
                    self.trackers[i].finished_n += int(counts[i])
            self.ep_ret[done] = 0.0
        for i in range(k):
            if bool(self.active[i]):
                self.trackers[i].steps += b

    def end_update(self, update: int, last: bool, metrics: Sequence[dict[str, float]]) -> list[int]:
        """Metrics, evaluation and early stopping per active member; returns the members that
        stopped at this update (the caller releases and finishes them)."""
        stopped = []
        for i in range(self.k):
            if not bool(self.active[i]):
                continue
            tr = self.trackers[i]
            tr.add_metrics(**metrics[i])
            tr.end_update(update, last=last)
            if tr.stop or last:
                stopped.append(i)
        self._show()
        return stopped

    def finish(self, i: int, population: Population) -> None:
        population.release(i)
        self.active[i] = False
        self.results[i] = self.trackers[i].finish()

    def _show(self) -> None:
        if self.display is None:
            return
        total = sum(t.steps for t in self.trackers)
        sps = total / max(time.perf_counter() - self.t0, 1e-9)
        evals = [t.last_eval for t in self.trackers]
        best = max((e for e in evals if math.isfinite(e)), default=math.nan)
        postfix = {
            "sps": f"{sps:,.0f}",
            "active": f"{int(self.active.sum())}/{self.k}",
            "best": f"{best:.4g}",
        }
        self.display.show(total, postfix)

    def close(self) -> list[Any]:
        if self.display is not None:
            self.display.close(sum(t.steps for t in self.trackers))
            self.display = None
        return self.results


def member_step(step: Step, i: int, lanes: int) -> Step:
    """Member i's lanes of a population ``Step``."""
    sl = slice(i * lanes, (i + 1) * lanes)
    return Step(*(getattr(step, f)[sl] for f in _STEP_FIELDS))
