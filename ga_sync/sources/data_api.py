"""The GA4 Data API as a source of report facts: one `batchRunReports` per property and pull.

For one property and one period (plus the previous one, as a second date range) every fact
comes from `batchRunReports` calls of at most five requests each, sent in this order:

  totals   date                     sessions, totalUsers (+ TOTAL aggregation = period totals)
  events   eventName                eventCount, sessions, eventValue, keyEvents
  daily    date, eventName          eventCount, sessions, eventValue      (for the history store)
  macro    (filter: macro goals)    sessions  -> sessions with at least one macro conversion
  micro    (filter: micro goals)    sessions  -> sessions with at least one micro conversion
  page:E   date (filter: E's pages) eventCount, sessions, eventValue (+ TOTAL aggregation)

A spec without `page:` goals needs one call. Each `page:` goal adds one request (`page:E`):
its conversions are the `page_view` events whose `pageLocation` matches the goal's condition,
counted over the whole period, including days before GA's event create rule existed (GA makes
the goal's own event only from the rule's creation on, and never for history). One request per
page goal, not one over all of them by `pageLocation`: a session that saw two matching pages
would count twice in a `sessions` summed over page rows. The macro and micro session counts
take page goals in as an `orGroup` of their page filters. Six to ten requests are two calls,
and so on.

GA4's own key-event counts (`keyEvents`) only start once an event is marked and mix counting
methods, so they are kept only to explain differences, never to compute a number.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ga_sync import data
from ga_sync.clients import Connection
from ga_sync.data import NamedRequest, ParsedReport
from ga_sync.facts import KEY_EVENTS, PeriodFacts, ReportFacts
from ga_sync.garules import DATA_BATCH_REQUESTS_MAX
from ga_sync.model import (CONTAINS, ENDS_WITH, EQUALS, MACRO, MICRO, PAGE_EVENT, REGEX,
                           STARTS_WITH, TIERS, Condition, Goal, Spec)
from ga_sync.periods import Period

name = "data_api"

#: The Data API's string match type for each condition operator. GA's event create rules
#: match a regular expression anywhere in the value (RE2 partial match), so `regex` is
#: PARTIAL_REGEXP, not FULL_REGEXP.
MATCH_TYPES = {EQUALS: "EXACT", CONTAINS: "CONTAINS", STARTS_WITH: "BEGINS_WITH",
               ENDS_WITH: "ENDS_WITH", REGEX: "PARTIAL_REGEXP"}
#: The prefix of a page goal's request name: `page:quote_thank_you`.
PAGE = "page:"


def _in_list(events: Sequence[str]) -> dict[str, Any]:
    return {"filter": {"fieldName": "eventName",
                       "inListFilter": {"values": list(events), "caseSensitive": True}}}


def page_filter(condition: Condition) -> dict[str, Any]:
    """The Data API filter for "a page_view whose page location matches `condition`":
    `eventName EXACT page_view` and `pageLocation` matched as the event create rule matches
    the `page_location` parameter (case-insensitive when the condition says so)."""
    return {"andGroup": {"expressions": [
        {"filter": {"fieldName": "eventName",
                    "stringFilter": {"matchType": "EXACT", "value": PAGE_EVENT,
                                     "caseSensitive": True}}},
        {"filter": {"fieldName": "pageLocation",
                    "stringFilter": {"matchType": MATCH_TYPES[condition.op],
                                     "value": condition.value,
                                     "caseSensitive": not condition.ignore_case}}}]}}


def page_goals(spec: Spec) -> list[Goal]:
    """The spec's `page:` goals, counted from page views (see the module docstring)."""
    return [g for g in spec.goals if g.kind == "page"]


def _goals_filter(goals: Sequence[Goal]) -> dict[str, Any] | None:
    """Events of any of `goals`: their own events (an in-list), or for a page goal its page
    views; None for no goals."""
    own = sorted({g.event for g in goals if g.kind != "page"})
    parts = ([_in_list(own)] if own else []) + [
        page_filter(g.origin.page) for g in goals if g.kind == "page"]  # type: ignore[union-attr]
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else {"orGroup": {"expressions": parts}}


def build_requests(spec: Spec, periods: Sequence[Period]) -> list[NamedRequest]:
    """The named report requests for one property, in proto3 JSON (camelCase) form."""
    ranges = [{"startDate": p.start.isoformat(), "endDate": p.end.isoformat(),
               "name": f"p{i}"} for i, p in enumerate(periods)]
    events = sorted({g.event for g in spec.goals})
    base = {"dateRanges": ranges, "limit": str(data.PAGE_LIMIT), "returnPropertyQuota": True}
    reqs: list[NamedRequest] = [
        ("totals", {**base, "dimensions": [{"name": "date"}],
                    "metrics": [{"name": "sessions"}, {"name": "totalUsers"}],
                    "metricAggregations": ["TOTAL"]}),
        ("events", {**base, "dimensions": [{"name": "eventName"}],
                    "metrics": [{"name": n} for n in ("eventCount", "sessions", "eventValue", "keyEvents")],
                    "dimensionFilter": _in_list(events)}),
        ("daily", {**base, "dimensions": [{"name": "date"}, {"name": "eventName"}],
                   "metrics": [{"name": n} for n in ("eventCount", "sessions", "eventValue")],
                   "dimensionFilter": _in_list(events)}),
    ]
    for tier in (MACRO, MICRO):
        tier_filter = _goals_filter([g for g in spec.goals if g.tier == tier])
        if tier_filter:
            reqs.append((tier, {**base, "metrics": [{"name": "sessions"}],
                                "dimensionFilter": tier_filter}))
    seen: set[str] = set()
    for g in page_goals(spec):
        if g.event in seen:
            continue
        seen.add(g.event)
        reqs.append((PAGE + g.event, {
            **base, "dimensions": [{"name": "date"}],
            "metrics": [{"name": n} for n in ("eventCount", "sessions", "eventValue")],
            "metricAggregations": ["TOTAL"],
            "dimensionFilter": page_filter(g.origin.page)}))  # type: ignore[union-attr]
    return reqs


def batches(requests: Sequence[NamedRequest]) -> list[list[NamedRequest]]:
    """The requests in `batchRunReports` calls of at most five, in order."""
    n = DATA_BATCH_REQUESTS_MAX
    return [list(requests[i:i + n]) for i in range(0, len(requests), n)]


def pull(conn: Connection, spec: Spec, property: str,
         periods: Sequence[Period]) -> ReportFacts:
    """`batchRunReports` calls of five requests (one call without `page:` goals; plus offset
    pages of long reports) -> the facts of each period."""
    reports: dict[str, ParsedReport] = {}
    for batch in batches(build_requests(spec, periods)):
        reports.update(data.fetch(conn, property, batch))
    return to_facts(property, periods, reports)


def _by_range(parsed: ParsedReport, index: int, many: bool) -> Any:
    df = parsed.frame()
    if many and "dateRange" in df:
        df = df[df["dateRange"] == f"p{index}"]
    return df


def _dates(values: Any, property: str) -> Any:
    """GA's YYYYMMDD strings -> `datetime.date`s; anything else is a MalformedAnswer."""
    import pandas as pd
    parsed = pd.to_datetime(values, format="%Y%m%d", errors="coerce")
    if parsed.isna().any():
        from ga_sync.redact import excerpt
        bad = values[parsed.isna()].iloc[0]
        raise data.malformed(property, "run reports (batchRunReports)",
                             f"the date {excerpt(repr(bad), 30)} is not a date (YYYYMMDD)")
    return parsed.dt.date


def _period_facts(property: str, period: Period, reports: dict[str, ParsedReport],
                  index: int, many: bool) -> PeriodFacts:
    import pandas as pd

    totals = reports["totals"]
    days = _by_range(totals, index, many)
    t = [r for r in totals.totals if not many or r.get("dateRange") == f"p{index}"]
    if t:
        sessions, users = int(t[0].get("sessions", 0)), int(t[0].get("totalUsers", 0))
    else:  # no totals row: GA answers an empty property without one
        sessions = int(days["sessions"].sum()) if "sessions" in days else 0
        users = int(days["totalUsers"].sum()) if "totalUsers" in days else 0
    tier_sessions = {}
    for tier in TIERS:
        if tier in reports:
            df = _by_range(reports[tier], index, many)
            tier_sessions[tier] = float(df["sessions"].sum()) if "sessions" in df else 0.0

    ev = _by_range(reports["events"], index, many)
    events = pd.DataFrame({"count": ev["eventCount"].to_numpy(),
                           "sessions": ev["sessions"].to_numpy(),
                           "value": ev["eventValue"].to_numpy(),
                           KEY_EVENTS: ev["keyEvents"].to_numpy()},
                          index=pd.Index(ev["eventName"].to_numpy(), name="event"))
    if days.empty or "date" not in days:
        days = pd.DataFrame({"date": [], "sessions": [], "users": []})
    else:
        days = pd.DataFrame({"date": _dates(days["date"], property).to_numpy(),
                             "sessions": days["sessions"].to_numpy(),
                             "users": days["totalUsers"].to_numpy()})
    daily = _by_range(reports["daily"], index, many)
    daily = pd.DataFrame({"date": _dates(daily["date"], property).to_numpy(),
                          "event": daily["eventName"].to_numpy(),
                          "count": daily["eventCount"].to_numpy(),
                          "sessions": daily["sessions"].to_numpy(),
                          "value": daily["eventValue"].to_numpy()})
    pages = sorted(k[len(PAGE):] for k in reports if k.startswith(PAGE))
    if pages:
        events, daily = _with_pages(property, pages, reports, index, many, events, daily)
    return PeriodFacts(period=period, sessions=sessions, users=users,
                       tier_sessions=tier_sessions, events=events, days=days, daily=daily)


def _with_pages(property: str, pages: Sequence[str], reports: dict[str, ParsedReport],
                index: int, many: bool, events: Any, daily: Any) -> tuple[Any, Any]:
    """The events and daily tables with each page goal's rows replaced by its page views.

    The period's sessions come from the TOTAL row (sessions de-duplicated over the period);
    GA's `keyEvents` for the goal's own event (the rule's output) are kept, since they say
    whether GA counts it as a key event.
    """
    import pandas as pd

    rows, days = [], [daily[~daily["event"].isin(pages)]]
    for event in pages:
        parsed = reports[PAGE + event]
        df = _by_range(parsed, index, many)
        t = [r for r in parsed.totals if not many or r.get("dateRange") == f"p{index}"]
        if t:
            count, sessions, value = (float(t[0].get(m, 0)) for m in
                                      ("eventCount", "sessions", "eventValue"))
        else:  # no totals row: no page view matched (or GA answered without one)
            count = float(df["eventCount"].sum()) if "eventCount" in df else 0.0
            sessions = float(df["sessions"].sum()) if "sessions" in df else 0.0
            value = float(df["eventValue"].sum()) if "eventValue" in df else 0.0
        key_events = (float(events.loc[event, KEY_EVENTS]) if event in events.index else 0.0)
        rows.append((event, count, sessions, value, key_events))
        if len(df) and "date" in df:
            days.append(pd.DataFrame({"date": _dates(df["date"], property).to_numpy(),
                                      "event": event,
                                      "count": df["eventCount"].to_numpy(),
                                      "sessions": df["sessions"].to_numpy(),
                                      "value": df["eventValue"].to_numpy()}))
    page_rows = pd.DataFrame(rows, columns=["event", "count", "sessions", "value", KEY_EVENTS]
                             ).set_index("event")
    events = pd.concat([events[~events.index.isin(pages)], page_rows])
    events.index.name = "event"
    daily = pd.concat([d for d in days if len(d)] or [days[0]], ignore_index=True)
    return events, daily


def to_facts(property: str, periods: Sequence[Period],
             reports: dict[str, ParsedReport]) -> ReportFacts:
    """The parsed reports of `build_requests` -> ReportFacts (date range `p{i}` = periods[i])."""
    many = len(periods) > 1
    metas = [r.metadata for r in reports.values()]
    meta = reports["totals"].metadata
    return ReportFacts(
        property=property,
        periods=[_period_facts(property, p, reports, i, many) for i, p in enumerate(periods)],
        currency=meta.get("currencyCode") or None, time_zone=meta.get("timeZone") or None,
        thresholded=any(bool(m.get("subjectToThresholding")) for m in metas),
        sampled=any(bool(m.get("samplingMetadatas")) for m in metas),
        other_row=any(bool(m.get("dataLossFromOtherRow")) for m in metas),
        quota=_last_quota(reports), source=name,
        from_page_views=tuple(sorted(k[len(PAGE):] for k in reports if k.startswith(PAGE))))


def _last_quota(reports: dict[str, ParsedReport]) -> dict[str, Any] | None:
    """The quota GA says is left after the pull: the last call's, whose last request is the
    last page goal's when there are page goals (each call reports it)."""
    quota = reports["totals"].quota
    for key, parsed in reports.items():
        if key.startswith(PAGE):
            quota = parsed.quota or quota
    return quota
