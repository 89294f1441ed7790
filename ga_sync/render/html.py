"""A self-contained HTML report an agency can send a client as it is.

One file, nothing fetched when it is opened: CSS inline, charts as inline SVG drawn with
matplotlib (imported inside the function so other commands start fast), system fonts only.
Every string that comes from a spec or from GA goes through `html.escape`; chart labels are
drawn with math text off, so a `$` in a name stays a `$`.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Sequence
from datetime import date, datetime, timezone
from html import escape
from typing import TYPE_CHECKING, Any

from ga_sync.model import MACRO, MICRO, USERS
from ga_sync.render.report import (CHANGE_LABEL, NOT_IN_TOTAL, SESSION_RATE_LABEL, basis_label,
                                   error_rows, fmt_amount, fmt_change, fmt_count, fmt_money,
                                   fmt_pct, macro_first, property_currency_note, rate_label,
                                   relative_change)

if TYPE_CHECKING:
    import pandas as pd

    from ga_sync.report import ReportResult

COLORS = {MACRO: "#1f5fa8", MICRO: "#e08a1e"}

_CSS = """
:root { color-scheme: light; }
body { font-family: -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color: #1d232b; background: #f5f6f8; margin: 0; line-height: 1.45; }
main { max-width: 980px; margin: 0 auto; padding: 24px 20px 48px; }
header.doc h1 { font-size: 1.6rem; margin: 0 0 4px; }
header.doc p { margin: 0; color: #5b6470; }
section.client { background: #fff; border: 1px solid #dde1e6; border-radius: 10px;
                 padding: 20px 24px; margin: 24px 0; }
section.client h2 { margin: 0; font-size: 1.35rem; }
.sub { color: #5b6470; font-size: .92rem; margin: 2px 0 16px; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(190px, 1fr)); gap: 12px; }
.card { border: 1px solid #e3e6ea; border-radius: 8px; padding: 12px 14px; background: #fafbfc; }
.card .label { font-size: .8rem; text-transform: uppercase; letter-spacing: .04em; color: #5b6470; }
.card .num { font-size: 1.45rem; font-weight: 600; margin-top: 2px; }
.card .delta { font-size: .85rem; color: #5b6470; }
.delta.up { color: #1b7f3b; } .delta.down { color: #b3261e; }
.card.macro { border-left: 4px solid #1f5fa8; } .card.micro { border-left: 4px solid #e08a1e; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 16px;
          margin: 18px 0 6px; }
figure { margin: 0; } figure svg { width: 100%; height: auto; }
figcaption { font-size: .85rem; color: #5b6470; text-align: center; }
figcaption .note { display: block; font-size: .8rem; margin-top: 2px; }
.range { white-space: nowrap; }
.not-included { background: #fdecea; border: 2px solid #b3261e; border-radius: 10px;
                padding: 14px 20px; margin: 20px 0 0; }
.not-included h2 { margin: 0 0 4px; font-size: 1.2rem; color: #b3261e; }
.not-included p { margin: 0 0 6px; }
.not-included ul { margin: 0; padding-left: 20px; }
h3 { font-size: 1.05rem; margin: 18px 0 8px; }
table { border-collapse: collapse; width: 100%; font-size: .92rem; }
th, td { padding: 6px 10px; border-bottom: 1px solid #e8ebef; text-align: left; }
th { font-weight: 600; color: #3b434d; background: #f3f5f7; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
.tier { display: inline-block; padding: 0 8px; border-radius: 10px; font-size: .8rem; color: #fff; }
.tier.macro { background: #1f5fa8; } .tier.micro { background: #e08a1e; }
.warnings { background: #fff7e6; border: 1px solid #f0c36d; border-radius: 8px;
            padding: 10px 14px; margin-top: 16px; }
.warnings ul { margin: 4px 0 0; padding-left: 20px; }
.warnings code { font-size: .85rem; }
ol.marks { font-size: .85rem; color: #3b434d; margin: 6px 0 0; padding-left: 22px; }
ol.marks .src { color: #5b6470; }
footer { font-size: .85rem; color: #5b6470; }
footer dt { font-weight: 600; color: #3b434d; margin-top: 6px; }
footer dd { margin: 0 0 0 1em; }
@media print { body { background: #fff; } section.client { break-inside: avoid-page; } }
"""


# --------------------------------------------------------------------------- charts


def _svg(fig: Any, salt: str) -> str:
    """A matplotlib figure as an inline `<svg>` element with ids unique to this chart."""
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": salt, "svg.fonttype": "none"}):
        fig.savefig(buf, format="svg", metadata={"Date": None}, bbox_inches="tight")
    text = buf.getvalue()
    text = text[max(text.find("<svg"), 0):]
    # The RDF block only names matplotlib and the date; drop it to keep the file small and quiet.
    text = re.sub(r"\s*<metadata>.*?</metadata>", "", text, flags=re.S).strip()
    # matplotlib numbers its ids per figure (figure_1, patch_1, ...): prefix them, and the
    # references to them, so several charts in one page keep unique ids.
    text = re.sub(r'(\sid=")([^"]+")', rf"\g<1>{salt}-\g<2>", text)
    text = re.sub(r"url\(#([^)]+)\)", rf"url(#{salt}-\g<1>)", text)
    return re.sub(r'((?:xlink:)?href=")#([^"]+")', rf"\g<1>#{salt}-\g<2>", text)


def _figure(width: float, height: float) -> Any:
    """A figure on the Agg canvas, never through pyplot: no global state, no GUI backend."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=96)
    FigureCanvasAgg(fig)
    return fig


def _style_axes(ax: Any) -> None:
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.grid(axis="y", color="#e3e6ea", linewidth=0.8)
    ax.set_axisbelow(True)
    ax.tick_params(labelsize=8)


def rate_series(result: ReportResult, weekly: pd.DataFrame | None) -> tuple[str, list[date],
                                                                            list[float],
                                                                            list[float]]:
    """(granularity, x, macro rates, micro rates): the store's full weeks, else the report's days.

    `Store.weekly` has a row for every week of its window: empty ones (`days` 0) and partly
    stored ones (`days` < 7, such as the current week) would plot as real weeks, so the series
    runs from the first to the last full week, with any week in between that is not full as
    NaN (a gap in the line). With no full week stored, the report's days are used instead.
    Daily rates use the day's basis (sessions or users) and the report's tiers.
    """
    if weekly is not None and len(weekly):
        w = weekly.sort_values("week")
        full = [int(d) >= 7 for d in w["days"]] if "days" in w else [True] * len(w)
        if any(full):
            first, last = full.index(True), len(full) - 1 - full[::-1].index(True)
            keep = slice(first, last + 1)

            def rates(col: str) -> list[float]:
                return [float(x) if ok else math.nan
                        for x, ok in zip(list(w[col])[keep], full[keep])]

            return "weekly", list(w["week"])[keep], rates("macro_rate"), rates("micro_rate")
    daily = result.daily
    if daily is None or len(daily) == 0:
        return "daily", [], [], []
    tiers = {g.event: g.tier for g in result.goals}
    basis_col = "users" if result.rate_basis == "users" else "sessions"
    days: dict[date, dict[str, float]] = {}
    for row in daily.itertuples(index=False):
        d = days.setdefault(row.date, {MACRO: 0.0, MICRO: 0.0, "basis": 0.0})
        d["basis"] = max(d["basis"], float(getattr(row, basis_col)))
        tier = tiers.get(row.event)
        if tier in (MACRO, MICRO):
            d[tier] += float(row.conversions)
    xs = sorted(days)
    rate = [(days[x][MACRO] / days[x]["basis"]) if days[x]["basis"] else math.nan for x in xs]
    micro = [(days[x][MICRO] / days[x]["basis"]) if days[x]["basis"] else math.nan for x in xs]
    return "daily", xs, rate, micro


def _partial_weeks(weekly: pd.DataFrame | None) -> int:
    """How many weeks of the store's window have some days stored, but not all seven."""
    if weekly is None or not len(weekly) or "days" not in weekly:
        return 0
    return sum(1 for d in weekly["days"] if 0 < int(d) < 7)


MARK_COLOR = "#6b3fa0"


def mark_positions(marks: Sequence[Any], kind: str, xs: Sequence[date]) -> list[tuple[int, Any]]:
    """(x position, mark) for each goal mark that falls on the chart, in date order.

    Daily: the mark's day (for an annotation's date range, its first charted day). Weekly: the
    ISO week holding that day. Marks before the first or after the last point are left out.
    """
    from datetime import timedelta

    out = []
    for m in sorted(marks, key=lambda m: (m.day, m.title)):
        last = getattr(m, "end", None) or m.day
        for i, x in enumerate(xs):
            lo, hi = (x, x) if kind == "daily" else (x, x + timedelta(days=6))
            if lo <= last and m.day <= hi:
                out.append((i, m))
                break
    return out


def _rate_chart(result: ReportResult, weekly: pd.DataFrame | None,
                salt: str) -> tuple[str, str, str, list[tuple[int, Any]]]:
    """Macro and micro rates over time, one panel each; returns (svg, caption, note, the goal
    marks drawn as (x position, mark)).

    Micro rates are often ten times the macro ones: on one axis the macro line would lie flat,
    so each tier gets its own scale, sharing the time axis. Goal changes (`result.marks`) are
    dashed vertical lines through both panels, numbered at the top, so a jump in a rate is
    explained on the chart itself; the list under the chart says what each number is.
    """
    from matplotlib.ticker import PercentFormatter

    kind, xs, macro, micro = rate_series(result, weekly)
    notes = []
    if result.rate_basis == USERS:
        # GA de-duplicates users over the report's period; a week or day of the chart divides
        # by its days' users, where someone back on two days counts twice.
        if kind == "weekly":
            basis = "summed daily users"
            notes.append("Weekly rates divide by the sum of daily users (a returning user counts"
                         " once per day), so they are lower than the de-duplicated per-user"
                         " rate above.")
        else:
            basis = "that day's users"
            notes.append("Each day divides by that day's users, so the days do not add up to the"
                         " per-user rate above, which counts each user once in the period.")
    else:
        basis = basis_label(result.rate_basis)[:-1]
    if kind == "weekly" and _partial_weeks(weekly):
        notes.append("Weeks with fewer than 7 days stored are left out.")
    step_name = "week (ISO, Monday start)" if kind == "weekly" else "day"
    caption = f"Macro and micro conversion rate per {step_name}, per {basis}"
    note = " ".join(notes)
    fig = _figure(6.0, 3.4)
    if not xs:
        ax = fig.add_subplot()
        _style_axes(ax)
        ax.text(0.5, 0.5, "no daily data", ha="center", va="center", transform=ax.transAxes,
                color="#5b6470")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"Conversion rate ({kind})", fontsize=10, loc="left")
        return _svg(fig, salt), caption, note, []
    top, bottom = fig.subplots(2, 1, sharex=True)
    pos = list(range(len(xs)))
    for ax, tier, ys in ((top, MACRO, macro), (bottom, MICRO, micro)):
        _style_axes(ax)
        ax.plot(pos, ys, marker="o", markersize=3.5, color=COLORS[tier], linewidth=2)
        ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=1))
        ax.set_ylim(bottom=0, top=max([y for y in ys if math.isfinite(y)] + [0.0]) * 1.15 or 1.0)
        ax.set_ylabel(tier, fontsize=8, color=COLORS[tier])
    step = max(1, math.ceil(len(pos) / 10))
    bottom.set_xticks(pos[::step], [x.strftime("%d %b") for x in xs][::step])
    top.set_title(f"Conversion rate ({kind})", fontsize=10, loc="left")
    drawn = mark_positions(getattr(result, "marks", None) or [], kind, xs)
    numbers: dict[int, list[str]] = {}
    for n, (x, _) in enumerate(drawn, 1):
        numbers.setdefault(x, []).append(str(n))
    for x, labels in numbers.items():
        for ax in (top, bottom):
            ax.axvline(x, color=MARK_COLOR, linestyle="--", linewidth=1.2, alpha=0.85, zorder=1)
        top.annotate(",".join(labels), xy=(x, 1.0), xycoords=("data", "axes fraction"),
                     xytext=(0, 2), textcoords="offset points", ha="center", va="bottom",
                     fontsize=8, color=MARK_COLOR, fontweight="bold")
    if drawn:
        top.set_xlim(-0.5, len(pos) - 0.5)
        top.set_title(f"Conversion rate ({kind})", fontsize=10, loc="left", pad=14)
    return _svg(fig, salt), caption, note, drawn


def _marks_list(drawn: Sequence[tuple[int, Any]]) -> str:
    """The numbered list under a rate chart: what each dashed line marks."""
    if not drawn:
        return ""
    items = []
    for _, m in drawn:
        when = m.day.isoformat()
        end = getattr(m, "end", None)
        if end:
            when += f" to {end.isoformat()}"
        src = ("GA annotation" if m.source == "annotation" else "ga-sync apply journal")
        items.append(f"<li>{escape(when)}: {escape(m.title)} "
                     f'<span class="src">({escape(src)})</span></li>')
    return (f'<ol class="marks" aria-label="Goal changes marked on the chart">'
            f"{''.join(items)}</ol>")


def _value_chart(result: ReportResult, salt: str) -> tuple[str, str]:
    """Horizontal bars of value per goal, coloured by tier; returns (svg, caption).

    Only values in the report's currency are drawn: a goal whose value is in another currency
    (no --fx rate) would put two units on one axis; the caption names it instead.
    """
    goals = sorted((g for g in result.goals if getattr(g, "in_total", True)),
                   key=lambda g: (g.tier != MACRO, -g.value, g.event))
    left_out = [g.event for g in result.goals if not getattr(g, "in_total", True)]
    fig = _figure(6.0, max(2.2, 0.42 * len(goals) + 1.0))
    ax = fig.add_subplot()
    _style_axes(ax)
    ax.grid(axis="y", visible=False)
    ax.grid(axis="x", color="#e3e6ea", linewidth=0.8)
    pos = list(range(len(goals)))[::-1]
    ax.barh(pos, [g.value for g in goals], color=[COLORS.get(g.tier, "#888") for g in goals],
            height=0.6)
    ax.set_yticks(pos, [g.event for g in goals])
    for label in ax.get_yticklabels():
        label.set_parse_math(False)
    from matplotlib.patches import Patch
    from matplotlib.ticker import StrMethodFormatter
    ax.legend(handles=[Patch(color=COLORS[t], label=t) for t in (MACRO, MICRO)], frameon=False,
              fontsize=8, loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=2)
    ax.xaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
    ax.set_xlabel(result.currency, fontsize=8)
    ax.set_title("Value per goal", fontsize=10, loc="left")
    caption = f"Value per goal in {result.currency} (macro blue, micro orange)"
    if left_out:
        caption += (f"; not drawn, in another currency: {', '.join(left_out)}")
    return _svg(fig, salt), caption


# --------------------------------------------------------------------------- sections


def _delta(change: float | None, vs_html: str) -> str:
    """`+12.3% vs <range>`; `vs_html` is already escaped markup."""
    if change is None:
        return f'<div class="delta">n/a {vs_html}</div>'
    cls = "up" if change > 0 else "down" if change < 0 else ""
    return f'<div class="delta {cls}">{escape(fmt_change(change))} {vs_html}</div>'


def _card(label: str, value: str, delta: str = "", cls: str = "") -> str:
    return (f'<div class="card {cls}"><div class="label">{escape(label)}</div>'
            f'<div class="num">{escape(value)}</div>{delta}</div>')


def _cards(r: ReportResult) -> str:
    p = r.previous
    # The range never breaks inside a date: narrow cards used to wrap at the hyphens.
    vs = (f'vs <span class="range">{escape(p.period.start.isoformat())}..'
          f'{escape(p.period.end.isoformat())}</span>') if p else ""

    def d(now: float, before: float) -> str:
        return _delta(relative_change(now, before), vs) if p else ""

    cards = [
        _card("Total value", fmt_money(r.total_value, r.currency),
              d(r.total_value, p.total_value) if p else ""),
        _card("Value per session", fmt_money(r.value_per_session, r.currency),
              d(r.value_per_session, p.value_per_session) if p else ""),
        _card(f"Macro {rate_label(r.rate_basis)}", fmt_pct(r.macro.rate),
              d(r.macro.rate, p.macro.rate) if p else "", MACRO),
        _card(f"Micro {rate_label(r.rate_basis)}", fmt_pct(r.micro.rate),
              d(r.micro.rate, p.micro.rate) if p else "", MICRO),
    ]
    return '<div class="cards">' + "".join(cards) + "</div>"


def _goals_table(r: ReportResult) -> str:
    compare = r.previous is not None
    head = ["Goal", "Tier", "Conversions", f"Rate per {basis_label(r.rate_basis)[:-1]}",
            f"Value ({r.currency})"] + ([CHANGE_LABEL.capitalize()] if compare else [])
    numeric = [False, False, True, True, True, True]
    th = "".join(f'<th class="{"n" if n else ""}">{escape(h)}</th>' for h, n in zip(head, numeric))
    rows = []
    for g in macro_first(r.goals):
        cells = [f"<td><code>{escape(g.event)}</code></td>",
                 f'<td><span class="tier {escape(g.tier)}">{escape(g.tier)}</span></td>',
                 f'<td class="n">{escape(fmt_count(g.conversions))}</td>',
                 f'<td class="n">{escape(fmt_pct(g.rate))}</td>',
                 f'<td class="n">{escape(_goal_value(g, r.currency))}</td>']
        if compare:
            cells.append(f'<td class="n">{escape(fmt_change(g.change))}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{th}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _goal_value(g: Any, currency: str) -> str:
    """The amount alone in the report's currency (the column names it); else with its own."""
    own = getattr(g, "currency", None) or currency
    if own == currency and getattr(g, "in_total", True):
        return fmt_amount(g.value)
    text = fmt_money(g.value, own)
    return text if getattr(g, "in_total", True) else f"{text} ({NOT_IN_TOTAL})"


def _summary_table(r: ReportResult) -> str:
    """Macro | micro | total, the same block as the text table."""
    cur = r.currency
    rows = [
        ("Conversions", fmt_count(r.macro.conversions), fmt_count(r.micro.conversions),
         fmt_count(r.macro.conversions + r.micro.conversions)),
        (rate_label(r.rate_basis).capitalize(), fmt_pct(r.macro.rate), fmt_pct(r.micro.rate), ""),
        (SESSION_RATE_LABEL.capitalize(), fmt_pct(r.macro.session_rate), fmt_pct(r.micro.session_rate), ""),
        ("Value", fmt_money(r.macro.value, cur), fmt_money(r.micro.value, cur),
         fmt_money(r.total_value, cur)),
        ("Value per session", "", "", fmt_money(r.value_per_session, cur)),
    ]
    body = "".join("<tr><th>" + escape(a) + "</th>" + "".join(
        f'<td class="n">{escape(x)}</td>' for x in rest) + "</tr>" for a, *rest in rows)
    return ('<table class="summary"><thead><tr><th></th><th class="n">Macro</th>'
            '<th class="n">Micro</th><th class="n">Total</th></tr></thead>'
            f"<tbody>{body}</tbody></table>")


def _warnings(r: ReportResult) -> str:
    if not r.warnings:
        return ""
    items = "".join(f"<li><code>{escape(w.code)}</code>: {escape(w.message)}</li>"
                    for w in r.warnings)
    return f'<div class="warnings"><strong>Read with care</strong><ul>{items}</ul></div>'


def _journeys(r: ReportResult, index: int) -> str:
    """Funnel charts, the assist table and identified visitors (`ga_sync.journeys.render`)."""
    from ga_sync.journeys.render import html_section
    return html_section(r, index)


def _section(r: ReportResult, weekly: pd.DataFrame | None, index: int) -> str:
    rate_svg, rate_caption, rate_note, drawn = _rate_chart(r, weekly, f"ga-sync-{index}-rate")
    if drawn:
        rate_caption += "; dashed lines: goal changes and annotations (numbered below)"
    note = f'<span class="note">{escape(rate_note)}</span>' if rate_note else ""
    marks = _marks_list(drawn)
    value_svg, value_caption = _value_chart(r, f"ga-sync-{index}-value")
    days = r.period.days
    sub = (f"{r.period.start.isoformat()} to {r.period.end.isoformat()} ({days} "
           f"day{'s' if days != 1 else ''}) &middot; {escape(r.property)} &middot; "
           f"{escape(fmt_count(r.sessions))} sessions &middot; {escape(fmt_count(r.users))} users"
           f" &middot; rates per {escape(basis_label(r.rate_basis)[:-1])}"
           f" &middot; values in {escape(r.currency)}{escape(property_currency_note(r))}")
    return f"""<section class="client" id="client-{index}">
<h2>{escape(r.client)}</h2>
<p class="sub">{sub}</p>
{_cards(r)}
<div class="charts">
<figure>{rate_svg}<figcaption>{escape(rate_caption)}{note}</figcaption>{marks}</figure>
<figure>{value_svg}<figcaption>{escape(value_caption)}</figcaption></figure>
</div>
<h3>Macro and micro conversions</h3>
{_summary_table(r)}
<h3>Goals</h3>
{_goals_table(r)}
{_journeys(r, index)}
{_warnings(r)}
</section>"""


_FOOTNOTE = """<footer>
<h3>How these numbers are computed</h3>
<dl>
<dt>Conversions</dt><dd>Counted per goal by its counting method: every event
(<em>once per event</em>) or sessions with the event (<em>once per session</em>), from GA4's raw
event counts.</dd>
<dt>Macro and micro</dt><dd>Macro conversions are the outcomes the business exists for (a
purchase, a lead); micro conversions are the steps and signals on the way (a sign-up, a
download). Both together are the complete picture of the value a site creates.</dd>
<dt>Conversions per session (or user)</dt><dd>Conversions divided by the rate basis (sessions
or users of the whole property in the period). GA counts a user once in the period; the weekly
chart divides by the sum of its days' users instead, so per-user rates there are lower.</dd>
<dt>Sessions with a conversion</dt><dd>Sessions with at least one conversion of the tier divided by all
sessions: de-duplicated, so a session with two conversions counts once.</dd>
<dt>Value</dt><dd>Conversions &times; the goal's value from the spec, or the event's own value
when the goal takes it from the event. Value per session is total value (macro + micro) divided
by sessions.</dd>
<dt>Change</dt><dd>Relative change (of value, rates or a goal's conversions) against the period of equal length just before; n/a when the
previous period had none.</dd>
</dl>
</footer>"""


def _not_included(errors: Sequence[Any] | None) -> str:
    """A box at the top naming the properties that failed: the file must not look complete."""
    rows = error_rows(errors)
    if not rows:
        return ""
    items = "".join(
        f"<li><strong>{escape(str(e['client'] or '(unknown client)'))}</strong> "
        f"<code>{escape(str(e['property'] or '(unknown property)'))}</code>: "
        f"{escape(str(e['message'] or 'failed'))}</li>" for e in rows)
    n = len(rows)
    return (f'<section class="not-included" role="alert"><h2>Not included</h2>'
            f"<p>{n} propert{'y' if n == 1 else 'ies'} could not be reported and "
            f"{'is' if n == 1 else 'are'} missing from this file:</p><ul>{items}</ul></section>")


def _journeys_css() -> str:
    from ga_sync.journeys.render import CSS
    return CSS


def report_html(results: Sequence[ReportResult], weekly: dict[str, pd.DataFrame] | None = None,
                generated: datetime | None = None,
                errors: Sequence[Any] | None = None) -> str:
    """One HTML file with a section per report: headline numbers, charts, tables, warnings.

    `errors` are the properties that failed (`{property, client, message}`, as `report_json`
    takes them); they are listed in a "Not included" box at the top.
    """
    generated = generated or datetime.now(timezone.utc)
    clients = sorted({r.client for r in results})
    title = "Conversion report" + (f": {', '.join(clients)}" if clients else "")
    sections = [_section(r, (weekly or {}).get(r.property), i) for i, r in enumerate(results)]
    if not sections:
        sections = ['<section class="client"><p>No reports.</p></section>']
    body = "\n".join(sections)
    stamp = generated.strftime("%Y-%m-%d %H:%M %Z").strip()
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="ga-sync">
<title>{escape(title)}</title>
<style>{_CSS}{_journeys_css()}</style>
</head>
<body>
<main>
<header class="doc"><h1>{escape(title)}</h1>
<p>Macro and micro conversions with their economic value. Generated {escape(stamp)}.</p></header>
{_not_included(errors)}
{body}
{_FOOTNOTE}
</main>
</body>
</html>
"""

