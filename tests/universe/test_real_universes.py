"""The two shipped universes load into panels (docs/universe.md, "The shipped universes")."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from reinforce_strategy_creator.market_data import normalise_prices, read_raw_csv
from reinforce_strategy_creator.universe import FIELDS, read_universe_csv
from tests.support.project import SP500_20_CSV, SP500_INDEX_CLOSE_CSV, STOCKS_CSV

TWENTY = "AAPL AMD BAC BBY CVX GE HD JNJ JPM KO LLY MRK MSFT PEP PFE PG RRC UNH WMT XOM".split()
STOCK_ROWS = {"AAPL": 3270, "IBM": 3270, "MSFT": 3270, "GOOG": 2148, "FB": 196}


@pytest.fixture(scope="module")
def twenty():
    return read_universe_csv(SP500_20_CSV)


@pytest.fixture(scope="module")
def stocks():
    return read_universe_csv(STOCKS_CSV)


def test_twenty_stocks_close_only_1990_2022(twenty):
    assert twenty.tickers == tuple(TWENTY) and twenty.fields == ("Close",)
    prices = twenty.prices
    assert prices.columns.names == ["field", "ticker"]
    assert list(prices.columns) == [("Close", t) for t in TWENTY]
    assert prices.index.name == "date" and prices.index.is_monotonic_increasing and prices.index.is_unique
    assert len(prices) == 8313
    assert prices.index[0] == pd.Timestamp("1990-01-02") and prices.index[-1] == pd.Timestamp("2022-12-28")
    assert not prices.isna().any().any()  # every ticker trades on every date
    assert set(twenty.first_date.values()) == {pd.Timestamp("1990-01-02")}
    assert len(twenty.shared_dates) == 8313
    # values are the file's numbers, unchanged (already adjusted upstream)
    raw = read_raw_csv(SP500_20_CSV)
    np.testing.assert_array_equal(twenty.field("Close").to_numpy(), raw[TWENTY].astype(float).to_numpy())
    # AAPL's real -52% day is reported, not removed
    aapl = twenty.report["per_ticker"]["AAPL"]
    assert {"date": "2000-09-29", "move": pytest.approx(-0.52, abs=0.01)} in aapl["large_moves"]
    assert twenty.report["per_ticker"]["AAPL"]["adjustments"]["applied"] is False
    json.dumps(twenty.report)  # the report is JSON-able
    moves = {(t, m["date"]) for t, r in twenty.report["per_ticker"].items() for m in r["large_moves"]}
    assert moves == {
        ("AAPL", "2000-09-29"),
        ("AMD", "2016-04-22"),
        ("RRC", "1990-04-10"),
        ("RRC", "1998-10-19"),
    }
    assert sum("moves above 40%" in w for w in twenty.report["warnings"]) == 1


def test_index_close_file_is_a_one_ticker_universe():
    index = read_universe_csv(SP500_INDEX_CLOSE_CSV)
    assert index.tickers == ("SP500",) and index.fields == ("Close",) and len(index.prices) == 8313


def test_stocks_file_ohlcv_with_late_listings(stocks):
    assert stocks.tickers == ("AAPL", "FB", "GOOG", "IBM", "MSFT") and stocks.fields == FIELDS
    prices = stocks.prices
    assert prices.index[0] == pd.Timestamp("2000-03-01") and prices.index[-1] == pd.Timestamp("2013-03-01")
    assert stocks.first_date["GOOG"] == pd.Timestamp("2004-08-19")
    assert stocks.first_date["FB"] == pd.Timestamp("2012-05-18")
    assert len(prices) == 3270 and stocks.report["shared_dates"] == 196
    for ticker, rows in STOCK_ROWS.items():
        bars = stocks.ticker(ticker)
        assert len(bars) == rows and not bars.isna().any().any()
        before = prices.loc[prices.index < stocks.first_date[ticker]].xs(ticker, axis=1, level="ticker")
        assert before.isna().all().all()  # not tradable before its first bar: nothing back-filled
    assert len(prices.loc[prices.index < stocks.first_date["GOOG"]]) > 900
    assert stocks.tradable["FB"].sum() == 196
    assert stocks.shared_dates[0] == stocks.first_date["FB"]
    stale = {t: r["stale_open"]["years_above_threshold"] for t, r in stocks.report["per_ticker"].items()}
    assert stale == {"AAPL": [2003], "FB": [], "GOOG": [], "IBM": list(range(2000, 2008)), "MSFT": [2005]}


@pytest.mark.parametrize("ticker", sorted(STOCK_ROWS))
def test_each_ticker_equals_the_single_series_ingestion(stocks, ticker):
    """Same rules, same numbers: a ticker of the panel is what data_ingestion makes of it."""
    single, _ = normalise_prices(
        read_raw_csv(STOCKS_CSV), source=str(STOCKS_CSV), settings={"ticker": ticker, "min_rows": 100}
    )
    pd.testing.assert_frame_equal(stocks.ticker(ticker), single, check_names=False, check_freq=False)


def test_splits_are_found_and_adjusted(stocks):
    per = stocks.report["per_ticker"]
    found = {(t, s["date"]): s["ratio"] for t in per for s in per[t]["splits_adjusted"]}
    assert found == {
        ("AAPL", "2000-06-21"): pytest.approx(2.0, rel=0.01),
        ("AAPL", "2005-02-28"): pytest.approx(2.0, rel=0.01),
        ("MSFT", "2003-02-18"): pytest.approx(2.0, rel=0.01),
    }
    # the only overnight move above 40 % left in adjusted closes is AAPL's real crash
    moves = {(t, m["date"]) for t in per for m in per[t]["large_moves"]}
    assert moves == {("AAPL", "2000-09-29")}
    close = stocks.field("Close")
    jumps = (close / close.shift(1) - 1).abs()
    assert (jumps > 0.40).sum().sum() == 1


def test_unadjusted_splits_are_reported_and_warned():
    raw = read_universe_csv(STOCKS_CSV, tickers=["AAPL", "MSFT"], adjust=False)
    per = raw.report["per_ticker"]
    assert [s["date"] for s in per["AAPL"]["splits_found_not_adjusted"]] == ["2000-06-21", "2005-02-28"]
    assert {m["date"] for m in per["AAPL"]["large_moves"]} >= {"2000-06-21", "2005-02-28", "2000-09-29"}
    assert any("moves above 40%" in w and "2003-02-18" in w for w in raw.report["warnings"])
