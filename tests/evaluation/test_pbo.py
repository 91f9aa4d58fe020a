"""Probability of backtest overfitting (CSCV): hand-computed cases, noise, an edge, invariants."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from reinforce_strategy_creator.evaluation.metrics import EvaluationInputError
from reinforce_strategy_creator.evaluation.pbo import probability_of_backtest_overfitting as pbo

U = 1 / 64  # returns in multiples of 2^-6: every sum below is exact in floating point
LN3 = math.log(3)


def test_hand_computed_four_blocks():
    """S = 4 blocks of one bar, 3 candidates, metric = mean. In-sample halves in combination
    order (0,1) (0,2) (0,3) (1,2) (1,3) (2,3); block sums (units of U):

        blocks      A   B   C        in-sample → chosen    out-of-sample sums (A, B, C) → rank
        0           3   0  -2        (0,1): A 2, B 1, C -2 → A    (2,3): -1, -3, 1 → A 2nd of 3
        1          -1   1   0        (0,2): A 1, B -1, C 0 → A    (1,3): 0, -1, -1 → A 3rd
        2          -2  -1   2        (0,3): A 4, B -2, C -3 → A   (1,2): -3, 0, 2 → A 1st (worst)
        3           1  -2  -1        (1,2): A -3, B 0, C 2 → C    (0,3): 4, -2, -3 → C worst
                                     (1,3): A 0, B -1, C -1 → A   (0,2): 1, -1, 0 → A best
                                     (2,3): A -1, B -3, C 1 → C   (0,1): 2, 1, -2 → C worst

    ω = rank / 4 gives λ = ln(ω / (1 − ω)) = 0, ln 3, −ln 3, −ln 3, ln 3, −ln 3: four of six ≤ 0.
    The chosen out-of-sample means are −1/2, 0, −3/2, −3/2, 1/2, −1 (× U): four losses. Their
    in-sample means 1, 1/2, 2, 1, 0, 1/2 (× U) regress to slope −13/14 and intercept 3/28 · U.
    """
    returns = np.array([[3, 0, -2], [-1, 1, 0], [-2, -1, 2], [1, -2, -1]]) * U
    frame = pd.DataFrame(returns, columns=["A", "B", "C"])
    r = pbo(frame, n_blocks=4, metric="mean", return_logits=True)
    assert r["n_combinations"] == 6 and r["exact"] and r["block_bars"] == 1
    assert r["logits"] == pytest.approx([0.0, LN3, -LN3, -LN3, LN3, -LN3], abs=1e-12)
    assert r["pbo"] == pytest.approx(4 / 6)
    assert r["prob_oos_loss"] == pytest.approx(4 / 6)
    assert r["chosen_share"] == pytest.approx({"A": 4 / 6, "B": 0.0, "C": 2 / 6})
    assert r["degradation"]["slope"] == pytest.approx(-13 / 14)
    assert r["degradation"]["intercept"] == pytest.approx(3 / 28 * U)
    assert r["logit_summary"]["mean"] == pytest.approx(-LN3 / 6)
    assert r["is_metric_mean"] == pytest.approx(5 / 6 * U)
    assert r["oos_metric_mean"] == pytest.approx(-4 / 6 * U)


def test_hand_computed_ties_are_shared():
    """Ties in and out of sample (units of U, metric = mean):

        blocks  A  B  C     (0,1): A 4 → A;        OOS (2,3) A 1, B 4, C 1 → A avg rank 1.5
        0       2  1  0     (0,2): B 3 → B;        OOS (1,3) A 3, B 2, C 1 → B rank 2
        1       2  0  1     (0,3): A 3 = B 3;      OOS (1,2) all 2 → rank 2 each
        2       0  2  1     (1,2): A = B = C = 2;  OOS (0,3) A 3, B 3, C 0 → A, B 2.5; C 1
        3       1  2  0     (1,3): A 3 → A;        OOS (0,2) A 2, B 3, C 1 → A rank 2
                            (2,3): B 4 → B;        OOS (0,1) A 4, B 1, C 1 → B avg rank 1.5

    λ: ln 0.6, 0, 0, {ln(5/3), ln(5/3), ln(1/3)} shared 1/3 each, 0, ln 0.6. PBO counts
    1 + 1 + 1 + 1/3 + 1 + 1 of 6 = 8/9.
    """
    returns = np.array([[2, 1, 0], [2, 0, 1], [0, 2, 1], [1, 2, 0]]) * U
    r = pbo(returns, n_blocks=4, metric="mean", return_logits=True)
    shared = (2 * math.log(5 / 3) + math.log(1 / 3)) / 3
    assert r["logits"] == pytest.approx([math.log(0.6), 0, 0, shared, 0, math.log(0.6)], abs=1e-12)
    assert r["pbo"] == pytest.approx(8 / 9)
    assert r["chosen_share"] == pytest.approx({"0": 17 / 36, "1": 17 / 36, "2": 2 / 36})


def test_hand_computed_sharpe_two_bars_per_half():
    """The Sharpe ratio of two bars a, b is (a + b) / (√2 |a − b|), so it ranks like
    (a + b) / |a − b|, shown below; a zero-variance half with a positive mean scores +∞.
    A = [1, 3, 2, 2], B = [2, 2, 1, 4] (units of U), S = 4. In-sample (A, B) → chosen;
    out-of-sample (A, B) → the chosen's rank of 2:
        (0,1): (2, ∞) → B; (2,3): (∞, 5/3) → B 1st (worst), λ = ln(1/2)
        (0,2): (3, 3) → tie; (1,3): (5, 3) → A rank 2 (λ ln 2), B rank 1 (λ ln ½) → shared
        (0,3): (3, 3) → tie; (1,2): (5, 3) → same as above
        (1,2): (5, 3) → A; (0,3): (3, 3) → tie, rank 1.5 → λ = 0
        (1,3): (5, 3) → A; (0,2): (3, 3) → λ = 0
        (2,3): (∞, 5/3) → A; (0,1): (2, ∞) → A worst, λ = ln(1/2)
    PBO = (1 + ½ + ½ + 1 + 1 + 1) / 6 = 5/6.
    """
    returns = np.array([[1, 2], [3, 2], [2, 1], [2, 4]]) * U
    r = pbo(returns, n_blocks=4, metric="sharpe", return_logits=True)
    half = math.log(0.5)
    assert r["logits"] == pytest.approx([half, 0, 0, 0, 0, half], abs=1e-12)
    assert r["pbo"] == pytest.approx(5 / 6)
    # no finite (in-sample, out-of-sample) pair on (0,1) and (2,3): the line uses the other four
    assert r["degradation"]["n_points"] == 4


def test_pure_noise_gives_pbo_near_one_half():
    """With N candidates of i.i.d. noise the chosen one's out-of-sample rank is uniform, so PBO
    is 1/2 in expectation; one seed's PBO spreads widely (sd ≈ 0.2), the mean of 40 does not."""
    values = [
        pbo(np.random.default_rng(seed).normal(0, 0.01, (500, 10)), n_blocks=10)["pbo"] for seed in range(40)
    ]
    assert abs(np.mean(values) - 0.5) < 0.1
    assert 0.1 < np.std(values) < 0.35  # the spread of a real estimate, not a constant


def test_a_real_edge_gives_pbo_near_zero():
    values, shares = [], []
    for seed in range(10):
        returns = np.random.default_rng(100 + seed).normal(0, 0.01, (1000, 10))
        returns[:, 3] += 0.002  # Sharpe 0.2 per bar, about 3 a year
        r = pbo(returns, n_blocks=16)
        values.append(r["pbo"])
        shares.append(r["chosen_share"]["3"])
        assert r["degradation"]["n_points"] == r["n_combinations"] == 12870
    assert max(values) < 0.1 and np.mean(values) < 0.05
    assert min(shares) > 0.8


def test_constant_columns():
    rng = np.random.default_rng(3)
    noise = rng.normal(0, 0.01, (400, 5))
    flat = np.column_stack([noise, np.zeros(400)])  # a candidate that never trades scores 0
    r = pbo(flat, n_blocks=8)
    assert 0 <= r["pbo"] <= 1 and np.isfinite(r["logit_summary"]["mean"])
    riskless = np.column_stack([noise, np.full(400, 1e-4)])  # constant positive: +∞ Sharpe
    r = pbo(riskless, n_blocks=8)
    assert r["chosen_share"]["5"] == 1.0 and r["pbo"] == 0.0
    assert r["degradation"]["n_points"] == 0 and math.isnan(r["degradation"]["slope"])
    twins = np.column_stack([noise, noise[:, 0]])  # identical candidates share every choice
    r = pbo(twins, n_blocks=8)
    assert r["chosen_share"]["0"] == pytest.approx(r["chosen_share"]["5"])


def test_rows_beyond_equal_blocks_are_dropped_from_the_start():
    rng = np.random.default_rng(1)
    returns = rng.normal(0, 0.01, (203, 4))
    r = pbo(returns, n_blocks=10, return_logits=True)
    assert (r["n_bars"], r["n_bars_dropped"], r["block_bars"]) == (200, 3, 20)
    assert r["logits"] == pbo(returns[3:], n_blocks=10, return_logits=True)["logits"]


def test_sampled_combinations_beyond_max():
    returns = np.random.default_rng(2).normal(0, 0.01, (400, 6))
    r = pbo(returns, n_blocks=20, max_combinations=2000, seed=7)
    assert not r["exact"] and r["n_combinations"] == 2000 and 0 <= r["pbo"] <= 1
    assert r == pbo(returns, n_blocks=20, max_combinations=2000, seed=7)
    exact = pbo(returns, n_blocks=20, max_combinations=200_000)
    assert exact["exact"] and exact["n_combinations"] == math.comb(20, 10)
    assert abs(r["pbo"] - exact["pbo"]) < 0.05  # a 2,000-draw sample estimates the exact share


def test_fewer_than_two_candidates_is_nan_with_a_reason():
    r = pbo(np.zeros((100, 1)), n_blocks=4)
    assert math.isnan(r["pbo"]) and "at least 2 candidates" in r["reason"]
    assert r["n_combinations"] == 0


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_blocks": 5}, "n_blocks = 5 must be an even integer"),
        ({"n_blocks": 0}, "n_blocks = 0 must be an even integer"),
        ({"n_blocks": 2.0}, "n_blocks must be an even integer"),
        ({"n_blocks": 12}, "n_blocks = 12 is more than the 10 bars"),
        ({"metric": "calmar"}, "metric = 'calmar' is not one of"),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(EvaluationInputError, match=match):
        pbo(np.random.default_rng(0).normal(0, 0.01, (10, 3)), **kwargs)


def _frame(*cells: tuple[int, float]) -> pd.DataFrame:
    """50 bars of three candidates; ``cells`` set (row, value) of the second one, 'a2c'."""
    frame = pd.DataFrame(
        np.random.default_rng(0).normal(0, 0.01, (50, 3)),
        columns=["ppo", "a2c", "dqn"],
        index=pd.bdate_range("2020-01-01", periods=50),
    )
    for row, value in cells:
        frame.iloc[row, 1] = value
    return frame


def _ruined_from(row: int) -> list[tuple[int, float]]:
    """The cells of a candidate ruined on ``row``: -1 there, NaN on every bar after it."""
    return [(row, -1.0)] + [(r, np.nan) for r in range(row + 1, 50)]


@pytest.mark.parametrize(
    "cells, match",
    [
        ([(7, np.nan)], r"'a2c' has 1 missing or infinite returns, the first at row 7 \(2020-01-10"),
        ([(7, np.inf)], r"'a2c' has 1 missing or infinite returns, the first at row 7 \(2020-01-10"),
        ([(7, -np.inf)], r"'a2c' has 1 missing or infinite"),
        # a gap before the bar of ruin is a gap, not part of the ruin
        ([(7, np.nan), *_ruined_from(20)], r"'a2c' has 1 missing or infinite returns, the first at row 7 "),
        ([(7, -1.5)], r"'a2c' loses more than 100 % on row 7 \(2020-01-10.*return -1.5"),
        # after the bar of ruin the account no longer trades: only NaN may follow
        ([*_ruined_from(20), (30, 0.01)], r"'a2c' is ruined on row 20 .*return 0.01 on row 30"),
        ([*_ruined_from(20), (21, -1.0)], r"'a2c' is ruined on row 20 .*return -1.0 on row 21"),
        ([*_ruined_from(20), (49, 0.0)], r"'a2c' is ruined on row 20 .*return 0.0 on row 49"),
    ],
)
def test_bad_returns_name_candidate_and_row(cells, match):
    with pytest.raises(EvaluationInputError, match=match):
        pbo(_frame(*cells), n_blocks=4)


def test_malformed_tables_are_refused():
    with pytest.raises(EvaluationInputError, match="duplicate candidate columns"):
        pbo(_frame().set_axis(["a", "a", "b"], axis=1), n_blocks=4)
    with pytest.raises(EvaluationInputError, match="2-D"):
        pbo(np.zeros(10), n_blocks=2)


def test_hand_computed_ruined_candidate():
    """C is ruined on the last bar (S = 4 blocks of one bar, metric = mean, units of U): a half
    holding block 3 scores −∞ for C. Before its ruin C would win (0,3) in sample (3 > −3, −4):

        blocks  A   B   C        in-sample → chosen           out-of-sample → chosen's rank of 3
        0      -2  -2   3        (0,1): A -4, B -2, C 2 → C   (2,3): A 2, B -4, C −∞ → C 1st (worst)
        1      -2   0  -1        (0,2): A 1, B -4, C 4 → C    (1,3): A -3, B -2, C −∞ → C 1st
        2       3  -2   1        (0,3): A -3, B -4, C −∞ → A  (1,2): A 1, B -2, C 0 → A 3rd (best)
        3      -1  -2  ruin      (1,2): A 1, B -2, C 0 → A    (0,3): A -3, B -4, C −∞ → A 3rd
                                 (1,3): A -3, B -2, C −∞ → B  (0,2): A 1, B -4, C 4 → B 1st
                                 (2,3): A 2, B -4, C −∞ → A   (0,1): A -4, B -2, C 2 → A 1st

    λ = −ln 3, −ln 3, ln 3, ln 3, −ln 3, −ln 3: PBO 4/6. The chosen out-of-sample means are
    −∞, −∞, 1/2, −3/2, −2, −2 (× U): all but one are losses; the mean leaves the −∞ out.
    """
    returns = np.array([[-2, -2, 3], [-2, 0, -1], [3, -2, 1], [-1, -2, 0]]) * U
    returns[3, 2] = -1.0  # C loses all of its capital on the last bar
    r = pbo(pd.DataFrame(returns, columns=["A", "B", "C"]), n_blocks=4, metric="mean", return_logits=True)
    assert r["logits"] == pytest.approx([-LN3, -LN3, LN3, LN3, -LN3, -LN3], abs=1e-12)
    assert r["pbo"] == pytest.approx(4 / 6) and r["n_ruined"] == 1
    assert r["chosen_share"] == pytest.approx({"A": 3 / 6, "B": 1 / 6, "C": 2 / 6})
    assert r["prob_oos_loss"] == pytest.approx(5 / 6)
    assert r["oos_metric_mean"] == pytest.approx((1 / 2 - 3 / 2 - 2 - 2) / 4 * U)
    assert r["degradation"]["n_points"] == 4  # the two −∞ out-of-sample halves are left out


@pytest.mark.parametrize("metric", ["sharpe", "sortino", "mean", "total_return"])
@pytest.mark.parametrize("ruin_row", [0, 2, 3])  # T = 203, S = 10: rows 0-2 are dropped, 3 is the first used
def test_a_candidate_ruined_before_its_first_block_ends_is_never_chosen_and_always_last(metric, ruin_row):
    """Ruined in the dropped rows or on the first used bar: −∞ on every half. It is never chosen
    and always ranks last out of sample, so every other candidate's rank is one higher and the
    choice, PBO and shares are those of the others alone."""
    rng = np.random.default_rng(1)
    others = rng.normal(0, 0.01, (203, 4))
    ruined = np.full((203, 1), np.nan)
    ruined[:ruin_row] = 0.01
    ruined[ruin_row] = -1.0
    r = pbo(np.hstack([others, ruined]), n_blocks=10, metric=metric, return_logits=True)
    alone = pbo(others, n_blocks=10, metric=metric, return_logits=True)
    assert r["n_ruined"] == 1 and r["chosen_share"]["4"] == 0.0
    assert [r["chosen_share"][str(j)] for j in range(4)] == pytest.approx(
        list(alone["chosen_share"].values())
    )
    # the chosen one's rank among the five is its rank among the four plus one: ω = (k + 1) / 6
    rank = 5 / (1 + np.exp(-np.asarray(alone["logits"])))  # k from λ = ln(k / (5 − k))
    assert r["logits"] == pytest.approx(np.log((rank + 1) / (5 - rank)).tolist(), abs=1e-9)
    assert r["pbo"] == pytest.approx(np.mean(rank + 1 <= 3))


def test_every_candidate_ruined_before_the_first_block_ties_everywhere():
    returns = np.full((20, 3), np.nan)
    returns[0] = -1.0
    r = pbo(returns, n_blocks=4, return_logits=True)
    assert r["logits"] == pytest.approx([0.0] * 6) and r["pbo"] == 1.0
    assert r["chosen_share"] == pytest.approx({"0": 1 / 3, "1": 1 / 3, "2": 1 / 3})


def _with_ruin(returns: np.ndarray, ruin: tuple[int, float] | None) -> np.ndarray:
    """``returns`` with one column ruined (return -1 on a row, NaN after it), or as they are."""
    if ruin is None:
        return returns
    out = returns.copy()
    col, at = ruin[0] % out.shape[1], int(ruin[1] * (out.shape[0] - 1))
    out[at, col], out[at + 1 :, col] = -1.0, np.nan
    return out


returns_st = st.tuples(
    st.integers(2, 6).flatmap(
        lambda n: arrays(
            np.float64,
            st.tuples(st.integers(8, 60), st.just(n)),
            elements=st.one_of(st.floats(-0.2, 0.2), st.sampled_from([0.0, 0.01, -0.01])),
        )
    ),
    st.one_of(st.none(), st.tuples(st.integers(0, 5), st.floats(0, 1))),
).map(lambda pair: _with_ruin(*pair))


@settings(max_examples=80, deadline=None)
@given(
    returns=returns_st,
    half=st.integers(1, 4),
    metric=st.sampled_from(["sharpe", "sortino", "mean", "total_return"]),
    perm_seed=st.integers(0, 2**32 - 1),
)
def test_properties(returns, half, metric, perm_seed):
    n_blocks = 2 * half
    if returns.shape[0] // n_blocks * half < 2:
        n_blocks = 2
    r = pbo(returns, n_blocks=n_blocks, metric=metric, return_logits=True)
    assert 0.0 <= r["pbo"] <= 1.0 and 0.0 <= r["prob_oos_loss"] <= 1.0
    assert r["n_combinations"] == math.comb(n_blocks, n_blocks // 2) == len(r["logits"])
    assert sum(r["chosen_share"].values()) == pytest.approx(1.0)
    n = returns.shape[1]
    bound = math.log(n)  # ω ∈ [1/(N+1), N/(N+1)]
    assert all(-bound - 1e-9 <= lam <= bound + 1e-9 for lam in r["logits"])
    # the column order does not matter
    perm = np.random.default_rng(perm_seed).permutation(n)
    p = pbo(returns[:, perm], n_blocks=n_blocks, metric=metric, return_logits=True)
    assert p["pbo"] == pytest.approx(r["pbo"], abs=1e-12)
    assert p["logits"] == pytest.approx(r["logits"], abs=1e-9)
    assert p["prob_oos_loss"] == pytest.approx(r["prob_oos_loss"], abs=1e-12)
    assert [p["chosen_share"][str(i)] for i in range(n)] == pytest.approx(
        [r["chosen_share"][str(j)] for j in perm]
    )
