"""Who changed what in GA, and ga-sync's own marks there: the Admin API's change history and
reporting data annotations (both v1alpha).

Change history answers "who changed it?" next to a plan's drift: `ChangeHistory` searches each
account at most once per run (`searchChangeHistoryEvents`, all pages, shared by the threads of
a run) and matches its entries to the resources a plan updates or deletes; the apply journal
says which of those changes ga-sync itself made. A change history that cannot be read is a
warning, never a failed plan.

Annotations mark on GA's own charts (and ga-sync's HTML report) the day goals changed:
`annotate_applied` writes one per property an apply changed; `list_annotations` reads them.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from ga_sync.errors import GaSyncError
from ga_sync.model import CREATE, DELETE, KEY_EVENT, UPDATE, Change, LastChange, PropertyPlan
from ga_sync.redact import excerpt

#: The change history's resource types ga-sync asks for: key events appear as CONVERSION_EVENT
#: or (in recent v1alpha) KEY_EVENT, so both.
RESOURCE_TYPES = ("CONVERSION_EVENT", "KEY_EVENT", "EVENT_CREATE_RULE", "AUDIENCE")
#: How far back the search reaches (GA's interface keeps two years).
HISTORY_DAYS = 730
#: A change-history entry is ga-sync's own when the journal holds an applied or reconciled line
#: for the same property, event, resource and action this close to it.
JOURNAL_WINDOW = timedelta(minutes=5)
PAGE_SIZE = 200  # the search's maximum page size
#: The color of ga-sync's annotations (GA requires one: PURPLE, BROWN, BLUE, GREEN, RED, CYAN,
#: ORANGE).
ANNOTATION_COLOR = "BLUE"

#: A resource to look up: (resource kind, event, server name).
Resource = tuple[str, str, str]


@dataclass(frozen=True)
class HistoryEntry:
    """One change to one resource, from the change history."""

    resource: str  # canonical name (conversionEvents/N read as keyEvents/N)
    time: datetime
    actor: str  # e-mail, "system" or "support"
    action: str  # CREATED, UPDATED, DELETED


def canonical(name: str) -> str:
    """Key events and their old name, conversion events, share ids: one name for both."""
    return name.replace("/conversionEvents/", "/keyEvents/")


def _utc(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    text = str(value)
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(timezone.utc)


def format_time(when: datetime) -> str:
    """`2026-11-20T14:03:00Z`: the plan JSON's `last_change.time`."""
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _actor(event: Any) -> str:
    from google.analytics.admin_v1alpha.types import ActorType
    kind = getattr(event.actor_type, "name", None) or ActorType(int(event.actor_type or 0)).name
    if kind == "SYSTEM":
        return "system"
    if kind == "SUPPORT":
        return "support"
    return str(event.user_actor_email or "unknown")


def _resource_name(change: Any) -> str:
    """The name of the resource a ChangeHistoryChange is about: `resource`, else the name held
    in its before/after copy."""
    if change.resource:
        return str(change.resource)
    for side in (change.resource_after_change, change.resource_before_change):
        if side is None:
            continue
        for kind in ("key_event", "conversion_event", "event_create_rule", "audience"):
            inner = getattr(side, kind, None)
            if inner is not None and getattr(inner, "name", ""):
                return str(inner.name)
    return ""


def search(conn: Any, account: str, *, now: datetime | None = None) -> list[HistoryEntry]:
    """Every change to key events, rules and audiences in `account` over `HISTORY_DAYS`, all
    pages (one paged search)."""
    from ga_sync.admin import TIMEOUT, _bad_answer, _pages
    from ga_sync.clients import call
    client = conn.admin_alpha()
    now = now or datetime.now(timezone.utc)
    earliest = now - timedelta(days=HISTORY_DAYS)
    what = f"search the change history of {account}"

    def fetch(token: str) -> Any:
        request = {"account": account, "resource_type": list(RESOURCE_TYPES),
                   "earliest_change_time": earliest, "page_size": PAGE_SIZE,
                   "page_token": token}
        return call(lambda: client.search_change_history_events(request=request,
                                                                timeout=TIMEOUT),
                    policy=conn.retry, what=what)

    out: list[HistoryEntry] = []
    for page in _pages(fetch, what=what):
        for event in page.change_history_events:
            if event.change_time is None:
                raise _bad_answer(None, what, "a change without a time")
            when = _utc(event.change_time)
            actor = _actor(event)
            for change in event.changes:
                name = _resource_name(change)
                if name:
                    out.append(HistoryEntry(canonical(name), when, actor,
                                            getattr(change.action, "name", str(change.action))))
    return out


@dataclass(frozen=True)
class _Applied:
    property: str
    event: str
    resource: str
    time: datetime
    action: str = ""  # create / update / delete ('' matches any)


#: The journal's actions a change-history action can be (archiving an audience may show as
#: an update or a deletion).
_JOURNAL_ACTIONS = {"CREATED": {"create"}, "UPDATED": {"update", "delete"},
                    "DELETED": {"delete"}}


def _same_change(applied: _Applied, property: str, event: str, kind: str,
                 entry: HistoryEntry) -> bool:
    """Whether a journal line is the change-history entry's change: same property, event and
    resource kind, a matching action, within `JOURNAL_WINDOW`."""
    actions = _JOURNAL_ACTIONS.get(entry.action)
    return (applied.property == property and applied.event == event
            and applied.resource == kind
            and (not applied.action or actions is None or applied.action in actions)
            and abs(applied.time - entry.time) <= JOURNAL_WINDOW)


def read_journal(path: Path | str | None) -> list[_Applied]:
    """The applied and reconciled lines of an apply journal; unreadable lines are skipped (a
    journal from an older ga-sync has no `resource`: key events)."""
    if path is None:
        return []
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    out = []
    for line in text.splitlines():
        try:
            item = json.loads(line)
            if item.get("outcome") not in ("applied", "reconciled"):
                continue
            out.append(_Applied(str(item["property"]), str(item["event"]),
                                str(item.get("resource") or KEY_EVENT), _utc(item["time"]),
                                str(item.get("action") or "")))
        except (ValueError, KeyError, TypeError, AttributeError):
            continue
    return out


class ChangeHistory:
    """The change history of one run: each account searched at most once, whatever the number
    of properties and threads asking (the first asker searches, the others wait for it); a
    failed search is remembered too, so it is not retried by every property."""

    def __init__(self, conn: Any, journal: Path | str | None = None):
        self.conn = conn
        self.journal = journal
        self._lock = threading.Lock()
        self._account_locks: dict[str, threading.Lock] = {}
        self._found: dict[str, list[HistoryEntry] | GaSyncError] = {}
        self._applied: list[_Applied] | None = None
        self.searches = 0  # calls made (tests check one per account)

    def entries(self, account: str) -> list[HistoryEntry]:
        """The account's change history; the search's GaSyncError when it failed."""
        with self._lock:
            lock = self._account_locks.setdefault(account, threading.Lock())
        with lock:
            if account not in self._found:
                self.searches += 1
                try:
                    self._found[account] = search(self.conn, account)
                except GaSyncError as err:
                    self._found[account] = err
            found = self._found[account]
        if isinstance(found, GaSyncError):
            raise found
        return found

    def _journal(self) -> list[_Applied]:
        with self._lock:
            if self._applied is None:
                self._applied = read_journal(self.journal)
            return self._applied

    def last_changes(self, property: str, account: str,
                     resources: Iterable[Resource]) -> dict[str, LastChange]:
        """The last change of each resource (by its server name) the history knows of."""
        wanted = {canonical(name): (kind, event, name) for kind, event, name in resources
                  if name}
        if not wanted:
            return {}
        latest: dict[str, HistoryEntry] = {}
        # GA answers newest first: of two changes at the same time, the first listed is later
        for entry in self.entries(account):
            if entry.resource in wanted and (entry.resource not in latest
                                             or entry.time > latest[entry.resource].time):
                latest[entry.resource] = entry
        applied = self._journal() if latest else []
        out = {}
        for key, entry in latest.items():
            kind, event, name = wanted[key]
            ours = any(_same_change(a, property, event, kind, entry) for a in applied)
            out[name] = LastChange(format_time(entry.time), entry.actor, ours)
        return out

    def attribute(self, plan: PropertyPlan, account: str) -> PropertyPlan:
        """The plan with `last_change` on its updates and deletes the history knows of; a
        history that cannot be read adds a warning instead."""
        touched = [c for c in plan.changes if c.action in (UPDATE, DELETE) and c.name]
        if not touched:
            return plan
        if not account:
            return replace(plan, warnings=plan.warnings + (
                f"who last changed the {len(touched)} resource"
                f"{'s' if len(touched) != 1 else ''} to update or delete is not known: GA did "
                "not say which account the property is in.",))
        try:
            found = self.last_changes(plan.property, account,
                                      [(c.resource, c.event, c.name or "") for c in touched])
        except GaSyncError as err:
            return replace(plan, warnings=plan.warnings + (
                f"who last changed the resources to update or delete is not known: the change "
                f"history of {account} could not be read ({excerpt(str(err), 300)}).",))
        changes = tuple(replace(c, last_change=found[c.name]) if c.name in found else c
                        for c in plan.changes)
        return replace(plan, changes=changes)


def last_changes(conn: Any, property: str, account: str, resources: Iterable[Resource], *,
                 journal: Path | str | None = None,
                 history: ChangeHistory | None = None) -> dict[str, LastChange]:
    """Who last changed each resource and when, by server name (for audit findings).

    `resources` are (kind, event, name) tuples: kind `key_event`, `event_create_rule` or
    `audience`, the goal's event, the server name ("properties/1/keyEvents/2"). Pass one
    `history` to many calls of a run to search each account once. Resources the history does
    not mention are missing from the answer. Raises ApiError when the history cannot be read.
    """
    history = history or ChangeHistory(conn, journal)
    return history.last_changes(property, account, resources)


def describe(last: LastChange) -> str:
    """`last changed by dana@x on 2026-11-20 14:03 UTC (not by ga-sync)`."""
    when = _utc(last.time).strftime("%Y-%m-%d %H:%M UTC")
    return (f"last changed by {last.actor} on {when} "
            f"({'by ga-sync' if last.by_ga_sync else 'not by ga-sync'})")


# --------------------------------------------------------------------------- annotations


@dataclass(frozen=True)
class Annotation:
    """A reporting data annotation: a day (or `start`..`end`) with a title."""

    name: str
    title: str
    description: str
    start: date | None
    end: date | None
    color: str = ""
    system_generated: bool = False

    def to_json(self) -> dict:
        return {"name": self.name, "title": self.title, "description": self.description,
                "start": self.start.isoformat() if self.start else None,
                "end": self.end.isoformat() if self.end else None, "color": self.color,
                "system_generated": self.system_generated}


def _date(d: Any) -> date | None:
    if d is None or not getattr(d, "year", 0):
        return None
    return date(int(d.year), int(d.month), int(d.day))


def list_annotations(conn: Any, property: str) -> list[Annotation]:
    """Every reporting data annotation of a property, all pages, ordered by date (for charts:
    ga-sync's own start with 'ga-sync:')."""
    from ga_sync.machinery import _list
    raw = _list(conn, property, "list_reporting_data_annotations", property,
                "reporting_data_annotations", "list reporting data annotations")
    out = []
    for a in raw:
        rng = a.annotation_date_range if "annotation_date_range" in a else None
        start = _date(a.annotation_date) if "annotation_date" in a else None
        end = start
        if rng is not None:
            start, end = _date(rng.start_date), _date(rng.end_date)
        out.append(Annotation(str(a.name), str(a.title), str(a.description), start, end,
                              getattr(a.color, "name", str(a.color or "")),
                              bool(a.system_generated)))
    return sorted(out, key=lambda x: (x.start or date.min, x.name))


def goal_actions(changes: Sequence[Change]) -> dict[str, list[str]]:
    """Goal events by what happened to them: `created` (only creates), `removed` (only
    deletes), `changed` (anything else, e.g. an audience archived and made anew). A goal
    counts once, however many of its resources changed."""
    by_event: dict[str, set[str]] = {}
    for c in changes:
        by_event.setdefault(c.event, set()).add(c.action)
    out: dict[str, list[str]] = {"created": [], "changed": [], "removed": []}
    for event in sorted(by_event):
        actions = by_event[event]
        key = ("created" if actions == {CREATE} else "removed" if actions == {DELETE}
               else "changed")
        out[key].append(event)
    return out


def annotation_text(changes: Sequence[Change]) -> tuple[str, str]:
    """Title and description: "ga-sync: 2 goals created, 1 changed" and the events."""
    groups = {k: v for k, v in goal_actions(changes).items() if v}
    parts = []
    for i, (key, events) in enumerate(groups.items()):
        noun = f"goal{'s' if len(events) != 1 else ''} " if i == 0 else ""
        parts.append(f"{len(events)} {noun}{key}")
    title = "ga-sync: " + ", ".join(parts)
    lines = [f"{key}: {', '.join(events)}" for key, events in groups.items()]
    kinds = sorted({c.resource for c in changes})
    lines.append("resources: " + ", ".join(k.replace("_", " ") for k in kinds))
    return title[:200], "\n".join(lines)[:1000]


def annotate(conn: Any, property: str, title: str, description: str, day: date) -> Any:
    """Create one annotation dated `day` in `property`."""
    from google.analytics.admin_v1alpha.types import ReportingDataAnnotation
    from google.type import date_pb2

    from ga_sync.admin import TIMEOUT
    from ga_sync.clients import call
    annotation = ReportingDataAnnotation(
        title=title, description=description, color=ANNOTATION_COLOR,
        annotation_date=date_pb2.Date(year=day.year, month=day.month, day=day.day))
    client = conn.admin_alpha()
    return call(lambda: client.create_reporting_data_annotation(
        parent=property, reporting_data_annotation=annotation, timeout=TIMEOUT),
        policy=conn.retry, property=property, what="create a reporting data annotation",
        write=True)


def annotate_applied(conn: Any, results: Sequence[Any]) -> list[str]:
    """One annotation per property an apply changed (its applied changes, not those already in
    place), dated today in the property's time zone. Returns warnings for the properties that
    could not be annotated; never raises a GaSyncError."""
    from ga_sync.admin import read_property
    from ga_sync.periods import today_in
    warnings = []
    for r in results:
        if not r.applied:
            continue
        title, description = annotation_text(r.applied)
        try:
            info = read_property(conn, r.property)
            annotate(conn, r.property, title, description, today_in(info.time_zone))
        except GaSyncError as err:
            warnings.append(f"{r.property} ({r.client}): the changes were applied, but the "
                            f"annotation '{title}' could not be added: {excerpt(str(err), 300)}")
    return warnings


__all__ = ["Annotation", "ChangeHistory", "HistoryEntry", "annotate", "annotate_applied",
           "annotation_text", "canonical", "describe", "goal_actions", "last_changes",
           "list_annotations", "read_journal", "search"]
