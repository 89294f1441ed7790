"""The local GA4 sandbox and the demo that runs the whole job against it."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from ga_sync.cli.base import (app, load)
from ga_sync.errors import GaSyncError


@app.command()
def sandbox(
    port: int = typer.Option(8765, "--port", "-p", min=0, max=65535, help="Port to listen on (0 picks a free one)."),
    state: Path = typer.Option(Path("sandbox-state.json"), "--state", help="JSON file the sandbox keeps its properties in."),
    seed: list[Path] = typer.Option([], "--seed", help="Create the properties named in this spec file or directory (with traffic) if missing. Repeatable."),
    scenario: Optional[str] = typer.Option(None, "--scenario", help="Also create a ready-made case: 'messy' (a misconfigured property that trips every audit check) or 'clean'."),
    spec_out: Optional[Path] = typer.Option(None, "--scenario-spec", help="Write the scenario's goal spec here (default: SCENARIO-scenario.yaml)."),
    latency: float = typer.Option(0.0, "--latency", min=0.0, help="Milliseconds added to every request."),
    fault_rate: float = typer.Option(0.0, "--fault-rate", min=0.0, max=1.0, help="Share of requests answered 503 or 429 (some after the change was made)."),
    fault_seed: Optional[int] = typer.Option(None, "--fault-seed", help="Seed for the faults, to reproduce a run."),
    quota_window: float = typer.Option(60.0, "--quota-window", min=0.1, help="Seconds in the Admin API's per-minute quota window (shorter for quick experiments)."),
) -> None:
    """Run the local GA4 emulator (Admin and Data API) in the foreground until Ctrl-C.

    Point ga-sync at it with the two variables it prints.

    \b
    Example:
      ga-sync sandbox --port 8765 --seed goal_specs/
    """
    from ga_sync.sandbox.seed import seed_properties
    from ga_sync.sandbox.server import SandboxServer

    st = _open_state(state)
    if seed:
        seed_properties(st, load(seed))
    if scenario:
        from ga_sync.sandbox.scenarios import SCENARIOS, scenario_spec_yaml, seed_scenario
        if scenario not in SCENARIOS:
            raise GaSyncError(f"unknown scenario {scenario!r}; choose from {', '.join(SCENARIOS)}")
        ids = seed_scenario(st, scenario)
        spec_out = spec_out or Path(f"{scenario}-scenario.yaml")
        spec_out.write_text(scenario_spec_yaml(scenario, ids), encoding="utf-8")
        typer.echo(f"scenario {scenario}: properties {', '.join(ids)}; spec written to {spec_out}")
    st.save()
    from ga_sync.sandbox.faults import QuotaLimits
    try:
        server = SandboxServer(st, port=port, latency_ms=latency, fault_rate=fault_rate,
                               seed=fault_seed, quotas=QuotaLimits(window_s=quota_window))
    except OSError as e:
        raise GaSyncError(f"cannot listen on port {port}: {e.strerror or e}. Is another sandbox "
                          "running there? Pick another --port, or --port 0 for a free one.") from None
    server.start()
    typer.echo(f"GA4 sandbox listening on {server.url} (state: {state})")
    typer.echo(f"  export GA_SYNC_ADMIN_ENDPOINT={server.url}")
    typer.echo(f"  export GA_SYNC_DATA_ENDPOINT={server.url}")
    typer.echo("Press Ctrl-C to stop.")
    try:
        import threading
        threading.Event().wait()
    finally:  # Ctrl-C: the CLI reports the interrupt and exits 130
        server.stop()


def _open_state(path: Path) -> Any:
    """The sandbox state at `path`, or a GaSyncError that says what is wrong with the file."""
    from ga_sync.sandbox.state import SandboxState
    try:
        return SandboxState(path)
    except IsADirectoryError:
        raise GaSyncError(f"--state {path} is a directory; give a file name, e.g. "
                          f"{path / 'sandbox-state.json'}") from None
    except (OSError, ValueError, KeyError, TypeError) as e:  # JSONDecodeError is a ValueError
        raise GaSyncError(f"cannot read sandbox state {path}: {e}. Delete or move the file to "
                          "start with a fresh sandbox.") from None


@app.command()
def demo(
    directory: Path = typer.Option(Path("ga-sync-demo"), "--dir", help="Where the demo writes its state, journal and report."),
    specs: Optional[Path] = typer.Option(None, "--specs", help="Spec directory (default: the bundled goal_specs/)."),
) -> None:
    """Run the whole job against the bundled sandbox: validate, plan, apply, plan again, dump,
    report last week (with the HTML report) and audit.

    Needs no GA account and no network.

    \b
    Example:
      ga-sync demo
    """
    from ga_sync.demo import run_demo
    run_demo(directory, specs, echo=typer.echo)
