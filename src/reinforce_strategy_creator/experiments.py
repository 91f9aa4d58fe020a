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
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

#: What a cycle keeps: selection, verdict and the metric tables (figures and the HTML report
#: are left out, they change no number).
OUTPUTS = (
    "champion",
    "evaluation_verdict",
    "evaluation.selection",
    "evaluation.gate_decision",
    "evaluation.ranking",
    "evaluation.validation_metrics",
    "evaluation.test_metrics",
)


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

    full = (
        data_ingestion.create_pipeline()
        + feature_engineering.create_pipeline()
        + training.create_pipeline(agents=agents)
        + evaluation.create_pipeline(agents=agents)
    )
    return full.to_outputs(*OUTPUTS)


def run_cycle(
    raw_prices: pd.DataFrame,
    parameters: Mapping[str, Any],
    *,
    source: str = "market",
    earlier_decisions: Sequence[Mapping[str, Any]] = (),
) -> CycleResult:
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
    return CycleResult(
        champion=out["champion"],
        verdict=out["evaluation_verdict"],
        selection=out["selection"],
        gate_decision=out["gate_decision"],
        ranking=out["ranking"],
        validation=out["validation_metrics"],
        test=out["test_metrics"],
        wall_s=wall,
    )


# --------------------------------------------------------------------------- studies
def candidate_scores(result: CycleResult, metric: str = "sharpe") -> pd.DataFrame:
    """Every candidate (agent × seed, and each seed ensemble) with its validation and test
    ``metric``: one row per ``(agent, seed, kind)``."""
    keys = ["agent", "seed", "kind"]
    cols = [*keys, metric]
    val = result.validation[result.validation["kind"].isin(["agent", "ensemble"])][cols]
    test = result.test[result.test["kind"].isin(["agent", "ensemble"])][cols]
    return (
        val.merge(test, on=keys, suffixes=("_validation", "_test")).sort_values(keys).reset_index(drop=True)
    )


def selection_outcomes(
    result: CycleResult, rules: Sequence[str] | None = None, metric: str = "sharpe"
) -> pd.DataFrame:
    """What each selection rule would have chosen from the same validation records, and how its
    test ``metric`` compares with the median candidate's (the winner's-curse check)."""
    from .evaluation.gate import SELECTION_RULES, select_champion

    scores = candidate_scores(result, metric)
    median = float(scores[f"{metric}_test"].median())
    rows = []
    for rule in rules or SELECTION_RULES:
        pick = select_champion(result.validation, metric, rule)
        if pick["agent"] is None:
            rows.append(
                {
                    "rule": rule,
                    "agent": None,
                    "seed": None,
                    "kind": None,
                    "validation": None,
                    "test": None,
                    "median_candidate_test": median,
                    "at_least_median": False,
                }
            )
            continue
        row = scores[(scores["agent"] == pick["agent"]) & (scores["seed"] == pick["seed"])].iloc[0]
        test = float(row[f"{metric}_test"])
        rows.append(
            {
                "rule": rule,
                "agent": pick["agent"],
                "seed": pick["seed"],
                "kind": pick["kind"],
                "validation": float(row[f"{metric}_validation"]),
                "test": test,
                "median_candidate_test": median,
                "at_least_median": bool(test >= median),
            }
        )
    return pd.DataFrame(rows)


def study_market(market, parameters: Mapping[str, Any]) -> dict[str, Any]:
    """One made market (``markets.SyntheticMarket``) through the cycle, with its environment
    overrides: every candidate's test figures, the rule's and buy-and-hold's test Sharpe on the
    same rows, costs and capital (``markets.rule_report``), the champion, the verdict and what
    each selection rule would have chosen."""
    from .markets import rule_report, to_csv_frame

    params = deep_merge(parameters, {"environment": market.environment})
    result = run_cycle(to_csv_frame(market.prices), params, source=f"{market.name}.csv")
    rule = rule_report(market, params["environment"], params["feature_engineering"], windows=("test",)).iloc[
        0
    ]
    test = result.test
    pick = test[
        (test["agent"] == result.champion["agent"])
        & (test["seed"] == result.champion["seed"])
        & (test["kind"] == result.champion["kind"])
    ]
    held = test[(test["kind"] == "benchmark") & (test["agent"] == "buy_and_hold")]
    return {
        "market": market.name,
        "kind": market.kind,
        "rule": float(rule["rule_sharpe"]),
        "buy_and_hold": float(rule["buy_and_hold_sharpe"]),
        "agents": test[test["kind"] == "agent"].groupby("agent")["sharpe"].agg(["mean", "std"]),
        "ensembles": test[test["kind"] == "ensemble"].set_index("agent")["sharpe"],
        "champion": f"{result.champion['agent']} {result.champion['member']}",
        "champion_test": (result.champion["test_metrics"] or {}).get("sharpe"),
        # the champion's test replay against buy-and-hold's on the same rows: the do-no-harm figures
        "champion_exposure": float(pick["exposure"].iloc[0]) if len(pick) else math.nan,
        "champion_turnover": float(pick["annual_turnover"].iloc[0]) if len(pick) else math.nan,
        "buy_and_hold_exposure": float(held["exposure"].iloc[0]) if len(held) else math.nan,
        "passed": bool(result.verdict["passed"]),
        "selection": selection_outcomes(result),
        "wall_s": result.wall_s,
        "result": result,
    }
