"""What an audit reads of a property, with a fixed number of calls, into `PropertyFacts`.

Three Admin API reads (property, key events, data retention settings) and one Data API
`batchRunReports` of three reports, whatever the property holds; the reports ask GA to filter
and aggregate, so only per-event totals and suspicious pages travel.

Goal kinds add, only when the spec has goals with an origin (`page:`, `from:`, `session:`) or
the audit has no spec: the goal machinery (v1alpha: data streams, each stream's event create
rules, audiences; 2 + streams calls), and for `page:` goals one report each (page views whose
page location matches the goal's condition) plus one of the page locations seen most, sent in
the same `batchRunReports` (five reports a call: a spec with three page goals or more needs a
second call). A spec with only goals whose event the site sends costs what it always did.

The window is the last N complete days GA has finished processing: today is incomplete and GA
is still processing the two days before it, so the window is [today - 2 - N, today - 3] in the
property's time zone (`audit_period`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from ga_sync.admin import read_data_retention, read_key_events, read_property
from ga_sync.audit.findings import CHECKS, Finding
from ga_sync.clients import Connection
from ga_sync.errors import Cancelled, GaSyncError
from ga_sync.garules import DATA_BATCH_REQUESTS_MAX
from ga_sync.machinery import Machinery
from ga_sync.model import Goal, KeyEventState, PropertyInfo, Spec, property_name
from ga_sync.data import malformed, parse_report, post
from ga_sync.periods import Period, complete_days, today_in

DEFAULT_DAYS = 28
EVENTS_LIMIT = 10_000  # rows of the per-event report; GA keeps at most 500 event names
PII_LIMIT = 50  # suspicious page rows asked for; rowCount still gives the total
#: Page locations asked for (the most viewed first), to name the closest ones to a `page:`
#: goal's condition that matched nothing.
LOCATIONS_LIMIT = 2000

#: E-mail addresses, plain or URL-encoded (`%40`), anywhere in a path or URL (RE2 syntax).
EMAIL_PATTERN = r"[A-Za-z0-9._%+-]+(@|%40)[A-Za-z0-9.-]+\.[A-Za-z]{2,}"
#: Query parameters that carry personal data by their name (a non-empty value).
PII_PARAMS = (r"e-?mail|email_?address|phone|tel|mobile|first_?name|last_?name|surname|"
              r"full_?name|address|post_?code|zip_?code|ssn|password|pwd")
PII_PARAM_PATTERN = rf"[?&;]({PII_PARAMS})=[^&#]"
PII_PATTERN = f"{EMAIL_PATTERN}|{PII_PARAM_PATTERN}"


@dataclass(frozen=True)
class EventStats:
    """One event over the window: events, sessions with it, and the sum of its `value`."""

    count: int = 0
    sessions: int = 0
    value: float = 0.0


@dataclass(frozen=True)
class PiiHit:
    """A page that carried personal data: its path, full location and events seen on it."""

    path: str
    location: str
    events: int


@dataclass(frozen=True)
class PropertyFacts:
    """Everything the checks look at for one property, read once by `gather`."""

    property: str
    client: str
    info: PropertyInfo
    key_events: tuple[KeyEventState, ...]
    retention: str
    period: Period
    events: dict[str, EventStats] = field(default_factory=dict)
    total_sessions: int = 0
    pii: tuple[PiiHit, ...] = ()
    pii_rows: int = 0  # all suspicious rows GA found (more than `pii` when cut at PII_LIMIT)
    thresholded: bool = False
    spec: Spec | None = None
    #: Page views matching each `page:` goal's condition in the window, by the goal's event.
    page_views: dict[str, int] = field(default_factory=dict)
    #: The page locations of page views in the window, most viewed first (page goals only).
    locations: tuple[tuple[str, int], ...] = ()
    #: The property's data streams, event create rules and audiences; None when not read
    #: (`machinery_error` says why when reading failed).
    machinery: Machinery | None = None
    machinery_error: str | None = None

    def stats(self, event: str) -> EventStats:
        return self.events.get(event, EventStats())

    def key_event(self, event: str) -> KeyEventState | None:
        return next((k for k in self.key_events if k.event == event), None)

    def finding(self, check: str, subject: str | None, message: str, fix: str, *,
                resource: tuple[str, str] | None = None) -> Finding:
        """A finding of this property; `resource` (kind, server name) lets the audit add who
        last changed it (the change history)."""
        return Finding(self.property, self.client, check, CHECKS[check].severity, subject,
                       message, fix, resource=resource)


def wants_machinery(spec: Spec | None) -> bool:
    """Whether the audit reads rules and audiences: without a spec (an inventory of the
    property), or when the spec has goals GA makes (page/from/session)."""
    return spec is None or any(g.origin is not None for g in spec.goals)


def _page_goals(spec: Spec | None) -> list[Goal]:
    seen: set[str] = set()
    out = []
    for g in spec.goals if spec is not None else ():
        if g.kind == "page" and g.event not in seen:
            seen.add(g.event)
            out.append(g)
    return out


def page_requests(spec: Spec | None, period: Period) -> list[tuple[str, dict[str, Any]]]:
    """For `page:` goals: one report per goal (its matching page views in the window, the same
    filter the report counts with) and one of the page locations viewed most; none without."""
    from ga_sync.sources.data_api import PAGE, page_filter

    goals = _page_goals(spec)
    if not goals:
        return []
    ranges = _date_range(period)
    out: list[tuple[str, dict[str, Any]]] = [
        (PAGE + g.event, {"dateRanges": ranges, "metrics": [{"name": "eventCount"}],
                          "dimensionFilter": page_filter(g.origin.page)})  # type: ignore[union-attr]
        for g in goals]
    out.append(("locations", {
        "dateRanges": ranges, "dimensions": [{"name": "pageLocation"}],
        "metrics": [{"name": "eventCount"}],
        "dimensionFilter": {"filter": {"fieldName": "eventName", "stringFilter": {
            "matchType": "EXACT", "value": "page_view", "caseSensitive": True}}},
        "orderBys": [{"metric": {"metricName": "eventCount"}, "desc": True}],
        "limit": str(LOCATIONS_LIMIT)}))
    return out


def page_facts(reports: dict[str, Any], *, property: str | None = None,
               requests: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """`page_views` and `locations` from the raw reports of `page_requests`, by name."""
    from ga_sync.sources.data_api import PAGE

    if not reports:
        return {}
    parsed = {name: parse_report(raw, property=property, what=f"the audit's {name} report",
                                 request=(requests or {}).get(name))
              for name, raw in reports.items()}
    views = {}
    for name, rep in parsed.items():
        if name.startswith(PAGE):
            df = rep.frame()
            views[name[len(PAGE):]] = int(df["eventCount"].sum()) if "eventCount" in df else 0
    loc = parsed["locations"].frame()
    locations = tuple((str(a), int(n)) for a, n in zip(loc.get("pageLocation", []),
                                                         loc.get("eventCount", []), strict=True))
    return {"page_views": views, "locations": locations}


def audit_period(today: date, days: int = DEFAULT_DAYS) -> Period:
    """The last `days` complete days GA has finished processing: [today-2-days, today-3].

    Today is incomplete and the two days before it are still being processed
    (https://support.google.com/analytics/answer/11198161), so they are skipped.
    """
    if days < 1:
        raise GaSyncError(f"the audit window must be at least 1 day, not {days}")
    return complete_days(today, days)


def _date_range(period: Period) -> list[dict[str, str]]:
    return [{"startDate": period.start.isoformat(), "endDate": period.end.isoformat()}]


def build_requests(period: Period) -> list[dict[str, Any]]:
    """The audit's three reports, sent as one `batchRunReports`.

    events: eventName x eventCount, sessions (with the event), eventValue.
    sessions: total sessions of the window (no dimension: per-event sessions do not add up).
    pii: pagePath x pageLocation, filtered by `PII_PATTERN`, so only suspicious rows return.
    """
    ranges = _date_range(period)
    pii_filter = {"orGroup": {"expressions": [
        {"filter": {"fieldName": name, "stringFilter": {
            "matchType": "PARTIAL_REGEXP", "value": PII_PATTERN, "caseSensitive": False}}}
        for name in ("pagePath", "pageLocation")]}}
    return [
        {"dateRanges": ranges, "dimensions": [{"name": "eventName"}],
         "metrics": [{"name": "eventCount"}, {"name": "sessions"}, {"name": "eventValue"}],
         "limit": str(EVENTS_LIMIT)},
        {"dateRanges": ranges, "metrics": [{"name": "sessions"}]},
        {"dateRanges": ranges, "dimensions": [{"name": "pagePath"}, {"name": "pageLocation"}],
         "metrics": [{"name": "eventCount"}], "dimensionFilter": pii_filter,
         "orderBys": [{"metric": {"metricName": "eventCount"}, "desc": True}],
         "limit": str(PII_LIMIT)},
    ]


REPORT_NAMES = ("events", "sessions", "pii")


def facts_from_reports(reports: Sequence[Any], *, property: str | None = None,
                       requests: Sequence[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The data part of PropertyFacts from the three raw reports of `build_requests`.

    Each report is checked by `parse_report` (against its request when `requests` is given):
    an answer that is not a valid report raises MalformedAnswer for `property`.
    """
    what = "the audit's reports (batchRunReports)"
    if len(reports) != len(REPORT_NAMES):
        raise malformed(property, what, f"{len(reports)} reports for {len(REPORT_NAMES)} "
                         "requests")
    asked: Sequence[dict[str, Any] | None] = requests or [None] * len(REPORT_NAMES)
    events_r, sessions_r, pii_r = (
        parse_report(r, property=property, request=q, what=f"the audit's {n} report")
        for r, q, n in zip(reports, asked, REPORT_NAMES))
    ev = events_r.frame()
    events = {}
    if "eventName" in ev and len(ev):
        for name, count, sessions, value in zip(ev["eventName"], ev["eventCount"],
                                                ev["sessions"], ev["eventValue"], strict=True):
            events[str(name)] = EventStats(int(count), int(sessions), float(value))
    total = sessions_r.frame()
    total_sessions = int(total["sessions"].sum()) if "sessions" in total and len(total) else 0
    pii_df = pii_r.frame()
    pii = tuple(PiiHit(str(p), str(loc), int(n)) for p, loc, n in zip(
        pii_df.get("pagePath", []), pii_df.get("pageLocation", []),
        pii_df.get("eventCount", []), strict=True))
    thresholded = any(r.metadata.get("subjectToThresholding")
                      for r in (events_r, sessions_r, pii_r))
    return {"events": events, "total_sessions": total_sessions, "pii": pii,
            "pii_rows": max(pii_r.row_count, len(pii)), "thresholded": bool(thresholded)}


def gather(conn: Connection, property: str, spec: Spec | None = None,
           period: Period | None = None, *, days: int = DEFAULT_DAYS,
           today: date | None = None) -> PropertyFacts:
    """Read one property: 3 Admin API calls (property, key events, data retention) and one
    Data API `batchRunReports`. Without `period`, the window is `audit_period` of the
    property's today. Raises ApiError when GA refuses (see `audit_property`)."""
    prop = property_name(property)
    info = read_property(conn, prop)
    key_events = tuple(read_key_events(conn, prop))
    retention = read_data_retention(conn, prop)
    if period is None:
        period = audit_period(today or today_in(info.time_zone, property=prop), days)
    machinery, machinery_error = None, None
    if wants_machinery(spec):
        from ga_sync.machinery import read_machinery
        from ga_sync.redact import excerpt
        try:
            machinery = read_machinery(conn, prop)
        except Cancelled:
            raise
        except GaSyncError as err:  # the other checks still run; goal-machinery-unread says it
            machinery_error = excerpt(str(err), 300)
    requests = build_requests(period)
    pages = page_requests(spec, period)
    named = [(n, r) for n, r in zip(REPORT_NAMES, requests)] + pages
    raw: dict[str, Any] = {}
    for i in range(0, len(named), DATA_BATCH_REQUESTS_MAX):
        batch = named[i:i + DATA_BATCH_REQUESTS_MAX]
        answer = post(conn, prop, "batchRunReports", {"requests": [r for _, r in batch]})
        reports = answer.get("reports")
        if not isinstance(reports, list) or len(reports) != len(batch):
            raise malformed(prop, "the audit's reports (batchRunReports)",
                            "no list of reports" if not isinstance(reports, list) else
                            f"{len(reports)} reports for {len(batch)} requests")
        raw.update(zip((n for n, _ in batch), reports))
    client = spec.client if spec is not None else (info.display_name or prop)
    return PropertyFacts(property=prop, client=client, info=info, key_events=key_events,
                         retention=retention, period=period, spec=spec,
                         machinery=machinery, machinery_error=machinery_error,
                         **facts_from_reports([raw[n] for n in REPORT_NAMES], property=prop,
                                              requests=requests),
                         **page_facts({n: raw[n] for n, _ in pages}, property=prop,
                                      requests=dict(pages)))
