"""Subprocess for the kill test: process N synthetic bars into a paper account folder.

Usage: python crash_worker.py ACCOUNT_DIR N_BARS GRANULARITY N_ASSETS, or ``--serve`` to run as a
fork server (tests/support/forkserver.py: imports once, one forked process per run). ``N_ASSETS``
1: one instrument's bars (``make_prices``) through the single-asset broker; more: a universe
(``make_panel``, one ticker listed mid-window) through the universe's account. Both with risk
limits. Reports its progress on stdout, one line each, with a ``time.monotonic()`` stamp (the same
clock as the parent's on Linux):

    started T             imports done, about to process bars
    commit N T            bar N is decided; its commit (log append + state.json) starts
    committed N T         bar N is committed (state.json published)
    finished T            every bar is processed

so the parent can aim its SIGKILLs at a random moment of a chosen bar, or of a chosen commit,
whatever the machine's load. The store is the real ``AccountStore``; only the reporting wraps it.
"""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import torch  # noqa: E402

from reinforce_strategy_creator.deployment import (  # noqa: E402
    AccountStore,
    CostModel,
    PaperAccount,
    RiskLimits,
)
from tests.support.forkserver import serve  # noqa: E402
from tests.support.paper import (  # noqa: E402
    CONFIG,
    alternating_policy,
    make_decider,
    make_panel,
    make_prices,
)


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
    folder, n, granularity, n_assets = Path(args[0]), int(args[1]), args[2], int(args[3])
    torch.set_num_threads(1)
    store = ReportingStore(folder)
    if n_assets == 1:
        account = PaperAccount.instrument(
            store,
            initial_capital=50_000.0,
            costs=CostModel(commission_bps=10, slippage_bps=5),
            limits=RiskLimits(max_position_fraction=0.8, max_daily_loss=0.01, max_drawdown=0.3),
            granularity=granularity,
        )
        feed, decide = make_prices(n, seed=11), alternating_policy
    else:
        feed = make_panel(n, n_assets=n_assets)
        account = PaperAccount.universe(
            store,
            feed.tickers,
            CONFIG,
            granularity=granularity,
            limits=RiskLimits(max_position_fraction=0.4, max_drawdown=0.3, max_daily_loss=0.05),
        )
        decide = make_decider(feed.n_assets, CONFIG.window)
    say("started")
    account.run(feed, decide)
    say("finished")


if __name__ == "__main__":
    serve(main) if sys.argv[1:] == ["--serve"] else main(sys.argv[1:])
