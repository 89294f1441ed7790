"""The sandbox's Admin API, driven by the official client (REST transport) and by raw HTTP.

Shapes are compared with real GA responses recorded from the live API (tests/fixtures/real/).
"""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from google.analytics.admin_v1beta import AnalyticsAdminServiceClient
from google.analytics.admin_v1beta import types as t
from google.api_core import exceptions as gexc
from google.auth.credentials import AnonymousCredentials
from google.protobuf import field_mask_pb2

from ga_sync.sandbox import admin_api
from ga_sync.sandbox.faults import QuotaLimits, QuotaTracker
from ga_sync.sandbox.routing import route
from ga_sync.sandbox.server import SandboxServer
from ga_sync.sandbox.state import PropertyRecord, SandboxState

REAL = Path(__file__).parent / "fixtures" / "real"
CREATE_TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
ONCE_PER_EVENT = t.KeyEvent.CountingMethod.ONCE_PER_EVENT
ONCE_PER_SESSION = t.KeyEvent.CountingMethod.ONCE_PER_SESSION


def real(name: str) -> dict[str, Any]:
    return json.loads((REAL / name).read_text())["response"]


def client_for(url: str) -> AnalyticsAdminServiceClient:
    return AnalyticsAdminServiceClient(credentials=AnonymousCredentials(), transport="rest",
                                       client_options={"api_endpoint": url})


def mask(*paths: str) -> field_mask_pb2.FieldMask:
    return field_mask_pb2.FieldMask(paths=list(paths))


def new_event(name: str, counting: int = 1, value: float | None = None, currency: str = "USD") -> t.KeyEvent:
    ke = t.KeyEvent(event_name=name, counting_method=counting)
    if value is not None:
        ke.default_value = t.KeyEvent.DefaultValue(numeric_value=value, currency_code=currency)
    return ke


@pytest.fixture
def prop(sandbox_state: SandboxState) -> PropertyRecord:
    return sandbox_state.add_property(display_name="example.com", time_zone="Europe/Warsaw")


# ---- account summaries and properties --------------------------------------------------------

def test_account_summaries_have_the_recorded_shape(sandbox: SandboxServer, prop: PropertyRecord) -> None:
    recorded = real("GET_v1beta_accountSummaries@450bee7.json")
    got = requests.get(f"{sandbox.url}/v1beta/accountSummaries").json()
    assert set(got) == set(recorded)
    summary, rec_summary = got["accountSummaries"][0], recorded["accountSummaries"][0]
    assert set(summary) == set(rec_summary)
    assert summary["name"] == "accountSummaries/" + prop.account.split("/")[1]
    assert set(summary["propertySummaries"][0]) == set(rec_summary["propertySummaries"][0])
    assert summary["propertySummaries"][0] == {"property": prop.name, "displayName": "example.com",
                                               "propertyType": "PROPERTY_TYPE_ORDINARY", "parent": prop.account}


def test_account_summaries_page_by_50_by_default_and_200_at_most(
        sandbox: SandboxServer, sandbox_state: SandboxState, admin_client: AnalyticsAdminServiceClient) -> None:
    for i in range(260):
        sandbox_state.add_account(f"Client {i}")
    first = requests.get(f"{sandbox.url}/v1beta/accountSummaries").json()
    assert len(first["accountSummaries"]) == 50 and first["nextPageToken"]
    pager = admin_client.list_account_summaries(t.ListAccountSummariesRequest(page_size=1000))
    sizes = [len(page.account_summaries) for page in pager.pages]
    assert sizes == [200, 60]
    names = [s.display_name for s in admin_client.list_account_summaries()]
    assert names == [f"Client {i}" for i in range(260)]


def test_get_property_has_the_recorded_shape(admin_client: AnalyticsAdminServiceClient,
                                             sandbox: SandboxServer, prop: PropertyRecord) -> None:
    recorded = real("GET_v1beta_properties@450bee7.json")["properties"][0]
    got = requests.get(f"{sandbox.url}/v1beta/{prop.name}").json()
    assert set(got) == set(recorded)
    assert got["serviceLevel"] == "GOOGLE_ANALYTICS_STANDARD" and got["timeZone"] == "Europe/Warsaw"
    p = admin_client.get_property(name=prop.name)
    assert (p.display_name, p.currency_code, p.parent, p.account) == ("example.com", "USD", prop.account, prop.account)
    assert p.service_level == t.ServiceLevel.GOOGLE_ANALYTICS_STANDARD
    assert p.property_type == t.PropertyType.PROPERTY_TYPE_ORDINARY


def test_property_360_and_data_retention(admin_client: AnalyticsAdminServiceClient,
                                         sandbox_state: SandboxState) -> None:
    rec = sandbox_state.add_property(service_level="GOOGLE_ANALYTICS_360", event_data_retention="TWO_MONTHS")
    assert admin_client.get_property(name=rec.name).service_level == t.ServiceLevel.GOOGLE_ANALYTICS_360
    drs = admin_client.get_data_retention_settings(name=f"{rec.name}/dataRetentionSettings")
    assert drs.name == f"{rec.name}/dataRetentionSettings"
    assert drs.event_data_retention == t.DataRetentionSettings.RetentionDuration.TWO_MONTHS


def test_unknown_property_is_permission_denied(admin_client: AnalyticsAdminServiceClient) -> None:
    # GA does not tell a property that does not exist from one the caller cannot see (recorded)
    with pytest.raises(gexc.Forbidden) as err:
        admin_client.get_property(name="properties/123456")
    assert "sufficient permissions" in err.value.message
    with pytest.raises(gexc.Forbidden):
        list(admin_client.list_key_events(parent="properties/123456"))


def test_denied_property_is_forbidden_everywhere(admin_client: AnalyticsAdminServiceClient, sandbox: SandboxServer,
                                                 sandbox_state: SandboxState, prop: PropertyRecord) -> None:
    other = sandbox_state.add_property(display_name="not yours")
    sandbox_state.deny(other.id)
    for call in (lambda: admin_client.get_property(name=other.name),
                 lambda: list(admin_client.list_key_events(parent=other.name)),
                 lambda: admin_client.create_key_event(parent=other.name, key_event=new_event("sign_up"))):
        with pytest.raises(gexc.Forbidden) as info:
            call()
        assert "sufficient permissions" in info.value.message
    raw = requests.get(f"{sandbox.url}/v1beta/{other.name}").json()
    assert raw == real_error_shape(raw)
    listed = [p.property for s in admin_client.list_account_summaries() for p in s.property_summaries]
    assert listed == [prop.name]


def real_error_shape(raw: dict[str, Any]) -> dict[str, Any]:
    """The recorded 403 body; the sandbox must answer exactly that."""
    recorded = json.loads((REAL / "errors" / "data_api_403_permission_denied.json").read_text())["response"]
    assert raw == recorded
    return recorded


# ---- listing key events --------------------------------------------------------------------

def test_new_property_has_purchase_like_the_recording(admin_client: AnalyticsAdminServiceClient,
                                                      sandbox: SandboxServer, prop: PropertyRecord) -> None:
    recorded = {e["eventName"]: e for e in real("GET_v1beta_properties_535258304_keyEvents@450bee7.json")["keyEvents"]}
    got = requests.get(f"{sandbox.url}/v1beta/{prop.name}/keyEvents").json()
    [purchase] = got["keyEvents"]
    assert set(purchase) == set(recorded["purchase"])  # no deletable, no custom: proto3 omits false
    assert purchase["countingMethod"] == "ONCE_PER_EVENT" and purchase["eventName"] == "purchase"
    assert CREATE_TIME_RE.match(purchase["createTime"]) and CREATE_TIME_RE.match(recorded["purchase"]["createTime"])
    assert re.fullmatch(rf"{prop.name}/keyEvents/\d{{11}}", purchase["name"])
    assert "nextPageToken" not in got
    [ke] = admin_client.list_key_events(parent=prop.name)
    assert (ke.deletable, ke.custom) == (False, False)


def test_empty_property_lists_as_empty_object(sandbox: SandboxServer, sandbox_state: SandboxState,
                                              admin_client: AnalyticsAdminServiceClient) -> None:
    rec = sandbox_state.add_property(default_key_events=False)
    resp = requests.get(f"{sandbox.url}/v1beta/{rec.name}/keyEvents", params={"pageSize": 50})
    assert resp.status_code == 200
    assert resp.json() == real("GET_v1beta_properties_538870792_keyEvents@450bee7.json") == {}
    assert list(admin_client.list_key_events(parent=rec.name)) == []


def test_key_events_page_across_more_than_200(admin_client: AnalyticsAdminServiceClient, sandbox: SandboxServer,
                                              sandbox_state: SandboxState) -> None:
    rec = sandbox_state.add_property(service_level="GOOGLE_ANALYTICS_360")
    for i in range(250):  # more than GA allows, seeded directly to exercise paging
        kid = sandbox_state.new_key_event_id()
        rec.key_events[kid] = t.KeyEvent(name=f"{rec.name}/keyEvents/{kid}", event_name=f"event_{i:03}",
                                         counting_method=1, deletable=True, custom=True)
    pager = admin_client.list_key_events(t.ListKeyEventsRequest(parent=rec.name, page_size=500))
    pages = list(pager.pages)
    assert [len(p.key_events) for p in pages] == [200, 51]
    names = [ke.event_name for p in pages for ke in p.key_events]
    assert names == ["purchase"] + [f"event_{i:03}" for i in range(250)]
    default = requests.get(f"{sandbox.url}/v1beta/{rec.name}/keyEvents").json()
    assert len(default["keyEvents"]) == 50
    small = [len(p.key_events) for p in admin_client.list_key_events(
        t.ListKeyEventsRequest(parent=rec.name, page_size=100)).pages]
    assert small == [100, 100, 51]


def test_bad_page_token_is_rejected(sandbox: SandboxServer, prop: PropertyRecord) -> None:
    resp = requests.get(f"{sandbox.url}/v1beta/{prop.name}/keyEvents", params={"pageToken": "garbage"})
    assert resp.status_code == 400
    assert resp.json()["error"]["status"] == "INVALID_ARGUMENT"


# ---- create / get / patch / delete ---------------------------------------------------------

def test_create_get_patch_delete_roundtrip(admin_client: AnalyticsAdminServiceClient, prop: PropertyRecord) -> None:
    created = admin_client.create_key_event(parent=prop.name, key_event=new_event("sign_up", 2, 25.0, "EUR"))
    assert re.fullmatch(rf"{prop.name}/keyEvents/\d{{11}}", created.name)
    assert (created.event_name, created.counting_method, created.deletable, created.custom) == (
        "sign_up", ONCE_PER_SESSION, True, True)
    assert (created.default_value.numeric_value, created.default_value.currency_code) == (25.0, "EUR")
    assert admin_client.get_key_event(name=created.name) == created

    created.counting_method = ONCE_PER_EVENT
    created.default_value = t.KeyEvent.DefaultValue(numeric_value=40, currency_code="USD")
    updated = admin_client.update_key_event(key_event=created, update_mask=mask("counting_method", "default_value"))
    assert updated.counting_method == ONCE_PER_EVENT and updated.default_value.numeric_value == 40
    assert updated.create_time == created.create_time
    assert admin_client.get_key_event(name=created.name) == updated

    admin_client.delete_key_event(name=created.name)
    with pytest.raises(gexc.NotFound):
        admin_client.get_key_event(name=created.name)
    assert [ke.event_name for ke in admin_client.list_key_events(parent=prop.name)] == ["purchase"]


def test_created_key_event_has_the_recorded_shape(sandbox: SandboxServer, prop: PropertyRecord) -> None:
    recorded = real("POST_v1beta_properties_535258304_conversionEvents@450bee7.json")
    resp = requests.post(f"{sandbox.url}/v1beta/{prop.name}/keyEvents",
                         json={"eventName": "test_conversion_1", "countingMethod": "ONCE_PER_EVENT"})
    got = resp.json()
    assert resp.status_code == 200
    assert set(got) == set(recorded)
    assert (got["deletable"], got["custom"], got["countingMethod"]) == (True, True, "ONCE_PER_EVENT")
    assert CREATE_TIME_RE.match(got["createTime"])
    listed = {e["eventName"]: e for e in requests.get(f"{sandbox.url}/v1beta/{prop.name}/keyEvents").json()["keyEvents"]}
    custom = real("GET_v1beta_properties_535258304_keyEvents@450bee7.json")["keyEvents"][0]
    assert set(listed["test_conversion_1"]) == set(custom)


def test_create_ignores_output_only_fields(admin_client: AnalyticsAdminServiceClient, prop: PropertyRecord) -> None:
    body = new_event("lead")
    body.name = f"{prop.name}/keyEvents/99999999999"
    body.deletable = False
    body.custom = False
    body.create_time = "2001-01-01T00:00:00Z"
    created = admin_client.create_key_event(parent=prop.name, key_event=body)
    assert created.name != body.name and created.deletable and created.custom
    assert created.create_time.year > 2001


def test_duplicate_event_name_conflicts(admin_client: AnalyticsAdminServiceClient, prop: PropertyRecord) -> None:
    admin_client.create_key_event(parent=prop.name, key_event=new_event("sign_up"))
    with pytest.raises(gexc.Conflict) as info:
        admin_client.create_key_event(parent=prop.name, key_event=new_event("sign_up", 2))
    assert "already exists" in info.value.message
    with pytest.raises(gexc.Conflict):
        admin_client.create_key_event(parent=prop.name, key_event=new_event("purchase"))


def test_event_name_is_immutable(admin_client: AnalyticsAdminServiceClient, prop: PropertyRecord) -> None:
    created = admin_client.create_key_event(parent=prop.name, key_event=new_event("sign_up"))
    created.event_name = "signup"
    with pytest.raises(gexc.BadRequest, match="immutable"):
        admin_client.update_key_event(key_event=created, update_mask=mask("event_name"))
    with pytest.raises(gexc.BadRequest, match="immutable"):
        admin_client.update_key_event(key_event=created, update_mask=mask("*"))
    # Not in the mask: ignored, as GA ignores fields outside the update mask.
    created.counting_method = ONCE_PER_SESSION
    updated = admin_client.update_key_event(key_event=created, update_mask=mask("counting_method"))
    assert updated.event_name == "sign_up" and updated.counting_method == ONCE_PER_SESSION


@pytest.mark.parametrize("path", ["deletable", "create_time", "name", "custom", "no_such_field"])
def test_only_counting_method_and_default_value_are_updatable(admin_client: AnalyticsAdminServiceClient,
                                                              prop: PropertyRecord, path: str) -> None:
    created = admin_client.create_key_event(parent=prop.name, key_event=new_event("sign_up"))
    with pytest.raises(gexc.BadRequest):
        admin_client.update_key_event(key_event=created, update_mask=mask(path))


def test_update_mask_is_required_and_accepts_snake_or_camel(sandbox: SandboxServer, prop: PropertyRecord) -> None:
    created = requests.post(f"{sandbox.url}/v1beta/{prop.name}/keyEvents",
                            json={"eventName": "lead", "countingMethod": 1}).json()
    url = f"{sandbox.url}/v1beta/{created['name']}"
    missing = requests.patch(url, json={"countingMethod": 2})
    assert missing.status_code == 400 and "update_mask" in missing.json()["error"]["message"]
    snake = requests.patch(url, params={"update_mask": "counting_method"}, json={"countingMethod": 2})
    assert snake.json()["countingMethod"] == "ONCE_PER_SESSION"
    camel = requests.patch(url, params={"updateMask": "countingMethod,defaultValue"},
                           json={"countingMethod": 1, "defaultValue": {"numericValue": 3, "currencyCode": "PLN"}})
    assert camel.json()["defaultValue"] == {"numericValue": 3, "currencyCode": "PLN"}
    cleared = requests.patch(url, params={"updateMask": "defaultValue"}, json={})
    assert "defaultValue" not in cleared.json() and cleared.json()["countingMethod"] == "ONCE_PER_EVENT"


def test_purchase_cannot_be_deleted(admin_client: AnalyticsAdminServiceClient, prop: PropertyRecord) -> None:
    [purchase] = admin_client.list_key_events(parent=prop.name)
    with pytest.raises(gexc.BadRequest, match="not deletable"):
        admin_client.delete_key_event(name=purchase.name)
    assert [ke.event_name for ke in admin_client.list_key_events(parent=prop.name)] == ["purchase"]


def test_delete_answers_empty_object_like_the_recording(sandbox: SandboxServer, prop: PropertyRecord) -> None:
    created = requests.post(f"{sandbox.url}/v1beta/{prop.name}/keyEvents",
                            json={"eventName": "lead", "countingMethod": 1}).json()
    resp = requests.delete(f"{sandbox.url}/v1beta/{created['name']}")
    assert resp.status_code == 200
    assert resp.json() == real("DELETE_v1beta_properties_535258304_conversionEvents_14944253308@450bee7.json") == {}


@pytest.mark.parametrize("level,limit", [("GOOGLE_ANALYTICS_STANDARD", 30), ("GOOGLE_ANALYTICS_360", 50)])
def test_custom_key_event_limit(admin_client: AnalyticsAdminServiceClient, sandbox_state: SandboxState,
                                level: str, limit: int) -> None:
    rec = sandbox_state.add_property(service_level=level)
    for i in range(limit):
        admin_client.create_key_event(parent=rec.name, key_event=new_event(f"goal_{i}"))
    with pytest.raises(gexc.BadRequest, match="limit") as info:
        admin_client.create_key_event(parent=rec.name, key_event=new_event("one_too_many"))
    assert str(limit) in info.value.message
    assert len(list(admin_client.list_key_events(parent=rec.name))) == limit + 1  # + purchase
    # Deleting one frees a slot.
    victim = next(ke for ke in admin_client.list_key_events(parent=rec.name) if ke.custom)
    admin_client.delete_key_event(name=victim.name)
    admin_client.create_key_event(parent=rec.name, key_event=new_event("one_too_many"))


# ---- validation ------------------------------------------------------------------------------

def test_unknown_field_is_rejected_like_google(sandbox: SandboxServer, prop: PropertyRecord) -> None:
    resp = requests.post(f"{sandbox.url}/v1beta/{prop.name}/keyEvents",
                         json={"eventName": "lead", "countingMethod": 1, "countingMetod": 2})
    assert resp.status_code == 400
    err = resp.json()["error"]
    assert err["status"] == "INVALID_ARGUMENT"
    assert err["message"] == ("Invalid JSON payload received. Unknown name \"countingMetod\" at 'key_event': "
                              "Cannot find field.")
    nested = requests.post(f"{sandbox.url}/v1beta/{prop.name}/keyEvents",
                           json={"eventName": "lead", "countingMethod": 1, "defaultValue": {"value": 2}})
    assert "Unknown name \"value\" at 'key_event.default_value'" in nested.json()["error"]["message"]
    bad_enum = requests.post(f"{sandbox.url}/v1beta/{prop.name}/keyEvents",
                             json={"eventName": "lead", "countingMethod": "ONCE_PER_DAY"})
    assert bad_enum.status_code == 400 and "ONCE_PER_DAY" in bad_enum.json()["error"]["message"]
    assert requests.get(f"{sandbox.url}/v1beta/{prop.name}/keyEvents").json()["keyEvents"][-1]["eventName"] == "purchase"


@pytest.mark.parametrize("body,words", [
    ({"eventName": "lead"}, "counting_method"),
    ({"eventName": "lead", "countingMethod": 0}, "counting_method"),
    ({"eventName": "lead", "countingMethod": 7}, "counting_method"),
    ({"countingMethod": 1}, "event_name"),
    ({"eventName": "lead", "countingMethod": 1, "defaultValue": {"numericValue": 5}}, "currency_code"),
    ({"eventName": "lead", "countingMethod": 1, "defaultValue": {"numericValue": 5, "currencyCode": "XYZ"}}, "XYZ"),
    ({"eventName": "lead", "countingMethod": 1, "defaultValue": {"numericValue": 5, "currencyCode": "usd"}}, "usd"),
    ({"eventName": "lead", "countingMethod": 1, "defaultValue": {"numericValue": -1, "currencyCode": "USD"}}, ">= 0"),
    ({"eventName": "lead", "countingMethod": 1, "defaultValue": {"numericValue": "NaN", "currencyCode": "USD"}}, "finite"),
    ({"eventName": "lead", "countingMethod": 1, "defaultValue": {"numericValue": "Infinity", "currencyCode": "USD"}},
     "finite"),
])
def test_invalid_key_events_are_rejected(sandbox: SandboxServer, prop: PropertyRecord, body: dict, words: str) -> None:
    resp = requests.post(f"{sandbox.url}/v1beta/{prop.name}/keyEvents", json=body)
    assert resp.status_code == 400, resp.text
    assert words in resp.json()["error"]["message"]


@pytest.mark.parametrize("name", ["1st_goal", "_private", "has-dash", "has space", "x" * 41, "émoji", "ga_thing",
                                  "firebase_x", "google_y"])
def test_invalid_event_names_are_rejected(admin_client: AnalyticsAdminServiceClient, prop: PropertyRecord,
                                          name: str) -> None:
    with pytest.raises(gexc.BadRequest, match="event name"):
        admin_client.create_key_event(parent=prop.name, key_event=new_event(name))


def test_valid_edge_event_names(admin_client: AnalyticsAdminServiceClient, prop: PropertyRecord) -> None:
    for name in ("a", "x" * 40, "Sign_Up_2"):
        assert admin_client.create_key_event(parent=prop.name, key_event=new_event(name)).event_name == name


def test_zero_default_value_is_accepted(admin_client: AnalyticsAdminServiceClient, prop: PropertyRecord) -> None:
    created = admin_client.create_key_event(parent=prop.name, key_event=new_event("free_trial", 1, 0.0, "USD"))
    assert created.default_value.currency_code == "USD" and created.default_value.numeric_value == 0


def test_enums_as_numbers_or_names(sandbox: SandboxServer, prop: PropertyRecord) -> None:
    url = f"{sandbox.url}/v1beta/{prop.name}/keyEvents"
    as_number = requests.post(url, params={"$alt": "json;enum-encoding=int"},
                              json={"eventName": "lead", "countingMethod": "ONCE_PER_SESSION"}).json()
    assert as_number["countingMethod"] == 2
    as_name = requests.post(url, json={"eventName": "call", "countingMethod": 2}).json()
    assert as_name["countingMethod"] == "ONCE_PER_SESSION"
    prop_url = f"{sandbox.url}/v1beta/{prop.name}"
    assert requests.get(prop_url, params={"$alt": "json;enum-encoding=int"}).json()["serviceLevel"] == 1
    assert requests.get(prop_url).json()["serviceLevel"] == "GOOGLE_ANALYTICS_STANDARD"


# ---- server, persistence, control API ---------------------------------------------------------

def test_errors_use_googles_envelope(sandbox: SandboxServer, prop: PropertyRecord) -> None:
    unknown = requests.get(f"{sandbox.url}/v1beta/nowhere")
    assert unknown.status_code == 404
    assert unknown.json()["error"]["status"] == "NOT_FOUND" and unknown.json()["error"]["code"] == 404
    bad = requests.post(f"{sandbox.url}/v1beta/{prop.name}/keyEvents", data=b"{not json",
                        headers={"Content-Type": "application/json"})
    assert bad.status_code == 400
    assert bad.json()["error"]["message"].startswith("Invalid JSON payload received.")
    not_digits = requests.get(f"{sandbox.url}/v1beta/properties/abc")
    assert not_digits.status_code == 400


def test_state_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "sandbox.json"
    state = SandboxState(path)
    rec = state.add_property(display_name="persisted", currency_code="EUR", traffic={"model": [1, 2, 3]})
    state.deny(state.add_property().id)
    state.save()
    with SandboxServer(state) as server:
        client = client_for(server.url)
        created = client.create_key_event(parent=rec.name, key_event=new_event("sign_up", 2, 9.5, "EUR"))
    assert not list(tmp_path.glob("*.tmp"))
    again = SandboxState(path)
    with SandboxServer(again) as server:
        client = client_for(server.url)
        assert client.get_key_event(name=created.name) == created
        assert client.get_property(name=rec.name).currency_code == "EUR"
        later = client.create_key_event(parent=rec.name, key_event=new_event("lead"))
        assert int(later.name.rsplit("/", 1)[1]) > int(created.name.rsplit("/", 1)[1])
    assert again.property(rec.id).traffic == {"model": [1, 2, 3]}
    assert again.denied == state.denied


def test_add_property_rejects_bad_arguments(sandbox_state: SandboxState) -> None:
    rec = sandbox_state.add_property(property_id="properties/123456789")
    assert rec.id == "123456789" and sandbox_state.property(123456789) is rec
    with pytest.raises(ValueError):
        sandbox_state.add_property(property_id=123456789)
    with pytest.raises(ValueError):
        sandbox_state.add_property(service_level="GOLD")


def test_control_api_seeds_and_resets(sandbox: SandboxServer, admin_client: AnalyticsAdminServiceClient) -> None:
    base = f"{sandbox.url}/_sandbox"
    assert requests.get(f"{base}/health").json() == {"status": "ok", "accounts": 0, "properties": 0}
    made = requests.post(f"{base}/properties", json={"property_id": "424242", "display_name": "seeded",
                                                     "service_level": "GOOGLE_ANALYTICS_360"}).json()
    assert made["name"] == "properties/424242" and made["display_name"] == "seeded"
    assert admin_client.get_property(name="properties/424242").service_level == t.ServiceLevel.GOOGLE_ANALYTICS_360
    hidden = requests.post(f"{base}/properties", json={"denied": True}).json()
    with pytest.raises(gexc.Forbidden):
        admin_client.get_property(name=hidden["name"])
    bad = requests.post(f"{base}/properties", json={"colour": "red"})
    assert bad.status_code == 400 and "colour" in bad.json()["error"]["message"]
    assert requests.post(f"{base}/reset").json() == {}
    assert requests.get(f"{base}/health").json()["properties"] == 0
    with pytest.raises(gexc.Forbidden):
        admin_client.get_property(name="properties/424242")


def test_tests_cannot_reach_the_internet() -> None:
    with pytest.raises(Exception, match="network|resolve"):
        requests.get("https://analyticsadmin.googleapis.com/v1beta/accountSummaries", timeout=2)


# ---- phase 2: faults, lost responses, quotas, latency -------------------------------------------

class FakeClock:
    """A clock the test moves by hand, so quota windows never straddle a real minute."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def statuses(url: str, n: int) -> list[int]:
    with requests.Session() as s:
        return [s.get(url).status_code for _ in range(n)]


def test_fault_rate_is_roughly_honoured_and_reproducible(sandbox_state: SandboxState) -> None:
    rec = sandbox_state.add_property()
    runs = []
    for _ in range(2):
        with SandboxServer(sandbox_state, fault_rate=0.3, seed=7, quotas=None) as server:
            got = statuses(f"{server.url}/v1beta/{rec.name}/keyEvents", 400)
            runs.append(got)
            failed = [s for s in got if s != 200]
            assert set(failed) <= {503, 429} and {503, 429} <= set(failed)
            assert 0.22 * 400 < len(failed) < 0.38 * 400
            assert server.stats.faults == len(failed) and server.stats.requests == 400
            assert server.stats.by_status[200] == 400 - len(failed)
    assert runs[0] == runs[1]  # same seed, same faults
    with SandboxServer(sandbox_state, fault_rate=0.3, seed=8, quotas=None) as server:
        assert statuses(f"{server.url}/v1beta/{rec.name}/keyEvents", 400) != runs[0]


def test_fault_answers_use_googles_envelope(sandbox_state: SandboxState) -> None:
    rec = sandbox_state.add_property()
    with SandboxServer(sandbox_state, fault_rate=1.0, seed=1, quotas=None) as server:
        with requests.Session() as s:
            answers = [s.get(f"{server.url}/v1beta/{rec.name}") for _ in range(40)]
    by_code = {a.status_code: a.json()["error"] for a in answers}
    assert by_code[503]["status"] == "UNAVAILABLE" and by_code[429]["status"] == "RESOURCE_EXHAUSTED"


def test_lost_responses_are_really_applied(sandbox_state: SandboxState) -> None:
    rec = sandbox_state.add_property()
    with SandboxServer(sandbox_state, fault_rate=1.0, seed=3, quotas=None) as server:
        client = client_for(server.url)
        raised = []
        for i in range(30):
            with pytest.raises((gexc.ServiceUnavailable, gexc.TooManyRequests)) as info:
                client.create_key_event(parent=rec.name, key_event=new_event(f"goal_{i}"))
            raised.append(type(info.value))
        lost = server.stats.lost_responses
        assert 5 < lost < 25 and server.stats.faults == 30
    created = [ke.event_name for ke in rec.key_events.values() if ke.custom]
    assert len(created) == lost  # exactly the lost responses were applied, none of the other faults
    assert raised.count(gexc.ServiceUnavailable) >= lost


def test_lost_delete_is_applied(sandbox_state: SandboxState) -> None:
    rec = sandbox_state.add_property()
    with SandboxServer(sandbox_state, quotas=None) as server:
        made = client_for(server.url).create_key_event(parent=rec.name, key_event=new_event("lead"))
    for seed in range(50):  # find a seed whose first write fault is a lost response
        with SandboxServer(sandbox_state, fault_rate=1.0, seed=seed, quotas=None) as server:
            resp = requests.delete(f"{server.url}/v1beta/{made.name}")
            if server.stats.lost_responses:
                assert resp.status_code == 503
                break
            assert made.name.rsplit("/", 1)[1] in rec.key_events  # a plain fault changes nothing
    else:
        pytest.fail("no lost response in 50 seeds")
    assert made.name.rsplit("/", 1)[1] not in rec.key_events


def test_admin_quota_per_user_then_refilled(sandbox: SandboxServer, prop: PropertyRecord) -> None:
    clock = FakeClock()
    sandbox.quota = QuotaTracker(QuotaLimits(admin_per_user=5, admin_per_project=100), clock=clock)
    client = client_for(sandbox.url)
    for _ in range(5):
        client.get_property(name=prop.name)
    with pytest.raises(gexc.Forbidden) as info:  # GA: "a 403 error with the reason rateLimitExceeded"
        client.get_property(name=prop.name)
    assert "per user" in info.value.message and info.value.reason == "RATE_LIMIT_EXCEEDED"
    raw = requests.get(f"{sandbox.url}/v1beta/{prop.name}")
    assert raw.status_code == 403 and raw.json()["error"]["status"] == "PERMISSION_DENIED"
    assert raw.json()["error"]["errors"][0]["reason"] == "rateLimitExceeded"
    assert raw.json()["error"]["details"][0]["reason"] == "RATE_LIMIT_EXCEEDED"
    assert "Retry-After" not in raw.headers
    other = requests.get(f"{sandbox.url}/v1beta/{prop.name}", headers={"Authorization": "Bearer someone-else"})
    assert other.status_code == 200  # another user has a quota of their own
    assert sandbox.stats.rate_limited == 2
    clock.now += 60  # the next minute: refilled
    assert client.get_property(name=prop.name).name == prop.name


def test_admin_quota_per_project_counts_every_user(sandbox: SandboxServer, prop: PropertyRecord) -> None:
    sandbox.quota = QuotaTracker(QuotaLimits(admin_per_project=4, admin_per_user=100), clock=FakeClock())
    codes = [requests.get(f"{sandbox.url}/v1beta/{prop.name}", headers={"Authorization": f"Bearer u{i}"}).status_code
             for i in range(6)]
    assert codes == [200, 200, 200, 200, 403, 403]


def test_admin_write_quota_leaves_reads_alone(sandbox: SandboxServer, prop: PropertyRecord,
                                              admin_client: AnalyticsAdminServiceClient) -> None:
    clock = FakeClock()
    sandbox.quota = QuotaTracker(QuotaLimits(admin_writes_per_user=3), clock=clock)
    for i in range(3):
        admin_client.create_key_event(parent=prop.name, key_event=new_event(f"goal_{i}"))
    with pytest.raises(gexc.Forbidden, match="Write requests"):
        admin_client.create_key_event(parent=prop.name, key_event=new_event("goal_3"))
    assert len(list(admin_client.list_key_events(parent=prop.name))) == 4  # the refused write did nothing
    clock.now += 60
    admin_client.create_key_event(parent=prop.name, key_event=new_event("goal_3"))


def test_quota_window_refills_in_real_time(sandbox_state: SandboxState) -> None:
    rec = sandbox_state.add_property()
    window = 0.5
    with SandboxServer(sandbox_state, quotas=QuotaLimits(admin_per_user=3, window_s=window)) as server:
        time.sleep(window - time.monotonic() % window + 0.01)  # start at the beginning of a window
        assert statuses(f"{server.url}/v1beta/{rec.name}", 4) == [200, 200, 200, 403]
        time.sleep(window - time.monotonic() % window + 0.01)
        assert statuses(f"{server.url}/v1beta/{rec.name}", 1) == [200]


def _data_server(state: SandboxState, gate: threading.Event, entered: threading.Semaphore,
                 limits: QuotaLimits, clock: FakeClock | None = None) -> SandboxServer:
    """A server whose one Data API route blocks until `gate` opens (to hold concurrency slots)."""
    def fake_report(st: Any, match: Any, query: Any, body: Any) -> tuple[int, dict]:
        st.property(match["pid"])
        entered.release()
        gate.wait(5)
        return 200, {"kind": "analyticsData#runReport"}
    routes = admin_api.ROUTES + [route("POST", r"/v1beta/properties/(?P<pid>\d+):runReport", fake_report, api="data")]
    server = SandboxServer(state, routes=routes, quotas=limits)
    if clock is not None:
        server.quota = QuotaTracker(limits, clock=clock)
    return server


def test_data_api_concurrent_requests_quota(sandbox_state: SandboxState) -> None:
    rec = sandbox_state.add_property()
    gate, entered = threading.Event(), threading.Semaphore(0)
    with _data_server(sandbox_state, gate, entered, QuotaLimits(data_concurrent=2)) as server:
        url = f"{server.url}/v1beta/{rec.name}:runReport"
        results: list[int] = []
        threads = [threading.Thread(target=lambda: results.append(requests.post(url, json={}).status_code))
                   for _ in range(2)]
        for th in threads:
            th.start()
        assert entered.acquire(timeout=5) and entered.acquire(timeout=5)  # two requests in flight
        third = requests.post(url, json={})
        assert third.status_code == 429
        assert third.json()["error"]["message"] == "Exhausted concurrent requests quota."
        gate.set()
        for th in threads:
            th.join(5)
        assert results == [200, 200]
        assert requests.post(url, json={}).status_code == 200  # slots are given back
        assert server.stats.rate_limited == 1 and server.stats.data_requests == 4


@pytest.mark.parametrize("limits,message", [
    (QuotaLimits(data_tokens_per_request=10, data_tokens_per_hour=30), "Exhausted property tokens per hour."),
    (QuotaLimits(data_tokens_per_request=10, data_tokens_per_day=30), "Exhausted property tokens per day."),
    (QuotaLimits(data_tokens_per_request=10, data_project_tokens_per_hour=30),
     "Exhausted property tokens for a project per hour."),
])
def test_data_api_token_quotas(sandbox_state: SandboxState, limits: QuotaLimits, message: str) -> None:
    rec, other = sandbox_state.add_property(), sandbox_state.add_property()
    gate, entered = threading.Event(), threading.Semaphore(0)
    gate.set()
    clock = FakeClock()
    with _data_server(sandbox_state, gate, entered, limits, clock) as server:
        url = f"{server.url}/v1beta/{rec.name}:runReport"
        codes = [requests.post(url, json={}).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        assert requests.post(url, json={}).json()["error"]["message"] == message
        assert requests.post(f"{server.url}/v1beta/{other.name}:runReport", json={}).status_code == 200
        clock.now += 3600 * 24
        assert requests.post(url, json={}).status_code == 200
        assert server.quota is not None
        assert server.quota.property_quota(rec.id)["tokensPerHour"]["consumed"] == 10


def test_latency_is_applied(sandbox_state: SandboxState) -> None:
    rec = sandbox_state.add_property()
    with SandboxServer(sandbox_state, latency_ms=150) as server:
        with requests.Session() as s:
            s.get(f"{server.url}/_sandbox/health")
            start = time.perf_counter()
            s.get(f"{server.url}/v1beta/{rec.name}")
            slow = time.perf_counter() - start
            start = time.perf_counter()
            s.get(f"{server.url}/_sandbox/health")  # the control API is never delayed
            fast = time.perf_counter() - start
    assert slow >= 0.15 and fast < 0.1


def test_stats_over_the_control_api(sandbox: SandboxServer, prop: PropertyRecord) -> None:
    statuses(f"{sandbox.url}/v1beta/{prop.name}", 3)
    requests.get(f"{sandbox.url}/v1beta/nowhere")
    stats = requests.get(f"{sandbox.url}/_sandbox/stats").json()
    assert stats["requests"] == 4 and stats["admin_requests"] == 3
    assert stats["by_status"] == {"200": 3, "404": 1}
    requests.post(f"{sandbox.url}/_sandbox/reset")
    assert requests.get(f"{sandbox.url}/_sandbox/stats").json()["requests"] == 0
