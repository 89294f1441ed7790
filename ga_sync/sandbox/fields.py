"""The dimensions and metrics the report engine derives beyond its core ones (query.py).

Every name in GA's metadata (catalog.py) is accepted; the ones the traffic model carries are
computed from its columns (traffic.SESSION_COLUMNS, NUMBER_COLUMNS, the event's page and
date), everything else is answered as GA answers a field with no data: `(not set)` for a
dimension, 0 for a metric. A dimension is always (codes per event, category strings), built
from a small lookup table over an existing column's categories, so it costs one gather.

Where the model simplifies GA (documented in docs/sandbox.md): attribution-scoped `source` /
`medium` / `campaignName` / `defaultChannelGroup` are the session's; an engaged session is one
longer than 10 seconds (a user_engagement event or 2+ page views; key events are not
considered); `totalRevenue` is purchase revenue (no ad or subscription revenue);
`pageTitle` is made from the page path; `signedInWithUserId` is per event (`SIGNED_IN`).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Callable

import numpy as np

from ga_sync.sandbox import query
from ga_sync.sandbox.traffic import PURCHASE_LIKE
from ga_sync.sandbox.visitors import CONTINENTS, COUNTRY_IDS, ENGAGED_SECONDS, LANGUAGE_CODES, NOT_SET

Codes = tuple[np.ndarray, list[str]]

# API name -> event_log column (categorical) holding it.
COLUMNS = {
    "city": "city", "region": "region", "language": "language",
    "deviceCategory": "device_category", "operatingSystem": "operating_system",
    "browser": "browser", "landingPage": "landing_page",
    "landingPagePlusQueryString": "landing_page_query", "newVsReturning": "new_vs_returning",
    "minutesAgo": "minutes_ago",  # realtime reports only (realtime.py adds the column)
}
for _prefix in ("session", ""):
    for _api, _col in (("Source", "source"), ("Medium", "medium"), ("CampaignName", "campaign"),
                       ("DefaultChannelGroup", "default_channel_group"),
                       ("PrimaryChannelGroup", "default_channel_group")):
        COLUMNS[(_prefix + _api) if _prefix else _api[0].lower() + _api[1:]] = "session_" + _col
for _api, _col in (("Source", "source"), ("Medium", "medium"), ("CampaignName", "campaign"),
                   ("DefaultChannelGroup", "default_channel_group"),
                   ("PrimaryChannelGroup", "default_channel_group")):
    COLUMNS["firstUser" + _api] = "first_user_" + _col
# API name -> (first, second) columns joined with " / "
PAIRS = {"sessionSourceMedium": ("session_source", "session_medium"),
         "sourceMedium": ("session_source", "session_medium"),
         "firstUserSourceMedium": ("first_user_source", "first_user_medium")}
CONSTANTS = {"platform": "web"}
#: signedInWithUserId per event: "yes" on events that carry the site's user id (journey
#: profiles' signed-in users, from their identifying event on), "no" elsewhere, so a user who
#: signed in during the period counts in both rows (as GA's event-scoped value would).
SIGNED_IN = ["no", "yes"]


def page_title(path: str) -> str:
    """A believable <title> for a page of the synthetic site."""
    leaf = path.rstrip("/").rsplit("/", 1)[-1]
    name = leaf.replace("-", " ").replace("_", " ").strip().capitalize() if leaf else "Home"
    return f"{name} | Example Store"


def _ymd(text: str) -> date:
    return datetime.strptime(text, "%Y%m%d").date()


def _week(text: str) -> str:
    """GA's `week`: weeks start on Sunday and January 1st is in week 01."""
    d = _ymd(text)
    jan1 = date(d.year, 1, 1)
    offset = (jan1.weekday() + 1) % 7  # days of week 01 before January 1st
    return f"{((d - jan1).days + offset) // 7 + 1:02d}"


def _host(url: str) -> str:
    return url.split("://", 1)[-1].split("/", 1)[0]


# API name -> (column, function of one of its category strings)
DERIVED: dict[str, tuple[str, Callable[[str], str]]] = {
    "pageTitle": ("path", page_title), "unifiedScreenName": ("path", page_title),
    "unifiedScreenClass": ("path", page_title), "unifiedPagePathScreen": ("path", lambda p: p),
    "unifiedPageScreen": ("location", lambda u: query._after_host(u)),
    "hostName": ("location", _host), "fullPageUrl": ("location", lambda u: u.split("://", 1)[-1]),
    "countryId": ("country", lambda c: COUNTRY_IDS.get(c, NOT_SET)),
    "continent": ("country", lambda c: CONTINENTS.get(c, ("Europe", "150"))[0]
                  if c in COUNTRY_IDS else NOT_SET),
    "continentId": ("country", lambda c: CONTINENTS.get(c, ("Europe", "150"))[1]
                    if c in COUNTRY_IDS else NOT_SET),
    "languageCode": ("language", lambda lang: LANGUAGE_CODES.get(lang, NOT_SET)),
    "platformDeviceCategory": ("device_category", lambda d: f"web / {d}"),
    "year": ("date", lambda d: d[:4]), "month": ("date", lambda d: d[4:6]),
    "day": ("date", lambda d: d[6:]), "yearMonth": ("date", lambda d: d[:6]),
    "dayOfWeekName": ("date", lambda d: _ymd(d).strftime("%A")),
    "week": ("date", _week), "yearWeek": ("date", lambda d: d[:4] + _week(d)),
    "isoWeek": ("date", lambda d: f"{_ymd(d).isocalendar()[1]:02d}"),
    "isoYear": ("date", lambda d: str(_ymd(d).isocalendar()[0])),
    "isoYearIsoWeek": ("date", lambda d: "{}{:02d}".format(*_ymd(d).isocalendar()[:2])),
    "percentScrolled": ("event", lambda e: "90" if e == "scroll" else NOT_SET),
}


def _relabel(codes: np.ndarray, cats: list[str], fn: Callable[[str], str]) -> Codes:
    mapped = [fn(c) for c in cats]
    out = sorted(set(mapped))
    index = {c: i for i, c in enumerate(out)}
    lookup = np.array([index[m] for m in mapped] or [0], dtype=np.int64)
    return lookup[codes], out


def _time_of_day(ev: query.Events, name: str) -> Codes:
    """hour, minute, dateHour, dateHourMinute from the session's start time."""
    sec = ev.columns["session_start"].astype(np.int64)
    dates = ev.categories["date"]
    if name == "hour":
        return sec // 3600, [f"{h:02d}" for h in range(24)]
    if name == "minute":
        return (sec // 60) % 60, [f"{m:02d}" for m in range(60)]
    if name == "dateHour":
        return ev.columns["date"] * 24 + sec // 3600, [f"{d}{h:02d}" for d in dates for h in range(24)]
    minutes = sec // 60
    return (ev.columns["date"] * 1440 + minutes,
            [f"{d}{m // 60:02d}{m % 60:02d}" for d in dates for m in range(1440)])


def dimension_codes(ev: query.Events, name: str) -> Codes:
    """A dimension the core engine does not compute, as (codes per event, categories)."""
    if name in COLUMNS and COLUMNS[name] in ev.columns:
        col = COLUMNS[name]
        return ev.columns[col], ev.categories[col]
    if name in DERIVED:
        col, fn = DERIVED[name]
        return _relabel(ev.columns[col], ev.categories[col], fn)
    if name in PAIRS:
        a, b = PAIRS[name]
        ca, cb = ev.categories[a], ev.categories[b]
        codes = ev.columns[a].astype(np.int64) * max(len(cb), 1) + ev.columns[b]
        return _relabel(codes, [f"{x} / {y}" for x in ca for y in cb], lambda s: s)
    if name in ("hour", "minute", "dateHour", "dateHourMinute"):
        return _time_of_day(ev, name)
    if name == "signedInWithUserId":
        signed = ev.columns.get("signed")
        if signed is None:
            return np.zeros(len(ev), dtype=np.int64), ["no"]
        return signed.astype(np.int64), SIGNED_IN
    value = CONSTANTS.get(name, NOT_SET)
    return np.zeros(len(ev), dtype=np.int64), [value]


def _distinct_sum(groups: np.ndarray, n: int, ids: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per group, the sum of `weights[id]` over the distinct ids in it (e.g. session durations)."""
    if ids.size == 0:
        return np.zeros(n)
    width = int(ids.max()) + 1
    pairs = np.unique(groups * width + ids) if n * width > 20_000_000 else None
    if pairs is None:
        seen = np.zeros(n * width, dtype=bool)
        seen[groups * width + ids] = True
        pairs = np.flatnonzero(seen)
    return np.bincount(pairs // width, weights=weights[pairs % width], minlength=n)


def metric(name: str, ev: query.Events, groups: np.ndarray, n: int,
           get: Callable[[str], np.ndarray]) -> np.ndarray:
    """A metric the core engine does not compute, per group (0 when the model has no data)."""
    c = ev.columns
    code = {e: i for i, e in enumerate(ev.categories["event"])}

    def is_event(*names: str) -> np.ndarray:
        return np.isin(c["event"], [code[e] for e in names if e in code])

    def count(mask: np.ndarray) -> np.ndarray:
        return np.bincount(groups, weights=mask, minlength=n).astype(float)

    ratio = query._ratio
    if name in ("totalRevenue", "grossPurchaseRevenue"):
        return get("purchaseRevenue")
    if name == "ecommercePurchases":  # counts `purchase` only (GA's metadata)
        return count(is_event("purchase"))
    if name == "transactions":  # purchase-like events with revenue
        return count(is_event(*PURCHASE_LIKE) & (np.nan_to_num(c["value"]) > 0))
    if name == "addToCarts":
        return count(is_event("add_to_cart"))
    if name == "checkouts":
        return count(is_event("begin_checkout"))
    if name == "engagedSessions":
        return query._distinct(groups, n, c["session"], c["session_duration"] > ENGAGED_SECONDS)
    if name == "engagementRate":
        return ratio(get("engagedSessions"), get("sessions"))
    if name == "bounceRate":
        return ratio(get("sessions") - get("engagedSessions"), get("sessions"))
    if name == "averageSessionDuration":
        per_session = np.zeros(int(c["session"].max()) + 1 if c["session"].size else 0)
        per_session[c["session"]] = c["session_duration"]
        return ratio(_distinct_sum(groups, n, c["session"], per_session), get("sessions"))
    if name == "userEngagementDuration":
        return np.bincount(groups, weights=c["engagement_time_msec"], minlength=n) / 1000.0
    if name == "screenPageViewsPerSession":
        return ratio(get("screenPageViews"), get("sessions"))
    if name == "screenPageViewsPerUser":
        return ratio(get("screenPageViews"), get("activeUsers"))
    if name == "sessionsPerUser":
        return ratio(get("sessions"), get("activeUsers"))
    if name == "totalPurchasers":
        return query._distinct(groups, n, c["user"], is_event(*PURCHASE_LIKE))
    if name == "purchaserRate":
        return ratio(get("totalPurchasers"), get("activeUsers"))
    if name == "averagePurchaseRevenue":
        return ratio(get("purchaseRevenue"), get("transactions"))
    if name in ("averagePurchaseRevenuePerUser", "averageRevenuePerUser"):
        return ratio(get("purchaseRevenue"), get("activeUsers"))
    if name == "averagePurchaseRevenuePerPayingUser":
        return ratio(get("purchaseRevenue"), get("totalPurchasers"))
    if name == "transactionsPerPurchaser":
        return ratio(get("transactions"), get("totalPurchasers"))
    if name == "scrolledUsers":
        return query._distinct(groups, n, c["user"], is_event("scroll"))
    return np.zeros(n)


def empty_columns() -> dict[str, Any]:
    """The model's extra columns with no events (for a report over days without data)."""
    from ga_sync.sandbox.traffic import NUMBER_COLUMNS, SESSION_COLUMNS
    cols: dict[str, Any] = {k: np.empty(0, dtype=np.int64) for k in SESSION_COLUMNS}
    cols.update({k: np.empty(0) for k in NUMBER_COLUMNS})
    cols["signed"] = np.empty(0, dtype=np.int8)
    return cols
