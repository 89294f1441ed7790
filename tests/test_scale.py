"""Sync at scale on the sandbox: faults without loss or duplicates, interrupted applies, quotas.

Every test goes through the product's path (`connect` from the environment, `plan_all`,
`apply_all`, `Journal`) against a sandbox that misbehaves on purpose, then checks the sandbox's
raw state against the specs exactly.
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.analytics.admin_v1beta.types import KeyEvent

from ga_sync.admin import Journal
from ga_sync.clients import call, connect, Pacer, RetryPolicy
from ga_sync.errors import ApiError
from ga_sync.model import Spec, property_id
from ga_sync.sandbox.faults import QuotaLimits
from ga_sync.sandbox.server import SandboxServer
from ga_sync.sandbox.state import SandboxState
from ga_sync.spec import load_specs
from ga_sync.sync import apply_all, plan_all

SPEC = """\
client: Scale Client {n}
properties: [{properties}]
currency: {currency}
goals:
  - event: purchase
    tier: macro
    value: event
  - event: generate_lead
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
CHANGES_PER_PROPERTY = 4  # generate_lead updated, add_to_cart, file_download, sign_up created
COUNTING = {1: "once_per_event", 2: "once_per_session"}


def make_workload(tmp_path: Path, properties: int, per_spec: int = 5) -> tuple[list[Spec], SandboxState]:
    """Spec files for `properties` properties and a sandbox where each needs 3 creates + 1 update."""
    ids = [700_000_001 + i for i in range(properties)]
    spec_dir = tmp_path / "specs"
    spec_dir.mkdir()
    for n, start in enumerate(range(0, properties, per_spec)):
        chunk = ", ".join(map(str, ids[start:start + per_spec]))
        (spec_dir / f"client-{n}.yaml").write_text(
            SPEC.format(n=n, properties=chunk, currency="EUR" if n % 2 else "USD"))
    specs = load_specs([spec_dir])
    state = SandboxState()
    for spec in specs:
        for prop in spec.properties:
            record = state.add_property(property_id=property_id(prop), display_name=spec.client,
                                        currency_code=spec.currency)
            kid = state.new_key_event_id()
            record.key_events[kid] = KeyEvent(  # set up by hand, counted the wrong way
                name=f"{record.name}/keyEvents/{kid}", event_name="generate_lead",
                counting_method=KeyEvent.CountingMethod.ONCE_PER_EVENT, deletable=True, custom=True)
    return specs, state


def differences(state: SandboxState, specs: list[Spec]) -> tuple[list[str], int]:
    """(differences between the raw sandbox state and the specs, duplicate event names)."""
    diffs: list[str] = []
    duplicates = 0
    for spec in specs:
        want = {g.event: (g.counting, None if g.value is None else (float(g.value), spec.currency))
                for g in spec.goals}
        want.setdefault("purchase", ("once_per_event", None))
        for prop in spec.properties:
            kes = list(state.properties[property_id(prop)].key_events.values())
            names = Counter(ke.event_name for ke in kes)
            duplicates += sum(n - 1 for n in names.values())
            have = {}
            for ke in kes:
                pb = KeyEvent.pb(ke)
                value = ((ke.default_value.numeric_value, ke.default_value.currency_code)
                         if pb.HasField("default_value") else None)
                have[ke.event_name] = (COUNTING.get(int(pb.counting_method)), value)
            if have != want:
                diffs.append(f"{prop}: want {want}, have {have}")
    return diffs, duplicates


@pytest.fixture
def serve(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Start a sandbox with the given options and point ga-sync's environment at it."""
    servers: list[SandboxServer] = []

    def start(state: SandboxState, *, window: float | None = None, writes: int | None = None,
              **options: Any) -> SandboxServer:
        server = SandboxServer(state, **options).start()
        servers.append(server)
        monkeypatch.setenv("GA_SYNC_ADMIN_ENDPOINT", server.url)
        monkeypatch.setenv("GA_SYNC_DATA_ENDPOINT", server.url)
        monkeypatch.setenv("GA_SYNC_CREDENTIALS", "anonymous")
        if window is not None:
            monkeypatch.setenv("GA_SYNC_QUOTA_WINDOW", str(window))
        if writes is not None:
            monkeypatch.setenv("GA_SYNC_ADMIN_WRITES_PER_MINUTE", str(writes))
        return server

    yield start
    for server in servers:
        server.stop()


def write_arrivals(server: SandboxServer) -> list[float]:
    """Times at which writes reach the sandbox's quota check (every attempt)."""
    times: list[float] = []
    original = server._take_quota

    def take(r: Any, path: str, headers: Any) -> Any:
        if r.write:
            times.append(time.monotonic())
        return original(r, path, headers)

    server._take_quota = take  # type: ignore[method-assign]
    return times


def most_in_window(times: list[float], window: float) -> int:
    ordered, best, lo = sorted(times), 0, 0
    for hi, t in enumerate(ordered):
        while ordered[lo] <= t - window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


# --------------------------------------------------------------------------- faults


def test_fifty_properties_with_faults_end_exactly_as_specified(tmp_path: Path, serve: Any) -> None:
    specs, state = make_workload(tmp_path, 50)
    server = serve(state, latency_ms=2, fault_rate=0.1, seed=11,
                   quotas=QuotaLimits(window_s=1.0), window=1.0)
    conn = connect(write=True)
    plan, failures = plan_all(conn, specs)
    assert not failures
    assert plan.count("create") == 150 and plan.count("update") == 50
    results = apply_all(conn, plan, Journal(tmp_path / "journal.jsonl"))

    assert [f for r in results for f in r.failed] == []  # retries absorbed every fault
    stats = server.stats.snapshot()
    assert stats["faults"] >= 20 and stats["lost_responses"] >= 5  # the faults really happened
    assert conn.retry.retried >= stats["faults"] - stats["lost_responses"]
    assert sum(len(r.reconciled) for r in results) >= 1  # a lost create was found in place
    assert differences(state, specs) == ([], 0)
    again, failures = plan_all(conn, specs)
    assert not failures and not again.has_changes
    journal = [json.loads(line) for line in (tmp_path / "journal.jsonl").read_text().splitlines()]
    finished = Counter(line["outcome"] for line in journal if line["outcome"] != "started")
    assert finished["applied"] + finished["reconciled"] == 200 and finished["failed"] == 0


# --------------------------------------------------------------------------- interruption


class _InterruptingAdmin:
    """The real Admin client, except that the `after`-th create of `event` reaches GA and then
    raises KeyboardInterrupt before its answer is seen: the worst moment for a Ctrl-C."""

    def __init__(self, real: Any, event: str, after: int) -> None:
        self._real, self._event, self._left = real, event, after
        self.interrupted: tuple[str, str] | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def create_key_event(self, *, parent: str, key_event: Any, **kw: Any) -> Any:
        out = self._real.create_key_event(parent=parent, key_event=key_event, **kw)
        if key_event.event_name == self._event and self.interrupted is None:
            self._left -= 1
            if self._left == 0:
                self.interrupted = (parent, key_event.event_name)
                raise KeyboardInterrupt
        return out


def test_interrupted_apply_leaves_a_consistent_journal_and_a_rerun_finishes(
        tmp_path: Path, serve: Any) -> None:
    specs, state = make_workload(tmp_path, 20)
    serve(state, latency_ms=5, quotas=None)
    journal_path = tmp_path / "journal.jsonl"
    conn = connect(write=True)
    plan, _ = plan_all(conn, specs)
    fake = _InterruptingAdmin(conn.admin(), "add_to_cart", after=5)
    conn._admin = fake
    with pytest.raises(KeyboardInterrupt):
        apply_all(conn, plan, Journal(journal_path))
    assert fake.interrupted is not None

    lines = journal_path.read_text().splitlines()
    journal = [json.loads(line) for line in lines]  # every line is whole, valid JSON
    started = Counter((j["property"], j["event"]) for j in journal if j["outcome"] == "started")
    ended = Counter((j["property"], j["event"]) for j in journal if j["outcome"] != "started")
    assert all(n == 1 for n in started.values()) and all(n == 1 for n in ended.values())
    assert set(ended) <= set(started)
    assert set(started) == set(ended)  # every change started has a line saying how it ended
    cut = [(j["property"], j["event"]) for j in journal if j["outcome"] == "interrupted"]
    # the change cut short is marked interrupted; so are changes other workers had under way
    # when the run was cancelled (at most one per worker): a rerun re-plans them all from GA
    assert fake.interrupted in cut and len(cut) == len(set(cut)) <= 8
    diffs, _ = differences(state, specs)
    assert diffs, "the interruption should have left work undone"

    conn = connect(write=True)  # a fresh run, as after Ctrl-C
    plan, failures = plan_all(conn, specs)
    assert not failures
    assert all(not (p.property == fake.interrupted[0] and c.event == fake.interrupted[1])
               for p in plan.properties for c in p.changes)  # it reached GA: not planned again
    results = apply_all(conn, plan, Journal(journal_path))
    assert all(r.ok for r in results)
    assert differences(state, specs) == ([], 0)


# --------------------------------------------------------------------------- quotas


def test_pacer_keeps_writes_under_the_sandbox_quota(tmp_path: Path, serve: Any) -> None:
    per_window, window = 25, 3.0
    specs, state = make_workload(tmp_path, 16)  # 64 writes: three windows' worth
    server = serve(state, latency_ms=2, window=window, writes=per_window,
                   quotas=QuotaLimits(admin_writes_per_user=per_window, window_s=window))
    arrivals = write_arrivals(server)
    conn = connect(write=True)
    start = time.monotonic()
    plan, _ = plan_all(conn, specs)
    results = apply_all(conn, plan, Journal(tmp_path / "journal.jsonl"))
    elapsed = time.monotonic() - start

    writes = 16 * CHANGES_PER_PROPERTY
    assert all(r.ok for r in results)
    assert server.stats.writes == writes
    assert server.stats.rate_limited == 0 and conn.retry.rate_limited == 0
    # The sandbox counts fixed windows, as GA does (no 429 above); the pacer's sliding window
    # also holds at arrival, up to the network jitter its margin allows for.
    assert most_in_window(arrivals, window * 0.95) <= per_window
    assert elapsed >= (math.ceil(writes / per_window) - 1) * window  # it waited, windows apart
    assert conn.retry.pacer is not None and conn.retry.pacer.waited > 0
    assert differences(state, specs) == ([], 0)


def test_without_the_pacer_rate_limit_retries_back_off_and_converge(
        tmp_path: Path, serve: Any) -> None:
    specs, state = make_workload(tmp_path, 10)  # 40 writes against 15 per window
    server = serve(state, latency_ms=2, quotas=QuotaLimits(admin_writes_per_user=15, window_s=1.0))
    conn = connect(write=True)
    sleeps: list[float] = []
    conn.retry = RetryPolicy(pacer=None, rate_limit_floor=1.0,  # the window is 1 s here
                             sleep=lambda s: (sleeps.append(s), time.sleep(s)))
    plan, _ = plan_all(conn, specs)
    results = apply_all(conn, plan, Journal(tmp_path / "journal.jsonl"))

    assert all(r.ok for r in results)
    assert server.stats.rate_limited > 0 and conn.retry.rate_limited == server.stats.rate_limited
    assert sleeps and min(sleeps) >= 1.0  # no Retry-After from GA's Admin API: the floor holds
    assert differences(state, specs) == ([], 0)


def test_quota_waiting_does_not_use_up_the_retry_deadline() -> None:
    """A call that waits a whole window in the pacer still gets its retries within `deadline`."""
    from google.api_core import exceptions as gexc

    pacer = Pacer(requests_per_window=100, writes_per_window=1, window=0.6, margin=0)
    policy = RetryPolicy(initial=0.01, deadline=0.5, pacer=pacer)
    call(lambda: None, policy=policy, write=True)  # uses the window's only write
    answers = iter([gexc.ServiceUnavailable("flaky"), None])

    def flaky() -> str:
        exc = next(answers)
        if exc is not None:
            raise exc
        return "done"

    assert call(flaky, policy=policy, write=True) == "done"
    assert policy.retried == 1 and pacer.waited >= 1.0  # waited twice, retried within 0.5 s
    with pytest.raises(ApiError):  # the deadline still bounds the time lost to failures
        call(lambda: (_ for _ in ()).throw(gexc.ServiceUnavailable("down")),
             policy=RetryPolicy(initial=0.2, maximum=0.2, deadline=0.3, attempts=50))
