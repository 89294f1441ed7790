"""What the sandbox knows: accounts, properties and their key events, optionally kept in a JSON file.

One `SandboxState` is shared by the HTTP server, the Admin API handlers (admin_api.py) and the
Data API handlers (data_api.py). Everything that mutates it holds `state.lock` (an RLock, so a
handler may call other locked methods). Key events are kept as the official proto-plus
`KeyEvent` type so that what the sandbox answers is serialized exactly like GA's own responses.

The file format is plain JSON (key events in proto3 JSON) and is written atomically (temp file
+ os.replace), so a crash never leaves half a state file behind.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import tempfile
import threading
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
    key_events: dict[str, KeyEvent] = field(default_factory=dict)
    traffic: dict | None = None
    update_time: str = ""

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
            key_events=kes, traffic=data.get("traffic"),
        )


def _traffic_start(traffic: dict | None) -> _dt.datetime | None:
    """Midnight UTC of the first day a traffic profile has data, if it says."""
    start = (traffic or {}).get("start")
    if not start:
        return None
    return _dt.datetime.fromisoformat(str(start)).replace(tzinfo=_dt.timezone.utc)


class SandboxState:
    """All sandbox data, thread-safe, optionally persisted to `path` (loaded back if it exists)."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path: Path | None = Path(path) if path is not None else None
        self.lock = threading.RLock()
        self.accounts: dict[str, AccountRecord] = {}  # keyed by "accounts/N"
        self.properties: dict[str, PropertyRecord] = {}  # keyed by digits
        self.denied: set[str] = set()  # property ids for which every request answers 403
        self._next_account = _FIRST_ACCOUNT_ID
        self._next_property = _FIRST_PROPERTY_ID
        self._next_key_event = _FIRST_KEY_EVENT_ID
        if self.path is not None and self.path.exists():
            self.load()

    # ---- ids -------------------------------------------------------------------------------

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
            self.properties.clear()
            self.denied.clear()

    # ---- persistence -----------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        with self.lock:
            return {
                "version": FORMAT_VERSION,
                "next_ids": {"account": self._next_account, "property": self._next_property,
                             "key_event": self._next_key_event},
                "accounts": [{"id": a.id, "display_name": a.display_name, "create_time": a.create_time}
                             for a in self.accounts.values()],
                "properties": [p.to_json() for p in self.properties.values()],
                "denied": sorted(self.denied),
            }

    def save(self) -> None:
        """Write the state file atomically; does nothing for an in-memory state."""
        if self.path is None:
            return
        with self.lock:
            text = json.dumps(self.to_json(), indent=1, sort_keys=True)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=self.path.name + ".", suffix=".tmp", dir=self.path.parent)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    fh.write(text)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                if os.path.exists(tmp):
                    os.unlink(tmp)
                raise

    def load(self) -> None:
        """Replace the in-memory data with the state file's."""
        assert self.path is not None
        data = json.loads(self.path.read_text(encoding="utf-8"))
        if data.get("version") != FORMAT_VERSION:
            raise ValueError(f"{self.path}: unsupported sandbox state version {data.get('version')!r}")
        with self.lock:
            self.accounts = {f"accounts/{a['id']}": AccountRecord(str(a["id"]), a["display_name"], a["create_time"])
                             for a in data.get("accounts", [])}
            self.properties = {}
            for p in data.get("properties", []):
                record = PropertyRecord.from_json(p)
                self.properties[record.id] = record
            self.denied = set(data.get("denied", []))
            ids = data.get("next_ids", {})
            self._next_account = ids.get("account", _FIRST_ACCOUNT_ID)
            self._next_property = ids.get("property", _FIRST_PROPERTY_ID)
            self._next_key_event = ids.get("key_event", _FIRST_KEY_EVENT_ID)
