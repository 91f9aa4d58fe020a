"""Subprocess for the portfolio kill test, and the synthetic feed and decider the portfolio account
tests share.

Usage: python portfolio_crash_worker.py ACCOUNT_DIR N_BARS GRANULARITY, or ``--serve`` (a fork
server, tests/support/forkserver.py). Progress lines on stdout, as crash_worker.py:

    started T / commit N T / committed N T / finished T

The store is the real ``AccountStore``; only the reporting wraps it.
"""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from reinforce_strategy_creator.deployment import AccountStore, RiskLimits  # noqa: E402
from reinforce_strategy_creator.deployment.portfolio_account import (  # noqa: E402
    PortfolioPaperAccount,
)
from reinforce_strategy_creator.env.portfolio import PortfolioConfig  # noqa: E402
from reinforce_strategy_creator.portfolio.panel import PortfolioPanel  # noqa: E402

TICKERS = ("AAA", "BBB", "CCC", "DDD", "EEE")
CONFIG = PortfolioConfig(
    window=4, episode_length=None, initial_capital=50_000.0, commission_bps=10.0, slippage_bps=5.0
)


def make_panel(n: int, seed: int = 11, n_assets: int = len(TICKERS), late: int | None = 12) -> PortfolioPanel:
    """Random-walk closes for ``n_assets`` tickers over ``n`` business days (the last ticker listed
    at row ``late``: NaN before), raw features: 1-day and 3-day log returns (causal)."""
    rng = np.random.default_rng(seed)
    close = (
        50
        * np.exp(np.cumsum(rng.normal(0.0003, 0.02, (n, n_assets)), axis=0))
        * rng.uniform(0.5, 20, n_assets)
    )
    if late is not None:
        close[:late, -1] = np.nan
    logc = np.log(close)
    r1 = np.vstack([np.full((1, n_assets), np.nan), np.diff(logc, axis=0)])
    r3 = np.vstack([np.full((3, n_assets), np.nan), logc[3:] - logc[:-3]])
    feats = np.stack([r1, r3], axis=2).astype(np.float32)
    tickers = TICKERS if n_assets == len(TICKERS) else tuple(f"T{j}" for j in range(n_assets))
    return PortfolioPanel(close, feats, tickers, pd.bdate_range("2021-01-04", periods=n, name="date"))


def make_decider(n_assets: int, window: int, n_features: int = 2, seed: int = 7, invest: float = 0.97):
    """A deterministic decider that reads the whole observation (features, current weights, cash,
    tradable flags): softmax of a fixed random projection over the tradable tickers, ``invest`` of
    equity in total."""
    obs_dim = n_assets * window * n_features + 2 * n_assets + 1
    proj = np.random.default_rng(seed).normal(size=(obs_dim, n_assets))
    proj[-(2 * n_assets + 1) :] *= 6.0  # lean on the account's own state

    def decide(obs: torch.Tensor, bar: int) -> np.ndarray:
        z = obs.double().numpy() @ proj
        tradable = obs[0, -n_assets:].numpy() > 0.5
        e = np.where(tradable, np.exp(z - z.max()), 0.0)
        return invest * e / e.sum()

    return decide


def say(*words) -> None:
    print(*words, time.monotonic(), flush=True)


class ReportingStore(AccountStore):
    """The real store, announcing each commit before it starts and after it is published."""

    def commit(self, state, records=None, **kwargs):
        say("commit", state.bars_processed)
        committed = super().commit(state, records, **kwargs)
        say("committed", committed.bars_processed)
        return committed


def main(args: list[str]) -> None:
    folder, n, granularity = Path(args[0]), int(args[1]), args[2]
    torch.set_num_threads(1)
    panel = make_panel(n)
    account = PortfolioPaperAccount(
        ReportingStore(folder),
        panel.tickers,
        CONFIG,
        granularity=granularity,
        limits=RiskLimits(max_position_fraction=0.4, max_drawdown=0.3, max_daily_loss=0.05),
    )
    say("started")
    account.run(panel, make_decider(panel.n_assets, CONFIG.window))
    say("finished")


if __name__ == "__main__":
    serve = __import__("tests.support.forkserver", fromlist=["serve"]).serve
    serve(main) if sys.argv[1:] == ["--serve"] else main(sys.argv[1:])
