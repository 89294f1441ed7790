"""Report commands: report (Data API -> macro and micro numbers) and history (the local store)."""

from __future__ import annotations

from datetime import timedelta
from enum import Enum
from pathlib import Path
from typing import Any, Optional

import typer

from ga_sync.cli import base
from ga_sync.cli.base import (SPECS_ARG, Progress, app, connect, err, load)
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
    from ga_sync.admin import read_key_events, read_property
    from ga_sync.report import report_property, today_in
    from ga_sync.sync import run_each, targets

    choose = _period_chooser(_iso_date(start, "--start"), _iso_date(end, "--end"), last_week,
                             last_days)
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
        return report_property(conn, t.spec, t.property, period,
                               compare=compare is not None, today=today,
                               time_zone=info.time_zone,
                               key_events=read_key_events(conn, t.property))

    with Progress(len(items), "reporting") as bar:
        done = run_each(items, work, concurrency=concurrency, cancel=conn.retry.cancel,
                        on_done=lambda t, r, e: bar.advance(t.property, e is not None))
    results = [r for _, r, _ in done if r is not None]
    failures = [(t, e) for t, _, e in done if e is not None]
    if base.VERBOSE:
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
                        w = db.weekly(t.spec, 12, today=r.period.end + timedelta(days=1))
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
        err(f"error: {t.property} ({t.spec.client}): {e}")
    if failures:
        raise typer.Exit(1)


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
    with Store(path) as db:
        frames = [(s, db.weekly(s, weeks)) for s in specs]
    if fmt is HistoryFormat.json:
        from ga_sync.render import to_json
        typer.echo(to_json({"version": 1, "history": [
            {"client": s.client, "weeks": json_records(df)} for s, df in frames]}), nl=False)
    elif fmt is HistoryFormat.csv:
        import pandas as pd
        df = pd.concat([df.assign(client=s.client) for s, df in frames], ignore_index=True)
        df = df[["property", "client"] + [c for c in df.columns if c not in ("property", "client")]]
        typer.echo(df.to_csv(index=False, date_format="%Y-%m-%d"), nl=False)
    else:
        typer.echo("\n".join(rr.history_table(df, s) for s, df in frames), nl=False)


def json_records(df: Any) -> list:
    """Weekly rows as JSON objects: weeks as YYYY-MM-DD dates, missing numbers as null."""
    import json as _json
    rows = _json.loads(df.to_json(orient="records", date_format="iso"))
    for row in rows:
        if isinstance(row.get("week"), str):
            row["week"] = row["week"][:10]
    return rows
