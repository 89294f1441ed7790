"""Benchmark: the sync_many workload with 10% of GA requests failing, against the same without.

The sandbox (seeded) answers 10% of requests with 503 UNAVAILABLE or 429 RESOURCE_EXHAUSTED,
and for writes half of those faults are lost responses (the change is made, the answer is a 503).
Prints whether the final state equals the specs exactly (it must), the duplicates found (must be
0), how many plan+apply rounds it took (a cron job would rerun; the aim is 1) and the slowdown
against a run without faults made in the same invocation.

    python bench/faults.py [--properties 200] [--latency-ms 50] [--window 6] [--fault-rate 0.1]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from common import RunFigures, machine, run_apply, verdict, write_specs


def _line(name: str, run: RunFigures) -> str:
    return (f"{name:10s} {run.wall:8.2f} s  requests {run.requests:5d}  writes {run.writes:4d}  "
            f"faults {run.faults:3d} (lost responses {run.lost_responses:3d})  retries "
            f"{run.retried:3d}  quota 429s {run.rate_limited}  reconciled {run.reconciled:3d}  "
            f"rounds {run.rounds}  failed {run.failed}")


def main(argv: list[str] | None = None) -> int:
    """Run without and with faults and print the comparison; exit 0 whether or not targets are met."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--properties", type=int, default=200)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--window", type=float, default=6.0,
                        help="seconds standing in for GA's quota minute (60 = real GA)")
    parser.add_argument("--fault-rate", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args(argv)

    from ga_sync.sync import DEFAULT_CONCURRENCY

    with tempfile.TemporaryDirectory(prefix="ga-sync-bench-") as tmp:
        specs_dir = write_specs(Path(tmp) / "specs", args.properties)
        clean = run_apply(specs_dir, window=args.window, latency_ms=args.latency_ms,
                          journal=Path(tmp) / "clean.jsonl")
        faulty = run_apply(specs_dir, window=args.window, latency_ms=args.latency_ms,
                           fault_rate=args.fault_rate, seed=args.seed,
                           journal=Path(tmp) / "faults.jsonl")

    exact = not faulty.mismatches and not clean.mismatches
    slowdown = faulty.wall / clean.wall
    print(f"faults: {args.properties} properties x (3 creates + 1 update), latency "
          f"{args.latency_ms:g} ms, concurrency {DEFAULT_CONCURRENCY} (CLI default), fault rate "
          f"{args.fault_rate:g} (seed {args.seed})")
    print(f"machine: {machine()}")
    print(f"quota window: {args.window:g} s standing in for GA's minute (--window 60 = real GA)")
    print(_line("no faults", clean))
    print(_line("faults", faulty))
    print(f"final state equals the specs exactly: {'yes' if exact else 'NO'} "
          f"({len(faulty.mismatches)} differences) -> {verdict(exact)}")
    for m in faulty.mismatches[:10]:
        print(f"  mismatch: {m}")
    print(f"duplicates found: {faulty.duplicates} -> {verdict(faulty.duplicates == 0)}")
    print(f"rounds of plan+apply: {faulty.rounds} (aim 1: {verdict(faulty.rounds == 1)})")
    print(f"slowdown with faults: {slowdown:.3f}x ({faulty.wall:.2f} s / {clean.wall:.2f} s); "
          f"extra write attempts {faulty.writes - clean.writes} against a quota of 180 per window")
    print(f"rate-limit answers from quota enforcement: {faulty.rate_limited} "
          f"(the injected 429s are faults, not quota)")
    ok = exact and faulty.duplicates == 0 and faulty.failed == 0
    print(f"TARGET {verdict(ok)}: exact final state and 0 duplicates under "
          f"{args.fault_rate:.0%} faults")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
