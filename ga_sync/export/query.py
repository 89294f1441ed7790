"""One query definition for every facts table, written as BigQuery SQL, run on two engines.

`build_query(spec, periods, table=...)` returns an `ExportQuery`: the BigQuery standard SQL of
ONE query over `project.analytics_<id>.events_*` that returns, for every period asked for, the
facts `ga_sync.facts` describes (period totals, days, goal events, daily goal events and
sessions with a macro or micro conversion), stacked in one result with a `kind` column.
`ExportQuery.duckdb_sql(table_sql)` is the same query transpiled for DuckDB over exported files,
and `to_facts(frame, ...)` turns the result (from either engine) into `ReportFacts`.

Why sqlglot and not ibis: the artefact an analyst needs to see, audit, cost and paste into the
BigQuery console is BigQuery SQL (`--show-sql`), and the export's idioms are BigQuery's own
(`_TABLE_SUFFIX` over a wildcard table, `UNNEST(event_params)` scalar subqueries, `COUNTIF`,
`REGEXP_CONTAINS`). With sqlglot that SQL *is* the definition: it is parsed (so it is
guaranteed to parse as BigQuery SQL), printed for BigQuery as-is and transpiled for DuckDB, with
one targeted rewrite (below). With ibis the definition would be a Python expression whose
BigQuery SQL is an output we do not control, the backend pulls in pyarrow and a BigQuery
backend package, and wildcard tables with `_TABLE_SUFFIX` are awkward to express. sqlglot is
pure Python with no dependencies, which keeps installs small.

The DuckDB rewrites (applied to the transpiled tree; tests check them against DuckDB's plain
transpilation of the same SQL): BigQuery reads a parameter with a correlated scalar subquery,
`(SELECT p.value.int_value FROM UNNEST(event_params) AS p WHERE p.key = 'ga_session_id')`.
DuckDB runs that pattern ~30x slower than its list functions (measured: 11.9 s vs 0.4 s over
2.5 M events), so `duckdb_sql` replaces each such subquery with the first parameter with that
key, `list_filter(event_params, lambda p: p.key = '...')[1]` (NULL when there is none, as the
subquery gives): a single field is read from it directly, a COALESCE reads its first field so
and maps the rest over the filtered list only where the first is NULL. And `SUM(IF(c, x,
NULL))` (also MIN, MAX, AVG, COUNT) becomes `SUM(x) FILTER (WHERE c)`: the same rows, but DuckDB
computes `x` once instead of inside a CASE per aggregate.

Definitions (issue 12, item 2; docs/reports.md has them beside the Data API's):

- a session is a distinct (`user_pseudo_id`, `ga_session_id` int parameter); events without a
  `ga_session_id` count for users and events but belong to no session;
- users are distinct `user_pseudo_id`; the day is `event_date` (the property's time zone);
- a goal's `count` is its events (`once_per_event`), its `sessions` the sessions holding one
  (`once_per_session`); `value` sums the event's `value` parameter, whichever of int / float /
  double it arrived as;
- `tier_sessions`: sessions with at least one event of the tier's goals;
- `page:` / `from:` goals (`EventRule`) are counted from their *definition*: the rule's source
  events whose parameters meet every condition (values compared as strings: the first non-null
  of string / int / float / double, cast to STRING; regex is a partial match,
  `REGEXP_CONTAINS`; `ignore_case` lowers both sides). Events already carrying the goal's own
  event name (the ones GA's rule created) are ignored, so days before the rule existed count
  too and nothing counts twice. Their `value` is the source event's `value` parameter (GA's
  rule copies the parameters);
- `session:` goals (`SessionRule`) are counted exactly, once per qualifying session:
  `min_page_views` counts the session's `page_view` events, `min_seconds` is the last minus
  the first `event_timestamp` (µs) of the session's events. Their day is the session's first
  day, and they carry no value. Within a period only the period's events count.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from datetime import date
from typing import Any

import sqlglot
from sqlglot import exp

from ga_sync.model import (CONTAINS, ENDS_WITH, EQUALS, PAGE_EVENT, REGEX, STARTS_WITH, TIERS,
                           Condition, EventRule, Goal, SessionRule, Spec)
from ga_sync.periods import Period

#: The columns of the stacked result, whichever engine ran it. `kind` says which table a row
#: belongs to: 'total' (per period: n = events, sessions, users, value = events without a
#: ga_session_id), 'day' (day, sessions, users), 'event' (event, n = count, sessions, value),
#: 'daily' (day, event, n, sessions, value), 'tier' (event = the tier, sessions).
RESULT_COLUMNS = ("kind", "p", "day", "event", "n", "sessions", "users", "value")
#: The export columns the query reads (and `_TABLE_SUFFIX`, the wildcard's pseudo-column).
COLUMNS_READ = ("event_date", "event_timestamp", "event_name", "event_params", "user_pseudo_id")
_EP = "ep"  # the UNNEST alias of parameter subqueries (what the DuckDB rewrite looks for)


def ymd(day: date) -> str:
    """A date as the export's `event_date` / table suffix, 'YYYYMMDD'."""
    return day.strftime("%Y%m%d")


def lit(value: Any) -> str:
    """A BigQuery literal, escaped by sqlglot (never hand-quoted)."""
    if isinstance(value, str):
        return exp.Literal.string(value).sql("bigquery")
    return exp.Literal.number(value).sql("bigquery")


def table_ref(project: str, dataset: str, prefix: str = "events_") -> str:
    """`project.dataset.events_*`, quoted for BigQuery (backticks around each part)."""
    for part, what in ((project, "project"), (dataset, "dataset")):
        if not re.fullmatch(r"[A-Za-z0-9_.:-]+", part or ""):
            raise ValueError(f"not a BigQuery {what} name: {part!r}")
    return f"`{project}`.`{dataset}`.`{prefix}*`"


def _param(key: str, kind: str, array: str = "e.event_params") -> str:
    """BigQuery: the value of event parameter `key` in `array` (this event's `event_params`),
    as `kind`: int (int_value), number (FLOAT64 of int/float/double) or string (any, as
    STRING)."""
    v = f"{_EP}.value"
    if kind == "int":
        expr = f"{v}.int_value"
    elif kind == "number":
        expr = (f"COALESCE(CAST({v}.int_value AS FLOAT64), {v}.float_value, "
                f"{v}.double_value)")
    else:
        expr = (f"COALESCE({v}.string_value, CAST({v}.int_value AS STRING), "
                f"CAST({v}.float_value AS STRING), CAST({v}.double_value AS STRING))")
    return (f"(SELECT {expr} FROM UNNEST({array}) AS {_EP} "
            f"WHERE {_EP}.key = {lit(key)} LIMIT 1)")


def condition_sql(column: str, c: Condition) -> str:
    """One `where` condition on a parameter column (a STRING), as BigQuery SQL.

    Same meaning as `Condition.matches`: NULL (no such parameter) never matches; regex is a
    partial match; `ignore_case` compares lowered text (regex: the `(?i)` flag).
    """
    if c.op == REGEX:
        pattern = ("(?i)" if c.ignore_case else "") + c.value
        return f"REGEXP_CONTAINS({column}, {lit(pattern)})"
    x, v = (f"LOWER({column})", f"LOWER({lit(c.value)})") if c.ignore_case \
        else (column, lit(c.value))
    if c.op == EQUALS:
        return f"{x} = {v}"
    if c.op == CONTAINS:
        return f"STRPOS({x}, {v}) > 0"
    if c.op == STARTS_WITH:
        return f"STARTS_WITH({x}, {v})"
    if c.op == ENDS_WITH:
        return f"ENDS_WITH({x}, {v})"
    raise ValueError(f"unknown match operator {c.op!r}")


@dataclass(frozen=True)
class ExportQuery:
    """The query for one property: BigQuery SQL (`sql`), and what it covers."""

    sql: str  # BigQuery standard SQL, pretty-printed: exactly what runs on BigQuery
    periods: tuple[Period, ...]
    table: str  # the wildcard table, e.g. `proj`.`analytics_123`.`events_*`
    suffix_range: tuple[str, str]  # the daily tables read: _TABLE_SUFFIX BETWEEN these
    intraday: tuple[str, ...] = ()  # days read from events_intraday_* ('YYYYMMDD')
    goals: tuple[Goal, ...] = ()
    # the same SQL over a placeholder table: what DuckDB runs does not depend on the table
    # (it reads a view), so properties with the same goals and periods share one transpilation
    template: str = field(default="", repr=False, compare=False)

    @property
    def tree(self) -> exp.Expression:
        """`sql` parsed by sqlglot (a fresh copy: callers may change it)."""
        return _parse_bigquery(self.sql).copy()

    def duckdb_sql(self, table_sql: str = "__export_events") -> str:
        """The same query for DuckDB, reading `table_sql` (a view or table of the export's
        rows with a `_TABLE_SUFFIX` column) instead of the BigQuery wildcard table."""
        return _duckdb_text(self.template or self.sql, table_sql)


@lru_cache(maxsize=64)
def _parse_bigquery(sql: str) -> exp.Expression:
    return sqlglot.parse_one(sql, read="bigquery")


@lru_cache(maxsize=64)
def _duckdb_text(bigquery_sql: str, table_sql: str) -> str:
    return _to_duckdb(_parse_bigquery(bigquery_sql), table_sql)


def transpile(bigquery_sql: str, table_sql: str = "__export_events") -> str:
    """Any BigQuery query over a GA4 export wildcard table (`...events_*`) -> DuckDB SQL
    reading `table_sql` instead, with the parameter subqueries and conditional aggregates
    rewritten (see the module docstring). What a local BigQuery emulator over exported files
    runs."""
    return _duckdb_text(bigquery_sql, table_sql)


def _to_duckdb(tree: exp.Expression, table_sql: str) -> str:
    tree = tree.copy()
    replacement = exp.to_table(table_sql, dialect="duckdb") if \
        re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", table_sql) else None
    for t in list(tree.find_all(exp.Table)):
        if t.name.endswith("*"):
            new = replacement.copy() if replacement is not None else \
                exp.Table(this=exp.Identifier(this=table_sql, quoted=False))
            new.set("alias", t.args.get("alias"))
            t.replace(new)
    for sub in list(tree.find_all(exp.Subquery)):
        rewritten = _param_lookup_duckdb(sub)
        if rewritten is not None:
            sub.replace(rewritten)
    for agg in list(tree.find_all(exp.Sum, exp.Min, exp.Max, exp.Avg, exp.Count)):
        rewritten = _filtered_aggregate(agg)
        if rewritten is not None:
            agg.replace(rewritten)
    return tree.sql("duckdb", pretty=True)


def _filtered_aggregate(agg: exp.Expression) -> exp.Expression | None:
    """`SUM(IF(c, x, NULL))` -> `SUM(x) FILTER (WHERE c)` (also MIN, MAX, AVG, COUNT): the
    same rows reach the aggregate (a NULL or false `c` gives NULL, which it ignores), but
    DuckDB evaluates `x` once per row in the aggregate's input instead of inside a CASE per
    aggregate (where, with `x` a parameter lookup, it costs a pass over the whole batch each
    time). Left alone: DISTINCT, window aggregates, an IF with a non-NULL else."""
    arg = agg.this
    if not isinstance(arg, exp.If) or isinstance(agg.parent, (exp.Window, exp.Filter)):
        return None
    if isinstance(arg, exp.Distinct) or agg.args.get("distinct"):
        return None
    otherwise = arg.args.get("false")
    if otherwise is not None and not isinstance(otherwise, exp.Null):
        return None
    new = agg.copy()
    new.set("this", arg.args["true"].copy())
    return exp.Filter(this=new, expression=exp.Where(this=arg.this.copy()))


def _param_lookup_duckdb(sub: exp.Subquery) -> exp.Expression | None:
    """`(SELECT f(ep) FROM UNNEST(e.event_params) AS ep WHERE ep.key = 'k' LIMIT 1)` ->
    `f(list_filter(e.event_params, lambda ep: ep.key = 'k')[1])`: every `ep` in `f` is the
    first parameter with that key (NULL when there is none, as the subquery gives), as raw
    DuckDB text. Substituting the picked element (rather than mapping `f` over the filtered
    list with a second lambda) lets DuckDB's lazy COALESCE evaluate the later branches only
    for the rows whose first branch is NULL."""
    from ga_sync.export.writer import lambda_sql

    select = sub.this
    if not isinstance(select, exp.Select) or len(select.expressions) != 1:
        return None
    source = select.args.get("from_") or select.args.get("from")
    unnest = source.this if source is not None else None
    if not isinstance(unnest, exp.Unnest):
        return None
    alias = unnest.args.get("alias")
    names = [c.name for c in alias.columns] if alias is not None and alias.columns else []
    if not names and alias is not None and alias.name:
        names = [alias.name]
    if len(names) != 1 or len(unnest.expressions) != 1:
        return None
    var = names[0]
    where = select.args.get("where")
    if where is None or not isinstance(where.this, exp.EQ):
        return None
    keyed, key = where.this.this, where.this.expression
    if not isinstance(key, exp.Literal) or not isinstance(keyed, exp.Column) or \
            keyed.name != "key" or keyed.table != var:
        return None
    if any(isinstance(n, (exp.Select, exp.Unnest)) for n in select.expressions[0].walk()):
        return None
    array = unnest.expressions[0].sql("duckdb")
    listed = f"list_filter({array}, {lambda_sql(var, f'{var}.key = ' + key.sql('duckdb'))})"
    body = select.expressions[0]
    if isinstance(body, exp.Alias):
        body = body.this

    def mapped(expr: exp.Expression) -> str:  # f over the filtered list, first result
        return f"(list_transform({listed}, {lambda_sql(var, expr.sql('duckdb'))})[1])"

    def uses(expr: exp.Expression) -> int:
        return sum(1 for n in expr.walk() if isinstance(n, exp.Identifier) and n.name == var)

    def substituted(expr: exp.Expression) -> exp.Expression | None:
        """`expr` with its one use of the variable, a field path, replaced by the picked
        element's field; None when it uses the variable otherwise."""
        expr = expr.copy()
        columns = [c for c in expr.find_all(exp.Column) if c.parts and c.parts[0].name == var]
        if len(columns) != 1 or uses(expr) != 1:
            return None
        c = columns[0]
        path = exp.Var(this=f"({listed}[1])" + "".join(f".{p.name}" for p in c.parts[1:]))
        if c is expr:
            return path
        c.replace(path)
        return expr

    one = substituted(body)
    if one is not None:  # a single field (the session id): one pass, no second lambda
        return exp.Paren(this=one) if not isinstance(one, exp.Var) else one
    if isinstance(body, exp.Coalesce) and body.expressions:
        first = substituted(body.this)
        if first is not None:  # the field GA usually fills first, the rest only if it is NULL
            rest = body.expressions[0] if len(body.expressions) == 1 else \
                exp.Coalesce(this=body.expressions[0].copy(),
                             expressions=[e.copy() for e in body.expressions[1:]])
            return exp.Var(this=f"COALESCE({first.sql('duckdb')}, {mapped(rest)})")
    return exp.Var(this=mapped(body))


def _event_rules(goals: Sequence[Goal]) -> list[tuple[Goal, EventRule]]:
    return [(g, g.origin) for g in goals if isinstance(g.origin, EventRule)]


def _session_rules(goals: Sequence[Goal]) -> list[tuple[Goal, SessionRule]]:
    return [(g, g.origin) for g in goals if isinstance(g.origin, SessionRule)]


def build_query(spec: Spec | Sequence[Goal], periods: Sequence[Period], *,
                table: str = "`project`.`analytics_0`.`events_*`",
                intraday: Sequence[str] = ()) -> ExportQuery:
    """The one query computing every facts table of `periods` for the spec's goals.

    `table` is the wildcard table (see `table_ref`); `intraday` the days ('YYYYMMDD') to read
    from `events_intraday_*` because their daily table does not exist yet. The SQL is parsed by
    sqlglot as BigQuery SQL before it is returned (a bug here fails here, not on BigQuery).

    Shape (one scan of the export, every other step over far fewer rows):

      events        the period's events: p, day, u, sid, name, ts, where-parameters, params
      marked        + each event's goals as bits of mask0, mask1, ... (62 goals a word)
      valued        + the `value` parameter, looked up only for events with a goal bit
      session_days  one row per (period, day, user, session): events, page views, first and
                    last timestamp (only what session goals need), the goal masks' BIT_OR,
                    and per goal i its events `n_i` and value `v_i`
      sessions      one row per (period, user, session), the same over its days
      period_wide / day_wide / session_day_wide   per period / per day, every goal's count,
                    sessions (with goal i's bit) and value side by side
      final SELECT  those few rows unpivoted into RESULT_COLUMNS with UNION ALL
    """
    goals = tuple(spec.goals if isinstance(spec, Spec) else spec)
    periods = tuple(periods)
    if not periods:
        raise ValueError("no period to query")
    lo = ymd(min(p.start for p in periods))
    hi = ymd(max(p.end for p in periods))
    # goals counted from events (plain and rule goals) and per session; one column set each
    by_event = [g for g in dict((g.event, g) for g in goals
                                if not isinstance(g.origin, SessionRule)).values()]
    by_session = [g for g in dict((g.event, g) for g in goals
                                  if isinstance(g.origin, SessionRule)).values()]
    rules = [(g, g.origin) for g in by_event if isinstance(g.origin, EventRule)]
    plain_names = sorted({g.event for g in by_event if g.origin is None})
    valued = sorted(set(plain_names) | {r.source for _, r in rules})
    fields: dict[str, set[str]] = {}
    for _, r in rules:
        for c in r.where:
            fields.setdefault(c.field, set()).add(r.source)
    field_col = {f: f"param_{i}" for i, f in enumerate(sorted(fields))}

    def in_list(names: Sequence[str]) -> str:
        return "(" + ", ".join(lit(n) for n in sorted(names)) + ")"

    def match(g: Goal) -> str:
        r = g.origin
        return " AND ".join([f"name = {lit(r.source)}"] +
                            [condition_sql(field_col[c.field], c) for c in r.where])

    views_rules = [g for g in by_session if g.origin.min_page_views is not None]
    seconds_rules = [g for g in by_session if g.origin.min_page_views is None]

    def qualifies(g: Goal) -> str:
        r = g.origin
        test = (f"views >= {int(r.min_page_views)}" if r.min_page_views is not None
                else f"duration_us >= {int(r.min_seconds) * 1_000_000}")
        return f"sid IS NOT NULL AND {test}"

    periods_sql = "\n  UNION ALL ".join(
        f"SELECT {i} AS p, {lit(ymd(p.start))} AS lo, {lit(ymd(p.end))} AS hi"
        for i, p in enumerate(periods))
    cols = [
        "per.p AS p", "e.event_date AS day", "e.user_pseudo_id AS u", "e.event_name AS name",
        "e.event_timestamp AS ts", f"{_param('ga_session_id', 'int')} AS sid",
    ]
    for f, col in field_col.items():
        cols.append(f"IF(e.event_name IN {in_list(fields[f])}, {_param(f, 'string')}, NULL) "
                    f"AS {col}")
    if by_event:
        cols.append("e.event_params AS params")  # for the value of goal events only
    suffix = f"_TABLE_SUFFIX BETWEEN {lit(lo)} AND {lit(hi)}"
    intraday = tuple(sorted(set(intraday)))
    if intraday:
        suffix = (f"({suffix} OR _TABLE_SUFFIX IN "
                  f"{in_list(['intraday_' + d for d in intraday])})")

    ev = {g.event: i for i, g in enumerate(by_event)}
    se = {g.event: i for i, g in enumerate(by_session)}

    # Goal i is bit i % 62 of mask word i // 62: every event gets its goals' bits once (one
    # CASE over the event name for plain goals, one test per rule goal), so each later step
    # carries one column per 62 goals and tests bits instead of re-matching names.
    def bit(i: int) -> tuple[int, int]:
        return i // 62, 1 << (i % 62)

    chunks = sorted({bit(i)[0] for i in ev.values()})
    masks = []
    for k in chunks:
        in_chunk = [g for g in by_event if bit(ev[g.event])[0] == k]
        plain = [g for g in in_chunk if g.origin is None]
        parts = []
        if plain:
            parts.append("CASE name " + " ".join(f"WHEN {lit(g.event)} THEN {bit(ev[g.event])[1]}"
                                                 for g in plain) + " ELSE 0 END")
        parts += [f"IF({match(g)}, {bit(ev[g.event])[1]}, 0)" for g in in_chunk
                  if g.origin is not None]
        masks.append(f"{' | '.join(parts)} AS mask{k}")

    def has(i: int, prefix: str = "m") -> str:
        k, b = bit(i)
        return f"({prefix}{k} & {b}) != 0"

    base_cols = ["p", "day", "u", "name", "ts", "sid"]
    any_goal = " OR ".join(f"mask{k} != 0" for k in chunks)
    sd_aggs = ["COUNT(*) AS events"]
    if views_rules:
        sd_aggs.append(f"COUNTIF(name = {lit(PAGE_EVENT)}) AS views")
    if seconds_rules:
        sd_aggs += ["MIN(ts) AS first_ts", "MAX(ts) AS last_ts"]
    sd_aggs += [f"BIT_OR(mask{k}) AS m{k}" for k in chunks]
    for g in by_event:
        i = ev[g.event]
        sd_aggs.append(f"COUNTIF({has(i, 'mask')}) AS n{i}")
        sd_aggs.append(f"SUM(IF({has(i, 'mask')}, value, NULL)) AS v{i}")
    # A session holds goal i when one of its days does (counts and values add up over days,
    # so the period's come from day_wide).
    s_aggs = ["MIN(day) AS day", "SUM(events) AS events"]
    if views_rules:
        s_aggs.append("SUM(views) AS views")
    if seconds_rules:
        s_aggs.append("MAX(last_ts) - MIN(first_ts) AS duration_us")
    s_aggs += [f"BIT_OR(m{k}) AS m{k}" for k in chunks]

    # per period: totals, sessions with each goal, every tier
    pw = ["SUM(events) AS events", "COUNT(sid) AS sessions", "COUNT(DISTINCT u) AS users",
          "SUM(IF(sid IS NULL, events, 0)) AS no_sid"]
    for i in ev.values():
        pw.append(f"COUNTIF(sid IS NOT NULL AND {has(i)}) AS s{i}")
    for g in by_session:
        pw.append(f"COUNTIF({qualifies(g)}) AS q{se[g.event]}")
    tiers = [t for t in TIERS if any(g.tier == t for g in goals)]
    for t in tiers:
        tests = [has(ev[g.event]) for g in by_event if g.tier == t] + \
                [f"({qualifies(g)})" for g in by_session if g.tier == t]
        pw.append(f"COUNTIF(sid IS NOT NULL AND ({' OR '.join(tests)})) AS tier_{t}")
    dw = ["COUNT(sid) AS sessions", "COUNT(DISTINCT u) AS users"]
    for i in ev.values():
        dw += [f"SUM(n{i}) AS n{i}", f"COUNTIF(sid IS NOT NULL AND {has(i)}) AS s{i}",
               f"SUM(v{i}) AS v{i}"]
    ps = [f"SUM(n{i}) AS pn{i}, SUM(v{i}) AS pv{i}" for i in ev.values()]
    sdw = [f"COUNTIF({qualifies(g)}) AS q{se[g.event]}" for g in by_session]

    null_s, null_i, null_f = "CAST(NULL AS STRING)", "CAST(NULL AS INT64)", \
        "CAST(NULL AS FLOAT64)"
    out = [f"SELECT 'total' AS kind, p, {null_s} AS day, {null_s} AS event, events AS n, "
           f"sessions, users, CAST(no_sid AS FLOAT64) AS value FROM period_wide",
           f"SELECT 'day', p, day, {null_s}, {null_i}, sessions, users, {null_f} FROM day_wide"]
    for g in by_event:
        i = ev[g.event]
        out.append(f"SELECT 'event', p, {null_s}, {lit(g.event)}, pn{i}, s{i}, {null_i}, "
                   f"pv{i} FROM period_all WHERE pn{i} > 0")
        out.append(f"SELECT 'daily', p, day, {lit(g.event)}, n{i}, s{i}, {null_i}, v{i} "
                   f"FROM day_wide WHERE n{i} > 0")
    for g in by_session:
        j = se[g.event]
        out.append(f"SELECT 'event', p, {null_s}, {lit(g.event)}, q{j}, q{j}, {null_i}, "
                   f"{null_f} FROM period_wide WHERE q{j} > 0")
        out.append(f"SELECT 'daily', p, day, {lit(g.event)}, q{j}, q{j}, {null_i}, {null_f} "
                   f"FROM session_day_wide WHERE q{j} > 0")
    for t in tiers:
        out.append(f"SELECT 'tier', p, {null_s}, {lit(t)}, {null_i}, tier_{t}, {null_i}, "
                   f"{null_f} FROM period_wide")
    period_all = ""
    if by_event:
        period_all = f""",
period_sums AS (
  SELECT p, {", ".join(ps)}
  FROM day_wide GROUP BY p
),
period_all AS (
  SELECT * FROM period_wide JOIN period_sums USING (p)
)"""
    session_day_cte = ""
    if by_session:
        session_day_cte = f""",
session_day_wide AS (
  SELECT p, day, {", ".join(sdw)}
  FROM sessions GROUP BY p, day
)"""
    sep = ",\n    "
    goal_ctes, counted = "", "events"
    if by_event:
        # the value parameter is looked up only for the events that are some goal's
        goal_ctes = f""",
marked AS (
  SELECT {", ".join(base_cols)}, params,
    {sep.join(masks)}
  FROM events
),
valued AS (
  SELECT {", ".join(base_cols)}, {", ".join(f"mask{k}" for k in chunks)},
    IF({any_goal}, {_param('value', 'number', 'params')}, NULL) AS value
  FROM marked
)"""
        counted = "valued"
    sql = f"""
WITH periods AS (
  {periods_sql}
),
events AS (
  SELECT {sep.join(cols)}
  FROM {_TABLE_PLACEHOLDER} AS e
  JOIN periods AS per ON e.event_date BETWEEN per.lo AND per.hi
  WHERE {suffix}
){goal_ctes},
session_days AS (
  SELECT p, day, u, sid,
    {sep.join(sd_aggs)}
  FROM {counted} GROUP BY p, day, u, sid
),
sessions AS (
  SELECT p, u, sid,
    {sep.join(s_aggs)}
  FROM session_days GROUP BY p, u, sid
),
period_wide AS (
  SELECT p,
    {sep.join(pw)}
  FROM sessions GROUP BY p
),
day_wide AS (
  SELECT p, day,
    {sep.join(dw)}
  FROM session_days GROUP BY p, day
){period_all}{session_day_cte}
{(chr(10) + "UNION ALL" + chr(10)).join(out)}
"""
    template = _compile(sql)
    return ExportQuery(sql=template.replace(_TABLE_PLACEHOLDER, _printed_table(table)),
                       periods=periods, table=table, suffix_range=(lo, hi), intraday=intraday,
                       goals=goals, template=template)


#: The wildcard table while the SQL is built and parsed; replaced by the property's table in
#: the text (so properties with the same goals and periods share one parse and transpilation).
_TABLE_PLACEHOLDER = "`ga_sync_project`.`ga_sync_dataset`.`events_*`"


@lru_cache(maxsize=64)
def _compile(sql: str) -> str:
    """Parse `sql` as BigQuery SQL (a bug in the builder fails here, not on BigQuery) and
    pretty-print it."""
    text = _parse_bigquery(sql).sql("bigquery", pretty=True)
    if text.count(_TABLE_PLACEHOLDER) != 1:
        raise AssertionError("the built SQL must read the wildcard table exactly once")
    return text


@lru_cache(maxsize=256)
def _printed_table(table: str) -> str:
    """`table` as sqlglot prints it in BigQuery SQL (what it would be in `_compile`'s text)."""
    return sqlglot.parse_one(f"SELECT 1 FROM {table}", read="bigquery").find(exp.Table) \
        .sql("bigquery")


def columns_read(sql: str, alias: str = "e") -> set[str]:
    """The export columns a BigQuery query reads through table alias `alias` (for tests and
    for checking that only the needed columns are scanned)."""
    tree = sqlglot.parse_one(sql, read="bigquery")
    out = set()
    for c in tree.find_all(exp.Column):
        if c.table == alias:
            out.add(c.name)
        elif c.name.upper() == "_TABLE_SUFFIX":
            out.add("_TABLE_SUFFIX")
    return out


# --------------------------------------------------------------------------- result -> facts


def to_facts(result: Any, periods: Sequence[Period], *, property: str, source: str,
             time_zone: str | None = None, currency: str | None = None) -> "Any":
    """The stacked result (RESULT_COLUMNS, from either engine) -> `ReportFacts`.

    Only goal events appear in `events` and `daily` (as on the Data API source), and only days
    with traffic in `days`; a tier with goals but no session is 0.
    """
    import pandas as pd

    from ga_sync.facts import PeriodFacts, ReportFacts

    frame = result if isinstance(result, pd.DataFrame) else pd.DataFrame(
        list(result), columns=list(RESULT_COLUMNS))
    frame = frame.astype({"p": "int64"}) if len(frame) else frame
    out = []
    for i, period in enumerate(periods):
        part = frame[frame["p"] == i] if len(frame) else frame
        total = part[part["kind"] == "total"]
        sessions = int(total["sessions"].iloc[0]) if len(total) else 0
        users = int(total["users"].iloc[0]) if len(total) else 0
        tiers = part[part["kind"] == "tier"]
        tier_sessions = {str(t): float(s) for t, s in zip(tiers["event"], tiers["sessions"])
                         if t is not None and not pd.isna(t)}
        ev = part[part["kind"] == "event"].sort_values("event")
        events = pd.DataFrame({"count": _ints(ev["n"]), "sessions": _ints(ev["sessions"]),
                               "value": _floats(ev["value"])},
                              index=pd.Index(ev["event"].astype(str).to_numpy(), name="event"))
        d = part[part["kind"] == "day"].sort_values("day")
        days = pd.DataFrame({"date": _dates(d["day"]), "sessions": _ints(d["sessions"]),
                             "users": _ints(d["users"])})
        dl = part[part["kind"] == "daily"].sort_values(["day", "event"])
        daily = pd.DataFrame({"date": _dates(dl["day"]), "event": dl["event"].astype(str).to_numpy(),
                              "count": _ints(dl["n"]), "sessions": _ints(dl["sessions"]),
                              "value": _floats(dl["value"])})
        out.append(PeriodFacts(period=period, sessions=sessions, users=users,
                               tier_sessions=tier_sessions, events=events, days=days,
                               daily=daily))
    return ReportFacts(property=property, periods=out, currency=currency, time_zone=time_zone,
                       thresholded=False, sampled=False, other_row=False, quota=None,
                       source=source)


def _ints(values: Any) -> Any:
    import numpy as np
    import pandas as pd
    return pd.to_numeric(values, errors="coerce").fillna(0).to_numpy(dtype=np.int64)


def _floats(values: Any) -> Any:
    import numpy as np
    import pandas as pd
    return pd.to_numeric(values, errors="coerce").fillna(0.0).to_numpy(dtype=np.float64)


def _dates(values: Any) -> Any:
    from datetime import datetime
    return [datetime.strptime(str(v), "%Y%m%d").date() for v in values]


__all__ = ["COLUMNS_READ", "ExportQuery", "RESULT_COLUMNS", "build_query", "columns_read",
           "condition_sql", "table_ref", "to_facts", "transpile", "ymd"]
