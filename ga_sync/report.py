"""Report facts -> macro and micro conversion numbers, computed here from the spec.

GA4's own key-event counts only start once an event is marked and mix counting methods, so
ga-sync computes conversions, rates and value itself from raw event facts (`ga_sync.facts`),
whatever source they came from (`ga_sync.sources`; the Data API by default), so a goal
defined today can be reported over last quarter too. Money is never mixed: values in another
currency than the spec's are converted with a given rate or kept out of every total.

Goals by kind (`Goal.kind`): an `event` goal counts its event; a `page` goal counts the page
views whose page location matches (the source does that, see `ga_sync.facts`), so it too is
reported before GA's event create rule existed; `from` and `session` goals count their own
event, which GA records only from the rule's or audience's creation on: a period starting
earlier gets a `before-creation` warning, and `session` goals always an `approximate` one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any, Callable

from ga_sync.errors import GaSyncError
from ga_sync.facts import KEY_EVENTS, PeriodFacts, ReportFacts, check
from ga_sync.garules import PROCESSING_DAYS
from ga_sync.model import (AUDIENCE, EVENT_CREATE_RULE, MACRO, MICRO, ONCE_PER_SESSION, USERS,
                           Goal, KeyEventState, Spec)
from ga_sync.periods import Period, still_processing, today_in
from ga_sync.sources import Source, default_source

# --------------------------------------------------------------------------- numbers


@dataclass(frozen=True)
class Warning_:
    code: str
    message: str
    subject: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message}


@dataclass
class GoalResult:
    event: str
    tier: str
    conversions: float
    rate: float
    value: float
    counting: str
    change: float | None = None  # relative change of conversions against the previous period
    #: The currency `value` is in: None or the report's currency when it counts in the totals;
    #: the property's currency for a `value: event` goal GA reports in another currency and no
    #: --fx rate converts (then `in_total` is False: its value is in no total).
    currency: str | None = None
    in_total: bool = True
    fx_rate: float | None = None  # the rate `value` was converted with, from the property's currency
    #: How the goal's event comes about (`Goal.kind`): event, page, from or session.
    kind: str = "event"

    def to_json(self, with_change: bool, currency: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"event": self.event, "tier": self.tier,
                               "conversions": _num(self.conversions), "rate": self.rate,
                               "value": self.value}
        if with_change:
            out["change"] = self.change
        out["currency"] = self.currency or currency
        out["in_total"] = self.in_total
        if self.fx_rate is not None:
            out["fx_rate"] = self.fx_rate
        if self.kind != "event":  # added field: absent for goals whose event the site sends
            out["kind"] = self.kind
        return out


@dataclass
class TierResult:
    conversions: float
    rate: float
    session_rate: float
    value: float

    def to_json(self) -> dict[str, Any]:
        return {"conversions": _num(self.conversions), "rate": self.rate,
                "session_rate": self.session_rate, "value": self.value}


@dataclass
class ReportResult:
    property: str
    client: str
    period: Period
    currency: str  # the spec's: goal values are in it, and so are every total and tier value
    rate_basis: str
    sessions: int
    users: int
    goals: list[GoalResult]
    macro: TierResult
    micro: TierResult
    total_value: float
    value_per_session: float
    previous: "ReportResult | None" = None
    warnings: list[Warning_] = field(default_factory=list)
    daily: Any = None  # DataFrame: date, event, conversions, value, sessions, users, currency
    quota: dict[str, Any] | None = None
    property_currency: str | None = None  # GA's: event values (`value: event`) come in it
    #: Goal changes to mark on the HTML report's rate charts (`goal_marks`); not in the JSON.
    marks: list["GoalMark"] = field(default_factory=list)
    #: Where the numbers come from: "data-api", "export" (files on DuckDB) or "bigquery".
    source: str = "data-api"
    #: Journeys (`ga_sync.journeys`): funnel step users, micro goals' assists of macro
    #: conversions, identified visitors. None: not computed (shown as status "unavailable").
    funnels: list[Any] = field(default_factory=list)
    assists: Any = None
    identified: Any = None

    def to_json(self) -> dict[str, Any]:
        compare = self.previous is not None
        return {
            "property": self.property, "client": self.client,
            "start": self.period.start.isoformat(), "end": self.period.end.isoformat(),
            "currency": self.currency, "rate_basis": self.rate_basis,
            "sessions": self.sessions, "users": self.users,
            "goals": [g.to_json(compare, self.currency) for g in self.goals],
            "macro": self.macro.to_json(), "micro": self.micro.to_json(),
            "total_value": self.total_value, "value_per_session": self.value_per_session,
            "previous": self.previous.to_json() if self.previous else None,
            "warnings": [w.to_json() for w in self.warnings],
            "property_currency": self.property_currency or self.currency,
            "source": self.source,
            "funnels": [f.to_json() for f in self.funnels],
            "assists": (self.assists.to_json() if self.assists is not None else
                        {"status": "unavailable", "macro_users": None,
                         "average_macro_value": None, "goals": []}),
            "identified": (self.identified.to_json() if self.identified is not None else
                           {"status": "unavailable", "users": None, "share": None,
                            "macro_rate": None, "anonymous_macro_rate": None, "goals": []}),
        }


def _num(x: float) -> float | int:
    return int(x) if float(x).is_integer() else x


def _ratio(a: float, b: float) -> float:
    return a / b if b else 0.0


#: Exchange rates the user gives (`--fx USD:EUR=0.92`): (from, to) -> how many `to` one `from` is.
FxRates = Mapping[tuple[str, str], float]


def parse_fx(values: Sequence[str], *, what: str = "--fx") -> dict[tuple[str, str], float]:
    """`["USD:EUR=0.92"]` -> {("USD", "EUR"): 0.92}: 1 USD is 0.92 EUR. ISO 4217 codes, rate > 0."""
    from ga_sync.currencies import CURRENCY_CODES
    out: dict[tuple[str, str], float] = {}
    for text in values:
        pair, sep, number = text.partition("=")
        source, colon, target = pair.partition(":")
        source, target = source.strip().upper(), target.strip().upper()
        try:
            rate = float(number)
        except ValueError:
            rate = math.nan
        if not sep or not colon or not source or not target:
            raise GaSyncError(f"{what} {text!r} is not a rate: write FROM:TO=RATE, e.g. "
                              f"USD:EUR=0.92 for 1 USD = 0.92 EUR")
        for code in (source, target):
            if code not in CURRENCY_CODES:
                raise GaSyncError(f"{what} {text!r}: {code!r} is not an ISO 4217 currency code "
                                  "(e.g. USD, EUR, GBP)")
        if not math.isfinite(rate) or rate <= 0:
            raise GaSyncError(f"{what} {text!r}: the rate must be a number above 0, e.g. "
                              f"{source}:{target}=0.92")
        if source == target and rate != 1:
            raise GaSyncError(f"{what} {text!r}: 1 {source} is 1 {source}")
        if out.get((source, target), rate) != rate:
            raise GaSyncError(f"{what} gives two rates for {source}:{target}; give one")
        out[(source, target)] = rate
    return out


def fx_rate(fx: FxRates | None, source: str, target: str) -> float | None:
    """How many `target` one `source` is, from `fx` directly or inverted; None if not given."""
    if source == target:
        return 1.0
    if not fx:
        return None
    if (source, target) in fx:
        return float(fx[(source, target)])
    if (target, source) in fx:
        return 1.0 / float(fx[(target, source)])
    return None




def compute(spec: Spec, facts: ReportFacts, index: int = 0, *, currency: str | None = None,
            fx: FxRates | None = None) -> ReportResult:
    """The contract's numbers for one property and its `index`-th period, from its facts.

    Money is never mixed: the report's currency is the spec's (goal values are written in
    it); GA reports event values (`value: event` goals) in the property's currency, `currency`
    here or else the one the facts' source gives. When the two differ, those values are
    converted with a rate from `fx` ({("USD", "EUR"): 0.92} for 1 USD = 0.92 EUR), or, with no
    rate, kept in the property's currency and out of every total.
    """
    pf = facts.periods[index]
    sessions, users = pf.sessions, pf.users
    basis = users if spec.rate_basis == USERS else sessions
    own = spec.currency
    ga_currency = str(currency or facts.currency or own).upper()
    rate = fx_rate(fx, ga_currency, own)

    ev = pf.events
    goals: list[GoalResult] = []
    tiers: dict[str, list[float]] = {MACRO: [0.0, 0.0], MICRO: [0.0, 0.0]}
    for g in spec.goals:
        row = ev.loc[g.event] if g.event in ev.index else None
        if row is None:
            conv, val = 0.0, 0.0
        else:
            conv = float(row["sessions"] if g.counting == ONCE_PER_SESSION else row["count"])
            val = float(row["value"]) if g.value is None else conv * float(g.value)
        result = GoalResult(g.event, g.tier, conv, _ratio(conv, basis), val, g.counting,
                            currency=own, kind=g.kind)
        if g.value is None and ga_currency != own:
            if rate is None:
                result.currency, result.in_total = ga_currency, False
            else:
                result.value, result.fx_rate = val * rate, rate
        goals.append(result)
        tiers[g.tier][0] += conv
        if result.in_total:
            tiers[g.tier][1] += result.value

    def tier(name: str) -> TierResult:
        conv, val = tiers[name]
        with_any = pf.tier_sessions.get(name, 0.0)
        return TierResult(conv, _ratio(conv, basis), _ratio(with_any, sessions), val)

    macro, micro = tier(MACRO), tier(MICRO)
    total_value = macro.value + micro.value
    return ReportResult(
        property=facts.property, client=spec.client, period=pf.period, currency=own,
        rate_basis=spec.rate_basis, sessions=sessions, users=users, goals=goals,
        macro=macro, micro=micro, total_value=total_value,
        value_per_session=_ratio(total_value, sessions),
        daily=_daily(spec, pf, ga_currency=ga_currency, rate=rate),
        quota=facts.quota, property_currency=ga_currency)


def _daily(spec: Spec, pf: PeriodFacts, *, ga_currency: str | None = None,
           rate: float | None = 1.0) -> Any:
    """Daily rows for the history store: date, event, conversions, value, sessions, users,
    currency.

    Every day with traffic also gets a row with event "" (no conversions), so the store
    learns the day's sessions and users even when no goal event fired that day. Event values
    (`value: event`) in another currency than the spec's are converted with `rate`, or with no
    rate kept in `ga_currency`, which the row's `currency` then says.
    """
    import pandas as pd
    cols = ["date", "event", "conversions", "value", "sessions", "users", "currency"]
    own = spec.currency
    ga_currency = ga_currency or own
    if pf.days.empty:
        return pd.DataFrame(columns=cols)
    day = pf.days.set_index("date")[["sessions", "users"]]
    goals = {g.event: g for g in spec.goals}
    frames = [pd.DataFrame({"date": day.index, "event": "", "conversions": 0.0, "value": 0.0,
                            "currency": own})]
    daily = pf.daily
    if not daily.empty:
        daily = daily[daily["event"].isin(list(goals))]
        counting = daily["event"].map(lambda e: goals[e].counting)
        unit = daily["event"].map(lambda e: goals[e].value).astype(float)
        conversions = daily["sessions"].where(counting == ONCE_PER_SESSION, daily["count"])
        event_value = daily["value"].astype(float)
        currency = pd.Series(own, index=daily.index, dtype=object)
        if ga_currency != own:
            if rate is None:
                currency = currency.where(unit.notna(), ga_currency)
            else:
                event_value = event_value * rate
        value = event_value.where(unit.isna(), conversions * unit)
        frames.append(pd.DataFrame({"date": daily["date"], "event": daily["event"],
                                    "conversions": conversions.astype(float),
                                    "value": value.astype(float), "currency": currency}))
    out = pd.concat(frames, ignore_index=True)
    out["sessions"] = out["date"].map(day["sessions"]).fillna(0).astype(int)
    out["users"] = out["date"].map(day["users"]).fillna(0).astype(int)
    return out[cols]


def _since(create_time: str | None) -> str:
    return (create_time or "")[:10] or "an unknown date"


def _key_event_warning(g: Any, conversions: float, ga_count: float,
                       live: KeyEventState | None, known: bool) -> Warning_ | None:
    """Why GA's own key-event count for a goal differs from ga-sync's, when it does.

    `live` is the goal's key event as GA has it now (`known`: the caller read them).
    """
    if ga_count == 0:
        if known and live is not None:
            return Warning_("key-event-mismatch", f"'{g.event}' is a key event only since "
                            f"{_since(live.create_time)}: GA's own key-event reports count none "
                            f"of the {conversions:g} conversions in this period (GA counts from "
                            "the time an event is marked; ga-sync counts the whole period).",
                            g.event)
        return Warning_("not-key-event", f"GA counts no key events for '{g.event}': it is not "
                        f"marked as a key event{'' if known else ' (yet)'}. Run 'ga-sync apply'.",
                        g.event)
    if math.isclose(ga_count, conversions, rel_tol=1e-6):
        return None
    if live is not None and live.settings.counting != g.counting:
        why = (f"the key event counts {live.settings.counting.replace('_', ' ')} in GA, the "
               f"spec says {g.counting.replace('_', ' ')}; run 'ga-sync apply'")
    elif live is not None:
        why = f"it is a key event only since {_since(live.create_time)}"
    else:
        why = "the key event counts differently or was marked during the period"
    return Warning_("key-event-mismatch", f"GA counts {ga_count:g} key events for '{g.event}' "
                    f"but the spec's counting ({g.counting}) gives {conversions:g}: {why}.",
                    g.event)


def _currency_warnings(result: ReportResult) -> list[Warning_]:
    """Say when event values came in the property's currency, not the spec's (never mixed)."""
    own, theirs = result.currency, result.property_currency or result.currency
    out: list[Warning_] = []
    kept = [g for g in result.goals if not g.in_total]
    converted = [g for g in result.goals if g.fx_rate is not None]
    if kept:
        names = ", ".join(f"'{g.event}' ({g.value:,.2f} {g.currency})" for g in kept)
        out.append(Warning_("currency-mismatch", f"GA reports event values in the property's "
                            f"currency, {theirs}, but the spec's currency is {own}: the value of "
                            f"{names} is shown in {theirs} and left out of every total. Give the "
                            f"rate to convert it, e.g. --fx {theirs}:{own}=RATE "
                            f"(1 {theirs} = RATE {own})."))
    if converted:
        rate = converted[0].fx_rate
        names = ", ".join(f"'{g.event}'" for g in converted)
        out.append(Warning_("converted", f"The event values of {names} were converted from "
                            f"the property's currency, {theirs}, to the spec's, {own}, at "
                            f"1 {theirs} = {rate:g} {own} (--fx)."))
    return out




@dataclass(frozen=True)
class Origin:
    """When GA began making a `from:` or `session:` goal's event: its rule or audience was
    created at `since` (RFC 3339), as `basis` tells ("change history": the Admin API's record of
    the rule's or audience's creation; "key event": the goal's key event's createTime, which
    ga-sync makes right after the rule or audience)."""

    event: str
    resource: str  # EVENT_CREATE_RULE or AUDIENCE
    since: str
    basis: str = "key event"

    def day(self, time_zone: str | None = None) -> date | None:
        """The day of `since` in `time_zone` (the property's; UTC when None or unknown)."""
        from datetime import datetime
        try:
            when = datetime.fromisoformat(self.since.replace("Z", "+00:00"))
        except ValueError:
            try:
                return date.fromisoformat(self.since[:10])
            except ValueError:
                return None
        if when.tzinfo is not None and time_zone:
            try:
                from zoneinfo import ZoneInfo
                when = when.astimezone(ZoneInfo(time_zone))
            except (KeyError, ValueError):
                pass
        return when.date()


def _what_makes(g: Goal) -> str:
    return "audience trigger" if g.kind == "session" else "event create rule"


def _kind_warnings(g: Goal, r: GoalResult, period_start: date,
                   origins: dict[str, Origin] | None,
                   time_zone: str | None = None, *, raw: bool = False) -> list[Warning_]:
    """The warnings a goal gets for its kind (page, from, session), whatever it counted.

    `raw`: the source counted the goal from its definition on raw events (the export), not
    from the events GA created, so nothing is approximate and no day predates the rule."""
    out: list[Warning_] = []
    if raw:
        return out
    if g.kind == "page" and g.value is None:
        out.append(Warning_("page-event-value", f"'{g.event}' takes its value from the event "
                            "(value: event), but it is counted from page views, which carry no "
                            "value unless the site sends one with them; its value is the page "
                            "views' own (here "
                            f"{r.value:,.2f}). Give the goal a value in the spec.", g.event))
    if g.kind in ("from", "session"):
        origin = (origins or {}).get(g.event)
        day = origin.day(time_zone) if origin is not None else None
        if day is not None and period_start < day:
            basis = ("the change history" if origin.basis == "change history" else
                     "its key event's creation (the change history could not be read)")
            out.append(Warning_("before-creation", f"GA makes '{g.event}' only since "
                                f"{day.isoformat()}, when its {_what_makes(g)} was created "
                                f"(from {basis}): the period starts {period_start.isoformat()}, "
                                "so the days before count none of its conversions.", g.event))
    if g.kind == "session":
        out.append(Warning_("approximate", f"'{g.event}' is logged by an audience trigger, "
                            "once when a user joins the audience (at most once a day when "
                            "membership renews), not once per qualifying session: its count "
                            "is approximate. Exact counts per session need the BigQuery "
                            "export.", g.event))
    return out


#: Sources that count from raw events (the GA4 BigQuery export), not from GA's aggregates.
RAW_SOURCES = ("export", "bigquery")


def _warnings(result: ReportResult, facts: ReportFacts, today: date, spec: Spec, index: int,
              marked: dict[str, KeyEventState] | None = None,
              origins: dict[str, Origin] | None = None) -> list[Warning_]:
    out: list[Warning_] = [Warning_(n.code, n.message) for n in facts.notes]
    if facts.thresholded:
        out.append(Warning_("thresholded", "GA applied thresholding: small counts may be "
                            "withheld, so conversions can be understated."))
    if facts.other_row:
        out.append(Warning_("other-row", "Some rows were folded into '(other)' by GA, so some "
                            "goal events may be undercounted."))
    if facts.sampled:
        out.append(Warning_("sampled", "GA sampled this data: the numbers are estimates."))
    out.extend(_currency_warnings(result))
    if still_processing(result.period, today):
        out.append(Warning_("incomplete", f"The period ends {result.period.end.isoformat()}, "
                            f"within the last {PROCESSING_DAYS} days, which GA is still "
                            "processing: numbers will grow."))
    if result.sessions == 0:
        out.append(Warning_("no-data", "The property returned no data for this period."))
        return out
    pf = facts.periods[index]
    ev = pf.events
    raw = facts.source in RAW_SOURCES
    for g, r in zip(spec.goals, result.goals):
        out.extend(_kind_warnings(g, r, result.period.start, origins, facts.time_zone,
                                  raw=raw))
        if r.conversions == 0:
            out.append(_never_occurred(g))
            continue
        if not pf.has_key_events or g.event not in ev.index:
            continue  # the source has no key-event counts (or none for this event)
        ga_count = float(ev.loc[g.event][KEY_EVENTS])
        if g.kind == "page" and ga_count > 0:
            continue  # page views before the rule existed count here, never in GA's key events
        warning = _key_event_warning(g, r.conversions, ga_count,
                                     (marked or {}).get(g.event), marked is not None)
        if warning:
            out.append(warning)
    return out


def _never_occurred(g: Goal) -> Warning_:
    if g.kind == "page":
        cond = g.origin.page  # type: ignore[union-attr]
        how = " ".join(f"{k} {v!r}" if k != "ignore_case" else "(ignoring case)"
                       for k, v in cond.to_json().items())
        return Warning_("never-occurred", f"No page view of '{g.event}' in the period: no page "
                        f"location matched {how}. Check the condition ('ga-sync audit' lists "
                        "the closest page locations seen).", g.event)
    if g.kind in ("from", "session"):
        made = ("from " + g.origin.source if g.kind == "from"  # type: ignore[union-attr]
                else "by its audience")
        return Warning_("never-occurred", f"Goal event '{g.event}' ({made}) did not occur in "
                        f"the period: check that its {_what_makes(g)} exists ('ga-sync plan') "
                        "and that its conditions can be met.", g.event)
    return Warning_("never-occurred", f"Goal event '{g.event}' did not occur in the "
                    "period: check the tag fires.", g.event)


def _source_label(name: str) -> str:
    """The report JSON's `source`: "data-api", "export" or "bigquery"."""
    return "data-api" if name in ("", "data_api", "data-api") else name


def report_property(conn: Any, spec: Spec, property: str, period: Period, *,
                    compare: bool = False, today: date | None = None,
                    time_zone: str | None = None,
                    key_events: list[KeyEventState] | None = None,
                    fx: FxRates | None = None, source: Source | None = None,
                    origins: Mapping[str, Origin] | None = None,
                    currency: str | None = None) -> ReportResult:
    """Pull and compute one property's report (and the previous period's, with `compare`).

    `source` gives the facts (default: the Data API, one `batchRunReports`, one more per five
    `page:` goals; or an export source, `ga_sync.export.parse_source`). `currency` is the
    property's, for sources that do not say it (the export). `fx` converts event values from the property's currency to the spec's
    (see `compute`).

    `key_events`, the property's key events as the Admin API lists them, make the warnings
    about GA's own key-event counts say why they differ (marked when, counting how).
    `origins` say since when GA makes each `from:`/`session:` goal's event; when not given
    they are read (`origin_times`: the change history, else the key events' creation).
    """
    periods = [period, period.previous()] if compare else [period]
    facts = (source or default_source()).pull(conn, spec, property, periods)
    check(facts, periods, spec)
    if facts.currency is None and currency:
        facts = replace(facts, currency=currency)  # the export says nothing of its currency
    if facts.time_zone is None and time_zone:
        facts = replace(facts, time_zone=time_zone)
    today = today or today_in(time_zone or facts.time_zone or "UTC", property=property)
    marked = {k.event: k for k in key_events} if key_events is not None else None
    if origins is None:
        origins = ({} if facts.source in RAW_SOURCES else
                   origin_times(conn, property, spec, key_events))
    results = []
    for i in range(len(periods)):
        r = compute(spec, facts, i, fx=fx)
        r.source = _source_label(facts.source)
        r.warnings = _warnings(r, facts, today, spec, i, marked, dict(origins))
        results.append(r)
    _add_journeys(results, source or default_source(), conn, spec, property, periods)
    current = results[0]
    if compare:
        prev = results[1]
        for g, pg in zip(current.goals, prev.goals):
            g.change = (g.conversions - pg.conversions) / pg.conversions if pg.conversions else None
        current = replace(current, previous=prev)
    return current


def _add_journeys(results: list[ReportResult], source: Source, conn: Any, spec: Spec,
                  property: str, periods: Sequence[Period]) -> None:
    """Funnels, assists and identified visitors (`ga_sync.journeys`), a small step after the
    facts pull: its failure is a warning on the report (`journeys-failed`), never a failed
    property."""
    from ga_sync.journeys import pull

    try:
        journeys, notes = pull(source, conn, spec, property, periods,
                               users=[r.users for r in results])
    except GaSyncError as e:
        from ga_sync.redact import excerpt
        results[0].warnings.append(Warning_(
            "journeys-failed", "Funnels, assists and identified visitors could not be "
            f"computed: {excerpt(str(e), 300)}"))
        return
    for r, j in zip(results, journeys):
        r.funnels, r.assists, r.identified = j.funnels, j.assists, j.identified
    results[0].warnings.extend(Warning_(code, message) for code, message in notes)


def created_times(conn: Any, property: str, wanted: Mapping[str, str]) -> dict[str, str]:
    """When the change history says each goal's rule or audience was created.

    `wanted` maps a goal's event to the resource that makes it (EVENT_CREATE_RULE or
    AUDIENCE). The property's rules and audiences are read (`machinery.read_machinery`) to
    learn their server names, then the account's change history is searched once
    (`changelog.search`); an event's time is the earliest CREATED entry of any rule or
    audience making it now (GA makes the event from the first one on). Events the history
    does not cover (older than its two years, or no such resource) are left out. Raises
    GaSyncError when something cannot be read.
    """
    from ga_sync.admin import read_property
    from ga_sync.changelog import canonical, format_time, search
    from ga_sync.machinery import read_machinery

    account = read_property(conn, property).account
    if not account:
        return {}
    machinery = read_machinery(conn, property)
    names: dict[str, str] = {}
    for r in machinery.rules:
        if wanted.get(r.event) == EVENT_CREATE_RULE:
            names[canonical(r.name)] = r.event
    for a in machinery.audiences:
        if wanted.get(a.event) == AUDIENCE:
            names[canonical(a.name)] = a.event
    if not names:
        return {}
    first: dict[str, Any] = {}
    for entry in search(conn, account):
        event = names.get(entry.resource)
        if event is not None and entry.action == "CREATED" and (
                event not in first or entry.time < first[event]):
            first[event] = entry.time
    return {e: format_time(t) for e, t in first.items()}


def origin_times(conn: Any, property: str, spec: Spec,
                 key_events: Sequence[KeyEventState] | None = None,
                 created: Callable[..., Mapping[str, str]] | None = None) -> dict[str, Origin]:
    """Since when GA makes each `from:`/`session:` goal's event, best effort.

    First the change history: when its rule or audience was created (`created`, default
    `created_times`: a few Admin API reads and one change-history search per property). For a
    goal the history does not cover, or when it cannot be read, its key event's createTime
    stands in: ga-sync creates the key event right after its rule or audience, so the two are
    minutes apart; for machinery made by hand they may be further apart. A goal with neither
    is left out (no warning can be given).
    """
    wanted = {g.event: g for g in spec.goals if g.kind in ("from", "session")}
    if not wanted:
        return {}
    resources = {e: (AUDIENCE if g.kind == "session" else EVENT_CREATE_RULE)
                 for e, g in wanted.items()}
    found: Mapping[str, str] = {}
    if conn is not None or created is not None:
        try:
            found = (created or created_times)(conn, property, resources)
        except GaSyncError:
            found = {}  # the history is a refinement: the key events still stand in
    out: dict[str, Origin] = {}
    for event in wanted:
        if found.get(event):
            out[event] = Origin(event, resources[event], str(found[event]), "change history")
            continue
        ke = next((k for k in key_events or () if k.event == event), None)
        if ke is not None and ke.create_time:
            out[event] = Origin(event, resources[event], ke.create_time, "key event")
    return out


# --------------------------------------------------------------------------- goal changes


@dataclass(frozen=True)
class GoalMark:
    """A day goals changed (or anything else a GA annotation says), to mark on a rate chart:
    `source` is "annotation" (a GA reporting data annotation, ga-sync's own from `apply
    --annotate` or anyone's) or "journal" (ga-sync's apply journal, when the annotations could
    not be read)."""

    day: date
    title: str
    source: str = "annotation"
    end: date | None = None  # an annotation's date range ends here (None: one day)


def _journal_marks(property: str, journal: Any) -> list[GoalMark]:
    """One mark per UTC day the apply journal holds applied or reconciled changes of
    `property`, titled like `apply --annotate`'s annotation ("ga-sync: 2 goals created")."""
    import json
    from pathlib import Path

    from ga_sync.changelog import annotation_text
    from ga_sync.model import KEY_EVENT, Change

    if journal is None:
        return []
    try:
        text = Path(journal).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    days: dict[date, list[Change]] = {}
    for line in text.splitlines():
        try:
            item = json.loads(line)
            if item.get("outcome") not in ("applied", "reconciled") or \
                    item.get("property") != property:
                continue
            day = date.fromisoformat(str(item["time"])[:10])
            days.setdefault(day, []).append(Change(str(item["action"]), str(item["event"]),
                                                   None, None,
                                                   resource=str(item.get("resource")
                                                                or KEY_EVENT)))
        except (ValueError, KeyError, TypeError, AttributeError):
            continue
    return [GoalMark(day, annotation_text(changes)[0], "journal")
            for day, changes in sorted(days.items())]


def goal_marks(conn: Any, property: str, *, journal: Any = None,
               annotations: Callable[[Any, str], Sequence[Any]] | None = None
               ) -> tuple[list[GoalMark], str | None]:
    """The days to mark on a property's rate charts, and why they come from the journal
    (None when from GA).

    GA's reporting data annotations first (`changelog.list_annotations`, one paged call):
    ga-sync's own (`apply --annotate`) and anyone else's, since an annotation is there to
    explain the data. When they cannot be read, the apply journal's applied changes of the
    property, one mark per day (UTC). Never raises a GaSyncError: no marks is not a failure.
    """
    if annotations is None:
        from ga_sync.changelog import list_annotations as annotations
    try:
        found = annotations(conn, property)
    except GaSyncError as err:
        from ga_sync.redact import excerpt
        return _journal_marks(property, journal), excerpt(str(err), 200)
    return [GoalMark(a.start, a.title, "annotation", a.end if a.end != a.start else None)
            for a in found if a.start is not None], None
