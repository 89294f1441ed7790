"""The facts one property's report is computed from, whatever the source (Data API, BigQuery).

A source (see `ga_sync.sources`) turns its own answers into `ReportFacts`: raw event counts,
never GA's key-event numbers or rates, so the report (report.py) computes conversions, rates and
value from the spec the same way for every source. Tables are pandas DataFrames with the
columns named below; dates are `datetime.date` in the property's time zone; event values are
in the property's currency (`ReportFacts.currency`).

Per period (`PeriodFacts`), one per period asked for, in the order asked:

  sessions, users     the period's totals, de-duplicated (users cannot be summed from days)
  tier_sessions       {tier: sessions with at least one event of that tier}, de-duplicated;
                      a tier with no goals may be missing (read as 0)
  events              one row per event over the whole period (index `event`):
                      count, sessions (with the event), value, and key_events (GA's own
                      key-event count) when the source has it
  days                one row per day with traffic: date, sessions, users
  daily               one row per day x event: date, event, count, sessions, value

And once per pull: what the source says about itself (currency, time zone, thresholded,
sampled, other-row, quota).

Goals by kind (`Goal.kind`, see docs/reports.md): the rows of an `event`, `from` or `session`
goal are its own event's. The rows of a `page` goal (`page: {contains: /thank-you}`) are the
`page_view` events whose page location matches the goal's condition, filed under the goal's
event name, over the whole period (days before GA's event create rule existed included); its
`key_events` is still GA's count for the goal's own event. `tier_sessions` counts a session
with such a page view as a session with that goal. A source names the goals it counted so in
`ReportFacts.from_page_views`; `check` refuses facts that leave a page goal out, so a source
that cannot filter page views fails loudly instead of reporting the rule's events as if they
were the page views.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ga_sync.model import Spec
from ga_sync.periods import Period

#: Columns of `PeriodFacts.events` (indexed by event); `key_events` only when the source has it.
EVENT_COLUMNS = ("count", "sessions", "value")
KEY_EVENTS = "key_events"
#: Columns of `PeriodFacts.days`.
DAY_COLUMNS = ("date", "sessions", "users")
#: Columns of `PeriodFacts.daily`.
DAILY_COLUMNS = ("date", "event", "count", "sessions", "value")


@dataclass(frozen=True)
class PeriodFacts:
    """One property's facts over one period (see the module docstring for the tables)."""

    period: Period
    sessions: int
    users: int
    tier_sessions: dict[str, float]
    events: Any  # DataFrame indexed by event: count, sessions, value (+ key_events)
    days: Any  # DataFrame: date, sessions, users
    daily: Any  # DataFrame: date, event, count, sessions, value

    @property
    def has_key_events(self) -> bool:
        """Whether the source gave GA's own key-event counts (the BigQuery export does not)."""
        return KEY_EVENTS in self.events


@dataclass(frozen=True)
class ReportFacts:
    """Everything one pull of one property returned, for one or more periods."""

    property: str
    periods: Sequence[PeriodFacts]
    currency: str | None = None  # the property's, which event values are in; None: unknown
    time_zone: str | None = None  # the property's, as the source says; None: unknown
    thresholded: bool = False  # small counts may be withheld
    sampled: bool = False  # the numbers are estimates
    other_row: bool = False  # some rows were folded into '(other)'
    quota: dict[str, Any] | None = field(default=None)  # what the pull cost, if the source says
    source: str = ""  # which source produced them, e.g. "data_api", "export", "bigquery"
    #: What the source says the report should add to its warnings: objects with `code` and
    #: `message` (the export: exact counts, days from intraday tables, events without a
    #: session, what a BigQuery scan cost).
    notes: tuple[Any, ...] = ()
    #: Days read from GA's intraday (streaming) tables only: numbers that will still grow.
    incomplete_days: tuple[Any, ...] = ()
    #: The events of `page:` goals whose rows were counted from matching page views.
    from_page_views: tuple[str, ...] = ()


def check(facts: ReportFacts, periods: Sequence[Period], spec: Spec | None = None) -> None:
    """Raise ValueError when a source's facts do not have the shape described above: one
    `PeriodFacts` per period asked for, in order, each table with its columns, and (given the
    `spec`) every `page:` goal counted from page views. A bug in the source, never a user's
    mistake."""
    if spec is not None:
        left = sorted({g.event for g in spec.goals if g.kind == "page"}
                      - set(facts.from_page_views))
        if left:
            raise ValueError(f"the {facts.source or 'source'} facts do not count the page "
                             f"goals {', '.join(left)} from page views")
    if [pf.period for pf in facts.periods] != list(periods):
        raise ValueError(f"the {facts.source or 'source'} facts are for "
                         f"{[str(pf.period) for pf in facts.periods]}, not for "
                         f"{[str(p) for p in periods]}")
    for pf in facts.periods:
        for table, columns in (("events", EVENT_COLUMNS), ("days", DAY_COLUMNS),
                               ("daily", DAILY_COLUMNS)):
            missing = [c for c in columns if c not in getattr(pf, table)]
            if missing:
                raise ValueError(f"the {facts.source or 'source'} facts' {table} table for "
                                 f"{pf.period} has no {', '.join(missing)} column")
