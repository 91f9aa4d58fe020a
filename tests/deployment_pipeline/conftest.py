"""Fixtures: a real deployment world in tmp (see world.py); one expensive part is shared."""

from __future__ import annotations

import shutil

import pytest

from .world import World

V1, V2 = "2026-01-01T00.00.00.000Z", "2026-02-01T00.00.00.000Z"


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
