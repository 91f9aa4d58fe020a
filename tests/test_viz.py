"""Lineage as kedro-viz shows it: layers, namespaces and node names.

Two levels:

* fast checks on the configuration itself (OmegaConfigLoader over ``conf/base``): every
  catalog entry, dataset factories included, declares ``metadata.kedro-viz.layer`` from the
  allowed set, and a dataset stored on disk lives under the folder of its layer
  (``data/0N_<layer>``);
* one slow check that runs the real ``kedro viz build --include-previews`` in a throw-away
  copy of the project and reads the ``build/api/main`` JSON the web app is served from:
  the five stages collapse into their namespaces (the per-agent ``training.<agent>``
  instances sit inside ``training``), every dataset has a layer, every task node has an
  explicit name, and the layers come out in data-flow order (raw … reporting).

The lists of stages and agents come from the code (``full_cycle.STAGES``, the agents
configured under ``training`` in the parameters), not from copies here, so adding an agent needs no
test change.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

import pytest
from kedro.config import OmegaConfigLoader

from tests.support.project import PROJECT_ROOT, copy_project, kedro

LAYERS = ("raw", "intermediate", "primary", "feature", "model_input", "models", "model_output", "reporting")
LAYER_DIRS = {layer: f"data/{i:02d}_{layer}" for i, layer in enumerate(LAYERS, start=1)}
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")  # explicit node names; generated ones hold "(" and "->"


def _stages() -> tuple[str, ...]:
    """The stages of ``full_cycle`` under the configured ``evaluation.scheme``."""
    from reinforce_strategy_creator.pipelines.full_cycle.pipeline import SCHEMES, scheme

    return tuple(SCHEMES[scheme()])


def _agents() -> tuple[str, ...]:
    from reinforce_strategy_creator.project_params import agent_names

    return tuple(agent_names())


@functools.lru_cache(maxsize=1)
def _catalog_config() -> dict:
    loader = OmegaConfigLoader(str(PROJECT_ROOT / "conf"), base_env="base", default_run_env="base")
    return {name: entry for name, entry in loader["catalog"].items() if not name.startswith("_")}


# --------------------------------------------------------------------------- fast: config


def test_catalog_is_not_empty():
    assert len(_catalog_config()) >= 10


@pytest.mark.parametrize("name", sorted(_catalog_config()))
def test_every_catalog_entry_has_an_allowed_layer(name):
    entry = _catalog_config()[name]
    layer = ((entry.get("metadata") or {}).get("kedro-viz") or {}).get("layer")
    assert layer in LAYERS, (
        f"catalog entry {name!r}: metadata.kedro-viz.layer is {layer!r}; "
        f"set one of {', '.join(LAYERS)} (docs/contracts.md, Conventions)"
    )


@pytest.mark.parametrize("name", sorted(_catalog_config()))
def test_stored_datasets_live_in_their_layer_folder(name):
    entry = _catalog_config()[name]
    filepath = entry.get("filepath")
    if filepath is None:  # MemoryDataset and friends: nothing on disk
        return
    layer = entry["metadata"]["kedro-viz"]["layer"]
    expected = LAYER_DIRS[layer]
    assert str(filepath).startswith(expected + "/"), (
        f"catalog entry {name!r} (layer {layer!r}) is stored at {filepath!r}; "
        f"keep {layer} datasets under {expected}/ or change the layer"
    )


def test_dataset_factories_are_checked_too():
    """The walk above sees factory patterns such as ``evaluation.{figure}_png`` as entries."""
    names = _catalog_config()
    factories = [n for n in names if "{" in n]
    for name in factories:
        assert "metadata" in names[name], f"dataset factory {name!r} has no metadata.kedro-viz.layer"


# --------------------------------------------------------------------------- slow: kedro viz build


def _viz_build(folder: Path) -> None:
    """``kedro viz build --include-previews`` in a copy of the project at ``folder``."""
    root = copy_project(folder / "project")
    result = kedro(root, "viz", "build", "--include-previews", timeout=600)
    (folder / "log.txt").write_text(result.stdout + result.stderr)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]


@pytest.fixture(scope="session")
def viz_api(once) -> dict:
    """The ``build/api/main`` JSON of one ``kedro viz build`` per test session (shared by workers)."""
    folder = once("viz_build", _viz_build)
    output = (folder / "log.txt").read_text()
    main = folder / "project" / "build" / "api" / "main"
    assert main.is_file(), f"kedro viz build wrote no {main}:\n{output[-4000:]}"
    api = json.loads(main.read_text())
    api["_log"] = output
    return api


@pytest.mark.slow
def test_stages_collapse_into_their_namespaces(viz_api):
    tree = viz_api["modular_pipelines"]
    root_children = {c["id"] for c in tree["__root__"]["children"] if c["type"] == "modularPipeline"}
    assert root_children == set(_stages()), "top-level namespaces must be exactly the stages of full_cycle"
    if "training" in root_children:
        inner = {c["id"] for c in tree["training"]["children"] if c["type"] == "modularPipeline"}
        assert inner == {f"training.{agent}" for agent in _agents()}
    if "walk_forward" in root_children:
        from reinforce_strategy_creator.pipelines.walk_forward.pipeline import fold_names

        inner = {c["id"] for c in tree["walk_forward"]["children"] if c["type"] == "modularPipeline"}
        assert inner == {f"walk_forward.{f}" for f in (*fold_names(), "deployment")}


@pytest.mark.slow
def test_every_task_sits_in_a_stage_and_has_an_explicit_name(viz_api):
    tasks = [n for n in viz_api["nodes"] if n["type"] == "task"]
    assert tasks
    stages = set(_stages())
    for task in tasks:
        assert NAME.match(task["name"]), f"node {task['full_name']!r} has no explicit name= (generated name)"
        namespace = task["full_name"].rsplit(".", 1)[0] if "." in task["full_name"] else ""
        assert namespace.split(".")[0] in stages, (
            f"node {task['full_name']!r} is outside the stage namespaces"
        )


@pytest.mark.slow
def test_no_dataset_without_a_layer(viz_api):
    missing = [n["name"] for n in viz_api["nodes"] if n["type"] == "data" and n.get("layer") not in LAYERS]
    assert not missing, (
        f"datasets without an allowed kedro-viz layer (declare them in the catalog): {missing}"
    )


@pytest.mark.slow
def test_every_pipeline_is_served(viz_api):
    served = {p["id"] for p in viz_api["pipelines"]}
    assert {"__default__", "full_cycle", *_stages()} <= served


def _backward_edges(api: dict) -> list[str]:
    """Nodes whose output layer comes before one of its input layers (makes viz's layer sort fail)."""
    nodes = {n["id"]: n for n in api["nodes"]}
    inputs: dict[str, list[dict]] = {}
    outputs: dict[str, list[dict]] = {}
    for edge in api["edges"]:
        src, dst = nodes[edge["source"]], nodes[edge["target"]]
        if dst["type"] == "task":
            inputs.setdefault(dst["id"], []).append(src)
        if src["type"] == "task":
            outputs.setdefault(src["id"], []).append(dst)
    found = []
    for task_id, ins in inputs.items():
        for a in ins:
            for b in outputs.get(task_id, []):
                if (
                    a.get("layer") in LAYERS
                    and b.get("layer") in LAYERS
                    and LAYERS.index(a["layer"]) > LAYERS.index(b["layer"])
                ):
                    found.append(
                        f"{nodes[task_id]['full_name']}: {a['name']} ({a['layer']}) -> {b['name']} "
                        f"({b['layer']})"
                    )
    return sorted(found)


@pytest.mark.slow
def _downstream_of_raw(api: dict) -> set[str]:
    """Ids of the nodes a raw dataset flows into (directly or not), raw datasets included."""
    children: dict[str, set[str]] = {}
    for e in api["edges"]:
        children.setdefault(e["source"], set()).add(e["target"])
    todo = [n["id"] for n in api["nodes"] if n.get("layer") == "raw"]
    seen = set(todo)
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in seen:
                seen.add(child)
                todo.append(child)
    return seen


def test_layers_are_in_data_flow_order(viz_api):
    """The layers the data flows through (from the raw files on) come out in data-flow order, and
    the sort found no cycle (an empty list). Layers only of datasets made from parameters alone
    (e.g. deployment's validated settings) have no place in that order and are left out."""
    flow = _downstream_of_raw(viz_api)
    used = [
        layer
        for layer in LAYERS
        if any(n.get("layer") == layer and n["id"] in flow for n in viz_api["nodes"])
    ]
    backward = _backward_edges(viz_api)
    shown = [layer for layer in viz_api["layers"] if layer in used]
    assert viz_api["layers"] and shown == used, (
        f"kedro-viz layers {viz_api['layers']} (empty = circular layer dependencies) instead of {used}.\n"
        "Each node's outputs must not sit in an earlier layer than its inputs:\n  " + "\n  ".join(backward)
    )
