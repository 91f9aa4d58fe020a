"""`BatchedTradingCore`: B independent trading accounts stepping together over one market.

This is the single implementation of the trading rules; `TradingEnv`, `TradingVectorEnv` and
`replay` are thin facades over it, so training, evaluation and deployment cannot drift apart.

Why hand-written: gym-anytrading and friends step one account per Python object with
per-step Python arithmetic, have no costs on the fill price, fill at the close of the bar
that generated the signal (look-ahead) and cannot be batched on a GPU. Here every account
is a lane of a tensor, the whole step is ~50 vectorised array operations regardless of B,
and the timing is fixed by contract (docs/environment.md):

    decision at bar t (observation = feature rows t-W+1..t, bar t has closed)
    -> fill at bar t+1's reference price (``environment.fill_price``: ``next_close`` by default,
       or ``next_open`` where opens are real traded prices), slippage against the trader,
       commission on traded notional
    -> mark at close[t+1] (short borrow charged), reward = f(equity[t] -> equity[t+1]).

Two back ends share the same step code (`_TorchOps`, `_ScalarOps`): torch tensors on any
device for batched and torch-native use, and plain Python floats for the one-account
gymnasium facade, where the fixed cost of a torch call (~3 µs on CPU) times ~60 operations
would otherwise dominate a one-element step. Both do float64 money arithmetic and build
float32 observations, so every lane of the torch core and the one-account facade produce
the same trajectories (tests/env check this).

Sizing: a target position p is the fraction of *post-cost* equity held in the instrument
at the fill: after the trade, shares * open = p * (cash + shares * open). The traded
quantity is solved in closed form including slippage and commission, so a long-only
account at p <= 1 never has negative cash (a 1e-12 relative haircut on buys absorbs
float rounding). Shares are fractional. An account only trades when its target changes;
between trades the exposure drifts with the price (no hidden rebalancing costs).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import torch

from .config import EnvConfig, EnvConfigError
from .market import MarketArrays, MarketDataError

BARS_HELD_SCALE = 252  # observation of bars held = min(bars, 252) / 252
_BUY_HAIRCUT_EPS = 1e-12  # buys are sized with k * (1 + eps) so rounding never overdraws cash
_EQUITY_FLOOR = 1e-12  # fraction of initial capital used inside log() once bankrupt


class _TorchOps:
    """Lane vectors are 1-D torch tensors on `device`."""

    name = "torch"

    def __init__(self, device: str):
        self.device = torch.device(device)
        self.where, self.log, self.abs, self.sign = torch.where, torch.log, torch.abs, torch.sign
        self.maximum, self.logical_not = torch.maximum, torch.logical_not
        self._dtypes = {"f64": torch.float64, "f32": torch.float32, "i64": torch.int64, "bool": torch.bool}

    def data(self, x: np.ndarray, kind: str) -> torch.Tensor:
        return torch.as_tensor(np.ascontiguousarray(x), dtype=self._dtypes[kind], device=self.device)

    def const(self, x: float) -> torch.Tensor:  # 0-d float64; torch.where(c, 1.0, 2.0) would be float32
        return torch.tensor(x, dtype=torch.float64, device=self.device)

    def index(self, x) -> torch.Tensor:
        return torch.as_tensor(x, dtype=torch.int64).to(self.device)

    def full(self, n: int, value: Any, kind: str) -> torch.Tensor:
        return torch.full((n,), value, dtype=self._dtypes[kind], device=self.device)

    def take(self, arr: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        return arr.index_select(0, idx)

    def clip(self, x, lo, hi):
        return torch.clamp(x, lo, hi)

    def set_state(self, obs: torch.Tensor, start: int, cols: list) -> None:
        obs[:, start:] = torch.stack(cols, dim=1)

    def targets(self, actions, core: "BatchedTradingCore"):
        if core.config.continuous:
            a = torch.as_tensor(actions, dtype=torch.float64).to(self.device).reshape(-1)
            _check_count(a.shape[0], core.num_envs)
            if bool(torch.isnan(a).any()):
                raise ValueError("a continuous action is NaN; the policy produced an invalid output")
            return torch.clamp(a, core.pos_lo, core.pos_hi)
        a = torch.as_tensor(actions).to(self.device, torch.int64).reshape(-1)
        _check_count(a.shape[0], core.num_envs)
        return core.pos_table.index_select(0, a)  # raises on an out-of-range action

    def any(self, x) -> bool:
        return bool(x.any())


class _ScalarOps:
    """One lane as plain Python floats/ints/bools (the state of a one-account env).

    Same step code as the torch back end; Python float arithmetic is IEEE float64 like
    torch's, and a scalar operation costs ~50 ns instead of ~3 µs for a torch call.
    """

    name = "scalar"

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
        return float((x > 0) - (x < 0))

    @staticmethod
    def logical_not(x):
        return not x

    def data(self, x: np.ndarray, kind: str):
        if kind == "f32":  # the windows table: keep numpy, a row gather is one copy
            return np.ascontiguousarray(x, dtype=np.float32)
        return np.asarray(x).tolist()  # list indexing returns Python scalars directly

    def const(self, x: float) -> float:
        return float(x)

    def index(self, x) -> int:
        arr = np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x).reshape(-1)
        _check_count(arr.shape[0], 1)
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

    def targets(self, actions, core: "BatchedTradingCore") -> float:
        if isinstance(actions, torch.Tensor):
            actions = actions.detach().cpu().numpy()
        arr = np.asarray(actions).reshape(-1)
        _check_count(arr.shape[0], 1)
        if core.config.continuous:
            a = float(arr[0])
            if a != a:
                raise ValueError("a continuous action is NaN; the policy produced an invalid output")
            return self.clip(a, core.pos_lo, core.pos_hi)
        a = int(arr[0])
        if a != arr[0] or not 0 <= a < len(core.pos_table):
            raise ValueError(f"action {arr[0]!r} is not one of 0..{len(core.pos_table) - 1}")
        return core.pos_table[a]

    @staticmethod
    def any(x) -> bool:
        return bool(x)


def _check_count(got: int, expected: int) -> None:
    if got != expected:
        raise ValueError(f"expected {expected} actions (one per lane), got {got}")


def fill_and_costs(
    open_price: float, delta_shares: float, commission_bps: float, slippage_bps: float
) -> tuple[float, float, float]:
    """The environment's execution cost model for one fill, as plain floats.

    Returns ``(fill_price, commission, slippage_cost)`` for trading ``delta_shares`` (> 0 buy,
    < 0 sell) against the reference price ``open_price`` (the next bar's open or close, per
    ``environment.fill_price``): the fill is that price moved ``slippage_bps`` against the
    trader, commission is ``commission_bps`` of the traded notional at the fill price, and
    the slippage cost is the fill's distance from the reference price times the quantity. The batched
    step computes exactly this (tests/env check it on every fill), so paper trading can
    call it instead of keeping its own copy of the formula.
    """
    slip = slippage_bps / 1e4
    qty = abs(delta_shares)
    fill = open_price * (1.0 + slip if delta_shares > 0 else 1.0 - slip)
    return fill, qty * fill * (commission_bps / 1e4), qty * open_price * slip


def build_windows(features: np.ndarray, window: int, extra_cols: int) -> np.ndarray:
    """(T, W*F + extra) float32: row t = feature rows t-W+1..t flattened oldest first.

    Rows t < W-1 are zero (never observed: a replay starts at t = W-1). Precomputing this
    once (T*W*F floats, a few MB) makes building an observation a single row gather.
    """
    T, F = features.shape
    out = np.zeros((T, window * F + extra_cols), dtype=np.float32)
    if T >= window:
        win = np.lib.stride_tricks.sliding_window_view(features, window, axis=0)  # (T-W+1, F, W)
        out[window - 1 :, : window * F] = win.transpose(0, 2, 1).reshape(T - window + 1, window * F)
    return out


def update_entry_and_bars(
    shares: float, delta: float, fill: float, entry: float, bars_held: float
) -> tuple[float, float]:
    """One account's entry price and bars held after trading ``delta`` shares at ``fill``.

    The scalar form of the bookkeeping inside the step (tests/env check it against the core
    on random trajectories), public so that paper trading keeps the observation's
    ``unrealised`` and ``bars_held`` inputs exactly as the environment does: opening (or
    flipping) a position sets the entry to the fill and bars held to 1, adding to it averages
    the entry, being flat resets both, and every other bar adds one bar held.
    """
    shares_new = shares + delta
    qty = abs(delta)
    opened = delta != 0.0 and shares_new != 0.0 and shares * shares_new <= 0.0
    grown = delta != 0.0 and abs(shares_new) > abs(shares) and not opened
    if grown:
        entry = (abs(shares) * entry + qty * fill) / abs(shares_new)
    if opened:
        entry = fill
    if shares_new == 0.0:
        return 1.0, 0.0
    return entry, (1.0 if opened else bars_held + 1.0)


def observation_from_window(
    window_features: np.ndarray,
    config: EnvConfig,
    *,
    held: float,
    shares: float,
    last_close: float,
    entry: float,
    bars_held: float,
) -> np.ndarray:
    """The environment's observation (obs_dim,) float32 from W feature rows and account state.

    Same layout and arithmetic as :meth:`BatchedTradingCore.observe`: the W scaled feature
    rows flattened oldest first (via :func:`build_windows`), then, per the config switches,
    the held target position, the unrealised return ``sign(shares) * (last_close / entry - 1)``
    and ``min(bars_held, 252) / 252``. Deployment builds live observations with it; a test
    checks it against the core bit for bit.
    """
    feats = np.asarray(window_features, dtype=np.float32)
    if feats.ndim != 2 or feats.shape[0] != config.window:
        raise ValueError(
            f"observation needs exactly environment.window={config.window} feature rows, "
            f"got an array of shape {feats.shape}"
        )
    n_state = int(config.obs_position) + int(config.obs_unrealised) + int(config.obs_bars_held)
    obs = build_windows(feats, config.window, n_state)[-1].copy()
    cols = []
    if config.obs_position:
        cols.append(float(held))
    if config.obs_unrealised:
        cols.append(_ScalarOps.sign(shares) * (float(last_close) / float(entry) - 1.0))
    if config.obs_bars_held:
        cols.append(_ScalarOps.clip(float(bars_held), 0.0, float(BARS_HELD_SCALE)) / BARS_HELD_SCALE)
    if cols:
        obs[feats.shape[1] * config.window :] = cols
    return obs


class BatchedTradingCore:
    """B accounts on one instrument; see the module docstring and docs/environment.md.

    Parameters
    ----------
    market, config : what to trade and how.
    num_envs : number of lanes B.
    seed : seeds the torch CPU generator that draws random episode starts.
    autoreset : True (training): a lane whose episode ended is reset inside the same
        `step` call and `info["final_obs"]` holds its last observation. False (replay,
        one-account facade): a finished lane freezes (no trades, reward 0) until `reset`.
    backend : "torch" (default; lanes are tensors) or "scalar" (CPU, num_envs=1, lanes are
        Python floats; used by the one-account facade).
    device : overrides `config.device` ("cpu", "cuda", "cuda:1", ...).
    compile_step : run the step arithmetic through `torch.compile` (opt-in: ~15 s to
        compile once, then faster at large B; results equal eager to float rounding).
    """

    def __init__(
        self,
        market: MarketArrays,
        config: EnvConfig,
        num_envs: int = 1,
        seed: int | None = None,
        *,
        autoreset: bool = True,
        backend: str = "torch",
        device: str | None = None,
        compile_step: bool = False,
    ) -> None:
        if not isinstance(market, MarketArrays):
            raise TypeError("market must be a MarketArrays; use MarketArrays.from_frame(model_input_df)")
        if not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive integer, got {num_envs!r}")
        self.market, self.config, self.num_envs = market, config, num_envs
        self.autoreset = autoreset
        W, T = config.window, market.n_bars
        if T - W < 1:
            raise MarketDataError(
                f"the market has {T} bars but environment.window={W} needs at least {W + 1} "
                "(W bars of history plus one bar to fill); use a longer period or a smaller window"
            )
        self.episode_length = config.episode_length
        if self.episode_length is not None and self.episode_length > T - W:
            raise EnvConfigError(
                f"environment.episode_length={self.episode_length} is longer than the {T - W} steps "
                f"this market of {T} bars allows with window {W}; shorten it or use null (full period)"
            )
        self.device = device or config.resolve_device()
        if backend == "torch":
            self.xp = _TorchOps(self.device)
        elif backend == "scalar":
            if num_envs != 1:
                raise ValueError("the scalar back end runs exactly one account (num_envs=1)")
            self.xp = _ScalarOps(self.device)
        else:
            raise ValueError(f"backend must be 'torch' or 'scalar', got {backend!r}")
        xp = self.xp

        self.n_state = int(config.obs_position) + int(config.obs_unrealised) + int(config.obs_bars_held)
        self.feature_dim = W * market.n_features
        self.obs_dim = self.feature_dim + self.n_state
        self.windows = xp.data(build_windows(market.features, W, self.n_state), "f32")
        self.open = xp.data(market.open, "f64")
        self.close = xp.data(market.close, "f64")
        # the price an order decided at bar t fills at on bar t+1 (before slippage)
        self.fill_ref = self.close if config.fill_price == "next_close" else self.open
        self.pos_table = xp.data(np.asarray(config.positions, dtype=np.float64), "f64")
        self.lo_start, self.last_bar = W - 1, T - 1
        self.hi_start = (T - 1 - self.episode_length) if self.episode_length is not None else W - 1

        self.cap = float(config.initial_capital)
        self.commission = config.commission_bps / 1e4
        self.slippage = config.slippage_bps / 1e4
        self.borrow = config.borrow_bps_per_bar / 1e4
        self.k_buy = (1.0 + self.slippage) * (1.0 + self.commission)
        self.k_sell = (1.0 - self.slippage) * (1.0 - self.commission)
        # k = k_mid + k_half * side gives k_buy for side = +1 and k_sell for side = -1.
        k_buy_safe = self.k_buy * (1.0 + _BUY_HAIRCUT_EPS)
        self._k_mid = 0.5 * (k_buy_safe + self.k_sell)
        self._k_half = 0.5 * (k_buy_safe - self.k_sell)
        # 0-d float64 constants: torch.where(c, 0.0, x) re-wraps the scalar on every call.
        self._zero, self._one, self._nan = xp.const(0.0), xp.const(1.0), xp.const(math.nan)
        self.pos_lo, self.pos_hi = config.position_bounds
        self.max_steps = self.episode_length if self.episode_length is not None else T  # never binds

        self._transition = self._transition_eager
        if compile_step:
            if backend != "torch":
                raise ValueError("compile_step needs the torch back end")
            # Fuses the ~60 element-wise operations of a step into one kernel (TorchInductor;
            # needs a C++ compiler on CPU). First step compiles (~15 s); worth it for long runs.
            self._transition = torch.compile(self._transition_eager, dynamic=False)

        self.generator = torch.Generator()
        self.seed(seed)
        self._state_ready = False

    # ------------------------------------------------------------------ seeding / reset
    def seed(self, seed: int | None) -> None:
        if seed is None:
            seed = int(np.random.SeedSequence().entropy % (2**63))
        self.generator.manual_seed(int(seed))

    def _draw_starts(self):
        if self.hi_start <= self.lo_start:
            return self.xp.full(self.num_envs, self.lo_start, "i64")
        s = torch.randint(self.lo_start, self.hi_start + 1, (self.num_envs,), generator=self.generator)
        return self.xp.index(s)

    def _check_starts(self, starts):
        xp = self.xp
        if np.ndim(starts) == 0:
            starts = [int(starts)] * self.num_envs
        arr = np.asarray(starts.detach().cpu() if isinstance(starts, torch.Tensor) else starts, dtype=np.int64)
        if arr.shape != (self.num_envs,):
            raise ValueError(f"starts must have shape ({self.num_envs},), got {arr.shape}")
        bad = (arr < self.lo_start) | (arr > self.last_bar - 1)
        if bad.any():
            raise ValueError(
                f"start bar {int(arr[bad][0])} is outside [{self.lo_start}, {self.last_bar - 1}] "
                f"(window {self.config.window}, {self.market.n_bars} bars)"
            )
        return xp.index(arr)

    def reset(self, starts=None, seed: int | None = None):
        """Reset every lane; `starts` (int or (B,)) fixes the decision bars, else random/full."""
        xp, B = self.xp, self.num_envs
        if seed is not None:
            self.seed(seed)
        self.t = self._draw_starts() if starts is None else self._check_starts(starts)
        self.steps = xp.full(B, 0, "i64")
        self.cash = xp.full(B, self.cap, "f64")
        self.shares = xp.full(B, 0.0, "f64")
        self.equity = xp.full(B, self.cap, "f64")
        self.held = xp.full(B, 0.0, "f64")
        self.entry = xp.full(B, 1.0, "f64")  # 1.0 while flat keeps the unrealised term finite
        self.bars = xp.full(B, 0.0, "f64")
        self.peak = xp.full(B, self.cap, "f64")
        self.dd = xp.full(B, 0.0, "f64")
        self.dsr_a = xp.full(B, 0.0, "f64")
        self.dsr_b = xp.full(B, 0.0, "f64")
        self.last_close = xp.take(self.close, self.t)
        self.active = xp.full(B, True, "bool")
        self._all_active = True
        self._state_ready = True
        return self.observe()

    def _reset_lanes(self, mask) -> None:
        xp = self.xp
        self.t = xp.where(mask, self._draw_starts(), self.t)
        self.steps = xp.where(mask, 0, self.steps)
        self.cash = xp.where(mask, self.cap, self.cash)
        self.shares = xp.where(mask, 0.0, self.shares)
        self.equity = xp.where(mask, self.cap, self.equity)
        self.held = xp.where(mask, 0.0, self.held)
        self.entry = xp.where(mask, 1.0, self.entry)
        self.bars = xp.where(mask, 0.0, self.bars)
        self.peak = xp.where(mask, self.cap, self.peak)
        self.dd = xp.where(mask, 0.0, self.dd)
        self.dsr_a = xp.where(mask, 0.0, self.dsr_a)
        self.dsr_b = xp.where(mask, 0.0, self.dsr_b)
        self.last_close = xp.take(self.close, self.t)

    # ------------------------------------------------------------------ observation
    def observe(self):
        """(B, obs_dim) float32: window of features, then position, unrealised, bars held."""
        xp = self.xp
        obs = xp.take(self.windows, self.t)
        if self.n_state:
            cols = []
            if self.config.obs_position:
                cols.append(self.held)
            if self.config.obs_unrealised:
                cols.append(xp.sign(self.shares) * (self.last_close / self.entry - 1.0))
            if self.config.obs_bars_held:
                cols.append(xp.clip(self.bars, 0.0, float(BARS_HELD_SCALE)) / BARS_HELD_SCALE)
            xp.set_state(obs, self.feature_dim, cols)
        return obs

    # ------------------------------------------------------------------ step
    def targets_from_actions(self, actions):
        """Map actions to target positions: index into `positions`, or clip a continuous one."""
        return self.xp.targets(actions, self)

    def _transition_eager(self, target, t, steps, held, cash, sh, prev, entry, bars, peak, dd, dsr_a, dsr_b):
        """The pure arithmetic of one step (no state is touched): fill, costs, mark, reward."""
        xp = self.xp
        t1 = xp.clip(t + 1, 0, self.last_bar)  # frozen lanes (autoreset=False) may sit at T-1
        o = xp.take(self.fill_ref, t1)
        c = xp.take(self.close, t1)

        # --- fill at bar t+1's reference price o (open or close), sized so that the position is `target` of post-cost equity.
        # x is the frictionless trade in shares; it is exactly -sh when target == 0 (0 * y == 0),
        # so exits flatten exactly. side = +1 buy / -1 sell; k folds slippage and commission
        # (and, for buys, a 1e-12 haircut against rounding) into the closed-form size.
        trade = target != held
        x = target * cash / o - (1.0 - target) * sh
        side = xp.sign(x)
        k = self._k_mid + self._k_half * side
        delta = xp.where(trade, x / (1.0 - target + target * k), self._zero)
        fill = o * (1.0 + self.slippage * side)
        qty = xp.abs(delta)
        abs_sh = xp.abs(sh)
        commission = qty * fill * self.commission
        slippage = qty * o * self.slippage
        sh_new = sh + delta
        # --- mark at close[t+1]; shorts pay borrow on their notional at the mark
        borrow = xp.clip(-sh_new, 0.0, None) * c * self.borrow
        cash_new = cash - delta * fill - commission - borrow
        equity = cash_new + sh_new * c

        # --- position bookkeeping for the observation
        # opened: a new position (from flat or a flip) -> entry = fill; grown: added to the same
        # side -> cost-weighted average entry (`opened` is applied last, so it wins).
        abs_new = xp.abs(sh_new)
        opened = trade & (sh_new != 0.0) & (sh * sh_new <= 0.0)
        grown = trade & (abs_new > abs_sh)
        entry = xp.where(grown, (abs_sh * entry + qty * fill) / xp.where(grown, abs_new, self._one), entry)
        entry = xp.where(opened, fill, entry)
        flat = sh_new == 0.0
        entry = xp.where(flat, self._one, entry)
        bars = xp.where(flat, self._zero, xp.where(opened, self._one, bars + 1.0))

        # --- reward
        logr = xp.log(xp.clip(equity, self.cap * _EQUITY_FLOOR, None) / prev)
        reward_kind = self.config.reward
        if reward_kind == "log_return":
            reward = logr
        elif reward_kind == "differential_sharpe":
            # Moody & Saffell (2001): exponential moments A (mean) and B (second moment) of the
            # per-bar return with decay eta; reward = dS/d eta at eta -> 0.
            eta = self.config.dsr_eta
            d_a = logr - dsr_a
            d_b = logr * logr - dsr_b
            var = dsr_b - dsr_a * dsr_a
            ok = var > 1e-18
            reward = xp.where(ok, (dsr_b * d_a - 0.5 * dsr_a * d_b) / xp.where(ok, var, 1.0) ** 1.5, 0.0)
            dsr_a = dsr_a + eta * d_a
            dsr_b = dsr_b + eta * d_b
        else:  # drawdown_penalised
            peak = xp.maximum(peak, equity)
            dd_new = 1.0 - equity / peak
            reward = logr - self.config.drawdown_lambda * xp.clip(dd_new - dd, 0.0, None)
            dd = dd_new

        steps = steps + 1
        terminated = equity <= 0.0
        truncated = xp.logical_not(terminated) & ((steps >= self.max_steps) | (t1 >= self.last_bar))
        fill_price = xp.where(trade, fill, self._nan)
        cost = commission + slippage + borrow
        return (t1, steps, c, cash_new, sh_new, equity, entry, bars, peak, dd, dsr_a, dsr_b, reward,
                terminated, truncated, fill_price, cost, commission, slippage, borrow, delta)

    def step(self, actions):
        """Advance every lane one bar. Returns (obs, reward, terminated, truncated, info)."""
        if not self._state_ready:
            raise RuntimeError("call reset() before step()")
        xp = self.xp
        target = self.targets_from_actions(actions)
        cash, sh, prev = self.cash, self.shares, self.equity
        (t1, steps, c, cash_new, sh_new, equity, entry, bars, peak, dd, dsr_a, dsr_b, reward,
         terminated, truncated, fill_price, cost, commission, slippage, borrow, delta) = self._transition(
            target, self.t, self.steps, self.held, cash, sh, prev, self.entry, self.bars,
            self.peak, self.dd, self.dsr_a, self.dsr_b,
        )

        if not self._all_active:  # frozen lanes (autoreset=False) keep their state
            act = self.active
            keep = lambda new, old: xp.where(act, new, old)  # noqa: E731
            t1, steps = keep(t1, self.t), keep(steps, self.steps)
            cash_new, sh_new, equity = keep(cash_new, cash), keep(sh_new, sh), keep(equity, prev)
            target, entry, bars = keep(target, self.held), keep(entry, self.entry), keep(bars, self.bars)
            peak, dd = keep(peak, self.peak), keep(dd, self.dd)
            dsr_a, dsr_b = keep(dsr_a, self.dsr_a), keep(dsr_b, self.dsr_b)
            c = keep(c, self.last_close)
            reward = xp.where(act, reward, 0.0)
            terminated, truncated = terminated & act, truncated & act
            zero = lambda x: xp.where(act, x, 0.0)  # noqa: E731
            cost, commission, slippage, borrow, delta = map(zero, (cost, commission, slippage, borrow, delta))
            fill_price = xp.where(act, fill_price, math.nan)

        self.t, self.steps = t1, steps
        self.cash, self.shares, self.equity = cash_new, sh_new, equity
        self.held, self.entry, self.bars, self.last_close = target, entry, bars, c
        self.peak, self.dd, self.dsr_a, self.dsr_b = peak, dd, dsr_a, dsr_b

        info = {
            "equity": equity,
            "position": target,
            "cash": cash_new,
            "shares": sh_new,
            "cost": cost,
            "commission": commission,
            "slippage": slippage,
            "borrow": borrow,
            "traded_shares": delta,
            "fill_price": fill_price,
            "bar": t1,
        }
        obs = self.observe()
        done = terminated | truncated
        if xp.any(done):
            if self.autoreset:
                info["final_obs"] = obs
                info["done"] = done
                self._reset_lanes(done)
                obs = self.observe()
            else:
                self.active = self.active & xp.logical_not(done)
                self._all_active = False
        return obs, reward, terminated, truncated, info
