"""A fractional portfolio paper account reproduces the portfolio replay's ledger: paper-trading a
window with fractional granularity reproduces the portfolio backtest ledger.

Both go through one ``PortfolioCore`` (observation, joint post-cost sizing) and the execution
kernel (fills, costs, cash, borrow, marks): the paper account, one bar per commit from its folder,
and :func:`~reinforce_strategy_creator.portfolio.replay.replay_weights`, the one replay that
validation, backtests and benchmarks use. The deciders read the account's own weights and cash
from the observation, so the two only stay together if every observation, fill and mark agrees.
A whole-share account of the same window stays within a bound derived from the truncation.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from reinforce_strategy_creator.deployment import AccountStore, reconcile
from reinforce_strategy_creator.deployment.portfolio_account import (
    PortfolioPaperAccount,
    portfolio_ledger,
)
from reinforce_strategy_creator.env.portfolio import PortfolioConfig
from reinforce_strategy_creator.portfolio.panel import PortfolioPanel
from reinforce_strategy_creator.portfolio.replay import replay_weights
from reinforce_strategy_creator.universe import read_universe_csv
from tests.support.paper import make_decider
from tests.support.project import SP500_20_CSV, STOCKS_CSV

torch.set_num_threads(1)
MONEY = ("equity", "cash", "cost", "commission", "slippage", "borrow", "traded_notional")


def _panel(path, start: str, stop: str) -> PortfolioPanel:
    """Real closes with raw causal features (1- and 5-day log returns), NaN before a listing."""
    close = read_universe_csv(path).field("Close").loc[start:stop]
    logc = np.log(close.to_numpy())
    r1 = np.vstack([np.full((1, logc.shape[1]), np.nan), np.diff(logc, axis=0)])
    r5 = np.vstack([np.full((5, logc.shape[1]), np.nan), logc[5:] - logc[:-5]])
    feats = np.stack([r1, r5], axis=2).astype(np.float32)
    return PortfolioPanel(close.to_numpy(), feats, tuple(close.columns), close.index, ("r1", "r5"))


@pytest.fixture(scope="module")
def sp20() -> PortfolioPanel:
    """The 20-stock universe's last year (2022) plus the observation history before it."""
    return _panel(SP500_20_CSV, "2021-12-01", "2022-12-31")


@pytest.fixture(scope="module")
def stocks5() -> PortfolioPanel:
    """The 5-stock OHLCV universe across FB's listing (2012-05-18)."""
    return _panel(STOCKS_CSV, "2012-03-01", "2012-08-31")


def _monthly(decide):
    """Rebalance on the first bar of a month, hold (no order, no cost) otherwise."""

    def run(obs, bar, dates):
        hold = bar > 0 and dates[bar].month == dates[bar - 1].month
        return decide(obs, bar), np.array([hold])

    return run


def _paper(folder, panel, cfg, decide, granularity):
    account = PortfolioPaperAccount(AccountStore(folder), panel.tickers, cfg, granularity=granularity)
    account.run(panel, decide)
    return account


def _assert_same_ledger(ledger: pd.DataFrame, run, tickers) -> None:
    assert list(ledger.index) == list(run.dates)
    for k in MONEY:
        np.testing.assert_array_equal(ledger[k].to_numpy(), run.__dict__[k][0], err_msg=k)  # bit for bit
    np.testing.assert_array_equal(ledger[[f"shares:{t}" for t in tickers]].to_numpy(), run.shares[0])
    np.testing.assert_array_equal(ledger["equity_cents"].to_numpy(), np.round(run.equity[0] * 100))


@pytest.mark.parametrize(
    ("universe", "config", "monthly"),  # the 20-stock year is slow (~8 s each on 2 busy cores)
    [
        pytest.param("sp20", dict(window=8), False, marks=pytest.mark.slow),
        pytest.param(
            "sp20",
            dict(window=8, band=0.02, commission_bps=5.0, slippage_bps=10.0),
            True,
            marks=pytest.mark.slow,
        ),
        ("stocks5", dict(window=6), False),
        ("stocks5", dict(window=6, long_only=False, gross_leverage=1.5, borrow_bps_per_bar=1.0), False),
    ],
)
def test_fractional_paper_account_reproduces_the_replay_ledger(tmp_path, request, universe, config, monthly):
    panel = request.getfixturevalue(universe)
    cfg = PortfolioConfig(episode_length=None, **config)
    base = make_decider(panel.n_assets, cfg.window, seed=3, invest=0.98)
    if not cfg.long_only:  # long/short: a fixed short leg on a ticker listed from the start
        long_only, j0 = base, int(np.argmax(np.isfinite(panel.close[0])))

        def base(obs, bar):
            w = long_only(obs, bar) * 1.2
            w[..., j0] = -0.25
            return w

    decide = (lambda obs, bar: _monthly(base)(obs, bar, panel.dates)) if monthly else base
    run = replay_weights(panel, cfg, decide)
    account = _paper(tmp_path / "acct", panel, cfg, decide, "fractional")
    ledger = portfolio_ledger(account.store)
    _assert_same_ledger(ledger, run, panel.tickers)
    assert run.traded_notional[0].sum() > 2 * cfg.initial_capital  # it really traded
    assert monthly or (run.traded_notional[0] > 0).mean() > 0.9
    if monthly:
        assert sum(o["hold"] for o in account.log("orders")) > 100
    if universe == "stocks5":  # FB is bought only after its listing
        fb = ledger["shares:FB"]
        assert (fb.loc[:"2012-05-17"] == 0).all() and (fb.loc["2012-05-21":] != 0).any()
    reconcile(account.store)
    print(
        f"\nPARITY {universe} {config}: {len(ledger)} bars, final equity paper "
        f"{ledger['equity'].iloc[-1]:.6f} replay {run.equity[0, -1]:.6f}, max |diff| equity "
        f"{np.abs(ledger['equity'].to_numpy() - run.equity[0]).max()}"
    )


@pytest.mark.slow
def test_whole_share_account_stays_within_the_truncation_bound(tmp_path, sp20):
    """Whole shares leave less than one share of each asset uninvested at each fill, and pay the
    costs of whole instead of fractional quantities. With a decider that ignores the account's
    state (so both accounts target the same weights), bar s's return differs from the fractional
    one's by at most  sum_i close_i,s-1 (|r_i,s| + 2 (slip + comm)) / E_s-1  + 2N cents / E  (first
    order); the log-equity gap is at most the sum of these, which the test checks with 10 % slack
    for the second-order terms."""
    cfg = PortfolioConfig(window=8, episode_length=None, commission_bps=2.0, slippage_bps=3.0)
    proj = np.random.default_rng(5).normal(size=(sp20.n_assets * cfg.window * 2, sp20.n_assets))

    def decide(obs, bar):  # features only: the same weights for both accounts
        z = obs[0, : proj.shape[0]].double().numpy() @ proj
        e = np.exp(z - z.max())
        return (0.98 * e / e.sum())[None, :]

    run = replay_weights(sp20, cfg, decide)
    whole = portfolio_ledger(_paper(tmp_path / "whole", sp20, cfg, decide, "whole").store)
    frac = run.equity[0]
    gap = np.abs(np.log(whole["equity"].to_numpy() / frac))
    close = np.nan_to_num(run.close)
    r = np.abs(close[1:] / close[:-1] - 1)
    rate = cfg.slippage_bps / 1e4 + cfg.commission_bps / 1e4 * (1 + cfg.slippage_bps / 1e4)
    per_bar = (close[:-1] * (r + 2 * rate)).sum(1) / whole["equity"].to_numpy()[:-1]
    per_bar += 2 * sp20.n_assets * 0.01 / whole["equity"].to_numpy()[:-1]
    bound = np.concatenate([[0.0], np.cumsum(per_bar)]) * 1.1
    assert (gap <= bound + 1e-12).all(), (gap / np.maximum(bound, 1e-300)).max()
    assert gap[-1] > 0  # whole shares do differ
    print(
        f"\nWHOLE vs FRACTIONAL (20 stocks, 2022, $100k): final equity {whole['equity'].iloc[-1]:.2f} vs "
        f"{frac[-1]:.2f}; max |log gap| {gap.max():.2e}, bound at that bar "
        f"{bound[int(np.argmax(gap))]:.2e}, largest gap/bound {np.max(gap[1:] / bound[1:]):.2f}"
    )
    assert math.isfinite(gap.max())
