"""Goal machinery under faults, on the sandbox: a create whose answer was lost is never made
twice (GA answers no 409 for rules, audiences and annotations), a key event is not created
when its rule or audience could not be, and whose changes the change history shows."""

from __future__ import annotations

import json
from collections import Counter
from types import SimpleNamespace

import pytest

from ga_sync.sandbox.faults import LOST_RESPONSE, UNAVAILABLE

from test_plan_kinds import KINDS_SPEC as _ONE_CLIENT

#: The four-kind spec of test_plan_kinds, for client number {n}.
KINDS_SPEC = _ONE_CLIENT.replace("client: Kinds Shop", "client: Kinds Shop {n}", 1)


class LoseWrites:
    """Every write (or every write `when` says) is made, then answered 503: a lost response."""

    def __init__(self, when=lambda n: True):
        self.when, self.writes = when, 0

    def decide(self, write: bool) -> str | None:
        if not write:
            return None
        self.writes += 1
        return LOST_RESPONSE if self.when(self.writes) else None


def _connect():
    import ga_sync
    conn = ga_sync.connect()
    conn.retry.sleep = lambda seconds: None  # retries at once
    return conn


@pytest.fixture
def shop(ga_env, sandbox_state, tmp_path, monkeypatch):
    monkeypatch.setenv("GA_SYNC_JOURNAL", str(tmp_path / "journal.jsonl"))
    paths = []
    for n in range(4):
        pid = 123456780 + n
        sandbox_state.add_property(property_id=str(pid), display_name=f"Kinds Shop {n}")
        path = tmp_path / f"kinds{n}.yaml"
        path.write_text(KINDS_SPEC.format(pid=pid, n=n))
        paths.append(path)
    return SimpleNamespace(server=ga_env, state=sandbox_state, paths=paths,
                           journal=tmp_path / "journal.jsonl", url=ga_env.url)


def _machinery_counts(conn, property):
    from ga_sync.changelog import list_annotations
    from ga_sync.machinery import read_machinery
    m = read_machinery(conn, property)
    made = Counter((r.resource, r.event, r.stream) for r in m.rules)
    made.update((a.resource, a.event, None) for a in m.audiences)
    made.update(("annotation", n.title, None) for n in list_annotations(conn, property))
    return made


def test_lost_answers_to_creates_never_make_a_second_rule_audience_or_annotation(shop):
    import ga_sync
    specs = ga_sync.load_specs(shop.paths[0])
    conn = _connect()
    plan = ga_sync.plan(conn, specs)
    shop.server.faults = LoseWrites()  # every write is made, and its answer lost
    result = ga_sync.apply(conn, plan, annotate=True)
    assert result.ok and result.warnings == [], (result.to_json(), result.warnings)
    # all 7 changes were made by the first attempt, and found there after its lost answer
    assert (result.applied, result.reconciled) == (0, 7)
    shop.server.faults = LoseWrites(lambda n: False)
    made = _machinery_counts(conn, "properties/123456780")
    assert made == Counter({("event_create_rule", "brochure_download", made_stream(made)): 1,
                            ("event_create_rule", "quote_thank_you", made_stream(made)): 1,
                            ("audience", "engaged_visit", None): 1,
                            ("annotation", "ga-sync: 4 goals created", None): 1})
    # the reconciled lines name the resource found, for the change history to match
    lines = [json.loads(x) for x in shop.journal.read_text().splitlines()]
    done = [x for x in lines if x["outcome"] == "reconciled"]
    assert len(done) == 7 and all(x["name"].startswith("properties/123456780/") for x in done)
    assert ga_sync.plan(conn, specs).has_changes is False


def made_stream(made):
    return next(s for (kind, _, s) in made if kind == "event_create_rule")


def test_random_faults_on_four_properties_leave_one_of_each(shop):
    """The review's reproduction: 30% of requests fail, half of the failed writes after being
    made; however the retries go, no property ends up with two of anything."""
    import ga_sync
    from ga_sync.sandbox.faults import FaultInjector
    specs = ga_sync.load_specs(shop.paths)
    conn = _connect()
    plan = ga_sync.plan(conn, specs)
    assert not plan.errors
    shop.server.faults = FaultInjector(0.3, 3)
    ga_sync.apply(conn, plan, annotate=True)
    shop.server.faults = FaultInjector(0.0)
    for n in range(4):
        made = _machinery_counts(conn, f"properties/{123456780 + n}")
        assert max(made.values()) == 1, made


def test_a_create_that_failed_without_being_made_is_retried(shop):
    """A 503 before anything was made: the list finds nothing, the create is sent again."""
    import ga_sync

    class FailFirstWrite:
        writes = 0

        def decide(self, write):
            if write:
                self.writes += 1
                return UNAVAILABLE if self.writes == 1 else None
            return None

    specs = ga_sync.load_specs(shop.paths[0])
    conn = _connect()
    plan = ga_sync.plan(conn, specs)
    shop.server.faults = FailFirstWrite()
    result = ga_sync.apply(conn, plan)
    assert result.ok and (result.applied, result.reconciled) == (7, 0)
    shop.server.faults = FailFirstWrite()
    shop.server.faults.writes = 1
    made = _machinery_counts(conn, "properties/123456780")
    assert max(made.values()) == 1 and len(made) == 3


# --------------------------------------------------------------------------- who changed it


def _hand(url):
    from google.analytics.admin_v1alpha import AnalyticsAdminServiceClient
    from google.auth.credentials import AnonymousCredentials
    return AnalyticsAdminServiceClient(credentials=AnonymousCredentials(), transport="rest",
                                       client_options={"api_endpoint": url})


def _drift_rule(hand, actor):
    from google.protobuf.field_mask_pb2 import FieldMask

    from ga_sync.machinery import rule_proto
    from ga_sync.model import Condition, EventRule
    stream = hand.list_data_streams(parent="properties/123456780").data_streams[0].name
    (made,) = [r for r in hand.list_event_create_rules(parent=stream).event_create_rules
               if r.destination_event == "quote_thank_you"]
    drifted = rule_proto("quote_thank_you", EventRule("page_view", (
        Condition("page_location", "contains", f"/thanks-{actor}"),)), made.name)
    hand.update_event_create_rule(event_create_rule=drifted,
                                  update_mask=FieldMask(paths=["event_conditions"]),
                                  metadata=[("x-sandbox-actor", actor)])


def _plan_json(path):
    from typer.testing import CliRunner

    from ga_sync.cli import app
    r = CliRunner().invoke(app, ["plan", str(path), "--format", "json"], catch_exceptions=False)
    return r, json.loads(r.stdout)


def test_a_hand_change_right_after_ga_syncs_own_is_not_by_ga_sync(shop):
    """ga-sync updates the rule, and a minute later Dana changes it again by hand: the same
    property, event, kind and action within 5 minutes, but Dana's, not ga-sync's."""
    import ga_sync
    specs = ga_sync.load_specs(shop.paths[0])
    conn = _connect()
    assert ga_sync.apply(conn, ga_sync.plan(conn, specs)).ok
    hand = _hand(shop.url)
    _drift_rule(hand, "system")
    fixed = ga_sync.apply(conn, ga_sync.plan(conn, specs))
    assert fixed.ok and fixed.applied == 1
    _drift_rule(hand, "dana@client.example")
    r, data = _plan_json(shop.paths[0])
    (change,) = data["properties"][0]["changes"]
    assert change["last_change"]["actor"] == "dana@client.example"
    assert change["last_change"]["by_ga_sync"] is False
    assert change["last_change"]["time"].endswith("Z") and \
        len(change["last_change"]["time"]) == len("2026-11-20T14:03:11.000000Z")
    # ga-sync's own update, named in the journal, is recognized as its own
    lines = [json.loads(x) for x in shop.journal.read_text().splitlines()]
    (update,) = [x for x in lines if x["action"] == "update" and x["outcome"] == "applied"]
    assert update["name"].startswith("properties/123456780/dataStreams/")
    from ga_sync.admin import read_property
    from ga_sync.changelog import ChangeHistory
    history = ChangeHistory(conn, shop.journal)
    assert history.own == "ga-sync@sandbox.invalid"
    account = read_property(conn, "properties/123456780").account
    found = history.last_changes("properties/123456780", account,
                                 [("event_create_rule", "quote_thank_you", update["name"])])
    assert found[update["name"]].actor == "dana@client.example"
    history = ChangeHistory(conn, shop.journal)
    history._found[account] = [e for e in history.entries(account)  # before Dana's change
                               if e.actor != "dana@client.example"]
    found = history.last_changes("properties/123456780", account,
                                 [("event_create_rule", "quote_thank_you", update["name"])])
    assert found[update["name"]].by_ga_sync is True
    assert found[update["name"]].actor == "ga-sync@sandbox.invalid"


def test_a_goal_resource_deleted_by_hand_is_recreated_with_who_deleted_it(shop):
    import ga_sync
    specs = ga_sync.load_specs(shop.paths[0])
    conn = _connect()
    assert ga_sync.apply(conn, ga_sync.plan(conn, specs)).ok
    hand = _hand(shop.url)
    (audience,) = hand.list_audiences(parent="properties/123456780").audiences
    hand.archive_audience(request={"name": audience.name},
                          metadata=[("x-sandbox-actor", "dana@client.example")])
    r, data = _plan_json(shop.paths[0])
    assert r.exit_code == 0, r.stderr
    (change,) = data["properties"][0]["changes"]
    assert (change["action"], change["resource"]) == ("create", "audience")
    assert change["last_change"]["actor"] == "dana@client.example"
    assert change["last_change"]["by_ga_sync"] is False
    from typer.testing import CliRunner

    from ga_sync.cli import app
    text = CliRunner().invoke(app, ["plan", str(shop.paths[0])]).stdout
    assert "+ engaged_visit  audience: sessions with at least 5 page views\n" in text
    assert "last changed by dana@client.example on " in text


# --------------------------------------------------------------------------- what goes with what


def test_a_key_event_whose_rule_could_not_be_made_is_not_created(shop):
    """The property is one rule short of GA's limit of created events: brochure_download's
    rule is made, quote_thank_you's refused, and quote_thank_you's key event (nothing would
    make the event) is not created either, saying why, in the result and the journal."""
    import ga_sync
    from ga_sync import garules
    from ga_sync.machinery import rule_json
    from ga_sync.model import Condition, EventRule
    from ga_sync.sandbox import machinery as sm
    record = shop.state.properties["123456780"]
    (sid,) = sm.set_streams(shop.state, "123456780", web=1)
    for i in range(garules.CREATED_EVENTS_PER_PROPERTY - 1):
        sm.create_rule(shop.state, "123456780", sid, rule_json(f"hand_{i}", EventRule(
            "page_view", (Condition("page_location", "contains", f"/x{i}"),))))
    specs = ga_sync.load_specs(shop.paths[0])
    conn = _connect()
    result = ga_sync.apply(conn, ga_sync.plan(conn, specs))
    (r,) = result.properties
    failed = {(c.resource, c.event): m for c, m in r.failed}
    assert set(failed) == {("event_create_rule", "quote_thank_you"),
                           ("key_event", "quote_thank_you")}
    message = failed[("key_event", "quote_thank_you")]
    assert message.startswith(f"not created: its event create rule on properties/123456780/"
                              f"dataStreams/{sid} could not be created (")
    assert "the limit is 50" in message and "nothing would make the event" in message
    assert sorted(c.event for c in r.applied if c.resource == "key_event") == [
        "brochure_download", "engaged_visit", "sign_up"]
    events = {k.event_name for k in record.key_events.values()}
    assert "quote_thank_you" not in events and "brochure_download" in events
    lines = [json.loads(x) for x in shop.journal.read_text().splitlines()]
    (line,) = [x for x in lines if x["resource"] == "key_event"
               and x["event"] == "quote_thank_you"]  # no "started": nothing was sent
    assert line["outcome"] == "failed" and line["detail"] == message


def test_prune_removes_a_goal_with_its_audience_and_rule(shop, tmp_path):
    """A goal taken out of the spec: --prune deletes its key event, then its rule and
    archives its audience (before, the audience kept logging an event nothing counted)."""
    import ga_sync
    conn = _connect()
    assert ga_sync.apply(conn, ga_sync.plan(conn, ga_sync.load_specs(shop.paths[0]))).ok
    fewer = tmp_path / "fewer.yaml"
    text = shop.paths[0].read_text()
    fewer.write_text(text[:text.index("  - event: quote_thank_you")])  # sign_up only
    plan = ga_sync.plan(conn, ga_sync.load_specs(fewer), prune=True)
    got = [(c.action, c.resource, c.event) for c in plan.properties[0].changes]
    assert got == [("delete", "key_event", "brochure_download"),
                   ("delete", "key_event", "engaged_visit"),
                   ("delete", "key_event", "quote_thank_you"),
                   ("delete", "event_create_rule", "brochure_download"),
                   ("delete", "event_create_rule", "quote_thank_you"),
                   ("delete", "audience", "engaged_visit")]
    result = ga_sync.apply(conn, plan, annotate=True, force=True)
    assert result.ok and result.applied == 6
    assert _machinery_counts(conn, "properties/123456780") == Counter(
        {("annotation", "ga-sync: 3 goals removed", None): 1})
    assert not ga_sync.plan(conn, ga_sync.load_specs(fewer), prune=True).has_changes
