"""Tiny training budgets (``training.<agent>`` blocks) and small model-input tables derived from
the real S&P 500 file, for the training library and pipeline tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tests.support.project import SP500_CSV

OHLCV = ["Open", "High", "Low", "Close", "Volume"]
ENV = {"window": 8, "positions": [0, 1], "episode_length": 64, "device": "cpu"}
COMMON = {
    "seeds": [0, 1],
    "total_steps": 1024,
    "num_envs": 8,
    "eval_every": 1,
    "patience": None,
    "device": "cpu",
    "num_threads": 1,
    "progress": False,
}
AGENTS = {
    "ppo": {"algorithm": "ppo", "num_steps": 32, "hidden_sizes": [16, 16]},
    "a2c": {"algorithm": "a2c", "num_steps": 8, "eval_every": 4, "hidden_sizes": [16, 16]},
    "dqn": {
        "algorithm": "dqn",
        "learning_starts": 128,
        "buffer_size": 1024,
        "eval_every": 16,
        "hidden_sizes": [16, 16],
        "log_every": 4,
    },
}


def plan(agent: str = "ppo", common: dict | None = None, block: dict | None = None, name: str | None = None):
    """The validated ``training.<agent>`` block (an AgentPlan) from the test budgets above."""
    from reinforce_strategy_creator.params.training import plan_agent

    return plan_agent({**COMMON, **(common or {})}, AGENTS[agent] if block is None else block, name or agent)


def sp500_model_input(n_train: int = 400, n_val: int = 150, start: str = "2004-01-01"):
    """(train, validation, scaler dict): three causal S&P 500 features scaled on train only."""
    raw = pd.read_csv(SP500_CSV)
    idx = pd.DatetimeIndex(pd.to_datetime(raw["Date"], format="%m/%d/%Y"), name="date")
    px = pd.DataFrame({c: raw[c].to_numpy(np.float64) for c in OHLCV}, index=idx).sort_index()
    c = px["Close"]
    feats = pd.DataFrame(
        {
            "feat_logret_1": np.log(c / c.shift(1)),
            "feat_logret_5": np.log(c / c.shift(5)),
            "feat_range": (px["High"] - px["Low"]) / c,
        },
        index=px.index,
    )
    table = pd.concat([feats, px], axis=1).loc[start:].iloc[: n_train + n_val]
    names = list(feats.columns)
    train, val = table.iloc[:n_train].copy(), table.iloc[n_train:].copy()
    mu, sd = train[names].mean(), train[names].std(ddof=0)
    for t in (train, val):
        for n in names:
            t[n] = ((t[n] - mu[n]) / sd[n]).astype(np.float32)
    scaler = {
        "kind": "standard",
        "feature_names": names,
        "center": mu.tolist(),
        "scale": sd.tolist(),
        "fit_rows": n_train,
        "fit_start": train.index[0].isoformat(),
        "fit_end": train.index[-1].isoformat(),
        "sklearn_version": "n/a",
    }
    return train, val, scaler
