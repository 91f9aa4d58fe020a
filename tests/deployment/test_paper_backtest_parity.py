"""A fractional paper account replaying a window reproduces the backtest ledger of the same policy
to the cent (bit for bit), for one instrument (N = 1, next-close and next-open fills) and for a
universe (a universe of one; N = 5 across a listing, long-only and long/short; N = 20, the embedded
universe's 2022).

Both sides run the execution kernel (env/execution.py) and the paper account's one settlement;
each side's decider reads the account's own state from the observation (held position, unrealised
return and bars held at N = 1; weights and cash at N > 1), so the two only stay together if every
observation, fill, cost, borrow, cash balance and mark agrees bar for bar. The backtest is the
single-asset replay (``env.replay``) at N = 1 and the portfolio replay (``replay_weights``) at
N > 1. A whole-share universe account stays within a bound derived from the truncation.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from benchmarks.deployment_world import project_params
from reinforce_strategy_creator.deployment import (
    AccountStore,
    CostModel,
    PaperAccount,
    RiskLimits,
    reconcile,
)
from reinforce_strategy_creator.deployment.account import portfolio_ledger
from reinforce_strategy_creator.deployment.state import INSTRUMENT, StagedAccount
from reinforce_strategy_creator.env import EnvConfig, MarketArrays, observation_from_window, replay
from reinforce_strategy_creator.evaluation.replay import replay_weights
from reinforce_strategy_creator.features import compute_features, fit_scaler, max_lookback
from reinforce_strategy_creator.market_data import normalise_prices
from reinforce_strategy_creator.panel import PortfolioPanel
from reinforce_strategy_creator.universe import read_universe_csv
from tests.support.env import universe_env
from tests.support.paper import make_decider
from tests.support.project import SP500_20_CSV, SP500_CSV, STOCKS_CSV

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


@pytest.fixture(scope="module")
def stock1(stocks5) -> PortfolioPanel:
    """A universe of one: the 5-stock panel's first ticker."""
    return stocks5.select(stocks5.tickers[:1])


def _monthly(decide):
    """Rebalance on the first bar of a month, hold (no order, no cost) otherwise."""

    def run(obs, bar, dates):
        hold = bar > 0 and dates[bar].month == dates[bar - 1].month
        return decide(obs, bar), np.array([hold])

    return run


def _paper(folder, panel, cfg, decide, granularity):
    account = PaperAccount.universe(AccountStore(folder), panel.tickers, cfg, granularity=granularity)
    account.run(panel, decide)
    return account


POSITIONS = (-1.0, -0.5, 0.0, 0.5, 1.0)


@pytest.fixture(scope="session")  # session: not rebuilt when xdist interleaves modules
def sp500_market() -> MarketArrays:
    """Real S&P 500 bars 2014-2018 with the project's default features, scaled on 2014-2015."""
    raw = pd.read_csv(SP500_CSV, dtype=str, keep_default_na=False)
    prices, _ = normalise_prices(raw, source="sp500")
    prices = prices.loc["2013-01-01":]
    spec = project_params()["feature_engineering"]["features"]
    feats = compute_features(prices, spec).iloc[max_lookback(spec) :]
    scaler = fit_scaler(feats.loc[:"2015-12-31"], "standard")
    scaled = pd.DataFrame(
        scaler.transform(feats.to_numpy()).astype(np.float32), index=feats.index, columns=feats.columns
    )
    return MarketArrays.from_frame(scaled.join(prices).loc["2016-01-01":])


def _policy(obs_dim: int):
    """A deterministic policy that reads the whole observation: argmax of fixed random scores."""
    w = np.random.default_rng(7).normal(size=(len(POSITIONS), obs_dim))
    w[:, -3:] *= 8.0  # lean on the account-state columns (position, unrealised, bars held)
    return lambda obs: int(np.argmax(w @ np.asarray(obs, dtype=np.float64)))


def _one_instrument(request, tmp_path, fill_price):
    """One instrument: the single-asset replay and a fractional account on the same bars; per-trade
    checks here, the ledgers returned as (paper, backtest) frames."""
    market = request.getfixturevalue("sp500_market")
    cfg = EnvConfig(
        window=8, positions=POSITIONS, fill_price=fill_price, episode_length=None, device="cpu"
    )  # default costs: 2 bps commission, 3 bps slippage, borrow
    W, T = cfg.window, market.n_bars
    act = _policy(W * market.n_features + 3)

    seen = []  # the backtest's observations, one per decision bar W-1 .. T-2

    def decide_backtest(obs):
        seen.append(obs.numpy()[0].copy())
        return torch.tensor([act(seen[-1])])

    ledger = replay(market, cfg, decide_backtest).lane(0)

    prices = pd.DataFrame({"Open": market.open, "Close": market.close}, index=market.index)
    bar_of = {ts: i for i, ts in enumerate(market.index)}

    def decide(history, state):
        t = bar_of[history.index[-1]]
        obs = observation_from_window(
            market.features[t - W + 1 : t + 1],
            cfg,
            held=state.held_weights[0],
            shares=state.shares[0],
            last_close=state.last_close[0],
            entry=state.entry_price[0],
            bars_held=state.bars_held[0],
        )
        if t < T - 1:  # the live observation is the backtest's, bit for bit
            assert obs.dtype == np.float32 and obs.tobytes() == seen[t - (W - 1)].tobytes()
        return POSITIONS[act(obs)]

    staged = StagedAccount(tmp_path / "acct", None)
    costs = CostModel(cfg.commission_bps, cfg.slippage_bps, cfg.borrow_bps_per_bar, fill_price)
    broker = PaperAccount.instrument(
        staged,
        initial_capital=cfg.initial_capital,
        costs=costs,
        limits=RiskLimits(max_position_fraction=1.0),
        granularity="fractional",
    )
    state = broker.run(prices, decide, start=market.index[W - 1]).state
    marks, trades, orders = (staged.records[k] for k in ("equity", "trades", "orders"))

    # one mark per replay row: bars W-1 .. T-1 (the first is the start, nothing traded yet)
    assert len(marks) == len(ledger) == T - W + 1
    fills = ledger[ledger["fill_price"].notna()]
    by_bar = {t["bar"]: t for t in trades}
    assert sorted(by_bar) == [d.isoformat() for d in fills.index]  # the same bars trade
    assert len(trades) > 100 and (ledger["shares"] < 0).any() and (ledger["shares"] > 0).any()
    prev_shares = 0.0
    for i, (date, row) in enumerate(ledger.iterrows()):
        m = marks[i]
        # shares, cash and equity are the backtest's, bit for bit, hence to the cent
        assert (m["shares"], m["cash"], m["equity"]) == ([row["shares"]], row["cash"], row["equity"])
        assert m["equity_cents"] == round(row["equity"] * 100)
        assert m["cash_cents"] == round(row["cash"] * 100)
        trade = by_bar.get(date.isoformat())
        assert prev_shares + (trade["shares"] if trade else 0.0) == row["shares"]  # same quantity
        if trade:  # same fill price; same costs (commission + slippage + the mark's borrow)
            assert trade["fill_price"] == row["fill_price"]
            assert (
                trade["reference_price"]
                == (market.close if fill_price == "next_close" else market.open)[i + W - 1]
            )
        cost = (trade["commission"] + trade["slippage"] if trade else 0.0) + m["borrow"]
        assert cost == row["cost"]
        if i:  # the position held over the bar is the target decided at the previous bar
            assert orders[i - 1]["targets"] == [row["position"]]
        prev_shares = row["shares"]
    assert sum(m["borrow"] for m in marks) > 0  # shorts paid borrow on both sides

    # the committed account replays from its own logs, to the same floats
    store = AccountStore(tmp_path / "acct")
    store.commit_batch(staged)
    state = reconcile(store)
    assert state.granularity == "fractional" and (state.exact_cash, state.shares) == (
        row["cash"],
        (row["shares"],),
    )
    shares = f"shares:{INSTRUMENT}"
    backtest = ledger[["equity", "cash", "shares"]].rename(columns={"shares": shares})
    return portfolio_ledger(store)[["equity", "cash", "equity_cents", shares]], backtest


def _universe(request, tmp_path, universe, config, monthly):
    """A universe: the portfolio replay and a fractional account on the same panel; per-trade checks
    here, the ledgers returned as (paper, backtest) frames."""
    panel = request.getfixturevalue(universe)
    cfg = universe_env(episode_length=None, **config)
    base = make_decider(panel.n_assets, cfg.window, seed=3, invest=0.98)
    if panel.n_assets == 1:  # one asset: its weight would be the constant 0.98; cycle it instead

        def base(obs, bar):
            return np.array([[(0.2, 0.55, 0.9)[bar % 3]]])

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
    shares = [f"shares:{t}" for t in panel.tickers]
    backtest = pd.DataFrame({"equity": run.equity[0], "cash": run.cash[0]}, index=pd.DatetimeIndex(run.dates))
    backtest[shares] = run.shares[0]
    for k in MONEY:  # costs too, bar for bar
        np.testing.assert_array_equal(ledger[k].to_numpy(), run.__dict__[k][0], err_msg=k)
    return ledger[["equity", "cash", "equity_cents", *shares]], backtest


CASES = [
    pytest.param(_one_instrument, ("next_close",), id="N=1-next_close"),
    pytest.param(_one_instrument, ("next_open",), id="N=1-next_open"),
    pytest.param(_universe, ("stock1", dict(window=6), False), id="N=1-universe"),
    pytest.param(_universe, ("stocks5", dict(window=6), False), id="N=5-long_only"),
    pytest.param(
        _universe,
        ("stocks5", dict(window=6, long_only=False, gross_leverage=1.5, borrow_bps_per_bar=1.0), False),
        id="N=5-long_short",
    ),
    # the 20-stock year is slow (~8 s each on 2 busy cores)
    pytest.param(_universe, ("sp20", dict(window=8), False), id="N=20", marks=pytest.mark.slow),
    pytest.param(
        _universe,
        ("sp20", dict(window=8, band=0.02, commission_bps=5.0, slippage_bps=10.0), True),
        id="N=20-monthly_band",
        marks=pytest.mark.slow,
    ),
]


@pytest.mark.parametrize(("case", "args"), CASES)
def test_a_fractional_paper_account_reproduces_the_backtest_ledger_to_the_cent(request, tmp_path, case, args):
    paper, backtest = case(request, tmp_path, *args)
    assert list(paper.index) == list(backtest.index) and len(paper) > 20
    for column in backtest.columns:  # equity, cash and every holding: bit for bit
        np.testing.assert_array_equal(paper[column].to_numpy(), backtest[column].to_numpy(), err_msg=column)
    np.testing.assert_array_equal(
        paper["equity_cents"].to_numpy(), np.round(backtest["equity"].to_numpy() * 100)
    )


def test_whole_share_account_stays_within_the_truncation_bound(tmp_path, sp20):
    """Whole shares leave less than one share of each asset uninvested at each fill, and pay the
    costs of whole instead of fractional quantities. With a decider that ignores the account's
    state (so both accounts target the same weights), bar s's return differs from the fractional
    one's by at most  sum_i close_i,s-1 (|r_i,s| + 2 (slip + comm)) / E_s-1  + 2N cents / E  (first
    order); the log-equity gap is at most the sum of these, which the test checks with 10 % slack
    for the second-order terms."""
    cfg = universe_env(window=8, episode_length=None, commission_bps=2.0, slippage_bps=3.0)
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
