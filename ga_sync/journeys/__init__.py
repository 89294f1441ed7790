"""Journeys: funnels, the micro conversions that precede macro ones, identified visitors.

One step per module, in the order data flows:

  query.py     spec + periods -> ONE BigQuery SQL query (funnels, assists, identified) over
               the export, transpiled for DuckDB; its result -> JourneyCounts per period
  export.py    run it over the export source's files (DuckDB) or dataset (BigQuery)
  data_api.py  the Data API: runFunnelReport (v1alpha) per funnel, signedInWithUserId users
  results.py   counts -> the report's numbers (FunnelResult, Assists, Identified); pure

`pull(source, conn, spec, property, periods, users=...)` is what report.py calls, after the
facts pull: it picks the path for the source and returns one `Journeys` per period and the
notes (code, message) the report adds to its warnings.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ga_sync.errors import GaSyncError
from ga_sync.journeys.query import JourneyCounts, build_journey_query, wanted
from ga_sync.journeys.results import (NEEDS_EXPORT, NOT_REQUESTED, UNAVAILABLE, Assists,
                                      Identified, Journeys, journeys_result, with_changes)
from ga_sync.model import MICRO, Spec
from ga_sync.periods import Period

DATA_API = "data-api"


def empty(status: str = NOT_REQUESTED, assists: str | None = None) -> Journeys:
    """No journeys counted: no funnels, assists and identified with `status`."""
    return Journeys([], Assists(assists or status), Identified(status))


def opted_in(spec: Spec) -> bool:
    """The spec asks for journeys explicitly: funnels or `identifies` goals."""
    return bool(spec.funnels) or any(g.identifies for g in spec.goals)


def pull(source: Any, conn: Any, spec: Spec, property: str, periods: Sequence[Period], *,
         users: Sequence[int] = ()) -> tuple[list[Journeys], list[tuple[str, str]]]:
    """One Journeys per period of `property` from `source`, and notes for the report.

    `users` are the periods' users as the facts pull counted them (the Data API's identified
    share divides by them). Raises GaSyncError when the source fails; report.py turns that
    into a warning.
    """
    from ga_sync.export.source import BigQuerySource, ExportSource

    periods = list(periods)
    if isinstance(source, (ExportSource, BigQuerySource)):
        if not wanted(spec):
            return [empty() for _ in periods], []
        from ga_sync.journeys import export
        if isinstance(source, ExportSource):
            counts, notes = export.pull_files(source, spec, property, periods)
        else:
            counts, notes = export.pull_bigquery(source, conn, spec, property, periods)
        out = [journeys_result(spec, c, source.name) for c in counts]
        _changes(out)
        return out, [(n.code, n.message) for n in notes]
    if getattr(source, "name", None) == "data_api":
        return _data_api(conn, spec, property, periods, users)
    return [empty(UNAVAILABLE) for _ in periods], []


def _changes(out: list[Journeys]) -> None:
    if len(out) > 1:
        with_changes(out[0].funnels, out[1].funnels)


NEEDS_EXPORT_NOTE = ("Assists (which micro conversions precede a macro one, per person) need "
                     "each visitor's sequence of events, which only the BigQuery export has: "
                     "run the report with --source export:PATH or bigquery:PROJECT.")
IDENTIFIED_NOTE = ("From the Data API: users signed in with a User-ID (signedInWithUserId); "
                   "whether a goal's users were identified later needs the export.")


def _data_api(conn: Any, spec: Spec, property: str, periods: Sequence[Period],
              users: Sequence[int]) -> tuple[list[Journeys], list[tuple[str, str]]]:
    """Funnels (runFunnelReport) and identified visitors (signedInWithUserId) of every period.

    Failures are per part: a funnel GA refuses is a `funnel-failed` note naming it (the other
    funnels are kept; failing only in the previous period it loses its changes), identified
    visitors GA refuses are an `identified-failed` note (the funnels are kept).
    """
    from ga_sync.journeys import data_api
    from ga_sync.redact import excerpt

    has_micro = any(g.tier == MICRO for g in spec.goals)
    if not opted_in(spec):
        return [empty(NOT_REQUESTED, NEEDS_EXPORT) for _ in periods], []
    notes: list[tuple[str, str]] = []
    funnels: list[dict[str, list[int]]] = [{} for _ in periods]
    if spec.funnels:
        funnels, failed = data_api.pull_funnels(conn, spec, property, periods)
        first: dict[str, tuple[int, GaSyncError]] = {}
        for name, i, e in failed:  # one note per funnel, its current period's failure first
            if name not in first or i < first[name][0]:
                first[name] = (i, e)
        for name, (i, e) in first.items():
            what = (f"Funnel {name!r} could not be computed from the Data API, so it is left "
                    "out" if i == 0 else f"Funnel {name!r}'s previous period could not be "
                    "computed from the Data API, so its changes are left out")
            notes.append(("funnel-failed", f"{what}: {excerpt(str(e), 300)}"))
    out = []
    for i, period in enumerate(periods):
        try:
            c = data_api.pull_identified(conn, spec, property, period,
                                         int(users[i]) if i < len(users) else 0)
        except GaSyncError as e:
            c = JourneyCounts(period)
            if i == 0:
                notes.append(("identified-failed", "Identified visitors could not be counted "
                              f"from the Data API: {excerpt(str(e), 300)}"))
        c.funnel_users = funnels[i]
        j = journeys_result(spec, c, DATA_API, assists=Assists(NEEDS_EXPORT),
                            identified_note=IDENTIFIED_NOTE)
        out.append(j)
    _changes(out)
    if has_micro:
        notes.append(("needs-export", NEEDS_EXPORT_NOTE))
    return out, notes


__all__ = ["Journeys", "build_journey_query", "empty", "opted_in", "pull", "wanted"]
