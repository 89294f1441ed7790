"""The export source's query, its engines and its failures.

- the BigQuery SQL parses as BigQuery SQL, reads only the days asked for (`_TABLE_SUFFIX`) and
  only the columns needed; its DuckDB transpilation has no correlated UNNEST left;
- `bigquery:` through a fake BigQuery client that runs the submitted SQL on DuckDB over the
  same files gives the same facts as `export:`; the dry run refuses a scan over `max_gb`
  before anything runs and the real job carries `maximum_bytes_billed`;
- bad inputs (no dataset folder, a day with no table, no ga_session_id, unreadable files,
  mixed formats, an unknown --source) each raise a clear ExportError for that property;
- on the same sandbox traffic the Data API source and the export source give the same facts.
"""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path
from types import SimpleNamespace

import duckdb
import pytest
import sqlglot
from sqlglot import exp

from ga_sync.errors import ApiError, GaSyncError
from ga_sync.export import writer
from ga_sync.export.engines import (BigQueryEngine, DryRun, DuckDBEngine, check_scan,
                                    ON_DEMAND_USD_PER_TIB)
from ga_sync.export.layout import (ExportNotFound, MissingDays, ScanTooLarge, UnreadableExport,
                                   find_export)
from ga_sync.export.query import (COLUMNS_READ, build_query, columns_read, table_ref,
                                  transpile)
from ga_sync.export.source import (BigQuerySource, ExportSource, SourceError, parse_source)
from ga_sync.model import Condition, EventRule, Goal, SessionRule, Spec
from ga_sync.periods import Period

from tests.test_export_facts import (GOALS, PID, PROP, TZ, add_params, as_dicts, assert_facts,
                                     expected, spec, traffic)

PERIOD = Period(date(2025, 3, 10), date(2025, 3, 16))


@pytest.fixture(scope="module")
def small_export(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("small")
    writer.write_traffic(traffic(), PERIOD.start, PERIOD.end, root, PID, time_zone=TZ,
                         transform=add_params)
    return root


def copy_export(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, dirs_exist_ok=True)
    return dst / f"analytics_{PID}"


# --------------------------------------------------------------------------- the SQL


def test_bigquery_sql_parses_and_reads_only_the_days_and_columns_needed():
    q = build_query(spec(), [PERIOD, PERIOD.previous()],
                    table=table_ref("my-project", f"analytics_{PID}"), intraday=["20250316"])
    tree = sqlglot.parse_one(q.sql, read="bigquery")  # raises if it does not parse
    assert tree.sql("bigquery", pretty=True) == q.sql
    between = [b for b in tree.find_all(exp.Between)
               if isinstance(b.this, exp.Column) and b.this.name == "_TABLE_SUFFIX"]
    assert [(b.args["low"].this, b.args["high"].this) for b in between] == \
        [("20250303", "20250316")]
    assert "_TABLE_SUFFIX IN ('intraday_20250316')" in q.sql
    assert "`my-project`.`analytics_555000111`.`events_*`" in q.sql
    assert columns_read(q.sql) == set(COLUMNS_READ) | {"_TABLE_SUFFIX"}
    assert "SELECT *" not in q.sql.upper().replace("\n", " ")
    tables = [t for t in tree.find_all(exp.Table) if t.name.startswith("events_")]
    assert len(tables) == 1  # one scan of the export per property
    ddb = q.duckdb_sql()
    assert "UNNEST" not in ddb.upper() and "list_filter" in ddb
    assert "events_*" not in ddb


def test_literals_are_escaped_and_match_as_the_model_says(tmp_path):
    """Quotes, backslashes and regex metacharacters in conditions survive both dialects."""
    tricky = ["it's \\ a/b", "O'Brien", "a.b*c", "plain", "PLAIN", "x\\y"]
    conds = [Condition("label", "equals", "it's \\ a/b"),
             Condition("label", "contains", "'brien", True),
             Condition("label", "regex", r"^a\.b\*"),
             Condition("label", "starts_with", "pla"),
             Condition("label", "ends_with", "AIN", True),
             Condition("label", "equals", "x\\y")]
    goals = [Goal(f"g{i}", "micro", 1.0, origin=EventRule("page_view", (c,)))
             for i, c in enumerate(conds)]
    q = build_query(goals, [PERIOD])
    sqlglot.parse_one(q.sql, read="bigquery")
    from ga_sync.sandbox.traffic import event_log
    log = event_log(traffic(), PERIOD.start, PERIOD.start, TZ)
    import numpy as np
    log["label"] = np.array(tricky, dtype=object)[np.arange(len(log)) % len(tricky)]
    writer.write_events(log, tmp_path, PID, time_zone=TZ)
    s = Spec(client="t", properties=(PROP,), currency="USD", goals=tuple(goals))
    period = Period(PERIOD.start, PERIOD.start)
    facts = ExportSource(tmp_path).pull(None, s, PROP, [period]).periods[0]
    pv = log[log["event_name"] == "page_view"]
    for g, c in zip(goals, conds):
        want = int(pv["label"].map(c.matches).sum())
        got = int(facts.events.loc[g.event, "count"]) if g.event in facts.events.index else 0
        assert got == want > 0, (c, got, want)


def test_transpile_runs_any_bigquery_query_over_the_files(small_export):
    """What a BigQuery emulator over the files runs: a user's own BigQuery SQL."""
    sql = f"""SELECT event_name, COUNT(*) AS n,
        COUNT(DISTINCT CONCAT(user_pseudo_id, '.', CAST((SELECT p.value.int_value
            FROM UNNEST(event_params) AS p WHERE p.key = 'ga_session_id') AS STRING))) AS s
      FROM `x.analytics_{PID}.events_*`
      WHERE _TABLE_SUFFIX BETWEEN '20250310' AND '20250311' AND event_name = 'purchase'
      GROUP BY event_name"""
    assert "list_filter" in transpile(sql)
    layout = find_export(small_export, PID)
    frame = DuckDBEngine().execute_bigquery_sql(sql, layout)
    want = expected(spec(GOALS[:1]), Period(date(2025, 3, 10), date(2025, 3, 11)))
    assert (frame["n"].iloc[0], frame["s"].iloc[0]) == want["events"]["purchase"][:2]


# --------------------------------------------------------------------------- BigQuery (fake)


class FakeJob:
    def __init__(self, bytes_: int, rows=None):
        self.total_bytes_processed = bytes_
        self._rows = rows or []

    def result(self):
        return [SimpleNamespace(values=lambda r=r: r) for r in self._rows]


class FakeBigQuery:
    """Lists the tables of the export folder and runs the submitted BigQuery SQL on DuckDB
    over its files, as the sandbox's BigQuery emulator will; records every call."""

    def __init__(self, root: Path, bytes_: int = 123_456_789):
        self.root, self.bytes = root, bytes_
        self.calls: list[tuple[str, object]] = []

    def list_tables(self, dataset: str):
        self.calls.append(("list_tables", dataset))
        folder = self.root / dataset.split(".", 1)[1]
        if not folder.is_dir():
            from google.api_core.exceptions import NotFound
            raise NotFound(f"Not found: Dataset {dataset}")
        return [SimpleNamespace(table_id=p.name.split(".")[0]) for p in sorted(folder.iterdir())]

    def query(self, sql: str, job_config=None):
        self.calls.append(("query", job_config))
        sqlglot.parse_one(sql, read="bigquery")
        if job_config is not None and job_config.dry_run:
            return FakeJob(self.bytes)
        layout = find_export(self.root, PID)
        frame = DuckDBEngine().execute_bigquery_sql(sql, layout)
        return FakeJob(self.bytes, [tuple(r) for r in frame.itertuples(index=False)])


def test_bigquery_source_equals_export_source(small_export):
    s = spec()
    fake = FakeBigQuery(small_export)
    source = parse_source("bigquery:my-project", client=fake)
    assert isinstance(source, BigQuerySource) and source.name == "bigquery"
    facts = source.pull(None, s, PROP, [PERIOD])
    assert facts.source == "bigquery"
    want = ExportSource(small_export).pull(None, s, PROP, [PERIOD]).periods[0]
    got = as_dicts(facts.periods[0])
    exp_ = as_dicts(want)
    assert {k: v for k, v in got.items() if k not in ("events", "daily")} == \
        {k: v for k, v in exp_.items() if k not in ("events", "daily")}
    assert {k: v[:2] for k, v in got["events"].items()} == \
        {k: v[:2] for k, v in exp_["events"].items()}
    kinds = [c for c, _ in fake.calls]
    assert kinds == ["list_tables", "query", "query"]
    dry, real = fake.calls[1][1], fake.calls[2][1]
    assert dry.dry_run and not real.dry_run
    assert real.maximum_bytes_billed == 10 * 10**9
    notes = {n.code: n.message for n in source.warnings_for(PROP)}
    assert "0.123 GB to scan" in notes["scan"] and "$6.25/TiB" in notes["scan"]
    assert facts.quota["bigquery"]["totalBytesProcessed"] == 123_456_789
    sql = source.show_sql(None, s, PROP, [PERIOD])
    assert sql.startswith("WITH") and "`my-project`.`analytics_555000111`.`events_*`" in sql


def test_scan_over_max_gb_is_refused_before_it_runs(small_export):
    fake = FakeBigQuery(small_export, bytes_=25 * 10**9)
    source = BigQuerySource("my-project", max_gb=10, client=fake)
    with pytest.raises(ScanTooLarge) as e:
        source.pull(None, spec(), PROP, [PERIOD])
    assert e.value.property == PROP
    assert "25.000 GB" in str(e.value) and "--max-gb" in str(e.value)
    assert [c for c, _ in fake.calls] == ["list_tables", "query"]  # the dry run only
    # the decision alone
    check_scan(DryRun(9536 * 2**20, 10 * 10**9))  # billed in whole MiB: 9536 MiB < 10 GB
    with pytest.raises(ScanTooLarge):  # 10 GB scanned is billed 9537 MiB, over 10 GB
        check_scan(DryRun(10 * 10**9, 10 * 10**9), PROP)
    with pytest.raises(ScanTooLarge):  # BigQuery bills 10 MiB at least
        check_scan(DryRun(1000, 5 * 2**20), PROP)
    assert DryRun(2**40, 0).usd == ON_DEMAND_USD_PER_TIB
    engine = BigQueryEngine(fake, max_gb=0.5)
    assert engine.max_bytes == 500_000_000


def test_bigquery_dataset_missing_and_one_dataset_for_one_property(small_export):
    fake = FakeBigQuery(small_export)
    with pytest.raises(ExportNotFound) as e:
        BigQuerySource("my-project", client=fake).pull(None, spec(), "properties/42", [PERIOD])
    assert e.value.property == "properties/42" and "my-project.analytics_42" in str(e.value)
    source = parse_source(f"bigquery:my-project.analytics_{PID}", client=fake)
    source.pull(None, spec(), PROP, [PERIOD])
    with pytest.raises(ApiError) as e:
        source.pull(None, spec(), "properties/42", [PERIOD])
    assert e.value.property == "properties/42" and "bigquery:my-project" in str(e.value)


# --------------------------------------------------------------------------- bad inputs


def test_missing_dataset_folder(small_export, tmp_path):
    with pytest.raises(ExportNotFound) as e:
        ExportSource(small_export).pull(None, spec(), "properties/42", [PERIOD])
    assert e.value.property == "properties/42"
    assert "analytics_42" in str(e.value) and f"analytics_{PID}" in str(e.value)
    with pytest.raises(ExportNotFound, match="does not exist"):
        ExportSource(tmp_path / "nowhere").pull(None, spec(), PROP, [PERIOD])


def test_a_day_with_no_table(small_export, tmp_path):
    folder = copy_export(small_export, tmp_path)
    (folder / "events_20250312.parquet").unlink()
    with pytest.raises(MissingDays) as e:
        ExportSource(tmp_path).pull(None, spec(), PROP, [PERIOD])
    assert e.value.property == PROP and e.value.days == ("20250312",)
    assert "2025-03-12" in str(e.value) and "2025-03-10..2025-03-16" in str(e.value)
    # the other properties are left alone: a second property in the same folder still works
    shutil.copytree(small_export / f"analytics_{PID}", tmp_path / "analytics_777")
    ExportSource(tmp_path).pull(None, spec(), "properties/777", [PERIOD])
    # asked to, it counts the day as empty and says so
    source = ExportSource(tmp_path, missing="warn")
    facts = source.pull(None, spec(), PROP, [PERIOD])
    assert date(2025, 3, 12) not in set(facts.periods[0].days["date"])
    assert "missing-days" in [n.code for n in source.warnings_for(PROP)]
    with pytest.raises(MissingDays, match="no table for any day"):
        ExportSource(tmp_path).pull(None, spec(), PROP, [Period(date(2024, 1, 1),
                                                                 date(2024, 1, 7))])


def test_files_without_ga_session_id(small_export, tmp_path):
    folder = copy_export(small_export, tmp_path)
    from ga_sync.export.writer import lambda_sql
    con = duckdb.connect()
    for path in folder.glob("*.parquet"):
        tmp = path.with_suffix(".tmp")
        con.execute(f"""COPY (SELECT * REPLACE (list_filter(event_params,
            {lambda_sql('x', "x.key <> 'ga_session_id'")}) AS event_params)
            FROM '{path}') TO '{tmp}' (FORMAT parquet)""")
        tmp.replace(path)
    with pytest.raises(UnreadableExport) as e:
        ExportSource(tmp_path).pull(None, spec(), PROP, [PERIOD])
    assert e.value.property == PROP and "ga_session_id" in str(e.value)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty", "middle"])
def test_unreadable_file_is_named(small_export, tmp_path, damage):
    folder = copy_export(small_export, tmp_path)
    bad = folder / "events_20250313.parquet"
    data = bad.read_bytes()
    if damage == "garbage":
        bad.write_bytes(b"<html>Service unavailable</html>" * 10)
    elif damage == "truncated":
        bad.write_bytes(data[: len(data) // 2])
    elif damage == "empty":
        bad.write_bytes(b"")
    else:  # valid magic bytes at both ends, garbage inside
        bad.write_bytes(data[:4] + b"\x13" * (len(data) - 8) + data[-4:])
    with pytest.raises(UnreadableExport) as e:
        ExportSource(tmp_path).pull(None, spec(), PROP, [PERIOD])
    assert e.value.property == PROP
    if damage != "middle":
        assert str(bad) in str(e.value)


def test_mixed_formats_and_wrong_schema(small_export, tmp_path):
    folder = copy_export(small_export, tmp_path)
    (folder / "events_20250301.ndjson").write_text('{"event_date": "20250301"}\n')
    with pytest.raises(UnreadableExport, match="mixes Parquet and JSON"):
        ExportSource(tmp_path).pull(None, spec(), PROP, [PERIOD])
    (folder / "events_20250301.ndjson").unlink()
    # a Parquet file that is not a GA4 export table
    con = duckdb.connect()
    con.execute(f"COPY (SELECT 1 AS a) TO '{folder / 'events_20250314.parquet'}' (FORMAT parquet)")
    with pytest.raises(UnreadableExport) as e:
        ExportSource(tmp_path).pull(None, spec(), PROP, [PERIOD])
    assert e.value.property == PROP


def test_parse_source_forms(tmp_path):
    from ga_sync.sources import data_api
    assert parse_source(None) is data_api and parse_source("data-api") is data_api
    src = parse_source(f"export:{tmp_path}")
    assert isinstance(src, ExportSource) and src.root == tmp_path
    bq = parse_source("bigquery:proj-1")
    assert isinstance(bq, BigQuerySource) and (bq.project, bq.dataset) == ("proj-1", None)
    bq = parse_source("bigquery:proj-1.analytics_9", max_gb=2)
    assert (bq.project, bq.dataset, bq.max_gb) == ("proj-1", "analytics_9", 2.0)
    for bad in ("bigquery", "export:", "bigquery:", "ga4", "bigquery:a b", "s3:bucket"):
        with pytest.raises(SourceError) as e:
            parse_source(bad)
        assert isinstance(e.value, GaSyncError)
    assert "export:PATH" in str(pytest.raises(SourceError, parse_source, "ga4").value)


# --------------------------------------------------------------------------- vs the Data API


def test_export_facts_equal_data_api_facts_on_sandbox_traffic(ga_env, sandbox_state, tmp_path):
    """Same traffic, same property and period: the Data API source (through the sandbox's
    Data API) and the export source (through files) give the same facts for event goals."""
    from ga_sync.clients import connect
    from ga_sync.sources import data_api

    profile = traffic()
    sandbox_state.add_property(property_id=PID, display_name="Export vs Data API",
                               time_zone=TZ, traffic=profile)
    event_goals = tuple(g for g in GOALS if g.origin is None)
    s = spec(event_goals)
    periods = [PERIOD, PERIOD.previous()]
    writer.write_traffic(profile, periods[1].start, PERIOD.end, tmp_path, PID, time_zone=TZ)
    api = data_api.pull(connect(), s, PROP, periods)
    ours = ExportSource(tmp_path).pull(None, s, PROP, periods)
    for a, o in zip(api.periods, ours.periods):
        assert (o.sessions, o.users) == (int(a.sessions), int(a.users))
        assert o.tier_sessions == {k: float(v) for k, v in a.tier_sessions.items()}
        ae = a.events[a.events["count"] > 0]
        assert sorted(ae.index) == sorted(o.events.index)
        for col in ("count", "sessions", "value"):
            assert [float(x) for x in ae.sort_index()[col]] == \
                pytest.approx([float(x) for x in o.events.sort_index()[col]], rel=1e-9), col
        adays = a.days.sort_values("date")
        assert list(adays["date"]) == list(o.days["date"])
        assert [int(x) for x in adays["sessions"]] == list(o.days["sessions"])
        assert [int(x) for x in adays["users"]] == list(o.days["users"])
        ad = a.daily.sort_values(["date", "event"]).reset_index(drop=True)
        od = o.daily.sort_values(["date", "event"]).reset_index(drop=True)
        assert list(zip(ad["date"], ad["event"])) == list(zip(od["date"], od["event"]))
        for col in ("count", "sessions", "value"):
            assert [float(x) for x in ad[col]] == pytest.approx([float(x) for x in od[col]])
    assert_facts(ours.periods[0], expected(s, PERIOD))


def test_bigquery_client_uses_the_endpoint_override():
    from google.auth.credentials import AnonymousCredentials

    from ga_sync.errors import CredentialsError
    from ga_sync.export.engines import bigquery_client
    client = bigquery_client("my-project", env={"GA_SYNC_BIGQUERY_ENDPOINT":
                                                "http://127.0.0.1:9999/"})
    assert client.project == "my-project"
    assert client._connection.API_BASE_URL == "http://127.0.0.1:9999"
    assert isinstance(client._credentials, AnonymousCredentials)
    with pytest.raises(CredentialsError, match="not a URL"):
        bigquery_client("p", env={"GA_SYNC_BIGQUERY_ENDPOINT": "localhost:9999"})


def test_bq_extract_json_with_int64_as_strings(tmp_path):
    """`bq extract --destination_format NEWLINE_DELIMITED_JSON` writes INT64 as strings and
    leaves out null fields; a spec without goals still gets sessions and users."""
    folder = tmp_path / "analytics_9"
    folder.mkdir()
    rows = [
        {"event_date": "20250101", "event_timestamp": "1735689600000000", "event_name":
         "page_view", "user_pseudo_id": "123.456", "event_params": [
             {"key": "ga_session_id", "value": {"int_value": "1735689600"}},
             {"key": "page_location", "value": {"string_value": "https://x.com/pricing"}}]},
        {"event_date": "20250101", "event_timestamp": "1735689601000000", "event_name":
         "purchase", "user_pseudo_id": "123.456", "event_params": [
             {"key": "ga_session_id", "value": {"int_value": "1735689600"}},
             {"key": "value", "value": {"int_value": "40"}}]},
    ]
    import json
    (folder / "events_20250101.json").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    day = [Period(date(2025, 1, 1), date(2025, 1, 1))]
    goals = (Goal("purchase", "macro", None),
             Goal("pricing", "micro", 1.0, origin=EventRule(
                 "page_view", (Condition("page_location", "ends_with", "/pricing"),))),
             Goal("one_page", "micro", 1.0, origin=SessionRule(min_page_views=1)))
    s = Spec(client="t", properties=("properties/9",), currency="USD", goals=goals)
    pf = ExportSource(tmp_path).pull(None, s, "9", day).periods[0]
    assert (pf.sessions, pf.users) == (1, 1)
    assert dict(pf.events["count"]) == {"one_page": 1, "pricing": 1, "purchase": 1}
    assert pf.events.loc["purchase", "value"] == 40.0
    assert pf.tier_sessions == {"macro": 1.0, "micro": 1.0}
    empty = Spec(client="t", properties=("properties/9",), currency="USD", goals=())
    pf = ExportSource(tmp_path).pull(None, empty, "9", day).periods[0]
    assert (pf.sessions, pf.users, len(pf.events), pf.tier_sessions) == (1, 1, 0, {})


def test_show_sql_of_the_file_source_is_bigquery_sql(small_export):
    sql = ExportSource(small_export).show_sql(None, spec(), PROP, [PERIOD])
    sqlglot.parse_one(sql, read="bigquery")
    assert f"`export`.`analytics_{PID}`.`events_*`" in sql
    assert "_TABLE_SUFFIX BETWEEN '20250310' AND '20250316'" in sql


# --------------------------------------------------------------------------- DuckDB rewrites

REWRITE_ROWS = """SELECT * FROM (VALUES
  (1, 'a', [{'key': 'ga_session_id', 'value': {'string_value': NULL, 'int_value': 11, 'float_value': NULL, 'double_value': NULL}},
            {'key': 'value', 'value': {'string_value': NULL, 'int_value': NULL, 'float_value': NULL, 'double_value': 2.5}},
            {'key': 'page_location', 'value': {'string_value': 'https://x/pricing', 'int_value': NULL, 'float_value': NULL, 'double_value': NULL}}]),
  (2, 'a', [{'key': 'value', 'value': {'string_value': NULL, 'int_value': 7, 'float_value': NULL, 'double_value': NULL}},
            {'key': 'value', 'value': {'string_value': NULL, 'int_value': 9, 'float_value': NULL, 'double_value': 1.0}},
            {'key': 'page_location', 'value': {'string_value': NULL, 'int_value': 42, 'float_value': NULL, 'double_value': NULL}}]),
  (3, 'b', [{'key': 'value', 'value': {'string_value': NULL, 'int_value': NULL, 'float_value': 0.5, 'double_value': NULL}},
            {'key': 'page_location', 'value': {'string_value': NULL, 'int_value': NULL, 'float_value': NULL, 'double_value': NULL}}]),
  (4, 'b', []),
  (5, NULL, NULL),
  (6, 'c', [{'key': NULL, 'value': NULL}, {'key': 'value', 'value': NULL},
            {'key': 'ga_session_id', 'value': {'string_value': '12', 'int_value': NULL, 'float_value': NULL, 'double_value': NULL}}])
) AS t(n, g, event_params)"""


def test_duckdb_rewrites_give_what_the_literal_transpilation_gives():
    """The rewritten parameter lookups (first parameter with the key; a single field picked
    once; COALESCE's first field picked, the rest mapped) and conditional aggregates
    (`SUM(IF(c, x, NULL))` -> `SUM(x) FILTER (WHERE c)`) return exactly what DuckDB gives for
    sqlglot's plain transpilation of the BigQuery SQL (correlated UNNEST subqueries, CASE):
    missing keys, empty and NULL lists, duplicate keys, NULL values, every value type."""
    from ga_sync.export.query import _param

    lookups = {f"{k}_{kind}": _param(k, kind) for k in ("ga_session_id", "value",
                                                        "page_location", "nope")
               for kind in ("int", "number", "string")}
    lookups["whole"] = ("(SELECT ep FROM UNNEST(e.event_params) AS ep "
                        "WHERE ep.key = 'value' LIMIT 1).value.double_value")
    per_row = ",\n  ".join(f"{v} AS {k}" for k, v in lookups.items())
    row_sql = f"SELECT n, {per_row} FROM `p.d.events_*` AS e ORDER BY n"
    number = _param("value", "number")
    agg_sql = f"""SELECT g, SUM(IF(n > 1, {number}, NULL)) AS s, MIN(IF(n = 6, n, NULL)) AS m,
        MAX(IF(g = 'a', {_param('page_location', 'string')}, NULL)) AS x,
        COUNT(IF(n IS NULL OR n > 2, 1, NULL)) AS c, SUM(IF(n > 1, n, 0)) AS z,
        AVG(IF(g IS NULL, NULL, n)) AS a
      FROM `p.d.events_*` AS e GROUP BY g ORDER BY g NULLS LAST"""
    con = duckdb.connect()
    con.execute(f"CREATE TABLE t AS {REWRITE_ROWS}")
    for sql in (row_sql, agg_sql):
        fast = transpile(sql, "t")
        literal = sqlglot.transpile(sql.replace("`p.d.events_*`", "t"), read="bigquery",
                                    write="duckdb")[0]
        assert "list_filter" in fast and "UNNEST" not in fast.upper()
        assert con.execute(fast).fetchall() == con.execute(literal).fetchall()
    assert "FILTER" in transpile(agg_sql, "t").upper()
    got = dict(zip(["n", *lookups], con.execute(transpile(row_sql, "t")).fetchall()[1]))
    assert got["value_int"] == 7 and got["page_location_string"] == "42"  # the first one


def test_the_value_parameter_is_read_only_for_goal_events():
    """BigQuery SQL: each event's goals are bits of a mask computed once, and the `value`
    parameter is looked up only where the mask is set."""
    q = build_query(spec(), [PERIOD])
    tree = sqlglot.parse_one(q.sql, read="bigquery")
    valued = next(c for c in tree.find_all(exp.CTE) if c.alias == "valued")
    lookup = next(i for i in valued.find_all(exp.If) if "'value'" in i.sql("bigquery"))
    assert lookup.this.sql("bigquery") == "mask0 <> 0"
    marked = next(c for c in tree.find_all(exp.CTE) if c.alias == "marked")
    assert "'value'" not in marked.sql("bigquery")
    # the DuckDB text is shared by properties with the same goals and periods
    a = build_query(spec(), [PERIOD], table=table_ref("p1", "analytics_1"))
    b = build_query(spec(), [PERIOD], table=table_ref("p2", "analytics_2"))
    assert a.sql != b.sql and a.duckdb_sql() == b.duckdb_sql()
    assert sqlglot.parse_one(a.sql, read="bigquery").sql("bigquery", pretty=True) == a.sql


@pytest.mark.parametrize("cls", ["BadRequest", "InternalServerError"])
def test_bytes_billed_refusal_is_a_scan_too_large_whatever_the_status(cls):
    """The real client has no exception for bytesBilledLimitExceeded: it may come as a 500."""
    from google.api_core import exceptions as gexc

    from ga_sync.export.engines import ScanTooLarge, bigquery_error
    err = getattr(gexc, cls)("Query exceeded limit for bytes billed: 10485760. 20971520 or "
                             "higher required.",
                             errors=[{"reason": "bytesBilledLimitExceeded", "message": "x"}])
    got = bigquery_error(err, "properties/1")
    assert isinstance(got, ScanTooLarge) and "--max-gb" in str(got)
    plain = bigquery_error(gexc.InternalServerError("backend error"), "properties/1")
    assert not isinstance(plain, ScanTooLarge)


def test_the_dry_run_check_counts_what_bigquery_bills():
    from ga_sync.export.engines import BILLED_MINIMUM, billed_bytes
    assert billed_bytes(0) == billed_bytes(1) == BILLED_MINIMUM
    assert billed_bytes(10 * 2 ** 20 + 1) == 11 * 2 ** 20
    assert billed_bytes(11 * 2 ** 20) == 11 * 2 ** 20
