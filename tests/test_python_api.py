"""The public Python API: docs/python-api.md runs as written, and the library's numbers are the CLI's.

The doc's code blocks run in order, in one namespace, from the repository root, against a
sandbox seeded with goal_specs/ as the doc's `ga-sync sandbox --seed goal_specs/` is.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import ga_sync
from ga_sync.sandbox.seed import seed_properties
from ga_sync.sandbox.server import SandboxServer
from ga_sync.sandbox.state import SandboxState

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "python-api.md"


def _python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


@pytest.fixture
def seeded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """A sandbox seeded with goal_specs/, ga-sync pointed at it, store and journal in tmp."""
    state = SandboxState()
    seed_properties(state, ga_sync.load_specs(ROOT / "goal_specs"))
    server = SandboxServer(state).start()
    monkeypatch.setenv("GA_SYNC_ADMIN_ENDPOINT", server.url)
    monkeypatch.setenv("GA_SYNC_DATA_ENDPOINT", server.url)
    monkeypatch.setenv("GA_SYNC_CREDENTIALS", "anonymous")
    monkeypatch.setenv("GA_SYNC_STORE", str(tmp_path / "history.duckdb"))
    monkeypatch.setenv("GA_SYNC_JOURNAL", str(tmp_path / "journal.jsonl"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.chdir(ROOT)
    try:
        yield server
    finally:
        server.stop()


def test_the_public_names_are_exported() -> None:
    for name in ("load_specs", "validate", "connect", "plan", "apply", "report", "audit",
                 "history", "GaSyncError", "SpecError", "Spec", "Plan", "ApplyResult",
                 "ReportRun", "AuditResult"):
        assert name in ga_sync.__all__, name
        assert getattr(ga_sync, name) is not None


def test_python_api_doc_runs(seeded: SandboxServer) -> None:
    blocks = _python_blocks(DOC.read_text(encoding="utf-8"))
    assert len(blocks) >= 6
    namespace: dict = {"__name__": "python_api_doc"}
    for i, block in enumerate(blocks):
        try:
            exec(compile(block, f"{DOC.name}[block {i + 1}]", "exec"), namespace)
        except Exception as exc:  # pragma: no cover - the failure message is the point
            raise AssertionError(f"block {i + 1} of {DOC} failed: {exc!r}\n{block}") from exc
    # the doc's run really pulled and stored: its frames hold the numbers the JSON holds
    run = namespace["run"]
    assert run.results and not run.errors
    weekly = namespace["weekly"]
    assert set(weekly["client"]) == {s.client for s in namespace["specs"]}


def test_library_numbers_equal_the_cli_json(seeded: SandboxServer, tmp_path: Path) -> None:
    """A notebook's DataFrame and `ga-sync report --format json` agree number for number."""
    from typer.testing import CliRunner

    from ga_sync.cli import app

    specs = ga_sync.load_specs(ROOT / "goal_specs")
    conn = ga_sync.connect()
    result = ga_sync.apply(conn, ga_sync.plan(conn, specs), journal=tmp_path / "j.jsonl")
    assert result.ok and result.applied > 0

    run = ga_sync.report(conn, specs, start="2026-10-01", end="2026-10-28",
                         compare="previous", store=tmp_path / "lib.duckdb")
    cli = CliRunner().invoke(app, ["report", "goal_specs/", "--start", "2026-10-01",
                                   "--end", "2026-10-28", "--compare", "previous",
                                   "--format", "json", "--store", str(tmp_path / "cli.duckdb")])
    assert cli.exit_code == 0, cli.output
    printed = json.loads(cli.stdout)
    assert run.to_json() == printed

    frame = run.to_frame()
    rows = {(r["property"], g["event"]): (r, g) for r in printed["reports"] for g in r["goals"]}
    assert len(frame) == len(rows)
    for row in frame.itertuples():
        r, g = rows[(row.property, row.event)]
        assert row.conversions == g["conversions"]
        assert row.rate == pytest.approx(g["rate"], rel=1e-12)
        assert row.value == pytest.approx(g["value"], rel=1e-12)
        assert row.tier == g["tier"] and row.client == r["client"]
        assert row.start.isoformat() == r["start"] and row.end.isoformat() == r["end"]

    # the daily rows add up to the period's numbers, goal by goal
    daily = run.daily_frame()
    current = daily[(daily["date"] >= frame["start"].min()) & (daily["date"] <= frame["end"].max())]
    sums = current.groupby(["property", "event"])["conversions"].sum()
    for (prop, event), (r, g) in rows.items():
        goal = next(x for x in specs for p in x.properties if p == prop).goal(event)
        if goal.counting == "once_per_event":  # sessions with an event do not add across days
            assert sums.get((prop, event), 0.0) == pytest.approx(g["conversions"])

    # audit and history: library frames equal the CLI's JSON
    audit = ga_sync.audit(conn, specs, days=28)
    cli_audit = CliRunner().invoke(app, ["audit", "goal_specs/", "--format", "json",
                                         "--fail-on", "never"])
    assert cli_audit.exit_code == 0, cli_audit.output
    assert audit.to_json()["summary"] == json.loads(cli_audit.stdout)["summary"]
    assert len(audit.to_frame()) == len(json.loads(cli_audit.stdout)["findings"])

    hist = ga_sync.history(specs, weeks=6, store=tmp_path / "lib.duckdb")
    cli_hist = CliRunner().invoke(app, ["history", "goal_specs/", "--weeks", "6", "--format",
                                        "json", "--store", str(tmp_path / "cli.duckdb")])
    assert cli_hist.exit_code == 0, cli_hist.output
    by_client = {h["client"]: h["weeks"] for h in json.loads(cli_hist.stdout)["history"]}
    for client, weeks in by_client.items():
        mine = hist[hist["client"] == client]
        assert list(mine["sessions"]) == [w["sessions"] for w in weeks]
        assert list(mine["macro_value"]) == pytest.approx([w["macro_value"] for w in weeks])


def test_single_property_failures_come_back_inside_the_results(seeded: SandboxServer,
                                                               tmp_path: Path) -> None:
    specs = ga_sync.load_specs(ROOT / "goal_specs")
    missing = ga_sync.load_specs(_spec(tmp_path, "ghost.yaml", 999999999))
    conn = ga_sync.connect()
    plan = ga_sync.plan(conn, specs + missing)
    assert [e.property for e in plan.errors] == ["properties/999999999"]
    assert plan.to_json()["errors"][0]["property"] == "properties/999999999"
    run = ga_sync.report(conn, specs + missing, last_days=7, store=False)
    assert len(run.results) == sum(len(s.properties) for s in specs)
    assert [e.property for e in run.errors] == ["properties/999999999"]


def test_bad_arguments_raise_gasync_errors_without_cli_flags(seeded: SandboxServer) -> None:
    specs = ga_sync.load_specs(ROOT / "goal_specs")
    conn = ga_sync.connect()
    for kwargs in ({"start": "2026-11-10", "end": "2026-11-01"}, {"start": "yesterday"},
                   {"last_days": 0}, {"last_week": True, "last_days": 3},
                   {"start": "2026-11-01"}, {"compare": "last-year"}):
        with pytest.raises(ga_sync.GaSyncError) as info:
            ga_sync.report(conn, specs, store=False, **kwargs)
        assert "--" not in str(info.value), str(info.value)
    with pytest.raises(ga_sync.SpecError):
        ga_sync.load_specs(ROOT / "tests" / "specs" / "bad-tier.yaml")


def _spec(folder: Path, name: str, property_id: int) -> Path:
    path = folder / name
    path.write_text(f"client: Ghost\nproperties: [{property_id}]\ncurrency: USD\n"
                    "goals:\n  - event: sign_up\n    tier: micro\n    value: 5\n")
    return path


def test_no_module_outside_cli_prints_prompts_or_changes_the_environment() -> None:
    """Only ga_sync/cli talks to the terminal; the library never writes to os.environ."""
    import ast

    package = ROOT / "ga_sync"
    offenders = []
    for path in package.rglob("*.py"):
        if path.is_relative_to(package / "cli"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            name = None
            if isinstance(node, ast.Call):
                f = node.func
                if isinstance(f, ast.Name) and f.id in ("print", "input", "breakpoint"):
                    name = f.id
                elif isinstance(f, ast.Attribute):
                    owner = ast.unparse(f.value)
                    if owner in ("typer", "click", "sys.stdout", "sys.stderr") or \
                            (owner == "os" and f.attr in ("putenv", "unsetenv")) or \
                            (owner == "os.environ" and f.attr in ("update", "pop", "setdefault",
                                                                  "clear", "__setitem__")):
                        name = f"{owner}.{f.attr}"
            elif isinstance(node, (ast.Assign, ast.AugAssign, ast.Delete)):
                targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) \
                    else [node.target]
                for t in targets:
                    if isinstance(t, ast.Subscript) and ast.unparse(t.value) == "os.environ":
                        name = "os.environ[...] ="
            if name:
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: {name}")
    assert not offenders, "\n".join(offenders)


def test_a_failed_run_does_not_spoil_the_connection(seeded: SandboxServer, tmp_path: Path) -> None:
    """A journal failure (or an interrupt) stops that run; the next call on the same connection
    works as on a fresh one."""
    specs = ga_sync.load_specs(ROOT / "goal_specs")
    conn = ga_sync.connect()
    conn.retry.cancel.set()  # what a journal failure or Ctrl-C leaves behind
    plan = ga_sync.plan(conn, specs)
    assert plan.has_changes and not plan.errors
    run = ga_sync.report(conn, specs, last_days=7, store=False)
    assert len(run.results) == sum(len(s.properties) for s in specs) and not run.errors


def test_frames_keep_each_value_in_its_currency(seeded: SandboxServer, tmp_path: Path) -> None:
    """A EUR spec on a property GA reports in USD: the USD event value is labelled USD and out
    of the totals in the frames, as in the JSON."""
    text = (ROOT / "goal_specs" / "acme-outdoor.yaml").read_text()
    eur = tmp_path / "acme-eur.yaml"
    eur.write_text(text.replace("currency: USD", "currency: EUR")
                   .replace("extends: _agency_defaults.yaml", ""))
    conn = ga_sync.connect()
    run = ga_sync.report(conn, ga_sync.load_specs(eur), last_days=7, store=False)
    frame = run.to_frame()
    purchase = frame[frame["event"] == "purchase"].iloc[0]
    assert purchase["currency"] == "USD" and not purchase["in_total"]
    counted = frame[frame["in_total"]].groupby("property")["value"].sum()
    for report in run.to_json()["reports"]:
        assert counted[report["property"]] == pytest.approx(report["total_value"])
    daily = run.daily_frame()
    assert set(daily[daily["event"] == "purchase"]["currency"]) == {"USD"}
    assert not daily[daily["event"] == "purchase"]["in_total"].any()


@pytest.mark.parametrize("call", [
    lambda c, s: ga_sync.load_specs(None),
    lambda c, s: ga_sync.validate(42),
    lambda c, s: ga_sync.plan(c, "goal_specs/"),
    lambda c, s: ga_sync.plan(None, s),
    lambda c, s: ga_sync.plan(c, s + s),
    lambda c, s: ga_sync.apply(c, {"version": 1}),
    lambda c, s: ga_sync.audit(c, s, days="28"),
    lambda c, s: ga_sync.audit(c, s, days=100000),
    lambda c, s: ga_sync.audit(c, [], properties=["abc"]),
    lambda c, s: ga_sync.report(c, s, store=5),
    lambda c, s: ga_sync.report(c, s, start=1, end=2),
    lambda c, s: ga_sync.report(c, s, concurrency=0),
    lambda c, s: ga_sync.history("goal_specs/"),
])
def test_wrong_arguments_raise_gasync_errors(seeded: SandboxServer, call) -> None:
    specs = ga_sync.load_specs(ROOT / "goal_specs")
    conn = ga_sync.connect()
    with pytest.raises(ga_sync.GaSyncError) as info:
        call(conn, specs)
    assert "--" not in str(info.value), str(info.value)


def test_one_property_id_as_text_is_one_property(seeded: SandboxServer) -> None:
    from datetime import datetime
    conn = ga_sync.connect()
    specs = ga_sync.load_specs(ROOT / "goal_specs")
    result = ga_sync.audit(conn, [], properties=specs[0].properties[0].split("/")[1])
    assert [a.property for a in result.audited] == [specs[0].properties[0]]
    run = ga_sync.report(conn, specs[:1], start=datetime(2026, 11, 1, 12), end="2026-11-07",
                         store=False)
    assert run.results[0].period.start.isoformat() == "2026-11-01"
