"""Column-name and date-format normalisation, Parquet-loaded frames, and invariants."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reinforce_strategy_creator.market_data import DataValidationError, normalise_prices, read_raw_csv

SMALL = {"min_rows": 2}
BASE = {
    "Open": ["10", "11", "12"],
    "High": ["11", "12", "13"],
    "Low": ["9", "10", "11"],
    "Close": ["10.5", "11.5", "12.5"],
    "Volume": ["100", "200", "300"],
}


def frame(dates, date_col="Date", **renames):
    data = {date_col: dates, **BASE}
    df = pd.DataFrame(data)
    return df.rename(columns=renames)


@pytest.mark.parametrize(
    ("dates", "expected"),
    [
        (["1/4/1999", "1/5/1999", "12/31/1999"], ["1999-01-04", "1999-01-05", "1999-12-31"]),
        (["1999-01-04", "1999-01-05", "1999-12-31"], ["1999-01-04", "1999-01-05", "1999-12-31"]),
        (
            ["1999-01-04 09:30:00", "1999-01-04 10:30:00", "1999-01-04 11:30"],
            ["1999-01-04 09:30", "1999-01-04 10:30", "1999-01-04 11:30"],
        ),
        # time zones: converted to UTC, then made tz-naive
        (
            ["1999-01-04T09:30:00-05:00", "1999-01-04T10:30:00-05:00", "1999-01-04T16:30:00Z"],
            ["1999-01-04 14:30", "1999-01-04 15:30", "1999-01-04 16:30"],
        ),
        (
            ["1999-01-04 09:30:00+01:00", "1999-01-05 09:30:00+02:00", "1999-01-06 09:30:00+00:00"],
            ["1999-01-04 08:30", "1999-01-05 07:30", "1999-01-06 09:30"],
        ),
    ],
)
def test_date_formats(dates, expected):
    prices, report = normalise_prices(frame(dates), source="f.csv", settings=SMALL)
    assert list(prices.index) == [pd.Timestamp(e) for e in expected]
    assert prices.index.tz is None
    has_tz = any(re.search(r"(Z|[+-]\d\d:\d\d)$", d) for d in dates)
    assert ("UTC" in report["date_format"]) == has_tz


def test_explicit_day_first_format():
    prices, _ = normalise_prices(
        frame(["04/01/1999", "05/01/1999", "31/12/1999"]),
        source="f.csv",
        settings={**SMALL, "date_format": "%d/%m/%Y"},
    )
    assert prices.index[0] == pd.Timestamp("1999-01-04") and prices.index[2] == pd.Timestamp("1999-12-31")


@pytest.mark.parametrize("date_col", ["Date", "date", "Datetime", "Time", "timestamp", "Unnamed: 0", "DATE"])
def test_date_column_names(date_col):
    prices, report = normalise_prices(
        frame(["2020-01-02", "2020-01-03", "2020-01-06"], date_col), source="f", settings=SMALL
    )
    assert report["columns_found"]["date"] == date_col and len(prices) == 3


@pytest.mark.parametrize("adj_name", ["Adj Close", "adj_close", "adjclose", "ADJ CLOSE", "Adj_Close"])
def test_case_insensitive_columns_and_adj_close_spellings(adj_name):
    df = frame(
        ["2020-01-02", "2020-01-03", "2020-01-06"],
        Open="open",
        High="HIGH",
        Low="low",
        Close="close",
        Volume="volume",
    )
    df[adj_name] = ["5.25", "5.75", "6.25"]  # a 2:1 split later in history
    prices, report = normalise_prices(df, source="f", settings=SMALL)
    assert report["adjustments"]["applied"] and report["columns_found"]["Adj Close"] == adj_name
    np.testing.assert_allclose(prices["Close"], [5.25, 5.75, 6.25])
    np.testing.assert_allclose(prices["Open"], [5.0, 5.5, 6.0])
    np.testing.assert_allclose(prices["Volume"], [200, 400, 600])


def test_adj_close_optional():
    prices, report = normalise_prices(
        frame(["2020-01-02", "2020-01-03", "2020-01-06"]), source="f", settings=SMALL
    )
    assert report["adjustments"]["applied"] is False and "no Adj Close" in report["adjustments"]["note"]
    np.testing.assert_allclose(prices["Close"], [10.5, 11.5, 12.5])


def test_unnamed_index_csv(tmp_path):
    """A frame saved with DataFrame.to_csv() has an unnamed first column holding the dates."""
    df = frame(["2020-01-02", "2020-01-03", "2020-01-06"]).set_index("Date")
    df.index.name = None
    df.to_csv(tmp_path / "x.csv")
    prices, _ = normalise_prices(read_raw_csv(tmp_path / "x.csv"), source="x.csv", settings=SMALL)
    assert prices.index[0] == pd.Timestamp("2020-01-02")


def test_parquet_loaded_frame_with_datetime_index(tmp_path):
    df = frame(["2020-01-02", "2020-01-03", "2020-01-06"])
    df["Date"] = pd.to_datetime(df["Date"]).dt.tz_localize("America/New_York")
    df = df.set_index("Date").astype(float)
    df.to_parquet(tmp_path / "x.parquet")
    loaded = pd.read_parquet(tmp_path / "x.parquet")
    prices, report = normalise_prices(loaded, source="x.parquet", settings=SMALL)
    assert list(prices.index) == [
        pd.Timestamp("2020-01-02 05:00"),
        pd.Timestamp("2020-01-03 05:00"),
        pd.Timestamp("2020-01-06 05:00"),
    ]
    assert "UTC" in report["date_format"]
    np.testing.assert_allclose(prices["Close"], [10.5, 11.5, 12.5])


def test_parquet_with_bad_numbers_is_caught(tmp_path):
    df = frame(["2020-01-02", "2020-01-03", "2020-01-06"]).astype({c: float for c in BASE})
    df.loc[1, "Close"] = np.nan
    df.to_parquet(tmp_path / "x.parquet")
    with pytest.raises(DataValidationError, match=r"x\.parquet, column 'Close': missing values: row 2"):
        normalise_prices(pd.read_parquet(tmp_path / "x.parquet"), source="x.parquet", settings=SMALL)


def test_two_date_columns_rejected():
    df = frame(["2020-01-02", "2020-01-03", "2020-01-06"])
    df["Time"] = ["09:30", "09:30", "09:30"]
    with pytest.raises(DataValidationError, match="several date columns"):
        normalise_prices(df, source="f", settings=SMALL)


@st.composite
def ohlcv(draw):
    n = draw(st.integers(3, 40))
    price = st.floats(0.5, 1e4, allow_nan=False)
    rows = []
    for _ in range(n):
        o, c = draw(price), draw(price)
        hi = max(o, c) * draw(st.floats(1.0, 1.2))
        lo = min(o, c) * draw(st.floats(0.8, 1.0))
        factor = draw(st.sampled_from([1.0, 0.5, 0.25, 0.9731]))
        rows.append((o, hi, lo, c, c * factor, draw(st.integers(0, 10**9))))
    df = pd.DataFrame(rows, columns=["Open", "High", "Low", "Close", "Adj Close", "Volume"])
    dates = pd.bdate_range("2001-01-01", periods=n)
    order = draw(st.permutations(range(n)))
    df.insert(0, "Date", [d.strftime("%Y-%m-%d") for d in dates])
    return df.iloc[list(order)].astype(str).reset_index(drop=True)


@settings(max_examples=40, deadline=None)
@given(ohlcv())
def test_invariants(raw):
    prices, report = normalise_prices(raw, source="h.csv", settings=SMALL)
    assert len(prices) == len(raw) == report["rows_out"]
    assert prices.index.is_monotonic_increasing and prices.index.is_unique
    assert (prices["High"] >= prices[["Open", "Close"]].max(axis=1)).all()
    assert (prices["Low"] <= prices[["Open", "Close"]].min(axis=1)).all()
    src = raw.assign(Date=pd.to_datetime(raw["Date"])).set_index("Date").sort_index().astype(float)
    # adjusted close is Adj Close; notional (price x volume) is unchanged by adjustment
    np.testing.assert_allclose(prices["Close"].to_numpy(), src["Adj Close"].to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(
        (prices["Close"] * prices["Volume"]).to_numpy(), (src["Close"] * src["Volume"]).to_numpy(), rtol=1e-9
    )
    # the intraday shape (ratios within a bar) is preserved
    np.testing.assert_allclose(
        (prices["High"] / prices["Close"]).to_numpy(), (src["High"] / src["Close"]).to_numpy(), rtol=1e-12
    )
