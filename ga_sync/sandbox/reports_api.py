"""Data API v1beta routes beyond runReport: runPivotReport, runRealtimeReport, checkCompatibility.

- `runPivotReport` computes the flat report of all the request's dimensions (data_api), then
  each pivot keeps its `offset`/`limit` slice of its fields' value combinations, ordered by its
  `orderBys` (a metric orderBy sums the metric over the combination's rows); rows are those
  whose combinations are kept by every pivot. Pivot `metricAggregations` are not emulated.
  Without data GA answers `pivotHeaders: [{}]` and no rows (recorded).
- `runRealtimeReport` reads the last 30 minutes of today's synthetic traffic (by session start,
  in the property's time zone), with the realtime schema (catalog.REALTIME_*); without data GA
  answers only `{"kind": ...}` (recorded). One minute range.
- `runFunnelReport` (v1alpha) is funnels.py's; its route is served from this list.
- `checkCompatibility` answers, for every field of the property's metadata, whether it could be
  added to the request's fields, by catalog.py's approximate model of GA's rules.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
from google.analytics.data_v1beta.types import analytics_data_api as api_types

from ga_sync.sandbox import catalog, data_api, funnels, query
from ga_sync.sandbox.data_api import _PID, _check_property, _Snapshot, enums_as_numbers, parse
from ga_sync.sandbox.routing import ApiError, Route, route

REALTIME_MINUTES = (30, 60)  # minutes of data a realtime report can see: standard, 360


# ---- runPivotReport ------------------------------------------------------------------------

def _flat_request(pivot_req: Any) -> Any:
    """The RunReportRequest holding a pivot request's data, all rows at once."""
    req = api_types.RunReportRequest.pb(api_types.RunReportRequest())
    req.property = pivot_req.property
    req.dimensions.extend(pivot_req.dimensions)
    req.metrics.extend(pivot_req.metrics)
    req.date_ranges.extend(pivot_req.date_ranges)
    for name in ("dimension_filter", "metric_filter"):
        if pivot_req.HasField(name):
            getattr(req, name).CopyFrom(getattr(pivot_req, name))
    req.keep_empty_rows = pivot_req.keep_empty_rows
    req.currency_code = pivot_req.currency_code
    req.return_property_quota = pivot_req.return_property_quota
    req.limit = query.MAX_LIMIT
    if pivot_req.HasField("cohort_spec") or len(pivot_req.comparisons):
        raise ApiError(501, "The sandbox does not implement cohort reports or comparisons.")
    return req


def _pivot_order(pivot: Any, combos: dict[tuple[str, ...], list[int]], rows: list[dict],
                 fields: list[str], metric_index: dict[str, int]) -> list[tuple[str, ...]]:
    def metric_sum(combo: tuple[str, ...], name: str) -> float:
        i = metric_index[name]
        return sum(float(rows[r]["metricValues"][i]["value"]) for r in combos[combo])

    keys = list(combos)
    for ob in reversed(list(pivot.order_bys)):  # stable sorts: the first orderBy wins
        which = ob.WhichOneof("one_order_by")
        if which == "metric":
            if ob.metric.metric_name not in metric_index:
                raise query.bad(f"Field {ob.metric.metric_name} in a pivot's orderBys must be one "
                                "of the request's metrics.")
            keys.sort(key=lambda k: metric_sum(k, ob.metric.metric_name), reverse=ob.desc)
        elif which == "dimension":
            name = ob.dimension.dimension_name
            if name not in fields:
                raise query.bad(f"Field {name} in a pivot's orderBys must be one of its fieldNames.")
            keys.sort(key=lambda k: k[fields.index(name)], reverse=ob.desc)
        else:
            raise query.bad("A pivot orderBy must be a metric or dimension orderBy.")
    if not pivot.order_bys and metric_index:  # like runReport: first metric, descending
        first = next(iter(metric_index))
        keys.sort(key=lambda k: (-metric_sum(k, first), k))
    return keys


def run_pivot_report(state: Any, match: "re.Match[str]", query_params: dict[str, list[str]],
                     body: Any) -> tuple[int, dict[str, Any]]:
    record = _Snapshot.of(state, match.group("pid"))
    req = parse(api_types.RunPivotReportRequest, body)
    _check_property(record.id, req.property)
    if not req.pivots:
        raise query.bad("A pivot report needs at least one pivot.")
    flat = _flat_request(req)
    report = data_api._report(state, record, flat, enums_as_numbers(query_params))
    dim_names = [h["name"] for h in report.get("dimensionHeaders", [])]
    metric_index = {h["name"]: i for i, h in enumerate(report.get("metricHeaders", []))}
    rows = report.get("rows", [])
    kept_rows = set(range(len(rows)))
    headers, rank_of = [], []
    for pivot in req.pivots:
        fields = list(pivot.field_names)
        for f in fields:
            if f not in dim_names:
                raise query.bad(f"Pivot field {f} must be one of the request's dimensions.")
        if pivot.limit <= 0:
            raise query.bad("A pivot's limit must be positive.")
        at = [dim_names.index(f) for f in fields]
        combos: dict[tuple[str, ...], list[int]] = {}
        for r, row in enumerate(rows):
            combos.setdefault(tuple(row["dimensionValues"][i]["value"] for i in at), []).append(r)
        order = _pivot_order(pivot, combos, rows, fields, metric_index)
        chosen = order[pivot.offset:pivot.offset + pivot.limit]
        header: dict[str, Any] = {}
        if chosen:
            header["pivotDimensionHeaders"] = [
                {"dimensionValues": [{"value": v} for v in combo]} for combo in chosen]
        if combos:
            header["rowCount"] = len(combos)
        headers.append(header)
        rank = {combo: i for i, combo in enumerate(chosen)}
        kept_rows &= {r for combo in chosen for r in combos[combo]}
        rank_of.append((at, rank))
    out: dict[str, Any] = {"pivotHeaders": headers}
    for key in ("dimensionHeaders", "metricHeaders"):
        if key in report:
            out[key] = report[key]
    ordered = sorted(kept_rows, key=lambda r: [rank[tuple(rows[r]["dimensionValues"][i]["value"]
                                                         for i in at)] for at, rank in rank_of] + [r])
    if ordered:
        out["rows"] = [rows[r] for r in ordered]
    out["metadata"] = report["metadata"]
    if "propertyQuota" in report:
        out["propertyQuota"] = report["propertyQuota"]
    out["kind"] = "analyticsData#runPivotReport"
    return 200, out


# ---- runRealtimeReport ---------------------------------------------------------------------

def _realtime_plan(record: Any, req: Any) -> tuple[query.Plan, int, int]:
    kes = query.key_event_methods(record)
    dims = [d.name for d in req.dimensions]
    mets = [m.name for m in req.metrics]
    for d in dims:
        if d not in catalog.REALTIME_DIMENSIONS:
            raise query.bad(f"Field {d} is not a valid dimension. For a list of valid dimensions "
                            "and metrics, see https://developers.google.com/analytics/devguides/"
                            "reporting/data/v1/realtime-api-schema")
    canon = []
    for m in mets:
        c = query.canonical_metric(m, kes)
        if c is None or c.partition(":")[0] not in catalog.REALTIME_METRICS:
            raise query.bad(f"Field {m} is not a valid metric. For a list of valid dimensions "
                            "and metrics, see https://developers.google.com/analytics/devguides/"
                            "reporting/data/v1/realtime-api-schema")
        canon.append(c)
    if not dims and not mets:
        raise query.bad("A request must have at least one dimension or one metric.")
    if len(dims) > query.MAX_DIMENSIONS or len(mets) > query.MAX_METRICS:
        raise query.bad("Requests are limited to 9 dimensions and 10 metrics.")
    window = REALTIME_MINUTES["360" in record.service_level]
    if len(req.minute_ranges) > 1:
        raise ApiError(501, "The sandbox serves realtime reports over one minute range.")
    start, end = window - 1, 0
    if req.minute_ranges:
        mr = req.minute_ranges[0]
        start = mr.start_minutes_ago if mr.HasField("start_minutes_ago") else window - 1
        end = mr.end_minutes_ago if mr.HasField("end_minutes_ago") else 0
    if not 0 <= end <= start <= window - 1:
        raise query.bad(f"Invalid minute range: startMinutesAgo {start} and endMinutesAgo {end} "
                        f"must satisfy 0 <= endMinutesAgo <= startMinutesAgo <= {window - 1}.")
    today = query.property_today(record.time_zone)
    limit = min(req.limit or query.DEFAULT_LIMIT, query.MAX_LIMIT)
    plan = query.Plan(dims, dims, canon, mets, [("date_range_0", today, today)], kes, limit, 0, 1)
    return plan, start, end


def run_realtime_report(state: Any, match: "re.Match[str]", query_params: dict[str, list[str]],
                        body: Any) -> tuple[int, dict[str, Any]]:
    record = _Snapshot.of(state, match.group("pid"))
    req = parse(api_types.RunRealtimeReportRequest, body)
    plan, start, end = _realtime_plan(record, req)
    as_numbers = enums_as_numbers(query_params)
    table: dict[str, Any] = {}
    row_count = 0
    if record.traffic is not None:
        today = plan.ranges[0][1]
        ev = query.load_events(record, plan, today)
        now = int(query.day_elapsed(record.time_zone) * 86400)
        ago = (now - ev.columns["session_start"].astype(np.int64)) // 60
        ev = ev.take((ago >= end) & (ago <= start))
        ago = ago[(ago >= end) & (ago <= start)]
        ev = query.Events({**ev.columns, "minutes_ago": ago},
                          {**ev.categories, "minutes_ago": [f"{m:02d}" for m in range(60)]})
        row_count = data_api.fill_rows(table, ev, req, plan)
    out: dict[str, Any] = {}
    if row_count:
        if plan.dimension_headers:
            out["dimensionHeaders"] = [{"name": d} for d in plan.dimension_headers]
        if plan.metrics:
            out["metricHeaders"] = [{"name": h, "type": data_api._metric_type_json(m, as_numbers)}
                                    for h, m in zip(plan.metric_headers, plan.metrics)]
        out.update(table)
        out["rowCount"] = row_count
    if req.return_property_quota:
        out["propertyQuota"] = data_api.ledger(state).charge(record, 1, False)
    out["kind"] = "analyticsData#runRealtimeReport"
    return 200, out


# ---- checkCompatibility --------------------------------------------------------------------

def _filter_fields(expr: Any) -> list[str]:
    kind = expr.WhichOneof("expr")
    if kind in ("and_group", "or_group"):
        return [f for e in getattr(expr, kind).expressions for f in _filter_fields(e)]
    if kind == "not_expression":
        return _filter_fields(expr.not_expression)
    return [expr.filter.field_name] if kind == "filter" else []


def check_compatibility(state: Any, match: "re.Match[str]", query_params: dict[str, list[str]],
                        body: Any) -> tuple[int, dict[str, Any]]:
    pid = match.group("pid")
    record = None if pid == "0" else _Snapshot.of(state, pid)
    req = parse(api_types.CheckCompatibilityRequest, body)
    kes = query.key_event_methods(record) if record is not None else {}
    dims = [d.name for d in req.dimensions]
    if req.HasField("dimension_filter"):
        dims += [f for f in _filter_fields(req.dimension_filter) if f not in dims]
    mets = [m.name for m in req.metrics]
    if req.HasField("metric_filter"):
        mets += [f for f in _filter_fields(req.metric_filter) if f not in mets]
    canon_dims = []
    for d in dims:
        c = catalog.DEPRECATED.get(d, d)
        if c not in catalog.DIMENSIONS:
            raise query.bad(f"Field {d} is not a valid dimension. For a list of valid dimensions "
                            f"and metrics, see {query.SCHEMA_URL}")
        canon_dims.append(c)
    canon_mets = []
    for m in mets:
        c = query.canonical_metric(m, kes)
        if c is None:
            raise query.bad(f"Field {m} is not a valid metric. For a list of valid dimensions and "
                            f"metrics, see {query.SCHEMA_URL}")
        canon_mets.append(c.partition(":")[0])
    as_numbers = enums_as_numbers(query_params)
    names = {1: "COMPATIBLE", 2: "INCOMPATIBLE"}
    wanted = int(req.compatibility_filter)
    meta = data_api.metadata(record, as_numbers)
    out: dict[str, Any] = {}
    dim_answers, met_answers = [], []
    for d in meta["dimensions"]:
        ok = 1 if catalog.compatible_dimension(d["apiName"], canon_dims, canon_mets) else 2
        if wanted in (0, ok):
            dim_answers.append({"dimensionMetadata": d, "compatibility": ok if as_numbers else names[ok]})
    for m in meta["metrics"]:
        base = m["apiName"].partition(":")[0]
        ok = 1 if catalog.compatible_metric(base, canon_dims, canon_mets) else 2
        if wanted in (0, ok):
            met_answers.append({"metricMetadata": m, "compatibility": ok if as_numbers else names[ok]})
    if dim_answers:
        out["dimensionCompatibilities"] = dim_answers
    if met_answers:
        out["metricCompatibilities"] = met_answers
    return 200, out


ROUTES: list[Route] = [
    route("POST", rf"/v1beta/{_PID}:runPivotReport", run_pivot_report, "data"),
    route("POST", rf"/v1beta/{_PID}:runRealtimeReport", run_realtime_report, "data"),
    route("POST", rf"/v1beta/{_PID}:checkCompatibility", check_compatibility, "data"),
    *funnels.ROUTES,  # v1alpha runFunnelReport (funnels.py)
]
