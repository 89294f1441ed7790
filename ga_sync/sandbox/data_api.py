"""Data API v1beta routes of the sandbox: runReport, batchRunReports and getMetadata.

Requests are parsed strictly with the official types (an unknown field is a 400, as GA's front
end answers), reports come from `query` over the property's synthetic traffic, written here as JSON, and a
per-property token ledger answers `propertyQuota`
(https://developers.google.com/analytics/devguides/reporting/data/v1/quotas). Refusing requests
once a quota is spent (429) is the server's job (faults.py); `token_cost` is there to share.
"""

from __future__ import annotations

import json
import math
import re
import time
import weakref
from dataclasses import dataclass, field
from datetime import date
from threading import Lock
from typing import Any

import numpy as np
from google.analytics.data_v1beta.types import analytics_data_api as api_types
from google.protobuf import json_format

from ga_sync.sandbox import catalog, derived, query
from ga_sync.sandbox.routing import ApiError, Route, route

MAX_BATCH = 5
_PID = r"properties/(?P<pid>[^/:]+)"
_UNKNOWN_FIELD = re.compile(r'has no field named "([^"]+)"')

# (standard, 360) limits of each quota bucket, from GA's quota page.
QUOTA_LIMITS: dict[str, tuple[int, int]] = {
    "tokensPerDay": (200_000, 2_000_000),
    "tokensPerHour": (40_000, 400_000),
    "concurrentRequests": (10, 50),
    "serverErrorsPerProjectPerHour": (10, 50),
    "potentiallyThresholdedRequestsPerHour": (120, 120),
    "tokensPerProjectPerHour": (14_000, 140_000),
}


def format_value(value: float, integer: bool) -> str:
    """A metric value as GA writes it: integers plain, floats without a trailing `.0`."""
    if integer or (math.isfinite(value) and value == int(value) and abs(value) < 1e15):
        return str(int(round(value)))
    return repr(float(f"{value:.12g}"))  # 12 significant digits hide float-sum noise


def _row(dim_values: list[str], metric_values: list[str]) -> dict[str, Any]:
    row: dict[str, Any] = {}
    if dim_values:
        row["dimensionValues"] = [{"value": v} for v in dim_values]
    if metric_values:  # proto3 JSON leaves empty lists out
        row["metricValues"] = [{"value": v} for v in metric_values]
    return row


def _rows(table_dims: list[tuple[np.ndarray, list[str]]], met_cols: list[list[str]],
          page: np.ndarray) -> list[dict[str, Any]]:
    """Report rows in proto3 JSON. Equal cells share one `{"value": ...}` dict: the JSON is
    the same, and a 100,000-row report is built several times faster."""
    dim_cols = []
    for codes, cats in table_dims:
        cells = np.empty(len(cats), dtype=object)
        cells[:] = [{"value": c} for c in cats]
        dim_cols.append(cells[codes[page]].tolist())
    memo: dict[str, dict[str, str]] = {}
    met_cols = [[memo.get(v) or memo.setdefault(v, {"value": v}) for v in col]
                for col in met_cols]
    if dim_cols and met_cols:
        return [{"dimensionValues": list(d), "metricValues": list(m)}
                for d, m in zip(zip(*dim_cols), zip(*met_cols))]
    if dim_cols:
        return [{"dimensionValues": list(d)} for d in zip(*dim_cols)]
    return [{"metricValues": list(m)} for m in zip(*met_cols)]


def _format_columns(values: dict[str, np.ndarray], plan: query.Plan,
                    index: np.ndarray) -> list[list[str]]:
    cols = []
    for m in plan.metrics:
        x = values[m][index]
        if query.metric_type(m) == "TYPE_INTEGER":
            cols.append(np.round(x).astype(np.int64).astype(str).tolist())
        else:
            cols.append([format_value(float(v), False) for v in x])
    return cols


def _metric_type_json(metric: str, as_numbers: bool) -> str | int:
    name = query.metric_type(metric)
    return query.METRIC_TYPE_NUMBERS[name] if as_numbers else name


def build_report(record: query.PropertyLike, req: Any, *, enums_as_numbers: bool = False,
                 today: date | None = None) -> tuple[dict[str, Any], query.Plan, int]:
    """Answer one RunReportRequest (raw protobuf): (response JSON dict, plan, rowCount)."""
    today = today or query.property_today(record.time_zone)
    plan = query.plan_request(record, req, today)
    out: dict[str, Any] = {}
    if plan.dimension_headers:
        out["dimensionHeaders"] = [{"name": d} for d in plan.dimension_headers]
    if plan.metrics:
        out["metricHeaders"] = [
            {"name": h, "type": _metric_type_json(m, enums_as_numbers)}
            for h, m in zip(plan.metric_headers, plan.metrics)]
    metadata: dict[str, Any] = {"currencyCode": record.currency_code,
                                "timeZone": record.time_zone}
    traffic = record.traffic
    if traffic and traffic.get("thresholding"):
        metadata["subjectToThresholding"] = True
    row_count = 0
    if traffic is not None:
        row_count = fill_rows(out, query.load_events(record, plan, today), req, plan)
    if row_count:
        out["rowCount"] = row_count
    out["metadata"] = metadata
    return out, plan, row_count


def fill_rows(out: dict[str, Any], ev: query.Events, req: Any, plan: query.Plan) -> int:
    """Filter, group, aggregate, order and page `ev` into `out` (rows, totals...); returns
    rowCount. `req` is a RunReportRequest or RunRealtimeReportRequest (raw protobuf)."""
    row_count = 0
    if req.HasField("dimension_filter"):
        ev = ev.take(query.dimension_mask(ev, req.dimension_filter, plan.key_events))
    dims = [query.dimension_codes(ev, d, plan.key_events) for d in plan.dimensions]
    groups, first = query.group_ids([c for c, _ in dims], [len(k) for _, k in dims], len(ev))
    n = int(first.size) if len(ev) else 0
    values = query.aggregate(ev, groups, n, plan.metrics, plan.key_events) if n else {
        m: np.empty(0) for m in plan.metrics}
    table_dims = [(codes[first], cats) for codes, cats in dims] if n else []
    keep = np.arange(n)
    if n and plan.metrics and not getattr(req, "keep_empty_rows", False):
        # GA: "If false or unspecified, each row with all metrics equal to 0 will not be
        # returned" (RunReportRequest.keep_empty_rows)
        keep = np.flatnonzero(np.any([values[m][:n] != 0 for m in plan.metrics], axis=0))
    if keep.size and req.HasField("metric_filter"):
        keep = keep[query.metric_mask(req.metric_filter, values, plan, n)[keep]]
    if keep.size:
        sub_dims = [(codes[keep], cats) for codes, cats in table_dims]
        sub_vals = {m: v[keep] for m, v in values.items()}
        order = keep[query.order_rows(req, plan, sub_dims, sub_vals, keep.size)]
        row_count = int(order.size)
        page = order[plan.offset:plan.offset + plan.limit]
        rows = _rows(table_dims, _format_columns(values, plan, page), page)
        if rows:
            out["rows"] = rows
        out.update(_aggregations(req, plan, ev, values, table_dims, keep))
    return row_count


def _aggregations(req: Any, plan: query.Plan, ev: query.Events, values: dict[str, np.ndarray],
                  table_dims: list[tuple[np.ndarray, list[str]]],
                  keep: np.ndarray) -> dict[str, Any]:
    """`totals` (recomputed over all events: distinct counts do not add up), `maximums`,
    `minimums` and `counts` over the rows, one row per date range when rows carry it."""
    wanted = set(req.metric_aggregations)
    if not wanted or not plan.metrics:
        return {}
    A = query.data_types.MetricAggregation
    by_range = "dateRange" in plan.dimensions
    n_ranges = len(plan.ranges) if by_range else 1
    groups = ev.columns["range"] if by_range else np.zeros(len(ev), dtype=np.int64)
    if by_range:
        row_range = table_dims[plan.dimensions.index("dateRange")][0][keep]
    else:
        row_range = np.zeros(keep.size, dtype=np.int64)
    present = [r for r in range(n_ranges) if (row_range == r).any()]

    def dims_for(label: str, r: int) -> list[str]:
        return [plan.ranges[r][0] if d == "dateRange" else label for d in plan.dimensions]

    out: dict[str, Any] = {}
    if A.TOTAL in wanted:
        totals = query.aggregate(ev, groups, n_ranges, plan.metrics, plan.key_events)
        cols = _format_columns(totals, plan, np.array(present, dtype=np.int64))
        out["totals"] = [_row(dims_for("RESERVED_TOTAL", r), [c[i] for c in cols])
                         for i, r in enumerate(present)]
    for agg, key, label, fn in ((A.MAXIMUM, "maximums", "RESERVED_MAX", np.max),
                                (A.MINIMUM, "minimums", "RESERVED_MIN", np.min),
                                (A.COUNT, "counts", "RESERVED_COUNT", np.size)):
        if agg not in wanted:
            continue
        vals = {m: np.array([float(fn(values[m][keep][row_range == r])) for r in present])
                for m in plan.metrics}
        cols = _format_columns(vals, plan, np.arange(len(present)))
        out[key] = [_row(dims_for(label, r), [c[i] for c in cols])
                    for i, r in enumerate(present)]
    return out


def token_cost(rows: int, days: int, dimensions: int, metrics: int) -> int:
    """Tokens one report costs: GA does not publish its formula, only that cost grows with
    the rows returned, the length of the date range and the request's complexity."""
    return 1 + math.ceil(days / 14) + math.ceil(rows / 100) + (dimensions + metrics) // 4


@dataclass
class _Bucket:
    window: Any = None
    used: int = 0


@dataclass
class _PropertyLedger:
    day: _Bucket = field(default_factory=_Bucket)
    hour: _Bucket = field(default_factory=_Bucket)
    thresholded: _Bucket = field(default_factory=_Bucket)


class QuotaLedger:
    """Tokens spent per property, by day (property's time zone) and by hour.

    The sandbox serves a single Cloud project, so the per-project hourly bucket spends the same
    tokens as the property's hourly one, against its own, lower, limit.
    """

    def __init__(self) -> None:
        self.lock = Lock()
        self.properties: dict[str, _PropertyLedger] = {}

    @staticmethod
    def _roll(bucket: _Bucket, window: Any) -> _Bucket:
        if bucket.window != window:
            bucket.window, bucket.used = window, 0
        return bucket

    def _buckets(self, record: query.PropertyLike) -> tuple[_Bucket, _Bucket, _Bucket]:
        led = self.properties.setdefault(record.id, _PropertyLedger())
        hour = int(time.time() // 3600)
        return (self._roll(led.day, query.property_today(record.time_zone)),
                self._roll(led.hour, hour), self._roll(led.thresholded, hour))

    def charge(self, record: query.PropertyLike, tokens: int,
               thresholded: bool) -> dict[str, Any]:
        """Spend `tokens` and return the `propertyQuota` JSON after this request."""
        with self.lock:
            day, hour, thr = self._buckets(record)
            day.used += tokens
            hour.used += tokens
            thr.used += int(thresholded)
            i = 1 if "360" in record.service_level else 0
            spent = {"tokensPerDay": day.used, "tokensPerHour": hour.used,
                     "concurrentRequests": 0, "serverErrorsPerProjectPerHour": 0,
                     "potentiallyThresholdedRequestsPerHour": thr.used,
                     "tokensPerProjectPerHour": hour.used}
            quota: dict[str, Any] = {}
            for name, used in spent.items():
                limit = QUOTA_LIMITS[name][i]
                status: dict[str, int] = {"remaining": max(limit - used, 0)}
                if name not in ("concurrentRequests", "serverErrorsPerProjectPerHour"):
                    status = {"consumed": tokens if name.startswith("tokens") else
                              int(thresholded), **status}
                quota[name] = {k: v for k, v in status.items() if v}  # proto3 omits zeros
            return quota


_LEDGERS: "weakref.WeakKeyDictionary[Any, Any]" = weakref.WeakKeyDictionary()
_LEDGERS_LOCK = Lock()


def ledger(state: Any) -> Any:
    """The token ledger of one sandbox state: the serving sandbox's quota tracker, so that
    `propertyQuota` says what the quota enforcement will do (see `use_ledger`), else a
    ledger of its own (created on first use)."""
    with _LEDGERS_LOCK:
        if state not in _LEDGERS:
            _LEDGERS[state] = QuotaLedger()
        return _LEDGERS[state]


def use_ledger(state: Any, tracker: Any) -> None:
    """Charge this state's reports to `tracker` (the server's QuotaTracker), one ledger for
    what responses report and what is enforced."""
    with _LEDGERS_LOCK:
        if tracker is None:
            _LEDGERS.pop(state, None)
        elif _LEDGERS.get(state) is not tracker:
            _LEDGERS[state] = tracker


def enums_as_numbers(query_params: dict[str, list[str]]) -> bool:
    """The REST client asks `$alt=json;enum-encoding=int`: enums then travel as numbers."""
    return any("enum-encoding=int" in v for v in query_params.get("$alt", []))


def parse(message_type: Any, body: Any) -> Any:
    """Body JSON -> raw protobuf, strictly: unknown fields are a 400 like GA's front end."""
    try:
        msg = message_type.pb(message_type())
        json_format.Parse(json.dumps(body or {}), msg, ignore_unknown_fields=False)
        return msg
    except json_format.ParseError as exc:
        m = _UNKNOWN_FIELD.search(str(exc))
        if m:
            raise ApiError(400, f'Invalid JSON payload received. Unknown name "{m.group(1)}": '
                           "Cannot find field.") from None
        raise ApiError(400, f"Invalid JSON payload received. {exc}") from None


def _check_property(url_pid: str, field_value: str) -> None:
    if field_value and field_value != f"properties/{url_pid}":
        raise ApiError(400, f"The property {field_value} in the request does not match the "
                       f"property properties/{url_pid} in the URL; all requests of a batch "
                       "must be for the same property.")


@dataclass
class _Snapshot:
    """What a report reads of a property, copied under the state lock so the (slower) report
    itself runs without holding it."""

    id: str
    time_zone: str
    currency_code: str
    service_level: str
    key_events: dict[str, Any]
    traffic: dict | None
    machinery: tuple[dict[str, Any], ...] = ()  # rule and audience versions (derived.py)

    @classmethod
    def of(cls, state: Any, pid: str) -> "_Snapshot":
        with state.lock:
            r = state.property(pid)
            # whole copies: a report reads the counting method, creation time, default value
            kes = {k: type(v).deserialize(type(v).serialize(v)) for k, v in r.key_events.items()}
            return cls(r.id, r.time_zone, r.currency_code, r.service_level, kes, r.traffic,
                       derived.applicable(r))


def _report(state: Any, record: _Snapshot, req: Any, as_numbers: bool) -> dict[str, Any]:
    """One report, charged to the property's token ledger."""
    thresholded = bool(record.traffic and record.traffic.get("thresholding"))
    out, plan, rows = build_report(record, req, enums_as_numbers=as_numbers)
    cost = token_cost(rows, plan.days, len(plan.dimensions), len(plan.metrics))
    quota = ledger(state).charge(record, cost, thresholded)
    if req.return_property_quota:
        out["propertyQuota"] = quota
    out["kind"] = "analyticsData#runReport"
    return out


def run_report(state: Any, match: "re.Match[str]", query_params: dict[str, list[str]],
               body: Any) -> tuple[int, dict[str, Any]]:
    record = _Snapshot.of(state, match.group("pid"))
    req = parse(api_types.RunReportRequest, body)
    _check_property(record.id, req.property)
    return 200, _report(state, record, req, enums_as_numbers(query_params))


def batch_run_reports(state: Any, match: "re.Match[str]", query_params: dict[str, list[str]],
                      body: Any) -> tuple[int, dict[str, Any]]:
    record = _Snapshot.of(state, match.group("pid"))
    batch = parse(api_types.BatchRunReportsRequest, body)
    _check_property(record.id, batch.property)
    if len(batch.requests) > MAX_BATCH:
        raise ApiError(400, f"Batch requests are limited to {MAX_BATCH} requests; this batch "
                       f"has {len(batch.requests)}.")
    for req in batch.requests:
        _check_property(record.id, req.property)
    as_numbers = enums_as_numbers(query_params)
    reports = [_report(state, record, req, as_numbers) for req in batch.requests]
    out: dict[str, Any] = {"reports": reports} if reports else {}
    out["kind"] = "analyticsData#batchRunReports"
    return 200, out


def metadata(record: query.PropertyLike | None, as_numbers: bool) -> dict[str, Any]:
    """getMetadata: GA's real list (catalog.py, as recorded from the live API); a property
    also lists its own per-key-event metrics, which `properties/0` (the universal list) does
    not. The sandbox has no custom dimensions or metrics, so there are none to add."""
    pid = record.id if record is not None else "0"
    meta = catalog.universal()
    dims = [dict(d) for d in meta["dimensions"]]

    def mtype(t: str) -> str | int:
        return query.METRIC_TYPE_NUMBERS[t] if as_numbers else t

    mets = [{k: (mtype(v) if k == "type" else v) for k, v in m.items()} for m in meta["metrics"]]
    if record is not None:
        for event in sorted(query.key_event_methods(record)):
            mets.append({"apiName": f"keyEvents:{event}", "uiName": f"Key events ({event})",
                         "description": f"The count of key events for {event}.",
                         "deprecatedApiNames": [f"conversions:{event}"],
                         "type": mtype("TYPE_FLOAT"), "category": "Event"})
            mets.append({"apiName": f"sessionKeyEventRate:{event}",
                         "uiName": f"Session key event rate ({event})",
                         "description": f"The percentage of sessions in which {event} was "
                                        "triggered.",
                         "deprecatedApiNames": [f"sessionConversionRate:{event}"],
                         "type": mtype("TYPE_FLOAT"), "category": "Session"})
    return {"dimensions": dims, "metrics": mets, "name": f"properties/{pid}/metadata"}


def get_metadata(state: Any, match: "re.Match[str]", query_params: dict[str, list[str]],
                 body: Any) -> tuple[int, dict[str, Any]]:
    pid = match.group("pid")
    record = None if pid == "0" else _Snapshot.of(state, pid)
    return 200, metadata(record, enums_as_numbers(query_params))


ROUTES: list[Route] = [
    route("POST", rf"/v1beta/{_PID}:runReport", run_report, "data"),
    route("POST", rf"/v1beta/{_PID}:batchRunReports", batch_run_reports, "data"),
    route("GET", rf"/v1beta/{_PID}/metadata", get_metadata, "data"),
]
