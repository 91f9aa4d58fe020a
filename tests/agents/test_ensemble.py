"""Seed ensembles: the mean of the seeds' action probabilities (actor-critic) or Q-values (DQN),
loaded from the same safe artifact as the seeds."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from reinforce_strategy_creator.agents import ActorCriticPolicy, QPolicy
from reinforce_strategy_creator.agents.ensemble import (
    ENSEMBLE_SEED,
    EnsembleError,
    PolicyLanes,
    SeedEnsemble,
    ensemble_rule,
)
from reinforce_strategy_creator.agents.portfolio_policies import PortfolioActorCritic, PortfolioQ
from reinforce_strategy_creator.artifacts import PolicyBundle, load_policy_bundle, save_policy_bundle


def _members(kind: str, seeds, obs_dim=5, n_actions=3):
    out = {}
    for s in seeds:
        torch.manual_seed(s)
        net = (
            ActorCriticPolicy(obs_dim, n_actions, (8,), "tanh")
            if kind == "ac"
            else QPolicy(obs_dim, n_actions, (8,), "relu")
        )
        for p in net.parameters():
            torch.nn.init.normal_(p)  # far from uniform, so the members disagree
        out[s] = net.eval()
    return out


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 4), batch=st.integers(1, 16), seed=st.integers(0, 10_000))
def test_actor_critic_ensemble_acts_on_the_mean_probability(n, batch, seed):
    members = list(_members("ac", range(n)).values())
    ens = SeedEnsemble(members, "mean_probability")
    obs = torch.randn(batch, 5, generator=torch.Generator().manual_seed(seed))
    mean = sum(m.logits(obs).softmax(-1) for m in members) / n
    assert torch.allclose(ens.scores(obs), mean, atol=1e-6)
    assert torch.equal(ens.act(obs), mean.argmax(-1))
    if n == 1:
        assert torch.equal(ens.act(obs), members[0].act(obs))  # one member: the seed itself


def test_q_ensemble_acts_on_the_mean_q_value():
    members = list(_members("q", range(3)).values())
    ens = SeedEnsemble(members, "mean_q")
    obs = torch.randn(64, 5)
    mean = sum(m(obs) for m in members) / 3
    assert torch.equal(ens.act(obs), mean.argmax(-1))
    # the ensemble is not any single member: with disagreeing members some decisions differ
    assert any(not torch.equal(ens.act(obs), m.act(obs)) for m in members)


def _portfolio_members(kind: str, seeds, n_assets=3, window=2, n_features=2):
    out = {}
    for s in seeds:
        torch.manual_seed(s)
        cls = PortfolioActorCritic if kind == "ac" else PortfolioQ
        net = cls(n_assets, window, n_features, (8,), "tanh")
        for p in net.parameters():
            torch.nn.init.normal_(p)
        out[s] = net.eval()
    return out


def _portfolio_obs(batch: int, n_assets=3, window=2, n_features=2) -> torch.Tensor:
    g = torch.Generator().manual_seed(batch)
    windows = torch.randn(batch, n_assets * window * n_features, generator=g)
    weights = torch.full((batch, n_assets), 1.0 / (n_assets + 1))
    cash = torch.full((batch, 1), 1.0 / (n_assets + 1))
    return torch.cat([windows, weights, cash, torch.ones(batch, n_assets)], 1)


@pytest.mark.parametrize("kind", ["ac", "q"])
def test_portfolio_ensemble_decides_the_mean_of_its_members_weights(kind):
    members = list(_portfolio_members(kind, range(3)).values())
    ens = SeedEnsemble(members, "mean_weights")
    obs = _portfolio_obs(16)
    mean = torch.stack([m.decide(obs) for m in members]).mean(0)
    assert ens.decide(obs).dtype == torch.float64 and torch.equal(ens.decide(obs), mean)
    assert torch.equal(ens.act(obs), mean)
    with pytest.raises(EnsembleError, match="deterministically"):
        ens.act(obs, deterministic=False)


@pytest.mark.parametrize("n_assets", [1, 3], ids=["N=1", "N=3"])
def test_policy_lanes_run_each_lanes_own_policy_on_its_row(n_assets):
    """Lane i decides with policies[i] on row i, at N = 1 (actions over the position table) and
    at N > 1 (target weights); a seed ensemble is one more policy."""
    if n_assets == 1:
        members, obs = list(_members("ac", range(3)).values()), torch.randn(4, 5)
        ensemble = SeedEnsemble(members, "mean_probability")
    else:
        members, obs = list(_portfolio_members("ac", range(3)).values()), _portfolio_obs(4)
        ensemble = SeedEnsemble(members, "mean_weights")
    policies = [*members, ensemble]
    got = PolicyLanes(policies)(obs)
    for i, p in enumerate(policies):
        assert torch.equal(got[i : i + 1], p.decide(obs[i : i + 1]))


def test_wrong_rule_or_no_member_is_refused():
    with pytest.raises(EnsembleError, match="does not fit member kinds"):
        SeedEnsemble(list(_members("ac", [0]).values()), "mean_q")
    with pytest.raises(EnsembleError, match="at least one member"):
        SeedEnsemble([], "mean_probability")


def test_the_ensemble_loads_from_the_saved_artifact(tmp_path):
    nets = _members("ac", (0, 3, 7))
    spec = {
        **nets[0].spec,
        "feature_names": ["a"],
        "window": 1,
        "positions": [0, 1],
        "seeds": [0, 3, 7],
        "ensemble_rule": "mean_probability",
    }
    digest = save_policy_bundle(
        PolicyBundle(spec=spec, state_dicts={s: n.state_dict() for s, n in nets.items()}), tmp_path / "bundle"
    )
    # JSON and safetensors only, checked against the digest returned at save
    bundle = load_policy_bundle(tmp_path / "bundle", expected_sha256=digest, recorded_in="the save")
    ens = bundle.load_policy(ENSEMBLE_SEED)
    assert isinstance(ens, SeedEnsemble) and not ens.training and len(ens.members) == 3
    obs = torch.randn(32, 5)
    expected = sum(n.logits(obs).softmax(-1) for n in nets.values()) / 3
    assert torch.equal(ens.act(obs), expected.argmax(-1))
    assert ens.spec["ensemble"] == {"rule": "mean_probability", "members": 3}


@pytest.mark.parametrize("kind", ["ac", "q"])
def test_a_new_ensemble_votes_and_two_seeds_outvote_a_confident_third(kind):
    """The default rule at N = 1 (``vote``): each seed's deterministic action is one vote, so two
    seeds that hold (nearly even probabilities) outvote one confident seed that does not, where
    the mean probability would follow the confident one; a tie goes to the mean's argmax."""
    members = list(_members(kind, range(3), n_actions=2).values())
    obs = torch.randn(256, 5, generator=torch.Generator().manual_seed(0))
    ens = SeedEnsemble(members, ensemble_rule(members[0].spec["kind"]))
    assert ens.rule == "vote"
    votes = torch.stack([m.act(obs) for m in members])
    assert torch.equal(ens.act(obs), torch.mode(votes, 0).values)  # three voters, two actions: no tie
    old = SeedEnsemble(members, "mean_probability" if kind == "ac" else "mean_q")
    assert not torch.equal(old.act(obs), ens.act(obs))  # the rules differ on these members
    two = SeedEnsemble(members[:2], "vote")  # disagreeing pairs tie: the mean's argmax decides
    tie = votes[0] != votes[1]
    assert tie.any() and torch.equal(two.act(obs)[tie], SeedEnsemble(members[:2], old.rule).act(obs)[tie])


@pytest.mark.parametrize("kind", ["ac", "q", "portfolio_ac", "portfolio_q"])
def test_a_bundle_set_back_to_its_start_holds_the_benchmark_in_every_seed_and_its_ensemble(kind):
    """``PolicyBundle.at_start``: what a held agent trades (walk_forward.engine.anchored)."""
    portfolio = kind.startswith("portfolio")
    nets = _portfolio_members(kind.split("_")[-1], (0, 1, 2)) if portfolio else _members(kind, (0, 1, 2))
    positions = [0.0, 0.5, 1.0]
    shape = {"feature_names": ["a", "b"], "window": 2} if portfolio else {"feature_names": ["a"], "window": 1}
    spec = {**nets[0].spec, **shape, "positions": "weights" if portfolio else positions, "seeds": [0, 1, 2]}
    trained = PolicyBundle(spec=spec, state_dicts={s: n.state_dict() for s, n in nets.items()})
    held = trained.at_start()
    assert held.spec["held_benchmark"] is True and "held_benchmark" not in trained.spec
    obs = _portfolio_obs(16) if portfolio else torch.randn(64, 5)
    for seed in (0, 1, 2, ENSEMBLE_SEED):
        policy = held.load_policy(seed)
        if portfolio:
            book = policy.decide(obs)
            assets = book[:, :3]
            assert torch.allclose(assets, assets[:, :1].expand_as(assets)) and (assets.sum(1) > 0.97).all()
        else:
            assert (policy.act(obs) == positions.index(1.0)).all()
    # the trained seeds deviate; only the output layers were set back
    if not portfolio:
        assert any((trained.load_policy(s).act(obs) != 2).any() for s in (0, 1, 2))
    changed = {k for k, v in held.state_dicts[0].items() if not torch.equal(v, trained.state_dicts[0][k])}
    assert changed and all(
        k.split(".")[0] in {"actor", "q_head", "adv_head", "score", "cash_score", "asset_head", "book_head"}
        for k in changed
    )
