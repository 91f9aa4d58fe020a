"""Fast unit tests of the agents' shared machinery (configs, env adapter, buffers, GAE, policies)."""

from __future__ import annotations

import json
import re

import gymnasium as gym
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from reinforce_strategy_creator.agents import (
    A2CConfig,
    AgentConfigError,
    DQNConfig,
    PolicySpecError,
    PPOConfig,
    build_policy,
)
from reinforce_strategy_creator.agents.buffers import NStepAccumulator, ReplayBuffer, compute_gae
from reinforce_strategy_creator.agents.evaluate import evaluate_episodes
from reinforce_strategy_creator.agents.networks import ActorCriticPolicy, QPolicy
from reinforce_strategy_creator.agents.vec_env import Step, TensorVecEnv

torch.set_num_threads(1)
CPU = torch.device("cpu")


# ----------------------------------------------------------------------------- configs
@pytest.mark.parametrize(
    "cls,params,needle",
    [
        (PPOConfig, {"clip_coef": 0}, "training.ppo.clip_coef: Input should be greater than 0"),
        (PPOConfig, {"clip_cof": 0.1}, "training.ppo.clip_cof"),
        (PPOConfig, {"hidden_sizes": [64, -1]}, "training.ppo.hidden_sizes"),
        (A2CConfig, {"optimizer": "sgd"}, "training.a2c.optimizer"),
        (A2CConfig, {"gamma": 1.5}, "training.a2c.gamma: Input should be less than or equal to 1"),
        (DQNConfig, {"tau": 0.0}, "training.dqn.tau"),
        (DQNConfig, {"batch_size": 2.5}, "training.dqn.batch_size"),
        (DQNConfig, {"double": "yes"}, "training.dqn.double"),
    ],
)
def test_config_errors_name_the_parameter(cls, params, needle):
    with pytest.raises(AgentConfigError, match=re.escape(needle)):
        cls.from_params(params)
    assert issubclass(AgentConfigError, ValueError)


def test_config_from_params_roundtrip_and_custom_prefix():
    cfg = PPOConfig.from_params({"hidden_sizes": [32, 16], "clip_coef": 0.1})
    assert cfg.hidden_sizes == (32, 16) and cfg.clip_coef == 0.1
    assert PPOConfig.from_params(cfg.to_dict()) == cfg
    with pytest.raises(AgentConfigError, match="my.stage.ent_coef"):
        PPOConfig.from_params({"ent_coef": -1}, prefix="my.stage")


# ----------------------------------------------------------------------------- GAE
def _gae_reference(r, v, nv, term, done, valid, gamma, lam):
    T, B = r.shape
    adv = np.zeros((T, B))
    for b in range(B):
        nxt = 0.0
        for t in reversed(range(T)):
            delta = r[t, b] + gamma * nv[t, b] * (1 - term[t, b]) - v[t, b]
            a = delta + gamma * lam * (1 - done[t, b]) * nxt
            a = a * valid[t, b]
            adv[t, b] = a
            nxt = a
    return adv


@settings(max_examples=40, deadline=None)
@given(
    T=st.integers(1, 12),
    B=st.integers(1, 4),
    gamma=st.floats(0.0, 1.0),
    lam=st.floats(0.0, 1.0),
    seed=st.integers(0, 10_000),
)
def test_gae_matches_reference(T, B, gamma, lam, seed):
    rng = np.random.default_rng(seed)
    r, v, nv = (rng.normal(size=(T, B)) for _ in range(3))
    term = rng.random((T, B)) < 0.2
    trunc = (rng.random((T, B)) < 0.2) & ~term
    done = term | trunc
    valid = rng.random((T, B)) < 0.9
    f = lambda x: torch.as_tensor(np.asarray(x, dtype=np.float32))  # noqa: E731
    adv, ret = compute_gae(f(r), f(v), f(nv), f(term), f(done), f(valid), gamma, lam)
    ref = _gae_reference(r, v, nv, term, done, valid, gamma, lam)
    np.testing.assert_allclose(adv.numpy(), ref, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(ret.numpy(), ref + v, rtol=1e-4, atol=1e-4)


def test_gae_bootstraps_truncation_not_termination():
    one = torch.ones(1, 1)
    zero = torch.zeros(1, 1)
    # terminated: advantage = r - V
    adv, _ = compute_gae(one, zero, 10 * one, one, one, one, 0.9, 0.95)
    assert adv.item() == pytest.approx(1.0)
    # truncated: advantage = r + gamma * V(final obs) - V
    adv, _ = compute_gae(one, zero, 10 * one, zero, one, one, 0.9, 0.95)
    assert adv.item() == pytest.approx(10.0)


# ----------------------------------------------------------------------------- env adapter
def _collect(mode, actions_seq, seed=3):
    envs = gym.make_vec(
        "CartPole-v1", num_envs=3, vectorization_mode="sync", vector_kwargs={"autoreset_mode": mode}
    )
    env = TensorVecEnv(envs, CPU)
    obs = env.reset(seed=seed)
    out = []
    for a in actions_seq:
        step = env.step(torch.as_tensor(a))
        for lane in range(3):
            if step.valid[lane]:
                out.append(
                    (
                        lane,
                        obs[lane].clone(),
                        int(a[lane]),
                        float(step.reward[lane]),
                        bool(step.terminated[lane]),
                        bool(step.truncated[lane]),
                        step.next_obs[lane].clone(),
                    )
                )
        obs = step.obs
    return out


def test_adapter_next_step_and_same_step_give_same_valid_transitions():
    """Both autoreset conventions must yield the same real transitions per lane."""
    rng = np.random.default_rng(0)
    actions = [rng.integers(0, 2, size=3) for _ in range(120)]
    a = _collect(gym.vector.AutoresetMode.NEXT_STEP, actions)
    b = _collect(gym.vector.AutoresetMode.SAME_STEP, actions)
    # NEXT_STEP wastes one step per episode end, so compare per-lane prefixes
    for lane in range(3):
        la = [t for t in a if t[0] == lane]
        lb = [t for t in b if t[0] == lane]
        n = min(len(la), len(lb))
        assert n > 60
        ends = 0
        for x, y in zip(la[:n], lb[:n]):
            # the action stream differs after the first reset (NEXT_STEP consumes an action),
            # so compare only until the first episode end of the lane
            assert torch.equal(x[1], y[1]) and x[3:6] == y[3:6] and torch.equal(x[6], y[6])
            if x[4] or x[5]:
                ends += 1
                break
        assert ends == 1


def test_adapter_marks_next_step_reset_transition_invalid():
    envs = gym.make_vec("CartPole-v1", num_envs=2, vectorization_mode="sync")
    env = TensorVecEnv(envs, CPU)
    assert env.mode == "next_step"
    env.reset(seed=0)
    seen_invalid = False
    prev_done = torch.zeros(2, dtype=torch.bool)
    for _ in range(200):
        step = env.step(torch.zeros(2, dtype=torch.long))
        assert torch.equal(step.valid, ~prev_done)
        seen_invalid |= bool((~step.valid).any())
        prev_done = step.done & step.valid
    assert seen_invalid


def test_evaluate_episodes_counts_first_episode_only():
    envs = gym.make_vec("CartPole-v1", num_envs=5, vectorization_mode="sync")
    pol = ActorCriticPolicy(4, 2)
    r = evaluate_episodes(envs, pol, seed=1)
    assert r.shape == (5,) and np.all(r >= 8) and np.all(r <= 500)


# ----------------------------------------------------------------------------- buffers
def _nstep_reference(rew, done, term, valid, n, gamma):
    """Per lane, for every valid start t with a full window: (R, k) by brute force."""
    T = len(rew)
    out = []
    for t in range(T - n + 1):
        if not valid[t]:
            continue
        R, k = 0.0, 0
        for i in range(n):
            R += gamma**i * rew[t + i]
            k = i
            if done[t + i]:
                break
        out.append((t, R, t + k, gamma ** (k + 1) * (0.0 if term[t + k] else 1.0)))
    return out


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 4), T=st.integers(4, 20), seed=st.integers(0, 1000))
def test_nstep_accumulator_matches_bruteforce(n, T, seed):
    rng = np.random.default_rng(seed)
    gamma = 0.9
    rew = rng.normal(size=T)
    term = rng.random(T) < 0.15
    trunc = (rng.random(T) < 0.15) & ~term
    done = term | trunc
    valid = np.ones(T, dtype=bool)
    valid[1:] = ~done[:-1]  # NEXT_STEP convention
    acc = NStepAccumulator(n, 1, 1, gamma, CPU)
    got = []
    for t in range(T):
        step = Step(
            obs=torch.tensor([[t + 1.0]]),
            reward=torch.tensor([rew[t]], dtype=torch.float32),
            terminated=torch.tensor([bool(term[t])]),
            truncated=torch.tensor([bool(trunc[t])]),
            next_obs=torch.tensor([[100.0 + t]]),
            valid=torch.tensor([bool(valid[t])]),
        )
        ready = acc.push(torch.tensor([[float(t)]]), torch.tensor([0]), step)
        if ready is not None and ready[0].shape[0]:
            o, _, R, nxt, disc = ready
            got.append((int(o.item()), R.item(), int(nxt.item()) - 100, disc.item()))
    ref = _nstep_reference(rew, done, term, valid, n, gamma)
    assert len(got) == len(ref)
    for g, r in zip(got, ref):
        assert g[0] == r[0] and g[2] == r[2]
        assert g[1] == pytest.approx(r[1], rel=1e-5, abs=1e-5)
        assert g[3] == pytest.approx(r[3], rel=1e-6)


def test_replay_buffer_wraps_and_samples_reproducibly():
    rb = ReplayBuffer(5, 2, CPU)
    for i in range(3):
        x = torch.full((3, 2), float(i))
        rb.add(x, torch.full((3,), i), torch.full((3,), float(i)), x, torch.ones(3))
    assert len(rb) == 5 and rb.pos == 4
    assert sorted(rb.returns.tolist()) == [1.0, 1.0, 2.0, 2.0, 2.0]
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    assert all(torch.equal(a, b) for a, b in zip(rb.sample(8, g1), rb.sample(8, g2)))


# ----------------------------------------------------------------------------- policies
@pytest.mark.parametrize(
    "make",
    [
        lambda: ActorCriticPolicy(6, 3, (16, 8)),
        lambda: QPolicy(6, 3, (16,), dueling=True),
        lambda: QPolicy(6, 3, (16,), dueling=False),
    ],
)
def test_build_policy_rebuilds_architecture(make):
    pol = make()
    spec = json.loads(json.dumps(pol.spec))
    clone = build_policy(spec)
    clone.load_state_dict(pol.state_dict())
    obs = torch.randn(10, 6)
    assert torch.equal(pol.act(obs, deterministic=True), clone.act(obs, deterministic=True))
    assert pol.act(obs).dtype == torch.long and pol.act(obs).shape == (10,)


def test_build_policy_rejects_bad_spec():
    with pytest.raises(PolicySpecError, match="obs_dim"):
        build_policy({"kind": "q"})
    with pytest.raises(PolicySpecError, match="kind"):
        build_policy(
            {
                "kind": "transformer",
                "obs_dim": 3,
                "n_actions": 2,
                "network": {"hidden_sizes": [4], "activation": "relu"},
            }
        )
