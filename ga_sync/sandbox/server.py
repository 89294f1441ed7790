"""The sandbox's HTTP server: GA4's Admin and Data APIs on localhost, for the official clients.

Point a client at it with `transport="rest"`, `AnonymousCredentials()` and
`client_options={"api_endpoint": server.url}`. Routes come from `admin_api.ROUTES` followed by
`data_api.ROUTES` (read at each request, so the Data API module can grow independently). Every
error, including unknown paths and malformed JSON, is answered in Google's JSON error envelope.
The state file, if any, is written after each successful write.

Control API (not GA; for seeding a sandbox that runs in another process, e.g. `ga-sync sandbox`):

- `GET  /_sandbox/health`     -> {"status": "ok", "accounts": N, "properties": N}
- `GET  /_sandbox/stats`      -> request counters (see `ServerStats`)
- `POST /_sandbox/accounts`   body {"display_name": ...} -> {"name": "accounts/N"}
- `POST /_sandbox/properties` body: the keyword arguments of `SandboxState.add_property`
  (`property_id`, `display_name`, `account`, `time_zone`, `currency_code`, `service_level`,
  `event_data_retention`, `traffic`, `default_key_events`) plus `denied` (bool: every GA request
  for it answers 403) -> the property as stored (without `traffic`)
- `POST /_sandbox/reset`      -> {} (forgets every account and property)
- `POST /_sandbox/token`      an OAuth 2.0 token endpoint for credentials whose `token_uri`
  points here: the JWT-bearer grant (service-account keys) and the refresh-token grant
  (authorized-user files), answering {"access_token", "expires_in", "token_type"}. Signatures
  and secrets are not checked, but scopes are kept: a caller with only the read-only scope
  gets GA's 403 ACCESS_TOKEN_SCOPE_INSUFFICIENT on a write, as the real API does.

Control requests are never delayed, faulted or counted against quotas; reset also clears the
quota counters and `stats`.

Misbehaving on purpose (see faults.py), all off except quotas by default:

- `latency_ms`: every GA request sleeps this long (inside its Data API concurrency slot).
- `fault_rate` + `seed`: that share of GA requests answers 503 UNAVAILABLE or 429
  RESOURCE_EXHAUSTED; for a write, half of the faults are lost responses (applied, then 503).
- `quotas`: a `QuotaLimits` (GA's numbers by default; None turns enforcement off). Admin API
  requests are counted per minute (fixed windows of `window_s`) per project and per user (the
  Authorization header's token, else "anonymous"); Data API requests per property: concurrent
  requests and tokens per hour/day at `data_tokens_per_request` each. Exhausted -> 429
  RESOURCE_EXHAUSTED with Google's message and a Retry-After header.
- `stats`: a `ServerStats` with the number of requests, rate-limit answers and faults.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import secrets
import threading
from collections import Counter
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Mapping
from urllib.parse import parse_qs, unquote, urlsplit

from ga_sync.sandbox import admin_api, admin_resources, changes, machinery
from ga_sync.sandbox import bigquery, data_api, reports_api
from ga_sync.sandbox.faults import (
    LOST_RESPONSE,
    UNAVAILABLE,
    FaultInjector,
    QuotaLimits,
    QuotaTracker,
    ServerStats,
)
from ga_sync.sandbox.routing import ApiError, Route
from ga_sync.sandbox.state import SandboxState

log = logging.getLogger("ga_sync.sandbox")

READONLY_SCOPE = "https://www.googleapis.com/auth/analytics.readonly"
EDIT_SCOPE = "https://www.googleapis.com/auth/analytics.edit"
FULL_SCOPE = "https://www.googleapis.com/auth/analytics"
BIGQUERY_SCOPES = ("https://www.googleapis.com/auth/bigquery",
                   "https://www.googleapis.com/auth/bigquery.readonly",
                   "https://www.googleapis.com/auth/cloud-platform",
                   "https://www.googleapis.com/auth/cloud-platform.read-only")

Answer = tuple[int, dict[str, Any], dict[str, str]]

_DATA_PID = re.compile(r"^/v1(?:beta|alpha)/properties/([^/:]+)")
#: Data API calls: `:runReport`, `:runFunnelReport`, `:batchRunReports`, `:checkCompatibility`
#: ... and `/metadata` (an Admin `:archive` on v1alpha audiences is not one).
_DATA_CALL = re.compile(r"^/v1(?:beta|alpha)/properties/[^/:]+(?::(?:run|batchRun|check)\w*|"
                        r"/metadata)$")
_DEFAULT_QUOTAS = QuotaLimits()

_ADD_PROPERTY_FIELDS = ("property_id", "display_name", "account", "time_zone", "currency_code",
                        "service_level", "event_data_retention", "traffic", "default_key_events")


def default_routes() -> list[Route]:
    """The Admin API routes, then the Data API's (looked up now, so late additions are seen)."""
    return (list(admin_api.ROUTES) + list(admin_resources.ROUTES) + list(machinery.ROUTES)
            + list(changes.ROUTES) + list(data_api.ROUTES) + list(reports_api.ROUTES)
            + list(bigquery.ROUTES))


def _jwt_claims(token: str) -> dict[str, Any] | None:
    """The claims of a JWT (signature not checked: the sandbox trusts its callers), or None."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except ValueError:
        return None
    return claims if isinstance(claims, dict) else None


def _user(headers: Mapping[str, str]) -> str:
    """Who a request counts against for per-user quotas: its OAuth token, or "anonymous"."""
    auth = headers.get("Authorization") or ""
    return auth.split(" ", 1)[-1].strip() or "anonymous"


def _bad_json(raw: bytes) -> ApiError:
    snippet = raw[:80].decode("utf-8", "replace")
    return ApiError(400, f"Invalid JSON payload received. Unexpected token.\n{snippet}\n^")


class SandboxServer:
    """A GA4 emulator on `host:port` (port 0 picks a free one), serving `state`.

    `routes` replaces the default Admin + Data API routes (for tests). The misbehaviour options
    are described in the module docstring.
    """

    def __init__(self, state: SandboxState, host: str = "127.0.0.1", port: int = 0,
                 routes: list[Route] | None = None, *, latency_ms: float = 0.0, fault_rate: float = 0.0,
                 seed: int | None = None, quotas: QuotaLimits | None = _DEFAULT_QUOTAS) -> None:
        self.state = state
        self._routes = routes
        self.latency_ms = latency_ms
        self.faults = FaultInjector(fault_rate, seed)
        self.quota: QuotaTracker | None = QuotaTracker(quotas) if quotas is not None else None
        self.stats = ServerStats()
        self.token_scopes: dict[str, list[str]] = {}  # credentials seen, with their scopes
        self.token_actors: dict[str, str] = {}  # tokens issued to a service account: its e-mail
        self.scopes_seen: Counter[str] = Counter()  # GA requests by the scopes they carried
        self._tokens_lock = threading.Lock()
        # A listen backlog of 128, not socketserver's 5: 16-32 clients connecting at once
        # overflowed 5 and stalled a second in SYN retries.
        self._httpd = type("SandboxHTTPServer", (ThreadingHTTPServer,), {"request_queue_size": 128})(
            (host, port), _RequestHandler)
        self._httpd.daemon_threads = True
        self._httpd.sandbox = self  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None

    # ---- lifecycle ---------------------------------------------------------------------------

    @property
    def host(self) -> str:
        return str(self._httpd.server_address[0])

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """The base URL to give a client as `api_endpoint`, e.g. `http://127.0.0.1:8080`."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> "SandboxServer":
        """Serve in a background (daemon) thread; returns self."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                            name="ga-sync-sandbox", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close the socket and save the state file."""
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        self._httpd.server_close()
        self.state.save()

    def __enter__(self) -> "SandboxServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- dispatch ----------------------------------------------------------------------------

    def routes(self) -> list[Route]:
        return self._routes if self._routes is not None else default_routes()

    def dispatch(self, method: str, path: str, query: dict[str, list[str]], raw: bytes,
                 headers: Mapping[str, str]) -> Answer:
        """Answer one request: (status, JSON body, extra headers). Never raises."""
        try:
            if method == "POST" and path == "/_sandbox/token":
                return self._token(raw)
            if path.startswith("/_sandbox/"):
                return self._control(method, path, raw)
            self._check_scope(method, path, headers)
            return self._ga(method, path, query, raw, headers)
        except ApiError as err:
            return err.code, err.envelope(), err.headers
        except Exception:  # a sandbox bug: answer like Google's 500, keep the traceback in the log
            log.exception("sandbox error on %s %s", method, path)
            err = ApiError(500, "Internal error encountered.")
            return err.code, err.envelope(), {}

    def _find(self, method: str, path: str) -> tuple[Route, Any]:
        for r in self.routes():
            if r.method == method:
                m = r.pattern.match(path)
                if m:
                    return r, m
        raise ApiError(404, f"The requested URL {path} was not found on this server.")

    def _token(self, raw: bytes) -> Answer:
        """Issue an access token for a JWT-bearer or refresh-token grant, keeping its scopes."""
        form = parse_qs(raw.decode("utf-8", "replace"))
        grant = form.get("grant_type", [""])[0]
        if grant == "urn:ietf:params:oauth:grant-type:jwt-bearer":
            claims = _jwt_claims(form.get("assertion", [""])[0])
            if claims is None:
                return 400, {"error": "invalid_grant", "error_description": "Invalid JWT."}, {}
            scopes = str(claims.get("scope", "")).split()
        elif grant == "refresh_token":
            if not form.get("refresh_token") or not form.get("client_id"):
                return 400, {"error": "invalid_request",
                             "error_description": "Missing refresh_token or client_id."}, {}
            scopes = " ".join(form.get("scope", [])).split()
        else:
            return 400, {"error": "unsupported_grant_type",
                         "error_description": f"Grant type {grant!r} is not emulated."}, {}
        token = "ya29.sandbox-" + secrets.token_urlsafe(24)
        with self._tokens_lock:
            self.token_scopes[token] = scopes
            if grant == "urn:ietf:params:oauth:grant-type:jwt-bearer":
                email = changes.jwt_email(form.get("assertion", [""])[0])
                if email:
                    self.token_actors[token] = email
        answer = {"access_token": token, "expires_in": 3599, "token_type": "Bearer"}
        if scopes:
            answer["scope"] = " ".join(scopes)
        return 200, answer, {}

    def _check_scope(self, method: str, path: str, headers: Mapping[str, str]) -> None:
        """A caller may only do what its OAuth scopes allow, as GA enforces.

        The scopes come from a token this sandbox issued, or from the `scope` claim of a
        self-signed service-account JWT (what Google's clients send for service accounts).
        Anonymous callers and opaque tokens from elsewhere (user ids in the quota tests) pass.
        """
        auth = headers.get("Authorization") or ""
        if not auth.startswith("Bearer "):
            return
        credential = auth[len("Bearer "):]
        with self._tokens_lock:
            scopes = self.token_scopes.get(credential)
            if scopes is None:
                claims = _jwt_claims(credential)
                if claims is None or "scope" not in claims:
                    return
                scopes = self.token_scopes[credential] = str(claims["scope"]).split()
            self.scopes_seen[" ".join(sorted(scopes))] += 1
        data = _DATA_CALL.match(path) is not None
        if path.startswith(bigquery.PREFIX + "/"):  # BigQuery: its own and the cloud scopes
            allowed, service = set(BIGQUERY_SCOPES), "bigquery.googleapis.com"
        elif data:  # the Data API's scopes (the data client's AUTH_SCOPES)
            allowed, service = {FULL_SCOPE, READONLY_SCOPE}, "analyticsdata.googleapis.com"
        elif method in ("POST", "PATCH", "DELETE"):
            allowed, service = {EDIT_SCOPE}, "analyticsadmin.googleapis.com"
        else:  # Admin API reads (the admin client's AUTH_SCOPES)
            allowed, service = {EDIT_SCOPE, READONLY_SCOPE}, "analyticsadmin.googleapis.com"
        if not allowed & set(scopes):
            raise ApiError(403, "Request had insufficient authentication scopes.", details=[{
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "ACCESS_TOKEN_SCOPE_INSUFFICIENT", "domain": "googleapis.com",
                "metadata": {"service": service}}])

    def _ga(self, method: str, path: str, query: dict[str, list[str]], raw: bytes,
            headers: Mapping[str, str]) -> Answer:
        try:
            status, payload, extra = self._ga_request(method, path, query, raw, headers)
        except ApiError as err:
            status, payload, extra = err.code, err.envelope(), err.headers
        self.stats.answered(status)
        return status, payload, extra

    def _ga_request(self, method: str, path: str, query: dict[str, list[str]], raw: bytes,
                    headers: Mapping[str, str]) -> Answer:
        """One GA API request: quota, latency, injected fault, then the route's handler."""
        self.stats.add(requests=1)
        r, match = self._find(method, path)
        if r.api == "data" and self.quota is not None:  # (re)attached: tests swap `quota`
            data_api.use_ledger(self.state, self.quota)
        self.stats.add(admin_requests=int(r.api == "admin"), data_requests=int(r.api == "data"),
                       writes=int(r.write))
        slot = self._take_quota(r, path, headers)
        try:
            if self.latency_ms > 0:
                time.sleep(self.latency_ms / 1000)
            body = self._parse_body(raw)
            fault = self.faults.decide(r.write)
            if fault is not None and fault != LOST_RESPONSE:
                self.stats.add(faults=1)
                raise FaultInjector.error(fault)
            with changes.acting_as(changes.actor_from_headers(headers, self.token_actors)):
                status, payload = r.handler(self.state, match, query, body)
            if r.write and status < 300:
                self.state.save()
                if fault == LOST_RESPONSE:  # applied, but the caller never learns it
                    self.stats.add(faults=1, lost_responses=1)
                    raise FaultInjector.error(UNAVAILABLE)
            return status, payload, {}
        finally:
            if slot is not None and self.quota is not None:
                self.quota.data_end(slot)

    def _take_quota(self, r: Route, path: str, headers: Mapping[str, str]) -> str | None:
        """Count the request against GA's quotas (429 when exhausted); returns a Data API slot to free."""
        if self.quota is None or r.api == "bigquery":  # GA's quotas are not BigQuery's
            return None
        try:
            if r.api == "data":
                m = _DATA_PID.match(path)
                pid = m.group(1) if m else ""
                with self.state.lock:
                    record = self.state.properties.get(pid)
                    ga360 = record is not None and record.service_level == "GOOGLE_ANALYTICS_360"
                self.quota.data_begin(pid, ga360)
                return pid
            self.quota.admin(_user(headers), r.write)
            return None
        except ApiError:
            self.stats.add(rate_limited=1)
            raise

    @staticmethod
    def _parse_body(raw: bytes) -> Any:
        if not raw.strip():
            return None
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise _bad_json(raw) from None

    def _control(self, method: str, path: str, raw: bytes) -> Answer:
        body = self._parse_body(raw) or {}
        if not isinstance(body, dict):
            raise ApiError(400, "The control API expects a JSON object.")
        if method == "GET" and path == "/_sandbox/health":
            with self.state.lock:
                return 200, {"status": "ok", "accounts": len(self.state.accounts),
                             "properties": len(self.state.properties)}, {}
        if method == "GET" and path == "/_sandbox/stats":
            return 200, self.stats.snapshot(), {}
        if method == "POST" and path == "/_sandbox/accounts":
            name = self.state.add_account(str(body.get("display_name", "Sandbox Account")))
            self.state.save()
            return 200, {"name": name}, {}
        if method == "POST" and path == "/_sandbox/properties":
            unknown = sorted(set(body) - set(_ADD_PROPERTY_FIELDS) - {"denied"})
            if unknown:
                raise ApiError(400, f"Unknown field(s) {unknown}; allowed: {list(_ADD_PROPERTY_FIELDS) + ['denied']}.")
            kwargs = {k: v for k, v in body.items() if k != "denied"}
            try:
                record = self.state.add_property(**kwargs)
            except (ValueError, TypeError) as exc:
                raise ApiError(400, str(exc)) from None
            if body.get("denied"):
                self.state.deny(record.id)
            self.state.save()
            out = record.to_json()
            out.pop("traffic", None)
            return 200, {"name": record.name, **out}, {}
        if method == "POST" and path == "/_sandbox/reset":
            self.state.reset()
            self.state.save()
            self.stats.reset()
            if self.quota is not None:
                self.quota.reset()
            return 200, {}, {}
        raise ApiError(404, f"The requested URL {path} was not found on this server.")


class _RequestHandler(BaseHTTPRequestHandler):
    """Turns HTTP into `SandboxServer.dispatch` calls. HTTP/1.1 keep-alive, as `requests` likes."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes: no 40 ms delayed-ACK stalls
    server_version = "ESF"
    sys_version = ""

    def _serve(self) -> None:
        sandbox: SandboxServer = self.server.sandbox  # type: ignore[attr-defined]
        parts = urlsplit(self.path)
        query = parse_qs(parts.query, keep_blank_values=True)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        status, payload, extra = sandbox.dispatch(self.command, unquote(parts.path), query, raw, self.headers)
        data = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        if not parts.path.startswith("/_sandbox/"):
            self.send_header("Vary", "Origin, X-Origin, Referer")  # as GA's answers (recorded)
        for name, value in extra.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _serve

    def version_string(self) -> str:
        return self.server_version  # "ESF", as GA's front end signs its answers

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s - %s", self.address_string(), format % args)


def serve_forever(port: int = 8080, state_path: str | Path | None = None, host: str = "127.0.0.1",
                  on_start: Callable[[SandboxServer], None] | None = None, *, latency_ms: float = 0.0,
                  fault_rate: float = 0.0, seed: int | None = None,
                  quotas: QuotaLimits | None = _DEFAULT_QUOTAS) -> None:
    """Run the sandbox in the foreground until interrupted (for the `ga-sync sandbox` command).

    `state_path`: a JSON file to load on start (if it exists) and to keep up to date after each
    write; None keeps everything in memory. `on_start` is called once the server listens (the CLI
    uses it to tell the user `server.url`; this library never prints). Ctrl-C stops it cleanly.
    Seed it over HTTP with the control API described in this module's docstring. `latency_ms`,
    `fault_rate`, `seed` and `quotas` make it misbehave like GA (module docstring).
    """
    state = SandboxState(state_path)
    server = SandboxServer(state, host=host, port=port, latency_ms=latency_ms, fault_rate=fault_rate,
                           seed=seed, quotas=quotas)
    if on_start is not None:
        on_start(server)
    log.info("GA4 sandbox listening on %s", server.url)
    try:
        server._httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server._httpd.server_close()
        state.save()
