"""Reports as JSON, CSV and a plain-text table; the history store's weekly rows as a table.

JSON and CSV carry the numbers exactly as computed (floats via `repr`, never rounded) because
users script against them; only the table rounds, because people paste it into tickets. The
table is plain text built from fixed-width columns computed here (no ANSI, no terminal width),
so the same results always give the same bytes.

CSV holds one row per property x goal with the property-level fields repeated on every row:
property, client, start, end, currency, rate_basis, sessions, users, event, tier, conversions,
rate, value, change (`change` is empty unless the report compares with the previous period),
value_currency (the currency `value` is in), in_total (false for a value in the property's
currency that no --fx rate converted: it is in no total).
Tier summaries (macro/micro, total value, value per session) are left to JSON: they are sums
of the rows (except the de-duplicated session rates) and would otherwise repeat on every row.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from ga_sync.model import MACRO, MICRO, USERS, Spec

if TYPE_CHECKING:
    import pandas as pd

    from ga_sync.report import ReportResult

JSON_VERSION = 1
CSV_COLUMNS = ("property", "client", "start", "end", "currency", "rate_basis", "sessions",
               "users", "event", "tier", "conversions", "rate", "value", "change",
               "value_currency", "in_total")


# --------------------------------------------------------------------------- JSON


def _error_json(error: Any) -> dict[str, Any]:
    """A failed property as `{property, client, message}`, from a failure object or a mapping."""
    if isinstance(error, dict):
        return {k: error.get(k) for k in ("property", "client", "message")}
    return {"property": getattr(error, "property", None), "client": getattr(error, "client", None),
            "message": getattr(error, "message", None) or str(error)}


def finite(data: Any) -> Any:
    """`data` with NaN and infinities as None (JSON null) and -0.0 as 0.0, at any depth.

    JSON has no NaN or Infinity: Python would write them anyway and break strict parsers.
    """
    if isinstance(data, float):
        if not math.isfinite(data):
            return None
        return 0.0 if data == 0 else data
    if isinstance(data, dict):
        return {k: finite(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [finite(v) for v in data]
    return data


def dumps(data: Any) -> str:
    """Strict JSON (never NaN or Infinity), indented, UTF-8 characters kept, newline-ended."""
    return json.dumps(finite(data), indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def report_json(results: Sequence[ReportResult], errors: Sequence[Any] | None = None) -> str:
    """The documented contract: `{"version": 1, "reports": [...]}`, plus `errors` if any failed."""
    data: dict[str, Any] = {"version": JSON_VERSION, "reports": [r.to_json() for r in results]}
    if errors:
        data["errors"] = [_error_json(e) for e in errors]
    return dumps(data)


# --------------------------------------------------------------------------- CSV


def _cell(x: Any) -> str:
    """A number as JSON writes it (int when integral for counts, `repr` for floats), None as ''."""
    if x is None:
        return ""
    if isinstance(x, bool):
        return "true" if x else "false"
    if isinstance(x, float):
        return repr(finite(x)) if math.isfinite(x) else ""
    return str(x)


def report_csv(results: Sequence[ReportResult]) -> str:
    """One row per property x goal, same field names and numbers as the JSON contract.

    When a report has journeys to show (funnels, assists from the export, identified
    visitors), the columns `journeys.render.CSV_COLUMNS` follow, goal rows say `section`
    goal, and each report's journeys rows follow its goals (`journeys.render.csv_rows`).
    """
    from ga_sync.journeys.render import CSV_COLUMNS as JOURNEY_COLUMNS
    from ga_sync.journeys.render import csv_rows, has_journeys

    journeys = any(has_journeys(r) for r in results)
    columns = CSV_COLUMNS + (JOURNEY_COLUMNS if journeys else ())
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for r in results:
        head = r.to_json()
        compare = r.previous is not None
        for g in r.goals:
            row = {**{k: head[k] for k in CSV_COLUMNS[:8]}, **g.to_json(compare, r.currency)}
            row["value_currency"], row["in_total"] = row.pop("currency"), g.in_total
            row["currency"] = head["currency"]
            row["section"] = "goal"
            writer.writerow([_cell(row.get(k)) for k in columns])
        if journeys:
            for extra in csv_rows(r):
                row = {**{k: head[k] for k in CSV_COLUMNS[:8]}, **extra}
                writer.writerow([_cell(row.get(k)) for k in columns])
    return buf.getvalue()


# --------------------------------------------------------------------------- formatting


def rounded(x: float, digits: int) -> float:
    """`x` rounded for display, never -0 (so -0.0 and -0.001 print as 0.00, not -0.00)."""
    x = round(float(x), digits)
    return 0.0 if x == 0 else x


def fmt_count(x: float) -> str:
    """Conversions: whole numbers with thousands separators, one decimal if fractional."""
    if not math.isfinite(x):
        return "-"
    return f"{rounded(x, 0):,.0f}" if float(x).is_integer() else f"{rounded(x, 1):,.1f}"


def fmt_pct(x: float | None, digits: int = 2) -> str:
    if x is None or not math.isfinite(x):
        return "-"
    return f"{rounded(x * 100, digits):.{digits}f}%"


def fmt_change(x: float | None) -> str:
    """Relative change as `+12.3%`; `n/a` when the previous period had nothing to compare to."""
    if x is None or not math.isfinite(x):
        return "n/a"
    return f"{rounded(x * 100, 1):+.1f}%"


def fmt_amount(x: float) -> str:
    """Money without its currency: two decimals, thousands separators, never `-0.00`."""
    if not math.isfinite(x):
        return "-"
    return f"{rounded(x, 2):,.2f}"


def fmt_money(x: float, currency: str) -> str:
    if not math.isfinite(x):
        return "-"
    return f"{fmt_amount(x)} {currency}"


NOT_IN_TOTAL = "not in total"


def goal_money(g: Any, currency: str) -> str:
    """A goal's value in its own currency; `(not in total)` when it is in the property's
    currency and no rate converted it (see the `currency-mismatch` warning)."""
    text = fmt_money(g.value, getattr(g, "currency", None) or currency)
    return text if getattr(g, "in_total", True) else f"{text} ({NOT_IN_TOTAL})"


def relative_change(now: float, before: float) -> float | None:
    """(now - before) / before, None when before is 0 (a change from nothing has no ratio)."""
    return (now - before) / before if before else None


def grid(header: Sequence[str], rows: Iterable[Sequence[str]], right: Sequence[bool],
         indent: str = "  ") -> list[str]:
    """Fixed-width columns sized to their content; numbers right-aligned, text left-aligned."""
    body = [list(r) for r in rows]
    widths = [max(len(x) for x in col) for col in zip(header, *body)]

    def line(cells: Sequence[str]) -> str:
        parts = [c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right)]
        return (indent + "  ".join(parts)).rstrip()

    out = [line(header), indent + "  ".join("-" * w for w in widths)]
    out.extend(line(r) for r in body)
    return out


def basis_label(rate_basis: str) -> str:
    return "users" if rate_basis == USERS else "sessions"


def rate_label(rate_basis: str) -> str:
    """What a tier's `rate` is, in words: `conversions per session` (or `per user`)."""
    return f"conversions per {basis_label(rate_basis)[:-1]}"


SESSION_RATE_LABEL = "sessions with a conversion"
CHANGE_LABEL = "conv. change"  # the goals' `change` is the relative change of conversions

_TIER_ORDER = {MACRO: 0, MICRO: 1}


def macro_first(goals: Iterable[Any]) -> list[Any]:
    """Goals with macro before micro, the spec's order within a tier (for people, not contracts).

    JSON and CSV keep the spec's order: scripts index into them.
    """
    return sorted(goals, key=lambda g: _TIER_ORDER.get(g.tier, len(_TIER_ORDER)))


def error_rows(errors: Sequence[Any] | None) -> list[dict[str, Any]]:
    """Failed properties as `{property, client, message}` dicts, whatever form they came in."""
    return [_error_json(e) for e in errors or ()]


# --------------------------------------------------------------------------- table


def _header(r: ReportResult) -> list[str]:
    days = r.period.days
    lines = [f"{r.client}  {r.property}  {r.period.start.isoformat()}..{r.period.end.isoformat()}"
             f" ({days} day{'s' if days != 1 else ''})"]
    if r.previous is not None:
        p = r.previous.period
        lines[0] += f"  vs {p.start.isoformat()}..{p.end.isoformat()}"
    lines.append(f"sessions {fmt_count(r.sessions)}  users {fmt_count(r.users)}  "
                 f"rate basis: {basis_label(r.rate_basis)}  currency: {r.currency}"
                 + property_currency_note(r))
    return lines


def property_currency_note(r: ReportResult) -> str:
    """`  (GA reports in USD)` when the property's currency is not the report's, else ''."""
    theirs = getattr(r, "property_currency", None)
    return f"  (GA reports in {theirs})" if theirs and theirs != r.currency else ""


def _goals_table(r: ReportResult) -> list[str]:
    compare = r.previous is not None
    header = ["event", "tier", "conversions", f"rate/{basis_label(r.rate_basis)[:-1]}", "value"]
    right = [False, False, True, True, True]
    if compare:
        header.append(CHANGE_LABEL)
        right.append(True)
    rows = []
    for g in macro_first(r.goals):
        row = [g.event, g.tier, fmt_count(g.conversions), fmt_pct(g.rate),
               goal_money(g, r.currency)]
        if compare:
            row.append(fmt_change(g.change))
        rows.append(row)
    if not rows:
        return ["  (no goals)"]
    return grid(header, rows, right)


def _summary(r: ReportResult) -> list[str]:
    """Macro | micro | total side by side: the complete picture in one block."""
    cur = r.currency
    total_conv = r.macro.conversions + r.micro.conversions
    rows = [
        ["conversions", fmt_count(r.macro.conversions), fmt_count(r.micro.conversions),
         fmt_count(total_conv)],
        [rate_label(r.rate_basis), fmt_pct(r.macro.rate), fmt_pct(r.micro.rate), ""],
        [SESSION_RATE_LABEL, fmt_pct(r.macro.session_rate), fmt_pct(r.micro.session_rate), ""],
        ["value", fmt_money(r.macro.value, cur), fmt_money(r.micro.value, cur),
         fmt_money(r.total_value, cur)],
        ["value per session", "", "", fmt_money(r.value_per_session, cur)],
    ]
    p = r.previous
    if p is not None:
        rows.append(["change conversions",
                     fmt_change(relative_change(r.macro.conversions, p.macro.conversions)),
                     fmt_change(relative_change(r.micro.conversions, p.micro.conversions)),
                     fmt_change(relative_change(total_conv,
                                                p.macro.conversions + p.micro.conversions))])
        rows.append(["change value",
                     fmt_change(relative_change(r.macro.value, p.macro.value)),
                     fmt_change(relative_change(r.micro.value, p.micro.value)),
                     fmt_change(relative_change(r.total_value, p.total_value))])
    return grid(["", MACRO, MICRO, "total"], rows, [False, True, True, True])


def _not_included(errors: Sequence[Any] | None) -> list[str]:
    """The properties that failed, so a pasted table can't pass for the complete picture."""
    rows = error_rows(errors)
    if not rows:
        return []
    lines = ["not included:"]
    for e in rows:
        who = "  ".join(str(x) for x in (e["client"], e["property"]) if x)
        message = str(e["message"] or "failed").strip().splitlines() or ["failed"]
        lines.append(f"  {who or '(unknown property)'}: {message[0]}")
        lines.extend(f"    {m}" for m in message[1:])
    return lines


def report_table(results: Sequence[ReportResult], errors: Sequence[Any] | None = None) -> str:
    """Plain text for a terminal or a ticket.

    Per report: a header, the goals (macro first), macro | micro | total side by side, then the
    warnings. `errors` (the failed properties, as `report_json` takes them) end the text in a
    `not included:` block.
    """
    blocks: list[str] = []
    for r in results:
        lines = _header(r)
        lines.append("")
        lines.extend(_goals_table(r))
        lines.append("")
        lines.extend(_summary(r))
        from ga_sync.journeys.render import table_lines
        lines.extend(table_lines(r))
        if r.warnings:
            lines.append("")
            lines.append("warnings:")
            lines.extend(f"  {w.code}: {w.message}" for w in r.warnings)
        blocks.append("\n".join(lines))
    if not blocks:
        blocks.append("No reports.")
    missing = _not_included(errors)
    if missing:
        blocks.append("\n".join(missing))
    return "\n\n".join(blocks) + "\n"


# --------------------------------------------------------------------------- history


def history_table(df: pd.DataFrame, spec: Spec) -> str:
    """`Store.weekly` rows as plain text: per property, one line per ISO week, oldest first."""
    basis = basis_label(spec.rate_basis)
    blocks: list[str] = []
    extra = sorted(set(df["property"]) - set(spec.properties)) if len(df) else []
    for prop in [*spec.properties, *extra]:
        rows_df = df[df["property"] == prop].sort_values("week") if len(df) else df
        currencies = [c for c in rows_df.get("currency", []) if isinstance(c, str) and c]
        currency = currencies[-1] if currencies else spec.currency
        lines = [f"{spec.client}  {prop}  weekly (ISO weeks, Monday start)  rate basis: {basis}  "
                 f"currency: {currency}"]
        if not len(rows_df) or not rows_df["days"].any():
            lines.append("  no history stored: run 'ga-sync report' to record some")
            blocks.append("\n".join(lines))
            continue
        rows = []
        for w in rows_df.itertuples(index=False):
            if not w.days:
                rows.append([w.week.isoformat(), "0"] + ["-"] * 9)
                continue
            rows.append([w.week.isoformat(), str(int(w.days)), fmt_count(w.sessions),
                         fmt_count(w.users), fmt_count(w.macro_conversions),
                         fmt_pct(w.macro_rate), fmt_count(w.micro_conversions),
                         fmt_pct(w.micro_rate), fmt_amount(w.macro_value),
                         fmt_amount(w.micro_value), fmt_amount(w.total_value)])
        header = ["week", "days", "sessions", "users", "macro", "macro rate", "micro",
                  "micro rate", "macro value", "micro value", "total value"]
        lines.extend(grid(header, rows, [False] + [True] * (len(header) - 1)))
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"
