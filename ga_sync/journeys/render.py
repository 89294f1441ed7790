"""Journeys in every format: table lines, CSV rows, and the HTML funnel chart and assist table.

`ga_sync.render.report` (table, CSV) and `ga_sync.render.html` call these; they live beside
the journeys numbers so the renderers stay small. A report shows journeys only where there is
something to show: funnels when the spec has some, assists when they were counted (the export),
identified visitors when counted; a Data API report of a spec without journeys looks as it did.
"""

from __future__ import annotations

from html import escape
from typing import Any

from ga_sync.journeys.results import ASSOCIATION, OK


def has_journeys(r: Any) -> bool:
    return bool(getattr(r, "funnels", None)) or _assists_ok(r) or _identified_ok(r)


def _assists_ok(r: Any) -> bool:
    a = getattr(r, "assists", None)
    return a is not None and a.status == OK and bool(a.goals)


def _identified_ok(r: Any) -> bool:
    i = getattr(r, "identified", None)
    return i is not None and i.status == OK


def duration(seconds: int | None) -> str:
    """3600 -> "1h", 2592000 -> "30d", 90 -> "90s": the largest unit that divides it."""
    if seconds is None:
        return ""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def funnel_kind(f: Any) -> str:
    kind = "open" if f.open else "closed"
    return kind + (f", each step within {duration(f.within)} of the previous" if f.within
                   else "")


def _lift(x: float | None) -> str:
    return "-" if x is None else f"{x:,.2f}x"


def funnel_steps_to_macro(r: Any) -> dict[str, list[str]]:
    """Micro goal -> the funnels (in the report) it is a step of, before a last step that is a
    macro goal. Buyers pass through such a step on their way, so its assist lift is mechanical,
    not evidence that it makes people buy."""
    macro = {g.event for g in getattr(r, "goals", None) or [] if g.tier == "macro"}
    out: dict[str, list[str]] = {}
    for f in getattr(r, "funnels", None) or []:
        if not f.steps or f.steps[-1].event not in macro:
            continue
        for s in f.steps[:-1]:
            if f.name not in out.setdefault(s.event, []):
                out[s.event].append(f.name)
    return out


def step_note(funnels: list[str]) -> str:
    """The mark's words for a micro goal that is a step of `funnels`."""
    names = funnels[0] if len(funnels) == 1 else \
        ", ".join(funnels[:-1]) + " and " + funnels[-1]
    return (f"a step of the {names} funnel{'s' if len(funnels) > 1 else ''}: buyers pass "
            "through it, so its lift is mechanical")


# --------------------------------------------------------------------------- table


def table_lines(r: Any) -> list[str]:
    """The journeys blocks of one report's text table (empty when there is nothing)."""
    from ga_sync.render.report import (fmt_amount, fmt_change, fmt_count, fmt_pct, grid)

    out: list[str] = []
    compare = r.previous is not None
    for f in getattr(r, "funnels", None) or []:
        out += ["", f"funnel {f.name} ({funnel_kind(f)}; {f.source}): "
                f"{fmt_pct(f.overall_rate)} of step 1 reach the last step"]
        header = ["step", "users", "continue", "drop-off", "drop-off rate"]
        right = [False, True, True, True, True]
        if compare:
            header.append("users change")
            right.append(True)
        rows = []
        for k, s in enumerate(f.steps):
            row = [f"{k + 1}. {s.event}", fmt_count(s.users), fmt_pct(s.completion_rate),
                   "-" if s.abandonments is None else fmt_count(s.abandonments),
                   fmt_pct(s.abandonment_rate)]
            if compare:
                row.append(fmt_change(s.change))
            rows.append(row)
        out += grid(header, rows, right)
    if _assists_ok(r):
        a = r.assists
        out += ["", f"assists: micro goals before a macro conversion ({ASSOCIATION}); "
                f"{fmt_count(a.macro_users or 0)} users converted, "
                f"{fmt_amount(a.average_macro_value or 0.0)} {r.currency} each on average"]
        header = ["micro goal", "users", "converted after", "assist rate", "baseline", "lift",
                  "implied value", "spec value"]
        marked = funnel_steps_to_macro(r)
        rows = [[g.event + (" *" if g.event in marked else ""), fmt_count(g.users),
                 fmt_count(g.converted_after),
                 fmt_pct(g.assist_rate), fmt_pct(g.baseline_rate), _lift(g.lift),
                 "-" if g.implied_value is None else fmt_amount(g.implied_value),
                 "event" if g.spec_value is None else fmt_amount(g.spec_value)]
                for g in a.goals]
        out += grid(header, rows, [False] + [True] * 7)
        steps = funnel_steps_to_macro(r)
        out += [f"  * {g.event}: {step_note(steps[g.event])}" for g in a.goals if g.event in steps]
    if _identified_ok(r):
        i = r.identified
        out += ["", f"identified visitors: {fmt_count(i.users or 0)} "
                f"({fmt_pct(i.share)} of users); macro rate {fmt_pct(i.macro_rate)} identified"
                f" vs {fmt_pct(i.anonymous_macro_rate)} anonymous"]
        for g in i.goals:
            later = "unknown from the Data API" if g.identified_later_share is None else \
                f"{fmt_pct(g.identified_later_share)} identified at or after it"
            out.append(f"  {g.event}: {later}")
    return out


# --------------------------------------------------------------------------- CSV

CSV_COLUMNS = ("section", "funnel", "step", "step_users", "completion_rate",
               "abandonment_rate", "abandonments", "overall_rate", "converted_after",
               "assist_rate", "baseline_rate", "lift", "assisted_value", "implied_value",
               "spec_value", "identified_share", "macro_rate", "anonymous_macro_rate",
               "identified_later_share")


def csv_rows(r: Any) -> list[dict[str, Any]]:
    """Journeys rows of one report, keyed by the report CSV's columns plus CSV_COLUMNS:
    `section` funnel (one row per step; `change` is the step's users change), assist (one per
    micro goal; `users` is the report's, `conversions` the goal's users), identified (one
    total row, `conversions` = identified users, then one per identifies goal)."""
    rows: list[dict[str, Any]] = []
    for f in getattr(r, "funnels", None) or []:
        for k, s in enumerate(f.steps):
            rows.append({"section": "funnel", "funnel": f.name, "step": k + 1,
                         "event": s.event, "step_users": s.users,
                         "completion_rate": s.completion_rate,
                         "abandonment_rate": s.abandonment_rate,
                         "abandonments": s.abandonments, "overall_rate": f.overall_rate,
                         "change": s.change})
    if _assists_ok(r):
        for g in r.assists.goals:
            rows.append({"section": "assist", "event": g.event, "tier": "micro",
                         "conversions": g.users, "converted_after": g.converted_after,
                         "assist_rate": g.assist_rate, "baseline_rate": g.baseline_rate,
                         "lift": g.lift, "assisted_value": g.assisted_value,
                         "implied_value": g.implied_value, "spec_value": g.spec_value})
    if _identified_ok(r):
        i = r.identified
        rows.append({"section": "identified", "conversions": i.users,
                     "identified_share": i.share, "macro_rate": i.macro_rate,
                     "anonymous_macro_rate": i.anonymous_macro_rate})
        for g in i.goals:
            rows.append({"section": "identified", "event": g.event, "conversions": g.users,
                         "identified_later_share": g.identified_later_share})
    return rows


# --------------------------------------------------------------------------- HTML

CSS = """
.journeys { display: grid; grid-template-columns: 1fr; gap: 8px; }
p.lead { margin: 4px 0 10px; color: #3b434d; }
p.caveat { font-size: .85rem; color: #5b6470; margin: 6px 0 0; }
td.pos { color: #1b7f3b; } td.neg { color: #b3261e; }
span.mark { color: #b3261e; font-weight: 600; cursor: help; }
"""


def _funnel_chart(f: Any, salt: str) -> str:
    """Users per step as bars, each drop-off written between its two bars."""
    from ga_sync.render.html import _figure, _style_axes, _svg
    from ga_sync.render.report import fmt_count, fmt_pct

    n = len(f.steps)
    fig = _figure(max(9.0, 1.9 * n + 1.5), 3.4)
    ax = fig.add_subplot()
    _style_axes(ax)
    users = [s.users for s in f.steps]
    top = max(users) if any(users) else 1
    xs = [2 * k for k in range(n)]
    ax.bar(xs, users, width=1.1, color="#1f5fa8")
    for x, s in zip(xs, f.steps):
        share = s.users / users[0] if users[0] else None
        label = fmt_count(s.users) + (f"\n{fmt_pct(share, 0)}" if share is not None and x
                                      else "")
        ax.text(x, s.users + top * 0.02, label, ha="center", va="bottom", fontsize=8,
                color="#1d232b")
    for k, s in enumerate(f.steps[:-1]):
        if s.abandonments is None:
            continue
        ax.annotate("", xy=(xs[k] + 1.45, top * 0.5), xytext=(xs[k] + 0.55, top * 0.5),
                    arrowprops={"arrowstyle": "->", "color": "#b3261e", "lw": 1})
        ax.text(xs[k] + 1.0, top * 0.56, f"-{fmt_count(s.abandonments)}\n"
                f"{fmt_pct(s.abandonment_rate, 0)} drop", ha="center", va="bottom",
                fontsize=7.5, color="#b3261e")
    ax.set_xticks(xs, [f"{k + 1}. {s.event}" for k, s in enumerate(f.steps)])
    for label in ax.get_xticklabels():
        label.set_parse_math(False)
    for t in ax.texts:
        t.set_parse_math(False)
    ax.set_ylim(0, top * 1.22)
    ax.set_ylabel("visitors", fontsize=8)
    from matplotlib.ticker import StrMethodFormatter
    ax.yaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
    return _svg(fig, salt)


def html_section(r: Any, index: int) -> str:
    """Funnel charts, the assist table and identified visitors for one client section."""
    from ga_sync.render.report import fmt_amount, fmt_change, fmt_count, fmt_pct

    parts: list[str] = []
    for j, f in enumerate(getattr(r, "funnels", None) or []):
        users = [s.users for s in f.steps]
        lead = (f"Of the {fmt_count(users[0])} visitors who did <code>{escape(f.steps[0].event)}"
                f"</code>, {fmt_count(users[-1])} ({escape(fmt_pct(f.overall_rate))}) went on "
                f"to <code>{escape(f.steps[-1].event)}</code>.")
        worst = max((s for s in f.steps[:-1] if s.abandonment_rate is not None),
                    key=lambda s: s.abandonment_rate, default=None)
        if worst is not None and worst.abandonments:
            lead += (f" Most visitors are lost after <code>{escape(worst.event)}</code> "
                     f"({escape(fmt_pct(worst.abandonment_rate, 0))} do not continue).")
        change = ""
        if r.previous is not None and f.steps[-1].change is not None:
            change = (f" Visitors reaching <code>{escape(f.steps[-1].event)}</code>: "
                      f"{escape(fmt_change(f.steps[-1].change))} vs the previous period.")
        caption = (f"Visitors reaching each step ({escape(funnel_kind(f))}); red: how many "
                   "stop between two steps")
        parts.append(f"<h3>Journey: {escape(f.name)}</h3><p class=\"lead\">{lead}{change}</p>"
                     f"<figure>{_funnel_chart(f, f'ga-sync-{index}-funnel-{j}')}"
                     f"<figcaption>{caption}</figcaption></figure>")
    if _assists_ok(r):
        a = r.assists
        cur = escape(r.currency)
        rows = []
        marked = funnel_steps_to_macro(r)
        for g in a.goals:
            mark = (f' <span class="mark" title="{escape(step_note(marked[g.event]))}">*</span>'
                    if g.event in marked else "")
            cls = "" if g.implied_value is None else ("pos" if g.implied_value > 0 else
                                                      "neg" if g.implied_value < 0 else "")
            rows.append(
                f"<tr><td><code>{escape(g.event)}</code>{mark}</td>"
                f'<td class="n">{escape(fmt_count(g.users))}</td>'
                f'<td class="n">{escape(fmt_pct(g.assist_rate, 1))}</td>'
                f'<td class="n">{escape(fmt_pct(g.baseline_rate, 1))}</td>'
                f'<td class="n">{escape(_lift(g.lift))}</td>'
                f'<td class="n {cls}">{escape("-" if g.implied_value is None else fmt_amount(g.implied_value))}</td>'
                f'<td class="n">{escape("from the event" if g.spec_value is None else fmt_amount(g.spec_value))}</td></tr>')
        parts.append(
            "<h3>Which small steps come before a conversion</h3>"
            f"<p class=\"lead\">Of the visitors who did a micro conversion, the share who "
            f"later converted (a purchase or another main goal), next to the share among visitors "
            f"who never did it. "
            f"{escape(fmt_count(a.macro_users or 0))} visitors converted, worth "
            f"{escape(fmt_amount(a.average_macro_value or 0.0))} {cur} each on average.</p>"
            '<table class="assists"><thead><tr><th>Micro conversion</th>'
            '<th class="n">Visitors</th><th class="n">Converted later</th>'
            '<th class="n">Others who converted</th><th class="n">Lift</th>'
            f'<th class="n">Value it suggests ({cur})</th>'
            f'<th class="n">Value in the plan ({cur})</th></tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table>"
            '<p class="caveat">"Converted later": reached a main goal at or after their first '
            'micro conversion. "Value it suggests": the difference between the two shares '
            "times the average value of a converting visitor. This is an association, not "
            "proof of cause: visitors who were going to buy anyway also do more on the way.</p>"
            + "".join(f'<p class="caveat">* <code>{escape(g.event)}</code>: '
                      f"{escape(step_note(marked[g.event]))}, not a sign that it makes "
                      "visitors buy.</p>" for g in a.goals if g.event in marked))
    if _identified_ok(r):
        i = r.identified
        goals = "".join(
            f"<li><code>{escape(g.event)}</code>: "
            + (escape(fmt_pct(g.identified_later_share, 0)) + " of its visitors were "
               "identified at or after it" if g.identified_later_share is not None
               else "identified later: needs the BigQuery export") + "</li>"
            for g in i.goals)
        parts.append(
            "<h3>Visitors who identified themselves</h3>"
            f"<p class=\"lead\">{escape(fmt_count(i.users or 0))} visitors "
            f"({escape(fmt_pct(i.share, 1))}) signed in or otherwise told the site who they "
            f"are. {escape(fmt_pct(i.macro_rate, 1))} of them made a macro conversion, against "
            f"{escape(fmt_pct(i.anonymous_macro_rate, 1))} of anonymous visitors.</p>"
            + (f"<ul>{goals}</ul>" if goals else ""))
    if not parts:
        return ""
    return '<div class="journeys">' + "".join(parts) + "</div>"


__all__ = ["CSS", "CSV_COLUMNS", "csv_rows", "duration", "has_journeys", "html_section",
           "table_lines"]
