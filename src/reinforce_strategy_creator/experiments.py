"""Run the project's own pipelines in process on any price table: the engine of studies and of
the learning benchmark (docs/learning.md).

The pipelines, nodes and parameters are exactly those of ``kedro run``; only the catalog is in
memory: nothing is written and no registry is read or touched, so a study over many markets
measures what a user's run would do on each of them. Earlier gate decisions on the same
window can be passed in, so that a study re-gating a window counts its looks as the registry
would.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

#: What a cycle keeps: selection, verdict and the metric tables (figures and the HTML report
#: are left out, they change no number).
OUTPUTS = ("champion", "evaluation_verdict", "evaluation.selection",
           "evaluation.gate_decision", "evaluation.ranking", "evaluation.validation_metrics",
           "evaluation.test_metrics")


@dataclass(frozen=True)
class CycleResult:
    """One market through data_ingestion → feature_engineering → training → evaluation."""

    champion: dict
    verdict: dict
    selection: dict
    gate_decision: dict
    ranking: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame
    wall_s: float


def _kept_dataset():
    """A memory dataset the runner cannot release after its last reader (results are read after)."""
    from kedro.io import MemoryDataset

    class KeptDataset(MemoryDataset):
        def _release(self) -> None:
            pass

    return KeptDataset()


def deep_merge(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``overrides`` applied key by key (nested mappings merged, not replaced)."""
    out = copy.deepcopy(dict(base))
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def cycle_pipeline(agents: Sequence[str]):
    """The stages ``full_cycle`` runs before deployment, cut to the nodes :data:`OUTPUTS` need."""
    from .pipelines import data_ingestion, evaluation, feature_engineering, training

    full = (data_ingestion.create_pipeline() + feature_engineering.create_pipeline()
            + training.create_pipeline(agents=agents) + evaluation.create_pipeline(agents=agents))
    return full.to_outputs(*OUTPUTS)


def run_cycle(raw_prices: pd.DataFrame, parameters: Mapping[str, Any], *, source: str = "market",
              earlier_decisions: Sequence[Mapping[str, Any]] = ()) -> CycleResult:
    """Train and judge every agent of ``parameters`` on ``raw_prices`` (a raw price table, as
    ``data_ingestion`` reads it) with the project's pipelines; returns what evaluation decided."""
    from kedro.io import DataCatalog, MemoryDataset
    from kedro.runner import SequentialRunner

    params = deep_merge(parameters, {"data_ingestion": {"filepath": source}})
    agents = [a for a in params.get("training", {}) if a != "common"]
    catalog = DataCatalog()
    catalog["data_ingestion.raw_prices"] = MemoryDataset(raw_prices)
    catalog["parameters"] = MemoryDataset(params)
    for key, value in params.items():
        catalog[f"params:{key}"] = MemoryDataset(value)
    catalog["evaluation.gate_decisions"] = MemoryDataset(list(earlier_decisions))
    for agent in agents:  # torch modules are handed over, not deep-copied
        catalog[f"training.{agent}.policy"] = MemoryDataset(copy_mode="assign")
    for name in OUTPUTS:
        catalog[name] = _kept_dataset()
    start = time.perf_counter()
    SequentialRunner().run(cycle_pipeline(agents), catalog)
    wall = time.perf_counter() - start
    out = {name.split(".")[-1]: catalog[name].load() for name in OUTPUTS}
    return CycleResult(champion=out["champion"], verdict=out["evaluation_verdict"], selection=out["selection"],
                       gate_decision=out["gate_decision"], ranking=out["ranking"],
                       validation=out["validation_metrics"], test=out["test_metrics"], wall_s=wall)
