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
"""

from __future__ import annotations

import os
import re
import sys
from types import TracebackType

from kedro.framework.hooks import hook_impl
from kedro.io.core import DatasetError
from kedro.validation.exceptions import ParameterValidationError

from .errors import InputError
from .project_params import remember


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
