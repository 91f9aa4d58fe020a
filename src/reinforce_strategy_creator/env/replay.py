"""Deterministic full-period replay through the same core, for evaluation and deployment.

`replay(market, config, decide, num_envs=B)` starts every lane at decision bar W-1 with the
initial capital, asks `decide(obs)` for actions at every bar (`decide(obs, bar)` when `decide`
has `needs_bar = True`, e.g. a walk-forward decision that switches policy at fold boundaries)
and runs until the last
fill-and-mark bar T-1 (lanes that go bankrupt freeze). B > 1 replays many policies or seeds
at once: `decide` gets the (B, obs_dim) tensor and returns one action per lane.

The result is a `BacktestResult`, a pandas DataFrame (subclass) with one row per lane and
bar, from the start bar W-1 (equity = initial capital, nothing traded) to T-1:
`date, lane, bar, position, shares, cash, equity, fill_price, cost, reward`, and the
`EnvConfig` used in `.config` (also JSON-able in `.attrs["env_config"]`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import torch

from .config import EnvConfig
from .core import BatchedTradingCore
from .market import MarketArrays

COLUMNS = ["date", "lane", "bar", "position", "shares", "cash", "equity", "fill_price", "cost", "reward"]


class BacktestResult(pd.DataFrame):
    """Per-bar, per-lane backtest table plus the `EnvConfig` used (`.config`)."""

    _metadata = ["config"]

    @property
    def _constructor(self):
        return BacktestResult

    def lane(self, i: int = 0) -> pd.DataFrame:
        """One lane as a plain DataFrame indexed by date."""
        out = pd.DataFrame(self[self["lane"] == i]).set_index("date")
        return out.drop(columns=["lane"])

    def equity_curves(self) -> pd.DataFrame:
        """Equity by date (rows) and lane (columns)."""
        return pd.DataFrame(self).pivot(index="date", columns="lane", values="equity")


def replay(
    market: MarketArrays,
    config: EnvConfig,
    decide: Callable[[torch.Tensor], object],
    num_envs: int = 1,
    device: str | None = None,
) -> BacktestResult:
    # The replay always covers the full period, whatever episode_length training uses.
    full = config.replace(episode_length=None)
    core = BatchedTradingCore(market, full, num_envs, seed=0, autoreset=False, device=device)
    B = num_envs
    obs = core.reset(starts=core.lo_start)
    keys = ("position", "shares", "cash", "equity", "fill_price", "cost", "reward", "bar")
    rows: dict[str, list[torch.Tensor]] = {k: [] for k in keys}
    start = {
        "position": core.held,
        "shares": core.shares,
        "cash": core.cash,
        "equity": core.equity,
        "fill_price": torch.full((B,), float("nan"), dtype=torch.float64, device=core.device),
        "cost": torch.zeros(B, dtype=torch.float64, device=core.device),
        "reward": torch.zeros(B, dtype=torch.float64, device=core.device),
        "bar": core.t,
    }
    for k in keys:
        rows[k].append(start[k])
    n_steps = core.last_bar - core.lo_start
    with torch.no_grad():
        needs_bar = bool(getattr(decide, "needs_bar", False))
        for step in range(n_steps):
            actions = decide(obs, core.lo_start + step) if needs_bar else decide(obs)
            if not isinstance(actions, torch.Tensor):
                actions = torch.as_tensor(np.asarray(actions))
            actions = actions.to(core.device)
            if config.continuous and actions.ndim == 2:
                actions = actions[:, 0]
            if actions.shape[0] != B:
                raise ValueError(f"decide() returned {actions.shape[0]} actions for {B} lanes")
            obs, reward, _, _, info = core.step(actions)
            for k in keys:
                rows[k].append(reward if k == "reward" else info[k])
    data = {k: torch.stack(v, dim=1).cpu().numpy().reshape(-1) for k, v in rows.items()}  # lane-major
    n = n_steps + 1
    bars = data.pop("bar").astype(np.int64)
    frame = BacktestResult(
        {
            "date": market.index[bars],
            "lane": np.repeat(np.arange(B), n),
            "bar": bars,
            **{k: data[k] for k in COLUMNS[3:]},
        }
    )
    frame.config = config
    frame.attrs["env_config"] = config.to_params()
    return frame
