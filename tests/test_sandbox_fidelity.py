"""The sandbox behaves like GA where ga-sync's numbers depend on it.

- Key events count from the time they were marked: "Marking an event as a key event affects
  reports from time of creation. It doesn't change historic data" (GA's metadata for
  `keyEvents`); a key event's default value fills the `value` parameter of occurrences that
  arrive without one.
- Today holds only the part of the day that has passed.
- The quota a response reports is the quota the sandbox enforces.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
from google.analytics.admin_v1beta.types import KeyEvent
from google.analytics.data_v1beta import BetaAnalyticsDataClient
from google.analytics.data_v1beta.types import DateRange, Dimension, Metric, RunReportRequest
from google.auth.credentials import AnonymousCredentials

from ga_sync.sandbox.traffic import event_log, make_traffic

PID = "818181818"
TZ = "UTC"


@pytest.fixture
def setup(sandbox, sandbox_state, admin_client):
    traffic = make_traffic([("sign_up", "micro", 5.0), ("purchase", "macro", None)], seed=9,
                           daily_sessions=600, start="2026-01-01")
    record = sandbox_state.add_property(property_id=PID, time_zone=TZ, traffic=traffic)
    data = BetaAnalyticsDataClient(credentials=AnonymousCredentials(), transport="rest",
                                   client_options={"api_endpoint": sandbox.url})
    return record, data, traffic


def report(data, dims, metrics, start, end):
    resp = data.run_report(RunReportRequest(
        property=f"properties/{PID}", dimensions=[Dimension(name=d) for d in dims],
        metrics=[Metric(name=m) for m in metrics],
        date_ranges=[DateRange(start_date=start.isoformat(), end_date=end.isoformat())],
        keep_empty_rows=True, limit=100000))
    return {tuple(v.value for v in r.dimension_values): [float(m.value) for m in r.metric_values]
            for r in resp.rows}


def test_a_key_event_marked_now_does_not_rewrite_history(setup, admin_client):
    record, data, traffic = setup
    today = datetime.now(timezone.utc).date()
    admin_client.create_key_event(parent=f"properties/{PID}", key_event=KeyEvent(
        event_name="sign_up", counting_method=KeyEvent.CountingMethod.ONCE_PER_EVENT))
    rows = report(data, ["date", "eventName", "isKeyEvent"], ["eventCount", "keyEvents"],
                  today - timedelta(days=7), today)
    log = event_log(traffic, today - timedelta(days=7), today, TZ)
    for (day, event, is_key), (count, keys) in rows.items():
        if event != "sign_up":
            continue
        marked = day == today.strftime("%Y%m%d")
        assert is_key == ("true" if marked else "false")
        assert keys == (count if marked else 0)
        whole_day = ((log["date"].astype(str) == day) & (log["event_name"] == "sign_up")).sum()
        if marked:  # today: only the part of the day that has passed
            assert count <= whole_day
        else:
            assert count == whole_day
    # the property's default purchase dates from the property's creation (its first data day)
    past = report(data, ["eventName"], ["keyEvents"], date(2026, 2, 1), date(2026, 2, 7))
    assert past[("purchase",)][0] > 0 and past[("sign_up",)][0] == 0


def test_default_value_fills_the_value_parameter(setup, sandbox_state):
    record, data, traffic = setup
    start, end = date(2026, 3, 2), date(2026, 3, 8)
    before = report(data, ["eventName"], ["eventCount", "eventValue"], start, end)
    assert before[("sign_up",)][1] == 0  # sign_up carries no value of its own
    kid = sandbox_state.new_key_event_id()
    record.key_events[kid] = KeyEvent(
        name=f"properties/{PID}/keyEvents/{kid}", event_name="sign_up", counting_method=1,
        create_time=datetime(2026, 1, 1, tzinfo=timezone.utc), deletable=True, custom=True,
        default_value=KeyEvent.DefaultValue(numeric_value=7.5, currency_code="USD"))
    after = report(data, ["eventName"], ["eventCount", "eventValue"], start, end)
    count = after[("sign_up",)][0]
    assert after[("sign_up",)][1] == pytest.approx(7.5 * count)
    # purchase sends its own value: GA keeps it, the default would not apply
    assert after[("purchase",)][1] == pytest.approx(before[("purchase",)][1])


def test_today_holds_only_the_day_so_far(setup, monkeypatch):
    """GA has only today's sessions so far; the sandbox keeps the share of the day elapsed."""
    from ga_sync.sandbox import query

    record, data, traffic = setup
    today = datetime.now(timezone.utc).date()
    whole = event_log(traffic, today, today, TZ)["session_id"].nunique()
    for share in (0.0, 0.25, 1.0):
        monkeypatch.setattr(query, "day_elapsed", lambda tz, s=share: s)
        got = report(data, [], ["sessions"], today, today)
        sessions = got[()][0] if got else 0
        assert sessions == pytest.approx(whole * share, abs=1)


def test_reported_quota_is_the_enforced_quota(sandbox_state):
    """`propertyQuota` counts the same tokens the sandbox refuses on: when a response says
    nothing is left, the next request gets GA's 429."""
    from google.api_core import exceptions as gexc

    from ga_sync.sandbox.faults import QuotaLimits
    from ga_sync.sandbox.server import SandboxServer

    traffic = make_traffic([("sign_up", "micro", 5.0)], seed=2, daily_sessions=300)
    sandbox_state.add_property(property_id=PID, traffic=traffic)
    with SandboxServer(sandbox_state, quotas=QuotaLimits(data_tokens_per_hour=12)) as server:
        data = BetaAnalyticsDataClient(credentials=AnonymousCredentials(), transport="rest",
                                       client_options={"api_endpoint": server.url})
        request = RunReportRequest(property=f"properties/{PID}",
                                   dimensions=[Dimension(name="date")],
                                   metrics=[Metric(name="sessions")],
                                   date_ranges=[DateRange(start_date="28daysAgo",
                                                          end_date="yesterday")],
                                   return_property_quota=True)
        spent, left = 0, None
        while True:
            try:
                quota = data.run_report(request).property_quota.tokens_per_hour
            except gexc.TooManyRequests as e:
                assert "Exhausted property tokens per hour." in e.message
                break
            spent += quota.consumed
            assert quota.remaining == max(0, 12 - spent)
            left = quota.remaining
        assert left == 0  # refused exactly when the reported quota ran out
