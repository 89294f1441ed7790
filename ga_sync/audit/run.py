"""Auditing many properties: one at a time through `gather` and the checks, concurrently.

GA refusing one property never stops the others: a 401/403/404 becomes that property's
`no-access` finding, any other API failure (a malformed answer too) its `audit-failed` finding.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from ga_sync.audit.checks import run_checks
from ga_sync.audit.facts import DEFAULT_DAYS, PropertyFacts, gather
from ga_sync.audit.findings import ERROR, SEVERITIES, Finding
from ga_sync.clients import Connection
from ga_sync.errors import ApiError, Cancelled, GaSyncError, MalformedAnswer
from ga_sync.model import Spec, property_name
from ga_sync.periods import Period
from ga_sync.sync import run_each


@dataclass(frozen=True)
class AuditTarget:
    """One property to audit, with its spec or None (spec-free checks only)."""

    property: str
    spec: Spec | None = None


@dataclass(frozen=True)
class AuditedProperty:
    """A property the audit looked at, readable or not, and the window it used."""

    property: str
    client: str
    period: Period | None
    findings: tuple[Finding, ...]


def _failure(target: AuditTarget, err: ApiError, client: str) -> Finding:
    prop = property_name(target.property)
    if err.status in (401, 403, 404):
        what = "does not exist" if err.status == 404 else "cannot be read with these credentials"
        fix = ("Check the property id (`ga-sync properties` lists the ones the credentials can "
               "see)." if err.status == 404 else
               "Give the account the Viewer role on the property (GA4 Admin → Property access "
               "management), or remove the property from the spec.")
        return Finding(prop, client, "no-access", ERROR, None,
                       f"The property {what} (HTTP {err.status}), so it was not audited.", fix)
    if isinstance(err, MalformedAnswer):
        return Finding(prop, client, "audit-failed", ERROR, None,
                       f"The audit could not read the property: {err}",
                       "Run the audit again later; if it keeps failing, check what sits between "
                       "ga-sync and GA (a proxy, GA_SYNC_ADMIN_ENDPOINT / GA_SYNC_DATA_ENDPOINT).")
    return Finding(prop, client, "audit-failed", ERROR, None,
                   f"The audit could not read the property: {err}",
                   "Run the audit again later; if it keeps failing, check the quota and the "
                   "endpoint settings.")


def attribute(conn: Connection, facts: PropertyFacts, findings: Sequence[Finding], *,
              history: Any = None) -> list[Finding]:
    """The findings with `last_change` (who last changed the resource in GA, and when, from
    the account's change history; whether ga-sync did, from the apply journal) on those about
    a resource. Best effort: a change history that cannot be read leaves them as they are;
    it never fails the audit."""
    from dataclasses import replace

    from ga_sync.changelog import ChangeHistory
    from ga_sync.settings import journal_path

    about = [f for f in findings if f.resource is not None and f.resource[1]]
    if not about or not facts.info.account:
        return list(findings)
    history = history or ChangeHistory(conn, journal_path())
    try:
        found = history.last_changes(facts.property, facts.info.account,
                                     [(f.resource[0], f.subject or "", f.resource[1])
                                      for f in about if f.resource is not None])
    except Cancelled:
        raise
    except GaSyncError:
        return list(findings)
    return [replace(f, last_change=found[f.resource[1]])
            if f.resource is not None and f.resource[1] in found else f for f in findings]


def audit_target(conn: Connection, target: AuditTarget, *, days: int = DEFAULT_DAYS,
                 today: date | None = None, history: Any = None) -> AuditedProperty:
    """Audit one property; GA refusing it (or answering something that is not a valid answer)
    becomes a `no-access` or `audit-failed` finding. An interruption is not a finding.

    Mismatch findings get who last changed the resource (`attribute`); pass one
    `changelog.ChangeHistory` as `history` to many calls to search each account once."""
    prop = property_name(target.property)
    spec = target.spec
    try:
        facts = gather(conn, prop, spec, days=days, today=today)
    except Cancelled:
        raise
    except GaSyncError as err:
        client = spec.client if spec is not None else ""
        api_err = err if isinstance(err, ApiError) else ApiError(str(err), property=prop)
        return AuditedProperty(prop, client, None, (_failure(target, api_err, client),))
    findings = attribute(conn, facts, run_checks(facts), history=history)
    return AuditedProperty(prop, facts.client, facts.period, tuple(findings))


def audit_property(conn: Connection, property: str, spec: Spec | None = None, *,
                   days: int = DEFAULT_DAYS, today: date | None = None) -> list[Finding]:
    """Findings for one property, sorted; with `spec=None` only the checks needing no spec."""
    return list(audit_target(conn, AuditTarget(property, spec), days=days, today=today).findings)


@dataclass(frozen=True)
class AuditResult:
    """The audit of many properties: per property (in the order audited), and all findings."""

    audited: tuple[AuditedProperty, ...]

    @property
    def findings(self) -> list[Finding]:
        return [f for a in self.audited for f in a.findings]

    def count(self, severity: str) -> int:
        return sum(1 for f in self.findings if f.severity == severity)

    def to_json(self) -> dict[str, Any]:
        """The stable JSON contract (version 1). `properties` counts every property audited,
        including ones that could not be read (they carry a `no-access` finding)."""
        summary: dict[str, int] = {"properties": len(self.audited)}
        summary.update({s: self.count(s) for s in SEVERITIES})
        return {"version": 1, "findings": [f.to_json() for f in self.findings],
                "summary": summary}

    def to_frame(self) -> Any:
        """One row per finding: property, client, check, severity, subject, message, fix."""
        import pandas as pd
        columns = ["property", "client", "check", "severity", "subject", "message", "fix"]
        return pd.DataFrame([f.to_json() for f in self.findings], columns=columns)


def audit_targets(specs: Sequence[Spec], properties: Iterable[str] = ()) -> list[AuditTarget]:
    """Each spec's properties, then the extra properties no spec names (spec-free)."""
    out = [AuditTarget(property_name(p), s) for s in specs for p in s.properties]
    seen = {t.property for t in out}
    for p in properties:
        name = property_name(p)
        if name not in seen:
            out.append(AuditTarget(name))
            seen.add(name)
    return out


def audit_all(conn: Connection, specs: Sequence[Spec], *, properties: Iterable[str] = (),
              days: int = DEFAULT_DAYS, concurrency: int = 4, today: date | None = None,
              on_done: Callable[[AuditTarget, AuditedProperty | None, GaSyncError | None],
                                None] | None = None) -> AuditResult:
    """Audit every property of `specs`, plus `properties` without a spec, concurrently.

    One property failing never stops the others: GA's refusal is that property's finding.
    """
    if days < 1:
        raise GaSyncError(f"days must be at least 1, not {days}")
    from ga_sync.changelog import ChangeHistory
    from ga_sync.settings import journal_path

    items = audit_targets(specs, properties)
    history = ChangeHistory(conn, journal_path())  # each account searched once per run
    done = run_each(items, lambda t: audit_target(conn, t, days=days, today=today,
                                                  history=history),
                    cancel=conn.retry.cancel,
                    concurrency=concurrency, on_done=on_done)
    audited = []
    for target, result, err in done:
        if result is None:  # a GaSyncError that is not an ApiError: report it, don't crash
            assert err is not None
            client = target.spec.client if target.spec else ""
            result = AuditedProperty(target.property, client, None, (
                _failure(target, ApiError(str(err), property=target.property), client),))
        audited.append(result)
    return AuditResult(tuple(audited))
