"""The DuckDB history store: re-pulls replace rows, weekly numbers equal plain sums, tiers follow
the current spec."""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest
from platformdirs import user_data_dir

from ga_sync.errors import GaSyncError
from ga_sync import settings
from ga_sync.history import Store
from ga_sync.periods import week_window
from ga_sync.model import MACRO, MICRO, USERS, Goal, Spec
from ga_sync.render.report import history_table
from ga_sync.periods import Period
from ga_sync.report import GoalResult, ReportResult, TierResult

P1, P2 = "properties/111", "properties/222"
SPEC = Spec(client="Acme Outdoor", properties=(P1, P2), currency="EUR",
            goals=(Goal("purchase", MACRO, None), Goal("generate_lead", MACRO, 40.0),
                   Goal("sign_up", MICRO, 5.0), Goal("newsletter", MICRO, 1.5)))
TODAY = date(2026, 12, 2)  # a Wednesday: the window ends Sunday 2026-11-29
Row = tuple[date, str, float, float, int, int]


def make_rows(start: date, days: int, seed: int,
              events: tuple[str, ...] | None = None) -> list[Row]:
    """Random but seeded daily rows: some days miss some events, some days have no goal at all."""
    rng = random.Random(seed)
    rows: list[Row] = []
    for i in range(days):
        day = start + timedelta(days=i)
        sessions = rng.randint(500, 3000)
        users = int(sessions * rng.uniform(0.6, 0.9))
        fired = [e for e in (events or tuple(g.event for g in SPEC.goals)) if rng.random() > 0.2]
        if not fired or rng.random() < 0.1:
            rows.append((day, "", 0.0, 0.0, sessions, users))  # traffic, no conversions
            continue
        for e in fired:
            conv = float(rng.randint(1, 60))
            rows.append((day, e, conv, round(conv * rng.uniform(1, 90), 2), sessions, users))
    return rows


def result(rows: list[Row], period: Period, property: str = P1, *, currency: str = "EUR",
           previous: ReportResult | None = None) -> ReportResult:
    """A ReportResult carrying `rows` as its daily frame (headline numbers from plain sums)."""
    daily = pd.DataFrame(rows, columns=["date", "event", "conversions", "value", "sessions",
                                        "users"])
    sessions = sum({r[0]: r[4] for r in rows}.values())
    goals = []
    for g in SPEC.goals:
        conv = sum(r[2] for r in rows if r[1] == g.event)
        val = sum(r[3] for r in rows if r[1] == g.event)
        goals.append(GoalResult(g.event, g.tier, conv, conv / sessions, val, g.counting))
    zero = TierResult(0.0, 0.0, 0.0, 0.0)
    return ReportResult(property, SPEC.client, period, currency, SPEC.rate_basis, sessions,
                        sum({r[0]: r[5] for r in rows}.values()), goals, zero, zero, 0.0, 0.0,
                        previous=previous, daily=daily)


def period(start: date, days: int) -> Period:
    return Period(start, start + timedelta(days=days - 1))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "h" / "history.duckdb") as s:
        yield s


def stored(store: Store) -> dict[tuple[str, date, str], tuple[float, float]]:
    df = store.daily_rows()
    return {(r.property, r.date, r.event): (r.conversions, r.value) for r in df.itertuples()}


# --------------------------------------------------------------------------- saving


def test_saving_twice_does_not_duplicate(store: Store) -> None:
    rows = make_rows(date(2026, 11, 9), 7, seed=1)
    r = result(rows, period(date(2026, 11, 9), 7))
    written = store.save(r, SPEC)
    first = store.counts()
    assert written == sum(1 for x in rows if x[1]) == first["daily_events"]
    assert first["daily_totals"] == 7
    before = stored(store)
    assert store.save(r, SPEC) == written
    assert store.counts() == first
    assert stored(store) == before


def test_overlapping_repull_replaces_values(store: Store) -> None:
    old = make_rows(date(2026, 11, 9), 7, seed=1)
    new = make_rows(date(2026, 11, 12), 7, seed=2)
    store.save(result(old, period(date(2026, 11, 9), 7)), SPEC,
               pulled_at=datetime(2026, 11, 16, tzinfo=timezone.utc))
    store.save(result(new, period(date(2026, 11, 12), 7)), SPEC,
               pulled_at=datetime(2026, 11, 19, tzinfo=timezone.utc))
    expect = {(P1, d, e): (c, v) for d, e, c, v, _, _ in old if e and d < date(2026, 11, 12)}
    expect |= {(P1, d, e): (c, v) for d, e, c, v, _, _ in new if e}
    assert stored(store) == expect  # old rows in the overlap are gone, not just overwritten
    totals = store.daily_totals(P1)
    assert len(totals) == 10
    by_day = {r.date: (r.sessions, r.users) for r in totals.itertuples()}
    for d, _, _, _, s, u in new:
        assert by_day[d] == (s, u)
    pulled = {r.date: r.pulled_at for r in totals.itertuples()}
    assert pulled[date(2026, 11, 9)] == datetime(2026, 11, 16)
    assert pulled[date(2026, 11, 13)] == datetime(2026, 11, 19)


def test_repull_drops_events_that_no_longer_occur(store: Store) -> None:
    p = period(date(2026, 11, 9), 3)
    store.save(result(make_rows(p.start, 3, seed=4), p), SPEC)
    only_purchase = [(d, "purchase", 2.0, 20.0, 100, 80) for d in (p.start, p.end)]
    store.save(result(only_purchase, p), SPEC)
    assert set(stored(store)) == {(P1, d, "purchase") for d in (p.start, p.end)}
    assert len(store.daily_totals(P1)) == 2


def test_days_without_conversions_keep_their_traffic(store: Store) -> None:
    p = period(date(2026, 11, 9), 2)
    rows: list[Row] = [(p.start, "purchase", 3.0, 90.0, 1000, 800), (p.end, "", 0.0, 0.0, 700, 650)]
    store.save(result(rows, p), SPEC)
    assert store.counts() == {"daily_events": 1, "daily_totals": 2}
    week = store.weekly(SPEC, 1, today=date(2026, 11, 16))
    row = week[week["property"] == P1].iloc[0]
    assert (row["days"], row["sessions"], row["users"]) == (2, 1700, 1450)
    assert row["macro_rate"] == pytest.approx(3 / 1700)


def test_result_without_daily_rows_leaves_history_alone(store: Store) -> None:
    r = result(make_rows(date(2026, 11, 9), 7, seed=1), period(date(2026, 11, 9), 7))
    store.save(r, SPEC)
    counts = store.counts()
    assert store.save(replace(r, daily=None), SPEC) == 0
    assert store.counts() == counts
    no_data = replace(r, daily=r.daily.iloc[0:0])  # GA answered: nothing in the period
    assert store.save(no_data, SPEC) == 0
    assert store.counts() == {"daily_events": 0, "daily_totals": 0}


def test_failed_save_changes_nothing(store: Store) -> None:
    p = period(date(2026, 11, 9), 7)
    store.save(result(make_rows(p.start, 7, seed=1), p), SPEC)
    before = stored(store)
    broken_prev = result(make_rows(p.start - timedelta(days=7), 7, seed=2), p.previous())
    broken_prev.daily["conversions"] = "not a number"
    again = result(make_rows(p.start, 7, seed=3), p, previous=broken_prev)
    with pytest.raises(ValueError):
        store.save(again, SPEC)  # the current period was already replaced inside the transaction
    assert stored(store) == before


def test_previous_period_is_saved_too(store: Store) -> None:
    prev = result(make_rows(date(2026, 11, 2), 7, seed=8), period(date(2026, 11, 2), 7))
    cur = result(make_rows(date(2026, 11, 9), 7, seed=9), period(date(2026, 11, 9), 7),
                 previous=prev)
    store.save(cur, SPEC)
    days = set(store.daily_totals(P1)["date"])
    assert days == {date(2026, 11, 2) + timedelta(days=i) for i in range(14)}


def test_history_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "history.duckdb"
    r = result(make_rows(date(2026, 11, 9), 7, seed=1), period(date(2026, 11, 9), 7))
    with Store(path) as s:
        s.save(r, SPEC)
        counts = s.counts()
    with Store(path) as s:
        assert s.counts() == counts


def test_default_store_path_is_in_user_data_dir() -> None:
    assert settings.store_path({}) == Path(user_data_dir("ga-sync")) / "history.duckdb"


# --------------------------------------------------------------------------- weekly


def plain_weekly(rows_by_prop: dict[str, list[Row]], spec: Spec,
                 mondays: list[date]) -> dict[tuple[str, date], dict[str, float]]:
    """The weekly numbers the slow obvious way: loops and dicts over the daily rows."""
    tier = {g.event: g.tier for g in spec.goals}
    out: dict[tuple[str, date], dict[str, float]] = {}
    for prop, rows in rows_by_prop.items():
        traffic: dict[date, tuple[int, int]] = {}
        acc: dict[date, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        for d, e, c, v, s, u in rows:
            traffic[d] = (s, u)
            if e in tier:
                acc[d - timedelta(days=d.weekday())][tier[e] + "_conversions"] += c
                acc[d - timedelta(days=d.weekday())][tier[e] + "_value"] += v
        for m in mondays:
            days = [d for d in traffic if m <= d <= m + timedelta(days=6)]
            sessions = sum(traffic[d][0] for d in days)
            users = sum(traffic[d][1] for d in days)
            basis = users if spec.rate_basis == USERS else sessions
            w = {"days": len(days), "sessions": sessions, "users": users}
            for t in (MACRO, MICRO):
                w[f"{t}_conversions"] = acc[m][f"{t}_conversions"]
                w[f"{t}_value"] = acc[m][f"{t}_value"]
                w[f"{t}_rate"] = w[f"{t}_conversions"] / basis if basis else math.nan
            w["total_value"] = w["macro_value"] + w["micro_value"]
            out[(prop, m)] = w
    return out


def check_weekly(df: pd.DataFrame, expect: dict[tuple[str, date], dict[str, float]]) -> None:
    assert len(df) == len(expect)
    for row in df.to_dict("records"):
        want = expect[(row["property"], row["week"])]
        for key, value in want.items():
            if isinstance(value, float) and math.isnan(value):
                assert math.isnan(row[key]), key
            else:
                assert row[key] == pytest.approx(value), (row["property"], row["week"], key)


@pytest.mark.parametrize("basis", ["sessions", USERS])
def test_weekly_equals_plain_python(store: Store, basis: str) -> None:
    spec = replace(SPEC, rate_basis=basis)
    rows = {P1: make_rows(date(2026, 10, 26), 35, seed=11),
            P2: make_rows(date(2026, 11, 4), 20, seed=12)}
    # P1 first pulled with other numbers, then re-pulled over them: only the re-pull counts.
    store.save(result(make_rows(date(2026, 11, 1), 10, seed=99), period(date(2026, 11, 1), 10)),
               spec)
    store.save(result(rows[P1], period(date(2026, 10, 26), 35)), spec)
    # The current, incomplete week is outside the window.
    store.save(result(make_rows(date(2026, 11, 30), 2, seed=13), period(date(2026, 11, 30), 2)),
               spec)
    store.save(result(rows[P2], period(date(2026, 11, 4), 20), P2), spec)
    weeks = 6
    mondays = week_window(weeks, TODAY)
    assert mondays[0] == date(2026, 10, 19) and mondays[-1] == date(2026, 11, 23)
    df = store.weekly(spec, weeks, today=TODAY)
    assert list(df["property"].unique()) == [P1, P2]
    assert all(w.weekday() == 0 for w in df["week"])
    check_weekly(df, plain_weekly(rows, spec, mondays))
    empty = df[(df["property"] == P1) & (df["week"] == date(2026, 10, 19))].iloc[0]
    assert empty["days"] == 0 and math.isnan(empty["macro_rate"])


def test_weekly_follows_retiering_in_the_spec(store: Store) -> None:
    rows = make_rows(date(2026, 11, 2), 28, seed=21)
    store.save(result(rows, period(date(2026, 11, 2), 28)), SPEC)
    before = store.weekly(SPEC, 4, today=TODAY)
    retiered = replace(SPEC, goals=tuple(replace(g, tier=MACRO) if g.event == "sign_up" else g
                                         for g in SPEC.goals))
    after = store.weekly(retiered, 4, today=TODAY)
    check_weekly(after, plain_weekly({P1: rows}, retiered, week_window(4, TODAY)) |
                 plain_weekly({P2: []}, retiered, week_window(4, TODAY)))
    moved = before["macro_conversions"] < after["macro_conversions"]
    assert moved[before["property"] == P1].all()
    fewer = after["micro_conversions"] < before["micro_conversions"]
    assert fewer[before["property"] == P1].all()
    assert list(after["total_value"]) == pytest.approx(list(before["total_value"]))
    # An event dropped from the spec drops out of the weekly numbers.
    dropped = replace(SPEC, goals=tuple(g for g in SPEC.goals if g.event != "newsletter"))
    check_weekly(store.weekly(dropped, 4, today=TODAY),
                 plain_weekly({P1: rows, P2: []}, dropped, week_window(4, TODAY)))


def test_weekly_rejects_no_weeks(store: Store) -> None:
    with pytest.raises(GaSyncError, match="weeks must be at least 1"):
        store.weekly(SPEC, 0)


def test_history_table_renders_weeks_rounded(store: Store) -> None:
    rows = make_rows(date(2026, 11, 23), 7, seed=5)
    store.save(result(rows, period(date(2026, 11, 23), 7)), SPEC)
    df = store.weekly(SPEC, 2, today=TODAY)
    text = history_table(df, SPEC)
    assert "\x1b" not in text
    w = df[(df["property"] == P1) & (df["week"] == date(2026, 11, 23))].iloc[0]
    assert w["days"] == 7
    line = next(ln for ln in text.splitlines() if ln.strip().startswith("2026-11-23"))
    assert f"{w['macro_rate'] * 100:.2f}%" in line and f"{w['micro_rate'] * 100:.2f}%" in line
    assert f"{w['total_value']:,.2f}" in line and f"{w['sessions']:,}" in line
    empty = next(ln for ln in text.splitlines() if ln.strip().startswith("2026-11-16"))
    assert empty.split()[1:3] == ["0", "-"]
    assert text.count("no history stored") == 1  # P2 has none


# --------------------------------------------------------------------------- many specs, one query


def test_weekly_many_equals_weekly_per_spec(store: Store) -> None:
    """One query for many specs gives each spec's rows, in order, with its client: the same
    numbers as `weekly` spec by spec, even for a property two specs share with other tiers,
    currency and rate basis."""
    other = Spec(client="Other Client", properties=(P2, "properties/333"), currency="USD",
                 rate_basis=USERS, goals=(Goal("sign_up", MACRO, 5.0), Goal("purchase", MICRO, None)))
    store.save(result(make_rows(date(2026, 10, 20), 40, seed=31), period(date(2026, 10, 20), 40)),
               SPEC)
    store.save(result(make_rows(date(2026, 10, 28), 30, seed=32), period(date(2026, 10, 28), 30),
                      P2, currency="USD"), other)
    specs = [SPEC, other, replace(SPEC, client="Again")]
    many = store.weekly_many(specs, 5, today=TODAY)
    assert list(many.columns[:2]) == ["property", "client"]
    one_by_one = pd.concat([store.weekly(s, 5, today=TODAY).assign(client=s.client)
                            for s in specs], ignore_index=True)
    pd.testing.assert_frame_equal(many, one_by_one[list(many.columns)], check_exact=True)
    assert list(many["client"].unique()) == ["Acme Outdoor", "Other Client", "Again"]
    assert len(many) == (2 + 2 + 2) * 5
    assert store.weekly_many([], 5, today=TODAY).empty
    with pytest.raises(GaSyncError, match="weeks must be at least 1"):
        store.weekly_many(specs, 0)


OLD_KEYED_SCHEMA = """
CREATE TABLE meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL);
CREATE TABLE daily_events (property VARCHAR NOT NULL, date DATE NOT NULL, event VARCHAR NOT NULL,
    tier VARCHAR NOT NULL, conversions DOUBLE NOT NULL, value DOUBLE NOT NULL,
    sessions BIGINT NOT NULL, users BIGINT NOT NULL, currency VARCHAR NOT NULL,
    pulled_at TIMESTAMP NOT NULL, PRIMARY KEY (property, date, event));
CREATE TABLE daily_totals (property VARCHAR NOT NULL, date DATE NOT NULL,
    sessions BIGINT NOT NULL, users BIGINT NOT NULL, currency VARCHAR NOT NULL,
    pulled_at TIMESTAMP NOT NULL, PRIMARY KEY (property, date));
INSERT INTO meta VALUES ('schema_version', '1');
"""


def test_store_of_an_older_version_loses_its_key_index_not_its_rows(tmp_path: Path) -> None:
    import duckdb

    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    con.execute(OLD_KEYED_SCHEMA)
    con.close()
    rows = make_rows(date(2026, 11, 2), 21, seed=41)
    with Store(path) as s:  # opened for writing: the index goes, once
        s.save(result(rows, period(date(2026, 11, 2), 21)), SPEC)
        before = stored(s)
    con = duckdb.connect(str(path), read_only=True)
    keys = con.execute("SELECT count(*) FROM duckdb_constraints() WHERE constraint_type = "
                       "'PRIMARY KEY' AND table_name LIKE 'daily%'").fetchone()
    con.close()
    assert keys == (0,)
    with Store(path) as s:
        s.save(result(rows, period(date(2026, 11, 2), 21)), SPEC)
        assert stored(s) == before
        counts = s.counts()
    assert counts["daily_totals"] == 21
    with Store(path, read_only=True) as s:
        assert stored(s) == before


def test_store_stays_compact_across_repulls(tmp_path: Path) -> None:
    """Re-pulling the same days replaces rows without growing the file (no key index to
    rewrite, a checkpoint when the writer closes; no DuckDB log left behind)."""
    path = tmp_path / "h.duckdb"
    sizes = []
    for k in range(6):
        with Store(path) as s:
            for prop in (P1, P2):
                s.save(result(make_rows(date(2026, 6, 1), 180, seed=50 + k), period(date(2026, 6, 1), 180),
                              prop), SPEC)
        assert not Path(str(path) + ".wal").exists()
        sizes.append(path.stat().st_size)
    assert max(sizes[1:]) <= 1.1 * sizes[1], sizes


@pytest.mark.parametrize("exc", [
    OSError("IO Error: Could not set lock on file: Conflicting lock is held"),
    IsADirectoryError(21, "Is a directory"),
    PermissionError(13, "Permission denied"),
    OSError(28, "No space left on device"),
    OSError("IO Error: The file exists, but it is not a valid DuckDB database file!"),
    OSError("something else"),
])
def test_store_errors_name_no_cli_flag(tmp_path: Path, exc: OSError) -> None:
    """The library says "name another store"; only the CLI knows the flag is --store."""
    from ga_sync.history import store_error
    for content in (b"root:x:0:0:root:/root:/bin/bash\n", b"\0" * 8 + b"DUCK" + b"\0" * 8):
        path = tmp_path / "h.duckdb"
        path.write_bytes(content)
        message = str(store_error(path, exc))
        assert "--" not in message.split(" (")[0], message
        assert str(path) in message


def test_move_aside_only_for_a_duckdb_file(tmp_path: Path) -> None:
    """DuckDB files carry b"DUCK" at byte 8: only those are a broken store to move aside."""
    other = tmp_path / "passwd"
    other.write_text("root:x:0:0:root:/root:/bin/bash\n")
    with pytest.raises(GaSyncError) as info:
        Store(other, read_only=True)
    assert "not a ga-sync history store" in str(info.value)
    assert f"mv {other}" not in str(info.value) and "Move it aside" not in str(info.value)

    broken = tmp_path / "history.duckdb"
    with Store(broken) as s:
        s.counts()
    broken.write_bytes(broken.read_bytes()[:5000])
    with pytest.raises(GaSyncError) as info:
        Store(broken, read_only=True)
    assert f"Move it aside (e.g. mv {broken} {broken}.bad)" in str(info.value)


def test_missing_store_message_names_no_flag(tmp_path: Path) -> None:
    with pytest.raises(GaSyncError) as info:
        Store(tmp_path / "none.duckdb", read_only=True)
    assert "no history store at" in str(info.value) and "--" not in str(info.value)
