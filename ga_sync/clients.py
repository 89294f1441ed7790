"""One door per API: credentials, endpoints, scopes and client factories.

Every Google client ga-sync uses is built here, with the REST transport (so HTTP can be
recorded by vcrpy), a version-stamped user agent and the narrowest scope the command needs.
Heavy imports (the Google clients) happen inside functions, so `ga-sync --help` and
`ga-sync validate` start fast.

The steps a request takes live beside it: `pacing` (GA's per-minute quotas, shared across
processes), `transport` (the guarded session, retries, `call`), `answers` (what an answer means
and the message a failure becomes). Their public names are re-exported here.
"""

from __future__ import annotations

import json
import logging
import os
import re
import stat
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ga_sync import __version__
from ga_sync.answers import (ENDPOINT_ENVS, PROXY_ADVICE, RATE_LIMIT_REASONS, SERVER_TEXT_MAX,
                             endpoint_of, error_reason, is_long_exhaustion, is_malformed,
                             is_rate_limit, is_read_timeout, is_transient, network_kind,
                             retry_after, translate)
from ga_sync.errors import CredentialsError
from ga_sync.pacing import (ADMIN_REQUESTS_PER_MINUTE, ADMIN_WRITES_PER_MINUTE,
                            DATA_CONCURRENT_PER_PROPERTY, MAX_PER_MINUTE, QUOTA_WINDOW_RANGE, Pacer,
                            QuotaLedger, env_number, ledger_path)
from ga_sync.redact import excerpt, redact_url
from ga_sync.settings import ADMIN_ENDPOINT_ENV, CREDENTIALS_ENV, DATA_ENDPOINT_ENV
from ga_sync.transport import (CONNECT_TIMEOUT, READ_TIMEOUT, Circuit, EndpointDown, RetryPolicy,
                               _split_timeout, call, endpoint_down, guard_session, subject_of)

log = logging.getLogger(__name__)

#: Names other modules import from here (the steps now live in pacing, transport, answers).
__all__ = [
    "ADMIN_ENDPOINT_ENV", "ADMIN_REQUESTS_PER_MINUTE", "ADMIN_WRITES_PER_MINUTE",
    "CONNECT_TIMEOUT", "CREDENTIALS_ENV", "Circuit", "Connection", "DATA_CONCURRENT_PER_PROPERTY",
    "DATA_ENDPOINT_ENV", "DEFAULT_ADMIN_ENDPOINT", "DEFAULT_DATA_ENDPOINT", "EDIT_SCOPE",
    "ENDPOINT_ENVS", "EndpointDown", "MAX_PER_MINUTE", "PROXY_ADVICE", "Pacer",
    "QUOTA_WINDOW_RANGE", "QuotaLedger", "RATE_LIMIT_REASONS", "READONLY_SCOPE", "READ_TIMEOUT",
    "RetryPolicy", "SERVER_TEXT_MAX", "USER_AGENT", "call", "connect", "endpoint_down",
    "endpoint_of", "env_number", "error_reason", "guard_session", "identity",
    "is_long_exhaustion", "is_malformed", "is_rate_limit", "is_read_timeout", "is_transient",
    "load_credentials", "network_kind", "retry_after", "subject_of", "translate",
    "_split_timeout",
]

READONLY_SCOPE = "https://www.googleapis.com/auth/analytics.readonly"
EDIT_SCOPE = "https://www.googleapis.com/auth/analytics.edit"

DEFAULT_ADMIN_ENDPOINT = "https://analyticsadmin.googleapis.com"
DEFAULT_DATA_ENDPOINT = "https://analyticsdata.googleapis.com"
USER_AGENT = f"ga-sync/{__version__}"

#: HTTP connections kept per API client, at least: as many as the largest default concurrency
#: (`sync.default_concurrency`); `Connection.fit_pool` raises it for a larger --concurrency.
POOL_SIZE = 32


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
    _admin_alpha: Any = None
    _data: Any = None
    _data_alpha: Any = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _slots: dict[str, threading.BoundedSemaphore] = field(default_factory=dict)
    #: Endpoints that stopped answering, for the whole run (see `Circuit`).
    circuit: "Circuit" = field(default_factory=lambda: Circuit())
    #: HTTP connections each client keeps (see `fit_pool`).
    pool_size: int = POOL_SIZE

    def fit_pool(self, concurrency: int) -> None:
        """Keep at least `concurrency` connections per client, so no worker opens one that is
        then thrown away (requests' default pool keeps 10)."""
        with self._lock:
            if concurrency <= self.pool_size:
                return
            self.pool_size = concurrency
            for client in (self._admin, self._admin_alpha, self._data, self._data_alpha):
                if client is not None:
                    guard_session(client._transport._session, self.circuit, self.pool_size)

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
                guard_session(self._admin._transport._session, self.circuit, self.pool_size)
            return self._admin

    def admin_alpha(self) -> Any:
        """The Admin API v1alpha client (REST transport), built on first use: event create
        rules, audiences, data streams, change history and reporting data annotations, which
        GA offers only (or first) there."""
        with self._lock:
            if self._admin_alpha is None:
                from google.analytics.admin_v1alpha import AnalyticsAdminServiceClient
                self._admin_alpha = AnalyticsAdminServiceClient(
                    credentials=self.credentials, transport="rest",
                    client_options=_client_options(self.admin_endpoint, self.scope),
                    client_info=_client_info(),
                )
                guard_session(self._admin_alpha._transport._session, self.circuit,
                              self.pool_size)
            return self._admin_alpha

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
                guard_session(self._data._transport._session, self.circuit, self.pool_size)
            return self._data

    def data_alpha(self) -> Any:
        """The Data API v1alpha client (REST transport), built on first use: funnel reports
        (`runFunnelReport`), which GA offers only there."""
        with self._lock:
            if self._data_alpha is None:
                from google.analytics.data_v1alpha import AlphaAnalyticsDataClient
                self._data_alpha = AlphaAnalyticsDataClient(
                    credentials=self.credentials, transport="rest",
                    client_options=_client_options(self.data_endpoint, self.scope),
                    client_info=_client_info(),
                )
                guard_session(self._data_alpha._transport._session, self.circuit,
                              self.pool_size)
            return self._data_alpha


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
    path = ledger_path(env)
    if path is not None:
        policy.pacer.share(QuotaLedger(path, f"{identity(creds)} {admin.rstrip('/')}"))
    return Connection(admin_endpoint=admin.rstrip("/"), data_endpoint=data.rstrip("/"),
                      scope=scope, credentials=creds, warnings=warnings, retry=policy)


def identity(creds: Any) -> str:
    """Whose quota a call spends, for the shared quota ledger: GA counts per user (a service
    account's email, a signed-in user's OAuth client) and project. Never a secret."""
    from google.auth.credentials import AnonymousCredentials

    if isinstance(creds, AnonymousCredentials):
        return "anonymous"
    email = getattr(creds, "service_account_email", None)
    if isinstance(email, str) and email and email != "default":
        return f"service-account:{email}"
    project = getattr(creds, "quota_project_id", None) or ""
    client_id = getattr(creds, "client_id", None)
    if isinstance(client_id, str) and client_id:
        return f"user:{client_id}:{project}"
    return f"adc:{type(creds).__name__}:{project}"


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
