"""The checks: each a small pure function from `PropertyFacts` to findings, registered by id.

Thresholds (see `findings.py`): `key-event-limit` at >= 80% of the property's limit (24 of 30,
40 of 50); `pageview-like-key-event` above 50% of sessions, or on an event GA collects on
ordinary browsing; `duplicate-event-name` compares names lowercased without `_`, `-` and
spaces. GA's own default key events (neither custom nor deletable, e.g. `purchase`) are not
reported as unmanaged or never fired unless the spec names them: nobody can remove them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable

from ga_sync.audit.facts import PII_PARAMS, PropertyFacts
from ga_sync.audit.findings import CHECKS, LIMIT_SHARE, PAGEVIEW_SHARE, Finding
from ga_sync.model import ONCE_PER_SESSION, KeyEventSettings, KeyEventState
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
            f"Run `ga-sync apply` to set the counting method to {_counting(g.counting)}."))
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
            f"{_money(have.value, have.currency)} in GA but {wanted} in the spec.", fix))
    return out


@check("never-fired")
def never_fired(facts: PropertyFacts) -> list[Finding]:
    if facts.total_sessions == 0:
        return []  # no-data says it once
    out = []
    for event, what in _watched(facts):
        if facts.stats(event).count:
            continue
        marked = facts.key_event(event) is not None
        kind = f"{what} (and key event)" if what == "goal" and marked else what
        fix = (f"Check that the site sends `{event}` (GA4 Realtime or DebugView) with exactly "
               f"this spelling, or remove the {what} if the action no longer exists.")
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


def run_checks(facts: PropertyFacts, checks: Iterable[str] | None = None) -> list[Finding]:
    """Every check (or the named ones) over `facts`, sorted by severity, check, subject."""
    out: list[Finding] = []
    for check_id in checks if checks is not None else RUNNERS:
        out.extend(RUNNERS[check_id](facts))
    return sorted(out, key=Finding.sort_key)
