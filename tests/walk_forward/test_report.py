"""The walk-forward tear sheet: first screen in order, numbers from the records, no raw JSON."""

from __future__ import annotations

import re

import matplotlib.pyplot as plt
import pandas as pd

from reinforce_strategy_creator.walk_forward.report import render_walk_forward_report, side_by_side


def _records() -> pd.DataFrame:
    rows = [
        ("procedure", "procedure", 0, 0.91, 0.35),
        ("agent_selected", "ppo", 0, 0.72, 0.29),
        ("agent_selected", "a2c", 0, 0.55, 0.20),
        ("agent", "ppo", 0, 0.6, 0.2),
        ("benchmark", "buy_and_hold", 0, 0.64, 0.40),
        ("benchmark", "flat", 0, float("nan"), 0.0),
        ("random", "random", 0, 0.1, 0.02),
        ("random", "random", 1, 0.3, 0.06),
    ]
    frame = pd.DataFrame(rows, columns=["kind", "agent", "seed", "sharpe", "total_return"])
    frame["n_trades"] = 12
    frame["total_costs"] = 123.456
    return frame


def _folds() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "fold": ["fold_1", "fold_2"],
            "label": ["2016", "2017"],
            "test_start": ["2016-01-04", "2017-01-03"],
            "test_end": ["2016-12-30", "2017-12-29"],
            "champion": ["ppo ensemble", "a2c seed 1"],
            "validation_sharpe": [1.2, 0.8],
            "procedure_test_sharpe": [1.1, 0.7],
            "procedure_test_return": [0.2, 0.1],
            "buy_and_hold_test_sharpe": [0.9, 0.4],
            "buy_and_hold_test_return": [0.1, 0.05],
        }
    )


VERDICT = {
    "passed": False,
    "rules": {
        "min_sharpe": {"value": 0.91, "threshold": 0.5, "comparison": ">=", "passed": True},
        "min_psr": {"value": 0.80, "threshold": 0.95, "comparison": ">=", "passed": False},
    },
    "decided_on": {"start": "2016-01-04", "end": "2017-12-29", "n_bars": 502},
    "pbo": {"pbo": 0.25, "n_candidates": 4, "n_combinations": 12870},
    "dsr": {"value": 0.6, "n_trials": 5},
    "deflation": {"n_configurations": 1},
    "selection": {"rule": "best_agent_ensemble", "checkpoint_evaluations": 40},
}


def test_side_by_side_has_one_column_per_lane_and_the_key_metrics_as_rows():
    table = side_by_side(_records())
    assert list(table.columns) == [
        "metric",
        "procedure",
        "a2c",
        "ppo",
        "buy_and_hold",
        "flat",
        "random (median)",
    ]
    sharpe = table.set_index("metric").loc["Sharpe"]
    assert sharpe["procedure"] == 0.91 and sharpe["ppo"] == 0.72 and sharpe["random (median)"] == 0.2


def test_the_first_screen_is_verdict_why_table_chart_then_details_without_raw_json():
    fig, ax = plt.subplots()
    ax.plot([1, 2, 3])
    page = render_walk_forward_report(VERDICT, _records(), _folds(), fig, {"commission_bps": 2.0})
    order = [
        page.index("Walk-forward verdict"),
        page.index("<b>Why:</b>"),
        page.index("<th>procedure</th>"),
        page.index("alt='stitched equity'"),
        page.index("Gate rules on the stitched record"),
        page.index("<h2>Folds</h2>"),
        page.index("alt='per-fold Sharpe'"),
        page.index("Selection effort"),
    ]
    assert order == sorted(order)
    assert "FAILED" in page[: page.index("<b>Why:</b>")]
    why = page[page.index("<b>Why:</b>") : page.index("</p>", page.index("<b>Why:</b>"))]
    assert "min_psr 0.800" in why and "min_sharpe" not in why  # only the failed rule, with its number
    assert "<pre>" not in page and "{&quot;" not in page
    assert len(re.findall(r"<img ", page)) == 2
    assert "123.46" in page and "12.000" not in page  # money with cents, trade counts as integers
