"""The export source's facts equal the definitions computed with pandas from the same event log.

The sandbox's event log (`traffic.event_log`) is written as a GA4 export (`export.writer`),
then read back by `ExportSource` on DuckDB; the expected facts are computed here with plain
pandas from the log itself, independently of the SQL.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ga_sync.export import writer
from ga_sync.export.source import ExportSource, parse_source
from ga_sync.model import (Condition, EventRule, Goal, SessionRule, Spec)
from ga_sync.periods import Period
from ga_sync.report import compute
from ga_sync.sandbox.traffic import event_log, make_traffic

PID = "555000111"
PROP = f"properties/{PID}"
TZ = "Europe/Warsaw"
SITE_GOALS = (("purchase", "macro", None), ("generate_lead", "macro", 150.0),
              ("sign_up", "micro", 12.5), ("add_to_cart", "micro", 4.0),
              ("file_download", "micro", None))
GOALS = (
    Goal("purchase", "macro", None, "once_per_event"),
    Goal("generate_lead", "macro", 150.0, "once_per_session"),
    Goal("sign_up", "micro", 12.5, "once_per_session"),
    Goal("add_to_cart", "micro", 4.0, "once_per_event"),
    Goal("file_download", "micro", None, "once_per_session"),
    Goal("never_happens", "micro", 1.0),
    # page: goals
    Goal("pricing_view", "micro", 2.0, origin=EventRule(
        "page_view", (Condition("page_location", "contains", "/pricing"),))),
    Goal("blog_view", "micro", 1.0, "once_per_session", origin=EventRule(
        "page_view", (Condition("page_location", "regex", r"/BLOG/[a-z-]+$", True),))),
    # from: goals, on extra parameters (strings and an integer compared as a string)
    Goal("pdf_download", "micro", None, origin=EventRule(
        "file_download", (Condition("link_url", "ends_with", ".PDF", True),
                          Condition("page_location", "starts_with", "https://www.")))),
    Goal("lead_form_7", "macro", 99.0, origin=EventRule(
        "generate_lead", (Condition("form_id", "equals", "7"),))),
    # session: goals
    Goal("engaged_5_pages", "micro", 1.0, "once_per_session",
         origin=SessionRule(min_page_views=5)),
    Goal("engaged_3_minutes", "micro", 1.0, origin=SessionRule(min_seconds=180)),
)
PERIOD = Period(date(2025, 3, 10), date(2025, 3, 23))
PREVIOUS = PERIOD.previous()
LINKS = ("https://cdn.example.com/brochure.pdf", "https://cdn.example.com/Price-List.PDF",
         "https://cdn.example.com/setup.exe", "https://cdn.example.com/manual.pdf?v=2")


def spec(goals=GOALS) -> Spec:
    return Spec(client="Export Test", properties=(PROP,), currency="USD", goals=goals)


def traffic() -> dict:
    return make_traffic(SITE_GOALS, seed=7, daily_sessions=600, start=date(2025, 1, 1),
                        property_id=PID)


def add_params(log: pd.DataFrame) -> pd.DataFrame:
    """Extra event parameters the from: goals match: link_url on file_download, form_id (an
    int) on generate_lead; deterministic per event."""
    within = log.groupby("session_id", sort=False).cumcount().to_numpy()  # same per day or range
    key = (log["session_id"].to_numpy() * 31 + within * 7) % 1000
    name = log["event_name"].astype(str).to_numpy()
    link = np.array(LINKS, dtype=object)[key % len(LINKS)]
    log = log.copy()
    log["link_url"] = pd.Series(np.where(name == "file_download", link, None), dtype=object)
    form = np.where(name == "generate_lead", 5 + key % 4, -1)
    log["form_id"] = pd.array(np.where(form >= 0, form, 0), dtype="Int64")
    log.loc[form < 0, "form_id"] = pd.NA
    return log


def full_log(start: date, end: date) -> pd.DataFrame:
    return add_params(event_log(traffic(), start, end, TZ))


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("export")
    writer.write_traffic(traffic(), PREVIOUS.start, PERIOD.end, root, PID, time_zone=TZ,
                         transform=add_params)
    return root


# --------------------------------------------------------------------------- expected


def hits(log: pd.DataFrame, goal: Goal) -> pd.DataFrame:
    """Rows (date, session_id, value) of one goal's events, from the definitions."""
    name = log["event_name"].astype(str)
    if goal.origin is None:
        rows = log[name == goal.event]
    elif isinstance(goal.origin, EventRule):
        mask = name == goal.origin.source
        for c in goal.origin.where:
            col = log[c.field].astype(object)
            mask &= col.map(lambda v, c=c: (not pd.isna(v)) and c.matches(v)).astype(bool)
        rows = log[mask]
    else:
        rule = goal.origin
        per = log.groupby("session_id", sort=True).agg(
            date=("date", "first"), views=("event_name", lambda s: int((s == "page_view").sum())),
            duration=("session_duration", "first"))
        if rule.min_page_views is not None:
            ok = per["views"] >= rule.min_page_views
        else:
            ok = np.round(per["duration"] * 1e6) >= rule.min_seconds * 1e6
        per = per[ok]
        return pd.DataFrame({"date": per["date"].astype(str), "session_id": per.index,
                             "value": 0.0})
    return pd.DataFrame({"date": rows["date"].astype(str).to_numpy(),
                         "session_id": rows["session_id"].to_numpy(),
                         "value": rows["value"].fillna(0.0).to_numpy()})


def expected(s: Spec, period: Period) -> dict:
    log = full_log(period.start, period.end)
    out = {"sessions": log["session_id"].nunique(), "users": log["user_id"].nunique()}
    days = log.groupby(log["date"].astype(str), observed=True).agg(
        sessions=("session_id", "nunique"), users=("user_id", "nunique"))
    out["days"] = {d: (int(r.sessions), int(r.users)) for d, r in days.iterrows()}
    events, daily, tiers = {}, {}, {"macro": set(), "micro": set()}
    for g in s.goals:
        h = hits(log, g)
        if len(h):
            events[g.event] = (len(h), h["session_id"].nunique(), float(h["value"].sum()))
            for d, part in h.groupby("date"):
                daily[(d, g.event)] = (len(part), part["session_id"].nunique(),
                                       float(part["value"].sum()))
        tiers[g.tier] |= set(h["session_id"])
    out.update(events=events, daily=daily,
               tiers={t: float(len(v)) for t, v in tiers.items()})
    return out


def as_dicts(pf) -> dict:
    ev = {e: (int(r["count"]), int(r["sessions"]), float(r["value"]))
          for e, r in pf.events.iterrows()}
    days = {d.strftime("%Y%m%d"): (int(s), int(u))
            for d, s, u in zip(pf.days["date"], pf.days["sessions"], pf.days["users"])}
    daily = {(d.strftime("%Y%m%d"), e): (int(c), int(s), float(v)) for d, e, c, s, v in
             zip(pf.daily["date"], pf.daily["event"], pf.daily["count"],
                 pf.daily["sessions"], pf.daily["value"])}
    return {"sessions": pf.sessions, "users": pf.users, "events": ev, "days": days,
            "daily": daily, "tiers": dict(pf.tier_sessions)}


def assert_facts(pf, want: dict) -> None:
    got = as_dicts(pf)
    assert got["sessions"] == want["sessions"] and got["users"] == want["users"]
    assert got["days"] == want["days"]
    assert set(got["events"]) == set(want["events"])
    for e, (c, s, v) in want["events"].items():
        gc, gs, gv = got["events"][e]
        assert (gc, gs) == (c, s), e
        assert gv == pytest.approx(v, rel=1e-9, abs=1e-6), e
    assert set(got["daily"]) == set(want["daily"])
    for k, (c, s, v) in want["daily"].items():
        gc, gs, gv = got["daily"][k]
        assert (gc, gs) == (c, s) and gv == pytest.approx(v, rel=1e-9, abs=1e-6), k
    assert got["tiers"] == want["tiers"]


# --------------------------------------------------------------------------- tests


def test_facts_equal_pandas_definitions_for_every_goal_kind(export_dir):
    s = spec()
    source = parse_source(f"export:{export_dir}")
    assert isinstance(source, ExportSource) and source.name == "export"
    facts = source.pull(None, s, PROP, [PERIOD, PREVIOUS])
    assert facts.source == "export" and facts.property == PROP
    assert not (facts.thresholded or facts.sampled or facts.other_row)
    assert [pf.period for pf in facts.periods] == [PERIOD, PREVIOUS]
    for pf, period in zip(facts.periods, (PERIOD, PREVIOUS)):
        assert_facts(pf, expected(s, period))
    pf = facts.periods[0]
    ev = pf.events
    # the traffic really tells the kinds and counting methods apart
    assert ev.loc["sign_up", "count"] > ev.loc["sign_up", "sessions"]
    assert 0 < ev.loc["pdf_download", "count"] < ev.loc["file_download", "count"]
    assert 0 < ev.loc["lead_form_7", "count"] < ev.loc["generate_lead", "count"]
    assert ev.loc["pdf_download", "value"] > 0  # a from: goal keeps the source's value
    assert 0 < ev.loc["engaged_5_pages", "count"] < pf.sessions
    assert 0 < ev.loc["engaged_3_minutes", "count"] < pf.sessions
    assert "never_happens" not in ev.index
    codes = [n.code for n in source.warnings_for(PROP)]
    assert codes[:2] == ["exact", "from-definition"] and "incomplete" not in codes


def test_report_numbers_from_export_facts(export_dir):
    """report.compute over the export facts: both counting methods, value: event, rates."""
    s = spec()
    facts = ExportSource(export_dir).pull(None, s, PROP, [PERIOD])
    result = compute(s, facts).to_json()
    want = expected(s, PERIOD)
    goals = {g["event"]: g for g in result["goals"]}
    for g in s.goals:
        c, sess, v = want["events"].get(g.event, (0, 0, 0.0))
        conv = sess if g.counting == "once_per_session" else c
        assert goals[g.event]["conversions"] == conv, g.event
        value = v if g.value is None else conv * g.value
        assert goals[g.event]["value"] == pytest.approx(value, rel=1e-9), g.event
        assert goals[g.event]["rate"] == pytest.approx(conv / want["sessions"], rel=1e-12)
    for t in ("macro", "micro"):
        assert result[t]["session_rate"] == pytest.approx(want["tiers"][t] / want["sessions"])


def test_ndjson_export_gives_the_same_facts(tmp_path):
    s = spec()
    period = Period(PERIOD.start, PERIOD.start + timedelta(days=2))
    writer.write_traffic(traffic(), period.start, period.end, tmp_path, PID, time_zone=TZ,
                         fmt="ndjson", transform=add_params)
    assert sorted(p.suffix for p in (tmp_path / f"analytics_{PID}").iterdir()) == [".ndjson"] * 3
    got = ExportSource(tmp_path).pull(None, s, PROP, [period]).periods[0]
    assert_facts(got, expected(s, period))


def test_intraday_days_are_read_and_flagged_incomplete(tmp_path):
    s = spec(GOALS[:5])
    period = Period(date(2025, 3, 10), date(2025, 3, 13))
    writer.write_traffic(traffic(), period.start, period.end, tmp_path, PID, time_zone=TZ,
                         intraday={"20250312", "20250313"}, transform=add_params)
    folder = tmp_path / f"analytics_{PID}"
    # a day with both tables is read from the daily one (this intraday copy is another day's)
    (folder / "events_intraday_20250311.parquet").write_bytes(
        (folder / "events_intraday_20250312.parquet").read_bytes())
    source = ExportSource(tmp_path)
    layout = source.layout(PROP)
    assert layout.incomplete([period]) == ["20250312", "20250313"]
    q = source.query(s, PROP, [period])
    assert "intraday_20250312" in q.sql and "intraday_20250311" not in q.sql
    facts = source.pull(None, s, PROP, [period])
    assert_facts(facts.periods[0], expected(s, period))
    notes = {n.code: n.message for n in source.warnings_for(PROP)}
    assert "2025-03-12..2025-03-13" in notes["incomplete"]


def test_timestamps_spread_sessions_over_their_duration():
    log = event_log(traffic(), date(2025, 3, 30), date(2025, 3, 30), TZ)  # a DST day
    ts, gsid = writer.timestamps(log, TZ)
    frame = pd.DataFrame({"s": log["session_id"], "ts": ts, "g": gsid,
                          "d": log["session_duration"], "start": log["session_start"],
                          "u": log["user_id"]})
    per = frame.groupby("s").agg(first=("ts", "min"), last=("ts", "max"), d=("d", "first"),
                                 g=("g", "nunique"), gid=("g", "first"), u=("u", "first"))
    assert (per["last"] - per["first"] == np.round(per["d"] * 1e6)).all()
    assert (per["g"] == 1).all()
    assert not per.duplicated(["u", "gid"]).any()
    # the first session starts at local midnight of the day
    from datetime import datetime
    from zoneinfo import ZoneInfo
    midnight = datetime(2025, 3, 30, tzinfo=ZoneInfo(TZ)).timestamp()
    first = frame[frame["start"] == frame["start"].min()]["ts"].min()
    assert first == (midnight + frame["start"].min()) * 1_000_000


def test_export_schema_is_ga4s(export_dir):
    import duckdb
    path = export_dir / f"analytics_{PID}" / "events_20250310.parquet"
    con = duckdb.connect()
    types = dict(con.execute(f"DESCRIBE SELECT * FROM '{path}'").fetchall()[i][:2]
                 for i in range(len(con.execute(f"DESCRIBE SELECT * FROM '{path}'").fetchall())))
    assert types["event_date"] == "VARCHAR" and types["event_timestamp"] == "BIGINT"
    assert types["event_params"].startswith('STRUCT("key" VARCHAR, "value" STRUCT(string_value '
                                            'VARCHAR, int_value BIGINT, float_value DOUBLE, '
                                            'double_value DOUBLE))[]')
    for col in ("user_pseudo_id", "user_id", "device", "geo", "traffic_source", "ecommerce"):
        assert col in types
    keys = {k for (k,) in con.execute(
        f"SELECT DISTINCT unnest(event_params).key FROM '{path}'").fetchall()}
    assert {"ga_session_id", "page_location", "value", "engagement_time_msec", "link_url",
            "form_id"} <= keys
    kinds = con.execute(f"""SELECT count(p.value.int_value), count(p.value.double_value)
        FROM (SELECT unnest(event_params) AS p FROM '{path}') WHERE p.key = 'value'""").fetchone()
    assert kinds[0] > 0 and kinds[1] > 0  # value arrives as int and as double
    revenue = con.execute(f"""SELECT count(*), count(ecommerce.transaction_id)
        FROM '{path}' WHERE event_name = 'purchase'""").fetchone()
    assert revenue[0] == revenue[1] > 0


def test_more_than_62_goals_span_two_mask_words(export_dir):
    """Goals are bits of 62-bit masks: goal 62 on is in the second word, and every goal still
    equals its pandas definition (the same goals, interleaved with goals that never match)."""
    fillers = [Goal(f"nothing_{i:02d}", "micro", 1.0, origin=EventRule(
        "page_view", (Condition("page_location", "equals", f"https://nowhere/{i}"),)))
        for i in range(60)]
    goals = tuple(fillers) + GOALS  # GOALS' event goals are bits 60.. of word 0 and word 1
    s = spec(goals)
    q = ExportSource(export_dir).query(s, PROP, [PERIOD])
    assert "mask1" in q.sql and "BIT_OR(mask1)" in q.sql
    facts = ExportSource(export_dir).pull(None, s, PROP, [PERIOD])
    assert_facts(facts.periods[0], expected(s, PERIOD))
