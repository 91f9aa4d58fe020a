"""What is special to a universe's front end (``PaperAccount.universe``): its ledger from the
first full window, whole shares against fractional ones (joint sizing), the feed's tickers and
listings, the weights' bounds, its fixed settings.

What every account does, at N = 1 and N > 1: reruns and growing feeds, the risk rules, a
non-finite decision, the journal, damaged folders, tampered logs and accounting to the cent in
test_paper_account.py, parity with the backtest in test_paper_backtest_parity.py, the kill test
in test_crash_safety.py, schema-1 folders in test_state_schema.py.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reinforce_strategy_creator.deployment import (
    AccountStateError,
    AccountStore,
    CostModel,
    PaperAccount,
    RiskLimits,
    new_account,
)
from reinforce_strategy_creator.deployment.account import (
    PortfolioFeedError,
    PortfolioWeightsError,
    portfolio_ledger,
)
from reinforce_strategy_creator.env.portfolio import PortfolioInputError
from reinforce_strategy_creator.errors import InputError
from reinforce_strategy_creator.evaluation.replay import replay_weights
from reinforce_strategy_creator.panel import PortfolioPanel
from tests.support.env import universe_env
from tests.support.paper import CONFIG, account_files, make_decider, make_panel, make_prices

torch.set_num_threads(1)
N_BARS = 30


def _account(folder, panel=None, granularity="whole", config=CONFIG, limits=None):
    tickers = (panel or make_panel(N_BARS)).tickers
    return PaperAccount.universe(
        AccountStore(folder), tickers, config, granularity=granularity, limits=limits
    )


def _with_close(panel: PortfolioPanel, row: int, col: int, value: float) -> PortfolioPanel:
    close = panel.close.copy()
    close[row, col] = value
    return dataclasses.replace(panel, close=close)


@pytest.fixture(scope="module")
def panel():
    return make_panel(N_BARS)


@pytest.fixture(scope="module")
def decide(panel):
    return make_decider(panel.n_assets, CONFIG.window)


@pytest.fixture(scope="module")
def full_run(tmp_path_factory, panel, decide):
    """Both granularities run once over the whole panel (folders are read only by the tests)."""
    out = {}
    for g in ("whole", "fractional"):
        folder = tmp_path_factory.mktemp(f"full_{g}")
        summary = _account(folder, panel, g).run(panel, decide)
        out[g] = (folder, summary)
    return out


def test_the_ledger_starts_at_the_first_full_window_and_a_ticker_at_its_listing(full_run, panel):
    """The universe's feed: one decision per row from the first full observation window, the
    ledger's per-ticker columns, and a ticker listed late (row 12) not bought before it."""
    for granularity, (folder, _) in full_run.items():
        store = AccountStore(folder)
        orders = store.read_log("orders")
        assert [o["bar"] for o in orders] == [d.isoformat() for d in panel.dates[CONFIG.window - 1 :]]
        ledger = portfolio_ledger(store)
        shares = ledger[[f"shares:{t}" for t in panel.tickers]].to_numpy()
        assert shares.tolist() == [m["shares"] for m in store.read_log("equity")]
        assert (ledger["shares:EEE"].iloc[: 12 - (CONFIG.window - 1)] == 0).all()
        if granularity == "fractional":  # (too dear for a whole share of it on most bars)
            assert (ledger["shares:EEE"].iloc[12 - (CONFIG.window - 1) + 1 :] > 0).any()


# ------------------------------------------------------------------ whole shares
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seed=st.integers(0, 10_000),
    capital=st.floats(2_000, 2_000_000),
    commission=st.floats(0, 50),
    slippage=st.floats(0, 50),
    invest=st.floats(0.5, 1.0),
)
def test_whole_fill_is_the_fractional_fill_truncated_and_never_overdraws(
    tmp_path_factory, seed, capital, commission, slippage, invest
):
    """From the same state (all cash), the whole account holds trunc(fractional shares) of each
    asset (one share less of the largest buy where cent rounding would overdraw), never has negative
    cash, and its equity differs from the fractional one's only by the costs on the truncated parts
    and cent rounding: |E_whole - E_frac| <= sum_i close_i (slip + comm (1 + slip)) + 1.5 N cents."""
    cfg = universe_env(
        window=4,
        episode_length=None,
        initial_capital=capital,
        commission_bps=commission,
        slippage_bps=slippage,
    )
    panel = make_panel(6, seed=seed, late=None)
    decide = make_decider(panel.n_assets, 4, seed=seed, invest=invest)
    states = {}
    for g in ("whole", "fractional"):
        folder = tmp_path_factory.mktemp("fill")
        states[g] = _account(folder, panel, g, cfg).run(panel.rows(0, 5), decide).state  # one fill
    w, f = states["whole"], states["fractional"]
    assert w.cash_cents >= 0 and all(isinstance(x, int) for x in w.shares)
    trunc = [math.trunc(x) for x in f.shares]
    assert all(tw in (tf, tf - 1) for tw, tf in zip(w.shares, trunc, strict=True))
    assert sum(tf - tw for tw, tf in zip(w.shares, trunc, strict=True)) <= 1
    close = panel.close[4]
    slip, comm = slippage / 1e4, commission / 1e4
    extra = close[int(np.argmax(np.asarray(trunc) - np.asarray(w.shares)))] if w.shares != tuple(trunc) else 0
    bound = (close * (slip + comm * (1 + slip))).sum() + 0.015 * len(close) + extra * (slip + comm) * 2
    assert abs(w.equity - f.equity) <= bound


# ------------------------------------------------------------------ bad input
def _bad_run(folder, feed, decide, match, granularity="whole"):
    before = account_files(folder) if Path(folder).exists() else None
    with pytest.raises(InputError, match=match) as err:
        _account(folder, None, granularity).run(feed, decide)
    assert isinstance(err.value, PortfolioInputError)
    if before is not None:
        assert account_files(folder) == before  # nothing half-written
    return err.value


@pytest.fixture
def started(tmp_path, panel, decide):
    """An account that processed rows 3..19 (bar 2021-01-29)."""
    folder = tmp_path / "acct"
    _account(folder, panel).run(panel.rows(0, 20), decide)
    return folder


def test_ticker_column_missing_from_the_feed(started, panel, decide):
    feed = panel.select(("AAA", "BBB", "DDD", "EEE"))
    held = AccountStore(started).load().holdings()["CCC"]
    assert held > 0
    _bad_run(started, feed, decide, rf"missing \['CCC'\] \(held: \{{'CCC': {held}\}}\) on 2021-02-01")


def test_ticker_nan_after_listing_names_ticker_and_date(started, panel, decide):
    bad = _with_close(panel, 22, 1, float("nan"))
    _bad_run(started, bad, decide, r"ticker 'BBB' is missing from the feed on 2021-02-03")
    late = _with_close(panel, 25, 4, float("nan"))  # the late-listed ticker, after its listing
    _bad_run(started, late, decide, r"ticker 'EEE' is missing from the feed on 2021-02-08")


def test_feed_with_other_tickers_and_revised_history(started, panel, decide):
    extra = make_panel(N_BARS, n_assets=6)
    with pytest.raises(PortfolioFeedError, match=r"missing \['AAA', 'BBB'.*not in the account \['T0'"):
        _account(started, panel).run(extra, decide)
    revised = _with_close(panel, 19, 0, panel.close[19, 0] * 1.01)
    _bad_run(started, revised, decide, r"ticker 'AAA' closed at .* on 2021-01-29.*revised")
    with pytest.raises(PortfolioFeedError, match="no bar on 2021-01-29"):
        _account(started, panel).run(panel.rows(20, N_BARS), decide)


@pytest.mark.parametrize(
    ("weights", "match"),
    [
        ([0.2, 0.2, -0.1, 0.2, 0.2], r"ticker 'CCC' on 2021-02-01 is -0.1 < 0"),
        ([0.3, 0.3, 0.3, 0.3, 0.0], r"on 2021-02-01 add up to 1.2"),
        ([0.2, 0.2], r"shape \(1, 2\) on 2021-02-01"),
    ],
)
def test_bad_weights_name_ticker_and_date_and_write_nothing(started, panel, decide, weights, match):
    def bad(obs, bar):
        return np.asarray([weights]) if bar >= 20 else decide(obs, bar)

    err = _bad_run(started, panel, bad, match)
    assert isinstance(err, PortfolioWeightsError)
    assert AccountStore(started).load().last_bar == "2021-01-29T00:00:00"


def test_weight_on_a_ticker_not_listed_yet(tmp_path, panel):
    err = _bad_run(
        tmp_path / "new", panel, lambda obs, bar: np.full((1, 5), 0.2), "ticker 'EEE' on 2021-01-07"
    )
    assert "not listed" in str(err)
    assert AccountStore(tmp_path / "new").load().bars_processed == 0


def test_account_settings_are_fixed_and_a_single_asset_folder_is_refused(started, panel, decide, tmp_path):
    other = CONFIG.replace(commission_bps=3.0)
    with pytest.raises(AccountStateError, match="commission_bps"):
        _account(started, panel, config=other).run(panel, decide)
    single = tmp_path / "single"
    store = AccountStore(single)
    with store.locked():
        store.initialize(new_account(1000.0))
    with pytest.raises(
        AccountStateError, match=r"trades \['instrument'\] with one target position, not \['AAA'"
    ):
        _account(single, panel).run(panel, decide)
    # and the other way round: a single-asset broker refuses a universe's folder
    with pytest.raises(
        AccountStateError, match=r"trades \['AAA', .* with target weights of a portfolio config"
    ):
        PaperAccount.instrument(
            AccountStore(started), initial_capital=1e5, costs=CostModel(), limits=RiskLimits()
        ).run(make_prices(40), lambda h, s: 1.0)


def test_replay_of_the_same_decider_exists_for_the_same_panel(panel, decide):
    """Guard for the fixtures: the synthetic decider runs through the replay too (parity file)."""
    run = replay_weights(panel, CONFIG, decide)
    assert run.equity.shape == (1, N_BARS - CONFIG.window + 1)
