"""Fuzzing spec loading: whatever the file holds, the answer is a Spec or problems, quickly.

Never another exception (a traceback is a bug), never a hang. Texts are YAML-ish on purpose:
real keys with values of every YAML type, deep nesting, aliases, odd unicode, huge numbers,
`extends` to places inside and outside the spec tree, and plain random bytes.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ga_sync.errors import Problem, SpecError
from ga_sync.model import Spec
from ga_sync.spec import load_specs, validate_paths

KEYS = ["client", "property", "properties", "currency", "rate_basis", "service_level", "extends",
        "goals", "event", "tier", "value", "counting", "category", "description", "vaule", "x",
        # goal kinds and what goes inside them
        "page", "from", "where", "session", "equals", "contains", "starts_with", "ends_with",
        "regex", "ignore_case", "contain", "min_page_views", "min_seconds", "event_name",
        "page_location", "file_extension", "link_url", "bad-name",
        # funnels and identifying goals
        "funnels", "name", "steps", "within", "open", "identifies", "stpes"]
WORDS = ["purchase", "sign_up", "café_visit", "price_per_m²", "macro", "micro", "event", "USD",
         "usd", "EURO", "once_per_session", "sessions", "users", "analytics_360", "0x1F", "+123",
         "1_000", "１２３", "9223372036854775808", "properties/123", "G-ABCD1234", "UA-1-1",
         "-0.0", ".inf", ".nan", "1e308", "9" * 400, "true", "null", "~", "2024-02-30", "12,50",
         "$40.50", "[", "{", "'", '"', "&a", "*a", "!!binary aGk=", "!tag x", "? x", "- ",
         "-----BEGIN PRIVATE KEY-----", "../outside.yaml", "/dev/zero", "_base.yaml",
         "sub/_b.yaml", "loop.yaml", "\t", "\u200b", "𝔘𝔫𝔦", "\x00",
         "page_view", "file_download", "click", "form_submit", "/thank-you", "'a(?=b)'",
         "'(a)\\1'", "'[('", "'^/(en|de)/ok$'", "'\\pL'", "'a{1001}'", "'(?P<x>a)(?P=x)'",
         "'" + "x" * 101 + "'", "''", "0", "86401", "1001", "2.5",
         "30d", "0d", "366d", "31536001s", "1.5h", "30 days", "2w", "12H", "1 month", "-1d",
         "9" * 40 + "d", "view_item", "add_to_kart", "'check\\nout'", "yes"]

# Values a YAML file can hold, as text: every scalar type, flow collections, aliases.
scalars = st.one_of(
    st.sampled_from(WORDS),
    st.integers(min_value=-(10 ** 30), max_value=10 ** 30).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(max_size=30),
    st.text(max_size=30).map(repr),
)
flow = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4).map(lambda xs: "[" + ", ".join(xs) + "]"),
    st.dictionaries(st.sampled_from(KEYS), inner, max_size=4).map(
        lambda d: "{" + ", ".join(f"{k}: {v}" for k, v in d.items()) + "}"),
), max_leaves=12)


@st.composite
def spec_texts(draw: Any) -> str:
    """A block mapping of (mostly) real keys, with goals that are themselves random."""
    lines = []
    for key in draw(st.lists(st.sampled_from(KEYS), max_size=9)):
        if key == "goals" and draw(st.booleans()):
            lines.append("goals:")
            for _ in range(draw(st.integers(0, 4))):
                goal = draw(st.dictionaries(st.sampled_from(KEYS), flow, max_size=5))
                lines.append("  - {" + ", ".join(f"{k}: {v}" for k, v in goal.items()) + "}")
        else:
            lines.append(f"{key}: {draw(flow)}")
    if draw(st.booleans()):
        lines.insert(draw(st.integers(0, len(lines))), draw(st.sampled_from(
            ["%YAML 1.1\n---", "---", "...", "# comment", "a: &a [1, 2]", "b: *a", "<<: *a",
             "x: " + "[" * 40 + "]" * 40, "x: " + "[" * 2000])))
    return "\n".join(lines) + draw(st.sampled_from(["", "\n", "\r\n", " \t"]))


def _tree(tmp: Path, text: str | bytes, base: str | bytes) -> tuple[Path, Path]:
    specs = tmp / "specs"
    (specs / "sub").mkdir(parents=True, exist_ok=True)
    for name in ("spec.yaml", "_base.yaml", "sub/_b.yaml", "loop.yaml"):
        (specs / name).unlink(missing_ok=True)
    spec = specs / "spec.yaml"
    (spec.write_bytes if isinstance(text, bytes) else spec.write_text)(text)
    target = specs / "_base.yaml"
    (target.write_bytes if isinstance(base, bytes) else target.write_text)(base)
    (specs / "sub" / "_b.yaml").write_text("extends: ../_base.yaml\ncurrency: EUR\n")
    (specs / "loop.yaml").symlink_to(specs / "loop.yaml")
    (tmp / "outside.yaml").write_text("currency: USD\n")
    return specs, spec


def _check(specs_dir: Path, spec: Path) -> None:
    started = time.monotonic()
    for paths in ([spec], [specs_dir]):
        found, problems = validate_paths(paths)
        assert all(isinstance(s, Spec) for s in found)
        assert all(isinstance(p, Problem) for p in problems)
        assert all(len(p.message) < 500 for p in problems), [p.message for p in problems]
        try:
            loaded = load_specs(paths)
        except SpecError as exc:
            assert exc.problems
        else:
            assert loaded == found
    assert time.monotonic() - started < 5


FUZZ = settings(max_examples=120, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


@FUZZ
@given(text=spec_texts(), base=spec_texts())
def test_yaml_ish_specs(tmp_path: Path, text: str, base: str) -> None:
    _check(*_tree(tmp_path, text, base))


KIND_VALUES = st.recursive(st.one_of(scalars, st.sampled_from(WORDS[-22:])), lambda inner: st.one_of(
    st.lists(inner, max_size=3).map(lambda xs: "[" + ", ".join(xs) + "]"),
    st.dictionaries(st.sampled_from(KEYS[-22:]), inner, max_size=4).map(
        lambda d: "{" + ", ".join(f"{k}: {v}" for k, v in d.items()) + "}"),
), max_leaves=10)


@st.composite
def kind_texts(draw: Any) -> str:
    """A valid spec whose goals carry random `page:`/`from:`/`where:`/`session:` keys."""
    lines = ["client: C", "property: 1", "currency: USD", "goals:"]
    for i in range(draw(st.integers(1, 4))):
        event = draw(st.sampled_from([f"goal_{i}", "page_view", "file_download", "error"]))
        lines.append(f"  - event: {event}\n    tier: micro\n    value: 1")
        for key in draw(st.lists(st.sampled_from(["page", "from", "where", "session"]),
                                 max_size=3, unique=True)):
            lines.append(f"    {key}: {draw(KIND_VALUES)}")
    return "\n".join(lines) + "\n"


@FUZZ
@given(text=kind_texts())
def test_goal_kinds(tmp_path: Path, text: str) -> None:
    _check(*_tree(tmp_path, text, "currency: USD\n"))


FUNNEL_VALUES = st.recursive(st.one_of(scalars, st.sampled_from(WORDS[-15:])), lambda inner: st.one_of(
    st.lists(inner, max_size=12).map(lambda xs: "[" + ", ".join(xs) + "]"),
    st.dictionaries(st.sampled_from(KEYS[-7:]), inner, max_size=4).map(
        lambda d: "{" + ", ".join(f"{k}: {v}" for k, v in d.items()) + "}"),
), max_leaves=14)


@st.composite
def funnel_texts(draw: Any) -> tuple[str, str]:
    """A valid spec (and base) with random `funnels:` entries and `identifies:` flags."""
    def funnels() -> list[str]:
        lines = ["funnels:"]
        for _ in range(draw(st.integers(0, 3))):
            keys = draw(st.lists(st.sampled_from(["name", "steps", "within", "open", "stpes"]),
                                 max_size=4, unique=True))
            entry = {k: draw(FUNNEL_VALUES) for k in keys}
            if draw(st.booleans()):
                entry["steps"] = "[" + ", ".join(draw(st.lists(st.sampled_from(
                    ["purchase", "view_item", "add_to_kart", "goal_0", "Purchase", "a-b"]),
                    max_size=11))) + "]"
            lines.append("  - {" + ", ".join(f"{k}: {v}" for k, v in entry.items()) + "}")
        if len(lines) == 1 and draw(st.booleans()):
            lines[0] = f"funnels: {draw(FUNNEL_VALUES)}"
        return lines
    lines = ["client: C", "property: 1", "currency: USD", "extends: _base.yaml", "goals:"]
    for i in range(draw(st.integers(1, 3))):
        lines.append(f"  - event: goal_{i}\n    tier: micro\n    value: 1")
        if draw(st.booleans()):
            lines.append(f"    identifies: {draw(FUNNEL_VALUES)}")
    if draw(st.booleans()):
        lines += funnels()
    base = ["currency: USD", "goals: [{event: purchase, tier: macro, value: event}]"] + funnels()
    return "\n".join(lines) + "\n", "\n".join(base) + "\n"


@FUZZ
@given(texts=funnel_texts())
def test_funnels(tmp_path: Path, texts: tuple[str, str]) -> None:
    _check(*_tree(tmp_path, *texts))


@FUZZ
@given(text=st.binary(max_size=300), base=st.binary(max_size=100))
def test_random_bytes(tmp_path: Path, text: bytes, base: bytes) -> None:
    _check(*_tree(tmp_path, text, base))


@FUZZ
@given(text=st.text(max_size=300), extends=st.sampled_from(WORDS) | st.text(max_size=40))
def test_random_text_with_extends(tmp_path: Path, text: str, extends: str) -> None:
    body = ("client: C\nproperty: 1\ncurrency: USD\ngoals: [{event: purchase, tier: macro, "
            f"value: event}}]\nextends: {extends!r}\n")
    _check(*_tree(tmp_path, body, text))
