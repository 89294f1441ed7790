"""Periods: date arithmetic, time zones and GA's processing lag, in one place.

A report or an audit covers whole days in the property's time zone; GA4 has data from
`garules.EARLIEST_DATE` on and is still processing the last `garules.PROCESSING_DAYS` days.
Pure functions (apart from the clock in `today_in`); nothing here calls GA.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ga_sync.errors import GaSyncError, MalformedAnswer
from ga_sync.garules import EARLIEST_DATE, PROCESSING_DAYS

__all__ = ["EARLIEST_DATE", "PROCESSING_DAYS", "Period", "check_dates", "check_period",
           "complete_days", "last_days", "last_week", "monday", "still_processing", "today_in",
           "week_window", "zone_of"]


@dataclass(frozen=True)
class Period:
    start: date
    end: date  # inclusive

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def previous(self) -> "Period":
        """The period of equal length just before this one (a GaSyncError before year 1)."""
        try:
            return Period(self.start - timedelta(days=self.days), self.start - timedelta(days=1))
        except OverflowError:
            raise GaSyncError(f"there is no period of {self.days} days before {self.start}: "
                              f"GA4 has data from {EARLIEST_DATE} on") from None

    def __str__(self) -> str:
        return f"{self.start.isoformat()}..{self.end.isoformat()}"


# --------------------------------------------------------------------------- time zones


def today_in(tz: str, *, property: str | None = None) -> date:
    """Today's date in the time zone `tz` (an IANA name, as GA gives a property's time zone).

    A zone this machine's time zone database does not know (an empty name, a typo from
    something between us and GA, or a zone newer than the installed tzdata) is a
    MalformedAnswer for `property`, never a raw ZoneInfoNotFoundError.
    """
    return datetime.now(zone_of(tz, property=property)).date()


def zone_of(tz: Any, *, property: str | None = None) -> ZoneInfo:
    """`ZoneInfo(tz)`, or a MalformedAnswer saying which property's time zone is unknown."""
    from ga_sync.redact import excerpt

    try:
        if not isinstance(tz, str) or not tz.strip():
            raise ValueError("empty")
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        where = f" of {property}" if property else ""
        shown = excerpt(tz) if isinstance(tz, str) and tz.strip() else "(empty)"
        raise MalformedAnswer(
            f"the time zone{where}, {shown!r}, is not a time zone this machine knows. Check "
            "the property's time zone in GA4 Admin → Property details; if it is a valid IANA "
            "name, update the time zone database ('pip install -U tzdata').",
            property=property) from None


# --------------------------------------------------------------------------- choosing a period


def monday(day: date) -> date:
    """The Monday starting the ISO week of `day`."""
    return day - timedelta(days=day.weekday())


def last_week(today: date) -> Period:
    """The last complete ISO week (Monday to Sunday) before `today`."""
    this_monday = monday(today)
    return Period(this_monday - timedelta(days=7), this_monday - timedelta(days=1))


def week_window(weeks: int, today: date) -> list[date]:
    """The Mondays of the last `weeks` complete ISO weeks before `today`, oldest first.

    The current week is left out like `last_week` does: GA is still filling it.
    """
    this_monday = monday(today)
    return [this_monday - timedelta(weeks=n) for n in range(weeks, 0, -1)]


def last_days(today: date, n: int) -> Period:
    """The last n complete days, ending yesterday."""
    try:
        return Period(today - timedelta(days=n), today - timedelta(days=1))
    except OverflowError:
        raise GaSyncError(f"the last {n} days start before GA4's first day, {EARLIEST_DATE}: "
                          "ask for fewer days") from None


def complete_days(today: date, days: int) -> Period:
    """The last `days` complete days GA has finished processing: [today-2-days, today-3].

    Today is incomplete and the two days before it are still being processed
    (https://support.google.com/analytics/answer/11198161), so they are skipped.
    """
    end = today - timedelta(days=PROCESSING_DAYS + 1)
    return Period(end - timedelta(days=days - 1), end)


def still_processing(period: Period, today: date) -> bool:
    """True when the period reaches into the days GA is still processing (numbers will grow)."""
    return period.end >= today - timedelta(days=PROCESSING_DAYS)


# --------------------------------------------------------------------------- checking a period


def check_dates(start: date, end: date, *, compare: bool = False,
                today: date | None = None) -> Period:
    """The period from --start/--end, or a GaSyncError saying which bound GA4 refuses.

    GA4 has data from 2015-08-14 (the Data API refuses earlier dates), none after today;
    `today` is the local date, and a period ending the day after it passes here (a property's
    time zone may be ahead) and is checked again per property. With `compare`, the previous
    period must start on or after 2015-08-14 too.
    """
    if end < start:
        raise GaSyncError(f"the period ends ({end}) before it starts ({start}): swap the dates")
    period = Period(start, end)
    check_period(period, compare=compare, today=today)
    return period


def check_period(period: Period, *, compare: bool = False, today: date | None = None) -> None:
    """Refuse a period GA4 cannot have data for, before anything is pulled."""
    today = today or date.today()
    if period.start < EARLIEST_DATE:
        raise GaSyncError(f"the period {period} starts before {EARLIEST_DATE}, GA4's first day "
                          "(the Data API refuses earlier dates): start on or after it")
    if period.end > today + timedelta(days=1):
        raise GaSyncError(f"the period {period} ends after today ({today}): GA has no data "
                          "yet; end on or before today")
    if compare:
        before = period.previous()
        if before.start < EARLIEST_DATE:
            raise GaSyncError(f"comparing with the previous period would compare with {before}, "
                              f"which starts before {EARLIEST_DATE}, GA4's first day: start the period on or "
                              f"after {EARLIEST_DATE + timedelta(days=period.days)}")
