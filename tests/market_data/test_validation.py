"""One test per validation rule, each on a real malformed file under fixtures/."""

from __future__ import annotations

import logging
import re

import pandas as pd
import pytest

from reinforce_strategy_creator.market_data import DataValidationError, normalise_prices, read_raw_csv
from reinforce_strategy_creator.params.base import ParameterError

SMALL = {"min_rows": 5}


def run(path, **params):
    raw = read_raw_csv(path)
    return normalise_prices(raw, source=str(path), settings={**SMALL, **params})


def expect_error(path, *fragments, **params):
    with pytest.raises(DataValidationError) as info:
        run(path, **params)
    message = str(info.value)
    assert str(path) in message, message  # names the file
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return message


@pytest.mark.parametrize(
    ("name", "fragments"),
    [
        ("missing_volume_column.csv", ["missing required columns", "'Volume'"]),
        ("unparseable_date.csv", ["column 'Date'", "unparseable dates", "row 5 (line 6)", "'2020-13-45'"]),
        ("missing_date.csv", ["column 'Date'", "missing dates", "row 7 (line 8)"]),
        ("non_numeric_open.csv", ["column 'Open'", "non-numeric", "row 4 (line 5)", "Open='abc'"]),
        ("missing_high.csv", ["column 'High'", "missing values", "row 6 (line 7)", "2020-01-09"]),
        ("non_positive_close.csv", ["column 'Close'", "non-positive", "row 8 (line 9)", "Close='-3.00'"]),
        (
            "high_below_max.csv",
            ["column 'High'", "High below max(Open, Close)", "row 3 (line 4)", "2020-01-06"],
        ),
        (
            "low_above_min.csv",
            ["column 'Low'", "Low above min(Open, Close)", "row 9 (line 10)", "2020-01-14"],
        ),
        (
            "conflicting_duplicates.csv",
            ["column 'Date'", "conflicting duplicate", "2020-01-09", "line 7", "line 8"],
        ),
        ("negative_volume.csv", ["column 'Volume'", "negative volume", "row 10 (line 11)", "Volume='-500'"]),
        ("empty_header_only.csv", ["empty", "0 data rows"]),
        ("mixed_timezones.csv", ["column 'Date'", "time zone", "row 3 (line 4)"]),
    ],
)
def test_each_rule_names_file_column_and_rows(fixture_path, name, fragments):
    expect_error(fixture_path(name), *fragments)


def test_zero_byte_file_is_a_clear_error(fixture_path):
    path = fixture_path("empty_zero_bytes.csv")
    with pytest.raises(DataValidationError, match=re.escape(str(path)) + ".*empty"):
        read_raw_csv(path)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(DataValidationError, match="not found"):
        read_raw_csv(tmp_path / "nope.csv")


def test_error_is_a_value_error(fixture_path):
    with pytest.raises(ValueError):
        run(fixture_path("missing_high.csv"))


def test_long_file_without_ticker_lists_tickers(fixture_path):
    expect_error(fixture_path("long_two_tickers.csv"), "data_ingestion.ticker is not set", "['AAA', 'BBB']")


def test_long_file_unknown_ticker_lists_tickers(fixture_path):
    expect_error(fixture_path("long_two_tickers.csv"), "'ZZZ'", "['AAA', 'BBB']", ticker="ZZZ")


def test_long_file_ticker_selects_rows(fixture_path):
    prices, report = run(fixture_path("long_two_tickers.csv"), ticker="bbb")
    assert report["ticker"] == "BBB" and report["rows_in"] == 24 and report["rows_out"] == 12
    assert len(prices) == 12


def test_ticker_on_single_series_file_is_an_error(fixture_path):
    expect_error(fixture_path("unsorted.csv"), "data_ingestion.ticker='AAA'", ticker="AAA")


def test_unsorted_rows_are_sorted_with_warning(fixture_path, caplog):
    with caplog.at_level(logging.WARNING):
        prices, report = run(fixture_path("unsorted.csv"))
    assert prices.index.is_monotonic_increasing and prices.index.is_unique
    assert report["was_sorted"] is False and report["warnings"]
    assert "not in increasing order" in caplog.text
    expected = read_raw_csv(fixture_path("unsorted.csv")).sort_values("Date")
    assert prices["Close"].tolist() == expected["Close"].astype(float).tolist()


def test_identical_duplicates_dropped_with_warning(fixture_path, caplog):
    with caplog.at_level(logging.WARNING):
        prices, report = run(fixture_path("identical_duplicates.csv"))
    assert len(prices) == 12 and prices.index.is_unique
    assert report["rows_in"] == 13 and report["rows_out"] == 12
    assert report["rows_dropped"] == [
        {"reason": "identical duplicate row", "count": 1, "dates": ["2020-01-07T00:00:00"]}
    ]
    assert "identical duplicate" in caplog.text


def test_calendar_gap_is_reported_not_rejected(fixture_path):
    prices, report = run(fixture_path("calendar_gap.csv"))
    assert len(prices) == 12
    gaps = report["gaps"]
    assert gaps["count"] == 1
    assert gaps["longest"]["start"] == "2020-01-09T00:00:00"
    assert gaps["longest"]["end"] == "2020-03-02T00:00:00"
    assert gaps["longest"]["spacing"].startswith("53 days")


@pytest.mark.parametrize(
    ("key", "value"),
    [("min_rows", 0), ("min_rows", "ten"), ("gap_factor", 0.5), ("ticker", ""), ("adjust", "yes")],
)
def test_bad_parameters_name_the_dotted_parameter(fixture_path, key, value):
    with pytest.raises(
        ParameterError, match=re.escape(f"data_ingestion.{key}: ") + f".*got {re.escape(repr(value))}"
    ):
        run(fixture_path("unsorted.csv"), **{key: value})


def test_explicit_date_format_mismatch_names_parameter(fixture_path):
    expect_error(fixture_path("unsorted.csv"), "data_ingestion.date_format", date_format="%d/%m/%Y")


def test_no_partial_output_on_error(fixture_path):
    """A failing call returns nothing: callers never get a half-cleaned frame."""
    result = None
    with pytest.raises(DataValidationError):
        result = run(fixture_path("low_above_min.csv"))
    assert result is None


def test_non_frame_input_rejected():
    with pytest.raises(DataValidationError, match="expected a table"):
        normalise_prices([1, 2, 3], source="x.csv", settings=SMALL)


def test_output_dtypes(fixture_path):
    prices, _ = run(fixture_path("unsorted.csv"))
    assert list(prices.columns) == ["Open", "High", "Low", "Close", "Volume"]
    assert all(str(t) == "float64" for t in prices.dtypes)
    assert isinstance(prices.index, pd.DatetimeIndex) and prices.index.name == "date"
    assert prices.index.tz is None


@pytest.mark.parametrize(
    ("fixture", "params", "fragment"),
    [
        ("unsorted.csv", {"ticker": "AAA"}, "deployment.feed.ticker='AAA'"),
        ("long_two_tickers.csv", {}, "deployment.feed.ticker is not set"),
        ("unsorted.csv", {"date_format": "%d/%m/%Y"}, "deployment.feed.date_format"),
        ("too_few_rows.csv", {"min_rows": 5}, "deployment.feed.min_rows=5"),
    ],
)
def test_feed_errors_name_the_feed_parameters(fixture_path, fixture, params, fragment):
    """The deployment feed uses the same rules; its errors name deployment.feed.*, never data_ingestion.*."""
    from reinforce_strategy_creator.params.deployment import DeploymentParams

    feed = DeploymentParams.parse({"feed": {**SMALL, **params}}).feed
    path = fixture_path(fixture)
    with pytest.raises(DataValidationError) as info:
        normalise_prices(read_raw_csv(path), source=str(path), settings=feed)
    message = str(info.value).replace(str(path), "<file>")
    assert fragment in message and "data_ingestion" not in message, message
