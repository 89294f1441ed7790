"""A local DuckDB store of every report pull as daily rows, so trends need no new GA queries.

Design
------
Two tables, each with a key that a re-pull can only replace, never duplicate:

  daily_events  (property, date, event) -> tier, conversions, value, sessions, users,
                currency, pulled_at
                One row per goal event per day that the pull returned. `tier` is the tier at
                the time of the pull, kept for the record only: `weekly()` re-tiers with the
                *current* spec, so moving a goal from micro to macro moves its history too.
                `sessions`/`users` are the property's totals for that day, as in
                `ReportResult.daily`.
  daily_totals  (property, date) -> sessions, users, currency, pulled_at
                The day's traffic, one row per day, so the rate denominators do not depend on
                whether any goal fired that day. Filled from the distinct days of
                `ReportResult.daily`; a daily row whose event is '' (or missing) records a day
                with traffic but no conversions and goes to this table only.

Each event row keeps the currency its value is in: the spec's, or the property's for an event
value (`value: event`) that no --fx rate converted; `weekly()` sums only values in the spec's
currency, so money in two currencies is never added up.

Every failure to open, read or write the file is a StoreError naming the file and the cause
(locked by another process, corrupt or not a DuckDB file, a folder, no permission). `history`
opens the store read-only, retrying briefly while a report holds the write lock; a report holds
it only while it saves.

`save()` runs in one transaction: for the result's date range it deletes the property's
`daily_events` rows of the result's goal events and its `daily_totals` rows, then inserts the
new ones (one row per key: the incoming rows are grouped by day and event first). That
transaction is what keeps the keys unique; the tables have no PRIMARY KEY index, because
DuckDB's index of (property, date, event) was 95% of the file and doubled it on re-pulls
(20 MB -> 39 MB for 180,000 rows, against 3-4 MB without it; bench/history_query.py). A
store written by an older ga-sync has the index: it is dropped, once, the first time the
store is opened for writing. A store that was written to is checkpointed when it is closed. A result that carries `previous` (a `--compare previous` pull) saves that period too.
Days of the range that the pull did not return are left without rows (no data, not zero); a
result whose `daily` is None (built without daily rows) is not saved at all, so it cannot wipe
history it knows nothing about.

Weekly numbers are ISO weeks (Monday start). Sessions and users are sums of the daily totals:
users are therefore summed per day, so someone visiting on two days counts twice; GA's
de-duplicated weekly users are not stored. Rates are conversions / that sum by the spec's
`rate_basis`, NaN for a week with no stored traffic.
"""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from ga_sync import settings
from ga_sync.errors import GaSyncError, StoreError
from ga_sync.model import MACRO, MICRO, USERS, Spec
from ga_sync.periods import week_window

if TYPE_CHECKING:
    from collections.abc import Sequence

    import duckdb
    import numpy as np
    import pandas as pd

    from ga_sync.report import ReportResult

SCHEMA_VERSION = 1
WEEKLY_COLUMNS = ("property", "week", "days", "sessions", "users", "macro_conversions",
                  "micro_conversions", "macro_rate", "micro_rate", "macro_value", "micro_value",
                  "total_value", "currency")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL);
CREATE TABLE IF NOT EXISTS daily_events (
    property    VARCHAR   NOT NULL,
    date        DATE      NOT NULL,
    event       VARCHAR   NOT NULL,
    tier        VARCHAR   NOT NULL,
    conversions DOUBLE    NOT NULL,
    value       DOUBLE    NOT NULL,
    sessions    BIGINT    NOT NULL,
    users       BIGINT    NOT NULL,
    currency    VARCHAR   NOT NULL,
    pulled_at   TIMESTAMP NOT NULL
);
CREATE TABLE IF NOT EXISTS daily_totals (
    property  VARCHAR   NOT NULL,
    date      DATE      NOT NULL,
    sessions  BIGINT    NOT NULL,
    users     BIGINT    NOT NULL,
    currency  VARCHAR   NOT NULL,
    pulled_at TIMESTAMP NOT NULL
);
"""


def store_error(path: str | Path, exc: BaseException, doing: str = "open") -> StoreError:
    """A StoreError naming the file, the real cause and what to do about it.

    DuckDB says only "IO Error: ..."; the cause is in its text: a lock another process holds,
    a file that is not a DuckDB database (corrupt, truncated, some other file), a folder, or
    no permission to write. Moving a file aside is advised only for a DuckDB file (a broken
    store); any other file is someone's data, and the advice is to name a store instead.
    """
    from ga_sync.redact import excerpt

    text = str(exc)
    low = text.lower()
    detail = excerpt(text, 160)
    if "lock" in low and ("conflicting" in low or "could not set" in low):
        why = ("another process holds it open for writing (a ga-sync report still saving, or "
               "another program using the file). Wait for it and run again, or name another "
               "store")
    elif isinstance(exc, IsADirectoryError) or "is a directory" in low:
        why = "it is a folder, not a file: name a file as the store's path, e.g. history.duckdb"
    elif isinstance(exc, PermissionError) or "permission denied" in low or "read-only" in low:
        why = ("no permission to write there (or a read-only file system): fix the folder's "
               "permissions or name a store at a writable path")
    elif isinstance(exc, OSError) and getattr(exc, "errno", None) == 28 or "no space" in low:
        why = "the disk is full: free some space, or name a store on another disk"
    elif ("not a valid duckdb" in low or "could not read enough bytes" in low
          or "corrupt" in low or "checksum" in low or "serializ" in low
          or "catalog" in low or "does not exist" in low and "table" in low):
        if is_duckdb_file(path):
            why = (f"the file is a DuckDB database that cannot be read as a ga-sync history "
                   f"store (corrupt or truncated). Move it aside (e.g. mv {path} {path}.bad); "
                   "the next report starts a new store")
        else:
            why = ("the file is not a ga-sync history store (not a DuckDB database): name the "
                   "path of a history store, or of a new file")
    elif is_duckdb_file(path):
        why = "name another store, or move the file aside"
    else:
        why = "name another store"
    return StoreError(f"cannot {doing} the history store {path}: {why}. ({detail})")


def is_duckdb_file(path: str | Path) -> bool:
    """Whether `path` looks like a DuckDB database: its main header carries b"DUCK" at byte 8
    (https://duckdb.org/docs/internals/storage). False when it cannot be read."""
    try:
        with open(path, "rb") as f:
            return f.read(12)[8:12] == b"DUCK"
    except OSError:
        return False


class Store:
    """The history database. Use as a context manager so the file lock is released.

    `read_only` (for `ga-sync history`) takes no write lock, so it opens while no report is
    saving; DuckDB refuses it while another process holds the write lock, so it retries for
    up to `wait` seconds (a report holds the lock only while it saves). Every failure to open,
    read or write is a StoreError that names the file and the cause.
    """

    def __init__(self, path: str | Path | None = None, *, read_only: bool = False,
                 wait: float = 0.0) -> None:
        import duckdb

        # no path: the default store in the user data folder (no environment read here)
        self.path = settings.store_path({}) if path is None else path
        self.read_only = read_only
        self.written = False  # saved something: checkpointed on close
        target = str(self.path)
        if target != ":memory:" and not read_only:
            try:
                Path(target).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise store_error(target, exc) from None
        if read_only and target != ":memory:" and not Path(target).exists():
            raise StoreError(f"no history store at {target}: run 'ga-sync report' first (it "
                             "keeps every pull there), or name the store's path")
        self.con: duckdb.DuckDBPyConnection = _connect(target, read_only, wait)
        try:
            self._check_schema(target)
        except duckdb.Error as exc:
            self.con.close()
            raise store_error(target, exc) from None

    def _check_schema(self, target: str) -> None:
        if not self.read_only:
            self.con.execute(_SCHEMA)
        tables = {r[0] for r in self.con.execute(
            "SELECT table_name FROM information_schema.tables").fetchall()}
        if not {"meta", "daily_events", "daily_totals"} <= tables:
            self.con.close()
            raise StoreError(f"{target} is a DuckDB file but not a ga-sync history store (no "
                             "daily_events table): name the store's path instead")
        row = self.con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is None and not self.read_only:
            self.con.execute("INSERT INTO meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)])
        elif row is not None and int(row[0]) > SCHEMA_VERSION:
            self.con.close()
            raise StoreError(f"the history store {target} was written by a newer ga-sync "
                             f"(schema {row[0]}, this one knows {SCHEMA_VERSION}): upgrade "
                             "ga-sync.")
        if not self.read_only:
            self._drop_key_indexes()

    def _drop_key_indexes(self) -> None:
        """Rebuild, once, tables an older ga-sync created with a PRIMARY KEY (see the module
        docstring: the index made the file 5-9x larger). Same columns and rows, so the schema
        version stays 1 and an older ga-sync still reads and writes the store."""
        keyed = [r[0] for r in self.con.execute(
            "SELECT DISTINCT table_name FROM duckdb_constraints() WHERE constraint_type = "
            "'PRIMARY KEY' AND table_name IN ('daily_events', 'daily_totals')").fetchall()]
        if not keyed:
            return
        self.con.begin()
        try:
            for table in keyed:
                self.con.execute(f"ALTER TABLE {table} RENAME TO {table}_keyed")
            self.con.execute(_SCHEMA)
            for table in keyed:
                self.con.execute(f"INSERT INTO {table} SELECT * FROM {table}_keyed ORDER BY ALL")
                self.con.execute(f"DROP TABLE {table}_keyed")
            self.con.commit()
        except BaseException:
            self.con.rollback()
            raise
        self.compact()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Close the file; a store that was written to is checkpointed first (`compact`)."""
        if self.written:
            self.compact()
            self.written = False
        try:
            self.con.close()
        except Exception:  # noqa: BLE001 - closing a broken connection must not hide the cause
            pass

    # ----------------------------------------------------------------------- writing

    def save(self, result: ReportResult, spec: Spec, *, pulled_at: datetime | None = None) -> int:
        """Record a pull's daily rows, replacing what the store had for those days and events.

        Returns the number of event rows written (the previous period's included).
        """
        pulled = (pulled_at or datetime.now(timezone.utc)).astimezone(timezone.utc)
        pulled = pulled.replace(tzinfo=None)
        results = [x for x in (result, result.previous) if x is not None and x.daily is not None]
        import duckdb

        written = 0
        try:
            self.con.begin()
            try:
                for r in results:
                    written += self._save_one(r, spec, pulled)
                self.con.commit()
            except BaseException:
                try:
                    self.con.rollback()
                except duckdb.Error:
                    pass
                raise
        except duckdb.Error as exc:
            raise store_error(self.path, exc, "write to") from None
        self.written = True
        return written

    def compact(self) -> None:
        """Fold DuckDB's write-ahead log into the file and free the blocks of replaced rows.

        `close` calls it after saves (explicitly, whatever DuckDB's checkpoint-on-shutdown
        setting says). Best effort: the rows are committed already, so a checkpoint DuckDB
        refuses (another transaction running in this process) is left to the next one.
        """
        import duckdb

        if self.read_only or str(self.path) == ":memory:":
            return
        try:
            self.con.execute("CHECKPOINT")
        except duckdb.Error:
            pass

    def _save_one(self, r: ReportResult, spec: Spec, pulled: datetime) -> int:
        import pandas as pd

        events, totals = _split_daily(r, spec)
        goal_events = sorted({g.event for g in r.goals} | set(events["event"]))
        start, end = r.period.start, r.period.end
        self.con.execute("DELETE FROM daily_events WHERE property = ? AND date BETWEEN ? AND ? "
                         "AND list_contains(?::VARCHAR[], event)",
                         [r.property, start, end, goal_events])
        self.con.execute("DELETE FROM daily_totals WHERE property = ? AND date BETWEEN ? AND ?",
                         [r.property, start, end])
        events = events[(events["date"] >= start) & (events["date"] <= end)]
        totals = totals[(totals["date"] >= start) & (totals["date"] <= end)]
        # An event row keeps the currency of its value (the property's, when no --fx rate
        # converted an event value); `weekly` sums only values in the spec's currency.
        if "currency" in events:
            events = events.assign(currency=events["currency"].fillna(r.currency))
        else:
            events = events.assign(currency=r.currency)
        events = events.assign(property=r.property, pulled_at=pulled)
        totals = totals.assign(property=r.property, currency=r.currency, pulled_at=pulled)
        self.con.register("_incoming_events", pd.DataFrame(events))
        self.con.register("_incoming_totals", pd.DataFrame(totals))
        try:
            self.con.execute(
                "INSERT INTO daily_events SELECT property, date, event, tier, conversions, value, "
                "sessions, users, currency, pulled_at FROM _incoming_events")
            self.con.execute(
                "INSERT INTO daily_totals SELECT property, date, sessions, users, currency, "
                "pulled_at FROM _incoming_totals")
        finally:
            self.con.unregister("_incoming_events")
            self.con.unregister("_incoming_totals")
        return len(events)

    # ----------------------------------------------------------------------- reading

    def counts(self) -> dict[str, int]:
        """Rows per table: a quick check that re-pulls replace instead of piling up."""
        out: dict[str, int] = {}
        for table in ("daily_events", "daily_totals"):
            row = self.con.execute(f"SELECT count(*) FROM {table}").fetchone()
            out[table] = int(row[0]) if row else 0
        return out

    def daily_rows(self, property: str | None = None) -> pd.DataFrame:
        """Every stored event row (of one property), oldest first: for inspection and tests."""
        where, params = ("WHERE property = ?", [property]) if property else ("", [])
        df = self.con.execute(f"SELECT * FROM daily_events {where} ORDER BY property, date, event",
                              params).df()
        return _dates(df, "date")

    def daily_totals(self, property: str | None = None) -> pd.DataFrame:
        """Every stored day's traffic (of one property), oldest first."""
        where, params = ("WHERE property = ?", [property]) if property else ("", [])
        df = self.con.execute(f"SELECT * FROM daily_totals {where} ORDER BY property, date",
                              params).df()
        return _dates(df, "date")

    def weekly(self, spec: Spec, weeks: int, today: date | None = None) -> pd.DataFrame:
        """Per property of the spec and ISO week: traffic, macro/micro conversions, rates, value.

        Tiers come from the current spec, so history follows a re-tiered goal; events no longer
        in the spec are left out. Every week of the window has a row (`days` = 0 when nothing
        is stored for it), properties in spec order, weeks oldest first.
        """
        return self.weekly_many([spec], weeks, today)[list(WEEKLY_COLUMNS)]

    def weekly_many(self, specs: Sequence[Spec], weeks: int,
                    today: date | None = None) -> pd.DataFrame:
        """`weekly` for many specs in one query: the rows of each spec in turn, with `client`.

        One query instead of one per spec (50 specs: 6 ms instead of ~300 ms). A property in
        two specs gets each spec's rows, with that spec's tiers, currency and rate basis.
        Columns: property, client, then the rest of WEEKLY_COLUMNS.
        """
        import duckdb

        if weeks < 1:
            raise GaSyncError(f"weeks must be at least 1, not {weeks}")
        try:
            return self._weekly_many(list(specs), weeks, today)
        except duckdb.Error as exc:
            raise store_error(self.path, exc, "read") from None

    def _weekly_many(self, specs: list[Spec], weeks: int, today: date | None) -> pd.DataFrame:
        import numpy as np
        import pandas as pd

        columns = ["property", "client"] + [c for c in WEEKLY_COLUMNS if c != "property"]
        mondays = week_window(weeks, today or date.today())
        start, end = mondays[0], mondays[-1] + timedelta(days=6)
        # The specs as three small tables (index, property) / (index, event, tier) /
        # (index, currency), joined to the stored rows inside the one query.
        grid = [(i, p) for i, s in enumerate(specs) for p in dict.fromkeys(s.properties)]
        goals = [(i, g.event, g.tier) for i, s in enumerate(specs) for g in s.goals]
        params = {
            "start": start, "end": end,
            "gs": [i for i, _ in grid], "gp": [p for _, p in grid],
            "es": [i for i, _, _ in goals], "ee": [e for _, e, _ in goals],
            "et": [t for _, _, t in goals],
            "cs": list(range(len(specs))), "cc": [s.currency for s in specs],
        }
        # Aggregated rows only (weeks without rows stay out), keyed by (spec index, property,
        # week); traffic is per property, so it is computed once for all specs naming it.
        rows = self.con.execute("""
            WITH sp AS (SELECT unnest($gs::INTEGER[]) AS spec, unnest($gp::VARCHAR[]) AS property),
                 sg AS (SELECT unnest($es::INTEGER[]) AS spec, unnest($ee::VARCHAR[]) AS event,
                               unnest($et::VARCHAR[]) AS tier),
                 sc AS (SELECT unnest($cs::INTEGER[]) AS spec, unnest($cc::VARCHAR[]) AS currency),
                 traffic AS (
                    SELECT property, date_trunc('week', date)::DATE AS week, count(*) AS days,
                           sum(sessions) AS sessions, sum(users) AS users
                    FROM daily_totals
                    WHERE property IN (SELECT property FROM sp) AND date BETWEEN $start AND $end
                    GROUP BY ALL),
                 conv AS (
                    SELECT sp.spec, e.property, date_trunc('week', e.date)::DATE AS week,
                           sum(e.conversions) FILTER (WHERE sg.tier = 'macro') AS macro_conversions,
                           sum(e.conversions) FILTER (WHERE sg.tier = 'micro') AS micro_conversions,
                           sum(e.value) FILTER (WHERE sg.tier = 'macro' AND e.currency = sc.currency)
                               AS macro_value,
                           sum(e.value) FILTER (WHERE sg.tier = 'micro' AND e.currency = sc.currency)
                               AS micro_value
                    FROM daily_events e
                    JOIN sp ON sp.property = e.property
                    JOIN sg ON sg.spec = sp.spec AND sg.event = e.event
                    JOIN sc ON sc.spec = sp.spec
                    WHERE e.date BETWEEN $start AND $end
                    GROUP BY ALL)
            SELECT sp.spec, sp.property, w.week, t.days, t.sessions, t.users,
                   c.macro_conversions, c.micro_conversions, c.macro_value, c.micro_value
            FROM sp
            JOIN (SELECT DISTINCT property, week FROM traffic
                  UNION SELECT DISTINCT property, week FROM conv) w USING (property)
            LEFT JOIN traffic t ON t.property = sp.property AND t.week = w.week
            LEFT JOIN conv c ON c.spec = sp.spec AND c.property = sp.property AND c.week = w.week
            """, params).fetchnumpy()
        # The full grid (spec, property in spec order, week oldest first), then the stored
        # numbers put in their places.
        n_weeks = len(mondays)
        spec_of = np.repeat(np.asarray([i for i, _ in grid], dtype=np.int64), n_weeks)
        frame = pd.DataFrame({
            "property": np.repeat(np.asarray([p for _, p in grid], dtype=object), n_weeks),
            "client": np.asarray([specs[i].client for i in spec_of], dtype=object),
            "week": np.asarray(mondays * len(grid), dtype=object),
        })
        slot = {(i, p): k for k, (i, p) in enumerate(grid)}
        week_pos = {m: k for k, m in enumerate(mondays)}
        at = np.asarray([slot[(int(i), p)] * n_weeks + week_pos[_as_date(w)]
                         for i, p, w in zip(rows["spec"], rows["property"], rows["week"])],
                        dtype=np.int64)
        n = len(frame)
        for col in ("days", "sessions", "users"):
            out = np.zeros(n, dtype=np.int64)
            out[at] = _filled(rows[col], 0).astype(np.int64)
            frame[col] = out
        for col in ("macro_conversions", "micro_conversions", "macro_value", "micro_value"):
            out = np.zeros(n, dtype=np.float64)
            out[at] = _filled(rows[col], 0.0).astype(np.float64)
            frame[col] = out
        users_basis = np.asarray([specs[i].rate_basis == USERS for i in spec_of], dtype=bool)
        basis = np.where(users_basis, frame["users"].to_numpy(), frame["sessions"].to_numpy())
        for tier in (MACRO, MICRO):
            conv = frame[f"{tier}_conversions"].to_numpy()
            with np.errstate(divide="ignore", invalid="ignore"):
                frame[f"{tier}_rate"] = np.where(basis != 0, conv / np.where(basis != 0, basis, 1),
                                                 math.nan)
        frame["total_value"] = frame["macro_value"] + frame["micro_value"]
        # Values are summed in the spec's currency only (see `save`), so that is their label.
        frame["currency"] = np.asarray([specs[i].currency if d else None
                                        for i, d in zip(spec_of, frame["days"])], dtype=object)
        return frame[columns]


def _connect(target: str, read_only: bool, wait: float) -> duckdb.DuckDBPyConnection:
    """duckdb.connect, retried for up to `wait` seconds while another process holds the lock."""
    import time

    import duckdb

    deadline = time.monotonic() + max(0.0, wait)
    delay = 0.05
    while True:
        try:
            return duckdb.connect(target, read_only=read_only)
        except (duckdb.Error, OSError) as exc:
            locked = "lock" in str(exc).lower()
            if not locked or time.monotonic() + delay > deadline:
                raise store_error(target, exc) from None
            time.sleep(delay)
            delay = min(delay * 2, 0.5)


def _as_date(value: object) -> date:
    """A DATE from DuckDB's numpy answer (datetime64, Timestamp or date) as `datetime.date`."""
    import pandas as pd

    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return pd.Timestamp(value).date()


def _filled(values: object, fill: float) -> np.ndarray:
    """A numpy column from DuckDB with its NULLs (a masked array's mask) replaced by `fill`."""
    import numpy as np

    if isinstance(values, np.ma.MaskedArray):
        return values.filled(fill)
    return np.asarray(values)


def _dates(df: pd.DataFrame, col: str) -> pd.DataFrame:
    """DuckDB hands DATE columns to pandas as timestamps; the model uses `datetime.date`."""
    if col in df and len(df):
        df[col] = [d.date() if hasattr(d, "date") else d for d in df[col]]
    return df


def _split_daily(r: ReportResult, spec: Spec) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`ReportResult.daily` -> (event rows with tier, one traffic row per day)."""
    import pandas as pd

    ev_cols = ["date", "event", "tier", "conversions", "value", "sessions", "users", "currency"]
    tot_cols = ["date", "sessions", "users"]
    daily = r.daily
    if daily is None or len(daily) == 0:
        return pd.DataFrame(columns=ev_cols), pd.DataFrame(columns=tot_cols)
    daily = daily.copy()
    if "currency" not in daily:
        daily["currency"] = r.currency
    daily["currency"] = daily["currency"].fillna(r.currency).astype(str)
    daily["date"] = [d.date() if isinstance(d, datetime) else d for d in daily["date"]]
    daily["event"] = daily["event"].fillna("").astype(str)
    for col in ("sessions", "users"):
        daily[col] = daily[col].fillna(0).astype("int64")
    totals = daily.groupby("date", as_index=False)[["sessions", "users"]].max()
    events = daily[daily["event"] != ""]
    # Duplicate (date, event) rows would break the key: add them up, keep the day's traffic.
    events = events.groupby(["date", "event"], as_index=False).agg(
        conversions=("conversions", "sum"), value=("value", "sum"),
        sessions=("sessions", "max"), users=("users", "max"), currency=("currency", "first"))
    known = {g.event: g.tier for g in r.goals}
    tier_of = {**known, **{g.event: g.tier for g in spec.goals}}
    events["tier"] = [tier_of.get(e, "") for e in events["event"]]
    events["conversions"] = events["conversions"].astype(float)
    events["value"] = events["value"].astype(float)
    return events[ev_cols], totals[tot_cols]
