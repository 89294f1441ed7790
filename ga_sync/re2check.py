"""Regular expressions as GA reads them: RE2 syntax, partial match.

GA matches `regex` conditions of event create rules (and report filters) with RE2, which has no
lookaround, backreferences, atomic groups, possessive quantifiers or conditionals, and allows at
most 1000 repetitions per `{n,m}`. A pattern Python's `re` takes may still be one GA refuses,
so specs are checked here, before anything is sent.

With the `google-re2` package installed (a binary wheel on PyPI), RE2 itself decides. Without
it, a check built on Python's own regex parser refuses what RE2 is known to refuse (see
`_python_problem`); it is stricter than RE2 where Python is (it refuses RE2-only syntax such as
`\\z`, `\\pL` or `[[:alpha:]]`, because Python cannot compile those). The spec validator and the
sandbox both use `problem()`; the sandbox and reports match with `search()`.
https://github.com/google/re2/wiki/Syntax
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

try:  # the import costs ~5 ms; spec.py imports this module only for `regex` conditions
    import re2 as _re2  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - exercised by forcing ENGINE in tests
    _re2 = None

try:
    from re import _parser as _sre  # type: ignore[attr-defined]  # Python 3.11+
    from re import _constants as _c  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - older Pythons
    import sre_constants as _c  # type: ignore[no-redef]
    import sre_parse as _sre  # type: ignore[no-redef]

#: "re2" when google-re2 is importable, else "python" (the fallback check); tests switch it.
ENGINE = "re2" if _re2 is not None else "python"

#: RE2's largest repetition count in `{n}`, `{n,m}`.
REPEAT_MAX = 1000


def problem(pattern: str) -> str | None:
    """Why GA (RE2) would refuse `pattern`, in words for people; None when it is valid."""
    if ENGINE == "re2" and _re2 is not None:
        return _re2_problem(pattern)
    return _python_problem(pattern)


def search(pattern: str, text: str, ignore_case: bool = False) -> bool:
    """Whether `pattern` matches somewhere in `text`, as GA's partial match does.

    RE2 when available, else Python's `re` (same result for every pattern both accept).
    Raises ValueError for a pattern `problem()` refuses.
    """
    return _compiled(ENGINE, pattern, ignore_case).search(text) is not None


@lru_cache(maxsize=512)
def _compiled(engine: str, pattern: str, ignore_case: bool) -> Any:
    why = problem(pattern)
    if why is not None:
        raise ValueError(f"not a valid RE2 regular expression: {why}")
    if engine == "re2" and _re2 is not None:
        options = _re2.Options()
        options.log_errors = False
        options.case_sensitive = not ignore_case
        return _re2.compile(pattern, options)
    return re.compile(pattern, re.IGNORECASE if ignore_case else 0)


def _re2_problem(pattern: str) -> str | None:
    options = _re2.Options()
    options.log_errors = False  # RE2 would write the error to stderr; the library never prints
    try:
        _re2.compile(pattern, options)
    except Exception as exc:  # re2.error; its message is bytes: b"invalid perl operator: (?="
        message = exc.args[0] if exc.args else str(exc)
        if isinstance(message, bytes):
            message = message.decode("utf-8", "replace")
        return _explain(str(message))
    return None


_HINTS = (
    ("invalid perl operator: (?=", "lookahead `(?=...)` is not RE2 syntax"),
    ("invalid perl operator: (?!", "negative lookahead `(?!...)` is not RE2 syntax"),
    ("invalid perl operator: (?<=", "lookbehind `(?<=...)` is not RE2 syntax"),
    ("invalid perl operator: (?<!", "negative lookbehind `(?<!...)` is not RE2 syntax"),
    ("invalid perl operator: (?>", "atomic group `(?>...)` is not RE2 syntax"),
    ("invalid perl operator: (?(", "conditional `(?(...)...)` is not RE2 syntax"),
    ("bad repetition operator: ++", "possessive quantifier `++` is not RE2 syntax"),
    ("bad repetition operator: *+", "possessive quantifier `*+` is not RE2 syntax"),
    ("bad repetition operator: ?+", "possessive quantifier `?+` is not RE2 syntax"),
    ("invalid repetition size", f"a repetition count is over {REPEAT_MAX} or out of order"),
)


def _explain(message: str) -> str:
    """RE2's own message, with what it means for the common Perl/PCRE habits."""
    for start, hint in _HINTS:
        if message.startswith(start):
            return f"{hint} ({message})"
    if re.match(r"invalid escape sequence: \\[1-9]", message):
        return f"backreferences like `\\1` are not RE2 syntax ({message})"
    if message.startswith("invalid perl operator: (?P") and not message.endswith("(?P<"):
        return f"named backreference `(?P=name)` is not RE2 syntax ({message})"
    if re.match(r"bad repetition operator: \{.*\}\+", message):
        return f"possessive quantifier `{{n}}+` is not RE2 syntax ({message})"
    if re.match(r"invalid perl operator: \(\?[a-zA-Z]", message):
        return f"that inline flag is not RE2 syntax; RE2 has i, m, s and U ({message})"
    return message


# --------------------------------------------------------------------------- without google-re2

_LOOKAROUND = {_c.ASSERT: ("lookahead `(?=...)`", "lookbehind `(?<=...)`"),
               _c.ASSERT_NOT: ("negative lookahead `(?!...)`", "negative lookbehind `(?<!...)`")}
_REPEATS = {_c.MAX_REPEAT, _c.MIN_REPEAT}
_POSSESSIVE = getattr(_c, "POSSESSIVE_REPEAT", None)
_ATOMIC = getattr(_c, "ATOMIC_GROUP", None)
#: Inline flags RE2 lacks: x (verbose), a (ASCII), L (locale). RE2 has i, m, s and U.
_FOREIGN_FLAGS = ((_c.SRE_FLAG_VERBOSE, "x"), (_c.SRE_FLAG_ASCII, "a"), (_c.SRE_FLAG_LOCALE, "L"))
#: Escapes Python knows and RE2 does not: \Z (RE2 writes \z), \uXXXX, \UXXXXXXXX, \N{name}.
_FOREIGN_ESCAPE = re.compile(r"\\(?:[\\]|([ZuUN]))")


def _python_problem(pattern: str) -> str | None:
    """The fallback: Python must compile it, and it must use nothing RE2 refuses."""
    try:
        parsed = _sre.parse(pattern)
    except re.error as exc:
        return f"{exc.msg} at position {exc.pos}" if exc.pos is not None else exc.msg
    except (RecursionError, OverflowError, ValueError) as exc:
        return f"cannot be read ({type(exc).__name__})"
    for escaped in _FOREIGN_ESCAPE.finditer(pattern):
        letter = escaped.group(1)
        if letter:
            return (f"the escape `\\{letter}` is not RE2 syntax"
                    + (" (RE2 writes the end of text as `\\z`)" if letter == "Z" else
                       " (RE2 writes a code point as `\\x{263a}`)" if letter in "uU" else ""))
    flags = parsed.state.flags
    for flag, letter in _FOREIGN_FLAGS:
        if flags & flag:
            return f"the inline flag `(?{letter})` is not RE2 syntax (RE2 has i, m, s and U)"
    return _walk(parsed, 0)


def _walk(items: Any, depth: int) -> str | None:
    if depth > 200:
        return "nested too deeply"
    for op, av in items:
        why: str | None = None
        if op in _LOOKAROUND:
            direction, body = av
            why = f"{_LOOKAROUND[op][0 if direction == 1 else 1]} is not RE2 syntax"
        elif op in (_c.GROUPREF, getattr(_c, "GROUPREF_IGNORE", None),
                    getattr(_c, "GROUPREF_UNI_IGNORE", None),
                    getattr(_c, "GROUPREF_LOC_IGNORE", None)) and op is not None:
            why = "backreferences like `\\1` or `(?P=name)` are not RE2 syntax"
        elif op == _c.GROUPREF_EXISTS:
            why = "conditional `(?(...)...)` is not RE2 syntax"
        elif _ATOMIC is not None and op == _ATOMIC:
            why = "atomic group `(?>...)` is not RE2 syntax"
        elif _POSSESSIVE is not None and op == _POSSESSIVE:
            why = "possessive quantifiers (`*+`, `++`, `?+`, `{n}+`) are not RE2 syntax"
        elif op == _c.AT and av == _c.AT_END_STRING:
            why = "the escape `\\Z` is not RE2 syntax (RE2 writes the end of text as `\\z`)"
        if why is not None:
            return why
        if op in _REPEATS:
            low, high, body = av
            if low > REPEAT_MAX or (high is not _c.MAXREPEAT and high > REPEAT_MAX):
                return f"a repetition count is over {REPEAT_MAX}, RE2's most"
            why = _walk(body, depth + 1)
        elif op == _c.SUBPATTERN:
            _group, add_flags, _del_flags, body = av
            for flag, letter in _FOREIGN_FLAGS:
                if add_flags & flag:
                    return f"the inline flag `(?{letter})` is not RE2 syntax (RE2 has i, m, s and U)"
            why = _walk(body, depth + 1)
        elif op == _c.BRANCH:
            for branch in av[1]:
                why = why or _walk(branch, depth + 1)
        elif _ATOMIC is not None and op == _ATOMIC:  # pragma: no cover - refused above
            why = _walk(av, depth + 1)
        if why is not None:
            return why
    return None
