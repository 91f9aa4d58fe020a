"""Portfolio agents (docs/agents.md): the masked Dirichlet and logistic-normal, the
shared-across-assets networks (bounds, masking, permutation equivariance, size independent of N), artifacts,
reproducibility, population member independence, validation / early stopping and bad input."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from reinforce_strategy_creator.agents.policy import build_policy
from reinforce_strategy_creator.agents.population import benchmark_log_return
from reinforce_strategy_creator.agents.portfolio_observation import ObsLayout
from reinforce_strategy_creator.agents.portfolio_policies import (
    DISTRIBUTIONS,
    PortfolioActorCritic,
    PortfolioQ,
    allocation_weights,
    build_portfolio_policy,
    dirichlet_mean,
    fast_tanh,
    masked_dirichlet_entropy,
    masked_dirichlet_log_prob,
    masked_normal_entropy,
    masked_normal_log_prob,
    sample_masked_dirichlet,
    sample_masked_normal,
    softmax_weights,
)
from reinforce_strategy_creator.artifacts import load_policy_bundle, save_policy_bundle
from reinforce_strategy_creator.env.portfolio import PortfolioCore, PortfolioInputError
from reinforce_strategy_creator.evaluation.replay import replay_weights
from reinforce_strategy_creator.panel import PortfolioPanel, fit_feature_scaler
from reinforce_strategy_creator.training import (
    portfolio_bundle,
    portfolio_validation_sharpe,
    train_portfolio_members,
)
from tests.support.env import universe_env

torch.set_num_threads(1)

N, W, F = 4, 6, 2
ENV = universe_env(window=W, episode_length=48)
TINY_PPO = dict(total_steps=1024, num_steps=16, num_minibatches=2, update_epochs=2)
TINY_A2C = dict(total_steps=1024, num_steps=8)
TINY_DQN = dict(total_steps=1024, learning_starts=128, batch_size=32, buffer_size=512, target_update_every=8)


def make_panel(T: int = 260, n: int = N, seed: int = 0, late: int | None = 2) -> PortfolioPanel:
    """Random-walk closes (ticker ``late`` listed from row 40) and causal features (1- and
    5-bar log returns)."""
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0.0002, 0.01, (T, n)), 0))
    if late is not None:
        close[:40, late] = np.nan
    lc = np.log(close)
    f = np.full((T, n, 2), np.nan)
    f[1:, :, 0] = lc[1:] - lc[:-1]
    f[5:, :, 1] = lc[5:] - lc[:-5]
    dates = pd.bdate_range("2001-01-01", periods=T)
    return PortfolioPanel(close, f.astype(np.float32), [f"T{i}" for i in range(n)], dates, ("r1", "r5"))


def random_obs(n: int, batch: int, seed: int, tradable: np.ndarray | None = None) -> torch.Tensor:
    """Observations with a valid layout: features, weights (sum <= 1), cash, tradable flags."""
    g = torch.Generator().manual_seed(seed)
    lay = ObsLayout(n, W, F)
    feats = torch.randn(batch, n * W * F, generator=g) * 0.02
    w = torch.rand(batch, n + 1, generator=g)
    w = w / w.sum(1, keepdim=True)
    tr = torch.ones(batch, n) if tradable is None else torch.as_tensor(tradable, dtype=torch.float32)
    w[:, :n] = w[:, :n] * tr
    cash = 1 - w[:, :n].sum(1, keepdim=True)
    obs = torch.cat([feats, w[:, :n], cash, tr], 1)
    assert obs.shape[1] == lay.obs_dim
    return obs


def permute_obs(obs: torch.Tensor, n: int, perm: list[int]) -> torch.Tensor:
    p = ObsLayout(n, W, F).split(obs)
    return torch.cat(
        [
            p.windows[:, perm].reshape(obs.shape[0], -1),
            p.weights[:, perm],
            p.cash[:, None],
            p.tradable[:, perm].float(),
        ],
        1,
    )


# --------------------------------------------------------------------------- masked Dirichlet
@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 7))
def test_masked_dirichlet_matches_torch_on_the_tradable_subset(seed, n):
    g = torch.Generator().manual_seed(seed)
    alpha = torch.rand(3, n + 1, generator=g, dtype=torch.float64) * 20 + 0.05
    mask = torch.rand(3, n + 1, generator=g) < 0.6
    mask[:, -1] = True  # cash is always in play
    mask[0, :-1] = True
    x = sample_masked_dirichlet(alpha, mask, g).double()
    assert torch.all(x[~mask] == 0) and torch.allclose(x.sum(-1), torch.ones(3, dtype=torch.float64))
    lp = masked_dirichlet_log_prob(alpha, mask, x)
    ent = masked_dirichlet_entropy(alpha, mask)
    for i in range(3):
        m = mask[i]
        if m.sum() < 2:  # only cash: a point mass, log-prob and entropy 0
            assert lp[i] == 0 and ent[i] == 0
            continue
        d = torch.distributions.Dirichlet(alpha[i][m])
        assert torch.isclose(lp[i], d.log_prob(x[i][m] / x[i][m].sum()), rtol=1e-6, atol=1e-6)
        assert torch.isclose(ent[i], d.entropy(), rtol=1e-9, atol=1e-9)
    mean = dirichlet_mean(alpha, mask)
    assert torch.all(mean[~mask] == 0)


@pytest.mark.parametrize(("sampler", "width"), [(sample_masked_dirichlet, 4), (sample_masked_normal, 5)])
def test_samples_depend_only_on_the_generator(sampler, width):
    params = torch.full((5, width), 2.0)
    mask = torch.ones(5, 4, dtype=torch.bool)
    a = sampler(params, mask, torch.Generator().manual_seed(3))
    torch.manual_seed(123)  # the global RNG does not matter
    b = sampler(params, mask, torch.Generator().manual_seed(3))
    c = sampler(params, mask, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)


# --------------------------------------------------------------------------- masked logistic-normal
@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 7), st.floats(-4.0, 1.5))
def test_masked_normal_matches_torch_on_the_tradable_subset(seed, n, log_std):
    g = torch.Generator().manual_seed(seed)
    mu = torch.randn(3, n + 1, generator=g, dtype=torch.float64) * 3
    params = torch.cat([mu, torch.full((3, 1), log_std, dtype=torch.float64)], 1)
    mask = torch.rand(3, n + 1, generator=g) < 0.7
    mask[:, -1] = True  # cash is always in play
    u = sample_masked_normal(params, mask, g).double()
    assert torch.all(u[~mask] == 0)
    lp, ent = masked_normal_log_prob(params, mask, u), masked_normal_entropy(params, mask)
    for i in range(3):
        m = mask[i]
        d = torch.distributions.Normal(mu[i, m], math.exp(log_std))
        assert torch.isclose(lp[i], d.log_prob(u[i, m]).sum(), rtol=1e-9, atol=1e-9)
        assert torch.isclose(ent[i], d.entropy().sum(), rtol=1e-9, atol=1e-9)
    w = softmax_weights(u, mask, n)
    assert torch.all(w[~mask[:, :n]] == 0) and torch.all(w.sum(1) <= 1 + 1e-12)
    ref = torch.softmax(u[0, mask[0]], 0)[: int(mask[0, :n].sum())]
    assert torch.allclose(w[0, mask[0, :n]], ref)


def test_fast_tanh_is_tanh():
    x = torch.linspace(-30, 30, 10_001)
    assert torch.allclose(fast_tanh(x), torch.tanh(x), atol=1e-6)


def test_equal_weight_baseline_is_the_log_return_of_the_equal_weight_book():
    panel = make_panel()  # ticker 2 listed from row 40
    core = PortfolioCore(panel.close, panel.features, panel.tickers, ENV, num_envs=3, seed=0)
    t0, t1 = torch.tensor([10, 39, 100]), torch.tensor([11, 40, 101])
    got = benchmark_log_return(core, t0, t1).numpy()
    c = panel.close
    for lane, (a, b) in enumerate(zip(t0.tolist(), t1.tolist(), strict=True)):
        ok = np.isfinite(c[a]) & np.isfinite(c[b])
        assert got[lane] == pytest.approx(np.log(np.mean(c[b, ok] / c[a, ok])), rel=1e-12)
    assert not np.isfinite(c[39, 2]) and np.isfinite(c[40, 2])  # the listing bar was left out


# --------------------------------------------------------------------------- networks
@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 6), st.floats(-3, 3), st.sampled_from(DISTRIBUTIONS))
def test_actor_critic_weights_are_long_only_masked_and_valid_for_the_core(seed, n, bias, dist):
    torch.manual_seed(seed)
    pol = PortfolioActorCritic(n, W, F, (16,), distribution=dist)
    with torch.no_grad():
        pol.score.bias.fill_(bias * 10)  # push the mean to one asset or to cash
        pol.concentration.bias.fill_(bias * 3)  # and the concentration to both ends
    rng = np.random.default_rng(seed)
    tradable = rng.random((8, n)) < 0.7
    obs = random_obs(n, 8, seed, tradable)
    for w in (
        pol.decide(obs, 0),
        pol.act(obs, deterministic=False, generator=torch.Generator().manual_seed(1)),
    ):
        assert w.dtype == torch.float64 and w.shape == (8, n)
        assert torch.all(w >= 0) and torch.all(w.sum(1) <= 1 + 1e-12)
        assert torch.all(w[torch.as_tensor(~tradable)] == 0)
    # the core accepts them as they are (its own bound and tradable checks)
    panel = make_panel(n=n, late=None)
    core = PortfolioCore(panel.close, panel.features, panel.tickers, ENV, num_envs=8, seed=0)
    core.reset()
    core.check_weights(pol.decide(core.observe(), 0))


@pytest.mark.parametrize("cls", [PortfolioActorCritic, PortfolioQ])
def test_parameter_count_does_not_depend_on_the_number_of_assets(cls):
    counts = {n: sum(p.numel() for p in cls(n, W, F, (32, 32)).parameters()) for n in (1, 3, 20, 100)}
    assert len(set(counts.values())) == 1, counts
    # ... while it does grow with the window (the check can fail)
    assert sum(p.numel() for p in cls(3, W + 1, F, (32, 32)).parameters()) > counts[3]


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 10_000), st.permutations(list(range(5))))
def test_permuting_assets_permutes_weights_and_q_values(seed, perm):
    n = 5
    torch.manual_seed(seed)
    ac, q = PortfolioActorCritic(n, W, F, (16, 16)), PortfolioQ(n, W, F, (16, 16))
    tradable = np.random.default_rng(seed).random((6, n)) < 0.8
    obs = random_obs(n, 6, seed, tradable)
    obs_p = permute_obs(obs, n, list(perm))
    assert torch.allclose(ac.decide(obs_p, 0), ac.decide(obs, 0)[:, list(perm)], atol=1e-6)
    assert torch.allclose(ac.value(obs_p), ac.value(obs), atol=1e-5)
    q0, qp = q(obs), q(obs_p)
    order = [*list(perm), n, n + 1]
    assert torch.allclose(qp, q0[:, order], atol=1e-5, equal_nan=True)


def test_q_network_masks_untradable_allocations():
    q = PortfolioQ(3, W, F, (16,))
    tradable = np.array([[True, False, True], [False, False, False]])
    obs = random_obs(3, 2, 0, tradable)
    values = q(obs)
    assert torch.isinf(values[0, 1]) and torch.isfinite(values[0, [0, 2, 3, 4]]).all()
    assert torch.isinf(values[1, [0, 1, 2, 4]]).all() and torch.isfinite(values[1, 3])  # only cash
    w = allocation_weights(torch.tensor([4, 3]), torch.as_tensor(tradable))
    assert torch.allclose(w, torch.tensor([[0.5, 0.0, 0.5], [0.0, 0.0, 0.0]], dtype=torch.float64))
    assert torch.all(q.decide(obs, 0)[1] == 0)


def test_the_policy_carries_its_feature_scaler():
    # the scaler itself (listed tickers pooled, finite values, training rows only) is
    # panel.fit_feature_scaler, tested in test_portfolio_features.py
    mean, std = np.array([3.0], dtype=np.float32), np.array([2.0], dtype=np.float32)
    pol = PortfolioActorCritic(2, 1, 1, (4,))
    pol.set_scaler(mean, std)
    assert torch.equal(pol.feature_mean, torch.tensor([3.0]))


# --------------------------------------------------------------------------- training
@pytest.fixture(scope="module")
def split():
    p = make_panel()
    return p.rows(0, 180), p.rows(180 - (W - 1), 260)


def _state(res):
    return {k: v.clone() for k, v in res.policy.state_dict().items()}


def _same(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize(
    ("algo", "cfg", "every"),
    [
        ("ppo", TINY_PPO, 4),
        ("ppo", dict(TINY_PPO, distribution="dirichlet"), 4),
        ("ppo", dict(TINY_PPO, reward_baseline="benchmark"), 4),
        ("a2c", TINY_A2C, 4),
        ("dqn", TINY_DQN, 40),
    ],
)
def test_members_do_not_depend_on_the_population_and_seeds_reproduce(split, algo, cfg, every):
    train, val = split
    kw = dict(num_envs=8, eval_every=every)
    pair = train_portfolio_members(algo, cfg, train, val, ENV, [1, 2], **kw)
    other = train_portfolio_members(algo, cfg, train, val, ENV, [3, 1], **kw)
    alone = train_portfolio_members(algo, cfg, train, val, ENV, [1], population=False, **kw)
    assert _same(_state(pair[0]), _state(other[1])), "seed 1 changed with its population partner"
    assert _same(_state(pair[0]), _state(alone[0])), "seed 1 alone differs from seed 1 in a population"
    assert pair[0].best_score == other[1].best_score == alone[0].best_score
    assert not _same(_state(pair[0]), _state(pair[1]))  # different seeds, different weights
    pd.testing.assert_frame_equal(
        pair[0].history.drop(columns="steps_per_s"), alone[0].history.drop(columns="steps_per_s")
    )


def test_best_checkpoint_is_kept_and_scores_are_the_validation_sharpe(split):
    train, val = split
    calls = []

    def scripted(policy):  # improves once, then never again: patience 2 stops after 3 evaluations
        calls.append({k: v.clone() for k, v in policy.state_dict().items()})
        return [0.5, 2.0, 1.0, 1.5, 0.1, 3.0][len(calls) - 1]

    cfg = dict(TINY_PPO, total_steps=16 * 8 * 12)
    (res,) = train_portfolio_members(
        "ppo", cfg, train, val, ENV, [0], num_envs=8, eval_every=2, patience=2, score_fn=scripted
    )
    assert len(calls) == 4 and res.best_score == 2.0
    assert _same(_state(res), calls[1])
    # the real scorer: the Sharpe of the deterministic replay over the validation panel
    (res,) = train_portfolio_members("ppo", TINY_PPO, train, val, ENV, [0], num_envs=8, eval_every=100)
    assert res.best_score == pytest.approx(portfolio_validation_sharpe(res.policy, val, ENV))
    assert math.isfinite(res.best_score)


def test_artifact_round_trip_gives_identical_decisions(split, tmp_path):
    train, val = split
    for algo, cfg, every in (("ppo", TINY_PPO, 4), ("dqn", dict(TINY_DQN, total_steps=512), 30)):
        results = train_portfolio_members(algo, cfg, train, val, ENV, [4, 5], num_envs=8, eval_every=every)
        bundle = portfolio_bundle(results, [4, 5], train, ENV)
        digest = save_policy_bundle(bundle, tmp_path / algo)
        loaded = load_policy_bundle(tmp_path / algo, expected_sha256=digest, recorded_in="the save")
        assert loaded.spec["kind"] == results[0].policy.spec["kind"]
        for seed, res in zip([4, 5], results, strict=True):
            pol = loaded.load_policy(seed)
            assert type(pol) is type(res.policy)
            a = replay_weights(val, ENV, res.policy.decide)
            b = replay_weights(val, ENV, pol.decide)
            np.testing.assert_array_equal(a.targets, b.targets)
            np.testing.assert_array_equal(a.equity, b.equity)
            assert torch.equal(pol.feature_mean, res.policy.feature_mean)  # the scaler travels along
        assert build_policy(loaded.spec).spec == results[0].policy.spec


@pytest.mark.parametrize("dist", DISTRIBUTIONS)
def test_actor_critic_spec_round_trip(dist):
    pol = PortfolioActorCritic(
        3, W, F, (8, 8), distribution=dist, log_std=-0.5, log_concentration=2.0, decision_temperature=0.5
    )
    again = build_policy(pol.spec)
    assert type(again) is PortfolioActorCritic and again.spec == pol.spec
    again.load_state_dict(pol.state_dict())
    obs = random_obs(3, 4, 0)
    assert torch.equal(again.decide(obs, 0), pol.decide(obs, 0))
    # a spec written before the distribution was a choice is the Dirichlet policy it described
    old = {**pol.spec, "network": {k: v for k, v in pol.spec["network"].items() if k != "distribution"}}
    assert build_portfolio_policy(old).distribution == "dirichlet"


def test_unknown_distribution_names_the_parameter(split):
    from reinforce_strategy_creator.errors import InputError

    train, val = split
    with pytest.raises(InputError, match="distribution"):
        train_portfolio_members("ppo", dict(TINY_PPO, distribution="beta"), train, val, ENV, [0])
    with pytest.raises(PortfolioInputError, match="distribution"):
        PortfolioActorCritic(3, W, F, (8,), distribution="beta")


def test_a_lower_decision_temperature_concentrates_the_decision():
    torch.manual_seed(0)
    obs = random_obs(4, 16, 0)
    pols = [PortfolioActorCritic(4, W, F, (8,), decision_temperature=t) for t in (1.0, 0.25, 0.01)]
    for p in pols[1:]:
        p.load_state_dict(pols[0].state_dict())
    with torch.no_grad():
        for p in pols:
            p.score.weight.mul_(100.0)  # scores that differ between assets
    top = [p.decide(obs, 0).max(1).values for p in pols]
    assert torch.all(top[1] > top[0]) and torch.all(top[2] > top[1])


def test_a_plain_ppo_config_trains_the_default_policy(split):
    from reinforce_strategy_creator.agents.ppo import PPOConfig

    train, val = split
    (res,) = train_portfolio_members("ppo", PPOConfig(**TINY_PPO), train, val, ENV, [0], num_envs=8)
    assert res.policy.distribution == DISTRIBUTIONS[0]


def test_feature_scaler_is_fit_on_the_train_panel_only(split):
    train, val = split
    (res,) = train_portfolio_members("a2c", dict(TINY_A2C, total_steps=64), train, val, ENV, [0], num_envs=8)
    mean, std = fit_feature_scaler(train, slice(None))
    assert np.array_equal(res.policy.feature_mean.numpy(), mean)
    assert np.array_equal(res.policy.feature_std.numpy(), std)
    both = PortfolioPanel(
        np.concatenate([train.close, val.close]),
        np.concatenate([train.features, val.features]),
        train.tickers,
        train.dates.append(val.dates),
    )
    mean_all, _ = fit_feature_scaler(both, slice(None))
    assert not np.array_equal(mean, mean_all)


@pytest.mark.parametrize(
    ("change", "names"),
    [
        (dict(algorithm="sac"), "algorithm"),
        (dict(seeds=[]), "seeds"),
        (dict(seeds=[1, 1]), "seeds"),
        (dict(env=universe_env(window=W, episode_length=400)), "episode_length"),
        (dict(env=universe_env(window=200, episode_length=None)), "window"),
        (dict(short_validation=True), "validation"),
    ],
)
def test_bad_input_names_the_parameter(split, change, names):
    train, val = split
    args = dict(algorithm="ppo", env=ENV, seeds=[0], config=TINY_PPO)
    short = change.pop("short_validation", False)
    args.update(change)
    with pytest.raises(PortfolioInputError, match=names):
        train_portfolio_members(
            args["algorithm"],
            args["config"],
            train,
            val.rows(0, W) if short else val,
            args["env"],
            args["seeds"],
        )


@pytest.mark.parametrize(
    "case", ["no_scaler", "scaler_on_vector_env", "mixed", "baseline_on_foreign_env", "simplex_on_vector_env"]
)
def test_the_agents_trainers_refuse_members_they_cannot_train(split, case):
    from reinforce_strategy_creator.agents import AgentConfigError, train_ppo
    from reinforce_strategy_creator.env import EnvConfig, MarketArrays, TradingEnv, TradingVectorEnv
    from reinforce_strategy_creator.params.agents import PPOConfig

    train, _ = split
    core = PortfolioCore(train.close, train.features, train.tickers, ENV, num_envs=8, seed=0)
    f0 = np.nan_to_num(train.features[:, 0, :])
    market = MarketArrays.from_arrays(f0, train.close[:, 0], train.close[:, 0])
    vec = TradingVectorEnv(market, EnvConfig(window=W, episode_length=48, device="cpu"), 8, seed=0)
    scaler = fit_feature_scaler(train, slice(None))
    members, kw, cfg, match = {
        "no_scaler": ([core], {}, TINY_PPO, "scaler"),
        "scaler_on_vector_env": ([vec], dict(scaler=scaler), TINY_PPO, "scaler"),
        "mixed": ([core, vec], dict(scaler=scaler), TINY_PPO, "PortfolioCore"),
        "baseline_on_foreign_env": (  # a gymnasium vector env: no core knows the lanes' bars
            [gym.vector.SyncVectorEnv([lambda: TradingEnv(market, vec.config)])],
            {},
            PPOConfig(**TINY_PPO, reward_baseline="benchmark"),
            "reward_baseline",
        ),
        "simplex_on_vector_env": ([vec], {}, {**TINY_PPO, "distribution": "dirichlet"}, "distribution"),
    }[case]
    with pytest.raises(AgentConfigError, match=match):
        train_ppo(members, cfg, seeds=list(range(len(members))), device="cpu", progress=False, **kw)
