"""Portfolio policies whose networks are shared across assets (EIIE-style), docs/agents.md.

Every module applies ONE per-asset encoder to each asset's W x F raw feature window (scaled
inside the module by its own feature scaler, ``feature_mean`` / ``feature_std`` (F,) buffers fit
on the training rows) plus the asset's current weight. The same layers score every asset, so the
parameter count does not depend on the number of assets N (Jiang, Xu & Liang 2017, "A Deep
Reinforcement Learning Framework for the Financial Portfolio Management Problem": the
"ensemble of identical independent evaluators"). Observations are parsed only through
:class:`~.portfolio_observation.ObsLayout`.

* :class:`PortfolioActorCritic` (PPO, A2C): a Dirichlet policy over ``[asset_0 .. asset_{N-1},
  cash]`` restricted to the assets tradable at the decision bar (the others get weight exactly 0
  and are left out of the log-probability and the entropy). Asset i's concentration comes from
  its own embedding; cash's from a learned head on the pooled (mean over tradable assets)
  embedding and the cash weight. The critic is a second shared encoder, pooled, plus the cash
  weight. Deterministic action = the Dirichlet mean. Long-only: weights >= 0, sum <= 1.
* :class:`PortfolioQ` (DQN): Q-values over the finite allocation set :data:`ALLOCATIONS`
  (all-in asset i for each i, all cash, equal weight over the tradable assets); the all-in
  Q-values come from one shared head per asset embedding, so the network does not grow with
  N (the action count N + 2 does). Actions on untradable assets are masked.

Both have a JSON-able ``spec`` (:func:`build_portfolio_policy` rebuilds the module from it,
``agents.policy.build_policy`` dispatches here) and ``decide(obs, bar) -> (L, N) float64``
deterministic target weights, the decider ``evaluation.replay.replay_weights`` calls.

The forward passes are written once against a ``lin(name, layer, x)`` callback so that the same
code runs one module (``layer(x)``) or K stacked members (:class:`StackedPortfolio`, batched
matmuls over a leading member axis, ``agents.population.Population``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from ..env.portfolio import PortfolioInputError
from .errors import PolicySpecError
from .networks import ACTIVATIONS, layer_init, mlp
from .population import Population
from .portfolio_observation import ObsLayout

__all__ = [
    "ALLOCATIONS",
    "DISTRIBUTIONS",
    "LogisticNormal",
    "MaskedDirichlet",
    "PORTFOLIO_KINDS",
    "PortfolioActorCritic",
    "PortfolioQ",
    "StackedPortfolio",
    "allocation_weights",
    "build_portfolio_policy",
    "dirichlet_mean",
    "masked_dirichlet_entropy",
    "masked_dirichlet_log_prob",
    "masked_normal_entropy",
    "masked_normal_log_prob",
    "sample_masked_dirichlet",
    "sample_masked_normal",
    "sample_weights",
    "softmax_weights",
]

PORTFOLIO_KINDS = ("portfolio_actor_critic", "portfolio_q")
#: the action distributions of :class:`PortfolioActorCritic` (the first is the default)
DISTRIBUTIONS = ("logistic_normal", "dirichlet")
#: the DQN allocation set, in action order for N assets: actions 0..N-1 = all-in asset i,
#: N = all cash, N+1 = equal weight over the assets tradable at the decision bar
ALLOCATIONS = ("all_in_asset_i (one per asset, ticker order)", "all_cash", "equal_weight_tradable")
SCALED_CLIP = 10.0  # scaled features are clipped to +-10 standard deviations
TINY = 1e-30  # floor of a sampled Dirichlet component (float32 log stays finite)

Lin = Callable[[str, nn.Linear, torch.Tensor], torch.Tensor]


def _own(name: str, layer: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    return layer(x)


def fast_tanh(x: torch.Tensor) -> torch.Tensor:
    """``tanh(x) = 2 sigmoid(2x) - 1``: torch's CPU tanh kernel is about 10x slower than its sigmoid
    (it was the largest single cost of portfolio PPO training, benchmarks/bench_portfolio_agents.py);
    equal to ``torch.tanh`` to float32 rounding."""
    return 2.0 * torch.sigmoid(2.0 * x) - 1.0


def _seq(seq: nn.Sequential, prefix: str, x: torch.Tensor, lin: Lin) -> torch.Tensor:
    for i, layer in enumerate(seq):
        if isinstance(layer, nn.Linear):
            x = lin(f"{prefix}.{i}", layer, x)
        elif isinstance(layer, nn.Tanh):
            x = fast_tanh(x)
        else:
            x = layer(x)
    return x


# --------------------------------------------------------------------------- masked Dirichlet
def masked_dirichlet_log_prob(alpha: torch.Tensor, mask: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """log Dirichlet(x | alpha) over the components where ``mask`` is True (last axis)."""
    m = mask.to(alpha.dtype)
    a0 = (alpha * m).sum(-1)
    log_norm = torch.lgamma(a0) - (torch.lgamma(alpha) * m).sum(-1)
    return log_norm + ((alpha - 1.0) * torch.log(x.clamp_min(TINY)) * m).sum(-1)


def masked_dirichlet_entropy(alpha: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Differential entropy of the Dirichlet over the masked-in components (last axis)."""
    m = mask.to(alpha.dtype)
    k = m.sum(-1)
    a0 = (alpha * m).sum(-1)
    log_b = (torch.lgamma(alpha) * m).sum(-1) - torch.lgamma(a0)
    return log_b + (a0 - k) * torch.digamma(a0) - ((alpha - 1.0) * torch.digamma(alpha) * m).sum(-1)


def dirichlet_mean(alpha: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The mean ``alpha_i / sum(alpha)`` over the masked-in components, exactly 0 elsewhere."""
    a = torch.where(mask, alpha, torch.zeros_like(alpha))
    return a / a.sum(-1, keepdim=True)


def sample_masked_dirichlet(
    alpha: torch.Tensor, mask: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """One Dirichlet sample per row over the masked-in components (0 elsewhere), float32.

    Gamma draws come from torch's CPU sampler driven by ``generator``'s state (swapped in and
    out of the global CPU RNG inside ``fork_rng``), so a member's samples depend on its own
    generator only. Drawn in float64, then floored at ``TINY`` so the float32 log stays finite.
    """
    a = alpha.detach().to("cpu", torch.float64)
    with torch.random.fork_rng(devices=[]):
        torch.set_rng_state(generator.get_state())
        g = torch._standard_gamma(a)
        generator.set_state(torch.get_rng_state())
    g = torch.where(mask.cpu(), g, torch.zeros_like(g))
    x = g / g.sum(-1, keepdim=True).clamp_min(1e-300)
    x = torch.where(mask.cpu(), x.clamp_min(TINY), torch.zeros_like(x))
    return x.to(alpha.device, torch.float32)


def sample_weights(x: torch.Tensor, n_assets: int) -> torch.Tensor:
    """(B, N) float64 asset weights of Dirichlet points ``x`` (B, N+1): renormalised in float64
    so the assets sum to at most 1 (cash is the rest); untradable assets stay exactly 0."""
    x64 = x.to(torch.float64)
    x64 = x64 / x64.sum(-1, keepdim=True)
    return x64[..., :n_assets].contiguous()


# --------------------------------------------------------------------------- masked logistic-normal
LOG_2PI = math.log(2.0 * math.pi)
LOG_STD_BOUNDS = (-5.0, 2.0)  # the learned log-std of the logistic-normal policy is clamped here


def _split_normal(params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean (..., N+1), log-std (..., 1)) of logistic-normal parameters (..., N+2)."""
    return params[..., :-1], params[..., -1:].clamp(*LOG_STD_BOUNDS)


def masked_normal_log_prob(params: torch.Tensor, mask: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """log N(u | mean, std^2 I) over the components where ``mask`` is True (last axis)."""
    mu, log_std = _split_normal(params)
    z = (u - mu) * torch.exp(-log_std)
    m = mask.to(mu.dtype)
    return ((-0.5 * z * z - log_std - 0.5 * LOG_2PI) * m).sum(-1)


def masked_normal_entropy(params: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Differential entropy of the Gaussian over the masked-in components (last axis)."""
    _, log_std = _split_normal(params)
    k = mask.to(log_std.dtype).sum(-1)
    return k * (0.5 * (LOG_2PI + 1.0) + log_std.squeeze(-1))


def sample_masked_normal(
    params: torch.Tensor, mask: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """One pre-softmax Gaussian point per row (float32), exactly 0 on masked-out components;
    the noise comes from ``generator`` (CPU) only."""
    mu, log_std = _split_normal(params.detach())
    eps = torch.randn(mu.shape, generator=generator, dtype=torch.float32).to(mu.device)
    u = mu + torch.exp(log_std) * eps
    return torch.where(mask, u, torch.zeros_like(u)).float()


def softmax_weights(u: torch.Tensor, mask: torch.Tensor, n_assets: int) -> torch.Tensor:
    """(B, N) float64 asset weights ``softmax(u)`` over the masked-in components ``[assets, cash]``
    (computed in float64; untradable assets exactly 0, the assets sum to at most 1)."""
    x = torch.softmax(u.to(torch.float64).masked_fill(~mask, -math.inf), -1)
    return torch.where(mask, x, torch.zeros_like(x))[..., :n_assets].contiguous()


# --------------------------------------------------------------------------- the distributions
class MaskedDirichlet:
    """A Dirichlet over the ``[assets, cash]`` components in play (``agents.distributions``):
    ``params`` are the concentrations (..., N+1), the stored action is the Dirichlet point and
    the env steps with its asset weights."""

    def __init__(self, n_assets: int):
        self.n_assets = int(n_assets)

    def sample(self, params, mask, generator):
        return sample_masked_dirichlet(params, mask, generator)

    def log_prob(self, params, mask, x):
        return masked_dirichlet_log_prob(params, mask, x)

    def log_prob_entropy(self, params, mask, x):
        return self.log_prob(params, mask, x), masked_dirichlet_entropy(params, mask)

    def env_action(self, x, mask):
        return sample_weights(x, self.n_assets)


class LogisticNormal:
    """A Gaussian point ``u`` over the ``[assets, cash]`` components in play, weights
    ``softmax(u)`` (``agents.distributions``): ``params`` are ``[scores (N+1), log std]``, the
    stored action is ``u`` and the env steps with its softmax weights."""

    def __init__(self, n_assets: int):
        self.n_assets = int(n_assets)

    def sample(self, params, mask, generator):
        return sample_masked_normal(params, mask, generator)

    def log_prob(self, params, mask, x):
        return masked_normal_log_prob(params, mask, x)

    def log_prob_entropy(self, params, mask, x):
        return self.log_prob(params, mask, x), masked_normal_entropy(params, mask)

    def env_action(self, x, mask):
        return softmax_weights(x, mask, self.n_assets)


def _masked_mean(h: torch.Tensor, tradable: torch.Tensor) -> torch.Tensor:
    """Mean of (..., N, d) embeddings over the tradable assets (zeros when none is)."""
    m = tradable.to(h.dtype).unsqueeze(-1)
    return (h * m).sum(-2) / m.sum(-2).clamp_min(1.0)


# --------------------------------------------------------------------------- shared base
class _SharedAssetNet(nn.Module):
    """Feature scaler buffers, observation parsing and the per-asset input of every module."""

    kind = ""

    def __init__(self, n_assets: int, window: int, n_features: int, hidden_sizes, activation: str):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise PortfolioInputError(
                f"activation {activation!r} unknown; choose one of {sorted(ACTIVATIONS)}"
            )
        self.layout = ObsLayout(int(n_assets), int(window), int(n_features))
        self.hidden = tuple(int(h) for h in hidden_sizes)
        if not self.hidden or min(self.hidden) < 1:
            raise PortfolioInputError(f"hidden_sizes must be positive ints, got {hidden_sizes!r}")
        self.activation = activation
        self.register_buffer("feature_mean", torch.zeros(int(n_features)))
        self.register_buffer("feature_std", torch.ones(int(n_features)))

    @property
    def n_assets(self) -> int:
        return self.layout.n_assets

    @property
    def in_dim(self) -> int:
        return self.layout.window * self.layout.n_features + 1

    def set_scaler(self, mean, std) -> None:
        """Load a feature scaler (mean, std (F,)), e.g. :func:`~.features.fit_feature_scaler` of the
        train rows."""
        mean = torch.as_tensor(np.asarray(mean, dtype=np.float32)).reshape(-1)
        std = torch.as_tensor(np.asarray(std, dtype=np.float32)).reshape(-1)
        F = self.layout.n_features
        if mean.shape != (F,) or std.shape != (F,) or not bool((std > 0).all()):
            raise PortfolioInputError(f"feature scaler must be mean and std of shape ({F},), std > 0")
        self.feature_mean.copy_(mean)
        self.feature_std.copy_(std)

    def asset_inputs(self, obs: torch.Tensor):
        """(per-asset input (..., N, W*F + 1), tradable (..., N), cash weight (...,))."""
        p = self.layout.split(obs.float())
        z = ((p.windows - self.feature_mean) / self.feature_std).clamp(-SCALED_CLIP, SCALED_CLIP)
        z = z.flatten(-2)
        return torch.cat([z, p.weights.unsqueeze(-1)], -1), p.tradable, p.cash

    def _base_spec(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "n_assets": self.layout.n_assets,
            "window": self.layout.window,
            "n_features": self.layout.n_features,
            "obs_dim": self.layout.obs_dim,
        }

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


# --------------------------------------------------------------------------- actor-critic
class PortfolioActorCritic(_SharedAssetNet):
    """Actor (a distribution over ``[assets, cash]`` weights) + value critic shared across assets.

    Both distributions score the components in play with the shared per-asset head (cash: a head
    on the pooled embedding and the cash weight); ``log c`` / ``log std`` is one learned scalar
    (a 1x1 layer on a constant 1, so a stacked population routes it like any other layer).

    * ``distribution="logistic_normal"`` (default): the action is a Gaussian point
      ``u ~ N(scores, std^2 I)`` over the components in play (stored as the action, its Gaussian
      log-probability is the PPO log-prob), the weights are ``softmax(u)``; deterministic action =
      ``softmax(scores / decision_temperature)`` (1.0: the softmax of the Gaussian's mean; below
      1 sharper, towards all-in on the best score). ``log std`` starts at ``log_std`` (0.0) and
      is clamped to [-5, 2]. The
      scores are unbounded, so the decision can concentrate on one asset as far as the scores
      separate, while the exploration noise is learned apart.
    * ``distribution="dirichlet"``: mean ``p = softmax(scores)`` and concentration
      ``alpha = c * K * p`` (K components in play, ``log c`` clamped to [-2, 6], starting at
      ``log_concentration``, 1.0), ``alpha >= 1e-3``; deterministic action = the mean.
    """

    kind = "portfolio_actor_critic"

    def __init__(
        self,
        n_assets: int,
        window: int,
        n_features: int,
        hidden_sizes=(64, 64),
        activation: str = "tanh",
        algorithm: str = "ppo",
        log_concentration: float = 1.0,
        distribution: str = DISTRIBUTIONS[0],
        log_std: float = 0.0,
        decision_temperature: float = 1.0,
    ):
        super().__init__(n_assets, window, n_features, hidden_sizes, activation)
        if distribution not in DISTRIBUTIONS:
            raise PortfolioInputError(
                f"distribution={distribution!r} unknown; choose one of {list(DISTRIBUTIONS)}"
            )
        if not (math.isfinite(decision_temperature) and decision_temperature > 0):
            raise PortfolioInputError(
                f"decision_temperature must be a finite number > 0, got {decision_temperature!r}"
            )
        self.distribution = distribution
        dist_cls = MaskedDirichlet if distribution == "dirichlet" else LogisticNormal
        self.action_dist = dist_cls(self.layout.n_assets)
        self.decision_temperature = float(decision_temperature)
        d = self.hidden[-1]
        self.encoder = mlp(self.in_dim, self.hidden, None, activation)
        self.score = layer_init(nn.Linear(d, 1), gain=0.01)
        self.cash_score = layer_init(nn.Linear(d + 1, 1), gain=0.01)
        # the learned scalar (log c or log std) as a 1x1 layer on a constant 1 (w = 0, b = value)
        self.concentration = nn.Linear(1, 1)
        nn.init.zeros_(self.concentration.weight)
        start = log_concentration if distribution == "dirichlet" else log_std
        nn.init.constant_(self.concentration.bias, float(start))
        self.critic_encoder = mlp(self.in_dim, self.hidden, None, activation)
        self.critic_head = mlp(d + 1, (d,), 1, activation, out_gain=1.0)
        network: dict[str, Any] = {
            "hidden_sizes": list(self.hidden),
            "activation": activation,
            "distribution": distribution,
        }
        if distribution == "dirichlet":
            network["log_concentration"] = float(log_concentration)
        else:
            network["log_std"] = float(log_std)
            network["decision_temperature"] = self.decision_temperature
        self.spec: dict[str, Any] = {
            "algorithm": algorithm,
            **self._base_spec(),
            "n_actions": self.layout.n_assets + 1,
            "network": network,
        }

    # -- the forward, against ``lin``
    def dist_params(
        self, obs: torch.Tensor, lin: Lin = _own, inputs=None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(distribution parameters, mask (..., N+1) of the components [assets, cash] in play):
        Dirichlet concentrations (..., N+1), or logistic-normal ``[scores (N+1), log std]``
        (..., N+2) with masked-out scores 0. ``inputs``: ``asset_inputs(obs)`` if already made."""
        x, tradable, cash = self.asset_inputs(obs) if inputs is None else inputs
        h = _seq(self.encoder, "encoder", x, lin)  # (..., N, d)
        s_asset = lin("score", self.score, h).squeeze(-1)  # (..., N)
        pooled = _masked_mean(h, tradable)
        s_cash = lin("cash_score", self.cash_score, torch.cat([pooled, cash.unsqueeze(-1)], -1))
        mask = torch.cat([tradable, torch.ones_like(tradable[..., :1])], -1)
        s = torch.cat([s_asset, s_cash], -1)
        scalar = lin("concentration", self.concentration, torch.ones_like(cash.unsqueeze(-1)))
        if self.distribution == "logistic_normal":
            s = torch.where(mask, s, torch.zeros_like(s))
            return torch.cat([s, scalar.expand(*s.shape[:-1], 1)], -1), mask
        p = torch.softmax(s.masked_fill(~mask, -math.inf), -1)
        k = mask.sum(-1, keepdim=True).to(p.dtype)
        alpha = (scalar.clamp(-2.0, 6.0).exp() * k * p).clamp_min(1e-3)
        return alpha, mask

    def alpha(self, obs: torch.Tensor, lin: Lin = _own) -> tuple[torch.Tensor, torch.Tensor]:
        """The Dirichlet concentrations and mask (``distribution="dirichlet"`` only)."""
        if self.distribution != "dirichlet":
            raise ValueError(f"alpha() is for the Dirichlet policy; this one is {self.distribution}")
        return self.dist_params(obs, lin)

    def value(self, obs: torch.Tensor, lin: Lin = _own, inputs=None) -> torch.Tensor:
        x, tradable, cash = self.asset_inputs(obs) if inputs is None else inputs
        h = _seq(self.critic_encoder, "critic_encoder", x, lin)
        z = torch.cat([_masked_mean(h, tradable), cash.unsqueeze(-1)], -1)
        return _seq(self.critic_head, "critic_head", z, lin).squeeze(-1)

    def forward(self, obs: torch.Tensor, lin: Lin = _own):
        inputs = self.asset_inputs(obs)
        params, mask = self.dist_params(obs, lin, inputs)
        return params, mask, self.value(obs, lin, inputs)

    # -- acting
    @torch.no_grad()
    def mean_weights(self, obs: torch.Tensor) -> torch.Tensor:
        """(L, N) float64 deterministic weights: the Dirichlet mean or ``softmax(scores / T)``
        (``T`` = ``decision_temperature``)."""
        dev = self.feature_mean.device
        params, mask = self.dist_params(obs.to(dev))
        if self.distribution == "dirichlet":
            return dirichlet_mean(params.double(), mask)[..., : self.n_assets].cpu()
        scores = params[..., :-1] / self.decision_temperature
        return softmax_weights(scores, mask, self.n_assets).cpu()

    def decide(self, obs: torch.Tensor, bar: int | None = None) -> torch.Tensor:
        """Deterministic target weights (L, N) float64 (a ``replay_weights`` decider)."""
        return self.mean_weights(obs)

    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool = True, generator: torch.Generator | None = None):
        """(L, N) float64 weights: deterministic, or a sample (``generator`` required)."""
        if deterministic:
            return self.mean_weights(obs)
        if generator is None:
            raise ValueError("a stochastic action needs a torch.Generator")
        params, mask = self.dist_params(obs.to(self.feature_mean.device))
        return self.action_dist.env_action(self.action_dist.sample(params, mask, generator), mask).cpu()


# --------------------------------------------------------------------------- Q-network
def allocation_weights(actions: torch.Tensor, tradable: torch.Tensor) -> torch.Tensor:
    """(B, N) float64 weights of allocation-set actions (:data:`ALLOCATIONS`) given the (B, N)
    tradable mask: all-in asset i, all cash, or equal weight over the tradable assets."""
    B, N = tradable.shape
    a = actions.reshape(B).to(tradable.device)
    trad = tradable.to(torch.float64)
    eq = trad / trad.sum(-1, keepdim=True).clamp_min(1.0)
    onehot = torch.nn.functional.one_hot(a.clamp(max=N - 1), N).to(torch.float64)
    w = torch.where((a < N)[:, None], onehot, torch.where((a == N + 1)[:, None], eq, 0.0))
    return torch.where(tradable, w, torch.zeros_like(w))


class PortfolioQ(_SharedAssetNet):
    """Q-network over :data:`ALLOCATIONS` shared across assets (module docstring).

    ``Q(all-in i) = head([e_i, pooled])``, ``Q(cash), Q(equal) = head([pooled, cash weight])``
    with ``e_i`` the shared per-asset embedding and ``pooled`` its mean over tradable assets;
    dueling: ``Q = V(pooled, cash) + A - mean of A over the valid actions``. Invalid actions
    (untradable all-in; equal weight when nothing is tradable) are -inf.
    """

    kind = "portfolio_q"

    def __init__(
        self,
        n_assets: int,
        window: int,
        n_features: int,
        hidden_sizes=(128, 128),
        activation: str = "relu",
        dueling: bool = True,
        algorithm: str = "dqn",
    ):
        super().__init__(n_assets, window, n_features, hidden_sizes, activation)
        d = self.hidden[-1]
        self.dueling = bool(dueling)
        self.encoder = mlp(self.in_dim, self.hidden, None, activation)
        self.asset_head = layer_init(nn.Linear(2 * d, 1), gain=1.0)
        self.book_head = layer_init(nn.Linear(d + 1, 2), gain=1.0)  # all cash, equal weight
        if self.dueling:
            self.value_head = layer_init(nn.Linear(d + 1, 1), gain=1.0)
        self.spec = {
            "algorithm": algorithm,
            **self._base_spec(),
            "n_actions": self.layout.n_assets + 2,
            "allocations": list(ALLOCATIONS),
            "network": {"hidden_sizes": list(self.hidden), "activation": activation, "dueling": self.dueling},
        }

    def valid_actions(self, tradable: torch.Tensor) -> torch.Tensor:
        """(..., N+2) bool: all-in on tradable assets, cash always, equal weight if any is tradable."""
        return torch.cat([tradable, torch.ones_like(tradable[..., :1]), tradable.any(-1, keepdim=True)], -1)

    def q_values(self, obs: torch.Tensor, lin: Lin = _own) -> tuple[torch.Tensor, torch.Tensor]:
        """(Q (..., N+2) with invalid actions -inf, valid mask (..., N+2))."""
        x, tradable, cash = self.asset_inputs(obs)
        h = _seq(self.encoder, "encoder", x, lin)  # (..., N, d)
        pooled = _masked_mean(h, tradable)
        ctx = torch.cat([pooled, cash.unsqueeze(-1)], -1)
        a_asset = lin("asset_head", self.asset_head, torch.cat([h, pooled.unsqueeze(-2).expand_as(h)], -1))
        a = torch.cat([a_asset.squeeze(-1), lin("book_head", self.book_head, ctx)], -1)
        valid = self.valid_actions(tradable)
        if self.dueling:
            vf = valid.to(a.dtype)
            a = a - (a * vf).sum(-1, keepdim=True) / vf.sum(-1, keepdim=True)
            a = lin("value_head", self.value_head, ctx) + a
        return a.masked_fill(~valid, -math.inf), valid

    def forward(self, obs: torch.Tensor, lin: Lin = _own) -> torch.Tensor:
        return self.q_values(obs, lin)[0]

    @torch.no_grad()
    def greedy(self, obs: torch.Tensor) -> torch.Tensor:
        return self.forward(obs.to(self.feature_mean.device)).argmax(-1)

    @torch.no_grad()
    def decide(self, obs: torch.Tensor, bar: int | None = None) -> torch.Tensor:
        """Weights (L, N) float64 of the greedy allocation (a ``replay_weights`` decider)."""
        tradable = self.layout.split(obs).tradable
        return allocation_weights(self.greedy(obs).cpu(), tradable.cpu())

    act = decide


# --------------------------------------------------------------------------- populations
class StackedPortfolio(Population):
    """K members of one portfolio architecture with stacked parameters (``agents.population``):
    the members' forward passes on ``(K, rows, obs_dim)`` run as one batched matmul per layer.
    The feature scaler (a buffer, the same for every member: one training panel) is member 0's."""

    def lin(self, name: str, layer: nn.Linear, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x3 = x.reshape(self.k, -1, shape[-1])
        w = self.stacked[f"{name}.weight"]
        if w.shape[1] == 1:
            # a one-output layer as a row-wise product-sum: batched matmul takes a gemv path
            # whose rounding differs between one member and several; this does not (tested)
            y = (x3 * w).sum(-1, keepdim=True) + self.stacked[f"{name}.bias"].unsqueeze(1)
        else:
            y = self.linear(name, x3)
        return y.reshape(*shape[:-1], y.shape[-1])

    @property
    def action_dist(self):
        """The members' action distribution (``agents.distributions``): the template's."""
        return self.template.action_dist

    def dist_params(self, obs):
        return self.template.dist_params(obs, self.lin)

    def alpha(self, obs):
        return self.template.alpha(obs, self.lin)

    def value(self, obs):
        return self.template.value(obs, self.lin)

    def forward(self, obs):
        return self.template.forward(obs, self.lin)


# --------------------------------------------------------------------------- specs
def build_portfolio_policy(spec: Mapping[str, Any]) -> nn.Module:
    """An untrained module of the architecture ``spec`` describes (then ``load_state_dict``,
    which also restores the feature scaler)."""
    try:
        kind = str(spec["kind"])
        dims = int(spec["n_assets"]), int(spec["window"]), int(spec["n_features"])
        net = dict(spec["network"])
        hidden = tuple(int(h) for h in net["hidden_sizes"])
        activation = str(net["activation"])
        algorithm = str(spec.get("algorithm", kind))
    except (KeyError, TypeError, ValueError) as exc:
        raise PolicySpecError(
            f"portfolio policy spec is missing or has a bad field ({exc!r}); it needs kind, n_assets, "
            "window, n_features, network.hidden_sizes and network.activation -- was it written by this "
            "package?"
        ) from exc
    if activation not in ACTIVATIONS:
        raise PolicySpecError(
            f"policy spec network.activation={activation!r} unknown; expected one of {sorted(ACTIVATIONS)}"
        )
    if kind == "portfolio_actor_critic":
        return PortfolioActorCritic(
            *dims,
            hidden,
            activation,
            algorithm=algorithm,
            log_concentration=float(net.get("log_concentration", 1.0)),
            # specs written before the logistic-normal policy existed are Dirichlet policies
            distribution=str(net.get("distribution", "dirichlet")),
            log_std=float(net.get("log_std", 0.0)),
            decision_temperature=float(net.get("decision_temperature", 1.0)),
        )
    if kind == "portfolio_q":
        return PortfolioQ(
            *dims, hidden, activation, dueling=bool(net.get("dueling", True)), algorithm=algorithm
        )
    raise PolicySpecError(f"policy spec kind={kind!r} unknown; expected one of {list(PORTFOLIO_KINDS)}")


def n_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
