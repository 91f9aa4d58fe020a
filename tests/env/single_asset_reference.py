"""Test-only reference: the single-asset trading core as it was before one engine served every N
(``ReferenceSingleAssetCore``), frozen so that the engine can be checked against it
(tests/env/test_kernel_parity.py). Not library code: do not import it from src/.

Self-contained on purpose: it imports nothing of ``reinforce_strategy_creator``, so a change to
the execution kernel, the observation or the core cannot change it. It is the torch path of the
old ``BatchedTradingCore`` with the kernel functions it called inlined (closed-form post-cost
sizing, fill and costs, cash after the fill, mark with short borrow, entry price and bars held,
the three rewards (:func:`reference_reward`), the observation's state block), lanes frozen once
done (``autoreset=False``, the replay's mode). ``granularity="whole"`` applies the kernel's
whole-share rule (the resulting holding truncated toward zero), which the paper broker used with
this same sizing.

``config`` is read by attribute (``window``, ``positions``, ``fill_price``, ``continuous``,
``initial_capital``, ``commission_bps``, ``slippage_bps``, ``borrow_bps_per_bar``, ``reward``,
``dsr_eta``, ``drawdown_lambda``, ``obs_position``, ``obs_unrealised``, ``obs_bars_held``);
``market`` by ``features`` (T, F), ``open`` and ``close`` (T,).
"""

from __future__ import annotations

import math

import numpy as np
import torch

_EQUITY_FLOOR = 1e-12
_BUY_HAIRCUT_EPS = 1e-12
_BARS_HELD_SCALE = 252
F64 = torch.float64


def reference_reward(config, cap, equity, prev, peak, dd, dsr_a, dsr_b):
    """``(reward, peak, dd, dsr_a, dsr_b)`` of one bar (``config.reward``, ``dsr_eta``,
    ``drawdown_lambda``) from the equity ``prev -> equity`` of each account: the reward of the
    old core, usable on any account's equity path (the rewards do not depend on N)."""
    logr = torch.log(torch.clamp(equity, cap * _EQUITY_FLOOR, None) / prev)
    if config.reward == "log_return":
        return logr, peak, dd, dsr_a, dsr_b
    if config.reward == "differential_sharpe":
        eta = config.dsr_eta
        d_a, d_b = logr - dsr_a, logr * logr - dsr_b
        var = dsr_b - dsr_a * dsr_a
        ok = var > 1e-18
        dsr = (dsr_b * d_a - 0.5 * dsr_a * d_b) / torch.where(ok, var, 1.0) ** 1.5
        return torch.where(ok, dsr, 0.0), peak, dd, dsr_a + eta * d_a, dsr_b + eta * d_b
    peak = torch.maximum(peak, equity)
    dd_new = 1.0 - equity / peak
    return logr - config.drawdown_lambda * torch.clamp(dd_new - dd, 0.0, None), peak, dd_new, dsr_a, dsr_b


class ReferenceSingleAssetCore:
    """B accounts on one instrument, replayed from fixed start bars (no auto-reset)."""

    def __init__(self, market, config, num_envs: int = 1, granularity: str = "fractional") -> None:
        self.config, self.num_envs, self.granularity = config, num_envs, granularity
        W = int(config.window)
        feats = np.asarray(market.features, dtype=np.float32)
        T, F = feats.shape
        self.n_state = int(config.obs_position) + int(config.obs_unrealised) + int(config.obs_bars_held)
        table = np.zeros((T, W * F + self.n_state), dtype=np.float32)
        for t in range(W - 1, T):
            table[t, : W * F] = feats[t - W + 1 : t + 1].reshape(-1)
        self.windows = torch.as_tensor(table)
        self.feature_dim = W * F
        self.open = torch.as_tensor(np.asarray(market.open, dtype=np.float64))
        self.close = torch.as_tensor(np.asarray(market.close, dtype=np.float64))
        self.fill_ref = self.close if config.fill_price == "next_close" else self.open
        self.pos_table = torch.as_tensor(np.asarray(config.positions, dtype=np.float64))
        self.pos_lo, self.pos_hi = min(config.positions), max(config.positions)
        self.lo_start, self.last_bar = W - 1, T - 1
        self.cap = float(config.initial_capital)
        self.comm = config.commission_bps / 1e4
        self.slip = config.slippage_bps / 1e4
        self.borrow_rate = config.borrow_bps_per_bar / 1e4
        k_buy = (1.0 + self.slip) * (1.0 + self.comm) * (1.0 + _BUY_HAIRCUT_EPS)
        k_sell = (1.0 - self.slip) * (1.0 - self.comm)
        self.k_mid, self.k_half = 0.5 * (k_buy + k_sell), 0.5 * (k_buy - k_sell)

    def reset(self, starts) -> torch.Tensor:
        B = self.num_envs
        self.t = torch.as_tensor(np.broadcast_to(np.asarray(starts, dtype=np.int64), (B,)).copy())
        full = lambda v: torch.full((B,), v, dtype=F64)  # noqa: E731
        self.steps = torch.zeros(B, dtype=torch.int64)
        self.cash, self.shares, self.equity = full(self.cap), full(0.0), full(self.cap)
        self.held, self.entry, self.bars = full(0.0), full(1.0), full(0.0)
        self.peak, self.dd, self.dsr_a, self.dsr_b = full(self.cap), full(0.0), full(0.0), full(0.0)
        self.last_close = self.close.index_select(0, self.t)
        self.active = torch.ones(B, dtype=torch.bool)
        return self.observe()

    def observe(self) -> torch.Tensor:
        obs = self.windows.index_select(0, self.t)
        cols = []
        if self.config.obs_position:
            cols.append(self.held)
        if self.config.obs_unrealised:
            cols.append(torch.sign(self.shares) * (self.last_close / self.entry - 1.0))
        if self.config.obs_bars_held:
            cols.append(torch.clamp(self.bars, 0.0, float(_BARS_HELD_SCALE)) / _BARS_HELD_SCALE)
        if cols:
            obs[:, self.feature_dim :] = torch.stack(cols, dim=1)
        return obs

    def targets(self, actions) -> torch.Tensor:
        if self.config.continuous:
            a = torch.as_tensor(actions, dtype=F64).reshape(-1)
            return torch.clamp(a, self.pos_lo, self.pos_hi)
        return self.pos_table.index_select(0, torch.as_tensor(actions, dtype=torch.int64).reshape(-1))

    def step(self, actions):
        """Advance every active lane one bar; (obs, reward, terminated, truncated, info)."""
        target = self.targets(actions)
        t, cash, sh, prev = self.t, self.cash, self.shares, self.equity
        t1 = torch.clamp(t + 1, 0, self.last_bar)
        ref = self.fill_ref.index_select(0, t1)
        c = self.close.index_select(0, t1)
        trade = target != self.held

        # closed-form post-cost sizing at the reference price
        x = target * cash / ref - (1.0 - target) * sh
        side = torch.sign(x)
        k = self.k_mid + self.k_half * side
        delta = x / (1.0 - target + target * k)
        delta = torch.where(trade, delta, torch.tensor(0.0, dtype=F64))
        if self.granularity == "whole":
            delta = torch.trunc(sh + delta) - sh
        fill = ref * (1.0 + self.slip * side)
        commission = delta.abs() * fill * self.comm
        slippage = delta.abs() * ref * self.slip
        cash_filled = cash - delta * fill - commission

        # new holding, entry price, bars held
        sh_new = sh + delta
        abs_sh, abs_new = sh.abs(), sh_new.abs()
        opened = trade & (sh_new != 0.0) & (sh * sh_new <= 0.0)
        grown = abs_new > abs_sh
        entry = torch.where(
            grown, (abs_sh * self.entry + delta.abs() * fill) / torch.where(grown, abs_new, 1.0), self.entry
        )
        entry = torch.where(opened, fill, entry)
        flat = sh_new == 0.0
        entry = torch.where(flat, 1.0, entry)
        bars = torch.where(flat, 0.0, torch.where(opened, 1.0, self.bars + 1.0))

        # mark: shorts pay borrow on their notional at the close
        borrow = torch.clamp(-sh_new, 0.0, None) * c * self.borrow_rate
        cash_new = cash_filled - borrow
        equity = cash_new + sh_new * c

        reward, peak, dd, dsr_a, dsr_b = reference_reward(
            self.config, self.cap, equity, prev, self.peak, self.dd, self.dsr_a, self.dsr_b
        )

        steps = self.steps + 1
        terminated = equity <= 0.0
        truncated = ~terminated & (t1 >= self.last_bar)
        act = self.active
        keep = lambda new, old: torch.where(act, new, old)  # noqa: E731
        zero = lambda v: torch.where(act, v, 0.0)  # noqa: E731
        self.t, self.steps = keep(t1, t), keep(steps, self.steps)
        self.cash, self.shares, self.equity = keep(cash_new, cash), keep(sh_new, sh), keep(equity, prev)
        self.held, self.entry, self.bars = (
            keep(target, self.held),
            keep(entry, self.entry),
            keep(bars, self.bars),
        )
        self.peak, self.dd = keep(peak, self.peak), keep(dd, self.dd)
        self.dsr_a, self.dsr_b = keep(dsr_a, self.dsr_a), keep(dsr_b, self.dsr_b)
        self.last_close = keep(c, self.last_close)
        commission, slippage, borrow, delta = map(zero, (commission, slippage, borrow, delta))
        info = {
            "equity": self.equity,
            "cash": self.cash,
            "shares": self.shares,
            "position": self.held,
            "commission": commission,
            "slippage": slippage,
            "borrow": borrow,
            "cost": commission + slippage + borrow,
            "traded_shares": delta,
            "fill_price": torch.where(act & trade, fill, math.nan),
            "bar": self.t,
        }
        reward, terminated, truncated = zero(reward), terminated & act, truncated & act
        self.active = act & ~(terminated | truncated)
        return self.observe(), reward, terminated, truncated, info
