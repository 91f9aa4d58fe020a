"""Panels from synthetic long and wide tables: alignment, no back-fill, errors naming the ticker."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reinforce_strategy_creator.market_data import DataValidationError
from reinforce_strategy_creator.universe import (
    ingest,
    universe_from_long,
    universe_from_wide,
    universe_from_yfinance,
)

DAYS = pd.bdate_range("2021-01-04", periods=40)


def _fmt(x: float) -> str:
    return repr(float(x))


def _wide(closes: dict[str, pd.Series]) -> pd.DataFrame:
    """Strings as read_raw_csv gives them: empty cells where a ticker has no bar."""
    out = pd.DataFrame({"Date": [d.date().isoformat() for d in DAYS]})
    for t, s in closes.items():
        out[t] = ["" if d not in s.index else _fmt(s[d]) for d in DAYS]
    return out


def _long(closes: dict[str, pd.Series], order: list[int]) -> pd.DataFrame:
    rows = [(t, d.date().isoformat(), _fmt(v)) for t, s in closes.items() for d, v in s.items()]
    rows = [rows[i % len(rows)] for i in order] if order else rows
    return pd.DataFrame(rows, columns=["Symbol", "Date", "Close"])


@st.composite
def universes(draw):
    """2-4 tickers, each listed over a contiguous stretch of DAYS (>= 2 bars) that includes day 20."""
    n = draw(st.integers(2, 4))
    closes = {}
    for k in range(n):
        start, end = draw(st.integers(0, 19)), draw(st.integers(20, len(DAYS) - 1))
        values = draw(
            st.lists(
                st.integers(1, 10_000_000).map(lambda cents: cents / 100),
                min_size=end - start + 1,
                max_size=end - start + 1,
            )
        )
        closes[f"T{k}"] = pd.Series(values, index=DAYS[start : end + 1])
    return closes


@settings(max_examples=40, deadline=None)
@given(universes(), st.randoms(use_true_random=False))
def test_wide_and_long_renderings_give_the_same_panel(closes, rnd):
    order = list(range(sum(len(s) for s in closes.values())))
    rnd.shuffle(order)  # a long file in any row order
    wide = universe_from_wide(_wide(closes), source="wide.csv")
    long = universe_from_long(_long(closes, order), source="long.csv")
    # a long file lists tickers in order of first appearance; the panels agree column by column
    assert wide.tickers == tuple(closes) and set(long.tickers) == set(closes)
    pd.testing.assert_frame_equal(wide.prices, long.prices.reindex(columns=wide.prices.columns))
    assert wide.fields == long.fields == ("Close",)
    assert dict(wide.first_date) == dict(long.first_date) == {t: s.index[0] for t, s in closes.items()}
    for t, s in closes.items():
        col = wide.prices[("Close", t)]
        np.testing.assert_allclose(col.loc[s.index].to_numpy(), s.to_numpy(), rtol=1e-15)  # as written
        assert col.loc[col.index < s.index[0]].isna().all()  # no back-fill before the first bar
        assert col.loc[col.index > s.index[-1]].isna().all()  # no forward-fill after the last
    assert wide.shared_dates.equals(
        pd.DatetimeIndex(sorted(set.intersection(*(set(s.index) for s in closes.values()))), name="date")
    )


def test_internal_gap_is_left_nan_and_reported():
    closes = {"A": pd.Series(1.0 + np.arange(10), index=DAYS[:10]), "B": pd.Series(5.0, index=DAYS[:10])}
    closes["A"] = closes["A"].drop(DAYS[4])
    u = universe_from_long(_long(closes, []), source="gappy.csv")
    assert np.isnan(u.prices.loc[DAYS[4], ("Close", "A")])
    assert u.report["per_ticker"]["A"]["missing_inside"] == {
        "count": 1,
        "dates": [DAYS[4].date().isoformat()],
    }
    assert any("left NaN, not filled" in w and "A: 1" in w for w in u.report["warnings"])
    assert len(u.ticker("A")) == 9


def test_no_shared_date_names_the_tickers():
    closes = {"EARLY": pd.Series(1.0, index=DAYS[:10]), "LATE": pd.Series(2.0, index=DAYS[20:])}
    with pytest.raises(DataValidationError, match="share no date") as err:
        universe_from_wide(_wide(closes), source="disjoint.csv")
    message = str(err.value)
    assert "disjoint.csv" in message and "EARLY" in message and "LATE" in message
    assert "after EARLY's last bar" in message


@pytest.mark.parametrize(
    ("cell", "what"),
    [("-3.0", "non-positive prices"), ("abc", "non-numeric values"), ("", "missing values")],
)
def test_bad_wide_cell_names_ticker_column_and_line(cell, what):
    wide = _wide({"AAA": pd.Series(1.0, index=DAYS), "BBB": pd.Series(2.0, index=DAYS)})
    wide.loc[7, "BBB"] = cell  # row 8, line 9 of the file
    with pytest.raises(DataValidationError) as err:
        universe_from_wide(wide, source="w.csv")
    message = str(err.value)
    assert message.startswith("w.csv, ticker BBB, column 'BBB'") and what in message
    assert "row 8 (line 9)" in message and "AAA" not in message


def test_conflicting_duplicate_in_long_file_names_ticker_and_line():
    closes = {"AAA": pd.Series(1.0, index=DAYS[:5]), "BBB": pd.Series(2.0, index=DAYS[:5])}
    long = _long(closes, [])
    long.loc[len(long)] = ["BBB", DAYS[2].date().isoformat(), "2.5"]  # row 11, line 12
    with pytest.raises(DataValidationError, match="conflicting duplicate") as err:
        universe_from_long(long, source="l.csv")
    assert "ticker BBB" in str(err.value) and "line 12" in str(err.value)


def test_identical_duplicate_is_dropped_with_a_warning():
    closes = {"AAA": pd.Series(1.0, index=DAYS[:5]), "BBB": pd.Series(2.0, index=DAYS[:5])}
    long = _long(closes, [])
    long.loc[len(long)] = long.loc[1]
    u = universe_from_long(long, source="l.csv")
    assert u.report["per_ticker"]["AAA"]["rows_dropped"][0]["count"] == 1
    assert any("ticker AAA" in w and "identical duplicate" in w for w in u.report["warnings"])


def test_partial_fields_are_refused():
    long = _long({"AAA": pd.Series(1.0, index=DAYS[:5])}, [])
    long["Volume"] = "10"
    with pytest.raises(DataValidationError, match=r"Close alone.*\['Close', 'Volume'\]"):
        universe_from_long(long, source="l.csv")


def test_one_letter_tickers_are_tickers_not_fields():
    u = universe_from_wide(
        _wide({"C": pd.Series(1.0, index=DAYS), "V": pd.Series(2.0, index=DAYS)}), source="w"
    )
    assert u.tickers == ("C", "V")


def test_wide_file_with_field_columns_is_refused():
    wide = _wide({"Open": pd.Series(1.0, index=DAYS), "Close": pd.Series(1.0, index=DAYS)})
    with pytest.raises(DataValidationError, match="single-series price file"):
        universe_from_wide(wide, source="ohlc.csv")


def test_long_close_only_with_adj_close_is_adjusted():
    long = _long({"AAA": pd.Series(10.0, index=DAYS[:4])}, [])
    long["Adj Close"] = ["5.0", "5.0", "10.0", "10.0"]  # a 2:1 split between day 1 and day 2
    long["Close"] = ["10.0", "10.0", "10.0", "10.0"]
    u = universe_from_long(long, source="l.csv")
    assert u.prices[("Close", "AAA")].tolist() == [5.0, 5.0, 10.0, 10.0]
    assert u.report["per_ticker"]["AAA"]["splits_adjusted"] == [
        {"date": DAYS[2].date().isoformat(), "ratio": 2.0}
    ]


@pytest.mark.parametrize("entry", ["universe_from_yfinance", "data_ingestion"])
def test_yfinance_universe_uses_the_cached_download(tmp_path, monkeypatch, entry):
    """A yfinance ticker list, from the library or from ``data_ingestion.format: yfinance``."""
    monkeypatch.chdir(tmp_path)  # data_ingestion caches under data/01_raw of the project (here)
    calls = []

    def fake(ticker, start, end, interval):
        calls.append(ticker)
        idx = pd.DatetimeIndex(DAYS[:5] if ticker == "AAA" else DAYS[2:7], name="Date")
        close = np.linspace(10, 11, 5)
        return pd.DataFrame(
            {
                "Open": close,
                "High": close + 1,
                "Low": close - 1,
                "Close": close,
                "Adj Close": close,
                "Volume": 1.0,
            },
            index=idx,
        )

    window = {"start": "2021-01-01", "end": "2021-03-01"}
    if entry == "data_ingestion":
        settings = {"format": "yfinance", "tickers": ["aaa", "BBB"], "min_rows": 2, **window}
        u = ingest(None, source="yfinance", settings=settings, download_fn=fake)
    else:
        u = universe_from_yfinance(["aaa", "BBB"], cache_dir="data/01_raw", download_fn=fake, **window)
    assert calls == ["AAA", "BBB"] and u.tickers == ("AAA", "BBB")
    assert u.first_date["BBB"] == DAYS[2] and u.prices[("Close", "BBB")].iloc[:2].isna().all()
    assert len(list((tmp_path / "data/01_raw").glob("yfinance_*.csv"))) == 2


def test_importable_without_kedro():
    import subprocess
    import sys

    code = (
        "import sys, reinforce_strategy_creator.universe as u; "
        "assert not [m for m in sys.modules if m.split('.')[0] == 'kedro'], 'kedro imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
