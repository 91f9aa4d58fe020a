"""Inputs for the paper-trading library tests and their subprocess workers: synthetic daily
bars of one instrument (:func:`make_prices`) or of a universe (:func:`make_panel`), and
deterministic artificial policies for each."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from reinforce_strategy_creator.panel import PortfolioPanel
from tests.support.env import universe_env


def make_prices(n: int, seed: int = 0, start: str = "2020-01-01", freq: str = "B") -> pd.DataFrame:
    """Random-walk daily bars with Open/Close (positive, float64)."""
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = close * np.exp(rng.normal(0, 0.003, n))
    idx = pd.date_range(start, periods=n, freq=freq, name="date")
    return pd.DataFrame(
        {
            "Open": open_,
            "High": np.maximum(open_, close) * 1.001,
            "Low": np.minimum(open_, close) * 0.999,
            "Close": close,
            "Volume": np.full(n, 1e6),
        },
        index=idx,
    )


def alternating_policy(history: pd.DataFrame, state) -> float:
    """Deterministic artificial policy: long after an up close, short-ish after a down one."""
    if len(history) < 2:
        return 0.0
    return 0.9 if history["Close"].iloc[-1] >= history["Close"].iloc[-2] else -0.3


def account_files(folder, split_runs: bool = False) -> dict[str, bytes] | None:
    """Every file of an account folder but its lock, as bytes (``None`` when there is no folder).
    ``split_runs``: the same bars were
    processed by other runs than the account compared with (killed and rerun, or fed bar by
    bar), so ``state.json`` is compared without ``session_first_bar``, the one field that records
    where the newest run started, and the uncommitted tails killed runs left, set aside by the
    next run (``*.torn-*``), are left out; every other byte must still be equal."""
    if not Path(folder).exists():
        return None
    files = {
        p.name: p.read_bytes()
        for p in sorted(Path(folder).iterdir())
        if p.name != ".lock" and not (split_runs and ".torn-" in p.name)
    }
    if split_runs and "state.json" in files:
        state = json.loads(files["state.json"])
        state.pop("session_first_bar")
        files["state.json"] = json.dumps(state, sort_keys=True).encode()
    return files


TICKERS = ("AAA", "BBB", "CCC", "DDD", "EEE")
CONFIG = universe_env(
    window=4, episode_length=None, initial_capital=50_000.0, commission_bps=10.0, slippage_bps=5.0
)


def make_panel(n: int, seed: int = 11, n_assets: int = len(TICKERS), late: int | None = 12) -> PortfolioPanel:
    """Random-walk closes for ``n_assets`` tickers over ``n`` business days (the last ticker listed
    at row ``late``: NaN before), raw features: 1-day and 3-day log returns (causal)."""
    rng = np.random.default_rng(seed)
    close = (
        50
        * np.exp(np.cumsum(rng.normal(0.0003, 0.02, (n, n_assets)), axis=0))
        * rng.uniform(0.5, 20, n_assets)
    )
    if late is not None:
        close[:late, -1] = np.nan
    logc = np.log(close)
    r1 = np.vstack([np.full((1, n_assets), np.nan), np.diff(logc, axis=0)])
    r3 = np.vstack([np.full((3, n_assets), np.nan), logc[3:] - logc[:-3]])
    feats = np.stack([r1, r3], axis=2).astype(np.float32)
    tickers = TICKERS if n_assets == len(TICKERS) else tuple(f"T{j}" for j in range(n_assets))
    return PortfolioPanel(close, feats, tickers, pd.bdate_range("2021-01-04", periods=n, name="date"))


def make_decider(n_assets: int, window: int, n_features: int = 2, seed: int = 7, invest: float = 0.97):
    """A deterministic decider that reads the whole observation (features, current weights, cash,
    tradable flags): softmax of a fixed random projection over the tradable tickers, ``invest`` of
    equity in total."""
    obs_dim = n_assets * window * n_features + 2 * n_assets + 1
    proj = np.random.default_rng(seed).normal(size=(obs_dim, n_assets))
    proj[-(2 * n_assets + 1) :] *= 6.0  # lean on the account's own state

    def decide(obs: torch.Tensor, bar: int) -> np.ndarray:
        z = obs.double().numpy() @ proj
        tradable = obs[0, -n_assets:].numpy() > 0.5
        e = np.where(tradable, np.exp(z - z.max()), 0.0)
        return invest * e / e.sum()

    return decide
