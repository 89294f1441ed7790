"""The sandbox's event log written as a GA4 BigQuery export (`ga-sync sandbox --export DIR`).

Each property's export is the log its Data API reports read (`derived.property_event_log`:
the collected events plus the events its rules and audience triggers made), so a report from
the export and one from the Data API count the same events. It is written by
`ga_sync.export.writer` in GA's export schema, one table per day, as GA's BigQuery link does::

    DIR/analytics_<property id>/events_YYYYMMDD.parquet           every finished day
    DIR/analytics_<property id>/events_intraday_YYYYMMDD.parquet  today so far (streaming)

The default period is the last `DEFAULT_DAYS` days up to yesterday in the property's time
zone, never before the traffic's first day (the export starts when the link was made), plus
today's part so far as an intraday table, cut as the Data API cuts today (the share of the
day's sessions matching the share of the day elapsed, `query.day_elapsed`).

The export's `user_id` is the log's `signed_in_user_id` where the traffic signs users in
(journey profiles), null elsewhere. The log's bookkeeping columns `origin`
and `event_time` are not written; a rule-made or trigger event is an ordinary event in GA's
export too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

#: The default export period: this many days up to yesterday (GA's export has no retention
#: limit of its own; 90 days covers a quarter and its comparison with the one before).
DEFAULT_DAYS = 90
#: Days written per event-log call: bounds memory (one chunk's events) without re-deriving
#: rules and audiences for every single day.
_CHUNK_DAYS = 14
#: Columns of the derived log that are the sandbox's bookkeeping, not event parameters.
_BOOKKEEPING = ("origin", "event_time")

#: progress(property_id, days_written, days_total): called after every chunk of days.
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class PropertyExport:
    """What was written for one property."""

    property_id: str
    folder: Path
    start: date | None  # first daily table (None: no finished day in the period)
    end: date | None  # last daily table
    intraday: date | None  # the day written as events_intraday_*, if any
    files: tuple[Path, ...] = field(default_factory=tuple)
    events: int = 0


def property_today(time_zone: str) -> date:
    """Today in the property's time zone (as the Data API resolves `today`)."""
    from ga_sync.sandbox.query import property_today as today
    return today(time_zone)


def default_period(time_zone: str, days: int = DEFAULT_DAYS,
                   today: date | None = None) -> tuple[date, date]:
    """(first, last) day of the default export: `days` days up to yesterday in `time_zone`."""
    today = today or property_today(time_zone)
    end = today - timedelta(days=1)
    return end - timedelta(days=max(days, 1) - 1), end


def _traffic_first_day(traffic: dict[str, Any] | None) -> date | None:
    start = (traffic or {}).get("start")
    return date.fromisoformat(str(start)) if start else None


def _clean(log: Any) -> Any:
    drop = [c for c in _BOOKKEEPING if c in log.columns]
    return log.drop(columns=drop) if drop else log


def today_so_far(log: Any, day: date, time_zone: str, elapsed: float | None = None) -> Any:
    """The rows of `log` for `day` that have happened: the first share of the day's sessions
    matching the share of the day elapsed, exactly as the Data API cuts today
    (`query._today_so_far`)."""
    import numpy as np

    from ga_sync.sandbox.query import day_elapsed

    key = day.strftime("%Y%m%d")
    part = log[log["date"].astype(str) == key]
    if not len(part):
        return part
    sessions = part["session_id"].to_numpy()
    changed = np.concatenate(([True], sessions[1:] != sessions[:-1]))
    code = np.cumsum(changed) - 1
    share = day_elapsed(time_zone) if elapsed is None else elapsed
    cut = int(round((int(code[-1]) + 1) * share))
    out = part[code < cut]
    out.attrs.update(log.attrs)
    return out


def export_property(state: Any, pid: str, folder: str | Path, start: date | None = None,
                    end: date | None = None, *, days: int = DEFAULT_DAYS, intraday: bool = True,
                    progress: Progress | None = None, today: date | None = None,
                    elapsed: float | None = None) -> PropertyExport:
    """Write one sandbox property's event log from `start` to `end` (default: the
    `default_period`) as daily tables under `folder/analytics_<pid>/`, and today so far as
    an intraday table when `intraday` (and `end` reaches yesterday or later).

    `today` and `elapsed` (the share of today past) pin the clock for tests. Returns what
    was written; stale tables of other days in the folder are left alone.
    """
    from ga_sync.export.writer import dataset_folder, write_events
    from ga_sync.sandbox.derived import property_event_log

    pid = str(pid).removeprefix("properties/")
    with state.lock:
        record = state.properties[pid]
        tz, currency, traffic = record.time_zone, record.currency_code, record.traffic
    today = today or property_today(tz)
    d_start, d_end = default_period(tz, days, today)
    start = start or d_start
    end = min(end or d_end, today - timedelta(days=1))
    first = _traffic_first_day(traffic)
    if first is not None and start < first:
        start = first
    out_dir = dataset_folder(folder, pid)
    out_dir.mkdir(parents=True, exist_ok=True)
    total = max((end - start).days + 1, 0) + int(intraday)
    done, events = 0, 0
    files: list[Path] = []
    day = start
    while day <= end:
        last = min(day + timedelta(days=_CHUNK_DAYS - 1), end)
        log = _clean(property_event_log(state, pid, day, last))
        files += write_events(log, folder, pid, time_zone=tz, currency=currency)
        events += len(log)
        done += (last - day).days + 1
        if progress is not None:
            progress(pid, done, total)
        day = last + timedelta(days=1)
    wrote_intraday = None
    if intraday and traffic is not None and (first is None or first <= today):
        log = today_so_far(_clean(property_event_log(state, pid, today, today)), today, tz,
                           elapsed)
        stale = out_dir / f"events_{today:%Y%m%d}.parquet"
        stale.unlink(missing_ok=True)  # a daily table of today would hide the intraday one
        files += write_events(log, folder, pid, time_zone=tz, currency=currency,
                              intraday=[today.strftime("%Y%m%d")])
        events += len(log)
        wrote_intraday = today if len(log) else None
        done += 1
        if progress is not None:
            progress(pid, done, total)
    return PropertyExport(pid, out_dir, start if end >= start else None,
                          end if end >= start else None, wrote_intraday, tuple(files), events)


def export_state(state: Any, folder: str | Path, start: date | None = None,
                 end: date | None = None, properties: Iterable[str] | None = None, *,
                 days: int = DEFAULT_DAYS, intraday: bool = True,
                 progress: Progress | None = None) -> list[PropertyExport]:
    """Write every sandbox property with traffic (or those named in `properties`, as `123`
    or `properties/123`) as a GA4 export under `folder`; see `export_property`.

    Properties without traffic get no dataset (GA exports nothing for a property without
    events); denied properties are exported too (the export is the owner's copy).
    """
    with state.lock:
        known = {pid: rec.traffic is not None for pid, rec in state.properties.items()}
    if properties is None:
        chosen = sorted(pid for pid, has in known.items() if has)
    else:
        chosen = [str(p).removeprefix("properties/") for p in properties]
        unknown = [p for p in chosen if p not in known]
        if unknown:
            from ga_sync.errors import GaSyncError
            raise GaSyncError(f"the sandbox has no property {', '.join(unknown)}; it has "
                              f"{', '.join(sorted(known)) or 'none'}")
    return [export_property(state, pid, folder, start, end, days=days, intraday=intraday,
                            progress=progress) for pid in chosen]


__all__ = ["DEFAULT_DAYS", "PropertyExport", "default_period", "export_property",
           "export_state", "property_today", "today_so_far"]
