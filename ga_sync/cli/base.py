"""What every command shares: the typer app, error handling, output helpers, progress.

Only the cli package talks to the terminal. Exit codes: 0 success, 1 error (or refused, or a
property failed, or an audit finding at --fail-on), 2 changes pending with
`plan --detailed-exitcode`, 130 interrupted.
"""

from __future__ import annotations

import logging
import sys
import threading
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
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    quiet(verbose)


THIRD_PARTY_LOGGERS = ("urllib3", "google", "requests")
_PROTO_WARNINGS = r"(proto|google\.protobuf)(\.|$)"


def quiet(verbose: bool) -> None:
    """What reaches stderr besides the command's own lines.

    Without -v: third-party loggers only at ERROR (urllib3's "Retrying ..." lines are the
    retries ga-sync makes and reports itself), proto-plus's and protobuf's UserWarnings
    ("Unrecognized ... enum value": GA added a value this client library does not know yet)
    hidden. (ga-sync logs what its errors already say, such as an endpoint given up on, at INFO.)
    With -v: ga-sync logs at INFO (retries, quota), third parties at WARNING, warnings shown.
    Third-party loggers never go below WARNING: their debug logs may carry headers.
    """
    import warnings
    logging.getLogger("ga_sync").setLevel(logging.INFO if verbose else logging.WARNING)
    for name in THIRD_PARTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING if verbose else logging.ERROR)
    warnings.filterwarnings("default" if verbose else "ignore", category=UserWarning,
                            module=_PROTO_WARNINGS)


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


def _resolve_output(path: Path) -> tuple[Path, bool]:
    """Where `path` leads: (the file its symlinks end at, whether to write through).

    Write through (open the path and write, no temporary file, no rename) when the path is a
    process's open descriptor (/dev/stdout, /dev/fd/1: the link leads into /proc/PID/fd, and
    renaming over it would replace /dev/stdout itself) or when what it leads to exists and is
    not a regular file (a device, a FIFO, a socket). A regular file or a missing one is
    written atomically at the end of the links, so a symlink keeps pointing at it.
    """
    import os
    import re
    import stat

    p = Path(os.path.abspath(path))
    for _ in range(40):  # the kernel's own limit on links in a row
        folder = os.path.realpath(p.parent)
        if re.fullmatch(r"/proc/[^/]+(/task/[^/]+)?/fd", folder):
            return p, True
        p = Path(folder) / p.name
        if not p.is_symlink():
            break
        p = p.parent / os.readlink(p)  # relative to the link's folder; resolved next round
    else:
        return Path(os.path.realpath(path)), False  # a loop of links: the write names the error
    try:
        mode = os.stat(p).st_mode
    except OSError:
        return p, False
    return p, not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


def _kind(path: Path) -> str:
    """What a non-regular file is, in words: 'a FIFO', 'a socket', 'a device'."""
    import os
    import stat
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return "a file"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "a file"


def check_output(path: Path, *, flag: str = "-o", overwrite: bool = True) -> None:
    """Refuse an output file that cannot be written, before anything is pulled.

    A folder, a missing folder, an existing file without --force (`overwrite` False), a folder
    ga-sync may not write in: each an OutputError naming the path and the fix. For a regular
    or missing file (at the end of its symlinks) the check writes and removes a temporary
    file next to it, the way the real write will. A device, FIFO or socket (or /dev/stdout)
    is written through, not replaced: it is only checked for write permission (opening a
    FIFO to probe it would end its reader's input), and --force is not needed for it.
    """
    import os
    import tempfile

    from ga_sync.errors import OutputError
    if path.is_dir():
        raise OutputError(f"{flag} {path} is a folder: give a file name in it, e.g. "
                          f"{flag} {path / 'report.html'}")
    target, through = _resolve_output(path)
    if through:
        if _kind(target) == "a socket":
            raise OutputError(f"{flag} {path} is a socket: ga-sync cannot write to it. Give "
                              "a file name, or leave out the option to write to standard "
                              "output.")
        if not os.access(target, os.W_OK):
            raise OutputError(f"{flag} {path}: no permission to write to it. Write "
                              "somewhere else.")
        return
    shown = path if target == Path(os.path.abspath(path)) else f"{path} (-> {target})"
    folder = target.parent
    if not folder.exists():
        raise OutputError(f"{flag} {shown}: the folder {folder} does not exist. Create it "
                          f"(mkdir -p {folder}) or write somewhere else.")
    if not folder.is_dir():
        raise OutputError(f"{flag} {shown}: {folder} is not a folder.")
    if target.exists() and not overwrite:
        raise OutputError(f"{flag} {path} already exists: pass --force to overwrite it, or "
                          "choose another file name.")
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".ga-sync-", suffix=".tmp")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise OutputError(f"{flag} {shown}: cannot write in the folder {folder} "
                          f"({e.strerror or e}). Check its permissions, or write somewhere "
                          "else.") from None


def write_output(path: Path, text: str, *, lost: str = "") -> None:
    """Write `text` to `path`: atomically for a file, straight through for a device or FIFO.

    A regular file (or a missing one) at the end of `path`'s symlinks is written atomically:
    a temporary file in its folder, then os.replace, so a symlink keeps pointing at it. A full
    disk or any other failure leaves no half-written file (an existing file keeps its old
    content). A device, FIFO or socket, and /dev/stdout, are opened and written, never
    replaced (see `_resolve_output`); a FIFO nobody reads is refused rather than waited on.
    Every failure is an OutputError; `lost` says what the user still has (e.g. the pull kept
    in the history store).
    """
    import errno
    import os
    import tempfile

    from ga_sync.errors import OutputError
    more = f" {lost}" if lost else ""
    target, through = _resolve_output(path)
    if through:
        try:
            _write_through(path, target, text)
        except OSError as e:
            if e.errno == errno.ENXIO and _kind(target).endswith("(FIFO)"):
                raise OutputError(f"could not write {path}: it is a named pipe (FIFO) and no "
                                  "process is reading it. Start the reader first (e.g. cat "
                                  f"{path}) and run again.{more}") from None
            if e.errno == errno.ENXIO and _kind(target) == "a socket":
                raise OutputError(f"could not write {path}: it is a socket, which ga-sync "
                                  f"cannot write to.{more}") from None
            raise OutputError(f"could not write {path}: {e.strerror or e}.{more}") from None
        return
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        try:
            mode = os.stat(target).st_mode & 0o777
        except OSError:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(tmp, mode)
        os.replace(tmp, target)
        tmp = None
    except OSError as e:
        raise OutputError(f"could not write {path}: {e.strerror or e}; nothing was written "
                          f"there.{more}") from None
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def _write_through(path: Path, target: Path, text: str) -> None:
    """Open and write: no O_CREAT (it exists), no O_TRUNC (a device or pipe has nothing to
    cut, and /dev/stdout redirected with >> must keep what is there: O_APPEND). O_NONBLOCK
    makes opening a FIFO nobody reads fail (ENXIO) instead of waiting forever; it is cleared
    once open, so a full pipe waits for its reader instead of failing."""
    import os

    nonblock = getattr(os, "O_NONBLOCK", 0)  # POSIX; Windows has no FIFOs to wait on
    sys.stdout.flush()  # anything already printed goes first when this is standard output
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | nonblock | getattr(os, "O_NOCTTY", 0))
    try:
        if nonblock:
            import fcntl
            fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~nonblock)
        data = text.encode("utf-8")
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


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
        self._lock = threading.Lock()
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
        """Called from the worker threads: counting and printing under one lock, so the
        lines come out numbered in order."""
        with self._lock:
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


