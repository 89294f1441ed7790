"""One door per API: credentials, endpoints, scopes, retries and client factories.

Every Google client ga-sync uses is built here, with the REST transport (so HTTP can be
recorded by vcrpy), a version-stamped user agent and the narrowest scope the command needs.
Heavy imports (the Google clients) happen inside functions, so `ga-sync --help` and
`ga-sync validate` start fast.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from ga_sync import __version__
from ga_sync.errors import ApiError, Cancelled, CredentialsError, QuotaExhausted

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
            raise CredentialsError(f"{name}={url!r} is not a URL: write it in full, e.g. "
                                   "http://127.0.0.1:8765 for the sandbox")
    scope = EDIT_SCOPE if write else READONLY_SCOPE
    overridden = ADMIN_ENDPOINT_ENV in env or DATA_ENDPOINT_ENV in env
    warnings: list[str] = []
    creds = load_credentials(env.get(CREDENTIALS_ENV), scope, overridden=overridden,
                             warnings=warnings)
    policy = RetryPolicy()
    policy.pacer = Pacer.from_env(env, sleep=policy.wait)
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
        path = Path(setting).expanduser()
        if not path.is_file():
            raise CredentialsError(
                f"{CREDENTIALS_ENV} points to {path}, which is not a file. Set it to the path of a "
                "service-account or authorized-user JSON key, or to 'anonymous' for the sandbox."
            )
        if warnings is not None:
            mode = path.stat().st_mode
            if mode & (stat.S_IRGRP | stat.S_IROTH):
                warnings.append(
                    f"credentials file {path} is readable by other users; restrict it with "
                    f"'chmod 600 {path}'"
                )
        try:
            info = json.loads(path.read_text())
        except (OSError, ValueError):
            raise CredentialsError(
                f"cannot read credentials file {path}: it is not readable JSON") from None
        kind = info.get("type") if isinstance(info, dict) else None
        try:
            if kind == "service_account":
                from google.oauth2 import service_account
                return _lookups_in_line(
                    service_account.Credentials.from_service_account_info(info, scopes=[scope]))
            if kind == "authorized_user":
                from google.oauth2.credentials import Credentials
                return Credentials.from_authorized_user_info(info, scopes=[scope])
        except (ValueError, KeyError) as e:
            raise CredentialsError(
                f"credentials file {path} is a {kind} key but is incomplete or malformed "
                f"({type(e).__name__}); download a fresh key") from None
        raise CredentialsError(
            f"credentials file {path} has type {kind!r}; expected 'service_account' or "
            "'authorized_user'")
    if overridden:
        return AnonymousCredentials()
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError
    try:
        creds, _ = google.auth.default(scopes=[scope])
    except DefaultCredentialsError:
        raise CredentialsError(
            f"no credentials found. Set {CREDENTIALS_ENV} to a service-account JSON key, or run "
            "'gcloud auth application-default login --scopes=" + scope + ",openid'. "
            "To try ga-sync without GA, run 'ga-sync demo'."
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
        self.limits = {"requests": requests_per_window, "writes": writes_per_window}
        self.window = window * (1 + margin)
        self.clock, self.sleep = clock, sleep
        self._sent: dict[str, Any] = {k: deque() for k in self.limits}
        self._lock = threading.Lock()
        self.waited = 0.0  # total seconds spent waiting (for benchmarks and verbose output)

    @classmethod
    def from_env(cls, env: dict[str, str],
                 sleep: Callable[[float], None] = time.sleep) -> "Pacer":
        """GA's numbers, or GA_SYNC_ADMIN_REQUESTS_PER_MINUTE / _WRITES_PER_MINUTE /
        GA_SYNC_QUOTA_WINDOW (seconds) for a property set with other quotas or a test sandbox."""
        def num(key: str, default: float) -> float:
            try:
                return float(env.get(key, default))
            except ValueError:
                raise CredentialsError(f"{key}={env[key]!r} is not a number") from None
        return cls(int(num("GA_SYNC_ADMIN_REQUESTS_PER_MINUTE", ADMIN_REQUESTS_PER_MINUTE)),
                   int(num("GA_SYNC_ADMIN_WRITES_PER_MINUTE", ADMIN_WRITES_PER_MINUTE)),
                   num("GA_SYNC_QUOTA_WINDOW", 60.0), sleep=sleep)

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


# --------------------------------------------------------------------------- retries


@dataclass
class RetryPolicy:
    """Retries on 429, 500, 503, 504, rate-limit 403s and network errors; never on others.

    Exponential backoff with full jitter, honouring Retry-After, within a bounded total time.
    """

    attempts: int = 6
    initial: float = 0.5
    maximum: float = 32.0
    deadline: float = 120.0
    #: A rate-limit answer without Retry-After (GA's Admin API sends none) waits at least this:
    #: GA's quotas refill per minute, so half-second retries would only burn more quota.
    rate_limit_floor: float = 5.0
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


def is_transient(exc: BaseException) -> bool:
    """Worth another try: rate limits, server errors, timeouts and dropped connections."""
    import requests
    from google.api_core import exceptions as gexc
    if is_rate_limit(exc):
        return not is_long_exhaustion(exc)
    return isinstance(exc, gexc.InternalServerError | gexc.ServiceUnavailable
                      | gexc.GatewayTimeout | gexc.DeadlineExceeded
                      | requests.ConnectionError | requests.Timeout)


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
        return float(value) if value is not None else None
    except ValueError:
        return None


def call(fn: Callable[[], T], *, policy: RetryPolicy, property: str | None = None,
         what: str = "call GA", write: bool = False, paced: bool = True) -> T:
    """Run `fn` with the retry policy; turn what is left into an ApiError a person can act on.

    Admin API calls (`paced`) wait for room under the quotas first, every attempt counting;
    `write` marks a create, update or delete, which also counts against the write quota.
    That planned waiting does not count against `policy.deadline`, which bounds the time lost
    to failures: with GA's 60 s windows a call may wait most of a minute before each attempt.
    """
    start = time.monotonic()
    paced_wait = 0.0
    attempt = 0
    while True:
        policy.check()
        if paced and policy.pacer is not None:
            paced_wait += policy.pacer.acquire(write)
            policy.check()
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - classified below
            if not _is_api_exception(exc):
                raise
            elapsed = time.monotonic() - start - paced_wait
            if is_transient(exc) and attempt + 1 < policy.attempts:
                wait_at_least = retry_after(exc)
                if wait_at_least is None and is_rate_limit(exc):
                    wait_at_least = policy.rate_limit_floor
                delay = policy.delay(attempt, wait_at_least)
                if elapsed + delay <= policy.deadline:
                    attempt += 1
                    policy.retried += 1
                    if is_rate_limit(exc):
                        policy.rate_limited += 1
                    log.info("retrying %s for %s in %.2fs after %s", what, property, delay,
                             type(exc).__name__)
                    policy.wait(delay)
                    continue
            raise translate(exc, property=property, what=what) from exc


def _is_api_exception(exc: BaseException) -> bool:
    import requests
    from google.api_core import exceptions as gexc
    return isinstance(exc, gexc.GoogleAPIError | requests.RequestException)


def translate(exc: BaseException, *, property: str | None, what: str) -> ApiError:
    """An api-core exception -> an ApiError that says which property and what to do."""
    import requests
    from google.api_core import exceptions as gexc

    where = f" for {property}" if property else ""
    code = getattr(exc, "code", None)
    status = int(code) if isinstance(code, int) else None
    message = getattr(exc, "message", None) or str(exc)
    # api-core prefixes REST errors with "GET https://...?%24alt=...: "; the reader needs GA's words
    message = re.sub(r"^(GET|POST|PATCH|PUT|DELETE) \S+: ", "", str(message))
    reason = error_reason(exc)
    if isinstance(exc, requests.RequestException):
        url = getattr(getattr(exc, "request", None), "url", None) or ""
        host = re.match(r"^[a-z]+://[^/]+", url)
        target = f" at {host.group(0)}" if host else ""
        return ApiError(f"could not {what}{where}: network error{target} "
                        f"({type(exc).__name__}). Check the connection, and "
                        f"{ADMIN_ENDPOINT_ENV} / {DATA_ENDPOINT_ENV} if set.", property=property)
    if is_long_exhaustion(exc):
        return QuotaExhausted(f"GA quota used up{where}: {message} Try again later (the quota "
                              "refills hourly or daily).", property=property, status=status,
                              reason=reason)
    if is_rate_limit(exc):
        return ApiError(f"GA kept answering 'rate limit exceeded'{where} while trying to {what}, "
                        "even after retries. Lower --concurrency or try again in a minute.",
                        property=property, status=status, reason=reason)
    if isinstance(exc, gexc.Unauthorized):
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
    return ApiError(f"GA refused to {what}{where}: {message}", property=property, status=status,
                    reason=reason)
