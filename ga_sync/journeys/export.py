"""The journeys query on the export sources: DuckDB over files, or BigQuery itself.

The same files, dataset, table mapping and scan guard as the facts pull of
`ga_sync.export.source` (the source object is reused: its layout, its engine, its intraday
days), so a report's journeys read exactly the days its facts read. One more query per
property: on BigQuery it is dry-run, refused over the source's `max_gb` and run with
`maximum_bytes_billed`, and its scan is reported in a note.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ga_sync.export.engines import JSON_COLUMNS, _duckdb_error, _sql_string, bigquery_error
from ga_sync.export.layout import JSON, ExportLayout
from ga_sync.export.source import BigQuerySource, ExportSource, Note
from ga_sync.journeys.query import (JOURNEY_COLUMNS, JourneyCounts, JourneyQuery,
                                    build_journey_query, to_counts)
from ga_sync.model import Spec, property_name
from ga_sync.periods import Period

_VIEW = "__journey_events"


def _view_sql(engine: Any, layout: ExportLayout, files: Sequence[Any]) -> str:
    """The export engine's view over the files, with `user_id` read from JSON too (the facts
    view reads JSON with a fixed column list that lacks it)."""
    sql = engine.view_sql(layout, files).replace("__export_events", _VIEW, 1)
    if layout.format == JSON:
        cols = {**JSON_COLUMNS, "user_id": "VARCHAR"}
        old = "{" + ", ".join(f"{_sql_string(k)}: {_sql_string(v)}"
                              for k, v in JSON_COLUMNS.items()) + "}"
        new = "{" + ", ".join(f"{_sql_string(k)}: {_sql_string(v)}"
                              for k, v in cols.items()) + "}"
        sql = sql.replace(old, new, 1)
    return sql


def _has_user_id(con: Any, layout: ExportLayout, files: Sequence[Any]) -> bool:
    """Whether every Parquet file has a user_id column (GA's schema has it; a file written
    without it would fail the query: then nobody counts as identified)."""
    if layout.format == JSON:
        return True
    paths = "[" + ", ".join(_sql_string(str(f)) for f in files) + "]"
    rows = con.execute(f"SELECT file_name, bool_or(name = 'user_id') FROM parquet_schema({paths}) "
                       "GROUP BY file_name").fetchall()
    return all(bool(has) for _, has in rows)


def pull_files(source: ExportSource, spec: Spec, property: str,
               periods: Sequence[Period]) -> tuple[list[JourneyCounts], list[Note]]:
    """Journeys counts of `property` from its exported files (DuckDB)."""
    import duckdb

    prop = property_name(property)
    layout = source.layout(prop)
    files = layout.files(periods)
    facts_query = source.query(spec, prop, periods, layout)
    if not files:
        q = build_journey_query(spec, periods, table=facts_query.table)
        return to_counts(_empty(), q), []
    engine = source.engine
    con = engine.connect()
    try:
        try:
            user_id = _has_user_id(con, layout, files)
            q = build_journey_query(spec, periods, table=facts_query.table,
                                    intraday=facts_query.intraday, user_id=user_id)
            con.execute(_view_sql(engine, layout, files))
            frame = con.execute(q.duckdb_sql(_VIEW)).df()
        except duckdb.Error as e:
            raise _duckdb_error(e, layout, files) from None
    finally:
        con.close()
    notes = [] if user_id else [Note("no-user-id", "The exported files have no user_id "
                                     "column: nobody counts as identified.")]
    return to_counts(frame, q), notes


def _empty() -> Any:
    import pandas as pd
    return pd.DataFrame(columns=list(JOURNEY_COLUMNS))


def pull_bigquery(source: BigQuerySource, conn: Any, spec: Spec, property: str,
                  periods: Sequence[Period]) -> tuple[list[JourneyCounts], list[Note]]:
    """Journeys counts of `property` from its BigQuery export dataset: dry-run, refuse over
    the source's max_gb, run with maximum_bytes_billed."""
    import pandas as pd
    from google.cloud import bigquery

    prop = property_name(property)
    facts_query, _ = source.query(conn, spec, prop, periods)
    q = build_journey_query(spec, periods, table=facts_query.table,
                            intraday=facts_query.intraday)
    engine = source.engine(conn)
    dry = engine.dry_run(q.sql, prop)
    config = bigquery.QueryJobConfig(maximum_bytes_billed=engine.max_bytes)
    try:
        job = engine.client.query(q.sql, job_config=config)
        rows = [tuple(r.values()) for r in job.result()]
    except Exception as e:  # google.api_core exceptions, transport errors
        raise bigquery_error(e, prop) from None
    frame = pd.DataFrame(rows, columns=list(JOURNEY_COLUMNS))
    return to_counts(frame, q), [Note("journeys-scan", f"BigQuery (funnels, assists, "
                                      f"identified visitors): {dry.describe()}.")]


def journey_sql(source: Any, conn: Any, spec: Spec, property: str,
                periods: Sequence[Period]) -> JourneyQuery:
    """The journeys query a pull of `source` would run (BigQuery SQL in `.sql`)."""
    prop = property_name(property)
    if isinstance(source, BigQuerySource):
        facts_query, _ = source.query(conn, spec, prop, periods)
    else:
        facts_query = source.query(spec, prop, periods)
    return build_journey_query(spec, periods, table=facts_query.table,
                               intraday=facts_query.intraday)


__all__ = ["journey_sql", "pull_bigquery", "pull_files"]
