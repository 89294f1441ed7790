"""Benchmark: apply specs to 200 sandbox properties (3 creates + 1 update each) at 50 ms latency.

Prints the wall time, the API calls made and the ratio to issue 5's lower bound
max(latency x calls / concurrency, writes / write quota); the target is at most 1.3x, with zero
rate-limit answers from the sandbox (which enforces GA's Admin quotas).

GA's quotas are per minute; to keep a run short, `--window` scales the minute on both sides
(the sandbox's quota windows and the client's pacer, via GA_SYNC_QUOTA_WINDOW) while keeping
GA's per-window numbers (180 writes per user). `--window 60` reproduces GA's real minute.

    python bench/sync_many.py [--properties 200] [--latency-ms 50] [--window 6]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from common import (
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
    args = parser.parse_args(argv)

    from ga_sync.clients import ADMIN_WRITES_PER_MINUTE
    from ga_sync.sync import DEFAULT_CONCURRENCY

    with tempfile.TemporaryDirectory(prefix="ga-sync-bench-") as tmp:
        specs_dir = write_specs(Path(tmp) / "specs", args.properties)
        run = run_apply(specs_dir, window=args.window, latency_ms=args.latency_ms,
                        journal=Path(tmp) / "journal.jsonl", max_rounds=1)

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
          f"update), latency {args.latency_ms:g} ms, concurrency {DEFAULT_CONCURRENCY} (CLI default)")
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
    print(f"pacer wait (summed):  {run.pacer_waited:8.2f} s  over all threads")
    print(f"retries:              {run.retried:8d}     (after rate-limit answers: {run.client_rate_limited})")
    print(f"rate-limit answers:   {run.rate_limited:8d}     from the sandbox's quota enforcement "
          f"(target 0: {verdict(run.rate_limited == 0)})")
    print(f"applied / failed:     {run.applied:8d} / {run.failed}")
    print(f"final state = specs:  {'yes' if not run.mismatches else 'NO'}; duplicates {run.duplicates}")
    for m in run.mismatches[:10]:
        print(f"  mismatch: {m}")
    print(f"TARGET {verdict(ok)}: ratio {ratio:.3f} <= {TARGET_RATIO} with {run.rate_limited} "
          "rate-limit answers")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
