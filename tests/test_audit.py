"""Audit: each check fires on a sandbox property that has its problem and only then.

A clean property is configured from a clean spec through plan/apply; every check test breaks one
thing in it (a key event, the traffic, a property setting) and asserts the exact set of checks
that fire. Expected numbers are computed from the sandbox's event log with plain pandas.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import replace
from datetime import date, timedelta
from typing import Any

import pytest
from google.analytics.admin_v1beta.types import KeyEvent

from ga_sync.admin import Journal
from ga_sync.audit import (
    CHECKS,
    RUNNERS,
    AuditResult,
    EventStats,
    Finding,
    PropertyFacts,
    audit_all,
    audit_period,
    audit_property,
    exit_code,
    gather,
    normalize_name,
    redact,
    suggest_name,
)
from ga_sync.clients import RetryPolicy, connect
from ga_sync.model import Goal, KeyEventSettings, KeyEventState, PropertyInfo, Spec
from ga_sync.render.audit import audit_json, audit_markdown, audit_text
from ga_sync.periods import Period
from ga_sync.sandbox.scenarios import scenario_spec_yaml, seed_scenario
from ga_sync.sandbox.server import SandboxServer
from ga_sync.sandbox.traffic import event_log, make_traffic
from ga_sync.spec import load_specs
from ga_sync.sync import apply_all, plan_all

PID = "777000111"
PROP = f"properties/{PID}"
TZ = "America/New_York"
GOALS = (
    Goal("purchase", "macro", None),
    Goal("generate_lead", "macro", 150.0, "once_per_session"),
    Goal("sign_up", "micro", 12.5),
    Goal("newsletter_signup", "micro", 3.0, "once_per_session"),
    Goal("file_download", "micro", None, "once_per_session"),
)
# The checks of the table; `no-data` and `audit-failed` are ga-sync's own additions.
CONTRACT_CHECKS = (
    "missing-key-event", "unmanaged-key-event", "counting-method-mismatch",
    "default-value-mismatch", "never-fired", "pageview-like-key-event", "invalid-event-name",
    "duplicate-event-name", "key-event-limit", "value-overridden", "currency-mismatch",
    "pii-in-page-path", "data-thresholded", "short-data-retention", "no-access",
    # goal kinds (issue 11): the messy scenario's hand-made rules and audiences
    "page-goal-no-match", "created-event-not-key-event", "missing-goal-machinery",
    "goal-machinery-mismatch", "regex-rule-on-app-stream")
#: Checks of goal kinds whose firing tests live in test_audit_kinds.py (by name there).
KIND_CHECK_TESTS = {
    "page-goal-no-match": "test_page_goal_matching_nothing_names_the_closest_pages",
    "created-event-not-key-event": "test_rule_or_trigger_whose_event_is_not_a_key_event",
    "missing-goal-machinery": "test_key_event_whose_rule_or_audience_is_missing",
    "goal-machinery-mismatch": "test_drifted_rule_names_who_changed_it",
    "regex-rule-on-app-stream": "test_regex_rule_on_an_app_stream",
    "goal-machinery-limit": "test_machinery_near_gas_limits",
    "goal-machinery-unread": "test_unreadable_machinery_skips_its_checks_only",
}
SPEC_FREE = {c for c, check in CHECKS.items() if not check.needs_spec}


def traffic(values: dict[str, float | None] | None = None, **options: Any) -> dict:
    """The clean site's traffic: every goal fires, plus a non-goal event and a browsing-like one."""
    values = values or {}
    goals = [(g.event, g.tier, values.get(g.event, g.value)) for g in GOALS]
    return make_traffic(goals, seed=3, daily_sessions=600, property_id=PID,
                        extra_events=[("view_item_list", 0.2)], pageview_like=["view_content"],
                        **options)


class Site:
    """A sandbox property configured from `spec` by plan/apply, and ways to break it."""

    def __init__(self, state: Any, server: SandboxServer, conn: Any) -> None:
        self.state, self.server, self.conn = state, server, conn
        self.record = state.add_property(property_id=PID, display_name="Clean Co", time_zone=TZ,
                                         currency_code="USD", traffic=traffic())
        self.spec = Spec(client="Clean Co", properties=(PROP,), currency="USD", goals=GOALS)
        self.apply(self.spec)

    def apply(self, spec: Spec) -> Spec:
        plan, failures = plan_all(self.conn, [spec])
        assert not failures
        results = apply_all(self.conn, plan, Journal(None))
        assert all(r.ok for r in results)
        self.spec = spec
        return spec

    def key_event(self, event: str) -> KeyEvent:
        ke = self.record.key_event_by_name(event)
        assert ke is not None, event
        return ke

    def insert(self, event: str) -> None:
        """A custom key event written straight into the state (the Admin API may refuse it)."""
        kid = self.state.new_key_event_id()
        self.record.key_events[kid] = KeyEvent(
            name=f"{PROP}/keyEvents/{kid}", event_name=event, deletable=True, custom=True,
            counting_method=KeyEvent.CountingMethod.ONCE_PER_EVENT)

    def add_goal(self, goal: Goal) -> None:
        self.apply(replace(self.spec, goals=self.spec.goals + (goal,)))

    def audit(self, spec: Spec | None | str = "spec", **kw: Any) -> list[Finding]:
        return audit_property(self.conn, PROP, self.spec if spec == "spec" else spec, **kw)


@pytest.fixture
def conn(sandbox, monkeypatch):
    monkeypatch.setenv("GA_SYNC_ADMIN_ENDPOINT", sandbox.url)
    monkeypatch.setenv("GA_SYNC_DATA_ENDPOINT", sandbox.url)
    monkeypatch.setenv("GA_SYNC_CREDENTIALS", "anonymous")
    return connect(write=True)


@pytest.fixture
def site(sandbox_state, sandbox, conn) -> Site:
    return Site(sandbox_state, sandbox, conn)


def checks_of(findings: list[Finding]) -> set[str]:
    return {f.check for f in findings}


# --------------------------------------------------------------------------- one check at a time


def _del(site: Site, event: str) -> None:
    ke = site.key_event(event)
    del site.record.key_events[ke.name.rsplit("/", 1)[1]]


def _fill_to_limit(site: Site) -> None:
    custom = sum(1 for ke in site.record.key_events.values() if ke.custom)
    for i in range(math.ceil(0.8 * site.record.key_event_limit) - custom):
        site.insert(f"extra_goal_{i:02d}")


def _encoded_pii(site: Site) -> None:
    t = traffic()
    t["pages"].append({"path": "/unsubscribe/jane.doe%40example.com", "weight": 3.0})
    site.record.traffic = t


def _clear_default(site: Site) -> None:
    KeyEvent.pb(site.key_event("sign_up")).ClearField("default_value")


STRAY = {"unmanaged-key-event", "never-fired"}  # a key event nobody sends, not in the spec
MUTATIONS: list[tuple[str, str, Callable[[Site], Any], set[str]]] = [
    ("missing-key-event", "unmarked", lambda s: _del(s, "sign_up"), set()),
    ("unmanaged-key-event", "stray", lambda s: s.insert("view_item_list"), set()),
    ("counting-method-mismatch", "per-session",
     lambda s: setattr(s.key_event("sign_up"), "counting_method", 2), set()),
    ("default-value-mismatch", "value",
     lambda s: setattr(s.key_event("generate_lead").default_value, "numeric_value", 99.0), set()),
    ("default-value-mismatch", "currency",
     lambda s: setattr(s.key_event("generate_lead").default_value, "currency_code", "EUR"),
     set()),
    ("default-value-mismatch", "no-default", _clear_default, set()),
    ("never-fired", "goal", lambda s: s.add_goal(Goal("request_quote", "macro", 200.0)), set()),
    ("pageview-like-key-event", "page_view",
     lambda s: s.add_goal(Goal("page_view", "micro", None)), set()),
    ("pageview-like-key-event", "most-sessions",
     lambda s: s.add_goal(Goal("view_content", "micro", None)), set()),
    ("invalid-event-name", "too-long",
     lambda s: s.insert("newsletter_signup_confirmation_thank_you_page"), STRAY),
    ("invalid-event-name", "hyphen", lambda s: s.insert("form-submit"), STRAY),
    ("duplicate-event-name", "case", lambda s: s.insert("Sign_Up"), STRAY),
    ("duplicate-event-name", "separator", lambda s: s.insert("signup"), STRAY),
    ("key-event-limit", "80%", _fill_to_limit, STRAY),
    ("value-overridden", "event-value",
     lambda s: setattr(s.record, "traffic", traffic({"sign_up": None})), set()),
    ("currency-mismatch", "property",
     lambda s: setattr(s.record, "currency_code", "EUR"), set()),
    ("pii-in-page-path", "email-param",
     lambda s: setattr(s.record, "traffic", traffic(pii_paths=True)), set()),
    ("pii-in-page-path", "encoded", _encoded_pii, set()),
    ("data-thresholded", "thresholding",
     lambda s: setattr(s.record, "traffic", traffic(thresholding=True)), set()),
    ("short-data-retention", "two-months",
     lambda s: setattr(s.record, "event_data_retention", "TWO_MONTHS"), set()),
    ("no-data", "tag-installed-yesterday",
     lambda s: setattr(s.record, "traffic", traffic(start=date.today() - timedelta(days=1))),
     set()),
    ("no-access", "denied", lambda s: s.state.deny(PID), set()),
]


@pytest.mark.parametrize("check,variant,mutate,extras", MUTATIONS,
                         ids=[f"{c}-{v}" for c, v, _, _ in MUTATIONS])
def test_check_fires_on_its_problem_only(site, check, variant, mutate, extras):
    mutate(site)
    findings = site.audit()
    assert checks_of(findings) == {check} | extras
    mine = [f for f in findings if f.check == check]
    assert all(f.severity == CHECKS[check].severity for f in mine)
    assert all(f.property == PROP and f.client == "Clean Co" for f in mine)
    assert all(f.message and f.fix and f.fix.endswith(".") for f in findings)
    assert not any("{" in f.message + f.fix for f in findings)  # no unformatted placeholder


def test_every_check_has_a_firing_test():
    import test_audit_kinds
    assert all(callable(getattr(test_audit_kinds, name, None))
               for name in KIND_CHECK_TESTS.values())
    assert {c for c, _, _, _ in MUTATIONS} | {"audit-failed"} | set(KIND_CHECK_TESTS) \
        == set(CHECKS)
    assert set(CONTRACT_CHECKS) <= set(CHECKS)


@pytest.mark.parametrize("check", sorted(CHECKS))
def test_clean_property_does_not_trigger(site, check):
    assert check not in checks_of(site.audit())
    assert check not in checks_of(site.audit(None))


def test_clean_spec_applied_to_clean_property_audits_with_zero_findings(site):
    assert site.audit() == []
    assert site.audit(None) == []  # GA's default `purchase` is not unmanaged noise either
    facts = gather(site.conn, PROP, site.spec)
    assert facts.total_sessions > 1000 and len(facts.key_events) == len(GOALS)


def test_clean_scenario_audits_with_zero_findings(sandbox_state, sandbox, conn, tmp_path):
    ids = seed_scenario(sandbox_state, "clean")
    (tmp_path / "clean.yaml").write_text(scenario_spec_yaml("clean", ids))
    result = audit_all(conn, load_specs([tmp_path / "clean.yaml"]))
    assert result.findings == [] and len(result.audited) == 1
    assert result.to_json()["summary"] == {"properties": 1, "error": 0, "warning": 0, "info": 0}


# --------------------------------------------------------------------------- what the checks say


def test_messages_name_the_computed_numbers(site):
    site.add_goal(Goal("page_view", "micro", None))
    site.key_event("sign_up").counting_method = 2
    site.record.traffic = traffic({"newsletter_signup": None})
    period = audit_period(date.today() - timedelta(days=1), 28)
    findings = {f.check: f for f in site.audit(today=date.today() - timedelta(days=1))}
    log = event_log(site.record.traffic, period.start, period.end, TZ)
    sessions = log["session_id"].nunique()
    pv = log.loc[log["event_name"] == "page_view", "session_id"].nunique()
    assert f"({pv:,} of {sessions:,})" in findings["pageview-like-key-event"].message
    assert f"{pv / sessions:.0%} of sessions" in findings["pageview-like-key-event"].message
    su = log[log["event_name"] == "sign_up"]
    msg = findings["counting-method-mismatch"].message
    assert f"{su['session_id'].nunique():,} key events in GA" in msg
    assert f"against {len(su):,} conversions" in msg
    ns = log[log["event_name"] == "newsletter_signup"]
    assert f"{ns['value'].sum():,.2f} USD over {len(ns):,} events" in \
        findings["value-overridden"].message


def test_findings_sorted_by_severity_check_subject(sandbox_state, sandbox, conn):
    main, _ = seed_scenario(sandbox_state, "messy")
    findings = audit_property(conn, main, None)
    keys = [f.sort_key() for f in findings]
    assert keys == sorted(keys) and len({f.severity for f in findings}) == 3


def test_missing_key_event_names_a_case_variant(site):
    _del(site, "sign_up")
    site.insert("Sign_Up")
    missing = [f for f in site.audit() if f.check == "missing-key-event"]
    assert len(missing) == 1 and "`Sign_Up`" in missing[0].message


def test_pii_message_is_redacted(site):
    _encoded_pii(site)
    (pii,) = [f for f in site.audit() if f.check == "pii-in-page-path"]
    assert "***%40example.com" in pii.message and "jane" not in pii.message


@pytest.mark.parametrize("level,fires", [("GOOGLE_ANALYTICS_STANDARD", True),
                                         ("GOOGLE_ANALYTICS_360", False)])
def test_key_event_limit_depends_on_service_level(site, level, fires):
    _fill_to_limit(site)  # 80% of the standard limit
    site.record.service_level = level
    assert ("key-event-limit" in checks_of(site.audit())) is fires


def test_key_event_limit_just_below_threshold(site):
    _fill_to_limit(site)
    _del(site, "extra_goal_00")
    assert "key-event-limit" not in checks_of(site.audit())


def test_duplicate_keeps_the_spelling_the_spec_names(site):
    site.insert("Sign_Up")
    (dup,) = [f for f in site.audit() if f.check == "duplicate-event-name"]
    assert dup.subject == "Sign_Up, sign_up" and "Keep `sign_up`" in dup.fix


def test_invalid_name_suggests_a_valid_one():
    assert suggest_name("newsletter_signup_confirmation_thank_you_page") == \
        "newsletter_signup_confirmation_thank_you"
    assert suggest_name("form-submit") == "form_submit"
    assert suggest_name("ga_sign up") == "sign_up"
    assert suggest_name("---") is None


def test_normalize_and_redact():
    assert {normalize_name(n) for n in ("Sign_Up", "sign_up", "signup", "sign-up", "Sign Up")} \
        == {"signup"}
    assert normalize_name("sign_in") != normalize_name("sign_up")
    assert redact("https://x.com/a?email=jane@x.com&b=1") == "https://x.com/a?email=***&b=1"
    assert redact("/u/jo%40x.com") == "/u/***%40x.com"
    assert redact("/c?phone=555123&ok=1") == "/c?phone=***&ok=1"


def _facts(sessions: int, events: dict[str, EventStats], names: list[str]) -> PropertyFacts:
    kes = tuple(KeyEventState(n, KeyEventSettings("once_per_event"), deletable=True, custom=True)
                for n in names)
    return PropertyFacts(PROP, "Pure", PropertyInfo(PROP), kes, "FOURTEEN_MONTHS",
                         Period(date(2026, 1, 1), date(2026, 1, 28)), events, sessions)


@pytest.mark.parametrize("with_event,fires", [(500, False), (501, True)])
def test_pageview_like_threshold_is_over_half_of_sessions(with_event, fires):
    facts = _facts(1000, {"view_content": EventStats(2000, with_event, 0.0)}, ["view_content"])
    assert bool(RUNNERS["pageview-like-key-event"](facts)) is fires


@pytest.mark.parametrize("value_sum,fires", [(0.0, False), (50.0, False), (73.4, True)])
def test_value_overridden_ignores_a_sum_that_is_only_the_default(value_sum, fires):
    ke = KeyEventState("sign_up", KeyEventSettings("once_per_event", 5.0, "USD"), custom=True,
                       deletable=True)
    facts = replace(_facts(100, {"sign_up": EventStats(10, 9, value_sum)}, []), key_events=(ke,))
    assert bool(RUNNERS["value-overridden"](facts)) is fires


def test_browsing_key_event_without_data_still_named():
    facts = _facts(0, {}, ["page_view"])
    (f,) = RUNNERS["pageview-like-key-event"](facts)
    assert f.subject == "page_view" and "0 of 0" not in f.message


# --------------------------------------------------------------------------- scenario, cost, access


@pytest.fixture
def messy(sandbox_state, sandbox, conn, tmp_path):
    ids = seed_scenario(sandbox_state, "messy")
    path = tmp_path / "messy.yaml"
    path.write_text(scenario_spec_yaml("messy", ids))
    (spec,) = load_specs([path])
    return ids, spec


def test_messy_scenario_fires_every_check(messy, conn):
    ids, spec = messy
    result = audit_all(conn, [spec])
    assert checks_of(result.findings) == set(CONTRACT_CHECKS)
    assert [a.property for a in result.audited] == [f"properties/{i}" for i in ids]


def test_messy_scenario_is_idempotent(sandbox_state):
    first = seed_scenario(sandbox_state, "messy")
    before = {p: len(r.key_events) for p, r in sandbox_state.properties.items()}
    assert seed_scenario(sandbox_state, "messy") == first
    assert {p: len(r.key_events) for p, r in sandbox_state.properties.items()} == before
    with pytest.raises(ValueError):
        seed_scenario(sandbox_state, "tidy")


def test_cost_per_property(messy, conn, sandbox):
    ids, spec = messy
    for pid in ids:
        sandbox.stats.reset()
        audit_property(conn, pid, spec)
        stats = sandbox.stats.snapshot()
        # 3 for key events, property and retention; with goal kinds in the spec also streams,
        # each web stream's rules, audiences and one change-history search
        assert 1 <= stats["admin_requests"] <= 9 and stats["data_requests"] <= 2
        assert stats["writes"] == 0
    sandbox.stats.reset()
    audit_property(conn, ids[0], spec)
    # one batch; a spec with page: goals adds one request for the page locations seen
    page_goals = any(g.kind == "page" for g in spec.goals)
    assert sandbox.stats.snapshot()["data_requests"] == 1 + page_goals


def test_no_access_is_one_finding_and_the_others_are_audited(messy, conn):
    ids, spec = messy
    result = audit_all(conn, [spec], properties=["999999999"])
    by_prop = {a.property: a.findings for a in result.audited}
    denied = by_prop[f"properties/{ids[1]}"]
    assert [(f.check, f.severity, f.subject) for f in denied] == [("no-access", "error", None)]
    assert "403" in denied[0].message
    assert len(by_prop[f"properties/{ids[0]}"]) > 10
    (missing,) = by_prop["properties/999999999"]
    assert missing.check == "no-access" and "403" in missing.message and missing.client == ""
    assert result.to_json()["summary"]["properties"] == 3


def test_other_failures_are_an_audit_failed_finding(sandbox_state, monkeypatch):
    seed_scenario(sandbox_state, "clean")
    server = SandboxServer(sandbox_state, fault_rate=1.0, seed=5).start()
    try:
        for key in ("GA_SYNC_ADMIN_ENDPOINT", "GA_SYNC_DATA_ENDPOINT"):
            monkeypatch.setenv(key, server.url)
        monkeypatch.setenv("GA_SYNC_CREDENTIALS", "anonymous")
        c = connect()
        c.retry = RetryPolicy(attempts=1)
        (finding,) = audit_property(c, "424242424")
    finally:
        server.stop()
    assert finding.check == "audit-failed" and finding.severity == "error"


def test_spec_free_audit_runs_only_spec_free_checks(messy, conn):
    ids, _ = messy
    findings = audit_property(conn, ids[0])
    fired = checks_of(findings)
    assert fired <= SPEC_FREE
    assert {"never-fired", "invalid-event-name", "duplicate-event-name", "key-event-limit",
            "pageview-like-key-event", "pii-in-page-path", "data-thresholded",
            "short-data-retention", "value-overridden", "currency-mismatch"} <= fired
    assert {f.client for f in findings} == {"Messy Outdoor Co"}
    # without a spec, key events are the subjects: the unmarked goal is nobody's business
    assert "request_quote" not in {f.subject for f in findings}
    assert {"book_demo", "add_to_cart"} <= {f.subject for f in findings}
    (stray,) = [f for f in findings if f.check == "never-fired" and f.subject == "test_event_1"]
    assert "remove the key event" in stray.fix


def test_audit_all_adds_spec_free_properties_once(messy, conn, sandbox_state):
    ids, spec = messy
    clean = seed_scenario(sandbox_state, "clean")
    result = audit_all(conn, [spec], properties=[ids[0], f"properties/{clean[0]}"],
                       concurrency=2)
    assert [a.property for a in result.audited] == [f"properties/{p}" for p in ids + clean]
    assert result.audited[2].client == "Tidy Trails" and result.audited[2].findings == ()


# --------------------------------------------------------------------------- window


def test_window_skips_today_and_two_processing_days():
    p = audit_period(date(2026, 11, 22), 28)
    assert (p.start, p.end, p.days) == (date(2026, 10, 23), date(2026, 11, 19), 28)
    assert audit_period(date(2026, 3, 1), 1) == Period(date(2026, 2, 26), date(2026, 2, 26))


def test_gather_reads_exactly_the_window(site):
    today = date.today() - timedelta(days=5)
    facts = gather(site.conn, PROP, site.spec, days=14, today=today)
    assert facts.period == audit_period(today, 14)
    log = event_log(site.record.traffic, facts.period.start, facts.period.end, TZ)
    assert facts.total_sessions == log["session_id"].nunique()
    shifted = event_log(site.record.traffic, facts.period.start + timedelta(days=1),
                        facts.period.end + timedelta(days=1), TZ)
    assert facts.total_sessions != shifted["session_id"].nunique()
    lead = log[log["event_name"] == "generate_lead"]
    assert facts.stats("generate_lead") == EventStats(len(lead), lead["session_id"].nunique(),
                                                       0.0)


def test_bad_days_is_a_user_error(conn):
    from ga_sync.errors import GaSyncError
    with pytest.raises(GaSyncError):
        audit_period(date(2026, 1, 1), 0)
    with pytest.raises(GaSyncError):
        audit_all(conn, [], days=0)


# --------------------------------------------------------------------------- exit codes and output


def _finding(severity: str, check: str = "never-fired", subject: str | None = "x") -> Finding:
    return Finding(PROP, "Acme", check, severity, subject, "m.", "f.")


@pytest.mark.parametrize("severities,fail_on,code", [
    ([], "error", 0), (["warning", "info"], "error", 0), (["error"], "error", 1),
    (["warning"], "warning", 1), (["info"], "warning", 0), (["error"], "warning", 1),
    (["error", "warning"], "never", 0), (["info"], "info", 1),
])
def test_exit_code(severities, fail_on, code):
    assert exit_code([_finding(s) for s in severities], fail_on) == code


def test_exit_code_rejects_unknown_level():
    with pytest.raises(ValueError):
        exit_code([], "fatal")


def test_json_contract(messy, conn):
    ids, spec = messy
    result = audit_all(conn, [spec])
    data = json.loads(audit_json(result))
    assert list(data) == ["version", "findings", "summary"] and data["version"] == 1
    assert list(data["summary"]) == ["properties", "error", "warning", "info"]
    for f in data["findings"]:
        assert list(f) in (["property", "client", "check", "severity", "subject", "message",
                            "fix"], ["property", "client", "check", "severity", "subject",
                                     "message", "fix", "last_change"])
        assert f["severity"] == CHECKS[f["check"]].severity
    for s in ("error", "warning", "info"):
        assert data["summary"][s] == sum(1 for f in data["findings"] if f["severity"] == s)
    assert data["summary"]["properties"] == len(ids)
    whole = [f for f in data["findings"] if f["check"] in ("key-event-limit", "no-access")]
    assert whole and all(f["subject"] is None for f in whole)


def _result() -> AuditResult:
    from ga_sync.audit import AuditedProperty
    p = Period(date(2026, 10, 23), date(2026, 11, 19))
    return AuditResult((
        AuditedProperty(PROP, "Acme", p, (_finding("error", "never-fired", "book_demo"),
                                          _finding("info", "data-thresholded", None))),
        AuditedProperty("properties/2", "Acme", p, ()),
        AuditedProperty("properties/3", "", None, (_finding("error", "no-access", None),)),
    ))


def test_text_groups_by_client_and_severity():
    text = audit_text(_result())
    assert text == (
        "Acme\n"
        f"  {PROP} (2026-10-23 to 2026-11-19, 28 days): 1 error, 0 warnings, 1 info\n"
        "    errors (1)\n"
        "      [never-fired] book_demo\n"
        "        m.\n"
        "        fix: f.\n"
        "    info (1)\n"
        "      [data-thresholded]\n"
        "        m.\n"
        "        fix: f.\n"
        "  properties/2 (2026-10-23 to 2026-11-19, 28 days): 0 errors, 0 warnings, 0 info\n"
        "    no findings\n"
        "\n"
        "properties/3\n"
        "  properties/3 (not read): 1 error, 0 warnings, 0 info\n"
        "    errors (1)\n"
        "      [no-access]\n"
        "        m.\n"
        "        fix: f.\n"
        "\n"
        "Audited 3 properties: 2 errors, 0 warnings, 1 info.\n")
    assert "\x1b" not in text


def test_markdown_has_a_table_per_property():
    md = audit_markdown(_result())
    assert md.startswith("### ga-sync audit\n\n**Audited 3 properties: 2 errors, 0 warnings, "
                         "1 info.**")
    assert f"#### Acme (`{PROP}`), 2026-10-23 to 2026-11-19, 28 days" in md
    assert "| error | `never-fired` | `book_demo` | m. | f. |" in md
    assert "| info | `data-thresholded` |  | m. | f. |" in md
    assert md.count("| severity | check | subject | finding | fix |") == 2
    assert "No findings." in md


def test_markdown_escapes_pipes():
    r = AuditResult((replace(_result().audited[0], client="A|B", findings=(
        Finding(PROP, "A|B", "never-fired", "error", "x", "a | b", "c\nd"),)),))
    md = audit_markdown(r)
    assert "a \\| b" in md and "c d" in md and "A\\|B" in md
