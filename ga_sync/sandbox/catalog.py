"""GA's Data API schema as the sandbox serves it: the real metadata, and which fields combine.

`metadata.json` is the live API's answer to `GET /v1beta/properties/0/metadata` (recorded
2026-05-25; tests/fixtures/real_data_api/), so every dimension and metric GA offers is known
here with its real uiName, description, category, type and deprecated names. A property's own
metadata adds `keyEvents:<event>` and `sessionKeyEventRate:<event>` for its key events.

Compatibility (`incompatible`) is a model of GA's rules, approximate: GA publishes no table,
only the Dimensions & Metrics Explorer. The rules kept are the ones analysts meet:
- item-scoped dimensions (`item*`) go only with item-scoped metrics (items viewed, item
  revenue ...), and item-scoped metrics not with event-scoped dimensions (eventName, pages);
- cohort fields need a cohortSpec and `comparison` needs comparisons (the sandbox serves
  neither, so they combine with nothing);
- Google Search Console metrics (`organicGoogleSearch*`) go only with the dimensions Search
  Console has (date parts, country, device category, landing page + query string);
- advertiser (Google Ads cost) metrics not with event-, page- or item-scoped dimensions nor
  first-user attribution;
- publisher (AdMob) dimensions only with the publisher metrics.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

_FILE = Path(__file__).with_name("metadata.json")


@lru_cache(maxsize=1)
def universal() -> dict[str, Any]:
    """The recorded `properties/0/metadata` answer (dimensions, metrics, name); do not modify."""
    return json.loads(_FILE.read_text(encoding="utf-8"))


def _tables() -> tuple[dict[str, tuple[str, str, str]], dict[str, tuple[str, str, str, str]],
                       dict[str, str]]:
    meta = universal()
    dims = {d["apiName"]: (d["uiName"], d["category"], d["description"]) for d in meta["dimensions"]}
    mets = {m["apiName"]: (m["type"], m["uiName"], m["category"], m["description"])
            for m in meta["metrics"]}
    deprecated = {old: x["apiName"] for x in meta["dimensions"] + meta["metrics"]
                  for old in x.get("deprecatedApiNames", [])}
    return dims, mets, deprecated


# name -> (uiName, category, description)
DIMENSIONS: dict[str, tuple[str, str, str]]
# name -> (MetricType name, uiName, category, description)
METRICS: dict[str, tuple[str, str, str, str]]
# deprecated API name -> current name
DEPRECATED: dict[str, str]
DIMENSIONS, METRICS, DEPRECATED = _tables()
# the per-key-event forms' old names, which GA still accepts
DEPRECATED.setdefault("conversions", "keyEvents")
DEPRECATED.setdefault("sessionConversionRate", "sessionKeyEventRate")
DEPRECATED.setdefault("userConversionRate", "userKeyEventRate")
DEPRECATED.setdefault("isConversionEvent", "isKeyEvent")

# Realtime reports take their own, short, schema
# (https://developers.google.com/analytics/devguides/reporting/data/v1/realtime-api-schema).
REALTIME_DIMENSIONS = ("appVersion", "audienceId", "audienceName", "audienceResourceName", "city",
                       "cityId", "country", "countryId", "deviceCategory", "eventName",
                       "minutesAgo", "platform", "streamId", "streamName", "unifiedScreenName")
REALTIME_METRICS = ("activeUsers", "eventCount", "keyEvents", "screenPageViews")

ITEM_METRICS = frozenset((
    "itemRevenue", "itemsViewed", "itemsAddedToCart", "itemsCheckedOut", "itemsClickedInList",
    "itemsClickedInPromotion", "itemsPurchased", "itemsViewedInList", "itemsViewedInPromotion",
    "itemViewEvents", "itemListClickEvents", "itemListViewEvents", "itemListClickThroughRate",
    "itemPromotionClickThroughRate", "cartToViewRate", "purchaseToViewRate", "grossItemRevenue",
    "itemDiscountAmount", "itemRefundAmount", "promotionClicks", "promotionViews"))
COHORT_FIELDS = frozenset(("cohort", "cohortNthDay", "cohortNthWeek", "cohortNthMonth",
                           "cohortActiveUsers", "cohortTotalUsers", "comparison"))
SEARCH_CONSOLE_DIMENSIONS = frozenset((
    "date", "day", "dayOfWeek", "dayOfWeekName", "isoWeek", "isoYear", "isoYearIsoWeek", "month",
    "week", "year", "yearMonth", "yearWeek", "country", "countryId", "deviceCategory",
    "landingPagePlusQueryString"))
ADVERTISER_METRICS = frozenset(("advertiserAdClicks", "advertiserAdCost", "advertiserAdCostPerClick",
                                "advertiserAdCostPerKeyEvent", "advertiserAdImpressions",
                                "returnOnAdSpend"))
PUBLISHER_METRICS = frozenset(("publisherAdClicks", "publisherAdImpressions", "totalAdRevenue",
                               "adUnitExposure"))
PUBLISHER_DIMENSIONS = frozenset(("adFormat", "adSourceName", "adUnitName"))
_EVENT_SCOPED_CATEGORIES = ("Event", "Page / Screen")


def _item_dimension(name: str) -> bool:
    return name.startswith("item") and name in DIMENSIONS


def _event_scoped(name: str) -> bool:
    return name in DIMENSIONS and DIMENSIONS[name][1] in _EVENT_SCOPED_CATEGORIES


def _pair_ok(dim: str, met: str) -> bool:
    base = met.partition(":")[0]
    if _item_dimension(dim) != (base in ITEM_METRICS) and (_item_dimension(dim) or _event_scoped(dim)):
        return False
    if base.startswith("organicGoogleSearch") and dim not in SEARCH_CONSOLE_DIMENSIONS:
        return False
    if base in ADVERTISER_METRICS and (_event_scoped(dim) or _item_dimension(dim)
                                       or dim.startswith("firstUser")):
        return False
    if dim in PUBLISHER_DIMENSIONS and base not in PUBLISHER_METRICS:
        return False
    return True


def incompatible(dimensions: Iterable[str], metrics: Iterable[str]) -> list[str]:
    """The fields to remove for these dimensions and metrics to combine (empty when they do).

    Names are canonical (deprecated names resolved); the answer names, for each clash, the
    field that is the odd one out, in request order.
    """
    dims, mets = list(dimensions), list(metrics)
    bad: list[str] = [f for f in dims + mets if f in COHORT_FIELDS]
    for d in dims:
        for m in mets:
            if not _pair_ok(d, m):
                odd = d if (_item_dimension(d) or d in PUBLISHER_DIMENSIONS) else m
                if odd not in bad:
                    bad.append(odd)
    return bad


def compatible_dimension(name: str, dimensions: list[str], metrics: list[str]) -> bool:
    """Whether `name` could be added to a request with these fields."""
    return name not in COHORT_FIELDS and not incompatible(dimensions + [name], metrics)


def compatible_metric(name: str, dimensions: list[str], metrics: list[str]) -> bool:
    return name not in COHORT_FIELDS and not incompatible(dimensions, metrics + [name])
