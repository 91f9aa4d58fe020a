"""The planted rotation (N >= 2, docs/markets.md): the trailing leader's excess return is there
on planted markets and not on null ones, and the oracle decider is causal and is the market's
rule. Its drift, its strength 0 and its rule against equal weight are tested with the other
cross-sectional kinds (test_cross_section.py)."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from reinforce_strategy_creator.markets import (
    null_market,
    planted_rotation_market,
    rotation_oracle,
    trailing_leaders,
)

torch.set_num_threads(1)
SEEDS = (0, 1, 2)


def _rotation(source, seed, **kw):
    return planted_rotation_market(source, seed, **{"n_assets": 5, "n_bars": 2520, **kw})


def leader_excess_tstat(close: np.ndarray, lookback: int = 20) -> float:
    """The t-statistic of ``d_t = r[leader_t, t+1] - mean_i r[i, t+1]``: the trailing leader's
    next-bar simple return minus the cross-sectional mean. Under i.i.d. days ``d_t`` is a
    martingale difference, so the statistic is about N(0, 1); a planted edge makes it large."""
    c = np.asarray(close, dtype=np.float64)
    leaders = trailing_leaders(c, lookback)
    r = c[1:] / c[:-1] - 1.0  # r[k] = move from row k to k+1
    t = np.flatnonzero((leaders >= 0) & (np.arange(len(c)) + 1 < len(c)))
    d = r[t, leaders[t]] - r[t].mean(axis=1)
    return float(d.mean() / (d.std(ddof=1) / np.sqrt(len(d))))


def test_trailing_return_predicts_nothing_on_null_but_does_when_planted(universe20):
    """The leader's next-bar excess return: |t| < 3 on null markets, t > 3 on planted ones."""
    for seed in SEEDS:
        planted = _rotation(universe20, seed).close
        null = null_market(universe20, seed, n_bars=2520).close
        t_null, t_planted = leader_excess_tstat(null), leader_excess_tstat(planted)
        assert abs(t_null) < 3.0, f"seed {seed}: null market predictable, t = {t_null:.2f}"
        assert t_planted > 3.0, f"seed {seed}: planted edge not found, t = {t_planted:.2f}"


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 30), st.integers(0, 119))
def test_oracle_is_causal_and_holds_the_trailing_leader(seed, lookback, bar):
    rng = np.random.default_rng(seed)
    close = 50 * np.exp(np.cumsum(rng.normal(0, 0.02, (120, 4)), axis=0))
    close[: rng.integers(0, 40), 3] = np.nan  # a late listing
    obs = torch.zeros(2, 1)
    w = rotation_oracle(close, lookback)(obs, bar)
    later = close.copy()
    later[bar + 1 :] *= np.exp(rng.normal(0, 0.3, later[bar + 1 :].shape))
    np.testing.assert_array_equal(w, rotation_oracle(later, lookback)(obs, bar))
    assert w.shape == (2, 4)
    if bar < lookback or not np.isfinite(close[bar - lookback] / close[bar]).any():
        assert (w == 0).all()  # nothing to rank yet: cash
    else:
        ret = close[bar] / close[bar - lookback]
        assert (w.sum(axis=1) == 1).all() and w[0, np.nanargmax(ret)] == 1.0


def test_the_markets_rule_is_the_oracle(universe20):
    m = _rotation(universe20, 1, n_bars=400)
    oracle = rotation_oracle(m.close.to_numpy(), 20)
    obs = torch.zeros(1, 1)
    want = np.vstack([oracle(obs, bar) for bar in range(400)])
    np.testing.assert_array_equal(m.rule_position.to_numpy(), want)
