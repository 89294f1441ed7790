"""`ga-sync demo`: the whole job against the bundled sandbox, with no GA account and no network.

The CLI passes `echo`; this module writes nothing to the terminal by itself.
"""

from __future__ import annotations

import os
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
def env_vars(**values: str) -> Iterator[None]:
    """Set environment variables for the duration of the block, then restore them."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextmanager
def sandbox_env(state: Any, **server_options: Any) -> Iterator[Any]:
    """Run a sandbox server in this process and point ga-sync's endpoints at it."""
    from ga_sync.sandbox.server import SandboxServer

    server = SandboxServer(state, **server_options)
    server.start()
    try:
        with env_vars(GA_SYNC_ADMIN_ENDPOINT=server.url, GA_SYNC_DATA_ENDPOINT=server.url,
                      GA_SYNC_CREDENTIALS="anonymous"):
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
    from ga_sync import render
    from ga_sync.admin import Journal, read_key_events, read_property
    from ga_sync.clients import connect
    from ga_sync.sandbox.state import SandboxState
    from ga_sync.dump import dump_spec
    from ga_sync.spec import load_specs
    from ga_sync.sync import apply_all, plan_all

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
    specs = load_specs([specs_dir])
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
    with sandbox_env(state) as server:
        step(f"2. Start the GA4 sandbox at {server.url} with {len(state.properties)} fresh "
             "properties (the first one hand-configured with drift)")
        conn = connect()  # read-only, like every command but apply
        writer = connect(write=True)  # the edit scope, for apply only

        step("3. Plan: what would change in GA")
        the_plan, failures = plan_all(conn, specs)
        echo(render.plan_text(the_plan).rstrip())
        _fail_on(failures)

        step("4. Apply")
        results = apply_all(writer, the_plan, Journal(journal_file))
        applied = sum(len(r.applied) for r in results)
        failed = [(r.property, c.event, m) for r in results for c, m in r.failed]
        echo(f"Applied {applied} changes, {len(failed)} failed. Journal: {journal_file}")
        if failed:
            raise RuntimeError(f"demo apply failed: {failed}")

        step("5. Plan again: nothing left to do")
        again, failures = plan_all(conn, specs)
        _fail_on(failures)
        echo(render.plan_text(again).rstrip())
        if again.has_changes:
            raise RuntimeError("demo: the second plan still has changes")

        step("6. Dump a live property back to a spec (onboarding an existing client)")
        first = specs[0]
        info = read_property(conn, first.properties[0])
        dumped = directory / "dumped.yaml"
        dumped.write_text(dump_spec(client=first.client, properties=[first.properties[0]],
                                    currency=info.currency,
                                    goals=read_key_events(conn, first.properties[0])),
                          encoding="utf-8")
        check, failures = plan_all(conn, load_specs([dumped]))
        _fail_on(failures)
        echo(f"wrote {dumped}; planning it against the property: "
             + ("no changes" if not check.has_changes else "CHANGES (unexpected)"))

        step("7. Report last week: macro and micro conversions and their value")
        html = _report(conn, specs, directory, echo)

        step("8. Audit: the client specs, then an inherited, hand-configured property")
        _audit(conn, state, specs, directory, echo)

    step("Done")
    echo(f"Sandbox state: {state_file}")
    echo(f"Client report (opens offline): {html}")
    echo("Next: point ga-sync at your own property with GA_SYNC_CREDENTIALS, or run "
         "'ga-sync sandbox' and try plan/apply by hand.")


def _report(conn: Any, specs: list[Spec], directory: Path, echo: Echo) -> Path:
    """Pull last week against the week before, keep eight weeks of history, write the HTML."""
    from datetime import timedelta

    from ga_sync.admin import read_key_events, read_property
    from ga_sync.history import Store
    from ga_sync.render.html import report_html
    from ga_sync.render.report import report_table
    from ga_sync.report import Period, last_week, report_property, today_in
    from ga_sync.sync import Failure, run_each, targets

    week = timedelta(weeks=1)

    def work(t: Any) -> Any:
        info = read_property(conn, t.property)
        today = today_in(info.time_zone)
        return report_property(conn, t.spec, t.property, last_week(today), compare=True,
                               today=today, time_zone=info.time_zone,
                               key_events=read_key_events(conn, t.property))

    done = run_each(targets(specs), work)
    _fail_on([Failure(t.property, t.spec.client, str(e)) for t, _, e in done if e is not None])
    results = [r for _, r, _ in done if r is not None]
    weekly = {}
    with Store(directory / "history.duckdb") as db:
        for t, r, _ in done:
            db.save(r, t.spec)
            for back in range(2, 8):  # the earlier weeks a weekly cron job would have stored
                earlier = Period(r.period.start - back * week, r.period.end - back * week)
                db.save(report_property(conn, t.spec, t.property, earlier,
                                        today=r.period.end + week), t.spec)
            w = db.weekly(t.spec, 8, today=r.period.end + timedelta(days=1))
            weekly[t.property] = w[w["property"] == t.property]
    echo(report_table(results[:1]).rstrip())
    echo(f"(and {len(results) - 1} more properties in the HTML report)")
    html = directory / "report.html"
    html.write_text(report_html(results, weekly=weekly), encoding="utf-8")
    return html


def _audit(conn: Any, state: Any, specs: list[Spec], directory: Path, echo: Echo) -> None:
    """Audit the freshly synced clients (expect nothing serious), then the messy scenario."""
    from ga_sync.audit import audit_all
    from ga_sync.render.audit import audit_text
    from ga_sync.sandbox.scenarios import scenario_spec_yaml, seed_scenario
    from ga_sync.spec import load_specs

    clean = audit_all(conn, specs)
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
    echo(audit_text(audit_all(conn, load_specs([spec_file]))).rstrip())


def _fail_on(failures: list[Any]) -> None:
    if failures:
        raise RuntimeError("demo: " + "; ".join(f"{f.property}: {f.message}" for f in failures))
