"""Report commands: report (Data API -> macro and micro numbers) and history (the local store)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Any, Optional

import typer

from ga_sync.cli import base
from ga_sync.cli.base import (SPECS_ARG, Progress, app, check_output, connect, err,
                              exit_if_invalid, load, warn, write_output)
from ga_sync.errors import GaSyncError


class ReportFormat(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"
    html = "html"


class HistoryFormat(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"


class Compare(str, Enum):
    previous = "previous"


def _check_flags(start: Optional[str], end: Optional[str], last_week: bool,
                 last_days: Optional[int]) -> None:
    """The period flags make sense together (the dates themselves are the library's to check)."""
    chosen = sum([start is not None or end is not None, last_week, last_days is not None])
    if chosen > 1:
        raise GaSyncError("give one of --start/--end, --last-week or --last-days")
    if (start is None) != (end is None):
        raise GaSyncError("--start and --end go together")
    for flag, value in (("--start", start), ("--end", end)):
        if value is not None:
            # Python 3.11's fromisoformat also takes 20261101 and 2026-W45-1: only the form
            # --help names is accepted, so a date means one thing wherever it is written.
            import re
            from datetime import date
            try:
                if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
                    raise ValueError(value)
                date.fromisoformat(value)
            except ValueError:
                raise GaSyncError(f"{flag} {value!r} is not a date; write it as YYYY-MM-DD"
                                  ) from None


@app.command()
def report(
    paths: list[Path] = SPECS_ARG,
    start: Optional[str] = typer.Option(None, "--start", help="First day, YYYY-MM-DD (inclusive; 2015-08-14 or later: GA4 has no earlier data)."),
    end: Optional[str] = typer.Option(None, "--end", help="Last day, YYYY-MM-DD (inclusive; not after today)."),
    last_week: bool = typer.Option(False, "--last-week", help="The last complete ISO week, Monday to Sunday, in the property's time zone (the default)."),
    last_days: Optional[int] = typer.Option(None, "--last-days", min=1, max=3650, help="The last N complete days."),
    compare: Optional[Compare] = typer.Option(None, "--compare", help="'previous': also pull the period of equal length just before."),
    fmt: ReportFormat = typer.Option(ReportFormat.table, "--format", "-f", help="table, json, csv or html."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write here instead of standard output (html: default ga-sync-report-END.html). Checked before anything is pulled; written atomically."),
    store: Optional[Path] = typer.Option(None, "--store", help="DuckDB history file (default: in the user data directory)."),
    no_store: bool = typer.Option(False, "--no-store", help="Do not keep this pull in the history store."),
    fx: list[str] = typer.Option([], "--fx", metavar="FROM:TO=RATE", help="Exchange rate for event values GA reports in the property's currency when the spec's differs: --fx USD:EUR=0.92 means 1 USD = 0.92 EUR. Repeatable. Without one, such values stay in their own currency, out of every total."),
    concurrency: Optional[int] = typer.Option(None, "--concurrency", "-j", min=1, show_default=False, help="Properties pulled at once (default: one per property, at most 10 at once, GA's concurrent Data API requests per property)."),
    source: Optional[str] = typer.Option(None, "--source", metavar="SOURCE", help="Where the numbers come from: data-api (default), export:PATH (GA4 BigQuery export files under PATH/analytics_<property id>/, Parquet or JSON lines, counted exactly on DuckDB) or bigquery:PROJECT / bigquery:PROJECT.DATASET (the export dataset on BigQuery)."),
    max_gb: float = typer.Option(10.0, "--max-gb", min=0.001, help="With bigquery:, refuse a query that would scan more than this many GB (also its maximum bytes billed). The dry run's size and on-demand cost are printed first."),
    show_sql: bool = typer.Option(False, "--show-sql", help="With export: or bigquery:, print the exact BigQuery SQL of each property's query and run nothing."),
) -> None:
    """Macro and micro conversions, rates and economic value, computed from raw GA4 event counts.

    Conversions follow each goal's counting method; value is conversions x the goal's value,
    or the event's own value for `value: event`. Values are in the spec's currency; event
    values GA reports in another currency are converted with --fx or kept apart. Every pull
    is kept as daily rows in the history store (replacing the same days, never duplicating)
    unless --no-store; a store that cannot be written is a warning, not a failed report.

    \b
    Examples:
      ga-sync report goal_specs/ --last-week --compare previous
      ga-sync report goal_specs/acme-outdoor.yaml --start 2026-11-01 --end 2026-11-15 -f json
      ga-sync report goal_specs/ --format html -o weekly.html
      ga-sync report goal_specs/ --fx USD:EUR=0.92
      ga-sync report goal_specs/ --source export:/data/ga4-export --last-days 28
      ga-sync report goal_specs/acme-outdoor.yaml --source bigquery:acme-analytics --max-gb 2
      ga-sync report goal_specs/acme-outdoor.yaml --source bigquery:acme-analytics --show-sql
    """
    from ga_sync import api
    from ga_sync.report import parse_fx

    _check_flags(start, end, last_week, last_days)
    rates = parse_fx(fx)
    if output is not None:
        check_output(output)
    elif fmt is ReportFormat.html:
        check_output(Path("ga-sync-report.html"))  # the default file goes to this folder
    api.period_chooser(start, end, last_week=last_week, last_days=last_days,
                       compare=compare is not None)  # refuse impossible dates before loading
    chosen = api._source(source, max_gb)  # an unknown --source fails before anything is read
    if show_sql and not callable(getattr(chosen, "show_sql", None)):
        raise GaSyncError("--show-sql needs --source export:PATH or bigquery:PROJECT: the Data "
                          "API has no SQL")
    specs = load(paths)
    conn = connect()
    if show_sql:
        sql = api.report_sql(conn, specs, start, end, last_week=last_week, last_days=last_days,
                             compare=compare.value if compare else None, source=chosen)
        typer.echo("\n".join(f"-- {prop}\n{text.rstrip().rstrip(';')};\n"
                             for prop, text in sql.items()), nl=False)
        failed = getattr(sql, "errors", {}) or {}
        for prop, e in failed.items():
            err(f"error: {prop}: {e}")
        if failed:
            raise typer.Exit(1)
        exit_if_invalid(specs)
        return
    with Progress(sum(len(s.properties) for s in specs), "reporting") as bar:
        run = api.report(conn, specs, start, end, last_week=last_week, last_days=last_days,
                         compare=compare.value if compare else None, fx=rates, store=False,
                         concurrency=concurrency, on_progress=bar.advance, source=chosen)
    results = run.results
    for r in results:
        for w in r.warnings:
            if w.code == "scan":
                typer.echo(f"{r.property}: {w.message}", err=True)
    if base.VERBOSE:
        for r in results:
            typer.echo(f"{r.property}: {_quota_line(r.quota)}", err=True)

    if fmt is ReportFormat.html:
        _mark_goal_changes(conn, results)
    keep = not no_store and bool(results)
    history = _History(run, store, fmt is ReportFormat.html)
    errors = [e.to_json() for e in run.errors]
    try:
        # The HTML charts read the weeks from the store, so it is saved first; everything
        # else is written first and the store (best-effort) comes after.
        if keep and fmt is ReportFormat.html:
            history.save()
        text = _render_report(fmt, results, errors, history.weekly)
        if fmt is ReportFormat.html and output is None and results:
            output = Path(f"ga-sync-report-{results[0].period.end.isoformat()}.html")
        if output:
            try:
                write_output(output, text)
            except GaSyncError as e:
                if keep and history.path is None:
                    history.save()
                kept = (f"This pull is kept in the history store {history.path} ('ga-sync "
                        "history' reads it); run the report again to write the file."
                        if history.path else "Run the report again to write the file.")
                raise type(e)(f"{e} {kept}") from None
            typer.echo(f"wrote {output}", err=True)
        else:
            typer.echo(text, nl=False)
        if keep and history.path is None and not history.failed:
            history.save()
    finally:
        for e in run.errors:
            err(f"error: {e.property} ({e.client}): {e.message}")
    if run.errors:
        raise typer.Exit(1)
    exit_if_invalid(specs)


def _mark_goal_changes(conn: Any, results: list) -> None:
    """Goal changes for the HTML rate charts: GA's annotations, else the apply journal (then a
    warning says why)."""
    from ga_sync.report import goal_marks
    from ga_sync.settings import journal_path
    for r in results:
        r.marks, why = goal_marks(conn, r.property, journal=journal_path())
        if why:
            warn(f"{r.property}: GA's annotations could not be read ({why}); the charts mark "
                 "goal changes from the apply journal instead.")


class _History:
    """Saving a report's pulls in the history store: best-effort, a failure is a warning.

    The store is opened, written and closed at once, so the write lock is held only while
    saving (`ga-sync history` can read in between).
    """

    def __init__(self, run: Any, store: Optional[Path], weekly: bool):
        self.run, self.store, self.want_weekly = run, store, weekly
        self.path: Optional[Path] = None  # set once saved
        self.failed = False
        self.weekly: dict = {}

    def save(self) -> None:
        from ga_sync.errors import StoreError
        try:
            self.weekly = self.run.save(self.store, weeks=12 if self.want_weekly else 0)
        except StoreError as e:
            self.failed = True
            self.weekly = {}
            warn(f"{store_hint(e)} The report is complete; only this pull is not kept in the "
                 "history.")
            return
        n = len(self.run.results)
        self.path = self.run.stored
        typer.echo(f"stored {n} pull{'s' if n != 1 else ''} in {self.path}", err=True)


def store_hint(error: Exception) -> str:
    """A StoreError's message, plus the flag that names another store when it says to."""
    text = str(error)
    if any(w in text for w in ("another store", "the store's path", "a new file",
                               "a store at", "a store on")) and "--store" not in text:
        return f"{text} (--store PATH names the history store.)"
    return text


def _render_report(fmt: ReportFormat, results: list, errors: list, weekly: dict) -> str:
    from ga_sync.render import report as rr
    if fmt is ReportFormat.json:
        return rr.report_json(results, errors or None)
    if fmt is ReportFormat.csv:
        return rr.report_csv(results)
    if fmt is ReportFormat.html:
        from ga_sync.render.html import report_html
        return report_html(results, weekly=weekly or None, errors=errors or None)
    return rr.report_table(results, errors=errors or None)


def _quota_line(quota: Optional[dict]) -> str:
    if not quota:
        return "no quota information returned"
    parts = []
    scan = quota.get("bigquery")
    if scan:
        parts.append(f"BigQuery scanned {int(scan.get('totalBytesProcessed', 0)):,} bytes, about "
                     f"${float(scan.get('estimatedUsd', 0)):.4f} on demand")
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
    fmt: HistoryFormat = typer.Option(HistoryFormat.table, "--format", "-f", help="table, json or csv."),
) -> None:
    """Weekly macro and micro rates and value from the history store, without calling GA.

    Tiers and rate basis come from the current spec, so re-tiering a goal re-tiers history.

    \b
    Example:
      ga-sync history goal_specs/acme-outdoor.yaml --weeks 12
    """
    from ga_sync import api
    from ga_sync.errors import StoreError
    from ga_sync.render import report as rr
    specs = load(paths)
    try:
        weekly = api.history(specs, weeks, store)
    except StoreError as e:
        raise StoreError(store_hint(e)) from None
    frames = [(s, weekly[weekly["property"].isin(s.properties)]
               .drop(columns="client").reset_index(drop=True)) for s in specs]
    if fmt is HistoryFormat.json:
        from ga_sync.render.report import dumps
        typer.echo(dumps({"version": 1, "history": [
            {"client": s.client, "weeks": json_records(df)} for s, df in frames]}), nl=False)
    elif fmt is HistoryFormat.csv:
        typer.echo(weekly.to_csv(index=False, date_format="%Y-%m-%d"), nl=False)
    else:
        typer.echo("\n".join(rr.history_table(df, s) for s, df in frames), nl=False)
    exit_if_invalid(specs)


def json_records(df: Any) -> list:
    """Weekly rows as JSON objects: weeks as YYYY-MM-DD dates, missing numbers as null."""
    import json as _json
    rows = _json.loads(df.to_json(orient="records", date_format="iso"))
    for row in rows:
        if isinstance(row.get("week"), str):
            row["week"] = row["week"][:10]
    return rows
