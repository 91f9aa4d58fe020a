"""The documentation cannot drift from the code.

* ``docs/configuration.md``'s tables are generated from the typed parameter blocks and
  ``conf/base``; they are up to date, document every leaf of ``conf/base/parameters*.yml`` with
  its value, and no row documents a parameter no model has.
* ``docs/architecture.md`` has a data-flow diagram naming every stage and every boundary
  dataset, and every test it cites as proof of an honesty guarantee exists.
* Relative links in ``README.md`` and ``docs/*.md`` point at files that exist.

Parameters, stages and datasets are read from the project, never listed here, so other
engineers can add or change parameters; the failure message says which row to add or fix.
"""

from __future__ import annotations

import functools
import re

import pytest
import yaml

from tests.support.project import PROJECT_ROOT

DOCS = PROJECT_ROOT / "docs"
CONFIGURATION = DOCS / "configuration.md"
ARCHITECTURE = DOCS / "architecture.md"
ROW = re.compile(r"^\|\s*`([A-Za-z_][\w]*(?:\.[\w]+)+)`\s*\|\s*`(.*?)`\s*\|", re.MULTILINE)


def flatten(tree: dict, prefix: str = "") -> dict[str, object]:
    """Nested mappings -> {dotted.key: leaf}; lists and empty mappings are leaves."""
    flat: dict[str, object] = {}
    for key, value in tree.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and value:
            flat.update(flatten(value, dotted))
        else:
            flat[dotted] = value
    return flat


@functools.lru_cache(maxsize=1)
def base_parameters() -> dict[str, object]:
    """conf/base parameters as a run sees them without --params (interpolations resolved)."""
    import warnings

    from kedro.config import OmegaConfigLoader

    params: dict[str, object] = {}
    for path in sorted((PROJECT_ROOT / "conf" / "base").glob("parameters*.yml")):
        tree = yaml.safe_load(path.read_text()) or {}
        for key in flatten(tree):
            assert key not in params, f"{key} is defined twice under conf/base ({path.name})"
            params[key] = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loader = OmegaConfigLoader(str(PROJECT_ROOT / "conf"), base_env="base", default_run_env="base")
        return flatten(loader["parameters"])


@functools.lru_cache(maxsize=1)
def documented() -> dict[str, str]:
    """{dotted key: default cell} for every parameter row of configuration.md."""
    roots = {key.split(".")[0] for key in base_parameters()}
    rows: dict[str, str] = {}
    for key, default in ROW.findall(CONFIGURATION.read_text()):
        if key.split(".")[0] in roots:
            assert key not in rows, f"docs/configuration.md documents {key} twice"
            rows[key] = default
    return rows


def test_flatten():
    assert flatten({"a": {"b": 1, "c": [1, 2], "d": {}}, "e": None}) == {
        "a.b": 1,
        "a.c": [1, 2],
        "a.d": {},
        "e": None,
    }


def test_there_are_parameters_to_document():
    assert len(base_parameters()) > 50


@pytest.mark.parametrize("key", sorted(base_parameters()))
def test_every_parameter_is_documented_with_its_value(key):
    value = base_parameters()[key]
    rows = documented()
    assert key in rows, (
        f"conf/base parameter {key} is not in docs/configuration.md: is it a field of its block's model "
        "(src/reinforce_strategy_creator/params/, agents/<algo>.py)? Then run "
        "`python -m reinforce_strategy_creator.parameter_docs --write`"
    )
    cell = rows[key]
    documented_value = yaml.safe_load(cell)
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        documented_value = str(documented_value)
    assert documented_value == value, (
        f"docs/configuration.md gives {key} the value `{cell}` but conf/base has {value!r}: run "
        "`python -m reinforce_strategy_creator.parameter_docs --write`"
    )


def test_no_stale_parameters_documented():
    """Every documented row is a field of a block's model (the tables are generated from them)."""
    from reinforce_strategy_creator.parameter_docs import BLOCKS, block_rows
    from reinforce_strategy_creator.parameter_docs import base_parameters as resolved

    params = resolved(PROJECT_ROOT)
    fields = {row[0] for block in BLOCKS for row in block_rows(block, params)}
    stale = sorted(set(documented()) - fields)
    assert not stale, f"docs/configuration.md documents parameters no model has: {stale}"


def test_generated_tables_are_up_to_date():
    from reinforce_strategy_creator.parameter_docs import base_parameters as resolved
    from reinforce_strategy_creator.parameter_docs import updated

    text = CONFIGURATION.read_text()
    assert updated(text, resolved(PROJECT_ROOT)) == text, (
        "docs/configuration.md is out of date: run "
        "`python -m reinforce_strategy_creator.parameter_docs --write`"
    )


def test_conf_base_validates_block_by_block():
    """Every block of conf/base is valid for its model (the defaults a newcomer runs with)."""
    from reinforce_strategy_creator.env.config import EnvConfig
    from reinforce_strategy_creator.parameter_docs import base_parameters as resolved
    from reinforce_strategy_creator.params.data import IngestionParams
    from reinforce_strategy_creator.params.deployment import DeploymentParams
    from reinforce_strategy_creator.params.evaluation import EvaluationParams
    from reinforce_strategy_creator.params.features import FeatureParams
    from reinforce_strategy_creator.params.training import TrainingParams

    params = resolved(PROJECT_ROOT)
    for model in (
        IngestionParams,
        FeatureParams,
        EnvConfig,
        TrainingParams,
        EvaluationParams,
        DeploymentParams,
    ):
        model.parse(params[model.PATH])


# --------------------------------------------------------------------------- architecture


def _stages() -> tuple[str, ...]:
    """Every stage of either scheme of ``full_cycle``."""
    from reinforce_strategy_creator.pipelines.full_cycle.pipeline import SCHEMES

    return tuple(sorted(set().union(*SCHEMES.values())))


def _boundary_datasets() -> set[str]:
    """Un-namespaced catalog entries: the datasets that cross stage boundaries."""
    names: set[str] = set()
    for path in (PROJECT_ROOT / "conf" / "base").glob("catalog*.yml"):
        names |= {
            n for n in (yaml.safe_load(path.read_text()) or {}) if "." not in n and not n.startswith("_")
        }
    return names


def test_architecture_has_a_diagram_of_every_stage_and_boundary_dataset():
    text = ARCHITECTURE.read_text()
    assert "```mermaid" in text, "docs/architecture.md needs a Mermaid data-flow diagram"
    diagram = text.split("```mermaid", 1)[1].split("```", 1)[0]
    for stage in _stages():
        assert stage in diagram, f"stage {stage} missing from the architecture diagram"
    for name in sorted(_boundary_datasets()):
        assert name in diagram, f"boundary dataset {name} missing from the architecture diagram"


CITED_TEST = re.compile(r"`(tests/[\w/]+\.py)(?:::(\w+))?`")


def test_every_cited_test_exists():
    citations = CITED_TEST.findall(ARCHITECTURE.read_text())
    assert len(citations) >= 8, "docs/architecture.md should cite the tests behind each guarantee"
    for path, name in citations:
        file = PROJECT_ROOT / path
        assert file.is_file(), f"docs/architecture.md cites {path}, which does not exist"
        if name:
            assert re.search(
                rf"^\s*(async\s+)?def {name}\b|^class {name}\b", file.read_text(), re.MULTILINE
            ), f"docs/architecture.md cites {path}::{name}, which does not exist"


# --------------------------------------------------------------------------- links

LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


@pytest.mark.parametrize(
    "doc", [PROJECT_ROOT / "README.md", *sorted(DOCS.glob("*.md"))], ids=lambda p: p.name
)
def test_relative_links_resolve(doc):
    for target in LINK.findall(doc.read_text()):
        if re.match(r"^[a-z]+:", target):  # http:, https:, mailto:
            continue
        assert (doc.parent / target).exists(), f"{doc.relative_to(PROJECT_ROOT)} links to missing {target}"
