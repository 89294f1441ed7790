"""The Data API door: every Data API request goes through here.

Requests go through `clients.call` (retries, per-property errors) and the connection's
per-property concurrency slots, with a version-stamped user agent; long reports are paged by
offset; every answer is checked and parsed (`parse_report`) into plain columns. This is the
only module that reaches the client's HTTP session: it posts proto3 JSON through the client's
own authorized session and parses the answer with `json.loads` straight into columns, because
going through proto-plus objects row by row is ~10x slower on large pages
(see bench/report_parse.py).
"""

from __future__ import annotations

import gc
import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from ga_sync.clients import Connection, call
from ga_sync.errors import MalformedAnswer
from ga_sync.garules import DATA_BATCH_REQUESTS_MAX

PAGE_LIMIT = 100_000  # rows asked per request; GA allows up to 250,000
TIMEOUT = 60.0
#: At most this many offset pages per report: GA's rowCount and offsets cannot make a pull
#: endless (at 100,000 rows a page, 100 million rows).
MAX_PAGES = 1000

#: A named request: (name, runReport body in proto3 JSON, camelCase).
NamedRequest = tuple[str, dict[str, Any]]


# --------------------------------------------------------------------------- parsing


@dataclass
class ParsedReport:
    """One report as plain columns: no proto objects, no per-row attribute access."""

    columns: dict[str, list[Any]]
    metric_types: dict[str, str]
    row_count: int
    totals: list[dict[str, Any]]
    metadata: dict[str, Any]
    quota: dict[str, Any] | None
    #: Each metric column as float64, from the check that every value is a number (reused by
    #: `frame` while the column has not grown since, e.g. by paging).
    numbers: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def frame(self) -> Any:
        """The columns as a DataFrame, metrics numeric (integers as int64).

        Metrics are converted once, with numpy, and the frame is built in one go: converting
        string columns inside a DataFrame (`pd.to_numeric`) took as long as `json.loads` on a
        250,000-row page. The dtypes are `pd.to_numeric`'s: int64 for an integer metric and for
        any metric written without a decimal point or exponent, float64 otherwise.
        """
        import pandas as pd
        with _gc_paused():
            if not self.columns or not next(iter(self.columns.values())):
                return self._frame_slowly()
            data: dict[str, Any] = {}
            for name, values in self.columns.items():
                kind = self.metric_types.get(name)
                data[name] = values if kind is None else self._numeric(name, values, kind)
                if data[name] is None:
                    return self._frame_slowly()
            return pd.DataFrame(data)

    def _numeric(self, name: str, values: list[Any], kind: Any) -> Any:
        """A metric column as int64 or float64, as `pd.to_numeric` would type it; None when
        the values are not all strings (JSON numbers: left to pandas)."""
        import numpy as np
        try:
            text = "".join(values)
        except TypeError:
            return None
        cached = self.numbers.get(name)
        numbers = cached if cached is not None and len(cached) == len(values) \
            else np.asarray(values, dtype=float)
        if kind in ("TYPE_INTEGER", "1", 1) or not ("." in text or "e" in text or "E" in text):
            return numbers.astype("int64")
        return numbers

    def _frame_slowly(self) -> Any:
        import pandas as pd
        df = pd.DataFrame(self.columns)
        for name, kind in self.metric_types.items():
            if name in df:
                df[name] = pd.to_numeric(df[name], errors="coerce").fillna(0)
                if kind in ("TYPE_INTEGER", "1", 1) and len(df):
                    df[name] = df[name].astype("int64")
        return df


_METRIC_TYPE_NAMES = {1: "TYPE_INTEGER", 2: "TYPE_FLOAT", 4: "TYPE_SECONDS",
                      5: "TYPE_MILLISECONDS", 6: "TYPE_MINUTES", 7: "TYPE_HOURS",
                      8: "TYPE_STANDARD", 9: "TYPE_CURRENCY", 10: "TYPE_FEET", 11: "TYPE_MILES",
                      12: "TYPE_METERS", 13: "TYPE_KILOMETERS"}


def malformed(property: str | None, what: str, detail: str) -> MalformedAnswer:
    """The error for an answer that is not a valid Data API answer: where, what, what to do."""
    where = f" for {property}" if property else ""
    return MalformedAnswer(
        f"GA's answer to {what}{where} is not a valid answer: {detail}. Something between "
        "ga-sync and GA (a proxy, a firewall, an outage page) or a GA fault may have changed "
        "it: try again later, and check GA_SYNC_DATA_ENDPOINT if it is set.",
        property=property)


def _headers(report: dict[str, Any], key: str, bad: Any) -> list[dict[str, Any]]:
    heads = report.get(key) or []
    if not isinstance(heads, list) or not all(
            isinstance(h, dict) and isinstance(h.get("name"), str) and h["name"] for h in heads):
        raise bad(f"`{key}` is not a list of named headers")
    return heads


def _row_problem(r: Any, dims: list[str], mets: list[str]) -> str | None:
    """What is wrong with one row (or totals row), or None."""
    if not isinstance(r, dict):
        return f"a row is {type(r).__name__}, not an object"
    for key, names in (("dimensionValues", dims), ("metricValues", mets)):
        if not names:
            continue
        values = r.get(key)
        if not isinstance(values, list):
            return f"a row has no `{key}` list"
        if len(values) < len(names):
            return f"a row has {len(values)} `{key}` for {len(names)} headers"
        if not all(isinstance(v, dict) for v in values[:len(names)]):
            return f"a row's `{key}` are not objects"
    return None


def _check_numbers(name: str, values: list[Any], bad: Any) -> Any:
    """Every metric value is a finite number written as a string (or a number); returns them
    as a float64 array (None for no values)."""
    import numpy as np

    if not values:
        return None
    try:
        numbers = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        numbers = None
    if numbers is None or not bool(np.isfinite(numbers).all()):
        from ga_sync.redact import excerpt
        for v in values:
            try:
                if math.isfinite(float(v)):
                    continue
            except (TypeError, ValueError):
                pass
            raise bad(f"metric `{excerpt(name, 40)}` has the value {excerpt(repr(v), 40)}, "
                      "not a number")
    return numbers


def _column(values: list[Any], i: int, default: str) -> list[Any]:
    """The i-th value of every row; proto3 JSON leaves a default value out (the slower
    `.get` only then)."""
    try:
        return [v[i]["value"] for v in values]
    except KeyError:
        return [v[i].get("value", default) for v in values]


def parse_report(report: Any, *, property: str | None = None,
                 request: dict[str, Any] | None = None,
                 what: str = "a report") -> ParsedReport:
    """A runReport response (already `json.loads`-ed) -> columns of strings and numbers.

    Handles GA's empty answer (no `rows`, no `rowCount`) and enum types as names or numbers,
    and reads an omitted value as proto3 JSON's default ("" for a dimension, "0" for a
    metric). Anything else that is not a report (not an object, rows that are not objects,
    fewer values than headers, a metric value that is not a number, a `rowCount` that is not
    a count, or, given the `request`, a requested dimension or metric missing from the
    headers) raises MalformedAnswer for `property`.
    """
    def bad(detail: str) -> MalformedAnswer:
        return malformed(property, what, detail)

    if not isinstance(report, dict):
        raise bad(f"the report is {type(report).__name__}, not a JSON object")
    dheads = _headers(report, "dimensionHeaders", bad)
    mheads = _headers(report, "metricHeaders", bad)
    dims = [h["name"] for h in dheads]
    mets = [h["name"] for h in mheads]
    if request is not None:
        from ga_sync.redact import excerpt
        for key, got in (("dimensions", dims), ("metrics", mets)):
            wanted = [d.get("name") for d in request.get(key, [])]
            missing = [n for n in wanted if n not in got]
            if missing:
                raise bad(f"the {key} {excerpt(', '.join(map(str, missing)), 40)} asked for "
                          "are missing from its headers")
    types = {h["name"]: _METRIC_TYPE_NAMES.get(h.get("type"), h.get("type", "TYPE_INTEGER"))
             for h in mheads}
    rows = report.get("rows") or []
    if not isinstance(rows, list):
        raise bad("`rows` is not a list")
    columns: dict[str, list[Any]] = {}
    try:  # each row's value lists once, then one pass per column over them
        values = [r["dimensionValues"] for r in rows] if dims else []
        for i, name in enumerate(dims):
            columns[name] = _column(values, i, "")
        values = [r["metricValues"] for r in rows] if mets else []
        for i, name in enumerate(mets):
            columns[name] = _column(values, i, "0")
    except (KeyError, IndexError, TypeError, AttributeError):
        problem = next((p for p in (_row_problem(r, dims, mets) for r in rows) if p),
                       "a row has the wrong shape")
        raise bad(problem) from None
    numbers = {name: _check_numbers(name, columns[name], bad) for name in mets}

    totals = report.get("totals") or []
    if not isinstance(totals, list):
        raise bad("`totals` is not a list")

    def row_dict(r: Any) -> dict[str, Any]:
        # a totals row may leave out its dimension values (read as ""), never its metrics
        problem = _row_problem(r, dims if not isinstance(r, dict) or "dimensionValues" in r
                               else [], mets)
        if problem:
            raise bad(problem.replace("a row", "a totals row", 1))
        out = {d: r.get("dimensionValues", [{}] * len(dims))[i].get("value", "")
               for i, d in enumerate(dims)}
        for i, m in enumerate(mets):
            value = r["metricValues"][i].get("value", "0")
            _check_numbers(m, [value], bad)
            out[m] = float(value or 0)
        return out

    raw_count = report.get("rowCount", 0) or 0
    try:
        if isinstance(raw_count, bool) or isinstance(raw_count, float):
            raise ValueError
        row_count = int(raw_count)
    except (TypeError, ValueError):
        row_count = -1
    if row_count < 0:
        from ga_sync.redact import excerpt
        raise bad(f"`rowCount` is {excerpt(repr(raw_count), 30)}, not a count of rows")
    metadata = report.get("metadata") or {}
    quota = report.get("propertyQuota")
    if not isinstance(metadata, dict) or not (quota is None or isinstance(quota, dict)):
        raise bad("`metadata` or `propertyQuota` is not an object")
    return ParsedReport(columns=columns, metric_types=types, row_count=row_count,
                        totals=[row_dict(t) for t in totals], metadata=metadata, quota=quota,
                        numbers={k: v for k, v in numbers.items() if v is not None})


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a large page is parsed.

    json.loads of a 250,000-row page allocates millions of small dicts and strings, none of them
    cyclic; with the collector running, its generation scans cost more than the parsing itself
    (measured: 2.0 s with, 0.7 s without). Restored afterwards, even on error.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


# --------------------------------------------------------------------------- requests


def user_agent() -> str:
    """The version-stamped `x-goog-api-client` value every Data API request carries."""
    from ga_sync import __version__
    return f"gl-python ga-sync/{__version__}"


def post(conn: Connection, property: str, method: str, body: dict[str, Any], *,
         version: str = "v1beta", what: str | None = None) -> dict[str, Any]:
    """POST to the Data API through the client's own authorized session, parse with json.loads.

    `version` "v1alpha" goes through the v1alpha client (`runFunnelReport`). Goes through
    `clients.call` (retries, per-property errors). An answer with a success status that is not
    a JSON object (an HTML page, truncated or empty text) raises MalformedAnswer.
    """
    from google.api_core import exceptions as gexc

    client = conn.data_alpha() if version == "v1alpha" else conn.data()
    transport = client._transport
    url = f"{transport._host}/{version}/{property}:{method}"
    headers = {"Content-Type": "application/json",
               "x-goog-api-client": user_agent()}
    what = what or f"run reports ({method})"

    def send() -> dict[str, Any]:
        with conn.data_slot(property):
            response = transport._session.post(url, params={"$alt": "json;enum-encoding=int"},
                                               data=json.dumps(body), headers=headers,
                                               timeout=TIMEOUT)
        if response.status_code >= 400:
            raise gexc.from_http_response(response)
        try:
            with _gc_paused():
                answer = json.loads(response.content)
        except ValueError:  # JSONDecodeError, UnicodeDecodeError
            answer = None
        if not isinstance(answer, dict):
            from ga_sync.redact import excerpt
            kind = response.headers.get("Content-Type", "no content type")
            text = response.content[:200].decode("utf-8", "replace")
            shown = f": {excerpt(text)!r}" if text.strip() else ": an empty body"
            raise malformed(property, what, f"HTTP {response.status_code} with "
                             f"{excerpt(kind, 40)} that is not a JSON object{shown}")
        return answer

    return call(send, policy=conn.retry, property=property, what=what, paced=False)


def _rows(parsed: ParsedReport) -> int:
    return len(next(iter(parsed.columns.values()), []))


def fetch(conn: Connection, property: str,
          requests: list[NamedRequest]) -> dict[str, ParsedReport]:
    """One batchRunReports call (at most 5 requests) plus offset pages for any long report.

    Every answer is checked (see `parse_report`): the batch must hold one report per request,
    and paging must make progress (no page repeating rows already received, at most
    `MAX_PAGES` pages), otherwise MalformedAnswer for this property.

    The collector stays paused until the raw answers are freed: re-enabled while they live,
    its next collection scans their millions of dicts (0.3-0.5 s on a 250,000-row page).
    """
    with _gc_paused():
        return _fetch(conn, property, requests)


def _fetch(conn: Connection, property: str,
           requests: list[NamedRequest]) -> dict[str, ParsedReport]:
    if len(requests) > DATA_BATCH_REQUESTS_MAX:
        raise ValueError(f"batchRunReports takes at most {DATA_BATCH_REQUESTS_MAX} requests")
    what = "run reports (batchRunReports)"
    data = post(conn, property, "batchRunReports", {"requests": [r for _, r in requests]})
    reports = data.get("reports")
    if not isinstance(reports, list) or len(reports) != len(requests):
        n = len(reports) if isinstance(reports, list) else "no"
        raise malformed(property, what, f"{n} reports for {len(requests)} requests")
    out: dict[str, ParsedReport] = {}
    for (name, body), raw in zip(requests, reports):
        label = f"run reports (the {name} report)"
        with _gc_paused():
            parsed = parse_report(raw, property=property, request=body, what=label)
        got = _rows(parsed)
        offset = got
        first_rows = {tuple(c[0] for c in parsed.columns.values())} if got else set()
        pages = 0
        while got and offset < parsed.row_count:
            pages += 1
            if pages > MAX_PAGES:
                raise malformed(property, label, f"rowCount says {parsed.row_count} rows, but "
                                 f"{MAX_PAGES} pages brought only {offset}")
            raw_page = post(conn, property, "runReport", {**body, "offset": str(offset)})
            with _gc_paused():
                page = parse_report(raw_page, property=property, request=body, what=label)
            n = _rows(page)
            if n == 0:
                break
            if list(page.columns) != list(parsed.columns):
                raise malformed(property, label, f"the page at offset {offset} has other "
                                 "columns than the first page")
            first = tuple(c[0] for c in page.columns.values())
            if first in first_rows:
                raise malformed(property, label, f"the page at offset {offset} repeats rows "
                                 f"already received (rowCount {parsed.row_count}): the paging "
                                 "does not advance")
            first_rows.add(first)
            for k, v in page.columns.items():
                parsed.columns[k].extend(v)
            parsed.quota = page.quota or parsed.quota
            offset += n
        out[name] = parsed
    return out

