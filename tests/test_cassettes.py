"""Cassette tests: replay recorded Admin API traffic with the network blocked, and pin its HTTP.

By default the cassettes under cassettes/ are replayed (`record_mode="none"`): any request
ga-sync sends that is not in the cassette fails the test. To re-record (see tests/README.md):

    GA_SYNC_RECORD=sandbox pytest tests/test_cassettes.py     # against a fresh local sandbox
    GA_SYNC_RECORD=live GA_SYNC_CREDENTIALS=key.json GA_SYNC_TEST_PROPERTY=123456789 \
        pytest tests/test_cassettes.py                         # against a real property

A live recording creates, changes and deletes only key events named `gasync_test_*`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ga_sync.admin import Journal, apply_plan, read_key_events
from ga_sync.clients import connect
from ga_sync.model import DELETE, Change, PropertyPlan, Spec, Goal
from ga_sync.plan import diff
from recording import (find_leaks, is_token_exchange, make_vcr, normalized_path,
                               unplayed_api_calls)
from ga_sync.sandbox.server import SandboxServer
from ga_sync.sandbox.state import SandboxState

CASSETTES = Path(__file__).resolve().parent.parent / "cassettes"
MODE = os.environ.get("GA_SYNC_RECORD", "")
SANDBOX_PROPERTY = "properties/123456789"


def _spec(property: str, lead_value: float | None) -> Spec:
    return Spec(client="Cassette test", properties=(property,), currency="USD", goals=(
        Goal("gasync_test_signup", "micro", 12.5, "once_per_session"),
        Goal("gasync_test_lead", "macro", lead_value),
    ))


def _where(monkeypatch, with_traffic: bool):
    """Where requests go: a throwaway sandbox when recording against it (with traffic for the
    Data API), GA when live, nowhere on replay. Yields (property, vcr record mode)."""
    if MODE == "live":
        prop = os.environ["GA_SYNC_TEST_PROPERTY"]
        yield (prop if prop.startswith("properties/") else f"properties/{prop}"), "all"
        return
    monkeypatch.setenv("GA_SYNC_CREDENTIALS", "anonymous")
    if MODE == "sandbox":
        from ga_sync.sandbox.traffic import make_traffic
        traffic = (make_traffic([(g.event, g.tier, g.value)
                                 for g in _spec(SANDBOX_PROPERTY, 40.0).goals], seed=5)
                   if with_traffic else None)
        state = SandboxState()
        state.add_property(property_id=SANDBOX_PROPERTY.split("/")[1], display_name="Cassettes",
                           traffic=traffic)
        with SandboxServer(state) as server:
            for var in ("GA_SYNC_ADMIN_ENDPOINT", "GA_SYNC_DATA_ENDPOINT"):
                monkeypatch.setenv(var, server.url)
            yield SANDBOX_PROPERTY, "all"
        return
    # replay: the endpoint is never contacted (vcrpy answers), and the network is blocked anyway
    for var in ("GA_SYNC_ADMIN_ENDPOINT", "GA_SYNC_DATA_ENDPOINT"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    yield SANDBOX_PROPERTY, "none"


@pytest.fixture
def target(monkeypatch):
    yield from _where(monkeypatch, with_traffic=False)


@pytest.fixture
def data_target(monkeypatch):
    yield from _where(monkeypatch, with_traffic=True)


def _bodies(cassette, method, suffix=""):
    return [json.loads(r.body) for r in cassette.requests
            if r.method == method and r.path.endswith(suffix) and r.body]


def test_sync_lifecycle_http(target, tmp_path):
    property, record_mode = target
    if record_mode == "none" and not (CASSETTES / "admin_sync_lifecycle.yaml").exists():
        pytest.fail("cassettes/admin_sync_lifecycle.yaml is missing: record it with "
                    "GA_SYNC_RECORD=sandbox pytest tests/test_cassettes.py")
    if record_mode == "all":  # re-recording replaces the cassette rather than appending to it
        (CASSETTES / "admin_sync_lifecycle.yaml").unlink(missing_ok=True)
    vcr = make_vcr(CASSETTES, record_mode)
    journal = Journal(tmp_path / "journal.jsonl")
    with vcr.use_cassette("admin_sync_lifecycle.yaml") as cassette:
        conn = connect(write=True)
        # 1. create both goals
        spec = _spec(property, None)
        plan = diff(property, spec.client, spec.desired(), read_key_events(conn, property))
        assert [c.action for c in plan.changes if c.event.startswith("gasync_test")] == ["create"] * 2
        assert apply_plan(conn, plan, journal).ok
        # 2. give the lead a value: one update
        spec = _spec(property, 40.0)
        plan = diff(property, spec.client, spec.desired(), read_key_events(conn, property))
        ours = [c for c in plan.changes if c.event.startswith("gasync_test")]
        assert [(c.action, c.event) for c in ours] == [("update", "gasync_test_lead")]
        assert apply_plan(conn, PropertyPlan(property, spec.client, tuple(ours)), journal).ok
        # 3. nothing left to do
        live = read_key_events(conn, property)
        plan = diff(property, spec.client, spec.desired(), live)
        assert plan.changes == ()
        # 4. clean up our own test key events only
        deletes = tuple(Change(DELETE, k.event, k.settings, None, name=k.name)
                        for k in live if k.event.startswith("gasync_test"))
        assert len(deletes) == 2
        assert apply_plan(conn, PropertyPlan(property, spec.client, deletes), journal).ok
        assert not [k for k in read_key_events(conn, property) if k.event.startswith("gasync_test")]
        if record_mode == "none":
            assert unplayed_api_calls(cassette) == []

    # The exact HTTP the tool sends.
    reqs = [r for r in cassette.requests if not is_token_exchange(r)]
    assert all(("$alt", "json;enum-encoding=int") in r.query for r in reqs)
    assert all(r.headers.get("Authorization") in (None, "<scrubbed>") for r in reqs)
    lists = [r for r in reqs if r.method == "GET"]
    assert all(r.query and ("pageSize", "200") in r.query for r in lists)
    assert {normalized_path(r.path) for r in lists} == {"/v1beta/properties/N/keyEvents"}
    creates = sorted(_bodies(cassette, "POST", "/keyEvents"), key=lambda b: b["eventName"])
    assert creates == [
        {"eventName": "gasync_test_lead", "countingMethod": 1},
        {"eventName": "gasync_test_signup", "countingMethod": 2,
         "defaultValue": {"numericValue": 12.5, "currencyCode": "USD"}},
    ]
    patch = [r for r in reqs if r.method == "PATCH"]
    assert len(patch) == 1
    assert ("updateMask", "countingMethod,defaultValue") in patch[0].query
    body = json.loads(patch[0].body)
    assert body["countingMethod"] == 1
    assert body["defaultValue"] == {"numericValue": 40.0, "currencyCode": "USD"}
    assert "eventName" not in body or body["eventName"] == ""
    deletes = [r for r in reqs if r.method == "DELETE"]
    assert len(deletes) == 2 and all(normalized_path(r.path) ==
                                     "/v1beta/properties/N/keyEvents/N" for r in deletes)
    assert all(r.headers.get("x-goog-api-client", "").startswith("ga-sync/") for r in reqs)


def test_no_cassette_holds_a_secret():
    assert CASSETTES.is_dir()
    assert find_leaks(CASSETTES) == []


def test_leak_scanner_finds_what_it_should(tmp_path):
    (tmp_path / "c.yaml").write_text(
        "headers:\n  Authorization: [Bearer ya29.a0AfH6SMBx-secret-token]\n"
        "body: '-----BEGIN PRIVATE KEY-----'\n"
        "x: 'client_secret: GOCSPX-abcdefghijklmnop'\n")
    kinds = {line.rsplit(": ", 1)[1] for line in find_leaks(tmp_path)}
    assert {"bearer token", "OAuth access token", "private key", "client secret"} <= kinds


def test_scrubbing_removes_tokens_before_writing(tmp_path, monkeypatch):
    """Record a fake token exchange and an authorized call; the written cassette holds neither."""
    from recording import scrub_request, scrub_response

    class Req:
        uri = "https://oauth2.googleapis.com/token"
        headers = {"Authorization": "Bearer ya29.secretsecret"}
        body = b"grant_type=urn%3Aietf&assertion=eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJ4In0.sig"

    r = scrub_request(Req())
    assert r.headers["Authorization"] == "<scrubbed>"
    assert b"eyJ" not in r.body and b"assertion=<scrubbed>" in r.body
    resp = {"headers": {"Set-Cookie": ["a=b"]},
            "body": {"string": b'{"access_token": "ya29.abc", "expires_in": 3599}'}}
    out = scrub_response(resp)
    assert json.loads(out["body"]["string"]) == {"access_token": "<scrubbed>", "expires_in": 3599}
    assert out["headers"]["Set-Cookie"] == ["<scrubbed>"]


def test_report_http(data_target):
    """One batchRunReports call with the five requests report.py documents, and nothing else."""
    from datetime import date

    from ga_sync.periods import Period
    from ga_sync.report import report_property

    property, record_mode = data_target
    if record_mode == "none" and not (CASSETTES / "data_report.yaml").exists():
        pytest.fail("cassettes/data_report.yaml is missing: record it with "
                    "GA_SYNC_RECORD=sandbox pytest tests/test_cassettes.py")
    if record_mode == "all":  # re-recording replaces the cassette rather than appending to it
        (CASSETTES / "data_report.yaml").unlink(missing_ok=True)
    spec = _spec(property, 40.0)
    period = Period(date(2026, 11, 9), date(2026, 11, 15))
    with make_vcr(CASSETTES, record_mode).use_cassette("data_report.yaml") as cassette:
        result = report_property(connect(), spec, property, period, compare=True,
                                 today=date(2026, 11, 22))
        if record_mode == "none":
            assert unplayed_api_calls(cassette) == []
    assert result.sessions > 0 and result.previous is not None
    reqs = [r for r in cassette.requests if not is_token_exchange(r)]
    assert [(r.method, normalized_path(r.path)) for r in reqs] == [
        ("POST", "/v1beta/properties/N:batchRunReports")]
    body = json.loads(reqs[0].body)
    names = [[d["name"] for d in q.get("dimensions", [])] for q in body["requests"]]
    assert names == [["date"], ["eventName"], ["date", "eventName"], [], []]
    for q in body["requests"]:
        assert q["dateRanges"] == [{"startDate": "2026-11-09", "endDate": "2026-11-15", "name": "p0"},
                                   {"startDate": "2026-11-02", "endDate": "2026-11-08", "name": "p1"}]
        assert q["returnPropertyQuota"] is True and isinstance(q["limit"], str)
    assert body["requests"][3]["dimensionFilter"]["filter"]["inListFilter"]["values"] == ["gasync_test_lead"]
    assert ("$alt", "json;enum-encoding=int") in reqs[0].query
