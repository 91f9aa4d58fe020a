"""Pure node functions for ``deployment``; the logic lives in ``reinforce_strategy_creator.deployment``.

Files are only touched by the datasets (``ModelRegistryDataset``, ``PaperAccountDataset``):
these functions take loaded data and return data.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pandas as pd

from reinforce_strategy_creator.deployment.operations import resolve_mode
from reinforce_strategy_creator.deployment.registry import registration_request
from reinforce_strategy_creator.deployment.report import (
    FeedMismatchError,
    accounts_figure,
    buy_and_hold_marks,
    marks_frame,
    paper_status,
    report_status,
)
from reinforce_strategy_creator.deployment.session import (
    PRODUCTION,
    SHADOW,
    PaperSessionError,
    ProductionModel,
    instrument_name,
    run_paper_session,
)
from reinforce_strategy_creator.deployment.state import StagedAccount
from reinforce_strategy_creator.env import EnvConfig
from reinforce_strategy_creator.market_data import normalise_prices
from reinforce_strategy_creator.params.deployment import DeploymentParams
from reinforce_strategy_creator.params.features import FeatureParams


def check_mode(deployment: DeploymentParams) -> DeploymentParams:
    """Refuse ``live_trading`` (no broker adapter ships) before anything else; pass the block on.
    (Every parameter block was validated when the run started.)"""
    deployment = DeploymentParams.parse(deployment)
    resolve_mode(deployment.to_params())
    return deployment


def request_registration(
    champion: dict[str, Any] | None, deployment: DeploymentParams, universe: list[str] | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """What to register (and whether to auto-promote) from the evaluation's champion.

    The champion document carries its evaluation verdict (``champion["verdict"]``). The entry
    records the champion's ``universe``: by default the one instrument of ``deployment.feed``
    (its ``ticker``, else its file's name). The same request goes to the two views of the
    registry (production and newest champion), so Kedro registers before either account
    trades; applying it is idempotent.
    """
    params = DeploymentParams.parse(deployment)
    verdict = (champion or {}).get("verdict") if champion else {"passed": False, "rules": {}}
    universe = [instrument_name(params)] if universe is None else universe
    request = registration_request(champion, verdict, params.auto_promote, universe)
    return request, request


def normalise_feed(raw_feed: pd.DataFrame, deployment: DeploymentParams) -> pd.DataFrame:
    """The market feed through data_ingestion's rules (validation, cleaning, adjustment)."""
    deployment = DeploymentParams.parse(deployment)
    settings = deployment.feed
    source = raw_feed.attrs.get("source") if isinstance(raw_feed, pd.DataFrame) else None
    name = str(source or settings.filepath or "market_feed")
    start = deployment.paper_start
    prices, report = normalise_prices(
        raw_feed,
        source=name,
        settings=settings,
        warn_stale_opens_from=None if start is None else pd.Timestamp(start),
    )
    if not report["was_sorted"]:
        why = next(
            (w for w in report["warnings"] if "not in increasing order" in w), "rows out of date order"
        )
        # data_ingestion sorts a historical file with a warning; a live feed that steps back in
        # time is a broken feed: trading it would reorder what the account already saw.
        raise FeedMismatchError(
            f"{name}: the feed goes back in time ({why}). "
            "A market feed must be in date order; fix the feed. Nothing was traded."
        )
    return prices


def paper_trade(
    production: ProductionModel,
    champion: ProductionModel,
    account: StagedAccount,
    shadow_account: StagedAccount,
    feed: pd.DataFrame,
    feature_scaler: dict[str, Any],
    model_input_train: pd.DataFrame,
    environment: EnvConfig,
    feature_engineering: FeatureParams,
    deployment: DeploymentParams,
) -> tuple[StagedAccount, StagedAccount, dict[str, Any]]:
    """Decide on every new feed bar in both accounts: the production account with the
    production model (if any), the shadow account with the newest registered champion.

    Both are staged in memory; a refusal of either (provenance, feed) raises before Kedro
    saves anything, so neither account is written.
    """
    if account.folder.resolve() == shadow_account.folder.resolve():
        raise PaperSessionError(
            f"deployment.account and deployment.shadow_account are the same folder {account.folder}; "
            "give the shadow account its own filepath in conf/base/catalog_deployment.yml."
        )
    production = dataclasses.replace(production, role=PRODUCTION)
    champion = dataclasses.replace(champion, role=SHADOW)
    status = {
        "production": run_paper_session(
            production,
            account,
            feed,
            feature_scaler,
            model_input_train,
            environment,
            feature_engineering,
            deployment,
        ),
        "shadow": run_paper_session(
            champion,
            shadow_account,
            feed,
            feature_scaler,
            model_input_train,
            environment,
            feature_engineering,
            deployment,
        ),
    }
    return account, shadow_account, status


def report_accounts(
    account: StagedAccount,
    shadow_account: StagedAccount,
    session_status: dict[str, Any],
    environment: EnvConfig,
) -> tuple[dict[str, Any], Any]:
    """Status JSON and figure of both committed accounts (read back after their commit), each
    with buy-and-hold over its own bars, costs and capital."""
    reports = {}
    for role, staged in (("production", account), ("shadow", shadow_account)):
        state = staged.state
        equity_log = staged.history.get("equity", [])
        marks = marks_frame(equity_log)
        capital = state.initial_capital_cents / 100.0 if state is not None else 0.0
        bh = (
            buy_and_hold_marks(marks, capital, environment, granularity=state.granularity)
            if state is not None
            else marks_frame([])["equity"]
        )
        status = report_status(state, staged.history, bh, session_status[role])
        reports[role] = (state, equity_log, bh, status)
    status = paper_status(session_status, {role: r[3] for role, r in reports.items()})
    return status, accounts_figure(reports, status)
