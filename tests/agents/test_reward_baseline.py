"""The learner's anchor on the benchmark (``reward_baseline``, ``deviation_penalty``,
docs/agents.md): at any N the trainers learn on the reward minus the benchmark book's log return
over the same bar (buy-and-hold at N = 1, equal weight at N >= 2) and minus the penalty times
the chosen book's L1 distance from the benchmark's, through one function
(``population.learning_step``), while the histories keep the reward itself."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from reinforce_strategy_creator.agents import a2c, buffers, dqn, ppo
from reinforce_strategy_creator.agents.members import actor_critic_population, member_env, q_population
from reinforce_strategy_creator.agents.population import (
    MemberEnvs,
    PopulationTrackers,
    PortfolioLanes,
    learning_step,
)
from reinforce_strategy_creator.env import EnvConfig, TradingVectorEnv
from reinforce_strategy_creator.env.portfolio import PortfolioCore
from reinforce_strategy_creator.panel import PortfolioPanel, fit_feature_scaler
from reinforce_strategy_creator.params.agents import agent_config
from tests.support.env import make_market, universe_env

torch.set_num_threads(1)

W, LANES, SEEDS = 4, 4, [1, 2]
TINY = {
    "ppo": dict(total_steps=2 * 2 * 16 * LANES, num_steps=16, num_minibatches=2, update_epochs=1),
    "a2c": dict(total_steps=2 * 2 * 8 * LANES, num_steps=8),
    "dqn": dict(total_steps=2 * 64 * LANES, learning_starts=16, batch_size=16, buffer_size=256, n_step=2),
}
TRAINERS = {"ppo": (ppo, ppo.train_ppo), "a2c": (a2c, a2c.train_a2c), "dqn": (dqn, dqn.train_dqn)}


def _panel(n: int, T: int = 160, seed: int = 0) -> PortfolioPanel:
    """Random-walk closes (the last ticker listed from row 30 when n > 1), causal features."""
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0.0003, 0.01, (T, n)), 0))
    if n > 1:
        close[:30, -1] = np.nan
    f = np.full((T, n, 1), np.nan)
    f[1:, :, 0] = np.diff(np.log(close), axis=0)
    dates = pd.bdate_range("2003-01-01", periods=T)
    return PortfolioPanel(close, f.astype(np.float32), [f"T{i}" for i in range(n)], dates, ("r1",))


def _members(case: str):
    """(member envs, trainer keywords, (T, N) closes): ``N=1`` single-asset vector envs over one
    market (the members fuse into one core), ``N=4`` universe cores."""
    if case.startswith("N=1"):
        market = make_market(n_bars=160, n_features=2, seed=3)
        fill = "next_open" if case.endswith("next_open") else "next_close"
        cfg = EnvConfig(window=W, episode_length=24, device="cpu", fill_price=fill)
        envs = [TradingVectorEnv(market, cfg, LANES, seed=0) for _ in SEEDS]
        return envs, {}, np.asarray(market.close, dtype=np.float64)[:, None]
    panel = _panel(4)
    env = universe_env(window=W, episode_length=24)
    cores = [PortfolioCore(panel.close, panel.features, panel.tickers, env, LANES, seed=0) for _ in SEEDS]
    return cores, dict(scaler=fit_feature_scaler(panel, slice(None))), panel.close


def _bars(lanes) -> np.ndarray:
    """(K*B,) the bar each lane sits at (member-major, as the lanes' steps)."""
    if isinstance(lanes, PortfolioLanes):
        return torch.cat([c.t for c in lanes.cores]).numpy().copy()
    return torch.cat([e.envs.core.t for e, _, _ in lanes.groups]).numpy().copy()


def _hand_benchmark(close: np.ndarray, t0: np.ndarray) -> np.ndarray:
    """The benchmark's log return from each lane's bar to the next, from the prices: the mean
    price ratio over the assets priced at both bars (buy-and-hold at N = 1)."""
    a, b = close[t0], close[t0 + 1]
    ok = np.isfinite(a) & np.isfinite(b)
    return np.log(np.where(ok, b / np.where(ok, a, 1.0), 0.0).sum(1) / ok.sum(1))


def _hand_deviation(actions: torch.Tensor, close: np.ndarray, t0: np.ndarray, positions) -> np.ndarray:
    """Each lane's L1 distance from the benchmark's book, from the actions: ``|position - 1|`` at
    N = 1, ``sum |w - 1/n|`` over the n assets priced at the lane's bar at N >= 2."""
    if close.shape[1] == 1:
        return np.abs(np.asarray(positions, dtype=np.float64)[actions.numpy()] - 1.0)
    ok = np.isfinite(close[t0])
    return np.abs(actions.numpy().astype(np.float64) - ok / ok.sum(1, keepdims=True)).sum(1)


PENALTY = 0.01


@pytest.mark.parametrize("algo", ["ppo", "a2c", "dqn"])
@pytest.mark.parametrize(
    "baseline, penalty", [("benchmark", 0.0), ("none", 0.0), ("none", PENALTY), ("benchmark", PENALTY)]
)
@pytest.mark.parametrize("case", ["N=1", "N=1 next_open", "N=4"])
def test_learning_sees_the_reward_minus_the_benchmark_and_histories_the_reward(
    monkeypatch, case, baseline, penalty, algo
):
    module, train = TRAINERS[algo]
    members, kw, close = _members(case)
    reported, hand, learned, tracked = [], [], [], []

    real_member_env = module.member_env

    def spied_member_env(*args):
        lanes = real_member_env(*args)
        assert isinstance(lanes, MemberEnvs if case.startswith("N=1") else PortfolioLanes)
        real_step = lanes.step

        def step(actions):
            t0 = _bars(lanes)
            out = real_step(actions)
            reported.append(out.reward.numpy().copy())
            off = _hand_benchmark(close, t0) if baseline == "benchmark" else np.zeros(len(t0))
            if penalty:
                off = off + penalty * _hand_deviation(actions, close, t0, (0.0, 1.0))
            hand.append(off)
            return out

        lanes.step = step
        return lanes

    def spy(record, real):
        def wrapper(self, *args):
            record.append(args[-1].reward.numpy().copy())  # the Step is every sink's last argument
            return real(self, *args)

        return wrapper

    monkeypatch.setattr(module, "member_env", spied_member_env)
    if algo == "dqn":
        monkeypatch.setattr(buffers.NStepAccumulator, "push", spy(learned, buffers.NStepAccumulator.push))
    else:
        monkeypatch.setattr(buffers.RolloutBuffer, "store", spy(learned, buffers.RolloutBuffer.store))
    monkeypatch.setattr(PopulationTrackers, "on_step", spy(tracked, PopulationTrackers.on_step))

    cfg = dict(TINY[algo], reward_baseline=baseline, deviation_penalty=penalty)
    train(members, cfg, seeds=SEEDS, device="cpu", progress=False, eval_every=100, **kw)

    reported, hand, tracked = np.stack(reported), np.stack(hand), np.stack(tracked)
    learned = np.stack(learned).reshape(len(reported), -1)  # DQN pushes member by member
    assert len(reported) >= 16 and np.array_equal(tracked, reported)  # histories: the reward
    if baseline == "none" and not penalty:
        assert np.array_equal(learned, reported)
        return
    assert np.abs(hand).max() > 1e-3  # the prices moved, the books deviated: the comparison can fail
    np.testing.assert_allclose(learned, reported - hand, rtol=0, atol=2e-7)


@pytest.mark.parametrize("fill_price", ["next_close", "next_open"])
def test_holding_the_asset_earns_no_excess_after_its_first_bar(fill_price):
    """At N = 1 the benchmark is the book that holds the asset: a lane that holds position 1
    learns a zero reward once in, under either fill price (no costs, close-to-close marks)."""
    market = make_market(n_bars=160, n_features=2, seed=5)
    cfg = EnvConfig(window=W, episode_length=40, device="cpu", fill_price=fill_price, positions=(0.0, 1.0))
    lanes = MemberEnvs([TradingVectorEnv(market, cfg, LANES, seed=0)], [0], torch.device("cpu"), "benchmark")
    lanes.reset()
    long = torch.ones(LANES, dtype=torch.long)
    first = learning_step(lanes, lanes.step(long))
    assert first.reward.abs().max() > 1e-5  # the entry bar pays its costs (and its fill)
    for _ in range(30):
        step = lanes.step(long)
        assert step.reward.abs().max() > 1e-4
        assert learning_step(lanes, step).reward.abs().max() < 1e-6


def test_the_old_baseline_name_is_refused_with_its_new_name():
    from reinforce_strategy_creator.params.agents import ParameterError, PPOConfig

    with pytest.raises(ParameterError, match=r"training\.ppo\.reward_baseline.*'benchmark'"):
        PPOConfig.from_params({"reward_baseline": "equal_weight"})


@pytest.mark.parametrize("algo", ["ppo", "dqn"])
@pytest.mark.parametrize("case", ["N=1", "N=4"])
def test_an_untrained_policy_started_at_the_benchmark_chooses_its_book(case, algo):
    """``start_at_benchmark``: the members as built hold the benchmark (fully long at N = 1,
    about equal weight with almost no cash at N >= 2) under the deterministic policy, and the
    seed's weights are those of a plain start except the output layer's."""
    built = {}
    for start in (True, False):
        members, kw, _ = _members(case)
        cfg = agent_config(algo, dict(TINY[algo], start_at_benchmark=start), universe=case == "N=4")
        lanes = member_env(members[:1], SEEDS[:1], torch.device("cpu"), cfg)
        if algo == "dqn":
            policy = q_population(lanes, SEEDS[:1], cfg, "cpu", kw.get("scaler"))[0][0]
        else:
            policy = actor_critic_population(lanes, SEEDS[:1], cfg, algo, "cpu", kw.get("scaler"))[0][0]
        obs = lanes.reset()
        built[start] = (np.asarray(policy.decide(obs) if case == "N=1" else policy.decide(obs, None)), policy)
    (book, started), (plain_book, plain) = built[True], built[False]
    if case == "N=1":
        assert (book == 1).all() and not (plain_book == 1).all()
    else:
        np.testing.assert_allclose(book.sum(1), 1.0, atol=0.01)  # almost no cash
        for row in book:  # equal over the listed assets (three before the fourth lists)
            assert np.ptp(row[row > 1e-6]) < 0.01 and (row > 1e-6).sum() >= 3
    moved = [k for k, v in plain.state_dict().items() if not torch.equal(v, started.state_dict()[k])]
    outputs = {"score", "cash_score", "asset_head", "book_head", "adv_head", "q_head"}
    if hasattr(plain, "actor"):
        outputs.add(f"actor.{len(plain.actor) - 1}")
    assert moved and {k.rsplit(".", 1)[0] for k in moved} <= outputs  # the output layers only
