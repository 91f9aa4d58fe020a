"""PSR / DSR against hand-computed values; cross-seed summary, ranking, percentiles."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reinforce_strategy_creator.evaluation.metrics import EvaluationInputError
from reinforce_strategy_creator.evaluation.stats import (
    EULER_GAMMA,
    add_psr_dsr,
    deflated_sharpe_ratio,
    expected_max_sharpe,
    percentile_of,
    probabilistic_sharpe_ratio,
    rank_agents,
    seed_summary,
)

PHI = NormalDist().cdf
PHI_INV = NormalDist().inv_cdf


def test_psr_hand_normal_returns():
    # SR 0.1 per bar, benchmark 0, n = 101, normal: z = 0.1 * 10 / sqrt(1 + 0.5 * 0.01)
    z = 1.0 / math.sqrt(1.005)
    assert probabilistic_sharpe_ratio(0.1, 0.0, 101) == pytest.approx(PHI(z), rel=1e-9)
    assert PHI(z) == pytest.approx(0.8407, abs=1e-4)  # Phi(0.99751): Phi(1)=0.84134 - 0.242*0.00249


def test_psr_hand_fat_left_tail_lowers_confidence():
    # skew -1, kurtosis 6: 1 - (-1)(0.1) + (6 - 1)/4 * 0.01 = 1.1125
    z = 0.1 * 10 / math.sqrt(1.1125)
    got = probabilistic_sharpe_ratio(0.1, 0.0, 101, skew=-1.0, kurtosis=6.0)
    assert got == pytest.approx(PHI(z), rel=1e-9)
    assert got < probabilistic_sharpe_ratio(0.1, 0.0, 101)


def test_psr_edge_cases():
    assert probabilistic_sharpe_ratio(0.05, 0.05, 500) == pytest.approx(0.5)
    assert math.isnan(probabilistic_sharpe_ratio(float("nan"), 0.0, 50))
    with pytest.raises(EvaluationInputError, match="n_obs"):
        probabilistic_sharpe_ratio(0.1, 0.0, 1)


def test_expected_max_sharpe_hand():
    # N = 10 trials, variance 0.04 -> sqrt 0.2
    n, v = 10, 0.04
    expected = 0.2 * ((1 - EULER_GAMMA) * PHI_INV(1 - 1 / n) + EULER_GAMMA * PHI_INV(1 - 1 / (n * math.e)))
    assert expected_max_sharpe(n, v) == pytest.approx(expected, rel=1e-9)
    assert expected == pytest.approx(0.2 * (0.4227844 * 1.2815516 + 0.5772157 * 1.7898), abs=2e-4)
    assert expected_max_sharpe(1, 0.04) == 0.0
    assert expected_max_sharpe(10, 0.0) == 0.0


def test_dsr_hand_and_monotone_in_trials():
    trials = [0.02, 0.05, 0.08, 0.11]
    v = np.var(trials, ddof=1)
    sr0 = expected_max_sharpe(4, v)
    want = PHI((0.11 - sr0) * math.sqrt(251) / math.sqrt(1 + 0.5 * 0.11**2))
    assert deflated_sharpe_ratio(0.11, 252, trials) == pytest.approx(want, rel=1e-9)
    # more trials with the same spread -> a higher bar -> lower DSR
    many = np.tile(trials, 10)
    assert deflated_sharpe_ratio(0.11, 252, many) < deflated_sharpe_ratio(0.11, 252, trials)
    # DSR never exceeds PSR against zero when trials are spread (SR0 > 0)
    assert deflated_sharpe_ratio(0.11, 252, trials) < probabilistic_sharpe_ratio(0.11, 0.0, 252)


@settings(max_examples=50, deadline=None)
@given(st.floats(-0.3, 0.3), st.floats(-0.3, 0.3), st.integers(10, 5000), st.floats(-1, 1), st.floats(2, 8))
def test_psr_is_probability_and_monotone(sr, bench, n, skew, kurt):
    p = probabilistic_sharpe_ratio(sr, bench, n, skew, kurt)
    if not math.isnan(p):
        assert 0.0 <= p <= 1.0
        higher = probabilistic_sharpe_ratio(sr, bench - 0.01, n, skew, kurt)
        assert higher >= p - 1e-12


def _records():
    return pd.DataFrame(
        {
            "agent": ["ppo", "ppo", "ppo", "dqn", "dqn", "a2c"],
            "seed": [0, 1, 2, 0, 1, 0],
            "sharpe": [1.0, 2.0, 3.0, 2.5, 1.5, 2.0],
            "max_drawdown": [-0.1, -0.2, -0.3, -0.05, -0.15, -0.4],
        }
    )


def test_seed_summary_hand():
    s = seed_summary(_records(), ["sharpe", "max_drawdown"]).set_index("agent")
    assert s.loc["ppo", "sharpe_mean"] == pytest.approx(2.0)
    assert s.loc["ppo", "sharpe_std"] == pytest.approx(1.0)  # sample std of 1, 2, 3
    assert s.loc["ppo", "sharpe_min"] == 1.0 and s.loc["ppo", "sharpe_max"] == 3.0
    assert s.loc["dqn", "max_drawdown_mean"] == pytest.approx(-0.1)
    assert s.loc["ppo", "n_seeds"] == 3 and s.loc["a2c", "n_seeds"] == 1
    assert math.isnan(s.loc["a2c", "sharpe_std"])


def test_rank_agents_mean_then_std_then_name():
    ranked = rank_agents(seed_summary(_records(), ["sharpe"]))
    # all means are 2.0: dqn std 0.707 < ppo std 1.0; a2c has one seed (std NaN -> last)
    assert ranked["agent"].tolist() == ["dqn", "ppo", "a2c"]
    assert ranked["rank"].tolist() == [1, 2, 3]
    by_dd = rank_agents(seed_summary(_records(), ["max_drawdown"]), "max_drawdown")
    assert by_dd["agent"].iloc[0] == "dqn"  # least negative drawdown


def test_percentile_of_hand():
    d = [1, 2, 3, 4]
    assert percentile_of(2.5, d) == 50.0
    assert percentile_of(3, d) == pytest.approx(62.5)  # 2 below + half of 1 equal
    assert percentile_of(10, d) == 100.0 and percentile_of(0, d) == 0.0
    with pytest.raises(EvaluationInputError):
        percentile_of(1.0, [np.nan])


def test_add_psr_dsr_columns():
    """Expected values worked out independently with the standard library's NormalDist, from the
    formulas of Bailey & López de Prado (not with the module's own functions)."""
    from statistics import NormalDist

    phi, phi_inv = NormalDist().cdf, NormalDist().inv_cdf
    rec = pd.DataFrame(
        {
            "agent": ["a", "b"],
            "seed": [0, 0],
            "sharpe_per_bar": [0.1, 0.02],
            "n_bars": [252, 252],
            "skew": [0.0, 0.0],
            "kurtosis": [3.0, 3.0],
        }
    )
    out = add_psr_dsr(rec, benchmark_sharpe_per_bar=0.03)
    # PSR: z = (SR - SR*) sqrt(n - 1) / sqrt(1 - skew SR + (kurt - 1)/4 SR^2), normal returns
    z_a = (0.1 - 0.03) * math.sqrt(251) / math.sqrt(1 + 0.5 * 0.1**2)  # 1.1058...
    z_b = (0.02 - 0.03) * math.sqrt(251) / math.sqrt(1 + 0.5 * 0.02**2)  # -0.1584...
    assert out.loc[0, "psr"] == pytest.approx(phi(z_a), rel=1e-9) and out.loc[0, "psr"] == pytest.approx(
        0.8656, abs=1e-4
    )
    assert out.loc[1, "psr"] == pytest.approx(phi(z_b), rel=1e-9) and out.loc[1, "psr"] == pytest.approx(
        0.4371, abs=1e-4
    )
    # DSR: SR0 = sqrt(V) ((1 - g) Phi^-1(1 - 1/N) + g Phi^-1(1 - 1/(N e))), V = var of the trial Sharpes
    g, n_trials = 0.5772156649015329, 2
    var = ((0.1 - 0.06) ** 2 + (0.02 - 0.06) ** 2) / (n_trials - 1)  # 0.0032
    sr0 = math.sqrt(var) * ((1 - g) * phi_inv(1 - 1 / n_trials) + g * phi_inv(1 - 1 / (n_trials * math.e)))
    assert sr0 == pytest.approx(0.029406, abs=1e-5)
    dsr_a = phi((0.1 - sr0) * math.sqrt(251) / math.sqrt(1 + 0.5 * 0.1**2))
    assert out.loc[0, "dsr"] == pytest.approx(dsr_a, rel=1e-9)
    assert out.loc[0, "psr"] > 0.5 > out.loc[1, "psr"]
    with pytest.raises(EvaluationInputError, match="kurtosis"):
        add_psr_dsr(rec.drop(columns="kurtosis"), 0.0)
