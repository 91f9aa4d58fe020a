"""The observation layout, written once for the batched core and for live paper trading.

``obs = [feature rows t-W+1..t flattened oldest first, then per the config switches:
position, unrealised, bars held]`` (float32, docs/environment.md "Observation layout"):

* `build_windows` precomputes every bar's feature block as one (T, W*F + n_state) table (the
  core gathers rows of it);
* `state_columns` computes the account-state columns on any back end (:mod:`.ops`) from the
  held target, shares, last close, entry price and bars held (kept by
  :func:`.execution.position_after`);
* `observation_from_window` builds one observation from W feature rows and one account's
  state (what deployment feeds a policy), with the same two functions.
"""

from __future__ import annotations

import numpy as np

from .ops import SCALAR

BARS_HELD_SCALE = 252  # observation of bars held = min(bars, 252) / 252


def n_state(config) -> int:
    """Number of account-state columns after the feature window."""
    return int(config.obs_position) + int(config.obs_unrealised) + int(config.obs_bars_held)


def build_windows(features: np.ndarray, window: int, extra_cols: int) -> np.ndarray:
    """(T, N*W*F + extra) float32: row t = per asset (column order), feature rows t-W+1..t
    flattened oldest first; ``features`` is (T, F) (N = 1) or (T, N, F).

    Rows t < W-1 are zero (never observed: a replay starts at t = W-1). Precomputing this
    once (T*N*W*F floats, a few MB) makes building an observation a single row gather.
    """
    f = features if features.ndim == 3 else features[:, None, :]
    T, N, F = f.shape
    out = np.zeros((T, N * window * F + extra_cols), dtype=np.float32)
    if T >= window:
        win = np.lib.stride_tricks.sliding_window_view(f, window, axis=0)  # (T-W+1, N, F, W)
        out[window - 1 :, : N * window * F] = win.transpose(0, 1, 3, 2).reshape(T - window + 1, -1)
    return out


def state_columns(xp, config, held, shares, last_close, entry, bars) -> list:
    """The account-state columns in layout order (float64; cast to float32 when stored):
    the held target position, ``sign(shares) * (last_close / entry - 1)`` and
    ``min(bars, 252) / 252``, each only if its ``obs_*`` switch is on."""
    cols = []
    if config.obs_position:
        cols.append(held)
    if config.obs_unrealised:
        cols.append(xp.sign(shares) * (last_close / entry - 1.0))
    if config.obs_bars_held:
        cols.append(xp.clip(bars, 0.0, float(BARS_HELD_SCALE)) / BARS_HELD_SCALE)
    return cols


def observation_from_window(
    window_features: np.ndarray,
    config,
    *,
    held: float,
    shares: float,
    last_close: float,
    entry: float,
    bars_held: float,
) -> np.ndarray:
    """One observation (obs_dim,) float32 from the last W scaled feature rows and one account.

    The environment's layout (:func:`build_windows` + :func:`state_columns` on the scalar back
    end); deployment builds live observations with it.
    """
    feats = np.asarray(window_features, dtype=np.float32)
    if feats.ndim != 2 or feats.shape[0] != config.window:
        raise ValueError(
            f"observation needs exactly environment.window={config.window} feature rows, "
            f"got an array of shape {feats.shape}"
        )
    obs = build_windows(feats, config.window, n_state(config))[-1].copy()
    cols = state_columns(
        SCALAR, config, float(held), float(shares), float(last_close), float(entry), float(bars_held)
    )
    if cols:
        SCALAR.set_state(obs, feats.shape[1] * config.window, cols)
    return obs
