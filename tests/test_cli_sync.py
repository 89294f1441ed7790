"""CLI tests for validate, plan, apply, dump and properties: exact output and exit codes, on the sandbox."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from google.analytics.admin_v1beta.types import KeyEvent
from typer.testing import CliRunner

from ga_sync.cli import app
from ga_sync.spec import load_specs

ROOT = Path(__file__).resolve().parent.parent
SPEC = """\
client: Test Shop
properties: [{pid}]
currency: USD
goals:
  - event: purchase
    tier: macro
    value: event
  - event: sign_up
    tier: micro
    value: 12.5
    counting: once_per_session
  - event: generate_lead
    tier: macro
    value: 40
"""


@pytest.fixture
def env(ga_env, sandbox, tmp_path, monkeypatch):
    monkeypatch.setenv("GA_SYNC_JOURNAL", str(tmp_path / "journal.jsonl"))
    return sandbox


@pytest.fixture
def prop(env, sandbox_state):
    """A fresh property with GA's default `purchase`, one hand-made goal set wrong, one stray."""
    record = sandbox_state.add_property(property_id="123456789", display_name="Test Shop")
    for i, (event, counting) in enumerate([("generate_lead", 1), ("test_event_1", 1)]):
        kid = str(20_000_000_000 + i)
        record.key_events[kid] = KeyEvent(name=f"properties/123456789/keyEvents/{kid}",
                                          event_name=event, counting_method=counting,
                                          deletable=True, custom=True)
    return record


@pytest.fixture
def spec_file(tmp_path):
    path = tmp_path / "test-shop.yaml"
    path.write_text(SPEC.format(pid=123456789))
    return path


def run(*args, input=None):
    return CliRunner().invoke(app, [str(a) for a in args], input=input, catch_exceptions=False)


def test_validate_ok_and_bad():
    ok = run("validate", ROOT / "goal_specs")
    assert ok.exit_code == 0
    assert ok.stdout.startswith("ok: 5 specs")
    bad = run("validate", ROOT / "tests/specs/bad-currency.yaml")
    assert bad.exit_code == 1
    assert "bad-currency.yaml:3:11: error: currency `EURO`" in bad.stderr
    assert "nothing was sent to GA" in bad.stderr


def test_plan_text_exact(prop, spec_file):
    r = run("plan", spec_file)
    assert r.exit_code == 0, r.stderr
    assert r.stdout == (
        "properties/123456789 (Test Shop)\n"
        "  ~ generate_lead  value none -> 40 USD\n"
        "  + sign_up        counting once_per_session, value 12.5 USD\n"
        "  unmanaged (not in the spec, left alone): test_event_1\n"
        "\n"
        "Plan: 1 to create, 1 to update, 0 to delete.\n")
    assert run("plan", spec_file, "--detailed-exitcode").exit_code == 2


def test_plan_json_contract(prop, spec_file):
    r = run("plan", spec_file, "--format", "json")
    data = json.loads(r.stdout)
    assert data == {"version": 1, "properties": [{
        "property": "properties/123456789", "client": "Test Shop",
        "changes": [
            {"action": "update", "event": "generate_lead",
             "before": {"counting": "once_per_event", "value": None, "currency": None},
             "after": {"counting": "once_per_event", "value": 40.0, "currency": "USD"},
             "resource": "key_event"},
            {"action": "create", "event": "sign_up", "before": None,
             "after": {"counting": "once_per_session", "value": 12.5, "currency": "USD"},
             "resource": "key_event"}],
        "unmanaged": ["test_event_1"], "protected": [], "warnings": []}],
        "summary": {"create": 1, "update": 1, "delete": 0}}


def test_plan_markdown(prop, spec_file):
    r = run("plan", spec_file, "--format", "markdown", "--prune")
    assert r.exit_code == 0
    assert "| `-` | delete | `test_event_1` |" in r.stdout
    assert "Protected (GA does not allow deleting them): `purchase`" not in r.stdout  # named in spec


def test_plan_apply_plan_converges(prop, spec_file, tmp_path):
    r = run("apply", spec_file, "--yes")
    assert r.exit_code == 0, r.stderr
    assert "Applied 2 changes, 0 failed." in r.stdout
    again = run("plan", spec_file, "--detailed-exitcode")
    assert again.exit_code == 0
    assert "No changes. The properties match their specs." in again.stdout
    # applying twice changes nothing
    assert run("apply", spec_file, "--yes").exit_code == 0
    lines = [json.loads(x) for x in (tmp_path / "journal.jsonl").read_text().splitlines()]
    assert [(x["action"], x["event"], x["outcome"]) for x in lines] == [
        ("update", "generate_lead", "started"), ("update", "generate_lead", "applied"),
        ("create", "sign_up", "started"), ("create", "sign_up", "applied")]
    assert set(lines[0]) == {"time", "property", "action", "event", "before", "after", "outcome",
                             "resource"}


def test_prune_deletes_but_protects_purchase(env, sandbox_state, tmp_path):
    record = sandbox_state.add_property(property_id="555", display_name="Prune")
    record.key_events["30000000000"] = KeyEvent(name="properties/555/keyEvents/30000000000",
                                                event_name="old_goal", counting_method=1,
                                                deletable=True, custom=True)
    spec = tmp_path / "prune.yaml"
    spec.write_text("client: Prune\nproperty: 555\ncurrency: EUR\ngoals:\n"
                    "  - {event: sign_up, tier: micro, value: 2}\n")
    plan = json.loads(run("plan", spec, "--prune", "--format", "json").stdout)
    assert plan["properties"][0]["protected"] == ["purchase"]
    assert [c["action"] for c in plan["properties"][0]["changes"]] == ["delete", "create"]
    assert run("apply", spec, "--prune", "--yes").exit_code == 0
    names = {k.event_name for k in record.key_events.values()}
    assert names == {"purchase", "sign_up"}


def test_apply_without_terminal_or_yes_refuses(prop, spec_file):
    r = run("apply", spec_file)
    assert r.exit_code == 1
    assert "refusing to apply: no terminal" in r.stderr
    assert {k.event_name for k in prop.key_events.values()} == {"purchase", "generate_lead",
                                                                 "test_event_1"}


def test_apply_refuses_large_plan_without_force(env, sandbox_state, tmp_path):
    record = sandbox_state.add_property(property_id="777", display_name="Big",
                                        default_key_events=False)
    goals = []
    for i in range(10):
        kid = str(40_000_000_000 + i)
        record.key_events[kid] = KeyEvent(name=f"properties/777/keyEvents/{kid}",
                                          event_name=f"goal_{i}", counting_method=1,
                                          deletable=True, custom=True)
        goals.append(f"  - {{event: goal_{i}, tier: micro, value: event"
                     + (", counting: once_per_session}" if i < 4 else "}"))
    spec = tmp_path / "big.yaml"
    spec.write_text("client: Big\nproperty: 777\ncurrency: USD\ngoals:\n" + "\n".join(goals) + "\n")
    r = run("apply", spec, "--yes")
    assert r.exit_code == 1
    assert "4 of 10 existing key events" in r.stderr and "--force" in r.stderr
    assert all(k.counting_method == 1 for k in record.key_events.values())
    assert run("apply", spec, "--yes", "--force").exit_code == 0
    assert sum(k.counting_method == 2 for k in record.key_events.values()) == 4


def test_dump_then_plan_shows_no_changes(prop, spec_file, tmp_path):
    run("apply", spec_file, "--yes")
    out = tmp_path / "dumped.yaml"
    r = run("dump", "123456789", "-o", out)
    assert r.exit_code == 0, r.stderr
    assert run("validate", out).exit_code == 0
    specs = load_specs([out])
    assert {g.event for g in specs[0].goals} == {"purchase", "sign_up", "generate_lead",
                                                 "test_event_1"}
    again = run("plan", out, "--detailed-exitcode")
    assert again.exit_code == 0, again.stdout


def test_dump_measurement_id_hint(env):
    r = run("dump", "G-1A2B3C4D")
    assert r.exit_code == 1
    assert "measurement id, not a property id" in r.stderr


def test_properties_lists_all_pages(env, sandbox_state):
    for i in range(205):  # one account per client: more than one page of account summaries
        account = sandbox_state.add_account(f"Agency client {i}")
        sandbox_state.add_property(property_id=str(1000 + i), display_name=f"Client {i}",
                                   account=account)
    sandbox_state.add_property(property_id="999", account=account)
    r = run("properties", "--format", "json")
    data = json.loads(r.stdout)
    assert len(data["properties"]) == 206
    assert len({p["account"] for p in data["properties"]}) == 205
    assert data["properties"][0]["property"].startswith("properties/")


def test_unknown_property_names_it_and_fails(env, spec_file):
    r = run("plan", spec_file)
    assert r.exit_code == 1
    assert "properties/123456789" in r.stderr


def test_denied_property_says_which_role(env, sandbox_state, spec_file):
    sandbox_state.add_property(property_id="123456789", display_name="Test Shop")
    sandbox_state.denied.add("123456789")
    r = run("plan", spec_file)
    assert r.exit_code == 1
    assert "Viewer role" in r.stderr and "properties/123456789" in r.stderr


def test_help_has_examples_for_every_command():
    for name in ("validate", "plan", "apply", "dump", "properties", "sandbox", "demo"):
        r = run(name, "--help")
        assert r.exit_code == 0
        assert "Example" in r.stdout, name


def test_usage_errors_exit_1_never_2():
    """Exit 2 means "changes pending" with --detailed-exitcode: a typo must not look like it."""
    for args in (["plan", "x.yaml", "--concurrency", "0", "--detailed-exitcode"],
                 ["--bogus"], ["nosuch"], ["report", "x.yaml", "--format", "yaml"]):
        r = run(*args)
        assert r.exit_code == 1, args


def test_plan_never_says_no_changes_when_a_property_was_not_read(env, sandbox_state, spec_file):
    sandbox_state.add_property(property_id="123456789", display_name="Test Shop")
    other = spec_file.parent / "gone.yaml"
    other.write_text(SPEC.format(pid=999000111).replace("Test Shop", "Gone Co"))
    r = run("plan", spec_file, other)
    assert r.exit_code == 1
    assert "No changes. The properties match" not in r.stdout
    assert "1 property could not be read: properties/999000111 (Gone Co)." in r.stdout
    md = run("plan", spec_file, other, "--format", "markdown")
    assert "| `properties/999000111` | Gone Co |" in md.stdout


def test_endpoint_must_be_a_url(monkeypatch, spec_file):
    monkeypatch.setenv("GA_SYNC_ADMIN_ENDPOINT", "127.0.0.1:8765")
    r = run("plan", spec_file)
    assert r.exit_code == 1 and "is not a URL" in r.stderr


def test_sandbox_command_reports_bad_state_and_busy_port(tmp_path):
    bad = tmp_path / "state.json"
    bad.write_text("{not json")
    r = run("sandbox", "--state", bad, "--port", "0")
    assert r.exit_code == 1 and "cannot read sandbox state" in r.stderr
    r = run("sandbox", "--state", tmp_path, "--port", "0")
    assert r.exit_code == 1 and "is a directory" in r.stderr
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        r = run("sandbox", "--state", tmp_path / "ok.json", "--port", s.getsockname()[1])
    assert r.exit_code == 1 and "cannot listen on port" in r.stderr


def test_key_events_are_read_across_pages(env, sandbox_state):
    """GA pages key events by at most 200: a property with more is read whole."""
    from ga_sync.admin import read_key_events
    from ga_sync.clients import connect

    record = sandbox_state.add_property(property_id="246246246", default_key_events=False)
    for i in range(230):
        kid = str(30_000_000_000 + i)
        record.key_events[kid] = KeyEvent(name=f"properties/246246246/keyEvents/{kid}",
                                          event_name=f"event_{i:03d}", counting_method=1,
                                          deletable=True, custom=True)
    events = read_key_events(connect(), "properties/246246246")
    assert sorted(k.event for k in events) == [f"event_{i:03d}" for i in range(230)]
