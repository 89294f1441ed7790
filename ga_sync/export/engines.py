"""The two engines that run an `ExportQuery`: DuckDB over exported files, and BigQuery itself.

Both return the query's stacked result as a small pandas DataFrame (`query.RESULT_COLUMNS`);
the events themselves never leave the engine.

DuckDB (`DuckDBEngine`): the BigQuery wildcard table becomes a view over exactly the files of
the days asked for, read by `read_parquet` / `read_json` with `union_by_name` (tables written
on different days may have different columns) and no hive partitioning, with `_TABLE_SUFFIX`
taken from each file's name (`events_20240101.parquet` -> `20240101`,
`events_intraday_20240102.parquet` -> `intraday_20240102`), so the transpiled query's
`_TABLE_SUFFIX BETWEEN` works as on BigQuery. DuckDB reads only the columns the query names.

BigQuery (`BigQueryEngine`): `google-cloud-bigquery` over REST with the connection's
credentials (asked for the BigQuery read scope when they can be re-scoped), the endpoint from
`GA_SYNC_BIGQUERY_ENDPOINT` when set (a local emulator, the sandbox), the job billed to the
project of `bigquery:PROJECT[.DATASET]`. Every query is dry-run first: the bytes it would scan
and their on-demand cost (`ON_DEMAND_USD_PER_TIB`) are reported, a scan over `max_gb` is
refused before it runs, and the real job carries `maximum_bytes_billed`, so BigQuery itself
refuses to bill more than that.
"""

from __future__ import annotations

import os
import re
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ga_sync.export.layout import (JSON, ExportError, ExportLayout, ExportNotFound, ScanTooLarge,
                                   UnreadableExport)
from ga_sync.export.query import RESULT_COLUMNS, ExportQuery

#: Google's on-demand list price for BigQuery queries in US multi-region, per TiB scanned, as
#: of 2024 (https://cloud.google.com/bigquery/pricing#on_demand_pricing). It may change, and
#: other regions, editions (slot reservations) and the free tier (1 TiB a month) differ: the
#: estimate is only the list price of the bytes the dry run reports.
ON_DEMAND_USD_PER_TIB = 6.25
#: The default scan limit (`--max-gb`), in GB of 10**9 bytes.
DEFAULT_MAX_GB = 10.0
BIGQUERY_ENDPOINT_ENV = "GA_SYNC_BIGQUERY_ENDPOINT"
BIGQUERY_SCOPE = "https://www.googleapis.com/auth/bigquery.readonly"
_VIEW = "__export_events"

#: The export columns' types, for reading JSON with a fixed schema (GA's export schema for the
#: columns the query reads; a column some file lacks is NULL there).
JSON_COLUMNS = {
    "event_date": "VARCHAR",
    "event_timestamp": "BIGINT",
    "event_name": "VARCHAR",
    "event_params": "STRUCT(key VARCHAR, value STRUCT(string_value VARCHAR, int_value BIGINT, "
                    "float_value DOUBLE, double_value DOUBLE))[]",
    "user_pseudo_id": "VARCHAR",
}


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


#: DuckDB connections that may be running a query, so an interrupted run can stop them
#: (`interrupt_all`): a worker thread left inside DuckDB when the process exits aborts it.
_LIVE: "weakref.WeakSet[Any]" = weakref.WeakSet()
_LIVE_LOCK = threading.Lock()


def _remember(con: Any) -> None:
    with _LIVE_LOCK:
        try:
            _LIVE.add(con)
        except TypeError:  # a connection type without weak references: not interruptible
            pass


_STOPPING = threading.Event()


def interrupt_all() -> None:
    """Interrupt every DuckDB query ga-sync is running (Ctrl-C, SIGTERM); no new one starts in
    this process afterwards (`DuckDBEngine.connect` raises Cancelled)."""
    _STOPPING.set()
    with _LIVE_LOCK:
        live = list(_LIVE)
    for con in live:
        try:
            con.interrupt()
        except Exception:  # noqa: BLE001 - closed already, or nothing running
            pass


def reset_interrupt() -> None:
    """Let DuckDB queries start again after an interrupt (each new report run calls it, so a
    notebook that pressed Ctrl-C once can report again)."""
    _STOPPING.clear()


def _register_interrupt() -> None:
    from ga_sync.sync import on_cancel
    on_cancel(interrupt_all)


@dataclass
class DuckDBEngine:
    """Runs export queries with an embedded DuckDB over a property's files.

    `threads` and `memory_limit` (e.g. "1GB") are DuckDB's settings; None keeps DuckDB's
    defaults (all cores, 80% of memory; it spills to disk beyond the limit).
    """

    threads: int | None = None
    memory_limit: str | None = None

    def connect(self) -> Any:
        import duckdb
        if _STOPPING.is_set():
            from ga_sync.errors import Cancelled
            raise Cancelled("not done: interrupted")
        con = duckdb.connect()
        _remember(con)
        if self.threads:
            con.execute(f"SET threads = {int(self.threads)}")
        if self.memory_limit:
            con.execute(f"SET memory_limit = {_sql_string(self.memory_limit)}")
        return con

    def view_sql(self, layout: ExportLayout, files: Sequence[Path]) -> str:
        """`CREATE TEMP VIEW __export_events` over `files`, with `_TABLE_SUFFIX`."""
        paths = "[" + ", ".join(_sql_string(str(f)) for f in files) + "]"
        if layout.format == JSON:
            cols = "{" + ", ".join(f"{_sql_string(k)}: {_sql_string(v)}"
                                  for k, v in JSON_COLUMNS.items()) + "}"
            read = (f"read_json({paths}, format = 'newline_delimited', columns = {cols}, "
                    "filename = true)")
        else:
            read = f"read_parquet({paths}, filename = true, union_by_name = true, " \
                   "hive_partitioning = false)"
        suffix = r"regexp_extract(filename, 'events_((intraday_)?[0-9]{8})[^/\\]*$', 1)"
        return f"CREATE OR REPLACE TEMP VIEW {_VIEW} AS SELECT *, {suffix} AS _TABLE_SUFFIX " \
               f"FROM {read}"

    def run(self, query: ExportQuery, layout: ExportLayout) -> Any:
        """The query's result over the layout's files for the query's periods."""
        import duckdb

        files = layout.files(query.periods)
        con = self.connect()
        try:
            try:
                self.check_schema(con, layout, files)
                con.execute(self.view_sql(layout, files))
                return con.execute(query.duckdb_sql(_VIEW)).df()
            except duckdb.Error as e:
                raise _duckdb_error(e, layout, files) from None
        finally:
            con.close()

    def check_schema(self, con: Any, layout: ExportLayout, files: Sequence[Path]) -> None:
        """Every Parquet file has the columns the query reads (from the files' footers only):
        with `union_by_name` a file without them would silently read as NULLs."""
        if layout.format == JSON or not files:
            return
        paths = "[" + ", ".join(_sql_string(str(f)) for f in files) + "]"
        rows = con.execute(f"SELECT file_name, list(name) FROM parquet_schema({paths}) "
                           "GROUP BY file_name").fetchall()
        from ga_sync.export.query import COLUMNS_READ
        for name, columns in rows:
            lacking = [c for c in COLUMNS_READ if c not in set(columns)]
            if lacking:
                raise UnreadableExport(
                    f"{layout.property}: {name} is not a table of GA's export schema: it has "
                    f"no {', '.join(lacking)} column. Export that day again.",
                    property=layout.property)

    def execute_bigquery_sql(self, sql: str, layout: ExportLayout,
                             days: Sequence[str] | None = None) -> Any:
        """Run any BigQuery query over the export's wildcard table on DuckDB, over the files
        of `days` ('YYYYMMDD'; default: every day of the layout). For a local BigQuery
        emulator (the sandbox's jobs.query); the result as a DataFrame."""
        import duckdb

        from ga_sync.export.query import transpile

        chosen = [layout.days[d] for d in (days if days is not None else layout.days)
                  if d in layout.days]
        files = [f for d in chosen for f in d.files]
        con = self.connect()
        try:
            try:
                con.execute(self.view_sql(layout, files))
                return con.execute(transpile(sql, _VIEW)).df()
            except duckdb.Error as e:
                raise _duckdb_error(e, layout, files) from None
        finally:
            con.close()


def _duckdb_error(e: Exception, layout: ExportLayout, files: Sequence[Path]) -> ExportError:
    """A DuckDB failure -> UnreadableExport naming the file when DuckDB says which."""
    text = str(e).splitlines()[0] if str(e) else type(e).__name__
    named = next((str(f) for f in files if str(f) in str(e)), None)
    where = named or f"the files in {layout.folder}"
    if re.search(r"(?i)binder error|referenced column|not found in FROM clause|"
                 r"does not have a (column|field)|could not find", str(e)):
        why = ("it lacks a column or field of GA's export schema the report reads "
               "(event_date, event_timestamp, event_name, event_params.key/value, "
               f"user_pseudo_id): {text}")
    else:
        why = f"{text}"
    why = why.rstrip().rstrip(".")
    return UnreadableExport(f"{layout.property}: cannot read {where}: {why}. Export those "
                            "days again in GA's schema.", property=layout.property)


# --------------------------------------------------------------------------- BigQuery


@dataclass(frozen=True)
class DryRun:
    """What a dry run said: bytes the query would scan, and their on-demand list price."""

    bytes: int
    max_bytes: int

    @property
    def gb(self) -> float:
        return self.bytes / 1e9

    @property
    def usd(self) -> float:
        return self.bytes / 2 ** 40 * ON_DEMAND_USD_PER_TIB

    def describe(self) -> str:
        return (f"{self.gb:,.3f} GB to scan, about ${self.usd:,.4f} at the on-demand list "
                f"price (${ON_DEMAND_USD_PER_TIB}/TiB, 2024; may change)")


#: BigQuery bills on-demand queries per started MiB, 10 MiB at least, and compares the billed
#: bytes with the job's maximum bytes billed.
BILLED_MINIMUM = 10 * 2 ** 20


def billed_bytes(scanned: int) -> int:
    """What BigQuery bills for a scan of `scanned` bytes (a whole MiB, 10 MiB at least)."""
    return max(BILLED_MINIMUM, -(-int(scanned) // 2 ** 20) * 2 ** 20)


def check_scan(dry: DryRun, property: str | None = None) -> None:
    """Refuse a scan over the limit (ScanTooLarge for `property`), before it runs: the bytes
    BigQuery would bill (10 MiB at least), as BigQuery compares them with the limit."""
    if billed_bytes(dry.bytes) > dry.max_bytes:
        raise ScanTooLarge(
            f"{property or 'the query'}: the BigQuery dry run says {dry.describe()} (billed: {billed_bytes(dry.bytes) / 1e9:,.3f} GB, BigQuery's "
            f"minimum being 10 MiB), over the limit of {dry.max_bytes / 1e9:,.3f} GB. Ask for a "
            "shorter period, or raise --max-gb (max_gb= in Python).", property=property)


def bigquery_client(project: str, credentials: Any = None, *,
                    env: dict[str, str] | None = None) -> Any:
    """The official BigQuery client (REST), billed to `project`, on GA_SYNC_BIGQUERY_ENDPOINT
    when set (anonymous credentials there if none are given)."""
    from google.cloud import bigquery

    env = dict(os.environ if env is None else env)
    endpoint = env.get(BIGQUERY_ENDPOINT_ENV)
    options: dict[str, Any] = {}
    if endpoint:
        if not re.match(r"^https?://[^/\s]+", endpoint):
            from ga_sync.errors import CredentialsError
            raise CredentialsError(f"{BIGQUERY_ENDPOINT_ENV}={endpoint!r} is not a URL: write "
                                   "it in full, e.g. http://127.0.0.1:8765 for the sandbox")
        options["api_endpoint"] = endpoint.rstrip("/")
        if credentials is None:
            from google.auth.credentials import AnonymousCredentials
            credentials = AnonymousCredentials()
    if credentials is not None and hasattr(credentials, "with_scopes") and \
            getattr(credentials, "requires_scopes", False) is not None:
        try:
            credentials = credentials.with_scopes([BIGQUERY_SCOPE])
        except (AttributeError, TypeError, NotImplementedError):
            pass
    from ga_sync.clients import USER_AGENT
    from google.api_core.client_info import ClientInfo
    return bigquery.Client(project=project, credentials=credentials,
                           client_options=options or None,
                           client_info=ClientInfo(user_agent=USER_AGENT))


@dataclass
class BigQueryEngine:
    """Runs export queries on BigQuery: list tables, dry-run, refuse over `max_gb`, run.

    `client` is a `google.cloud.bigquery.Client` (or anything with its `query` /
    `list_tables` methods: tests pass a fake). `dry_runs` records every dry run, by property.
    """

    client: Any
    max_gb: float = DEFAULT_MAX_GB
    dry_runs: dict[str, DryRun] = field(default_factory=dict)

    @property
    def max_bytes(self) -> int:
        return int(self.max_gb * 1e9)

    def table_days(self, project: str, dataset: str,
                   property: str | None = None) -> tuple[set[str], set[str]]:
        """(days with a daily table, days with an intraday table) of the dataset."""
        daily, intraday = set(), set()
        try:
            for t in self.client.list_tables(f"{project}.{dataset}"):
                m = re.fullmatch(r"events_(intraday_)?(\d{8})", t.table_id)
                if m:
                    (intraday if m[1] else daily).add(m[2])
        except Exception as e:  # google.api_core exceptions, transport errors
            raise bigquery_error(e, property, f"{project}.{dataset}") from None
        return daily, intraday

    def dry_run(self, sql: str, property: str | None = None) -> DryRun:
        """Dry-run `sql` (no cost) and refuse it when it scans over `max_gb`."""
        from google.cloud import bigquery
        config = bigquery.QueryJobConfig(dry_run=True, use_query_cache=False)
        try:
            job = self.client.query(sql, job_config=config)
        except Exception as e:
            raise bigquery_error(e, property) from None
        dry = DryRun(int(job.total_bytes_processed or 0), self.max_bytes)
        if property:
            self.dry_runs[property] = dry
        check_scan(dry, property)
        return dry

    def run(self, query: ExportQuery, property: str | None = None) -> Any:
        """Dry-run, then run with `maximum_bytes_billed`; the result as a DataFrame."""
        import pandas as pd
        from google.cloud import bigquery

        self.dry_run(query.sql, property)
        config = bigquery.QueryJobConfig(maximum_bytes_billed=self.max_bytes)
        try:
            job = self.client.query(query.sql, job_config=config)
            rows = [tuple(r.values()) for r in job.result()]
        except Exception as e:
            raise bigquery_error(e, property) from None
        return pd.DataFrame(rows, columns=list(RESULT_COLUMNS))


def bigquery_error(e: Exception, property: str | None, dataset: str | None = None) -> ExportError:
    """A BigQuery client failure -> an ExportError for `property`, with what to do."""
    from google.api_core import exceptions as gexc

    who = property or "BigQuery"
    message = getattr(e, "message", None) or str(e) or type(e).__name__
    message = str(message).splitlines()[0][:300]
    if isinstance(e, ExportError):
        return e
    if isinstance(e, gexc.NotFound):
        return ExportNotFound(f"{who}: BigQuery has no {('dataset ' + dataset) if dataset else 'such table'}"
                              f" ({message}). Check the project, and that the property's "
                              "BigQuery link exports to it (GA4 Admin → BigQuery links).",
                              property=property, status=404)
    if isinstance(e, gexc.Forbidden):
        return ExportError(f"{who}: BigQuery refused ({message}). The credentials need "
                           "BigQuery Job User on the project and Data Viewer on the dataset.",
                           property=property, status=403)
    reasons = {str(x.get("reason", "")) for x in (getattr(e, "errors", None) or [])
               if isinstance(x, dict)}
    # BigQuery answers a job over its maximum bytes billed with reason bytesBilledLimitExceeded;
    # the client's reason table lacks it, so it may arrive as a 500 InternalServerError
    if "bytesBilledLimitExceeded" in reasons or (
            isinstance(e, gexc.GoogleAPICallError) and "bytes billed" in message.lower()):
        return ScanTooLarge(f"{who}: BigQuery refused to scan more than the limit "
                            f"({message}); raise --max-gb (max_gb= in Python).", property=property, status=400)
    if isinstance(e, gexc.GoogleAPICallError):
        return ExportError(f"{who}: BigQuery failed: {message}", property=property,
                           status=getattr(e, "code", None))
    return ExportError(f"{who}: cannot reach BigQuery: {message}", property=property)


__all__ = ["BIGQUERY_ENDPOINT_ENV", "BIGQUERY_SCOPE", "BigQueryEngine", "DEFAULT_MAX_GB",
           "DryRun", "DuckDBEngine", "JSON_COLUMNS", "ON_DEMAND_USD_PER_TIB", "bigquery_client",
           "bigquery_error", "check_scan"]

_register_interrupt()
