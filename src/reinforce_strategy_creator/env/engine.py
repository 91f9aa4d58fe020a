"""`AccountEngine`: what every core of B accounts x N assets shares, written once.

Both cores are this engine: `BatchedTradingCore` (N = 1, the closed-form fast path: one target
position per account from a discrete table or a continuous action, traded when it changes) and
`PortfolioCore` (N >= 1: one target weight per asset, the joint post-cost sizing). Shared here:

* the lane bookkeeping: episode bounds from the window and ``episode_length``, seeded random
  episode starts (one torch CPU generator), start checks, per-lane reset values;
* the reward, from each account's equity path, at any N (:func:`reward_step`): ``log_return``,
  ``drawdown_penalised`` or ``differential_sharpe``, with the running peak / drawdown / moments
  it needs;
* the step itself (:meth:`AccountEngine.step`, with ``hold``): the core's ``_trade`` hook
  (targets, sizing, fill, settlement) and ``_emit`` hook (observation, info) around the shared
  reward, step count, ``terminated`` / ``truncated``, frozen lanes (``autoreset=False``: they
  keep their state) and auto-reset in the same call (``info["final_obs"]``, ``info["done"]``);
* ``reset`` (seeded or given starts, every lane's reset values).

Orders are filled and settled by the execution kernel (:mod:`.execution`: ``execute_order`` /
``fill_price_and_costs`` and :func:`.execution.settle`) on both cores.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import torch

REWARDS = ("log_return", "differential_sharpe", "drawdown_penalised")
#: the lane state each reward reads (the others pass through `reward_step` unchanged)
REWARD_STATE = {
    "log_return": (),
    "differential_sharpe": ("dsr_a", "dsr_b"),
    "drawdown_penalised": ("peak", "dd"),
}
EQUITY_FLOOR = 1e-12  # fraction of initial capital used inside log() once bankrupt


def reward_step(xp, kind: str, eta: float, lam: float, floor: float, equity, prev, peak, dd, dsr_a, dsr_b):
    """``(reward, peak, dd, dsr_a, dsr_b)`` of one bar for accounts whose equity went ``prev`` ->
    ``equity`` (any shape, any back end of :mod:`.ops`); ``floor`` is the equity used inside the
    log once bankrupt.

    ``log_return``: ``log(equity / prev)``. ``differential_sharpe`` (Moody & Saffell 2001):
    exponential moments A (mean) and B (second moment) of the log return with decay ``eta``,
    reward = dS/d eta at eta -> 0, 0 while the variance is 0. ``drawdown_penalised``: the log
    return minus ``lam`` times the increase of the drawdown from the running peak. The state
    the other kinds do not use passes through unchanged."""
    logr = xp.log(xp.clip(equity, floor, None) / prev)
    if kind == "log_return":
        return logr, peak, dd, dsr_a, dsr_b
    if kind == "differential_sharpe":
        d_a = logr - dsr_a
        d_b = logr * logr - dsr_b
        var = dsr_b - dsr_a * dsr_a
        ok = var > 1e-18
        reward = xp.where(ok, (dsr_b * d_a - 0.5 * dsr_a * d_b) / xp.where(ok, var, 1.0) ** 1.5, 0.0)
        return reward, peak, dd, dsr_a + eta * d_a, dsr_b + eta * d_b
    peak = xp.maximum(peak, equity)
    dd_new = 1.0 - equity / peak
    return logr - lam * xp.clip(dd_new - dd, 0.0, None), peak, dd_new, dsr_a, dsr_b


class AccountEngine:
    """Lane bookkeeping shared by the cores (see the module docstring).

    A subclass calls :meth:`_init_lanes` in its constructor and keeps its lane state in
    attributes named in ``LANE_STATE``: ``{name: reset value}`` where the value is a float (the
    initial capital is ``"cap"``) for (B,) lanes, or a ``(float, "asset")`` pair for (B, N).
    """

    #: name -> value a lane starts an episode with ("cap" = the initial capital)
    LANE_STATE: dict = {}
    #: lane state a step changes beyond ``LANE_STATE`` (frozen lanes keep it too)
    STEP_STATE: tuple = ()
    #: the error raised for an unusable window / episode length / start (subclasses name theirs)
    InputError: type = ValueError

    def _init_lanes(self, config, *, n_bars: int, seed, what: tuple):
        """Episode bounds, the start generator, the reward (``config.reward``, ``dsr_eta``,
        ``drawdown_lambda``; ``self.xp`` and ``self.cap`` set) and the lane state an auto-reset
        restores (the reward state the reward does not read is left alone). ``what``: how errors
        name the data and the window parameter, e.g. ``("market", "environment.")``."""
        window, episode_length, reward = config.window, config.episode_length, config.reward
        self._reward = partial(
            reward_step, self.xp, reward, config.dsr_eta, config.drawdown_lambda, self.cap * EQUITY_FLOOR
        )
        noun, prefix = what
        W, T = window, n_bars
        if T - W < 1:
            raise self._data_error(
                f"the {noun} has {T} bars but {prefix}window={W} needs at least {W + 1} "
                "(W bars of history plus one bar to fill); use a longer period or a smaller window"
            )
        if episode_length is not None and episode_length > T - W:
            raise self._config_error(
                f"{prefix}episode_length={episode_length} is longer than the {T - W} steps "
                f"this {noun} of {T} bars allows with window {W}; shorten it or use null (full period)"
            )
        self.episode_length = episode_length
        self.lo_start, self.last_bar = W - 1, T - 1
        self.hi_start = (T - 1 - episode_length) if episode_length is not None else W - 1
        self.max_steps = episode_length if episode_length is not None else T  # never binds
        self.generator = torch.Generator()
        self.seed(seed)
        unread = {k for v in REWARD_STATE.values() for k in v} - set(REWARD_STATE[reward])
        self._lane_resets = tuple((k, v) for k, v in self.LANE_STATE.items() if k not in unread)
        self._step_state = ("t", "steps", *self.LANE_STATE, *self.STEP_STATE)
        self._ready = False  # until `reset`

    def _data_error(self, msg: str) -> Exception:
        return self.InputError(msg)

    def _config_error(self, msg: str) -> Exception:
        return self.InputError(msg)

    # ------------------------------------------------------------------ seeding / starts
    def seed(self, seed: int | None) -> None:
        if seed is None:
            seed = int(np.random.SeedSequence().entropy % (2**63))
        self.generator.manual_seed(int(seed))

    def _draw_starts(self):
        if self.hi_start <= self.lo_start:
            return self.xp.index(np.full(self.num_envs, self.lo_start, dtype=np.int64))
        s = torch.randint(self.lo_start, self.hi_start + 1, (self.num_envs,), generator=self.generator)
        return self.xp.index(s)

    def _check_starts(self, starts):
        arr = np.asarray(
            starts.detach().cpu() if isinstance(starts, torch.Tensor) else starts, dtype=np.int64
        )
        if arr.ndim == 0:
            arr = np.full(self.num_envs, int(arr))
        if arr.shape != (self.num_envs,):
            raise self.InputError(f"starts must be an int or have shape ({self.num_envs},), got {arr.shape}")
        bad = (arr < self.lo_start) | (arr > self.last_bar - 1)
        if bad.any():
            raise self.InputError(
                f"start bar {int(arr[bad][0])} is outside [{self.lo_start}, {self.last_bar - 1}] "
                f"(window {self.lo_start + 1}, {self.last_bar + 1} bars)"
            )
        return self.xp.index(arr)

    # ------------------------------------------------------------------ lane state
    def _lane_value(self, value):
        return self.cap if value == "cap" else value

    def _reset_state(self) -> None:
        """Every lane's state at the start of an episode (``LANE_STATE``)."""
        xp, B = self.xp, self.num_envs
        for name, value in self.LANE_STATE.items():
            if isinstance(value, tuple):
                setattr(
                    self,
                    name,
                    torch.full((B, self.n_assets), value[0], dtype=torch.float64, device=self.device),
                )
            else:
                setattr(self, name, xp.full(B, self._lane_value(value), "f64"))
        self.steps = xp.full(B, 0, "i64")
        self.active = xp.full(B, True, "bool")
        self._all_active = True

    def _reset_lanes(self, mask) -> None:
        """Lanes in ``mask`` start a new episode (auto-reset), the others keep their state."""
        xp = self.xp
        self.t = xp.where(mask, self._draw_starts(), self.t)
        self.steps = xp.where(mask, 0, self.steps)
        for name, value in self._lane_resets:
            if isinstance(value, tuple):
                setattr(self, name, torch.where(mask[:, None], value[0], getattr(self, name)))
            else:
                setattr(self, name, xp.where(mask, self._lane_value(value), getattr(self, name)))

    # ------------------------------------------------------------------ the step skeleton
    def reset(self, starts=None, seed: int | None = None):
        """Reset every lane (all cash); ``starts`` (int or (B,)) fixes the first decision bars,
        else random (``episode_length``) or the first bar the window allows."""
        if seed is not None:
            self.seed(seed)
        self.t = self._draw_starts() if starts is None else self._check_starts(starts)
        self._reset_state()
        self._ready = True
        return self.observe()

    def step(self, actions, hold=None):
        """Advance every lane one bar. Returns (obs, reward, terminated, truncated, info).

        The one step of every core: the core's ``_trade(actions, hold)`` maps the actions to
        targets, sizes the orders, fills and settles them through the execution kernel, stores
        its new lane state (``equity`` included) and returns ``(t1, prev, out)``: the bar each
        lane moved to, the equity before the bar and the outputs of the bar. `_end_step` then
        computes the reward and the episode ends, the core's ``_emit(out)`` builds the
        observation and the info; finished lanes are auto-reset or frozen (`_finish`)."""
        if not self._ready:
            raise RuntimeError("call reset() before step()")
        # lanes frozen by autoreset=False keep their state: remember it (rare path)
        old = None if self._all_active else {k: getattr(self, k) for k in self._step_state}
        t1, prev, out = self._trade(actions, hold)
        reward, terminated, truncated = self._end_step(t1, prev, old)
        obs, info = self._emit(out)
        done = terminated | truncated
        if self.xp.any(done):
            obs = self._finish(obs, done, info)
        return obs, reward, terminated, truncated, info

    def _end_step(self, t1, prev, old):
        """The reward of lanes whose equity went ``prev`` -> ``self.equity`` and that now sit at
        bar ``t1``, its running state, the step count, ``terminated`` (equity <= 0) and
        ``truncated`` (episode length reached or last bar). ``old``: the lane state before the
        step (attribute name -> value) when some lanes are frozen (``autoreset=False``): they
        get it back, reward 0 and are never done. Returns (reward, terminated, truncated)."""
        xp, equity = self.xp, self.equity
        reward, self.peak, self.dd, self.dsr_a, self.dsr_b = self._reward(
            equity, prev, self.peak, self.dd, self.dsr_a, self.dsr_b
        )
        self.t, self.steps = t1, self.steps + 1
        terminated = equity <= 0.0
        truncated = xp.logical_not(terminated) & ((self.steps >= self.max_steps) | (t1 >= self.last_bar))
        if old is not None:
            act = self.active
            for k, v in old.items():
                setattr(self, k, self._keep(getattr(self, k), v))
            reward = xp.where(act, reward, 0.0)
            terminated, truncated = terminated & act, truncated & act
        return reward, terminated, truncated

    def _hold_mask(self, hold):
        """``hold`` ((B,) bool: lanes that keep their book this bar) on the lanes' back end (a
        bool on the scalar one); errors name the expected shape."""
        mask = np.asarray(hold.detach().cpu() if isinstance(hold, torch.Tensor) else hold, dtype=bool)
        if mask.reshape(-1).shape != (self.num_envs,):
            raise self.InputError(
                f"hold must be a ({self.num_envs},) bool mask (one per account), got shape {mask.shape}"
            )
        mask = mask.reshape(-1)
        return bool(mask[0]) if self.xp.name == "scalar" else torch.as_tensor(mask, device=self.device)

    def _keep(self, new, old):
        """``new`` on active lanes, ``old`` on frozen ones ((B,) or (B, N) arrays)."""
        act = self.active
        return self.xp.where(act if getattr(new, "ndim", 1) < 2 else act[:, None], new, old)

    def _finish(self, obs, done, info):
        """The end of a step where some lane is ``done``: auto-reset finished lanes
        (``info["final_obs"]``, ``info["done"]``) or freeze them until `reset`. Returns the
        observation to hand back."""
        if self.autoreset:
            info["final_obs"] = obs
            info["done"] = done
            self._reset_lanes(done)
            return self.observe()
        self.active = self.active & self.xp.logical_not(done)
        self._all_active = False
        return obs
