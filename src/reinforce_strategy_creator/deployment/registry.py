"""File-backed model registry: an append-only JSON-lines history folded into current state.

What: every evaluated champion is *registered* as a candidate with its artifact reference
(agent, version timestamp string, seed, optional artifact path), metrics and the evaluation
verdict. Events then move entries through ``candidate -> production -> archived``:

* ``register``  adds a candidate;
* ``promote``   makes a candidate (or archived entry) production and archives the previous
                production; refused unless ``verdict.passed`` is true, and ``force=True`` with a
                reason overrides that, recording who, when and why;
* ``rollback``  archives the current production and restores the one before it.

Why this design: the history file is the only source of truth and is never rewritten; the
current state is ``fold(events)``, so an audit can always tell who promoted what and why.
Each event is appended as one line with ``fsync`` under an exclusive ``flock``. A process
killed mid-append leaves at most one torn final line without its newline: readers ignore
it (the event was never acknowledged) and the next writer truncates it before appending.
A malformed line *before* the end is real corruption and raises :class:`RegistryError`.
Hand-written because the alternatives (MLflow, a database server) are far heavier than a
single auditable text file and the project runs without external services.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..atomic_io import append_lines_durable, exclusive_lock

CANDIDATE, PRODUCTION, ARCHIVED = "candidate", "production", "archived"
_ID_PART = re.compile(r"^[A-Za-z0-9_.:\-]+$")


class RegistryError(ValueError):
    """Bad registry input or a corrupted history; the message says what to do."""


class PromotionRefused(RegistryError):
    """Promotion of an entry whose verdict did not pass, without ``force``."""


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

    @property
    def passed(self) -> bool:
        return bool(self.verdict.get("passed", False))


@dataclass
class RegistryState:
    entries: dict[str, RegistryEntry]
    production: str | None
    production_stack: list[str]  # production ids in order; the last one is current

    def by_status(self, status: str) -> list[RegistryEntry]:
        return [e for e in self.entries.values() if e.status == status]


def make_entry_id(agent: str, version: str, seed: int) -> str:
    return f"{agent}-{version}-seed{seed}"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class ModelRegistry:
    """Append-only registry at ``path`` (a ``.jsonl`` file; its folder is created on demand)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    # -- reading -------------------------------------------------------------------------
    def events(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        raw = self.path.read_bytes()
        lines = raw.split(b"\n")
        complete, tail = lines[:-1], lines[-1]  # tail is b"" when the file ends in a newline
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
        del tail  # a torn last line (killed mid-append) was never acknowledged: ignored
        return out

    def state(self) -> RegistryState:
        return fold(self.events(), source=str(self.path))

    def list(self, status: str | None = None) -> list[RegistryEntry]:
        st = self.state()
        entries = list(st.entries.values())
        return [e for e in entries if status is None or e.status == status]

    def production(self) -> RegistryEntry | None:
        st = self.state()
        return st.entries[st.production] if st.production else None

    # -- writing -------------------------------------------------------------------------
    def _append(self, event: dict[str, Any], check) -> dict[str, Any]:
        """Validate against the current fold *under the lock*, then append durably."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with exclusive_lock(self.path.with_name(self.path.name + ".lock")):
            if self.path.exists():
                data = self.path.read_bytes()
                if data and not data.endswith(b"\n"):  # torn line from a killed writer
                    with open(self.path, "r+b") as fh:
                        fh.truncate(data.rfind(b"\n") + 1)
                        fh.flush()
                        os.fsync(fh.fileno())
            st = self.state()
            check(st)
            event = {"at": _now(), **event}
            append_lines_durable(self.path, [json.dumps(event, sort_keys=True, allow_nan=False)])
        return event

    def register(
        self,
        *,
        agent: str,
        version: str,
        seed: int,
        metrics: Mapping[str, Any],
        verdict: Mapping[str, Any],
        artifact_path: str | None = None,
    ) -> str:
        """Register an evaluated champion as a candidate; returns its entry id."""
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
        entry_id = make_entry_id(agent, version, seed)

        def check(st: RegistryState) -> None:
            if entry_id in st.entries:
                raise RegistryError(f"registry: {entry_id} is already registered.")

        self._append(
            {"event": "register", "entry_id": entry_id, "agent": agent, "version": version,
             "seed": seed, "metrics": dict(metrics), "verdict": dict(verdict),
             "artifact_path": artifact_path},
            check,
        )
        return entry_id

    def promote(
        self, entry_id: str, *, force: bool = False, reason: str | None = None,
        actor: str | None = None,
    ) -> dict[str, Any]:
        """Make ``entry_id`` production (archiving the previous one). See module docstring."""
        if force and not (reason and reason.strip()):
            raise RegistryError("promote --force needs a --reason saying why the verdict is overridden.")

        def check(st: RegistryState) -> None:
            entry = _get(st, entry_id, self.path)
            if entry.status == PRODUCTION:
                raise RegistryError(f"registry: {entry_id} is already in production.")
            if not entry.passed and not force:
                raise PromotionRefused(
                    f"registry: {entry_id} did not pass evaluation (verdict: {entry.verdict}). "
                    "Promote a passing entry, or use --force --reason '...' to override "
                    "(the override is recorded)."
                )

        prev = self.state().production
        return self._append(
            {"event": "promote", "entry_id": entry_id, "forced": bool(force), "reason": reason, "by": actor or _actor(),
             "previous": prev},
            check,
        )

    def rollback(self, *, reason: str | None = None, actor: str | None = None) -> dict[str, Any]:
        """Archive the current production and restore the previous production version."""
        def check(st: RegistryState) -> None:
            if st.production is None:
                raise RegistryError("registry: nothing is in production; nothing to roll back.")
            if len(st.production_stack) < 2:
                raise RegistryError(
                    f"registry: {st.production} is the only production version so far; there "
                    "is no previous version to roll back to."
                )

        st = self.state()
        previous = st.production_stack[-2] if len(st.production_stack) >= 2 else None
        return self._append(
            {"event": "rollback", "from": st.production, "to": previous, "reason": reason,
             "by": actor or _actor()},
            check,
        )

    def apply_registration(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """Register a champion once and, if asked, promote it when its verdict passed.

        Idempotent: an entry id (agent, artifact version, seed) already in the registry is not
        registered again and is never re-promoted, so re-running the same evaluation changes
        nothing and a rollback sticks. Registering the same id with different metrics or verdict
        is refused (one artifact version cannot have two evaluations). Never forces.
        """
        reg = request.get("register")
        if reg is None:
            return {"action": "none", "reason": request.get("reason", "no champion"),
                    "production": self.state().production}
        entry_id = make_entry_id(reg["agent"], reg["version"], reg["seed"])
        existing = self.state().entries.get(entry_id)
        if existing is not None:
            same = (existing.metrics == reg["metrics"] and existing.verdict == reg["verdict"]
                    and existing.artifact_path == reg["artifact_path"])
            if not same:
                raise RegistryError(
                    f"registry {self.path}: {entry_id} is already registered with other metrics, "
                    "verdict or artifact path. An artifact version is evaluated once; retrain to get "
                    "a new version, or inspect `kedro models list --json`.")
            return {"action": "already_registered", "entry_id": entry_id,
                    "production": self.state().production}
        self.register(**reg)
        outcome = {"action": "registered", "entry_id": entry_id, "promoted": False}
        if request.get("auto_promote") and reg["verdict"]["passed"]:
            self.promote(entry_id, reason="deployment.auto_promote: evaluation verdict passed",
                         actor="deployment pipeline")
            outcome["promoted"] = True
        elif request.get("auto_promote"):
            outcome["not_promoted_because"] = "evaluation verdict did not pass"
        outcome["production"] = self.state().production
        return outcome


def _actor() -> str:
    from .broker import current_actor

    return current_actor()


def _get(st: RegistryState, entry_id: str, path: Any) -> RegistryEntry:
    if entry_id not in st.entries:
        known = ", ".join(sorted(st.entries)) or "none"
        raise RegistryError(f"registry {path}: unknown entry {entry_id!r}; known entries: {known}.")
    return st.entries[entry_id]


def fold(events: list[dict[str, Any]], source: str = "registry") -> RegistryState:
    """Current state from the event history (pure; the history itself is never modified)."""
    st = RegistryState(entries={}, production=None, production_stack=[])
    for n, ev in enumerate(events, start=1):
        kind = ev.get("event")
        if kind == "register":
            st.entries[ev["entry_id"]] = RegistryEntry(
                entry_id=ev["entry_id"], agent=ev["agent"], version=ev["version"],
                seed=ev["seed"], metrics=ev.get("metrics", {}), verdict=ev.get("verdict", {}),
                artifact_path=ev.get("artifact_path"), registered_at=ev.get("at", ""),
                history=[ev],
            )
        elif kind == "promote":
            entry = _get(st, ev["entry_id"], source)
            if st.production:
                st.entries[st.production].status = ARCHIVED
                st.entries[st.production].history.append(ev)
            entry.status = PRODUCTION
            entry.history.append(ev)
            st.production = entry.entry_id
            st.production_stack.append(entry.entry_id)
        elif kind == "rollback":
            if len(st.production_stack) < 2 or ev.get("from") != st.production:
                raise RegistryError(f"{source}: event {n} (rollback) does not match the history; "
                                    "restore the file from backup.")
            current = st.production_stack.pop()
            st.entries[current].status = ARCHIVED
            st.entries[current].history.append(ev)
            st.production = st.production_stack[-1]
            st.entries[st.production].status = PRODUCTION
            st.entries[st.production].history.append(ev)
        else:
            raise RegistryError(f"{source}: event {n} has unknown kind {kind!r}.")
    return st


def registration_request(
    champion: Mapping[str, Any] | None, verdict: Mapping[str, Any] | None, auto_promote: bool
) -> dict[str, Any]:
    """Turn the evaluation stage's ``champion`` and ``evaluation_verdict`` into a request.

    Pure: validates the two JSON documents (docs/contracts.md) and returns what
    :meth:`ModelRegistry.apply_registration` should do. No champion (nothing qualified)
    gives ``{"register": None, ...}``.
    """
    if not isinstance(verdict, Mapping) or not isinstance(verdict.get("passed"), bool):
        raise RegistryError(
            "evaluation_verdict must be a JSON object with a boolean 'passed' "
            "(data/08_reporting/evaluation_verdict.json); re-run the evaluation pipeline.")
    if champion is None or not champion:
        return {"register": None, "auto_promote": False,
                "reason": "evaluation produced no champion"}
    missing = [k for k in ("agent", "seed", "policy_version", "policy_filepath")
               if champion.get(k) in (None, "")]
    if missing:
        raise RegistryError(
            f"champion (data/07_model_output/champion.json) lacks {missing}; re-run the "
            "evaluation pipeline (it records the evaluated artifact version and path).")
    metrics: dict[str, Any] = {}
    for split in ("validation", "test"):
        for k, v in sorted((champion.get(f"{split}_metrics") or {}).items()):
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                metrics[f"{split}_{k}"] = v
    passed = bool(verdict["passed"]) and bool(champion.get("verdict_passed", verdict["passed"]))
    return {
        "register": {
            "agent": str(champion["agent"]), "version": str(champion["policy_version"]),
            "seed": int(champion["seed"]), "metrics": metrics,
            "verdict": {"passed": passed, "rules": dict(verdict.get("rules") or {})},
            "artifact_path": str(champion["policy_filepath"]),
        },
        "auto_promote": bool(auto_promote),
    }
