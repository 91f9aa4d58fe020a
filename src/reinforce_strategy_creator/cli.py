"""Project CLI commands merged into ``kedro`` (Kedro imports ``<package>.cli.cli``).

* ``kedro models list | promote <id> [--force --reason ...] | rollback [--reason ...]``
  manage the file-backed model registry. (Named ``models`` so that Kedro's built-in
  ``kedro registry list|describe``, which lists pipelines, keeps working untouched.)
* ``kedro paper status`` shows the paper account; ``kedro paper clear-halt --reason ...``
  clears a kill-switch or drift halt, recording who, when and why.

Limits come from ``deployment:`` in the project's parameters and the registry file / account
folder from the catalog entries ``deployment.model_registry`` / ``deployment.account`` (the
same ones the pipeline uses), read with Kedro's ``OmegaConfigLoader`` (``conf/base``
overlaid by ``--env``, default ``local``).
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import click
from kedro.utils import find_kedro_project

from reinforce_strategy_creator.deployment import (
    AccountStore,
    DeploymentParams,
    ModelRegistry,
    clear_halt,
    reconcile,
    resolve_mode,
)

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"]}
logger = logging.getLogger(__name__)


def load_deployment_params(env: str | None = None, project_path: Path | None = None) -> DeploymentParams:
    """Read ``deployment:`` parameters of the Kedro project containing the working directory."""
    from kedro.config import OmegaConfigLoader

    from reinforce_strategy_creator import settings as project_settings

    root = project_path or find_kedro_project(Path.cwd())
    if root is None:
        raise click.ClickException(
            "not inside a Kedro project (no pyproject.toml with [tool.kedro]); run from the project root."
        )
    args = dict(project_settings.CONFIG_LOADER_ARGS)
    with warnings.catch_warnings():  # Kedro's own omegaconf deprecation notice, not ours
        warnings.filterwarnings("ignore", message=".*register_new_resolver.*")
        loader = OmegaConfigLoader(conf_source=str(Path(root) / "conf"), env=env, **args)
        all_params = loader["parameters"]
        params = all_params.get("deployment")
        catalog = loader["catalog"]
        try:
            credentials = None
            if params and params.get("mode") == "live_trading":
                credentials = loader.get("credentials", {})
            resolve_mode(params or {}, credentials)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from exc
    paths = {}
    for key, name in (("registry_path", "deployment.model_registry"),
                      ("account_dir", "deployment.account")):
        entry = catalog.get(name) or {}
        if "filepath" not in entry:
            raise click.ClickException(
                f"catalog entry {name!r} with a filepath not found; it is declared in "
                "conf/base/catalog_deployment.yml.")
        paths[key] = entry["filepath"]
    try:
        return DeploymentParams.from_params(params, Path(root),
                                            environment=all_params.get("environment"), **paths)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc


def _env_option(f):
    return click.option("--env", "-e", default=None, envvar="KEDRO_ENV",
                        help="Kedro configuration environment (default: local).")(f)


@click.group(context_settings=CONTEXT_SETTINGS, name="kedro")
def cli() -> None:
    """Project commands of reinforce_strategy_creator."""


@cli.group()
def models() -> None:
    """Model registry: list, promote and roll back evaluated champions."""


def _fail(exc: ValueError) -> click.ClickException:
    return click.ClickException(str(exc))


@models.command("list")
@click.option("--status", type=click.Choice(["candidate", "production", "archived"]), default=None)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@_env_option
def registry_list(status: str | None, as_json: bool, env: str | None) -> None:
    """List registered models with status, verdict and metrics."""
    params = load_deployment_params(env)
    try:
        entries = ModelRegistry(params.registry_path).list(status)
    except ValueError as exc:
        raise _fail(exc) from exc
    if as_json:
        click.echo(json.dumps([{"entry_id": e.entry_id, "status": e.status, "agent": e.agent,
                                "version": e.version, "seed": e.seed, "verdict": e.verdict,
                                "metrics": e.metrics, "artifact_path": e.artifact_path}
                               for e in entries], indent=2, sort_keys=True))
        return
    if not entries:
        click.echo(f"No models registered in {params.registry_path}.")
        return
    click.echo(_models_table(entries))
    click.echo("All metrics: kedro models list --json")


# The columns of `kedro models list`: (header, metric key, format).
_TABLE_METRICS = (
    ("val Sharpe", "validation_sharpe", "{:.2f}"),
    ("val PSR", "validation_psr", "{:.2f}"),
    ("val maxDD", "validation_max_drawdown", "{:.1%}"),
    ("test Sharpe", "test_sharpe", "{:.2f}"),
    ("test return", "test_total_return", "{:.1%}"),
)


def _models_table(entries) -> str:
    """A fixed-width table: one registered model per row, the metrics a reviewer looks at first."""
    header = ["status", "entry id", "verdict", *(h for h, _, _ in _TABLE_METRICS)]
    rows = [header]
    for e in entries:
        cells = [e.status, e.entry_id, "passed" if e.passed else "FAILED"]
        for _, key, fmt in _TABLE_METRICS:
            value = e.metrics.get(key)
            cells.append(fmt.format(value) if isinstance(value, (int, float)) else "-")
        rows.append(cells)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


@models.command("promote")
@click.argument("entry_id")
@click.option("--force", is_flag=True, help="Promote despite a failed verdict (recorded).")
@click.option("--reason", default=None, help="Why (required with --force).")
@_env_option
def registry_promote(entry_id: str, force: bool, reason: str | None, env: str | None) -> None:
    """Make ENTRY_ID the production model; the previous production is archived."""
    params = load_deployment_params(env)
    try:
        event = ModelRegistry(params.registry_path).promote(entry_id, force=force, reason=reason)
    except ValueError as exc:
        raise _fail(exc) from exc
    forced = " (FORCED over a failed verdict)" if event["forced"] else ""
    click.echo(f"Promoted {entry_id} to production{forced}; archived {event['previous']}.")


@models.command("rollback")
@click.option("--reason", default=None, help="Why the current production is withdrawn.")
@_env_option
def registry_rollback(reason: str | None, env: str | None) -> None:
    """Archive the current production model and restore the previous one."""
    params = load_deployment_params(env)
    try:
        event = ModelRegistry(params.registry_path).rollback(reason=reason)
    except ValueError as exc:
        raise _fail(exc) from exc
    click.echo(f"Rolled back production from {event['from']} to {event['to']}.")


@cli.group()
def paper() -> None:
    """Paper-trading account operations."""


@paper.command("status")
@_env_option
def paper_status(env: str | None) -> None:
    """Show the paper account and check that its logs reconcile."""
    params = load_deployment_params(env)
    store = AccountStore(params.account_dir)
    if not store.exists():
        click.echo(f"No paper account yet at {params.account_dir}.")
        return
    try:
        s = reconcile(store)
    except ValueError as exc:
        raise _fail(exc) from exc
    click.echo(f"account      {params.account_dir}\nlast bar     {s.last_bar}\n"
               f"cash         {s.cash:,.2f}\nshares       {s.shares}\n"
               f"equity       {s.equity:,.2f}\nposition     {s.position:.4f}\n"
               f"drawdown     {s.drawdown:.2%}\nmodel        {s.active_model_id}\n"
               f"day stop     {s.day_loss_stop}\nhalted       {s.halted}"
               + (f" ({s.halt_reason})" if s.halted else "") + "\nreconciled   yes")


@paper.command("clear-halt")
@click.option("--reason", required=True, help="Why trading may resume (recorded).")
@_env_option
def paper_clear_halt(reason: str, env: str | None) -> None:
    """Clear a drawdown kill-switch or drift halt so the account may trade again."""
    params = load_deployment_params(env)
    try:
        clear_halt(AccountStore(params.account_dir), reason)
    except ValueError as exc:
        raise _fail(exc) from exc
    click.echo(f"Halt cleared for {params.account_dir}: {reason}")
