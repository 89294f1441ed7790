"""Data API journeys: the runFunnelReport request, and parsing the answer's recorded quirks.

Fixtures are written from GA4_FACTS ("Data API v1alpha: funnels"): step names prefixed
("3. purchase"), a metricHeaders block repeated (8 headers, 4 values a row), rate metrics typed
TYPE_INTEGER holding fractions, a step nobody reached left out.
"""

from __future__ import annotations

from datetime import date

import pytest

from ga_sync.errors import MalformedAnswer
from ga_sync.journeys import data_api, empty
from ga_sync.journeys.results import funnel_result, with_changes
from ga_sync.model import Condition, EventRule, Funnel, Goal, Spec
from ga_sync.periods import Period

STEPS = ("view_item", "add_to_cart", "begin_checkout", "purchase")
HEADERS = [{"name": "activeUsers", "type": "TYPE_INTEGER"},
           {"name": "funnelStepCompletionRate", "type": "TYPE_INTEGER"},
           {"name": "funnelStepAbandonments", "type": "TYPE_INTEGER"},
           {"name": "funnelStepAbandonmentRate", "type": "TYPE_INTEGER"}]


def row(label: str, *values: str) -> dict:
    return {"dimensionValues": [{"value": label}],
            "metricValues": [{"value": v} for v in values]}


QUIRKY = {
    "funnelTable": {
        "dimensionHeaders": [{"name": "funnelStepName"}],
        "metricHeaders": HEADERS + HEADERS,  # a block of 4 repeated; rows hold 4 values
        "rows": [row("1. view_item", "1200", "0.5", "600", "0.5"),
                 row("2. add_to_cart", "600", "0", "600", "1"),
                 # 3. begin_checkout: nobody reached it, left out
                 row("4. purchase", "0", "0", "0", "0")],
        "metadata": {}},
    "funnelVisualization": {
        "dimensionHeaders": [{"name": "funnelStepName"}],
        "metricHeaders": [{"name": "activeUsers", "type": "TYPE_INTEGER"}],
        "rows": [row("1. view_item", "1200"), row("2. add_to_cart", "600")]},
    "kind": "analyticsData#runFunnelReport",
}


def test_quirky_answer_parses_to_users_per_step():
    assert data_api.parse_funnel(QUIRKY, STEPS) == [1200, 600, 0, 0]


def test_rates_typed_integer_are_never_read_but_recomputed():
    table = QUIRKY["funnelTable"]
    answer = {**QUIRKY, "funnelTable": {**table, "rows": [
        row("1. view_item", "1000", "0.25", "750", "0.75"),
        row("2. add_to_cart", "250", "0.4", "150", "0.6"),
        row("3. begin_checkout", "100", "0.9", "10", "0.1"),
        row("4. purchase", "90", "0", "0", "0")]}}
    users = data_api.parse_funnel(answer, STEPS)
    f = funnel_result(Funnel("checkout", STEPS), users, "data-api")
    assert [s.users for s in f.steps] == [1000, 250, 100, 90]
    assert [s.completion_rate for s in f.steps] == [0.25, 0.4, 0.9, None]
    assert [s.abandonments for s in f.steps] == [750, 150, 10, None]
    assert f.overall_rate == 0.09


def test_unprefixed_names_reordered_rows_and_headers_in_another_order():
    answer = {"funnelTable": {
        "dimensionHeaders": [{"name": "funnelStepName"}],
        "metricHeaders": [{"name": "funnelStepCompletionRate"}, {"name": "activeUsers"}],
        "rows": [row("Purchase", "0", "7"), row("view_item", "0.5", "40"),
                 row("2. add_to_cart", "0.3", "20")]}}
    assert data_api.parse_funnel(answer, STEPS) == [40, 20, 0, 7]


def test_visualization_stands_in_for_an_empty_table():
    answer = {"funnelTable": {"dimensionHeaders": [{"name": "funnelStepName"}],
                              "metricHeaders": HEADERS},
              "funnelVisualization": QUIRKY["funnelVisualization"]}
    assert data_api.parse_funnel(answer, STEPS) == [1200, 600, 0, 0]


def test_no_rows_at_all_is_nobody_and_garbage_is_skipped():
    assert data_api.parse_funnel({"funnelTable": {}}, STEPS) == [0, 0, 0, 0]
    answer = {"funnelTable": {"metricHeaders": HEADERS, "rows": [
        "nonsense", row("1. view_item", "n/a"), row("9. elsewhere", "5"),
        row("1. view_item", "3", "0", "0", "0")]}}
    assert data_api.parse_funnel(answer, STEPS) == [3, 0, 0, 0]


def test_an_answer_without_sub_reports_is_malformed():
    with pytest.raises(MalformedAnswer):
        data_api.parse_funnel({"kind": "analyticsData#runFunnelReport"}, STEPS,
                              property="properties/1")


def test_request_shape_within_open_and_goal_definitions():
    thanks = Goal("thank_you", "macro", 50.0, origin=EventRule(
        "page_view", (Condition("page_location", "contains", "/thank-you", True),)))
    spec = Spec(client="c", properties=("properties/1",), currency="USD", goals=(thanks,))
    period = Period(date(2026, 1, 5), date(2026, 1, 11))
    body = data_api.funnel_request(spec, Funnel("f", ("view_item", "thank_you"), within=3600,
                                                open=True), period)
    assert body["dateRanges"] == [{"startDate": "2026-01-05", "endDate": "2026-01-11"}]
    assert body["funnel"]["isOpenFunnel"] is True
    first, second = body["funnel"]["steps"]
    assert first == {"name": "view_item",
                     "filterExpression": {"funnelEventFilter": {"eventName": "view_item"}}}
    assert second["withinDurationFromPriorStep"] == "3600s"
    assert second["filterExpression"] == {"funnelEventFilter": {
        "eventName": "page_view", "funnelParameterFilterExpression": {"funnelParameterFilter": {
            "eventParameterName": "page_location",
            "stringFilter": {"matchType": "CONTAINS", "value": "/thank-you",
                             "caseSensitive": False}}}}}


def test_step_changes_against_the_previous_period():
    now = [funnel_result(Funnel("f", ("a", "b")), [10, 4], "data-api")]
    before = [funnel_result(Funnel("f", ("a", "b")), [8, 0], "data-api")]
    with_changes(now, before)
    assert [s.change for s in now[0].steps] == [0.25, None]


def test_needs_export_and_not_requested_json():
    j = empty("not-requested", "needs-export")
    assert j.assists.to_json() == {"status": "needs-export", "macro_users": None,
                                   "average_macro_value": None, "goals": []}
    assert j.identified.to_json()["status"] == "not-requested"
