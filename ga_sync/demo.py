"""`ga-sync demo`: the whole job against the bundled sandbox, with no GA account and no network.

The CLI passes `echo`; this module writes nothing to the terminal by itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from ga_sync.model import Spec, property_id
from ga_sync.sandbox.seed import seed_properties

Echo = Callable[[str], Any]


def bundled_specs_dir() -> Path:
    """goal_specs/ beside the package (a checkout or editable install), else ./goal_specs."""
    here = Path(__file__).resolve().parent.parent / "goal_specs"
    return here if here.is_dir() else Path("goal_specs")


@contextmanager
def sandbox_server(state: Any, **server_options: Any) -> Iterator[Any]:
    """Run a sandbox server in this process for the duration of the block."""
    from ga_sync.sandbox.server import SandboxServer

    server = SandboxServer(state, **server_options)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _add_drift(state: Any, spec: Spec) -> None:
    """Make the first property look hand-configured: one goal set up wrong, one stray test event."""
    from google.analytics.admin_v1beta.types import KeyEvent

    record = state.properties[property_id(spec.properties[0])]
    goal = next((g for g in spec.goals if g.event != "purchase"), None)
    extra = [("test_event_1", 1)]
    if goal is not None:
        wrong = 1 if goal.counting == "once_per_session" else 2
        extra.insert(0, (goal.event, wrong))
    for i, (event, counting) in enumerate(extra):
        kid = str(10_000_000_000 + 4242 + i)
        record.key_events[kid] = KeyEvent(
            name=f"properties/{record.id}/keyEvents/{kid}", event_name=event,
            counting_method=counting, deletable=True, custom=True)


def run_demo(directory: Path, specs_dir: Path | None, *, echo: Echo) -> None:
    import ga_sync
    from ga_sync import render
    from ga_sync.api import dump
    from ga_sync.sandbox.state import SandboxState

    specs_dir = specs_dir or bundled_specs_dir()
    directory.mkdir(parents=True, exist_ok=True)
    state_file = directory / "sandbox-state.json"
    journal_file = directory / "journal.jsonl"
    for f in (state_file, journal_file):
        f.unlink(missing_ok=True)

    def step(title: str) -> None:
        echo("")
        echo(f"== {title}")

    step(f"1. Validate the goal specs in {specs_dir}")
    specs = ga_sync.load_specs([specs_dir])
    goals = sum(len(s.goals) for s in specs)
    for s in specs:
        macro = sum(1 for g in s.goals if g.tier == "macro")
        echo(f"  {s.client}: {macro} macro + {len(s.goals) - macro} micro goals, "
             f"{', '.join(s.properties)}")
    echo(f"ok: {len(specs)} specs, {goals} goals")

    state = SandboxState(state_file)
    seed_properties(state, specs)
    _add_drift(state, specs[0])
    state.save()
    with sandbox_server(state) as server:
        step(f"2. Start the GA4 sandbox at {server.url} with {len(state.properties)} fresh "
             "properties (the first one hand-configured with drift)")
        conn = ga_sync.connect(admin_endpoint=server.url, data_endpoint=server.url,
                               credentials="anonymous", env={})

        step("3. Plan: what would change in GA")
        the_plan = ga_sync.plan(conn, specs)
        echo(render.plan_text(the_plan).rstrip())
        _fail_on(the_plan.errors)

        step("4. Apply")
        result = ga_sync.apply(conn, the_plan, journal=journal_file)  # the edit scope, by itself
        failed = [(r.property, c.event, m) for r in result.properties for c, m in r.failed]
        echo(f"Applied {result.applied} changes, {len(failed)} failed. Journal: {journal_file}")
        if failed:
            raise RuntimeError(f"demo apply failed: {failed}")

        step("5. Plan again: nothing left to do")
        again = ga_sync.plan(conn, specs)
        _fail_on(again.errors)
        echo(render.plan_text(again).rstrip())
        if again.has_changes:
            raise RuntimeError("demo: the second plan still has changes")

        step("6. Dump a live property back to a spec (onboarding an existing client)")
        first = specs[0]
        dumped = directory / "dumped.yaml"
        dumped.write_text(dump(conn, first.properties[0], client=first.client).text,
                          encoding="utf-8")
        check = ga_sync.plan(conn, ga_sync.load_specs([dumped]))
        _fail_on(check.errors)
        echo(f"wrote {dumped}; planning it against the property: "
             + ("no changes" if not check.has_changes else "CHANGES (unexpected)"))

        destination = _destination_goal(specs)
        if destination is not None:
            spec, goal = destination
            step(f"7. Drift: a colleague edits {spec.client}'s destination goal "
                 f"`{goal.event}` by hand in GA; plan says who and when")
            _hand_edit(conn, spec, goal, echo)
            drift = ga_sync.plan(conn, [spec])
            _fail_on(drift.errors)
            echo(render.plan_text(drift).rstrip())
            changed = [c for p in drift.properties for c in p.changes]
            if not changed or any(c.last_change is None or c.last_change.actor != _COLLEAGUE
                                  for c in changed):
                raise RuntimeError("demo: the hand-made drift was not attributed to "
                                   f"{_COLLEAGUE}")
            fixed = ga_sync.apply(conn, drift, journal=journal_file, annotate=True)
            echo(f"Applied {fixed.applied} change back to the spec, with a GA annotation on "
                 "today's date so the report's charts show it.")

        step("8. Report last week: macro and micro conversions and their value")
        html = _report(conn, specs, directory, echo, destination)

        step("9. The same report from the GA4 BigQuery export: files on DuckDB, and BigQuery")
        _three_sources(conn, state, server, specs, directory, echo)

        step("10. Audit: the client specs, then an inherited, hand-configured property")
        _audit(conn, state, specs, directory, echo)

    step("Done")
    echo(f"Sandbox state: {state_file}")
    echo(f"Client report (opens offline): {html}")
    echo("Next: point ga-sync at your own property with GA_SYNC_CREDENTIALS, or run "
         "'ga-sync sandbox' and try plan/apply by hand.")


#: Who edits the destination goal by hand in the demo (the sandbox records the caller it is told).
_COLLEAGUE = "dana@client.example"


def _destination_goal(specs: list[Spec]) -> tuple[Spec, Any] | None:
    """The first `page:` goal of the bundled specs (Northwind's quote thank-you page)."""
    for spec in specs:
        for goal in spec.goals:
            if goal.kind == "page":
                return spec, goal
    return None


def _hand_edit(conn: Any, spec: Spec, goal: Any, echo: Echo) -> None:
    """Narrow the goal's event create rule to another page, as a person in GA's interface would
    (the sandbox records the change under the `x-sandbox-actor` header's name)."""
    from google.protobuf.field_mask_pb2 import FieldMask

    from ga_sync.machinery import read_machinery

    client = conn.admin_alpha()
    machinery = read_machinery(conn, spec.properties[0])
    rule = next(r for r in machinery.rules if r.event == goal.event)
    raw = client.get_event_create_rule(name=rule.name)
    for condition in raw.event_conditions:
        if condition.field == "page_location":
            condition.value = "/quote/thanks"
    client.update_event_create_rule(
        event_create_rule=raw, update_mask=FieldMask(paths=["event_conditions"]),
        metadata=[("x-sandbox-actor", _COLLEAGUE)])
    echo(f"{_COLLEAGUE} changed the rule making `{goal.event}` to match `/quote/thanks`.")


def _report(conn: Any, specs: list[Spec], directory: Path, echo: Echo,
            destination: tuple[Spec, Any] | None = None) -> Path:
    """Pull last week against the week before, keep eight weeks of history, write the HTML."""
    from datetime import timedelta

    import ga_sync
    from ga_sync.render.html import report_html
    from ga_sync.render.report import report_table

    week = timedelta(weeks=1)
    store = directory / "history.duckdb"
    run = ga_sync.report(conn, specs, last_week=True, compare="previous", store=False)
    _fail_on(run.errors)
    # the earlier weeks a weekly cron job would have stored, per distinct period reported
    for period in sorted({r.period for r in run.results}, key=lambda p: p.start):
        same = [s for s in specs if any(r.period == period for r in run.results
                                         if r.property in s.properties)]
        for back in range(2, 8):
            earlier = ga_sync.report(conn, same, start=period.start - back * week,
                                     end=period.end - back * week, store=store)
            _fail_on(earlier.errors + [w for w in earlier.warnings])
    weekly = run.save(store, weeks=8)
    echo(report_table(run.results[:1]).rstrip())
    if destination is not None:
        spec, goal = destination
        shown = next((r for r in run.results if r.property in spec.properties), None)
        if shown is not None and shown is not run.results[0]:
            echo("")
            echo(f"{spec.client}'s destination goal `{goal.event}` is counted from page views "
                 "of its page, so the days before its rule existed count too:")
            echo(report_table([shown]).rstrip())
    echo(f"(and {len(run.results) - 1} more properties in the HTML report)")
    html = directory / "report.html"
    html.write_text(report_html(run.results, weekly=weekly), encoding="utf-8")
    return html


def _audit(conn: Any, state: Any, specs: list[Spec], directory: Path, echo: Echo) -> None:
    """Audit the freshly synced clients (expect nothing serious), then the messy scenario."""
    import ga_sync
    from ga_sync.render.audit import audit_text
    from ga_sync.sandbox.scenarios import scenario_spec_yaml, seed_scenario

    clean = ga_sync.audit(conn, specs)
    counts = {k: clean.count(k) for k in ("error", "warning")}
    echo(f"{len(specs)} client specs: " + ", ".join(
        f"{n} {k}{'s' if n != 1 else ''}" for k, n in counts.items()) + f", {clean.count('info')} info")
    for f in clean.findings:  # the stray test key event left by hand on the first property
        echo(f"  {f.severity}: [{f.check}] {f.subject or ''} in {f.property}")
    ids = seed_scenario(state, "messy")
    spec_file = directory / "messy-client.yaml"
    spec_file.write_text(scenario_spec_yaml("messy", ids), encoding="utf-8")
    echo(f"A new client's property, set up by hand years ago ({spec_file}):")
    echo("")
    echo(audit_text(ga_sync.audit(conn, ga_sync.load_specs([spec_file]))).rstrip())


def _three_sources(conn: Any, state: Any, server: Any, specs: list[Spec], directory: Path,
                   echo: Echo) -> None:
    """One client's last week through the Data API, the export's files (DuckDB) and BigQuery
    (the sandbox's): every goal the Data API counts exactly agrees; engagement goals differ,
    because only the export counts them per session."""
    from datetime import date, timedelta

    import ga_sync
    from ga_sync.export.engines import bigquery_client
    from ga_sync.export.source import BigQuerySource, ExportSource
    from ga_sync.sandbox.export import export_state

    spec = next((s for s in specs if any(g.kind == "session" for g in s.goals)), specs[0])
    today = date.today()
    end = today - timedelta(days=today.weekday() + 1)
    start = end - timedelta(days=6)
    folder = directory / "ga4-export"
    written = export_state(state, folder, start, end,
                           properties=[p.split("/")[1] for p in spec.properties],
                           intraday=False)
    echo(f"Exported {sum(len(w.files) for w in written)} daily tables of {spec.client} to "
         f"{folder} (GA4's export schema, Parquet).")
    client = bigquery_client("demo-project", env={"GA_SYNC_BIGQUERY_ENDPOINT": server.url})
    sources = {"Data API": None, "export files": ExportSource(folder),
               "BigQuery": BigQuerySource("demo-project", client=client)}
    runs = {}
    for label, source in sources.items():
        run = ga_sync.report(conn, [spec], start, end, source=source, store=False)
        _fail_on(run.errors)
        runs[label] = run.results[0]
    head = f"  {'':22}" + "".join(f"{label:>14}" for label in runs)
    echo(head)
    rows = [("sessions", lambda r: r.sessions), ("users", lambda r: r.users)]
    rows += [(g.event, (lambda e: lambda r: next(x.conversions for x in r.goals
                                                 if x.event == e))(g.event))
             for g in spec.goals]
    for name, get in rows:
        echo(f"  {name:22}" + "".join(f"{get(r):>14,.0f}" for r in runs.values()))
    exact = {g.event for g in spec.goals if g.kind in ("event", "page")} | {"sessions", "users"}
    for name, get in rows:
        values = {round(float(get(r)), 6) for r in runs.values()}
        if name in exact and len(values) != 1:
            raise RuntimeError(f"demo: the three sources disagree on {name}: {values}")
        if round(float(get(runs["export files"])), 6) != round(float(get(runs["BigQuery"])), 6):
            raise RuntimeError(f"demo: the export files and BigQuery disagree on {name}")
    session_goals = [g.event for g in spec.goals if g.kind == "session"]
    if session_goals:
        echo(f"Every row agrees but {', '.join(session_goals)}: on the Data API it is the event "
             "GA's audience trigger logs, only since the audience exists (applied today) and "
             "once per user joining; the export counts every qualifying session, exactly, "
             "over the whole week.")
    scan = next((w.message for w in runs["BigQuery"].warnings if w.code == "scan"), None)
    if scan:
        echo(scan)
    _journeys_from_export(conn, state, specs, folder, start, end, directory, echo)


def _journeys_from_export(conn: Any, state: Any, specs: list[Spec], folder: Path, start: Any,
                          end: Any, directory: Path, echo: Echo) -> None:
    """The journeys only raw events can tell (which micro conversions come before a sale), for
    the client with funnels, from its export: printed, and as a client-ready HTML report."""
    import ga_sync
    from ga_sync.journeys.render import table_lines
    from ga_sync.render.html import report_html
    from ga_sync.sandbox.export import export_state

    spec = next((s for s in specs if s.funnels), None)
    if spec is None:
        return
    export_state(state, folder, start, end, properties=[p.split("/")[1] for p in spec.properties],
                 intraday=False)
    run = ga_sync.report(conn, [spec], start, end, source=f"export:{folder}", store=False)
    _fail_on(run.errors)
    result = next(r for r in run.results if r.property == spec.properties[0])
    echo("")
    echo(f"{spec.client}'s journeys from its export ({spec.properties[0]}): which micro "
         "conversions come before a purchase, per visitor:")
    for line in table_lines(result):
        echo(line)
    html = directory / "journeys.html"
    html.write_text(report_html([result]), encoding="utf-8")
    echo(f"Client report with the funnel chart and the assist table: {html}")


def _fail_on(failures: Any) -> None:
    if failures:
        raise RuntimeError("demo: " + "; ".join(
            f"{f.property}: {f.message}" if hasattr(f, "property") else str(f) for f in failures))
