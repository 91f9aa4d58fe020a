"""Chronological splits: dates, warm-up, embargo, ordering and clear errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from reinforce_strategy_creator import features as fe
from reinforce_strategy_creator.params.base import ParameterError


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


@st.composite
def layouts(draw):
    """Valid split layouts by construction: every case reaches the assertions (no early return)."""
    lookback = draw(st.integers(0, 40))
    embargo = lookback + draw(st.integers(0, 20))
    a = draw(st.integers(lookback, 300))  # last train bar
    v0 = a + draw(st.integers(1, 30))  # first validation bar (after a gap)
    v1 = v0 + embargo + draw(st.integers(0, 150))  # at least one row after the embargo
    t0 = v1 + draw(st.integers(1, 30))
    t1 = t0 + embargo + draw(st.integers(0, 150))
    return lookback, embargo, (a, v0, v1, t0, t1)


@settings(max_examples=80, deadline=None)
@given(layouts())
def test_splits_are_ordered_disjoint_and_embargoed(layout):
    lookback, embargo, (a, v0, v1, t0, t1) = layout
    idx = pd.bdate_range("2001-01-01", periods=t1 + 5, name="date")
    bounds = {"train": (None, idx[a]), "validation": (idx[v0], idx[v1]), "test": (idx[t0], idx[t1])}
    plan = fe.plan_splits(idx, bounds, lookback=lookback, embargo_bars=embargo, min_split_rows=1)
    tr, va, te = (plan[s]["positions"] for s in fe.SPLIT_NAMES)
    # the exact rows, worked out from the layout: warm-up dropped from train, embargo from the others
    np.testing.assert_array_equal(tr, np.arange(lookback, a + 1))
    np.testing.assert_array_equal(va, np.arange(v0 + embargo, v1 + 1))
    np.testing.assert_array_equal(te, np.arange(t0 + embargo, t1 + 1))
    assert plan["validation"]["embargo_rows"] == plan["test"]["embargo_rows"] == embargo
    assert tr.max() < va.min() and va.max() < te.min()
    # the look-back of every validation/test row stays inside its own split's dates
    assert idx[va.min() - lookback] >= bounds["validation"][0]
    assert idx[te.min() - lookback] >= bounds["test"][0]


@settings(max_examples=40, deadline=None)
@given(
    lookback=st.integers(0, 40),
    extra=st.integers(0, 20),
    rows=st.integers(0, 20),
    which=st.sampled_from(["validation", "test"]),
)
def test_a_split_with_too_few_rows_after_its_embargo_names_the_split(lookback, extra, rows, which):
    """Every other split is long; ``which`` keeps ``rows`` rows after its embargo, one fewer than
    min_split_rows: the error names that split, its dates and its row count."""
    embargo = lookback + extra
    assume(embargo + rows >= 1)  # a split holds at least its first bar
    long_ = embargo + 200
    a = lookback + 250
    v0 = a + 5
    v1 = v0 + (embargo + rows - 1 if which == "validation" else long_)
    t0 = v1 + 5
    t1 = t0 + (embargo + rows - 1 if which == "test" else long_)
    idx = pd.bdate_range("2001-01-01", periods=t1 + 5, name="date")
    bounds = {"train": (None, idx[a]), "validation": (idx[v0], idx[v1]), "test": (idx[t0], idx[t1])}
    with pytest.raises(fe.SplitConfigError) as info:
        fe.plan_splits(idx, bounds, lookback=lookback, embargo_bars=embargo, min_split_rows=rows + 1)
    msg = str(info.value)
    assert f"split '{which}'" in msg and f"has {rows} usable rows" in msg
    assert str(bounds[which][0].date()) in msg and f"feature_engineering.splits.{which}" in msg


@pytest.mark.parametrize(
    ("splits", "match"),
    [
        (
            {"train": {"start": None, "end": "2013-06-30"},
             "validation": {"start": "2013-01-01", "end": "2014-12-31"},
             "test": {"start": "2015-01-01", "end": "2017-12-31"}},
            r"feature_engineering\.splits: validation\.start \(2013-01-01\) must come after train\.end",
        ),
        (
            {"train": {"start": None, "end": "2012-12-31"},
             "validation": {"start": "2015-01-01", "end": "2016-12-31"},
             "test": {"start": "2013-01-01", "end": "2014-12-31"}},
            r"feature_engineering\.splits: test\.start .* out of order",
        ),
        (
            {"train": {"start": None, "end": "2012-12-31"},
             "validation": {"start": "2014-01-01", "end": "2013-01-01"},
             "test": {"start": "2015-01-01", "end": "2017-12-31"}},
            r"feature_engineering\.splits\.validation: start \(2014-01-01\) is after end",
        ),
        (
            {"train": {"start": None, "end": "twenty-twelve"},
             "validation": {"start": "2013-01-01", "end": "2014-12-31"},
             "test": {"start": "2015-01-01", "end": "2017-12-31"}},
            r"feature_engineering\.splits\.train\.end: Input should be a valid date .*'twenty-twelve'",
        ),
        (
            {"train": {"start": None, "end": "2012-12-31"},
             "validation": {"start": None, "end": "2014-12-31"},
             "test": {"start": "2015-01-01", "end": "2017-12-31"}},
            r"feature_engineering\.splits: validation\.start and test\.start are required",
        ),
        (
            {"train": {"start": None, "end": "2012-12-31"}, "valdation": {"start": "2013-01-01", "end": None},
             "test": {"start": "2015-01-01", "end": "2017-12-31"}},
            r"feature_engineering\.splits\.valdation: unknown parameter; allowed parameters are "
            r"\['test', 'train', 'validation'\]",
        ),
    ],
)  # fmt: skip
def test_bad_split_dates(splits, match):
    with pytest.raises(ParameterError, match=match):
        fe.validate_split_dates(splits)


def test_embargo_must_cover_lookback(sp500_prices, stage_params):
    lookback = fe.max_lookback(stage_params["features"])
    assert fe.resolve_embargo("auto", lookback) == lookback
    assert fe.resolve_embargo(lookback + 5, lookback) == lookback + 5
    for bad in (lookback - 1, -1, "half", 2.5):
        with pytest.raises(ParameterError, match=r"feature_engineering\.embargo_bars"):
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
    with pytest.raises(
        fe.SplitConfigError,
        match=r"split 'validation' \(2013-01-01 .. 2014-12-31\) has \d+ usable rows .*min_split_rows is 2000",
    ):
        _plan(sp500_prices, stage_params, min_rows=2000)
    with pytest.raises(ParameterError, match=r"min_split_rows must be a positive integer"):
        _plan(sp500_prices, stage_params, min_rows=0)


def test_window_longer_than_shortest_split(sp500_prices, stage_params):
    plan = _plan(sp500_prices, stage_params)
    shortest = min(plan[s]["rows"] for s in fe.SPLIT_NAMES)
    assert fe.check_window(shortest - 1, plan) == shortest - 1
    with pytest.raises(fe.SplitConfigError, match=r"environment\.window = \d+ .*'validation'"):
        fe.check_window(shortest, plan)
    with pytest.raises(ParameterError, match=r"environment\.window must be a positive"):
        fe.check_window(0, plan)
