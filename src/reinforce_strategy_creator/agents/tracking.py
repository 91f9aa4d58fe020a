"""Run bookkeeping shared by the project's agents: episode returns, history rows, checkpoint
selection on ``eval_fn`` and the progress display, so each algorithm file stays about learning.

The history columns and ``TrainResult`` are the contract every backend returns (the SB3
backend builds the same rows); see docs/agents.md ("Calling convention").
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..compute.progress import PROGRESS_LOG_INTERVAL_S
from ..params.agents import AgentConfigError
from .checkpoint import CheckpointSelector
from .vec_env import Step

HISTORY_COLUMNS = [
    "step",
    "episode_return",
    "policy_loss",
    "value_loss",
    "q_loss",
    "entropy",
    "eval_score",
    "steps_per_s",
]


@dataclass
class TrainResult:
    """What every ``train_<algo>`` returns.

    ``policy`` carries the best-scoring weights when ``eval_fn`` was given (else the final
    weights); ``best_score`` is NaN when no evaluation ran; ``steps`` counts env
    transitions (all lanes) actually collected.
    """

    policy: nn.Module
    history: pd.DataFrame
    best_score: float
    steps: int


def history_row(step: int, episode_return: float) -> dict[str, float]:
    """A history row with every column NaN but ``step`` and ``episode_return``."""
    row = {c: math.nan for c in HISTORY_COLUMNS}
    row["step"] = step
    row["episode_return"] = episode_return
    return row


def history_frame(rows: list[dict[str, float]]) -> pd.DataFrame:
    history = pd.DataFrame(rows, columns=HISTORY_COLUMNS)
    history["step"] = history["step"].astype("int64")
    return history


class RunTracker:
    """Episode returns, history rows, evaluation/early stopping and the progress display.

    The progress goes to ``stream`` (default ``sys.stderr``): on a terminal a live tqdm bar;
    anywhere else (a log file, CI) one plain line at most every ``PROGRESS_LOG_INTERVAL_S``
    seconds plus a final line, so a long run does not flood its log.
    """

    def __init__(
        self,
        policy: nn.Module,
        num_envs: int,
        device: torch.device,
        *,
        total_steps: int,
        eval_fn: Callable[[nn.Module], float] | None,
        eval_every: int,
        patience: int | None,
        progress: bool,
        log_every: int,
        desc: str,
        stream: Any = None,
    ):
        if eval_every is None or int(eval_every) < 1:
            raise AgentConfigError(f"eval_every must be a positive int, got {eval_every!r}")
        self.selector = CheckpointSelector(patience)
        self.policy = policy
        self.eval_fn = eval_fn
        self.eval_every = int(eval_every)
        self.log_every = max(1, int(log_every))
        self.ep_ret = torch.zeros(num_envs, dtype=torch.float64, device=device)
        self.finished_sum = 0.0
        self.finished_n = 0
        self.rows: list[dict[str, float]] = []
        self.last_eval = math.nan
        self.steps = 0
        self._last_t = time.perf_counter()
        self._last_steps = 0
        self._pending: dict[str, list[float]] = {}
        self.progress = None
        if progress:
            self.progress = _open_progress(stream, int(total_steps), desc, self._last_t)

    @property
    def stop(self) -> bool:
        """``patience`` evaluations in a row did not improve: the algorithm should stop."""
        return self.selector.should_stop

    def on_step(self, step: Step) -> None:
        """Accumulate rewards of valid transitions; record returns of finished episodes."""
        r = torch.where(step.valid, step.reward.to(torch.float64), torch.zeros_like(self.ep_ret))
        self.ep_ret += r
        done = step.done & step.valid
        if bool(done.any()):
            self.finished_sum += float(self.ep_ret[done].sum())
            self.finished_n += int(done.sum())
            self.ep_ret[done] = 0.0
        self.steps += step.reward.numel()

    def add_metrics(self, **metrics: float) -> None:
        for k, v in metrics.items():
            self._pending.setdefault(k, []).append(float(v))

    def end_update(self, update: int, last: bool = False, handicap: float = 0.0) -> None:
        """Call after each update; evaluates / logs / updates the progress as due. ``handicap``
        is added to this evaluation's score when it competes for the kept checkpoint
        (``CheckpointSelector.offer``)."""
        evaluated = self.eval_fn is not None and (update % self.eval_every == 0 or last)
        score = self._evaluate(handicap) if evaluated else math.nan
        postfix = None
        if update % self.log_every == 0 or evaluated or last or self.stop:
            postfix = self._log_row(score)
        if self.progress is not None:
            self.progress.show(self.steps, postfix)

    def _evaluate(self, handicap: float = 0.0) -> float:
        """Score the policy in eval mode and offer its weights to the checkpoint selector."""
        was_training = self.policy.training
        self.policy.eval()
        with torch.no_grad():
            score = float(self.eval_fn(self.policy))
        self.policy.train(was_training)
        self.last_eval = score
        self.selector.offer(self.steps, score, self._snapshot, handicap)
        return score

    def _snapshot(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.policy.state_dict().items()}

    def _log_row(self, score: float) -> dict[str, str]:
        """Append a history row (means of the metrics since the last row); return the postfix
        the progress display shows."""
        now = time.perf_counter()
        sps = (self.steps - self._last_steps) / max(now - self._last_t, 1e-9)
        self._last_t, self._last_steps = now, self.steps
        ep_return = self.finished_sum / self.finished_n if self.finished_n else math.nan
        self.finished_sum, self.finished_n = 0.0, 0
        row = history_row(self.steps, ep_return)
        for k, vals in self._pending.items():
            row[k] = float(np.mean(vals))
        self._pending = {}
        row["eval_score"] = score
        row["steps_per_s"] = sps
        self.rows.append(row)
        return {"sps": f"{sps:,.0f}", "ret": f"{row['episode_return']:.3g}", "eval": f"{self.last_eval:.4g}"}

    def finish(self) -> TrainResult:
        if self.progress is not None:
            self.progress.close(self.steps)
            self.progress = None
        if self.selector.best_state is not None:
            self.policy.load_state_dict(self.selector.best_state)
        self.policy.eval()
        return TrainResult(
            policy=self.policy,
            history=history_frame(self.rows),
            best_score=self.selector.best_score,
            steps=self.steps,
        )


# --------------------------------------------------------------------------- progress display
def _open_progress(stream: Any, total: int, desc: str, t0: float) -> _LiveBar | _LogLines:
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    if callable(isatty) and isatty():
        return _LiveBar(stream, total, desc)
    return _LogLines(stream, total, desc, t0)


class _LiveBar:
    """A terminal: a live tqdm bar, redrawn in place."""

    def __init__(self, stream: Any, total: int, desc: str):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total, desc=desc, unit="step", dynamic_ncols=True, mininterval=0.2, file=stream)

    def show(self, steps: int, postfix: dict[str, str] | None) -> None:
        if postfix is not None:
            self.bar.set_postfix(postfix, refresh=False)
        self.bar.n = min(steps, self.bar.total)
        self.bar.refresh()

    def close(self, steps: int) -> None:
        self.bar.close()


class _LogLines:
    """A log file (CI, nohup, a pipe): every redraw would be a new line there, so one plain
    line at most every ``PROGRESS_LOG_INTERVAL_S`` seconds, and one at the end."""

    def __init__(self, stream: Any, total: int, desc: str, t0: float):
        self.stream, self.total, self.desc = stream, total, desc
        self.postfix = ""
        self.t0 = self.last = t0
        self.written_steps = -1

    def show(self, steps: int, postfix: dict[str, str] | None) -> None:
        if postfix is not None:
            self.postfix = ", ".join(f"{k}={v}" for k, v in postfix.items())
        if time.perf_counter() - self.last >= PROGRESS_LOG_INTERVAL_S:
            self._write(steps)

    def close(self, steps: int) -> None:
        if self.written_steps != steps:
            self._write(steps)  # the final line (unless the last one already was)

    def _write(self, steps: int) -> None:
        """One plain progress line (no carriage return)."""
        from tqdm import tqdm

        now = time.perf_counter()
        self.last, self.written_steps = now, steps
        line = tqdm.format_meter(
            min(steps, self.total),
            self.total,
            now - self.t0,
            prefix=self.desc,
            unit="step",
            ascii=True,
            postfix=self.postfix or None,
        )
        self.stream.write(line + "\n")
        self.stream.flush()
