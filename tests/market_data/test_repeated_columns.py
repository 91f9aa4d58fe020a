"""A repeated column name is refused by every tabular reader, naming the file, the name and the
columns, before pandas renames the repeat (a second ``AAPL`` would load as a ticker ``AAPL.1``)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml
from kedro.io import AbstractDataset

from reinforce_strategy_creator.errors import InputError
from reinforce_strategy_creator.market_data import read_raw_csv
from reinforce_strategy_creator.universe import read_universe_csv

CONF = Path(__file__).resolve().parents[2] / "conf" / "base"
DATES = ("2020-01-02", "2020-01-03", "2020-01-06")


def _csv(header: list[str], row: list[str], sep: str = ",") -> str:
    lines = [sep.join(header)] + [sep.join([d, *row]) for d in DATES]
    return "\n".join(lines) + "\n"


def _catalog_entry(name: str, filepath: Path) -> AbstractDataset:
    """The project's catalog entry ``name`` (type and load_args as configured), reading ``filepath``."""
    for path in CONF.glob("catalog*.yml"):
        entries = yaml.safe_load(path.read_text()) or {}
        if name in entries:
            return AbstractDataset.from_config(name, {**entries[name], "filepath": str(filepath)})
    raise KeyError(name)


def _load_catalog(name: str):
    return lambda path: _catalog_entry(name, path).load()


OHLCV = ["Date", "Open", "High", "Low", "Close", "Volume"]
BAR = ["10", "11", "9", "10.5", "100"]

CASES = {
    "wide universe, exact repeat": (
        read_universe_csv,
        _csv(["Date", "AAPL", "MSFT", "AAPL"], ["1", "2", "3"]),
        ["'AAPL'", "columns 2 ('AAPL') and 4 ('AAPL')"],
    ),
    "wide universe, case and space variant": (
        read_universe_csv,
        _csv(["Date", "AAPL", "MSFT", " aapl"], ["1", "2", "3"]),
        ["'AAPL'", "columns 2 ('AAPL') and 4 (' aapl')"],
    ),
    "long universe, repeated Close": (
        read_universe_csv,
        "Ticker,Date,Close,Close\n" + "".join(f"AAA,{d},1,2\n" for d in DATES),
        ["'Close'", "columns 3 ('Close') and 4 ('Close')"],
    ),
    "price file, repeated Close": (
        read_raw_csv,
        _csv([*OHLCV, "Close"], [*BAR, "11"]),
        ["'Close'", "columns 5 ('Close') and 7 ('Close')"],
    ),
    "price file, Close and close": (
        read_raw_csv,
        _csv(
            ["Date", "Open", "High", "Low", "Close", "close", "Volume"], ["10", "11", "9", "10.5", "1", "100"]
        ),
        ["'Close'", "columns 5 ('Close') and 6 ('close')"],
    ),
    "data_ingestion.raw_prices, repeated Volume": (
        _load_catalog("data_ingestion.raw_prices"),
        _csv([*OHLCV, "Volume"], [*BAR, "7"]),
        ["'Volume'", "columns 6 ('Volume') and 7 ('Volume')"],
    ),
    "deployment feed, repeated Open": (
        _load_catalog("deployment.market_feed"),
        _csv(["Date", "Open", "Open", "High", "Low", "Close", "Volume"], ["10", *BAR]),
        ["'Open'", "columns 2 ('Open') and 3 ('Open')"],
    ),
    "data_ingestion.raw_prices, a universe with a repeated ticker": (
        _load_catalog("data_ingestion.raw_prices"),
        _csv(["Date", "MSFT", "AAPL", "AAPL"], ["1", "2", "3"]),
        ["'AAPL'", "columns 3 ('AAPL') and 4 ('AAPL')"],
    ),
    "portfolio index file, repeated column": (
        _load_catalog("portfolio.raw_index"),
        _csv(["Date", "SP500", "sp500 "], ["1", "2"]),
        ["'SP500'", "columns 2 ('SP500') and 3 ('sp500 ')"],
    ),
}


def _input_error(exc: BaseException) -> BaseException:
    """The InputError itself, or the one a Kedro DatasetError wraps."""
    while not isinstance(exc, InputError) and exc.__cause__ is not None:
        exc = exc.__cause__
    return exc


@pytest.mark.parametrize("case", list(CASES))
def test_a_repeated_column_name_is_refused_naming_file_name_and_columns(tmp_path, case):
    read, text, fragments = CASES[case]
    path = tmp_path / "input.csv"
    path.write_text(text)
    with pytest.raises(Exception) as info:
        read(path)
    error = _input_error(info.value)
    assert isinstance(error, InputError), repr(info.value)
    message = str(error)
    assert str(path) in message and "repeated column name" in message, message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


def test_the_check_reads_the_header_with_the_catalog_load_args(tmp_path):
    """A semicolon-separated file (load_args sep) is split as pandas splits it: a repeat is found,
    and distinct names pass."""
    path = tmp_path / "feed.csv"
    entry = {
        "type": "reinforce_strategy_creator.datasets.SourcedCSVDataset",
        "filepath": str(path),
        "load_args": {"dtype": "str", "sep": ";", "keep_default_na": False},
    }
    path.write_text(_csv(["Date", "AAPL", "AAPL"], ["1", "2"], sep=";"))
    with pytest.raises(Exception) as info:
        AbstractDataset.from_config("feed", entry).load()
    assert "columns 2 ('AAPL') and 3 ('AAPL')" in str(_input_error(info.value))
    path.write_text(_csv(["Date", "AAPL", "MSFT"], ["1", "2"], sep=";"))
    frame = AbstractDataset.from_config("feed", entry).load()
    assert list(frame.columns) == ["Date", "AAPL", "MSFT"] and frame.attrs["source"] == str(path)


def test_a_parquet_input_with_case_variant_names_is_refused(tmp_path):
    path = tmp_path / "prices.parquet"
    pd.DataFrame({"Date": list(DATES), "Close": [1.0, 2.0, 3.0], "close ": [1.0, 2.0, 3.0]}).to_parquet(path)
    dataset = AbstractDataset.from_config(
        "prices", {"type": "reinforce_strategy_creator.datasets.SourcedParquetDataset", "filepath": str(path)}
    )
    with pytest.raises(Exception) as info:
        dataset.load()
    message = str(_input_error(info.value))
    assert str(path) in message and "columns 2 ('Close') and 3 ('close ')" in message


def test_blank_header_cells_are_not_repeats(tmp_path):
    """Empty header cells (an index column written by pandas, a trailing comma) are not names."""
    path = tmp_path / "prices.csv"
    path.write_text(_csv(["", *OHLCV, ""], [*BAR, ""]).replace("\n2020", "\n0,2020"))
    assert len(read_raw_csv(path).columns) == 8
