"""The study's workers on each compute backend share one journal file and finish exactly the trials
asked for (a cheap objective: no training)."""

from __future__ import annotations

import pytest

from reinforce_strategy_creator.project_params import parameters
from reinforce_strategy_creator.tuning import run_study
from tests.support.tuning import sleepy_quadratic


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["processes", "dask"])
def test_workers_on_a_backend_finish_exactly_the_trials_asked_for(backend, sp500, tmp_path, monkeypatch):
    monkeypatch.setenv("RSC_TUNING_SLEEP", "0.2")
    p = parameters("quick")
    p["training"] = {"common": p["training"]["common"], "ppo": p["training"]["ppo"]}
    p["tuning"] = {"n_trials": 5, "folds": 2, "study_name": backend, "storage": str(tmp_path / "s.journal")}
    p["compute"] = {"backend": backend, "workers": 2, "dashboard": False}
    s = run_study(sp500, p, objective=sleepy_quadratic).summary
    assert s["trials"] == {"complete": 5, "pruned": 0, "fail": 0, "running": 0, "waiting": 0}
    assert s["trials_this_run"] == 5 and s["compute"] == {"backend": backend, "workers": 2, "address": None}
