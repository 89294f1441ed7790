"""Pure tests of the connection layer: pacing, retries, error translation, credentials."""

from __future__ import annotations

import json
import os

import pytest
import requests
from google.api_core import exceptions as gexc

from ga_sync.clients import (EDIT_SCOPE, READONLY_SCOPE, Pacer, RetryPolicy, call, connect,
                             is_rate_limit, load_credentials)
from ga_sync.errors import ApiError, CredentialsError, QuotaExhausted


class FakeClock:
    def __init__(self):
        self.now = 0.0
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, s):
        self.sleeps.append(s)
        self.now += s


def test_pacer_lets_a_minutes_worth_go_at_once_then_waits_only_as_needed():
    clock = FakeClock()
    pacer = Pacer(requests_per_window=600, writes_per_window=180, window=60, margin=0,
                  clock=clock, sleep=clock.sleep)
    for _ in range(180):
        pacer.acquire(write=True)
    assert clock.now == 0 and clock.sleeps == []
    pacer.acquire(write=True)  # the 181st write waits for the first to leave the window
    assert clock.now == pytest.approx(60)
    # reads are not writes: they only count against the request quota
    for _ in range(600 - 181):
        pacer.acquire(write=False)
    assert clock.now == pytest.approx(60)


def test_pacer_never_exceeds_quota_in_any_window():
    clock = FakeClock()
    pacer = Pacer(requests_per_window=50, writes_per_window=20, window=10, margin=0,
                  clock=clock, sleep=clock.sleep)
    times = []
    for i in range(200):
        pacer.acquire(write=i % 2 == 0)
        times.append((clock.now, i % 2 == 0))
        clock.now += 0.01
    for t0, _ in times:
        in_window = [w for t, w in times if t0 <= t < t0 + 10]
        assert len(in_window) <= 50
        assert sum(in_window) <= 20


def _http_error(cls, message="boom", headers=None, reason=None):
    response = requests.Response()
    response.headers.update(headers or {})
    err = cls(message, response=response)
    if reason:
        err._error_info = None
        err._errors = [{"reason": reason}]
    return err


def flaky(*errors, result="ok"):
    seq = list(errors)

    def fn():
        if seq:
            raise seq.pop(0)
        return result
    return fn


def policy(**kw):
    clock = FakeClock()
    return RetryPolicy(sleep=clock.sleep, **kw), clock


def test_retries_transient_errors_and_honours_retry_after():
    p, clock = policy()
    fn = flaky(_http_error(gexc.ServiceUnavailable), _http_error(gexc.TooManyRequests,
               headers={"Retry-After": "7"}), _http_error(gexc.InternalServerError))
    assert call(fn, policy=p, paced=False) == "ok"
    assert p.retried == 3 and p.rate_limited == 1
    assert clock.sleeps[1] >= 7


def test_rate_limit_403_is_retried_but_permission_403_is_not():
    assert is_rate_limit(_http_error(gexc.Forbidden, reason="rateLimitExceeded"))
    assert not is_rate_limit(_http_error(gexc.Forbidden, reason="PERMISSION_DENIED"))
    p, _ = policy()
    assert call(flaky(_http_error(gexc.Forbidden, reason="rateLimitExceeded")), policy=p,
                paced=False) == "ok"
    p, _ = policy()
    with pytest.raises(ApiError, match="Viewer role"):
        call(flaky(_http_error(gexc.Forbidden, "User does not have sufficient permissions")),
             policy=p, property="properties/1", what="list key events", paced=False)
    assert p.retried == 0


def test_no_retry_on_bad_request_and_message_names_property():
    p, _ = policy()
    with pytest.raises(ApiError) as e:
        call(flaky(_http_error(gexc.BadRequest, "Invalid countingMethod")), policy=p,
             property="properties/42", what="create key event x", paced=False)
    assert p.retried == 0
    assert "properties/42" in str(e.value) and "Invalid countingMethod" in str(e.value)
    assert e.value.status == 400


def test_hourly_exhaustion_stops_at_once():
    p, _ = policy()
    err = _http_error(gexc.TooManyRequests, "Exhausted property tokens per hour.")
    with pytest.raises(QuotaExhausted):
        call(flaky(err, err), policy=p, property="properties/1", paced=False)
    assert p.retried == 0


def test_retries_are_bounded_in_count_and_time():
    p, clock = policy(attempts=4)
    errs = [_http_error(gexc.ServiceUnavailable) for _ in range(10)]
    with pytest.raises(ApiError, match="HTTP 503, even after retries"):
        call(flaky(*errs), policy=p, paced=False)
    assert p.retried == 3
    p, clock = policy(deadline=0.0)
    with pytest.raises(ApiError):
        call(flaky(_http_error(gexc.ServiceUnavailable)), policy=p, paced=False)
    assert p.retried == 0


def test_network_errors_are_retried_then_reported():
    p, _ = policy(attempts=2)
    with pytest.raises(ApiError, match="network error"):
        call(flaky(requests.ConnectionError(), requests.ConnectionError()), policy=p, paced=False)
    assert p.retried == 1


def test_credentials_anonymous_and_overridden_endpoint():
    from google.auth.credentials import AnonymousCredentials
    assert isinstance(load_credentials("anonymous", READONLY_SCOPE), AnonymousCredentials)
    conn = connect(env={"GA_SYNC_ADMIN_ENDPOINT": "http://127.0.0.1:1/"})
    assert isinstance(conn.credentials, AnonymousCredentials)
    assert conn.admin_endpoint == "http://127.0.0.1:1" and conn.scope == READONLY_SCOPE
    assert connect(write=True, env={"GA_SYNC_CREDENTIALS": "anonymous"}).scope == EDIT_SCOPE


def test_credentials_file_problems_never_echo_contents(tmp_path):
    with pytest.raises(CredentialsError, match="not a file"):
        load_credentials(str(tmp_path / "missing.json"), READONLY_SCOPE)
    secret = tmp_path / "key.json"
    secret.write_text(json.dumps({"type": "weird", "private_key": "SUPERSECRET"}))
    with pytest.raises(CredentialsError) as e:
        load_credentials(str(secret), READONLY_SCOPE)
    assert "SUPERSECRET" not in str(e.value) and "'weird'" in str(e.value)
    secret.write_text("not json SUPERSECRET")
    with pytest.raises(CredentialsError) as e:
        load_credentials(str(secret), READONLY_SCOPE)
    assert "SUPERSECRET" not in str(e.value)


def test_world_readable_credentials_warn(tmp_path):
    key = tmp_path / "key.json"
    key.write_text((__import__("pathlib").Path(__file__).parent.parent
                    / "credentials.example.json").read_text())
    os.chmod(key, 0o644)
    warnings: list[str] = []
    with pytest.raises(CredentialsError):  # the example key is deliberately not a usable key
        load_credentials(str(key), READONLY_SCOPE, warnings=warnings)
    assert warnings and "chmod 600" in warnings[0]
    os.chmod(key, 0o600)
    warnings.clear()
    with pytest.raises(CredentialsError):
        load_credentials(str(key), READONLY_SCOPE, warnings=warnings)
    assert warnings == []


def test_rate_limit_without_retry_after_waits_the_floor():
    """GA's Admin API sends no Retry-After with its 403 rateLimitExceeded: wait a real while."""
    p, clock = policy()
    assert call(flaky(_http_error(gexc.Forbidden, reason="rateLimitExceeded")), policy=p,
                paced=False) == "ok"
    assert clock.sleeps[0] >= p.rate_limit_floor == 5.0
    p, clock = policy()
    call(flaky(_http_error(gexc.ServiceUnavailable)), policy=p, paced=False)
    assert clock.sleeps[0] <= p.initial  # plain server errors keep the short first backoff


def test_default_concurrency_fits_the_properties_and_gas_limits():
    from ga_sync.sync import default_concurrency
    assert [default_concurrency("apply", n) for n in (0, 1, 5, 32, 33, 40, 64, 65, 200)] == \
        [1, 1, 5, 32, 17, 20, 32, 22, 29]  # one per property; beyond 32, even rounds
    assert default_concurrency("plan", 40) == 20
    assert [default_concurrency(c, n) for c in ("report", "audit") for n in (3, 10, 11, 50)] == \
        [3, 10, 6, 10] * 2  # GA's 10 concurrent Data API requests per property


def test_the_http_pool_is_as_large_as_the_concurrency():
    conn = connect(env={"GA_SYNC_CREDENTIALS": "anonymous",
                        "GA_SYNC_ADMIN_ENDPOINT": "http://127.0.0.1:9",
                        "GA_SYNC_DATA_ENDPOINT": "http://127.0.0.1:9",
                        "GA_SYNC_QUOTA_LEDGER": "off"})
    session = conn.admin()._transport._session
    assert session.get_adapter("http://x")._pool_maxsize == 32  # the largest default
    conn.fit_pool(8)  # smaller: kept
    assert session.get_adapter("http://x")._pool_maxsize == 32
    conn.fit_pool(50)  # --concurrency 50: every worker keeps its connection
    assert session.get_adapter("http://x")._pool_maxsize == 50
    assert conn.data()._transport._session.get_adapter("https://x")._pool_maxsize == 50
    assert session.get_adapter("http://x").circuit is conn.circuit
