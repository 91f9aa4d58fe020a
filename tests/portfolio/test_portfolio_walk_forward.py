"""The walk-forward engine on a universe (walk_forward/universe.py): folds read nothing after their
validation window, the stitched record hands each bar to the right fold's choice and reconciles,
the judge is the engine's, and on markets we made the gate fails on no structure and passes on a
planted rotation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from reinforce_strategy_creator.agents.ensemble import PolicyLanes
from reinforce_strategy_creator.candidates import ENSEMBLE_SEED
from reinforce_strategy_creator.evaluation.harm import harm
from reinforce_strategy_creator.evaluation.replay import replay_weights
from reinforce_strategy_creator.markets import null_market, planted_rotation_market
from reinforce_strategy_creator.panel import PortfolioPanel, feature_warmup, portfolio_features
from reinforce_strategy_creator.params.evaluation import EvaluationParams
from reinforce_strategy_creator.params.portfolio import PortfolioParams
from reinforce_strategy_creator.params.walk_forward import WalkForwardParams
from reinforce_strategy_creator.project_params import parameters
from reinforce_strategy_creator.universe import read_universe_csv
from reinforce_strategy_creator.walk_forward import plan_folds
from reinforce_strategy_creator.walk_forward import universe as pwf
from reinforce_strategy_creator.walk_forward.stitch import FoldSwitch
from tests.support.env import universe_env
from tests.support.project import SP500_20_CSV

SPEC = {"indicators": {"logret": {"periods": [1, 5, 20]}}, "recursive_warmup": 3}
WALK_FORWARD = {
    "paper_years": 0,
    "folds": 2,
    "test_years": 1,
    "validation_years": 1,
    "min_train_years": 2,
    "anchor": "data_end",
}
EVALUATION = {"selection": "best_agent_best_seed", "ensembles": True}
ENV = universe_env(window=4, episode_length=64)
TINY = {
    "training": {
        "seeds": [0, 1],
        "num_envs": 8,
        "eval_every": 1,
        "patience": 2,
        "agents": {"ppo": {"algorithm": "ppo", "total_steps": 1024, "num_steps": 32, "num_minibatches": 2}},
    },
    "benchmarks": {"names": ["equal_weight", "buy_and_hold", "random"]},
}


def _panel(close: pd.DataFrame):
    return portfolio_features(close, SPEC)


def _warmup() -> int:
    return feature_warmup(SPEC) + ENV.window - 1


def _plan(panel):
    return plan_folds(
        panel.dates, WalkForwardParams.parse(WALK_FORWARD), embargo_bars=0, warmup_bars=_warmup()
    )


@pytest.fixture(scope="module", params=[1, 4], ids=["N=1", "N=4"])
def small_panel(request):
    """A planted-rotation universe of 4 assets, or its first asset alone: the same engine serves
    a universe of one."""
    torch.set_num_threads(1)
    close = planted_rotation_market(
        read_universe_csv(SP500_20_CSV).field("Close"), 3, n_assets=4, n_bars=1350
    ).close
    return _panel(close.iloc[:, : request.param])


@pytest.fixture(scope="module")
def tiny_run(small_panel):
    return pwf.run_walk_forward(
        small_panel, TINY, EVALUATION, WALK_FORWARD, environment=ENV, warmup=_warmup()
    )


def test_fold_panels_stop_at_the_validation_window(small_panel):
    plan = _plan(small_panel)
    for fold in plan.folds:
        train, validation = pwf.fold_panels(small_panel, fold, window=4)
        assert train.dates[-1] < validation.dates[3]  # training ends before the first validation decision
        assert validation.dates[-1] == fold.validation.end
        assert validation.dates[3] == fold.validation.start  # window - 1 history rows, then the window


@pytest.mark.slow
def test_a_fold_reads_nothing_after_its_validation_window(small_panel, tiny_run):
    """Every close after the fold's validation end is changed: the trained weights, validation
    records and champion are identical (the unchanged side is the first fold of ``tiny_run``,
    ``run_fold`` with the same plan and parameters)."""
    params, ev = PortfolioParams.parse(TINY), EvaluationParams.parse(EVALUATION)
    fold = _plan(small_panel).folds[0]
    a = tiny_run[1][0]
    assert a.fold == fold
    close = pd.DataFrame(small_panel.close, index=small_panel.dates, columns=list(small_panel.tickers))
    later = close.index > fold.validation.end
    noise = np.random.default_rng(0).normal(0, 0.05, (later.sum(), small_panel.n_assets))
    close.loc[later] = close.loc[later] * np.exp(noise)
    changed = _panel(close)
    assert not np.allclose(changed.close, small_panel.close, equal_nan=True)
    b = pwf.run_fold(fold, changed, params, ev, environment=ENV)
    for seed in a.bundles["ppo"].seeds:
        for k, v in a.bundles["ppo"].state_dicts[seed].items():
            assert torch.equal(v, b.bundles["ppo"].state_dicts[seed][k]), k
    pd.testing.assert_frame_equal(a.validation, b.validation)
    assert a.champion == b.champion


@pytest.mark.parametrize("n_assets", [1, 4])
def test_fold_switch_hands_each_bar_to_its_fold(n_assets):
    """Through the universe's kernel, at N = 1 and N > 1: fold k's decider decides from its start."""
    rng = np.random.default_rng(0)
    close = 50 * np.exp(np.cumsum(0.01 * rng.standard_normal((60, n_assets)), axis=0))
    panel = PortfolioPanel(
        close,
        np.zeros((60, n_assets, 1), np.float32),
        tuple("ABCD"[:n_assets]),
        pd.bdate_range("2021", periods=60),
    )
    calls = []

    def decider(k):
        def decide(obs):
            calls.append(k)
            w = np.zeros((1, n_assets))
            w[0, 0] = 0.5 * k
            return w

        return decide

    run = replay_weights(panel, universe_env(window=4), FoldSwitch([decider(0), decider(1)], [3, 30]))
    assert calls == [0] * (30 - 3) + [1] * (59 - 30)  # decisions at bars 3 .. 58
    assert np.all(run.targets[0, : 30 - 3, 0] == 0.0) and np.all(run.targets[0, 30 - 3 : -1, 0] == 0.5)
    with pytest.raises(ValueError, match="before the first fold"):
        FoldSwitch([decider(0)], [5])(torch.zeros(1, 3), 4)


@pytest.mark.slow
def test_stitched_record_lanes_benchmarks_and_reconciliation(tiny_run, small_panel):
    record, results, verdict = tiny_run
    ledger = record.ledger
    kinds = set(ledger["kind"])
    assert {"procedure", "agent_selected", "agent", "ensemble", "benchmark", "random"} <= kinds
    # every lane starts on the same bar with the same capital and ends on the same bar
    firsts = ledger.groupby(["kind", "run", "seed"])["date"].min()
    lasts = ledger.groupby(["kind", "run", "seed"])["date"].max()
    assert firsts.nunique() == 1 and lasts.nunique() == 1
    start = ledger[ledger["bar"] == ledger["bar"].min()]
    assert (start["equity"] == 100_000.0).all()
    assert firsts.iloc[0] == results[0].fold.test.start
    assert record.reconciliation["reconciled"] and record.reconciliation["max_book_gap"] < 1e-6
    # the procedure lane is, fold by fold, its champion's own decisions
    run = record.runs["agents"]
    lane = next(i for i, (k, _, _) in enumerate(record.lanes) if k == "procedure")
    stretch = small_panel.window(results[0].fold.test.first_row, results[-1].fold.test.stop_row, 3)
    for r in results:
        want = PolicyLanes([r.bundles[r.champion["agent"]].load_policy(r.champion["seed"])])
        rows = np.flatnonzero((run.dates >= r.fold.test.start) & (run.dates <= r.fold.test.end))
        rows = rows[rows < len(run.dates) - 1]
        for i in rows[:5]:
            bar = int(run.bars[i])
            # rebuild the observation the procedure saw at that bar from its own state
            obs = _observation(stretch, run, lane, i)
            assert np.allclose(want(obs, bar).numpy()[0], run.targets[lane, i], atol=1e-12)
    assert verdict["decided_on"]["split"] == "walk_forward"
    assert verdict["universe"] == list(small_panel.tickers)
    assert set(verdict["rules"]) >= {"min_sharpe", "max_drawdown", "beats_buy_and_hold", "min_psr"}


def _observation(panel, run, lane, i):
    """The (1, obs_dim) observation of ``lane`` at record row ``i`` (features up to that bar, the
    lane's weights and cash there, tradable flags), ``panel`` the replayed stretch."""
    W = 4
    bar = int(run.bars[i])
    feats = np.nan_to_num(panel.features[bar - W + 1 : bar + 1], nan=0.0).transpose(1, 0, 2).reshape(-1)
    w = run.weights[lane, i]
    cash = run.cash[lane, i] / run.equity[lane, i]
    tradable = np.isfinite(panel.close[bar]).astype(np.float32)
    return torch.as_tensor(np.concatenate([feats, w, [cash], tradable]), dtype=torch.float32)[None]


@pytest.fixture(scope="module")
def real_close():
    return read_universe_csv(SP500_20_CSV).field("Close")


GATE_ENV = universe_env(window=4, episode_length=128)
#: the portfolio PPO's anchor on equal weight, as conf/base sets it (docs/agents.md, "Anchored on
#: the benchmark")
ANCHOR = {
    k: parameters()["portfolio"]["training"]["agents"]["ppo"][k]
    for k in ("reward_baseline", "deviation_penalty", "start_at_benchmark", "benchmark_margin")
}
GATE_RUN = {
    "training": {
        "seeds": [0, 1],
        "num_envs": 32,
        "eval_every": 8,
        "patience": 4,
        "agents": {
            "ppo": {  # the settings docs/learning.md chose on other universes' validation rows
                "algorithm": "ppo",
                "total_steps": 65536,
                "num_steps": 32,
                "learning_rate": 0.001,
                "gamma": 0.5,
                "ent_coef": 0.01,
                "decision_temperature": 0.25,
                **ANCHOR,
            }
        },
    },
    "benchmarks": {"names": ["equal_weight", "buy_and_hold", "random"]},
}
GATE_FOLDS = {**WALK_FORWARD, "folds": 5, "min_train_years": 4}
#: A stronger planting than the library's default edge (0.003): with 0.003 the same procedure
#: reaches a stitched Sharpe of 0.95 against equal-weight buy-and-hold's 1.01 on universe 0 and
#: fails; with 0.005, universes 0 and 2 pass and universe 1 fails on drawdown alone (26 % > 25 %):
#: docs/walk_forward.md, "Gates on markets we made".
PLANTED_EDGE = 0.005


@pytest.mark.slow
def test_on_a_universe_without_structure_the_procedure_does_no_harm_and_the_gate_fails(real_close):
    """Real days of the 20 stocks resampled i.i.d. (5 tickers): nothing to learn. The procedure
    keeps equal weight's Sharpe and exposure (the do-no-harm band of equal weight bought and
    held, docs/learning.md, "Do no harm") and the gate fails."""
    torch.set_num_threads(1)
    close = null_market(real_close[["AAPL", "JNJ", "XOM", "KO", "JPM"]], seed=11, n_bars=2800).close
    panel = _panel(close)
    record, _, verdict = pwf.run_walk_forward(
        panel, GATE_RUN, EVALUATION, GATE_FOLDS, environment=GATE_ENV, warmup=_warmup()
    )
    recs = record.records
    proc = recs[recs["kind"] == "procedure"].iloc[0]
    held = recs[(recs["kind"] == "benchmark") & (recs["agent"] == "buy_and_hold")].iloc[0]
    print(
        f"\nNULL UNIVERSE: procedure {proc['sharpe']:.2f} vs {held['sharpe']:.2f}, exposure "
        f"{proc['avg_gross_exposure']:.2f} vs {held['avg_gross_exposure']:.2f}, "
        f"turnover {proc['annual_turnover']:.1f}"
    )
    band = harm(
        proc["sharpe"],
        proc["avg_gross_exposure"],
        proc["annual_turnover"],
        held["sharpe"],
        held["avg_gross_exposure"],
    )
    # turnover is not in the band yet at N >= 2 (28 a year here; docs/learning.md, "Do no harm")
    assert band.sharpe and band.exposure, band
    assert verdict["passed"] is False, verdict["rules"]


@pytest.mark.slow
def test_gate_passes_on_a_planted_rotation_universe(real_close):
    """The same procedure and gate on a universe whose trailing leader keeps outperforming."""
    torch.set_num_threads(1)
    close = planted_rotation_market(real_close, 0, PLANTED_EDGE, n_assets=5, n_bars=2800).close
    panel = _panel(close)
    _, _, verdict = pwf.run_walk_forward(
        panel, GATE_RUN, EVALUATION, GATE_FOLDS, environment=GATE_ENV, warmup=_warmup()
    )
    assert verdict["passed"] is True, (verdict["rules"], verdict["procedure"], verdict["buy_and_hold"])


def test_replay_of_a_constant_decider_matches_its_ledger(small_panel):
    """The ledger builder keeps kind/run/seed per lane and the replay's equity."""
    from reinforce_strategy_creator.evaluation.replay import constant_weights

    env = ENV
    win = small_panel.rows(0, 80)
    n = small_panel.n_assets
    run = replay_weights(win, env, constant_weights([[1 / n] * n, [0.5] + [0.0] * (n - 1)]), num_lanes=2)
    frame = pwf.lane_ledger(run, [("agent", "a", 0), ("ensemble", "a", ENSEMBLE_SEED)], "test")
    assert list(frame.groupby(["kind", "seed"]).size().index) == [("agent", 0), ("ensemble", ENSEMBLE_SEED)]
    got = frame[frame["kind"] == "ensemble"]["equity"].to_numpy()
    assert np.array_equal(got, run.equity[1])
