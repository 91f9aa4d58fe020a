"""The portfolio environment (B accounts x N assets): invariants, timing, errors, gym API."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reinforce_strategy_creator.env.portfolio import PortfolioCore, PortfolioInputError
from reinforce_strategy_creator.env.portfolio_gym import PortfolioEnv, PortfolioVectorEnv
from reinforce_strategy_creator.errors import InputError
from reinforce_strategy_creator.params.base import ParameterError
from tests.support.env import universe_env

torch.set_num_threads(1)
SETTINGS = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TICKERS = ("AAA", "BBB", "CCC")


def panel(T=40, N=3, seed=0, late=None):
    """(close, features): random-walk closes; ticker `late` (index) listed from row 10."""
    rng = np.random.default_rng(seed)
    close = 50.0 * np.exp(np.cumsum(rng.normal(0, 0.03, (T, N)), axis=0))
    if late is not None:
        close[:10, late] = np.nan
    lr = np.vstack([np.zeros((1, N)), np.diff(np.log(close), axis=0)])
    return close, lr[:, :, None].astype(np.float32)


def random_weights(rng, B, N, long_only, lev, tradable):
    if long_only:
        raw = rng.random((B, N + 1)) * np.r_[tradable, True]
        raw[rng.random(B) < 0.2] = 0.0
        w = raw[:, :N] / np.maximum(raw.sum(1, keepdims=True), 1e-300)
    else:
        raw = rng.uniform(-1, 1, (B, N)) * tradable
        w = raw * lev / np.maximum(np.abs(raw).sum(1, keepdims=True), 1.0)
    return w


def run(core, rng, steps, hook=None):
    core.reset(starts=core.lo_start)
    for _ in range(steps):
        tr = core.tradable[core.t[0]].cpu().numpy()
        w = random_weights(rng, core.num_envs, core.n_assets, core.config.long_only, core.bound, tr)
        state = (core.cash.clone(), core.shares.clone(), core.equity.clone(), core.t.clone())
        _, r, te, tru, info = core.step(w)
        if hook:
            hook(core, w, state, r, info)
        if bool((te | tru).all()):
            break


costs = st.tuples(st.floats(0, 50), st.floats(0, 50), st.floats(0, 5), st.sampled_from([0.0, 0.0, 0.02, 0.1]))


@SETTINGS
@given(costs, st.integers(0, 10_000), st.booleans())
def test_accounting_invariants(c, seed, long_only):
    comm, slip, borrow, band = c
    lev = 1.0 if long_only else 2.0
    cfg = universe_env(
        window=3,
        episode_length=None,
        commission_bps=comm,
        slippage_bps=slip,
        borrow_bps_per_bar=borrow,
        long_only=long_only,
        gross_leverage=lev,
        band=band,
    )
    close, feats = panel(30, 3, seed % 7, late=seed % 3)
    core = PortfolioCore(close, feats, TICKERS, cfg, num_envs=4, seed=seed, autoreset=False)
    closes = torch.as_tensor(np.nan_to_num(close, nan=1.0))

    def hook(core, w, state, r, info):
        cash0, sh0, eq0, t0 = state
        c1 = closes[t0 + 1]
        delta = info["traded_shares"]
        # equity reconciles: cash + sum(shares * close), cash moves only by fills, costs, borrow
        eq = info["cash"] + (info["shares"] * c1).sum(1)
        assert torch.allclose(info["equity"], eq, rtol=1e-12, atol=0)
        fill = torch.where(delta > 0, c1 * (1 + slip / 1e4), c1 * (1 - slip / 1e4))
        cash = cash0 - (delta * fill).sum(1) - info["commission"] - info["borrow"]
        assert torch.allclose(info["cash"], cash, rtol=1e-12, atol=1e-9)
        # costs = turnover x rates (per asset, per trade)
        turnover = (delta.abs() * c1).sum(1)
        assert torch.allclose(info["slippage"], turnover * slip / 1e4, rtol=1e-9, atol=1e-12)
        comm_exp = (delta.abs() * fill).sum(1) * comm / 1e4
        assert torch.allclose(info["commission"], comm_exp, rtol=1e-9, atol=1e-12)
        borrow_exp = (info["shares"].clamp(max=0).abs() * c1).sum(1) * borrow / 1e4
        assert torch.allclose(info["borrow"], borrow_exp, rtol=1e-9, atol=1e-12)
        assert torch.allclose(r, torch.log(info["equity"] / eq0), rtol=1e-12, atol=1e-15)
        # bounds after every step
        wt = info["weights"]
        if long_only:
            assert bool((info["cash"] >= 0).all())
            assert bool((wt >= -1e-12).all()) and bool((wt.sum(1) <= 1 + 1e-9).all())
        else:
            assert bool((wt.abs().sum(1) <= lev * (1 + 1e-9)).all())
        assert bool((info["shares"][:, seed % 3][~core.tradable[t0, seed % 3]] == 0).all())
        if band == 0.0:  # traded to target (to float precision)
            assert torch.allclose(wt, torch.as_tensor(w), rtol=1e-9, atol=1e-9)
        else:  # a skipped asset keeps its shares, unless keeping it would break the bound
            cur = sh0 * c1 / (cash0 + (sh0 * c1).sum(1))[:, None]
            off = info["band_off"]
            skip = ((torch.as_tensor(w) - cur).abs() < band) & ~off[:, None]
            assert bool((delta[skip] == 0).all())
            assert torch.allclose(wt[off], torch.as_tensor(w)[off], rtol=1e-9, atol=1e-9)

    run(core, np.random.default_rng(seed), 25, hook)


@SETTINGS
@given(st.integers(0, 10_000), st.integers(3, 25), st.booleans())
def test_no_look_ahead(seed, t_change, long_only):
    """Changing closes after t+1 (and features after t) changes nothing up to the fill at t+1."""
    cfg = universe_env(
        window=3,
        episode_length=None,
        long_only=long_only,
        gross_leverage=1.0 if long_only else 1.5,
        borrow_bps_per_bar=1.0,
    )
    close, feats = panel(30, 3, seed % 5)
    close2, feats2 = close.copy(), feats.copy()
    rng = np.random.default_rng(seed)
    close2[t_change + 2 :] *= rng.uniform(0.5, 2.0, close2[t_change + 2 :].shape)
    feats2[t_change + 1 :] = rng.normal(size=feats2[t_change + 1 :].shape)
    logs = []
    for c, f in ((close, feats), (close2, feats2)):
        core = PortfolioCore(c, f, TICKERS, cfg, num_envs=2, seed=0, autoreset=False)
        obs = [core.reset(starts=2)]
        wr = np.random.default_rng(seed + 1)
        out = []
        while int(core.t[0]) <= t_change:  # decisions at bars 2..t_change fill at 3..t_change+1
            w = random_weights(wr, 2, 3, long_only, core.bound, np.ones(3))
            o, r, _, _, info = core.step(w)
            out.append((r, info["equity"], info["shares"]))
            obs.append(o)
        logs.append((obs[:-1], out))
    (o1, a), (o2, b) = logs
    for x, y in zip(o1, o2):
        assert torch.equal(x, y)
    for x, y in zip(a, b):
        for u, v in zip(x, y):
            assert torch.equal(u, v)


def test_not_listed_ticker_target_is_an_error_naming_it():
    close, feats = panel(30, 3, late=1)
    core = PortfolioCore(close, feats, TICKERS, universe_env(window=3, episode_length=None))
    core.reset(starts=2)
    with pytest.raises(PortfolioInputError, match="'BBB'.*not tradable"):
        core.step([[0.2, 0.1, 0.3]])
    core.step([[0.2, 0.0, 0.3]])  # 0 on it is fine
    obs = core.observe()[0]
    assert obs[-3:].tolist() == [1.0, 0.0, 1.0]  # tradable flags


@pytest.mark.parametrize(
    ("cfg", "w", "match"),
    [
        ({}, [[np.nan, 0.1, 0.1]], "'AAA'.*finite"),
        ({}, [[0.1, -0.1, 0.1]], "'BBB'.*< 0.*long_only"),
        ({}, [[0.5, 0.4, 0.2]], "sum\\(w\\) <= 1"),
        ({"long_only": False, "gross_leverage": 1.5}, [[1.0, -0.6, 0.1]], "gross_leverage=1.5"),
        ({}, [[0.1, 0.1]], "shape \\(1, 3\\)"),
    ],
)
def test_bad_weights_raise_input_errors(cfg, w, match):
    close, feats = panel(30, 3)
    core = PortfolioCore(close, feats, TICKERS, universe_env(window=3, episode_length=None, **cfg))
    core.reset(starts=2)
    with pytest.raises(InputError, match=match):
        core.step(w)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"band": 1.5}, "band"),
        ({"gross_leverage": 2.0}, "gross_leverage.*long_only"),
        ({"window": 0}, "window"),
        ({"commission_bps": -1.0}, "commission_bps"),
        ({"fill_price": "next_bar"}, "fill_price"),
        ({"granularity": "lots"}, "granularity"),
        ({"reward": "sharpe"}, "reward"),
        ({"dsr_eta": 1.0}, "dsr_eta"),
        ({"drawdown_lambda": -0.5}, "drawdown_lambda"),
    ],
)
def test_bad_config_names_the_parameter(kw, match):
    with pytest.raises(ParameterError, match=match):
        universe_env(**kw)


def test_bad_panel_names_the_ticker():
    close, feats = panel(30, 3)
    close[15, 2] = np.nan
    with pytest.raises(PortfolioInputError, match="'CCC'.*row 15"):
        PortfolioCore(close, feats, TICKERS, universe_env(window=3))


@pytest.mark.parametrize(("row", "value", "match"), [(12, 0.0, "'BBB'.*row 12"), (None, None, "shape")])
def test_bad_opens_name_the_ticker(row, value, match):
    """A next-open fill needs a positive open wherever a ticker has a close (and the closes' shape)."""
    close, feats = panel(30, 3)
    opens = close.copy()
    if row is None:
        opens = opens[:, :2]
    else:
        opens[row, 1] = value
    with pytest.raises(PortfolioInputError, match=match):
        PortfolioCore(close, feats, TICKERS, universe_env(window=3, fill_price="next_open"), opens=opens)


def test_observation_layout():
    close, feats = panel(30, 3)
    feats = np.arange(30 * 3 * 2, dtype=np.float32).reshape(30, 3, 2)
    core = PortfolioCore(close, feats, TICKERS, universe_env(window=3, episode_length=None))
    obs = core.reset(starts=5)[0]
    assert obs.shape == (3 * 3 * 2 + 3 + 1 + 3,)
    per_asset = obs[:18].reshape(3, 3, 2)  # asset, window row (oldest first), feature
    assert torch.equal(per_asset, torch.as_tensor(feats[3:6].transpose(1, 0, 2)))
    assert obs[18:21].tolist() == [0.0, 0.0, 0.0] and obs[21] == 1.0  # all cash
    core.step([[0.5, 0.25, 0.0]])
    obs = core.observe()[0]
    assert obs[18:22].tolist() == pytest.approx([0.5, 0.25, 0.0, 0.25], rel=1e-6)


def test_gymnasium_and_sb3_check_env():
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    close, feats = panel(40, 3, late=2)
    for cfg in (
        universe_env(window=3, episode_length=20),
        universe_env(window=3, episode_length=20, long_only=False, gross_leverage=2.0),
    ):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            check_env(PortfolioEnv(close, feats, TICKERS, cfg, seed=0), skip_render_check=True)
            sb3_check_env(PortfolioEnv(close, feats, TICKERS, cfg, seed=0))


def test_vector_env_same_step_autoreset():
    close, feats = panel(40, 3, late=2)
    env = PortfolioVectorEnv(
        close, feats, TICKERS, universe_env(window=3, episode_length=5), num_envs=4, seed=1
    )
    obs, _ = env.reset(seed=1)
    assert obs.shape == (4, env.core.obs_dim) and env.observation_space.contains(obs)
    env.action_space.seed(0)
    for i in range(5):
        obs, r, te, tr, info = env.step(env.action_space.sample())
        assert r.shape == (4,) and np.isfinite(r).all()
    assert tr.all() and info["_final_obs"].all()
    assert (env.core.steps == 0).all()  # same-step reset


# ---------------------------------------------------------------------------------------------
# The optimised core against the straightforward one it replaced (benchmarks/portfolio_reference.py)
# ---------------------------------------------------------------------------------------------
MONEY = ("equity", "cash", "cost", "commission", "slippage", "borrow", "turnover")


def _assert_same_step(out, ref_out, cap, prices):
    """One step's outputs agree to 1e-9 relative (money to 1e-9 of the capital, shares to 1e-9 of
    capital / price, weights to 1e-9); masks and bars exactly; float32 observations to 1 ulp."""
    (obs, r, te, tr, info), (obs_r, r_r, te_r, tr_r, info_r) = out, ref_out
    assert torch.equal(te, te_r) and torch.equal(tr, tr_r)
    torch.testing.assert_close(r, r_r, rtol=1e-9, atol=1e-12)
    assert set(info) == set(info_r)
    for k in MONEY:
        torch.testing.assert_close(info[k], info_r[k], rtol=1e-9, atol=1e-9 * cap)
    share_tol = 1e-9 * cap / prices.min()
    for k in ("shares", "traded_shares"):
        torch.testing.assert_close(info[k], info_r[k], rtol=1e-9, atol=share_tol)
    assert torch.equal(info["traded_shares"] == 0, info_r["traded_shares"] == 0)  # same trades
    torch.testing.assert_close(info["weights"], info_r["weights"], rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(info["fill_price"], info_r["fill_price"], rtol=0, atol=0, equal_nan=True)
    for k in ("bar", "band_off", "done"):
        if k in info_r:
            assert torch.equal(info[k], info_r[k]), k
    for o, o_r in ((obs, obs_r), (info.get("final_obs"), info_r.get("final_obs"))):
        if o_r is not None:
            torch.testing.assert_close(o, o_r, rtol=2e-7, atol=1e-7)  # float32: 1 ulp


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.tuples(st.floats(0, 999), st.floats(0, 999), st.floats(0, 50)).filter(
        lambda c: (c[0] + c[1] + c[2]) / 1e4 * 1.01 * 2.0 <= 0.5
    ),
    st.integers(0, 10_000),
    st.booleans(),
    st.sampled_from([0.0, 0.0, 0.02, 0.1]),
    st.sampled_from([None, 0.3]),
    st.booleans(),
    st.integers(1, 5),
)
def test_matches_reference(c, seed, long_only, band, hold_p, autoreset, n_assets):
    """The optimised step (batched checks, closed-form joint sizing, one-gather observation)
    follows the pre-optimisation core step by step on random books, targets, costs (up to the
    config's cap, so the sizing needs many iterations), bands, hold masks and late listings."""
    from benchmarks.portfolio_reference import ReferencePortfolioCore

    comm, slip, borrow = c
    lev = 1.0 if long_only else 2.0
    cfg = universe_env(
        window=3,
        episode_length=6 if autoreset else None,
        commission_bps=comm,
        slippage_bps=slip,
        borrow_bps_per_bar=borrow,
        long_only=long_only,
        gross_leverage=lev,
        band=band,
    )
    close, feats = panel(30, n_assets, seed % 7, late=seed % n_assets if seed % 2 else None)
    tickers = [f"T{i}" for i in range(n_assets)]
    B = 5
    cores = [
        cls(close, feats, tickers, cfg, num_envs=B, seed=seed, autoreset=autoreset)
        for cls in (PortfolioCore, ReferencePortfolioCore)
    ]
    for core in cores:
        obs = core.reset()
    assert torch.equal(obs, cores[1].observe()) and torch.equal(cores[0].observe(), obs)
    rng = np.random.default_rng(seed)
    prices = torch.as_tensor(np.nanmin(close, axis=0))
    for _ in range(25):
        tr = cores[0].tradable.index_select(0, cores[0].t).numpy()
        w = np.stack([random_weights(rng, 1, n_assets, long_only, lev, tr[i])[0] for i in range(B)])
        if rng.random() < 0.5:  # some targets near the weights before the fill: kept within the
            ref = cores[1]  # band, or tiny trades whose side flips with the costs (no band)
            c1 = ref.close.index_select(0, torch.clamp(ref.t + 1, max=ref.last_bar))
            v = (ref.shares * c1).numpy()
            cur = v / (ref.cash.numpy() + v.sum(1))[:, None]
            near = cur + rng.uniform(-1, 1, w.shape) * (band / 2 if band > 0 else 1e-6) * tr
            w = np.where(rng.random(w.shape) < 0.6, near, w)
            w = np.maximum(w, 0.0) if long_only else w
            total = w.sum(1) if long_only else np.abs(w).sum(1)
            w = w * np.minimum(1.0, lev / np.maximum(total, 1e-300))[:, None]
        hold = None if hold_p is None else rng.random(B) < hold_p
        outs = [core.step(torch.as_tensor(w), hold=hold) for core in cores]
        _assert_same_step(outs[0], outs[1], cfg.initial_capital, prices)
        if not autoreset and not bool(cores[1].active.any()):
            break


@SETTINGS
@given(st.integers(0, 10_000), st.booleans(), st.sampled_from(["nan", "inf", "neg", "over", "late", "ok"]))
def test_weight_checks_match_reference(seed, long_only, fault):
    """The batched weight check (one host read) accepts and rejects exactly what the one-by-one
    checks did, with the same message naming the ticker and account."""
    from benchmarks.portfolio_reference import ReferencePortfolioCore

    lev = 1.0 if long_only else 1.5
    cfg = universe_env(window=3, episode_length=None, long_only=long_only, gross_leverage=lev)
    close, feats = panel(30, 3, seed % 5, late=1)
    rng = np.random.default_rng(seed)
    B = 4
    w = np.stack([random_weights(rng, 1, 3, long_only, lev, np.array([1, 0, 1]))[0] for _ in range(B)])
    lane, j = int(rng.integers(B)), int(rng.choice([0, 2]))
    if fault == "nan":
        w[lane, j] = np.nan
    elif fault == "inf":
        w[lane, j] = -np.inf if rng.random() < 0.5 else np.inf
    elif fault == "neg":
        w[lane, j] = -0.1
    elif fault == "over":
        w[lane] *= 1.5 * lev / max(np.abs(w[lane]).sum(), 1e-3)
        w[lane, j] += 0.5 * lev
    elif fault == "late":
        w[lane, 1] = 0.05 if rng.random() < 0.5 else -0.05
    elif rng.random() < 0.5:  # within the rounding tolerance: rescaled onto the bound
        w[lane] = w[lane] * lev / max(np.abs(w[lane]).sum(), 1e-3) * (1 + 5e-10)
    start = int(rng.integers(2, 9))  # ticker BBB lists at row 10: not tradable yet
    results = []
    for cls in (PortfolioCore, ReferencePortfolioCore):
        core = cls(close, feats, TICKERS, cfg, num_envs=B, seed=0)
        core.reset(starts=start)
        try:
            results.append(core.check_weights(torch.as_tensor(w)))
        except PortfolioInputError as err:
            results.append(str(err))
    a, b = results
    if isinstance(b, str):
        assert a == b
    else:
        assert isinstance(a, torch.Tensor) and torch.equal(a, b)


@pytest.mark.parametrize("long_only", [True, False])
def test_runs_reproduce_bit_for_bit(long_only):
    """Same seed, same targets: identical trajectories bit for bit, the targets given once as a
    fresh tensor and once as a view at an odd memory offset."""
    close, feats = panel(40, 5, 3)
    cfg = universe_env(
        window=3, episode_length=10, long_only=long_only, gross_leverage=1.0 if long_only else 1.5
    )
    rng = np.random.default_rng(0)
    targets = [random_weights(rng, 6, 5, long_only, cfg.gross_leverage, np.ones(5)) for _ in range(25)]
    runs = []
    for offset in (0, 1):
        core = PortfolioCore(close, feats, [f"T{i}" for i in range(5)], cfg, num_envs=6, seed=7)
        out = [core.reset()]
        buf = torch.empty(6 * 5 + offset, dtype=torch.float64)
        for w in targets:
            view = buf[offset:].view(6, 5)
            view.copy_(torch.as_tensor(w))
            obs, r, _, _, info = core.step(view)
            out += [obs, r, info["equity"], info["cash"], info["shares"], info["traded_shares"]]
        runs.append(out)
    for a, b in zip(*runs):
        assert torch.equal(a, b)


@SETTINGS
@given(
    st.integers(0, 10_000),
    st.booleans(),
    st.tuples(st.floats(0, 400), st.floats(0, 400), st.floats(0, 20)),
    st.sampled_from([0.5, 1.0 - 1e-12]),
)
def test_kept_assets_without_band_match_reference(seed, long_only, c, fill):
    """Targets exactly equal to the current weight (nonzero) keep their shares without a band; with
    the others filling the bound (to 1e-12) the room beside them binds once costs shrink the equity.
    Both cores start from the same random book, so 'exactly equal' holds in both."""
    from benchmarks.portfolio_reference import ReferencePortfolioCore

    comm, slip, borrow = c
    lev = 1.0 if long_only else 1.5
    cfg = universe_env(
        window=3,
        episode_length=None,
        commission_bps=comm,
        slippage_bps=slip,
        borrow_bps_per_bar=borrow,
        long_only=long_only,
        gross_leverage=lev,
    )
    close, feats = panel(30, 4, seed % 7)
    rng = np.random.default_rng(seed)
    B, N, start = 6, 4, 5
    c1 = torch.as_tensor(close[start + 1])
    sh = torch.as_tensor(rng.uniform(0 if long_only else -300, 300, (B, N)))
    cash = torch.as_tensor(rng.uniform(0.0, 5e4, B)) + (sh.clamp(max=0) * c1).abs().sum(1) * 1.5
    v = sh * c1
    e0 = cash + v.sum(1)
    cur = v / e0[:, None]  # as the core computes the weights before the fill
    keep = torch.as_tensor(rng.random((B, N)) < 0.4)
    kept_total = torch.where(keep, cur if long_only else cur.abs(), 0.0).sum(1)
    raw = torch.as_tensor(rng.random((B, N)) if long_only else rng.uniform(-1, 1, (B, N)))
    raw = torch.where(keep, 0.0, raw)
    room = (lev - kept_total).clamp(min=0.0) * fill
    scale = room / (raw if long_only else raw.abs()).sum(1).clamp(min=1e-300)
    w = torch.where(keep, cur, raw * scale[:, None])
    total = w.sum(1) if long_only else w.abs().sum(1)
    if bool((total > lev).any()) or (long_only and bool((w < 0).any())):
        return  # the exact book does not fit the bound here; nothing to test
    outs = []
    for cls in (PortfolioCore, ReferencePortfolioCore):
        core = cls(close, feats, [f"T{i}" for i in range(N)], cfg, num_envs=B, seed=0, autoreset=False)
        core.reset(starts=start)
        core.cash, core.shares, core.equity = cash.clone(), sh.clone(), cash + (sh * core.close[start]).sum(1)
        outs.append(core.step(w.clone()))
    _assert_same_step(outs[0], outs[1], float(e0.abs().max()), c1)
    delta = outs[0][4]["traded_shares"]
    assert bool((delta[keep] == 0).all())  # kept assets keep their shares, exactly
