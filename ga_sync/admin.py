"""Read a property's key events into the model, and apply a plan to it through the Admin API.

Remote objects are normalized on the way in (enum numbers or names, missing defaults, float
noise) so that `plan.diff` compares like with like. Every write goes through `clients.call`
(retries, error translation) and is journaled before and after.
"""

from __future__ import annotations

import errno
import json
import os
import re
import stat
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ga_sync.clients import Connection, call
from ga_sync.errors import ApiError, Cancelled, JournalError, MalformedAnswer
from ga_sync.garules import GA_SERVICE_LEVELS, GA_STANDARD
from ga_sync.model import (
    AUDIENCE,
    CREATE,
    DELETE,
    EVENT_CREATE_RULE,
    KEY_EVENT,
    ONCE_PER_EVENT,
    ONCE_PER_SESSION,
    UPDATE,
    Change,
    KeyEventSettings,
    KeyEventState,
    PropertyInfo,
    PropertyPlan,
)
from ga_sync.plan import same_settings
from ga_sync.redact import excerpt

PAGE_SIZE = 200  # the Admin API's maximum page size
TIMEOUT = 30.0  # seconds; the Admin client has no default timeout
#: At most this many pages of one list (200 items each): a server that keeps answering with new
#: page tokens cannot make a read endless.
MAX_PAGES = 500

_COUNTING_NAMES = {1: ONCE_PER_EVENT, 2: ONCE_PER_SESSION,
                   "ONCE_PER_EVENT": ONCE_PER_EVENT, "ONCE_PER_SESSION": ONCE_PER_SESSION}
_COUNTING_ENUMS = {ONCE_PER_EVENT: 1, ONCE_PER_SESSION: 2}


def counting_from_api(value: Any, *, property: str | None = None, event: str = "") -> str:
    """Counting method from an enum member, number or name.

    Unspecified (0, or missing) reads as once per event, as GA documents for a key event
    created without one
    (https://developers.google.com/analytics/devguides/config/admin/v1/rest/v1beta/properties.conversionEvents).
    A value ga-sync does not know (a newer GA, or a mangled answer) is a MalformedAnswer:
    guessing would make plan "fix" a key event that may be right.
    """
    key: Any = getattr(value, "name", value)
    if isinstance(value, int) and not isinstance(value, bool):
        key = int(value)
    if key in (0, "COUNTING_METHOD_UNSPECIFIED", None, ""):
        return ONCE_PER_EVENT
    try:
        return _COUNTING_NAMES[key]
    except (KeyError, TypeError):
        where = f" in {property}" if property else ""
        raise MalformedAnswer(
            f"key event {excerpt(event, 40) or '(no name)'}{where} has the counting method "
            f"{excerpt(repr(value), 40)}, which ga-sync does not know (it knows ONCE_PER_EVENT "
            "and ONCE_PER_SESSION). Check the key event in GA4 Admin → Events → Key events, or "
            "update ga-sync.", property=property) from None


def normalize_key_event(ke: Any, *, property: str | None = None) -> KeyEventState:
    """A proto-plus KeyEvent (or its JSON dict) -> KeyEventState."""
    if isinstance(ke, dict):
        dv = ke.get("defaultValue") or None
        value = dv.get("numericValue") if dv else None
        currency = dv.get("currencyCode") if dv else None
        event, name = ke.get("eventName", ""), ke.get("name")
        counting = counting_from_api(ke.get("countingMethod", 0), property=property,
                                     event=str(event))
        deletable, custom = bool(ke.get("deletable")), bool(ke.get("custom"))
        create_time = ke.get("createTime")
    else:
        from google.analytics.admin_v1beta.types import KeyEvent
        has_default = KeyEvent.pb(ke).HasField("default_value")
        value = ke.default_value.numeric_value if has_default else None
        currency = ke.default_value.currency_code if has_default else None
        event, name = ke.event_name, ke.name or None
        counting = counting_from_api(ke.counting_method, property=property, event=event)
        deletable, custom = bool(ke.deletable), bool(ke.custom)
        ct = ke.create_time
        create_time = ct.isoformat() if ct else None
    settings = (KeyEventSettings(counting, float(value), (currency or "").upper() or None)
                if value is not None else KeyEventSettings(counting))
    return KeyEventState(event=event, settings=settings, name=name, deletable=deletable,
                         custom=custom, create_time=create_time)


def _pages(fetch: Callable[[str], Any], *, property: str | None = None,
           what: str = "list") -> Iterator[Any]:
    """Follow nextPageToken until it is empty; `fetch(token)` returns one page.

    A token seen before (the server would answer the same pages forever) or more than
    `MAX_PAGES` pages is a MalformedAnswer, never an endless loop.
    """
    token = ""
    seen: set[str] = set()
    for _ in range(MAX_PAGES):
        page = fetch(token)
        yield page
        token = page.next_page_token
        if not token:
            return
        if token in seen:
            raise _bad_answer(property, what, f"the page token {excerpt(token, 30)!r} came back "
                              "a second time, so the pages would never end")
        seen.add(token)
    raise _bad_answer(property, what, f"more than {MAX_PAGES} pages, each with a next page")


def _bad_answer(property: str | None, what: str, detail: str) -> MalformedAnswer:
    where = f" for {property}" if property else ""
    return MalformedAnswer(
        f"GA's answer to {what}{where} is not a valid answer: {detail}. Something between "
        "ga-sync and GA (a proxy, an outage page) or a GA fault may have changed it: try again "
        "later, and check GA_SYNC_ADMIN_ENDPOINT if it is set.", property=property)


def read_key_events(conn: Connection, property: str) -> list[KeyEventState]:
    """Every key event of a property, all pages, normalized."""
    client = conn.admin()
    out: list[KeyEventState] = []

    def fetch(token: str) -> Any:
        request = {"parent": property, "page_size": PAGE_SIZE, "page_token": token}
        return call(lambda: client.list_key_events(request=request, timeout=TIMEOUT),
                    policy=conn.retry, property=property, what="list key events")

    for page in _pages(fetch, property=property, what="list key events"):
        out.extend(normalize_key_event(ke, property=property) for ke in page.key_events)
    return out


def read_property(conn: Connection, property: str) -> PropertyInfo:
    """The property's name, time zone, currency and service level, checked.

    A time zone that is empty or unknown to this machine (zoneinfo), or a service level ga-sync
    does not know, is a MalformedAnswer for this property. An unspecified service level reads
    as standard (the lower key-event limit); a missing currency as USD, GA's default.
    """
    from ga_sync.periods import zone_of

    client = conn.admin()
    p = call(lambda: client.get_property(name=property, timeout=TIMEOUT), policy=conn.retry,
             property=property, what="read the property")
    if not p.name and not p.time_zone and not p.display_name:
        raise MalformedAnswer(
            f"GA's answer to reading {property} was empty (no name, no time zone): not a "
            "property. Try again later; if it keeps happening, check what answers at "
            "GA_SYNC_ADMIN_ENDPOINT (a proxy in the way?).", property=property)
    zone_of(p.time_zone, property=property)
    raw_level = p.service_level
    level = getattr(raw_level, "name", None)
    if level in (None, "SERVICE_LEVEL_UNSPECIFIED") and not raw_level:
        # unspecified (or missing) reads as standard, the lower key-event limit, so limit
        # warnings come early rather than late
        level = GA_STANDARD
    if level not in GA_SERVICE_LEVELS:
        raise MalformedAnswer(
            f"{property} has the service level {excerpt(repr(raw_level), 40)}, which ga-sync "
            "does not know (it knows GOOGLE_ANALYTICS_STANDARD and GOOGLE_ANALYTICS_360). "
            "Check the property in GA4 Admin, or update ga-sync.", property=property)
    return PropertyInfo(name=property, display_name=p.display_name, time_zone=p.time_zone,
                        currency=p.currency_code or "USD", service_level=level,
                        account=p.parent or "")


def read_data_retention(conn: Connection, property: str) -> str:
    client = conn.admin()
    r = call(lambda: client.get_data_retention_settings(
        name=f"{property}/dataRetentionSettings", timeout=TIMEOUT), policy=conn.retry,
        property=property, what="read data retention settings")
    return getattr(r.event_data_retention, "name", str(r.event_data_retention))


@dataclass(frozen=True)
class PropertySummary:
    property: str
    display_name: str
    account: str
    account_name: str
    property_type: str


def list_properties(conn: Connection) -> list[PropertySummary]:
    """Every property the credentials can see, from account summaries (all pages)."""
    client = conn.admin()

    def fetch(token: str) -> Any:
        request = {"page_size": PAGE_SIZE, "page_token": token}
        return call(lambda: client.list_account_summaries(request=request, timeout=TIMEOUT),
                    policy=conn.retry, what="list account summaries")

    out = []
    for page in _pages(fetch, what="list account summaries"):
        for acc in page.account_summaries:
            for ps in acc.property_summaries:
                out.append(PropertySummary(
                    property=ps.property, display_name=ps.display_name, account=acc.account,
                    account_name=acc.display_name,
                    property_type=getattr(ps.property_type, "name", str(ps.property_type))))
    return out


# --------------------------------------------------------------------------- apply


class Journal:
    """Append-only JSON lines of every change attempted: one line before, one after.

    Each line is one `os.write` on an O_APPEND descriptor, then fsync, so an interrupted apply
    leaves a journal that says which changes were started and which finished, with no half
    line; a rerun plans afresh from GA and finishes the job. A line that cannot be written
    whole is cut off again and raises JournalError (see `apply_plan` for what apply does then).
    """

    def __init__(self, path: Path | str | None):
        self.path = Path(path) if path else None
        self._lock = threading.Lock()

    def check(self) -> None:
        """Raise JournalError, naming the path and the fix, if the journal cannot be written.

        Call it before asking whether to apply. It creates the folder if needed and opens the
        file for appending (creating it empty if it does not exist), without writing, and
        refuses a folder at the path and a file system with no free space left. What it cannot
        see: a disk that fills up during the run, a quota, or a device that accepts the open
        but refuses writes (/dev/full): those fail at the first line written, `record` then
        raises JournalError and apply stops (before the first change, or after the one whose
        outcome could not be written). A journal of None (no journaling) always passes.
        """
        if self.path is None:
            return
        path = self.path
        if path.is_dir():
            raise JournalError(f"the apply journal {path} is a folder, not a file. Choose a "
                               "journal file (GA_SYNC_JOURNAL) instead, e.g. "
                               f"{path / 'journal.jsonl'}.")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as err:
            raise self._error(err, "cannot be opened for writing") from None
        try:
            regular = stat.S_ISREG(os.fstat(fd).st_mode)
            if regular:
                vfs = os.fstatvfs(fd)
                free = vfs.f_bfree if hasattr(os, "geteuid") and os.geteuid() == 0 else vfs.f_bavail
                if vfs.f_blocks and free == 0:
                    raise self._error(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)),
                                      "cannot be written")
        except OSError as err:
            raise self._error(err, "cannot be checked") from None
        finally:
            os.close(fd)

    def _error(self, err: OSError, what: str, after: str = "") -> JournalError:
        """A JournalError naming the path, the system's reason and what to do about it."""
        reason = err.strerror or type(err).__name__
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            fix = ("Free space on that disk, or choose another journal file (GA_SYNC_JOURNAL) "
                   "on another disk.")
        elif err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            fix = (f"Make {self.path.parent if self.path else 'the folder'} writable for this "
                   "user, or choose another journal file (GA_SYNC_JOURNAL).")
        elif err.errno in (errno.EISDIR, errno.ENOTDIR, errno.EEXIST):
            fix = ("Choose a journal file (GA_SYNC_JOURNAL) whose folders are folders, not "
                   "files.")
        else:
            fix = "Check the path, or choose another journal file (GA_SYNC_JOURNAL)."
        return JournalError(f"the apply journal {self.path} {what}: {reason}.{after} {fix}")

    def record(self, property: str, change: Change, outcome: str, detail: str | None = None,
               *, name: str | None = None) -> None:
        """Append one line, whole or not at all; JournalError when it cannot be written.

        `name`, given on applied and reconciled lines, is the resource's server name
        ("properties/1/audiences/5"; for a create, the one GA answered or the one found in
        place): the change history is matched by it (see `changelog.ChangeHistory`)."""
        if self.path is None:
            return
        line = {
            "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            "property": property,
            "action": change.action,
            "event": change.event,
            "before": change.before.to_json() if change.before else None,
            "after": change.after.to_json() if change.after else None,
            "outcome": outcome,
            "resource": change.resource,
        }
        if change.stream:
            line["stream"] = change.stream
        if name:
            line["name"] = name
        if detail:
            line["detail"] = detail
        data = (json.dumps(line, sort_keys=False) + "\n").encode("utf-8")
        with self._lock:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            except OSError as err:
                raise self._error(err, "cannot be opened for writing") from None
            try:
                self._append(fd, data)
            finally:
                os.close(fd)

    def _append(self, fd: int, data: bytes) -> None:
        regular = stat.S_ISREG(os.fstat(fd).st_mode)
        size = os.fstat(fd).st_size if regular else 0
        try:
            written = os.write(fd, data)
            if written != len(data):
                raise OSError(errno.ENOSPC, f"only {written} of {len(data)} bytes of a line "
                              "could be written (disk full?)")
            if regular:
                os.fsync(fd)
        except OSError as err:
            if regular:
                try:  # no half line: cut the file back to where this line began
                    os.ftruncate(fd, size)
                except OSError:
                    pass
            raise self._error(err, "cannot be written",
                              " The line was not kept." if regular else "") from None


@dataclass
class ApplyResult:
    property: str
    client: str
    applied: list[Change] = field(default_factory=list)
    reconciled: list[Change] = field(default_factory=list)  # already so in GA (lost response)
    failed: list[tuple[Change, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed


def _key_event_proto(event: str, settings: KeyEventSettings, name: str | None = None) -> Any:
    from google.analytics.admin_v1beta.types import KeyEvent
    ke = KeyEvent(event_name=event if name is None else "", name=name or "",
                  counting_method=_COUNTING_ENUMS[settings.counting])
    if settings.value is not None:
        ke.default_value = KeyEvent.DefaultValue(numeric_value=float(settings.value),
                                                 currency_code=settings.currency or "")
    return ke


#: Words GA (or the sandbox) uses when a create is refused because the property is full.
_LIMIT_WORDS = re.compile(r"\blimit\b|\bmaximum\b|too many", re.IGNORECASE)


def _is_key_event_limit(err: ApiError) -> bool:
    """GA refused a create because the property has as many custom key events as it may.

    GA documents the limit (30, or 50 on Analytics 360) but not its error; the sandbox answers
    400 "... already has 30 custom key events, the limit ... is 30". A rate-limit answer is
    not this (it is retried, then reported as one).
    """
    from ga_sync.clients import RATE_LIMIT_REASONS
    message = str(err)
    return (err.status in (400, 403, 429) and bool(_LIMIT_WORDS.search(message))
            and err.reason not in RATE_LIMIT_REASONS and "rate limit" not in message.lower())


def _is_already_exists(err: ApiError) -> bool:
    """A duplicate event name: 409, or a 400 saying "already exists" that is not the limit."""
    if err.status == 409:
        return True
    return (err.status == 400 and "already exist" in str(err).lower()
            and not _is_key_event_limit(err))


#: How a resource kind reads in messages.
RESOURCE_LABELS = {KEY_EVENT: "key event", EVENT_CREATE_RULE: "event create rule",
                   AUDIENCE: "audience"}


def _journal_stopped(conn: Connection, plan: PropertyPlan, err: JournalError, change: Change,
                     left: int, made: str | None) -> JournalError:
    """Stop this apply and every other one of the run: the journal can no longer be trusted.

    `made` is the outcome GA answered for `change` when that line could not be written (GA may
    have the change), None when the "started" line failed (nothing was sent for it). `left` is
    how many changes of this property come after it.
    """
    conn.retry.cancel.set()  # other properties applying concurrently stop before their next change
    what = f"{change.action} {RESOURCE_LABELS[change.resource]} {change.event}"
    others = (f"the {left} change{'s' if left != 1 else ''} after it in {plan.property} "
              f"{'were' if left != 1 else 'was'} not started" if left else
              f"it was the last change for {plan.property}")
    if made is None:
        story = (f"Apply stopped before the {what} in {plan.property} ({plan.client}): that "
                 f"change was not sent to GA, and {others}.")
    else:
        story = (f"Apply stopped in {plan.property} ({plan.client}): GA may have made the {what} "
                 f"(its outcome, '{made}', could not be journaled); {others}.")
    return JournalError(f"{err} {story} Other properties stop before their next change. Fix "
                        "the journal, then run 'ga-sync plan' to see what GA has now and apply "
                        "again.")


def apply_plan(conn: Connection, plan: PropertyPlan, journal: Journal,
               on_change: Callable[[Change, str], None] | None = None) -> ApplyResult:
    """Apply one property's changes in plan order (see `plan.change_order`: a goal's rule or
    audience before its key event on creation, after it on deletion). A failed change does not
    stop the others, except that a goal's key event is not created when its rule or audience
    could not be (nothing would make the event): that create fails too, saying why.

    A key event created twice is answered "already exists" (typically our own earlier attempt
    whose response was lost), and is checked against the live one: if it already matches, it
    counts as done; if not, it is updated to match. Rules and audiences GA makes twice without a
    word, so their creates are never retried blindly (see `create_once`). A delete answered 404
    is done already. Every answer that does not hold what was asked for is checked by reading
    back (see `_check_written`, `_check_machinery`). Applied and reconciled lines of the
    journal name the resource (for a create, GA's answer or the one found in place).

    A journal line that cannot be written stops the whole run: JournalError, saying which
    change GA may have made, and `conn.retry.cancel` is set so that other properties applying
    concurrently start no further change either.
    """
    result = ApplyResult(plan.property, plan.client)
    client = conn.admin()
    changes = list(plan.changes)
    #: event -> why its rule or audience could not be created in this run
    unmade: dict[str, str] = {}
    for i, change in enumerate(changes):
        conn.retry.check()  # interrupted: start no further change
        left = len(changes) - i - 1

        def note(outcome: str, detail: str | None = None, *, sent: bool = True,
                 name: str | None = None) -> None:
            try:
                journal.record(plan.property, change, outcome, detail, name=name)
            except JournalError as err:
                raise _journal_stopped(conn, plan, err, change, left,
                                       outcome if sent else None) from None

        if change.resource == KEY_EVENT and change.action == CREATE and change.event in unmade:
            message = f"not created: {unmade[change.event]}"
            note("failed", message, sent=False)
            result.failed.append((change, message))
            if on_change:
                on_change(change, "failed")
            continue
        note("started", sent=False)
        try:
            outcome, name = _apply_one(conn, client, plan.property, change)
        except (Cancelled, KeyboardInterrupt):
            # interrupted mid-change: GA may or may not have it; a rerun plans afresh
            try:
                journal.record(plan.property, change, "interrupted")
            except JournalError:
                pass  # the interruption is the news; the journal's failure stops nothing more
            raise
        except ApiError as err:
            note("failed", str(err))
            result.failed.append((change, str(err)))
            if change.resource != KEY_EVENT and change.action == CREATE:
                where = f" on {change.stream}" if change.stream else ""
                unmade.setdefault(change.event, (
                    f"its {RESOURCE_LABELS[change.resource]}{where} could not be created "
                    f"({excerpt(str(err), 300)}), so nothing would make the event. Apply "
                    "again once the cause is fixed"))
            if on_change:
                on_change(change, "failed")
            continue
        note(outcome, name=name)
        (result.reconciled if outcome == "reconciled" else result.applied).append(change)
        if on_change:
            on_change(change, outcome)
    return result


def _after_failure(err: ApiError) -> str | None:
    """How a failed call may have ended in GA: None when GA surely did not act on it (a
    refusal: 400, 403, 404...), else "malformed", "timeout" or "transient" (GA may have made
    it). Malformed answers and read timeouts have retry budgets of their own in the policy, as
    in `clients.call`."""
    from ga_sync.answers import _failure_kind, is_read_timeout, is_transient
    raw = err.__cause__ if err.__cause__ is not None else err
    kind = _failure_kind(raw)
    if kind == "malformed":
        return kind
    if kind != "api":
        return None
    if is_read_timeout(raw):
        return "timeout"
    return "transient" if is_transient(raw) else None


def create_once(conn: Connection, property: str, what: str, send: Callable[[], Any],
                find: Callable[[], Any]) -> tuple[str, Any]:
    """Create something GA makes again when asked again: an event create rule, an audience, a
    reporting data annotation (GA answers no "already exists" for them, unlike key events).

    `send` is sent without `clients.call`'s automatic retry. After a failure GA may have acted
    on (a timeout, a 5xx, a 429, a dropped connection, an answer that cannot be read), `find()`
    reads what exists: an equal resource there means the create was made and its answer lost,
    ("reconciled", that resource); otherwise the create is sent again as `clients.call` would
    have (the connection's policy: attempts, backoff, Retry-After, deadline). Returns
    ("applied", GA's answer) or ("reconciled", what `find` found); raises the ApiError of the
    last attempt, or one saying GA may have made it when `find` itself fails.
    """
    from ga_sync.answers import is_rate_limit, retry_after
    policy = conn.retry
    once = replace(policy, attempts=1)  # shares the pacer, cancel switch and sleep
    tries = {"malformed": 0, "timeout": 0}
    start = time.monotonic()
    attempt = 0
    while True:
        try:
            return "applied", call(send, policy=once, property=property, what=what, write=True)
        except ApiError as err:
            kind = _after_failure(err)
            if kind is None:
                raise
            try:
                found = find()
            except ApiError as listing:
                raise ApiError(
                    f"could not {what} in {property}: GA did not answer ({excerpt(str(err), 200)}) "
                    f"and reading back what exists failed too ({excerpt(str(listing), 200)}): GA "
                    "may have made it. Run 'ga-sync plan' to see what GA has now before applying "
                    "again.", property=property, status=err.status, reason=err.reason) from err
            if found is not None:
                return "reconciled", found
            raw = err.__cause__ if err.__cause__ is not None else err
            wait = retry_after(raw)
            if wait is None and is_rate_limit(raw):
                wait = policy.rate_limit_floor
            delay = policy.delay(attempt, wait)
            budget = {"malformed": policy.malformed_retries,
                      "timeout": policy.read_timeout_retries}.get(kind)
            if (budget is not None and tries[kind] >= budget) or \
                    attempt + 1 >= policy.attempts or \
                    time.monotonic() - start + delay > policy.deadline:
                raise
            attempt += 1
            if kind in tries:
                tries[kind] += 1
            policy.retried += 1
            policy.wait(delay)
            policy.check()


def _describe(settings: KeyEventSettings) -> str:
    """`once_per_event, value 2.0 USD` or `once_per_session, no default value`."""
    if settings.value is None:
        return f"{settings.counting}, no default value"
    return f"{settings.counting}, value {settings.value:g} {settings.currency or ''}".rstrip()


def _answer_lacks(answer: Any, change: Change) -> str:
    """What the answer to a create or update lacks to be the key event asked for; '' if nothing.

    A create's answer must name the new key event; an update's must be the same key event
    with the settings asked for (a proxy that answers `200 {}` sent nothing upstream).
    """
    assert change.after is not None
    name = getattr(answer, "name", "") or ""
    event = getattr(answer, "event_name", "") or ""
    if not name:
        return "no name"
    if event != change.event:
        return f"the event name {excerpt(event, 40)!r}"
    if change.action != UPDATE:
        return ""
    if name != change.name:
        return f"another key event, {excerpt(name, 60)!r}"
    try:
        got = normalize_key_event(answer).settings
    except MalformedAnswer:
        return "settings ga-sync cannot read"
    if not same_settings(got, change.after):
        return f"other settings ({_describe(got)})"
    return ""


def _check_written(conn: Connection, property: str, change: Change, answer: Any) -> str:
    """Make sure a create or update answered with something else than the key event asked for
    really made it.

    GA answers a create with the new key event and an update with the updated one. An answer
    without its `name`, with another `eventName` or (for an update) with other settings, e.g.
    `{}` from something between us and GA, is checked against the property's key events read
    back: present with the wanted settings counts as applied, anything else fails.
    """
    assert change.after is not None
    lacks = _answer_lacks(answer, change)
    if not lacks:
        return "applied"
    live = {k.event: k for k in read_key_events(conn, property)}
    existing = live.get(change.event)
    if existing is not None and same_settings(existing.settings, change.after):
        return "applied"
    verb = "create" if change.action == CREATE else "update"
    head = (f"GA answered the {verb} of key event {change.event} in {property} with an answer "
            f"that does not hold it ({lacks})")
    if change.action == CREATE:
        if existing is None:
            tail = "the key event is not in the property's list: it was not created. Run apply again."
        else:
            tail = (f"the property has the key event with other settings "
                    f"({_describe(existing.settings)}): run apply again to update it.")
    elif existing is None:
        tail = ("the key event is no longer in the property's list: it was not updated. Run "
                "plan again to see what GA has now.")
    else:
        tail = (f"reading the key events back shows it with other settings "
                f"({_describe(existing.settings)}, not {_describe(change.after)}): it was not "
                "updated. Run apply again.")
    raise MalformedAnswer(f"{head}, and {tail}", property=property)


def _apply_one(conn: Connection, client: Any, property: str, change: Change
               ) -> tuple[str, str | None]:
    """Make one change; returns its outcome ("applied", "reconciled") and the server name of
    the resource (for a create: the one GA answered, or the one found in place)."""
    from google.protobuf.field_mask_pb2 import FieldMask

    if change.resource == EVENT_CREATE_RULE:
        return _apply_rule(conn, property, change)
    if change.resource == AUDIENCE:
        return _apply_audience(conn, property, change)

    if change.action == CREATE:
        assert change.after is not None
        ke = _key_event_proto(change.event, change.after)
        try:
            created = call(lambda: client.create_key_event(parent=property, key_event=ke,
                                                           timeout=TIMEOUT),
                           policy=conn.retry, property=property,
                           what=f"create key event {change.event}", write=True)
        except ApiError as err:
            if _is_key_event_limit(err):
                raise ApiError(
                    f"could not create key event {change.event} in {property}: the property has "
                    "reached GA's limit of custom key events (30, or 50 on Analytics 360); GA "
                    f"said: {excerpt(str(err), 200)} Nothing was created. Delete key events you "
                    "no longer need ('ga-sync apply --prune' deletes the ones the spec does not "
                    "name) or drop goals from the spec.",
                    property=property, status=err.status, reason=err.reason) from err
            if isinstance(err, MalformedAnswer) or not _is_already_exists(err):
                raise
        else:
            outcome = _check_written(conn, property, change, created)
            return outcome, (getattr(created, "name", "") or
                             _live_key_event_name(conn, property, change.event))
        live = {k.event: k for k in read_key_events(conn, property)}
        existing = live.get(change.event)
        if existing is None:
            raise ApiError(f"GA said key event {change.event} already exists in {property}, "
                           "but it is not in the list of key events. Run plan again.",
                           property=property)
        if same_settings(existing.settings, change.after):
            return "reconciled", existing.name
        change = Change(UPDATE, change.event, existing.settings, change.after, name=existing.name)

    if change.action == UPDATE:
        assert change.after is not None and change.name
        ke = _key_event_proto(change.event, change.after, name=change.name)
        mask = FieldMask(paths=["counting_method", "default_value"])
        updated = call(lambda: client.update_key_event(key_event=ke, update_mask=mask,
                                                       timeout=TIMEOUT),
                       policy=conn.retry, property=property,
                       what=f"update key event {change.event}", write=True)
        return _check_written(conn, property, change, updated), change.name

    if change.action == DELETE:
        assert change.name
        try:
            call(lambda: client.delete_key_event(name=change.name, timeout=TIMEOUT),
                 policy=conn.retry, property=property, what=f"delete key event {change.event}", write=True)
        except ApiError as err:
            if err.status == 404:  # gone already: an earlier attempt whose answer was lost
                return "reconciled", change.name
            raise
        return "applied", change.name
    raise ValueError(f"unknown action {change.action!r}")


def _live_key_event_name(conn: Connection, property: str, event: str) -> str | None:
    """The server name of a key event GA answered without one (checked there already)."""
    live = {k.event: k for k in read_key_events(conn, property)}
    return live[event].name if event in live else None


# --------------------------------------------------------------------------- rules, audiences


def _machinery_lacks(answer: Any, change: Change) -> str:
    """What a create/update answer for a rule or audience lacks; '' if nothing."""
    from ga_sync.machinery import normalize_audience, normalize_rule
    if not getattr(answer, "name", ""):
        return "no name"
    try:
        state = (normalize_rule(answer, change.stream or "") if change.resource ==
                 EVENT_CREATE_RULE else normalize_audience(answer))
    except (ValueError, TypeError, AttributeError):
        return "a form ga-sync cannot read"
    if state.event != change.event:
        return f"the event {excerpt(state.event, 40)!r}"
    if state.form != change.after:
        return "other conditions"
    if change.action == UPDATE and answer.name != change.name:
        return f"another resource, {excerpt(str(answer.name), 80)!r}"
    return ""


def _find_live(conn: Connection, property: str, change: Change) -> tuple[list[Any], Any]:
    """The live rules (of the change's stream) or audiences making the change's event, and
    the first of them equal to `change.after` (None if none is)."""
    from ga_sync.machinery import read_audiences, read_rules
    if change.resource == EVENT_CREATE_RULE:
        assert change.stream
        have: list[Any] = [r for r in read_rules(conn, property, change.stream)
                           if r.event == change.event]
    else:
        have = [a for a in read_audiences(conn, property) if a.event == change.event]
    return have, next((x for x in have if x.form == change.after), None)


def _check_machinery(conn: Connection, property: str, change: Change, answer: Any
                     ) -> tuple[str, str | None]:
    """A create or update of a rule or audience whose answer lacks what was asked for is read
    back: there with the wanted form counts as applied, anything else fails. Returns the
    outcome and the resource's name."""
    lacks = _machinery_lacks(answer, change)
    if not lacks:
        return "applied", str(answer.name)
    _, equal = _find_live(conn, property, change)
    if equal is not None and (change.action == CREATE or equal.name == change.name):
        return "applied", equal.name
    label = RESOURCE_LABELS[change.resource]
    raise MalformedAnswer(
        f"GA answered the {change.action} of the {label} for {change.event} in {property} "
        f"with an answer that does not hold it ({lacks}), and reading back shows no {label} "
        f"making {change.event} as planned: it was not {change.action}d. Run apply again.",
        property=property)


def _create_machinery(conn: Connection, property: str, change: Change
                      ) -> tuple[str, str | None]:
    """Create a rule or audience at most once (see `create_once`): after a lost answer, an
    equal one found in place is the create done."""
    from ga_sync import machinery as m
    assert change.after is not None
    if change.resource == EVENT_CREATE_RULE:
        assert change.stream
        stream, after = change.stream, change.after
        what = f"create event create rule {change.event} on {stream}"
        send = m.rule_sender(conn, stream, change.event, after)
    else:
        what = f"create audience for {change.event}"
        send = m.audience_sender(conn, property, change.event, change.after)
    outcome, answer = create_once(conn, property, what, send,
                                  lambda: _find_live(conn, property, change)[1])
    if outcome == "reconciled":
        return outcome, answer.name
    return _check_machinery(conn, property, change, answer)


def _apply_rule(conn: Connection, property: str, change: Change) -> tuple[str, str | None]:
    from ga_sync import machinery as m
    if change.action == CREATE:
        assert change.stream and change.after is not None
        try:
            return _create_machinery(conn, property, change)
        except ApiError as err:
            if isinstance(err, MalformedAnswer) or not _is_already_exists(err):
                raise
            have, equal = _find_live(conn, property, change)
            if equal is not None:
                return "reconciled", equal.name
            if not have:
                raise ApiError(f"GA said the event create rule for {change.event} already "
                               f"exists on {change.stream}, but the stream has none. Run plan "
                               "again.", property=property) from err
            change = Change(UPDATE, change.event, have[0].form, change.after, name=have[0].name,
                            resource=EVENT_CREATE_RULE, stream=change.stream)
    if change.action == UPDATE:
        assert change.name and change.after is not None
        answer = m.update_rule(conn, property, change.name, change.event, change.after)
        return _check_machinery(conn, property, change, answer)
    if change.action == DELETE:
        assert change.name
        try:
            m.delete_rule(conn, property, change.name, change.event)
        except ApiError as err:
            if err.status == 404:  # gone already: an earlier attempt whose answer was lost
                return "reconciled", change.name
            raise
        return "applied", change.name
    raise ValueError(f"unknown action {change.action!r}")


def _apply_audience(conn: Connection, property: str, change: Change) -> tuple[str, str | None]:
    from ga_sync import machinery as m
    if change.action == CREATE:
        assert change.after is not None
        try:
            return _create_machinery(conn, property, change)
        except ApiError as err:
            if isinstance(err, MalformedAnswer) or not _is_already_exists(err):
                raise
            _, equal = _find_live(conn, property, change)
            if equal is not None:
                return "reconciled", equal.name
            raise
    if change.action == DELETE:
        assert change.name
        try:
            m.archive_audience(conn, property, change.name, change.event)
        except ApiError as err:
            # gone or archived already: an earlier attempt whose answer was lost
            if err.status == 404 or (err.status in (400, 409) and
                                     "archived" in str(err).lower()):
                return "reconciled", change.name
            raise
        return "applied", change.name
    raise ValueError(f"audiences are never updated in place (GA's filter clauses and "
                     f"membership duration are immutable): {change.action!r}")
