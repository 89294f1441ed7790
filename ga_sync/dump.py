"""Writing specs: a dump for every load.

`ga-sync dump` turns a live property's key events into a spec file that validates and plans
no changes (key events a spec cannot hold are left out, with a comment saying why); the event
create rules and audience triggers that make those events become `page:`, `from:`/`where:` and
`session:` (`goals_from_state`);
`spec_to_yaml` writes a loaded spec back as one self-contained file. What is written loads back
unchanged (tested for every example in goal_specs/).
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import dataclass
from dataclasses import replace
from typing import Iterable, Mapping

from ga_sync.model import (EQUALS, MACRO, MICRO, SESSIONS, Condition, EventRule, Funnel, Goal,
                           KeyEventState, SessionRule, Spec, property_id, property_name)
from ga_sync.garules import (ANALYTICS_360, AUDIENCE_TRIGGERS_PER_PROPERTY,
                             CREATED_EVENTS_PER_PROPERTY, DEFAULT_KEY_EVENTS, KEY_EVENT_LIMITS,
                             STANDARD)
from ga_sync.spec_rules import EVENT_VALUE, check_event_name, origin_problems, within_text

_PLAIN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9 _.,'()/&+-]*\Z")
_YAML_WORDS = frozenset({"true", "false", "yes", "no", "on", "off", "null", "y", "n"})


# Key events GA or common practice treats as the outcome a site exists for.
MACRO_EVENTS = frozenset({"purchase", "generate_lead", "close_convert_lead", "qualify_lead",
                          "request_quote", "in_app_purchase", "book_appointment"})
_MACRO_WORDS = frozenset({"purchase", "lead", "quote"})


def guess_tier(event: str) -> str:
    """Tier for a key event read from GA, which has no notion of macro/micro.

    Macro when the name is a known outcome (`purchase`, `generate_lead`, `request_quote`, ...) or
    contains the word purchase, lead or quote between underscores; micro otherwise. A guess: a
    dumped spec says so in its header, to be reviewed.
    """
    name = event.lower()
    if name in MACRO_EVENTS or _MACRO_WORDS & set(name.split("_")):
        return MACRO
    return MICRO


def goals_from_key_events(states: Iterable[KeyEventState], currency: str) -> list[Goal]:
    """Live key events -> goals: tier guessed, no default value -> `value: event`.

    Every key event becomes a goal, also one a spec cannot hold; `dump_property` leaves those
    out.
    """
    return [_goal_from_state(s) for s in states]


def _goal_from_state(state: KeyEventState,
                     origin: EventRule | SessionRule | None = None) -> Goal:
    return Goal(event=state.event, tier=guess_tier(state.event), value=state.settings.value,
                counting=state.settings.counting, origin=origin)


Origins = Mapping[str, "EventRule | SessionRule"]


def goals_from_state(key_events: Iterable[KeyEventState],
                     rules_by_event: Mapping[str, EventRule] | None = None,
                     sessions_by_event: Mapping[str, SessionRule] | None = None,
                     currency: str = "") -> list[Goal]:
    """Live key events and the goal machinery that makes their events -> goals with origins.

    `rules_by_event` maps an event to the (normalized) event create rule that makes it,
    `sessions_by_event` to the audience trigger that logs it; a key event in neither is a goal
    whose event the site sends. When both make one event, the rule wins (a plan warns about the
    audience as double counting). Pure: pass the result, or the key events with the same
    mappings, to `dump_property`. `currency` is accepted for symmetry with
    `goals_from_key_events`; values keep GA's numbers.
    """
    return [_goal_from_state(s, _origin_of(s.event, rules_by_event, sessions_by_event))
            for s in key_events]


def _origin_of(event: str, rules: Mapping[str, EventRule] | None,
               sessions: Mapping[str, SessionRule] | None) -> EventRule | SessionRule | None:
    if rules and event in rules:
        return rules[event]
    if sessions and event in sessions:
        return sessions[event]
    return None


@dataclass(frozen=True)
class LeftOut:
    """A live key event a dumped spec cannot hold, and why; a plan lists it as unmanaged."""

    event: str
    reason: str  # a sentence that names the event

    def __str__(self) -> str:
        return self.reason


@dataclass(frozen=True)
class Dump:
    """A dumped spec: its text, its currency and the key events it had to leave out."""

    text: str
    currency: str
    left_out: tuple[LeftOut, ...] = ()
    key_events: int = 0  # key events read from the property (kept + left out)


def _keeper(spellings: list[str]) -> str:
    """Of names differing only in case, the lower_snake_case one GA recommends, else the first."""
    return next((name for name in spellings if name == name.lower()), spellings[0])


def _spec_currency(items: list[Goal | KeyEventState], given: str) -> str:
    """The currency GA holds the default values in: the most common one, else the given one.

    Goals (from a loaded spec) are in the given currency. On a tie the given currency wins, then
    the one met first.
    """
    counts: Counter[str] = Counter()
    for item in items:
        if isinstance(item, KeyEventState):
            if item.settings.value is not None and item.settings.currency:
                counts[item.settings.currency.strip().upper()] += 1
        elif item.value is not None:
            counts[given] += 1
    if not counts:
        return given
    top = max(counts.values())
    return given if counts[given] == top else next(c for c, n in counts.items() if n == top)


def _names_left_out(items: list[Goal | KeyEventState]) -> dict[int, LeftOut]:
    """Items (by position) whose names the spec validator would reject."""
    out: dict[int, LeftOut] = {}
    for index, item in enumerate(items):
        problems = check_event_name(item.event)
        if problems:
            out[index] = LeftOut(item.event, "; ".join(problems) + " (see `ga-sync audit`)")
    by_case: dict[str, list[int]] = {}  # the validator's rule: one spelling per casefolded name
    for index, item in enumerate(items):
        if index not in out:
            by_case.setdefault(item.event.casefold(), []).append(index)
    for indexes in by_case.values():
        keep = _keeper([items[i].event for i in indexes])
        why = ("the lower_snake_case spelling GA recommends" if keep == keep.lower()
               else "the first in GA's order")
        kept = False
        for i in indexes:
            event = items[i].event
            if event == keep and not kept:
                kept = True
            elif event == keep:
                out[i] = LeftOut(event, f"`{event}` is listed twice")
            else:
                out[i] = LeftOut(event, f"`{event}` and `{keep}` differ only in letter case; GA4 "
                                        f"treats them as two key events, but a spec holds one of "
                                        f"them (kept `{keep}`, {why})")
    return out


def _values_left_out(items: list[Goal | KeyEventState], currency: str,
                     skip: dict[int, LeftOut]) -> dict[int, LeftOut]:
    """Live key events (by position) whose default value the spec cannot write."""
    out: dict[int, LeftOut] = {}
    for index, item in enumerate(items):
        if index in skip or not isinstance(item, KeyEventState) or item.settings.value is None:
            continue
        value, code = item.settings.value, (item.settings.currency or currency).strip().upper()
        if not math.isfinite(value) or value < 0:
            out[index] = LeftOut(item.event, f"`{item.event}` has a default value of {value:g} "
                                             f"{code} in GA; a spec value is a number, 0 or more")
        elif code != currency:
            out[index] = LeftOut(item.event, f"`{item.event}` has a default value of {value:g} "
                                             f"{code} in GA, but this spec's values are in "
                                             f"{currency} (most key events use it) and a spec has "
                                             f"one currency; it stays unmanaged until its value in "
                                             f"GA is in {currency}")
    return out


def _origins_left_out(goals: dict[int, Goal]) -> dict[int, str]:
    """Goals (by position) whose origin a spec could not hold, and why; they are written as
    events the site sends, so the rule or audience stays unmanaged and nothing changes."""
    out: dict[int, str] = {}
    rules = sessions = 0
    for index, goal in goals.items():
        if goal.origin is None:
            continue
        what = ("event create rule" if isinstance(goal.origin, EventRule)
                else "audience trigger")
        problems = origin_problems(goal.event, goal.origin)
        if problems:
            out[index] = f"the {what} making `{goal.event}` is left out: " + "; ".join(problems)
            continue
        if isinstance(goal.origin, EventRule):
            rules += 1
            over = rules > CREATED_EVENTS_PER_PROPERTY
            limit = f"{CREATED_EVENTS_PER_PROPERTY} created events"
        else:
            sessions += 1
            over = sessions > AUDIENCE_TRIGGERS_PER_PROPERTY
            limit = f"{AUDIENCE_TRIGGERS_PER_PROPERTY} audience triggers"
        if over:
            out[index] = (f"the {what} making `{goal.event}` is left out: a spec holds at most "
                          f"{limit} per property")
    return out


# A condition value in a flow mapping or after `page:`: plain only when nothing can misread it.
_PLAIN_VALUE = re.compile(r"[A-Za-z][A-Za-z0-9_./-]*\Z")


def _quoted(value: str) -> str:
    """A YAML double-quoted scalar that reads back as exactly `value`, whatever it holds.

    JSON's escapes are YAML's; characters YAML may not hold raw or would fold (controls, NEL,
    line and paragraph separators, BOM, surrogates) are written as \\u escapes.
    """
    text = json.dumps(value, ensure_ascii=False)
    return "".join(ch if _printable(ch) else
                   (f"\\u{ord(ch):04x}" if ord(ch) <= 0xFFFF else f"\\U{ord(ch):08x}")
                   for ch in text)


def _printable(ch: str) -> bool:
    code = ord(ch)
    return (0x20 <= code <= 0x7E or 0xA0 <= code <= 0xD7FF or 0xE000 <= code <= 0xFFFD
            and code != 0xFEFF or 0x10000 <= code <= 0x10FFFF) and code not in (0x2028, 0x2029)


def _value(value: str) -> str:
    if _PLAIN_VALUE.match(value) and value.lower() not in _YAML_WORDS:
        return value
    return _quoted(value)


def _condition(condition: Condition) -> str:
    """`pdf` for a plain equals, else `{contains: "/brochure", ignore_case: true}`."""
    if condition.op == EQUALS and not condition.ignore_case:
        return _value(condition.value)
    case = ", ignore_case: true" if condition.ignore_case else ""
    return f"{{{condition.op}: {_value(condition.value)}{case}}}"


def _origin_lines(origin: EventRule | SessionRule) -> list[str]:
    if isinstance(origin, SessionRule):
        [(key, number)] = [(k, v) for k, v in (("min_page_views", origin.min_page_views),
                                                ("min_seconds", origin.min_seconds))
                           if v is not None]
        return [f"    session: {{{key}: {number}}}"]
    page = origin.page
    if page is not None:
        return [f"    page: {_condition(page)}"]
    lines = [f"    from: {origin.source}"]
    if origin.where:
        lines.append("    where:")
        lines += [f"      {c.field}: {_condition(c)}" for c in origin.where]
    return lines


def _comment(text: str) -> str:
    """Text on one comment line, whatever a live event name holds."""
    return text.replace("\r", "\\r").replace("\n", "\\n")


def _text(value: str) -> str:
    """A YAML scalar that reads back as the same string."""
    if _PLAIN_TEXT.match(value) and value.lower() not in _YAML_WORDS and value == value.strip():
        return value
    return json.dumps(value, ensure_ascii=False)


def _number(value: float) -> str:
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def dump_spec(client: str, properties: Iterable[str | int], currency: str,
              goals: Iterable[Goal | KeyEventState], *, rate_basis: str = SESSIONS,
              service_level: str = STANDARD, source: str | None = None,
              rules: Mapping[str, EventRule] | None = None,
              sessions: Mapping[str, SessionRule] | None = None,
              funnels: Iterable[Funnel] = ()) -> str:
    """A spec file (YAML text) for these goals or live key events; see `dump_property`."""
    return dump_property(client, properties, currency, goals, rate_basis=rate_basis,
                         service_level=service_level, source=source, rules=rules,
                         sessions=sessions, funnels=funnels).text


def dump_property(client: str, properties: Iterable[str | int], currency: str,
                  goals: Iterable[Goal | KeyEventState], *, rate_basis: str = SESSIONS,
                  service_level: str = STANDARD, source: str | None = None,
                  rules: Mapping[str, EventRule] | None = None,
                  sessions: Mapping[str, SessionRule] | None = None,
                  funnels: Iterable[Funnel] = ()) -> Dump:
    """A spec for these goals or live key events that validates and plans no changes.

    Used by `ga-sync dump` to start a spec from a live property. Key events become goals with a
    guessed tier (see `guess_tier`); without a default value they get `value: event`. The
    spec's currency is the one GA holds the default values in (the given currency, the
    property's, when there are none). A key event the spec cannot hold is left out, with a
    comment line where it would be, so a plan lists it as unmanaged instead of changing it: a
    name that breaks GA's naming rules, a second spelling of a name that differs only in case,
    or a default value in another currency than most (a spec has one currency).

    `rules` / `sessions` map a live key event's name to the normalized event create rule or
    audience trigger that makes it (see `goals_from_state`); those goals get `page:`,
    `from:`/`where:` or `session:`. A rule or audience a spec could not hold (its event is a
    reserved name, a regex RE2 refuses, more conditions or longer values than GA takes, more
    than GA's per-property limit) is left out with a comment and its goal written as an event
    the site sends, so the plan lists the rule or audience as unmanaged and changes nothing.

    `funnels` (from a loaded spec; GA holds none) are written after the goals.
    """
    given = currency.strip().upper()
    items = list(goals)
    left_out = _names_left_out(items)
    code = _spec_currency([item for i, item in enumerate(items) if i not in left_out], given)
    left_out.update(_values_left_out(items, code, left_out))
    kept = {i: (_goal_from_state(item, _origin_of(item.event, rules, sessions))
                if isinstance(item, KeyEventState) else item)
            for i, item in enumerate(items) if i not in left_out}
    origins_out = _origins_left_out(kept)
    names = [property_id(property_name(p)) for p in properties]
    origin = f" from {source}" if source else ""
    lines = [
        f"# Goal spec written by ga-sync dump{origin}.",
        "# Review before use: tiers of key events read from GA are guessed from their names",
        "# (purchase, *_lead, *_quote -> macro; others -> micro), and `value: event` marks key",
        "# events without a default value. Give each goal its economic value (docs/spec.md).",
    ]
    if code != given:
        lines.append(f"# Currency: GA holds these default values in {code}; the property's "
                     f"currency is {given}.")
    if left_out:
        lines.append(f"# {len(left_out)} key event{'s' if len(left_out) != 1 else ''} left out "
                     f"(see `# left out:` below); a plan lists them as unmanaged.")
    if any(g.origin is not None for g in kept.values()):
        lines.append("# page:, from: and session: goals are made by GA: from the event create "
                     "rules and audience")
        lines.append("# triggers that make their events (docs/spec.md, \"Goal kinds\").")
    if origins_out:
        lines.append(f"# {len(origins_out)} rule{'s' if len(origins_out) != 1 else ''} or "
                     f"audience{'s' if len(origins_out) != 1 else ''} left out (see `# left out:`"
                     f" below); a plan lists them as unmanaged.")
    custom = sum(1 for i, item in enumerate(items)
                 if i not in left_out and item.event not in DEFAULT_KEY_EVENTS)
    if service_level == STANDARD and \
            KEY_EVENT_LIMITS[STANDARD] < custom <= KEY_EVENT_LIMITS[ANALYTICS_360]:
        service_level = ANALYTICS_360
        lines.append(f"# {custom} custom key events: more than a standard property allows, so "
                     f"this is an Analytics 360 property.")
    lines += [
        f"client: {_text(client)}",
        f"properties: [{', '.join(names)}]",
        f"currency: {code}",
        f"rate_basis: {rate_basis}",
    ]
    if service_level != STANDARD:
        lines.append(f"service_level: {service_level}")
    lines.append("goals:")
    for index, item in enumerate(items):
        if index in left_out:
            lines.append(f"  # left out: {_comment(left_out[index].reason)}")
            continue
        goal = kept[index]
        if index in origins_out:
            lines.append(f"  # left out: {_comment(origins_out[index])}")
            goal = replace(goal, origin=None)
        lines.append(f"  - event: {_text(goal.event)}")
        lines.append(f"    tier: {goal.tier}")
        lines.append(f"    value: {EVENT_VALUE if goal.value is None else _number(goal.value)}")
        lines.append(f"    counting: {goal.counting}")
        if goal.category is not None:
            lines.append(f"    category: {_text(goal.category)}")
        if goal.description is not None:
            lines.append(f"    description: {_text(goal.description)}")
        if goal.identifies:
            lines.append("    identifies: true")
        if goal.origin is not None:
            lines += _origin_lines(goal.origin)
    lines += _funnel_lines(funnels)
    text = "\n".join(lines) + "\n"
    return Dump(text, code, tuple(left_out[i] for i in sorted(left_out)))


def _funnel_lines(funnels: Iterable[Funnel]) -> list[str]:
    lines: list[str] = []
    for funnel in funnels:
        name = funnel.name if _text(funnel.name) == funnel.name else _quoted(funnel.name)
        lines.append(f"  - name: {name}")
        lines.append(f"    steps: [{', '.join(_value(step) for step in funnel.steps)}]")
        if funnel.within is not None:
            lines.append(f"    within: {within_text(funnel.within)}")
        if funnel.open:
            lines.append("    open: true")
    return ["funnels:"] + lines if lines else []


def spec_to_yaml(spec: Spec, *, source: str | None = None) -> str:
    """A loaded spec as one self-contained file (`extends` already merged in)."""
    return dump_spec(spec.client, spec.properties, spec.currency, spec.goals,
                     rate_basis=spec.rate_basis, source=source, funnels=spec.funnels)
