"""Stale opens (an Open that is a copy of the previous Close) are counted, reported and warned about.

Expectations on the real files are computed independently here with plain pandas on the raw
CSV (exact equality of the file's numbers), never with the functions under test.
"""

from __future__ import annotations

import logging
import math
import re

import numpy as np
import pandas as pd
import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner

from reinforce_strategy_creator.market_data import (
    IngestionParams,
    normalise_prices,
    read_raw_csv,
)
from reinforce_strategy_creator.params.base import ParameterError
from reinforce_strategy_creator.pipelines.data_ingestion import create_pipeline
from reinforce_strategy_creator.pipelines.deployment.nodes import normalise_feed
from tests.support.project import NASDAQ_CSV, SP500_CSV, STOCKS_CSV

WARNING = "stale opens"


def expected_by_year(path, ticker: str | None = None) -> pd.DataFrame:
    """Independent: per year of the bar, bars with a previous bar and how many open at that close."""
    raw = pd.read_csv(path)
    if ticker is not None:
        raw = raw[raw["Ticker"] == ticker]
    dates = pd.to_datetime(raw["Date"], format="mixed")
    frame = pd.DataFrame(
        {"year": dates.dt.year.to_numpy(), "stale": (raw["Open"] == raw["Close"].shift(1)).to_numpy()}
    ).iloc[1:]
    out = frame.groupby("year")["stale"].agg(bars="size", stale="sum")
    out["fraction"] = out["stale"] / out["bars"]
    return out


def stale_warnings(caplog) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and WARNING in r.getMessage()
    ]


@pytest.fixture(scope="session")  # session: not rebuilt when xdist interleaves modules
def sp500():
    return normalise_prices(read_raw_csv(SP500_CSV), source="sp500.csv", settings={})


def test_sp500_lists_exactly_the_years_the_data_show(sp500):
    expected = expected_by_year(SP500_CSV)
    above = [int(y) for y in expected.index[expected["fraction"] > 0.05]]
    # the known facts (shared/data/README.md): 1999-2005 about 95 %, then fewer until 2013
    assert above[:7] == list(range(1999, 2006)) and max(above) == 2013
    assert all(expected.loc[y, "fraction"] > 0.9 for y in range(1999, 2006))
    report = sp500[1]["stale_open"]
    assert report["years_above_threshold"] == above
    assert report["threshold"] == 0.05
    assert report["rtol"] == 1e-9
    assert report["bars_checked"] == 5030  # every bar but the first
    assert report["stale_bars"] == int(expected["stale"].sum())
    assert report["overall_fraction"] == pytest.approx(expected["stale"].sum() / expected["bars"].sum())
    assert set(report["by_year"]) == {str(y) for y in expected.index}
    for year, row in expected.iterrows():
        got = report["by_year"][str(year)]
        assert (got["bars"], got["stale"]) == (row["bars"], row["stale"])
        assert got["fraction"] == pytest.approx(row["fraction"])


def test_sp500_warning_in_report_names_years_and_fix(sp500):
    msgs = [w for w in sp500[1]["warnings"] if WARNING in w]
    assert len(msgs) == 1
    msg = msgs[0]
    assert msg.startswith("sp500.csv")
    for year in sp500[1]["stale_open"]["years_above_threshold"]:
        assert str(year) in msg
    assert "1999 (96.8%)" in msg and "2013 (26.2%)" in msg
    assert "environment.fill_price: next_close" in msg and "data_ingestion.stale_open_threshold=0.05" in msg
    assert "2014" not in msg.split(";")[0]  # a year under the threshold is not named


def test_nasdaq_has_real_opens(caplog):
    expected = expected_by_year(NASDAQ_CSV)
    assert (expected["fraction"] <= 0.05).all()
    with caplog.at_level(logging.WARNING):
        _, report = normalise_prices(read_raw_csv(NASDAQ_CSV), source="nasdaq.csv", settings={})
    assert report["stale_open"]["years_above_threshold"] == []
    assert report["stale_open"]["stale_bars"] == int(expected["stale"].sum())
    assert not stale_warnings(caplog) and not any(WARNING in w for w in report["warnings"])


# --------------------------------------------------------------------------- synthetic, known fraction
def synthetic(n_first: int = 40, n_second: int = 40) -> tuple[pd.DataFrame, dict[int, int]]:
    """Two calendar years of bars; in 2019 every 4th bar (from the second) copies the previous close
    exactly or within 1e-12 (float noise), other bars open 1e-6 away (one tick: not stale). 2020 has
    one stale bar. Returns the raw string table and the stale count per year."""
    dates = list(pd.bdate_range(end="2019-12-31", periods=n_first)) + list(
        pd.bdate_range(start="2020-01-02", periods=n_second)
    )
    close = 100.0 * np.exp(np.linspace(0.0, 0.3, len(dates)))
    opens = close.copy()
    opens[1:] = close[:-1] * (1 + 1e-6)  # near but not equal: a real open one tick away
    stale = {2019: 0, 2020: 0}
    for i in range(1, len(dates)):
        if (i < n_first and i % 4 == 0) or i == n_first + 5:
            opens[i] = close[i - 1] * (1 + (1e-12 if i % 8 == 0 else 0.0))
            stale[dates[i].year] += 1
    high = np.maximum(opens, close) * 1.01
    low = np.minimum(opens, close) * 0.99
    raw = pd.DataFrame(
        {
            "Date": [d.strftime("%Y-%m-%d") for d in dates],
            "Open": [repr(float(v)) for v in opens],
            "High": [repr(float(v)) for v in high],
            "Low": [repr(float(v)) for v in low],
            "Close": [repr(float(v)) for v in close],
            "Volume": "1000",
        }
    )
    return raw, stale


def test_synthetic_known_fraction():
    raw, stale = synthetic()
    _, report = normalise_prices(raw, source="synthetic", settings={"min_rows": 10})
    s = report["stale_open"]
    assert stale == {2019: 9, 2020: 1}
    # 2019: bars 1..39 have a previous close (39 bars), 2020: 40 bars
    assert s["by_year"] == {
        "2019": {"bars": 39, "stale": 9, "fraction": 9 / 39},
        "2020": {"bars": 40, "stale": 1, "fraction": 1 / 40},
    }
    assert s["years_above_threshold"] == [2019]
    assert s["stale_bars"] == 10 and s["bars_checked"] == 79 and s["overall_fraction"] == 10 / 79


@pytest.mark.parametrize(
    ("threshold", "listed"), [(0.0, [2019, 2020]), (1 / 40, [2019]), (9 / 39, []), (1.0, [])]
)
def test_threshold_is_strict(threshold, listed):
    raw, _ = synthetic()
    _, report = normalise_prices(
        raw, source="s", settings={"min_rows": 10, "stale_open_threshold": threshold}
    )
    assert report["stale_open"]["years_above_threshold"] == listed
    assert report["stale_open"]["threshold"] == threshold
    assert any(WARNING in w for w in report["warnings"]) == bool(listed)


def test_computed_on_the_ingested_rows_sorted_and_deduplicated():
    raw, _ = synthetic()
    _, ordered = normalise_prices(raw, source="s", settings={"min_rows": 10})
    shuffled = pd.concat([raw.sample(frac=1.0, random_state=3), raw.iloc[[5, 6]]], ignore_index=True)
    _, messy = normalise_prices(shuffled, source="s", settings={"min_rows": 10})
    assert not messy["was_sorted"] and messy["rows_dropped"]
    assert messy["stale_open"] == ordered["stale_open"]


# --------------------------------------------------------------------------- adjustment
@pytest.mark.parametrize("ticker", ["AAPL", "IBM", "MSFT", "GOOG"])
def test_stale_opens_survive_split_and_dividend_adjustment(ticker):
    """On the stocks file (Adj Close != Close: adjustment is not the identity) the report counts
    exactly the opens that are copies in the raw file. Comparing the ADJUSTED Open with the ADJUSTED
    previous Close finds the same bars except where the adjustment factor changes between the two
    bars (ex-dividend and split days): the claim "adjustment preserves equality" holds per bar only."""
    raw = read_raw_csv(STOCKS_CSV)
    prices, report = normalise_prices(raw, source="stocks", settings={"ticker": ticker, "min_rows": 100})
    assert report["adjustments"]["applied"]
    expected = expected_by_year(STOCKS_CSV, ticker)
    assert expected["stale"].sum() > 0
    got = {int(y): (v["bars"], v["stale"]) for y, v in report["stale_open"]["by_year"].items()}
    assert got == {int(y): (r["bars"], r["stale"]) for y, r in expected.iterrows()}

    rows = raw[raw["Ticker"] == ticker]
    raw_open, raw_close = rows["Open"].astype(float).to_numpy(), rows["Close"].astype(float).to_numpy()
    factor = rows["Adj Close"].astype(float).to_numpy() / raw_close
    assert not np.allclose(factor, 1.0)
    raw_stale = raw_open[1:] == raw_close[:-1]
    o, c = prices["Open"].to_numpy(), prices["Close"].to_numpy()
    adj_stale = np.abs(o[1:] - c[:-1]) <= 1e-9 * c[:-1]
    factor_changes = ~np.isclose(factor[1:], factor[:-1], rtol=1e-9, atol=0.0)
    disagree = raw_stale != adj_stale
    assert not (disagree & ~factor_changes).any()  # equal wherever the factor is the same
    assert raw_stale.sum() - adj_stale.sum() == (disagree & raw_stale).sum()  # only misses, never extras
    assert int(disagree.sum()) == {"IBM": 1}.get(ticker, 0)  # the one ex-dividend day docs/data.md names


# --------------------------------------------------------------------------- pipeline: one warning
def test_pipeline_logs_one_warning_naming_the_years(caplog):
    raw = read_raw_csv(SP500_CSV)
    params = {
        "filepath": str(SP500_CSV),
        "ticker": None,
        "min_rows": 252,
        "gap_factor": 5.0,
        "date_format": None,
        "adjust": True,
        "stale_open_threshold": 0.05,
    }
    catalog = DataCatalog(
        {
            "data_ingestion.raw_prices": MemoryDataset(raw, copy_mode="assign"),
            "params:data_ingestion": MemoryDataset(params),
        }
    )
    with caplog.at_level(logging.WARNING):
        SequentialRunner().run(create_pipeline(), catalog)
    msgs = stale_warnings(caplog)
    assert len(msgs) == 1, msgs
    report = catalog.load("data_quality_report")
    years = report["stale_open"]["years_above_threshold"]
    assert years == [int(y) for y, r in expected_by_year(SP500_CSV).iterrows() if r["fraction"] > 0.05]
    assert all(re.search(rf"\b{y} \(\d+\.\d%\)", msgs[0]) for y in years)
    assert "environment.fill_price: next_close" in msgs[0]


# --------------------------------------------------------------------------- bad parameter
@pytest.mark.parametrize("value", [-0.01, 1.5, "0.05", True, math.nan, math.inf, None])
def test_bad_threshold_names_the_parameter(value):
    with pytest.raises(
        ParameterError,
        match=re.escape("data_ingestion.stale_open_threshold: ") + f".*got {re.escape(repr(value))}",
    ):
        IngestionParams.parse({"stale_open_threshold": value})


def test_bad_threshold_in_the_deployment_feed_names_the_feed_parameter():
    raw = read_raw_csv(NASDAQ_CSV)
    feed = {
        "filepath": "feed.csv",
        "ticker": None,
        "date_format": None,
        "adjust": True,
        "min_rows": 252,
        "gap_factor": 5.0,
        "stale_open_threshold": 2,
    }
    with pytest.raises(
        ParameterError,
        match=r"deployment\.feed\.stale_open_threshold: .*\(got 2\).*"
        r"parameters_deployment\.yml",
    ) as info:
        normalise_feed(raw, {"feed": feed})
    assert "data_ingestion" not in str(info.value)


def test_feed_warning_names_the_feed_parameter(caplog):
    raw = read_raw_csv(SP500_CSV)
    feed = {
        "filepath": "feed.csv",
        "ticker": None,
        "date_format": None,
        "adjust": True,
        "min_rows": 252,
        "gap_factor": 5.0,
        "stale_open_threshold": 0.05,
    }
    with caplog.at_level(logging.WARNING):
        normalise_feed(raw, {"feed": feed, "paper_start": "1999-01-01"})
    msgs = stale_warnings(caplog)
    assert len(msgs) == 1 and "deployment.feed.stale_open_threshold=0.05" in msgs[0]


@pytest.mark.parametrize("paper_start, years", [("2018-01-01", []), ("2012-06-01", ["2012", "2013"])])
def test_the_feed_warns_only_about_the_years_it_trades(caplog, paper_start, years):
    """A paper-trading feed cares about the bars from deployment.paper_start on: the stale years of the
    history before them stay in the report but do not raise a warning on every daily run."""
    raw = read_raw_csv(SP500_CSV)
    feed = {
        "filepath": "feed.csv",
        "ticker": None,
        "date_format": None,
        "adjust": True,
        "min_rows": 252,
        "gap_factor": 5.0,
        "stale_open_threshold": 0.05,
    }
    with caplog.at_level(logging.WARNING, logger="reinforce_strategy_creator.market_data"):
        normalise_feed(raw, {"feed": feed, "paper_start": paper_start})
    msgs = [r.getMessage() for r in caplog.records if "stale opens" in r.getMessage()]
    if not years:
        assert msgs == []
    else:
        assert len(msgs) == 1 and all(f"{y} (" in msgs[0] for y in years) and "2005 (" not in msgs[0]
