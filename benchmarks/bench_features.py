"""Time ``compute_features`` on the S&P 500 file (5,031 daily bars) with the default spec,
and compare with TA-Lib run once over the whole series (fast, but with start-dependent
memory; see the ``features`` module docstring for why the windowed form is used).

Run: ``.venv/bin/python benchmarks/bench_features.py``
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import talib
import yaml

from reinforce_strategy_creator import features as fe

ROOT = Path(__file__).resolve().parents[1]


def main(repeats: int = 5) -> None:
    raw = pd.read_csv(ROOT / "data/01_raw/sp500_daily_1999_2018.csv")
    idx = pd.DatetimeIndex(pd.to_datetime(raw["Date"], format="%m/%d/%Y"), name="date")
    prices = pd.DataFrame({c: raw[c].to_numpy(np.float64) for c in fe.PRICE_COLUMNS}, index=idx)
    params = yaml.safe_load((ROOT / "conf/base/parameters_feature_engineering.yml").read_text())
    spec = params["feature_engineering"]["features"]

    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fe.compute_features(prices, spec)
        times.append(time.perf_counter() - t0)
    best = min(times)
    cells = out.shape[0] * out.shape[1]
    print(
        f"compute_features: {len(prices)} bars x {out.shape[1]} features, best of {repeats}: "
        f"{best * 1e3:.0f} ms ({best / cells * 1e6:.2f} us per value)"
    )

    c, h, lo = (prices[k].to_numpy() for k in ("Close", "High", "Low"))
    t0 = time.perf_counter()
    for _ in range(repeats):
        talib.EMA(c, 10), talib.EMA(c, 20), talib.RSI(c, 14), talib.MACD(c, 12, 26, 9)
        talib.ATR(h, lo, c, 14), talib.SMA(c, 50), talib.BBANDS(c, 20)
    print(
        f"whole-series TA-Lib (7 indicators, start-dependent): "
        f"{(time.perf_counter() - t0) / repeats * 1e3:.2f} ms"
    )


if __name__ == "__main__":
    main()
