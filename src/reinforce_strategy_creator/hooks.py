"""Kedro hooks of the project.

``ClearInputErrors``: bad input (a malformed file, a wrong parameter, a missing artifact)
raises an :class:`~.errors.InputError`, a Kedro ``DatasetError``, or Kedro's
``ParameterValidationError`` (a typed parameter block refused when the run starts), whose message
already names the file, column, row or parameter and what to do. Kedro's CLI would print
it under a long rich traceback of library frames, which reads like a crash. This hook
prints such errors as the message alone (on stderr, exit status 1); any other exception is
a bug and keeps its full traceback. ``RSC_TRACEBACK=1`` shows the traceback for all.

``RecordStudyLooks``: when the tuning node fails after some trials ran (a trial's error, a lost
worker), the node returns nothing, yet those trials looked at the validation windows. The error
carries the study's ``tuning_study`` event (``tuning.study.interrupted_event``); this hook saves
it to ``tuning.study_event`` (the model registry) so that the walk-forward judge counts them.

``CloseExecutors``: the training and walk-forward nodes share one executor per ``compute`` block
(``compute.shared_executor``: one process pool or Dask cluster for the whole run); this hook opens
it before the first node (a bad ``compute.address`` stops the run before any work) and closes it
when the run ends or fails (it is also closed at interpreter exit).

``TrackRuns``: kedro-mlflow's hook (one MLflow run per ``kedro run``, under ``conf/<env>/mlflow.yml``)
with the project's rules (docs/tracking.md). ``tracking.enabled: false`` opens no store at all; an
HTTP tracking server that does not answer stops the run before any node. Every parameter block
is logged once, flattened, when the run starts (kedro-mlflow would log each node's inputs). After
the last node, in the driver, the run's saved outputs become its record (``tracking.record``):
verdict, stitched metrics, one nested run per fold or tuning trial, the reporting files as
artifacts; then the registry's MLflow mirror is synced. Workers never talk to MLflow.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
import warnings
from pathlib import Path
from types import TracebackType

from kedro.config import MissingConfigException
from kedro.framework.hooks import hook_impl
from kedro.io.core import DatasetError
from kedro.validation.exceptions import ParameterValidationError
from kedro_mlflow.framework.hooks.mlflow_hook import MlflowHook

from .deployment.registry import ModelRegistry
from .errors import InputError
from .params.tracking import TrackingParams
from .project_params import remember
from .tracking import mirror
from .tracking.config import TrackingSetup, prepare_store
from .tracking.record import RunRecord, cycle_record, flat_params, study_record
from .tracking.store import (
    URI_SETTING,
    TrackingError,
    check_reachable,
    code_version,
    log_params,
    set_tags,
    write_record,
)

_log = logging.getLogger(__name__)


def is_input_error(exc: BaseException) -> bool:
    """True for errors that describe bad input rather than a bug in the code."""
    return isinstance(exc, (InputError, DatasetError, ParameterValidationError))


_KEDRO_WRAPPER = re.compile(r"(?:Parameter '[^']*': )?Failed to instantiate \w+ for parameter '[^']*': ")


def format_input_error(exc: BaseException) -> str:
    text = str(exc)
    if isinstance(exc, ParameterValidationError):  # keep our message, drop Kedro's wrapping
        text = _KEDRO_WRAPPER.sub("", text)
    return (
        f"\nError: {type(exc).__name__}: {text}\n"
        "(This is a problem with the input, not a crash; set RSC_TRACEBACK=1 to see the traceback.)\n"
    )


def install_excepthook() -> None:
    """Wrap the current ``sys.excepthook`` (Kedro's rich one) once."""
    previous = sys.excepthook
    if getattr(previous, "_rsc_clear_input_errors", False):
        return

    def hook(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        if is_input_error(exc) and os.environ.get("RSC_TRACEBACK") not in ("1", "true", "yes"):
            sys.stderr.write(format_input_error(exc))
            sys.stderr.flush()
            return
        previous(exc_type, exc, tb)

    hook._rsc_clear_input_errors = True  # type: ignore[attr-defined]
    sys.excepthook = hook


class ClearInputErrors:
    @hook_impl
    def after_context_created(self, context) -> None:
        install_excepthook()
        # the pipelines are built from the parameters (one namespace per agent): give the registry
        # this session's configuration (--env, --params) before it builds them
        remember(context.config_loader)


class RecordStudyLooks:
    """Record the looks of a tuning study whose node failed (module docstring)."""

    NODE = "tuning.run_study"
    DATASET = "tuning.study_event"

    @hook_impl
    def on_node_error(self, error: Exception, node, catalog) -> None:
        event = getattr(error, "tuning_study_event", None)
        if node.name != self.NODE or not event or not event.get("trials_counted"):
            return
        catalog.save(self.DATASET, event)
        sys.stderr.write(
            f"\nThe study {event['study_name']} stopped; its {event['trials_counted']} trials so far are "
            "recorded in the model registry (the walk-forward judge counts them).\n"
        )


class CloseExecutors:
    @hook_impl
    def before_pipeline_run(self, pipeline, catalog) -> None:
        """Open the run's executor before the first node when a node takes ``params:compute``, so
        that an unreachable ``compute.address`` stops the run before any data is read or trained."""
        if "params:compute" not in pipeline.inputs():
            return
        from .compute import shared_executor

        shared_executor(catalog.load("params:compute"))

    @hook_impl
    def after_pipeline_run(self) -> None:
        from .compute import close_shared_executors

        close_shared_executors()

    @hook_impl
    def on_pipeline_error(self) -> None:
        from .compute import close_shared_executors

        close_shared_executors()


#: The stages whose outputs make a tracked run's record: (verdict, stitched metrics, folds,
#: training history) as catalog names; the first stage the run saved a verdict for is used.
CYCLE_OUTPUTS = (
    ("walk_forward.verdict", "walk_forward.metrics", "walk_forward.folds", "walk_forward.training_history"),
    ("portfolio.verdict", "portfolio.metrics", "portfolio.folds", None),
    ("evaluation_verdict", None, None, None),
)
STUDY_OUTPUTS = ("tuning.study_summary", "tuning.trials")
REGISTRY = "deployment.model_registry"


def _filepath(catalog, name: str) -> Path | None:
    dataset = catalog.get(name)
    path = getattr(dataset, "_filepath", None) or getattr(dataset, "_path", None)
    return Path(str(path)) if path else None


def _layer(catalog, name: str) -> str | None:
    metadata = getattr(catalog.get(name), "metadata", None) or {}
    return (metadata.get("kedro-viz") or {}).get("layer")


class TrackRuns(MlflowHook):
    """kedro-mlflow's hook with the project's switch, checks and record (module docstring)."""

    @hook_impl
    def after_context_created(self, context) -> None:
        self.run_id = None
        self._is_mlflow_enabled = False
        # the parameters as configured (conf + --params), not Kedro's typed view of them
        self.params = dict(context.config_loader["parameters"])
        self.settings = TrackingParams.parse(self.params.get("tracking"))
        if not self.settings.enabled:
            return
        self.project_path = Path(context.project_path)
        try:  # the pattern is the project's (project_params.CONFIG_LOADER_ARGS)
            conf = context.config_loader["mlflow"]
        except MissingConfigException:  # no mlflow.yml: MLFLOW_TRACKING_URI or an error
            conf = {}
        self.setup = TrackingSetup.from_conf(conf, self.project_path)
        check_reachable(self.setup.uri)
        prepare_store(self.setup.uri, self.project_path)
        started = time.perf_counter()
        try:
            with warnings.catch_warnings():  # kedro-mlflow's use of a deprecated omegaconf call
                warnings.filterwarnings("ignore", message=".*register_new_resolver.*")
                super().after_context_created(context)
        except Exception as exc:
            raise TrackingError(
                f"the MLflow store at {self.setup.uri} ({URI_SETTING}) could not be opened: {exc}. "
                "Fix the URI or start the server, or run without tracking: --params tracking.enabled=false."
            ) from exc
        _log.info(
            "Tracking: the MLflow store %s opened in %.1f s", self.setup.uri, time.perf_counter() - started
        )

    @hook_impl
    def after_catalog_created(
        self, catalog, conf_catalog, conf_creds, parameters, save_version, load_versions
    ):
        if self.settings.enabled:
            super().after_catalog_created(
                catalog, conf_catalog, conf_creds, parameters, save_version, load_versions
            )

    @hook_impl
    def before_pipeline_run(self, run_params, pipeline, catalog) -> None:
        if not self.settings.enabled:
            return
        names = run_params.get("pipeline_names")
        if isinstance(names, list):  # the run's name: the pipelines in one order, however they were given
            run_params = {**run_params, "pipeline_names": sorted(names)}
        super().before_pipeline_run(run_params, pipeline, catalog)
        if not self._is_mlflow_enabled:
            return
        started = time.perf_counter()
        client = self.setup.client()
        flat = flat_params(self.params)
        log_params(client, self.run_id, flat, self.setup.long_params)
        backend = flat.get("compute.backend", "sequential")
        set_tags(client, self.run_id, {**code_version(self.project_path), "compute.backend": backend})
        _log.info(
            "Tracking: run %s, %d parameters and the code version logged in %.1f s",
            self.run_id,
            len(flat),
            time.perf_counter() - started,
        )

    def before_node_run(self, *args, **kwargs) -> None:
        """Not a hook here: the parameters were logged whole when the run started."""

    @hook_impl
    def after_pipeline_run(self, run_params, pipeline, catalog) -> None:
        if not self.settings.enabled:
            return
        if self._is_mlflow_enabled:
            try:
                self._record(pipeline, catalog)
            except Exception as exc:
                self.on_pipeline_error(exc, run_params, pipeline, catalog)
                raise TrackingError(
                    f"the run finished and its outputs are saved, but recording it in MLflow "
                    f"({self.setup.uri}) failed: {exc}"
                ) from exc
        super().after_pipeline_run(run_params, pipeline, catalog)

    @hook_impl
    def on_pipeline_error(self, error, run_params, pipeline, catalog) -> None:
        if self.settings.enabled:
            super().on_pipeline_error(error, run_params, pipeline, catalog)

    def _record(self, pipeline, catalog) -> None:
        started = time.perf_counter()
        outputs = pipeline.all_outputs()

        def load(name: str | None):
            return catalog.load(name) if name and name in outputs else None

        records = []
        for verdict, metrics, folds, history in CYCLE_OUTPUTS:
            if verdict in outputs:
                curves = load(history) if self.settings.training_curves else None
                records.append(cycle_record(load(verdict), load(metrics), load(folds), curves))
                break
        if all(name in outputs for name in STUDY_OUTPUTS):
            study = flat_params({"tuning": self.params["tuning"]})["tuning.study_name"]
            summary = catalog.load(STUDY_OUTPUTS[0])[f"study_{study}"]()
            trials = catalog.load(STUDY_OUTPUTS[1])[f"trials_{study}"]()
            records.append(study_record(summary, trials))
        verdicts = {row[0] for row in CYCLE_OUTPUTS}
        files = []
        for name in sorted(outputs):
            reporting = _layer(catalog, name) == "reporting"
            folder = "reports" if reporting else "verdict" if name in verdicts else None
            path = _filepath(catalog, name) if folder else None
            if path is not None and path.is_file():
                files.append((path, folder))
        client = self.setup.client()
        for n, record in enumerate(records or [RunRecord()]):
            write_record(client, self.run_id, record, files if n == 0 else ())
        if self.settings.registry_mirror and REGISTRY in catalog:
            path = _filepath(catalog, REGISTRY)
            if path is not None and path.exists():
                report = mirror.sync_setup(self.setup, ModelRegistry(path), self.project_path)
                for entry_id, why in report.skipped.items():
                    sys.stderr.write(f"The MLflow registry mirror skips {entry_id}: {why}\n")
        _log.info(
            "Tracking: the run's record (%d nested runs, %d files) and the registry mirror written in %.1f s",
            sum(len(r.children) for r in records),
            len(files),
            time.perf_counter() - started,
        )
