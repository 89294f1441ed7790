"""The contract between the sandbox's HTTP server and the API modules it serves.

Each API module (admin_api.py, data_api.py) exposes `ROUTES`: a list of `Route`. The server
matches the request's method and path (without the query string) against each route's regex,
in order, and calls `handler(state, match, query, body)`, where `query` maps each query
parameter to its list of values and `body` is the parsed JSON body (None when there is none).
The handler returns `(http_status, json_dict)` or raises `ApiError`, which the server turns
into Google's error envelope: {"error": {"code": 404, "message": "...", "status": "NOT_FOUND"}}.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

# HTTP status -> google.rpc.Code name, as GA puts them in the error envelope.
STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


class ApiError(Exception):
    """An error answer in Google's JSON error envelope."""

    def __init__(self, code: int, message: str, status: str | None = None,
                 details: list[dict] | None = None, headers: dict[str, str] | None = None,
                 errors: list[dict] | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status or STATUS_NAMES.get(code, "UNKNOWN")
        self.details = details or []
        self.headers = headers or {}
        self.errors = errors or []  # the older `errors[].reason` list some Google APIs still send

    def envelope(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.errors:
            error["errors"] = self.errors
        error["status"] = self.status
        if self.details:
            error["details"] = self.details
        return {"error": error}


Handler = Callable[[Any, "re.Match[str]", dict[str, list[str]], Any], tuple[int, dict]]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    api: str  # "admin", "data" or "bigquery": which quota bucket a request counts against
    write: bool = False  # an Admin API write (create, patch, delete)


def route(method: str, regex: str, handler: Handler, api: str, write: bool = False) -> Route:
    return Route(method, re.compile("^" + regex + "$"), handler, api, write)
