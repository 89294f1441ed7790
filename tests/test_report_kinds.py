"""Reports of goals of every kind: `page:` goals counted from page views, `from:` and `session:`
goals from their own event with the warnings their origin calls for.

Expected numbers are computed here with plain pandas string tests over the sandbox's raw event
log (`traffic.event_log`), independently of report.py, of `Condition.matches` and of the
sandbox's query engine.
"""

from __future__ import annotations

import math
from datetime import date, timedelta

import pandas as pd
import pytest

from ga_sync.clients import connect
from ga_sync.facts import ReportFacts, check
from ga_sync.model import (Condition, EventRule, Goal, KeyEventSettings, KeyEventState,
                           SessionRule, Spec)
from ga_sync.periods import Period
from ga_sync.report import Origin, origin_times, report_property
from ga_sync.sandbox.traffic import event_log, make_traffic
from ga_sync.sources import data_api
from ga_sync.sources.data_api import build_requests, page_filter

PID = "424242424"
PROP = f"properties/{PID}"
TZ = "Europe/Warsaw"
PERIOD = Period(date(2026, 10, 5), date(2026, 10, 18))
TODAY = date(2026, 11, 22)


def page(event: str, tier: str, value: float | None, op: str, text: str, *,
         counting: str = "once_per_event", ignore_case: bool = False) -> Goal:
    return Goal(event, tier, value, counting, origin=EventRule(
        "page_view", (Condition("page_location", op, text, ignore_case),)))


PAGE_GOALS = (
    page("pricing_view", "macro", 40.0, "contains", "/pricing", counting="once_per_session"),
    page("widget_view", "micro", 2.5, "ends_with", "/products/widget"),
    page("blog_key", "micro", 1.0, "regex", r"blog/.*KEY", ignore_case=True),
    page("contact_upper", "micro", 3.0, "ends_with", "/CONTACT"),
    page("products_start", "micro", 0.5, "starts_with", "https://www.", counting="once_per_session"),
    page("nowhere", "micro", 9.0, "contains", "/does-not-exist"),
)
OWN = (Goal("generate_lead", "macro", 150.0, "once_per_session"),
       Goal("sign_up", "micro", 12.5))


def spec(goals=OWN + PAGE_GOALS, basis: str = "sessions") -> Spec:
    return Spec(client="Kinds", properties=(PROP,), currency="USD", goals=tuple(goals),
                rate_basis=basis)


@pytest.fixture
def traffic(sandbox_state):
    t = make_traffic([(g.event, g.tier, g.value) for g in OWN], seed=5, daily_sessions=900)
    sandbox_state.add_property(property_id=PID, display_name="Kinds", time_zone=TZ, traffic=t)
    return t


@pytest.fixture
def conn(ga_env, traffic):
    return connect()


def the_log(traffic, period: Period) -> pd.DataFrame:
    log = event_log(traffic, period.start, period.end, TZ)
    return log.assign(event_name=log["event_name"].astype(str),
                      page_location=log["page_location"].astype(str))


def matching(log: pd.DataFrame, g: Goal) -> pd.DataFrame:
    """The goal's events, by pandas' own string tests (not Condition.matches)."""
    if g.kind != "page":
        return log[log["event_name"] == g.event]
    c = g.origin.page
    loc = log["page_location"]
    want = c.value
    if c.ignore_case and c.op != "regex":
        loc, want = loc.str.lower(), want.lower()
    hit = {"equals": lambda: loc == want,
           "contains": lambda: loc.str.contains(want, regex=False),
           "starts_with": lambda: loc.str.startswith(want),
           "ends_with": lambda: loc.str.endswith(want),
           "regex": lambda: loc.str.contains(want, regex=True, case=not c.ignore_case)}[c.op]()
    return log[(log["event_name"] == "page_view") & hit]


def expected(log: pd.DataFrame, s: Spec) -> dict:
    sessions, users = log["session_id"].nunique(), log["user_id"].nunique()
    basis = users if s.rate_basis == "users" else sessions
    goals, tiers = {}, {"macro": [0.0, 0.0, set()], "micro": [0.0, 0.0, set()]}
    for g in s.goals:
        ev = matching(log, g)
        conv = ev["session_id"].nunique() if g.counting == "once_per_session" else len(ev)
        value = ev["value"].fillna(0).sum() if g.value is None else conv * g.value
        goals[g.event] = {"conversions": conv, "rate": conv / basis, "value": value}
        tiers[g.tier][0] += conv
        tiers[g.tier][1] += value
        tiers[g.tier][2] |= set(ev["session_id"])
    out = {"sessions": sessions, "users": users, "goals": goals}
    for t, (conv, value, with_any) in tiers.items():
        out[t] = {"conversions": conv, "rate": conv / basis, "value": value,
                  "session_rate": len(with_any) / sessions}
    return out


def assert_matches(got: dict, want: dict) -> None:
    assert (got["sessions"], got["users"]) == (want["sessions"], want["users"])
    for g in got["goals"]:
        w = want["goals"][g["event"]]
        assert g["conversions"] == w["conversions"], g["event"]
        assert g["rate"] == pytest.approx(w["rate"], rel=1e-12), g["event"]
        assert g["value"] == pytest.approx(w["value"], rel=1e-9), g["event"]
    for t in ("macro", "micro"):
        for k in ("conversions", "rate", "session_rate", "value"):
            assert got[t][k] == pytest.approx(want[t][k], rel=1e-9), (t, k)


# --------------------------------------------------------------------------- page goals


@pytest.mark.parametrize("basis", ["sessions", "users"])
def test_page_goals_equal_a_count_of_page_views_in_the_event_log(conn, traffic, basis):
    s = spec(basis=basis)
    got = report_property(conn, s, PROP, PERIOD, today=TODAY).to_json()
    log = the_log(traffic, PERIOD)
    want = expected(log, s)
    assert_matches(got, want)
    by = {g["event"]: g for g in got["goals"]}
    # every match type really matched something (and only what it should), so the test can fail
    for event in ("pricing_view", "widget_view", "blog_key", "products_start"):
        assert by[event]["conversions"] > 0, event
    assert by["nowhere"]["conversions"] == 0
    # the regex is a partial match, case-insensitive here: a case-sensitive one finds nothing
    assert not log["page_location"].str.contains(r"blog/.*KEY").any()
    # case-sensitive by default: /CONTACT matches no page view, though /contact does
    assert by["contact_upper"]["conversions"] == 0
    assert log["page_location"].str.endswith("/contact").any()
    # both counting methods differ on this traffic
    pv = matching(log, PAGE_GOALS[0])
    assert len(pv) > pv["session_id"].nunique() == by["pricing_view"]["conversions"]
    assert {g["event"]: g.get("kind") for g in got["goals"]} == {
        "generate_lead": None, "sign_up": None, **{g.event: "page" for g in PAGE_GOALS}}


def test_equals_and_ignore_case(conn, traffic):
    log = the_log(traffic, PERIOD)
    loc = log.loc[log["event_name"] == "page_view", "page_location"]
    contact = next(x for x in loc.unique() if x.endswith("/contact"))
    goals = (page("exact", "macro", 1.0, "equals", contact),
             page("exact_upper", "macro", 1.0, "equals", contact.upper()),
             page("exact_upper_ic", "macro", 1.0, "equals", contact.upper(), ignore_case=True),
             page("prefix_ic", "micro", 1.0, "starts_with", contact.upper()[:20],
                  ignore_case=True))
    got = {g["event"]: g["conversions"] for g in
           report_property(conn, spec(goals), PROP, PERIOD, today=TODAY).to_json()["goals"]}
    want = int((loc == contact).sum())
    assert want > 0
    assert got == {"exact": want, "exact_upper": 0, "exact_upper_ic": want,
                   "prefix_ic": int(loc.str.lower().str.startswith(contact[:20].lower()).sum())}


def test_compare_previous_counts_page_views_in_both_periods(conn, traffic):
    s = spec()
    got = report_property(conn, s, PROP, PERIOD, compare=True, today=TODAY).to_json()
    assert_matches(got, expected(the_log(traffic, PERIOD), s))
    assert_matches(got["previous"], expected(the_log(traffic, PERIOD.previous()), s))
    prev = {g["event"]: g["conversions"] for g in got["previous"]["goals"]}
    for g in got["goals"]:
        p = prev[g["event"]]
        assert g["change"] == (pytest.approx((g["conversions"] - p) / p) if p else None)


def test_daily_rows_of_page_goals_add_up(conn, traffic):
    s = spec()
    r = report_property(conn, s, PROP, PERIOD, today=TODAY)
    log = the_log(traffic, PERIOD)
    for g in PAGE_GOALS:
        rows = r.daily[r.daily["event"] == g.event]
        ev = matching(log, g)
        per_day = (ev.groupby("date", observed=True)["session_id"].nunique()
                   if g.counting == "once_per_session" else ev.groupby("date", observed=True).size())
        want = {date(int(d[:4]), int(d[4:6]), int(d[6:])): float(n)
                for d, n in per_day.items() if n}
        assert dict(zip(rows["date"], rows["conversions"])) == want, g.event
        assert rows["value"].sum() == pytest.approx(sum(want.values()) * g.value)


def test_requests_are_batched_five_to_a_call(conn, sandbox):
    s = spec()
    reqs = build_requests(s, [PERIOD])
    names = [n for n, _ in reqs]
    assert names[:5] == ["totals", "events", "daily", "macro", "micro"]
    assert names[5:] == [f"page:{g.event}" for g in PAGE_GOALS]
    sandbox.stats.reset()
    report_property(conn, s, PROP, PERIOD, compare=True, today=TODAY)
    assert sandbox.stats.snapshot()["data_requests"] == math.ceil(len(reqs) / 5) == 3
    # no page goal: one call, as before
    sandbox.stats.reset()
    report_property(conn, spec(OWN), PROP, PERIOD, today=TODAY)
    assert sandbox.stats.snapshot()["data_requests"] == 1


def test_page_filters_say_what_the_rule_says():
    def f(op, text, ic=False):
        return page_filter(Condition("page_location", op, text, ic))["andGroup"]["expressions"]
    view, loc = f("contains", "/thank-you")
    assert view == {"filter": {"fieldName": "eventName", "stringFilter": {
        "matchType": "EXACT", "value": "page_view", "caseSensitive": True}}}
    assert loc["filter"] == {"fieldName": "pageLocation", "stringFilter": {
        "matchType": "CONTAINS", "value": "/thank-you", "caseSensitive": True}}
    types = {op: f(op, "x")[1]["filter"]["stringFilter"]["matchType"]
             for op in ("equals", "contains", "starts_with", "ends_with", "regex")}
    assert types == {"equals": "EXACT", "contains": "CONTAINS", "starts_with": "BEGINS_WITH",
                     "ends_with": "ENDS_WITH", "regex": "PARTIAL_REGEXP"}
    assert f("regex", "x", True)[1]["filter"]["stringFilter"]["caseSensitive"] is False
    # tiers: an orGroup of the tier's own events and each page goal's page views
    reqs = dict(build_requests(spec(), [PERIOD]))
    macro = reqs["macro"]["dimensionFilter"]["orGroup"]["expressions"]
    assert macro[0]["filter"]["inListFilter"]["values"] == ["generate_lead"]
    assert macro[1] == page_filter(PAGE_GOALS[0].origin.page)
    only_pages = dict(build_requests(spec(PAGE_GOALS[:1]), [PERIOD]))
    assert only_pages["macro"]["dimensionFilter"] == page_filter(PAGE_GOALS[0].origin.page)
    assert "micro" not in only_pages


def test_a_source_that_does_not_count_page_views_is_refused():
    facts = ReportFacts(property=PROP, periods=[], source="export")
    check(facts, [], spec(OWN))  # no page goal: fine
    with pytest.raises(ValueError, match="page goals pricing_view"):
        check(facts, [], spec(OWN + PAGE_GOALS[:1]))


def test_value_event_on_a_page_goal_is_the_page_views_value_with_a_warning(conn, traffic):
    g = page("quote_thanks", "macro", None, "contains", "/contact")
    r = report_property(conn, spec((g,)), PROP, PERIOD, today=TODAY)
    ev = matching(the_log(traffic, PERIOD), g)
    assert r.goals[0].conversions == len(ev) > 0
    assert r.goals[0].value == pytest.approx(ev["value"].fillna(0).sum())
    w = [w for w in r.warnings if w.code == "page-event-value"]
    assert len(w) == 1 and w[0].subject == "quote_thanks" and "Give the goal a value" in w[0].message


def test_page_goal_warnings(conn, traffic):
    r = report_property(conn, spec(), PROP, PERIOD, today=TODAY)
    by = {(w.code, w.subject): w for w in r.warnings}
    never = by[("never-occurred", "nowhere")]
    assert "no page location matched contains '/does-not-exist'" in never.message
    assert ("approximate", "pricing_view") not in by
    assert ("never-occurred", "pricing_view") not in by


# --------------------------------------------------------------------------- from / session


def _key_event(event: str, created: str) -> KeyEventState:
    return KeyEventState(event, KeyEventSettings("once_per_event"), f"{PROP}/keyEvents/1",
                         True, True, created)


FROM = Goal("sign_up", "micro", 12.5, origin=EventRule(
    "form_submit", (Condition("form_id", "equals", "signup"),)))
SESSION = Goal("generate_lead", "macro", 150.0, "once_per_session",
               origin=SessionRule(min_page_views=5))


def test_from_and_session_goals_count_their_own_event(conn, traffic):
    s = spec((SESSION, FROM))
    got = report_property(conn, s, PROP, PERIOD, today=TODAY, origins={}).to_json()
    assert_matches(got, expected(the_log(traffic, PERIOD), s))
    assert [g["kind"] for g in got["goals"]] == ["session", "from"]


def test_before_creation_and_approximate_warnings(conn):
    s = spec((SESSION, FROM))
    origins = {"sign_up": Origin("sign_up", "event_create_rule", "2026-10-09T08:00:00.000000Z",
                                 "change history")}
    r = report_property(conn, s, PROP, PERIOD, today=TODAY, origins=origins)
    by = {(w.code, w.subject): w for w in r.warnings}
    before = by[("before-creation", "sign_up")]
    assert "since 2026-10-09" in before.message and "event create rule" in before.message
    assert "period starts 2026-10-05" in before.message and "change history" in before.message
    assert ("before-creation", "generate_lead") not in by  # no creation time known
    approx = by[("approximate", "generate_lead")]
    assert "not once per qualifying session" in approx.message and "BigQuery" in approx.message
    assert ("approximate", "sign_up") not in by
    # created on the period's first day in the property's zone (23:00 in Warsaw): no warning
    origins = {"sign_up": Origin("sign_up", "event_create_rule", "2026-10-05T21:00:00Z")}
    r = report_property(conn, s, PROP, PERIOD, today=TODAY, origins=origins)
    assert "before-creation" not in {w.code for w in r.warnings}
    # every warning is a structured entry in the JSON
    codes = [w["code"] for w in r.to_json()["warnings"]]
    assert codes.count("approximate") == 1


def test_origin_times_fall_back_to_the_key_events(conn):
    s = spec((SESSION, FROM, PAGE_GOALS[0]))
    kes = [_key_event("generate_lead", "2026-10-12T10:00:00.000000Z"),
           _key_event("pricing_view", "2026-10-12T10:00:00.000000Z")]

    def no_history(conn, property, wanted):
        assert wanted == {"generate_lead": "audience", "sign_up": "event_create_rule"}
        return {"sign_up": "2026-10-07T09:00:00Z"}

    got = origin_times(conn, PROP, s, kes, created=no_history)
    assert got == {"generate_lead": Origin("generate_lead", "audience",
                                           "2026-10-12T10:00:00.000000Z", "key event"),
                   "sign_up": Origin("sign_up", "event_create_rule", "2026-10-07T09:00:00Z",
                                     "change history")}
    r = report_property(conn, s, PROP, PERIOD, today=TODAY, key_events=kes, origins=got)
    by = {(w.code, w.subject): w.message for w in r.warnings}
    assert "key event's creation" in by[("before-creation", "generate_lead")]
    assert "since 2026-10-12" in by[("before-creation", "generate_lead")]
    assert "since 2026-10-07" in by[("before-creation", "sign_up")]

    def broken(conn, property, wanted):
        from ga_sync.errors import ApiError
        raise ApiError("change history refused", property=property)

    got = origin_times(conn, PROP, s, kes, created=broken)
    assert set(got) == {"generate_lead"} and got["generate_lead"].basis == "key event"
    assert origin_times(conn, PROP, spec(OWN), kes, created=broken) == {}


# --------------------------------------------------------------------------- against GA's own rule


def test_page_goal_counts_days_before_its_rule_existed(conn, traffic, sandbox_state, sandbox):
    """The rule is created mid-period: GA's own created event starts then, the report's count
    of the page goal covers the whole period and equals a pandas count of the raw log."""
    import datetime as dt
    from zoneinfo import ZoneInfo

    from ga_sync.data import fetch
    from ga_sync.sandbox import machinery as sm
    from ga_sync.sandbox.derived import property_event_log

    g = PAGE_GOALS[0]  # pricing_view, contains /pricing, once per session
    made = dt.datetime(2026, 10, 11, 0, 0, tzinfo=ZoneInfo(TZ))
    stream = sm.web_streams(sandbox_state.properties[PID])[0]
    sm.create_rule(sandbox_state, PID, stream, {
        "destinationEvent": g.event, "sourceCopyParameters": True, "eventConditions": [
            {"field": "event_name", "comparisonType": "EQUALS", "value": "page_view"},
            {"field": "page_location", "comparisonType": "CONTAINS", "value": "/pricing"}]},
        when=made, actor="dana@agency.example")
    s = spec((g,) + OWN)
    got = report_property(conn, s, PROP, PERIOD, today=TODAY).to_json()
    raw = the_log(traffic, PERIOD)  # what the site sent, no rule involved
    assert_matches(got, expected(raw, s))
    by = {x["event"]: x for x in got["goals"]}
    pv = matching(raw, g)
    assert by[g.event]["conversions"] == pv["session_id"].nunique()
    # GA's own event exists only from the rule's creation: fewer, none before 2026-10-11
    full = property_event_log(sandbox_state, PID, PERIOD.start, PERIOD.end)
    made_events = full[full["event_name"].astype(str) == g.event]
    assert len(made_events) > 0
    assert str(made_events["date"].astype(str).min()) == "20261011"
    ga = fetch(conn, PROP, [("own", {
        "dateRanges": [{"startDate": PERIOD.start.isoformat(), "endDate": PERIOD.end.isoformat()}],
        "metrics": [{"name": "sessions"}],
        "dimensionFilter": {"filter": {"fieldName": "eventName", "stringFilter": {
            "matchType": "EXACT", "value": g.event}}}})])["own"].frame()
    assert int(ga["sessions"].sum()) == made_events["session_id"].nunique()
    assert 0 < int(ga["sessions"].sum()) < by[g.event]["conversions"]
    # a from: goal made by the same kind of rule gets a before-creation warning, dated from
    # the change history
    f = Goal("pricing_from", "micro", 1.0, origin=EventRule(
        "page_view", (Condition("page_location", "contains", "/pricing"),
                      Condition("page_title", "contains", "Pricing"))))
    sm.create_rule(sandbox_state, PID, stream, {
        "destinationEvent": f.event, "sourceCopyParameters": True, "eventConditions": [
            {"field": "event_name", "comparisonType": "EQUALS", "value": "page_view"},
            {"field": "page_location", "comparisonType": "CONTAINS", "value": "/pricing"},
            {"field": "page_title", "comparisonType": "CONTAINS", "value": "Pricing"}]},
        when=made + dt.timedelta(days=2))
    r = report_property(conn, spec((f,)), PROP, PERIOD, today=TODAY)
    warn = {(w.code, w.subject): w.message for w in r.warnings}
    # created 2026-10-13 00:00 in the property's zone (2026-10-12 22:00 UTC): its own day
    assert "since 2026-10-13" in warn[("before-creation", "pricing_from")]
    assert "change history" in warn[("before-creation", "pricing_from")]


def test_goal_marks_from_annotations_or_the_journal(tmp_path):
    import json as _json

    from ga_sync.changelog import Annotation
    from ga_sync.errors import ApiError
    from ga_sync.render.html import mark_positions, report_html
    from ga_sync.report import GoalMark, goal_marks

    notes = [Annotation("a/1", "ga-sync: 1 goal created", "", date(2026, 10, 9),
                        date(2026, 10, 9)),
             Annotation("a/2", "Sale", "", date(2026, 10, 12), date(2026, 10, 14))]
    marks, why = goal_marks(None, PROP, annotations=lambda c, p: notes)
    assert why is None and marks == [GoalMark(date(2026, 10, 9), "ga-sync: 1 goal created"),
                                     GoalMark(date(2026, 10, 12), "Sale", "annotation",
                                              date(2026, 10, 14))]
    journal = tmp_path / "journal.jsonl"
    lines = [{"time": "2026-10-09T10:00:00.000+00:00", "property": PROP, "action": "create",
              "event": "quote", "resource": "event_create_rule", "outcome": "applied"},
             {"time": "2026-10-09T10:00:01.000+00:00", "property": PROP, "action": "create",
              "event": "quote", "resource": "key_event", "outcome": "applied"},
             {"time": "2026-10-16T10:00:00.000+00:00", "property": PROP, "action": "update",
              "event": "lead", "resource": "key_event", "outcome": "failed"},
             {"time": "2026-10-17T10:00:00.000+00:00", "property": "properties/9",
              "action": "update", "event": "lead", "resource": "key_event",
              "outcome": "applied"}]
    journal.write_text("\n".join(_json.dumps(x) for x in lines) + "\nnot json\n")

    def refuse(conn, property):
        raise ApiError("annotations: HTTP 403", property=property, status=403)
    marks, why = goal_marks(None, PROP, journal=journal, annotations=refuse)
    assert "HTTP 403" in why
    assert marks == [GoalMark(date(2026, 10, 9), "ga-sync: 1 goal created", "journal")]
    # on the chart: the day's position; weekly: the week holding it; outside: left out
    days = [date(2026, 10, 5) + timedelta(days=i) for i in range(14)]
    ms = [GoalMark(date(2026, 10, 9), "x"), GoalMark(date(2026, 11, 30), "late"),
          GoalMark(date(2026, 10, 1), "range", end=date(2026, 10, 6))]
    assert [(i, m.title) for i, m in mark_positions(ms, "daily", days)] == [(0, "range"),
                                                                         (4, "x")]
    weeks = [date(2026, 9, 28), date(2026, 10, 5)]
    assert [(i, m.title) for i, m in mark_positions(ms, "weekly", weeks)] == [(0, "range"),
                                                                           (1, "x")]


def test_html_marks_goal_changes_on_the_rate_chart(conn, traffic):
    from ga_sync.render.html import report_html
    from ga_sync.report import GoalMark

    r = report_property(conn, spec(), PROP, PERIOD, today=TODAY)
    plain = report_html([r])
    r.marks = [GoalMark(date(2026, 10, 9), "ga-sync: 1 goal created <b>"),
               GoalMark(date(2026, 10, 14), "ga-sync: 2 goals changed", "journal")]
    html = report_html([r])
    assert 'class="marks"' not in plain and "dashed lines" not in plain
    assert "<li>2026-10-09: ga-sync: 1 goal created &lt;b&gt; " in html
    assert "(ga-sync apply journal)" in html and "dashed lines: goal changes" in html
    # two dashed lines drawn in each of the two panels, and their numbers
    assert html.count("stroke-dasharray") - plain.count("stroke-dasharray") >= 4
    assert ">1</text>" in html or "1</text>" in html
