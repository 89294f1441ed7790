"""The pure diff between what a spec wants and what a property has. No I/O here.

`diff()` compares normalized models (see model.KeyEventSettings) and returns a PropertyPlan of
Create / Update / Delete changes matched by event name, with warnings about what GA would
refuse (more custom key events than the property may have). `check_safety()` is the plan's
guard against applying something much bigger than intended (the octoDNS update/delete
threshold).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

from ga_sync.errors import UnsafePlan
from ga_sync.model import (
    ACTION_ORDER,
    CREATE,
    DELETE,
    UPDATE,
    Change,
    KeyEventSettings,
    KeyEventState,
    Plan,
    PropertyPlan,
)

#: A plan may change or delete at most this share of a property's existing key events ...
SAFETY_SHARE = 0.30
#: ... once the property has at least this many key events.
SAFETY_MIN_EXISTING = 10


def limit_warnings(existing: Iterable[KeyEventState], changes: Sequence[Change],
                   key_event_limit: int | None = None) -> list[str]:
    """A warning when the plan's creates would take the property past GA's key-event limit.

    Counts custom key events (GA's own, like `purchase`, do not count): those there now, plus
    creates, minus deletes of custom ones. `key_event_limit` is the property's limit (30, or 50
    on Analytics 360; see `garules.KEY_EVENT_LIMITS` and `PropertyInfo.key_event_limit`). Unknown
    (None): a property that already has more than 30 is read as Analytics 360, any other as
    standard, and the message says which limit applies to which.
    """
    from ga_sync.garules import ANALYTICS_360, DEFAULT_KEY_EVENTS, KEY_EVENT_LIMITS, STANDARD

    live = {k.event: k for k in existing}
    now = sum(1 for k in live.values() if k.custom)
    creates = sum(1 for c in changes if c.action == CREATE and c.event not in DEFAULT_KEY_EVENTS)
    deletes = sum(1 for c in changes if c.action == DELETE and c.event in live
                  and live[c.event].custom)
    after = now + creates - deletes
    standard, big = KEY_EVENT_LIMITS[STANDARD], KEY_EVENT_LIMITS[ANALYTICS_360]
    limit = key_event_limit or (big if now > standard else standard)
    if not creates or after <= limit:
        return []
    which = (f"GA's limit of {limit} for this property" if key_event_limit else
             f"GA's limit of {limit} for a standard property (Analytics 360 allows {big})"
             if limit == standard else f"GA's limit of {limit} (Analytics 360)")
    failing = min(after - limit, creates)
    return [f"{after} custom key events after this plan ({now} now, {creates} to create, "
            f"{deletes} to delete) is over {which}: the last {failing} "
            f"create{'s' if failing != 1 else ''} will fail. Drop goals from the spec, or "
            "delete key events no longer needed (--prune deletes the ones the spec does not "
            "name)."]


def same_settings(a: KeyEventSettings, b: KeyEventSettings) -> bool:
    """Equal for GA's purposes: same counting method, same default value and currency.

    Values are compared with a relative tolerance, because a value that went through JSON and
    a double on Google's side may come back as 12.499999999999998.
    """
    if a.counting != b.counting:
        return False
    if (a.value is None) != (b.value is None):
        return False
    if a.value is None or b.value is None:
        return True
    return math.isclose(a.value, b.value, rel_tol=1e-9, abs_tol=1e-9) and (
        (a.currency or "").upper() == (b.currency or "").upper()
    )


def diff(
    property: str,
    client: str,
    desired: Mapping[str, KeyEventSettings],
    existing: Iterable[KeyEventState],
    *,
    prune: bool = False,
    key_event_limit: int | None = None,
) -> PropertyPlan:
    """What must change so that `existing` matches `desired`.

    Event names are immutable in GA, so a renamed goal shows up as a delete (only with
    `prune`) plus a create. Key events GA marks non-deletable (the default `purchase`) are
    never deleted: with `prune` they are listed as `protected` instead. The plan carries
    `warnings` (see `limit_warnings`; `key_event_limit` is the property's limit if known).
    """
    existing = list(existing)
    live = {k.event: k for k in existing}
    changes: list[Change] = []
    unmanaged: list[str] = []
    protected: list[str] = []

    for event, want in desired.items():
        have = live.get(event)
        if have is None:
            changes.append(Change(CREATE, event, None, want))
        elif not same_settings(have.settings, want):
            changes.append(Change(UPDATE, event, have.settings, want, name=have.name))

    for event, have in live.items():
        if event in desired:
            continue
        if not prune:
            unmanaged.append(event)
        elif have.deletable:
            changes.append(Change(DELETE, event, have.settings, None, name=have.name))
        else:
            protected.append(event)

    changes.sort(key=lambda c: (ACTION_ORDER[c.action], c.event))
    return PropertyPlan(
        property=property,
        client=client,
        changes=tuple(changes),
        unmanaged=tuple(sorted(unmanaged)),
        protected=tuple(sorted(protected)),
        existing_managed=len(live),
        warnings=tuple(limit_warnings(existing, changes, key_event_limit)),
    )


def check_safety(plan: Plan, *, share: float = SAFETY_SHARE,
                 min_existing: int = SAFETY_MIN_EXISTING) -> None:
    """Raise UnsafePlan when a property would see too many of its key events changed or deleted.

    Counts updates and deletes against the key events the property has now; creates are never
    dangerous. Only properties with at least `min_existing` key events are checked, since on a
    small property any single change is a large share.
    """
    problems = []
    for p in plan.properties:
        touched = sum(1 for c in p.changes if c.action in (UPDATE, DELETE))
        if p.existing_managed >= min_existing and touched > share * p.existing_managed:
            problems.append(
                f"{p.property} ({p.client}): {touched} of {p.existing_managed} existing key events "
                f"would be changed or deleted, more than {share:.0%}"
            )
    if problems:
        raise UnsafePlan(
            "refusing to apply an unusually large plan:\n  "
            + "\n  ".join(problems)
            + "\nReview the plan, then run again with --force if it is what you want."
        )
