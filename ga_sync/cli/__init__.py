"""The `ga-sync` command line: parse arguments, call one library function, render, exit.

One module per group of commands; importing them registers the commands on `app`, in the
order `--help` lists them.
"""

from __future__ import annotations

import sys

from ga_sync.cli import sync as _sync  # noqa: F401  validate, plan, apply, dump, properties
from ga_sync.cli import report as _report  # noqa: F401  report, history
from ga_sync.cli import audit as _audit  # noqa: F401  audit
from ga_sync.cli import sandbox as _sandbox  # noqa: F401  sandbox, demo
from ga_sync.cli import schema as _schema  # noqa: F401  schema
from ga_sync.cli.base import app, err, interrupt_on_sigterm

__all__ = ["app", "main"]


def main() -> None:
    interrupt_on_sigterm()
    try:
        app()
    except KeyboardInterrupt:  # outside a command (e.g. while loading)
        err("Interrupted.")
        sys.exit(130)
