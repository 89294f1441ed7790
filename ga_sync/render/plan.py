"""Plans (and later reports and findings) as text, Markdown and JSON. Returns strings; never prints."""

from __future__ import annotations

import json
from typing import Any

from ga_sync.model import CREATE, DELETE, UPDATE, Change, KeyEventSettings, Plan, PropertyPlan

SYMBOL = {CREATE: "+", UPDATE: "~", DELETE: "-"}


def fmt_value(s: KeyEventSettings | None) -> str:
    if s is None or s.value is None:
        return "none"
    return f"{s.value:g} {s.currency}"


def describe(change: Change) -> str:
    """The settings part of one change line, e.g. `value none -> 40 USD`."""
    b, a = change.before, change.after
    if change.action == CREATE and a:
        return f"counting {a.counting}, value {fmt_value(a)}"
    if change.action == DELETE and b:
        return f"counting {b.counting}, value {fmt_value(b)}"
    assert a and b
    parts = []
    if a.counting != b.counting:
        parts.append(f"counting {b.counting} -> {a.counting}")
    if fmt_value(a) != fmt_value(b):
        parts.append(f"value {fmt_value(b)} -> {fmt_value(a)}")
    return ", ".join(parts) or "value representation"


def warnings_of(p: PropertyPlan) -> list[str]:
    """The plan's warnings for one property."""
    return list(p.warnings)


def summary_line(plan: Plan) -> str:
    return (f"Plan: {plan.count(CREATE)} to create, {plan.count(UPDATE)} to update, "
            f"{plan.count(DELETE)} to delete.")


def _closing(plan: Plan, failures: list[Any] | None) -> str:
    """The last line: the counts, and never "no changes" when a property was not read."""
    if failures:
        n = len(failures)
        head = summary_line(plan) if plan.has_changes else "No changes in the properties read."
        return (f"{head} {n} propert{'ies' if n != 1 else 'y'} could not be read: "
                + ", ".join(f"{f.property} ({f.client})" for f in failures) + ".")
    return (summary_line(plan) if plan.has_changes else
            "No changes. The properties match their specs.")


def plan_text(plan: Plan, failures: list[Any] | None = None) -> str:
    lines: list[str] = []
    for p in plan.properties:
        lines.append(f"{p.property} ({p.client})")
        if not p.changes:
            lines.append("  no changes")
        width = max((len(c.event) for c in p.changes), default=0)
        for c in p.changes:
            lines.append(f"  {SYMBOL[c.action]} {c.event.ljust(width)}  {describe(c)}")
        if p.unmanaged:
            lines.append(f"  unmanaged (not in the spec, left alone): {', '.join(p.unmanaged)}")
        if p.protected:
            lines.append(f"  protected (GA does not allow deleting them): {', '.join(p.protected)}")
        for w in warnings_of(p):
            lines.append(f"  warning: {w}")
        lines.append("")
    lines.append(_closing(plan, failures))
    return "\n".join(lines) + "\n"


def plan_markdown(plan: Plan, failures: list[Any] | None = None) -> str:
    out = ["### ga-sync plan", ""]
    out.append(f"**{_closing(plan, failures)}**")
    out.append("")
    if failures:
        out.append("| not read | client | error |")
        out.append("|---|---|---|")
        for f in failures:
            message = str(f.message).replace("|", "\\|").replace("\n", " ")
            out.append(f"| `{f.property}` | {f.client} | {message} |")
        out.append("")
    for p in plan.properties:
        out.append(f"#### {p.client} (`{p.property}`)")
        out.append("")
        if p.changes:
            out.append("| | action | event | before | after |")
            out.append("|---|---|---|---|---|")
            for c in p.changes:
                before = f"{c.before.counting}, {fmt_value(c.before)}" if c.before else ""
                after = f"{c.after.counting}, {fmt_value(c.after)}" if c.after else ""
                out.append(f"| `{SYMBOL[c.action]}` | {c.action} | `{c.event}` | {before} | {after} |")
        else:
            out.append("No changes.")
        if p.unmanaged:
            out.append("")
            out.append("Unmanaged key events (not in the spec): "
                       + ", ".join(f"`{e}`" for e in p.unmanaged))
        if p.protected:
            out.append("")
            out.append("Protected (GA does not allow deleting them): "
                       + ", ".join(f"`{e}`" for e in p.protected))
        for w in warnings_of(p):
            out.append("")
            out.append(f"**Warning:** {w}")
        out.append("")
    return "\n".join(out)


def to_json(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def plan_json(plan: Plan, failures: list[Any] | None = None) -> str:
    """The plan JSON contract (README); `failures` if given, else the plan's own `errors`."""
    data = plan.to_json()
    if failures:
        data["errors"] = [{"property": f.property, "client": f.client, "message": f.message}
                          for f in failures]
    return to_json(data)
