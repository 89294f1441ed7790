"""Data API pulls -> DataFrames -> macro and micro conversion numbers, computed here.

GA4's own key-event counts only start once an event is marked and mix counting methods, so
ga-sync asks for raw event counts and computes conversions, rates and value itself from the
spec. For one property and one period (plus the previous one, as a second date range) every
number comes from a single `batchRunReports` call of at most five requests:

  totals   date                     sessions, totalUsers (+ TOTAL aggregation = period totals)
  events   eventName                eventCount, sessions, eventValue, keyEvents
  daily    date, eventName          eventCount, sessions, eventValue      (for the history store)
  macro    (filter: macro events)   sessions  -> sessions with at least one macro conversion
  micro    (filter: micro events)   sessions  -> sessions with at least one micro conversion

Report pages are parsed from the raw JSON with `json.loads` straight into columns: going
through proto-plus objects row by row is ~10x slower on large pages (see bench/report_parse.py).
"""

from __future__ import annotations

import gc
import json
import math
from contextlib import contextmanager
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from ga_sync.clients import Connection, call
from ga_sync.errors import GaSyncError
from ga_sync.model import MACRO, MICRO, ONCE_PER_SESSION, USERS, KeyEventState, Spec

PAGE_LIMIT = 100_000  # rows asked per request; GA allows up to 250,000
TIMEOUT = 60.0
PROCESSING_DAYS = 2  # GA is still processing the most recent 24-48 hours


# --------------------------------------------------------------------------- periods


@dataclass(frozen=True)
class Period:
    start: date
    end: date  # inclusive

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def previous(self) -> "Period":
        """The period of equal length just before this one."""
        return Period(self.start - timedelta(days=self.days), self.start - timedelta(days=1))

    def __str__(self) -> str:
        return f"{self.start.isoformat()}..{self.end.isoformat()}"


def today_in(tz: str) -> date:
    return datetime.now(ZoneInfo(tz)).date()


def last_week(today: date) -> Period:
    """The last complete ISO week (Monday to Sunday) before `today`."""
    this_monday = today - timedelta(days=today.weekday())
    return Period(this_monday - timedelta(days=7), this_monday - timedelta(days=1))


def last_days(today: date, n: int) -> Period:
    """The last n complete days, ending yesterday."""
    return Period(today - timedelta(days=n), today - timedelta(days=1))


# --------------------------------------------------------------------------- requests


def _in_list(events: Sequence[str]) -> dict[str, Any]:
    return {"filter": {"fieldName": "eventName",
                       "inListFilter": {"values": list(events), "caseSensitive": True}}}


def build_requests(spec: Spec, periods: Sequence[Period]) -> list[tuple[str, dict[str, Any]]]:
    """The named report requests for one property, in proto3 JSON (camelCase) form."""
    ranges = [{"startDate": p.start.isoformat(), "endDate": p.end.isoformat(),
               "name": f"p{i}"} for i, p in enumerate(periods)]
    events = sorted({g.event for g in spec.goals})
    base = {"dateRanges": ranges, "limit": str(PAGE_LIMIT), "returnPropertyQuota": True}
    reqs: list[tuple[str, dict[str, Any]]] = [
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


# --------------------------------------------------------------------------- parsing


@dataclass
class ParsedReport:
    """One report as plain columns: no proto objects, no per-row attribute access."""

    columns: dict[str, list[Any]]
    metric_types: dict[str, str]
    row_count: int
    totals: list[dict[str, Any]]
    metadata: dict[str, Any]
    quota: dict[str, Any] | None

    def frame(self) -> Any:
        """The columns as a DataFrame, metrics numeric (integers as int64)."""
        import pandas as pd
        with _gc_paused():
            df = pd.DataFrame(self.columns)
            for name, kind in self.metric_types.items():
                if name in df:
                    df[name] = pd.to_numeric(df[name], errors="coerce").fillna(0)
                    if kind in ("TYPE_INTEGER", "1", 1) and len(df):
                        df[name] = df[name].astype("int64")
        return df


_METRIC_TYPE_NAMES = {1: "TYPE_INTEGER", 2: "TYPE_FLOAT", 4: "TYPE_SECONDS",
                      5: "TYPE_MILLISECONDS", 6: "TYPE_MINUTES", 7: "TYPE_HOURS",
                      8: "TYPE_STANDARD", 9: "TYPE_CURRENCY", 10: "TYPE_FEET", 11: "TYPE_MILES",
                      12: "TYPE_METERS", 13: "TYPE_KILOMETERS"}


def parse_report(report: dict[str, Any]) -> ParsedReport:
    """A runReport response (already `json.loads`-ed) -> columns of strings and numbers.

    Handles GA's empty answer (no `rows`, no `rowCount`) and enum types as names or numbers.
    """
    dims = [h["name"] for h in report.get("dimensionHeaders", [])]
    mheads = report.get("metricHeaders", [])
    mets = [h["name"] for h in mheads]
    types = {h["name"]: _METRIC_TYPE_NAMES.get(h.get("type"), h.get("type", "TYPE_INTEGER"))
             for h in mheads}
    rows = report.get("rows") or []
    columns: dict[str, list[Any]] = {}
    for i, name in enumerate(dims):
        columns[name] = [r["dimensionValues"][i].get("value", "") for r in rows]
    for i, name in enumerate(mets):
        columns[name] = [r["metricValues"][i].get("value", "0") for r in rows]

    def row_dict(r: dict[str, Any]) -> dict[str, Any]:
        out = {d: r.get("dimensionValues", [{}] * len(dims))[i].get("value", "")
               for i, d in enumerate(dims)}
        for i, m in enumerate(mets):
            out[m] = float(r["metricValues"][i].get("value", 0) or 0)
        return out

    return ParsedReport(columns=columns, metric_types=types,
                        row_count=int(report.get("rowCount", 0) or 0),
                        totals=[row_dict(t) for t in report.get("totals", [])],
                        metadata=report.get("metadata", {}),
                        quota=report.get("propertyQuota"))


# --------------------------------------------------------------------------- fetching


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a large page is parsed.

    json.loads of a 250,000-row page allocates millions of small dicts and strings, none of them
    cyclic; with the collector running, its generation scans cost more than the parsing itself
    (measured: 2.0 s with, 0.7 s without). Restored afterwards, even on error.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _post(conn: Connection, property: str, method: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST to the Data API through the client's own authorized session, parse with json.loads."""
    from google.api_core import exceptions as gexc

    transport = conn.data()._transport
    url = f"{transport._host}/v1beta/{property}:{method}"
    headers = {"Content-Type": "application/json",
               "x-goog-api-client": f"gl-python ga-sync/{_version()}"}

    def send() -> dict[str, Any]:
        with conn.data_slot(property):
            response = transport._session.post(url, params={"$alt": "json;enum-encoding=int"},
                                               data=json.dumps(body), headers=headers,
                                               timeout=TIMEOUT)
        if response.status_code >= 400:
            raise gexc.from_http_response(response)
        with _gc_paused():
            return json.loads(response.content)

    return call(send, policy=conn.retry, property=property, what=f"run reports ({method})",
                paced=False)


def _version() -> str:
    from ga_sync import __version__
    return __version__


def fetch(conn: Connection, property: str,
          requests: list[tuple[str, dict[str, Any]]]) -> dict[str, ParsedReport]:
    """One batchRunReports call (at most 5 requests) plus offset pages for any long report."""
    if len(requests) > 5:
        raise ValueError("batchRunReports takes at most 5 requests")
    data = _post(conn, property, "batchRunReports", {"requests": [r for _, r in requests]})
    reports = data.get("reports", [])
    out: dict[str, ParsedReport] = {}
    for (name, body), raw in zip(requests, reports):
        with _gc_paused():
            parsed = parse_report(raw)
        got = len(next(iter(parsed.columns.values()), []))
        offset = got
        while got and offset < parsed.row_count:
            raw_page = _post(conn, property, "runReport", {**body, "offset": str(offset)})
            with _gc_paused():
                page = parse_report(raw_page)
            n = len(next(iter(page.columns.values()), []))
            if n == 0:
                break
            for k, v in page.columns.items():
                parsed.columns[k].extend(v)
            parsed.quota = page.quota or parsed.quota
            offset += n
        out[name] = parsed
    return out


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

    def to_json(self, with_change: bool) -> dict[str, Any]:
        out: dict[str, Any] = {"event": self.event, "tier": self.tier,
                               "conversions": _num(self.conversions), "rate": self.rate,
                               "value": self.value}
        if with_change:
            out["change"] = self.change
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
    currency: str
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
    daily: Any = None  # DataFrame: date, event, conversions, value, sessions, users
    quota: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        compare = self.previous is not None
        return {
            "property": self.property, "client": self.client,
            "start": self.period.start.isoformat(), "end": self.period.end.isoformat(),
            "currency": self.currency, "rate_basis": self.rate_basis,
            "sessions": self.sessions, "users": self.users,
            "goals": [g.to_json(compare) for g in self.goals],
            "macro": self.macro.to_json(), "micro": self.micro.to_json(),
            "total_value": self.total_value, "value_per_session": self.value_per_session,
            "previous": self.previous.to_json() if self.previous else None,
            "warnings": [w.to_json() for w in self.warnings],
        }


def _num(x: float) -> float | int:
    return int(x) if float(x).is_integer() else x


def _ratio(a: float, b: float) -> float:
    return a / b if b else 0.0


def _by_range(parsed: ParsedReport, index: int, many: bool) -> Any:
    df = parsed.frame()
    if many and "dateRange" in df:
        df = df[df["dateRange"] == f"p{index}"]
    return df


def compute(spec: Spec, property: str, period: Period, reports: dict[str, ParsedReport],
            *, index: int = 0, ranges: int = 1, currency: str | None = None) -> ReportResult:
    """The contract's numbers for one property and one date range, from parsed reports."""
    many = ranges > 1
    totals = reports["totals"]
    t = [r for r in totals.totals if not many or r.get("dateRange") == f"p{index}"]
    if t:
        sessions, users = int(t[0].get("sessions", 0)), int(t[0].get("totalUsers", 0))
    else:  # no totals row: GA answers an empty property without one
        df = _by_range(totals, index, many)
        sessions = int(df["sessions"].sum()) if "sessions" in df else 0
        users = int(df["totalUsers"].sum()) if "totalUsers" in df else 0
    basis = users if spec.rate_basis == USERS else sessions

    ev = _by_range(reports["events"], index, many)
    ev = ev.set_index("eventName") if "eventName" in ev else None
    goals: list[GoalResult] = []
    tiers: dict[str, list[float]] = {MACRO: [0.0, 0.0], MICRO: [0.0, 0.0]}
    for g in spec.goals:
        row = ev.loc[g.event] if ev is not None and g.event in ev.index else None
        if row is None:
            conv, val = 0.0, 0.0
        else:
            conv = float(row["sessions"] if g.counting == ONCE_PER_SESSION else row["eventCount"])
            val = float(row["eventValue"]) if g.value is None else conv * float(g.value)
        goals.append(GoalResult(g.event, g.tier, conv, _ratio(conv, basis), val, g.counting))
        tiers[g.tier][0] += conv
        tiers[g.tier][1] += val

    def tier(name: str) -> TierResult:
        conv, val = tiers[name]
        with_any = 0.0
        if name in reports:
            df = _by_range(reports[name], index, many)
            with_any = float(df["sessions"].sum()) if "sessions" in df else 0.0
        return TierResult(conv, _ratio(conv, basis), _ratio(with_any, sessions), val)

    macro, micro = tier(MACRO), tier(MICRO)
    total_value = macro.value + micro.value
    meta = totals.metadata
    return ReportResult(
        property=property, client=spec.client, period=period,
        currency=currency or meta.get("currencyCode") or spec.currency,
        rate_basis=spec.rate_basis, sessions=sessions, users=users, goals=goals,
        macro=macro, micro=micro, total_value=total_value,
        value_per_session=_ratio(total_value, sessions),
        daily=_daily(spec, reports, index, many), quota=totals.quota)


def _daily(spec: Spec, reports: dict[str, ParsedReport], index: int, many: bool) -> Any:
    """Daily rows for the history store: date, event, conversions, value, sessions, users.

    Every day GA returned totals for also gets a row with event "" (no conversions), so the
    store learns the day's sessions and users even when no goal event fired that day.
    """
    import pandas as pd
    cols = ["date", "event", "conversions", "value", "sessions", "users"]
    daily = _by_range(reports["daily"], index, many)
    totals = _by_range(reports["totals"], index, many)
    if totals.empty or "date" not in totals:
        return pd.DataFrame(columns=cols)
    day = totals.set_index("date")[["sessions", "totalUsers"]]
    goals = {g.event: g for g in spec.goals}
    frames = [pd.DataFrame({"date": day.index, "event": "", "conversions": 0.0, "value": 0.0})]
    if not daily.empty:
        daily = daily[daily["eventName"].isin(list(goals))]
        counting = daily["eventName"].map(lambda e: goals[e].counting)
        unit = daily["eventName"].map(lambda e: goals[e].value).astype(float)
        conversions = daily["sessions"].where(counting == ONCE_PER_SESSION, daily["eventCount"])
        value = daily["eventValue"].where(unit.isna(), conversions * unit)
        frames.append(pd.DataFrame({"date": daily["date"], "event": daily["eventName"],
                                    "conversions": conversions.astype(float),
                                    "value": value.astype(float)}))
    out = pd.concat(frames, ignore_index=True)
    out["sessions"] = out["date"].map(day["sessions"]).fillna(0).astype(int)
    out["users"] = out["date"].map(day["totalUsers"]).fillna(0).astype(int)
    out["date"] = pd.to_datetime(out["date"], format="%Y%m%d").dt.date
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


def _warnings(result: ReportResult, reports: dict[str, ParsedReport], today: date,
              spec: Spec, index: int, many: bool,
              marked: dict[str, KeyEventState] | None = None) -> list[Warning_]:
    out: list[Warning_] = []
    metas = [r.metadata for r in reports.values()]
    if any(m.get("subjectToThresholding") for m in metas):
        out.append(Warning_("thresholded", "GA applied thresholding: small counts may be "
                            "withheld, so conversions can be understated."))
    if any(m.get("dataLossFromOtherRow") for m in metas):
        out.append(Warning_("other-row", "Some rows were folded into '(other)' by GA, so some "
                            "goal events may be undercounted."))
    if any(m.get("samplingMetadatas") for m in metas):
        out.append(Warning_("sampled", "GA sampled this data: the numbers are estimates."))
    if result.period.end >= today - timedelta(days=PROCESSING_DAYS):
        out.append(Warning_("incomplete", f"The period ends {result.period.end.isoformat()}, "
                            "within the last 2 days, which GA is still processing: numbers "
                            "will grow."))
    if result.sessions == 0:
        out.append(Warning_("no-data", "The property returned no data for this period."))
        return out
    ev = _by_range(reports["events"], index, many)
    ev = ev.set_index("eventName") if "eventName" in ev else None
    for g, r in zip(spec.goals, result.goals):
        if r.conversions == 0:
            out.append(Warning_("never-occurred", f"Goal event '{g.event}' did not occur in the "
                                "period: check the tag fires.", g.event))
            continue
        if ev is None or g.event not in ev.index:
            continue
        ga_count = float(ev.loc[g.event]["keyEvents"])
        warning = _key_event_warning(g, r.conversions, ga_count,
                                     (marked or {}).get(g.event), marked is not None)
        if warning:
            out.append(warning)
    return out


def report_property(conn: Connection, spec: Spec, property: str, period: Period, *,
                    compare: bool = False, today: date | None = None,
                    time_zone: str | None = None,
                    key_events: list[KeyEventState] | None = None) -> ReportResult:
    """Pull and compute one property's report (and the previous period's, with `compare`).

    `key_events`, the property's key events as the Admin API lists them, make the warnings
    about GA's own key-event counts say why they differ (marked when, counting how).
    """
    periods = [period, period.previous()] if compare else [period]
    requests = build_requests(spec, periods)
    reports = fetch(conn, property, requests)
    meta = reports["totals"].metadata
    today = today or today_in(time_zone or meta.get("timeZone") or "UTC")
    many = len(periods) > 1
    results = []
    for i, p in enumerate(periods):
        r = compute(spec, property, p, reports, index=i, ranges=len(periods))
        marked = {k.event: k for k in key_events} if key_events is not None else None
        r.warnings = _warnings(r, reports, today, spec, i, many, marked)
        results.append(r)
    current = results[0]
    if compare:
        prev = results[1]
        for g, pg in zip(current.goals, prev.goals):
            g.change = (g.conversions - pg.conversions) / pg.conversions if pg.conversions else None
        current = replace(current, previous=prev)
    return current


def check_dates(start: date, end: date) -> Period:
    if end < start:
        raise GaSyncError(f"--end {end} is before --start {start}")
    return Period(start, end)
