"""Array-ops back ends shared by the execution kernel, the batched core and the paper broker.

The trading rules (`execution.py`, `observation.py`) are written once against a tiny
array API (``where, log, abs, sign, trunc, maximum, clip, logical_not`` and the constants
``zero, one, nan``) and run on either back end:

* `TorchOps` — arrays are torch tensors on any device: (B,) lanes in the single-asset core,
  (B, N) arrays (N assets per account) in the portfolio core; every operation is element-wise.
* `ScalarOps` — plain Python floats/ints/bools: one account (the one-account gymnasium
  facade, the paper broker, the public scalar helpers). Python float arithmetic is IEEE
  float64 like torch's, and a scalar operation costs ~50 ns instead of ~3 µs for a torch
  call, which would otherwise dominate a one-element step.

Both do float64 money arithmetic, so one account run on either back end follows the same
trajectory (tests/env check it). The ``data``/``index``/``full``/``take``/``targets``
methods are the core's state plumbing (building lanes, gathering rows, mapping actions).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .config import EnvConfigError

if TYPE_CHECKING:  # pragma: no cover
    from .core import BatchedTradingCore


class TorchOps:
    """Arrays are torch tensors on `device` (element-wise on any shape)."""

    name = "torch"

    def __init__(self, device: str):
        self.device = torch.device(device)
        self.where, self.log, self.abs, self.sign = torch.where, torch.log, torch.abs, torch.sign
        self.trunc, self.maximum, self.logical_not = torch.trunc, torch.maximum, torch.logical_not
        self._dtypes = {"f64": torch.float64, "f32": torch.float32, "i64": torch.int64, "bool": torch.bool}
        # 0-d float64 constants: torch.where(c, 0.0, x) re-wraps the scalar on every call
        # (and torch.where(c, 1.0, 2.0) would be float32).
        self.zero, self.one, self.nan = self.const(0.0), self.const(1.0), self.const(math.nan)

    def data(self, x: np.ndarray, kind: str) -> torch.Tensor:
        return torch.as_tensor(np.ascontiguousarray(x), dtype=self._dtypes[kind], device=self.device)

    def const(self, x: float) -> torch.Tensor:
        return torch.tensor(x, dtype=torch.float64, device=self.device)

    def index(self, x) -> torch.Tensor:
        return torch.as_tensor(x, dtype=torch.int64).to(self.device)

    def full(self, n: int, value: Any, kind: str) -> torch.Tensor:
        return torch.full((n,), value, dtype=self._dtypes[kind], device=self.device)

    def take(self, arr: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        return arr.index_select(0, idx)

    @staticmethod
    def clip(x, lo, hi):
        return torch.clamp(x, lo, hi)

    def set_state(self, obs: torch.Tensor, start: int, cols: list) -> None:
        obs[:, start:] = torch.stack(cols, dim=1)

    def targets(self, actions, core: BatchedTradingCore):
        if core.config.continuous:
            a = torch.as_tensor(actions, dtype=torch.float64).to(self.device).reshape(-1)
            check_count(a.shape[0], core.num_envs)
            if bool(torch.isnan(a).any()):
                raise ValueError("a continuous action is NaN; the policy produced an invalid output")
            return torch.clamp(a, core.pos_lo, core.pos_hi)
        a = torch.as_tensor(actions).to(self.device, torch.int64).reshape(-1)
        check_count(a.shape[0], core.num_envs)
        return core.pos_table.index_select(0, a)  # raises on an out-of-range action

    def any(self, x) -> bool:
        return bool(x.any())


class ScalarOps:
    """One account as plain Python floats/ints/bools."""

    name = "scalar"
    zero, one, nan = 0.0, 1.0, math.nan

    def __init__(self, device: str = "cpu"):
        if device != "cpu":
            raise EnvConfigError("environment.device: the scalar (one-account) back end runs on the CPU only")
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

    def data(self, x: np.ndarray, kind: str):
        if kind == "f32":  # the windows table: keep numpy, a row gather is one copy
            return np.ascontiguousarray(x, dtype=np.float32)
        return np.asarray(x).tolist()  # list indexing returns Python scalars directly

    @staticmethod
    def const(x: float) -> float:
        return float(x)

    def index(self, x) -> int:
        arr = np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x).reshape(-1)
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

    def targets(self, actions, core: BatchedTradingCore) -> float:
        if type(actions) is int and not core.config.continuous:  # the facade's fast path
            if 0 <= actions < len(core.pos_table):
                return core.pos_table[actions]
            raise ValueError(f"action {actions!r} is not one of 0..{len(core.pos_table) - 1}")
        if isinstance(actions, torch.Tensor):
            actions = actions.detach().cpu().numpy()
        arr = np.asarray(actions).reshape(-1)
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


def check_count(got: int, expected: int) -> None:
    if got != expected:
        raise ValueError(f"expected {expected} actions (one per lane), got {got}")
