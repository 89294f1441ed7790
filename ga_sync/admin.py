"""Read a property's key events into the model, and apply a plan to it through the Admin API.

Remote objects are normalized on the way in (enum numbers or names, missing defaults, float
noise) so that `plan.diff` compares like with like. Every write goes through `clients.call`
(retries, error translation) and is journaled before and after.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ga_sync.clients import Connection, call
from ga_sync.errors import ApiError, Cancelled
from ga_sync.model import (
    CREATE,
    DELETE,
    ONCE_PER_EVENT,
    ONCE_PER_SESSION,
    UPDATE,
    Change,
    KeyEventSettings,
    KeyEventState,
    PropertyInfo,
    PropertyPlan,
)
from ga_sync.plan import same_settings

PAGE_SIZE = 200  # the Admin API's maximum page size
TIMEOUT = 30.0  # seconds; the Admin client has no default timeout

_COUNTING_NAMES = {1: ONCE_PER_EVENT, 2: ONCE_PER_SESSION,
                   "ONCE_PER_EVENT": ONCE_PER_EVENT, "ONCE_PER_SESSION": ONCE_PER_SESSION}
_COUNTING_ENUMS = {ONCE_PER_EVENT: 1, ONCE_PER_SESSION: 2}


def counting_from_api(value: Any) -> str:
    """Counting method from an enum member, number or name; unspecified reads as once per event."""
    key: Any = getattr(value, "name", value)
    if isinstance(value, int) and not isinstance(value, bool):
        key = int(value)
    return _COUNTING_NAMES.get(key, ONCE_PER_EVENT)


def normalize_key_event(ke: Any) -> KeyEventState:
    """A proto-plus KeyEvent (or its JSON dict) -> KeyEventState."""
    if isinstance(ke, dict):
        dv = ke.get("defaultValue") or None
        value = dv.get("numericValue") if dv else None
        currency = dv.get("currencyCode") if dv else None
        event, name = ke.get("eventName", ""), ke.get("name")
        counting = counting_from_api(ke.get("countingMethod", 0))
        deletable, custom = bool(ke.get("deletable")), bool(ke.get("custom"))
        create_time = ke.get("createTime")
    else:
        from google.analytics.admin_v1beta.types import KeyEvent
        has_default = KeyEvent.pb(ke).HasField("default_value")
        value = ke.default_value.numeric_value if has_default else None
        currency = ke.default_value.currency_code if has_default else None
        event, name = ke.event_name, ke.name or None
        counting = counting_from_api(ke.counting_method)
        deletable, custom = bool(ke.deletable), bool(ke.custom)
        ct = ke.create_time
        create_time = ct.isoformat() if ct else None
    settings = (KeyEventSettings(counting, float(value), (currency or "").upper() or None)
                if value is not None else KeyEventSettings(counting))
    return KeyEventState(event=event, settings=settings, name=name, deletable=deletable,
                         custom=custom, create_time=create_time)


def _pages(fetch: Callable[[str], Any]) -> Iterator[Any]:
    """Follow nextPageToken until it is empty; `fetch(token)` returns one page."""
    token = ""
    while True:
        page = fetch(token)
        yield page
        token = page.next_page_token
        if not token:
            return


def read_key_events(conn: Connection, property: str) -> list[KeyEventState]:
    """Every key event of a property, all pages, normalized."""
    client = conn.admin()
    out: list[KeyEventState] = []

    def fetch(token: str) -> Any:
        request = {"parent": property, "page_size": PAGE_SIZE, "page_token": token}
        return call(lambda: client.list_key_events(request=request, timeout=TIMEOUT),
                    policy=conn.retry, property=property, what="list key events")

    for page in _pages(fetch):
        out.extend(normalize_key_event(ke) for ke in page.key_events)
    return out


def read_property(conn: Connection, property: str) -> PropertyInfo:
    client = conn.admin()
    p = call(lambda: client.get_property(name=property, timeout=TIMEOUT), policy=conn.retry,
             property=property, what="read the property")
    level = getattr(p.service_level, "name", str(p.service_level))
    return PropertyInfo(name=property, display_name=p.display_name, time_zone=p.time_zone or "UTC",
                        currency=p.currency_code or "USD", service_level=level)


def read_data_retention(conn: Connection, property: str) -> str:
    client = conn.admin()
    r = call(lambda: client.get_data_retention_settings(
        name=f"{property}/dataRetentionSettings", timeout=TIMEOUT), policy=conn.retry,
        property=property, what="read data retention settings")
    return getattr(r.event_data_retention, "name", str(r.event_data_retention))


@dataclass(frozen=True)
class PropertySummary:
    property: str
    display_name: str
    account: str
    account_name: str
    property_type: str


def list_properties(conn: Connection) -> list[PropertySummary]:
    """Every property the credentials can see, from account summaries (all pages)."""
    client = conn.admin()

    def fetch(token: str) -> Any:
        request = {"page_size": PAGE_SIZE, "page_token": token}
        return call(lambda: client.list_account_summaries(request=request, timeout=TIMEOUT),
                    policy=conn.retry, what="list account summaries")

    out = []
    for page in _pages(fetch):
        for acc in page.account_summaries:
            for ps in acc.property_summaries:
                out.append(PropertySummary(
                    property=ps.property, display_name=ps.display_name, account=acc.account,
                    account_name=acc.display_name,
                    property_type=getattr(ps.property_type, "name", str(ps.property_type))))
    return out


# --------------------------------------------------------------------------- apply


class Journal:
    """Append-only JSON lines of every change attempted: one line before, one after.

    Each line is flushed and fsynced, so an interrupted apply leaves a journal that says which
    changes were started and which finished; a rerun plans afresh from GA and finishes the job.
    """

    def __init__(self, path: Path | str | None):
        self.path = Path(path) if path else None
        self._lock = threading.Lock()

    def record(self, property: str, change: Change, outcome: str, detail: str | None = None) -> None:
        if self.path is None:
            return
        line = {
            "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            "property": property,
            "action": change.action,
            "event": change.event,
            "before": change.before.to_json() if change.before else None,
            "after": change.after.to_json() if change.after else None,
            "outcome": outcome,
        }
        if detail:
            line["detail"] = detail
        text = json.dumps(line, sort_keys=False) + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())


@dataclass
class ApplyResult:
    property: str
    client: str
    applied: list[Change] = field(default_factory=list)
    reconciled: list[Change] = field(default_factory=list)  # already so in GA (lost response)
    failed: list[tuple[Change, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed


def _key_event_proto(event: str, settings: KeyEventSettings, name: str | None = None) -> Any:
    from google.analytics.admin_v1beta.types import KeyEvent
    ke = KeyEvent(event_name=event if name is None else "", name=name or "",
                  counting_method=_COUNTING_ENUMS[settings.counting])
    if settings.value is not None:
        ke.default_value = KeyEvent.DefaultValue(numeric_value=float(settings.value),
                                                 currency_code=settings.currency or "")
    return ke


def _is_already_exists(err: ApiError) -> bool:
    return err.status == 409 or (err.status == 400 and "already" in str(err).lower())


def apply_plan(conn: Connection, plan: PropertyPlan, journal: Journal,
               on_change: Callable[[Change, str], None] | None = None) -> ApplyResult:
    """Apply one property's changes in plan order. A failed change does not stop the others.

    A create answered "already exists" (typically our own earlier attempt whose response was
    lost) is checked against the live key event: if it already matches, it counts as done; if
    not, it is updated to match.
    """
    result = ApplyResult(plan.property, plan.client)
    client = conn.admin()
    for change in plan.changes:
        conn.retry.check()  # interrupted: start no further change
        journal.record(plan.property, change, "started")
        try:
            outcome = _apply_one(conn, client, plan.property, change)
        except (Cancelled, KeyboardInterrupt):
            # interrupted mid-change: GA may or may not have it; a rerun plans afresh
            journal.record(plan.property, change, "interrupted")
            raise
        except ApiError as err:
            journal.record(plan.property, change, "failed", str(err))
            result.failed.append((change, str(err)))
            if on_change:
                on_change(change, "failed")
            continue
        journal.record(plan.property, change, outcome)
        (result.reconciled if outcome == "reconciled" else result.applied).append(change)
        if on_change:
            on_change(change, outcome)
    return result


def _apply_one(conn: Connection, client: Any, property: str, change: Change) -> str:
    from google.protobuf.field_mask_pb2 import FieldMask

    if change.action == CREATE:
        assert change.after is not None
        ke = _key_event_proto(change.event, change.after)
        try:
            call(lambda: client.create_key_event(parent=property, key_event=ke, timeout=TIMEOUT),
                 policy=conn.retry, property=property, what=f"create key event {change.event}", write=True)
            return "applied"
        except ApiError as err:
            if not _is_already_exists(err):
                raise
        live = {k.event: k for k in read_key_events(conn, property)}
        existing = live.get(change.event)
        if existing is None:
            raise ApiError(f"GA said key event {change.event} already exists in {property}, "
                           "but it is not in the list of key events. Run plan again.",
                           property=property)
        if same_settings(existing.settings, change.after):
            return "reconciled"
        change = Change(UPDATE, change.event, existing.settings, change.after, name=existing.name)

    if change.action == UPDATE:
        assert change.after is not None and change.name
        ke = _key_event_proto(change.event, change.after, name=change.name)
        mask = FieldMask(paths=["counting_method", "default_value"])
        call(lambda: client.update_key_event(key_event=ke, update_mask=mask, timeout=TIMEOUT),
             policy=conn.retry, property=property, what=f"update key event {change.event}", write=True)
        return "applied"

    if change.action == DELETE:
        assert change.name
        try:
            call(lambda: client.delete_key_event(name=change.name, timeout=TIMEOUT),
                 policy=conn.retry, property=property, what=f"delete key event {change.event}", write=True)
        except ApiError as err:
            if err.status == 404:  # gone already: an earlier attempt whose answer was lost
                return "reconciled"
            raise
        return "applied"
    raise ValueError(f"unknown action {change.action!r}")
