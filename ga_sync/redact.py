"""Keep secrets and file contents out of messages: every text that came from outside ga-sync
(a server's error text, an endpoint URL, a line of a file) passes through here before a person
or a log sees it.

Every pattern runs in linear time: quantifiers are bounded, and a pattern for a token only
starts where a run of the token's characters starts (a lookbehind), so no input makes one
position be tried against a long run many times over.
"""

from __future__ import annotations

import re

#: What a message may quote of text that came from elsewhere, at most.
EXCERPT_MAX = 60

_URL_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]{0,30}://)[^/\s@]{0,512}@")
_PEM = re.compile(r"-----BEGIN [A-Z0-9 ]{1,64}-----.*?(?:-----END [A-Z0-9 ]{1,64}-----|\Z)",
                  re.DOTALL)
_BEARER = re.compile(r"(?i)\b(bearer|basic)[ \t]{1,8}[A-Za-z0-9._~+/=-]{8,4096}")
# A token may be glued to a name (`google_ya29.…`), so each starts after any non-alphanumeric
# character. The others match as soon as they start or fail within a few characters; a JWT
# needs its dots, so its first part (a short JSON header) is bounded tighter: a text full of
# `-eyJ` costs at most 1,024 steps for each.
_JWT = re.compile(r"(?<![A-Za-z0-9])eyJ[A-Za-z0-9_-]{5,1024}+\.[A-Za-z0-9_-]{5,8192}+"
                  r"\.[A-Za-z0-9_-]{0,8192}")
# Well-known credential shapes, each from its issuer's documented prefix.
_TOKENS = re.compile(
    r"(?<![A-Za-z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Za-z0-9])"        # AWS access key id
    r"|(?<![A-Za-z0-9])(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{8,255}"   # Stripe
    r"|(?<![A-Za-z0-9])whsec_[A-Za-z0-9]{8,255}"                        # Stripe webhook secret
    r"|(?<![A-Za-z0-9])gh[pousr]_[A-Za-z0-9]{20,255}"                   # GitHub tokens
    r"|(?<![A-Za-z0-9])github_pat_[A-Za-z0-9_]{20,255}"                 # GitHub fine-grained
    r"|(?<![A-Za-z0-9])xox[abprs]-[A-Za-z0-9-]{10,255}"                 # Slack
    r"|(?<![A-Za-z0-9])AIza[0-9A-Za-z_-]{20,64}"                        # Google API key
    r"|(?<![A-Za-z0-9])ya29\.[A-Za-z0-9._-]{10,4096}"                   # Google OAuth access
    r"|(?<![A-Za-z0-9/])1//[A-Za-z0-9._-]{10,1024}"                     # Google refresh token
    r"|(?<![A-Za-z0-9])GOCSPX-[A-Za-z0-9_-]{10,255}")                   # Google client secret
_SECRET_FIELD = re.compile(
    r"(?i)((?:password|passwd|secret|token|api[_-]?key|private[_-]?key|access[_-]?key)"
    r"[A-Za-z0-9_-]{0,30}[\"']?[ \t]{0,8}[:=][ \t]{0,8})"
    r"(\"[^\"\n]{0,4096}\"|'[^'\n]{0,4096}'|[\"']?[^\s,;&\"'}\]]{1,100000})")
_LONG_SECRETISH = re.compile(r"(?<![A-Za-z0-9+/_-])[A-Za-z0-9+/_-]{40,100000}={0,2}")
# One word of a name such as `downloaded_the_annual_report` or `Q4-Campaign-Landing-Page`.
_NAME_PART = re.compile(r"[a-z0-9]{1,20}|[A-Z0-9]{1,20}|[A-Z][a-z0-9]{1,19}")
_NAME_SEPARATOR = re.compile(r"[_-]")


def _is_name(run: str) -> bool:
    """True for words joined by `_` or `-` (an event or file name), not a random token."""
    parts = _NAME_SEPARATOR.split(run)
    return len(parts) > 1 and all(_NAME_PART.fullmatch(part) for part in parts)


def redact(text: str) -> str:
    """The text with passwords in URLs, keys, tokens and `secret: value` pairs replaced by `***`.

    Ordinary names stay: `sign_up`, `begin_checkout` or a 40-character snake_case event name
    are words, not tokens.
    """
    text = _URL_USERINFO.sub(lambda m: m.group("scheme") + "***@", text)
    text = _PEM.sub("***private key***", text)
    text = _BEARER.sub(lambda m: m.group(1) + " ***", text)
    text = _JWT.sub("***", text)
    text = _TOKENS.sub("***", text)
    text = _SECRET_FIELD.sub(lambda m: m.group(1) + "***", text)
    text = _LONG_SECRETISH.sub(lambda m: m.group() if _is_name(m.group()) else "***", text)
    return text


def excerpt(text: str, limit: int = EXCERPT_MAX) -> str:
    """A short, one-line, redacted excerpt of outside text, for an error message.

    Only a head of the text is redacted (enough to fill `limit`); a token the head cuts in two
    is left out, so that no part of it can slip past the patterns.
    """
    text = str(text)
    head = text[: limit * 8]
    if len(head) < len(text) and not text[len(head)].isspace():
        cut = max(head.rfind(" "), head.rfind("\t"), head.rfind("\n"), head.rfind("\r"))
        if cut > 0:
            head = head[:cut] + " …"
    one_line = " ".join(redact(head).split())
    if len(one_line) > limit:
        one_line = one_line[: max(0, limit - 1)].rstrip() + "…"
    return one_line


def redact_url(url: str) -> str:
    """A URL with any user:password@ part replaced: safe to print."""
    return _URL_USERINFO.sub(lambda m: m.group("scheme") + "***@", url)
