"""The do-no-harm band (``evaluation.harm``): one rule for the learning benchmark and the tests."""

from __future__ import annotations

import math

import pytest

from reinforce_strategy_creator.evaluation.harm import harm


@pytest.mark.parametrize(
    "sharpe, exposure, turnover, expected",
    [
        (0.45, 0.9, 4.0, (True, True, True)),  # on every edge of the band
        (0.44, 0.9, 1.0, (False, True, True)),  # more than 0.15 below the benchmark's Sharpe
        (0.80, 0.79, 1.0, (True, False, True)),  # under 80 % of its exposure
        (0.80, 1.0, 4.1, (True, True, False)),  # churns
        (math.nan, math.nan, math.nan, (False, False, False)),  # no figure is outside
    ],
)
def test_the_band_against_a_benchmark_of_sharpe_0_6_fully_exposed(sharpe, exposure, turnover, expected):
    band = harm(sharpe, exposure, turnover, bench_sharpe=0.6, bench_exposure=1.0)
    assert (band.sharpe, band.exposure, band.turnover) == expected
    assert band.none is all(expected)
