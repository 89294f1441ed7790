"""The report is computed from source-neutral facts: any source that yields them gets the same
numbers, warnings and daily rows; the Data API source is one such source.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from ga_sync.facts import KEY_EVENTS, PeriodFacts, ReportFacts, check
from ga_sync.model import Goal, Spec
from ga_sync.periods import Period
from ga_sync.report import report_property

PROP = "properties/42"
WEEK = Period(date(2026, 11, 9), date(2026, 11, 15))
SPEC = Spec(client="Facts", properties=(PROP,), currency="EUR", goals=(
    Goal("purchase", "macro", None, "once_per_event"),
    Goal("sign_up", "micro", 10.0, "once_per_session"),
    Goal("download", "micro", 2.0, "once_per_event"),
))
PACKAGE = Path(__file__).resolve().parent.parent / "ga_sync"


def period_facts(period: Period, *, key_events: bool) -> PeriodFacts:
    events = pd.DataFrame({"count": [4, 9], "sessions": [3, 6], "value": [400.0, 0.0]},
                          index=pd.Index(["purchase", "sign_up"], name="event"))
    if key_events:
        events[KEY_EVENTS] = [4.0, 0.0]
    days = pd.DataFrame({"date": [period.start, period.start.replace(day=period.start.day + 1)],
                         "sessions": [60, 40], "users": [50, 30]})
    daily = pd.DataFrame({"date": [period.start, period.start, days["date"][1]],
                          "event": ["purchase", "sign_up", "sign_up"],
                          "count": [4, 5, 4], "sessions": [3, 4, 2],
                          "value": [400.0, 0.0, 0.0]})
    return PeriodFacts(period=period, sessions=100, users=70,
                       tier_sessions={"macro": 3.0, "micro": 6.0},
                       events=events, days=days, daily=daily)


class FakeSource:
    """A source that is not the Data API (what a BigQuery export source will look like)."""

    name = "fake"

    def __init__(self, *, key_events: bool = False, currency: str = "EUR") -> None:
        self.key_events, self.currency = key_events, currency
        self.calls: list[tuple[str, list[Period]]] = []

    def pull(self, conn: object, spec: Spec, property: str,
             periods: Sequence[Period]) -> ReportFacts:
        self.calls.append((property, list(periods)))
        return ReportFacts(property=property, currency=self.currency, time_zone="Europe/Paris",
                           periods=[period_facts(p, key_events=self.key_events) for p in periods],
                           source=self.name)


def test_numbers_come_from_the_facts_of_any_source():
    source = FakeSource()
    r = report_property(None, SPEC, PROP, WEEK, today=date(2026, 11, 30), source=source)
    assert source.calls == [(PROP, [WEEK])]
    by = {g.event: g for g in r.goals}
    assert (r.sessions, r.users) == (100, 70)
    assert (by["purchase"].conversions, by["purchase"].value) == (4, 400.0)
    assert (by["sign_up"].conversions, by["sign_up"].value) == (6, 60.0)  # once per session
    assert (by["download"].conversions, by["download"].value) == (0, 0.0)
    assert (r.macro.conversions, r.micro.conversions) == (4, 6)
    assert (r.macro.session_rate, r.micro.session_rate) == (0.03, 0.06)
    assert r.total_value == 460.0 and r.value_per_session == 4.6
    # no key-event counts from this source: no warning about GA's own counts
    assert [w.code for w in r.warnings] == ["never-occurred"]
    daily = r.daily
    assert list(daily.columns) == ["date", "event", "conversions", "value", "sessions",
                                   "users", "currency"]
    goal_rows = daily[daily["event"] != ""]
    assert goal_rows["conversions"].tolist() == [4.0, 4.0, 2.0]
    assert goal_rows["value"].tolist() == [400.0, 40.0, 20.0]
    assert daily[daily["event"] == ""]["sessions"].tolist() == [60, 40]


def test_key_event_counts_are_used_only_when_the_source_has_them():
    r = report_property(None, SPEC, PROP, WEEK, today=date(2026, 11, 30),
                        source=FakeSource(key_events=True))
    assert {w.code for w in r.warnings} == {"never-occurred", "not-key-event"}


def test_compare_pulls_both_periods_once_and_the_currency_rule_holds():
    source = FakeSource(currency="USD")
    r = report_property(None, SPEC, PROP, WEEK, compare=True, today=date(2026, 11, 30),
                        source=source, fx={("USD", "EUR"): 0.5})
    assert source.calls == [(PROP, [WEEK, WEEK.previous()])]
    assert r.previous is not None and r.previous.period == WEEK.previous()
    purchase = r.goals[0]
    assert (purchase.value, purchase.fx_rate, r.property_currency) == (200.0, 0.5, "USD")


def test_check_refuses_facts_of_the_wrong_shape():
    facts = FakeSource().pull(None, SPEC, PROP, [WEEK])
    check(facts, [WEEK])
    with pytest.raises(ValueError, match="not for"):
        check(facts, [WEEK, WEEK.previous()])
    broken = period_facts(WEEK, key_events=False)
    broken = PeriodFacts(**{**broken.__dict__, "days": broken.days.drop(columns="users")})
    with pytest.raises(ValueError, match="days table .* no users column"):
        check(ReportFacts(property=PROP, periods=[broken]), [WEEK])


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


def test_report_and_audit_reach_the_data_api_only_through_the_door():
    """report.py knows no source; audit reads through data.py, never report's privates; only
    data.py posts on the Data API client's HTTP session."""
    assert "ga_sync.report" not in _imports(PACKAGE / "audit" / "facts.py")
    assert not {"ga_sync.clients", "ga_sync.data"} & _imports(PACKAGE / "report.py")
    for path in PACKAGE.rglob("*.py"):
        if path.name != "data.py" and "sandbox" not in path.parts:
            assert "data()._transport" not in path.read_text(encoding="utf-8"), path
