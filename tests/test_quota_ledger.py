"""The quota ledger: what one ga-sync process spent of GA's per-minute Admin quotas is known to
the next, and to processes running at the same time.

Pure tests drive `QuotaLedger` and `Pacer` with a fake clock; process tests run real
subprocesses against one ledger file; the cron-chain test runs `plan`, `apply --yes`, `report`
and `audit` one after another, as a nightly job would, against a sandbox enforcing the quotas.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ga_sync.clients import connect, identity
from ga_sync.pacing import Pacer, QuotaLedger, ledger_path
from ga_sync.sandbox.faults import QuotaLimits
from ga_sync.sandbox.server import SandboxServer
from ga_sync.sandbox.state import SandboxState


class FakeClock:
    def __init__(self, now: float = 1_000.0):
        self.now = now
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.now += s


def pacer(path: Path, clock: FakeClock, *, requests: int = 100, writes: int = 30,
          window: float = 10.0, key: str = "anonymous http://sandbox") -> Pacer:
    p = Pacer(requests, writes, window=window, margin=0, sleep=clock.sleep)
    return p.share(QuotaLedger(path, key, clock=clock))


def test_a_second_process_starts_with_what_the_first_spent(tmp_path):
    clock = FakeClock()
    first = pacer(tmp_path / "ledger.json", clock)
    for _ in range(30):
        first.acquire(write=True)
    first.release()  # the process exits: what it reserved and did not use goes back
    assert clock.sleeps == []
    second = pacer(tmp_path / "ledger.json", clock)
    second.acquire(write=True)  # the 31st write in the window waits for it to pass
    assert clock.now >= 1_000.0 + 10.0
    assert sum(clock.sleeps) == pytest.approx(clock.now - 1_000.0)


def test_reads_and_writes_share_the_request_quota_across_processes(tmp_path):
    clock = FakeClock()
    a = pacer(tmp_path / "l.json", clock)
    for i in range(60):
        a.acquire(write=i % 10 == 0)
    a.release()
    b = pacer(tmp_path / "l.json", clock)
    for i in range(40):
        b.acquire(write=i % 10 == 0)
    b.release()
    assert clock.sleeps == []
    assert QuotaLedger(tmp_path / "l.json", "anonymous http://sandbox", clock=clock).spent(
        "requests", 10.0) == 100
    a.acquire(write=False)
    assert clock.now > 1_000.0  # the 101st request waited


def test_other_credentials_and_endpoints_have_their_own_quota(tmp_path):
    clock = FakeClock()
    for key in ("anonymous http://a", "anonymous http://b", "service-account:x@y http://a"):
        p = pacer(tmp_path / "l.json", clock, writes=5, key=key)
        for _ in range(5):
            p.acquire(write=True)
    assert clock.sleeps == []


def test_blocks_grow_so_the_file_is_not_locked_for_every_call(tmp_path):
    clock = FakeClock()
    p = pacer(tmp_path / "l.json", clock, requests=10_000, writes=10_000)
    for _ in range(1_000):
        p.acquire(write=False)
    assert p.ledger is not None and p.ledger.operations < 40


def test_a_reservation_unused_within_its_lease_goes_back(tmp_path):
    clock = FakeClock()
    p = pacer(tmp_path / "l.json", clock, requests=10, writes=10)
    ledger = p.ledger
    assert ledger is not None
    p.acquire(write=False)  # reserves a block of 4
    assert ledger.spent("requests", 10.0) == 4
    clock.now += 5  # the lease is over: the next call gives the 3 unused back
    p.acquire(write=False)
    assert ledger.spent("requests", 10.0) == 1 + 2  # 1 used; a new block of 2 (it shrank)
    p.release()
    assert ledger.spent("requests", 10.0) == 2


def test_an_unreadable_ledger_starts_afresh_and_an_unusable_one_paces_alone(tmp_path):
    clock = FakeClock()
    (tmp_path / "l.json").write_text("{not json", encoding="utf-8")
    p = pacer(tmp_path / "l.json", clock)
    p.acquire(write=True)
    assert json.loads((tmp_path / "l.json").read_text())["version"] == 1
    blocked = tmp_path / "file"
    blocked.write_text("")
    q = pacer(blocked / "l.json", clock)  # its folder is a file
    q.acquire(write=True)
    assert q.ledger is None  # fell back to pacing this process alone
    for _ in range(29):
        q.acquire(write=True)
    assert clock.sleeps == []


def test_ledger_location_and_identity(tmp_path, monkeypatch):
    assert ledger_path({"GA_SYNC_QUOTA_LEDGER": "off"}) is None
    assert ledger_path({"GA_SYNC_QUOTA_LEDGER": str(tmp_path / "q.json")}) == tmp_path / "q.json"
    assert ledger_path({}).name == "quota-ledger.json"
    env = {"GA_SYNC_CREDENTIALS": "anonymous", "GA_SYNC_ADMIN_ENDPOINT": "http://127.0.0.1:9",
           "GA_SYNC_QUOTA_LEDGER": str(tmp_path / "q.json")}
    pacer_ = connect(env=env).retry.pacer
    assert pacer_ is not None and pacer_.ledger is not None
    assert pacer_.ledger.key == "anonymous http://127.0.0.1:9"
    assert connect(env={**env, "GA_SYNC_QUOTA_LEDGER": "off"}).retry.pacer.ledger is None

    class ServiceAccount:
        service_account_email = "sync@agency.iam.gserviceaccount.com"
    assert identity(ServiceAccount()) == "service-account:sync@agency.iam.gserviceaccount.com"


CHILD = textwrap.dedent("""
    import sys, time
    from ga_sync.pacing import Pacer, QuotaLedger
    path, n, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    p = Pacer(40, 40, window=2.0, margin=0).share(QuotaLedger(path, "k"))
    times = []
    for _ in range(n):
        p.acquire(write=False)
        times.append(time.time())
    p.release()
    open(out, "w").write(" ".join(map(repr, times)))
""")


def test_concurrent_processes_never_exceed_the_quota_together(tmp_path):
    """Four processes, 30 calls each, 40 per 2 s between them: no 2 s window holds more than
    40 calls, and the 120 calls take at least two windows."""
    procs = [subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path / "l.json"), "30",
                               str(tmp_path / f"out{i}")]) for i in range(4)]
    assert all(p.wait(timeout=60) == 0 for p in procs)
    times = sorted(float(t) for i in range(4)
                   for t in (tmp_path / f"out{i}").read_text().split())
    assert len(times) == 120
    worst = max(sum(1 for u in times if t <= u < t + 2.0) for t in times)
    assert worst <= 40
    assert times[-1] - times[0] >= 2 * 2.0 * 0.9


SPEC = """\
client: Chain Client {n:02d}
properties: [{properties}]
currency: USD
goals:
  - event: purchase
    tier: macro
    value: event
  - event: generate_lead
    tier: macro
    value: 40
  - event: sign_up
    tier: micro
    value: 12.5
  - event: add_to_cart
    tier: micro
    value: 4
  - event: file_download
    tier: micro
    value: 1
"""

#: Per window and user, on both sides: GA's 600 requests and 180 writes a minute scaled to a
#: window the whole chain's ~20 s span (550 Admin requests, 200 writes) needs about three of,
#: so that one command's spending is still in the window when the next starts. Without the
#: ledger the same chain gets rate-limit answers (`bench/sync_many.py --case chain`).
WINDOW = 10.0
REQUESTS = 200
WRITES = 120


def test_a_cron_chain_of_commands_gets_no_rate_limit_answers(tmp_path):
    """plan, apply --yes, report, audit over 50 properties, one process after another, against a
    sandbox enforcing the Admin quotas (each process alone stays under them; together, without
    the ledger, they do not: `bench/sync_many.py --chain` measures both)."""
    from ga_sync.model import Spec
    from ga_sync.sandbox.seed import seed_properties

    ids = [500_000_001 + i for i in range(50)]
    specs_dir = tmp_path / "specs"
    specs_dir.mkdir()
    specs = []
    for n in range(5):
        chunk = ids[n * 10:(n + 1) * 10]
        (specs_dir / f"client-{n}.yaml").write_text(
            SPEC.format(n=n, properties=", ".join(map(str, chunk))), encoding="utf-8")
        specs.append(Spec(client=f"Chain Client {n:02d}", properties=tuple(map(str, chunk)),
                          currency="USD", goals=()))
    state = SandboxState()
    seed_properties(state, specs)
    limits = QuotaLimits(window_s=WINDOW, admin_per_user=REQUESTS, admin_writes_per_user=WRITES,
                         admin_per_project=2 * REQUESTS, admin_writes_per_project=2 * WRITES)
    server = SandboxServer(state, quotas=limits)
    server.start()
    env = {**os.environ, "GA_SYNC_ADMIN_ENDPOINT": server.url,
           "GA_SYNC_DATA_ENDPOINT": server.url, "GA_SYNC_CREDENTIALS": "anonymous",
           "GA_SYNC_QUOTA_WINDOW": str(WINDOW), "GA_SYNC_ADMIN_REQUESTS_PER_MINUTE": str(REQUESTS),
           "GA_SYNC_ADMIN_WRITES_PER_MINUTE": str(WRITES),
           "GA_SYNC_QUOTA_LEDGER": str(tmp_path / "ledger.json"),
           "GA_SYNC_JOURNAL": str(tmp_path / "journal.jsonl"),
           "GA_SYNC_STORE": str(tmp_path / "history.duckdb")}
    try:
        for command in (["plan"], ["apply", "--yes"], ["report"], ["audit", "--fail-on", "never"]):
            run = subprocess.run([sys.executable, "-m", "ga_sync", *command, str(specs_dir)],
                                 env=env, capture_output=True, text=True, timeout=300)
            assert run.returncode == 0, (command, run.stderr[-2000:])
        stats = server.stats.snapshot()
    finally:
        server.stop()
    assert stats["writes"] == 200 and stats["admin_requests"] >= 550
    assert stats["rate_limited"] == 0, stats
    assert stats["by_status"] == {"200": stats["requests"]}
