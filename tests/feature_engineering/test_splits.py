"""Chronological splits: dates, warm-up, embargo, ordering and clear errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reinforce_strategy_creator import features as fe


def _plan(prices, params, **over):
    spec = params["features"]
    lookback = fe.max_lookback(spec)
    bounds = fe.validate_split_dates(over.get("splits", params["splits"]))
    embargo = fe.resolve_embargo(over.get("embargo", params["embargo_bars"]), lookback)
    return fe.plan_splits(
        prices.index,
        bounds,
        lookback=lookback,
        embargo_bars=embargo,
        min_split_rows=over.get("min_rows", params["min_split_rows"]),
    )


def test_default_sp500_splits(sp500_prices, stage_params):
    plan = _plan(sp500_prices, stage_params)
    idx = sp500_prices.index
    lookback = fe.max_lookback(stage_params["features"])
    tr, va, te = (plan[s]["positions"] for s in fe.SPLIT_NAMES)
    # train: from the first bar with complete features through 2012-12-31
    assert tr[0] == lookback and idx[tr[-1]] == pd.Timestamp("2012-12-31")
    assert np.all(np.diff(tr) == 1)
    # validation / test: their own date range minus an embargo of max_lookback bars
    first_2013 = int(np.searchsorted(idx, pd.Timestamp("2013-01-01")))
    first_2015 = int(np.searchsorted(idx, pd.Timestamp("2015-01-01")))
    assert va[0] == first_2013 + lookback and te[0] == first_2015 + lookback
    assert idx[va[-1]] == pd.Timestamp("2014-12-31") and idx[te[-1]] == pd.Timestamp("2017-12-29")
    assert plan["validation"]["embargo_rows"] == plan["test"]["embargo_rows"] == lookback
    # 2018 is kept back for paper trading
    for s in fe.SPLIT_NAMES:
        assert idx[plan[s]["positions"]].max() < pd.Timestamp("2018-01-01")
    # no validation/test feature window reaches into the previous split
    assert va[0] - lookback > tr[-1] and te[0] - lookback > va[-1]


@settings(max_examples=60, deadline=None)
@given(
    cuts=st.lists(st.integers(0, 799), min_size=4, max_size=4, unique=True).map(sorted),
    lookback=st.integers(0, 40),
    extra=st.integers(0, 20),
)
def test_splits_are_ordered_disjoint_and_embargoed(cuts, lookback, extra):
    idx = pd.bdate_range("2001-01-01", periods=800, name="date")
    a, b, c, d = cuts
    bounds = {
        "train": (None, idx[a]),
        "validation": (idx[a + 1] if a + 1 <= b else idx[b], idx[b]),
        "test": (idx[c], idx[d]),
    }
    if not (bounds["train"][1] < bounds["validation"][0] and bounds["validation"][1] < idx[c]):
        return
    try:
        plan = fe.plan_splits(
            idx, bounds, lookback=lookback, embargo_bars=lookback + extra, min_split_rows=1
        )
    except fe.SplitConfigError as err:
        assert any(f"'{s}'" in str(err) for s in fe.SPLIT_NAMES)
        return
    tr, va, te = (plan[s]["positions"] for s in fe.SPLIT_NAMES)
    assert tr.min() >= lookback
    assert tr.max() < va.min() and va.max() < te.min()
    # the look-back of every validation/test row stays inside its own split's dates
    assert idx[va.min() - lookback] >= bounds["validation"][0]
    assert idx[te.min() - lookback] >= bounds["test"][0]


@pytest.mark.parametrize(
    ("splits", "match"),
    [
        (
            {"train": {"start": None, "end": "2013-06-30"},
             "validation": {"start": "2013-01-01", "end": "2014-12-31"},
             "test": {"start": "2015-01-01", "end": "2017-12-31"}},
            r"splits\.validation\.start \(2013-01-01\) must come after "
            r"feature_engineering\.splits\.train\.end",
        ),
        (
            {"train": {"start": None, "end": "2012-12-31"},
             "validation": {"start": "2015-01-01", "end": "2016-12-31"},
             "test": {"start": "2013-01-01", "end": "2014-12-31"}},
            r"splits\.test\.start .* out of order",
        ),
        (
            {"train": {"start": None, "end": "2012-12-31"},
             "validation": {"start": "2014-01-01", "end": "2013-01-01"},
             "test": {"start": "2015-01-01", "end": "2017-12-31"}},
            r"splits\.validation\.start \(2014-01-01\) is after",
        ),
        (
            {"train": {"start": None, "end": "twenty-twelve"},
             "validation": {"start": "2013-01-01", "end": "2014-12-31"},
             "test": {"start": "2015-01-01", "end": "2017-12-31"}},
            r"splits\.train\.end = 'twenty-twelve' is not a date",
        ),
        (
            {"train": {"start": None, "end": "2012-12-31"},
             "test": {"start": "2015-01-01", "end": "2017-12-31"}},
            r"feature_engineering\.splits must have exactly the keys",
        ),
    ],
)  # fmt: skip
def test_bad_split_dates(splits, match):
    with pytest.raises(fe.SplitConfigError, match=match):
        fe.validate_split_dates(splits)


def test_embargo_must_cover_lookback(sp500_prices, stage_params):
    lookback = fe.max_lookback(stage_params["features"])
    assert fe.resolve_embargo("auto", lookback) == lookback
    assert fe.resolve_embargo(lookback + 5, lookback) == lookback + 5
    for bad in (lookback - 1, -1, "half", 2.5):
        with pytest.raises(fe.SplitConfigError, match=r"feature_engineering\.embargo_bars"):
            fe.resolve_embargo(bad, lookback)
    plan = _plan(sp500_prices, stage_params, embargo=lookback + 10)
    assert plan["validation"]["embargo_rows"] == lookback + 10


def test_short_or_empty_split_names_split_and_dates(sp500_prices, stage_params):
    splits = {**stage_params["splits"]}
    splits["validation"] = {"start": "2013-01-01", "end": "2013-03-31"}
    with pytest.raises(fe.SplitConfigError, match=r"split 'validation' \(2013-01-01 .. 2013-03-31\)"):
        _plan(sp500_prices, stage_params, splits=splits)
    splits["validation"] = {"start": "2013-01-05", "end": "2013-01-06"}  # a weekend: no rows
    with pytest.raises(fe.SplitConfigError, match=r"has 0 usable rows"):
        _plan(sp500_prices, stage_params, splits=splits)
    with pytest.raises(fe.SplitConfigError, match=r"split 'validation' \(2013-01-01 .. 2014-12-31\) has 393 .*min_split_rows is 2000"):
        _plan(sp500_prices, stage_params, min_rows=2000)
    with pytest.raises(fe.SplitConfigError, match=r"min_split_rows must be a positive integer"):
        _plan(sp500_prices, stage_params, min_rows=0)


def test_window_longer_than_shortest_split(sp500_prices, stage_params):
    plan = _plan(sp500_prices, stage_params)
    shortest = min(plan[s]["rows"] for s in fe.SPLIT_NAMES)
    assert fe.check_window(shortest - 1, plan) == shortest - 1
    with pytest.raises(fe.SplitConfigError, match=r"environment\.window = \d+ .*'validation'"):
        fe.check_window(shortest, plan)
    with pytest.raises(fe.SplitConfigError, match=r"environment\.window must be a positive"):
        fe.check_window(0, plan)
