"""Round trips over every shipped file and the split adjustment on the real stocks file."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from reinforce_strategy_creator.market_data import DataValidationError, normalise_prices, read_raw_csv
from tests.support.project import NASDAQ_CSV, SP500_CSV, STOCKS_CSV

STOCK_TICKERS = {"AAPL": 3270, "IBM": 3270, "MSFT": 3270, "GOOG": 2148, "FB": 196}


@pytest.fixture(scope="session")  # session: not rebuilt when xdist interleaves modules
def stocks_raw():
    return read_raw_csv(STOCKS_CSV)


def _check_contract(prices: pd.DataFrame) -> None:
    assert list(prices.columns) == ["Open", "High", "Low", "Close", "Volume"]
    assert all(str(t) == "float64" for t in prices.dtypes)
    assert isinstance(prices.index, pd.DatetimeIndex) and prices.index.name == "date"
    assert prices.index.tz is None and prices.index.is_unique and prices.index.is_monotonic_increasing
    assert np.isfinite(prices.to_numpy()).all()
    assert (prices[["Open", "High", "Low", "Close"]] > 0).all().all()
    assert (prices["High"] >= prices[["Open", "Close"]].max(axis=1)).all()
    assert (prices["Low"] <= prices[["Open", "Close"]].min(axis=1)).all()


@pytest.mark.parametrize("path", [SP500_CSV, NASDAQ_CSV], ids=["sp500", "nasdaq"])
def test_index_files_round_trip(path, tmp_path):
    raw = read_raw_csv(path)
    prices, report = normalise_prices(raw, source=str(path), settings={})
    _check_contract(prices)
    assert len(prices) == 5031 and report["rows_in"] == report["rows_out"] == 5031
    assert prices.index[0] == pd.Timestamp("1999-01-04") and prices.index[-1] == pd.Timestamp("2018-12-31")
    assert report["adjustments"]["applied"] is False  # Adj Close == Close in these files
    # values equal the file's numbers exactly
    np.testing.assert_array_equal(prices["Close"].to_numpy(), raw["Close"].astype(float).to_numpy())
    # the only calendar gap beyond 5 x the median spacing is the 9/11 closure
    assert report["gaps"]["count"] == 1
    assert report["gaps"]["longest"]["start"].startswith("2001-09-10")
    # Parquet round trip keeps the contract
    prices.to_parquet(tmp_path / "p.parquet")
    back = pd.read_parquet(tmp_path / "p.parquet")
    pd.testing.assert_frame_equal(back, prices)


@pytest.mark.parametrize("ticker", sorted(STOCK_TICKERS))
def test_each_stock_round_trips(stocks_raw, ticker):
    prices, report = normalise_prices(
        stocks_raw, source=str(STOCKS_CSV), settings={"ticker": ticker, "min_rows": 100}
    )
    _check_contract(prices)
    assert len(prices) == STOCK_TICKERS[ticker] == report["rows_out"]
    rows = stocks_raw[stocks_raw["Ticker"] == ticker]
    # adjusted Close is the file's Adj Close; dollar volume is unchanged by adjustment
    np.testing.assert_allclose(
        prices["Close"].to_numpy(), rows["Adj Close"].astype(float).to_numpy(), rtol=1e-12
    )
    np.testing.assert_allclose(
        (prices["Close"] * prices["Volume"]).to_numpy(),
        (rows["Close"].astype(float) * rows["Volume"].astype(float)).to_numpy(),
        rtol=1e-9,
    )


def test_fb_is_shorter_than_default_min_rows(stocks_raw):
    with pytest.raises(DataValidationError, match=r"196 usable rows for ticker FB.*min_rows=252"):
        normalise_prices(stocks_raw, source=str(STOCKS_CSV), settings={"ticker": "FB"})


def _close_returns(stocks_raw, ticker, adjusted):
    prices, _ = normalise_prices(
        stocks_raw, source=str(STOCKS_CSV), settings={"ticker": ticker, "adjust": adjusted}
    )
    return prices["Close"].pct_change()


@pytest.mark.parametrize(
    ("ticker", "split_day"), [("AAPL", "2000-06-21"), ("AAPL", "2005-02-28"), ("MSFT", "2003-02-18")]
)
def test_splits_no_longer_look_like_crashes(stocks_raw, ticker, split_day):
    raw_ret = _close_returns(stocks_raw, ticker, adjusted=False).loc[split_day]
    adj_ret = _close_returns(stocks_raw, ticker, adjusted=True).loc[split_day]
    assert -0.52 < raw_ret < -0.44  # the unadjusted file shows a 45-50% "crash"
    assert abs(adj_ret) < 0.10  # adjusted: an ordinary day


def test_real_crash_stays(stocks_raw):
    ret = _close_returns(stocks_raw, "AAPL", adjusted=True)
    assert ret.loc["2000-09-29"] < -0.50
    assert ret.idxmin() == pd.Timestamp("2000-09-29")
    # after adjustment no other AAPL or MSFT day falls more than 40%
    assert (ret.drop(pd.Timestamp("2000-09-29")).dropna() > -0.40).all()
    assert (_close_returns(stocks_raw, "MSFT", adjusted=True).dropna() > -0.40).all()


def test_adjust_false_warns_in_report(stocks_raw):
    _, report = normalise_prices(stocks_raw, source="s.csv", settings={"ticker": "IBM", "adjust": False})
    assert report["adjustments"]["applied"] is False
    assert any("NOT split/dividend adjusted" in w for w in report["warnings"])
