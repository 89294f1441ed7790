"""How the sandbox misbehaves on purpose: injected faults, GA's quotas, and counters of both.

A real GA answers 503 now and then, sometimes after it applied a write ("lost response"), and
enforces quotas. ga-sync's retry and idempotency logic is only tested if the sandbox does the same:

- `FaultInjector`: a seeded share of requests answered 503 UNAVAILABLE or 429 RESOURCE_EXHAUSTED;
  for writes, half of the faults are lost responses (the change is applied, the answer is a 503).
- `QuotaTracker`: GA's documented quotas, refilled in fixed windows.
  Admin API (https://developers.google.com/analytics/devguides/config/admin/v1/quotas): 1,200
  requests/min per project, 600/min per user; writes 600/min per project, 180/min per user.
  Data API (https://developers.google.com/analytics/devguides/reporting/data/v1/quotas): 10 (360:
  50) concurrent requests per property, 40,000 (400,000) tokens per property per hour, 200,000
  (2,000,000) per day, 14,000 (140,000) per project per property per hour.
  The sandbox is one project; a "user" is the Authorization header's token (or "anonymous").
- `ServerStats`: how many requests, rate-limit answers and faults occurred (for tests/benchmarks).
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

from ga_sync.sandbox.routing import ApiError

ADMIN_SERVICE = "analyticsadmin.googleapis.com"
LOST_RESPONSE = "lost_response"
UNAVAILABLE = "unavailable"
EXHAUSTED = "exhausted"


@dataclass(frozen=True)
class QuotaLimits:
    """Quota sizes and window lengths; GA's numbers by default, lower ones for tests.

    `window_s` is the Admin API's per-minute window, `hour_s` the Data API's hour (a day is 24 of
    them). A Data API request is charged `data_tokens_per_request` when it is admitted (tests
    use it to run a quota down), plus what the report really cost (`charge`, from data_api).
    """

    admin_per_project: int = 1200
    admin_per_user: int = 600
    admin_writes_per_project: int = 600
    admin_writes_per_user: int = 180
    window_s: float = 60.0
    data_concurrent: int = 10
    data_concurrent_360: int = 50
    data_tokens_per_hour: int = 40_000
    data_tokens_per_hour_360: int = 400_000
    data_tokens_per_day: int = 200_000
    data_tokens_per_day_360: int = 2_000_000
    data_project_tokens_per_hour: int = 14_000
    data_project_tokens_per_hour_360: int = 140_000
    data_tokens_per_request: int = 0
    data_thresholded_per_hour: int = 120
    data_server_errors_per_hour: int = 10
    data_server_errors_per_hour_360: int = 50
    hour_s: float = 3600.0


def _exhausted(message: str, retry_after: float, reason: str = "RATE_LIMIT_EXCEEDED",
               metadata: dict[str, str] | None = None) -> ApiError:
    details = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason,
                "domain": "googleapis.com", "metadata": metadata or {}}]
    return ApiError(429, message, details=details,
                    headers={"Retry-After": str(max(1, math.ceil(retry_after)))})


def _admin_rate_limited(message: str, metadata: dict[str, str]) -> ApiError:
    """The Admin API's answer to an exhausted quota: "If your project exceeds a rate limit, you
    receive a 403 error with the reason rateLimitExceeded" (Admin API quotas page). No
    Retry-After: Google does not document one, so clients must back off on their own."""
    return ApiError(403, message, status="PERMISSION_DENIED",
                    errors=[{"message": message, "domain": "usageLimits",
                             "reason": "rateLimitExceeded"}],
                    details=[{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                              "reason": "RATE_LIMIT_EXCEEDED", "domain": "googleapis.com",
                              "metadata": metadata}])


class QuotaTracker:
    """Counts requests in fixed windows; refuses what exceeds a quota as GA does (the Admin
    API with 403 rateLimitExceeded, the Data API with 429 RESOURCE_EXHAUSTED).

    A rejected request does not consume quota (as with Google's quota system).
    """

    def __init__(self, limits: QuotaLimits, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self._clock = clock
        self._lock = threading.Lock()
        self._counts: Counter[tuple[Any, ...]] = Counter()
        self._inflight: Counter[str] = Counter()

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()
            self._inflight.clear()

    def _window(self, length: float) -> tuple[int, float]:
        """(window index, seconds until it ends) for fixed windows of `length` seconds."""
        now = self._clock()
        idx = int(now // length)
        return idx, (idx + 1) * length - now

    def _prune(self, keep: dict[str, int]) -> None:
        for key in [k for k in self._counts if k[0] in keep and k[1] < keep[k[0]]]:
            del self._counts[key]

    def admin(self, user: str, write: bool) -> None:
        """Count one Admin API request, or refuse it (403 rateLimitExceeded) if a per-minute
        quota is used up."""
        lim = self.limits
        with self._lock:
            idx, _ = self._window(lim.window_s)
            self._prune({"admin": idx})
            checks = [(("admin", idx, "project", "all"), lim.admin_per_project,
                       "Requests", "Requests per minute"),
                      (("admin", idx, "user", user), lim.admin_per_user,
                       "Requests", "Requests per minute per user")]
            if write:
                checks += [(("admin", idx, "wproject", "all"), lim.admin_writes_per_project,
                            "Write requests", "Write requests per minute"),
                           (("admin", idx, "wuser", user), lim.admin_writes_per_user,
                            "Write requests", "Write requests per minute per user")]
            for key, limit, metric, limit_name in checks:
                if self._counts[key] >= limit:
                    raise _admin_rate_limited(
                        f"Quota exceeded for quota metric '{metric}' and limit '{limit_name}' of service "
                        f"'{ADMIN_SERVICE}' for consumer 'project_number:0'.",
                        metadata={"service": ADMIN_SERVICE, "quota_metric": f"{ADMIN_SERVICE}/{metric.lower().replace(' ', '_')}",
                                  "quota_limit": limit_name.replace(" ", ""), "quota_limit_value": str(limit),
                                  "consumer": "projects/0"})
            for key, *_ in checks:
                self._counts[key] += 1

    def _data_limits(self, ga360: bool) -> tuple[int, int, int, int]:
        lim = self.limits
        if ga360:
            return (lim.data_concurrent_360, lim.data_tokens_per_hour_360, lim.data_tokens_per_day_360,
                    lim.data_project_tokens_per_hour_360)
        return lim.data_concurrent, lim.data_tokens_per_hour, lim.data_tokens_per_day, lim.data_project_tokens_per_hour

    def data_begin(self, pid: str, ga360: bool = False) -> None:
        """Take a concurrency slot and charge tokens for one Data API request, or raise 429.

        Every successful call must be paired with `data_end(pid)`.
        """
        concurrent, per_hour, per_day, project_hour = self._data_limits(ga360)
        cost = self.limits.data_tokens_per_request
        with self._lock:
            hour, hour_left = self._window(self.limits.hour_s)
            day, day_left = self._window(self.limits.hour_s * 24)
            self._prune({"hour": hour, "day": day, "phour": hour, "thr": hour})
            if self._inflight[pid] >= concurrent:
                raise _exhausted("Exhausted concurrent requests quota.", 1, "concurrentRequests")
            # refused once used up, or when the admission charge would overdraw it
            if self._counts[("day", day, pid)] + max(cost, 1) > per_day:
                raise _exhausted("Exhausted property tokens per day.", day_left, "tokensPerDay")
            if self._counts[("hour", hour, pid)] + max(cost, 1) > per_hour:
                raise _exhausted("Exhausted property tokens per hour.", hour_left, "tokensPerHour")
            if self._counts[("phour", hour, pid)] + max(cost, 1) > project_hour:
                raise _exhausted("Exhausted property tokens for a project per hour.", hour_left,
                                 "tokensPerProjectPerHour")
            self._inflight[pid] += 1
            for key in (("day", day, pid), ("hour", hour, pid), ("phour", hour, pid)):
                self._counts[key] += cost

    def charge(self, record: Any, tokens: int, thresholded: bool) -> dict[str, Any]:
        """Charge what a report really cost; return the `propertyQuota` JSON GA sends with it.

        GA's QuotaStatus: `consumed` is what this request used, `remaining` what is left.
        Zeros are left out, as proto3 JSON does. The same counters refuse requests in
        `data_begin`, so what a response says is left is what the next request gets.
        """
        ga360 = "360" in getattr(record, "service_level", "")
        concurrent, per_hour, per_day, project_hour = self._data_limits(ga360)
        errors = (self.limits.data_server_errors_per_hour_360 if ga360
                  else self.limits.data_server_errors_per_hour)
        pid = record.id
        with self._lock:
            hour, _ = self._window(self.limits.hour_s)
            day, _ = self._window(self.limits.hour_s * 24)
            for key in (("day", day, pid), ("hour", hour, pid), ("phour", hour, pid)):
                self._counts[key] += tokens
            self._counts[("thr", hour, pid)] += int(thresholded)
            status = {
                "tokensPerDay": (tokens, per_day - self._counts[("day", day, pid)]),
                "tokensPerHour": (tokens, per_hour - self._counts[("hour", hour, pid)]),
                # others in flight now (this request is about to finish)
                "concurrentRequests": (0, concurrent - max(0, self._inflight[pid] - 1)),
                "serverErrorsPerProjectPerHour": (0, errors),
                "potentiallyThresholdedRequestsPerHour": (
                    int(thresholded),
                    self.limits.data_thresholded_per_hour - self._counts[("thr", hour, pid)]),
                "tokensPerProjectPerHour": (tokens, project_hour - self._counts[("phour", hour, pid)]),
            }
        return {name: {k: v for k, v in (("consumed", used), ("remaining", max(0, left))) if v}
                for name, (used, left) in status.items()}

    def data_end(self, pid: str) -> None:
        with self._lock:
            self._inflight[pid] = max(0, self._inflight[pid] - 1)

    def property_quota(self, pid: str, ga360: bool = False) -> dict[str, Any]:
        """The Data API's `propertyQuota` JSON for `pid`, for data_api.py's `returnPropertyQuota`."""
        concurrent, per_hour, per_day, project_hour = self._data_limits(ga360)
        with self._lock:
            hour, _ = self._window(self.limits.hour_s)
            day, _ = self._window(self.limits.hour_s * 24)
            used = {"tokensPerDay": (self._counts[("day", day, pid)], per_day),
                    "tokensPerHour": (self._counts[("hour", hour, pid)], per_hour),
                    "concurrentRequests": (self._inflight[pid], concurrent),
                    "tokensPerProjectPerHour": (self._counts[("phour", hour, pid)], project_hour)}
        return {name: {"consumed": c, "remaining": max(0, limit - c)} for name, (c, limit) in used.items()}


class FaultInjector:
    """Decides, with a seeded RNG, which requests fail and how."""

    def __init__(self, rate: float = 0.0, seed: int | None = None) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"fault_rate must be between 0 and 1, not {rate}")
        self.rate = rate
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def decide(self, write: bool) -> str | None:
        """None (answer normally), UNAVAILABLE, EXHAUSTED or, for writes, LOST_RESPONSE."""
        if self.rate <= 0:
            return None
        with self._lock:
            if self._rng.random() >= self.rate:
                return None
            roll = self._rng.random()
        if write and roll < 0.5:
            return LOST_RESPONSE
        return UNAVAILABLE if roll < 0.75 else EXHAUSTED

    @staticmethod
    def error(kind: str) -> ApiError:
        """The answer for an injected fault, in Google's canonical wording."""
        if kind == EXHAUSTED:
            return ApiError(429, "Resource has been exhausted (e.g. check quota).", headers={"Retry-After": "1"})
        return ApiError(503, "The service is currently unavailable.")


@dataclass
class ServerStats:
    """Counters a test or benchmark reads after driving the sandbox (`server.stats`)."""

    requests: int = 0  # GA API requests (control API excluded)
    admin_requests: int = 0
    data_requests: int = 0
    writes: int = 0
    rate_limited: int = 0  # quota refusals (Admin API 403 rateLimitExceeded, Data API 429)
    faults: int = 0  # injected faults of every kind
    lost_responses: int = 0  # writes applied but answered 503
    by_status: Counter[int] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, n in counts.items():
                setattr(self, name, getattr(self, name) + n)

    def answered(self, status: int) -> None:
        with self._lock:
            self.by_status[status] += 1

    def reset(self) -> None:
        with self._lock:
            self.requests = self.admin_requests = self.data_requests = self.writes = 0
            self.rate_limited = self.faults = self.lost_responses = 0
            self.by_status.clear()

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"requests": self.requests, "admin_requests": self.admin_requests,
                    "data_requests": self.data_requests, "writes": self.writes,
                    "rate_limited": self.rate_limited, "faults": self.faults,
                    "lost_responses": self.lost_responses,
                    "by_status": {str(k): v for k, v in sorted(self.by_status.items())}}
