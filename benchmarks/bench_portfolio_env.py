"""Throughput of the portfolio environment (N assets per account) vs the single-asset core.

Run: `.venv/bin/python benchmarks/bench_portfolio_env.py [--seconds S] [--reps R] [--breakdown]`.
Not a unit test; the figures and the machine's load go into docs/benchmarks.md by hand.

Measured in the same run, one process, one torch thread, CPU, B = 1,024 accounts:
* `PortfolioCore.step` ("after") on the shipped 20-stock close-only universe
  (data/01_raw/sp500_20_stocks_close_1990_2022.csv, N = 20), features = the per-ticker log
  return scaled by 100 (F = 1), window 16, episodes of 256 steps, random long-only weights
  drawn up front, costs 1 bp commission + 2 bps slippage;
* the pre-optimisation core ("before", `benchmarks/portfolio_reference.py`, kept for the
  equivalence test) on the same panel and weights;
* `BatchedTradingCore.step` on the first ticker's closes, same window, features and episode
  length, random discrete actions.
An "env step" is one account advancing one bar (N assets for the portfolio). The three are
interleaved (rotating order) for `--reps` repetitions of `--seconds` each, each timed by wall clock
and by this process's CPU time (less sensitive to other processes on a shared machine); the
medians are reported, and the ratio portfolio / single-asset is the median of the per-repetition
ratios. `--breakdown` times the parts of one portfolio step (median µs per step).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from benchmarks.portfolio_reference import ReferencePortfolioCore  # noqa: E402
from reinforce_strategy_creator.env import BatchedTradingCore, EnvConfig, MarketArrays  # noqa: E402
from reinforce_strategy_creator.env import execution as ex  # noqa: E402
from reinforce_strategy_creator.env.portfolio import PortfolioCore  # noqa: E402

DATA = ROOT / "data" / "01_raw" / "sp500_20_stocks_close_1990_2022.csv"
B, W, EPISODE, CHUNK = 1024, 16, 256, 50


def rate(step, seconds: float) -> tuple[float, float]:
    """(env steps per wall second, per CPU second) of `step(j)` over ~`seconds`."""
    step(0)  # warm-up
    n, t0, c0 = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - t0 < seconds:
        for j in range(CHUNK):
            step(j)
        n += CHUNK * B
    return n / (time.perf_counter() - t0), n / (time.process_time() - c0)


def timed(f, reps: int = 300) -> tuple[float, float]:
    """(median, min) µs of `f()` over `reps` calls (the min: the cost without interference)."""
    f()
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        f()
        out.append(time.perf_counter() - t0)
    return statistics.median(out) * 1e6, min(out) * 1e6


def breakdown(core: PortfolioCore, weights: torch.Tensor) -> dict[str, float]:
    """Median µs per part of one step, each part timed on its own at the core's current state
    (the parts are the ones `step` calls, in order; their sum is close to a whole step)."""
    w, w_total = core._check(weights[0])
    t1 = torch.clamp(core.t + 1, max=core.last_bar)
    c = core.close.index_select(0, t1)
    cash, sh = core.cash, core.shares
    v = sh * c
    v_total = v.sum(1)
    e0 = cash + v_total
    cur_w = v / e0[:, None]
    delta, _ = core._orders(w, w_total, cur_w, v, v_total, e0, cash, sh, c)
    fill, commission, _ = ex.fill_price_and_costs(core.xp, core.rules, c, delta)
    _, val, _, _, equity, _ = ex.settle(core.xp, core.rules, cash, sh, delta, fill, commission, c)
    weights_now = val / equity[:, None]

    def prep():
        t1 = torch.clamp(core.t + 1, max=core.last_bar)
        c = core.close.index_select(0, t1)
        v = sh * c
        e0 = cash + v.sum(1)
        return v / e0[:, None]

    def kernel():
        fill, commission, slippage = ex.fill_price_and_costs(core.xp, core.rules, c, delta)
        return commission.sum(1), slippage.sum(1)

    def info():
        from reinforce_strategy_creator.env.portfolio import _one_or_nan

        return val / equity[:, None], fill * _one_or_nan(delta), (delta.abs() * c).sum(1)

    parts = {
        "check weights (one host read)": timed(lambda: core._check(weights[0])),
        "close[t+1], book values, weights": timed(prep),
        "trade mask + joint sizing (_orders)": timed(
            lambda: core._orders(w, w_total, cur_w, v, v_total, e0, cash, sh, c)
        ),
        "kernel fill_price_and_costs + sums": timed(kernel),
        "settle (cash, shares, equity)": timed(
            lambda: ex.settle(core.xp, core.rules, cash, sh, delta, fill, commission, c)
        ),
        "info (weights, fill price, turnover)": timed(info),
        "observation (one gather + weights)": timed(lambda: core.observe(weights_now)),
    }
    parts["sum of parts"] = tuple(sum(p[i] for p in parts.values()) for i in (0, 1))
    parts["whole step"] = timed(lambda: core.step(weights[1]))
    return parts


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=1.5, help="per figure per repetition")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--breakdown", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    close = pd.read_csv(DATA, index_col=0).to_numpy(dtype=np.float64)
    lr = np.vstack([np.zeros((1, close.shape[1])), np.diff(np.log(close), axis=0)]) * 100.0
    feats = lr[:, :, None].astype(np.float32)
    N = close.shape[1]
    g = np.random.default_rng(0)
    raw = g.random((CHUNK, B, N + 1))
    weights = torch.as_tensor(raw[:, :, :N] / raw.sum(2, keepdims=True))
    cfg = EnvConfig(
        window=W,
        episode_length=EPISODE,
        commission_bps=1.0,
        slippage_bps=2.0,
        borrow_bps_per_bar=0.0,
        device="cpu",
    )
    tickers = [str(i) for i in range(N)]
    after = PortfolioCore(close, feats, tickers, cfg, num_envs=B, seed=0)
    before = ReferencePortfolioCore(close, feats, tickers, cfg, num_envs=B, seed=0)
    market = MarketArrays.from_arrays(feats[:, 0, :], close[:, 0], close[:, 0])
    single = BatchedTradingCore(market, EnvConfig(window=W, episode_length=EPISODE, device="cpu"), B, seed=0)
    acts = torch.randint(0, 2, (CHUNK, B), generator=torch.Generator().manual_seed(1))
    for core in (after, before, single):
        core.reset()

    if args.breakdown:
        after.step(weights[0])
        print(f"per-step breakdown, PortfolioCore N={N} B={B} (µs per step; median, min):")
        for k, (med_us, min_us) in breakdown(after, weights).items():
            print(f"  {k:<40} {med_us:8.1f} {min_us:8.1f}")
        for label, core, f in (
            ("before: whole step", before, lambda: before.step(weights[2])),
            ("single-asset step", single, lambda: single.step(acts[0])),
        ):
            med_us, min_us = timed(f)
            print(f"  {label:<40} {med_us:8.1f} {min_us:8.1f}")
        return

    runs = {
        "after": lambda j: after.step(weights[j]),
        "before": lambda j: before.step(weights[j]),
        "single": lambda j: single.step(acts[j]),
    }
    wall: dict[str, list[float]] = {k: [] for k in runs}
    cpu: dict[str, list[float]] = {k: [] for k in runs}
    names = list(runs)
    for r in range(args.reps):
        for k in names[r % 3 :] + names[: r % 3]:  # rotate the order
            a, b = rate(runs[k], args.seconds)
            wall[k].append(a)
            cpu[k].append(b)
    med = statistics.median
    print(f"load average at end: {' / '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{args.reps} interleaved repetitions of {args.seconds:g} s; medians (env steps/s):")
    print(f"{'':<34}{'wall':>14}{'CPU time':>14}")
    for k, label in (
        ("after", f"portfolio N={N} B={B} (after)"),
        ("before", f"portfolio N={N} B={B} (before)"),
        ("single", f"single-asset B={B}"),
    ):
        print(f"{label:<34}{med(wall[k]):>14,.0f}{med(cpu[k]):>14,.0f}")
    for clock, d in (("wall", wall), ("CPU", cpu)):
        ra = med([a / s for a, s in zip(d["after"], d["single"])])
        rb = med([a / s for a, s in zip(d["before"], d["single"])])
        sp = med([a / b for a, b in zip(d["after"], d["before"])])
        print(
            f"ratio portfolio / single-asset ({clock}): after {ra:.3f}, before {rb:.3f}; "
            f"speed-up after / before {sp:.2f}x"
        )


if __name__ == "__main__":
    main()
