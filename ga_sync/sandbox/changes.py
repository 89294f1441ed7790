"""The sandbox's change history: who changed what, when, and `searchChangeHistoryEvents`.

Every change made through the sandbox's Admin API (key events, also under their old name
`conversionEvents`; event create rules; audiences; reporting data annotations) is recorded as
one `ChangeHistoryEvent` with one change, on the property it belongs to (persisted with it, so
it survives restarts). Scenarios record hand-made changes with `record(..., actor=, when=)`.

Who the caller is (GA knows from the OAuth token; the sandbox checks no credentials), in order:

1. the `x-sandbox-actor: <email>` header (the Python clients send it with
   `metadata=[("x-sandbox-actor", "dana@client.example")]`; Node with `otherArgs.headers`);
2. a bearer token `sandbox:<email>` (`Authorization: Bearer sandbox:dana@client.example`, e.g.
   `google.oauth2.credentials.Credentials(token="sandbox:dana@client.example")`);
3. the service account of a self-signed JWT, or of a token the sandbox's `/_sandbox/token`
   issued for a service-account key (its `iss`/`sub` claim);
4. else `ga-sync@sandbox.invalid` (`DEFAULT_ACTOR`): anonymous credentials send nothing.

`actor` `system` or `support` records an event of that actor type with no e-mail, as GA shows
its own and Google support's changes.

Search follows https://developers.google.com/analytics/devguides/config/admin/v1/rest/v1alpha/accounts/searchChangeHistoryEvents:
`property`, `resourceType[]`, `action[]`, `actorEmail[]`, `earliestChangeTime`,
`latestChangeTime` (both inclusive), `pageSize` (50 by default, at most 200) and `pageToken`
(the other fields must not change while paging); newest first.
"""

from __future__ import annotations

import base64
import contextlib
import contextvars
import datetime as _dt
import hashlib
import json
import re
from typing import Any, Iterator, Mapping

from google.analytics.admin_v1alpha import types as alpha

from ga_sync.sandbox.routing import ApiError, Route, route
from ga_sync.sandbox.state import PropertyRecord, SandboxState, now_utc, parse_rfc3339, rfc3339

DEFAULT_ACTOR = "ga-sync@sandbox.invalid"
ACTOR_HEADER = "x-sandbox-actor"
TOKEN_PREFIX = "sandbox:"
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200

# resource type -> the field of ChangeHistoryResource holding it
KEY_EVENT = "KEY_EVENT"
CONVERSION_EVENT = "CONVERSION_EVENT"
EVENT_CREATE_RULE = "EVENT_CREATE_RULE"
AUDIENCE = "AUDIENCE"
REPORTING_DATA_ANNOTATION = "REPORTING_DATA_ANNOTATION"
RESOURCE_FIELDS = {KEY_EVENT: "keyEvent", CONVERSION_EVENT: "conversionEvent",
                   EVENT_CREATE_RULE: "eventCreateRule", AUDIENCE: "audience",
                   REPORTING_DATA_ANNOTATION: "reportingDataAnnotation"}
ACTIONS = ("CREATED", "UPDATED", "DELETED")

_ACTOR: contextvars.ContextVar[str | None] = contextvars.ContextVar("sandbox_actor", default=None)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")


def actor_from_headers(headers: Mapping[str, str], token_actors: Mapping[str, str]) -> str:
    """The caller's e-mail (or `system`/`support`), by the rules in the module docstring."""
    named = (headers.get(ACTOR_HEADER) or "").strip()
    if named:
        return named
    auth = (headers.get("Authorization") or "").strip()
    if auth.startswith("Bearer "):
        token = auth[len("Bearer "):].strip()
        if token.startswith(TOKEN_PREFIX) and token[len(TOKEN_PREFIX):].strip():
            return token[len(TOKEN_PREFIX):].strip()
        if token in token_actors:
            return token_actors[token]
        email = jwt_email(token)
        if email:
            return email
    return DEFAULT_ACTOR


def jwt_email(token: str) -> str | None:
    """The service account e-mail of a JWT (`iss` or `sub`), signature unchecked."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except ValueError:
        return None
    if not isinstance(claims, dict):
        return None
    for key in ("sub", "iss"):
        value = claims.get(key)
        if isinstance(value, str) and _EMAIL.match(value):
            return value
    return None


def current_actor() -> str:
    """Who is making the change being handled now."""
    return _ACTOR.get() or DEFAULT_ACTOR


@contextlib.contextmanager
def acting_as(actor: str | None) -> Iterator[None]:
    """Changes made inside are recorded as `actor`'s (the server wraps each request in it)."""
    token = _ACTOR.set(actor)
    try:
        yield
    finally:
        _ACTOR.reset(token)


def record(state: SandboxState, prop: PropertyRecord, resource_type: str, action: str,
           resource: str, before: dict | None, after: dict | None, *,
           actor: str | None = None, when: _dt.datetime | None = None) -> dict[str, Any]:
    """Record one change event on `prop`: `before`/`after` are the resource's proto3 JSON (or
    None for a create / a delete). Returns the stored event."""
    who = actor or current_actor()
    at = when or now_utc()
    if at.tzinfo is None:
        at = at.replace(tzinfo=_dt.timezone.utc)
    with state.lock:
        cid = state.new_item_id("changes")
        event = {"id": cid, "changeTime": rfc3339(at), "actor": who, "type": resource_type,
                 "action": action, "resource": resource, "before": before, "after": after}
        prop.changes[cid] = event
    return event


# ---- the answer -----------------------------------------------------------------------------

def _key_event_as_conversion(ke: dict[str, Any]) -> dict[str, Any]:
    from ga_sync.sandbox.admin_resources import _as_conversion
    return _as_conversion(ke)


def _typed(event: dict[str, Any], data: dict | None, as_conversion: bool) -> dict | None:
    if data is None:
        return None
    kind = event["type"]
    if kind == KEY_EVENT:
        if as_conversion:
            return {"conversionEvent": _key_event_as_conversion(data)}
        return {"keyEvent": data}
    return {RESOURCE_FIELDS[kind]: data}


def _event_message(event: dict[str, Any], as_conversion: bool) -> dict[str, Any]:
    actor = event["actor"]
    out: dict[str, Any] = {"id": event["id"], "changeTime": event["changeTime"]}
    if actor.lower() in ("system", "support"):
        out["actorType"] = actor.upper()
    else:
        out["actorType"] = "USER"
        out["userActorEmail"] = actor
    resource = event["resource"]
    if event["type"] == KEY_EVENT and as_conversion:
        resource = resource.replace("/keyEvents/", "/conversionEvents/")
    change: dict[str, Any] = {"resource": resource, "action": event["action"]}
    before = _typed(event, event["before"], as_conversion)
    after = _typed(event, event["after"], as_conversion)
    if before is not None:
        change["resourceBeforeChange"] = before
    if after is not None:
        change["resourceAfterChange"] = after
    out["changes"] = [change]
    return out


def _enum_names(values: Any, enum: Any) -> list[str]:
    return [enum(v).name if isinstance(v, int) else str(v) for v in values]


def _token(account: str, fingerprint: str, offset: int) -> str:
    raw = json.dumps({"a": account, "f": fingerprint, "o": offset}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _offset(token: str, account: str, fingerprint: str) -> int:
    if not token:
        return 0
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        if data["a"] != account or not isinstance(data["o"], int) or data["o"] < 0:
            raise ValueError(token)
    except (ValueError, KeyError, TypeError):
        raise ApiError(400, "Invalid page token.") from None
    if data["f"] != fingerprint:
        raise ApiError(400, "The fields of a request that pages with a page token must not "
                            "change: only page_size may differ from the request that returned "
                            "the token.")
    return data["o"]


def search(state: SandboxState, match: "re.Match[str]", query: dict[str, list[str]],
           body: Any) -> tuple[int, dict]:
    """`POST /v1alpha|v1beta/accounts/{a}:searchChangeHistoryEvents`."""
    from ga_sync.sandbox.admin_api import dump
    from ga_sync.sandbox.machinery import parse_message

    beta = match["version"] == "v1beta"
    req = parse_message(alpha.SearchChangeHistoryEventsRequest, body or {}, "")
    account = f"accounts/{match['aid']}"
    types = set(_enum_names(req.resource_type, alpha.ChangeHistoryResourceType))
    actions = set(_enum_names(req.action, alpha.ActionType))
    if "CHANGE_HISTORY_RESOURCE_TYPE_UNSPECIFIED" in types or "ACTION_TYPE_UNSPECIFIED" in actions:
        raise ApiError(400, "resource_type and action must not hold an unspecified value.")
    emails = {e.lower() for e in req.actor_email}
    size = req.page_size
    if size < 0:
        raise ApiError(400, "page_size must not be negative.")
    size = min(size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    pb = alpha.SearchChangeHistoryEventsRequest.pb(req)
    earliest = parse_rfc3339(rfc3339(req.earliest_change_time)) \
        if pb.HasField("earliest_change_time") else None
    latest = parse_rfc3339(rfc3339(req.latest_change_time)) \
        if pb.HasField("latest_change_time") else None
    if earliest and latest and earliest > latest:
        raise ApiError(400, "earliest_change_time must not be after latest_change_time.")
    # Key events answer as `keyEvent` (newer v1alpha) unless the caller asked only for
    # CONVERSION_EVENT; v1beta has no keyEvent, rules, audiences or annotations in its
    # ChangeHistoryResource, so it answers key events as conversionEvent and leaves the rest out.
    as_conversion = beta or (CONVERSION_EVENT in types and KEY_EVENT not in types)
    wanted_types = set(types)
    if CONVERSION_EVENT in types or KEY_EVENT in types:
        wanted_types |= {KEY_EVENT}
    fingerprint = hashlib.sha256(json.dumps(
        [req.property, sorted(types), sorted(actions), sorted(emails), str(earliest), str(latest)]
    ).encode()).hexdigest()[:16]
    with state.lock:
        if account not in state.accounts:
            raise ApiError(403, "The caller does not have permission")
        props = [p for p in state.properties.values()
                 if p.account == account and p.id not in state.denied]
        if req.property:
            pid = req.property.removeprefix("properties/")
            prop = state.properties.get(pid)
            if prop is None or pid in state.denied:
                raise ApiError(403, "The caller does not have permission")
            if prop.account != account:
                raise ApiError(400, f"Property {req.property} is not in {account}.")
            props = [prop]
        events = [e for p in props for e in p.changes.values()]
    picked = []
    for e in events:
        if beta and e["type"] != KEY_EVENT:
            continue
        if wanted_types and e["type"] not in wanted_types:
            continue
        if actions and e["action"] not in actions:
            continue
        if emails and e["actor"].lower() not in emails:
            continue
        t = parse_rfc3339(e["changeTime"])
        if (earliest and t < earliest) or (latest and t > latest):
            continue
        picked.append((t, int(e["id"]), e))
    picked.sort(key=lambda x: (x[0], x[1]), reverse=True)
    offset = _offset(req.page_token, account, fingerprint)
    page = picked[offset:offset + size]
    out: dict[str, Any] = {}
    if page:
        out["changeHistoryEvents"] = [_event_message(e, as_conversion) for _, _, e in page]
    if offset + size < len(picked):
        out["nextPageToken"] = _token(account, fingerprint, offset + size)
    # Serialized through the official type, so enums follow the caller's enum encoding.
    types_module = __import__("google.analytics.admin_v1beta.types", fromlist=["x"]) if beta \
        else alpha
    message = types_module.SearchChangeHistoryEventsResponse.from_json(
        json.dumps(out), ignore_unknown_fields=False)
    return 200, dump(message, query)


ROUTES: list[Route] = [
    route("POST", r"/(?P<version>v1alpha|v1beta)/accounts/(?P<aid>\d+):searchChangeHistoryEvents",
          search, api="admin"),
]
