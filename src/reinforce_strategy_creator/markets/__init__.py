"""Markets made from real days with a known truth, for N >= 1 assets: null markets and markets
with one planted edge.

A claim such as "the gate fails when there is nothing to learn" or "the agents find an edge when
there is one" can only be tested on markets whose truth is known. These are real days resampled
i.i.d., where a day is a whole cross-sectional row of the source (one OHLCV series is a row of
one; a universe keeps its correlations), so they keep the drift, volatility, fat tails, gaps and
ranges of real data but have no structure of their own; one structure is planted on top, with a
simple causal rule that exploits it. ``signal`` holds the AR(1) planted-signal market of the
agents' learning tests. Hand-written (vectorised numpy) because no maintained library builds
such markets. Structures, strengths, rules and the suite's figures: docs/markets.md.
"""

from .days import (
    MARKET_ENVIRONMENT,
    OHLCV,
    SYNTHETIC_START,
    MarketSpecError,
    SyntheticMarket,
    day_moves,
    to_csv_frame,
)
from .planted import (
    DEFAULT_EDGE,
    null_market,
    planted_lead_lag_market,
    planted_momentum_market,
    planted_reversal_market,
    planted_reversion_market,
    planted_rotation_market,
    planted_slow_momentum_market,
    planted_trend_market,
    planted_volatility_market,
)
from .rules import (
    always_long,
    hold_after_down_day,
    hold_after_up_day,
    hold_followers_after_leader_up,
    hold_trailing_leader,
    hold_trailing_ranked,
    low_volatility_filter,
    rotation_oracle,
    trailing_leaders,
    trailing_ranked,
    trend_filter,
)
from .signal import PlantedMarket, oracle_action_index, oracle_position, planted_signal_market
from .suite import (
    BUILDERS,
    PLANTED_KINDS,
    REPORT_COLUMNS,
    UNIVERSE_KINDS,
    make_market,
    planted_suite,
    rule_report,
)

__all__ = [
    "BUILDERS",
    "DEFAULT_EDGE",
    "MARKET_ENVIRONMENT",
    "OHLCV",
    "PLANTED_KINDS",
    "REPORT_COLUMNS",
    "SYNTHETIC_START",
    "MarketSpecError",
    "PlantedMarket",
    "SyntheticMarket",
    "UNIVERSE_KINDS",
    "always_long",
    "day_moves",
    "hold_after_down_day",
    "hold_after_up_day",
    "hold_followers_after_leader_up",
    "hold_trailing_leader",
    "hold_trailing_ranked",
    "low_volatility_filter",
    "make_market",
    "null_market",
    "oracle_action_index",
    "oracle_position",
    "planted_lead_lag_market",
    "planted_momentum_market",
    "planted_reversal_market",
    "planted_reversion_market",
    "planted_rotation_market",
    "planted_signal_market",
    "planted_slow_momentum_market",
    "planted_suite",
    "planted_trend_market",
    "planted_volatility_market",
    "rotation_oracle",
    "rule_report",
    "to_csv_frame",
    "trailing_leaders",
    "trailing_ranked",
    "trend_filter",
]
