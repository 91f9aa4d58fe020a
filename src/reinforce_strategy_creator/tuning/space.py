"""The search space: ``tuning.search_space`` ranges as Optuna suggestions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..params.tuning import SearchRange

__all__ = ["corners", "suggest"]


def _plain(v: Any) -> Any:
    return list(v) if isinstance(v, tuple) else v


def suggest(trial: Any, space: Mapping[str, SearchRange]) -> dict[str, Any]:
    """One value per hyperparameter, drawn by the trial's sampler (in the space's order)."""
    out: dict[str, Any] = {}
    for name, r in space.items():
        if r.type == "categorical":
            # Optuna stores categorical choices as JSON-able scalars; lists (hidden_sizes) go by index
            choices = [_plain(c) for c in r.choices]
            if any(isinstance(c, list) for c in choices):
                i = trial.suggest_categorical(name, [str(c) for c in choices])
                out[name] = choices[[str(c) for c in choices].index(i)]
            else:
                out[name] = trial.suggest_categorical(name, choices)
        elif r.type == "int":
            out[name] = trial.suggest_int(name, int(r.low), int(r.high), step=int(r.step or 1), log=r.log)
        else:
            out[name] = trial.suggest_float(name, float(r.low), float(r.high), step=r.step, log=r.log)
    return out


def corners(space: Mapping[str, SearchRange]) -> list[dict[str, Any]]:
    """Every range at its low end, then at its high end (categoricals: first, then last choice):
    checked as training blocks before the study starts."""
    low = {n: (_plain(r.choices[0]) if r.type == "categorical" else _num(r, r.low)) for n, r in space.items()}
    high = {
        n: (_plain(r.choices[-1]) if r.type == "categorical" else _num(r, r.high)) for n, r in space.items()
    }
    return [low, high]


def _num(r: SearchRange, v: float) -> Any:
    return int(v) if r.type == "int" else float(v)
