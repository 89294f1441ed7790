"""A misbehaving HTTP proxy in front of a sandbox: one property's answers are mangled, the rest pass.

What stands between ga-sync and Google is not always Google: a captive portal answers 200 with
a sign-in page, a load balancer answers 502 with its own HTML, a connection is cut half-way or
never answered, an API change returns a shape the client does not expect. `FaultProxy` forwards
every request to the sandbox unchanged, except the answers concerning ONE chosen property, which
it mangles in the chosen mode:

- `html200`       status 200 and an HTML page (a captive portal's sign-in page)
- `html502`       status 502 and a load balancer's HTML error page
- `truncated`     the real answer cut in half (a complete HTTP message, broken JSON)
- `empty`         `{}`
- `hang`          accept the request and never answer (released when the proxy stops)
- `reset`         close the connection without answering (TCP reset)
- `repeat_token`  list answers (key events, account summaries) always carry the same
                  `nextPageToken`, so a client that follows tokens blindly loops forever
- `wrong_shape`   valid JSON with the wrong types (`{"keyEvents": 5}`, `{"reports": [{"rows": "x"}]}`)

A request concerns the property when its path names `properties/<id>` (Admin API and Data API
alike) or, for requests whose path names no property (`accountSummaries`), when the real answer
mentions it. `api="data"` or `api="admin"` limits the mangling to one API. A request for the
property is not forwarded at all in the modes that replace the answer (so a create answered
with HTML did not happen); `truncated` and `repeat_token` forward it and mangle GA's answer.

    with FaultProxy(sandbox.url) as proxy:
        proxy.set_mode("123456789", "html502")
        ... point GA_SYNC_ADMIN_ENDPOINT / GA_SYNC_DATA_ENDPOINT at proxy.url ...

or, in a test, the `fault_proxy` fixture: `(url, set_mode)` in front of the `sandbox` fixture.
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import struct
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import pytest

MODES = ("html200", "html502", "truncated", "empty", "hang", "reset", "repeat_token", "wrong_shape")
APIS = (None, "admin", "data")

HTML_200 = (b"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>Sign in - Hotel "
            b"Wi-Fi</title></head><body><h1>Welcome!</h1><form action=/login method=post>"
            b"<input name=room><button>Connect</button></form></body></html>\n")
HTML_502 = (b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 "
            b"Bad Gateway</h1></center>\r\n<hr><center>nginx/1.18.0</center>\r\n</body>\r\n</html>\r\n")
LOOP_TOKEN = "loop-token-forever"

_LIST_PATH = re.compile(r"/(keyEvents|conversionEvents|accountSummaries|accounts|properties|"
                        r"dataStreams|customDimensions|customMetrics)$")
_DATA_PATH = re.compile(r":(runReport|batchRunReports|runRealtimeReport|checkCompatibility)$"
                        r"|/metadata$")
#: Modes whose answer does not depend on GA's: a request whose path names the property is not
#: forwarded (so a mangled create never reaches the sandbox). `truncated` and `repeat_token`
#: need the real answer; requests naming no property are forwarded to see whom they concern.
_NOT_FORWARDED = {"html200", "html502", "empty", "hang", "reset", "wrong_shape"}
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host",
               "proxy-connection", "te", "trailer", "upgrade"}


def _id(property: str | int) -> str:
    return str(property).strip().removeprefix("properties/")


def api_of(path: str) -> str:
    """'data' for Data API paths (`:runReport`, `:batchRunReports`, `/metadata`), else 'admin'."""
    return "data" if _DATA_PATH.search(path.split("?", 1)[0]) else "admin"


def wrong_shape(path: str, body: bytes) -> bytes:
    """Valid JSON in which each field has the wrong type for the request's answer."""
    route = path.split("?", 1)[0]
    if route.endswith(":batchRunReports"):
        return json.dumps({"reports": [{"rows": "x", "rowCount": "many"}]}).encode()
    if route.endswith(":runReport"):
        return json.dumps({"rows": "x", "rowCount": "many"}).encode()
    m = _LIST_PATH.search(route)
    if m:
        return json.dumps({m.group(1): 5, "nextPageToken": 7}).encode()
    try:
        real = json.loads(body or b"{}")
    except ValueError:
        real = {}
    if not isinstance(real, dict) or not real:
        return json.dumps({"name": 5, "displayName": ["x"], "timeZone": {"a": 1}}).encode()
    swap = {list: 5, dict: "x", str: [1], int: {"x": 1}, float: {"x": 1}, bool: "maybe"}
    return json.dumps({k: swap.get(type(v), 5) for k, v in real.items()}).encode()


def repeat_token(path: str, body: bytes) -> bytes:
    """The real answer, with a `nextPageToken` that is always the same (list answers only)."""
    if not _LIST_PATH.search(path.split("?", 1)[0]):
        return body
    try:
        data = json.loads(body or b"{}")
    except ValueError:
        return body
    if isinstance(data, dict):
        data["nextPageToken"] = LOOP_TOKEN
    return json.dumps(data).encode()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    proxy: "FaultProxy"

    def handle_error(self, request: Any, client_address: Any) -> None:  # a client went away: fine
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass

    def _serve(self) -> None:
        proxy: FaultProxy = self.server.proxy  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        mode = proxy.mode_for(self.path, b"")
        if mode in _NOT_FORWARDED:  # answered by the broken middlebox: GA never sees it
            status, reason, out_headers, body = 200, "OK", {"Content-Type": "application/json"}, b""
        else:
            path = proxy.first_page(self.path)
            status, reason, out_headers, body = proxy.forward(self.command, path, headers, raw)
            mode = proxy.mode_for(self.path, body)
        if mode is not None:
            proxy.mangled.append((self.command, self.path, mode))
        if mode == "hang":
            proxy._release.wait()
            self._reset()
            return
        if mode == "reset":
            self._reset()
            return
        if mode == "html200":
            status, reason, body = 200, "OK", HTML_200
            out_headers = {"Content-Type": "text/html; charset=utf-8"}
        elif mode == "html502":
            status, reason, body = 502, "Bad Gateway", HTML_502
            out_headers = {"Content-Type": "text/html", "Server": "nginx/1.18.0"}
        elif mode == "truncated":
            body = body[: len(body) // 2]
        elif mode == "empty":
            body = b"{}"
        elif mode == "repeat_token":
            body = repeat_token(self.path, body)
        elif mode == "wrong_shape":
            status, reason, body = 200, "OK", wrong_shape(self.path, body)
        self.send_response(status, reason)
        for name, value in out_headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _reset(self) -> None:
        """Drop the connection with a TCP reset, answering nothing."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass

    do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _serve


class FaultProxy:
    """An HTTP proxy on 127.0.0.1 (free port, background thread) in front of `upstream`."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream_host, self.upstream_port = parts.hostname or "127.0.0.1", parts.port or 80
        self._modes: dict[str, tuple[str, str | None]] = {}
        self._lock = threading.Lock()
        self._release = threading.Event()
        self.mangled: list[tuple[str, str, str]] = []  # (method, path, mode) of answers mangled
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.proxy = self
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def set_mode(self, property: str | int, mode: str | None, api: str | None = None) -> None:
        """Mangle `property`'s answers in `mode` (None: stop), on both APIs or only `api`."""
        if mode is not None and mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        if api not in APIS:
            raise ValueError(f"api must be one of {APIS}, not {api!r}")
        with self._lock:
            if mode is None:
                self._modes.pop(_id(property), None)
            else:
                self._modes[_id(property)] = (mode, api)

    def mode_for(self, path: str, answer: bytes) -> str | None:
        """The mode to apply to this request's answer, or None to pass it through."""
        route = path.split("?", 1)[0]
        with self._lock:
            modes = dict(self._modes)
        for pid, (mode, api) in modes.items():
            if api is not None and api != api_of(route):
                continue
            if re.search(rf"properties/{re.escape(pid)}(?![0-9])", route):
                return mode
            if "properties/" not in route and f'"properties/{pid}"'.encode() in answer:
                return mode
        return None

    def first_page(self, path: str) -> str:
        """In `repeat_token` mode, a list request for the property asks for the first page again
        (GA would refuse the made-up token), so the same page and token come back forever."""
        route, _, query = path.partition("?")
        if not _LIST_PATH.search(route):
            return path
        with self._lock:
            looping = [pid for pid, (mode, api) in self._modes.items()
                       if mode == "repeat_token" and api in (None, "admin")]
        concerned = any(re.search(rf"properties/{re.escape(pid)}(?![0-9])", route)
                        for pid in looping) or (bool(looping) and "properties/" not in route)
        if not concerned or not query:
            return path
        kept = [p for p in query.split("&") if not p.startswith(("pageToken=", "page_token="))]
        return route + ("?" + "&".join(kept) if kept else "")

    def forward(self, method: str, path: str, headers: dict[str, str],
                body: bytes) -> tuple[int, str, dict[str, str], bytes]:
        """Send the request to the sandbox unchanged; its (status, reason, headers, body)."""
        conn = http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=60)
        try:
            conn.request(method, path, body=body or None, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            out = {k: v for k, v in resp.getheaders() if k.lower() not in _HOP_BY_HOP}
            return resp.status, resp.reason, out, data
        finally:
            conn.close()

    def start(self) -> "FaultProxy":
        if self._thread is None:
            self._thread = threading.Thread(target=self._httpd.serve_forever,
                                            kwargs={"poll_interval": 0.05},
                                            name="fault-proxy", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release every hung request (its connection is reset)."""
        self._release.set()
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> "FaultProxy":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@pytest.fixture
def fault_proxy(sandbox: Any) -> Iterator[tuple[str, Any]]:
    """A FaultProxy in front of the `sandbox` fixture: yields (proxy_url, set_mode)."""
    with FaultProxy(sandbox.url) as proxy:
        yield proxy.url, proxy.set_mode
