"""The docs tell the truth: every command and option the README names exists, and the JSON
contracts it shows have the keys the tool really writes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ga_sync.cli import app

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
DOCS = README + "".join(p.read_text() for p in (ROOT / "docs").glob("*.md"))


def _code(text: str) -> list[str]:
    """What the docs show as commands: fenced shell blocks and `inline code`, line by line."""
    blocks = re.findall(r"```(?:sh|bash)?\n(.*?)```", text, re.S)
    spans = re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", text, flags=re.S))
    lines = [line for b in blocks for line in b.splitlines()]
    return [x for x in lines + spans if re.match(r"\s*(\S*/)?ga-sync ", x) or "&& ga-sync" in x
            or "bin/ga-sync " in x]


CODE = _code(DOCS)


def _commands() -> set[str]:
    return {m.group(1) for line in CODE
            for m in re.finditer(r"\bga-sync (?:-v )?([a-z]+)\b", line)}


def _help(command: str) -> str:
    r = CliRunner().invoke(app, [command, "--help"], catch_exceptions=False)
    assert r.exit_code == 0, command
    return r.stdout


@pytest.mark.parametrize("command", sorted(_commands()))
def test_every_documented_command_exists_with_examples(command):
    assert "Example" in _help(command)


def test_every_documented_option_exists():
    """`ga-sync CMD ... --option` in the docs: the command's --help lists the option."""
    missing = []
    for line in CODE:
        for m in re.finditer(r"\bga-sync (?:-v )?([a-z]+)((?: [^`|\n]*)?)", line):
            command, rest = m.group(1), m.group(2)
            rest = rest.split("&&")[0]  # a second command on the same line is checked on its own
            text = _help(command)
            for option in re.findall(r"(?<![\w-])(--[a-z][a-z-]+)", rest):
                if option not in text:
                    missing.append(f"{command} {option}")
    assert sorted(set(missing)) == []


def _json_blocks(text: str) -> list[dict]:
    return [json.loads(b) for b in re.findall(r"```json\n(.*?)```", text, re.S)]


def _shape(value):
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(value[0])] if value else []
    return None


def test_readme_json_contracts_match_what_the_tool_writes():
    from datetime import date

    from ga_sync.audit import AuditResult  # noqa: F401  (import check: the module exists)
    from ga_sync.model import KeyEventSettings, KeyEventState, Plan
    from ga_sync.plan import diff
    from ga_sync.periods import Period
    from ga_sync.report import ReportResult, TierResult, GoalResult

    blocks = {tuple(sorted(b)): b for b in _json_blocks(README)}
    plan_doc = blocks[("properties", "summary", "version")]
    p = diff("properties/1", "c", {"sign_up": KeyEventSettings("once_per_session", 12.5, "USD")},
             [KeyEventState("test_event_1", KeyEventSettings("once_per_event"))])
    assert _shape(Plan((p,)).to_json()) == _shape(plan_doc)

    report_doc = blocks[("reports", "version")]["reports"][0]
    tier = TierResult(1, 0.1, 0.1, 1.0)
    r = ReportResult("properties/1", "c", Period(date(2026, 11, 9), date(2026, 11, 15)), "USD",
                     "sessions", 10, 8, [GoalResult("purchase", "macro", 1, 0.1, 1.0,
                                                    "once_per_event")], tier, tier, 2.0, 0.2)
    assert _shape(r.to_json()) == _shape(report_doc)

    audit_doc = blocks[("findings", "summary", "version")]
    assert set(audit_doc["findings"][0]) == {"property", "client", "check", "severity",
                                             "subject", "message", "fix"}
    assert set(audit_doc["summary"]) == {"properties", "error", "warning", "info"}
