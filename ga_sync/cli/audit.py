"""The audit command: misconfigured goals across client properties."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from ga_sync.cli.base import (PlanFormat, Progress, app, connect, exit_if_invalid, load,
                              property_hint)
from ga_sync.errors import GaSyncError


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
    concurrency: Optional[int] = typer.Option(None, "--concurrency", "-j", min=1, show_default=False, help="Properties audited at once (default: one per property, at most 10 at once, GA's concurrent Data API requests per property)."),
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
    from ga_sync import api
    from ga_sync.audit import exit_code
    from ga_sync.model import property_name
    from ga_sync.render.audit import audit_json, audit_markdown, audit_text

    if not paths and not property:
        raise GaSyncError("name spec files to audit, or a property with --property ID")
    names = []
    for p in property:
        try:
            names.append(property_name(p))
        except ValueError:
            raise GaSyncError(property_hint(p)) from None
    specs = load(paths) if paths else []
    conn = connect()
    total = sum(len(s.properties) for s in specs) + len(names)
    with Progress(total, "auditing") as bar:
        result = api.audit(conn, specs, days, properties=names, concurrency=concurrency,
                           on_progress=bar.advance)
    render = {PlanFormat.json: audit_json, PlanFormat.markdown: audit_markdown}.get(fmt, audit_text)
    typer.echo(render(result), nl=False)
    code = exit_code(result.findings, fail_on.value)
    if code:
        raise typer.Exit(code)
    exit_if_invalid(specs)
