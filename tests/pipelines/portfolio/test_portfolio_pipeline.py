"""The ``portfolio`` stage: its wiring, its bad-input errors, and a real quick run through Kedro."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from reinforce_strategy_creator.env.portfolio import PortfolioInputError
from reinforce_strategy_creator.errors import InputError
from reinforce_strategy_creator.pipelines.data_ingestion.nodes import ingest_prices
from reinforce_strategy_creator.pipelines.full_cycle.pipeline import SCHEMES
from reinforce_strategy_creator.pipelines.portfolio import create_pipeline
from reinforce_strategy_creator.pipelines.portfolio import nodes as pn
from tests.support.env import universe_env
from tests.support.quick_run import UNIVERSE, _kedro, registry_entries

PARAMS = {"index": {"filepath": "i.csv", "column": "IDX"}}


def _wide(columns: dict[str, list], dates) -> pd.DataFrame:
    frame = pd.DataFrame({"Date": [d.strftime("%Y-%m-%d") for d in dates]})
    for k, v in columns.items():
        frame[k] = ["" if x is None else str(x) for x in v]
    frame.attrs["source"] = "u.csv"
    return frame


def test_full_cycle_under_the_portfolio_scheme_is_the_portfolio_stage():
    assert SCHEMES["portfolio"] == ("portfolio",)
    names = {n.name for n in create_pipeline().nodes}
    for expected in (
        "data_ingestion.ingest_prices",
        "portfolio.align_index",
        "portfolio.build_features",
        "portfolio.plan_folds",
        "portfolio.fold_1.train_and_select",
        "portfolio.deployment.train_and_select",
        "portfolio.stitch",
        "portfolio.judge",
        "portfolio.render_report",
        "portfolio.register_champion",
        "portfolio.paper_trade",
    ):
        assert expected in names


def _universe(raw: pd.DataFrame):
    return ingest_prices(raw, {"filepath": "u.csv", "min_rows": 2})[0]


def test_the_stage_reads_data_ingestions_universe():
    pipe = create_pipeline()
    assert "universe" in pipe.all_outputs() and "primary_prices" not in pipe.all_outputs()
    assert {n.name for n in pipe.only_nodes_with_inputs("universe").nodes} >= {
        "portfolio.align_index",
        "portfolio.build_features",
    }


def test_tickers_that_share_no_date_are_refused_naming_them():
    dates = pd.bdate_range("2020-01-01", periods=6)
    raw = _wide({"AAA": [1, 2, 3, None, None, None], "BBB": [None, None, None, 4, 5, 6]}, dates)
    with pytest.raises(InputError, match=r"(?s)AAA.*BBB|BBB.*AAA"):
        _universe(raw)


def test_an_index_without_a_close_on_a_universe_date_is_refused_naming_the_date():
    dates = pd.bdate_range("2020-01-01", periods=6)
    universe = _universe(_wide({"AAA": [1, 2, 3, 4, 5, 6], "BBB": [2, 3, 4, 5, 6, 7]}, dates))
    index = _wide({"IDX": [1, 2, 3, 5, 6]}, dates.delete(3))  # no close on the fourth date
    with pytest.raises(InputError, match=dates[3].date().isoformat()):
        pn.index_close(index, universe, PARAMS)
    assert pn.index_close(index, universe, {"index": {"column": None}}).empty  # no index benchmark


def test_paper_trading_refuses_a_model_trained_on_other_tickers():
    from reinforce_strategy_creator.panel import PortfolioPanel

    class Model:
        label = "newest champion x"
        bundle = type("B", (), {"spec": {"tickers": ["AAA", "CCC"], "feature_names": ["f"], "window": 8}})()

    panel = PortfolioPanel(
        np.ones((5, 2)), np.zeros((5, 2, 1)), ("AAA", "BBB"), pd.bdate_range("2020", periods=5), ("f",)
    )
    with pytest.raises(PortfolioInputError, match="tickers"):
        pn._check_model(Model(), panel, universe_env())


@pytest.mark.slow
def test_quick_portfolio_run_artifacts(portfolio_run, tmp_path):
    """The README's quick portfolio run: a verdict on the stitched record, a reconciled ledger,
    the report's portfolio figures, a versioned policy, and a paper account that trades each bar
    once (a second run, in a copy, trades nothing new and still reports the first run's session
    from the committed account)."""
    data = portfolio_run / "data"
    verdict = json.loads((data / "07_model_output/portfolio_verdict.json").read_text())
    assert isinstance(verdict["passed"], bool) and verdict["decided_on"]["split"] == "walk_forward"
    assert len(verdict["universe"]) == 20
    ledger = pd.read_parquet(data / "07_model_output/portfolio_ledger.parquet")
    assert {"procedure", "benchmark", "random"} <= set(ledger["kind"])
    assert (ledger.groupby(["kind", "run", "seed"])["equity"].first() == 100_000.0).all()
    report = (data / "08_reporting/portfolio_report.html").read_text()
    assert "alt='weights'" in report and "alt='contribution'" in report and "alt='turnover'" in report
    assert list((data / "06_models/portfolio_policy").iterdir())
    # each fold (fold_1, deployment) is in the walk-forward's fold store, where a rerun finds it
    stored = [p for p in (data / "06_models/walk_forward_folds").iterdir() if (p / "fold.json").is_file()]
    assert len(stored) == 2
    status = json.loads((data / "08_reporting/portfolio_paper_status.json").read_text())
    shadow = status["accounts"]["shadow"]
    n_bars = status["paper_window"]["n_bars"]
    assert shadow["traded"] == shadow["last_session"]["bars"] == shadow["bars_processed_total"] == n_bars
    features = json.loads((data / "04_feature/portfolio_features_info.json").read_text())["features"]
    assert [r["feature"] for r in status["drift"]["features"]] == features  # the drift monitor's report
    entries = registry_entries(portfolio_run)  # the one registry: the entry carries its universe
    champion = json.loads((data / "07_model_output/portfolio_champion.json").read_text())
    (entry,) = [e for e in entries if e["version"] == champion["policy_version"]]
    assert entry["universe"] == verdict["universe"] and entry["n_assets"] == 20
    copy = tmp_path / "again"
    shutil.copytree(portfolio_run, copy)
    _kedro(copy, "run", "--env", "quick", "--pipelines", "portfolio", "--tags", "paper", "--params", UNIVERSE)
    again = json.loads((copy / "data/08_reporting/portfolio_paper_status.json").read_text())
    assert again["accounts"]["shadow"]["traded"] == 0
    assert again["accounts"]["shadow"]["last_session"] == shadow["last_session"]


def test_feature_drift_flags_a_shifted_paper_window_and_not_the_same_distribution():
    from types import SimpleNamespace

    from reinforce_strategy_creator.panel import PortfolioPanel
    from reinforce_strategy_creator.params.deployment import DeploymentParams

    rng = np.random.default_rng(0)
    T, N = 1200, 4
    dates = pd.bdate_range("2010-01-01", periods=T)
    feats = rng.normal(size=(T, N, 2)).astype(np.float32)
    close = np.ones((T, N))
    close[:300, 3] = np.nan  # not listed: its rows are left out of both samples
    feats[:300, 3] = 50.0

    def window(a, b):
        return SimpleNamespace(first_row=a, stop_row=b, start=dates[a], end=dates[b - 1])

    plan = SimpleNamespace(deployment=SimpleNamespace(train=window(0, 1000)), paper=window(1000, T))
    drift = DeploymentParams.parse({}).drift
    same = pn.feature_drift(PortfolioPanel(close, feats, list("ABCD"), dates, ("f0", "f1")), plan, drift)
    assert same["alerts"] == [] and {r["feature"] for r in same["features"]} == {"f0", "f1"}
    shifted = feats.copy()
    shifted[1000:, :, 1] += 1.0  # the paper window's second feature moves by one training std
    moved = pn.feature_drift(PortfolioPanel(close, shifted, list("ABCD"), dates, ("f0", "f1")), plan, drift)
    assert moved["alerts"] == ["f1"]
