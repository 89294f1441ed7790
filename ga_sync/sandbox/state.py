"""What the sandbox knows: accounts, properties and their key events, optionally kept in a JSON file.

One `SandboxState` is shared by the HTTP server, the Admin API handlers (admin_api.py) and the
Data API handlers (data_api.py). Everything that mutates it holds `state.lock` (an RLock, so a
handler may call other locked methods). Key events are kept as the official proto-plus
`KeyEvent` type so that what the sandbox answers is serialized exactly like GA's own responses.

The file format is plain JSON (key events in proto3 JSON) and is written atomically (temp file
+ os.replace), so a crash never leaves half a state file behind.

Writes do not rewrite that file. Rewriting and fsyncing the whole file after every write cost
6.2 ms under the lock, serializing concurrent clients. Instead, `save()` appends what changed
since the last save (a key event, a property, the accounts, ...) as one line to a write-ahead
log beside the file (`FILE.wal`) and fsyncs it; concurrent savers share one fsync. A write is
acknowledged only after its `save()`, so a killed sandbox loses no acknowledged write: the next
`SandboxState(FILE)` replays the log over the file. The log is folded into the file (compacted)
when it grows past the file's size, when a state is opened, on `close()` and at exit. Every
compaction starts a new log generation, named in both files, so a log that was already folded
in (a crash between the two steps) is never replayed twice.

What changed is noticed, not declared: properties are kept in a dict and key events in dicts
that note every assignment and deletion, and a property notes assignments to its attributes.
Changing a stored object in place without assigning it (e.g. `ke.counting_method = 2` on a key
event already stored) is not noticed; the handlers replace key events, never edit them.
"""

from __future__ import annotations

import atexit
import base64
import datetime as _dt
import json
import os
import tempfile
import threading
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google.analytics.admin_v1beta.types import KeyEvent

from ga_sync.sandbox.routing import ApiError

FORMAT_VERSION = 1

STANDARD = "GOOGLE_ANALYTICS_STANDARD"
GA360 = "GOOGLE_ANALYTICS_360"
SERVICE_LEVELS = (STANDARD, GA360)
RETENTIONS = ("TWO_MONTHS", "FOURTEEN_MONTHS", "TWENTY_SIX_MONTHS", "THIRTY_EIGHT_MONTHS", "FIFTY_MONTHS")

# The real 403 body GA sends for a property the caller cannot see (recorded, see
# tests/fixtures/real/errors/data_api_403_permission_denied.json).
PERMISSION_DENIED_MESSAGE = (
    "User does not have sufficient permissions for this property. To learn more about Property ID, "
    "see https://developers.google.com/analytics/devguides/reporting/data/v1/property-id."
)
# google.rpc's canonical wording for NOT_FOUND, which Google's APIs use when they say no more.
NOT_FOUND_MESSAGE = "Requested entity was not found."

# First ids handed out: GA accounts and properties have 9-digit ids, key events 11-digit ones.
_FIRST_ACCOUNT_ID = 300_000_001
_FIRST_PROPERTY_ID = 500_000_001
_FIRST_KEY_EVENT_ID = 14_000_000_001

# A property's other items, kept as plain JSON dicts by id (machinery.py, changes.py):
# attribute name -> first id handed out. Rules, audiences and annotations hold the resource as
# proto3 JSON with enum names; `changes` the change history events; `versions` when each rule
# or audience version was in force (the traffic model reads it, derived.py).
ITEM_KINDS = {"rules": 2_100_000_001, "audiences": 11_000_000_001,
              "annotations": 3_100_000_001, "changes": 1_700_000_000_001, "versions": 1}


def now_utc() -> _dt.datetime:
    """The current time, with a microsecond part that protobuf prints with exactly 6 digits.

    Protobuf's JSON writer drops trailing zero groups (".843000" -> ".843"); GA's key event
    createTime always shows 6 fractional digits, so a whole millisecond is nudged by 1 µs.
    """
    t = _dt.datetime.now(_dt.timezone.utc)
    if t.microsecond % 1000 == 0:
        t = t.replace(microsecond=t.microsecond + 1)
    return t


def _ms(t: _dt.datetime) -> _dt.datetime:
    """Millisecond precision, as GA reports property and account create times."""
    return t.replace(microsecond=t.microsecond - t.microsecond % 1000)


def rfc3339(t: _dt.datetime) -> str:
    return t.astimezone(_dt.timezone.utc).isoformat().replace("+00:00", "Z")


def parse_rfc3339(text: str) -> _dt.datetime:
    return _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def _property_id(pid: object) -> str:
    """`123`, `"123"` or `"properties/123"` -> `"123"` (as GA's MCP server accepts them all)."""
    text = str(pid).strip()
    if text.startswith("properties/"):
        text = text[len("properties/"):]
    return text


@dataclass
class AccountRecord:
    """A GA account: only what account summaries show."""

    id: str
    display_name: str
    create_time: str

    @property
    def name(self) -> str:
        return f"accounts/{self.id}"


class _KeyEvents(dict):
    """A property's key events by id (or another kind of item, see `ITEM_KINDS`): every
    assignment and deletion is noted for the log."""

    __slots__ = ("note",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.note: Any = None  # called with the key event id that changed

    def _changed(self, kid: str) -> None:
        if self.note is not None:
            self.note(kid)

    def __setitem__(self, kid: str, value: KeyEvent) -> None:
        super().__setitem__(kid, value)
        self._changed(kid)

    def __delitem__(self, kid: str) -> None:
        super().__delitem__(kid)
        self._changed(kid)

    def pop(self, kid: str, *default: Any) -> Any:
        out = super().pop(kid, *default)
        self._changed(kid)
        return out

    def popitem(self) -> tuple[str, KeyEvent]:
        kid, value = super().popitem()
        self._changed(kid)
        return kid, value

    def setdefault(self, kid: str, default: Any = None) -> Any:
        if kid not in self:
            self[kid] = default
        return self[kid]

    def update(self, *args: Any, **kwargs: Any) -> None:
        for kid, value in dict(*args, **kwargs).items():
            self[kid] = value

    def clear(self) -> None:
        kids = list(self)
        super().clear()
        for kid in kids:
            self._changed(kid)


@dataclass
class PropertyRecord:
    """A GA4 property with its key events.

    `traffic` belongs to the Data API sandbox (its traffic model); it is persisted as-is and
    never looked at here.
    """

    id: str
    account: str
    display_name: str
    time_zone: str = "America/New_York"
    currency_code: str = "USD"
    service_level: str = STANDARD
    event_data_retention: str = "FOURTEEN_MONTHS"
    create_time: str = ""
    key_events: dict[str, KeyEvent] = field(default_factory=_KeyEvents)
    traffic: dict | None = None
    update_time: str = ""
    # None: one web stream, as every sandbox property had before streams could be chosen;
    # else stream id -> {"type", "display_name", "create_time", ...} (machinery.set_streams)
    streams: dict[str, dict] | None = None
    rules: dict[str, dict] = field(default_factory=_KeyEvents)
    audiences: dict[str, dict] = field(default_factory=_KeyEvents)
    annotations: dict[str, dict] = field(default_factory=_KeyEvents)
    changes: dict[str, dict] = field(default_factory=_KeyEvents)
    versions: dict[str, dict] = field(default_factory=_KeyEvents)

    def __setattr__(self, name: str, value: Any) -> None:
        noted = name == "key_events" or name in ITEM_KINDS
        if noted and not isinstance(value, _KeyEvents):
            value = _KeyEvents(value)
        object.__setattr__(self, name, value)
        state = self.__dict__.get("_state")
        if state is not None:  # stored in a state: the log keeps the whole property again
            if name == "key_events":
                value.note = state._key_event_noter(self.id)
            elif noted:
                value.note = state._item_noter(self.id, name)
            state._note_property(self.id)

    @property
    def name(self) -> str:
        return f"properties/{self.id}"

    @property
    def key_event_limit(self) -> int:
        """Custom key events allowed: 30 on a standard property, 50 on Analytics 360."""
        return 50 if self.service_level == GA360 else 30

    def key_event_by_name(self, event_name: str) -> KeyEvent | None:
        for ke in self.key_events.values():
            if ke.event_name == event_name:
                return ke
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "account": self.account,
            "display_name": self.display_name,
            "time_zone": self.time_zone,
            "currency_code": self.currency_code,
            "service_level": self.service_level,
            "event_data_retention": self.event_data_retention,
            "create_time": self.create_time,
            "update_time": self.update_time,
            "key_events": {
                kid: json.loads(KeyEvent.to_json(ke, use_integers_for_enums=False, indent=None))
                for kid, ke in self.key_events.items()
            },
            "traffic": self.traffic,
            "streams": self.streams,
            **{kind: dict(getattr(self, kind)) for kind in ITEM_KINDS},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "PropertyRecord":
        kes = {kid: KeyEvent.from_json(json.dumps(ke)) for kid, ke in data.get("key_events", {}).items()}
        return cls(
            id=str(data["id"]), account=data["account"], display_name=data["display_name"],
            time_zone=data.get("time_zone", "America/New_York"), currency_code=data.get("currency_code", "USD"),
            service_level=data.get("service_level", STANDARD),
            event_data_retention=data.get("event_data_retention", "FOURTEEN_MONTHS"),
            create_time=data.get("create_time", ""), update_time=data.get("update_time", ""),
            key_events=kes, traffic=data.get("traffic"), streams=data.get("streams"),
            **{kind: dict(data.get(kind) or {}) for kind in ITEM_KINDS},
        )


def _traffic_start(traffic: dict | None) -> _dt.datetime | None:
    """Midnight UTC of the first day a traffic profile has data, if it says."""
    start = (traffic or {}).get("start")
    if not start:
        return None
    return _dt.datetime.fromisoformat(str(start)).replace(tzinfo=_dt.timezone.utc)


class _Properties(dict):
    """The state's properties by id: a property stored here is watched by the state."""

    __slots__ = ("state",)

    def __init__(self, state: "SandboxState") -> None:
        super().__init__()
        self.state = state

    def __setitem__(self, pid: str, record: PropertyRecord) -> None:
        super().__setitem__(pid, record)
        self.state._adopt(record)
        self.state._note_property(pid)

    def __delitem__(self, pid: str) -> None:
        super().__delitem__(pid)
        self.state._note_property(pid)

    def pop(self, pid: str, *default: Any) -> Any:
        out = super().pop(pid, *default)
        self.state._note_property(pid)
        return out

    def update(self, *args: Any, **kwargs: Any) -> None:
        for pid, record in dict(*args, **kwargs).items():
            self[pid] = record

    def clear(self) -> None:
        pids = list(self)
        super().clear()
        for pid in pids:
            self.state._note_property(pid)


_OPEN_STATES: "weakref.WeakSet[SandboxState]" = weakref.WeakSet()


@atexit.register
def _compact_open_states() -> None:
    """At exit, fold every open state's log into its file (a killed process skips this: the
    log is replayed by the next open instead)."""
    for state in list(_OPEN_STATES):
        try:
            state.close()
        except Exception:  # noqa: BLE001 - exiting anyway; the log is still there to replay
            pass


class SandboxState:
    """All sandbox data, thread-safe, optionally persisted to `path` (loaded back if it exists,
    with its write-ahead log replayed: see the module docstring)."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path: Path | None = Path(path) if path is not None else None
        self.lock = threading.RLock()
        self.accounts: dict[str, AccountRecord] = {}  # keyed by "accounts/N"
        self.properties: dict[str, PropertyRecord] = _Properties(self)  # keyed by digits
        self.denied: set[str] = set()  # property ids for which every request answers 403
        self._next_account = _FIRST_ACCOUNT_ID
        self._next_property = _FIRST_PROPERTY_ID
        self._next_key_event = _FIRST_KEY_EVENT_ID
        self._next_items: dict[str, int] = dict(ITEM_KINDS)
        # The write-ahead log (None: in memory, nothing noted).
        self._pending: dict[tuple[str, ...], None] = {}  # ("p", pid) / ("k", pid, kid), in order
        self._reset_pending = False
        self._accounts_pending = False
        self._logged_denied: set[str] = set()
        self._generation = 0  # the log generation the file on disk folds in
        self._wal_fd: int | None = None
        self._wal_bytes = 0  # bytes of records in the log since the last compaction
        self._snapshot_bytes = 0
        self._stamp: tuple[int, int, int] | None = None  # the file as we last wrote or read it
        self._written = 0  # log records written ...
        self._synced = 0  # ... and fsynced
        self._sync_lock = threading.Lock()
        if self.path is not None:
            wal_exists = self.wal_path is not None and self.wal_path.exists()
            if self.path.exists() or wal_exists:
                self.load()
                if wal_exists:
                    self.compact()  # fold the replayed log in now: a new generation starts
            _OPEN_STATES.add(self)
        self._clear_pending()

    @property
    def wal_path(self) -> Path | None:
        """The write-ahead log beside the state file: `FILE.wal`."""
        return None if self.path is None else self.path.with_name(self.path.name + ".wal")

    # ---- noticing changes ------------------------------------------------------------------

    def _adopt(self, record: PropertyRecord) -> None:
        record.__dict__["_state"] = self
        record.key_events.note = self._key_event_noter(record.id)
        for kind in ITEM_KINDS:
            getattr(record, kind).note = self._item_noter(record.id, kind)

    def _key_event_noter(self, pid: str) -> Any:
        def note(kid: str) -> None:
            if self.path is not None:
                self._pending[("k", pid, kid)] = None
        return note

    def _item_noter(self, pid: str, kind: str) -> Any:
        def note(key: str) -> None:
            if self.path is not None:
                self._pending[("i", pid, kind, key)] = None
        return note

    def _note_property(self, pid: str) -> None:
        if self.path is not None:
            self._pending[("p", pid)] = None

    def _clear_pending(self) -> None:
        self._pending.clear()
        self._reset_pending = self._accounts_pending = False
        self._logged_denied = set(self.denied)

    # ---- ids -------------------------------------------------------------------------------

    def new_item_id(self, kind: str) -> str:
        """A fresh id for a rule, audience, annotation, change event or version (`ITEM_KINDS`);
        increasing, so listing by id lists by creation."""
        with self.lock:
            n = self._next_items.get(kind, ITEM_KINDS[kind])
            self._next_items[kind] = n + 1
            return str(n)

    def new_key_event_id(self) -> str:
        """A fresh 11-digit id; increasing, like GA's (so listing by id lists by creation)."""
        with self.lock:
            kid = self._next_key_event
            self._next_key_event += 1
            return str(kid)

    # ---- accounts and properties --------------------------------------------------------

    def add_account(self, display_name: str = "Sandbox Account") -> str:
        """Create an account and return its name, `"accounts/N"`."""
        with self.lock:
            aid = str(self._next_account)
            self._next_account += 1
            self.accounts[f"accounts/{aid}"] = AccountRecord(aid, display_name, rfc3339(_ms(now_utc())))
            self._accounts_pending = True
            return f"accounts/{aid}"

    def add_property(
        self,
        property_id: str | int | None = None,
        display_name: str = "Sandbox Property",
        account: str | None = None,
        time_zone: str = "America/New_York",
        currency_code: str = "USD",
        service_level: str = STANDARD,
        event_data_retention: str = "FOURTEEN_MONTHS",
        traffic: dict | None = None,
        default_key_events: bool = True,
        create_time: _dt.datetime | None = None,
    ) -> PropertyRecord:
        """Create a property, like creating a web property in GA's UI.

        With `default_key_events` it gets GA's default `purchase` key event (ONCE_PER_EVENT, not
        deletable, not custom), created at the same moment as the property, as in the recording.
        The property is created at `create_time`; by default now, or, for a property with
        traffic, the first day of its data (a site collecting since 2024 had its property then).
        Key events count in reports from the day they were created.
        Without `account`, the first account is used (one is created when there is none).
        Raises ValueError for a bad argument or a property id that is already taken.
        """
        if service_level not in SERVICE_LEVELS:
            raise ValueError(f"service_level must be one of {SERVICE_LEVELS}, not {service_level!r}")
        if event_data_retention not in RETENTIONS:
            raise ValueError(f"event_data_retention must be one of {RETENTIONS}, not {event_data_retention!r}")
        with self.lock:
            if property_id is None:
                while str(self._next_property) in self.properties:
                    self._next_property += 1
                pid = str(self._next_property)
                self._next_property += 1
            else:
                pid = _property_id(property_id)
                if not pid.isdigit() or pid.startswith("0"):
                    raise ValueError(f"property id must be a positive number, not {property_id!r}")
                if pid in self.properties:
                    raise ValueError(f"property {pid} already exists")
            if account is None:
                account = next(iter(self.accounts), None) or self.add_account()
            elif account not in self.accounts:
                if account.startswith("accounts/") and account[len("accounts/"):].isdigit():
                    aid = account[len("accounts/"):]
                    self.accounts[account] = AccountRecord(aid, "Sandbox Account", rfc3339(_ms(now_utc())))
                    self._accounts_pending = True
                else:
                    raise ValueError(f"account must look like 'accounts/123', not {account!r}")
            created = create_time or _traffic_start(traffic) or now_utc()
            record = PropertyRecord(
                id=pid, account=account, display_name=display_name, time_zone=time_zone,
                currency_code=currency_code, service_level=service_level,
                event_data_retention=event_data_retention, create_time=rfc3339(_ms(created)),
                update_time=rfc3339(_ms(created)), traffic=traffic,
            )
            if default_key_events:
                kid = self.new_key_event_id()
                record.key_events[kid] = KeyEvent(
                    name=f"properties/{pid}/keyEvents/{kid}", event_name="purchase", create_time=created,
                    deletable=False, custom=False, counting_method=KeyEvent.CountingMethod.ONCE_PER_EVENT,
                )
            self.properties[pid] = record
            return record

    def property(self, pid: str | int) -> PropertyRecord:
        """The property `pid` (digits or "properties/N"), as the caller may see it.

        Raises the ApiError GA would answer, 403 PERMISSION_DENIED, both for a denied property
        and for one that does not exist: GA does not tell the two apart (recorded, see
        tests/fixtures/real/errors/).
        """
        key = _property_id(pid)
        with self.lock:
            record = self.properties.get(key)
            if key in self.denied or record is None:
                raise ApiError(403, PERMISSION_DENIED_MESSAGE)
            return record

    def deny(self, pid: str | int) -> None:
        """From now on every request for `pid` answers 403 (the caller lost access)."""
        with self.lock:
            self.denied.add(_property_id(pid))

    def reset(self) -> None:
        """Forget everything (ids keep increasing, as GA never reuses them)."""
        with self.lock:
            self.accounts.clear()
            dict.clear(self.properties)
            self.denied.clear()
            self._pending.clear()
            self._reset_pending = self.path is not None

    # ---- persistence -----------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        with self.lock:
            return {
                "version": FORMAT_VERSION,
                "next_ids": self._next_ids(),
                "accounts": [_account_json(a) for a in self.accounts.values()],
                "properties": [p.to_json() for p in self.properties.values()],
                "denied": sorted(self.denied),
            }

    def save(self) -> None:
        """Make every change so far durable; does nothing for an in-memory state.

        Appends the changes since the last save to the write-ahead log and fsyncs it (threads
        saving at the same time share one fsync); the first save of a new state file writes
        the whole file instead, and a log grown past the file's size is folded into it.
        """
        if self.path is None:
            return
        with self.lock:
            if self._stamp is None and not self.path.exists():
                self.compact()
                return
            line = self._log_line()
            if line:
                fd = self._open_wal()
                os.write(fd, line)
                self._wal_bytes += len(line)
                self._written += 1
            mine = self._written
            if self._wal_bytes > max(1 << 20, self._snapshot_bytes):
                self.compact()
                return
        if mine > self._synced:
            with self._sync_lock:
                if mine > self._synced:  # nobody's fsync covered this record yet
                    covers = self._written
                    fd = self._wal_fd
                    if fd is not None:
                        os.fsync(fd)
                    self._synced = max(self._synced, covers)

    def _log_line(self) -> bytes:
        """One log record of everything noted since the last one (b"" when nothing was)."""
        ops: list[Any] = []
        if self._reset_pending:
            ops.append({"reset": True})
        if self._accounts_pending or self._reset_pending:
            ops.append({"accounts": [_account_json(a) for a in self.accounts.values()]})
        for key in self._pending:
            pid = key[1]
            record = self.properties.get(pid)
            if key[0] == "p":
                ops.append({"property": pid, "data": None if record is None else record.to_json()})
            elif ("p", pid) in self._pending or record is None:
                continue
            elif key[0] == "i":
                item = getattr(record, key[2]).get(key[3])
                ops.append({"item": [pid, key[2], key[3], item]})
            else:
                ke = record.key_events.get(key[2])
                ops.append({"key_event": [pid, key[2], None if ke is None else
                                          base64.b64encode(KeyEvent.serialize(ke)).decode()]})
        if self.denied != self._logged_denied:
            ops.append({"denied": sorted(self.denied)})
        if not ops:
            return b""
        self._clear_pending()
        ops.append({"next_ids": self._next_ids()})
        return (json.dumps(ops, separators=(",", ":")) + "\n").encode()

    def _next_ids(self) -> dict[str, int]:
        return {"account": self._next_account, "property": self._next_property,
                "key_event": self._next_key_event, "items": dict(self._next_items)}

    def _open_wal(self) -> int:
        if self._wal_fd is None:
            assert self.wal_path is not None
            fd = os.open(self.wal_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            if os.fstat(fd).st_size == 0:  # a new log names the generation it follows
                os.write(fd, (json.dumps({"generation": self._generation}) + "\n").encode())
                os.fsync(fd)
                _fsync_dir(self.wal_path.parent)
            self._wal_fd = fd
        return self._wal_fd

    def compact(self) -> None:
        """Write the whole state file (atomically) and start an empty log of a new generation."""
        if self.path is None:
            return
        with self.lock:
            self._generation += 1
            data = self.to_json()
            data["log_generation"] = self._generation
            text = json.dumps(data, indent=1, sort_keys=True)
            _write_atomically(self.path, text)
            self._snapshot_bytes = len(text)
            st = self.path.stat()
            self._stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
            self._clear_pending()
            # The file now holds everything: the old log may go (a crash before this line
            # leaves a log of the old generation, which the next open skips).
            if self._wal_fd is not None:
                os.close(self._wal_fd)
                self._wal_fd = None
            assert self.wal_path is not None
            try:
                os.unlink(self.wal_path)
            except FileNotFoundError:
                pass
            self._wal_bytes = 0
            self._synced = self._written

    def close(self) -> None:
        """Fold the log into the state file and close it (also done at exit). Skipped when the
        file was replaced by someone else meanwhile (another state opened on it folded our
        log in already)."""
        if self.path is None:
            return
        with self.lock:
            if self._pending or self._reset_pending or self._accounts_pending \
                    or self.denied != self._logged_denied:
                self.save()
            if self._wal_fd is not None or self._wal_bytes:
                if self._stamp is None or self._file_is_ours():
                    self.compact()
                elif self._wal_fd is not None:
                    os.close(self._wal_fd)
                    self._wal_fd = None
        _OPEN_STATES.discard(self)

    def _file_is_ours(self) -> bool:
        assert self.path is not None
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return False
        return (st.st_ino, st.st_mtime_ns, st.st_size) == self._stamp

    def load(self) -> None:
        """Replace the in-memory data with the state file's, then replay its log over it."""
        assert self.path is not None and self.wal_path is not None
        data: dict[str, Any] = {}
        if self.path.exists():
            text = self.path.read_text(encoding="utf-8")
            data = json.loads(text)
            if data.get("version") != FORMAT_VERSION:
                raise ValueError(f"{self.path}: unsupported sandbox state version {data.get('version')!r}")
            self._snapshot_bytes = len(text)
            st = self.path.stat()
            self._stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        with self.lock:
            self.accounts = {f"accounts/{a['id']}": AccountRecord(str(a["id"]), a["display_name"], a["create_time"])
                             for a in data.get("accounts", [])}
            dict.clear(self.properties)
            for p in data.get("properties", []):
                record = PropertyRecord.from_json(p)
                self.properties[record.id] = record
            self.denied = set(data.get("denied", []))
            ids = data.get("next_ids", {})
            self._next_account = ids.get("account", _FIRST_ACCOUNT_ID)
            self._next_property = ids.get("property", _FIRST_PROPERTY_ID)
            self._next_key_event = ids.get("key_event", _FIRST_KEY_EVENT_ID)
            self._next_items = {**ITEM_KINDS, **ids.get("items", {})}
            self._generation = int(data.get("log_generation", 0))
            self._replay()
            self._clear_pending()

    def _replay(self) -> None:
        """Apply the log's records if it follows this file's generation, up to the first
        incomplete line (a record cut short by a crash was never acknowledged)."""
        assert self.wal_path is not None
        try:
            raw = self.wal_path.read_bytes()
        except FileNotFoundError:
            return
        lines = raw.split(b"\n")[:-1]  # the part after the last newline is incomplete
        if not lines:
            return
        try:
            header = json.loads(lines[0])
        except ValueError:
            return
        if not isinstance(header, dict) or header.get("generation") != self._generation:
            return  # folded into the file already
        for line in lines[1:]:
            try:
                ops = json.loads(line)
            except ValueError:
                break
            for op in ops:
                self._apply(op)

    def _apply(self, op: dict[str, Any]) -> None:
        if "reset" in op:
            self.accounts.clear()
            dict.clear(self.properties)
            self.denied.clear()
        elif "accounts" in op:
            self.accounts = {f"accounts/{a['id']}": AccountRecord(str(a["id"]), a["display_name"],
                                                                  a["create_time"])
                             for a in op["accounts"]}
        elif "property" in op:
            if op["data"] is None:
                self.properties.pop(op["property"], None)
            else:
                self.properties[op["property"]] = PropertyRecord.from_json(op["data"])
        elif "key_event" in op:
            pid, kid, blob = op["key_event"]
            record = self.properties.get(pid)
            if record is not None:
                if blob is None:
                    record.key_events.pop(kid, None)
                else:
                    record.key_events[kid] = KeyEvent.deserialize(base64.b64decode(blob))
        elif "item" in op:
            pid, kind, key, item = op["item"]
            record = self.properties.get(pid)
            if record is not None and kind in ITEM_KINDS:
                if item is None:
                    getattr(record, kind).pop(key, None)
                else:
                    getattr(record, kind)[key] = item
        elif "denied" in op:
            self.denied = set(op["denied"])
        elif "next_ids" in op:
            ids = op["next_ids"]
            self._next_account = max(self._next_account, ids["account"])
            self._next_property = max(self._next_property, ids["property"])
            self._next_key_event = max(self._next_key_event, ids["key_event"])
            for kind, n in ids.get("items", {}).items():
                self._next_items[kind] = max(self._next_items.get(kind, 0), n)


def _account_json(a: AccountRecord) -> dict[str, str]:
    return {"id": a.id, "display_name": a.display_name, "create_time": a.create_time}


def _write_atomically(path: Path, text: str) -> None:
    """Write `path` through a temp file, fsync and os.replace: never half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    """Make a new or renamed entry in `directory` durable (where the platform allows it)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
