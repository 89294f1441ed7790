"""Benchmark: plan and apply specs over many sandbox properties, as `ga-sync apply --yes` does.

Two cases, each at the commands' default concurrency (`sync.default_concurrency`):

- quota-bound (issue 5): 200 properties x (3 creates + 1 update) at 50 ms latency. Prints the
  wall time, the API calls made and the ratio to the lower bound max(latency x calls /
  concurrency, writes / write quota); target at most 1.3x, with zero rate-limit answers from
  the sandbox (which enforces GA's Admin quotas). GA's quotas are per minute; to keep a run
  short, `--window` scales the minute on both sides (the sandbox's quota windows and the
  client's pacer, via GA_SYNC_QUOTA_WINDOW) while keeping GA's per-window numbers (180 writes
  per user). `--window 60` reproduces GA's real minute.
- latency-bound (issue 10): 40 properties x (2 creates + 1 update) at 100 ms, under GA's real
  minute (the quotas do not bind). Prints the ratio to the floor max(latency x requests /
  concurrency, the per-property chain of 1 read + 3 writes); target at most 1.3x.

    python bench/sync_many.py [--case all|quota|latency] [--properties 200] [--latency-ms 50]
                              [--window 6]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from common import (  # noqa: I001 - bench/ is on sys.path when run as a script
    CREATES_PER_PROPERTY,
    UPDATES_PER_PROPERTY,
    burst_floor,
    lower_bound,
    machine,
    run_apply,
    verdict,
    write_specs,
)

TARGET_RATIO = 1.3


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark once and print its figures; exit 0 whether or not the target is met."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--properties", type=int, default=200)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--window", type=float, default=6.0,
                        help="seconds standing in for GA's quota minute (60 = real GA)")
    parser.add_argument("--case", choices=["all", "quota", "latency", "chain"], default="all",
                        help="'chain' (not in 'all'): the cron chain with and without the ledger")
    args = parser.parse_args(argv)
    if args.case in ("all", "latency"):
        latency_bound()
    if args.case in ("all", "quota"):
        quota_bound(args)
    if args.case == "chain":
        for ledger in (True, False):
            cron_chain(ledger)
    return 0


CHAIN_PROPERTIES = 50
CHAIN_WINDOW = 10.0
CHAIN_REQUESTS, CHAIN_WRITES = 200, 120  # per window, scaled down from GA's 600 / 180


def cron_chain(ledger: bool) -> None:
    """Issue 10's cron chain: plan, apply --yes, report, audit over 50 properties, one process
    after another, against a sandbox enforcing the Admin quotas (scaled: 200 requests and 120
    writes per 10 s window on both sides, so the chain's commands share windows), with the shared quota ledger or without it."""
    import os
    import subprocess
    import sys
    import time

    from common import env_vars, sandbox_env, seed_state

    from ga_sync.sandbox.faults import QuotaLimits
    from ga_sync.spec import load_specs

    limits = QuotaLimits(window_s=CHAIN_WINDOW, admin_per_user=CHAIN_REQUESTS,
                         admin_writes_per_user=CHAIN_WRITES, admin_per_project=2 * CHAIN_REQUESTS,
                         admin_writes_per_project=2 * CHAIN_WRITES)
    with tempfile.TemporaryDirectory(prefix="ga-sync-bench-") as tmp:
        specs_dir = write_specs(Path(tmp) / "specs", CHAIN_PROPERTIES)
        state = seed_state(load_specs([specs_dir]))
        lines = []
        with sandbox_env(state, quotas=limits) as server, env_vars(
                GA_SYNC_QUOTA_WINDOW=str(CHAIN_WINDOW),
                GA_SYNC_ADMIN_REQUESTS_PER_MINUTE=str(CHAIN_REQUESTS),
                GA_SYNC_ADMIN_WRITES_PER_MINUTE=str(CHAIN_WRITES),
                GA_SYNC_QUOTA_LEDGER=str(Path(tmp) / "ledger.json") if ledger else "off",
                GA_SYNC_JOURNAL=str(Path(tmp) / "journal.jsonl"),
                GA_SYNC_STORE=str(Path(tmp) / "history.duckdb")):
            start = time.monotonic()
            for command in (["plan"], ["apply", "--yes"], ["report"], ["audit", "--fail-on", "never"]):
                before = server.stats.snapshot()["rate_limited"]
                t = time.monotonic()
                run = subprocess.run([sys.executable, "-m", "ga_sync", *command, str(specs_dir)],
                                     capture_output=True, text=True, env=dict(os.environ))
                lines.append(f"{command[0]} {time.monotonic() - t:.1f} s (exit {run.returncode}, "
                             f"{server.stats.snapshot()['rate_limited'] - before} rate-limited)")
            wall = time.monotonic() - start
            stats = server.stats.snapshot()
    print(f"cron chain, {'with' if ledger else 'WITHOUT'} the quota ledger: {CHAIN_PROPERTIES} "
          f"properties, {stats['admin_requests']} Admin requests, {stats['writes']} writes, "
          f"{wall:.1f} s; rate-limit answers: {stats['rate_limited']} ({'; '.join(lines)})")


LATENCY_PROPERTIES = 40
LATENCY_CREATES = 2
LATENCY_MS = 100.0


def latency_bound() -> None:
    """Issue 10's case: 40 properties x 3 writes at 100 ms, quotas not binding."""
    from ga_sync.sync import default_concurrency

    n = LATENCY_PROPERTIES
    concurrency = default_concurrency("apply", n)
    with tempfile.TemporaryDirectory(prefix="ga-sync-bench-") as tmp:
        specs_dir = write_specs(Path(tmp) / "specs", n, creates=LATENCY_CREATES)
        run = run_apply(specs_dir, window=60.0, latency_ms=LATENCY_MS,
                        journal=Path(tmp) / "journal.jsonl", max_rounds=1, server_process=True)
    writes = n * (LATENCY_CREATES + UPDATES_PER_PROPERTY)
    requests = n + writes
    latency = LATENCY_MS / 1000
    chain = latency * (1 + LATENCY_CREATES + UPDATES_PER_PROPERTY)
    floor = max(latency * requests / concurrency, chain)
    ratio = run.wall / floor
    ok = ratio <= TARGET_RATIO and run.rate_limited == 0 and not run.mismatches and not run.failed
    print(f"sync_many latency-bound: {n} properties x ({LATENCY_CREATES} creates + "
          f"{UPDATES_PER_PROPERTY} update), latency {LATENCY_MS:g} ms, concurrency {concurrency} "
          f"(default_concurrency)")
    print(f"machine: {machine()}")
    print(f"wall time:            {run.wall:8.2f} s  (plan reads until first write {run.first_write:.2f} s)")
    print(f"API calls made:       {run.requests:8d}     (minimum {requests}: {n} lists + {writes} writes)")
    print(f"floor:                {floor:8.2f} s  = max({latency:g} s x {requests} / {concurrency}, "
          f"chain {chain:.1f} s)")
    print(f"ratio to floor:       {ratio:8.3f}     (target <= {TARGET_RATIO}: {verdict(ratio <= TARGET_RATIO)})")
    print(f"ledger transactions:  {run.ledger_transactions:8d}     for {run.requests} calls")
    print(f"rate-limit answers:   {run.rate_limited:8d};  applied / failed: {run.applied} / {run.failed}; "
          f"final state = specs: {'yes' if not run.mismatches else 'NO'}")
    print(f"TARGET {verdict(ok)}: latency-bound ratio {ratio:.3f} <= {TARGET_RATIO}")
    print()


def quota_bound(args: argparse.Namespace) -> None:
    """Issue 5's case: 200 properties x 4 writes at 50 ms, bound by GA's write quota."""
    from ga_sync.clients import ADMIN_WRITES_PER_MINUTE
    from ga_sync.sync import default_concurrency

    DEFAULT_CONCURRENCY = default_concurrency("apply", args.properties)  # noqa: N806

    with tempfile.TemporaryDirectory(prefix="ga-sync-bench-") as tmp:
        specs_dir = write_specs(Path(tmp) / "specs", args.properties)
        run = run_apply(specs_dir, window=args.window, latency_ms=args.latency_ms,
                        journal=Path(tmp) / "journal.jsonl", max_rounds=1, server_process=True)

    n = args.properties
    writes = n * (CREATES_PER_PROPERTY + UPDATES_PER_PROPERTY)
    calls = n + writes  # one key event list per property to plan, then the writes
    latency = args.latency_ms / 1000
    bound = lower_bound(latency_s=latency, calls=calls, concurrency=DEFAULT_CONCURRENCY,
                        writes=writes, write_quota=ADMIN_WRITES_PER_MINUTE, window=args.window)
    floor = burst_floor(writes=writes, write_quota=ADMIN_WRITES_PER_MINUTE, window=args.window)
    ratio = run.wall / bound
    average = run.writes / run.wall * args.window
    ok = ratio <= TARGET_RATIO and run.rate_limited == 0 and not run.mismatches and not run.failed

    print(f"sync_many: {n} properties x ({CREATES_PER_PROPERTY} creates + {UPDATES_PER_PROPERTY} "
          f"update), latency {args.latency_ms:g} ms, concurrency {DEFAULT_CONCURRENCY} (default_concurrency)")
    print(f"machine: {machine()}")
    print(f"quota window: {args.window:g} s standing in for GA's minute "
          f"({ADMIN_WRITES_PER_MINUTE} writes per window per user; --window 60 = real GA)")
    print(f"wall time:            {run.wall:8.2f} s  (plan reads until first write {run.first_write:.2f} s)")
    print(f"API calls made:       {run.requests:8d}     (minimum {calls}: {n} lists + {writes} writes)")
    print(f"writes made:          {run.writes:8d}     (planned {run.planned_writes})")
    print(f"lower bound:          {bound:8.2f} s  = max({latency:g} s x {calls} / {DEFAULT_CONCURRENCY}, "
          f"{writes} / ({ADMIN_WRITES_PER_MINUTE} per {args.window:g} s))")
    print(f"ratio to bound:       {ratio:8.3f}     (target <= {TARGET_RATIO}: {verdict(ratio <= TARGET_RATIO)})")
    print(f"burst floor:          {floor:8.2f} s  (last window's worth may start after "
          f"ceil({writes}/{ADMIN_WRITES_PER_MINUTE}) - 1 windows); ratio {run.wall / floor if floor else float('nan'):.3f}")
    print(f"writes per window:    {average:8.1f}     on average over the run; at most "
          f"{run.max_writes_in_window} in any {args.window:g} s (quota {ADMIN_WRITES_PER_MINUTE})")
    print(f"pacer wait (summed):  {run.pacer_waited:8.2f} s  over all threads; quota ledger "
          f"file transactions: {run.ledger_transactions}")
    print(f"retries:              {run.retried:8d}     (after rate-limit answers: {run.client_rate_limited})")
    print(f"rate-limit answers:   {run.rate_limited:8d}     from the sandbox's quota enforcement "
          f"(target 0: {verdict(run.rate_limited == 0)})")
    print(f"applied / failed:     {run.applied:8d} / {run.failed}")
    print(f"final state = specs:  {'yes' if not run.mismatches else 'NO'}; duplicates {run.duplicates}")
    for m in run.mismatches[:10]:
        print(f"  mismatch: {m}")
    print(f"TARGET {verdict(ok)}: ratio {ratio:.3f} <= {TARGET_RATIO} with {run.rate_limited} "
          "rate-limit answers")


if __name__ == "__main__":
    raise SystemExit(main())
