"""`report --source`: the export path and the Data API path give the same report on the same
sandbox traffic; the export counts engagement goals exactly; bad sources are clear errors."""

from __future__ import annotations

import json
from datetime import date

import numpy as np
import pytest
import sqlglot
from typer.testing import CliRunner

import ga_sync
from ga_sync.cli import app
from ga_sync.export.writer import write_events
from ga_sync.sandbox.derived import property_event_log
from ga_sync.sandbox.traffic import make_traffic

PID = "246813580"
SPEC = f"""\
client: Sources
property: {PID}
currency: EUR
goals:
  - {{event: purchase, tier: macro, value: event}}
  - {{event: sign_up, tier: micro, value: 5, counting: once_per_session}}
  - {{event: file_download, tier: micro, value: 0.5}}
  - event: pricing_seen
    tier: micro
    value: 1
    counting: once_per_session
    page: {{contains: /pricing}}
  - event: deep_visit
    tier: micro
    value: 0.25
    session: {{min_page_views: 4}}
"""
START, END = date(2026, 10, 1), date(2026, 10, 14)
PERIOD = ["--start", START.isoformat(), "--end", END.isoformat()]


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def setup(ga_env, sandbox, sandbox_state, tmp_path):
    traffic = make_traffic([("purchase", "macro", None), ("sign_up", "micro", 5.0),
                            ("file_download", "micro", 0.5)], seed=11, daily_sessions=500)
    sandbox_state.add_property(property_id=PID, display_name="Sources", currency_code="EUR",
                               time_zone="Europe/Warsaw", traffic=traffic)
    spec = tmp_path / "sources.yaml"
    spec.write_text(SPEC)
    export = tmp_path / "export"
    log = property_event_log(sandbox_state, PID, START, END)
    write_events(log, export, PID, time_zone="Europe/Warsaw")
    return spec, export, log


def _report(*args) -> dict:
    r = run("report", *args, "-f", "json", "--no-store")
    assert r.exit_code == 0, r.stderr
    return json.loads(r.stdout)["reports"][0]


def test_export_and_data_api_agree_and_engagement_is_exact(setup):
    spec, export, log = setup
    api = _report(spec, *PERIOD)
    exp = _report(spec, *PERIOD, "--source", f"export:{export}")
    assert (api["source"], exp["source"]) == ("data-api", "export")
    for key in ("sessions", "users", "currency", "property_currency", "start", "end"):
        assert exp[key] == api[key], key
    by_api = {g["event"]: g for g in api["goals"]}
    for g in exp["goals"]:
        if g["event"] == "deep_visit":
            continue  # GA's audience trigger is approximate; the export counts every session
        for key in ("conversions", "rate", "value", "currency", "in_total"):
            assert g[key] == pytest.approx(by_api[g["event"]][key]), (g["event"], key)
    # the exact engagement goal, computed independently: sessions with 4+ page views
    views = log[log["event_name"] == "page_view"].groupby(
        ["user_id", "session_id"], observed=True).size()
    deep = int((views >= 4).sum())
    got = {g["event"]: g for g in exp["goals"]}["deep_visit"]
    assert deep > 0 and got["conversions"] == deep
    assert got["value"] == pytest.approx(deep * 0.25)
    codes = {w["code"] for w in exp["warnings"]}
    assert "exact" in codes and "approximate" not in codes
    assert "approximate" in {w["code"] for w in api["warnings"]}
    # macro + micro from raw events equal the Data API's, save the engagement goal's share
    assert exp["macro"]["conversions"] == api["macro"]["conversions"]
    assert exp["macro"]["value"] == pytest.approx(api["macro"]["value"])


def test_python_api_source_keyword(setup):
    spec, export, _ = setup
    conn = ga_sync.connect(credentials="anonymous")
    specs = ga_sync.load_specs([spec])
    run_ = ga_sync.report(conn, specs, START, END, source=f"export:{export}", store=False)
    assert not run_.errors and run_.results[0].source == "export"
    sql = ga_sync.report_sql(conn, specs, START, END, source=f"export:{export}")
    assert list(sql) == [f"properties/{PID}"]
    parsed = sqlglot.parse_one(sql[f"properties/{PID}"], read="bigquery")
    assert parsed is not None and "_TABLE_SUFFIX" in sql[f"properties/{PID}"]
    with pytest.raises(ga_sync.GaSyncError, match="Data API has no SQL"):
        ga_sync.report_sql(conn, specs, START, END)
    with pytest.raises(ga_sync.GaSyncError, match="max_gb"):
        ga_sync.report(conn, specs, START, END, source="bigquery:p", max_gb=-1)


def test_show_sql_prints_bigquery_sql_and_runs_nothing(setup, sandbox):
    spec, export, _ = setup
    sandbox.stats.reset()
    r = run("report", spec, *PERIOD, "--source", f"export:{export}", "--show-sql")
    assert r.exit_code == 0, r.stderr
    assert r.stdout.startswith(f"-- properties/{PID}\n")
    body = r.stdout.split("\n", 1)[1]
    assert sqlglot.parse_one(body.strip().rstrip(";"), read="bigquery") is not None
    assert "20261001" in body and "20261014" in body
    assert sandbox.stats.snapshot()["data_requests"] == 0


@pytest.mark.parametrize("source,message", [
    ("csv:/tmp", "unknown --source"),
    ("export:", "needs a folder"),
    ("bigquery:", "needs a project"),
])
def test_bad_sources_are_clear(setup, source, message):
    spec, _, _ = setup
    r = run("report", spec, *PERIOD, "--source", source)
    assert r.exit_code == 1 and message in r.stderr and "Traceback" not in r.stderr


def test_a_missing_export_is_that_propertys_error(setup, tmp_path):
    spec, _, _ = setup
    r = run("report", spec, *PERIOD, "--source", f"export:{tmp_path / 'nowhere'}", "-f", "json",
            "--no-store")
    assert r.exit_code == 1 and "Traceback" not in r.stderr
    assert f"properties/{PID}" in r.stderr and "nowhere" in r.stderr


def test_show_sql_needs_an_export_source(setup):
    spec, _, _ = setup
    r = run("report", spec, *PERIOD, "--show-sql")
    assert r.exit_code == 1 and "--show-sql needs --source" in r.stderr


def test_value_from_events_matches_the_log(setup):
    """purchase is `value: event`: the export sums the value parameter exactly as the log has it."""
    spec, export, log = setup
    exp = _report(spec, *PERIOD, "--source", f"export:{export}")
    purchase = {g["event"]: g for g in exp["goals"]}["purchase"]
    want = float(np.nansum(log.loc[log["event_name"] == "purchase", "value"]))
    assert purchase["value"] == pytest.approx(want, rel=1e-9)


def test_report_sql_holds_the_goals_and_the_journeys_query(setup):
    """A report sends the journeys query too (billed on BigQuery): report_sql shows both, each
    under its header, each one BigQuery statement; --show-sql prints them."""
    spec, export, _ = setup
    conn = ga_sync.connect(credentials="anonymous")
    sql = ga_sync.report_sql(conn, ga_sync.load_specs([spec]), START, END,
                             source=f"export:{export}")[f"properties/{PID}"]
    assert isinstance(sql, str) and sql.startswith("-- goals\n")
    goals, journeys = sql.split("\n-- journeys\n")
    goals = goals.removeprefix("-- goals\n").strip().rstrip(";")
    for statement in (goals, journeys):
        assert len(sqlglot.parse(statement, read="bigquery")) == 1
        assert "_TABLE_SUFFIX" in statement
    assert "user_pseudo_id" in journeys and "-- " not in goals + journeys
    r = run("report", spec, *PERIOD, "--source", f"export:{export}", "--show-sql")
    assert r.exit_code == 0 and "-- goals\n" in r.stdout and "\n-- journeys\n" in r.stdout
    assert r.stdout.rstrip().endswith(";") and ";;" not in r.stdout


def test_report_sql_reports_a_missing_export_per_property(setup, sandbox_state, tmp_path):
    """A property whose export is missing is that property's error (`errors` on the answer),
    not a crash of the call; with nothing produced, one GaSyncError names the failures."""
    spec, export, _ = setup
    other = tmp_path / "other.yaml"
    other.write_text(SPEC.replace(PID, "135792468").replace("Sources", "Other"))
    sandbox_state.add_property(property_id="135792468", display_name="Other",
                               currency_code="EUR", time_zone="Europe/Warsaw")
    conn = ga_sync.connect(credentials="anonymous")
    specs = ga_sync.load_specs([spec, other])
    sql = ga_sync.report_sql(conn, specs, START, END, source=f"export:{export}")
    assert list(sql) == [f"properties/{PID}"]
    assert list(sql.errors) == ["properties/135792468"]
    assert isinstance(sql.errors["properties/135792468"], ga_sync.GaSyncError)
    assert "analytics_135792468" in str(sql.errors["properties/135792468"])
    with pytest.raises(ga_sync.GaSyncError, match="nowhere") as e:
        ga_sync.report_sql(conn, specs, START, END, source=f"export:{tmp_path / 'nowhere'}")
    assert f"properties/{PID}" in str(e.value) and "properties/135792468" in str(e.value)


def test_show_sql_names_a_property_without_export_and_exits_1(setup, sandbox_state, tmp_path):
    spec, export, _ = setup
    sandbox_state.add_property(property_id="246813581", display_name="No export",
                               currency_code="EUR", time_zone="Europe/Warsaw")
    two = tmp_path / "two.yaml"
    two.write_text(SPEC.replace(f"property: {PID}", f"properties: [{PID}, 246813581]"))
    r = run("report", two, *PERIOD, "--source", f"export:{export}", "--show-sql")
    assert r.exit_code == 1 and "Traceback" not in r.stderr
    assert f"-- properties/{PID}\n" in r.stdout and "properties/246813581" not in r.stdout
    assert "error: properties/246813581" in r.stderr and "analytics_246813581" in r.stderr
