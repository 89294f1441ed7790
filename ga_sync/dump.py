"""Writing specs: a dump for every load.

`ga-sync dump` turns a live property's key events into a spec file; `spec_to_yaml` writes a
loaded spec back as one self-contained file. What is written loads back unchanged (tested for
every example in goal_specs/).
"""

from __future__ import annotations

import json
import re
from typing import Iterable

from ga_sync.model import (MACRO, MICRO, SESSIONS, Goal, KeyEventState, Spec, property_id,
                           property_name)
from ga_sync.spec import EVENT_VALUE, STANDARD

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
    """Live key events -> goals: tier guessed, no default value -> `value: event`."""
    return [_goal_from_state(s, currency)[0] for s in states]


def _goal_from_state(state: KeyEventState, currency: str) -> tuple[Goal, str | None]:
    note = None
    value = state.settings.value
    if value is not None and state.settings.currency and state.settings.currency.upper() != currency.upper():
        note = (f"GA's default value is {value:g} {state.settings.currency.upper()}, not "
                f"{currency.upper()}: convert it")
    goal = Goal(event=state.event, tier=guess_tier(state.event), value=value,
                counting=state.settings.counting)
    return goal, note


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
              service_level: str = STANDARD, source: str | None = None) -> str:
    """A spec file (YAML text) for these goals or live key events; it loads back unchanged.

    Used by `ga-sync dump` to start a spec from a live property. Key events become goals with a
    guessed tier (see `guess_tier`); without a default value they get `value: event`.
    """
    code = currency.strip().upper()
    names = [property_id(property_name(p)) for p in properties]
    origin = f" from {source}" if source else ""
    lines = [
        f"# Goal spec written by ga-sync dump{origin}.",
        "# Review before use: tiers of key events read from GA are guessed from their names",
        "# (purchase, *_lead, *_quote -> macro; others -> micro), and `value: event` marks key",
        "# events without a default value. Give each goal its economic value (docs/spec.md).",
        f"client: {_text(client)}",
        f"properties: [{', '.join(names)}]",
        f"currency: {code}",
        f"rate_basis: {rate_basis}",
    ]
    if service_level != STANDARD:
        lines.append(f"service_level: {service_level}")
    lines.append("goals:")
    for item in goals:
        goal, note = _goal_from_state(item, code) if isinstance(item, KeyEventState) else (item, None)
        if note:
            lines.append(f"  # {note}")
        lines.append(f"  - event: {_text(goal.event)}")
        lines.append(f"    tier: {goal.tier}")
        lines.append(f"    value: {EVENT_VALUE if goal.value is None else _number(goal.value)}")
        lines.append(f"    counting: {goal.counting}")
        if goal.category is not None:
            lines.append(f"    category: {_text(goal.category)}")
        if goal.description is not None:
            lines.append(f"    description: {_text(goal.description)}")
    return "\n".join(lines) + "\n"


def spec_to_yaml(spec: Spec, *, source: str | None = None) -> str:
    """A loaded spec as one self-contained file (`extends` already merged in)."""
    return dump_spec(spec.client, spec.properties, spec.currency, spec.goals,
                     rate_basis=spec.rate_basis, source=source)
