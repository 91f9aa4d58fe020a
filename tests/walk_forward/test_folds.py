"""Fold layout: the S&P 500 default table, invariants on random calendars, and the errors."""

from __future__ import annotations

import itertools
import re

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from reinforce_strategy_creator.errors import InputError
from reinforce_strategy_creator.market_data import normalise_prices, read_raw_csv
from reinforce_strategy_creator.params.base import ParameterError
from reinforce_strategy_creator.params.walk_forward import WalkForwardParams
from reinforce_strategy_creator.walk_forward import (
    FoldIndexError,
    FoldLayoutError,
    FoldPlan,
    plan_folds,
)
from reinforce_strategy_creator.walk_forward.folds import YEAR_SLACK_DAYS
from tests.support.project import SP500_CSV

YEAR = pd.DateOffset(years=1)


@pytest.fixture(scope="module")
def sp500_index() -> pd.DatetimeIndex:
    prices, _ = normalise_prices(read_raw_csv(SP500_CSV), source=str(SP500_CSV))
    return prices.index


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text)


# --- the embedded S&P 500 -------------------------------------------------------------------


def test_sp500_default_layout(sp500_index):
    plan = plan_folds(sp500_index)
    assert [f.name for f in plan] == [f"fold_{k}" for k in range(1, 6)]
    assert [f.label for f in plan] == ["2013", "2014", "2015", "2016", "2017"]
    for fold, year in zip(plan, range(2013, 2018)):
        assert (fold.test.start, fold.test.end) == (
            sp500_index[sp500_index.year == year][0],
            sp500_index[sp500_index.year == year][-1],
        )
        assert fold.test.n_bars == int((sp500_index.year == year).sum())
        assert (fold.validation.start.year, fold.validation.end.year) == (year - 2, year - 1)
        assert fold.validation.n_bars == int(sp500_index.year.isin([year - 2, year - 1]).sum())
        assert fold.train.start == ts("1999-01-04")
        assert fold.train.end == sp500_index[sp500_index.year == year - 3][-1]
    assert (plan.paper.start, plan.paper.end) == (ts("2018-01-02"), ts("2018-12-31"))
    assert plan.paper.stop_row == len(sp500_index) and plan.paper.n_bars == 251
    dep = plan.deployment
    assert (dep.validation.start, dep.validation.end) == (ts("2016-01-04"), ts("2017-12-29"))
    assert (dep.train.start, dep.train.end) == (ts("1999-01-04"), ts("2015-12-31"))
    assert dep.label == "paper 2018"
    assert plan.test_rows == slice(plan.folds[0].test.first_row, plan.paper.first_row)


def test_sp500_embargo_and_warmup(sp500_index):
    plan = plan_folds(sp500_index, embargo_bars=2, warmup_bars=111)
    for fold in (*plan.folds, plan.deployment):
        assert fold.train.first_row == 111
        first_val = fold.validation.first_row
        assert list(fold.embargo_rows) == [first_val - 2, first_val - 1]
    assert plan.deployment.train.end == ts("2015-12-29")  # 2015-12-30 and -31 are embargoed
    assert plan.folds[0].train.start == sp500_index[111]


def test_sp500_rolling_and_data_end(sp500_index):
    plan = plan_folds(sp500_index, {"training": "rolling", "train_years": 8})
    assert [f.train.start.year for f in plan] == [2003, 2004, 2005, 2006, 2007]
    assert plan.deployment.train.start == ts("2008-01-02")
    # the S&P 500 file ends on 31 December, so anchoring on the data's end gives the same years
    same = plan_folds(sp500_index, {"anchor": "data_end"})
    assert [(f.test.first_row, f.test.stop_row) for f in same] == [
        (f.test.first_row, f.test.stop_row) for f in plan_folds(sp500_index)
    ]


def test_sp500_too_many_folds_names_parameters_and_years(sp500_index):
    with pytest.raises(FoldLayoutError) as err:
        plan_folds(sp500_index, {"folds": 13})
    msg = str(err.value)
    assert "walk_forward.folds = 13" in msg and "walk_forward.min_train_years" in msg
    assert "need 20 years" in msg and "the data has 19.0 years before it" in msg
    assert "folds to at most 12" in msg
    assert isinstance(err.value, ParameterError) and isinstance(err.value, InputError)
    assert len(plan_folds(sp500_index, {"folds": 12}).folds) == 12


def test_plan_is_json_able(sp500_index):
    import json

    plan = plan_folds(sp500_index, embargo_bars=1)
    data = json.loads(json.dumps(plan.to_dict()))
    assert data["folds"][0]["test"]["start"] == "2013-01-02"
    assert data["paper"]["end"] == "2018-12-31" and data["params"]["folds"] == 5
    table = plan.table()
    assert list(table["fold"]) == ["fold_1", "fold_2", "fold_3", "fold_4", "fold_5", "deployment"]
    assert table["embargo_bars"].eq(1).all()


# --- a user's own file ----------------------------------------------------------------------


def test_users_file_mid_year_end_gets_folds_without_dates():
    index = pd.bdate_range("2005-03-15", "2024-06-14")
    plan = plan_folds(index)
    assert [f.label for f in plan] == ["2019", "2020", "2021", "2022", "2023"]
    assert plan.paper.start == ts("2024-01-01") and plan.paper.end == ts("2024-06-14")
    anchored = plan_folds(index, {"anchor": "data_end"})
    assert anchored.paper.period_start == ts("2023-06-15")
    assert anchored.paper.end == ts("2024-06-14")
    assert anchored.folds[-1].test.period_start == ts("2022-06-15")
    assert anchored.folds[0].label == "2018-06-15..2019-06-14"


def test_short_partial_last_year_suggests_data_end():
    index = pd.bdate_range("2005-01-03", "2024-01-05")
    with pytest.raises(
        FoldLayoutError,
        match=r"paper period 2024-01-01 … 2024-01-05 \(the last "
        r"bar\) has 5 bars.*walk_forward\.min_window_bars = 20.*anchor: data_end",
    ):
        plan_folds(index)
    assert plan_folds(index, {"anchor": "data_end"}).paper.n_bars > 250


def test_gap_in_the_data_names_fold_window_and_parameter():
    index = pd.bdate_range("2000-01-03", "2018-12-31")
    index = index[(index.year != 2015)]
    with pytest.raises(
        FoldLayoutError,
        match=r"fold_3's test window 2015-01-01 … 2015-12-31 has 0 "
        r"bars.*walk_forward\.min_window_bars",
    ):
        plan_folds(index)


def test_hourly_and_tz_aware_bars():
    index = pd.date_range("2010-01-01", "2018-12-31 23:00", freq="h", tz="UTC")
    plan = plan_folds(index, {"folds": 2, "min_train_years": 3})
    assert [f.label for f in plan] == ["2016", "2017"]
    assert plan.paper.start == pd.Timestamp("2018-01-01", tz="UTC")
    assert [f.test.n_bars for f in plan] == [366 * 24, 365 * 24]  # 2016 is a leap year


def test_data_end_anchor_on_a_leap_day_keeps_windows_contiguous():
    """Data ending 28 Feb 2024 anchors on 29 Feb: boundaries are whole years back from it."""
    index = pd.bdate_range("2004-01-01", "2024-02-28")
    p = WalkForwardParams.parse({"anchor": "data_end", "test_years": 1, "folds": 5})
    plan = plan_folds(index, p)
    starts = [f.test.period_start for f in plan]
    assert starts == [
        pd.Timestamp(d) for d in ("2018-02-28", "2019-02-28", "2020-02-29", "2021-02-28", "2022-02-28")
    ]
    check_plan(plan, index, p)


@pytest.mark.parametrize(
    "bad, match",
    [
        (pd.Index([1, 2, 3]), "DatetimeIndex"),
        (pd.DatetimeIndex([]), "empty"),
        (pd.DatetimeIndex(["2020-01-02", "2020-01-01"]), "row 1"),
        (pd.DatetimeIndex(["2020-01-01", "2020-01-01"]), "strictly increasing"),
    ],
)
def test_bad_index(bad, match):
    with pytest.raises(FoldIndexError, match=match):
        plan_folds(bad)


# --- parameters -----------------------------------------------------------------------------


def test_defaults_and_docstrings():
    p = WalkForwardParams.parse(None)
    assert (
        p.paper_years,
        p.test_years,
        p.folds,
        p.validation_years,
        p.training,
        p.min_train_years,
        p.train_years,
        p.anchor,
        p.warm_start,
    ) == (1, 1, 5, 2, "expanding", 5, 8, "calendar_year", False)
    rows = list(WalkForwardParams.docs_rows())
    assert all(name.startswith("walk_forward.") and doc for name, _, doc in rows)


@pytest.mark.parametrize(
    "raw, match",
    [
        ({"folds": 0}, r"walk_forward\.folds: must be a positive integer"),
        ({"paper_years": -1}, r"walk_forward\.paper_years"),
        ({"training": "sliding"}, r"walk_forward\.training"),
        ({"warm_start": "yes"}, r"walk_forward\.warm_start"),
        ({"test_year": 1}, r"walk_forward\.test_year: unknown parameter"),
        (
            {"training": "rolling", "train_years": 3},
            r"walk_forward: train_years \(3\) must be >= min_train_years",
        ),
    ],
)
def test_bad_parameters_name_the_dotted_path(raw, match):
    with pytest.raises(ParameterError, match=match):
        plan_folds(pd.bdate_range("2000-01-03", "2018-12-31"), raw)


def test_bad_embargo_argument():
    with pytest.raises(ValueError, match="embargo_bars"):
        plan_folds(pd.bdate_range("2000-01-03", "2018-12-31"), embargo_bars=-1)


# --- invariants on random calendars ---------------------------------------------------------


@st.composite
def calendars(draw) -> pd.DatetimeIndex:
    start = pd.Timestamp("1985-01-01") + pd.Timedelta(days=draw(st.integers(0, 30 * 365)))
    days = draw(st.integers(3 * 365, 26 * 365))
    freq = draw(st.sampled_from(["B", "D", "W-FRI"]))
    tz = draw(st.sampled_from([None, "UTC", "America/New_York"]))
    index = pd.date_range(start, start + pd.Timedelta(days=days), freq=freq, tz=tz)
    drop = draw(st.floats(0, 0.05))
    keep = np.random.default_rng(draw(st.integers(0, 2**32 - 1))).random(len(index)) >= drop
    if draw(st.integers(0, 9)) == 0:  # sometimes a gap of months in the file
        gap_from = draw(st.integers(0, len(index) - 1))
        keep[gap_from : gap_from + draw(st.integers(1, 400))] = False
    keep[0] = keep[-1] = True
    return index[keep]


params_st = st.fixed_dictionaries(
    {
        "paper_years": st.integers(0, 2),
        "test_years": st.integers(1, 2),
        "folds": st.integers(1, 5),
        "validation_years": st.integers(1, 2),
        "training": st.sampled_from(["expanding", "rolling"]),
        "train_years": st.integers(3, 8),
        "min_train_years": st.integers(1, 3),
        "anchor": st.sampled_from(["calendar_year", "data_end"]),
        "min_window_bars": st.integers(1, 30),
    }
)


def check_plan(plan: FoldPlan, index: pd.DatetimeIndex, p: WalkForwardParams) -> None:  # noqa: PLR0912
    def pos(t):
        return int(index.searchsorted(t))

    # every boundary is a whole number of years back from the anchor
    if p.anchor == "calendar_year":
        end = pd.Timestamp(year=index[-1].year + 1, month=1, day=1, tz=index.tz)
    else:
        end = index[-1].normalize() + pd.Timedelta(days=1)

    def back(years):
        return end - pd.DateOffset(years=years)

    n, embargo, warmup = len(index), plan.embargo_bars, plan.warmup_bars
    assert [f.name for f in plan] == [f"fold_{k}" for k in range(1, p.folds + 1)]
    for k, fold in enumerate((*plan.folds, plan.deployment), start=1):
        test_back = p.paper_years + (p.folds - k + 1) * p.test_years  # k = folds + 1: deployment
        tr, va = fold.train, fold.validation
        assert va.period_start == back(test_back + p.validation_years)
        assert va.period_end == back(test_back)
        if fold.test is not None:
            assert fold.test.period_start == back(test_back)
        for kind, w in fold.windows():
            assert w.n_bars >= p.min_window_bars, (fold.name, kind)
            assert index[w.first_row] == w.start and index[w.stop_row - 1] == w.end
            if kind != "train":  # validation, test and paper hold every bar of their period
                assert (w.first_row, w.stop_row) == (pos(w.period_start), pos(w.period_end))
        # train < validation < test, nothing overlapping; the embargo between train and validation
        assert warmup <= tr.first_row < tr.stop_row and tr.stop_row + embargo == va.first_row
        assert index[tr.stop_row - 1] < va.period_start <= index[va.first_row]
        if fold.test is not None:
            assert va.stop_row == fold.test.first_row and va.period_end == fold.test.period_start
        if p.training == "expanding":
            assert tr.first_row == warmup
        else:
            rolled_from = back(test_back + p.validation_years + p.train_years)
            assert tr.first_row == max(warmup, pos(rolled_from))
            assert index[tr.first_row] >= rolled_from
        # at least min_train_years of training history before validation (up to the year slack)
        slack = pd.Timedelta(days=YEAR_SLACK_DAYS)
        train_from = back(test_back + p.validation_years + p.min_train_years)
        assert index[tr.first_row] <= train_from + slack
    tests = [f.test for f in plan]
    for a, b in itertools.pairwise(tests):  # contiguous, disjoint, ordered
        assert a.stop_row == b.first_row and a.period_end == b.period_start
    for k, t in enumerate(tests, start=1):
        assert t.period_end == back(p.paper_years + (p.folds - k) * p.test_years)
    dep = plan.deployment
    if p.paper_years:
        assert plan.paper is dep.test and plan.paper.stop_row == n
        assert (plan.paper.period_start, plan.paper.period_end) == (back(p.paper_years), end)
        assert tests[-1].stop_row == plan.paper.first_row
    else:
        assert plan.paper is None and tests[-1].stop_row == n and dep.validation.stop_row == n
    assert plan.test_rows == slice(tests[0].first_row, tests[-1].stop_row)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(index=calendars(), raw=params_st, embargo=st.integers(0, 3), warmup=st.integers(0, 150))
def test_layout_invariants_on_random_calendars(index, raw, embargo, warmup):
    p = WalkForwardParams.parse({**raw, "train_years": max(raw["train_years"], raw["min_train_years"])})
    warmup = min(warmup, len(index) - 1)
    try:
        plan = plan_folds(index, p, embargo_bars=embargo, warmup_bars=warmup)
    except FoldLayoutError as err:
        msg = str(err)
        gap = re.search(r"(\w+)'s training window starts on (\S+), so it holds less than", msg)
        if gap:  # a gap in the data at the start of a training window: the window is really short
            assert "walk_forward.min_train_years" in msg
            # the message's dates are naive; compare them in the calendar's own time zone
            first = pd.Timestamp(gap.group(2), tz=index.tz)
            validation = re.search(r"validation window \((\S+)\)", msg)
            need = pd.Timestamp(validation.group(1), tz=index.tz) - pd.DateOffset(years=p.min_train_years)
            assert first > need + pd.Timedelta(days=YEAR_SLACK_DAYS)
            assert not ((index >= need) & (index < first)).any() or first == index[warmup]
            event("a training window after a gap")
            return
        if "too short" not in msg:  # a window below min_window_bars: it names the window, its bars
            m = re.search(r"has (\d+) bars", msg)
            assert m and int(m.group(1)) < p.min_window_bars
            assert "walk_forward.min_window_bars" in msg
            event("a window below min_window_bars")
            return
        # the history really is too short: less than min_train_years before fold 1's validation
        end = (
            pd.Timestamp(year=index[-1].year + 1, month=1, day=1, tz=index.tz)
            if p.anchor == "calendar_year"
            else index[-1].normalize() + pd.Timedelta(days=1)
        )
        first_val = end - pd.DateOffset(years=p.paper_years + p.folds * p.test_years + p.validation_years)
        assert index[warmup] > first_val - pd.DateOffset(years=p.min_train_years) + pd.Timedelta(
            days=YEAR_SLACK_DAYS
        )
        assert f"walk_forward.folds = {p.folds}" in msg
        assert re.search(r"the data has \d+\.\d years", msg)
        fits = re.search(r"folds to at most (\d+)", msg)
        if fits:  # the suggestion is right: that many folds fit the history
            k = int(fits.group(1))
            assert 1 <= k < p.folds
            try:
                plan_folds(index, p.replace(folds=k), embargo_bars=embargo, warmup_bars=warmup)
            except FoldLayoutError as again:
                assert "too short" not in str(again)
        else:
            assert "Not even one fold fits" in msg
        event("history too short")
        return
    event("a plan")
    check_plan(plan, index, p)


def test_random_calendar_layouts_are_not_all_errors():
    """The property test above must exercise real plans: a long daily history always fits."""
    index = pd.bdate_range("1990-01-01", "2020-06-30")
    for training in ("expanding", "rolling"):
        for anchor in ("calendar_year", "data_end"):
            p = WalkForwardParams.parse({"training": training, "anchor": anchor, "folds": 6, "test_years": 2})
            check_plan(plan_folds(index, p, embargo_bars=2, warmup_bars=50), index, p)
