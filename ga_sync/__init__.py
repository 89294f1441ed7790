"""ga-sync: Google Analytics 4 goals as code.

The public API (see docs/python-api.md); everything else is private:

    import ga_sync
    specs = ga_sync.load_specs("goal_specs/")
    conn = ga_sync.connect()
    plan = ga_sync.plan(conn, specs)
    run = ga_sync.report(conn, specs, last_week=True, compare="previous")
    run.to_frame()

Imports are lazy, so `import ga_sync` (and the `ga-sync` command) start fast.
"""

from __future__ import annotations

import sys
import types
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "ApiError", "ApplyResult", "AuditResult", "Connection", "CredentialsError", "GaSyncError",
    "Goal", "JournalError", "MalformedAnswer", "OutputError", "Plan", "Problem",
    "QuotaExhausted", "ReportResult", "ReportRun", "Spec", "SpecError", "StoreError",
    "UnsafePlan", "apply", "audit", "connect", "history", "load_specs", "plan", "report",
    "report_sql", "validate", "__version__",
]

_HOMES = {
    "apply": "ga_sync.api", "audit": "ga_sync.api", "connect": "ga_sync.api",
    "history": "ga_sync.api", "load_specs": "ga_sync.api", "plan": "ga_sync.api",
    "report": "ga_sync.api", "report_sql": "ga_sync.api", "validate": "ga_sync.api", "ApplyResult": "ga_sync.api",
    "ReportRun": "ga_sync.api",
    "AuditResult": "ga_sync.audit.run", "Connection": "ga_sync.clients",
    "ReportResult": "ga_sync.report",
    "Goal": "ga_sync.model", "Plan": "ga_sync.model", "Spec": "ga_sync.model",
    "ApiError": "ga_sync.errors", "CredentialsError": "ga_sync.errors",
    "GaSyncError": "ga_sync.errors", "JournalError": "ga_sync.errors",
    "MalformedAnswer": "ga_sync.errors", "OutputError": "ga_sync.errors",
    "Problem": "ga_sync.errors", "QuotaExhausted": "ga_sync.errors",
    "SpecError": "ga_sync.errors", "StoreError": "ga_sync.errors",
    "UnsafePlan": "ga_sync.errors",
}

if TYPE_CHECKING:
    from ga_sync.api import (ApplyResult, ReportRun, apply, audit, connect, history,
                             load_specs, plan, report, report_sql, validate)
    from ga_sync.audit.run import AuditResult
    from ga_sync.clients import Connection
    from ga_sync.errors import (ApiError, CredentialsError, GaSyncError, JournalError,
                                MalformedAnswer, OutputError, Problem, QuotaExhausted,
                                SpecError, StoreError, UnsafePlan)
    from ga_sync.model import Goal, Plan, Spec
    from ga_sync.report import ReportResult


#: Public functions that share their name with a private submodule (ga_sync/plan.py, report.py,
#: history.py, audit/): importing the submodule must not replace the function on the package.
_SHADOWED = ("plan", "report", "history", "audit")


class _Package(types.ModuleType):
    def __setattr__(self, name: str, value: Any) -> None:
        if name in _SHADOWED and isinstance(value, types.ModuleType):
            return  # the import system binding the submodule: keep the public function
        super().__setattr__(name, value)

    def __delattr__(self, name: str) -> None:  # monkeypatch undo of a shadowed name
        if name in _SHADOWED and name in self.__dict__:
            return
        super().__delattr__(name)


sys.modules[__name__].__class__ = _Package


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'ga_sync' has no attribute {name!r}")
    import importlib
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
