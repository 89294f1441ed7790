"""The sandbox answers the Data API surface analysts use, in GA's recorded shapes.

Typical report requests (the dimensions and metrics the traffic model carries, filters,
orderBys, aggregations) go through the official Python clients; their numbers are checked
against plain pandas over `traffic.event_log`, never against the sandbox's engine. Metadata is
compared with the live recording, new endpoints with their recorded shapes.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import requests
from google.analytics.admin_v1beta.types import KeyEvent
from google.analytics.data_v1beta import BetaAnalyticsDataClient
from google.analytics.data_v1beta import types as T
from google.api_core import exceptions
from google.auth.credentials import AnonymousCredentials
from google.protobuf import json_format

from ga_sync.sandbox import catalog, data_api
from ga_sync.sandbox.traffic import event_log, make_traffic
from ga_sync.sandbox.visitors import channel_group

FIXTURES = Path(__file__).parent / "fixtures"
PID = "424242"
TZ = "Europe/Warsaw"
GOALS = [("purchase", "macro", None), ("add_to_cart", "micro", None),
         ("begin_checkout", "micro", None), ("generate_lead", "macro", 150.0)]
START, END = date(2025, 3, 3), date(2025, 3, 30)
RANGE = [{"startDate": START.isoformat(), "endDate": END.isoformat()}]


def recorded(name: str) -> dict[str, Any]:
    for folder in ("real", "real_data_api"):
        path = FIXTURES / folder / name
        if path.exists():
            return json.loads(path.read_text())
    raise FileNotFoundError(name)


def traffic() -> dict[str, Any]:
    return make_traffic(GOALS, seed=5, daily_sessions=1500, start="2024-06-01", property_id=PID)


@pytest.fixture
def prop(sandbox_state: Any) -> Any:
    return sandbox_state.add_property(property_id=PID, time_zone=TZ, currency_code="EUR",
                                      traffic=traffic())


@pytest.fixture
def data(sandbox: Any) -> BetaAnalyticsDataClient:
    return BetaAnalyticsDataClient(credentials=AnonymousCredentials(), transport="rest",
                                   client_options={"api_endpoint": sandbox.url})


@pytest.fixture(scope="module")
def log() -> pd.DataFrame:
    return event_log(traffic(), START, END, TZ)


def _req(dims: tuple[str, ...] = (), mets: tuple[str, ...] = (), **kw: Any) -> dict[str, Any]:
    return {"dimensions": [{"name": d} for d in dims], "metrics": [{"name": m} for m in mets],
            "dateRanges": kw.pop("ranges", RANGE), **kw}


def _exact(field: str, value: str) -> dict[str, Any]:
    return {"filter": {"fieldName": field, "stringFilter": {"matchType": "EXACT", "value": value}}}


# What analysts ask, as JSON bodies; before this sandbox knew GA's metadata, 6 of them worked.
TYPICAL = [
    _req(("date",), ("sessions", "totalUsers")),
    _req(("country",), ("sessions",)),
    _req(("city",), ("activeUsers",), limit="20"),
    _req(("country", "region"), ("sessions",)),
    _req(("deviceCategory",), ("sessions", "engagementRate")),
    _req(("operatingSystem",), ("activeUsers",)),
    _req(("browser",), ("sessions",)),
    _req(("platform",), ("sessions",)),
    _req(("sessionSource", "sessionMedium"), ("sessions", "totalRevenue")),
    _req(("sessionDefaultChannelGroup",), ("sessions", "keyEvents")),
    _req(("sessionCampaignName",), ("sessions",)),
    _req(("firstUserSource", "firstUserMedium"), ("newUsers",)),
    _req(("landingPage",), ("sessions", "bounceRate"),
         orderBys=[{"metric": {"metricName": "sessions"}, "desc": True}]),
    _req(("pageTitle",), ("screenPageViews",)),
    _req(("hostName", "pagePath"), ("screenPageViews",)),
    _req(("eventName",), ("eventCount",)),
    _req(("date",), ("purchaseRevenue", "transactions", "ecommercePurchases")),
    _req((), ("addToCarts", "checkouts", "ecommercePurchases")),
    _req(("date",), ("engagedSessions", "engagementRate", "averageSessionDuration")),
    _req(("deviceCategory",), ("userEngagementDuration",)),
    _req(("country",), ("screenPageViewsPerSession", "sessionsPerUser")),
    _req(("eventName",), ("keyEvents",), dimensionFilter=_exact("isKeyEvent", "true")),
    _req(("language",), ("sessions",)),
    _req(("country",), ("sessions",), limit="5",
         dimensionFilter={"filter": {"fieldName": "country", "inListFilter": {
             "values": ["United States", "Germany", "Poland"]}}},
         orderBys=[{"metric": {"metricName": "sessions"}, "desc": True}]),
    _req(("pagePath",), ("sessions",), metricFilter={"filter": {
        "fieldName": "sessions", "numericFilter": {"operation": "GREATER_THAN",
                                                   "value": {"int64Value": "100"}}}}),
    _req(("deviceCategory",), ("totalUsers", "newUsers", "activeUsers"),
         metricAggregations=["TOTAL", "MAXIMUM", "MINIMUM"]),
    _req(("date", "deviceCategory"), ("sessions",),
         ranges=[{"startDate": "2025-03-03", "endDate": "2025-03-09"},
                 {"startDate": "2025-03-10", "endDate": "2025-03-16"}]),
]


def run(data: BetaAnalyticsDataClient, body: dict[str, Any]) -> T.RunReportResponse:
    req = T.RunReportRequest.from_json(json.dumps(body))
    req.property = f"properties/{PID}"
    return data.run_report(req)


def table(resp: T.RunReportResponse) -> dict[tuple[str, ...], list[float]]:
    return {tuple(v.value for v in r.dimension_values): [float(m.value) for m in r.metric_values]
            for r in resp.rows}


def test_typical_requests_all_succeed(prop: Any, data: BetaAnalyticsDataClient) -> None:
    failed = []
    for body in TYPICAL:
        try:
            resp = run(data, body)
        except exceptions.GoogleAPICallError as exc:
            failed.append(f"{[d['name'] for d in body['dimensions']]}: {exc.message}")
            continue
        assert resp.row_count > 0 and resp.rows, body
    assert not failed, failed


def test_session_attributes_add_up_to_the_event_log(prop: Any, data: BetaAnalyticsDataClient,
                                                    log: pd.DataFrame) -> None:
    sessions = log.session_id.nunique()
    by_device = table(run(data, _req(("deviceCategory",), ("sessions",))))
    assert sum(v[0] for v in by_device.values()) == sessions  # a session has one device
    assert set(by_device) == {("desktop",), ("mobile",), ("tablet",)}
    expected = log.groupby("city", observed=True).session_id.nunique()
    by_city = table(run(data, _req(("city",), ("sessions",))))
    assert {k[0]: v[0] for k, v in by_city.items()} == expected.astype(float).to_dict()
    by_source = table(run(data, _req(("sessionSource", "sessionMedium"), ("sessions",))))
    expected = log.groupby(["session_source", "session_medium"], observed=True).session_id.nunique()
    assert {k: v[0] for k, v in by_source.items()} == expected.astype(float).to_dict()
    # a session's attributes are the same on all its events; users keep their first source
    per_session = log.groupby("session_id")[["city", "device_category", "session_source",
                                             "landing_page", "language"]].nunique()
    assert (per_session == 1).all().all()
    assert (log.groupby("user_id").first_user_source.nunique() == 1).all()
    new = log[log.event_name == "first_visit"]
    assert (new.first_user_source.astype(str) == new.session_source.astype(str)).all()


def test_ecommerce_and_engagement_metrics_match_the_log(prop: Any, data: BetaAnalyticsDataClient,
                                                        log: pd.DataFrame) -> None:
    (row,) = run(data, _req((), ("purchaseRevenue", "totalRevenue", "transactions",
                                 "ecommercePurchases", "addToCarts", "checkouts",
                                 "screenPageViews", "engagedSessions", "userEngagementDuration",
                                 "averageSessionDuration"))).rows
    got = [float(m.value) for m in row.metric_values]
    purchases = log[log.event_name == "purchase"]
    pv = log[log.event_name == "page_view"]
    duration = log.groupby("session_id").session_duration.first()
    pv_per_session = pv.groupby("session_id").size()
    engaged = len(set(log.session_id[log.event_name == "user_engagement"])
                  | set(pv_per_session.index[pv_per_session >= 2]))
    assert got[0] == pytest.approx(purchases.value.sum()) and got[1] == got[0]
    assert got[2] == len(purchases) == got[3]
    assert got[4] == (log.event_name == "add_to_cart").sum()
    assert got[5] == (log.event_name == "begin_checkout").sum()
    assert got[6] == len(pv)
    assert got[7] == engaged
    assert got[8] == pytest.approx(log.engagement_time_msec.sum() / 1000)
    assert got[9] == pytest.approx(duration.mean())
    rates = table(run(data, _req(("deviceCategory",), ("engagementRate", "bounceRate",
                                                       "screenPageViewsPerSession", "sessionsPerUser"))))
    for (device,), (er, br, pps, spu) in rates.items():
        part = log[log.device_category == device]
        n = part.session_id.nunique()
        assert er + br == pytest.approx(1.0)
        assert pps == pytest.approx((part.event_name == "page_view").sum() / n)
        assert spu == pytest.approx(n / part.user_id.nunique())


def test_channel_groups_follow_gas_rules() -> None:
    cases = {("(direct)", "(none)"): "Direct", ("google", "organic"): "Organic Search",
             ("google", "cpc"): "Paid Search", ("facebook", "paid_social"): "Paid Social",
             ("l.facebook.com", "referral"): "Organic Social", ("newsletter", "email"): "Email",
             ("partner-blog.com", "referral"): "Referral", ("awin", "affiliate"): "Affiliates",
             ("google", "display"): "Display", ("youtube.com", "referral"): "Organic Video",
             ("something", "weird"): "Unassigned"}
    assert {k: channel_group(*k) for k in cases} == cases


def test_channel_group_by_source_in_reports(prop: Any, data: BetaAnalyticsDataClient) -> None:
    rows = table(run(data, _req(("sessionSource", "sessionMedium", "sessionDefaultChannelGroup"),
                                ("sessions",))))
    assert rows and all(channel_group(s, m) == g for s, m, g in rows)


def test_fields_without_data_answer_not_set_and_zero(prop: Any, data: BetaAnalyticsDataClient) -> None:
    rows = table(run(data, _req(("itemName",), ("itemRevenue",), keepEmptyRows=True)))
    assert rows == {("(not set)",): [0.0]}
    (row,) = run(data, _req(("googleAdsCampaignName",), ("sessions", "advertiserAdClicks"))).rows
    assert row.dimension_values[0].value == "(not set)" and row.metric_values[1].value == "0"


def test_every_metadata_field_is_accepted(prop: Any) -> None:
    """Each dimension alone with a compatible metric, each metric alone (engine, no HTTP)."""
    day = {"startDate": "2025-03-03", "endDate": "2025-03-04"}
    for name in catalog.DIMENSIONS:
        if name in catalog.COHORT_FIELDS:
            continue
        metric = "itemRevenue" if name.startswith("item") else (
            "publisherAdClicks" if name in catalog.PUBLISHER_DIMENSIONS else "eventCount")
        req = data_api.parse(T.RunReportRequest, {"dimensions": [{"name": name}],
                                                  "metrics": [{"name": metric}], "dateRanges": [day]})
        out, _, _ = data_api.build_report(prop, req)
        assert out["dimensionHeaders"] == [{"name": name}]
    for name in catalog.METRICS:
        if name in catalog.COHORT_FIELDS:
            continue
        req = data_api.parse(T.RunReportRequest, {"metrics": [{"name": name}], "dateRanges": [day]})
        out, _, _ = data_api.build_report(prop, req)
        assert out["metricHeaders"][0]["type"] == catalog.METRICS[name][0]


def test_incompatible_fields_are_refused(prop: Any, data: BetaAnalyticsDataClient, sandbox: Any) -> None:
    with pytest.raises(exceptions.BadRequest, match="Please remove itemName"):
        run(data, _req(("itemName",), ("sessions",)))
    answer = data.check_compatibility(T.CheckCompatibilityRequest(
        property=f"properties/{PID}", dimensions=[T.Dimension(name="itemName")],
        compatibility_filter=T.Compatibility.COMPATIBLE))
    compatible = {m.metric_metadata.api_name for m in answer.metric_compatibilities}
    assert "itemRevenue" in compatible and "sessions" not in compatible
    assert all(d.compatibility == T.Compatibility.COMPATIBLE for d in answer.dimension_compatibilities)
    everything = data.check_compatibility(T.CheckCompatibilityRequest(
        property=f"properties/{PID}", metrics=[T.Metric(name="sessions")]))
    assert len(everything.dimension_compatibilities) == len(catalog.DIMENSIONS)
    assert len(everything.metric_compatibilities) == len(catalog.METRICS) + 2  # purchase x 2


# ---- metadata and errors, as recorded ----------------------------------------------------------

def test_metadata_is_the_recording(sandbox: Any, prop: Any, data: BetaAnalyticsDataClient) -> None:
    real = recorded("GET_v1beta_properties_0_metadata@450bee7.json")["response"]
    r = requests.get(f"{sandbox.url}/v1beta/properties/0/metadata", params={"$alt": "json"})
    assert r.json() == real
    assert (len(real["dimensions"]), len(real["metrics"])) == (375, 86)
    own = data.get_metadata(name=f"properties/{PID}/metadata")
    extra = [m.api_name for m in own.metrics][len(real["metrics"]):]
    assert extra == ["keyEvents:purchase", "sessionKeyEventRate:purchase"]
    assert [d.api_name for d in own.dimensions] == [d["apiName"] for d in real["dimensions"]]


def test_unknown_properties_answer_403_on_both_apis(sandbox: Any, admin_client: Any,
                                                    data: BetaAnalyticsDataClient) -> None:
    real = recorded("errors/data_api_403_permission_denied.json")
    for call in (lambda: admin_client.get_property(name="properties/777777"),
                 lambda: list(admin_client.list_key_events(parent="properties/777777")),
                 lambda: data.run_report(T.RunReportRequest(
                     property="properties/777777", metrics=[T.Metric(name="sessions")],
                     date_ranges=[T.DateRange(start_date="yesterday", end_date="today")])),
                 lambda: data.get_metadata(name="properties/777777/metadata")):
        with pytest.raises(exceptions.Forbidden):
            call()
    r = requests.post(f"{sandbox.url}/v1beta/properties/777777:runReport", json={})
    assert (r.status_code, r.json()) == (403, real["response"])


def test_headers_as_recorded(sandbox: Any, prop: Any) -> None:
    real = recorded("GET_v1beta_accounts@450bee7.json")["response_headers"]
    r = requests.get(f"{sandbox.url}/v1beta/accounts")
    for name in ("content-type", "server", "vary"):
        assert r.headers[name] == real[name]
    assert "date" in r.headers


# ---- Admin API resources, as recorded ----------------------------------------------------------

def _same_shape(ours: Any, real: Any) -> None:
    """Same keys (recursively, first item of lists) and value types."""
    if isinstance(real, dict):
        assert isinstance(ours, dict) and set(ours) == set(real), (ours, real)
        for k in real:
            _same_shape(ours[k], real[k])
    elif isinstance(real, list):
        assert isinstance(ours, list) and ours
        _same_shape(ours[0], real[0])
    else:
        assert type(ours) is type(real), (ours, real)


def test_accounts_properties_and_streams(sandbox: Any, prop: Any, admin_client: Any) -> None:
    accounts = requests.get(f"{sandbox.url}/v1beta/accounts", params={"pageSize": 100}).json()
    _same_shape(accounts, recorded("GET_v1beta_accounts@450bee7.json")["response"])
    props = requests.get(f"{sandbox.url}/v1beta/properties",
                         params={"filter": f"parent:{prop.account}", "pageSize": 100}).json()
    _same_shape(props, recorded("GET_v1beta_properties@450bee7.json")["response"])
    assert [p["name"] for p in props["properties"]] == [prop.name]
    assert requests.get(f"{sandbox.url}/v1beta/properties").status_code == 400  # filter required
    streams = requests.get(f"{sandbox.url}/v1beta/{prop.name}/dataStreams").json()
    _same_shape(streams, recorded("GET_v1beta_properties_535258304_dataStreams@450bee7.json")["response"])
    (stream,) = streams["dataStreams"]
    assert stream["webStreamData"]["measurementId"].startswith("G-")
    assert requests.get(f"{sandbox.url}/v1beta/{stream['name']}").json() == stream
    # the official client (v1beta), and the same answers on v1alpha
    assert [a.name for a in admin_client.list_accounts()] == [prop.account]
    assert [p.name for p in admin_client.list_properties(
        request={"filter": f"parent:{prop.account}"})] == [prop.name]
    assert [s.name for s in admin_client.list_data_streams(parent=prop.name)] == [stream["name"]]
    alpha = requests.get(f"{sandbox.url}/v1alpha/{prop.name}/dataStreams").json()
    assert alpha == streams


@pytest.mark.filterwarnings("ignore:.*conversion_event is deprecated:DeprecationWarning")
def test_conversion_events_are_key_events(sandbox: Any, prop: Any, admin_client: Any) -> None:
    base = f"{sandbox.url}/v1beta/{prop.name}"
    created = requests.post(f"{base}/conversionEvents", json={"eventName": "sign_up"}).json()
    _same_shape(created, recorded("POST_v1beta_properties_535258304_conversionEvents@450bee7.json")["response"])
    assert created["countingMethod"] == "ONCE_PER_EVENT"
    listed = requests.get(f"{base}/conversionEvents", params={"pageSize": 50}).json()
    real = recorded("GET_v1beta_properties_535258304_conversionEvents@2493249.json")["response"]
    assert list(listed) == list(real)
    _same_shape(listed["conversionEvents"][0], real["conversionEvents"][1])  # GA's purchase
    _same_shape(listed["conversionEvents"][1], real["conversionEvents"][0])  # a custom one
    keys = requests.get(f"{base}/keyEvents").json()["keyEvents"]
    assert [c["name"].rsplit("/", 1)[1] for c in listed["conversionEvents"]] == \
        [k["name"].rsplit("/", 1)[1] for k in keys]
    ce = admin_client.get_conversion_event(name=created["name"])
    assert ce.event_name == "sign_up"
    admin_client.delete_conversion_event(name=created["name"])
    assert [k.event_name for k in admin_client.list_key_events(parent=prop.name)] == ["purchase"]
    empty = sandbox.state.add_property(default_key_events=False)
    assert requests.get(f"{sandbox.url}/v1beta/{empty.name}/conversionEvents").json() == \
        recorded("GET_v1beta_properties_538870792_conversionEvents@2493249.json")["response"]


# ---- pivot and realtime --------------------------------------------------------------------------

def test_pivot_report_without_data_is_the_recording(sandbox: Any, sandbox_state: Any) -> None:
    real = recorded("POST_v1beta_properties_535258304_runPivotReport@450bee7.json")
    empty = sandbox_state.add_property(time_zone="Europe/Warsaw")
    r = requests.post(f"{sandbox.url}/v1beta/{empty.name}:runPivotReport", json=real["request"]["data"])
    assert r.json() == real["response"]


def test_pivot_report_with_data(prop: Any, data: BetaAnalyticsDataClient, log: pd.DataFrame) -> None:
    resp = data.run_pivot_report(T.RunPivotReportRequest(
        property=f"properties/{PID}", dimensions=[T.Dimension(name="country"),
                                                  T.Dimension(name="deviceCategory")],
        metrics=[T.Metric(name="sessions")],
        date_ranges=[T.DateRange(start_date=START.isoformat(), end_date=END.isoformat())],
        pivots=[T.Pivot(field_names=["country"], limit=3),
                T.Pivot(field_names=["deviceCategory"], limit=5)]))
    top = log.groupby("country", observed=True).session_id.nunique().nlargest(3)
    countries = [h.dimension_values[0].value for h in resp.pivot_headers[0].pivot_dimension_headers]
    assert countries == list(top.index) and resp.pivot_headers[0].row_count == log.country.nunique()
    assert {r.dimension_values[0].value for r in resp.rows} == set(countries)
    expected = log.groupby(["country", "device_category"], observed=True).session_id.nunique()
    for r in resp.rows:
        key = (r.dimension_values[0].value, r.dimension_values[1].value)
        assert float(r.metric_values[0].value) == expected[key]


def test_realtime_report(sandbox: Any, prop: Any, data: BetaAnalyticsDataClient,
                         sandbox_state: Any) -> None:
    resp = data.run_realtime_report(T.RunRealtimeReportRequest(
        property=f"properties/{PID}", dimensions=[T.Dimension(name="unifiedScreenName"),
                                                  T.Dimension(name="country"),
                                                  T.Dimension(name="deviceCategory"),
                                                  T.Dimension(name="minutesAgo")],
        metrics=[T.Metric(name="activeUsers"), T.Metric(name="eventCount")],
        metric_aggregations=[T.MetricAggregation.TOTAL]))
    assert resp.rows and resp.row_count == len(resp.rows)
    assert {r.dimension_values[2].value for r in resp.rows} <= {"desktop", "mobile", "tablet"}
    assert all(0 <= int(r.dimension_values[3].value) <= 29 for r in resp.rows)
    # about 1500 x weekday factor / 48 sessions in half an hour
    assert 5 <= int(resp.totals[0].metric_values[0].value) <= 120
    with pytest.raises(exceptions.BadRequest, match="pagePath"):
        data.run_realtime_report(T.RunRealtimeReportRequest(
            property=f"properties/{PID}", dimensions=[T.Dimension(name="pagePath")]))
    real = recorded("POST_v1beta_properties_535258304_runRealtimeReport@450bee7.json")
    empty = sandbox_state.add_property()
    r = requests.post(f"{sandbox.url}/v1beta/{empty.name}:runRealtimeReport", json=real["request"]["data"])
    assert r.json() == real["response"]


def test_typical_requests_are_fast(prop: Any, data: BetaAnalyticsDataClient) -> None:
    import time
    run(data, TYPICAL[0])  # warm the day cache
    began = time.perf_counter()
    for body in TYPICAL:
        run(data, body)
    assert time.perf_counter() - began < 6.0


@pytest.mark.parametrize("path,data", [
    ("/v1beta/properties/1:runReport", True), ("/v1beta/properties/1:batchRunReports", True),
    ("/v1alpha/properties/1:runFunnelReport", True), ("/v1beta/properties/1/metadata", True),
    ("/v1beta/properties/1:checkCompatibility", True), ("/v1alpha/properties/1:runReport", True),
    ("/v1alpha/properties/1/audiences/2:archive", False), ("/v1beta/properties/1/keyEvents", False),
    ("/v1alpha/properties/1/dataStreams/2/eventCreateRules", False),
])
def test_data_api_calls_are_told_from_admin_calls(path, data):
    """Scopes and quotas: a v1alpha funnel report is a Data API read (a read-only token may run
    it), an audience's `:archive` is an Admin API write."""
    from ga_sync.sandbox.server import _DATA_CALL
    assert (_DATA_CALL.match(path) is not None) == data
