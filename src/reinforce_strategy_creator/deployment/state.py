"""Durable paper-account state: one folder per account, committed bar by bar, crash-safe.

What: :class:`AccountStore` reads and commits an account folder (``state.json``, the
``orders`` / ``trades`` / ``equity`` / ``events`` logs and a ``.lock``); :class:`StagedAccount` is
its in-memory stand-in, which a Kedro node trades into and the dataset publishes in one commit;
:class:`AccountState` is the committed state of an account over N >= 1 tickers (one type for
both front ends), in its share granularity; a schema-1 file is read into it.

Why: ``state.json`` is the single commit point (the bar's log lines are appended with fsync
first, then the state, which records each log's committed length, is replaced atomically), so
a process killed at any moment leaves every bar done exactly once. Log bytes past the committed
length (a run killed before its commit) are ignored by readers and moved to
``<log>.jsonl.torn-<UTC timestamp>`` by the next writer, with a warning; none is deleted.
Hand-written because no maintained library offers a small, dependency-free, append-only,
crash-consistent journal. Files, protocol and granularity: docs/paper_trading.md ("State
files", "Crash safety", "Share granularity").
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..atomic_io import (
    append_lines_durable,
    atomic_write_json,
    exclusive_lock,
    fsync_dir,
    remove_stale_temps,
    set_aside_tail,
)
from ..env.execution import GRANULARITIES
from ..errors import InputError

SCHEMA_VERSION = 2
LOG_NAMES = ("orders", "trades", "equity", "events")
STATE_FILE = "state.json"
#: the ticker of an account made by the instrument front end without one (and of a schema-1
#: single-instrument account, which recorded none)
INSTRUMENT = "instrument"


class AccountStateError(InputError):
    """The account folder is missing, inconsistent or used wrongly; the message says what to do."""


#: the fields that hold one value per asset, in ``tickers`` order
PER_ASSET = ("shares", "last_close", "pending_weights", "held_weights", "entry_price", "bars_held")


@dataclass(frozen=True)
class AccountState:
    """Committed state of one paper account over N >= 1 tickers (one instrument: N = 1).

    ``whole`` accounts: money in integer cents (``cash_cents``, ``equity_cents``), ``shares`` whole
    numbers, the ``exact_*`` fields null. ``fractional`` accounts: ``exact_initial_cash``,
    ``exact_cash`` and ``exact_equity`` (float64 dollars) are the ledger, the ``*_cents`` fields
    their rounding. The per-asset fields (:data:`PER_ASSET`) are in ``tickers`` order: ``shares``;
    ``last_close`` (null for a ticker not listed yet); ``pending_weights``, the order decided at
    ``pending_decided_at`` (target fractions of equity) and ``pending_hold`` (keep the shares
    instead). What the front end's rule records (:mod:`.account`): ``config``, a target-weights
    account's :class:`~..env.config.EnvConfig` fields (null for a target-position
    account); ``held_weights`` (the targets of the last order traded), ``entry_price`` and
    ``bars_held`` (the holdings' average entry price and bars held, the observation's inputs), a
    target-position account's only (null for a target-weights account).
    """

    tickers: tuple[str, ...]
    granularity: str
    initial_capital_cents: int
    cash_cents: int
    equity_cents: int
    peak_equity_cents: int
    shares: tuple[float, ...]
    config: dict[str, Any] | None = None
    exact_initial_cash: float | None = None
    exact_cash: float | None = None
    exact_equity: float | None = None
    last_bar: str | None = None
    last_close: tuple[float | None, ...] | None = None
    day: str | None = None
    day_start_equity_cents: int = 0
    day_loss_stop: bool = False
    halted: bool = False
    halt_reason: str | None = None
    pending_weights: tuple[float, ...] | None = None
    pending_hold: bool = False
    pending_decided_at: str | None = None
    held_weights: tuple[float, ...] | None = None
    entry_price: tuple[float, ...] | None = None
    bars_held: tuple[float, ...] | None = None
    active_model_id: str | None = None
    bars_processed: int = 0
    session_first_bar: str | None = None  # first bar of the newest run that processed bars
    generation: int = 0
    log_sizes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(LOG_NAMES, 0))
    schema_version: int = SCHEMA_VERSION

    @property
    def fractional(self) -> bool:
        return self.granularity == "fractional"

    @property
    def cash(self) -> float:
        return self.exact_cash if self.fractional else self.cash_cents / 100.0

    @property
    def equity(self) -> float:
        return self.exact_equity if self.fractional else self.equity_cents / 100.0

    @property
    def drawdown(self) -> float:
        """Equity relative to its running peak, minus one (0 at a new high, negative below)."""
        if self.peak_equity_cents <= 0:
            return 0.0
        return self.equity_cents / self.peak_equity_cents - 1.0

    def holdings(self) -> dict[str, float]:
        """Shares per ticker."""
        return dict(zip(self.tickers, self.shares, strict=True))

    def weights(self) -> tuple[float, ...]:
        """Each holding's value at its last close as a fraction of equity (0 before any mark or
        at equity <= 0), in ``tickers`` order."""
        if self.last_close is None or self.equity_cents <= 0:
            return (0.0,) * len(self.tickers)
        eq = self.equity
        return tuple(x * (c or 0.0) / eq for x, c in zip(self.shares, self.last_close, strict=True))

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for k in ("tickers", *PER_ASSET):
            d[k] = None if d[k] is None else list(d[k])
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "state.json") -> AccountState:
        """The state recorded in ``data`` (a ``state.json``); a schema-1 file (an instrument or a
        universe account written before the one state type) is read into it (:func:`from_v1`)."""
        if data.get("schema_version") == 1:
            data = from_v1(data, source)
        if data.get("schema_version") != SCHEMA_VERSION:
            raise AccountStateError(
                f"{source}: schema_version {data.get('schema_version')!r} is not one this version "
                f"reads (1 or {SCHEMA_VERSION}); restore the file from backup or start a new account folder."
            )
        names = {f.name for f in dataclasses.fields(cls)}
        required = ("tickers", "granularity", "initial_capital_cents", "cash_cents", "shares", "generation")
        missing = [n for n in required if n not in data]
        unknown = sorted(set(data) - names)
        if missing or unknown:
            raise AccountStateError(
                f"{source}: missing keys {missing} / unknown keys {unknown}. The file was not "
                "written by this version of reinforce_strategy_creator; restore it from backup "
                "or start a new account folder."
            )
        tickers = data["tickers"]
        n = len(tickers) if isinstance(tickers, list) else 0
        exact = [data.get(k) for k in ("exact_initial_cash", "exact_cash", "exact_equity")]
        g = data["granularity"]
        lengths = {k: len(data[k]) for k in PER_ASSET if isinstance(data.get(k), list)}
        not_lists = [k for k in PER_ASSET if data.get(k) is not None and not isinstance(data[k], list)]
        if (
            n == 0
            or len(set(tickers)) != n
            or not all(isinstance(t, str) and t for t in tickers)
            or not_lists
            or any(v != n for v in lengths.values())
            or g not in GRANULARITIES
            or (g == "fractional" and not all(isinstance(v, (int, float)) for v in exact))
            or (g == "whole" and any(v is not None for v in exact))
            or (g == "whole" and not all(isinstance(v, int) for v in data["shares"]))
        ):
            raise AccountStateError(
                f"{source}: tickers {tickers}, granularity {g!r}, exact cash {exact} and per-asset "
                f"lengths {lengths} (not lists: {not_lists}) are not a valid account (distinct "
                f"tickers; granularity one of {list(GRANULARITIES)}; one value per ticker; a whole "
                "account has whole shares and no exact_* fields, a fractional one all three). The "
                "file is damaged: restore it from backup."
            )
        d = dict(data)
        for k in ("tickers", *PER_ASSET):
            d[k] = None if d.get(k) is None else tuple(d[k])
        return cls(**d)


#: the keys of schema-1 ``state.json`` files: an instrument account (one scalar ``shares``) and a
#: universe account (``kind: portfolio``, one share count per ticker)
V1_INSTRUMENT_KEYS = frozenset(
    "initial_capital_cents cash_cents shares position last_bar last_close equity_cents "
    "peak_equity_cents day day_start_equity_cents day_loss_stop halted halt_reason pending_target "
    "held_target entry_price bars_held pending_decided_at active_model_id bars_processed "
    "session_first_bar generation log_sizes schema_version granularity exact_initial_cash "
    "exact_cash exact_equity".split()
)
V1_UNIVERSE_KEYS = frozenset(
    "tickers granularity config initial_capital_cents cash_cents equity_cents peak_equity_cents "
    "shares exact_initial_cash exact_cash exact_equity last_bar last_close day "
    "day_start_equity_cents day_loss_stop halted halt_reason pending_weights pending_hold "
    "pending_decided_at active_model_id bars_processed session_first_bar generation log_sizes "
    "kind schema_version".split()
)


def from_v1(data: dict[str, Any], source: str = "state.json") -> dict[str, Any]:
    """A schema-1 ``state.json`` as a schema-2 record. A universe account (``kind: portfolio``)
    keeps its fields and drops ``kind``; an instrument account becomes a universe of one ticker
    (:data:`INSTRUMENT`): its scalar ``shares``, ``last_close``, ``pending_target``,
    ``held_target``, ``entry_price`` and ``bars_held`` become one-element lists and its
    ``position`` (derived: :meth:`AccountState.weights`) is dropped. Any other key set is
    refused, naming the file (never guessed)."""
    universe = data.get("kind") == "portfolio"
    keys = V1_UNIVERSE_KEYS if universe else V1_INSTRUMENT_KEYS
    must = (
        ("tickers", "config", "shares", "cash_cents", "generation")
        if universe
        else ("initial_capital_cents", "cash_cents", "shares", "generation")
    )
    missing = [k for k in must if k not in data]
    unknown = sorted(set(data) - keys)
    scalar_shares = isinstance(data.get("shares"), (int, float)) and not isinstance(data.get("shares"), bool)
    if missing or unknown or ("kind" in data and not universe) or (not universe and not scalar_shares):
        raise AccountStateError(
            f"{source}: a schema_version 1 file that is neither a single-instrument nor a "
            f"universe (kind: portfolio) account state (missing keys {missing}, unknown keys "
            f"{unknown}, kind {data.get('kind')!r}, shares {data.get('shares')!r}). The file is "
            "damaged: restore it from backup, or move the folder away to start a new account."
        )
    d = dict(data, schema_version=SCHEMA_VERSION)
    if universe:
        del d["kind"]
        return d

    def one(key: str, default: Any = None) -> list | None:
        value = d.pop(key, default)
        return None if value is None else [value]

    d.pop("position", None)
    d.update(
        tickers=[INSTRUMENT],
        granularity=d.get("granularity", "whole"),
        equity_cents=d.get("equity_cents", 0),
        peak_equity_cents=d.get("peak_equity_cents", 0),
        shares=one("shares"),
        last_close=one("last_close"),
        pending_weights=one("pending_target"),
        held_weights=one("held_target", 0.0),
        entry_price=one("entry_price", 1.0),
        bars_held=one("bars_held", 0.0),
    )
    return d


#: the keys a single-instrument account's log records had before the one log layout, dropped on reading
_V1_TRADE_ONLY = ("cash_after", "cash_after_cents", "shares_after")


def upgrade_record(name: str, rec: dict[str, Any], tickers: Sequence[str]) -> dict[str, Any]:
    """A committed log record in the one log layout (docs/paper_trading.md, "Logs"). Records an
    instrument account wrote before it (one asset's scalar ``open`` / ``close`` / ``shares`` /
    ``position`` marks, ``policy_target`` / ``target`` orders, trades without a ``ticker``) are
    read into it: one-element lists, the account's one ticker, ``hold`` false. The files are
    never rewritten; a record already in the layout is returned as is."""
    if name == "equity" and "close" in rec:
        r = {k: v for k, v in rec.items() if k not in ("open", "close", "position", "shares")}
        return {
            **r,
            "opens": [rec["open"]],
            "closes": [rec["close"]],
            "shares": [rec["shares"]],
            "weights": [rec["position"]],
        }
    if name == "orders" and "target" in rec:
        r = {k: v for k, v in rec.items() if k not in ("policy_target", "target")}
        policy = rec["policy_target"]
        return {
            **r,
            "policy_weights": None if policy is None else [policy],
            "targets": [rec["target"]],
            "hold": False,
        }
    if name == "trades" and "ticker" not in rec:
        r = {k: v for k, v in rec.items() if k not in ("target", *_V1_TRADE_ONLY)}
        return {**r, "ticker": tickers[0], "target_weight": rec["target"]}
    return rec


def check_state(state: AccountState, source: str = "state") -> None:
    """The state's own identity: cash + sum(shares x last close) = equity, to the cent
    (whole: exactly, in cents of each position's market value; fractional: within half a cent)."""
    if state.last_close is None:
        ok = state.equity_cents == state.cash_cents and not any(state.shares)
        diff = (state.equity_cents - state.cash_cents) / 100
    elif state.fractional:
        value = sum(s * (c or 0.0) for s, c in zip(state.shares, state.last_close, strict=True))
        diff = state.exact_cash + value - state.exact_equity
        ok = abs(diff) <= 0.005 and state.equity_cents == round(state.exact_equity * 100)
    else:
        mv = market_value_cents(state.shares, state.last_close)
        diff = (state.cash_cents + mv - state.equity_cents) / 100
        ok = diff == 0
    if not ok:
        raise AccountStateError(
            f"{source}: cash + shares x close differs from equity by {diff:.6f} at "
            f"{str(state.last_bar).removesuffix('T00:00:00')}: the account does not reconcile. "
            "Stop trading and restore the folder from backup."
        )


def market_value_cents(shares: Iterable[float], closes: Iterable[float | None]) -> int:
    """The holdings' market value, sum(shares x close) summed exactly (``math.fsum``), in cents
    rounded once: a whole account's equity is its cash plus this (a close of ``None``: not listed)."""
    return round(math.fsum(s * (c or 0.0) for s, c in zip(shares, closes, strict=True)) * 100)


def new_account(
    initial_capital: float,
    active_model_id: str | None = None,
    granularity: str = "whole",
    tickers: Sequence[str] = (INSTRUMENT,),
    config: Mapping[str, Any] | None = None,
) -> AccountState:
    """A fresh, flat account holding ``initial_capital`` in cash over ``tickers``, trading
    ``granularity`` shares (``whole``, the default, or ``fractional``). ``config``: a universe
    account's config record (fixed, as its tickers and granularity, for its lifetime); without
    one, an instrument account, which tracks its held targets, entry prices and bars held."""
    if not (initial_capital > 0):  # NaN too
        raise AccountStateError(
            f"environment.initial_capital must be a positive amount, got {initial_capital!r}; "
            "set it in conf/base/parameters_environment.yml."
        )
    if granularity not in GRANULARITIES:
        raise AccountStateError(f"granularity must be one of {list(GRANULARITIES)}, got {granularity!r}")
    tickers = tuple(str(t) for t in tickers)
    if not tickers or len(set(tickers)) != len(tickers):
        raise AccountStateError(f"an account needs one or more distinct tickers, got {list(tickers)}")
    n = len(tickers)
    cents = round(float(initial_capital) * 100)
    exact = float(initial_capital) if granularity == "fractional" else None
    zero: float = 0.0 if granularity == "fractional" else 0
    instrument = config is None
    return AccountState(
        tickers=tickers,
        granularity=granularity,
        config=None if instrument else dict(config),
        initial_capital_cents=cents,
        cash_cents=cents,
        equity_cents=cents,
        peak_equity_cents=cents,
        day_start_equity_cents=cents,
        shares=(zero,) * n,
        active_model_id=active_model_id,
        exact_initial_cash=exact,
        exact_cash=exact,
        exact_equity=exact,
        held_weights=(0.0,) * n if instrument else None,
        entry_price=(1.0,) * n if instrument else None,
        bars_held=(0.0,) * n if instrument else None,
    )


@dataclass(frozen=True)
class RunSummary:
    """What one run of a paper account did: bars processed, its first and last bar, the state
    after it."""

    bars_processed: int
    first_bar: str | None
    last_bar: str | None
    state: AccountState


class AccountStore:
    """Reads and commits one account folder. See the module docstring for the protocol.

    Readers (``load``, ``read_log``) need no lock: they only look at committed bytes.
    Writers must hold ``with store.locked():`` around ``load`` + ``commit``.
    """

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        self._locked = False

    # -- paths -------------------------------------------------------------------------
    @property
    def state_path(self) -> Path:
        return self.folder / STATE_FILE

    def log_path(self, name: str) -> Path:
        if name not in LOG_NAMES:
            raise AccountStateError(f"unknown log {name!r}; logs are {LOG_NAMES}")
        return self.folder / f"{name}.jsonl"

    # -- locking -----------------------------------------------------------------------
    @contextlib.contextmanager
    def locked(self) -> Iterator[AccountStore]:
        """Exclusive writer lock for this folder (released by the kernel if the process dies)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with exclusive_lock(self.folder / ".lock"):
            self._locked = True
            try:
                remove_stale_temps(self.folder)
                yield self
            finally:
                self._locked = False

    # -- reading -----------------------------------------------------------------------
    def exists(self) -> bool:
        return self.state_path.exists()

    def load(self) -> AccountState:
        if not self.state_path.exists():
            stray = [n for n in LOG_NAMES if self.log_path(n).exists() and self.log_path(n).stat().st_size]
            hint = (
                f" Logs {stray} exist without a state.json: the folder is damaged; restore "
                "state.json from backup or move the folder away."
                if stray
                else " Initialise it first (the paper account does this on its first run)."
            )
            raise AccountStateError(f"no account state at {self.state_path}.{hint}")
        try:
            data = json.loads(self.state_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise AccountStateError(
                f"{self.state_path} is not valid JSON ({exc}): the paper account state is "
                "corrupt and is never reset automatically. Restore state.json from backup, or "
                "move the whole folder away to start a new account (its logs are the history). "
                "Nothing was traded."
            ) from exc
        if not isinstance(data, dict):
            raise AccountStateError(
                f"{self.state_path} holds a JSON {type(data).__name__}, not an account state: "
                "the file is corrupt. Restore state.json from backup, or move the folder away to "
                "start a new account. Nothing was traded."
            )
        state = AccountState.from_dict(data, source=str(self.state_path))
        for name in LOG_NAMES:
            size = self.log_path(name).stat().st_size if self.log_path(name).exists() else 0
            if size < state.log_sizes.get(name, 0):
                raise AccountStateError(
                    f"{self.log_path(name)} is shorter ({size} bytes) than committed in "
                    f"state.json ({state.log_sizes[name]} bytes): committed history was lost. "
                    "Restore the folder from backup; do not trade on it."
                )
        check_state(state, source=str(self.state_path))
        return state

    def read_log(self, name: str, state: AccountState | None = None) -> list[dict[str, Any]]:
        """Committed records of one log (an uncommitted tail from a crash is ignored)."""
        state = state or self.load()
        size = state.log_sizes.get(name, 0)
        if size == 0:
            return []
        with open(self.log_path(name), "rb") as fh:
            raw = fh.read(size)
        return [
            upgrade_record(name, json.loads(line), state.tickers)
            for line in raw.decode("utf-8").splitlines()
            if line
        ]

    # -- writing -----------------------------------------------------------------------
    def initialize(self, state: AccountState) -> AccountState:
        """Create the folder with ``state`` as generation 0; refuses to overwrite an account."""
        self._require_lock()
        if self.exists():
            raise AccountStateError(
                f"{self.state_path} already exists; refusing to overwrite a live account. "
                "Use a new account folder to start over."
            )
        for name in LOG_NAMES:  # leftovers of a run killed before its first commit
            path = self.log_path(name)
            if path.exists():
                set_aside_tail(path, 0, "log lines of a run killed before the account's first commit")
                path.unlink()
        state = dataclasses.replace(state, generation=0, log_sizes=dict.fromkeys(LOG_NAMES, 0))
        atomic_write_json(self.state_path, state.to_dict())
        return state

    def commit(
        self,
        state: AccountState,
        records: dict[str, list[dict[str, Any]]] | None = None,
        *,
        base_generation: int | None = None,
    ) -> AccountState:
        """Append ``records`` to the logs, then atomically publish ``state`` as the next generation.

        ``state.generation`` must equal the generation on disk (the one it was derived from).
        Returns the state as committed (generation + 1, new log sizes). For a batch
        (:meth:`commit_batch`), ``base_generation`` is the generation on disk it was derived
        from and ``state.generation`` (already advanced once per bar) is published as is.
        """
        batch = base_generation is not None
        self._require_lock()
        on_disk = self.load()
        derived_from = base_generation if batch else state.generation
        if on_disk.generation != derived_from:
            raise AccountStateError(
                f"{self.state_path}: state generation {derived_from} is stale (disk has "
                f"{on_disk.generation}); another writer committed. Reload and retry."
            )
        records = records or {}
        unknown = set(records) - set(LOG_NAMES)
        if unknown:
            raise AccountStateError(f"unknown logs {sorted(unknown)}; logs are {LOG_NAMES}")
        sizes = dict(on_disk.log_sizes)
        for name in LOG_NAMES:
            path = self.log_path(name)
            committed = on_disk.log_sizes.get(name, 0)
            if path.exists() and path.stat().st_size > committed:
                # Uncommitted tail of a run killed mid-bar: set aside before appending.
                set_aside_tail(
                    path, committed, "uncommitted log lines of a run killed before its state.json commit"
                )
            lines = [json.dumps(r, sort_keys=True, allow_nan=False) for r in records.get(name, [])]
            if lines or not path.exists():
                sizes[name] = append_lines_durable(path, lines)
        generation = state.generation if batch else state.generation + 1
        new_state = dataclasses.replace(state, generation=generation, log_sizes=sizes)
        atomic_write_json(self.state_path, new_state.to_dict())  # <- the commit point
        fsync_dir(self.folder)
        return new_state

    def commit_batch(self, staged: StagedAccount) -> AccountState | None:
        """Publish a :class:`StagedAccount` as one commit; ``None`` if there is no account.

        Refuses when the folder moved on since the batch was loaded (another writer
        committed): nothing is written and the message says to run again.
        """
        if not staged.changed:
            return self.load() if self.exists() else None
        with self.locked():
            on_disk_gen = self.load().generation if self.exists() else None
            if staged.created:
                if on_disk_gen is not None:
                    raise AccountStateError(
                        f"{self.folder}: an account was created by another run while this one "
                        "was working; nothing was written. Run again."
                    )
                first = staged.initial_state
                self.initialize(first)
                on_disk_gen = 0
            elif on_disk_gen != staged.base_generation:
                raise AccountStateError(
                    f"{self.state_path}: generation {on_disk_gen} on disk, but this run started "
                    f"from {staged.base_generation}: another writer committed meanwhile. Nothing "
                    "was written; run again."
                )
            if staged.state.generation == on_disk_gen:
                return self.load()
            return self.commit(staged.state, staged.records, base_generation=on_disk_gen)

    def _require_lock(self) -> None:
        if not self._locked:
            raise AccountStateError("writes to the paper account must happen inside `with store.locked():`")


def count_events(events: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """How many events of each kind, in the order the kinds first appear."""
    counts: dict[str, int] = {}
    for ev in events:
        counts[ev["kind"]] = counts.get(ev["kind"], 0) + 1
    return counts


def last_session(state: Any, logs: Mapping[str, list[dict[str, Any]]]) -> dict[str, Any] | None:
    """The newest run that processed bars into an account (``state``: its :class:`AccountState`
    or ``None``), read from its committed state and
    logs alone (``None`` before the first bar, or for a state written before sessions were
    recorded): its first and last bar, bars decided, trades filled, events by kind and the
    model that traded. The same whichever run reports it, so a run killed after its commit and
    before its report loses nothing: the next run's status shows the killed run's session."""
    if state is None or state.session_first_bar is None:
        return None
    first = state.session_first_bar

    def since(name: str) -> list[dict[str, Any]]:
        return [r for r in logs.get(name, []) if str(r.get("bar")) >= first]

    return {
        "first_bar": first,
        "last_bar": state.last_bar,
        "bars": len(since("equity")),
        "trades": len(since("trades")),
        "events": count_events(since("events")),
        "model": state.active_model_id,
    }


class StagedAccount:
    """An in-memory stand-in for :class:`AccountStore` that collects commits for one batch.

    Why: a Kedro node must not write files. The deployment pipeline loads the committed
    account (``PaperAccountDataset``), lets :class:`~.account.PaperAccount` process the new
    bars against this object (same interface: ``locked``/``exists``/``load``/``initialize``/
    ``commit``), and the dataset's save publishes everything with
    :meth:`AccountStore.commit_batch` as one crash-safe commit. A run killed before that
    commit leaves the account untouched and the next run processes the same bars again,
    deterministically; the generation and log bytes equal those of bar-by-bar commits.
    """

    def __init__(
        self,
        folder: str | os.PathLike,
        base: AccountState | None,
        history: dict[str, list[dict[str, Any]]] | None = None,
    ) -> None:
        self.folder = Path(folder)
        self.base = base
        # committed log records at load time (read-only; used for feed checks and the report)
        self.history: dict[str, list[dict[str, Any]]] = history or {name: [] for name in LOG_NAMES}
        self.state = base
        self.created = False
        self.records: dict[str, list[dict[str, Any]]] = {name: [] for name in LOG_NAMES}

    @property
    def base_generation(self) -> int | None:
        return None if self.base is None else self.base.generation

    @property
    def changed(self) -> bool:
        return self.created or any(self.records.values())

    @contextlib.contextmanager
    def locked(self) -> Iterator[StagedAccount]:
        yield self

    def exists(self) -> bool:
        return self.state is not None

    def load(self) -> AccountState:
        if self.state is None:
            raise AccountStateError(f"no account state at {self.folder / STATE_FILE}.")
        return self.state

    def initialize(self, state: AccountState) -> AccountState:
        if self.state is not None:
            raise AccountStateError(f"{self.folder}: account already exists; refusing to re-create it.")
        self.state = dataclasses.replace(state, generation=0, log_sizes=dict.fromkeys(LOG_NAMES, 0))
        self.initial_state = self.state
        self.created = True
        return self.state

    def commit(
        self, state: AccountState, records: dict[str, list[dict[str, Any]]] | None = None
    ) -> AccountState:
        if self.state is None or state.generation != self.state.generation:
            raise AccountStateError(f"{self.folder}: staged commit from a stale generation.")
        unknown = set(records or {}) - set(LOG_NAMES)
        if unknown:
            raise AccountStateError(f"unknown logs {sorted(unknown)}; logs are {LOG_NAMES}")
        for name, recs in (records or {}).items():
            # the JSON round trip rejects NaN/inf now, not at publication time
            self.records[name].extend(
                json.loads(json.dumps(r, sort_keys=True, allow_nan=False)) for r in recs
            )
        self.state = dataclasses.replace(state, generation=state.generation + 1)
        return self.state
