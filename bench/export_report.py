"""Benchmark: the export source's report over a GA4-schema export of >= 10 million events.

Generates (once; cached) a GA4 BigQuery export of several sandbox properties over 90 days with
`ga_sync.export.writer` (the sandbox's own event log, the official nested schema, daily
Parquet), then measures, median of 3:

- the report's wall time over all properties: `ExportSource.pull` (the one query, on DuckDB,
  over the files) plus `report.compute`, for a spec with every goal kind;
- events per second;
- the floor: a bare DuckDB scan of the same columns over the same files (every column the
  query reads, each touched by an aggregate), and the report's ratio to it (target <= 2);
- peak memory of this process (VmHWM, the RSS high-water mark; target < 2 GB). Generation runs
  in a child process so it does not count.

    .venv/bin/python bench/export_report.py [--properties 4] [--sessions 5200] [--days 90]
        [--cache DIR] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as `python bench/NAME.py` from a clone
    sys.path.insert(0, str(ROOT))

from ga_sync.model import Condition, EventRule, Goal, SessionRule, Spec  # noqa: E402
from ga_sync.periods import Period  # noqa: E402

FIRST_PROPERTY = 610_000_001
START = date(2025, 1, 6)
SITE_GOALS = (("purchase", "macro", None), ("generate_lead", "macro", 150.0),
              ("sign_up", "micro", 12.5), ("add_to_cart", "micro", 4.0),
              ("file_download", "micro", None))
GOALS = (
    Goal("purchase", "macro", None),
    Goal("generate_lead", "macro", 150.0, "once_per_session"),
    Goal("sign_up", "micro", 12.5, "once_per_session"),
    Goal("add_to_cart", "micro", 4.0),
    Goal("file_download", "micro", None, "once_per_session"),
    Goal("pricing_view", "micro", 2.0, origin=EventRule(
        "page_view", (Condition("page_location", "contains", "/pricing"),))),
    Goal("engaged_5_pages", "micro", 1.0, origin=SessionRule(min_page_views=5)),
    Goal("engaged_3_minutes", "micro", 1.0, origin=SessionRule(min_seconds=180)),
)


def properties(n: int) -> list[str]:
    return [str(FIRST_PROPERTY + i) for i in range(n)]


def generate(folder: Path, n: int, sessions: float, days: int) -> None:
    """Write the export (in this process: the parent runs it as a child)."""
    from ga_sync.export.writer import write_traffic
    from ga_sync.sandbox.traffic import make_traffic, set_day_cache

    set_day_cache(64 << 20)  # a day is generated, written and dropped
    end = START + timedelta(days=days - 1)
    for i, pid in enumerate(properties(n)):
        traffic = make_traffic(SITE_GOALS, seed=100 + i, daily_sessions=sessions,
                               start=START, property_id=pid)
        t0 = time.perf_counter()
        write_traffic(traffic, START, end, folder, pid, time_zone="Europe/Berlin")
        print(f"  wrote analytics_{pid}: {days} days in {time.perf_counter() - t0:.1f} s",
              flush=True)


def ensure_export(cache: Path, n: int, sessions: float, days: int) -> Path:
    key = f"p{n}-s{int(sessions)}-d{days}-v1"
    folder = cache / key
    marker = folder / "complete.json"
    if marker.exists():
        return folder
    print(f"generating the export in {folder} (once) ...", flush=True)
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, __file__, "--generate", str(folder), "--properties", str(n),
                    "--sessions", str(sessions), "--days", str(days)], check=True)
    marker.write_text(json.dumps({"properties": n, "sessions": sessions, "days": days}))
    return folder


def peak_rss_mb() -> float:
    """This process's RSS high-water mark (VmHWM), in MB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


FLOOR_SQL = """SELECT count(*), min(event_date), max(event_timestamp),
    max(event_name), max(user_pseudo_id), sum(len(event_params)),
    max(event_params[1].key), max(event_params[1].value.int_value)
    FROM read_parquet({paths})"""


def floor_scan(folder: Path, pids: list[str]) -> int:
    """A bare DuckDB scan of the columns the query reads, over the same files: the floor."""
    import duckdb
    con = duckdb.connect()
    total = 0
    for pid in pids:
        files = sorted((folder / f"analytics_{pid}").glob("events_*.parquet"))
        paths = "[" + ", ".join(f"'{f}'" for f in files) + "]"
        total += con.execute(FLOOR_SQL.format(paths=paths)).fetchone()[0]
    con.close()
    return total


def bytes_read(folder: Path, pid: str, period: Period) -> tuple[int, int]:
    """Bytes DuckDB reads from the files for the floor and for the report's query (one
    property, from DuckDB's profile): equal when the floor scans the same columns."""
    import json

    import duckdb

    from ga_sync.export.engines import DuckDBEngine
    from ga_sync.export.source import ExportSource

    source = ExportSource(folder)
    spec = Spec(client="Bench", properties=(f"properties/{pid}",), currency="USD", goals=GOALS)
    layout = source.layout(f"properties/{pid}")
    files = layout.files([period])
    paths = "[" + ", ".join(f"'{f}'" for f in files) + "]"
    query = source.query(spec, f"properties/{pid}", [period], layout).duckdb_sql()
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for sql, view in ((FLOOR_SQL.format(paths=paths), False), (query, True)):
            con = duckdb.connect()
            if view:
                con.execute(DuckDBEngine().view_sql(layout, files))
            con.execute("PRAGMA enable_profiling = 'json'")
            con.execute(f"PRAGMA profiling_output = '{tmp}/profile.json'")
            con.execute(sql).fetchall()
            con.close()
            out.append(int(json.loads(Path(tmp, "profile.json").read_text())["io"]
                           ["total_bytes_read"]))
    return out[0], out[1]


def report(folder: Path, pids: list[str], period: Period) -> int:
    """Every property's report through the export source; returns the events counted."""
    from ga_sync.export.source import ExportSource
    from ga_sync.report import compute

    source = ExportSource(folder)
    events = 0
    for pid in pids:
        spec = Spec(client="Bench", properties=(f"properties/{pid}",), currency="USD",
                    goals=GOALS)
        facts = source.pull(None, spec, f"properties/{pid}", [period])
        compute(spec, facts)
        events += int(sum(facts.periods[0].days["sessions"]) > 0)
    return events


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--properties", type=int, default=4)
    ap.add_argument("--sessions", type=float, default=5200.0, help="mean weekday sessions")
    ap.add_argument("--days", type=int, default=90)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--cache", type=Path,
                    default=Path(tempfile.gettempdir()) / "ga-sync-bench-export")
    ap.add_argument("--generate", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.generate:
        generate(args.generate, args.properties, args.sessions, args.days)
        return

    folder = ensure_export(args.cache, args.properties, args.sessions, args.days)
    pids = properties(args.properties)
    period = Period(START, START + timedelta(days=args.days - 1))
    size = sum(f.stat().st_size for f in folder.rglob("*.parquet"))
    import duckdb
    events = floor_scan(folder, pids)  # also warms the page cache
    print(f"export: {len(pids)} properties x {args.days} days, {events:,} events, "
          f"{size / 1e6:,.0f} MB of Parquet ({os.cpu_count()} cores, DuckDB "
          f"{duckdb.__version__}, load {os.getloadavg()[0]:.1f})")
    report(folder, pids[:1], period)  # warm-up: imports, first DuckDB connection
    try:
        floor_bytes, query_bytes = bytes_read(folder, pids[0], period)
        print(f"bytes read from the files, one property: floor {floor_bytes:,}, report's "
              f"query {query_bytes:,} ({'the same' if floor_bytes == query_bytes else 'DIFFER'})")
    except Exception as e:  # an older DuckDB without the JSON profile's io section
        print(f"bytes read: not available ({type(e).__name__}: {e})")
    walls, floors, cpus, floor_cpus = [], [], [], []
    for i in range(args.runs):  # alternate, so both see the same load
        t0, c0 = time.perf_counter(), time.process_time()
        floor_scan(folder, pids)
        floors.append(time.perf_counter() - t0)
        floor_cpus.append(time.process_time() - c0)
        t0, c0 = time.perf_counter(), time.process_time()
        report(folder, pids, period)
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
        print(f"  run {i + 1}: report {walls[-1]:.2f} s (CPU {cpus[-1]:.2f} s), floor "
              f"{floors[-1]:.2f} s (CPU {floor_cpus[-1]:.2f} s), ratio {walls[-1] / floors[-1]:.2f}"
              f" (CPU {cpus[-1] / floor_cpus[-1]:.2f}; load {os.getloadavg()[0]:.1f})",
              flush=True)
    wall, floor = statistics.median(walls), statistics.median(floors)
    cpu, floor_cpu = statistics.median(cpus), statistics.median(floor_cpus)
    peak = peak_rss_mb()
    ratio = wall / floor
    print(f"report over all properties: {wall:.2f} s (median of {args.runs}: "
          f"{', '.join(f'{w:.2f}' for w in walls)})")
    print(f"events per second: {events / wall:,.0f}")
    print(f"floor (bare scan of the same columns): {floor:.2f} s; ratio {ratio:.2f} "
          f"(target <= 2: {'met' if ratio <= 2 else 'NOT met'})")
    print(f"CPU time (all threads): report {cpu:.2f} s, floor {floor_cpu:.2f} s; ratio "
          f"{cpu / floor_cpu:.2f} (less sensitive to other load on the machine)")
    print(f"peak memory (VmHWM): {peak:,.0f} MB (target < 2048: "
          f"{'met' if peak < 2048 else 'NOT met'})")


if __name__ == "__main__":
    main()
