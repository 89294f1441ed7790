"""Data API v1beta routes of the sandbox. Filled in by the reports work; empty until then."""

from ga_sync.sandbox.routing import Route

ROUTES: list[Route] = []
