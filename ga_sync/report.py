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
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ga_sync.clients import Connection, call
from ga_sync.errors import GaSyncError, MalformedAnswer
from ga_sync.model import MACRO, MICRO, ONCE_PER_SESSION, USERS, KeyEventState, Spec

PAGE_LIMIT = 100_000  # rows asked per request; GA allows up to 250,000
TIMEOUT = 60.0
PROCESSING_DAYS = 2  # GA is still processing the most recent 24-48 hours
#: GA4's first day: the Data API refuses earlier dates ("Date ... is before 2015-08-14").
EARLIEST_DATE = date(2015, 8, 14)


# --------------------------------------------------------------------------- periods


@dataclass(frozen=True)
class Period:
    start: date
    end: date  # inclusive

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def previous(self) -> "Period":
        """The period of equal length just before this one (a GaSyncError before year 1)."""
        try:
            return Period(self.start - timedelta(days=self.days), self.start - timedelta(days=1))
        except OverflowError:
            raise GaSyncError(f"there is no period of {self.days} days before {self.start}: "
                              f"GA4 has data from {EARLIEST_DATE} on") from None

    def __str__(self) -> str:
        return f"{self.start.isoformat()}..{self.end.isoformat()}"


def today_in(tz: str, *, property: str | None = None) -> date:
    """Today's date in the time zone `tz` (an IANA name, as GA gives a property's time zone).

    A zone this machine's time zone database does not know (an empty name, a typo from
    something between us and GA, or a zone newer than the installed tzdata) is a
    MalformedAnswer for `property`, never a raw ZoneInfoNotFoundError.
    """
    return datetime.now(zone_of(tz, property=property)).date()


def zone_of(tz: Any, *, property: str | None = None) -> ZoneInfo:
    """`ZoneInfo(tz)`, or a MalformedAnswer saying which property's time zone is unknown."""
    from ga_sync.redact import excerpt

    try:
        if not isinstance(tz, str) or not tz.strip():
            raise ValueError("empty")
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        where = f" of {property}" if property else ""
        shown = excerpt(tz) if isinstance(tz, str) and tz.strip() else "(empty)"
        raise MalformedAnswer(
            f"the time zone{where}, {shown!r}, is not a time zone this machine knows. Check "
            "the property's time zone in GA4 Admin → Property details; if it is a valid IANA "
            "name, update the time zone database ('pip install -U tzdata').",
            property=property) from None


def last_week(today: date) -> Period:
    """The last complete ISO week (Monday to Sunday) before `today`."""
    this_monday = today - timedelta(days=today.weekday())
    return Period(this_monday - timedelta(days=7), this_monday - timedelta(days=1))


def last_days(today: date, n: int) -> Period:
    """The last n complete days, ending yesterday."""
    try:
        return Period(today - timedelta(days=n), today - timedelta(days=1))
    except OverflowError:
        raise GaSyncError(f"--last-days {n} starts before GA4's first day, {EARLIEST_DATE}"
                          ) from None


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


def _malformed(property: str | None, what: str, detail: str) -> MalformedAnswer:
    """The error for an answer that is not a valid Data API answer: where, what, what to do."""
    where = f" for {property}" if property else ""
    return MalformedAnswer(
        f"GA's answer to {what}{where} is not a valid answer: {detail}. Something between "
        "ga-sync and GA (a proxy, a firewall, an outage page) or a GA fault may have changed "
        "it: try again later, and check GA_SYNC_DATA_ENDPOINT if it is set.",
        property=property)


def _headers(report: dict[str, Any], key: str, bad: Any) -> list[dict[str, Any]]:
    heads = report.get(key) or []
    if not isinstance(heads, list) or not all(
            isinstance(h, dict) and isinstance(h.get("name"), str) and h["name"] for h in heads):
        raise bad(f"`{key}` is not a list of named headers")
    return heads


def _row_problem(r: Any, dims: list[str], mets: list[str]) -> str | None:
    """What is wrong with one row (or totals row), or None."""
    if not isinstance(r, dict):
        return f"a row is {type(r).__name__}, not an object"
    for key, names in (("dimensionValues", dims), ("metricValues", mets)):
        if not names:
            continue
        values = r.get(key)
        if not isinstance(values, list):
            return f"a row has no `{key}` list"
        if len(values) < len(names):
            return f"a row has {len(values)} `{key}` for {len(names)} headers"
        if not all(isinstance(v, dict) for v in values[:len(names)]):
            return f"a row's `{key}` are not objects"
    return None


def _check_numbers(name: str, values: list[Any], bad: Any) -> None:
    """Every metric value is a finite number written as a string (or a number)."""
    import numpy as np

    if not values:
        return
    try:
        numbers = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        numbers = None
    if numbers is None or not bool(np.isfinite(numbers).all()):
        from ga_sync.redact import excerpt
        for v in values:
            try:
                if math.isfinite(float(v)):
                    continue
            except (TypeError, ValueError):
                pass
            raise bad(f"metric `{excerpt(name, 40)}` has the value {excerpt(repr(v), 40)}, "
                      "not a number")


def parse_report(report: Any, *, property: str | None = None,
                 request: dict[str, Any] | None = None,
                 what: str = "a report") -> ParsedReport:
    """A runReport response (already `json.loads`-ed) -> columns of strings and numbers.

    Handles GA's empty answer (no `rows`, no `rowCount`) and enum types as names or numbers,
    and reads an omitted value as proto3 JSON's default ("" for a dimension, "0" for a
    metric). Anything else that is not a report (not an object, rows that are not objects,
    fewer values than headers, a metric value that is not a number, a `rowCount` that is not
    a count, or, given the `request`, a requested dimension or metric missing from the
    headers) raises MalformedAnswer for `property`.
    """
    def bad(detail: str) -> MalformedAnswer:
        return _malformed(property, what, detail)

    if not isinstance(report, dict):
        raise bad(f"the report is {type(report).__name__}, not a JSON object")
    dheads = _headers(report, "dimensionHeaders", bad)
    mheads = _headers(report, "metricHeaders", bad)
    dims = [h["name"] for h in dheads]
    mets = [h["name"] for h in mheads]
    if request is not None:
        from ga_sync.redact import excerpt
        for key, got in (("dimensions", dims), ("metrics", mets)):
            wanted = [d.get("name") for d in request.get(key, [])]
            missing = [n for n in wanted if n not in got]
            if missing:
                raise bad(f"the {key} {excerpt(', '.join(map(str, missing)), 40)} asked for "
                          "are missing from its headers")
    types = {h["name"]: _METRIC_TYPE_NAMES.get(h.get("type"), h.get("type", "TYPE_INTEGER"))
             for h in mheads}
    rows = report.get("rows") or []
    if not isinstance(rows, list):
        raise bad("`rows` is not a list")
    columns: dict[str, list[Any]] = {}
    try:
        for i, name in enumerate(dims):
            columns[name] = [r["dimensionValues"][i].get("value", "") for r in rows]
        for i, name in enumerate(mets):
            columns[name] = [r["metricValues"][i].get("value", "0") for r in rows]
    except (KeyError, IndexError, TypeError, AttributeError):
        problem = next((p for p in (_row_problem(r, dims, mets) for r in rows) if p),
                       "a row has the wrong shape")
        raise bad(problem) from None
    for name in mets:
        _check_numbers(name, columns[name], bad)

    totals = report.get("totals") or []
    if not isinstance(totals, list):
        raise bad("`totals` is not a list")

    def row_dict(r: Any) -> dict[str, Any]:
        # a totals row may leave out its dimension values (read as ""), never its metrics
        problem = _row_problem(r, dims if not isinstance(r, dict) or "dimensionValues" in r
                               else [], mets)
        if problem:
            raise bad(problem.replace("a row", "a totals row", 1))
        out = {d: r.get("dimensionValues", [{}] * len(dims))[i].get("value", "")
               for i, d in enumerate(dims)}
        for i, m in enumerate(mets):
            value = r["metricValues"][i].get("value", "0")
            _check_numbers(m, [value], bad)
            out[m] = float(value or 0)
        return out

    raw_count = report.get("rowCount", 0) or 0
    try:
        if isinstance(raw_count, bool) or isinstance(raw_count, float):
            raise ValueError
        row_count = int(raw_count)
    except (TypeError, ValueError):
        row_count = -1
    if row_count < 0:
        from ga_sync.redact import excerpt
        raise bad(f"`rowCount` is {excerpt(repr(raw_count), 30)}, not a count of rows")
    metadata = report.get("metadata") or {}
    quota = report.get("propertyQuota")
    if not isinstance(metadata, dict) or not (quota is None or isinstance(quota, dict)):
        raise bad("`metadata` or `propertyQuota` is not an object")
    return ParsedReport(columns=columns, metric_types=types, row_count=row_count,
                        totals=[row_dict(t) for t in totals], metadata=metadata, quota=quota)


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
    """POST to the Data API through the client's own authorized session, parse with json.loads.

    Goes through `clients.call` (retries, per-property errors). An answer with a success status
    that is not a JSON object (an HTML page, truncated or empty text) raises MalformedAnswer.
    """
    from google.api_core import exceptions as gexc

    transport = conn.data()._transport
    url = f"{transport._host}/v1beta/{property}:{method}"
    headers = {"Content-Type": "application/json",
               "x-goog-api-client": f"gl-python ga-sync/{_version()}"}
    what = f"run reports ({method})"

    def send() -> dict[str, Any]:
        with conn.data_slot(property):
            response = transport._session.post(url, params={"$alt": "json;enum-encoding=int"},
                                               data=json.dumps(body), headers=headers,
                                               timeout=TIMEOUT)
        if response.status_code >= 400:
            raise gexc.from_http_response(response)
        try:
            with _gc_paused():
                answer = json.loads(response.content)
        except ValueError:  # JSONDecodeError, UnicodeDecodeError
            answer = None
        if not isinstance(answer, dict):
            from ga_sync.redact import excerpt
            kind = response.headers.get("Content-Type", "no content type")
            text = response.content[:200].decode("utf-8", "replace")
            shown = f": {excerpt(text)!r}" if text.strip() else ": an empty body"
            raise _malformed(property, what, f"HTTP {response.status_code} with "
                             f"{excerpt(kind, 40)} that is not a JSON object{shown}")
        return answer

    return call(send, policy=conn.retry, property=property, what=what, paced=False)


def _version() -> str:
    from ga_sync import __version__
    return __version__


#: At most this many offset pages per report: GA's rowCount and offsets cannot make a pull
#: endless (at 100,000 rows a page, 100 million rows).
MAX_PAGES = 1000


def _rows(parsed: ParsedReport) -> int:
    return len(next(iter(parsed.columns.values()), []))


def fetch(conn: Connection, property: str,
          requests: list[tuple[str, dict[str, Any]]]) -> dict[str, ParsedReport]:
    """One batchRunReports call (at most 5 requests) plus offset pages for any long report.

    Every answer is checked (see `parse_report`): the batch must hold one report per request,
    and paging must make progress (no page repeating rows already received, at most
    `MAX_PAGES` pages), otherwise MalformedAnswer for this property.
    """
    if len(requests) > 5:
        raise ValueError("batchRunReports takes at most 5 requests")
    what = "run reports (batchRunReports)"
    data = _post(conn, property, "batchRunReports", {"requests": [r for _, r in requests]})
    reports = data.get("reports")
    if not isinstance(reports, list) or len(reports) != len(requests):
        n = len(reports) if isinstance(reports, list) else "no"
        raise _malformed(property, what, f"{n} reports for {len(requests)} requests")
    out: dict[str, ParsedReport] = {}
    for (name, body), raw in zip(requests, reports):
        label = f"run reports (the {name} report)"
        with _gc_paused():
            parsed = parse_report(raw, property=property, request=body, what=label)
        got = _rows(parsed)
        offset = got
        first_rows = {tuple(c[0] for c in parsed.columns.values())} if got else set()
        pages = 0
        while got and offset < parsed.row_count:
            pages += 1
            if pages > MAX_PAGES:
                raise _malformed(property, label, f"rowCount says {parsed.row_count} rows, but "
                                 f"{MAX_PAGES} pages brought only {offset}")
            raw_page = _post(conn, property, "runReport", {**body, "offset": str(offset)})
            with _gc_paused():
                page = parse_report(raw_page, property=property, request=body, what=label)
            n = _rows(page)
            if n == 0:
                break
            if list(page.columns) != list(parsed.columns):
                raise _malformed(property, label, f"the page at offset {offset} has other "
                                 "columns than the first page")
            first = tuple(c[0] for c in page.columns.values())
            if first in first_rows:
                raise _malformed(property, label, f"the page at offset {offset} repeats rows "
                                 f"already received (rowCount {parsed.row_count}): the paging "
                                 "does not advance")
            first_rows.add(first)
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
    #: The currency `value` is in: None or the report's currency when it counts in the totals;
    #: the property's currency for a `value: event` goal GA reports in another currency and no
    #: --fx rate converts (then `in_total` is False: its value is in no total).
    currency: str | None = None
    in_total: bool = True
    fx_rate: float | None = None  # the rate `value` was converted with, from the property's currency

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


#: Exchange rates the user gives (`--fx USD:EUR=0.92`): (from, to) -> how many `to` one `from` is.
FxRates = Mapping[tuple[str, str], float]


def parse_fx(values: Sequence[str]) -> dict[tuple[str, str], float]:
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
            raise GaSyncError(f"--fx {text!r} is not a rate: write FROM:TO=RATE, e.g. "
                              "--fx USD:EUR=0.92 for 1 USD = 0.92 EUR")
        for code in (source, target):
            if code not in CURRENCY_CODES:
                raise GaSyncError(f"--fx {text!r}: {code!r} is not an ISO 4217 currency code "
                                  "(e.g. USD, EUR, GBP)")
        if not math.isfinite(rate) or rate <= 0:
            raise GaSyncError(f"--fx {text!r}: the rate must be a number above 0, e.g. "
                              f"--fx {source}:{target}=0.92")
        if source == target and rate != 1:
            raise GaSyncError(f"--fx {text!r}: 1 {source} is 1 {source}")
        if out.get((source, target), rate) != rate:
            raise GaSyncError(f"--fx gives two rates for {source}:{target}; give one")
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


def compute(spec: Spec, property: str, period: Period, reports: dict[str, ParsedReport],
            *, index: int = 0, ranges: int = 1, currency: str | None = None,
            fx: FxRates | None = None) -> ReportResult:
    """The contract's numbers for one property and one date range, from parsed reports.

    Money is never mixed: the report's currency is the spec's (goal values are written in
    it); GA reports event values (`value: event` goals) in the property's currency, `currency`
    here or else the Data API's `currencyCode`. When the two differ, those values are
    converted with a rate from `fx` ({("USD", "EUR"): 0.92} for 1 USD = 0.92 EUR), or, with no
    rate, kept in the property's currency and out of every total.
    """
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
    meta = totals.metadata
    own = spec.currency
    ga_currency = str(currency or meta.get("currencyCode") or own).upper()
    rate = fx_rate(fx, ga_currency, own)

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
        result = GoalResult(g.event, g.tier, conv, _ratio(conv, basis), val, g.counting,
                            currency=own)
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
        with_any = 0.0
        if name in reports:
            df = _by_range(reports[name], index, many)
            with_any = float(df["sessions"].sum()) if "sessions" in df else 0.0
        return TierResult(conv, _ratio(conv, basis), _ratio(with_any, sessions), val)

    macro, micro = tier(MACRO), tier(MICRO)
    total_value = macro.value + micro.value
    return ReportResult(
        property=property, client=spec.client, period=period, currency=own,
        rate_basis=spec.rate_basis, sessions=sessions, users=users, goals=goals,
        macro=macro, micro=micro, total_value=total_value,
        value_per_session=_ratio(total_value, sessions),
        daily=_daily(spec, reports, index, many, ga_currency=ga_currency, rate=rate),
        quota=totals.quota, property_currency=ga_currency)


def _daily(spec: Spec, reports: dict[str, ParsedReport], index: int, many: bool, *,
           ga_currency: str | None = None, rate: float | None = 1.0) -> Any:
    """Daily rows for the history store: date, event, conversions, value, sessions, users,
    currency.

    Every day GA returned totals for also gets a row with event "" (no conversions), so the
    store learns the day's sessions and users even when no goal event fired that day. Event
    values (`value: event`) in another currency than the spec's are converted with `rate`, or
    with no rate kept in `ga_currency`, which the row's `currency` then says.
    """
    import pandas as pd
    cols = ["date", "event", "conversions", "value", "sessions", "users", "currency"]
    own = spec.currency
    ga_currency = ga_currency or own
    daily = _by_range(reports["daily"], index, many)
    totals = _by_range(reports["totals"], index, many)
    if totals.empty or "date" not in totals:
        return pd.DataFrame(columns=cols)
    day = totals.set_index("date")[["sessions", "totalUsers"]]
    goals = {g.event: g for g in spec.goals}
    frames = [pd.DataFrame({"date": day.index, "event": "", "conversions": 0.0, "value": 0.0,
                            "currency": own})]
    if not daily.empty:
        daily = daily[daily["eventName"].isin(list(goals))]
        counting = daily["eventName"].map(lambda e: goals[e].counting)
        unit = daily["eventName"].map(lambda e: goals[e].value).astype(float)
        conversions = daily["sessions"].where(counting == ONCE_PER_SESSION, daily["eventCount"])
        event_value = daily["eventValue"].astype(float)
        currency = pd.Series(own, index=daily.index, dtype=object)
        if ga_currency != own:
            if rate is None:
                currency = currency.where(unit.notna(), ga_currency)
            else:
                event_value = event_value * rate
        value = event_value.where(unit.isna(), conversions * unit)
        frames.append(pd.DataFrame({"date": daily["date"], "event": daily["eventName"],
                                    "conversions": conversions.astype(float),
                                    "value": value.astype(float), "currency": currency}))
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
    out.extend(_currency_warnings(result))
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
                    key_events: list[KeyEventState] | None = None,
                    fx: FxRates | None = None) -> ReportResult:
    """Pull and compute one property's report (and the previous period's, with `compare`).

    `fx` converts event values from the property's currency to the spec's (see `compute`).

    `key_events`, the property's key events as the Admin API lists them, make the warnings
    about GA's own key-event counts say why they differ (marked when, counting how).
    """
    periods = [period, period.previous()] if compare else [period]
    requests = build_requests(spec, periods)
    reports = fetch(conn, property, requests)
    meta = reports["totals"].metadata
    today = today or today_in(time_zone or meta.get("timeZone") or "UTC", property=property)
    many = len(periods) > 1
    results = []
    for i, p in enumerate(periods):
        r = compute(spec, property, p, reports, index=i, ranges=len(periods), fx=fx)
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


def check_dates(start: date, end: date, *, compare: bool = False,
                today: date | None = None) -> Period:
    """The period from --start/--end, or a GaSyncError saying which bound GA4 refuses.

    GA4 has data from 2015-08-14 (the Data API refuses earlier dates), none after today;
    `today` is the local date, and a period ending the day after it passes here (a property's
    time zone may be ahead) and is checked again per property. With `compare`, the previous
    period must start on or after 2015-08-14 too.
    """
    if end < start:
        raise GaSyncError(f"the period ends ({end}) before it starts ({start}): swap the dates")
    period = Period(start, end)
    check_period(period, compare=compare, today=today)
    return period


def check_period(period: Period, *, compare: bool = False, today: date | None = None) -> None:
    """Refuse a period GA4 cannot have data for, before anything is pulled."""
    today = today or date.today()
    if period.start < EARLIEST_DATE:
        raise GaSyncError(f"the period {period} starts before {EARLIEST_DATE}, GA4's first day "
                          "(the Data API refuses earlier dates): start on or after it")
    if period.end > today + timedelta(days=1):
        raise GaSyncError(f"the period {period} ends after today ({today}): GA has no data "
                          "yet; end on or before today")
    if compare:
        before = period.previous()
        if before.start < EARLIEST_DATE:
            raise GaSyncError(f"comparing with the previous period would compare with {before}, which starts "
                              f"before {EARLIEST_DATE}, GA4's first day: start the period on or "
                              f"after {EARLIEST_DATE + timedelta(days=period.days)}")
