"""Schedules: linear interpolation used for learning-rate annealing and epsilon decay."""

from __future__ import annotations


def linear_schedule(start: float, end: float, duration: float, t: float) -> float:
    """Value at time ``t`` going linearly from ``start`` (t=0) to ``end`` (t>=duration)."""
    if duration <= 0:
        return end
    frac = min(max(t / duration, 0.0), 1.0)
    return start + frac * (end - start)


def annealed_lr(base_lr: float, update: int, num_updates: int) -> float:
    """Linear decay to 0 over ``num_updates`` (update counts from 1), as in the PPO paper."""
    return base_lr * (1.0 - (update - 1.0) / max(num_updates, 1))
