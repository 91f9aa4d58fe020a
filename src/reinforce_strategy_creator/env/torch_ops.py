"""The torch back end of the trading rules (:mod:`.ops`): arrays are torch tensors on any device,
(B,) lanes in the batched core and (B, N) in the portfolio core; every operation is element-wise."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from .ops import ActionTable, check_count


class TorchOps:
    """Arrays are torch tensors on `device` (element-wise on any shape)."""

    name = "torch"

    def __init__(self, device: str):
        self.device = torch.device(device)
        self.where, self.log, self.abs, self.sign = torch.where, torch.log, torch.abs, torch.sign
        self.trunc, self.maximum, self.logical_not = torch.trunc, torch.maximum, torch.logical_not
        self.zeros_like = torch.zeros_like
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

    def targets(self, actions, core: ActionTable):
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
