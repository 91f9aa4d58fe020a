"""A fold's tables (its own scaler, history rows) and the stitched record over the test windows."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.preprocessing import StandardScaler

from reinforce_strategy_creator.env import EnvConfig, replay
from reinforce_strategy_creator.evaluation.metrics import ruin_index
from reinforce_strategy_creator.features import compute_features, max_lookback, scale_features
from reinforce_strategy_creator.params.features import FeatureSpec
from reinforce_strategy_creator.walk_forward import plan_folds
from reinforce_strategy_creator.walk_forward.engine import fold_test_figures
from reinforce_strategy_creator.walk_forward.stitch import (
    FoldSwitch,
    ReconciliationError,
    fold_segments,
    reconcile_segments,
    stitched_market,
)
from reinforce_strategy_creator.walk_forward.tables import fold_tables
from tests.support.env import market_from_returns

W = 3
SPEC = FeatureSpec().to_params()
LAYOUT = {"folds": 3, "min_train_years": 3}


@pytest.fixture(scope="module")
def world(sp500):
    prices = sp500
    features = compute_features(prices, SPEC)
    plan = plan_folds(prices.index, LAYOUT, warmup_bars=max_lookback(SPEC))
    tables = {f.name: fold_tables(features, prices, f, W, "standard") for f in (*plan.folds, plan.deployment)}
    return prices, features, plan, tables


def test_each_fold_scaler_is_scikit_learns_fit_on_its_training_rows(world):
    prices, features, plan, tables = world
    names = [c for c in features.columns if c.startswith("feat_")]
    for fold in (*plan.folds, plan.deployment):
        ref = StandardScaler().fit(features.iloc[fold.train.rows][names].to_numpy(np.float64))
        got = tables[fold.name].scaler
        np.testing.assert_allclose(got["center"], ref.mean_, rtol=0, atol=1e-12)
        np.testing.assert_allclose(got["scale"], ref.scale_, rtol=0, atol=1e-12)
        assert got["fit_end"].startswith(str(fold.train.end.date()))
    # expanding windows: every fold sees more rows, so the scalers differ
    assert len({tuple(t.scaler["center"]) for t in tables.values()}) == len(tables)


def test_windows_start_with_w_minus_1_history_rows_then_every_bar_of_the_window(world):
    prices, features, plan, tables = world
    for fold in plan.folds:
        t = tables[fold.name]
        for kind in ("validation", "test"):
            table, window = getattr(t, kind), getattr(fold, kind)
            assert t.history_rows == W - 1
            assert table.index[W - 1] == window.start and table.index[-1] == window.end
            assert len(table) == window.n_bars + W - 1
        assert t.train.index[0] == fold.train.start and t.train.index[-1] == fold.train.end


def test_perturbing_bars_after_a_folds_validation_changes_nothing_in_its_train_and_validation(world):
    prices, features, plan, tables = world
    fold = plan.folds[0]
    later = prices.copy()
    after = later.index > fold.validation.end
    later.loc[after, ["Open", "High", "Low", "Close"]] *= 1.7
    later.loc[after, "Volume"] *= 3
    again = fold_tables(compute_features(later, SPEC), later, fold, W, "standard")
    assert again.scaler == tables[fold.name].scaler
    pd.testing.assert_frame_equal(again.train, tables[fold.name].train)
    pd.testing.assert_frame_equal(again.validation, tables[fold.name].validation)
    assert not again.test.equals(tables[fold.name].test)  # the test window did change


def test_the_stitched_observations_use_each_deciding_folds_scaler(world):
    prices, features, plan, tables = world
    sm = stitched_market(features, prices, plan.folds, {k: t.scaler for k, t in tables.items()}, W)
    assert sm.market.index[sm.starts[0]] == plan.folds[0].test.start
    assert sm.market.index[-1] == plan.folds[-1].test.end
    for k, fold in enumerate(plan.folds):
        bar = sm.starts[k] + 5  # a bar inside fold k's test window
        row = sm.first_row + bar
        scaled = scale_features(features.iloc[row - W + 1 : row + 1], tables[fold.name].scaler).to_numpy()
        np.testing.assert_array_equal(sm.market.obs_windows[bar], scaled.reshape(-1))
        other = tables[plan.folds[(k + 1) % len(plan.folds)].name].scaler
        assert not np.array_equal(
            sm.market.obs_windows[bar],
            scale_features(features.iloc[row - W + 1 : row + 1], other).to_numpy().reshape(-1),
        )


def test_non_contiguous_test_windows_are_refused(world):
    prices, features, plan, tables = world
    with pytest.raises(ValueError, match="not contiguous"):
        stitched_market(
            features, prices, [plan.folds[0], plan.folds[2]], {k: t.scaler for k, t in tables.items()}, W
        )


class _Constant:
    def __init__(self, action: int):
        self.action = action

    def __call__(self, obs):
        return torch.full((obs.shape[0],), self.action, dtype=torch.long)


def _cfg() -> EnvConfig:
    return EnvConfig(window=W, commission_bps=5, slippage_bps=2, episode_length=None, device="cpu")


@settings(max_examples=15, deadline=None)
@given(actions=st.lists(st.sampled_from([0, 1]), min_size=3, max_size=3))
def test_one_account_across_folds_pays_at_boundaries_and_reconciles_to_the_cent(world, actions):
    """Fold k holds a constant position (flat or long): the record is one account whose trades
    happen exactly where the held position changes, including fold boundaries, and whose
    per-fold pieces reconcile with its equity to the cent."""
    prices, features, plan, tables = world
    sm = stitched_market(features, prices, plan.folds, {k: t.scaler for k, t in tables.items()}, W)
    switch = FoldSwitch([_Constant(a) for a in actions], sm.starts)
    lane = replay(sm.market, _cfg(), switch).lane(0).reset_index()
    held = lane["position"].to_numpy()
    paid = lane["cost"].to_numpy() > 0
    changed = np.r_[False, held[1:] != held[:-1]]
    assert (paid == changed).all()
    pieces = fold_segments(lane, sm.starts, sm.folds)
    out = reconcile_segments(lane, pieces, 100_000.0, close=sm.market.close)
    assert sum(out["fold_pnl_cents"].values()) == out["final_cents"] - out["initial_cents"]
    for k, name in enumerate(sm.folds):
        assert pieces[name]["bar"].iloc[0] == sm.starts[k]


def test_a_tampered_ledger_does_not_reconcile(world):
    prices, features, plan, tables = world
    sm = stitched_market(features, prices, plan.folds, {k: t.scaler for k, t in tables.items()}, W)
    lane = replay(sm.market, _cfg(), FoldSwitch([_Constant(1)] * 3, sm.starts)).lane(0).reset_index()
    bad = lane.copy()
    bad.loc[sm.starts[1] + 3 - (W - 1), "equity"] += 0.02  # two cents appear from nowhere
    with pytest.raises(ReconciliationError, match="cash \\+ shares"):
        reconcile_segments(bad, fold_segments(bad, sm.starts, sm.folds), 100_000.0, close=sm.market.close)
    gap = {k: v for k, v in fold_segments(lane, sm.starts, sm.folds).items() if k != sm.folds[1]}
    with pytest.raises(ReconciliationError, match="previous fold ended"):
        reconcile_segments(lane, gap, 100_000.0)


def test_a_bar_before_the_first_fold_is_refused():
    switch = FoldSwitch([_Constant(0), _Constant(1)], [10, 20])
    assert switch.fold_of(10) == 0 and switch.fold_of(19) == 0 and switch.fold_of(20) == 1
    with pytest.raises(ValueError, match="before the first fold"):
        switch(torch.zeros(1, 4), 9)


def _ruined_lane(ruin_step: int) -> tuple[pd.DataFrame, np.ndarray]:
    """A short held over 60 bars of a market whose close jumps 2.5-fold into bar ``ruin_step``:
    the lane ``env.replay`` writes (ruined there, frozen copies after) and the market's closes."""
    log_returns = np.full(60, 0.001)
    log_returns[ruin_step] = np.log(2.5)
    market = market_from_returns(log_returns, np.zeros(60))
    cfg = EnvConfig(window=W, positions=(-1, 0, 1), episode_length=None, device="cpu")
    return replay(market, cfg, _Constant(0)).lane(0).reset_index(), market.close


# ruined in fold a; on fold b's first bar (by fold a's last decision); in fold b; in fold c
@pytest.mark.parametrize("ruin_step", [15, 30, 31, 45])
def test_a_ruined_lane_is_cut_into_frozen_pieces_that_reconcile(ruin_step):
    """Each piece after the one holding the bar of ruin is the frozen account: no P&L, no figures."""
    lane, close = _ruined_lane(ruin_step)
    k = ruin_index(lane["equity"])
    assert k is not None and (lane["bar"].iloc[k:] == lane["bar"].iloc[k]).all()  # frozen: its bar repeats
    starts, folds = [W - 1, 30, 40], ["a", "b", "c"]
    pieces = fold_segments(lane, starts, folds)
    assert [len(p) for p in pieces.values()] == [30 - (W - 1) + 1, 11, 60 - 1 - 40 + 1]
    out = reconcile_segments(lane, pieces, 100_000.0, close=close)
    assert sum(out["fold_pnl_cents"].values()) == out["final_cents"] - out["initial_cents"] < 0
    ruined_in = max(i for i, s in enumerate(starts) if s < ruin_step)  # the bar of ruin is lane bar ruin_step
    for i, name in enumerate(folds):
        sharpe, total = fold_test_figures(pieces[name]["equity"], 252.0)
        if i < ruined_in:
            assert total > -1.0 and np.isfinite(sharpe)
        elif i == ruined_in:
            assert total == -1.0 and not np.isinf(sharpe)
        else:  # the account was wiped out before this fold: nothing to measure
            assert np.isnan(sharpe) and np.isnan(total)
            assert out["fold_pnl_cents"][name] == 0


@pytest.mark.parametrize(
    "equity, returns, total",
    [
        ([100.0, 110.0, 99.0, 108.9], [0.1, -0.1, 0.1], 0.089),
        ([100.0, 110.0, 0.0, 0.0], [0.1, -1.0], -1.0),  # ruined at exactly 0: -1, not 0 / 0 after it
        ([100.0, 110.0, -55.0, -55.0], [0.1, -1.0], -1.0),  # a deficit is still -100 %
        ([-55.0, -55.0, -55.0], None, math.nan),  # ruined in an earlier fold: nothing to measure
    ],
)
def test_fold_test_figures_measure_up_to_the_bar_of_ruin(equity, returns, total):
    """The per-fold figures of both walk-forwards (single asset and portfolio, date-indexed)."""
    dates = pd.bdate_range("2020-01-01", periods=len(equity))
    sharpe, got_total = fold_test_figures(pd.Series(equity, index=dates), 252.0)
    if returns is None:
        assert math.isnan(sharpe) and math.isnan(got_total)
        return
    assert got_total == pytest.approx(total)
    assert sharpe == pytest.approx(np.mean(returns) / np.std(returns, ddof=1) * math.sqrt(252))
