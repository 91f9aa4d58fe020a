"""Markets made from real days: a null market has no structure, a planted one has its edge."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from reinforce_strategy_creator.errors import InputError
from reinforce_strategy_creator.market_data import normalise_prices, read_raw_csv
from reinforce_strategy_creator.markets import (
    MarketSpecError,
    day_ratios,
    null_market,
    planted_momentum_market,
    to_csv_frame,
)


def _lag1(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a[1:], b[:-1])[0, 1])


def test_null_market_keeps_the_calendar_and_the_distribution_of_real_days(sp500):
    m = null_market(sp500, seed=3)
    p = m.prices
    assert p.index.equals(sp500.index) and list(p.columns) == [
        "Open",
        "High",
        "Low",
        "Close",
        "Volume",
    ]
    assert (p["High"] >= p[["Open", "Close"]].max(axis=1)).all() and (
        p["Low"] <= p[["Open", "Close"]].min(axis=1)
    ).all()
    cc = np.diff(np.log(p["Close"].to_numpy()))
    real = np.diff(np.log(sp500["Close"].to_numpy()))
    assert np.std(cc) == pytest.approx(np.std(real), rel=0.15)  # same volatility, roughly
    # resampled i.i.d.: no serial structure in returns (|lag-1 autocorrelation| within noise)
    assert abs(_lag1(cc, cc)) < 3 / np.sqrt(len(cc))
    assert (m.rule_position == 1.0).all() and m.kind == "null"
    # only days with a real open were drawn: no zero overnight gap at all
    gaps = p["Open"].to_numpy()[1:] / p["Close"].to_numpy()[:-1]
    assert np.all(np.abs(gaps - 1.0) > 0)


def test_markets_are_reproducible_from_their_seed(sp500):
    a, b, c = null_market(sp500, 1), null_market(sp500, 1), null_market(sp500, 2)
    pd.testing.assert_frame_equal(a.prices, b.prices)
    assert not a.prices.equals(c.prices)


@pytest.mark.parametrize("strength", [0.3, 0.6])
def test_planted_momentum_is_exactly_the_planted_edge(sp500, strength):
    m = planted_momentum_market(sp500, seed=5, strength=strength)
    p = m.prices
    body = np.log(p["Close"] / p["Open"]).to_numpy()
    cc = np.diff(np.log(p["Close"].to_numpy()), prepend=np.nan)
    # the open-to-close move of day t correlates with the close-to-close return of day t-1 ...
    corr = _lag1(body[1:], cc[1:])
    assert corr > 0.15 * strength / 0.3
    # ... and nothing else is planted: the overnight gap does not
    gap = np.log(p["Open"].to_numpy()[1:] / p["Close"].to_numpy()[:-1])
    assert abs(_lag1(gap[1:], cc[2:])) < 3 / np.sqrt(len(gap))
    # the rule holds after an up day (decided at that day's close)
    np.testing.assert_array_equal(m.rule_position.to_numpy()[1:], (cc[1:] > 0).astype(float))


def _hold_after_up_day_sharpe(p: pd.DataFrame) -> float:
    """Hold after an up day, decided at that day's close and filled at the next open, no costs."""
    up = (np.diff(np.log(p["Close"].to_numpy()), prepend=np.nan) > 0).astype(float)
    held = np.concatenate([[0.0], up[:-1]])  # held from the open of the next day
    intraday = (p["Close"] / p["Open"] - 1).to_numpy()
    overnight = (p["Open"] / p["Close"].shift(1) - 1).fillna(0.0).to_numpy()
    r = held * intraday + np.concatenate([[0.0], held[:-1]]) * overnight
    return float(r.mean() / r.std() * np.sqrt(252))


def test_the_rule_earns_the_planted_edge_and_not_on_a_null_market(sp500):
    """The check can fail: on a null market the same rule earns nothing special."""
    assert _hold_after_up_day_sharpe(planted_momentum_market(sp500, seed=1, strength=0.3).prices) > 2.0
    assert _hold_after_up_day_sharpe(null_market(sp500, seed=1).prices) < 1.0


def test_csv_frame_reads_back_through_data_ingestion(sp500, tmp_path):
    m = null_market(sp500, seed=0)
    path = tmp_path / "market.csv"
    to_csv_frame(m.prices).to_csv(path, index=False)
    back, report = normalise_prices(read_raw_csv(path), source=str(path))
    np.testing.assert_allclose(back.to_numpy(), m.prices.to_numpy(), rtol=1e-12)
    assert report["rows_out"] == len(m.prices)


def test_bad_parameters_are_input_errors(sp500):
    with pytest.raises(MarketSpecError, match="markets.strength") as info:
        planted_momentum_market(sp500, seed=0, strength=-1.0)
    assert isinstance(info.value, InputError)
    with pytest.raises(MarketSpecError, match="lack column"):
        day_ratios(sp500.drop(columns="Open"))
    with pytest.raises(MarketSpecError, match="usable source days"):
        day_ratios(sp500.iloc[:100])
