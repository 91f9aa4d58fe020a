"""Provenance enforced at deployment, for the production and the shadow account alike.

A policy whose recorded feature-spec fingerprint, costs or capital differ from the current
parameters, or whose own training / validation period overlaps the bars it would trade, is
refused before anything is traded: the error names the registry entry, the artifact version,
the field, both values and the fix, and both account folders stay byte-identical.
"""

from __future__ import annotations

import copy
from types import SimpleNamespace

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.deployment_world import project_params, write_feed
from reinforce_strategy_creator.deployment.session import (
    PRODUCTION,
    SHADOW,
    ProductionModel,
    ProvenanceError,
    check_policy_provenance,
)
from reinforce_strategy_creator.features import feature_spec_sha256
from tests.support.paper import account_files

V3 = "2026-03-03T00.00.00.000Z"


def _env_with(world, **changes):
    env = copy.deepcopy(world.params["environment"])
    env.update(changes)
    return {"environment": env}


CASES = {
    "feature_spec": (
        lambda w: {"feature_spec_sha256": "0" * 64},
        (),
        [r"feature specification", "feature_spec_sha256", "0" * 12],
    ),
    "no_fingerprint": (
        lambda w: {},
        ("feature_spec_sha256",),
        ["does not record feature_spec_sha256", "retrain"],
    ),
    "commission": (
        lambda w: _env_with(w, commission_bps=5.0),
        (),
        [r"environment\.commission_bps differs", "5.0", "2.0", "restore environment.commission_bps"],
    ),
    "slippage": (lambda w: _env_with(w, slippage_bps=0.0), (), [r"environment\.slippage_bps", "0.0", "3.0"]),
    "borrow": (lambda w: _env_with(w, borrow_bps_per_bar=1.0), (), [r"environment\.borrow_bps_per_bar"]),
    "capital": (
        lambda w: _env_with(w, initial_capital=50_000.0),
        (),
        [r"environment\.initial_capital", "50000.0", "100000.0"],
    ),
    "fill_price": (
        lambda w: _env_with(w, fill_price="next_open"),
        (),
        [r"environment\.fill_price differs", "next_open", "next_close"],
    ),
    "train_overlap": (
        lambda w: {"train_end": "2018-01-31T00:00:00"},
        (),
        [r"train period .*2018-01-31\) overlaps the bars it would trade \(2018-01-02 \.\. 2018-02-27\)"],
    ),
    "validation_overlap": (
        lambda w: {"validation_start": "2017-01-03T00:00:00", "validation_end": "2018-02-15T00:00:00"},
        (),
        [r"validation period .*overlaps"],
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_production_model_with_other_provenance_is_refused(world, case):
    overrides, drop, patterns = CASES[case]
    world.make_policy(V3, torch_seed=3, spec_overrides=overrides(world), drop=drop)
    world.write_evaluation(V3, passed=True)  # auto-promoted: production and shadow both get it
    with pytest.raises(ProvenanceError) as info:
        world.run()
    message = str(info.value)
    assert f"production model ppo-{V3}-seed0" in message and f"version {V3}" in message
    assert "kedro models promote" in message  # what to do
    for pattern in patterns:
        assert pd.Series([message]).str.contains(pattern).all(), (pattern, message)
    assert (
        account_files(world.account) is None and account_files(world.shadow_account) is None
    )  # nothing written


SHADOW_CASES = {
    **CASES,
    "train_overlap": (
        lambda w: {"train_end": "2018-02-28T00:00:00"},
        (),
        [r"train period .*overlaps the bars it would trade \(2018-02-28 \.\. 2018-02-28\)"],
    ),
}


@pytest.mark.parametrize("case", ["feature_spec", "commission", "train_overlap"])
def test_shadow_champion_with_other_provenance_is_refused_and_nothing_is_written(traded, case):
    world = traded  # V1 registered, promoted, traded in both accounts
    write_feed(world.feed, end="2018-02-28")  # one new bar to trade
    overrides, drop, patterns = SHADOW_CASES[case]
    world.make_policy(V3, torch_seed=3, spec_overrides=overrides(world), drop=drop)
    world.write_evaluation(V3, passed=False)  # the newest champion: shadow only
    before = (account_files(world.account), account_files(world.shadow_account))
    with pytest.raises(ProvenanceError) as info:
        world.run()
    message = str(info.value)
    assert f"newest champion (shadow account) ppo-{V3}-seed0" in message and f"version {V3}" in message
    assert "register a newer champion" in message
    for pattern in patterns:
        assert pd.Series([message]).str.contains(pattern).all(), (pattern, message)
    assert (account_files(world.account), account_files(world.shadow_account)) == before


def test_the_cli_prints_the_refusal_as_a_message(world):
    """The project hook prints project ValueErrors (ProvenanceError is one) without a traceback."""
    from reinforce_strategy_creator.hooks import is_input_error

    world.make_policy(V3, torch_seed=3, spec_overrides={"feature_spec_sha256": "0" * 64})
    world.write_evaluation(V3, passed=True)
    with pytest.raises(ProvenanceError) as info:
        world.run()
    assert is_input_error(info.value)


# -- the period rule, as a property ------------------------------------------------------
_day = st.integers(0, 400)


def _model(spec, role=PRODUCTION):
    return ProductionModel(
        "ppo-v-seed0",
        SimpleNamespace(spec=spec),
        0,
        "registry.jsonl",
        artifact="data/06_models/ppo_policy@v",
        version="v",
        role=role,
    )


@settings(max_examples=60, deadline=None)
@given(
    train=st.tuples(_day, _day),
    validation=st.tuples(_day, _day),
    trade=st.tuples(_day, _day),
    role=st.sampled_from([PRODUCTION, SHADOW]),
)
def test_refused_exactly_when_a_recorded_period_overlaps_the_bars_to_trade(train, validation, trade, role):
    params = project_params()
    base = pd.Timestamp("2017-01-02")

    def day(i: int) -> str:
        return (base + pd.Timedelta(days=i)).isoformat()

    train, validation, trade = sorted(train), sorted(validation), sorted(trade)
    names = ["feat_a"]
    scaler = {"feature_names": names}
    from reinforce_strategy_creator.features import scaler_sha256

    spec = {
        "scaler_sha256": scaler_sha256(scaler),
        "feature_names": names,
        "feature_spec_sha256": feature_spec_sha256(params["feature_engineering"]["features"]),
        "environment": params["environment"],
        "train_start": day(train[0]),
        "train_end": day(train[1]),
        "validation_start": day(validation[0]),
        "validation_end": day(validation[1]),
    }
    bars = pd.date_range(base + pd.Timedelta(days=trade[0]), base + pd.Timedelta(days=trade[1]), freq="D")

    def overlaps(period):
        return period[0] <= trade[1] and trade[0] <= period[1]

    expected = overlaps(train) or overlaps(validation)
    kwargs = {
        "scaler": scaler,
        "feature_names": names,
        "feature_spec": params["feature_engineering"]["features"],
        "environment": params["environment"],
        "trade_bars": bars,
    }
    if expected:
        with pytest.raises(ProvenanceError, match="overlaps the bars it would trade"):
            check_policy_provenance(_model(spec, role), **kwargs)
    else:
        check_policy_provenance(_model(spec, role), **kwargs)
    check_policy_provenance(_model(spec, role), **{**kwargs, "trade_bars": bars[:0]})  # nothing to trade
