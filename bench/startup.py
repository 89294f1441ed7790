"""Benchmark: how long `ga-sync --help` and `ga-sync validate goal_specs/` take to start.

Runs each command N times in a fresh interpreter (`python -m ga_sync ...`, the same code path as
the `ga-sync` console script, which is also timed when it is installed) and prints the medians
and the overhead over `python -c pass`. Target: under 0.3 s on top of the interpreter's start.
It also runs both commands once more in-process and lists the heavy modules they imported
(Google clients, pandas, duckdb, matplotlib must not be among them), with the code that first
imported each heavy package found.

    python bench/startup.py [--runs 15]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_OVERHEAD = 0.3
HEAVY = ("google.analytics", "google.api_core", "google.auth", "grpc", "proto", "pandas", "numpy",
         "duckdb", "matplotlib", "rich", "pydantic")
MUST_NOT = ("google.analytics", "google.api_core", "pandas", "duckdb", "matplotlib")

# Runs the CLI in-process as `python -m ga_sync` would, with a meta-path hook that notes, for
# the first import of each heavy package, the ga_sync / typer frames that asked for it; then
# prints which heavy packages ended up in sys.modules.
PROBE = """
import json, runpy, sys, traceback
heavy = HEAVY
chains = {}
class Watch:
    def find_spec(self, name, path=None, target=None):
        top = next((h for h in heavy if name == h), None)
        if top and top not in chains:
            frames = [f for f in traceback.extract_stack()[:-1]
                      if "/ga_sync/" in f.filename or "/typer/" in f.filename]
            chains[top] = [f"{f.filename.rsplit('/', 2)[-2]}/{f.filename.rsplit('/', 1)[-1]}:"
                           f"{f.lineno} {f.name}" for f in frames[-6:]]
        return None
sys.meta_path.insert(0, Watch())
sys.argv = ["ga-sync", ARGS]
try:
    runpy.run_module("ga_sync", run_name="__main__", alter_sys=True)
except SystemExit:
    pass
found = sorted({h for h in heavy for m in list(sys.modules) if m == h or m.startswith(h + ".")})
print("@@" + json.dumps({"found": found, "chains": chains}), file=sys.__stderr__)
"""


def _time(cmd: list[str], runs: int, env: dict[str, str]) -> list[float]:
    """Wall times of `runs` runs of `cmd` (after one unmeasured warm-up run), in seconds."""
    out = []
    for i in range(runs + 1):
        t = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
        elapsed = time.perf_counter() - t
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr}")
        if i:
            out.append(elapsed)
    return out


def _probe(args: list[str], env: dict[str, str]) -> tuple[list[str], dict[str, list[str]]]:
    """(heavy packages imported by `ga-sync ARGS`, the code that first imported each)."""
    code = PROBE.replace("ARGS", repr(args)[1:-1] + ",").replace("HEAVY", repr(HEAVY))
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    line = next((x for x in proc.stderr.splitlines() if x.startswith("@@")), None)
    if line is None:
        raise SystemExit(f"import probe failed:\n{proc.stderr}")
    data = json.loads(line[2:])
    return data["found"], {k: v for k, v in data["chains"].items() if k in data["found"]}


def main(argv: list[str] | None = None) -> int:
    """Time the commands and check their imports; exit 0 whether or not the target is met."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args(argv)

    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": ""}
    env.pop("PYTHONDONTWRITEBYTECODE")
    py = sys.executable
    commands = {
        "python -c pass": [py, "-c", "pass"],
        "python -m ga_sync --help": [py, "-m", "ga_sync", "--help"],
        "python -m ga_sync validate goal_specs/": [py, "-m", "ga_sync", "validate", "goal_specs/"],
    }
    script = shutil.which("ga-sync", path=str(Path(py).parent))
    if script:
        commands["ga-sync --help (console script)"] = [script, "--help"]
        commands["ga-sync validate goal_specs/ (console script)"] = [script, "validate", "goal_specs/"]

    import platform
    print(f"startup: median of {args.runs} runs each (after one warm-up), {os.cpu_count()} cores, "
          f"Python {platform.python_version()}")
    medians: dict[str, float] = {}
    for label, cmd in commands.items():
        times = _time(cmd, args.runs, env)
        medians[label] = statistics.median(times)
        print(f"  {label:48s} median {medians[label] * 1000:7.1f} ms  "
              f"(min {min(times) * 1000:.1f}, max {max(times) * 1000:.1f})")
    base = medians["python -c pass"]
    ok = True
    for label in [k for k in medians if k != "python -c pass"]:
        overhead = medians[label] - base
        met = overhead < TARGET_OVERHEAD
        ok = ok and met
        print(f"  overhead of {label:44s} {overhead * 1000:7.1f} ms  (target < "
              f"{TARGET_OVERHEAD * 1000:.0f} ms: {'MET' if met else 'NOT MET'})")

    clean = True
    for probe_args in (["--help"], ["validate", "goal_specs/"]):
        found, chains = _probe(probe_args, env)
        bad = [m for m in MUST_NOT if m in found]
        print(f"  heavy imports on `ga-sync {' '.join(probe_args)}`: "
              f"{', '.join(found) if found else 'none'}; forbidden ({', '.join(MUST_NOT)}): "
              f"{', '.join(bad) if bad else 'none'}")
        for mod, chain in chains.items():
            print(f"    {mod} first imported from: {' -> '.join(chain) or '(outside ga_sync/typer)'}")
        clean = clean and not bad
    print(f"TARGET {'MET' if ok and clean else 'NOT MET'}: overhead under "
          f"{TARGET_OVERHEAD * 1000:.0f} ms {'MET' if ok else 'NOT MET'}; no Google client, pandas, "
          f"duckdb or matplotlib import {'MET' if clean else 'NOT MET'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
