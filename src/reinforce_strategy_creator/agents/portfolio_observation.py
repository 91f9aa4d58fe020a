"""The layout of a portfolio observation (`PortfolioCore.observe`), parsed in one place.

``obs`` (B, N*W*F + 2N + 1): per asset (ticker order) its W x F feature window (oldest row first),
then the N current weights (at the decision bar's close), the cash weight, and N tradable flags.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["ObsLayout", "ObsParts"]


@dataclass(frozen=True)
class ObsParts:
    windows: torch.Tensor  # (B, N, W, F)
    weights: torch.Tensor  # (B, N)
    cash: torch.Tensor  # (B,)
    tradable: torch.Tensor  # (B, N) bool


@dataclass(frozen=True)
class ObsLayout:
    n_assets: int
    window: int
    n_features: int

    @property
    def obs_dim(self) -> int:
        return self.n_assets * self.window * self.n_features + 2 * self.n_assets + 1

    def split(self, obs: torch.Tensor) -> ObsParts:
        N, W, F = self.n_assets, self.window, self.n_features
        if obs.shape[-1] != self.obs_dim:
            raise ValueError(
                f"observation has {obs.shape[-1]} columns; a portfolio of {N} assets with window {W} "
                f"and {F} features has {self.obs_dim}"
            )
        k = N * W * F
        lead = obs.shape[:-1]
        return ObsParts(
            windows=obs[..., :k].reshape(*lead, N, W, F),
            weights=obs[..., k : k + N],
            cash=obs[..., k + N],
            tradable=obs[..., k + N + 1 : k + 2 * N + 1] > 0.5,
        )
