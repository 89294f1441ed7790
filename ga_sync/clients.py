"""One door per API: credentials, endpoints, scopes, retries and client factories.

Every Google client ga-sync uses is built here, with the REST transport (so HTTP can be
recorded by vcrpy), a version-stamped user agent and the narrowest scope the command needs.
Heavy imports (the Google clients) happen inside functions, so `ga-sync --help` and
`ga-sync validate` start fast.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import re
import stat
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from ga_sync import __version__
from ga_sync.errors import (ApiError, Cancelled, CredentialsError, GaSyncError, MalformedAnswer,
                            QuotaExhausted)
from ga_sync.redact import excerpt, redact_url

log = logging.getLogger(__name__)

READONLY_SCOPE = "https://www.googleapis.com/auth/analytics.readonly"
EDIT_SCOPE = "https://www.googleapis.com/auth/analytics.edit"

CREDENTIALS_ENV = "GA_SYNC_CREDENTIALS"
ADMIN_ENDPOINT_ENV = "GA_SYNC_ADMIN_ENDPOINT"
DATA_ENDPOINT_ENV = "GA_SYNC_DATA_ENDPOINT"
DEFAULT_ADMIN_ENDPOINT = "https://analyticsadmin.googleapis.com"
DEFAULT_DATA_ENDPOINT = "https://analyticsdata.googleapis.com"
USER_AGENT = f"ga-sync/{__version__}"

#: 403 reasons that mean "slow down", not "no permission" (ErrorInfo.reason / errors[].reason).
RATE_LIMIT_REASONS = {"rateLimitExceeded", "userRateLimitExceeded", "RATE_LIMIT_EXCEEDED",
                      "quotaExceeded"}

T = TypeVar("T")


@dataclass
class Connection:
    """Where to send requests and as whom. Built once per command by `connect()`."""

    admin_endpoint: str = DEFAULT_ADMIN_ENDPOINT
    data_endpoint: str = DEFAULT_DATA_ENDPOINT
    scope: str = READONLY_SCOPE
    credentials: Any = None
    warnings: list[str] = field(default_factory=list)
    retry: "RetryPolicy" = field(default_factory=lambda: RetryPolicy())
    _admin: Any = None
    _data: Any = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _slots: dict[str, threading.BoundedSemaphore] = field(default_factory=dict)
    #: Endpoints that stopped answering, for the whole run (see `Circuit`).
    circuit: "Circuit" = field(default_factory=lambda: Circuit())

    def data_slot(self, property: str) -> threading.BoundedSemaphore:
        """At most 10 Data API requests in flight per property (GA's concurrency quota)."""
        with self._lock:
            if property not in self._slots:
                self._slots[property] = threading.BoundedSemaphore(DATA_CONCURRENT_PER_PROPERTY)
            return self._slots[property]

    def admin(self) -> Any:
        """The Admin API v1beta client (REST transport), built on first use."""
        with self._lock:
            if self._admin is None:
                from google.analytics.admin_v1beta import AnalyticsAdminServiceClient
                self._admin = AnalyticsAdminServiceClient(
                    credentials=self.credentials, transport="rest",
                    client_options=_client_options(self.admin_endpoint, self.scope),
                    client_info=_client_info(),
                )
                guard_session(self._admin._transport._session, self.circuit)
            return self._admin

    def data(self) -> Any:
        """The Data API v1beta client (REST transport), built on first use."""
        with self._lock:
            if self._data is None:
                from google.analytics.data_v1beta import BetaAnalyticsDataClient
                self._data = BetaAnalyticsDataClient(
                    credentials=self.credentials, transport="rest",
                    client_options=_client_options(self.data_endpoint, self.scope),
                    client_info=_client_info(),
                )
                guard_session(self._data._transport._session, self.circuit)
            return self._data


def _client_options(endpoint: str, scope: str) -> Any:
    from google.api_core.client_options import ClientOptions
    return ClientOptions(api_endpoint=endpoint, scopes=[scope])


def _client_info() -> Any:
    from google.api_core.gapic_v1.client_info import ClientInfo
    return ClientInfo(user_agent=USER_AGENT)


def connect(*, write: bool = False, env: dict[str, str] | None = None) -> Connection:
    """Build the connection for one command: endpoints from the environment, credentials, scope.

    `write=True` asks for the edit scope; every other command is read-only.
    """
    env = dict(os.environ if env is None else env)
    admin = env.get(ADMIN_ENDPOINT_ENV) or DEFAULT_ADMIN_ENDPOINT
    data = env.get(DATA_ENDPOINT_ENV) or DEFAULT_DATA_ENDPOINT
    for name, url in ((ADMIN_ENDPOINT_ENV, admin), (DATA_ENDPOINT_ENV, data)):
        if not re.match(r"^https?://[^/\s]+", url):
            shown = excerpt(re.sub(r"^[^/@\s]*@", "***@", redact_url(url)), 80)
            raise CredentialsError(f"{name}={shown!r} is not a URL: write it in full, e.g. "
                                   "http://127.0.0.1:8765 for the sandbox")
    policy = RetryPolicy()
    policy.pacer = Pacer.from_env(env, sleep=policy.wait)  # bad numbers fail before any I/O
    scope = EDIT_SCOPE if write else READONLY_SCOPE
    overridden = ADMIN_ENDPOINT_ENV in env or DATA_ENDPOINT_ENV in env
    warnings: list[str] = []
    creds = load_credentials(env.get(CREDENTIALS_ENV), scope, overridden=overridden,
                             warnings=warnings)
    return Connection(admin_endpoint=admin.rstrip("/"), data_endpoint=data.rstrip("/"),
                      scope=scope, credentials=creds, warnings=warnings, retry=policy)


def load_credentials(setting: str | None, scope: str, *, overridden: bool = False,
                     warnings: list[str] | None = None) -> Any:
    """Credentials from GA_SYNC_CREDENTIALS, or anonymous for a local endpoint, or ADC.

    The file's contents are never echoed in an error: only its path and what kind it is.
    """
    from google.auth.credentials import AnonymousCredentials

    if setting and setting.strip().lower() == "anonymous":
        return AnonymousCredentials()
    if setting:
        return _credentials_from_file(setting, scope, warnings)
    if overridden:
        return AnonymousCredentials()
    return _default_credentials(scope)


_KEY_FIX = ("Set it to the path of a service-account or authorized-user JSON key, or to "
            "'anonymous' for the sandbox.")
#: Credential types google-auth reads only through application default credentials.
_ADC_ONLY_TYPES = {"external_account", "external_account_authorized_user",
                   "impersonated_service_account", "gdch_service_account"}


def _credentials_from_file(setting: str, scope: str, warnings: list[str] | None) -> Any:
    """A service-account or authorized-user key file -> credentials; any other file is named
    for what it is (a folder, empty, not JSON, an OAuth client secret...), never quoted."""
    from google.auth.exceptions import GoogleAuthError

    try:
        path = Path(setting).expanduser()
    except RuntimeError:  # "~user" of an unknown user
        path = Path(setting)
    if path.is_dir():
        raise CredentialsError(f"{CREDENTIALS_ENV} points to {path}, which is a folder, not a "
                               f"key file. {_KEY_FIX}")
    if not path.is_file():
        raise CredentialsError(f"{CREDENTIALS_ENV} points to {path}, which is not a file. "
                               f"{_KEY_FIX}")
    if warnings is not None:
        mode = path.stat().st_mode
        if mode & (stat.S_IRGRP | stat.S_IROTH):
            warnings.append(
                f"credentials file {path} is readable by other users; restrict it with "
                f"'chmod 600 {path}'"
            )
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise CredentialsError(f"cannot read credentials file {path}: "
                               f"{(e.strerror or type(e).__name__).lower()}. {_KEY_FIX}") from None
    if not raw.strip():
        raise CredentialsError(f"credentials file {path} is empty. Download the key again "
                               "(Google Cloud console → IAM → Service accounts → Keys).")
    try:
        info = json.loads(raw)
    except ValueError:  # also UnicodeDecodeError
        raise CredentialsError(
            f"cannot read credentials file {path}: it is not readable JSON. A key file is the "
            ".json file Google Cloud downloads for a service-account key.") from None
    if not isinstance(info, dict):
        raise CredentialsError(
            f"credentials file {path} holds a JSON {_json_kind(info)}, not a key (a JSON object "
            f"with a 'type'). {_KEY_FIX}")
    if "type" not in info and ("installed" in info or "web" in info):
        client = "installed" if "installed" in info else "web"
        raise CredentialsError(
            f"credentials file {path} is an OAuth client secret (an '{client}' app's client id "
            "and secret), not a key: it names an app, not an account that can read GA. Point "
            f"{CREDENTIALS_ENV} at a service-account key, or sign in with 'gcloud auth "
            f"application-default login --client-id-file={path} --scopes={scope},openid' "
            f"and unset {CREDENTIALS_ENV}.")
    kind = info.get("type")
    try:
        if kind == "service_account":
            from google.oauth2 import service_account
            return _lookups_in_line(
                service_account.Credentials.from_service_account_info(info, scopes=[scope]))
        if kind == "authorized_user":
            from google.oauth2.credentials import Credentials
            return Credentials.from_authorized_user_info(info, scopes=[scope])
    except (ValueError, KeyError, TypeError, GoogleAuthError) as e:
        raise CredentialsError(
            f"credentials file {path} is a {kind} key but is incomplete or malformed "
            f"({type(e).__name__}); download a fresh key") from None
    if isinstance(kind, str) and kind in _ADC_ONLY_TYPES:
        raise CredentialsError(
            f"credentials file {path} is an {kind} credential, which ga-sync reads only as "
            f"application default credentials: unset {CREDENTIALS_ENV} and set "
            f"GOOGLE_APPLICATION_CREDENTIALS={path}.")
    if kind is None:
        raise CredentialsError(f"credentials file {path} is JSON without a 'type': not a "
                               f"service-account or authorized-user key. {_KEY_FIX}")
    shown = repr(excerpt(kind, 40)) if isinstance(kind, str) else f"a JSON {_json_kind(kind)}"
    raise CredentialsError(
        f"credentials file {path} has type {shown}; expected 'service_account' or "
        "'authorized_user'")


def _json_kind(value: Any) -> str:
    return {list: "list", str: "string", bool: "true/false", type(None): "null",
            dict: "object"}.get(type(value), "number")


def _default_credentials(scope: str) -> Any:
    """Application default credentials; a broken GOOGLE_APPLICATION_CREDENTIALS is named."""
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError, GoogleAuthError

    adc = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
    try:
        creds, _ = google.auth.default(scopes=[scope])
    except DefaultCredentialsError as e:
        if adc:
            raise CredentialsError(
                f"GOOGLE_APPLICATION_CREDENTIALS={redact_url(adc)} cannot be used "
                f"({excerpt(str(e), 160)}). Fix or unset it, or set {CREDENTIALS_ENV} to a "
                "service-account JSON key.") from None
        raise CredentialsError(
            f"no credentials found. Set {CREDENTIALS_ENV} to a service-account JSON key, or run "
            "'gcloud auth application-default login --scopes=" + scope + ",openid'. "
            "To try ga-sync without GA, run 'ga-sync demo'."
        ) from None
    except (GoogleAuthError, ValueError) as e:
        raise CredentialsError(
            f"the application default credentials cannot be used ({type(e).__name__}: "
            f"{excerpt(str(e), 160)}). Run 'gcloud auth application-default login --scopes="
            f"{scope},openid' again, or set {CREDENTIALS_ENV} to a service-account JSON key."
        ) from None
    return creds


def _lookups_in_line(creds: Any) -> Any:
    """Make google-auth's regional-access-boundary lookup run in the calling thread.

    Recent google-auth starts a background thread on a service account's first request to ask
    iamcredentials.googleapis.com for the credential's allowed locations. A thread of its own
    racing the calls ga-sync makes is what vcrpy cannot record reliably (the recording loses
    the API call), and a CLI gains nothing from the concurrency. Older google-auth has no such
    lookup; then this does nothing.
    """
    manager = getattr(creds, "_rab_manager", None)
    if manager is not None and hasattr(manager, "enable_blocking_lookup"):
        manager.enable_blocking_lookup()
    return creds


# --------------------------------------------------------------------------- pacing


#: GA's published Admin API quotas per user (the binding ones for one ga-sync process).
ADMIN_REQUESTS_PER_MINUTE = 600
ADMIN_WRITES_PER_MINUTE = 180
DATA_CONCURRENT_PER_PROPERTY = 10

REQUESTS_PER_MINUTE_ENV = "GA_SYNC_ADMIN_REQUESTS_PER_MINUTE"
WRITES_PER_MINUTE_ENV = "GA_SYNC_ADMIN_WRITES_PER_MINUTE"
QUOTA_WINDOW_ENV = "GA_SYNC_QUOTA_WINDOW"
MAX_PER_MINUTE = 1_000_000
QUOTA_WINDOW_RANGE = (0.1, 3600.0)  # seconds


def env_number(env: Mapping[str, str], key: str, default: float, low: float, high: float, *,
               whole: bool = False) -> float:
    """A number from the environment, checked against [low, high]; unset or empty: `default`."""
    raw = env.get(key)
    if raw is None or not raw.strip():
        return default
    allowed = (f"use {'a whole number' if whole else 'a number'} from {low:g} to {high:g}, "
               f"or unset it for {default:g}")
    try:
        value = float(raw)
    except ValueError:
        raise GaSyncError(f"{key}={excerpt(raw, 30)!r} is not a number: {allowed}.") from None
    if not (math.isfinite(value) and low <= value <= high and (value.is_integer() or not whole)):
        raise GaSyncError(f"{key}={excerpt(raw, 30)!r} is out of range: {allowed}.")
    return value


class Pacer:
    """Keeps Admin API calls under GA's per-minute quotas the way they refill.

    GA refills its quotas each minute, so a minute's worth of calls may go at once; only work
    beyond that waits, and only as long as needed: a call waits until the oldest call in the
    last window leaves it (a sliding window, which also respects any fixed window the server
    counts in). `margin` pads the window for network jitter between sending and arrival.
    """

    def __init__(self, requests_per_window: int = ADMIN_REQUESTS_PER_MINUTE,
                 writes_per_window: int = ADMIN_WRITES_PER_MINUTE, window: float = 60.0,
                 margin: float = 0.02, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        from collections import deque
        if min(requests_per_window, writes_per_window) < 1 or not 0 < window < math.inf:
            raise ValueError("a Pacer needs at least one call per window and a finite window")
        self.limits = {"requests": requests_per_window, "writes": writes_per_window}
        self.window = window * (1 + margin)
        self.clock, self.sleep = clock, sleep
        self._sent: dict[str, Any] = {k: deque() for k in self.limits}
        self._lock = threading.Lock()
        self.waited = 0.0  # total seconds spent waiting (for benchmarks and verbose output)

    @classmethod
    def from_env(cls, env: Mapping[str, str],
                 sleep: Callable[[float], None] = time.sleep) -> "Pacer":
        """GA's numbers, or GA_SYNC_ADMIN_REQUESTS_PER_MINUTE / _WRITES_PER_MINUTE /
        GA_SYNC_QUOTA_WINDOW (seconds) for a property set with other quotas or a test sandbox.

        Each must be a finite number in its range (a whole one for the counts): 0, a negative,
        nan or inf would divide by zero or wait forever, 1e30 would never pace at all.
        """
        return cls(int(env_number(env, REQUESTS_PER_MINUTE_ENV, ADMIN_REQUESTS_PER_MINUTE,
                                  1, MAX_PER_MINUTE, whole=True)),
                   int(env_number(env, WRITES_PER_MINUTE_ENV, ADMIN_WRITES_PER_MINUTE,
                                  1, MAX_PER_MINUTE, whole=True)),
                   env_number(env, QUOTA_WINDOW_ENV, 60.0, *QUOTA_WINDOW_RANGE), sleep=sleep)

    def acquire(self, write: bool) -> float:
        """Block until one more call (a write, if `write`) fits in every quota it counts against.

        Returns the seconds waited, so a caller can keep planned waiting out of its retry deadline.
        """
        buckets = ["requests", "writes"] if write else ["requests"]
        waited = 0.0
        while True:
            with self._lock:
                now = self.clock()
                wait = 0.0
                for b in buckets:
                    sent = self._sent[b]
                    while sent and sent[0] <= now - self.window:
                        sent.popleft()
                    if len(sent) >= self.limits[b]:
                        wait = max(wait, sent[0] + self.window - now)
                if wait <= 0:
                    for b in buckets:
                        self._sent[b].append(now)
                    return waited
            self.waited += wait
            waited += wait
            self.sleep(wait)


# --------------------------------------------------------------------------- transport

#: Seconds to wait for a TCP (and TLS) connection; a hung endpoint is found out in this time,
#: not in the read timeout each call passes (30 s and more, since a big report takes a while).
CONNECT_TIMEOUT = 10.0
#: Read timeout for a request that gives none (the official clients give none by default).
READ_TIMEOUT = 60.0
ENDPOINT_ENVS = f"{ADMIN_ENDPOINT_ENV} / {DATA_ENDPOINT_ENV}"
PROXY_ADVICE = (f"A proxy or captive portal may be in the way: check the connection, and "
                f"{ENDPOINT_ENVS} if set.")
#: What a message may quote of a server's own error text.
SERVER_TEXT_MAX = 300

_last = threading.local()  # the last HTTP answer this thread received (for error messages)


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
                    log.warning("%s is down (%d network failures in a row, last: %s): not "
                                "sending it more requests", host, st.failures, kind)
                st.opened_at, st.probing = self.clock(), False

    def success(self, host: str) -> None:
        with self._lock:
            self._hosts.pop(host, None)

    def is_open(self, host: str) -> bool:
        with self._lock:
            st = self._hosts.get(host)
            return st is not None and st.opened_at is not None


def endpoint_of(url: str | None) -> str | None:
    """scheme://host[:port] of a URL, without any user:password: safe to print."""
    if not url:
        return None
    m = re.match(r"^([a-zA-Z][a-zA-Z0-9+.-]*://)(?:[^/?#@]*@)?([^/?#]*)", url)
    return redact_url(m.group(1) + m.group(2)) if m else None


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


def guard_session(session: Any, circuit: Circuit) -> None:
    """Mount ga-sync's transport on a requests session: the circuit, the connect timeout, and
    the last answer kept for error messages. A session with its own adapters (mTLS) keeps them."""
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
        if type(session.get_adapter(prefix)) is HTTPAdapter:
            adapter = _adapter_class(pool_maxsize=64)
            adapter.circuit = circuit
            session.mount(prefix, adapter)


def network_kind(exc: BaseException) -> str:
    """What went wrong on the wire, in words; never the exception's text (it holds URLs)."""
    import requests
    text = str(exc).lower()
    if isinstance(exc, requests.exceptions.SSLError):
        return "TLS error: the certificate was not accepted (a proxy inspecting HTTPS?)"
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return "no connection within the connect timeout"
    if isinstance(exc, requests.exceptions.ReadTimeout) or "read timed out" in text:
        return "connected, but no answer within the timeout"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return "the answer was cut off"
    for words, kind in ((("refused",), "connection refused"),
                        (("name or service not known", "nodename nor servname",
                          "failed to resolve", "name resolution", "getaddrinfo"),
                         "host name not found"),
                        (("unreachable",), "network unreachable"),
                        (("reset", "aborted", "remotedisconnected", "without response",
                          "broken pipe"), "connection closed without an answer"),
                        (("timed out",), "timed out")):
        if any(w in text for w in words):
            return kind
    return type(exc).__name__


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


def error_reason(exc: BaseException) -> str | None:
    """ErrorInfo.reason, or the first errors[].reason, of an api-core exception."""
    reason = getattr(exc, "reason", None)
    if reason:
        return str(reason)
    for err in getattr(exc, "errors", None) or []:
        if isinstance(err, dict) and err.get("reason"):
            return str(err["reason"])
    return None


def is_rate_limit(exc: BaseException) -> bool:
    from google.api_core import exceptions as gexc
    if isinstance(exc, gexc.TooManyRequests | gexc.ResourceExhausted):
        return True
    return isinstance(exc, gexc.Forbidden) and error_reason(exc) in RATE_LIMIT_REASONS


def _status(exc: BaseException) -> int | None:
    code = getattr(exc, "code", None)
    return int(code) if isinstance(code, int) else None


def is_transient(exc: BaseException) -> bool:
    """Worth another try: rate limits, server errors but 501 (502 and 504 from a proxy too),
    timeouts, dropped or cut-off connections, and a token endpoint's network glitch."""
    import requests
    from google.api_core import exceptions as gexc
    from google.auth import exceptions as aexc
    if is_rate_limit(exc):
        return not is_long_exhaustion(exc)
    if isinstance(exc, gexc.GoogleAPICallError):
        status = _status(exc)
        return (isinstance(exc, gexc.ServerError) or (status is not None and status >= 500)) \
            and not isinstance(exc, gexc.MethodNotImplemented) and status != 501
    if isinstance(exc, requests.exceptions.SSLError):
        return False  # a certificate does not fix itself in seconds
    if isinstance(exc, aexc.TransportError):
        return True
    if isinstance(exc, aexc.RefreshError):
        return bool(getattr(exc, "retryable", False))
    return isinstance(exc, requests.ConnectionError | requests.Timeout
                      | requests.exceptions.ChunkedEncodingError)


def is_read_timeout(exc: BaseException) -> bool:
    """Connected, but no answer (or no end of it) within the call's timeout."""
    import requests
    return isinstance(exc, requests.exceptions.ReadTimeout) or (
        isinstance(exc, requests.ConnectionError) and "read timed out" in str(exc).lower())


def is_long_exhaustion(exc: BaseException) -> bool:
    """A Data API quota that refills per hour or per day: waiting seconds will not help."""
    msg = str(getattr(exc, "message", exc)).lower()
    return "exhausted" in msg and ("per hour" in msg or "per day" in msg or "per project per hour" in msg)


def retry_after(exc: BaseException) -> float | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if not headers:
        return None
    value = headers.get("Retry-After")
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    return seconds if seconds is not None and 0 <= seconds <= 3600 else None


def is_malformed(exc: BaseException) -> bool:
    """An answer that could not be parsed, by the official clients or by ga-sync's own
    `json.loads`: not JSON, cut-off JSON, not UTF-8, undecodable compression, or JSON the
    protobuf types refuse (wrong shape). Narrow on purpose: a TypeError or AttributeError is a
    bug and keeps its traceback."""
    import requests
    from google.protobuf.json_format import ParseError
    return isinstance(exc, ParseError | json.JSONDecodeError | UnicodeDecodeError
                      | requests.exceptions.ContentDecodingError
                      | requests.exceptions.InvalidJSONError)


def _failure_kind(exc: BaseException) -> str | None:
    """'malformed', 'auth', 'api' (an answer or the network); None: a bug, re-raised as is."""
    import requests
    from google.api_core import exceptions as gexc
    from google.auth import exceptions as aexc
    if is_malformed(exc) or isinstance(exc, MalformedAnswer):  # ours, raised inside `fn`
        return "malformed"
    if isinstance(exc, aexc.GoogleAuthError):
        return "auth"
    if isinstance(exc, gexc.GoogleAPIError | requests.RequestException):
        return "api"
    return None


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


def translate(exc: BaseException, *, property: str | None, what: str) -> GaSyncError:
    """An exception from a call -> a GaSyncError that says where, what and what to do."""
    import requests
    from google.api_core import exceptions as gexc

    where = f" for {property}" if property else ""
    if isinstance(exc, GaSyncError):
        return exc
    if is_malformed(exc):
        return _malformed(exc, where=where, property=property, what=what)
    if _failure_kind(exc) == "auth":
        return _auth_failure(exc, where=where, property=property, what=what)
    if isinstance(exc, requests.RequestException):
        url = getattr(getattr(exc, "request", None), "url", None)
        host = endpoint_of(url)
        target = f" talking to {host}" if host else ""
        return ApiError(f"could not {what}{where}: network error{target} ({network_kind(exc)})."
                        f" Check the connection, and {ENDPOINT_ENVS} if set.", property=property)
    status = _status(exc)
    response = getattr(exc, "response", None)
    if _answered(response) and not _is_google_error(response):
        return _not_ga(response, where=where, property=property, what=what)
    message = getattr(exc, "message", None) or str(exc)
    # api-core prefixes REST errors with "GET https://...?%24alt=...: "; the reader needs GA's words
    message = re.sub(r"^(GET|POST|PATCH|PUT|DELETE) \S+: ", "", str(message))
    message = excerpt(message, SERVER_TEXT_MAX)
    reason = error_reason(exc)
    if is_long_exhaustion(exc):
        return QuotaExhausted(f"GA quota used up{where}: {message} Try again later (the quota "
                              "refills hourly or daily).", property=property, status=status,
                              reason=reason)
    if is_rate_limit(exc):
        return ApiError(f"GA kept answering 'rate limit exceeded'{where} while trying to {what}, "
                        "even after retries. Lower --concurrency or try again in a minute.",
                        property=property, status=status, reason=reason)
    if isinstance(exc, gexc.Unauthorized):
        if response is not None and not _sent_credentials(response):
            return _wants_credentials(response, where=where, property=property, what=what)
        return ApiError(f"GA rejected the credentials{where}: {message} Check "
                        f"{CREDENTIALS_ENV} or run 'gcloud auth application-default login'.",
                        property=property, status=status, reason=reason)
    if isinstance(exc, gexc.Forbidden | gexc.PermissionDenied):
        role = "Editor" if "create" in what or "update" in what or "delete" in what else "Viewer"
        return ApiError(f"no permission to {what}{where}: {message} Give the account the {role} "
                        "role on the property (GA4 Admin → Property access management).",
                        property=property, status=status, reason=reason)
    if isinstance(exc, gexc.NotFound):
        return ApiError(f"not found while trying to {what}{where}: {message} Check the property "
                        "id ('ga-sync properties' lists the ones the credentials can see).",
                        property=property, status=status, reason=reason)
    if status is not None and status >= 500:
        return ApiError(f"GA failed to {what}{where} (HTTP {status}, even after retries): "
                        f"{message} Try again later.", property=property, status=status,
                        reason=reason)
    return ApiError(f"GA refused to {what}{where}: {message}", property=property, status=status,
                    reason=reason)


# ----------------------------------------------------------------- answers that are not GA's


def _answered(response: Any) -> bool:
    """A real HTTP answer whose body has been read (api-core reads it to build its error)."""
    return (isinstance(getattr(response, "status_code", None), int)
            and isinstance(getattr(response, "_content", None), bytes))


def _body(response: Any) -> bytes:
    """The body already read, or nothing: never reads from the network."""
    content = getattr(response, "_content", None)
    return content if isinstance(content, bytes) else b""


def _is_html(response: Any) -> bool:
    content_type = str(getattr(response, "headers", {}).get("Content-Type", "")).lower()
    head = _body(response)[:256].lstrip().lower()
    return "html" in content_type or head.startswith((b"<!doctype", b"<html", b"<head", b"<body"))


def _is_google_error(response: Any) -> bool:
    """Google's error envelope: {"error": {"code", "message", "status", ...}}."""
    try:
        payload = json.loads(_body(response))
    except ValueError:
        return False
    return isinstance(payload, dict) and isinstance(payload.get("error"), dict)


def _html_title(response: Any) -> str:
    import html
    m = re.search(rb"<title[^>]*>(.*?)</title>", _body(response)[:65536], re.I | re.S)
    if not m:
        return ""
    title = excerpt(html.unescape(m.group(1).decode("utf-8", "replace")))
    return f" (its title: {title!r})" if title else ""


def _host_of(response: Any) -> str:
    url = getattr(getattr(response, "request", None), "url", None) or getattr(response, "url", None)
    return endpoint_of(url) or "the endpoint"


def _not_ga(response: Any, *, where: str, property: str | None, what: str) -> ApiError:
    """An HTTP error whose body is not Google's error envelope: a proxy, a load balancer, a
    captive portal or the wrong server answered. Never quoted raw: an HTML page is named by its
    title, other text is redacted and cut short."""
    status = response.status_code
    host = _host_of(response)
    if _is_html(response):
        came = f"with an HTML page, not a GA answer{_html_title(response)}"
    elif _body(response).strip():
        came = (f"with text that is not a GA answer: "
                f"{excerpt(_body(response).decode('utf-8', 'replace'))!r}")
    else:
        came = "with an empty body, not a GA answer"
    transient = status >= 500 and status != 501
    then = " (even after retries)" if transient else ""
    return MalformedAnswer(f"could not {what}{where}: the endpoint {host} answered HTTP {status} "
                           f"{came}{then}. {PROXY_ADVICE}", property=property, status=status)


def _malformed(exc: BaseException, *, where: str, property: str | None,
               what: str) -> MalformedAnswer:
    """An answer that could not be parsed -> what came back, shortly, and where from."""
    response = getattr(_last, "response", None)
    body = _body(response) if response is not None else b""
    if not body and isinstance(exc, json.JSONDecodeError):
        body = str(exc.doc).encode("utf-8", "replace")
    if not body and isinstance(exc, UnicodeDecodeError) and isinstance(exc.object, bytes):
        body = exc.object
    host = _host_of(response) if response is not None else "the endpoint"
    status = f"HTTP {response.status_code} " if response is not None else ""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if response is not None and _is_html(response):
        came = f"an HTML page{_html_title(response)}"
    elif text is None or isinstance(exc, UnicodeDecodeError):
        came = f"{len(body)} bytes that are not UTF-8 text" if body else "bytes that are not text"
    elif not text.strip():
        came = "an empty body"
    elif _is_parse_of_json(exc):
        came = f"text that is not JSON or is cut off: {excerpt(text)!r}"
    else:
        came = f"JSON of the wrong shape ({excerpt(str(exc), 100)})"
    return MalformedAnswer(f"could not {what}{where}: {host} answered {status}with {came}, not "
                           f"a GA answer. {PROXY_ADVICE}", property=property,
                           status=getattr(response, "status_code", None))


def _is_parse_of_json(exc: BaseException) -> bool:
    """The text itself is not JSON (as opposed to JSON of the wrong shape)."""
    return isinstance(exc, json.JSONDecodeError) or "Failed to load JSON" in str(exc)


# ----------------------------------------------------------------- credentials during a call


def _sent_credentials(response: Any) -> bool:
    headers = getattr(getattr(response, "request", None), "headers", None) or {}
    return "Authorization" in headers or "authorization" in headers


def _wants_credentials(response: Any, *, where: str, property: str | None,
                       what: str) -> ApiError:
    return ApiError(f"could not {what}{where}: the endpoint {_host_of(response)} wants "
                    f"credentials (it answered HTTP 401) and none were sent. Set "
                    f"{CREDENTIALS_ENV} to a service-account or authorized-user JSON key file "
                    f"({CREDENTIALS_ENV}=anonymous, or an endpoint override without it, sends "
                    "none).", property=property, status=401)


def _auth_failure(exc: BaseException, *, where: str, property: str | None,
                  what: str) -> GaSyncError:
    """A google-auth failure while calling: refresh refused, token endpoint unreachable, or
    anonymous credentials asked to refresh after a 401. Its text is redacted, never raw."""
    from google.auth import exceptions as aexc
    response = getattr(_last, "response", None)
    if response is not None and getattr(response, "status_code", None) == 401 \
            and not _sent_credentials(response):
        return _wants_credentials(response, where=where, property=property, what=what)
    detail = excerpt(str(exc.args[0]) if exc.args else type(exc).__name__, 160)
    if isinstance(exc, aexc.TransportError):
        return ApiError(f"could not {what}{where}: network error reaching Google's sign-in "
                        f"service to refresh the credentials ({detail}). Check the connection.",
                        property=property)
    if isinstance(exc, aexc.RefreshError):
        return CredentialsError(
            f"could not {what}{where}: the credentials could not be refreshed ({detail}). A "
            "revoked or expired sign-in: run 'gcloud auth application-default login' again; "
            f"a deleted or disabled service-account key: download a new one and point "
            f"{CREDENTIALS_ENV} at it.")
    return CredentialsError(f"could not {what}{where}: the credentials cannot be used "
                            f"({type(exc).__name__}: {detail}). Check {CREDENTIALS_ENV}, or run "
                            "'gcloud auth application-default login'.")
