"""Device choice and seeding: what makes a training run reproducible.

Same seed + parameters + device => identical weights and history; docs/agents.md
("Reproducibility") says which RNG drives what.
"""

from __future__ import annotations

import random

import numpy as np
import torch

from ..params.agents import AgentConfigError


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; anything else is passed to torch."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise AgentConfigError(
            f"device={device!r} is not a torch device; use 'auto', 'cpu' or 'cuda'"
        ) from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise AgentConfigError(f"device={device!r} requested but CUDA is not available; use 'auto' or 'cpu'")
    return dev


def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy and torch; return a private torch generator for sampling.

    Network initialisation uses torch's global RNG (seeded here); action sampling,
    exploration and minibatch shuffles use the returned generator so that they do not
    depend on what else touched the global RNG.
    """
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise AgentConfigError(f"seed must be an int, got {seed!r}")
    random.seed(int(seed))
    np.random.seed(int(seed) % (2**32))
    torch.manual_seed(int(seed))
    gen = torch.Generator(device="cpu")
    gen.manual_seed(int(seed) + 1)
    return gen


class deterministic_torch:
    """Context manager: ``torch.use_deterministic_algorithms(True)`` on CPU, restored after."""

    def __init__(self, device: torch.device):
        self.enable = device.type == "cpu"

    def __enter__(self):
        self.prev = torch.are_deterministic_algorithms_enabled()
        if self.enable:
            torch.use_deterministic_algorithms(True)
        return self

    def __exit__(self, *exc):
        torch.use_deterministic_algorithms(self.prev)
        return False
