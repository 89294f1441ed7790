"""The checks: each a small pure function from `PropertyFacts` to findings, registered by id.

Thresholds (see `findings.py`): `key-event-limit` at >= 80% of the property's limit (24 of 30,
40 of 50); `pageview-like-key-event` above 50% of sessions, or on an event GA collects on
ordinary browsing; `duplicate-event-name` compares names lowercased without `_`, `-` and
spaces. GA's own default key events (neither custom nor deletable, e.g. `purchase`) are not
reported as unmanaged or never fired unless the spec names them: nobody can remove them.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable
from typing import Any

from ga_sync.audit.facts import PII_PARAMS, PropertyFacts
from ga_sync.audit.findings import CHECKS, LIMIT_SHARE, PAGEVIEW_SHARE, Finding
from ga_sync.garules import (AUDIENCE_TRIGGERS_PER_PROPERTY, AUDIENCES_PER_PROPERTY,
                             CREATED_EVENTS_PER_PROPERTY, NEAR_LIMIT_SHARE)
from ga_sync.model import (AUDIENCE, EVENT_CREATE_RULE, KEY_EVENT, ONCE_PER_SESSION, Condition,
                           EventRule, KeyEventSettings, KeyEventState)
from ga_sync.plan import same_settings
from ga_sync.garules import BROWSING_EVENTS, EVENT_NAME_MAX
from ga_sync.spec_rules import check_event_name


def is_default_key_event(ke: KeyEventState) -> bool:
    """GA's own key events (e.g. `purchase`): neither custom nor deletable."""
    return not ke.custom and not ke.deletable


def normalize_name(name: str) -> str:
    """The form two names share when they differ only in case or separators."""
    return re.sub(r"[\s_-]+", "", name).lower()


def _counting(method: str) -> str:
    return "once per session" if method == ONCE_PER_SESSION else "once per event"


def _money(value: float | None, currency: str | None) -> str:
    if value is None:
        return "no default value"
    return f"{value:,.2f}".rstrip("0").rstrip(".") + (f" {currency}" if currency else "")


def _pct(part: float, whole: float) -> str:
    return f"{part / whole:.0%}" if whole else "0%"


def _plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n:,} {word if n == 1 else (many or word + 's')}"


def _managed(facts: PropertyFacts) -> set[str]:
    return {g.event for g in facts.spec.goals} if facts.spec else set()


def _watched(facts: PropertyFacts) -> list[tuple[str, str]]:
    """(event, what) for every spec goal and every key event worth reporting on."""
    out = [(g.event, "goal") for g in facts.spec.goals] if facts.spec else []
    seen = {e for e, _ in out}
    for ke in facts.key_events:
        if ke.event not in seen and not is_default_key_event(ke):
            out.append((ke.event, "key event"))
            seen.add(ke.event)
    return out


def suggest_name(name: str) -> str | None:
    """A valid GA4 event name close to `name`, or None when there is no obvious one."""
    text = re.sub(r"[^A-Za-z0-9_]+", "_", name).strip("_")
    text = re.sub(r"^(firebase_|google_|ga_|_)+", "", text)
    text = re.sub(r"^[^A-Za-z]+", "", text)[:EVENT_NAME_MAX].rstrip("_")
    return text if text and not check_event_name(text) else None


def redact(text: str) -> str:
    """A page location with its personal data masked, safe to paste into a ticket."""
    text = re.sub(r"[A-Za-z0-9._%+-]+(@|%40)", lambda m: "***" + m.group(1), text)
    return re.sub(rf"([?&;](?:{PII_PARAMS})=)[^&#]+", r"\1***", text, flags=re.IGNORECASE)


# --------------------------------------------------------------------------- checks

CheckFn = Callable[[PropertyFacts], list[Finding]]
RUNNERS: dict[str, CheckFn] = {}


def check(check_id: str) -> Callable[[CheckFn], CheckFn]:
    """Register a check function under a CHECKS id."""
    def register(fn: CheckFn) -> CheckFn:
        assert check_id in CHECKS, check_id
        RUNNERS[check_id] = fn
        return fn
    return register


@check("missing-key-event")
def missing_key_event(facts: PropertyFacts) -> list[Finding]:
    if facts.spec is None:
        return []
    names = {k.event for k in facts.key_events}
    out = []
    for g in facts.spec.goals:
        if g.event in names:
            continue
        near = sorted(n for n in names if normalize_name(n) == normalize_name(g.event))
        also = (f"; GA has {', '.join(f'`{n}`' for n in near)}, which is another event "
                "(names are case-sensitive)") if near else ""
        out.append(facts.finding(
            "missing-key-event", g.event,
            f"Spec goal `{g.event}` ({g.tier}) is not a key event in the property, so GA "
            f"counts none of its conversions{also}.",
            f"Run `ga-sync apply` to mark `{g.event}` as a key event."))
    return out


@check("unmanaged-key-event")
def unmanaged_key_event(facts: PropertyFacts) -> list[Finding]:
    if facts.spec is None:
        return []
    managed = _managed(facts)
    return [facts.finding(
        "unmanaged-key-event", ke.event,
        f"`{ke.event}` is a key event ({_counting(ke.settings.counting)}) that the "
        f"{facts.spec.client} spec does not name; it still counts in GA's key events and key "
        "event rates.",
        "Add it to the spec if it is a real goal, or remove it with `ga-sync apply --prune`.")
        for ke in facts.key_events if ke.event not in managed and not is_default_key_event(ke)]


@check("counting-method-mismatch")
def counting_method_mismatch(facts: PropertyFacts) -> list[Finding]:
    if facts.spec is None:
        return []
    out = []
    for g in facts.spec.goals:
        ke = facts.key_event(g.event)
        if ke is None or ke.settings.counting == g.counting:
            continue
        st = facts.stats(g.event)
        ga_count = st.sessions if ke.settings.counting == ONCE_PER_SESSION else st.count
        spec_count = st.sessions if g.counting == ONCE_PER_SESSION else st.count
        out.append(facts.finding(
            "counting-method-mismatch", g.event,
            f"`{g.event}` counts {_counting(ke.settings.counting)} in GA but "
            f"{_counting(g.counting)} in the spec: {ga_count:,} key events in GA against "
            f"{spec_count:,} conversions by the spec over the window.",
            f"Run `ga-sync apply` to set the counting method to {_counting(g.counting)}.",
            resource=(KEY_EVENT, ke.name) if ke.name else None))
    return out


@check("default-value-mismatch")
def default_value_mismatch(facts: PropertyFacts) -> list[Finding]:
    if facts.spec is None:
        return []
    out = []
    for g in facts.spec.goals:
        ke = facts.key_event(g.event)
        if ke is None:
            continue
        want = KeyEventSettings.from_goal(g, facts.spec.currency)
        have = ke.settings
        if same_settings(KeyEventSettings(want.counting, have.value, have.currency), want):
            continue
        wanted = ("uses the event value" if want.value is None
                  else _money(want.value, want.currency))
        if want.value is None:
            fix = ("Run `ga-sync apply` to remove the default value (the spec uses the event's "
                   "own `value`).")
        else:
            fix = ("Run `ga-sync apply` to set the default value to "
                   f"{_money(want.value, want.currency)}.")
        out.append(facts.finding(
            "default-value-mismatch", g.event,
            f"`{g.event}` has {'a default value of ' if have.value is not None else ''}"
            f"{_money(have.value, have.currency)} in GA but {wanted} in the spec.", fix,
            resource=(KEY_EVENT, ke.name) if ke.name else None))
    return out


def _made_recently(facts: PropertyFacts, event: str) -> bool:
    """Whether the key event of a goal GA makes (by a rule or an audience) is missing or was
    marked after the window began: ga-sync creates the rule or audience just before the key
    event, and GA applies them only from then on, so a silent window says nothing yet (a
    missing key event is missing-key-event's finding)."""
    from datetime import datetime

    ke = facts.key_event(event)
    if ke is None or not ke.create_time:
        return ke is None
    try:
        created = datetime.fromisoformat(ke.create_time.replace("Z", "+00:00")).date()
    except ValueError:
        return False
    return created > facts.period.start


@check("never-fired")
def never_fired(facts: PropertyFacts) -> list[Finding]:
    if facts.total_sessions == 0:
        return []  # no-data says it once
    out = []
    goals = {g.event: g for g in facts.spec.goals} if facts.spec else {}
    for event, what in _watched(facts):
        if facts.stats(event).count:
            continue
        goal = goals.get(event)
        if goal is not None and goal.kind == "page" and event in facts.page_views:
            # no match: page-goal-no-match says why, with the closest pages; matches: the
            # report counts the goal from those page views, whether GA's created event has
            # come yet or not
            continue
        if goal is not None and goal.origin is not None and _made_recently(facts, event):
            continue  # GA makes the event only from its rule's or audience's creation on
        marked = facts.key_event(event) is not None
        kind = f"{what} (and key event)" if what == "goal" and marked else what
        fix = (f"Check that the site sends `{event}` (GA4 Realtime or DebugView) with exactly "
               f"this spelling, or remove the {what} if the action no longer exists.")
        if goal is not None and goal.origin is not None:
            maker = "audience trigger" if goal.kind == "session" else "event create rule"
            fix = (f"GA makes `{event}` by an {maker}: check that it exists (`ga-sync plan`) "
                   "and that its conditions can be met; GA applies it only to data collected "
                   "after it was created.")
        out.append(facts.finding(
            "never-fired", event,
            f"The {kind} `{event}` did not occur once from {facts.period.start} to "
            f"{facts.period.end} ({facts.period.days} days, "
            f"{_plural(facts.total_sessions, 'session')}).", fix))
    return out


@check("pageview-like-key-event")
def pageview_like_key_event(facts: PropertyFacts) -> list[Finding]:
    out = []
    for ke in facts.key_events:
        st = facts.stats(ke.event)
        share = st.sessions / facts.total_sessions if facts.total_sessions else 0.0
        browsing = ke.event in BROWSING_EVENTS
        if not browsing and share <= PAGEVIEW_SHARE:
            continue
        how = (f"occurs in {_pct(st.sessions, facts.total_sessions)} of sessions "
               f"({st.sessions:,} of {facts.total_sessions:,})" if facts.total_sessions else
               "fires on every visit")
        why = "is collected on ordinary browsing and " if browsing else ""
        out.append(facts.finding(
            "pageview-like-key-event", ke.event,
            f"Key event `{ke.event}` {why}{how}: it counts browsing as success and inflates key "
            "event rates.",
            "Mark a real completion event instead, e.g. a thank-you page event via an event "
            "create rule, and remove this key event with `ga-sync apply --prune`."))
    return out


@check("invalid-event-name")
def invalid_event_name(facts: PropertyFacts) -> list[Finding]:
    out = []
    for ke in facts.key_events:
        problems = check_event_name(ke.event)
        if not problems:
            continue
        better = suggest_name(ke.event)
        example = f" (e.g. `{better}`)" if better else ""
        out.append(facts.finding(
            "invalid-event-name", ke.event,
            "; ".join(problems)[:1].upper() + "; ".join(problems)[1:] + ".",
            f"Send the event under a valid name{example}, mark that as the key event and "
            "remove this one."))
    return out


@check("duplicate-event-name")
def duplicate_event_name(facts: PropertyFacts) -> list[Finding]:
    groups: dict[str, list[str]] = {}
    for ke in facts.key_events:
        groups.setdefault(normalize_name(ke.event), []).append(ke.event)
    managed = _managed(facts)
    out = []
    for names in groups.values():
        if len(names) < 2:
            continue
        names = sorted(names)
        keep = max(names, key=lambda n: (n in managed, facts.stats(n).count, n == n.lower()))
        counts = ", ".join(f"`{n}` {facts.stats(n).count:,}" for n in names)
        out.append(facts.finding(
            "duplicate-event-name", ", ".join(names),
            f"Key events {' and '.join(f'`{n}`' for n in names)} differ only in letter case or "
            f"separators; GA4 counts them as separate events (events in the window: {counts}), "
            "so conversions are split or double-counted.",
            f"Keep `{keep}`: make the site send only that spelling and remove the other key "
            "event(s)."))
    return out


@check("key-event-limit")
def key_event_limit(facts: PropertyFacts) -> list[Finding]:
    limit = facts.info.key_event_limit
    custom = sum(1 for ke in facts.key_events if ke.custom)
    if custom < math.ceil(LIMIT_SHARE * limit):
        return []
    return [facts.finding(
        "key-event-limit", None,
        f"{custom} of {limit} custom key events are used ({_pct(custom, limit)}); GA refuses "
        f"new key events at {limit}, leaving room for {max(limit - custom, 0)} more.",
        "Remove key events nobody reports on (never firing, duplicated or browsing-like ones) "
        "to keep room for new goals.")]


@check("value-overridden")
def value_overridden(facts: PropertyFacts) -> list[Finding]:
    valued: list[tuple[str, float, str | None, bool]] = []
    if facts.spec is not None:
        valued += [(g.event, float(g.value), facts.spec.currency, True)
                   for g in facts.spec.goals if g.value is not None]
    managed = _managed(facts)
    valued += [(ke.event, ke.settings.value, ke.settings.currency, False)
               for ke in facts.key_events
               if ke.settings.value is not None and ke.event not in managed]
    out = []
    for event, value, currency, in_spec in valued:
        st = facts.stats(event)
        # Whether GA folds default values into eventValue is not documented: a sum equal to
        # count x default is then the default itself, not values the event sends.
        if st.value <= 0 or math.isclose(st.value, st.count * value, rel_tol=1e-6):
            continue
        fix = ("Set `value: event` for this goal in the spec and run `ga-sync apply`, or stop "
               "sending `value` with the event." if in_spec else
               "Remove the key event's default value, or stop sending `value` with the event.")
        out.append(facts.finding(
            "value-overridden", event,
            f"`{event}` has a default value of {_money(value, currency)}, but the event sends "
            f"its own `value` ({st.value:,.2f} {facts.info.currency} over "
            f"{_plural(st.count, 'event')} in the window), so GA uses that and ignores the "
            "default.", fix))
    return out


@check("currency-mismatch")
def currency_mismatch(facts: PropertyFacts) -> list[Finding]:
    prop_cur = facts.info.currency.upper()
    out = []
    spec = facts.spec
    if spec is not None and spec.currency.upper() != prop_cur and any(
            g.value is not None for g in spec.goals):
        valued = sum(1 for g in spec.goals if g.value is not None)
        out.append(facts.finding(
            "currency-mismatch", None,
            f"The spec values {_plural(valued, 'goal')} in {spec.currency.upper()}, but the "
            f"property reports in {prop_cur}: GA converts the default values, so values in GA "
            "and in the spec disagree.",
            f"Set `currency: {prop_cur}` in the spec and restate the values, or change the "
            "property's currency in GA4 Admin → Property details."))
    managed = _managed(facts)
    for ke in facts.key_events:
        cur = (ke.settings.currency or "").upper()
        if ke.settings.value is None or not cur or cur == prop_cur or ke.event in managed:
            continue
        out.append(facts.finding(
            "currency-mismatch", ke.event,
            f"Key event `{ke.event}` has a default value in {cur} "
            f"({_money(ke.settings.value, cur)}), but the property reports in {prop_cur}.",
            f"Restate the default value in {prop_cur}."))
    return out


@check("pii-in-page-path")
def pii_in_page_path(facts: PropertyFacts) -> list[Finding]:
    if not facts.pii_rows:
        return []
    events = sum(h.events for h in facts.pii)
    shown = facts.pii[0].location or facts.pii[0].path
    more = "at least " if facts.pii_rows > len(facts.pii) else ""
    return [facts.finding(
        "pii-in-page-path", None,
        f"{_plural(facts.pii_rows, 'page')} in the window carried an e-mail address or other "
        f"personal data in its path or URL ({more}{events:,} events), "
        f"e.g. `{redact(shown)}`; Google's terms forbid sending it.",
        "Remove personal data from URLs (POST the form, or strip the parameters in the tag) "
        "and request deletion of the collected data in GA4 Admin → Data deletion requests.")]


@check("data-thresholded")
def data_thresholded(facts: PropertyFacts) -> list[Finding]:
    if not facts.thresholded:
        return []
    return [facts.finding(
        "data-thresholded", None,
        "GA applies thresholding to this property's reports, so rows with few users are "
        "withheld and small goals may look lower than they are or missing.",
        "Use the device-based reporting identity (GA4 Admin → Reporting identity) when "
        "comparing small goals, or read them over longer periods.")]


@check("short-data-retention")
def short_data_retention(facts: PropertyFacts) -> list[Finding]:
    if facts.retention != "TWO_MONTHS":
        return []
    return [facts.finding(
        "short-data-retention", None,
        "Event data retention is 2 months: explorations cannot look further back, so "
        "year-over-year comparisons are impossible.",
        "Set event data retention to 14 months in GA4 Admin → Data settings → Data retention "
        "(it applies from then on).")]


@check("no-data")
def no_data(facts: PropertyFacts) -> list[Finding]:
    if facts.total_sessions:
        return []
    return [facts.finding(
        "no-data", None,
        f"The property recorded no sessions from {facts.period.start} to {facts.period.end}: "
        "its tag is missing, broken or sends to another property, so no goal can be checked.",
        "Check that the site sends data to this property (GA4 Realtime report or Tag "
        "Assistant), then audit again.")]


# --------------------------------------------------------------------------- goal kinds


def _condition_text(c: Condition) -> str:
    text = f"{c.op.replace('_', ' ')} `{c.value}`"
    return text + (" (ignoring case)" if c.ignore_case else "")


def _pieces(location: str) -> list[str]:
    """The forms a page condition is usually written against: the full URL, the part after
    the host (path and query), and the path alone."""
    rest = location.split("://", 1)[-1]
    i = rest.find("/")
    after = rest[i:] if i >= 0 else "/"
    return [location, after, after.split("?", 1)[0].split("#", 1)[0]]


def closest_locations(condition: Condition, locations: Iterable[tuple[str, int]],
                      n: int = 3) -> list[str]:
    """The `n` page locations most like the condition's value (string similarity against the
    URL, its path with query and its path; case ignored; for a regex, its literal text), most
    similar first, so a typo in the condition shows."""
    from difflib import SequenceMatcher

    want = condition.value
    if condition.op == "regex":
        want = re.sub(r"\\(.)", r"\1", re.sub(r"[\^$*+?()\[\]{}|]|\.(?=[*+?])", "", want))
    want = want.casefold()
    scored = []
    for loc, views in locations:
        score = max(SequenceMatcher(None, want, p.casefold(), autojunk=False).ratio()
                    for p in _pieces(loc))
        scored.append((-score, -views, loc))
    return [loc for _, _, loc in sorted(scored)[:n]]


@check("page-goal-no-match")
def page_goal_no_match(facts: PropertyFacts) -> list[Finding]:
    if facts.spec is None or facts.total_sessions == 0:
        return []
    out = []
    for g in facts.spec.goals:
        if g.kind != "page" or facts.page_views.get(g.event, 0) or g.event not in facts.page_views:
            continue
        cond = g.origin.page  # type: ignore[union-attr]
        near = closest_locations(cond, facts.locations)
        seen = ("; the closest page locations seen: " + ", ".join(f"`{redact(x)}`" for x in near)
                if near else "; no page view was recorded at all")
        out.append(facts.finding(
            "page-goal-no-match", g.event,
            f"The page goal `{g.event}` counts page views whose location "
            f"{_condition_text(cond)}, and none of the "
            f"{_plural(facts.stats('page_view').count, 'page view')} from "
            f"{facts.period.start} to {facts.period.end} matched{seen}.",
            "Correct the `page:` condition in the spec (a URL matches on its full location, "
            "`https://host/path?query`; case counts unless `ignore_case: true`), then run "
            "`ga-sync apply`."))
    return out


def _made(facts: PropertyFacts) -> dict[str, list[tuple[str, str]]]:
    """Events made by rules or audience triggers -> [(resource kind, name)]."""
    out: dict[str, list[tuple[str, str]]] = {}
    m = facts.machinery
    if m is None:
        return out
    for r in m.rules:
        out.setdefault(r.event, []).append((EVENT_CREATE_RULE, r.name))
    for a in m.audiences:
        if a.event:
            out.setdefault(a.event, []).append((AUDIENCE, a.name))
    return out


@check("created-event-not-key-event")
def created_event_not_key_event(facts: PropertyFacts) -> list[Finding]:
    names = {k.event for k in facts.key_events}
    goals = _managed(facts)  # a spec goal's missing key event is `missing-key-event`
    out = []
    for event, made in sorted(_made(facts).items()):
        if event in names or event in goals:
            continue
        rules = sum(1 for kind, _ in made if kind == EVENT_CREATE_RULE)
        triggers = len(made) - rules
        by = " and ".join(x for x in (_plural(rules, "event create rule") if rules else "",
                                      _plural(triggers, "audience trigger") if triggers else "")
                          if x)
        st = facts.stats(event)
        seen = (f" ({_plural(st.count, 'event')} in the window)" if facts.total_sessions else "")
        out.append(facts.finding(
            "created-event-not-key-event", event,
            f"`{event}` is made by {by}{seen} but is not a key event, so GA counts none of it "
            "as a conversion.",
            f"If `{event}` is a goal, add it to the spec with its `page:`, `from:` or "
            "`session:` and run `ga-sync apply`; otherwise delete the rule or trigger in GA4 "
            "Admin."))
    return out


@check("missing-goal-machinery")
def missing_goal_machinery(facts: PropertyFacts) -> list[Finding]:
    m = facts.machinery
    if facts.spec is None or m is None:
        return []
    out = []
    for g in facts.spec.goals:
        if g.origin is None or facts.key_event(g.event) is None:
            continue
        if g.kind == "session":
            if any(a.event == g.event for a in m.audiences):
                continue
            what = "no audience logs it with an event trigger"
        else:
            web = {s.name for s in m.web_streams}
            if any(r.event == g.event and r.stream in web for r in m.rules):
                continue
            what = ("no event create rule makes it on a web data stream" if web else
                    "the property has no web data stream for an event create rule")
        out.append(facts.finding(
            "missing-goal-machinery", g.event,
            f"`{g.event}` is a key event and a `{g.kind}:` goal of the spec, but {what}, so "
            "GA records none of it.",
            "Run `ga-sync apply` to create it." if "no web" not in what else
            "Add a web data stream to the property (GA4 Admin → Data streams), then run "
            "`ga-sync apply`."))
    return out


@check("goal-machinery-mismatch")
def goal_machinery_mismatch(facts: PropertyFacts) -> list[Finding]:
    m = facts.machinery
    if facts.spec is None or m is None:
        return []
    out = []
    for g in facts.spec.goals:
        if g.origin is None:
            continue
        want = g.origin.to_json()
        if g.kind == "session":
            found = [(a.name, a.form) for a in m.audiences if a.event == g.event]
            kind, what = AUDIENCE, "audience"
        else:
            web = {s.name for s in m.web_streams}
            found = [(r.name, r.form) for r in m.rules if r.event == g.event and r.stream in web]
            kind, what = EVENT_CREATE_RULE, "event create rule"
        for name, form in found:
            if form == g.origin:
                continue
            have = form.to_json()
            out.append(facts.finding(
                "goal-machinery-mismatch", g.event,
                f"The {what} `{name}` that makes `{g.event}` says "
                f"{json.dumps(have, sort_keys=True)} in GA but the spec says "
                f"{json.dumps(want, sort_keys=True)}.",
                "Run `ga-sync plan` to see the change and `ga-sync apply` to make GA match the "
                "spec" + (" (GA archives the audience and a new one is made)."
                          if kind == AUDIENCE else "."),
                resource=(kind, name)))
    return out


def _has_regex(form: Any) -> bool:
    if isinstance(form, EventRule):
        return any(c.op == "regex" for c in form.where)
    where = form.to_json().get("where") or {}
    return any(isinstance(v, dict) and any("regex" in k or "regular_expression" in k
                                           for k in v) for v in where.values())


@check("regex-rule-on-app-stream")
def regex_rule_on_app_stream(facts: PropertyFacts) -> list[Finding]:
    m = facts.machinery
    if m is None:
        return []
    kinds = {s.name: s for s in m.streams}
    out = []
    for r in m.rules:
        stream = kinds.get(r.stream)
        if stream is None or stream.web or not _has_regex(r.form):
            continue
        out.append(facts.finding(
            "regex-rule-on-app-stream", r.event,
            f"The event create rule `{r.name}` making `{r.event}` has a regular-expression "
            f"condition on the {stream.kind.replace('_DATA_STREAM', '').lower()} data stream "
            f"`{stream.display_name or stream.name}`: GA allows regular expressions in event "
            "create rules on web streams only, so this rule does not behave as written.",
            "Rewrite the condition with equals, contains, starts with or ends with, or delete "
            "the rule in GA4 Admin → Data streams → Modify events."))
    return out


@check("goal-machinery-limit")
def goal_machinery_limit(facts: PropertyFacts) -> list[Finding]:
    m = facts.machinery
    if m is None:
        return []
    counts = (
        ("created events (event create rules)", len(m.rules), CREATED_EVENTS_PER_PROPERTY,
         " GA states the limit per property; whether it counts per data stream is not "
         "documented."),
        ("audiences", len(m.audiences), AUDIENCES_PER_PROPERTY, ""),
        ("audience triggers", sum(1 for a in m.audiences if a.event),
         AUDIENCE_TRIGGERS_PER_PROPERTY, ""),
    )
    out = []
    for what, used, limit, note in counts:
        if used < math.ceil(NEAR_LIMIT_SHARE * limit):
            continue
        out.append(facts.finding(
            "goal-machinery-limit", None,
            f"{used} of {limit} {what} are used ({_pct(used, limit)}); GA refuses more at "
            f"{limit}, leaving room for {max(limit - used, 0)}.{note}",
            f"Remove {what.split(' (')[0]} nobody reports on to keep room for new goals."))
    return out


@check("goal-machinery-unread")
def goal_machinery_unread(facts: PropertyFacts) -> list[Finding]:
    if facts.machinery_error is None:
        return []
    return [facts.finding(
        "goal-machinery-unread", None,
        f"The event create rules and audiences could not be read ({facts.machinery_error}), "
        "so the checks on them were skipped.",
        "Check that the credentials can read the property's data streams and audiences (the "
        "Admin API v1alpha), then audit again.")]


def run_checks(facts: PropertyFacts, checks: Iterable[str] | None = None) -> list[Finding]:
    """Every check (or the named ones) over `facts`, sorted by severity, check, subject."""
    out: list[Finding] = []
    for check_id in checks if checks is not None else RUNNERS:
        out.extend(RUNNERS[check_id](facts))
    return sorted(out, key=Finding.sort_key)
