"""Admin API calls under GA's per-minute quotas, across threads and across processes.

GA counts Admin API requests and writes per user per minute
(https://developers.google.com/analytics/devguides/config/admin/v1/quotas). `Pacer` keeps one
process under them; `QuotaLedger` makes the count shared: a small file in the user data folder
in which every ga-sync process records what it reserved, per credentials identity and
endpoint, so `plan`, `apply`, `report` and `audit` run back to back (a cron job) start with
what the previous ones spent instead of an empty minute.
"""

from __future__ import annotations

import atexit
import json
import logging
import math
import os
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ga_sync.errors import GaSyncError
from ga_sync.garules import (ADMIN_REQUESTS_PER_MINUTE, ADMIN_WRITES_PER_MINUTE,
                             DATA_CONCURRENT_PER_PROPERTY)
from ga_sync.redact import excerpt
from ga_sync.settings import (ADMIN_REQUESTS_ENV, ADMIN_WRITES_ENV, QUOTA_LEDGER_ENV,
                              QUOTA_WINDOW_ENV, data_dir)

__all__ = ["ADMIN_REQUESTS_PER_MINUTE", "ADMIN_WRITES_PER_MINUTE", "DATA_CONCURRENT_PER_PROPERTY",
           "Pacer", "QuotaLedger", "env_number", "ledger_path"]

log = logging.getLogger("ga_sync.clients")

MAX_PER_MINUTE = 1_000_000
QUOTA_WINDOW_RANGE = (0.1, 3600.0)  # seconds
LEDGER_FILE = "quota-ledger.json"
#: GA_SYNC_QUOTA_LEDGER values that turn the shared ledger off (each process paces alone).
LEDGER_OFF = {"off", "none", "0", "false", "no"}


def env_number(env: Mapping[str, str], key: str, default: float, low: float, high: float, *,
               whole: bool = False) -> float:
    """A number from the environment, checked against [low, high]; unset or empty: `default`."""
    raw = env.get(key)
    if raw is None or not raw.strip():
        return default
    allowed = (f"use {'a whole number' if whole else 'a number'} from {low:g} to {high:g}, "
               f"or unset it for {default:g}")
    try:
        value = float(raw)
    except ValueError:
        raise GaSyncError(f"{key}={excerpt(raw, 30)!r} is not a number: {allowed}.") from None
    if not (math.isfinite(value) and low <= value <= high and (value.is_integer() or not whole)):
        raise GaSyncError(f"{key}={excerpt(raw, 30)!r} is out of range: {allowed}.")
    return value


def ledger_path(env: Mapping[str, str]) -> Path | None:
    """$GA_SYNC_QUOTA_LEDGER (`off` for none), else quota-ledger.json in the user data folder."""
    value = (env.get(QUOTA_LEDGER_ENV) or "").strip()
    if value.lower() in LEDGER_OFF:
        return None
    return Path(value).expanduser() if value else data_dir() / LEDGER_FILE


class QuotaLedger:
    """Reservations of quota shared by every ga-sync process of this user, in one small file.

    The file holds, per key (credentials identity and endpoint) and per bucket ("requests",
    "writes"), entries `[stamp, count, owner]`: `count` calls that `owner` may send until
    `stamp` (wall-clock seconds). Every change happens under an exclusive `flock` on a lock
    file beside it, and the file is replaced atomically, so concurrent processes never see half
    a ledger. A call is counted at its reservation's stamp, which is never earlier than the call
    itself: counting the entries stamped within the last window before granting more keeps every
    window (sliding or GA's fixed minute) under the limit, whichever process sends.

    Unreadable JSON is treated as an empty ledger (one minute's pacing is lost, nothing else);
    an unusable file (read-only folder) raises OSError, no `fcntl` (Windows) ImportError, and
    the Pacer then paces on its own.
    """

    def __init__(self, path: Path, key: str, clock: Callable[[], float] = time.time):
        self.path, self.key, self.clock = Path(path), key, clock
        self.owner = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.operations = 0  # file transactions made (for tests and benchmarks)

    def reserve(self, buckets: tuple[str, ...], want: int, limits: Mapping[str, int],
                window: float, stamp: float,
                give_back: Sequence[tuple[tuple[str, ...], float, int]] = ()) -> tuple[int, float]:
        """Grant up to `want` calls counting against every bucket in `buckets`, stamped `stamp`.

        Entries stamped in the last `window` are counted; the grant is what every bucket still
        has room for. `give_back` first returns this owner's unused calls of earlier
        reservations. Returns (granted, seconds until a bucket has room again if none granted).
        """
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".lock"), "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                keys = self._read()
                now = self.clock()
                mine = keys.setdefault(self.key, {})
                for back_buckets, back_stamp, n in give_back:
                    for b in back_buckets:
                        self._take_back(mine.setdefault(b, []), back_stamp, n)
                granted, wait = want, 0.0
                for b in buckets if want > 0 else ():
                    counted = [e for e in mine.get(b, []) if e[0] > now - window]
                    room = limits[b] - sum(e[1] for e in counted)
                    if room <= 0:
                        wait = max(wait, min(e[0] for e in counted) + window - now)
                    granted = min(granted, max(0, room))
                if granted > 0:
                    for b in buckets:
                        entries = mine.setdefault(b, [])
                        if entries and entries[-1][0] == stamp and entries[-1][2] == self.owner:
                            entries[-1][1] += granted
                        else:
                            entries.append([stamp, granted, self.owner])
                self._prune(keys, now)
                self._write(keys)
                self.operations += 1
                return granted, (0.0 if granted > 0 else max(wait, 0.001))
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def release(self, buckets: tuple[str, ...], stamp: float, n: int) -> None:
        """Return `n` unused calls of this owner's reservation stamped `stamp`."""
        self.reserve(buckets, 0, {}, 0.0, stamp, give_back=[(buckets, stamp, n)])

    def spent(self, bucket: str, window: float) -> int:
        """Calls of `bucket` reserved in the last `window` seconds, by any process (for tests)."""
        now = self.clock()
        entries = self._read().get(self.key, {}).get(bucket, [])
        return sum(e[1] for e in entries if e[0] > now - window)

    def _take_back(self, entries: list[list[Any]], stamp: float, n: int) -> None:
        for e in entries:  # entries of one owner and stamp are alike: take from any of them
            if n > 0 and e[2] == self.owner and e[0] == stamp:
                taken = min(n, e[1])
                e[1] -= taken
                n -= taken
        entries[:] = [e for e in entries if e[1] > 0]

    @staticmethod
    def _prune(keys: dict[str, Any], now: float) -> None:
        """Drop entries older than the longest window allowed, of every key, and empty keys."""
        horizon = now - QUOTA_WINDOW_RANGE[1] * 1.1
        for key in list(keys):
            buckets = keys[key]
            for b in list(buckets):
                buckets[b] = [e for e in buckets[b] if e[0] > horizon]
                if not buckets[b]:
                    del buckets[b]
            if not buckets:
                del keys[key]

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_bytes())
        except FileNotFoundError:
            return {}
        except ValueError:
            log.warning("quota ledger %s is not readable JSON; starting it afresh", self.path)
            return {}
        keys = data.get("keys") if isinstance(data, dict) else None
        if not isinstance(keys, dict):
            return {}
        return {k: {b: [e for e in es if _is_entry(e)] for b, es in v.items()
                    if isinstance(es, list)}
                for k, v in keys.items() if isinstance(k, str) and isinstance(v, dict)}

    def _write(self, keys: dict[str, Any]) -> None:
        tmp = self.path.with_name(f".{self.path.name}.{self.owner}.tmp")
        tmp.write_text(json.dumps({"version": 1, "keys": keys}, separators=(",", ":")),
                       encoding="utf-8")
        os.replace(tmp, self.path)


def _is_entry(e: Any) -> bool:
    return (isinstance(e, list) and len(e) == 3 and isinstance(e[0], int | float)
            and isinstance(e[1], int) and isinstance(e[2], str) and math.isfinite(e[0]))


class _Credit:
    """Calls reserved in the ledger and not yet used: `left` of them, usable until `stamp`."""

    __slots__ = ("stamp", "left", "block")

    def __init__(self) -> None:
        self.stamp, self.left, self.block = -math.inf, 0, 4


class Pacer:
    """Keeps Admin API calls under GA's per-minute quotas the way they refill.

    GA refills its quotas each minute, so a minute's worth of calls may go at once; only work
    beyond that waits, and only as long as needed: a call waits until the oldest call in the
    last window leaves it (a sliding window, which also respects any fixed window the server
    counts in). `margin` pads the window for network jitter between sending and arrival.

    With a `QuotaLedger` (see `share`), the window is the ledger's, shared with every other
    ga-sync process of the same credentials and endpoint. Not to lock the file for every call,
    calls are reserved in blocks usable for a short `lease` (2% of the window, at most a second)
    and stamped with the lease's end; the block grows while blocks are used up within their
    lease and shrinks when one expires half used, whose rest is given back.
    """

    MAX_BLOCK = 64

    def __init__(self, requests_per_window: int = ADMIN_REQUESTS_PER_MINUTE,
                 writes_per_window: int = ADMIN_WRITES_PER_MINUTE, window: float = 60.0,
                 margin: float = 0.02, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        if min(requests_per_window, writes_per_window) < 1 or not 0 < window < math.inf:
            raise ValueError("a Pacer needs at least one call per window and a finite window")
        self.limits = {"requests": requests_per_window, "writes": writes_per_window}
        self.window = window * (1 + margin)
        self.lease = min(1.0, window * 0.02)
        self.clock, self.sleep = clock, sleep
        self._sent: dict[str, Any] = {k: deque() for k in self.limits}
        self._lock = threading.Lock()
        self.ledger: QuotaLedger | None = None
        self._credit = {False: _Credit(), True: _Credit()}  # by `write`
        self.waited = 0.0  # total seconds spent waiting (for benchmarks and verbose output)

    @classmethod
    def from_env(cls, env: Mapping[str, str],
                 sleep: Callable[[float], None] = time.sleep) -> "Pacer":
        """GA's numbers, or GA_SYNC_ADMIN_REQUESTS_PER_MINUTE / _WRITES_PER_MINUTE /
        GA_SYNC_QUOTA_WINDOW (seconds) for a property set with other quotas or a test sandbox.

        Each must be a finite number in its range (a whole one for the counts): 0, a negative,
        nan or inf would divide by zero or wait forever, 1e30 would never pace at all.
        """
        return cls(int(env_number(env, ADMIN_REQUESTS_ENV, ADMIN_REQUESTS_PER_MINUTE,
                                  1, MAX_PER_MINUTE, whole=True)),
                   int(env_number(env, ADMIN_WRITES_ENV, ADMIN_WRITES_PER_MINUTE,
                                  1, MAX_PER_MINUTE, whole=True)),
                   env_number(env, QUOTA_WINDOW_ENV, 60.0, *QUOTA_WINDOW_RANGE), sleep=sleep)

    def share(self, ledger: QuotaLedger) -> "Pacer":
        """Count calls in `ledger`, with every other process using it (before the first call).

        What is reserved and unused is given back when the process exits.
        """
        self.ledger, self.clock = ledger, ledger.clock
        atexit.register(self.release)
        return self

    def acquire(self, write: bool) -> float:
        """Block until one more call (a write, if `write`) fits in every quota it counts against.

        Returns the seconds waited, so a caller can keep planned waiting out of its retry deadline.
        """
        buckets = ("requests", "writes") if write else ("requests",)
        waited = 0.0
        while True:
            with self._lock:
                if self.ledger is not None:
                    wait = self._from_ledger(write, buckets)
                else:
                    wait = self._locally(buckets)
                if wait <= 0:
                    return waited
            self.waited += wait
            waited += wait
            self.sleep(wait)

    def _locally(self, buckets: tuple[str, ...]) -> float:
        now = self.clock()
        wait = 0.0
        for b in buckets:
            sent = self._sent[b]
            while sent and sent[0] <= now - self.window:
                sent.popleft()
            if len(sent) >= self.limits[b]:
                wait = max(wait, sent[0] + self.window - now)
        if wait <= 0:
            for b in buckets:
                self._sent[b].append(now)
        return wait

    def _from_ledger(self, write: bool, buckets: tuple[str, ...]) -> float:
        """Use a reserved call, or reserve a block; the seconds to wait if there is no room."""
        credit = self._credit[write]
        now = self.clock()
        if credit.left > 0 and now <= credit.stamp:
            credit.left -= 1
            return 0.0
        give_back = []
        if credit.left > 0:  # the lease ran out with calls unused: smaller blocks
            give_back.append((buckets, credit.stamp, credit.left))
            credit.block = max(1, credit.block // 2)
        elif credit.stamp > -math.inf:  # used up in time: bigger blocks
            credit.block = min(self.MAX_BLOCK, credit.block * 2)
        credit.left = 0
        stamp = now + self.lease
        assert self.ledger is not None
        try:
            granted, wait = self.ledger.reserve(buckets, credit.block, self.limits, self.window,
                                                stamp, give_back)
        except (OSError, ImportError) as e:  # unusable, or no fcntl (Windows): pace alone
            reason = getattr(e, "strerror", None) or type(e).__name__
            log.warning("quota ledger %s cannot be used (%s); pacing this process alone",
                        self.ledger.path, reason.lower())
            self.ledger, self.clock = None, time.monotonic
            return self._locally(buckets)
        if granted <= 0:
            credit.stamp = -math.inf
            return wait
        credit.stamp, credit.left = stamp, granted - 1
        return 0.0

    def release(self) -> None:
        """Give back the calls reserved in the ledger and not used (at exit, or when done)."""
        with self._lock:
            if self.ledger is None:
                return
            for write, credit in self._credit.items():
                if credit.left > 0:
                    buckets = ("requests", "writes") if write else ("requests",)
                    try:
                        self.ledger.release(buckets, credit.stamp, credit.left)
                    except (OSError, ImportError):
                        pass
                    credit.left = 0
