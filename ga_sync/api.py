"""The public Python API: what a notebook, a cron script, the CLI and the demo all call.

    import ga_sync
    specs = ga_sync.load_specs("goal_specs/")
    conn = ga_sync.connect()
    plan = ga_sync.plan(conn, specs)
    result = ga_sync.apply(conn, plan)
    run = ga_sync.report(conn, specs, last_week=True, compare="previous")
    run.to_frame()

Failures of single properties come back inside the results (`errors`, as in the JSON
contracts), never as exceptions; a bad spec, bad credentials or a bad argument raises a
`GaSyncError` subclass. Nothing here prints, prompts or changes the environment.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ga_sync import settings
from ga_sync.errors import GaSyncError
from ga_sync.model import Plan, Spec

if TYPE_CHECKING:
    import pandas as pd

    from ga_sync.admin import ApplyResult as PropertyApplyResult
    from ga_sync.audit.run import AuditResult
    from ga_sync.clients import Connection
    from ga_sync.errors import Problem
    from ga_sync.periods import Period
    from ga_sync.report import ReportResult

PathsLike = str | os.PathLike[str] | Iterable[str | os.PathLike[str]]
DateLike = date | str
#: Called once per property finished: (property, failed).
Progress = Callable[[str, bool], None]

#: The longest audit window (days): GA keeps event data 14 months on a standard property.
MAX_AUDIT_DAYS = 400


def _workers(concurrency: Any) -> int | None:
    if concurrency is None:
        return None
    if not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 1:
        raise GaSyncError(f"concurrency must be a whole number of at least 1, not "
                          f"{concurrency!r}")
    return concurrency


def _paths(paths: PathsLike) -> list[Path]:
    if isinstance(paths, (str, os.PathLike)):
        return [Path(paths)]
    try:
        out = [Path(p) for p in paths]  # type: ignore[union-attr]
    except TypeError:
        raise GaSyncError(f"paths must be a file or folder path, or a list of them, not "
                          f"{type(paths).__name__}") from None
    if not out:
        raise GaSyncError("no paths given: name spec files or folders, e.g. 'goal_specs/'")
    return out


def _specs(specs: Any) -> list[Spec]:
    """The specs argument, checked: a list of `Spec` (from `load_specs`), each property once."""
    if isinstance(specs, Spec):
        specs = [specs]
    if isinstance(specs, (str, os.PathLike)):
        raise GaSyncError(f"specs must be loaded specs, not a path: pass "
                          f"ga_sync.load_specs({os.fspath(specs)!r})")
    try:
        out = list(specs)
    except TypeError:
        raise GaSyncError(f"specs must be a list of specs from ga_sync.load_specs(), not "
                          f"{type(specs).__name__}") from None
    seen: dict[str, str] = {}
    for s in out:
        if not isinstance(s, Spec):
            raise GaSyncError(f"specs must be specs from ga_sync.load_specs(), not "
                              f"{type(s).__name__}")
        for p in s.properties:
            if p in seen:
                raise GaSyncError(f"{p} is in two specs ({seen[p]} and {s.client}): each "
                                  "property belongs to one spec")
            seen[p] = s.client
    return out


def _conn(conn: Any) -> Connection:
    """The connection argument, checked, with a new run's cancel switch cleared: an earlier
    interruption or journal failure stops that run, not every later call on the connection."""
    from ga_sync.clients import Connection
    if not isinstance(conn, Connection):
        raise GaSyncError(f"conn must be a connection from ga_sync.connect(), not "
                          f"{type(conn).__name__}")
    conn.retry.cancel.clear()
    return conn


# --------------------------------------------------------------------------- specs


def validate(paths: PathsLike, *, bases: Iterable[str | os.PathLike[str]] = ()
             ) -> tuple[list[Spec], list[Problem]]:
    """Every valid spec and every problem (errors and warnings) of every file; never raises.

    One invalid file does not hide the valid ones: run those, report the problems.
    """
    from ga_sync.spec import validate_paths
    return validate_paths(_paths(paths), bases=_bases(bases))


def load_specs(paths: PathsLike, *, bases: Iterable[str | os.PathLike[str]] = ()) -> list[Spec]:
    """Load goal specs from files and folders (files starting with `_` are bases for `extends`).

    Raises `SpecError` listing every problem of every file when any is an error. `bases` are
    folders outside the spec tree that `extends:` may also reach.
    """
    from ga_sync.spec import load_specs as _load
    return _load(_paths(paths), bases=_bases(bases))


def _bases(bases: Any) -> list[Path]:
    if isinstance(bases, (str, os.PathLike)):
        return [Path(bases)]
    try:
        return [Path(b) for b in bases]
    except TypeError:
        raise GaSyncError("bases must be a list of folders") from None


# --------------------------------------------------------------------------- connecting


def connect(*, credentials: str | os.PathLike[str] | Any | None = None,
            admin_endpoint: str | None = None, data_endpoint: str | None = None,
            write: bool = False, env: Mapping[str, str] | None = None) -> Connection:
    """Where to send requests and as whom: `GA_SYNC_*` variables, or these keyword overrides.

    `credentials` is a key file path, `"anonymous"` (the sandbox) or a google-auth credentials
    object. `write=True` asks for the edit scope; `apply` asks for it by itself when needed.
    The connection's `warnings` say what a person should know (e.g. a key readable by others).
    """
    from ga_sync.clients import connect as _connect

    values = dict(os.environ if env is None else env)
    creds_object = None
    if credentials is not None:
        if isinstance(credentials, (str, os.PathLike)):
            values[settings.CREDENTIALS_ENV] = os.fspath(credentials)
        else:
            creds_object = credentials
            values[settings.CREDENTIALS_ENV] = "anonymous"
    if admin_endpoint is not None:
        values[settings.ADMIN_ENDPOINT_ENV] = admin_endpoint
    if data_endpoint is not None:
        values[settings.DATA_ENDPOINT_ENV] = data_endpoint
    conn = _connect(write=write, env=values)
    if creds_object is not None:
        conn.credentials = creds_object
    conn._settings = {"values": values, "credentials": creds_object}  # type: ignore[attr-defined]
    return conn


def _writer(conn: Connection) -> Connection:
    """The same connection with the edit scope (apply's), sharing quotas and cancellation."""
    from ga_sync.clients import EDIT_SCOPE, connect as _connect
    if conn.scope == EDIT_SCOPE:
        return conn
    saved = getattr(conn, "_settings", None)
    values = saved["values"] if saved else dict(os.environ)
    writer = _connect(write=True, env=values)
    if saved and saved["credentials"] is not None:
        creds = saved["credentials"]
        writer.credentials = creds.with_scopes([EDIT_SCOPE]) if hasattr(creds, "with_scopes") \
            else creds
    writer.retry = conn.retry  # one pacer, one cancel switch for the whole run
    return writer


# --------------------------------------------------------------------------- plan / apply


def _advance(on_progress: Progress | None) -> Callable[[Any, Any, Any], None] | None:
    if on_progress is None:
        return None

    def done(item: Any, result: Any, error: Any) -> None:
        on_progress(getattr(item, "property", str(item)), error is not None)
    return done


def plan(conn: Connection, specs: Sequence[Spec], prune: bool = False, *,
         concurrency: int | None = None, on_progress: Progress | None = None,
         journal: str | os.PathLike[str] | None = None, attribute: bool = True) -> Plan:
    """What apply would change in every property of `specs`; changes nothing.

    Properties that could not be read are in `plan.errors`, never silently planned as empty.
    With `attribute` (the default), updates and deletes carry `last_change`: who last changed
    that resource in GA and when (the change history, one search per account), and whether
    ga-sync did (its apply `journal`, default $GA_SYNC_JOURNAL or the user data folder). A
    change history that cannot be read is a warning of the property's plan.
    """
    from ga_sync.changelog import ChangeHistory
    from ga_sync.sync import default_concurrency, plan_all, targets
    conn, specs = _conn(conn), _specs(specs)
    workers = _workers(concurrency) or default_concurrency("plan", len(targets(specs)))
    history = None
    if attribute:
        history = ChangeHistory(conn, Path(journal) if journal is not None
                                else settings.journal_path())
    the_plan, failures = plan_all(conn, list(specs), prune=prune, concurrency=workers,
                                  on_done=_advance(on_progress), history=history)
    return Plan(the_plan.properties, errors=tuple(failures))


@dataclass
class ApplyResult:
    """What apply did, per property, and where the journal is."""

    properties: list[PropertyApplyResult]
    journal: Path
    errors: tuple[Any, ...] = ()  # properties the plan could not read, carried over
    warnings: list[str] = field(default_factory=list)  # e.g. an annotation that failed

    @property
    def applied(self) -> int:
        return sum(len(r.applied) for r in self.properties)

    @property
    def reconciled(self) -> int:
        return sum(len(r.reconciled) for r in self.properties)

    @property
    def failed(self) -> int:
        return sum(len(r.failed) for r in self.properties)

    @property
    def ok(self) -> bool:
        return not self.failed and not self.errors

    def to_json(self) -> dict[str, Any]:
        return {"version": 1, "journal": str(self.journal), "properties": [
            {"property": r.property, "client": r.client,
             "applied": [c.to_json() for c in r.applied],
             "reconciled": [c.to_json() for c in r.reconciled],
             "failed": [{**c.to_json(), "message": m} for c, m in r.failed]}
            for r in self.properties],
            "summary": {"applied": self.applied, "reconciled": self.reconciled,
                        "failed": self.failed},
            **({"warnings": list(self.warnings)} if self.warnings else {}),
            **({"errors": [_error_json(e) for e in self.errors]} if self.errors else {})}

    def to_frame(self) -> pd.DataFrame:
        import pandas as pd
        rows = []
        for r in self.properties:
            for outcome, changes in (("applied", r.applied), ("reconciled", r.reconciled)):
                rows += [{"property": r.property, "client": r.client, "action": c.action,
                          "event": c.event, "resource": c.resource, "outcome": outcome,
                          "message": None} for c in changes]
            rows += [{"property": r.property, "client": r.client, "action": c.action,
                      "event": c.event, "resource": c.resource, "outcome": "failed",
                      "message": m} for c, m in r.failed]
        return pd.DataFrame(rows, columns=["property", "client", "action", "event", "resource",
                                           "outcome", "message"])


def check_apply(plan: Plan, force: bool = False, *,
                journal: str | os.PathLike[str] | None = None) -> Path:
    """What `apply` checks before its first change, for a caller that asks a person in between:
    the safety threshold (`UnsafePlan` unless `force`) and a writable journal (`JournalError`).
    Returns the journal's path."""
    from ga_sync.admin import Journal
    from ga_sync.plan import check_safety
    if not force:
        check_safety(plan)
    path = Path(journal) if journal is not None else settings.journal_path()
    if plan.has_changes:
        Journal(path).check()
    return path


def apply(conn: Connection, plan: Plan, force: bool = False, *,
          journal: str | os.PathLike[str] | None = None, concurrency: int | None = None,
          on_progress: Progress | None = None, annotate: bool = False) -> ApplyResult:
    """Make the properties match `plan`, journaled; never prompts.

    With `annotate`, each property with changes applied gets one GA reporting data annotation
    dated today in its time zone ("ga-sync: 2 goals created, 1 changed": goals counted once
    however many of their resources changed); one that cannot be added is in
    `result.warnings`, never a failed apply.

    Refuses (`UnsafePlan`) a plan that changes or deletes more than 30% of a property's key
    events unless `force`; refuses (`JournalError`) before any change when the journal cannot
    be written. `journal` defaults to $GA_SYNC_JOURNAL or the user data folder. A change GA
    refused is in the result (`failed`), not an exception.
    """
    from ga_sync.admin import Journal
    from ga_sync.sync import apply_all, default_concurrency

    conn = _conn(conn)
    if not isinstance(plan, Plan):
        raise GaSyncError(f"plan must be a Plan from ga_sync.plan(), not {type(plan).__name__}")
    path = check_apply(plan, force, journal=journal)
    if not plan.has_changes:
        return ApplyResult([], path, tuple(plan.errors))
    writer = _writer(conn)
    results = apply_all(writer, plan, Journal(path),
                        concurrency=_workers(concurrency) or default_concurrency(
                            "apply", sum(1 for p in plan.properties if p.changes)),
                        on_done=_advance(on_progress))
    out = ApplyResult(list(results), path, tuple(plan.errors))
    if annotate:
        from ga_sync.changelog import annotate_applied
        out.warnings.extend(annotate_applied(writer, results))
    return out


# --------------------------------------------------------------------------- report


def _as_date(value: DateLike | None, what: str) -> date | None:
    from datetime import datetime
    if isinstance(value, datetime):
        return value.date()
    if value is None or isinstance(value, date):
        return value
    if not isinstance(value, str):
        raise GaSyncError(f"the {what} date must be a date or a YYYY-MM-DD string, not "
                          f"{type(value).__name__}")
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise GaSyncError(f"the {what} date {value!r} is not a date; write it as YYYY-MM-DD"
                          ) from None


def period_chooser(start: DateLike | None = None, end: DateLike | None = None, *,
                   last_week: bool = False, last_days: int | None = None,
                   compare: bool = False) -> Callable[[date], Period]:
    """A function of a property's 'today' -> the period to report, after checking the choice.

    Dates GA4 cannot have data for (before its first day, after today, or a previous period
    reaching before its first day) are refused here, before anything is pulled.
    """
    from ga_sync.periods import check_dates, check_period
    from ga_sync.periods import last_days as days_before
    from ga_sync.periods import last_week as week_before

    first, last = _as_date(start, "start"), _as_date(end, "end")
    chosen = sum([first is not None or last is not None, bool(last_week), last_days is not None])
    if chosen > 1:
        raise GaSyncError("choose one period: start and end dates, last_week, or last_days")
    if first is not None or last is not None:
        if first is None or last is None:
            raise GaSyncError("a period needs both a start and an end date")
        fixed = check_dates(first, last, compare=compare)
        return lambda today: fixed
    if last_days is not None:
        if not isinstance(last_days, int) or isinstance(last_days, bool) or not \
                1 <= last_days <= 3650:
            raise GaSyncError(f"last_days must be a whole number of days from 1 to 3650, "
                              f"not {last_days!r}")
        n = last_days

        def choose(today: date) -> Period:
            return days_before(today, n)
    else:
        choose = week_before
    check_period(choose(date.today()), compare=compare, today=date.today())
    return choose


def _fx_rates(fx: Any) -> dict[tuple[str, str], float] | None:
    """`{"USD:EUR": 0.92}`, `{("USD", "EUR"): 0.92}` or `["USD:EUR=0.92"]` -> {(from, to): rate}."""
    from ga_sync.report import parse_fx
    if not fx:
        return None
    if isinstance(fx, Mapping):
        texts = [f"{k[0]}:{k[1]}={v}" if isinstance(k, tuple) else f"{k}={v}"
                 for k, v in fx.items()]
    elif isinstance(fx, str):
        texts = [fx]
    else:
        texts = [str(x) for x in fx]
    return parse_fx(texts, what="the exchange rate")


@dataclass
class ReportRun:
    """The reports of one run: one `ReportResult` per property, and the properties that failed."""

    results: list[ReportResult]
    errors: list[Any] = field(default_factory=list)  # Failure(property, client, message)
    specs: dict[str, Spec] = field(default_factory=dict, repr=False)  # property -> its spec
    warnings: list[str] = field(default_factory=list)  # run-wide, e.g. the store was not written
    stored: Path | None = None  # the history store this run was saved in

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_json(self) -> dict[str, Any]:
        """The report JSON contract, exactly what `ga-sync report --format json` prints."""
        import json

        from ga_sync.render.report import report_json
        return json.loads(report_json(self.results, self.errors or None))

    def to_frame(self) -> pd.DataFrame:
        """One row per property x goal: property, client, start, end, event, tier, conversions,
        rate, value, currency, in_total (+ previous_conversions, previous_rate, previous_value,
        change when compared). `value` is in `currency`: the spec's, or the property's for an
        event value no exchange rate converted (then `in_total` is False: add up only the rows
        where it is True)."""
        import pandas as pd
        rows = []
        compared = any(r.previous is not None for r in self.results)
        for r in self.results:
            prev = {g.event: g for g in r.previous.goals} if r.previous is not None else {}
            for g in r.goals:
                row = {"property": r.property, "client": r.client, "start": r.period.start,
                       "end": r.period.end, "event": g.event, "tier": g.tier,
                       "conversions": float(g.conversions), "rate": g.rate, "value": g.value,
                       "currency": g.currency or r.currency, "in_total": g.in_total}
                if compared:
                    p = prev.get(g.event)
                    row.update({"previous_conversions": None if p is None else float(p.conversions),
                                "previous_rate": None if p is None else p.rate,
                                "previous_value": None if p is None else p.value,
                                "change": g.change})
                rows.append(row)
        columns = ["property", "client", "start", "end", "event", "tier", "conversions", "rate",
                   "value", "currency", "in_total"]
        if compared:
            columns += ["previous_conversions", "previous_rate", "previous_value", "change"]
        return pd.DataFrame(rows, columns=columns)

    def daily_frame(self) -> pd.DataFrame:
        """One row per property x date x goal (zero on days a goal did not occur): date, event,
        tier, conversions, value (in `currency`; `in_total` as in `to_frame`), and the day's
        sessions and users: the rows the history store keeps. The previous period's days are
        included when the run compared."""
        import pandas as pd
        columns = ["property", "client", "date", "event", "tier", "conversions", "value",
                   "sessions", "users", "currency", "in_total"]
        frames = []
        for top in self.results:
            for r in (top, top.previous):
                if r is None or r.daily is None or not len(r.daily):
                    continue
                d = r.daily
                days = d.groupby("date", as_index=False)[["sessions", "users"]].max()
                goals = pd.DataFrame({"event": [g.event for g in r.goals],
                                      "tier": [g.tier for g in r.goals],
                                      "currency": [g.currency or r.currency for g in r.goals],
                                      "in_total": [g.in_total for g in r.goals]})
                grid = days.merge(goals, how="cross")
                got = d[d["event"] != ""].groupby(["date", "event"], as_index=False)[
                    ["conversions", "value"]].sum()
                grid = grid.merge(got, on=["date", "event"], how="left")
                grid[["conversions", "value"]] = grid[["conversions", "value"]].fillna(0.0)
                grid = grid.assign(property=r.property, client=r.client)
                frames.append(grid[columns])
        if not frames:
            return pd.DataFrame(columns=columns)
        out = pd.concat(frames, ignore_index=True)
        return out.sort_values(["property", "date", "event"], kind="stable").reset_index(drop=True)

    def save(self, store: str | os.PathLike[str] | None = None, *, weeks: int = 0,
             wait: float = 5.0) -> dict[str, pd.DataFrame]:
        """Keep this run's daily rows in the history store (replacing the same days); with
        `weeks`, also return per property the last `weeks` complete weeks stored up to this
        run's end (what the HTML report charts). The store is opened, written and closed at
        once, waiting up to `wait` seconds for another process's write lock.

        Raises `StoreError` when the store cannot be opened or written.
        """
        from ga_sync.history import Store
        path = Path(store) if store is not None else settings.store_path()
        weekly: dict[str, pd.DataFrame] = {}
        with Store(path, wait=wait) as db:
            for r in self.results:
                db.save(r, self.specs[r.property])
            for r in self.results if weeks else ():
                w = db.weekly(self.specs[r.property], weeks,
                              today=r.period.end + timedelta(days=1))
                weekly[r.property] = w[w["property"] == r.property] if "property" in w else w
        self.stored = path
        return weekly


def report(conn: Connection, specs: Sequence[Spec], start: DateLike | None = None,
           end: DateLike | None = None, *, last_week: bool = False, last_days: int | None = None,
           compare: str | None = None, fx: Any = None,
           store: str | os.PathLike[str] | bool | None = None,
           concurrency: int | None = None, on_progress: Progress | None = None,
           source: Any = None, max_gb: float | None = None,
           ) -> ReportRun:
    """Macro and micro conversions, rates and economic value for every property of `specs`.

    The period is `start`..`end` (dates or ISO strings, inclusive), or `last_days=N`, or the
    last complete ISO week (`last_week=True`, the default), in each property's time zone.
    `compare="previous"` adds the period of equal length just before. `fx` gives exchange
    rates for event values GA reports in another currency than the spec's
    (`{"USD:EUR": 0.92}`: 1 USD = 0.92 EUR); without one such values stay out of the totals.
    The run is kept in the history store (`store`: a path; None, the default store; False,
    not kept); a store that cannot be written is a warning in `run.warnings`, not a lost report.

    `source` says where the numbers come from: "data-api" (None, the default), "export:PATH"
    (GA4 BigQuery export files under PATH/analytics_<property id>/, on DuckDB) or
    "bigquery:PROJECT" / "bigquery:PROJECT.DATASET" (the export dataset on BigQuery, where
    `max_gb`, default 10, refuses a bigger scan), or a source object (`ga_sync.export`).
    """
    from ga_sync.admin import read_key_events, read_property
    from ga_sync.periods import today_in
    from ga_sync.report import report_property
    from ga_sync.sync import Failure, default_concurrency, is_cancelled, run_each, targets

    conn, specs = _conn(conn), _specs(specs)
    if compare not in (None, "previous"):
        raise GaSyncError(f"compare must be 'previous' or None, not {compare!r}")
    if not (store is None or isinstance(store, (bool, str, os.PathLike))):
        raise GaSyncError(f"store must be a path, None (the default store) or False, not "
                          f"{type(store).__name__}")
    comparing = compare is not None
    choose = period_chooser(start, end, last_week=last_week, last_days=last_days,
                            compare=comparing)
    rates = _fx_rates(fx)
    items = targets(specs)
    pull_from = _source(source, max_gb)

    def work(t: Any) -> ReportResult:
        info = read_property(conn, t.property)
        period = _checked_period(choose, info, comparing)
        return report_property(conn, t.spec, t.property, period, compare=comparing,
                               today=today_in(info.time_zone), time_zone=info.time_zone,
                               key_events=read_key_events(conn, t.property), fx=rates,
                               source=pull_from, currency=info.currency)

    workers = _workers(concurrency) or default_concurrency("report", len(items))
    conn.fit_pool(workers)
    done = run_each(items, work, concurrency=workers,
                    cancel=conn.retry.cancel, on_done=_advance(on_progress))
    run = ReportRun(results=[r for _, r, _ in done if r is not None],
                    errors=[Failure(t.property, t.spec.client, str(e))
                            for t, _, e in done if e is not None and not is_cancelled(e)],
                    specs={t.property: t.spec for t in items})
    if store is not False and run.results:
        try:
            run.save(None if store is None or store is True else store)
        except GaSyncError as e:
            run.warnings.append(str(e))
    return run


def _source(source: Any, max_gb: float | None) -> Any:
    """A `source=` argument -> the source object (see `report`); GaSyncError when unknown."""
    from ga_sync.export.engines import DEFAULT_MAX_GB, reset_interrupt
    from ga_sync.export.source import parse_source

    reset_interrupt()  # a new run: an earlier Ctrl-C in this process stops nothing now

    if max_gb is not None and (isinstance(max_gb, bool) or not isinstance(max_gb, (int, float))
                               or not 0.001 <= max_gb < 10 ** 7):
        raise GaSyncError(f"max_gb must be a number of gigabytes from 0.001 (1 MB), not "
                          f"{max_gb!r}")
    if source is None or isinstance(source, str):
        return parse_source(source, max_gb=DEFAULT_MAX_GB if max_gb is None else max_gb)
    if not callable(getattr(source, "pull", None)):
        raise GaSyncError(f"source must be 'data-api', 'export:PATH', 'bigquery:PROJECT' or a "
                          f"source object with pull(), not {type(source).__name__}")
    return source


def _checked_period(choose: Any, info: Any, comparing: bool) -> Any:
    """The period for a property (its time zone's today), refused when GA cannot have it."""
    from ga_sync.periods import check_period, today_in

    today = today_in(info.time_zone)
    period = choose(today)
    if period.end > today:
        raise GaSyncError(f"the period {period} ends after today ({today} in the "
                          f"property's time zone, {info.time_zone}): GA has no data yet")
    check_period(period, compare=comparing, today=today)
    return period


def report_sql(conn: Connection, specs: Sequence[Spec], start: DateLike | None = None,
               end: DateLike | None = None, *, last_week: bool = False,
               last_days: int | None = None, compare: str | None = None,
               source: Any = None) -> dict[str, str]:
    """The exact BigQuery SQL an export or BigQuery `report` would run, by property; runs
    nothing (a BigQuery source lists the dataset's tables to know which days are intraday).

    Each property's value holds every query a report of it sends, each under a comment
    header: `-- goals` (the facts query), then, when the spec asks for journeys (funnels,
    `identifies` goals, or micro and macro goals: assists), `-- journeys` (billed too on
    BigQuery). Split on those headers, each part is one BigQuery statement.

    A property that fails (its export missing, GA refusing to read it) is left out of the
    answer and listed in the answer's `errors` ({property: GaSyncError}), as `report` lists
    failed properties; when no property could be produced, one GaSyncError lists them all.
    The Data API has no SQL: GaSyncError."""
    from ga_sync.admin import read_property
    from ga_sync.journeys import wanted
    from ga_sync.journeys.export import journey_sql

    conn, specs = _conn(conn), _specs(specs)
    pull_from = _source(source, None)
    if not callable(getattr(pull_from, "show_sql", None)):
        raise GaSyncError("the Data API has no SQL: give source='export:PATH' or "
                          "'bigquery:PROJECT' to see the SQL of the export query")
    comparing = compare is not None
    choose = period_chooser(start, end, last_week=last_week, last_days=last_days,
                            compare=comparing)
    out = SqlByProperty()
    for t in targets_of(specs):
        try:
            period = _checked_period(choose, read_property(conn, t.property), comparing)
            periods = [period, period.previous()] if comparing else [period]
            goals = pull_from.show_sql(conn, t.spec, t.property, periods).rstrip().rstrip(";")
            text = f"{SQL_GOALS}\n{goals}"
            if wanted(t.spec):
                journeys = journey_sql(pull_from, conn, t.spec, t.property, periods).sql
                text += f";\n\n{SQL_JOURNEYS}\n{journeys.rstrip().rstrip(';')}"
        except GaSyncError as e:
            out.errors[t.property] = e
            continue
        out[t.property] = text
    if out.errors and not out:
        raise GaSyncError("no SQL could be produced: " + "; ".join(
            str(e) if t in str(e) else f"{t}: {e}" for t, e in out.errors.items()))
    return out


#: The comment headers of `report_sql`'s queries.
SQL_GOALS, SQL_JOURNEYS = "-- goals", "-- journeys"


class SqlByProperty(dict):  # type: ignore[type-arg]
    """`report_sql`'s answer: {property: SQL}, and `errors` {property: GaSyncError} of the
    properties left out."""

    def __init__(self) -> None:
        super().__init__()
        self.errors: dict[str, GaSyncError] = {}


def targets_of(specs: Sequence[Spec]) -> list[Any]:
    from ga_sync.sync import targets
    return targets(specs)


# --------------------------------------------------------------------------- audit, history


def audit(conn: Connection, specs: Sequence[Spec], days: int = 28, *,
          properties: Iterable[str] = (), concurrency: int | None = None,
          today: date | None = None, on_progress: Progress | None = None) -> AuditResult:
    """Misconfigured goals in every property of `specs` (and `properties`, audited without a
    spec). A property GA refuses is that property's `no-access` or `audit-failed` finding."""
    from ga_sync.audit.run import audit_all, audit_targets
    from ga_sync.model import property_name
    from ga_sync.sync import default_concurrency
    conn, specs = _conn(conn), _specs(specs)
    if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= MAX_AUDIT_DAYS:
        raise GaSyncError(f"days must be a whole number from 1 to {MAX_AUDIT_DAYS}, not {days!r}")
    if isinstance(properties, (str, int)):
        properties = [properties]
    names = []
    for p in properties:
        try:
            names.append(property_name(p))
        except ValueError:
            raise GaSyncError(f"{str(p)[:40]!r} is not a GA4 property id: use the numeric id, "
                              "e.g. 123456789") from None
    properties = names
    workers = _workers(concurrency) or default_concurrency(
        "audit", len(audit_targets(list(specs), properties)))
    conn.fit_pool(workers)
    return audit_all(conn, list(specs), properties=properties, days=days,
                     concurrency=workers, today=today,
                     on_done=_advance(on_progress))


def history(specs: Sequence[Spec], weeks: int = 12, store: str | os.PathLike[str] | None = None,
            *, today: date | None = None, wait: float = 10.0) -> pd.DataFrame:
    """Weekly macro/micro conversions, rates and value from the history store; no GA call.

    One row per property x ISO week (oldest first), with the client; tiers and rate basis
    from the current specs. Raises `StoreError` when there is no store or it cannot be read.
    """
    import pandas as pd

    from ga_sync.history import WEEKLY_COLUMNS, Store
    specs = _specs(specs)
    if not (store is None or isinstance(store, (str, os.PathLike))):
        raise GaSyncError(f"store must be a path or None (the default store), not "
                          f"{type(store).__name__}")
    path = Path(store) if store is not None else settings.store_path()
    if not path.exists():
        from ga_sync.errors import StoreError
        raise StoreError(f"no history store at {path}: run 'ga-sync report' first (it keeps "
                         "every pull there), or name another store")
    if not isinstance(weeks, int) or isinstance(weeks, bool) or weeks < 1:
        raise GaSyncError(f"weeks must be a whole number of at least 1, not {weeks!r}")
    columns = ["property", "client"] + [c for c in WEEKLY_COLUMNS if c != "property"]
    if not specs:
        return pd.DataFrame(columns=columns)
    # Read-only: no write lock taken, so a report may save meanwhile; DuckDB refuses to open
    # while a report holds the write lock, which lasts only while it saves: retry briefly.
    with Store(path, read_only=True, wait=wait) as db:
        return db.weekly_many(list(specs), weeks, today=today)[columns]


# --------------------------------------------------------------------------- onboarding


def properties(conn: Connection) -> list[Any]:
    """Every GA4 property the credentials can see (all accounts, all pages): `PropertySummary`
    objects with property, display_name, account, account_name, property_type."""
    from ga_sync.admin import list_properties
    return list_properties(conn)


def dump(conn: Connection, property: str, *, client: str | None = None) -> Any:
    """A goal spec (YAML text, `.text`) from a live property's key events, for onboarding.

    A key event made by an event create rule on every web data stream (the same rule on each)
    becomes a `page:` or `from:` goal, one logged by an audience trigger ga-sync can express a
    `session:` goal (see `machinery_origins`), so the spec plans no changes. Key events a spec
    cannot hold are in `.left_out` (they stay unmanaged). Raises `GaSyncError` when the
    property has no key events a spec can hold.
    """
    from ga_sync.admin import read_key_events, read_property
    from ga_sync.dump import dump_property
    from ga_sync.machinery import read_machinery
    from ga_sync.model import property_name
    try:
        name = property_name(property)
    except ValueError:
        raise GaSyncError(f"{property!r} is not a GA4 property id: use the numeric id, e.g. "
                          "123456789") from None
    info = read_property(conn, name)
    key_events = read_key_events(conn, name)
    if not key_events:
        raise GaSyncError(f"{name} has no key events, so there is nothing to dump; write its "
                          "spec by hand (see docs/spec.md)")
    rules, sessions = machinery_origins(read_machinery(conn, name),
                                        {k.event for k in key_events})
    from dataclasses import replace
    dumped = dump_property(client=client or info.display_name or name, properties=[name],
                           currency=info.currency, goals=key_events, rules=rules,
                           sessions=sessions)
    if len(dumped.left_out) == len(key_events):
        raise GaSyncError(f"every key event of {name} was left out ("
                          + "; ".join(str(x) for x in dumped.left_out[:5])
                          + "), so the spec would have no goals; write it by hand "
                          "(see docs/spec.md)")
    return replace(dumped, key_events=len(key_events))


def machinery_origins(machinery: Any, events: Iterable[str]) -> tuple[dict, dict]:
    """The origins a dumped spec can give key events, from a property's rules and audiences:
    (event -> EventRule, event -> SessionRule). An event gets a rule only when every web
    stream has a rule making it and all those rules are the same expressible one; a session
    only when exactly one audience logs it and ga-sync can express it. Anything else stays
    out, so its goal is dumped as an event the site sends and the plan leaves its machinery
    alone (unmanaged)."""
    from ga_sync.model import EventRule, SessionRule
    wanted = set(events)
    web = [s.name for s in machinery.web_streams]
    rules: dict[str, EventRule] = {}
    for event in sorted(wanted):
        forms = {s: {r.form for r in machinery.rules if r.stream == s and r.event == event}
                 for s in web}
        every = [f for f in forms.values()]
        if web and all(len(f) == 1 for f in every):
            distinct = set().union(*every)
            (only,) = distinct if len(distinct) == 1 else (None,)
            if isinstance(only, EventRule):
                rules[event] = only
    sessions: dict[str, SessionRule] = {}
    for event in sorted(wanted - set(rules)):
        logging = [a for a in machinery.audiences if a.event == event]
        if len(logging) == 1 and isinstance(logging[0].form, SessionRule):
            sessions[event] = logging[0].form
    return rules, sessions


def _error_json(error: Any) -> dict[str, Any]:
    return {"property": getattr(error, "property", None), "client": getattr(error, "client", None),
            "message": getattr(error, "message", None) or str(error)}


__all__ = ["ApplyResult", "ReportRun", "apply", "audit", "check_apply", "connect", "dump",
           "history", "load_specs", "period_chooser", "plan", "properties", "report", "validate"]
