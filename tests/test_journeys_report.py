"""Journeys in the report: JSON fields, every format, and a failing journeys pull as a warning."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace

import pytest

from ga_sync.errors import GaSyncError
from ga_sync.export.source import ExportSource
from ga_sync.render.html import report_html
from ga_sync.render.report import report_csv, report_json, report_table
from ga_sync.report import report_property

from test_journeys_export import PERIOD, PROP, TZ, spec, writer, make_log, PID  # noqa: E402


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    root = tmp_path_factory.mktemp("jr")
    writer.write_events(make_log(users=200), root, PID, time_zone=TZ)
    return report_property(None, spec(), PROP, PERIOD, compare=True, time_zone=TZ,
                           today=PERIOD.end.replace(month=8), source=ExportSource(root),
                           currency="USD")


def test_json_has_funnels_assists_identified(result):
    rep = json.loads(report_json([result]))["reports"][0]
    assert [f["name"] for f in rep["funnels"]] == [f.name for f in spec().funnels]
    assert set(rep["funnels"][0]["steps"][0]) == {"event", "users", "completion_rate",
                                                  "abandonment_rate", "abandonments", "change"}
    assert rep["assists"]["status"] == "ok" and rep["assists"]["goals"]
    assert rep["identified"]["status"] == "ok"
    assert rep["previous"]["funnels"]  # the previous period's own numbers


def test_table_csv_and_html_show_them(result):
    text = report_table([result])
    assert "funnel checkout (closed; export)" in text
    assert "association, not proof of cause" in text and "identified visitors:" in text
    rows = list(csv.DictReader(io.StringIO(report_csv([result]))))
    sections = {r["section"] for r in rows}
    assert sections == {"goal", "funnel", "assist", "identified"}
    step = next(r for r in rows if r["section"] == "funnel")
    assert step["funnel"] == "checkout" and step["step"] == "1" and step["event"] == "view_item"
    html = report_html([result])
    assert "Journey: checkout" in html and "<svg" in html and "drop" in html
    assert "association, not proof of cause" in html and "Value in the plan" in html


def test_a_report_without_journeys_keeps_its_csv_columns(result):
    plain = replace(result, funnels=[], assists=None, identified=None, previous=None)
    header = report_csv([plain]).splitlines()[0]
    assert header.endswith("value_currency,in_total")
    assert "Journey:" not in report_html([plain])


def test_a_failing_journeys_pull_is_a_warning(result, monkeypatch):
    import ga_sync.journeys as journeys

    def boom(*args, **kwargs):
        raise GaSyncError("properties/424242: BigQuery refused")

    monkeypatch.setattr(journeys, "pull", boom)
    source = ExportSource("/nonexistent")
    monkeypatch.setattr(source, "pull", lambda *a, **k: _facts())
    r = report_property(None, spec(), PROP, PERIOD, time_zone=TZ,
                        today=PERIOD.end.replace(month=8), source=source, currency="USD")
    assert [w.code for w in r.warnings if w.code == "journeys-failed"] == ["journeys-failed"]
    assert r.funnels == [] and r.assists is None


def _facts():
    from ga_sync.export.query import RESULT_COLUMNS, to_facts
    import pandas as pd
    frame = pd.DataFrame([("total", 0, None, None, 10, 5, 4, 0.0)], columns=list(RESULT_COLUMNS))
    return replace(to_facts(frame, [PERIOD], property=PROP, source="export"),
                   from_page_views=("thank_you",))


def test_assist_rows_that_are_funnel_steps_to_a_macro_goal_are_marked(result):
    """A micro goal that is a step of a funnel ending in a macro goal has a mechanical lift
    (buyers pass through it): the assist table marks it, in HTML and in the text table."""
    html = report_html([result])
    text = report_table([result])
    note = ("a step of the checkout, checkout_1h, checkout_open and checkout_open_10m funnels: "
            "buyers pass through it, so its lift is mechanical")
    assert f"<code>add_to_cart</code>: {note}" in html
    assert "<code>file_download</code>: a step of the lead funnel: buyers pass through it" in html
    assert '<code>add_to_cart</code> <span class="mark"' in html
    assert "<code>sign_up</code></td>" in html  # not a funnel step: no mark
    assert f"  * add_to_cart: {note}" in text and "add_to_cart *" in text
    assert "sign_up *" not in text


def test_the_funnels_change_says_what_changed(result):
    html = report_html([result])
    assert "Completions" not in html
    assert "Visitors reaching <code>purchase</code>: " in html
    assert "vs the previous period." in html
