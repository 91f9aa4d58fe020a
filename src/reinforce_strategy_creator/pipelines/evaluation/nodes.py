"""Nodes of the ``evaluation`` pipeline: thin, pure wrappers over ``reinforce_strategy_creator.evaluation``.

Data in, data out; no I/O and no globals. The logic (replays, metrics, statistics, gate,
champion, figures, report) lives in the plain library; see docs/evaluation.md.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from reinforce_strategy_creator.env import EnvConfig
from reinforce_strategy_creator.evaluation.backtests import (
    backtest_split,
    check_provenance,
    run_provenance,
    trading_setup,
)
from reinforce_strategy_creator.evaluation.metrics import EvaluationInputError
from reinforce_strategy_creator.evaluation.results import (
    FIGURES,
    champion_and_verdict,
    evaluation_figures,
    records_json,
    report_html,
    seed_tables,
    split_records,
)
from reinforce_strategy_creator.evaluation.verdict import config_sha256, window_fingerprint
from reinforce_strategy_creator.params.evaluation import EvaluationParams
from reinforce_strategy_creator.params.features import FeatureParams


def prepare_setup(
    environment: EnvConfig,
    evaluation: EvaluationParams,
    feature_scaler: dict,
    feature_engineering: FeatureParams,
    model_input_train: pd.DataFrame,
    parameters: dict,
    **policies: Any,
) -> dict[str, Any]:
    """Record the common trading setup, the agents, their seeds, artifact versions, folders and
    digests (the SHA-256 of each artifact file, as checked when the artifact was loaded), the
    run's provenance (scaler, feature-spec and training-data fingerprints) and the configuration
    fingerprint. Every policy must carry this run's provenance: a foreign artifact fails here,
    before any replay."""
    config, params = EnvConfig.parse(environment), EvaluationParams.parse(evaluation)
    if not policies:
        raise EvaluationInputError(
            "evaluation: no trained policy was given; run the training pipeline first."
        )
    provenance = run_provenance(
        feature_scaler, FeatureParams.parse(feature_engineering).features, model_input_train
    )
    seeds, versions, folders, digests, train = {}, {}, {}, {}, {}
    for agent, bundle in sorted(policies.items()):
        if not hasattr(bundle, "seeds") or not hasattr(bundle, "spec"):
            raise EvaluationInputError(
                f"training.{agent}.policy: expected a PolicyBundle, got "
                f"{type(bundle).__name__}; run the training pipeline first."
            )
        check_provenance(agent, bundle, provenance)
        seeds[agent], versions[agent] = list(bundle.seeds), bundle.version
        folders[agent] = getattr(bundle, "filepath", None)
        digests[agent] = getattr(bundle, "sha256", None)
        train[agent] = {"start": bundle.spec.get("train_start"), "end": bundle.spec.get("train_end")}
    return {
        "environment": config.to_params(),
        "evaluation": params.to_params(),
        "trading_setup": trading_setup(config),
        "agents": sorted(policies),
        "seeds": seeds,
        "policy_versions": versions,
        "policy_filepaths": folders,
        "policy_sha256": digests,
        "train_periods": train,
        "provenance": provenance,
        "config_sha256": config_sha256(parameters),
    }


def _params(setup: dict) -> EvaluationParams:
    return EvaluationParams.from_params(setup["evaluation"])


def backtest_validation(
    model_input: pd.DataFrame, primary_prices: pd.DataFrame, setup: dict, **policies: Any
) -> pd.DataFrame:
    """Replay every agent × seed and every benchmark on the validation split."""
    return backtest_split(
        model_input,
        EnvConfig.parse(setup["environment"]),
        _params(setup),
        policies,
        "validation",
        history=primary_prices,
        provenance=setup["provenance"],
    )


def backtest_test(
    model_input: pd.DataFrame, primary_prices: pd.DataFrame, setup: dict, **policies: Any
) -> pd.DataFrame:
    """Replay every agent × seed and every benchmark on the test split."""
    return backtest_split(
        model_input,
        EnvConfig.parse(setup["environment"]),
        _params(setup),
        policies,
        "test",
        history=primary_prices,
        provenance=setup["provenance"],
    )


def metrics_validation(ledger: pd.DataFrame) -> pd.DataFrame:
    """Metrics, PSR, DSR and random-policy percentile of every validation run × seed."""
    return split_records(ledger, "validation")


def metrics_test(ledger: pd.DataFrame) -> pd.DataFrame:
    """Metrics, PSR, DSR and random-policy percentile of every test run × seed."""
    return split_records(ledger, "test")


def summarise(validation: pd.DataFrame, test: pd.DataFrame, setup: dict):
    """Cross-seed summary, ranking (on validation), random-policy summary and all tables as JSON."""
    tables = seed_tables(validation, test, _params(setup))
    return (
        tables["summary"],
        tables["ranking"],
        tables["random_policy"],
        records_json(validation, test, tables),
    )


def select_champion(
    validation: pd.DataFrame,
    test: pd.DataFrame,
    setup: dict,
    model_input_test: pd.DataFrame,
    gate_decisions: list,
    **histories: pd.DataFrame,
):
    """Champion chosen on validation only, gated on its single test replay.

    ``gate_decisions`` are the decisions recorded earlier in the model registry; the verdict counts
    those on the same test window and deflates the PSR rule for them. Returns ``champion``,
    ``evaluation_verdict``, the selection (for the report) and this decision, to record.
    """
    window = {
        "start": model_input_test.index[0].date().isoformat(),
        "end": model_input_test.index[-1].date().isoformat(),
    }
    champion, verdict, selection, decision = champion_and_verdict(
        validation,
        test,
        _params(setup),
        setup["policy_versions"],
        policy_filepaths=setup.get("policy_filepaths", {}),
        policy_sha256=setup.get("policy_sha256", {}),
        histories=histories,
        earlier_decisions=list(gate_decisions or []),
        window=window,
        data_fingerprint=window_fingerprint(model_input_test),
        config=setup["config_sha256"],
    )
    if champion:
        # Deployment registers the champion from this one document, verdict included, so the
        # registry never depends on a reporting-layer artifact.
        champion = {
            **champion,
            "verdict": {
                "passed": verdict["passed"],
                "rules": verdict.get("rules", {}),
                "decided_on": verdict.get("decided_on"),
            },
        }
    return champion, verdict, selection, decision


def publish_table(table: pd.DataFrame) -> pd.DataFrame:
    """The same table, published as CSV in the reporting layer for people and kedro-viz previews."""
    return table


def make_figures(
    validation_ledger: pd.DataFrame,
    test_ledger: pd.DataFrame,
    model_input_test: pd.DataFrame,
    validation: pd.DataFrame,
    test: pd.DataFrame,
    champion: dict,
    setup: dict,
    **histories: pd.DataFrame,
) -> dict[str, Figure]:
    """All report figures, by name (see ``results.FIGURES``)."""
    return evaluation_figures(
        validation_ledger,
        test_ledger,
        model_input_test,
        validation,
        test,
        champion,
        histories,
        _params(setup),
    )


def unpack_figures(figures: dict[str, Figure]) -> tuple[Figure, ...]:
    """The figures in ``FIGURES`` order, one PNG dataset each."""
    return tuple(figures[name] for name in FIGURES)


def _period(frame: pd.DataFrame) -> dict[str, Any]:
    return {
        "start": frame.index[0].date().isoformat(),
        "end": frame.index[-1].date().isoformat(),
        "bars": len(frame),
    }


def render_report(
    setup: dict,
    validation: pd.DataFrame,
    test: pd.DataFrame,
    summary: pd.DataFrame,
    ranking: pd.DataFrame,
    random_policy: dict,
    selection: dict,
    verdict: dict,
    figures: dict[str, Figure],
    model_input_validation: pd.DataFrame,
    model_input_test: pd.DataFrame,
) -> str:
    """The self-contained HTML report."""
    periods = {f"train ({a})": {**p, "bars": ""} for a, p in setup["train_periods"].items() if p.get("start")}
    periods["validation"] = _period(model_input_validation)
    periods["test"] = _period(model_input_test)
    tables = {"summary": summary, "ranking": ranking, "random_policy": random_policy}
    return report_html(
        setup=setup,
        validation=validation,
        test=test,
        tables=tables,
        selection=selection,
        verdict=verdict,
        figures=figures,
        periods=periods,
    )
