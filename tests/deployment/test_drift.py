"""Drift monitor: hand-computed PSI, KS via scipy, shifted distributions, the drift halt at any N."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import ks_2samp

from reinforce_strategy_creator.deployment import (
    AccountStore,
    CostModel,
    PaperAccount,
    RiskLimits,
    clear_halt,
)
from reinforce_strategy_creator.deployment.drift import (
    DriftConfigError,
    DriftMonitor,
    DriftThresholds,
    bin_shares,
    build_reference,
    drift_report,
    ks_2samp_sorted,
    psi,
)
from reinforce_strategy_creator.params.base import ParameterError
from tests.support.paper import CONFIG, make_decider, make_panel, make_prices


def test_psi_hand_computed():
    e = np.array([0.25, 0.25, 0.25, 0.25])
    a = np.array([0.10, 0.20, 0.30, 0.40])
    expected = sum((ai - ei) * math.log(ai / ei) for ai, ei in zip(a, e))
    assert psi(e, a) == pytest.approx(expected, abs=1e-12)
    assert expected == pytest.approx(0.2282, abs=1e-4)  # 0.1386+0.0112+0.0091+0.0705
    assert psi(e, e) == 0.0


def test_psi_epsilon_floor_for_empty_bins():
    e = np.array([0.5, 0.5, 0.0])
    a = np.array([0.5, 0.0, 0.5])
    eps = 1e-4
    by_hand = (eps - 0.5) * math.log(eps / 0.5) + (0.5 - eps) * math.log(0.5 / eps)
    assert psi(e, a, eps) == pytest.approx(by_hand)
    assert math.isfinite(psi(e, a, eps))


def test_bins_are_training_quantiles_with_open_ends():
    train = pd.DataFrame({"feat_x": np.arange(1, 101, dtype=float)})
    ref = build_reference(train, n_bins=4)
    np.testing.assert_allclose(ref.edges["feat_x"], [25.75, 50.5, 75.25])
    np.testing.assert_allclose(ref.expected["feat_x"], [0.25] * 4)
    # values beyond the training range fall in the outer bins
    np.testing.assert_allclose(bin_shares(np.array([-1e9, 1e9]), ref.edges["feat_x"]), [0.5, 0, 0, 0.5])


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")  # scipy at m = n = 1
@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n_ref=st.sampled_from([1, 7, 300, 12_000]),
    n=st.integers(1, 120),
    shift=st.floats(-1, 1),
    digits=st.sampled_from([0, 1, 2, 8]),
)
def test_ks_equals_scipy_ks_2samp(seed, n_ref, n, shift, digits):
    """The statistic is scipy's bit for bit (rounding to few digits makes ties within and across
    the samples; 12,000 reference values take scipy's asymptotic branch, the others its exact one),
    the p-value scipy's asymptotic one."""
    rng = np.random.default_rng(seed)
    ref = rng.normal(size=n_ref).round(digits)
    sample = (rng.normal(size=n) + shift).round(digits)
    d, p = ks_2samp_sorted(np.sort(ref), sample)
    assert d == ks_2samp(ref, sample).statistic
    asymp = ks_2samp(ref, sample, method="asymp").pvalue
    assert p == asymp or (np.isnan(p) and np.isnan(asymp))


def test_same_distribution_ok_shifted_distribution_alerts():
    rng = np.random.default_rng(0)
    train = pd.DataFrame({"feat_a": rng.normal(0, 1, 5000), "feat_b": rng.normal(0, 1, 5000)})
    ref = build_reference(train)
    live = pd.DataFrame({"feat_a": rng.normal(0, 1, 500), "feat_b": rng.normal(1.0, 1, 500)})
    rep = drift_report(ref, live, DriftThresholds(psi=0.25, ks=0.2))
    assert rep.loc["feat_a", "status"] == "ok"
    assert rep.loc["feat_b", "status"] == "drift"
    assert rep.loc["feat_b", "psi"] > 0.25 and rep.loc["feat_b", "ks_alert"]
    ks = ks_2samp(train["feat_b"], live["feat_b"])
    assert rep.loc["feat_b", "ks_stat"] == ks.statistic
    manual = psi(ref.expected["feat_b"], bin_shares(live["feat_b"].to_numpy(), ref.edges["feat_b"]))
    assert rep.loc["feat_b", "psi"] == pytest.approx(manual)


def test_nan_dropped_and_insufficient_data_and_missing_column():
    rng = np.random.default_rng(1)
    ref = build_reference(pd.DataFrame({"feat_a": rng.normal(size=1000)}))
    live = pd.DataFrame({"feat_a": [np.nan] * 30 + list(rng.normal(size=10))})
    rep = drift_report(ref, live, DriftThresholds(min_samples=20))
    assert rep.loc["feat_a", "n_live"] == 10 and rep.loc["feat_a", "status"] == "insufficient_data"
    with pytest.raises(DriftConfigError, match="feat_a"):
        drift_report(ref, pd.DataFrame({"feat_z": [1.0]}), DriftThresholds())
    with pytest.raises(ParameterError, match=r"deployment\.drift\.psi: Input should be greater than 0"):
        DriftThresholds.parse({"psi": -1}, "deployment.drift")


def test_reference_round_trips_through_json_dict():
    rng = np.random.default_rng(2)
    ref = build_reference(pd.DataFrame({"feat_a": rng.normal(size=200)}))
    from reinforce_strategy_creator.deployment.drift import DriftReference

    back = DriftReference.from_dict(ref.to_dict())
    np.testing.assert_array_equal(back.edges["feat_a"], ref.edges["feat_a"])


def _one_asset(tmp_path, reference):
    """A single-asset account whose monitor reads the price history (feature: daily log return)."""
    prices = make_prices(80, seed=3)
    monitor = DriftMonitor(
        reference,
        lambda history: pd.DataFrame({"feat_ret": np.log(history["Close"]).diff()}),
        DriftThresholds(min_samples=20),
        window=30,
    )
    store = AccountStore(tmp_path / "acct")
    broker = PaperAccount.instrument(
        store,
        initial_capital=10_000,
        costs=CostModel(),
        limits=RiskLimits(),
        drift_check=monitor,
        halt_on_drift=True,
    )
    state = broker.run(prices, lambda h, st: 1.0).state
    return store, state, [o["targets"] for o in store.read_log("orders", state)], list(state.shares)


def _universe(tmp_path, reference):
    """A 5-asset account whose monitor pools every listed ticker's daily log return over the last
    30 feed rows (as the portfolio pipeline's ``drift_check``)."""
    panel = make_panel(80)

    def pooled(at):
        feed, row = at
        r1 = feed.features[max(0, row - 29) : row + 1, :, 0].ravel()
        return pd.DataFrame({"feat_ret": r1[np.isfinite(r1)]})

    monitor = DriftMonitor(reference, pooled, DriftThresholds(min_samples=20), window=30 * panel.n_assets)
    store = AccountStore(tmp_path / "acct")
    account = PaperAccount.universe(
        store,
        panel.tickers,
        CONFIG,
        granularity="fractional",
        drift_check=lambda feed, row: monitor((feed, row)),
        halt_on_drift=True,
    )
    state = account.run(panel, make_decider(panel.n_assets, CONFIG.window)).state
    return store, state, [o["targets"] for o in store.read_log("orders", state)], list(state.shares)


@pytest.mark.parametrize("make", [_one_asset, _universe], ids=["N=1", "N=5"])
def test_a_drift_alert_halts_the_account_flat_until_a_person_clears_it(tmp_path, make):
    rng = np.random.default_rng(0)
    ref = build_reference(pd.DataFrame({"feat_ret": rng.normal(0.02, 0.001, 2000)}))  # very different
    store, s, targets, shares = make(tmp_path, ref)
    assert s.halted and "drift" in s.halt_reason
    events = store.read_log("events", s)
    assert any(e["kind"] == "drift_alert" and e["feature"] == "feat_ret" for e in events)
    halt_bar = next(e["bar"] for e in events if e["kind"] == "halt")
    orders = store.read_log("orders", s)
    after = [t for t, o in zip(targets, orders, strict=True) if o["bar"] >= halt_bar]
    assert (
        after
        and all(not any(t) for t in after)
        and all(o["reason"].startswith("halted") for o in orders[-3:])
    )
    assert not any(shares)  # flat once the halt order filled
    s = clear_halt(store, "reviewed features; data vendor fixed", actor="ops")
    assert not s.halted and store.read_log("events", s)[-1]["by"] == "ops"
