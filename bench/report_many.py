"""90-day reports over 50 sandbox properties, with the sandbox's day cache as it was and as it
is (issue 10, item 5).

The workload: 50 properties with synthetic traffic (5 specs of 10, the goals of
bench/common.py), reported over the last 90 days through `ga_sync.report` (one
`batchRunReports` per property, the CLI's default concurrency), twice in a row as a cron chain
or report-then-audit does. The sandbox runs in this process, quotas off, store off. Each
configuration starts with an empty cache and is run 3 times (medians):

- before: at most 240 days cached (the old count-bounded cache), fewer than the 4,500
  property-days a run asks, so the second run generates every day again;
- now: days cached up to a memory budget (an eighth of RAM, 256 MiB to 4 GiB).

Target: the second run at least 2x faster with the cache sized by memory.

    .venv/bin/python bench/report_many.py     # ~3 min
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, sandbox_env, verdict, write_specs  # noqa: E402

PROPERTIES = 50
DAYS = 90
RUNS = 3


def main() -> None:
    import ga_sync
    from ga_sync.sandbox import traffic
    from ga_sync.sandbox.seed import seed_properties
    from ga_sync.sandbox.state import SandboxState

    class Before(traffic._DayCache):
        """The cache before issue 10: the 240 most recent days, whatever their size."""

        def day(self, key, profile, cat, day):  # type: ignore[no-untyped-def]
            k = (key, day.toordinal())
            with self.lock:
                if k in self.days:
                    self.days.move_to_end(k)
                    return self.days[k]
            data = traffic._generate_day(profile, cat, day)
            with self.lock:
                self.days[k] = data
                while len(self.days) > 240:
                    self.days.popitem(last=False)
            return data

    print(f"report_many: {PROPERTIES} properties x {DAYS} days, 2 runs in a row; {machine()}; "
          f"load {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        specs = ga_sync.load_specs([write_specs(Path(tmp) / "specs", PROPERTIES)])
        state = SandboxState()
        seed_properties(state, specs)
        figures: dict[str, list[tuple[float, float]]] = {"before": [], "now": []}
        with sandbox_env(state, quotas=None):
            conn = ga_sync.connect()
            for _ in range(RUNS):
                for name in ("before", "now"):
                    traffic._CACHE = Before() if name == "before" else traffic._DayCache()
                    times = []
                    for _ in range(2):
                        t0 = time.perf_counter()
                        run = ga_sync.report(conn, specs, last_days=DAYS, store=False)
                        times.append(time.perf_counter() - t0)
                        assert len(run.results) == PROPERTIES and not run.errors, run.errors
                    cache = traffic._CACHE
                    figures[name].append((times[0], times[1]))
                    print(f"  {name}: first run {times[0]:.2f} s, second {times[1]:.2f} s; "
                          f"{len(cache.days)} days cached"
                          + (f" ({cache.bytes / 1e6:.0f} MB of {cache.max_bytes / 1e6:.0f} MB)"
                             if name == "now" else ""))
        traffic.set_day_cache()
    med = {k: (statistics.median(a for a, _ in v), statistics.median(b for _, b in v))
           for k, v in figures.items()}
    for k, (a, b) in med.items():
        print(f"  {k}: medians first run {a:.2f} s, second run {b:.2f} s")
    ratio = med["before"][1] / med["now"][1]
    print(f"  second run, before / now: {ratio:.1f}x")
    print(f"  target: second run >= 2x faster with the cache sized by memory: "
          f"{verdict(ratio >= 2)}")


if __name__ == "__main__":
    main()
