"""The sandbox's goal machinery through the official v1alpha Python client (REST, anonymous):
data streams, event create rules, audiences, change history, reporting data annotations, and
the traffic model honouring rules and audience triggers from the moment they exist.

Expected numbers are computed here from the raw event log (`traffic.event_log`) with pandas,
independently of derived.py.
"""

from __future__ import annotations

import datetime as dt
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from google.analytics.admin_v1alpha import AnalyticsAdminServiceClient
from google.analytics.admin_v1alpha import types as alpha
from google.analytics.data_v1beta import BetaAnalyticsDataClient
from google.analytics.data_v1beta import types as data_types
from google.api_core import exceptions
from google.auth.credentials import AnonymousCredentials
from google.oauth2.credentials import Credentials
from google.protobuf import field_mask_pb2

from ga_sync.sandbox import derived, machinery
from ga_sync.sandbox.scenarios import seed_scenario
from ga_sync.sandbox.server import SandboxServer
from ga_sync.sandbox.state import SandboxState
from ga_sync.sandbox.traffic import event_log, make_traffic

PID = "616161616"
TZ = "Europe/Warsaw"
DANA = "dana@client.example"


def alpha_client(url: str, credentials: Any = None) -> AnalyticsAdminServiceClient:
    return AnalyticsAdminServiceClient(credentials=credentials or AnonymousCredentials(),
                                       transport="rest", client_options={"api_endpoint": url})


def data_client(url: str) -> BetaAnalyticsDataClient:
    return BetaAnalyticsDataClient(credentials=AnonymousCredentials(), transport="rest",
                                   client_options={"api_endpoint": url})


@pytest.fixture
def site(sandbox_state: SandboxState) -> Any:
    start = date.today() - timedelta(days=120)
    traffic = make_traffic([("purchase", "macro", None)], extra_events=["file_download"], seed=11,
                           daily_sessions=700, start=start, property_id=PID)
    return sandbox_state.add_property(property_id=PID, time_zone=TZ, traffic=traffic)


@pytest.fixture
def admin(sandbox: SandboxServer, site: Any) -> AnalyticsAdminServiceClient:
    return alpha_client(sandbox.url)


def stream(site: Any) -> str:
    return f"properties/{PID}/dataStreams/{machinery.web_streams(site)[0]}"


def rule_body(dest: str = "brochure_download", **extra: Any) -> alpha.EventCreateRule:
    return alpha.EventCreateRule(destination_event=dest, source_copy_parameters=True,
                                 event_conditions=[
                                     alpha.MatchingCondition(field="event_name", comparison_type="EQUALS",
                                                             value="file_download"),
                                     alpha.MatchingCondition(field="link_url", comparison_type="CONTAINS",
                                                             value="/brochure")], **extra)


def session_audience(event: str = "engaged_visit", pages: int = 5,
                     log: str = "AUDIENCE_MEMBERSHIP_RENEWED", days: int = 30) -> dict:
    count = {"dimensionOrMetricFilter": {"fieldName": "eventCount", "numericFilter": {
        "operation": "GREATER_THAN", "value": {"int64Value": str(pages - 1)}}}}
    leaf = {"eventFilter": {"eventName": "page_view", "eventParameterFilterExpression": {
        "andGroup": {"filterExpressions": [{"orGroup": {"filterExpressions": [count]}}]}}}}
    return {"displayName": f"ga-sync: {event}", "description": f"Goal {event}",
            "membershipDurationDays": days, "eventTrigger": {"eventName": event, "logCondition": log},
            "filterClauses": [{"clauseType": "INCLUDE", "simpleFilter": {
                "scope": "AUDIENCE_FILTER_SCOPE_WITHIN_SAME_SESSION",
                "filterExpression": {"andGroup": {"filterExpressions": [
                    {"orGroup": {"filterExpressions": [leaf]}}]}}}}]}


# ---- data streams ------------------------------------------------------------------------------

def test_streams_default_none_and_apps(sandbox: SandboxServer, admin: AnalyticsAdminServiceClient,
                                       sandbox_state: SandboxState, site: Any) -> None:
    streams = list(admin.list_data_streams(parent=f"properties/{PID}"))
    assert [s.type_.name for s in streams] == ["WEB_DATA_STREAM"]
    assert streams[0].web_stream_data.measurement_id.startswith("G-")
    machinery.set_streams(sandbox_state, PID, web=0, android=1, ios=1)
    streams = list(admin.list_data_streams(parent=f"properties/{PID}"))
    assert [s.type_.name for s in streams] == ["ANDROID_APP_DATA_STREAM", "IOS_APP_DATA_STREAM"]
    assert streams[0].android_app_stream_data.package_name
    assert admin.get_data_stream(name=streams[1].name).ios_app_stream_data.bundle_id
    with pytest.raises(exceptions.NotFound):
        admin.get_data_stream(name=f"properties/{PID}/dataStreams/1")
    # a regular expression is refused on an app stream, accepted on a web one
    regex = alpha.EventCreateRule(destination_event="thanks", event_conditions=[
        alpha.MatchingCondition(field="page_location", comparison_type="REGULAR_EXPRESSION",
                                value="thank-?you")])
    with pytest.raises(exceptions.BadRequest, match="only supported for web streams"):
        admin.create_event_create_rule(parent=streams[0].name, event_create_rule=regex)
    machinery.set_streams(sandbox_state, PID, web=1, android=1)
    web = [s for s in admin.list_data_streams(parent=f"properties/{PID}")
           if s.type_.name == "WEB_DATA_STREAM"][0]
    assert web.name == stream(site)  # the first web stream keeps its id
    assert admin.create_event_create_rule(parent=web.name, event_create_rule=regex).name


# ---- event create rules -----------------------------------------------------------------------

def test_rule_lifecycle(admin: AnalyticsAdminServiceClient, site: Any) -> None:
    parent = stream(site)
    created = admin.create_event_create_rule(parent=parent, event_create_rule=rule_body())
    assert created.name.startswith(parent + "/eventCreateRules/")
    assert created.event_conditions[1].comparison_type.name == "CONTAINS"
    assert admin.get_event_create_rule(name=created.name) == created
    names = []
    for i in range(4):
        names.append(admin.create_event_create_rule(
            parent=parent, event_create_rule=rule_body(f"extra_{i}")).name)
    pages = list(admin.list_event_create_rules(
        request={"parent": parent, "page_size": 2}).pages)
    assert [len(p.event_create_rules) for p in pages] == [2, 2, 1]
    patched = admin.update_event_create_rule(
        event_create_rule=alpha.EventCreateRule(name=created.name, destination_event="pdf_download",
                                                event_conditions=[alpha.MatchingCondition(
                                                    field="file_extension",
                                                    comparison_type="EQUALS_CASE_INSENSITIVE",
                                                    value="PDF")]),
        update_mask=field_mask_pb2.FieldMask(paths=["destination_event", "event_conditions"]))
    assert patched.destination_event == "pdf_download" and patched.source_copy_parameters
    assert [c.field for c in admin.get_event_create_rule(name=created.name).event_conditions] == \
        ["file_extension"]
    with pytest.raises(exceptions.BadRequest, match="update_mask"):
        admin.update_event_create_rule(event_create_rule=patched,
                                       update_mask=field_mask_pb2.FieldMask(paths=[]))
    admin.delete_event_create_rule(name=created.name)
    with pytest.raises(exceptions.NotFound):
        admin.get_event_create_rule(name=created.name)
    assert created.name not in [r.name for r in admin.list_event_create_rules(parent=parent)]


@pytest.mark.parametrize("change, message", [
    (dict(destination_event=""), "destination_event' is required"),
    (dict(destination_event="1st_event"), "start with a letter"),
    (dict(destination_event="has-dash"), "letters, digits"),
    (dict(destination_event="x" * 40), "less than 40"),
    (dict(event_conditions=[]), "between 1 and 10"),
    (dict(event_conditions=[alpha.MatchingCondition(field="event_name", comparison_type="EQUALS",
                                                    value="x")] * 11), "between 1 and 10"),
    (dict(event_conditions=[alpha.MatchingCondition(field="event_name", value="x")]),
     "comparison_type' is required"),
    (dict(event_conditions=[alpha.MatchingCondition(field="a b", comparison_type="EQUALS",
                                                    value="x")]), "cannot contain spaces"),
    (dict(event_conditions=[alpha.MatchingCondition(field="page_location",
                                                    comparison_type="EQUALS")]),
     "value' is required"),
    (dict(event_conditions=[alpha.MatchingCondition(field="page_location",
                                                    comparison_type="REGULAR_EXPRESSION",
                                                    value="thank(you")]), "invalid regular"),
    (dict(event_conditions=[alpha.MatchingCondition(field="page_location",
                                                    comparison_type="REGULAR_EXPRESSION",
                                                    value="(?=thanks)")]), "invalid regular"),
    (dict(parameter_mutations=[alpha.ParameterMutation(parameter=f"p{i}", parameter_value="v")
                               for i in range(21)]), "at most 20"),
    (dict(parameter_mutations=[alpha.ParameterMutation(parameter="p", parameter_value="v" * 100)]),
     "less than 100"),
])
def test_rule_validation(admin: AnalyticsAdminServiceClient, site: Any, change: dict,
                         message: str) -> None:
    body = rule_body()
    for k, v in change.items():
        setattr(body, k, v)
    with pytest.raises(exceptions.BadRequest, match=message) as err:
        admin.create_event_create_rule(parent=stream(site), event_create_rule=body)
    assert err.value.code == 400
    assert list(admin.list_event_create_rules(parent=stream(site))) == []


def test_created_events_limit(admin: AnalyticsAdminServiceClient, site: Any,
                              sandbox_state: SandboxState) -> None:
    from ga_sync import garules
    for i in range(garules.CREATED_EVENTS_PER_PROPERTY):
        machinery.create_rule(sandbox_state, PID, stream(site).split("/")[-1],
                              machinery.stored(rule_body(f"made_{i}")))
    with pytest.raises(exceptions.BadRequest, match="limit is 50") as err:
        admin.create_event_create_rule(parent=stream(site), event_create_rule=rule_body("one_more"))
    assert "FAILED_PRECONDITION" in str(err.value.response.json())


def test_enum_numbers_are_stored_as_names(sandbox: SandboxServer, site: Any) -> None:
    import requests
    url = f"{sandbox.url}/v1alpha/{stream(site)}/eventCreateRules"
    body = {"destinationEvent": "x_made", "eventConditions": [
        {"field": "event_name", "comparisonType": 1, "value": "page_view"}]}
    made = requests.post(url, json=body, params={"$alt": "json;enum-encoding=int"}).json()
    assert made["eventConditions"][0]["comparisonType"] == 1
    read = requests.get(f"{sandbox.url}/v1alpha/{made['name']}").json()
    assert read["eventConditions"][0]["comparisonType"] == "EQUALS"
    bad = requests.post(url, json={**body, "bogus": 1})
    assert bad.status_code == 400 and "bogus" in bad.json()["error"]["message"]


# ---- audiences ---------------------------------------------------------------------------------

def test_audience_lifecycle_and_immutability(admin: AnalyticsAdminServiceClient, site: Any) -> None:
    parent = f"properties/{PID}"
    made = admin.create_audience(parent=parent, audience=alpha.Audience.from_json(
        __import__("json").dumps(session_audience())))
    assert made.name.startswith(parent + "/audiences/") and made.create_time
    clause = made.filter_clauses[0].simple_filter
    assert clause.scope.name == "AUDIENCE_FILTER_SCOPE_WITHIN_SAME_SESSION"
    leaf = clause.filter_expression.and_group.filter_expressions[0].or_group.filter_expressions[0]
    assert leaf.event_filter.event_name == "page_view"
    assert admin.get_audience(name=made.name) == made
    assert [a.name for a in admin.list_audiences(parent=parent)] == [made.name]

    renamed = admin.update_audience(
        audience=alpha.Audience(name=made.name, display_name="Engaged", description="d",
                                event_trigger=alpha.AudienceEventTrigger(
                                    event_name="engaged_reader", log_condition="AUDIENCE_JOINED")),
        update_mask=field_mask_pb2.FieldMask(paths=["display_name", "event_trigger"]))
    assert renamed.display_name == "Engaged" and renamed.description == made.description
    assert renamed.event_trigger.event_name == "engaged_reader"
    for path in ("membership_duration_days", "filter_clauses", "exclusion_duration_mode"):
        with pytest.raises(exceptions.BadRequest, match=f"'{path}' is immutable"):
            admin.update_audience(audience=alpha.Audience(name=made.name, membership_duration_days=7),
                                  update_mask=field_mask_pb2.FieldMask(paths=[path]))
    with pytest.raises(exceptions.BadRequest, match="immutable"):
        admin.update_audience(audience=alpha.Audience(name=made.name, display_name="x",
                                                      description="d", membership_duration_days=7),
                              update_mask=field_mask_pb2.FieldMask(paths=["*"]))
    assert admin.get_audience(name=made.name).membership_duration_days == 30

    admin.archive_audience(request={"name": made.name})
    assert list(admin.list_audiences(parent=parent)) == []
    assert admin.get_audience(name=made.name).display_name == "Engaged"  # still readable
    with pytest.raises(exceptions.BadRequest, match="archived"):
        admin.archive_audience(request={"name": made.name})


@pytest.mark.parametrize("change, message", [
    ({"displayName": ""}, "display_name' is required"),
    ({"description": ""}, "description' is required"),
    ({"membershipDurationDays": 0}, "between 1 and 540"),
    ({"membershipDurationDays": 541}, "between 1 and 540"),
    ({"filterClauses": []}, "filter_clauses' is required"),
    ({"eventTrigger": {"eventName": "9lives", "logCondition": "AUDIENCE_JOINED"}}, "event_name"),
    ({"eventTrigger": {"eventName": "ga_thing", "logCondition": "AUDIENCE_JOINED"}}, "reserved"),
    ({"eventTrigger": {"eventName": "fine"}}, "log_condition' is required"),
    ({"filterClauses": [{"simpleFilter": {"scope": 2, "filterExpression": {
        "eventFilter": {"eventName": "x"}}}}]}, "clause_type' is required"),
    ({"filterClauses": [{"clauseType": "INCLUDE"}]}, "simple_filter or a sequence_filter"),
])
def test_audience_validation(admin: AnalyticsAdminServiceClient, change: dict, message: str) -> None:
    import json
    body = {**session_audience(), **change}
    if "eventTrigger" in change and not change["eventTrigger"]:
        body.pop("eventTrigger")
    with pytest.raises(exceptions.BadRequest, match=message):
        admin.create_audience(parent=f"properties/{PID}", audience=alpha.Audience.from_json(
            json.dumps(body)))


def test_audience_limits(admin: AnalyticsAdminServiceClient, sandbox_state: SandboxState) -> None:
    import json
    for i in range(20):
        machinery.create_audience(sandbox_state, PID, session_audience(f"goal_{i}"))
    with pytest.raises(exceptions.BadRequest, match="limit is 20"):
        admin.create_audience(parent=f"properties/{PID}", audience=alpha.Audience.from_json(
            json.dumps(session_audience("goal_20"))))
    plain = {k: v for k, v in session_audience().items() if k != "eventTrigger"}
    for _ in range(80):
        machinery.create_audience(sandbox_state, PID, plain)
    with pytest.raises(exceptions.BadRequest, match="limit is 100"):
        admin.create_audience(parent=f"properties/{PID}", audience=alpha.Audience.from_json(
            json.dumps(plain)))
    first = next(iter(admin.list_audiences(parent=f"properties/{PID}")))
    admin.archive_audience(request={"name": first.name})  # archived ones free a place
    admin.create_audience(parent=f"properties/{PID}", audience=alpha.Audience.from_json(
        json.dumps(session_audience("goal_20"))))


# ---- reporting data annotations ----------------------------------------------------------------

def test_annotations(admin: AnalyticsAdminServiceClient) -> None:
    parent = f"properties/{PID}"
    made = admin.create_reporting_data_annotation(
        parent=parent, reporting_data_annotation=alpha.ReportingDataAnnotation(
            title="ga-sync: 2 goals created", color="BLUE",
            annotation_date={"year": 2026, "month": 3, "day": 2}))
    assert made.name.startswith(parent + "/reportingDataAnnotations/")
    assert made.annotation_date.day == 2 and not made.system_generated
    ranged = admin.create_reporting_data_annotation(
        parent=parent, reporting_data_annotation=alpha.ReportingDataAnnotation(
            title="campaign", color="GREEN", description="spring",
            annotation_date_range={"start_date": {"year": 2026, "month": 3, "day": 1},
                                   "end_date": {"year": 2026, "month": 3, "day": 9}}))
    assert [a.name for a in admin.list_reporting_data_annotations(parent=parent)] == \
        [made.name, ranged.name]
    patched = admin.update_reporting_data_annotation(
        reporting_data_annotation=alpha.ReportingDataAnnotation(name=made.name, title="renamed"),
        update_mask=field_mask_pb2.FieldMask(paths=["title"]))
    assert patched.title == "renamed" and patched.color.name == "BLUE"
    assert admin.get_reporting_data_annotation(name=made.name).title == "renamed"
    for bad, message in ((dict(color="BLUE", annotation_date={"year": 2026, "month": 1, "day": 1}),
                          "title' is required"),
                         (dict(title="t", annotation_date={"year": 2026, "month": 1, "day": 1}),
                          "color' is required"),
                         (dict(title="t", color="ORANGE",
                               annotation_date={"year": 2026, "month": 1, "day": 1}), "ORANGE"),
                         (dict(title="t", color="RED"), "annotation_date"),
                         (dict(title="t", color="RED",
                               annotation_date={"year": 2026, "month": 2, "day": 30}), "valid date"),
                         (dict(title="t", color="RED", annotation_date_range={
                             "start_date": {"year": 2026, "month": 3, "day": 9},
                             "end_date": {"year": 2026, "month": 3, "day": 1}}), "before")):
        with pytest.raises(exceptions.BadRequest, match=message):
            admin.create_reporting_data_annotation(
                parent=parent, reporting_data_annotation=alpha.ReportingDataAnnotation(**bad))
    admin.delete_reporting_data_annotation(name=made.name)
    assert [a.name for a in admin.list_reporting_data_annotations(parent=parent)] == [ranged.name]


# ---- change history ----------------------------------------------------------------------------

def search(admin: AnalyticsAdminServiceClient, account: str, **kw: Any) -> list[alpha.ChangeHistoryEvent]:
    return list(admin.search_change_history_events(request={"account": account, **kw}))


def test_change_history_actor_filters_and_paging(sandbox: SandboxServer,
                                                  admin: AnalyticsAdminServiceClient,
                                                  site: Any) -> None:
    account = site.account
    dana = alpha_client(sandbox.url, Credentials(token=f"sandbox:{DANA}"))
    rule = dana.create_event_create_rule(parent=stream(site), event_create_rule=rule_body())
    ke = admin.create_key_event(parent=f"properties/{PID}", key_event=alpha.KeyEvent(
        event_name="brochure_download", counting_method="ONCE_PER_EVENT"),
        metadata=[("x-sandbox-actor", "lee@agency.example")])
    admin.update_event_create_rule(event_create_rule=alpha.EventCreateRule(
        name=rule.name, source_copy_parameters=False),
        update_mask=field_mask_pb2.FieldMask(paths=["source_copy_parameters"]))
    admin.delete_key_event(name=ke.name)

    events = search(admin, account)
    assert [(e.changes[0].action.name, e.user_actor_email) for e in events] == [
        ("DELETED", "ga-sync@sandbox.invalid"), ("UPDATED", "ga-sync@sandbox.invalid"),
        ("CREATED", "lee@agency.example"), ("CREATED", DANA)]
    assert all(e.actor_type.name == "USER" for e in events)
    times = [e.change_time for e in events]
    assert times == sorted(times, reverse=True)
    update = events[1].changes[0]
    assert update.resource == rule.name
    assert update.resource_before_change.event_create_rule.source_copy_parameters is True
    assert update.resource_after_change.event_create_rule.source_copy_parameters is False
    deleted = events[0].changes[0]
    assert deleted.resource_before_change.key_event.event_name == "brochure_download"
    assert "resource_after_change" not in alpha.ChangeHistoryChange.to_dict(deleted) or \
        not alpha.ChangeHistoryChange.pb(deleted).HasField("resource_after_change")

    only_dana = search(admin, account, actor_email=[DANA])
    assert [e.changes[0].resource for e in only_dana] == [rule.name]
    conv = search(admin, account, resource_type=["CONVERSION_EVENT"], action=["CREATED"])
    assert len(conv) == 1
    assert conv[0].changes[0].resource_after_change.conversion_event.event_name == "brochure_download"
    assert "/conversionEvents/" in conv[0].changes[0].resource
    rules = search(admin, account, resource_type=["EVENT_CREATE_RULE"], property=f"properties/{PID}")
    assert len(rules) == 2
    window = search(admin, account, earliest_change_time=events[2].change_time,
                    latest_change_time=events[1].change_time)
    assert [e.id for e in window] == [events[1].id, events[2].id]

    pager = admin.search_change_history_events(request={"account": account, "page_size": 3})
    pages = list(pager.pages)
    assert [len(p.change_history_events) for p in pages] == [3, 1]
    assert [e.id for p in pages for e in p.change_history_events] == [e.id for e in events]
    with pytest.raises(exceptions.BadRequest, match="must not change"):
        admin.search_change_history_events(request={
            "account": account, "page_size": 3, "page_token": pages[0].next_page_token,
            "action": ["CREATED"]}).pages.__next__()
    with pytest.raises(exceptions.Forbidden):
        search(admin, "accounts/999")


def test_change_history_page_size_caps_at_200(admin: AnalyticsAdminServiceClient,
                                              sandbox_state: SandboxState, site: Any) -> None:
    for i in range(205):
        machinery.create_annotation(sandbox_state, PID, {
            "title": f"n{i}", "color": "RED", "annotationDate": {"year": 2026, "month": 1, "day": 1}})
    first = next(admin.search_change_history_events(
        request={"account": site.account, "page_size": 1000}).pages)
    assert len(first.change_history_events) == 200 and first.next_page_token
    default = next(admin.search_change_history_events(request={"account": site.account}).pages)
    assert len(default.change_history_events) == 50
    assert default.change_history_events[0].changes[0].resource_after_change \
        .reporting_data_annotation.title == "n204"


def test_v1beta_search_answers_key_events_as_conversion_events(sandbox: SandboxServer,
                                                               admin: AnalyticsAdminServiceClient,
                                                               site: Any) -> None:
    from google.analytics.admin_v1beta import AnalyticsAdminServiceClient as Beta
    admin.create_event_create_rule(parent=stream(site), event_create_rule=rule_body())
    admin.create_key_event(parent=f"properties/{PID}", key_event=alpha.KeyEvent(
        event_name="brochure_download", counting_method="ONCE_PER_EVENT"))
    beta = Beta(credentials=AnonymousCredentials(), transport="rest",
                client_options={"api_endpoint": sandbox.url})
    events = list(beta.search_change_history_events(request={"account": site.account}))
    assert len(events) == 1  # v1beta has no event create rules in its change history resource
    assert events[0].changes[0].resource_after_change.conversion_event.event_name == \
        "brochure_download"


def test_persistence_across_restart(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    state = SandboxState(path)
    traffic = make_traffic([("purchase", "macro", None)], seed=2, daily_sessions=50,
                           property_id=PID)
    record = state.add_property(property_id=PID, traffic=traffic)
    state.save()
    with SandboxServer(state) as server:
        admin = alpha_client(server.url)
        rule = admin.create_event_create_rule(parent=stream(record), event_create_rule=rule_body())
        aud = admin.create_audience(parent=f"properties/{PID}", audience=alpha.Audience.from_json(
            __import__("json").dumps(session_audience())))
        note = admin.create_reporting_data_annotation(
            parent=f"properties/{PID}", reporting_data_annotation=alpha.ReportingDataAnnotation(
                title="t", color="RED", annotation_date={"year": 2026, "month": 1, "day": 2}))
        admin.archive_audience(request={"name": aud.name})
    # reopened as after a kill: the log alone holds the writes (no close, no compaction)
    reopened = SandboxState(path)
    with SandboxServer(reopened) as server:
        admin = alpha_client(server.url)
        assert admin.get_event_create_rule(name=rule.name) == rule
        assert list(admin.list_audiences(parent=f"properties/{PID}")) == []
        assert admin.get_audience(name=aud.name).display_name == aud.display_name
        assert admin.get_reporting_data_annotation(name=note.name) == note
        history = search(admin, record.account)
        assert [e.changes[0].action.name for e in history] == ["DELETED", "CREATED", "CREATED",
                                                               "CREATED"]
        # ids keep increasing after a restart
        again = admin.create_event_create_rule(parent=stream(record),
                                               event_create_rule=rule_body("other"))
        assert int(again.name.rsplit("/", 1)[1]) > int(rule.name.rsplit("/", 1)[1])
    assert derived.applicable(reopened.properties[PID])  # versions persisted too


# ---- traffic -----------------------------------------------------------------------------------

def _report(url: str, event: str, start: date, end: date) -> dict[str, int]:
    data = data_client(url)
    resp = data.run_report(data_types.RunReportRequest(
        property=f"properties/{PID}", date_ranges=[{"start_date": str(start), "end_date": str(end)}],
        dimensions=[{"name": "date"}], metrics=[{"name": "eventCount"}],
        dimension_filter={"filter": {"field_name": "eventName",
                                     "string_filter": {"value": event}}}))
    return {r.dimension_values[0].value: int(r.metric_values[0].value) for r in resp.rows}


def _session_times(raw: pd.DataFrame) -> pd.Series:
    midnight = pd.to_datetime(raw["date"].astype(str), format="%Y%m%d").dt.tz_localize(TZ)
    return midnight + pd.to_timedelta(raw["session_start"], unit="s")


def test_rule_makes_events_from_its_creation_on(sandbox: SandboxServer, site: Any,
                                                sandbox_state: SandboxState) -> None:
    today = date.today()
    start, end = today - timedelta(days=30), today - timedelta(days=1)
    created = dt.datetime.combine(today - timedelta(days=12), dt.time(13, 30),
                                  tzinfo=dt.timezone.utc)
    patched = created + timedelta(days=5)
    sid = stream(site).split("/")[-1]
    rule = machinery.create_rule(sandbox_state, PID, sid, machinery.stored(rule_body()),
                                 actor=DANA, when=created)
    rid = rule["name"].rsplit("/", 1)[1]
    machinery.update_rule(sandbox_state, PID, sid, rid, {"eventConditions": [
        {"field": "event_name", "comparisonType": "EQUALS", "value": "file_download"},
        {"field": "file_extension", "comparisonType": "EQUALS", "value": "pdf"}]},
        ["event_conditions"], when=patched)

    raw = event_log(site.traffic, start, end, TZ, parameters=True)
    at = _session_times(raw)
    downloads = raw.event_name == "file_download"
    first = downloads & raw.link_url.astype(str).str.contains("/brochure") & \
        (at >= created) & (at < patched)
    second = downloads & (raw.file_extension.astype(str) == "pdf") & (at >= patched)
    expected = raw[first | second].groupby("date", observed=True).size()
    expected = {d: int(n) for d, n in expected.items() if n}
    assert expected and min(expected) >= created.astimezone(dt.timezone.utc).strftime("%Y%m%d")

    seen = _report(sandbox.url, "brochure_download", start, end)
    assert seen == expected
    # nothing before the rule existed, in reports starting before it
    assert _report(sandbox.url, "brochure_download", start, created.date() - timedelta(days=1)) == {}
    # the helper's log agrees, with the source rows' pages and parameters copied
    log = derived.property_event_log(sandbox_state, PID, start, end)
    made = log[log.event_name == "brochure_download"]
    assert len(made) == sum(expected.values()) and (made.origin == "rule").all()
    assert (made.file_extension.astype(str) == "pdf").all()
    assert (log[log.origin == "collected"].drop(columns=["origin", "event_time"])
            .reset_index(drop=True).astype(str).equals(raw.reset_index(drop=True).astype(str)))
    # deleting it stops it
    machinery.delete_rule(sandbox_state, PID, sid, rid, when=patched + timedelta(days=2))
    after = _report(sandbox.url, "brochure_download", start, end)
    stop = (patched + timedelta(days=2))
    assert sum(after.values()) == int((second & (at < stop)).sum() + first.sum())


def test_audience_triggers(sandbox: SandboxServer, site: Any, sandbox_state: SandboxState) -> None:
    today = date.today()
    start, end = today - timedelta(days=20), today - timedelta(days=1)
    made = dt.datetime.combine(today - timedelta(days=40), dt.time(0), tzinfo=dt.timezone.utc)
    machinery.create_audience(sandbox_state, PID, session_audience("engaged_visit", 5,
                                                                   "AUDIENCE_MEMBERSHIP_RENEWED"),
                              when=made)
    machinery.create_audience(sandbox_state, PID, session_audience("joined_reader", 4,
                                                                   "AUDIENCE_JOINED", days=7),
                              when=made)
    raw = event_log(site.traffic, start - timedelta(days=8), end, TZ)
    per_session = raw.groupby("session_id", sort=False).agg(
        user=("user_id", "first"), date=("date", "first"), start=("session_start", "first"),
        pages=("event_name", lambda s: int((s == "page_view").sum())))
    per_session["date"] = per_session.date.astype(str)
    in_range = (per_session.date >= start.strftime("%Y%m%d")).to_numpy(bool)

    renewed = per_session[(per_session.pages >= 5) & in_range]
    expected_renewed = renewed.groupby("date", observed=True).user.nunique()
    seen = _report(sandbox.url, "engaged_visit", start, end)
    assert seen == {d: int(n) for d, n in expected_renewed.items() if n}

    q = per_session[(per_session.pages >= 4).to_numpy(bool)].copy()
    q["t"] = pd.to_datetime(q.date, format="%Y%m%d").dt.tz_localize(TZ) + \
        pd.to_timedelta(q.start, unit="s")
    q = q.sort_values(["user", "t"])
    gap = q.groupby("user").t.diff()
    q["joined"] = gap.isna() | (gap > pd.Timedelta(days=7))
    joins = q[q.joined.to_numpy(bool) & (q.date >= start.strftime("%Y%m%d")).to_numpy(bool)]
    seen_joined = _report(sandbox.url, "joined_reader", start, end)
    expected_joined = joins.groupby("date", observed=True).size()
    assert seen_joined == {d: int(n) for d, n in expected_joined.items() if n}
    # users who already joined within the membership do not log it again
    assert sum(seen_joined.values()) < int(((q.date.astype(str) >= start.strftime("%Y%m%d"))).sum())


def test_audience_created_later_triggers_from_then(sandbox: SandboxServer, site: Any,
                                                   sandbox_state: SandboxState) -> None:
    today = date.today()
    made = dt.datetime.combine(today - timedelta(days=5), dt.time(0), tzinfo=dt.timezone.utc)
    machinery.create_audience(sandbox_state, PID, session_audience("engaged_visit"), when=made)
    seen = _report(sandbox.url, "engaged_visit", today - timedelta(days=15), today - timedelta(days=1))
    local = made.astimezone(dt.timezone(timedelta(hours=1))).strftime("%Y%m%d")
    assert seen and min(seen) >= local


# ---- the messy scenario -------------------------------------------------------------------------

def test_messy_scenario_has_hand_made_machinery_by_a_named_person(sandbox: SandboxServer,
                                                                  sandbox_state: SandboxState) -> None:
    main, _ = seed_scenario(sandbox_state, "messy")
    admin = alpha_client(sandbox.url)
    record = sandbox_state.properties[main]
    web = f"properties/{main}/dataStreams/{machinery.web_streams(record)[0]}"
    rules = list(admin.list_event_create_rules(parent=web))
    audiences = list(admin.list_audiences(parent=f"properties/{main}"))
    assert rules and audiences
    history = search(admin, record.account, property=f"properties/{main}",
                     actor_email=["dana@client.example"])
    kinds = {e.changes[0].resource.split("/")[-2] for e in history}
    assert {"eventCreateRules", "audiences"} <= kinds
    assert all(e.change_time < dt.datetime.now(dt.timezone.utc) - timedelta(days=1) for e in history)
    # seeding again changes nothing
    seed_scenario(sandbox_state, "messy")
    assert len(list(admin.list_event_create_rules(parent=web))) == len(rules)
