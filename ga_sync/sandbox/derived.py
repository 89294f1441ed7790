"""Events GA makes itself: event create rules and audience triggers over the synthetic log.

`traffic.event_log` is what the site sends. GA adds, from the moment they exist:

- **event create rules**: an event matching every condition of a rule in force (its
  `eventConditions`: `event_name` or a parameter, compared as the rule says) also produces an
  event named `destinationEvent`, a copy of the source row (its session, page, country ...;
  `value` and the file parameters only when `sourceCopyParameters`; `parameterMutations`
  applied to `value` only). A patched rule works with its new conditions from the patch on, a
  deleted one stops. Rules on a stream other than the property's first web stream see no
  traffic (the synthetic traffic is that stream's). Created events are not fed to other rules.
- **audience triggers**: a session that qualifies for an audience with an `eventTrigger` logs
  the trigger event, a copy of the session's last row (no `value`, no file parameters). With
  `AUDIENCE_JOINED` once per user per membership: when the user had no qualifying session in
  the `membershipDurationDays` before (or since the audience exists); with
  `AUDIENCE_MEMBERSHIP_RENEWED` on the user's first qualifying session of each day. Archived
  audiences stop; a patched trigger logs its new event name from the patch on (membership
  carries over). Modelled filters: INCLUDE/EXCLUDE clauses of scope
  `AUDIENCE_FILTER_SCOPE_WITHIN_SAME_SESSION` made of `andGroup`/`orGroup`/`notExpression`,
  `eventFilter` (the event occurred in the session, or an `eventCount` numeric filter on it)
  and `dimensionOrMetricFilter` on `sessionDuration` (seconds; numeric). An audience with
  anything else never triggers in the sandbox.

Times: every event of a session happens at the session's start (`session_start` seconds after
local midnight of its `date`, in the property's time zone); a rule or audience version applies
to sessions starting in [from, until).

`event_log(traffic, start, end, time_zone, versions)` returns the log with these rows inserted
right after their source row (a session's rows stay contiguous), plus `PARAMETER_COLUMNS` and:
`origin` (categorical: `collected`, `rule`, `audience`) and `event_time` (int64, Unix seconds
of the session start); a journeys profile's `signed_in_user_id` is copied to made rows (the same
user's events). `property_event_log(state, pid, start, end)` does it for a sandbox
property, as the Data API sees it. Everything is vectorized: Python loops run over rules,
conditions and category values, never over events.
"""

from __future__ import annotations

import datetime as _dt
import json
from datetime import date, timedelta
from typing import Any, Callable, Sequence
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from ga_sync import model, re2check
from ga_sync.sandbox import traffic as _traffic

ORIGINS = ("collected", "rule", "audience")
_STRING_OPS = {"EQUALS": model.EQUALS, "CONTAINS": model.CONTAINS,
               "STARTS_WITH": model.STARTS_WITH, "ENDS_WITH": model.ENDS_WITH,
               "REGULAR_EXPRESSION": model.REGEX}
_NUMERIC_OPS: dict[str, Callable[[float, float], bool]] = {
    "GREATER_THAN": lambda a, b: a > b, "GREATER_THAN_OR_EQUAL": lambda a, b: a >= b,
    "LESS_THAN": lambda a, b: a < b, "LESS_THAN_OR_EQUAL": lambda a, b: a <= b}
# Parameters a condition can read: categorical columns of the log (others are missing).
_CATEGORY_PARAMETERS = ("page_location",) + _traffic.PARAMETER_COLUMNS
_DURATION_FIELDS = ("sessionDuration", "session_duration")
SAME_SESSION = "AUDIENCE_FILTER_SCOPE_WITHIN_SAME_SESSION"


def _seconds(text: str | None) -> float:
    if text is None:
        return float("inf")
    return _dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def applicable(record: Any) -> tuple[dict[str, Any], ...]:
    """The versions the traffic model uses (rules on the traffic's stream, audiences), in the
    order they were made. Call under the state's lock; the dicts are never modified."""
    from ga_sync.sandbox.machinery import timeline, traffic_stream
    versions = timeline(record)
    if not versions:
        return ()
    stream = traffic_stream(record)
    out = []
    for v in versions:
        if v["kind"] == "rule" and v["resource"]["name"].split("/")[3] != stream:
            continue
        if v["kind"] == "audience" and not v["resource"].get("eventTrigger"):
            continue
        out.append(v)
    return tuple(out)


def versions_key(versions: Sequence[dict[str, Any]]) -> str:
    return json.dumps(list(versions), sort_keys=True) if versions else ""


# ---- rule conditions ---------------------------------------------------------------------------

def _predicate(cond: dict[str, Any]) -> Callable[[str], bool]:
    kind = str(cond.get("comparisonType", ""))
    value = str(cond.get("value", ""))
    base = kind.removesuffix("_CASE_INSENSITIVE")
    if base == "REGULAR_EXPRESSION":  # RE2, partial match, as GA (re2check.py)
        ignore = kind.endswith("_CASE_INSENSITIVE")
        return lambda text: re2check.search(value, text, ignore)
    if base in _STRING_OPS:
        c = model.Condition(str(cond.get("field", "")), _STRING_OPS[base], value,
                            kind.endswith("_CASE_INSENSITIVE"))
        return c.matches
    if base in _NUMERIC_OPS:
        op, want = _NUMERIC_OPS[base], float(value)

        def numeric(text: str) -> bool:
            try:
                return op(float(text), want)
            except ValueError:
                return False
        return numeric
    return lambda text: False


def _condition_mask(log: pd.DataFrame, rows: np.ndarray, cond: dict[str, Any]) -> np.ndarray:
    """Whether each of `rows` meets `cond` (a missing parameter never matches; `negated`
    inverts the outcome, missing included)."""
    field = str(cond.get("field", ""))
    pred = _predicate(cond)
    column = "event_name" if field == "event_name" else field
    if column == "event_name" or column in _CATEGORY_PARAMETERS:
        cat = log[column].cat
        truth = np.array([pred(str(c)) for c in cat.categories] + [False], dtype=bool)
        hit = truth[cat.codes.to_numpy()[rows]]
    elif field == "value":
        vals = log["value"].to_numpy()[rows]
        present = ~np.isnan(vals)
        uniq, inverse = np.unique(vals[present], return_inverse=True)
        truth = np.array([pred(f"{v:g}") for v in uniq], dtype=bool)
        hit = np.zeros(rows.size, dtype=bool)
        hit[present] = truth[inverse] if uniq.size else False
    else:
        hit = np.zeros(rows.size, dtype=bool)
    return ~hit if cond.get("negated") else hit


# ---- audience filters --------------------------------------------------------------------------

class _Unsupported(Exception):
    """An audience filter the sandbox does not model: the audience never triggers."""


def _number(value: dict[str, Any]) -> float:
    if "int64Value" in value:
        return float(value["int64Value"])
    if "doubleValue" in value:
        return float(value["doubleValue"])
    return 0.0


def _numeric(flt: dict[str, Any]) -> Callable[[np.ndarray], np.ndarray]:
    nf = flt.get("numericFilter")
    if not nf:
        raise _Unsupported("only numeric filters")
    op, want = nf.get("operation"), _number(nf.get("value") or {})
    if op == "GREATER_THAN":
        return lambda a: a > want
    if op == "LESS_THAN":
        return lambda a: a < want
    if op == "EQUAL":
        return lambda a: a == want
    raise _Unsupported(f"operation {op}")


class _Sessions:
    """Per-session facts of a log, computed once per call."""

    def __init__(self, log: pd.DataFrame, session: np.ndarray, first: np.ndarray,
                 extra_src: np.ndarray, extra_names: list[str]) -> None:
        self.log, self.session, self.first = log, session, first
        self.n = first.size
        self.extra_src, self.extra_names = extra_src, np.array(extra_names, dtype=object)
        self._counts: dict[str, np.ndarray] = {}

    def count(self, event: str) -> np.ndarray:
        if event not in self._counts:
            cats = list(self.log["event_name"].cat.categories)
            codes = self.log["event_name"].cat.codes.to_numpy()
            c = np.zeros(self.n, dtype=np.int64)
            if event in cats:
                c += np.bincount(self.session[codes == cats.index(event)], minlength=self.n)
            made = self.extra_src[self.extra_names == event] if self.extra_names.size else \
                self.extra_src[:0]
            if made.size:
                c += np.bincount(self.session[made], minlength=self.n)
            self._counts[event] = c
        return self._counts[event]

    def duration(self) -> np.ndarray:
        return self.log["session_duration"].to_numpy()[self.first]


def _count_expr(expr: dict[str, Any], counts: np.ndarray) -> np.ndarray:
    """An eventParameterFilterExpression made of eventCount filters."""
    if "andGroup" in expr:
        parts = [_count_expr(e, counts) for e in expr["andGroup"].get("filterExpressions", [])]
        return np.logical_and.reduce(parts) if parts else np.ones(counts.size, bool)
    if "orGroup" in expr:
        parts = [_count_expr(e, counts) for e in expr["orGroup"].get("filterExpressions", [])]
        return np.logical_or.reduce(parts) if parts else np.zeros(counts.size, bool)
    if "notExpression" in expr:
        return ~_count_expr(expr["notExpression"], counts)
    flt = expr.get("dimensionOrMetricFilter")
    if flt and flt.get("fieldName") == "eventCount":
        return _numeric(flt)(counts)
    raise _Unsupported("event parameter filters other than eventCount")


def _expr(expr: dict[str, Any], s: _Sessions) -> np.ndarray:
    if "andGroup" in expr:
        parts = [_expr(e, s) for e in expr["andGroup"].get("filterExpressions", [])]
        return np.logical_and.reduce(parts) if parts else np.ones(s.n, bool)
    if "orGroup" in expr:
        parts = [_expr(e, s) for e in expr["orGroup"].get("filterExpressions", [])]
        return np.logical_or.reduce(parts) if parts else np.zeros(s.n, bool)
    if "notExpression" in expr:
        return ~_expr(expr["notExpression"], s)
    if "eventFilter" in expr:
        ef = expr["eventFilter"]
        counts = s.count(ef.get("eventName", ""))
        if ef.get("eventParameterFilterExpression"):
            return (counts > 0) & _count_expr(ef["eventParameterFilterExpression"], counts)
        return counts > 0
    flt = expr.get("dimensionOrMetricFilter")
    if flt and flt.get("fieldName") in _DURATION_FIELDS:
        return _numeric(flt)(s.duration())
    raise _Unsupported("filter")


def _qualifies(audience: dict[str, Any], s: _Sessions) -> np.ndarray:
    ok = np.ones(s.n, dtype=bool)
    for clause in audience.get("filterClauses", []):
        simple = clause.get("simpleFilter")
        if not simple or simple.get("scope") != SAME_SESSION:
            raise _Unsupported("only simple filters within the same session")
        hit = _expr(simple.get("filterExpression") or {}, s)
        ok &= ~hit if clause.get("clauseType") == "EXCLUDE" else hit
    return ok


# ---- the log -----------------------------------------------------------------------------------

def _day_epochs(days: list[str], time_zone: str) -> np.ndarray:
    try:
        zone: Any = ZoneInfo(time_zone or "UTC")
    except (KeyError, ValueError):
        zone = _dt.timezone.utc
    return np.array([_dt.datetime.strptime(d, "%Y%m%d").replace(tzinfo=zone).timestamp()
                     for d in days] or [0], dtype=np.int64)


def _lookback(versions: Sequence[dict[str, Any]], start: date, time_zone: str) -> int:
    """Days before `start` whose qualifying sessions decide AUDIENCE_JOINED in the range."""
    back = 0
    for v in versions:
        trig = v["resource"].get("eventTrigger") or {}
        if v["kind"] != "audience" or trig.get("logCondition") != "AUDIENCE_JOINED":
            continue
        began = _dt.datetime.fromisoformat(v["from"].replace("Z", "+00:00")).date()
        if began < start:
            days = int(v["resource"].get("membershipDurationDays", 0))
            back = max(back, min(days + 1, (start - began).days + 1))
    return back


def event_log(traffic: dict[str, Any] | None, start: date, end: date, time_zone: str = "UTC",
              versions: Sequence[dict[str, Any]] = ()) -> pd.DataFrame:
    """The event log with GA's own events added (module docstring)."""
    back = _lookback(versions, start, time_zone)
    lo = start - timedelta(days=back)
    log = _traffic.event_log(traffic, lo, end, time_zone, parameters=True)
    n = len(log)
    if traffic is None or n == 0:
        log["origin"] = pd.Categorical([], categories=list(ORIGINS))
        log["event_time"] = np.zeros(0, dtype=np.int64)
        return _since(log, back) if n else log
    days = list(log["date"].cat.categories)
    ts = _day_epochs(days, time_zone)[log["date"].cat.codes.to_numpy()] \
        + log["session_start"].to_numpy().astype(np.int64)
    sessions = log["session_id"].to_numpy()
    changed = np.concatenate(([True], sessions[1:] != sessions[:-1]))
    session = np.cumsum(changed) - 1
    first = np.flatnonzero(changed)
    last = np.concatenate((first[1:] - 1, [n - 1]))

    src: list[np.ndarray] = []
    names: list[str] = []        # one per extra row
    name_parts: list[str] = []   # one per part (src entry)
    copy: list[bool] = []
    origin: list[int] = []
    value_set: list[float | None] = []
    for v in versions:
        if v["kind"] != "rule":
            continue
        rule = v["resource"]
        rows = np.flatnonzero((ts >= _seconds(v["from"])) & (ts < _seconds(v["until"])))
        conds = sorted(rule.get("eventConditions", []),
                       key=lambda c: c.get("field") != "event_name")
        for cond in conds:
            if not rows.size:
                break
            rows = rows[_condition_mask(log, rows, cond)]
        if not rows.size:
            continue
        src.append(rows)
        name_parts.append(rule["destinationEvent"])
        names += [rule["destinationEvent"]] * rows.size
        copy.append(bool(rule.get("sourceCopyParameters")))
        origin.append(1)
        value_set.append(_value_mutation(rule))

    made_src = np.concatenate(src) if src else np.empty(0, dtype=np.int64)
    facts = _Sessions(log, session, first, made_src, names)
    for aid, group in _audience_groups(versions).items():
        try:
            ok = _qualifies(group[0]["resource"], facts)
        except _Unsupported:
            continue
        froms = np.array([_seconds(v["from"]) for v in group])
        untils = np.array([_seconds(v["until"]) for v in group])
        sess_ts = ts[first]
        which = np.searchsorted(froms, sess_ts, side="right") - 1
        inside = (which >= 0) & (sess_ts < untils[np.maximum(which, 0)])
        qual = np.flatnonzero(ok & inside)
        if not qual.size:
            continue
        users = log["user_id"].to_numpy()[first[qual]]
        qts = sess_ts[qual]
        order = np.lexsort((qts, users))
        qual, users, qts = qual[order], users[order], qts[order]
        new_user = np.concatenate(([True], users[1:] != users[:-1]))
        for i, v in enumerate(group):
            trig = v["resource"]["eventTrigger"]
            mine = which[qual] == i
            if trig.get("logCondition") == "AUDIENCE_JOINED":
                gap = np.concatenate(([np.inf], np.diff(qts).astype(float)))
                days = float(v["resource"].get("membershipDurationDays", 0)) * 86400
                fire = new_user | (gap > days)
            else:
                day = log["date"].cat.codes.to_numpy()[first[qual]]
                fire = new_user | np.concatenate(([True], day[1:] != day[:-1]))
            rows = last[qual[fire & mine]]
            if rows.size:
                src.append(rows)
                name_parts.append(trig["eventName"])
                copy.append(False)
                origin.append(2)
                value_set.append(None)
    if not src:
        log["origin"] = pd.Categorical.from_codes(np.zeros(n, dtype=np.int8),
                                                  categories=list(ORIGINS), validate=False)
        log["event_time"] = ts
        return _since(log, back)
    return _since(_insert(log, ts, src, name_parts, copy, origin, value_set), back)


def _value_mutation(rule: dict[str, Any]) -> float | None:
    for m in rule.get("parameterMutations", []):
        if m.get("parameter") == "value":
            try:
                return float(m.get("parameterValue", ""))
            except ValueError:
                return None
    return None


def _audience_groups(versions: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for v in versions:
        if v["kind"] == "audience" and (v["resource"].get("eventTrigger") or {}).get("eventName"):
            groups.setdefault(v["id"], []).append(v)
    for g in groups.values():
        g.sort(key=lambda v: _seconds(v["from"]))
    return groups


def _insert(log: pd.DataFrame, ts: np.ndarray, src: list[np.ndarray], names: list[str],
            copy: list[bool], origin: list[int], value_set: list[float | None]) -> pd.DataFrame:
    """Insert each part's rows after their source rows, in one take."""
    n = len(log)
    part = np.concatenate([np.full(s.size, i, dtype=np.int32) for i, s in enumerate(src)])
    rows = np.concatenate(src)
    order = np.argsort(rows, kind="stable")  # parts in order within a source row
    rows, part = rows[order], part[order]
    counts = 1 + np.bincount(rows, minlength=n)
    take = np.repeat(np.arange(n), counts)
    starts = np.cumsum(counts) - counts
    rank = np.arange(rows.size) - np.searchsorted(rows, rows, side="left")
    pos = starts[rows] + 1 + rank
    out = log.take(take).reset_index(drop=True)

    events = list(out["event_name"].cat.categories)
    for name in names:
        if name not in events:
            events.append(name)
    part_code = np.array([events.index(nm) for nm in names], dtype=np.int32)
    codes = out["event_name"].cat.codes.to_numpy().astype(np.int32)
    codes[pos] = part_code[part]
    out["event_name"] = pd.Categorical.from_codes(codes, categories=events, validate=False)
    drop = ~np.array(copy, dtype=bool)[part]
    value = out["value"].to_numpy().copy()
    value[pos[drop]] = np.nan
    fixed = np.array([np.nan if v is None else v for v in value_set])[part]
    has = ~np.isnan(fixed)
    value[pos[has]] = fixed[has]
    out["value"] = value
    engagement = out["engagement_time_msec"].to_numpy().copy()
    engagement[pos] = 0
    out["engagement_time_msec"] = engagement
    for col in _traffic.PARAMETER_COLUMNS:
        c = out[col].cat
        pc = c.codes.to_numpy().copy()
        pc[pos[drop]] = -1
        out[col] = pd.Categorical.from_codes(pc, categories=c.categories, validate=False)
    orig = np.zeros(len(out), dtype=np.int8)
    orig[pos] = np.array(origin, dtype=np.int8)[part]
    out["origin"] = pd.Categorical.from_codes(orig, categories=list(ORIGINS), validate=False)
    out["event_time"] = ts[take]
    out.attrs.update(log.attrs)
    return out


def _since(log: pd.DataFrame, back: int) -> pd.DataFrame:
    """Drop the look-back days (the first `back` date categories)."""
    if not back:
        return log
    dates = log["date"].cat
    codes = dates.codes.to_numpy()
    a = int(np.searchsorted(codes, back))
    out = log.iloc[a:].reset_index(drop=True)
    out["date"] = pd.Categorical.from_codes(codes[a:] - back, categories=list(dates.categories)[back:],
                                            ordered=True, validate=False)
    out.attrs.update(log.attrs)
    return out


def property_event_log(state: Any, pid: str | int, start: date, end: date) -> pd.DataFrame:
    """A sandbox property's event log as its Data API reports read it: collected events plus
    the events its rules and audience triggers made (for tests computing numbers on their own)."""
    with state.lock:
        record = state.properties[str(pid).removeprefix("properties/")]
        traffic, tz, versions = record.traffic, record.time_zone, applicable(record)
    return event_log(traffic, start, end, tz, versions)
