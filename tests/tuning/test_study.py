"""A tiny real study (PPO, 2 folds, tiny budgets) on a planted market: what it writes, what it may
read, how it resumes, and how the walk-forward judge counts it."""

from __future__ import annotations

import pytest
import torch
import yaml

from reinforce_strategy_creator.experiments import deep_merge
from reinforce_strategy_creator.markets import make_market
from reinforce_strategy_creator.params.base import ParameterError
from reinforce_strategy_creator.params.training import TrainingParams
from reinforce_strategy_creator.params.tuning import TuningParams
from reinforce_strategy_creator.project_params import parameters
from reinforce_strategy_creator.tuning import evaluate_config, run_study, trial_plan, tuning_data

SPACE = {
    "learning_rate": {"type": "float", "low": 1e-4, "high": 3e-3, "log": True},
    "num_steps": {"type": "categorical", "choices": [32, 64]},
}


@pytest.fixture(scope="module")
def market(sp500):
    return make_market("momentum", sp500, seed=1, strength=0.5)


def _params(market, tmp_path, **tuning) -> dict:
    p = deep_merge(parameters("quick"), {"environment": market.environment})
    p["training"] = {"common": p["training"]["common"], "ppo": p["training"]["ppo"]}
    p["tuning"] = {
        "n_trials": 3,
        "folds": 2,
        "total_steps": 1024,
        "seeds": [0],
        "study_name": "tiny",
        "storage": str(tmp_path / "tiny.journal"),
        "pruner_startup_trials": 1,
        "search_space": SPACE,
        **tuning,
    }
    p["compute"] = {"backend": "sequential"}
    return p


def test_a_tiny_study_writes_parameters_training_accepts_and_counts_its_trials(market, tmp_path):
    torch.set_num_threads(1)
    p = _params(market, tmp_path)
    result = run_study(market.prices, p)
    s = result.summary
    t = s["trials"]
    assert t["complete"] + t["pruned"] == 3 and t["fail"] == t["running"] == t["waiting"] == 0
    assert s["trials_counted"] == 3 and s["trials_this_run"] == 3 and len(result.trials) == 3
    complete = result.trials[result.trials["state"] == "COMPLETE"]
    assert t["complete"] >= 1 and s["best_value"] == complete["value"].max()  # a pruned trial never wins
    assert [w["fold"] for w in s["validation_windows"]] == ["fold_4", "fold_5"]
    assert s["window"] == {"start": "2014-01-02", "end": "2016-12-30"}  # two validation years each
    assert s["trials_per_hour"] > 0 and s["storage_kind"] == "journal" and not s["heartbeat"]
    # the YAML merges over the parameters and training validates it as it is
    written = yaml.safe_load(yaml.safe_dump(result.best_params))
    assert set(written["training"]["ppo"]) == set(SPACE)
    merged = deep_merge(p, written)
    plan = TrainingParams.parse(merged["training"]).plan("ppo")
    assert plan.config.learning_rate == pytest.approx(s["best_params"]["learning_rate"])
    assert plan.config.num_steps == s["best_params"]["num_steps"]
    # the registry event carries the windows and the count the judge needs
    assert result.event["trials_counted"] == 3 and result.event["windows"][0]["start"] == "2014-01-02"


@pytest.mark.slow
def test_a_rerun_resumes_the_study_and_refuses_another_problem_under_its_name(market, tmp_path):
    torch.set_num_threads(1)
    p = _params(market, tmp_path, n_trials=2)
    assert run_study(market.prices, p).summary["trials_this_run"] == 2
    # a rerun resumes: nothing more for a finished study; more trials asked -> only the missing ones
    again = run_study(market.prices, p)
    assert again.summary["trials_this_run"] == 0 and again.summary["trials_counted"] == 2
    more = run_study(market.prices, deep_merge(p, {"tuning": {"n_trials": 3}}))
    assert more.summary["trials_this_run"] == 1 and more.summary["trials_counted"] == 3

    # the same study name with another search space is refused, not mixed in
    other = deep_merge(p, {"tuning": {"search_space": {"gamma": {"type": "float", "low": 0.8, "high": 0.9}}}})
    with pytest.raises(ParameterError, match=r"tuning\.study_name: the study 'tiny' .* another"):
        run_study(market.prices, other)


def test_a_trial_never_reads_a_test_window_or_the_paper_period(market, tmp_path):
    """Changing every bar after the last tuned validation window (the last fold's test year and
    the paper year) changes neither the data a trial may read nor its score; changing a bar of a
    validation window does (the check can fail)."""
    torch.set_num_threads(1)
    p = _params(market, tmp_path)
    tuning = TuningParams.parse(p["tuning"])
    data = tuning_data(market.prices, p, tuning)
    last = data.folds[-1].validation.end
    assert data.prices.index[-1] == last and all(f.test is None for f in data.folds)

    def score(prices):
        d = tuning_data(prices, p, tuning)
        plan = trial_plan(p["training"], tuning, {"learning_rate": 1e-3, "num_steps": 32})
        return d, evaluate_config(plan, d)

    base_data, base = score(market.prices)
    later = market.prices.copy()
    later.loc[later.index > last, ["Open", "High", "Low", "Close"]] *= 0.5
    later_data, after = score(later)
    assert base_data.prices.equals(later_data.prices) and base_data.features.equals(later_data.features)
    assert after == base

    inside = market.prices.copy()
    start = data.folds[-1].validation.start
    middle = start + (last - start) / 2  # a fall inside the window: even holding the market sees it
    inside.loc[(inside.index >= middle) & (inside.index <= last), ["Open", "High", "Low", "Close"]] *= 0.5
    _, changed = score(inside)
    assert changed["folds"][-1] != base["folds"][-1]


def test_a_diverged_fold_scores_the_floor_and_is_recorded(market, tmp_path, monkeypatch):
    from reinforce_strategy_creator import training
    from reinforce_strategy_creator.agents import TrainingDivergedError
    from reinforce_strategy_creator.tuning.objective import RUINED_SHARPE

    p = _params(market, tmp_path)
    tuning = TuningParams.parse(p["tuning"])
    data = tuning_data(market.prices, p, tuning)

    def diverge(*args, **kwargs):
        raise TrainingDivergedError("ppo", 0, 3)

    monkeypatch.setattr(training, "train_agent", diverge)
    reported = []
    out = evaluate_config(
        trial_plan(p["training"], tuning, {"learning_rate": 1e-3}), data, lambda v, s: reported.append((v, s))
    )
    assert out["value"] == RUINED_SHARPE and reported == [(RUINED_SHARPE, 0), (RUINED_SHARPE, 1)]
    assert [d["fold"] for d in out["diverged_folds"]] == ["fold_4", "fold_5"]
    assert "diverged" in out["diverged_folds"][0]["error"]


def _fails_on_the_third(trial) -> float:
    x = trial.suggest_float("x", 0.0, 1.0)
    if trial.number == 2:
        raise RuntimeError("a bug in trial 2")
    return x


def test_a_study_that_stops_with_an_error_still_has_its_looks_recorded(market, tmp_path):
    from kedro.io import DataCatalog
    from kedro.pipeline import node

    from reinforce_strategy_creator.datasets.deployment import TuningStudyLogDataset
    from reinforce_strategy_creator.deployment.registry import ModelRegistry
    from reinforce_strategy_creator.hooks import RecordStudyLooks

    p = _params(market, tmp_path, n_trials=5)
    with pytest.raises(RuntimeError, match="a bug in trial 2") as err:
        run_study(market.prices, p, objective=_fails_on_the_third)
    event = err.value.tuning_study_event
    assert event["trials_counted"] == 3 and event["interrupted"]  # 2 complete + the failed one
    registry = tmp_path / "registry.jsonl"
    catalog = DataCatalog({"tuning.study_event": TuningStudyLogDataset(str(registry))})
    RecordStudyLooks().on_node_error(err.value, node(len, "a", "b", name="tuning.run_study"), catalog)
    [recorded] = ModelRegistry(registry).tuning_studies()
    assert recorded["trials_counted"] == 3 and recorded["windows"] == event["windows"]


def test_the_median_pruner_stops_a_trial_after_a_bad_fold(market, tmp_path, monkeypatch):
    """The running mean is reported after each fold; a trial below the median of the earlier
    ones at its first fold is pruned there and trains no further fold."""
    import types

    import optuna
    import pandas as pd

    from reinforce_strategy_creator import training
    from reinforce_strategy_creator.tuning.study import TrialObjective, make_pruner, work

    p = _params(market, tmp_path, pruner_startup_trials=1)
    tuning = TuningParams.parse(p["tuning"])
    data = tuning_data(market.prices, p, tuning)
    trained = []

    def fake_train(train, validation, scaler, env, plan, **kw):  # the score follows the learning rate
        trained.append(plan.config.learning_rate)
        score = 1.0 if plan.config.learning_rate == 1e-3 else -1.0
        return types.SimpleNamespace(spec={"validation_scores": {"0": score}}), pd.DataFrame(
            {"eval_score": [score]}
        )

    monkeypatch.setattr(training, "train_agent", fake_train)
    study = optuna.create_study(direction="maximize", pruner=make_pruner(tuning))
    study.enqueue_trial({"learning_rate": 1e-3, "num_steps": 32})  # queued with fixed values
    study.enqueue_trial({"learning_rate": 2e-3, "num_steps": 32})
    assert work(study, TrialObjective(p["training"], tuning, data), poll_s=0.01) == [0, 1]
    good, bad = study.trials
    assert (
        good.state.name == "COMPLETE" and good.value == 1.0 and good.intermediate_values == {0: 1.0, 1: 1.0}
    )
    assert (
        bad.state.name == "PRUNED"
        and bad.intermediate_values == {0: -1.0}
        and bad.user_attrs["folds_done"] == 1
    )
    assert trained == [1e-3, 1e-3, 2e-3]  # the pruned trial trained one fold


@pytest.mark.slow
def test_a_seeded_sequential_study_is_reproducible(market, tmp_path):
    torch.set_num_threads(1)
    runs = []
    for k in range(2):
        p = _params(
            market, tmp_path, n_trials=3, study_name=f"repro{k}", storage=str(tmp_path / f"{k}.journal")
        )
        runs.append(run_study(market.prices, p).trials[["number", "state", "value", "param_learning_rate"]])
    assert runs[0].equals(runs[1])
