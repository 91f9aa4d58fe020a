"""The data_ingestion pipeline on a DataCatalog of MemoryDatasets (spaceflights style)."""

from __future__ import annotations

import logging

import pandas as pd
import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner
from kedro_datasets.pandas import CSVDataset, ParquetDataset

from reinforce_strategy_creator.market_data import DataValidationError
from reinforce_strategy_creator.pipelines.data_ingestion import create_pipeline
from reinforce_strategy_creator.pipelines.data_ingestion.nodes import ingest_prices
from tests.support.project import PROJECT_ROOT, SP500_CSV, STOCKS_CSV

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


def test_pipeline_shape():
    pipe = create_pipeline()
    assert [n.name for n in pipe.nodes] == ["data_ingestion.ingest_prices"]
    assert pipe.inputs() == {"data_ingestion.raw_prices", "params:data_ingestion"}
    assert pipe.outputs() == {"primary_prices", "data_quality_report"}


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
    assert ingest_prices(raw, params())[1]["source"] == "data/01_raw/sp500_daily_1999_2018.csv"
    outside = tmp_path / "prices.csv"
    outside.write_text(SP500_CSV.read_text())
    raw.attrs["source"] = str(outside)
    assert ingest_prices(raw, params())[1]["source"] == str(outside)
    # run from another project (a copy elsewhere): a file of this checkout is outside it
    other = tmp_path / "other_project"
    other.mkdir()
    (other / "pyproject.toml").write_text("")
    monkeypatch.chdir(other)
    raw.attrs["source"] = str(SP500_CSV)
    assert ingest_prices(raw, params())[1]["source"] == str(SP500_CSV)


def test_error_names_the_file_relative_to_the_project(monkeypatch, fixture_path):
    monkeypatch.chdir(PROJECT_ROOT)
    bad = fixture_path("high_below_max.csv")
    raw = CSVDataset(filepath=str(bad), load_args=RAW_LOAD_ARGS).load()
    raw.attrs["source"] = str(bad)
    with pytest.raises(DataValidationError, match="^tests/market_data/fixtures/high_below_max.csv, column"):
        ingest_prices(raw, params(min_rows=5))


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
    prices, report = ingest_prices(loaded, params(filepath=str(tmp_path / "sp.parquet")))
    from_csv, _ = ingest_prices(CSVDataset(filepath=str(SP500_CSV), load_args=RAW_LOAD_ARGS).load(), params())
    pd.testing.assert_frame_equal(prices, from_csv)
    assert report["source"].endswith("sp.parquet")


def test_dataset_recorded_source_wins():
    raw = CSVDataset(filepath=str(SP500_CSV), load_args=RAW_LOAD_ARGS).load()
    raw.attrs["source"] = "yfinance ^GSPC"
    _, report = ingest_prices(raw, params())
    assert report["source"] == "yfinance ^GSPC"


def test_warning_is_logged(fixture_path, caplog):
    raw = CSVDataset(filepath=str(fixture_path("unsorted.csv")), load_args=RAW_LOAD_ARGS).load()
    with caplog.at_level(logging.WARNING):
        run(raw, params(filepath="unsorted.csv", min_rows=5))
    assert "unsorted.csv" in caplog.text and "sorted by date" in caplog.text
