"""`PortfolioCore`: B accounts x N assets stepping together over one close-only panel.

The action of an account is a vector of N target weights (fractions of post-cost equity held
in each asset after the fill); cash is the rest, ``1 - sum(w)``. Long-only by default
(``w >= 0``, ``sum(w) <= 1``); with ``long_only=False`` shorts are allowed under
``sum(|w|) <= gross_leverage``. Layout, costs, band and timing: docs/environment.md.

Timing (no look-ahead): the decision at bar t sees features up to row t and closes up to t;
orders fill at the next bar's close (``fill_price="next_close"``) or, where the panel has
opens, its open (``fill_price="next_open"``; a close-only panel fills at closes), slippage
against the trader, commission on traded notional; the mark is at ``close[t+1]`` where shorts
pay borrow; the reward (``config.reward``, :func:`.engine.reward_step`) is a function of
``equity[t] -> equity[t+1]`` net of all costs.

This core is the account engine (:class:`.engine.AccountEngine`: episode starts, lane state,
rewards, auto-reset) at N >= 1. Execution goes through the one kernel (`execution.py`, the
same functions the single-asset core and the paper broker call) on (B, N) tensors:
``fill_price_and_costs`` (fill price, commission, slippage cost per asset) and ``settle``
(cash, borrow and equity; the asset axis summed in a fixed order). What the kernel leaves to
an N-asset caller is done here: the post-cost equity ``E`` shared by the N assets is solved jointly
(a contraction ``E = E0 - costs(E) - borrow(E)``, solved to float precision by `_solve` /
`_iterate` (closed form per account around one (B, N) term, a Newton or Aitken jump, the plain
iteration's stopping rule), then shrunk by a relative 1e-12 so float rounding never overdraws
cash), and each traded asset ends at ``w_i * E / ref[t+1]`` shares (whole shares: truncated
toward zero).

No-trade band: an asset whose ``|w_i - current_i| < band`` (current weight just before the
fill, at the fill reference price) is not traded and keeps its shares; if the kept assets plus the
traded targets would break the bound (``sum <= 1`` long-only, gross ``<= gross_leverage``),
the traded targets are scaled down together; if the book after costs and borrow would still break
the bound (the kept weights grow as costs shrink the equity), that lane ignores the band on that
bar and trades every asset to its target (``info["band_off"]``).

Not-yet-listed tickers (NaN close at bar t) are not tradable at a decision at bar t: a
non-zero target on one is an error naming the ticker (`PortfolioInputError`). The gymnasium
facades (`portfolio_gym.py`) map raw actions to weights and give such tickers weight 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from ..panel import PortfolioInputError
from . import execution as ex
from .config import EnvConfig
from .engine import AccountEngine
from .observation import build_windows
from .torch_ops import TorchOps

_SOLVE_SHRINK = 1e-12  # the solved post-cost equity is shrunk by this (relative): never overdraw
_WEIGHT_TOL = 1e-9  # sum / gross of the weights may exceed its bound by this much (then rescaled)
_SOLVE_TOL = 1e-15  # the joint sizing stops once a step moves the equity by <= this (relative to E0)
_SOLVE_MAX_ITER = 100


def _check_panel(close: np.ndarray, features: np.ndarray, tickers: Sequence[str]) -> np.ndarray:
    """The tradable mask (T, N): True from each ticker's first finite close; errors name the ticker."""
    if close.ndim != 2:
        raise PortfolioInputError(f"close must be a (dates, tickers) array, got shape {close.shape}")
    T, N = close.shape
    if len(tickers) != N or len(set(tickers)) != N:
        raise PortfolioInputError(
            f"tickers must be {N} distinct names (one per close column), got {tickers!r}"
        )
    if features.ndim != 3 or features.shape[:2] != (T, N):
        raise PortfolioInputError(
            f"features must be a (dates, tickers, features) array of shape ({T}, {N}, F), "
            f"got {features.shape}"
        )
    finite = np.isfinite(close)
    for j, name in enumerate(tickers):
        col = finite[:, j]
        if not col.any():
            raise PortfolioInputError(f"ticker {name!r} has no finite close; drop it from the universe")
        first = int(np.argmax(col))
        if not col[first:].all():
            bad = first + int(np.argmin(col[first:]))
            raise PortfolioInputError(
                f"ticker {name!r} has a missing close at row {bad} after its first bar (row {first}); "
                "only a leading block of NaN (not listed yet) is supported: fill or drop the gap"
            )
        if (close[first:, j] <= 0).any():
            raise PortfolioInputError(f"ticker {name!r} has a non-positive close; prices must be > 0")
    return finite


class PortfolioCore(AccountEngine):
    """B accounts over N assets (the engine with joint sizing); see the module docstring and
    docs/environment.md.

    Parameters
    ----------
    close : (T, N) closes, NaN before a ticker's first bar (``Universe.field("close")``).
    features : (T, N, F) features the caller provides (e.g. scaled log returns); row t may
        only use data up to bar t. NaN (not listed yet) is shown as 0 in the observation.
    tickers : the N names (used in error messages).
    num_envs, seed, autoreset : as `BatchedTradingCore`.
    opens : (T, N) opens (real traded prices), or None for a close-only panel. With
        ``config.fill_price == "next_open"`` orders fill at the next bar's open; without opens
        they fill at the next close.
    """

    InputError = PortfolioInputError
    LANE_STATE = {
        "cash": "cap",
        "shares": (0.0, "asset"),
        "equity": "cap",
        "peak": "cap",
        "dd": 0.0,
        "dsr_a": 0.0,
        "dsr_b": 0.0,
    }

    def __init__(
        self,
        close,
        features,
        tickers: Sequence[str],
        config: EnvConfig | None = None,
        num_envs: int = 1,
        seed: int | None = None,
        *,
        autoreset: bool = True,
        dates=None,
        opens=None,
    ) -> None:
        self.config = config = config or EnvConfig()
        if not isinstance(num_envs, int) or num_envs < 1:
            raise PortfolioInputError(f"num_envs must be a positive integer, got {num_envs!r}")
        close = np.asarray(close, dtype=np.float64)
        features = np.asarray(features, dtype=np.float32)
        self.tickers = tuple(str(t) for t in tickers)
        tradable = _check_panel(close, features, self.tickers)
        T, N = close.shape
        W = config.window
        self.num_envs, self.n_assets, self.n_bars, self.autoreset = num_envs, N, T, autoreset
        self.dates = dates
        self.device = torch.device(config.resolve_device())
        self.xp = TorchOps(self.device)
        F = features.shape[2]
        self.n_features = F
        self.feature_dim = N * W * F
        self.obs_dim = self.feature_dim + 2 * N + 1
        dev = self.device
        # row-major (C order) tables: a step gathers B rows; a column-major array (pandas'
        # .to_numpy() often gives one) would make each gather ~10x slower
        self.close = torch.as_tensor(
            np.ascontiguousarray(np.where(tradable, close, 1.0)), dtype=torch.float64, device=dev
        )
        self.tradable = torch.as_tensor(np.ascontiguousarray(tradable), device=dev)
        self._untradable = (~self.tradable).to(torch.float64)  # 1.0 where not listed yet
        # the price an order decided at bar t fills at on bar t+1 (before slippage)
        self.fill_ref = self.close
        if opens is not None and config.fill_price == "next_open":
            opens = np.asarray(opens, dtype=np.float64)
            if opens.shape != close.shape:
                raise PortfolioInputError(
                    f"opens must have the closes' shape {close.shape}, got {opens.shape}"
                )
            bad = tradable & ~(np.isfinite(opens) & (opens > 0))
            if bad.any():
                r, j = np.argwhere(bad)[0]
                raise PortfolioInputError(
                    f"ticker {self.tickers[j]!r} has no usable open at row {r} (got {opens[r, j]!r}) "
                    "where it has a close; fill_price='next_open' needs a positive open on every traded bar"
                )
            self.fill_ref = torch.as_tensor(
                np.ascontiguousarray(np.where(tradable, opens, 1.0)), dtype=torch.float64, device=dev
            )
        self.fills_at_open = self.fill_ref is not self.close
        self._late = not bool(tradable.all())  # some ticker lists after the panel's first bar
        # (T, obs_dim) float32 observation rows: the feature windows, zeros where observe() writes
        # the weights and cash weight, then the tradable flags; one gather builds an observation
        finite = np.nan_to_num(features, nan=0.0, posinf=0.0, neginf=0.0)  # not listed yet: 0
        table = build_windows(finite, W, 2 * N + 1)
        table[:, self.feature_dim + N + 1 :] = tradable
        self._obs_table = torch.as_tensor(table, device=dev)
        self.cap = float(config.initial_capital)
        self.rules = config.rules
        self.bound = 1.0 if config.long_only else float(config.gross_leverage)
        self._solver_constants()
        self._init_lanes(config, n_bars=T, seed=seed, what=("panel", "portfolio "))

    def _solver_constants(self) -> None:
        """Rates of the joint sizing (`_solve`) and its a-priori iteration count.

        ``implied(E) = E0 - cost(E) - borrow(E)`` is Lipschitz in E with constant
        ``lip = bound * (max(r_buy, r_sell) + borrow)`` (the traded target values move by at
        most ``bound`` per unit of E, each unit of trade costs at most ``max(r_buy, r_sell)``,
        each unit of short pays ``borrow``; the config keeps it <= 0.5). Long-only, the first
        step ``|implied(E0) - E0|`` is at most ``2 * max(r_buy, r_sell) * E0`` (trades of at most
        ``E0`` out plus ``E0`` in), so after k steps the step is at most ``2 r lip^(k-1) E0``;
        ``min_iter`` is the k where that bound reaches the stopping tolerance. Up to 3, the plain
        iteration runs ``min_iter`` steps without looking at the result, then checks the stopping
        rule once per step; above, `_iterate` jumps (Newton / Aitken) after two steps and checks
        from the third (so the bound is a shortcut, never an assumption: the rule decides)."""
        rules = self.rules
        self._r_buy = rules.k_mid + rules.k_half - 1.0  # cost per unit bought notional (haircut incl.)
        self._r_sell = 1.0 - (rules.k_mid - rules.k_half)  # cost per unit sold notional
        r = max(self._r_buy, self._r_sell, 0.0)
        lip = self.bound * (r + rules.borrow)
        if r == 0.0 or lip == 0.0:
            self._min_iter = 1  # no trading costs: the first step is (about) the answer; checked
        elif lip >= 1.0:
            self._min_iter = _SOLVE_MAX_ITER  # not reachable under the config's cap (0.5)
        else:
            k = 1 + math.log(_SOLVE_TOL / (2.0 * r)) / math.log(lip)
            self._min_iter = int(min(max(math.ceil(k), 1), _SOLVE_MAX_ITER))
        self._lip = min(lip, 0.99)
        # the stopping rule is first checked after this many steps (3: e1, e2, then f(Aitken point))
        self._check_from = 3 if self._min_iter > 3 else self._min_iter

    # ------------------------------------------------------------------ observation
    @property
    def windows(self) -> torch.Tensor:
        """(T, N*W*F) float32 feature windows per bar (a view of the observation table)."""
        return self._obs_table[:, : self.feature_dim]

    def weights(self) -> torch.Tensor:
        """(B, N) current weights at close[t]: shares * close / equity."""
        c = self.close.index_select(0, self.t)
        return self.shares * c / self.equity[:, None]

    def observe(self, weights: torch.Tensor | None = None) -> torch.Tensor:
        """(B, obs_dim) float32: N*W*F features, N weights, cash weight, N tradable flags.

        ``weights``: the current (B, N) weights if the caller has them (`step` does), else
        `weights()`."""
        w = self.weights() if weights is None else weights
        obs = self._obs_table.index_select(0, self.t)  # features and tradable flags of bar t
        fd, N = self.feature_dim, self.n_assets
        obs[:, fd : fd + N] = w  # float64 -> float32, as .float()
        obs[:, fd + N] = self.cash / self.equity
        return obs

    # ------------------------------------------------------------------ step
    def check_weights(self, weights) -> torch.Tensor:
        """(B, N) float64 target weights, validated: errors name the ticker or bound."""
        return self._check(weights)[0].clone()

    def _check(self, weights) -> tuple[torch.Tensor, torch.Tensor]:
        """`check_weights` without the defensive copy (may return the caller's tensor), and the
        (B,) sum (long-only) or gross of the returned weights."""
        B, N = self.num_envs, self.n_assets
        w = torch.as_tensor(weights, dtype=torch.float64).to(self.device)
        if w.shape != (B, N):
            if w.numel() == B * N:
                w = w.reshape(B, N)
            else:
                raise PortfolioInputError(
                    f"target weights must have shape ({B}, {N}) (accounts, tickers), got {tuple(w.shape)}"
                )
        # All checks in one host read: NaN/inf make the sum (or gross) NaN/inf, which fails the
        # bound test; -inf fails the sign test (long-only) or makes the gross inf. On a failure
        # `_explain` runs the checks one by one and raises the message naming the culprit.
        total = w.sum(1) if self.config.long_only else w.abs().sum(1)
        probe = [total.max()]
        if self.config.long_only:
            probe.append(w.amin())
        if self._late:  # |w| on not-yet-listed tickers (NaN if w is): must be 0
            probe.append((w * self._untradable.index_select(0, self.t)).abs().amax())
        vals = torch.stack(probe).tolist()
        ok = vals[0] <= self.bound * (1.0 + _WEIGHT_TOL)  # False for NaN
        if self.config.long_only:
            ok = ok and vals[1] >= 0.0
        if self._late:
            ok = ok and vals[-1] == 0.0
        if not ok:
            return self._explain(w, total)
        if vals[0] > self.bound:  # within the rounding tolerance: rescale onto the bound
            w = w * torch.where(total > self.bound, self.bound / total, 1.0)[:, None]
            total = w.sum(1) if self.config.long_only else w.abs().sum(1)
        return w, total

    def _explain(self, w, total):
        """The checks of `_check` one at a time: raises the error naming the ticker or bound."""
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
        raise AssertionError("check_weights: the batched check failed but no single check did")

    def _solve(self, w, w_total, tm, v, v_total, e0, shares, ref):
        """Joint sizing (see the module docstring): the traded shares (B, N).

        ``w_total``: the (B,) sum (long-only) or gross of ``w``; ``tm``: the trade mask as float64
        (1.0 traded, 0.0 kept), or None: every asset trades and the targets are within the bound
        ("free" sizing, see `_orders`: no masks, the room never binds, ``x(E) = E``);
        ``v = shares * ref``: the values at the fill reference price, summed in ``v_total``;
        ``e0 = cash + v_total``: the equity before the fill.

        The post-cost equity E solves ``E = implied(E) = e0 - cost(E) - borrow(E)``: each traded
        asset i moves from ``v_i`` to the target value ``w_i * x(E)`` (``x(E) = min(E, room(E) /
        sum_traded |w|)``, ``room`` what the bound leaves beside the kept assets), costing
        ``r_buy`` per unit bought and ``r_sell`` per unit sold, and shorts pay ``borrow`` per unit
        at the mark. Both are written in (B,) closed form around the one (B, N) term
        ``S = sum_i |w_i x - v_i|``: ``cost = a * (x * sum w - sum v) + h * S`` over the traded
        assets, ``a = (r_buy - r_sell) / 2``, ``h = (r_buy + r_sell) / 2``; the short value of the
        traded targets is ``x * sum_i max(-w_i, 0)`` (``-x * sum_i max(w_i, 0)`` if ``x < 0``).
        ``implied`` is a contraction (`_solver_constants`), solved by `_iterate` to its stopping
        rule; then E is shrunk by a relative 1e-12 so rounding never overdraws cash."""
        long_only, bound = self.config.long_only, self.bound
        free = tm is None
        if free:  # every asset traded (or kept with nothing held and target 0: the same)
            w_tr, v_tr, sum_v, tr_total = w, v, v_total, w_total
            sum_w = w_total if long_only else w.sum(1)
            keep_total = keep_short = 0.0
        else:
            w_tr, v_tr = w * tm, v * tm  # w, v where traded, else 0 (exact)
            kept = v - v_tr  # v where kept, else 0 (exact)
            sum_w, sum_v = w_tr.sum(1), v_tr.sum(1)
            if long_only:
                tr_total, keep_total = sum_w, kept.sum(1)
            else:
                tr_total, keep_total = w_tr.abs().sum(1), kept.abs().sum(1)
            keep_short = torch.clamp(-kept, min=0.0).sum(1) if self.rules.borrow > 0 else 0.0
        a = 0.5 * (self._r_buy - self._r_sell)
        h = 0.5 * (self._r_buy + self._r_sell)
        c0, aw = e0 + a * sum_v, a * sum_w  # implied(E) = c0 - x * aw - h * S - borrow
        b = self.rules.borrow
        if b > 0.0:
            short_w = 0.5 * (tr_total - sum_w)  # sum max(-w, 0) over traded assets
            long_w = 0.5 * (tr_total + sum_w)  # sum max(w, 0)

        def x_of(e):
            if free:
                return e
            room = torch.clamp(e - keep_total if bound == 1.0 else bound * e - keep_total, min=0.0)
            return torch.fmin(e, room / tr_total)  # room / 0 is inf or NaN: fmin keeps e

        def implied(e, slope=False):
            x = x_of(e)
            d = torch.addcmul(v_tr, w_tr, x[:, None], value=-1.0)  # v_i - w_i x (0 where kept)
            e_next = torch.addcmul(c0, x, aw, value=-1.0)
            if slope:  # d implied / dE on this piece (free: x = E): -a sum w + h sum sign(d_i) w_i
                fprime = d.sign().mul_(w_tr).sum(1).mul_(h).sub_(aw)
            # h * S (torch's row sum, not a BLAS matrix-vector product: MKL's result depends on
            # the memory alignment of the rows, which would make runs irreproducible)
            e_next.sub_(d.abs_().sum(1), alpha=h)
            if b > 0.0:
                short = torch.where(x >= 0.0, x * short_w, -x * long_w) + keep_short
                e_next = e_next - short * b
                if slope:
                    fprime = fprime - b * torch.where(x >= 0.0, short_w, -long_w)
            return (e_next, fprime) if slope else e_next

        e = self._iterate(implied, e0, newton=free)
        x = x_of(e * (1.0 - _SOLVE_SHRINK))
        # traded: the target's shares minus the held ones; kept: 0 (x * 0 + 0.0 is +0.0, exact;
        # free: kept assets have w = 0 and no shares, so 0 * x / ref - 0 = 0 unmasked)
        delta = (w_tr * x[:, None]).div_(ref).sub_(shares)  # in place: fewer (B, N) buffers
        return (delta if free else delta.mul_(tm)).add_(0.0)

    def _iterate(self, implied, e0, newton: bool):
        """The fixed point of the contraction ``f = implied`` (factor <= ``self._lip``) from ``e0``:
        the first ``f(e)`` with ``|f(e) - e| <= 1e-15 * |e0|`` in every lane (then ``|f(e) - E*| <=
        lip / (1 - lip) * 1e-15 * |e0|``), at most 100 steps.

        Where the a-priori count is above 3, a jump first. ``f`` is piecewise linear in E (a piece
        ends where a trade changes side or the bound starts to bind), so from ``e1 = f(e0)`` the
        linear model of the piece at ``e1`` gives its fixed point in one step:
        ``e1 + (f(e1) - e1) / (1 - s)`` with ``s = f'(e1)`` from ``implied(e, slope=True)``
        (``newton``; the free case, x(E) = E); otherwise the Aitken slope
        ``s = (f(e1) - e1) / (e1 - e0)`` (clamped to ``[-lip, lip]``; exact when ``e0`` is on the
        same piece, less often: the first step is the large one, trades near their side change
        flip between ``e0`` and ``e1``). The stopping rule is checked on ``f`` of that point; where
        it fails (a piece changes in some lane), the plain iteration goes on from there, checked
        every step. So the certificate is the one of the plain iteration."""
        tol = _SOLVE_TOL * e0.abs()
        e, it = e0, 0
        if self._min_iter > 3:
            e1 = implied(e0)
            if newton:
                e2, fprime = implied(e1, slope=True)
                e = torch.addcdiv(e1, e2 - e1, 1.0 - fprime)
            else:
                e2 = implied(e1)
                step = e2 - e1
                slope = torch.nan_to_num(step / (e1 - e0), nan=0.0).clamp_(-self._lip, self._lip)
                e = torch.addcdiv(e2, slope * step, 1.0 - slope)
            it = 2
        while True:
            e_next = implied(e)
            it += 1
            converged = it >= self._check_from and bool(((e_next - e).abs() <= tol).all())
            e = e_next
            if converged or it >= _SOLVE_MAX_ITER:
                return e

    def _orders(self, w, w_total, cur_w, v, v_total, e0, cash, sh, c, hold=None):
        """(traded shares (B, N), lanes that ignored the band (B,) or None without a band): every
        asset whose target differs from its current weight by at least the band trades to it. The
        kept assets' weights grow when costs shrink the equity (and shorts can drift past the gross
        limit), so a lane whose book would then break the bound trades every asset to its target on
        this bar instead (targets are within the bound)."""
        band = self.config.band
        if band > 0 or hold is not None:
            trade = (w - cur_w).abs() >= band if band > 0 else (w != cur_w)
            if hold is not None:
                trade = trade & ~hold[:, None]
            tm = trade.to(torch.float64)
        else:  # no band: an asset is kept iff its target equals its current weight (float masks:
            # no bool pass). If no kept asset holds anything (then its target is 0 too) and the
            # targets are within the bound, every asset can be treated as traded ("free" sizing:
            # no masks, the room never binds); one host read decides.
            km = torch.eq(w, cur_w, out=torch.empty_like(w))  # 1.0 where kept
            kv = km * v  # kept values (exact)
            probe = torch.stack([(kv if self.config.long_only else kv.abs_()).sum(), w_total.max()])
            kept_value, w_max = probe.tolist()
            tm = None if kept_value == 0.0 and w_max <= self.bound else km.neg_().add_(1.0)
        delta = self._solve(w, w_total, tm, v, v_total, e0, sh, c)
        band_off = None
        if band > 0:
            band_off = self._breaks_bound(delta, cash, sh, c)
            if hold is not None:
                band_off = band_off & ~hold
            if bool(band_off.any()):
                trade = torch.where(band_off[:, None], w != cur_w, trade)
                delta = self._solve(w, w_total, trade.to(torch.float64), v, v_total, e0, sh, c)
        return delta, band_off

    def _breaks_bound(self, delta, cash, sh, c):
        """(B,) bool: the book after filling ``delta`` at ``c`` (costs and borrow paid) has
        ``sum(w) > 1`` (long-only) or ``sum(|w|) > gross_leverage``, beyond float rounding."""
        fill, commission, _ = ex.fill_price_and_costs(self.xp, self.rules, c, delta)
        _, value, _, _, equity, _ = ex.settle(self.xp, self.rules, cash, sh, delta, fill, commission, c)
        wt = value / equity[:, None]
        total = wt.sum(1) if self.config.long_only else wt.abs().sum(1)
        return total > self.bound * (1.0 + 1e-9)

    def _hold(self, hold, weights):
        """The (B,) hold mask (or None) and the weights with held lanes' rows zeroed (not used)."""
        if hold is None:
            return None, weights
        hold = self._hold_mask(hold)
        weights = torch.as_tensor(weights, dtype=torch.float64).to(self.device)
        if weights.shape == (self.num_envs, self.n_assets):
            weights = torch.where(hold[:, None], 0.0, weights)  # not used: the lane keeps its book
        return hold, weights

    def _order_book(self, w, w_total, hold):
        """(bar t+1, close[t+1] (B, N), fill reference (B, N), traded shares (B, N), band_off
        lanes or None) for target weights ``w`` (validated; ``w_total`` their sum or gross),
        filled at the next bar's reference price (its close, or its open: ``fill_price``)."""
        t1 = torch.clamp(self.t + 1, max=self.last_bar)
        c = self.close.index_select(0, t1)  # (B, N) the mark: close[t+1]
        ref = self.fill_ref.index_select(0, t1) if self.fills_at_open else c
        sh = self.shares
        delta, band_off = self._size(w, w_total, self.cash, sh, ref, hold)
        if self.rules.granularity == "whole":  # the kernel's rule: holdings truncated toward zero
            delta = torch.trunc(sh + delta).sub_(sh)
        return t1, c, ref, delta, band_off

    def set_untradable(self, columns) -> None:
        """Mark whole ticker columns (bool mask (N,)) not tradable on every bar, in the weight checks
        and the observation alike: for a caller that gives a ticker with no price at all in its
        window a placeholder close (the paper account's feed before a listing)."""
        cols = torch.as_tensor(np.asarray(columns, dtype=bool), device=self.device)
        if cols.shape != (self.n_assets,):
            raise PortfolioInputError(
                f"columns must be a ({self.n_assets},) bool mask, got {tuple(cols.shape)}"
            )
        self.tradable[:, cols] = False
        self._untradable = (~self.tradable).to(torch.float64)
        self._late = not bool(self.tradable.all())
        flags = self._obs_table[:, self.feature_dim + self.n_assets + 1 :]
        flags[:, cols] = 0.0

    def size_orders(self, weights, cash, shares, close, hold=None) -> tuple[torch.Tensor, torch.Tensor]:
        """The joint post-cost sizing `step` uses, for a given book: traded shares (B, N) and the
        lanes that ignored the band (B,) when (B,) ``cash`` and (B, N) ``shares`` fill validated
        target ``weights`` at the reference ``close`` (B, N). For callers that keep their own
        book, e.g. the paper account (deployment/account.py)."""
        w = torch.as_tensor(weights, dtype=torch.float64).to(self.device)
        w_total = w.sum(1) if self.config.long_only else w.abs().sum(1)
        delta, band_off = self._size(w, w_total, cash, shares, close, hold)
        return delta, torch.zeros_like(cash, dtype=torch.bool) if band_off is None else band_off

    def _size(self, w, w_total, cash, sh, ref, hold):
        """`_orders` for the book (cash, shares) at the fill reference ``ref``: the values, the
        equity before the fill and the weights just before it."""
        v = sh * ref
        v_total = v.sum(1)
        e0 = cash + v_total
        return self._orders(w, w_total, v / e0[:, None], v, v_total, e0, cash, sh, ref, hold)

    def step(self, weights, hold=None):
        """Advance every lane one bar to `weights` ((B, N)). Returns (obs, reward, terminated,
        truncated, info); info holds (B,) equity, cash, cost, commission, slippage, borrow,
        turnover, and (B, N) weights (at the mark), shares, traded_shares, fill_price, bar.

        ``hold`` ((B,) bool, optional): lanes that keep their shares this bar (no order, no
        cost; their weights drift with prices), e.g. buy-and-hold or between monthly rebalances.
        Their ``weights`` are ignored (pass anything of the right shape, e.g. zeros)."""
        return super().step(weights, hold)

    def _trade(self, weights, hold):
        """The engine's step hook: validated weights, the joint sizing, fill and settlement."""
        hold, weights = self._hold(hold, weights)
        t1, c, ref, delta, band_off = self._order_book(*self._check(weights), hold)
        prev = self.equity
        fill, commission, slippage = ex.fill_price_and_costs(self.xp, self.rules, ref, delta)
        self.shares, val, borrow, self.cash, self.equity, _ = ex.settle(
            self.xp, self.rules, self.cash, self.shares, delta, fill, commission, c
        )
        return t1, prev, (val, ref, delta, fill, commission, slippage, borrow, band_off)

    def _emit(self, out) -> tuple:
        """(observation, info) after `_end_step` committed the bar."""
        val, ref, delta, fill, commission, slippage, borrow, band_off = out
        if band_off is None:
            band_off = torch.zeros_like(self.cash, dtype=torch.bool)
        if not self._all_active:  # frozen lanes (autoreset=False): no order, no cost
            act, zero = self.active, lambda x: self._keep(x, 0.0)  # noqa: E731
            delta, commission, slippage, borrow = map(zero, (delta, commission, slippage, borrow))
            band_off = band_off & act
            c = self.close.index_select(0, self.t)
            ref = self.fill_ref.index_select(0, self.t) if self.fills_at_open else c
            val = self.shares * c
        commission_t, slippage_t = commission.sum(1), slippage.sum(1)
        info = {
            "equity": self.equity,
            "cash": self.cash,
            "shares": self.shares,
            "weights": val.div_(self.equity[:, None]),  # in place: val is not used after this
            "traded_shares": delta,
            "fill_price": _one_or_nan(delta).mul_(fill),
            "commission": commission_t,
            "slippage": slippage_t,
            "borrow": borrow,
            "cost": commission_t + slippage_t + borrow,
            "turnover": delta.abs().mul_(ref).sum(1),
            "bar": self.t,
            "band_off": band_off,
        }
        return self.observe(info["weights"]), info  # the weights at close[t1] are the info's


def _one_or_nan(delta: torch.Tensor) -> torch.Tensor:
    """1.0 where ``delta != 0``, NaN where it is 0 (``nz / nz`` with ``nz`` the float mask): the
    fill price times it is the fill price or NaN (no fill), without a bool pass (slow on CPU)."""
    nz = torch.ne(delta, 0.0, out=torch.empty_like(delta))
    return nz.div_(nz)
