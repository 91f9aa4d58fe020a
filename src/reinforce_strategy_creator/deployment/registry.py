"""File-backed model registry: an append-only JSON-lines history folded into current state.

What: :class:`ModelRegistry` registers evaluated champions as candidates and moves them through
``candidate -> production -> archived`` (``promote``, refused for a failed verdict unless
forced with a reason, which is recorded; ``rollback``); it also records the evaluation gate's
decisions and the hyperparameter studies that looked at validation windows (``tuning_study``). The
current state is :func:`fold` of the events.

Why: the history is the only source of truth and is never rewritten, so an audit can always
tell who promoted what and why. Every write reads, checks and appends under one ``flock``, so
concurrent writers cannot leave a history that does not fold. A last line without its newline
counts when it is one complete event that folds (the next write adds the newline); otherwise it
is torn (a writer killed mid-append): readers ignore it with a warning and the next write moves
its bytes to ``<registry>.torn-<UTC timestamp>`` beside the file. No byte is ever deleted.
Hand-written because MLflow or a database server are far heavier than one auditable text
file. See docs/paper_trading.md ("State files").
"""

from __future__ import annotations

import copy
import json
import logging
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from ..artifact_digest import SPEC_FILE, verify_artifact, versioned_artifact_path
from ..atomic_io import TORN_SUFFIX, append_lines_durable, exclusive_lock, set_aside_tail
from ..candidates import ENSEMBLE_SEED
from ..errors import InputError
from ..paths import resolve_in_project
from .operations import current_actor, utc_now

logger = logging.getLogger(__name__)

CANDIDATE, PRODUCTION, ARCHIVED = "candidate", "production", "archived"
_ID_PART = re.compile(r"^[A-Za-z0-9_.:\-]+$")


class RegistryError(InputError):
    """Bad registry input or a corrupted history; the message says what to do."""


class PromotionRefused(RegistryError):
    """Promotion of an entry whose verdict did not pass, without ``force``."""


#: What the ``test_*`` metrics of an entry are, by the split that decided its verdict
#: (``scored_on["split"]``), as ``(name, metric key prefix)``: under walk-forward the champion's
#: test figures are the procedure's stitched record (each fold's champion trading its own test
#: window), not a test of the registered model itself.
RECORDS = {
    "test": ("test", "test_"),
    "walk_forward": ("procedure stitched", "procedure_stitched_"),
}


@dataclass
class RegistryEntry:
    entry_id: str
    agent: str
    version: str
    seed: int
    metrics: dict[str, Any]
    verdict: dict[str, Any]
    artifact_path: str | None
    registered_at: str
    status: str = CANDIDATE
    history: list[dict[str, Any]] = field(default_factory=list)
    #: the SHA-256 of each file of the artifact (``spec.json``, ``seed_<n>.safetensors``) at
    #: registration; ``None`` in an entry registered before the registry recorded them
    artifact_sha256: dict[str, str] | None = None
    #: What decided the verdict: ``{"split": "test" | "walk_forward", "start", "end", "n_bars",
    #: "what"}``; None for an entry registered before it was recorded.
    scored_on: dict[str, Any] | None = None
    #: The tickers the model trades, in its order (one for a single instrument); ``None`` in an
    #: entry registered before the registry recorded universes: a single instrument.
    universe: list[str] | None = None

    @property
    def n_assets(self) -> int:
        """How many assets the model trades (1 for an entry without a recorded universe)."""
        return len(self.universe) if self.universe else 1

    def universe_label(self, shown: int = 3) -> str:
        """The universe as ``kedro models list`` shows it: the ticker of a single instrument, the
        first ``shown`` tickers and a count for a larger universe."""
        if not self.universe:
            return "1 asset"
        if len(self.universe) <= shown:
            return ",".join(self.universe)
        return f"{len(self.universe)} assets: {','.join(self.universe[:shown])},..."

    def trades(self, tickers: Sequence[str]) -> bool:
        """Whether the model trades exactly ``tickers``: the same tickers in the same order, or
        one instrument for an entry without a recorded universe."""
        if self.universe is None:
            return len(tickers) == 1
        return list(self.universe) == [str(t) for t in tickers]

    @property
    def passed(self) -> bool:
        return bool(self.verdict.get("passed", False))

    @property
    def record(self) -> tuple[str, str]:
        """``(name, metric key prefix)`` of what the recorded ``test_*`` metrics are
        (:data:`RECORDS`); an entry without ``scored_on`` keeps the names it was recorded with."""
        return RECORDS.get((self.scored_on or {}).get("split"), RECORDS["test"])

    def reported_metrics(self) -> dict[str, Any]:
        """The metrics named for what they are: ``test_*`` become ``procedure_stitched_*`` for an
        entry decided on the walk-forward procedure's stitched record."""
        prefix = self.record[1]
        return {
            (prefix + k[len("test_") :] if k.startswith("test_") else k): v for k, v in self.metrics.items()
        }


@dataclass
class RegistryState:
    entries: dict[str, RegistryEntry]
    production: str | None
    production_stack: list[str]  # production ids in order; the last one is current
    gate_decisions: list[dict[str, Any]] = field(default_factory=list)
    tuning_studies: list[dict[str, Any]] = field(default_factory=list)


def make_entry_id(agent: str, version: str, seed: int) -> str:
    """``<agent>-<version>-seed<N>``, or ``<agent>-<version>-ensemble`` for the seed ensemble."""
    return f"{agent}-{version}-{'ensemble' if seed == ENSEMBLE_SEED else f'seed{seed}'}"


class ModelRegistry:
    """Append-only registry at ``path`` (a ``.jsonl`` file; its folder is created on demand)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    # -- reading -------------------------------------------------------------------------
    def events(self) -> list[dict[str, Any]]:
        """Every event of the history, oldest first. A last line without its newline counts when
        it is one complete event that folds; otherwise it is torn: ignored, with a warning (the
        next write moves it aside, see :meth:`_mend_tail`)."""
        events, tail, kept = self._read()
        if tail and not kept:
            logger.warning(
                "registry %s: its last %d byte(s) are not one complete event (a writer killed "
                "mid-append, or a hand edit without its closing brace); they are ignored, and the "
                "next registry write moves them to %s%s<UTC timestamp>.",
                self.path,
                len(tail),
                self.path.name,
                TORN_SUFFIX,
            )
        return events

    def _read(self) -> tuple[list[dict[str, Any]], bytes, bool]:
        """``(events, tail, kept)``: the history's events, the bytes after its last newline
        (``b""`` when the file ends in one) and whether those bytes are one complete event
        that folds (then it is the last of ``events``)."""
        if not self.path.exists():
            return [], b"", False
        *complete, tail = self.path.read_bytes().split(b"\n")
        out = []
        for lineno, line in enumerate(complete, start=1):
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise RegistryError(
                    f"{self.path}: line {lineno} is not valid JSON ({exc}). The history is "
                    "corrupted before its end; restore it from backup (never edit past lines)."
                ) from exc
        last = self._complete_event(out, tail) if tail else None
        if last is not None:
            out.append(last)
        return out, tail, last is not None

    def _complete_event(self, history: list[dict[str, Any]], tail: bytes) -> dict[str, Any] | None:
        """``tail`` as an event when it is one JSON object that folds after ``history``."""
        try:
            event = json.loads(tail)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return None
        if not isinstance(event, dict):
            return None
        state = fold(history, source=str(self.path))
        try:
            apply_event(state, event, len(history) + 1, source=str(self.path))
        except RegistryError:
            return None
        return event

    def state(self) -> RegistryState:
        return fold(self.events(), source=str(self.path))

    def list(self, status: str | None = None) -> list[RegistryEntry]:
        st = self.state()
        entries = list(st.entries.values())
        return [e for e in entries if status is None or e.status == status]

    def production(self) -> RegistryEntry | None:
        st = self.state()
        return st.entries[st.production] if st.production else None

    def newest(self) -> RegistryEntry | None:
        """The most recently registered entry, whatever its verdict or status (``None`` when
        nothing is registered): the champion the shadow paper account trades."""
        entries = list(self.state().entries.values())  # registration order
        return entries[-1] if entries else None

    def gate_decisions(self) -> list[dict[str, Any]]:
        """Every recorded gate decision, oldest first (``[]`` when the file does not exist)."""
        return [dict(d) for d in self.state().gate_decisions]

    def tuning_studies(self) -> list[dict[str, Any]]:
        """Every recorded hyperparameter study (``tuning_study`` events), oldest first."""
        return [dict(d) for d in self.state().tuning_studies]

    # -- writing -------------------------------------------------------------------------
    def _transact(self, build: Callable[[RegistryState], list[dict[str, Any]]]) -> list[dict[str, Any]]:
        """Read the history, compute the new events from its fold and append them, all under
        one exclusive lock (see module docstring). ``build`` raises to refuse, or returns the
        events to append (possibly none). Returns the events as appended (with ``at``)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with exclusive_lock(self.path.with_name(self.path.name + ".lock")):
            history = self._mend_tail()
            new = build(fold(history, source=str(self.path)))
            if not new:
                return []
            at = utc_now()
            new = [{"at": at, **event} for event in new]
            try:
                lines = [json.dumps(event, sort_keys=True, allow_nan=False) for event in new]
            except (TypeError, ValueError) as exc:
                raise RegistryError(
                    f"registry {self.path}: the {new[0]['event']} event holds a value JSON cannot "
                    f"store ({exc}); metrics must be plain numbers (NaN/inf: record null). Nothing "
                    "was written."
                ) from exc
            fold(history + [json.loads(line) for line in lines], source=str(self.path))  # still folds
            append_lines_durable(self.path, lines)  # one write: all the events or (torn) none
        return new

    def _mend_tail(self) -> list[dict[str, Any]]:
        """Make the history end in a newline before an append (under the writer lock): a complete
        last event gets its missing newline; a torn one is moved to ``<name>.torn-<UTC
        timestamp>`` beside the registry, with a warning. No byte is ever deleted. Returns the
        history's events as the mended file holds them (read once)."""
        events, tail, kept = self._read()
        if not tail:
            return events
        if kept:
            with open(self.path, "ab") as fh:
                fh.write(b"\n")
                fh.flush()
                os.fsync(fh.fileno())
            return events
        set_aside_tail(
            self.path,
            self.path.stat().st_size - len(tail),
            "the last line is not one complete event (a writer killed mid-append, or a hand edit)",
        )
        return events

    def register(
        self,
        *,
        agent: str,
        version: str,
        seed: int,
        metrics: Mapping[str, Any],
        verdict: Mapping[str, Any],
        artifact_path: str | None = None,
        artifact_sha256: Mapping[str, str] | None = None,
        scored_on: Mapping[str, Any] | None = None,
        universe: Sequence[str] | None = None,
    ) -> str:
        """Register an evaluated champion as a candidate; returns its entry id. ``universe``: the
        tickers it trades, in its order (:attr:`RegistryEntry.universe`). With an
        ``artifact_path`` (the catalog folder of the versioned artifact), ``artifact_sha256`` is
        its digest as evaluation checked it (``artifact_sha256`` of the artifacts module); the
        files on disk are checked against it before it is recorded. ``scored_on``: what decided
        the verdict (:attr:`RegistryEntry.scored_on`)."""
        event = _register_event(
            agent, version, seed, metrics, verdict, artifact_path, artifact_sha256, scored_on, universe
        )

        def build(st: RegistryState) -> list[dict[str, Any]]:
            if event["entry_id"] in st.entries:
                raise RegistryError(f"registry {self.path}: {event['entry_id']} is already registered.")
            self.check_artifact(_entry_from_event(event))
            return [event]

        self._transact(build)
        return event["entry_id"]

    def promote(
        self,
        entry_id: str,
        *,
        force: bool = False,
        reason: str | None = None,
        actor: str | None = None,
    ) -> dict[str, Any]:
        """Make ``entry_id`` production (archiving the previous one). See module docstring."""
        if force and not (reason and reason.strip()):
            raise RegistryError("promote --force needs a --reason saying why the verdict is overridden.")
        by = actor or current_actor()

        def build(st: RegistryState) -> list[dict[str, Any]]:
            event = _promote_event(st, entry_id, force=force, reason=reason, by=by, path=self.path)
            self.check_artifact(st.entries[entry_id])
            return [event]

        return self._transact(build)[0]

    def rollback(self, *, reason: str | None = None, actor: str | None = None) -> dict[str, Any]:
        """Archive the current production and restore the previous production version."""
        by = actor or current_actor()

        def build(st: RegistryState) -> list[dict[str, Any]]:
            if st.production is None:
                raise RegistryError("registry: nothing is in production; nothing to roll back.")
            if len(st.production_stack) < 2:
                raise RegistryError(
                    f"registry: {st.production} is the only production version so far; there "
                    "is no previous version to roll back to."
                )
            self.check_artifact(st.entries[st.production_stack[-2]])
            return [
                {
                    "event": "rollback",
                    "from": st.production,
                    "to": st.production_stack[-2],
                    "reason": reason,
                    "by": by,
                }
            ]

        return self._transact(build)[0]

    def _same_artifact(self, a: str | None, b: str | None) -> bool:
        """Equal paths, or one recorded absolute and one relative to the project root."""
        if a == b:
            return True
        if a is None or b is None:
            return False
        anchor = self.path.resolve().parent
        return os.path.normpath(resolve_in_project(a, anchor)) == os.path.normpath(
            resolve_in_project(b, anchor)
        )

    def artifact_folder(self, entry: RegistryEntry) -> Path:
        """The folder of ``entry``'s artifact: version ``entry.version`` of the catalog folder
        ``entry.artifact_path``. A relative path is resolved from the project holding the registry
        (the nearest ancestor with a ``pyproject.toml``), not from the working directory, so a
        notebook under ``notebooks/`` loads the same artifact as ``kedro run``."""
        if not entry.artifact_path:
            raise RegistryError(f"registry {self.path}: {entry.entry_id} has no artifact path.")
        anchor = self.path.resolve().parent
        return versioned_artifact_path(resolve_in_project(entry.artifact_path, anchor), entry.version)

    def check_artifact(self, entry: RegistryEntry) -> None:
        """Check ``entry``'s artifact files against the SHA-256 recorded at its registration
        (nothing to check for an entry without an artifact path). :class:`ArtifactError` naming
        the file, both hashes and the fix; an entry registered without hashes is refused too."""
        if not entry.artifact_path:
            return
        verify_artifact(
            self.artifact_folder(entry),
            entry.artifact_sha256,
            recorded_in=self.recorded_in(entry),
            fix=self.artifact_fix(entry),
        )

    def recorded_in(self, entry: RegistryEntry) -> str:
        """Where ``entry``'s artifact digest is recorded, as errors name it."""
        return f"the registry '{self.path}' (entry {entry.entry_id})"

    def artifact_fix(self, entry: RegistryEntry) -> str:
        """What to do when ``entry``'s artifact does not match its recorded digest."""
        if not entry.artifact_sha256:
            return (
                f"{entry.entry_id} was registered before the registry recorded artifact hashes; "
                "retrain and re-run evaluation and deployment to register a new version "
                "(kedro run), then promote that one."
            )
        return (
            f"Restore the artifact of {entry.entry_id} from backup, or retrain and register a new "
            "version (kedro run); never edit a registered artifact."
        )

    def record_gate_decision(self, decision: Mapping[str, Any]) -> dict[str, Any]:
        """Append an evaluation gate's decision (durably, under the lock); returns the event.

        Required: ``data_fingerprint`` (str), ``window`` (``{"start", "end"}`` ISO dates),
        ``config_sha256`` (str), ``passed`` (bool). Any other JSON-able key is kept (e.g.
        ``sharpe``, ``decided_on``, ``n_bars``). A decision changes no registry entry.
        """
        event = validate_gate_decision(decision, source=f"registry {self.path}")
        return self._transact(lambda _st: [event])[0]

    def record_tuning_study(self, study: Mapping[str, Any]) -> dict[str, Any]:
        """Append a hyperparameter study's looks at its validation windows (a ``tuning_study``
        event: ``study_name``, ``trials_counted``, ``windows``, ``config_sha256``); the
        walk-forward judge counts them for every stitched window they overlap."""
        event = validate_tuning_study(study, source=f"registry {self.path}")
        return self._transact(lambda _st: [event])[0]

    def apply_registration(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """Register a champion once and, if asked, promote it when its verdict passed.

        Idempotent: an entry id (agent, artifact version, seed) already in the registry is not
        registered again and is never re-promoted, so re-running the same evaluation changes
        nothing and a rollback sticks. Registering the same id with different metrics or verdict
        is refused (one artifact version cannot have two evaluations). Never forces. The check,
        the registration and the promotion happen under one lock (one append).
        """
        reg = request.get("register")
        if reg is None:
            return {
                "action": "none",
                "reason": request.get("reason", "no champion"),
                "production": self.state().production,
            }
        event = _register_event(
            reg["agent"],
            reg["version"],
            reg["seed"],
            reg["metrics"],
            reg["verdict"],
            reg.get("artifact_path"),
            reg.get("artifact_sha256"),
            reg.get("scored_on"),
            reg.get("universe"),
        )
        entry_id = event["entry_id"]
        auto = bool(request.get("auto_promote"))
        outcome: dict[str, Any] = {}

        def build(st: RegistryState) -> list[dict[str, Any]]:
            existing = st.entries.get(entry_id)
            if existing is not None:
                same = (
                    existing.metrics == event["metrics"]
                    and existing.verdict == event["verdict"]
                    and self._same_artifact(existing.artifact_path, event["artifact_path"])
                    and existing.artifact_sha256 == event["artifact_sha256"]
                    and existing.universe == event.get("universe")
                )
                if not same:
                    raise RegistryError(
                        f"registry {self.path}: {entry_id} is already registered with other metrics, "
                        "verdict, artifact path, artifact SHA-256 or universe. An artifact version is "
                        "evaluated and registered once; retrain to get a new version, or inspect "
                        "`kedro models list --json`."
                    )
                outcome.update(action="already_registered", entry_id=entry_id, production=st.production)
                return []
            self.check_artifact(_entry_from_event(event))
            events = [event]
            outcome.update(action="registered", entry_id=entry_id, promoted=False, production=st.production)
            if auto and event["verdict"]["passed"]:
                after = copy.deepcopy(st)  # the state after this registration, for the promote check
                apply_event(after, event, source=str(self.path))
                events.append(
                    _promote_event(
                        after,
                        entry_id,
                        force=False,
                        by="deployment pipeline",
                        reason="deployment.auto_promote: evaluation verdict passed",
                        path=self.path,
                    )
                )
                outcome.update(promoted=True, production=entry_id)
            elif auto:
                outcome["not_promoted_because"] = "evaluation verdict did not pass"
            return events

        self._transact(build)
        return outcome


def _register_event(
    agent: Any,
    version: Any,
    seed: Any,
    metrics: Any,
    verdict: Any,
    artifact_path: Any,
    artifact_sha256: Any = None,
    scored_on: Any = None,
    universe: Any = None,
) -> dict[str, Any]:
    for name, value in (("agent", agent), ("version", version)):
        if not isinstance(value, str) or not _ID_PART.match(value):
            raise RegistryError(
                f"registry: {name}={value!r} must be a non-empty string of letters, digits, "
                "'_', '.', ':' or '-' (e.g. a Kedro version timestamp)."
            )
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise RegistryError(f"registry: seed={seed!r} must be an integer.")
    if not isinstance(verdict, Mapping) or not isinstance(verdict.get("passed"), bool):
        raise RegistryError(
            "registry: verdict must be a dict with a boolean 'passed' (the evaluation "
            f"stage's decision), got {verdict!r}."
        )
    if artifact_path is not None or artifact_sha256 is not None:
        _check_digest(artifact_sha256, artifact_path)
    if universe is not None:
        universe = _check_universe(universe)
    return {
        "event": "register",
        "entry_id": make_entry_id(agent, version, seed),
        "agent": agent,
        "version": version,
        "seed": seed,
        "metrics": dict(metrics or {}),
        "verdict": dict(verdict),
        "artifact_path": artifact_path,
        "artifact_sha256": None if artifact_sha256 is None else dict(artifact_sha256),
        **({"scored_on": dict(scored_on)} if scored_on else {}),
        **({"universe": universe} if universe is not None else {}),
    }


def _check_universe(universe: Any) -> list[str]:
    """A registration's universe: a non-empty list of distinct, non-empty ticker strings."""
    if isinstance(universe, (str, bytes)) or not isinstance(universe, Sequence):
        raise RegistryError(
            f"registry: universe={universe!r} must be a list of tickers (one for a single "
            "instrument), e.g. ['SPY'] or ['AAPL', 'MSFT']."
        )
    tickers = list(universe)
    bad = [t for t in tickers if not isinstance(t, str) or not t.strip()]
    if not tickers or bad:
        raise RegistryError(
            f"registry: universe={tickers!r} must be a non-empty list of ticker strings; bad: {bad!r}."
        )
    repeated = sorted({t for t in tickers if tickers.count(t) > 1})
    if repeated:
        raise RegistryError(f"registry: universe lists {repeated} more than once; list each ticker once.")
    return tickers


_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def _check_digest(digest: Any, artifact_path: Any) -> None:
    """A registration's artifact digest: ``{file name: SHA-256 hex}`` with ``spec.json`` and at
    least one weight file, given with the artifact path it belongs to."""
    how = (
        "register an artifact with artifact_sha256 = {file name: SHA-256 hex} of every file of its "
        "folder (spec.json and each seed_<n>.safetensors), as evaluation records it in the "
        "champion's policy_sha256"
    )
    if artifact_path is None:
        raise RegistryError(f"registry: artifact_sha256 was given without an artifact_path; {how}.")
    if (
        not isinstance(digest, Mapping)
        or SPEC_FILE not in digest
        or len(digest) < 2
        or not all(isinstance(k, str) and isinstance(v, str) and _SHA256.match(v) for k, v in digest.items())
    ):
        raise RegistryError(f"registry: artifact {artifact_path} has artifact_sha256={digest!r}; {how}.")


def _promote_event(
    st: RegistryState, entry_id: str, *, force: bool, reason: str | None, by: str, path: Any
) -> dict[str, Any]:
    """The promote event for ``entry_id`` given the current state, or the reason it is refused."""
    entry = _get(st, entry_id, path)
    if entry.status == PRODUCTION:
        raise RegistryError(f"registry: {entry_id} is already in production.")
    if not entry.passed and not force:
        raise PromotionRefused(
            f"registry: {entry_id} did not pass evaluation (verdict: {entry.verdict}). "
            "Promote a passing entry, or use --force --reason '...' to override "
            "(the override is recorded)."
        )
    return {
        "event": "promote",
        "entry_id": entry_id,
        "forced": bool(force),
        "reason": reason,
        "by": by,
        "previous": st.production,
    }


GATE_DECISION_REQUIRED = ("data_fingerprint", "window", "config_sha256", "passed")


def _iso_date(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        (date.fromisoformat if len(value) == 10 else datetime.fromisoformat)(value)
    except ValueError:
        return False
    return True


def _plain(value: Any) -> Any:
    """numpy scalars (e.g. a ``numpy.bool_`` verdict, a ``numpy.float64`` Sharpe) as Python values."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if type(value).__module__ == "numpy" and callable(getattr(value, "item", None)):
        return value.item()
    return value


def validate_gate_decision(decision: Any, source: str = "registry") -> dict[str, Any]:
    """A gate decision as it is recorded (``{"event": "gate_decision", ...}``), or a
    :class:`RegistryError` naming the missing or bad key."""
    how = (
        "record_gate_decision needs {'data_fingerprint': str, 'window': {'start': ISO date, "
        "'end': ISO date}, 'config_sha256': str, 'passed': bool} plus any JSON-able extras"
    )
    if not isinstance(decision, Mapping):
        raise RegistryError(
            f"{source}: a gate decision must be a dict, got {type(decision).__name__}; {how}."
        )
    decision = _plain(decision)
    missing = [k for k in GATE_DECISION_REQUIRED if k not in decision]
    if missing:
        raise RegistryError(f"{source}: gate decision lacks {missing}; {how}.")
    for key in ("data_fingerprint", "config_sha256"):
        if not isinstance(decision[key], str) or not decision[key].strip():
            raise RegistryError(
                f"{source}: gate decision {key}={decision[key]!r} must be a non-empty string; {how}."
            )
    if not isinstance(decision["passed"], bool):
        raise RegistryError(
            f"{source}: gate decision passed={decision['passed']!r} must be true or false; {how}."
        )
    _check_window(decision["window"], source, how)
    reserved = sorted(set(decision) & {"event", "at"})
    if reserved:
        raise RegistryError(
            f"{source}: gate decision key(s) {reserved} are reserved (the registry "
            "writes them); name the value differently, e.g. 'decided_on'."
        )
    for key, value in decision.items():
        if not isinstance(key, str):
            raise RegistryError(f"{source}: gate decision key {key!r} must be a string.")
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise RegistryError(
                f"{source}: gate decision {key}={value!r} is not JSON-able ({exc}); "
                "record plain numbers, strings, lists or dicts (NaN/inf are refused: "
                "use null)."
            ) from exc
    return {"event": "gate_decision", **json.loads(json.dumps(dict(decision), allow_nan=False))}


TUNING_STUDY_REQUIRED = ("study_name", "trials_counted", "windows", "config_sha256")


def validate_tuning_study(study: Any, source: str = "registry") -> dict[str, Any]:
    """A study as it is recorded (``{"event": "tuning_study", ...}``), or a :class:`RegistryError`
    naming the missing or bad key."""
    how = (
        "record_tuning_study needs {'study_name': str, 'trials_counted': int >= 0, 'windows': "
        "[{'start': ISO date, 'end': ISO date}, ...], 'config_sha256': str} plus any JSON-able extras"
    )
    if not isinstance(study, Mapping):
        raise RegistryError(f"{source}: a tuning study must be a dict, got {type(study).__name__}; {how}.")
    study = _plain(study)
    missing = [k for k in TUNING_STUDY_REQUIRED if k not in study]
    if missing:
        raise RegistryError(f"{source}: tuning study lacks {missing}; {how}.")
    n = study["trials_counted"]
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise RegistryError(f"{source}: tuning study trials_counted={n!r} must be an int >= 0; {how}.")
    if not isinstance(study["windows"], list) or not study["windows"]:
        raise RegistryError(
            f"{source}: tuning study windows={study['windows']!r} must be a non-empty list; {how}."
        )
    for window in study["windows"]:
        _check_window(window, source, how)
    if sorted(set(study) & {"event", "at"}):
        raise RegistryError(
            f"{source}: tuning study keys 'event' and 'at' are reserved (the registry writes them)."
        )
    try:
        return {"event": "tuning_study", **json.loads(json.dumps(dict(study), allow_nan=False))}
    except (TypeError, ValueError) as exc:
        raise RegistryError(f"{source}: tuning study is not JSON-able ({exc}); {how}.") from exc


def _check_window(window: Any, source: str, how: str) -> None:
    """A gate decision's ``window``: exactly ISO ``start`` <= ``end``."""
    if not isinstance(window, Mapping) or set(window) != {"start", "end"}:
        raise RegistryError(
            f"{source}: gate decision window={window!r} must be exactly {{'start': ..., 'end': ...}}; {how}."
        )
    for key in ("start", "end"):
        if not _iso_date(window[key]):
            raise RegistryError(
                f"{source}: gate decision window.{key}={window[key]!r} is not an ISO "
                "date string such as '2017-01-03' (or '2017-01-03T00:00:00')."
            )
    if window["start"][:10] > window["end"][:10]:
        raise RegistryError(
            f"{source}: gate decision window starts ({window['start']}) after it ends ({window['end']})."
        )


def _get(st: RegistryState, entry_id: str, path: Any) -> RegistryEntry:
    if entry_id not in st.entries:
        known = ", ".join(sorted(st.entries)) or "none"
        raise RegistryError(f"registry {path}: unknown entry {entry_id!r}; known entries: {known}.")
    return st.entries[entry_id]


_EVENT_KEYS = {
    "register": ("entry_id", "agent", "version", "seed"),
    "promote": ("entry_id",),
    "rollback": ("from",),
    "gate_decision": GATE_DECISION_REQUIRED,
    "tuning_study": TUNING_STUDY_REQUIRED,
}


def apply_event(st: RegistryState, ev: Any, n: int = 0, source: str = "registry") -> None:
    """Apply one history event to ``st`` in place; :class:`RegistryError` when it does not fit."""

    def bad(why: str) -> RegistryError:
        return RegistryError(
            f"{source}: event {n} {why}. The history is inconsistent; restore the "
            "file from backup (past lines are never edited by this project)."
        )

    if not isinstance(ev, dict):
        raise bad(f"is a JSON {type(ev).__name__}, not an object")
    kind = ev.get("event")
    if kind not in _EVENT_KEYS:
        raise bad(f"has unknown kind {kind!r} (known: {sorted(_EVENT_KEYS)})")
    missing = [k for k in _EVENT_KEYS[kind] if k not in ev]
    if missing:
        raise bad(f"({kind}) lacks {missing}")
    if kind == "register":
        if ev["entry_id"] in st.entries:
            raise bad(f"(register) registers {ev['entry_id']} a second time")
        st.entries[ev["entry_id"]] = _entry_from_event(ev)
    elif kind == "promote":
        if ev["entry_id"] not in st.entries:
            raise bad(f"(promote) names the unregistered entry {ev['entry_id']!r}")
        if "previous" in ev and ev["previous"] != st.production:
            raise bad(
                f"(promote {ev['entry_id']}) records previous={ev['previous']!r} but "
                f"{st.production!r} was in production"
            )
        entry = st.entries[ev["entry_id"]]
        if st.production:
            st.entries[st.production].status = ARCHIVED
            st.entries[st.production].history.append(ev)
        entry.status = PRODUCTION
        entry.history.append(ev)
        st.production = entry.entry_id
        st.production_stack.append(entry.entry_id)
    elif kind == "rollback":
        if (
            len(st.production_stack) < 2
            or ev["from"] != st.production
            or ("to" in ev and ev["to"] != st.production_stack[-2])
        ):
            raise bad(
                f"(rollback {ev.get('from')!r} -> {ev.get('to')!r}) does not match the "
                f"production history {st.production_stack}"
            )
        current = st.production_stack.pop()
        st.entries[current].status = ARCHIVED
        st.entries[current].history.append(ev)
        st.production = st.production_stack[-1]
        st.entries[st.production].status = PRODUCTION
        st.entries[st.production].history.append(ev)
    else:  # gate_decision / tuning_study: looks at windows, counted by the gates; change no entry
        (st.tuning_studies if kind == "tuning_study" else st.gate_decisions).append(ev)


def fold(events: list[dict[str, Any]], source: str = "registry") -> RegistryState:
    """Current state from the event history (pure; the history itself is never modified)."""
    st = RegistryState(entries={}, production=None, production_stack=[])
    for n, ev in enumerate(events, start=1):
        apply_event(st, ev, n, source)
    return st


def _entry_from_event(ev: Mapping[str, Any]) -> RegistryEntry:
    return RegistryEntry(
        entry_id=ev["entry_id"],
        agent=ev["agent"],
        version=ev["version"],
        seed=ev["seed"],
        metrics=ev.get("metrics", {}),
        verdict=ev.get("verdict", {}),
        artifact_path=ev.get("artifact_path"),
        registered_at=ev.get("at", ""),
        history=[ev],
        artifact_sha256=ev.get("artifact_sha256"),
        scored_on=ev.get("scored_on"),
        universe=ev.get("universe"),
    )


def _scored_on(champion: Mapping[str, Any], verdict: Mapping[str, Any]) -> dict[str, Any] | None:
    """What decided the champion's verdict, and so what its ``test_metrics`` are: the verdict's
    ``decided_on`` (split, window, bars), else the champion's own ``decided_on`` split; None when
    neither says."""
    decided = verdict.get("decided_on")
    if isinstance(decided, Mapping) and decided.get("split"):
        return {
            k: decided[k] for k in ("split", "start", "end", "n_bars", "what") if decided.get(k) is not None
        }
    split = champion.get("decided_on")
    return {"split": split} if isinstance(split, str) else None


def registration_request(
    champion: Mapping[str, Any] | None,
    verdict: Mapping[str, Any] | None,
    auto_promote: bool,
    universe: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Turn the evaluation stage's ``champion`` and ``evaluation_verdict`` into a request;
    ``universe``: the tickers the champion trades (recorded on its entry).

    Pure: validates the two JSON documents (docs/contracts.md) and returns what
    :meth:`ModelRegistry.apply_registration` should do. No champion (nothing qualified)
    gives ``{"register": None, ...}``.
    """
    if not isinstance(verdict, Mapping) or not isinstance(verdict.get("passed"), bool):
        raise RegistryError(
            "evaluation_verdict must be a JSON object with a boolean 'passed' "
            "(data/08_reporting/evaluation_verdict.json); re-run the evaluation pipeline."
        )
    if champion is None or not champion:
        return {"register": None, "auto_promote": False, "reason": "evaluation produced no champion"}
    missing = [
        k
        for k in ("agent", "seed", "policy_version", "policy_filepath", "policy_sha256")
        if champion.get(k) in (None, "", {})
    ]
    if missing:
        raise RegistryError(
            f"champion (data/07_model_output/champion.json) lacks {missing}; re-run the "
            "evaluation pipeline (it records the evaluated artifact's version, path and SHA-256)."
        )
    metrics: dict[str, Any] = {}
    for split in ("validation", "test"):
        for k, v in sorted((champion.get(f"{split}_metrics") or {}).items()):
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                metrics[f"{split}_{k}"] = v
    passed = bool(verdict["passed"]) and bool(champion.get("verdict_passed", verdict["passed"]))
    return {
        "register": {
            "agent": str(champion["agent"]),
            "version": str(champion["policy_version"]),
            "seed": int(champion["seed"]),
            "metrics": metrics,
            "verdict": {"passed": passed, "rules": dict(verdict.get("rules") or {})},
            "artifact_path": str(champion["policy_filepath"]),
            "artifact_sha256": champion["policy_sha256"],
            "scored_on": _scored_on(champion, verdict),
            **({"universe": [str(t) for t in universe]} if universe is not None else {}),
        },
        "auto_promote": bool(auto_promote),
    }
