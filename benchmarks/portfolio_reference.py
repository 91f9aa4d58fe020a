"""Reference: a straightforward `PortfolioCore` (``ReferencePortfolioCore``), without
the optimised core's closed-form sizing and row-major tables, so the optimised core can be checked
against it (tests/env/test_portfolio.py::test_matches_reference) and the benchmark can time the
straightforward path (benchmarks/bench_portfolio_env.py). Not library code: do not
import it from src/.

Self-contained for the ledger: it imports only the library's error class, so a change to the
execution kernel or the engine cannot change what it computes (the kernel's fill price, costs,
cash and borrow rules are inlined). Beyond the frozen core it takes the two options every engine
now has at any N, written the straightforward way: ``opens`` ((T, N) opens: orders fill at the next
bar's open instead of its close, the mark stays at the close) and ``granularity="whole"`` (each
resulting holding truncated toward zero after the joint sizing, the kernel's whole-share rule).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from reinforce_strategy_creator.env.portfolio import PortfolioInputError

_EQUITY_FLOOR = 1e-12
_SOLVE_SHRINK = 1e-12
_WEIGHT_TOL = 1e-9
_BUY_HAIRCUT_EPS = 1e-12


class _Rules:
    """The cost rates of a config (fractions) and the kernel's buy/sell factors."""

    def __init__(self, config) -> None:
        self.commission = config.commission_bps / 1e4
        self.slippage = config.slippage_bps / 1e4
        self.borrow = config.borrow_bps_per_bar / 1e4
        k_buy = (1.0 + self.slippage) * (1.0 + self.commission) * (1.0 + _BUY_HAIRCUT_EPS)
        k_sell = (1.0 - self.slippage) * (1.0 - self.commission)
        self.k_mid, self.k_half = 0.5 * (k_buy + k_sell), 0.5 * (k_buy - k_sell)


def _fill_price_and_costs(rules, ref, delta):
    side = torch.sign(delta)
    fill = ref * (1.0 + rules.slippage * side)
    qty = delta.abs()
    return fill, qty * fill * rules.commission, qty * ref * rules.slippage


def _borrow(rules, shares, close):
    return torch.clamp(-shares, 0.0, None) * close * rules.borrow


def _check_panel(close: np.ndarray, features: np.ndarray, tickers: Sequence[str]) -> np.ndarray:
    """The tradable mask (T, N): True from each ticker's first finite close."""
    if close.ndim != 2 or features.ndim != 3 or features.shape[:2] != close.shape:
        raise PortfolioInputError(f"bad panel shapes {close.shape}, {features.shape}")
    return np.isfinite(close)


class ReferencePortfolioCore:
    """B accounts over N assets; see the module docstring and docs/environment.md.

    Parameters
    ----------
    close : (T, N) closes, NaN before a ticker's first bar (``Universe.field("close")``).
    features : (T, N, F) features the caller provides (e.g. scaled log returns); row t may
        only use data up to bar t. NaN (not listed yet) is shown as 0 in the observation.
    tickers : the N names (used in error messages).
    num_envs, seed, autoreset : as `BatchedTradingCore`.
    """

    def __init__(
        self,
        close,
        features,
        tickers: Sequence[str],
        config,
        num_envs: int = 1,
        seed: int | None = None,
        *,
        autoreset: bool = True,
        opens=None,
        granularity: str = "fractional",
    ) -> None:
        self.config = config
        self.granularity = granularity
        if not isinstance(num_envs, int) or num_envs < 1:
            raise PortfolioInputError(f"num_envs must be a positive integer, got {num_envs!r}")
        close = np.asarray(close, dtype=np.float64)
        features = np.asarray(features, dtype=np.float32)
        self.tickers = tuple(str(t) for t in tickers)
        tradable = _check_panel(close, features, self.tickers)
        T, N = close.shape
        W = config.window
        if T - W < 1:
            raise PortfolioInputError(
                f"the panel has {T} bars but portfolio window={W} needs at least {W + 1}; "
                "use a longer period or a smaller window"
            )
        self.episode_length = config.episode_length
        if self.episode_length is not None and self.episode_length > T - W:
            raise PortfolioInputError(
                f"portfolio parameter episode_length={self.episode_length} is longer than the {T - W} "
                f"steps {T} bars allow with window {W}; shorten it or use None (full period)"
            )
        self.num_envs, self.n_assets, self.n_bars, self.autoreset = num_envs, N, T, autoreset
        self.device = torch.device(config.device)
        F = features.shape[2]
        self.n_features = F
        self.feature_dim = N * W * F
        self.obs_dim = self.feature_dim + 2 * N + 1
        dev = self.device
        self.close = torch.as_tensor(np.where(tradable, close, 1.0), dtype=torch.float64, device=dev)
        self.fill_ref = self.close  # the price orders fill at on the next bar
        if opens is not None:
            opens = np.asarray(opens, dtype=np.float64)
            self.fill_ref = torch.as_tensor(np.where(tradable, opens, 1.0), dtype=torch.float64, device=dev)
        self.tradable = torch.as_tensor(tradable, device=dev)
        self.windows = torch.as_tensor(_windows(features, W), device=dev)  # (T, N*W*F) float32
        self.lo_start, self.last_bar = W - 1, T - 1
        self.hi_start = (T - 1 - self.episode_length) if self.episode_length is not None else W - 1
        self.max_steps = self.episode_length if self.episode_length is not None else T
        self.cap = float(config.initial_capital)
        self.rules = _Rules(config)
        self.bound = 1.0 if config.long_only else float(config.gross_leverage)
        self.generator = torch.Generator()
        self.seed(seed)
        self._ready = False

    # ------------------------------------------------------------------ reset
    def seed(self, seed: int | None) -> None:
        if seed is None:
            seed = int(np.random.SeedSequence().entropy % (2**63))
        self.generator.manual_seed(int(seed))

    def _draw_starts(self) -> torch.Tensor:
        if self.hi_start <= self.lo_start:
            return torch.full((self.num_envs,), self.lo_start, dtype=torch.int64, device=self.device)
        s = torch.randint(self.lo_start, self.hi_start + 1, (self.num_envs,), generator=self.generator)
        return s.to(self.device)

    def _check_starts(self, starts) -> torch.Tensor:
        arr = np.asarray(
            starts.detach().cpu() if isinstance(starts, torch.Tensor) else starts, dtype=np.int64
        )
        if arr.ndim == 0:
            arr = np.full(self.num_envs, int(arr))
        if arr.shape != (self.num_envs,):
            raise PortfolioInputError(
                f"starts must be an int or have shape ({self.num_envs},), got {arr.shape}"
            )
        bad = (arr < self.lo_start) | (arr > self.last_bar - 1)
        if bad.any():
            raise PortfolioInputError(
                f"start bar {int(arr[bad][0])} is outside [{self.lo_start}, {self.last_bar - 1}] "
                f"(window {self.config.window}, {self.n_bars} bars)"
            )
        return torch.as_tensor(arr, device=self.device)

    def reset(self, starts=None, seed: int | None = None) -> torch.Tensor:
        """Reset every lane (all cash); `starts` (int or (B,)) fixes the first decision bars."""
        if seed is not None:
            self.seed(seed)
        B, N, dev = self.num_envs, self.n_assets, self.device
        self.t = self._draw_starts() if starts is None else self._check_starts(starts)
        self.steps = torch.zeros(B, dtype=torch.int64, device=dev)
        self.cash = torch.full((B,), self.cap, dtype=torch.float64, device=dev)
        self.shares = torch.zeros((B, N), dtype=torch.float64, device=dev)
        self.equity = torch.full((B,), self.cap, dtype=torch.float64, device=dev)
        self.active = torch.ones(B, dtype=torch.bool, device=dev)
        self._ready = True
        return self.observe()

    def _reset_lanes(self, mask: torch.Tensor) -> None:
        self.t = torch.where(mask, self._draw_starts(), self.t)
        self.steps = torch.where(mask, 0, self.steps)
        self.cash = torch.where(mask, self.cap, self.cash)
        self.shares = torch.where(mask[:, None], 0.0, self.shares)
        self.equity = torch.where(mask, self.cap, self.equity)

    # ------------------------------------------------------------------ observation
    def weights(self) -> torch.Tensor:
        """(B, N) current weights at close[t]: shares * close / equity."""
        c = self.close.index_select(0, self.t)
        return self.shares * c / self.equity[:, None]

    def observe(self) -> torch.Tensor:
        """(B, obs_dim) float32: N*W*F features, N weights, cash weight, N tradable flags."""
        w = self.weights()
        cash_w = (self.cash / self.equity)[:, None]
        tr = self.tradable.index_select(0, self.t)
        return torch.cat([self.windows.index_select(0, self.t), w.float(), cash_w.float(), tr.float()], dim=1)

    # ------------------------------------------------------------------ step
    def check_weights(self, weights) -> torch.Tensor:
        """(B, N) float64 target weights, validated: errors name the ticker or bound."""
        B, N = self.num_envs, self.n_assets
        w = torch.as_tensor(weights, dtype=torch.float64).to(self.device)
        if w.shape != (B, N):
            if w.numel() == B * N:
                w = w.reshape(B, N)
            else:
                raise PortfolioInputError(
                    f"target weights must have shape ({B}, {N}) (accounts, tickers), got {tuple(w.shape)}"
                )
        bad = ~torch.isfinite(w)
        if bool(bad.any()):
            lane, j = (int(i) for i in bad.nonzero()[0])
            raise PortfolioInputError(
                f"target weight of ticker {self.tickers[j]!r} (account {lane}) is {float(w[lane, j])}; "
                "weights must be finite numbers"
            )
        if self.config.long_only and bool((w < 0).any()):
            lane, j = (int(i) for i in (w < 0).nonzero()[0])
            raise PortfolioInputError(
                f"target weight of ticker {self.tickers[j]!r} (account {lane}) is {float(w[lane, j])} < 0; "
                "long_only=True needs weights >= 0 (set long_only=False to allow shorts)"
            )
        tradable = self.tradable.index_select(0, self.t)
        off = (w != 0) & ~tradable
        if bool(off.any()):
            lane, j = (int(i) for i in off.nonzero()[0])
            raise PortfolioInputError(
                f"ticker {self.tickers[j]!r} is not tradable at bar {int(self.t[lane])} (no price yet) but "
                f"account {lane} targets weight {float(w[lane, j])}; its weight must be 0"
            )
        total = w.sum(1) if self.config.long_only else w.abs().sum(1)
        over = total > self.bound * (1.0 + _WEIGHT_TOL)
        if bool(over.any()):
            lane = int(over.nonzero()[0][0])
            what = (
                "sum(w) <= 1 (long_only)"
                if self.config.long_only
                else f"sum(|w|) <= gross_leverage={self.bound}"
            )
            raise PortfolioInputError(
                f"target weights of account {lane} add up to {float(total[lane])}; they must satisfy {what}"
            )
        scale = torch.where(total > self.bound, self.bound / total, 1.0)  # rounding only
        return w * scale[:, None]

    def _solve(self, w, trade, cash, shares, ref):
        """Joint sizing: post-cost equity E and the new shares (see the module docstring)."""
        rules, bound = self.rules, self.bound
        v = shares * ref  # values at the fill reference price
        e0 = cash + v.sum(1)
        v_keep = torch.where(trade, 0.0, v)
        keep_total = (v_keep if self.config.long_only else v_keep.abs()).sum(1)
        w_tr = torch.where(trade, w, 0.0)
        tr_total = (w_tr if self.config.long_only else w_tr.abs()).sum(1)
        r_buy = rules.k_mid + rules.k_half - 1.0  # cost per unit bought notional (haircut included)
        r_sell = 1.0 - (rules.k_mid - rules.k_half)
        b = rules.borrow

        def targets(e):
            room = torch.clamp(bound * e - keep_total, min=0.0)
            s = torch.where(tr_total * e > room, room / torch.where(tr_total > 0, tr_total * e, 1.0), 1.0)
            return w_tr * s[:, None] * e[:, None]  # target values of traded assets (0 elsewhere)

        def implied(e):
            tv = targets(e)
            d = torch.where(trade, tv - v, 0.0)
            cost = torch.where(d > 0, d * r_buy, -d * r_sell).sum(1)
            new_v = torch.where(trade, tv, v)
            return e0 - cost - torch.clamp(-new_v, min=0.0).sum(1) * b

        e = e0
        for _ in range(100):
            e_next = implied(e)
            done = bool(((e_next - e).abs() <= 1e-15 * e0.abs()).all())
            e = e_next
            if done:
                break
        e = e * (1.0 - _SOLVE_SHRINK)
        tv = targets(e)
        new_shares = torch.where(trade, tv / ref, shares)
        return torch.where(trade, new_shares - shares, 0.0)

    def _orders(self, w, cur_w, cash, sh, c, hold=None):
        """(traded shares (B, N), lanes that ignored the band (B,)): every asset whose target differs
        from its current weight by at least the band trades to it. The kept assets' weights grow
        when costs shrink the equity (and shorts can drift past the gross limit), so a lane whose
        book would then break the bound trades every asset to its target on this bar instead
        (targets are within the bound)."""
        trade = (w - cur_w).abs() >= self.config.band if self.config.band > 0 else (w != cur_w)
        if hold is not None:
            trade = trade & ~hold[:, None]
        delta = self._solve(w, trade, cash, sh, c)
        band_off = torch.zeros_like(cash, dtype=torch.bool)
        if self.config.band > 0:
            band_off = self._breaks_bound(delta, cash, sh, c)
            if hold is not None:
                band_off = band_off & ~hold
            if bool(band_off.any()):
                trade = torch.where(band_off[:, None], w != cur_w, trade)
                delta = self._solve(w, trade, cash, sh, c)
        return delta, band_off

    def _breaks_bound(self, delta, cash, sh, c):
        """(B,) bool: the book after filling ``delta`` at ``c`` (costs and borrow paid) has
        ``sum(w) > 1`` (long-only) or ``sum(|w|) > gross_leverage``, beyond float rounding."""
        rules = self.rules
        fill, commission, _ = _fill_price_and_costs(rules, c, delta)
        cash_filled = cash - (delta * fill).sum(1) * 1.0 - commission.sum(1)
        sh_new = sh + delta
        cash_new = cash_filled - _borrow(rules, sh_new, c).sum(1)
        wt = sh_new * c / (cash_new + (sh_new * c).sum(1))[:, None]
        total = wt.sum(1) if self.config.long_only else wt.abs().sum(1)
        return total > self.bound * (1.0 + 1e-9)

    def _hold(self, hold, weights):
        """The (B,) hold mask (or None) and the weights with held lanes' rows zeroed (not used)."""
        if hold is None:
            return None, weights
        hold = torch.as_tensor(hold, dtype=torch.bool, device=self.device).reshape(-1)
        if hold.shape != (self.num_envs,):
            raise PortfolioInputError(
                f"hold must be a ({self.num_envs},) bool mask (one per account), got {tuple(hold.shape)}"
            )
        weights = torch.as_tensor(weights, dtype=torch.float64).to(self.device)
        if weights.shape == (self.num_envs, self.n_assets):
            weights = torch.where(hold[:, None], 0.0, weights)  # not used: the lane keeps its book
        return hold, weights

    def step(self, weights, hold=None):
        """Advance every lane one bar to `weights` ((B, N)). Returns (obs, reward, terminated,
        truncated, info); info holds (B,) equity, cash, cost, commission, slippage, borrow,
        turnover, and (B, N) weights (at the mark), shares, traded_shares, fill_price, bar.

        ``hold`` ((B,) bool, optional): lanes that keep their shares this bar (no order, no
        cost; their weights drift with prices), e.g. buy-and-hold or between monthly rebalances.
        Their ``weights`` are ignored (pass anything of the right shape, e.g. zeros)."""
        if not self._ready:
            raise RuntimeError("call reset() before step()")
        rules = self.rules
        hold, weights = self._hold(hold, weights)
        w = self.check_weights(weights)
        t1 = torch.clamp(self.t + 1, max=self.last_bar)
        c = self.close.index_select(0, t1)  # (B, N) the mark: close[t+1]
        ref = self.fill_ref.index_select(0, t1)  # (B, N) fill reference: close or open of t+1
        cash, sh, prev = self.cash, self.shares, self.equity
        cur_w = sh * ref / (cash + (sh * ref).sum(1))[:, None]  # weights just before the fill
        delta, band_off = self._orders(w, cur_w, cash, sh, ref, hold)
        if self.granularity == "whole":
            delta = torch.trunc(sh + delta) - sh
        fill, commission, slippage = _fill_price_and_costs(rules, ref, delta)
        # the account settles once: the per-asset payments summed over the asset axis (fixed order)
        cash_filled = cash - (delta * fill).sum(1) * 1.0 - commission.sum(1)
        sh_new = sh + delta
        borrow = _borrow(rules, sh_new, c).sum(1)
        cash_new = cash_filled - borrow
        equity = cash_new + (sh_new * c).sum(1)
        reward = torch.log(torch.clamp(equity, min=self.cap * _EQUITY_FLOOR) / prev)
        steps = self.steps + 1
        terminated = equity <= 0.0
        truncated = ~terminated & ((steps >= self.max_steps) | (t1 >= self.last_bar))

        act = self.active
        if not bool(act.all()):  # frozen lanes (autoreset=False) keep their state
            t1, steps = torch.where(act, t1, self.t), torch.where(act, steps, self.steps)
            cash_new, equity = torch.where(act, cash_new, cash), torch.where(act, equity, prev)
            sh_new = torch.where(act[:, None], sh_new, sh)
            zero1 = lambda x: torch.where(act, x, 0.0)  # noqa: E731
            zero2 = lambda x: torch.where(act[:, None], x, 0.0)  # noqa: E731
            reward, borrow = zero1(reward), zero1(borrow)
            delta, commission, slippage = zero2(delta), zero2(commission), zero2(slippage)
            terminated, truncated = terminated & act, truncated & act
            c = self.close.index_select(0, t1)
        self.t, self.steps, self.cash, self.shares, self.equity = t1, steps, cash_new, sh_new, equity
        info = {
            "equity": equity,
            "cash": cash_new,
            "shares": sh_new,
            "weights": sh_new * c / equity[:, None],
            "traded_shares": delta,
            "fill_price": torch.where(delta != 0, fill, math.nan),
            "commission": commission.sum(1),
            "slippage": slippage.sum(1),
            "borrow": borrow,
            "cost": commission.sum(1) + slippage.sum(1) + borrow,
            "turnover": (delta.abs() * ref).sum(1),
            "bar": t1,
            "band_off": band_off & act,
        }
        obs = self.observe()
        done = terminated | truncated
        if bool(done.any()):
            if self.autoreset:
                info["final_obs"] = obs
                info["done"] = done
                self._reset_lanes(done)
                obs = self.observe()
            else:
                self.active = self.active & ~done
        return obs, reward, terminated, truncated, info


def _windows(features: np.ndarray, W: int) -> np.ndarray:
    """(T, N*W*F) float32: row t holds, per asset (ticker order), feature rows t-W+1..t oldest
    first, row-major ([f_0..f_{F-1}] of t-W+1, ..., of t); rows before W-1 and NaN are 0."""
    T, N, F = features.shape
    f = np.nan_to_num(features.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    out = np.zeros((T, N, W, F), dtype=np.float32)
    for k in range(W):  # out[t, :, k] = f[t - (W-1) + k]
        lag = W - 1 - k
        out[lag:, :, k, :] = f[: T - lag]
    out[: W - 1] = 0.0
    return out.reshape(T, N * W * F)
