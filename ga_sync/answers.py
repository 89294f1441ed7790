"""What an answer (or its absence) means: rate limit, transient, malformed, long exhaustion;
and how a failed call becomes a GaSyncError a person can act on.

`transport.call` asks these questions of every exception; `translate` writes the message that
reaches the user (where, what, what to do), never quoting a server's text raw: HTML pages are
named by their title, other text is redacted and cut short.
"""

from __future__ import annotations

import json
import re
import threading
from typing import Any

from ga_sync.errors import ApiError, CredentialsError, GaSyncError, MalformedAnswer, QuotaExhausted
from ga_sync.redact import excerpt, redact_url
from ga_sync.settings import ADMIN_ENDPOINT_ENV, CREDENTIALS_ENV, DATA_ENDPOINT_ENV

#: 403 reasons that mean "slow down", not "no permission" (ErrorInfo.reason / errors[].reason).
RATE_LIMIT_REASONS = {"rateLimitExceeded", "userRateLimitExceeded", "RATE_LIMIT_EXCEEDED",
                      "quotaExceeded"}
ENDPOINT_ENVS = f"{ADMIN_ENDPOINT_ENV} / {DATA_ENDPOINT_ENV}"
PROXY_ADVICE = (f"A proxy or captive portal may be in the way: check the connection, and "
                f"{ENDPOINT_ENVS} if set.")
#: What a message may quote of a server's own error text.
SERVER_TEXT_MAX = 300

_last = threading.local()  # the last HTTP answer this thread received (for error messages)


def endpoint_of(url: str | None) -> str | None:
    """scheme://host[:port] of a URL, without any user:password: safe to print."""
    if not url:
        return None
    m = re.match(r"^([a-zA-Z][a-zA-Z0-9+.-]*://)(?:[^/?#@]*@)?([^/?#]*)", url)
    return redact_url(m.group(1) + m.group(2)) if m else None


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
    if message and message[-1] not in ".!?)":
        message += "."  # GA's words end their sentence before ours begin
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
