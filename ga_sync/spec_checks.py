"""The rules for one spec value at a time: event names, amounts, property ids, choices, and
the wording of problems (quoting, redaction, did-you-mean).

Pure functions of a value and its place in the file; each problem becomes a `Problem` with
file:line:column. spec.py applies them while it walks a file, and spec_kind_rules.py builds
on them. Kept import-light: `ga-sync validate` must start fast.
"""

from __future__ import annotations

import difflib
import math
import re
import unicodedata
from datetime import date
from typing import Any, Iterable

from ruamel.yaml.scalarbool import ScalarBoolean
from ruamel.yaml.scalarint import ScalarInt

from .errors import Problem
from .garules import (EVENT_NAME, EVENT_NAME_MAX, NOT_NAME_CHARS, RESERVED_PREFIXES)
from .model import PROPERTY_ID_MAX, Location, property_name
from .redact import EXCERPT_MAX, excerpt, redact

EVENT_VALUE = "event"
#: The most one conversion may be worth, in the spec's currency: more is a typo, not a value.
VALUE_MAX = 1e12

_MEASUREMENT_ID = re.compile(r"G-[A-Z0-9]{4,}\Z", re.IGNORECASE)
_UA_ID = re.compile(r"UA-[0-9]+(-[0-9]+)?\Z", re.IGNORECASE)

# ---------------------------------------------------------------------------------------------
# Small checks, shared by the file parser


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`; did you mean `x`?` for near misses (difflib), '' when nothing is close."""
    if len(word) > 64:  # no option is that long; difflib would only spend time
        return ""
    options = list(choices)
    for option in options:
        if option.casefold() == word.casefold():
            return f"; did you mean `{option}`?"
    folded = {option.casefold(): option for option in options}
    close = difflib.get_close_matches(word.casefold(), folded, n=1, cutoff=0.6)
    return f"; did you mean `{folded[close[0]]}`?" if close else ""


def kind(raw: Any) -> str:
    """What sort of YAML value `raw` is, without any of its content."""
    if raw is None:
        return "empty"
    if isinstance(raw, (bool, ScalarBoolean)):
        return "a yes/no value"
    if isinstance(raw, (int, float)):
        return "a number"
    if isinstance(raw, str):
        return "a text value"
    if isinstance(raw, list):
        return "a list"
    if isinstance(raw, dict):
        return "a mapping"
    if isinstance(raw, date):
        return "a date"
    if isinstance(raw, (bytes, bytearray)):
        return "binary data"
    if isinstance(raw, (set, frozenset)) or type(raw).__name__ == "CommentedSet":
        return "a set"
    if type(raw).__name__ == "TaggedScalar":
        return "a value with a custom `!tag`"
    return "a value of another kind"


def quote(text: str) -> str:
    """Text from a file as a message may show it: one line, at most ~60 characters, redacted."""
    return excerpt(str(text))


def quote_path(text: str) -> str:
    """A path from a file as a message may show it: redacted part by part (so a long, ordinary
    path is not taken for a token), and its end kept when it is long, since the name matters."""
    parts = [redact(part) for part in " ".join(str(text)[-4 * EXCERPT_MAX:].split()).split("/")]
    shown = "/".join(parts)
    return shown if len(shown) <= EXCERPT_MAX else "…" + shown[-(EXCERPT_MAX - 1):]


def show(raw: Any) -> str:
    """A value as the user wrote it, for messages: a short redacted excerpt, or only its kind.

    Never the whole of a long text, never the content of a list or mapping (an alias can make
    those enormous).
    """
    if raw is None:
        return "nothing"
    if isinstance(raw, (bool, ScalarBoolean)):
        return "`true`" if raw else "`false`"
    if isinstance(raw, int):
        if abs(raw) >= 10 ** 30:  # the digits say nothing, and str() of a huge int may refuse
            try:
                digits = str(raw)
            except ValueError:
                return "a number with thousands of digits"
            return f"`{digits[:12]}…` ({len(digits.lstrip('-'))} digits)"
        return f"`{int(raw)}`"
    if isinstance(raw, (float, str, date)):
        return f"`{quote(str(raw))}`"
    return kind(raw)


def _acceptable(name: str) -> bool:
    """True when GA takes `name` as a key event name; never recursive, so any input ends."""
    return (len(name) <= EVENT_NAME_MAX and bool(EVENT_NAME.match(name))
            and not name.startswith(RESERVED_PREFIXES))


def ascii_name(name: str) -> str:
    """`café visit` -> `cafe_visit`, `price_per_m²` -> `price_per_m2`: a name GA could take."""
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    return NOT_NAME_CHARS.sub("_", plain).strip("_")


def _char(ch: str) -> str:
    if ch == " ":
        return "space"
    if ch.isprintable() and not ch.isspace():
        return f"`{ch}`"
    return f"U+{ord(ch):04X}"


def suggestable(name: str, suggestion: str) -> bool:
    """True when `suggestion` may be offered for `name`: GA takes it, and redaction changes
    neither the name nor the suggestion. A suggestion built from text that redaction hides
    (`password=hunter2` -> `password_hunter2`) would show the secret the quote left out."""
    head = name[:4 * EXCERPT_MAX]
    return (_acceptable(suggestion) and redact(head) == head
            and redact(suggestion) == suggestion)


def check_event_name(name: str) -> list[str]:
    """Problems with a GA4 event name, as messages; [] when GA accepts it.

    GA silently drops or refuses badly named events, so a key event on one would never count.
    The rule is ASCII only: a letter first, then letters, digits and underscores, at most 40.
    https://support.google.com/analytics/answer/13316687 (event naming rules)
    """
    if not name:
        return ["event name is empty; write the GA4 event name, e.g. `event: sign_up`"]
    shown = quote(name)
    problems: list[str] = []
    prefix = next((p for p in RESERVED_PREFIXES if name.startswith(p)), None)
    if prefix is not None:
        stripped = name[len(prefix):].lstrip("_")
        hint = f" (e.g. `{stripped}`)" if suggestable(name, stripped) else ""
        problems.append(f"event name `{shown}` starts with `{prefix}`, a prefix GA4 reserves for "
                        f"its own events; rename the event{hint} in the site's tagging and here")
    elif not ("a" <= name[0] <= "z" or "A" <= name[0] <= "Z"):
        problems.append(f"event name `{shown}` must start with a letter (A-Z or a-z)")
    bad = sorted(set("".join(NOT_NAME_CHARS.findall(name))))
    if bad:
        listed = ", ".join(_char(ch) for ch in bad[:8]) + (", …" if len(bad) > 8 else "")
        fixed = ascii_name(name)
        hint = f" (e.g. `{fixed}`)" if fixed != name and suggestable(name, fixed) else ""
        problems.append(f"event name `{shown}` contains {listed}; GA4 event names use only ASCII "
                        f"letters, digits and underscores{hint}")
    if len(name) > EVENT_NAME_MAX:
        problems.append(f"event name `{shown}` is {len(name)} characters long; GA4 allows at most "
                        f"{EVENT_NAME_MAX}, and a longer key event is not reported")
    return problems


def choice(raw: Any, choices: tuple[str, ...], key: str, loc: Location,
            out: list[Problem]) -> str | None:
    if isinstance(raw, str) and raw in choices:
        return raw
    hint = did_you_mean(raw, choices) if isinstance(raw, str) else ""
    options = " or ".join(f"`{c}`" for c in choices)
    out.append(error(loc, f"{key} {show(raw)} is not valid; use {options}{hint}"))
    return None


def error(loc: Location, message: str) -> Problem:
    return Problem(loc.file, loc.line, loc.column, message)


def warning(loc: Location, message: str) -> Problem:
    return Problem(loc.file, loc.line, loc.column, message, severity="warning")


_CURRENCY_SIGNS = "$€£¥"
_DECIMAL_COMMA = re.compile(r"[-+]?\d+,\d{1,2}\Z")                    # 12,50  3,5
_ONE_GROUP = re.compile(r"[-+]?\d{1,3},\d{3}\Z")                      # 1,250: 1250 or 1.25?
_THOUSANDS = re.compile(r"[-+]?\d{1,3}(,\d{3})+(\.\d+)?\Z")           # 1,250,000  1,250.50
_EUROPEAN = re.compile(r"[-+]?\d{1,3}(\.\d{3})+(,\d+)?\Z")            # 1.250,50


def plain_number(number: float) -> str:
    """A number as a person would write it in YAML: 1250000, not 1.25e+06."""
    if number.is_integer() and abs(number) < 1e15:
        return str(int(number))
    return repr(number)


def _number_hint(text: str) -> str | None:
    """How to write a number given as text (`"$40.50"`, `12,50`); None when it is no number.

    The rest of "value `...` is text, not a number". A comma is a decimal comma in much of
    Europe and a thousands separator in the US and UK, so the hint reads it the way the digits
    allow: `12,50` and `3,5` are decimals, `1,250,000` and `1,250.50` have thousands groups, and
    `1,250` could be either, so both readings are offered.
    """
    digits = text.strip(_CURRENCY_SIGNS + " ")
    how = "without quotes or currency signs"
    try:
        number: float | None = float(digits) if "," not in digits else None
    except ValueError:
        number = None
    if number is None and _ONE_GROUP.match(digits) and digits.lstrip("-+")[0] != "0":
        thousands = plain_number(float(digits.replace(",", "")))
        decimal = plain_number(float(digits.replace(",", ".")))
        return (f", and its comma is ambiguous: write `value: {thousands}` if the comma separates "
                f"thousands, or `value: {decimal}` if it is a decimal comma")
    if number is not None:
        pass
    elif _DECIMAL_COMMA.match(digits) or _ONE_GROUP.match(digits):  # 0,250 is a decimal too
        number = float(digits.replace(",", "."))
        how = "with a decimal point, without quotes or currency signs"
    elif _THOUSANDS.match(digits):
        number = float(digits.replace(",", ""))
        how = "without quotes, currency signs or thousands separators"
    elif _EUROPEAN.match(digits):
        number = float(digits.replace(".", "").replace(",", "."))
        how = "without quotes, currency signs or thousands separators"
        how += ", with a decimal point" if "," in digits else ""
    if number is None or not math.isfinite(number) or abs(number) > VALUE_MAX:
        return None
    return f"; write it {how}: `value: {plain_number(number)}`"


def parse_value(raw: Any, currency_hint: str, loc: Location,
                 out: list[Problem]) -> tuple[bool, float | None]:
    """(ok, value): a finite number from 0 to VALUE_MAX (`-0.0` is 0.0), or None for `value: event`."""
    fix = (f"give the value of one conversion in {currency_hint} (e.g. `value: 25`) or "
           f"`value: event` to use the event's own value parameter")
    if isinstance(raw, (bool, ScalarBoolean)):  # an anchored `&a true` is a ScalarBoolean, an int
        out.append(error(loc, f"value {show(raw)} is a yes/no, not an amount; {fix}"))
    elif isinstance(raw, (int, float)):
        # Compare before converting: float() of a 400-digit integer raises OverflowError.
        if isinstance(raw, float) and not math.isfinite(raw):
            out.append(error(loc, f"value {show(raw)} is not a finite number; {fix}"))
        elif raw < 0:
            out.append(error(loc, f"value {show(raw)} is negative; a conversion is worth 0 or more "
                                   f"(use `value: 0` for a goal you count but do not value)"))
        elif raw > VALUE_MAX:
            out.append(error(loc, f"value {show(raw)} is more than {plain_number(VALUE_MAX)} (10^12), "
                                   f"the most one conversion may be worth; check for a typo or "
                                   f"extra digits"))
        else:
            return True, float(raw) + 0.0  # -0.0 + 0.0 is 0.0
    elif isinstance(raw, str):
        text = raw.strip()
        if text == EVENT_VALUE:
            return True, None
        if text.lower() == EVENT_VALUE:
            out.append(error(loc, f"value {show(raw)} must be written in lowercase: `value: event`"))
            return False, None
        hint = _number_hint(text) if len(text) <= 64 else None
        if hint is None:
            out.append(error(loc, f"value {show(raw)} is neither a number nor `event`; {fix}"))
        else:
            out.append(error(loc, f"value {show(raw)} is text, not a number{hint}"))
    else:
        out.append(error(loc, f"value must be a number or `event`, got {show(raw)}; {fix}"))
    return False, None


def parse_property(raw: Any, loc: Location, out: list[Problem],
                   literal: str | None = None) -> str | None:
    """A property id as `properties/123`, or None after reporting why it is not one.

    `literal` is the id as written in the file, when it was a YAML number: YAML reads `0x1F`,
    `+123` and `1_000` as numbers too, but a property id is written in decimal digits only.
    """
    where = "the numeric property id is under Admin → Property settings → Property details"
    digits = "write the id in decimal digits like `123456789` or `properties/123456789`"
    if isinstance(raw, str):
        text = raw.strip()
        if _MEASUREMENT_ID.match(text):
            out.append(error(loc, f"`{quote(text)}` is a measurement id (of a web data stream), "
                                   f"not a property id; {where}, e.g. `properties: [123456789]`"))
            return None
        if _UA_ID.match(text):
            out.append(error(loc, f"`{quote(text)}` is a Universal Analytics tracking id, not a "
                                   f"GA4 property id; {where}"))
            return None
    if isinstance(raw, int) and not isinstance(raw, (bool, ScalarBoolean)):
        if raw > 0 and literal is not None and not re.match(r"[0-9]+\Z", literal):
            out.append(error(loc, f"property id `{quote(literal)}` is not written in decimal "
                                   f"digits only; {digits}"))
            return None
        if type(raw) not in (int, ScalarInt) or getattr(raw, "_underscore", None):
            # 0x1F, 0o17, 0b11 or 1_000, reached through an alias (else `literal` said so)
            out.append(error(loc, f"property id {show(raw)} is not written in decimal digits "
                                   f"only; {digits}"))
            return None
        if raw > PROPERTY_ID_MAX:
            out.append(error(loc, f"property id {show(raw)} is larger than any GA4 property id "
                                   f"(at most {PROPERTY_ID_MAX}); {digits} ({where})"))
            return None
    if isinstance(raw, (int, str)) and not isinstance(raw, (bool, ScalarBoolean)):
        try:
            return property_name(int(raw) if isinstance(raw, int) else str(raw))
        except ValueError:
            pass
    out.append(error(loc, f"property id {show(raw)} is not a numeric GA4 property id; {digits} "
                           f"({where})"))
    return None

