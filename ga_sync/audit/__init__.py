"""Audit GA4 properties for misconfigured goals: `gather` facts, run pure checks, report findings.

Data flow, one module per step: `facts` reads a property with a fixed number of calls (three
Admin API reads, one Data API `batchRunReports`) into `PropertyFacts`; `checks` are small pure
functions from facts to `Finding`s (`findings` holds the value type and the registry of check
ids); `run` audits many properties concurrently and turns GA's refusals into findings.
"""

from ga_sync.audit.checks import (
    RUNNERS,
    normalize_name,
    redact,
    run_checks,
    suggest_name,
)
from ga_sync.audit.facts import (
    DEFAULT_DAYS,
    PII_PATTERN,
    EventStats,
    PiiHit,
    PropertyFacts,
    audit_period,
    build_requests,
    gather,
)
from ga_sync.audit.findings import (
    CHECKS,
    ERROR,
    FAIL_ON,
    INFO,
    LIMIT_SHARE,
    NEVER,
    PAGEVIEW_SHARE,
    SEVERITIES,
    WARNING,
    Check,
    Finding,
    exit_code,
)
from ga_sync.audit.run import (
    AuditedProperty,
    AuditResult,
    AuditTarget,
    audit_all,
    audit_property,
    audit_target,
    audit_targets,
)

__all__ = [
    "CHECKS", "DEFAULT_DAYS", "ERROR", "FAIL_ON", "INFO", "LIMIT_SHARE", "NEVER",
    "PAGEVIEW_SHARE", "PII_PATTERN", "RUNNERS", "SEVERITIES", "WARNING", "AuditResult",
    "AuditTarget", "AuditedProperty", "Check", "EventStats", "Finding", "PiiHit",
    "PropertyFacts", "audit_all", "audit_period", "audit_property", "audit_target",
    "audit_targets", "build_requests", "exit_code", "gather", "normalize_name", "redact",
    "run_checks", "suggest_name",
]
