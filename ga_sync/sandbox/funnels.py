"""Data API v1alpha `runFunnelReport` in the sandbox, over the same event log as its reports.

`POST /v1alpha/properties/{p}:runFunnelReport`
(https://developers.google.com/analytics/devguides/reporting/data/v1/rest/v1alpha/properties/runFunnelReport).
The request is parsed strictly with the official v1alpha types; the funnel is user based, as
GA's funnel exploration is, over the log `runReport` reads (`derived.event_log`: collected
events plus those rules and audience triggers made; today only the part that has passed).

Event times are `ga_sync.export.writer.timestamps(log, time_zone)`, the `event_timestamp` the
sandbox's BigQuery export writes, so a funnel from this report and one from the export agree
exactly. A user reaches step k of a closed funnel when the period holds events e1..ek of steps
1..k with t1 <= t2 <= ... <= tk and, where a step sets `withinDurationFromPriorStep`,
t(i+1) - t(i) <= that duration (inclusive); an open funnel (`isOpenFunnel`) may start at any
step. Computed exactly, per step, as the events at which a valid chain ends (`reach`).

Answer: `funnelTable` (dimension `funnelStepName`, metrics `activeUsers`,
`funnelStepCompletionRate`, `funnelStepAbandonments`, `funnelStepAbandonmentRate`) and
`funnelVisualization` (`funnelStepName`, `activeUsers`), step names prefixed with their number
("2. add_to_cart"), `kind: "analyticsData#runFunnelReport"`, `propertyQuota` on request (a
ledger of its own: funnel quotas are a category of their own at GA). The last step's rates and
abandonments are "0". By default (`QUIRKS`) the answer has the quirks recorded from a live
property (../shared/GA4_FACTS.md): the funnelTable's `metricHeaders` repeat their block of 4
(8 headers for 4 values a row), the rate metrics are typed `TYPE_INTEGER` while holding
fractions, and a step nobody reached is left out (later steps keep their numbers).

Supported: one date range; steps whose `filterExpression` is a `funnelEventFilter` (or an
`orGroup` of them), with or without a `funnelParameterFilterExpression`: a
`funnelParameterFilter` on an `eventParameterName` with a `stringFilter` (`matchType` EXACT,
BEGINS_WITH, ENDS_WITH, CONTAINS, FULL_REGEXP or PARTIAL_REGEXP, RE2 through
`ga_sync.re2check`; `caseSensitive`), or an `andGroup`/`orGroup` of them. Parameters are read
from the log's parameter columns (`PARAMETERS`: `page_location` and the `file_download`
parameters); an event without the parameter, or a parameter the log has not, never matches.
This is what ga-sync sends for a `page:`/`from:` goal step (its rule's source event with the
rule's conditions), so such funnels agree with the export's. Also `withinDurationFromPriorStep`;
`isOpenFunnel`; `limit` (rows of each sub-report); `STANDARD_FUNNEL`. Refused with 400 and a
message saying the sandbox does not support it: `isDirectlyFollowedBy`, `notExpression` and
`itemParameterName`, numeric/in-list/between parameter filters, `funnelFieldFilter`,
`andGroup`/`notExpression` of steps, breakdowns, next actions, segments, `dimensionFilter`,
`TRENDED_FUNNEL` and several date ranges.
"""

from __future__ import annotations

import re
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from datetime import date
from threading import Lock
from typing import Any, Callable

import numpy as np
import pandas as pd
from google.analytics.data_v1alpha.types import analytics_data_api as alpha_api
from google.analytics.data_v1alpha.types import data as alpha_data

from ga_sync import re2check
from ga_sync.sandbox import derived, query
from ga_sync.sandbox.data_api import (QuotaLedger, _check_property, _PID, _Snapshot,
                                      enums_as_numbers, parse, token_cost)
from ga_sync.sandbox.routing import ApiError, Route, route
from ga_sync.sandbox.traffic import PARAMETER_COLUMNS, event_log, fingerprint

#: Answer with the live API's recorded quirks (repeated metric headers, rates typed as
#: integers, unreached steps left out). Tests of strict parsing may turn it off.
QUIRKS = True
MAX_STEPS = 10  # GA's funnel explorations take at most 10 steps
TABLE_METRICS = ("activeUsers", "funnelStepCompletionRate", "funnelStepAbandonments",
                 "funnelStepAbandonmentRate")
_TYPE_NUMBERS = {t.name: t.value for t in alpha_data.MetricType}
#: Event parameters a funnelParameterFilter can read: the log's parameter columns.
PARAMETERS = ("page_location",) + PARAMETER_COLUMNS
_MATCH_TYPES = ("EXACT", "BEGINS_WITH", "ENDS_WITH", "CONTAINS", "FULL_REGEXP", "PARTIAL_REGEXP")


def unsupported(what: str) -> ApiError:
    return ApiError(400, f"{what} is not supported by the ga-sync sandbox's runFunnelReport "
                         "(docs/sandbox.md lists what it supports).")


#: A parsed funnelParameterFilterExpression: ("param", name, match type, value, case
#: sensitive), or ("and" | "or", (expressions ...)).
ParamFilter = tuple[Any, ...]


@dataclass(frozen=True)
class Step:
    """One funnel step: its name, the events that make it, the most seconds since the
    prior step (None: no limit), and per alternative (event, parameter filter or None)."""

    name: str
    events: tuple[str, ...]
    within: float | None
    matchers: tuple[tuple[str, ParamFilter | None], ...] = ()

    def alternatives(self) -> tuple[tuple[str, ParamFilter | None], ...]:
        return self.matchers or tuple((e, None) for e in self.events)


def _param_filter(expr: Any, where: str) -> ParamFilter:
    """A FunnelParameterFilterExpression (raw protobuf) -> ParamFilter; 400 for what the
    sandbox does not model."""
    kind = expr.WhichOneof("expr")
    if kind in ("and_group", "or_group"):
        group = getattr(expr, kind)
        if not group.expressions:
            group_name = "andGroup" if kind == "and_group" else "orGroup"
            raise ApiError(400, f"{where}: an empty {group_name} in "
                                "funnelParameterFilterExpression.")
        return ("and" if kind == "and_group" else "or",
                tuple(_param_filter(e, where) for e in group.expressions))
    if kind == "funnel_parameter_filter":
        f = expr.funnel_parameter_filter
        if f.WhichOneof("one_parameter") != "event_parameter_name":
            raise unsupported(f"{where}: a funnelParameterFilter without eventParameterName")
        if not f.event_parameter_name:
            raise ApiError(400, f"{where}: funnelParameterFilter needs an eventParameterName.")
        other = f.WhichOneof("one_filter")
        if other != "string_filter":
            name = {"in_list_filter": "inListFilter", "numeric_filter": "numericFilter",
                    "between_filter": "betweenFilter"}.get(other or "", "no filter")
            raise unsupported(f"{where}: a funnelParameterFilter with {name} (only stringFilter)")
        sf = f.string_filter
        match = alpha_data.StringFilter.MatchType(sf.match_type).name
        if match not in _MATCH_TYPES:
            raise ApiError(400, f"{where}: stringFilter needs a matchType.")
        if match.endswith("REGEXP"):
            problem = re2check.problem(sf.value)
            if problem:
                raise ApiError(400, f"{where}: invalid regular expression {sf.value!r}: "
                                    f"{problem}")
        return ("param", f.event_parameter_name, match, sf.value, bool(sf.case_sensitive))
    if kind == "not_expression":
        raise unsupported(f"{where}: notExpression in funnelParameterFilterExpression")
    raise ApiError(400, f"{where}: an empty funnelParameterFilterExpression.")


def _matches(match: str, value: str, case_sensitive: bool) -> Callable[[str], bool]:
    """A predicate on one parameter value (a string), as GA's StringFilter compares."""
    if match in ("FULL_REGEXP", "PARTIAL_REGEXP"):
        pattern = value if match == "PARTIAL_REGEXP" else f"^(?:{value})$"
        return lambda text: re2check.search(pattern, text, not case_sensitive)
    want = value if case_sensitive else value.casefold()

    def test(text: str) -> bool:
        text = text if case_sensitive else text.casefold()
        return {"EXACT": text == want, "BEGINS_WITH": text.startswith(want),
                "ENDS_WITH": text.endswith(want), "CONTAINS": want in text}[match]
    return test


def filter_mask(frame: pd.DataFrame, flt: ParamFilter) -> np.ndarray:
    """Which rows of `frame` meet a parameter filter (a missing parameter never matches);
    evaluated once per category of the parameter's column, never per event."""
    if flt[0] in ("and", "or"):
        masks = [filter_mask(frame, f) for f in flt[1]]
        return np.logical_and.reduce(masks) if flt[0] == "and" else \
            np.logical_or.reduce(masks)
    _, name, match, value, case_sensitive = flt
    if name not in frame.columns or not len(frame):
        return np.zeros(len(frame), dtype=bool)
    col = frame[name]
    if not isinstance(col.dtype, pd.CategoricalDtype):
        col = col.astype("category")
    test = _matches(match, value, case_sensitive)
    truth = np.array([test(str(c)) for c in col.cat.categories] + [False], dtype=bool)
    return truth[col.cat.codes.to_numpy()]  # code -1 (no parameter): the trailing False


def _step_events(expr: Any, where: str) -> tuple[tuple[str, ParamFilter | None], ...]:
    kind = expr.WhichOneof("expr")
    if kind == "funnel_event_filter":
        f = expr.funnel_event_filter
        if not f.event_name:
            raise ApiError(400, f"{where}: funnelEventFilter needs an eventName.")
        flt = _param_filter(f.funnel_parameter_filter_expression, where) \
            if f.HasField("funnel_parameter_filter_expression") else None
        return ((f.event_name, flt),)
    if kind == "or_group":
        alts: list[tuple[str, ParamFilter | None]] = []
        for sub in expr.or_group.expressions:
            alts += _step_events(sub, where)
        if not alts:
            raise ApiError(400, f"{where}: an empty orGroup matches no event.")
        return tuple(dict.fromkeys(alts))
    if kind is None:
        raise ApiError(400, f"{where}: a funnel step needs a filterExpression.")
    name = {"and_group": "andGroup", "not_expression": "notExpression",
            "funnel_field_filter": "funnelFieldFilter"}.get(kind, kind)
    raise unsupported(f"{where}: {name}")


def parse_steps(req: Any) -> tuple[list[Step], bool]:
    """The request's steps and whether the funnel is open; 400 for what is not supported."""
    funnel = req.funnel
    if not funnel.steps:
        raise ApiError(400, "A funnel needs at least one step.")
    if len(funnel.steps) > MAX_STEPS:
        raise ApiError(400, f"Funnels are limited to {MAX_STEPS} steps; this funnel has "
                            f"{len(funnel.steps)}.")
    steps = []
    for i, s in enumerate(funnel.steps):
        where = f"Funnel step {i + 1}"
        if s.is_directly_followed_by:
            raise unsupported(f"{where}: isDirectlyFollowedBy")
        within = None
        if s.HasField("within_duration_from_prior_step"):
            d = s.within_duration_from_prior_step
            within = d.seconds + d.nanos / 1e9
            if within < 0:
                raise ApiError(400, f"{where}: withinDurationFromPriorStep must not be negative.")
        alts = _step_events(s.filter_expression, where)
        events = tuple(dict.fromkeys(e for e, _ in alts))
        steps.append(Step(s.name, events, within,
                          alts if any(f is not None for _, f in alts) else ()))
    return steps, bool(funnel.is_open_funnel)


def _check_request(req: Any) -> None:
    for field, name in (("funnel_breakdown", "funnelBreakdown"),
                        ("funnel_next_action", "funnelNextAction"),
                        ("dimension_filter", "dimensionFilter")):
        if req.HasField(field):
            raise unsupported(name)
    if len(req.segments):
        raise unsupported("segments")
    kind = req.funnel_visualization_type
    if kind == alpha_api.RunFunnelReportRequest.FunnelVisualizationType.TRENDED_FUNNEL:
        raise unsupported("TRENDED_FUNNEL")
    if not req.HasField("funnel"):
        raise ApiError(400, "A funnel report needs a funnel.")
    if len(req.date_ranges) > 1:
        raise unsupported("More than one date range")
    if req.limit < 0:
        raise ApiError(400, "limit must not be negative.")


# ---- the events: users and times ---------------------------------------------------------

_BASES: "OrderedDict[tuple[Any, ...], pd.DataFrame]" = OrderedDict()
_BASES_LOCK = Lock()


def funnel_log(record: Any, lo: date, hi: date, today: date) -> pd.DataFrame:
    """user_id, event_name, `t` (µs, `writer.timestamps`) and the `PARAMETERS` columns of every
    event from `lo` to `hi`, today cut as runReport cuts it (the first share of its sessions matching the share of the
    day passed)."""
    from ga_sync.export.writer import timestamps

    versions = getattr(record, "machinery", ())
    key = (fingerprint(record.traffic or {}), derived.versions_key(versions), lo, hi,
           record.time_zone)
    with _BASES_LOCK:
        frame = _BASES.get(key)
    if frame is None:
        if versions:
            log = derived.event_log(record.traffic, lo, hi, record.time_zone, versions)
        else:
            log = event_log(record.traffic, lo, hi, record.time_zone, parameters=True)
        ts, _ = timestamps(log, record.time_zone)
        frame = pd.DataFrame({"date": log["date"].astype(str).to_numpy() if len(log) else [],
                              "session_id": log["session_id"].to_numpy(),
                              "user_id": log["user_id"].to_numpy(),
                              "event_name": log["event_name"].astype(str).to_numpy()
                              if len(log) else [], "t": ts,
                              **{c: log[c].array if c in log.columns else
                                 pd.Categorical([None] * len(log)) for c in PARAMETERS}})
        for c in PARAMETERS:
            if len(frame) and not isinstance(frame[c].dtype, pd.CategoricalDtype):
                frame[c] = frame[c].astype("category")
        with _BASES_LOCK:
            _BASES[key] = frame
            while len(_BASES) > 6:
                _BASES.popitem(last=False)
    return _today_so_far(frame, today, record.time_zone)


def _today_so_far(frame: pd.DataFrame, today: date, time_zone: str) -> pd.DataFrame:
    key = today.strftime("%Y%m%d")
    at = (frame["date"] == key).to_numpy()
    if not at.any():
        return frame
    sessions = frame["session_id"].to_numpy()[at]
    changed = np.concatenate(([True], sessions[1:] != sessions[:-1]))
    code = np.cumsum(changed) - 1
    cut = int(round((int(code[-1]) + 1) * query.day_elapsed(time_zone)))
    keep = np.ones(len(frame), dtype=bool)
    keep[np.flatnonzero(at)[code >= cut]] = False
    return frame[keep]


# ---- the funnel ------------------------------------------------------------------------------

def reach(prev_user: np.ndarray, prev_t: np.ndarray, user: np.ndarray, t: np.ndarray,
          within_us: int | None) -> np.ndarray:
    """Which (user, t) events follow some prior event of the same user at or before t (and at
    most `within_us` before, when set). Latest prior first: it is the best candidate."""
    n_prev = prev_user.size
    if not user.size or not n_prev:
        return np.zeros(user.size, dtype=bool)
    u = np.concatenate([prev_user, user])
    tt = np.concatenate([prev_t, t])
    flag = np.concatenate([np.zeros(n_prev, np.int8), np.ones(user.size, np.int8)])
    order = np.lexsort((flag, tt, u))  # by user, time, prior events first at equal times
    su, st, sf = u[order], tt[order], flag[order]
    idx = np.where(sf == 0, np.arange(order.size), -1)
    last = np.maximum.accumulate(idx)
    ok = (last >= 0) & (su[np.maximum(last, 0)] == su)
    if within_us is not None:
        ok &= st - st[np.maximum(last, 0)] <= within_us
    out = np.zeros(user.size, dtype=bool)
    mine = sf == 1
    out[order[mine] - n_prev] = ok[mine]
    return out


@dataclass(frozen=True)
class StepResult:
    users: int        # users who reached the step
    continued: int    # of them, users who reached the next step through it (0 for the last)


def compute(frame: pd.DataFrame, steps: list[Step], open_funnel: bool) -> list[StepResult]:
    """Users per step of a funnel over `frame` (user_id, event_name, t, and the parameter
    columns a step's filter reads)."""
    users = frame["user_id"].to_numpy()
    names = frame["event_name"].to_numpy()
    t = frame["t"].to_numpy().astype(np.int64)
    reached_users: list[np.ndarray] = []
    continued_users: list[np.ndarray] = []  # users of step k reached from step k-1
    prev_u = prev_t = None
    for k, step in enumerate(steps):
        if step.matchers:
            mask = np.zeros(names.size, dtype=bool)
            for event, flt in step.alternatives():
                hit = names == event
                if flt is not None and hit.any():
                    hit &= filter_mask(frame, flt)
                mask |= hit
        else:
            mask = np.isin(names, list(step.events))
        su, st = users[mask], t[mask]
        if k == 0:
            ok = np.ones(su.size, dtype=bool)
            from_prev = ok
        else:
            within = None if step.within is None else int(round(step.within * 1e6))
            from_prev = reach(prev_u, prev_t, su, st, within)
            ok = np.ones(su.size, dtype=bool) if open_funnel else from_prev
        continued_users.append(np.unique(su[from_prev]))
        reached_users.append(np.unique(su[ok]))
        prev_u, prev_t = su[ok], st[ok]
    out = []
    for k in range(len(steps)):
        nxt = continued_users[k + 1].size if k + 1 < len(steps) else 0
        out.append(StepResult(int(reached_users[k].size), int(nxt)))
    return out


# ---- the answer ------------------------------------------------------------------------------

def _rate(a: int, b: int) -> str:
    if b <= 0:
        return "0"
    x = a / b
    return str(int(x)) if x == int(x) else repr(x)


def _header(name: str, kind: str, as_numbers: bool) -> dict[str, Any]:
    return {"name": name, "type": _TYPE_NUMBERS[kind] if as_numbers else kind}


def answer(steps: list[Step], results: list[StepResult], *, as_numbers: bool = False,
           limit: int = 0, quirks: bool | None = None) -> dict[str, Any]:
    """The funnelTable and funnelVisualization sub-reports (module docstring)."""
    quirks = QUIRKS if quirks is None else quirks
    rate_type = "TYPE_INTEGER" if quirks else "TYPE_FLOAT"
    headers = [_header("activeUsers", "TYPE_INTEGER", as_numbers),
               _header("funnelStepCompletionRate", rate_type, as_numbers),
               _header("funnelStepAbandonments", "TYPE_INTEGER", as_numbers),
               _header("funnelStepAbandonmentRate", rate_type, as_numbers)]
    table_rows, vis_rows = [], []
    last = len(steps) - 1
    for k, (step, r) in enumerate(zip(steps, results)):
        if quirks and r.users == 0:
            continue
        label = f"{k + 1}. {step.name or step.events[0]}"
        if k == last:
            values = [str(r.users), "0", "0", "0"]
        else:
            values = [str(r.users), _rate(r.continued, r.users), str(r.users - r.continued),
                      _rate(r.users - r.continued, r.users)]
        table_rows.append({"dimensionValues": [{"value": label}],
                           "metricValues": [{"value": v} for v in values]})
        vis_rows.append({"dimensionValues": [{"value": label}],
                         "metricValues": [{"value": str(r.users)}]})
    if limit:
        table_rows, vis_rows = table_rows[:limit], vis_rows[:limit]
    table: dict[str, Any] = {"dimensionHeaders": [{"name": "funnelStepName"}],
                             "metricHeaders": headers + headers if quirks else headers}
    vis: dict[str, Any] = {"dimensionHeaders": [{"name": "funnelStepName"}],
                           "metricHeaders": [headers[0]]}
    if table_rows:
        table["rows"] = table_rows
        vis["rows"] = vis_rows
    table["metadata"] = {}
    vis["metadata"] = {}
    return {"funnelTable": table, "funnelVisualization": vis}


_LEDGERS: "weakref.WeakKeyDictionary[Any, QuotaLedger]" = weakref.WeakKeyDictionary()
_LEDGERS_LOCK = Lock()


def ledger(state: Any) -> QuotaLedger:
    """The funnel token ledger of a sandbox state (GA's funnel quotas are their own category,
    with the core limits: 200,000 tokens a day, 40,000 an hour, 14,000 per project an hour)."""
    with _LEDGERS_LOCK:
        if state not in _LEDGERS:
            _LEDGERS[state] = QuotaLedger()
        return _LEDGERS[state]


def build(record: Any, req: Any, *, as_numbers: bool = False,
          today: date | None = None) -> tuple[dict[str, Any], int]:
    """Answer one RunFunnelReportRequest (raw protobuf): (answer JSON, days read)."""
    _check_request(req)
    steps, open_funnel = parse_steps(req)
    today = today or query.property_today(record.time_zone)
    if not req.date_ranges:
        raise ApiError(400, "Must specify at least one date range.")
    dr = req.date_ranges[0]
    start = query.resolve_date(dr.start_date, today, "startDate")
    end = query.resolve_date(dr.end_date, today, "endDate")
    if start > end:
        raise ApiError(400, f"Invalid date range: startDate {dr.start_date} is after endDate "
                            f"{dr.end_date}.")
    if start < query.FIRST_DATE:
        raise ApiError(400, f"Invalid date range: startDate {dr.start_date} is before "
                            f"{query.FIRST_DATE.isoformat()}, the earliest date the API supports.")
    hi = min(end, today)
    if record.traffic is None or hi < start:
        frame = pd.DataFrame({"user_id": np.empty(0, np.int64), "event_name": [],
                              "t": np.empty(0, np.int64)})
    else:
        frame = funnel_log(record, start, hi, today)
    results = compute(frame, steps, open_funnel)
    return answer(steps, results, as_numbers=as_numbers, limit=int(req.limit)), \
        (end - start).days + 1


def run_funnel_report(state: Any, match: "re.Match[str]", query_params: dict[str, list[str]],
                      body: Any) -> tuple[int, dict[str, Any]]:
    record = _Snapshot.of(state, match.group("pid"))
    req = parse(alpha_api.RunFunnelReportRequest, body)
    _check_property(record.id, req.property)
    out, days = build(record, req, as_numbers=enums_as_numbers(query_params))
    rows = len(out["funnelTable"].get("rows", []))
    quota = ledger(state).charge(record, token_cost(rows, days, 1, 4) * 2, False)
    if req.return_property_quota:
        out["propertyQuota"] = quota
    out["kind"] = "analyticsData#runFunnelReport"
    return 200, out


ROUTES: list[Route] = [
    route("POST", rf"/v1alpha/{_PID}:runFunnelReport", run_funnel_report, "data"),
]
