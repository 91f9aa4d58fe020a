"""Figures return real Figures; the HTML report is self-contained and complete."""

from __future__ import annotations

import base64
import json
import re

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from reinforce_strategy_creator.evaluation import figures as F
from reinforce_strategy_creator.evaluation.gate import GateParams, select_champion
from reinforce_strategy_creator.evaluation.metrics import EvaluationInputError, bar_returns
from reinforce_strategy_creator.evaluation.report import (
    check_identical_setup,
    metrics_table,
    render_html_report,
    table_to_json,
)
from reinforce_strategy_creator.evaluation.verdict import decide

IDX = pd.bdate_range("2015-01-01", periods=120)
RNG = np.random.default_rng(3)
EQ = {
    "ppo": pd.Series(1e5 * np.exp(np.cumsum(RNG.normal(0.001, 0.01, 120))), index=IDX),
    "buy_and_hold": pd.Series(1e5 * np.exp(np.cumsum(RNG.normal(0.0005, 0.012, 120))), index=IDX),
}


def test_figures_are_figures_with_expected_content():
    fig = F.equity_curves_figure(EQ, benchmarks=["buy_and_hold"])
    ax = fig.axes[0]
    assert isinstance(fig, Figure) and ax.get_yscale() == "log" and len(ax.lines) == 2
    assert ax.lines[1].get_linestyle() == "--"
    dd = F.drawdowns_figure(EQ).axes[0].lines[0].get_ydata()
    assert dd.max() <= 0 and dd.min() < 0
    pos = pd.Series(np.r_[np.zeros(10), np.ones(30), np.zeros(20), -np.ones(30), np.ones(30)], index=IDX)
    pfig = F.positions_figure(EQ["buy_and_hold"], pos)
    entries, exits = pfig.axes[0].collections[:2]
    assert len(entries.get_offsets()) == 3 and len(exits.get_offsets()) == 2  # flip = exit + entry
    rets = {k: bar_returns(v) for k, v in EQ.items()}
    assert len(F.rolling_sharpe_figure(rets, 20, 252).axes[0].lines) == 3  # 2 + zero line
    rf = F.random_sharpe_figure(RNG.normal(0, 0.5, 100), {"ppo": 1.2})
    assert "ppo" in rf.axes[0].get_legend().get_texts()[1].get_text()
    hist = pd.DataFrame(
        {
            "step": [0, 10, 20, 30],
            "episode_return": [0.1, 0.2, 0.1, 0.3],
            "eval_score": [np.nan, 0.5, np.nan, 0.7],
        }
    )
    lf = F.learning_curves_figure({"ppo/seed 0": hist})
    assert len(lf.axes) == 2 and len(lf.axes[1].lines[0].get_xdata()) == 2  # NaN evals skipped


def test_figure_input_errors():
    with pytest.raises(EvaluationInputError, match="positive"):
        F.equity_curves_figure({"x": pd.Series([-1.0, 1.0])})  # a curve starts at the initial capital
    with pytest.raises(EvaluationInputError, match="none of the columns"):
        F.learning_curves_figure({"a": pd.DataFrame({"step": [1]})})
    with pytest.raises(EvaluationInputError, match="position"):
        F.positions_figure(EQ["ppo"], pd.Series([0.0], index=IDX[:1]))


def test_identical_setup_check():
    s = {"initial_capital": 1e5, "commission_bps": 2.0, "slippage_bps": 3.0}
    assert check_identical_setup({"ppo": s, "buy_and_hold": dict(s)}) == s
    with pytest.raises(EvaluationInputError, match="buy_and_hold.*commission_bps"):
        check_identical_setup({"ppo": s, "buy_and_hold": {**s, "commission_bps": 0.0}})


def test_html_report_is_self_contained_and_complete():
    val = pd.DataFrame(
        {
            "agent": ["ppo", "dqn"],
            "seed": [0, 0],
            "sharpe": [1.5, 0.9],
            "max_drawdown": [-0.1, -0.12],
            "psr": [0.97, 0.7],
            "win_rate": [0.55, np.nan],
            "n_bars": [504, 504],
            "sharpe_per_bar": [1.5 / 252**0.5, 0.9 / 252**0.5],
            "skew": [0.0, 0.0],
            "kurtosis": [3.0, 3.0],
        }
    )
    test = val.assign(sharpe=[2.8, 0.3], sharpe_per_bar=[2.8 / 252**0.5, 0.3 / 252**0.5], n_bars=[753, 753])
    params = GateParams.from_params(
        {"min_sharpe": 0.5, "max_drawdown": 0.3, "must_beat_buy_and_hold": True, "min_psr": 0.9}
    )
    champ = select_champion(val, "sharpe")
    effort = {
        "n_trials": 12,
        "trials_by_agent": {"ppo": 6, "dqn": 6},
        "trial_sharpe_per_bar": list(np.linspace(-0.05, 0.1, 12)),
    }
    verdict, _ = decide(
        champion_validation=champ["validation"],
        champion_test=test.iloc[0].to_dict(),
        test_buy_and_hold={"sharpe": 0.6, "sharpe_per_bar": 0.6 / 252**0.5},
        params=params,
        effort=effort,
        earlier_decisions=[],
        window={"start": "2016-01-04", "end": "2018-12-31"},
        data_fingerprint="d" * 64,
        config="c" * 64,
    )
    champ = {**champ, "test": test.iloc[0].to_dict()}
    table = metrics_table(val)
    assert list(table.columns)[:2] == ["agent", "seed"]
    assert table_to_json(table)[1]["win_rate"] is None
    html = render_html_report(
        title="S&P 500 <daily> evaluation",
        description="PPO and DQN, 1 seed each, vs benchmarks.",
        periods={
            "validation": {"start": "2014-01-02", "end": "2015-12-31", "bars": 504},
            "test": {"start": "2016-01-04", "end": "2018-12-31", "bars": 753},
        },
        trading_setup={"initial_capital": 100000.0, "commission_bps": 2.0, "slippage_bps": 3.0},
        tables={"Validation metrics": table},
        verdict=verdict,
        champion=champ,
        figures={"Equity": F.equity_curves_figure(EQ)},
        random_policy={"n_seeds": 100, "agent_percentiles": {"ppo": 97.0}},
    )
    assert html.startswith("<!DOCTYPE html>") and html.endswith("</html>")
    for needed in (
        "2014-01-02",
        "2018-12-31",
        "commission_bps",
        "Champion",
        "ppo",
        "Caveats",
        "PASSED",
        "Validation metrics",
        "agent_percentiles",
        "identical for every agent",
        "decided on the test window 2016-01-04 .. 2018-12-31",
        "12 trials scored",
    ):
        assert needed in html
    assert "S&amp;P 500 &lt;daily&gt;" in html  # escaped
    assert "<script" not in html.lower() and "<link" not in html.lower()
    assert not re.search(r"""(src|href)=['"]?https?:""", html)
    imgs = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", html)
    assert len(imgs) == 1 and base64.b64decode(imgs[0])[:8] == b"\x89PNG\r\n\x1a\n"
    json.dumps(champ, allow_nan=False)
    with pytest.raises(EvaluationInputError, match="at least one metric table"):
        render_html_report(title="x", description="x", periods={}, trading_setup={}, tables={})
