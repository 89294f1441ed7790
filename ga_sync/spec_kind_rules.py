"""The rules for how a goal's event comes about (`page:`, `from:` + `where:`, `session:`) and
for funnels (`funnels:`, `within:`, `identifies:`), one value at a time.

Pure functions of a value and its place in the file, like spec_checks.py, whose wording
helpers they use; spec.py and spec_kinds.py apply them while they walk a file, and `dump`
applies the pure ones to what it reads from GA. Kept import-light: `ga-sync validate` must
start fast.
"""

from __future__ import annotations

import difflib
import math
import re
import unicodedata
from datetime import date
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from ruamel.yaml.scalarbool import ScalarBoolean

from .errors import Problem
from .garules import (AUTOMATIC_EVENTS, BROWSING_EVENTS, EVENT_NAME, EVENT_NAME_MAX,
                      PARAMETER_NAME_MAX, PARAMETER_VALUE_MAX, RESERVED_EVENT_NAMES,
                      RULE_CONDITIONS_MAX)
from .model import (EQUALS, MATCH_OPERATORS, PAGE_EVENT, PAGE_PARAMETER, REGEX, STARTS_WITH,
                    Condition, EventRule, Location, SessionRule)
from .redact import excerpt, redact
from .spec_checks import (ascii_name, did_you_mean, error, kind, plain_number, quote, show,
                          suggestable, warning)

# ---------------------------------------------------------------------------------------------
# How a goal's event comes about: `page:`, `from:` + `where:`, `session:` (docs/spec.md,
# "Goal kinds"). The YAML-side checks need the file's places; the checks of the values
# themselves (`condition_problems`, `origin_problems`) are pure, so `dump` applies them too.

PAGE, FROM, WHERE, SESSION = "page", "from", "where", "session"
#: The goal keys that say how the event comes about (at most one of them), and `where`.
ORIGIN_KEYS = (PAGE, FROM, SESSION)
KIND_KEYS = (PAGE, FROM, WHERE, SESSION)
IGNORE_CASE = "ignore_case"
CONDITION_KEYS = MATCH_OPERATORS + (IGNORE_CASE,)
MIN_PAGE_VIEWS, MIN_SECONDS = "min_page_views", "min_seconds"
SESSION_KEYS = (MIN_PAGE_VIEWS, MIN_SECONDS)
#: ga-sync's bounds on a session goal: more is a typo (a day is 86,400 seconds).
SESSION_MAX = {MIN_PAGE_VIEWS: 1000, MIN_SECONDS: 86_400}
#: `where` conditions one goal may hold: GA's rule holds RULE_CONDITIONS_MAX conditions, one
#: of them the `event_name` condition that `from:` writes.
WHERE_MAX = RULE_CONDITIONS_MAX - 1
#: A parameter name: a letter first, then ASCII letters, digits and `_`, under 40 characters.
PARAMETER_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")
EVENT_NAME_FIELD = "event_name"
_EXAMPLE_EVENT = "quote_thank_you"


@dataclass(frozen=True)
class Places:
    """How to find where a value was written, for messages (spec.py's helpers)."""

    at_key: Callable[[Any, Any], Location]
    at_value: Callable[[Any, Any], Location]
    literal: Callable[[Location], "str | None"]  # a plain scalar as written there


def parameter_problems(name: str) -> list[str]:
    """Problems with a parameter name in `where:`; [] when GA takes it."""
    shown = quote(name)
    if name == EVENT_NAME_FIELD:
        return ["`event_name` is the condition `from:` writes; name the source event with "
                "`from:`, not under `where:`"]
    if not PARAMETER_NAME.match(name):
        return [f"parameter name `{shown}` must start with a letter and use only ASCII letters, "
                f"digits and underscores (as GA names event parameters, e.g. `link_url`)"]
    if len(name) >= PARAMETER_NAME_MAX:
        return [f"parameter name `{shown}` is {len(name)} characters long; GA's parameter names "
                f"are under {PARAMETER_NAME_MAX}"]
    return []


def source_problems(source: str, event: str | None) -> list[str]:
    """Problems with `from:` (the event a rule reads): a valid event name, not the goal's own."""
    shown = quote(source)
    if not source:
        return ["from is empty; name the event the goal is made from, e.g. "
                "`from: file_download`"]
    if not EVENT_NAME.match(source) or len(source) > EVENT_NAME_MAX:
        return [f"from `{shown}` is not a GA4 event name (a letter first, then ASCII letters, "
                f"digits and underscores, at most {EVENT_NAME_MAX} characters); name the event "
                f"the site sends, e.g. `from: file_download`"]
    if source == event:
        return [f"from `{shown}` is the goal's own event; a rule makes a new event from another "
                f"one. If every `{shown}` counts, leave out `from:` and `where:`; to count some of "
                f"them, give the goal a new event name (e.g. `{_renamed(source)}`)"]
    return []


def _renamed(event: str) -> str:
    name = f"{event}_goal"
    return name if len(name) <= EVENT_NAME_MAX else event[:EVENT_NAME_MAX - 2] + "_2"


def made_event_problems(event: str, key: str) -> list[str]:
    """A goal whose event GA makes (`key` is page/from/session) needs a new event name."""
    shown = quote(event)
    if event in AUTOMATIC_EVENTS:
        why = "an event GA4 collects automatically"
    elif event in RESERVED_EVENT_NAMES:
        why = "a name GA4 reserves for its own events"
    else:
        return []
    return [f"event `{shown}` is {why}; a `{key}:` goal makes a new event, so give it a new name "
            f"that says what happened (e.g. `{_EXAMPLE_EVENT}` for a thank-you page)"]


#: Characters a condition value may not hold: controls (C0 and C1, NUL, CR, ESC ...), and the
#: invisible format characters that reorder or hide text (bidi overrides and isolates,
#: zero-width characters, the byte order mark).
_HIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]")


def _hidden_characters(value: str) -> str:
    """'' or a description of the first control or invisible character in `value`."""
    found = _HIDDEN.search(value)
    if found is None:
        return ""
    import unicodedata
    char = found.group()
    name = unicodedata.name(char, "") or {"\x00": "NUL", "\r": "carriage return",
                                          "\n": "line feed", "\t": "tab",
                                          "\x1b": "escape"}.get(char, "a control character")
    return f"U+{ord(char):04X} ({name.lower()}) at character {found.start() + 1}"


def condition_problems(condition: Condition, label: str | None = None) -> list[str]:
    """Problems with a condition's value; [] when GA takes it. `label` names it in messages
    (`page contains`, ``where `link_url` regex``)."""
    value = condition.value
    where = label or f"`{condition.field}` `{condition.op}:` value"
    if not value:
        return [f"{where} is empty; GA needs text to match (leave the condition out to match "
                f"every value)"]
    if not value.strip():
        return [f"{where} is only spaces; GA needs text to match (leave the condition out to "
                f"match every value)"]
    hidden = _hidden_characters(value)
    if hidden:
        return [f"{where} holds {hidden}, which no page address or parameter a person meant "
                "holds and which would show differently in a terminal or in GA: write the "
                "text without it (for a regex, `\\t`-style escapes match such characters)"]
    if len(value) > PARAMETER_VALUE_MAX:
        return [f"{where} is {len(value)} characters long; ga-sync allows at most "
                f"{PARAMETER_VALUE_MAX} (GA's limit for parameter values, as GA documents none "
                f"for conditions): shorten it, e.g. with `contains:` on its telling part"]
    if condition.op == REGEX:
        from . import re2check  # imported here: most specs have no regex, validate starts fast
        why = re2check.problem(value)
        if why is not None:
            return [f"{where} `{quote(value)}` is not a regular expression GA accepts (RE2 "
                    f"syntax): {excerpt(why[:300], 120)}"]
    return []


def session_problems(key: str, raw: Any) -> list[str]:
    """Problems with `min_page_views` / `min_seconds`; [] when it is a count ga-sync takes."""
    unit = "page views" if key == MIN_PAGE_VIEWS else "seconds"
    example = f"`{key}: {5 if key == MIN_PAGE_VIEWS else 180}`"
    if isinstance(raw, (bool, ScalarBoolean)):
        return [f"{key} {show(raw)} is a yes/no, not a number of {unit}; write e.g. {example}"]
    if not isinstance(raw, int):
        return [f"{key} must be a whole number of {unit}, got {show(raw)}; write e.g. {example}"]
    if raw < 1:
        return [f"{key} {show(raw)} must be 1 or more; write e.g. {example}"]
    if raw > SESSION_MAX[key]:
        return [f"{key} {show(raw)} is more than {SESSION_MAX[key]:,} {unit}, the most ga-sync "
                f"takes for one session; check for a typo or extra digits"]
    return []


def origin_problems(event: str, origin: EventRule | SessionRule) -> list[str]:
    """Every problem a spec would report about this origin, for an origin not read from a file
    (`dump` leaves out what a spec could not hold)."""
    if isinstance(origin, SessionRule):
        problems = made_event_problems(event, SESSION)
        set_ = [(k, v) for k, v in ((MIN_PAGE_VIEWS, origin.min_page_views),
                                    (MIN_SECONDS, origin.min_seconds)) if v is not None]
        if len(set_) != 1:
            return problems + ["a session goal has exactly one of min_page_views and "
                               "min_seconds"]
        return problems + session_problems(*set_[0])
    key = PAGE if origin.page is not None else FROM
    problems = made_event_problems(event, key) + source_problems(origin.source, event)
    if len(origin.where) > WHERE_MAX:
        problems.append(f"{len(origin.where)} conditions; GA's rule holds at most "
                        f"{RULE_CONDITIONS_MAX}, one of them on event_name")
    fields = [c.field for c in origin.where]
    if len(set(fields)) != len(fields):
        problems.append("two conditions on one parameter; a spec holds one per parameter")
    for condition in origin.where:
        if condition.op not in MATCH_OPERATORS:
            problems.append(f"operator `{quote(condition.op)}` is not one ga-sync writes")
            continue
        problems += parameter_problems(condition.field) + condition_problems(condition)
    return problems


def _text_of(raw: Any, loc: Location, what: str, places: Places,
             out: list[Problem]) -> str | None:
    """A condition's value as text: a text value, or a number / yes-no / date as written."""
    if isinstance(raw, str):
        return str(raw)
    if isinstance(raw, (bool, ScalarBoolean, int, float, date)):
        literal = places.literal(loc)
        if literal is not None:
            return literal
        out.append(error(loc, f"{what} refers to another value (`*alias`); write the text to "
                              f"match itself, in quotes"))
        return None
    if raw is None:
        out.append(error(loc, f"{what} has no value; write the text to match, e.g. "
                              f"`{{contains: /thank-you}}`"))
    elif isinstance(raw, list):
        hint = ""
        items = [x for x in raw[:5] if isinstance(x, str)]
        if items and len(items) == len(raw) and all(0 < len(x) <= 30 for x in items):
            alternatives = "|".join(re.escape(x) for x in items)
            if len(alternatives) <= 60 and redact(alternatives) == alternatives:
                hint = f" (e.g. `regex: ^({alternatives})$`)"
        out.append(error(loc, f"{what} is a list; a condition matches one value: to accept "
                              f"several, write one `regex:` with alternatives{hint}"))
    elif isinstance(raw, dict):
        out.append(error(loc, f"{what} is a mapping; a condition's value is text to match"))
    else:
        out.append(error(loc, f"{what} must be text to match, got {show(raw)}"))
    return None


def parse_condition(field_name: str, raw: Any, loc: Location, places: Places,
                    out: list[Problem], label: str) -> Condition | None:
    """One condition: a plain value (equals) or `{operator: value, ignore_case: bool}`."""
    before = len(out)
    if not isinstance(raw, dict):
        value = _text_of(raw, loc, label, places, out)
        op, ignore_case, value_loc = EQUALS, False, loc
    else:
        ops = [k for k in raw if isinstance(k, str) and k in MATCH_OPERATORS]
        for key in raw:
            if isinstance(key, str) and key in CONDITION_KEYS:
                continue
            hint = did_you_mean(key, CONDITION_KEYS) if isinstance(key, str) else ""
            out.append(error(places.at_key(raw, key),
                             f"unknown operator {show(key)} in {label}: use one of "
                             f"{', '.join(MATCH_OPERATORS)} (and optionally `ignore_case: "
                             f"true`){hint}"))
        if not ops:
            if len(out) == before:
                out.append(error(loc, f"{label} needs one operator: equals, contains, "
                                      f"starts_with, ends_with or regex, e.g. "
                                      f"`{{contains: /thank-you}}`"))
            return None
        if len(ops) > 1:
            out.append(error(places.at_key(raw, ops[1]),
                             f"{label} has both `{ops[0]}` and `{ops[1]}`; a condition takes one "
                             f"operator: to accept several forms, write one `regex:`"))
            return None
        op = ops[0]
        value_loc = places.at_value(raw, op)
        value = _text_of(raw[op], value_loc, f"{label} `{op}:` value", places, out)
        ignore_case = False
        if IGNORE_CASE in raw:
            flag = raw[IGNORE_CASE]
            if isinstance(flag, (bool, ScalarBoolean)):
                ignore_case = bool(flag)
            else:
                out.append(error(places.at_value(raw, IGNORE_CASE),
                                 f"ignore_case must be `true` or `false`, got {show(flag)}"))
    if value is None or len(out) > before:
        return None
    condition = Condition(field_name, op, value, ignore_case)
    for message in condition_problems(condition, f"{label} `{op}:` value"
                                      if isinstance(raw, dict) else label):
        out.append(error(value_loc, message))
    return None if len(out) > before else condition


@dataclass
class Origin:
    """What `parse_origin` found: ok is False after an error; `key` is page/from/session."""

    ok: bool = True
    origin: EventRule | SessionRule | None = None
    key: str | None = None
    source_loc: Location | None = None  # where `from:` is written


def parse_origin(item: Any, event: Any, places: Places, out: list[Problem]) -> Origin:
    """A goal's `page:`, `from:` + `where:` or `session:`, every problem reported at its place."""
    before = len(out)
    result = Origin()
    written = sorted((k for k in ORIGIN_KEYS if k in item),
                     key=lambda k: (places.at_key(item, k).line or 0,
                                    places.at_key(item, k).column or 0))
    if len(written) > 1:
        first = places.at_key(item, written[0])
        for key in written[1:]:
            out.append(error(places.at_key(item, key),
                             f"`{key}:` and `{written[0]}:` (at line {first.line}:{first.column})"
                             f" both say how the event comes about; a goal takes one of `page:`, "
                             f"`from:` or `session:`: keep one (a goal with none of them counts "
                             f"an event the site sends)"))
    if WHERE in item and FROM not in item:
        extra = ("; a `page:` goal has one condition, on page_location: for more, write "
                 "`from: page_view` with every condition under `where:`" if PAGE in item else "")
        out.append(error(places.at_key(item, WHERE),
                         f"`where:` needs `from:`, the event its conditions apply to (e.g. "
                         f"`from: file_download`){extra}"))
    rules: list[EventRule | SessionRule] = []
    if PAGE in item:
        loc = places.at_value(item, PAGE) if item[PAGE] is not None else places.at_key(item, PAGE)
        condition = parse_condition(PAGE_PARAMETER, item[PAGE], loc, places, out, "page")
        if condition is not None:
            rules.append(EventRule(PAGE_EVENT, (condition,)))
            _page_warnings(condition, loc, out)
    if FROM in item:
        rule = _parse_from(item, event, places, out, result)
        if rule is not None:
            rules.append(rule)
    if SESSION in item:
        rule_s = _parse_session(item[SESSION], places.at_value(item, SESSION), places, out)
        if rule_s is not None:
            rules.append(rule_s)
    if written and isinstance(event, str) and event:
        for message in made_event_problems(event, written[0]):
            out.append(error(places.at_value(item, "event"), message))
    if any(p.severity == "error" for p in out[before:]):
        result.ok = False
        return result
    if written:
        result.origin, result.key = rules[0], written[0]
    return result


def _page_warnings(condition: Condition, loc: Location, out: list[Problem]) -> None:
    """page_location is the full URL: `equals: /thank-you` or `starts_with: /thank` never match."""
    if condition.op in (EQUALS, STARTS_WITH) and condition.value.startswith("/"):
        out.append(warning(loc, f"page_location is the full address (`https://example.com"
                                f"{quote(condition.value)}`...), so {condition.op} "
                                f"`{quote(condition.value)}` never matches; write "
                                f"`{{contains: {quote(condition.value)}}}` or the full address"))


def _parse_from(item: Any, event: Any, places: Places, out: list[Problem],
                result: Origin) -> EventRule | None:
    before = len(out)
    raw = item[FROM]
    loc = places.at_value(item, FROM)
    result.source_loc = loc
    source: str | None = None
    if not isinstance(raw, str):
        out.append(error(loc, f"from must be a GA4 event name, got {show(raw)}; e.g. "
                              f"`from: file_download`"))
    else:
        for message in source_problems(raw, event if isinstance(event, str) else None):
            out.append(error(loc, message))
        source = raw
    conditions: list[Condition] = []
    if WHERE in item:
        where = item[WHERE]
        where_loc = places.at_value(item, WHERE) if where is not None else \
            places.at_key(item, WHERE)
        if where is None or (isinstance(where, dict) and not where):
            out.append(error(where_loc, f"where is empty; list the conditions (e.g. `where: "
                                        f"{{file_extension: pdf}}`), or leave out `where:` to "
                                        f"count every `{quote(raw) if isinstance(raw, str) else 'from'}`"
                                        f" event"))
        elif not isinstance(where, dict):
            out.append(error(where_loc, f"where must be a mapping of parameter names to values, "
                                        f"e.g. `where: {{file_extension: pdf}}`, got "
                                        f"{kind(where)}"))
        elif len(where) > WHERE_MAX:
            out.append(error(where_loc, f"where has {len(where)} conditions; GA's event create "
                                        f"rule holds at most {RULE_CONDITIONS_MAX}, one of them "
                                        f"the event_name condition `from:` writes, so at most "
                                        f"{WHERE_MAX} here: merge some with `regex:`"))
        else:
            for name, value in where.items():
                key_loc = places.at_key(where, name)
                if not isinstance(name, str):
                    out.append(error(key_loc, f"parameter name {show(name)} is not text; write a "
                                              f"GA event parameter name, e.g. `link_url`"))
                    continue
                name_problems = parameter_problems(name)
                for message in name_problems:
                    out.append(error(key_loc, message))
                value_loc = places.at_value(where, name) if value is not None else key_loc
                condition = parse_condition(name, value, value_loc, places, out,
                                            f"where `{quote(name)}`")
                if condition is not None and not name_problems:
                    conditions.append(condition)
    if len(out) > before or source is None:
        return None
    return EventRule(source, tuple(conditions))


def _parse_session(raw: Any, loc: Location, places: Places,
                   out: list[Problem]) -> SessionRule | None:
    example = "`session: {min_page_views: 5}` or `session: {min_seconds: 180}`"
    if not isinstance(raw, dict) or not raw:
        out.append(error(loc, f"session must name one threshold, {example}; got {show(raw)}"))
        return None
    before = len(out)
    for key in raw:
        if not (isinstance(key, str) and key in SESSION_KEYS):
            hint = did_you_mean(key, SESSION_KEYS) if isinstance(key, str) else ""
            out.append(error(places.at_key(raw, key),
                             f"unknown session key {show(key)}: use `min_page_views` or "
                             f"`min_seconds`{hint}"))
    given = [k for k in SESSION_KEYS if k in raw]
    if len(given) > 1:
        out.append(error(places.at_key(raw, given[1]),
                         "session takes one of `min_page_views` and `min_seconds`, not both; "
                         "GA's audience trigger fires on one condition here: make two goals"))
        return None
    if not given:
        if len(out) == before:
            out.append(error(loc, f"session needs `min_page_views:` or `min_seconds:`, {example}"))
        return None
    key = given[0]
    for message in session_problems(key, raw[key]):
        out.append(error(places.at_value(raw, key), message))
    if len(out) > before:
        return None
    return SessionRule(**{key: int(raw[key])})


# ---------------------------------------------------------------------------------------------
# Funnels and identifying goals (docs/spec.md, "Funnels and identifying goals"). Pure checks of
# one value; spec_kinds.py walks the `funnels:` list and checks steps against the merged goals.

NAME, STEPS, WITHIN, OPEN = "name", "steps", "within", "open"
FUNNEL_KEYS = (NAME, STEPS, WITHIN, OPEN)
IDENTIFIES = "identifies"
#: Steps in one funnel: GA's funnel reports (exploration, runFunnelReport) take 1 to 10 steps,
#: and a funnel of one step has no drop-off to show.
FUNNEL_STEPS_MIN, FUNNEL_STEPS_MAX = 2, 10
#: ga-sync's bound on a funnel's name: it labels the report's funnel chart.
FUNNEL_NAME_MAX = 60
#: `within` units, in seconds.
WITHIN_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}
#: ga-sync's bound on `within`: a report period is at most about a year, so more is a typo.
WITHIN_MAX = 365 * 86_400
#: GA4's recommended ecommerce and lead events a funnel commonly passes through without their
#: being goals. https://developers.google.com/analytics/devguides/collection/ga4/reference/events
RECOMMENDED_STEP_EVENTS = frozenset({
    "view_item", "view_item_list", "select_item", "add_to_cart", "view_cart", "begin_checkout",
    "add_shipping_info", "add_payment_info", "purchase", "sign_up", "login", "generate_lead"})
#: Steps that need not be goals: GA collects them itself, or recommends them.
KNOWN_STEP_EVENTS = AUTOMATIC_EVENTS | BROWSING_EVENTS | RECOMMENDED_STEP_EVENTS
_EXAMPLE_STEPS = "`steps: [view_item, add_to_cart, begin_checkout, purchase]`"
_UNIT_WORDS = {"sec": "s", "secs": "s", "second": "s", "seconds": "s", "min": "m", "mins": "m",
               "minute": "m", "minutes": "m", "hr": "h", "hrs": "h", "hour": "h", "hours": "h",
               "day": "d", "days": "d"}
_WEEK_WORDS = ("w", "wk", "wks", "week", "weeks")
_VAGUE_WORDS = ("mo", "mon", "month", "months", "y", "yr", "yrs", "year", "years")
_DURATION = re.compile(r"\s*([0-9]+(?:\.[0-9]*)?)\s*([A-Za-z]*)\s*\Z")
_UNITS_HINT = "`30d` (days), `12h` (hours), `90m` (minutes) or `45s` (seconds)"


def funnel_name_problems(name: str) -> list[str]:
    """Problems with a funnel's name (already stripped); [] when it is a usable label."""
    if not name:
        return ["funnel name is empty; write a short label for the report, e.g. "
                "`name: checkout`"]
    if any(not ch.isprintable() for ch in name):
        return [f"funnel name `{quote(name)}` holds a line break or control character; write "
                f"it on one line"]
    if len(name) > FUNNEL_NAME_MAX:
        return [f"funnel name `{quote(name)}` is {len(name)} characters long; at most "
                f"{FUNNEL_NAME_MAX} (it labels the report's funnel chart): shorten it"]
    return []


def step_problems(step: str, known: Iterable[str] = ()) -> list[str]:
    """Problems with a funnel step: a GA4 event name as the site sends it. A suggestion takes
    the spelling of `known` events (the spec's goals) or GA's own events when one matches."""
    known = set(known) | KNOWN_STEP_EVENTS
    shown = quote(step)
    if not step:
        return ["step is empty; write a GA4 event name, e.g. `add_to_cart`"]
    if EVENT_NAME.match(step) and len(step) <= EVENT_NAME_MAX:
        return []
    fixed = ascii_name(step)[:EVENT_NAME_MAX]
    if fixed.lower() != fixed and fixed.lower() in known:
        fixed = fixed.lower()  # `Add-To-Cart` -> the spec's `add_to_cart`
    hint = f"; did you mean `{fixed}`?" if fixed and fixed != step and \
        suggestable(step, fixed) and EVENT_NAME.match(fixed) else ""
    return [f"step `{shown}` is not a GA4 event name (a letter first, then ASCII letters, "
            f"digits and underscores, at most {EVENT_NAME_MAX} characters){hint}"]


def _duration(seconds: int) -> str:
    """Seconds as `within` writes them: the largest unit that divides them (`2592000` -> `30d`)."""
    for unit in ("d", "h", "m"):
        if seconds % WITHIN_UNITS[unit] == 0:
            return f"{seconds // WITHIN_UNITS[unit]}{unit}"
    return f"{seconds}s"


def within_text(seconds: int) -> str:
    """`within` as a spec writes it (for dump)."""
    return _duration(seconds)


def parse_within(raw: Any, loc: Location, out: list[Problem]) -> int | None:
    """`within`, a whole number and a unit (`30d`, `12h`, `90m`, `45s`), as seconds; None after
    reporting why it is not one. At most WITHIN_MAX, more than 0."""
    before = len(out)
    text = str(raw) if isinstance(raw, str) else None
    match = _DURATION.match(text) if text is not None and len(text) <= 40 else None
    if isinstance(raw, (bool, ScalarBoolean)):
        out.append(error(loc, f"within {show(raw)} is a yes/no, not a duration; write one of "
                              f"{_UNITS_HINT}, or leave out `within:` for no limit"))
    elif isinstance(raw, (int, float)):
        number = plain_number(float(raw)) if isinstance(raw, float) and math.isfinite(raw) \
            and abs(raw) < 1e15 else (str(int(raw)) if isinstance(raw, int)
                                     and abs(raw) < 10 ** 15 else "30")
        if not float(number) > 0:
            number = "30"  # `0d` would be refused next: suggest a duration that is one
        out.append(error(loc, f"within {show(raw)} has no unit; write the number with one: "
                              f"`{number}d` (days), `{number}h` (hours), `{number}m` (minutes) "
                              f"or `{number}s` (seconds)"))
    elif match is None:
        out.append(error(loc, f"within must be a duration such as {_UNITS_HINT}, got "
                              f"{show(raw)}; leave out `within:` for no limit"))
    else:
        number, unit = match.group(1), match.group(2)
        word = unit.lower()
        if "." in number:
            whole = float(number) * WITHIN_UNITS.get(_UNIT_WORDS.get(word, word), 0)
            hint = (f": write `{_duration(int(whole))}`" if whole.is_integer() and whole > 0
                    else "")
            out.append(error(loc, f"within {show(raw)} is not a whole number of a unit"
                                  f"{hint}"))
        elif not unit:
            out.append(error(loc, f"within {show(raw)} has no unit; write the number with one: "
                                  f"`{int(number)}d` (days), `{int(number)}h` (hours), "
                                  f"`{int(number)}m` (minutes) or `{int(number)}s` (seconds)"))
        elif word in _WEEK_WORDS:
            out.append(error(loc, f"within {show(raw)}: weeks are written in days, "
                                  f"`{int(number) * 7}d`"))
        elif word in _VAGUE_WORDS or unit == "M":
            out.append(error(loc, f"within {show(raw)}: months and years vary in length; write "
                                  f"days, e.g. `30d` (`m` is minutes)"))
        elif unit not in WITHIN_UNITS:
            fixed = _UNIT_WORDS.get(word, word if word in WITHIN_UNITS else None)
            hint = f"`{int(number)}{fixed}`" if fixed else _UNITS_HINT
            out.append(error(loc, f"within {show(raw)} is not a duration ga-sync reads; write "
                                  f"{hint}"))
        elif text is not None and text.strip() != number + unit:
            out.append(error(loc, f"within {show(raw)}: write the number and its unit "
                                  f"together, `{int(number)}{unit}`"))
    if len(out) > before:
        return None
    assert match is not None
    seconds = int(match.group(1)) * WITHIN_UNITS[match.group(2)]
    if seconds <= 0:
        out.append(error(loc, f"within {show(raw)} must be more than 0; leave out `within:` "
                              f"for no limit"))
        return None
    if seconds > WITHIN_MAX:
        out.append(error(loc, f"within {show(raw)} is more than 365 days, the most ga-sync "
                              f"takes (a report covers at most about a year); write at most "
                              f"`365d`, or leave out `within:` for no limit"))
        return None
    return seconds


def parse_flag(raw: Any, key: str, loc: Location, out: list[Problem], what: str) -> bool | None:
    """A `true`/`false` key (`open`, `identifies`); None after reporting why it is not one."""
    if isinstance(raw, (bool, ScalarBoolean)):
        return bool(raw)
    word = raw.strip().lower() if isinstance(raw, str) and len(raw) < 10 else None
    if word in ("true", "false"):
        out.append(error(loc, f"{key} `{quote(raw)}` is text; write `{word}` without quotes"))
    elif word in ("yes", "no", "on", "off"):
        written = "false" if word in ("no", "off") else "true"
        out.append(error(loc, f"{key} `{quote(raw)}` is text to YAML 1.2 (which ga-sync reads); "
                              f"write `{written}`"))
    else:
        out.append(error(loc, f"{key} must be `true` or `false`, got {show(raw)}; {what}"))
    return None


def step_hint(step: str, goals: Iterable[str]) -> str:
    """A did-you-mean for a step that is no goal: the spec's goals first, then (closer matches
    only) the events GA collects or recommends."""
    hint = did_you_mean(step, goals)
    if hint or len(step) > 64:
        return hint
    close = difflib.get_close_matches(step, sorted(KNOWN_STEP_EVENTS), n=1, cutoff=0.85)
    return f"; did you mean `{close[0]}`?" if close else ""
