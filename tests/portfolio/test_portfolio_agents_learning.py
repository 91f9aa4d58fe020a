"""The portfolio agents learn a planted rotation.

Universe: ``markets.planted_rotation_market`` (real days of the shipped 20-stock
panel resampled i.i.d., 5 tickers, 2,520 bars, the asset with the best trailing 20-bar return
outperforms for the next 5 bars). Raw causal features: log returns over 1, 5 and 20 bars.
Rows 0-60 % train, 60-80 % validation, 80-100 % test (each later panel starts with ``window - 1``
history rows). Agent, equal weight (rebalanced every bar) and the oracle rotation rule
(``markets.rotation_oracle``: all-in on the trailing 20-bar leader) are replayed on the test
rows through the same ``replay_weights`` with the same costs (1 bp commission + 2 bps slippage)
and capital; Sharpe as in validation (``training.run_sharpe``).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reinforce_strategy_creator.evaluation.metrics import infer_periods_per_year
from reinforce_strategy_creator.evaluation.replay import constant_weights, replay_weights
from reinforce_strategy_creator.markets import planted_rotation_market, rotation_oracle
from reinforce_strategy_creator.panel import PortfolioPanel
from reinforce_strategy_creator.training import run_sharpe, train_portfolio_members
from reinforce_strategy_creator.universe import read_universe_csv
from tests.support.env import universe_env
from tests.support.project import SP500_20_CSV

torch.set_num_threads(1)
W = 2
ENV = universe_env(window=W, episode_length=128, commission_bps=1.0, slippage_bps=2.0)
#: logistic-normal PPO (the default distribution) with a sharpened decision, chosen on the
#: validation rows of universe seeds 1 and 3 (docs/learning.md, "Universes: the planted
#: rotation"); no choice looked at a test window of the universes tested here
PPO = dict(
    total_steps=200_000,
    num_steps=32,
    learning_rate=1e-3,
    gamma=0.5,
    ent_coef=0.01,
    distribution="logistic_normal",
    decision_temperature=0.25,
)


def planted_panels(seed: int):
    source = read_universe_csv(SP500_20_CSV).field("Close")
    close = planted_rotation_market(source, seed, n_assets=5, n_bars=2520).close
    c = close.to_numpy()
    lc = np.log(c)
    f = np.full((*c.shape, 3), np.nan)
    for j, k in enumerate((1, 5, 20)):
        f[k:, :, j] = lc[k:] - lc[:-k]
    panel = PortfolioPanel(c, f.astype(np.float32), tuple(close.columns), close.index, ("r1", "r5", "r20"))
    T = panel.n_bars
    a, b = int(T * 0.6), int(T * 0.8)
    return panel.rows(0, a), panel.rows(a - (W - 1), b), panel.rows(b - (W - 1), T)


def test_sharpe(panel: PortfolioPanel, decide) -> float:
    run = replay_weights(panel, ENV, decide)
    return run_sharpe(run.equity[0], run.dates, infer_periods_per_year(panel.dates))


test_sharpe.__test__ = False  # a helper, not a test


def train_best(algo: str, config: dict, train, val, seeds=(0, 1), eval_every: int = 10):
    results = train_portfolio_members(
        algo, config, train, val, ENV, list(seeds), num_envs=32, eval_every=eval_every
    )
    best = max(range(len(results)), key=lambda i: results[i].best_score)
    return results[best]


def planted(universe_seed: int) -> dict:
    train, val, test = planted_panels(universe_seed)
    n = test.n_assets
    return {
        "panels": (train, val, test),
        "equal": test_sharpe(test, constant_weights(np.full(n, 1.0 / n))),
        "oracle": test_sharpe(test, rotation_oracle(test.close, 20)),
    }


#: universes where the 60 %-of-the-oracle bar is a known, measured gap (docs/learning.md,
#: "Universes: the planted rotation"): universe 0, validation-best member test Sharpe 0.94
#: against oracle 3.14 (needs 1.89)
KNOWN_GAP = {0: "test Sharpe 0.94 measured against oracle 3.14 and equal weight 0.18"}


@pytest.mark.slow
@pytest.mark.parametrize("universe_seed", [0, 2])
def test_ppo_population_beats_equal_weight_and_reaches_60_percent_of_the_oracle(universe_seed):
    bench = planted(universe_seed)
    train, val, test = bench["panels"]
    best = train_best("ppo", PPO, train, val, eval_every=20)
    agent = test_sharpe(test, best.policy.decide)
    print(
        f"universe {universe_seed}: PPO test Sharpe {agent:.2f}, equal weight {bench['equal']:.2f}, "
        f"oracle {bench['oracle']:.2f}"
    )
    assert agent > bench["equal"]
    reaches = agent >= 0.6 * bench["oracle"]
    if universe_seed in KNOWN_GAP:
        # strict: fails loudly the day the gap closes, so that KNOWN_GAP is updated
        assert not reaches, f"universe {universe_seed} now reaches 60 % of the oracle: update KNOWN_GAP"
        pytest.xfail(f"known gap on universe {universe_seed}: {KNOWN_GAP[universe_seed]}")
    assert reaches
