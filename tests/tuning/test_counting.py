"""Every tuning trial is a look at its validation windows: recorded in the model registry and
counted by the walk-forward judge for the stitched window they overlap."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from reinforce_strategy_creator.deployment.registry import ModelRegistry, RegistryError
from reinforce_strategy_creator.evaluation.verdict import tuning_looks
from reinforce_strategy_creator.experiments import deep_merge
from reinforce_strategy_creator.markets import make_market
from reinforce_strategy_creator.project_params import parameters
from reinforce_strategy_creator.walk_forward import engine


def _study(name="s", trials=20, windows=(("2015-01-02", "2015-12-31"), ("2016-01-04", "2016-12-30")), **kw):
    return {
        "study_name": name,
        "storage": "data/06_models/tuning/s.journal",
        "trials_counted": trials,
        "windows": [{"start": a, "end": b} for a, b in windows],
        "config_sha256": "c" * 64,
        **kw,
    }


def test_the_registry_records_studies_apart_from_gate_decisions(tmp_path):
    reg = ModelRegistry(tmp_path / "registry.jsonl")
    event = reg.record_tuning_study(_study())
    assert event["event"] == "tuning_study" and "at" in event
    assert reg.tuning_studies() == [event] and reg.gate_decisions() == []
    with pytest.raises(RegistryError, match="trials_counted=-1"):
        reg.record_tuning_study(_study(trials=-1))
    with pytest.raises(RegistryError, match="lacks \\['windows'\\]"):
        reg.record_tuning_study({k: v for k, v in _study().items() if k != "windows"})
    with pytest.raises(RegistryError, match="window"):
        reg.record_tuning_study(_study(windows=(("2016-02-01", "2016-01-01"),)))
    assert len(reg.tuning_studies()) == 1  # nothing half-written


def test_overlap_by_dates_and_a_rerun_study_counts_once():
    window = {"start": "2016-01-04", "end": "2017-12-29"}
    studies = [
        _study("a", 5),
        _study("a", 12),  # the same study, resumed: its latest count
        _study("b", 7, windows=(("2011-01-03", "2012-12-31"),)),  # before the window: not a look at it
        _study("c", 3, windows=(("2017-06-01", "2018-06-01"),)),
    ]
    looks = tuning_looks(studies, window)
    assert looks["trials"] == 15
    assert [s["study_name"] for s in looks["studies"]] == ["a", "c"]


@given(
    counts=st.lists(st.integers(0, 50), min_size=1, max_size=6),
    start=st.dates(),
    days=st.integers(0, 400),
)
def test_looks_never_count_a_study_that_ends_before_or_starts_after_the_window(counts, start, days):
    import datetime as dt

    end = start + dt.timedelta(days=days)
    window = {"start": start.isoformat(), "end": end.isoformat()}
    before = [
        _study(f"b{i}", n, windows=((("0001-01-01"), (start - dt.timedelta(days=1)).isoformat()),))
        for i, n in enumerate(counts)
        if start > dt.date(1, 1, 2)
    ]
    after = [
        _study(f"a{i}", n, windows=(((end + dt.timedelta(days=1)).isoformat(), "9999-12-31"),))
        for i, n in enumerate(counts)
        if end < dt.date(9999, 12, 30)
    ]
    inside = [
        _study(f"i{i}", n, windows=((start.isoformat(), start.isoformat()),)) for i, n in enumerate(counts)
    ]
    assert tuning_looks(before + after, window)["trials"] == 0
    assert tuning_looks(before + after + inside, window)["trials"] == sum(counts)


@pytest.mark.slow
def test_a_judge_after_a_study_deflates_more(sp500):
    """The same stitched record judged with and without a study on its windows: larger N, larger
    DSR trial count, lower deflated PSR and DSR."""
    torch.set_num_threads(1)
    market = make_market("momentum", sp500, seed=1, strength=0.5)
    p = deep_merge(parameters("quick"), {"environment": market.environment, "walk_forward": {"folds": 2}})
    p["training"] = {
        "common": {**p["training"]["common"], "seeds": [0, 1], "total_steps": 1024},
        "ppo": {**p["training"]["ppo"], "total_steps": 1024},
    }
    features, plan = engine.plan(market.prices, p)
    results = [engine.run_fold(f, features, market.prices, p) for f in plan.folds]
    record = engine.stitch(results, features, market.prices, p)
    plain, _ = engine.judge(record, results, p, config="x")
    study = _study("ppo_walk_forward", 20)
    tuned, decision = engine.judge(record, results, p, config="x", tuning_studies=[study])
    assert plain["selection"]["tuning_trials"] == 0 and tuned["selection"]["tuning_trials"] == 20
    assert tuned["deflation"]["n_configurations"] == plain["deflation"]["n_configurations"] + 20
    assert tuned["rules"]["min_psr"]["deflated_by_configurations"] == 21
    assert tuned["dsr"]["n_trials"] == plain["dsr"]["n_trials"] + 20
    assert tuned["deflation"]["value"] < plain["deflation"]["value"]
    assert tuned["dsr"]["value"] < plain["dsr"]["value"]
    assert decision["deflated_psr"] == tuned["deflation"]["value"]
    # a study whose windows end before the stitched window is not a look at it
    early = _study("early", 50, windows=(("2001-01-02", "2001-12-31"),))
    unchanged, _ = engine.judge(record, results, p, config="x", tuning_studies=[early])
    assert unchanged["deflation"] == plain["deflation"] and unchanged["dsr"] == plain["dsr"]
