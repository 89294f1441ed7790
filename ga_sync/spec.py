"""YAML goal specs -> validated `Spec` objects, with file:line:column on every problem.

A spec names the macro and micro conversions of one client's site and the economic value of
each (Kaushik's goal-value method); each goal becomes a GA4 key event. This module only reads
and writes text: it never talks to GA, so `ga-sync validate` runs offline and starts fast.
The format is described in docs/spec.md.

Reading a file safely and locating its values is spec_read.py; the rules for one value are
spec_checks.py and spec_kind_rules.py (re-exported by spec_rules.py); `funnels:` and the checks
across goal kinds are spec_kinds.py. This module walks a file, follows `extends`, and finishes
the merged spec.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from .currencies import CURRENCY_CODES
from .errors import Problem, SpecError
from .garules import (ANALYTICS_360, BROWSING_EVENTS, DEFAULT_KEY_EVENTS, EVENT_NAME_MAX,
                      KEY_EVENT_LIMITS, RESERVED_PREFIXES, SERVICE_LEVELS, STANDARD)
from .spec_checks import (EVENT_VALUE, VALUE_MAX, check_event_name, choice, did_you_mean, error,
                          kind, parse_property, parse_value, quote, quote_path, show, warning)
from .spec_kind_rules import IDENTIFIES, KIND_KEYS, Places, parse_flag, parse_origin
from .spec_kinds import _check_funnels, _check_machinery, _merge_funnels, _parse_funnels
from .spec_read import (EXTENDS_DEPTH_MAX, EXTENDS_PATH_MAX, FILE_BYTES_MAX, GOALS_MAX,
                        PROBLEMS_PER_FILE_MAX, PROPERTIES_MAX, _at_item, _at_key, _at_node,
                        _at_value, _expand, _folders, _literal, _Parsed, _read_yaml,
                        _resolved, _TooManyProblems, _Unreadable, _unreadable, _where)
from .model import (
    COUNTING_METHODS,
    ONCE_PER_EVENT,
    RATE_BASES,
    SESSIONS,
    TIERS,
    Funnel,
    Goal,
    Location,
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


# ---------------------------------------------------------------------------------------------
# One file


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
    _check_machinery(merged.files, goals, root, out)
    funnels = merged.funnels or []
    _check_funnels(merged.files, funnels, goals, out)
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
