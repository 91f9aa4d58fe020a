"""The one checkpoint rule (``agents.checkpoint.CheckpointSelector``) that the project's agents
(through ``RunTracker``) and the SB3 backend's callback share."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reinforce_strategy_creator.agents import AgentConfigError, CheckpointSelector

# small integers make ties frequent; NaN and infinities must never be selected
SCORES = st.lists(
    st.one_of(st.integers(-3, 3).map(float), st.sampled_from([math.nan, math.inf, -math.inf])),
    max_size=30,
)
PATIENCE = st.one_of(st.none(), st.integers(1, 6))


def _improves(scores: list[float], j: int) -> bool:
    """Spec: finite and strictly above every finite score offered before it."""
    before = [s for s in scores[:j] if math.isfinite(s)]
    return math.isfinite(scores[j]) and scores[j] > max(before, default=-math.inf)


def _offer_until_stop(selector: CheckpointSelector, scores: list[float]):
    """Offer the scores in order (step = 10 * index) until the selector says stop."""
    returned, snapshots = [], []
    for i, s in enumerate(scores):
        returned.append(selector.offer(10 * i, s, lambda i=i: snapshots.append(i) or {"w": i}))
        if selector.should_stop:
            break
    return returned, snapshots


@given(SCORES, PATIENCE)
def test_best_state_is_the_first_max_finite_score_offered_before_the_stop(scores, patience):
    selector = CheckpointSelector(patience)
    returned, snapshots = _offer_until_stop(selector, scores)
    offered = scores[: len(returned)]
    finite = [s for s in offered if math.isfinite(s)]
    if not finite:
        assert selector.best_state is None and selector.best_step is None
        assert math.isnan(selector.best_score)
        return
    best = offered.index(max(finite))  # the first one on a tie: later equal scores never win
    assert selector.best_state == {"w": best}
    assert selector.best_step == 10 * best
    assert selector.best_score == offered[best]
    # offer() says whether it improved; the weights are snapshot exactly then, never otherwise
    assert returned == [_improves(offered, j) for j in range(len(offered))]
    assert snapshots == [j for j in range(len(offered)) if _improves(offered, j)]


@given(SCORES, PATIENCE)
def test_stop_comes_exactly_after_patience_evaluations_without_improvement(scores, patience):
    selector = CheckpointSelector(patience)
    returned, _ = _offer_until_stop(selector, scores)
    improved = [_improves(scores, j) for j in range(len(scores))]
    # the first evaluation that ends a run of `patience` non-improving ones, if any
    expected_stop = None
    if patience is not None:
        expected_stop = next(
            (i for i in range(patience - 1, len(scores)) if not any(improved[i + 1 - patience : i + 1])), None
        )
    if expected_stop is None:
        assert not selector.should_stop and len(returned) == len(scores)
    else:
        assert selector.should_stop and len(returned) == expected_stop + 1
    trailing = len(returned) - 1 - max((j for j, ok in enumerate(returned) if ok), default=-1)
    assert selector.bad_evals == trailing


def test_a_scripted_run():
    selector = CheckpointSelector(patience=3)
    states = iter(range(100))
    decisions = [
        selector.offer(i, s, lambda: next(states)) or selector.should_stop
        for i, s in enumerate([1.0, 5.0, 2.0, 5.0])
    ]
    assert decisions == [True, True, False, False]
    assert (selector.best_score, selector.best_state, selector.best_step) == (5.0, 1, 1)
    assert selector.offer(4, math.nan, lambda: next(states)) is False
    assert selector.should_stop and selector.bad_evals == 3


@pytest.mark.parametrize("patience", [0, -1])
def test_patience_must_be_positive(patience):
    with pytest.raises(AgentConfigError, match="patience must be a positive int or None"):
        CheckpointSelector(patience)


@pytest.mark.parametrize(
    "later, kept, best",
    [
        ([0.4, 0.49], 0, 0.0),  # within the handicap of the start: the start stays
        ([0.4, 0.51, 0.6], 3, 0.6),  # 0.51 beats 0.0 + 0.5 and replaces it; then the best of the rest
        ([-1.0, math.nan, math.inf], 0, 0.0),  # NaN and inf never replace it
    ],
)
def test_a_handicapped_start_is_replaced_only_by_a_score_beyond_its_handicap(later, kept, best):
    """The benchmark start (``start_at_benchmark``) competes with its score plus
    ``benchmark_margin``; ``best_score`` reports the kept checkpoint's own score."""
    selector = CheckpointSelector(patience=None)
    selector.offer(0, 0.0, lambda: {"w": 0}, handicap=0.5)
    for i, s in enumerate(later, start=1):
        selector.offer(10 * i, s, lambda i=i: {"w": i})
    assert selector.best_state == {"w": kept} and selector.best_score == best
