"""Recording HTTP exchanges with vcrpy, scrubbed of every secret before a cassette is written.

Cassettes pin the exact HTTP ga-sync sends. They are recorded against the sandbox by default and
can be re-recorded against a real property (see tests/README.md); either way nothing that
authenticates a caller is ever written: Authorization headers, OAuth token exchanges (request
and response bodies), API keys and cookies are replaced by `<scrubbed>`.

Matching ignores the scheme, host and port and normalizes numeric ids, so a cassette recorded
against one property (or the sandbox on any port) replays for another.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

SCRUBBED = "<scrubbed>"
SECRET_HEADERS = ("authorization", "x-goog-api-key", "cookie", "set-cookie",
                  "x-goog-user-project", "proxy-authorization")
#: Body fields that authenticate someone, in JSON or form-encoded bodies, whatever the host
#: (a token_uri can point anywhere: Google's, a workload-identity STS, the sandbox).
SECRET_FIELDS = ("access_token", "refresh_token", "id_token", "client_secret", "assertion",
                 "private_key", "private_key_id", "password", "subject_token", "actor_token")

#: What a leaked secret looks like in a cassette (used by the test that scans cassettes/).
LEAK_PATTERNS = {
    "bearer token": re.compile(r"Bearer\s+(?!<scrubbed>)[A-Za-z0-9._\-]{8,}"),
    "OAuth access token": re.compile(r"ya29\.[A-Za-z0-9._\-]+"),
    "refresh token": re.compile(r"1//[A-Za-z0-9._\-]{20,}"),
    "private key": re.compile(r"-----BEGIN (?:RSA |EC )?PRIVATE KEY-----"),
    "JWT": re.compile(r"eyJ[A-Za-z0-9_\-]{10,}\.eyJ[A-Za-z0-9_\-]{10,}"),
    "client secret": re.compile(r"(?:client_secret|GOCSPX-)[\"'=:\s]+(?!<scrubbed>)[A-Za-z0-9_\-]{8,}"),
}

BOOKKEEPING_HOSTS = ("iamcredentials.googleapis.com",)

_NUMBERS = re.compile(r"/(properties|keyEvents|accounts|accountSummaries)/\d+")


def normalized_path(path: str) -> str:
    """`/v1beta/properties/123/keyEvents/456` -> `/v1beta/properties/N/keyEvents/N`."""
    return _NUMBERS.sub(lambda m: f"/{m.group(1)}/N", path)


def _scrub_json_text(text: str) -> str:
    try:
        data = json.loads(text)
    except ValueError:
        return re.sub(r"(?i)(" + "|".join(SECRET_FIELDS) + r")=([^&\s]+)",
                      lambda m: f"{m.group(1)}={SCRUBBED}", text)

    def walk(x: Any) -> Any:
        if isinstance(x, dict):
            return {k: (SCRUBBED if k in SECRET_FIELDS else walk(v)) for k, v in x.items()}
        if isinstance(x, list):
            return [walk(v) for v in x]
        return x

    return json.dumps(walk(data))


def scrub_request(request: Any) -> Any:
    for h in list(request.headers):
        if h.lower() in SECRET_HEADERS:
            request.headers[h] = SCRUBBED
    if request.body:
        body = request.body.decode("utf-8", "replace") if isinstance(request.body, bytes) else request.body
        if any(f in body for f in SECRET_FIELDS):
            request.body = _scrub_json_text(body).encode()
    return request


def scrub_response(response: dict[str, Any]) -> dict[str, Any]:
    headers = response.get("headers", {})
    for h in list(headers):
        if h.lower() in SECRET_HEADERS:
            headers[h] = [SCRUBBED]
    body = response.get("body", {}).get("string")
    if body:
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        if any(f'"{f}"' in text for f in SECRET_FIELDS):
            response["body"]["string"] = _scrub_json_text(text).encode()
    return response


def _path_matcher(r1: Any, r2: Any) -> None:
    assert normalized_path(r1.path) == normalized_path(r2.path), (r1.path, r2.path)


def _json_body_matcher(r1: Any, r2: Any) -> None:
    def load(body: Any) -> Any:
        if not body:
            return None
        try:
            return json.loads(body)
        except ValueError:
            return body
    b1, b2 = load(r1.body), load(r2.body)
    if isinstance(b1, dict) and isinstance(b2, dict):
        b1 = json.loads(normalized_path(json.dumps(b1)))
        b2 = json.loads(normalized_path(json.dumps(b2)))
    assert b1 == b2, (b1, b2)


def make_vcr(cassette_dir: Path | str, record_mode: str = "none") -> Any:
    """A VCR that scrubs before writing and matches on method, normalized path, query and body."""
    import vcr

    v = vcr.VCR(cassette_library_dir=str(cassette_dir), record_mode=record_mode,
                # google-auth's own look-ups about the credential, not ga-sync's HTTP
                ignore_hosts=BOOKKEEPING_HOSTS,
                before_record_request=scrub_request, before_record_response=scrub_response,
                decode_compressed_response=True,
                match_on=("method", "normalized_path", "query", "json_body"))
    v.register_matcher("normalized_path", _path_matcher)
    v.register_matcher("json_body", _json_body_matcher)
    return v


def is_token_exchange(request: Any) -> bool:
    """An OAuth token request (made by google-auth for the credentials, not by ga-sync)."""
    body = request.body or b""
    body = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
    return "grant_type=" in body or '"grant_type"' in body


def unplayed_api_calls(cassette: Any) -> list[str]:
    """Recorded API calls a replay did not make. Token exchanges do not count: a cassette
    recorded with real credentials holds them (scrubbed), while a replay runs anonymously."""
    return [f"{req.method} {req.path}" for i, (req, _) in enumerate(cassette.data)
            if cassette.play_counts[i] == 0 and not is_token_exchange(req)]


def find_leaks(root: Path | str) -> list[str]:
    """Every place under `root` where a cassette holds something that looks like a secret."""
    found = []
    for path in sorted(Path(root).rglob("*")):
        if not path.is_file():
            continue
        text = path.read_text("utf-8", errors="replace")
        for what, pattern in LEAK_PATTERNS.items():
            for m in pattern.finditer(text):
                line = text.count("\n", 0, m.start()) + 1
                found.append(f"{path}:{line}: {what}")
    return found
