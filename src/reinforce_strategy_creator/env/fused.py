"""One batched trading env for several population members that trade the same market.

A population (``agents/population.py``) whose members share one market (seeds of one fold)
can step all members' lanes in ONE core call instead of one call per member: the core's ~60
vectorised operations cost about the same for K*B lanes as for B. What must not be shared is
the randomness: a :class:`MemberBlockTradingVectorEnv` gives member k the lane block
``k*B .. (k+1)*B - 1`` and its own episode-start generator, seeded and advanced exactly as a
``TradingVectorEnv(market, config, num_envs=B, seed=seed_k)`` reset with ``seed_k`` would be
(B starts at reset; B fresh draws whenever a lane of *that member's* block ends an episode).
Every other operation of the step is elementwise per lane, so a member's trajectory does not
depend on which other members share the env (tests/agents/test_population.py checks it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from .config import EnvConfig
from .core import BatchedTradingCore
from .gym_env import TradingVectorEnv
from .market import MarketArrays


class _MemberBlockCore(BatchedTradingCore):
    """``BatchedTradingCore`` over K blocks of B lanes, one start generator per block."""

    def __init__(self, market: MarketArrays, config: EnvConfig, lanes: int, seeds: Sequence[int], device):
        self.lanes, self.member_seeds = int(lanes), [int(s) for s in seeds]
        self.member_gens = [torch.Generator() for _ in self.member_seeds]
        self._mask = None
        super().__init__(
            market, config, self.lanes * len(self.member_seeds), 0, autoreset=True, device=device
        )

    def reset(self, starts=None, seed: int | None = None):
        """Every block restarts its own stream at its member's seed (``seed`` is ignored: the
        member seeds are fixed at construction)."""
        for g, s in zip(self.member_gens, self.member_seeds, strict=True):
            g.manual_seed(s)
        self._mask = None
        return super().reset(starts=starts)

    def _reset_lanes(self, mask) -> None:
        self._mask = mask
        try:
            super()._reset_lanes(mask)
        finally:
            self._mask = None

    def _draw_starts(self):
        if self.hi_start <= self.lo_start:
            return super()._draw_starts()
        k, b = len(self.member_gens), self.lanes
        need = [True] * k if self._mask is None else self._mask.reshape(k, b).any(1).tolist()
        parts = [
            torch.randint(self.lo_start, self.hi_start + 1, (b,), generator=g)
            if need[i]
            else torch.zeros(b, dtype=torch.long)  # masked out by the caller: no draw, no RNG use
            for i, g in enumerate(self.member_gens)
        ]
        return self.xp.index(torch.cat(parts))


class MemberBlockTradingVectorEnv(TradingVectorEnv):
    """``TradingVectorEnv`` whose K*B lanes are K members' blocks with their own start RNGs."""

    def __init__(
        self,
        market: MarketArrays,
        config: EnvConfig,
        lanes_per_member: int,
        seeds: Sequence[int],
        device: str | None = None,
    ):
        super().__init__(market, config, num_envs=lanes_per_member * len(seeds), seed=0, device=device)
        self.core = _MemberBlockCore(market, config, lanes_per_member, seeds, device=self.device)
        self.lanes_per_member = int(lanes_per_member)


def fuse_trading_envs(
    member_envs: Sequence[Any], seeds: Sequence[int], *, check_only: bool = False
) -> MemberBlockTradingVectorEnv | bool | None:
    """One :class:`MemberBlockTradingVectorEnv` for the members when they can share one
    (at least two plain eager ``TradingVectorEnv`` s over the same market object with equal
    config, device and lane count); ``None`` otherwise (the members' envs step one by one).
    ``check_only``: just say whether they can (True/False), building nothing."""
    if len(member_envs) < 2 or any(type(e) is not TradingVectorEnv for e in member_envs):
        return False if check_only else None
    first = member_envs[0]
    for e in member_envs:
        c = e.core
        if (
            c.market is not first.core.market
            or e.config != first.config
            or e.num_envs != first.num_envs
            or str(e.device) != str(first.device)
            or c._transition != c._transition_eager
        ):
            return False if check_only else None
    if check_only:
        return True
    return MemberBlockTradingVectorEnv(
        first.core.market, first.config, first.num_envs, seeds, str(first.device)
    )
