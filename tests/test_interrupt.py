"""A real `ga-sync apply` process interrupted by Ctrl-C (SIGINT) or kill (SIGTERM), then run again.

The interrupted run must stop promptly with exit 130, start no new change, leave a journal
whose every line is whole JSON and whose unfinished changes are marked, and a second run must
finish the job exactly.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest

from ga_sync.sandbox.server import SandboxServer

N_PROPS = 24
GOALS = ("sign_up", "generate_lead", "file_download", "add_to_cart")


def _spec_dir(tmp_path):
    d = tmp_path / "specs"
    d.mkdir()
    for i in range(N_PROPS):
        goals = "\n".join(f"  - {{event: {g}, tier: micro, value: {j + 1}}}" for j, g in enumerate(GOALS))
        (d / f"client-{i:02d}.yaml").write_text(
            f"client: Client {i}\nproperty: {700000000 + i}\ncurrency: USD\ngoals:\n{goals}\n")
    return d


def _events(state):
    return {pid: sorted(k.event_name for k in r.key_events.values())
            for pid, r in state.properties.items()}


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_apply_then_rerun(sandbox_state, tmp_path, sig):
    for i in range(N_PROPS):
        sandbox_state.add_property(property_id=str(700000000 + i), display_name=f"Client {i}")
    specs = _spec_dir(tmp_path)
    journal = tmp_path / "journal.jsonl"
    with SandboxServer(sandbox_state, latency_ms=150) as server:
        env = {**os.environ, "GA_SYNC_ADMIN_ENDPOINT": server.url,
               "GA_SYNC_DATA_ENDPOINT": server.url, "GA_SYNC_CREDENTIALS": "anonymous",
               "GA_SYNC_JOURNAL": str(journal)}
        cmd = [sys.executable, "-m", "ga_sync", "apply", str(specs), "--yes", "--concurrency", "4"]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        deadline = time.time() + 60
        while time.time() < deadline:  # wait until some changes are done
            if journal.exists() and journal.read_text().count('"applied"') >= 10:
                break
            time.sleep(0.05)
        proc.send_signal(sig)
        t0 = time.time()
        out, err = proc.communicate(timeout=30)
        stop_seconds = time.time() - t0
        assert proc.returncode == 130, err
        assert "Interrupted" in err
        assert stop_seconds < 5  # calls on the wire come back; nothing new is started

        lines = [json.loads(x) for x in journal.read_text().splitlines()]  # every line whole
        starts = Counter((x["property"], x["event"]) for x in lines if x["outcome"] == "started")
        ends = Counter((x["property"], x["event"]) for x in lines if x["outcome"] != "started")
        unfinished = starts - ends
        assert all(n == 1 for n in unfinished.values())
        assert len(unfinished) <= 4  # at most one in flight per worker
        done = sum(1 for x in lines if x["outcome"] == "applied")
        assert 10 <= done < N_PROPS * len(GOALS)
        # nothing was created twice, and what the journal calls applied is really there
        for pid, events in _events(sandbox_state).items():
            assert len(events) == len(set(events))
        for x in lines:
            if x["outcome"] == "applied":
                pid = x["property"].split("/")[1]
                assert x["event"] in _events(sandbox_state)[pid]

        present = sum(len(e) - 1 for e in _events(sandbox_state).values())  # minus purchase
        assert present >= done

        rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
        assert rerun.returncode == 0, rerun.stderr
    assert _events(sandbox_state) == {str(700000000 + i): sorted(GOALS + ("purchase",))
                                      for i in range(N_PROPS)}
    again = [json.loads(x) for x in journal.read_text().splitlines()]
    rerun_applied = [x for x in again[len(lines):] if x["outcome"] == "applied"]
    assert len(rerun_applied) == N_PROPS * len(GOALS) - present  # exactly what was missing


class HungEndpoint:
    """Accepts every connection and never answers: a dead proxy, a black-holed load balancer."""

    def __init__(self) -> None:
        import socket
        import threading
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.conns: list = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                self.conns.append(self.sock.accept()[0])
            except OSError:
                return

    def close(self) -> None:
        self.sock.close()
        for c in self.conns:
            c.close()


@pytest.mark.parametrize("command, sig", [
    ("plan", signal.SIGINT), ("report", signal.SIGINT), ("audit", signal.SIGINT),
    ("plan", signal.SIGTERM), ("report", signal.SIGTERM), ("audit", signal.SIGTERM)])
def test_interrupt_with_a_hung_endpoint_exits_130_within_2_seconds(tmp_path, command, sig):
    """Calls on the wire that never come back do not hold the interrupt: exit 130 in < 2 s,
    and no property is listed as FAILED because it was cancelled."""
    specs = _spec_dir(tmp_path)
    hung = HungEndpoint()
    try:
        env = {**os.environ, "GA_SYNC_ADMIN_ENDPOINT": hung.url, "GA_SYNC_DATA_ENDPOINT": hung.url,
               "GA_SYNC_CREDENTIALS": "anonymous", "GA_SYNC_STORE": str(tmp_path / "h.duckdb")}
        cmd = [sys.executable, "-m", "ga_sync", command, str(specs), "--concurrency", "4"]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, cwd=tmp_path)
        deadline = time.time() + 30
        while time.time() < deadline and len(hung.conns) < 4:  # every worker is stuck on a call
            time.sleep(0.05)
        assert len(hung.conns) >= 4
        t0 = time.time()
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
        stop_seconds = time.time() - t0
    finally:
        hung.close()
    assert proc.returncode == 130, err
    assert stop_seconds < 2, stop_seconds
    assert "Interrupted" in err
    assert "FAILED" not in err and "error:" not in err and "Traceback" not in err


def test_ctrl_c_stops_a_running_duckdb_query(tmp_path):
    """A worker inside a DuckDB query when Ctrl-C comes is interrupted, not left running: a
    thread still in DuckDB when the process exits aborts it ("FATAL: exception not rethrown")."""
    import _thread
    import threading
    import time

    from ga_sync.errors import GaSyncError
    from ga_sync.export.engines import DuckDBEngine
    from ga_sync.sync import run_each

    started = threading.Event()
    workers: list[threading.Thread] = []

    def work(_: int) -> int:
        workers.append(threading.current_thread())
        con = DuckDBEngine().connect()
        try:
            started.set()
            return con.execute("SELECT count(*) FROM range(100000000000) a").fetchone()[0]
        except Exception as e:  # the interrupt arrives as DuckDB's error
            raise GaSyncError(f"interrupted: {e}") from None
        finally:
            con.close()

    def press_ctrl_c() -> None:
        started.wait(10)
        time.sleep(0.3)
        _thread.interrupt_main()

    threading.Thread(target=press_ctrl_c, daemon=True).start()
    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        run_each([1], work, concurrency=1, grace=5.0)
    assert time.monotonic() - t0 < 5.0
    workers[0].join(2.0)
    assert not workers[0].is_alive(), "the DuckDB query was left running"


def test_after_an_interrupt_the_next_report_runs_again(tmp_path):
    """A notebook that pressed Ctrl-C once can run an export report again."""
    from ga_sync.errors import Cancelled
    from ga_sync.export.engines import DuckDBEngine, interrupt_all

    interrupt_all()
    with pytest.raises(Cancelled):
        DuckDBEngine().connect()
    from ga_sync.api import _source
    _source("export:/nowhere", None)  # what every report() and report_sql() does first
    DuckDBEngine().connect().close()
