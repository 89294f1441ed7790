"""Admin API routes beyond key events: accounts, property lists, data streams, conversionEvents.

Shapes follow the exchanges recorded from the live API (../shared/real_responses/,
tests/fixtures/real/): `GET /v1beta/accounts`, `GET /v1beta/properties?filter=parent:accounts/N`,
`GET .../dataStreams`, and the deprecated `conversionEvents`, which GA still serves from the
same store as key events, with the same ids
(https://developers.google.com/analytics/devguides/config/admin/v1/rest/v1beta/properties.conversionEvents).
Each sandbox property has one web data stream by default, with a measurement id fixed by its
property id (machinery.py serves streams and lets a property have others, or none).
Every route answers on v1alpha too, as GA's does (the official clients default to v1alpha).
"""

from __future__ import annotations

import re
import zlib
from typing import Any

from google.analytics.admin_v1beta import types as admin_types

from ga_sync.sandbox import admin_api
from ga_sync.sandbox.admin_api import _paginate, _property, dump, property_message
from ga_sync.sandbox.routing import ApiError, Route, route
from ga_sync.sandbox.state import NOT_FOUND_MESSAGE, PropertyRecord, SandboxState, parse_rfc3339

_V = r"/v1(?:alpha|beta)"
_P = _V + r"/properties/(?P<pid>[^/:]+)"
_FILTER = re.compile(r"^\s*(parent|ancestor|firebase_project)\s*:\s*(\S+)\s*$")
_MEASUREMENT_CHARS = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZ"


# ---- accounts and properties ---------------------------------------------------------------

def account_message(state: SandboxState, name: str) -> admin_types.Account:
    acc = state.accounts[name]
    created = parse_rfc3339(acc.create_time)
    return admin_types.Account(name=acc.name, create_time=created, update_time=created,
                               display_name=acc.display_name, region_code="US")


def list_accounts(state: SandboxState, match: re.Match[str], query: dict[str, list[str]],
                  body: Any) -> tuple[int, dict]:
    with state.lock:
        names = sorted(state.accounts, key=lambda n: int(n.split("/")[1]))
        accounts = [account_message(state, n) for n in names]
    page, nxt = _paginate(accounts, query, "accounts", "")
    return 200, dump(admin_types.ListAccountsResponse(accounts=page, next_page_token=nxt), query)


def get_account(state: SandboxState, match: re.Match[str], query: dict[str, list[str]],
                body: Any) -> tuple[int, dict]:
    name = f"accounts/{match['aid']}"
    with state.lock:
        if name not in state.accounts:
            raise ApiError(403, "The caller does not have permission")
        return 200, dump(account_message(state, name), query)


def list_properties(state: SandboxState, match: re.Match[str], query: dict[str, list[str]],
                    body: Any) -> tuple[int, dict]:
    """`filter` is required: `parent:accounts/N`, `ancestor:accounts/N` (the same here: the
    sandbox has no sub-properties) or `firebase_project:...` (no sandbox property has one)."""
    text = (query.get("filter") or [""])[0]
    m = _FILTER.match(text)
    if not text:
        raise admin_api.invalid_json("Field 'filter' is required, e.g. filter=parent:accounts/123.",
                                     "filter")
    if m is None or (m.group(1) != "firebase_project"
                     and not re.fullmatch(r"accounts/\d+", m.group(2))):
        raise admin_api.invalid_json(f"Invalid filter '{text}': use parent:accounts/N, "
                                     "ancestor:accounts/N or firebase_project:ID.", "filter")
    with state.lock:
        wanted = [] if m.group(1) == "firebase_project" else sorted(
            (p for p in state.properties.values()
             if p.account == m.group(2) and p.id not in state.denied), key=lambda p: int(p.id))
        props = [property_message(p) for p in wanted]
    page, nxt = _paginate(props, query, "properties", text)
    return 200, dump(admin_types.ListPropertiesResponse(properties=page, next_page_token=nxt), query)


# ---- data streams ------------------------------------------------------------------------------

def stream_id(pid: str) -> str:
    """The id of a property's web stream: 11 digits, like GA's, fixed by the property id."""
    return str(10_000_000_000 + int(pid) % 9_000_000_000)


def measurement_id(pid: str) -> str:
    """`G-` and 10 characters, fixed by the property id."""
    n = zlib.crc32(f"ga-sync-stream-{pid}".encode()) * 2654435761 + int(pid)
    chars = []
    for _ in range(10):
        n, r = divmod(n, len(_MEASUREMENT_CHARS))
        chars.append(_MEASUREMENT_CHARS[r])
    return "G-" + "".join(chars)


# Listing and getting streams: machinery.py (a property may have no web stream, or app streams).


# ---- conversionEvents: key events under their old name ------------------------------------------

def _as_conversion(ke: dict[str, Any]) -> dict[str, Any]:
    """A KeyEvent's JSON as the ConversionEvent GA serves for it (same id, same fields)."""
    out: dict[str, Any] = {}
    for k, v in ke.items():
        if k == "name":
            out[k] = v.replace("/keyEvents/", "/conversionEvents/")
        elif k == "defaultValue":
            out["defaultConversionValue"] = {("value" if kk == "numericValue" else kk): vv
                                             for kk, vv in v.items()}
        else:
            out[k] = v
    return out


def _as_key_event(body: Any) -> Any:
    """A ConversionEvent body as the KeyEvent body the key-event handlers take."""
    if not isinstance(body, dict):
        return body
    out: dict[str, Any] = {}
    for k, v in body.items():
        if k == "defaultConversionValue" and isinstance(v, dict):
            out["defaultValue"] = {("numericValue" if kk == "value" else kk): vv for kk, vv in v.items()}
        elif k in ("defaultValue",):
            raise admin_api.invalid_json(f'Invalid JSON payload received. Unknown name "{k}" at '
                                         "'conversion_event': Cannot find field.", "conversion_event")
        else:
            out[k] = v
    return out


def list_conversion_events(state: SandboxState, match: re.Match[str], query: dict[str, list[str]],
                           body: Any) -> tuple[int, dict]:
    status, listed = admin_api.list_key_events(state, match, query, body)
    out: dict[str, Any] = {}
    if listed.get("keyEvents"):
        out["conversionEvents"] = [_as_conversion(ke) for ke in listed["keyEvents"]]
    if listed.get("nextPageToken"):
        out["nextPageToken"] = listed["nextPageToken"]
    return status, out


def get_conversion_event(state: SandboxState, match: re.Match[str], query: dict[str, list[str]],
                         body: Any) -> tuple[int, dict]:
    status, ke = admin_api.get_key_event(state, match, query, body)
    return status, _as_conversion(ke)


def create_conversion_event(state: SandboxState, match: re.Match[str], query: dict[str, list[str]],
                            body: Any) -> tuple[int, dict]:
    """As recorded, a body with only `eventName` creates a ONCE_PER_EVENT key event."""
    ke = _as_key_event(body)
    if isinstance(ke, dict) and not ke.get("countingMethod"):
        ke["countingMethod"] = "ONCE_PER_EVENT"
    status, created = admin_api.create_key_event(state, match, query, ke)
    return status, _as_conversion(created)


def update_conversion_event(state: SandboxState, match: re.Match[str], query: dict[str, list[str]],
                            body: Any) -> tuple[int, dict]:
    masks = [",".join("default_value" if p.strip() in ("defaultConversionValue", "default_conversion_value")
                      else p for p in m.split(","))
             for m in query.get("updateMask", []) + query.get("update_mask", [])]
    status, updated = admin_api.update_key_event(state, match, {**query, "updateMask": masks,
                                                                "update_mask": []}, _as_key_event(body))
    return status, _as_conversion(updated)


def delete_conversion_event(state: SandboxState, match: re.Match[str], query: dict[str, list[str]],
                            body: Any) -> tuple[int, dict]:
    return admin_api.delete_key_event(state, match, query, body)


_CE = _P + r"/conversionEvents/(?P<kid>\d+)"

ROUTES: list[Route] = [
    route("GET", _V + r"/accounts", list_accounts, api="admin"),
    route("GET", _V + r"/accounts/(?P<aid>\d+)", get_account, api="admin"),
    route("GET", _V + r"/properties", list_properties, api="admin"),
    route("GET", _P + r"/conversionEvents", list_conversion_events, api="admin"),
    route("POST", _P + r"/conversionEvents", create_conversion_event, api="admin", write=True),
    route("GET", _CE, get_conversion_event, api="admin"),
    route("PATCH", _CE, update_conversion_event, api="admin", write=True),
    route("DELETE", _CE, delete_conversion_event, api="admin", write=True),
]
