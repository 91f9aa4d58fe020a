"""A ruined lane in the stitched record is an outcome, not a crash: the judge still gives a verdict
with PBO and DSR over every candidate, the ruined one included, and the folds and the report show
the ruin as it is.

The record is the engine's own stitch of the S&P 500 test years 2015-2017 with every price from
mid-2016 on raised by 150 % overnight, traded by constant and feature-following policies (no
training): the always-short seed is wiped out by the gap and ``env.replay`` freezes its lane.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from reinforce_strategy_creator.candidates import ENSEMBLE_SEED
from reinforce_strategy_creator.evaluation.metrics import ruin_index
from reinforce_strategy_creator.evaluation.stats import deflated_sharpe_ratio
from reinforce_strategy_creator.experiments import deep_merge
from reinforce_strategy_creator.pipelines.walk_forward.nodes import render_report
from reinforce_strategy_creator.project_params import parameters
from reinforce_strategy_creator.walk_forward import engine
from reinforce_strategy_creator.walk_forward.tables import fold_tables

pytestmark = pytest.mark.slow  # two stitches with 100 random policies each: about 10 s

GAP = "2016-06-15"  # from this day on every price is 2.5 times what it was
SHORT, FLAT, LONG = 0, 1, 2  # action indices of environment.positions [-1, 0, 1]


class _Policy:
    """Always ``action``, or (with ``feature``) long while that observation value is positive,
    else flat."""

    def __init__(self, action: int, feature: int | None = None):
        self.action, self.feature = action, feature

    def act(self, obs: torch.Tensor, deterministic: bool = True) -> torch.Tensor:
        if self.feature is None:
            return torch.full((obs.shape[0],), self.action, dtype=torch.long)
        return torch.where(obs[:, self.feature] > 0, LONG, FLAT).long()

    def decide(self, obs: torch.Tensor, bar: int | None = None) -> torch.Tensor:
        return self.act(obs)


class _Bundle:
    """What the stitch reads of a PolicyBundle: its seeds and ``load_policy``."""

    seeds = (0, 1, 2, 3)
    policies = {
        0: _Policy(SHORT),
        1: _Policy(LONG),
        2: _Policy(0, 0),
        3: _Policy(0, 1),
        ENSEMBLE_SEED: _Policy(0, 2),
    }

    def load_policy(self, seed: int, device: str = "cpu", name: str = "") -> _Policy:
        return self.policies[seed]


def _params() -> dict:
    p = deep_merge(
        parameters("quick"),
        {"environment": {"positions": [-1, 0, 1], "device": "cpu"}, "walk_forward": {"folds": 3}},
    )
    return {k: p[k] for k in ("environment", "evaluation", "feature_engineering", "walk_forward")}


@pytest.fixture(scope="module", params=[LONG, SHORT], ids=["procedure_alive", "procedure_ruined"])
def judged(request, sp500):
    prices = sp500.copy()
    prices.loc[prices.index >= GAP, ["Open", "High", "Low", "Close"]] *= 2.5
    p = _params()
    features, plan = engine.plan(prices, p)
    window = p["environment"]["window"]
    champion_seed = 1 if request.param == LONG else 0
    results = [
        engine.FoldResult(
            fold,
            fold_tables(features, prices, fold, window, "standard"),
            {"ppo": _Bundle()},
            {"ppo": pd.DataFrame({"seed": [0, 1], "eval_score": [0.1, 0.2]})},
            pd.DataFrame(),
            {"agent": "ppo", "seed": champion_seed, "validation": {"sharpe": 1.0}},
            {"ppo": 1},
        )
        for fold in plan.folds
    ]
    record = engine.stitch(results, features, prices, p)
    verdict, decision = engine.judge(record, results, p)
    return request.param, record, results, verdict, decision, p


def test_the_short_seed_is_ruined_by_the_gap_and_frozen(judged):
    _, record, *_ = judged
    lane = record.ledger[(record.ledger["kind"] == "agent") & (record.ledger["seed"] == 0)]
    k = ruin_index(lane["equity"])
    assert k is not None and lane["date"].iloc[k] == pd.Timestamp(GAP)
    assert lane["equity"].iloc[k:].nunique() == 1  # env.replay freezes it
    recs = record.records[record.records["kind"] == "agent"].set_index("seed")
    assert recs["ruined"].to_dict() == {0: True, 1: False, 2: False, 3: False}


def test_the_verdict_has_pbo_over_every_candidate_and_dsr_counting_the_ruined_trial(judged):
    champion, record, results, verdict, decision, _ = judged
    pbo = verdict["pbo"]
    assert 0.0 <= pbo["pbo"] <= 1.0 and pbo["reason"] is None
    assert pbo["n_candidates"] == 4 and pbo["n_ruined"] == 1 and pbo["n_combinations"] == 12870
    trials = record.records[record.records["kind"].isin(["agent", "ensemble"])]
    assert verdict["dsr"]["n_trials"] == len(trials) == 5
    proc = record.records[record.records["kind"] == "procedure"].iloc[0]
    if champion == SHORT:  # the procedure is the ruined lane: no PSR, no DSR, the gate fails
        assert proc["ruined"]
        assert verdict["dsr"]["value"] is None and verdict["deflation"]["value"] is None
        assert decision["deflated_psr"] is None and not verdict["passed"]
        assert not verdict["rules"]["min_psr"]["passed"]
        return
    # the ruined trial is counted (N = 5) but its Sharpe is not in the variance of the trials
    sharpes = np.where(trials["ruined"], np.nan, trials["sharpe_per_bar"])
    expected = deflated_sharpe_ratio(
        proc["sharpe_per_bar"], int(proc["n_bars"]), sharpes, proc["skew"], proc["kurtosis"]
    )
    assert verdict["dsr"]["value"] == pytest.approx(expected, rel=1e-12)
    assert 0.0 <= verdict["deflation"]["value"] <= 1.0


def test_the_folds_show_the_ruin_as_it_is_and_the_report_renders(judged):
    champion, record, results, verdict, _, p = judged
    folds = record.folds.set_index("label")
    ruined_in = folds.index[folds["test_start"] <= GAP][-1]  # 2016
    for col in ("procedure_test_sharpe", "procedure_test_return", "buy_and_hold_test_return"):
        assert not np.isinf(folds[col].to_numpy(dtype=float)).any()
    if champion == SHORT:
        assert folds.loc[ruined_in, "procedure_test_return"] == -1.0
        assert math.isfinite(folds.loc[ruined_in, "procedure_test_sharpe"])
        after = folds.index > ruined_in
        assert folds.loc[after, ["procedure_test_sharpe", "procedure_test_return"]].isna().all().all()
        assert folds.loc[~after & (folds.index < ruined_in), "procedure_test_return"].notna().all()
    else:
        assert folds["procedure_test_return"].notna().all() and (folds["procedure_test_return"] > -1).all()
    page = render_report(record, verdict, p["environment"])  # the stitched equity and per-fold figures too
    assert "Walk-forward verdict" in page and "Probability of backtest overfitting" in page
