"""Plans (and later reports and findings) as text, Markdown and JSON. Returns strings; never prints."""

from __future__ import annotations

import json
from typing import Any

from ga_sync.model import (AUDIENCE, CREATE, DELETE, EVENT_CREATE_RULE, KEY_EVENT, UPDATE,
                           Change, EventRule, KeyEventSettings, Plan, PropertyPlan, SessionRule)

SYMBOL = {CREATE: "+", UPDATE: "~", DELETE: "-"}
RESOURCE_LABELS = {KEY_EVENT: "key event", EVENT_CREATE_RULE: "event create rule",
                   AUDIENCE: "audience"}


def _condition(field: str, c: dict) -> str:
    ops = {k: v for k, v in c.items() if k not in ("ignore_case", "negated")}
    op, value = next(iter(ops.items())) if ops else ("?", "")
    out = f"{field} {'not ' if c.get('negated') else ''}{op.replace('_', ' ')} {value}"
    return out + (" (ignoring case)" if c.get("ignore_case") else "")


def describe_form(form: Any) -> str:
    """A rule's or audience's spec-side form in words: `page_view where page_location
    contains /thanks`, `sessions with at least 5 page views`; what ga-sync cannot express is
    said after `also:`."""
    if form is None:
        return ""
    if isinstance(form, SessionRule):
        from ga_sync.machinery import audience_description
        return audience_description(form)
    data = form.to_json() if not isinstance(form, dict) else form
    if isinstance(form, EventRule) or "from" in data:
        where = data.get("where") or {}
        text = str(data.get("from") or "(no source event)")
        if where:
            text += " where " + " and ".join(_condition(f, c) for f, c in where.items())
    else:
        session = data.get("session")
        text = (describe_form(SessionRule(**session)) if session else
                f"audience {data.get('audience') or ''}".strip())
    if data.get("other"):
        text += f"; also: {data['other']}"
    return text


def describe_machinery(change: Change) -> str:
    """The part after the event name for a rule or audience change."""
    label = RESOURCE_LABELS[change.resource]
    if change.resource == EVENT_CREATE_RULE:
        label += f" on stream {(change.stream or '').rsplit('/', 1)[-1]}"
    if change.action == CREATE:
        return f"{label}: {describe_form(change.after)}"
    if change.action == DELETE:
        if change.resource == AUDIENCE:
            label += " (archived: GA never deletes audiences)"
        return f"{label}: {describe_form(change.before)}"
    return f"{label}: {describe_form(change.before)} -> {describe_form(change.after)}"


def describe_last_change(change: Change) -> str | None:
    if change.last_change is None:
        return None
    from ga_sync.changelog import describe as last
    return last(change.last_change)


def _unmanaged_resources(p: PropertyPlan) -> list[str]:
    return [f"{RESOURCE_LABELS[u.resource]} {u.event} ({u.name})"
            for u in getattr(p, "unmanaged_resources", ())]


#: A list of unmanaged things shows this many, then "and N more" (the JSON has them all).
LIST_MAX = 10


def shorten(items: list[str], sep: str = ", ") -> str:
    """The first `LIST_MAX` items, then "and N more": a property with 47 hand-made rules
    must not make one 4,000-character line."""
    if len(items) <= LIST_MAX:
        return sep.join(items)
    return sep.join(items[:LIST_MAX]) + f"{sep}and {len(items) - LIST_MAX} more (the JSON " \
        "format lists them all)"


def made_by(p: PropertyPlan, change: Change) -> str:
    """For a key event the plan deletes: `, and the event create rule that made it` when its
    rules or audiences are deleted with it (`--prune`: they were that goal's machinery)."""
    if change.resource != KEY_EVENT or change.action != DELETE:
        return ""
    parts = []
    for resource in (EVENT_CREATE_RULE, AUDIENCE):
        n = sum(1 for c in p.changes if c.resource == resource and c.action == DELETE
                and c.event == change.event)
        if n:
            label = RESOURCE_LABELS[resource]
            parts.append(f"the {label} that made it" if n == 1 else
                         f"the {n} {label}s that made it")
    return f", and {' and '.join(parts)}" if parts else ""


def problems_of(p: PropertyPlan) -> list[str]:
    """Goals the plan had to leave out (see `plan.MachineryPlan.problems`)."""
    return list(getattr(p, "problems", ()))


def fmt_value(s: KeyEventSettings | None) -> str:
    if s is None or s.value is None:
        return "none"
    return f"{s.value:g} {s.currency}"


def describe(change: Change) -> str:
    """The settings part of one change line, e.g. `value none -> 40 USD`."""
    if change.resource != KEY_EVENT:
        return describe_machinery(change)
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
        planned = {p.property for p in plan.properties}
        unread = [f for f in failures if f.property not in planned]
        partly = list(dict.fromkeys(f"{f.property} ({f.client})" for f in failures
                                    if f.property in planned))
        head = summary_line(plan) if plan.has_changes else "No changes in the properties read."
        out = [head]
        if unread:
            n = len(unread)
            out.append(f"{n} propert{'ies' if n != 1 else 'y'} could not be read: "
                       + ", ".join(f"{f.property} ({f.client})" for f in unread) + ".")
        if partly:
            n = len(partly)
            out.append(f"{n} propert{'ies' if n != 1 else 'y'} planned without some goals "
                       f"(see the error{'s' if n != 1 else ''}): " + ", ".join(partly) + ".")
        return " ".join(out)
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
            lines.append(f"  {SYMBOL[c.action]} {c.event.ljust(width)}  {describe(c)}"
                         f"{made_by(p, c)}")
            last = describe_last_change(c)
            if last:
                lines.append(f"    {' ' * width}  {last}")
        for problem in problems_of(p):
            lines.append(f"  error: {problem}")
        if p.unmanaged:
            lines.append(f"  unmanaged (not in the spec, left alone): "
                         f"{shorten(list(p.unmanaged))}")
        extra = _unmanaged_resources(p)
        if extra:
            lines.append(f"  unmanaged rules and audiences (not goal machinery, left alone, "
                         f"{len(extra)}): " + shorten(extra, "; "))
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
        out.append("| property | client | error |")
        out.append("|---|---|---|")
        for f in failures:
            message = str(f.message).replace("|", "\\|").replace("\n", " ")
            out.append(f"| `{f.property}` | {f.client} | {message} |")
        out.append("")
    for p in plan.properties:
        out.append(f"#### {p.client} (`{p.property}`)")
        out.append("")
        if p.changes:
            out.append("| | action | event | resource | before | after | last change |")
            out.append("|---|---|---|---|---|---|---|")
            for c in p.changes:
                if c.resource == KEY_EVENT:
                    before = f"{c.before.counting}, {fmt_value(c.before)}" if c.before else ""
                    after = f"{c.after.counting}, {fmt_value(c.after)}" if c.after else ""
                    resource = "key event"
                else:
                    before, after = describe_form(c.before), describe_form(c.after)
                    resource = RESOURCE_LABELS[c.resource]
                    if c.stream:
                        resource += f" (stream `{c.stream.rsplit('/', 1)[-1]}`)"
                    if c.resource == AUDIENCE and c.action == DELETE:
                        after = "archived (GA never deletes audiences)"
                if c.resource == KEY_EVENT and c.action == DELETE:
                    after = made_by(p, c).lstrip(", ")
                cells = [_cell(x) for x in (before, after, describe_last_change(c) or "")]
                out.append(f"| `{SYMBOL[c.action]}` | {c.action} | `{c.event}` | {resource} | "
                           + " | ".join(cells) + " |")
        else:
            out.append("No changes.")
        for problem in problems_of(p):
            out.append("")
            out.append(f"**Error:** {_cell(problem)}")
        if p.unmanaged:
            out.append("")
            out.append("Unmanaged key events (not in the spec): "
                       + shorten([f"`{e}`" for e in p.unmanaged]))
        extra = _unmanaged_resources(p)
        if extra:
            out.append("")
            out.append(f"Unmanaged rules and audiences (not goal machinery, {len(extra)}): "
                       + shorten([_cell(x) for x in extra], "; "))
        if p.protected:
            out.append("")
            out.append("Protected (GA does not allow deleting them): "
                       + ", ".join(f"`{e}`" for e in p.protected))
        for w in warnings_of(p):
            out.append("")
            out.append(f"**Warning:** {w}")
        out.append("")
    return "\n".join(out)


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def to_json(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def plan_json(plan: Plan, failures: list[Any] | None = None) -> str:
    """The plan JSON contract (README); `failures` if given, else the plan's own `errors`."""
    data = plan.to_json()
    if failures:
        data["errors"] = [{"property": f.property, "client": f.client, "message": f.message}
                          for f in failures]
    return to_json(data)
