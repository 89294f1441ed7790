"""Plan and apply across many specs and properties, concurrently, one failure not stopping others."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from ga_sync.admin import ApplyResult, Journal, apply_plan, read_key_events, read_property
from ga_sync.clients import Connection
from ga_sync.errors import Cancelled, GaSyncError, JournalError
from ga_sync.garules import DATA_CONCURRENT_PER_PROPERTY
from ga_sync.model import (  # Failure: re-exported
    CREATE, DELETE, KEY_EVENT, UPDATE, Failure, Plan, PropertyPlan, Spec)
from ga_sync.plan import diff

if TYPE_CHECKING:
    from ga_sync.changelog import ChangeHistory

T = TypeVar("T")
R = TypeVar("R")

DEFAULT_CONCURRENCY = 8  # run_each's default when a caller gives none

#: Most workers for the Admin API commands (plan, apply): GA lets a minute's worth of a user's
#: quota (600 requests, 180 writes) go at once, and 32 workers send the 180 writes in under
#: 2 s at GA's typical ~0.3 s per write (180 x 0.3 / 32 = 1.7 s); more only wait in the pacer.
ADMIN_WORKERS_MAX = 32
#: Most workers for report and audit, which run Data API reports: GA's 10 concurrent requests
#: per property (even if every target named the same property), and their pages are parsed on
#: the CPU, where more threads only add memory.
DATA_WORKERS_MAX = DATA_CONCURRENT_PER_PROPERTY


def default_concurrency(command: str, n_properties: int) -> int:
    """Workers for `command` ("plan", "apply", "report", "audit") over `n_properties`.

    One worker per property up to the command's cap (see ADMIN_WORKERS_MAX, DATA_WORKERS_MAX);
    beyond it, the properties are spread evenly over as few rounds as the cap allows, so that no
    round runs half empty: 40 properties at a cap of 32 take 2 rounds of 20 workers, as fast as
    32 workers (2 rounds either way) with fewer connections. For apply, pass the number of
    properties with changes.
    """
    cap = DATA_WORKERS_MAX if command in ("report", "audit") else ADMIN_WORKERS_MAX
    n = max(1, n_properties)
    rounds = math.ceil(n / cap)
    return math.ceil(n / rounds)


@dataclass(frozen=True)
class Target:
    """One property of one spec: the unit of work for plan, apply, report and audit."""

    spec: Spec
    property: str


def targets(specs: Iterable[Spec]) -> list[Target]:
    return [Target(s, p) for s in specs for p in s.properties]


#: Seconds an interrupted run waits for the calls on the wire to come back (so their outcome
#: is journaled) before it returns anyway: a hung endpoint must not hold Ctrl-C hostage.
GRACE = 0.5


#: Called when a run is interrupted, before waiting for its workers: work that does not watch
#: `cancel` (a DuckDB query over export files) is told to stop, so no worker is left inside
#: native code when the process exits (DuckDB aborts the process if it is).
_CANCEL_HOOKS: list[Callable[[], None]] = []


def on_cancel(hook: Callable[[], None]) -> None:
    """Run `hook` whenever a `run_each` is interrupted (it must be quick and never raise)."""
    if hook not in _CANCEL_HOOKS:
        _CANCEL_HOOKS.append(hook)


def _run_cancel_hooks() -> None:
    for hook in list(_CANCEL_HOOKS):
        try:
            hook()
        except Exception:  # noqa: BLE001 - stopping must not fail the stop
            pass


def is_cancelled(error: BaseException | None) -> bool:
    """The item was not done because the run was interrupted: not a failure, not to be shown
    as one (a progress line, an error list) but as "not done"."""
    return isinstance(error, Cancelled)


def run_each(items: Sequence[T], work: Callable[[T], R], *, concurrency: int = DEFAULT_CONCURRENCY,
             on_done: Callable[[T, R | None, GaSyncError | None], None] | None = None,
             cancel: threading.Event | None = None, grace: float = GRACE,
             ) -> list[tuple[T, R | None, GaSyncError | None]]:
    """Run `work` on every item on up to `concurrency` worker threads, keeping input order.

    A GaSyncError of one item is captured and returned beside it (a `Cancelled` one means the
    item was not done, see `is_cancelled`); any other exception is a bug and propagates.
    `on_done` is called as each item finishes, except for cancelled items and once the run is
    interrupted (nothing is reported as done or FAILED after Ctrl-C).

    The workers are daemon threads and the calling thread only waits, so Ctrl-C (or SIGTERM
    raised as KeyboardInterrupt) is seen at once, whatever the network does: `cancel` is set so
    no further call is sent and no further item started, the calls on the wire get `grace`
    seconds to come back, and the interrupt is re-raised. A call still hung after that is
    abandoned with its thread; the process can exit without waiting for it.
    """
    cancel = cancel if cancel is not None else threading.Event()
    results: list[tuple[T, R | None, GaSyncError | None] | None] = [None] * len(items)
    lock = threading.Lock()
    pending = iter(range(len(items)))
    finished = threading.Event()
    bugs: list[BaseException] = []

    def one(item: T) -> tuple[T, R | None, GaSyncError | None]:
        try:
            out: tuple[T, R | None, GaSyncError | None] = (item, work(item), None)
        except GaSyncError as err:
            out = (item, None, err)
        if on_done and not cancel.is_set() and not is_cancelled(out[2]):
            on_done(*out)
        return out

    def worker() -> None:
        try:
            while True:
                with lock:
                    i = None if bugs or cancel.is_set() else next(pending, None)
                if i is None:
                    return
                results[i] = one(items[i])
        except BaseException as bug:  # noqa: BLE001 - handed to the waiting thread
            with lock:
                bugs.append(bug)
            finished.set()
        finally:
            with lock:
                live[0] -= 1
                if live[0] == 0:
                    finished.set()

    if not items:
        return []
    threads = [threading.Thread(target=worker, name=f"ga-sync-worker-{n}", daemon=True)
               for n in range(max(1, min(concurrency, len(items))))]
    live = [len(threads)]
    try:
        for t in threads:
            t.start()
        while not finished.wait(0.2):  # Ctrl-C lands here: seen within 0.2 s even when
            pass                       # the OS delivered the signal to a worker thread
        if bugs:
            raise bugs[0]
    except BaseException:
        cancel.set()
        _run_cancel_hooks()
        _join(threads, grace)
        raise
    # cancelled by someone else (not Ctrl-C here): the items never started were not done
    return [r if r is not None else (items[i], None, Cancelled("not done: interrupted"))
            for i, r in enumerate(results)]


def _join(threads: list[threading.Thread], seconds: float) -> None:
    """Wait at most `seconds` in all for `threads`; a second Ctrl-C cuts the wait short.

    The cancel hooks run again every tenth of a second meanwhile, so a worker that started a
    DuckDB query after the first round is stopped too."""
    deadline = time.monotonic() + seconds
    for t in threads:
        while t.is_alive() and time.monotonic() < deadline:
            t.join(min(0.1, max(0.0, deadline - time.monotonic())))
            if t.is_alive() and _CANCEL_HOOKS:
                _run_cancel_hooks()


def plan_target(conn: Connection, target: Target, *, prune: bool,
                history: "ChangeHistory | None" = None) -> PropertyPlan:
    """One property's plan. Rules and audiences are read only when the spec has a goal with
    an origin (`page:`/`from:`/`session:`), or when `prune` deletes a key event (its goal's
    rule or audience goes too): an older spec plans key events alone, with the same calls as
    before. With `history`, updates and deletes get who last changed them in GA, and creates
    of rules and audiences that re-make one deleted by hand get who deleted it."""
    from ga_sync.garules import KEY_EVENT_LIMITS
    existing = read_key_events(conn, target.property)
    level = target.spec.service_level
    origins = {g.event: g.origin for g in target.spec.goals}

    def planned(**machinery: object) -> PropertyPlan:
        return diff(target.property, target.spec.client, target.spec.desired(), existing,
                    prune=prune, key_event_limit=KEY_EVENT_LIMITS[level] if level else None,
                    **machinery)  # type: ignore[arg-type]

    plan = None
    if not any(o is not None for o in origins.values()):
        plan = planned()
        if not (prune and any(c.action == DELETE for c in plan.changes)):
            return _attributed(conn, target, plan, history)
    from ga_sync.machinery import read_machinery
    machinery = read_machinery(conn, target.property)
    plan = planned(origins=origins, streams=machinery.streams, rules=machinery.rules,
                   audiences=machinery.audiences)
    return _attributed(conn, target, plan, history)


def _attributed(conn: Connection, target: Target, plan: PropertyPlan,
                history: "ChangeHistory | None") -> PropertyPlan:
    """The plan with `last_change` where the change history knows (see
    `changelog.ChangeHistory.attribute`)."""
    touched = any(c.action in (UPDATE, DELETE) and c.name for c in plan.changes)
    remade = any(c.action == CREATE and c.resource != KEY_EVENT for c in plan.changes)
    if history is None or not (touched or remade):
        return plan
    try:
        account = read_property(conn, target.property).account
    except GaSyncError as err:
        if not touched:
            return plan
        from dataclasses import replace
        return replace(plan, warnings=plan.warnings + (
            f"who last changed the resources to update or delete is not known: the "
            f"property could not be read ({err}).",))
    return history.attribute(plan, account)


def plan_all(conn: Connection, specs: Sequence[Spec], *, prune: bool = False,
             concurrency: int = DEFAULT_CONCURRENCY,
             on_done: Callable[..., None] | None = None,
             history: "ChangeHistory | None" = None) -> tuple[Plan, list[Failure]]:
    """Plan every property; a property that failed is a Failure beside the plan. An interrupted
    run raises Cancelled: a plan missing the properties not read would read as complete. A
    property whose plan leaves goals out (`MachineryPlan.problems`) is in both: its plan, and
    a Failure naming those goals.
    The commands pass `default_concurrency("plan", properties)`. `history` (one per run)
    attributes drift: see `changelog.ChangeHistory`."""
    todo = targets(specs)
    conn.fit_pool(concurrency)
    results = run_each(todo, lambda t: plan_target(conn, t, prune=prune, history=history),
                       concurrency=concurrency, on_done=on_done, cancel=conn.retry.cancel)
    _raise_if_cancelled(results, "planned")
    plans = [r for _, r, e in results if r is not None]
    failures = []
    for t, r, e in results:
        if e is not None:
            failures.append(Failure(t.property, t.spec.client, str(e)))
        # goals a property could not plan (no web stream): its error, beside its plan
        failures += [Failure(t.property, t.spec.client, problem)
                     for problem in getattr(r, "problems", ())]
    return Plan(tuple(plans)), failures


def apply_all(conn: Connection, plan: Plan, journal: Journal, *,
              concurrency: int = DEFAULT_CONCURRENCY,
              on_done: Callable[..., None] | None = None) -> list[ApplyResult]:
    """Apply every property's changes; a property that failed has all its changes failed. An
    interrupted run raises Cancelled (the journal shows what was done): the changes not
    attempted are not failures. The commands pass `default_concurrency("apply", properties
    with changes)`."""
    todo = [p for p in plan.properties if p.changes]
    conn.fit_pool(concurrency)
    results = run_each(todo, lambda p: apply_plan(conn, p, journal), concurrency=concurrency,
                       on_done=on_done, cancel=conn.retry.cancel)
    stopped = next((e for _, _, e in results if isinstance(e, JournalError)), None)
    if stopped is not None:  # the journal failed: the run stopped on purpose, say why
        raise stopped
    _raise_if_cancelled(results, "applied")
    out = []
    for p, r, e in results:
        if r is None:
            r = ApplyResult(p.property, p.client, failed=[(c, str(e)) for c in p.changes])
        out.append(r)
    return out


def _raise_if_cancelled(results: Sequence[tuple[object, object, GaSyncError | None]],
                        done: str) -> None:
    cancelled = sum(1 for _, _, e in results if is_cancelled(e))
    if cancelled:
        raise Cancelled(f"interrupted: {cancelled} of {len(results)} "
                        f"propert{'ies' if len(results) != 1 else 'y'} not {done}")
