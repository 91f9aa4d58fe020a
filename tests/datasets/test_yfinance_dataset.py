"""YFinanceDataset with an injected fake downloader: no network is ever used."""

from __future__ import annotations

import builtins

import pandas as pd
import pytest
from kedro.io import DatasetError

from reinforce_strategy_creator.datasets import YFinanceDataset
from reinforce_strategy_creator.datasets.yfinance_dataset import _yfinance_download
from reinforce_strategy_creator.pipelines.data_ingestion.nodes import ingest_prices


def fake_frame(multi: bool = False) -> pd.DataFrame:
    idx = pd.DatetimeIndex(pd.bdate_range("2020-01-02", periods=5), name="Date")
    df = pd.DataFrame(
        {
            "Adj Close": [5.0, 5.1, 5.2, 5.3, 5.4],
            "Close": [10.0, 10.2, 10.4, 10.6, 10.8],
            "High": [10.5, 10.6, 10.9, 11.0, 11.0],
            "Low": [9.5, 9.9, 10.0, 10.1, 10.5],
            "Open": [9.8, 10.0, 10.3, 10.5, 10.6],
            "Volume": [100, 200, 300, 400, 500],
        },
        index=idx,
    )
    if multi:
        df.columns = pd.MultiIndex.from_product([df.columns, ["ACME"]], names=["Price", "Ticker"])
    return df


class FakeDownloader:
    def __init__(self, result=None, error=None):
        self.calls = []
        self.result, self.error = result, error

    def __call__(self, ticker, start, end, interval):
        self.calls.append((ticker, start, end, interval))
        if self.error:
            raise self.error
        return self.result


def make(tmp_path, fake, **kw):
    return YFinanceDataset(
        ticker="acme", start="2020-01-01", end="2020-02-01", cache_dir=str(tmp_path), download_fn=fake, **kw
    )


@pytest.mark.parametrize("multi", [False, True])
def test_cache_write_then_hit(tmp_path, multi):
    fake = FakeDownloader(fake_frame(multi))
    ds = make(tmp_path, fake)
    first = ds.load()
    assert fake.calls == [("ACME", "2020-01-01", "2020-02-01", "1d")]
    assert ds.cache_path.is_file() and ds.cache_path.parent == tmp_path
    assert ds.cache_path.name == "yfinance_ACME_2020-01-01_2020-02-01_1d.csv"
    second = make(tmp_path, FakeDownloader(error=AssertionError("must not download"))).load()
    pd.testing.assert_frame_equal(first, second)
    assert len(fake.calls) == 1
    assert "yfinance ACME" in second.attrs["source"]
    universe, report = ingest_prices(second, {"min_rows": 5})
    prices = universe.instrument()
    assert universe.tickers == ("ACME",)
    assert report["source"].startswith("yfinance ACME") and report["adjustments"]["applied"]
    assert prices["Close"].tolist() == pytest.approx([5.0, 5.1, 5.2, 5.3, 5.4])
    assert prices["Volume"].tolist() == pytest.approx([200, 400, 600, 800, 1000])


def test_refresh_downloads_again(tmp_path):
    fake = FakeDownloader(fake_frame())
    make(tmp_path, fake).load()
    make(tmp_path, fake, refresh=True).load()
    assert len(fake.calls) == 2


def test_network_failure_is_clear_and_writes_nothing(tmp_path):
    ds = make(tmp_path, FakeDownloader(error=ConnectionError("Name or service not known")))
    with pytest.raises(DatasetError, match="ACME.*failed: ConnectionError.*no other data is used"):
        ds.load()
    assert list(tmp_path.iterdir()) == []


def test_empty_download_is_an_error(tmp_path):
    ds = make(tmp_path, FakeDownloader(pd.DataFrame()))
    with pytest.raises(DatasetError, match="returned no rows"):
        ds.load()
    assert not ds.cache_path.exists()


def test_missing_yfinance_says_how_to_install(monkeypatch):
    real_import = builtins.__import__

    def no_yfinance(name, *args, **kwargs):
        if name == "yfinance":
            raise ImportError("No module named 'yfinance'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_yfinance)
    with pytest.raises(ValueError, match=r'pip install -e "\.\[yfinance\]"'):
        _yfinance_download("ACME", "2020-01-01", "2020-02-01", "1d")


def test_bad_dates_rejected(tmp_path):
    with pytest.raises(ValueError, match="start='01/01/2020' is not an ISO date"):
        YFinanceDataset(ticker="ACME", start="01/01/2020", cache_dir=str(tmp_path))


def test_read_only(tmp_path):
    with pytest.raises(DatasetError, match="read-only"):
        make(tmp_path, FakeDownloader(fake_frame())).save(fake_frame())


def test_catalog_config(tmp_path):
    from kedro.io import DataCatalog

    catalog = DataCatalog.from_config(
        {
            "raw": {
                "type": "reinforce_strategy_creator.datasets.YFinanceDataset",
                "ticker": "ACME",
                "start": "2020-01-01",
                "end": "2020-02-01",
                "cache_dir": str(tmp_path),
            }
        }
    )
    assert "raw" in catalog.filter()
