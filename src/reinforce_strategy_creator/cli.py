"""Project CLI commands merged into ``kedro`` (Kedro imports ``<package>.cli.cli``).

What: ``kedro models list | promote <id> [--force --reason ...] | rollback [--reason ...] | sync``
manage the model registry (named ``models`` so that Kedro's own ``kedro registry`` keeps
working); promote and rollback then update the registry's MLflow mirror, which ``sync`` rebuilds
(docs/tracking.md); ``kedro paper status [--json]`` shows the paper accounts (the single instrument's and
the universe's) after checking that their logs reconcile; ``kedro paper clear-halt --reason ...
[--account shadow | universe | universe_shadow]`` clears a halt,
recording who, when and why. ``--json`` prints one JSON document on stdout (logs go to stderr).

Why here: people act on the registry and the accounts between pipeline runs, with the same
parameters and catalog paths as the pipeline (read with Kedro's ``OmegaConfigLoader``,
``conf/base`` overlaid by ``--env``). See docs/paper_trading.md ("Day to day").
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import click
from kedro.utils import find_kedro_project

from reinforce_strategy_creator.candidates import seed_label
from reinforce_strategy_creator.deployment import (
    AccountStore,
    DeploymentParams,
    DeploymentSetup,
    ModelRegistry,
    clear_halt,
    reconcile,
    resolve_mode,
)
from reinforce_strategy_creator.deployment.registry import RECORDS
from reinforce_strategy_creator.env.config import EnvConfig
from reinforce_strategy_creator.params.tracking import TrackingParams
from reinforce_strategy_creator.paths import display_path, resolve_in_project
from reinforce_strategy_creator.tracking import mirror
from reinforce_strategy_creator.tracking.config import TrackingSetup

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"]}
logger = logging.getLogger(__name__)


def load_deployment_params(env: str | None = None, project_path: Path | None = None) -> DeploymentSetup:
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
    for key, name in (
        ("registry_path", "deployment.model_registry"),
        ("account_dir", "deployment.account"),
        ("shadow_account_dir", "deployment.shadow_account"),
    ):
        entry = catalog.get(name) or {}
        if "filepath" not in entry:
            raise click.ClickException(
                f"catalog entry {name!r} with a filepath not found; it is declared in "
                "conf/base/catalog_deployment.yml."
            )
        paths[key] = entry["filepath"]
    for key, name in (
        ("universe_account_dir", "portfolio.account"),
        ("universe_shadow_account_dir", "portfolio.shadow_account"),
    ):
        if "filepath" in (catalog.get(name) or {}):
            paths[key] = catalog[name]["filepath"]
    try:
        block = DeploymentParams.parse(params)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        environment = EnvConfig.parse(all_params.get("environment"))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    resolved = {k: resolve_in_project(v, root) for k, v in paths.items()}
    return DeploymentSetup(block, environment, **resolved)


def load_tracking(
    env: str | None = None, project_path: Path | None = None
) -> tuple[TrackingParams, TrackingSetup]:
    """The ``tracking`` parameters and ``mlflow.yml`` of the project, as a run with ``--env`` reads them."""
    from kedro.config import MissingConfigException, OmegaConfigLoader

    from reinforce_strategy_creator import settings as project_settings

    root = project_path or find_kedro_project(Path.cwd())
    args = dict(project_settings.CONFIG_LOADER_ARGS)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*register_new_resolver.*")
        loader = OmegaConfigLoader(conf_source=str(Path(root) / "conf"), env=env, **args)
        try:
            settings = TrackingParams.parse(loader["parameters"].get("tracking"))
            try:
                conf = loader["mlflow"]
            except MissingConfigException:  # no mlflow.yml: MLFLOW_TRACKING_URI or an error
                conf = {}
            return settings, TrackingSetup.from_conf(conf, root)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from exc


def _sync_mirror(registry: ModelRegistry, env: str | None) -> mirror.MirrorReport | None:
    """Make the MLflow mirror agree with ``registry`` (after the registry committed). A mirror that
    cannot be written leaves the registry as committed and says how to catch up."""
    try:
        settings, setup = load_tracking(env)
        if not (settings.enabled and settings.registry_mirror):
            return None
        report = mirror.sync_setup(setup, registry, Path.cwd())
    except Exception as exc:  # noqa: BLE001 - the registry committed; the mirror catches up later
        text = exc.message if isinstance(exc, click.ClickException) else str(exc)
        click.echo(
            f"The registry committed, but its MLflow mirror was not updated: {text} "
            "Run `kedro models sync` once tracking is configured and its store is reachable.",
            err=True,
        )
        return None
    for entry_id, why in report.skipped.items():
        click.echo(f"The MLflow mirror skips {entry_id}: {why}", err=True)
    if report.alias_changes:
        click.echo(f"MLflow aliases: {', '.join(report.alias_changes)}.", err=True)
    return report


def _env_option(f):
    return click.option(
        "--env",
        "-e",
        default=None,
        envvar="KEDRO_ENV",
        help="Kedro configuration environment (default: local).",
    )(f)


@click.group(context_settings=CONTEXT_SETTINGS, name="kedro")
def cli() -> None:
    """Project commands of reinforce_strategy_creator."""


@cli.group()
def models() -> None:
    """Model registry: list, promote and roll back evaluated champions."""


def _fail(exc: ValueError) -> click.ClickException:
    return click.ClickException(str(exc))


def _shown(path: str | None) -> str | None:
    """A recorded path as people and scripts should see it: relative to the project root when
    it lies inside the project (an older registry may hold absolute paths)."""
    return display_path(path) if path and Path(path).is_absolute() else path


@models.command("list")
@click.option("--status", type=click.Choice(["candidate", "production", "archived"]), default=None)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@_env_option
def registry_list(status: str | None, as_json: bool, env: str | None) -> None:
    """List registered models with their universe, status, verdict and metrics."""
    params = load_deployment_params(env)
    try:
        entries = ModelRegistry(params.registry_path).list(status)
    except ValueError as exc:
        raise _fail(exc) from exc
    if as_json:
        click.echo(
            json.dumps(
                [
                    {
                        "entry_id": e.entry_id,
                        "status": e.status,
                        "agent": e.agent,
                        "version": e.version,
                        "seed": e.seed,
                        "member": seed_label(e.seed),
                        "verdict": e.verdict,
                        "metrics": e.reported_metrics(),
                        "scored_on": e.scored_on,
                        "artifact_path": _shown(e.artifact_path),
                        "universe": e.universe,
                        "n_assets": e.n_assets,
                    }
                    for e in entries
                ],
                indent=2,
                sort_keys=True,
            )
        )
        return
    if not entries:
        click.echo(f"No models registered in {display_path(params.registry_path)}.")
        return
    click.echo(_models_table(entries))
    click.echo("All metrics: kedro models list --json")


# The validation columns of `kedro models list`: (header, metric key, format).
_VALIDATION_COLUMNS = (
    ("val Sharpe", "validation_sharpe", "{:.2f}"),
    ("val PSR", "validation_psr", "{:.2f}"),
    ("val maxDD", "validation_max_drawdown", "{:.1%}"),
)
# The columns of the record that decided an entry's verdict (its own test, or the walk-forward
# procedure's stitched record), each headed by the record's name: (header, metric suffix, format).
_RECORD_COLUMNS = (("Sharpe", "sharpe", "{:.2f}"), ("return", "total_return", "{:.1%}"))
_NOT_RECORDED = "not recorded"


def _cell(value, fmt: str) -> str:
    return fmt.format(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else "-"


def _window(scored_on: dict | None) -> str:
    if not scored_on:
        return _NOT_RECORDED
    start, end = scored_on.get("start"), scored_on.get("end")
    return f"{start}..{end}" if start and end else "-"


def _models_table(entries) -> str:
    """A fixed-width table: one registered model per row, the metrics a reviewer looks at first.
    The figures of the record that decided a verdict are headed by that record's name (``test``
    or ``procedure stitched``), in its own columns when the registry holds both kinds."""
    records = [r for r in RECORDS.values() if any(e.record == r for e in entries)]
    header = ["status", "entry id", "universe", "verdict", *(h for h, _, _ in _VALIDATION_COLUMNS)]
    header += [f"{name} {h}" for name, _ in records for h, _, _ in _RECORD_COLUMNS]
    rows = [[*header, "scored on"]]
    for e in entries:
        cells = [e.status, e.entry_id, e.universe_label(), "passed" if e.passed else "FAILED"]
        cells += [_cell(e.metrics.get(key), fmt) for _, key, fmt in _VALIDATION_COLUMNS]
        reported = e.reported_metrics()
        for record in records:
            name, prefix = record
            cells += [
                _cell(reported.get(prefix + key), fmt) if e.record == record else "-"
                for _, key, fmt in _RECORD_COLUMNS
            ]
        rows.append([*cells, _window(e.scored_on)])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    if RECORDS["walk_forward"] in records:
        lines.append(
            "procedure stitched: the walk-forward procedure's record (each fold's champion trading its "
            "own test window, one account across the folds), not a test of the registered model itself."
        )
    if any(e.scored_on is None for e in entries):
        lines.append(
            f"scored on {_NOT_RECORDED}: registered before the registry recorded what decided the "
            "verdict; its figures keep the names they were recorded with (under walk-forward, "
            "'test' was the procedure's stitched record)."
        )
    return "\n".join(lines)


@models.command("promote")
@click.argument("entry_id")
@click.option("--force", is_flag=True, help="Promote despite a failed verdict (recorded).")
@click.option("--reason", default=None, help="Why (required with --force).")
@_env_option
def registry_promote(entry_id: str, force: bool, reason: str | None, env: str | None) -> None:
    """Make ENTRY_ID the production model (of any universe); the previous production is archived."""
    params = load_deployment_params(env)
    try:
        event = ModelRegistry(params.registry_path).promote(entry_id, force=force, reason=reason)
    except ValueError as exc:
        raise _fail(exc) from exc
    forced = " (FORCED over a failed verdict)" if event["forced"] else ""
    click.echo(f"Promoted {entry_id} to production{forced}; archived {event['previous']}.")
    _sync_mirror(ModelRegistry(params.registry_path), env)


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
    _sync_mirror(ModelRegistry(params.registry_path), env)


@models.command("sync")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@_env_option
def registry_sync(as_json: bool, env: str | None) -> None:
    """Make the MLflow registered model agree with the registry (versions, tags, aliases)."""
    params = load_deployment_params(env)
    settings, setup = load_tracking(env)
    if not settings.enabled:
        raise click.ClickException(
            "tracking.enabled is false in this environment: there is no mirror to sync."
        )
    registry = ModelRegistry(params.registry_path)
    try:
        report = mirror.sync_setup(setup, registry, Path.cwd())
    except ValueError as exc:
        raise _fail(exc) from exc
    summary = {
        "model": setup.model_name,
        "tracking_uri": setup.uri,
        "created": report.created,
        "retagged": report.retagged,
        "alias_changes": report.alias_changes,
        "aliases": report.aliases,
        "skipped": report.skipped,
    }
    if as_json:
        click.echo(json.dumps(summary, indent=2, sort_keys=True))
        return
    state = (
        "changed: "
        + "; ".join(
            [
                f"{len(report.created)} version(s) created",
                f"{len(report.retagged)} retagged",
                *report.alias_changes,
            ]
        )
        if report.changed
        else "already in agreement"
    )
    click.echo(f"MLflow model {setup.model_name} ({setup.uri}) {state}.")
    click.echo("Aliases: " + ", ".join(f"{k}={v or '-'}" for k, v in report.aliases.items()))
    for entry_id, why in report.skipped.items():
        click.echo(f"Skipped {entry_id}: {why}", err=True)


@cli.group()
def paper() -> None:
    """Paper-trading account operations."""


ACCOUNT_LABELS = {
    "production": "PRODUCTION account (trades only the promoted model)",
    "shadow": "SHADOW account (trades the newest registered champion, whatever its verdict)",
    "universe": "UNIVERSE PRODUCTION account (the portfolio cycle's universe; the promoted model only)",
    "universe_shadow": "UNIVERSE SHADOW account (the portfolio cycle's universe; the newest champion)",
}


def _account_facts(folder: Path) -> dict:
    """What `kedro paper status` shows for one account, after checking that its logs replay."""
    store = AccountStore(folder)
    if not store.exists():
        return {"account": display_path(folder), "exists": False}
    try:
        s = reconcile(store)
    except ValueError as exc:
        raise _fail(exc) from exc
    return {
        "account": display_path(folder),
        "exists": True,
        "tickers": list(s.tickers),
        "last_bar": s.last_bar,
        "cash": s.cash,
        "shares": {t: x for t, x in s.holdings().items() if x},
        "equity": s.equity,
        "weights": {t: w for t, w in zip(s.tickers, s.weights(), strict=True) if w},
        "drawdown": s.drawdown,
        "model": s.active_model_id,
        "day_loss_stop": s.day_loss_stop,
        "halted": s.halted,
        "halt_reason": s.halt_reason,
        "bars_processed": s.bars_processed,
        "reconciled": True,
    }


def _account_text(role: str, f: dict) -> str:
    if not f["exists"]:
        why = (
            "no model promoted yet: `kedro models list`, then `kedro models promote <id>`"
            if role == "production"
            else "no champion registered yet: run the evaluation"
        )
        return f"{ACCOUNT_LABELS[role]}\nNo {role} paper account yet at {f['account']} ({why})."
    weights = ", ".join(f"{t} {w:.4f}" for t, w in f["weights"].items()) or "none (all cash)"
    return (
        f"{ACCOUNT_LABELS[role]}\naccount      {f['account']}\n"
        f"tickers      {len(f['tickers'])}: {', '.join(f['tickers'])}\nlast bar     {f['last_bar']}\n"
        f"cash         {f['cash']:,.2f}\nshares       {f['shares']}\n"
        f"equity       {f['equity']:,.2f}\nweights      {weights}\n"
        f"drawdown     {f['drawdown']:.2%}\nmodel        {f['model']}\n"
        f"day stop     {f['day_loss_stop']}\nhalted       {f['halted']}"
        + (f" ({f['halt_reason']})" if f["halted"] else "")
        + "\nreconciled   yes"
    )


@paper.command("status")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@_env_option
def paper_status(as_json: bool, env: str | None) -> None:
    """Show the paper accounts (production and shadow; the universe's too once they exist) and
    check that their logs reconcile."""
    params = load_deployment_params(env)
    facts = {role: _account_facts(folder) for role, folder in params.accounts.items()}
    if as_json:
        click.echo(
            json.dumps({"registry": display_path(params.registry_path), **facts}, indent=2, sort_keys=True)
        )
        return
    shown = {r: f for r, f in facts.items() if not r.startswith("universe") or f["exists"]}
    click.echo("\n\n".join(_account_text(role, f) for role, f in shown.items()))


@paper.command("clear-halt")
@click.option("--reason", required=True, help="Why trading may resume (recorded).")
@click.option(
    "--account",
    "which",
    type=click.Choice(list(ACCOUNT_LABELS)),
    default="production",
    help="Which paper account (default: production; universe, universe_shadow: the portfolio cycle's).",
)
@_env_option
def paper_clear_halt(reason: str, which: str, env: str | None) -> None:
    """Clear a drawdown kill-switch or drift halt so the account may trade again."""
    params = load_deployment_params(env)
    if which not in params.accounts:
        raise click.ClickException(f"the catalog declares no {which} paper account.")
    folder = params.accounts[which]
    try:
        clear_halt(AccountStore(folder), reason)
    except ValueError as exc:
        raise _fail(exc) from exc
    click.echo(f"Halt cleared for the {which} account {display_path(folder)}: {reason}")
