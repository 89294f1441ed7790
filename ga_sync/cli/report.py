"""Report commands: report (Data API -> macro and micro numbers) and history (the local store)."""

from __future__ import annotations

from datetime import timedelta
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


def _iso_date(value: Optional[str], flag: str) -> Any:
    if value is None:
        return None
    from datetime import date
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise GaSyncError(f"{flag} {value!r} is not a date; write it as YYYY-MM-DD") from None


def _period_chooser(start: Any, end: Any, last_week: bool, last_days: Optional[int],
                    compare: bool = False) -> Any:
    """A function of the property's 'today' -> Period, after checking the flags make sense.

    Dates GA4 cannot have data for (before 2015-08-14, after today, or a previous period
    reaching before 2015-08-14) are refused here, before anything is pulled.
    """
    from datetime import date
    from ga_sync.report import (Period, check_dates, check_period, last_days as days_before,
                                last_week as week_before)
    chosen = sum([start is not None or end is not None, last_week, last_days is not None])
    if chosen > 1:
        raise GaSyncError("give one of --start/--end, --last-week or --last-days")
    if start is not None or end is not None:
        if start is None or end is None:
            raise GaSyncError("--start and --end go together")
        fixed: Period = check_dates(start, end, compare=compare)
        return lambda today: fixed
    if last_days is not None:
        n = last_days

        def choose(today: Any) -> Period:
            return days_before(today, n)
    else:
        choose = week_before
    check_period(choose(date.today()), compare=compare, today=date.today())
    return choose


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
    concurrency: int = typer.Option(4, "--concurrency", "-j", min=1, help="Properties pulled at once."),
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
    """
    from ga_sync.admin import read_key_events, read_property
    from ga_sync.report import check_period, parse_fx, report_property, today_in
    from ga_sync.sync import run_each, targets

    rates = parse_fx(fx)
    choose = _period_chooser(_iso_date(start, "--start"), _iso_date(end, "--end"), last_week,
                             last_days, compare is not None)
    if output is not None:
        check_output(output)
    elif fmt is ReportFormat.html:
        check_output(Path("ga-sync-report.html"))  # the default file goes to this folder
    specs = load(paths)
    conn = connect()
    items = targets(specs)

    def work(t: Any) -> Any:
        info = read_property(conn, t.property)
        today = today_in(info.time_zone)
        period = choose(today)
        if period.end > today:
            raise GaSyncError(f"the period {period} ends after today ({today} in the "
                              f"property's time zone, {info.time_zone}): GA has no data yet")
        check_period(period, compare=compare is not None, today=today)
        return report_property(conn, t.spec, t.property, period,
                               compare=compare is not None, today=today,
                               time_zone=info.time_zone,
                               key_events=read_key_events(conn, t.property), fx=rates)

    with Progress(len(items), "reporting") as bar:
        done = run_each(items, work, concurrency=concurrency, cancel=conn.retry.cancel,
                        on_done=lambda t, r, e: bar.advance(t.property, e is not None))
    results = [r for _, r, _ in done if r is not None]
    failures = [(t, e) for t, _, e in done if e is not None]
    if base.VERBOSE:
        for r in results:
            typer.echo(f"{r.property}: {_quota_line(r.quota)}", err=True)

    pulled = [(t, r) for t, r, _ in done if r is not None]
    keep = not no_store and bool(results)
    history = _History(store, pulled, fmt is ReportFormat.html)
    errors = [{"property": t.property, "client": t.spec.client, "message": str(e)}
              for t, e in failures]
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
        for t, e in failures:
            err(f"error: {t.property} ({t.spec.client}): {e}")
    if failures:
        raise typer.Exit(1)
    exit_if_invalid(specs)


class _History:
    """Saving a report's pulls in the history store: best-effort, a failure is a warning.

    The store is opened, written and closed at once, so the write lock is held only while
    saving (`ga-sync history` can read in between).
    """

    def __init__(self, store: Optional[Path], pulled: list, weekly: bool):
        self.store, self.pulled, self.want_weekly = store, pulled, weekly
        self.path: Optional[Path] = None  # set once saved
        self.failed = False
        self.weekly: dict = {}

    def save(self) -> None:
        from ga_sync.errors import StoreError
        from ga_sync.history import Store, default_store_path
        path = self.store or default_store_path()
        try:
            with Store(path, wait=5.0) as db:
                for t, r in self.pulled:
                    db.save(r, t.spec)
                if self.want_weekly:
                    for t, r in self.pulled:
                        w = db.weekly(t.spec, 12, today=r.period.end + timedelta(days=1))
                        self.weekly[t.property] = w[w["property"] == t.property] if "property" in w else w
        except StoreError as e:
            self.failed = True
            self.weekly = {}
            warn(f"{e} The report is complete; only this pull is not kept in the history.")
            return
        n = len(self.pulled)
        self.path = path
        typer.echo(f"stored {n} pull{'s' if n != 1 else ''} in {path}", err=True)


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
    from ga_sync.history import Store, default_store_path
    from ga_sync.render import report as rr
    specs = load(paths)
    path = store or default_store_path()
    if not path.exists():
        raise GaSyncError(f"no history store at {path}: run 'ga-sync report' first (it keeps "
                          "every pull there), or pass --store")
    # Read-only: no write lock taken, so a report may save meanwhile; DuckDB refuses to open
    # while a report holds the write lock, which lasts only while it saves: retry briefly.
    with Store(path, read_only=True, wait=10.0) as db:
        frames = [(s, db.weekly(s, weeks)) for s in specs]
    if fmt is HistoryFormat.json:
        from ga_sync.render.report import dumps
        typer.echo(dumps({"version": 1, "history": [
            {"client": s.client, "weeks": json_records(df)} for s, df in frames]}), nl=False)
    elif fmt is HistoryFormat.csv:
        import pandas as pd
        df = pd.concat([df.assign(client=s.client) for s, df in frames], ignore_index=True)
        df = df[["property", "client"] + [c for c in df.columns if c not in ("property", "client")]]
        typer.echo(df.to_csv(index=False, date_format="%Y-%m-%d"), nl=False)
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
