"""Rewards, episodes/auto-reset, gymnasium + SB3 API compliance, and replay."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from reinforce_strategy_creator.env import (
    BatchedTradingCore,
    EnvConfig,
    MarketArrays,
    TradingEnv,
    TradingVectorEnv,
    replay,
)
from tests.support.env import make_market


def _run(market, cfg, actions):
    core = BatchedTradingCore(market, cfg, 1, seed=0, autoreset=False, device="cpu")
    core.reset(starts=cfg.window - 1)
    rewards, equity = [], [cfg.initial_capital]
    for a in actions:
        _, r, te, tr, info = core.step(torch.tensor([a]))
        rewards.append(float(r[0]))
        equity.append(float(info["equity"][0]))
        if te[0] or tr[0]:
            break
    return np.array(rewards), np.array(equity)


def test_differential_sharpe_matches_moody_saffell_recursion():
    market = make_market(80, seed=5)
    base = EnvConfig(window=4, episode_length=None, device="cpu")
    cfg = EnvConfig(window=4, episode_length=None, device="cpu", reward="differential_sharpe", dsr_eta=0.05)
    acts = list(np.random.default_rng(1).integers(0, 2, 70))
    logr, _ = _run(market, base, acts)
    dsr, _ = _run(market, cfg, acts)
    a = b = 0.0
    for r, d in zip(logr, dsr):
        var = b - a * a
        expected = (b * (r - a) - 0.5 * a * (r * r - b)) / var**1.5 if var > 1e-18 else 0.0
        assert d == pytest.approx(expected, rel=1e-9, abs=1e-12)
        a, b = a + 0.05 * (r - a), b + 0.05 * (r * r - b)


def test_drawdown_penalised_reward():
    market = make_market(80, seed=6)
    cfg = EnvConfig(
        window=4, episode_length=None, device="cpu", reward="drawdown_penalised", drawdown_lambda=2.0
    )
    acts = list(np.random.default_rng(2).integers(0, 2, 70))
    rew, eq = _run(market, cfg, acts)
    peak = np.maximum.accumulate(eq)
    dd = 1 - eq / peak
    expected = np.log(eq[1:] / eq[:-1]) - 2.0 * np.clip(np.diff(dd), 0, None)
    np.testing.assert_allclose(rew, expected, rtol=1e-9, atol=1e-12)
    assert (np.diff(dd) > 0).any()  # the penalty actually bites on this path


def test_random_starts_are_seeded_and_episodes_truncate_with_autoreset():
    market = make_market(200, seed=7)
    cfg = EnvConfig(window=8, episode_length=20, device="cpu")
    c1 = BatchedTradingCore(market, cfg, 16, seed=42)
    c2 = BatchedTradingCore(market, cfg, 16, seed=42)
    c3 = BatchedTradingCore(market, cfg, 16, seed=43)
    o1, o2, _ = c1.reset(), c2.reset(), c3.reset()
    assert torch.equal(c1.t, c2.t) and torch.equal(o1, o2) and not torch.equal(c1.t, c3.t)
    assert int(c1.t.min()) >= 7 and int(c1.t.max()) <= 199 - 20
    starts = c1.t.clone()
    ones = torch.ones(16, dtype=torch.long)
    for i in range(19):
        _, _, te, tr, info = c1.step(ones)
        assert not tr.any() and "final_obs" not in info
    obs, r, te, tr, info = c1.step(ones)
    assert tr.all() and not te.any()
    assert torch.equal(info["bar"], starts + 20)
    assert torch.equal(info["final_obs"][:, :-3], c1.windows[starts + 20][:, :-3])
    # lanes were reset in the same step: flat, initial capital, fresh starts, obs of new start
    assert torch.all(c1.equity == cfg.initial_capital) and torch.all(c1.shares == 0)
    assert torch.equal(obs, c1.observe())


def test_shorts_can_go_bankrupt_and_terminate():
    n = 30
    close = np.full(n, 100.0)
    close[12:] = 250.0  # +150% gap up while short at -1 => equity < 0
    market = MarketArrays.from_arrays(np.zeros((n, 1)), close, close)
    cfg = EnvConfig(window=2, positions=(-1, 0, 1), episode_length=None, device="cpu")
    env = TradingEnv(market, cfg)
    env.reset()
    for _ in range(n):
        _, r, te, tr, info = env.step(0)
        assert math.isfinite(info["equity"]) and math.isfinite(r)
        if te or tr:
            break
    assert te and info["equity"] <= 0
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)


@pytest.mark.parametrize("backend", ["scalar", "torch"])
@pytest.mark.parametrize("continuous", [False, True])
@pytest.mark.parametrize("positions", [(0, 1), (-1, 0, 1)])
def test_gymnasium_and_sb3_check_env(continuous, positions, backend):
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    cfg = EnvConfig(window=5, positions=positions, continuous=continuous, episode_length=30, device="cpu")
    env = TradingEnv(make_market(100), cfg, seed=0, backend=backend)
    check_env(env, skip_render_check=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SB3 only *warns* about unbounded observations
        sb3_check_env(TradingEnv(make_market(100), cfg, seed=0, backend=backend), warn=True)


def test_one_account_facade_same_on_both_back_ends():
    market = make_market(90, seed=8)
    cfg = EnvConfig(window=4, positions=(-1, 0, 0.5, 1), episode_length=None, device="cpu")
    a, b = TradingEnv(market, cfg, backend="scalar"), TradingEnv(market, cfg, backend="torch")
    oa, _ = a.reset(options={"start": 10})
    ob, _ = b.reset(options={"start": 10})
    rng = np.random.default_rng(3)
    while True:
        act = int(rng.integers(0, 4))
        oa, ra, tea, tra, ia = a.step(act)
        ob, rb, teb, trb, ib = b.step(act)
        np.testing.assert_allclose(oa, ob, rtol=1e-6, atol=1e-7)
        assert ra == pytest.approx(rb, rel=1e-12, abs=1e-15) and (tea, tra) == (teb, trb)
        assert ia.keys() == ib.keys() and all(ia[k] == pytest.approx(ib[k], rel=1e-12) for k in ia)
        if tea or tra:
            break
    assert ia["bar"] == 89


def test_vector_env_numpy_and_tensor_paths_agree():
    market = make_market(150, seed=9)
    cfg = EnvConfig(window=6, positions=(-1, 0, 1), episode_length=10, device="cpu")
    v1 = TradingVectorEnv(market, cfg, num_envs=8, seed=3)
    v2 = TradingVectorEnv(market, cfg, num_envs=8, seed=3)
    o1, _ = v1.reset(seed=11)
    o2, _ = v2.reset_tensors(seed=11)
    assert o1.shape == (8, v1.single_observation_space.shape[0]) and o1.dtype == np.float32
    assert v1.observation_space.contains(o1)
    np.testing.assert_array_equal(o1, o2.numpy())
    rng = np.random.default_rng(0)
    seen_final = False
    for _ in range(25):
        a = rng.integers(0, 3, 8)
        o1, r1, te1, tr1, i1 = v1.step(a)
        o2, r2, te2, tr2, i2 = v2.step_tensors(torch.as_tensor(a))
        np.testing.assert_array_equal(o1, o2.numpy())
        np.testing.assert_array_equal(r1, r2.numpy())
        if "_final_obs" in i1:
            seen_final = True
            np.testing.assert_array_equal(i1["_final_obs"], i2["done"].numpy())
            np.testing.assert_array_equal(i1["final_obs"], i2["final_obs"].numpy())
    assert seen_final


@pytest.mark.parametrize("fill_price", ["next_open", "next_close"])
def test_replay_buy_and_hold_matches_hand_computation_and_lanes_agree(fill_price):
    market = make_market(120, seed=4)
    cfg = EnvConfig(
        window=10,
        commission_bps=5,
        slippage_bps=7,
        device="cpu",  # episode_length ignored
        fill_price=fill_price,
    )
    res = replay(market, cfg, lambda obs: torch.ones(obs.shape[0], dtype=torch.long), num_envs=4)
    T, W = market.n_bars, cfg.window
    assert len(res) == 4 * (T - W + 1) and res.config is cfg
    lane = res.lane(2)
    assert list(lane.index) == list(market.index[W - 1 :]) and lane["bar"].iloc[0] == W - 1
    assert lane["equity"].iloc[0] == cfg.initial_capital
    ref = (market.open if fill_price == "next_open" else market.close)[W]
    fill = ref * (1 + 7e-4)
    shares = cfg.initial_capital / (fill * (1 + 5e-4)) * (1 - 1e-12)
    expected = shares * market.close[-1] + (cfg.initial_capital - shares * fill * (1 + 5e-4))
    assert lane["equity"].iloc[-1] == pytest.approx(expected, abs=1e-6)
    assert lane["cost"].sum() == pytest.approx(shares * fill * 5e-4 + shares * ref * 7e-4, rel=1e-12)
    curves = res.equity_curves()
    assert curves.shape == (T - W + 1, 4) and (curves.nunique(axis=1) == 1).all()
    assert res["reward"].groupby(res["lane"]).sum().iloc[0] == pytest.approx(
        math.log(lane["equity"].iloc[-1] / cfg.initial_capital), abs=1e-9
    )


def test_replay_flat_policy_costs_nothing():
    market = make_market(60, seed=2)
    res = replay(market, EnvConfig(window=5, device="cpu"), lambda o: np.zeros(o.shape[0], dtype=np.int64))
    assert (res["equity"] == 100_000.0).all() and (res["cost"] == 0).all() and res["fill_price"].isna().all()


def test_replay_on_real_sp500_with_real_features(tmp_path):
    """Model-input-shaped frame from the S&P 500 CSV (features: scaled log return + range)."""
    from tests.support.project import SP500_CSV

    raw = pd.read_csv(SP500_CSV)
    raw.index = pd.DatetimeIndex(pd.to_datetime(raw["Date"], format="%m/%d/%Y"), name="date")
    lr = np.log(raw["Close"]).diff()
    df = pd.DataFrame({"feat_ret": ((lr - lr.mean()) / lr.std()).astype(np.float32)}, index=raw.index)
    for col in ("Open", "High", "Low", "Close", "Volume"):
        df[col] = raw[col].astype(np.float64)
    df = df.iloc[1:]
    market = MarketArrays.from_frame(df)
    cfg = EnvConfig(window=16, positions=(-1, 0, 1), device="cpu")
    # momentum rule: long after an up day, short after a down day (uses only bar t's feature)
    res = replay(market, cfg, lambda o: torch.where(o[:, 15] > 0, 2, 0))
    assert len(res) == market.n_bars - 15
    assert np.isfinite(res["equity"]).all()
    assert res["cost"].sum() > 0


@pytest.mark.slow
def test_compiled_step_matches_eager():
    market = make_market(120, seed=12)
    cfg = EnvConfig(
        window=6, positions=(-1, 0, 0.5, 1), reward="differential_sharpe", episode_length=40, device="cpu"
    )
    eager = BatchedTradingCore(market, cfg, 32, seed=5)
    compiled = BatchedTradingCore(market, cfg, 32, seed=5, compile_step=True)
    torch.testing.assert_close(eager.reset(), compiled.reset(), rtol=0, atol=0)
    acts = torch.randint(0, 4, (100, 32), generator=torch.Generator().manual_seed(0))
    for a in acts:
        oe, re, tee, tre, ie = eager.step(a)
        oc, rc, tec, trc, ic = compiled.step(a)
        torch.testing.assert_close(oe, oc, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(re, rc, rtol=1e-9, atol=1e-12)
        assert torch.equal(tee, tec) and torch.equal(tre, trc)
        torch.testing.assert_close(ie["equity"], ic["equity"], rtol=1e-12, atol=1e-9)


def test_observation_switches_and_layout():
    market = make_market(60, n_features=3, seed=1)
    bare = EnvConfig(
        window=4,
        obs_position=False,
        obs_unrealised=False,
        obs_bars_held=False,
        episode_length=None,
        device="cpu",
    )
    env = TradingVectorEnv(market, bare, num_envs=2, seed=0)
    obs, _ = env.reset(options={"start": [3, 10]})
    assert obs.shape == (2, 12)
    np.testing.assert_array_equal(obs[0], market.features[0:4].reshape(-1))  # oldest row first
    np.testing.assert_array_equal(obs[1], market.features[7:11].reshape(-1))
    full = EnvConfig(
        window=4, positions=(-1, 0, 1), episode_length=None, device="cpu", fill_price="next_open"
    )
    core = BatchedTradingCore(market, full, 1, seed=0)
    core.reset(starts=5)
    for _ in range(3):
        obs, *_ = core.step(torch.tensor([0]))  # short
    pos, unreal, bars = obs[0, -3:].tolist()
    entry = market.open[6] * (1 - full.slippage_bps / 1e4)
    assert pos == -1.0 and bars == pytest.approx(3 / 252)
    assert unreal == pytest.approx(-(market.close[8] / entry - 1), rel=1e-5)


@pytest.mark.parametrize("backend", ["scalar", "torch"])
def test_hold_at_n1_keeps_the_book_like_repeating_the_position(backend):
    """``hold`` (the engine's step option, as on `PortfolioCore`) at N = 1: a held lane places no
    order and pays nothing whatever its action, exactly as if it repeated its position; a
    released lane trades again; a mask of the wrong shape is an error naming the shape."""
    market = make_market(60, seed=5)
    cfg = EnvConfig(window=4, positions=(0, 1), episode_length=None, device="cpu")
    held, repeated = (BatchedTradingCore(market, cfg, 1, seed=0, backend=backend) for _ in range(2))
    for core in (held, repeated):
        core.reset(starts=10)
        core.step([1])
    for _ in range(3):
        a = held.step([0], hold=[True])
        b = repeated.step([1])
        assert torch.equal(torch.as_tensor(a[0]), torch.as_tensor(b[0])) and float(a[1]) == float(b[1])
        assert float(a[4]["traded_shares"]) == 0.0 and float(a[4]["cost"]) == 0.0
        assert float(a[4]["shares"]) == float(b[4]["shares"]) > 0.0
    released = held.step([0], hold=[False])[4]
    assert float(released["shares"]) == 0.0 and float(released["commission"]) > 0.0
    with pytest.raises(ValueError, match=r"hold must be a \(1,\) bool mask"):
        held.step([0], hold=[True, False])
