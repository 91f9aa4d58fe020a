"""``deployment``: paper trading, its risk limits and drift checks (docs/paper_trading.md).

Costs and initial capital are not here: they are ``environment.*``, the values the agents were
trained with. The registry file and the account folders are catalog entries
(``conf/base/catalog_deployment.yml``), which ``kedro models ...`` / ``kedro paper ...`` read too.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, ClassVar, Literal

from pydantic import Field

from .base import Flag, Number, Params, PositiveInt
from .data import IngestionParams

Fraction01 = Annotated[Number, Field(gt=0, lt=1)]


class RiskParams(Params):
    """Hard limits applied on top of the policy; `null` disables a stop."""

    max_position_fraction: Annotated[Number, Field(ge=0)] = 1.0
    """|target position| is clipped to this fraction of equity."""
    max_daily_loss: Fraction01 | None = 0.03
    """A loss of this fraction since the day's start stops new risk for the rest of the day."""
    max_drawdown: Fraction01 | None = 0.20
    """A drawdown of this fraction from the peak flattens the account and halts it (kill switch) until `kedro
    paper clear-halt`."""


class DriftParams(Params):
    """Drift monitor: live features against the training period's (PSI and KS per feature)."""

    n_bins: Annotated[PositiveInt, Field(ge=2)] = 10
    """PSI bins at training-feature quantiles."""
    calibrate: Fraction01 | None = 0.99
    """Per-feature thresholds = this quantile of PSI / KS over the training period's own windows (`psi`, `ks`
    are floors); `null`: the fixed `psi` / `ks` only, which alarm on nearly every bar of daily index data."""
    psi: Annotated[Number, Field(gt=0)] = 0.25
    """PSI above this raises an alert (a floor when calibrated)."""
    ks: Annotated[Number, Field(gt=0)] = 0.20
    """KS statistic above this raises an alert (a floor when calibrated)."""
    min_samples: Annotated[PositiveInt, Field(ge=2)] = 20
    """Fewer live rows than this: no verdict."""
    eps: Annotated[Number, Field(gt=0)] = 1e-4
    """Floor for empty-bin shares in PSI."""
    window: PositiveInt = 60
    """Live bars compared with training."""
    check_every: PositiveInt = 1
    """Bars between drift checks."""
    halt_on_drift: Flag = False
    """`true`: an alert halts the account (flat) until `kedro paper clear-halt --reason ...`."""


class DeploymentParams(Params):
    """``deployment``: what the paper accounts trade, from when, and under which limits."""

    PATH: ClassVar[str] = "deployment"
    FILE: ClassVar[str] = "conf/base/parameters_deployment.yml"
    MOVED: ClassVar[dict[str, str]] = {
        "costs": "costs are environment.commission_bps / slippage_bps / borrow_bps_per_bar "
        "(conf/base/parameters_environment.yml), the values the agents were trained with",
        "initial_capital": "the initial capital is environment.initial_capital "
        "(conf/base/parameters_environment.yml, or --params environment.initial_capital=<value>), "
        "the value the agents were trained with",
        "registry_path": "the registry file is the filepath of deployment.model_registry in "
        "conf/base/catalog_deployment.yml",
        "account_dir": "the account folder is the filepath of deployment.account in "
        "conf/base/catalog_deployment.yml",
        "shadow_account_dir": "the shadow account folder is the filepath of deployment.shadow_account "
        "in conf/base/catalog_deployment.yml",
    }

    mode: Literal["paper_trading", "live_trading"] = "paper_trading"
    """`paper_trading` is the only mode that runs: no live broker adapter ships, and `live_trading` is refused
    with the reason."""
    auto_promote: Flag = True
    """A newly registered champion whose verdict passed becomes production automatically (never forced).
    `false`: promote by hand with `kedro models promote <id>`."""
    require_production_model: Flag = False
    """`false`: no production model is a warning and the production account trades nothing (the shadow account
    still trades the newest champion). `true`: it is an error — for scheduled daily runs."""
    paper_start: dt.date | None = dt.date(2018, 1, 1)
    """First bar the paper accounts trade; earlier feed bars are only history for the features. Must come
    after every period a traded policy was trained or selected on."""
    granularity: Literal["whole", "fractional"] = "whole"
    """Share granularity of a new paper account, recorded when it is created: `whole` shares (money in integer
    cents) or `fractional` shares (float64 dollars, the environment's arithmetic: reproduces a backtest of the
    same policy to the cent). An existing account keeps its own; another value is refused (use a new account
    folder)."""
    feed: IngestionParams = IngestionParams()
    """How the raw market feed is normalised: the same rules as `data_ingestion`."""
    risk: RiskParams = RiskParams()
    drift: DriftParams = DriftParams()
    broker_adapter: str | None = None
    """Name of a registered live broker adapter (none ships with the project)."""
    api_endpoint: str | None = None
    """Legacy live-trading setting, ignored in paper mode (its value is never logged); credentials belong in
    `conf/local/credentials.yml`."""
    api_key: str | None = None
    """Legacy live-trading setting, ignored in paper mode (its value is never logged)."""
    api_secret: str | None = None
    """Legacy live-trading setting, ignored in paper mode (its value is never logged)."""
