"""The GA4 Data API as a source of report facts: one `batchRunReports` per property and pull.

For one property and one period (plus the previous one, as a second date range) every fact
comes from a single `batchRunReports` call of at most five requests:

  totals   date                     sessions, totalUsers (+ TOTAL aggregation = period totals)
  events   eventName                eventCount, sessions, eventValue, keyEvents
  daily    date, eventName          eventCount, sessions, eventValue      (for the history store)
  macro    (filter: macro events)   sessions  -> sessions with at least one macro conversion
  micro    (filter: micro events)   sessions  -> sessions with at least one micro conversion

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
from ga_sync.model import MACRO, MICRO, TIERS, Spec
from ga_sync.periods import Period

name = "data_api"


def _in_list(events: Sequence[str]) -> dict[str, Any]:
    return {"filter": {"fieldName": "eventName",
                       "inListFilter": {"values": list(events), "caseSensitive": True}}}


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
        tier_events = sorted({g.event for g in spec.goals if g.tier == tier})
        if tier_events:
            reqs.append((tier, {**base, "metrics": [{"name": "sessions"}],
                                "dimensionFilter": _in_list(tier_events)}))
    return reqs


def pull(conn: Connection, spec: Spec, property: str,
         periods: Sequence[Period]) -> ReportFacts:
    """One `batchRunReports` (plus offset pages of long reports) -> the facts of each period."""
    reports = data.fetch(conn, property, build_requests(spec, periods))
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
    return PeriodFacts(period=period, sessions=sessions, users=users,
                       tier_sessions=tier_sessions, events=events, days=days, daily=daily)


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
        quota=reports["totals"].quota, source=name)
