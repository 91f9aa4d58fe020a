"""Array-ops back ends shared by the execution kernel, the batched core and the paper broker.

The trading rules (`execution.py`, `observation.py`) are written once against a tiny
array API (``where, log, abs, sign, trunc, maximum, clip, logical_not, zeros_like`` and the constants
``zero, one, nan``) and run on either back end:

* `TorchOps` (:mod:`.torch_ops`) — arrays are torch tensors on any device: (B,) lanes in the
  single-asset core, (B, N) arrays (N assets per account) in the portfolio core; every operation
  is element-wise.
* `ScalarOps` (here) — plain Python floats/ints/bools: one account (the one-account gymnasium
  facade, the paper broker, the public scalar helpers). Python float arithmetic is IEEE
  float64 like torch's, and a scalar operation costs ~50 ns instead of ~3 µs for a torch
  call, which would otherwise dominate a one-element step. This module does not import torch,
  so that what only needs the scalar rules (the paper account's reconciliation, the CLI) starts
  without it.

Both do float64 money arithmetic, so one account run on either back end follows the same
trajectory (tests/env check it). The ``data``/``index``/``full``/``take``/``targets``
methods are the core's state plumbing (building lanes, gathering rows, mapping actions).
"""

from __future__ import annotations

import math
from typing import Any, Protocol

import numpy as np

from ..params.base import ParameterError


class ActionTable(Protocol):
    """What a back end's ``targets`` reads of the core whose actions it maps to target positions
    (``BatchedTradingCore``), named here so that the back ends do not import the core."""

    config: Any  # ``.continuous``: actions are positions in [pos_lo, pos_hi], not table indexes
    num_envs: int
    pos_table: Any
    pos_lo: Any
    pos_hi: Any


class ScalarOps:
    """One account as plain Python floats/ints/bools."""

    name = "scalar"
    zero, one, nan = 0.0, 1.0, math.nan

    def __init__(self, device: str = "cpu"):
        if device != "cpu":
            raise ParameterError("environment.device: the scalar (one-account) back end runs on the CPU only")
        self.device = "cpu"
        self.log, self.abs, self.maximum = math.log, abs, max

    @staticmethod
    def where(c, a, b):
        return a if c else b

    @staticmethod
    def sign(x):
        return (x > 0) - (x < 0)  # an int; int * float is exact, as float(sign) would be

    @staticmethod
    def trunc(x):
        return float(math.trunc(x))

    @staticmethod
    def logical_not(x):
        return not x

    @staticmethod
    def zeros_like(x):
        return 0.0

    def data(self, x: np.ndarray, kind: str):
        if kind == "f32":  # the windows table: keep numpy, a row gather is one copy
            return np.ascontiguousarray(x, dtype=np.float32)
        return np.asarray(x).tolist()  # list indexing returns Python scalars directly

    @staticmethod
    def const(x: float) -> float:
        return float(x)

    def index(self, x) -> int:
        arr = host_array(x).reshape(-1)
        check_count(arr.shape[0], 1)
        return int(arr[0])

    def full(self, n: int, value: Any, kind: str):
        return {"f64": float, "i64": int, "bool": bool}[kind](value)

    def take(self, arr, idx):
        return arr[idx].copy() if isinstance(arr, np.ndarray) else arr[idx]

    @staticmethod
    def clip(x, lo, hi):
        if lo is not None and x < lo:
            x = lo
        if hi is not None and x > hi:
            x = hi
        return x

    def set_state(self, obs: np.ndarray, start: int, cols: list) -> None:
        obs[start:] = cols

    def targets(self, actions, core: ActionTable) -> float:
        if type(actions) is int and not core.config.continuous:  # the facade's fast path
            if 0 <= actions < len(core.pos_table):
                return core.pos_table[actions]
            raise ValueError(f"action {actions!r} is not one of 0..{len(core.pos_table) - 1}")
        arr = host_array(actions).reshape(-1)
        check_count(arr.shape[0], 1)
        if core.config.continuous:
            a = float(arr[0])
            if math.isnan(a):
                raise ValueError("a continuous action is NaN; the policy produced an invalid output")
            return self.clip(a, core.pos_lo, core.pos_hi)
        a = int(arr[0])
        if a != arr[0] or not 0 <= a < len(core.pos_table):
            raise ValueError(f"action {arr[0]!r} is not one of 0..{len(core.pos_table) - 1}")
        return core.pos_table[a]

    @staticmethod
    def any(x) -> bool:
        return bool(x)


SCALAR = ScalarOps()
"""The scalar back end (stateless): one account as Python floats."""


def host_array(x: Any) -> np.ndarray:
    """``x`` as a numpy array; a torch tensor (on any device) is detached and copied to the host
    first (recognised by its ``detach`` method, so that this module does not import torch)."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def check_count(got: int, expected: int) -> None:
    if got != expected:
        raise ValueError(f"expected {expected} actions (one per lane), got {got}")
