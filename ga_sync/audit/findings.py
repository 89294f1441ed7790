"""What an audit finds: the `Finding` value, the registry of checks, severities, exit codes.

Check ids are a stable contract (JSON output, `--fail-on`, tickets that quote them): never
rename one. Thresholds live here because the checks' descriptions quote them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ga_sync.garules import (AUDIENCE_TRIGGERS_PER_PROPERTY, AUDIENCES_PER_PROPERTY,
                             CREATED_EVENTS_PER_PROPERTY, EVENT_NAME_MAX, NEAR_LIMIT_SHARE)
from ga_sync.model import LastChange

ERROR, WARNING, INFO = "error", "warning", "info"
SEVERITIES = (ERROR, WARNING, INFO)
NEVER = "never"
FAIL_ON = (ERROR, WARNING, INFO, NEVER)
_RANK = {s: i for i, s in enumerate(SEVERITIES)}

LIMIT_SHARE = 0.8  # key-event-limit fires at this share of the property's limit
PAGEVIEW_SHARE = 0.5  # pageview-like-key-event fires above this share of sessions



@dataclass(frozen=True)
class Finding:
    """One problem in one property. `subject` is the event name, or None for the property.

    `resource` is (kind, server name) of the GA resource a mismatch is about, so the audit can
    add `last_change` (who last changed it, from the change history); neither is compared.
    """

    property: str
    client: str
    check: str
    severity: str
    subject: str | None
    message: str
    fix: str
    resource: tuple[str, str] | None = field(default=None, compare=False, repr=False)
    last_change: LastChange | None = field(default=None, compare=False)

    def to_json(self) -> dict[str, Any]:
        """The finding's JSON; `last_change` is an added field, present only when known."""
        out: dict[str, Any] = {"property": self.property, "client": self.client,
                               "check": self.check, "severity": self.severity,
                               "subject": self.subject, "message": self.message,
                               "fix": self.fix}
        if self.last_change is not None:
            out["last_change"] = self.last_change.to_json()
        return out

    def sort_key(self) -> tuple[int, str, str, str]:
        subject = self.subject or ""
        return (_RANK[self.severity], self.check, subject.casefold(), subject)


@dataclass(frozen=True)
class Check:
    """A check's stable id, severity and what it finds (for docs and `--help`)."""

    id: str
    severity: str
    description: str
    needs_spec: bool = False
    needs_data: bool = False


CHECKS: dict[str, Check] = {c.id: c for c in (
    Check("missing-key-event", ERROR, "a spec goal that is not a key event in the property",
          needs_spec=True),
    Check("unmanaged-key-event", WARNING, "a key event the spec does not name", needs_spec=True),
    Check("counting-method-mismatch", ERROR, "the key event counts differently from the spec",
          needs_spec=True),
    Check("default-value-mismatch", ERROR, "default value or currency differs from the spec",
          needs_spec=True),
    Check("never-fired", ERROR, "a goal or key event whose event did not occur once in the "
          "window", needs_data=True),
    Check("pageview-like-key-event", WARNING, "a key event on an event in over 50% of sessions, "
          "or on page_view, session_start, first_visit, user_engagement or scroll",
          needs_data=True),
    Check("invalid-event-name", ERROR, "a key event whose name breaks GA4's naming rules or is "
          f"longer than {EVENT_NAME_MAX} characters (GA stops reporting it)"),
    Check("duplicate-event-name", WARNING, "key events whose names differ only in letter case "
          "or separators (Sign_Up, sign_up, signup)"),
    Check("key-event-limit", WARNING, f"custom key events at or above {LIMIT_SHARE:.0%} of the "
          "property's limit (30 standard, 50 for Analytics 360)"),
    Check("value-overridden", WARNING, "a goal with a numeric value whose event sends its own "
          "`value` parameter, so GA ignores the default", needs_data=True),
    Check("currency-mismatch", WARNING, "goal values in a currency other than the property's"),
    Check("pii-in-page-path", ERROR, "page paths or locations in the window carrying an e-mail "
          "address or other personal data (GA's terms forbid it)", needs_data=True),
    Check("data-thresholded", INFO, "the property's reports are subject to thresholding, so "
          "small counts are hidden", needs_data=True),
    Check("short-data-retention", WARNING, "event data retention set to 2 months (no "
          "year-over-year comparisons)"),
    Check("no-data", ERROR, "the property recorded no sessions in the window (tag missing or "
          "broken)", needs_data=True),
    Check("page-goal-no-match", ERROR, "a `page:` goal whose condition matched no page view "
          "in the window (the closest page locations seen are listed)", needs_spec=True,
          needs_data=True),
    Check("created-event-not-key-event", WARNING, "an event create rule or audience trigger "
          "whose event is not a key event (GA counts none of it as a conversion)"),
    Check("missing-goal-machinery", ERROR, "a key event of a `page:`, `from:` or `session:` goal "
          "whose event create rule or audience is missing, so nothing makes the event",
          needs_spec=True),
    Check("goal-machinery-mismatch", ERROR, "an event create rule or audience of a spec goal "
          "that differs from the spec", needs_spec=True),
    Check("regex-rule-on-app-stream", ERROR, "an event create rule with a regular-expression "
          "condition on an app data stream (GA allows them on web streams only)"),
    Check("goal-machinery-limit", WARNING, f"created events (limit {CREATED_EVENTS_PER_PROPERTY}"
          f"), audiences ({AUDIENCES_PER_PROPERTY}) or audience triggers "
          f"({AUDIENCE_TRIGGERS_PER_PROPERTY}) at or above {NEAR_LIMIT_SHARE:.0%} of GA's "
          "per-property limit"),
    Check("goal-machinery-unread", INFO, "the event create rules and audiences could not be "
          "read, so the checks on them were skipped"),
    Check("no-access", ERROR, "the credentials cannot read the property"),
    Check("audit-failed", ERROR, "GA kept failing while the property was read"),
)}


def exit_code(findings: Iterable[Finding], fail_on: str = ERROR) -> int:
    """1 when a finding is at or above `fail_on` (error, warning, info), 0 otherwise or with
    `never`."""
    if fail_on not in FAIL_ON:
        raise ValueError(f"fail_on must be one of {FAIL_ON}, not {fail_on!r}")
    if fail_on == NEVER:
        return 0
    bar = _RANK[fail_on]
    return int(any(_RANK[f.severity] <= bar for f in findings))
