"""Admin API v1beta routes of the sandbox: account summaries, properties and key events.

Built on the official protobuf types (google.analytics.admin_v1beta.types): request bodies are
parsed strictly with `KeyEvent.from_json`, and answers are serialized by the same types, so the
fields present, their camelCase names and the omission of false/unset values match proto3 JSON
as GA sends it (compare tests/fixtures/real/). Enums come back as numbers when the caller asked
for `$alt=json;enum-encoding=int` (the Python REST transport always does), else as names.

GA rules enforced here, with where they come from:
https://developers.google.com/analytics/devguides/config/admin/v1/rest/v1beta/properties.keyEvents
- countingMethod is required; defaultValue needs a currencyCode (ISO 4217) and a finite,
  non-negative numericValue; eventName is immutable; only countingMethod and defaultValue can
  be patched, and the update mask is required.
- 30 custom key events per standard property, 50 per Analytics 360 property.
- The default `purchase` key event cannot be deleted.
"""

from __future__ import annotations

import base64
import json
import math
import re
from typing import Any

from google.analytics.admin_v1beta import types as admin_types
from google.analytics.admin_v1beta.types import KeyEvent
from google.protobuf import json_format

from ga_sync.sandbox.routing import ApiError, Route, route
from ga_sync.sandbox.state import (
    NOT_FOUND_MESSAGE,
    PropertyRecord,
    SandboxState,
    now_utc,
    parse_rfc3339,
)

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200

EVENT_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,39}$")
RESERVED_PREFIXES = ("firebase_", "google_", "ga_")

# Active ISO 4217 codes (test and "no currency" codes XTS/XXX left out).
ISO_4217 = frozenset("""
AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BOV BRL BSD BTN BWP
BYN BZD CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB
EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY
KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR
MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB
RWF SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD
TWD TZS UAH UGX USD USN UYI UYU UYW UZS VED VES VND VUV WST XAF XAG XAU XBA XBB XBC XBD XCD XCG
XDR XOF XPD XPF XPT XSU XUA YER ZAR ZMW ZWG ZWL
""".split())

MUTABLE_FIELDS = ("counting_method", "default_value")
OUTPUT_ONLY_FIELDS = ("name", "create_time", "deletable", "custom")


# ---- helpers --------------------------------------------------------------------------------

def wants_int_enums(query: dict[str, list[str]]) -> bool:
    """True when the caller asked for `$alt=json;enum-encoding=int`, as the REST transport does."""
    return any("enum-encoding=int" in alt for alt in query.get("$alt", []))


def dump(message: Any, query: dict[str, list[str]]) -> dict[str, Any]:
    """Serialize a proto-plus message the way GA does: proto3 JSON, camelCase, defaults omitted."""
    text = type(message).to_json(
        message, use_integers_for_enums=wants_int_enums(query),
        always_print_fields_with_no_presence=False, indent=None,
    )
    return json.loads(text)


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def invalid_json(message: str, field: str = "") -> ApiError:
    """Google's answer to a body that does not fit the message type, with a BadRequest detail."""
    violation: dict[str, str] = {"description": message}
    if field:
        violation = {"field": field, "description": message}
    return ApiError(400, message, details=[{
        "@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": [violation],
    }])


def _proto_path(path: str) -> str:
    """protobuf's "KeyEvent.defaultValue" -> Google's "key_event.default_value"."""
    parts = path.split(".")
    parts[0] = "key_event"
    return ".".join(_snake(p) for p in parts)


def parse_key_event(body: Any) -> KeyEvent:
    """Parse a request body into a KeyEvent, rejecting unknown fields as Google's front end does."""
    if not isinstance(body, dict):
        raise invalid_json("Invalid JSON payload received. Expected an object for 'key_event'.", "key_event")
    try:
        return KeyEvent.from_json(json.dumps(body), ignore_unknown_fields=False)
    except json_format.ParseError as exc:
        text = str(exc)
        unknown = re.search(r'has no field named "([^"]+)" at "([\w.]+)"', text)
        if unknown:
            where = _proto_path(unknown.group(2))
            raise invalid_json(
                f"Invalid JSON payload received. Unknown name \"{unknown.group(1)}\" at '{where}': "
                "Cannot find field.", where) from None
        enum = re.search(r"Invalid enum value (\S+) for enum type (\S+) at ([\w.]+)\.", text)
        if enum:
            where = _proto_path(enum.group(3))
            raise invalid_json(
                f"Invalid value at '{where}' (type.googleapis.com/{enum.group(2)}), \"{enum.group(1)}\"",
                where) from None
        raise invalid_json(f"Invalid JSON payload received. {text.splitlines()[0]}", "key_event") from None


def _page_size(query: dict[str, list[str]]) -> int:
    raw = (query.get("pageSize") or query.get("page_size") or ["0"])[0] or "0"
    try:
        size = int(raw)
    except ValueError:
        raise ApiError(400, f"Invalid value at 'page_size' (TYPE_INT32), \"{raw}\"") from None
    if size < 0:
        raise ApiError(400, "page_size must not be negative.")
    return min(size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def _encode_token(kind: str, parent: str, offset: int) -> str:
    raw = json.dumps({"k": kind, "p": parent, "o": offset}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _page_offset(query: dict[str, list[str]], kind: str, parent: str) -> int:
    """The offset an opaque pageToken stands for; a token from another list is rejected, as GA does."""
    token = (query.get("pageToken") or query.get("page_token") or [""])[0]
    if not token:
        return 0
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        if data["k"] != kind or data["p"] != parent or not isinstance(data["o"], int) or data["o"] < 0:
            raise ValueError(token)
        return data["o"]
    except (ValueError, KeyError, TypeError):
        raise ApiError(400, "Invalid page token.") from None


def _paginate(items: list[Any], query: dict[str, list[str]], kind: str, parent: str) -> tuple[list[Any], str]:
    size = _page_size(query)
    offset = _page_offset(query, kind, parent)
    page = items[offset:offset + size]
    nxt = _encode_token(kind, parent, offset + size) if offset + size < len(items) else ""
    return page, nxt


def _property(state: SandboxState, pid: str) -> PropertyRecord:
    if not pid.isdigit():
        raise ApiError(400, f"Invalid property name: properties/{pid}. A property id is a number.")
    return state.property(pid)


def _key_event(record: PropertyRecord, kid: str) -> KeyEvent:
    ke = record.key_events.get(kid)
    if ke is None:
        raise ApiError(404, NOT_FOUND_MESSAGE)
    return ke


def _check_event_name(name: str) -> None:
    if not name:
        raise invalid_json("Field 'event_name' is required.", "key_event.event_name")
    if not EVENT_NAME_RE.match(name) or name.lower().startswith(RESERVED_PREFIXES):
        raise invalid_json(
            f"Invalid event name '{name}': an event name must start with a letter, use only letters, "
            "digits and underscores, be at most 40 characters long and not start with a reserved "
            "prefix (firebase_, google_, ga_).", "key_event.event_name")


def _check_counting_method(ke: KeyEvent) -> None:
    value = int(KeyEvent.pb(ke).counting_method)
    if value == 0:
        raise invalid_json("Field 'counting_method' is required: ONCE_PER_EVENT or ONCE_PER_SESSION.",
                           "key_event.counting_method")
    if value not in (1, 2):
        raise invalid_json(f"Invalid value at 'key_event.counting_method', {value}.", "key_event.counting_method")


def _check_default_value(ke: KeyEvent) -> None:
    if not KeyEvent.pb(ke).HasField("default_value"):
        return
    dv = ke.default_value
    if not dv.currency_code:
        raise invalid_json("Field 'default_value.currency_code' is required when a default value is set.",
                           "key_event.default_value.currency_code")
    if dv.currency_code not in ISO_4217:
        raise invalid_json(f"Invalid currency code '{dv.currency_code}': use an ISO 4217 code such as USD.",
                           "key_event.default_value.currency_code")
    if not math.isfinite(dv.numeric_value) or dv.numeric_value < 0:
        raise invalid_json(f"Invalid default value {dv.numeric_value}: it must be a finite number >= 0.",
                           "key_event.default_value.numeric_value")


def _history(state: SandboxState, record: PropertyRecord, action: str, name: str,
             before: KeyEvent | None, after: KeyEvent | None) -> None:
    """Record a key-event change in the change history, with the caller as actor."""
    from ga_sync.sandbox import changes

    def as_json(ke: KeyEvent | None) -> dict | None:
        if ke is None:
            return None
        return json.loads(KeyEvent.to_json(ke, use_integers_for_enums=False, indent=None,
                                           always_print_fields_with_no_presence=False))
    changes.record(state, record, changes.KEY_EVENT, action, name, as_json(before),
                   as_json(after))


# ---- handlers -------------------------------------------------------------------------------

def list_account_summaries(state: SandboxState, match: re.Match[str], query: dict[str, list[str]],
                           body: Any) -> tuple[int, dict]:
    """Accounts with the properties the caller can see (denied ones are left out, as in GA)."""
    with state.lock:
        accounts = sorted(state.accounts.values(), key=lambda a: int(a.id))
        summaries = []
        for acc in accounts:
            props = sorted((p for p in state.properties.values()
                            if p.account == acc.name and p.id not in state.denied), key=lambda p: int(p.id))
            summaries.append(admin_types.AccountSummary(
                name=f"accountSummaries/{acc.id}", account=acc.name, display_name=acc.display_name,
                property_summaries=[admin_types.PropertySummary(
                    property=p.name, display_name=p.display_name,
                    property_type=admin_types.PropertyType.PROPERTY_TYPE_ORDINARY, parent=p.account,
                ) for p in props],
            ))
    page, nxt = _paginate(summaries, query, "accountSummaries", "")
    return 200, dump(admin_types.ListAccountSummariesResponse(account_summaries=page, next_page_token=nxt), query)


def property_message(record: PropertyRecord) -> admin_types.Property:
    """A PropertyRecord as the Admin API's Property message."""
    return admin_types.Property(
        name=record.name, property_type=admin_types.PropertyType.PROPERTY_TYPE_ORDINARY,
        create_time=parse_rfc3339(record.create_time),
        update_time=parse_rfc3339(record.update_time or record.create_time),
        parent=record.account, display_name=record.display_name, time_zone=record.time_zone,
        currency_code=record.currency_code,
        service_level=admin_types.ServiceLevel[record.service_level], account=record.account,
    )


def get_property(state: SandboxState, match: re.Match[str], query: dict[str, list[str]],
                 body: Any) -> tuple[int, dict]:
    with state.lock:
        record = _property(state, match["pid"])
        return 200, dump(property_message(record), query)


def get_data_retention_settings(state: SandboxState, match: re.Match[str], query: dict[str, list[str]],
                                body: Any) -> tuple[int, dict]:
    with state.lock:
        record = _property(state, match["pid"])
        retention = admin_types.DataRetentionSettings.RetentionDuration[record.event_data_retention]
        settings = admin_types.DataRetentionSettings(
            name=f"{record.name}/dataRetentionSettings", event_data_retention=retention,
            user_data_retention=retention, reset_user_data_on_new_activity=True,
        )
        return 200, dump(settings, query)


def list_key_events(state: SandboxState, match: re.Match[str], query: dict[str, list[str]],
                    body: Any) -> tuple[int, dict]:
    """Key events by id (creation order); an empty property answers `{}`, as recorded."""
    with state.lock:
        record = _property(state, match["pid"])
        items = [record.key_events[k] for k in sorted(record.key_events, key=int)]
        page, nxt = _paginate(items, query, "keyEvents", record.name)
        return 200, dump(admin_types.ListKeyEventsResponse(key_events=page, next_page_token=nxt), query)


def get_key_event(state: SandboxState, match: re.Match[str], query: dict[str, list[str]],
                  body: Any) -> tuple[int, dict]:
    with state.lock:
        record = _property(state, match["pid"])
        return 200, dump(_key_event(record, match["kid"]), query)


def create_key_event(state: SandboxState, match: re.Match[str], query: dict[str, list[str]],
                     body: Any) -> tuple[int, dict]:
    """Create a custom key event; output-only fields in the body are ignored, as GA does."""
    incoming = parse_key_event(body)
    with state.lock:
        record = _property(state, match["pid"])
        _check_event_name(incoming.event_name)
        _check_counting_method(incoming)
        _check_default_value(incoming)
        if record.key_event_by_name(incoming.event_name) is not None:
            raise ApiError(409, f"A key event with event name '{incoming.event_name}' already exists "
                                f"in {record.name}.")
        custom = sum(1 for ke in record.key_events.values() if ke.custom)
        if custom >= record.key_event_limit:
            # GA documents the limit but not the error; a quota-like failure that retrying cannot fix
            # is a FAILED_PRECONDITION (HTTP 400) in Google's API design guide, not a 429.
            raise ApiError(400, f"Cannot create key event '{incoming.event_name}': {record.name} already "
                                f"has {custom} custom key events, the limit for this property "
                                f"({record.service_level}) is {record.key_event_limit}.",
                           status="FAILED_PRECONDITION")
        kid = state.new_key_event_id()
        created = KeyEvent(
            name=f"{record.name}/keyEvents/{kid}", event_name=incoming.event_name, create_time=now_utc(),
            deletable=True, custom=True, counting_method=incoming.counting_method,
        )
        if KeyEvent.pb(incoming).HasField("default_value"):
            created.default_value = incoming.default_value
        record.key_events[kid] = created
        _history(state, record, "CREATED", created.name, None, created)
        return 200, dump(created, query)


def _update_paths(query: dict[str, list[str]]) -> list[str]:
    raw = ",".join(query.get("updateMask", []) + query.get("update_mask", []))
    paths = [_snake(p.strip()) for p in raw.split(",") if p.strip()]
    if not paths:
        raise invalid_json("Field 'update_mask' is required: name the fields to change, e.g. "
                           "updateMask=countingMethod,defaultValue.", "update_mask")
    return paths


def update_key_event(state: SandboxState, match: re.Match[str], query: dict[str, list[str]],
                     body: Any) -> tuple[int, dict]:
    """Patch countingMethod and/or defaultValue; every other field is immutable or output only."""
    incoming = parse_key_event(body)
    paths = _update_paths(query)
    with state.lock:
        record = _property(state, match["pid"])
        current = _key_event(record, match["kid"])
        fields: set[str] = set()
        for path in paths:
            if path == "*":
                if incoming.event_name and incoming.event_name != current.event_name:
                    raise invalid_json("Field 'event_name' is immutable.", "key_event.event_name")
                fields.update(MUTABLE_FIELDS)
            elif path in MUTABLE_FIELDS:
                fields.add(path)
            elif path == "event_name":
                raise invalid_json("Field 'event_name' is immutable.", "update_mask")
            elif path in OUTPUT_ONLY_FIELDS:
                raise invalid_json(f"Field '{path}' is output only and cannot be updated.", "update_mask")
            else:
                raise invalid_json(f"Invalid update mask path '{path}': KeyEvent has no such updatable "
                                   "field.", "update_mask")
        updated = KeyEvent.deserialize(KeyEvent.serialize(current))  # a copy: the answer must not alias state
        if "counting_method" in fields:
            _check_counting_method(incoming)
            updated.counting_method = incoming.counting_method
        if "default_value" in fields:
            _check_default_value(incoming)
            if KeyEvent.pb(incoming).HasField("default_value"):
                updated.default_value = incoming.default_value
            else:
                KeyEvent.pb(updated).ClearField("default_value")
        record.key_events[match["kid"]] = updated
        _history(state, record, "UPDATED", updated.name, current, updated)
        return 200, dump(updated, query)


def delete_key_event(state: SandboxState, match: re.Match[str], query: dict[str, list[str]],
                     body: Any) -> tuple[int, dict]:
    """Delete a key event; GA's default ones (deletable: false) refuse."""
    with state.lock:
        record = _property(state, match["pid"])
        ke = _key_event(record, match["kid"])
        if not ke.deletable:
            raise ApiError(400, f"Key event '{ke.event_name}' ({ke.name}) is not deletable.",
                           status="FAILED_PRECONDITION")
        del record.key_events[match["kid"]]
        _history(state, record, "DELETED", ke.name, ke, None)
        return 200, {}


_P = r"/v1(?:alpha|beta)/properties/(?P<pid>[^/:]+)"  # v1alpha serves the same resources
_KE = _P + r"/keyEvents/(?P<kid>\d+)"

ROUTES: list[Route] = [
    route("GET", r"/v1(?:alpha|beta)/accountSummaries", list_account_summaries, api="admin"),
    route("GET", _P, get_property, api="admin"),
    route("GET", _P + r"/dataRetentionSettings", get_data_retention_settings, api="admin"),
    route("GET", _P + r"/keyEvents", list_key_events, api="admin"),
    route("POST", _P + r"/keyEvents", create_key_event, api="admin", write=True),
    route("GET", _KE, get_key_event, api="admin"),
    route("PATCH", _KE, update_key_event, api="admin", write=True),
    route("DELETE", _KE, delete_key_event, api="admin", write=True),
]
