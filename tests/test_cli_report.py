"""CLI tests for report and history: formats, files written, store, exit codes."""

from __future__ import annotations

import csv
import io
import json
from datetime import date, timedelta

import pytest
from typer.testing import CliRunner

from ga_sync.cli import app
from ga_sync.periods import last_week
from ga_sync.sandbox.traffic import make_traffic

SPEC = """\
client: CLI Report
property: 246813579
currency: EUR
goals:
  - {event: purchase, tier: macro, value: event}
  - {event: sign_up, tier: micro, value: 5, counting: once_per_session}
  - {event: file_download, tier: micro, value: 0.5}
"""


@pytest.fixture
def spec_file(ga_env, sandbox, sandbox_state, tmp_path, monkeypatch):
    traffic = make_traffic([("purchase", "macro", None), ("sign_up", "micro", 5.0),
                            ("file_download", "micro", 0.5)], seed=3, daily_sessions=800)
    sandbox_state.add_property(property_id="246813579", display_name="CLI Report",
                               currency_code="EUR", time_zone="Europe/Warsaw", traffic=traffic)
    path = tmp_path / "cli-report.yaml"
    path.write_text(SPEC)
    return path


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def test_json_csv_and_table_agree(spec_file, tmp_path):
    period = ["--start", "2026-10-01", "--end", "2026-10-14"]
    j = run("report", spec_file, *period, "-f", "json", "--no-store")
    assert j.exit_code == 0, j.stderr
    data = json.loads(j.stdout)
    assert data["version"] == 1 and len(data["reports"]) == 1
    rep = data["reports"][0]
    assert (rep["property"], rep["client"], rep["currency"]) == ("properties/246813579", "CLI Report", "EUR")
    assert (rep["start"], rep["end"]) == ("2026-10-01", "2026-10-14")
    assert rep["total_value"] == pytest.approx(rep["macro"]["value"] + rep["micro"]["value"])
    c = run("report", spec_file, *period, "-f", "csv", "--no-store")
    rows = list(csv.DictReader(io.StringIO(c.stdout)))
    assert [r["event"] for r in rows] == ["purchase", "sign_up", "file_download"]
    for r, g in zip(rows, rep["goals"]):
        assert float(r["conversions"]) == g["conversions"] and float(r["value"]) == g["value"]
    t = run("report", spec_file, *period, "--no-store")
    assert "CLI Report" in t.stdout and "macro" in t.stdout and "micro" in t.stdout
    assert f"{rep['sessions']:,}" in t.stdout


def test_html_is_written_and_self_contained(spec_file, tmp_path):
    out = tmp_path / "r.html"
    r = run("report", spec_file, "--last-days", "14", "-f", "html", "-o", out,
            "--store", tmp_path / "h.duckdb")
    assert r.exit_code == 0, r.stderr
    html = out.read_text()
    assert "<svg" in html and "CLI Report" in html
    assert "<script" not in html and 'src="http' not in html and "href=\"http" not in html


def test_store_then_history_without_calling_ga(spec_file, tmp_path, sandbox):
    store = tmp_path / "h.duckdb"
    last = last_week(date.today())  # history counts complete weeks before today
    start = last.start - timedelta(weeks=2)
    for _ in range(2):  # pulling the same days twice replaces them
        r = run("report", spec_file, "--start", start, "--end", last.end, "--store", store)
        assert r.exit_code == 0, r.stderr
        assert f"stored 1 pull in {store}" in r.stderr
    before = sandbox.stats.snapshot()["requests"]
    h = run("history", spec_file, "--weeks", "3", "--store", store, "-f", "json")
    assert h.exit_code == 0, h.stderr
    assert sandbox.stats.snapshot()["requests"] == before  # no call to GA
    weeks = json.loads(h.stdout)["history"][0]["weeks"]
    assert len(weeks) == 3
    for i, w in enumerate(weeks):  # each stored week equals a fresh pull of that week
        monday = start + timedelta(weeks=i)
        assert str(w["week"]).startswith(monday.isoformat())
        j = json.loads(run("report", spec_file, "--start", monday,
                           "--end", monday + timedelta(days=6), "-f", "json",
                           "--no-store").stdout)["reports"][0]
        assert w["macro_conversions"] == j["macro"]["conversions"]
        assert w["micro_conversions"] == j["micro"]["conversions"]
        assert w["total_value"] == pytest.approx(j["total_value"])
        assert w["sessions"] == j["sessions"]


def test_history_without_store_is_a_clear_error(spec_file, tmp_path):
    r = run("history", spec_file, "--store", tmp_path / "none.duckdb")
    assert r.exit_code == 1 and "run 'ga-sync report' first" in r.stderr


@pytest.mark.parametrize("args,message", [
    (["--start", "2026-10-01"], "--start and --end go together"),
    (["--start", "2026-10-10", "--end", "2026-10-01"], "before it starts"),
    (["--last-week", "--last-days", "3"], "give one of"),
    (["--start", "10/01/2026", "--end", "2026-10-02"], "write it as YYYY-MM-DD"),
])
def test_bad_period_flags(spec_file, args, message):
    r = run("report", spec_file, *args, "--no-store")
    assert r.exit_code == 1 and message in r.stderr


def test_failed_property_is_reported_and_exit_1(spec_file, tmp_path, sandbox_state):
    other = tmp_path / "other.yaml"
    other.write_text(SPEC.replace("246813579", "135792468").replace("CLI Report", "Gone"))
    r = run("report", spec_file, other, "--last-week", "-f", "json", "--no-store")
    assert r.exit_code == 1
    data = json.loads(r.stdout)
    assert [x["client"] for x in data["reports"]] == ["CLI Report"]
    assert data["errors"][0]["property"] == "properties/135792468"
    assert "properties/135792468" in r.stderr


def test_future_period_is_refused(spec_file):
    r = run("report", spec_file, "--start", "2030-01-01", "--end", "2030-01-07", "--no-store")
    assert r.exit_code == 1 and "ends after today" in r.stderr


def test_history_formats(spec_file, tmp_path):
    store = tmp_path / "h.duckdb"
    assert run("report", spec_file, "--last-days", "14", "--store", store).exit_code == 0
    weeks = json.loads(run("history", spec_file, "--weeks", "2", "--store", store,
                           "-f", "json").stdout)["history"][0]["weeks"]
    assert all(len(w["week"]) == 10 for w in weeks)  # YYYY-MM-DD, like the CSV
    header = run("history", spec_file, "--store", store, "-f", "csv").stdout.splitlines()[0]
    assert header.startswith("property,client,")
    assert run("history", spec_file, "--store", store, "-f", "html").exit_code == 1


def test_hourly_token_quota_stops_the_property_without_spinning(sandbox_state, tmp_path,
                                                                 monkeypatch):
    """GA's "Exhausted property tokens per hour." is reported, not retried for an hour."""
    from ga_sync.sandbox.faults import QuotaLimits
    from ga_sync.sandbox.server import SandboxServer

    traffic = make_traffic([("purchase", "macro", None)], seed=1, daily_sessions=200)
    sandbox_state.add_property(property_id="246813579", traffic=traffic)
    path = tmp_path / "q.yaml"
    path.write_text(SPEC)
    limits = QuotaLimits(data_tokens_per_request=10, data_tokens_per_hour=15)
    with SandboxServer(sandbox_state, quotas=limits) as server:
        for var in ("GA_SYNC_ADMIN_ENDPOINT", "GA_SYNC_DATA_ENDPOINT"):
            monkeypatch.setenv(var, server.url)
        monkeypatch.setenv("GA_SYNC_CREDENTIALS", "anonymous")
        assert run("report", path, "--last-week", "--no-store").exit_code == 0
        before = server.stats.snapshot()["data_requests"]
        r = run("report", path, "--last-week", "--no-store", "-f", "json")
        assert r.exit_code == 1
        assert "quota used up" in r.stderr and "tokens per hour" in r.stderr
        assert server.stats.snapshot()["data_requests"] - before == 1  # asked once, no retries
        assert json.loads(r.stdout)["errors"][0]["property"] == "properties/246813579"
