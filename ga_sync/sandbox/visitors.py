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
