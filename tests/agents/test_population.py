"""Populations (agents/population.py): every trainer trains K >= 1 members as one, K = 1 being
a plain run, and the members are still K separate runs.

* one update of a member (PPO minibatch, A2C rollout, DQN TD step: loss -> clip -> optimiser
  step) equals the same update computed by hand on a plain ``nn.Module`` with ``torch.optim``;
  an inactive member does not move;
* same seeds -> bit-identical weights and history; a member's weights are bit for bit those of
  the population of one of its seed, whatever members share its population (fused
  same-market env, different markets, KL freezing);
* the fused env gives each member block exactly the trajectory of its own env;
* early stopping, divergence and the progress display are per member / per population.
The learning tests (CartPole, planted signal) are in their own files, marked slow.
"""

from __future__ import annotations

import copy

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn
from torch.distributions import Categorical

from reinforce_strategy_creator.agents import (
    ALGORITHMS,
    A2CConfig,
    AgentConfigError,
    DQNConfig,
    PPOConfig,
    TrainingDivergedError,
)
from reinforce_strategy_creator.agents import a2c as a2c_mod
from reinforce_strategy_creator.agents import dqn as dqn_mod
from reinforce_strategy_creator.agents import ppo as ppo_mod
from reinforce_strategy_creator.agents.buffers import ReplayBuffer, RolloutBuffer
from reinforce_strategy_creator.agents.networks import ActorCriticPolicy, QPolicy
from reinforce_strategy_creator.agents.population import (
    MemberEnvs,
    PopulationActorCritic,
    PopulationQ,
    StackedAdam,
    clip_grad_norm_per_member,
)
from reinforce_strategy_creator.env import EnvConfig, MarketArrays, TradingVectorEnv
from reinforce_strategy_creator.env.fused import MemberBlockTradingVectorEnv, fuse_trading_envs
from reinforce_strategy_creator.markets import planted_signal_market

from .test_planted_signal import ENV as PLANTED_ENV

SHORT = {
    "ppo": {"total_steps": 1024, "num_steps": 32, "log_every": 1},
    "a2c": {"total_steps": 1024, "num_steps": 8, "log_every": 4},
    "dqn": {
        "total_steps": 1024,
        "learning_starts": 128,
        "train_frequency": 4,
        "batch_size": 32,
        "log_every": 2,
    },
    # a KL limit that members hit at different minibatches (each member freezes on its own)
    "ppo-target_kl": {
        "total_steps": 1024,
        "num_steps": 32,
        "log_every": 1,
        "target_kl": 0.002,
        "learning_rate": 3e-3,
    },
}
ALGOS = ("ppo", "a2c", "dqn")


def _trainer(case: str):
    return ALGORITHMS[case.split("-")[0]][1], SHORT[case]


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


def _close(a: nn.Module, b: nn.Module) -> None:
    for x, y in zip(_weights(a), _weights(b), strict=True):
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-6)


def _market(seed=3, n_bars=600):
    return MarketArrays.from_frame(planted_signal_market(n_bars, snr=0.3, seed=seed, n_noise=2).frame)


ENV = EnvConfig.from_params({**PLANTED_ENV, "episode_length": 40})


# ------------------------------------------------------------------ one update equals the hand-computed one
K, T, B, D, A = 3, 4, 5, 6, 3
SCALES = (0.01, 30.0, 1.0)  # member 0: gradient under the clip norm; member 1: clipped; member 2 inactive
ACTIVE = torch.tensor([True, True, False])


def _mean(x, valid):
    return (x * valid).sum() / valid.sum().clamp_min(1.0)


def _normalised(adv, valid):
    mean = _mean(adv, valid)
    return (adv - mean) / (_mean((adv - mean) ** 2, valid).sqrt() + 1e-8)


def _ppo_by_hand(net, cfg: PPOConfig, obs, actions, old_logp, old_v, adv, ret, valid):
    logits, v = net.actor(obs), net.critic(obs).squeeze(-1)
    dist = Categorical(logits=logits)
    ratio = (dist.log_prob(actions) - old_logp).exp()
    a = _normalised(adv, valid)
    pg = _mean(torch.max(-a * ratio, -a * ratio.clamp(1 - cfg.clip_coef, 1 + cfg.clip_coef)), valid)
    v_clip = old_v + (v - old_v).clamp(-cfg.clip_coef, cfg.clip_coef)
    vl = 0.5 * _mean(torch.max((v - ret) ** 2, (v_clip - ret) ** 2), valid)
    return pg - cfg.ent_coef * _mean(dist.entropy(), valid) + cfg.vf_coef * vl


def _a2c_by_hand(net, cfg: A2CConfig, obs, actions, old_logp, old_v, adv, ret, valid):
    logits, v = net.actor(obs), net.critic(obs).squeeze(-1)
    dist = Categorical(logits=logits)
    a = _normalised(adv, valid) if cfg.norm_adv else adv
    pg = -_mean(a * dist.log_prob(actions), valid)
    return pg - cfg.ent_coef * _mean(dist.entropy(), valid) + cfg.vf_coef * 0.5 * _mean((v - ret) ** 2, valid)


def _rollout(gen) -> tuple[RolloutBuffer, torch.Tensor, torch.Tensor]:
    """A filled (T, K*B) rollout buffer (member-major lanes), its advantages and returns."""
    buf = RolloutBuffer(T, K * B, D, torch.device("cpu"))
    scale = torch.tensor(SCALES).repeat_interleave(B)  # per lane
    buf.obs = torch.randn(T, K * B, D, generator=gen) * scale[:, None]
    buf.actions = torch.randint(0, A, (T, K * B), generator=gen)
    buf.logprobs = torch.log(torch.full((T, K * B), 1 / A)) + 0.1 * torch.randn(T, K * B, generator=gen)
    buf.values = torch.randn(T, K * B, generator=gen)
    buf.valid = (torch.rand(T, K * B, generator=gen) > 0.1).float()
    adv = torch.randn(T, K * B, generator=gen) * scale
    ret = torch.randn(T, K * B, generator=gen) * scale
    return buf, adv, ret


def _member_rows(x: torch.Tensor, i: int) -> torch.Tensor:
    """Member i's transitions of a (T, K*B, ...) rollout tensor, flattened."""
    part = x[:, i * B : (i + 1) * B]
    return part.reshape(T * B, *part.shape[2:])


def _actor_critic_update(algo: str):
    """Two updates of K members through the trainer's own update function; by hand: the loss on
    a plain module, ``clip_grad_norm_``, ``torch.optim`` step. Returns (pop, references, norms)."""
    torch.manual_seed(0)
    singles = [ActorCriticPolicy(D, A, (16, 16)) for _ in range(K)]
    pop = PopulationActorCritic([copy.deepcopy(m) for m in singles])
    if algo == "ppo":
        # one minibatch of the whole rollout, one epoch: the trainer's shuffle only reorders rows
        cfg = PPOConfig(num_minibatches=1, update_epochs=1, max_grad_norm=0.5)
        opt = StackedAdam(pop.parameters(), K, lr=1e-3, eps=1e-5)
        refs = [torch.optim.Adam(m.parameters(), lr=1e-3, eps=1e-5) for m in singles]
        gens = [torch.Generator().manual_seed(i) for i in range(K)]
        by_hand = _ppo_by_hand
    else:
        cfg = A2CConfig(norm_adv=True, ent_coef=0.01, max_grad_norm=0.5)
        opt = a2c_mod.stacked_optimizer(pop, cfg)
        refs = [
            torch.optim.RMSprop(m.parameters(), lr=cfg.learning_rate, alpha=cfg.rms_alpha, eps=cfg.eps)
            for m in singles
        ]
        by_hand = _a2c_by_hand
    gen = torch.Generator().manual_seed(1)
    frozen = _weights(pop.members[2])
    norms = []
    for _update in range(2):
        buf, adv, ret = _rollout(gen)
        if algo == "ppo":
            ppo_mod.optimise(pop, opt, buf, adv, ret, cfg, gens, ACTIVE)
        else:
            a2c_mod.update_step(pop, opt, cfg, buf, adv, ret, ACTIVE)
        for i in range(2):
            rows = [
                _member_rows(x, i)
                for x in (buf.obs, buf.actions, buf.logprobs, buf.values, adv, ret, buf.valid)
            ]
            loss = by_hand(singles[i], cfg, *rows)
            refs[i].zero_grad()
            loss.backward()
            norms.append(float(nn.utils.clip_grad_norm_(singles[i].parameters(), cfg.max_grad_norm)))
            refs[i].step()
    assert all(torch.equal(a, b) for a, b in zip(_weights(pop.members[2]), frozen, strict=True))
    return pop, singles, norms, cfg


@pytest.mark.parametrize("algo", ALGOS)
def test_member_update_equals_the_update_computed_by_hand(algo):
    if algo == "dqn":
        _dqn_update_equals_by_hand()
        return
    pop, singles, norms, cfg = _actor_critic_update(algo)
    for i in range(2):
        _close(pop.members[i], singles[i])
    # both branches of the clip were taken: member 0 under the norm, member 1 over it
    assert max(norms[0::2]) < cfg.max_grad_norm < min(norms[1::2])


def _dqn_update_equals_by_hand():
    cfg = DQNConfig(
        hidden_sizes=[16, 16],
        batch_size=8,
        gradient_steps=2,
        target_update_every=1,
        tau=0.5,
        max_grad_norm=1.0,
    )
    torch.manual_seed(0)
    singles = [QPolicy(D, A, cfg.hidden_sizes, cfg.activation, dueling=cfg.dueling) for _ in range(K)]
    learner = dqn_mod._QLearner([copy.deepcopy(m) for m in singles], cfg, PopulationQ)
    gen = torch.Generator().manual_seed(1)
    rbs = []
    for s in SCALES:
        rb = ReplayBuffer(64, D, torch.device("cpu"))
        n = 40
        rb.add(
            torch.randn(n, D, generator=gen) * s,
            torch.randint(0, A, (n,), generator=gen),
            torch.randn(n, generator=gen) * s,
            torch.randn(n, D, generator=gen) * s,
            (torch.rand(n, generator=gen) > 0.2).float() * 0.9,
        )
        rbs.append(rb)
    gens = [torch.Generator().manual_seed(10 + i) for i in range(K)]
    hand_gens = [torch.Generator().set_state(g.get_state()) for g in gens]
    frozen = _weights(learner.q.members[2])
    learner.learn(rbs, gens, ACTIVE)
    norms = []
    for i in range(2):
        q, q_t = singles[i], copy.deepcopy(singles[i])
        opt = torch.optim.Adam(q.parameters(), lr=cfg.learning_rate)
        for _ in range(cfg.gradient_steps):
            s, a, r, s2, disc = rbs[i].sample(cfg.batch_size, hand_gens[i])
            with torch.no_grad():  # double DQN: the online net picks, the target net values
                target = r + disc * q_t(s2).gather(1, q(s2).argmax(1, keepdim=True)).squeeze(1)
            loss = nn.functional.smooth_l1_loss(q(s).gather(1, a[:, None]).squeeze(1), target)
            opt.zero_grad()
            loss.backward()
            norms.append(float(nn.utils.clip_grad_norm_(q.parameters(), cfg.max_grad_norm)))
            opt.step()
            with torch.no_grad():
                for p_t, p in zip(q_t.parameters(), q.parameters(), strict=True):
                    p_t.copy_(p_t + cfg.tau * (p - p_t))
        _close(learner.q.members[i], q)
        for x, y in zip(learner.q_target.parameters(), q_t.parameters(), strict=True):
            torch.testing.assert_close(x[i], y, rtol=1e-5, atol=1e-6)
    assert all(torch.equal(a, b) for a, b in zip(_weights(learner.q.members[2]), frozen, strict=True))
    assert max(norms[:2]) < cfg.max_grad_norm < min(norms[2:])


# ------------------------------------------------------------------ determinism and independence of K
@pytest.mark.parametrize("case", [*ALGOS, "ppo-target_kl"])
def test_same_seeds_bit_identical_and_a_member_is_its_population_of_one(case):
    """Fused same-market env: seeds [1, 2] twice -> identical; seed 2 alone (K = 1), alongside
    1, alongside 5, or alongside 7 and 9 -> identical weights and history."""
    train, cfg = _trainer(case)
    market = _market()

    def run(seeds):
        envs = [TradingVectorEnv(market, ENV, num_envs=8, seed=s) for s in seeds]
        return train(envs, cfg, seeds=seeds, device="cpu", progress=False)

    a, b, c, d, alone = run([1, 2]), run([1, 2]), run([5, 2]), run([7, 9, 2]), run([2])
    hist = [col for col in a[0].history.columns if col != "steps_per_s"]
    assert _same(a[0].policy, b[0].policy) and _same(a[1].policy, b[1].policy)
    assert a[0].history[hist].equals(b[0].history[hist]) and len(a[0].history) > 1
    assert not _same(a[0].policy, a[1].policy)
    for other in (c[1], d[2], alone[0]):
        assert _same(a[1].policy, other.policy)
        assert a[1].history[hist].equals(other.history[hist])
    assert alone[0].steps == 1024 and not alone[0].policy.training


def test_folds_x_seeds_fuse_per_fold_and_each_member_is_its_population_of_one():
    """Members ordered fold by fold: each fold's seeds share one fused env; members on
    different markets (no fusion between folds) are bit for bit their own runs of one."""
    m1, m2 = _market(3), _market(4, n_bars=500)
    train, cfg = _trainer("ppo")
    plan = [(m1, 1), (m1, 2), (m2, 3), (m2, 4)]

    def envs(p):
        return [TradingVectorEnv(m, ENV, num_envs=8, seed=s) for m, s in p]

    groups = MemberEnvs(envs(plan), [s for _, s in plan], torch.device("cpu"))
    assert [n for _, _, n in groups.groups] == [2, 2] and groups.n_fused == 4
    assert fuse_trading_envs(envs(plan[1:3]), [2, 3]) is None
    both = train(envs(plan), cfg, seeds=[1, 2, 3, 4], device="cpu", progress=False)
    for i in (1, 2):
        alone = train(envs(plan[i : i + 1]), cfg, seeds=[plan[i][1]], device="cpu", progress=False)
        assert _same(both[i].policy, alone[0].policy)


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
@pytest.mark.parametrize("algo", ALGOS)
def test_early_stopping_keeps_the_best_checkpoint_per_member_and_frees_nobody_else(algo):
    train, cfg = _trainer(algo)
    cfg = dict(cfg, total_steps=cfg["total_steps"] * 8)
    snapshots = []
    scores0 = iter([1.0, 5.0, 2.0, 3.0, 4.0] + [9.0] * 1000)

    def eval0(policy):
        snapshots.append(_weights(policy))
        return next(scores0)

    calls = []

    def eval1(policy):  # always improves: member 1 never stops
        calls.append(1)
        return float(len(calls))

    kw = dict(device="cpu", eval_every=1, progress=False)
    res = train([_cartpole(), _cartpole()], cfg, seeds=[0, 1], eval_fns=[eval0, eval1], patience=3, **kw)
    # evaluations 1.0, 5.0 (best), then 3 without improvement -> member 0 stops after the 5th
    assert len(snapshots) == 5 and res[0].best_score == 5.0
    assert all(torch.equal(a, b) for a, b in zip(_weights(res[0].policy), snapshots[1], strict=True))
    assert res[0].history["eval_score"].dropna().tolist() == [1.0, 5.0, 2.0, 3.0, 4.0]
    assert res[0].steps < res[1].steps == cfg["total_steps"]
    assert list(res[0].history.columns) == [
        "step",
        "episode_return",
        "policy_loss",
        "value_loss",
        "q_loss",
        "entropy",
        "eval_score",
        "steps_per_s",
    ]
    # member 1 is unaffected by member 0 stopping: the same as next to a member that never stops
    calls.clear()
    other = train([_cartpole(), _cartpole()], cfg, seeds=[9, 1], eval_fns=[None, eval1], **kw)
    assert _same(res[1].policy, other[1].policy) and other[0].steps == cfg["total_steps"]


class _NaNRewards(gym.vector.VectorWrapper):
    def step(self, actions):
        obs, rew, term, trunc, info = self.env.step(actions)
        return obs, rew * np.nan, term, trunc, info


@pytest.mark.parametrize("algo", ALGOS)
def test_a_diverging_member_raises_naming_agent_seed_and_update(algo):
    train, cfg = _trainer(algo)
    with pytest.raises(TrainingDivergedError) as info:
        train([_cartpole(), _NaNRewards(_cartpole())], cfg, seeds=[5, 6], device="cpu", progress=False)
    e = info.value
    assert (e.agent, e.seed) == (algo, 6) and e.update >= 1
    assert f"training.{algo}" in str(e) and "seed 6" in str(e)


def test_one_progress_line_for_the_population_summing_members(capsys):
    train, cfg = _trainer("ppo")
    train([_cartpole(), _cartpole(), _cartpole()], cfg, seeds=[0, 1, 2], device="cpu", progress=True)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err  # not a terminal and < 15 s: the final line only
    assert err[0].startswith("ppo x3") and "3072/3072" in err[0] and "active=" in err[0]


def test_bad_member_arguments_are_rejected():
    train, cfg = _trainer("ppo")
    with pytest.raises(AgentConfigError, match="needs at least one member env"):
        train([], cfg, seeds=[], device="cpu", progress=False)
    with pytest.raises(AgentConfigError, match="one seed per member"):
        train([_cartpole(), _cartpole()], cfg, seeds=[1], device="cpu", progress=False)
    with pytest.raises(AgentConfigError, match="one eval_fn"):
        train([_cartpole()], cfg, seeds=[1], device="cpu", eval_fns=[None, None], progress=False)
    with pytest.raises(AgentConfigError, match="member 1 \\(seed 2\\) has 2 lanes"):
        train([_cartpole(4), _cartpole(2)], cfg, seeds=[1, 2], device="cpu", progress=False)
    with pytest.raises(ValueError, match="Discrete"):
        envs = gym.make_vec("Pendulum-v1", num_envs=2, vectorization_mode="sync")
        train([envs], {"total_steps": 64}, seeds=[0], device="cpu", progress=False)


@pytest.mark.parametrize("k", [2, 5])
def test_per_member_clipping_is_the_same_bits_in_a_population_of_any_size(k):
    """``clip_grad_norm_per_member`` (every trainer's clipping): member i's clipped gradient and
    norm are bit for bit those of a population of one, and equal ``nn.utils.clip_grad_norm_``
    on the member's own gradients to float rounding."""
    gen = torch.Generator().manual_seed(0)
    # the parameter shapes of a portfolio actor-critic (2 x 32 hidden, 5 assets, window 8, 4 features)
    shapes = [(32, 33), (32,), (32, 32), (32,), (1, 32), (1,), (1, 33), (1,), (1, 1), (1,)]
    shapes += [(32, 33), (32,), (32, 32), (32,), (32, 33), (32,), (1, 32), (1,)]
    member_scale = torch.logspace(-5, 2, k)  # small members are not clipped, large ones are

    def grads(n):
        ps = [torch.zeros(n, *s, requires_grad=True) for s in shapes]
        for p in ps:
            spread = 10 ** (0.5 * torch.randn(1, generator=gen))  # per parameter
            scale = member_scale[:n].reshape(-1, *[1] * (p.dim() - 1)) * spread
            p.grad = torch.randn(p.shape, generator=gen) * scale
        return ps

    stack = grads(k)
    ones = [[torch.zeros(1, *s, requires_grad=True) for s in shapes] for _ in range(k)]
    for i in range(k):
        for p, q in zip(ones[i], stack, strict=True):
            p.grad = q.grad[i : i + 1].clone()
    plain = [[torch.zeros(s, requires_grad=True) for s in shapes] for _ in range(k)]
    for i in range(k):
        for p, q in zip(plain[i], stack, strict=True):
            p.grad = q.grad[i].clone()
    norms = clip_grad_norm_per_member(stack, 0.5)
    for i in range(k):
        norm_one = clip_grad_norm_per_member(ones[i], 0.5)
        norm_plain = nn.utils.clip_grad_norm_(plain[i], 0.5)
        assert torch.equal(norms[i], norm_one[0])
        torch.testing.assert_close(norms[i], norm_plain, rtol=1e-6, atol=0)
        for p, q, r in zip(stack, ones[i], plain[i], strict=True):
            assert torch.equal(p.grad[i], q.grad[0])
            torch.testing.assert_close(p.grad[i], r.grad, rtol=1e-6, atol=1e-9)
    assert float(norms[0]) < 0.5 < float(norms[-1])
