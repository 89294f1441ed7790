"""The GA4 BigQuery export as a source of report facts (issue 12).

One step per module, in the order data flows:

  layout.py   a folder of exported files -> which days exist, in which files (and errors)
  query.py    spec goals + periods -> ONE BigQuery SQL query for every facts table
  engines.py  run that query: DuckDB over the files (transpiled) or BigQuery itself
  source.py   the `Source` report.py pulls from: `parse_source("export:PATH")`, ...
  writer.py   an event log (the sandbox's) -> a GA4-schema export on disk

The public entry points are re-exported here.
"""

from __future__ import annotations

from typing import Any

__all__ = ["parse_source", "export_source", "bigquery_source", "write_events", "write_traffic",
           "build_query"]


def __getattr__(name: str) -> Any:  # lazy: importing ga_sync.export stays cheap
    if name in ("parse_source", "export_source", "bigquery_source"):
        from ga_sync.export import source
        return getattr(source, name)
    if name in ("write_events", "write_traffic"):
        from ga_sync.export import writer
        return getattr(writer, name)
    if name == "build_query":
        from ga_sync.export import query
        return query.build_query
    raise AttributeError(name)
