"""GA4's own rules, in one place: event names, key-event limits, quotas, dates, processing lag.

These are Google's numbers and names, not ga-sync's choices: spec validation, the model, the
plan, the audit, the report and the clients import them from here, so a change on Google's
side is one edit. Only constants and pure functions; imports nothing from ga_sync.
"""

from __future__ import annotations

import re
from datetime import date

# --------------------------------------------------------------------------- event names
# https://support.google.com/analytics/answer/13316687 (event naming rules)

#: Longest event name GA4 takes; a longer key event is not reported.
EVENT_NAME_MAX = 40
#: GA's rule, in ASCII: a letter first, then letters, digits and underscores
#: (`str.isalpha()` and `\w` would also let `é` or `²` through).
EVENT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")
#: Runs of characters an event name may not hold.
NOT_NAME_CHARS = re.compile(r"[^A-Za-z0-9_]+")
#: Prefixes GA4 keeps for its own events.
RESERVED_PREFIXES = ("firebase_", "google_", "ga_", "_")
#: Event names GA4 reserves on the web: not to be sent as custom events.
#: https://support.google.com/analytics/answer/13316687
RESERVED_EVENT_NAMES = frozenset({
    "ad_impression", "app_remove", "app_store_refund", "app_store_subscription_cancel",
    "app_store_subscription_renew", "click", "error", "file_download", "first_open",
    "first_visit", "form_start", "form_submit", "in_app_purchase", "page_view", "scroll",
    "session_start", "user_engagement", "view_complete", "video_progress", "video_start",
    "view_search_results"})
#: Collected automatically on every web session: counting them as success measures browsing.
BROWSING_EVENTS = frozenset({"page_view", "session_start", "first_visit", "user_engagement",
                             "scroll"})

# --------------------------------------------------------------------------- key events
# https://support.google.com/analytics/answer/12946393 (custom key events per property)

#: A spec's `service_level` values.
STANDARD = "standard"
ANALYTICS_360 = "analytics_360"
SERVICE_LEVELS = (STANDARD, ANALYTICS_360)
#: The Admin API's service levels (`Property.serviceLevel`).
GA_STANDARD = "GOOGLE_ANALYTICS_STANDARD"
GA_360 = "GOOGLE_ANALYTICS_360"
GA_SERVICE_LEVELS = (GA_STANDARD, GA_360)
#: Custom key events a property may have, by service level.
KEY_EVENT_LIMITS = {STANDARD: 30, ANALYTICS_360: 50}
#: Key events GA creates itself; they do not count against the custom limit.
DEFAULT_KEY_EVENTS = frozenset({"purchase"})


def key_event_limit(service_level: str) -> int:
    """The custom key-event limit for a service level, as a spec or the Admin API writes it
    (`analytics_360`, `GOOGLE_ANALYTICS_360`: 50; anything else: 30)."""
    return KEY_EVENT_LIMITS[ANALYTICS_360 if "360" in service_level else STANDARD]


# --------------------------------------------------------------------------- quotas
# Admin API, per user of a Google Cloud project, refilled each minute.
# https://developers.google.com/analytics/devguides/config/admin/v1/quotas
ADMIN_REQUESTS_PER_MINUTE = 600
ADMIN_WRITES_PER_MINUTE = 180

# Data API, per property (Analytics 360 in the _360 names).
# https://developers.google.com/analytics/devguides/reporting/data/v1/quotas
DATA_CONCURRENT_PER_PROPERTY = 10
DATA_CONCURRENT_PER_PROPERTY_360 = 50
DATA_TOKENS_PER_PROPERTY_PER_DAY = 200_000
DATA_TOKENS_PER_PROPERTY_PER_DAY_360 = 2_000_000
DATA_TOKENS_PER_PROPERTY_PER_HOUR = 40_000
DATA_TOKENS_PER_PROPERTY_PER_HOUR_360 = 400_000
DATA_TOKENS_PER_PROJECT_PER_PROPERTY_PER_HOUR = 14_000
DATA_TOKENS_PER_PROJECT_PER_PROPERTY_PER_HOUR_360 = 140_000
DATA_SERVER_ERRORS_PER_PROJECT_PER_PROPERTY_PER_HOUR = 10
DATA_SERVER_ERRORS_PER_PROJECT_PER_PROPERTY_PER_HOUR_360 = 50
DATA_THRESHOLDED_REQUESTS_PER_HOUR = 120
#: Requests one batchRunReports call may carry.
DATA_BATCH_REQUESTS_MAX = 5
#: Rows one Data API request may ask for (`limit`).
DATA_ROWS_PER_REQUEST_MAX = 250_000

# --------------------------------------------------------------------------- dates
#: GA is still processing the most recent 24-48 hours: numbers of those days still grow.
PROCESSING_DAYS = 2
#: GA4's first day: the Data API refuses earlier dates ("Date ... is before 2015-08-14").
EARLIEST_DATE = date(2015, 8, 14)

# --------------------------------------------------------------------------- goal machinery
# Admin API v1alpha: event create rules and audiences (see ../shared/GA4_FACTS.md).
# https://support.google.com/analytics/answer/10085872 (create events),
# https://support.google.com/analytics/answer/12799087 (audience triggers)

#: Created events a property may have (help centre, per property; whether the API counts per
#: data stream is uncertain).
CREATED_EVENTS_PER_PROPERTY = 50
#: Conditions one event create rule may hold.
RULE_CONDITIONS_MAX = 10
#: Parameter mutations one rule may hold.
RULE_MUTATIONS_MAX = 20
#: A rule's parameter names are shorter than this (GA: "under 40 characters").
PARAMETER_NAME_MAX = 40
#: A parameter value a rule writes is shorter than this; ga-sync holds condition values to it
#: too (GA does not document a condition value's limit: uncertain).
PARAMETER_VALUE_MAX = 100
#: Audiences a property may have, and how many of them may carry an event trigger
#: (help centre).
AUDIENCES_PER_PROPERTY = 100
AUDIENCE_TRIGGERS_PER_PROPERTY = 20
#: Longest audience membership GA allows, in days.
AUDIENCE_MEMBERSHIP_DAYS_MAX = 540
#: Share of a limit at which the audit warns that a property is near it.
NEAR_LIMIT_SHARE = 0.8
#: Events GA4 collects automatically on the web (enhanced measurement included): a goal's own
#: event made by a rule or audience may not be one of these or a reserved name.
AUTOMATIC_EVENTS = frozenset({
    "first_visit", "session_start", "page_view", "user_engagement", "scroll", "click",
    "view_search_results", "video_start", "video_progress", "video_complete", "file_download",
    "form_start", "form_submit"})
