"""An AR(1) planted-signal market: a problem with a KNOWN best policy, to prove agents learn.

What it generates
-----------------
A daily OHLCV series in which the return of the next bar depends on a feature that is
observable at the close of the current bar:

    s_t          = phi * s_{t-1} + sqrt(1 - phi^2) * z_t          (unit-variance AR(1) signal)
    Open[t+1]    = Close[t]                                        (no overnight gap)
    log(Close[t+1] / Open[t+1]) = vol * (snr * s_t + eps_{t+1})    (z, eps iid N(0, 1))

so the expected next-bar return has the sign of ``s_t``, and ``snr`` is the ratio of the
predictable to the unpredictable part of the next-bar log return's standard deviation. The
opens are real prices (no stale copies), so use it with ``environment.fill_price: next_open``:
decide at close t, fill at open[t+1], mark at close[t+1]; the bar t+1 return is then exactly
what a position decided at t earns, and nothing at bar t uses data after t: ``feat_signal``
at row t is ``s_t``.

The frame has the model-input layout of docs/contracts.md: a ``DatetimeIndex`` named
``date`` (business days), float32 ``feat_*`` columns -- ``feat_signal``, ``n_noise``
pure-noise features ``feat_noise_<k>`` and ``feat_ret_1`` (the bar's own scaled log
return, causal and useless for prediction) -- then float64 ``Open, High, Low, Close,
Volume``.

The oracle policy holds, at each decision bar, the allowed position whose sign matches
``s_t`` (largest long when s_t > 0, largest short when s_t < 0 and shorts are allowed,
else flat). Hand-written because no library generates markets with a planted, known
signal; everything is vectorised numpy from one seeded ``numpy.random.Generator``. Unlike the
other markets of this library it is not made of real days: the agents' learning tests
(tests/agents) need a feature column that carries the signal.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .days import MarketSpecError, check_number, check_seed


@dataclass(frozen=True)
class PlantedMarket:
    """The generated model-input frame, the oracle's target positions and the settings."""

    frame: pd.DataFrame
    oracle_position: pd.Series  # target position decided at each bar (index = frame.index)
    snr: float
    seed: int
    positions: tuple[float, ...]

    @property
    def feature_names(self) -> list[str]:
        return [c for c in self.frame.columns if c.startswith("feat_")]


def oracle_position(signal: np.ndarray, positions: Sequence[float]) -> np.ndarray:
    """Position per bar implied by the signal's sign, chosen from ``positions``."""
    pos = np.asarray(positions, dtype=np.float64)
    long_, short = pos.max(), pos.min()
    s = np.asarray(signal, dtype=np.float64)
    out = np.zeros_like(s)
    out = np.where(s > 0, max(long_, 0.0), out)
    out = np.where(s < 0, min(short, 0.0), out)
    return out


def oracle_action_index(signal: np.ndarray, positions: Sequence[float]) -> np.ndarray:
    """Index into ``positions`` of :func:`oracle_position` (for discrete-action envs)."""
    pos = list(float(p) for p in positions)
    target = oracle_position(signal, positions)
    lookup = {p: i for i, p in enumerate(pos)}
    return np.array([lookup[float(t)] for t in target], dtype=np.int64)


def planted_signal_market(
    n_bars: int = 2_000,
    *,
    snr: float = 0.3,
    volatility: float = 0.01,
    persistence: float = 0.0,
    n_noise: int = 2,
    positions: Sequence[float] = (-1.0, 0.0, 1.0),
    start: str = "2000-01-03",
    initial_price: float = 100.0,
    seed: int = 0,
) -> PlantedMarket:
    """Generate a planted-signal market; see the module docstring for the model."""
    check_number("n_bars", n_bars, 10, 10**7, integer=True, lo_open=False)
    check_number("snr", snr, 0.0, 100.0, lo_open=False)
    check_number("volatility", volatility, 0.0, 0.2, hi_open=True)
    check_number("persistence", persistence, 0.0, 1.0, lo_open=False, hi_open=True)
    check_number("n_noise", n_noise, 0, 1000, integer=True, lo_open=False)
    check_number("initial_price", initial_price, 0.0, 1e12)
    seed = check_seed(seed)
    if len(positions) < 2 or 0.0 not in [float(p) for p in positions]:
        raise MarketSpecError(
            f"markets.positions must list at least two target positions including 0, got {positions!r}."
        )
    rng = np.random.default_rng(seed)

    z = rng.standard_normal(n_bars)
    s = np.empty(n_bars)
    s[0] = z[0]
    k = np.sqrt(1.0 - persistence**2)
    if persistence == 0.0:
        s = z
    else:
        for t in range(1, n_bars):  # AR(1) recursion: sequential by nature, n_bars is small
            s[t] = persistence * s[t - 1] + k * z[t]
    eps = rng.standard_normal(n_bars)
    # intrabar log return of bar t (t >= 1) is driven by s[t-1]; bar 0 has none
    r = np.zeros(n_bars)
    r[1:] = volatility * (snr * s[:-1] + eps[1:])
    close = initial_price * np.exp(np.cumsum(r))
    open_ = np.empty(n_bars)
    open_[0] = initial_price
    open_[1:] = close[:-1]
    wick = np.abs(rng.standard_normal((2, n_bars))) * volatility * 0.5
    high = np.maximum(open_, close) * np.exp(wick[0])
    low = np.minimum(open_, close) * np.exp(-wick[1])
    volume = np.round(rng.lognormal(mean=13.0, sigma=0.3, size=n_bars))

    index = pd.bdate_range(start=start, periods=n_bars, name="date")
    cols: dict[str, np.ndarray] = {"feat_signal": s.astype(np.float32)}
    noise = rng.standard_normal((n_noise, n_bars)).astype(np.float32)
    for j in range(n_noise):
        cols[f"feat_noise_{j}"] = noise[j]
    cols["feat_ret_1"] = (r / volatility).astype(np.float32)
    cols.update(
        {"Open": open_, "High": high, "Low": low, "Close": close, "Volume": volume.astype(np.float64)}
    )
    frame = pd.DataFrame(cols, index=index)
    oracle = pd.Series(oracle_position(s, positions), index=index, name="oracle_position")
    return PlantedMarket(
        frame=frame,
        oracle_position=oracle,
        snr=float(snr),
        seed=int(seed),
        positions=tuple(float(p) for p in positions),
    )
