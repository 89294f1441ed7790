"""YAML goal specs -> validated `Spec` objects, with file:line:column on every problem.

A spec names the macro and micro conversions of one client's site and the economic value of
each (Kaushik's goal-value method); each goal becomes a GA4 key event. This module only reads
and writes text: it never talks to GA, so `ga-sync validate` runs offline and starts fast.
The format is described in docs/spec.md.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from ruamel.yaml import YAML
from ruamel.yaml.composer import Composer, MaxDepthExceededError
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from .currencies import CURRENCY_CODES
from .errors import Problem, SpecError
from .garules import (ANALYTICS_360, AUDIENCE_TRIGGERS_PER_PROPERTY, BROWSING_EVENTS,
                      CREATED_EVENTS_PER_PROPERTY, DEFAULT_KEY_EVENTS, EVENT_NAME_MAX,
                      KEY_EVENT_LIMITS, RESERVED_PREFIXES, SERVICE_LEVELS, STANDARD)
from .redact import excerpt
from .spec_rules import (EVENT_VALUE, FUNNEL_KEYS, FUNNEL_STEPS_MAX, FUNNEL_STEPS_MIN,
                         IDENTIFIES, KIND_KEYS, KNOWN_STEP_EVENTS, NAME, OPEN, STEPS, VALUE_MAX,
                         WITHIN, Places, check_event_name, choice, did_you_mean, error,
                         funnel_name_problems, kind, parse_flag, parse_origin, parse_property,
                         parse_value, parse_within, quote, quote_path, show, step_hint,
                         step_problems, warning)
from .model import (
    COUNTING_METHODS,
    ONCE_PER_EVENT,
    RATE_BASES,
    SESSIONS,
    TIERS,
    Funnel,
    Goal,
    EventRule,
    Location,
    SessionRule,
    Spec,
    property_id,
)

__all__ = [
    "BROWSING_EVENTS",
    "EVENT_NAME_MAX",
    "EVENT_VALUE",
    "EXTENDS_DEPTH_MAX",
    "FILE_BYTES_MAX",
    "GOALS_MAX",
    "RESERVED_PREFIXES",
    "VALUE_MAX",
    "KEY_EVENT_LIMITS",
    "SERVICE_LEVELS",
    "check_event_name",
    "load_spec",
    "load_specs",
    "validate_paths",
]

TOP_LEVEL_KEYS = ("client", "property", "properties", "currency", "rate_basis", "service_level",
                  "extends", "goals", "funnels")
GOAL_KEYS = ("event", "tier", "value", "counting", "category", "description", IDENTIFIES) \
    + KIND_KEYS
REQUIRED_GOAL_KEYS = ("event", "tier", "value")

# Limits that keep one odd file from costing unbounded time or memory (docs/spec.md, "Limits").
# The YAML parser reads about 10 µs a byte and slower per value, so the budgets are in both.
FILE_BYTES_MAX = 256 * 1024  # the largest real spec is ~15 KB
GOALS_MAX = 500  # per file; a property holds at most 50 custom key events anyway
PROPERTIES_MAX = 500  # per file
YAML_VALUES_MAX = 10_000  # scalars, lists and mappings (and aliases) in one file
YAML_DEPTH_MAX = 32  # a spec is 4 levels deep
EXTENDS_DEPTH_MAX = 32  # files in one `extends` chain
EXTENDS_PATH_MAX = 1024  # characters in an `extends:` path
PROBLEMS_PER_FILE_MAX = 100  # then one line says the rest were not listed


# ---------------------------------------------------------------------------------------------
# Where things are


def _loc(file: str, pair: Any) -> Location:
    """ruamel keeps 0-based (line, column); people and editors count from 1."""
    try:
        return Location(file, int(pair[0]) + 1, int(pair[1]) + 1)
    except (TypeError, IndexError, ValueError):
        return Location(file)


def _at_node(file: str, node: Any) -> Location:
    lc = getattr(node, "lc", None)
    if lc is None or lc.line is None:
        return Location(file, 1, 1)
    return _loc(file, (lc.line, lc.col))


def _at_key(file: str, mapping: Any, key: Any) -> Location:
    try:
        return _loc(file, mapping.lc.key(key))
    except (AttributeError, KeyError, TypeError):
        return _at_node(file, mapping)


def _at_value(file: str, mapping: Any, key: Any) -> Location:
    try:
        return _loc(file, mapping.lc.value(key))
    except (AttributeError, KeyError, TypeError):
        return _at_key(file, mapping, key)


def _at_item(file: str, seq: Any, index: int) -> Location:
    try:
        return _loc(file, seq.lc.item(index))
    except (AttributeError, KeyError, TypeError, IndexError):
        return _at_node(file, seq)


_SCALAR_TOKEN = re.compile(r"[^\s,\[\]{}#]+")


def _literal(parsed: _Parsed, loc: Location) -> str | None:
    """A plain scalar as written at `loc` (after any `&anchor` or `!tag`); None for an alias."""
    if loc.line is None or loc.column is None or loc.line > len(parsed.lines):
        return None
    text = parsed.lines[loc.line - 1]
    pos = loc.column - 1
    while True:
        token = _SCALAR_TOKEN.match(text, pos)
        if token is None:
            return None
        if token.group().startswith(("&", "!")):  # anchor or tag: the value follows
            pos = token.end()
            while pos < len(text) and text[pos] in " \t":
                pos += 1
            continue
        return None if token.group().startswith("*") else token.group()


def _where(loc: Location) -> str:
    """A short back-reference for messages that point at a second place."""
    if loc.line is None:
        return loc.file
    return f"line {loc.line}:{loc.column}"


# ---------------------------------------------------------------------------------------------
# One file


class _TooManyProblems(Exception):
    """Raised by _Problems when a file has said enough; the parse of that file stops there."""


class _Problems(list):  # type: ignore[type-arg]
    """A file's problems, at most PROBLEMS_PER_FILE_MAX of them (bounded output, bounded time)."""

    def append(self, problem: Problem) -> None:
        if len(self) >= PROBLEMS_PER_FILE_MAX:
            raise _TooManyProblems
        super().append(problem)

    def extend(self, problems: Iterable[Problem]) -> None:
        for problem in problems:
            self.append(problem)


@dataclass
class _Parsed:
    """What one YAML file says, validated key by key (before `extends` is merged)."""

    file: str  # as shown in messages
    path: Path  # resolved; the cache key
    problems: list[Problem] = field(default_factory=_Problems)
    failure: str | None = None  # why the file could not be read as a mapping
    root: Location | None = None
    present: set[str] = field(default_factory=set)  # keys written, valid or not
    fields: dict[str, tuple[Any, Location]] = field(default_factory=dict)
    goals: list[Goal] | None = None
    extends: tuple[str, Location] | None = None
    lines: list[str] = field(default_factory=list, repr=False)  # the text, for literals
    sources: dict[int, Location] = field(default_factory=dict)  # id(goal) -> where `from:` is
    funnels: list[Funnel] | None = None
    steps_at: dict[int, tuple[Location, ...]] = field(default_factory=dict)  # id(funnel) -> steps

    @property
    def has_errors(self) -> bool:
        return any(p.severity == "error" for p in self.problems)


def _size(n: int) -> str:
    return f"{n // 1024} KiB" if n % 1024 == 0 else f"{n} bytes"


_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"))


def _not_regular(mode: int) -> str:
    return next((what for test, what in _KINDS if test(mode)), "not a regular file")


@dataclass(frozen=True)
class _Unreadable:
    """Why a file cannot be a spec: `failure` ends "cannot extend `x`: ...", `message` stands alone."""

    failure: str
    message: str


def _unreadable(path: Path) -> _Unreadable | None:
    """Why `path` is no regular file that can be opened, without opening it; None if it is one.

    A FIFO would block the read, a device never end, a directory or socket fail oddly: so the
    kind of file is looked at first (with symlinks followed).
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        if os.path.islink(path):
            return _Unreadable("it is a broken symbolic link (what it points to does not exist)",
                               "is a broken symbolic link (what it points to does not exist); "
                               "fix or remove the link")
        return _Unreadable("it does not exist", "file not found; check the path")
    except (OSError, ValueError) as exc:
        if isinstance(exc, OSError) and exc.errno == errno.ELOOP:
            return _Unreadable("it is a symbolic link loop",
                               "is a symbolic link loop (links that point at each other); fix "
                               "or remove the link")
        reason = (exc.strerror if isinstance(exc, OSError) else None) or "not a valid path"
        return _Unreadable(f"it cannot be read ({reason})",
                           f"cannot read the file ({reason}); check the path and its permissions")
    if stat.S_ISDIR(mode):
        return _Unreadable("it is a directory", "is a directory, not a spec file")
    if not stat.S_ISREG(mode):
        what = _not_regular(mode)
        return _Unreadable(f"it is {what}, not a regular file",
                           f"is {what}, not a regular file; a goal spec is a .yaml text file")
    return None


def _too_big(size: int | None) -> _Unreadable:
    known = f" ({size:,} bytes)" if size is not None else ""
    return _Unreadable(f"it is larger than {_size(FILE_BYTES_MAX)}",
                       f"is larger than {_size(FILE_BYTES_MAX)}{known}, the most a goal spec may "
                       f"be; check the path (a spec is a short text file)")


def _read_bytes(path: Path) -> bytes | _Unreadable:
    """At most FILE_BYTES_MAX bytes of a regular file, or why not."""
    why = _unreadable(path)
    if why is not None:
        return why
    try:
        # O_NONBLOCK: should the file turn into a FIFO between stat and open, open still returns.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return _Unreadable("it is a symbolic link loop", "is a symbolic link loop; fix or "
                                                             "remove the link")
        reason = exc.strerror or str(exc)
        return _Unreadable(f"it cannot be read ({reason})",
                           f"cannot read the file ({reason}); check its permissions")
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            what = _not_regular(info.st_mode)
            return _Unreadable(f"it is {what}, not a regular file",
                               f"is {what}, not a regular file; a goal spec is a .yaml text file")
        if info.st_size > FILE_BYTES_MAX:
            return _too_big(info.st_size)
        chunks: list[bytes] = []
        left = FILE_BYTES_MAX + 1
        while left > 0:
            chunk = os.read(fd, left)
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        return _Unreadable(f"it cannot be read ({reason})",
                           f"cannot read the file ({reason}); check its permissions")
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > FILE_BYTES_MAX:
        return _too_big(None)  # it grew, or stat did not know (/proc)
    return data


class _ValueBudget(Exception):
    def __init__(self, mark: Any) -> None:
        super().__init__("too many values")
        self.mark = mark


class _BoundedComposer(Composer):
    """ruamel's composer, counting values: the parser costs time per value, aliases included."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._values = getattr(self, "_values", 0) + 1
        if self._values > YAML_VALUES_MAX:
            raise _ValueBudget(self.parser.peek_event().start_mark)
        return super().compose_node(parent, index)


def _yaml_message(exc: MarkedYAMLError) -> str:
    """ruamel's description of a syntax error, without the values it may quote from the file."""
    if isinstance(exc, MaxDepthExceededError):
        return (f"nested more than {YAML_DEPTH_MAX} levels deep; a goal spec is 4 levels deep "
                f"(spec, goals, goal, value)")
    if isinstance(exc, DuplicateKeyError):
        problem = str(exc.problem or "").split(" with value ", 1)[0]
        return f"{excerpt(problem[:400], 80)}; a key may appear only once in a mapping"
    parts = [excerpt(str(part)[:400], 80) for part in (exc.context, exc.problem) if part]
    return ": ".join(parts) + (" (the mistake may be just before this point, e.g. an unclosed "
                               "bracket or quote)")


def _read_yaml(parsed: _Parsed) -> Any:
    """The file's YAML document, or None after recording why it could not be read."""
    file, out = parsed.file, parsed.problems
    data = _read_bytes(parsed.path)
    if isinstance(data, _Unreadable):
        parsed.failure = data.failure
        out.append(Problem(file, None, None, data.message))
        return None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        parsed.failure = "it is not UTF-8 text"
        out.append(Problem(file, None, None, f"not UTF-8 text (bad byte at offset {exc.start}); "
                                             f"save the file as UTF-8"))
        return None
    parsed.lines = text.splitlines()
    parsed.failure = "it is not valid YAML"  # until it is read
    yaml = YAML(typ="rt")
    yaml.Composer = _BoundedComposer
    yaml.max_depth = YAML_DEPTH_MAX
    try:
        with warnings.catch_warnings():  # e.g. a reused anchor: the library never prints
            warnings.simplefilter("ignore")
            document = yaml.load(text)
    except _ValueBudget as exc:
        mark = exc.mark
        out.append(Problem(file, mark.line + 1 if mark else None, mark.column + 1 if mark else None,
                           f"more than {YAML_VALUES_MAX:,} values in one file; a goal spec has "
                           f"at most {GOALS_MAX} goals: check that this is a goal spec"))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        column = mark.column + 1 if mark is not None else None
        out.append(Problem(file, line, column, f"not valid YAML: {_yaml_message(exc)}"))
    except YAMLError as exc:
        out.append(Problem(file, None, None, f"not valid YAML: {excerpt(str(exc)[:400], 120)}"))
    except RecursionError:
        out.append(Problem(file, None, None, f"not valid YAML here: nested more than "
                                             f"{YAML_DEPTH_MAX} levels deep"))
    except (ValueError, TypeError, OverflowError, AttributeError, KeyError, IndexError) as exc:
        # The parser's own failures on odd input (a 5,000-digit number, a date like
        # 2024-02-30, an odd tag): the file is what is wrong, so say so rather than crash.
        out.append(Problem(file, None, None, f"not valid YAML: the YAML reader failed on this "
                                             f"file ({type(exc).__name__}: "
                                             f"{excerpt(str(exc)[:400], 80)})"))
    else:
        parsed.failure = None
        return document
    return None


def _parse_file(file: str, path: Path) -> _Parsed:
    """Read and check one file on its own; merging and required keys come later."""
    parsed = _Parsed(file, path)
    try:
        _parse_into(parsed)
    except _TooManyProblems:
        last = max(parsed.problems, key=lambda p: (p.line or 0, p.column or 0))
        list.append(parsed.problems, Problem(
            file, last.line, last.column, f"more than {PROBLEMS_PER_FILE_MAX} problems in this "
                                          f"file; the rest are not listed: fix these first, or "
                                          f"check that this is a goal spec"))
        parsed.goals = None
    return parsed


def _parse_into(parsed: _Parsed) -> None:
    file, path = parsed.file, parsed.path
    data = _read_yaml(parsed)
    if parsed.failure is not None:
        return
    out = parsed.problems
    if not isinstance(data, dict):
        parsed.failure = "its top level is not a mapping"
        # Only the kind: a key file or a .env given by mistake must not be quoted.
        out.append(Problem(file, 1, 1, f"the top level is {kind(data)}; a goal spec is a mapping "
                                       f"of keys (client:, properties:, currency:, goals:)"))
        return
    parsed.root = _at_node(file, data)
    for key in data:
        if isinstance(key, str) and key in TOP_LEVEL_KEYS:
            parsed.present.add(key)
            continue
        loc = _at_key(file, data, key)
        if isinstance(key, str) and key in GOAL_KEYS:
            out.append(error(loc, f"`{key}` belongs to a goal; move it under an entry of `goals:`"))
        else:
            hint = did_you_mean(key, TOP_LEVEL_KEYS) if isinstance(key, str) else ""
            out.append(error(loc, f"unknown key {show(key)}{hint} (top-level keys: "
                                   f"{', '.join(TOP_LEVEL_KEYS)})"))

    if "client" in data:
        raw = data["client"]
        if isinstance(raw, str) and raw.strip():
            parsed.fields["client"] = (str(raw).strip(), _at_value(file, data, "client"))
        else:
            out.append(error(_at_value(file, data, "client"),
                              f"client must be a name, got {show(raw)}; write a label, e.g. "
                              f"`client: Acme Outdoor`"))
    _parse_properties(parsed, data)
    if "currency" in data:
        loc = _at_value(file, data, "currency")
        raw = data["currency"]
        code = raw.strip().upper() if isinstance(raw, str) else None
        if code in CURRENCY_CODES:
            parsed.fields["currency"] = (code, loc)
        elif code:
            hint = did_you_mean(code, sorted(CURRENCY_CODES))
            out.append(error(loc, f"currency {show(raw)} is not an active ISO 4217 code (such as "
                                   f"USD, EUR, GBP){hint}"))
        else:
            out.append(error(loc, f"currency must be an ISO 4217 code such as USD, EUR or GBP, "
                                   f"got {show(raw)}"))
    for key, choices in (("rate_basis", RATE_BASES), ("service_level", SERVICE_LEVELS)):
        if key in data:
            loc = _at_value(file, data, key)
            value = choice(data[key], choices, key, loc, out)
            if value is not None:
                parsed.fields[key] = (value, loc)
    if "extends" in data:
        raw = data["extends"]
        loc = _at_value(file, data, "extends")
        if isinstance(raw, str) and len(raw.strip()) > EXTENDS_PATH_MAX:
            out.append(error(loc, f"extends is {len(raw.strip())} characters long; write the "
                                   f"path of the base spec relative to this file, e.g. "
                                   f"`extends: _agency_defaults.yaml`"))
        elif isinstance(raw, str) and raw.strip():
            parsed.extends = (raw.strip(), loc)
        else:
            out.append(error(loc, f"extends must be a file name, got {show(raw)}; write the path "
                                   f"of the base spec relative to this file, e.g. "
                                   f"`extends: _agency_defaults.yaml`"))
    if "goals" in data:
        _parse_goals(parsed, data)
    if "funnels" in data:
        _parse_funnels(parsed, data)


def _parse_properties(parsed: _Parsed, data: Any) -> None:
    file, out = parsed.file, parsed.problems
    if "property" in data and "properties" in data:
        second = max(("property", "properties"), key=lambda k: _at_key(file, data, k).line or 0)
        out.append(error(_at_key(file, data, second),
                          "give either `property:` (one id) or `properties:` (a list), not both"))
        return
    items: list[tuple[Any, Location]] = []
    if "property" in data:
        raw = data["property"]
        loc = _at_value(file, data, "property")
        if isinstance(raw, list):
            out.append(error(loc, "`property:` takes one id; for several write "
                                   "`properties: [123456789, 987654321]`"))
            return
        items.append((raw, loc))
    elif "properties" in data:
        raw = data["properties"]
        loc = _at_value(file, data, "properties")
        if not isinstance(raw, list):
            short = isinstance(raw, (int, str)) and not isinstance(raw, bool) \
                and len(str(raw)) <= 20
            example = quote(str(raw)) if short else "123456789"
            out.append(error(loc, f"properties must be a list, e.g. `properties: [{example}]`, "
                                   f"or write `property: {example}`"))
            return
        if not raw:
            out.append(error(loc, "properties is empty; list at least one numeric GA4 property id"))
            return
        if len(raw) > PROPERTIES_MAX:
            out.append(error(loc, f"{len(raw)} properties in one spec; at most {PROPERTIES_MAX} "
                                   f"are allowed per file: split the client into several specs"))
            return
        items = [(item, _at_item(file, raw, i)) for i, item in enumerate(raw)]
    else:
        return
    seen: dict[str, Location] = {}
    names: list[tuple[str, Location]] = []
    for item, loc in items:
        literal = _literal(parsed, loc) if isinstance(item, int) else None
        name = parse_property(item, loc, out, literal)
        if name is None:
            continue
        if name in seen:
            out.append(error(loc, f"property {property_id(name)} is listed twice (first at "
                                   f"{_where(seen[name])}); remove one"))
            continue
        seen[name] = loc
        names.append((name, loc))
    if len(names) == len(items):
        parsed.fields["properties"] = (tuple(names), items[0][1])


def _parse_goals(parsed: _Parsed, data: Any) -> None:
    file, out = parsed.file, parsed.problems
    raw = data["goals"]
    loc = _at_value(file, data, "goals") if raw is not None else _at_key(file, data, "goals")
    if raw is None or (isinstance(raw, list) and not raw):
        out.append(error(loc, "goals is empty; list at least one goal (`- event: ...`, with "
                               "tier and value)"))
        return
    if not isinstance(raw, list):
        out.append(error(loc, "goals must be a list, each entry starting with `- event:`"))
        return
    if len(raw) > GOALS_MAX:  # before any per-goal work
        out.append(error(loc, f"{len(raw)} goals in one file; at most {GOALS_MAX} are allowed per "
                               f"file (and a GA4 property takes at most 50 custom key events)"))
        return
    currency = parsed.fields.get("currency", ("the spec's currency", None))[0]
    places = Places(at_key=lambda m, k: _at_key(file, m, k),
                    at_value=lambda m, k: _at_value(file, m, k),
                    literal=lambda loc: _literal(parsed, loc))
    goals: list[Goal] = []
    names: dict[str, tuple[str, Location]] = {}  # casefolded name -> (name, where)
    for index, item in enumerate(raw):
        item_loc = _at_item(file, raw, index)
        if not isinstance(item, dict):
            out.append(error(item_loc, f"goal {show(item)} is not a mapping; write each goal as "
                                        f"`- event: name` followed by `tier:` and `value:`"))
            continue
        goal = _parse_goal(file, item, item_loc, str(currency), out, places, parsed.sources)
        event = item.get("event")
        if isinstance(event, str) and event:
            event_loc = _at_value(file, item, "event")
            first = names.get(event.casefold())
            if first is None:
                names[event.casefold()] = (event, event_loc)
            elif first[0] == event:
                out.append(error(event_loc, f"event `{quote(event)}` is listed twice (first at "
                                             f"{_where(first[1])}); keep one goal per event"))
                continue
            else:
                out.append(error(event_loc, f"event `{quote(event)}` and `{quote(first[0])}` (at "
                                             f"{_where(first[1])}) differ only in letter case; GA4 "
                                             f"treats them as two events: keep the one the site sends"))
                continue
        if goal is not None:
            goals.append(goal)
    parsed.goals = goals


def _parse_goal(file: str, item: Any, item_loc: Location, currency: str, out: list[Problem],
                places: Places, sources: dict[int, Location]) -> Goal | None:
    """One goal mapping -> Goal, or None after reporting what is wrong with it."""
    before = len(out)
    for key in item:
        if isinstance(key, str) and key in GOAL_KEYS:
            continue
        loc = _at_key(file, item, key)
        if isinstance(key, str) and key in TOP_LEVEL_KEYS:
            out.append(error(loc, f"`{key}` is a top-level key and applies to every goal; move it "
                                   f"out of the goal"))
        else:
            hint = did_you_mean(key, GOAL_KEYS) if isinstance(key, str) else ""
            out.append(error(loc, f"unknown goal key {show(key)}{hint} (goal keys: "
                                   f"{', '.join(GOAL_KEYS)})"))
    label = f"goal `{quote(item['event'])}`" if isinstance(item.get("event"), str) else "goal"
    missing = {
        "event": "`event:`, the GA4 event name that marks the conversion",
        "tier": "`tier:` (`macro` for the site's main outcomes, `micro` for steps toward them)",
        "value": f"`value:`, the value of one conversion in {currency}, or `value: event` to use "
                 f"the event's own value parameter",
    }
    for key in REQUIRED_GOAL_KEYS:
        if key not in item:
            out.append(error(item_loc, f"{label} is missing {missing[key]}"))
    event = item.get("event")
    if "event" in item:
        loc = _at_value(file, item, "event")
        if not isinstance(event, str):
            out.append(error(loc, f"event must be a GA4 event name, got {show(event)}; e.g. "
                                   f"`event: sign_up`"))
        else:
            for message in check_event_name(event):
                out.append(error(loc, message))
            if event in BROWSING_EVENTS and not any(k in item for k in KIND_KEYS):
                out.append(warning(loc, f"`{event}` is collected automatically on ordinary "
                                         f"browsing; as a goal it counts visiting as success and "
                                         f"inflates conversion rates. Use an event for the action "
                                         f"that matters (e.g. a thank-you page event)"))
    tier = choice(item["tier"], TIERS, "tier", _at_value(file, item, "tier"), out) if "tier" in item else None
    ok, value = (parse_value(item["value"], currency, _at_value(file, item, "value"), out)
                 if "value" in item else (False, None))
    counting = ONCE_PER_EVENT
    if "counting" in item:
        counting = choice(item["counting"], COUNTING_METHODS, "counting",
                           _at_value(file, item, "counting"), out) or ONCE_PER_EVENT
    labels: dict[str, str | None] = {}
    for key in ("category", "description"):
        raw = item.get(key)
        if raw is None or (isinstance(raw, str) and raw.strip()):
            labels[key] = raw.strip() if isinstance(raw, str) else None
        else:
            out.append(error(_at_value(file, item, key), f"{key} must be text, got {show(raw)}; "
                                                          f"write a short label or leave it out"))
    identifies = False
    if IDENTIFIES in item:
        identifies = parse_flag(item[IDENTIFIES], IDENTIFIES, _at_value(file, item, IDENTIFIES),
                                out, "`true` marks a goal in which the visitor tells the site who "
                                     "they are (an account, a newsletter sign-up, a login)") \
            or False
    origin = parse_origin(item, event, places, out)
    if len(out) > before and any(p.severity == "error" for p in out[before:]):
        return None
    assert isinstance(event, str) and tier is not None and ok and origin.ok
    category, description = labels.get("category"), labels.get("description")
    goal = Goal(event=str(event), tier=str(tier), value=value, counting=str(counting),
                category=None if category is None else str(category),
                description=None if description is None else str(description),
                location=_at_value(file, item, "event"), origin=origin.origin,
                identifies=identifies)
    if origin.source_loc is not None:
        sources[id(goal)] = origin.source_loc
    return goal


def _parse_funnels(parsed: _Parsed, data: Any) -> None:
    """`funnels:`: a list of {name, steps, within, open}; whether the steps are goals is checked
    after `extends` is merged (`_check_funnels`)."""
    file, out = parsed.file, parsed.problems
    raw = data["funnels"]
    loc = _at_value(file, data, "funnels") if raw is not None else _at_key(file, data, "funnels")
    if raw is None or (isinstance(raw, list) and not raw):
        out.append(error(loc, "funnels is empty; list at least one funnel (`- name: ...` with "
                               "`steps:`), or leave out `funnels:`"))
        return
    if not isinstance(raw, list):
        out.append(error(loc, f"funnels must be a list, each entry starting with `- name:`, got "
                               f"{kind(raw)}"))
        return
    funnels: list[Funnel] = []
    names: dict[str, tuple[str, Location]] = {}  # casefolded name -> (name, where)
    for index, item in enumerate(raw):
        item_loc = _at_item(file, raw, index)
        if not isinstance(item, dict):
            out.append(error(item_loc, f"funnel {show(item)} is not a mapping; write each funnel "
                                        f"as `- name: checkout` followed by `steps: [...]`"))
            continue
        funnel = _parse_funnel(parsed, item, item_loc)
        name = item.get(NAME)
        if isinstance(name, str) and name.strip():
            name_loc = _at_value(file, item, NAME)
            first = names.setdefault(name.strip().casefold(), (name.strip(), name_loc))
            if first[1] is not name_loc:
                same = "" if first[0] == name.strip() else \
                    f" (`{quote(first[0])}`; names are compared ignoring letter case)"
                out.append(error(name_loc, f"funnel `{quote(name.strip())}` has the same name as "
                                            f"the funnel at {_where(first[1])}{same}; give each "
                                            f"funnel its own name"))
                continue
        if funnel is not None:
            funnels.append(funnel)
    parsed.funnels = funnels


def _parse_funnel(parsed: _Parsed, item: Any, item_loc: Location) -> Funnel | None:
    """One funnel mapping -> Funnel, or None after reporting every problem with it."""
    file, out = parsed.file, parsed.problems
    before = len(out)
    for key in item:
        if isinstance(key, str) and key in FUNNEL_KEYS:
            continue
        hint = did_you_mean(key, FUNNEL_KEYS) if isinstance(key, str) else ""
        out.append(error(_at_key(file, item, key), f"unknown funnel key {show(key)}{hint} (funnel "
                                                    f"keys: {', '.join(FUNNEL_KEYS)})"))
    name = item.get(NAME)
    label = f"funnel `{quote(name.strip())}`" if isinstance(name, str) and name.strip() \
        else "funnel"
    if NAME not in item:
        out.append(error(item_loc, "funnel is missing `name:`, a short label for the report "
                                   "(e.g. `name: checkout`)"))
    elif not isinstance(name, str):
        out.append(error(_at_value(file, item, NAME), f"funnel name must be a short label, got "
                                                      f"{show(name)}; e.g. `name: checkout`"))
    else:
        for message in funnel_name_problems(name.strip()):
            out.append(error(_at_value(file, item, NAME), message))
    steps: list[str] = []
    places: list[Location] = []
    if STEPS not in item:
        out.append(error(item_loc, f"{label} is missing `steps:`, the events visitors pass "
                                   f"through in order ({FUNNEL_STEPS_MIN} to {FUNNEL_STEPS_MAX}), "
                                   f"e.g. `steps: [view_item, add_to_cart, purchase]`"))
    else:
        raw = item[STEPS]
        loc = _at_value(file, item, STEPS) if raw is not None else _at_key(file, item, STEPS)
        if not isinstance(raw, list):
            out.append(error(loc, f"steps must be a list of event names, e.g. `steps: "
                                  f"[view_item, add_to_cart, purchase]`, got {kind(raw)}"))
        elif len(raw) < FUNNEL_STEPS_MIN:
            out.append(error(loc, f"{label} has {len(raw)} step{'' if len(raw) == 1 else 's'}; a "
                                  f"funnel needs {FUNNEL_STEPS_MIN} to {FUNNEL_STEPS_MAX} steps "
                                  f"to show where visitors drop off"))
        elif len(raw) > FUNNEL_STEPS_MAX:
            out.append(error(loc, f"{label} has {len(raw)} steps; GA's funnel reports take at "
                                  f"most {FUNNEL_STEPS_MAX}: drop steps, or split it into two "
                                  f"funnels"))
        else:
            seen: dict[str, Location] = {}
            for index, step in enumerate(raw):
                step_loc = _at_item(file, raw, index)
                if not isinstance(step, str):
                    out.append(error(step_loc, f"step must be a GA4 event name, got {show(step)}; "
                                               f"e.g. `add_to_cart`"))
                    continue
                problems = step_problems(step)
                for message in problems:
                    out.append(error(step_loc, message))
                if problems:
                    continue
                if step in seen:
                    out.append(error(step_loc, f"step `{step}` is listed twice in {label} (first "
                                               f"at {_where(seen[step])}); one event counts for "
                                               f"one step: remove one"))
                    continue
                seen[step] = step_loc
                steps.append(step)
                places.append(step_loc)
    within = None
    if WITHIN in item:
        within = parse_within(item[WITHIN], _at_value(file, item, WITHIN), out)
    is_open = False
    if OPEN in item:
        is_open = parse_flag(item[OPEN], OPEN, _at_value(file, item, OPEN), out,
                             "`false` (the default) counts only visitors who enter at the first "
                             "step, `true` lets them enter at any step") or False
    if len(out) > before:
        return None
    assert isinstance(name, str)
    funnel = Funnel(name=name.strip(), steps=tuple(steps), within=within, open=is_open,
                    location=_at_value(file, item, NAME))
    parsed.steps_at[id(funnel)] = tuple(places)
    return funnel


# ---------------------------------------------------------------------------------------------
# `extends` and the whole spec


@dataclass
class _Merged:
    """A file with its `extends` chain folded in, base first."""

    files: list[_Parsed]
    fields: dict[str, tuple[Any, Location]] = field(default_factory=dict)
    goals: list[Goal] | None = None
    funnels: list[Funnel] | None = None
    present: set[str] = field(default_factory=set)
    problems: list[Problem] = field(default_factory=list)
    broken: bool = False  # an `extends` could not be followed; missing keys would be noise


def _merge_goals(base: list[Goal], own: list[Goal]) -> list[Goal]:
    """Base goals first; a goal of the extending file replaces the base goal of the same event."""
    merged = list(base)
    index = {g.event: i for i, g in enumerate(merged)}
    for goal in own:
        if goal.event in index:
            merged[index[goal.event]] = goal
        else:
            index[goal.event] = len(merged)
            merged.append(goal)
    return merged


def _merge_funnels(base: list[Funnel], own: list[Funnel]) -> list[Funnel]:
    """Base funnels first; a funnel of the extending file replaces the base funnel of the same
    name (ignoring letter case) in its place; the others follow."""
    merged = list(base)
    index = {f.name.casefold(): i for i, f in enumerate(merged)}
    for funnel in own:
        key = funnel.name.casefold()
        if key in index:
            merged[index[key]] = funnel
        else:
            index[key] = len(merged)
            merged.append(funnel)
    return merged


def _resolved(path: Path) -> Path | _Unreadable:
    """`path` with every symlink resolved, or why that is impossible (a loop, an odd name)."""
    try:
        return path.resolve()
    except RuntimeError:  # Python 3.11 on a symlink loop
        return _Unreadable("it is a symbolic link loop", "is a symbolic link loop; fix or "
                                                         "remove the link")
    except (OSError, ValueError) as exc:
        if isinstance(exc, OSError) and exc.errno == errno.ELOOP:
            return _Unreadable("it is a symbolic link loop", "is a symbolic link loop; fix or "
                                                             "remove the link")
        reason = (exc.strerror if isinstance(exc, OSError) else None) or "not a valid path"
        return _Unreadable(f"it cannot be read ({reason})", f"cannot read the file ({reason})")


def _inside(path: Path, roots: tuple[Path, ...]) -> bool:
    return any(path == root or path.is_relative_to(root) for root in roots)


class _Loader:
    """Parses each file once per run, so a shared base reports its problems once."""

    def __init__(self, bases: tuple[Path, ...] = ()) -> None:
        self.cache: dict[Path, _Parsed] = {}
        self.bases = bases  # resolved folders `extends` may reach besides a spec's own tree

    def parse(self, file: str, path: Path) -> _Parsed:
        if path not in self.cache:
            self.cache[path] = _parse_file(file, path)
        return self.cache[path]

    def resolve(self, file: str, path: Path, root: Path | None = None) -> _Merged:
        """`file` with its `extends` chain folded in.

        Iterative, not recursive: the chain is followed link by link, at most EXTENDS_DEPTH_MAX
        files, and must stay inside `root` (the spec tree) or one of the `bases` folders.
        """
        roots = ((root,) if root is not None else ()) + self.bases
        chain = [self.parse(file, path)]  # the file first, then its base, its base's base ...
        problems: list[Problem] = []
        broken = False
        while True:
            parsed = chain[-1]
            if parsed.extends is None or parsed.failure is not None:
                break
            target, loc = parsed.extends
            shown = quote_path(target)
            base_file = os.path.normpath(os.path.join(os.path.dirname(parsed.file), target))
            broken = True  # unless the link below is followed
            if len(chain) >= EXTENDS_DEPTH_MAX:
                problems.append(error(loc, f"extends `{shown}`, but this `extends` chain is "
                                           f"already {len(chain)} files long (at most "
                                           f"{EXTENDS_DEPTH_MAX}); merge some base files"))
                break
            base_path = _resolved(parsed.path.parent / target)
            if isinstance(base_path, _Unreadable):
                problems.append(error(loc, f"cannot extend `{shown}`: {base_path.failure}"))
                break
            if roots and not _inside(base_path, roots):
                where = " or ".join(str(r) for r in roots)
                problems.append(error(loc, f"extends `{shown}`, which is outside the spec folder "
                                           f"({where}); base files must be in the spec folder or "
                                           f"a subfolder of it: move the base file there, or "
                                           f"add its folder to GA_SYNC_EXTENDS_PATH"))
                break
            if any(p.path == base_path for p in chain):
                names = [Path(p.file).name for p in chain] + [Path(base_file).name]
                names = names[[p.path for p in chain].index(base_path):]
                problems.append(error(loc, f"circular extends: {' → '.join(names)}; remove "
                                           f"`extends` from one of these files"))
                break
            why = _unreadable(parsed.path.parent / target)  # unresolved: names a broken link
            if why is not None and why.failure == "it does not exist":
                problems.append(error(loc, f"extends `{shown}`, but {quote_path(base_file)} does not "
                                           f"exist (the path is relative to this file)"))
                break
            if why is not None:
                problems.append(error(loc, f"cannot extend `{shown}`: {why.failure}"))
                break
            base = self.parse(base_file, base_path)
            chain.append(base)
            if base.failure is not None:
                problems.append(error(loc, f"cannot extend `{shown}`: {base.failure}"))
                break
            broken = False
        merged = _Merged(files=chain[::-1], broken=broken)
        for parsed in merged.files:  # base first: the extending file wins
            merged.fields.update(parsed.fields)
            merged.present |= parsed.present
            if parsed.goals is not None:
                merged.goals = _merge_goals(merged.goals or [], parsed.goals)
            if parsed.funnels is not None:
                merged.funnels = _merge_funnels(merged.funnels or [], parsed.funnels)
        merged.problems = problems[::-1]  # the deepest link's problem first, as before
        return merged


_MISSING = {
    "client": "`client:`, the client's name (a label for plans and reports)",
    "properties": "`properties:`, the numeric GA4 property ids this spec manages, e.g. "
                  "`properties: [123456789]`",
    "currency": "`currency:`, the ISO 4217 code of the goal values, e.g. `currency: USD`",
    "goals": "`goals:`, the list of macro and micro conversions",
}


def _finish(merged: _Merged, file: str) -> Spec | None:
    """Checks that need the merged spec; the Spec when nothing in its chain is an error."""
    top = merged.files[-1]
    if top.failure is not None:
        return None
    root = top.root or Location(file, 1, 1)
    out = merged.problems
    missing = [what for key, what in _MISSING.items() if not merged.broken
               and not ({key} if key != "properties" else {"property", "properties"})
               & merged.present]
    if missing and Path(file).name.startswith("_"):
        out.append(error(root, "this is a base file for `extends` (its name starts with `_`), "
                               "not a spec of its own: validate a spec that extends it"))
    else:
        out.extend(error(root, f"missing {what}") for what in missing)
    goals = merged.goals or []
    by_case: dict[str, Goal] = {}
    for goal in goals:
        other = by_case.setdefault(goal.event.casefold(), goal)
        if other is not goal and goal.location and other.location \
                and goal.location.file != other.location.file:
            out.append(error(goal.location, f"event `{goal.event}` and `{other.event}` (in "
                                             f"{other.location}) differ only in letter case; GA4 "
                                             f"treats them as two events: use the same spelling"))
    level = merged.fields.get("service_level", (STANDARD, root))[0]
    limit = KEY_EVENT_LIMITS[level]
    custom = [g for g in goals if g.event not in DEFAULT_KEY_EVENTS]
    if len(custom) > limit:
        kind = "an Analytics 360" if level == ANALYTICS_360 else "a standard"
        more = "" if level == ANALYTICS_360 else (
            ", or set `service_level: analytics_360` if this is an Analytics 360 property (limit 50)")
        out.append(error(custom[limit].location or root,
                          f"{len(custom)} custom key events, but {kind} GA4 property allows "
                          f"{limit} (`purchase` does not count); drop or merge micro "
                          f"conversions{more}"))
    _check_machinery(merged, goals, root, out)
    funnels = merged.funnels or []
    _check_funnels(merged, funnels, goals, out)
    problems = [p for f in merged.files for p in f.problems] + out
    if any(p.severity == "error" for p in problems):
        return None
    return Spec(
        client=merged.fields["client"][0],
        properties=tuple(name for name, _ in merged.fields["properties"][0]),
        currency=merged.fields["currency"][0],
        goals=tuple(goals),
        rate_basis=merged.fields.get("rate_basis", (SESSIONS, root))[0],
        service_level=merged.fields["service_level"][0] if "service_level" in merged.fields
        else None,
        funnels=tuple(funnels),
        path=Path(file),
        warnings=tuple(dict.fromkeys(str(p) for p in problems if p.severity == "warning")),
    )


def _check_funnels(merged: _Merged, funnels: list[Funnel], goals: list[Goal],
                   out: list[Problem]) -> None:
    """A step that is no goal of the spec and no event GA collects or recommends is likely a
    typo: the funnel would count an event nobody sends, and show everyone dropping off there."""
    steps_at = {k: v for parsed in merged.files for k, v in parsed.steps_at.items()}
    events = [g.event for g in goals]
    known = set(events) | KNOWN_STEP_EVENTS
    for funnel in funnels:
        places = steps_at.get(id(funnel), ())
        for index, step in enumerate(funnel.steps):
            if step in known:
                continue
            loc = places[index] if index < len(places) else funnel.location
            out.append(warning(loc or Location(str(merged.files[-1].file)),
                               f"step `{step}` of funnel `{quote(funnel.name)}` is not a goal of "
                               f"this spec, nor an event GA collects automatically or recommends "
                               f"for ecommerce, so it may be a typo{step_hint(step, events)} (an "
                               f"event the site does send under this name is counted as usual)"))


def _check_machinery(merged: _Merged, goals: list[Goal], root: Location,
                     out: list[Problem]) -> None:
    """Checks across goals that GA makes: rules reading other rules' events, GA's limits."""
    sources = {k: v for parsed in merged.files for k, v in parsed.sources.items()}
    made = {g.event: g for g in goals if isinstance(g.origin, EventRule)}
    for goal in made.values():
        assert isinstance(goal.origin, EventRule)
        maker = made.get(goal.origin.source)
        if maker is not None and maker is not goal:
            where = _where(maker.location) if maker.location and goal.location and \
                maker.location.file == goal.location.file else str(maker.location)
            assert isinstance(maker.origin, EventRule)
            out.append(error(sources.get(id(goal)) or goal.location or root,
                             f"from `{goal.origin.source}` is made by the goal at {where} (an "
                             f"event create rule), and GA never applies a create rule to an "
                             f"event another rule made, so this goal would never count: write "
                             f"`from: {maker.origin.source}` with that goal's conditions added "
                             f"to this one's `where:`"))
    for kind_, limit, what, fix in (
            ((EventRule,), CREATED_EVENTS_PER_PROPERTY, "`page:`/`from:` goals (created events)",
             "merge some with `regex:` conditions, or count some as events the site sends"),
            ((SessionRule,), AUDIENCE_TRIGGERS_PER_PROPERTY,
             "`session:` goals (audiences with an event trigger)", "drop or merge some")):
        chosen = [g for g in goals if isinstance(g.origin, kind_)]
        if len(chosen) > limit:
            out.append(error(chosen[limit].location or root,
                             f"{len(chosen)} {what}, but GA allows {limit} per property (help "
                             f"centre; rules and audiences made outside ga-sync count too): "
                             f"{fix}"))


_SPEC_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class _Entry:
    """One file to load as a top-level spec."""

    file: str  # as shown in messages
    path: Path  # resolved (or absolute, when it cannot be resolved)
    root: Path | None  # the spec tree `extends` must stay in
    notes: tuple[Problem, ...] = ()  # warnings about how it was found


def _listing(folder: Path) -> list[Path] | Problem:
    try:
        return sorted(folder.iterdir())
    except OSError as exc:
        return Problem(str(folder), None, None, f"cannot list the directory "
                                                f"({exc.strerror or exc}); check its permissions")


def _expand(paths: Iterable[str | Path]) -> list[_Entry | Problem]:
    """Files to load as top-level specs, in the order given, and problems with what was given.

    A directory means its *.yaml/*.yml files not starting with `_` (bases) or `.`, sorted. A
    name with the extension in other letter case (`Client.YAML`) is loaded too, with a warning;
    anything else with a spec's name that is no regular file (a broken link, a FIFO, a folder)
    is reported when it is read rather than skipped. A file named twice is loaded once.
    """
    entries: list[_Entry | Problem] = []
    seen: set[Path] = set()
    for given in paths:
        path = Path(given)
        try:
            is_dir = path.is_dir()
        except (OSError, ValueError):
            is_dir = False
        if is_dir:
            root = _resolved(path)
            listing = _listing(path)
            if isinstance(listing, Problem):
                entries.append(listing)
                continue
            found: list[tuple[Path, tuple[Problem, ...]]] = []
            for p in listing:
                if p.name.startswith(("_", ".")) or p.suffix.lower() not in _SPEC_SUFFIXES:
                    continue
                notes: tuple[Problem, ...] = ()
                if p.suffix not in _SPEC_SUFFIXES:
                    notes = (Problem(str(p), None, None, f"the extension `{p.suffix}` is not "
                                                         f"lowercase; the file is loaded as a "
                                                         f"spec, but rename it to "
                                                         f"`{p.stem}{p.suffix.lower()}`",
                                     severity="warning"),)
                found.append((p, notes))
            if not found:
                entries.append(Problem(str(path), None, None, "no goal spec files (*.yaml or "
                                                              "*.yml, not starting with `_`) "
                                                              "in this directory"))
            files = [(p, notes) for p, notes in found]
        else:
            root = _resolved(path.parent if str(path.parent) else Path("."))
            files = [(path, ())]
        tree = root if isinstance(root, Path) else None
        for p, notes in files:
            resolved = _resolved(p)
            key = resolved if isinstance(resolved, Path) else Path(os.path.abspath(p))
            if key not in seen:
                seen.add(key)
                entries.append(_Entry(str(p), key, tree, notes))
    return entries


def _folders(bases: Iterable[str | Path]) -> tuple[Path, ...]:
    folders = []
    for base in bases:
        resolved = _resolved(Path(base))
        if isinstance(resolved, Path):
            folders.append(resolved)
    return tuple(folders)


def validate_paths(paths: Iterable[str | Path], *,
                   bases: Iterable[str | Path] = ()) -> tuple[list[Spec], list[Problem]]:
    """Every valid spec and every problem (errors and warnings) of every file; never raises.

    For `ga-sync validate`, which shows everything at once rather than the first failure: one
    invalid file never keeps the valid ones from being returned (a broken base file invalidates
    only the specs that extend it). `extends:` may reach files in the spec tree (the folder
    given, or the folder of the file given, and their subfolders) and in the `bases` folders
    (the CLI reads those from GA_SYNC_EXTENDS_PATH).
    """
    problems: list[Problem] = []
    loader = _Loader(_folders(bases))
    results: list[tuple[str, _Merged, Spec | None]] = []
    for entry in _expand(paths):
        if isinstance(entry, Problem):
            problems.append(entry)
            continue
        file, path = entry.file, entry.path
        why = _unreadable(Path(file))  # as given: a broken link is named as one
        if why is not None:
            problems.extend(entry.notes)
            problems.append(Problem(file, None, None, why.message))
            continue
        merged = loader.resolve(file, path, entry.root)
        merged.problems[:0] = entry.notes
        spec = _finish(merged, file)
        for parsed in merged.files:
            problems.extend(parsed.problems)
        problems.extend(merged.problems)
        results.append((file, merged, spec))

    claimed: dict[str, tuple[str, Location]] = {}
    specs: list[Spec] = []
    for file, merged, spec in results:
        clash = False
        for name, loc in merged.fields.get("properties", ((), None))[0]:
            first = claimed.setdefault(name, (file, loc))
            if first[0] != file:
                clash = True
                other = str(first[1]) if first[1].file == first[0] else f"{first[0]} (through {first[1]})"
                mine = "" if loc.file == file else f" (inherited by {file})"
                problems.append(error(loc, f"property {property_id(name)}{mine} is also claimed by "
                                            f"{other}; each property belongs to one spec file, "
                                            f"remove it from one of them"))
        if spec is not None and not clash:
            specs.append(spec)

    order: dict[str, int] = {}
    for problem in problems:
        order.setdefault(problem.file, len(order))
    unique = list(dict.fromkeys(problems))
    unique.sort(key=lambda p: (order[p.file], p.line or 0, p.column or 0))
    return specs, unique


def load_specs(paths: Iterable[str | Path], *, bases: Iterable[str | Path] = ()) -> list[Spec]:
    """Load specs from files and directories; one SpecError listing every problem if any is an error.

    `bases`: folders outside the spec tree that `extends:` may also reach.
    """
    specs, problems = validate_paths(paths, bases=bases)
    if any(p.severity == "error" for p in problems):
        raise SpecError(problems)
    return specs


def load_spec(path: str | Path, *, bases: Iterable[str | Path] = ()) -> Spec:
    """Load one spec file (a `_base.yaml` given explicitly is checked as a full spec)."""
    specs = load_specs([path], bases=bases)
    if len(specs) != 1:
        raise SpecError([Problem(str(path), None, None,
                                 f"expected one spec file, found {len(specs)}; use load_specs")])
    return specs[0]


