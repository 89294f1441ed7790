"""The sandbox's Data API through the official client, checked against plain pandas on the log.

Every expected number is computed here from `traffic.event_log` with ordinary pandas, never by
the sandbox's own engine, so a wrong groupby, filter or counting rule in the engine fails.
"""

from __future__ import annotations

import json
import re
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
import requests
from google.analytics.admin_v1beta.types import KeyEvent
from google.analytics.data_v1beta import BetaAnalyticsDataClient
from google.analytics.data_v1beta import types as T
from google.api_core import exceptions
from google.auth.credentials import AnonymousCredentials

from ga_sync.sandbox.data_api import QUOTA_LIMITS, token_cost
from ga_sync.sandbox.traffic import PII_QUERY, event_log, make_traffic

FIXTURES = Path(__file__).parent / "fixtures" / "real_data_api"
PID = "424242"
TZ = "Europe/Warsaw"
GOALS = [("purchase", "macro", None), ("generate_lead", "macro", 150.0),
         ("newsletter_signup", "micro", 5.0), ("file_download", "micro", 2.0),
         ("video_start", "micro", 1.0)]
START, END = date(2025, 3, 3), date(2025, 3, 30)
OPE = KeyEvent.CountingMethod.ONCE_PER_EVENT
OPS = KeyEvent.CountingMethod.ONCE_PER_SESSION
Match = T.Filter.StringFilter.MatchType


def recording(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text())


@pytest.fixture
def prop(sandbox_state: Any) -> Any:
    """A property with traffic; key events: purchase (default, once per event), generate_lead
    (once per session), newsletter_signup (once per event)."""
    record = sandbox_state.add_property(
        property_id=PID, time_zone=TZ, currency_code="EUR",
        traffic=make_traffic(GOALS, seed=5, daily_sessions=1500, start="2024-06-01",
                             property_id=PID, pii_paths=True))
    for event, method in (("generate_lead", OPS), ("newsletter_signup", OPE)):
        kid = sandbox_state.new_key_event_id()
        record.key_events[kid] = KeyEvent(name=f"properties/{PID}/keyEvents/{kid}",
                                          event_name=event, counting_method=method)
    return record


@pytest.fixture
def client(sandbox: Any) -> BetaAnalyticsDataClient:
    return BetaAnalyticsDataClient(credentials=AnonymousCredentials(), transport="rest",
                                   client_options={"api_endpoint": sandbox.url})


@pytest.fixture(scope="module")
def log() -> pd.DataFrame:
    traffic = make_traffic(GOALS, seed=5, daily_sessions=1500, start="2024-06-01",
                           property_id=PID, pii_paths=True)
    return event_log(traffic, START, END, TZ).astype({"date": str, "event_name": str,
                                                      "page_path": str, "page_location": str})


def run(client: BetaAnalyticsDataClient, dims: list[str] = (), mets: list[str] = (),
        ranges: list[tuple[str, str]] | None = None, **kw: Any) -> T.RunReportResponse:
    ranges = ranges or [(START.isoformat(), END.isoformat())]
    return client.run_report(T.RunReportRequest(
        property=f"properties/{PID}", dimensions=[T.Dimension(name=d) for d in dims],
        metrics=[T.Metric(name=m) for m in mets],
        date_ranges=[T.DateRange(start_date=s, end_date=e) for s, e in ranges], **kw))


def frame(resp: T.RunReportResponse) -> pd.DataFrame:
    dims = [h.name for h in resp.dimension_headers]
    mets = [h.name for h in resp.metric_headers]
    rows = [[v.value for v in r.dimension_values] + [float(v.value) for v in r.metric_values]
            for r in resp.rows]
    return pd.DataFrame(rows, columns=dims + mets)


def in_list(field: str, values: list[str]) -> T.FilterExpression:
    return T.FilterExpression(filter=T.Filter(field_name=field,
                                              in_list_filter=T.Filter.InListFilter(values=values)))


def string(field: str, match: int, value: str, case: bool = False) -> T.FilterExpression:
    return T.FilterExpression(filter=T.Filter(field_name=field, string_filter=T.Filter.StringFilter(
        match_type=match, value=value, case_sensitive=case)))


def key_event_count(log: pd.DataFrame, methods: dict[str, int]) -> pd.Series:
    """keyEvents per event name, by GA's rule, computed the obvious way."""
    out = {}
    for event, method in methods.items():
        rows = log[log.event_name == event]
        out[event] = float(len(rows) if method == OPE else rows.session_id.nunique())
    return pd.Series(out)


def test_event_metrics_by_event_name(client: Any, prop: Any, log: pd.DataFrame) -> None:
    got = frame(run(client, ["eventName"], ["eventCount", "eventValue", "sessions", "totalUsers",
                                            "activeUsers", "eventCountPerUser"])).set_index("eventName")
    g = log.groupby("event_name")
    assert set(got.index) == set(log.event_name)
    for event, sub in g:
        row = got.loc[event]
        assert row.eventCount == len(sub)
        assert row.eventValue == pytest.approx(sub.value.sum())
        assert row.sessions == sub.session_id.nunique()  # sessions in which the event occurred
        assert row.totalUsers == row.activeUsers == sub.user_id.nunique()
        assert row.eventCountPerUser == pytest.approx(len(sub) / sub.user_id.nunique())
    assert got.eventCount.is_monotonic_decreasing  # default order: first metric, descending


def test_page_user_and_revenue_metrics(client: Any, prop: Any, log: pd.DataFrame) -> None:
    got = frame(run(client, ["dayOfWeek"], ["screenPageViews", "newUsers", "purchaseRevenue",
                                            "eventsPerSession", "sessions"])).set_index("dayOfWeek")
    weekday = pd.to_datetime(log.date, format="%Y%m%d").dt.day_of_week  # Monday = 0
    for dow, sub in log.groupby((weekday + 1) % 7):  # GA: Sunday = 0
        row = got.loc[str(dow)]
        assert row.screenPageViews == (sub.event_name == "page_view").sum()
        assert row.newUsers == sub[sub.event_name == "first_visit"].user_id.nunique()
        assert row.purchaseRevenue == pytest.approx(sub[sub.event_name == "purchase"].value.sum())
        assert row.eventsPerSession == pytest.approx(len(sub) / sub.session_id.nunique())
    assert got.loc["0", "sessions"] < got.loc["2", "sessions"]  # Sunday is quieter than Tuesday


def test_dimensions_only(sandbox: Any, prop: Any, log: pd.DataFrame) -> None:
    r = requests.post(f"{sandbox.url}/v1beta/properties/{PID}:runReport", params={"$alt": "json"},
                      json={"dimensions": [{"name": "eventName"}],
                            "dateRanges": [{"startDate": START.isoformat(), "endDate": END.isoformat()}]},
                      timeout=10)
    got = r.json()
    assert "metricHeaders" not in got and all(set(row) == {"dimensionValues"} for row in got["rows"])
    assert [row["dimensionValues"][0]["value"] for row in got["rows"]] == sorted(log.event_name.unique())


def test_sessions_with_an_in_list_filter_are_deduplicated(client: Any, prop: Any,
                                                         log: pd.DataFrame) -> None:
    macro = ["purchase", "generate_lead"]
    got = frame(run(client, [], ["sessions", "eventCount"], dimension_filter=in_list("eventName", macro)))
    sub = log[log.event_name.isin(macro)]
    assert got.sessions[0] == sub.session_id.nunique()
    assert got.eventCount[0] == len(sub)
    per_event = sum(log[log.event_name == e].session_id.nunique() for e in macro)
    assert got.sessions[0] < per_event  # a session with both counts once
    total = frame(run(client, [], ["sessions", "totalUsers"]))
    assert total.sessions[0] == log.session_id.nunique()
    assert total.totalUsers[0] == log.user_id.nunique()


def test_key_events_honour_marking_and_counting_method(client: Any, prop: Any, sandbox_state: Any,
                                                      log: pd.DataFrame) -> None:
    methods = {"purchase": OPE, "generate_lead": OPS, "newsletter_signup": OPE}
    got = frame(run(client, ["eventName", "isKeyEvent"], ["keyEvents", "eventCount"])).set_index("eventName")
    expected = key_event_count(log, methods)
    for event, row in got.iterrows():
        assert row.isKeyEvent == ("true" if event in methods else "false")
        assert row.keyEvents == expected.get(event, 0.0), event
    lead = log[log.event_name == "generate_lead"]
    assert got.loc["generate_lead", "keyEvents"] < len(lead)  # repeats in a session count once
    total = frame(run(client, [], ["keyEvents", "keyEvents:generate_lead", "conversions"]))
    assert total["keyEvents"][0] == expected.sum() == total["conversions"][0]
    assert total["keyEvents:generate_lead"][0] == lead.session_id.nunique()

    with sandbox_state.lock:  # switch generate_lead to once per event, unmark newsletter_signup
        for kid, ke in list(prop.key_events.items()):
            if ke.event_name == "generate_lead":
                ke.counting_method = OPE
            if ke.event_name == "newsletter_signup":
                del prop.key_events[kid]
    after = frame(run(client, ["eventName"], ["keyEvents"])).set_index("eventName").keyEvents
    assert after["generate_lead"] == len(lead)
    assert "newsletter_signup" not in after.index  # GA drops rows whose metrics are all 0
    kept = frame(run(client, ["eventName"], ["keyEvents"], keep_empty_rows=True))
    assert kept.set_index("eventName").keyEvents["newsletter_signup"] == 0
    with pytest.raises(exceptions.BadRequest, match="keyEvents:newsletter_signup"):
        run(client, [], ["keyEvents:newsletter_signup"])


def test_key_event_rates(client: Any, prop: Any, log: pd.DataFrame) -> None:
    got = frame(run(client, ["date"], ["sessionKeyEventRate", "sessionKeyEventRate:purchase",
                                       "userKeyEventRate", "sessions"])).set_index("date")
    keyed = log[log.event_name.isin(["purchase", "generate_lead", "newsletter_signup"])]
    for day, sub in log.groupby("date"):
        s = sub.session_id.nunique()
        k = keyed[keyed.date == day]
        assert got.loc[day, "sessions"] == s
        assert got.loc[day, "sessionKeyEventRate"] == pytest.approx(k.session_id.nunique() / s)
        purchase = sub[sub.event_name == "purchase"].session_id.nunique()
        assert got.loc[day, "sessionKeyEventRate:purchase"] == pytest.approx(purchase / s)
        assert got.loc[day, "userKeyEventRate"] == pytest.approx(
            k.user_id.nunique() / sub.user_id.nunique())


@pytest.mark.parametrize("match,value,case,test", [
    (Match.EXACT, "/PRICING", False, lambda p: p.str.lower() == "/pricing"),
    (Match.EXACT, "/PRICING", True, lambda p: p == "/PRICING"),
    (Match.BEGINS_WITH, "/blog", True, lambda p: p.str.startswith("/blog")),
    (Match.ENDS_WITH, "GADGET", False, lambda p: p.str.lower().str.endswith("gadget")),
    (Match.CONTAINS, "product", True, lambda p: p.str.contains("product", regex=False)),
    (Match.FULL_REGEXP, r"/products(/.*)?", True, lambda p: p.str.fullmatch(r"/products(/.*)?")),
    (Match.PARTIAL_REGEXP, r"thank|CONTACT", False,
     lambda p: p.str.contains(r"thank|contact", case=False, regex=True)),
])
def test_string_filters(client: Any, prop: Any, log: pd.DataFrame, match: int, value: str,
                        case: bool, test: Any) -> None:
    got = frame(run(client, ["pagePath"], ["eventCount", "sessions"],
                    dimension_filter=string("pagePath", match, value, case)))
    sub = log[test(log.page_path)]
    if sub.empty:
        assert got.empty
        return
    expected = sub.groupby("page_path").agg(eventCount=("event_name", "size"),
                                            sessions=("session_id", "nunique"))
    got = got.set_index("pagePath").sort_index()
    assert list(got.index) == sorted(expected.index)
    assert (got.eventCount == expected.eventCount.sort_index()).all()
    assert (got.sessions == expected.sessions.sort_index()).all()


def test_and_or_not_groups(client: Any, prop: Any, log: pd.DataFrame) -> None:
    expr = T.FilterExpression(and_group=T.FilterExpressionList(expressions=[
        T.FilterExpression(or_group=T.FilterExpressionList(expressions=[
            string("eventName", Match.EXACT, "page_view", True),
            string("eventName", Match.EXACT, "scroll", True)])),
        T.FilterExpression(not_expression=string("pagePath", Match.BEGINS_WITH, "/blog")),
        T.FilterExpression(not_expression=T.FilterExpression(filter=T.Filter(
            field_name="pageLocation", in_list_filter=T.Filter.InListFilter(
                values=[f"https://www.example-{PID}.com/"], case_sensitive=True)))),
    ]))
    got = frame(run(client, ["eventName"], ["eventCount", "sessions"], dimension_filter=expr))
    sub = log[log.event_name.isin(["page_view", "scroll"]) & ~log.page_path.str.startswith("/blog")
              & (log.page_location != f"https://www.example-{PID}.com/")]
    got = got.set_index("eventName")
    for event, part in sub.groupby("event_name"):
        assert got.loc[event, "eventCount"] == len(part)
        assert got.loc[event, "sessions"] == part.session_id.nunique()
    assert len(got) == 2


def test_in_list_is_case_insensitive_unless_asked(client: Any, prop: Any, log: pd.DataFrame) -> None:
    loose = T.FilterExpression(filter=T.Filter(field_name="eventName", in_list_filter=T.Filter.InListFilter(
        values=["PURCHASE"], case_sensitive=False)))
    strict = in_list("eventName", ["PURCHASE"])
    strict.filter.in_list_filter.case_sensitive = True
    assert frame(run(client, [], ["eventCount"], dimension_filter=loose)).eventCount[0] == \
        (log.event_name == "purchase").sum()
    assert len(run(client, [], ["eventCount"], dimension_filter=strict).rows) == 0


def test_pages_and_pii_locations(client: Any, prop: Any, log: pd.DataFrame) -> None:
    got = frame(run(client, ["pageLocation", "pagePath", "pagePathPlusQueryString"], ["eventCount"],
                    dimension_filter=string("pageLocation", Match.CONTAINS, "@")))
    sub = log[log.page_location.str.contains("@")]
    assert len(sub) and got.eventCount.sum() == len(sub)
    assert (got.pageLocation.str.endswith(PII_QUERY)).all()
    assert (got.pagePathPlusQueryString == got.pagePath + PII_QUERY).all()


def test_users_by_country(client: Any, prop: Any, log: pd.DataFrame) -> None:
    got = frame(run(client, ["country"], ["activeUsers", "sessions"])).set_index("country")
    expected = log.groupby("country", observed=True).agg(users=("user_id", "nunique"),
                                                         sessions=("session_id", "nunique"))
    assert len(got) == len(expected) > 5
    for country, row in expected.iterrows():
        assert got.loc[country, "activeUsers"] == row.users
        assert got.loc[country, "sessions"] == row.sessions
    assert got.sessions.sum() == log.session_id.nunique()  # one country per session


def test_multiple_date_ranges(client: Any, prop: Any, log: pd.DataFrame) -> None:
    first = (START.isoformat(), (START + timedelta(days=6)).isoformat())
    second = ((START + timedelta(days=7)).isoformat(), (START + timedelta(days=20)).isoformat())
    req = T.RunReportRequest(
        property=f"properties/{PID}", dimensions=[T.Dimension(name="eventName")],
        metrics=[T.Metric(name="eventCount"), T.Metric(name="sessions")],
        date_ranges=[T.DateRange(start_date=first[0], end_date=first[1]),
                     T.DateRange(start_date=second[0], end_date=second[1], name="later")],
        dimension_filter=in_list("eventName", ["purchase"]), metric_aggregations=[T.MetricAggregation.TOTAL])
    resp = client.run_report(req)
    assert [h.name for h in resp.dimension_headers] == ["eventName", "dateRange"]
    got = frame(resp).set_index("dateRange")
    for label, (a, b) in (("date_range_0", first), ("later", second)):
        days = log[(log.date >= a.replace("-", "")) & (log.date <= b.replace("-", ""))]
        buy = days[days.event_name == "purchase"]
        assert got.loc[label, "eventCount"] == len(buy)
        assert got.loc[label, "sessions"] == buy.session_id.nunique()
    assert sorted(t.dimension_values[1].value for t in resp.totals) == ["date_range_0", "later"]
    assert all(t.dimension_values[0].value == "RESERVED_TOTAL" for t in resp.totals)


def test_relative_dates_use_the_property_time_zone(client: Any, prop: Any) -> None:
    today = datetime.now(ZoneInfo(TZ)).date()
    got = frame(run(client, ["date"], ["sessions"], [("7daysAgo", "yesterday")]))
    assert sorted(got.date) == [(today - timedelta(days=d)).strftime("%Y%m%d") for d in range(7, 0, -1)]
    expected = event_log(prop.traffic, today - timedelta(days=7), today - timedelta(days=1), TZ)
    assert got.sessions.sum() == expected.groupby("date", observed=True).session_id.nunique().sum()
    future = frame(run(client, ["date"], ["sessions"], [("today", (today + timedelta(days=30)).isoformat())]))
    assert set(future.date) <= {today.strftime("%Y%m%d")}  # no data from the future


def test_paging_with_limit_offset_and_row_count(client: Any, prop: Any, log: pd.DataFrame) -> None:
    full = run(client, ["date", "eventName"], ["eventCount"])
    expected_rows = log.groupby(["date", "event_name"]).ngroups
    assert full.row_count == len(full.rows) == expected_rows
    pages, offset = [], 0
    while offset < full.row_count:
        page = run(client, ["date", "eventName"], ["eventCount"], limit=17, offset=offset)
        assert page.row_count == expected_rows and len(page.rows) <= 17
        pages += list(page.rows)
        offset += 17
    assert [(r.dimension_values[0].value, r.dimension_values[1].value) for r in pages] == \
        [(r.dimension_values[0].value, r.dimension_values[1].value) for r in full.rows]
    counts = [float(r.metric_values[0].value) for r in full.rows]
    assert counts == sorted(counts, reverse=True)


def test_order_bys(client: Any, prop: Any, log: pd.DataFrame) -> None:
    by_date = frame(run(client, ["date"], ["sessions"], order_bys=[T.OrderBy(
        dimension=T.OrderBy.DimensionOrderBy(dimension_name="date"), desc=True)]))
    assert list(by_date.date) == sorted(log.date.unique(), reverse=True)
    by_sessions = frame(run(client, ["pagePath"], ["eventCount", "sessions"], order_bys=[T.OrderBy(
        metric=T.OrderBy.MetricOrderBy(metric_name="sessions"))]))
    assert list(by_sessions.sessions) == sorted(by_sessions.sessions)


def test_totals_are_distinct_not_summed(client: Any, prop: Any, log: pd.DataFrame) -> None:
    resp = run(client, ["eventName"], ["sessions", "eventCount"],
               metric_aggregations=[T.MetricAggregation.TOTAL, T.MetricAggregation.MAXIMUM])
    total = resp.totals[0]
    assert [v.value for v in total.dimension_values] == ["RESERVED_TOTAL"]
    assert float(total.metric_values[0].value) == log.session_id.nunique()
    assert float(total.metric_values[1].value) == len(log)
    assert float(resp.maximums[0].metric_values[1].value) == log.event_name.value_counts().max()


def test_metric_filter(client: Any, prop: Any, log: pd.DataFrame) -> None:
    threshold = 1000
    expr = T.FilterExpression(filter=T.Filter(field_name="sessions", numeric_filter=T.Filter.NumericFilter(
        operation=T.Filter.NumericFilter.Operation.GREATER_THAN, value=T.NumericValue(int64_value=threshold))))
    got = frame(run(client, ["eventName"], ["sessions"], metric_filter=expr))
    sessions = log.groupby("event_name").session_id.nunique()
    assert sorted(got.eventName) == sorted(sessions[sessions > threshold].index)


@pytest.mark.parametrize("kwargs,message", [
    ({"dims": ["eventName"] * 5 + ["date", "pagePath", "pageLocation", "isKeyEvent", "dayOfWeek"]},
     "limited to 9 dimensions"),
    ({"mets": ["eventCount", "fooBar"]}, "Field fooBar is not a valid metric"),
    ({"dims": ["country2"]}, "Field country2 is not a valid dimension"),
    ({"ranges": [("2025-13-01", "2025-03-30")]}, "2025-13-01"),
    ({"ranges": [("3 days ago", "today")]}, "3 days ago"),
    ({"ranges": [("2025-03-10", "2025-03-01")]}, "after"),
    ({"ranges": [("2025-03-01", "2025-03-02")] * 5}, "4 date ranges"),
    ({"dimension_filter": string("sessions", Match.EXACT, "1")}, "not a valid dimension"),
    ({"dimension_filter": string("pagePath", Match.FULL_REGEXP, "(")}, "regular expression"),
])
def test_validation_errors(client: Any, prop: Any, kwargs: dict, message: str) -> None:
    kwargs = {"dims": ["eventName"], "mets": ["eventCount"], **kwargs}
    dims, mets, ranges = kwargs.pop("dims"), kwargs.pop("mets"), kwargs.pop("ranges", None)
    with pytest.raises(exceptions.BadRequest, match=re.escape(message)):
        run(client, dims, mets, ranges, **kwargs)


def test_too_many_metrics(client: Any, prop: Any) -> None:
    mets = ["eventCount", "eventValue", "sessions", "totalUsers", "activeUsers", "keyEvents",
            "newUsers", "screenPageViews", "eventsPerSession", "eventCountPerUser", "userKeyEventRate"]
    with pytest.raises(exceptions.BadRequest, match="limited to 10 metrics"):
        run(client, [], mets)


def test_cohorts_are_not_pretended(client: Any, prop: Any) -> None:
    with pytest.raises(exceptions.MethodNotImplemented):
        run(client, ["cohort"], ["cohortActiveUsers"], cohort_spec=T.CohortSpec(
            cohorts=[T.Cohort(dimension="firstSessionDate", date_range=T.DateRange(
                start_date="2025-01-01", end_date="2025-01-07"))]))


def test_unknown_json_field_is_named(sandbox: Any, prop: Any) -> None:
    r = requests.post(f"{sandbox.url}/v1beta/properties/{PID}:runReport?$alt=json;enum-encoding=int",
                      json={"metrics": [{"name": "sessions"}], "dateRange": [], "dateRanges": [
                          {"startDate": "7daysAgo", "endDate": "today"}]}, timeout=10)
    assert r.status_code == 400
    assert r.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert '"dateRange"' in r.json()["error"]["message"]


def test_wire_shape_matches_the_recording(sandbox: Any, prop: Any, sandbox_state: Any) -> None:
    real = recording("POST_v1beta_properties_535258304_runReport@450bee7.json")
    body = real["request"]["data"]  # activeUsers by country, 7daysAgo..yesterday
    for alt, mtype in (("json;enum-encoding=int", 1), ("json", "TYPE_INTEGER")):
        r = requests.post(f"{sandbox.url}/v1beta/properties/{PID}:runReport", params={"$alt": alt},
                          json=body, timeout=10)
        assert r.status_code == 200
        got = r.json()
        T.RunReportResponse.from_json(r.text, ignore_unknown_fields=False)
        assert set(got) == set(real["response"]) | {"rows", "rowCount"}
        assert got["metricHeaders"] == [{"name": "activeUsers", "type": mtype}]
        assert set(got["metadata"]) == set(real["response"]["metadata"])
        assert isinstance(got["rowCount"], int) and got["rowCount"] == len(got["rows"])
        assert all(isinstance(v["value"], str) for row in got["rows"]
                   for v in row["dimensionValues"] + row["metricValues"])


def test_empty_property_answers_like_the_recording(sandbox: Any, sandbox_state: Any) -> None:
    sandbox_state.add_property(property_id=535258304, time_zone="Europe/Warsaw", currency_code="USD")
    for name, path in (("POST_v1beta_properties_535258304_runReport@450bee7.json", ":runReport"),
                       ("POST_v1beta_properties_535258304_batchRunReports@450bee7.json",
                        ":batchRunReports")):
        real = recording(name)
        r = requests.post(f"{sandbox.url}/v1beta/properties/535258304{path}", params={"$alt": "json"},
                          json=real["request"]["data"], timeout=10)
        assert r.status_code == 200
        assert r.json() == real["response"]


def test_batch_run_reports(client: Any, prop: Any, log: pd.DataFrame) -> None:
    def req(metric: str, prop_name: str = "") -> T.RunReportRequest:
        return T.RunReportRequest(property=prop_name, metrics=[T.Metric(name=metric)],
                                  date_ranges=[T.DateRange(start_date=START.isoformat(),
                                                           end_date=END.isoformat())])
    resp = client.batch_run_reports(T.BatchRunReportsRequest(
        property=f"properties/{PID}", requests=[req("sessions"), req("eventCount", f"properties/{PID}")]))
    assert resp.kind == "analyticsData#batchRunReports"
    assert [r.kind for r in resp.reports] == ["analyticsData#runReport"] * 2
    assert float(resp.reports[0].rows[0].metric_values[0].value) == log.session_id.nunique()
    assert float(resp.reports[1].rows[0].metric_values[0].value) == len(log)
    with pytest.raises(exceptions.BadRequest, match="limited to 5"):
        client.batch_run_reports(T.BatchRunReportsRequest(property=f"properties/{PID}",
                                                          requests=[req("sessions")] * 6))
    with pytest.raises(exceptions.BadRequest, match="same property"):
        client.batch_run_reports(T.BatchRunReportsRequest(
            property=f"properties/{PID}", requests=[req("sessions", "properties/1")]))


def test_property_quota_is_reported_and_consumed(client: Any, prop: Any, sandbox_state: Any) -> None:
    first = run(client, ["eventName"], ["eventCount"], return_property_quota=True).property_quota
    second = run(client, ["date", "eventName"], ["eventCount"], return_property_quota=True).property_quota
    assert first.tokens_per_day.consumed > 0
    assert second.tokens_per_day.remaining < first.tokens_per_day.remaining
    assert second.tokens_per_day.consumed > first.tokens_per_day.consumed  # more rows, more tokens
    assert first.tokens_per_day.consumed + first.tokens_per_day.remaining == QUOTA_LIMITS["tokensPerDay"][0]
    assert first.concurrent_requests.remaining == 10
    assert first.potentially_thresholded_requests_per_hour.remaining == 120
    assert "property_quota" not in run(client, [], ["eventCount"])
    assert token_cost(100_000, 365, 3, 3) > token_cost(10, 7, 1, 1)
    sandbox_state.add_property(property_id=360360, service_level="GOOGLE_ANALYTICS_360")
    big = client.run_report(T.RunReportRequest(property="properties/360360", metrics=[T.Metric(
        name="sessions")], date_ranges=[T.DateRange(start_date="7daysAgo", end_date="today")],
        return_property_quota=True)).property_quota
    assert big.tokens_per_day.remaining + big.tokens_per_day.consumed == 2_000_000


def test_thresholding_flag(client: Any, prop: Any, sandbox_state: Any) -> None:
    sandbox_state.add_property(property_id=777, traffic=make_traffic(
        GOALS, seed=1, daily_sessions=200, start="2024-06-01", thresholding=True))
    resp = client.run_report(T.RunReportRequest(property="properties/777", metrics=[T.Metric(
        name="activeUsers")], date_ranges=[T.DateRange(start_date="2025-01-01", end_date="2025-01-07")]))
    assert resp.metadata.subject_to_thresholding
    assert not run(client, [], ["activeUsers"]).metadata.subject_to_thresholding


def test_metadata(client: Any, prop: Any, sandbox: Any) -> None:
    real = recording("GET_v1beta_properties_0_metadata@450bee7.json")["response"]
    real_dims = {d["apiName"] for d in real["dimensions"]}
    real_mets = {m["apiName"]: m["type"] for m in real["metrics"]}
    universal = client.get_metadata(name="properties/0/metadata")
    own = client.get_metadata(name=f"properties/{PID}/metadata")
    assert universal.name == "properties/0/metadata"
    assert {d.api_name for d in universal.dimensions} <= real_dims
    for m in universal.metrics:
        assert real_mets[m.api_name] == m.type_.name
    per_event = {m.api_name for m in own.metrics} - {m.api_name for m in universal.metrics}
    assert per_event == {f"{kind}:{e}" for kind in ("keyEvents", "sessionKeyEventRate")
                         for e in ("purchase", "generate_lead", "newsletter_signup")}
    r = requests.get(f"{sandbox.url}/v1beta/properties/0/metadata", params={"$alt": "json"}, timeout=10)
    assert list(r.json()) == list(real)  # same keys, same order
    T.Metadata.from_json(r.text, ignore_unknown_fields=False)
    with pytest.raises(exceptions.Forbidden):
        client.get_metadata(name="properties/999999/metadata")


def test_a_28_day_report_is_fast(client: Any, sandbox_state: Any) -> None:
    sandbox_state.add_property(property_id=313131, traffic=make_traffic(
        GOALS, seed=31, daily_sessions=3000, start="2024-06-01"))
    req = T.RunReportRequest(
        property="properties/313131", dimensions=[T.Dimension(name="date"), T.Dimension(name="eventName")],
        metrics=[T.Metric(name=m) for m in ("eventCount", "sessions", "eventValue", "keyEvents", "totalUsers")],
        date_ranges=[T.DateRange(start_date="2025-02-01", end_date="2025-02-28")])
    began = time.perf_counter()
    resp = client.run_report(req)
    elapsed = time.perf_counter() - began
    assert resp.row_count > 28 * 5
    assert elapsed < 1.0, elapsed
