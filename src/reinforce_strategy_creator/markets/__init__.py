"""Markets made from real days, with a known truth: null markets and markets with one planted edge.

A claim such as "the gate fails when there is nothing to learn" or "the agents find an edge when
there is one" can only be tested on markets whose truth is known. These are real daily OHLCV
bars resampled i.i.d. (so they keep the drift, volatility, fat tails, gaps and ranges of real
data but have no structure of their own), with one structure planted on top and a simple causal
rule that exploits it. Hand-written (vectorised numpy) because no maintained library builds such
markets. Structures, strengths, rules and the suite's figures: docs/markets.md.
"""

from .days import (
    MARKET_ENVIRONMENT,
    OHLCV,
    MarketSpecError,
    SyntheticMarket,
    day_ratios,
    to_csv_frame,
)
from .planted import (
    null_market,
    planted_momentum_market,
    planted_reversion_market,
    planted_trend_market,
    planted_volatility_market,
)
from .rules import (
    always_long,
    hold_after_down_day,
    hold_after_up_day,
    low_volatility_filter,
    trend_filter,
)
from .suite import BUILDERS, PLANTED_KINDS, REPORT_COLUMNS, make_market, planted_suite, rule_report

__all__ = [
    "BUILDERS",
    "MARKET_ENVIRONMENT",
    "OHLCV",
    "PLANTED_KINDS",
    "REPORT_COLUMNS",
    "MarketSpecError",
    "SyntheticMarket",
    "always_long",
    "day_ratios",
    "hold_after_down_day",
    "hold_after_up_day",
    "low_volatility_filter",
    "make_market",
    "null_market",
    "planted_momentum_market",
    "planted_reversion_market",
    "planted_suite",
    "planted_trend_market",
    "planted_volatility_market",
    "rule_report",
    "to_csv_frame",
    "trend_filter",
]
