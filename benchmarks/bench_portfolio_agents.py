"""PPO training throughput on the 20-stock universe vs single-asset PPO, in the same run.

Run: `.venv/bin/python benchmarks/bench_portfolio_agents.py [--steps S]`. Not a unit test; the
figures and the machine's load go into docs/benchmarks.md by hand.

Both trainers: CPU, one torch thread, 64 lanes, rollouts of 64 steps, 4 minibatches x 4 epochs,
64x64 tanh networks, no evaluation, one seed.
* portfolio PPO (`agents.train_ppo` on `PortfolioCore` members) over the shipped
  20-stock close-only universe (data/01_raw/sp500_20_stocks_close_1990_2022.csv read with
  `universe.read_universe_csv`, N = 20), raw causal features = log returns over 1, 5 and 20 days
  (F = 3), window 16, episodes of 256 steps, 1 bp commission + 2 bps slippage;
* single-asset PPO (`agents.train_ppo`) on `TradingVectorEnv` over the first ticker, the same
  three features, window and episode length.
An env step is one lane advancing one bar (all 20 assets for the portfolio).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "true")

import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from reinforce_strategy_creator.agents import train_ppo  # noqa: E402
from reinforce_strategy_creator.env import EnvConfig, MarketArrays, TradingVectorEnv  # noqa: E402
from reinforce_strategy_creator.env.portfolio import PortfolioCore  # noqa: E402
from reinforce_strategy_creator.panel import PortfolioPanel, fit_feature_scaler  # noqa: E402
from reinforce_strategy_creator.universe import read_universe_csv  # noqa: E402

DATA = ROOT / "data" / "01_raw" / "sp500_20_stocks_close_1990_2022.csv"
LANES, W, EPISODE = 64, 16, 256
PPO = {"num_steps": 64, "num_minibatches": 4, "update_epochs": 4, "hidden_sizes": [64, 64]}


def features(close: np.ndarray) -> np.ndarray:
    """(T, N, 3) log returns over 1, 5 and 20 days (NaN until a ticker has the history)."""
    lc = np.log(close)
    out = np.full((*close.shape, 3), np.nan)
    for j, k in enumerate((1, 5, 20)):
        out[k:, :, j] = lc[k:] - lc[:-k]
    return out.astype(np.float32)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=64 * 64 * 6)
    args = ap.parse_args()
    torch.set_num_threads(1)
    close = read_universe_csv(DATA).field("Close")
    c = close.to_numpy(dtype=np.float64)
    feats = features(c)
    tickers = [str(t) for t in close.columns]
    cfg = dict(PPO, total_steps=args.steps)

    core = PortfolioCore(
        c,
        feats,
        tickers,
        EnvConfig(
            window=W,
            episode_length=EPISODE,
            commission_bps=1.0,
            slippage_bps=2.0,
            borrow_bps_per_bar=0.0,
            device="cpu",
        ),
        LANES,
        seed=0,
    )
    t0 = time.perf_counter()
    panel = PortfolioPanel(c, feats, tickers, close.index, ("r1", "r5", "r20"))
    scaler = fit_feature_scaler(panel, slice(None))
    (res,) = train_ppo([core], cfg, seeds=[0], scaler=scaler, device="cpu", progress=False)
    port = res.steps / (time.perf_counter() - t0)

    f0 = np.nan_to_num(feats[:, 0, :])
    market = MarketArrays.from_arrays(f0, c[:, 0], c[:, 0])
    envs = TradingVectorEnv(market, EnvConfig(window=W, episode_length=EPISODE, device="cpu"), LANES, seed=0)
    t0 = time.perf_counter()
    (res1,) = train_ppo([envs], cfg, seeds=[0], device="cpu", progress=False)
    one = res1.steps / (time.perf_counter() - t0)

    print(f"load average at end: {' / '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"portfolio PPO N={len(tickers)} lanes={LANES}: {port:,.0f} env steps/s ({res.steps} steps)")
    print(f"single-asset PPO   lanes={LANES}: {one:,.0f} env steps/s ({res1.steps} steps)")
    print(f"ratio portfolio / single-asset (env steps/s): {port / one:.3f}")


if __name__ == "__main__":
    main()
