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
    export: Optional[Path] = typer.Option(None, "--export", help="Write each property's event log as a GA4 BigQuery export (DIR/analytics_<id>/events_YYYYMMDD.parquet, today as events_intraday_*) and serve BigQuery from DIR."),
    export_days: int = typer.Option(90, "--export-days", min=1, help="With --export: days up to yesterday (property time zone) to write."),
    export_start: Optional[str] = typer.Option(None, "--export-start", help="With --export: first day (YYYY-MM-DD) instead of --export-days."),
    export_end: Optional[str] = typer.Option(None, "--export-end", help="With --export: last daily table (YYYY-MM-DD; default yesterday)."),
    intraday: bool = typer.Option(True, "--intraday/--no-intraday", help="With --export: also write today so far as events_intraday_YYYYMMDD."),
    export_only: bool = typer.Option(False, "--export-only", help="With --export: write the export and exit instead of serving."),
) -> None:
    """Run the local GA4 emulator (Admin API, Data API and BigQuery over the property's
    GA4 export) in the foreground until Ctrl-C.

    Point ga-sync at it with the variables it prints.

    \b
    Examples:
      ga-sync sandbox --port 8765 --seed goal_specs/
      ga-sync sandbox --seed goal_specs/ --export export/     # also write the GA4 export
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
    if export_only and export is None:
        raise GaSyncError("--export-only needs --export DIR")
    if export is not None:
        _write_export(st, export, export_days, export_start, export_end, intraday)
        if export_only:
            return
    from ga_sync.sandbox import bigquery
    bigquery.configure(st, folder=export)
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
    typer.echo(f"  export GA_SYNC_BIGQUERY_ENDPOINT={server.url}   # --source bigquery:ANY_PROJECT"
               + (f" (tables from {export})" if export is not None else ""))
    typer.echo("Press Ctrl-C to stop.")
    try:
        import threading
        threading.Event().wait()
    finally:  # Ctrl-C: the CLI reports the interrupt and exits 130
        server.stop()


def _day(text: Optional[str], option: str) -> Any:
    from datetime import date
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise GaSyncError(f"{option} {text!r} is not a date: write YYYY-MM-DD") from None


def _write_export(st: Any, folder: Path, days: int, start: Optional[str], end: Optional[str],
                  intraday: bool) -> None:
    """Write the sandbox's GA4 export under `folder`, one line of progress per property."""
    from ga_sync.sandbox.export import export_state

    first, last = _day(start, "--export-start"), _day(end, "--export-end")
    if first and last and first > last:
        raise GaSyncError(f"--export-start {first} is after --export-end {last}")
    if folder.exists() and not folder.is_dir():
        raise GaSyncError(f"--export {folder} is a file; give a folder")
    shown: dict[str, int] = {}

    def progress(pid: str, done: int, total: int) -> None:
        step = max(total // 4, 1)
        if done == total or done - shown.get(pid, 0) >= step:
            shown[pid] = done
            typer.echo(f"  analytics_{pid}: {done}/{total} tables", err=True)

    typer.echo(f"writing the GA4 export to {folder} ...", err=True)
    written = export_state(st, folder, first, last, days=days, intraday=intraday,
                           progress=progress)
    for w in written:
        span = f"{w.start}..{w.end}" if w.start else "no finished day"
        today = f" + intraday {w.intraday}" if w.intraday else ""
        typer.echo(f"exported properties/{w.property_id}: {span}{today}, {w.events:,} events "
                   f"-> {w.folder}")
    if not written:
        typer.echo("no property with traffic to export (seed one with --seed SPEC)")


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
