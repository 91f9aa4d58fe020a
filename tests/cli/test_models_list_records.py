"""`kedro models list` names the figures that decided a verdict for what they are: a single split's
champion shows its own test; a walk-forward champion shows the procedure's stitched record (each
fold's champion on its test window), never as that model's test. Old registry lines stay readable."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from reinforce_strategy_creator.artifacts import artifact_sha256, versioned_artifact_path
from reinforce_strategy_creator.cli import cli, load_deployment_params
from reinforce_strategy_creator.deployment import ModelRegistry
from reinforce_strategy_creator.deployment.registry import registration_request
from reinforce_strategy_creator.params.evaluation import EvaluationParams
from reinforce_strategy_creator.walk_forward import engine
from tests.support.artifacts import save_version

VALIDATION = {"sharpe": 1.23, "psr": 0.91, "max_drawdown": -0.08}


def _stored(filepath: str, version: str) -> dict[str, str]:
    """The digest of a real artifact version of the catalog folder ``filepath`` (relative to the
    project, the working directory), saved on first use."""
    folder = versioned_artifact_path(Path(filepath), version)
    return artifact_sha256(folder) if folder.exists() else save_version(Path(filepath), version)


def walk_forward_champion() -> dict:
    """The champion document the walk-forward stage writes (``engine.deployment_champion``)."""
    deployment = SimpleNamespace(
        champion={"agent": "ppo", "seed": 0, "kind": "agent", "n_candidates": 3, "validation": VALIDATION},
        fold=SimpleNamespace(to_dict=lambda: {"name": "deployment"}),
    )
    verdict = {
        "passed": True,
        "rules": {},
        "decided_on": {"split": "walk_forward", "start": "2010-01-04", "end": "2016-12-30", "n_bars": 1762},
        "procedure": {"sharpe": 0.61, "total_return": 0.473, "max_drawdown": -0.21, "n_bars": 1762},
    }
    filepath = "data/06_models/walk_forward_policy"
    policy = SimpleNamespace(version="wf1", filepath=filepath, sha256=_stored(filepath, "wf1"))
    return engine.deployment_champion(deployment, verdict, policy, EvaluationParams())


def single_split_champion() -> dict:
    """The champion document of the single-split evaluation (docs/contracts.md), with its verdict."""
    return {
        "agent": "a2c",
        "seed": 1,
        "kind": "agent",
        "policy_version": "ss1",
        "policy_filepath": "data/06_models/a2c_policy",
        "policy_sha256": _stored("data/06_models/a2c_policy", "ss1"),
        "validation_metrics": VALIDATION,
        "test_metrics": {"sharpe": 0.61, "total_return": 0.473, "max_drawdown": -0.21, "n_bars": 502},
        "verdict_passed": True,
        "decided_on": "test",
        "verdict": {
            "passed": True,
            "rules": {},
            "decided_on": {"split": "test", "start": "2017-01-03", "end": "2018-12-31", "n_bars": 502},
        },
    }


def _register(champion: dict) -> str:
    registry = ModelRegistry(load_deployment_params().registry_path)
    return registry.apply_registration(registration_request(champion, champion["verdict"], False))["entry_id"]


def _list(*args: str):
    out = CliRunner().invoke(cli, ["models", "list", *args], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    return out.output


@pytest.mark.parametrize(
    ("champion", "record", "other", "window"),
    [
        (walk_forward_champion, "procedure stitched", "test", "2010-01-04..2016-12-30"),
        (single_split_champion, "test", "procedure stitched", "2017-01-03..2018-12-31"),
    ],
    ids=["walk_forward", "single_split"],
)
def test_the_deciding_record_is_named_for_what_it_is(tmp_project, champion, record, other, window):
    entry_id = _register(champion())
    header, row, *notes = _list().splitlines()
    assert f"{record} Sharpe" in header and f"{record} return" in header and "scored on" in header
    assert f"{other} Sharpe" not in header
    assert row.startswith("candidate") and entry_id in row
    assert "1.23" in row and "0.61" in row and "47.3%" in row and window in row
    assert any("not a test of the registered model" in n for n in notes) == (record != "test")

    (listed,) = json.loads(_list("--json"))
    key = record.replace(" ", "_")
    assert listed["metrics"][f"{key}_sharpe"] == 0.61 and listed["metrics"]["validation_sharpe"] == 1.23
    assert f"{other.replace(' ', '_')}_sharpe" not in listed["metrics"]
    assert listed["scored_on"]["split"] == champion()["verdict"]["decided_on"]["split"]
    assert window == f"{listed['scored_on']['start']}..{listed['scored_on']['end']}"


def test_an_entry_registered_before_the_record_was_named_stays_readable(tmp_project):
    registry = ModelRegistry(load_deployment_params().registry_path)
    old = registry.register(  # a line written before registrations recorded `scored_on`
        agent="dqn", version="old1", seed=0, metrics={"test_sharpe": 0.42}, verdict={"passed": False}
    )
    new = _register(walk_forward_champion())
    header, *rows = _list().splitlines()
    assert "test Sharpe" in header and "procedure stitched Sharpe" in header
    old_row = next(r for r in rows if old in r)
    new_row = next(r for r in rows if new in r)
    assert "0.42" in old_row and "not recorded" in old_row and "0.61" in new_row
    assert any(r.startswith("scored on not recorded: registered before") for r in rows)
    listed = {m["entry_id"]: m for m in json.loads(_list("--json"))}
    assert listed[old]["metrics"] == {"test_sharpe": 0.42} and listed[old]["scored_on"] is None
    assert listed[new]["scored_on"]["split"] == "walk_forward"


def test_models_list_shows_each_entry_s_universe_from_one_registry(tmp_project):
    """One registry for every universe: a single-instrument entry, a 20-asset one and a line
    written before universes were recorded are listed together, each with its universe."""
    registry = ModelRegistry(load_deployment_params().registry_path)
    old = registry.register(agent="dqn", version="old1", seed=0, metrics={}, verdict={"passed": False})
    champion = single_split_champion()
    one = registry.apply_registration(registration_request(champion, champion["verdict"], False, ["SPY"]))
    twenty = [f"T{i:02d}" for i in range(20)]
    wide = walk_forward_champion()
    many = registry.apply_registration(registration_request(wide, wide["verdict"], False, twenty))
    header, *rows = _list().splitlines()
    assert "universe" in header
    row = {e: next(r for r in rows if e in r) for e in (old, one["entry_id"], many["entry_id"])}
    assert "1 asset" in row[old] and "SPY" in row[one["entry_id"]]
    assert "20 assets: T00,T01,T02,..." in row[many["entry_id"]]
    listed = {m["entry_id"]: m for m in json.loads(_list("--json"))}
    assert (listed[old]["universe"], listed[old]["n_assets"]) == (None, 1)
    assert listed[one["entry_id"]]["universe"] == ["SPY"]
    assert (listed[many["entry_id"]]["universe"], listed[many["entry_id"]]["n_assets"]) == (twenty, 20)
    result = CliRunner().invoke(cli, ["models", "list", "--portfolio"])
    assert result.exit_code != 0 and "--portfolio" in result.output
