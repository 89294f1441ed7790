"""The GA4 BigQuery export as a report source: `parse_source("export:PATH")` and friends.

A source (see `ga_sync.sources`) has a `name` and `pull(conn, spec, property, periods) ->
ReportFacts`; report.py computes every number from those facts. Three are known by text, the
value of `--source` and of the Python API's `source=`:

  data-api                   the GA4 Data API (`ga_sync.sources.data_api`), the default
  export:PATH                files under PATH/analytics_<property id>/ (layout.py), on DuckDB
  bigquery:PROJECT           the dataset PROJECT.analytics_<property id>, on BigQuery
  bigquery:PROJECT.DATASET   that dataset (a spec with one property)

What the report should say beyond the facts (the export is exact: no thresholding, sampling or
estimates; days read from intraday tables are incomplete; events without `ga_session_id`;
what a BigQuery scan cost) travels in `ReportFacts.notes` (`Note(code, message)`, the shape of
the report's warnings), which the report adds to its warnings; each export source also keeps
them per property, `source.warnings_for(property)`, valid after that property's `pull`.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ga_sync.errors import GaSyncError
from ga_sync.export.engines import (DEFAULT_MAX_GB, BigQueryEngine, DryRun, DuckDBEngine,
                                    bigquery_client)
from ga_sync.export.layout import (ExportDay, ExportError, ExportLayout, UnreadableExport,
                                   check_days, check_files, day_ranges, find_export)
from ga_sync.export.query import ExportQuery, build_query, table_ref, to_facts
from ga_sync.facts import ReportFacts
from ga_sync.model import Spec, property_id, property_name
from ga_sync.periods import Period

EXPORT, BIGQUERY, DATA_API = "export", "bigquery", "data-api"
#: The `--source` forms, for help texts and error messages.
SOURCE_FORMS = ("data-api", "export:PATH", "bigquery:PROJECT", "bigquery:PROJECT.DATASET")


class SourceError(GaSyncError):
    """A `--source` value that names no source."""


@dataclass(frozen=True)
class Note:
    """Something the report should say about an export pull (shaped like report.Warning_)."""

    code: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


EXACT = Note("exact", "Counted from the raw events of the BigQuery export: no thresholding, "
             "sampling or estimates (the Data API estimates sessions and users and may "
             "withhold small rows, so its numbers can differ slightly).")


def _rule_note(spec: Spec) -> Note | None:
    made = [g.event for g in spec.goals if g.origin is not None]
    if not made:
        return None
    return Note("from-definition", "Goals GA creates (" + ", ".join(f"'{e}'" for e in made) +
                ") are counted from their definition on the raw events (the rule's source "
                "events, or the session's page views and duration), not from the events GA "
                "created: days before the rule or audience existed count too.")


class _ExportBase:
    """What the file and BigQuery sources share: notes per property, the query, the facts."""

    name = EXPORT

    def __init__(self) -> None:
        self._notes: dict[str, list[Note]] = {}
        self._lock = threading.Lock()

    def warnings_for(self, property: str) -> list[Note]:
        """The notes of the last pull of `property` (empty before any pull)."""
        with self._lock:
            return list(self._notes.get(property_name(property), []))

    def _facts(self, frame: Any, spec: Spec, prop: str, periods: Sequence[Period],
               incomplete: Sequence[str], extra: Sequence[Note] = ()) -> ReportFacts:
        notes = [EXACT, *extra]
        rule = _rule_note(spec)
        if rule:
            notes.append(rule)
        if incomplete:
            notes.append(Note("incomplete", f"{len(incomplete)} day"
                              f"{'s' if len(incomplete) != 1 else ''} ({day_ranges(incomplete)})"
                              " came from the intraday (streaming) table only: GA has not "
                              "written the daily table yet, so numbers will grow."))
        totals = frame[frame["kind"] == "total"] if len(frame) else frame
        events = float(totals["n"].fillna(0).sum()) if len(totals) else 0.0
        without = float(totals["value"].fillna(0).sum()) if len(totals) else 0.0
        if events and without >= events:
            raise UnreadableExport(
                f"{prop}: none of the {events:,.0f} exported events has a ga_session_id "
                "parameter, so there are no sessions to count. Is this a GA4 web/app export "
                "(event_params with key 'ga_session_id')?", property=prop)
        if without:
            notes.append(Note("no-session-id", f"{without:,.0f} of {events:,.0f} events have no "
                              "ga_session_id parameter: they count as events and users but "
                              "belong to no session."))
        facts = to_facts(frame, periods, property=prop, source=self.name)
        with self._lock:
            self._notes[prop] = notes
        from dataclasses import replace
        from datetime import date
        days = tuple(d if isinstance(d, date) else date(int(str(d)[:4]), int(str(d)[4:6]),
                                                        int(str(d)[6:8])) for d in incomplete)
        pages = tuple(g.event for g in spec.goals if g.kind == "page")  # by their definition
        return replace(facts, notes=tuple(notes), incomplete_days=days, from_page_views=pages)


class ExportSource(_ExportBase):
    """GA4 export files under `root` (`root/analytics_<id>/events_YYYYMMDD.*`), on DuckDB.

    `missing="error"` (default) refuses a period with a day that has no table
    (`MissingDays`); `"warn"` counts such days as empty and says so in `warnings_for`.
    """

    name = EXPORT

    def __init__(self, root: str | Path, *, engine: DuckDBEngine | None = None,
                 missing: str = "error") -> None:
        super().__init__()
        if missing not in ("error", "warn"):
            raise ValueError("missing must be 'error' or 'warn'")
        self.root = Path(root).expanduser()
        self.engine = engine or DuckDBEngine()
        self.missing = missing

    def __repr__(self) -> str:
        return f"ExportSource({str(self.root)!r})"

    def layout(self, property: str) -> ExportLayout:
        """Where `property`'s export is, and its days (ExportNotFound when absent)."""
        return find_export(self.root, property)

    def query(self, spec: Spec, property: str, periods: Sequence[Period],
              layout: ExportLayout | None = None) -> ExportQuery:
        """The BigQuery query these files answer for `property` (intraday days included)."""
        layout = layout or self.layout(property)
        return build_query(spec, periods, table=table_ref(EXPORT, layout.folder.name),
                           intraday=layout.incomplete(periods))

    def show_sql(self, conn: Any, spec: Spec, property: str,
                 periods: Sequence[Period]) -> str:
        """The BigQuery SQL of the query (what DuckDB runs, transpiled, over the files); the
        same signature as `BigQuerySource.show_sql` (`conn` is not used)."""
        return self.query(spec, property, periods).sql

    def pull(self, conn: Any, spec: Spec, property: str,
             periods: Sequence[Period]) -> ReportFacts:
        """The facts of `property` for each of `periods`, from its exported files."""
        prop = property_name(property)
        layout = self.layout(prop)
        notes = []
        if self.missing == "error":
            check_days(layout, periods)
        else:
            gone = layout.missing(periods)
            if gone:
                notes.append(Note("missing-days", f"The export has no table for {len(gone)} "
                                  f"day{'s' if len(gone) != 1 else ''} ({day_ranges(gone)}): "
                                  "counted as days without traffic."))
        check_files(layout, layout.files(periods))
        q = self.query(spec, prop, periods, layout)
        if not layout.files(periods):  # warn mode, nothing at all: an empty result
            import pandas as pd
            from ga_sync.export.query import RESULT_COLUMNS
            frame = pd.DataFrame(columns=list(RESULT_COLUMNS))
        else:
            frame = self.engine.run(q, layout)
        return self._facts(frame, spec, prop, periods, layout.incomplete(periods), notes)


class BigQuerySource(_ExportBase):
    """The export dataset on BigQuery: `PROJECT.analytics_<id>`, or `PROJECT.DATASET`.

    Each pull lists the dataset's tables (for days only in `events_intraday_*`), dry-runs the
    query, refuses more than `max_gb` GB (10**9 bytes) and runs it with
    `maximum_bytes_billed`. `client` (a `google.cloud.bigquery.Client`) is built from the
    connection's credentials on first use when not given.
    """

    name = BIGQUERY

    def __init__(self, project: str, dataset: str | None = None, *,
                 max_gb: float = DEFAULT_MAX_GB, client: Any = None,
                 missing: str = "error") -> None:
        super().__init__()
        self.project, self.dataset = project, dataset
        self.max_gb = float(max_gb)
        self.missing = missing
        self._client = client
        self._dataset_property: str | None = None

    def __repr__(self) -> str:
        return f"BigQuerySource({self.project!r}, {self.dataset!r})"

    def engine(self, conn: Any = None) -> BigQueryEngine:
        with self._lock:
            if self._client is None:
                self._client = bigquery_client(self.project,
                                               getattr(conn, "credentials", None))
            return BigQueryEngine(self._client, self.max_gb)

    def dataset_for(self, property: str) -> str:
        """The dataset holding `property`'s export (one property per explicit dataset)."""
        prop = property_name(property)
        if self.dataset is None:
            return f"analytics_{property_id(prop)}"
        with self._lock:
            if self._dataset_property is None:
                self._dataset_property = prop
            elif self._dataset_property != prop:
                raise ExportError(
                    f"{prop}: bigquery:{self.project}.{self.dataset} names one dataset, "
                    f"already used for {self._dataset_property}; give bigquery:{self.project} "
                    "to read each property's analytics_<id> dataset.", property=prop)
        return self.dataset

    def _layout(self, engine: BigQueryEngine, prop: str, dataset: str) -> ExportLayout:
        daily, intraday = engine.table_days(self.project, dataset, prop)
        days = {d: ExportDay(d, ()) for d in daily}
        for d in intraday - daily:
            days[d] = ExportDay(d, (), intraday=True)
        if not days:
            from ga_sync.export.layout import ExportNotFound
            raise ExportNotFound(f"{prop}: the BigQuery dataset {self.project}.{dataset} has no "
                                 "events_YYYYMMDD tables. Is the property's BigQuery link "
                                 "exporting to it?", property=prop)
        return ExportLayout(property=prop, folder=Path(f"{self.project}.{dataset}"),
                            format=BIGQUERY, days=dict(sorted(days.items())))

    def query(self, conn: Any, spec: Spec, property: str,
              periods: Sequence[Period]) -> tuple[ExportQuery, ExportLayout]:
        prop = property_name(property)
        dataset = self.dataset_for(prop)
        layout = self._layout(self.engine(conn), prop, dataset)
        if self.missing == "error":
            check_days(layout, periods)
        q = build_query(spec, periods, table=table_ref(self.project, dataset),
                        intraday=layout.incomplete(periods))
        return q, layout

    def show_sql(self, conn: Any, spec: Spec, property: str, periods: Sequence[Period]) -> str:
        """The exact BigQuery SQL a pull would run (lists the dataset's tables; runs nothing)."""
        return self.query(conn, spec, property, periods)[0].sql

    def dry_run(self, conn: Any, spec: Spec, property: str,
                periods: Sequence[Period]) -> DryRun:
        """What the pull would scan and cost (ScanTooLarge over `max_gb`); runs nothing."""
        q, _ = self.query(conn, spec, property, periods)
        return self.engine(conn).dry_run(q.sql, property_name(property))

    def pull(self, conn: Any, spec: Spec, property: str,
             periods: Sequence[Period]) -> ReportFacts:
        prop = property_name(property)
        q, layout = self.query(conn, spec, prop, periods)
        engine = self.engine(conn)
        frame = engine.run(q, prop)
        dry = engine.dry_runs.get(prop)
        extra = [Note("scan", f"BigQuery: {dry.describe()}.")] if dry else []
        facts = self._facts(frame, spec, prop, periods, layout.incomplete(periods), extra)
        if dry is not None:
            from dataclasses import replace
            facts = replace(facts, quota={"bigquery": {"totalBytesProcessed": dry.bytes,
                                                       "estimatedUsd": round(dry.usd, 6)}})
        return facts


def export_source(path: str | Path, **kwargs: Any) -> ExportSource:
    """`ExportSource(path)`: GA4 export files on DuckDB (see ExportSource for options)."""
    return ExportSource(path, **kwargs)


def bigquery_source(target: str, **kwargs: Any) -> BigQuerySource:
    """`"PROJECT"` or `"PROJECT.DATASET"` -> a BigQuerySource (max_gb=, client=)."""
    project, _, dataset = target.strip().partition(".")
    if not project:
        raise SourceError(f"bigquery:{target} names no project: write bigquery:PROJECT or "
                          "bigquery:PROJECT.DATASET")
    try:
        table_ref(project, dataset or "analytics_0")
    except ValueError:
        raise SourceError(f"bigquery:{target} is not a BigQuery project (or project.dataset) "
                          "name") from None
    return BigQuerySource(project, dataset or None, **kwargs)


def parse_source(text: str | None, *, max_gb: float = DEFAULT_MAX_GB, client: Any = None,
                 missing: str = "error") -> Any:
    """A `--source` value -> the source object report.py pulls from.

    `None` or `data-api` -> the Data API module; `export:PATH` -> ExportSource;
    `bigquery:PROJECT[.DATASET]` -> BigQuerySource (`max_gb`, `client` apply to it).
    Anything else is a SourceError listing the forms.
    """
    raw = (text or DATA_API).strip()
    kind, colon, rest = raw.partition(":")
    kind = kind.strip().lower()
    if kind in ("data-api", "data_api", "dataapi") and not rest:
        from ga_sync.sources import data_api
        return data_api
    if kind == EXPORT and colon:
        if not rest.strip():
            raise SourceError("--source export: needs a folder: export:PATH")
        return ExportSource(rest.strip(), missing=missing)
    if kind == BIGQUERY and colon:
        if not rest.strip():
            raise SourceError("--source bigquery: needs a project: bigquery:PROJECT")
        return bigquery_source(rest, max_gb=max_gb, client=client, missing=missing)
    raise SourceError(f"unknown --source {raw!r}: use one of {', '.join(SOURCE_FORMS)}")


def uses_created_events(spec: Spec) -> bool:
    """Whether any goal is counted from a definition (page:/from:/session:)."""
    return any(g.origin is not None for g in spec.goals)


__all__ = ["BIGQUERY", "BigQuerySource", "DATA_API", "EXPORT", "EXACT", "ExportSource", "Note",
           "SOURCE_FORMS", "SourceError", "bigquery_source", "export_source", "parse_source",
           "uses_created_events"]
