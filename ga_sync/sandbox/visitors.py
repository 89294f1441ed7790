"""Who the sandbox's synthetic sessions are: place, language, device, traffic source, timing.

`traffic.py` draws the events of a day; this module draws, for each of its sessions, the
attributes GA reports by (city, region, language, device category / operating system /
browser, session source / medium / campaign, first-user source, duration, engagement time,
start time). Every table is small and fixed, so the columns are integer codes into it; a
session's attributes are the same on all its events, and a user keeps the source that first
brought them: a new user's is the source of the session they arrive in, a returning user's is
fixed by their id.

The attributes come from their own random stream (seeded by the profile's seed and the day),
so the events `traffic.py` already drew, and every number built on them, do not change.

`channel_group` follows GA's default channel group rules
(https://support.google.com/analytics/answer/9756891) for the common cases: direct, paid and
organic search, social, video and shopping, display, email, affiliates, referral, audio, SMS,
push; the site lists it checks against are short excerpts of Google's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import Any

import numpy as np

NOT_SET = "(not set)"

# country -> [(region, city, weight)]; the rest of a country's sessions have no city.
PLACES: dict[str, tuple[tuple[str, str, float], ...]] = {
    "United States": (("California", "Los Angeles", 9), ("California", "San Francisco", 7),
                      ("New York", "New York", 12), ("Texas", "Austin", 5),
                      ("Illinois", "Chicago", 6), ("Washington", "Seattle", 5),
                      ("Florida", "Miami", 4), ("Massachusetts", "Boston", 4)),
    "United Kingdom": (("England", "London", 14), ("England", "Manchester", 4),
                       ("Scotland", "Edinburgh", 3), ("England", "Birmingham", 3)),
    "Germany": (("Berlin", "Berlin", 8), ("Bavaria", "Munich", 6), ("Hamburg", "Hamburg", 5),
                ("North Rhine-Westphalia", "Cologne", 4)),
    "Poland": (("Masovian Voivodeship", "Warsaw", 10), ("Lesser Poland Voivodeship", "Krakow", 5),
               ("Lower Silesian Voivodeship", "Wroclaw", 4), ("Pomeranian Voivodeship", "Gdansk", 3)),
    "France": (("Ile-de-France", "Paris", 12), ("Auvergne-Rhone-Alpes", "Lyon", 4),
               ("Provence-Alpes-Cote d'Azur", "Marseille", 3)),
    "Canada": (("Ontario", "Toronto", 9), ("Quebec", "Montreal", 6),
               ("British Columbia", "Vancouver", 5)),
    "India": (("Maharashtra", "Mumbai", 8), ("Karnataka", "Bengaluru", 8), ("Delhi", "New Delhi", 7)),
    "Netherlands": (("North Holland", "Amsterdam", 9), ("South Holland", "Rotterdam", 4),
                    ("Utrecht", "Utrecht", 3)),
    "Spain": (("Community of Madrid", "Madrid", 8), ("Catalonia", "Barcelona", 7),
              ("Valencian Community", "Valencia", 3)),
    "Brazil": (("State of Sao Paulo", "Sao Paulo", 10), ("State of Rio de Janeiro", "Rio de Janeiro", 6)),
    "Australia": (("New South Wales", "Sydney", 8), ("Victoria", "Melbourne", 7),
                  ("Queensland", "Brisbane", 3)),
}
UNLOCATED_SHARE = 0.04  # sessions GA cannot place in a city: "(not set)"
COUNTRY_IDS = {"United States": "US", "United Kingdom": "GB", "Germany": "DE", "Poland": "PL",
               "France": "FR", "Canada": "CA", "India": "IN", "Netherlands": "NL", "Spain": "ES",
               "Brazil": "BR", "Australia": "AU"}
CONTINENTS = {"United States": ("Americas", "019"), "Canada": ("Americas", "019"),
              "Brazil": ("Americas", "019"), "India": ("Asia", "142"),
              "Australia": ("Oceania", "009")}  # the others here are in Europe ("150")
# country -> [(language, weight)]
LANGUAGES: dict[str, tuple[tuple[str, float], ...]] = {
    "United States": (("English", 92), ("Spanish", 8)), "United Kingdom": (("English", 100),),
    "Germany": (("German", 85), ("English", 15)), "Poland": (("Polish", 85), ("English", 15)),
    "France": (("French", 88), ("English", 12)), "Canada": (("English", 75), ("French", 25)),
    "India": (("English", 80), ("Hindi", 20)), "Netherlands": (("Dutch", 75), ("English", 25)),
    "Spain": (("Spanish", 85), ("English", 15)), "Brazil": (("Portuguese", 92), ("English", 8)),
    "Australia": (("English", 100),),
}
LANGUAGE_CODES = {"English": "en-us", "Spanish": "es", "German": "de", "Polish": "pl",
                  "French": "fr", "Hindi": "hi", "Dutch": "nl", "Portuguese": "pt-br"}
# (device category, share, [(operating system, share, [(browser, share)])])
DEVICES = (
    ("desktop", 0.55, (("Windows", 0.66, (("Chrome", 0.7), ("Edge", 0.18), ("Firefox", 0.1), ("Opera", 0.02))),
                       ("Macintosh", 0.26, (("Chrome", 0.55), ("Safari", 0.4), ("Firefox", 0.05))),
                       ("Linux", 0.05, (("Chrome", 0.7), ("Firefox", 0.3))),
                       ("Chrome OS", 0.03, (("Chrome", 1.0),)))),
    ("mobile", 0.42, (("Android", 0.55, (("Chrome", 0.8), ("Samsung Internet", 0.15), ("Firefox", 0.05))),
                      ("iOS", 0.45, (("Safari", 0.85), ("Chrome", 0.15))))),
    ("tablet", 0.03, (("iOS", 0.6, (("Safari", 0.9), ("Chrome", 0.1))),
                      ("Android", 0.4, (("Chrome", 1.0),)))),
)
# (source, medium, campaign, share of sessions); GA's names for sessions without a campaign.
SOURCES = (
    ("google", "organic", "(organic)", 0.36), ("(direct)", "(none)", "(direct)", 0.22),
    ("bing", "organic", "(organic)", 0.04), ("duckduckgo", "organic", "(organic)", 0.01),
    ("google", "cpc", "brand_search", 0.05), ("google", "cpc", "generic_search", 0.04),
    ("facebook", "paid_social", "spring_sale", 0.02), ("l.facebook.com", "referral", "(referral)", 0.03),
    ("linkedin.com", "referral", "(referral)", 0.02), ("t.co", "referral", "(referral)", 0.01),
    ("youtube.com", "referral", "(referral)", 0.01), ("newsletter", "email", "monthly_newsletter", 0.05),
    ("partner-blog.com", "referral", "(referral)", 0.04), ("awin", "affiliate", "partners", 0.02),
    ("google", "display", "remarketing", 0.02), ("chatgpt.com", "referral", "(referral)", 0.01),
    ("news.ycombinator.com", "referral", "(referral)", 0.02), ("github.com", "referral", "(referral)", 0.03),
)
ENGAGED_SECONDS = 10  # GA: an engaged session lasted longer than 10 seconds (or had 2+ page views)

_SEARCH = ("google", "bing", "yahoo", "duckduckgo", "baidu", "yandex", "ecosia", "search.brave.com")
_SOCIAL = ("facebook", "instagram", "linkedin", "lnkd.in", "t.co", "twitter", "x.com", "reddit",
           "pinterest", "tiktok", "news.ycombinator.com", "quora")
_VIDEO = ("youtube", "vimeo", "twitch", "dailymotion")
_SHOPPING = ("shopping.google", "amazon", "ebay", "etsy", "walmart")
_PAID = re.compile(r"^(.*cp.*|ppc|retargeting|paid.*)$")
_SHOP_CAMPAIGN = re.compile(r"^(.*(([^a-df-z]|^)shop|shopping).*)$")


def _site(source: str, sites: tuple[str, ...]) -> bool:
    s = source.lower()
    return any(s == x or s.startswith(x + ".") or s.endswith("." + x) or s.endswith("." + x + ".com")
               or s == x + ".com" for x in sites)


def channel_group(source: str, medium: str, campaign: str = "") -> str:
    """GA's default channel group of a source / medium / campaign (common cases)."""
    s, m, c = source.lower(), medium.lower(), campaign.lower()
    paid = _PAID.match(m) is not None
    shopping = _site(s, _SHOPPING) or _SHOP_CAMPAIGN.match(c) is not None
    if s == "(direct)" and m in ("(none)", "(not set)"):
        return "Direct"
    if "cross-network" in c:
        return "Cross-network"
    if shopping and paid:
        return "Paid Shopping"
    if _site(s, _SEARCH) and paid:
        return "Paid Search"
    if _site(s, _SOCIAL) and paid:
        return "Paid Social"
    if _site(s, _VIDEO) and paid:
        return "Paid Video"
    if m in ("display", "banner", "expandable", "interstitial", "cpm"):
        return "Display"
    if paid:
        return "Paid Other"
    if shopping:
        return "Organic Shopping"
    if _site(s, _SOCIAL) or m in ("social", "social-network", "social-media", "sm", "social network",
                                  "social media"):
        return "Organic Social"
    if _site(s, _VIDEO) or "video" in m:
        return "Organic Video"
    if _site(s, _SEARCH) or m == "organic":
        return "Organic Search"
    if m in ("referral", "app", "link"):
        return "Referral"
    if re.search(r"e[-_ ]?mail", s) or re.search(r"e[-_ ]?mail", m):
        return "Email"
    if m == "affiliate":
        return "Affiliates"
    if m == "audio":
        return "Audio"
    if s == "sms" or m == "sms":
        return "SMS"
    if m.endswith("push") or "mobile" in m or "notification" in m or s == "firebase":
        return "Mobile Push Notifications"
    return "Unassigned"


@dataclass(frozen=True)
class Tables:
    """The attribute tables of one profile (its countries fix the places and languages)."""

    places: tuple[tuple[str, str], ...]  # (region, city), codes of the `place` column
    place_cum: np.ndarray                # country x place: cumulative shares
    place_code: np.ndarray               # country x place: code into `places`
    languages: tuple[str, ...]
    language_cum: np.ndarray
    language_code: np.ndarray
    devices: tuple[tuple[str, str, str], ...]  # (category, operating system, browser)
    device_p: np.ndarray
    sources: tuple[tuple[str, str, str], ...]  # (source, medium, campaign)
    source_p: np.ndarray
    source_cum: np.ndarray


def _conditional(countries: tuple[str, ...], table: list[list[tuple[Any, float]]]
                 ) -> tuple[tuple[Any, ...], np.ndarray, np.ndarray]:
    """Per-country choices as (values, cumulative shares, codes), padded to one width."""
    values: list[Any] = []
    width = max(len(row) for row in table)
    cum = np.ones((len(countries), width))
    codes = np.zeros((len(countries), width), dtype=np.int16)
    for i, row in enumerate(table):
        w = np.array([p for _, p in row], dtype=float)
        cum[i, :len(row)] = np.cumsum(w / w.sum())
        cum[i, len(row) - 1:] = 1.0
        for j, (v, _) in enumerate(row):
            if v not in values:
                values.append(v)
            codes[i, j] = values.index(v)
        codes[i, len(row):] = codes[i, len(row) - 1]
    return tuple(values), cum, codes


@lru_cache(maxsize=64)
def tables(countries: tuple[str, ...]) -> Tables:
    place_rows = []
    lang_rows = []
    for c in countries:
        known = PLACES.get(c)
        if known:
            total = sum(w for _, _, w in known)
            row = [((r, city), w * (1 - UNLOCATED_SHARE) / total) for r, city, w in known]
            place_rows.append(row + [((NOT_SET, NOT_SET), UNLOCATED_SHARE)])
        else:
            place_rows.append([((NOT_SET, NOT_SET), 1.0)])
        lang_rows.append(list(LANGUAGES.get(c, (("English", 1.0),))))
    places, place_cum, place_code = _conditional(countries, place_rows)
    languages, lang_cum, lang_code = _conditional(countries, lang_rows)
    devices, dp = [], []
    for cat, p, systems in DEVICES:
        for os_name, q, browsers in systems:
            for browser, r in browsers:
                devices.append((cat, os_name, browser))
                dp.append(p * q * r)
    sp = np.array([s[3] for s in SOURCES])
    sp = sp / sp.sum()
    return Tables(places=places, place_cum=place_cum, place_code=place_code, languages=languages,
                  language_cum=lang_cum, language_code=lang_code, devices=tuple(devices),
                  device_p=np.array(dp) / sum(dp), sources=tuple(s[:3] for s in SOURCES),
                  source_p=sp, source_cum=np.cumsum(sp))


def _pick(cum: np.ndarray, codes: np.ndarray, group: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Vectorized draw of one choice per row from its group's cumulative shares."""
    if not group.size:
        return np.zeros(0, dtype=np.int16)
    j = (u[:, None] >= cum[group]).sum(axis=1)
    return codes[group, np.minimum(j, cum.shape[1] - 1)]


def _unit_of(ids: np.ndarray) -> np.ndarray:
    """A number in [0, 1) fixed by each id (a multiplicative hash)."""
    h = ids.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    h ^= h >> np.uint64(29)
    return (h >> np.uint64(11)).astype(np.float64) / float(2**53)


def draw_sessions(seed: int, day: date, tabs: Tables, country: np.ndarray, new: np.ndarray,
                  user: np.ndarray, engaged: np.ndarray, pageviews: np.ndarray) -> dict[str, np.ndarray]:
    """Per-session attribute codes for one day's sessions (in session order).

    `engaged` are the sessions with a user_engagement event and `pageviews` their page view
    counts; a session is engaged in GA's sense (longer than 10 s) when it had either of them.
    """
    n = country.size
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, day.toordinal(), 0x5EE])
    place = _pick(tabs.place_cum, tabs.place_code, country.astype(np.int64), rng.random(n))
    language = _pick(tabs.language_cum, tabs.language_code, country.astype(np.int64), rng.random(n))
    device = rng.choice(len(tabs.devices), size=n, p=tabs.device_p).astype(np.int16)
    source = rng.choice(len(tabs.sources), size=n, p=tabs.source_p).astype(np.int16)
    # A new user arrived with this session's source; a returning one keeps theirs, by id.
    kept = np.searchsorted(tabs.source_cum, _unit_of(user), side="right")
    first_source = np.where(new, source, np.minimum(kept, len(tabs.sources) - 1)).astype(np.int16)
    long = engaged | (pageviews >= 2)
    duration = np.where(long, ENGAGED_SECONDS + rng.gamma(1.3, 110.0, n), rng.uniform(0, ENGAGED_SECONDS, n))
    duration = np.round(duration, 3)
    engagement_ms = np.where(engaged, np.round(duration * rng.uniform(0.45, 0.9, n) * 1000), 0)
    start = (np.arange(n, dtype=np.int64) * 86400 // max(n, 1)).astype(np.int32)  # in session order
    return {"place": place, "language": language, "device": device, "source": source,
            "first_source": first_source, "duration": duration,
            "engagement_ms": engagement_ms.astype(np.int64), "start": start}


# ---- journeys (opt-in: a profile's "journeys" key; traffic.py documents the schema) ----------

#: `signed_in_user_id` of a user: the site's own id for them, a fixed offset from the pseudo id.
SIGNED_IN_ID_OFFSET = 7_000_000_000_000


@dataclass(frozen=True)
class JourneyDay:
    """What the journeys of returning users do on one day.

    `users`: pool ids needing a session today (each gets one journey session); `actions`:
    (user, action) pairs in firing order, `action` indexing `names`; `identified_before`: per
    pool id, signed in on an earlier day; `identify_today`: per pool id, signs in today.
    """

    users: np.ndarray
    action_user: np.ndarray
    action: np.ndarray
    names: tuple[str, ...]
    identified_before: np.ndarray
    identify_today: np.ndarray


_PLANS: "dict[tuple[str, int], dict[str, np.ndarray]]" = {}
_PLANS_ORDER: list[tuple[str, int]] = []
_PLANS_LOCK = __import__("threading").Lock()


def journey_actions(spec: dict[str, Any]) -> tuple[str, ...]:
    """Every event a journeys profile fires itself: micro goals first, then funnel steps."""
    names: list[str] = [m["event"] for m in spec.get("micro", [])]
    for f in spec.get("funnels", []):
        names += list(f["steps"])
    return tuple(dict.fromkeys(names))


def identifying(spec: dict[str, Any]) -> tuple[str, ...]:
    """The events that sign a visitor in: `identifies` micro goals and the `identifies` list
    (funnel steps that sign in, e.g. a sign-up step)."""
    names = [m["event"] for m in spec.get("micro", []) if m.get("identifies")]
    return tuple(dict.fromkeys(names + list(spec.get("identifies", []))))


def _phase(pool: int, seed: int, cycle_days: int) -> np.ndarray:
    ids = np.arange(pool, dtype=np.int64) + (int(seed) & 0xFFFF) * 1_000_003
    return (_unit_of(ids) * cycle_days).astype(np.int64)


def _cycle_plan(key: str, seed: int, spec: dict[str, Any], pool: int, cycle: int
                ) -> dict[str, np.ndarray]:
    """One journey cycle of every pool user (day offsets in the cycle, -1: not done), cached.

    Micro goals happen on a day of the first half of the cycle; a funnel is entered on another,
    and each next step follows in the same session or `gap_days` later on average. Micro goals
    done on or before the entry day multiply the buying odds by their `boost`: the entry chance
    and the last step's chance each by the square root of the product (a one-step funnel's
    entry by the whole product).
    """
    k = (key, cycle)
    with _PLANS_LOCK:
        if k in _PLANS:
            return _PLANS[k]
    length = int(spec.get("cycle_days", 28))
    half = max(length // 2, 1)
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 0x10E7, cycle & 0xFFFFFFFF])
    plan: dict[str, np.ndarray] = {}
    micro = spec.get("micro", [])
    for i, m in enumerate(micro):
        did = rng.random(pool) < float(m.get("rate", 0.0))
        day = rng.integers(0, half, pool)
        plan[f"m{i}"] = np.where(did, day, -1)
    for j, f in enumerate(spec.get("funnels", [])):
        steps = list(f["steps"])
        entry_day = rng.integers(0, half, pool)
        boost = np.ones(pool)
        for i, m in enumerate(micro):
            t = plan[f"m{i}"]
            boost *= np.where((t >= 0) & (t <= entry_day), float(m.get("boost", 1.0)), 1.0)
        root = boost if len(steps) == 1 else np.sqrt(boost)
        enter = rng.random(pool) < np.minimum(0.95, float(f.get("entry", 0.3)) * root)
        day = np.where(enter, entry_day, -1)
        plan[f"f{j}s0"] = day
        cont = list(f.get("continue") or [0.5] * (len(steps) - 1))
        same = float(f.get("same_session", 0.5))
        gap_mean = max(float(f.get("gap_days", 2.0)), 1.0)
        for s in range(1, len(steps)):
            p = np.full(pool, float(cont[s - 1]))
            if s == len(steps) - 1:
                p = np.minimum(0.95, p * root)
            go = rng.random(pool) < p
            gap = np.where(rng.random(pool) < same, 0, rng.geometric(1.0 / gap_mean, pool))
            nxt = day + gap
            day = np.where((day >= 0) & go & (nxt < length), nxt, -1)
            plan[f"f{j}s{s}"] = day
    with _PLANS_LOCK:
        _PLANS[k] = plan
        _PLANS_ORDER.append(k)
        while len(_PLANS_ORDER) > 512:
            _PLANS.pop(_PLANS_ORDER.pop(0), None)
    return plan


def journey_day(key: str, seed: int, spec: dict[str, Any], pool: int, start: date,
                day: date) -> JourneyDay:
    """The journey actions of the returning pool on `day` (deterministic: no earlier day is
    generated; a user's cycle and identification follow from their id and the seed)."""
    length = int(spec.get("cycle_days", 28))
    phase = _phase(pool, seed, length)
    d = day.toordinal()
    pos = d + phase
    cycle, offset = pos // length, pos % length
    names = journey_actions(spec)
    index = {n: i for i, n in enumerate(names)}
    micro = spec.get("micro", [])
    funnels = spec.get("funnels", [])
    # Identification: the first cycle (since the traffic's start) in which an `identifies`
    # micro goal happened; it fires that once and the user is signed in from then on.
    first_cycle = (start.toordinal() + phase) // length
    ident_micro = [i for i, m in enumerate(micro) if m.get("identifies")]
    signs_in = identifying(spec)
    ident_steps = [(j, s) for j, f in enumerate(funnels) for s, e in enumerate(f["steps"])
                   if e in signs_in]
    never = np.iinfo(np.int64).max
    ident_day = np.full(pool, never)
    ident_event_day = {i: np.full(pool, never) for i in ident_micro}
    if ident_micro or ident_steps:
        for c in range(int(first_cycle.min()), int(cycle.max()) + 1):
            plan = _cycle_plan(key, seed, spec, pool, c)
            valid = (c >= first_cycle) & (c <= cycle)
            base = c * length - phase
            arrays = [(i, plan[f"m{i}"]) for i in ident_micro]
            arrays += [(None, plan[f"f{j}s{s}"]) for j, s in ident_steps]
            for i, t in arrays:
                when = np.where(valid & (t >= 0), base + t, never)
                when = np.where(when >= start.toordinal(), when, never)
                if i is None:  # a funnel step that signs in: it fires in every cycle
                    ident_day = np.minimum(ident_day, when)
                else:
                    ident_event_day[i] = np.minimum(ident_event_day[i], when)
        for i in ident_micro:
            ident_day = np.minimum(ident_day, ident_event_day[i])
    action_user: list[np.ndarray] = []
    action: list[np.ndarray] = []
    for c in np.unique(cycle):
        plan = _cycle_plan(key, seed, spec, pool, int(c))
        mine = cycle == c
        for i, m in enumerate(micro):
            if m.get("identifies"):
                hit = np.flatnonzero(mine & (ident_event_day[i] == d))
            else:
                hit = np.flatnonzero(mine & (plan[f"m{i}"] == offset))
            action_user.append(hit)
            action.append(np.full(hit.size, index[m["event"]], dtype=np.int64))
        for j, f in enumerate(funnels):
            for s, step in enumerate(f["steps"]):
                hit = np.flatnonzero(mine & (plan[f"f{j}s{s}"] == offset))
                action_user.append(hit)
                action.append(np.full(hit.size, index[step], dtype=np.int64))
    au = np.concatenate(action_user) if action_user else np.empty(0, np.int64)
    ac = np.concatenate(action) if action else np.empty(0, np.int64)
    order = np.argsort(au, kind="stable")  # per user, in firing order (micro, then steps)
    au, ac = au[order], ac[order]
    return JourneyDay(users=np.unique(au), action_user=au, action=ac, names=names,
                      identified_before=ident_day < d, identify_today=ident_day == d)


def new_user_journeys(seed: int, spec: dict[str, Any], day: date, n_new: int
                      ) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """(new session number, action) pairs of first-time visitors, who never come back: their
    micro goals and funnel steps all happen in their one session (`*_new` rates)."""
    names = journey_actions(spec)
    index = {n: i for i, n in enumerate(names)}
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, day.toordinal(), 0x7E3])
    who: list[np.ndarray] = []
    what: list[np.ndarray] = []
    boost = np.ones(n_new)
    for m in spec.get("micro", []):
        did = rng.random(n_new) < float(m.get("rate_new", 0.0))
        boost *= np.where(did, float(m.get("boost", 1.0)), 1.0)
        who.append(np.flatnonzero(did))
        what.append(np.full(who[-1].size, index[m["event"]], dtype=np.int64))
    for f in spec.get("funnels", []):
        steps = list(f["steps"])
        root = boost if len(steps) == 1 else np.sqrt(boost)
        alive = rng.random(n_new) < np.minimum(0.95, float(f.get("entry_new", 0.1)) * root)
        cont = list(f.get("continue") or [0.5] * (len(steps) - 1))
        for s, step in enumerate(steps):
            if s:
                p = np.full(n_new, float(cont[s - 1]))
                if s == len(steps) - 1:
                    p = np.minimum(0.95, p * root)
                alive &= rng.random(n_new) < p
            who.append(np.flatnonzero(alive))
            what.append(np.full(who[-1].size, index[step], dtype=np.int64))
    w = np.concatenate(who) if who else np.empty(0, np.int64)
    a = np.concatenate(what) if what else np.empty(0, np.int64)
    order = np.argsort(w, kind="stable")
    return w[order], a[order], names
