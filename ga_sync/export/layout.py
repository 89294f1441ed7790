"""Where a property's GA4 export is in a folder, and which days it has.

The layout is BigQuery's, one folder per dataset and one file (or a few shards) per table, as
`bq extract` or a copy of the export produces it::

    PATH/analytics_<property id>/events_YYYYMMDD.parquet          daily tables
    PATH/analytics_<property id>/events_intraday_YYYYMMDD.parquet streaming export, same day
    PATH/analytics_<property id>/events_YYYYMMDD-000000000001.parquet   shards of one table

as Parquet (`.parquet`) or newline-delimited JSON (`.json`, `.jsonl`, `.ndjson`, optionally
`.gz`), not both in one dataset. A day with a daily table is read from it; a day with only an
intraday table is read from that and flagged `incomplete` (GA is still writing it). Every
failure is an `ExportError` (an `ApiError` carrying `property=`), so a report over many
properties reports it for that property and goes on with the others.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

from ga_sync.errors import ApiError
from ga_sync.periods import Period

PARQUET, JSON = "parquet", "json"
_FILE = re.compile(r"^events_(?P<intraday>intraday_)?(?P<day>\d{8})(?:-\d+)?"
                   r"\.(?P<ext>parquet|json|jsonl|ndjson)(?P<gz>\.gz)?$")
_PARQUET_MAGIC = b"PAR1"


class ExportError(ApiError):
    """The export of one property cannot be used: no dataset folder, no table for a day,
    unreadable files, a scan over the limit. `property` says which; the message says what to
    do."""


class ExportNotFound(ExportError):
    """No export for the property where it was looked for (folder or BigQuery dataset)."""


class MissingDays(ExportError):
    """Days of the period have no table (the export started later, or a day failed)."""

    def __init__(self, message: str, *, property: str | None = None,
                 days: Sequence[str] = ()):
        super().__init__(message, property=property)
        self.days = tuple(days)


class UnreadableExport(ExportError):
    """An exported file cannot be read: not Parquet/JSON, truncated, or without the
    columns GA's export has (e.g. no `ga_session_id` parameter)."""


class ScanTooLarge(ExportError):
    """The BigQuery dry run says the query would scan more than the limit (--max-gb)."""


@dataclass(frozen=True)
class ExportDay:
    """The table one day is read from: its files, and whether it is an intraday table."""

    day: str  # YYYYMMDD
    files: tuple[Path, ...]
    intraday: bool = False


@dataclass(frozen=True)
class ExportLayout:
    """A property's exported dataset on disk."""

    property: str  # "properties/123"
    folder: Path  # PATH/analytics_123
    format: str  # "parquet" or "json"
    days: dict[str, ExportDay] = field(default_factory=dict)  # YYYYMMDD -> the table read

    @property
    def first(self) -> str | None:
        return min(self.days) if self.days else None

    @property
    def last(self) -> str | None:
        return max(self.days) if self.days else None

    def covering(self, periods: Iterable[Period]) -> list[ExportDay]:
        """The tables of every day of `periods` that has one, in day order."""
        wanted = sorted({d for p in periods for d in period_days(p)})
        return [self.days[d] for d in wanted if d in self.days]

    def missing(self, periods: Iterable[Period]) -> list[str]:
        """Days of `periods` ('YYYYMMDD') with no table, daily or intraday."""
        return sorted({d for p in periods for d in period_days(p) if d not in self.days})

    def incomplete(self, periods: Iterable[Period]) -> list[str]:
        """Days of `periods` read from an intraday table only (GA is still writing them)."""
        return [d.day for d in self.covering(periods) if d.intraday]

    def files(self, periods: Iterable[Period]) -> list[Path]:
        return [f for d in self.covering(periods) for f in d.files]


def period_days(period: Period) -> list[str]:
    return [(period.start + timedelta(days=i)).strftime("%Y%m%d") for i in range(period.days)]


def day_ranges(days: Sequence[str]) -> str:
    """'20240101', '20240102', '20240105' -> '2024-01-01..2024-01-02, 2024-01-05'."""
    parsed = sorted(datetime.strptime(d, "%Y%m%d").date() for d in days)
    runs: list[list[date]] = []
    for d in parsed:
        if runs and (d - runs[-1][1]).days == 1:
            runs[-1][1] = d
        else:
            runs.append([d, d])
    parts = [a.isoformat() if a == b else f"{a.isoformat()}..{b.isoformat()}" for a, b in runs]
    if len(parts) > 6:
        parts = parts[:5] + [f"... ({len(parts) - 5} more ranges)"]
    return ", ".join(parts)


def find_export(root: str | Path, property: str) -> ExportLayout:
    """The export of `property` ("properties/123" or "123") under `root`.

    Raises ExportNotFound when `root` or `root/analytics_<id>` does not exist or holds no
    events tables, and UnreadableExport when it mixes Parquet and JSON tables.
    """
    from ga_sync.model import property_id, property_name

    prop = property_name(property)
    pid = property_id(prop)
    base = Path(root).expanduser()
    if not base.is_dir():
        what = "is a file, not a folder" if base.exists() else "does not exist"
        raise ExportNotFound(f"{prop}: the export folder {base} {what}. Give the folder that "
                             f"holds analytics_{pid}/ (--source export:PATH).", property=prop)
    folder = base / f"analytics_{pid}"
    if not folder.is_dir():
        others = sorted(p.name for p in base.glob("analytics_*") if p.is_dir())[:5]
        seen = f" (it has {', '.join(others)})" if others else ""
        raise ExportNotFound(
            f"{prop}: no export for this property in {base}{seen}: expected a folder "
            f"analytics_{pid}/ holding events_YYYYMMDD.parquet (or .json) tables, the dataset "
            "GA4's BigQuery link writes. Check the property id, or export the dataset there "
            "(bq extract --destination_format PARQUET).", property=prop)
    daily: dict[str, list[Path]] = {}
    intraday: dict[str, list[Path]] = {}
    formats: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        m = _FILE.match(path.name)
        if not m or not path.is_file():
            continue
        fmt = PARQUET if m["ext"] == "parquet" else JSON
        formats.setdefault(fmt, path)
        (intraday if m["intraday"] else daily).setdefault(m["day"], []).append(path)
    if len(formats) > 1:
        raise UnreadableExport(
            f"{prop}: {folder} mixes Parquet and JSON tables (e.g. {formats[PARQUET].name} and "
            f"{formats[JSON].name}); keep one format per dataset.", property=prop)
    if not formats:
        raise ExportNotFound(f"{prop}: {folder} holds no events_YYYYMMDD tables "
                             "(.parquet, .json, .jsonl or .ndjson).", property=prop)
    days = {d: ExportDay(d, tuple(files)) for d, files in daily.items()}
    for d, files in intraday.items():
        if d not in days:  # the daily table wins: GA deletes the intraday one when it lands
            days[d] = ExportDay(d, tuple(files), intraday=True)
    return ExportLayout(property=prop, folder=folder, format=next(iter(formats)),
                        days=dict(sorted(days.items())))


def check_days(layout: ExportLayout, periods: Sequence[Period]) -> None:
    """Raise MissingDays when a day of `periods` has no table (neither daily nor intraday)."""
    missing = layout.missing(periods)
    if not missing:
        return
    have = (f"it has {layout.first[:4]}-{layout.first[4:6]}-{layout.first[6:]}.."
            f"{layout.last[:4]}-{layout.last[4:6]}-{layout.last[6:]}") if layout.days else \
        "it has no day at all"
    if len(missing) == sum(p.days for p in periods):
        what = "no table for any day of the period"
    else:
        what = f"no table for {len(missing)} day{'s' if len(missing) != 1 else ''}"
    raise MissingDays(
        f"{layout.property}: the export in {layout.folder} has {what}: "
        f"{day_ranges(missing)} ({have}). A day without a table is not a day without "
        "traffic: export it, or ask for a period the export covers.",
        property=layout.property, days=missing)


def check_files(layout: ExportLayout, files: Iterable[Path]) -> None:
    """Cheap checks before a scan, naming the file: empty, or not Parquet / not JSON."""
    for path in files:
        try:
            size = path.stat().st_size
            with path.open("rb") as f:
                head = f.read(4)
                if layout.format == PARQUET and size >= 8:
                    f.seek(size - 4)
                    tail = f.read(4)
                else:
                    tail = b""
        except OSError as e:
            raise UnreadableExport(f"{layout.property}: cannot read {path}: "
                                   f"{(e.strerror or type(e).__name__).lower()}.",
                                   property=layout.property) from None
        if size == 0:
            raise UnreadableExport(f"{layout.property}: {path} is empty: export that day "
                                   "again.", property=layout.property)
        if layout.format == PARQUET and (head != _PARQUET_MAGIC or tail != _PARQUET_MAGIC):
            raise UnreadableExport(f"{layout.property}: {path} is not a Parquet file (or is "
                                   "truncated): export that day again.",
                                   property=layout.property)
        if layout.format == JSON and not path.name.endswith(".gz") and \
                head.lstrip()[:1] not in (b"{", b""):
            raise UnreadableExport(f"{layout.property}: {path} is not newline-delimited "
                                   "JSON (one event object per line): export that day again.",
                                   property=layout.property)


__all__ = ["ExportDay", "ExportError", "ExportLayout", "ExportNotFound", "JSON", "MissingDays",
           "PARQUET", "ScanTooLarge", "UnreadableExport", "check_days", "check_files",
           "day_ranges", "find_export", "period_days"]
