"""The rules for one spec value at a time: event names, amounts, property ids, choices.

Pure functions of a value and its place in the file; each problem becomes a `Problem` with
file:line:column. spec.py applies them while it walks a file. Kept import-light: `ga-sync
validate` must start fast.
"""

from __future__ import annotations

import difflib
import math
import re
from typing import Any, Iterable

from .errors import Problem
from .model import Location, property_id, property_name

EVENT_VALUE = "event"
EVENT_NAME_MAX = 40
RESERVED_PREFIXES = ("firebase_", "google_", "ga_", "_")
# Collected automatically on every web session: counting them as success measures browsing.
BROWSING_EVENTS = frozenset({"page_view", "session_start", "first_visit", "user_engagement", "scroll"})

_MEASUREMENT_ID = re.compile(r"G-[A-Z0-9]{4,}\Z", re.IGNORECASE)
_UA_ID = re.compile(r"UA-\d+(-\d+)?\Z", re.IGNORECASE)

# ---------------------------------------------------------------------------------------------
# Small checks, shared by the file parser


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`; did you mean `x`?` for near misses (difflib), '' when nothing is close."""
    options = list(choices)
    for option in options:
        if option.casefold() == word.casefold():
            return f"; did you mean `{option}`?"
    folded = {option.casefold(): option for option in options}
    close = difflib.get_close_matches(word.casefold(), folded, n=1, cutoff=0.6)
    return f"; did you mean `{folded[close[0]]}`?" if close else ""


def show(raw: Any) -> str:
    """A value as the user wrote it, for messages."""
    if raw is None:
        return "nothing"
    if isinstance(raw, bool):
        return "`true`" if raw else "`false`"
    if isinstance(raw, list):
        return "a list"
    if isinstance(raw, dict):
        return "a mapping"
    return f"`{raw}`"


def check_event_name(name: str) -> list[str]:
    """Problems with a GA4 event name, as messages; [] when GA accepts it.

    GA silently drops or refuses badly named events, so a key event on one would never count.
    https://support.google.com/analytics/answer/13316687 (event naming rules)
    """
    if not name:
        return ["event name is empty; write the GA4 event name, e.g. `event: sign_up`"]
    problems: list[str] = []
    prefix = next((p for p in RESERVED_PREFIXES if name.startswith(p)), None)
    if prefix is not None:
        stripped = name[len(prefix):].lstrip("_")
        hint = f" (e.g. `{stripped}`)" if stripped and not check_event_name(stripped) else ""
        problems.append(f"event name `{name}` starts with `{prefix}`, a prefix GA4 reserves for its "
                        f"own events; rename the event{hint} in the site's tagging and here")
    elif not name[0].isalpha():
        problems.append(f"event name `{name}` must start with a letter")
    bad = sorted({ch for ch in name if not (ch.isalpha() or ch in "0123456789_")})
    if bad:
        shown = ", ".join("space" if ch == " " else f"`{ch}`" for ch in bad)
        fixed = re.sub(r"[^\w]+", "_", name).strip("_")
        hint = f" (e.g. `{fixed}`)" if fixed and not check_event_name(fixed) else ""
        problems.append(f"event name `{name}` contains {shown}; GA4 event names use only letters, "
                        f"digits and underscores{hint}")
    if len(name) > EVENT_NAME_MAX:
        problems.append(f"event name `{name}` is {len(name)} characters long; GA4 allows at most "
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


def _plain(number: float) -> str:
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
        thousands = _plain(float(digits.replace(",", "")))
        decimal = _plain(float(digits.replace(",", ".")))
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
    if number is None or not math.isfinite(number):
        return None
    return f"; write it {how}: `value: {_plain(number)}`"


def parse_value(raw: Any, currency_hint: str, loc: Location,
                 out: list[Problem]) -> tuple[bool, float | None]:
    """(ok, value): a finite number >= 0, or None for `value: event`."""
    fix = (f"give the value of one conversion in {currency_hint} (e.g. `value: 25`) or "
           f"`value: event` to use the event's own value parameter")
    if isinstance(raw, bool):
        out.append(error(loc, f"value {show(raw)} is a yes/no, not an amount; {fix}"))
    elif isinstance(raw, (int, float)):
        number = float(raw)
        if not math.isfinite(number):
            out.append(error(loc, f"value `{raw}` is not a finite number; {fix}"))
        elif number < 0:
            out.append(error(loc, f"value `{raw}` is negative; a conversion is worth 0 or more "
                                   f"(use `value: 0` for a goal you count but do not value)"))
        else:
            return True, number
    elif isinstance(raw, str):
        text = raw.strip()
        if text == EVENT_VALUE:
            return True, None
        if text.lower() == EVENT_VALUE:
            out.append(error(loc, f"value `{raw}` must be written in lowercase: `value: event`"))
            return False, None
        hint = _number_hint(text)
        if hint is None:
            out.append(error(loc, f"value `{raw}` is neither a number nor `event`; {fix}"))
        else:
            out.append(error(loc, f"value `{raw}` is text, not a number{hint}"))
    else:
        out.append(error(loc, f"value must be a number or `event`, got {show(raw)}; {fix}"))
    return False, None


def parse_property(raw: Any, loc: Location, out: list[Problem]) -> str | None:
    """A property id as `properties/123`, or None after reporting why it is not one."""
    where = "the numeric property id is under Admin → Property settings → Property details"
    if isinstance(raw, str):
        text = raw.strip()
        if _MEASUREMENT_ID.match(text):
            out.append(error(loc, f"`{text}` is a measurement id (of a web data stream), not a "
                                   f"property id; {where}, e.g. `properties: [123456789]`"))
            return None
        if _UA_ID.match(text):
            out.append(error(loc, f"`{text}` is a Universal Analytics tracking id, not a GA4 "
                                   f"property id; {where}"))
            return None
    if not isinstance(raw, bool) and isinstance(raw, (int, str)):
        try:
            name = property_name(raw)
        except ValueError:
            pass
        else:
            if property_id(name) != "0":
                return name
    out.append(error(loc, f"property id {show(raw)} is not a numeric GA4 property id; write "
                           f"digits like `123456789` or `properties/123456789` ({where})"))
    return None
