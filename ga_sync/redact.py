"""Keep secrets and file contents out of messages: every text that came from outside ga-sync
(a server's error text, an endpoint URL, a line of a file) passes through here before a person
or a log sees it.
"""

from __future__ import annotations

import re

#: What a message may quote of text that came from elsewhere, at most.
EXCERPT_MAX = 60

_URL_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]{0,30}://)[^/\s@]{0,512}@")
_PEM = re.compile(r"-----BEGIN [A-Z0-9 ]+-----.*?(-----END [A-Z0-9 ]+-----|\Z)", re.DOTALL)
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")
_GOOGLE_TOKEN = re.compile(r"\b(ya29\.[A-Za-z0-9._-]+|1//[A-Za-z0-9._-]{10,}|AIza[0-9A-Za-z_-]{20,}"
                           r"|GOCSPX-[A-Za-z0-9_-]{10,})")
_SECRET_FIELD = re.compile(
    r"(?i)(\"?(?:private_key|private_key_id|client_secret|refresh_token|access_token|"
    r"password|passwd|secret|token|api_key|apikey)\"?\s*[:=]\s*)(\"[^\"]*\"|'[^']*'|\S+)")
_LONG_SECRETISH = re.compile(r"[A-Za-z0-9+/_-]{40,}={0,2}")


def redact(text: str) -> str:
    """The text with passwords in URLs, keys, tokens and `secret: value` pairs replaced by `***`."""
    text = _URL_USERINFO.sub(lambda m: m.group("scheme") + "***@", text)
    text = _PEM.sub("***private key***", text)
    text = _BEARER.sub(lambda m: m.group(1) + " ***", text)
    text = _JWT.sub("***", text)
    text = _GOOGLE_TOKEN.sub("***", text)
    text = _SECRET_FIELD.sub(lambda m: m.group(1) + "***", text)
    text = _LONG_SECRETISH.sub("***", text)
    return text


def excerpt(text: str, limit: int = EXCERPT_MAX) -> str:
    """A short, one-line, redacted excerpt of outside text, for an error message."""
    one_line = " ".join(redact(str(text)[: limit * 8]).split())
    if len(one_line) > limit:
        one_line = one_line[: max(0, limit - 1)].rstrip() + "…"
    return one_line


def redact_url(url: str) -> str:
    """A URL with any user:password@ part replaced: safe to print."""
    return _URL_USERINFO.sub(lambda m: m.group("scheme") + "***@", url)
