"""An event log -> a GA4 BigQuery export on disk: `analytics_<id>/events_YYYYMMDD.parquet`.

The sandbox's synthetic events (`ga_sync.sandbox.traffic.event_log`) written in the official
export schema (https://support.google.com/analytics/answer/7029846), one file per day, as
GA's daily tables are: `event_date` (STRING YYYYMMDD, the property's day), `event_timestamp`
(INT64 µs UTC), `event_name`, `event_params` (ARRAY<STRUCT<key, value STRUCT<string_value,
int_value, float_value, double_value>>>), `event_value_in_usd`, `user_id`, `user_pseudo_id`,
`device`, `geo`, `traffic_source`, `stream_id`, `platform` and `ecommerce`.

How the log's columns become the export's:

- `event_timestamp`: the day's local midnight in the property's time zone, plus the session's
  `session_start` seconds, plus an offset that spreads the session's events evenly over its
  `session_duration`, so that the last minus the first timestamp of a session is exactly
  `round(session_duration * 1e6)` µs (the duration goals of `session:` depend on it).
- `ga_session_id` (int param): the session's start as Unix seconds, GA's own convention; two
  sessions of one user starting in the same second (only possible past 86,400 sessions a day)
  are told apart by adding 1.
- `value` (param): an integral value is written as `int_value`, any other as `double_value`,
  because GA stores the parameter as whatever type the tag sent (readers must take both).
- `page_location` on every event, `engagement_time_msec` where the log has it (> 0), and every
  column of the log that is not one of traffic.py's known columns becomes a parameter of the
  events where it is not null (strings as `string_value`, integers as `int_value`, floats as
  `double_value`): that is how tests and the goal-kinds work add `link_url`, `form_id`, ...
- `user_pseudo_id` is the log's `user_id` as a string; the export's `user_id` (the site's own
  signed-in id) is null, since the traffic model signs no one in, unless the log carries a
  `signed_in_user_id` column.
- `traffic_source` is the user's first source/medium/campaign (as in GA's export), `device`,
  `geo` the session's; `ecommerce.purchase_revenue` and `transaction_id` on purchase events.

DuckDB writes the files (pyarrow is not a dependency), one day at a time, so memory stays at
one day's events whatever the range.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

#: The file formats `write_events` writes (and `layout` reads).
PARQUET, NDJSON = "parquet", "ndjson"
FORMATS = (PARQUET, NDJSON)

#: event_log columns that are not event parameters (traffic.py's known columns).
_KNOWN = {"date", "user_id", "session_id", "event_name", "value", "page_path", "page_location",
          "country", "region", "city", "language", "device_category", "operating_system",
          "browser", "session_source", "session_medium", "session_campaign",
          "session_default_channel_group", "first_user_source", "first_user_medium",
          "first_user_campaign", "first_user_default_channel_group", "landing_page",
          "landing_page_query", "new_vs_returning", "engagement_time_msec", "session_duration",
          "session_start", "signed_in_user_id"}
_PURCHASES = ("purchase", "ecommerce_purchase", "in_app_purchase")
_STREAM_ID = "1234567890"


def lambda_sql(var: str, body: str) -> str:
    """A DuckDB lambda in the syntax the installed DuckDB wants (`lambda x: ...` from 1.3 on,
    where the old `x -> ...` is deprecated)."""
    import duckdb
    major, minor = (int(x) for x in duckdb.__version__.split(".")[:2])
    return f"lambda {var}: {body}" if (major, minor) >= (1, 3) else f"{var} -> {body}"


def dataset_folder(root: str | Path, property_id: str) -> Path:
    """`root/analytics_<id>`: where a property's export lives (the BigQuery dataset's name)."""
    from ga_sync.model import property_id as pid
    return Path(root) / f"analytics_{pid(property_id)}"


def timestamps(log: Any, time_zone: str) -> tuple[np.ndarray, np.ndarray]:
    """(event_timestamp µs UTC, ga_session_id) for each row of one or more days of `log`.

    See the module docstring: events of a session are spread evenly from its start over its
    duration; the session id is its start in Unix seconds.
    """
    zone = ZoneInfo(time_zone or "UTC")
    n = len(log)
    if n == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    dates = log["date"].astype(str).to_numpy()
    midnights: dict[str, int] = {}
    for d in np.unique(dates):
        local = datetime.strptime(d, "%Y%m%d").replace(tzinfo=zone)
        midnights[d] = int(local.timestamp())
    midnight = np.array([midnights[d] for d in dates], dtype=np.int64) if len(midnights) > 1 \
        else np.full(n, next(iter(midnights.values())), dtype=np.int64)
    session = log["session_id"].to_numpy()
    start_s = midnight + log["session_start"].to_numpy().astype(np.int64)
    duration_us = np.round(log["session_duration"].to_numpy(dtype=float) * 1e6).astype(np.int64)
    # rows of a session are contiguous: position within it and its size
    first = np.concatenate(([True], session[1:] != session[:-1]))
    begin = np.flatnonzero(first)
    sizes = np.diff(np.append(begin, n))
    pos = np.arange(n) - np.repeat(begin, sizes)
    size = np.repeat(sizes, sizes)
    last = np.maximum(size - 1, 1)
    offset = (duration_us * pos) // last
    offset = np.where(pos == size - 1, duration_us, offset)  # exact at the last event
    offset = np.where(size == 1, 0, offset)
    ts = start_s * 1_000_000 + offset
    # ga_session_id: start in seconds, made unique per (user, session)
    user = log["user_id"].to_numpy()
    gsid = start_s.copy()
    s_first = begin
    key_user, key_start, key_session = user[s_first], start_s[s_first], session[s_first]
    order = np.lexsort((key_session, key_start, key_user))
    ku, ks = key_user[order], key_start[order]
    dup = np.concatenate(([False], (ku[1:] == ku[:-1]) & (ks[1:] == ks[:-1])))
    if dup.any():
        bump = np.zeros(len(order), dtype=np.int64)
        run = 0
        for i in range(len(order)):  # rare: only with > 86,400 sessions a day
            run = run + 1 if dup[i] else 0
            bump[i] = run
        per_session = np.empty(len(order), dtype=np.int64)
        per_session[order] = bump
        gsid = gsid + np.repeat(per_session, sizes)
    return ts, gsid


def _param_sql(key: str, column: str, kind: str) -> str:
    """A DuckDB expression: the event_params entry for `column`, or NULL where it is null."""
    s = "NULL::VARCHAR" if kind != "string" else f'CAST("{column}" AS VARCHAR)'
    i = "NULL::BIGINT" if kind != "int" else f'CAST("{column}" AS BIGINT)'
    d = "NULL::DOUBLE" if kind != "double" else f'CAST("{column}" AS DOUBLE)'
    key_sql = "'" + key.replace("'", "''") + "'"
    return (f'CASE WHEN "{column}" IS NULL THEN NULL ELSE {{\'key\': {key_sql}, \'value\': '
            f"{{'string_value': {s}, 'int_value': {i}, 'float_value': NULL::DOUBLE, "
            f"'double_value': {d}}}}} END")


def _extra_params(log: Any) -> list[tuple[str, str]]:
    """(column, kind) of the log's columns that are event parameters (not traffic.py's own)."""
    import pandas as pd
    out = []
    for c in log.columns:
        if c in _KNOWN or c.startswith("_"):
            continue
        dtype = log[c].dtype
        if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_integer_dtype(dtype):
            out.append((c, "int"))
        elif pd.api.types.is_float_dtype(dtype):
            out.append((c, "double"))
        else:
            out.append((c, "string"))
    return out


def _select_sql(extra: Sequence[tuple[str, str]], currency: str | None, signed_in: bool) -> str:
    params = [
        _param_sql("ga_session_id", "_gsid", "int"),
        _param_sql("page_location", "page_location", "string"),
        _param_sql("value", "_value_int", "int"),
        _param_sql("value", "_value_double", "double"),
        _param_sql("engagement_time_msec", "_engagement", "int"),
        *(_param_sql(c, c, kind) for c, kind in extra),
    ]
    purchase = "event_name IN (" + ", ".join(f"'{p}'" for p in _PURCHASES) + ")"
    usd = "value" if (currency or "").upper() == "USD" else "NULL::DOUBLE"
    user_id = "CAST(signed_in_user_id AS VARCHAR)" if signed_in else "NULL::VARCHAR"
    return f"""
SELECT
  CAST(date AS VARCHAR) AS event_date,
  _ts AS event_timestamp,
  CAST(event_name AS VARCHAR) AS event_name,
  list_filter([{", ".join(params)}], {lambda_sql("x", "x IS NOT NULL")}) AS event_params,
  CAST({usd} AS DOUBLE) AS event_value_in_usd,
  {user_id} AS user_id,
  CAST(user_id AS VARCHAR) AS user_pseudo_id,
  {{'category': CAST(device_category AS VARCHAR),
    'operating_system': CAST(operating_system AS VARCHAR),
    'language': CAST(language AS VARCHAR),
    'web_info': {{'browser': CAST(browser AS VARCHAR),
                 'hostname': regexp_extract(CAST(page_location AS VARCHAR), '^[a-z]+://([^/]+)', 1)}}}}
    AS device,
  {{'country': CAST(country AS VARCHAR), 'region': CAST(region AS VARCHAR),
    'city': CAST(city AS VARCHAR)}} AS geo,
  {{'name': CAST(first_user_campaign AS VARCHAR), 'medium': CAST(first_user_medium AS VARCHAR),
    'source': CAST(first_user_source AS VARCHAR)}} AS traffic_source,
  '{_STREAM_ID}' AS stream_id,
  'WEB' AS platform,
  CASE WHEN {purchase} THEN {{'transaction_id': 'T' || CAST(_gsid AS VARCHAR) || '-' || CAST(_row AS VARCHAR),
                               'purchase_revenue': value,
                               'purchase_revenue_in_usd': CAST({usd} AS DOUBLE)}}
       ELSE NULL END AS ecommerce
FROM day
ORDER BY _row"""


def _prepare(log: Any, time_zone: str) -> Any:
    """The columns DuckDB builds the rows from: timestamps, session ids, value by type."""
    ts, gsid = timestamps(log, time_zone)
    value = log["value"].to_numpy(dtype=float)
    integral = np.isfinite(value) & (value == np.round(value))
    day = log.copy(deep=False)
    day["_ts"] = ts
    day["_gsid"] = gsid
    day["_value_int"] = np.where(integral, value, np.nan)
    day["_value_int"] = day["_value_int"].astype("Int64")
    day["_value_double"] = np.where(integral, np.nan, value)
    eng = log["engagement_time_msec"].to_numpy() if "engagement_time_msec" in log \
        else np.zeros(len(log), np.int64)
    day["_engagement"] = np.where(eng > 0, eng, -1)
    day["_engagement"] = day["_engagement"].astype("Int64").mask(day["_engagement"] < 0)
    day["_row"] = np.arange(len(log))
    return day


def write_events(log: Any, folder: str | Path, property_id: str, *, time_zone: str | None = None,
                 fmt: str = PARQUET, currency: str | None = None,
                 intraday: Iterable[str] = ()) -> list[Path]:
    """Write an event log (the shape `traffic.event_log` returns) as a GA4 export.

    One file per day of the log, `folder/analytics_<id>/events_YYYYMMDD.parquet` (or
    `.ndjson` with `fmt="ndjson"`); the days named in `intraday` ('YYYYMMDD') are written as
    `events_intraday_YYYYMMDD` instead, as streaming export has them before the daily table.
    `time_zone` (default: the log's `attrs["time_zone"]`, else UTC) places the days' midnights;
    `currency` USD fills `event_value_in_usd`. Returns the files written, in day order.
    """
    import duckdb

    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {FORMATS}, not {fmt!r}")
    tz = time_zone or log.attrs.get("time_zone") or "UTC"
    out_dir = dataset_folder(folder, property_id)
    out_dir.mkdir(parents=True, exist_ok=True)
    extra = _extra_params(log)
    sql = _select_sql(extra, currency, "signed_in_user_id" in log.columns)
    intraday = set(intraday)
    written: list[Path] = []
    if len(log) == 0:
        return written
    dates = log["date"].astype(str) if not hasattr(log["date"], "cat") else log["date"]
    codes = dates.cat.codes.to_numpy() if hasattr(dates, "cat") else None
    names = list(dates.cat.categories) if codes is not None else sorted(set(dates))
    con = duckdb.connect()
    try:
        for i, name in enumerate(names):
            if codes is not None:
                where = np.flatnonzero(codes == i)
                if where.size == 0:
                    continue
                part = log.iloc[where[0]:where[-1] + 1]  # a day's rows are contiguous
                if len(part) != where.size:
                    part = log.iloc[where]
            else:
                part = log[dates == name]
            written.append(_write_day(con, part, out_dir, str(name), tz, fmt, sql,
                                      str(name) in intraday))
    finally:
        con.close()
    return written


def _write_day(con: Any, part: Any, out_dir: Path, name: str, tz: str, fmt: str, sql: str,
               intraday: bool) -> Path:
    day = _prepare(part.reset_index(drop=True), tz)  # noqa: F841 (DuckDB reads it by name)
    stem = f"events_intraday_{name}" if intraday else f"events_{name}"
    path = out_dir / f"{stem}.{'parquet' if fmt == PARQUET else 'ndjson'}"
    tmp = path.with_name(path.name + ".tmp")
    options = "(FORMAT parquet, COMPRESSION zstd)" if fmt == PARQUET else "(FORMAT json)"
    con.register("day", day)
    try:
        con.execute(f"COPY ({sql}) TO '{_sql_path(tmp)}' {options}")
    finally:
        con.unregister("day")
    tmp.replace(path)
    return path


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")


def write_traffic(traffic: dict[str, Any] | None, start: date, end: date, folder: str | Path,
                  property_id: str, *, time_zone: str = "UTC", fmt: str = PARQUET,
                  currency: str | None = None, intraday: Iterable[str] = (),
                  transform: Callable[[Any], Any] | None = None) -> list[Path]:
    """Write a sandbox property's traffic (`traffic.make_traffic` profile) from `start` to `end`
    as a GA4 export, one day at a time (memory: one day's events).

    The events are `traffic.event_log`'s, the same the sandbox's Data API answers from;
    `transform` may change each day's log first (add parameter columns, drop rows).
    """
    from ga_sync.sandbox.traffic import event_log

    written: list[Path] = []
    day = start
    while day <= end:
        log = event_log(traffic, day, day, time_zone)
        if transform is not None:
            log = transform(log)
        written += write_events(log, folder, property_id, time_zone=time_zone, fmt=fmt,
                                currency=currency, intraday=intraday)
        day += timedelta(days=1)
    return written


__all__ = ["FORMATS", "NDJSON", "PARQUET", "dataset_folder", "timestamps", "write_events",
           "write_traffic"]
