"""The pure diff between what a spec wants and what a property has. No I/O here.

`diff()` compares normalized models (see model.KeyEventSettings, machinery.RuleState and
AudienceState) and returns a PropertyPlan of Create / Update / Delete changes matched by event
name, with warnings about what GA would refuse (more custom key events, created events or
audience triggers than the property may have) or what would count twice. `check_safety()` is
the plan's guard against applying something much bigger than intended (the octoDNS
update/delete threshold), over key events, event create rules and audiences alike.

Goal machinery (see docs/spec.md): a goal with an origin (`page:`/`from:`: an event create rule
on every web data stream; `session:`: an audience whose trigger logs the event) has its rules
and audiences managed; every other rule or audience is unmanaged and never touched.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

from dataclasses import dataclass

from ga_sync import garules
from ga_sync.errors import UnsafePlan
from ga_sync.machinery import AudienceState, RuleState, Stream
from ga_sync.model import (
    ACTION_ORDER,
    AUDIENCE,
    CREATE,
    DELETE,
    EVENT_CREATE_RULE,
    KEY_EVENT,
    UPDATE,
    Change,
    EventRule,
    KeyEventSettings,
    KeyEventState,
    Plan,
    PropertyPlan,
    SessionRule,
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


#: Order of resources within an action: a goal's rule or audience exists before its key event
#: is created, and its key event goes before them on deletion.
_CREATE_RANK = {EVENT_CREATE_RULE: 0, AUDIENCE: 1, KEY_EVENT: 2}
_DELETE_RANK = {KEY_EVENT: 0, EVENT_CREATE_RULE: 1, AUDIENCE: 2}


def change_order(c: Change) -> tuple:
    """Deletes (key events first, then rules, then audiences), then updates, then creates
    (rules and audiences first, then key events); by event and stream within each."""
    rank = (_DELETE_RANK if c.action == DELETE else _CREATE_RANK)[c.resource]
    return (ACTION_ORDER[c.action], rank, c.event, c.stream or "", c.name or "")


@dataclass(frozen=True)
class UnmanagedResource:
    """A rule or audience (with an event trigger) that is not a spec goal's machinery."""

    resource: str
    event: str
    name: str
    stream: str | None = None

    def to_json(self) -> dict:
        out = {"resource": self.resource, "event": self.event, "name": self.name}
        if self.stream is not None:
            out["stream"] = self.stream
        return out


@dataclass(frozen=True)
class MachineryPlan(PropertyPlan):
    """A PropertyPlan for a property whose rules and audiences were read: also lists the rules
    and audiences ga-sync leaves alone (`unmanaged_resources`, JSON's added field; `unmanaged`
    keeps naming key events only)."""

    unmanaged_resources: tuple[UnmanagedResource, ...] = ()
    #: Goals that could not be planned (`page:`/`from:` goals of a property without a web
    #: stream), in one message: the property's error beside its plan (see `sync.plan_all`).
    problems: tuple[str, ...] = ()

    def to_json(self) -> dict:
        out = super().to_json()
        out["unmanaged_resources"] = [u.to_json() for u in self.unmanaged_resources]
        return out


def no_web_stream(events: Sequence[str], streams: Sequence[Stream]) -> str:
    """The property's error when `page:`/`from:` goals have no web stream to go on (the
    property and client are said by whoever shows it)."""
    others = ", ".join(f"{s.name} ({s.kind.lower().replace('_data_stream', '')})"
                       for s in streams) or "none"
    plural = len(events) != 1
    return (f"the goal{'s' if plural else ''} {', '.join(events)} need{'' if plural else 's'} "
            f"an event create rule on a web data stream, and the property has no web stream "
            f"(its streams: {others}): {'they were' if plural else 'it was'} left out of the "
            "plan (no rule, and no key event nothing would make), the property's other goals "
            "were planned. Add a web stream in GA4 Admin → Data streams, or write these goals "
            "as `event:` goals the site sends.")


def machinery_warnings(rules: Sequence[RuleState], audiences: Sequence[AudienceState],
                       changes: Sequence[Change]) -> list[str]:
    """Warnings when the plan's creates take the property past GA's limits on created events
    (event create rules) or on audiences and audiences with an event trigger."""
    out = []

    def after(resource: str, now: int) -> tuple[int, int, int]:
        creates = sum(1 for c in changes if c.resource == resource and c.action == CREATE)
        deletes = sum(1 for c in changes if c.resource == resource and c.action == DELETE)
        return now + creates - deletes, creates, deletes

    n, creates, deletes = after(EVENT_CREATE_RULE, len(rules))
    if creates and n > garules.CREATED_EVENTS_PER_PROPERTY:
        out.append(f"{n} event create rules after this plan ({len(rules)} now, {creates} to "
                   f"create, {deletes} to delete) is over GA's limit of "
                   f"{garules.CREATED_EVENTS_PER_PROPERTY} created events per property (the "
                   "help centre's number; whether GA counts per stream is not documented): "
                   "creates past it will fail. Drop `page:`/`from:` goals, or delete rules "
                   "no longer needed in GA4 Admin → Events.")
    triggers = sum(1 for a in audiences if a.event)
    n, creates, deletes = after(AUDIENCE, triggers)
    if creates and n > garules.AUDIENCE_TRIGGERS_PER_PROPERTY:
        out.append(f"{n} audiences with an event trigger after this plan ({triggers} now, "
                   f"{creates} to create, {deletes} to archive) is over GA's limit of "
                   f"{garules.AUDIENCE_TRIGGERS_PER_PROPERTY}: creates past it will fail. Drop "
                   "`session:` goals, or archive audience triggers no longer needed.")
    n, creates, deletes = after(AUDIENCE, len(audiences))
    if creates and n > garules.AUDIENCES_PER_PROPERTY:
        out.append(f"{n} audiences after this plan ({len(audiences)} now with an event "
                   f"trigger or not, {creates} to create, {deletes} to archive) is over GA's "
                   f"limit of {garules.AUDIENCES_PER_PROPERTY} audiences per property: creates "
                   "past it will fail. Archive audiences no longer needed.")
    return out


def _extras_warning(event: str, extras: Sequence[RuleState | AudienceState]) -> str:
    what = []
    for x in extras:
        if isinstance(x, RuleState):
            what.append(f"event create rule {x.name}")
        else:
            what.append(f"audience {x.name}" + (f" ({x.display_name})" if x.display_name else ""))
    return (f"{event} is also made by {len(extras)} other "
            f"{'resource' if len(extras) == 1 else 'resources'} ({'; '.join(what)}): GA logs "
            "the event once for each, so the goal may be counted twice. Pruning (--prune) "
            "deletes them (audiences are archived).")


def _machinery_changes(origins: Mapping[str, EventRule | SessionRule],
                       web: Sequence[Stream], rules: Sequence[RuleState],
                       audiences: Sequence[AudienceState], prune: bool,
                       ) -> tuple[list[Change], list[str], int, set[str]]:
    """Changes to the rules and audiences of goals with an origin; also warnings, how many
    managed resources exist, and the names of the managed ones."""
    web_names = {s.name for s in web}
    changes: list[Change] = []
    warnings: list[str] = []
    managed: set[str] = set()
    for event in sorted(origins):
        origin = origins[event]
        extras: list[RuleState | AudienceState] = []
        web_rules = [r for r in rules if r.event == event and r.stream in web_names]
        own_audiences = [a for a in audiences if a.event == event]
        managed.update(r.name for r in web_rules)
        managed.update(a.name for a in own_audiences)
        if isinstance(origin, EventRule):
            for stream in sorted(web_names):
                have = [r for r in web_rules if r.stream == stream]
                keep = next((r for r in have if r.form == origin), have[0] if have else None)
                if keep is None:
                    changes.append(Change(CREATE, event, None, origin,
                                          resource=EVENT_CREATE_RULE, stream=stream))
                elif keep.form != origin:
                    changes.append(Change(UPDATE, event, keep.form, origin, name=keep.name,
                                          resource=EVENT_CREATE_RULE, stream=stream))
                extras += [r for r in have if r is not keep]
            extras += own_audiences
        else:
            keep_a = next((a for a in own_audiences if a.form == origin),
                          own_audiences[0] if own_audiences else None)
            if keep_a is not None and keep_a.form != origin:
                # filter clauses and membership duration are immutable in GA: replace
                changes.append(Change(DELETE, event, keep_a.form, None, name=keep_a.name,
                                      resource=AUDIENCE))
                keep_a = None
            if keep_a is None:
                changes.append(Change(CREATE, event, None, origin, resource=AUDIENCE))
            extras += [a for a in own_audiences if a is not keep_a and
                       not any(c.name == a.name for c in changes)]
            extras += web_rules
        if not extras:
            continue
        if not prune:
            warnings.append(_extras_warning(event, extras))
            continue
        for x in extras:
            if isinstance(x, RuleState):
                changes.append(Change(DELETE, event, x.form, None, name=x.name,
                                      resource=EVENT_CREATE_RULE, stream=x.stream))
            else:
                changes.append(Change(DELETE, event, x.form, None, name=x.name,
                                      resource=AUDIENCE))
    return changes, warnings, len(managed), managed


def _removed_goals_machinery(removed: set[str], web: Sequence[Stream],
                             rules: Sequence[RuleState], audiences: Sequence[AudienceState],
                             ) -> list[Change]:
    """Deletes of the rules (on web streams) and audiences that make an event whose key event
    the plan deletes: a goal taken out of the spec goes with its machinery (else the audience
    keeps logging an event nothing counts)."""
    web_names = {s.name for s in web}
    out = [Change(DELETE, r.event, r.form, None, name=r.name, resource=EVENT_CREATE_RULE,
                  stream=r.stream)
           for r in rules if r.event in removed and r.stream in web_names]
    out += [Change(DELETE, a.event, a.form, None, name=a.name, resource=AUDIENCE)
            for a in audiences if a.event in removed]
    return out


def diff(
    property: str,
    client: str,
    desired: Mapping[str, KeyEventSettings],
    existing: Iterable[KeyEventState],
    *,
    prune: bool = False,
    key_event_limit: int | None = None,
    origins: Mapping[str, EventRule | SessionRule | None] | None = None,
    streams: Sequence[Stream] | None = None,
    rules: Sequence[RuleState] = (),
    audiences: Sequence[AudienceState] = (),
) -> PropertyPlan:
    """What must change so that `existing` matches `desired`.

    Event names are immutable in GA, so a renamed goal shows up as a delete (only with
    `prune`) plus a create. Key events GA marks non-deletable (the default `purchase`) are
    never deleted: with `prune` they are listed as `protected` instead. The plan carries
    `warnings` (see `limit_warnings`; `key_event_limit` is the property's limit if known).

    Goal machinery is planned when `origins` (event -> the goal's `Goal.origin`, e.g.
    `{g.event: g.origin for g in spec.goals}`) or `streams` is given, against the property's
    `streams`, `rules` and `audiences` as read (see machinery.read_machinery); the result is
    then a `MachineryPlan`. A `page:`/`from:` goal wants one rule per web stream (the first
    equal rule, else the first rule of that event on the stream, is kept or updated); a
    `session:` goal one audience (a different one is archived and made anew: GA's filter
    clauses and membership duration are immutable). Other rules and audiences making a goal's
    event are deleted with `prune`, else warned about; so are, with `prune`, the rules (on web
    streams) and audiences making an event whose key event the plan deletes (that goal's
    machinery), after the key event. `page:`/`from:` goals of a property without a web stream
    are left out of the plan (neither their rules nor their key events are touched) and named
    in the plan's `problems` (see `no_web_stream`): the property's error, beside the plan of
    its other goals.
    """
    existing = list(existing)
    live = {k.event: k for k in existing}
    changes: list[Change] = []
    unmanaged: list[str] = []
    protected: list[str] = []
    with_machinery = origins is not None or streams is not None
    made = {e: o for e, o in (origins or {}).items() if o is not None}
    streams = list(streams or ())
    web = [s for s in streams if s.web]
    needs_web = sorted(e for e, o in made.items() if isinstance(o, EventRule))
    blocked = set(needs_web) if with_machinery and needs_web and not web else set()
    made = {e: o for e, o in made.items() if e not in blocked}

    for event, want in desired.items():
        if event in blocked:
            continue
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

    warnings = limit_warnings(existing, changes, key_event_limit)
    managed_count = 0
    unmanaged_resources: list[UnmanagedResource] = []
    if with_machinery:
        more, extra_warnings, managed_count, managed = _machinery_changes(
            made, web, rules, audiences, prune)
        if prune:
            removed = {c.event for c in changes if c.action == DELETE}
            gone = _removed_goals_machinery(removed, web, rules, audiences)
            more += gone
            managed.update(c.name or "" for c in gone)
            managed_count += len(gone)
        changes += more
        warnings += extra_warnings
        warnings += machinery_warnings(rules, audiences, more)
        unmanaged_resources = sorted(
            [UnmanagedResource(EVENT_CREATE_RULE, r.event, r.name, r.stream)
             for r in rules if r.name not in managed]
            + [UnmanagedResource(AUDIENCE, a.event, a.name)
               for a in audiences if a.name not in managed and a.event],
            key=lambda u: (u.resource, u.event, u.name))

    changes.sort(key=change_order)
    fields = dict(
        property=property,
        client=client,
        changes=tuple(changes),
        unmanaged=tuple(sorted(unmanaged)),
        protected=tuple(sorted(protected)),
        existing_managed=len(live) + managed_count,
        warnings=tuple(warnings),
    )
    if with_machinery:
        return MachineryPlan(**fields, unmanaged_resources=tuple(unmanaged_resources),
                             problems=(no_web_stream(needs_web, streams),) if blocked else ())
    return PropertyPlan(**fields)


def check_safety(plan: Plan, *, share: float = SAFETY_SHARE,
                 min_existing: int = SAFETY_MIN_EXISTING) -> None:
    """Raise UnsafePlan when a property would see too many of its resources changed or deleted.

    Counts updates and deletes (of key events, rules and audiences alike) against the key
    events and managed rules and audiences the property has now; creates are never
    dangerous. Only properties with at least `min_existing` key events are checked, since on a
    small property any single change is a large share.
    """
    problems = []
    for p in plan.properties:
        touched = sum(1 for c in p.changes if c.action in (UPDATE, DELETE))
        what = ("existing key events, event create rules and audiences"
                if isinstance(p, MachineryPlan) else "existing key events")
        if p.existing_managed >= min_existing and touched > share * p.existing_managed:
            problems.append(
                f"{p.property} ({p.client}): {touched} of {p.existing_managed} {what} "
                f"would be changed or deleted, more than {share:.0%}"
            )
    if problems:
        raise UnsafePlan(
            "refusing to apply an unusually large plan:\n  "
            + "\n  ".join(problems)
            + "\nReview the plan, then run again with --force if it is what you want."
        )
