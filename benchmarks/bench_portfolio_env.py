"""Throughput of the portfolio environment (N assets per account) vs the single-asset core.

Run: `.venv/bin/python benchmarks/bench_portfolio_env.py [--seconds S]`. Not a unit test; the
figures and the machine's load go into docs/portfolio_env.md by hand.

Both measured in the same run, one process, one torch thread, CPU, B = 1,024 accounts:
* `PortfolioCore.step` on the shipped 20-stock close-only universe
  (data/01_raw/sp500_20_stocks_close_1990_2022.csv, N = 20), features = the per-ticker log
  return scaled by 100 (F = 1), window 16, episodes of 256 steps, random long-only weights
  drawn up front, costs 1 bp commission + 2 bps slippage;
* `BatchedTradingCore.step` on the first ticker's closes, same window, features and episode
  length, random discrete actions.
An "env step" is one account advancing one bar (N assets for the portfolio).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from reinforce_strategy_creator.env import BatchedTradingCore, EnvConfig, MarketArrays  # noqa: E402
from reinforce_strategy_creator.env.portfolio import PortfolioConfig, PortfolioCore  # noqa: E402

DATA = ROOT / "data" / "01_raw" / "sp500_20_stocks_close_1990_2022.csv"
B, W, EPISODE = 1024, 16, 256


def rate(step, chunk: int, seconds: float) -> float:
    step(0)  # warm-up
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for j in range(chunk):
            step(j)
        n += chunk * B
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=3.0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    close = pd.read_csv(DATA, index_col=0).to_numpy(dtype=np.float64)
    lr = np.vstack([np.zeros((1, close.shape[1])), np.diff(np.log(close), axis=0)]) * 100.0
    feats = lr[:, :, None].astype(np.float32)
    N, chunk = close.shape[1], 50
    g = np.random.default_rng(0)

    core = PortfolioCore(
        close,
        feats,
        [str(i) for i in range(N)],
        PortfolioConfig(window=W, episode_length=EPISODE),
        num_envs=B,
        seed=0,
    )
    core.reset()
    raw = g.random((chunk, B, N + 1))
    weights = torch.as_tensor(raw[:, :, :N] / raw.sum(2, keepdims=True))
    port = rate(lambda j: core.step(weights[j]), chunk, args.seconds)

    market = MarketArrays.from_arrays(feats[:, 0, :], close[:, 0], close[:, 0])
    single = BatchedTradingCore(market, EnvConfig(window=W, episode_length=EPISODE, device="cpu"), B, seed=0)
    single.reset()
    acts = torch.randint(0, 2, (chunk, B), generator=torch.Generator().manual_seed(1))
    one = rate(lambda j: single.step(acts[j]), chunk, args.seconds)

    print(f"load average at end: {' / '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"portfolio N={N} B={B}: {port:,.0f} env steps/s ({port * N:,.0f} asset-steps/s)")
    print(f"single-asset  B={B}: {one:,.0f} env steps/s")
    print(f"ratio portfolio / single-asset (env steps): {port / one:.3f}")


if __name__ == "__main__":
    main()
