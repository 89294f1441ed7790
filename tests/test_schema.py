"""The JSON Schema of goal specs (ga_sync/spec.schema.json) agrees with the loader.

Editors' YAML language servers check specs against the schema as people type, so it must
accept every spec ga-sync accepts and reject what it can see is wrong. Each bad-*.yaml fixture
is either rejected by the schema or listed in CANNOT_EXPRESS with the reason; a new fixture in
neither group fails the suite until it is classified.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError
from typer.testing import CliRunner

from ga_sync.cli import app
from ga_sync.currencies import CURRENCY_CODES
from ga_sync.spec import validate_paths

ROOT = Path(__file__).resolve().parent.parent
SPECS = Path(__file__).resolve().parent / "specs"
EXAMPLES = ROOT / "goal_specs"
SCHEMA_PATH = ROOT / "ga_sync" / "spec.schema.json"
SCHEMA = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
VALIDATOR = Draft202012Validator(SCHEMA)
MODELINE = "# yaml-language-server: $schema=../ga_sync/spec.schema.json"

# Bad fixtures whose problem a JSON Schema cannot see, and why. Each must still pass the schema
# (or not be YAML at all), so this list cannot silently go stale.
CANNOT_EXPRESS = {
    # Characters by Unicode category, and text that is only spaces: the loader's rules.
    "bad-kind-value-hidden": "control and invisible format characters in a condition value",
    "bad-kind-value-blank": "a condition value of spaces only",
    # Two goals compared with each other (after normalizing case): no JSON Schema keyword.
    "bad-duplicate-event": "the same event in two goals (uniqueItems compares whole goals)",
    "bad-duplicate-event-case": "events that differ only in letter case",
    # Two ids compared after normalizing `123` / `"properties/123"`.
    "bad-property-twice": "one property written in two forms",
    # Rules that need another file: a schema sees one document.
    "bad-extends-case": "a goal differing only in case from one in the base file",
    "bad-extends-circular-a": "a loop of extends through another file",
    "bad-extends-circular-b": "a loop of extends through another file",
    "bad-extends-missing": "the base file does not exist",
    "bad-extends-not-mapping": "the base file is not a mapping",
    "bad-extends-outside": "the base lies outside the spec folder (depends on where the file "
                           "is, and on GA_SYNC_EXTENDS_PATH)",
    # How a number was written: YAML reads `0x1F`, `+123` and (ruamel) `100_000_085` as plain
    # integers, so the schema sees 31, 123, 100000085. (An editor's strict YAML 1.2 parser reads
    # `100_000_085` as text, which the schema does refuse.)
    "bad-property-hex": "a property id written in hexadecimal",
    "bad-property-sign": "a property id written with a `+` sign",
    "bad-property-underscore": "a property id written with `_` separators",
    # JSON has no NaN, and every comparison with NaN is false, so minimum/maximum pass it.
    "bad-value-nan": "NaN is not a JSON value; minimum and maximum cannot refuse it",
    # Not YAML: the editor's YAML parser reports these before any schema applies.
    "bad-not-yaml": "YAML syntax error",
    "bad-duplicate-key": "a key twice in one mapping (a YAML error)",
    # Goal kinds (tests/specs/kinds): RE2 syntax is no JSON Schema pattern of a pattern.
    "bad-kind-regex-lookahead": "a regex RE2 refuses (lookahead)",
    "bad-kind-regex-backreference": "a regex RE2 refuses (backreference)",
    "bad-kind-regex-unclosed": "a regex that does not parse",
    # Two values of one goal, or two goals, compared with each other.
    "bad-kind-from-own-event": "`from` equal to the goal's own event",
    "bad-kind-from-made-event": "`from` naming the event another goal's rule makes",
    # Funnels (tests/specs/journeys): two names compared ignoring letter case.
    "bad-journey-name-duplicate": "two funnels whose names differ only in letter case",
}
# Rejected by the schema, but only the loader can say how to fix them: the decimal-comma and
# thousands hints (bad-value-decimal-comma, -comma-ambiguous, -thousands, -string), the
# did-you-mean for typos, and file:line:column. The editor shows the schema's generic message.
# Two are rejected for a reason other than their own rule: bad-nested-too-deep (its deep list
# sits under an unknown top-level key; the schema has no depth limit) and bad-too-many-goals
# (the key-event limit, 31 with `purchase`, refuses it long before the loader's 500 goals).

# Fixtures that are neither a bad-*.yaml nor a valid spec: support files of bad fixtures.
SUPPORT = {"_list-base": "the base bad-extends-not-mapping extends, a list by mistake"}


def _load(path: Path) -> Any:
    return YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8"))


def _errors(instance: Any) -> list[str]:
    return [error.message for error in VALIDATOR.iter_errors(instance)]


KINDS = SPECS / "kinds"  # the goal-kind fixtures (page:, from:/where:, session:)
JOURNEYS = SPECS / "journeys"  # funnels and identifying goals
FOLDERS = (SPECS, KINDS, JOURNEYS)


def _stems(pattern: str) -> list[str]:
    return sorted(p.stem for folder in FOLDERS for p in folder.glob(pattern))


def _path(name: str) -> Path:
    return next(p for p in (d / f"{name}.yaml" for d in FOLDERS) if p.is_file())


BAD = _stems("bad-*.yaml")
EXPRESSIBLE = [name for name in BAD if name not in CANNOT_EXPRESS]
VALID = [name for name in _stems("*.yaml") if not name.startswith("bad-") and name not in SUPPORT]
EXAMPLE_FILES = sorted(EXAMPLES.glob("*.yaml"))


def test_schema_is_valid_draft_2020_12() -> None:
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(SCHEMA)


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=[p.name for p in EXAMPLE_FILES])
def test_every_example_is_accepted(path: Path) -> None:
    """Base files (`_*.yaml`) too: without client and properties they are read as partial."""
    assert _errors(_load(path)) == []


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=[p.name for p in EXAMPLE_FILES])
def test_every_example_names_the_schema_on_its_first_line(path: Path) -> None:
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first == MODELINE
    target = (path.parent / first.split("$schema=", 1)[1]).resolve()
    assert target == SCHEMA_PATH.resolve()


@pytest.mark.parametrize("name", VALID)
def test_every_valid_fixture_is_accepted(name: str) -> None:
    assert _errors(_load(_path(name))) == []


@pytest.mark.parametrize("name", EXPRESSIBLE)
def test_bad_fixture_is_rejected(name: str) -> None:
    assert _errors(_load(_path(name))), f"{name}.yaml passes the schema"


@pytest.mark.parametrize("name", sorted(CANNOT_EXPRESS))
def test_what_the_schema_cannot_express_really_passes_it(name: str) -> None:
    """If the schema learns to catch one of these, move it out of CANNOT_EXPRESS."""
    assert any((d / f"{name}.yaml").is_file() for d in FOLDERS), \
        f"{name}.yaml is gone: remove it from CANNOT_EXPRESS"
    path = _path(name)
    try:
        data = _load(path)
    except YAMLError:
        return
    assert _errors(data) == []


def test_every_bad_fixture_is_classified() -> None:
    """A new bad-*.yaml must be rejected by the schema or listed in CANNOT_EXPRESS."""
    assert set(CANNOT_EXPRESS) <= set(BAD), "CANNOT_EXPRESS names a fixture that does not exist"
    assert set(EXPRESSIBLE) | set(CANNOT_EXPRESS) == set(BAD)


def test_support_files_are_not_specs() -> None:
    for name in SUPPORT:
        assert _errors(_load(_path(name)))


# --------------------------------------------------------------------------- single rules


def _spec(**changes: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"client": "Shop", "properties": [123456789], "currency": "USD",
                            "goals": [{"event": "purchase", "tier": "macro", "value": "event"}]}
    spec.update(changes)
    return {k: v for k, v in spec.items() if v is not None}


def _goal(**changes: Any) -> dict[str, Any]:
    goal: dict[str, Any] = {"event": "sign_up", "tier": "micro", "value": 5}
    goal.update(changes)
    return _spec(goals=[goal])


def test_currency_codes_are_the_loaders() -> None:
    [listed, _] = SCHEMA["properties"]["currency"]["anyOf"]
    assert listed["enum"] == sorted(CURRENCY_CODES)


@pytest.mark.parametrize("code", sorted(CURRENCY_CODES))
def test_every_currency_in_any_case(code: str) -> None:
    """The loader uppercases, so `usd` and `Usd` are accepted; completion offers `USD`."""
    for written in (code, code.lower(), code.title()):
        assert _errors(_spec(currency=written)) == [], written


@pytest.mark.parametrize("currency", ["EURO", "eu", "XTS", "xau", "US D", ""])
def test_not_a_currency(currency: str) -> None:
    assert _errors(_spec(currency=currency))


@pytest.mark.parametrize("event", ["sign_up", "a", "A" * 40, "Purchase2", "gaming_session",
                                   "google", "firebaseish"])
def test_good_event_names(event: str) -> None:
    assert _errors(_goal(event=event)) == []


@pytest.mark.parametrize("event", ["", "A" * 41, "sign-up", "sign up", "2nd_visit", "_x",
                                   "firebase_x", "google_x", "ga_x", "café", "ｓｉｇｎ", "x\u0663"])
def test_bad_event_names(event: str) -> None:
    assert _errors(_goal(event=event))


@pytest.mark.parametrize("value", [0, 12.5, 10**12, "event"])
def test_good_values(value: Any) -> None:
    assert _errors(_goal(value=value)) == []


@pytest.mark.parametrize("value", [-0.01, 10**12 + 1, float("inf"), True, "Event", "12.5", None])
def test_bad_values(value: Any) -> None:
    assert _errors(_goal(value=value))


@pytest.mark.parametrize("pid", [1, 123456789, 2**63 - 1, "123456789", "properties/123456789",
                                 "0123", str(2**63 - 1), f"properties/{2**63 - 1}",
                                 "0" * 37 + "123"])
def test_good_property_ids(pid: Any) -> None:
    assert _errors(_spec(properties=[pid])) == []
    assert _errors(_spec(properties=None, property=pid)) == []


@pytest.mark.parametrize("pid", [0, -1, 2**63, "0", "properties/0", str(2**63), "9" * 20,
                                 "G-8XK2M4Q7TZ", "UA-1234567-1", "acme-prod", "properties/",
                                 "\u0661\u0662\u0663", "12 34", "+123", "1_000", "0" * 38 + "123",
                                 True, [123]])
def test_bad_property_ids(pid: Any) -> None:
    assert _errors(_spec(properties=None, property=pid))


def test_a_spec_that_extends_may_leave_out_what_its_base_gives() -> None:
    assert _errors({"client": "Shop", "extends": "_base.yaml"}) == []
    assert _errors({"properties": [1], "extends": "_base.yaml"}) == []


def test_a_spec_without_extends_needs_every_required_key() -> None:
    for key in ("client", "properties", "currency", "goals"):
        assert _errors(_spec(**{key: None})), key


def test_a_base_without_client_or_properties_is_partial() -> None:
    assert _errors({"currency": "EUR", "goals": [{"event": "x", "tier": "micro", "value": 1}]}) == []
    assert _errors({"rate_basis": "users"}) == []


def _many(count: int, purchase: bool) -> list[dict[str, Any]]:
    goals = [{"event": f"goal_{i}", "tier": "micro", "value": 1} for i in range(count)]
    return goals + ([{"event": "purchase", "tier": "macro", "value": "event"}] if purchase else [])


@pytest.mark.parametrize("purchase", [False, True])
def test_key_event_limit(purchase: bool) -> None:
    """30 custom key events on standard, 50 on 360; `purchase` does not count."""
    assert _errors(_spec(goals=_many(30, purchase))) == []
    assert _errors(_spec(goals=_many(31, purchase)))
    assert _errors(_spec(goals=_many(50, purchase), service_level="analytics_360")) == []
    assert _errors(_spec(goals=_many(51, purchase), service_level="analytics_360"))
    # The edition may come from the base: only the 360 limit is certain.
    assert _errors({"extends": "_b.yaml", "goals": _many(50, purchase)}) == []
    assert _errors({"extends": "_b.yaml", "goals": _many(51, purchase)})
    assert _errors({"extends": "_b.yaml", "service_level": "standard",
                    "goals": _many(31, purchase)})


def test_property_and_properties_together() -> None:
    assert _errors(_spec(property=1, properties=[2]))


# --------------------------------------------------------------------------- funnels


def _funnel(**changes: Any) -> dict[str, Any]:
    funnel: dict[str, Any] = {"name": "checkout", "steps": ["add_to_cart", "purchase"]}
    funnel.update(changes)
    return _spec(funnels=[{k: v for k, v in funnel.items() if v is not None}])


def _loader_takes(tmp_path: Path, data: dict[str, Any]) -> bool:
    path = tmp_path / "s.yaml"
    path.write_text(json.dumps(data), encoding="utf-8")  # JSON is YAML
    specs, problems = validate_paths([path])
    return bool(specs)


WITHIN = ["1s", "45s", "90m", "12h", "30d", "365d", "8760h", "525600m", "31536000s", "007d",
          "0d", "0s", "366d", "8761h", "525601m", "31536001s", "30", "30 d", "30 days", "12H",
          "2w", "1.5h", "1 month", "-1d", "d", "", " 30d", "1y", "P30D", "0030d", "99999999999d"]


@pytest.mark.parametrize("within", WITHIN)
def test_within_agrees_with_the_loader(tmp_path: Path, within: str) -> None:
    """The schema's range patterns (365 days in each unit) say what the loader says."""
    data = _funnel(within=within)
    assert (_errors(data) == []) is _loader_takes(tmp_path, data), within


@pytest.mark.parametrize(("changes", "ok"), [
    ({}, True), ({"open": True}, True), ({"open": "yes"}, False), ({"within": 30}, False),
    ({"name": "x" * 60}, True), ({"name": "x" * 61}, False), ({"name": ""}, False),
    ({"name": "a\tb"}, False), ({"name": None}, False), ({"steps": None}, False),
    ({"steps": ["purchase"]}, False), ({"steps": [f"s{i}" for i in range(10)]}, True),
    ({"steps": [f"s{i}" for i in range(11)]}, False), ({"steps": ["a", "a"]}, False),
    ({"steps": ["a-b", "c"]}, False), ({"steps": ["a" * 41, "c"]}, False),
    ({"steps": ["a" * 40, "c"]}, True), ({"extra": 1}, False),
])
def test_funnel_rules(tmp_path: Path, changes: dict[str, Any], ok: bool) -> None:
    data = _funnel(**changes)
    assert (_errors(data) == []) is ok
    assert _loader_takes(tmp_path, data) is ok


def test_funnels_list() -> None:
    assert _errors(_spec(funnels=[]))
    assert _errors(_spec(funnels={"name": "x"}))
    assert _errors({"extends": "_b.yaml", "funnels": [{"name": "f", "steps": ["a", "b"]}]}) == []


@pytest.mark.parametrize(("flag", "ok"), [(True, True), (False, True), ("true", False),
                                          (1, False), (None, False)])
def test_identifies(flag: Any, ok: bool) -> None:
    assert (_errors(_goal(identifies=flag)) == []) is ok


# --------------------------------------------------------------------------- the command


def test_schema_command_prints_the_packaged_file() -> None:
    result = CliRunner().invoke(app, ["schema"], catch_exceptions=False)
    assert result.exit_code == 0
    assert result.stdout == SCHEMA_PATH.read_text(encoding="utf-8")


def test_schema_command_writes_a_file(tmp_path: Path) -> None:
    out = tmp_path / "spec.schema.json"
    result = CliRunner().invoke(app, ["schema", "-o", str(out)], catch_exceptions=False)
    assert result.exit_code == 0
    assert out.read_text(encoding="utf-8") == SCHEMA_PATH.read_text(encoding="utf-8")
    assert result.stdout == ""


def test_schema_command_cannot_write(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["schema", "-o", str(tmp_path / "no" / "x.json")])
    assert result.exit_code == 1
    assert "cannot write" in result.stderr


def test_schema_help_shows_the_editor_line() -> None:
    result = CliRunner().invoke(app, ["schema", "--help"], catch_exceptions=False)
    assert result.exit_code == 0
    assert "Example" in result.stdout
    assert "# yaml-language-server: $schema=" in result.stdout


# --------------------------------------------------------------------------- pre-commit hook


def test_pre_commit_hook_passes_specs_and_leaves_out_bases() -> None:
    """pre-commit matches `files`/`exclude` with re.search on repository-relative paths."""
    hooks = {h["id"]: h for h in YAML(typ="safe", pure=True).load(
        (ROOT / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))}
    hook = hooks["ga-sync-validate"]
    assert hook["entry"] == "ga-sync validate" and hook["pass_filenames"] is True
    paths = [p.relative_to(ROOT).as_posix() for p in EXAMPLE_FILES]
    chosen = [p for p in paths if re.search(hook["files"], p) and not re.search(hook["exclude"], p)]
    assert chosen == [p for p in paths if not Path(p).name.startswith("_")]
    runner = CliRunner()
    ok = runner.invoke(app, ["validate", *[str(ROOT / p) for p in chosen]])
    assert ok.exit_code == 0, ok.output
    # Why bases are excluded: named on the command line, a base is checked as a whole spec.
    base = runner.invoke(app, ["validate", str(EXAMPLES / "_agency_defaults.yaml")])
    assert base.exit_code == 1 and "base file" in base.output
