"""YAML goal specs -> validated `Spec` objects, with file:line:column on every problem.

A spec names the macro and micro conversions of one client's site and the economic value of
each (Kaushik's goal-value method); each goal becomes a GA4 key event. This module only reads
and writes text: it never talks to GA, so `ga-sync validate` runs offline and starts fast.
The format is described in docs/spec.md.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from ruamel.yaml import YAML
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from .currencies import CURRENCY_CODES
from .errors import Problem, SpecError
from .spec_rules import (BROWSING_EVENTS, EVENT_NAME_MAX, EVENT_VALUE, RESERVED_PREFIXES,
                         check_event_name, choice, did_you_mean, error, parse_property,
                         parse_value, show, warning)
from .model import (
    COUNTING_METHODS,
    ONCE_PER_EVENT,
    RATE_BASES,
    SESSIONS,
    TIERS,
    Goal,
    Location,
    Spec,
    property_id,
)

__all__ = [
    "BROWSING_EVENTS",
    "EVENT_NAME_MAX",
    "EVENT_VALUE",
    "RESERVED_PREFIXES",
    "KEY_EVENT_LIMITS",
    "SERVICE_LEVELS",
    "check_event_name",
    "load_spec",
    "load_specs",
    "validate_paths",
]

TOP_LEVEL_KEYS = ("client", "property", "properties", "currency", "rate_basis", "service_level",
                  "extends", "goals")
GOAL_KEYS = ("event", "tier", "value", "counting", "category", "description")
REQUIRED_GOAL_KEYS = ("event", "tier", "value")

STANDARD = "standard"
ANALYTICS_360 = "analytics_360"
SERVICE_LEVELS = (STANDARD, ANALYTICS_360)
# https://support.google.com/analytics/answer/12946393 (custom key events per property)
KEY_EVENT_LIMITS = {STANDARD: 30, ANALYTICS_360: 50}
# Key events GA creates itself; they do not count against the custom limit.
DEFAULT_KEY_EVENTS = frozenset({"purchase"})



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


def _where(loc: Location) -> str:
    """A short back-reference for messages that point at a second place."""
    if loc.line is None:
        return loc.file
    return f"line {loc.line}:{loc.column}"


# ---------------------------------------------------------------------------------------------
# One file


@dataclass
class _Parsed:
    """What one YAML file says, validated key by key (before `extends` is merged)."""

    file: str  # as shown in messages
    path: Path  # resolved; the cache key
    problems: list[Problem] = field(default_factory=list)
    failure: str | None = None  # why the file could not be read as a mapping
    root: Location | None = None
    present: set[str] = field(default_factory=set)  # keys written, valid or not
    fields: dict[str, tuple[Any, Location]] = field(default_factory=dict)
    goals: list[Goal] | None = None
    extends: tuple[str, Location] | None = None

    @property
    def has_errors(self) -> bool:
        return any(p.severity == "error" for p in self.problems)


def _read_yaml(parsed: _Parsed) -> Any:
    """The file's YAML document, or None after recording why it could not be read."""
    file, out = parsed.file, parsed.problems
    try:
        data = parsed.path.read_bytes()
    except FileNotFoundError:
        parsed.failure = "it does not exist"
        out.append(Problem(file, None, None, "file not found; check the path"))
        return None
    except IsADirectoryError:
        parsed.failure = "it is a directory"
        out.append(Problem(file, None, None, "is a directory, not a spec file"))
        return None
    except OSError as exc:
        parsed.failure = "it cannot be read"
        out.append(Problem(file, None, None, f"cannot read the file ({exc.strerror or exc}); "
                                             f"check its permissions"))
        return None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        parsed.failure = "it is not UTF-8 text"
        out.append(Problem(file, None, None, f"not UTF-8 text (bad byte at offset {exc.start}); "
                                             f"save the file as UTF-8"))
        return None
    try:
        return YAML(typ="rt").load(text)
    except DuplicateKeyError as exc:
        parsed.failure = "it is not valid YAML"
        mark = exc.problem_mark
        what = f"{exc.problem}; a key may appear only once in a mapping"
        line = mark.line + 1 if mark is not None else None
        column = mark.column + 1 if mark is not None else None
        out.append(Problem(file, line, column, f"not valid YAML: {what}"))
    except MarkedYAMLError as exc:
        parsed.failure = "it is not valid YAML"
        mark = exc.problem_mark or exc.context_mark
        what = ": ".join(s for s in (exc.context, exc.problem) if s)
        line = mark.line + 1 if mark is not None else None
        column = mark.column + 1 if mark is not None else None
        out.append(Problem(file, line, column, f"not valid YAML: {what} (the mistake may be just "
                                               f"before this point, e.g. an unclosed bracket or quote)"))
    except YAMLError as exc:
        parsed.failure = "it is not valid YAML"
        out.append(Problem(file, None, None, f"not valid YAML: {exc}"))
    return None


def _parse_file(file: str, path: Path) -> _Parsed:
    """Read and check one file on its own; merging and required keys come later."""
    parsed = _Parsed(file, path)
    data = _read_yaml(parsed)
    if parsed.failure is not None:
        return parsed
    out = parsed.problems
    if not isinstance(data, dict):
        parsed.failure = "its top level is not a mapping"
        what = "empty" if data is None else ("a list" if isinstance(data, list) else show(data))
        out.append(Problem(file, 1, 1, f"the top level is {what}; a goal spec is a mapping of keys "
                                       f"(client:, properties:, currency:, goals:)"))
        return parsed
    parsed.root = _at_node(file, data)
    for key in data:
        if key in TOP_LEVEL_KEYS:
            parsed.present.add(key)
            continue
        loc = _at_key(file, data, key)
        if key in GOAL_KEYS:
            out.append(error(loc, f"`{key}` belongs to a goal; move it under an entry of `goals:`"))
        else:
            hint = did_you_mean(str(key), TOP_LEVEL_KEYS)
            out.append(error(loc, f"unknown key `{key}`{hint} (top-level keys: "
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
            out.append(error(loc, f"currency `{raw}` is not an active ISO 4217 code (such as "
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
        if isinstance(raw, str) and raw.strip():
            parsed.extends = (raw.strip(), loc)
        else:
            out.append(error(loc, f"extends must be a file name, got {show(raw)}; write the path "
                                   f"of the base spec relative to this file, e.g. "
                                   f"`extends: _agency_defaults.yaml`"))
    if "goals" in data:
        _parse_goals(parsed, data)
    return parsed


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
            out.append(error(loc, f"properties must be a list, e.g. `properties: [{raw}]`, "
                                   f"or write `property: {raw}`"))
            return
        if not raw:
            out.append(error(loc, "properties is empty; list at least one numeric GA4 property id"))
            return
        items = [(item, _at_item(file, raw, i)) for i, item in enumerate(raw)]
    else:
        return
    seen: dict[str, Location] = {}
    names: list[tuple[str, Location]] = []
    for item, loc in items:
        name = parse_property(item, loc, out)
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
    currency = data.get("currency") if isinstance(data.get("currency"), str) else "the spec's currency"
    goals: list[Goal] = []
    names: dict[str, tuple[str, Location]] = {}  # casefolded name -> (name, where)
    for index, item in enumerate(raw):
        item_loc = _at_item(file, raw, index)
        if not isinstance(item, dict):
            out.append(error(item_loc, f"goal {show(item)} is not a mapping; write each goal as "
                                        f"`- event: name` followed by `tier:` and `value:`"))
            continue
        goal = _parse_goal(file, item, item_loc, str(currency), out)
        event = item.get("event")
        if isinstance(event, str) and event:
            event_loc = _at_value(file, item, "event")
            first = names.get(event.casefold())
            if first is None:
                names[event.casefold()] = (event, event_loc)
            elif first[0] == event:
                out.append(error(event_loc, f"event `{event}` is listed twice (first at "
                                             f"{_where(first[1])}); keep one goal per event"))
                continue
            else:
                out.append(error(event_loc, f"event `{event}` and `{first[0]}` (at "
                                             f"{_where(first[1])}) differ only in letter case; GA4 "
                                             f"treats them as two events: keep the one the site sends"))
                continue
        if goal is not None:
            goals.append(goal)
    parsed.goals = goals


def _parse_goal(file: str, item: Any, item_loc: Location, currency: str,
                out: list[Problem]) -> Goal | None:
    """One goal mapping -> Goal, or None after reporting what is wrong with it."""
    before = len(out)
    for key in item:
        if key in GOAL_KEYS:
            continue
        loc = _at_key(file, item, key)
        if key in TOP_LEVEL_KEYS:
            out.append(error(loc, f"`{key}` is a top-level key and applies to every goal; move it "
                                   f"out of the goal"))
        else:
            hint = did_you_mean(str(key), GOAL_KEYS)
            out.append(error(loc, f"unknown goal key `{key}`{hint} (goal keys: "
                                   f"{', '.join(GOAL_KEYS)})"))
    label = f"goal `{item['event']}`" if isinstance(item.get("event"), str) else "goal"
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
            if event in BROWSING_EVENTS:
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
    if len(out) > before and any(p.severity == "error" for p in out[before:]):
        return None
    assert isinstance(event, str) and tier is not None and ok
    category, description = labels.get("category"), labels.get("description")
    return Goal(event=str(event), tier=str(tier), value=value, counting=str(counting),
                category=None if category is None else str(category),
                description=None if description is None else str(description),
                location=_at_value(file, item, "event"))


# ---------------------------------------------------------------------------------------------
# `extends` and the whole spec


@dataclass
class _Merged:
    """A file with its `extends` chain folded in, base first."""

    files: list[_Parsed]
    fields: dict[str, tuple[Any, Location]] = field(default_factory=dict)
    goals: list[Goal] | None = None
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


class _Loader:
    """Parses each file once per run, so a shared base reports its problems once."""

    def __init__(self) -> None:
        self.cache: dict[Path, _Parsed] = {}

    def parse(self, file: str, path: Path) -> _Parsed:
        if path not in self.cache:
            self.cache[path] = _parse_file(file, path)
        return self.cache[path]

    def resolve(self, file: str, path: Path, stack: tuple[tuple[Path, str], ...] = ()) -> _Merged:
        parsed = self.parse(file, path)
        merged = _Merged(files=[parsed])
        if parsed.extends is not None and parsed.failure is None:
            target, loc = parsed.extends
            base_file = os.path.normpath(os.path.join(os.path.dirname(file), target))
            base_path = (path.parent / target).resolve()
            chain = stack + ((path, file),)
            if any(p == base_path for p, _ in chain):
                names = [Path(f).name for _, f in chain] + [Path(base_file).name]
                merged.problems.append(error(loc, f"circular extends: {' → '.join(names)}; remove "
                                                   f"`extends` from one of these files"))
                merged.broken = True
            elif not base_path.is_file():
                merged.problems.append(error(loc, f"extends `{target}`, but {base_file} does not "
                                                   f"exist (the path is relative to this file)"))
                merged.broken = True
            else:
                base = self.resolve(base_file, base_path, chain)
                merged.files = base.files + merged.files
                merged.problems.extend(base.problems)
                merged.broken = base.broken
                if base.files[-1].failure is not None:
                    merged.problems.append(error(loc, f"cannot extend `{target}`: "
                                                       f"{base.files[-1].failure}"))
                    merged.broken = True
                merged.fields.update(base.fields)
                merged.goals = base.goals
                merged.present |= base.present
        merged.fields.update(parsed.fields)
        merged.present |= parsed.present
        if parsed.goals is not None:
            merged.goals = _merge_goals(merged.goals or [], parsed.goals)
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
    problems = [p for f in merged.files for p in f.problems] + out
    if any(p.severity == "error" for p in problems):
        return None
    return Spec(
        client=merged.fields["client"][0],
        properties=tuple(name for name, _ in merged.fields["properties"][0]),
        currency=merged.fields["currency"][0],
        goals=tuple(goals),
        rate_basis=merged.fields.get("rate_basis", (SESSIONS, root))[0],
        path=Path(file),
        warnings=tuple(dict.fromkeys(str(p) for p in problems if p.severity == "warning")),
    )


def _expand(paths: Iterable[str | Path]) -> list[tuple[str, Path] | Problem]:
    """Files to load as top-level specs, in the order given (a Problem for an empty directory).

    A directory means its *.yaml/*.yml files not starting with `_` (bases), sorted; a file named
    twice is loaded once.
    """
    entries: list[tuple[str, Path] | Problem] = []
    seen: set[Path] = set()
    for given in paths:
        path = Path(given)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml")
                           and not p.name.startswith(("_", ".")) and p.is_file())
            if not found:
                entries.append(Problem(str(path), None, None, "no goal spec files (*.yaml or "
                                                              "*.yml, not starting with `_`) "
                                                              "in this directory"))
            files = [(str(p), p.resolve()) for p in found]
        else:
            files = [(str(path), path.resolve())]
        for file, resolved in files:
            if resolved not in seen:
                seen.add(resolved)
                entries.append((file, resolved))
    return entries


def validate_paths(paths: Iterable[str | Path]) -> tuple[list[Spec], list[Problem]]:
    """Every valid spec and every problem (errors and warnings) of every file; never raises.

    For `ga-sync validate`, which shows everything at once rather than the first failure.
    """
    problems: list[Problem] = []
    loader = _Loader()
    results: list[tuple[str, _Merged, Spec | None]] = []
    for entry in _expand(paths):
        if isinstance(entry, Problem):
            problems.append(entry)
            continue
        file, path = entry
        merged = loader.resolve(file, path)
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


def load_specs(paths: Iterable[str | Path]) -> list[Spec]:
    """Load specs from files and directories; one SpecError listing every problem if any is an error."""
    specs, problems = validate_paths(paths)
    if any(p.severity == "error" for p in problems):
        raise SpecError(problems)
    return specs


def load_spec(path: str | Path) -> Spec:
    """Load one spec file (a `_base.yaml` given explicitly is checked as a full spec)."""
    specs = load_specs([path])
    if len(specs) != 1:
        raise SpecError([Problem(str(path), None, None,
                                 f"expected one spec file, found {len(specs)}; use load_specs")])
    return specs[0]


