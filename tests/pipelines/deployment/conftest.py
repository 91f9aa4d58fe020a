"""Fixtures: a real deployment world in tmp (``tests/support/deployment_world.py``); one expensive
part is shared."""

from __future__ import annotations

import shutil

import pytest

from tests.support.deployment_world import V1, V2, World


@pytest.fixture(scope="session")
def _template(tmp_path_factory):
    folder = tmp_path_factory.mktemp("world_template")
    w = World(folder)
    w.make_policy(V1, torch_seed=1)
    w.make_policy(V2, torch_seed=2)
    return folder


@pytest.fixture
def world(_template, tmp_path) -> World:
    folder = tmp_path / "world"
    shutil.copytree(_template, folder)
    return World(folder)
