"""Admin API v1alpha goal machinery in the sandbox: data streams, event create rules,
audiences and reporting data annotations.

Requests are parsed strictly with the official v1alpha protobuf types and answered as proto3
JSON through them (enums as numbers when the caller asks `enum-encoding=int`). Resources are
stored as proto3 JSON with enum names (`PropertyRecord.rules`, `.audiences`, `.annotations`),
so a body sent with enum numbers reads back the same as one sent with names. Every change is
recorded in the change history (changes.py) with the caller as actor, and every rule or
audience version in force is noted in `PropertyRecord.versions` with the time it took effect,
which the traffic model reads (derived.py).

GA's rules enforced here, with where they come from:
- EventCreateRule (https://developers.google.com/analytics/devguides/config/admin/v1/rest/v1alpha/properties.dataStreams.eventCreateRules):
  `destinationEvent` required, under 40 characters, letters/digits/underscores, a letter
  first; 1-10 `eventConditions`, each with a `field` (no spaces), a `comparisonType` and a
  `value`; regular expressions only on web streams (and valid RE2); at most 20
  `parameterMutations` (`parameter` under 40 characters, unique, letters/digits/underscores;
  `parameterValue` under 100 characters); `garules.CREATED_EVENTS_PER_PROPERTY` rules per
  property (counted over all its streams: whether GA counts per stream is uncertain).
- Audience (https://developers.google.com/analytics/devguides/config/admin/v1/rest/v1alpha/properties.audiences):
  `displayName`, `description`, `membershipDurationDays` (1-540) and `filterClauses` required;
  `membershipDurationDays`, `filterClauses` and `exclusionDurationMode` immutable;
  `eventTrigger` needs a valid `eventName` and a `logCondition`; audiences are archived, never
  deleted, and archived ones leave the list; 100 audiences and 20 event triggers per property.
- ReportingDataAnnotation: `title`, `color` (not ORANGE, kept for GA's own annotations) and one
  of `annotationDate` / `annotationDateRange` (valid dates, start <= end).
"""

from __future__ import annotations

import datetime as _dt
import json
import re
from typing import Any, Iterable

from google.analytics.admin_v1alpha import types as alpha
from google.protobuf import json_format

from ga_sync import garules, re2check
from ga_sync.sandbox import changes
from ga_sync.sandbox.admin_api import _paginate, _property, _snake, dump, invalid_json
from ga_sync.sandbox.routing import ApiError, Route, route
from ga_sync.sandbox.state import (NOT_FOUND_MESSAGE, PropertyRecord, SandboxState, now_utc,
                                   parse_rfc3339, rfc3339)

WEB = "WEB_DATA_STREAM"
ANDROID = "ANDROID_APP_DATA_STREAM"
IOS = "IOS_APP_DATA_STREAM"
STREAM_TYPES = (WEB, ANDROID, IOS)

NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
PARAMETER_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
REGEX_TYPES = ("REGULAR_EXPRESSION", "REGULAR_EXPRESSION_CASE_INSENSITIVE")
RULE_FIELDS = ("destination_event", "event_conditions", "source_copy_parameters",
               "parameter_mutations")
AUDIENCE_MUTABLE = ("display_name", "description", "event_trigger")
AUDIENCE_IMMUTABLE = ("membership_duration_days", "filter_clauses", "exclusion_duration_mode")
AUDIENCE_OUTPUT = ("name", "create_time", "ads_personalization_enabled")
ANNOTATION_FIELDS = ("title", "description", "color", "annotation_date", "annotation_date_range")


# ---- parsing and storing -----------------------------------------------------------------------

def parse_message(cls: Any, body: Any, root: str) -> Any:
    """Parse a request body into `cls`, refusing unknown fields as Google's front end does."""
    if not isinstance(body, dict):
        raise invalid_json(f"Invalid JSON payload received. Expected an object for '{root}'.",
                           root)
    try:
        return cls.from_json(json.dumps(body), ignore_unknown_fields=False)
    except json_format.ParseError as exc:
        text = str(exc)
        unknown = re.search(r'has no field named "([^"]+)" at "([\w.]+)"', text)
        if unknown:
            where = ".".join([root] + [_snake(p) for p in unknown.group(2).split(".")[1:]]) \
                if root else _snake(unknown.group(2).split(".")[-1])
            raise invalid_json(f"Invalid JSON payload received. Unknown name "
                               f"\"{unknown.group(1)}\" at '{where}': Cannot find field.",
                               where) from None
        raise invalid_json(f"Invalid JSON payload received. {text.splitlines()[0]}",
                           root) from None


def stored(message: Any) -> dict[str, Any]:
    """A message as the state keeps it: proto3 JSON, enum names, defaults left out."""
    return json.loads(type(message).to_json(message, use_integers_for_enums=False, indent=None,
                                            always_print_fields_with_no_presence=False))


def loaded(cls: Any, data: dict[str, Any]) -> Any:
    return cls.from_json(json.dumps(data))


def _paths(query: dict[str, list[str]], required: bool, example: str) -> list[str]:
    raw = ",".join(query.get("updateMask", []) + query.get("update_mask", []))
    paths = [_snake(p.strip()) for p in raw.split(",") if p.strip()]
    if not paths and required:
        raise invalid_json(f"Field 'update_mask' is required: name the fields to change, e.g. "
                           f"updateMask={example}.", "update_mask")
    return paths


# ---- data streams --------------------------------------------------------------------------------

def data_streams(record: PropertyRecord) -> list[tuple[str, dict[str, Any]]]:
    """The property's streams as (id, {"type", "display_name", "create_time", ...}), by id."""
    from ga_sync.sandbox.admin_resources import stream_id
    if record.streams is None:
        return [(stream_id(record.id), {"type": WEB, "display_name": record.display_name,
                                        "create_time": record.create_time})]
    return sorted(record.streams.items(), key=lambda kv: int(kv[0]))


def web_streams(record: PropertyRecord) -> list[str]:
    return [sid for sid, s in data_streams(record) if s["type"] == WEB]


def traffic_stream(record: PropertyRecord) -> str | None:
    """The stream the property's synthetic traffic is collected by: its first web stream."""
    webs = web_streams(record)
    return webs[0] if webs else None


def set_streams(state: SandboxState, pid: str | int, *, web: int = 1, android: int = 0,
                ios: int = 0) -> list[str]:
    """Give a property `web` web streams (0 for none) and app streams; returns their ids.

    The first web stream keeps the id it had (its rules stay valid); the synthetic traffic is
    the first web stream's, so a property without one has no traffic any rule could see.
    """
    from ga_sync.sandbox.admin_resources import stream_id
    with state.lock:
        record = state.properties[str(pid).removeprefix("properties/")]
        base = int(stream_id(record.id))
        streams: dict[str, dict] = {}
        n = 0
        for kind, count in ((WEB, web), (ANDROID, android), (IOS, ios)):
            for i in range(count):
                label = {WEB: "Web", ANDROID: "Android app", IOS: "iOS app"}[kind]
                streams[str(base + n)] = {"type": kind, "create_time": record.create_time,
                                          "display_name": f"{record.display_name} ({label}"
                                                          f"{' ' + str(i + 1) if i else ''})"}
                n += 1
        record.streams = streams
        return list(streams)


def stream_message(record: PropertyRecord, sid: str, info: dict[str, Any]) -> alpha.DataStream:
    from ga_sync.sandbox.admin_resources import measurement_id
    created = parse_rfc3339(info.get("create_time") or record.create_time)
    msg = alpha.DataStream(name=f"{record.name}/dataStreams/{sid}",
                           type_=alpha.DataStream.DataStreamType[info["type"]],
                           display_name=info.get("display_name") or record.display_name,
                           create_time=created, update_time=created)
    host = (record.traffic or {}).get("host") or f"www.example-{record.id}.com"
    app = f"com.example.p{record.id}.s{sid[-3:]}"
    firebase = f"1:{int(sid) % 10**12}:{'android' if info['type'] == ANDROID else 'ios'}:" \
               f"{int(sid):x}"
    if info["type"] == WEB:
        first = web_streams(record)[0] == sid
        msg.web_stream_data = alpha.DataStream.WebStreamData(
            measurement_id=measurement_id(record.id if first else sid),
            default_uri=f"https://{host}")
    elif info["type"] == ANDROID:
        msg.android_app_stream_data = alpha.DataStream.AndroidAppStreamData(
            firebase_app_id=firebase, package_name=app)
    else:
        msg.ios_app_stream_data = alpha.DataStream.IosAppStreamData(
            firebase_app_id=firebase, bundle_id=app)
    return msg


def _stream(record: PropertyRecord, sid: str) -> dict[str, Any]:
    for s, info in data_streams(record):
        if s == sid:
            return info
    raise ApiError(404, NOT_FOUND_MESSAGE)


def list_data_streams(state: SandboxState, match: "re.Match[str]", query: dict[str, list[str]],
                      body: Any) -> tuple[int, dict]:
    with state.lock:
        record = _property(state, match["pid"])
        items = [stream_message(record, sid, info) for sid, info in data_streams(record)]
    page, nxt = _paginate(items, query, "dataStreams", record.name)
    return 200, dump(alpha.ListDataStreamsResponse(data_streams=page, next_page_token=nxt), query)


def get_data_stream(state: SandboxState, match: "re.Match[str]", query: dict[str, list[str]],
                    body: Any) -> tuple[int, dict]:
    with state.lock:
        record = _property(state, match["pid"])
        return 200, dump(stream_message(record, match["sid"], _stream(record, match["sid"])),
                         query)


# ---- versions: what the traffic model reads ---------------------------------------------------

def _open_version(state: SandboxState, record: PropertyRecord, kind: str, rid: str,
                  resource: dict[str, Any], when: _dt.datetime) -> None:
    vid = state.new_item_id("versions")
    record.versions[vid] = {"kind": kind, "id": rid, "from": rfc3339(when), "until": None,
                            "resource": resource}


def _close_version(record: PropertyRecord, kind: str, rid: str, when: _dt.datetime) -> None:
    for vid, v in list(record.versions.items()):
        if v["kind"] == kind and v["id"] == rid and v["until"] is None:
            record.versions[vid] = {**v, "until": rfc3339(when)}


def timeline(record: Any) -> list[dict[str, Any]]:
    """Every rule and audience version the property had: {"kind": "rule"|"audience", "id",
    "from", "until" (RFC 3339, None while in force), "resource" (proto3 JSON)}, by id."""
    versions = getattr(record, "versions", None) or {}
    return [dict(versions[k]) for k in sorted(versions, key=int)]


# ---- regular expressions ---------------------------------------------------------------------

def re2_error(pattern: str) -> str | None:
    """Why `pattern` is not a valid RE2 regular expression, or None when it is (re2check.py:
    RE2 itself when google-re2 is installed, else a check of what RE2 refuses)."""
    return re2check.problem(pattern)


# ---- event create rules ------------------------------------------------------------------------

def _rule(record: PropertyRecord, sid: str, rid: str) -> dict[str, Any]:
    data = record.rules.get(rid)
    if data is None or data["name"].split("/")[3] != sid:
        raise ApiError(404, NOT_FOUND_MESSAGE)
    return data


def check_rule(rule: alpha.EventCreateRule, stream_type: str) -> None:
    """GA's validation of a whole rule (raises the 400 GA answers)."""
    dest = rule.destination_event
    if not dest:
        raise invalid_json("Field 'destination_event' is required.",
                           "event_create_rule.destination_event")
    if len(dest) >= 40 or not NAME_RE.match(dest):
        raise invalid_json(f"Invalid destination_event '{dest}': it must be less than 40 "
                           "characters, consist only of letters, digits or _ (underscores) and "
                           "start with a letter.", "event_create_rule.destination_event")
    conds = list(rule.event_conditions)
    if not 1 <= len(conds) <= garules.RULE_CONDITIONS_MAX:
        raise invalid_json(f"An event create rule needs between 1 and "
                           f"{garules.RULE_CONDITIONS_MAX} event_conditions, not {len(conds)}.",
                           "event_create_rule.event_conditions")
    for i, c in enumerate(conds):
        where = f"event_create_rule.event_conditions[{i}]"
        if not c.field or re.search(r"\s", c.field):
            raise invalid_json(f"Field '{where}.field' is required and cannot contain spaces.",
                               f"{where}.field")
        kind = alpha.MatchingCondition.ComparisonType(int(
            alpha.MatchingCondition.pb(c).comparison_type))
        if kind == 0:
            raise invalid_json(f"Field '{where}.comparison_type' is required.",
                               f"{where}.comparison_type")
        if not c.value:
            raise invalid_json(f"Field '{where}.value' is required.", f"{where}.value")
        if kind.name in REGEX_TYPES:
            if stream_type != WEB:
                raise invalid_json(f"{where}: regular expression comparisons are only supported "
                                   "for web streams.", f"{where}.comparison_type")
            problem = re2_error(c.value)
            if problem:
                raise invalid_json(f"{where}: invalid regular expression '{c.value}': {problem}.",
                                   f"{where}.value")
        if kind.name.startswith(("GREATER", "LESS")):
            try:
                float(c.value)
            except ValueError:
                raise invalid_json(f"{where}: {kind.name} needs a numeric value, not "
                                   f"'{c.value}'.", f"{where}.value") from None
    muts = list(rule.parameter_mutations)
    if len(muts) > garules.RULE_MUTATIONS_MAX:
        raise invalid_json(f"An event create rule may hold at most {garules.RULE_MUTATIONS_MAX} "
                           f"parameter_mutations, not {len(muts)}.",
                           "event_create_rule.parameter_mutations")
    seen: set[str] = set()
    for i, m in enumerate(muts):
        where = f"event_create_rule.parameter_mutations[{i}]"
        if not m.parameter or len(m.parameter) >= garules.PARAMETER_NAME_MAX \
                or not PARAMETER_RE.match(m.parameter):
            raise invalid_json(f"Invalid parameter '{m.parameter}': it must be less than 40 "
                               "characters, consist only of letters, digits or _ and start with "
                               "a letter.", f"{where}.parameter")
        if m.parameter in seen:
            raise invalid_json(f"Parameter '{m.parameter}' is mutated twice: each parameter may "
                               "appear in one mutation only.", f"{where}.parameter")
        seen.add(m.parameter)
        if not m.parameter_value or len(m.parameter_value) >= garules.PARAMETER_VALUE_MAX:
            raise invalid_json(f"Field '{where}.parameter_value' is required and must be less "
                               "than 100 characters.", f"{where}.parameter_value")


def create_rule(state: SandboxState, pid: str, sid: str, body: Any, *, actor: str | None = None,
                when: _dt.datetime | None = None) -> dict[str, Any]:
    """Create an event create rule on stream `sid`; returns it as stored. `when` backdates it
    (scenarios: a rule made by hand weeks ago), `actor` names who made it."""
    incoming = parse_message(alpha.EventCreateRule, body, "event_create_rule")
    at = when or now_utc()
    with state.lock:
        record = _property(state, pid)
        info = _stream(record, sid)
        check_rule(incoming, info["type"])
        if len(record.rules) >= garules.CREATED_EVENTS_PER_PROPERTY:
            raise ApiError(400, f"Cannot create event '{incoming.destination_event}': "
                                f"{record.name} already has {len(record.rules)} created events, "
                                f"the limit is {garules.CREATED_EVENTS_PER_PROPERTY}.",
                           status="FAILED_PRECONDITION")
        rid = state.new_item_id("rules")
        incoming.name = f"{record.name}/dataStreams/{sid}/eventCreateRules/{rid}"
        data = stored(incoming)
        record.rules[rid] = data
        _open_version(state, record, "rule", rid, data, at)
        changes.record(state, record, changes.EVENT_CREATE_RULE, "CREATED", data["name"], None,
                       data, actor=actor, when=at)
        return data


def update_rule(state: SandboxState, pid: str, sid: str, rid: str, body: Any,
                paths: Iterable[str], *, actor: str | None = None,
                when: _dt.datetime | None = None) -> dict[str, Any]:
    """Patch the fields named by `paths` (snake_case, or "*"); every field but `name` may
    change. From `when` on, the traffic model uses the new version."""
    incoming = parse_message(alpha.EventCreateRule, body, "event_create_rule")
    at = when or now_utc()
    fields: set[str] = set()
    for path in paths:
        if path == "*":
            fields.update(RULE_FIELDS)
        elif path in RULE_FIELDS:
            fields.add(path)
        elif path == "name":
            raise invalid_json("Field 'name' is output only and cannot be updated.", "update_mask")
        else:
            raise invalid_json(f"Invalid update mask path '{path}': EventCreateRule has no such "
                               "updatable field.", "update_mask")
    with state.lock:
        record = _property(state, pid)
        info = _stream(record, sid)
        before = _rule(record, sid, rid)
        updated = loaded(alpha.EventCreateRule, before)
        for f in fields:
            setattr(updated, f, getattr(incoming, f))
        check_rule(updated, info["type"])
        data = stored(updated)
        record.rules[rid] = data
        if data != before:
            _close_version(record, "rule", rid, at)
            _open_version(state, record, "rule", rid, data, at)
        changes.record(state, record, changes.EVENT_CREATE_RULE, "UPDATED", data["name"],
                       before, data, actor=actor, when=at)
        return data


def delete_rule(state: SandboxState, pid: str, sid: str, rid: str, *, actor: str | None = None,
                when: _dt.datetime | None = None) -> None:
    at = when or now_utc()
    with state.lock:
        record = _property(state, pid)
        _stream(record, sid)
        before = _rule(record, sid, rid)
        del record.rules[rid]
        _close_version(record, "rule", rid, at)
        changes.record(state, record, changes.EVENT_CREATE_RULE, "DELETED", before["name"],
                       before, None, actor=actor, when=at)


def _list_rules(state: SandboxState, m: "re.Match[str]", q: dict[str, list[str]],
                body: Any) -> tuple[int, dict]:
    with state.lock:
        record = _property(state, m["pid"])
        _stream(record, m["sid"])
        items = [loaded(alpha.EventCreateRule, record.rules[r])
                 for r in sorted(record.rules, key=int)
                 if record.rules[r]["name"].split("/")[3] == m["sid"]]
    page, nxt = _paginate(items, q, "eventCreateRules", f"{record.name}/dataStreams/{m['sid']}")
    return 200, dump(alpha.ListEventCreateRulesResponse(event_create_rules=page,
                                                        next_page_token=nxt), q)


def _get_rule(state: SandboxState, m: "re.Match[str]", q: dict[str, list[str]],
              body: Any) -> tuple[int, dict]:
    with state.lock:
        record = _property(state, m["pid"])
        _stream(record, m["sid"])
        return 200, dump(loaded(alpha.EventCreateRule, _rule(record, m["sid"], m["rid"])), q)


def _create_rule(state: SandboxState, m: "re.Match[str]", q: dict[str, list[str]],
                 body: Any) -> tuple[int, dict]:
    return 200, dump(loaded(alpha.EventCreateRule,
                            create_rule(state, m["pid"], m["sid"], body)), q)


def _update_rule(state: SandboxState, m: "re.Match[str]", q: dict[str, list[str]],
                 body: Any) -> tuple[int, dict]:
    paths = _paths(q, True, "destinationEvent,eventConditions")
    return 200, dump(loaded(alpha.EventCreateRule,
                            update_rule(state, m["pid"], m["sid"], m["rid"], body, paths)), q)


def _delete_rule(state: SandboxState, m: "re.Match[str]", q: dict[str, list[str]],
                 body: Any) -> tuple[int, dict]:
    delete_rule(state, m["pid"], m["sid"], m["rid"])
    return 200, {}


# ---- audiences ---------------------------------------------------------------------------------

def _audience(record: PropertyRecord, aid: str) -> dict[str, Any]:
    data = record.audiences.get(aid)
    if data is None:
        raise ApiError(404, NOT_FOUND_MESSAGE)
    return data


def _check_expression(expr: Any, where: str) -> None:
    kind = type(expr).pb(expr).WhichOneof("expr")
    if kind is None:
        raise invalid_json(f"Field '{where}' needs one of and_group, or_group, not_expression, "
                           "dimension_or_metric_filter or event_filter.", where)
    if kind in ("and_group", "or_group"):
        group = getattr(expr, kind).filter_expressions
        if not group:
            raise invalid_json(f"Field '{where}.{kind}' needs at least one filter expression.",
                               f"{where}.{kind}")
        for i, sub in enumerate(group):
            _check_expression(sub, f"{where}.{kind}.filter_expressions[{i}]")
    elif kind == "not_expression":
        _check_expression(expr.not_expression, f"{where}.not_expression")
    elif kind == "dimension_or_metric_filter":
        f = expr.dimension_or_metric_filter
        if not f.field_name:
            raise invalid_json(f"Field '{where}.dimension_or_metric_filter.field_name' is "
                               "required.", f"{where}.dimension_or_metric_filter.field_name")
        if type(f).pb(f).WhichOneof("one_filter") is None:
            raise invalid_json(f"Field '{where}.dimension_or_metric_filter' needs a string, "
                               "in-list, numeric or between filter.",
                               f"{where}.dimension_or_metric_filter")
    else:
        f = expr.event_filter
        if not f.event_name:
            raise invalid_json(f"Field '{where}.event_filter.event_name' is required.",
                               f"{where}.event_filter.event_name")
        if type(f).pb(f).HasField("event_parameter_filter_expression"):
            _check_expression(f.event_parameter_filter_expression,
                              f"{where}.event_filter.event_parameter_filter_expression")


def _check_trigger(aud: alpha.Audience) -> None:
    if not alpha.Audience.pb(aud).HasField("event_trigger"):
        return
    t = aud.event_trigger
    if not t.event_name or len(t.event_name) > garules.EVENT_NAME_MAX \
            or not NAME_RE.match(t.event_name) \
            or t.event_name.lower().startswith(garules.RESERVED_PREFIXES):
        raise invalid_json(f"Invalid event_trigger.event_name '{t.event_name}': an event name "
                           "starts with a letter, holds only letters, digits and underscores, is "
                           "at most 40 characters long and has no reserved prefix.",
                           "audience.event_trigger.event_name")
    if int(alpha.AudienceEventTrigger.pb(t).log_condition) == 0:
        raise invalid_json("Field 'audience.event_trigger.log_condition' is required: "
                           "AUDIENCE_JOINED or AUDIENCE_MEMBERSHIP_RENEWED.",
                           "audience.event_trigger.log_condition")


def check_audience(aud: alpha.Audience) -> None:
    """GA's validation of a whole audience (raises the 400 GA answers)."""
    if not aud.display_name:
        raise invalid_json("Field 'display_name' is required.", "audience.display_name")
    if not aud.description:
        raise invalid_json("Field 'description' is required.", "audience.description")
    days = aud.membership_duration_days
    if not 1 <= days <= garules.AUDIENCE_MEMBERSHIP_DAYS_MAX:
        raise invalid_json(f"Field 'membership_duration_days' is required and must be between 1 "
                           f"and {garules.AUDIENCE_MEMBERSHIP_DAYS_MAX}, not {days}.",
                           "audience.membership_duration_days")
    if not aud.filter_clauses:
        raise invalid_json("Field 'filter_clauses' is required: at least one clause.",
                           "audience.filter_clauses")
    for i, clause in enumerate(aud.filter_clauses):
        where = f"audience.filter_clauses[{i}]"
        if int(alpha.AudienceFilterClause.pb(clause).clause_type) == 0:
            raise invalid_json(f"Field '{where}.clause_type' is required: INCLUDE or EXCLUDE.",
                               f"{where}.clause_type")
        kind = alpha.AudienceFilterClause.pb(clause).WhichOneof("filter")
        if kind is None:
            raise invalid_json(f"Field '{where}' needs a simple_filter or a sequence_filter.",
                               where)
        if kind == "simple_filter":
            sf = clause.simple_filter
            if int(type(sf).pb(sf).scope) == 0:
                raise invalid_json(f"Field '{where}.simple_filter.scope' is required.",
                                   f"{where}.simple_filter.scope")
            _check_expression(sf.filter_expression, f"{where}.simple_filter.filter_expression")
        else:
            seq = clause.sequence_filter
            if int(type(seq).pb(seq).scope) == 0:
                raise invalid_json(f"Field '{where}.sequence_filter.scope' is required.",
                                   f"{where}.sequence_filter.scope")
            if not seq.sequence_steps:
                raise invalid_json(f"Field '{where}.sequence_filter.sequence_steps' needs at "
                                   "least one step.", f"{where}.sequence_filter.sequence_steps")
            for j, step in enumerate(seq.sequence_steps):
                _check_expression(step.filter_expression,
                                  f"{where}.sequence_filter.sequence_steps[{j}].filter_expression")
    _check_trigger(aud)


def _active(record: PropertyRecord) -> list[dict[str, Any]]:
    return [a for a in record.audiences.values() if not a.get("archived")]


def _check_trigger_limit(record: PropertyRecord, exclude: str | None = None) -> None:
    triggers = sum(1 for a in _active(record)
                   if a["resource"].get("eventTrigger") and a["resource"]["name"] != exclude)
    if triggers >= garules.AUDIENCE_TRIGGERS_PER_PROPERTY:
        raise ApiError(400, f"{record.name} already has {triggers} audiences with an event "
                            f"trigger, the limit is {garules.AUDIENCE_TRIGGERS_PER_PROPERTY}.",
                       status="FAILED_PRECONDITION")


def create_audience(state: SandboxState, pid: str, body: Any, *, actor: str | None = None,
                    when: _dt.datetime | None = None) -> dict[str, Any]:
    """Create an audience; returns its resource JSON as stored (`createTime` = `when`)."""
    incoming = parse_message(alpha.Audience, body, "audience")
    at = when or now_utc()
    with state.lock:
        record = _property(state, pid)
        check_audience(incoming)
        active = _active(record)
        if len(active) >= garules.AUDIENCES_PER_PROPERTY:
            raise ApiError(400, f"{record.name} already has {len(active)} audiences, the limit "
                                f"is {garules.AUDIENCES_PER_PROPERTY}.",
                           status="FAILED_PRECONDITION")
        if alpha.Audience.pb(incoming).HasField("event_trigger"):
            _check_trigger_limit(record)
        aid = state.new_item_id("audiences")
        incoming.name = f"{record.name}/audiences/{aid}"
        incoming.create_time = at
        incoming.ads_personalization_enabled = True
        data = stored(incoming)
        record.audiences[aid] = {"resource": data, "archived": False}
        _open_version(state, record, "audience", aid, data, at)
        changes.record(state, record, changes.AUDIENCE, "CREATED", data["name"], None, data,
                       actor=actor, when=at)
        return data


def update_audience(state: SandboxState, pid: str, aid: str, body: Any, paths: Iterable[str], *,
                    actor: str | None = None, when: _dt.datetime | None = None) -> dict[str, Any]:
    """Patch displayName, description and/or eventTrigger; naming an immutable field in the
    mask is refused with 400 INVALID_ARGUMENT ("... is immutable"), as GA does."""
    incoming = parse_message(alpha.Audience, body, "audience")
    at = when or now_utc()
    with state.lock:
        record = _property(state, pid)
        entry = _audience(record, aid)
        before = entry["resource"]
        current = loaded(alpha.Audience, before)
        fields: set[str] = set()
        for path in paths:
            if path == "*":
                for f in AUDIENCE_IMMUTABLE:
                    if getattr(incoming, f) != getattr(current, f):
                        raise invalid_json(f"Field '{f}' is immutable.", f"audience.{f}")
                fields.update(AUDIENCE_MUTABLE)
            elif path in AUDIENCE_MUTABLE:
                fields.add(path)
            elif path.split(".")[0] in AUDIENCE_IMMUTABLE:
                raise invalid_json(f"Field '{path.split('.')[0]}' is immutable.", "update_mask")
            elif path in AUDIENCE_OUTPUT:
                raise invalid_json(f"Field '{path}' is output only and cannot be updated.",
                                   "update_mask")
            elif path.startswith("event_trigger."):
                fields.add("event_trigger")
            else:
                raise invalid_json(f"Invalid update mask path '{path}': Audience has no such "
                                   "updatable field.", "update_mask")
        if entry.get("archived"):
            raise ApiError(400, f"Audience {before['name']} is archived and cannot be changed.",
                           status="FAILED_PRECONDITION")
        had_trigger = alpha.Audience.pb(current).HasField("event_trigger")
        for f in fields:
            if f == "event_trigger" and not alpha.Audience.pb(incoming).HasField(f):
                alpha.Audience.pb(current).ClearField(f)
            else:
                setattr(current, f, getattr(incoming, f))
        check_audience(current)
        if not had_trigger and alpha.Audience.pb(current).HasField("event_trigger"):
            _check_trigger_limit(record, exclude=before["name"])
        data = stored(current)
        record.audiences[aid] = {**entry, "resource": data}
        if data.get("eventTrigger") != before.get("eventTrigger"):
            _close_version(record, "audience", aid, at)
            _open_version(state, record, "audience", aid, data, at)
        changes.record(state, record, changes.AUDIENCE, "UPDATED", data["name"], before, data,
                       actor=actor, when=at)
        return data


def archive_audience(state: SandboxState, pid: str, aid: str, *, actor: str | None = None,
                     when: _dt.datetime | None = None) -> None:
    """Archive: the audience leaves the list and stops logging its trigger event; `get` still
    answers it. The change history records the archive as DELETED (GA's wording unverified)."""
    at = when or now_utc()
    with state.lock:
        record = _property(state, pid)
        entry = _audience(record, aid)
        if entry.get("archived"):
            raise ApiError(400, f"Audience {entry['resource']['name']} is already archived.",
                           status="FAILED_PRECONDITION")
        record.audiences[aid] = {**entry, "archived": True, "archive_time": rfc3339(at)}
        _close_version(record, "audience", aid, at)
        changes.record(state, record, changes.AUDIENCE, "DELETED", entry["resource"]["name"],
                       entry["resource"], None, actor=actor, when=at)


def _list_audiences(state: SandboxState, m: "re.Match[str]", q: dict[str, list[str]],
                    body: Any) -> tuple[int, dict]:
    with state.lock:
        record = _property(state, m["pid"])
        items = [loaded(alpha.Audience, record.audiences[a]["resource"])
                 for a in sorted(record.audiences, key=int)
                 if not record.audiences[a].get("archived")]
    page, nxt = _paginate(items, q, "audiences", record.name)
    return 200, dump(alpha.ListAudiencesResponse(audiences=page, next_page_token=nxt), q)


def _get_audience(state: SandboxState, m: "re.Match[str]", q: dict[str, list[str]],
                  body: Any) -> tuple[int, dict]:
    with state.lock:
        record = _property(state, m["pid"])
        return 200, dump(loaded(alpha.Audience, _audience(record, m["aid"])["resource"]), q)


def _create_audience(state: SandboxState, m: "re.Match[str]", q: dict[str, list[str]],
                     body: Any) -> tuple[int, dict]:
    return 200, dump(loaded(alpha.Audience, create_audience(state, m["pid"], body)), q)


def _update_audience(state: SandboxState, m: "re.Match[str]", q: dict[str, list[str]],
                     body: Any) -> tuple[int, dict]:
    paths = _paths(q, True, "displayName,eventTrigger")
    return 200, dump(loaded(alpha.Audience,
                            update_audience(state, m["pid"], m["aid"], body, paths)), q)


def _archive_audience(state: SandboxState, m: "re.Match[str]", q: dict[str, list[str]],
                      body: Any) -> tuple[int, dict]:
    archive_audience(state, m["pid"], m["aid"])
    return 200, {}


# ---- reporting data annotations ------------------------------------------------------------

def _check_date(d: Any, where: str) -> _dt.date:
    try:
        return _dt.date(d.year, d.month, d.day)
    except ValueError:
        raise invalid_json(f"Field '{where}' must be a valid date with year, month and day set, "
                           f"not {d.year}-{d.month}-{d.day}.", where) from None


def check_annotation(a: alpha.ReportingDataAnnotation) -> None:
    if not a.title:
        raise invalid_json("Field 'title' is required.", "reporting_data_annotation.title")
    color = int(alpha.ReportingDataAnnotation.pb(a).color)
    if color == 0:
        raise invalid_json("Field 'color' is required.", "reporting_data_annotation.color")
    if color == alpha.ReportingDataAnnotation.Color.ORANGE:
        raise invalid_json("Color ORANGE is reserved for system-generated annotations.",
                           "reporting_data_annotation.color")
    target = alpha.ReportingDataAnnotation.pb(a).WhichOneof("target")
    if target is None:
        raise invalid_json("One of 'annotation_date' or 'annotation_date_range' is required.",
                           "reporting_data_annotation.annotation_date")
    if target == "annotation_date":
        _check_date(a.annotation_date, "reporting_data_annotation.annotation_date")
    else:
        r = a.annotation_date_range
        start = _check_date(r.start_date, "reporting_data_annotation.annotation_date_range."
                                          "start_date")
        end = _check_date(r.end_date, "reporting_data_annotation.annotation_date_range.end_date")
        if end < start:
            raise invalid_json("annotation_date_range.end_date must not be before its start_date.",
                               "reporting_data_annotation.annotation_date_range.end_date")


def _annotation(record: PropertyRecord, nid: str) -> dict[str, Any]:
    data = record.annotations.get(nid)
    if data is None:
        raise ApiError(404, NOT_FOUND_MESSAGE)
    return data


def create_annotation(state: SandboxState, pid: str, body: Any, *, actor: str | None = None,
                      when: _dt.datetime | None = None) -> dict[str, Any]:
    incoming = parse_message(alpha.ReportingDataAnnotation, body, "reporting_data_annotation")
    at = when or now_utc()
    with state.lock:
        record = _property(state, pid)
        check_annotation(incoming)
        nid = state.new_item_id("annotations")
        incoming.name = f"{record.name}/reportingDataAnnotations/{nid}"
        incoming.system_generated = False
        data = stored(incoming)
        record.annotations[nid] = data
        changes.record(state, record, changes.REPORTING_DATA_ANNOTATION, "CREATED", data["name"],
                       None, data, actor=actor, when=at)
        return data


def update_annotation(state: SandboxState, pid: str, nid: str, body: Any, paths: list[str], *,
                      actor: str | None = None, when: _dt.datetime | None = None) -> dict:
    """Without an update mask every field of the body replaces the stored one (GA: optional)."""
    incoming = parse_message(alpha.ReportingDataAnnotation, body, "reporting_data_annotation")
    at = when or now_utc()
    fields: set[str] = set()
    for path in paths or ["*"]:
        if path == "*":
            fields.update(ANNOTATION_FIELDS)
        elif path in ANNOTATION_FIELDS:
            fields.add(path)
        elif path in ("name", "system_generated"):
            raise invalid_json(f"Field '{path}' cannot be updated.", "update_mask")
        else:
            raise invalid_json(f"Invalid update mask path '{path}': ReportingDataAnnotation has "
                               "no such field.", "update_mask")
    with state.lock:
        record = _property(state, pid)
        before = _annotation(record, nid)
        current = loaded(alpha.ReportingDataAnnotation, before)
        pb_in = alpha.ReportingDataAnnotation.pb(incoming)
        pb_cur = alpha.ReportingDataAnnotation.pb(current)
        for f in fields:
            if f in ("annotation_date", "annotation_date_range"):
                if pb_in.HasField(f):
                    getattr(pb_cur, f).CopyFrom(getattr(pb_in, f))
                elif pb_cur.HasField(f) and pb_in.WhichOneof("target") is None:
                    pb_cur.ClearField(f)
            else:
                setattr(current, f, getattr(incoming, f))
        check_annotation(current)
        data = stored(current)
        record.annotations[nid] = data
        changes.record(state, record, changes.REPORTING_DATA_ANNOTATION, "UPDATED", data["name"],
                       before, data, actor=actor, when=at)
        return data


def delete_annotation(state: SandboxState, pid: str, nid: str, *, actor: str | None = None,
                      when: _dt.datetime | None = None) -> None:
    at = when or now_utc()
    with state.lock:
        record = _property(state, pid)
        before = _annotation(record, nid)
        del record.annotations[nid]
        changes.record(state, record, changes.REPORTING_DATA_ANNOTATION, "DELETED",
                       before["name"], before, None, actor=actor, when=at)


def _list_annotations(state: SandboxState, m: "re.Match[str]", q: dict[str, list[str]],
                      body: Any) -> tuple[int, dict]:
    if (q.get("filter") or [""])[0]:
        raise ApiError(501, "The sandbox does not filter reporting data annotations: list them "
                            "all and filter on your side.")
    with state.lock:
        record = _property(state, m["pid"])
        items = [loaded(alpha.ReportingDataAnnotation, record.annotations[n])
                 for n in sorted(record.annotations, key=int)]
    page, nxt = _paginate(items, q, "reportingDataAnnotations", record.name)
    return 200, dump(alpha.ListReportingDataAnnotationsResponse(
        reporting_data_annotations=page, next_page_token=nxt), q)


def _get_annotation(state: SandboxState, m: "re.Match[str]", q: dict[str, list[str]],
                    body: Any) -> tuple[int, dict]:
    with state.lock:
        record = _property(state, m["pid"])
        return 200, dump(loaded(alpha.ReportingDataAnnotation, _annotation(record, m["nid"])), q)


def _create_annotation(state: SandboxState, m: "re.Match[str]", q: dict[str, list[str]],
                       body: Any) -> tuple[int, dict]:
    return 200, dump(loaded(alpha.ReportingDataAnnotation,
                            create_annotation(state, m["pid"], body)), q)


def _update_annotation(state: SandboxState, m: "re.Match[str]", q: dict[str, list[str]],
                       body: Any) -> tuple[int, dict]:
    data = update_annotation(state, m["pid"], m["nid"], body, _paths(q, False, "title"))
    return 200, dump(loaded(alpha.ReportingDataAnnotation, data), q)


def _delete_annotation(state: SandboxState, m: "re.Match[str]", q: dict[str, list[str]],
                       body: Any) -> tuple[int, dict]:
    delete_annotation(state, m["pid"], m["nid"])
    return 200, {}


_V = r"/v1(?:alpha|beta)"
_A = r"/v1alpha"  # rules, audiences and annotations are v1alpha only
_P = r"/properties/(?P<pid>[^/:]+)"
_S = _P + r"/dataStreams/(?P<sid>\d+)"
_R = _A + _S + r"/eventCreateRules/(?P<rid>\d+)"
_AU = _A + _P + r"/audiences/(?P<aid>\d+)"
_N = _A + _P + r"/reportingDataAnnotations/(?P<nid>\d+)"

ROUTES: list[Route] = [
    route("GET", _V + _P + r"/dataStreams", list_data_streams, api="admin"),
    route("GET", _V + _S, get_data_stream, api="admin"),
    route("GET", _A + _S + r"/eventCreateRules", _list_rules, api="admin"),
    route("POST", _A + _S + r"/eventCreateRules", _create_rule, api="admin", write=True),
    route("GET", _R, _get_rule, api="admin"),
    route("PATCH", _R, _update_rule, api="admin", write=True),
    route("DELETE", _R, _delete_rule, api="admin", write=True),
    route("GET", _A + _P + r"/audiences", _list_audiences, api="admin"),
    route("POST", _A + _P + r"/audiences", _create_audience, api="admin", write=True),
    route("GET", _AU, _get_audience, api="admin"),
    route("PATCH", _AU, _update_audience, api="admin", write=True),
    route("POST", _AU + r":archive", _archive_audience, api="admin", write=True),
    route("GET", _A + _P + r"/reportingDataAnnotations", _list_annotations, api="admin"),
    route("POST", _A + _P + r"/reportingDataAnnotations", _create_annotation, api="admin",
          write=True),
    route("GET", _N, _get_annotation, api="admin"),
    route("PATCH", _N, _update_annotation, api="admin", write=True),
    route("DELETE", _N, _delete_annotation, api="admin", write=True),
]
