"""Seeding a sandbox from goal specs: each spec's properties, with synthetic traffic for its goals.

Used by `ga-sync sandbox --seed`, the demo, the benchmarks and the tests.

A goal the site sends itself (no `page:`/`from:`/`session:`) fires in the traffic as before. A
goal GA makes does not: its event exists only once its rule or audience does (`ga-sync apply`
creates them; derived.py then makes the events from that moment on). What it is made from is
in the traffic instead: a `page:` goal's page (about 2% of page views, a path built from the
condition and checked against it), a `from:` goal's source event, and for `file_download`
sources a file whose parameters meet the `where` conditions; `session:` goals need nothing
(sessions of several pages and minutes are common).

A spec with `funnels:` or `identifies: true` goals gets a `journeys` profile (`journeys_for`):
visitors walk its funnels across sessions and days, micro goals raise their later chance of
buying (x3 for `identifies` goals, x1.5 for the others) and `identifies` goals sign them in.
A spec without either gets the same traffic as before.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from ga_sync.model import Condition, EventRule, Spec, property_id

__all__ = ["journeys_for", "seed_properties", "traffic_for"]

PAGE_WEIGHT = 2.0      # the default pages weigh 98 in all
DOWNLOAD_WEIGHT = 20.0  # the default files weigh 71
IDENTIFIES_BOOST = 3.0  # buying-odds multiplier of an `identifies` micro goal (journeys)
MICRO_BOOST = 1.5       # ... of any other micro goal the site sends
JOURNEY_SESSIONS = 6    # sessions a returning visitor has in a 28-day cycle, about
# Signing in is for life, so a returning visitor's chance per cycle is lower (about a third of
# returning visitors have signed in after a year, not nearly all of them).
IDENTIFY_SESSIONS = 1.5


def seed_properties(state: Any, specs: Iterable[Spec], *, seed: int = 7) -> list[str]:
    """Create each spec's properties in a sandbox state, with synthetic traffic for its goals.

    Returns the ids created; properties that already exist are left alone.
    """
    created = []
    for n, spec in enumerate(specs):
        for prop in spec.properties:
            pid = property_id(prop)
            if pid in state.properties:
                continue
            traffic = traffic_for(spec, seed=seed + n * 101 + int(pid) % 997)
            state.add_property(property_id=pid, display_name=spec.client,
                               currency_code=spec.currency, traffic=traffic)
            created.append(pid)
    return created


def traffic_for(spec: Spec, *, seed: int) -> dict | None:
    """A traffic profile for a spec's site (None when the Data API side is not installed)."""
    try:
        from ga_sync.sandbox.traffic import DEFAULT_DOWNLOADS, make_traffic
    except ImportError:  # the Data API side of the sandbox is optional for sync
        return None
    sent = [(g.event, g.tier, g.value) for g in spec.goals if g.origin is None]
    rules = [g.origin for g in spec.goals if isinstance(g.origin, EventRule)]
    sources = [r.source for r in rules if r.source != "page_view"
               and r.source not in {e for e, _, _ in sent}]
    funnels = _sendable_funnels(spec)
    steps = [e for f in funnels for e in f.steps if e not in {s for s, _, _ in sent}]
    traffic = make_traffic(sent, seed=seed,
                           extra_events=list(dict.fromkeys(sources + steps)))
    journeys = journeys_for(spec, traffic)
    if journeys is not None:
        traffic["journeys"] = journeys
    host = traffic["host"]
    files = [{"path": p, "text": t, "weight": w} for p, t, w in DEFAULT_DOWNLOADS]
    for rule in rules:
        if rule.source == "page_view":
            page = _page(rule.where, host)
            if page is not None:
                if page[0] != host:
                    traffic["host"] = host = page[0]
                if page[1] not in [p["path"] for p in traffic["pages"]]:
                    traffic["pages"].append({"path": page[1], "weight": PAGE_WEIGHT})
        elif rule.source == "file_download":
            made = _file(rule.where, host)
            if made is not None and made["path"] not in [f["path"] for f in files]:
                files.append(made)
    if len(files) > len(DEFAULT_DOWNLOADS):
        traffic["downloads"] = files
    return traffic


def _sendable_funnels(spec: Spec) -> list[Any]:
    """The spec's funnels whose every step the site sends (a goal GA makes from a rule or an
    audience exists only once that does, so the traffic cannot fire it on a journey)."""
    made = {g.event for g in spec.goals if g.origin is not None}
    return [f for f in spec.funnels if not made & set(f.steps)]


def journeys_for(spec: Spec, traffic: dict[str, Any]) -> dict[str, Any] | None:
    """The `journeys` profile (traffic.py) of a spec with funnels or `identifies` goals, else None.

    - each funnel whose steps the site sends: visitors enter it (35% of returning users per
      28-day cycle, 12% of first-time users; a funnel starting with a goal at that goal's
      usual rate) and go on to each next step with a typical
      e-commerce drop-off (45%, 55%, then 60% a step), half the time in the same session,
      otherwise about 2 days later;
    - each macro goal the site sends that is in no funnel: a one-step funnel at its usual rate;
    - each micro goal the site sends that is in no funnel: done at its usual rate (6 sessions'
      worth per cycle) and multiplying the buying odds of whoever does it before entering a
      funnel: x3 for `identifies` goals (they also sign the visitor in), x1.5 for the others;
    - an `identifies` goal that is a funnel step signs in whoever reaches that step.
    """
    if not spec.funnels and not any(g.identifies for g in spec.goals):
        return None
    funnels = _sendable_funnels(spec)
    in_funnels = {e for f in funnels for e in f.steps}
    rates = {g["event"]: float(g["session_rate"]) for g in traffic["goals"]}
    signs_in = {g.event for g in spec.goals if g.identifies}
    out_funnels: list[dict[str, Any]] = []
    for f in funnels:
        n = len(f.steps)
        first = rates.get(f.steps[0])  # a goal first: entered at that goal's usual rate
        per_cycle = IDENTIFY_SESSIONS if f.steps[0] in signs_in else JOURNEY_SESSIONS
        entry = 0.35 if first is None else round(min(0.5, first * per_cycle), 5)
        out_funnels.append({"steps": list(f.steps), "entry": entry,
                            "entry_new": 0.12 if first is None else first,
                            "continue": [min(0.45 + 0.1 * i, 0.6) for i in range(n - 1)],
                            "same_session": 0.5, "gap_days": 2.0})
    micro: list[dict[str, Any]] = []
    for g in spec.goals:
        if g.origin is not None or g.event in in_funnels or g.event not in rates:
            continue
        rate = rates[g.event]
        if g.tier == "macro":
            out_funnels.append({"steps": [g.event], "entry": round(min(0.5, rate * JOURNEY_SESSIONS), 5),
                                "entry_new": rate})
        else:
            per_cycle = IDENTIFY_SESSIONS if g.identifies else JOURNEY_SESSIONS
            micro.append({"event": g.event, "rate": round(min(0.5, rate * per_cycle), 5),
                          "rate_new": rate, "boost": IDENTIFIES_BOOST if g.identifies
                          else MICRO_BOOST, "identifies": bool(g.identifies)})
    steps_sign_in = [g.event for g in spec.goals if g.identifies and g.event in in_funnels]
    out: dict[str, Any] = {"cycle_days": 28, "funnels": out_funnels, "micro": micro}
    if steps_sign_in:
        out["identifies"] = steps_sign_in
    return out


def _literal(cond: Condition) -> str:
    """The text a condition's value stands for (a regex stripped of its syntax)."""
    if cond.op != "regex":
        return cond.value
    return re.sub(r"\\(.)", r"\1", re.sub(r"[\^$()\[\]*+?{}|]|\.(?=[*+?])", "", cond.value))


def _page(where: tuple[Condition, ...], host: str) -> tuple[str, str] | None:
    """(host, path) of a page whose page_location meets every condition, or None."""
    conds = [c for c in where if c.field == "page_location"]
    if not conds or len(conds) != len(where):
        return None
    text = _literal(conds[0])
    if "://" in text:
        parts = urlsplit(text)
        host, path = parts.netloc or host, (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    else:
        path = text if text.startswith("/") else "/" + text
    path = path.split("?", 1)[0]
    location = f"https://{host}{path}"
    return (host, path) if all(c.matches(location) for c in conds) else None


def _file(where: tuple[Condition, ...], host: str) -> dict[str, Any] | None:
    """A file (traffic `downloads` entry) whose parameters meet every condition, or None."""
    ext = "pdf"
    stem = "/downloads/file"
    for c in where:
        text = _literal(c)
        if c.field == "file_extension":
            ext = text.lstrip(".") or ext
        elif c.field in ("link_url", "file_name"):
            path = urlsplit(text).path if "://" in text else text
            stem = path if path.startswith("/") else "/downloads/" + path
    if stem.endswith("/"):
        stem += "file"
    path = stem if stem.lower().endswith("." + ext.lower()) else f"{stem}.{ext}"
    params = {"file_extension": path.rsplit(".", 1)[-1], "file_name": path,
              "link_url": f"https://{host}{path}", "link_text": "Download"}
    if not all(c.field in params and c.matches(params[c.field]) for c in where):
        return None
    return {"path": path, "text": "Download", "weight": DOWNLOAD_WEIGHT}
