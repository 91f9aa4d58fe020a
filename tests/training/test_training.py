"""The training library and node: selection, reproducibility, honesty, artifacts, errors."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from reinforce_strategy_creator import training as training_lib
from reinforce_strategy_creator.agents import build_policy
from reinforce_strategy_creator.datasets.policy_artifact import PolicyArtifactDataset
from reinforce_strategy_creator.env import EnvConfig, MarketArrays, replay
from reinforce_strategy_creator.evaluation.metrics import bar_returns, performance_metrics
from reinforce_strategy_creator.params.base import ParameterError
from reinforce_strategy_creator.training import TrainingConfigError, train_agent, validation_sharpe
from tests.support.training import COMMON, ENV, plan

torch.set_num_threads(1)


def _run(tables, agent="ppo", common=None, env=None, **kw):
    train, val, scaler = tables
    return train_agent(train, val, scaler, env or ENV, plan(agent, common), **kw)


def _val_obs(tables, env=ENV):
    """Every validation observation a replay would show a flat account (for comparing actions)."""
    m = MarketArrays.from_frame(tables[1])
    cfg = EnvConfig.from_params(env)
    seen = []
    replay(m, cfg, lambda o: (seen.append(o.clone()), torch.zeros(o.shape[0], dtype=torch.long))[1])
    return torch.cat(seen)


# ------------------------------------------------------------------ bundle and spec
@pytest.mark.parametrize("agent", ["ppo", "a2c", "dqn"])
def test_bundle_spec_and_history(tables, agent):
    bundle, hist = _run(tables, agent)
    spec = bundle.spec
    for key in (
        "algorithm",
        "kind",
        "network",
        "obs_dim",
        "n_actions",
        "feature_names",
        "window",
        "positions",
        "environment",
        "scaler_sha256",
        "data_fingerprint",
        "train_start",
        "train_end",
        "package_version",
        "seeds",
        "best_seed",
        "validation_scores",
        "validation_metric",
    ):
        assert key in spec, key
    train, val, scaler = tables
    assert spec["algorithm"] == agent and spec["seeds"] == [0, 1] and bundle.seeds == [0, 1]
    assert spec["feature_names"] == ["feat_logret_1", "feat_logret_5", "feat_range"]
    assert spec["obs_dim"] == 8 * 3 + 3 and spec["n_actions"] == 2 and spec["window"] == 8
    assert spec["environment"] == EnvConfig.from_params(ENV).to_params()
    assert spec["data_fingerprint"] == training_lib.data_fingerprint(train)
    assert spec["scaler_sha256"] == training_lib.scaler_sha256(scaler)
    assert (
        spec["train_start"] == train.index[0].isoformat() and spec["train_end"] == train.index[-1].isoformat()
    )
    scores = {int(k): v for k, v in spec["validation_scores"].items()}
    assert spec["best_seed"] == max(scores, key=scores.get)
    assert spec["validation_metric"] == "sharpe"
    # history: seed + TrainResult.history columns, the best eval per seed is the recorded score
    assert list(hist.columns[:2]) == ["seed", "step"] and "eval_score" in hist and "steps_per_s" in hist
    assert sorted(hist["seed"].unique()) == [0, 1]
    for s in (0, 1):
        h = hist[hist.seed == s]
        assert h["step"].is_monotonic_increasing
        assert h["eval_score"].max() == pytest.approx(scores[s], abs=0)


def test_validation_sharpe_uses_evaluation_metrics(tables):
    m = MarketArrays.from_frame(tables[1])
    cfg = EnvConfig.from_params(ENV)

    class Const(torch.nn.Module):
        def __init__(self, a):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))
            self.a = a

        def act(self, obs, deterministic=True):
            return torch.full((obs.shape[0],), self.a, dtype=torch.long)

    bt = replay(m, cfg, lambda o: torch.ones(1, dtype=torch.long))
    expected = performance_metrics(bar_returns(bt.lane(0)["equity"]), periods_per_year=252)["sharpe"]
    assert validation_sharpe(Const(1), m, cfg, 252.0) == pytest.approx(expected, rel=1e-12)
    assert math.isfinite(expected) and expected != 0
    assert validation_sharpe(Const(0), m, cfg, 252.0) == 0.0  # cash: zero returns, Sharpe 0 not NaN


# ------------------------------------------------------------------ checkpoint selection
def test_early_stopping_keeps_best_validation_checkpoint(tables):
    scripted = [0.1, 0.5, 0.2, 0.3, 0.05, 0.9, 0.9]
    seen: list[dict] = []

    def score_fn(policy):
        seen.append({k: v.detach().clone() for k, v in policy.state_dict().items()})
        return scripted[len(seen) - 1]

    bundle, hist = _run(
        tables, "ppo", common={"seeds": [3], "total_steps": 32 * 8 * 10, "patience": 3}, score_fn=score_fn
    )
    # evals: 0.1 (best), 0.5 (best), 0.2, 0.3, 0.05 -> 3 without improvement -> stop after eval 5
    assert len(seen) == 5
    assert hist["eval_score"].dropna().tolist() == scripted[:5]
    assert bundle.spec["validation_scores"] == {"3": 0.5}
    best = seen[1]
    assert not all(torch.equal(best[k], seen[-1][k]) for k in best)  # weights moved after the best
    for k, v in bundle.state_dicts[3].items():
        assert torch.equal(v, best[k]), k


def test_best_seed_is_argmax_of_validation_scores(tables):
    it = iter([0.2, 0.1, 0.7, 0.3])

    bundle, _ = _run(
        tables,
        "ppo",
        # one seed after the other, so that the scripted scores go to seed 5 first (in a population
        # the members' evaluations interleave)
        common={"seeds": [5, 9], "total_steps": 32 * 8 * 2, "eval_every": 1, "population": False},
        score_fn=lambda p: next(it),
    )
    assert bundle.spec["validation_scores"] == {"5": 0.2, "9": 0.7}
    assert bundle.spec["best_seed"] == 9


# ------------------------------------------------------------------ honesty
def test_validation_data_never_produces_gradients(tables):
    """Perturbing every validation price changes the scores but not one loss or return."""
    train, val, scaler = tables
    noisy = val.copy()
    rng = np.random.default_rng(0)
    for c in ("Open", "High", "Low", "Close"):
        noisy[c] = noisy[c] * np.exp(rng.normal(0, 0.02, len(noisy)))
    for c in [c for c in val.columns if c.startswith("feat_")]:
        noisy[c] = rng.normal(0, 1, len(noisy)).astype(np.float32)
    common = {**COMMON, "seeds": [0], "total_steps": 32 * 8 * 6}
    _, h1 = train_agent(train, val, scaler, ENV, plan("ppo", common))
    _, h2 = train_agent(train, noisy, scaler, ENV, plan("ppo", common))
    learn_cols = ["step", "episode_return", "policy_loss", "value_loss", "entropy"]
    pd.testing.assert_frame_equal(h1[learn_cols], h2[learn_cols])
    assert not h1["eval_score"].equals(h2["eval_score"])


def test_train_env_sees_only_train_rows(tables, monkeypatch):
    train, val, _ = tables
    markets = []
    real = training_lib.make_train_env

    def spy(market, config, num_envs, seed):
        markets.append(market)
        return real(market, config, num_envs, seed)

    monkeypatch.setattr(training_lib, "make_train_env", spy)
    _run(tables, "dqn")
    assert len(markets) == 2  # one per seed
    for m in markets:
        assert m.index.equals(train.index) and m.index.max() < val.index.min()
        np.testing.assert_array_equal(m.close, train["Close"].to_numpy())


def test_validation_must_follow_train(tables):
    train, val, scaler = tables
    with pytest.raises(TrainingConfigError, match="model_input_validation"):
        train_agent(val, train, scaler, ENV, plan("ppo"))


# ------------------------------------------------------------------ reproducibility
@pytest.mark.parametrize("agent", ["ppo", "dqn"])
def test_same_seed_same_weights_and_history(tables, agent):
    b1, h1 = _run(tables, agent)
    b2, h2 = _run(tables, agent)
    for s in b1.seeds:
        for k in b1.state_dicts[s]:
            assert torch.equal(b1.state_dicts[s][k], b2.state_dicts[s][k])
    pd.testing.assert_frame_equal(h1.drop(columns="steps_per_s"), h2.drop(columns="steps_per_s"))
    assert b1.spec == b2.spec
    k0 = next(iter(b1.state_dicts[0]))
    assert not torch.equal(b1.state_dicts[0][k0], b1.state_dicts[1][k0])  # seeds differ


# ------------------------------------------------------------------ artifact round trip
def test_artifact_round_trip_rebuilds_policy_that_acts_identically(tables, tmp_path):
    bundle, _ = _run(tables, "ppo")
    ds = PolicyArtifactDataset(filepath=str(tmp_path / "ppo_policy"), version=None)
    ds.save(bundle)
    loaded = PolicyArtifactDataset(filepath=str(tmp_path / "ppo_policy")).load()
    assert loaded.spec["seeds"] == [0, 1] and loaded.spec["best_seed"] == bundle.spec["best_seed"]
    obs = _val_obs(tables)
    m = MarketArrays.from_frame(tables[1])
    cfg = EnvConfig.from_params(loaded.spec["environment"])
    for s in bundle.seeds:
        original = build_policy(bundle.spec)
        original.load_state_dict(bundle.state_dicts[s])
        rebuilt = build_policy(loaded.spec)  # JSON spec only: no training objects
        rebuilt.load_state_dict(loaded.state_dicts[s])
        rebuilt.eval()
        assert torch.equal(rebuilt.act(obs, deterministic=True), original.act(obs, deterministic=True))
        # the stored weights are the checkpoint that was scored: re-scoring reproduces the spec
        score = validation_sharpe(rebuilt, m, cfg, loaded.spec["periods_per_year"])
        assert score == loaded.spec["validation_scores"][str(s)]


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize(
    "common,agent,match",
    [
        ({"seeds": []}, {}, r"training\.common\.seeds"),
        ({"seeds": [1, 1]}, {}, r"training\.common\.seeds"),
        ({"num_envs": 0}, {}, r"training\.common\.num_envs"),
        ({"patience": -1}, {}, r"training\.common\.patience"),
        ({"bogus": 1}, {}, r"training\.common\.bogus"),
        ({}, {"eval_every": 0}, r"training\.ppo\.eval_every"),
        ({}, {"clip_coef": 0}, r"training\.ppo\.clip_coef"),
        ({}, {"not_a_key": 1}, r"training\.ppo\.not_a_key"),
        ({}, {"algorithm": "sac"}, r"training\.ppo\.algorithm"),
        ({"device": "tpu"}, {}, r"training\.common\.device"),
    ],
)
def test_bad_parameters_name_the_dotted_key(common, agent, match):
    with pytest.raises(ParameterError, match=match):
        plan("ppo", common, {"algorithm": "ppo", **agent})


def test_missing_algorithm_is_explained():
    """A block named after no algorithm must say which algorithm it is."""
    with pytest.raises(
        ParameterError, match=r"training\.custom\.algorithm: 'custom' is not a known algorithm"
    ):
        plan("ppo", block={"num_steps": 8}, name="custom")
