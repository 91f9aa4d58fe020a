"""The do-no-harm band (docs/learning.md, "Do no harm"): on a market with nothing to find, a
procedure does no harm when it keeps about the benchmark's Sharpe and exposure and does not
churn. One rule for the learning benchmark and the tests, at any N."""

from __future__ import annotations

from dataclasses import dataclass

#: the procedure's Sharpe may fall this far below the benchmark's
SHARPE_GAP = 0.15
#: the procedure's exposure (N >= 2: average gross exposure) as a share of the benchmark's, at least
EXPOSURE_SHARE = 0.8
#: annual turnover, at most
TURNOVER = 4.0


@dataclass(frozen=True)
class Harm:
    """One procedure against its benchmark on a null market: which parts of the band it meets."""

    sharpe: bool
    exposure: bool
    turnover: bool

    @property
    def none(self) -> bool:
        """Sharpe and exposure in the band and turnover within its limit."""
        return self.sharpe and self.exposure and self.turnover


def harm(sharpe: float, exposure: float, turnover: float, bench_sharpe: float, bench_exposure: float) -> Harm:
    """Where the procedure stands against the band (a NaN figure is outside it)."""
    return Harm(
        sharpe=bool(sharpe >= bench_sharpe - SHARPE_GAP),
        exposure=bool(exposure >= EXPOSURE_SHARE * bench_exposure),
        turnover=bool(turnover <= TURNOVER),
    )
