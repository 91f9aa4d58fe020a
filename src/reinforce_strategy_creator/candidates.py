"""How a candidate policy is named: an agent's seed, or its seed ensemble (docs/agents.md,
"Seed ensembles"). Kept free of torch so that the registry and the CLI can use it cheaply."""

from __future__ import annotations

#: The ``seed`` that names an agent's seed ensemble (seeds themselves are >= 0).
ENSEMBLE_SEED = -1


def seed_label(seed: int) -> str:
    """How reports name a candidate: ``seed 3`` or ``ensemble``."""
    return "ensemble" if int(seed) == ENSEMBLE_SEED else f"seed {int(seed)}"
