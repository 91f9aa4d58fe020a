"""Populations (agents/population.py): K members trained as one are still K separate runs.

* one member's update (loss, per-member clipping, optimiser step) equals the single-model
  update on the same minibatch; an inactive member does not move;
* a member trained in a population follows the single-model run of its seed (same rollouts,
  weights equal to float rounding), for PPO, A2C and DQN;
* same seed list -> bit-identical weights; a member's result does not depend on which other
  members share its population (fused same-market env included);
* the fused env gives each member block exactly the trajectory of its own env;
* early stopping, divergence and the progress display are per member / per population.
The learning tests (CartPole, planted signal) are at the end, marked slow.
"""

from __future__ import annotations

import copy

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

from reinforce_strategy_creator.agents import (
    POPULATION_ALGORITHMS,
    AgentConfigError,
    PPOConfig,
    TrainingDivergedError,
    train_a2c,
    train_a2c_population,
    train_dqn,
    train_dqn_population,
    train_ppo,
    train_ppo_population,
)
from reinforce_strategy_creator.agents.a2c import A2CConfig, a2c_loss
from reinforce_strategy_creator.agents.dqn import td_loss
from reinforce_strategy_creator.agents.networks import ActorCriticPolicy, QPolicy
from reinforce_strategy_creator.agents.population import (
    PopulationActorCritic,
    PopulationQ,
    StackedAdam,
    StackedRMSprop,
    clip_grad_norm_per_member,
)
from reinforce_strategy_creator.agents.ppo import ppo_loss
from reinforce_strategy_creator.env import EnvConfig, MarketArrays, TradingVectorEnv
from reinforce_strategy_creator.env.fused import MemberBlockTradingVectorEnv, fuse_trading_envs
from reinforce_strategy_creator.markets import planted_signal_market

from .test_planted_signal import ENV as PLANTED_ENV

SHORT = {
    "ppo": (train_ppo, train_ppo_population, {"total_steps": 1024, "num_steps": 32, "log_every": 1}),
    "a2c": (train_a2c, train_a2c_population, {"total_steps": 1024, "num_steps": 8, "log_every": 4}),
    "dqn": (
        train_dqn,
        train_dqn_population,
        {"total_steps": 1024, "learning_starts": 128, "train_frequency": 4, "batch_size": 32, "log_every": 2},
    ),
}
# PPO with a KL limit that members hit at different minibatches (each member freezes on its own)
SHORT_KL = (train_ppo, train_ppo_population, {**SHORT["ppo"][2], "target_kl": 0.002, "learning_rate": 3e-3})


@pytest.fixture(autouse=True)
def _one_thread():
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)


def _cartpole(n=4):
    return gym.make_vec("CartPole-v1", num_envs=n, vectorization_mode="sync")


def _weights(policy: nn.Module) -> list[torch.Tensor]:
    return [v.detach().clone() for v in policy.state_dict().values()]


def _same(a: nn.Module, b: nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(_weights(a), _weights(b), strict=True))


def _market(seed=3, n_bars=600):
    return MarketArrays.from_frame(planted_signal_market(n_bars, snr=0.3, seed=seed, n_noise=2).frame)


ENV = EnvConfig.from_params({**PLANTED_ENV, "episode_length": 40})


# ------------------------------------------------------------------ one update equals the single update
def _ppo_minibatch(gen, n, obs_dim, scale):
    return dict(
        obs=torch.randn(n, obs_dim, generator=gen) * scale,
        actions=torch.randint(0, 3, (n,), generator=gen),
        old_logprob=torch.log(torch.full((n,), 1 / 3)) + 0.1 * torch.randn(n, generator=gen),
        old_values=torch.randn(n, generator=gen),
        adv=torch.randn(n, generator=gen) * scale,
        returns=torch.randn(n, generator=gen) * scale,
        valid=(torch.rand(n, generator=gen) > 0.1).float(),
    )


def test_ppo_member_update_equals_single_model_update():
    """Per member: same loss, same clipped gradient (one member clipped, one not), same Adam
    step over two updates; a member marked inactive keeps weights and Adam state."""
    cfg = PPOConfig(max_grad_norm=0.5)
    torch.manual_seed(0)
    singles = [ActorCriticPolicy(6, 3) for _ in range(3)]
    pop = PopulationActorCritic([copy.deepcopy(m) for m in singles])
    opts = [torch.optim.Adam(m.parameters(), lr=1e-3, eps=1e-5) for m in singles]
    sopt = StackedAdam(pop.parameters(), 3, lr=1e-3, eps=1e-5)
    gen = torch.Generator().manual_seed(1)
    active = torch.tensor([True, True, False])
    frozen = _weights(pop.members[2])
    for _update in range(2):
        # member 0 gets small data (not clipped), member 1 large data (clipped)
        mbs = [_ppo_minibatch(gen, 50, 6, s) for s in (0.01, 30.0, 1.0)]
        stacked = {k: torch.stack([mb[k] for mb in mbs]) for k in mbs[0]}
        pop_loss = ppo_loss(pop, cfg, **stacked)
        sopt.zero_grad()
        pop_loss[0].sum().backward()
        norms = clip_grad_norm_per_member(sopt.params, cfg.max_grad_norm)
        pop_grads = [[p.grad[i].clone() for p in sopt.params] for i in range(3)]
        sopt.step(active)
        for i in range(2):
            loss = ppo_loss(singles[i], cfg, **mbs[i])
            opts[i].zero_grad()
            loss[0].backward()
            norm = nn.utils.clip_grad_norm_(singles[i].parameters(), cfg.max_grad_norm)
            opts[i].step()
            torch.testing.assert_close(pop_loss[0][i], loss[0], rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(norms[i], norm, rtol=1e-5, atol=1e-6)
            for g, p in zip(pop_grads[i], singles[i].parameters(), strict=True):
                torch.testing.assert_close(g, p.grad, rtol=1e-5, atol=1e-7)
            for a, b in zip(_weights(pop.members[i]), _weights(singles[i]), strict=True):
                torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
        assert float(norms[0]) < cfg.max_grad_norm < float(norms[1])  # both branches of the clip
    assert all(torch.equal(a, b) for a, b in zip(_weights(pop.members[2]), frozen, strict=True))
    assert all(float(m[2].abs().max()) == 0 for m in sopt.m) and sopt.steps.tolist() == [2.0, 2.0, 0.0]


def test_a2c_and_dqn_member_losses_and_rmsprop_equal_single_model():
    cfg = A2CConfig(norm_adv=True, ent_coef=0.01)
    torch.manual_seed(0)
    singles = [ActorCriticPolicy(5, 3) for _ in range(2)]
    pop = PopulationActorCritic([copy.deepcopy(m) for m in singles])
    gen = torch.Generator().manual_seed(2)
    mbs = [_ppo_minibatch(gen, 40, 5, s) for s in (1.0, 5.0)]
    keys = ("obs", "actions", "adv", "returns", "valid")
    pop_loss = a2c_loss(pop, cfg, *(torch.stack([mb[k] for mb in mbs]) for k in keys))
    opt = StackedRMSprop(pop.parameters(), 2, lr=7e-4, alpha=0.99, eps=1e-5)
    opt.zero_grad()
    pop_loss[0].sum().backward()
    clip_grad_norm_per_member(opt.params, 0.5)
    opt.step(torch.tensor([True, True]))
    for i, m in enumerate(singles):
        single = torch.optim.RMSprop(m.parameters(), lr=7e-4, alpha=0.99, eps=1e-5)
        loss = a2c_loss(m, cfg, *(mbs[i][k] for k in keys))
        torch.testing.assert_close(pop_loss[0][i], loss[0], rtol=1e-5, atol=1e-6)
        loss[0].backward()
        nn.utils.clip_grad_norm_(m.parameters(), 0.5)
        single.step()
        for a, b in zip(_weights(pop.members[i]), _weights(m), strict=True):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    # DQN: stacked dueling Q-networks and the per-member TD loss
    qs = [QPolicy(5, 3, (16, 16)) for _ in range(2)]
    qpop = PopulationQ(qs)
    x = torch.randn(2, 7, 5, generator=gen)
    out = qpop(x)
    for i, q in enumerate(qs):
        torch.testing.assert_close(out[i], q(x[i]), rtol=1e-5, atol=1e-6)
        tgt = torch.randn(7, generator=gen)
        torch.testing.assert_close(
            td_loss(out[i, :, 0], tgt, "huber"), nn.functional.smooth_l1_loss(q(x[i])[:, 0], tgt)
        )


# ------------------------------------------------------------------ a member follows its single-model run
@pytest.mark.parametrize("algo", [*sorted(SHORT), "ppo-target_kl"])
def test_member_follows_the_single_model_run_of_its_seed(algo):
    single_fn, pop_fn, cfg = SHORT_KL if algo == "ppo-target_kl" else SHORT[algo]
    res = pop_fn([_cartpole(), _cartpole()], cfg, seeds=[3, 4], device="cpu", progress=False)
    for r, seed in zip(res, (3, 4), strict=True):
        s = single_fn(_cartpole(), cfg, seed=seed, device="cpu", progress=False)
        assert r.steps == s.steps == 1024
        # the same rollouts (episode returns), weights equal to float rounding
        pd_cols = ["step", "episode_return"]
        assert r.history[pd_cols].equals(s.history[pd_cols])
        for a, b in zip(_weights(r.policy), _weights(s.policy), strict=True):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
        assert r.policy.spec == s.policy.spec and not r.policy.training


# ------------------------------------------------------------------ determinism and independence
@pytest.mark.parametrize("algo", sorted(SHORT))
def test_same_seeds_bit_identical_and_members_independent_of_each_other(algo):
    """Fused same-market env: seeds [1, 2] twice -> identical; member 2 alongside 1, alongside 5,
    or alongside 7 and 9 -> identical too."""
    _, pop_fn, cfg = SHORT[algo]
    market = _market()

    def run(seeds):
        envs = [TradingVectorEnv(market, ENV, num_envs=8, seed=s) for s in seeds]
        return pop_fn(envs, cfg, seeds=seeds, device="cpu", progress=False)

    a, b, c, d, alone = run([1, 2]), run([1, 2]), run([5, 2]), run([7, 9, 2]), run([2])
    assert _same(a[0].policy, b[0].policy) and _same(a[1].policy, b[1].policy)
    assert a[0].history.drop(columns="steps_per_s").equals(b[0].history.drop(columns="steps_per_s"))
    assert not _same(a[0].policy, a[1].policy)
    assert _same(a[1].policy, c[1].policy) and _same(a[1].policy, d[2].policy)
    # a population of ONE runs torch's bmm with batch 1, which takes the plain matmul path:
    # the same run to float rounding, not bit for bit
    for x, y in zip(_weights(a[1].policy), _weights(alone[0].policy), strict=True):
        torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-5)


def test_members_on_different_markets_match_their_own_runs():
    """Folds: members on different markets (no fusion) follow their single-model runs."""
    m1, m2 = _market(3), _market(4, n_bars=500)
    _, pop_fn, cfg = SHORT["ppo"]
    envs = [TradingVectorEnv(m1, ENV, num_envs=8, seed=1), TradingVectorEnv(m2, ENV, num_envs=8, seed=2)]
    assert fuse_trading_envs(envs, [1, 2]) is None
    res = pop_fn(envs, cfg, seeds=[1, 2], device="cpu", progress=False)
    for r, m, s in zip(res, (m1, m2), (1, 2), strict=True):
        single = train_ppo(
            TradingVectorEnv(m, ENV, num_envs=8, seed=s), cfg, seed=s, device="cpu", progress=False
        )
        for a, b in zip(_weights(r.policy), _weights(single.policy), strict=True):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_folds_x_seeds_fuse_per_fold_and_members_match_their_fold_alone():
    """Members ordered fold by fold: each fold's seeds share one fused env, and a member's
    result is bit-identical to training its fold's seeds alone."""
    from reinforce_strategy_creator.agents.population import MemberEnvs

    m1, m2 = _market(3), _market(4, n_bars=500)
    _, pop_fn, cfg = SHORT["ppo"]
    plan = [(m1, 1), (m1, 2), (m2, 3), (m2, 4)]

    def envs(p):
        return [TradingVectorEnv(m, ENV, num_envs=8, seed=s) for m, s in p]

    groups = MemberEnvs(envs(plan), [s for _, s in plan], torch.device("cpu"))
    assert [n for _, _, n in groups.groups] == [2, 2] and groups.n_fused == 4
    both = pop_fn(envs(plan), cfg, seeds=[1, 2, 3, 4], device="cpu", progress=False)
    fold2 = pop_fn(envs(plan[2:]), cfg, seeds=[3, 4], device="cpu", progress=False)
    assert _same(both[2].policy, fold2[0].policy) and _same(both[3].policy, fold2[1].policy)


@pytest.mark.parametrize("seeds", [[0, 1], [7, 3, 11]])
def test_fused_env_blocks_equal_their_own_envs(seeds):
    """Every member block of the fused env steps exactly like its own env (episode ends and
    random restarts included), whatever the other blocks do."""
    market = _market()
    own = [TradingVectorEnv(market, ENV, num_envs=4, seed=s) for s in seeds]
    fused = fuse_trading_envs(own, seeds)
    assert isinstance(fused, MemberBlockTradingVectorEnv) and fused.num_envs == 4 * len(seeds)
    obs = fused.reset_tensors(seed=None)[0]
    own_obs = [e.reset_tensors(seed=s)[0] for e, s in zip(own, seeds, strict=True)]
    torch.testing.assert_close(obs, torch.cat(own_obs), rtol=0, atol=0)
    rng = np.random.default_rng(0)
    ends = 0
    for _ in range(120):
        actions = torch.as_tensor(rng.integers(0, 3, size=fused.num_envs))
        f = fused.step_tensors(actions)
        parts = [e.step_tensors(actions[i * 4 : (i + 1) * 4]) for i, e in enumerate(own)]
        for j in range(4):  # obs, reward, terminated, truncated
            torch.testing.assert_close(f[j], torch.cat([p[j] for p in parts]), rtol=0, atol=0)
        ends += int((f[2] | f[3]).sum())
    assert ends > 0


# ------------------------------------------------------------------ stopping, divergence, progress, errors
def test_early_stopping_is_per_member_and_frees_nobody_else():
    _, pop_fn, cfg = SHORT["ppo"]
    cfg = dict(cfg, total_steps=cfg["total_steps"] * 8)
    snapshots = []
    scores0 = iter([1.0, 5.0, 2.0, 3.0, 4.0] + [9.0] * 100)

    def eval0(policy):
        snapshots.append(_weights(policy))
        return next(scores0)

    calls = []

    def eval1(policy):  # always improves: member 1 never stops
        calls.append(1)
        return float(len(calls))

    res = pop_fn(
        [_cartpole(), _cartpole()],
        cfg,
        seeds=[0, 1],
        device="cpu",
        eval_fns=[eval0, eval1],
        eval_every=1,
        patience=3,
        progress=False,
    )
    assert len(snapshots) == 5 and res[0].best_score == 5.0
    assert all(torch.equal(a, b) for a, b in zip(_weights(res[0].policy), snapshots[1], strict=True))
    assert res[0].history["eval_score"].dropna().tolist() == [1.0, 5.0, 2.0, 3.0, 4.0]
    assert res[0].steps < res[1].steps == cfg["total_steps"]
    # member 1 is unaffected by member 0 stopping: the same as next to a member that never stops
    calls.clear()
    other = pop_fn(
        [_cartpole(), _cartpole()],
        cfg,
        seeds=[9, 1],
        device="cpu",
        eval_fns=[None, eval1],
        eval_every=1,
        progress=False,
    )
    assert _same(res[1].policy, other[1].policy) and other[0].steps == cfg["total_steps"]


class _NaNRewards(gym.vector.VectorWrapper):
    def step(self, actions):
        obs, rew, term, trunc, info = self.env.step(actions)
        return obs, rew * np.nan, term, trunc, info


@pytest.mark.parametrize("algo", sorted(SHORT))
def test_a_diverging_member_raises_naming_agent_seed_and_update(algo):
    _, pop_fn, cfg = SHORT[algo]
    with pytest.raises(TrainingDivergedError) as info:
        pop_fn([_cartpole(), _NaNRewards(_cartpole())], cfg, seeds=[5, 6], device="cpu", progress=False)
    e = info.value
    assert (e.agent, e.seed) == (algo, 6) and e.update >= 1
    assert f"training.{algo}" in str(e) and "seed 6" in str(e)


def test_one_progress_line_for_the_population_summing_members(capsys):
    _, pop_fn, cfg = SHORT["ppo"]
    pop_fn([_cartpole(), _cartpole(), _cartpole()], cfg, seeds=[0, 1, 2], device="cpu", progress=True)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err  # not a terminal and < 15 s: the final line only
    assert err[0].startswith("ppo x3") and "3072/3072" in err[0] and "active=" in err[0]


def test_bad_member_arguments_are_rejected():
    _, pop_fn, cfg = SHORT["ppo"]
    with pytest.raises(AgentConfigError, match="one seed per member"):
        pop_fn([_cartpole(), _cartpole()], cfg, seeds=[1], device="cpu", progress=False)
    with pytest.raises(AgentConfigError, match="one eval_fn"):
        pop_fn([_cartpole()], cfg, seeds=[1], device="cpu", eval_fns=[None, None], progress=False)
    with pytest.raises(AgentConfigError, match="member 1 \\(seed 2\\) has 2 lanes"):
        pop_fn([_cartpole(4), _cartpole(2)], cfg, seeds=[1, 2], device="cpu", progress=False)
    assert set(POPULATION_ALGORITHMS) == {"ppo", "a2c", "dqn"}
