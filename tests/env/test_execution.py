"""The execution kernel (env/execution.py) and observation layout (env/observation.py) themselves.

Hand-computed fills, costs and sizing, then properties on both back ends and on (B, N)
arrays: long-only cash never goes negative, costs are exactly what the fill loses at the
reference price, exits flatten exactly, whole-share holdings are integers no larger than the
fractional ones, and every function is element-wise (a (B, N) tensor gives, element by
element, the scalar back end's floats bit for bit).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from reinforce_strategy_creator.env import EnvConfig, ExecutionRules, fill_and_costs, observation_from_window
from reinforce_strategy_creator.env import execution as ex
from reinforce_strategy_creator.env.observation import BARS_HELD_SCALE
from reinforce_strategy_creator.env.ops import SCALAR
from reinforce_strategy_creator.env.torch_ops import TorchOps

TORCH = TorchOps("cpu")
SETTINGS = settings(max_examples=200, deadline=None)

prices = st.floats(1.0, 5_000.0)
bps = st.floats(0.0, 100.0)
granularities = st.sampled_from(("fractional", "whole"))


# ----------------------------------------------------------------------- hand-computed
def test_buy_sized_on_post_cost_equity_hand_computed():
    """10,000 cash, flat, target 0.5 at ref 100; 10 bps commission, 5 bps slippage.

    x = 0.5 * 10000 / 100 = 50 shares frictionless; k = 1.0005 * 1.001 = 1.0015005 (a buy, plus
    the 1e-12 haircut); delta = 50 / (0.5 + 0.5 * k) = 49.9625156226541 (exact fraction).
    """
    rules = ExecutionRules.from_bps(10, 5)
    delta, fill, commission, slippage = ex.execute_order(SCALAR, rules, 0.5, 10_000.0, 0.0, 100.0)
    assert delta == pytest.approx(49.9625156226541, rel=1e-11)
    assert fill == pytest.approx(100.05, rel=1e-15)
    assert commission == pytest.approx(4.998749688046543, rel=1e-11)  # delta * 100.05 * 0.001
    assert slippage == pytest.approx(2.498125781132705, rel=1e-11)  # delta * 100 * 0.0005
    cash = ex.cash_after_fill(10_000.0, delta, fill, commission)
    # half of the post-cost equity (valued at the reference price) is in the stock
    assert delta * 100.0 == pytest.approx(cash, rel=1e-9)
    assert (fill, commission, slippage) == fill_and_costs(100.0, delta, 10, 5)


def test_whole_shares_truncate_the_holding_hand_computed():
    rules = ExecutionRules.from_bps(10, 5, granularity="whole")
    delta, fill, commission, slippage = ex.execute_order(SCALAR, rules, 0.5, 10_000.0, 0.0, 100.0)
    assert delta == 49.0  # trunc(49.96...)
    assert (fill, commission, slippage) == pytest.approx((100.05, 4.90245, 2.45), rel=1e-13)
    assert ex.cash_after_fill(10_000.0, delta, fill, commission) == pytest.approx(5092.64755, rel=1e-13)
    # a short target truncates toward zero too: -49.9... -> -49 (never a larger short)
    short, *_ = ex.execute_order(SCALAR, rules, -0.5, 10_000.0, 0.0, 100.0)
    assert short == -49.0


def test_exit_sale_and_flip_to_short_with_borrow_hand_computed():
    rules = ExecutionRules.from_bps(10, 5, borrow_bps_per_bar=4)
    delta, fill, commission, slippage = ex.execute_order(SCALAR, rules, 0.0, 0.0, 100.0, 50.0)
    assert delta == -100.0  # target 0 sells exactly what is held
    assert (fill, commission, slippage) == pytest.approx((49.975, 4.9975, 2.5), rel=1e-13)
    assert ex.cash_after_fill(0.0, delta, fill, commission) == pytest.approx(4992.5025, rel=1e-13)

    free = ExecutionRules(0.0, 0.0, 4e-4)
    delta, fill, commission, slippage = ex.execute_order(SCALAR, free, -1.0, 0.0, 10.0, 100.0)
    assert (delta, fill, commission, slippage) == (-20.0, 100.0, 0.0, 0.0)  # 10 long -> 10 short
    cash = ex.cash_after_fill(0.0, delta, fill, commission)
    assert cash == 2000.0 and cash + (10.0 + delta) * 100.0 == 1000.0  # equity unchanged at ref
    borrow, cash, equity = ex.mark(SCALAR, free, cash, -10.0, 110.0)
    assert (borrow, cash, equity) == pytest.approx((0.44, 1999.56, 899.56), rel=1e-13)
    assert ex.mark(SCALAR, free, 5.0, 3.0, 110.0) == (0.0, 5.0, 335.0)  # longs pay no borrow


def test_position_after_hand_computed():
    pa = lambda *a: ex.position_after(SCALAR, *a)  # noqa: E731
    assert pa(0.0, 10.0, 100.0, 1.0, 0.0) == (10.0, 100.0, 1.0)  # open: entry = fill, 1 bar
    assert pa(10.0, 0.0, 0.0, 100.0, 1.0) == (10.0, 100.0, 2.0)  # hold: one more bar
    assert pa(10.0, 30.0, 120.0, 100.0, 2.0) == (40.0, 115.0, 3.0)  # add: (10*100 + 30*120) / 40
    assert pa(40.0, -15.0, 130.0, 115.0, 3.0) == (25.0, 115.0, 4.0)  # reduce: entry kept
    assert pa(25.0, -35.0, 90.0, 115.0, 4.0) == (-10.0, 90.0, 1.0)  # flip: a new position
    assert pa(-10.0, 10.0, 95.0, 90.0, 1.0) == (0.0, 1.0, 0.0)  # flat: reset
    assert pa(0.0, 0.0, 0.0, 1.0, 0.0) == (0.0, 1.0, 0.0)  # stays flat
    # the core's mask: lanes without a trade keep their entry even if delta is passed as 0
    assert ex.position_after(SCALAR, 5.0, 0.0, 80.0, 60.0, 3.0, False) == (5.0, 60.0, 4.0)


def test_observation_layout_hand_computed():
    feats = np.array([[1, 2], [3, 4], [5, 6]], dtype=np.float32)  # W = 3 rows, oldest first
    cfg = EnvConfig(window=3, positions=(-1.0, 0.0, 1.0), device="cpu")
    obs = observation_from_window(
        feats, cfg, held=-1.0, shares=-4.0, last_close=90.0, entry=100.0, bars_held=300.0
    )
    expected = [1, 2, 3, 4, 5, 6, -1.0, -1.0 * (90 / 100 - 1), 1.0]  # bars held capped at 252/252
    np.testing.assert_array_equal(obs, np.asarray(expected, dtype=np.float32))
    assert obs.dtype == np.float32 and BARS_HELD_SCALE == 252
    cfg = EnvConfig(window=3, obs_position=False, obs_unrealised=False, device="cpu")
    np.testing.assert_array_equal(
        observation_from_window(feats, cfg, held=1, shares=1, last_close=1, entry=1, bars_held=126),
        np.asarray([1, 2, 3, 4, 5, 6, 0.5], dtype=np.float32),
    )


def test_bad_rules_are_named():
    with pytest.raises(ValueError, match="granularity must be one of"):
        ExecutionRules(0.0, 0.0, granularity="lots")
    with pytest.raises(ValueError, match="the commission rate must be a fraction"):
        ExecutionRules.from_bps(1e4, 0.0)


# ----------------------------------------------------------------------- properties
@st.composite
def accounts(draw, long_only=False, whole=False):
    lo = 0.0 if long_only else -1.0
    target = draw(st.floats(lo, 1.0))
    shares = draw(st.floats(0.0 if long_only else -2_000.0, 2_000.0))
    if whole:
        shares = float(math.trunc(shares))
    ref = draw(prices)
    cash = draw(st.floats(0.0, 1e6)) if long_only else draw(st.floats(-1e6, 1e6))
    if cash + shares * ref <= 1.0:  # a live account: positive equity
        cash = abs(shares) * ref * 2.0 + 1_000.0
    rules = ExecutionRules.from_bps(
        draw(bps), draw(bps), draw(st.floats(0.0, 5.0)), "whole" if whole else "fractional"
    )
    return rules, target, cash, shares, ref


@SETTINGS
@given(st.data(), granularities)
def test_long_only_cash_never_negative(data, granularity):
    rules, target, cash, shares, ref = data.draw(accounts(long_only=True, whole=granularity == "whole"))
    delta, fill, commission, _ = ex.execute_order(SCALAR, rules, target, cash, shares, ref)
    assert ex.cash_after_fill(cash, delta, fill, commission) >= 0.0
    assert shares + delta >= 0.0


@SETTINGS
@given(st.data(), granularities)
def test_costs_are_exactly_what_the_fill_loses_at_the_reference_price(data, granularity):
    rules, target, cash, shares, ref = data.draw(accounts(whole=granularity == "whole"))
    delta, fill, commission, slippage = ex.execute_order(SCALAR, rules, target, cash, shares, ref)
    turnover = abs(delta) * ref
    assert slippage == pytest.approx(turnover * rules.slippage, rel=1e-12, abs=1e-12)
    assert commission == pytest.approx(
        turnover * (1 + math.copysign(rules.slippage, delta)) * rules.commission, rel=1e-12, abs=1e-12
    )
    before = cash + shares * ref
    after = ex.cash_after_fill(cash, delta, fill, commission) + (shares + delta) * ref
    assert before - after == pytest.approx(commission + slippage, rel=1e-9, abs=1e-6 * (1 + abs(before)))


@SETTINGS
@given(st.data())
def test_fractional_target_is_the_fraction_of_post_cost_equity(data):
    rules, target, cash, shares, ref = data.draw(accounts())
    delta, fill, commission, _ = ex.execute_order(SCALAR, rules, target, cash, shares, ref)
    held = (shares + delta) * ref
    equity = ex.cash_after_fill(cash, delta, fill, commission) + held
    assert held == pytest.approx(target * equity, rel=1e-9, abs=1e-6 * (abs(cash) + abs(shares) * ref))


@SETTINGS
@given(st.data(), granularities)
def test_exits_flatten_exactly(data, granularity):
    rules, _, cash, shares, ref = data.draw(accounts(whole=granularity == "whole"))
    delta, *_ = ex.execute_order(SCALAR, rules, 0.0, cash, shares, ref)
    assert shares + delta == 0.0
    assert ex.position_after(SCALAR, shares, delta, ref, 1.0, 5.0) == (0.0, 1.0, 0.0)


@SETTINGS
@given(st.data())
def test_whole_holdings_are_integers_never_larger_than_fractional(data):
    rules, target, cash, shares, ref = data.draw(accounts(whole=True))
    frac = ExecutionRules(rules.commission, rules.slippage, rules.borrow, "fractional")
    whole = shares + ex.execute_order(SCALAR, rules, target, cash, shares, ref)[0]
    exact = shares + ex.execute_order(SCALAR, frac, target, cash, shares, ref)[0]
    assert whole == math.trunc(whole)
    assert abs(whole) <= abs(exact) and abs(exact - whole) < 1.0


def test_no_trade_mask_trades_nothing():
    rules = ExecutionRules.from_bps(2, 3, granularity="whole")
    assert ex.execute_order(SCALAR, rules, 1.0, 1e4, 3.0, 10.0, False)[0] == 0.0
    f64 = lambda *x: torch.tensor(x, dtype=torch.float64)  # noqa: E731
    lanes = ex.execute_order(
        TORCH,
        rules,
        f64(1.0, 1.0),
        f64(1e4, 1e4),
        f64(3.0, 3.0),
        f64(10.0, 10.0),
        torch.tensor([False, True]),
    )[0]
    assert lanes.tolist() == [0.0, 999.0]  # trunc(3 + 1000 / 1.00050006) - 3


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), granularity=granularities, n_assets=st.integers(1, 4))
def test_every_function_is_elementwise_on_b_by_n_arrays(seed, granularity, n_assets):
    """(B, N) torch tensors with per-asset cost rates give, element by element, exactly the
    floats of the scalar back end: a single-asset account's numbers do not depend on the shape
    around it (what an N-asset account will rely on)."""
    rng = np.random.default_rng(seed)
    B, N = 5, n_assets
    comm, slip, borrow = (rng.uniform(0, 0.005, N) for _ in range(3))
    target = rng.choice([-1.0, -0.5, 0.0, 0.3, 1.0], (B, N))
    shares = rng.normal(0, 50, (B, N))
    if granularity == "whole":
        shares = np.trunc(shares)
    ref, close = rng.uniform(10, 200, (B, N)), rng.uniform(10, 200, (B, N))
    cash = rng.uniform(1e3, 1e5, (B, N))
    entry, bars = rng.uniform(10, 200, (B, N)), rng.integers(0, 300, (B, N)).astype(float)
    trade = rng.random((B, N)) < 0.8

    t = lambda a: torch.as_tensor(a, dtype=torch.float64)  # noqa: E731
    lanes = ExecutionRules(t(comm), t(slip), t(borrow), granularity)
    d, f, c, s = ex.execute_order(TORCH, lanes, t(target), t(cash), t(shares), t(ref), torch.as_tensor(trade))
    cash_f = ex.cash_after_fill(t(cash), d, f, c)
    sh, en, ba = ex.position_after(TORCH, t(shares), d, f, t(entry), t(bars), torch.as_tensor(trade))
    bo, cash_m, eq = ex.mark(TORCH, lanes, cash_f, sh, t(close))
    for i in range(B):
        for j in range(N):
            one = ExecutionRules(float(comm[j]), float(slip[j]), float(borrow[j]), granularity)
            args = [float(a[i, j]) for a in (target, cash, shares, ref)]
            d1, f1, c1, s1 = ex.execute_order(SCALAR, one, *args, bool(trade[i, j]))
            cf1 = ex.cash_after_fill(args[1], d1, f1, c1)
            sh1, en1, ba1 = ex.position_after(
                SCALAR, args[2], d1, f1, float(entry[i, j]), float(bars[i, j]), bool(trade[i, j])
            )
            bo1, cm1, eq1 = ex.mark(SCALAR, one, cf1, sh1, float(close[i, j]))
            got = [float(x[i, j]) for x in (d, f, c, s, cash_f, sh, en, ba, bo, cash_m, eq)]
            assert got == [d1, f1, c1, s1, cf1, sh1, en1, ba1, bo1, cm1, eq1]
