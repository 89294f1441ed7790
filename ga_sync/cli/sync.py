"""Sync commands: validate, plan, apply, and onboarding with dump and properties."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import typer

from ga_sync.cli.base import (SPECS_ARG, PlanFormat, Progress, app, check_output, connect, err,
                              exit_if_invalid, load, property_hint, report_failures, warn,
                              write_output)
from ga_sync.errors import GaSyncError

if TYPE_CHECKING:
    from ga_sync.model import Spec


@app.command()
def validate(paths: list[Path] = SPECS_ARG) -> None:
    """Check goal specs without calling GA. Prints every problem with file:line:column.

    \b
    Example:
      ga-sync validate goal_specs/
    """
    from ga_sync import api
    from ga_sync.settings import extends_path
    specs, problems = api.validate(paths, bases=extends_path())
    for p in problems:
        typer.echo(str(p), err=p.severity == "error")
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        err(f"{len(errors)} error{'s' if len(errors) != 1 else ''} found; nothing was sent to GA.")
        raise typer.Exit(1)
    goals = sum(len(s.goals) for s in specs)
    props = sum(len(s.properties) for s in specs)
    typer.echo(f"ok: {len(specs)} spec{'s' if len(specs) != 1 else ''}, {props} "
               f"propert{'ies' if props != 1 else 'y'}, {goals} goals")


# --------------------------------------------------------------------------- plan / apply


def _make_plan(specs: list["Spec"], prune: bool, concurrency: Optional[int], conn: Any,
               journal: Optional[Path] = None) -> tuple[Any, list]:
    from ga_sync import api
    with Progress(sum(len(s.properties) for s in specs), "planning") as bar:
        the_plan = api.plan(conn, specs, prune, concurrency=concurrency,
                            on_progress=bar.advance, journal=journal)
    return the_plan, list(the_plan.errors)


@app.command()
def plan(
    paths: list[Path] = SPECS_ARG,
    prune: bool = typer.Option(False, "--prune", help="Also plan deleting key events the spec does not name (with the rules and audiences that made their events), and rules or audiences that make a goal's event twice."),
    fmt: PlanFormat = typer.Option(PlanFormat.text, "--format", "-f", help="Output format."),
    detailed_exitcode: bool = typer.Option(False, "--detailed-exitcode",
                                           help="Exit 2 when there are changes to apply."),
    concurrency: Optional[int] = typer.Option(None, "--concurrency", "-j", min=1, show_default=False, help="Properties read at once (default: one per property, at most 32 at once)."),
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
    specs = load(paths)
    conn = connect()
    the_plan, failures = _make_plan(specs, prune, concurrency, conn)
    if fmt is PlanFormat.json:
        typer.echo(render.plan_json(the_plan, failures), nl=False)
    elif fmt is PlanFormat.markdown:
        typer.echo(render.plan_markdown(the_plan, failures))
    else:
        typer.echo(render.plan_text(the_plan, failures), nl=False)
    report_failures(failures)
    if failures:
        raise typer.Exit(1)
    exit_if_invalid(specs)
    if detailed_exitcode and the_plan.has_changes:
        raise typer.Exit(2)


@app.command()
def apply(
    paths: list[Path] = SPECS_ARG,
    prune: bool = typer.Option(False, "--prune", help="Delete key events the spec does not name (never GA's protected ones) with the rules and audiences that made their events, and rules or audiences that make a goal's event twice (audiences are archived)."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Apply without asking."),
    force: bool = typer.Option(False, "--force", help="Apply even when more than 30% of a property's key events would change or go."),
    journal: Optional[Path] = typer.Option(None, "--journal", help="Journal file (JSON lines). Default: $GA_SYNC_JOURNAL or the user data directory."),
    concurrency: Optional[int] = typer.Option(None, "--concurrency", "-j", min=1, show_default=False, help="Properties changed at once (default: one per property with changes, at most 32 at once)."),
    annotate: bool = typer.Option(False, "--annotate", help="Add a GA annotation dated today to each property changed ('ga-sync: 2 goals created, 1 changed')."),
) -> None:
    """Make each property match its spec: plan afresh, show the plan, ask, apply.

    Without a terminal, --yes is required. Running apply twice changes nothing the second time.
    Every change attempted is appended to the journal.

    \b
    Examples:
      ga-sync apply goal_specs/acme-outdoor.yaml
      ga-sync apply goal_specs/ --yes --journal /var/log/ga-sync.jsonl
      ga-sync apply goal_specs/ --yes --annotate
    """
    from ga_sync import api, render

    specs = load(paths)
    conn = connect(write=True)
    the_plan, failures = _make_plan(specs, prune, concurrency, conn, journal)
    typer.echo(render.plan_text(the_plan, failures), nl=False)
    report_failures(failures)
    if not the_plan.has_changes:
        if not failures:
            exit_if_invalid(specs)
        raise typer.Exit(1 if failures else 0)
    # the safety threshold and a writable journal are checked before the question
    journal_path = api.check_apply(the_plan, force, journal=journal)
    if not yes:
        if not _can_ask():
            err("refusing to apply: no terminal to confirm on. Pass --yes to apply without asking.")
            raise typer.Exit(1)
        _confirm("Apply these changes? [y/N]: ")
    with Progress(sum(1 for p in the_plan.properties if p.changes), "applying") as bar:
        result = api.apply(conn, the_plan, force=True, journal=journal_path,
                           concurrency=concurrency, on_progress=bar.advance,
                           annotate=annotate)
    results = result.properties
    applied, reconciled, failed = result.applied, result.reconciled, result.failed
    from ga_sync.render.plan import RESOURCE_LABELS
    for r in results:
        for change, message in r.failed:
            what = "" if change.resource == "key_event" else \
                f" {RESOURCE_LABELS[change.resource]}"
            err(f"error: {r.property} ({r.client}): {change.action}{what} {change.event}: "
                f"{message}")
    for w in result.warnings:
        warn(w)
    line = f"Applied {applied} change{'s' if applied != 1 else ''}"
    if reconciled:
        line += f", {reconciled} already in place"
    line += f", {failed} failed. Journal: {journal_path}"
    typer.echo(line)
    if failed or failures:
        raise typer.Exit(1)
    exit_if_invalid(specs)


def _can_ask() -> bool:
    """Whether there is a person to ask: standard input is a terminal."""
    return sys.stdin.isatty()


def _confirm(question: str) -> None:
    """Ask; return on yes. Exit 1 "Nothing applied." on no or end of input (nobody answered),
    130 "Interrupted: nothing applied." on Ctrl-C (click's confirm makes both an Abort)."""
    try:
        answer = input(question)
    except EOFError:
        typer.echo("", err=True)
        err("Nothing applied: no answer (end of input).")
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        typer.echo("", err=True)
        err("Interrupted: nothing applied.")
        raise typer.Exit(130) from None
    if answer.strip().lower() not in ("y", "yes"):
        err("Nothing applied.")
        raise typer.Exit(1)



# --------------------------------------------------------------------------- onboarding


@app.command()
def dump(
    property: str = typer.Argument(..., help="GA4 property id: 123456789 or properties/123456789."),
    client: Optional[str] = typer.Option(None, "--client", help="Client label for the spec (default: the property's display name)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write the spec here instead of standard output (never over an existing file without --force)."),
    force: bool = typer.Option(False, "--force", help="With -o: overwrite an existing file."),
) -> None:
    """Write a goal spec from a live property's key events, to bring a client under management.

    Review the tiers and values it guesses, then validate and plan: the plan shows no changes.
    Key events a spec cannot hold (names GA does not report, case duplicates, default values
    in a second currency) are left out with a note, and stay unmanaged.

    \b
    Example:
      ga-sync dump 123456789 -o goal_specs/new-client.yaml
    """
    from ga_sync import api
    from ga_sync.model import property_name
    try:
        property_name(property)
    except ValueError:
        raise GaSyncError(property_hint(property)) from None
    if output is not None:
        check_output(output, overwrite=force)
    conn = connect()
    dumped = api.dump(conn, property, client=client)
    for item in dumped.left_out:
        warn(f"left out: {item}")
    kept = dumped.key_events - len(dumped.left_out)
    if output:
        write_output(output, dumped.text)
        typer.echo(f"wrote {output} ({kept} of {dumped.key_events} key events from "
                   f"{property_name(property)})", err=True)
    else:
        typer.echo(dumped.text, nl=False)


@app.command()
def properties(
    fmt: PlanFormat = typer.Option(PlanFormat.text, "--format", "-f", help="text, json or markdown."),
) -> None:
    """List the GA4 properties the credentials can see (all accounts, all pages).

    \b
    Example:
      ga-sync properties --format json
    """
    from ga_sync import api, render
    conn = connect()
    rows = api.properties(conn)
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
