"""The `ga-sync` command line: parse arguments, call one library function, render, exit.

Only this module talks to the terminal. Exit codes: 0 success, 1 error (or refused, or a
property failed), 2 changes pending when `plan --detailed-exitcode` is given.
"""

from __future__ import annotations

import logging
import os
import sys
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import typer

from ga_sync import __version__
from ga_sync.errors import GaSyncError

if TYPE_CHECKING:
    from ga_sync.model import Spec

class _Group(typer.core.TyperGroup):
    """Turns every GaSyncError into its message on stderr and exit code 1; bugs keep tracebacks."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except GaSyncError as err:
            _err(f"Error: {err}")
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            _err("Interrupted: no further change was started. Run the same command again to "
                 "finish; the journal shows what was done.")
            raise typer.Exit(130) from None


app = typer.Typer(
    name="ga-sync",
    cls=_Group,
    help="Google Analytics 4 goals as code: sync key events from YAML goal specs, report macro "
         "and micro conversions with their economic value, and audit properties.\n\n"
         "Try it without a GA account: ga-sync demo",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

_VERBOSE = False

SPECS_ARG = typer.Argument(..., metavar="SPEC...", help="Goal spec files or directories of them.", show_default=False)


class PlanFormat(str, Enum):
    text = "text"
    json = "json"
    markdown = "markdown"


def _err(message: str) -> None:
    typer.secho(message, err=True, fg=typer.colors.RED if sys.stderr.isatty() else None)


def _warn(message: str) -> None:
    typer.secho(f"warning: {message}", err=True,
                fg=typer.colors.YELLOW if sys.stderr.isatty() else None)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ga-sync {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log API calls and retries."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Show the version and exit."),
) -> None:
    global _VERBOSE
    _VERBOSE = verbose
    # Only ga-sync's own loggers get chattier with -v: third-party debug logs may carry headers.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    logging.getLogger("ga_sync").setLevel(logging.INFO if verbose else logging.WARNING)


def _load(paths: list[Path]) -> list["Spec"]:
    from ga_sync.spec import load_specs
    specs = load_specs(paths)
    for s in specs:
        for w in s.warnings:
            typer.echo(w, err=True)
    return specs


def _connect(write: bool = False) -> Any:
    from ga_sync.clients import connect
    conn = connect(write=write)
    for w in conn.warnings:
        _warn(w)
    return conn


class _Progress:
    """Properties done / total with an ETA on a terminal; plain lines otherwise."""

    def __init__(self, total: int, label: str):
        self.total, self.label, self.done = total, label, 0
        self._bar: Any = None
        self._task: Any = None
        if total > 1 and sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                       TimeRemainingColumn)
            self._bar = Progress(TextColumn("{task.description}"), BarColumn(),
                                 MofNCompleteColumn(), TimeRemainingColumn(),
                                 console=Console(stderr=True), transient=True)
            self._task = self._bar.add_task(label, total=total)

    def __enter__(self) -> "_Progress":
        if self._bar:
            self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar:
            self._bar.stop()

    def advance(self, what: str, failed: bool = False) -> None:
        self.done += 1
        if self._bar:
            self._bar.advance(self._task)
        elif self.total > 1:
            typer.echo(f"[{self.done}/{self.total}] {self.label} {what}"
                       + (" FAILED" if failed else ""), err=True)


def _report_failures(failures: list[Any]) -> None:
    for f in failures:
        _err(f"error: {f.property} ({f.client}): {f.message}")


# --------------------------------------------------------------------------- validate


@app.command()
def validate(paths: list[Path] = SPECS_ARG) -> None:
    """Check goal specs without calling GA. Prints every problem with file:line:column.

    \b
    Example:
      ga-sync validate goal_specs/
    """
    from ga_sync.spec import validate_paths
    specs, problems = validate_paths(paths)
    for p in problems:
        typer.echo(str(p), err=p.severity == "error")
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        _err(f"{len(errors)} error{'s' if len(errors) != 1 else ''} found; nothing was sent to GA.")
        raise typer.Exit(1)
    goals = sum(len(s.goals) for s in specs)
    props = sum(len(s.properties) for s in specs)
    typer.echo(f"ok: {len(specs)} spec{'s' if len(specs) != 1 else ''}, {props} "
               f"propert{'ies' if props != 1 else 'y'}, {goals} goals")


# --------------------------------------------------------------------------- plan / apply


def _make_plan(specs: list["Spec"], prune: bool, concurrency: int, conn: Any) -> tuple[Any, list]:
    from ga_sync.sync import plan_all, targets
    total = len(targets(specs))
    with _Progress(total, "planning") as bar:
        return plan_all(conn, specs, prune=prune, concurrency=concurrency,
                        on_done=lambda t, r, e: bar.advance(t.property, e is not None))


@app.command()
def plan(
    paths: list[Path] = SPECS_ARG,
    prune: bool = typer.Option(False, "--prune", help="Also plan deleting key events the spec does not name."),
    fmt: PlanFormat = typer.Option(PlanFormat.text, "--format", "-f", help="Output format."),
    detailed_exitcode: bool = typer.Option(False, "--detailed-exitcode",
                                           help="Exit 2 when there are changes to apply."),
    concurrency: int = typer.Option(8, "--concurrency", "-j", min=1, help="Properties read at once."),
) -> None:
    """Show what apply would change in each property. Changes nothing.

    Exit codes: 0 no errors, 1 error, 2 changes pending (with --detailed-exitcode).

    \b
    Examples:
      ga-sync plan goal_specs/acme-outdoor.yaml
      ga-sync plan goal_specs/ --format markdown > plan.md
      ga-sync plan goal_specs/ --format json --detailed-exitcode
    """
    from ga_sync import render
    specs = _load(paths)
    conn = _connect()
    the_plan, failures = _make_plan(specs, prune, concurrency, conn)
    if fmt is PlanFormat.json:
        typer.echo(render.plan_json(the_plan, failures), nl=False)
    elif fmt is PlanFormat.markdown:
        typer.echo(render.plan_markdown(the_plan))
    else:
        typer.echo(render.plan_text(the_plan), nl=False)
    _report_failures(failures)
    if failures:
        raise typer.Exit(1)
    if detailed_exitcode and the_plan.has_changes:
        raise typer.Exit(2)


def _default_journal() -> Path:
    env = os.environ.get("GA_SYNC_JOURNAL")
    if env:
        return Path(env)
    from platformdirs import user_data_dir
    return Path(user_data_dir("ga-sync")) / "journal.jsonl"


@app.command()
def apply(
    paths: list[Path] = SPECS_ARG,
    prune: bool = typer.Option(False, "--prune", help="Delete key events the spec does not name (never GA's protected ones)."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Apply without asking."),
    force: bool = typer.Option(False, "--force", help="Apply even when more than 30% of a property's key events would change or go."),
    journal: Optional[Path] = typer.Option(None, "--journal", help="Journal file (JSON lines). Default: $GA_SYNC_JOURNAL or the user data directory."),
    concurrency: int = typer.Option(8, "--concurrency", "-j", min=1, help="Properties changed at once."),
) -> None:
    """Make each property match its spec: plan afresh, show the plan, ask, apply.

    Without a terminal, --yes is required. Running apply twice changes nothing the second time.
    Every change attempted is appended to the journal.

    \b
    Examples:
      ga-sync apply goal_specs/acme-outdoor.yaml
      ga-sync apply goal_specs/ --yes --journal /var/log/ga-sync.jsonl
    """
    from ga_sync import render
    from ga_sync.admin import Journal
    from ga_sync.plan import check_safety
    from ga_sync.sync import apply_all

    specs = _load(paths)
    conn = _connect(write=True)
    the_plan, failures = _make_plan(specs, prune, concurrency, conn)
    typer.echo(render.plan_text(the_plan), nl=False)
    _report_failures(failures)
    if not the_plan.has_changes:
        raise typer.Exit(1 if failures else 0)
    if not force:
        check_safety(the_plan)
    if not yes:
        if not sys.stdin.isatty():
            _err("refusing to apply: no terminal to confirm on. Pass --yes to apply without asking.")
            raise typer.Exit(1)
        if not typer.confirm("Apply these changes?", default=False):
            _err("Nothing applied.")
            raise typer.Exit(1)
    journal_path = journal or _default_journal()
    todo = [p for p in the_plan.properties if p.changes]
    with _Progress(len(todo), "applying") as bar:
        results = apply_all(conn, the_plan, Journal(journal_path), concurrency=concurrency,
                            on_done=lambda p, r, e: bar.advance(p.property, e is not None or (r is not None and not r.ok)))
    applied = sum(len(r.applied) for r in results)
    reconciled = sum(len(r.reconciled) for r in results)
    failed = sum(len(r.failed) for r in results)
    for r in results:
        for change, message in r.failed:
            _err(f"error: {r.property} ({r.client}): {change.action} {change.event}: {message}")
    line = f"Applied {applied} change{'s' if applied != 1 else ''}"
    if reconciled:
        line += f", {reconciled} already in place"
    line += f", {failed} failed. Journal: {journal_path}"
    typer.echo(line)
    if failed or failures:
        raise typer.Exit(1)


# --------------------------------------------------------------------------- report / history


class ReportFormat(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"
    html = "html"


class Compare(str, Enum):
    previous = "previous"


def _iso_date(value: Optional[str], flag: str) -> Any:
    if value is None:
        return None
    from datetime import date
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise GaSyncError(f"{flag} {value!r} is not a date; write it as YYYY-MM-DD") from None


def _period_chooser(start: Any, end: Any, last_week: bool, last_days: Optional[int]) -> Any:
    """A function of the property's 'today' -> Period, after checking the flags make sense."""
    from ga_sync.report import Period, check_dates, last_days as days_before, last_week as week_before
    chosen = sum([start is not None or end is not None, last_week, last_days is not None])
    if chosen > 1:
        raise GaSyncError("give one of --start/--end, --last-week or --last-days")
    if start is not None or end is not None:
        if start is None or end is None:
            raise GaSyncError("--start and --end go together")
        fixed: Period = check_dates(start, end)
        return lambda today: fixed
    if last_days is not None:
        return lambda today: days_before(today, last_days)
    return week_before


@app.command()
def report(
    paths: list[Path] = SPECS_ARG,
    start: Optional[str] = typer.Option(None, "--start", help="First day, YYYY-MM-DD (inclusive)."),
    end: Optional[str] = typer.Option(None, "--end", help="Last day, YYYY-MM-DD (inclusive)."),
    last_week: bool = typer.Option(False, "--last-week", help="The last complete ISO week, Monday to Sunday, in the property's time zone (the default)."),
    last_days: Optional[int] = typer.Option(None, "--last-days", min=1, max=3650, help="The last N complete days."),
    compare: Optional[Compare] = typer.Option(None, "--compare", help="'previous': also pull the period of equal length just before."),
    fmt: ReportFormat = typer.Option(ReportFormat.table, "--format", "-f", help="table, json, csv or html."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write here instead of standard output (html: default ga-sync-report-END.html)."),
    store: Optional[Path] = typer.Option(None, "--store", help="DuckDB history file (default: in the user data directory)."),
    no_store: bool = typer.Option(False, "--no-store", help="Do not keep this pull in the history store."),
    concurrency: int = typer.Option(4, "--concurrency", "-j", min=1, help="Properties pulled at once."),
) -> None:
    """Macro and micro conversions, rates and economic value, computed from raw GA4 event counts.

    Conversions follow each goal's counting method; value is conversions x the goal's value,
    or the event's own value for `value: event`. Every pull is kept as daily rows in the
    history store (replacing the same days, never duplicating) unless --no-store.

    \b
    Examples:
      ga-sync report goal_specs/ --last-week --compare previous
      ga-sync report goal_specs/acme-outdoor.yaml --start 2026-11-01 --end 2026-11-15 -f json
      ga-sync report goal_specs/ --format html -o weekly.html
    """
    from ga_sync.admin import read_property
    from ga_sync.report import report_property, today_in
    from ga_sync.sync import run_each, targets

    choose = _period_chooser(_iso_date(start, "--start"), _iso_date(end, "--end"), last_week,
                             last_days)
    specs = _load(paths)
    conn = _connect()
    items = targets(specs)

    def work(t: Any) -> Any:
        info = read_property(conn, t.property)
        today = today_in(info.time_zone)
        return report_property(conn, t.spec, t.property, choose(today),
                               compare=compare is not None, today=today,
                               time_zone=info.time_zone)

    with _Progress(len(items), "reporting") as bar:
        done = run_each(items, work, concurrency=concurrency, cancel=conn.retry.cancel,
                        on_done=lambda t, r, e: bar.advance(t.property, e is not None))
    results = [r for _, r, _ in done if r is not None]
    failures = [(t, e) for t, _, e in done if e is not None]
    if _VERBOSE:
        for r in results:
            typer.echo(f"{r.property}: {_quota_line(r.quota)}", err=True)

    weekly = {}
    if not no_store and results:
        from ga_sync.history import Store, default_store_path
        path = store or default_store_path()
        with Store(path) as db:
            for (t, r, _) in done:
                if r is not None:
                    db.save(r, t.spec)
            if fmt is ReportFormat.html:
                for t, r, _ in done:
                    if r is not None:
                        w = db.weekly(t.spec, 12, today=r.period.end + _one_day())
                        weekly[t.property] = w[w["property"] == t.property] if "property" in w else w
        typer.echo(f"stored {len(results)} pull{'s' if len(results) != 1 else ''} in {path}", err=True)

    errors = [{"property": t.property, "client": t.spec.client, "message": str(e)}
              for t, e in failures]
    text = _render_report(fmt, results, errors, weekly)
    if fmt is ReportFormat.html and output is None and results:
        output = Path(f"ga-sync-report-{results[0].period.end.isoformat()}.html")
    if output:
        output.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {output}", err=True)
    else:
        typer.echo(text, nl=False)
    for t, e in failures:
        _err(f"error: {t.property} ({t.spec.client}): {e}")
    if failures:
        raise typer.Exit(1)


def _one_day() -> Any:
    from datetime import timedelta
    return timedelta(days=1)


def _render_report(fmt: ReportFormat, results: list, errors: list, weekly: dict) -> str:
    from ga_sync.render import report as rr
    if fmt is ReportFormat.json:
        return rr.report_json(results, errors or None)
    if fmt is ReportFormat.csv:
        return rr.report_csv(results)
    if fmt is ReportFormat.html:
        from ga_sync.render.html import report_html
        return report_html(results, weekly=weekly or None)
    return rr.report_table(results)


def _quota_line(quota: Optional[dict]) -> str:
    if not quota:
        return "no quota information returned"
    parts = []
    for key in ("tokensPerHour", "tokensPerDay", "tokensPerProjectPerHour", "concurrentRequests"):
        q = quota.get(key)
        if q:
            parts.append(f"{key} {q.get('consumed', 0)} used, {q.get('remaining', '?')} left")
    return "quota: " + "; ".join(parts)


@app.command()
def history(
    paths: list[Path] = SPECS_ARG,
    weeks: int = typer.Option(8, "--weeks", "-w", min=1, max=520, help="How many weeks back."),
    store: Optional[Path] = typer.Option(None, "--store", help="DuckDB history file (default: in the user data directory)."),
    fmt: ReportFormat = typer.Option(ReportFormat.table, "--format", "-f", help="table, json or csv."),
) -> None:
    """Weekly macro and micro rates and value from the history store, without calling GA.

    Tiers and rate basis come from the current spec, so re-tiering a goal re-tiers history.

    \b
    Example:
      ga-sync history goal_specs/acme-outdoor.yaml --weeks 12
    """
    from ga_sync.history import Store, default_store_path
    from ga_sync.render import report as rr
    specs = _load(paths)
    path = store or default_store_path()
    if not path.exists():
        raise GaSyncError(f"no history store at {path}: run 'ga-sync report' first (it keeps "
                          "every pull there), or pass --store")
    with Store(path) as db:
        frames = [(s, db.weekly(s, weeks)) for s in specs]
    if fmt is ReportFormat.json:
        from ga_sync.render import to_json
        typer.echo(to_json({"version": 1, "history": [
            {"client": s.client, "weeks": json_records(df)} for s, df in frames]}), nl=False)
    elif fmt is ReportFormat.csv:
        import pandas as pd
        df = pd.concat([df.assign(client=s.client) for s, df in frames], ignore_index=True)
        typer.echo(df.to_csv(index=False), nl=False)
    elif fmt is ReportFormat.html:
        raise GaSyncError("history has no html format; use 'ga-sync report --format html'")
    else:
        typer.echo("\n".join(rr.history_table(df, s) for s, df in frames), nl=False)


def json_records(df: Any) -> list:
    import json as _json
    return _json.loads(df.to_json(orient="records", date_format="iso"))


# --------------------------------------------------------------------------- audit


class FailOn(str, Enum):
    error = "error"
    warning = "warning"
    never = "never"


@app.command()
def audit(
    paths: Optional[list[Path]] = typer.Argument(None, metavar="SPEC...", help="Goal spec files or directories of them.", show_default=False),
    property: list[str] = typer.Option([], "--property", "-p", help="Audit this property without a spec (only the checks that need none). Repeatable."),
    days: int = typer.Option(28, "--days", "-d", min=1, max=400, help="Complete days to look at, ending 3 days ago (GA is still processing the last 2)."),
    fmt: PlanFormat = typer.Option(PlanFormat.text, "--format", "-f", help="text, json or markdown."),
    fail_on: FailOn = typer.Option(FailOn.error, "--fail-on", help="Exit 1 when a finding of this severity or worse is present."),
    concurrency: int = typer.Option(4, "--concurrency", "-j", min=1, help="Properties audited at once."),
) -> None:
    """Find misconfigured goals: each property against its spec and its own recent data.

    Each finding has a check id, a severity (error, warning, info), the event it is about and a
    one-sentence fix. Exit 1 when a finding at or above --fail-on is present, else 0.

    \b
    Examples:
      ga-sync audit goal_specs/
      ga-sync audit --property 123456789 --format markdown
      ga-sync audit goal_specs/ --fail-on warning --format json
    """
    from ga_sync.audit import audit_all, exit_code
    from ga_sync.model import property_name
    from ga_sync.render.audit import audit_json, audit_markdown, audit_text

    if not paths and not property:
        raise GaSyncError("name spec files to audit, or a property with --property ID")
    names = []
    for p in property:
        try:
            names.append(property_name(p))
        except ValueError:
            raise GaSyncError(_property_hint(p)) from None
    specs = _load(paths) if paths else []
    conn = _connect()
    total = sum(len(s.properties) for s in specs) + len(names)
    with _Progress(total, "auditing") as bar:
        result = audit_all(conn, specs, properties=names, days=days, concurrency=concurrency,
                           on_done=lambda t, r, e: bar.advance(t.property, e is not None))
    render = {PlanFormat.json: audit_json, PlanFormat.markdown: audit_markdown}.get(fmt, audit_text)
    typer.echo(render(result), nl=False)
    code = exit_code(result.findings, fail_on.value)
    if code:
        raise typer.Exit(code)


# --------------------------------------------------------------------------- onboarding


@app.command()
def dump(
    property: str = typer.Argument(..., help="GA4 property id: 123456789 or properties/123456789."),
    client: Optional[str] = typer.Option(None, "--client", help="Client label for the spec (default: the property's display name)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write the spec here instead of standard output."),
) -> None:
    """Write a goal spec from a live property's key events, to bring a client under management.

    Review the tiers and values it guesses, then validate and plan: the plan shows no changes.

    \b
    Example:
      ga-sync dump 123456789 -o goal_specs/new-client.yaml
    """
    from ga_sync.admin import read_key_events, read_property
    from ga_sync.model import property_name
    from ga_sync.dump import dump_spec
    try:
        name = property_name(property)
    except ValueError:
        raise GaSyncError(_property_hint(property)) from None
    conn = _connect()
    info = read_property(conn, name)
    key_events = read_key_events(conn, name)
    text = dump_spec(client=client or info.display_name or name, properties=[name],
                     currency=info.currency, goals=key_events)
    if output:
        output.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {output} ({len(key_events)} key events from {name})", err=True)
    else:
        typer.echo(text, nl=False)


def _property_hint(value: str) -> str:
    if value.upper().startswith("G-"):
        return (f"{value} is a measurement id, not a property id. The numeric property id is in "
                "GA4 under Admin → Property settings → Property details.")
    return f"{value!r} is not a GA4 property id: use the numeric id, e.g. 123456789."


@app.command()
def properties(
    fmt: PlanFormat = typer.Option(PlanFormat.text, "--format", "-f", help="text, json or markdown."),
) -> None:
    """List the GA4 properties the credentials can see (all accounts, all pages).

    \b
    Example:
      ga-sync properties --format json
    """
    from ga_sync import render
    from ga_sync.admin import list_properties
    conn = _connect()
    rows = list_properties(conn)
    if fmt is PlanFormat.json:
        typer.echo(render.to_json({"version": 1, "properties": [
            {"property": r.property, "display_name": r.display_name, "account": r.account,
             "account_name": r.account_name, "property_type": r.property_type} for r in rows]}),
            nl=False)
        return
    if fmt is PlanFormat.markdown:
        typer.echo("| property | name | account |\n|---|---|---|")
        for r in rows:
            typer.echo(f"| `{r.property}` | {r.display_name} | {r.account_name} (`{r.account}`) |")
        return
    width = max((len(r.property) for r in rows), default=0)
    for r in rows:
        typer.echo(f"{r.property.ljust(width)}  {r.display_name}  [{r.account_name}]")
    typer.echo(f"{len(rows)} propert{'ies' if len(rows) != 1 else 'y'}", err=True)


# --------------------------------------------------------------------------- sandbox and demo


@app.command()
def sandbox(
    port: int = typer.Option(8765, "--port", "-p", help="Port to listen on (0 picks a free one)."),
    state: Path = typer.Option(Path("sandbox-state.json"), "--state", help="JSON file the sandbox keeps its properties in."),
    seed: list[Path] = typer.Option([], "--seed", help="Create the properties named in these specs (with traffic) if missing."),
    scenario: Optional[str] = typer.Option(None, "--scenario", help="Also create a ready-made case: 'messy' (a misconfigured property that trips every audit check) or 'clean'."),
    spec_out: Optional[Path] = typer.Option(None, "--scenario-spec", help="Write the scenario's goal spec here (default: SCENARIO-scenario.yaml)."),
    latency: float = typer.Option(0.0, "--latency", help="Milliseconds added to every request."),
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
    from ga_sync.demo import seed_properties
    from ga_sync.sandbox.server import SandboxServer
    from ga_sync.sandbox.state import SandboxState

    st = SandboxState(state)
    if seed:
        seed_properties(st, _load(seed))
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
    server = SandboxServer(st, port=port, latency_ms=latency, fault_rate=fault_rate,
                           seed=fault_seed, quotas=QuotaLimits(window_s=quota_window))
    server.start()
    typer.echo(f"GA4 sandbox listening on {server.url} (state: {state})")
    typer.echo(f"  export GA_SYNC_ADMIN_ENDPOINT={server.url}")
    typer.echo(f"  export GA_SYNC_DATA_ENDPOINT={server.url}")
    typer.echo("Press Ctrl-C to stop.")
    try:
        import threading
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


@app.command()
def demo(
    directory: Path = typer.Option(Path("ga-sync-demo"), "--dir", help="Where the demo writes its state, journal and report."),
    specs: Optional[Path] = typer.Option(None, "--specs", help="Spec directory (default: the bundled goal_specs/)."),
) -> None:
    """Run the whole job against the bundled sandbox: validate, plan, apply, plan again, dump.

    Needs no GA account and no network.

    \b
    Example:
      ga-sync demo
    """
    from ga_sync.demo import run_demo
    run_demo(directory, specs, echo=typer.echo)


def _interrupt_on_sigterm() -> None:
    """SIGTERM (kill, a stopped cron job or container) stops like Ctrl-C: nothing half-journaled."""
    import signal

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (embedded use): leave signals alone
        pass


def main() -> None:
    _interrupt_on_sigterm()
    try:
        app()
    except KeyboardInterrupt:  # outside a command (e.g. while loading)
        _err("Interrupted.")
        sys.exit(130)


if __name__ == "__main__":
    main()
