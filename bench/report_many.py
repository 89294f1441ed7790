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

Target (what item 5 asks): the cache holds the properties x days a run asks, so the second run
generates no day again (counted). Printed too: how much faster the second run is, which was
the point when generating days was 75% of a run (before issue 10 extended the traffic model).

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
RUNS = int(os.environ.get("BENCH_RUNS", "3"))


def main() -> None:
    import ga_sync
    from ga_sync.sandbox import traffic
    from ga_sync.sandbox.seed import seed_properties
    from ga_sync.sandbox.state import SandboxState

    generated = [0]
    real_generate = traffic._generate_day

    def counting_generate(*args, **kwargs):  # type: ignore[no-untyped-def]
        generated[0] += 1
        return real_generate(*args, **kwargs)

    traffic._generate_day = counting_generate

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
        regenerated: dict[str, list[int]] = {"before": [], "now": []}
        with sandbox_env(state, quotas=None):
            conn = ga_sync.connect()
            for _ in range(RUNS):
                for name in ("before", "now"):
                    traffic._CACHE = Before() if name == "before" else traffic._DayCache()
                    times = []
                    for i in range(2):
                        generated[0] = 0
                        t0 = time.perf_counter()
                        run = ga_sync.report(conn, specs, last_days=DAYS, store=False)
                        times.append(time.perf_counter() - t0)
                        assert len(run.results) == PROPERTIES and not run.errors, run.errors
                    regenerated[name].append(generated[0])  # the second run's generations
                    cache = traffic._CACHE
                    figures[name].append((times[0], times[1]))
                    print(f"  {name}: first run {times[0]:.2f} s, second {times[1]:.2f} s "
                          f"({regenerated[name][-1]} days generated again); "
                          f"{len(cache.days)} days cached"
                          + (f" ({cache.bytes / 1e6:.0f} MB of {cache.max_bytes / 1e6:.0f} MB)"
                             if name == "now" else ""))
        traffic.set_day_cache()
    traffic._generate_day = real_generate
    med = {k: (statistics.median(a for a, _ in v), statistics.median(b for _, b in v))
           for k, v in figures.items()}
    for k, (a, b) in med.items():
        print(f"  {k}: medians first run {a:.2f} s, second run {b:.2f} s")
    ratio = med["before"][1] / med["now"][1]
    asked = PROPERTIES * DAYS
    again = max(regenerated["now"])
    print(f"  second run, before / now: {ratio:.1f}x faster; days generated again in the "
          f"second run: before {max(regenerated['before'])} of {asked}, now {again}")
    print(f"  target: the cache holds the {asked} property-days a run asks (0 generated again): "
          f"{verdict(again == 0)}")


if __name__ == "__main__":
    main()
