"""CLI (click CliRunner in a throw-away Kedro project) and the paper/live mode guard."""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from reinforce_strategy_creator.artifacts import versioned_artifact_path
from reinforce_strategy_creator.cli import cli, load_deployment_params
from reinforce_strategy_creator.deployment import (
    AccountStore,
    LiveTradingRefused,
    ModelRegistry,
    PaperAccount,
    RiskLimits,
    resolve_mode,
)
from tests.support.artifacts import TAMPERS, save_version
from tests.support.paper import CONFIG, alternating_policy, make_decider, make_panel, make_prices
from tests.support.project import PROJECT_ROOT

SECRET = "sk-live-DO-NOT-LEAK-0123456789"


def _invoke(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_params_come_from_project_config(tmp_project):
    p = load_deployment_params()
    assert p.mode == "paper_trading"
    assert p.registry_path == tmp_project / "data/07_model_output/registry.jsonl"
    assert p.account_dir == tmp_project / "data/07_model_output/paper_account"
    assert p.shadow_account_dir == tmp_project / "data/07_model_output/shadow_account"
    assert p.risk.max_drawdown == 0.20
    # costs and capital are the environment's, never copies
    assert p.costs.commission_bps == 2.0 and p.costs.slippage_bps == 3.0
    assert p.initial_capital == 100_000.0


def test_kedro_builtin_registry_is_not_clobbered():
    from kedro.framework.cli.cli import KedroCLI

    from tests.support.project import PROJECT_ROOT

    commands = KedroCLI(PROJECT_ROOT).list_commands(None)
    assert "models" in commands and "paper" in commands
    registry = KedroCLI(PROJECT_ROOT).get_command(None, "registry")
    assert sorted(registry.list_commands(None)) == ["describe", "list"]  # Kedro's own group


def test_registry_commands(tmp_project):
    reg = ModelRegistry(load_deployment_params().registry_path)
    good = reg.register(
        agent="ppo",
        version="v1",
        seed=0,
        metrics={"validation_sharpe": 1.1, "test_total_return": 0.0421},
        verdict={"passed": True},
    )
    good2 = reg.register(agent="ppo", version="v2", seed=0, metrics={"sharpe": 1.3}, verdict={"passed": True})
    bad = reg.register(agent="dqn", version="v1", seed=0, metrics={"sharpe": 0.2}, verdict={"passed": False})
    out = _invoke("models", "list")
    assert out.exit_code == 0 and "candidate" in out.output and good in out.output
    row = next(line for line in out.output.splitlines() if good in line)
    assert "1.10" in row and "4.2%" in row and "passed" in row  # a readable table, one row per model
    assert _invoke("models", "promote", good).exit_code == 0
    assert _invoke("models", "promote", good2).exit_code == 0
    refused = _invoke("models", "promote", bad)
    assert refused.exit_code != 0 and "did not pass" in refused.output
    no_reason = _invoke("models", "promote", bad, "--force")
    assert no_reason.exit_code != 0 and "--reason" in no_reason.output
    forced = _invoke("models", "promote", bad, "--force", "--reason", "desk override")
    assert forced.exit_code == 0 and "FORCED" in forced.output
    assert reg.production().entry_id == bad
    rb = _invoke("models", "rollback", "--reason", "forced model misbehaves")
    assert rb.exit_code == 0 and good2 in rb.output
    assert reg.production().entry_id == good2
    listing = _invoke("models", "list", "--status", "production")
    assert good2 in listing.output and bad not in listing.output


@pytest.mark.parametrize("tamper", TAMPERS)
def test_models_promote_refuses_an_artifact_changed_since_registration(tmp_project, tamper):
    reg = ModelRegistry(load_deployment_params().registry_path)
    filepath = tmp_project / "data/06_models/ppo_policy"
    entry_id = reg.register(
        agent="ppo",
        version="v1",
        seed=0,
        metrics={},
        verdict={"passed": True},
        artifact_path="data/06_models/ppo_policy",
        artifact_sha256=save_version(filepath, "v1"),
    )
    edit, name = TAMPERS[tamper]
    edit(versioned_artifact_path(filepath, "v1"))
    refused = _invoke("models", "promote", entry_id)
    assert refused.exit_code != 0 and f"{name}' has SHA-256" in refused.output
    assert "Restore the artifact" in refused.output and "Traceback" not in refused.output
    assert reg.production() is None


def _halted_account(params, which: str) -> AccountStore:
    """A halted account in the ``which`` folder: one instrument, or a 5-ticker universe, that
    crashed into its drawdown kill switch."""
    store = AccountStore(params.accounts[which])
    if which.startswith("universe"):
        panel = make_panel(40)
        panel = dataclasses.replace(
            panel, close=panel.close * np.where(np.arange(40) >= 20, 0.5, 1.0)[:, None]
        )
        PaperAccount.universe(store, panel.tickers, CONFIG, limits=RiskLimits(max_drawdown=0.2)).run(
            panel, make_decider(panel.n_assets, CONFIG.window)
        )
        return store
    prices = make_prices(60, seed=8)
    prices.loc[prices.index[30] :, ["Open", "Close"]] *= 0.6  # crash -> kill switch
    PaperAccount.instrument(
        store, initial_capital=params.initial_capital, costs=params.costs, limits=params.risk
    ).run(prices, lambda h, s: 1.0)
    return store


@pytest.mark.parametrize("which", ["production", "shadow", "universe"])
def test_paper_clear_halt_and_status(tmp_project, which):
    """One account type for one instrument or a universe: status and clear-halt for either."""
    shutil.copy(PROJECT_ROOT / "conf" / "base" / "catalog_portfolio.yml", tmp_project / "conf" / "base")
    params = load_deployment_params()
    others = [r for r in params.accounts if r != which]
    empty = _invoke("paper", "status").output
    assert "No production paper account yet" in empty and "No shadow paper account yet" in empty
    assert "PRODUCTION account" in empty and "SHADOW account" in empty and "UNIVERSE" not in empty
    store = _halted_account(params, which)
    assert store.load().halted
    status = _invoke("paper", "status")
    assert status.exit_code == 0 and "halted       True" in status.output
    assert "reconciled   yes" in status.output
    section = status.output.split("\n\n")[["production", "shadow", "universe"].index(which)]
    assert section.startswith(which.upper()) and "halted       True" in section
    assert ("tickers      5: AAA, BBB" in section) == (which == "universe")
    assert ("tickers      1: instrument" in section) == (which != "universe")
    facts = json.loads(_invoke("paper", "status", "--json").output)
    assert facts[which]["reconciled"] and facts[which]["halted"]
    tickers = list(make_panel(40).tickers) if which == "universe" else ["instrument"]
    assert facts[which]["tickers"] == tickers
    assert not facts["universe_shadow"]["exists"]
    missing = CliRunner().invoke(cli, ["paper", "clear-halt"])
    assert missing.exit_code != 0 and "--reason" in missing.output
    args = ["paper", "clear-halt", "--reason", "post-mortem done"] + (
        ["--account", which] if which != "production" else []
    )
    ok = _invoke(*args)
    assert ok.exit_code == 0 and not store.load().halted and which in ok.output
    assert not any(AccountStore(params.accounts[r]).exists() for r in others)  # none other touched
    ev = store.read_log("events")[-1]
    assert ev["kind"] == "clear_halt" and ev["reason"] == "post-mortem done" and ev["by"]
    again = _invoke(*args[:3], "x", *args[4:])
    assert again.exit_code != 0 and "not halted" in again.output


def test_live_mode_refused_without_adapter():
    with pytest.raises(LiveTradingRefused, match="no live broker adapter"):
        resolve_mode({"mode": "live_trading"})
    with pytest.raises(LiveTradingRefused, match="no live broker adapter"):
        resolve_mode({"mode": "live_trading", "broker_adapter": "alpaca"}, {"alpaca": {"api_key": SECRET}})
    with pytest.raises(LiveTradingRefused, match="paper_trading"):
        resolve_mode({"mode": "yolo"})
    assert resolve_mode({}) == "paper_trading"


def test_secrets_never_logged_or_written(tmp_project, caplog):
    base = tmp_project / "conf" / "base" / "parameters_deployment.yml"
    cfg = yaml.safe_load(base.read_text())
    cfg["deployment"].update(api_endpoint="https://broker.example/" + SECRET, api_key=SECRET)
    base.write_text(yaml.safe_dump(cfg))
    (tmp_project / "conf" / "local" / "credentials.yml").write_text(
        yaml.safe_dump({"alpaca": {"api_key": SECRET, "api_secret": SECRET}})
    )
    caplog.set_level(logging.DEBUG)
    params = load_deployment_params()
    assert "api_key" in caplog.text and "ignored" in caplog.text
    store = AccountStore(params.account_dir)
    PaperAccount.instrument(
        store, initial_capital=params.initial_capital, costs=params.costs, limits=params.risk
    ).run(make_prices(30), alternating_policy)
    ModelRegistry(params.registry_path).register(
        agent="ppo", version="v1", seed=0, metrics={}, verdict={"passed": True}
    )
    outputs = [_invoke("models", "list", "--json").output, _invoke("paper", "status").output]
    # live mode with those credentials is refused, and the refusal does not echo them
    cfg["deployment"].update(mode="live_trading", broker_adapter="alpaca")
    base.write_text(yaml.safe_dump(cfg))
    refused = CliRunner().invoke(cli, ["paper", "status"])
    assert refused.exit_code != 0 and "no live broker adapter" in refused.output
    outputs.append(refused.output)
    written = [p for p in (tmp_project / "data").rglob("*") if p.is_file()]
    assert written
    for path in written:
        assert SECRET not in path.read_text(errors="replace"), path
    for text in [*outputs, caplog.text]:
        assert SECRET not in text
