"""docs/configuration.md's parameter tables, generated from the typed blocks.

One row per leaf parameter, ``| `dotted.path` | `value` | meaning |``: the value is what a run
uses without ``--params`` (``conf/base``, or the block's default where ``conf/base`` leaves the
key out), the meaning is the field's docstring. The tables live between
``<!-- BEGIN GENERATED: <block> -->`` and ``<!-- END GENERATED: <block> -->`` markers;
``python -m reinforce_strategy_creator.parameter_docs --write`` rewrites them, and
``tests/test_docs.py`` fails when they are out of date. Prose around them is hand-written.
"""

from __future__ import annotations

import json
import re
import sys
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from kedro.config import OmegaConfigLoader
from pydantic import BaseModel

from .env.config import EnvConfig
from .params.agents import AGENT_CONFIGS
from .params.base import Params, _model_type
from .params.compute import ComputeParams
from .params.data import IngestionParams
from .params.deployment import DeploymentParams
from .params.evaluation import EvaluationParams
from .params.features import FeatureParams
from .params.portfolio import PortfolioParams
from .params.tracking import TrackingParams
from .params.training import COMMON_KEYS, TrainingCommon
from .params.tuning import SearchRange, TuningParams
from .params.walk_forward import WalkForwardParams

BLOCKS = (
    "data_ingestion",
    "feature_engineering",
    "environment",
    "training",
    "evaluation",
    "walk_forward",
    "deployment",
    "compute",
    "tuning",
    "portfolio",
    "tracking",
)
MARKER = re.compile(r"(<!-- BEGIN GENERATED: (\w+) -->\n)(.*?)(<!-- END GENERATED: \2 -->)", re.S)


def _cell(value: Any) -> str:
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    return json.dumps(value, default=str, ensure_ascii=False)


def _rows(model: type, path: str, values: Mapping[str, Any] | None) -> Iterator[tuple[str, Any, str]]:
    """Leaves of ``model`` at ``path``, valued from ``values`` (the conf/base block) or defaults."""
    values = values if isinstance(values, Mapping) else {}
    for name, field in model.model_fields.items():
        dotted = f"{path}.{name}"
        sub = _model_type(field.annotation)
        default = field.get_default(call_default_factory=True)
        if sub is not None and issubclass(sub, Params):
            given = values.get(name, default.to_params() if isinstance(default, Params) else None)
            if given is None and name in values:  # an optional block switched off
                yield dotted, None, " ".join((field.description or "").split())
                continue
            if given is None:
                continue
            yield from _rows(sub, dotted, given)
            continue
        value = values.get(name, default.to_params() if isinstance(default, Params) else default)
        yield dotted, value, " ".join((field.description or "").split())


def _training_rows(values: Mapping[str, Any]) -> Iterator[tuple[str, Any, str]]:
    yield from _rows(TrainingCommon, "training.common", values.get("common"))
    common_docs = {n: " ".join((f.description or "").split()) for n, f in TrainingCommon.model_fields.items()}
    for agent, block in values.items():
        if agent == "common":
            continue
        algorithm = block.get("algorithm", agent)
        yield (
            f"training.{agent}.algorithm",
            algorithm,
            "Which algorithm this block trains: `ppo` | `a2c` | `dqn` (`agents.ALGORITHMS`).",
        )
        if "backend" in block:
            yield (
                f"training.{agent}.backend",
                block["backend"],
                "`torch` (the project's agents) or `sb3` (stable-baselines3, same artifact).",
            )
        for key in COMMON_KEYS:
            if key in block and key != "total_steps":
                yield (
                    f"training.{agent}.{key}",
                    block[key],
                    f"Overrides `training.common.{key}` for this agent: {common_docs[key]}",
                )
        config = AGENT_CONFIGS.get(algorithm)
        if config is not None:
            yield from _rows(config, f"training.{agent}", block)


def _portfolio_rows(values: Mapping[str, Any]) -> Iterator[tuple[str, Any, str]]:
    """The ``portfolio`` block, its agents expanded like ``training``'s (algorithm, hyperparameters)."""
    for path, value, doc in _rows(PortfolioParams, "portfolio", values):
        if path != "portfolio.training.agents":
            yield path, value, doc
            continue
        for agent, block in (value or {}).items():
            algorithm = block.get("algorithm")
            yield (
                f"{path}.{agent}.algorithm",
                algorithm,
                "Which algorithm this portfolio agent trains: `ppo` | `a2c` | `dqn` (docs/agents.md).",
            )
            if algorithm in AGENT_CONFIGS:
                yield from _rows(AGENT_CONFIGS[algorithm], f"{path}.{agent}", block)


def _tuning_rows(values: Mapping[str, Any]) -> Iterator[tuple[str, Any, str]]:
    """The scalar keys of ``tuning``, then one row per search-space entry (its range as written)."""
    for name, field in TuningParams.model_fields.items():
        doc = " ".join((field.description or "").split())
        if name != "search_space":
            yield f"tuning.{name}", values.get(name, field.get_default(call_default_factory=True)), doc
            continue
        space = values.get(name)
        if space is None:
            space = {k: v.to_params() for k, v in field.get_default(call_default_factory=True).items()}
        agent = values.get("agent", TuningParams.model_fields["agent"].default)
        range_docs = {n: " ".join((f.description or "").split()) for n, f in SearchRange.model_fields.items()}
        for key, rng in space.items():
            for leaf, value in dict(rng).items():
                if leaf in range_docs:
                    yield (
                        f"tuning.search_space.{key}.{leaf}",
                        value,
                        f"Range of `training.{agent}.{key}`: {range_docs[leaf]}",
                    )


def block_rows(block: str, parameters: Mapping[str, Any]) -> list[tuple[str, Any, str]]:
    """Every documented row of one block, valued from ``parameters`` (conf/base, resolved)."""
    values = parameters.get(block) or {}
    if block == "training":
        return list(_training_rows(values))
    if block == "tuning":
        return list(_tuning_rows(values))
    if block == "portfolio":
        return list(_portfolio_rows(values))
    model = {
        "data_ingestion": IngestionParams,
        "feature_engineering": FeatureParams,
        "environment": EnvConfig,
        "evaluation": EvaluationParams,
        "walk_forward": WalkForwardParams,
        "deployment": DeploymentParams,
        "compute": ComputeParams,
        "portfolio": PortfolioParams,
        "tracking": TrackingParams,
    }[block]
    return list(_rows(model, block, values))


def render(block: str, parameters: Mapping[str, Any]) -> str:
    lines = ["| parameter | value in conf/base | meaning |", "| --- | --- | --- |"]
    for dotted, value, doc in block_rows(block, parameters):
        lines.append(f"| `{dotted}` | `{_cell(value)}` | {doc.replace('|', '&#124;')} |")
    return "\n".join(lines) + "\n"


def base_parameters(root: Path) -> dict[str, Any]:
    """conf/base parameters as a run without --params sees them (interpolations resolved)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loader = OmegaConfigLoader(str(root / "conf"), base_env="base", default_run_env="base")
        return dict(loader["parameters"])


def updated(text: str, parameters: Mapping[str, Any]) -> str:
    """``text`` (configuration.md) with every generated table rewritten."""
    return MARKER.sub(lambda m: m.group(1) + render(m.group(2), parameters) + m.group(4), text)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    root = Path.cwd()
    doc = root / "docs" / "configuration.md"
    text = doc.read_text()
    new = updated(text, base_parameters(root))
    if "--write" in argv:
        doc.write_text(new)
        return 0
    if new != text:
        sys.stderr.write(
            "docs/configuration.md is out of date; run: python -m reinforce_strategy_creator.parameter_docs "
            "--write\n"
        )
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
