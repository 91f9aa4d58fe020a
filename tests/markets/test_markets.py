"""Real days resampled i.i.d. into markets of N >= 1 assets: every bar is a whole real day, null
markets have no structure, seeds reproduce markets, markets read back as files, bad input is
refused by name. Each behaviour is tested once, over one series (N = 1) and panels (N > 1)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from reinforce_strategy_creator.errors import InputError
from reinforce_strategy_creator.market_data import normalise_prices, read_raw_csv
from reinforce_strategy_creator.markets import (
    BUILDERS,
    SYNTHETIC_START,
    UNIVERSE_KINDS,
    MarketSpecError,
    day_moves,
    make_market,
    null_market,
    planted_suite,
    to_csv_frame,
)
from reinforce_strategy_creator.universe import read_universe_csv
from tests.support.markets import as_panel, drawn_rows, unplanted

SOURCES = ["one", "ohlcv4", "close20"]
#: every kind with the sources it is built on (the UNIVERSE_KINDS are cross-sectional: N >= 2 only)
KIND_SOURCES = [
    (k, s) for k in BUILDERS for s in ("one", "close20") if not (k in UNIVERSE_KINDS and s == "one")
]


def _lag1_autocorr(x: np.ndarray) -> np.ndarray:
    x = x - x.mean(axis=0)
    return (x[1:] * x[:-1]).sum(axis=0) / (x * x).sum(axis=0)


@pytest.mark.parametrize("source", SOURCES, indirect=True)
def test_every_bar_of_a_null_market_is_a_whole_real_day(source):
    """Bar by bar, every ticker's moves are the real moves of the ONE real date drawn for the bar,
    on the source's calendar; prices start at 100 and OHLC bars are consistent."""
    m = null_market(source, seed=3)
    own, real = unplanted(m), drawn_rows(m, source)
    assert set(own) == set(real)
    for name in own:
        np.testing.assert_allclose(own[name], real[name], rtol=1e-9, atol=1e-12, err_msg=name)
    p = as_panel(m.prices)
    assert m.prices.index.equals(pd.DatetimeIndex(getattr(source, "index"), name="date"))
    if "Open" in p.columns.get_level_values(0):
        assert (p["High"] >= np.maximum(p["Open"], p["Close"])).all().all()
        assert (p["Low"] <= np.minimum(p["Open"], p["Close"])).all().all()
        assert np.allclose(p["Open"].iloc[0], 100.0) and (np.abs(own["gap"][1:]) > 0).all()  # real opens
        assert m.environment == {"fill_price": "next_open"}
    else:
        assert np.allclose(p["Close"].iloc[0], 100.0) and m.environment == {"fill_price": "next_close"}
    # drawn from the whole pool of usable real days, about uniformly
    dates = pd.DatetimeIndex(as_panel(m.truth)["source_date"].iloc[:, 0]).dropna()
    assert dates.nunique() > 0.5 * len(day_moves(source))


def test_the_whole_row_check_fails_when_a_column_is_shuffled(universe20):
    """The same check catches a market whose tickers' moves come from different real dates."""
    m = null_market(universe20, seed=3)
    own = unplanted(m)["move"]
    own[1:, 0] = np.random.default_rng(0).permutation(own[1:, 0])
    assert not np.allclose(own[1:], drawn_rows(m, universe20)["move"][1:], atol=1e-6)


def test_rows_before_a_listing_are_never_drawn():
    dates = pd.bdate_range("2001-01-01", periods=400)
    rng = np.random.default_rng(5)
    close = pd.DataFrame(100 * np.exp(np.cumsum(rng.normal(0, 0.01, (400, 3)), axis=0)), index=dates)
    close.columns = ["A", "B", "LATE"]
    close.iloc[:100, 2] = np.nan  # LATE lists on row 100: its first move is row 101's
    m = null_market(close, seed=0, n_bars=3000)
    drawn = pd.DatetimeIndex(m.truth["source_date"]["A"]).dropna()
    assert drawn.min() == dates[101] and np.isfinite(m.close.to_numpy()).all()
    assert drawn.nunique() > 0.95 * (400 - 101)  # every usable day is drawn about equally often


@pytest.mark.parametrize("source", ["one", "close20"], indirect=True)
def test_null_markets_have_no_serial_structure(source):
    """Lag-1 autocorrelation of i.i.d. days is about N(0, 1/T): every ticker, 3 seeds, within 4 SE;
    the same check flags a planted autocorrelation of 0.15 (so it can fail)."""
    for seed in (0, 1, 2):
        x = np.diff(np.log(as_panel(null_market(source, seed).prices)["Close"].to_numpy()), axis=0)
        limit = 4.0 / np.sqrt(len(x))
        assert np.abs(_lag1_autocorr(x)).max() < limit, f"seed {seed}"
    ar = x.copy()
    ar[1:] += 0.15 * x[:-1]
    assert np.abs(_lag1_autocorr(ar)).min() > limit


@pytest.mark.parametrize("kind, source", KIND_SOURCES, indirect=["source"])
def test_same_seed_same_market(kind, source):
    """Same seed, same prices, truth and rule; another seed, another market; every kind of a seed
    is built from the same real days (and tickers) as that seed's null market."""
    kw = {"n_assets": 5} if kind in UNIVERSE_KINDS else {}
    a, b, c = (make_market(kind, source, s, **kw) for s in (11, 11, 12))
    pd.testing.assert_frame_equal(a.prices, b.prices)
    pd.testing.assert_frame_equal(a.truth, b.truth)
    assert a.rule_position.equals(b.rule_position)
    assert not np.allclose(a.close.to_numpy(), c.close.to_numpy())
    null = make_market("null", source, 11, **kw)
    assert as_panel(a.truth)["source_date"].equals(as_panel(null.truth)["source_date"])


def test_calendars(sp500, universe20):
    """``n_bars`` lays a market on business days from SYNTHETIC_START, ``index`` on given dates."""
    m = null_market(universe20, seed=1, n_bars=600)
    assert m.prices.index.equals(pd.bdate_range(SYNTHETIC_START, periods=600, name="date"))
    assert m.close.shape == (600, 20) and list(m.close.columns) == list(universe20.columns)
    index = sp500.index[-300:]
    assert null_market(sp500, seed=1, index=index).prices.index.equals(index.rename("date"))
    chosen = null_market(universe20, seed=1, n_assets=5, n_bars=300)
    assert chosen.close.shape == (300, 5) and set(chosen.close.columns) < set(universe20.columns)


def test_suite_names_are_stable_and_in_order(sp500, universe20):
    suite = planted_suite(sp500)
    assert [m.name for m in suite] == [
        *(f"{k}-s{s}" for k in ("momentum", "reversion", "trend", "volatility") for s in (1, 2)),
        "null-s1",
        "null-s2",
        "null-s3",
    ]
    custom = planted_suite(
        universe20,
        seeds=(4,),
        null_seeds=(),
        kinds=("trend", "rotation"),
        options={"trend": {"strength": 0.5, "n_bars": 300}, "rotation": {"n_assets": 3, "n_bars": 300}},
    )
    assert [(m.name, m.strength, m.close.shape[1]) for m in custom] == [
        ("trend-s4", 0.5, 20),
        ("rotation-s4", 0.003, 3),
    ]


@pytest.mark.parametrize("source", ["one", "ohlcv4"], indirect=True)
def test_csv_frame_reads_back_through_data_ingestion(source, tmp_path):
    """One series reads back through ``normalise_prices``, a panel through ``read_universe_csv``."""
    m = null_market(source, seed=0)
    path = tmp_path / "market.csv"
    to_csv_frame(m.prices).to_csv(path, index=False)
    if isinstance(m.prices.columns, pd.MultiIndex):
        back = read_universe_csv(path).prices
        pd.testing.assert_index_equal(back.columns, m.prices.columns)
        np.testing.assert_allclose(back.to_numpy(), m.prices.to_numpy(), rtol=1e-12)
    else:
        back, report = normalise_prices(read_raw_csv(path), source=str(path))
        np.testing.assert_allclose(back.to_numpy(), m.prices.to_numpy(), rtol=1e-12)
        assert report["rows_out"] == len(m.prices)


def _nonpositive(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    out.iloc[7, 1] = -1.0
    return out


BAD_SOURCES = [
    ("one", lambda s: s.drop(columns="Open"), r"lack column\(s\) \['Open'\]"),
    ("one", lambda s: s.iloc[:1000], r"only \d+ usable source days \(the series .*, a real open\)"),
    ("close20", lambda s: s.iloc[:100], "only 99 usable source days"),
    ("ohlcv4", lambda s: s.iloc[:200], "usable source days .*real open"),
    ("close20", _nonpositive, r"ticker 'AMD' has Close -1.0 on 1990-01-11 \(row 7\)"),
    ("close20", lambda s: s.iloc[:, :0], "source must be"),
]


@pytest.mark.parametrize("source, cut, match", BAD_SOURCES, indirect=["source"])
def test_unusable_sources_are_refused_by_name(source, cut, match):
    with pytest.raises(MarketSpecError, match=match) as info:
        null_market(cut(source), seed=0)
    assert isinstance(info.value, InputError)


BAD_CALLS = [
    ("null", "one", {"seed": -1}, r"markets\.seed "),
    ("null", "close20", {"seed": 1.5}, r"markets\.seed "),
    ("null", "close20", {"n_bars": 1}, r"markets\.n_bars "),
    ("null", "close20", {"n_assets": 21}, r"markets\.n_assets "),
    ("null", "close20", {"tickers": ["AAPL", "NOPE"]}, r"markets\.tickers.*unknown: \['NOPE'\]"),
    ("null", "close20", {"tickers": ["AAPL", "AAPL"]}, r"markets\.tickers"),
    ("null", "one", {"tickers": ["AAPL"]}, r"markets\.tickers"),
    ("null", "one", {"n_bars": 10, "index": pd.bdate_range("2001-01-01", periods=10)}, "not both"),
    ("momentum", "one", {"initial_price": -1.0}, r"markets\.initial_price "),
    ("trend", "close20", {"colour": "red"}, r"unknown option\(s\) \['colour'\]"),
    *((k, "one", {}, rf"markets\.n_assets: a {k} needs at least 2") for k in UNIVERSE_KINDS),
    *((k, "close20", {"n_assets": 1}, rf"markets\.n_assets: a {k} needs at least 2") for k in UNIVERSE_KINDS),
    (
        "reversal",
        "close20",
        {"n_assets": 2},
        r"markets\.n_selected must be below the number of tickers \(2\)",
    ),
    ("slow_momentum", "close20", {"n_assets": 3, "n_selected": 3}, r"markets\.n_selected must be below"),
    ("carry", "one", {}, r"markets\.kind "),
]


@pytest.mark.parametrize("kind, source, kw, match", BAD_CALLS, indirect=["source"])
def test_bad_calls_name_the_parameter(kind, source, kw, match):
    kw = dict(kw)
    seed = kw.pop("seed", 1)
    with pytest.raises(MarketSpecError, match=match):
        make_market(kind, source, seed, **kw)


def test_bad_suites_are_refused(sp500):
    with pytest.raises(MarketSpecError, match=r"markets\.seeds "):
        planted_suite(sp500, seeds=(1, 1))
    with pytest.raises(MarketSpecError, match=r"markets\.null_seeds "):
        planted_suite(sp500, null_seeds=(2, 2))
    with pytest.raises(MarketSpecError, match=r"markets\.kinds"):
        planted_suite(sp500, kinds=("momentum", "null"))
