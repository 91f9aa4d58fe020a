"""Training refuses bad parameters before anything trains, stops on a NaN loss naming agent, seed
and update, and the optional stable-baselines3 backend ships the project's own artifact."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from reinforce_strategy_creator.agents import TrainingDivergedError, build_policy
from reinforce_strategy_creator.datasets import PolicyArtifactDataset
from reinforce_strategy_creator.errors import InputError
from reinforce_strategy_creator.params.base import ParameterError
from reinforce_strategy_creator.params.training import TrainingParams
from reinforce_strategy_creator.pipelines.training import nodes
from reinforce_strategy_creator.training import train_agent
from tests.support.training import AGENTS, COMMON, ENV, plan

FEATURES = {"features": {"indicators": {"logret": {"periods": [1]}}}}

torch.set_num_threads(1)


@pytest.mark.parametrize(
    "agent,patch,needle",
    [
        ("ppo", {"algorithm": "ppx"}, "training.ppo.algorithm: 'ppx' is not a known algorithm"),
        ("ppo", {"backend": "jax"}, "training.ppo.backend: 'jax' is not a known backend"),
        ("ppo", {"learning_rate": 0.0}, "training.ppo.learning_rate: Input should be greater than 0"),
        ("a2c", {"learning_rate": -1e-3}, "training.a2c.learning_rate: Input should be greater than 0"),
        ("dqn", {"learning_rate": 0}, "training.dqn.learning_rate: Input should be greater than 0"),
        ("ppo", {"num_minibatches": 10_000}, "training.ppo.num_minibatches=10000 is larger than the rollout"),
        ("dqn", {"batch_size": 2048}, "training.dqn.batch_size=2048 is larger than training.dqn.buffer_size"),
        ("ppo", {"gamma": 0.0}, "training.ppo.gamma: Input should be greater than 0"),
        ("a2c", {"gamma": 1.01}, "training.a2c.gamma: Input should be less than or equal to 1"),
        ("dqn", {"gamma": 0}, "training.dqn.gamma: Input should be greater than 0"),
        ("ppo", {"hidden_sizes": []}, "training.ppo.hidden_sizes: must be a non-empty list"),
        ("dqn", {"hidden_sizes": []}, "training.dqn.hidden_sizes: must be a non-empty list"),
        (
            "ppo",
            {"backend": "sb3", "algorithm": "sac"},
            "training.ppo.algorithm='sac' needs continuous actions",
        ),
        ("ppo", {"backend": "sb3", "learning_rate": 0}, "training.ppo.learning_rate must be > 0"),
        ("ppo", {"backend": "sb3", "gamma": 0}, "training.ppo.gamma must be in (0, 1]"),
        (
            "ppo",
            {"backend": "sb3", "n_steps": 4, "batch_size": 64},
            "training.ppo.batch_size=64 is larger than the rollout",
        ),
        ("ppo", {"backend": "sb3", "num_steps": 4}, "training.ppo.num_steps"),
        ("ppo", {"backend": "sb3", "hidden_sizes": []}, "training.ppo.hidden_sizes"),
    ],
)
def test_bad_parameter_fails_before_any_training(tables, monkeypatch, agent, patch, needle):
    """Every agent block is validated first: a bad dqn block stops the ppo node before it trains."""
    if patch.get("backend") == "sb3":
        patch = {k: v for k, v in patch.items() if k != "num_steps"} | (
            {"num_steps": 4} if "num_steps" in patch else {}
        )
        base = {"algorithm": AGENTS[agent]["algorithm"], "hidden_sizes": [16, 16]}
    else:
        base = AGENTS[agent]
    training = {"common": COMMON, **AGENTS, agent: {**base, **patch}}
    trained = []
    monkeypatch.setattr(
        "reinforce_strategy_creator.training.make_train_env", lambda *a, **k: trained.append(1)
    )
    train, val, scaler = tables
    other = "a2c" if agent != "a2c" else "ppo"  # the node of a DIFFERENT, valid agent
    with pytest.raises(ParameterError, match=re.escape(needle)) as info:
        nodes.train_node(other)(train, val, scaler, ENV, training, FEATURES)
    assert isinstance(info.value, InputError)
    assert trained == []
    with pytest.raises(ParameterError, match=re.escape(needle)):
        TrainingParams.parse(training)


def test_test_budgets_validate():
    assert TrainingParams.parse({"common": COMMON, **AGENTS}).names == list(AGENTS)


@pytest.mark.parametrize("agent", ["ppo", "a2c", "dqn"])
def test_nan_loss_stops_training_naming_agent_seed_update(tables, agent, tmp_path, monkeypatch):
    """Injected NaN advantages (PPO/A2C) or overflowing rewards (DQN): the node raises, nothing is written."""
    import importlib

    train, val, scaler = tables
    bad = train
    block = {**AGENTS[agent], "total_steps": 1024}
    if agent == "dqn":
        block |= {"learning_starts": 64, "batch_size": 32, "reward_scale": 1e39}  # float32 overflow -> inf
    else:
        population = importlib.import_module("reinforce_strategy_creator.agents.population")
        real = population.compute_gae

        def poisoned(*args, **kwargs):
            adv, ret = real(*args, **kwargs)
            return adv * float("nan"), ret

        monkeypatch.setattr(population, "compute_gae", poisoned)
    ds = PolicyArtifactDataset(filepath=str(tmp_path / "policy"), version=None)
    with pytest.raises(TrainingDivergedError) as info:
        bundle, _ = nodes.train_node(agent)(
            bad, val, scaler, ENV, {"common": COMMON, **AGENTS, agent: block}, FEATURES
        )
        ds.save(bundle)
    e = info.value
    assert (e.agent, e.seed) == (agent, COMMON["seeds"][0]) and e.update >= 1
    msg = str(e)
    assert f"training.{agent}" in msg and f"seed {e.seed}" in msg and f"update {e.update}" in msg
    assert not (tmp_path / "policy").exists()


def test_sb3_ppo_trains_and_round_trips_the_artifact(tables, tmp_path):
    pytest.importorskip("stable_baselines3")
    from reinforce_strategy_creator.agents import sb3_backend

    train, val, scaler = tables
    block = {
        "algorithm": "ppo",
        "backend": "sb3",
        "hidden_sizes": [16, 16],
        "n_steps": 32,
        "batch_size": 64,
        "n_epochs": 2,
        "total_steps": 512,
        "num_envs": 4,
        "eval_every": 1,
    }
    bundle, hist = train_agent(train, val, scaler, ENV, plan("ppo", block=block))
    assert bundle.spec["backend"] == "sb3" and bundle.spec["algorithm"] == "ppo"
    assert hist["eval_score"].notna().any() and set(hist["seed"]) == {0, 1}
    ds = PolicyArtifactDataset(filepath=str(tmp_path / "p"), version=None)
    ds.save(bundle)
    loaded = PolicyArtifactDataset(filepath=str(tmp_path / "p"), version=None).load()
    seed = loaded.spec["best_seed"]
    pol = build_policy(loaded.spec)
    pol.load_state_dict(loaded.state_dicts[seed])
    obs = torch.randn(64, loaded.spec["obs_dim"])
    ref = build_policy(bundle.spec)
    ref.load_state_dict(bundle.state_dicts[seed])
    assert torch.equal(pol.act(obs, deterministic=True), ref.act(obs, deterministic=True))
    assert hasattr(sb3_backend, "train_sb3")


@pytest.mark.parametrize("algo", ["ppo", "a2c", "dqn"])
def test_sb3_conversion_reproduces_deterministic_actions(tables, algo):
    """Converted weights act exactly as SB3's predict(deterministic=True) on a batch."""
    pytest.importorskip("stable_baselines3")
    from stable_baselines3.common.vec_env import DummyVecEnv

    from reinforce_strategy_creator.agents.sb3_backend import Sb3Config, build_model, to_project_policy
    from reinforce_strategy_creator.env import EnvConfig, MarketArrays, TradingEnv

    train, _, _ = tables
    market = MarketArrays.from_frame(train)
    cfg_env = EnvConfig.from_params({**ENV, "positions": [-1, 0, 1]})
    kw = {"learning_starts": 10, "buffer_size": 500, "batch_size": 16} if algo == "dqn" else {"n_steps": 16}
    if algo == "ppo":
        kw["batch_size"] = 32
    cfg = Sb3Config.from_params(
        algo, {"hidden_sizes": [32, 8], "activation": "relu", "total_steps": 256, **kw}, f"training.{algo}", 2
    )
    venv = DummyVecEnv([lambda i=i: TradingEnv(market, cfg_env, seed=i) for i in range(2)])
    model = build_model(cfg, venv, seed=0, device="cpu")
    model.learn(256)
    obs_dim = venv.observation_space.shape[0]
    ours = to_project_policy(model, cfg, obs_dim, venv.action_space.n)
    rebuilt = build_policy(ours.spec)  # what evaluation/deployment do with an artifact
    rebuilt.load_state_dict(ours.state_dict())
    obs = np.random.default_rng(0).normal(size=(256, obs_dim)).astype(np.float32) * 3
    sb3_actions, _ = model.predict(obs, deterministic=True)
    mine = rebuilt.act(torch.as_tensor(obs), deterministic=True).numpy()
    np.testing.assert_array_equal(mine, sb3_actions)
