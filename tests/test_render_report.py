"""Report renderers: the JSON/CSV contract users script against, the ticket table, the HTML file.

Results are built here from small daily frames with plain arithmetic, so these tests need
neither GA nor the sandbox.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from datetime import date, datetime, timedelta, timezone
from html.parser import HTMLParser
from types import SimpleNamespace

import pandas as pd
import pytest

from ga_sync.model import MACRO, MICRO, ONCE_PER_SESSION, USERS, Goal, Spec
from ga_sync.render.html import rate_series, report_html
from ga_sync.render.report import report_csv, report_json, report_table
from ga_sync.periods import Period
from ga_sync.report import GoalResult, ReportResult, TierResult, Warning_

SPEC = Spec(client="Acme Outdoor", properties=("properties/123456789",), currency="USD",
            goals=(Goal("purchase", MACRO, None), Goal("sign_up", MICRO, 5.0, ONCE_PER_SESSION),
                   Goal("newsletter", MICRO, 1.25)))
WEEK = Period(date(2026, 11, 9), date(2026, 11, 15))


def daily_rows(period: Period, seed: int, skip: str | None = None) -> pd.DataFrame:
    """A deterministic daily frame: per day traffic, per goal conversions and value."""
    rows = []
    for i in range(period.days):
        day = period.start + timedelta(days=i)
        sessions = 1700 + 37 * ((i * 7 + seed) % 11)
        users = int(sessions * 0.77)
        for k, g in enumerate(SPEC.goals):
            if g.event == skip:
                continue
            conv = float(3 + (i * 5 + k * 3 + seed) % 17) * (10 if g.tier == MICRO else 1)
            value = conv * g.value if g.value is not None else conv * 73.19 + 0.07 * i
            rows.append((day, g.event, conv, value, sessions, users))
    return pd.DataFrame(rows, columns=["date", "event", "conversions", "value", "sessions",
                                       "users"])


def build(spec: Spec, daily: pd.DataFrame, period: Period, *, client: str | None = None,
          previous: ReportResult | None = None, warnings: list[Warning_] | None = None,
          property: str = "properties/123456789") -> ReportResult:
    """A ReportResult computed from `daily` the plain way (sums and ratios)."""
    days = daily.drop_duplicates("date")
    sessions, users = int(days["sessions"].sum()), int(days["users"].sum())
    basis = users if spec.rate_basis == USERS else sessions
    goals, tiers = [], {MACRO: [0.0, 0.0], MICRO: [0.0, 0.0]}
    for g in spec.goals:
        rows = daily[daily["event"] == g.event]
        conv, val = float(rows["conversions"].sum()), float(rows["value"].sum())
        change = None
        if previous is not None:
            before = next(p for p in previous.goals if p.event == g.event).conversions
            change = (conv - before) / before if before else None
        goals.append(GoalResult(g.event, g.tier, conv, conv / basis, val, g.counting, change))
        tiers[g.tier][0] += conv
        tiers[g.tier][1] += val

    def tier(name: str) -> TierResult:
        conv, val = tiers[name]
        return TierResult(conv, conv / basis, min(conv * 0.61, sessions) / sessions, val)

    macro, micro = tier(MACRO), tier(MICRO)
    return ReportResult(property=property, client=client or spec.client, period=period,
                        currency=spec.currency, rate_basis=spec.rate_basis, sessions=sessions,
                        users=users, goals=goals, macro=macro, micro=micro,
                        total_value=macro.value + micro.value,
                        value_per_session=(macro.value + micro.value) / sessions,
                        previous=previous, warnings=warnings or [], daily=daily)


def compared() -> ReportResult:
    prev = build(SPEC, daily_rows(WEEK.previous(), seed=3, skip="newsletter"), WEEK.previous())
    return build(SPEC, daily_rows(WEEK, seed=1), WEEK, previous=prev)


REPORT_KEYS = {"property", "client", "start", "end", "currency", "rate_basis", "sessions", "users",
               "goals", "macro", "micro", "total_value", "value_per_session", "previous",
               "warnings", "property_currency", "source", "funnels", "assists", "identified"}
GOAL_KEYS = {"event", "tier", "conversions", "rate", "value", "currency", "in_total"}
TIER_KEYS = {"conversions", "rate", "session_rate", "value"}


# --------------------------------------------------------------------------- JSON


def test_json_contract_keys_and_exact_numbers() -> None:
    r = build(SPEC, daily_rows(WEEK, seed=1), WEEK,
              warnings=[Warning_("incomplete", "The period ends soon.", None)])
    data = json.loads(report_json([r]))
    assert set(data) == {"version", "reports"}
    assert data["version"] == 1
    [rep] = data["reports"]
    assert set(rep) == REPORT_KEYS
    assert (rep["property"], rep["client"], rep["start"], rep["end"]) == (
        "properties/123456789", "Acme Outdoor", "2026-11-09", "2026-11-15")
    assert (rep["sessions"], rep["users"]) == (r.sessions, r.users)
    assert rep["previous"] is None
    assert rep["warnings"] == [{"code": "incomplete", "message": "The period ends soon."}]
    assert set(rep["macro"]) == TIER_KEYS and set(rep["micro"]) == TIER_KEYS
    for got, g in zip(rep["goals"], r.goals, strict=True):
        assert set(got) == GOAL_KEYS  # no change
        assert (got["currency"], got["in_total"]) == ("USD", True)
        assert (got["event"], got["tier"], got["conversions"]) == (g.event, g.tier, g.conversions)
        assert got["rate"] == g.rate and got["value"] == g.value
    # Unrounded: these numbers have more digits than any display would keep.
    assert round(r.goals[0].rate, 6) != r.goals[0].rate
    assert rep["macro"]["session_rate"] == r.macro.session_rate
    assert rep["value_per_session"] == r.value_per_session
    assert rep["total_value"] == r.macro.value + r.micro.value


def test_json_compare_has_previous_block_and_change() -> None:
    r = compared()
    [rep] = json.loads(report_json([r]))["reports"]
    prev = rep["previous"]
    assert set(prev) == REPORT_KEYS
    assert (prev["start"], prev["end"]) == ("2026-11-02", "2026-11-08")
    assert prev["sessions"] == r.previous.sessions
    assert prev["micro"]["value"] == r.previous.micro.value
    changes = {g["event"]: g["change"] for g in rep["goals"]}
    before = {g.event: g.conversions for g in r.previous.goals}
    now = {g.event: g.conversions for g in r.goals}
    assert changes["newsletter"] is None  # previous period had none
    assert before["newsletter"] == 0
    for event in ("purchase", "sign_up"):
        assert changes[event] == (now[event] - before[event]) / before[event]


def test_json_errors_only_when_some_failed() -> None:
    r = build(SPEC, daily_rows(WEEK, seed=1), WEEK)
    assert "errors" not in json.loads(report_json([r], errors=[]))
    failure = SimpleNamespace(property="properties/42", client="Other", message="permission denied")
    data = json.loads(report_json([r], errors=[failure]))
    assert data["errors"] == [{"property": "properties/42", "client": "Other",
                               "message": "permission denied"}]
    assert len(data["reports"]) == 1


# --------------------------------------------------------------------------- CSV


EXPECTED_CSV = ["property", "client", "start", "end", "currency", "rate_basis", "sessions",
                "users", "event", "tier", "conversions", "rate", "value", "change",
                "value_currency", "in_total"]


def test_csv_one_row_per_goal_with_unrounded_numbers() -> None:
    a = build(SPEC, daily_rows(WEEK, seed=1), WEEK)
    b = build(SPEC, daily_rows(WEEK, seed=5), WEEK, client="Bay, \"Trail\" Co",
              property="properties/987")
    text = report_csv([a, b])
    reader = csv.DictReader(io.StringIO(text))
    assert reader.fieldnames == EXPECTED_CSV
    rows = list(reader)
    expected = [(r, g) for r in (a, b) for g in r.goals]
    assert len(rows) == len(expected) == 2 * len(SPEC.goals)
    for row, (r, g) in zip(rows, expected):
        assert row["property"] == r.property and row["client"] == r.client
        assert (row["start"], row["end"]) == (r.period.start.isoformat(), r.period.end.isoformat())
        assert int(row["sessions"]) == r.sessions and int(row["users"]) == r.users
        assert (row["event"], row["tier"]) == (g.event, g.tier)
        assert float(row["conversions"]) == g.conversions
        assert float(row["rate"]) == g.rate  # exact: repr round-trips
        assert float(row["value"]) == g.value
        assert row["change"] == ""


def test_csv_change_column_when_comparing() -> None:
    r = compared()
    rows = list(csv.DictReader(io.StringIO(report_csv([r]))))
    for row, g in zip(rows, r.goals, strict=True):
        assert row["change"] == ("" if g.change is None else repr(g.change))
    assert any(row["change"] == "" for row in rows)
    assert any(row["change"] != "" for row in rows)


# --------------------------------------------------------------------------- table


def _line(text: str, first_word: str) -> str:
    return next(ln for ln in text.splitlines() if ln.strip().startswith(first_word))


def test_table_macro_and_micro_side_by_side_rounded() -> None:
    r = build(SPEC, daily_rows(WEEK, seed=1), WEEK,
              warnings=[Warning_("thresholded", "GA applied thresholding.")])
    text = report_table([r])
    assert text == report_table([r])  # deterministic
    assert "\x1b" not in text
    assert "Acme Outdoor" in text and "properties/123456789" in text
    assert "2026-11-09..2026-11-15" in text
    assert f"sessions {r.sessions:,}" in text and f"users {r.users:,}" in text
    header = next(ln for ln in text.splitlines() if re.search(r"\bmacro\s+micro\s+total\b", ln))
    assert header.index("macro") < header.index("micro") < header.index("total")
    conv = _line(text, "conversions").split()
    assert conv[1:] == [f"{r.macro.conversions:,.0f}", f"{r.micro.conversions:,.0f}",
                        f"{r.macro.conversions + r.micro.conversions:,.0f}"]
    rate = _line(text, "conversions per session")
    assert f"{r.macro.rate * 100:.2f}%" in rate and f"{r.micro.rate * 100:.2f}%" in rate
    srate = _line(text, "sessions with a conversion")
    assert f"{r.macro.session_rate * 100:.2f}%" in srate
    value = _line(text, "value ")
    assert f"{r.macro.value:,.2f} USD" in value and f"{r.total_value:,.2f} USD" in value
    assert f"{r.value_per_session:,.2f} USD" in _line(text, "value per session")
    purchase = _line(text, "purchase").split()
    assert purchase[1] == "macro"
    assert f"{r.goals[0].rate * 100:.2f}%" in purchase
    assert repr(r.goals[0].rate) not in text  # rounded for people
    assert "thresholded: GA applied thresholding." in text
    assert "change" not in text
    assert "not included" not in text


def test_table_change_when_comparing() -> None:
    r = compared()
    text = report_table([r])
    assert re.search(r"^\s+event\s+tier\s+.*\bconv\. change$", text, re.MULTILINE)
    for g in r.goals:
        cells = _line(text, g.event).split()
        assert cells[-1] == ("n/a" if g.change is None else f"{g.change * 100:+.1f}%")
    assert "vs 2026-11-02..2026-11-08" in text


def test_table_several_reports_in_order() -> None:
    a = build(SPEC, daily_rows(WEEK, seed=1), WEEK)
    b = build(SPEC, daily_rows(WEEK, seed=2), WEEK, client="Bay Trail", property="properties/7")
    text = report_table([a, b])
    assert text.index("Acme Outdoor") < text.index("Bay Trail")
    assert text.count("value per session") == 2


# --------------------------------------------------------------------------- HTML


class _Resources(HTMLParser):
    """Collects every URL the page would load, and the text of every element."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[tuple[str, str]] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href", "xlink:href", "srcset", "data") and value:
                self.urls.append((tag, value))


def test_html_is_self_contained_and_escapes() -> None:
    evil = "<script>alert('x')</script>"
    prev = build(SPEC, daily_rows(WEEK.previous(), seed=3), WEEK.previous())
    r = build(SPEC, daily_rows(WEEK, seed=1), WEEK, client=evil, previous=prev,
              warnings=[Warning_("odd", "Goal <img src=https://evil.example/x.png> is odd")])
    page = report_html([r], generated=datetime(2026, 11, 17, 9, 0, tzinfo=timezone.utc))
    parser = _Resources()
    parser.feed(page)
    remote = [(t, u) for t, u in parser.urls if re.match(r"^(https?:)?//", u.strip(), re.I)]
    assert remote == []
    assert "script" not in parser.tags and "img" not in parser.tags and "link" not in parser.tags
    assert "@import" not in page and re.findall(r"url\((?!#)", page) == []
    assert page.count("<svg") >= 2
    assert evil not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "&lt;img src=https://evil.example/x.png&gt;" in page
    assert "2026-11-17 09:00" in page
    assert f"{r.total_value:,.2f} USD" in page
    assert "How these numbers are computed" in page


def test_html_headlines_and_goals() -> None:
    r = compared()
    page = report_html([r])
    assert f"{r.value_per_session:,.2f} USD" in page
    assert f"{r.macro.rate * 100:.2f}%" in page and f"{r.micro.rate * 100:.2f}%" in page
    total_change = (r.total_value - r.previous.total_value) / r.previous.total_value
    assert f"{total_change * 100:+.1f}%" in page
    for g in r.goals:
        assert f"<code>{g.event}</code>" in page
        assert f"{g.value:,.2f}" in page


def test_html_rate_chart_uses_weekly_rows_when_given() -> None:
    r = build(SPEC, daily_rows(WEEK, seed=1), WEEK)
    weekly = pd.DataFrame({"week": [date(2026, 11, 2), date(2026, 11, 9)],
                           "macro_rate": [0.011, 0.013], "micro_rate": [0.2, 0.25]})
    assert "per week" in report_html([r], weekly={r.property: weekly})
    assert "per day" in report_html([r])
    assert "per day" in report_html([r], weekly={"properties/other": weekly})


def test_daily_rate_series_matches_plain_sums() -> None:
    spec = Spec(**{**SPEC.__dict__, "rate_basis": USERS})
    daily = daily_rows(WEEK, seed=4)
    r = build(spec, daily, WEEK)
    kind, xs, macro, micro = rate_series(r, None)
    assert kind == "daily"
    assert xs == sorted(set(daily["date"]))
    tiers = {g.event: g.tier for g in SPEC.goals}
    for x, m, u in zip(xs, macro, micro, strict=True):
        rows = [row for row in daily.to_dict("records") if row["date"] == x]
        users = rows[0]["users"]
        assert m == pytest.approx(sum(r["conversions"] for r in rows
                                      if tiers[r["event"]] == MACRO) / users)
        assert u == pytest.approx(sum(r["conversions"] for r in rows
                                      if tiers[r["event"]] == MICRO) / users)


def test_html_several_clients_unique_svg_ids() -> None:
    a = build(SPEC, daily_rows(WEEK, seed=1), WEEK)
    b = build(SPEC, daily_rows(WEEK, seed=1), WEEK, client="Twin", property="properties/2")
    page = report_html([a, b])
    ids = re.findall(r'\sid="([^"]+)"', page)
    assert len(ids) == len(set(ids))
    refs = re.findall(r'url\(#([^)]+)\)|href="#([^"]+)"', page)
    assert refs and all((a or b) in ids for a, b in refs)  # every reference still resolves
    assert page.count("<section") == 2



# --------------------------------------------------------------------------- fixes: errors,
# users-basis caption, weeks worth plotting, macro first


ERRORS = [{"property": "properties/42", "client": "Bay <Trail>",
           "message": "permission denied for <user@example.com> & co"}]


def test_table_lists_failed_properties_last() -> None:
    r = build(SPEC, daily_rows(WEEK, seed=1), WEEK)
    text = report_table([r], errors=ERRORS)
    assert text.startswith(report_table([r]).rstrip("\n"))  # the reports are unchanged
    tail = text[text.index("\nnot included:\n"):]
    assert "Bay <Trail>  properties/42: permission denied for <user@example.com> & co" in tail
    assert tail.rstrip().endswith("& co")
    assert report_table([r], errors=[]) == report_table([r])
    failure = SimpleNamespace(property="properties/7", client="Other", message="boom")
    assert "Other  properties/7: boom" in report_table([], errors=[failure])


def test_html_not_included_box_near_the_top_escaped() -> None:
    r = build(SPEC, daily_rows(WEEK, seed=1), WEEK)
    page = report_html([r], errors=ERRORS)
    assert "Not included" in page and 'class="not-included"' in page
    assert page.index("Not included") < page.index('<section class="client"')
    assert "Bay &lt;Trail&gt;" in page and "<Trail>" not in page
    assert "permission denied for &lt;user@example.com&gt; &amp; co" in page
    assert "<code>properties/42</code>" in page
    assert "Not included" not in report_html([r])
    assert "Not included" not in report_html([r], errors=[])
    assert "Not included" in report_html([], errors=ERRORS)


def _weekly(days: list[int], rates: list[float]) -> pd.DataFrame:
    """`Store.weekly`'s shape for one property: empty weeks have days 0 and NaN rates."""
    mondays = [date(2026, 8, 31) + timedelta(weeks=i) for i in range(len(days))]
    return pd.DataFrame({"property": "properties/123456789", "week": mondays, "days": days,
                         "macro_rate": rates, "micro_rate": [x * 10 for x in rates]})


def test_weekly_series_drops_leading_empty_weeks() -> None:
    r = build(SPEC, daily_rows(WEEK, seed=1), WEEK)
    nan = float("nan")
    weekly = _weekly([0] * 9 + [7, 7, 7], [nan] * 9 + [0.01, 0.02, 0.03])
    kind, xs, macro, micro = rate_series(r, weekly)
    assert kind == "weekly"
    assert xs == list(weekly["week"])[-3:]
    assert macro == [0.01, 0.02, 0.03] and micro == pytest.approx([0.1, 0.2, 0.3])


def test_weekly_series_skips_partial_weeks() -> None:
    r = build(SPEC, daily_rows(WEEK, seed=1), WEEK)
    nan = float("nan")
    # empty, empty, partly stored, full, partial gap, full, full, the current week (3 days)
    weekly = _weekly([0, 0, 4, 7, 2, 7, 7, 3], [nan, nan, 0.09, 0.01, 0.08, 0.02, 0.03, 0.07])
    kind, xs, macro, _ = rate_series(r, weekly)
    weeks = list(weekly["week"])
    assert kind == "weekly"
    assert xs == weeks[3:7]  # first to last full week: the partial ends are not plotted
    assert [x for x in macro if math.isfinite(x)] == [0.01, 0.02, 0.03]
    assert math.isnan(macro[1])  # the partial week inside is a gap, not a point
    page = report_html([r], weekly={r.property: weekly})
    assert "per week" in page and "Weeks with fewer than 7 days stored are left out." in page
    # Nothing full stored yet: the report's own days, not a chart of partial weeks.
    kind, xs, _, _ = rate_series(r, _weekly([0, 3], [nan, 0.05]))
    assert kind == "daily" and xs == sorted(set(r.daily["date"]))


def test_users_basis_chart_says_it_divides_by_summed_daily_users() -> None:
    spec = Spec(**{**SPEC.__dict__, "rate_basis": USERS})
    r = build(spec, daily_rows(WEEK, seed=1), WEEK)
    weekly = _weekly([7, 7], [0.0205, 0.021])
    page = report_html([r], weekly={r.property: weekly})
    assert "per summed daily users" in page
    assert "Weekly rates divide by the sum of daily users" in page
    assert "lower than the de-duplicated per-user rate" in page
    assert "conversions per user" in page.lower()
    sessions = report_html([build(SPEC, daily_rows(WEEK, seed=1), WEEK)],
                           weekly={r.property: weekly})
    assert "summed daily users" not in sessions.split("<footer>")[0]
    assert "conversions per user" in report_table([r])


def test_macro_first_in_table_and_html_spec_order_in_json_and_csv() -> None:
    spec = Spec(client="Acme Outdoor", properties=("properties/123456789",), currency="USD",
                goals=(Goal("sign_up", MICRO, 5.0, ONCE_PER_SESSION), Goal("purchase", MACRO, None),
                       Goal("newsletter", MICRO, 1.25), Goal("lead", MACRO, 40.0)))
    rows = daily_rows(WEEK, seed=1)
    lead = rows[rows["event"] == "purchase"].assign(event="lead")
    r = build(spec, pd.concat([rows, lead], ignore_index=True), WEEK)
    spec_order = ["sign_up", "purchase", "newsletter", "lead"]
    shown = ["purchase", "lead", "sign_up", "newsletter"]
    assert [g.event for g in r.goals] == spec_order
    text = report_table([r])
    assert sorted(shown, key=lambda e: text.index(f"  {e} ")) == shown
    page = report_html([r])
    goals_table = page[page.index("<h3>Goals</h3>"):]
    assert sorted(shown, key=lambda e: goals_table.index(f"<code>{e}</code>")) == shown
    assert [g["event"] for g in json.loads(report_json([r]))["reports"][0]["goals"]] == spec_order
    assert [row["event"] for row in csv.DictReader(io.StringIO(report_csv([r])))] == spec_order


def test_html_previous_range_does_not_wrap() -> None:
    page = report_html([compared()])
    assert 'vs <span class="range">2026-11-02..2026-11-08</span>' in page
    assert ".range { white-space: nowrap; }" in page
