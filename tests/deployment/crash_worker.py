"""Subprocess for the kill test: process N synthetic bars into an account folder.

Usage: python crash_worker.py ACCOUNT_DIR N_BARS. Prints "started" once imports are done so
the parent can aim its SIGKILLs at the bar-processing loop.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from reinforce_strategy_creator.deployment import (  # noqa: E402
    AccountStore,
    CostModel,
    PaperBroker,
    RiskLimits,
)
from tests.support.paper import alternating_policy, make_prices  # noqa: E402


def main() -> None:
    folder, n = Path(sys.argv[1]), int(sys.argv[2])
    prices = make_prices(n, seed=11)
    broker = PaperBroker(AccountStore(folder), initial_capital=50_000.0,
                         costs=CostModel(commission_bps=10, slippage_bps=5),
                         limits=RiskLimits(max_position_fraction=0.8, max_daily_loss=0.01,
                                           max_drawdown=0.3))
    print("started", flush=True)
    broker.run(prices, alternating_policy)


if __name__ == "__main__":
    main()
