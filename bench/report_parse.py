"""Benchmark: a 250,000-row report page into a DataFrame, default client path vs ga-sync's.

Both paths fetch the same generated runReport response (about 40 MB of JSON) over HTTP from a
local server, so the comparison includes what each really does:

- default: `BetaAnalyticsDataClient.run_report` (REST transport: `json_format.Parse` into the
  protobuf), then a loop over the proto-plus rows into a DataFrame;
- ga-sync: `report.fetch` (the client's own authorized session, `json.loads`, columns straight
  from the dicts, `ParsedReport.frame()`).

Each measurement runs in a fresh subprocess so its peak memory (max RSS) is its own. Prints the
medians, the ratio (target: ga-sync at least 8x faster) and peak memory.

    python bench/report_parse.py [--rows 250000] [--runs 3]
"""

from __future__ import annotations

import argparse
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

PROPERTY = "properties/123456789"
DIMS = ["date", "eventName"]
METRICS = [("eventCount", "TYPE_INTEGER"), ("sessions", "TYPE_INTEGER"), ("eventValue", "TYPE_FLOAT")]


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


def run_default(url: str) -> tuple[float, int]:
    import pandas as pd
    from google.analytics.data_v1beta import BetaAnalyticsDataClient
    from google.analytics.data_v1beta.types import RunReportRequest
    from google.auth.credentials import AnonymousCredentials

    client = BetaAnalyticsDataClient(credentials=AnonymousCredentials(), transport="rest",
                                     client_options={"api_endpoint": url})
    t = time.perf_counter()
    resp = client.run_report(RunReportRequest(property=PROPERTY, limit=250000), timeout=600)
    names = [h.name for h in resp.dimension_headers] + [h.name for h in resp.metric_headers]
    records = [[dv.value for dv in row.dimension_values] + [mv.value for mv in row.metric_values]
               for row in resp.rows]
    df = pd.DataFrame(records, columns=names)
    for m, _ in METRICS:
        df[m] = pd.to_numeric(df[m])
    return time.perf_counter() - t, len(df)


def run_fast(url: str) -> tuple[float, int]:
    os.environ["GA_SYNC_DATA_ENDPOINT"] = url
    os.environ["GA_SYNC_ADMIN_ENDPOINT"] = url
    os.environ["GA_SYNC_CREDENTIALS"] = "anonymous"
    from ga_sync.clients import connect
    from ga_sync.report import fetch

    conn = connect()
    conn.data()  # build the client outside the timing, as the default path does
    t = time.perf_counter()
    body = {"dateRanges": [{"startDate": "2026-01-01", "endDate": "2026-12-31"}],
            "dimensions": [{"name": d} for d in DIMS], "metrics": [{"name": m} for m, _ in METRICS],
            "limit": "250000"}
    parsed = fetch(conn, PROPERTY, [("rows", body)])["rows"]
    df = parsed.frame()
    return time.perf_counter() - t, len(df)


def one(method: str, rows: int) -> None:
    """Child process: serve the payload, time one method, print JSON with time and peak RSS."""
    payload = make_response(rows)
    server = serve(payload)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    seconds, n = (run_default if method == "default" else run_fast)(url)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    server.shutdown()
    print(json.dumps({"method": method, "seconds": seconds, "rows": n,
                      "peak_rss_mb": peak / 1024, "extra_rss_mb": (peak - base_rss) / 1024,
                      "payload_mb": len(payload) / 1e6}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=250_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--one", choices=["default", "fast"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        one(args.one, args.rows)
        return
    results: dict[str, list[dict]] = {"default": [], "fast": []}
    for i in range(args.runs):
        for method in ("default", "fast"):
            out = subprocess.run([sys.executable, __file__, "--one", method, "--rows", str(args.rows)],
                                 capture_output=True, text=True, check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            assert r["rows"] == args.rows, r
            results[method].append(r)
            print(f"run {i + 1}/{args.runs} {method:7s} {r['seconds']:7.2f} s  "
                  f"peak RSS {r['peak_rss_mb']:7.0f} MB", flush=True)
    med = {m: statistics.median(r["seconds"] for r in rs) for m, rs in results.items()}
    mem = {m: statistics.median(r["peak_rss_mb"] for r in rs) for m, rs in results.items()}
    ratio = med["default"] / med["fast"]
    print()
    print(f"rows: {args.rows:,}   payload: {results['fast'][0]['payload_mb']:.1f} MB   runs: {args.runs}")
    print(f"default client path (json_format.Parse + proto-plus rows): median {med['default']:.2f} s, "
          f"peak RSS {mem['default']:.0f} MB")
    print(f"ga-sync path (json.loads + columns):                      median {med['fast']:.2f} s, "
          f"peak RSS {mem['fast']:.0f} MB")
    print(f"speed-up: {ratio:.1f}x   target >= 8x: {'MET' if ratio >= 8 else 'NOT MET'}")


if __name__ == "__main__":
    main()
