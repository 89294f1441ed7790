"""Every failure a user can act on is a GaSyncError; anything else is a bug."""

from __future__ import annotations

from dataclasses import dataclass


class GaSyncError(Exception):
    """A failure the user can fix. The CLI prints its message and exits 1."""


@dataclass(frozen=True)
class Problem:
    """One problem found in a spec file, with the place it was found."""

    file: str
    line: int | None
    column: int | None
    message: str
    severity: str = "error"  # "error" or "warning"

    def __str__(self) -> str:
        from ga_sync.model import Location
        return f"{Location(self.file, self.line, self.column)}: {self.severity}: {self.message}"


class SpecError(GaSyncError):
    """One or more spec files are invalid. Carries every problem found, not just the first."""

    def __init__(self, problems: list[Problem]):
        self.problems = [p for p in problems]
        errors = [p for p in self.problems if p.severity == "error"]
        lines = [str(p) for p in self.problems]
        summary = f"{len(errors)} error{'s' if len(errors) != 1 else ''} in goal spec"
        super().__init__(summary + ":\n" + "\n".join(lines))


class ApiError(GaSyncError):
    """A GA API call failed in a way retries cannot fix. The message names the property and the remedy."""

    def __init__(self, message: str, *, property: str | None = None, status: int | None = None,
                 reason: str | None = None):
        self.property = property
        self.status = status
        self.reason = reason
        super().__init__(message)


class QuotaExhausted(ApiError):
    """GA says a quota is used up for longer than it is worth waiting (per hour / per day)."""


class UnsafePlan(GaSyncError):
    """The plan changes more than the safety threshold allows; pass --force to apply it anyway."""


class CredentialsError(GaSyncError):
    """No usable credentials were found, or the credentials file cannot be read."""


class Cancelled(GaSyncError):
    """The run was interrupted (Ctrl-C, SIGTERM); calls not yet sent are not sent."""


class MalformedAnswer(ApiError):
    """GA (or something between us and GA) answered with something that is not a valid answer:
    an HTML page, truncated or non-JSON text, the wrong shape, a missing field, an unknown enum
    value or time zone, or a page token that repeats. It concerns one property only."""


class JournalError(GaSyncError):
    """The apply journal cannot be written; apply stops before starting another change."""


class StoreError(GaSyncError):
    """The history store cannot be opened, read or written (corrupt, locked, unwritable)."""


class OutputError(GaSyncError):
    """An output file (-o) cannot be written: missing folder, a folder, no space, no permission."""
