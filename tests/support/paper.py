"""Inputs for the paper-trading library tests and their subprocess workers: synthetic daily
bars and a deterministic artificial policy."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd


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
