"""The AR(1) planted-signal market of the agents' learning tests (tests/agents): its layout, that
the signal predicts the next bar and nothing else does, seeds, the oracle, bad parameters."""

from __future__ import annotations

import numpy as np
import pytest

from reinforce_strategy_creator.env import MarketArrays
from reinforce_strategy_creator.markets import (
    MarketSpecError,
    oracle_action_index,
    oracle_position,
    planted_signal_market,
)


def test_generator_layout_and_determinism():
    a = planted_signal_market(300, snr=0.3, seed=5, n_noise=3)
    b = planted_signal_market(300, snr=0.3, seed=5, n_noise=3)
    c = planted_signal_market(300, snr=0.3, seed=6, n_noise=3)
    assert a.frame.equals(b.frame) and not a.frame.equals(c.frame)
    f = a.frame
    assert f.index.name == "date" and f.index.is_monotonic_increasing and f.index.is_unique
    assert a.feature_names == ["feat_signal", "feat_noise_0", "feat_noise_1", "feat_noise_2", "feat_ret_1"]
    assert list(f.columns[-5:]) == ["Open", "High", "Low", "Close", "Volume"]
    assert all(f[c].dtype == np.float32 for c in a.feature_names)
    assert (f["High"] >= f[["Open", "Close"]].max(axis=1)).all()
    assert (f["Low"] <= f[["Open", "Close"]].min(axis=1)).all()
    np.testing.assert_allclose(f["Open"].to_numpy()[1:], f["Close"].to_numpy()[:-1])
    MarketArrays.from_frame(f)  # accepted by the env as a model-input table


def test_signal_predicts_next_bar_and_noise_does_not():
    m = planted_signal_market(20_000, snr=0.3, seed=1, n_noise=2)
    f = m.frame
    nxt = np.log(f["Close"] / f["Open"]).to_numpy()[1:]
    corr = lambda col: np.corrcoef(f[col].to_numpy()[:-1], nxt)[0, 1]  # noqa: E731
    assert corr("feat_signal") == pytest.approx(0.3 / np.sqrt(1 + 0.3**2), abs=0.02)
    assert abs(corr("feat_noise_0")) < 0.03 and abs(corr("feat_ret_1")) < 0.03
    # the feature at bar t is not informative about bar t's own return (causal, no leak)
    same = np.log(f["Close"] / f["Open"]).to_numpy()
    assert abs(np.corrcoef(f["feat_signal"].to_numpy()[1:], same[1:])[0, 1]) < 0.03


def test_oracle_positions_follow_signal_sign():
    s = np.array([-2.0, 0.0, 0.5])
    assert oracle_position(s, (-1, 0, 1)).tolist() == [-1.0, 0.0, 1.0]
    assert oracle_position(s, (0, 0.5, 1)).tolist() == [0.0, 0.0, 1.0]
    assert oracle_action_index(s, (0.0, 1.0, -1.0)).tolist() == [2, 0, 1]
    m = planted_signal_market(50, seed=0, positions=(0.0, 1.0))
    assert set(m.oracle_position.unique()) <= {0.0, 1.0}


@pytest.mark.parametrize(
    "kw,name",
    [
        ({"snr": -1}, r"markets\.snr "),
        ({"n_bars": 3}, r"markets\.n_bars "),
        ({"positions": (1.0, 2.0)}, r"markets\.positions "),
    ],
)
def test_generator_rejects_bad_parameters(kw, name):
    with pytest.raises(MarketSpecError, match=name):
        planted_signal_market(**{"n_bars": 100, **kw})
