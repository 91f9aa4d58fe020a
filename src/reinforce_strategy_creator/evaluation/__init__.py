"""Evaluation library: metrics, cross-seed statistics, gate, benchmarks, figures, HTML report.

Plain modules, importable without Kedro; definitions and conventions in docs/metrics.md.
"""

from .metrics import (
    EvaluationInputError,
    bar_returns,
    equity_from_frame,
    evaluate_backtest,
    evaluate_backtests,
    infer_periods_per_year,
    json_safe,
    performance_metrics,
    round_trips,
    trade_metrics,
)

__all__ = [
    "EvaluationInputError",
    "bar_returns",
    "equity_from_frame",
    "evaluate_backtest",
    "evaluate_backtests",
    "infer_periods_per_year",
    "json_safe",
    "performance_metrics",
    "round_trips",
    "trade_metrics",
]
