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
from ga_sync.model import (AUDIENCE, CREATE, DELETE, EVENT_CREATE_RULE, KEY_EVENT, UPDATE, Change,
                           LastChange, PropertyPlan)
from ga_sync.redact import excerpt

#: The change history's resource types ga-sync asks for: key events appear as CONVERSION_EVENT
#: or (in recent v1alpha) KEY_EVENT, so both.
RESOURCE_TYPES = ("CONVERSION_EVENT", "KEY_EVENT", "EVENT_CREATE_RULE", "AUDIENCE")
#: How far back the search reaches (GA's interface keeps two years).
HISTORY_DAYS = 730
#: A change-history entry is ga-sync's own when the journal holds an applied or reconciled line
#: for the same resource (by server name) and action this close to it, and, when ga-sync's own
#: actor is known (`own_actor`), the entry is that actor's.
JOURNAL_WINDOW = timedelta(minutes=5)
#: Who the sandbox records for a caller that sends no credentials (docs/sandbox.md): ga-sync
#: with anonymous credentials, which only the sandbox accepts.
SANDBOX_ANONYMOUS_ACTOR = "ga-sync@sandbox.invalid"
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
    #: the event a rule or audience made before the change (its destination event or trigger
    #: event), '' when unknown or not a rule or audience: how a deleted one is tied to a goal
    event: str = ""


def canonical(name: str) -> str:
    """Key events and their old name, conversion events, share ids: one name for both."""
    return name.replace("/conversionEvents/", "/keyEvents/")


def _utc(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    text = str(value)
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(timezone.utc)


def format_time(when: datetime) -> str:
    """`2026-11-20T14:03:00Z`: a time to the second (the report's first-seen times)."""
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def change_time(when: datetime) -> str:
    """`2026-11-20T14:03:11.000000Z`: the plan JSON's `last_change.time`, RFC 3339 in UTC with
    microseconds always (GA's change history answers 0, 3, 6 or 9 digits of a second)."""
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def own_actor(credentials: Any) -> str | None:
    """The actor GA's change history names for changes made with `credentials`: a service
    account's e-mail, or for anonymous credentials (the sandbox's only) the one the sandbox
    records. None when it cannot be known without asking (a signed-in user's OAuth token)."""
    if credentials is None:
        return None
    from ga_sync.clients import identity
    who = identity(credentials)
    if who == "anonymous":
        return SANDBOX_ANONYMOUS_ACTOR
    if who.startswith("service-account:"):
        return who.split(":", 1)[1]
    return None


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


def _made_event(change: Any) -> str:
    """The event a rule or audience made before the change (its copy before the change: a
    deleted one has only that), else after it; '' for anything else."""
    for side in (change.resource_before_change, change.resource_after_change):
        if side is None:
            continue
        rule = getattr(side, "event_create_rule", None)
        if rule is not None and getattr(rule, "destination_event", ""):
            return str(rule.destination_event)
        audience = getattr(side, "audience", None)
        trigger = getattr(audience, "event_trigger", None) if audience is not None else None
        if trigger is not None and getattr(trigger, "event_name", ""):
            return str(trigger.event_name)
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
                                            getattr(change.action, "name", str(change.action)),
                                            _made_event(change)))
    return out


@dataclass(frozen=True)
class _Applied:
    property: str
    event: str
    resource: str
    time: datetime
    action: str = ""  # create / update / delete ('' matches any)
    name: str = ""  # the resource's server name ('' in journals of ga-sync before 0.x)


#: The journal's actions a change-history action can be (archiving an audience may show as
#: an update or a deletion).
_JOURNAL_ACTIONS = {"CREATED": {"create"}, "UPDATED": {"update", "delete"},
                    "DELETED": {"delete"}}


def _same_change(applied: _Applied, property: str, event: str, kind: str,
                 entry: HistoryEntry, own: str | None = None) -> bool:
    """Whether a journal line is the change-history entry's change: a matching action within
    `JOURNAL_WINDOW`, on the same resource (by server name), by ga-sync's own actor when that
    is known (`own`: then an entry by anyone else is never ga-sync's). A line without a name
    (journals written before names were) matches by property, event and resource kind."""
    if own is not None and entry.actor != own:
        return False
    actions = _JOURNAL_ACTIONS.get(entry.action)
    if applied.action and actions is not None and applied.action not in actions:
        return False
    if abs(applied.time - entry.time) > JOURNAL_WINDOW:
        return False
    if applied.name:
        return canonical(applied.name) == entry.resource
    return (applied.property == property and applied.event == event
            and applied.resource == kind)


def read_journal(path: Path | str | None) -> list[_Applied]:
    """The applied and reconciled lines of an apply journal; unreadable lines are skipped (a
    journal from an older ga-sync has no `resource`: key events; and no `name`)."""
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
                                str(item.get("action") or ""), str(item.get("name") or "")))
        except (ValueError, KeyError, TypeError, AttributeError):
            continue
    return out


class ChangeHistory:
    """The change history of one run: each account searched at most once, whatever the number
    of properties and threads asking (the first asker searches, the others wait for it); a
    failed search is remembered too, so it is not retried by every property.

    `own` is the actor ga-sync's changes are recorded under (default: `own_actor` of the
    connection's credentials; None when unknown): an entry by anyone else is never ga-sync's.
    """

    def __init__(self, conn: Any, journal: Path | str | None = None, *,
                 own: str | None | bool = True):
        self.conn = conn
        self.journal = journal
        self.own = own_actor(getattr(conn, "credentials", None)) if own is True else own or None
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

    def _ours(self, applied: list[_Applied], property: str, event: str, kind: str,
              entry: HistoryEntry) -> bool:
        return any(_same_change(a, property, event, kind, entry, self.own) for a in applied)

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
            out[name] = LastChange(change_time(entry.time), entry.actor,
                                   self._ours(applied, property, event, kind, entry))
        return out

    def deleted_by_hand(self, property: str, account: str, change: Change) -> LastChange | None:
        """For a create of a rule or audience: the last deletion, not by ga-sync, of a rule (on
        the same stream) or audience of the property making the same event, from the change
        history (matched by the event in the copy before the change); None if there is none."""
        if change.resource == EVENT_CREATE_RULE:
            prefix = f"{change.stream}/eventCreateRules/"
        elif change.resource == AUDIENCE:
            prefix = f"{property}/audiences/"
        else:
            return None
        last = None
        for entry in self.entries(account):
            if (entry.action == "DELETED" and entry.event == change.event
                    and entry.resource.startswith(prefix)
                    and (last is None or entry.time > last.time)):
                last = entry
        if last is None or self._ours(self._journal(), property, change.event, change.resource,
                                      last):
            return None
        return LastChange(change_time(last.time), last.actor, False)

    def attribute(self, plan: PropertyPlan, account: str) -> PropertyPlan:
        """The plan with `last_change` on its updates and deletes the history knows of, and on
        the creates of rules and audiences that re-create one deleted by hand (someone removed
        a goal's machinery in GA: who and when). A history that cannot be read adds a warning
        when there are updates or deletes (the creates' attribution is a courtesy)."""
        touched = [c for c in plan.changes if c.action in (UPDATE, DELETE) and c.name]
        remade = [c for c in plan.changes if c.action == CREATE and c.resource != KEY_EVENT]
        if not touched and not remade:
            return plan
        if not account:
            if not touched:
                return plan
            return replace(plan, warnings=plan.warnings + (
                f"who last changed the {len(touched)} resource"
                f"{'s' if len(touched) != 1 else ''} to update or delete is not known: GA did "
                "not say which account the property is in.",))
        try:
            found = self.last_changes(plan.property, account,
                                      [(c.resource, c.event, c.name or "") for c in touched])
            for c in remade:
                last = self.deleted_by_hand(plan.property, account, c)
                if last is not None:
                    found[_remade_key(c)] = last
        except GaSyncError as err:
            if not touched:
                return plan
            return replace(plan, warnings=plan.warnings + (
                f"who last changed the resources to update or delete is not known: the change "
                f"history of {account} could not be read ({excerpt(str(err), 300)}).",))

        def key(c: Change) -> str:
            return _remade_key(c) if c.action == CREATE else (c.name or "")

        changes = tuple(replace(c, last_change=found[key(c)]) if key(c) in found else c
                        for c in plan.changes)
        return replace(plan, changes=changes)


def _remade_key(change: Change) -> str:
    """A create has no server name yet: its key among `last_changes`' names."""
    return f"create {change.resource} {change.event} {change.stream or ''}"


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
    """Goal events by what happened to them: `removed` (its key event deleted), `created` (its
    key event created), `changed` (anything else: a key event updated, or only its rule or
    audience changed, made or pruned, e.g. a duplicate rule of a goal that stays). A goal
    counts once, however many of its resources changed."""
    by_event: dict[str, set[tuple[str, str]]] = {}
    for c in changes:
        by_event.setdefault(c.event, set()).add((c.resource, c.action))
    out: dict[str, list[str]] = {"created": [], "changed": [], "removed": []}
    for event in sorted(by_event):
        done = by_event[event]
        key = ("removed" if (KEY_EVENT, DELETE) in done else
               "created" if (KEY_EVENT, CREATE) in done else "changed")
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
    """Create one annotation dated `day` in `property`, never two: GA makes a second one when
    a create is sent twice, so a create whose answer was lost is looked for (an equal
    annotation that was not there before) before it is sent again (`admin.create_once`).
    Returns GA's answer, or the `Annotation` found in place."""
    from google.analytics.admin_v1alpha.types import ReportingDataAnnotation
    from google.type import date_pb2

    from ga_sync.admin import TIMEOUT, create_once
    annotation = ReportingDataAnnotation(
        title=title, description=description, color=ANNOTATION_COLOR,
        annotation_date=date_pb2.Date(year=day.year, month=day.month, day=day.day))
    client = conn.admin_alpha()

    def equal() -> list[Annotation]:
        return [a for a in list_annotations(conn, property)
                if (a.title, a.description, a.start, a.end) == (title, description, day, day)]

    before = {a.name for a in equal()}
    return create_once(
        conn, property, "create a reporting data annotation",
        lambda: client.create_reporting_data_annotation(
            parent=property, reporting_data_annotation=annotation, timeout=TIMEOUT),
        lambda: next((a for a in equal() if a.name not in before), None))[1]


def _annotation_failure(err: GaSyncError, property: str) -> str:
    """Why an annotation could not be added, in whole sentences (GA's own message, e.g. "The
    caller does not have permission", ends without a period)."""
    status = getattr(err, "status", None)
    if status == 403:
        said = str(getattr(err.__cause__, "message", "") or "").strip().rstrip(".")
        return (f"no permission to add annotations to {property}"
                + (f" (GA said: {excerpt(said, 200)})" if said else "")
                + ". Give the account the Editor role on the property (GA4 Admin → Property "
                "access management) to have applies annotated.")
    text = excerpt(str(err), 300).strip()
    return text if text.endswith((".", "!", "?", ")")) else text + "."


def annotate_applied(conn: Any, results: Sequence[Any]) -> list[str]:
    """One annotation per property an apply changed, dated today in the property's time zone.
    Its changes are those applied and those reconciled (made by this run, or by an earlier
    attempt whose answer was lost: they are news on the chart too). Returns warnings for the
    properties that could not be annotated; never raises a GaSyncError."""
    from ga_sync.admin import read_property
    from ga_sync.periods import today_in
    warnings = []
    for r in results:
        changes = list(r.applied) + list(r.reconciled)
        if not changes:
            continue
        title, description = annotation_text(changes)
        try:
            info = read_property(conn, r.property)
            annotate(conn, r.property, title, description, today_in(info.time_zone))
        except GaSyncError as err:
            warnings.append(f"{r.property} ({r.client}): the changes were applied, but the "
                            f"annotation '{title}' could not be added: "
                            f"{_annotation_failure(err, r.property)}")
    return warnings


__all__ = ["Annotation", "ChangeHistory", "HistoryEntry", "annotate", "annotate_applied",
           "annotation_text", "canonical", "describe", "goal_actions", "last_changes",
           "list_annotations", "read_journal", "search"]
