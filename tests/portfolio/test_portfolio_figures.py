"""Allocation figures (evaluation/allocation_figures.py): they render, and draw the run's numbers."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.figure import Figure

from reinforce_strategy_creator.evaluation.allocation_figures import (
    contribution_figure,
    turnover_figure,
    turnover_series,
    weights_figure,
)
from reinforce_strategy_creator.evaluation.ledger import (
    contributions_wide,
    run_ledger,
    weights_ledger,
    weights_wide,
)
from reinforce_strategy_creator.evaluation.metrics import EvaluationInputError
from reinforce_strategy_creator.evaluation.replay import replay_portfolio_benchmarks, replay_weights
from reinforce_strategy_creator.panel import PortfolioPanel
from tests.support.env import universe_env

torch.set_num_threads(1)

CFG = universe_env(window=3, commission_bps=3.0, slippage_bps=5.0)


@pytest.fixture(scope="module")
def runs():
    rng = np.random.default_rng(4)
    n = 130
    close = 30.0 * np.exp(np.cumsum(0.0004 + 0.015 * rng.standard_normal((n, 4)), axis=0))
    close[:50, 3] = np.nan
    dates = pd.bdate_range("2022-01-03", periods=n)
    panel = PortfolioPanel(close, np.zeros((n, 4, 1), np.float32), ("W", "X", "Y", "Z"), dates)
    got = replay_portfolio_benchmarks(panel, CFG, {"names": ["buy_and_hold", "equal_weight", "random"]})
    return {name: run for _, name, _, run in got}


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def test_contribution_bars_add_up_to_the_equity_change(runs):
    for name in ("equal_weight", "random"):
        run = runs[name]
        for lane in (0, run.n_lanes - 1):
            fig = contribution_figure(run, lane)
            assert _png(fig).startswith(b"\x89PNG")
            ax = fig.axes[0]
            heights = np.array([p.get_height() for p in ax.patches])
            labels = [t.get_text() for t in ax.get_xticklabels()]
            assert labels[-1] == "costs" and sorted(labels[:-1]) == ["W", "X", "Y", "Z"]
            change = run.equity[lane, -1] - run.equity[lane, 0]
            assert heights.sum() == pytest.approx(change, abs=1e-6)
            assert heights[-1] == pytest.approx(-run.cost[lane].sum(), rel=1e-12)
            assert heights[-1] < 0
            assert f"{change:,.2f}" in ax.get_title()


def test_contribution_figure_from_the_persisted_ledgers(runs):
    run = runs["equal_weight"]
    w = weights_ledger(run, "benchmark", "equal_weight", [0])
    led = run_ledger(run, "benchmark", "equal_weight", [0])
    fig = contribution_figure(contributions_wide(w, led, "equal_weight", 0))
    heights = np.array([p.get_height() for p in fig.axes[0].patches])
    assert heights.sum() == pytest.approx(run.equity[0, -1] - run.equity[0, 0], abs=1e-6)


def test_weights_figure_stacks_the_weights_and_cash(runs):
    run = runs["equal_weight"]
    fig = weights_figure(run)
    assert _png(fig).startswith(b"\x89PNG")
    ax = fig.axes[0]
    assert len(ax.collections) == 5  # four tickers + cash
    # the top of the stack is 1 at every bar: weights and cash add up to the equity
    top = ax.collections[-1].get_paths()[0].vertices[:, 1].max()
    assert top == pytest.approx(1.0, abs=1e-9)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["W", "X", "Y", "Z", "cash"]
    wide = weights_wide(weights_ledger(run, "benchmark", "equal_weight", [0]), "equal_weight")
    assert len(weights_figure(wide).axes[0].collections) == 5
    with pytest.raises(EvaluationInputError, match="'cash' column"):
        weights_figure(wide.drop(columns="cash"))


def test_weights_figure_draws_a_long_short_book_as_lines():
    dates = pd.bdate_range("2022-01-03", periods=4)
    frame = pd.DataFrame({"A": [0.0, 0.5, -0.2, 0.1], "cash": [1.0, 0.5, 1.2, 0.9]}, index=dates)
    fig = weights_figure(frame)
    assert "lines, not stacked" in fig.axes[0].get_title()
    assert len(fig.axes[0].get_lines()) >= 2


def test_turnover_series_by_hand_and_figure(runs):
    run = runs["equal_weight"]
    s = turnover_series(run, 0, "M")
    frame = pd.DataFrame({"t": run.traded_notional[0], "e": run.equity[0]}, index=run.dates).iloc[1:]
    for period, value in s.items():
        month = frame[(frame.index.year == period.year) & (frame.index.month == period.month)]
        assert value == pytest.approx(month["t"].sum() / month["e"].mean(), rel=1e-12)
    # equal weight rebalances every month; the last bar (July 1st) is a mark, not a decision
    assert run.dates[-1] == pd.Timestamp("2022-07-01") and s.iloc[-1] == 0.0
    assert (s.iloc[:-1] > 0).all()
    bh = turnover_series(runs["buy_and_hold"], 0, "M")
    assert (bh.iloc[1:] == 0).all() and bh.iloc[0] > 0.9
    led = run_ledger(run, "benchmark", "equal_weight", [0])
    pd.testing.assert_series_equal(turnover_series(led, 0, "M"), s, check_freq=False)
    fig = turnover_figure({"equal_weight": run, "buy_and_hold": runs["buy_and_hold"]})
    assert _png(fig).startswith(b"\x89PNG")
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["equal_weight", "buy_and_hold"]
    with pytest.raises(EvaluationInputError, match="several runs or seeds"):
        turnover_series(run_ledger(runs["random"], "random", "random", list(range(100))))


def test_bad_inputs_are_clear_errors(runs):
    with pytest.raises(EvaluationInputError, match="lane 3 is not one of the run's 1 lanes"):
        weights_figure(runs["equal_weight"], lane=3)
    with pytest.raises(EvaluationInputError, match="'costs' column"):
        contribution_figure(pd.DataFrame({"A": [1.0]}))
    with pytest.raises(EvaluationInputError, match="freq"):
        turnover_series(runs["equal_weight"], 0, "D")
    with pytest.raises(EvaluationInputError, match="at least one run"):
        turnover_figure({})


def test_a_ruined_account_is_drawn_up_to_its_ruin():
    """A lane whose equity hits zero: the weights stop at the bar before ruin, nothing breaks."""
    n = 20
    close = np.ones((n, 1)) * 10.0
    close[10:] = 1e-9  # the only asset collapses: a fully invested lane loses (almost) everything
    dates = pd.bdate_range("2022-01-03", periods=n)
    panel = PortfolioPanel(close, np.zeros((n, 1, 1), np.float32), ("A",), dates)
    run = replay_weights(panel, universe_env(window=2), lambda obs, bar: np.ones((1, 1)), 1)
    fig = weights_figure(run)
    assert _png(fig).startswith(b"\x89PNG")
    heights = [p.get_height() for p in contribution_figure(run).axes[0].patches]
    assert sum(heights) == pytest.approx(run.equity[0, -1] - run.equity[0, 0], abs=1e-6)
