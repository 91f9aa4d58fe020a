"""`BatchedTradingCore`: B independent trading accounts stepping together over one market.

The core is the account engine (`engine.py`: the one step function, episode starts, lane
state, rewards, auto-reset; the same as `PortfolioCore`'s) at N = 1 with closed-form sizing: its
step hooks execute orders through the execution kernel (`execution.py`: sizing, fill, costs,
settlement, entry price and bars held; the same functions the paper broker calls) and build
observations with `observation.py`. `TradingEnv`, `TradingVectorEnv` and `replay` are thin
facades over it, so training, evaluation and deployment cannot drift apart.

Why hand-written: gym-anytrading and friends step one account per Python object with
per-step Python arithmetic, have no costs on the fill price, fill at the close of the bar
that generated the signal (look-ahead) and cannot be batched on a GPU. Here every account
is a lane of a tensor, the whole step is ~60 vectorised array operations regardless of B,
and the timing is fixed by contract (docs/environment.md):

    decision at bar t (observation = feature rows t-W+1..t, bar t has closed)
    -> fill at bar t+1's reference price (``environment.fill_price``: ``next_close`` by default,
       or ``next_open`` where opens are real traded prices), slippage against the trader,
       commission on traded notional
    -> mark at close[t+1] (short borrow charged), reward = f(equity[t] -> equity[t+1]).

Two back ends (`ops.py`) run the same step code: torch tensors on any device for batched
and torch-native use, and plain Python floats for the one-account gymnasium facade, where
the fixed cost of a torch call (~3 µs on CPU) times ~60 operations would otherwise dominate
a one-element step. Both do float64 money arithmetic and build float32 observations, so
every lane of the torch core and the one-account facade produce the same trajectories
(tests/env check this).

Sizing (see `execution.py`): a target position p is the fraction of *post-cost* equity held
in the instrument after the fill, solved in closed form including slippage and commission,
so a long-only account at p <= 1 never has negative cash. The core trades fractional shares.
An account only trades when its target changes; between trades the exposure drifts with the
price (no hidden rebalancing costs).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from . import execution as ex
from .config import EnvConfig, EnvConfigError
from .engine import AccountEngine
from .market import MarketArrays, MarketDataError
from .observation import build_windows, n_state, state_columns
from .ops import ScalarOps
from .torch_ops import TorchOps


class BatchedTradingCore(AccountEngine):
    """B accounts on one instrument (the engine at N = 1, closed-form sizing); see the module
    docstring and docs/environment.md.

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

    Shares are ``config.granularity``: "fractional" or "whole" (the kernel's rule: the resulting
    holding truncated toward zero).
    """

    InputError = ValueError
    LANE_STATE = {
        "cash": "cap",
        "shares": 0.0,
        "equity": "cap",
        "held": 0.0,
        "entry": 1.0,  # 1.0 while flat keeps the unrealised term finite
        "bars": 0.0,
        "peak": "cap",
        "dd": 0.0,
        "dsr_a": 0.0,
        "dsr_b": 0.0,
    }
    STEP_STATE = ("last_close",)
    n_assets = 1

    def _data_error(self, msg: str) -> Exception:
        return MarketDataError(msg)

    def _config_error(self, msg: str) -> Exception:
        return EnvConfigError(msg)

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
        W = config.window
        self.device = device or config.resolve_device()
        if backend == "torch":
            self.xp = TorchOps(self.device)
        elif backend == "scalar":
            if num_envs != 1:
                raise ValueError("the scalar back end runs exactly one account (num_envs=1)")
            self.xp = ScalarOps(self.device)
        else:
            raise ValueError(f"backend must be 'torch' or 'scalar', got {backend!r}")
        xp = self.xp

        self.n_state = n_state(config)
        self.feature_dim = W * market.n_features
        self.obs_dim = self.feature_dim + self.n_state
        self.windows = xp.data(_observation_table(market, W, self.n_state), "f32")
        self.open = xp.data(market.open, "f64")
        self.close = xp.data(market.close, "f64")
        # the price an order decided at bar t fills at on bar t+1 (before slippage)
        self.fill_ref = self.close if config.fill_price == "next_close" else self.open
        self.pos_table = xp.data(np.asarray(config.positions, dtype=np.float64), "f64")
        self.cap = float(config.initial_capital)
        self.rules = config.rules
        self.pos_lo, self.pos_hi = config.position_bounds
        self._init_lanes(config, n_bars=market.n_bars, seed=seed, what=("market", "environment."))

        self._transition = self._transition_eager
        if compile_step:
            if backend != "torch":
                raise ValueError("compile_step needs the torch back end")
            # Fuses the ~60 element-wise operations of a step into one kernel (TorchInductor;
            # needs a C++ compiler on CPU). First step compiles (~15 s); worth it for long runs.
            self._transition = torch.compile(self._transition_eager, dynamic=False)

    # ------------------------------------------------------------------ reset
    def _reset_state(self) -> None:
        super()._reset_state()
        self.last_close = self.xp.take(self.close, self.t)

    def _reset_lanes(self, mask) -> None:
        super()._reset_lanes(mask)
        self.last_close = self.xp.take(self.close, self.t)

    # ------------------------------------------------------------------ observation
    def observe(self):
        """(B, obs_dim) float32: window of features, then position, unrealised, bars held."""
        xp = self.xp
        obs = xp.take(self.windows, self.t)
        if self.n_state:
            cols = state_columns(
                xp, self.config, self.held, self.shares, self.last_close, self.entry, self.bars
            )
            xp.set_state(obs, self.feature_dim, cols)
        return obs

    # ------------------------------------------------------------------ step
    def targets_from_actions(self, actions):
        """Map actions to target positions: index into `positions`, or clip a continuous one."""
        return self.xp.targets(actions, self)

    def _transition_eager(self, target, t, held, cash, sh, entry, bars):
        """The pure arithmetic of one step's trade (no state is touched): fill, costs, mark."""
        xp = self.xp
        t1 = xp.clip(t + 1, 0, self.last_bar)  # frozen lanes (autoreset=False) may sit at T-1
        o = xp.take(self.fill_ref, t1)
        c = xp.take(self.close, t1)
        # --- fill at bar t+1's reference price o (open or close), sized so that the position is
        # `target` of post-cost equity; only lanes whose target changed trade.
        rules = self.rules
        trade = target != held
        delta, fill, commission, slippage = ex.execute_order(xp, rules, target, cash, sh, o, trade)
        # --- settle: pay for the fill, mark at close[t+1] (shorts pay borrow on their notional)
        sh_new, _, borrow, cash_new, equity, _ = ex.settle(xp, rules, cash, sh, delta, fill, commission, c)
        # the holding's entry price and bars held (inputs of the observation)
        _, entry, bars = ex.position_after(xp, sh, delta, fill, entry, bars, trade)
        fill_price = xp.where(trade, fill, xp.nan)
        return t1, c, cash_new, sh_new, equity, entry, bars, fill_price, commission, slippage, borrow, delta

    def _trade(self, actions, hold):
        """The engine's step hook at N = 1: target positions from the actions (``hold`` lanes keep
        theirs, so they do not trade), the closed-form fill and settlement (`_transition`)."""
        target = self.targets_from_actions(actions)
        if hold is not None:
            target = self.xp.where(self._hold_mask(hold), self.held, target)
        prev = self.equity
        t1, self.last_close, self.cash, self.shares, self.equity, self.entry, self.bars, *out = (
            self._transition(target, self.t, self.held, self.cash, self.shares, self.entry, self.bars)
        )
        self.held = target
        return t1, prev, out

    def _emit(self, out) -> tuple:
        """(observation, info) after `_end_step` committed the bar."""
        fill_price, commission, slippage, borrow, delta = out
        cost = commission + slippage + borrow
        if not self._all_active:  # frozen lanes: no fill, no cost
            zero = lambda x: self._keep(x, 0.0)  # noqa: E731
            cost, commission, slippage, borrow, delta = map(zero, (cost, commission, slippage, borrow, delta))
            fill_price = self._keep(fill_price, math.nan)
        info = {
            "equity": self.equity,
            "position": self.held,
            "cash": self.cash,
            "shares": self.shares,
            "cost": cost,
            "commission": commission,
            "slippage": slippage,
            "borrow": borrow,
            "traded_shares": delta,
            "fill_price": fill_price,
            "bar": self.t,
        }
        return self.observe(), info


def _observation_table(market: MarketArrays, window: int, extra_cols: int) -> np.ndarray:
    """(T, W*F + state) float32 observation rows: the market's own feature blocks when it
    carries them (``MarketArrays.obs_windows``), else built from its features."""
    if market.obs_windows is None:
        return build_windows(market.features, window, extra_cols)
    blocks = market.obs_windows
    if blocks.shape != (market.n_bars, window * market.n_features):
        raise ValueError(
            f"market.obs_windows has shape {blocks.shape}; environment.window={window} needs "
            f"({market.n_bars}, {window * market.n_features})"
        )
    return np.hstack([blocks, np.zeros((market.n_bars, extra_cols), dtype=np.float32)])
