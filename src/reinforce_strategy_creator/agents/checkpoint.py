"""Checkpoint selection on validation: keep the best-scoring weights, stop when patience runs out.

One rule for every backend (the project's agents through ``RunTracker``, the SB3 callback in
``sb3_backend``): a score improves when it is finite and strictly greater than the best so
far (ties, NaN and infinities never do); every evaluation that does not improve counts
towards ``patience`` and an improvement resets the count. A checkpoint offered with a
``handicap`` (the benchmark start, ``start_at_benchmark``) competes with its score plus the
handicap: a later checkpoint must beat it by that much to replace it. See docs/agents.md
("Calling convention") and docs/training.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from ..params.agents import AgentConfigError


class CheckpointSelector:
    """Offered one validation score per evaluation; keeps the best state, says when to stop."""

    def __init__(self, patience: int | None):
        if patience is not None and int(patience) < 1:
            raise AgentConfigError(f"patience must be a positive int or None, got {patience!r}")
        self.patience = None if patience is None else int(patience)
        self.best_state: Any = None
        self.best_step: int | None = None
        self.bad_evals = 0
        self.should_stop = False
        self._best = -math.inf  # the kept checkpoint's score plus its handicap
        self._best_score = math.nan

    def offer(self, step: int, score: float, state_fn: Callable[[], Any], handicap: float = 0.0) -> bool:
        """Record the evaluation at ``step``; ``state_fn()`` is called (to snapshot the
        weights) only when ``score + handicap`` improves on the best so far (the kept
        checkpoint's score plus its own handicap). Returns whether it did."""
        if math.isfinite(score) and score + handicap > self._best:
            self._best = score + handicap
            self._best_score = score
            self.best_state = state_fn()
            self.best_step = step
            self.bad_evals = 0
            return True
        self.bad_evals += 1
        if self.patience is not None and self.bad_evals >= self.patience:
            self.should_stop = True
        return False

    @property
    def best_score(self) -> float:
        """Score of the kept checkpoint; NaN when none was kept (no finite score offered)."""
        return self._best_score if self.best_state is not None else math.nan
