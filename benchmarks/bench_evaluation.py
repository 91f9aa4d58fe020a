"""Speed of the evaluation library on a real-sized ledger (S&P 500 daily, ~5,000 bars).

Run: .venv/bin/python benchmarks/bench_evaluation.py
Measures evaluate_backtest (all performance + trade metrics) on one ledger, and the
evaluation of a 100-seed random policy replayed in one batched env.replay.
"""

from __future__ import annotations

import os
import time

import numpy as np
import pandas as pd
import torch

os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "true")

from reinforce_strategy_creator.env import EnvConfig, MarketArrays, replay  # noqa: E402
from reinforce_strategy_creator.evaluation.benchmarks import (  # noqa: E402
    ScheduledDecision,
    SmaCrossover,
    position_targets,
    random_targets,
)
from reinforce_strategy_creator.evaluation.metrics import evaluate_backtest  # noqa: E402
from reinforce_strategy_creator.evaluation.strategies import Prices  # noqa: E402

torch.set_num_threads(1)
raw = pd.read_csv("data/01_raw/sp500_daily_1999_2018.csv")
raw.index = pd.DatetimeIndex(pd.to_datetime(raw.pop("Date"), format="%m/%d/%Y"), name="date")
raw = raw.sort_index()
close = raw["Close"].to_numpy(dtype=float)
table = pd.DataFrame(
    {
        "feat_ret": np.r_[0.0, np.diff(np.log(close))].astype("float32"),
        "Open": raw["Open"].astype(float),
        "Close": raw["Close"].astype(float),
    },
    index=raw.index,
)
cfg = EnvConfig.from_params(dict(window=5, positions=(-1.0, 0.0, 1.0), episode_length=None, device="cpu"))
market = MarketArrays.from_frame(table)


def timed(label, fn, repeat=3):
    best = min(_t(fn) for _ in range(repeat))
    print(f"{label}: {best * 1e3:.1f} ms")


def _t(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


sma = position_targets(SmaCrossover(20, 100, long_short=True).schedule(Prices.of(close), 0))[0]
lane = replay(market, cfg, ScheduledDecision(sma, cfg.positions, cfg.window - 1)).lane(0)
print(f"ledger: {len(lane)} bars")
timed("evaluate_backtest (SMA 20/100 long/short)", lambda: evaluate_backtest(lane))
rand = random_targets(len(table), cfg.positions, range(100), switch_prob=0.05)
res = replay(market, cfg, ScheduledDecision(rand, cfg.positions, cfg.window - 1), num_envs=100)
timed(
    "replay 100 random seeds (batched)",
    lambda: replay(market, cfg, ScheduledDecision(rand, cfg.positions, cfg.window - 1), num_envs=100),
    1,
)
timed(
    "evaluate 100 random lanes",
    lambda: [evaluate_backtest(res.lane(i), periods_per_year=252) for i in range(100)],
    1,
)
