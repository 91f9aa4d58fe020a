"""Property tests of the accounting, cost and timing invariants of the trading core."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reinforce_strategy_creator.env import BatchedTradingCore, EnvConfig, TradingEnv
from reinforce_strategy_creator.env.config import FILL_PRICES
from tests.support.env import market_from_returns

BACKENDS = ("torch", "scalar")
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def scenarios(draw, positions=(0.0, 1.0), continuous=False, max_bars=40):
    n = draw(st.integers(8, max_bars))
    rets = draw(st.lists(st.floats(-0.15, 0.15), min_size=n, max_size=n))
    gaps = draw(st.lists(st.floats(-0.08, 0.08), min_size=n, max_size=n))
    window = draw(st.integers(1, 4))
    steps = n - window
    if continuous:
        lo, hi = min(positions), max(positions)
        actions = draw(st.lists(st.floats(lo - 0.5, hi + 0.5), min_size=steps, max_size=steps))
    else:
        actions = draw(st.lists(st.integers(0, len(positions) - 1), min_size=steps, max_size=steps))
    costs = draw(st.tuples(st.floats(0, 50), st.floats(0, 50), st.floats(0, 5)))
    cfg = EnvConfig(
        window=window,
        fill_price=draw(st.sampled_from(FILL_PRICES)),
        positions=positions,
        continuous=continuous,
        commission_bps=costs[0],
        slippage_bps=costs[1],
        borrow_bps_per_bar=costs[2],
        episode_length=None,
        device="cpu",
    )
    return market_from_returns(rets, gaps), cfg, actions


def run_core(market, cfg, actions, backend="torch"):
    """Full-period single-lane run; returns list of per-step dicts of python floats."""
    core = BatchedTradingCore(market, cfg, 1, seed=0, autoreset=False, backend=backend, device="cpu")
    core.reset(starts=cfg.window - 1)
    one = (lambda x: x) if backend == "scalar" else (lambda x: x[0])
    out = []
    for a in actions:
        prev = dict(
            equity=float(one(core.equity)),
            shares=float(one(core.shares)),
            cash=float(one(core.cash)),
            t=int(one(core.t)),
        )
        arr = np.array([a], dtype=np.float64 if cfg.continuous else np.int64)
        obs, r, term, trunc, info = core.step(arr if backend == "scalar" else torch.as_tensor(arr))
        rec = {k: float(one(v)) for k, v in info.items()}
        rec["bar"] = int(rec["bar"])
        rec.update(
            reward=float(one(r)),
            terminated=bool(one(term)),
            truncated=bool(one(trunc)),
            prev=prev,
            obs=np.asarray(one(obs)).copy(),
        )
        out.append(rec)
        if rec["terminated"] or rec["truncated"]:
            break
    return out


@SETTINGS
@given(scenarios(positions=(0.0, 0.5, 1.0)), st.sampled_from(BACKENDS))
def test_long_only_cash_never_negative_equity_finite_and_log_rewards_telescope(s, backend):
    market, cfg, actions = s
    traj = run_core(market, cfg, actions, backend)
    assert len(traj) == market.n_bars - cfg.window  # full period: T - W steps
    assert traj[-1]["truncated"]
    for rec in traj:
        assert math.isfinite(rec["equity"]) and rec["equity"] > 0
        assert rec["cash"] >= 0.0
        assert rec["shares"] >= 0.0
    total = sum(r["reward"] for r in traj)
    assert total == pytest.approx(math.log(traj[-1]["equity"] / cfg.initial_capital), abs=1e-9)


@SETTINGS
@given(scenarios(positions=(0.0, 1.0), continuous=True))
def test_continuous_long_only_cash_never_negative(s):
    market, cfg, actions = s
    for rec in run_core(market, cfg, actions):
        assert rec["cash"] >= 0.0 and math.isfinite(rec["equity"])
        assert 0.0 <= rec["position"] <= 1.0


@SETTINGS
@given(scenarios(positions=(-1.0, -0.5, 0.0, 1.0)), st.sampled_from(BACKENDS))
def test_costs_exact_and_equity_reconciles_every_bar(s, backend):
    """Fill at bar t+1's open or close (environment.fill_price) +- slippage; commission/slippage/borrow
    exact; equity identity holds."""
    market, cfg, actions = s
    cm, sl, bw = cfg.commission_bps / 1e4, cfg.slippage_bps / 1e4, cfg.borrow_bps_per_bar / 1e4
    total_cost, total_formula = 0.0, 0.0
    ref = market.open if cfg.fill_price == "next_open" else market.close
    for rec in run_core(market, cfg, actions, backend):
        p, t1 = rec["prev"], rec["bar"]
        assert t1 == p["t"] + 1
        o, c, c_prev = ref[t1], market.close[t1], market.close[p["t"]]
        d = rec["traded_shares"]
        assert rec["shares"] == pytest.approx(p["shares"] + d, rel=1e-12, abs=1e-9)
        if d != 0.0:
            expected_fill = o * (1 + sl) if d > 0 else o * (1 - sl)
            assert rec["fill_price"] == pytest.approx(expected_fill, rel=1e-12)
            # target is a fraction of post-cost equity at the fill
            eq_open_after = p["cash"] + p["shares"] * o - rec["commission"] - rec["slippage"]
            assert rec["shares"] * o == pytest.approx(rec["position"] * eq_open_after, rel=1e-9, abs=1e-6)
        else:
            assert math.isnan(rec["fill_price"])
        formula = abs(d) * rec["fill_price"] * cm if d else 0.0
        assert rec["commission"] == pytest.approx(formula, rel=1e-12, abs=1e-12)
        assert rec["slippage"] == pytest.approx(abs(d) * o * sl, rel=1e-12, abs=1e-12)
        assert rec["borrow"] == pytest.approx(max(-rec["shares"], 0.0) * c * bw, rel=1e-12, abs=1e-12)
        assert rec["cost"] == pytest.approx(
            rec["commission"] + rec["slippage"] + rec["borrow"], rel=1e-12, abs=1e-12
        )
        # equity(t+1) = equity(t) + overnight P&L of old shares + intraday P&L of new shares - costs
        expected = p["equity"] + p["shares"] * (o - c_prev) + rec["shares"] * (c - o) - rec["cost"]
        assert rec["equity"] == pytest.approx(expected, abs=1e-6)  # far below a cent
        assert rec["cash"] + rec["shares"] * c == pytest.approx(rec["equity"], abs=1e-6)
        total_cost += rec["cost"]
        total_formula += (abs(d) * (rec["fill_price"] * cm + o * sl) if d else 0.0) + rec["borrow"]
        if rec["equity"] <= 0:
            assert rec["terminated"]
        else:
            assert not rec["terminated"]
    assert total_cost == pytest.approx(total_formula, rel=1e-12, abs=1e-9)


@SETTINGS
@given(scenarios(positions=(-1.0, 0.0, 1.0)), st.data())
def test_no_look_ahead_future_prices_do_not_change_the_past(s, data):
    market, cfg, actions = s
    T = market.n_bars
    k = data.draw(st.integers(cfg.window - 1, T - 3))  # a decision bar
    rng = np.random.default_rng(k)
    # perturb everything strictly after the fill bar k+1 (prices) and after bar k (features)
    o2, c2, f2 = market.open.copy(), market.close.copy(), market.features.copy()
    o2[k + 2 :] *= rng.uniform(0.5, 1.5, T - k - 2)
    c2[k + 2 :] *= rng.uniform(0.5, 1.5, T - k - 2)
    f2[k + 1 :] += rng.normal(size=f2[k + 1 :].shape).astype(np.float32)
    from reinforce_strategy_creator.env import MarketArrays

    other = MarketArrays.from_arrays(f2, o2, c2, index=market.index)
    n = k - (cfg.window - 1) + 1  # steps up to and including the decision at k (filled at k+1)
    a, b = run_core(market, cfg, actions[:n]), run_core(other, cfg, actions[:n])
    for ra, rb in zip(a, b):
        for key in ("equity", "cash", "shares", "cost", "reward", "position", "bar"):
            assert ra[key] == rb[key]
        assert (math.isnan(ra["fill_price"]) and math.isnan(rb["fill_price"])) or ra["fill_price"] == rb[
            "fill_price"
        ]
    # observations up to decision bar k are identical too
    for ra, rb in zip(a[:-1], b[:-1]):
        np.testing.assert_array_equal(ra["obs"], rb["obs"])


@pytest.mark.parametrize("fill_price", FILL_PRICES)
def test_fill_is_at_the_next_bar_never_at_the_decision_close(fill_price):
    from tests.support.env import make_market

    market = make_market(40, seed=3)
    cfg = EnvConfig(
        window=5, commission_bps=0, slippage_bps=10, episode_length=None, device="cpu", fill_price=fill_price
    )
    traj = run_core(market, cfg, [1] + [1] * 10)
    t = cfg.window - 1
    assert traj[0]["bar"] == t + 1
    ref = market.open if fill_price == "next_open" else market.close
    assert traj[0]["fill_price"] == pytest.approx(ref[t + 1] * 1.001, rel=1e-14)
    assert traj[0]["fill_price"] != pytest.approx(market.close[t] * 1.001, rel=1e-9)
    other = market.close if fill_price == "next_open" else market.open
    assert traj[0]["fill_price"] != pytest.approx(other[t + 1] * 1.001, rel=1e-9)


def test_default_fill_price_is_the_next_close():
    """The default is the one price that is real on every bar of the embedded S&P 500 file
    (docs/environment.md, "Fill price"): its opens are stale copies of the previous close
    before 2006."""
    assert EnvConfig().fill_price == "next_close"
    with pytest.raises(ValueError, match="environment.fill_price"):
        EnvConfig.parse({"fill_price": "next_vwap"})


@SETTINGS
@given(scenarios(positions=(-1.0, 0.0, 0.5, 1.0)), st.integers(0, 3))
def test_facade_and_every_batched_lane_agree(s, shift):
    """Lanes of the torch core (different starts, different actions) == numpy one-account facade."""
    market, cfg, actions = s
    B = 3
    n_steps = market.n_bars - cfg.window
    starts = [min(cfg.window - 1 + (shift * i) % 3, market.n_bars - 2) for i in range(B)]
    rng = np.random.default_rng(len(actions))
    acts = np.stack([np.roll(actions, i) if i else np.asarray(actions) for i in range(B)])
    acts[2] = rng.integers(0, len(cfg.positions), n_steps)
    core = BatchedTradingCore(market, cfg, B, seed=0, autoreset=False, device="cpu")
    obs_core = [core.reset(starts=starts).clone()]
    infos = []
    for j in range(n_steps):
        obs, r, te, tr, info = core.step(torch.as_tensor(acts[:, j]))
        obs_core.append(obs.clone())
        infos.append((r.clone(), te.clone(), tr.clone(), {k: v.clone() for k, v in info.items()}))
    for lane in range(B):
        env = TradingEnv(market, cfg)
        o, _ = env.reset(options={"start": starts[lane]})
        np.testing.assert_allclose(o, obs_core[0][lane].numpy(), rtol=1e-6, atol=1e-6)
        for j in range(n_steps):
            o, r, te, tr, info = env.step(int(acts[lane, j]))
            rc, tec, trc, ic = infos[j]
            assert r == pytest.approx(float(rc[lane]), rel=1e-12, abs=1e-15)
            assert (te, tr) == (bool(tec[lane]), bool(trc[lane]))
            assert info.get("fill_price", math.nan) == pytest.approx(
                float(ic["fill_price"][lane]), rel=1e-12, nan_ok=True
            )
            for key in ("equity", "cash", "shares", "cost", "position"):
                assert info[key] == pytest.approx(float(ic[key][lane]), rel=1e-12, abs=1e-9)
            np.testing.assert_allclose(o, obs_core[j + 1][lane].numpy(), rtol=1e-6, atol=1e-6)
            if te or tr:
                break
