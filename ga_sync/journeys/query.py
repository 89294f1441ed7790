"""One BigQuery SQL definition for funnels, assists and identified visitors, run on two engines.

`build_journey_query(spec, periods, table=...)` returns the BigQuery standard SQL of ONE query
over the export's wildcard table (as `ga_sync.export.query.build_query` does for the facts),
and `JourneyQuery.duckdb_sql()` the same query transpiled by sqlglot for DuckDB over exported
files (with the export query's parameter rewrite). `to_counts(frame, ...)` turns its stacked
result, from either engine, into `JourneyCounts` per period; `ga_sync.journeys.results` makes
the report's numbers from those counts.

Shape (one scan of the export; every later step over far fewer rows, per user):

  events      the period's events: p, u (user_pseudo_id), ts (event_timestamp, µs), uid
              (user_id), sid, value and the parameters the spec's page:/from: goals test
  hits        one row per (event, signal it is): a signal is a distinct event name the
              journeys need (funnel steps, macro, micro and `identifies` goals), matched by its
              goal's definition when it is a page:/from: goal (the export query's helpers:
              the rule's source events whose parameters meet every condition), else by name.
              UNNEST of an array of the signals an event matches: no join.
  users       per (period, user): the last time the user carried a user_id (NULL: never)
  f<i>_r<k>   closed funnel i: the times at which a valid chain ends at step k. An event of
              step k at t is reachable when the latest reachable step-(k-1) time t' <= t
              exists (and t - t' <= within): one window function (running MAX over the
              user's merged, time-ordered rows) per step, never a cross join.
              Open funnels: step k is reached by anyone with an event of step k (a chain may
              start at any step, so at k itself).
  macro_ev    macro conversions with their value: the spec's value per conversion (for a
              once_per_session goal, on the session's first such event only), the event's
              `value` parameter for `value: event` goals
  firsts      per (period, user, micro or identifies goal) the time of the first event
  assisted    per (period, micro goal, user): converted at or after the first micro event,
              and the macro value produced from then on (an equi-join on the user)

The result stacks small tables with a `kind` column (JOURNEY_COLUMNS):

  'step'    p, i = funnel index, k = step index, n = users
  'users'   p, n = users, m = identified users, x = macro users, y = identified macro users,
            v = macro value
  'assist'  p, i = micro goal index, n = users, m = converted after, x = macro users among
            them (any time), v = macro value at or after their first micro event
  'ident'   p, i = identifies goal index, n = users, m = identified at or after their first

Event time is `event_timestamp` (µs). `session:` goals are matched by their own event name
here (what GA's audience trigger logged), not re-derived per session.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlglot
from sqlglot import exp

from ga_sync.export.query import _param, condition_sql, lit, transpile, ymd
from ga_sync.model import MACRO, MICRO, ONCE_PER_SESSION, EventRule, Funnel, Spec
from ga_sync.periods import Period

JOURNEY_COLUMNS = ("kind", "p", "i", "k", "n", "m", "x", "y", "v")
#: The export columns the journeys query reads (user_id beyond the facts query's).
JOURNEY_COLUMNS_READ = ("event_date", "event_timestamp", "event_name", "event_params",
                        "user_pseudo_id", "user_id")


@dataclass(frozen=True)
class JourneyQuery:
    """The journeys query for one property: BigQuery SQL, its tree, and what it counts."""

    sql: str
    tree: exp.Expression = field(repr=False)
    periods: tuple[Period, ...]
    funnels: tuple[Funnel, ...]
    micro: tuple[str, ...]  # micro goals, in the spec's order (the 'assist' rows' i)
    identifies: tuple[str, ...]  # identifies goals (the 'ident' rows' i)

    def duckdb_sql(self, table_sql: str = "__export_events") -> str:
        return transpile(self.sql, table_sql)


def wanted(spec: Spec) -> bool:
    """Whether the spec asks for anything this query counts: funnels, `identifies` goals, or
    micro and macro goals (assists)."""
    tiers = {g.tier for g in spec.goals}
    return bool(spec.funnels) or any(g.identifies for g in spec.goals) or \
        (MACRO in tiers and MICRO in tiers)


def build_journey_query(spec: Spec, periods: Sequence[Period], *,
                        table: str = "`project`.`analytics_0`.`events_*`",
                        intraday: Sequence[str] = (), user_id: bool = True) -> JourneyQuery:
    """The one query counting every funnel, assist and identified number of `periods`.

    `table` is the wildcard table (`ga_sync.export.query.table_ref`), `intraday` the days read
    from `events_intraday_*`; `user_id=False` reads no `user_id` column (files without one:
    nobody is identified).
    """
    periods = tuple(periods)
    if not periods:
        raise ValueError("no period to query")
    goals = {g.event: g for g in spec.goals}
    macro = [g for g in spec.goals if g.tier == MACRO]
    micro = [g for g in spec.goals if g.tier == MICRO]
    ident = [g for g in spec.goals if g.identifies]
    funnels = tuple(spec.funnels)
    names: list[str] = []
    for n in [s for f in funnels for s in f.steps] + [g.event for g in macro + micro + ident]:
        if n not in names:
            names.append(n)
    sig = {n: i for i, n in enumerate(names)}
    rules = {n: goals[n].origin for n in names
             if n in goals and isinstance(goals[n].origin, EventRule)}
    fields: dict[str, set[str]] = {}
    for r in rules.values():
        for c in r.where:
            fields.setdefault(c.field, set()).add(r.source)
    field_col = {f: f"param_{i}" for i, f in enumerate(sorted(fields))}
    valued = sorted({(rules[g.event].source if g.event in rules else g.event)
                     for g in macro if g.value is None})
    need_sid = any(g.counting == ONCE_PER_SESSION and g.value is not None for g in macro)

    def in_list(values: Sequence[str]) -> str:
        return "(" + ", ".join(lit(v) for v in sorted(values)) + ")"

    def match(n: str) -> str:
        r = rules.get(n)
        if r is None:
            return f"name = {lit(n)}"
        return " AND ".join([f"name = {lit(r.source)}"] +
                            [condition_sql(field_col[c.field], c) for c in r.where])

    lo, hi = ymd(min(p.start for p in periods)), ymd(max(p.end for p in periods))
    suffix = f"_TABLE_SUFFIX BETWEEN {lit(lo)} AND {lit(hi)}"
    intraday = tuple(sorted(set(intraday)))
    if intraday:
        suffix = f"({suffix} OR _TABLE_SUFFIX IN {in_list(['intraday_' + d for d in intraday])})"
    periods_sql = "\n  UNION ALL ".join(
        f"SELECT {i} AS p, {lit(ymd(p.start))} AS lo, {lit(ymd(p.end))} AS hi"
        for i, p in enumerate(periods))
    uid = "e.user_id" if user_id else "CAST(NULL AS STRING)"
    cols = ["per.p AS p", "e.user_pseudo_id AS u", "e.event_timestamp AS ts", f"{uid} AS uid",
            "e.event_name AS name"]
    cols.append(f"{_param('ga_session_id', 'int')} AS sid" if need_sid
                else "CAST(NULL AS INT64) AS sid")
    cols.append(f"IF(e.event_name IN {in_list(valued)}, {_param('value', 'number')}, NULL) "
                "AS value" if valued else "CAST(NULL AS FLOAT64) AS value")
    for f, col in field_col.items():
        cols.append(f"IF(e.event_name IN {in_list(fields[f])}, {_param(f, 'string')}, NULL) "
                    f"AS {col}")
    every = sorted({(rules[n].source if n in rules else n) for n in names})
    signals = ", ".join(f"IF({match(n)}, {sig[n]}, NULL)" for n in names) or "NULL"

    ctes = [f"periods AS (\n  {periods_sql}\n)",
            "events AS (\n  SELECT " + ",\n    ".join(cols) +
            f"\n  FROM {table} AS e\n  JOIN periods AS per ON e.event_date BETWEEN per.lo AND "
            f"per.hi\n  WHERE {suffix}\n)",
            "users AS (\n  SELECT p, u, MAX(IF(uid IS NOT NULL, ts, NULL)) AS known_ts\n"
            "  FROM events GROUP BY p, u\n)"]
    if names:
        ctes.append("hits AS (\n  SELECT p, u, ts, sid, value, s\n  FROM (SELECT * FROM events "
                    f"WHERE name IN {in_list(every)}) AS ev\n"
                    f"  CROSS JOIN UNNEST([{signals}]) AS s\n  WHERE s IS NOT NULL\n)")
    out: list[str] = []
    for i, f in enumerate(funnels):
        steps = [sig[s] for s in f.steps]
        if f.open:
            for k, s in enumerate(steps):
                out.append(f"SELECT 'step' AS kind, p, {i} AS i, {k} AS k, COUNT(DISTINCT u) AS n, "
                           "NULL AS m, NULL AS x, NULL AS y, NULL AS v"
                           f" FROM hits WHERE s = {s} GROUP BY p")
            continue
        ctes.append(f"f{i}_r0 AS (\n  SELECT p, u, ts FROM hits WHERE s = {steps[0]}\n)")
        within = "" if f.within is None else f" AND ts - prev_ts <= {int(f.within) * 1_000_000}"
        for k in range(1, len(steps)):
            ctes.append(
                f"f{i}_r{k} AS (\n  SELECT p, u, ts FROM (\n"
                f"    SELECT p, u, ts, cur, MAX(IF(cur = 0, ts, NULL)) OVER (PARTITION BY p, u "
                "ORDER BY ts, cur ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS prev_ts\n"
                f"    FROM (SELECT p, u, ts, 0 AS cur FROM f{i}_r{k - 1}\n"
                f"          UNION ALL SELECT p, u, ts, 1 AS cur FROM hits WHERE s = "
                f"{steps[k]}) AS merged\n"
                f"  ) AS w\n  WHERE cur = 1 AND prev_ts IS NOT NULL{within}\n)")
        for k in range(len(steps)):
            out.append(f"SELECT 'step' AS kind, p, {i} AS i, {k} AS k, COUNT(DISTINCT u) AS n, "
                       "NULL AS m, NULL AS x, NULL AS y, NULL AS v "
                       f"FROM f{i}_r{k} GROUP BY p")
    if macro:
        cases = []
        for g in macro:
            if g.value is None:
                v = "COALESCE(value, 0)"
            elif g.counting == ONCE_PER_SESSION:
                v = f"IF(sid IS NOT NULL AND nth = 1, {float(g.value)!r}, 0)"
            else:
                v = repr(float(g.value))
            cases.append(f"WHEN {sig[g.event]} THEN {v}")
        ids = ", ".join(str(sig[g.event]) for g in macro)
        ctes.append(
            "macro_ev AS (\n  SELECT p, u, ts, CASE s " + " ".join(cases) + " ELSE 0 END AS mv\n"
            "  FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY p, u, sid, s ORDER BY ts) AS nth"
            f"\n        FROM hits WHERE s IN ({ids})) AS m\n)")
        ctes.append("macro_users AS (\n  SELECT p, u, SUM(mv) AS mv FROM macro_ev "
                    "GROUP BY p, u\n)")
        out.append("SELECT 'users' AS kind, us.p, NULL AS i, NULL AS k, COUNT(*) AS n, "
                   "COUNTIF(us.known_ts IS NOT NULL) AS m, COUNTIF(mu.u IS NOT NULL) AS x, "
                   "COUNTIF(mu.u IS NOT NULL AND us.known_ts IS NOT NULL) AS y, "
                   "SUM(mu.mv) AS v\n  FROM users AS us LEFT JOIN macro_users AS mu "
                   "ON mu.p = us.p AND mu.u = us.u GROUP BY us.p")
    else:
        out.append("SELECT 'users' AS kind, p, NULL AS i, NULL AS k, COUNT(*) AS n, "
                   "COUNTIF(known_ts IS NOT NULL) AS m, 0 AS x, 0 AS y, "
                   "CAST(NULL AS FLOAT64) AS v FROM users GROUP BY p")
    firsts = sorted({sig[g.event] for g in micro + ident})
    if firsts:
        ctes.append("firsts AS (\n  SELECT p, u, s, MIN(ts) AS first_ts FROM hits "
                    f"WHERE s IN ({', '.join(map(str, firsts))}) GROUP BY p, u, s\n)")
    if micro and macro:
        ids = ", ".join(str(sig[g.event]) for g in micro)
        ctes.append(
            "assisted AS (\n  SELECT f.p, f.s, f.u, COUNTIF(me.ts >= f.first_ts) > 0 AS after,"
            " COUNT(me.u) > 0 AS macro, SUM(IF(me.ts >= f.first_ts, me.mv, 0)) AS mv\n"
            "  FROM firsts AS f LEFT JOIN macro_ev AS me ON me.p = f.p AND me.u = f.u\n"
            f"  WHERE f.s IN ({ids})\n  GROUP BY f.p, f.s, f.u\n)")
        for j, g in enumerate(micro):
            out.append(f"SELECT 'assist' AS kind, p, {j} AS i, NULL AS k, COUNT(*) AS n, "
                       "COUNTIF(after) AS m, COUNTIF(macro) AS x, NULL AS y, SUM(mv) AS v "
                       f"FROM assisted WHERE s = {sig[g.event]} GROUP BY p")
    elif micro:
        for j, g in enumerate(micro):
            out.append(f"SELECT 'assist' AS kind, p, {j} AS i, NULL AS k, COUNT(*) AS n, "
                       "0 AS m, 0 AS x, NULL AS y, 0.0 AS v "
                       f"FROM firsts WHERE s = {sig[g.event]} GROUP BY p")
    for j, g in enumerate(ident):
        out.append(f"SELECT 'ident' AS kind, f.p, {j} AS i, NULL AS k, COUNT(*) AS n, "
                   "COUNTIF(us.known_ts >= f.first_ts) AS m, NULL AS x, NULL AS y, NULL AS v "
                   "FROM firsts AS f JOIN users AS us ON us.p = f.p AND us.u = f.u "
                   f"WHERE f.s = {sig[g.event]} GROUP BY f.p")
    typed = [_typed(q) for q in out]
    sql = "WITH " + ",\n".join(ctes) + "\n" + "\nUNION ALL\n".join(typed) + "\n"
    tree = sqlglot.parse_one(sql, read="bigquery")
    return JourneyQuery(sql=tree.sql("bigquery", pretty=True), tree=tree, periods=periods,
                        funnels=funnels, micro=tuple(g.event for g in micro),
                        identifies=tuple(g.event for g in ident))


def _typed(select: str) -> str:
    """A stacked SELECT with every column cast to the result's type (UNION ALL needs them
    alike on both engines): i, k, n, m, x, y INT64, v FLOAT64."""
    return f"SELECT kind, p, CAST(i AS INT64) AS i, CAST(k AS INT64) AS k, " \
           f"CAST(n AS INT64) AS n, CAST(m AS INT64) AS m, CAST(x AS INT64) AS x, " \
           f"CAST(y AS INT64) AS y, CAST(v AS FLOAT64) AS v FROM ({select}) AS t"


# --------------------------------------------------------------------------- result -> counts


@dataclass
class JourneyCounts:
    """What the journeys query (or the Data API) counted for one period."""

    period: Period
    funnel_users: dict[str, list[int]] = field(default_factory=dict)
    users: int | None = None
    identified: int | None = None
    macro_users: int | None = None
    identified_macro_users: int | None = None
    macro_value: float | None = None
    #: micro goal -> (users, converted_after, macro users among them, assisted value)
    assists: dict[str, tuple[int, int, int, float]] | None = None
    #: identifies goal -> (users, identified at or after their first event); None: unknown
    identifies: dict[str, tuple[int, int | None]] | None = None


def to_counts(frame: Any, query: JourneyQuery) -> list[JourneyCounts]:
    """The stacked result (JOURNEY_COLUMNS, either engine) -> JourneyCounts per period."""
    import pandas as pd

    if not isinstance(frame, pd.DataFrame):
        frame = pd.DataFrame(list(frame), columns=list(JOURNEY_COLUMNS))

    def num(x: Any, kind: type = int) -> Any:
        return kind(0) if x is None or pd.isna(x) else kind(x)

    rows = list(frame.itertuples(index=False)) if len(frame) else []
    out = []
    for pi, period in enumerate(query.periods):
        mine = [r for r in rows if num(r.p) == pi]
        c = JourneyCounts(period)
        for i, f in enumerate(query.funnels):
            users = [0] * len(f.steps)
            for r in mine:
                if r.kind == "step" and num(r.i) == i:
                    users[num(r.k)] = num(r.n)
            c.funnel_users[f.name] = users
        tot = next((r for r in mine if r.kind == "users"), None)
        c.users = num(tot.n) if tot else 0
        c.identified = num(tot.m) if tot else 0
        c.macro_users = num(tot.x) if tot else 0
        c.identified_macro_users = num(tot.y) if tot else 0
        c.macro_value = num(tot.v, float) if tot else 0.0
        c.assists = {}
        for j, event in enumerate(query.micro):
            r = next((r for r in mine if r.kind == "assist" and num(r.i) == j), None)
            c.assists[event] = (num(r.n), num(r.m), num(r.x), num(r.v, float)) if r else \
                (0, 0, 0, 0.0)
        c.identifies = {}
        for j, event in enumerate(query.identifies):
            r = next((r for r in mine if r.kind == "ident" and num(r.i) == j), None)
            c.identifies[event] = (num(r.n), num(r.m)) if r else (0, 0)
        out.append(c)
    return out


__all__ = ["JOURNEY_COLUMNS", "JOURNEY_COLUMNS_READ", "JourneyCounts", "JourneyQuery",
           "build_journey_query", "to_counts", "wanted"]
