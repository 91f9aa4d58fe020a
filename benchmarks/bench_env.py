"""Throughput of the trading environment vs gym-anytrading, on the S&P 500 data.

Run with `make bench` (or `.venv/bin/python benchmarks/bench_env.py [--quick] [--no-write]`).
Not a unit test: timings depend on the machine and its load, so they live here and the
results (with machine info and load average) are written to docs/benchmarks.md.

What is measured (one process, one torch thread, random actions drawn up front):
* `BatchedTradingCore.step` at B = 1, 64, 1024, 4096 lanes (torch back end, CPU), default
  `EnvConfig` (window 16, full observation, auto-reset episodes of 256 steps);
* `TradingEnv` (gymnasium one-account facade, numpy in/out, reset on episode end);
* the same at B = 4096 with the opt-in `compile_step=True` (torch.compile of the step
  arithmetic; compile time excluded);
* `TradingVectorEnv.step` (numpy in/out) at B = 1024;
* the peer, gym-anytrading's `stocks-v0` as `gym.make` builds it, and also its bare
  `StocksEnv` class without gymnasium's wrappers (the fastest the peer can be), same window
  and bars.
An "env step" is one account advancing one bar; ratios are per env step.

Features are the real ones: `reinforce_strategy_creator.features.compute_features` with the
default spec from conf/base/parameters_feature_engineering.yml, standard-scaled.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from reinforce_strategy_creator.env import (  # noqa: E402
    BatchedTradingCore,
    EnvConfig,
    MarketArrays,
    TradingEnv,
    TradingVectorEnv,
)
from reinforce_strategy_creator.features import compute_features, fit_scaler  # noqa: E402

SP500 = ROOT / "data" / "01_raw" / "sp500_daily_1999_2018.csv"
DOC = ROOT / "docs" / "benchmarks.md"
REPEATS = 5
TARGETS = {"B4096": 2e6, "peer_ratio": 20.0, "facade": 1e4}


def load_model_input() -> tuple[pd.DataFrame, pd.DataFrame]:
    raw = pd.read_csv(SP500)
    idx = pd.DatetimeIndex(pd.to_datetime(raw["Date"], format="%m/%d/%Y"), name="date")
    prices = pd.DataFrame(
        {c: raw[c].to_numpy(dtype=np.float64) for c in ("Open", "High", "Low", "Close", "Volume")}, index=idx
    )
    params = yaml.safe_load((ROOT / "conf/base/parameters_feature_engineering.yml").read_text())
    feats = compute_features(prices, params["feature_engineering"]["features"]).dropna()
    scaler = fit_scaler(feats, "standard")
    scaled = pd.DataFrame(
        scaler.transform(feats.to_numpy()).astype(np.float32), index=feats.index, columns=feats.columns
    )
    return scaled.join(prices), prices


def machine_info() -> dict[str, str]:
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "date": dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "torch threads": str(torch.get_num_threads()),
        "load average (1/5/15 min) at start": " / ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def timed(fn, min_seconds: float, repeats: int = REPEATS) -> tuple[float, float, float]:
    """Call fn() (one chunk, returns #env-steps) for `repeats` windows of min_seconds/repeats.

    Returns (median, min, max) env steps per second over the windows: the spread shows how
    much the shared machine's load moved the figure during the run.
    """
    fn()  # warm-up
    rates = []
    for _ in range(repeats):
        n, t0 = 0, time.perf_counter()
        while True:
            n += fn()
            el = time.perf_counter() - t0
            if el >= min_seconds / repeats:
                rates.append(n / el)
                break
    rates.sort()
    return rates[len(rates) // 2], rates[0], rates[-1]


def bench_core(market, cfg, B, secs, compile_step=False):
    core = BatchedTradingCore(market, cfg, B, seed=0, device="cpu", compile_step=compile_step)
    core.reset()
    chunk = max(10, 20000 // B)
    acts = torch.randint(0, cfg.n_actions, (chunk, B), generator=torch.Generator().manual_seed(1))

    def run():
        for j in range(chunk):
            core.step(acts[j])
        return chunk * B

    return timed(run, secs)


def bench_facade(market, cfg, secs):
    env = TradingEnv(market, cfg, seed=0)
    env.reset(seed=0)
    acts = np.random.default_rng(1).integers(0, cfg.n_actions, 5000).tolist()

    def run():
        for a in acts:
            _, _, te, tr, _ = env.step(a)
            if te or tr:
                env.reset()
        return len(acts)

    return timed(run, secs)


def bench_vector(market, cfg, B, secs):
    env = TradingVectorEnv(market, cfg, num_envs=B, seed=0, device="cpu")
    env.reset(seed=0)
    acts = np.random.default_rng(1).integers(0, cfg.n_actions, (20, B))

    def run():
        for a in acts:
            env.step(a)
        return acts.size

    return timed(run, secs)


def bench_peer(prices, window, secs, raw_class: bool):
    import gym_anytrading  # noqa: F401  (registers stocks-v0)
    import gymnasium as gym
    from gym_anytrading.envs import StocksEnv

    if raw_class:  # the bare class: no gymnasium wrappers, the fastest the peer can be
        env = StocksEnv(prices, window_size=window, frame_bound=(window, len(prices)))
    else:  # what a user gets from gym.make("stocks-v0") (order-enforcing + checker wrappers)
        env = gym.make("stocks-v0", df=prices, window_size=window, frame_bound=(window, len(prices)))
    env.reset(seed=0)
    acts = np.random.default_rng(1).integers(0, 2, 5000).tolist()

    def run():
        for a in acts:
            _, _, te, tr, _ = env.step(a)
            if te or tr:
                env.reset()
        return len(acts)

    return timed(run, secs)


def write_section(md: str) -> None:
    """Replace only the "## Environment" section (appended if missing): the file's title and
    intro, and the other stages' sections, stay as they are."""
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    start = text.find("\n## Environment")
    if start >= 0:
        nxt = text.find("\n## ", start + 1)
        text = text[: start + 1] + md.rstrip("\n") + "\n" + (text[nxt:] if nxt >= 0 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + md.rstrip("\n") + "\n"
    DOC.write_text(text)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="short timings (smoke run)")
    ap.add_argument(
        "--no-write", action="store_true", help="print markdown, do not update docs/benchmarks.md"
    )
    args = ap.parse_args()
    torch.set_num_threads(1)
    secs = 0.5 if args.quick else 3.0
    info = machine_info()
    frame, prices = load_model_input()
    market = MarketArrays.from_frame(frame)
    params = yaml.safe_load((ROOT / "conf/base/parameters_environment.yml").read_text())
    cfg = EnvConfig.from_params({**params["environment"], "device": "cpu"})
    obs_dim = cfg.window * market.n_features + 3

    rows = []
    r = bench_peer(prices.loc[frame.index], cfg.window, secs, raw_class=False)
    peer = r[0]
    rows.append(('peer: gym-anytrading `gym.make("stocks-v0")`, 1 account', r))
    r = bench_peer(prices.loc[frame.index], cfg.window, secs, raw_class=True)
    peer_raw = r[0]
    rows.append(("gym-anytrading `StocksEnv` class without wrappers, 1 account", r))
    r = bench_facade(market, cfg, secs)
    facade = r[0]
    rows.append(("TradingEnv (gymnasium facade), 1 account", r))
    core_rates = {}
    for B in (1, 64, 1024, 4096):
        r = bench_core(market, cfg, B, secs)
        core_rates[B] = r[0]
        rows.append((f"BatchedTradingCore, B = {B}", r))
    compiled = None
    try:
        r = bench_core(market, cfg, 4096, secs, compile_step=True)
        compiled = r[0]
        rows.append(("BatchedTradingCore, B = 4096, `compile_step=True` (opt-in)", r))
    except Exception as exc:  # no C++ compiler etc.: report, do not hide
        print(f"compile_step=True could not run: {exc!r}", file=sys.stderr)
    rows.append(("TradingVectorEnv (numpy in/out), B = 1024", bench_vector(market, cfg, 1024, secs)))
    info["load average (1/5/15 min) at end"] = " / ".join(f"{x:.2f}" for x in os.getloadavg())

    lines = [
        "## Environment",
        "",
        "Produced by `make bench` (`benchmarks/bench_env.py`); re-run to update. Data: S&P 500 daily",
        f"1999-2018 ({market.n_bars} bars after feature warm-up), real features "
        f"({market.n_features} `feat_*` columns from the default feature spec, standard-scaled), default",
        f"environment config (window {cfg.window}, positions {list(cfg.positions)}, obs_dim {obs_dim},",
        f"episode_length {cfg.episode_length}, reward {cfg.reward}), CPU, one torch thread, random actions.",
        "The peer is gym-anytrading's `stocks-v0` (via `gym.make`, and its bare `StocksEnv` class) with the "
        "same window; its",
        "observation is only W x 2 (price, diff) floats, ours W x F + 3, and it has no costs on fills.",
        "",
        "| machine | |",
        "| --- | --- |",
        *[f"| {k} | {v} |" for k, v in info.items()],
        "",
        f"| environment | env steps / s (median of {REPEATS}) | min – max | vs peer `stocks-v0` | vs bare "
        "`StocksEnv` |",
        "| --- | ---: | ---: | ---: | ---: |",
        *[
            f"| {name} | {med:,.0f} | {lo:,.0f} – {hi:,.0f} | {med / peer:,.1f}x | {med / peer_raw:,.1f}x |"
            for name, (med, lo, hi) in rows
        ],
        "",
        "Targets (2 CPU cores): >= 2,000,000 steps/s at B = 4096 "
        f"({'met' if core_rates[4096] >= TARGETS['B4096'] else 'NOT met'}), >= 20x the peer at B = 4096 "
        f"({'met' if core_rates[4096] / peer >= TARGETS['peer_ratio'] else 'NOT met'} vs `stocks-v0`, "
        f"{'met' if core_rates[4096] / peer_raw >= TARGETS['peer_ratio'] else 'NOT met'} vs the bare "
        "class), >= 10,000 steps/s "
        f"for the one-account facade ({'met' if facade >= TARGETS['facade'] else 'NOT met'}).",
        *(
            [
                f"With the opt-in `compile_step=True`, B = 4096 runs at {compiled:,.0f} steps/s = "
                f"{compiled / peer:,.1f}x `stocks-v0` "
                f"({'meets' if compiled / peer >= TARGETS['peer_ratio'] else 'misses'} the 20x target)."
            ]
            if compiled
            else []
        ),
        "`BatchedTradingCore` at B = 1 is the torch path (per-call overhead bound); the one-account",
        "gymnasium facade runs the same step code on Python floats instead.",
        "",
        "The machine is shared with other jobs; a load average near or above the core count, or a",
        "wide min – max spread, means the figures are pessimistic. Ratios compare medians taken",
        "in the same run; numbers are only comparable within one run.",
        "",
    ]
    md = "\n".join(lines)
    print(md)
    if not args.no_write and not args.quick:
        write_section(md)
        print(f"updated the environment section of {DOC}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
