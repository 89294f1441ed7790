"""Shared helpers for the bench scripts: the workload, one measured apply, and the state check.

The workload is issue 5's: N sandbox properties, each needing 3 creates and 1 update. Every
property starts like a fresh GA4 web property (GA's default `purchase`) plus one hand-made key
event set up wrong (`generate_lead` counted once per event; the spec wants once per session).
The specs are real YAML files loaded by `load_specs`, and the apply goes through the same
library calls as `ga-sync apply --yes`: `connect(write=True)` from the environment, `plan_all`,
`check_safety`, `apply_all` with the CLI's default concurrency.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as `python bench/NAME.py` from a clone
    sys.path.insert(0, str(ROOT))

from ga_sync.model import Spec, property_id  # noqa: E402

FIRST_PROPERTY = 400_000_001
PROPERTIES_PER_SPEC = 10
CREATES_PER_PROPERTY = 3
UPDATES_PER_PROPERTY = 1
DRIFTED_EVENT = "generate_lead"

SPEC_TEMPLATE = """\
# Benchmark client {n}: goals to create, 1 to fix, GA's default purchase left as it is.
client: Bench Client {n:03d}
properties: [{properties}]
currency: {currency}
goals:
  - event: purchase
    tier: macro
    value: event
  - event: {drifted}
    tier: macro
    value: 40
    counting: once_per_session
  - event: sign_up
    tier: micro
    value: 12.5
    counting: once_per_session
  - event: add_to_cart
    tier: micro
    value: 4
  - event: file_download
    tier: micro
    value: 1
"""


def write_specs(directory: Path, properties: int, creates: int = CREATES_PER_PROPERTY) -> Path:
    """One YAML spec per `PROPERTIES_PER_SPEC` properties, like an agency's goal_specs/;
    `creates` (at most 3) new key events per property besides the one fix."""
    directory.mkdir(parents=True, exist_ok=True)
    ids = [FIRST_PROPERTY + i for i in range(properties)]
    for n, start in enumerate(range(0, properties, PROPERTIES_PER_SPEC), 1):
        chunk = ids[start:start + PROPERTIES_PER_SPEC]
        text = SPEC_TEMPLATE.format(n=n, properties=", ".join(map(str, chunk)),
                                    currency="EUR" if n % 3 == 0 else "USD",
                                    drifted=DRIFTED_EVENT)
        goals = text.split("\n  - ")
        text = "\n  - ".join(goals[:len(goals) - (CREATES_PER_PROPERTY - creates)])
        text = text if text.endswith("\n") else text + "\n"
        (directory / f"bench-client-{n:03d}.yaml").write_text(text, encoding="utf-8")
    return directory


def seed_state(specs: Sequence[Spec]) -> Any:
    """A fresh in-memory sandbox with the specs' properties, each with one drifted key event."""
    from google.analytics.admin_v1beta.types import KeyEvent

    from ga_sync.sandbox.seed import seed_properties
    from ga_sync.sandbox.state import SandboxState

    state = SandboxState()
    seed_properties(state, specs)
    for spec in specs:
        for prop in spec.properties:
            record = state.properties[property_id(prop)]
            kid = state.new_key_event_id()
            record.key_events[kid] = KeyEvent(
                name=f"properties/{record.id}/keyEvents/{kid}", event_name=DRIFTED_EVENT,
                counting_method=KeyEvent.CountingMethod.ONCE_PER_EVENT, deletable=True, custom=True)
    return state


@dataclass
class RunFigures:
    """What one benchmark apply measured (all counts from this run only)."""

    wall: float  # seconds from connect() to the last apply result, all rounds
    rounds: int  # plan+apply rounds until nothing failed (1 = retries absorbed everything)
    planned_writes: int
    requests: int  # GA API requests the sandbox received (every attempt)
    writes: int  # write requests the sandbox received (every attempt)
    rate_limited: int  # 429s from the sandbox's quota enforcement
    faults: int
    lost_responses: int
    retried: int  # client retries
    client_rate_limited: int  # of which after a 429 / rate-limit 403 (injected or quota)
    pacer_waited: float  # seconds threads spent waiting in the client's quota pacer (summed)
    applied: int
    reconciled: int
    failed: int
    first_write: float  # seconds from start to the first write arriving at the sandbox
    max_writes_in_window: int  # most writes the sandbox received in any `window` seconds
    mismatches: list[str] = field(default_factory=list)
    duplicates: int = 0
    ledger_transactions: int = 0  # quota ledger file transactions (reservations in blocks)


def run_apply(specs_dir: Path, *, window: float, latency_ms: float, fault_rate: float = 0.0,
              seed: int = 5, journal: Path, max_rounds: int = 5,
              concurrency: int | None = None, server_process: bool = False) -> RunFigures:
    """Seed a fresh sandbox, then plan and apply the specs as `ga-sync apply --yes` does.

    The sandbox enforces GA's Admin quotas with windows of `window` seconds and the client's
    pacer is configured (through GA_SYNC_QUOTA_WINDOW, as a user would) with the same window.
    If anything failed, plan and apply again (as a cron job's next run would), up to
    `max_rounds` in all. `concurrency` None: the commands' default (`default_concurrency`).
    `server_process`: the sandbox runs in a forked process of its own, as GA is not in the
    client's process: otherwise both share one interpreter lock, and a latency-bound run
    measures the sandbox's CPU as much as the client's. The quota ledger is a fresh file.
    """
    import multiprocessing
    import tempfile

    import google.analytics.admin_v1beta  # noqa: F401 - imported before the clock starts

    from ga_sync.admin import Journal
    from ga_sync.clients import connect
    from ga_sync.plan import check_safety
    from ga_sync.sandbox.faults import QuotaLimits
    from ga_sync.spec import load_specs
    from ga_sync.sync import apply_all, default_concurrency, plan_all, targets

    specs = load_specs([specs_dir])
    state = seed_state(specs)
    options = dict(latency_ms=latency_ms, fault_rate=fault_rate, seed=seed,
                   quotas=QuotaLimits(window_s=window))
    if server_process:
        pipe, child_end = multiprocessing.get_context("fork").Pipe()
        child = multiprocessing.get_context("fork").Process(
            target=_serve_in_child, args=(state, specs, options, child_end), daemon=True)
        child.start()
        url = pipe.recv()
    ledger = Path(tempfile.mkdtemp(prefix="ga-sync-bench-ledger-")) / "quota-ledger.json"
    arrivals: list[float] = []
    with (sandbox_env(state, **options) if not server_process else _nothing()) as server, \
            env_vars(GA_SYNC_QUOTA_WINDOW=str(window), GA_SYNC_QUOTA_LEDGER=str(ledger),
                     **({"GA_SYNC_ADMIN_ENDPOINT": url, "GA_SYNC_DATA_ENDPOINT": url,
                         "GA_SYNC_CREDENTIALS": "anonymous"} if server_process else {})):
        if server is not None:
            _watch_writes(server, arrivals)
        start = time.monotonic()
        conn = connect(write=True)
        applied = reconciled = failed = planned = 0
        rounds = 0
        while rounds < max_rounds:
            rounds += 1
            plan, failures = plan_all(conn, specs, concurrency=concurrency or default_concurrency(
                "plan", len(targets(specs))))
            if rounds == 1:
                planned = sum(len(p.changes) for p in plan.properties)
            if not plan.has_changes and not failures:
                rounds -= 1  # this round only confirmed the previous one
                break
            check_safety(plan)
            todo = sum(1 for p in plan.properties if p.changes)
            results = apply_all(conn, plan, Journal(journal), concurrency=concurrency
                                or default_concurrency("apply", todo))
            applied += sum(len(r.applied) for r in results)
            reconciled += sum(len(r.reconciled) for r in results)
            failed = sum(len(r.failed) for r in results)
            if not failed and not failures:
                break
        wall = time.monotonic() - start
        if server is not None:
            stats = server.stats.snapshot()
    if server_process:
        pipe.send("stop")
        stats, arrivals, mismatches, duplicates = pipe.recv()
        child.join(10)
    else:
        mismatches, duplicates = check_state(state, specs)
    pacer = conn.retry.pacer
    return RunFigures(
        wall=wall, rounds=rounds, planned_writes=planned, requests=stats["requests"],
        writes=stats["writes"], rate_limited=stats["rate_limited"], faults=stats["faults"],
        lost_responses=stats["lost_responses"], retried=conn.retry.retried,
        client_rate_limited=conn.retry.rate_limited,
        pacer_waited=pacer.waited if pacer is not None else 0.0, applied=applied,
        reconciled=reconciled, failed=failed,
        first_write=(arrivals[0] - start) if arrivals else math.nan,
        max_writes_in_window=max_in_window(arrivals, window),
        mismatches=mismatches, duplicates=duplicates,
        ledger_transactions=pacer.ledger.operations if pacer and pacer.ledger else 0)


@contextmanager
def _nothing() -> Iterator[None]:
    yield None


def _serve_in_child(state: Any, specs: Sequence[Spec], options: dict[str, Any], pipe: Any) -> None:
    """The forked sandbox process: serve until told to stop, then send back the server's
    counters, the write arrival times (CLOCK_MONOTONIC is system-wide) and the state check."""
    from ga_sync.sandbox.server import SandboxServer

    server = SandboxServer(state, **options)
    server._httpd.socket.listen(128)  # see sandbox_env
    arrivals: list[float] = []
    _watch_writes(server, arrivals)
    server.start()
    pipe.send(server.url)
    pipe.recv()
    stats = server.stats.snapshot()
    server.stop()
    pipe.send((stats, arrivals, *check_state(state, specs)))


def _watch_writes(server: Any, out: list[float]) -> None:
    """Record when each write reaches the sandbox's quota check (every attempt counts)."""
    original = server._take_quota

    def take(r: Any, path: str, headers: Any) -> Any:
        if r.write:
            out.append(time.monotonic())
        return original(r, path, headers)

    server._take_quota = take


def max_in_window(times: Sequence[float], window: float) -> int:
    """The most events in any half-open interval of `window` seconds (a sliding count)."""
    ordered = sorted(times)
    best = lo = 0
    for hi, t in enumerate(ordered):
        while ordered[lo] <= t - window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def check_state(state: Any, specs: Sequence[Spec]) -> tuple[list[str], int]:
    """(what differs from the specs, how many duplicate event names), read from the raw state.

    Exactly the spec's key events with their counting method and default value, plus GA's
    default `purchase` (once per event, no value, not deletable) when the spec does not name it.
    """
    mismatches: list[str] = []
    duplicates = 0
    counting = {1: "once_per_event", 2: "once_per_session"}
    for spec in specs:
        want: dict[str, tuple[str, float | None, str | None]] = {
            g.event: (g.counting, None if g.value is None else float(g.value),
                      None if g.value is None else spec.currency)
            for g in spec.goals}
        want.setdefault("purchase", ("once_per_event", None, None))
        for prop in spec.properties:
            record = state.properties[property_id(prop)]
            names = [ke.event_name for ke in record.key_events.values()]
            duplicates += len(names) - len(set(names))
            have: dict[str, tuple[str, float | None, str | None]] = {}
            for ke in record.key_events.values():
                pb = type(ke).pb(ke)
                value = (float(ke.default_value.numeric_value), ke.default_value.currency_code) \
                    if pb.HasField("default_value") else (None, None)
                have[ke.event_name] = (counting.get(int(pb.counting_method), "unspecified"), *value)
            for event in sorted(set(want) | set(have)):
                if want.get(event) != have.get(event):
                    mismatches.append(f"{prop} {event}: want {want.get(event)}, have {have.get(event)}")
    return mismatches, duplicates


def lower_bound(*, latency_s: float, calls: int, concurrency: int, writes: int,
                write_quota: int, window: float) -> float:
    """Issue 5's bound: max(latency x calls / concurrency, writes / write quota)."""
    return max(latency_s * calls / concurrency, writes / (write_quota / window))


def burst_floor(*, writes: int, write_quota: int, window: float) -> float:
    """When the last write may start if a window's worth goes at once: (ceil(w/q) - 1) windows."""
    return (math.ceil(writes / write_quota) - 1) * window


def machine() -> str:
    """`2 cores, Python 3.11.7, Linux x86_64` for the printed header."""
    import platform
    return (f"{os.cpu_count()} cores, Python {platform.python_version()}, "
            f"{platform.system()} {platform.machine()}")


def verdict(ok: bool) -> str:
    return "MET" if ok else "NOT MET"


@contextmanager
def env_vars(**values: str) -> Iterator[None]:
    """Set environment variables for the block, then restore them (as a user's shell would)."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextmanager
def sandbox_env(state: Any, **server_options: Any) -> Iterator[Any]:
    """A sandbox server in this process, with ga-sync's endpoints pointed at it."""
    from ga_sync.demo import sandbox_server

    with sandbox_server(state, **server_options) as server, \
            env_vars(GA_SYNC_ADMIN_ENDPOINT=server.url, GA_SYNC_DATA_ENDPOINT=server.url,
                     GA_SYNC_CREDENTIALS="anonymous"):
        # http.server listens with a backlog of 5: 20+ workers connecting at once lose SYNs and
        # wait a second for the retry (issue 10); a larger one keeps that out of the figures
        # (listen() again on a listening socket only changes its backlog).
        server._httpd.socket.listen(128)
        yield server
