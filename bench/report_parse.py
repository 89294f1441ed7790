"""Benchmark: a 250,000-row report page into a DataFrame: the default client path, ga-sync's, and
the fastest path we know.

Every path fetches the same generated runReport response (about 37 MB of JSON) over HTTP from a
local server and ends with the same DataFrame (dimensions as strings, metrics numeric):

- default: `BetaAnalyticsDataClient.run_report` (REST transport: `json_format.Parse` into the
  protobuf), then a loop over the proto-plus rows into a DataFrame, `pd.to_numeric` per metric;
- ga-sync: `data.fetch` (the client's own authorized session, `json.loads` with the collector
  paused, columns straight from the dicts, every answer checked) and `ParsedReport.frame()`;
- fastest: the faster of `pyarrow.json` + `pyarrow.compute` (string columns kept in Arrow) and
  `orjson` + numpy, on the bytes a plain `requests` session fetched; no checks at all. Needs
  pyarrow and orjson, which ga-sync does not depend on: `pip install pyarrow orjson`, or
  `--libs DIR` for a folder they were installed in with `pip install --target DIR`.

Each measurement runs in a fresh subprocess, with every library imported and the client built
before the clock starts, so its peak memory (max RSS) is its own and no path pays an import.
Prints the medians, the ratios (targets: ga-sync at least 15x faster than the default path and
within 2x of the fastest) and peak memory for each.

    python bench/report_parse.py [--rows 250000] [--runs 3] [--libs DIR]
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PROPERTY = "properties/123456789"
DIMS = ["date", "eventName"]
METRICS = [("eventCount", "TYPE_INTEGER"), ("sessions", "TYPE_INTEGER"), ("eventValue", "TYPE_FLOAT")]
TARGET_DEFAULT = 15.0
TARGET_FASTEST = 2.0


def make_response(rows: int, seed: int = 1) -> bytes:
    """A runReport answer in GA's JSON shape with `rows` distinct (date, eventName) rows."""
    rnd = random.Random(seed)
    events = [f"event_{i:05d}" for i in range(max(1, rows // 365 + 1))]
    out = []
    n = 0
    for day in range(365):
        date = f"2026{1 + day // 31 % 12:02d}{1 + day % 28:02d}"
        for e in events:
            if n == rows:
                break
            count = rnd.randint(1, 5000)
            out.append({"dimensionValues": [{"value": date}, {"value": e}],
                        "metricValues": [{"value": str(count)}, {"value": str(count // 2 + 1)},
                                         {"value": f"{count * 1.37:.2f}"}]})
            n += 1
    body = {"dimensionHeaders": [{"name": d} for d in DIMS],
            "metricHeaders": [{"name": m, "type": t} for m, t in METRICS],
            "rows": out, "rowCount": rows,
            "metadata": {"currencyCode": "USD", "timeZone": "America/New_York"},
            "kind": "analyticsData#runReport"}
    return json.dumps(body).encode()


def serve(payload: bytes) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            data = payload
            if self.path.split("?")[0].endswith(":batchRunReports"):
                data = b'{"reports": [' + payload + b'], "kind": "analyticsData#batchRunReports"}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


# --------------------------------------------------------------------------- the paths
# Each `prepare_*` imports and builds everything outside the clock and returns the timed step.


def prepare_default(url: str) -> Any:
    import pandas as pd
    from google.analytics.data_v1beta import BetaAnalyticsDataClient
    from google.analytics.data_v1beta.types import RunReportRequest
    from google.auth.credentials import AnonymousCredentials

    client = BetaAnalyticsDataClient(credentials=AnonymousCredentials(), transport="rest",
                                     client_options={"api_endpoint": url})

    def run() -> Any:
        resp = client.run_report(RunReportRequest(property=PROPERTY, limit=250000), timeout=600)
        names = [h.name for h in resp.dimension_headers] + [h.name for h in resp.metric_headers]
        records = [[dv.value for dv in row.dimension_values]
                   + [mv.value for mv in row.metric_values] for row in resp.rows]
        df = pd.DataFrame(records, columns=names)
        for m, _ in METRICS:
            df[m] = pd.to_numeric(df[m])
        return df
    return run


def prepare_gasync(url: str) -> Any:
    import pandas  # noqa: F401 - frame() imports it; not inside the clock

    from ga_sync.clients import connect
    from ga_sync.data import fetch

    conn = connect(env={"GA_SYNC_DATA_ENDPOINT": url, "GA_SYNC_ADMIN_ENDPOINT": url,
                        "GA_SYNC_CREDENTIALS": "anonymous", "GA_SYNC_QUOTA_LEDGER": "off"})
    conn.data()  # build the client outside the timing, as the default path does
    body = {"dateRanges": [{"startDate": "2026-01-01", "endDate": "2026-12-31"}],
            "dimensions": [{"name": d} for d in DIMS], "metrics": [{"name": m} for m, _ in METRICS],
            "limit": "250000"}

    def run() -> Any:
        return fetch(conn, PROPERTY, [("rows", body)])["rows"].frame()
    return run


def _fetch_bytes(url: str) -> Any:
    import requests
    session = requests.Session()
    target = f"{url}/v1beta/{PROPERTY}:runReport"
    return lambda: session.post(target, data=b"{}", timeout=600).content


def prepare_arrow(url: str) -> Any:
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.json as pj

    fetch = _fetch_bytes(url)

    def run() -> Any:
        content = fetch()
        table = pj.read_json(io.BytesIO(content),
                             read_options=pj.ReadOptions(block_size=len(content) + 1))
        rows = pc.list_flatten(table.column("rows").combine_chunks())
        columns: dict[str, Any] = {}
        for key, names in (("dimensionValues", DIMS), ("metricValues", [m for m, _ in METRICS])):
            values = pc.list_flatten(rows.field(key)).field("value")
            step = len(names)
            for i, name in enumerate(names):
                columns[name] = values.take(pa.array(np.arange(i, len(values), step)))
        for m, kind in METRICS:
            columns[m] = pc.cast(columns[m], pa.int64() if kind == "TYPE_INTEGER" else pa.float64())
        return pa.table(columns).to_pandas(
            types_mapper={pa.string(): pd.StringDtype("pyarrow")}.get)
    return run


def prepare_orjson(url: str) -> Any:
    import numpy as np
    import orjson
    import pandas as pd

    fetch = _fetch_bytes(url)

    def run() -> Any:
        content = fetch()
        gc.disable()
        try:
            report = orjson.loads(content)
            rows = report["rows"]
            data: dict[str, Any] = {}
            dv = [r["dimensionValues"] for r in rows]
            for i, name in enumerate(DIMS):
                data[name] = [v[i]["value"] for v in dv]
            mv = [r["metricValues"] for r in rows]
            for i, (name, kind) in enumerate(METRICS):
                col = np.array([v[i]["value"] for v in mv], dtype=float)
                data[name] = col.astype(np.int64) if kind == "TYPE_INTEGER" else col
            return pd.DataFrame(data)
        finally:
            gc.enable()
    return run


PATHS = {"default": prepare_default, "ga-sync": prepare_gasync, "pyarrow": prepare_arrow,
         "orjson": prepare_orjson}


def one(method: str, payload_file: str) -> None:
    """Child process: serve the payload, time one path, print JSON with time and peak RSS.

    The payload is generated once by the parent and read here as bytes, so the peak RSS is the
    path's own, not the generator's dicts."""
    payload = Path(payload_file).read_bytes()
    server = serve(payload)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    run = PATHS[method](url)
    gc.collect()
    base_rss = _memory("VmRSS")
    t = time.perf_counter()
    df = run()
    seconds = time.perf_counter() - t
    peak = _memory("VmHWM")
    server.shutdown()
    print(json.dumps({"method": method, "seconds": seconds, "rows": len(df),
                      "columns": list(map(str, df.columns)),
                      "peak_rss_mb": peak / 1024, "extra_rss_mb": (peak - base_rss) / 1024,
                      "payload_mb": len(payload) / 1e6}))


def _memory(field: str) -> int:
    """KiB from /proc/self/status: VmHWM is this process's own peak. (getrusage's ru_maxrss is
    not: Linux carries it over fork and exec, so a child reports its parent's peak if larger.)"""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _available(libs: str | None) -> bool:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [libs, str(ROOT)])))
    probe = subprocess.run([sys.executable, "-c", "import pyarrow.json, orjson"], env=env,
                           capture_output=True)
    return probe.returncode == 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=250_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--libs", default=os.environ.get("BENCH_EXTRA_LIBS"),
                    help="a folder holding pyarrow and orjson (pip install --target DIR), for "
                         "the fastest path only")
    ap.add_argument("--one", choices=list(PATHS), help=argparse.SUPPRESS)
    ap.add_argument("--payload", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        one(args.one, args.payload)
        return
    import tempfile
    payload_file = Path(tempfile.mkdtemp(prefix="ga-sync-bench-")) / "report.json"
    payload_file.write_bytes(make_response(args.rows))
    methods = ["default", "ga-sync"]
    if _available(args.libs):
        methods += ["pyarrow", "orjson"]
    else:
        print("pyarrow / orjson not importable: the fastest path is not measured "
              "(pip install pyarrow orjson, or --libs DIR)")
    results: dict[str, list[dict[str, Any]]] = {m: [] for m in methods}
    for i in range(args.runs):
        for method in methods:
            extra = args.libs if method in ("pyarrow", "orjson") else None
            env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [extra, str(ROOT)])))
            out = subprocess.run([sys.executable, __file__, "--one", method, "--payload",
                                  str(payload_file)], capture_output=True, text=True, check=True,
                                 env=env)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            assert r["rows"] == args.rows and r["columns"] == DIMS + [m for m, _ in METRICS], r
            results[method].append(r)
            print(f"run {i + 1}/{args.runs} {method:8s} {r['seconds']:7.2f} s  "
                  f"peak RSS {r['peak_rss_mb']:7.0f} MB (+{r['extra_rss_mb']:.0f} MB in the clock)  "
                  f"load {os.getloadavg()[0]:.1f}",
                  flush=True)
    med = {m: statistics.median(r["seconds"] for r in rs) for m, rs in results.items()}
    mem = {m: statistics.median(r["peak_rss_mb"] for r in rs) for m, rs in results.items()}
    print()
    print(f"rows: {args.rows:,}   payload: {results['ga-sync'][0]['payload_mb']:.1f} MB   "
          f"runs: {args.runs}   load: {os.getloadavg()[0]:.2f}")
    labels = {"default": "default client path (json_format.Parse + proto-plus rows)",
              "ga-sync": "ga-sync (json.loads + checked columns + numpy)",
              "pyarrow": "pyarrow.json + compute (no checks)",
              "orjson": "orjson + numpy (no checks)"}
    for m in methods:
        print(f"{labels[m]:58s} median {med[m]:6.2f} s, peak RSS {mem[m]:5.0f} MB")
    ratio = med["default"] / med["ga-sync"]
    print(f"ga-sync vs default: {ratio:.1f}x faster   target >= {TARGET_DEFAULT:g}x: "
          f"{'MET' if ratio >= TARGET_DEFAULT else 'NOT MET'}")
    if "pyarrow" in med:
        fastest = min(("pyarrow", "orjson"), key=med.__getitem__)
        behind = med["ga-sync"] / med[fastest]
        print(f"ga-sync vs fastest ({fastest}): {behind:.2f}x the time   target <= "
              f"{TARGET_FASTEST:g}x: {'MET' if behind <= TARGET_FASTEST else 'NOT MET'}")


if __name__ == "__main__":
    main()
