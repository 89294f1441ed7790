"""Goal kinds in the plan: pure diff cases for event create rules and audiences, normalization
of GA's JSON both ways, drift attribution and annotations against fakes, and the whole cycle
(plan, apply, plan, dump, drift) against the sandbox."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from ga_sync import garules
from ga_sync.changelog import (ChangeHistory, annotation_text, canonical, describe,
                               goal_actions, read_journal)
from ga_sync.errors import ApiError, UnsafePlan
from ga_sync.machinery import (MEMBERSHIP_DAYS, AudienceState, RuleState, Stream,
                               Unexpressible, audience_json, audience_proto, normalize_audience,
                               normalize_rule, rule_json, rule_proto)
from ga_sync.model import (AUDIENCE, EVENT_CREATE_RULE, KEY_EVENT, Change, Condition,
                           EventRule, KeyEventSettings as S, KeyEventState, LastChange, Plan,
                           SessionRule)
from ga_sync.plan import MachineryPlan, check_safety, diff
from ga_sync.render.plan import plan_json, plan_markdown, plan_text

P = "properties/1"
WEB = Stream(f"{P}/dataStreams/2", True)
WEB2 = Stream(f"{P}/dataStreams/4", True)
APP = Stream(f"{P}/dataStreams/3", False, kind="ANDROID_APP_DATA_STREAM")
THANKS = EventRule("page_view", (Condition("page_location", "contains", "/quote/thank-you"),))
PDF = EventRule("file_download", (Condition("file_extension", "equals", "pdf"),
                                  Condition("link_url", "contains", "/brochure", True)))
FIVE = SessionRule(min_page_views=5)
ONCE = S("once_per_event")


def rule(event, form, stream=WEB, n=9):
    return RuleState(f"{stream.name}/eventCreateRules/{n}", stream.name, event, form)


def audience(event, form, n=5, display=""):
    return AudienceState(f"{P}/audiences/{n}", event, form, display)


def key(event):
    return KeyEventState(event, ONCE, name=f"{P}/keyEvents/{abs(hash(event)) % 10**9}",
                         deletable=True, custom=True)


def plan_of(origins, *, keys=(), streams=(WEB,), rules=(), audiences=(), prune=False):
    return diff(P, "c", {e: ONCE for e in origins}, list(keys), origins=origins,
                streams=streams, rules=rules, audiences=audiences, prune=prune)


def actions(p):
    return [(c.action, c.resource, c.event, c.stream) for c in p.changes]


# --------------------------------------------------------------------------- pure diff

def test_every_kind_created_machinery_before_key_event():
    p = plan_of({"quote_thank_you": THANKS, "brochure": PDF, "engaged": FIVE, "sign_up": None},
                streams=(WEB, APP))
    assert isinstance(p, MachineryPlan)
    assert actions(p) == [
        ("create", EVENT_CREATE_RULE, "brochure", WEB.name),
        ("create", EVENT_CREATE_RULE, "quote_thank_you", WEB.name),
        ("create", AUDIENCE, "engaged", None),
        ("create", KEY_EVENT, "brochure", None), ("create", KEY_EVENT, "engaged", None),
        ("create", KEY_EVENT, "quote_thank_you", None), ("create", KEY_EVENT, "sign_up", None)]
    rule_change = p.changes[1].to_json()
    assert rule_change == {"action": "create", "event": "quote_thank_you", "before": None,
                           "after": {"from": "page_view", "where": {
                               "page_location": {"contains": "/quote/thank-you"}}},
                           "resource": "event_create_rule", "stream": WEB.name}
    assert p.changes[2].to_json()["after"] == {"session": {"min_page_views": 5}}
    assert p.to_json()["unmanaged_resources"] == []


def test_one_rule_per_web_stream_and_equal_rules_are_kept():
    p = plan_of({"q": THANKS}, keys=[key("q")], streams=(WEB, APP, WEB2),
                rules=[rule("q", THANKS, WEB)])
    assert actions(p) == [("create", EVENT_CREATE_RULE, "q", WEB2.name)]


def test_drifted_rule_is_updated_and_unexpressible_rule_replaced_by_patch():
    old = EventRule("page_view", (Condition("page_location", "contains", "/thanks"),))
    odd = Unexpressible(EVENT_CREATE_RULE, json.dumps({"from": "page_view", "where": {},
                                                       "other": "2 parameter mutations"}))
    p = plan_of({"q": THANKS, "b": PDF}, keys=[key("q"), key("b")], streams=(WEB,),
                rules=[rule("q", old, n=1), rule("b", odd, n=2)])
    assert [(c.action, c.event, c.name) for c in p.changes] == [
        ("update", "b", f"{WEB.name}/eventCreateRules/2"),
        ("update", "q", f"{WEB.name}/eventCreateRules/1")]
    assert p.changes[0].to_json()["before"]["other"] == "2 parameter mutations"
    assert "also: 2 parameter mutations" in plan_text(Plan((p,)))


def test_immutable_audience_change_is_archive_plus_create():
    p = plan_of({"engaged": FIVE}, keys=[key("engaged")],
                audiences=[audience("engaged", SessionRule(min_page_views=3))])
    assert [(c.action, c.resource) for c in p.changes] == [("delete", AUDIENCE),
                                                           ("create", AUDIENCE)]
    assert p.changes[0].before == SessionRule(min_page_views=3)
    text = plan_text(Plan((p,)))
    assert "- engaged  audience (archived: GA never deletes audiences): sessions with at " \
           "least 3 page views" in text
    assert "archived (GA never deletes audiences)" in plan_markdown(Plan((p,)))
    # the equal one is kept when there are several, the others are extras
    p = plan_of({"engaged": FIVE}, keys=[key("engaged")],
                audiences=[audience("engaged", SessionRule(min_page_views=3), n=1),
                           audience("engaged", FIVE, n=2)])
    assert p.changes == () and "counted twice" in p.warnings[0]


def test_extras_are_deleted_only_with_prune():
    machinery = dict(rules=[rule("q", THANKS, n=1), rule("q", PDF, n=2), rule("e", THANKS, n=3)],
                     audiences=[audience("q", FIVE, n=7)])
    p = plan_of({"q": THANKS, "e": FIVE}, keys=[key("q"), key("e")], **machinery)
    assert actions(p) == [("create", AUDIENCE, "e", None)]
    assert len(p.warnings) == 2
    assert "e is also made by 1 other resource (event create rule " \
           f"{WEB.name}/eventCreateRules/3)" in p.warnings[0]
    assert "q is also made by 2 other resources" in p.warnings[1]
    pruned = plan_of({"q": THANKS, "e": FIVE}, keys=[key("q"), key("e")], prune=True,
                     **machinery)
    assert [(c.action, c.resource, c.name) for c in pruned.changes] == [
        ("delete", EVENT_CREATE_RULE, f"{WEB.name}/eventCreateRules/3"),
        ("delete", EVENT_CREATE_RULE, f"{WEB.name}/eventCreateRules/2"),
        ("delete", AUDIENCE, f"{P}/audiences/7"),
        ("create", AUDIENCE, None)]
    assert pruned.warnings == ()


def test_unmanaged_machinery_is_listed_never_touched():
    machinery = dict(streams=(WEB, APP),
                     rules=[rule("other", THANKS, n=1), rule("q", THANKS, APP, n=2),
                            rule("sent", THANKS, n=3)],
                     audiences=[audience("", FIVE, n=1), audience("other_trigger", FIVE, n=2)])
    # `sent` is a goal without origin: its rule is not machinery either
    p = diff(P, "c", {"q": ONCE, "sent": ONCE}, [key("q"), key("sent")],
             origins={"q": THANKS, "sent": None}, prune=True, **machinery)
    assert actions(p) == [("create", EVENT_CREATE_RULE, "q", WEB.name)]
    assert p.to_json()["unmanaged_resources"] == [
        {"resource": "audience", "event": "other_trigger", "name": f"{P}/audiences/2"},
        {"resource": "event_create_rule", "event": "other", "name": f"{WEB.name}/eventCreateRules/1",
         "stream": WEB.name},
        {"resource": "event_create_rule", "event": "q", "name": f"{APP.name}/eventCreateRules/2",
         "stream": APP.name},
        {"resource": "event_create_rule", "event": "sent", "name": f"{WEB.name}/eventCreateRules/3",
         "stream": WEB.name}]
    assert p.unmanaged == ()


def test_old_callers_plan_key_events_only():
    p = diff(P, "c", {"q": ONCE}, [])
    assert not isinstance(p, MachineryPlan) and "unmanaged_resources" not in p.to_json()


def test_no_web_stream_leaves_out_only_the_goals_that_need_one():
    p = diff(P, "c", {"q": ONCE, "b": ONCE, "e": ONCE, "s": ONCE},
             [key("b"), KeyEventState("q", S("once_per_session"), name=f"{P}/keyEvents/1",
                                      deletable=True, custom=True)],
             origins={"q": THANKS, "b": PDF, "e": FIVE, "s": None}, streams=(APP,),
             prune=True)
    # the session goal and the plain event goal are planned; q and b neither created,
    # updated nor pruned (their key events are left as they are)
    assert actions(p) == [("create", AUDIENCE, "e", None), ("create", KEY_EVENT, "e", None),
                          ("create", KEY_EVENT, "s", None)]
    (message,) = p.problems
    assert message.startswith("the goals b, q need an event create rule on a web data stream")
    assert f"{P} (c)" not in message  # the property and client are said once, by whoever shows it
    assert f"{APP.name} (android_app)" in message and "Add a web stream" in message
    assert "left out of the plan" in message
    assert "error: the goals b, q need" in plan_text(Plan((p,)))
    assert plan_of({"e": FIVE}, streams=()).problems == ()  # a session goal needs no stream
    assert "problems" not in p.to_json()  # the plan JSON's `errors` entry says it


def test_order_deletes_key_events_first_creates_them_last():
    p = diff(P, "c", {"new": ONCE}, [key("gone"), key("new2")],
             origins={"new": THANKS}, streams=(WEB,), prune=False,
             rules=[rule("gone", THANKS)], audiences=[])
    assert [(c.action, c.resource, c.event) for c in p.changes] == [
        ("create", EVENT_CREATE_RULE, "new"), ("create", KEY_EVENT, "new")]
    # without --prune, `gone`'s rule is not machinery of a spec goal: unmanaged, left alone
    assert [u.event for u in p.unmanaged_resources] == ["gone"]


def test_prune_deletes_a_removed_goals_rule_and_audience_after_its_key_event():
    p = diff(P, "c", {"new": ONCE}, [key("gone"), key("new2")],
             origins={"new": THANKS}, streams=(WEB, APP), prune=True,
             rules=[rule("gone", THANKS), rule("gone", THANKS, APP, n=3),
                    rule("kept", THANKS, n=4)],
             audiences=[audience("new2", FIVE), audience("other", FIVE, n=6)])
    assert [(c.action, c.resource, c.event) for c in p.changes] == [
        ("delete", KEY_EVENT, "gone"), ("delete", KEY_EVENT, "new2"),
        ("delete", EVENT_CREATE_RULE, "gone"), ("delete", AUDIENCE, "new2"),
        ("create", EVENT_CREATE_RULE, "new"), ("create", KEY_EVENT, "new")]
    # rules on app streams are never ga-sync's; rules and audiences of events whose key event
    # stays are not a removed goal's
    assert sorted(u.event for u in p.unmanaged_resources) == ["gone", "kept", "other"]
    assert p.existing_managed == 2 + 2  # two key events, the rule and audience deleted
    text = plan_text(Plan((p,)))
    assert "  - gone  counting once_per_event, value none, and the event create rule that " \
           "made it\n" in text
    assert "  - new2  counting once_per_event, value none, and the audience that made it\n" \
        in text
    assert "| and the event create rule that made it |" in plan_markdown(Plan((p,)))


def test_a_long_list_of_unmanaged_resources_is_cut_short():
    rules = [rule(f"hand_{i:02d}", THANKS, n=i) for i in range(47)]
    p = plan_of({"q": THANKS}, keys=[key("q")], rules=rules + [rule("q", THANKS, n=99)])
    text = plan_text(Plan((p,)))
    (line,) = [x for x in text.splitlines() if "unmanaged rules" in x]
    assert line.startswith("  unmanaged rules and audiences (not goal machinery, left alone, "
                           "47): event create rule hand_00 (")
    assert "hand_09" in line and "hand_10" not in line
    assert line.endswith("; and 37 more (the JSON format lists them all)")
    assert len(p.to_json()["unmanaged_resources"]) == 47
    assert "and 37 more" in plan_markdown(Plan((p,)))


def test_safety_threshold_counts_every_resource():
    events = [f"e{i}" for i in range(4)]
    origins = {e: THANKS for e in events}
    rules = [rule(e, THANKS, n=i) for i, e in enumerate(events)]
    changed = EventRule("page_view", (Condition("page_location", "contains", "/x"),))
    rules[0] = rule("e0", changed, n=0)
    rules[1] = rule("e1", changed, n=1)
    audiences = [audience(f"a{i}", FIVE, n=i) for i in range(2)]
    origins.update({f"a{i}": SessionRule(min_seconds=60) for i in range(2)})
    p = diff(P, "c", {e: ONCE for e in origins}, [key(e) for e in origins], origins=origins,
             streams=(WEB,), rules=rules, audiences=audiences)
    # 6 key events + 4 rules + 2 audiences = 12 existing; 2 rule updates + 2 audience archives
    assert p.existing_managed == 12
    assert sum(c.action in ("update", "delete") for c in p.changes) == 4
    with pytest.raises(UnsafePlan, match="4 of 12 existing key events, event create rules and "
                                         "audiences"):
        check_safety(Plan((p,)))
    check_safety(Plan((p,)), share=0.34)  # 4 / 12 = 0.333


def test_limits_on_created_events_and_audience_triggers():
    n = garules.CREATED_EVENTS_PER_PROPERTY
    rules = [rule(f"r{i}", THANKS, n=i) for i in range(n)]
    p = plan_of({"q": THANKS, "b": PDF}, keys=[key("q"), key("b")], rules=rules)
    assert len([c for c in p.changes if c.action == "create"]) == 2
    assert f"{n + 2} event create rules after this plan ({n} now, 2 to create, 0 to delete) " \
           f"is over GA's limit of {n}" in p.warnings[0]
    assert plan_of({"q": THANKS}, rules=rules[:n - 1]).warnings == ()  # exactly at the limit
    t = garules.AUDIENCE_TRIGGERS_PER_PROPERTY
    audiences = [audience(f"a{i}", FIVE, n=i) for i in range(t)]
    p = plan_of({"e": FIVE}, keys=[key("e")], audiences=audiences)
    assert f"{t + 1} audiences with an event trigger after this plan ({t} now, 1 to create, " \
           f"0 to archive) is over GA's limit of {t}" in p.warnings[0]
    assert plan_of({"e": FIVE}, audiences=audiences[:t - 1]).warnings == ()


# --------------------------------------------------------------------------- normalization

@pytest.mark.parametrize("form", [THANKS, PDF, EventRule("page_view", (
    Condition("page_location", "regex", r"/(a|b)/done$", True),)), EventRule("sign_up")])
def test_rule_round_trip(form):
    proto = rule_proto("goal_event", form, f"{WEB.name}/eventCreateRules/1")
    assert normalize_rule(proto, WEB.name).form == form  # proto
    assert normalize_rule(rule_json("goal_event", form), WEB.name).form == form  # JSON
    assert normalize_rule(proto, WEB.name).event == "goal_event"


def test_rule_json_is_what_the_design_says():
    assert rule_json("q", THANKS) == {
        "destinationEvent": "q",
        "eventConditions": [
            {"field": "event_name", "comparisonType": "EQUALS", "value": "page_view",
             "negated": False},
            {"field": "page_location", "comparisonType": "CONTAINS",
             "value": "/quote/thank-you", "negated": False}],
        "sourceCopyParameters": True, "parameterMutations": []}
    conditions = rule_json("b", PDF)["eventConditions"]
    assert conditions[2] == {"field": "link_url", "comparisonType": "CONTAINS_CASE_INSENSITIVE",
                             "value": "/brochure", "negated": False}


@pytest.mark.parametrize("change,other", [
    (lambda d: d["eventConditions"][1].update(negated=True), "page_location NOT CONTAINS"),
    (lambda d: d["eventConditions"][1].update(comparisonType="GREATER_THAN"), "GREATER_THAN"),
    (lambda d: d["eventConditions"].pop(0), "no event_name EQUALS condition"),
    (lambda d: d["eventConditions"].append(dict(d["eventConditions"][0], value="x")),
     "2 event_name EQUALS conditions"),
    (lambda d: d.update(sourceCopyParameters=False), "source parameters not copied"),
    (lambda d: d.update(parameterMutations=[{"parameter": "value", "parameterValue": "5"}]),
     "1 parameter mutation (value=5)"),
    (lambda d: d["eventConditions"][1].update(comparisonType=9), "GREATER_THAN"),  # a number
])
def test_rules_no_spec_can_say_never_equal_a_spec_form(change, other):
    data = json.loads(json.dumps(rule_json("q", THANKS)))
    change(data)
    state = normalize_rule(data, WEB.name)
    assert isinstance(state.form, Unexpressible) and state.form != THANKS
    assert other in state.form.to_json()["other"]
    json.dumps(state.form.to_json())  # readable JSON in the plan


@pytest.mark.parametrize("form", [FIVE, SessionRule(min_seconds=180), SessionRule(min_page_views=1)])
def test_audience_round_trip(form):
    proto = audience_proto("engaged", form)
    assert normalize_audience(proto).form == form
    assert normalize_audience(audience_json("engaged", form)).form == form
    data = audience_json("engaged", form)
    assert data["membershipDurationDays"] == MEMBERSHIP_DAYS == 30
    assert data["eventTrigger"] == {"eventName": "engaged",
                                    "logCondition": "AUDIENCE_MEMBERSHIP_RENEWED"}
    assert data["displayName"] == "ga-sync: engaged"


def test_audience_json_counts_page_views_with_an_event_count_filter():
    x = audience_json("e", FIVE)["filterClauses"][0]["simpleFilter"]["filterExpression"]
    inner = x["andGroup"]["filterExpressions"][0]["orGroup"]["filterExpressions"][0]
    count = inner["eventFilter"]["eventParameterFilterExpression"]["andGroup"][
        "filterExpressions"][0]["orGroup"]["filterExpressions"][0]["dimensionOrMetricFilter"]
    assert inner["eventFilter"]["eventName"] == "page_view"
    assert count == {"fieldName": "eventCount", "numericFilter": {
        "operation": "GREATER_THAN", "value": {"int64Value": "4"}}}  # > 4 is at least 5


@pytest.mark.parametrize("change,other", [
    (lambda d: d.update(membershipDurationDays=60), "membership of 60 days"),
    (lambda d: d["eventTrigger"].update(logCondition="AUDIENCE_JOINED"), "AUDIENCE_JOINED"),
    (lambda d: d["filterClauses"].append(d["filterClauses"][0]), "(2 clauses)"),
    (lambda d: d["filterClauses"][0].update(clauseType="EXCLUDE"), "filter clauses"),
    (lambda d: d["filterClauses"][0]["simpleFilter"].update(
        scope="AUDIENCE_FILTER_SCOPE_ACROSS_ALL_SESSIONS"), "filter clauses"),
])
def test_audiences_no_spec_can_say_never_equal_a_spec_form(change, other):
    data = json.loads(json.dumps(audience_json("e", FIVE)))
    change(data)
    state = normalize_audience(data)
    assert isinstance(state.form, Unexpressible) and state.form != FIVE
    assert other in state.form.to_json()["other"]
    # a new name or description alone is not drift
    renamed = dict(audience_json("e", FIVE), displayName="Engaged", description="hand-named")
    assert normalize_audience(renamed).form == FIVE


# --------------------------------------------------------------------------- renderers

def test_renderers_show_resource_kinds_and_last_change():
    p = plan_of({"quote_thank_you": THANKS}, keys=[key("quote_thank_you")],
                rules=[rule("quote_thank_you", PDF)])
    from dataclasses import replace
    last = LastChange("2026-11-20T14:03:00Z", "dana@x", False)
    p = replace(p, changes=tuple(replace(c, last_change=last) for c in p.changes))
    text = plan_text(Plan((p,)))
    assert ("  ~ quote_thank_you  event create rule on stream 2: file_download where "
            "file_extension equals pdf and link_url contains /brochure (ignoring case) -> "
            "page_view where page_location contains /quote/thank-you\n"
            "                     last changed by dana@x on 2026-11-20 14:03 UTC "
            "(not by ga-sync)\n") in text
    md = plan_markdown(Plan((p,)))
    assert "| `~` | update | `quote_thank_you` | event create rule (stream `2`) |" in md
    assert "last changed by dana@x on 2026-11-20 14:03 UTC (not by ga-sync) |" in md
    data = json.loads(plan_json(Plan((p,))))
    assert data["properties"][0]["changes"][0]["last_change"] == {
        "time": "2026-11-20T14:03:00Z", "actor": "dana@x", "by_ga_sync": False}
    p = plan_of({"q": THANKS}, streams=(WEB,))
    assert "+ q  event create rule on stream 2: page_view where page_location contains " \
           "/quote/thank-you" in plan_text(Plan((p,)))


# --------------------------------------------------------------------------- change history

def _history_event(when, actor_type, email, resource, action="UPDATED"):
    return SimpleNamespace(change_time=when, actor_type=SimpleNamespace(name=actor_type),
                           user_actor_email=email,
                           changes=[SimpleNamespace(resource=resource,
                                                    action=SimpleNamespace(name=action),
                                                    resource_before_change=None,
                                                    resource_after_change=None)])


class FakeAlpha:
    """An Admin v1alpha client answering change-history searches from a list, in pages of 2."""

    def __init__(self, events, fail=None):
        self.events, self.fail, self.calls = events, fail, []
        self.lock = threading.Lock()

    def search_change_history_events(self, request, timeout=None):
        with self.lock:
            self.calls.append(dict(request))
        if self.fail:
            raise self.fail
        start = int(request["page_token"] or 0)
        page = self.events[start:start + 2]
        nxt = str(start + 2) if start + 2 < len(self.events) else ""
        return SimpleNamespace(change_history_events=page, next_page_token=nxt)


def _conn(alpha):
    from ga_sync.clients import RetryPolicy
    policy = RetryPolicy()
    policy.pacer = None
    return SimpleNamespace(admin_alpha=lambda: alpha, retry=policy)


T0 = datetime(2026, 11, 20, 14, 3, tzinfo=timezone.utc)


def test_last_change_per_resource_from_one_paged_search_per_account(tmp_path):
    rule_name = f"{WEB.name}/eventCreateRules/9"
    events = [
        _history_event(T0 - timedelta(days=3), "USER", "old@x", f"{P}/conversionEvents/7"),
        _history_event(T0, "USER", "dana@x", f"{P}/keyEvents/7"),
        _history_event(T0 - timedelta(days=1), "SYSTEM", "", rule_name),
        _history_event(T0 - timedelta(hours=1), "SUPPORT", "", f"{P}/audiences/5", "CREATED"),
        _history_event(T0 + timedelta(hours=1), "USER", "ga@x", f"{P}/audiences/6"),
    ]
    journal = tmp_path / "journal.jsonl"
    journal.write_text("\n".join(json.dumps(x) for x in [
        {"time": (T0 - timedelta(hours=1, minutes=-4)).isoformat(), "property": P,
         "event": "e", "outcome": "applied", "resource": "audience", "action": "create"},
        {"time": (T0 + timedelta(hours=1, minutes=10)).isoformat(), "property": P,
         "event": "f", "outcome": "applied", "resource": "audience"},
        "not json"]) + "\n{broken\n")
    alpha = FakeAlpha(events)
    history = ChangeHistory(_conn(alpha), journal)
    found = history.last_changes(P, "accounts/1", [
        (KEY_EVENT, "k", f"{P}/keyEvents/7"), (EVENT_CREATE_RULE, "q", rule_name),
        (AUDIENCE, "e", f"{P}/audiences/5"), (AUDIENCE, "f", f"{P}/audiences/6"),
        (AUDIENCE, "g", f"{P}/audiences/404")])
    assert found == {
        f"{P}/keyEvents/7": LastChange("2026-11-20T14:03:00.000000Z", "dana@x", False),
        rule_name: LastChange("2026-11-19T14:03:00.000000Z", "system", False),
        f"{P}/audiences/5": LastChange("2026-11-20T13:03:00.000000Z", "support", True),  # 4 min
        f"{P}/audiences/6": LastChange("2026-11-20T15:03:00.000000Z", "ga@x", False)}  # 10 min: not
    assert len(alpha.calls) == 3  # 5 events, pages of 2: one paged search
    assert [c["page_token"] for c in alpha.calls] == ["", "2", "4"]
    assert alpha.calls[0]["account"] == "accounts/1"
    assert set(alpha.calls[0]["resource_type"]) == {"CONVERSION_EVENT", "KEY_EVENT",
                                                    "EVENT_CREATE_RULE", "AUDIENCE"}
    history.last_changes(P, "accounts/1", [(KEY_EVENT, "k", f"{P}/keyEvents/7")])
    assert history.searches == 1 and len(alpha.calls) == 3  # cached for the run
    assert describe(found[f"{P}/keyEvents/7"]) == \
        "last changed by dana@x on 2026-11-20 14:03 UTC (not by ga-sync)"


def test_history_is_searched_once_per_account_across_threads():
    alpha = FakeAlpha([_history_event(T0, "USER", "dana@x", f"{P}/keyEvents/7")])
    history = ChangeHistory(_conn(alpha), None)
    out = []

    def ask(account):
        out.append(history.last_changes(P, account, [(KEY_EVENT, "k", f"{P}/keyEvents/7")]))

    threads = [threading.Thread(target=ask, args=(f"accounts/{i % 2}",)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert history.searches == 2 and len(alpha.calls) == 2
    assert all(o[f"{P}/keyEvents/7"].actor == "dana@x" for o in out)


def test_a_failing_history_is_a_warning_never_a_failed_plan():
    alpha = FakeAlpha([], fail=ApiError("permission denied", status=403))
    history = ChangeHistory(_conn(alpha), None)
    ke = key("k")
    p = diff(P, "c", {"k": S("once_per_session")}, [ke])
    attributed = history.attribute(p, "accounts/1")
    assert attributed.changes == p.changes and attributed.changes[0].last_change is None
    assert "could not be read (permission denied)" in attributed.warnings[0]
    history.attribute(p, "accounts/1")
    assert len(alpha.calls) == 1  # the failure is remembered for the run


def test_attribute_fills_updates_and_deletes_only():
    ke = key("k")
    alpha = FakeAlpha([_history_event(T0, "USER", "dana@x", ke.name)])
    p = diff(P, "c", {"k": S("once_per_session"), "new": ONCE}, [ke])
    out = ChangeHistory(_conn(alpha), None).attribute(p, "accounts/1")
    assert [(c.event, c.last_change) for c in out.changes] == [
        ("k", LastChange("2026-11-20T14:03:00.000000Z", "dana@x", False)), ("new", None)]
    assert "last_change" in out.to_json()["changes"][0]
    assert canonical(f"{P}/conversionEvents/3") == f"{P}/keyEvents/3"


def test_read_journal_reads_old_lines_as_key_events(tmp_path):
    path = tmp_path / "j.jsonl"
    path.write_text(json.dumps({"time": T0.isoformat(), "property": P, "event": "a",
                                "outcome": "applied"}) + "\n")
    assert [(a.event, a.resource) for a in read_journal(path)] == [("a", KEY_EVENT)]
    assert read_journal(tmp_path / "missing") == []


def _journal(path, *lines):
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


def test_by_ga_sync_matches_the_journal_by_resource_name(tmp_path):
    """A hand change to another rule of the same goal, a minute after ga-sync's, is not
    ga-sync's: the journal's line names the rule it changed."""
    ours, other = f"{WEB.name}/eventCreateRules/9", f"{WEB2.name}/eventCreateRules/3"
    journal = _journal(tmp_path / "j.jsonl", {
        "time": T0.isoformat(), "property": P, "event": "q", "action": "update",
        "outcome": "applied", "resource": EVENT_CREATE_RULE, "stream": WEB.name, "name": ours})
    alpha = FakeAlpha([_history_event(T0 + timedelta(minutes=1), "USER", "dana@x", other),
                       _history_event(T0 - timedelta(seconds=1), "USER", "ga@x", ours)])
    found = ChangeHistory(_conn(alpha), journal).last_changes(P, "accounts/1", [
        (EVENT_CREATE_RULE, "q", ours), (EVENT_CREATE_RULE, "q", other)])
    assert found[ours].by_ga_sync is True
    assert found[other].by_ga_sync is False  # same goal, kind, action, 1 minute: not ours


def test_by_ga_sync_is_never_another_actors_change_when_ga_syncs_is_known(tmp_path):
    name = f"{P}/keyEvents/7"
    old_line = {"time": T0.isoformat(), "property": P, "event": "k", "outcome": "applied",
                "action": "update"}  # a journal from before names: no "name", no "resource"
    named = dict(old_line, name=name, resource=KEY_EVENT)
    for line, own, actor, ours in [
            (old_line, None, "dana@x", True),  # nothing better known: the old rule
            (old_line, "ga@x", "dana@x", False),  # ga-sync is ga@x: dana's is not ours
            (old_line, "ga@x", "ga@x", True),
            (named, "ga@x", "dana@x", False),
            (named, "ga@x", "ga@x", True),
            (named, None, "dana@x", True)]:
        journal = _journal(tmp_path / "j.jsonl", line)
        alpha = FakeAlpha([_history_event(T0 + timedelta(minutes=2), "USER", actor, name)])
        found = ChangeHistory(_conn(alpha), journal, own=own).last_changes(
            P, "accounts/1", [(KEY_EVENT, "k", name)])
        assert found[name].by_ga_sync is ours, (line, own, actor)


def test_own_actor_from_the_credentials():
    from google.auth.credentials import AnonymousCredentials

    from ga_sync.changelog import own_actor
    assert own_actor(AnonymousCredentials()) == "ga-sync@sandbox.invalid"  # docs/sandbox.md
    sa = SimpleNamespace(service_account_email="sync@proj.iam.gserviceaccount.com",
                         quota_project_id=None)
    assert own_actor(sa) == "sync@proj.iam.gserviceaccount.com"
    user = SimpleNamespace(client_id="123.apps.googleusercontent.com", quota_project_id="p")
    assert own_actor(user) is None and own_actor(None) is None


def test_last_change_time_keeps_microseconds():
    name = f"{P}/keyEvents/7"
    alpha = FakeAlpha([_history_event(T0.replace(microsecond=123456), "USER", "d@x", name)])
    found = ChangeHistory(_conn(alpha), None).last_changes(P, "a/1", [(KEY_EVENT, "k", name)])
    assert found[name].time == "2026-11-20T14:03:00.123456Z"


def _deleted(when, actor, name, event, kind="rule"):
    before = (SimpleNamespace(event_create_rule=SimpleNamespace(destination_event=event),
                              audience=None) if kind == "rule" else
              SimpleNamespace(event_create_rule=None, audience=SimpleNamespace(
                  event_trigger=SimpleNamespace(event_name=event))))
    event_ = _history_event(when, "USER", actor, name, "DELETED")
    event_.changes[0].resource_before_change = before
    return event_


def test_a_create_that_remakes_what_was_deleted_by_hand_says_who_deleted_it(tmp_path):
    alpha = FakeAlpha([
        _deleted(T0, "dana@x", f"{WEB.name}/eventCreateRules/4", "q"),
        _deleted(T0 - timedelta(days=1), "old@x", f"{WEB.name}/eventCreateRules/3", "q"),
        _deleted(T0, "dana@x", f"{WEB2.name}/eventCreateRules/5", "other"),
        _deleted(T0, "dana@x", f"{P}/audiences/8", "e", kind="audience"),
        _deleted(T0, "ga@x", f"{P}/audiences/9", "f", kind="audience")])
    journal = _journal(tmp_path / "j.jsonl", {
        "time": T0.isoformat(), "property": P, "event": "f", "action": "delete",
        "outcome": "applied", "resource": AUDIENCE, "name": f"{P}/audiences/9"})
    p = plan_of({"q": THANKS, "e": FIVE, "f": SessionRule(min_seconds=60)},
                keys=[key("q"), key("e"), key("f")], streams=(WEB, WEB2))
    out = ChangeHistory(_conn(alpha), journal).attribute(p, "accounts/1")
    got = {(c.resource, c.event, c.stream): c.last_change for c in out.changes}
    assert got == {
        (EVENT_CREATE_RULE, "q", WEB.name): LastChange("2026-11-20T14:03:00.000000Z", "dana@x",
                                                       False),
        (EVENT_CREATE_RULE, "q", WEB2.name): None,  # "other"'s rule was deleted there
        (AUDIENCE, "e", None): LastChange("2026-11-20T14:03:00.000000Z", "dana@x", False),
        (AUDIENCE, "f", None): None}  # ga-sync archived it (the journal says so)
    assert out.warnings == ()
    data = out.to_json()["changes"]
    assert [c["event"] for c in data if "last_change" in c] == ["q", "e"]
    # a history that cannot be read costs a plan of creates nothing, not even a warning
    failing = ChangeHistory(_conn(FakeAlpha([], fail=ApiError("no", status=403))), None)
    assert failing.attribute(p, "accounts/1") == p and failing.attribute(p, "a/1").warnings == ()


# --------------------------------------------------------------------------- annotations

def test_annotation_counts_goals_not_resources():
    changes = [Change("create", "q", None, THANKS, resource=EVENT_CREATE_RULE, stream="s1"),
               Change("create", "q", None, THANKS, resource=EVENT_CREATE_RULE, stream="s2"),
               Change("create", "q", None, ONCE),
               Change("create", "b", None, ONCE),
               Change("delete", "e", FIVE, None, resource=AUDIENCE),
               Change("create", "e", None, SessionRule(min_page_views=6), resource=AUDIENCE),
               Change("delete", "old", ONCE, None)]
    assert goal_actions(changes) == {"created": ["b", "q"], "changed": ["e"],
                                     "removed": ["old"]}
    title, description = annotation_text(changes)
    assert title == "ga-sync: 2 goals created, 1 changed, 1 removed"
    assert description.splitlines() == ["created: b, q", "changed: e", "removed: old",
                                        "resources: audience, event create rule, key event"]
    assert annotation_text([Change("update", "x", ONCE, ONCE)])[0] == "ga-sync: 1 goal changed"


def test_a_goal_is_removed_only_when_its_key_event_is():
    pruned_duplicate = [Change("delete", "q", THANKS, None, name="r/2",
                               resource=EVENT_CREATE_RULE, stream="s1")]
    assert goal_actions(pruned_duplicate) == {"created": [], "changed": ["q"], "removed": []}
    assert annotation_text(pruned_duplicate)[0] == "ga-sync: 1 goal changed"
    gone = [Change("delete", "old", ONCE, None),
            Change("delete", "old", THANKS, None, resource=EVENT_CREATE_RULE, stream="s1"),
            Change("create", "q", None, THANKS, resource=EVENT_CREATE_RULE, stream="s2")]
    assert goal_actions(gone) == {"created": [], "changed": ["q"], "removed": ["old"]}


# --------------------------------------------------------------------------- on the sandbox

KINDS_SPEC = """\
client: Kinds Shop
properties: [{pid}]
currency: USD
goals:
  - event: sign_up
    tier: micro
    value: 12.5
  - event: quote_thank_you
    tier: macro
    value: 250
    page: {{contains: /quote/thank-you}}
  - event: brochure_download
    tier: micro
    value: 3
    from: file_download
    where: {{file_extension: pdf, link_url: {{contains: /brochure, ignore_case: true}}}}
  - event: engaged_visit
    tier: micro
    value: 0.4
    session: {{min_page_views: 5}}
"""


@pytest.fixture
def kinds(ga_env, sandbox_state, tmp_path, monkeypatch):
    monkeypatch.setenv("GA_SYNC_JOURNAL", str(tmp_path / "journal.jsonl"))
    record = sandbox_state.add_property(property_id="123456789", display_name="Kinds Shop")
    path = tmp_path / "kinds.yaml"
    path.write_text(KINDS_SPEC.format(pid=123456789))
    return SimpleNamespace(record=record, path=path, journal=tmp_path / "journal.jsonl",
                           url=ga_env.url, state=sandbox_state)


def _cli(*args):
    from typer.testing import CliRunner

    from ga_sync.cli import app
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def test_sandbox_plan_apply_plan_dump_and_apply_twice(kinds, tmp_path):
    import ga_sync
    specs = ga_sync.load_specs(kinds.path)
    conn = ga_sync.connect()
    first = ga_sync.plan(conn, specs)
    assert not first.errors, first.errors
    got = [(c.action, c.resource, c.event) for c in first.properties[0].changes]
    assert got == [
        ("create", EVENT_CREATE_RULE, "brochure_download"),
        ("create", EVENT_CREATE_RULE, "quote_thank_you"),
        ("create", AUDIENCE, "engaged_visit"),
        ("create", KEY_EVENT, "brochure_download"), ("create", KEY_EVENT, "engaged_visit"),
        ("create", KEY_EVENT, "quote_thank_you"), ("create", KEY_EVENT, "sign_up")]
    result = ga_sync.apply(conn, first, annotate=True)
    assert result.ok and result.applied == 7 and result.warnings == []
    lines = [json.loads(x) for x in kinds.journal.read_text().splitlines()]
    assert [(x["resource"], x["event"], x["outcome"]) for x in lines][:2] == [
        (EVENT_CREATE_RULE, "brochure_download", "started"),
        (EVENT_CREATE_RULE, "brochure_download", "applied")]
    assert lines[0]["stream"].startswith("properties/123456789/dataStreams/")
    again = ga_sync.plan(conn, specs)
    assert not again.has_changes and not again.errors
    assert again.properties[0].warnings == ()
    # apply twice writes nothing
    written = len(kinds.journal.read_text().splitlines())
    assert ga_sync.apply(conn, again).applied == 0
    assert len(kinds.journal.read_text().splitlines()) == written
    # the annotation apply added, dated today in the property's time zone
    from ga_sync.admin import read_property
    from ga_sync.changelog import list_annotations
    from ga_sync.periods import today_in
    notes = list_annotations(conn, "properties/123456789")
    assert [(n.title, n.start) for n in notes] == [
        ("ga-sync: 4 goals created",
         today_in(read_property(conn, "properties/123456789").time_zone))]
    assert "created: brochure_download, engaged_visit, quote_thank_you, sign_up" in \
        notes[0].description
    # dump -> plan shows zero changes
    out = tmp_path / "dumped.yaml"
    r = _cli("dump", "123456789", "-o", out)
    assert r.exit_code == 0, r.stderr
    text = out.read_text()
    assert "page:" in text and "session:" in text and "from: file_download" in text
    r = _cli("plan", out, "--detailed-exitcode")
    assert r.exit_code == 0, r.stdout + r.stderr
    assert "No changes." in r.stdout


def test_sandbox_drift_is_attributed_to_its_actor(kinds):
    import ga_sync
    from google.analytics.admin_v1alpha import AnalyticsAdminServiceClient
    from google.auth.credentials import AnonymousCredentials
    from google.protobuf.field_mask_pb2 import FieldMask

    specs = ga_sync.load_specs(kinds.path)
    conn = ga_sync.connect()
    assert ga_sync.apply(conn, ga_sync.plan(conn, specs)).ok
    hand = AnalyticsAdminServiceClient(credentials=AnonymousCredentials(), transport="rest",
                                       client_options={"api_endpoint": kinds.url})
    stream = hand.list_data_streams(parent="properties/123456789").data_streams[0].name
    made = [r for r in hand.list_event_create_rules(parent=stream).event_create_rules
            if r.destination_event == "quote_thank_you"]
    assert len(made) == 1
    drifted = rule_proto("quote_thank_you", EventRule("page_view", (
        Condition("page_location", "contains", "/thanks"),)), made[0].name)
    hand.update_event_create_rule(event_create_rule=drifted,
                                  update_mask=FieldMask(paths=["event_conditions"]),
                                  metadata=[("x-sandbox-actor", "dana@client.example")])
    before = datetime.now(timezone.utc)
    r = _cli("plan", kinds.path, "--format", "json")
    assert r.exit_code == 0, r.stderr
    (change,) = json.loads(r.stdout)["properties"][0]["changes"]
    assert change["action"] == "update" and change["resource"] == EVENT_CREATE_RULE
    assert change["before"]["where"] == {"page_location": {"contains": "/thanks"}}
    last = change["last_change"]
    assert last["actor"] == "dana@client.example" and last["by_ga_sync"] is False
    when = datetime.fromisoformat(last["time"].replace("Z", "+00:00"))
    assert abs((before - when).total_seconds()) < 60
    text = _cli("plan", kinds.path).stdout
    assert f"last changed by dana@client.example on {when:%Y-%m-%d %H:%M} UTC (not by ga-sync)" \
        in text
    # ga-sync's own change is recognized from the journal
    assert _cli("apply", kinds.path, "--yes").exit_code == 0
    hand.update_event_create_rule(event_create_rule=drifted,
                                  update_mask=FieldMask(paths=["event_conditions"]),
                                  metadata=[("x-sandbox-actor", "system")])
    (change,) = json.loads(_cli("plan", kinds.path, "--format", "json").stdout)[
        "properties"][0]["changes"]
    assert change["last_change"]["actor"] == "system"


def test_sandbox_no_web_stream_is_a_property_error_beside_its_plan(kinds):
    import ga_sync
    kinds.record.streams = {}
    p = ga_sync.plan(ga_sync.connect(), ga_sync.load_specs(kinds.path))
    (planned,) = p.properties
    assert [(c.action, c.resource, c.event) for c in planned.changes] == [
        ("create", AUDIENCE, "engaged_visit"), ("create", KEY_EVENT, "engaged_visit"),
        ("create", KEY_EVENT, "sign_up")]
    (error,) = p.errors
    assert error.message.startswith("the goals brochure_download, quote_thank_you need an "
                                    "event create rule on a web data stream")
    r = _cli("plan", kinds.path)
    assert r.exit_code == 1
    assert r.stderr.count("properties/123456789 (Kinds Shop):") == 1
    assert "error: properties/123456789 (Kinds Shop): the goals brochure_download, " \
           "quote_thank_you need" in r.stderr
    assert r.stdout.rstrip().endswith(
        "Plan: 3 to create, 0 to update, 0 to delete. 1 property planned without some goals "
        "(see the error): properties/123456789 (Kinds Shop).")
    r = _cli("plan", kinds.path, "--format", "json")
    data = json.loads(r.stdout)
    assert r.exit_code == 1 and len(data["properties"][0]["changes"]) == 3
    assert data["errors"] == [{"property": "properties/123456789", "client": "Kinds Shop",
                               "message": error.message}]
    # apply makes what it can, and still exits 1
    r = _cli("apply", kinds.path, "--yes")
    assert r.exit_code == 1 and "Applied 3 changes, 0 failed." in r.stdout


def test_an_annotation_refused_for_permission_is_a_warning_in_whole_sentences(monkeypatch):
    from google.api_core import exceptions as gexc

    from ga_sync import admin, changelog
    from ga_sync.admin import ApplyResult
    from ga_sync.clients import RetryPolicy, call

    def refuse(*args, **kwargs):
        call(lambda: (_ for _ in ()).throw(gexc.PermissionDenied(
            "The caller does not have permission")), policy=RetryPolicy(attempts=1),
            property=P, what="create a reporting data annotation", write=True, paced=False)

    monkeypatch.setattr(changelog, "annotate", refuse)
    monkeypatch.setattr(admin, "read_property", lambda conn, p: SimpleNamespace(
        time_zone="Europe/Berlin"))
    done = ApplyResult(P, "Shop", applied=[Change("create", "q", None, ONCE)])
    (warning,) = changelog.annotate_applied(None, [done])
    assert warning == (
        f"{P} (Shop): the changes were applied, but the annotation 'ga-sync: 1 goal created' "
        f"could not be added: no permission to add annotations to {P} (GA said: The caller "
        "does not have permission). Give the account the Editor role on the property (GA4 "
        "Admin → Property access management) to have applies annotated.")
