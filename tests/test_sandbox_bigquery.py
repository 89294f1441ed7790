"""The sandbox's GA4 export and its BigQuery REST API, through the official client.

- `export_state` writes each property's event log (the one its Data API answers from) as a
  GA4 export; `ga-sync sandbox --export DIR` does it from the command line;
- `google-cloud-bigquery` (REST, anonymous credentials, `api_endpoint` = the sandbox, as
  `engines.bigquery_client` builds it) lists and gets tables and datasets, dry-runs (bytes of
  the referenced columns of the days scanned), runs queries and pages through their results;
  `maximumBytesBilled`, a missing dataset or table and bad SQL fail as BigQuery fails;
- `bigquery:PROJECT` against the sandbox, `export:DIR` over the exported files and the Data
  API give the same facts for event goals (both counting methods), rule-made events included;
- a cassette pins the BigQuery requests the source makes (tables, dry run, query, paging),
  recorded against the sandbox and replayed offline:

    GA_SYNC_RECORD=sandbox pytest tests/test_sandbox_bigquery.py   # re-record
"""

from __future__ import annotations

import json
import os
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import duckdb
import pytest
from google.api_core import exceptions as gexc
from google.cloud import bigquery as bq
from typer.testing import CliRunner

from ga_sync.export.engines import bigquery_client
from ga_sync.export.layout import ExportNotFound, ScanTooLarge, find_export
from ga_sync.export.source import BigQuerySource, ExportSource, parse_source
from ga_sync.model import Goal, Spec
from ga_sync.periods import Period
from ga_sync.sandbox import bigquery as sbq
from ga_sync.sandbox import machinery as sm
from ga_sync.sandbox.export import default_period, export_property, export_state, today_so_far
from ga_sync.sandbox.server import SandboxServer
from ga_sync.sandbox.state import SandboxState
from ga_sync.sandbox.traffic import make_traffic
from recording import find_leaks, make_vcr, unplayed_api_calls

PID = "555000111"
PROP = f"properties/{PID}"
OTHER = "555000222"  # a property without traffic: no dataset
TZ = "Europe/Warsaw"
PROJECT = "agency-warehouse"
DATASET = f"{PROJECT}.analytics_{PID}"
SITE_GOALS = (("purchase", "macro", None), ("generate_lead", "macro", 150.0),
              ("sign_up", "micro", 12.5), ("add_to_cart", "micro", 4.0),
              ("file_download", "micro", None))
GOALS = (
    Goal("purchase", "macro", None, "once_per_event"),
    Goal("generate_lead", "macro", 150.0, "once_per_session"),
    Goal("sign_up", "micro", 12.5, "once_per_session"),
    Goal("add_to_cart", "micro", 4.0, "once_per_event"),
    Goal("file_download", "micro", None, "once_per_event"),
    Goal("pricing_view", "micro", 2.0, "once_per_session"),  # made by a rule in the sandbox
)
CASSETTES = Path(__file__).resolve().parent / "cassettes"
CASSETTE = "bigquery_source.yaml"
MODE = os.environ.get("GA_SYNC_RECORD", "")
FIXED = Period(date(2025, 3, 10), date(2025, 3, 16))  # the cassette's periods (fixed dates)


def spec(goals=GOALS) -> Spec:
    return Spec(client="BigQuery sandbox", properties=(PROP,), currency="USD", goals=goals)


def traffic() -> dict:
    return make_traffic(SITE_GOALS, seed=11, daily_sessions=300, start=date(2025, 1, 1),
                        property_id=PID)


def make_state() -> SandboxState:
    state = SandboxState()
    state.add_property(property_id=PID, display_name="BigQuery", time_zone=TZ,
                       traffic=traffic())
    state.add_property(property_id=OTHER, display_name="No traffic", time_zone=TZ)
    stream = sm.web_streams(state.properties[PID])[0]
    sm.create_rule(state, PID, stream, {
        "destinationEvent": "pricing_view", "sourceCopyParameters": True, "eventConditions": [
            {"field": "event_name", "comparisonType": "EQUALS", "value": "page_view"},
            {"field": "page_location", "comparisonType": "CONTAINS", "value": "/pricing"}]},
        when=datetime(2025, 1, 1, tzinfo=timezone.utc))
    return state


@pytest.fixture(scope="module")
def server():
    state = make_state()
    with SandboxServer(state) as srv:
        yield srv


@pytest.fixture
def client(server):
    return bigquery_client(PROJECT, env={"GA_SYNC_BIGQUERY_ENDPOINT": server.url})


@pytest.fixture
def env(server, monkeypatch):
    for var in ("GA_SYNC_ADMIN_ENDPOINT", "GA_SYNC_DATA_ENDPOINT", "GA_SYNC_BIGQUERY_ENDPOINT"):
        monkeypatch.setenv(var, server.url)
    monkeypatch.setenv("GA_SYNC_CREDENTIALS", "anonymous")
    return server


def yesterday() -> date:
    return default_period(TZ, 1)[1]


def last_weeks() -> list[Period]:
    end = yesterday()
    week = Period(end - timedelta(days=6), end)
    return [week, week.previous()]


def served_layout(server):
    emulator = sbq.emulator_for(server.state)
    return find_export(emulator.root(PID), PID)


def sfx(d: date) -> str:
    return d.strftime("%Y%m%d")


# --------------------------------------------------------------------------- the export


def test_export_state_writes_the_data_api_log_as_daily_tables(tmp_path):
    from ga_sync.sandbox.derived import property_event_log

    state = make_state()
    today = date(2025, 3, 20)
    [w] = export_state(state, tmp_path, date(2025, 3, 10), date(2025, 3, 25))
    assert w.property_id == PID and w.start == date(2025, 3, 10)
    written = export_property(state, PID, tmp_path, date(2025, 3, 10), None, today=today,
                              elapsed=0.5)
    assert written.end == date(2025, 3, 19) and written.intraday == today
    layout = find_export(tmp_path, PID)
    assert layout.incomplete([Period(today, today)]) == ["20250320"]
    log = property_event_log(state, PID, date(2025, 3, 10), date(2025, 3, 19))
    con = duckdb.connect()
    files = [str(f) for f in layout.files([Period(date(2025, 3, 10), date(2025, 3, 19))])]
    got = dict(con.execute("SELECT event_name, count(*) FROM read_parquet(?) GROUP BY 1",
                           [files]).fetchall())
    want = log["event_name"].astype(str).value_counts().to_dict()
    assert got == want and got["pricing_view"] > 0  # rule-made events are exported too
    names = {r[0] for r in con.execute("SELECT DISTINCT unnest(event_params).key FROM "
                                       "read_parquet(?)", [files]).fetchall()}
    assert {"ga_session_id", "page_location", "value", "engagement_time_msec"} <= names
    assert not names & {"origin", "event_time"}  # the sandbox's bookkeeping stays out
    assert con.execute("SELECT count(user_id) FROM read_parquet(?)", [files]).fetchone() == (0,)
    # today so far: the first half of today's sessions, as the Data API cuts today
    today_log = property_event_log(state, PID, today, today)
    half = today_so_far(today_log, today, TZ, 0.5)
    intraday = str(layout.days["20250320"].files[0])
    assert "events_intraday_20250320" in intraday
    assert con.execute("SELECT count(*) FROM read_parquet(?)", [intraday]).fetchone()[0] == \
        len(half) < len(today_log)
    # a property without traffic has no dataset
    assert not (tmp_path / f"analytics_{OTHER}").exists()


def test_cli_export_only(tmp_path):
    from ga_sync.cli import app

    result = CliRunner().invoke(app, [
        "sandbox", "--state", str(tmp_path / "s.json"), "--seed", "goal_specs/acme-outdoor.yaml",
        "--export", str(tmp_path / "exp"), "--export-days", "3", "--export-only"],
        catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "writing the GA4 export" in result.output and "3/4 tables" in result.output
    lines = [x for x in result.output.splitlines() if x.startswith("exported properties/")]
    assert lines  # one per property the spec names
    pid = lines[0].split("/")[1].split(":")[0]
    files = sorted(p.name for p in (tmp_path / "exp" / f"analytics_{pid}").iterdir())
    assert len(files) == 4 and files[-1].startswith("events_intraday_")
    bad = CliRunner().invoke(app, ["sandbox", "--state", str(tmp_path / "s.json"),
                                   "--export-only"])
    assert bad.exit_code == 1 and "--export-only needs --export DIR" in bad.output


# --------------------------------------------------------------------------- the REST API


def test_list_and_get_tables_and_dataset(client, server):
    tables = [t.table_id for t in client.list_tables(DATASET)]  # pages of 50: 91 tables
    start, end = default_period(TZ)
    assert tables[0] == f"events_{sfx(start)}" and f"events_{sfx(end)}" in tables
    assert tables[-1] == f"events_intraday_{sfx(end + timedelta(days=1))}"
    assert len(tables) == 91
    t = client.get_table(f"{DATASET}.events_{sfx(end)}")
    fields = {f.name: f for f in t.schema}
    assert fields["event_params"].field_type == "RECORD" and fields["event_params"].mode == "REPEATED"
    assert [f.name for f in fields["event_params"].fields] == ["key", "value"]
    assert fields["event_timestamp"].field_type == "INTEGER"
    assert t.num_rows > 1000 and t.num_bytes > 0
    ds = client.get_dataset(DATASET)
    assert ds.dataset_id == f"analytics_{PID}" and ds.location == "US"
    assert [d.dataset_id for d in client.list_datasets()] == [f"analytics_{PID}"]


def _column_bytes(files, columns) -> int:
    con = duckdb.connect()
    rows = con.execute("SELECT path_in_schema, total_uncompressed_size FROM parquet_metadata(?)",
                       [[str(f) for f in files]]).fetchall()
    return sum(n for p, n in rows if p.split(",")[0].strip() in columns)


def test_dry_run_bytes_are_the_referenced_columns_of_the_days_scanned(client, server):
    end = yesterday()
    week = Period(end - timedelta(days=6), end)
    sql = (f"SELECT event_name, COUNT(DISTINCT user_pseudo_id) AS users FROM `{DATASET}.events_*` "
           f"WHERE _TABLE_SUFFIX BETWEEN '{sfx(week.start)}' AND '{sfx(week.end)}' GROUP BY 1")
    job = client.query(sql, job_config=bq.QueryJobConfig(dry_run=True))
    layout = served_layout(server)
    files = layout.files([week])
    assert job.total_bytes_processed == _column_bytes(files, {"event_name", "user_pseudo_id"}) > 0
    assert job.state == "DONE" and [f.name for f in job.schema] == ["event_name", "users"]
    wide = client.query(sql.replace("user_pseudo_id", "event_params"),
                        job_config=bq.QueryJobConfig(dry_run=True))
    assert wide.total_bytes_processed > job.total_bytes_processed
    fortnight = client.query(sql.replace(sfx(week.start), sfx(week.start - timedelta(days=7))),
                             job_config=bq.QueryJobConfig(dry_run=True))
    assert 1.5 < fortnight.total_bytes_processed / job.total_bytes_processed < 2.5
    everything = client.query(f"SELECT * FROM `{DATASET}.events_*`",
                              job_config=bq.QueryJobConfig(dry_run=True))
    all_files = [f for d in layout.days.values() for f in d.files]
    assert everything.total_bytes_processed == _column_bytes(
        all_files, {c for c in served_columns(all_files[0])})
    count = client.query(f"SELECT COUNT(*) FROM `{DATASET}.events_{sfx(end)}`",
                         job_config=bq.QueryJobConfig(dry_run=True))
    assert count.total_bytes_processed == 0  # COUNT(*) reads no column


def served_columns(path) -> list[str]:
    return [r[0] for r in duckdb.connect().execute(
        "DESCRIBE SELECT * FROM read_parquet(?)", [str(path)]).fetchall()]


def test_query_results_in_pages(client, server):
    day = yesterday()
    sql = (f"SELECT event_name, event_timestamp, user_pseudo_id, "
           f"(SELECT p.value.int_value FROM UNNEST(event_params) AS p "
           f" WHERE p.key = 'ga_session_id') AS session, event_value_in_usd "
           f"FROM `{DATASET}.events_*` WHERE _TABLE_SUFFIX = '{sfx(day)}' "
           f"ORDER BY event_timestamp, event_name, user_pseudo_id")
    before = server.stats.snapshot()["requests"]
    job = client.query(sql)
    rows = list(job.result(page_size=300))
    pages = server.stats.snapshot()["requests"] - before
    files = [str(f) for f in served_layout(server).days[sfx(day)].files]
    want = duckdb.connect().execute(
        "SELECT event_name, event_timestamp, user_pseudo_id, list_filter(event_params, "
        "lambda p: p.key = 'ga_session_id')[1].value.int_value, event_value_in_usd "
        "FROM read_parquet(?) ORDER BY 2, 1, 3", [files]).fetchall()
    assert [tuple(r.values()) for r in rows] == want
    assert len(want) > 2000
    assert pages >= len(want) // 300 + 1  # one getQueryResults per page (plus insert, get)
    assert job.total_bytes_processed > 0 and [f.field_type for f in job.schema] == \
        ["STRING", "INTEGER", "STRING", "INTEGER", "FLOAT"]
    # the server's own page cap (BigQuery's ~10 MB) pages a result the caller did not limit
    sbq.emulator_for(server.state).page_rows = 500
    try:
        again = list(client.query(sql).result())
    finally:
        sbq.emulator_for(server.state).page_rows = sbq.DEFAULT_PAGE_ROWS
    assert [tuple(r.values()) for r in again] == want
    # jobs.query (the client's QUERY api method) answers the first page itself
    quick = client.query_and_wait(sql, page_size=400)
    assert quick.total_rows == len(want) and [tuple(r.values()) for r in quick] == want


def test_values_in_bigquery_shapes(client):
    row = next(iter(client.query(
        "SELECT 1 AS i, 2.5 AS f, 'x' AS s, TRUE AS b, [1, 2] AS a, "
        "STRUCT('k' AS key, 3 AS n) AS r, DATE '2025-03-01' AS d, "
        "TIMESTAMP_MICROS(1700000000123456) AS t, NULL AS z, COUNT(*) AS c").result()))
    assert tuple(row.values()) == (1, 2.5, "x", True, [1, 2], {"key": "k", "n": 3},
                                   date(2025, 3, 1),
                                   datetime(2023, 11, 14, 22, 13, 20, 123456, tzinfo=timezone.utc),
                                   None, 1)
    assert list(row.keys())[-1] == "c"


def test_maximum_bytes_billed_refuses_the_job(client):
    sql = f"SELECT event_name FROM `{DATASET}.events_{sfx(yesterday())}`"
    job = client.query(sql, job_config=bq.QueryJobConfig(maximum_bytes_billed=1000))
    with pytest.raises(gexc.GoogleAPICallError) as e:
        job.result()
    # a failed job's errorResult: the client maps this reason to 500, as with real BigQuery
    assert e.value.errors[0]["reason"] == "bytesBilledLimitExceeded"
    assert "Query exceeded limit for bytes billed: 1000. 10485760 or higher required." in \
        e.value.message
    assert job.error_result["reason"] == "bytesBilledLimitExceeded"
    # jobs.query answers it as an HTTP 400
    with pytest.raises(gexc.BadRequest, match="exceeded limit for bytes billed: 1000"):
        client.query_and_wait(sql, job_config=bq.QueryJobConfig(maximum_bytes_billed=1000))
    ok = client.query(sql, job_config=bq.QueryJobConfig(maximum_bytes_billed=10 * 2 ** 20))
    assert ok.result().total_rows > 0 and ok.total_bytes_billed == 10 * 2 ** 20


def test_missing_dataset_and_table(client):
    with pytest.raises(gexc.NotFound, match=f"Not found: Dataset {PROJECT}:analytics_{OTHER}"):
        list(client.list_tables(f"{PROJECT}.analytics_{OTHER}"))
    with pytest.raises(gexc.NotFound, match="Dataset"):
        client.get_dataset(f"{PROJECT}.analytics_1")
    with pytest.raises(gexc.NotFound, match="Table"):
        client.get_table(f"{DATASET}.events_19990101")
    with pytest.raises(gexc.NotFound, match=f"Dataset {PROJECT}:analytics_1"):
        client.query(f"SELECT 1 FROM `{PROJECT}.analytics_1.events_*`").result()
    with pytest.raises(gexc.NotFound, match="events_19990101"):
        client.query(f"SELECT 1 FROM `{DATASET}.events_19990101`").result()
    with pytest.raises(gexc.NotFound):
        client.get_job("no-such-job")


def test_bad_sql_is_invalid_query(client):
    with pytest.raises(gexc.BadRequest, match="Syntax error") as e:
        client.query("SELEC event_name FROM x").result()
    assert e.value.errors[0]["reason"] == "invalidQuery"
    with pytest.raises(gexc.BadRequest) as e:  # a dry run fails at once
        client.query(f"SELECT no_such_column FROM `{DATASET}.events_*`",
                     job_config=bq.QueryJobConfig(dry_run=True))
    assert e.value.errors[0]["reason"] == "invalidQuery" and "no_such_column" in e.value.message
    with pytest.raises(gexc.BadRequest, match="must be qualified with a dataset"):
        client.query("SELECT 1 FROM events_20250101").result()
    with pytest.raises(gexc.BadRequest, match="SELECT queries only"):
        client.query(f"DELETE FROM `{DATASET}.events_20250101` WHERE TRUE").result()


# --------------------------------------------------------------------------- three sources


def _compare(a, b, *, approx_values: bool = False) -> None:
    """Two PeriodFacts hold the same numbers (Data API numbers come as floats)."""
    assert (int(a.sessions), int(a.users)) == (int(b.sessions), int(b.users))
    assert {k: float(v) for k, v in a.tier_sessions.items()} == \
        {k: float(v) for k, v in b.tier_sessions.items()}
    ae, be = a.events[a.events["count"] > 0].sort_index(), b.events[b.events["count"] > 0].sort_index()
    assert list(ae.index) == list(be.index)
    for col in ("count", "sessions", "value"):
        assert [float(x) for x in ae[col]] == pytest.approx([float(x) for x in be[col]],
                                                            rel=1e-9), col
    ad, bd = a.days.sort_values("date"), b.days.sort_values("date")
    assert list(ad["date"]) == list(bd["date"])
    assert [int(x) for x in ad["sessions"]] == [int(x) for x in bd["sessions"]]
    assert [int(x) for x in ad["users"]] == [int(x) for x in bd["users"]]
    ak = a.daily.sort_values(["date", "event"]).reset_index(drop=True)
    bk = b.daily.sort_values(["date", "event"]).reset_index(drop=True)
    assert list(zip(ak["date"], ak["event"])) == list(zip(bk["date"], bk["event"]))
    for col in ("count", "sessions", "value"):
        assert [float(x) for x in ak[col]] == pytest.approx([float(x) for x in bk[col]]), col


def test_bigquery_export_and_data_api_sources_agree(env, tmp_path):
    from ga_sync.clients import connect
    from ga_sync.sources import data_api

    s, periods = spec(), last_weeks()
    export_state(env.state, tmp_path, periods[1].start, periods[0].end, intraday=False)
    conn = connect()
    api = data_api.pull(conn, s, PROP, periods)
    files = parse_source(f"export:{tmp_path}").pull(conn, s, PROP, periods)
    source = parse_source(f"bigquery:{PROJECT}")
    assert isinstance(source, BigQuerySource)
    big = source.pull(conn, s, PROP, periods)
    assert (api.source, files.source, big.source) == ("data_api", "export", "bigquery")
    for a, f, b in zip(api.periods, files.periods, big.periods):
        _compare(f, b)
        _compare(a, b)
        ev = b.events
        assert ev.loc["sign_up", "count"] > ev.loc["sign_up", "sessions"]  # methods differ
        assert ev.loc["pricing_view", "count"] > 0  # the rule's events, in every source
    notes = {n.code: n.message for n in source.warnings_for(PROP)}
    assert "GB to scan" in notes["scan"] and "incomplete" not in notes
    assert big.quota["bigquery"]["totalBytesProcessed"] > 0


def test_today_is_read_from_the_intraday_table_and_flagged(env):
    today = yesterday() + timedelta(days=1)
    source = parse_source(f"bigquery:{PROJECT}")
    facts = source.pull(None, spec(), PROP, [Period(today - timedelta(days=1), today)])
    codes = {n.code for n in source.warnings_for(PROP)}
    assert "incomplete" in codes
    assert facts.periods[0].sessions > 0


def test_source_errors_name_the_property(env):
    with pytest.raises(ExportNotFound) as e:
        parse_source(f"bigquery:{PROJECT}").pull(None, spec(), f"properties/{OTHER}",
                                                 last_weeks())
    assert e.value.property == f"properties/{OTHER}" and "analytics_555000222" in str(e.value)
    with pytest.raises(ScanTooLarge) as e:
        parse_source(f"bigquery:{PROJECT}", max_gb=1e-6).pull(None, spec(), PROP, last_weeks())
    assert e.value.property == PROP and "--max-gb" in str(e.value)


# --------------------------------------------------------------------------- the cassette


def _job_ids(monkeypatch) -> None:
    """Job ids the client makes up (uuid4) made deterministic, so requests replay."""
    from google.cloud.bigquery import _job_helpers
    counter = iter(range(1, 10_000))
    real = _job_helpers.make_job_id
    monkeypatch.setattr(_job_helpers, "make_job_id",
                        lambda job_id=None, prefix=None: real(job_id or f"gasync_{next(counter):04d}",
                                                              prefix))


def test_cassette_pins_the_bigquery_requests_of_the_source(monkeypatch, tmp_path):
    _job_ids(monkeypatch)
    path = CASSETTES / CASSETTE
    s = spec(GOALS[:4])
    periods = [FIXED, FIXED.previous()]
    if MODE == "sandbox":
        path.unlink(missing_ok=True)
        CASSETTES.mkdir(exist_ok=True)
        state = make_state()
        export_state(state, tmp_path, periods[1].start, FIXED.end, intraday=False)
        sbq.configure(state, folder=tmp_path, page_rows=40)  # small pages: record paging
        server = SandboxServer(state).start()
        url, record = server.url, "all"
        want = ExportSource(tmp_path).pull(None, s, PROP, periods)
    else:
        if not path.exists():
            pytest.fail(f"tests/cassettes/{CASSETTE} is missing: record it with "
                        "GA_SYNC_RECORD=sandbox pytest tests/test_sandbox_bigquery.py")
        server, url, record, want = None, "http://127.0.0.1:9", "none", None
    monkeypatch.setenv("GA_SYNC_BIGQUERY_ENDPOINT", url)
    try:
        with make_vcr(CASSETTES, record).use_cassette(CASSETTE) as cassette:
            facts = parse_source(f"bigquery:{PROJECT}").pull(None, s, PROP, periods)
            if record == "none":
                assert unplayed_api_calls(cassette) == []
    finally:
        if server is not None:
            server.stop()
    if want is not None:
        for a, b in zip(want.periods, facts.periods):
            _compare(a, b)
    assert facts.periods[0].sessions > 0 and facts.periods[0].events.loc["purchase", "count"] > 0
    reqs = [(r.method, r.path.split("/bigquery/v2")[1]) for r in cassette.requests]
    ds = f"/projects/{PROJECT}/datasets/analytics_{PID}/tables"
    jobs, results = f"/projects/{PROJECT}/jobs", f"/projects/{PROJECT}/queries/gasync_0002"
    assert reqs[:4] == [("GET", ds), ("POST", jobs), ("POST", jobs), ("GET", results)]
    assert set(reqs[4:]) == {("GET", results)}  # then the result, page by page
    bodies = [json.loads(r.body) for r in cassette.requests if r.method == "POST"]
    assert [b["configuration"].get("dryRun", False) for b in bodies] == [True, False]
    dry, real = bodies
    assert dry["configuration"]["query"]["query"] == real["configuration"]["query"]["query"]
    assert real["configuration"]["query"]["maximumBytesBilled"] == str(10 * 10 ** 9)
    assert real["configuration"]["query"]["useLegacySql"] is False
    assert f"`{PROJECT}`.`analytics_{PID}`.`events_*`" in real["configuration"]["query"]["query"]
    results = [r for r in cassette.requests if "/queries/" in r.path]
    assert len([r for r in results if ("pageToken" in dict(r.query))]) >= 2  # paged
    assert all(r.headers.get("Authorization") is None for r in cassette.requests)
    assert find_leaks(CASSETTES) == []
