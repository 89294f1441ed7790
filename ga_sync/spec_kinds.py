"""Goal kinds and journeys across a file: the `funnels:` list of a spec, funnels merged through
`extends`, and the checks that need the merged goals (funnel steps that are no goal, `from:`
goals reading another rule's event, GA's limits on created events and audiences).

The rules for one value are in spec_kind_rules.py; spec.py calls these while it walks a file
and when it finishes a merged spec (docs/spec.md, "Goal kinds", "Funnels and identifying goals").
"""

from __future__ import annotations

from typing import Any

from .errors import Problem
from .garules import AUDIENCE_TRIGGERS_PER_PROPERTY, CREATED_EVENTS_PER_PROPERTY
from .model import EventRule, Funnel, Goal, Location, SessionRule
from .spec_checks import did_you_mean, error, kind, quote, show, warning
from .spec_kind_rules import (FUNNEL_KEYS, FUNNEL_STEPS_MAX, FUNNEL_STEPS_MIN, KNOWN_STEP_EVENTS,
                              NAME, OPEN, STEPS, WITHIN, funnel_name_problems, parse_flag,
                              parse_within, step_hint, step_problems)
from .spec_read import _at_item, _at_key, _at_value, _Parsed, _where


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


def _check_funnels(files: list[_Parsed], funnels: list[Funnel], goals: list[Goal],
                   out: list[Problem]) -> None:
    """A step that is no goal of the spec and no event GA collects or recommends is likely a
    typo: the funnel would count an event nobody sends, and show everyone dropping off there."""
    steps_at = {k: v for parsed in files for k, v in parsed.steps_at.items()}
    events = [g.event for g in goals]
    known = set(events) | KNOWN_STEP_EVENTS
    for funnel in funnels:
        places = steps_at.get(id(funnel), ())
        for index, step in enumerate(funnel.steps):
            if step in known:
                continue
            loc = places[index] if index < len(places) else funnel.location
            out.append(warning(loc or Location(str(files[-1].file)),
                               f"step `{step}` of funnel `{quote(funnel.name)}` is not a goal of "
                               f"this spec, nor an event GA collects automatically or recommends "
                               f"for ecommerce, so it may be a typo{step_hint(step, events)} (an "
                               f"event the site does send under this name is counted as usual)"))


def _check_machinery(files: list[_Parsed], goals: list[Goal], root: Location,
                     out: list[Problem]) -> None:
    """Checks across goals that GA makes: rules reading other rules' events, GA's limits."""
    sources = {k: v for parsed in files for k, v in parsed.sources.items()}
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
