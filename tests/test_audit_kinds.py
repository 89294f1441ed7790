"""Audit checks on goal kinds: page goals that match nothing, rules and audience triggers against
key events, regular expressions on app streams, GA's machinery limits, drifted machinery with
who changed it (the change history), and what all that costs.

Against the sandbox (rules and audiences made through its v1alpha door, backdated and by a
named person), plus pure checks over hand-built facts where GA itself refuses the state.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone

import pytest
from google.analytics.admin_v1beta.types import KeyEvent

from ga_sync.audit import CHECKS, audit_property, gather, run_checks
from ga_sync.audit.checks import closest_locations
from ga_sync.audit.facts import PropertyFacts
from ga_sync.audit.run import AuditResult, AuditedProperty
from ga_sync.clients import connect
from ga_sync.machinery import AudienceState, Machinery, RuleState, Stream, Unexpressible
from ga_sync.model import (Condition, EventRule, Goal, KeyEventSettings, KeyEventState,
                            PropertyInfo, SessionRule, Spec)
from ga_sync.periods import Period
from ga_sync.render.audit import audit_markdown, audit_text
from ga_sync.sandbox import machinery as sm
from ga_sync.sandbox.traffic import make_traffic

PID = "313131313"
PROP = f"properties/{PID}"
DANA = "dana@agency.example"
OWN = (Goal("generate_lead", "macro", 150.0, "once_per_session"),)


def page_goal(event: str, op: str, text: str, **kw) -> Goal:
    return Goal(event, "macro", 80.0, origin=EventRule(
        "page_view", (Condition("page_location", op, text, **kw),)))


def spec(*goals: Goal) -> Spec:
    return Spec(client="Kinds Co", properties=(PROP,), currency="USD", goals=OWN + goals)


@pytest.fixture
def site(sandbox_state, ga_env, monkeypatch, tmp_path):
    monkeypatch.setenv("GA_SYNC_JOURNAL", str(tmp_path / "journal.jsonl"))
    start = date.today() - timedelta(days=120)
    sandbox_state.add_property(property_id=PID, display_name="Kinds Co", time_zone="UTC",
                               traffic=make_traffic([("generate_lead", "macro", 150.0)], seed=8,
                                                    daily_sessions=400, start=start))
    return sandbox_state


@pytest.fixture
def conn(site):
    return connect()


def mark(state, event: str, counting: int = 1, value: float | None = None) -> None:
    record = state.properties[PID]
    kid = str(60000000000 + len(record.key_events))
    record.key_events[kid] = KeyEvent(name=f"{PROP}/keyEvents/{kid}", event_name=event,
                                      counting_method=counting, deletable=True, custom=True)
    if value is not None:
        record.key_events[kid].default_value = {"numeric_value": value, "currency_code": "USD"}


def rule_body(event: str, source: str, conditions: list[tuple[str, str, str]]) -> dict:
    return {"destinationEvent": event, "sourceCopyParameters": True, "eventConditions": [
        {"field": "event_name", "comparisonType": "EQUALS", "value": source}] + [
        {"field": f, "comparisonType": t, "value": v} for f, t, v in conditions]}


def web_stream(state) -> str:
    return sm.web_streams(state.properties[PID])[0]


def by_check(findings) -> dict:
    out: dict = {}
    for f in findings:
        out.setdefault(f.check, []).append(f)
    return out


# --------------------------------------------------------------------------- page goals


def test_page_goal_matching_nothing_names_the_closest_pages(site, conn):
    typo = page_goal("pricing_view", "contains", "/pricng")
    good = page_goal("contact_view", "ends_with", "/contact")
    s = spec(typo, good)
    mark(site, "generate_lead")
    for g in (typo, good):
        mark(site, g.event)
        sm.create_rule(site, PID, web_stream(site), rule_body(
            g.event, "page_view", [("page_location", g.origin.page.op.upper(),
                                    g.origin.page.value)]))
    findings = by_check(audit_property(conn, PROP, s))
    [f] = findings["page-goal-no-match"]
    assert f.subject == "pricing_view" and f.severity == "error"
    assert "contains `/pricng`" in f.message
    closest = f.message.split("closest page locations seen: ")[1]
    assert closest.split(", ")[0].endswith("/pricing`")  # the typo is obvious
    # its own event never fired either, but the page check says why: no second finding
    assert "pricing_view" not in {x.subject for x in findings.get("never-fired", [])}
    facts = gather(conn, PROP, s)
    assert facts.page_views["contact_view"] > 0 and facts.page_views["pricing_view"] == 0
    assert sum(n for _, n in facts.locations) == facts.stats("page_view").count


def test_closest_locations_by_similarity():
    seen = [("https://x.com/", 900), ("https://x.com/quote/thank-you?ref=a", 12),
            ("https://x.com/quote", 40), ("https://x.com/blog/thanks", 30)]
    near = closest_locations(Condition("page_location", "contains", "/quote/thankyou"), seen, 2)
    assert near[0] == "https://x.com/quote/thank-you?ref=a" and len(near) == 2
    assert "https://x.com/" not in near  # the most viewed page is not the closest
    assert closest_locations(Condition("page_location", "regex", r"^/blog/thanx$"), seen,
                             1) == ["https://x.com/blog/thanks"]
    assert closest_locations(Condition("page_location", "equals", "x"), [], 3) == []


# --------------------------------------------------------------------------- machinery vs key events


def test_rule_or_trigger_whose_event_is_not_a_key_event(site, conn):
    sm.create_rule(site, PID, web_stream(site), rule_body(
        "pdf_download", "page_view", [("page_location", "CONTAINS", "/products")]))
    sm.create_audience(site, PID, {
        "displayName": "Readers", "description": "x", "membershipDurationDays": 30,
        "eventTrigger": {"eventName": "engaged_reader",
                         "logCondition": "AUDIENCE_MEMBERSHIP_RENEWED"},
        "filterClauses": [{"clauseType": "INCLUDE", "simpleFilter": {
            "scope": "AUDIENCE_FILTER_SCOPE_WITHIN_SAME_SESSION",
            "filterExpression": {"andGroup": {"filterExpressions": [{"orGroup": {
                "filterExpressions": [{"eventFilter": {"eventName": "page_view"}}]}}]}}}}]})
    mark(site, "generate_lead")
    findings = by_check(audit_property(conn, PROP, None))
    got = {f.subject: f for f in findings["created-event-not-key-event"]}
    assert set(got) == {"pdf_download", "engaged_reader"}
    assert "1 event create rule" in got["pdf_download"].message
    assert "1 audience trigger" in got["engaged_reader"].message
    assert all(f.severity == "warning" for f in got.values())
    mark(site, "pdf_download")
    findings = by_check(audit_property(conn, PROP, None))
    assert {f.subject for f in findings["created-event-not-key-event"]} == {"engaged_reader"}


def test_key_event_whose_rule_or_audience_is_missing(site, conn):
    page = page_goal("quote_thanks", "contains", "/contact")
    engaged = Goal("engaged_visit", "micro", 0.4, origin=SessionRule(min_page_views=5))
    s = spec(page, engaged)
    for e in ("generate_lead", "quote_thanks", "engaged_visit"):
        mark(site, e)
    findings = by_check(audit_property(conn, PROP, s))
    got = {f.subject: f.message for f in findings["missing-goal-machinery"]}
    assert set(got) == {"quote_thanks", "engaged_visit"}
    assert "no event create rule makes it" in got["quote_thanks"]
    assert "no audience logs it" in got["engaged_visit"]
    sm.create_rule(site, PID, web_stream(site), rule_body(
        "quote_thanks", "page_view", [("page_location", "CONTAINS", "/contact")]))
    findings = by_check(audit_property(conn, PROP, s))
    assert {f.subject for f in findings["missing-goal-machinery"]} == {"engaged_visit"}
    assert "goal-machinery-mismatch" not in findings  # the rule says what the spec says
    # a property without a web stream: say so
    sm.set_streams(site, PID, web=0, android=1)
    findings = by_check(audit_property(conn, PROP, s))
    msgs = {f.subject: (f.message, f.fix) for f in findings["missing-goal-machinery"]}
    assert "no web data stream" in msgs["quote_thanks"][0]
    assert "Add a web data stream" in msgs["quote_thanks"][1]


def test_drifted_rule_names_who_changed_it(site, conn, tmp_path):
    g = page_goal("quote_thanks", "contains", "/contact")
    mark(site, "generate_lead")
    mark(site, "quote_thanks")
    when = datetime.now(timezone.utc) - timedelta(days=3)
    made = sm.create_rule(site, PID, web_stream(site), rule_body(
        "quote_thanks", "page_view", [("page_location", "CONTAINS", "/contact-us")]),
        actor=DANA, when=when)
    [f] = by_check(audit_property(conn, PROP, spec(g)))["goal-machinery-mismatch"]
    assert f.subject == "quote_thanks" and made["name"] in f.message
    assert '{"contains": "/contact-us"}' in f.message and '{"contains": "/contact"}' in f.message
    assert f.last_change is not None and f.last_change.actor == DANA
    assert f.last_change.by_ga_sync is False
    assert f.last_change.time.startswith(when.strftime("%Y-%m-%dT%H:%M"))
    assert f.to_json()["last_change"] == f.last_change.to_json()
    audited = AuditResult((AuditedProperty(PROP, "Kinds Co", None, (f,)),))
    assert f"Last changed by {DANA} on {when:%Y-%m-%d %H:%M} UTC (not by ga-sync)." in \
        audit_text(audited)
    assert f"Last changed by {DANA}" in audit_markdown(audited)
    assert json.loads(json.dumps(audited.to_json()))["findings"][0]["last_change"]["actor"] == DANA
    # key-event mismatches get the actor too (the sandbox's key events are its own: the
    # counting method changed by hand is found, without an actor when no history has it)
    site.properties[PID].key_events[next(k for k, v in site.properties[PID].key_events.items()
                                         if v.event_name == "quote_thanks")].counting_method = 2
    found = by_check(audit_property(conn, PROP, spec(g)))
    assert found["counting-method-mismatch"][0].resource[0] == "key_event"


def test_an_unreadable_change_history_is_not_a_failed_audit(site, conn, monkeypatch):
    g = page_goal("quote_thanks", "contains", "/contact")
    mark(site, "generate_lead")
    mark(site, "quote_thanks")
    sm.create_rule(site, PID, web_stream(site), rule_body(
        "quote_thanks", "page_view", [("page_location", "CONTAINS", "/x")]), actor=DANA)
    from ga_sync import changelog
    from ga_sync.errors import ApiError

    def refuse(conn, account, **kw):
        raise ApiError("change history refused (HTTP 403)", status=403)
    monkeypatch.setattr(changelog, "search", refuse)
    findings = audit_property(conn, PROP, spec(g))
    [f] = by_check(findings)["goal-machinery-mismatch"]
    assert f.last_change is None and "last_change" not in f.to_json()
    assert "audit-failed" not in by_check(findings)


def test_unreadable_machinery_skips_its_checks_only(site, conn, monkeypatch):
    from ga_sync import machinery
    from ga_sync.errors import ApiError

    def refuse(conn, property, **kw):
        raise ApiError("list data streams: HTTP 403", property=property, status=403)
    monkeypatch.setattr(machinery, "read_machinery", refuse)
    mark(site, "generate_lead")
    findings = by_check(audit_property(conn, PROP, spec(page_goal("p", "contains", "/x"))))
    [f] = findings["goal-machinery-unread"]
    assert f.severity == "info" and "HTTP 403" in f.message
    assert "page-goal-no-match" in findings  # the data checks still ran


# --------------------------------------------------------------------------- pure checks


def facts_with(machinery: Machinery, spec_: Spec | None = None, **kw) -> PropertyFacts:
    return PropertyFacts(property=PROP, client="c", info=PropertyInfo(PROP), key_events=(),
                         retention="FOURTEEN_MONTHS",
                         period=Period(date(2026, 10, 1), date(2026, 10, 28)),
                         machinery=machinery, spec=spec_, total_sessions=100, **kw)


def test_regex_rule_on_an_app_stream():
    web = Stream(f"{PROP}/dataStreams/1", True, "Site")
    app = Stream(f"{PROP}/dataStreams/2", False, "App", "ANDROID_APP_DATA_STREAM")
    regex = EventRule("screen_view", (Condition("screen_name", "regex", "^Thanks"),))
    plain = EventRule("screen_view", (Condition("screen_name", "equals", "Thanks"),))
    odd = Unexpressible("event_create_rule", json.dumps(
        {"from": "screen_view", "where": {"screen_name": {"regular_expression_case_insensitive":
                                                          "thanks", "negated": True}},
         "other": "negated"}))
    rules = (RuleState(f"{app.name}/eventCreateRules/1", app.name, "app_thanks", regex),
             RuleState(f"{app.name}/eventCreateRules/2", app.name, "app_plain", plain),
             RuleState(f"{app.name}/eventCreateRules/3", app.name, "app_odd", odd),
             RuleState(f"{web.name}/eventCreateRules/4", web.name, "web_thanks", regex))
    found = run_checks(facts_with(Machinery((web, app), rules)), ["regex-rule-on-app-stream"])
    assert [f.subject for f in found] == ["app_odd", "app_thanks"]
    assert all("android_app data stream `App`" in f.message for f in found)


@pytest.mark.parametrize("rules,audiences,triggers,fires", [
    (39, 0, 0, []), (40, 0, 0, ["created events (event create rules)"]), (0, 79, 15, []),
    (0, 80, 0, ["audiences"]), (0, 16, 16, ["audience triggers"]),
    (50, 100, 20, ["created events (event create rules)", "audiences", "audience triggers"])])
def test_machinery_near_gas_limits(rules, audiences, triggers, fires):
    stream = Stream(f"{PROP}/dataStreams/1", True)
    m = Machinery((stream,), tuple(RuleState(f"r{i}", stream.name, f"e{i}", EventRule("x"))
                                   for i in range(rules)),
                  tuple(AudienceState(f"a{i}", f"t{i}" if i < triggers else "",
                                      SessionRule(min_page_views=2)) for i in range(audiences)))
    found = run_checks(facts_with(m), ["goal-machinery-limit"])
    assert [f.message.split(" are used")[0].split(" ", 3)[3] for f in found] == fires
    assert all(f.severity == CHECKS["goal-machinery-limit"].severity == "warning" for f in found)
    if rules == 40:
        assert found[0].message.startswith("40 of 50 created events") and "room for 10" in \
            found[0].message


# --------------------------------------------------------------------------- cost


def test_cost_only_specs_with_goal_kinds_read_the_machinery(site, conn, sandbox):
    mark(site, "generate_lead", 2, 150.0)  # as the spec says: no mismatch, no history search
    sandbox.stats.reset()
    audit_property(conn, PROP, spec())
    before = sandbox.stats.snapshot()
    assert before["admin_requests"] == 3 and before["data_requests"] == 1
    sandbox.stats.reset()
    audit_property(conn, PROP, spec(page_goal("a", "contains", "/a")))
    one = sandbox.stats.snapshot()
    # + streams, the web stream's rules, audiences (and no change history: nothing drifted);
    # 3 base reports + 1 page goal + locations = 5 = one batchRunReports
    assert one["admin_requests"] == 6 and one["data_requests"] == 1
    sandbox.stats.reset()
    audit_property(conn, PROP, spec(*(page_goal(e, "contains", f"/{e}") for e in "abc")))
    assert sandbox.stats.snapshot()["data_requests"] == 2 and \
        sandbox.stats.snapshot()["writes"] == 0


# --------------------------------------------------------------------------- never-fired


@pytest.mark.parametrize("kind,marked,page_views,fires", [
    ("from", "2026-09-01T10:00:00.000000Z", None, True),  # made long ago, still silent
    ("from", "2026-10-20T10:00:00.000000Z", None, False),  # made inside the window: too soon
    ("session", "2026-10-20T10:00:00.000000Z", None, False),
    ("from", None, None, False),  # no key event: missing-key-event's finding
    ("page", "2026-10-20T10:00:00.000000Z", 40, False),  # counted from its page views
    ("page", "2026-09-01T10:00:00.000000Z", 0, False),  # page-goal-no-match's finding
    ("event", "2026-10-20T10:00:00.000000Z", None, True),  # the site sends it: no excuse
])
def test_never_fired_waits_for_goals_ga_makes(kind, marked, page_views, fires):
    origin = {"from": EventRule("file_download", (Condition("file_extension", "equals", "pdf"),)),
              "session": SessionRule(min_page_views=5),
              "page": EventRule("page_view", (Condition("page_location", "contains", "/x"),)),
              "event": None}[kind]
    goal = Goal("made_goal", "micro", 1.0, origin=origin)
    spec_ = Spec("c", (PROP,), "USD", (goal,))
    key_events = () if marked is None else (KeyEventState(
        "made_goal", KeyEventSettings("once_per_event"), f"{PROP}/keyEvents/1", True, True,
        marked),)
    facts = PropertyFacts(property=PROP, client="c", info=PropertyInfo(PROP),
                          key_events=key_events, retention="FOURTEEN_MONTHS",
                          period=Period(date(2026, 10, 1), date(2026, 10, 28)), spec=spec_,
                          total_sessions=100,
                          page_views={} if page_views is None else {"made_goal": page_views})
    found = run_checks(facts, ["never-fired"])
    assert bool(found) == fires, found
