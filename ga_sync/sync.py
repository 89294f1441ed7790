"""Plan and apply across many specs and properties, concurrently, one failure not stopping others."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from ga_sync.admin import ApplyResult, Journal, apply_plan, read_key_events
from ga_sync.clients import Connection
from ga_sync.errors import GaSyncError
from ga_sync.model import Plan, PropertyPlan, Spec
from ga_sync.plan import diff

T = TypeVar("T")
R = TypeVar("R")

DEFAULT_CONCURRENCY = 8


@dataclass(frozen=True)
class Target:
    """One property of one spec: the unit of work for plan, apply, report and audit."""

    spec: Spec
    property: str


@dataclass(frozen=True)
class Failure:
    property: str
    client: str
    message: str


def targets(specs: Iterable[Spec]) -> list[Target]:
    return [Target(s, p) for s in specs for p in s.properties]


def run_each(items: Sequence[T], work: Callable[[T], R], *, concurrency: int = DEFAULT_CONCURRENCY,
             on_done: Callable[[T, R | None, GaSyncError | None], None] | None = None,
             cancel: threading.Event | None = None,
             ) -> list[tuple[T, R | None, GaSyncError | None]]:
    """Run `work` on every item on a thread pool, keeping input order in the result.

    A GaSyncError of one item is captured and returned beside it; any other exception is a
    bug and propagates. On Ctrl-C (or any exception in the waiting thread) `cancel` is set, so
    the workers send no further calls, items not started are dropped, and the interrupt is
    re-raised once the calls already on the wire have come back.
    """
    def one(item: T) -> tuple[T, R | None, GaSyncError | None]:
        try:
            out = (item, work(item), None)
        except GaSyncError as err:
            out = (item, None, err)
        if on_done:
            on_done(*out)
        return out

    if concurrency <= 1 or len(items) <= 1:
        return [one(i) for i in items]
    pool = ThreadPoolExecutor(max_workers=min(concurrency, len(items)))
    try:
        futures = [pool.submit(one, i) for i in items]
        return [f.result() for f in futures]
    except BaseException:
        if cancel is not None:
            cancel.set()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    finally:
        pool.shutdown(wait=True)


def plan_target(conn: Connection, target: Target, *, prune: bool) -> PropertyPlan:
    existing = read_key_events(conn, target.property)
    return diff(target.property, target.spec.client, target.spec.desired(), existing, prune=prune)


def plan_all(conn: Connection, specs: Sequence[Spec], *, prune: bool = False,
             concurrency: int = DEFAULT_CONCURRENCY,
             on_done: Callable[..., None] | None = None) -> tuple[Plan, list[Failure]]:
    results = run_each(targets(specs), lambda t: plan_target(conn, t, prune=prune),
                       concurrency=concurrency, on_done=on_done, cancel=conn.retry.cancel)
    plans = [r for _, r, e in results if r is not None]
    failures = [Failure(t.property, t.spec.client, str(e)) for t, _, e in results if e is not None]
    return Plan(tuple(plans)), failures


def apply_all(conn: Connection, plan: Plan, journal: Journal, *,
              concurrency: int = DEFAULT_CONCURRENCY,
              on_done: Callable[..., None] | None = None) -> list[ApplyResult]:
    todo = [p for p in plan.properties if p.changes]
    results = run_each(todo, lambda p: apply_plan(conn, p, journal), concurrency=concurrency,
                       on_done=on_done, cancel=conn.retry.cancel)
    out = []
    for p, r, e in results:
        if r is None:
            r = ApplyResult(p.property, p.client, failed=[(c, str(e)) for c in p.changes])
        out.append(r)
    return out
