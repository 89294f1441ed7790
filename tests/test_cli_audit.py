"""CLI tests for audit (formats, --fail-on exit codes, --property) and the sandbox command itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from ga_sync.cli import app
from ga_sync.sandbox.scenarios import scenario_spec_yaml, seed_scenario


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def messy(ga_env, sandbox, sandbox_state, tmp_path, monkeypatch):
    ids = seed_scenario(sandbox_state, "messy")
    spec = tmp_path / "messy.yaml"
    spec.write_text(scenario_spec_yaml("messy", ids))
    return spec, ids


def test_json_contract_and_exit_codes(messy):
    spec, ids = messy
    r = run("audit", spec, "--format", "json")
    assert r.exit_code == 1  # errors present, --fail-on error is the default
    data = json.loads(r.stdout)
    assert data["version"] == 1
    assert set(data["summary"]) == {"properties", "error", "warning", "info"}
    assert data["summary"]["properties"] == 2
    for f in data["findings"]:
        assert set(f) - {"last_change"} == {"property", "client", "check", "severity",
                                             "subject", "message", "fix"}
    assert sum(f["severity"] == "error" for f in data["findings"]) == data["summary"]["error"]
    assert run("audit", spec, "--fail-on", "never").exit_code == 0


def test_fail_on_warning_with_only_warnings(ga_env, sandbox, sandbox_state, tmp_path, monkeypatch):
    ids = seed_scenario(sandbox_state, "clean")
    spec = tmp_path / "clean.yaml"
    spec.write_text(scenario_spec_yaml("clean", ids))
    assert run("apply", spec, "--yes", "--journal", tmp_path / "j.jsonl").exit_code == 0
    r = run("audit", spec)
    assert r.exit_code == 0, r.stdout
    assert "0 errors, 0 warnings, 0 info" in r.stdout
    # a stray key event is a warning (unmanaged) and an error (never fires): --fail-on decides
    from google.analytics.admin_v1beta.types import KeyEvent
    record = sandbox_state.properties[ids[0]]
    record.key_events["60000000000"] = KeyEvent(name=f"properties/{ids[0]}/keyEvents/60000000000",
                                                event_name="old_promo", counting_method=1,
                                                deletable=True, custom=True)
    assert run("audit", spec, "--fail-on", "error").exit_code == 1
    md = run("audit", spec, "--format", "markdown", "--fail-on", "never")
    assert md.exit_code == 0 and "old_promo" in md.stdout and "|" in md.stdout


def test_property_without_spec(messy):
    _, ids = messy
    r = run("audit", "--property", ids[0], "--format", "json", "--fail-on", "never")
    checks = {f["check"] for f in json.loads(r.stdout)["findings"]}
    assert "pageview-like-key-event" in checks and "pii-in-page-path" in checks
    assert not checks & {"missing-key-event", "unmanaged-key-event", "counting-method-mismatch"}


def test_audit_needs_a_target_and_a_real_property_id(messy):
    r = run("audit")
    assert r.exit_code == 1 and "--property" in r.stderr
    r = run("audit", "--property", "G-12AB34CD")
    assert r.exit_code == 1 and "measurement id" in r.stderr


def test_sandbox_command_serves_a_scenario(tmp_path):
    """`ga-sync sandbox --scenario messy` in its own process, then plan against it over HTTP."""
    spec = tmp_path / "messy.yaml"
    proc = subprocess.Popen(
        [sys.executable, "-m", "ga_sync", "sandbox", "--port", "0", "--state",
         str(tmp_path / "state.json"), "--scenario", "messy", "--scenario-spec", str(spec)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = None
        deadline = time.time() + 60
        while time.time() < deadline and url is None:
            line = proc.stdout.readline()
            if "export GA_SYNC_ADMIN_ENDPOINT=" in line:
                url = line.strip().split("=", 1)[1]
        assert url, proc.stderr.read() if proc.poll() is not None else "no URL printed"
        env = {**os.environ, "GA_SYNC_ADMIN_ENDPOINT": url, "GA_SYNC_DATA_ENDPOINT": url,
               "GA_SYNC_CREDENTIALS": "anonymous"}
        r = CliRunner().invoke(app, ["plan", str(spec), "--format", "json"], env=env,
                               catch_exceptions=False)
        data = json.loads(r.stdout)
        assert data["properties"][0]["property"] == "properties/414141414"
        assert r.exit_code == 1  # the second messy property is denied: reported, exit 1
        assert "properties/414141415" in r.stderr
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert (tmp_path / "state.json").exists()


def test_dump_of_a_messy_property_validates_and_plans_no_changes(messy, tmp_path):
    """Onboarding an inherited property: what a spec cannot hold is left out, with a note."""
    _, ids = messy
    out = tmp_path / "dumped.yaml"
    r = run("dump", ids[0], "-o", out)
    assert r.exit_code == 0, r.stderr
    assert "left out:" in r.stderr and "newsletter_signup_confirmation_thank_you_page" in r.stderr
    assert run("validate", out).exit_code == 0
    plan = run("plan", out, "--detailed-exitcode", "--format", "json")
    assert plan.exit_code == 0, plan.stdout
    assert "newsletter_signup_confirmation_thank_you_page" in json.loads(plan.stdout)["properties"][0]["unmanaged"]
