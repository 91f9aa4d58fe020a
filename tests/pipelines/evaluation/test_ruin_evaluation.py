"""Ruin is an outcome: one bankrupt lane never aborts the evaluation of the others.

A synthetic market falls from 200 to 50 over 100 bars, then rises 2 % a bar. With shorts allowed
(`environment.positions: [-1, 0, 1]`), through the real library path
(`backtests.backtest_split` -> `results.split_records` -> `seed_tables` / `records_json` ->
figures -> HTML report):

* an agent seed whose scripted policy always goes short is wiped out; its other seed (always long)
  and a second agent (always in cash) are not;
* the long/short momentum benchmark (lookback 100) shorts the fall and is still short when the rise
  doubles the price: ruined;
* many random-policy lanes are ruined.

Which lanes are ruined is read from the ledger independently (first equity <= 0), never from the
code under test.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from reinforce_strategy_creator.agents.networks import QPolicy
from reinforce_strategy_creator.artifacts import PolicyBundle
from reinforce_strategy_creator.env import BatchedTradingCore, EnvConfig, MarketArrays
from reinforce_strategy_creator.evaluation.backtests import (
    EvaluationParams,
    backtest_split,
    trading_setup,
)
from reinforce_strategy_creator.evaluation.gate import evaluate_gate
from reinforce_strategy_creator.evaluation.results import (
    evaluation_figures,
    records_json,
    report_html,
    seed_tables,
    split_records,
)
from reinforce_strategy_creator.evaluation.stats import deflated_sharpe_ratio
from tests.support.evaluation import make_history
from tests.support.project import PROJECT_ROOT

IDS = ["kind", "agent", "seed"]
COHORT = ["dsr", "random_percentile"]  # depend on the other runs of the split by definition


def market(
    n_fall: int = 100,
    n_rise: int = 160,
    top: float = 200.0,
    bottom: float = 50.0,
    rise: float = 0.02,
    start: str = "2015-01-02",
) -> pd.DataFrame:
    fall = top * (bottom / top) ** (np.arange(n_fall + 1) / n_fall)
    close = np.r_[fall, bottom * (1 + rise) ** np.arange(1, n_rise + 1)]
    open_ = np.r_[close[0], close[:-1]] * 1.001
    idx = pd.DatetimeIndex(pd.bdate_range(start, periods=close.size), name="date")
    return pd.DataFrame(
        {
            "feat_ret": np.r_[0.0, np.diff(np.log(close))].astype("float32"),
            "Open": open_,
            "High": np.maximum(open_, close) * 1.001,
            "Low": np.minimum(open_, close) * 0.999,
            "Close": close,
            "Volume": 1e6,
        },
        index=idx,
    )


def with_history(table: pd.DataFrame, bars: int = 120) -> pd.DataFrame:
    """primary_prices for ``table``: ``bars`` flat bars at its first close before it, then its prices
    (benchmarks read the history before the window, like the agents' features)."""
    first = table.index[0]
    idx = pd.DatetimeIndex(pd.bdate_range(end=first - pd.offsets.BDay(1), periods=bars), name="date")
    c = float(table["Close"].iloc[0])
    flat = pd.DataFrame(
        {"Open": c, "High": c * 1.001, "Low": c * 0.999, "Close": c, "Volume": 1e6}, index=idx
    )
    return pd.concat([flat, table[["Open", "High", "Low", "Close", "Volume"]]])


ENV = {
    "window": 5,
    "positions": [-1.0, 0.0, 1.0],
    "continuous": False,
    "initial_capital": 100_000.0,
    "commission_bps": 2.0,
    "slippage_bps": 3.0,
    "borrow_bps_per_bar": 0.04,
    "episode_length": None,
    "device": "cpu",
}


def scripted_bundle(table: pd.DataFrame, targets: dict[int, float], name: str) -> PolicyBundle:
    """A PolicyBundle whose seed s always chooses the position ``targets[s]``: a Q-network whose
    Q-values are constant (zero weights, a bias of 1 on that action)."""
    config = EnvConfig.from_params(ENV)
    feats = MarketArrays.from_frame(table)
    obs_dim = BatchedTradingCore(feats, config, 1, seed=0).obs_dim
    states, spec = {}, None
    for seed, target in targets.items():
        net = QPolicy(obs_dim, config.n_actions, (4,), "relu", dueling=False, algorithm="dqn")
        with torch.no_grad():
            net.q_head.weight.zero_()
            net.q_head.bias.zero_()
            net.q_head.bias[list(config.positions).index(target)] = 1.0
        states[seed] = {k: v.clone() for k, v in net.state_dict().items()}
        spec = dict(net.spec)
    spec.update(
        feature_names=list(feats.feature_names),
        window=config.window,
        positions=list(config.positions),
        environment=config.to_params(),
        seeds=list(targets),
        best_seed=next(iter(targets)),
        train_start="2014-01-01",
        train_end="2014-12-31",
        validation_start="2015-01-01",
        validation_end="2015-12-31",
        validation_scores={},
        validation_metric="sharpe",
    )
    return PolicyBundle(spec=spec, state_dicts=states, version=f"2024-01-01T00.00.00.000Z-{name}")


def eval_params(long_short: bool = True) -> dict:
    ev = yaml.safe_load((PROJECT_ROOT / "conf/base/parameters_evaluation.yml").read_text())["evaluation"]
    ev["benchmarks"].update(
        sma_fast=5,
        sma_slow=20,
        momentum_lookback=100,
        long_short=long_short,
        random_seeds=100,
        random_switch_prob=0.02,
    )
    return ev


@pytest.fixture(scope="session")  # session: not rebuilt when xdist interleaves modules
def world():
    torch.set_num_threads(1)
    # a one-bar crash from 200 to 50, then a steady rise; the history before each window is flat at
    # 200, so long/short momentum (lookback 100) is short from the first decision and stays short
    # while the rise wipes it out
    validation, test = market(n_fall=1), market(n_fall=1, rise=0.025, start="2016-01-04")
    policies = {
        "short_long": scripted_bundle(validation, {0: -1.0, 1: 1.0}, "short_long"),
        "cash": scripted_bundle(validation, {0: 0.0, 1: 0.0}, "cash"),
    }
    params = EvaluationParams.from_params(eval_params())
    ledgers = {
        s: backtest_split(t, EnvConfig.parse(ENV), params, policies, s, history=with_history(t))
        for s, t in (("validation", validation), ("test", test))
    }
    records = {s: split_records(led, s) for s, led in ledgers.items()}
    return {
        "tables": {"validation": validation, "test": test},
        "policies": policies,
        "params": params,
        "ledgers": ledgers,
        "records": records,
    }


def first_ruin(ledger: pd.DataFrame) -> pd.Series:
    """Independent: per (kind, run, seed), the position of the first equity <= 0 in bar order, or -1."""
    out = {}
    for key, g in ledger.groupby(["kind", "run", "seed"], sort=False):
        eq = g.sort_values("bar", kind="stable")["equity"].to_numpy()
        hits = np.flatnonzero(eq <= 0)
        out[key] = int(hits[0]) if hits.size else -1
    return pd.Series(out)


def test_ruined_lanes_exist_and_are_frozen_in_the_ledger(world):
    for split, ledger in world["ledgers"].items():
        ruin = first_ruin(ledger)
        assert ruin[("agent", "short_long", 0)] > 0 and ruin[("agent", "short_long", 1)] == -1
        assert ruin[("benchmark", "momentum", 0)] > 0, split
        assert ruin[("benchmark", "buy_and_hold", 0)] == -1
        n_random = int((ruin.loc["random"] > 0).sum())
        assert 0 < n_random < 100, split  # some, not all, random lanes are wiped out
        lane = ledger[(ledger["run"] == "short_long") & (ledger["seed"] == 0)]
        assert lane["bar"].duplicated().any()  # env.replay froze the lane: the bar of ruin repeats


def test_ruined_rows_are_flagged_and_measured_others_proceed(world):
    for split, records in world["records"].items():
        ruin = first_ruin(world["ledgers"][split])
        rec = records.set_index(IDS)
        assert len(rec) == len(ruin) == 2 * 2 + 2 + 4 + 100  # every run (and ensemble) has a row
        expected = {(k, r, s): bool(v > 0) for (k, r, s), v in ruin.items()}
        assert rec["ruined"].to_dict() == expected
        bad = rec[rec["ruined"]]
        assert (bad["total_return"] == -1.0).all() and (bad["max_drawdown"] == -1.0).all()
        assert (bad["annual_return"] == -1.0).all() and (bad["final_equity"] <= 0).all()
        assert bad["psr"].isna().all() and bad["dsr"].isna().all()
        assert bad["sharpe"].notna().all()  # measured up to the bar of ruin
        n_bars = {(k, r, s): v for (k, r, s), v in ruin.items() if v > 0}
        assert bad["n_bars"].to_dict() == n_bars  # returns up to and including the bar of ruin
        good = rec[~rec["ruined"]]
        assert (good["max_drawdown"] > -1.0).all() and (good["final_equity"] > 0).all()


def test_other_rows_equal_a_run_without_the_ruined_lanes(world):
    for split, rec in world["records"].items():
        ledger = world["ledgers"][split]
        ruin = first_ruin(ledger)
        alive = {key for key, v in ruin.items() if v < 0}
        keep = [key in alive for key in zip(ledger["kind"], ledger["run"], ledger["seed"])]
        clean = split_records(ledger[keep].reset_index(drop=True), split)
        assert not clean["ruined"].any()
        a = rec[~rec["ruined"]].drop(columns=COHORT).reset_index(drop=True)
        b = clean.drop(columns=COHORT).reset_index(drop=True)
        pd.testing.assert_frame_equal(a, b)
        # the cohort columns, recomputed by hand: a ruined seed counts as a DSR trial (not in the
        # variance) and ranks below every live random seed
        agents = rec[rec["kind"] == "agent"]
        trials = np.where(agents["ruined"], np.nan, agents["sharpe_per_bar"])
        for r in agents[~agents["ruined"]].itertuples():
            assert r.dsr == pytest.approx(
                deflated_sharpe_ratio(r.sharpe_per_bar, r.n_bars, trials, r.skew, r.kurtosis), nan_ok=True
            )
        rnd = rec[rec["kind"] == "random"]
        live = rnd.loc[~rnd["ruined"], "sharpe"].to_numpy()
        live = live[np.isfinite(live)]  # a lane that never traded has no Sharpe: not in the distribution
        n_dead = int(rnd["ruined"].sum())
        n = n_dead + len(live)
        for r in rec[rec["kind"] != "random"].itertuples():
            if r.ruined:
                expected = 100.0 * 0.5 * n_dead / n
            elif np.isnan(r.sharpe):
                expected = np.nan
            else:
                expected = 100.0 * (n_dead + (live < r.sharpe).sum() + 0.5 * (live == r.sharpe).sum()) / n
            assert r.random_percentile == pytest.approx(expected, nan_ok=True), (r.agent, r.seed)


def test_a_ruined_run_fails_the_gate(world):
    params = world["params"]
    for rec in world["records"].values():
        bh = rec[rec["agent"] == "buy_and_hold"].iloc[0].to_dict()
        for row in rec[rec["ruined"]].to_dict("records"):
            verdict = evaluate_gate(row, bh, params.gate)
            assert not verdict["passed"]
            assert (
                not verdict["rules"]["max_drawdown"]["passed"] and not verdict["rules"]["min_psr"]["passed"]
            )


def test_summaries_rank_the_ruined_agent_last_and_count_ruin(world):
    tables = seed_tables(world["records"]["validation"], world["records"]["test"], world["params"])
    summary = tables["summary"].set_index(["split", "agent"])
    assert summary.loc[("validation", "short_long"), "n_ruined"] == 1
    assert summary.loc[("validation", "cash"), "n_ruined"] == 0
    assert summary.loc[("test", "short_long"), "total_return_min"] == -1.0
    ranking = tables["ranking"]
    # cash never trades: its Sharpe is NaN, which alone would rank it last; wiping out the account
    # on one seed of two ranks short_long below it whatever its mean Sharpe
    assert np.isnan(summary.loc[("validation", "cash"), "sharpe_mean"])
    assert np.isfinite(summary.loc[("validation", "short_long"), "sharpe_mean"])
    assert list(ranking["agent"]) == ["cash", "short_long"]
    counts = ranking.set_index("agent").loc["short_long", ["validation_n_ruined", "test_n_ruined"]]
    assert counts.tolist() == [1, 1]
    for split in ("validation", "test"):
        n_dead = int(world["records"][split].query("kind == 'random'")["ruined"].sum())
        assert tables["random_policy"][split]["n_ruined"] == n_dead > 0
        assert np.isfinite(tables["random_policy"][split]["sharpe_p50"])
    doc = records_json(world["records"]["validation"], world["records"]["test"], tables)
    text = json.dumps(doc, allow_nan=False)  # strict JSON
    per_run = {(r["split"], r["kind"], r["agent"], r["seed"]): r for r in json.loads(text)["per_run"]}
    assert per_run[("test", "agent", "short_long", 0)]["ruined"] is True
    assert per_run[("test", "agent", "short_long", 0)]["total_return"] == -1.0
    assert per_run[("test", "agent", "short_long", 1)]["ruined"] is False
    # Parquet and CSV keep the flag as a boolean column
    rec = world["records"]["test"]
    assert rec["ruined"].dtype == bool


def test_figures_and_report_show_the_ruin(world, tmp_path):
    w, params = world, world["params"]
    tables = seed_tables(w["records"]["validation"], w["records"]["test"], params)
    champion = {"agent": "short_long", "seed": 0, "verdict_passed": False}  # the ruined lane's positions
    histories = {a: make_history(a, seeds=tuple(b.seeds)) for a, b in w["policies"].items()}
    figures = evaluation_figures(
        w["ledgers"]["validation"],
        w["ledgers"]["test"],
        w["tables"]["test"],
        w["records"]["validation"],
        w["records"]["test"],
        champion,
        histories,
        params,
    )
    labels = [ln.get_label() for ln in figures["equity_test"].axes[0].lines]
    assert any(lab.startswith("momentum — RUINED") for lab in labels), labels
    dd = {ln.get_label(): ln.get_ydata() for ln in figures["drawdowns_test"].axes[0].lines}
    assert min(dd["momentum — RUINED"]) == -1.0 and all(min(v) >= -1.0 for v in dd.values())
    for fig in figures.values():
        fig.savefig(tmp_path / "f.png")  # every figure renders
    setup = {
        "agents": sorted(w["policies"]),
        "seeds": {a: b.seeds for a, b in w["policies"].items()},
        "evaluation": params.to_dict(),
        "trading_setup": trading_setup(EnvConfig.from_params(ENV)),
    }
    periods = {
        s: {"start": str(t.index[0].date()), "end": str(t.index[-1].date()), "bars": len(t)}
        for s, t in w["tables"].items()
    }
    html = report_html(
        setup=setup,
        validation=w["records"]["validation"],
        test=w["records"]["test"],
        tables=tables,
        selection={"agent": None, "reason": "test"},
        verdict={"passed": False, "rules": {}},
        figures={},
        periods=periods,
    )
    assert html.count("<tr class='ruined'>") == 4  # short_long seed 0 and momentum, on both splits
    assert html.count(">RUINED</td>") == 4


def test_training_checkpoint_score_uses_the_same_ruin_rule(world):
    """training.validation_sharpe scores a wiped-out account -inf (never selected as a checkpoint),
    exactly when the evaluation flags the same replay ruined."""
    from reinforce_strategy_creator.agents import build_policy
    from reinforce_strategy_creator.env import replay
    from reinforce_strategy_creator.evaluation.metrics import evaluate_backtest
    from reinforce_strategy_creator.training import validation_sharpe

    table = world["tables"]["validation"]
    bundle = world["policies"]["short_long"]
    config, feats = EnvConfig.from_params(ENV), MarketArrays.from_frame(table)
    for seed, ruined in ((0, True), (1, False)):
        policy = build_policy(bundle.spec)
        policy.load_state_dict(bundle.state_dicts[seed])
        score = validation_sharpe(policy, feats, config, 252.0)
        lane = replay(feats, config, lambda obs, p=policy: p.act(obs, deterministic=True)).lane(0)
        assert evaluate_backtest(lane, periods_per_year=252.0)["ruined"] is ruined
        assert (score == -np.inf) is ruined and (ruined or np.isfinite(score))
