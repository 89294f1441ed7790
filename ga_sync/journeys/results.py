"""Counts -> the report's journeys numbers: funnels, assists, identified visitors. Pure.

Definitions (docs/reports.md "Journeys" has them for readers):

- funnel step k: `users`; `completion_rate` = users(k+1) / users(k) and `abandonment_rate` =
  1 - completion (None for the last step, and when users(k) is 0); `abandonments` =
  users(k) - users(k+1); `overall_rate` = users(last) / users(first) (None when users(first)
  is 0); with a previous period, `change` = relative change of users (None when it had none);
- assists, per micro goal m: `assist_rate` = converted_after / users, `baseline_rate` = the
  macro rate of users who never did m, `lift` = assist_rate / baseline_rate (None when the
  baseline is 0), `implied_value` = (assist_rate - baseline_rate) x the average macro value
  per converting user (None when nobody converted): an association, not proof of cause;
- identified: `share` of all users carrying a user_id, macro rates of identified and
  anonymous users, per `identifies` goal the share of its users identified at or after their
  first event of it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ga_sync.journeys.query import JourneyCounts
from ga_sync.model import Funnel, Spec

OK, NEEDS_EXPORT, NOT_REQUESTED, UNAVAILABLE = "ok", "needs-export", "not-requested", "unavailable"
ASSOCIATION = "association, not proof of cause"


def _div(a: float | None, b: float | None) -> float | None:
    if a is None or not b:
        return None
    return a / b


def _num(x: float) -> float | int:
    return int(x) if float(x).is_integer() else x


@dataclass
class FunnelStep:
    event: str
    users: int
    completion_rate: float | None = None
    abandonment_rate: float | None = None
    abandonments: int | None = None
    change: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {"event": self.event, "users": self.users,
                "completion_rate": self.completion_rate,
                "abandonment_rate": self.abandonment_rate, "abandonments": self.abandonments,
                "change": self.change}


@dataclass
class FunnelResult:
    name: str
    open: bool
    within: int | None
    source: str
    steps: list[FunnelStep]
    overall_rate: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "open": self.open, "within": self.within,
                "source": self.source, "overall_rate": self.overall_rate,
                "steps": [s.to_json() for s in self.steps]}


def funnel_result(funnel: Funnel, users: Sequence[int], source: str) -> FunnelResult:
    steps = []
    for k, event in enumerate(funnel.steps):
        n = int(users[k]) if k < len(users) else 0
        step = FunnelStep(event, n)
        if k + 1 < len(funnel.steps):
            nxt = int(users[k + 1]) if k + 1 < len(users) else 0
            step.abandonments = n - nxt
            step.completion_rate = _div(nxt, n)
            step.abandonment_rate = None if step.completion_rate is None \
                else 1.0 - step.completion_rate
        steps.append(step)
    first = steps[0].users if steps else 0
    return FunnelResult(funnel.name, funnel.open, funnel.within, source, steps,
                        _div(steps[-1].users, first) if steps else None)


def with_changes(now: list[FunnelResult], before: list[FunnelResult]) -> None:
    """Each step's relative change of users against the same funnel's step before."""
    old = {f.name: f for f in before}
    for f in now:
        b = old.get(f.name)
        for k, s in enumerate(f.steps):
            prev = b.steps[k].users if b is not None and k < len(b.steps) else 0
            s.change = (s.users - prev) / prev if prev else None


@dataclass
class AssistGoal:
    event: str
    users: int
    converted_after: int
    assist_rate: float | None
    baseline_rate: float | None
    lift: float | None
    assisted_value: float
    implied_value: float | None
    spec_value: float | None

    def to_json(self) -> dict[str, Any]:
        return {"event": self.event, "users": self.users,
                "converted_after": self.converted_after, "assist_rate": self.assist_rate,
                "baseline_rate": self.baseline_rate, "lift": self.lift,
                "assisted_value": self.assisted_value, "implied_value": self.implied_value,
                "spec_value": self.spec_value}


@dataclass
class Assists:
    status: str
    macro_users: int | None = None
    average_macro_value: float | None = None
    goals: list[AssistGoal] = field(default_factory=list)
    note: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status, "macro_users": self.macro_users,
                               "average_macro_value": self.average_macro_value,
                               "goals": [g.to_json() for g in self.goals]}
        if self.status == OK:
            out["caveat"] = ASSOCIATION
        return out


def assists_result(spec: Spec, c: JourneyCounts) -> Assists:
    if c.assists is None:
        return Assists(UNAVAILABLE)
    users = c.users or 0
    macro_users = c.macro_users or 0
    average = _div(c.macro_value or 0.0, macro_users)
    out = Assists(OK, macro_users, average)
    for g in spec.goals:
        if g.event not in c.assists:
            continue
        n, after, macro_among, value = c.assists[g.event]
        rate = _div(after, n)
        baseline = _div(macro_users - macro_among, users - n)
        lift = _div(rate, baseline) if rate is not None else None
        implied = None if average is None or rate is None or baseline is None \
            else (rate - baseline) * average
        out.goals.append(AssistGoal(g.event, n, after, rate, baseline, lift, float(value),
                                    implied, g.value))
    return out


@dataclass
class IdentifiedGoal:
    event: str
    users: int | None
    identified_later_share: float | None

    def to_json(self) -> dict[str, Any]:
        return {"event": self.event, "users": self.users,
                "identified_later_share": self.identified_later_share}


@dataclass
class Identified:
    status: str
    users: int | None = None
    share: float | None = None
    macro_rate: float | None = None
    anonymous_macro_rate: float | None = None
    goals: list[IdentifiedGoal] = field(default_factory=list)
    note: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status, "users": self.users, "share": self.share,
                               "macro_rate": self.macro_rate,
                               "anonymous_macro_rate": self.anonymous_macro_rate,
                               "goals": [g.to_json() for g in self.goals]}
        if self.note:
            out["note"] = self.note
        return out


def identified_result(spec: Spec, c: JourneyCounts, note: str | None = None) -> Identified:
    if c.identified is None:
        return Identified(UNAVAILABLE)
    users = c.users or 0
    ident = c.identified
    out = Identified(OK, ident, _div(ident, users),
                     _div(c.identified_macro_users, ident) if c.identified_macro_users
                     is not None else None,
                     _div((c.macro_users or 0) - (c.identified_macro_users or 0), users - ident)
                     if c.macro_users is not None else None, note=note)
    for g in spec.goals:
        if not g.identifies:
            continue
        n, later = (c.identifies or {}).get(g.event, (None, None))
        out.goals.append(IdentifiedGoal(g.event, n, _div(later, n) if later is not None
                                        else None))
    return out


@dataclass
class Journeys:
    """One period's journeys: what ReportResult carries."""

    funnels: list[FunnelResult]
    assists: Assists
    identified: Identified


def journeys_result(spec: Spec, c: JourneyCounts, source: str, *,
                    assists: Assists | None = None,
                    identified_note: str | None = None) -> Journeys:
    funnels = [funnel_result(f, c.funnel_users.get(f.name, []), source) for f in spec.funnels
               if f.name in c.funnel_users]
    return Journeys(funnels, assists or assists_result(spec, c),
                    identified_result(spec, c, identified_note))


__all__ = ["ASSOCIATION", "AssistGoal", "Assists", "FunnelResult", "FunnelStep", "Identified",
           "IdentifiedGoal", "Journeys", "NEEDS_EXPORT", "NOT_REQUESTED", "OK", "UNAVAILABLE",
           "assists_result", "funnel_result", "identified_result", "journeys_result",
           "with_changes"]
