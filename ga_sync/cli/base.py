"""What every command shares: the typer app, error handling, output helpers, progress.

Only the cli package talks to the terminal. Exit codes: 0 success, 1 error (or refused, or a
property failed, or an audit finding at --fail-on), 2 changes pending with
`plan --detailed-exitcode`, 130 interrupted.
"""

from __future__ import annotations

import logging
import sys
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

try:  # typer vendors click since 0.26
    from typer._click.exceptions import UsageError
except ImportError:  # pragma: no cover - older typer on the click package
    from click.exceptions import UsageError  # type: ignore[no-redef]

from ga_sync import __version__
from ga_sync.errors import Cancelled, GaSyncError

if TYPE_CHECKING:
    from ga_sync.model import Spec

class Group(typer.core.TyperGroup):
    """Turns every GaSyncError into its message on stderr and exit code 1; bugs keep tracebacks.

    Usage errors (a bad option or value) exit 1 too, not click's 2: exit 2 means "changes
    pending" for `plan --detailed-exitcode`, and a CI job must not read a typo as that.
    """

    def make_context(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().make_context(*args, **kwargs)
        except UsageError as e:
            e.exit_code = 1
            raise

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except UsageError as e:
            e.exit_code = 1
            raise
        except Cancelled:  # the library's word for an interrupted run: not an error
            _interrupted(ctx)
        except GaSyncError as error:
            err(f"Error: {error}")
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            _interrupted(ctx)


def _interrupted(ctx: Any) -> None:
    """Ctrl-C or SIGTERM: say what state things are in, exit 130. Properties not done are not
    listed as failed (run_each reports nothing after the interrupt)."""
    if ctx.invoked_subcommand == "apply":
        err("Interrupted: no further change was started. Run the same command again to "
            "finish; the journal shows what was done.")
    else:
        err("Interrupted.")
    raise typer.Exit(130) from None


app = typer.Typer(
    name="ga-sync",
    cls=Group,
    help="Google Analytics 4 goals as code: sync key events from YAML goal specs, report macro "
         "and micro conversions with their economic value, and audit properties.\n\n"
         "Try it without a GA account: ga-sync demo",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

VERBOSE = False  # set by --verbose

SPECS_ARG = typer.Argument(..., metavar="SPEC...", help="Goal spec files or directories of them.", show_default=False)


class PlanFormat(str, Enum):
    text = "text"
    json = "json"
    markdown = "markdown"


def err(message: str) -> None:
    typer.secho(message, err=True, fg=typer.colors.RED if sys.stderr.isatty() else None)


def warn(message: str) -> None:
    typer.secho(f"warning: {message}", err=True,
                fg=typer.colors.YELLOW if sys.stderr.isatty() else None)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ga-sync {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log retries and, with report, the quota GA says is left. Goes before the command: ga-sync -v report ..."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Show the version and exit."),
) -> None:
    global VERBOSE
    VERBOSE = verbose
    # Only ga-sync's own loggers get chattier with -v: third-party debug logs may carry headers.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    logging.getLogger("ga_sync").setLevel(logging.INFO if verbose else logging.WARNING)


class Specs(list):  # type: ignore[type-arg]
    """The valid specs of a load; `errors` are the problems of the invalid ones (printed)."""

    errors: list[Any]


def load(paths: list[Path]) -> Specs:
    """Every valid spec; one invalid spec does not block the others.

    Every problem goes to stderr with its file:line:column. With no valid spec at all this is a
    GaSyncError (exit 1 before anything is sent to GA); otherwise the command runs on the
    valid specs and ends with `exit_if_invalid` (exit 1).
    """
    from ga_sync import api
    from ga_sync.settings import extends_path
    valid, problems = api.validate(paths, bases=extends_path())
    for p in problems:
        typer.echo(str(p), err=True)
    specs = Specs(valid)
    specs.errors = [p for p in problems if p.severity == "error"]
    if specs.errors:
        files = len({p.file for p in specs.errors})
        what = f"{files} spec file{'s' if files != 1 else ''}"
        if not specs:
            raise GaSyncError(f"no valid goal spec: {len(specs.errors)} error"
                              f"{'s' if len(specs.errors) != 1 else ''} in {what} (above); "
                              "nothing was sent to GA. Fix them and check with 'ga-sync validate'.")
        err(f"error: {what} invalid (above), skipped; going on with the other {len(specs)}. "
            "The command exits 1 at the end.")
    return specs


def exit_if_invalid(specs: list[Any]) -> None:
    """Exit 1 when `load` skipped invalid specs: the run was not complete."""
    errors = getattr(specs, "errors", None)
    if errors:
        files = len({p.file for p in errors})
        err(f"error: {files} spec file{'s' if files != 1 else ''} invalid and skipped (see "
            "the problems above); fix and check with 'ga-sync validate'.")
        raise typer.Exit(1)


def check_output(path: Path, *, flag: str = "-o", overwrite: bool = True) -> None:
    """Refuse an output file that cannot be written, before anything is pulled.

    A folder, a missing folder, an existing file without --force (`overwrite` False), a folder
    ga-sync may not write in: each an OutputError naming the path and the fix. The check
    writes and removes a temporary file next to `path`, the way the real write will.
    """
    import os
    import tempfile

    from ga_sync.errors import OutputError
    if path.is_dir():
        raise OutputError(f"{flag} {path} is a folder: give a file name in it, e.g. "
                          f"{flag} {path / 'report.html'}")
    folder = path.parent
    if not folder.exists():
        raise OutputError(f"{flag} {path}: the folder {folder} does not exist. Create it "
                          f"(mkdir -p {folder}) or write somewhere else.")
    if not folder.is_dir():
        raise OutputError(f"{flag} {path}: {folder} is not a folder.")
    if path.exists() and not overwrite:
        raise OutputError(f"{flag} {path} already exists: pass --force to overwrite it, or "
                          "choose another file name.")
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".ga-sync-", suffix=".tmp")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise OutputError(f"{flag} {path}: cannot write in the folder {folder} "
                          f"({e.strerror or e}). Check its permissions, or write somewhere "
                          "else.") from None


def write_output(path: Path, text: str, *, lost: str = "") -> None:
    """Write `text` to `path` atomically: a temporary file in the same folder, then os.replace.

    A full disk or any other failure leaves no half-written file (an existing file keeps its
    old content) and is an OutputError; `lost` says what the user still has (e.g. the pull
    kept in the history store).
    """
    import os
    import tempfile

    from ga_sync.errors import OutputError
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        try:
            mode = os.stat(path).st_mode & 0o777
        except OSError:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(tmp, mode)
        os.replace(tmp, path)
        tmp = None
    except OSError as e:
        raise OutputError(f"could not write {path}: {e.strerror or e}; nothing was written "
                          f"there.{' ' + lost if lost else ''}") from None
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def connect(write: bool = False) -> Any:
    from ga_sync import api
    conn = api.connect(write=write)
    for w in conn.warnings:
        warn(w)
    return conn


class Progress:
    """Properties done / total with an ETA on a terminal; plain lines otherwise."""

    def __init__(self, total: int, label: str):
        self.total, self.label, self.done = total, label, 0
        self._bar: Any = None
        self._task: Any = None
        if total > 1 and sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                       TimeRemainingColumn)
            self._bar = Progress(TextColumn("{task.description}"), BarColumn(),
                                 MofNCompleteColumn(), TimeRemainingColumn(),
                                 console=Console(stderr=True), transient=True)
            self._task = self._bar.add_task(label, total=total)

    def __enter__(self) -> "Progress":
        if self._bar:
            self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar:
            self._bar.stop()

    def advance(self, what: str, failed: bool = False) -> None:
        self.done += 1
        if self._bar:
            self._bar.advance(self._task)
        elif self.total > 1:
            typer.echo(f"[{self.done}/{self.total}] {self.label} {what}"
                       + (" FAILED" if failed else ""), err=True)


def report_failures(failures: list[Any]) -> None:
    for f in failures:
        err(f"error: {f.property} ({f.client}): {f.message}")



def property_hint(value: str) -> str:
    if value.upper().startswith("G-"):
        return (f"{value} is a measurement id, not a property id. The numeric property id is in "
                "GA4 under Admin → Property settings → Property details.")
    return f"{value!r} is not a GA4 property id: use the numeric id, e.g. 123456789."



def interrupt_on_sigterm() -> None:
    """SIGTERM (kill, a stopped cron job or container) stops like Ctrl-C: nothing half-journaled.

    The first signal raises KeyboardInterrupt in the main thread (which only waits while
    workers call GA, so it is seen at once); a second SIGINT or SIGTERM while that is being
    handled ends the process on the spot with exit 130. SIGINT left ignored by the parent
    (nohup, a background job) stays ignored.
    """
    import os
    import signal

    seen: list[int] = []

    def handler(signum: int, frame: Any) -> None:
        seen.append(signum)
        if len(seen) > 1:
            os._exit(130)
        raise KeyboardInterrupt

    try:
        signal.signal(signal.SIGTERM, handler)
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread (embedded use): leave signals alone
        pass


