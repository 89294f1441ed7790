"""The sandbox's synthetic event log: believable GA4 web traffic, generated day by day.

A property's traffic is described by a small JSON-able *profile* (`make_traffic`), stored as-is
in the sandbox state. `event_log` expands a profile into raw events for a date range. That log
is the single source of truth of the sandbox's Data API: every report is a groupby over it, and
tests compute their expected numbers from it with plain pandas.

Each day is drawn from its own RNG seeded by (seed, day), so any date range is reproducible and
days do not depend on each other; the generation is vectorized with numpy and recent days are
cached, so a day of a few thousand sessions costs milliseconds.

Profile schema (version 1)::

    {
      "version": 1,
      "seed": int,                       # RNG seed; with the day, fixes every event
      "start": "YYYY-MM-DD",             # first day with data; earlier days are empty
      "host": "www.example-123.com",     # page_location's host
      "daily_sessions": float,           # mean sessions on a weekday
      "weekday_factors": [7 floats],     # Monday..Sunday multipliers (B2B-ish: weekends lower)
      "noise": float,                    # day-to-day relative noise (sd) on session volume
      "new_user_share": float,           # share of sessions by a first-time user (gets first_visit)
      "returning_pool": int,             # returning users are drawn from this many ids
      "pageviews_mean": float,           # mean page_view events per session (at least 1)
      "engagement_rate": float,          # sessions with a user_engagement event
      "scroll_rate": float,              # page views followed by a scroll event
      "pages": [{"path": "/", "weight": float}, ...],
      "countries": [{"name": "United States", "weight": float}, ...],
      "goals": [{"event", "tier", "session_rate", "repeat", "value", "order_value", "path"}],
      "extra_events": [same shape as goals, "tier": null],  # events that are not in the spec
      "pageview_like": [str],            # events firing with 90% of page views, goals included
                                         # (a goal listed here loses its own session_rate)
      "thresholding": bool,              # reports flagged subjectToThresholding
      "pii_paths": bool,                 # some page_location query strings carry an e-mail address
      "downloads": [{"path": "/downloads/brochure.pdf", "text": str, "weight": float}, ...]
                                         # optional: the files file_download events are about
                                         # (DEFAULT_DOWNLOADS when absent)
      "journeys": {...}                  # optional, see below
    }

**Journeys** (opt-in: a profile without the key generates exactly the events it always did).
Visitors progress through funnels across sessions and days, micro goals raise their later
chance of buying, and `identifies` goals sign them in::

    "journeys": {
      "cycle_days": 28,        # a returning user's journeys start afresh every this many days
      "funnels": [{"steps": ["view_item", "add_to_cart", "begin_checkout", "purchase"],
                   "entry": 0.35,        # per cycle: share of returning users who start it
                   "entry_new": 0.12,    # share of first-time users who start it (one session)
                   "continue": [0.45, 0.55, 0.6],  # chance to go on to each next step
                   "same_session": 0.5,  # the next step in the same session, else ...
                   "gap_days": 2.0}],    # ... a later day (geometric, this mean, >= 1)
      "micro": [{"event": "sign_up", "rate": 0.1,  # per cycle, returning users
                 "rate_new": 0.02,                 # first-time users' one session
                 "boost": 3.0,                     # buying-odds multiplier once done
                 "identifies": true}],             # signs the user in (once in a lifetime)
      "identifies": ["sign_up"]          # optional: funnel steps that sign the user in too
    }

Every event named in `journeys` (micro goals and funnel steps; they must be goals or extra
events of the profile) is fired by the journeys only, not by its `session_rate`. A returning
user (a `returning_pool` id) has a fixed phase; each cycle draws, from an RNG of (seed, cycle),
on which day of it they do each micro goal and enter each funnel; each next step follows in the
same session or `gap_days` later, so a later step never precedes an earlier one. Those users
get a session on those days (taking the place of a random returning session's user). Micro
goals done on or before the entry day multiply the chance of entering and of the last step by
the square root of the product of their boosts (a one-step funnel: entry by the whole product).
First-time users never return, so their whole journey happens in their one session. From an
`identifies` event on (rows after it in its session, the user's later sessions, any day), the
user's events carry `signed_in_user_id` (a column `event_log` adds for journey profiles only:
nullable Int64, the pseudo id plus `visitors.SIGNED_IN_ID_OFFSET`). Everything is a function
of the seed, the day and the user id, so days stay independent and cacheable.

A goal's `session_rate` is the share of sessions in which it fires; `repeat` is the Poisson mean of
extra firings in such a session (so once-per-event and once-per-session counts differ); `value` is
the goal's numeric value or None; `order_value` (when `value` is None) is the mean of the lognormal
`value` parameter the event carries, in the property's currency.
"""

from __future__ import annotations

import json
import os
import re
import zlib
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import date, timedelta
from threading import Lock
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from ga_sync.sandbox import visitors

VERSION = 1
# Events every web session produces, GA4's automatically collected ones.
BASE_EVENTS = ("session_start", "first_visit", "page_view", "user_engagement", "scroll")
DEFAULT_PAGES = (
    ("/", 30.0), ("/products", 14.0), ("/products/widget", 9.0), ("/products/gadget", 7.0),
    ("/pricing", 8.0), ("/blog", 6.0), ("/blog/measure-micro-conversions", 5.0),
    ("/blog/ga4-key-events", 4.0), ("/about", 4.0), ("/contact", 5.0), ("/careers", 2.0),
    ("/search", 3.0),
)
# Monday..Sunday: weekends are quieter, as on a B2B-ish site.
DEFAULT_WEEKDAY_FACTORS = (1.05, 1.08, 1.06, 1.02, 0.94, 0.55, 0.50)
# Where visitors are, by GA's country names (a session keeps one country).
DEFAULT_COUNTRIES = (("United States", 38.0), ("United Kingdom", 12.0), ("Germany", 10.0),
                     ("Poland", 8.0), ("France", 7.0), ("Canada", 6.0), ("India", 6.0),
                     ("Netherlands", 4.0), ("Spain", 4.0), ("Brazil", 3.0), ("Australia", 2.0))
# The files `file_download` events are about (path on the site's host, link text, weight):
# their parameters file_extension, file_name, link_url and link_text (GA's enhanced
# measurement), which event create rules can match.
DEFAULT_DOWNLOADS = (("/downloads/brochure-2025.pdf", "Download our brochure", 20.0),
                     ("/downloads/brochure-products.pdf", "Product brochure (PDF)", 10.0),
                     ("/manuals/setup-guide.pdf", "Setup guide", 14.0),
                     ("/manuals/user-manual-v3.pdf", "User manual", 12.0),
                     ("/downloads/price-list.xlsx", "Price list", 8.0),
                     ("/downloads/terms.docx", "Terms and conditions", 4.0),
                     ("/downloads/press-kit.zip", "Press kit", 3.0))
#: Event parameters `event_log(..., parameters=True)` adds (NaN where an event has none).
PARAMETER_COLUMNS = ("file_extension", "file_name", "link_url", "link_text")
PII_PATH = "/newsletter/confirm"
PII_QUERY = "?email=jane.doe@example.com"
PURCHASE_LIKE = ("purchase", "ecommerce_purchase", "in_app_purchase")
# Share of sessions in which typical micro conversions happen on a healthy site.
TYPICAL_MICRO_RATES = {"add_to_cart": 0.08, "begin_checkout": 0.045, "add_to_wishlist": 0.03,
                       "view_cart": 0.06, "sign_up": 0.02, "newsletter_signup": 0.015,
                       "file_download": 0.03, "contact_click": 0.025, "share": 0.012,
                       "comment_posted": 0.015, "find_store": 0.04}
# Day ordinals and user ids of first-time users live in separate ranges from returning ids.
_ID_DAY = 1_000_000
_NEW_USER_BASE = 10**12

Goal = tuple[str, str, "float | None"]


def _stable_unit(*parts: object) -> float:
    """A number in [0, 1) fixed by its inputs (Python's hash() changes between runs)."""
    return zlib.crc32("|".join(map(str, parts)).encode()) / 2**32


def _goal_path(event: str) -> str:
    if event in PURCHASE_LIKE:
        return "/checkout/thank-you"
    return "/" + event.replace("_", "-")


def _event_entry(event: str, tier: str | None, value: float | None, seed: int,
                 index: int) -> dict[str, Any]:
    """Rates for one goal or extra event: macro ~2% of sessions, micro 1-12% (typical funnel
    steps at their usual share, the rest log-uniform, so most micro goals are small)."""
    u = _stable_unit(seed, event, index)
    if event in PURCHASE_LIKE:
        rate, repeat = 0.02, 0.05
    elif tier == "macro":
        rate, repeat = 0.016 + 0.008 * u, 0.08
    else:
        rate = TYPICAL_MICRO_RATES.get(event) or float(
            np.exp(np.log(0.01) + u * (np.log(0.12) - np.log(0.01))))
        rate *= 0.85 + 0.3 * _stable_unit(event, seed, "jitter")
        repeat = 0.15 + 0.5 * _stable_unit(event, seed, "repeat")
    order_value = None
    if value is None:
        order_value = 80.0 if event in PURCHASE_LIKE or tier == "macro" else 20.0
    return {"event": event, "tier": tier, "session_rate": round(rate, 5),
            "repeat": round(repeat, 4), "value": value, "order_value": order_value,
            "path": _goal_path(event)}


def make_traffic(goals: Iterable[Goal], *, seed: int = 0, daily_sessions: float = 1000.0,
                 start: date | str | None = None, property_id: str | int = "0",
                 weekday_factors: Sequence[float] = DEFAULT_WEEKDAY_FACTORS,
                 noise: float = 0.06, thresholding: bool = False, pii_paths: bool = False,
                 pageview_like: Sequence[str] = (),
                 extra_events: Sequence[str | tuple[str, float]] = ()) -> dict[str, Any]:
    """A traffic profile for a site with these goals, as `(event_name, tier, value_or_None)`.

    `start` (default: 400 days ago) is the first day with data. `extra_events` are events the
    site sends that are not in the spec, each a name or `(name, session_rate)`.
    """
    if len(weekday_factors) != 7:
        raise ValueError("weekday_factors needs 7 numbers, Monday to Sunday")
    if daily_sessions <= 0:
        raise ValueError("daily_sessions must be positive")
    first = (date.fromisoformat(start) if isinstance(start, str)
             else start or date.today() - timedelta(days=400))
    goal_entries = [_event_entry(e, tier, None if v is None else float(v), seed, i)
                    for i, (e, tier, v) in enumerate(goals)]
    known = {g["event"] for g in goal_entries} | set(BASE_EVENTS)
    extras = []
    for i, item in enumerate(extra_events):
        name, rate = (item, None) if isinstance(item, str) else (item[0], float(item[1]))
        if name in known:
            continue
        entry = _event_entry(name, None, 0.0, seed, 1000 + i)
        entry["value"] = None
        if rate is not None:
            entry["session_rate"] = rate
        extras.append(entry)
        known.add(name)
    # A returning pool sized so that users come to about 0.75 x sessions over a week.
    return {
        "version": VERSION, "seed": int(seed), "start": first.isoformat(),
        "host": f"www.example-{property_id}.com", "daily_sessions": float(daily_sessions),
        "weekday_factors": [float(f) for f in weekday_factors], "noise": float(noise),
        "new_user_share": 0.5, "returning_pool": int(round(2.2 * daily_sessions)) + 1,
        "pageviews_mean": 2.6, "engagement_rate": 0.82, "scroll_rate": 0.45,
        "pages": [{"path": p, "weight": w} for p, w in DEFAULT_PAGES],
        "countries": [{"name": c, "weight": w} for c, w in DEFAULT_COUNTRIES],
        "goals": goal_entries, "extra_events": extras,
        "pageview_like": [p for p in dict.fromkeys(pageview_like) if p not in BASE_EVENTS],
        "thresholding": bool(thresholding), "pii_paths": bool(pii_paths),
    }


@dataclass(frozen=True)
class _Catalog:
    """Names and pages of a profile, fixed once so days share category codes."""

    events: tuple[str, ...]
    paths: tuple[str, ...]          # unique page paths (categories of page_path)
    locations: tuple[str, ...]      # unique page locations (categories of page_location)
    page_path_code: np.ndarray      # page index -> path code
    page_location_code: np.ndarray  # page index -> location code
    page_weights: np.ndarray        # browsing pages only (the first n_browse pages)
    countries: tuple[str, ...]
    country_weights: np.ndarray
    n_browse: int
    goal_rows: tuple[dict[str, Any], ...]  # goals then extras, each with event/page codes
    downloads: tuple[tuple[str, str, str, str], ...] = ()  # (extension, name, url, text)
    download_weights: np.ndarray = field(default_factory=lambda: np.ones(1))


def _catalog(profile: dict[str, Any]) -> _Catalog:
    host = "https://" + profile["host"]
    fired = list(profile["goals"]) + list(profile["extra_events"])
    events = list(BASE_EVENTS) + [g["event"] for g in fired]
    events += [p for p in profile["pageview_like"] if p not in events]
    pages: list[tuple[str, str]] = [(p["path"], "") for p in profile["pages"]]
    weights = [float(p["weight"]) for p in profile["pages"]]
    if profile.get("pii_paths"):
        pages.append((PII_PATH, ""))
        weights.append(2.0)
        pages.append((PII_PATH, PII_QUERY))
        weights.append(0.6)
    n_browse = len(pages)
    goal_rows = []
    for g in fired:
        if g["event"] in profile["pageview_like"]:
            continue  # fires with page views instead, on the pages viewed
        pages.append((g["path"], ""))
        goal_rows.append({**g, "code": events.index(g["event"]), "page": len(pages) - 1})
    paths = list(dict.fromkeys(p for p, _ in pages))
    locations = list(dict.fromkeys(host + p + q for p, q in pages))
    w = np.asarray(weights, dtype=float)
    countries = profile.get("countries") or [{"name": c, "weight": w}
                                             for c, w in DEFAULT_COUNTRIES]
    cw = np.asarray([float(c["weight"]) for c in countries], dtype=float)
    files = profile.get("downloads") or [{"path": p, "text": t, "weight": w}
                                         for p, t, w in DEFAULT_DOWNLOADS]
    downloads = tuple((f["path"].rsplit(".", 1)[-1] if "." in f["path"] else "", f["path"],
                       host + f["path"], f.get("text") or "") for f in files)
    dw = np.asarray([float(f.get("weight", 1.0)) for f in files], dtype=float)
    return _Catalog(
        downloads=downloads, download_weights=dw / dw.sum(),
        countries=tuple(c["name"] for c in countries), country_weights=cw / cw.sum(),
        events=tuple(events), paths=tuple(paths), locations=tuple(locations),
        page_path_code=np.array([paths.index(p) for p, _ in pages], dtype=np.int32),
        page_location_code=np.array([locations.index(host + p + q) for p, q in pages],
                                    dtype=np.int32),
        page_weights=w / w.sum(), n_browse=n_browse, goal_rows=tuple(goal_rows))


_Day = dict[str, np.ndarray]
# Per-event copies of the session's attributes (visitors.py), and their types.
_VISITOR_DTYPES = {"place": np.int16, "language": np.int16, "device": np.int16, "source": np.int16,
                   "first_source": np.int16, "landing": np.int32, "new": np.bool_,
                   "duration": np.float64, "engagement_ms": np.int64, "start": np.int32}
# event_log's columns of session attributes (categorical) and numbers, which reports read.
SESSION_COLUMNS = ("region", "city", "language", "device_category", "operating_system", "browser",
                   "session_source", "session_medium", "session_campaign",
                   "session_default_channel_group", "first_user_source", "first_user_medium",
                   "first_user_campaign", "first_user_default_channel_group", "landing_page",
                   "landing_page_query", "new_vs_returning")
NUMBER_COLUMNS = ("engagement_time_msec", "session_duration", "session_start")


def _generate_day(profile: dict[str, Any], cat: _Catalog, day: date) -> _Day:
    """All events of one day, as parallel arrays (event and page are catalog codes)."""
    if day < date.fromisoformat(profile["start"]):
        return {k: np.empty(0, dtype=t) for k, t in
                (("session", np.int64), ("user", np.int64), ("event", np.int16),
                 ("value", float), ("page", np.int32), ("country", np.int16),
                 ("download", np.int16),
                 *((k, v) for k, v in _VISITOR_DTYPES.items()))}
    rng = np.random.default_rng([int(profile["seed"]) & 0xFFFFFFFF, day.toordinal()])
    mean = profile["daily_sessions"] * profile["weekday_factors"][day.weekday()]
    mean *= max(0.2, 1.0 + profile["noise"] * rng.standard_normal())
    n = int(rng.poisson(mean))
    session = day.toordinal() * _ID_DAY + np.arange(n, dtype=np.int64)
    new = rng.random(n) < profile["new_user_share"]
    user = np.where(new, _NEW_USER_BASE + session,
                    rng.integers(0, profile["returning_pool"], n)).astype(np.int64)
    plan = profile.get("journeys")
    journey = _journey_sessions(profile, cat, day, new, user) if plan else None
    sidx = np.arange(n)
    # Page views: 1 + geometric extra, landing page first.
    extra_pv = rng.geometric(1.0 / profile["pageviews_mean"], n) - 1
    pv_count = 1 + np.minimum(extra_pv, 30)
    pv_session = np.repeat(sidx, pv_count)
    pv_page = rng.choice(cat.n_browse, size=pv_session.size, p=cat.page_weights)
    first_pv = np.concatenate(([0], np.cumsum(pv_count)[:-1])).astype(np.int64) if n else sidx
    landing = pv_page[first_pv] if n else pv_page[:0]

    parts: list[tuple[np.ndarray, int, np.ndarray, np.ndarray | None]] = []
    code = {name: i for i, name in enumerate(cat.events)}
    parts.append((sidx, code["session_start"], landing, None))
    parts.append((sidx[new], code["first_visit"], landing[new], None))
    parts.append((pv_session, code["page_view"], pv_page, None))
    engaged = rng.random(n) < profile["engagement_rate"]
    parts.append((sidx[engaged], code["user_engagement"], landing[engaged], None))
    scrolled = rng.random(pv_session.size) < profile["scroll_rate"]
    parts.append((pv_session[scrolled], code["scroll"], pv_page[scrolled], None))
    for name in profile["pageview_like"]:
        hit = rng.random(pv_session.size) < 0.9
        parts.append((pv_session[hit], code[name], pv_page[hit], None))
    managed = set(visitors.journey_actions(plan)) if plan else set()
    for g in cat.goal_rows:
        if g["event"] in managed:
            continue  # fired by the journeys below
        fires = np.flatnonzero(rng.random(n) < g["session_rate"])
        times = 1 + rng.poisson(g["repeat"], fires.size)
        s = np.repeat(fires, times)
        values = None
        if g["value"] is None and g.get("order_value"):
            sigma = 0.55
            mu = np.log(g["order_value"]) - sigma**2 / 2
            values = np.round(rng.lognormal(mu, sigma, s.size), 2)
        parts.append((s, g["code"], np.full(s.size, g["page"], dtype=np.int32), values))

    if journey is not None:
        parts += _journey_parts(profile, cat, day, journey)
    s_all = np.concatenate([p[0] for p in parts]) if parts else np.empty(0, np.int64)
    ev = np.concatenate([np.full(p[0].size, p[1], dtype=np.int16) for p in parts])
    page = np.concatenate([p[2].astype(np.int32) for p in parts])
    value = np.concatenate([p[3] if p[3] is not None else np.full(p[0].size, np.nan)
                            for p in parts])
    order = np.argsort(s_all, kind="stable")  # events grouped by session, in firing order
    s_all = s_all[order]
    country = rng.choice(len(cat.countries), size=n, p=cat.country_weights).astype(np.int16)
    out = {"session": session[s_all], "user": user[s_all], "event": ev[order],
           "value": value[order], "page": page[order], "country": country[s_all]}
    # Session attributes come from their own random stream: the events above stay as they were.
    who = visitors.draw_sessions(profile["seed"], day, visitors.tables(cat.countries), country,
                                 new, user, engaged, pv_count)
    who["landing"] = landing
    who["new"] = new
    for k, dtype in _VISITOR_DTYPES.items():
        if k != "engagement_ms":
            out[k] = who[k][s_all].astype(dtype)
    # engagement time travels on the session's user_engagement event, as engagement_time_msec
    on = ev[order] == code["user_engagement"]
    out["engagement_ms"] = np.where(on, who["engagement_ms"][s_all], 0).astype(np.int64)
    # Which file each file_download is about, from its own random stream (nothing above moves).
    download = np.full(out["event"].size, -1, dtype=np.int16)
    if "file_download" in code:
        hits = np.flatnonzero(out["event"] == code["file_download"])
        pick = np.random.default_rng([int(profile["seed"]) & 0xFFFFFFFF, day.toordinal(), 0xD0C])
        download[hits] = pick.choice(len(cat.downloads), size=hits.size, p=cat.download_weights)
    out["download"] = download
    if journey is not None:
        out["signed"] = _signed(out, s_all, journey, cat)
    return out


@dataclass
class _Journey:
    """A day's journey sessions: (session, action) pairs and who is signed in."""

    session: np.ndarray           # session index of each action
    action: np.ndarray            # index into `names`
    names: tuple[str, ...]
    signed_session: np.ndarray    # per session: every row carries the user id
    identifies: tuple[str, ...]   # events from which on a session's rows carry it


def _journey_sessions(profile: dict[str, Any], cat: _Catalog, day: date, new: np.ndarray,
                      user: np.ndarray) -> _Journey:
    """Give the returning users whose journeys act today a session each (replacing the
    user of a random returning session; `user` is changed in place), and lay out the actions
    of returning and first-time users by session."""
    spec = profile["journeys"]
    pool = int(profile["returning_pool"])
    seed = int(profile["seed"])
    jd = visitors.journey_day(fingerprint(profile), seed, spec, pool,
                              date.fromisoformat(profile["start"]), day)
    rng = np.random.default_rng([seed & 0xFFFFFFFF, day.toordinal(), 0x5E55])
    returning = np.flatnonzero(~new)
    k = min(jd.users.size, returning.size)  # more journeys than returning sessions: rest wait
    chosen = np.sort(rng.permutation(returning)[:k])
    movers = jd.users[rng.permutation(jd.users.size)[:k]]
    user[chosen] = movers
    where = np.full(pool, -1, dtype=np.int64)
    where[movers] = chosen
    act_session = where[jd.action_user]
    ok = act_session >= 0
    new_idx = np.flatnonzero(new)
    w, a, _ = visitors.new_user_journeys(seed, spec, day, new_idx.size)
    session = np.concatenate([act_session[ok], new_idx[w]])
    action = np.concatenate([jd.action[ok], a])
    is_pool = ~new
    pool_user = np.where(is_pool, user, 0)
    signed_session = is_pool & jd.identified_before[pool_user]
    # the same day, sessions after the one in which the user signs in
    ident_at = np.full(pool, np.iinfo(np.int64).max)
    today = np.flatnonzero(jd.identify_today[movers])
    ident_at[movers[today]] = chosen[today]
    later = is_pool & (np.arange(user.size) > ident_at[pool_user])
    return _Journey(session=session, action=action, names=jd.names,
                    signed_session=signed_session | later,
                    identifies=visitors.identifying(spec))


def _journey_parts(profile: dict[str, Any], cat: _Catalog, day: date, j: _Journey
                   ) -> list[tuple[np.ndarray, int, np.ndarray, np.ndarray | None]]:
    """Event parts of the journeys' actions, micro goals before funnel steps, steps in order
    (a session's rows keep their part order, so a step never precedes the one before it)."""
    rows = {g["event"]: g for g in cat.goal_rows}
    vrng = np.random.default_rng([int(profile["seed"]) & 0xFFFFFFFF, day.toordinal(), 0x7A1])
    parts: list[tuple[np.ndarray, int, np.ndarray, np.ndarray | None]] = []
    for i, name in enumerate(j.names):
        g = rows.get(name)
        if g is None:
            continue  # not an event of the catalog (e.g. a page-view-like event)
        s = np.sort(j.session[j.action == i])
        values = None
        if g["value"] is None and g.get("order_value"):
            sigma = 0.55
            mu = np.log(g["order_value"]) - sigma**2 / 2
            values = np.round(vrng.lognormal(mu, sigma, s.size), 2)
        parts.append((s, g["code"], np.full(s.size, g["page"], dtype=np.int32), values))
    return parts


def _signed(out: _Day, s_all: np.ndarray, j: _Journey, cat: _Catalog) -> np.ndarray:
    """Per event: carries the user id (signed in earlier, or from an identifying event on,
    in its session)."""
    codes = [cat.events.index(e) for e in j.identifies if e in cat.events]
    hit = np.isin(out["event"], codes) if codes else np.zeros(s_all.size, dtype=bool)
    idx = np.where(hit, np.arange(s_all.size), -1)
    last = np.maximum.accumulate(idx) if idx.size else idx
    since = (last >= 0) & (s_all[np.maximum(last, 0)] == s_all)
    return j.signed_session[s_all] | since


def _default_cache_bytes() -> int:
    """The day cache's budget: an eighth of the machine's memory, between 256 MiB and 4 GiB.

    A day of a 1,000-session site is ~0.5 MB, so 90 days x 50 such properties (2.3 GB) fit on
    a machine with 24 GB; the old cache of 240 days did not, and 90-day reports over 50
    properties spent 75% of their time generating days again (bench/report_many.py).
    """
    try:
        memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        memory = 16 << 30
    return int(min(4 << 30, max(256 << 20, memory // 8)))


class _DayCache:
    """Generated days, keyed by (profile fingerprint, day), least recently used dropped first
    once they hold more than `max_bytes` of arrays."""

    def __init__(self, max_bytes: int | None = None) -> None:
        self.max_bytes = _default_cache_bytes() if max_bytes is None else max_bytes
        self.bytes = 0
        self.days: OrderedDict[tuple[str, int], _Day] = OrderedDict()
        self.catalogs: OrderedDict[str, _Catalog] = OrderedDict()
        self.lock = Lock()

    def catalog(self, key: str, profile: dict[str, Any]) -> _Catalog:
        with self.lock:
            if key in self.catalogs:
                self.catalogs.move_to_end(key)
                return self.catalogs[key]
        cat = _catalog(profile)
        with self.lock:
            self.catalogs[key] = cat
            while len(self.catalogs) > 1024:
                self.catalogs.popitem(last=False)
        return cat

    def day(self, key: str, profile: dict[str, Any], cat: _Catalog, day: date) -> _Day:
        k = (key, day.toordinal())
        with self.lock:
            if k in self.days:
                self.days.move_to_end(k)
                return self.days[k]
        data = _generate_day(profile, cat, day)
        size = sum(a.nbytes for a in data.values())
        with self.lock:
            if k not in self.days:
                self.days[k] = data
                self.bytes += size
            while self.bytes > self.max_bytes and len(self.days) > 1:
                _, dropped = self.days.popitem(last=False)
                self.bytes -= sum(a.nbytes for a in dropped.values())
        return data


def set_day_cache(max_bytes: int | None = None) -> None:
    """Start an empty day cache holding up to `max_bytes` of days (None: the default budget)."""
    global _CACHE
    _CACHE = _DayCache(max_bytes)


_CACHE = _DayCache()


def fingerprint(profile: dict[str, Any]) -> str:
    """A key that changes whenever anything in the profile does."""
    return json.dumps(profile, sort_keys=True, default=str)


def event_log(traffic: dict[str, Any] | None, start: date, end: date,
              time_zone: str = "UTC", *, parameters: bool = False) -> pd.DataFrame:
    """Every event from `start` to `end` (inclusive; local days of the property's time zone).

    Columns: `date` ('YYYYMMDD' strings, ordered categorical), `user_id` and `session_id` (int64; a
    session never spans two days), `event_name` (categorical), `value` (float, NaN when the event
    carries no `value` parameter), `page_path` (no query string, as GA's pagePath) and
    `page_location` (full URL with query string), `country` (the session's), all categorical;
    then the session's attributes (`SESSION_COLUMNS`, categorical: region, city, language,
    device category / operating system / browser, session source / medium / campaign / default
    channel group, the user's first source / medium / campaign / channel group, landing page
    with and without query string, `new_vs_returning`) and `NUMBER_COLUMNS`:
    `engagement_time_msec` (on user_engagement events, 0 elsewhere), `session_duration`
    (seconds) and `session_start` (seconds after local midnight). Rows of a session are
    contiguous. `time_zone` only names the days' zone: days are generated whole, so the
    property's zone never shifts an event from one day to another.

    With `parameters`, the event parameters of `PARAMETER_COLUMNS` follow (categorical, NaN on
    events without them): `file_extension` ("pdf"), `file_name` (the file's path), `link_url`
    (full URL) and `link_text`, carried by `file_download` events.
    """
    columns = ["date", "user_id", "session_id", "event_name", "value", "page_path",
               "page_location", "country", *SESSION_COLUMNS, *NUMBER_COLUMNS]
    if parameters:
        columns += PARAMETER_COLUMNS
    days = [start + timedelta(days=i) for i in range((end - start).days + 1)]
    if traffic is None or not days:
        frame = pd.DataFrame({c: pd.Series(dtype=float if c == "value" or c in NUMBER_COLUMNS
                                           else object) for c in columns})
        frame.attrs["time_zone"] = time_zone
        return frame
    key = fingerprint(traffic)
    cat = _CACHE.catalog(key, traffic)
    chunks = [_CACHE.day(key, traffic, cat, d) for d in days]
    sizes = np.array([c["event"].size for c in chunks])
    page = np.concatenate([c["page"] for c in chunks])
    date_names = [d.strftime("%Y%m%d") for d in days]
    frame = pd.DataFrame({
        "date": pd.Categorical.from_codes(np.repeat(np.arange(len(days)), sizes),
                                          categories=date_names, ordered=True),
        "user_id": np.concatenate([c["user"] for c in chunks]),
        "session_id": np.concatenate([c["session"] for c in chunks]),
        "event_name": pd.Categorical.from_codes(
            np.concatenate([c["event"] for c in chunks]), categories=list(cat.events)),
        "value": np.concatenate([c["value"] for c in chunks]),
        "page_path": pd.Categorical.from_codes(cat.page_path_code[page],
                                               categories=list(cat.paths)),
        "page_location": pd.Categorical.from_codes(cat.page_location_code[page],
                                                   categories=list(cat.locations)),
        "country": pd.Categorical.from_codes(np.concatenate([c["country"] for c in chunks]),
                                             categories=list(cat.countries)),
        **_visitor_columns(cat, chunks),
        **(_parameter_columns(cat, chunks) if parameters else {}),
    })
    if traffic.get("journeys"):
        signed = np.concatenate([c.get("signed", np.zeros(c["event"].size, dtype=bool))
                                 for c in chunks])
        ids = frame["user_id"].to_numpy() + visitors.SIGNED_IN_ID_OFFSET
        frame["signed_in_user_id"] = pd.arrays.IntegerArray(np.where(signed, ids, 0), ~signed)
    frame.attrs["time_zone"] = time_zone
    return frame


def _parameter_columns(cat: _Catalog, chunks: list[_Day]) -> dict[str, pd.Categorical]:
    """`PARAMETER_COLUMNS`, event by event (code -1: the event has no such parameter)."""
    code = np.concatenate([c["download"] for c in chunks]).astype(np.int32)
    out = {}
    for i, name in enumerate(PARAMETER_COLUMNS):
        values = [d[i] for d in cat.downloads]
        distinct = list(dict.fromkeys(values))
        where = np.array([distinct.index(v) for v in values] + [-1], dtype=np.int32)
        out[name] = pd.Categorical.from_codes(where[code], categories=distinct, validate=False)
    return out


def _lookup(codes: np.ndarray, values: Sequence[str]) -> pd.Categorical:
    """Codes into `values` (which may repeat) as a categorical of the distinct values."""
    distinct = list(dict.fromkeys(values))
    small = np.int8 if len(distinct) < 128 else np.int16  # pandas' own code width: no copy
    where = np.array([distinct.index(v) for v in values] or [0], dtype=small)
    return pd.Categorical.from_codes(where[codes] if codes.size else codes.astype(small),
                                     categories=distinct, validate=False)


def _visitor_columns(cat: _Catalog, chunks: list[_Day]) -> dict[str, Any]:
    """The session attributes of `SESSION_COLUMNS` and `NUMBER_COLUMNS`, event by event."""
    tabs = visitors.tables(cat.countries)
    col = {k: np.concatenate([c[k] for c in chunks]) for k in _VISITOR_DTYPES}
    place, dev, src, first = col["place"], col["device"], col["source"], col["first_source"]
    channels = [visitors.channel_group(*s) for s in tabs.sources]
    path_query = [re.sub(r"^[a-z]+://[^/]+", "", loc) or "/" for loc in cat.locations]
    return {
        "region": _lookup(place, [r for r, _ in tabs.places]),
        "city": _lookup(place, [c for _, c in tabs.places]),
        "language": _lookup(col["language"], tabs.languages),
        "device_category": _lookup(dev, [d[0] for d in tabs.devices]),
        "operating_system": _lookup(dev, [d[1] for d in tabs.devices]),
        "browser": _lookup(dev, [d[2] for d in tabs.devices]),
        "session_source": _lookup(src, [s[0] for s in tabs.sources]),
        "session_medium": _lookup(src, [s[1] for s in tabs.sources]),
        "session_campaign": _lookup(src, [s[2] for s in tabs.sources]),
        "session_default_channel_group": _lookup(src, channels),
        "first_user_source": _lookup(first, [s[0] for s in tabs.sources]),
        "first_user_medium": _lookup(first, [s[1] for s in tabs.sources]),
        "first_user_campaign": _lookup(first, [s[2] for s in tabs.sources]),
        "first_user_default_channel_group": _lookup(first, channels),
        "landing_page": _lookup(cat.page_path_code[col["landing"]], list(cat.paths)),
        "landing_page_query": _lookup(cat.page_location_code[col["landing"]], path_query),
        "new_vs_returning": _lookup((~col["new"]).astype(np.int64), ["new", "returning"]),
        "engagement_time_msec": col["engagement_ms"],
        "session_duration": col["duration"],
        "session_start": col["start"],
    }
