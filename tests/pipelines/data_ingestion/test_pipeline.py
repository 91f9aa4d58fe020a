"""The data_ingestion pipeline on a DataCatalog of MemoryDatasets (spaceflights style): one
instrument or a universe into one panel, the same errors at N = 1 and N > 1, and a user's own
universe through ``kedro run --params``."""

from __future__ import annotations

import json
import logging

import pandas as pd
import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner
from kedro_datasets.pandas import CSVDataset, ParquetDataset

from reinforce_strategy_creator.errors import InputError
from reinforce_strategy_creator.market_data import DataValidationError, normalise_prices
from reinforce_strategy_creator.pipelines.data_ingestion import create_pipeline
from reinforce_strategy_creator.pipelines.data_ingestion.nodes import ingest_prices, one_instrument
from reinforce_strategy_creator.universe import FIELDS
from tests.support.project import PROJECT_ROOT, SP500_CSV, STOCKS_CSV, copy_project, kedro

RAW_LOAD_ARGS = {"dtype": str, "keep_default_na": False}


def params(**over):
    base = {
        "filepath": str(SP500_CSV),
        "ticker": None,
        "min_rows": 252,
        "gap_factor": 5.0,
        "date_format": None,
        "adjust": True,
        "stale_open_threshold": 0.05,
    }
    return {**base, **over}


def run(raw, p):
    catalog = DataCatalog(
        {
            "data_ingestion.raw_prices": MemoryDataset(raw, copy_mode="assign"),
            "params:data_ingestion": MemoryDataset(p),
        }
    )
    SequentialRunner().run(create_pipeline(), catalog)
    return catalog


def ingest(raw, p):
    """The node pair as the single-asset cycle runs it: (primary_prices, report)."""
    universe, report = ingest_prices(raw, p)
    return one_instrument(universe), report


@pytest.mark.parametrize("view", [True, False])
def test_pipeline_shape(view):
    pipe = create_pipeline(one_instrument_view=view)
    assert [n.name for n in pipe.nodes] == ["data_ingestion.ingest_prices"] + (
        ["data_ingestion.one_instrument"] if view else []
    )
    assert pipe.inputs() == {"data_ingestion.raw_prices", "params:data_ingestion"}
    assert pipe.all_outputs() == {"universe", "data_quality_report"} | ({"primary_prices"} if view else set())


def test_primary_prices_is_the_universe_of_ones_view(monkeypatch):
    """N = 1: the panel holds exactly the single-series rules' prices, and its view is them."""
    monkeypatch.chdir(PROJECT_ROOT)
    raw = CSVDataset(filepath=str(SP500_CSV), load_args=RAW_LOAD_ARGS).load()
    universe, report = ingest_prices(raw, params())
    expected, expected_report = normalise_prices(raw, source=report["source"], settings=params())
    pd.testing.assert_frame_equal(one_instrument(universe), expected)
    assert universe.tickers == ("SP500_DAILY_1999_2018",) and universe.fields == FIELDS
    assert report == {**expected_report, "tickers": list(universe.tickers), "fields": list(FIELDS)}


def test_a_universe_is_one_panel_and_has_no_one_instrument_view():
    raw = CSVDataset(filepath=str(STOCKS_CSV), load_args=RAW_LOAD_ARGS).load()
    universe, report = ingest_prices(raw, params(filepath=str(STOCKS_CSV), tickers=["MSFT", "AAPL"]))
    assert universe.tickers == ("MSFT", "AAPL") and report["tickers"] == ["MSFT", "AAPL"]
    assert set(report["per_ticker"]) == {"MSFT", "AAPL"}
    with pytest.raises(InputError, match=r"2 tickers \['MSFT', 'AAPL'\].*data_ingestion.ticker=MSFT"):
        one_instrument(universe)


def test_sequential_runner_on_memory_catalog(monkeypatch):
    monkeypatch.chdir(PROJECT_ROOT)  # Kedro runs in the project root
    raw = CSVDataset(filepath=str(SP500_CSV), load_args=RAW_LOAD_ARGS).load()
    catalog = run(raw, params())  # the parameter holds the absolute path
    prices = catalog.load("primary_prices")
    report = catalog.load("data_quality_report")
    assert len(prices) == 5031 and prices.index.name == "date"
    # stored relative to the project root, so the report stays true when the folder moves
    assert report["source"] == "data/01_raw/sp500_daily_1999_2018.csv" and report["rows_out"] == 5031


def test_report_source_is_relative_inside_the_project_absolute_outside(monkeypatch, tmp_path):
    monkeypatch.chdir(PROJECT_ROOT)
    raw = CSVDataset(filepath=str(SP500_CSV), load_args=RAW_LOAD_ARGS).load()
    raw.attrs["source"] = str(SP500_CSV)  # what SourcedCSVDataset records: the path read, absolute
    assert ingest(raw, params())[1]["source"] == "data/01_raw/sp500_daily_1999_2018.csv"
    outside = tmp_path / "prices.csv"
    outside.write_text(SP500_CSV.read_text())
    raw.attrs["source"] = str(outside)
    assert ingest(raw, params())[1]["source"] == str(outside)
    # run from another project (a copy elsewhere): a file of this checkout is outside it
    other = tmp_path / "other_project"
    other.mkdir()
    (other / "pyproject.toml").write_text("")
    monkeypatch.chdir(other)
    raw.attrs["source"] = str(SP500_CSV)
    assert ingest(raw, params())[1]["source"] == str(SP500_CSV)


def test_error_names_the_file_relative_to_the_project(monkeypatch, fixture_path):
    monkeypatch.chdir(PROJECT_ROOT)
    bad = fixture_path("high_below_max.csv")
    raw = CSVDataset(filepath=str(bad), load_args=RAW_LOAD_ARGS).load()
    raw.attrs["source"] = str(bad)
    with pytest.raises(DataValidationError, match="^tests/market_data/fixtures/high_below_max.csv, column"):
        ingest(raw, params(min_rows=5))


def test_pipeline_selects_ticker_from_long_file():
    raw = CSVDataset(filepath=str(STOCKS_CSV), load_args=RAW_LOAD_ARGS).load()
    catalog = run(raw, params(filepath=str(STOCKS_CSV), ticker="MSFT"))
    assert catalog.load("data_quality_report")["ticker"] == "MSFT"
    assert len(catalog.load("primary_prices")) == 3270


def test_pipeline_error_names_the_file(fixture_path):
    bad = fixture_path("high_below_max.csv")
    raw = CSVDataset(filepath=str(bad), load_args=RAW_LOAD_ARGS).load()
    with pytest.raises(DataValidationError, match="high_below_max.csv, column 'High'"):
        run(raw, params(filepath=str(bad), min_rows=5))


def test_node_works_on_parquet_loaded_frame(tmp_path):
    """The documented Parquet override: a typed frame with the dates as index."""
    raw = CSVDataset(filepath=str(SP500_CSV)).load()
    raw["Date"] = pd.to_datetime(raw["Date"], format="%m/%d/%Y")
    raw.set_index("Date").to_parquet(tmp_path / "sp.parquet")
    loaded = ParquetDataset(filepath=str(tmp_path / "sp.parquet")).load()
    prices, report = ingest(loaded, params(filepath=str(tmp_path / "sp.parquet")))
    from_csv, _ = ingest(CSVDataset(filepath=str(SP500_CSV), load_args=RAW_LOAD_ARGS).load(), params())
    pd.testing.assert_frame_equal(prices, from_csv)
    assert report["source"].endswith("sp.parquet")


def test_dataset_recorded_source_wins():
    raw = CSVDataset(filepath=str(SP500_CSV), load_args=RAW_LOAD_ARGS).load()
    raw.attrs["source"] = "yfinance ^GSPC"
    _, report = ingest(raw, params())
    assert report["source"] == "yfinance ^GSPC"


def test_warning_is_logged(fixture_path, caplog):
    raw = CSVDataset(filepath=str(fixture_path("unsorted.csv")), load_args=RAW_LOAD_ARGS).load()
    with caplog.at_level(logging.WARNING):
        run(raw, params(filepath="unsorted.csv", min_rows=5))
    assert "unsorted.csv" in caplog.text and "sorted by date" in caplog.text


# --------------------------------------------------------------------------- N = 1 and N > 1
def _write(folder, n: int, bad: str | None = None):
    """A price file in ``folder``: one instrument's OHLCV (N = 1) or a long file of AAA and BBB
    (N = 2), 30 business days each, with ``bad`` broken in AAA's rows."""
    dates = pd.bdate_range("2021-01-04", periods=30).strftime("%Y-%m-%d")
    rows = []
    for t in ("AAA", "BBB")[:n]:
        for i, d in enumerate(dates):
            close = 100.0 + i + (5 if t == "BBB" else 0)
            rows.append(
                {
                    "Ticker": t,
                    "Date": d,
                    "Open": close,
                    "High": close + 1,
                    "Low": close - 1,
                    "Close": close,
                    "Volume": 1000,
                }
            )
    frame = pd.DataFrame(rows).astype({"Close": "object"})
    if bad == "row":
        frame.loc[7, "Close"] = "oops"  # AAA's eighth bar: file row 8, line 9
    if bad == "column":
        frame = frame.drop(columns="Close")
    if n == 1:
        frame = frame.drop(columns="Ticker")
    path = folder / f"prices_{n}.csv"
    frame.to_csv(path, index=False)
    return path


def _load(path):
    raw = CSVDataset(filepath=str(path), load_args=RAW_LOAD_ARGS).load()
    raw.attrs["source"] = str(path)
    return raw


WHO = {1: r"prices_1\.csv", 2: r"prices_2\.csv, ticker AAA"}  # the file, and the ticker in a universe


@pytest.mark.parametrize("n", [1, 2])
@pytest.mark.parametrize(
    ("bad", "over", "message"),
    [
        ("column", {}, r"prices_{n}\.csv: missing required columns: \['Close'\]"),
        ("row", {}, r"{who}, column 'Close': non-numeric values: row 8 \(line 9\).*'oops'"),
        (None, {"min_rows": 31}, r"{who}: too few rows: 30 usable rows.*data_ingestion.min_rows=31"),
    ],
    ids=["column", "row", "rows"],
)
def test_bad_input_gets_the_same_error_at_one_and_many(tmp_path, n, bad, over, message):
    """The file, column, row, ticker and parameter are named alike for a universe of one and of two."""
    path = _write(tmp_path, n, bad)
    with pytest.raises(DataValidationError, match=message.format(n=n, who=WHO[n])):
        ingest_prices(_load(path), params(filepath=str(path), **over))


@pytest.mark.parametrize("choice", [{"ticker": "ZZZ"}, {"tickers": ["AAA", "ZZZ"]}], ids=["one", "many"])
def test_a_ticker_not_in_the_file_is_named_with_those_available(tmp_path, choice):
    path = _write(tmp_path, 2)
    with pytest.raises(DataValidationError, match=r"prices_2\.csv.*ZZZ.*not in the file.*AAA', 'BBB"):
        ingest_prices(_load(path), params(filepath=str(path), **choice))


def test_your_own_universe_by_params(tmp_path):
    """README "Your own data": a universe file anywhere, named on the command line, runs through
    data_ingestion into one panel under the portfolio env; the report names the file and tickers."""
    root = copy_project(tmp_path / "project", envs=("base", "portfolio"))
    universe = _write(tmp_path, 2)
    result = kedro(
        root,
        "run",
        "--pipelines",
        "data_ingestion",
        "--env",
        "portfolio",
        "--params",
        f"data_ingestion.filepath={universe},data_ingestion.tickers=BBB AAA,data_ingestion.min_rows=20",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((root / "data/08_reporting/data_quality_report.json").read_text())
    assert report["source"] == str(universe) and report["tickers"] == ["BBB", "AAA"]
    assert not (root / "data/03_primary/primary_prices.parquet").exists()
