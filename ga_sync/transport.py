"""How requests travel: the guarded HTTP session (circuit, connect timeout, pool size), the
retry policy, and `call`, the one loop every GA request goes through.

`call` paces Admin API calls (`pacing.Pacer`), retries what is worth retrying (`answers`
says what is) and turns what is left into a GaSyncError (`answers.translate`).
"""

from __future__ import annotations

import logging
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ga_sync.answers import (ENDPOINT_ENVS, _failure_kind, _last, endpoint_of, is_rate_limit,
                             is_read_timeout, is_transient, network_kind, retry_after, translate)
from ga_sync.errors import ApiError, Cancelled
from ga_sync.pacing import Pacer

log = logging.getLogger("ga_sync.clients")

T = TypeVar("T")

#: Seconds to wait for a TCP (and TLS) connection; a hung endpoint is found out in this time,
#: not in the read timeout each call passes (30 s and more, since a big report takes a while).
CONNECT_TIMEOUT = 10.0
#: Read timeout for a request that gives none (the official clients give none by default).
READ_TIMEOUT = 60.0


class EndpointDown(Exception):
    """Raised instead of sending a request to an endpoint `Circuit` has given up on."""

    def __init__(self, host: str, failures: int, last: str):
        self.host, self.failures, self.last = host, failures, last
        super().__init__(f"{host} is down ({failures} network failures in a row, last: {last})")


@dataclass
class _HostState:
    failures: int = 0
    last: str = ""
    subjects: set[str] = field(default_factory=set)  # properties (or paths) that failed
    opened_at: float | None = None
    probing: bool = False


class Circuit:
    """Fail fast on a dead endpoint: run-wide, per endpoint host.

    After `threshold` network failures in a row (refused, reset, timed out) with no answer in
    between, concerning at least two properties (or paths), requests to that host fail at once
    with `EndpointDown` instead of each property spending its whole retry budget (a hung
    endpoint costs ~2 minutes per concurrency slot otherwise). One property whose requests
    alone fail (a proxy mangling it) never opens the circuit for the others. Any HTTP answer, even a 5xx, closes the circuit: an endpoint that answers is
    not down, and its rate limits and server errors keep their own retries. After `cooldown`
    seconds one request is let through as a probe, so a long run survives an outage.
    """

    def __init__(self, threshold: int = 3, cooldown: float = 30.0,
                 clock: Callable[[], float] = time.monotonic):
        self.threshold, self.cooldown, self.clock = threshold, cooldown, clock
        self._hosts: dict[str, _HostState] = {}
        self._lock = threading.Lock()

    def before(self, host: str) -> None:
        """Raise EndpointDown if `host` is given up on (and no probe is due)."""
        with self._lock:
            st = self._hosts.get(host)
            if st is None or st.opened_at is None:
                return
            if not st.probing and self.clock() - st.opened_at >= self.cooldown:
                st.probing = True  # this request is the probe
                return
            raise EndpointDown(host, st.failures, st.last)

    def failure(self, host: str, kind: str, subject: str = "") -> None:
        with self._lock:
            st = self._hosts.setdefault(host, _HostState())
            st.failures += 1
            st.last = kind
            st.subjects.add(subject)
            if st.failures >= self.threshold and (len(st.subjects) > 1 or st.opened_at):
                if st.opened_at is None:
                    # INFO: each request then fails with EndpointDown, whose error the command
                    # prints; the line itself is for -v
                    log.info("%s is down (%d network failures in a row, last: %s): not "
                                "sending it more requests", host, st.failures, kind)
                st.opened_at, st.probing = self.clock(), False

    def success(self, host: str) -> None:
        with self._lock:
            self._hosts.pop(host, None)

    def is_open(self, host: str) -> bool:
        with self._lock:
            st = self._hosts.get(host)
            return st is not None and st.opened_at is not None


def subject_of(url: str | None) -> str:
    """What a request is about, for `Circuit`: its property, else its path."""
    m = re.search(r"/(properties/\d+)", url or "")
    return m.group(1) if m else re.sub(r"[?#].*", "", re.sub(r"^[a-z]+://[^/]*", "", url or ""))


def _split_timeout(timeout: Any) -> Any:
    """A read timeout -> (connect, read): connecting never waits longer than CONNECT_TIMEOUT."""
    if timeout is None:
        return (CONNECT_TIMEOUT, READ_TIMEOUT)
    if isinstance(timeout, int | float):
        return (min(CONNECT_TIMEOUT, float(timeout)), float(timeout))
    return timeout


_adapter_class: Any = None


def guard_session(session: Any, circuit: Circuit, pool_size: int = 32) -> None:
    """Mount ga-sync's transport on a requests session: the circuit, the connect timeout, the
    last answer kept for error messages, and a pool of `pool_size` connections (requests keeps
    10, so more workers would open connections only to throw them away). Mounting again with a
    larger pool replaces ga-sync's adapter; a session with its own adapters (mTLS) keeps them."""
    global _adapter_class
    import requests
    from requests.adapters import HTTPAdapter

    if _adapter_class is None:
        class GuardedAdapter(HTTPAdapter):
            circuit: Circuit

            def send(self, request: Any, stream: bool = False, timeout: Any = None,
                     **kwargs: Any) -> Any:
                host = endpoint_of(request.url) or "?"
                self.circuit.before(host)
                try:
                    response = super().send(request, stream=stream,
                                            timeout=_split_timeout(timeout), **kwargs)
                except (requests.ConnectionError, requests.Timeout) as exc:
                    self.circuit.failure(host, network_kind(exc), subject_of(request.url))
                    raise
                self.circuit.success(host)
                _last.response = response
                return response

        _adapter_class = GuardedAdapter
    for prefix in ("https://", "http://"):
        current = session.get_adapter(prefix)
        if type(current) is HTTPAdapter or (type(current) is _adapter_class
                                            and current._pool_maxsize < pool_size):
            adapter = _adapter_class(pool_maxsize=pool_size)
            adapter.circuit = circuit
            session.mount(prefix, adapter)


# --------------------------------------------------------------------------- retries


@dataclass
class RetryPolicy:
    """Retries on 429, 5xx but 501, rate-limit 403s, network errors and token-endpoint
    glitches; never on others.

    Exponential backoff with full jitter, honouring Retry-After, within a bounded total time.
    An answer that cannot be parsed (HTML, cut-off JSON, wrong shape) is retried
    `malformed_retries` times only: a truncated answer can be a network glitch, but a captive
    portal or a proxy in the way answers the same every time, and a whole retry budget spent on
    it per property is wasted. A read timeout is not retried (`read_timeout_retries`). A dead
    endpoint is not retried at all once `Circuit` gives up on it.
    """

    attempts: int = 6
    initial: float = 0.5
    maximum: float = 32.0
    deadline: float = 120.0
    #: A rate-limit answer without Retry-After (GA's Admin API sends none) waits at least this:
    #: GA's quotas refill per minute, so half-second retries would only burn more quota.
    rate_limit_floor: float = 5.0
    malformed_retries: int = 1
    #: A call that connected but got no answer within its timeout (30 s Admin, 60 s Data) is
    #: not tried again: the same wait rarely ends differently, and a hung property must cost
    #: one timeout, not minutes. Refused or reset connections keep the full budget (they fail
    #: in milliseconds, and `Circuit` cuts them short when the endpoint is down).
    read_timeout_retries: int = 0
    sleep: Callable[[float], None] | None = None  # None: wait on `cancel` (Ctrl-C ends waits)
    pacer: Pacer | None = None  # Admin API quota pacing; None = unpaced
    cancel: threading.Event = field(default_factory=threading.Event)  # set: start no new call
    retried: int = 0  # retries made so far (for benchmarks and verbose output)
    rate_limited: int = 0  # of which were 429 / rate-limit 403 answers

    def wait(self, seconds: float) -> None:
        """Sleep between attempts; returns early once the run is cancelled."""
        if self.sleep is not None:
            self.sleep(seconds)
        else:
            self.cancel.wait(seconds)

    def check(self) -> None:
        if self.cancel.is_set():
            raise Cancelled("interrupted before the call was sent")

    def delay(self, attempt: int, retry_after: float | None) -> float:
        d = random.uniform(0, min(self.maximum, self.initial * 2 ** attempt))
        if retry_after is not None:
            d = max(d, retry_after)
        return d


def call(fn: Callable[[], T], *, policy: RetryPolicy, property: str | None = None,
         what: str = "call GA", write: bool = False, paced: bool = True) -> T:
    """Run `fn` with the retry policy; turn what is left into an ApiError a person can act on.

    Admin API calls (`paced`) wait for room under the quotas first, every attempt counting;
    `write` marks a create, update or delete, which also counts against the write quota.
    That planned waiting does not count against `policy.deadline`, which bounds the time lost
    to failures: with GA's 60 s windows a call may wait most of a minute before each attempt.

    Every failure leaves as a GaSyncError: ApiError (with the endpoint host, never its
    user:password), MalformedAnswer for an answer that is not one, CredentialsError when the
    credentials cannot be refreshed, Cancelled once the run is interrupted.
    """
    start = time.monotonic()
    paced_wait = 0.0
    attempt = 0
    malformed = timeouts = 0
    while True:
        policy.check()
        if paced and policy.pacer is not None:
            paced_wait += policy.pacer.acquire(write)
            policy.check()
        _last.response = None
        try:
            return fn()
        except EndpointDown as down:
            raise endpoint_down(down, property=property, what=what, tried=attempt > 0) from None
        except Exception as exc:  # noqa: BLE001 - classified below
            kind = _failure_kind(exc)
            if kind is None:
                raise
            elapsed = time.monotonic() - start - paced_wait
            if kind == "malformed":
                worth = malformed < policy.malformed_retries
            elif is_read_timeout(exc):
                worth = timeouts < policy.read_timeout_retries
            else:
                worth = is_transient(exc)
            again = attempt + 1 < policy.attempts and worth
            if again:
                wait_at_least = retry_after(exc)
                if wait_at_least is None and is_rate_limit(exc):
                    wait_at_least = policy.rate_limit_floor
                delay = policy.delay(attempt, wait_at_least)
                if elapsed + delay <= policy.deadline:
                    attempt += 1
                    malformed += kind == "malformed"
                    timeouts += is_read_timeout(exc)
                    policy.retried += 1
                    if is_rate_limit(exc):
                        policy.rate_limited += 1
                    log.info("retrying %s for %s in %.2fs after %s", what, property, delay,
                             type(exc).__name__)
                    policy.wait(delay)
                    continue
            error = translate(exc, property=property, what=what)
            if error is exc:
                raise
            raise error from exc


def endpoint_down(down: EndpointDown, *, property: str | None, what: str,
                  tried: bool) -> ApiError:
    where = f" for {property}" if property else ""
    if tried:
        outcome = "stopped retrying"
    else:
        outcome = "this property was not tried" if property else "the call was not sent"
    return ApiError(f"could not {what}{where}: the endpoint {down.host} is down ({down.failures} "
                    f"network failures in a row, the last: {down.last}); {outcome}. Check the "
                    f"connection, and {ENDPOINT_ENVS} if set.", property=property)
