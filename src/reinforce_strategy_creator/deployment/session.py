"""One paper-trading session: a registered policy decides on every new bar of the market feed.

What: :func:`run_paper_session` trades one account on the feed bars it has not processed yet
(a new account starts at ``deployment.paper_start``): the *production* account with the
registry's production entry, the *shadow* account with the newest registered champion,
whatever its verdict (``ProductionModel.role``). It returns a JSON-able status and writes no
file: the account is staged in memory and published by the caller (``PaperAccountDataset``).

Why: every number must be the one the agents were trained and evaluated with, so nothing is
re-implemented: features (``features``), observation (``env.observation_from_window``) and
fills (``env.execution``, through :class:`~.account.PaperAccount`) are the training code's, and a
policy that does not fit the current inputs is refused before anything trades
(:func:`check_policy_provenance`). See docs/paper_trading.md ("What one bar does", "Bad input").
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..env import EnvConfig, observation_from_window
from ..env.config import DEFAULT_FILL_PRICE
from ..errors import InputError
from ..features import (
    compute_features,
    feature_columns,
    feature_spec_sha256,
    max_lookback,
    scale_features,
    scaler_sha256,
)
from ..params.deployment import DeploymentParams, DriftParams
from ..params.features import FeatureParams
from ..paths import display_path
from .account import CostModel, PaperAccount, first_bar_to_process
from .drift import DriftMonitor, build_reference, calibrate_thresholds
from .operations import resolve_mode
from .report import check_feed_against_account, check_feed_matches_training
from .state import INSTRUMENT, AccountState, RunSummary, StagedAccount, count_events

logger = logging.getLogger(__name__)


class PaperSessionError(InputError):
    """The inputs of a paper-trading session do not fit together; the message says how."""


PRODUCTION, SHADOW = "production", "shadow"


@dataclass
class ProductionModel:
    """A registry entry chosen for an account, with its loaded policy (or why there is none).

    ``role`` ``"production"``: the registry's production entry (the production account);
    ``"shadow"``: the newest registered entry, whatever its verdict (the shadow account).
    """

    entry_id: str | None
    bundle: Any | None  # artifacts.PolicyBundle
    seed: int | None
    registry_path: str
    artifact: str | None = None
    version: str | None = None  # the artifact version the registry entry points to
    role: str = PRODUCTION
    verdict_passed: bool | None = None
    status: str | None = None  # registry status of the entry (candidate / production / archived)
    universe: list[str] | None = None  # the entry's tickers; None: one instrument (older entries)

    @property
    def available(self) -> bool:
        return self.entry_id is not None and self.bundle is not None

    def trades(self, tickers: Sequence[str] | None) -> bool:
        """Whether the entry trades exactly ``tickers``; ``None``: one instrument, whatever its
        name (the single-asset feed names none). An entry without a recorded universe trades one
        instrument."""
        if tickers is None:
            return self.universe is None or len(self.universe) == 1
        if self.universe is None:
            return len(tickers) == 1
        return list(self.universe) == [str(t) for t in tickers]

    def other_universe_message(self, tickers: Sequence[str] | None) -> str:
        """Why an account over ``tickers`` does not trade this entry: it trades another universe."""
        theirs = self.universe or ["one instrument"]
        ours = "one instrument" if tickers is None else list(tickers)
        fix = (
            "the registry holds one production model for the project: promote an entry of this "
            "universe (`kedro models list` shows each entry's universe)"
            if self.role == PRODUCTION
            else "the shadow account trades the newest registered entry: register a champion of "
            "this universe (run its cycle)"
        )
        return (
            f"The {self.label} trades the universe {theirs} ({len(theirs)} assets), not this "
            f"account's {ours}: nothing was traded and the account is untouched. To trade it, {fix}."
        )

    @property
    def label(self) -> str:
        what = "production model" if self.role == PRODUCTION else "newest champion (shadow account)"
        return f"{what} {self.entry_id} (artifact {self.artifact or '?'}, version {self.version})"


def no_production_message(registry_path: str) -> str:
    return (
        f"No production model in the registry {display_path(registry_path)}: nothing was traded "
        "and the production paper account is untouched. Review the candidates with `kedro models "
        "list`, then `kedro models promote <id>` (an entry whose evaluation verdict failed needs "
        '`--force --reason "..."`, which is recorded). With deployment.auto_promote: true a '
        "champion whose verdict passed is promoted when it is first registered. Meanwhile the "
        "shadow account trades the newest registered champion (paper_status.json, 'shadow')."
    )


def no_champion_message(registry_path: str) -> str:
    return (
        f"No champion registered in {display_path(registry_path)} yet: the shadow account has "
        "nothing to trade. Run the evaluation (`kedro run --pipelines full_cycle`); its champion "
        "is registered and shadow-traded whatever its verdict."
    )


class LiveFeatures:
    """Scaled features of the last ``rows`` bars of a history, computed causally.

    ``compute_features`` has exact finite memory (``max_lookback``), so a row computed from
    the trailing ``lookback + k`` bars equals the row computed from the full history; rows
    already computed for earlier bars of the same feed are therefore kept and only the new
    bar's row is computed (one session = one feed, so a bar's history never changes).
    """

    def __init__(self, spec: Mapping[str, Any], scaler: Mapping[str, Any], rows: int) -> None:
        self.spec, self.scaler, self.rows = spec, scaler, rows
        self.lookback = max_lookback(spec)
        self._cache: pd.DataFrame | None = None  # scaled rows, contiguous in the feed

    def __call__(self, history: pd.DataFrame) -> pd.DataFrame:
        n_complete = max(len(history) - self.lookback, 0)
        want = min(self.rows, n_complete)
        cache = self._cache
        have = 0
        if cache is not None and len(cache) and cache.index[-1] in history.index:
            end = history.index.get_loc(cache.index[-1])
            if end == len(history) - 1:
                return cache.iloc[-want:] if want else cache.iloc[0:0]
            if end >= len(history) - 1 - want:
                have = len(history) - 1 - end  # rows still to compute: the newest `have`
        new = want if have == 0 else have
        if new == 0:
            return history.iloc[0:0][[]]
        tail = history.iloc[-(self.lookback + new) :]
        raw = compute_features(tail, self.spec).iloc[self.lookback :]
        scaled = scale_features(raw, self.scaler)
        if have and cache is not None:
            scaled = pd.concat([cache, scaled])
        self._cache = scaled.iloc[-self.rows :]
        return self._cache.iloc[-want:]


class PolicyDecider:
    """``decide(history, state) -> target`` for the broker: the policy of the registered seed,
    deterministic (argmax), on the environment's observation of the live features."""

    def __init__(
        self, model: ProductionModel, features: LiveFeatures, env_cfg: EnvConfig, n_features: int
    ) -> None:
        self.policy = model.bundle.load_policy(
            model.seed, name=f"{model.entry_id} (artifact {model.artifact})"
        )
        self.features, self.cfg = features, env_cfg
        self.positions = np.asarray(env_cfg.positions, dtype=np.float64)
        obs_dim = int(model.bundle.spec.get("obs_dim", -1))
        if obs_dim not in (
            -1,
            env_cfg.window * n_features
            + sum((env_cfg.obs_position, env_cfg.obs_unrealised, env_cfg.obs_bars_held)),
        ):
            raise PaperSessionError(
                f"{model.entry_id}: policy obs_dim {obs_dim} does not "
                "match its window, features and observation switches."
            )

    def observation(self, history: pd.DataFrame, state: AccountState) -> np.ndarray:
        """The env's observation at the last bar of ``history``: the last ``window`` scaled
        feature rows and the account's held target, entry price and bars held."""
        scaled = self.features(history)
        W = self.cfg.window
        if len(scaled) < W:
            raise PaperSessionError(
                f"bar {history.index[-1].date()}: only {len(scaled)} complete feature rows in the "
                f"feed history, the policy needs environment.window={W} (plus "
                f"{self.features.lookback} warm-up bars). Start deployment.paper_start later or "
                "give the market feed more history before it."
            )
        last_close = state.last_close[0] if state.last_close is not None else float(history["Close"].iloc[-1])
        return observation_from_window(
            scaled.to_numpy(dtype=np.float32)[-W:],
            self.cfg,
            held=state.held_weights[0],
            shares=float(state.shares[0]),
            last_close=last_close,
            entry=state.entry_price[0],
            bars_held=state.bars_held[0],
        )

    def __call__(self, history: pd.DataFrame, state: AccountState) -> float:
        obs = self.observation(history, state)
        with torch.no_grad():
            action = int(self.policy.act(torch.from_numpy(obs)[None], deterministic=True)[0])
        return float(self.positions[action])


def _check_paper_start(
    start: pd.Timestamp | None, splits: Mapping[str, Any] | None, train_index: pd.Index
) -> None:
    if start is None:
        raise PaperSessionError(
            "deployment.paper_start is not set; set it to the first date after every "
            "feature_engineering split (e.g. '2018-01-01') so the paper account trades unseen bars."
        )
    ends = {
        name: pd.Timestamp(s["end"])
        for name, s in (splits or {}).items()
        if isinstance(s, Mapping) and s.get("end") is not None
    }
    if len(train_index):
        ends.setdefault("train", pd.Timestamp(train_index.max()))
    late = {k: v for k, v in ends.items() if v >= start}
    if late:
        name, end = next(iter(late.items()))
        raise PaperSessionError(
            f"deployment.paper_start={start.date()} is not after the end of the {name} split "
            f"({end.date()}, feature_engineering.splits.{name}.end): the paper account would "
            "trade bars the model was fitted or selected on. Move paper_start after every split."
        )


def _env_for_policy(spec: Mapping[str, Any], environment: Mapping[str, Any], entry_id: str) -> EnvConfig:
    """Observation layout and positions the policy was trained with; costs from params."""
    trained = dict(spec.get("environment") or {})
    merged = {
        **environment,
        **{
            k: trained[k]
            for k in ("window", "positions", "continuous", "obs_position", "obs_unrealised", "obs_bars_held")
            if k in trained
        },
    }
    cfg = EnvConfig.from_params(merged)
    if cfg.continuous:
        raise PaperSessionError(
            f"{entry_id}: continuous-action policies are not supported by "
            "the paper account yet; deploy a discrete-action agent."
        )
    if "window" in spec and int(spec["window"]) != cfg.window:
        raise PaperSessionError(
            f"{entry_id}: spec window {spec['window']} differs from its "
            f"environment.window {cfg.window}; the artifact is inconsistent."
        )
    return cfg


class ProvenanceError(PaperSessionError):
    """A policy was trained with other features, costs, capital or on the bars it would trade."""


_COST_KEYS = ("commission_bps", "slippage_bps", "borrow_bps_per_bar")
_PERIODS = (("train", "train_start", "train_end"), ("validation", "validation_start", "validation_end"))


def bars_to_trade(
    feed: pd.DataFrame, state: AccountState | None, paper_start: pd.Timestamp | None
) -> pd.DatetimeIndex:
    """The feed bars a session would process (the broker's rule, :func:`~.account.first_bar_to_process`)."""
    last_bar = None if state is None else state.last_bar
    return feed.index[first_bar_to_process(feed.index, last_bar, paper_start) :]


def check_policy_provenance(
    model: ProductionModel,
    *,
    scaler: Mapping[str, Any],
    feature_names: list[str],
    feature_spec: Mapping[str, Any],
    environment: Mapping[str, Any],
    trade_bars: pd.Index,
) -> None:
    """Refuse a policy that does not fit the current features, costs, capital or bars.

    The one place these checks live; :func:`run_paper_session` calls it for the production
    and the shadow account alike, before anything is traded. The policy's own record
    (``bundle.spec``, written by training) is compared with the current inputs, one concern
    at a time (each check's docstring says what); the first mismatch raises a
    :class:`ProvenanceError` naming the model, the artifact version, the field, both values and
    what to do.
    """
    spec, refuse = model.bundle.spec, _Refusal.for_model(model)
    _check_scaler_and_feature_names(spec, scaler, feature_names, refuse)
    _check_feature_spec(spec, feature_spec, refuse)
    _check_costs_capital_and_fill_price(spec, environment, refuse)
    _check_periods(spec, trade_bars, refuse)


@dataclass(frozen=True)
class _Refusal:
    """The provenance errors of one model: which model it is and what to do instead."""

    what: str  # the model's label: role, registry entry, artifact and version
    move_on: str  # promote another model (production) or register a newer champion (shadow)

    @classmethod
    def for_model(cls, model: ProductionModel) -> _Refusal:
        if model.role == PRODUCTION:
            return cls(
                model.label, "promote another model (`kedro models list`, `kedro models promote <id>`)"
            )
        return cls(
            model.label,
            "register a newer champion (re-run training and evaluation: `kedro run --pipelines full_cycle`)",
        )

    @property
    def retrain(self) -> str:
        return f"retrain (`kedro run --pipelines full_cycle`) so that training records it, or {self.move_on}"

    def differs(self, field: str, recorded: Any, current: Any, fix: str) -> ProvenanceError:
        return ProvenanceError(
            f"{self.what}: {field} differs: the policy was trained with {recorded!r}, the current "
            f"value is {current!r}. Trading it would feed it inputs or costs it never saw; nothing "
            f"was traded and the account is unchanged. {fix}"
        )

    def missing(self, field: str) -> ProvenanceError:
        return ProvenanceError(
            f"{self.what}: the policy spec does not record {field} (an artifact written by an older "
            f"training): deployment cannot check that it fits the current features, costs and "
            f"bars. Nothing was traded and the account is unchanged. To fix: {self.retrain}."
        )


def _check_scaler_and_feature_names(
    spec: Mapping[str, Any], scaler: Mapping[str, Any], feature_names: list[str], refuse: _Refusal
) -> None:
    """The feature scaler (``scaler_sha256``) and the feature names are the training ones."""
    recorded, current = spec.get("scaler_sha256"), scaler_sha256(scaler)
    if recorded is None:
        raise refuse.missing("scaler_sha256")
    if recorded != current:
        raise refuse.differs(
            "feature_scaler (spec scaler_sha256)",
            recorded,
            current,
            f"To fix: {refuse.move_on}, or restore the feature_scaler it was trained "
            "with (re-run feature_engineering with its parameters).",
        )
    spec_names = list(spec.get("feature_names", []))
    if spec_names != feature_names:
        raise refuse.differs(
            "feature names (spec feature_names vs the feat_* columns of model_input_train)",
            spec_names,
            feature_names,
            f"To fix: {refuse.move_on}, or restore feature_engineering.features.",
        )


def _check_feature_spec(spec: Mapping[str, Any], feature_spec: Mapping[str, Any], refuse: _Refusal) -> None:
    """The feature specification fingerprint (``feature_spec_sha256`` of
    ``feature_engineering.features``) is the training one."""
    recorded = spec.get("feature_spec_sha256")
    if not recorded:
        raise refuse.missing("feature_spec_sha256")
    current = feature_spec_sha256(feature_spec)
    if recorded != current:
        raise refuse.differs(
            "feature specification (spec feature_spec_sha256 of feature_engineering.features)",
            recorded,
            current,
            f"To fix: {refuse.move_on}, retrain on the current features, or restore "
            "feature_engineering.features as it was at training.",
        )


def _check_costs_capital_and_fill_price(
    spec: Mapping[str, Any], environment: Mapping[str, Any], refuse: _Refusal
) -> None:
    """The costs (``environment.commission_bps``, ``slippage_bps``, ``borrow_bps_per_bar``), the
    capital (``environment.initial_capital``) and ``environment.fill_price`` are the training ones."""
    trained = spec.get("environment")
    if not isinstance(trained, Mapping):
        raise refuse.missing("environment (its costs and capital)")
    for key in (*_COST_KEYS, "initial_capital"):
        if key not in trained:
            raise refuse.missing(f"environment.{key}")
        if key not in environment:
            raise PaperSessionError(
                f"environment.{key} is missing from the parameters; the paper "
                "accounts take costs and capital from parameters_environment.yml."
            )
        if float(trained[key]) != float(environment[key]):
            raise refuse.differs(
                f"environment.{key}",
                trained[key],
                environment[key],
                f"To fix: restore environment.{key}: {trained[key]} in "
                f"conf/base/parameters_environment.yml, {refuse.move_on}, or retrain "
                "with the new value.",
            )
    trained_fill, current_fill = trained.get("fill_price"), environment.get("fill_price", DEFAULT_FILL_PRICE)
    if trained_fill is None:
        raise refuse.missing("environment.fill_price")
    if trained_fill != current_fill:
        raise refuse.differs(
            "environment.fill_price",
            trained_fill,
            current_fill,
            f"To fix: restore environment.fill_price: {trained_fill} in "
            f"conf/base/parameters_environment.yml, {refuse.move_on}, or retrain "
            "with the new value.",
        )


def _check_periods(spec: Mapping[str, Any], trade_bars: pd.Index, refuse: _Refusal) -> None:
    """The policy's training and validation periods (``train_start`` .. ``validation_end``) do
    not overlap the bars it would trade (nothing to check when there are none)."""
    if len(trade_bars) == 0:
        return
    first, last = pd.Timestamp(trade_bars[0]), pd.Timestamp(trade_bars[-1])
    for name, start_key, end_key in _PERIODS:
        start, end = (_recorded_date(spec, key, refuse) for key in (start_key, end_key))
        if start <= last and first <= end:
            raise ProvenanceError(
                f"{refuse.what}: its {name} period ({start_key} {start.date()} .. {end_key} {end.date()}) "
                f"overlaps the bars it would trade ({first.date()} .. {last.date()}): its paper "
                "results would be on data it was fitted or selected on. Nothing was traded and the "
                f"account is unchanged. To fix: {refuse.move_on}, retrain with feature_engineering.splits "
                "ending before deployment.paper_start, or move deployment.paper_start after "
                f"{end.date()} (a new account folder)."
            )


def _recorded_date(spec: Mapping[str, Any], key: str, refuse: _Refusal) -> pd.Timestamp:
    """A date the policy spec records (``train_start`` ...); missing or not a date is refused."""
    value = spec.get(key)
    if value is None:
        raise refuse.missing(key)
    try:
        return pd.Timestamp(value)
    except (TypeError, ValueError) as exc:
        raise ProvenanceError(
            f"{refuse.what}: spec {key}={value!r} is not a date; the artifact is "
            f"damaged. To fix: {refuse.retrain}."
        ) from exc


# ---------------------------------------------------------------------------------------
# The session
# ---------------------------------------------------------------------------------------
def run_paper_session(
    model: ProductionModel,
    account: StagedAccount,
    feed: pd.DataFrame,
    scaler: Mapping[str, Any],
    train_table: pd.DataFrame,
    environment: EnvConfig,
    features: FeatureParams,
    deployment: DeploymentParams,
) -> dict[str, Any]:
    """Process the new feed bars into ``account`` (staged); return the session status.

    Steps: check the feed and the account; without a model, say why and trade nothing; check
    the session's inputs and the policy's provenance; build the decision function and the
    drift monitor; run the broker; log and summarise what happened.
    """
    params, features = DeploymentParams.parse(deployment), FeatureParams.parse(features)
    mode = resolve_mode(params.to_params())  # live_trading is refused here, with the reason
    env_params = EnvConfig.parse(environment).to_params()
    status = _session_status(model, account, mode)
    _check_feed(feed, train_table, account)  # bad feeds are refused first, model or not
    _check_granularity(account, params.granularity, model.role)
    if not model.available:
        return _without_model(model, params.require_production_model, status)
    if not model.trades(None):
        message = model.other_universe_message(None)
        logger.warning(message)
        return {**status, "status": "other_universe", "message": message}

    paper_start = None if params.paper_start is None else pd.Timestamp(params.paper_start)
    names = _check_inputs(model, account, feed, scaler, train_table, env_params, features, paper_start)
    env_cfg = _env_for_policy(model.bundle.spec, env_params, model.entry_id)
    live = LiveFeatures(features.features, scaler, rows=max(env_cfg.window, params.drift.window))
    decider = PolicyDecider(model, live, env_cfg, n_features=len(names))
    paper = PaperAccount.instrument(
        account,
        initial_capital=float(env_params["initial_capital"]),
        costs=CostModel.from_environment(env_params),
        limits=params.risk,
        drift_check=_drift_monitor(train_table[names], live, params.drift),
        halt_on_drift=params.drift.halt_on_drift,
        granularity=params.granularity,
        ticker=instrument_name(params),
    )
    _log_model_switch(model, account)
    summary = paper.run(feed, decider, model_id=model.entry_id, start=paper_start)
    _log_session(model, account, summary)
    return _traded_status(status, summary, account.records["events"])


def instrument_name(deployment: DeploymentParams) -> str:
    """The single instrument's ticker: ``deployment.feed.ticker``, else the feed file's stem (the
    name data_ingestion gives a one-instrument file); the registry records it as the entry's
    universe and a new paper account as its one ticker."""
    feed = deployment.feed
    return str(feed.ticker or (PurePath(str(feed.filepath)).stem if feed.filepath else INSTRUMENT))


def _session_status(model: ProductionModel, account: StagedAccount, mode: str) -> dict[str, Any]:
    """What every session status says: the account, the model and where things stand before."""
    before = account.state
    return {
        "role": model.role,
        "mode": mode,
        "registry": display_path(model.registry_path),
        "account": display_path(account.folder),
        "model": model.entry_id,
        "model_version": model.version,
        "model_artifact": _display_artifact(model.artifact),
        "model_verdict_passed": model.verdict_passed,
        "model_registry_status": model.status,
        "bars_processed_this_run": 0,
        "first_bar": None,
        "last_bar": before.last_bar if before else None,
    }


def _check_feed(feed: pd.DataFrame, train_table: pd.DataFrame, account: StagedAccount) -> None:
    """The feed has the training data's columns and frequency and agrees with every bar the
    account already processed (docs/paper_trading.md, "Bad input")."""
    check_feed_matches_training(feed, train_table)
    check_feed_against_account(feed, account.history.get("equity", []), display_path(account.folder))


def _check_granularity(account: StagedAccount, granularity: str, role: str) -> None:
    """An existing account keeps the share granularity it was created with: a different
    ``deployment.granularity`` is refused before anything is traded."""
    state = account.state
    if state is None or state.granularity == granularity:
        return
    raise PaperSessionError(
        f"deployment.granularity is {granularity!r}, but the {role} paper account "
        f"{display_path(account.folder)} trades {state.granularity!r} shares (recorded in its "
        "state.json when it was created; an account never changes it). Nothing was traded and the "
        f"account is unchanged. To fix: set deployment.granularity: {state.granularity}, or give "
        f"the {role} account a new folder (its filepath in conf/base/catalog_deployment.yml) to "
        f"start a {granularity} account."
    )


def _without_model(
    model: ProductionModel, require_production_model: bool, status: dict[str, Any]
) -> dict[str, Any]:
    """No model for this account: say why and trade nothing (the account stays untouched);
    with ``deployment.require_production_model`` no production model is an error."""
    if model.role != PRODUCTION:
        message = no_champion_message(model.registry_path)
        logger.info(message)
        return {**status, "status": "no_champion", "message": message}
    message = no_production_message(model.registry_path)
    if require_production_model:
        raise PaperSessionError(
            message.replace(
                "nothing was traded",
                "deployment.require_production_model is true, so this is an error; nothing was traded",
                1,
            )
        )
    logger.warning(message)
    return {**status, "status": "no_production_model", "message": message}


def _check_inputs(
    model: ProductionModel,
    account: StagedAccount,
    feed: pd.DataFrame,
    scaler: Mapping[str, Any],
    train_table: pd.DataFrame,
    env_params: Mapping[str, Any],
    features: FeatureParams,
    paper_start: pd.Timestamp | None,
) -> list[str]:
    """``paper_start`` after every split, a scaler of the training table's features and a
    policy whose provenance fits (:func:`check_policy_provenance`). Returns the feature names."""
    _check_paper_start(paper_start, features.splits.to_params(), train_table.index)
    names = feature_columns(train_table)
    if list(scaler.get("feature_names", [])) != names:
        raise PaperSessionError(
            f"feature_scaler.feature_names {scaler.get('feature_names')} differ from the "
            f"feat_* columns of model_input_train {names}; re-run feature_engineering."
        )
    check_policy_provenance(
        model,
        scaler=scaler,
        feature_names=names,
        feature_spec=features.features,
        environment=env_params,
        trade_bars=bars_to_trade(feed, account.state, paper_start),
    )
    return names


def _drift_monitor(train_features: pd.DataFrame, live: LiveFeatures, drift: DriftParams) -> DriftMonitor:
    """Live features against the training period's (``deployment.drift``): reference bins from
    the training features, thresholds calibrated on the training period's own windows unless
    ``drift.calibrate`` is null."""
    names = list(train_features.columns)
    reference = build_reference(train_features, drift.n_bins)
    per_feature = None
    if drift.calibrate is not None:
        per_feature = calibrate_thresholds(
            reference, train_features, drift.window, float(drift.calibrate), drift
        )
    return DriftMonitor(
        reference=reference,
        feature_fn=lambda h: live(h)[names],
        thresholds=drift,
        window=drift.window,
        check_every=drift.check_every,
        per_feature=per_feature,
    )


def _log_model_switch(model: ProductionModel, account: StagedAccount) -> None:
    """Say when another model takes over the account (the broker records the event)."""
    before = account.state
    if before is not None and before.active_model_id not in (None, model.entry_id):
        logger.info(
            "%s paper account %s switches model: %s -> %s (same account continues).",
            model.role.capitalize(),
            display_path(account.folder),
            before.active_model_id,
            model.entry_id,
        )


def _log_session(model: ProductionModel, account: StagedAccount, summary: RunSummary) -> None:
    """Log what the run did: each halt, day-loss stop and model switch, the drift alerts in one
    line (all of them are in events.jsonl), and the new equity."""
    role, where = model.role.capitalize(), display_path(account.folder)
    drift_bars: dict[str, list[str]] = {}
    for ev in account.records["events"]:
        if ev["kind"] == "drift_alert":
            drift_bars.setdefault(ev["bar"], []).append(str(ev.get("feature")))
        elif ev["kind"] in ("halt", "day_loss_stop", "model_switch"):
            logger.warning(
                "%s paper account %s at %s: %s",
                role,
                where,
                ev["bar"],
                ev["kind"] + ": " + (ev.get("reason") or f"{ev.get('from')} -> {ev.get('to')}"),
            )
    if drift_bars:
        last = max(drift_bars)
        logger.warning(
            "%s account: drift alerts on %d of %d new bar(s) (recorded in events.jsonl); last at %s on %s.",
            role,
            len(drift_bars),
            summary.bars_processed,
            last,
            drift_bars[last],
        )
    logger.info(
        "Paper trading (%s account): %d new bar(s) processed with %s; equity %.2f.",
        model.role,
        summary.bars_processed,
        model.entry_id,
        summary.state.equity,
    )


def _traded_status(
    status: dict[str, Any], summary: RunSummary, events: list[dict[str, Any]]
) -> dict[str, Any]:
    """The session status after the broker ran: what it processed and where the account stands."""
    state = summary.state
    return {
        **status,
        "status": "traded" if summary.bars_processed else "no_new_bars",
        "bars_processed_this_run": summary.bars_processed,
        "first_bar": summary.first_bar,
        "last_bar": state.last_bar,
        "equity": state.equity,
        "cash": state.cash,
        "shares": state.shares[0],
        "position": state.weights()[0],
        "drawdown": state.drawdown,
        "halted": state.halted,
        "halt_reason": state.halt_reason,
        "pending_target": None if state.pending_weights is None else state.pending_weights[0],
        "events_this_run": count_events(events),
        "message": (
            f"processed {summary.bars_processed} new bar(s)"
            if summary.bars_processed
            else "no feed bars newer than the account's last processed bar"
        ),
    }


def _display_artifact(artifact: str | None) -> str | None:
    """``path@version`` with the path relative to the project root when it lies inside it."""
    if not artifact:
        return artifact
    path, _, version = artifact.rpartition("@")
    return f"{display_path(path) if path and Path(path).is_absolute() else path}@{version}"
