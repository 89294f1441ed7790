"""Bad answers and apply safety: what ga-sync does when an answer is not a valid answer, when a
write is answered with nothing, when GA's key-event limit is reached, and when the journal
cannot be written.

Everything runs through the real code paths: ga-sync's connection points at `FakeGA`, a tiny
HTTP server on 127.0.0.1 that answers chosen paths with mangled bodies and forwards every other
request to the sandbox, so the good properties (and the good parts of a bad one) are served by
the sandbox as usual.
"""

from __future__ import annotations

import errno
import http.client
import json
import os
import re
import threading
import warnings
from collections.abc import Callable, Iterator
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

import ga_sync.admin as admin_mod
import importlib

from ga_sync import data as data_mod
from ga_sync.admin import Journal, apply_plan, read_key_events, read_property
from ga_sync.audit import audit_all
from ga_sync.clients import RetryPolicy, connect
from ga_sync.errors import Cancelled, JournalError, MalformedAnswer
from ga_sync.model import (CREATE, UPDATE, Change, Goal, KeyEventSettings, KeyEventState, Plan,
                           PropertyPlan, Spec)
from ga_sync.plan import diff
from ga_sync.render.plan import plan_json, plan_markdown, plan_text
from ga_sync.periods import Period, today_in
from ga_sync.report import report_property
from ga_sync.sandbox.traffic import make_traffic
from ga_sync.sync import plan_all

GOOD, BAD = "111000111", "222000222"
GOOD_P, BAD_P = f"properties/{GOOD}", f"properties/{BAD}"
GOALS = (Goal("purchase", "macro", None), Goal("sign_up", "micro", 5.0),
         Goal("generate_lead", "macro", 50.0, "once_per_session"))
PERIOD = Period(date(2026, 10, 5), date(2026, 10, 11))
TODAY = date(2026, 11, 22)

Responder = Callable[["FakeGA", str, str, bytes], tuple[int, str, bytes]]


class FakeGA:
    """Answers (method, path regex) routes itself; forwards everything else to `upstream`."""

    def __init__(self, upstream: str) -> None:
        self.upstream = urlsplit(upstream)
        self.routes: list[tuple[str, re.Pattern[str], Responder]] = []
        self.hits: list[str] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                status, kind, out = fake.handle(self.command, self.path, body)
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            do_GET = do_POST = do_PATCH = do_DELETE = _any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def on(self, method: str, pattern: str, responder: Responder | str | bytes | dict,
           status: int = 200, kind: str = "application/json") -> None:
        """Answer requests whose path (without the query) matches `pattern`."""
        if not callable(responder):
            body = (json.dumps(responder).encode() if isinstance(responder, (dict, list))
                    else responder.encode() if isinstance(responder, str) else responder)
            responder = lambda *_: (status, kind, body)  # noqa: E731
        self.routes.insert(0, (method, re.compile(pattern), responder))

    def handle(self, method: str, path: str, body: bytes) -> tuple[int, str, bytes]:
        bare = path.split("?", 1)[0]
        for m, pattern, responder in self.routes:
            if m == method and pattern.search(bare):
                self.hits.append(f"{method} {bare}")
                return responder(self, path, method, body)
        return self.forward(method, path, body)

    def forward(self, method: str, path: str, body: bytes) -> tuple[int, str, bytes]:
        conn = http.client.HTTPConnection(self.upstream.hostname, self.upstream.port, timeout=30)
        try:
            conn.request(method, path, body=body or None,
                         headers={"Content-Type": "application/json"})
            r = conn.getresponse()
            return r.status, r.getheader("Content-Type") or "application/json", r.read()
        finally:
            conn.close()

    def forward_json(self, method: str, path: str, body: bytes) -> Any:
        status, _, out = self.forward(method, path, body)
        assert status == 200, out
        return json.loads(out)

    def start(self) -> "FakeGA":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def ga(sandbox, sandbox_state) -> Iterator[FakeGA]:
    for pid, name in ((GOOD, "Good Co"), (BAD, "Bad Co")):
        sandbox_state.add_property(
            property_id=pid, display_name=name, time_zone="Europe/Berlin",
            traffic=make_traffic([(g.event, g.tier, g.value) for g in GOALS], seed=7,
                                 daily_sessions=300, property_id=pid))
    fake = FakeGA(sandbox.url).start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def conn(ga: FakeGA):
    c = connect(write=True, env={"GA_SYNC_ADMIN_ENDPOINT": ga.url,
                                 "GA_SYNC_DATA_ENDPOINT": ga.url,
                                 "GA_SYNC_CREDENTIALS": "anonymous"})
    c.retry = RetryPolicy(attempts=1, pacer=None)
    return c


def spec(*props: str) -> Spec:
    return Spec(client="Bad Answers", properties=props or (BAD_P,), currency="USD", goals=GOALS)


def report(conn: Any, prop: str = BAD_P) -> Any:
    return report_property(conn, spec(prop), prop, PERIOD, today=TODAY)


BATCH = rf"/v1beta/properties/{BAD}:batchRunReports$"
RUN = rf"/v1beta/properties/{BAD}:runReport$"


def _mangled(change: Callable[[dict], Any]) -> Responder:
    """The sandbox's real answer, changed in place by `change` (its return value is ignored)."""
    def respond(fake: FakeGA, path: str, method: str, body: bytes) -> tuple[int, str, bytes]:
        answer = fake.forward_json(method, path, body)
        change(answer)
        return 200, "application/json", json.dumps(answer).encode()
    return respond


def _first_rows(answer: dict) -> dict:
    return next(r for r in answer["reports"] if r.get("rows"))


# --------------------------------------------------------------------------- Data API answers


@pytest.mark.parametrize("body,kind,words", [
    ("<html><body><h1>502 Bad Gateway</h1></body></html>", "text/html", "<html><body><h1>502"),
    ('{"reports": [{"dimensionHeaders": [{"na', "application/json", "not a JSON object"),
    ("OK", "text/plain", "'OK'"),
    ("", "application/json", "an empty body"),
    ('["reports"]', "application/json", "not a JSON object"),
    ("{}", "application/json", "no reports for 5 requests"),
    ('{"reports": []}', "application/json", "0 reports for 5 requests"),
    ('{"reports": [{}, {}]}', "application/json", "2 reports for 5 requests"),
])
def test_data_api_answer_that_is_not_a_report(ga, conn, body, kind, words):
    ga.on("POST", BATCH, body, kind=kind)
    with pytest.raises(MalformedAnswer) as e:
        report(conn)
    assert e.value.property == BAD_P
    message = str(e.value)
    assert BAD_P in message and words in message
    assert "try again later" in message and "GA_SYNC_DATA_ENDPOINT" in message
    assert report(conn, GOOD_P).sessions > 0  # the other property is unaffected


@pytest.mark.parametrize("change,words", [
    (lambda a: _first_rows(a).update(rows={"r": 1}), "`rows` is not a list"),
    (lambda a: _first_rows(a).update(rows=[["a", "1"]]), "a row is list, not an object"),
    (lambda a: _first_rows(a)["rows"][0].update(dimensionValues=[]),
     "a row has 0 `dimensionValues` for"),
    (lambda a: _first_rows(a)["rows"][-1].pop("metricValues"), "a row has no `metricValues` list"),
    (lambda a: _first_rows(a)["rows"][0]["metricValues"][0].update(value="12abc"),
     "has the value '12abc', not a number"),
    (lambda a: _first_rows(a)["rows"][0]["metricValues"][0].update(value="NaN"),
     "has the value 'NaN', not a number"),
    (lambda a: a["reports"][0].update(totals=[{"metricValues": [{"value": "x"}, {"value": "1"}]}]),
     "has the value 'x', not a number"),
    (lambda a: a["reports"][0].update(totals=[{"dimensionValues": "?"}]),
     "a totals row has no `dimensionValues` list"),
    (lambda a: a["reports"][1].update(metricHeaders=[{"name": "eventCount"}]),
     "the metrics sessions, eventValue, keyEvents asked for are missing"),
    (lambda a: a["reports"][1].update(metricHeaders="eventCount"),
     "`metricHeaders` is not a list of named headers"),
    (lambda a: _first_rows(a).update(rowCount="lots"), "`rowCount` is 'lots', not a count"),
    (lambda a: _first_rows(a).update(rowCount=-3), "`rowCount` is -3, not a count"),
    (lambda a: _first_rows(a).update(metadata=["x"]), "`metadata` or `propertyQuota`"),
])
def test_data_api_report_with_the_wrong_shape(ga, conn, change, words):
    ga.on("POST", BATCH, _mangled(change))
    with pytest.raises(MalformedAnswer) as e:
        report(conn)
    assert e.value.property == BAD_P
    assert BAD_P in str(e.value) and words in str(e.value), str(e.value)


def test_omitted_values_read_as_proto3_defaults(ga, conn):
    """proto3 JSON omits empty strings: `{}` as a value is "" (dimension) or 0 (metric)."""
    def blank(a: dict) -> None:
        for r in _first_rows(a)["rows"]:
            r["metricValues"] = [{} for _ in r["metricValues"]]
    ga.on("POST", BATCH, _mangled(blank))
    report(conn)  # no error


def test_row_count_that_lies_does_not_page_forever(ga, conn):
    """rowCount says more rows than there are, and the server ignores the offset: the same
    rows come back, so the pull stops with MalformedAnswer instead of looping."""
    def lie(a: dict) -> None:
        for r in a["reports"]:
            if r.get("rows"):
                r["rowCount"] = 10 ** 9
    ga.on("POST", BATCH, _mangled(lie))
    first: dict[str, Any] = {}

    def same_page(fake: FakeGA, path: str, method: str, body: bytes) -> tuple[int, str, bytes]:
        request = json.loads(body)
        request.pop("offset", None)
        answer = fake.forward_json("POST", path, json.dumps(request).encode())
        answer["rowCount"] = 10 ** 9
        first.setdefault("n", 0)
        first["n"] += 1
        return 200, "application/json", json.dumps(answer).encode()

    ga.on("POST", RUN, same_page)
    with pytest.raises(MalformedAnswer, match="repeats rows already received") as e:
        report(conn)
    assert e.value.property == BAD_P and first["n"] == 1


def test_row_count_that_lies_with_new_rows_stops_at_the_page_cap(ga, conn, monkeypatch):
    monkeypatch.setattr(data_mod, "MAX_PAGES", 3)

    def lie(a: dict) -> None:
        for r in a["reports"]:
            if r.get("rows"):
                r["rowCount"] = 10 ** 9
    ga.on("POST", BATCH, _mangled(lie))
    calls = []

    def endless(fake: FakeGA, path: str, method: str, body: bytes) -> tuple[int, str, bytes]:
        request = json.loads(body)
        calls.append(request["offset"])
        dims = [{"value": f"x{request['offset']}-{i}"} for i, _ in enumerate(request.get("dimensions", []))]
        mets = [{"value": "1"} for _ in request["metrics"]]
        return 200, "application/json", json.dumps({
            "dimensionHeaders": [{"name": d["name"]} for d in request.get("dimensions", [])],
            "metricHeaders": [{"name": m["name"], "type": "TYPE_INTEGER"} for m in request["metrics"]],
            "rows": [{"dimensionValues": dims, "metricValues": mets}],
            "rowCount": str(10 ** 9)}).encode()

    ga.on("POST", RUN, endless)
    with pytest.raises(MalformedAnswer, match="3 pages brought only"):
        report(conn)
    assert len(calls) == 3


def test_fetch_calls_the_api_through_clients_call(ga, conn):
    """A 503 on the batch is retried by clients.call: fetch goes through it."""
    conn.retry = RetryPolicy(attempts=3, initial=0.01, sleep=lambda s: None)
    answered = []

    def once_down(fake: FakeGA, path: str, method: str, body: bytes) -> tuple[int, str, bytes]:
        answered.append(1)
        if len(answered) == 1:
            return 503, "application/json", json.dumps(
                {"error": {"code": 503, "message": "down", "status": "UNAVAILABLE"}}).encode()
        return fake.forward(method, path, body)

    ga.on("POST", BATCH, once_down)
    assert report(conn).sessions > 0 and len(answered) == 2


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "", "../../etc/passwd"])
def test_today_in_an_unknown_zone(zone):
    with pytest.raises(MalformedAnswer, match="is not a time zone this machine knows") as e:
        today_in(zone, property=BAD_P)
    assert e.value.property == BAD_P and BAD_P in str(e.value)


def test_report_time_zone_from_the_answer_unknown(ga, conn):
    ga.on("POST", BATCH, _mangled(lambda a: a["reports"][0]["metadata"].update(
        timeZone="Atlantis/Capital")))
    with pytest.raises(MalformedAnswer, match="Atlantis/Capital"):
        report_property(conn, spec(), BAD_P, PERIOD)  # today from the answer's time zone


# --------------------------------------------------------------------------- Admin API answers


def test_repeated_page_token_stops(ga, conn):
    def loop(fake: FakeGA, path: str, method: str, body: bytes) -> tuple[int, str, bytes]:
        answer = fake.forward_json(method, path.split("?")[0], b"")
        answer["nextPageToken"] = "again"
        return 200, "application/json", json.dumps(answer).encode()

    ga.on("GET", rf"/v1beta/properties/{BAD}/keyEvents$", loop)
    with pytest.raises(MalformedAnswer, match="'again' came back a second time") as e:
        read_key_events(conn, BAD_P)
    assert e.value.property == BAD_P and len(ga.hits) == 2
    assert [k.event for k in read_key_events(conn, GOOD_P)] == ["purchase"]


def test_new_page_tokens_forever_stop_at_the_cap(ga, conn, monkeypatch):
    monkeypatch.setattr(admin_mod, "MAX_PAGES", 4)
    n = iter(range(1000))

    def endless(fake: FakeGA, path: str, method: str, body: bytes) -> tuple[int, str, bytes]:
        return 200, "application/json", json.dumps({"nextPageToken": f"t{next(n)}"}).encode()

    ga.on("GET", rf"/v1beta/properties/{BAD}/keyEvents$", endless)
    with pytest.raises(MalformedAnswer, match="more than 4 pages"):
        read_key_events(conn, BAD_P)
    assert len(ga.hits) == 4


def _property_with(**fields: Any) -> Responder:
    return _mangled(lambda a: a.update(fields))


@pytest.mark.parametrize("fields,words", [
    ({"timeZone": "Mars/Olympus_Mons"}, "'Mars/Olympus_Mons', is not a time zone"),
    ({"timeZone": ""}, "'(empty)', is not a time zone"),
    ({"serviceLevel": 9}, "service level 9, which ga-sync does not know"),
])
def test_property_that_cannot_be_read_safely(ga, conn, fields, words):
    ga.on("GET", rf"/v1beta/properties/{BAD}$", _property_with(**fields))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # proto-plus: "Unrecognized ... enum value"
        with pytest.raises(MalformedAnswer) as e:
            read_property(conn, BAD_P)
    assert e.value.property == BAD_P and words in str(e.value) and BAD_P in str(e.value)


def test_unspecified_service_level_reads_as_standard(ga, conn):
    ga.on("GET", rf"/v1beta/properties/{BAD}$", _property_with(serviceLevel=0))
    info = read_property(conn, BAD_P)
    assert info.service_level == "GOOGLE_ANALYTICS_STANDARD" and info.key_event_limit == 30


def test_counting_method_unknown_or_unspecified(ga, conn):
    def counting(value: Any) -> Responder:
        def change(a: dict) -> None:
            for ke in a.get("keyEvents", []):
                if value is None:
                    ke.pop("countingMethod", None)
                else:
                    ke["countingMethod"] = value
        return _mangled(change)

    ga.on("GET", rf"/v1beta/properties/{BAD}/keyEvents$", counting(None))
    assert [k.settings.counting for k in read_key_events(conn, BAD_P)] == ["once_per_event"]
    ga.on("GET", rf"/v1beta/properties/{BAD}/keyEvents$", counting(0))
    assert [k.settings.counting for k in read_key_events(conn, BAD_P)] == ["once_per_event"]
    ga.on("GET", rf"/v1beta/properties/{BAD}/keyEvents$", counting(7))
    with pytest.warns(UserWarning), pytest.raises(MalformedAnswer, match="counting method 7") as e:
        read_key_events(conn, BAD_P)
    assert "purchase" in str(e.value) and e.value.property == BAD_P


# --------------------------------------------------------------------------- audit


def test_audit_malformed_answer_is_that_propertys_finding(ga, conn):
    ga.on("POST", BATCH, "<html>maintenance</html>", kind="text/html")
    ga.on("GET", rf"/v1beta/properties/{GOOD}$", _property_with(timeZone="Nowhere/Land"))
    s = Spec(client="Bad Answers", properties=(BAD_P, GOOD_P), currency="USD", goals=GOALS)
    result = audit_all(conn, [s], properties=["333000333"], today=TODAY)
    by = {a.property: a.findings for a in result.audited}
    for prop, words in ((BAD_P, "<html>maintenance</html>"), (GOOD_P, "'Nowhere/Land'")):
        (finding,) = by[prop]
        assert finding.check == "audit-failed" and words in finding.message
        assert "proxy" in finding.fix
    (missing,) = by["properties/333000333"]
    assert missing.check == "no-access"


def test_audit_reports_checked_against_the_requests(ga, conn):
    ga.on("POST", BATCH, _mangled(lambda a: a["reports"].pop()))
    (finding,) = audit_all(conn, [spec()], today=TODAY).audited[0].findings
    assert finding.check == "audit-failed" and "2 reports for 3 requests" in finding.message


# --------------------------------------------------------------------------- writes checked


def creates(*events: str, prop: str = BAD_P) -> PropertyPlan:
    return PropertyPlan(prop, "Bad Answers", tuple(
        Change(CREATE, e, None, KeyEventSettings("once_per_event", 2.0, "USD")) for e in events))


def test_create_answered_empty_and_not_made_is_a_failure(ga, conn, tmp_path):
    ga.on("POST", rf"/v1beta/properties/{BAD}/keyEvents$", "{}")
    result = apply_plan(conn, creates("sign_up"), Journal(tmp_path / "j.jsonl"))
    ((change, message),) = result.failed
    assert change.event == "sign_up" and not result.applied
    assert "does not hold it (no name)" in message and "it was not created" in message
    outcomes = [json.loads(line)["outcome"] for line in (tmp_path / "j.jsonl").read_text().splitlines()]
    assert outcomes == ["started", "failed"]


def test_create_answered_empty_but_made_is_applied(ga, conn, sandbox_state):
    def made_but_empty(fake: FakeGA, path: str, method: str, body: bytes) -> tuple[int, str, bytes]:
        fake.forward(method, path, body)
        return 200, "application/json", b"{}"

    ga.on("POST", rf"/v1beta/properties/{BAD}/keyEvents$", made_but_empty)
    result = apply_plan(conn, creates("sign_up"), Journal(None))
    assert [c.event for c in result.applied] == ["sign_up"] and result.ok
    assert sandbox_state.properties[BAD].key_event_by_name("sign_up") is not None


def test_create_answered_with_another_event_and_other_settings_fails(ga, conn, admin_client):
    from google.analytics.admin_v1beta.types import KeyEvent
    admin_client.create_key_event(parent=BAD_P, key_event=KeyEvent(event_name="sign_up",
                                                                    counting_method=2))
    ga.on("POST", rf"/v1beta/properties/{BAD}/keyEvents$",
          {"name": f"{BAD_P}/keyEvents/1", "eventName": "other"})
    ((_, message),) = apply_plan(conn, creates("sign_up"), Journal(None)).failed
    assert "the event name 'other'" in message and "with other settings" in message


UPDATE_PATH = rf"/v1beta/properties/{BAD}/keyEvents/[^/]+$"
OLD = KeyEventSettings("once_per_event", 1.0, "USD")
NEW = KeyEventSettings("once_per_session", 7.5, "USD")


def _live(conn: Any, event: str = "sign_up") -> KeyEventState | None:
    return {k.event: k for k in read_key_events(conn, BAD_P)}.get(event)


def updates_sign_up(conn: Any, admin_client: Any) -> PropertyPlan:
    """A key event `sign_up` in BAD with OLD settings, and the plan that updates it to NEW."""
    from google.analytics.admin_v1beta.types import KeyEvent
    admin_client.create_key_event(parent=BAD_P, key_event=KeyEvent(
        event_name="sign_up", counting_method=1,
        default_value=KeyEvent.DefaultValue(numeric_value=1.0, currency_code="USD")))
    live = _live(conn)
    assert live is not None and live.settings == OLD
    return PropertyPlan(BAD_P, "Bad Answers", (Change(UPDATE, "sign_up", OLD, NEW, name=live.name),))


def test_update_answered_empty_and_not_made_is_a_failure(ga, conn, admin_client, tmp_path):
    """A proxy answered the PATCH `200 {}` and sent nothing upstream: not applied."""
    plan = updates_sign_up(conn, admin_client)
    ga.on("PATCH", UPDATE_PATH, "{}")
    result = apply_plan(conn, plan, Journal(tmp_path / "j.jsonl"))
    ((change, message),) = result.failed
    assert change.event == "sign_up" and not result.applied and not result.ok
    assert ("GA answered the update of key event sign_up in properties/222000222 with an answer "
            "that does not hold it (no name)") in message
    assert ("reading the key events back shows it with other settings (once_per_event, value 1 "
            "USD, not once_per_session, value 7.5 USD): it was not updated") in message
    outcomes = [json.loads(line)["outcome"] for line in (tmp_path / "j.jsonl").read_text().splitlines()]
    assert outcomes == ["started", "failed"]
    assert len(ga.hits) == 1 and ga.hits[0].startswith("PATCH ")  # nothing went upstream
    # GA still has the old settings, so the next plan still shows the change
    (again,) = diff(BAD_P, "Bad Answers", {"sign_up": NEW}, read_key_events(conn, BAD_P)).changes
    assert (again.action, again.before, again.after) == (UPDATE, OLD, NEW)


def test_update_answered_empty_but_made_is_applied(ga, conn, admin_client):
    def made_but_empty(fake: FakeGA, path: str, method: str, body: bytes) -> tuple[int, str, bytes]:
        fake.forward(method, path, body)
        return 200, "application/json", b"{}"

    plan = updates_sign_up(conn, admin_client)
    ga.on("PATCH", UPDATE_PATH, made_but_empty)
    result = apply_plan(conn, plan, Journal(None))
    assert [c.event for c in result.applied] == ["sign_up"] and result.ok
    assert _live(conn).settings == NEW


def test_update_answered_with_the_old_settings_is_a_failure(ga, conn, admin_client):
    """The answer is the key event as it was (a cache, a proxy that answers a GET's body)."""
    def old_answer(fake: FakeGA, path: str, method: str, body: bytes) -> tuple[int, str, bytes]:
        return fake.forward("GET", path.split("?", 1)[0], b"")

    plan = updates_sign_up(conn, admin_client)
    ga.on("PATCH", UPDATE_PATH, old_answer)
    ((_, message),) = apply_plan(conn, plan, Journal(None)).failed
    assert "does not hold it (other settings (once_per_event, value 1 USD))" in message
    assert "it was not updated. Run apply again." in message
    assert _live(conn).settings == OLD


def test_update_of_a_key_event_gone_meanwhile_says_so(ga, conn, admin_client):
    plan = updates_sign_up(conn, admin_client)
    name = plan.changes[0].name

    def delete_then_empty(fake: FakeGA, path: str, method: str, body: bytes) -> tuple[int, str, bytes]:
        fake.forward("DELETE", f"/v1beta/{name}", b"")
        return 200, "application/json", b"{}"

    ga.on("PATCH", UPDATE_PATH, delete_then_empty)
    ((_, message),) = apply_plan(conn, plan, Journal(None)).failed
    assert "no longer in the property's list: it was not updated" in message


def test_update_answered_in_full_is_applied_without_reading_back(ga, conn, admin_client):
    plan = updates_sign_up(conn, admin_client)
    ga.on("GET", rf"/v1beta/properties/{BAD}/keyEvents$", "{}")  # a read back would see nothing
    result = apply_plan(conn, plan, Journal(None))
    assert result.ok and [c.event for c in result.applied] == ["sign_up"]
    assert not any(hit.startswith("GET") for hit in ga.hits)


def test_key_event_limit_is_reported_as_the_limit(ga, conn, sandbox_state, admin_client):
    from google.analytics.admin_v1beta.types import KeyEvent
    for i in range(30):
        admin_client.create_key_event(parent=BAD_P, key_event=KeyEvent(event_name=f"goal_{i}",
                                                                        counting_method=1))
    result = apply_plan(conn, creates("sign_up"), Journal(None))
    ((_, message),) = result.failed
    assert "reached GA's limit of custom key events" in message
    assert "already has 30 custom key events" in message  # GA's own words, quoted
    assert "already exists" not in message and not result.reconciled
    assert sandbox_state.properties[BAD].key_event_by_name("sign_up") is None


def test_plan_warns_before_the_limit(ga, conn, admin_client):
    from google.analytics.admin_v1beta.types import KeyEvent
    for i in range(29):
        admin_client.create_key_event(parent=BAD_P, key_event=KeyEvent(event_name=f"goal_{i}",
                                                                        counting_method=1))
    wanted = Spec(client="Bad Answers", properties=(BAD_P,), currency="USD", goals=GOALS + tuple(
        Goal(f"goal_{i}", "micro", None) for i in range(29)))
    plan, failures = plan_all(conn, [wanted])
    assert not failures
    (p,) = plan.properties
    assert [c.event for c in p.changes] == ["generate_lead", "sign_up"]
    (warning,) = p.warnings
    assert warning.startswith("31 custom key events after this plan (29 now, 2 to create, 0 to "
                              "delete) is over GA's limit of 30 for a standard property "
                              "(Analytics 360 allows 50): the last 1 create will fail.")
    data = json.loads(plan_json(plan))
    assert data["properties"][0]["warnings"] == [warning]
    assert list(data["properties"][0]) == ["property", "client", "changes", "unmanaged",
                                           "protected", "warnings"]
    assert f"  warning: {warning}" in plan_text(plan)
    assert f"**Warning:** {warning}" in plan_markdown(plan)


def test_limit_warning_arithmetic():
    def live(name: str, custom: bool = True) -> KeyEventState:
        return KeyEventState(name, KeyEventSettings("once_per_event"), name=f"x/{name}",
                             deletable=custom, custom=custom)
    existing = [live("purchase", custom=False)] + [live(f"e{i}") for i in range(30)]
    want = {f"n{i}": KeyEventSettings("once_per_event") for i in range(2)}
    # deletes make room: 30 + 2 - 30 = 2
    assert diff("properties/1", "c", {**want, "purchase": KeyEventSettings("once_per_event")},
                existing, prune=True).warnings == ()
    full = diff("properties/1", "c", want, existing)
    assert "32 custom key events" in full.warnings[0] and "last 2 creates" in full.warnings[0]
    assert diff("properties/1", "c", want, existing, key_event_limit=50).warnings == ()
    assert "GA's limit of 40 for this property" in diff(
        "properties/1", "c", want, existing + [live(f"f{i}") for i in range(9)],
        key_event_limit=40).warnings[0]
    # more than 30 already: read as Analytics 360
    big = existing + [live("f0")]
    assert diff("properties/1", "c", want, big).warnings == ()
    assert "limit of 50 (Analytics 360)" in diff(
        "properties/1", "c", {f"n{i}": KeyEventSettings("once_per_event") for i in range(20)},
        big).warnings[0]
    # no creates, already over: nothing will fail
    assert diff("properties/1", "c", {}, existing + [live("f0")]).warnings == ()


# --------------------------------------------------------------------------- the journal


def test_check_creates_the_folder_and_writes_nothing(tmp_path):
    path = tmp_path / "new" / "deeper" / "journal.jsonl"
    Journal(path).check()
    assert path.parent.is_dir() and path.read_bytes() == b""
    path.write_text('{"old": 1}\n')
    Journal(path).check()
    assert path.read_text() == '{"old": 1}\n'
    Journal(None).check()


def test_check_refuses_a_folder_at_the_path(tmp_path):
    with pytest.raises(JournalError) as e:
        Journal(tmp_path).check()
    assert str(tmp_path) in str(e.value) and "is a folder, not a file" in str(e.value)
    # a library message: it names the setting, never a command-line flag (issue 9)
    assert "GA_SYNC_JOURNAL" in str(e.value) and "--" not in str(e.value)


def test_check_refuses_a_file_where_a_folder_should_be(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(JournalError, match="Choose a journal file") as e:
        Journal(tmp_path / "file" / "journal.jsonl").check()
    assert "--" not in str(e.value)


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EACCES, errno.ENOTDIR, errno.EIO])
def test_journal_errors_name_no_command_line_flag(tmp_path, code):
    """A notebook user reads these too: the fix names the file and GA_SYNC_JOURNAL only."""
    message = str(Journal(tmp_path / "j.jsonl")._error(OSError(code, os.strerror(code)),
                                                       "cannot be written"))
    assert "--" not in message and "choose" in message.lower() and "GA_SYNC_JOURNAL" in message


def test_audit_days_message_names_no_flag(conn):
    from ga_sync.errors import GaSyncError
    with pytest.raises(GaSyncError) as e:
        audit_all(conn, [spec()], days=0)
    assert str(e.value) == "days must be at least 1, not 0"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_check_refuses_a_read_only_folder(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(JournalError, match="Make .* writable"):
            Journal(folder / "journal.jsonl").check()
    finally:
        folder.chmod(0o755)


def test_check_refuses_a_read_only_folder_even_as_root(tmp_path, monkeypatch):
    """The same refusal, with the open failing as it does for a user without write access."""
    path = tmp_path / "ro" / "journal.jsonl"
    real_open = os.open

    def refuse(p: Any, flags: int, *args: Any) -> int:
        if str(p) == str(path):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
        return real_open(p, flags, *args)

    monkeypatch.setattr(admin_mod.os, "open", refuse)
    with pytest.raises(JournalError) as e:
        Journal(path).check()
    message = str(e.value)
    assert str(path) in message and "Permission denied" in message
    assert f"Make {path.parent} writable" in message


def test_check_refuses_a_full_disk(tmp_path, monkeypatch):
    class Full:
        f_blocks, f_bavail, f_bfree = 1000, 0, 0

    monkeypatch.setattr(admin_mod.os, "fstatvfs", lambda fd: Full())
    with pytest.raises(JournalError, match="No space left on device.*Free space"):
        Journal(tmp_path / "j.jsonl").check()


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")
def test_dev_full_passes_check_and_fails_at_the_first_line():
    """What check() cannot see: a device that opens but refuses writes. The first line fails."""
    journal = Journal("/dev/full")
    journal.check()
    with pytest.raises(JournalError, match="No space left on device"):
        journal.record(BAD_P, creates("x").changes[0], "started")


class FillsUp:
    """`os.write` that accepts `room` more bytes of journal, then writes short, then fails."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, room: int) -> None:
        self.room = room
        self.real = os.write
        monkeypatch.setattr(admin_mod.os, "write", self)

    def __call__(self, fd: int, data: bytes) -> int:
        if self.room <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        n = self.real(fd, data[:self.room])
        self.room -= n
        return n


def _lines(path: Path) -> list[dict]:
    text = path.read_text()
    assert text == "" or text.endswith("\n"), "half a line left in the journal"
    return [json.loads(line) for line in text.splitlines()]


def test_disk_fills_after_the_first_change_is_made(ga, conn, sandbox_state, tmp_path, monkeypatch):
    path = tmp_path / "journal.jsonl"
    journal = Journal(path)
    journal.check()
    plan = creates("alpha", "beta", "gamma")
    line = len(json.dumps({"time": "2026-01-01T00:00:00.000+00:00", "property": BAD_P,
                           "action": "create", "event": "alpha", "before": None,
                           "after": plan.changes[0].after.to_json(), "resource": "key_event",
                           "outcome": "started"}) + "\n")
    FillsUp(monkeypatch, room=line + 10)  # the "started" line fits, the "applied" one half
    with pytest.raises(JournalError) as e:
        apply_plan(conn, plan, journal)
    message = str(e.value)
    assert f"the apply journal {path} cannot be written" in message
    assert "GA may have made the create key event alpha (its outcome, 'applied', could not be " \
           "journaled); the 2 changes after it in" in message and "were not started" in message
    assert "Free space on that disk" in message
    assert [(x["event"], x["outcome"]) for x in _lines(path)] == [("alpha", "started")]
    record = sandbox_state.properties[BAD]
    assert record.key_event_by_name("alpha") is not None
    assert record.key_event_by_name("beta") is None and record.key_event_by_name("gamma") is None
    # other properties applying in this run start no further change
    assert conn.retry.cancel.is_set()
    with pytest.raises(Cancelled):
        apply_plan(conn, creates("delta", prop=GOOD_P), Journal(tmp_path / "other.jsonl"))
    assert sandbox_state.properties[GOOD].key_event_by_name("delta") is None


def test_disk_full_before_a_change_starts_it_is_not_sent(ga, conn, sandbox_state, tmp_path,
                                                         monkeypatch):
    path = tmp_path / "journal.jsonl"
    path.write_text('{"earlier": "run"}\n')
    FillsUp(monkeypatch, room=0)
    with pytest.raises(JournalError) as e:
        apply_plan(conn, creates("alpha", "beta"), Journal(path))
    assert ("Apply stopped before the create key event alpha in properties/222000222 (Bad "
            "Answers): that change was not sent to GA, and the 1 change after it in "
            "properties/222000222 was not started.") in str(e.value)
    assert path.read_text() == '{"earlier": "run"}\n'
    assert sandbox_state.properties[BAD].key_event_by_name("alpha") is None


def test_short_write_is_cut_back(tmp_path, monkeypatch):
    path = tmp_path / "journal.jsonl"
    journal = Journal(path)
    change = creates("x").changes[0]
    journal.record(BAD_P, change, "started")
    before = path.read_bytes()
    FillsUp(monkeypatch, room=17)
    with pytest.raises(JournalError, match="only 17 of .* bytes .* The line was not kept"):
        journal.record(BAD_P, change, "applied")
    assert path.read_bytes() == before


def test_a_journal_failure_stops_the_whole_run_with_its_own_message(ga, conn, sandbox_state,
                                                                    tmp_path, monkeypatch):
    """Across properties applied together: the run raises the JournalError (exit 1 in the CLI,
    not 130 as for an interruption), and no property is left half-applied without a word."""
    from ga_sync.model import Plan
    from ga_sync.sync import apply_all

    path = tmp_path / "journal.jsonl"
    FillsUp(monkeypatch, room=0)
    plan = Plan((creates("alpha", "beta"), creates("gamma", prop=GOOD_P)))
    with pytest.raises(JournalError) as e:
        apply_all(conn, plan, Journal(path), concurrency=1)
    assert "was not sent to GA" in str(e.value)
    assert not isinstance(e.value, Cancelled)
    assert sandbox_state.properties[BAD].key_event_by_name("alpha") is None
    assert sandbox_state.properties[GOOD].key_event_by_name("gamma") is None
