"""Goal machinery in GA: data streams, event create rules and audiences (Admin API v1alpha).

Read into the spec-side model (`EventRule`, `SessionRule`) so that `plan.diff` compares like
with like, and written back from it. A rule or audience ga-sync cannot express as a spec goal
(a negated condition, a `GREATER_THAN`, parameter mutations, another audience filter...)
normalizes to `Unexpressible`, which never equals a spec form (so the plan replaces it) but
still shows as readable JSON in the plan.

GA's reference: https://developers.google.com/analytics/devguides/config/admin/v1/rest/v1alpha/properties.dataStreams.eventCreateRules
and .../v1alpha/properties.audiences. The shapes ga-sync writes are in `rule_json` and
`audience_json`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ga_sync.model import (
    AUDIENCE,
    COMPARISON_TYPES,
    EVENT_CREATE_RULE,
    Condition,
    EventRule,
    SessionRule,
)
from ga_sync.redact import excerpt

#: Days a user stays in an audience ga-sync makes (GA's membershipDurationDays; immutable).
MEMBERSHIP_DAYS = 30
#: The audience trigger's log condition: log the event again when membership renews (at most
#: once a day), so a returning visitor's qualifying session counts again.
LOG_CONDITION = "AUDIENCE_MEMBERSHIP_RENEWED"
SESSION_SCOPE = "AUDIENCE_FILTER_SCOPE_WITHIN_SAME_SESSION"
#: The audience metric a `min_seconds` goal filters on. Whether GA's audience filters offer a
#: session-duration condition is uncertain (../shared/GA4_FACTS.md): this is ga-sync's choice.
SESSION_SECONDS_FIELD = "sessionDuration"
#: The update mask of a rule patch: every field ga-sync writes (rules are fully mutable).
RULE_UPDATE_MASK = ("destination_event", "event_conditions", "source_copy_parameters",
                    "parameter_mutations")
WEB = "WEB_DATA_STREAM"
_CASE_INSENSITIVE = "_CASE_INSENSITIVE"
_OPS = {v: k for k, v in COMPARISON_TYPES.items()}  # "CONTAINS" -> "contains"


# --------------------------------------------------------------------------- the model

@dataclass(frozen=True)
class Stream:
    """A data stream: `name` "properties/1/dataStreams/2"; rules are made only on web ones."""

    name: str
    web: bool
    display_name: str = ""
    kind: str = WEB


@dataclass(frozen=True)
class Unexpressible:
    """A rule or audience no spec goal can say. Never equal to an `EventRule` / `SessionRule`.

    `text` is its readable form as JSON text (kept as text so the value stays hashable):
    what ga-sync can read of it, and under `"other"` what a spec cannot express.
    """

    kind: str  # EVENT_CREATE_RULE or AUDIENCE
    text: str

    def to_json(self) -> dict:
        return json.loads(self.text)

    @property
    def other(self) -> str:
        return str(self.to_json().get("other", ""))


@dataclass(frozen=True)
class RuleState:
    """An event create rule as it exists in GA, normalized: it makes `event` on `stream`."""

    name: str
    stream: str
    event: str
    form: EventRule | Unexpressible

    resource = EVENT_CREATE_RULE


@dataclass(frozen=True)
class AudienceState:
    """An audience as it exists in GA, normalized; `event` is its trigger's event ('' when it
    has no event trigger)."""

    name: str
    event: str
    form: SessionRule | Unexpressible
    display_name: str = ""

    resource = AUDIENCE


@dataclass(frozen=True)
class Machinery:
    """A property's data streams, event create rules and audiences."""

    streams: tuple[Stream, ...] = ()
    rules: tuple[RuleState, ...] = ()
    audiences: tuple[AudienceState, ...] = ()

    @property
    def web_streams(self) -> tuple[Stream, ...]:
        return tuple(s for s in self.streams if s.web)


# --------------------------------------------------------------------------- normalizing

def as_json(obj: Any) -> dict:
    """A proto-plus message or its JSON dict -> GA's JSON form (camelCase, enum names)."""
    if isinstance(obj, dict):
        return obj
    return type(obj).to_dict(obj, use_integers_for_enums=False, preserving_proto_field_name=False)


def _enum(value: Any, enum: Any) -> str:
    """An enum value as its name, from a name, a number or a member."""
    name = getattr(value, "name", None)
    if name is not None:
        return str(name)
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return enum(value).name
        except ValueError:
            return str(value)
    return str(value or "")


def _comparison_name(value: Any) -> str:
    from google.analytics.admin_v1alpha.types import MatchingCondition
    return _enum(value, MatchingCondition.ComparisonType)


def normalize_stream(raw: Any) -> Stream:
    """A DataStream (proto or JSON) -> Stream."""
    from google.analytics.admin_v1alpha.types import DataStream
    d = as_json(raw)
    kind = _enum(d.get("type", d.get("type_")), DataStream.DataStreamType)
    return Stream(name=str(d.get("name", "")), web=kind == WEB,
                  display_name=str(d.get("displayName", "")), kind=kind)


def normalize_rule(raw: Any, stream: str = "") -> RuleState:
    """An EventCreateRule (proto or JSON) -> RuleState with an `EventRule` when a spec can say it.

    Expressible: exactly one `event_name EQUALS x` condition (the source event), every other
    condition an (optionally case-insensitive) EQUALS / CONTAINS / STARTS_WITH / ENDS_WITH /
    REGULAR_EXPRESSION on a distinct parameter, none negated, source parameters copied, no
    parameter mutations: what ga-sync itself writes (see `rule_json`).
    """
    d = as_json(raw)
    name = str(d.get("name", ""))
    event = str(d.get("destinationEvent", ""))
    problems: list[str] = []
    sources: list[str] = []
    where: dict[str, Condition] = {}
    shown: dict[str, Any] = {}
    for c in d.get("eventConditions") or []:
        field_ = str(c.get("field", ""))
        comparison = _comparison_name(c.get("comparisonType", 0))
        value = str(c.get("value", ""))
        negated = bool(c.get("negated"))
        base = comparison[:-len(_CASE_INSENSITIVE)] if comparison.endswith(_CASE_INSENSITIVE) \
            else comparison
        op = _OPS.get(base)
        described = f"{field_} {'NOT ' if negated else ''}{comparison} {value!r}"
        if field_ == "event_name" and comparison == "EQUALS" and not negated:
            sources.append(value)
            continue
        if op is None or negated or field_ == "event_name" or field_ in where:
            problems.append(f"the condition {excerpt(described, 120)}")
            shown.setdefault(field_, {comparison.lower(): value, **({"negated": True}
                                                                     if negated else {})})
            continue
        where[field_] = Condition(field_, op, value, comparison.endswith(_CASE_INSENSITIVE))
        shown[field_] = where[field_].to_json()
    if len(sources) != 1:
        problems.append("no event_name EQUALS condition" if not sources else
                        f"{len(sources)} event_name EQUALS conditions ({', '.join(sources)})")
    if not d.get("sourceCopyParameters"):
        problems.append("source parameters not copied")
    mutations = d.get("parameterMutations") or []
    if mutations:
        problems.append(f"{len(mutations)} parameter mutation{'s' if len(mutations) != 1 else ''}"
                        " (" + ", ".join(f"{m.get('parameter', '')}="
                                         f"{m.get('parameterValue', '')}" for m in mutations[:5])
                        + ")")
    if not problems:
        return RuleState(name, stream, event, EventRule(sources[0], tuple(where.values())))
    form = {"from": sources[0] if len(sources) == 1 else None, "where": shown,
            "other": "; ".join(problems)}
    return RuleState(name, stream, event, Unexpressible(EVENT_CREATE_RULE,
                                                        json.dumps(form, sort_keys=True)))


def _only(expression: Any, group: str) -> Any:
    """The single expression inside `{group: {filterExpressions: [x]}}`, else None."""
    if not isinstance(expression, dict) or set(expression) != {group}:
        return None
    inner = (expression[group] or {}).get("filterExpressions") or []
    return inner[0] if len(inner) == 1 else None


def _numeric_greater(f: Any, field_name: str) -> int | None:
    """N from `{dimensionOrMetricFilter: {fieldName, numericFilter: GREATER_THAN N}}`."""
    if not isinstance(f, dict) or set(f) != {"dimensionOrMetricFilter"}:
        return None
    dm = f["dimensionOrMetricFilter"] or {}
    if dm.get("fieldName") != field_name or dm.get("atAnyPointInTime") or \
            int(dm.get("inAnyNDayPeriod") or 0):
        return None
    numeric = dm.get("numericFilter") or {}
    from google.analytics.admin_v1alpha.types import AudienceDimensionOrMetricFilter
    op = _enum(numeric.get("operation", 0),
               AudienceDimensionOrMetricFilter.NumericFilter.Operation)
    value = (numeric.get("value") or {})
    if op != "GREATER_THAN" or "int64Value" not in value:
        return None
    try:
        n = int(value["int64Value"])
    except (TypeError, ValueError):
        return None
    return n if n >= 0 else None


def _session_rule(clauses: list[Any]) -> SessionRule | None:
    """The SessionRule of ga-sync's one filter clause (see `audience_json`), else None."""
    if len(clauses) != 1:
        return None
    clause = clauses[0]
    from google.analytics.admin_v1alpha.types import AudienceFilterClause
    if _enum(clause.get("clauseType", 0), AudienceFilterClause.AudienceClauseType) != "INCLUDE":
        return None
    simple = clause.get("simpleFilter")
    if not simple or clause.get("sequenceFilter"):
        return None
    from google.analytics.admin_v1alpha.types import AudienceFilterScope
    if _enum(simple.get("scope", 0), AudienceFilterScope) != SESSION_SCOPE:
        return None
    x = _only(_only(simple.get("filterExpression"), "andGroup"), "orGroup")
    if x is None:
        return None
    seconds = _numeric_greater(x, SESSION_SECONDS_FIELD)
    if seconds is not None:
        return SessionRule(min_seconds=seconds + 1)
    event_filter = x.get("eventFilter") if set(x) == {"eventFilter"} else None
    if not event_filter or event_filter.get("eventName") != "page_view":
        return None
    inner = _only(_only(event_filter.get("eventParameterFilterExpression"), "andGroup"),
                  "orGroup")
    views = _numeric_greater(inner, "eventCount")
    return SessionRule(min_page_views=views + 1) if views is not None else None


def normalize_audience(raw: Any) -> AudienceState:
    """An Audience (proto or JSON) -> AudienceState with a `SessionRule` when it is one ga-sync
    writes: one INCLUDE same-session clause counting page views or session seconds, membership
    of `MEMBERSHIP_DAYS` days, trigger logged on membership renewal. Name and description are
    not compared (renaming an audience in GA is not drift)."""
    from google.analytics.admin_v1alpha.types import AudienceEventTrigger
    d = as_json(raw)
    trigger = d.get("eventTrigger") or {}
    event = str(trigger.get("eventName", "") or "")
    rule = _session_rule(list(d.get("filterClauses") or []))
    problems = []
    if rule is None:
        problems.append(f"filter clauses ga-sync cannot express "
                        f"({len(d.get('filterClauses') or [])} clause"
                        f"{'s' if len(d.get('filterClauses') or []) != 1 else ''})")
    days = int(d.get("membershipDurationDays") or 0)
    if days != MEMBERSHIP_DAYS:
        problems.append(f"membership of {days} days (ga-sync uses {MEMBERSHIP_DAYS})")
    log = _enum(trigger.get("logCondition", 0), AudienceEventTrigger.LogCondition)
    if event and log != LOG_CONDITION:
        problems.append(f"trigger logged on {log} (ga-sync logs on {LOG_CONDITION})")
    name, display = str(d.get("name", "")), str(d.get("displayName", ""))
    if not problems:
        assert rule is not None
        return AudienceState(name, event, rule, display)
    form: dict[str, Any] = {"session": rule.to_json()["session"] if rule else None,
                            "audience": display, "other": "; ".join(problems)}
    return AudienceState(name, event, Unexpressible(AUDIENCE, json.dumps(form, sort_keys=True)),
                         display)


# --------------------------------------------------------------------------- GA's shapes

def rule_json(event: str, rule: EventRule) -> dict:
    """The EventCreateRule ga-sync writes for a `page:`/`from:` goal (GA's JSON)."""
    conditions = [{"field": "event_name", "comparisonType": "EQUALS", "value": rule.source,
                   "negated": False}]
    for c in rule.where:
        conditions.append({"field": c.field,
                           "comparisonType": COMPARISON_TYPES[c.op]
                           + (_CASE_INSENSITIVE if c.ignore_case else ""),
                           "value": c.value, "negated": False})
    return {"destinationEvent": event, "eventConditions": conditions,
            "sourceCopyParameters": True, "parameterMutations": []}


def audience_description(rule: SessionRule) -> str:
    if rule.min_page_views is not None:
        return f"sessions with at least {rule.min_page_views} page views"
    return f"sessions of at least {rule.min_seconds} seconds"


def audience_json(event: str, rule: SessionRule) -> dict:
    """The Audience ga-sync writes for a `session:` goal (GA's JSON): one INCLUDE clause within
    the same session, an andGroup of one orGroup (GA's required top level), trigger on renewal.
    """
    if rule.min_page_views is not None:
        count = {"dimensionOrMetricFilter": {"fieldName": "eventCount", "numericFilter": {
            "operation": "GREATER_THAN", "value": {"int64Value": str(rule.min_page_views - 1)}}}}
        x: dict = {"eventFilter": {"eventName": "page_view", "eventParameterFilterExpression": {
            "andGroup": {"filterExpressions": [{"orGroup": {"filterExpressions": [count]}}]}}}}
    else:
        x = {"dimensionOrMetricFilter": {"fieldName": SESSION_SECONDS_FIELD, "numericFilter": {
            "operation": "GREATER_THAN", "value": {"int64Value": str(int(rule.min_seconds or 0) - 1)}}}}
    return {
        "displayName": f"ga-sync: {event}"[:100],
        "description": f"Goal {event} (ga-sync): {audience_description(rule)}"[:1000],
        "membershipDurationDays": MEMBERSHIP_DAYS,
        "eventTrigger": {"eventName": event, "logCondition": LOG_CONDITION},
        "filterClauses": [{"clauseType": "INCLUDE", "simpleFilter": {
            "scope": SESSION_SCOPE,
            "filterExpression": {"andGroup": {"filterExpressions": [
                {"orGroup": {"filterExpressions": [x]}}]}}}}],
    }


def rule_proto(event: str, rule: EventRule, name: str = "") -> Any:
    from google.analytics.admin_v1alpha.types import EventCreateRule
    out = EventCreateRule.from_json(json.dumps(rule_json(event, rule)))
    if name:
        out.name = name
    return out


def audience_proto(event: str, rule: SessionRule) -> Any:
    from google.analytics.admin_v1alpha.types import Audience
    return Audience.from_json(json.dumps(audience_json(event, rule)))


# --------------------------------------------------------------------------- reading

def _list(conn: Any, property: str, method: str, parent: str, field_: str, what: str,
          ) -> list[Any]:
    """Every item of a v1alpha list call, all pages, through `clients.call`."""
    from ga_sync.admin import PAGE_SIZE, TIMEOUT, _bad_answer, _pages
    from ga_sync.clients import call
    client = conn.admin_alpha()

    def fetch(token: str) -> Any:
        request = {"parent": parent, "page_size": PAGE_SIZE, "page_token": token}
        return call(lambda: getattr(client, method)(request=request, timeout=TIMEOUT),
                    policy=conn.retry, property=property, what=what)

    out: list[Any] = []
    for page in _pages(fetch, property=property, what=what):
        items = getattr(page, field_, None)
        if items is None:
            raise _bad_answer(property, what, f"no {field_} list")
        out.extend(items)
    return out


def read_streams(conn: Any, property: str) -> list[Stream]:
    """The property's data streams (web and app)."""
    from ga_sync.admin import _bad_answer
    out = [normalize_stream(s) for s in _list(conn, property, "list_data_streams", property,
                                              "data_streams", "list data streams")]
    for s in out:
        if not s.name.startswith(f"{property}/dataStreams/"):
            raise _bad_answer(property, "list data streams",
                              f"a data stream named {excerpt(s.name, 60)!r}, not one of "
                              f"{property}")
    return out


def read_rules(conn: Any, property: str, stream: str) -> list[RuleState]:
    """The event create rules of one data stream, normalized."""
    from ga_sync.admin import _bad_answer
    out = [normalize_rule(r, stream) for r in _list(
        conn, property, "list_event_create_rules", stream, "event_create_rules",
        "list event create rules")]
    for r in out:
        if not r.name.startswith(f"{stream}/eventCreateRules/") or not r.event:
            raise _bad_answer(property, "list event create rules",
                              f"a rule named {excerpt(r.name, 80)!r} with destination event "
                              f"{excerpt(r.event, 40)!r}")
    return out


def read_audiences(conn: Any, property: str) -> list[AudienceState]:
    """The property's audiences, normalized (GA lists no archived ones)."""
    from ga_sync.admin import _bad_answer
    out = [normalize_audience(a) for a in _list(conn, property, "list_audiences", property,
                                                "audiences", "list audiences")]
    for a in out:
        if not a.name.startswith(f"{property}/audiences/"):
            raise _bad_answer(property, "list audiences",
                              f"an audience named {excerpt(a.name, 60)!r}")
    return out


def read_machinery(conn: Any, property: str, *, rules_on: Iterable[str] | None = None
                   ) -> Machinery:
    """Streams, the rules of every stream (`rules_on`: only these streams) and audiences."""
    streams = read_streams(conn, property)
    wanted = None if rules_on is None else set(rules_on)
    rules: list[RuleState] = []
    for s in streams:
        if wanted is None or s.name in wanted:
            rules.extend(read_rules(conn, property, s.name))
    return Machinery(tuple(streams), tuple(rules), tuple(read_audiences(conn, property)))


# --------------------------------------------------------------------------- writing

def rule_sender(conn: Any, stream: str, event: str, rule: EventRule) -> Callable[[], Any]:
    """The one request that creates a rule (send it through `admin.create_once`: GA makes a
    second rule when a create is sent twice)."""
    from ga_sync.admin import TIMEOUT
    client, proto = conn.admin_alpha(), rule_proto(event, rule)
    return lambda: client.create_event_create_rule(parent=stream, event_create_rule=proto,
                                                   timeout=TIMEOUT)


def create_rule(conn: Any, property: str, stream: str, event: str, rule: EventRule) -> Any:
    """Create a rule, never two: a create whose answer was lost is looked for before it is
    sent again. Returns GA's answer, or the equal rule found in place (`RuleState`)."""
    from ga_sync.admin import create_once

    def find() -> RuleState | None:
        return next((r for r in read_rules(conn, property, stream)
                     if r.event == event and r.form == rule), None)

    return create_once(conn, property, f"create event create rule {event} on {stream}",
                       rule_sender(conn, stream, event, rule), find)[1]


def update_rule(conn: Any, property: str, name: str, event: str, rule: EventRule) -> Any:
    from google.protobuf.field_mask_pb2 import FieldMask

    from ga_sync.admin import TIMEOUT
    from ga_sync.clients import call
    client, proto = conn.admin_alpha(), rule_proto(event, rule, name)
    mask = FieldMask(paths=list(RULE_UPDATE_MASK))
    return call(lambda: client.update_event_create_rule(event_create_rule=proto,
                                                        update_mask=mask, timeout=TIMEOUT),
                policy=conn.retry, property=property,
                what=f"update event create rule {event} ({name})", write=True)


def delete_rule(conn: Any, property: str, name: str, event: str) -> None:
    from ga_sync.admin import TIMEOUT
    from ga_sync.clients import call
    client = conn.admin_alpha()
    call(lambda: client.delete_event_create_rule(name=name, timeout=TIMEOUT),
         policy=conn.retry, property=property,
         what=f"delete event create rule {event} ({name})", write=True)


def audience_sender(conn: Any, property: str, event: str, rule: SessionRule
                    ) -> Callable[[], Any]:
    """The one request that creates an audience (send it through `admin.create_once`: GA
    makes a second audience when a create is sent twice)."""
    from ga_sync.admin import TIMEOUT
    client, proto = conn.admin_alpha(), audience_proto(event, rule)
    return lambda: client.create_audience(parent=property, audience=proto, timeout=TIMEOUT)


def create_audience(conn: Any, property: str, event: str, rule: SessionRule) -> Any:
    """Create an audience, never two (see `create_rule`). Returns GA's answer, or the equal
    audience found in place (`AudienceState`)."""
    from ga_sync.admin import create_once

    def find() -> AudienceState | None:
        return next((a for a in read_audiences(conn, property)
                     if a.event == event and a.form == rule), None)

    return create_once(conn, property, f"create audience for {event}",
                       audience_sender(conn, property, event, rule), find)[1]


def archive_audience(conn: Any, property: str, name: str, event: str) -> None:
    """Archive (GA's only way to remove an audience; it is never deleted)."""
    from ga_sync.admin import TIMEOUT
    from ga_sync.clients import call
    client = conn.admin_alpha()
    call(lambda: client.archive_audience(request={"name": name}, timeout=TIMEOUT),
         policy=conn.retry, property=property, what=f"archive audience {event} ({name})",
         write=True)
