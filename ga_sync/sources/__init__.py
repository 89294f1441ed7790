"""Where a report's facts come from: one module per source, each with the same small interface.

A source is anything with a `name` and a `pull(conn, spec, property, periods) -> ReportFacts`
(a module works: `ga_sync.sources.data_api` is one). The report (report.py) computes every
number from those facts, so a second source (the GA4 BigQuery export) only has to produce the
tables `ga_sync.facts` describes: raw event counts, sessions with the event and event value per
day and event, per-day sessions and users, and per period the de-duplicated sessions, users and
sessions with a macro or micro conversion.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from ga_sync.facts import ReportFacts
from ga_sync.model import Spec
from ga_sync.periods import Period


class Source(Protocol):
    """What report.py needs of a data source."""

    name: str

    def pull(self, conn: Any, spec: Spec, property: str,
             periods: Sequence[Period]) -> ReportFacts:
        """The facts of `property` for each of `periods` (in that order), for `spec`'s goals.

        Raises a GaSyncError (ApiError, MalformedAnswer, ...) for this property when the
        source refuses or answers something that is not an answer.
        """
        ...


def default_source() -> Source:
    """The GA4 Data API."""
    from ga_sync.sources import data_api
    return data_api


__all__ = ["Source", "default_source"]
