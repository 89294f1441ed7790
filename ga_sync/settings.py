"""Where ga-sync keeps its files and which `GA_SYNC_*` variables it reads: all in one place.

The library reads the environment only through `from_env`-style helpers here, and only when a
caller did not pass the value itself; it never writes to the environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

CREDENTIALS_ENV = "GA_SYNC_CREDENTIALS"
ADMIN_ENDPOINT_ENV = "GA_SYNC_ADMIN_ENDPOINT"
DATA_ENDPOINT_ENV = "GA_SYNC_DATA_ENDPOINT"
JOURNAL_ENV = "GA_SYNC_JOURNAL"
STORE_ENV = "GA_SYNC_STORE"
EXTENDS_PATH_ENV = "GA_SYNC_EXTENDS_PATH"
ADMIN_REQUESTS_ENV = "GA_SYNC_ADMIN_REQUESTS_PER_MINUTE"
ADMIN_WRITES_ENV = "GA_SYNC_ADMIN_WRITES_PER_MINUTE"
QUOTA_WINDOW_ENV = "GA_SYNC_QUOTA_WINDOW"
QUOTA_LEDGER_ENV = "GA_SYNC_QUOTA_LEDGER"

#: Every variable ga-sync reads, with what it means (the README's table is checked against it).
VARIABLES = {
    CREDENTIALS_ENV: "path to a service-account or authorized-user JSON key, or `anonymous`",
    ADMIN_ENDPOINT_ENV: "Admin API base URL (the sandbox's, say)",
    DATA_ENDPOINT_ENV: "Data API base URL",
    JOURNAL_ENV: "where apply appends its journal",
    STORE_ENV: "the history store (DuckDB file)",
    EXTENDS_PATH_ENV: "extra folders `extends:` may reach, separated by `" + os.pathsep + "`",
    ADMIN_REQUESTS_ENV: "Admin API requests per minute to stay under",
    ADMIN_WRITES_ENV: "Admin API writes per minute to stay under",
    QUOTA_WINDOW_ENV: "length of the quota window in seconds",
    QUOTA_LEDGER_ENV: "the quota ledger shared by ga-sync processes (a file), or `off`",
}


def _env(env: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if env is None else env


def data_dir() -> Path:
    """The per-user data folder (journal, history store)."""
    from platformdirs import user_data_dir
    return Path(user_data_dir("ga-sync"))


def journal_path(env: Mapping[str, str] | None = None) -> Path:
    """$GA_SYNC_JOURNAL, else journal.jsonl in the user data folder."""
    value = _env(env).get(JOURNAL_ENV)
    return Path(value).expanduser() if value else data_dir() / "journal.jsonl"


def store_path(env: Mapping[str, str] | None = None) -> Path:
    """$GA_SYNC_STORE, else history.duckdb in the user data folder."""
    value = _env(env).get(STORE_ENV)
    return Path(value).expanduser() if value else data_dir() / "history.duckdb"


def extends_path(env: Mapping[str, str] | None = None) -> list[Path]:
    """The folders $GA_SYNC_EXTENDS_PATH names, beyond the spec tree, that `extends` may reach."""
    value = _env(env).get(EXTENDS_PATH_ENV, "")
    return [Path(p).expanduser() for p in value.split(os.pathsep) if p.strip()]
