"""Report numbers on the sandbox equal the definitions computed directly from its event log.

The expected figures are computed here with plain pandas over `traffic.event_log`, the sandbox's
single source of truth, independently of report.py and of the sandbox's query engine.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from google.analytics.admin_v1beta.types import KeyEvent

from ga_sync.clients import connect
from ga_sync.model import Goal, Spec
from ga_sync.data import parse_report
from ga_sync.periods import Period, last_week
from ga_sync.report import report_property
from ga_sync.sources.data_api import build_requests
from ga_sync.sandbox.traffic import event_log, make_traffic

PID = "987654321"
PROP = f"properties/{PID}"
GOALS = (
    Goal("purchase", "macro", None, "once_per_event"),
    Goal("generate_lead", "macro", 150.0, "once_per_session"),
    Goal("sign_up", "micro", 12.5, "once_per_session"),
    Goal("add_to_cart", "micro", 4.0, "once_per_event"),
    Goal("file_download", "micro", None, "once_per_session"),
    Goal("never_happens", "micro", 1.0, "once_per_event"),
)
TZ = "America/New_York"
FIXTURES = Path(__file__).parent / "fixtures" / "real_data_api"


def spec(rate_basis: str, goals=GOALS) -> Spec:
    return Spec(client="Report Test", properties=(PROP,), currency="USD", goals=goals,
                rate_basis=rate_basis)


@pytest.fixture
def conn(ga_env, sandbox, sandbox_state, monkeypatch):
    traffic = make_traffic([(g.event, g.tier, g.value) for g in GOALS if g.event != "never_happens"],
                           seed=11, daily_sessions=1500)
    sandbox_state.add_property(property_id=PID, display_name="Report Test", time_zone=TZ,
                               traffic=traffic)
    return connect()


def expected(sandbox_state, s: Spec, period: Period) -> dict:
    """The contract's definitions, straight from the raw events."""
    log = event_log(sandbox_state.properties[PID].traffic, period.start, period.end, TZ)
    log = log.assign(event_name=log["event_name"].astype(str))
    sessions = log["session_id"].nunique()
    users = log["user_id"].nunique()
    basis = users if s.rate_basis == "users" else sessions
    goals, tiers = [], {"macro": [0.0, 0.0, set()], "micro": [0.0, 0.0, set()]}
    for g in s.goals:
        ev = log[log["event_name"] == g.event]
        conv = ev["session_id"].nunique() if g.counting == "once_per_session" else len(ev)
        value = ev["value"].fillna(0).sum() if g.value is None else conv * g.value
        goals.append({"event": g.event, "tier": g.tier, "conversions": conv,
                      "rate": conv / basis if basis else 0.0, "value": value})
        tiers[g.tier][0] += conv
        tiers[g.tier][1] += value
        tiers[g.tier][2] |= set(ev["session_id"])
    out = {"sessions": sessions, "users": users, "goals": goals}
    for t, (conv, value, with_any) in tiers.items():
        out[t] = {"conversions": conv, "rate": conv / basis, "value": value,
                  "session_rate": len(with_any) / sessions}
    out["total_value"] = out["macro"]["value"] + out["micro"]["value"]
    out["value_per_session"] = out["total_value"] / sessions
    return out


def assert_matches(got: dict, want: dict) -> None:
    assert got["sessions"] == want["sessions"] and got["users"] == want["users"]
    for g, w in zip(got["goals"], want["goals"]):
        assert g["event"] == w["event"] and g["tier"] == w["tier"]
        assert g["conversions"] == w["conversions"], g["event"]
        assert g["rate"] == pytest.approx(w["rate"], rel=1e-12)
        assert g["value"] == pytest.approx(w["value"], rel=1e-9)
    for t in ("macro", "micro"):
        for k in ("conversions", "rate", "session_rate", "value"):
            assert got[t][k] == pytest.approx(want[t][k], rel=1e-9), (t, k)
    assert got["total_value"] == pytest.approx(want["total_value"], rel=1e-9)
    assert got["value_per_session"] == pytest.approx(want["value_per_session"], rel=1e-9)


@pytest.mark.parametrize("basis", ["sessions", "users"])
def test_report_equals_definitions_from_the_event_log(conn, sandbox_state, basis):
    s = spec(basis)
    period = Period(date(2026, 10, 5), date(2026, 10, 18))
    result = report_property(conn, s, PROP, period, today=date(2026, 11, 22))
    got = result.to_json()
    want = expected(sandbox_state, s, period)
    assert_matches(got, want)
    # both counting methods really differ on this traffic, so the test can tell them apart
    log = event_log(sandbox_state.properties[PID].traffic, period.start, period.end, TZ)
    su = log[log["event_name"] == "sign_up"]
    assert len(su) > su["session_id"].nunique()
    assert got["rate_basis"] == basis and got["start"] == "2026-10-05" and got["end"] == "2026-10-18"
    assert 0.01 < got["macro"]["session_rate"] < 0.2


def test_compare_previous_and_change(conn, sandbox_state):
    s = spec("sessions")
    period = Period(date(2026, 11, 9), date(2026, 11, 15))
    result = report_property(conn, s, PROP, period, compare=True, today=date(2026, 11, 22))
    data = result.to_json()
    prev = Period(date(2026, 11, 2), date(2026, 11, 8))
    assert data["previous"]["start"] == "2026-11-02" and data["previous"]["end"] == "2026-11-08"
    assert_matches(data["previous"], expected(sandbox_state, s, prev))
    assert_matches(data, expected(sandbox_state, s, period))
    for g, pg in zip(data["goals"], data["previous"]["goals"]):
        want = (g["conversions"] - pg["conversions"]) / pg["conversions"] if pg["conversions"] else None
        assert g["change"] == pytest.approx(want) if want is not None else g["change"] is None


def test_one_batch_call_per_property(conn, sandbox):
    before = sandbox.stats.snapshot()
    report_property(conn, spec("sessions"), PROP, Period(date(2026, 11, 9), date(2026, 11, 15)),
                    compare=True, today=date(2026, 11, 22))
    after = sandbox.stats.snapshot()
    assert after["data_requests"] - before["data_requests"] == 1
    assert len(build_requests(spec("sessions"), [Period(date(2026, 1, 1), date(2026, 1, 7))])) <= 5


def test_warnings(conn, sandbox_state):
    s = spec("sessions")
    result = report_property(conn, s, PROP, Period(date(2026, 11, 16), date(2026, 11, 21)),
                             today=date(2026, 11, 22))
    codes = {(w.code, w.subject) for w in result.warnings}
    assert ("incomplete", None) in codes
    assert ("never-occurred", "never_happens") in codes
    # only `purchase` is a key event (GA's default): the others are "not marked yet"
    assert ("not-key-event", "sign_up") in codes
    assert not any(c == "not-key-event" and e == "purchase" for c, e in codes)
    # mark sign_up counting once per event while the spec says once per session: a mismatch
    record = sandbox_state.properties[PID]
    record.key_events["50000000000"] = KeyEvent(name=f"{PROP}/keyEvents/50000000000",
                                                event_name="sign_up", counting_method=1,
                                                deletable=True, custom=True)
    result = report_property(conn, s, PROP, Period(date(2026, 11, 2), date(2026, 11, 8)),
                             today=date(2026, 11, 22))
    codes = {(w.code, w.subject) for w in result.warnings}
    assert ("key-event-mismatch", "sign_up") in codes
    assert not any(c == "incomplete" for c, _ in codes)


def test_no_data_property(conn, sandbox_state):
    sandbox_state.add_property(property_id="111222333", display_name="Empty")
    s = Spec(client="Empty", properties=("properties/111222333",), currency="USD", goals=GOALS)
    r = report_property(conn, s, "properties/111222333", Period(date(2026, 11, 9), date(2026, 11, 15)),
                        today=date(2026, 11, 22))
    assert r.sessions == 0 and r.total_value == 0 and r.value_per_session == 0
    assert [w.code for w in r.warnings] == ["no-data"]


def test_parse_real_empty_reports():
    """GA's real answer for a property with no data: no rows, no rowCount (recorded live)."""
    real = json.loads((FIXTURES / "POST_v1beta_properties_535258304_runReport@450bee7.json").read_text())
    parsed = parse_report(real["response"])
    assert parsed.row_count == 0 and all(v == [] for v in parsed.columns.values())
    assert parsed.frame().empty
    batch = json.loads((FIXTURES / "POST_v1beta_properties_535258304_batchRunReports@450bee7.json").read_text())
    for raw in batch["response"]["reports"]:
        assert parse_report(raw).row_count == 0


def test_parse_types_as_names_or_numbers():
    report = {"dimensionHeaders": [{"name": "eventName"}],
              "metricHeaders": [{"name": "eventCount", "type": "TYPE_INTEGER"},
                                {"name": "eventValue", "type": 2}],
              "rows": [{"dimensionValues": [{"value": "a"}], "metricValues": [{"value": "3"}, {"value": "1.5"}]}],
              "rowCount": 1}
    df = parse_report(report).frame()
    assert df.to_dict("records") == [{"eventName": "a", "eventCount": 3, "eventValue": 1.5}]


def test_paging_when_rows_exceed_a_page(conn, sandbox_state, monkeypatch):
    from ga_sync import data
    monkeypatch.setattr(data, "PAGE_LIMIT", 5)  # 14 days x 5 events = 70 daily rows
    s = spec("sessions")
    period = Period(date(2026, 10, 5), date(2026, 10, 18))
    result = report_property(conn, s, PROP, period, today=date(2026, 11, 22))
    log = event_log(sandbox_state.properties[PID].traffic, period.start, period.end, TZ)
    log = log[log["event_name"].astype(str).isin([g.event for g in GOALS])]
    goal_rows = result.daily[result.daily["event"] != ""]
    assert len(goal_rows) == log.groupby(["date", "event_name"], observed=True).ngroups
    assert len(result.daily) - len(goal_rows) == 14  # one totals row per day
    assert result.daily["conversions"].sum() > 0


def test_last_week_is_the_last_complete_iso_week():
    assert last_week(date(2026, 11, 22)) == Period(date(2026, 11, 9), date(2026, 11, 15))  # Sunday
    assert last_week(date(2026, 11, 23)) == Period(date(2026, 11, 16), date(2026, 11, 22))  # Monday
    assert Period(date(2026, 11, 9), date(2026, 11, 15)).previous() == Period(date(2026, 11, 2), date(2026, 11, 8))


def test_warnings_say_why_with_the_live_key_events(conn, sandbox_state, admin_client):
    """Marked today: GA counts none of last month; counted differently: say how."""
    from ga_sync.admin import read_key_events
    from google.analytics.admin_v1beta.types import KeyEvent as KE

    admin_client.create_key_event(parent=PROP, key_event=KE(event_name="sign_up", counting_method=1))
    s = spec("sessions")
    period = Period(date(2026, 10, 5), date(2026, 10, 18))
    live = read_key_events(conn, PROP)
    r = report_property(conn, s, PROP, period, today=date(2026, 11, 22), key_events=live)
    by = {w.subject: w for w in r.warnings}
    assert by["sign_up"].code == "key-event-mismatch" and "only since" in by["sign_up"].message
    assert by["add_to_cart"].code == "not-key-event" and "(yet)" not in by["add_to_cart"].message
    # a key event marked long ago but counting once per event, where the spec says per session
    record = sandbox_state.properties[PID]
    record.key_events["51000000000"] = KE(name=f"{PROP}/keyEvents/51000000000",
                                          event_name="generate_lead", counting_method=1,
                                          deletable=True, custom=True)
    r = report_property(conn, s, PROP, period, today=date(2026, 11, 22),
                        key_events=read_key_events(conn, PROP))
    lead = {w.subject: w for w in r.warnings}["generate_lead"]
    assert lead.code == "key-event-mismatch"
    assert "counts once per event in GA, the spec says once per session" in lead.message


def test_trust_flags_from_response_metadata():
    """Thresholding, '(other)' rows and sampling come from GA's response metadata."""
    from ga_sync.data import ParsedReport
    from ga_sync.report import ReportResult, TierResult, _warnings
    from ga_sync.sources.data_api import to_facts

    columns = {"totals": ("date", "sessions", "totalUsers"),
               "events": ("eventName", "eventCount", "sessions", "eventValue", "keyEvents"),
               "daily": ("date", "eventName", "eventCount", "sessions", "eventValue")}

    def parsed(name, meta):
        return ParsedReport(columns={c: [] for c in columns[name]}, metric_types={},
                            row_count=0, totals=[], metadata=meta, quota=None)
    s = spec("sessions")
    tier = TierResult(0, 0, 0, 0)
    period = Period(date(2026, 11, 2), date(2026, 11, 8))
    result = ReportResult(PROP, "c", period, "USD", "sessions", 0, 0, [], tier, tier, 0, 0)
    reports = {"totals": parsed("totals", {"subjectToThresholding": True}),
               "events": parsed("events", {"dataLossFromOtherRow": True}),
               "daily": parsed("daily", {"samplingMetadatas": [{"samplesReadCount": "10"}]})}
    facts = to_facts(PROP, [period], reports)
    assert (facts.thresholded, facts.other_row, facts.sampled) == (True, True, True)
    codes = [w.code for w in _warnings(result, facts, date(2026, 11, 22), s, 0)]
    assert codes == ["thresholded", "other-row", "sampled", "no-data"]
    clean = to_facts(PROP, [period], {k: parsed(k, {}) for k in reports})
    assert [w.code for w in _warnings(result, clean, date(2026, 11, 22), s, 0)] == ["no-data"]
