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
from ga_sync.errors import GaSyncError

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
        except GaSyncError as error:
            err(f"Error: {error}")
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
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


def load(paths: list[Path]) -> list["Spec"]:
    from ga_sync.spec import load_specs
    specs = load_specs(paths)
    for s in specs:
        for w in s.warnings:
            typer.echo(w, err=True)
    return specs


def connect(write: bool = False) -> Any:
    from ga_sync.clients import connect as make_connection
    conn = make_connection(write=write)
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
    """SIGTERM (kill, a stopped cron job or container) stops like Ctrl-C: nothing half-journaled."""
    import signal

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (embedded use): leave signals alone
        pass


