"""The sandbox's report engine: a GA4 `RunReportRequest` over the synthetic event log.

It validates a request the way the Data API does (limits, names, dates; see
https://developers.google.com/analytics/devguides/reporting/data/v1/rest/v1beta/properties/runReport),
computes the report with numpy group ids over `traffic.event_log`, and writes the response as a
proto3-JSON dict directly (building proto-plus objects row by row is far too slow for big
reports). Every dimension is handled as integer codes into a list of category strings, so
filters are evaluated once per distinct value, not once per event.
"""

from __future__ import annotations

import math
import re
from bisect import bisect_left
from collections import OrderedDict
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from threading import Lock
from typing import Any, Callable, Protocol
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from google.analytics.data_v1beta.types import data as data_types

from ga_sync.sandbox import derived, fields
from ga_sync.sandbox.catalog import DEPRECATED, DIMENSIONS, METRICS, incompatible
from ga_sync.sandbox.routing import ApiError
from ga_sync.sandbox.traffic import (NUMBER_COLUMNS, PURCHASE_LIKE, SESSION_COLUMNS, event_log,
                                     fingerprint)

MAX_DIMENSIONS = 9
MAX_METRICS = 10
MAX_DATE_RANGES = 4
DEFAULT_LIMIT = 10_000
MAX_LIMIT = 250_000
FIRST_DATE = date(2015, 8, 14)  # GA's Data API has no data before this day
SCHEMA_URL = "https://developers.google.com/analytics/devguides/reporting/data/v1/api-schema"
ONCE_PER_SESSION = 2

PER_EVENT_METRICS = ("keyEvents", "sessionKeyEventRate")
METRIC_TYPE_NUMBERS = {t.name: t.value for t in data_types.MetricType}
_DATE_AGO = re.compile(r"^(\d+)daysAgo$")
_YMD = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class PropertyLike(Protocol):
    """What the engine reads of a sandbox property (state.PropertyRecord has it)."""

    id: str
    time_zone: str
    currency_code: str
    service_level: str
    key_events: dict[str, Any]
    traffic: dict | None


def bad(message: str) -> ApiError:
    return ApiError(400, message)


def key_event_methods(record: PropertyLike) -> dict[str, int]:
    """The property's current key events: event name -> counting method (1 or 2)."""
    return {ke.event_name: int(ke.counting_method) for ke in record.key_events.values()}


def canonical_metric(name: str, key_events: dict[str, int]) -> str | None:
    """The metric's current API name, or None when the property has no such metric."""
    base, _, event = name.partition(":")
    base = DEPRECATED.get(base, base)
    if event:
        return f"{base}:{event}" if base in PER_EVENT_METRICS and event in key_events else None
    return base if base in METRICS else None


def metric_type(name: str) -> str:
    return "TYPE_FLOAT" if ":" in name else METRICS[name][0]


def property_today(time_zone: str) -> date:
    """Today in the property's time zone: GA resolves `today` and `NdaysAgo` there."""
    try:
        return datetime.now(ZoneInfo(time_zone)).date()
    except (KeyError, ValueError):
        return datetime.now(timezone.utc).date()


def resolve_date(text: str, today: date, what: str) -> date:
    """`YYYY-MM-DD`, `today`, `yesterday` or `NdaysAgo` -> a date."""
    if text == "today":
        return today
    if text == "yesterday":
        return today - timedelta(days=1)
    m = _DATE_AGO.match(text)
    if m and int(m.group(1)) < 100_000:
        return today - timedelta(days=int(m.group(1)))
    if _YMD.match(text):
        try:
            return date.fromisoformat(text)
        except ValueError:
            pass
    raise bad(f"Invalid {what} '{text}'. Dates must be in the format YYYY-MM-DD, or relative: "
              "'today', 'yesterday', or 'NdaysAgo'.")


@dataclass
class Plan:
    """A validated request: resolved names and date ranges."""

    dimensions: list[str]          # canonical names of the headers, `dateRange` included
    dimension_headers: list[str]   # names as requested (GA echoes them)
    metrics: list[str]             # canonical names, in request order
    metric_headers: list[str]      # names as requested (GA echoes them)
    ranges: list[tuple[str, date, date]]
    key_events: dict[str, int]
    limit: int
    offset: int
    days: int = 0


def plan_request(record: PropertyLike, req: Any, today: date | None = None) -> Plan:
    """Check a RunReportRequest (raw protobuf) like GA; raise 400 ApiError when it is wrong."""
    today = today or property_today(record.time_zone)
    kes = key_event_methods(record)
    dims = [d.name for d in req.dimensions]
    mets = [m.name for m in req.metrics]
    if len(dims) > MAX_DIMENSIONS:
        raise bad(f"Requests are limited to {MAX_DIMENSIONS} dimensions within a request; "
                  f"this request has {len(dims)} dimensions.")
    if len(mets) > MAX_METRICS:
        raise bad(f"Requests are limited to {MAX_METRICS} metrics within a request; "
                  f"this request has {len(mets)} metrics.")
    if req.HasField("cohort_spec") or len(req.comparisons):
        raise ApiError(501, "The sandbox does not implement cohort reports or comparisons.")
    if not dims and not mets:
        raise bad("A request must have at least one dimension or one metric.")
    canon_dims = []
    for d in dims:
        c = DEPRECATED.get(d, d)
        if c not in DIMENSIONS and c != "dateRange":
            raise bad(f"Field {d} is not a valid dimension. For a list of valid dimensions and "
                      f"metrics, see {SCHEMA_URL}")
        canon_dims.append(c)
    canon_mets = []
    for m in mets:
        c = canonical_metric(m, kes)
        if c is None:
            raise bad(f"Field {m} is not a valid metric. For a list of valid dimensions and "
                      f"metrics, see {SCHEMA_URL}")
        canon_mets.append(c)
    for names, kind in ((dims, "dimension"), (mets, "metric")):
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise bad(f"Duplicate {kind} name: {sorted(dup)[0]}.")
    clash = incompatible(canon_dims, [m.partition(":")[0] for m in canon_mets])
    if clash:
        raise bad(f"Please remove {clash[0]} to make the request compatible. The request's "
                  "dimensions & metrics are incompatible. To learn more, see "
                  "https://ga-dev-tools.google/ga4/dimensions-metrics-explorer/")
    if not req.date_ranges:
        raise bad("Must specify at least one date range.")
    if len(req.date_ranges) > MAX_DATE_RANGES:
        raise bad(f"Requests are limited to {MAX_DATE_RANGES} date ranges; this request has "
                  f"{len(req.date_ranges)}.")
    ranges = []
    for i, dr in enumerate(req.date_ranges):
        start = resolve_date(dr.start_date, today, "startDate")
        end = resolve_date(dr.end_date, today, "endDate")
        if start > end:
            raise bad(f"Invalid date range: startDate {dr.start_date} is after endDate "
                      f"{dr.end_date} in date range {i}.")
        if start < FIRST_DATE:
            raise bad(f"Invalid date range: startDate {dr.start_date} is before "
                      f"{FIRST_DATE.isoformat()}, the earliest date the API supports.")
        if dr.name.startswith(("date_range_", "RESERVED_")):
            raise bad(f"Date range name {dr.name} must not start with 'date_range_' or "
                      "'RESERVED_'.")
        ranges.append((dr.name or f"date_range_{i}", start, end))
    headers, echoed = list(canon_dims), list(dims)
    if len(ranges) > 1 and "dateRange" not in headers:
        headers.append("dateRange")  # GA adds it so rows from different ranges stay apart
        echoed.append("dateRange")
    if req.limit < 0 or req.offset < 0:
        raise bad("limit and offset must not be negative.")
    limit = min(req.limit or DEFAULT_LIMIT, MAX_LIMIT)
    days = sum((e - s).days + 1 for _, s, e in ranges)
    return Plan(headers, echoed, canon_mets, mets, ranges, kes, limit, req.offset, days)


@dataclass
class Events:
    """The events of a report's date ranges: integer columns plus the categories they index."""

    columns: dict[str, np.ndarray]  # session and user are dense codes, not the log's ids
    # (never modify an array in place: they may be shared with the cache)
    categories: dict[str, list[str]]

    def __len__(self) -> int:
        return int(self.columns["event"].size)

    def take(self, mask: np.ndarray) -> "Events":
        return Events({k: v[mask] for k, v in self.columns.items()}, self.categories)


_BASES: "OrderedDict[tuple[str, date, date], tuple[dict[str, np.ndarray], dict[str, list[str]]]]"
_BASES = OrderedDict()
_BASES_LOCK = Lock()


def _base(record: PropertyLike, lo: date, hi: date) -> tuple[dict[str, np.ndarray],
                                                              dict[str, list[str]]]:
    """The event log of [lo, hi] as integer columns; the last few are cached, since a batch
    usually asks several reports over the same days. With rules or audience triggers
    (`record.machinery`), the events GA makes from them are in it (derived.py)."""
    versions = getattr(record, "machinery", ())  # rules and audience triggers (derived.py)
    key = (fingerprint(record.traffic or {}), derived.versions_key(versions), lo, hi)
    with _BASES_LOCK:
        if key in _BASES:
            _BASES.move_to_end(key)
            return _BASES[key]
    if versions:
        log = derived.event_log(record.traffic, lo, hi, record.time_zone, versions)
    else:
        log = event_log(record.traffic, lo, hi, record.time_zone)
    sessions = log["session_id"].to_numpy()
    # A session's events are contiguous in the log, so its dense code is a running count.
    changed = np.concatenate(([bool(sessions.size)], sessions[1:] != sessions[:-1]))
    cols = {
        "date": log["date"].cat.codes.to_numpy(np.int64),
        "event": log["event_name"].cat.codes.to_numpy(np.int64),
        "path": log["page_path"].cat.codes.to_numpy(np.int64),
        "location": log["page_location"].cat.codes.to_numpy(np.int64),
        "country": log["country"].cat.codes.to_numpy(np.int64),
        "session": np.cumsum(changed) - 1,
        "user": pd.factorize(log["user_id"])[0].astype(np.int64),
        "value": log["value"].to_numpy(dtype=float),
    }
    cats = {"date": list(log["date"].cat.categories),
            "event": list(log["event_name"].cat.categories),
            "path": list(log["page_path"].cat.categories),
            "location": list(log["page_location"].cat.categories),
            "country": list(log["country"].cat.categories)}
    for name in SESSION_COLUMNS:  # the session's attributes (fields.py reads them)
        cols[name] = log[name].cat.codes.to_numpy()  # int8/int16 codes: few categories
        cats[name] = list(log[name].cat.categories)
    for name in NUMBER_COLUMNS:
        cols[name] = log[name].to_numpy()
    # signed in with a user id (journey profiles only; fields.py: signedInWithUserId)
    cols["signed"] = (log["signed_in_user_id"].notna().to_numpy().astype(np.int8)
                      if "signed_in_user_id" in log.columns else np.zeros(len(log), np.int8))
    with _BASES_LOCK:
        _BASES[key] = (cols, cats)
        while len(_BASES) > 6:
            _BASES.popitem(last=False)
    return cols, cats


def key_event_starts(record: PropertyLike) -> dict[str, tuple[int, str, float]]:
    """Each key event: (counting method, first day it counts as 'YYYYMMDD', default value).

    GA counts an event as a key event from the time it was marked: "Marking an event as a key
    event affects reports from time of creation. It doesn't change historic data" (the live
    metadata's description of `keyEvents`). The sandbox works in whole days of the property's
    time zone, from the day of `createTime`. The default value (NaN when none) fills the
    `value` parameter of key-event occurrences that arrive without one.
    """
    zone = ZoneInfo(record.time_zone or "UTC")
    out = {}
    for ke in record.key_events.values():
        created = getattr(ke, "create_time", None)
        start = created.astimezone(zone).strftime("%Y%m%d") if created else "00000000"
        dv = getattr(ke, "default_value", None)
        default = float(dv.numeric_value) if dv is not None and dv.currency_code else float("nan")
        out[ke.event_name] = (int(ke.counting_method), start, default)
    return out


def _with_key_events(cols: dict[str, np.ndarray], cats: dict[str, list[str]],
                     record: PropertyLike) -> dict[str, np.ndarray]:
    """Add per-event columns: `kmethod` (counting method, 0 when the event was not a key event
    on its day) and `kvalue` (the value parameter, or the key event's default value)."""
    starts = key_event_starts(record)
    names, days = cats["event"], cats["date"]
    method = np.array([starts[n][0] if n in starts else 0 for n in names] or [0], dtype=np.int64)
    first = np.array([bisect_left(days, starts[n][1]) if n in starts else len(days) + 1
                      for n in names] or [0], dtype=np.int64)
    default = np.array([starts[n][2] if n in starts else np.nan for n in names] or [np.nan])
    ev, day, value = cols["event"], cols["date"], cols["value"]
    keyed = (method[ev] > 0) & (day >= first[ev]) if ev.size else np.zeros(0, dtype=bool)
    fill = keyed & np.isnan(value) & ~np.isnan(default[ev]) if ev.size else keyed
    return {**cols, "kmethod": np.where(keyed, method[ev] if ev.size else 0, 0),
            "kvalue": np.where(fill, default[ev] if ev.size else 0.0, value)}


def day_elapsed(time_zone: str) -> float:
    """The share of today already past in the property's time zone (0.0 at midnight)."""
    try:
        now = datetime.now(ZoneInfo(time_zone))
    except (KeyError, ValueError):
        now = datetime.now(timezone.utc)
    return (now.hour * 3600 + now.minute * 60 + now.second) / 86400


def _today_so_far(cols: dict[str, np.ndarray], cats: dict[str, list[str]],
                  record: PropertyLike, today: date) -> dict[str, np.ndarray]:
    """Drop the part of today that has not happened yet: GA has only the sessions so far.

    The synthetic log holds whole days; today keeps the share of its sessions that matches the
    share of the day elapsed in the property's time zone (sessions are in no particular order
    of time within a day, so the first ones stand for the morning).
    """
    key = today.strftime("%Y%m%d")
    days = cats["date"]
    if not days or days[-1] != key or not cols["date"].size:
        return cols
    code = len(days) - 1
    a = int(np.searchsorted(cols["date"], code))
    sessions = cols["session"][a:]
    if not sessions.size:
        return cols
    first, last = int(sessions[0]), int(sessions[-1])
    cut = first + int(round((last - first + 1) * day_elapsed(record.time_zone)))
    keep = np.ones(cols["date"].size, dtype=bool)
    keep[a:] = sessions < cut
    return {k: v[keep] for k, v in cols.items()}


def load_events(record: PropertyLike, plan: Plan, today: date) -> Events:
    """The event log of every date range, stacked; an event in two ranges appears twice."""
    lo = min(s for _, s, _ in plan.ranges)
    hi = min(max(e for _, _, e in plan.ranges), today)  # no data from the future
    names = [n for n, _, _ in plan.ranges]
    if hi < lo:
        empty = {k: np.empty(0, dtype=np.int64) for k in
                 ("date", "event", "path", "location", "country", "range", "session",
                  "user")}
        empty["value"] = np.empty(0)
        empty["kmethod"] = np.empty(0, dtype=np.int64)
        empty["kvalue"] = np.empty(0)
        empty.update(fields.empty_columns())
        return Events(empty, {"date": [], "event": [], "path": [], "location": [],
                              "country": [], "range": names,
                              **{k: [] for k in SESSION_COLUMNS}})
    base, cats = _base(record, lo, hi)
    base = _with_key_events(_today_so_far(base, cats, record, today), cats, record)
    parts = []
    for i, (_, s, e) in enumerate(plan.ranges):
        # days are in order in the log, so a date range is a slice (a view, no copy)
        a, b = np.searchsorted(base["date"], [(s - lo).days, (e - lo).days + 1])
        part = {k: v[a:b] for k, v in base.items()}
        part["range"] = np.full(b - a, i, dtype=np.int64)
        parts.append(part)
    cols = parts[0] if len(parts) == 1 else {k: np.concatenate([p[k] for p in parts])
                                             for k in parts[0]}
    return Events(cols, {**cats, "range": names})


def _weekday(yyyymmdd: str) -> str:
    return str((datetime.strptime(yyyymmdd, "%Y%m%d").weekday() + 1) % 7)  # 0 = Sunday


def _after_host(url: str) -> str:
    rest = url.split("://", 1)[-1]
    i = rest.find("/")
    return rest[i:] if i >= 0 else "/"


def dimension_codes(ev: Events, name: str, key_events: dict[str, int]) -> tuple[np.ndarray,
                                                                                list[str]]:
    """A dimension as (codes per event, category strings)."""
    direct = {"date": "date", "eventName": "event", "pagePath": "path",
              "pageLocation": "location", "dateRange": "range", "country": "country"}
    if name in direct:
        col = direct[name]
        return ev.columns[col], ev.categories[col]
    if name == "isKeyEvent":  # per event: marked on that event's day or not
        return (ev.columns["kmethod"] > 0).astype(np.int64), ["false", "true"]
    derive: dict[str, tuple[str, Callable[[str], str]]] = {
        "dayOfWeek": ("date", _weekday),
        "pagePathPlusQueryString": ("location", _after_host),
    }
    if name not in derive:
        return fields.dimension_codes(ev, name)
    col, fn = derive[name]
    mapped = [fn(c) for c in ev.categories[col]]
    cats = sorted(set(mapped))
    index = {c: i for i, c in enumerate(cats)}
    lookup = np.array([index[m] for m in mapped] or [0], dtype=np.int64)
    return lookup[ev.columns[col]], cats


def _string_predicate(flt: Any) -> Callable[[str], bool]:
    """A stringFilter or inListFilter as a function of one dimension value."""
    kind = flt.WhichOneof("one_filter")
    if kind == "in_list_filter":
        lf = flt.in_list_filter
        if lf.case_sensitive:
            wanted = set(lf.values)
            return lambda v: v in wanted
        lowered = {x.lower() for x in lf.values}
        return lambda v: v.lower() in lowered
    if kind == "empty_filter":
        return lambda v: v in ("", "(not set)")
    if kind != "string_filter":
        raise bad(f"Filter on dimension {flt.field_name} must be a string, in-list or empty "
                  "filter.")
    sf = flt.string_filter
    M = data_types.Filter.StringFilter.MatchType
    value = sf.value if sf.case_sensitive else sf.value.lower()
    norm: Callable[[str], str] = (lambda v: v) if sf.case_sensitive else str.lower
    mt = sf.match_type
    if mt in (M.FULL_REGEXP, M.PARTIAL_REGEXP):
        try:
            rx = re.compile(sf.value, 0 if sf.case_sensitive else re.IGNORECASE)
        except re.error as exc:
            raise bad(f"Invalid regular expression '{sf.value}': {exc}.") from None
        if mt == M.FULL_REGEXP:
            return lambda v: rx.fullmatch(v) is not None
        return lambda v: rx.search(v) is not None
    tests: dict[int, Callable[[str], bool]] = {
        M.BEGINS_WITH: lambda v: norm(v).startswith(value),
        M.ENDS_WITH: lambda v: norm(v).endswith(value),
        M.CONTAINS: lambda v: value in norm(v),
    }
    return tests.get(mt, lambda v: norm(v) == value)


def dimension_mask(ev: Events, expr: Any, key_events: dict[str, int]) -> np.ndarray:
    """Which events pass a dimension FilterExpression (raw protobuf)."""
    kind = expr.WhichOneof("expr")
    if kind == "and_group":
        mask = np.ones(len(ev), dtype=bool)
        for sub in expr.and_group.expressions:
            mask &= dimension_mask(ev, sub, key_events)
        return mask
    if kind == "or_group":
        mask = np.zeros(len(ev), dtype=bool)
        for sub in expr.or_group.expressions:
            mask |= dimension_mask(ev, sub, key_events)
        return mask
    if kind == "not_expression":
        return ~dimension_mask(ev, expr.not_expression, key_events)
    if kind != "filter":
        raise bad("A filter expression must set one of andGroup, orGroup, notExpression or "
                  "filter.")
    name = DEPRECATED.get(expr.filter.field_name, expr.filter.field_name)
    if name not in DIMENSIONS and name not in ("dateRange", "minutesAgo"):
        raise bad(f"Field {expr.filter.field_name} is not a valid dimension. For a list of "
                  f"valid dimensions and metrics, see {SCHEMA_URL}")
    codes, cats = dimension_codes(ev, name, key_events)
    test = _string_predicate(expr.filter)
    passing = np.array([test(c) for c in cats] or [False], dtype=bool)
    return passing[codes]


def _distinct(groups: np.ndarray, n_groups: int, ids: np.ndarray,
              mask: np.ndarray | None = None) -> np.ndarray:
    """Distinct `ids` (dense codes) per group, e.g. sessions per eventName.

    A bitmap when groups x ids is small, else a sort; np.unique is several times slower.
    """
    if mask is not None:
        groups, ids = groups[mask], ids[mask]
    if ids.size == 0:
        return np.zeros(n_groups)
    width = int(ids.max()) + 1
    pairs = groups * width + ids
    if n_groups * width <= 20_000_000:
        seen = np.zeros(n_groups * width, dtype=bool)
        seen[pairs] = True
        return seen.reshape(n_groups, width).sum(axis=1).astype(float)
    pairs = np.sort(pairs)
    first = np.concatenate(([True], pairs[1:] != pairs[:-1]))
    return np.bincount(pairs[first] // width, minlength=n_groups).astype(float)


def _ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b > 0, a / np.where(b > 0, b, 1), 0.0)


def key_event_weights(ev: Events, key_events: dict[str, int]) -> np.ndarray:
    """1.0 for each event GA counts as a key event, honouring the counting method and the day
    the key event was created (`key_events` names the property's current key events).

    ONCE_PER_SESSION counts a (date range, session, event) once, at its first occurrence.
    """
    names = ev.categories["event"]
    m = ev.columns["kmethod"]  # 0 where the event was not (yet) a key event that day
    weight = (m > 0).astype(float)
    once = np.flatnonzero(m == ONCE_PER_SESSION)
    if once.size:
        c = ev.columns
        n_ev, n_sess = len(names) + 1, int(c["session"].max()) + 1
        keys = (c["range"][once] * n_sess + c["session"][once]) * n_ev + c["event"][once]
        _, first = np.unique(keys, return_index=True)
        weight[once] = 0.0
        weight[once[first]] = 1.0
    return weight


def aggregate(ev: Events, groups: np.ndarray, n: int, metrics: list[str],
              key_events: dict[str, int]) -> dict[str, np.ndarray]:
    """Each metric per group, as floats."""
    c = ev.columns
    names = ev.categories["event"]
    code = {e: i for i, e in enumerate(names)}
    cache: dict[str, np.ndarray] = {}

    def get(name: str) -> np.ndarray:
        if name in cache:
            return cache[name]
        if name == "eventCount":
            out = np.bincount(groups, minlength=n).astype(float)
        elif name == "eventValue":
            out = np.bincount(groups, weights=np.nan_to_num(c["kvalue"]), minlength=n)
        elif name == "sessions":
            out = _distinct(groups, n, c["session"])
        elif name in ("totalUsers", "activeUsers"):
            out = _distinct(groups, n, c["user"])
        elif name == "newUsers":
            out = _distinct(groups, n, c["user"], c["event"] == code.get("first_visit", -1))
        elif name == "screenPageViews":
            out = np.bincount(groups, weights=(c["event"] == code.get("page_view", -1)),
                              minlength=n)
        elif name == "purchaseRevenue":
            buy = np.isin(c["event"], [code[e] for e in PURCHASE_LIKE if e in code])
            out = np.bincount(groups, weights=np.where(buy, np.nan_to_num(c["value"]), 0.0),
                              minlength=n)
        elif name == "keyEvents":
            out = np.bincount(groups, weights=key_event_weights(ev, key_events), minlength=n)
        elif name.startswith("keyEvents:"):
            only = c["event"] == code.get(name.split(":", 1)[1], -1)
            w = key_event_weights(ev, key_events) * only
            out = np.bincount(groups, weights=w, minlength=n)
        elif name == "sessionKeyEventRate":
            keyed = c["kmethod"] > 0
            out = _ratio(_distinct(groups, n, c["session"], keyed), get("sessions"))
        elif name.startswith("sessionKeyEventRate:"):
            only = (c["event"] == code.get(name.split(":", 1)[1], -1)) & (c["kmethod"] > 0)
            out = _ratio(_distinct(groups, n, c["session"], only), get("sessions"))
        elif name == "userKeyEventRate":
            keyed = c["kmethod"] > 0
            out = _ratio(_distinct(groups, n, c["user"], keyed), get("totalUsers"))
        elif name == "eventCountPerUser":
            out = _ratio(get("eventCount"), get("activeUsers"))
        elif name == "eventsPerSession":
            out = _ratio(get("eventCount"), get("sessions"))
        else:  # the model's other metrics, or 0 for what it has no data for
            out = fields.metric(name, ev, groups, n, get)
        cache[name] = out
        return out

    return {m: get(m) for m in metrics}


def group_ids(code_columns: list[np.ndarray], radices: list[int],
              size: int) -> tuple[np.ndarray, np.ndarray]:
    """Group id per event (groups numbered in key order) and one event index per group."""
    if not code_columns:
        return np.zeros(size, dtype=np.int64), np.zeros(1 if size else 0, dtype=np.int64)
    span = math.prod(max(r, 1) for r in radices)
    if span >= 2**62:
        _, rep, inverse = np.unique(np.stack(code_columns), axis=1, return_index=True,
                                    return_inverse=True)
        return inverse.reshape(-1).astype(np.int64), rep
    key = np.zeros(size, dtype=np.int64)
    for col, r in zip(code_columns, radices):
        key = key * max(r, 1) + col
    if span <= 4 * size + 1_000_000:
        present = np.zeros(span, dtype=bool)
        present[key] = True
        inverse = (np.cumsum(present) - 1)[key]
    else:
        order = np.argsort(key, kind="stable")
        sk = key[order]
        inverse = np.empty(size, dtype=np.int64)
        inverse[order] = np.cumsum(np.concatenate(([True], sk[1:] != sk[:-1]))) - 1
    rep = np.empty(int(inverse.max()) + 1 if size else 0, dtype=np.int64)
    rep[inverse] = np.arange(size)
    return inverse.astype(np.int64), rep


def metric_mask(expr: Any, values: dict[str, np.ndarray], plan: Plan, n: int) -> np.ndarray:
    """Which report rows pass a metricFilter (evaluated after aggregation, as in GA)."""
    kind = expr.WhichOneof("expr")
    if kind in ("and_group", "or_group"):
        subs = getattr(expr, kind).expressions
        masks = [metric_mask(e, values, plan, n) for e in subs]
        if kind == "and_group":
            return np.logical_and.reduce(masks) if masks else np.ones(n, dtype=bool)
        return np.logical_or.reduce(masks) if masks else np.zeros(n, dtype=bool)
    if kind == "not_expression":
        return ~metric_mask(expr.not_expression, values, plan, n)
    flt = expr.filter
    names = dict(zip(plan.metric_headers, plan.metrics))
    name = names.get(flt.field_name) or canonical_metric(flt.field_name, plan.key_events)
    if name not in plan.metrics:
        raise bad(f"Field {flt.field_name} in the metric filter must be one of the request's "
                  "metrics.")
    x = values[name]

    def num(v: Any) -> float:
        return float(v.int64_value if v.WhichOneof("one_value") == "int64_value"
                     else v.double_value)

    which = flt.WhichOneof("one_filter")
    if which == "between_filter":
        return (x >= num(flt.between_filter.from_value)) & (x <= num(flt.between_filter.to_value))
    if which != "numeric_filter":
        raise bad(f"Filter on metric {flt.field_name} must be a numeric or between filter.")
    op, v = flt.numeric_filter.operation, num(flt.numeric_filter.value)
    Op = data_types.Filter.NumericFilter.Operation
    ops: dict[int, Callable[[], np.ndarray]] = {
        Op.LESS_THAN: lambda: x < v, Op.LESS_THAN_OR_EQUAL: lambda: x <= v,
        Op.GREATER_THAN: lambda: x > v, Op.GREATER_THAN_OR_EQUAL: lambda: x >= v,
    }
    return ops.get(op, lambda: np.isclose(x, v))()


def _rank(cats: list[str], order_type: int) -> np.ndarray:
    """Sort rank of each category for a dimension orderBy."""
    T = data_types.OrderBy.DimensionOrderBy.OrderType
    if order_type == T.NUMERIC:
        def key(c: str) -> tuple[int, float, str]:
            try:
                return (0, float(c), c)
            except ValueError:
                return (1, 0.0, c)
        ordered = sorted(range(len(cats)), key=lambda i: key(cats[i]))
    elif order_type == T.CASE_INSENSITIVE_ALPHANUMERIC:
        ordered = sorted(range(len(cats)), key=lambda i: (cats[i].lower(), cats[i]))
    else:
        ordered = sorted(range(len(cats)), key=lambda i: cats[i])
    rank = np.empty(max(len(cats), 1), dtype=np.int64)
    rank[ordered] = np.arange(len(cats))
    return rank


def order_rows(req: Any, plan: Plan, dims: list[tuple[np.ndarray, list[str]]],
           values: dict[str, np.ndarray], n: int) -> np.ndarray:
    """Row permutation for the request's orderBys; ties broken by dimensions, ascending."""
    keys: list[np.ndarray] = []
    names = dict(zip(plan.metric_headers, plan.metrics))
    for ob in req.order_bys:
        which = ob.WhichOneof("one_order_by")
        sign = -1 if ob.desc else 1
        if which == "metric":
            m = names.get(ob.metric.metric_name) or canonical_metric(ob.metric.metric_name,
                                                                     plan.key_events)
            if m not in values:
                raise bad(f"Field {ob.metric.metric_name} in orderBys must be one of the "
                          "request's metrics.")
            keys.append(sign * values[m])
        elif which == "dimension":
            d = DEPRECATED.get(ob.dimension.dimension_name, ob.dimension.dimension_name)
            if d not in plan.dimensions:
                raise bad(f"Field {ob.dimension.dimension_name} in orderBys must be one of the "
                          "request's dimensions.")
            codes, cats = dims[plan.dimensions.index(d)]
            keys.append(sign * _rank(cats, ob.dimension.order_type)[codes])
        else:
            raise bad("Pivot orderBys are only valid in runPivotReport.")
    if not req.order_bys and plan.metrics:
        keys.append(-values[plan.metrics[0]])
    keys += [_rank(cats, 0)[codes] for codes, cats in dims]
    if not keys:
        return np.arange(n)
    return np.lexsort(list(reversed(keys)))
