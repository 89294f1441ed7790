"""The sandbox's journeys: funnels across sessions, signed-in users, micro goals that lead to sales.

runFunnelReport is read through the official v1alpha Python client and checked against a
brute-force computation from the event log (plain Python per user, not the sandbox's sorted
merge), with event times from `writer.timestamps` or read back from the sandbox's export.
"""

from __future__ import annotations

import hashlib
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest
import requests
from google.analytics.data_v1alpha import AlphaAnalyticsDataClient
from google.analytics.data_v1alpha.types import (DateRange, Funnel, FunnelEventFilter,
                                                 FunnelFilterExpression, FunnelStep,
                                                 RunFunnelReportRequest)
from google.analytics.data_v1beta import BetaAnalyticsDataClient
from google.analytics.data_v1beta.types import DateRange as BetaDateRange
from google.analytics.data_v1beta.types import Dimension, Metric, RunReportRequest
from google.api_core import exceptions
from google.auth.credentials import AnonymousCredentials
from google.protobuf import duration_pb2

from ga_sync.export.writer import timestamps
from ga_sync.sandbox import funnels
from ga_sync.sandbox.derived import property_event_log
from ga_sync.sandbox.export import export_property
from ga_sync.sandbox.seed import journeys_for, traffic_for
from ga_sync.sandbox.traffic import event_log, make_traffic
from ga_sync.spec import load_spec

PID = "100000351"
SPEC = f"""client: Shop
properties: [{PID}]
currency: USD
goals:
  - {{event: purchase, tier: macro, value: event}}
  - {{event: add_to_cart, tier: micro, value: 2}}
  - {{event: begin_checkout, tier: micro, value: 4}}
  - {{event: sign_up, tier: micro, value: 12, identifies: true}}
  - {{event: newsletter_signup, tier: micro, value: 1.5}}
funnels:
  - {{name: checkout, steps: [view_item, add_to_cart, begin_checkout, purchase], within: 30d}}
"""
CHECKOUT = ("view_item", "add_to_cart", "begin_checkout", "purchase")
TZ = "Europe/Warsaw"
END = date.today() - timedelta(days=1)
START = END - timedelta(days=20)


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> Any:
    path = tmp_path_factory.mktemp("spec") / "shop.yaml"
    path.write_text(SPEC)
    return load_spec(path)


@pytest.fixture
def shop(sandbox: Any, spec: Any) -> Any:
    traffic = traffic_for(spec, seed=11)
    traffic["daily_sessions"] = 600.0
    traffic["returning_pool"] = 1321
    sandbox.state.add_property(property_id=PID, display_name="Shop", time_zone=TZ,
                               currency_code="USD", traffic=traffic)
    return sandbox


def alpha(sandbox: Any) -> AlphaAnalyticsDataClient:
    return AlphaAnalyticsDataClient(credentials=AnonymousCredentials(), transport="rest",
                                    client_options={"api_endpoint": sandbox.url})


def funnel_request(steps: tuple[str, ...], *, open_funnel: bool = False,
                   within: int | None = None) -> RunFunnelReportRequest:
    out = []
    for i, e in enumerate(steps):
        step = FunnelStep(name=e, filter_expression=FunnelFilterExpression(
            funnel_event_filter=FunnelEventFilter(event_name=e)))
        if within is not None and i:
            step.within_duration_from_prior_step = duration_pb2.Duration(seconds=within)
        out.append(step)
    return RunFunnelReportRequest(
        property=f"properties/{PID}", funnel=Funnel(steps=out, is_open_funnel=open_funnel),
        date_ranges=[DateRange(start_date=START.isoformat(), end_date=END.isoformat())])


def step_users(answer: Any, steps: tuple[str, ...]) -> list[int]:
    """activeUsers per step from a parsed answer, defensively: headers may repeat, a step
    nobody reached may be missing."""
    table = answer.funnel_table
    first = [h.name for h in table.metric_headers].index("activeUsers")
    got = {r.dimension_values[0].value: int(r.metric_values[first].value) for r in table.rows}
    return [got.get(f"{i + 1}. {e}", 0) for i, e in enumerate(steps)]


def brute_force(events: pd.DataFrame, steps: tuple[str, ...], open_funnel: bool,
                within_us: int | None) -> list[int]:
    """Users per step, one user at a time: for each possible first step, walk the steps
    keeping every time at which a valid chain can end."""
    counts = [0] * len(steps)
    mine = events[events["event_name"].isin(steps)]
    for _, rows in mine.groupby("user"):
        times = {e: sorted(rows.loc[rows["event_name"] == e, "t"].tolist()) for e in steps}
        for k in range(len(steps)):
            firsts = range(k + 1) if open_funnel else [0]
            for j in firsts:
                ends = list(times[steps[j]])
                for e in steps[j + 1:k + 1]:
                    ends = [t for t in times[e]
                            if any(p <= t and (within_us is None or t - p <= within_us)
                                   for p in ends)]
                if ends:
                    counts[k] += 1
                    break
    return counts


def log_events(sandbox: Any) -> pd.DataFrame:
    log = property_event_log(sandbox.state, PID, START, END)
    t, _ = timestamps(log, TZ)
    return pd.DataFrame({"user": log["user_id"].to_numpy(),
                         "event_name": log["event_name"].astype(str).to_numpy(), "t": t})


@pytest.mark.parametrize("open_funnel,within", [(False, None), (False, 3600), (True, None),
                                                (True, 3600)])
def test_funnel_users_match_brute_force(shop: Any, open_funnel: bool, within: int | None) -> None:
    answer = alpha(shop).run_funnel_report(funnel_request(CHECKOUT, open_funnel=open_funnel,
                                                          within=within))
    expected = brute_force(log_events(shop), CHECKOUT, open_funnel,
                           None if within is None else within * 1_000_000)
    assert step_users(answer, CHECKOUT) == expected
    assert expected[-1] > 20  # enough buyers for the comparison to mean something
    if not open_funnel:
        assert expected == sorted(expected, reverse=True)
        table = answer.funnel_table
        heads = [h.name for h in table.metric_headers]
        rate = heads.index("funnelStepCompletionRate")
        first = table.rows[0].metric_values
        assert float(first[rate].value) == pytest.approx(expected[1] / expected[0])
        assert int(first[heads.index("funnelStepAbandonments")].value) == expected[0] - expected[1]


def test_funnel_matches_the_export(shop: Any, tmp_path: Path) -> None:
    """The same funnel from the sandbox's BigQuery export (event_timestamp, user_pseudo_id)."""
    export_property(shop.state, PID, tmp_path, START, END, intraday=False)
    files = str(tmp_path / f"analytics_{PID}" / "events_*.parquet")
    events = duckdb.sql(f"SELECT user_pseudo_id AS user, event_name, event_timestamp AS t "
                        f"FROM read_parquet('{files}')").df()
    answer = alpha(shop).run_funnel_report(funnel_request(CHECKOUT, within=86_400))
    assert step_users(answer, CHECKOUT) == brute_force(events, CHECKOUT, False, 86_400_000_000)


def test_export_user_id_is_the_signed_in_id(shop: Any, tmp_path: Path) -> None:
    export_property(shop.state, PID, tmp_path, START, END, intraday=False)
    files = str(tmp_path / f"analytics_{PID}" / "events_*.parquet")
    got = duckdb.sql(f"SELECT count(*) FILTER (WHERE user_id IS NOT NULL), "
                     f"count(DISTINCT user_id) FROM read_parquet('{files}')").fetchall()[0]
    log = property_event_log(shop.state, PID, START, END)
    signed = log["signed_in_user_id"].dropna()
    assert got == (len(signed), signed.nunique())
    assert got[1] > 50


def test_quirks_of_the_live_answer(shop: Any) -> None:
    body = {"dateRanges": [{"startDate": START.isoformat(), "endDate": END.isoformat()}],
            "funnel": {"isOpenFunnel": True, "steps": [
                {"name": e, "filterExpression": {"funnelEventFilter": {"eventName": e}}}
                for e in ("view_item", "add_to_cart", "never_sent", "purchase")]}}
    r = requests.post(f"{shop.url}/v1alpha/properties/{PID}:runFunnelReport", json=body,
                      timeout=30)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["kind"] == "analyticsData#runFunnelReport"
    table, vis = out["funnelTable"], out["funnelVisualization"]
    names = [h["name"] for h in table["metricHeaders"]]
    assert names == list(funnels.TABLE_METRICS) * 2  # the repeated block
    assert all(len(row["metricValues"]) == 4 for row in table["rows"])
    assert {h["type"] for h in table["metricHeaders"]} == {"TYPE_INTEGER"}
    rate = table["rows"][0]["metricValues"][1]["value"]
    assert 0 < float(rate) < 1 and "." in rate  # a fraction in an "integer" metric
    steps = [row["dimensionValues"][0]["value"] for row in table["rows"]]
    assert steps == ["1. view_item", "2. add_to_cart", "4. purchase"]  # nobody reached 3
    assert [row["dimensionValues"][0]["value"] for row in vis["rows"]] == steps
    assert set(table) == set(vis) == {"dimensionHeaders", "metricHeaders", "rows", "metadata"}


def test_unsupported_parts_are_refused_clearly(shop: Any) -> None:
    req = funnel_request(CHECKOUT[:2])
    req.funnel.steps[1].is_directly_followed_by = True
    with pytest.raises(exceptions.BadRequest, match="isDirectlyFollowedBy is not supported"):
        alpha(shop).run_funnel_report(req)
    body = {"dateRanges": [{"startDate": "7daysAgo", "endDate": "yesterday"}],
            "funnel": {"steps": [{"name": "a", "filterExpression": {"funnelEventFilter": {
                "eventName": "purchase", "funnelParameterFilterExpression": {
                    "funnelParameterFilter": {"eventParameterName": "value",
                                              "numericFilter": {"operation": "GREATER_THAN",
                                                                "value": {"int64Value": "1"}}}}}}}]}}
    r = requests.post(f"{shop.url}/v1alpha/properties/{PID}:runFunnelReport", json=body,
                      timeout=30)
    assert r.status_code == 400 and "numericFilter (only stringFilter) is not supported" in r.text


def test_signed_in_with_user_id_splits_users(shop: Any) -> None:
    client = BetaAnalyticsDataClient(credentials=AnonymousCredentials(), transport="rest",
                                     client_options={"api_endpoint": shop.url})
    answer = client.run_report(RunReportRequest(
        property=f"properties/{PID}", dimensions=[Dimension(name="signedInWithUserId")],
        metrics=[Metric(name="activeUsers"), Metric(name="eventCount")],
        date_ranges=[BetaDateRange(start_date=START.isoformat(), end_date=END.isoformat())]))
    got = {r.dimension_values[0].value: (int(r.metric_values[0].value),
                                         int(r.metric_values[1].value)) for r in answer.rows}
    log = property_event_log(shop.state, PID, START, END)
    yes = log[log["signed_in_user_id"].notna()]
    no = log[log["signed_in_user_id"].isna()]
    assert got == {"yes": (yes["user_id"].nunique(), len(yes)),
                   "no": (no["user_id"].nunique(), len(no))}
    assert 0.02 < got["yes"][0] / log["user_id"].nunique() < 0.5


def test_micro_goals_lift_later_buying(spec: Any) -> None:
    """Users who signed up buy more often at or after their sign-up than users who never did."""
    traffic = traffic_for(spec, seed=5)
    log = event_log(traffic, END - timedelta(days=60), END, "UTC")
    t, _ = timestamps(log, "UTC")
    ev = pd.DataFrame({"user": log["user_id"], "event": log["event_name"].astype(str), "t": t})
    buys = ev[ev["event"] == "purchase"].groupby("user")["t"].max()
    for micro, at_least in (("sign_up", 1.8), ("newsletter_signup", 1.1)):
        first = ev[ev["event"] == micro].groupby("user")["t"].min()
        after = sum(1 for u, t0 in first.items() if u in buys.index and buys[u] >= t0)
        others = ev.loc[~ev["user"].isin(first.index), "user"].unique()
        baseline = sum(1 for u in others if u in buys.index) / len(others)
        assert after / len(first) > at_least * baseline, micro


def test_identified_users_stay_signed_in_on_later_days(spec: Any) -> None:
    traffic = traffic_for(spec, seed=5)
    log = event_log(traffic, END - timedelta(days=30), END, "UTC")
    signed = log[log["signed_in_user_id"].notna()]
    assert (signed["signed_in_user_id"] - signed["user_id"] == 7_000_000_000_000).all()
    days = signed.groupby("user_id")["date"].nunique()
    assert (days > 1).sum() > 20  # returning users recur on several days, signed in
    # once signed in, every later session of the user is signed in
    first = signed.groupby("user_id")["session_id"].min()
    later = log[log["user_id"].isin(first.index)]
    later = later[later["session_id"] > later["user_id"].map(first)]
    assert later["signed_in_user_id"].notna().all()


def test_seed_without_journeys_keys(spec: Any, tmp_path: Path) -> None:
    plain = tmp_path / "plain.yaml"
    plain.write_text(SPEC.split("funnels:")[0].replace(", identifies: true", ""))
    traffic = traffic_for(load_spec(plain), seed=11)
    assert "journeys" not in traffic
    assert journeys_for(load_spec(plain), traffic) is None
    j = traffic_for(spec, seed=11)["journeys"]
    assert j["funnels"][0]["steps"] == list(CHECKOUT)
    assert {m["event"]: m["boost"] for m in j["micro"]} == {"sign_up": 3.0,
                                                           "newsletter_signup": 1.5}


def test_profiles_without_journeys_are_unchanged() -> None:
    """A fingerprint of an old profile's log, taken before journeys existed."""
    p = make_traffic([("purchase", "macro", None), ("sign_up", "micro", 5.0),
                      ("add_to_cart", "micro", None), ("view_item", "micro", None)],
                     seed=3, daily_sessions=300, start="2024-01-01")
    log = event_log(p, date(2024, 3, 1), date(2024, 3, 14), "Europe/Warsaw", parameters=True)
    assert "signed_in_user_id" not in log.columns
    digest = hashlib.sha256(log.to_csv(index=False).encode()).hexdigest()
    assert digest == "06ce96ae66911a9f22fe2bb112b5803cb0cd266054377fe1891151bc00b4248f"


def test_parameter_filters_match_as_ga_string_filters() -> None:
    """funnelParameterFilter stringFilter match types, caseSensitive, and/or groups; an event
    without the parameter never matches."""
    frame = pd.DataFrame({"page_location": pd.Categorical(
        ["https://x.com/Pricing", "https://x.com/pricing?a=1", None, "https://x.com/blog"])})

    def hits(match: str, value: str, case: bool = False) -> list[bool]:
        return funnels.filter_mask(frame, ("param", "page_location", match, value, case)).tolist()

    assert hits("CONTAINS", "/pricing") == [True, True, False, False]
    assert hits("CONTAINS", "/pricing", True) == [False, True, False, False]
    assert hits("EXACT", "https://x.com/blog") == [False, False, False, True]
    assert hits("BEGINS_WITH", "https://x.com/p") == [True, True, False, False]
    assert hits("ENDS_WITH", "=1") == [False, True, False, False]
    assert hits("PARTIAL_REGEXP", "pric") == [True, True, False, False]
    assert hits("FULL_REGEXP", "pric") == [False, False, False, False]
    assert hits("FULL_REGEXP", "https://x\\.com/pricing") == [True, False, False, False]
    blog = ("param", "page_location", "CONTAINS", "blog", False)
    query = ("param", "page_location", "CONTAINS", "?", False)
    assert funnels.filter_mask(frame, ("or", (blog, query))).tolist() == [False, True, False, True]
    assert funnels.filter_mask(frame, ("and", (blog, query))).tolist() == [False] * 4
    assert funnels.filter_mask(frame, ("param", "link_url", "CONTAINS", "", False)).tolist() == \
        [False] * 4
