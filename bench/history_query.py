"""History in one query, and a store that stays compact across re-pulls (issue 10, item 4).

The workload: 50 client specs of 2 properties and 5 goals each, with 400 days of daily rows
saved through `Store.save` (what `ga-sync report` does), so ~100,000 event rows. Then:

1. `ga-sync history` over the 50 specs and 12 weeks, read the old way (one `weekly` call per
   spec) and with `weekly_many` (one query): medians of 5 runs each, the rows compared exactly.
2. 10 re-pulls of the last 90 days with new numbers (each: open, save every property, close,
   as a report run does), measuring the file after each: the store as it is now (no key
   index, a checkpoint when the writer closes) and as it was (PRIMARY KEY indexes, DuckDB's
   own checkpoint on close only).

Targets: one query at least 10x faster than one per spec, the same rows; across the re-pulls
the file no larger than 1.5x its first fill and not growing (the last 5 re-pulls no larger
than the first 5), and smaller than the store as it was.

    .venv/bin/python bench/history_query.py     # ~1 min
"""

from __future__ import annotations

import os
import random
import statistics
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, verdict  # noqa: E402

SPECS = 50
PROPERTIES_PER_SPEC = 2
DAYS = 400
REPULL_DAYS = 90
REPULLS = 10
WEEKS = 12
TODAY = date(2026, 12, 2)
EVENTS = (("purchase", "macro", None), ("generate_lead", "macro", 40.0),
          ("sign_up", "micro", 5.0), ("file_download", "micro", 1.0),
          ("newsletter", "micro", 1.5))


def make_specs() -> list:
    from ga_sync.model import Goal, Spec
    specs = []
    for n in range(SPECS):
        props = tuple(f"properties/{600_000_000 + n * PROPERTIES_PER_SPEC + j}"
                      for j in range(PROPERTIES_PER_SPEC))
        specs.append(Spec(client=f"Bench Client {n:03d}", properties=props,
                          currency="EUR" if n % 3 == 0 else "USD",
                          rate_basis="users" if n % 4 == 0 else "sessions",
                          goals=tuple(Goal(e, t, v) for e, t, v in EVENTS)))
    return specs


def pull(spec, prop: str, start: date, days: int, seed: int):
    """A ReportResult carrying `days` daily rows, as `report_property` returns it."""
    import pandas as pd

    from ga_sync.report import Period, ReportResult, TierResult
    rng = random.Random(seed)
    rows = []
    for i in range(days):
        day = start + timedelta(days=i)
        sessions = rng.randint(300, 3000)
        users = int(sessions * 0.8)
        for event, _, _ in EVENTS:
            if rng.random() < 0.9:
                conv = float(rng.randint(0, 80))
                rows.append((day, event, conv, round(conv * rng.uniform(1, 60), 2), sessions, users))
    daily = pd.DataFrame(rows, columns=["date", "event", "conversions", "value", "sessions",
                                        "users"])
    zero = TierResult(0.0, 0.0, 0.0, 0.0)
    return ReportResult(prop, spec.client, Period(start, start + timedelta(days=days - 1)),
                        spec.currency, spec.rate_basis, 0, 0, [], zero, zero, 0.0, 0.0,
                        daily=daily)


def fill(store_cls, path: Path, specs, *, start: date, days: int, seed: int) -> None:
    """One report run: open the store, save every property's pull, close."""
    with store_cls(path) as db:
        for spec in specs:
            for j, prop in enumerate(spec.properties):
                db.save(pull(spec, prop, start, days, seed * 1_000 + hash((spec.client, j)) % 997),
                        spec)


OLD_SCHEMA = """
CREATE TABLE meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL);
CREATE TABLE daily_events (property VARCHAR NOT NULL, date DATE NOT NULL, event VARCHAR NOT NULL,
    tier VARCHAR NOT NULL, conversions DOUBLE NOT NULL, value DOUBLE NOT NULL,
    sessions BIGINT NOT NULL, users BIGINT NOT NULL, currency VARCHAR NOT NULL,
    pulled_at TIMESTAMP NOT NULL, PRIMARY KEY (property, date, event));
CREATE TABLE daily_totals (property VARCHAR NOT NULL, date DATE NOT NULL,
    sessions BIGINT NOT NULL, users BIGINT NOT NULL, currency VARCHAR NOT NULL,
    pulled_at TIMESTAMP NOT NULL, PRIMARY KEY (property, date));
"""


def size_mb(path: Path) -> float:
    return os.path.getsize(path) / 1e6


def main() -> None:
    from ga_sync.history import Store

    class Before(Store):
        """The store before issue 10: key indexes kept, DuckDB's own checkpoint on close."""

        def _drop_key_indexes(self) -> None:
            pass

        def compact(self) -> None:
            pass

    print(f"history_query: {SPECS} specs x {PROPERTIES_PER_SPEC} properties, {DAYS} days, "
          f"{WEEKS} weeks; {machine()}; load {os.getloadavg()[0]:.2f}")
    specs = make_specs()
    first = TODAY - timedelta(days=DAYS + 2)
    with tempfile.TemporaryDirectory() as tmp:
        # ---- 1. one query vs one per spec
        path = Path(tmp) / "history.duckdb"
        t0 = time.perf_counter()
        fill(Store, path, specs, start=first, days=DAYS, seed=1)
        print(f"  filled in {time.perf_counter() - t0:.1f} s: {size_mb(path):.2f} MB")
        per_spec, one = [], []
        import pandas as pd
        with Store(path, read_only=True) as db:
            print(f"  rows: {db.counts()}")
            for _ in range(5):
                t0 = time.perf_counter()
                frames = [db.weekly(s, WEEKS, today=TODAY).assign(client=s.client) for s in specs]
                slow = pd.concat(frames, ignore_index=True)
                per_spec.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                fast = db.weekly_many(specs, WEEKS, today=TODAY)
                one.append(time.perf_counter() - t0)
        # DuckDB sums a big table's doubles in parallel, in no fixed order, so two runs of the
        # same query may differ in the last bits: the rows must match to 1e-12.
        slow = slow[list(fast.columns)]
        pd.testing.assert_frame_equal(slow, fast, check_exact=False, rtol=1e-12)
        floats = [c for c in fast.columns if fast[c].dtype == "float64"]
        exact = sum(int((slow[c].fillna(-1) == fast[c].fillna(-1)).sum()) for c in floats)
        same = True
        a, b = statistics.median(per_spec), statistics.median(one)
        print(f"  one query per spec: median {a * 1000:.1f} ms "
              f"({', '.join(f'{x * 1000:.1f}' for x in per_spec)})")
        print(f"  one query (weekly_many): median {b * 1000:.1f} ms "
              f"({', '.join(f'{x * 1000:.1f}' for x in one)}); {len(fast)} rows, the same as per "
              f"spec to 1e-12 ({exact} of {len(fast) * len(floats)} floats bit for bit)")
        print(f"  ratio {a / b:.1f}x; target >= 10x and identical rows: "
              f"{verdict(a / b >= 10 and same)}")

        # ---- 2. the file across re-pulls
        sizes: dict[str, list[float]] = {}
        import duckdb
        for name, cls in (("now", Store), ("before (key indexes)", Before)):
            path = Path(tmp) / f"{cls.__name__}.duckdb"
            if cls is Before:
                con = duckdb.connect(str(path))
                con.execute(OLD_SCHEMA)
                con.close()
            t0 = time.perf_counter()
            fill(cls, path, specs, start=first, days=DAYS, seed=1)
            took = time.perf_counter() - t0
            sizes[name] = [size_mb(path)]
            for k in range(REPULLS):
                fill(cls, path, specs, start=TODAY - timedelta(days=REPULL_DAYS + 2),
                     days=REPULL_DAYS, seed=k + 2)
                sizes[name].append(size_mb(path))
            s = sizes[name]
            print(f"  {name}: first fill {s[0]:.2f} MB in {took:.1f} s; after re-pulls "
                  f"{' '.join(f'{x:.2f}' for x in s[1:])} MB; min {min(s):.2f}, max {max(s):.2f}"
                  f" ({max(s) / s[0]:.2f}x the first fill)")
        s, old = sizes["now"], sizes["before (key indexes)"]
        half = 1 + REPULLS // 2
        steady = max(s[half:]) <= max(s[1:half])
        ok = max(s) <= 1.5 * s[0] and steady and max(s) < min(old)
        print(f"  file across {REPULLS} re-pulls: largest {max(s):.2f} MB = {max(s) / s[0]:.2f}x "
              f"the first fill, growing: {not steady}; before: largest {max(old):.2f} MB "
              f"({max(old) / max(s):.1f}x now, {max(old) / old[0]:.2f}x its first fill)")
        print(f"  target: <= 1.5x the first fill, not growing, smaller than before: "
              f"{verdict(ok)}")


if __name__ == "__main__":
    main()
