"""Funnels and identified visitors from the GA4 Data API.

Funnels: `runFunnelReport` (Data API v1alpha, the only version that has it), one call per
funnel and period, through the v1alpha client's own authorized session
(`Connection.data_alpha`) and `clients.call` (retries, per-property errors), as `ga_sync.data`
posts v1beta reports. A step is an event name; a `page:`/`from:` goal step is sent as its
definition (the rule's source event with parameter filters), so it counts before GA's rule
existed, as the report's goals do. `within` is `withinDurationFromPriorStep` ("3600s",
inclusive) on every step after the first; `open` is `isOpenFunnel`.

The answer is parsed defensively (GA4_FACTS "Data API v1alpha: funnels"): step names come
back prefixed ("3. purchase") and are matched by their number first, then by name; metric
headers may repeat a block while each row holds one block's values (the row's own length
decides which headers apply); rate metrics may be typed TYPE_INTEGER yet hold fractions (no
rate is read: completion and abandonment are recomputed from `activeUsers`); a step nobody
reached may be missing (0 users); the `funnelVisualization` sub-report stands in when
`funnelTable` has no rows.

Identified visitors: one `batchRunReports` (v1beta) with `totalUsers` by `signedInWithUserId`
("yes"/"no"), the same for users with a macro conversion, and macro users in all. Assists need
per-person sequences the Data API cannot give: status `needs-export`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from ga_sync.clients import Connection
from ga_sync.data import fetch, malformed
from ga_sync.errors import GaSyncError
from ga_sync.journeys.query import JourneyCounts
from ga_sync.model import MACRO, EventRule, Funnel, Goal, Spec
from ga_sync.periods import Period
from ga_sync.sources.data_api import MATCH_TYPES, _goals_filter

USERS_METRIC = "activeUsers"
STEP_DIMENSION = "funnelStepName"
SIGNED_IN = "signedInWithUserId"


# --------------------------------------------------------------------------- requests


def _step_filter(event: str, goal: Goal | None) -> dict[str, Any]:
    """A step's filterExpression: the event, or a page:/from: goal's definition."""
    if goal is not None and isinstance(goal.origin, EventRule):
        rule = goal.origin
        params = [{"funnelParameterFilter": {
            "eventParameterName": c.field,
            "stringFilter": {"matchType": MATCH_TYPES[c.op], "value": c.value,
                             "caseSensitive": not c.ignore_case}}} for c in rule.where]
        inner: dict[str, Any] = {"eventName": rule.source}
        if len(params) == 1:
            inner["funnelParameterFilterExpression"] = params[0]
        elif params:
            inner["funnelParameterFilterExpression"] = {"andGroup": {"expressions": params}}
        return {"funnelEventFilter": inner}
    return {"funnelEventFilter": {"eventName": event}}


def funnel_request(spec: Spec, funnel: Funnel, period: Period) -> dict[str, Any]:
    """The runFunnelReport body (proto3 JSON) for one funnel and period."""
    steps = []
    for k, event in enumerate(funnel.steps):
        step: dict[str, Any] = {"name": event, "filterExpression": _step_filter(event,
                                                                                spec.goal(event))}
        if k and funnel.within is not None:
            step["withinDurationFromPriorStep"] = f"{int(funnel.within)}s"
        steps.append(step)
    return {"dateRanges": [{"startDate": period.start.isoformat(),
                            "endDate": period.end.isoformat()}],
            "funnel": {"isOpenFunnel": bool(funnel.open), "steps": steps},
            "returnPropertyQuota": True}


def post_alpha(conn: Connection, property: str, method: str,
               body: dict[str, Any]) -> dict[str, Any]:
    """POST a v1alpha Data API method (`runFunnelReport`) through the v1alpha client's session
    (`data.post`: retries, per-property errors, MalformedAnswer for a non-JSON answer)."""
    from ga_sync.data import post
    return post(conn, property, method, body, version="v1alpha",
                what=f"run a funnel report ({method})")


# --------------------------------------------------------------------------- parsing


_PREFIX = re.compile(r"^\s*(\d+)\s*\.\s*(.*)$")


def _number(value: Any) -> float | None:
    raw = value.get("value") if isinstance(value, dict) else value
    try:
        x = float(str(raw).strip())
    except (TypeError, ValueError):
        return None
    return x if x == x and abs(x) != float("inf") else None


def _step_index(label: str, steps: Sequence[str]) -> int | None:
    """"3. purchase" -> 2; a label without a number -> the step of that name (any case)."""
    m = _PREFIX.match(label or "")
    if m:
        k = int(m.group(1)) - 1
        name = m.group(2).strip()
        if 0 <= k < len(steps) and (not name or name.casefold() == steps[k].casefold()
                                    or name.casefold() not in [s.casefold() for s in steps]):
            return k
        label = name
    folded = [s.casefold() for s in steps]
    text = (label or "").strip().casefold()
    return folded.index(text) if text in folded else None


def _sub_report_users(sub: Any, steps: Sequence[str]) -> tuple[list[int | None], int]:
    """Users per step from one sub-report (None where no row names the step), and the rows
    read."""
    found: list[int | None] = [None] * len(steps)
    if not isinstance(sub, dict):
        return found, 0
    dims = [h.get("name") if isinstance(h, dict) else None
            for h in sub.get("dimensionHeaders") or []]
    mets = [h.get("name") if isinstance(h, dict) else None
            for h in sub.get("metricHeaders") or []]
    d = dims.index(STEP_DIMENSION) if STEP_DIMENSION in dims else 0
    rows = sub.get("rows") or []
    used = 0
    for row in rows if isinstance(rows, list) else []:
        if not isinstance(row, dict):
            continue
        dvals = row.get("dimensionValues") or []
        mvals = row.get("metricValues") or []
        if len(dvals) <= d or not mvals:
            continue
        label = dvals[d].get("value", "") if isinstance(dvals[d], dict) else str(dvals[d])
        k = _step_index(str(label), steps)
        if k is None:
            continue
        # the row's length says which headers apply: a repeated block is read once
        names = mets[:len(mvals)]
        m = names.index(USERS_METRIC) if USERS_METRIC in names else 0
        users = _number(mvals[m])
        if users is None:
            continue
        used += 1
        n = int(round(users))
        found[k] = n if found[k] is None else max(found[k], n)  # a total row beats its parts
    return found, used


def parse_funnel(answer: Any, steps: Sequence[str], *,
                 property: str | None = None) -> list[int]:
    """A runFunnelReport answer -> users per step (steps missing from the answer: 0)."""
    if not isinstance(answer, dict) or not any(k in answer for k in
                                               ("funnelTable", "funnelVisualization")):
        raise malformed(property, "run a funnel report (runFunnelReport)",
                        "the answer has neither funnelTable nor funnelVisualization")
    found, used = _sub_report_users(answer.get("funnelTable"), steps)
    if not used:
        found, used = _sub_report_users(answer.get("funnelVisualization"), steps)
    return [n or 0 for n in found]


# --------------------------------------------------------------------------- pulls


def pull_funnels(conn: Connection, spec: Spec, property: str, periods: Sequence[Period]
                 ) -> tuple[list[dict[str, list[int]]], list[tuple[str, int, GaSyncError]]]:
    """Users per step of every funnel, per period: one runFunnelReport per funnel and period.

    A funnel GA refuses (or answers badly) is left out of its period and listed in the
    failures (funnel name, period index, error): one bad funnel never costs the others.
    """
    out, failed = [], []
    for i, period in enumerate(periods):
        users = {}
        for f in spec.funnels:
            try:
                answer = post_alpha(conn, property, "runFunnelReport",
                                    funnel_request(spec, f, period))
                users[f.name] = parse_funnel(answer, f.steps, property=property)
            except GaSyncError as e:
                failed.append((f.name, i, e))
        out.append(users)
    return out, failed


def identified_requests(spec: Spec, period: Period) -> list[tuple[str, dict[str, Any]]]:
    base = {"dateRanges": [{"startDate": period.start.isoformat(),
                            "endDate": period.end.isoformat()}],
            "limit": "100", "returnPropertyQuota": True}
    by = {"dimensions": [{"name": SIGNED_IN}], "metrics": [{"name": "totalUsers"}]}
    reqs = [("identified", {**base, **by})]
    macro = _goals_filter([g for g in spec.goals if g.tier == MACRO])
    if macro:
        reqs.append(("identified_macro", {**base, **by, "dimensionFilter": macro}))
        reqs.append(("macro_users", {**base, "metrics": [{"name": "totalUsers"}],
                                     "dimensionFilter": macro}))
    return reqs


def _yes(parsed: Any) -> int:
    cols = parsed.columns
    flags = cols.get(SIGNED_IN, [])
    values = cols.get("totalUsers", [])
    return int(sum(float(v) for f, v in zip(flags, values) if str(f).lower() == "yes"))


def pull_identified(conn: Connection, spec: Spec, property: str, period: Period,
                    users: int) -> JourneyCounts:
    """Identified users and macro users by signed-in state (one batchRunReports)."""
    reports = fetch(conn, property, identified_requests(spec, period))
    c = JourneyCounts(period, users=users, identified=_yes(reports["identified"]))
    if "macro_users" in reports:
        c.identified_macro_users = _yes(reports["identified_macro"])
        c.macro_users = int(sum(float(v) for v in
                                reports["macro_users"].columns.get("totalUsers", [])))
    c.identifies = {g.event: (None, None) for g in spec.goals if g.identifies}
    return c


__all__ = ["funnel_request", "identified_requests", "parse_funnel", "post_alpha",
           "pull_funnels", "pull_identified"]
