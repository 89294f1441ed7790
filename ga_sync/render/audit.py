"""Audit findings as plain text (terminal), Markdown (tickets, pull requests) and JSON (machines).

Renderers return strings; they never print. Text has no colour codes, so it can be piped,
mailed or pasted as is.
"""

from __future__ import annotations

from collections.abc import Iterable

from ga_sync.audit import SEVERITIES, AuditedProperty, AuditResult, Finding
from ga_sync.render.plan import to_json

HEADINGS = {"error": "errors", "warning": "warnings", "info": "info"}


def _count(n: int, severity: str) -> str:
    if severity == "info":
        return f"{n} info"
    return f"{n} {severity}{'' if n == 1 else 's'}"


def summary_line(result: AuditResult) -> str:
    n = len(result.audited)
    counts = ", ".join(_count(result.count(s), s) for s in SEVERITIES)
    return f"Audited {n} propert{'y' if n == 1 else 'ies'}: {counts}."


def _by_client(result: AuditResult) -> dict[str, list[AuditedProperty]]:
    """Properties grouped by client, clients in the order first audited."""
    groups: dict[str, list[AuditedProperty]] = {}
    for a in result.audited:
        groups.setdefault(a.client or a.property, []).append(a)
    return groups


def _window(a: AuditedProperty) -> str:
    if a.period is None:
        return "not read"
    return f"{a.period.start} to {a.period.end}, {a.period.days} days"


def _of(findings: Iterable[Finding], severity: str) -> list[Finding]:
    return [f for f in findings if f.severity == severity]


def audit_text(result: AuditResult) -> str:
    """Grouped by client, then property, then severity; one finding per paragraph."""
    lines: list[str] = []
    for client, audited in _by_client(result).items():
        lines.append(client)
        for a in audited:
            counts = ", ".join(_count(len(_of(a.findings, s)), s) for s in SEVERITIES)
            lines.append(f"  {a.property} ({_window(a)}): {counts}")
            if not a.findings:
                lines.append("    no findings")
            for severity in SEVERITIES:
                found = _of(a.findings, severity)
                if not found:
                    continue
                lines.append(f"    {HEADINGS[severity]} ({len(found)})")
                for f in found:
                    subject = f" {f.subject}" if f.subject else ""
                    lines.append(f"      [{f.check}]{subject}")
                    lines.append(f"        {f.message}")
                    if f.last_change is not None:
                        lines.append(f"        {_who(f)}")
                    lines.append(f"        fix: {f.fix}")
        lines.append("")
    lines.append(summary_line(result))
    return "\n".join(lines) + "\n"


def _who(f: Finding) -> str:
    """`Last changed by dana@x on 2026-11-20 14:03 UTC (not by ga-sync).` from the change
    history."""
    from ga_sync.changelog import describe
    assert f.last_change is not None
    text = describe(f.last_change)
    return text[:1].upper() + text[1:] + "."


def _cell(text: str | None) -> str:
    """Table-safe Markdown: no pipes or line breaks breaking the row."""
    return (text or "").replace("|", "\\|").replace("\n", " ")


def audit_markdown(result: AuditResult) -> str:
    """A summary, then one table per property, worst findings first."""
    out = ["### ga-sync audit", "", f"**{summary_line(result)}**", ""]
    for client, audited in _by_client(result).items():
        for a in audited:
            out.append(f"#### {_cell(client)} (`{a.property}`), {_window(a)}")
            out.append("")
            if not a.findings:
                out.append("No findings.")
                out.append("")
                continue
            out.append("| severity | check | subject | finding | fix |")
            out.append("|---|---|---|---|---|")
            for f in a.findings:
                subject = f"`{_cell(f.subject)}`" if f.subject else ""
                who = f" ({_who(f)})" if f.last_change is not None else ""
                out.append(f"| {f.severity} | `{f.check}` | {subject} | "
                           f"{_cell(f.message + who)} | {_cell(f.fix)} |")
            out.append("")
    return "\n".join(out)


def audit_json(result: AuditResult) -> str:
    """The stable JSON contract of `AuditResult.to_json` (version 1)."""
    return to_json(result.to_json())
