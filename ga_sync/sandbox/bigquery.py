"""BigQuery REST v2 for the sandbox: the calls `google-cloud-bigquery` makes, over DuckDB.

Each sandbox property is a dataset `analytics_<property id>` in every project (GA's naming),
holding its GA4 export: `events_YYYYMMDD` tables and today's `events_intraday_YYYYMMDD`. The
tables are the files `sandbox/export.py` writes, exported on first use into a cache folder
(again when the property's traffic, rules, audiences or day change), or the files of a
folder given with `ga-sync sandbox --export DIR` (served as they are). Submitted GoogleSQL is
parsed with sqlglot, transpiled by `ga_sync.export.query.transpile` and run by DuckDB over the
files of the tables it scans. Routes (under `/bigquery/v2`, as the client calls them with
`client_options={"api_endpoint": sandbox.url}`):

  POST /projects/{p}/jobs                        jobs.insert (queries; `dryRun`)
  GET  /projects/{p}/jobs/{job}                  jobs.get
  POST /projects/{p}/jobs/{job}/cancel           jobs.cancel (jobs are done at once)
  POST /projects/{p}/queries                     jobs.query
  GET  /projects/{p}/queries/{job}               jobs.getQueryResults (maxResults, pageToken,
                                                 startIndex; `fields` top-level masks)
  GET  /projects/{p}/datasets                    datasets.list
  GET  /projects/{p}/datasets/{d}                datasets.get
  GET  /projects/{p}/datasets/{d}/tables         tables.list (maxResults, pageToken; 50 a page)
  GET  /projects/{p}/datasets/{d}/tables/{t}     tables.get (schema from the Parquet footer)
  GET  /projects/{p}/datasets/{d}/tables/{t}/data  tabledata.list

Cost: `totalBytesProcessed` is the uncompressed size of the Parquet column chunks of the
columns the query names, in the tables its `_TABLE_SUFFIX` conditions leave (BigQuery prunes
a wildcard table by constant conditions on `_TABLE_SUFFIX` the same way and bills the logical
size of the referenced columns). Billed bytes round up to a MiB with 10 MiB at least, and
`maximumBytesBilled` fails the job with BigQuery's `bytesBilledLimitExceeded` error.

Errors use BigQuery's envelope (`errors[].reason`: notFound, invalidQuery, accessDenied,
bytesBilledLimitExceeded, invalid), so the client raises the same exceptions it would.
Configure a server's emulator with `configure(state, folder=..., page_rows=...)`.
"""

from __future__ import annotations

import atexit
import base64
import datetime as _dt
import hashlib
import math
import re
import shutil
import tempfile
import threading
import time
import uuid
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from ga_sync.sandbox.routing import ApiError, Route, route

PREFIX = "/bigquery/v2"
LOCATION = "US"
#: BigQuery bills at least 10 MB per query and rounds up to the MB (binary units).
MIN_BILLED = 10 * 2 ** 20
_MB = 2 ** 20
#: Rows per getQueryResults page when the caller asks for no limit (BigQuery caps a page at
#: about 10 MB; the sandbox counts rows).
DEFAULT_PAGE_ROWS = 100_000
TABLES_PAGE = 50
KEPT_JOBS = 500
_FILE = re.compile(r"^events_(?P<intraday>intraday_)?(?P<day>\d{8})(?:-\d+)?"
                   r"\.(?:parquet|json|jsonl|ndjson)(?:\.gz)?$")
_TABLE = re.compile(r"^events_(?P<intraday>intraday_)?(?P<day>\d{8}|\*)$")
_VIEW = "__export_events"
_INTS = {"bigint", "integer", "smallint", "tinyint", "hugeint", "ubigint", "uinteger",
         "usmallint", "utinyint", "uhugeint", "null"}
_TIMESTAMPS = {"timestamp", "timestamp with time zone", "timestamp_s", "timestamp_ms",
               "timestamp_ns", "timestamp_tz"}


# --------------------------------------------------------------------------- errors


def bq_error(code: int, reason: str, message: str, **extra: str) -> ApiError:
    """An error in BigQuery's envelope: `errors: [{message, domain, reason}]`."""
    entry = {"message": message, "domain": "global", "reason": reason, **extra}
    return ApiError(code, message, errors=[entry])


def _not_found(what: str) -> ApiError:
    return bq_error(404, "notFound", f"Not found: {what}")


def _invalid_query(message: str) -> ApiError:
    return bq_error(400, "invalidQuery", message, location="q", locationType="parameter")


def _error_result(err: ApiError) -> dict[str, Any]:
    return dict(err.errors[0]) if err.errors else {"reason": "invalid", "message": err.message}


# --------------------------------------------------------------------------- the emulator


@dataclass
class _Job:
    project: str
    job_id: str
    location: str
    sql: str
    resource: dict[str, Any]
    schema: list[dict[str, Any]] = field(default_factory=list)
    rows: list[tuple] = field(default_factory=list)
    types: list[Any] = field(default_factory=list)
    error: ApiError | None = None


@dataclass
class _Result:
    schema: list[dict[str, Any]]
    types: list[Any]
    rows: list[tuple]
    bytes: int
    tables: list[dict[str, str]]


class BigQueryEmulator:
    """One sandbox server's BigQuery: where the export files are, the jobs run so far.

    `folder`: serve the exports under this folder as they are (`ga-sync sandbox --export`);
    None exports each property's event log on first use into a cache folder (`days` days up
    to yesterday plus today so far) and again when its traffic or machinery change.
    `page_rows` caps a results page (BigQuery's own cap is ~10 MB).
    """

    def __init__(self, state: Any, folder: str | Path | None = None, *,
                 days: int | None = None, page_rows: int = DEFAULT_PAGE_ROWS) -> None:
        from ga_sync.sandbox.export import DEFAULT_DAYS
        self._state = weakref.ref(state)
        self.folder = Path(folder) if folder is not None else None
        self.days = days or DEFAULT_DAYS
        self.page_rows = max(1, int(page_rows))
        self.jobs: OrderedDict[tuple[str, str], _Job] = OrderedDict()
        self._lock = threading.RLock()
        self._export_locks: dict[str, threading.Lock] = {}
        self._cache: dict[str, tuple[str, Path]] = {}  # pid -> (key, root)
        self._cache_root: Path | None = None
        self._sizes: dict[tuple[str, float, int], dict[str, int]] = {}

    @property
    def state(self) -> Any:
        state = self._state()
        if state is None:
            raise ApiError(500, "Internal error encountered.")
        return state

    # ---- datasets ------------------------------------------------------------------------

    def _pid(self, project: str, dataset: str) -> str:
        m = re.fullmatch(r"analytics_(\d+)", dataset)
        if not m:
            raise _not_found(f"Dataset {project}:{dataset}")
        pid = m.group(1)
        if self.folder is not None:
            if not (self.folder / dataset).is_dir():
                raise _not_found(f"Dataset {project}:{dataset}")
            return pid
        state = self.state
        with state.lock:
            record = state.properties.get(pid)
            denied = pid in state.denied
        if record is None or record.traffic is None:
            raise _not_found(f"Dataset {project}:{dataset}")
        if denied:
            raise bq_error(403, "accessDenied", f"Access Denied: Dataset {project}:{dataset}: "
                           "Permission bigquery.datasets.get denied on dataset "
                           f"{project}:{dataset} (or it may not exist).")
        return pid

    def datasets(self) -> list[str]:
        if self.folder is not None:
            return sorted(p.name for p in self.folder.glob("analytics_*") if p.is_dir()
                          and re.fullmatch(r"analytics_\d+", p.name))
        state = self.state
        with state.lock:
            return sorted(f"analytics_{pid}" for pid, rec in state.properties.items()
                          if rec.traffic is not None and pid not in state.denied)

    def root(self, pid: str) -> Path:
        """The folder holding `analytics_<pid>/` (exported now if the cache is stale)."""
        if self.folder is not None:
            return self.folder
        from ga_sync.sandbox import derived
        from ga_sync.sandbox.export import export_property, property_today
        from ga_sync.sandbox.traffic import fingerprint

        state = self.state
        with state.lock:
            record = state.properties[pid]
            parts = (fingerprint(record.traffic or {}), derived.versions_key(
                derived.applicable(record)), record.time_zone, record.currency_code)
        key = hashlib.sha256(repr((parts, str(property_today(parts[2])), self.days))
                             .encode()).hexdigest()[:16]
        with self._lock:
            lock = self._export_locks.setdefault(pid, threading.Lock())
            if self._cache_root is None:
                self._cache_root = Path(tempfile.mkdtemp(prefix="ga-sync-bigquery-"))
                atexit.register(shutil.rmtree, self._cache_root, True)
            base = self._cache_root
        with lock:
            have = self._cache.get(pid)
            if have is not None and have[0] == key:
                return have[1]
            root = base / key
            export_property(state, pid, root, days=self.days)
            with self._lock:
                self._cache[pid] = (key, root)
            if have is not None and have[1] != root:
                shutil.rmtree(have[1] / f"analytics_{pid}", ignore_errors=True)
            return root

    def layout(self, project: str, dataset: str) -> Any:
        from ga_sync.export.layout import ExportError, find_export
        pid = self._pid(project, dataset)
        try:
            return find_export(self.root(pid), pid)
        except ExportError:
            raise _not_found(f"Dataset {project}:{dataset}") from None

    def tables(self, project: str, dataset: str) -> list[tuple[str, list[Path]]]:
        """(table id, files) of the dataset, in name order."""
        layout = self.layout(project, dataset)
        out: dict[str, list[Path]] = {}
        for path in sorted(layout.folder.iterdir()):
            m = _FILE.match(path.name)
            if m and path.is_file():
                name = f"events_{m['intraday'] or ''}{m['day']}"
                out.setdefault(name, []).append(path)
        return sorted(out.items())

    def table(self, project: str, dataset: str, table: str) -> list[Path]:
        for name, files in self.tables(project, dataset):
            if name == table:
                return files
        raise _not_found(f"Table {project}:{dataset}.{table}")

    # ---- sizes ---------------------------------------------------------------------------

    def column_bytes(self, path: Path) -> dict[str, int]:
        """Uncompressed bytes of each top-level column of a Parquet file (JSON: the file's
        size shared evenly)."""
        st = path.stat()
        key = (str(path), st.st_mtime, st.st_size)
        with self._lock:
            if key in self._sizes:
                return self._sizes[key]
        import duckdb
        con = duckdb.connect()
        try:
            if path.suffix == ".parquet":
                rows = con.execute("SELECT path_in_schema, sum(total_uncompressed_size) FROM "
                                   "parquet_metadata(?) GROUP BY 1", [str(path)]).fetchall()
                sizes: dict[str, int] = {}
                for p, n in rows:
                    top = str(p).split(",")[0].strip()
                    sizes[top] = sizes.get(top, 0) + int(n or 0)
            else:
                cols = [r[0] for r in con.execute(
                    "DESCRIBE SELECT * FROM read_json_auto(?)", [str(path)]).fetchall()]
                sizes = {c: st.st_size // max(len(cols), 1) for c in cols}
        finally:
            con.close()
        with self._lock:
            self._sizes[key] = sizes
        return sizes

    # ---- queries -------------------------------------------------------------------------

    def run(self, sql: str, project: str, default_dataset: dict[str, str] | None = None,
            *, dry_run: bool = False, use_int64_timestamp: bool = False) -> _Result:
        """Parse, plan and (unless `dry_run`) run `sql`; ApiError in BigQuery's terms."""
        import sqlglot
        from sqlglot import exp
        from sqlglot.errors import ParseError

        try:
            tree = sqlglot.parse_one(sql, read="bigquery")
        except ParseError as e:
            first = e.errors[0] if getattr(e, "errors", None) else {}
            where = f" at [{first.get('line', 1)}:{first.get('col', 1)}]" if first else ""
            desc = str(first.get("description") or e).splitlines()[0]
            raise _invalid_query(f"Syntax error: {desc}{where}") from None
        if tree is None or not isinstance(tree, (exp.Query,)):
            raise _invalid_query("The sandbox's BigQuery runs SELECT queries only (no DML, "
                                 "DDL or scripts).")
        ctes = {c.alias_or_name.lower() for c in tree.find_all(exp.CTE)}
        refs = []
        for t in tree.find_all(exp.Table):
            if not t.name or (not t.args.get("db") and t.name.lower() in ctes):
                continue
            if isinstance(t.this, (exp.Unnest, exp.Anonymous)) or t.find(exp.Unnest):
                continue
            dataset = t.db or (default_dataset or {}).get("datasetId")
            proj = t.catalog or (default_dataset or {}).get("projectId") or project
            if not dataset:
                raise _invalid_query(f'Table "{t.name}" must be qualified with a dataset '
                                     "(e.g. dataset.table).")
            refs.append((t, proj, dataset, t.name))
        if not refs:
            return self._execute(tree, None, [], [], dry_run)
        datasets = {(p, d) for _, p, d, _ in refs}
        names = {n for _, _, _, n in refs}
        if len(datasets) > 1 or len(names) > 1:
            raise bq_error(400, "invalid", "The sandbox's BigQuery reads one table (or one "
                           "wildcard table) of one export dataset per query; this one reads "
                           + ", ".join(sorted(f"{p}.{d}.{n}" for _, p, d, n in refs)) + ".")
        (proj, dataset), name = next(iter(datasets)), next(iter(names))
        self._pid(proj, dataset)
        tables = self.tables(proj, dataset)
        m = _TABLE.match(name)
        if not m:
            raise _not_found(f"Table {proj}:{dataset}.{name}")
        if m["day"] == "*":
            prefix = "events_intraday_" if m["intraday"] else "events_"
            chosen = [(t, f) for t, f in tables if t.startswith(prefix)]
            if not chosen:
                raise _not_found(f"Table {proj}:{dataset}.{name}: the wildcard matches no "
                                 "table")
            suffixes = {t[len("events_"):]: f for t, f in chosen}
            keep = _pruned(tree, list(suffixes))
            scanned = [(f"events_{s}", suffixes[s]) for s in keep]
        else:
            files = self.table(proj, dataset, name)
            scanned = [(name, files)]
            for t, *_ in refs:  # one table: the wildcard view over its files
                t.set("this", exp.to_identifier("events_*"))
        columns = _columns(tree, self._schema_names(scanned or chosen[:1]))
        total = sum(sum(v for c, v in self.column_bytes(f).items() if c in columns)
                    for _, files in scanned for f in files)
        files = [f for _, fs in scanned for f in fs] or [f for _, fs in chosen[:1] for f in fs]
        layout = self.layout(proj, dataset)
        referenced = [{"projectId": proj, "datasetId": dataset, "tableId": t}
                      for t, _ in scanned]
        if dry_run:
            return _Result(self._dry_schema(tree, layout, files), [], [], total, referenced)
        res = self._execute(tree, layout, files, referenced, False, use_int64_timestamp)
        res.bytes = total
        return res

    def _schema_names(self, scanned: list[tuple[str, list[Path]]]) -> list[str]:
        names: list[str] = []
        for _, files in scanned[:1]:
            for f in files[:1]:
                names = list(self.column_bytes(f)) or names
        return names

    def _dry_schema(self, tree: Any, layout: Any, files: list[Path]) -> list[dict[str, Any]]:
        """The result schema of a dry run (the query planned over no rows)."""
        try:
            res = self._execute(tree, layout, files, [], True)
            return res.schema
        except ApiError:
            raise
        except Exception:  # pragma: no cover - a schema is a nicety of dry runs
            return []

    def _execute(self, tree: Any, layout: Any, files: list[Path], referenced: list,
                 plan_only: bool, use_int64_timestamp: bool = False) -> _Result:
        import duckdb

        from ga_sync.export.engines import DuckDBEngine
        from ga_sync.export.query import transpile

        engine = DuckDBEngine()
        con = engine.connect()
        try:
            try:
                if layout is not None:
                    con.execute(engine.view_sql(layout, files))
                sql = transpile(tree.sql("bigquery"), _VIEW)
                if plan_only:
                    sql = f"SELECT * FROM ({sql}) AS __q LIMIT 0"
                rel = con.sql(sql)
                if rel is None:
                    raise _invalid_query("The sandbox's BigQuery runs SELECT queries only.")
                types, names = list(rel.types), list(rel.columns)
                rows = rel.fetchall()
            except duckdb.Error as e:
                raise _invalid_query(_duckdb_message(e)) from None
            except Exception as e:  # sqlglot failing to write a construct for DuckDB
                if isinstance(e, ApiError):
                    raise
                raise _invalid_query(f"The sandbox cannot run this query on DuckDB: "
                                     f"{str(e).splitlines()[0] if str(e) else type(e).__name__}"
                                     ) from None
        finally:
            con.close()
        anon = 0
        schema = []
        for name, t in zip(names, types):
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                name, anon = f"f{anon}_", anon + 1
            schema.append(_field(name, t))
        return _Result(schema, types, rows, 0, referenced)

    # ---- jobs ----------------------------------------------------------------------------

    def keep(self, job: _Job) -> None:
        with self._lock:
            self.jobs[(job.project, job.job_id)] = job
            self.jobs.move_to_end((job.project, job.job_id))
            while len(self.jobs) > KEPT_JOBS:
                self.jobs.popitem(last=False)

    def job(self, project: str, job_id: str, location: str | None = None) -> _Job:
        with self._lock:
            job = self.jobs.get((project, job_id))
        if job is None:
            raise _not_found(f"Job {project}:{location or LOCATION}.{job_id}")
        return job


_EMULATORS: "weakref.WeakKeyDictionary[Any, BigQueryEmulator]" = weakref.WeakKeyDictionary()
_REGISTRY_LOCK = threading.Lock()


def configure(state: Any, folder: str | Path | None = None, *, days: int | None = None,
              page_rows: int = DEFAULT_PAGE_ROWS) -> BigQueryEmulator:
    """Set how the sandbox serving `state` answers BigQuery (see `BigQueryEmulator`)."""
    emulator = BigQueryEmulator(state, folder, days=days, page_rows=page_rows)
    with _REGISTRY_LOCK:
        _EMULATORS[state] = emulator
    return emulator


def emulator_for(state: Any) -> BigQueryEmulator:
    """The emulator of `state` (a default one, exporting on demand, unless configured)."""
    with _REGISTRY_LOCK:
        emulator = _EMULATORS.get(state)
        if emulator is None:
            emulator = _EMULATORS[state] = BigQueryEmulator(state)
        return emulator


# --------------------------------------------------------------------------- SQL helpers


def _pruned(tree: Any, suffixes: list[str]) -> list[str]:
    """The table suffixes a wildcard query scans: those meeting the constant conditions on
    `_TABLE_SUFFIX` that every SELECT over the wildcard puts in its WHERE (ANDed), as
    BigQuery prunes. A SELECT without such a condition scans every table."""
    import duckdb
    from sqlglot import exp

    keep: set[str] = set()
    selects = [s for s in tree.find_all(exp.Select)
               if any(t.name.endswith("*") for t in _own_tables(s))]
    for s in selects:
        where = s.args.get("where")
        conds = []
        if where is not None:
            for c in where.this.flatten() if isinstance(where.this, exp.And) else [where.this]:
                cols = list(c.find_all(exp.Column))
                if cols and all(col.name.upper() == "_TABLE_SUFFIX" for col in cols) and \
                        not c.find(exp.Select):
                    conds.append(c)
        if not conds:
            return suffixes
        pred = exp.and_(*[c.copy() for c in conds])
        for col in pred.find_all(exp.Column):
            col.replace(exp.column("_TABLE_SUFFIX"))
        con = duckdb.connect()
        try:
            sql = (f"SELECT _TABLE_SUFFIX FROM (SELECT unnest(?::VARCHAR[]) AS _TABLE_SUFFIX) "
                   f"WHERE {pred.sql('duckdb')}")
            keep |= {r[0] for r in con.execute(sql, [suffixes]).fetchall()}
        except duckdb.Error:
            return suffixes
        finally:
            con.close()
    return [s for s in suffixes if s in keep] if selects else suffixes


def _own_tables(select: Any) -> list[Any]:
    """The tables in a SELECT's own FROM and JOINs (not in nested SELECTs)."""
    from sqlglot import exp
    out = []
    for key in ("from", "from_", "joins"):
        part = select.args.get(key)
        for node in (part if isinstance(part, list) else [part]):
            if node is None:
                continue
            target = node.this if isinstance(node, (exp.From, exp.Join)) else node
            if isinstance(target, exp.Table):
                out.append(target)
    return out


def _columns(tree: Any, names: list[str]) -> set[str]:
    """The table's top-level columns the query names (all of them for `SELECT *`)."""
    from sqlglot import exp
    for star in tree.find_all(exp.Star):
        if not isinstance(star.parent, exp.Count):
            return set(names)
    said = {i.name.lower() for i in tree.find_all(exp.Identifier)}
    return {n for n in names if n.lower() in said}


def _duckdb_message(e: Exception) -> str:
    text = str(e).strip()
    first = text.splitlines()[0] if text else type(e).__name__
    first = first.replace(_VIEW, "the export table")
    return re.sub(r"^(\w+) Error: ", "", first) or first


# --------------------------------------------------------------------------- REST shapes


def _field(name: str, t: Any) -> dict[str, Any]:
    """A DuckDB type -> a BigQuery TableFieldSchema."""
    tid = t.id
    if tid in ("list", "array"):
        child = t.children[0][1]
        inner = _field(name, child)
        if inner.get("mode") == "REPEATED":  # ARRAY<ARRAY<...>> does not exist in BigQuery
            return {"name": name, "type": "JSON", "mode": "REPEATED"}
        inner["mode"] = "REPEATED"
        return inner
    if tid == "struct":
        return {"name": name, "type": "RECORD", "mode": "NULLABLE",
                "fields": [_field(n, c) for n, c in t.children]}
    return {"name": name, "type": _scalar_type(tid), "mode": "NULLABLE"}


def _scalar_type(tid: str) -> str:
    if tid in _INTS:
        return "INTEGER"
    if tid in ("double", "float", "decimal"):
        return "FLOAT"
    if tid == "boolean":
        return "BOOLEAN"
    if tid == "date":
        return "DATE"
    if tid in _TIMESTAMPS:
        return "TIMESTAMP"
    if tid == "time":
        return "TIME"
    if tid == "blob":
        return "BYTES"
    if tid == "map":
        return "JSON"
    return "STRING"


def cell(value: Any, f: dict[str, Any], int64_ts: bool) -> Any:
    """One value in BigQuery's REST row encoding (scalars as strings, records as
    {"f": [...]}, repeated fields as [{"v": ...}])."""
    if f.get("mode") == "REPEATED":
        return [{"v": _scalar(v, f, int64_ts)} for v in (value or [])]
    return _scalar(value, f, int64_ts)


def _scalar(value: Any, f: dict[str, Any], int64_ts: bool) -> Any:
    if value is None:
        return None
    kind = f["type"]
    if kind == "RECORD":
        if isinstance(value, dict):
            values = [value.get(sub["name"]) for sub in f["fields"]]
        else:
            values = list(value)
        return {"f": [{"v": cell(v, sub, int64_ts)} for v, sub in zip(values, f["fields"])]}
    if kind == "INTEGER":
        return str(int(value))
    if kind == "FLOAT":
        x = float(value)
        if math.isnan(x):
            return "NaN"
        if math.isinf(x):
            return "Infinity" if x > 0 else "-Infinity"
        return repr(x)
    if kind == "BOOLEAN":
        return "true" if value else "false"
    if kind == "TIMESTAMP":
        if isinstance(value, _dt.datetime):
            if value.tzinfo is None:
                value = value.replace(tzinfo=_dt.timezone.utc)
            micros = round(value.timestamp() * 1_000_000)
            return str(micros) if int64_ts else f"{micros / 1_000_000:.6f}"
        return str(value)
    if kind in ("DATE", "TIME"):
        return value.isoformat() if hasattr(value, "isoformat") else str(value)
    if kind == "BYTES":
        return base64.b64encode(bytes(value)).decode("ascii")
    if kind == "JSON":
        import json
        return json.dumps(value, default=str)
    if isinstance(value, Decimal):
        return str(value)
    return str(value)


def _rows(job: _Job, start: int, stop: int, int64_ts: bool) -> list[dict[str, Any]]:
    return [{"f": [{"v": cell(v, f, int64_ts)} for v, f in zip(row, job.schema)]}
            for row in job.rows[start:stop]]


def _ms(t: float) -> str:
    return str(int(t * 1000))


def _flag(query: dict[str, list[str]], name: str) -> bool:
    return (query.get(name) or [""])[-1].lower() in ("true", "1")


def _int(text: Any, what: str, default: int | None = None) -> int | None:
    if text in (None, ""):
        return default
    try:
        return int(text)
    except (TypeError, ValueError):
        raise bq_error(400, "invalid", f"Invalid value for {what}: {text!r} is not a valid "
                       "value") from None


def _mask(answer: dict[str, Any], query: dict[str, list[str]]) -> dict[str, Any]:
    """Honour a `fields=a,b,c` partial response of top-level fields."""
    fields = (query.get("fields") or [""])[-1]
    if not fields:
        return answer
    wanted = {f.strip().split("/")[0].split("(")[0] for f in fields.split(",") if f.strip()}
    return {k: v for k, v in answer.items() if k in wanted}


# --------------------------------------------------------------------------- handlers


def _job_resource(project: str, job_id: str, location: str, config: dict[str, Any],
                  res: _Result | None, err: ApiError | None, dry: bool,
                  started: float) -> dict[str, Any]:
    now = time.time()
    stats: dict[str, Any] = {"creationTime": _ms(started), "startTime": _ms(started)}
    if not dry:
        stats["endTime"] = _ms(now)
    resource: dict[str, Any] = {
        "kind": "bigquery#job",
        "etag": base64.b64encode(hashlib.md5(job_id.encode()).digest()).decode(),
        "id": f"{project}:{location}.{job_id}",
        "selfLink": f"{PREFIX}/projects/{project}/jobs/{job_id}?location={location}",
        "user_email": "ga-sync@sandbox.invalid",
        "configuration": {**config, "jobType": "QUERY"},
        "jobReference": {"projectId": project, "jobId": job_id, "location": location},
        "statistics": stats,
        "status": {"state": "DONE"},
    }
    if res is not None:
        processed = str(res.bytes)
        q: dict[str, Any] = {"totalBytesProcessed": processed, "cacheHit": False,
                             "statementType": "SELECT", "schema": {"fields": res.schema}}
        if res.tables:
            q["referencedTables"] = res.tables
        if dry:
            q["totalBytesBilled"] = "0"
            q["estimatedBytesProcessed"] = processed
        else:
            q["totalBytesBilled"] = str(_billed(res.bytes))
            q["billingTier"] = 1
            q["totalSlotMs"] = "1"
        stats["totalBytesProcessed"] = processed
        stats["query"] = q
    if err is not None:
        resource["status"] = {"state": "DONE", "errorResult": _error_result(err),
                              "errors": [_error_result(err)]}
    return resource


def _billed(n: int) -> int:
    return max(MIN_BILLED, -(-n // _MB) * _MB)


def _run_job(state: Any, project: str, job_id: str, location: str, qconf: dict[str, Any],
             config: dict[str, Any], dry: bool, int64_ts: bool = False) -> _Job:
    """Run (or dry-run) one query job; a failure is kept on the job (dry runs raise it)."""
    emulator = emulator_for(state)
    started = time.time()
    sql = qconf.get("query")
    if not isinstance(sql, str) or not sql.strip():
        raise bq_error(400, "invalid", "Required parameter is missing: query")
    if qconf.get("useLegacySql") is True:
        raise bq_error(400, "invalid", "The sandbox's BigQuery speaks GoogleSQL only: set "
                       "useLegacySql to false.")
    if qconf.get("queryParameters"):
        raise bq_error(400, "invalid", "Query parameters are not emulated by the sandbox's "
                       "BigQuery: write the values into the SQL.")
    limit = _int(qconf.get("maximumBytesBilled"), "maximumBytesBilled")
    res: _Result | None = None
    err: ApiError | None = None
    try:
        res = emulator.run(sql, project, qconf.get("defaultDataset"), dry_run=dry,
                           use_int64_timestamp=int64_ts)
        if not dry and limit is not None and limit > 0 and _billed(res.bytes) > limit:
            err = bq_error(400, "bytesBilledLimitExceeded", "Query exceeded limit for bytes "
                           f"billed: {limit}. {_billed(res.bytes)} or higher required.")
            res = _Result(res.schema, [], [], res.bytes, res.tables)
    except ApiError as e:
        if dry:
            raise
        err = e
    job = _Job(project, job_id, location, sql,
               _job_resource(project, job_id, location, config, res, err, dry, started))
    if res is not None and err is None:
        job.schema, job.rows, job.types = res.schema, res.rows, res.types
    job.error = err
    if not dry:
        emulator.keep(job)
    return job


def jobs_insert(state: Any, match: re.Match[str], query: dict[str, list[str]],
                body: Any) -> tuple[int, dict]:
    project = match["project"]
    body = body if isinstance(body, dict) else {}
    config = body.get("configuration") or {}
    qconf = config.get("query")
    if not isinstance(qconf, dict):
        raise bq_error(400, "invalid", "The sandbox's BigQuery runs query jobs only (no load, "
                       "copy or extract jobs).")
    ref = body.get("jobReference") or {}
    job_id = str(ref.get("jobId") or uuid.uuid4())
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,1024}", job_id):
        raise bq_error(400, "invalid", f"Invalid job ID \"{job_id}\". Job IDs must be "
                       "alphanumeric (plus underscores and dashes) and must be at most 1024 "
                       "characters long.")
    location = str(ref.get("location") or LOCATION)
    dry = bool(config.get("dryRun"))
    if not dry:
        with emulator_for(state)._lock:
            if (project, job_id) in emulator_for(state).jobs:
                raise bq_error(409, "duplicate", f"Already Exists: Job {project}:{location}."
                               f"{job_id}")
    job = _run_job(state, project, job_id, location, qconf, config, dry)
    return 200, job.resource


def jobs_get(state: Any, match: re.Match[str], query: dict[str, list[str]],
             body: Any) -> tuple[int, dict]:
    location = (query.get("location") or [None])[-1]
    return 200, _mask(emulator_for(state).job(match["project"], match["job"], location).resource,
                      query)


def jobs_cancel(state: Any, match: re.Match[str], query: dict[str, list[str]],
                body: Any) -> tuple[int, dict]:
    location = (query.get("location") or [None])[-1]
    job = emulator_for(state).job(match["project"], match["job"], location)
    return 200, {"kind": "bigquery#jobCancelResponse", "job": job.resource}


def _results(job: _Job, start: int, max_results: int | None, page_rows: int,
             int64_ts: bool, kind: str) -> dict[str, Any]:
    total = len(job.rows)
    size = page_rows if max_results is None else min(max_results, page_rows)
    stop = min(start + size, total)
    answer: dict[str, Any] = {
        "kind": kind,
        "etag": base64.b64encode(hashlib.md5(f"{job.job_id}:{start}".encode()).digest()).decode(),
        "schema": {"fields": job.schema},
        "jobReference": job.resource["jobReference"],
        "totalRows": str(total),
        "totalBytesProcessed": job.resource["statistics"].get("totalBytesProcessed", "0"),
        "jobComplete": True,
        "cacheHit": False,
    }
    if stop > start:
        answer["rows"] = _rows(job, start, stop, int64_ts)
    if stop < total and size > 0:
        answer["pageToken"] = _page_token(stop)
    return answer


def _page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"row:{offset}".encode()).decode().rstrip("=")


def _offset(token: str) -> int:
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        if text.startswith("row:"):
            return int(text[4:])
    except (ValueError, UnicodeDecodeError):
        pass
    raise bq_error(400, "invalid", f"Invalid page token: {token}")


def get_query_results(state: Any, match: re.Match[str], query: dict[str, list[str]],
                      body: Any) -> tuple[int, dict]:
    emulator = emulator_for(state)
    location = (query.get("location") or [None])[-1]
    job = emulator.job(match["project"], match["job"], location)
    if job.error is not None:
        raise job.error
    token = (query.get("pageToken") or [""])[-1]
    start = _offset(token) if token else (_int((query.get("startIndex") or [None])[-1],
                                               "startIndex", 0) or 0)
    max_results = _int((query.get("maxResults") or [None])[-1], "maxResults")
    answer = _results(job, start, max_results, emulator.page_rows,
                      _flag(query, "formatOptions.useInt64Timestamp"),
                      "bigquery#getQueryResultsResponse")
    return 200, _mask(answer, query)


def jobs_query(state: Any, match: re.Match[str], query: dict[str, list[str]],
               body: Any) -> tuple[int, dict]:
    project = match["project"]
    body = body if isinstance(body, dict) else {}
    location = str(body.get("location") or LOCATION)
    qconf = {k: body[k] for k in ("query", "useLegacySql", "maximumBytesBilled",
                                  "defaultDataset", "queryParameters", "useQueryCache")
             if k in body}
    dry = bool(body.get("dryRun"))
    config = {"query": qconf, **({"dryRun": True} if dry else {})}
    int64_ts = bool((body.get("formatOptions") or {}).get("useInt64Timestamp"))
    job = _run_job(state, project, "job_" + uuid.uuid4().hex, location, qconf, config, dry,
                   int64_ts)
    if job.error is not None:
        raise job.error
    if dry:
        q = job.resource["statistics"]["query"]
        return 200, {"kind": "bigquery#queryResponse", "schema": q["schema"],
                     "jobReference": {"projectId": project, "location": location},
                     "totalBytesProcessed": q["totalBytesProcessed"], "jobComplete": True,
                     "cacheHit": False}
    answer = _results(job, 0, _int(body.get("maxResults"), "maxResults"),
                      emulator_for(state).page_rows, int64_ts, "bigquery#queryResponse")
    answer["queryId"] = job.job_id
    return 200, answer


def _dataset_resource(project: str, dataset: str) -> dict[str, Any]:
    return {"kind": "bigquery#dataset", "id": f"{project}:{dataset}",
            "datasetReference": {"projectId": project, "datasetId": dataset},
            "location": LOCATION, "type": "DEFAULT",
            "selfLink": f"{PREFIX}/projects/{project}/datasets/{dataset}"}


def datasets_list(state: Any, match: re.Match[str], query: dict[str, list[str]],
                  body: Any) -> tuple[int, dict]:
    project = match["project"]
    names = emulator_for(state).datasets()
    return 200, {"kind": "bigquery#datasetList", "datasets": [
        {"kind": "bigquery#dataset", "id": f"{project}:{d}", "location": LOCATION,
         "datasetReference": {"projectId": project, "datasetId": d}} for d in names]}


def datasets_get(state: Any, match: re.Match[str], query: dict[str, list[str]],
                 body: Any) -> tuple[int, dict]:
    emulator = emulator_for(state)
    emulator.layout(match["project"], match["dataset"])
    out = _dataset_resource(match["project"], match["dataset"])
    out["description"] = "GA4 BigQuery export (ga-sync sandbox)"
    return 200, out


def _created(files: list[Path]) -> str:
    return _ms(min(f.stat().st_mtime for f in files))


def tables_list(state: Any, match: re.Match[str], query: dict[str, list[str]],
                body: Any) -> tuple[int, dict]:
    project, dataset = match["project"], match["dataset"]
    tables = emulator_for(state).tables(project, dataset)
    token = (query.get("pageToken") or [""])[-1]
    start = _offset(token) if token else 0
    size = _int((query.get("maxResults") or [None])[-1], "maxResults") or TABLES_PAGE
    page = tables[start:start + size]
    answer: dict[str, Any] = {"kind": "bigquery#tableList",
                              "etag": base64.b64encode(hashlib.md5(repr(
                                  [t for t, _ in tables]).encode()).digest()).decode(),
                              "totalItems": len(tables)}
    answer["tables"] = [{"kind": "bigquery#table", "id": f"{project}:{dataset}.{t}",
                         "tableReference": {"projectId": project, "datasetId": dataset,
                                            "tableId": t},
                         "type": "TABLE", "creationTime": _created(files)}
                        for t, files in page]
    if start + size < len(tables):
        answer["nextPageToken"] = _page_token(start + size)
    return 200, answer


def _table_schema(files: list[Path]) -> list[dict[str, Any]]:
    import duckdb
    con = duckdb.connect()
    try:
        read = "read_parquet" if files[0].suffix == ".parquet" else "read_json_auto"
        paths = ", ".join("'" + str(f).replace("'", "''") + "'" for f in files)
        rel = con.sql(f"SELECT * FROM {read}([{paths}]) LIMIT 0")
        return [_field(n, t) for n, t in zip(rel.columns, rel.types)]
    finally:
        con.close()


def tables_get(state: Any, match: re.Match[str], query: dict[str, list[str]],
               body: Any) -> tuple[int, dict]:
    project, dataset, table = match["project"], match["dataset"], match["table"]
    emulator = emulator_for(state)
    files = emulator.table(project, dataset, table)
    import duckdb
    con = duckdb.connect()
    try:
        if files[0].suffix == ".parquet":
            rows = con.execute("SELECT sum(num_rows) FROM parquet_file_metadata(?)",
                               [[str(f) for f in files]]).fetchone()[0]
        else:
            rows = sum(1 for f in files for _ in f.open("rb"))
    finally:
        con.close()
    size = sum(sum(emulator.column_bytes(f).values()) for f in files)
    created = _created(files)
    return 200, {
        "kind": "bigquery#table", "id": f"{project}:{dataset}.{table}",
        "selfLink": f"{PREFIX}/projects/{project}/datasets/{dataset}/tables/{table}",
        "tableReference": {"projectId": project, "datasetId": dataset, "tableId": table},
        "schema": {"fields": _table_schema(files)},
        "numRows": str(int(rows or 0)), "numBytes": str(size), "numLongTermBytes": "0",
        "creationTime": created, "lastModifiedTime": created, "type": "TABLE",
        "location": LOCATION,
    }


def tabledata_list(state: Any, match: re.Match[str], query: dict[str, list[str]],
                   body: Any) -> tuple[int, dict]:
    project, dataset, table = match["project"], match["dataset"], match["table"]
    emulator = emulator_for(state)
    emulator.table(project, dataset, table)
    res = emulator.run(f"SELECT * FROM `{project}`.`{dataset}`.`{table}`", project)
    job = _Job(project, "tabledata", LOCATION, "", {}, res.schema, res.rows, res.types)
    token = (query.get("pageToken") or [""])[-1]
    start = _offset(token) if token else (_int((query.get("startIndex") or [None])[-1],
                                               "startIndex", 0) or 0)
    size = _int((query.get("maxResults") or [None])[-1], "maxResults") or emulator.page_rows
    stop = min(start + min(size, emulator.page_rows), len(res.rows))
    answer: dict[str, Any] = {"kind": "bigquery#tableDataList", "totalRows": str(len(res.rows)),
                              "rows": _rows(job, start, stop,
                                            _flag(query, "formatOptions.useInt64Timestamp"))}
    if stop < len(res.rows):
        answer["pageToken"] = _page_token(stop)
    return 200, _mask(answer, query)


_P = rf"{PREFIX}/projects/(?P<project>[^/]+)"
_D = r"/datasets/(?P<dataset>[^/]+)"

ROUTES: list[Route] = [
    route("POST", rf"{_P}/jobs", jobs_insert, "bigquery"),
    route("GET", rf"{_P}/jobs/(?P<job>[^/]+)", jobs_get, "bigquery"),
    route("POST", rf"{_P}/jobs/(?P<job>[^/]+)/cancel", jobs_cancel, "bigquery"),
    route("POST", rf"{_P}/queries", jobs_query, "bigquery"),
    route("GET", rf"{_P}/queries/(?P<job>[^/]+)", get_query_results, "bigquery"),
    route("GET", rf"{_P}/datasets", datasets_list, "bigquery"),
    route("GET", rf"{_P}{_D}", datasets_get, "bigquery"),
    route("GET", rf"{_P}{_D}/tables", tables_list, "bigquery"),
    route("GET", rf"{_P}{_D}/tables/(?P<table>[^/]+)", tables_get, "bigquery"),
    route("GET", rf"{_P}{_D}/tables/(?P<table>[^/]+)/data", tabledata_list, "bigquery"),
]

__all__ = ["BigQueryEmulator", "DEFAULT_PAGE_ROWS", "MIN_BILLED", "ROUTES", "bq_error", "cell",
           "configure", "emulator_for"]
