"""The data every step shares: goals from a spec, key events from GA, and the changes between them.

All frozen dataclasses. Specs and remote state are normalized into the same `KeyEventSettings`
shape so the diff compares like with like (see plan.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import garules
from .redact import excerpt

MACRO = "macro"
MICRO = "micro"
TIERS = (MACRO, MICRO)

ONCE_PER_EVENT = "once_per_event"
ONCE_PER_SESSION = "once_per_session"
COUNTING_METHODS = (ONCE_PER_EVENT, ONCE_PER_SESSION)

SESSIONS = "sessions"
USERS = "users"
RATE_BASES = (SESSIONS, USERS)


#: GA4 property ids are positive int64 numbers.
PROPERTY_ID_MAX = 2 ** 63 - 1
_PROPERTY_ID = re.compile(r"[0-9]{1,40}\Z")  # ASCII only: `１２３` is isdigit() and int()-able


def property_name(value: object) -> str:
    """Normalize `123`, `"123"` or `"properties/123"` to `"properties/123"`.

    Raises ValueError for anything that is not a property id GA could have: only ASCII decimal
    digits (no sign, `_`, `0x` or fullwidth digits), from 1 to 2**63 - 1. Used on spec values
    and on command-line arguments alike.
    """
    if isinstance(value, bool):
        raise ValueError(f"not a numeric GA4 property id: {value!r}")
    if isinstance(value, int):
        number = int(value)
    else:
        text = str(value).strip()
        if text.startswith("properties/"):
            text = text[len("properties/"):]
        if not _PROPERTY_ID.match(text):
            raise ValueError(f"not a numeric GA4 property id: {excerpt(repr(value)[:200])}")
        number = int(text)
    if not 0 < number <= PROPERTY_ID_MAX:
        raise ValueError(f"not a GA4 property id (1 to {PROPERTY_ID_MAX}): "
                         f"{excerpt(repr(value)[:200]) if number < 10 ** 30 else 'a huge number'}")
    return f"properties/{number}"


def property_id(name: str) -> str:
    """`"properties/123"` -> `"123"`."""
    return property_name(name).split("/", 1)[1]


@dataclass(frozen=True)
class Location:
    """Where something was written: file, 1-based line and column."""

    file: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        out = self.file
        if self.line is not None:
            out += f":{self.line}"
            if self.column is not None:
                out += f":{self.column}"
        return out


# --------------------------------------------------------------------------- goal kinds
#: How a goal's event comes about (`Goal.origin`): sent by the site (None), made by GA from
#: another event by an event create rule (`EventRule`; `page:` and `from:` goals), or logged by
#: an audience's event trigger when a session qualifies (`SessionRule`; `session:` goals).
KEY_EVENT = "key_event"
EVENT_CREATE_RULE = "event_create_rule"
AUDIENCE = "audience"
RESOURCES = (KEY_EVENT, EVENT_CREATE_RULE, AUDIENCE)

#: A condition's match operators, spec-side, and GA's comparison types for them.
EQUALS, CONTAINS, STARTS_WITH, ENDS_WITH, REGEX = (
    "equals", "contains", "starts_with", "ends_with", "regex")
MATCH_OPERATORS = (EQUALS, CONTAINS, STARTS_WITH, ENDS_WITH, REGEX)
COMPARISON_TYPES = {EQUALS: "EQUALS", CONTAINS: "CONTAINS", STARTS_WITH: "STARTS_WITH",
                    ENDS_WITH: "ENDS_WITH", REGEX: "REGULAR_EXPRESSION"}
#: The parameter a `page:` goal matches, on `page_view` events.
PAGE_EVENT = "page_view"
PAGE_PARAMETER = "page_location"


@dataclass(frozen=True, order=True)
class Condition:
    """One `where` condition of a rule: parameter `field` matches `value` by `op`."""

    field: str
    op: str
    value: str
    ignore_case: bool = False

    def to_json(self) -> dict:
        """Spec-side form: `{"contains": "/brochure"}`, `"ignore_case": true` only when set."""
        out: dict = {self.op: self.value}
        if self.ignore_case:
            out["ignore_case"] = True
        return out

    def matches(self, actual: object) -> bool:
        """Whether a parameter value matches, as GA matches it (regex: RE2 partial match,
        through `re2check.search`; values compared as strings)."""
        if actual is None:
            return False
        text, want = str(actual), self.value
        if self.op == REGEX:
            from ga_sync.re2check import search
            return search(want, text, self.ignore_case)
        if self.ignore_case:
            text, want = text.casefold(), want.casefold()
        return {EQUALS: text == want, CONTAINS: want in text, STARTS_WITH: text.startswith(want),
                ENDS_WITH: text.endswith(want)}[self.op]


@dataclass(frozen=True)
class EventRule:
    """A `page:` or `from:` goal: GA makes the goal's event from `source` events whose
    parameters meet every condition (an event create rule, copying the source's parameters)."""

    source: str
    where: tuple[Condition, ...] = ()

    kind = EVENT_CREATE_RULE

    def __post_init__(self) -> None:  # conditions compare as a set: GA keeps no order
        object.__setattr__(self, "where", tuple(sorted(self.where)))

    @property
    def page(self) -> Condition | None:
        """The page_location condition when this is a `page:` goal (page_view, that one
        condition), else None."""
        if self.source == PAGE_EVENT and len(self.where) == 1 and \
                self.where[0].field == PAGE_PARAMETER:
            return self.where[0]
        return None

    def to_json(self) -> dict:
        """Spec-side form, the plan JSON's `before`/`after` for a rule."""
        return {"from": self.source, "where": {c.field: c.to_json() for c in self.where}}


@dataclass(frozen=True)
class SessionRule:
    """A `session:` goal (the old duration and pages-per-session goals): exactly one of
    `min_page_views` and `min_seconds`."""

    min_page_views: int | None = None
    min_seconds: int | None = None

    kind = AUDIENCE

    def to_json(self) -> dict:
        inner = ({"min_page_views": self.min_page_views} if self.min_page_views is not None
                 else {"min_seconds": self.min_seconds})
        return {"session": inner}


@dataclass(frozen=True)
class Goal:
    """One macro or micro conversion of a site.

    `value` is the economic value of one conversion in the spec's currency, or None for
    `value: event` (use the event's own `value` parameter; no default value in GA).
    `origin` says how the goal's event comes about: None when the site sends it, an
    `EventRule` (`page:`/`from:`) or a `SessionRule` (`session:`) when GA makes it.
    """

    event: str
    tier: str
    value: float | None
    counting: str = ONCE_PER_EVENT
    category: str | None = None
    description: str | None = None
    location: Location | None = field(default=None, compare=False, repr=False)
    origin: "EventRule | SessionRule | None" = None
    #: The visitor tells the site who they are (account, newsletter, login): from then on a
    #: site can follow the person across sessions and devices to the eventual sale.
    identifies: bool = False

    @property
    def kind(self) -> str:
        """`event`, `page`, `from` or `session`: the spec key that says how the event comes."""
        if self.origin is None:
            return "event"
        if isinstance(self.origin, SessionRule):
            return "session"
        return "page" if self.origin.page is not None else "from"

    @property
    def uses_event_value(self) -> bool:
        return self.value is None


@dataclass(frozen=True)
class Funnel:
    """A journey of 2 to 10 steps (event names, usually goals) whose drop-off the report shows.

    Closed (`open=False`, the default): a visitor counts for step k when the period holds events
    of steps 1..k at non-decreasing times, each within `within` seconds of the previous one
    (None: no limit). Open: the sequence may start at any step up to k (GA's funnel
    exploration, user based).
    """

    name: str
    steps: tuple[str, ...]
    within: int | None = None  # seconds between one step and the next, at most
    open: bool = False
    location: Location | None = field(default=None, compare=False, repr=False)

    def to_json(self) -> dict:
        return {"name": self.name, "steps": list(self.steps), "within": self.within,
                "open": self.open}


@dataclass(frozen=True)
class Spec:
    """One client's goal spec, after `extends` is merged and everything is validated."""

    client: str
    properties: tuple[str, ...]  # normalized "properties/123"
    currency: str
    goals: tuple[Goal, ...]
    rate_basis: str = SESSIONS
    service_level: str | None = None  # "standard" or "analytics_360" when the spec says so
    funnels: tuple[Funnel, ...] = ()
    path: Path | None = field(default=None, compare=False)
    warnings: tuple[str, ...] = field(default=(), compare=False)

    def goal(self, event: str) -> Goal | None:
        for g in self.goals:
            if g.event == event:
                return g
        return None

    def desired(self) -> dict[str, "KeyEventSettings"]:
        """The key events this spec asks for, by event name."""
        return {g.event: KeyEventSettings.from_goal(g, self.currency) for g in self.goals}


@dataclass(frozen=True)
class KeyEventSettings:
    """The mutable part of a key event, the only part the diff looks at.

    `value` and `currency` are both None when there is no default value.
    """

    counting: str
    value: float | None = None
    currency: str | None = None

    @classmethod
    def from_goal(cls, goal: Goal, currency: str) -> "KeyEventSettings":
        if goal.value is None:
            return cls(goal.counting, None, None)
        return cls(goal.counting, float(goal.value), currency.upper())

    def to_json(self) -> dict:
        return {"counting": self.counting, "value": self.value, "currency": self.currency}


@dataclass(frozen=True)
class KeyEventState:
    """A key event as it exists in a GA4 property, normalized."""

    event: str
    settings: KeyEventSettings
    name: str | None = None  # "properties/123/keyEvents/456": server id, never used for matching
    deletable: bool = False
    custom: bool = False
    create_time: str | None = None


@dataclass(frozen=True)
class PropertyInfo:
    """What the Admin API says about a property itself."""

    name: str
    display_name: str = ""
    time_zone: str = "UTC"
    currency: str = "USD"
    service_level: str = garules.GA_STANDARD
    account: str = ""  # "accounts/123", the property's parent (change history is per account)

    @property
    def key_event_limit(self) -> int:
        """GA's custom key-event limit for this property (30, or 50 on Analytics 360)."""
        return garules.key_event_limit(self.service_level)


CREATE = "create"
UPDATE = "update"
DELETE = "delete"
ACTION_ORDER = {DELETE: 0, UPDATE: 1, CREATE: 2}  # free slots before filling them (30-key-event limit)


@dataclass(frozen=True)
class LastChange:
    """Who last changed a resource in GA, and when (the Admin API's change history).

    `actor` is the user's e-mail address, or "system" / "support" for changes GA's systems or
    Google support made; `by_ga_sync` says whether ga-sync's apply journal holds that change.
    """

    time: str
    actor: str
    by_ga_sync: bool = False

    def to_json(self) -> dict:
        return {"time": self.time, "actor": self.actor, "by_ga_sync": self.by_ga_sync}


@dataclass(frozen=True)
class Change:
    """One change to one resource, matched by event name (never by server id).

    `resource` is KEY_EVENT, EVENT_CREATE_RULE or AUDIENCE. `before`/`after` are
    `KeyEventSettings` for a key event, and the spec-side forms `EventRule` / `SessionRule`
    (anything with `to_json()`) for rules and audiences. `stream` names a rule's data stream.
    `last_change` is filled in for drifted updates and deletes when the change history knows.
    """

    action: str
    event: str
    before: Any
    after: Any
    name: str | None = None  # server resource name for update/delete
    resource: str = KEY_EVENT
    stream: str | None = None
    last_change: LastChange | None = field(default=None, compare=False)

    def to_json(self) -> dict:
        out = {
            "action": self.action,
            "event": self.event,
            "before": self.before.to_json() if self.before else None,
            "after": self.after.to_json() if self.after else None,
            "resource": self.resource,
        }
        if self.resource == EVENT_CREATE_RULE:
            out["stream"] = self.stream
        if self.last_change is not None:
            out["last_change"] = self.last_change.to_json()
        return out


@dataclass(frozen=True)
class PropertyPlan:
    """One property's changes, the key events left alone, and what GA would refuse (`warnings`)."""

    property: str
    client: str
    changes: tuple[Change, ...]
    unmanaged: tuple[str, ...] = ()
    protected: tuple[str, ...] = ()
    existing_managed: int = 0  # key events in the property that the spec names (for the safety threshold)
    warnings: tuple[str, ...] = ()

    def to_json(self) -> dict:
        return {
            "property": self.property,
            "client": self.client,
            "changes": [c.to_json() for c in self.changes],
            "unmanaged": list(self.unmanaged),
            "protected": list(self.protected),
            "warnings": list(self.warnings),
        }


@dataclass(frozen=True)
class Failure:
    """A property that could not be worked on, and why, in words for people."""

    property: str
    client: str
    message: str

    def __post_init__(self) -> None:
        # messages that already begin with the property (and client) would read it twice
        # wherever a failure is shown as "property (client): message"
        for head in (f"{self.property} ({self.client}): ", f"{self.property}: "):
            if self.message.startswith(head) and len(self.message) > len(head):
                object.__setattr__(self, "message", self.message[len(head):])
                break

    def to_json(self) -> dict:
        return {"property": self.property, "client": self.client, "message": self.message}


@dataclass(frozen=True)
class Plan:
    """What apply would change, per property; `errors` are the properties that could not be read."""

    properties: tuple[PropertyPlan, ...]
    errors: tuple[Failure, ...] = ()

    @property
    def has_changes(self) -> bool:
        return any(p.changes for p in self.properties)

    def count(self, action: str) -> int:
        return sum(1 for p in self.properties for c in p.changes if c.action == action)

    def to_json(self) -> dict:
        """The plan JSON contract (README): `errors` only when some property was not read."""
        out = {
            "version": 1,
            "properties": [p.to_json() for p in self.properties],
            "summary": {a: self.count(a) for a in (CREATE, UPDATE, DELETE)},
        }
        if self.errors:
            out["errors"] = [e.to_json() for e in self.errors]
        return out

    def to_frame(self):  # -> pandas.DataFrame
        """One row per change: property, client, action, event, then the counting method,
        value and currency before and after (None where there is no before or after, and for
        rules and audiences), then `resource`, `stream` (a rule's data stream) and `form_before`
        / `form_after`, the spec-side form of a rule or audience as JSON text."""
        import json

        import pandas as pd
        columns = ["property", "client", "action", "event", "counting_before", "value_before",
                   "currency_before", "counting_after", "value_after", "currency_after",
                   "resource", "stream", "form_before", "form_after"]
        rows = []
        for p in self.properties:
            for c in p.changes:
                key = c.resource == KEY_EVENT
                b, a = (c.before, c.after) if key else (None, None)
                form = (lambda x: None if key or x is None else
                        json.dumps(x.to_json(), ensure_ascii=False, sort_keys=True))
                rows.append([p.property, p.client, c.action, c.event,
                             b.counting if b else None, b.value if b else None,
                             b.currency if b else None, a.counting if a else None,
                             a.value if a else None, a.currency if a else None,
                             c.resource, c.stream, form(c.before), form(c.after)])
        return pd.DataFrame(rows, columns=columns)
