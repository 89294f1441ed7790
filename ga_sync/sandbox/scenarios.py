"""Ready-made sandbox properties for demos and tests: a tidy one and one that fails every audit.

`seed_scenario(state, "messy")` creates a property configured by hand over the years, the way
an agency finds a new client's property, plus a second property of the same client that the
credentials cannot read; `scenario_spec_yaml("messy", ids)` is the client's goal spec. Auditing
the two against that spec fires every check of `ga_sync.audit` (except `no-data` and
`audit-failed`). `"clean"` is a property configured exactly as its spec says, with traffic for
every goal: it audits with no findings.

Key events are written straight into the state (as a property configured before GA tightened
its validation could hold them): the Admin API would refuse some of the messy ones, e.g. a name
longer than 40 characters.

The messy property also has goal machinery made by hand by the client's marketer,
`dana@client.example` (`HAND`), at past times, all in its change history: an event create rule
for the quote thank-you page that she later narrowed to a page that does not exist (drift: the
goal stopped counting three weeks ago), a correct brochure-download rule whose event nobody
marked as a key event, an engaged-visit audience at 3 page views where the spec says 5, an
audience without a trigger, and, on an Android app stream, an old regular-expression rule (GA
refuses those on app streams today; written straight into the state). The spec adds the
matching `page:`/`from:`/`session:` goals, a key event that depends on a rule nobody made, and a
`page:` goal with a typo that matches no page.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from datetime import timedelta

from google.analytics.admin_v1beta.types import KeyEvent

from ga_sync.sandbox import changes, machinery
from ga_sync.sandbox.state import PropertyRecord, SandboxState, now_utc
from ga_sync.sandbox.traffic import make_traffic

SCENARIOS = ("messy", "clean")
DEFAULT_IDS = {"messy": ("414141414", "414141415"), "clean": ("424242424",)}
CLIENTS = {"messy": "Messy Outdoor Co", "clean": "Tidy Trails"}

# (event, tier, spec value or None for `value: event`, counting)
_MESSY_GOALS: tuple[tuple[str, str, float | None, str], ...] = (
    ("purchase", "macro", None, "once_per_event"),
    ("generate_lead", "macro", 150.0, "once_per_session"),  # GA: once per event
    ("request_quote", "macro", 200.0, "once_per_event"),    # fires, but not a key event
    ("sign_up", "micro", 10.0, "once_per_event"),           # GA: default value 5
    ("book_demo", "micro", 40.0, "once_per_event"),         # key event; the site never sends it
    ("add_to_cart", "micro", 4.0, "once_per_event"),        # the event sends its own value
)
# Micro conversions somebody marked one by one; in the spec, they fill the key event quota.
_MESSY_FILLERS = ("contact_click", "newsletter_signup", "file_download", "video_complete",
                  "outbound_click", "view_pricing", "start_chat", "add_to_wishlist", "find_store",
                  "share_article", "begin_checkout", "add_payment_info", "add_shipping_info",
                  "view_cart", "select_promotion", "apply_coupon")
_MESSY_STRAYS = ("test_event_1", "page_view", "Sign_Up",
                 "newsletter_signup_confirmation_thank_you_page")
_MESSY_CURRENCY = "EUR"  # the spec's; the property reports in USD
#: Who configured the messy property's rules and audiences by hand.
HAND = "dana@client.example"
QUOTE_PAGE = "/quote/thank-you"
# Goal kinds of the messy spec: (event, tier, value, spec lines after `value:`)
_MESSY_KIND_GOALS: tuple[tuple[str, str, float, tuple[str, ...]], ...] = (
    ("quote_thank_you", "macro", 250.0, (f"    page: {{contains: {QUOTE_PAGE}}}",)),
    ("brochure_download", "micro", 3.0, ("    from: file_download",
                                         "    where: {file_extension: pdf, link_url: {contains: /brochure}}")),
    ("manual_download", "micro", 2.0, ("    from: file_download",
                                       "    where: {file_name: {starts_with: /manuals/}}")),
    ("engaged_visit", "micro", 0.4, ("    session: {min_page_views: 5}",)),
    ("newsletter_confirmed", "micro", 1.0, ("    page: {contains: /newsleter/confirm}",)),  # typo
)

_CLEAN_GOALS: tuple[tuple[str, str, float | None, str], ...] = (
    ("purchase", "macro", None, "once_per_event"),
    ("generate_lead", "macro", 150.0, "once_per_session"),
    ("sign_up", "micro", 12.5, "once_per_event"),
    ("newsletter_signup", "micro", 3.0, "once_per_session"),
    ("file_download", "micro", None, "once_per_session"),
)


def _mark(state: SandboxState, record: PropertyRecord, event: str, counting: str,
          value: float | None = None, currency: str | None = None) -> None:
    """Make `event` a custom key event of `record`, bypassing the Admin API's validation."""
    kid = state.new_key_event_id()
    method = (KeyEvent.CountingMethod.ONCE_PER_SESSION if counting == "once_per_session"
              else KeyEvent.CountingMethod.ONCE_PER_EVENT)
    ke = KeyEvent(name=f"properties/{record.id}/keyEvents/{kid}", event_name=event,
                  create_time=now_utc(), deletable=True, custom=True, counting_method=method)
    if value is not None:
        ke.default_value = KeyEvent.DefaultValue(numeric_value=float(value),
                                                 currency_code=currency or "USD")
    record.key_events[kid] = ke


def _ids(name: str, property_ids: Sequence[str | int] | None) -> list[str]:
    ids = [str(p).removeprefix("properties/") for p in (property_ids or DEFAULT_IDS[name])]
    if len(ids) != len(DEFAULT_IDS[name]):
        raise ValueError(f"scenario {name!r} needs {len(DEFAULT_IDS[name])} property ids, "
                         f"not {len(ids)}")
    return ids


def seed_scenario(state: SandboxState, name: str, *,
                  property_ids: Sequence[str | int] | None = None, seed: int = 7) -> list[str]:
    """Create scenario `name`'s properties in `state`; returns their ids, audited one first.

    Properties that already exist are left as they are (re-seeding a saved state is a no-op).
    """
    if name not in SCENARIOS:
        raise ValueError(f"unknown scenario {name!r}; choose one of {', '.join(SCENARIOS)}")
    ids = _ids(name, property_ids)
    with state.lock:
        if name == "messy":
            _seed_messy(state, ids, seed)
        else:
            _seed_clean(state, ids, seed)
    return ids


def _seed_messy(state: SandboxState, ids: list[str], seed: int) -> None:
    main, locked = ids
    if main not in state.properties:
        traffic_goals = [(e, t, None if e == "add_to_cart" else v) for e, t, v, _ in _MESSY_GOALS
                         if e != "book_demo"]
        traffic_goals += [(e, "micro", None) for e in _MESSY_FILLERS]
        traffic = make_traffic(traffic_goals, seed=seed, daily_sessions=900,
                               property_id=main, thresholding=True, pii_paths=True)
        traffic["pages"].append({"path": QUOTE_PAGE, "weight": 1.2})  # the quote form's end
        record = state.add_property(property_id=main, display_name=CLIENTS["messy"],
                                    currency_code="USD", event_data_retention="TWO_MONTHS",
                                    traffic=traffic)
        wrong = {"generate_lead": ("once_per_event", 150.0), "sign_up": ("once_per_event", 5.0)}
        for event, _, value, counting in _MESSY_GOALS:
            if event == "purchase":
                continue  # GA's default key event, created with the property
            if event == "request_quote":
                continue  # the goal nobody marked
            counting, value = wrong.get(event, (counting, value))
            _mark(state, record, event, counting, value, _MESSY_CURRENCY)
        for event in _MESSY_FILLERS + _MESSY_STRAYS:
            _mark(state, record, event, "once_per_event")
        _messy_machinery(state, record)
    if locked not in state.properties:
        state.add_property(property_id=locked, display_name=f"{CLIENTS['messy']} (CA)",
                           currency_code="USD",
                           traffic=make_traffic([("purchase", "macro", None)], seed=seed + 1,
                                                property_id=locked))
    state.deny(locked)


def _condition(field: str, kind: str, value: str) -> dict[str, str]:
    return {"field": field, "comparisonType": kind, "value": value}


def _pages_audience(event: str, pages: int, name: str) -> dict[str, Any]:
    count = {"dimensionOrMetricFilter": {"fieldName": "eventCount", "numericFilter": {
        "operation": "GREATER_THAN", "value": {"int64Value": str(pages - 1)}}}}
    leaf = {"eventFilter": {"eventName": "page_view", "eventParameterFilterExpression": {
        "andGroup": {"filterExpressions": [{"orGroup": {"filterExpressions": [count]}}]}}}}
    return {"displayName": name, "description": f"Sessions with {pages}+ page views",
            "membershipDurationDays": 30,
            "eventTrigger": {"eventName": event, "logCondition": "AUDIENCE_MEMBERSHIP_RENEWED"},
            "filterClauses": [{"clauseType": "INCLUDE", "simpleFilter": {
                "scope": "AUDIENCE_FILTER_SCOPE_WITHIN_SAME_SESSION",
                "filterExpression": {"andGroup": {"filterExpressions": [
                    {"orGroup": {"filterExpressions": [leaf]}}]}}}}]}


def _messy_machinery(state: SandboxState, record: PropertyRecord) -> None:
    """Rules and audiences `HAND` made over the last months (module docstring)."""
    now = now_utc().replace(microsecond=0)
    ago = lambda days, hours=0: now - timedelta(days=days, hours=hours)  # noqa: E731
    pid = record.id
    web, app = machinery.set_streams(state, pid, web=1, android=1)
    quote = machinery.create_rule(state, pid, web, {
        "destinationEvent": "quote_thank_you", "sourceCopyParameters": True, "eventConditions": [
            _condition("event_name", "EQUALS", "page_view"),
            _condition("page_location", "CONTAINS", QUOTE_PAGE)]}, actor=HAND, when=ago(200))
    _mark(state, record, "quote_thank_you", "once_per_event", 250.0, _MESSY_CURRENCY)
    _mark(state, record, "engaged_visit", "once_per_event", 0.4, _MESSY_CURRENCY)
    _mark(state, record, "manual_download", "once_per_event", 2.0, _MESSY_CURRENCY)
    machinery.create_rule(state, pid, web, {
        "destinationEvent": "brochure_download", "sourceCopyParameters": True, "eventConditions": [
            _condition("event_name", "EQUALS", "file_download"),
            _condition("file_extension", "EQUALS", "pdf"),
            _condition("link_url", "CONTAINS", "/brochure")]}, actor=HAND, when=ago(120, 3))
    engaged = machinery.create_audience(state, pid, _pages_audience(
        "engaged_visit", 3, "Engaged visitors"), actor=HAND, when=ago(90, 5))
    machinery.create_audience(state, pid, {
        "displayName": "Newsletter readers", "description": "Came from the newsletter",
        "membershipDurationDays": 90, "filterClauses": [{"clauseType": "INCLUDE", "simpleFilter": {
            "scope": "AUDIENCE_FILTER_SCOPE_ACROSS_ALL_SESSIONS", "filterExpression": {
                "dimensionOrMetricFilter": {"fieldName": "sessionMedium", "stringFilter": {
                    "matchType": "EXACT", "value": "email"}}}}}]}, actor=HAND, when=ago(60, 2))
    # The drift: a "tidier" URL that the site never used; the goal stops counting.
    machinery.update_rule(state, pid, web, quote["name"].rsplit("/", 1)[1], {"eventConditions": [
        _condition("event_name", "EQUALS", "page_view"),
        _condition("page_location", "CONTAINS", "/quote/thanks")]}, ["event_conditions"],
        actor=HAND, when=ago(21, 4))
    machinery.update_audience(state, pid, engaged["name"].rsplit("/", 1)[1],
                              {"description": "Visitors who read 3+ pages (lowered from 5)"},
                              ["description"], actor=HAND, when=ago(9, 1))
    # An app-stream rule with a regular expression, from before GA refused them there.
    rid = state.new_item_id("rules")
    rule = {"name": f"{record.name}/dataStreams/{app}/eventCreateRules/{rid}",
            "destinationEvent": "app_quote_thank_you", "sourceCopyParameters": True,
            "eventConditions": [_condition("event_name", "EQUALS", "screen_view"),
                                _condition("firebase_screen", "REGULAR_EXPRESSION", "^Quote.*Thanks$")]}
    record.rules[rid] = rule
    changes.record(state, record, changes.EVENT_CREATE_RULE, "CREATED", rule["name"], None, rule,
                   actor=HAND, when=ago(300))


def _seed_clean(state: SandboxState, ids: list[str], seed: int) -> None:
    (main,) = ids
    if main in state.properties:
        return
    traffic = make_traffic([(e, t, v) for e, t, v, _ in _CLEAN_GOALS], seed=seed,
                           daily_sessions=900, property_id=main)
    record = state.add_property(property_id=main, display_name=CLIENTS["clean"],
                                currency_code="USD", traffic=traffic)
    for event, _, value, counting in _CLEAN_GOALS:
        if event == "purchase":
            continue
        _mark(state, record, event, counting, value, "USD")


def _goal_yaml(event: str, tier: str, value: float | None, counting: str) -> list[str]:
    lines = [f"  - event: {event}", f"    tier: {tier}",
             f"    value: {'event' if value is None else f'{value:g}'}"]
    if counting != "once_per_event":
        lines.append(f"    counting: {counting}")
    return lines


def scenario_spec_yaml(name: str, property_ids: Sequence[str | int] | None = None) -> str:
    """The goal spec (YAML text) the scenario's client would hand over."""
    ids = _ids(name, property_ids)
    if name == "messy":
        goals: Sequence[tuple[str, str, Any, str]] = _MESSY_GOALS + tuple(
            (e, "micro", None, "once_per_event") for e in _MESSY_FILLERS)
        currency = _MESSY_CURRENCY
        intro = ("# The spec the client signed off. Their property was configured by hand and\n"
                 "# drifted from it: `ga-sync audit` on it shows what an agency inherits.\n")
    elif name == "clean":
        goals, currency = _CLEAN_GOALS, "USD"
        intro = "# A property configured exactly as this spec says.\n"
    else:
        raise ValueError(f"unknown scenario {name!r}; choose one of {', '.join(SCENARIOS)}")
    lines = [intro.rstrip("\n"), f"client: {CLIENTS[name]}",
             f"properties: [{', '.join(ids)}]", f"currency: {currency}", "goals:"]
    for goal in goals:
        lines += _goal_yaml(*goal)
    if name == "messy":
        for event, tier, value, origin in _MESSY_KIND_GOALS:
            lines += _goal_yaml(event, tier, value, "once_per_event") + list(origin)
    return "\n".join(lines) + "\n"


def messy_spec_yaml(property_ids: Sequence[str | int] | None = None) -> str:
    return scenario_spec_yaml("messy", property_ids)


def clean_spec_yaml(property_ids: Sequence[str | int] | None = None) -> str:
    return scenario_spec_yaml("clean", property_ids)
