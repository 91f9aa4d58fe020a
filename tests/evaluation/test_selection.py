"""Champion selection rules on validation records (docs/metrics.md, "Selection")."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reinforce_strategy_creator.candidates import ENSEMBLE_SEED
from reinforce_strategy_creator.evaluation.gate import select_champion
from reinforce_strategy_creator.evaluation.metrics import EvaluationInputError


def _records(
    scores: dict[str, list[float]],
    ensembles: dict[str, float] | None = None,
    ruined: set[tuple[str, int]] = frozenset(),
) -> pd.DataFrame:
    rows = [
        {"kind": "agent", "agent": a, "seed": s, "sharpe": v, "ruined": (a, s) in ruined}
        for a, vals in scores.items()
        for s, v in enumerate(vals)
    ]
    rows += [
        {"kind": "ensemble", "agent": a, "seed": ENSEMBLE_SEED, "sharpe": v, "ruined": False}
        for a, v in (ensembles or {}).items()
    ]
    return pd.DataFrame(rows)


def test_the_three_rules_on_a_winners_curse_example():
    # b has one lucky seed (the single maximum); a is better on average
    records = _records({"a": [1.0, 1.1, 0.9], "b": [2.0, -1.0, -0.5]}, {"a": 1.2, "b": 0.4})
    best = select_champion(records, "sharpe", "best_candidate")
    assert (best["agent"], best["seed"], best["kind"]) == ("b", 0, "agent")
    seed = select_champion(records, "sharpe", "best_agent_best_seed")
    assert (seed["agent"], seed["seed"], seed["kind"]) == ("a", 1, "agent")
    ens = select_champion(records, "sharpe", "best_agent_ensemble")
    assert (ens["agent"], ens["seed"], ens["kind"]) == ("a", ENSEMBLE_SEED, "ensemble")
    assert ens["n_candidates"] == 8 and ens["rule"] == "best_agent_ensemble"


def test_an_agent_that_ruined_a_seed_ranks_after_one_that_did_not():
    records = _records({"a": [0.2, 0.3], "b": [3.0, 0.1]}, {"a": 0.25, "b": 2.0}, ruined={("b", 1)})
    assert select_champion(records, "sharpe", "best_agent_ensemble")["agent"] == "a"


def test_without_a_usable_ensemble_the_best_agents_best_seed_is_chosen():
    no_ensembles = _records({"a": [1.0, 1.5], "b": [0.1, 0.2]})
    pick = select_champion(no_ensembles, "sharpe", "best_agent_ensemble")
    assert (pick["agent"], pick["seed"], pick["kind"]) == ("a", 1, "agent")
    nan_ensemble = _records({"a": [1.0, 1.5], "b": [0.1, 0.2]}, {"a": np.nan})
    assert select_champion(nan_ensemble, "sharpe", "best_agent_ensemble")["seed"] == 1


def test_unknown_rule_is_refused():
    with pytest.raises(EvaluationInputError, match="evaluation.selection='vote'"):
        select_champion(_records({"a": [1.0, 2.0]}), "sharpe", "vote")


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from("abcd"), st.lists(st.floats(-3, 3), min_size=2, max_size=4), min_size=1, max_size=4
    ),
    st.sampled_from(["best_candidate", "best_agent_best_seed", "best_agent_ensemble"]),
)
def test_properties_of_every_rule(scores, rule):
    ensembles = {a: float(np.mean(v)) for a, v in scores.items()}
    records = _records(scores, ensembles)
    pick = select_champion(records, "sharpe", rule)
    chosen = records[(records["agent"] == pick["agent"]) & (records["seed"] == pick["seed"])]
    assert len(chosen) == 1 and chosen.iloc[0]["sharpe"] == pick["validation"]["sharpe"]
    if rule == "best_candidate":
        assert pick["validation"]["sharpe"] == records["sharpe"].max()
    else:
        means = {a: np.mean(v) for a, v in scores.items()}
        assert means[pick["agent"]] == max(means.values())
        assert pick["kind"] == ("ensemble" if rule == "best_agent_ensemble" else "agent")
    # selection reads nothing but these validation records: shuffling rows changes nothing
    again = select_champion(records.sample(frac=1.0, random_state=0), "sharpe", rule)
    assert (again["agent"], again["seed"]) == (pick["agent"], pick["seed"])
