"""Fixtures: a real deployment world in tmp (``benchmarks/deployment_world.py``). The expensive
parts are made once per worker and copied for each test: the policies (``_template``) and one
first pipeline run (``_traded_template``)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from benchmarks.deployment_world import V1, V2, World

# files of a world that record its own absolute paths (registry entries, champion, verdict, status)
PATH_FILES = ("registry.jsonl", "champion.json", "evaluation_verdict.json", "paper_status.json")


def copy_world(template: Path, folder: Path) -> World:
    """A copy of the world ``template`` at ``folder``, its recorded paths moved along."""
    shutil.copytree(template, folder)
    for name in PATH_FILES:
        path = folder / name
        if path.exists():
            path.write_text(path.read_text().replace(str(template), str(folder)))
    return World(folder)


@pytest.fixture(scope="session")
def _template(tmp_path_factory):
    folder = tmp_path_factory.mktemp("world_template")
    w = World(folder)
    w.make_policy(V1, torch_seed=1)
    w.make_policy(V2, torch_seed=2)
    return folder


@pytest.fixture(scope="session")
def _traded_template(_template, tmp_path_factory):
    world = copy_world(_template, tmp_path_factory.mktemp("traded_template") / "world")
    world.write_evaluation(V1, passed=True)
    world.run()
    return world.folder


@pytest.fixture
def world(_template, tmp_path) -> World:
    return copy_world(_template, tmp_path / "world")


@pytest.fixture
def traded(_traded_template, tmp_path) -> World:
    """A world after one deployment run with V1 evaluated and passed: V1 registered, promoted and
    trading both accounts up to the feed's last bar (2018-02-27)."""
    return copy_world(_traded_template, tmp_path / "traded")
