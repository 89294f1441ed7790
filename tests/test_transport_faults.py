"""What ga-sync says and does when the wire or the credentials misbehave.

Pure tests drive `clients.call` with fake `fn`s; end-to-end ones point a real connection at tiny
local servers: one that answers what a proxy or captive portal would (HTML, cut-off JSON, wrong
shapes, a 401), one that accepts and never answers, one that resets every connection. Every
failure must be a GaSyncError that says where (property, endpoint host), what and what to do,
with nothing secret in it.
"""

from __future__ import annotations

import json
import signal
import socket
import struct
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from google.api_core import exceptions as gexc
from google.auth import exceptions as aexc
from google.protobuf.json_format import ParseError

import ga_sync.admin as admin_mod
from ga_sync.admin import read_key_events
from ga_sync.clients import (READONLY_SCOPE, SERVER_TEXT_MAX, Circuit, EndpointDown, Pacer,
                             RetryPolicy, _split_timeout, call, connect, is_transient,
                             load_credentials)
from ga_sync.errors import ApiError, Cancelled, CredentialsError, GaSyncError, MalformedAnswer
from ga_sync.model import Goal, Spec
from ga_sync.data import post
from ga_sync.sync import is_cancelled, plan_all, run_each

P = "properties/123"


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.now += s


def policy(**kw):
    clock = FakeClock()
    return RetryPolicy(sleep=clock.sleep, **kw), clock


def raising(*errors, result="ok"):
    seq = list(errors)
    calls = []

    def fn():
        calls.append(1)
        if seq:
            raise seq.pop(0)
        return result
    fn.calls = calls
    return fn


def http_error(status: int, body: bytes, content_type: str = "application/json",
               url: str = "https://user:hunter2@ga.example/v1beta/properties/123/keyEvents"):
    """The api-core exception a REST client raises for this HTTP answer."""
    response = requests.Response()
    response.status_code = status
    response._content = body
    response.headers["Content-Type"] = content_type
    response.request = requests.Request("GET", url).prepare()
    response.url = url
    return gexc.from_http_response(response)


# --------------------------------------------------------------------------- 1. malformed


def test_parse_failures_become_malformed_answer_retried_once():
    p, _ = policy()
    fn = raising(*[ParseError("Failed to load JSON: Expecting value")] * 5)
    with pytest.raises(MalformedAnswer) as e:
        call(fn, policy=p, property=P, what="list key events", paced=False)
    assert len(fn.calls) == 2 and p.retried == 1  # one retry, not the whole budget
    msg = str(e.value)
    assert P in msg and "list key events" in msg and "not a GA answer" in msg
    assert "proxy or captive portal" in msg and "GA_SYNC_ADMIN_ENDPOINT" in msg
    assert e.value.property == P

    p, _ = policy()  # a glitch: the retry gets a good answer
    assert call(raising(ParseError("Failed to load JSON: x")), policy=p, paced=False) == "ok"


@pytest.mark.parametrize("error, shown", [
    (json.JSONDecodeError("Expecting value", "<html>token=abc123secret hello", 0), "hello"),
    (UnicodeDecodeError("utf-8", b"\xff\xfe junk", 0, 1, "invalid start byte"), "not UTF-8"),
    (requests.exceptions.ContentDecodingError("bad gzip"), "not a GA answer"),
])
def test_json_and_decoding_errors_from_our_own_parsing(error, shown):
    p, _ = policy(malformed_retries=0)
    with pytest.raises(MalformedAnswer) as e:
        call(raising(error), policy=p, property=P, what="run reports", paced=False)
    assert shown in str(e.value) and "abc123secret" not in str(e.value)


@pytest.mark.parametrize("bug", [AttributeError("x"), TypeError("y"), KeyError("z"),
                                 ValueError("plain value error")])
def test_programming_errors_are_not_swallowed(bug):
    p, _ = policy()
    with pytest.raises(type(bug)):
        call(raising(bug), policy=p, property=P, paced=False)
    assert p.retried == 0


def test_our_own_malformed_answer_gets_the_same_single_retry_and_stays_itself():
    p, _ = policy()
    mine = MalformedAnswer("could not run reports for properties/123: HTML", property=P)
    with pytest.raises(MalformedAnswer) as e:
        call(raising(mine, mine, mine), policy=p, property=P, paced=False)
    assert e.value is mine and p.retried == 1


# --------------------------------------------------------------------------- 2. 5xx and HTML


@pytest.mark.parametrize("status", [500, 502, 503, 504, 507, 520, 599])
def test_server_errors_but_501_are_transient(status):
    assert is_transient(http_error(status, b'{"error": {"code": 1, "message": "x"}}'))
    p, _ = policy()
    assert call(raising(http_error(status, b"<html><title>Bad</title></html>", "text/html")),
                policy=p, paced=False) == "ok"
    assert p.retried == 1


def test_501_and_4xx_are_not_retried():
    assert not is_transient(http_error(501, b'{"error": {"code": 501, "message": "no"}}'))
    assert not is_transient(http_error(400, b'{"error": {"code": 400, "message": "no"}}'))


def test_html_error_page_is_named_never_shown_raw():
    page = (b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body><center><h1>502 Bad "
            b"Gateway</h1></center><hr><center>nginx/1.18.0</center></body></html>")
    p, _ = policy(attempts=2)
    with pytest.raises(MalformedAnswer) as e:
        call(raising(*[http_error(502, page, "text/html")] * 2), policy=p, property=P,
             what="list key events", paced=False)
    msg = str(e.value)
    assert "answered HTTP 502 with an HTML page, not a GA answer" in msg
    assert "'502 Bad Gateway'" in msg and "<" not in msg and "nginx" not in msg
    assert "GA refused" not in msg and P in msg and "https://ga.example" in msg
    assert "hunter2" not in msg and e.value.status == 502


def test_google_error_envelope_keeps_gas_words_redacted_and_capped():
    secret = "ya29.a0AfB_byC-secret-access-token-value"
    words = f"Invalid countingMethod, token {secret}. " + "x" * 2000
    err = http_error(400, json.dumps({"error": {"code": 400, "message": words,
                                                "status": "INVALID_ARGUMENT"}}).encode())
    p, _ = policy()
    with pytest.raises(ApiError) as e:
        call(raising(err), policy=p, property=P, what="create key event x", paced=False)
    msg = str(e.value)
    assert "Invalid countingMethod" in msg and secret not in msg and "hunter2" not in msg
    assert len(msg) < SERVER_TEXT_MAX + 200


def test_plain_text_error_from_something_else_is_excerpted():
    err = http_error(503, b"upstream connect error or disconnect/reset before headers. " * 20,
                     "text/plain")
    p, _ = policy(attempts=1)
    with pytest.raises(MalformedAnswer) as e:
        call(raising(err), policy=p, property=P, paced=False)
    assert "answered HTTP 503 with text that is not a GA answer" in str(e.value)
    assert len(str(e.value)) < 400


# --------------------------------------------------------------------------- local endpoints


class Answers(BaseHTTPRequestHandler):
    """Answers every request with the server's (status, content type, body)."""

    def log_message(self, *args) -> None:
        pass

    def _answer(self) -> None:
        self.server.seen.append((self.command, self.path, dict(self.headers)))
        status, ctype, body = self.server.answer
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PATCH = do_DELETE = _answer


@pytest.fixture
def endpoint() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Answers)
    server.daemon_threads = True
    server.seen = []
    server.answer = (200, "application/json", b"{}")
    server.url = f"http://127.0.0.1:{server.server_port}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def conn_to(url: str, **env):
    conn = connect(env={"GA_SYNC_ADMIN_ENDPOINT": url, "GA_SYNC_DATA_ENDPOINT": url,
                        "GA_SYNC_CREDENTIALS": "anonymous", **env})
    conn.retry.sleep = lambda s: None
    return conn


PORTAL = (b"<!DOCTYPE html><html><head><title>Sign in - Hotel Wi-Fi</title></head><body>"
          b"<form action=/login>password=letmein</form></body></html>")


@pytest.mark.parametrize("answer, says", [
    ((200, "text/html", PORTAL), "HTML page (its title: 'Sign in - Hotel Wi-Fi')"),
    ((200, "application/json", b'{"keyEvents": [{"name": "properties/123/keyEv'),
     "not JSON or is cut off"),
    ((200, "application/json", b'{"keyEvents": 5}'), "JSON of the wrong shape"),
    ((200, "application/json", b"[1, 2]"), "JSON of the wrong shape"),
    ((200, "application/json", b"\xff\xfe\x00garbage"), "not UTF-8"),
    ((200, "application/json", b""), "an empty body"),
    ((502, "text/html", b"<html><head><title>502 Bad Gateway</title></head></html>"),
     "answered HTTP 502 with an HTML page, not a GA answer (its title: '502 Bad Gateway')"),
])
def test_admin_answers_that_are_not_ga_answers(endpoint, answer, says):
    endpoint.answer = answer
    with pytest.raises(MalformedAnswer) as e:
        read_key_events(conn_to(endpoint.url), P)
    msg = str(e.value)
    assert says in msg, msg
    assert P in msg and endpoint.url in msg and "letmein" not in msg and "<" not in msg
    tries = 2 if answer[0] == 200 else 6
    assert len(endpoint.seen) == tries  # a malformed answer is retried once; a 502 fully


def test_data_api_html_and_truncated_answers(endpoint):
    endpoint.answer = (200, "text/html", PORTAL)
    with pytest.raises(MalformedAnswer) as e:
        post(conn_to(endpoint.url), P, "batchRunReports", {"requests": []})
    assert P in str(e.value) and "letmein" not in str(e.value)
    endpoint.answer = (200, "application/json", b'{"reports": [{"rows": [')
    with pytest.raises(MalformedAnswer) as e:
        post(conn_to(endpoint.url), P, "batchRunReports", {"requests": []})
    assert P in str(e.value)


def test_empty_answer_to_an_empty_property_is_fine(endpoint):
    assert read_key_events(conn_to(endpoint.url), P) == []  # GA answers {} for none


# --------------------------------------------------------------------------- 3. redaction


def test_endpoint_password_is_never_echoed():
    port = _free_port()
    url = f"http://admin:hunter2@127.0.0.1:{port}"
    conn = conn_to(url)
    with pytest.raises(ApiError) as e:
        read_key_events(conn, P)
    msg = str(e.value)
    assert "hunter2" not in msg and "admin:" not in msg
    assert f"127.0.0.1:{port}" in msg and "connection refused" in msg
    with pytest.raises(CredentialsError) as e:
        connect(env={"GA_SYNC_ADMIN_ENDPOINT": "admin:hunter2@ga.example.com"})
    assert "hunter2" not in str(e.value) and "GA_SYNC_ADMIN_ENDPOINT" in str(e.value)


# --------------------------------------------------------------------------- 4. google-auth


def test_refresh_failures_during_a_call_are_credentials_errors():
    p, _ = policy()
    revoked = aexc.RefreshError("invalid_grant: Token has been expired or revoked.",
                                {"error": "invalid_grant", "refresh_token": "1//0gSECRETSECRET"})
    with pytest.raises(CredentialsError) as e:
        call(raising(revoked), policy=p, property=P, what="list key events", paced=False)
    msg = str(e.value)
    assert "expired or revoked" in msg and "gcloud auth application-default login" in msg
    assert P in msg and "SECRET" not in msg and p.retried == 0


def test_token_endpoint_network_glitch_is_retried_then_reported():
    p, _ = policy(attempts=3)
    glitch = aexc.TransportError("HTTPSConnectionPool(host='oauth2.googleapis.com'): refused")
    assert call(raising(glitch), policy=p, paced=False) == "ok" and p.retried == 1
    p, _ = policy(attempts=2)
    with pytest.raises(ApiError, match="sign-in service"):
        call(raising(glitch, glitch), policy=p, property=P, paced=False)


@pytest.mark.parametrize("error", [aexc.DefaultCredentialsError("no"),
                                   aexc.MalformedError("bad key"),
                                   aexc.InvalidOperation("cannot")])
def test_other_auth_errors_during_a_call(error):
    p, _ = policy()
    with pytest.raises(CredentialsError, match="GA_SYNC_CREDENTIALS"):
        call(raising(error), policy=p, property=P, paced=False)


def test_401_without_credentials_says_which_setting(endpoint):
    endpoint.answer = (401, "application/json", json.dumps({"error": {
        "code": 401, "message": "Request is missing required authentication credential.",
        "status": "UNAUTHENTICATED"}}).encode())
    with pytest.raises(ApiError) as e:
        read_key_events(conn_to(endpoint.url), P)
    msg = str(e.value)
    assert "wants credentials" in msg and "set GA_SYNC_CREDENTIALS" in msg.replace("Set", "set")
    assert endpoint.url in msg and P in msg and e.value.status == 401


@pytest.mark.parametrize("content, says", [
    (json.dumps({"installed": {"client_id": "x.apps.googleusercontent.com",
                               "client_secret": "GOCSPX-SECRETSECRET"}}), "OAuth client secret"),
    (json.dumps({"web": {"client_id": "x", "client_secret": "GOCSPX-SECRETSECRET"}}),
     "an 'web' app"),
    (json.dumps(["SECRETSECRET"]), "holds a JSON list"),
    ("42", "holds a JSON number"),
    ('"SECRETSECRET"', "holds a JSON string"),
    ("", "is empty"),
    ("   \n", "is empty"),
    (json.dumps({"client_email": "SECRETSECRET"}), "without a 'type'"),
    (json.dumps({"type": "external_account", "audience": "SECRETSECRET"}),
     "GOOGLE_APPLICATION_CREDENTIALS="),
    (json.dumps({"type": "service_account", "private_key": "SECRETSECRET",
                 "client_email": "a@b.iam.gserviceaccount.com", "token_uri": "x"}),
     "incomplete or malformed"),
    (json.dumps({"type": {"nested": "SECRETSECRET"}}), "has type a JSON object"),
])
def test_credentials_files_of_every_wrong_kind(tmp_path, content, says):
    key = tmp_path / "key.json"
    key.write_text(content)
    with pytest.raises(CredentialsError) as e:
        load_credentials(str(key), READONLY_SCOPE)
    assert says in str(e.value) and "SECRET" not in str(e.value)
    assert str(key) in str(e.value)


def test_credentials_setting_is_a_folder(tmp_path):
    with pytest.raises(CredentialsError, match="is a folder, not a key file"):
        load_credentials(str(tmp_path), READONLY_SCOPE)


# --------------------------------------------------------------------------- 5. env numbers


@pytest.mark.parametrize("var", ["GA_SYNC_ADMIN_REQUESTS_PER_MINUTE",
                                 "GA_SYNC_ADMIN_WRITES_PER_MINUTE", "GA_SYNC_QUOTA_WINDOW"])
@pytest.mark.parametrize("value", ["0", "-5", "nan", "inf", "-inf", "1e30", "lots", "0.0001"])
def test_quota_settings_out_of_range_are_refused_by_name(var, value):
    with pytest.raises(GaSyncError) as e:
        Pacer.from_env({var: value})
    assert var in str(e.value) and " from " in str(e.value) and " to " in str(e.value)


def test_quota_settings_in_range_and_empty():
    pacer = Pacer.from_env({"GA_SYNC_ADMIN_REQUESTS_PER_MINUTE": "1200",
                            "GA_SYNC_ADMIN_WRITES_PER_MINUTE": "", "GA_SYNC_QUOTA_WINDOW": "1.5"})
    assert pacer.limits == {"requests": 1200, "writes": 180}
    with pytest.raises(GaSyncError, match="whole number"):
        Pacer.from_env({"GA_SYNC_ADMIN_WRITES_PER_MINUTE": "2.5"})
    with pytest.raises(GaSyncError, match="GA_SYNC_QUOTA_WINDOW"):
        connect(env={"GA_SYNC_QUOTA_WINDOW": "0", "GA_SYNC_CREDENTIALS": "anonymous"})


# --------------------------------------------------------------------------- 6. fail fast


def test_circuit_opens_after_consecutive_failures_and_probes_after_cooldown():
    clock = FakeClock()
    c = Circuit(threshold=3, cooldown=30, clock=clock)
    host = "https://ga.example"
    c.failure(host, "connection refused", "properties/1")
    c.failure(host, "connection refused", "properties/2")
    c.success(host)  # an answer in between: not down
    c.failure(host, "connection refused", "properties/1")
    c.failure(host, "connection refused", "properties/2")
    c.before(host)
    c.failure(host, "connection refused", "properties/3")
    with pytest.raises(EndpointDown) as e:
        c.before(host)
    assert e.value.failures == 3 and "connection refused" in str(e.value)
    c.before("https://other.example")  # per host
    clock.now += 30
    c.before(host)  # the probe
    with pytest.raises(EndpointDown):
        c.before(host)  # only one probe at a time
    c.failure(host, "connection refused", "properties/3")  # the probe failed: open again
    with pytest.raises(EndpointDown):
        c.before(host)
    clock.now += 30
    c.before(host)
    c.success(host)
    c.before(host)


def test_one_propertys_failures_alone_never_open_the_circuit():
    """A proxy resetting one property's requests must not take the endpoint down for others."""
    c = Circuit(threshold=3)
    for _ in range(10):
        c.failure("https://ga.example", "connection closed without an answer", "properties/9")
    c.before("https://ga.example")


def test_endpoint_down_is_not_retried_and_says_not_tried():
    p, _ = policy()
    down = EndpointDown("https://ga.example", 3, "connection refused")
    with pytest.raises(ApiError) as e:
        call(raising(down), policy=p, property=P, what="list key events", paced=False)
    assert p.retried == 0
    assert "is down" in str(e.value) and "not tried" in str(e.value)


def test_connect_timeout_is_short_and_separate():
    assert _split_timeout(30.0) == (10.0, 30.0)
    assert _split_timeout(2) == (2.0, 2.0)
    assert _split_timeout(None)[0] == 10.0


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _specs(n: int) -> list[Spec]:
    return [Spec(client=f"Client {i}", properties=(f"properties/{700000000 + i}",),
                 goals=(Goal("sign_up", "micro", 1.0),), currency="USD") for i in range(n)]


class Silent:
    """A TCP server that accepts connections and never answers (or resets them at once)."""

    def __init__(self, reset: bool = False) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.reset, self.accepted, self.conns = reset, 0, []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            if self.reset:
                c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                c.close()
            else:
                self.conns.append(c)

    def close(self) -> None:
        self.sock.close()
        for c in self.conns:
            c.close()


@pytest.fixture
def silent():
    servers = []

    def make(reset=False):
        servers.append(Silent(reset))
        return servers[-1]
    yield make
    for s in servers:
        s.close()


def _plan_errors(url: str, n: int = 20):
    conn = conn_to(url)
    conn.retry.sleep = None  # real (short) backoff waits
    conn.retry.initial = 0.05
    t0 = time.monotonic()
    plan, failures = plan_all(conn, _specs(n), concurrency=8)
    return time.monotonic() - t0, failures


def test_dead_endpoint_fails_fast_over_many_properties():
    elapsed, failures = _plan_errors(f"http://127.0.0.1:{_free_port()}")
    assert len(failures) == 20 and elapsed < 3
    assert sum("not tried" in f.message for f in failures) >= 10
    assert all("127.0.0.1" in f.message for f in failures)


def test_hung_endpoint_costs_one_timeout_not_every_propertys_budget(silent, monkeypatch):
    monkeypatch.setattr(admin_mod, "TIMEOUT", 1.0)
    server = silent()
    elapsed, failures = _plan_errors(server.url)
    assert len(failures) == 20 and elapsed < 4  # today: 6 attempts x 1 s per property
    assert server.accepted <= 12
    assert any("no answer within the timeout" in f.message for f in failures)


def test_reset_connections_are_network_errors_that_open_the_circuit(silent):
    server = silent(reset=True)
    elapsed, failures = _plan_errors(server.url)
    assert len(failures) == 20 and elapsed < 3 and server.accepted <= 12
    assert any("connection closed without an answer" in f.message
               or "is down" in f.message for f in failures)


def test_an_endpoint_that_answers_errors_is_not_down(endpoint):
    endpoint.answer = (503, "application/json",
                       b'{"error": {"code": 503, "message": "try later", "status": "UNAVAILABLE"}}')
    conn = conn_to(endpoint.url)
    with pytest.raises(ApiError, match="HTTP 503"):
        read_key_events(conn, P)
    assert len(endpoint.seen) == 6 and not conn.circuit.is_open(endpoint.url)


# --------------------------------------------------------------------------- 7/8. run_each


def test_run_each_keeps_each_items_error_and_order():
    def work(i):
        if i % 3 == 0:
            raise ApiError(f"no {i}", property=str(i))
        return i * 10
    seen = []
    out = run_each(list(range(10)), work, concurrency=4, on_done=lambda *a: seen.append(a[0]))
    assert [i for i, _, _ in out] == list(range(10))
    assert [str(e) for _, _, e in out if e] == ["no 0", "no 3", "no 6", "no 9"]
    assert sorted(seen) == list(range(10))


def test_run_each_bug_propagates():
    def work(i):
        if i == 2:
            raise ZeroDivisionError("bug")
        return i
    with pytest.raises(ZeroDivisionError):
        run_each(list(range(5)), work, concurrency=2)


def test_ctrl_c_returns_at_once_even_with_calls_hung():
    cancel = threading.Event()
    release = threading.Event()
    started = threading.Semaphore(0)
    reported = []

    def work(i):
        started.release()
        release.wait(30)  # a call on the wire that never comes back
        raise Cancelled("interrupted")

    main = threading.main_thread().ident
    threading.Timer(0.3, signal.pthread_kill, (main, signal.SIGINT)).start()
    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        run_each(list(range(8)), work, concurrency=4, cancel=cancel,
                 on_done=lambda *a: reported.append(a), grace=0.2)
    assert time.monotonic() - t0 < 1.5 and cancel.is_set()
    release.set()
    time.sleep(0.1)
    assert reported == []  # nothing reported done or FAILED after the interrupt


def test_cancelled_items_are_not_failures():
    cancel = threading.Event()

    def work(i):
        if i == 1:
            cancel.set()  # someone else stops the run
        if cancel.is_set() and i != 1:
            raise Cancelled("interrupted before the call was sent")
        return i
    reported = []
    out = run_each(list(range(6)), work, concurrency=1, cancel=cancel,
                   on_done=lambda t, r, e: reported.append((t, e)))
    assert [i for i, _, _ in out] == list(range(6))
    assert all(is_cancelled(e) for i, _, e in out if i > 1)
    assert reported == [(0, None)]
    assert not is_cancelled(ApiError("x"))


def test_plan_all_raises_cancelled_instead_of_a_partial_plan(sandbox_state, ga_env):
    conn = connect()
    conn.retry.cancel.set()
    with pytest.raises(Cancelled, match="not planned"):
        plan_all(conn, _specs(3))


def test_a_read_timeout_is_not_retried_but_a_refused_connection_is():
    p, _ = policy()
    fn = raising(requests.exceptions.ReadTimeout("Read timed out. (read timeout=30)"), result="ok")
    with pytest.raises(ApiError, match="no answer within the timeout"):
        call(fn, policy=p, property=P, paced=False)
    assert len(fn.calls) == 1  # a hung property costs one timeout, not six
    p, _ = policy()
    fn = raising(requests.ConnectionError("[Errno 111] Connection refused"))
    assert call(fn, policy=p, paced=False) == "ok" and p.retried == 1
