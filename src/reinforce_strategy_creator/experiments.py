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


def _run_in_memory(
    pipeline,
    raw_prices: pd.DataFrame,
    params: Mapping[str, Any],
    inputs: Mapping[str, Any],
    handed_over: Sequence[str],
    outputs: Sequence[str],
) -> tuple[dict[str, Any], float]:
    """Run ``pipeline`` on a memory catalog: ``raw_prices`` as ``data_ingestion.raw_prices``, every
    parameter block and the datasets of ``inputs``; the intermediates ``handed_over`` are passed
    between nodes as they are (``copy_mode: assign`` in the project's catalog: torch modules,
    panels, fold results). Returns the ``outputs`` kept and the wall time."""
    from kedro.io import DataCatalog, MemoryDataset
    from kedro.runner import SequentialRunner

    catalog = DataCatalog()
    catalog["data_ingestion.raw_prices"] = MemoryDataset(raw_prices)
    catalog["parameters"] = MemoryDataset(params)
    for key, value in params.items():
        catalog[f"params:{key}"] = MemoryDataset(value)
    for name, value in inputs.items():
        catalog[name] = MemoryDataset(value)
    for name in handed_over:
        catalog[name] = MemoryDataset(copy_mode="assign")
    for name in outputs:
        catalog[name] = _kept_dataset()
    start = time.perf_counter()
    SequentialRunner().run(pipeline, catalog)
    wall = time.perf_counter() - start
    return {name: catalog[name].load() for name in outputs}, wall


def run_cycle(
    raw_prices: pd.DataFrame,
    parameters: Mapping[str, Any],
    *,
    source: str = "market",
    earlier_decisions: Sequence[Mapping[str, Any]] = (),
) -> CycleResult:
    """Train and judge every agent of ``parameters`` on ``raw_prices`` (a raw price table, as
    ``data_ingestion`` reads it) with the project's pipelines; returns what evaluation decided."""
    params = deep_merge(parameters, {"data_ingestion": {"filepath": source}})
    agents = [a for a in params.get("training", {}) if a != "common"]
    inputs = {"evaluation.gate_decisions": list(earlier_decisions)}
    policies = [f"training.{agent}.policy" for agent in agents]
    kept, wall = _run_in_memory(cycle_pipeline(agents), raw_prices, params, inputs, policies, OUTPUTS)
    out = {name.split(".")[-1]: value for name, value in kept.items()}
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


# --------------------------------------------------------------------------- universes
#: What a universe run keeps of the portfolio stage: the stitched record, its verdict and the
#: layout (panel, fold plan and typed account) the record was traded on.
UNIVERSE_OUTPUTS = ("portfolio.record", "portfolio.verdict", "portfolio.layout")
#: The portfolio stage's intermediates the project's catalog hands over as they are.
_UNIVERSE_HANDED_OVER = ("universe", "portfolio.panel", "portfolio.layout")


@dataclass(frozen=True)
class UniverseResult:
    """One universe through data_ingestion → portfolio, up to the gate on the stitched record."""

    record: Any  # walk_forward.engine.StitchedRecord
    verdict: dict
    layout: dict
    wall_s: float


def universe_pipeline(folds: int):
    """The stages ``kedro run --pipelines data_ingestion,portfolio --env portfolio`` runs, cut to
    the nodes :data:`UNIVERSE_OUTPUTS` need: the deployment fold, the figures, the report and
    the paper accounts are left out (they change no figure of the record)."""
    from .pipelines import portfolio

    stage = portfolio.create_pipeline(folds=folds).to_outputs(*UNIVERSE_OUTPUTS)
    # no index: the ``align_index`` node (which would read the index file) is left out and
    # ``portfolio.index_close`` is given as None
    return stage - stage.only_nodes("portfolio.align_index")


def run_universe(
    raw_prices: pd.DataFrame,
    parameters: Mapping[str, Any],
    *,
    source: str = "universe",
    earlier_decisions: Sequence[Mapping[str, Any]] = (),
) -> UniverseResult:
    """Walk forward every portfolio agent of ``parameters`` on ``raw_prices`` (a raw universe
    table, as ``data_ingestion`` reads it) with the project's portfolio stage, and gate the
    stitched record. Reads no file: ``portfolio.index.column`` must be null (no index
    benchmark) and no fold store is read or written (``walk_forward.reuse_folds`` is forced off)."""
    params = deep_merge(
        parameters, {"data_ingestion": {"filepath": source}, "walk_forward": {"reuse_folds": False}}
    )
    if ((params.get("portfolio") or {}).get("index") or {}).get("column") is not None:
        raise ValueError(
            "run_universe reads no index file: set portfolio.index.column to null (the index "
            "benchmark of a made universe means nothing)"
        )
    folds = int(params["walk_forward"]["folds"])
    inputs = {
        "portfolio.index_close": None,  # no index benchmark
        "walk_forward.fold_cache": None,  # unread: reuse_folds is off
        "portfolio.gate_decisions": list(earlier_decisions),
        "portfolio.tuning_studies": [],
    }
    handed_over = [*_UNIVERSE_HANDED_OVER, *(f"portfolio.fold_{k}.result" for k in range(1, folds + 1))]
    kept, wall = _run_in_memory(
        universe_pipeline(folds), raw_prices, params, inputs, handed_over, UNIVERSE_OUTPUTS
    )
    return UniverseResult(kept["portfolio.record"], kept["portfolio.verdict"], kept["portfolio.layout"], wall)


def replay_rule_on_record(market, result: UniverseResult) -> pd.Series:
    """The metrics of ``market``'s rule replayed on the stitched record's rows: the same stretch
    of the panel, first decision, account, costs and capital as every lane of the record, and
    measured by the same ``evaluation.results.split_records`` against the record's equal weight
    bought and held. The rule's targets are those it decided on the whole market (each from
    closes up to its bar)."""
    from .evaluation.ledger import run_ledger
    from .evaluation.replay import ScheduleDecider, replay_weights
    from .evaluation.results import split_records

    panel, plan, env = result.layout["panel"], result.layout["plan"], result.layout["environment"]
    stretch = panel.window(plan.folds[0].test.first_row, plan.folds[-1].test.stop_row, env.window - 1)
    targets = market.rule_position.reindex(index=stretch.dates, columns=list(stretch.tickers))
    if targets.isna().any().any():
        raise ValueError(
            f"{market.name}: the rule has no target for some of the record's dates or tickers "
            f"{list(stretch.tickers)}; replay the universe this market was made of"
        )
    run = replay_weights(stretch, env, ScheduleDecider(targets.to_numpy(dtype=float)[None]))
    ledger = result.record.ledger
    held = ledger[(ledger["kind"] == "benchmark") & (ledger["run"] == "buy_and_hold")]
    rule = run_ledger(run, "rule", "rule", [0], "walk_forward")
    records = split_records(pd.concat([rule, held], ignore_index=True), "walk_forward")
    return records[records["kind"] == "rule"].iloc[0]


#: The figures a universe study reports for the procedure, equal weight held and the rule.
UNIVERSE_FIGURES = ("sharpe", "exposure", "avg_gross_exposure", "annual_turnover", "max_drawdown")


def study_universe(market, parameters: Mapping[str, Any]) -> dict[str, Any]:
    """One made universe (``markets.SyntheticMarket`` of N >= 2 tickers) through the portfolio
    stage with its environment overrides and no index benchmark: :data:`UNIVERSE_FIGURES` of the
    procedure's stitched record, of equal weight bought and held (the gate's reference) and of
    the market's rule on the same rows, costs and capital (:func:`replay_rule_on_record`), and
    the gate's verdict."""
    from .markets import to_csv_frame

    params = deep_merge(
        parameters, {"environment": market.environment, "portfolio": {"index": {"column": None}}}
    )
    result = run_universe(to_csv_frame(market.prices), params, source=f"{market.name}.csv")
    records = result.record.records
    procedure = records[records["kind"] == "procedure"].iloc[0]
    held = records[(records["kind"] == "benchmark") & (records["agent"] == "buy_and_hold")].iloc[0]
    rule = replay_rule_on_record(market, result)
    return {
        "market": market.name,
        "kind": market.kind,
        "tickers": list(result.layout["panel"].tickers),
        "window": dict(result.record.window),
        **{
            f"{who}_{figure}": float(row[figure])
            for who, row in (("procedure", procedure), ("equal_weight", held), ("rule", rule))
            for figure in UNIVERSE_FIGURES
        },
        "passed": bool(result.verdict["passed"]),
        "failed_rules": sorted(k for k, r in (result.verdict.get("rules") or {}).items() if not r["passed"]),
        "wall_s": result.wall_s,
        "result": result,
    }
