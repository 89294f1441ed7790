"""The commands print exactly what they printed before: report, audit, history and the demo,
byte for byte, on a fixed day against the seeded sandbox, compared with tests/golden/.

The clock is frozen (time-machine, no ticking) so "today", last week and the sandbox's traffic
are the same on every run. Paths and the sandbox's port are normalized. After an intended
change of output, regenerate with `GA_SYNC_UPDATE_GOLDEN=1 python -m pytest tests/test_golden.py`
and review the diff.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path

import pytest
import time_machine
from typer.testing import CliRunner

from ga_sync.cli import app
from ga_sync.sandbox.seed import seed_properties
from ga_sync.sandbox.server import SandboxServer
from ga_sync.sandbox.state import SandboxState
from ga_sync.spec import load_specs

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "golden"
NOW = dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.timezone.utc)
UPDATE = os.environ.get("GA_SYNC_UPDATE_GOLDEN") == "1"


def _normalize(text: str, *dirs: Path) -> str:
    for d in dirs:
        text = text.replace(str(d), "<DIR>")
    text = text.replace(str(ROOT), "<REPO>")  # the checkout's own path (the demo's specs)
    return re.sub(r"http://127\.0\.0\.1:\d+", "http://127.0.0.1:<PORT>", text)


def _check(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return
    assert path.exists(), f"no golden file {path}: run with GA_SYNC_UPDATE_GOLDEN=1"
    expected = path.read_text(encoding="utf-8")
    if text != expected:
        import difflib
        diff = "".join(list(difflib.unified_diff(expected.splitlines(True), text.splitlines(True),
                                                 "golden", "now"))[:60])
        raise AssertionError(f"{name} differs from {path}:\n{diff}")


@pytest.fixture
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield


def _invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_demo_prints_what_it_printed_before(frozen: None, tmp_path: Path) -> None:
    code, out, err = _invoke("demo", "--dir", str(tmp_path / "demo"))
    assert code == 0, err
    _check("demo.txt", _normalize(out, tmp_path))


def test_report_audit_history_print_what_they_printed_before(
        frozen: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = SandboxState()
    seed_properties(state, load_specs([ROOT / "goal_specs"]))
    server = SandboxServer(state).start()
    try:
        monkeypatch.setenv("GA_SYNC_ADMIN_ENDPOINT", server.url)
        monkeypatch.setenv("GA_SYNC_DATA_ENDPOINT", server.url)
        monkeypatch.setenv("GA_SYNC_CREDENTIALS", "anonymous")
        monkeypatch.chdir(ROOT)
        store = str(tmp_path / "history.duckdb")
        runs = {
            "report-table.txt": ("report", "goal_specs/", "--start", "2026-10-19", "--end",
                                 "2026-11-15", "--compare", "previous", "--store", store),
            "report-json.txt": ("report", "goal_specs/", "--last-week", "--format", "json",
                                "--store", store),
            "report-csv.txt": ("report", "goal_specs/", "--last-days", "14", "--format", "csv",
                               "--no-store"),
            "audit-text.txt": ("audit", "goal_specs/", "--fail-on", "never"),
            "audit-json.txt": ("audit", "goal_specs/", "--format", "json", "--fail-on", "never"),
            "history-table.txt": ("history", "goal_specs/", "--weeks", "6", "--store", store),
            "history-json.txt": ("history", "goal_specs/", "--weeks", "6", "--format", "json",
                                 "--store", store),
        }
        for name, args in runs.items():
            code, out, err = _invoke(*args)
            assert code == 0, f"{args}: {err}"
            _check(name, _normalize(out, tmp_path))
    finally:
        server.stop()
