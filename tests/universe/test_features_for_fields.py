"""Close-only data: which features can be computed, one warning, an error when asked by name."""

from __future__ import annotations

import logging

import pytest

from reinforce_strategy_creator.universe import FIELDS, MissingFieldsError, features_for_fields


def test_close_only_leaves_out_ohlv_features_with_one_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="reinforce_strategy_creator.universe"):
        sel = features_for_fields({}, ("Close",), source="sp500_20.csv")
    assert dict(sel.left_out) == {"feat_atr_ratio_14": ("High", "Low"), "feat_volume_z_20": ("Volume",)}
    assert "feat_logret_1" in sel.kept and "feat_rsi_14" in sel.kept
    assert not set(sel.kept) & set(sel.left_out)
    records = [r for r in caplog.records if r.name == "reinforce_strategy_creator.universe"]
    assert len(records) == 1 and records[0].getMessage() == sel.warning
    assert (
        "feat_atr_ratio_14 (needs High/Low)" in sel.warning
        and "feat_volume_z_20 (needs Volume)" in sel.warning
    )


def test_all_fields_keep_everything_silently(caplog):
    with caplog.at_level(logging.WARNING):
        sel = features_for_fields({}, FIELDS)
    assert sel.left_out == {} and sel.warning is None and "feat_atr_ratio_14" in sel.kept
    assert not caplog.records


def test_asking_for_a_feature_the_fields_cannot_feed_is_an_error():
    with pytest.raises(MissingFieldsError, match=r"feat_volume_z_20 needs \['Volume'\]"):
        features_for_fields({}, ("Close",), requested=["feat_rsi_14", "feat_volume_z_20"])


def test_asking_for_an_unknown_feature_lists_the_known_ones():
    with pytest.raises(MissingFieldsError, match="not produced by the feature spec"):
        features_for_fields({}, ("Close",), requested=["feat_nope"])
