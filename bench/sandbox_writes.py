"""Sandbox CPU per Admin API write at 32 concurrent clients (issue 10, item 5).

The sandbox runs in its own process (`--serve`, started by this script) with a state file of
50 properties with traffic profiles, quotas off. 32 client threads, each with its own
keep-alive connection, create 10 key events on their property, update each and delete each:
960 writes per run. The figure is the sandbox process's CPU time (`time.process_time` in that
process, all its threads) over the run, divided by the writes; wall time and throughput too.
Two ways of persisting, each 3 runs (medians):

- now: each write appended to the write-ahead log and fsynced (`SandboxState.save`);
- before: each write rewrites and fsyncs the whole state file (`SandboxState.compact`, what
  `save` did before issue 10).

Target: under 1 ms of sandbox CPU per write with the log.

    .venv/bin/python bench/sandbox_writes.py     # ~1 min
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, machine, verdict  # noqa: E402

CLIENTS = 32
PROPERTIES = 50
EVENTS_PER_CLIENT = 10
RUNS = 3
FIRST_PROPERTY = 700_000_001


def serve(state_path: str, mode: str) -> None:
    """The sandbox process: serve until stdin says `quit`; answer `cpu` with process_time."""
    from ga_sync.sandbox.server import SandboxServer
    from ga_sync.sandbox.state import SandboxState
    from ga_sync.sandbox.traffic import make_traffic

    state = SandboxState(state_path)
    if mode == "before":
        state.save = state.compact  # type: ignore[method-assign]
    for i in range(PROPERTIES):
        pid = FIRST_PROPERTY + i
        goals = [("purchase", "macro", None), ("sign_up", "micro", 5.0),
                 ("file_download", "micro", 1.0)]
        state.add_property(pid, display_name=f"Bench {i}",
                           traffic=make_traffic(goals, seed=i, property_id=pid))
    state.compact()
    server = SandboxServer(state, quotas=None).start()
    print(server.url, flush=True)
    for line in sys.stdin:
        if line.strip() == "cpu":
            print(f"{time.process_time():.6f}", flush=True)
        elif line.strip() == "quit":
            break
    server.stop()
    state.close()


def client(url: str, pid: int, writes: list[int], errors: list[str]) -> None:
    import requests

    s = requests.Session()
    base = f"{url}/v1beta/properties/{pid}/keyEvents"
    names = []
    n = 0
    for i in range(EVENTS_PER_CLIENT):
        r = s.post(base, json={"eventName": f"goal_{threading.get_ident() % 997}_{i}",
                               "countingMethod": "ONCE_PER_EVENT"}, timeout=60)
        n += 1
        if r.status_code != 200:
            errors.append(r.text[:200])
            continue
        names.append(r.json()["name"])
    for name in names:
        r = s.patch(f"{url}/v1beta/{name}", params={"updateMask": "countingMethod,defaultValue"},
                    json={"countingMethod": "ONCE_PER_SESSION",
                          "defaultValue": {"numericValue": 3.5, "currencyCode": "USD"}},
                    timeout=60)
        n += 1
        if r.status_code != 200:
            errors.append(r.text[:200])
    for name in names:
        r = s.delete(f"{url}/v1beta/{name}", timeout=60)
        n += 1
        if r.status_code != 200:
            errors.append(r.text[:200])
    writes.append(n)


def one_run(mode: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.Popen([sys.executable, __file__, "--serve", str(Path(tmp) / "s.json"),
                                 mode], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                cwd=ROOT)
        assert proc.stdin is not None and proc.stdout is not None
        url = proc.stdout.readline().strip()

        def cpu() -> float:
            proc.stdin.write("cpu\n")  # type: ignore[union-attr]
            proc.stdin.flush()  # type: ignore[union-attr]
            return float(proc.stdout.readline())  # type: ignore[union-attr]

        writes: list[int] = []
        errors: list[str] = []
        threads = [threading.Thread(target=client, args=(url, FIRST_PROPERTY + i % PROPERTIES,
                                                         writes, errors))
                   for i in range(CLIENTS)]
        c0, t0 = cpu(), time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        c1 = cpu()
        proc.stdin.write("quit\n")
        proc.stdin.flush()
        proc.wait(timeout=60)
        total = sum(writes)
        return {"cpu_ms": 1000 * (c1 - c0) / total, "wall_ms": 1000 * wall / total,
                "per_s": total / wall, "writes": total, "errors": len(errors)}


def main() -> None:
    print(f"sandbox_writes: {CLIENTS} clients x {EVENTS_PER_CLIENT} creates + updates + deletes "
          f"over {PROPERTIES} properties; {machine()}; load {os.getloadavg()[0]:.2f}")
    medians = {}
    for mode in ("now", "before"):
        runs = [one_run(mode) for _ in range(RUNS)]
        cpu = statistics.median(r["cpu_ms"] for r in runs)
        wall = statistics.median(r["wall_ms"] for r in runs)
        rate = statistics.median(r["per_s"] for r in runs)
        medians[mode] = cpu
        each = ", ".join(f"{r['cpu_ms']:.3f}" for r in runs)
        print(f"  {mode}: sandbox CPU per write median {cpu:.3f} ms "
              f"({each}); wall per write "
              f"{wall:.3f} ms, {rate:.0f} writes/s; {runs[0]['writes']:.0f} writes per run, "
              f"{sum(r['errors'] for r in runs):.0f} errors")
    print(f"  before / now: {medians['before'] / medians['now']:.1f}x less CPU per write")
    print(f"  target: sandbox CPU per write < 1 ms at {CLIENTS} clients: "
          f"{verdict(medians['now'] < 1.0)} ({medians['now']:.3f} ms)")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--serve":
        serve(sys.argv[2], sys.argv[3])
    else:
        main()
