"""Spec loading, validation, `extends` merging and dump round trips: plain files in, data out."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ga_sync.errors import GaSyncError, Problem, SpecError
from ga_sync.model import (
    MACRO,
    MICRO,
    ONCE_PER_EVENT,
    ONCE_PER_SESSION,
    Goal,
    KeyEventSettings,
    KeyEventState,
    PropertyPlan,
    Spec,
)
from ga_sync.dump import dump_property, dump_spec, goals_from_key_events, guess_tier, spec_to_yaml
from ga_sync.plan import diff
from ga_sync.spec import check_event_name, load_spec, load_specs, validate_paths

ROOT = Path(__file__).resolve().parent.parent
SPECS = Path(__file__).resolve().parent / "specs"
EXAMPLES = ROOT / "goal_specs"
EXAMPLE_FILES = sorted(p for p in EXAMPLES.glob("*.yaml") if not p.name.startswith("_"))

# fixture, (line, column) of the expected error, part of its message, errors in the file
BAD = [
    ("bad-event-name", (5, 12), "contains `-`; GA4 event names use only ASCII letters, digits "
                                "and underscores (e.g. `sign_up`)", 1),
    ("bad-event-name-start", (5, 12), "event name `2nd_visit` must start with a letter", 1),
    ("bad-event-name-long", (5, 12), "is 44 characters long; GA4 allows at most 40", 1),
    ("bad-reserved-prefix", (8, 12), "starts with `google_`, a prefix GA4 reserves", 1),
    ("bad-reserved-underscore", (5, 12), "starts with `_`, a prefix GA4 reserves", 1),
    ("bad-currency", (3, 11), "currency `EURO` is not an active ISO 4217 code", 1),
    ("bad-currency", (3, 11), "did you mean `EUR`?", 1),
    ("bad-currency-type", (3, 11), "currency must be an ISO 4217 code such as USD, EUR or GBP, "
                                   "got `978`", 1),
    ("bad-value-negative", (7, 12), "value `-40` is negative", 1),
    ("bad-value-string", (7, 12), "value `$40.50` is text, not a number; write it without quotes "
                                  "or currency signs: `value: 40.5`", 1),
    ("bad-value-word", (7, 12), "value `high` is neither a number nor `event`", 1),
    ("bad-value-decimal-comma", (7, 12), "value `12,50` is text, not a number; write it with a "
                                         "decimal point, without quotes or currency signs: "
                                         "`value: 12.5`", 1),
    ("bad-value-comma-ambiguous", (7, 12), "value `1,250` is text, not a number, and its comma is "
                                           "ambiguous: write `value: 1250` if the comma separates "
                                           "thousands, or `value: 1.25` if it is a decimal comma", 1),
    ("bad-value-thousands", (7, 12), "value `1,250,000` is text, not a number; write it without "
                                     "quotes, currency signs or thousands separators: "
                                     "`value: 1250000`", 1),
    ("bad-value-nan", (7, 12), "is not a finite number", 1),
    ("bad-value-inf", (7, 12), "is not a finite number", 1),
    ("bad-value-bool", (7, 12), "value `true` is a yes/no, not an amount", 1),
    ("bad-tier", (6, 11), "tier `macor` is not valid; use `macro` or `micro`; did you mean `macro`?", 1),
    ("bad-counting", (8, 15), "did you mean `once_per_session`?", 1),
    ("bad-rate-basis", (4, 13), "rate_basis `user` is not valid; use `sessions` or `users`; "
                                "did you mean `users`?", 1),
    ("bad-service-level", (4, 16), "service_level `360` is not valid; use `standard` or "
                                   "`analytics_360`", 1),
    ("bad-unknown-key", (7, 5), "unknown goal key `vaule`; did you mean `value`?", 2),
    ("bad-unknown-key", (5, 5), "goal `generate_lead` is missing `value:`", 2),
    ("bad-unknown-top-key", (4, 1), "unknown key `rate_bassis`; did you mean `rate_basis`?", 1),
    ("bad-misplaced-key", (8, 5), "`currency` is a top-level key", 1),
    ("bad-duplicate-event", (11, 12), "event `sign_up` is listed twice (first at line 5:12)", 1),
    ("bad-duplicate-event-case", (8, 12), "event `Sign_Up` and `sign_up` (at line 5:12) differ "
                                          "only in letter case", 1),
    ("bad-measurement-id", (2, 25), "`G-8XK2M4Q7TZ` is a measurement id (of a web data stream), "
                                    "not a property id; the numeric property id is under Admin → "
                                    "Property settings", 1),
    ("bad-ua-id", (2, 11), "`UA-1234567-1` is a Universal Analytics tracking id", 1),
    ("bad-property-id", (4, 5), "property id `acme-prod` is not a numeric GA4 property id", 1),
    ("bad-property-both", (3, 1), "give either `property:` (one id) or `properties:` (a list), "
                                  "not both", 1),
    ("bad-property-twice", (2, 25), "property 100000027 is listed twice (first at line 2:14)", 1),
    ("bad-property-empty", (2, 13), "properties is empty", 1),
    ("bad-too-many-key-events", (99, 12), "31 custom key events, but a standard GA4 property "
                                          "allows 30 (`purchase` does not count)", 1),
    ("bad-extends-missing", (4, 10), "extends `_no-such-base.yaml`, but", 1),
    ("bad-extends-not-mapping", (4, 10), "cannot extend `_list-base.yaml`: its top level is not "
                                         "a mapping", 2),
    ("bad-extends-case", (5, 12), "event `Newsletter_Signup` and `newsletter_signup` (in ", 1),
    ("bad-not-yaml", (3, 9), "not valid YAML: while parsing a flow sequence: expected ',' or ']'", 1),
    ("bad-duplicate-key", (8, 5), "not valid YAML: found duplicate key \"tier\"", 1),
    ("bad-not-mapping", (1, 1), "the top level is a list; a goal spec is a mapping", 1),
    ("bad-empty-file", (1, 1), "the top level is empty", 1),
    ("bad-missing-key", (2, 1), "missing `currency:`", 1),
    ("bad-goal-missing-key", (5, 5), "goal `purchase` is missing `tier:`", 1),
    ("bad-goals-not-list", (5, 3), "goals must be a list", 1),
    ("bad-goal-not-mapping", (5, 5), "goal `purchase` is not a mapping", 1),
    ("bad-goals-empty", (4, 8), "goals is empty", 1),
    ("bad-client", (1, 9), "client must be a name", 1),
    ("bad-category", (8, 15), "category must be text, got a list", 1),
    ("bad-event-name-non-ascii", (5, 12), "event name `café_visit` contains `é`; GA4 event names "
                                          "use only ASCII letters, digits and underscores (e.g. "
                                          "`cafe_visit`)", 1),
    ("bad-event-name-superscript", (5, 12), "event name `price_per_m²` contains `²`; GA4 event "
                                            "names use only ASCII letters, digits and underscores "
                                            "(e.g. `price_per_m2`)", 1),
    ("bad-value-too-large", (7, 12), "value `1e+308` is more than 1000000000000 (10^12), the most "
                                     "one conversion may be worth", 1),
    ("bad-value-huge-integer", (7, 12), "value `999999999999…` (400 digits) is more than "
                                        "1000000000000", 1),
    ("bad-property-hex", (2, 14), "property id `0x1F` is not written in decimal digits only", 1),
    ("bad-property-sign", (2, 11), "property id `+100000084` is not written in decimal digits "
                                   "only", 1),
    ("bad-property-underscore", (2, 11), "property id `100_000_085` is not written in decimal "
                                         "digits only", 1),
    ("bad-property-fullwidth", (2, 11), "property id `１００００００８６` is not a numeric GA4 "
                                        "property id", 1),
    ("bad-property-too-large", (2, 11), "property id `9223372036854775808` is larger than any GA4 "
                                        "property id (at most 9223372036854775807)", 1),
    ("bad-top-level-text", (1, 1), "the top level is a text value; a goal spec is a mapping", 1),
    ("bad-extends-outside", (4, 10), "extends `../conftest.py`, which is outside the spec folder "
                                     f"({SPECS}); base files must be in the spec folder or a "
                                     "subfolder of it: move the base file there, or add its "
                                     "folder to GA_SYNC_EXTENDS_PATH", 1),
    ("bad-too-many-goals", (5, 8), "501 goals in one file; at most 500 are allowed per file", 1),
    ("bad-nested-too-deep", (4, 45), "not valid YAML: nested more than 32 levels deep", 1),
]


def _errors(problems: list[Problem]) -> list[Problem]:
    return [p for p in problems if p.severity == "error"]


@pytest.mark.parametrize(("name", "where", "message", "count"), BAD,
                         ids=[f"{b[0]}:{i}" for i, b in enumerate(BAD)])
def test_bad_fixture_reports_its_problem_at_its_place(name: str, where: tuple[int, int],
                                                      message: str, count: int) -> None:
    path = SPECS / f"{name}.yaml"
    with pytest.raises(SpecError) as caught:
        load_specs([path])
    errors = _errors(caught.value.problems)
    assert len(errors) == count, "\n".join(map(str, errors))
    matching = [p for p in errors if message in p.message]
    assert matching, f"no error says {message!r}:\n" + "\n".join(map(str, errors))
    assert (matching[0].line, matching[0].column) == where, str(matching[0])
    assert message in str(caught.value)


def test_every_bad_fixture_is_covered() -> None:
    """A new bad-*.yaml without an expectation would test nothing."""
    named = {b[0] for b in BAD} | {"bad-extends-circular-a", "bad-extends-circular-b",
                                   "bad-several"}
    on_disk = {p.stem for p in SPECS.glob("bad-*.yaml")}
    assert on_disk == named


def test_circular_extends_reports_the_chain() -> None:
    with pytest.raises(SpecError) as caught:
        load_spec(SPECS / "bad-extends-circular-a.yaml")
    [error] = _errors(caught.value.problems)
    assert error.file.endswith("bad-extends-circular-b.yaml")
    assert (error.line, error.column) == (2, 10)
    assert ("circular extends: bad-extends-circular-a.yaml → bad-extends-circular-b.yaml → "
            "bad-extends-circular-a.yaml") in error.message


def test_several_problems_are_reported_at_once() -> None:
    specs, problems = validate_paths([SPECS / "bad-several.yaml", SPECS / "bad-tier.yaml",
                                      SPECS / "warn-page-view.yaml"])
    assert [s.client for s in specs] == ["Warn Page View"]
    found = [(Path(p.file).name, p.line, p.column, p.severity) for p in problems]
    assert found == [
        ("bad-several.yaml", 3, 14, "error"),   # measurement id
        ("bad-several.yaml", 6, 12, "error"),   # space in event name
        ("bad-several.yaml", 10, 11, "error"),  # tier
        ("bad-several.yaml", 11, 12, "error"),  # negative value
        ("bad-tier.yaml", 6, 11, "error"),
        ("warn-page-view.yaml", 8, 12, "warning"),
    ]
    with pytest.raises(SpecError) as caught:
        load_specs([SPECS / "bad-several.yaml", SPECS / "bad-tier.yaml"])
    text = str(caught.value)
    assert text.startswith("5 errors in goal spec:")
    assert "bad-several.yaml:3:14: error: `G-ABCD1234` is a measurement id" in text
    assert "bad-tier.yaml:6:11: error: tier `macor`" in text


def test_spec_error_is_a_user_facing_error() -> None:
    with pytest.raises(GaSyncError):
        load_spec(SPECS / "bad-tier.yaml")


def test_browsing_event_is_a_warning_not_an_error() -> None:
    spec = load_spec(SPECS / "warn-page-view.yaml")
    assert spec.goal("page_view") is not None
    [warning] = spec.warnings
    assert warning.startswith(f"{SPECS / 'warn-page-view.yaml'}:8:12: warning: `page_view` is "
                              f"collected automatically")
    assert "counts visiting as success" in warning


@pytest.mark.parametrize("event", ["session_start", "first_visit", "user_engagement", "scroll"])
def test_every_browsing_event_warns(tmp_path: Path, event: str) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(f"client: C\nproperty: 1\ncurrency: USD\ngoals:\n"
                    f"  - {{event: {event}, tier: micro, value: 0}}\n")
    specs, problems = validate_paths([path])
    assert len(specs) == 1
    assert [(p.severity, p.line, p.column) for p in problems] == [("warning", 5, 13)]


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=[p.name for p in EXAMPLE_FILES])
def test_every_example_loads_cleanly(path: Path) -> None:
    spec = load_spec(path)
    assert spec.warnings == ()
    assert spec.goals
    assert any(g.tier == MACRO for g in spec.goals)
    assert any(g.tier == MICRO for g in spec.goals)


def test_examples_together() -> None:
    specs, problems = validate_paths([EXAMPLES])
    assert problems == []
    assert [s.path.name for s in specs] == [p.name for p in EXAMPLE_FILES]
    assert len(specs) >= 5
    properties = [p for s in specs for p in s.properties]
    assert len(properties) == len(set(properties))
    assert all(len(p.split("/")[1]) == 9 for p in properties)
    assert {s.currency for s in specs} >= {"USD", "EUR", "GBP"}
    assert "users" in {s.rate_basis for s in specs}
    countings = {g.counting for s in specs for g in s.goals}
    assert countings == {ONCE_PER_EVENT, ONCE_PER_SESSION}
    extending = [p for p in EXAMPLE_FILES if "extends:" in p.read_text()]
    assert len(extending) >= 2


def test_store_example_values_purchase_by_event() -> None:
    spec = load_spec(EXAMPLES / "acme-outdoor.yaml")
    purchase = spec.goal("purchase")
    assert purchase is not None and purchase.tier == MACRO and purchase.value is None
    assert spec.desired()["purchase"] == KeyEventSettings(ONCE_PER_EVENT, None, None)
    assert spec.desired()["add_to_cart"] == KeyEventSettings(ONCE_PER_EVENT, 4.0, "USD")


def test_extends_override_and_base_order() -> None:
    spec = load_spec(SPECS / "override.yaml")
    assert spec.currency == "USD"  # `usd` normalized; the extending file wins over the base's EUR
    assert spec.rate_basis == "sessions"  # the extending file wins over the base's `users`
    assert spec.properties == ("properties/100000061",)
    assert [g.event for g in spec.goals] == ["newsletter_signup", "contact_click", "purchase"]
    newsletter = spec.goal("newsletter_signup")
    assert newsletter == Goal("newsletter_signup", MICRO, 3.5, ONCE_PER_EVENT,
                              description="Overrides the base value")
    assert newsletter.location is not None
    assert newsletter.location.file.endswith("override.yaml")
    assert (newsletter.location.line, newsletter.location.column) == (10, 12)
    contact = spec.goal("contact_click")
    assert contact is not None and contact.location is not None
    assert contact.location.file.endswith("_base.yaml")


def test_extends_chain() -> None:
    spec = load_spec(SPECS / "chain.yaml")
    assert spec.currency == "GBP"  # from _mid.yaml, which overrides _base.yaml
    assert spec.rate_basis == "users"  # from _base.yaml, two levels up
    assert [(g.event, g.value) for g in spec.goals] == [
        ("newsletter_signup", 2.0), ("contact_click", 6.0), ("file_download", 1.0),
        ("purchase", None)]
    assert spec.goal("contact_click").category == "lead"  # type: ignore[union-attr]


def test_base_files_are_skipped_in_a_directory(tmp_path: Path) -> None:
    (tmp_path / "_base.yaml").write_text("goals:\n  - {event: sign_up, tier: micro, value: 2}\n")
    (tmp_path / "b.yml").write_text("client: B\nproperty: 2\ncurrency: EUR\nextends: _base.yaml\n")
    (tmp_path / "a.yaml").write_text("client: A\nproperty: 1\ncurrency: USD\n"
                                     "goals: [{event: purchase, tier: macro, value: event}]\n")
    (tmp_path / "notes.txt").write_text("not a spec")
    specs = load_specs([tmp_path])
    assert [s.client for s in specs] == ["A", "B"]
    assert specs[1].goals == (Goal("sign_up", MICRO, 2.0),)


def test_a_shared_broken_base_is_reported_once(tmp_path: Path) -> None:
    (tmp_path / "_base.yaml").write_text("goals:\n  - {event: sign-up, tier: micro, value: 2}\n")
    for name in ("a", "b"):
        (tmp_path / f"{name}.yaml").write_text(
            f"client: {name}\nproperty: {ord(name)}\ncurrency: USD\nextends: _base.yaml\n")
    specs, problems = validate_paths([tmp_path])
    assert specs == []
    assert [(Path(p.file).name, p.line, p.column) for p in problems] == [("_base.yaml", 2, 13)]


@pytest.mark.parametrize(("written", "expected"), [
    ("property: 123456789", ("properties/123456789",)),
    ('property: "123456789"', ("properties/123456789",)),
    ("property: properties/123456789", ("properties/123456789",)),
    ('properties: [123456789, "987654321", " properties/555555555 "]',
     ("properties/123456789", "properties/987654321", "properties/555555555")),
])
def test_property_ids_are_normalized(tmp_path: Path, written: str,
                                     expected: tuple[str, ...]) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(f"client: P\n{written}\ncurrency: gbp\n"
                    f"goals: [{{event: purchase, tier: macro, value: event}}]\n")
    spec = load_spec(path)
    assert spec.properties == expected
    assert spec.currency == "GBP"


@pytest.mark.parametrize("written", ["property: 0", "property: true", "property: 12.5",
                                     "property: -5"])
def test_property_ids_that_are_not_ids(tmp_path: Path, written: str) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(f"client: P\n{written}\ncurrency: USD\n"
                    f"goals: [{{event: purchase, tier: macro, value: event}}]\n")
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    [error] = caught.value.problems
    assert (error.line, error.column) == (2, 11)
    assert "is not a numeric GA4 property id" in error.message


def test_the_same_property_in_two_files_names_both() -> None:
    specs, problems = validate_paths([SPECS / "claim-a.yaml", SPECS / "claim-b.yaml"])
    assert [s.client for s in specs] == ["Claim A"]
    [error] = problems
    assert error.file.endswith("claim-b.yaml")
    assert (error.line, error.column) == (2, 25)
    assert f"property 100000051 is also claimed by {SPECS / 'claim-a.yaml'}:2:25" in error.message


def test_the_same_file_twice_is_not_a_clash() -> None:
    specs = load_specs([SPECS / "claim-a.yaml", SPECS / ".." / "specs" / "claim-a.yaml"])
    assert [s.client for s in specs] == ["Claim A"]


def test_analytics_360_allows_fifty_custom_key_events(tmp_path: Path) -> None:
    text = (SPECS / "bad-too-many-key-events.yaml").read_text()
    path = tmp_path / "big.yaml"
    path.write_text(text.replace("currency: USD\n", "currency: USD\nservice_level: analytics_360\n"))
    assert len(load_spec(path).goals) == 32
    lines = text.splitlines()
    path.write_text("\n".join(lines[:-3]) + "\n")  # 30 custom + purchase: at the standard limit
    assert len(load_spec(path).goals) == 31


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    empty_dir = tmp_path / "empty"
    empty_dir.mkdir()
    specs, problems = validate_paths([missing, empty_dir])
    assert specs == []
    assert [(p.file, p.line, p.message) for p in problems] == [
        (str(missing), None, "file not found; check the path"),
        (str(empty_dir), None, "no goal spec files (*.yaml or *.yml, not starting with `_`) in this directory"),
    ]


def test_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "locked.yaml"
    path.write_text("client: X\n")
    real = os.open

    def fake_open(name: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if Path(name).name == "locked.yaml":
            raise PermissionError(13, "Permission denied")
        return real(name, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", fake_open)  # a chmod would not stop root
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    [error] = caught.value.problems
    assert str(error) == (f"{path}: error: cannot read the file (Permission denied); "
                          f"check its permissions")


def test_spec_module_is_import_light() -> None:
    """`ga-sync validate` must start fast: no pandas, no Google clients behind spec.py."""
    code = ("import sys, ga_sync.spec; heavy = [m for m in ('pandas', 'google', 'grpc', 'requests') "
            "if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("client: Café\n".encode("latin-1"))
    with pytest.raises(SpecError, match="not UTF-8 text"):
        load_spec(path)


@pytest.mark.parametrize(("name", "expected"), [
    ("sign_up", []),
    ("Sign_Up2", []),
    ("a" * 40, []),
    ("a" * 41, ["is 41 characters long"]),
    ("firebase_campaign", ["starts with `firebase_`"]),
    ("ga_session", ["starts with `ga_`"]),
    ("add to cart!", ["contains space, `!`"]),
    ("9lives", ["must start with a letter"]),
    ("", ["event name is empty"]),
])
def test_check_event_name(name: str, expected: list[str]) -> None:
    messages = check_event_name(name)
    assert len(messages) == len(expected)
    for message, part in zip(messages, expected):
        assert part in message


@pytest.mark.parametrize(("written", "hint"), [
    ('"3,5"', "with a decimal point, without quotes or currency signs: `value: 3.5`"),
    ('"12,50 €"', "with a decimal point, without quotes or currency signs: `value: 12.5`"),
    ('"0,250"', "with a decimal point, without quotes or currency signs: `value: 0.25`"),
    ("12,500", "its comma is ambiguous: write `value: 12500` if the comma separates thousands, "
               "or `value: 12.5` if it is a decimal comma"),
    ('"$1,250.50"', "without quotes, currency signs or thousands separators: `value: 1250.5`"),
    ('"1.250,50"', "without quotes, currency signs or thousands separators, with a decimal point: "
                   "`value: 1250.5`"),
    ('"1000000"', "without quotes or currency signs: `value: 1000000`"),
])
def test_a_number_written_as_text_gets_the_number_it_means(tmp_path: Path, written: str,
                                                            hint: str) -> None:
    path = tmp_path / "v.yaml"
    path.write_text(f"client: V\nproperty: 1\ncurrency: EUR\ngoals:\n"
                    f"  - event: sign_up\n    tier: micro\n    value: {written}\n")
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    [error] = caught.value.problems
    assert (error.line, error.column) == (7, 12)
    assert hint in error.message


@pytest.mark.parametrize("written", ["1,2,3", "12,5000", '"€"'])
def test_commas_that_make_no_number_get_no_hint(tmp_path: Path, written: str) -> None:
    path = tmp_path / "v.yaml"
    path.write_text(f"client: V\nproperty: 1\ncurrency: EUR\ngoals:\n"
                    f"  - event: sign_up\n    tier: micro\n    value: {written}\n")
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    [error] = caught.value.problems
    assert "is neither a number nor `event`" in error.message


def test_value_zero_and_event_are_valid(tmp_path: Path) -> None:
    path = tmp_path / "v.yaml"
    path.write_text("client: V\nproperty: 1\ncurrency: EUR\ngoals:\n"
                    "  - {event: a, tier: micro, value: 0}\n"
                    "  - {event: b, tier: micro, value: event, counting: once_per_session}\n"
                    "  - {event: c, tier: macro, value: 12.75, category: lead, description: 'x: y'}\n")
    spec = load_spec(path)
    assert [(g.event, g.value) for g in spec.goals] == [("a", 0.0), ("b", None), ("c", 12.75)]
    assert spec.goals[1].uses_event_value and spec.goals[1].counting == ONCE_PER_SESSION
    assert spec.goals[2].description == "x: y"


# --- dump -------------------------------------------------------------------------------------


def _reload(text: str, tmp_path: Path) -> Spec:
    path = tmp_path / "dumped.yaml"
    path.write_text(text)
    return load_spec(path)


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=[p.name for p in EXAMPLE_FILES])
def test_load_dump_load_round_trip(path: Path, tmp_path: Path) -> None:
    spec = load_spec(path)
    again = _reload(spec_to_yaml(spec), tmp_path)
    assert again == spec
    assert again.goals == spec.goals  # order, values, categories and descriptions too
    assert spec_to_yaml(again) == spec_to_yaml(spec)


def test_fixture_specs_round_trip(tmp_path: Path) -> None:
    for name in ("override", "chain", "warn-page-view"):
        spec = load_spec(SPECS / f"{name}.yaml")
        assert _reload(spec_to_yaml(spec), tmp_path) == spec


def test_dump_of_live_key_events(tmp_path: Path) -> None:
    states = [
        KeyEventState("purchase", KeyEventSettings(ONCE_PER_EVENT), name="properties/1/keyEvents/1"),
        KeyEventState("generate_lead", KeyEventSettings(ONCE_PER_SESSION, 150.0, "USD"), custom=True),
        KeyEventState("request_quote", KeyEventSettings(ONCE_PER_EVENT, 0.1, "USD"), custom=True),
        KeyEventState("newsletter_signup", KeyEventSettings(ONCE_PER_EVENT, 2.5, "EUR"), custom=True),
        KeyEventState("file_download", KeyEventSettings(ONCE_PER_EVENT), custom=True),
    ]
    text = dump_spec("Client: \"Quoted\" & Co", ["properties/123456789"], "usd", states,
                     source="properties/123456789")
    assert text.startswith("# Goal spec written by ga-sync dump from properties/123456789.\n")
    assert "# Review before use" in text
    assert ("  # left out: `newsletter_signup` has a default value of 2.5 EUR in GA, but this "
            "spec's values are in USD") in text
    spec = _reload(text, tmp_path)
    assert spec.client == 'Client: "Quoted" & Co'
    assert spec.properties == ("properties/123456789",)
    assert spec.currency == "USD"
    assert spec.goals == (
        Goal("purchase", MACRO, None, ONCE_PER_EVENT),
        Goal("generate_lead", MACRO, 150.0, ONCE_PER_SESSION),
        Goal("request_quote", MACRO, 0.1, ONCE_PER_EVENT),
        Goal("file_download", MICRO, None, ONCE_PER_EVENT),
    )
    kept = [s for s in states if s.event != "newsletter_signup"]
    assert {e: s.counting for e, s in spec.desired().items()} == {
        s.event: s.settings.counting for s in kept}
    assert _reload(spec_to_yaml(spec), tmp_path) == spec
    assert goals_from_key_events(kept, "USD") == list(spec.goals)


def _plan_of_dump(dumped: str, states: list[KeyEventState], tmp_path: Path) -> PropertyPlan:
    """validate the dumped text as `ga-sync validate` does, then plan it against the same state."""
    path = tmp_path / "dumped.yaml"
    path.write_text(dumped)
    specs, problems = validate_paths([path])
    assert problems == [], "\n".join(map(str, problems))
    [spec] = specs
    return diff(spec.properties[0], spec.client, spec.desired(), states)


def test_dump_uses_the_currency_ga_holds_the_values_in(tmp_path: Path) -> None:
    states = [
        KeyEventState("purchase", KeyEventSettings(ONCE_PER_EVENT)),
        KeyEventState("sign_up", KeyEventSettings(ONCE_PER_EVENT, 5.0, "EUR"), custom=True),
        KeyEventState("generate_lead", KeyEventSettings(ONCE_PER_SESSION, 80.0, "eur"), custom=True),
    ]
    dumped = dump_property("Euro Shop", [42], "USD", states)
    assert dumped.currency == "EUR" and dumped.left_out == ()
    assert "\ncurrency: EUR\n" in dumped.text
    assert "# Currency: GA holds these default values in EUR; the property's currency is USD.\n" \
        in dumped.text
    plan = _plan_of_dump(dumped.text, states, tmp_path)
    assert plan.changes == () and plan.unmanaged == ()
    no_values = [KeyEventState("purchase", KeyEventSettings(ONCE_PER_EVENT))]
    assert "\ncurrency: USD\n" in dump_spec("Shop", [42], "usd", no_values)


def test_dump_leaves_out_what_a_spec_cannot_hold(tmp_path: Path) -> None:
    long_name = "newsletter_signup_confirmation_thank_you_page"
    states = [
        KeyEventState("purchase", KeyEventSettings(ONCE_PER_EVENT), name="properties/7/keyEvents/1"),
        KeyEventState("Sign_Up", KeyEventSettings(ONCE_PER_EVENT, 5.0, "EUR"), custom=True),
        KeyEventState("sign_up", KeyEventSettings(ONCE_PER_EVENT, 5.0, "EUR"), custom=True),
        KeyEventState("generate_lead", KeyEventSettings(ONCE_PER_SESSION, 120.0, "EUR"), custom=True),
        KeyEventState("request_quote", KeyEventSettings(ONCE_PER_EVENT, 40.0, "GBP"), custom=True),
        KeyEventState(long_name, KeyEventSettings(ONCE_PER_EVENT), custom=True),
        KeyEventState("Contact_Click", KeyEventSettings(ONCE_PER_EVENT), custom=True),
        KeyEventState("CONTACT_CLICK", KeyEventSettings(ONCE_PER_EVENT), custom=True),
    ]
    dumped = dump_property("Mixed", ["properties/7"], "USD", states, source="properties/7")
    assert dumped.currency == "EUR"
    assert [item.event for item in dumped.left_out] == [
        "Sign_Up", "request_quote", long_name, "CONTACT_CLICK"]
    reasons = {item.event: str(item) for item in dumped.left_out}
    assert reasons["Sign_Up"].startswith("`Sign_Up` and `sign_up` differ only in letter case")
    assert "kept `sign_up`, the lower_snake_case spelling GA recommends" in reasons["Sign_Up"]
    assert "kept `Contact_Click`, the first in GA's order" in reasons["CONTACT_CLICK"]
    assert reasons["request_quote"].startswith(
        "`request_quote` has a default value of 40 GBP in GA, but this spec's values are in EUR")
    assert reasons[long_name] == (f"event name `{long_name}` is 45 characters long; GA4 allows at "
                                  f"most 40, and a longer key event is not reported (see "
                                  f"`ga-sync audit`)")
    for item in dumped.left_out:
        assert f"  # left out: {item.reason}\n" in dumped.text
    assert "# 4 key events left out" in dumped.text
    plan = _plan_of_dump(dumped.text, states, tmp_path)
    assert plan.changes == ()
    assert plan.unmanaged == tuple(sorted(item.event for item in dumped.left_out))
    assert dump_spec("Mixed", ["properties/7"], "USD", states, source="properties/7") == dumped.text


def test_dump_of_more_key_events_than_a_standard_property_allows(tmp_path: Path) -> None:
    states = [KeyEventState(f"step_{i}", KeyEventSettings(ONCE_PER_EVENT), custom=True)
              for i in range(35)]
    text = dump_spec("Big", [9], "USD", states)
    assert "\nservice_level: analytics_360\n" in text
    assert _plan_of_dump(text, states, tmp_path).changes == ()


def test_dump_writes_service_level_and_rate_basis(tmp_path: Path) -> None:
    text = dump_spec("X", [1], "EUR", [Goal("sign_up", MICRO, 1e-05)], rate_basis="users",
                     service_level="analytics_360")
    assert "service_level: analytics_360\n" in text
    spec = _reload(text, tmp_path)
    assert spec.rate_basis == "users"
    assert spec.goals == (Goal("sign_up", MICRO, 1e-05),)


@pytest.mark.parametrize(("event", "tier"), [
    ("purchase", MACRO), ("generate_lead", MACRO), ("close_convert_lead", MACRO),
    ("request_quote", MACRO), ("in_app_purchase", MACRO), ("add_to_cart", MICRO),
    ("sign_up", MICRO), ("newsletter_signup", MICRO), ("leaderboard_view", MICRO),
])
def test_guess_tier(event: str, tier: str) -> None:
    assert guess_tier(event) == tier


def test_a_broken_base_does_not_add_missing_key_noise(tmp_path: Path) -> None:
    (tmp_path / "_bad.yaml").write_text("goals: [a\n")
    (tmp_path / "x.yaml").write_text("client: X\nproperty: 5\ncurrency: usd\nextends: _bad.yaml\n")
    specs, problems = validate_paths([tmp_path])
    assert specs == []
    assert [(Path(p.file).name, p.line, p.column) for p in problems] == [
        ("_bad.yaml", 2, 1), ("x.yaml", 4, 10)]
    assert problems[1].message == "cannot extend `_bad.yaml`: it is not valid YAML"


def test_the_documented_example_is_valid(tmp_path: Path) -> None:
    """The first YAML block of docs/spec.md is the format's summary; it must load."""
    doc = (ROOT / "docs" / "spec.md").read_text()
    block = doc.split("```yaml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "_agency_defaults.yaml").write_text(
        (EXAMPLES / "_agency_defaults.yaml").read_text())
    spec = _reload(block, tmp_path)
    assert spec.client == "Acme Outdoor" and spec.properties == ("properties/123456789",)
    assert spec.goal("purchase") == Goal("purchase", MACRO, None, ONCE_PER_EVENT, "sales",
                                         "Completed order")
    assert spec.goal("newsletter_signup") is not None  # inherited through `extends`


def test_validating_a_base_file_says_it_is_one() -> None:
    specs, problems = validate_paths([EXAMPLES / "_agency_defaults.yaml"])
    assert specs == []
    assert [p.message for p in problems] == [
        "this is a base file for `extends` (its name starts with `_`), not a spec of its own: "
        "validate a spec that extends it"]


# --- trust: odd files, secrets, limits ----------------------------------------------------------

GOOD = "client: C\nproperty: {pid}\ncurrency: USD\ngoals: [{{event: purchase, tier: macro, value: event}}]\n"
FAKE_PEM = ("-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7Vj0FAKEFAKE\n"
            "c2VjcmV0LWtleS1tYXRlcmlhbC1ub3QtcmVhbC1idXQtbG9uZy1lbm91Z2g\n"
            "-----END PRIVATE KEY-----\n")
FAKE_ENV = "API_KEY=sk_live_51HxFAKEsecretFAKEsecret00\nDB_PASSWORD=hunter2-correct-horse\n"
SECRETS = ("MIIEvQ", "c2VjcmV0", "BEGIN PRIVATE", "sk_live", "hunter2", "FAKEsecret")


def _problems(paths: list[Path], **kwargs: Any) -> tuple[list[Spec], list[Problem], str]:
    specs, problems = validate_paths(paths, **kwargs)
    return specs, problems, "\n".join(map(str, problems))


@pytest.mark.parametrize("content", [FAKE_PEM, FAKE_ENV], ids=["pem", "env"])
def test_a_secret_file_is_never_quoted(tmp_path: Path, content: str) -> None:
    """Given directly or reached through extends, a key or a .env is named by kind, never shown."""
    secret = tmp_path / ("key.pem" if "BEGIN" in content else ".env")
    secret.write_text(content)
    (tmp_path / "spec.yaml").write_text(f"client: C\nproperty: 1\ncurrency: USD\n"
                                        f"extends: {secret.name}\n")
    for paths in ([secret], [tmp_path / "spec.yaml"]):
        specs, problems, text = _problems(paths)
        assert specs == []
        assert "the top level is a text value" in text
        assert not any(s in text for s in SECRETS), text
    assert "cannot extend `" + secret.name + "`: its top level is not a mapping" in text
    with pytest.raises(SpecError) as caught:
        load_spec(tmp_path / "spec.yaml")
    assert not any(s in str(caught.value) for s in SECRETS)


def test_secret_values_in_a_mapping_are_never_quoted(tmp_path: Path) -> None:
    path = tmp_path / "creds.yaml"
    path.write_text("type: service_account\nprivate_key: |\n  " + FAKE_PEM.replace("\n", "\n  ")
                    + "\nclient: sk_live_51HxFAKEsecretFAKEsecret00\nclient: hunter2-correct-horse\n")
    _, problems, text = _problems([path])
    assert problems and not any(s in text for s in SECRETS), text
    (tmp_path / "creds.yaml").write_text(
        "client: [a]\nproperty: 1\ncurrency: USD\nextends: x\ngoals:\n"
        "  - {event: 'API_KEY=sk_live_51HxFAKEsecretFAKEsecret00', tier: micro, value: 1}\n"
        "  - {event: e, tier: 'token: hunter2-correct-horse', value: 'password=hunter2'}\n")
    _, problems, text = _problems([path])
    assert len(problems) >= 3 and not any(s in text for s in SECRETS), text
    assert all(len(p.message) < 400 for p in problems)


def test_quoted_values_are_short(tmp_path: Path) -> None:
    path = tmp_path / "long.yaml"
    long = "x" * 5000
    path.write_text(f"client: C\nproperty: {long}\ncurrency: {long}\nrate_basis: {long}\n"
                    f"{long[:1000]}: 1\ngoals:\n  - {{event: e{long}, tier: {long}, value: {long}}}\n")
    _, problems, _ = _problems([path])
    assert len(problems) >= 6
    assert all(len(p.message) < 400 for p in problems), [len(p.message) for p in problems]


def _runs_within(seconds: float, fn: Any) -> Any:
    """fn() in a thread; fails instead of hanging the suite when fn blocks (a FIFO read would)."""
    import threading
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(fn()), daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still running after {seconds} s"
    return result[0]


def _special_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """name -> (a path, what the message must say), made in tmp_path."""
    import socket
    made: dict[str, tuple[Path, str]] = {}
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    made["fifo"] = (fifo, "is a FIFO (named pipe), not a regular file")
    made["device"] = (Path("/dev/zero"), "is a character device, not a regular file")
    sock_path = tmp_path / "s.yaml"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(sock_path))
    made["socket"] = (sock_path, "is a socket, not a regular file")
    (tmp_path / "loop-a.yaml").symlink_to(tmp_path / "loop-b.yaml")
    (tmp_path / "loop-b.yaml").symlink_to(tmp_path / "loop-a.yaml")
    made["symlink loop"] = (tmp_path / "loop-a.yaml", "is a symbolic link loop")
    (tmp_path / "broken.yaml").symlink_to(tmp_path / "nowhere.yaml")
    made["broken symlink"] = (tmp_path / "broken.yaml", "is a broken symbolic link")
    huge = tmp_path / "huge.yaml"
    with huge.open("wb") as f:
        f.truncate(20 * 1024 * 1024)  # sparse: 20 MB that cost nothing to make
    made["huge"] = (huge, "is larger than 256 KiB (20,971,520 bytes)")
    return made


def test_any_kind_of_file_as_a_spec_is_an_error_not_a_hang(tmp_path: Path) -> None:
    for name, (path, says) in _special_files(tmp_path).items():
        specs, problems, text = _runs_within(5, lambda: _problems([path]))
        assert specs == [], name
        assert len(problems) == 1 and problems[0].file == str(path), text
        assert says in problems[0].message, (name, text)


def test_any_kind_of_file_as_an_extends_target_is_an_error_not_a_hang(tmp_path: Path) -> None:
    specials = _special_files(tmp_path)
    (tmp_path / "folder.yaml").mkdir()
    specials["directory"] = (tmp_path / "folder.yaml", "is a directory")
    for name, (path, says) in specials.items():
        spec = tmp_path / "spec.yaml"
        target = path.name if path.parent == tmp_path else str(path)
        spec.write_text(GOOD.format(pid=1) + f"extends: {target}\n")
        specs, problems, text = _runs_within(5, lambda: _problems([spec], bases=["/dev"]))
        assert specs == [], name
        expected = f"cannot extend `{target}`: it " + says.split(" (")[0]
        assert any(expected in p.message and (p.line, p.column) == (5, 10) for p in problems), \
            (name, text)


def test_devices_outside_the_tree_are_not_even_looked_at(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(GOOD.format(pid=1) + "extends: /dev/zero\n")
    _, problems, text = _problems([spec])
    [error] = problems
    assert (error.line, error.column) == (5, 10)
    assert error.message.startswith(f"extends `/dev/zero`, which is outside the spec folder "
                                    f"({tmp_path.resolve()})"), text


def test_extends_stays_in_the_tree_unless_a_base_folder_is_given(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    specs_dir = tmp_path / "specs"
    (specs_dir / "sub").mkdir(parents=True)
    shared.mkdir()
    (shared / "_base.yaml").write_text("currency: EUR\n")
    (specs_dir / "sub" / "_in.yaml").write_text("currency: GBP\n")
    (specs_dir / "a.yaml").write_text(GOOD.replace("currency: USD\n", "").format(pid=1)
                                      + "extends: ../shared/_base.yaml\n")
    (specs_dir / "b.yaml").write_text(GOOD.replace("currency: USD\n", "").format(pid=2)
                                      + "extends: sub/_in.yaml\n")
    (specs_dir / "_link.yaml").symlink_to(shared / "_base.yaml")
    (specs_dir / "c.yaml").write_text(GOOD.replace("currency: USD\n", "").format(pid=3)
                                      + "extends: _link.yaml\n")
    specs, problems, text = _problems([specs_dir])
    assert [s.client for s in specs] == ["C"] and specs[0].currency == "GBP"  # b.yaml only
    outside = [p for p in problems if "outside the spec folder" in p.message]
    assert [(Path(p.file).name, p.line) for p in outside] == [("a.yaml", 4), ("c.yaml", 4)], text
    assert "extends `../shared/_base.yaml`, which is outside" in outside[0].message
    assert "extends `_link.yaml`, which is outside" in outside[1].message  # the link is resolved
    specs, problems, _ = _problems([specs_dir], bases=[shared])
    assert problems == [] and [s.currency for s in specs] == ["EUR", "GBP", "EUR"]
    # a file given on its own: its folder is the tree
    specs, problems, _ = _problems([specs_dir / "b.yaml"])
    assert problems == [] and specs[0].currency == "GBP"
    assert load_spec(specs_dir / "a.yaml", bases=[str(shared)]).currency == "EUR"


def test_a_chain_of_1200_extends_stops_at_the_limit(tmp_path: Path) -> None:
    for i in range(1200):
        (tmp_path / f"_b{i}.yaml").write_text(f"extends: _b{i + 1}.yaml\n")
    (tmp_path / "_b1200.yaml").write_text("currency: USD\n")
    (tmp_path / "spec.yaml").write_text(GOOD.replace("currency: USD\n", "").format(pid=1)
                                        + "extends: _b0.yaml\n")
    specs, problems, text = _runs_within(10, lambda: _problems([tmp_path / "spec.yaml"]))
    assert specs == []
    [error] = problems
    assert (Path(error.file).name, error.line, error.column) == ("_b30.yaml", 1, 10)
    assert error.message == ("extends `_b31.yaml`, but this `extends` chain is already 32 files "
                             "long (at most 32); merge some base files")


def test_extends_through_a_symlink_loop(tmp_path: Path) -> None:
    (tmp_path / "_a.yaml").symlink_to(tmp_path / "_b.yaml")
    (tmp_path / "_b.yaml").symlink_to(tmp_path / "_a.yaml")
    (tmp_path / "spec.yaml").write_text(GOOD.format(pid=1) + "extends: _a.yaml\n")
    _, problems, text = _problems([tmp_path / "spec.yaml"])
    [error] = problems
    assert (error.line, error.column) == (5, 10)
    assert error.message == "cannot extend `_a.yaml`: it is a symbolic link loop"


def test_a_bad_file_only_invalidates_the_specs_that_use_it(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "_pipe.yaml")
    (tmp_path / "a.yaml").write_text(GOOD.format(pid=1) + "extends: _pipe.yaml\n")
    (tmp_path / "b.yaml").write_text(GOOD.format(pid=2))
    (tmp_path / "c.yaml").symlink_to(tmp_path / "gone.yaml")
    (tmp_path / "d.yaml").write_text("client: [")
    (tmp_path / "e.yaml").write_text(GOOD.format(pid=5))
    specs, problems, text = _runs_within(5, lambda: _problems([tmp_path]))
    assert [s.path.name for s in specs] == ["b.yaml", "e.yaml"]
    assert [(Path(p.file).name, p.severity) for p in problems] == [
        ("a.yaml", "error"), ("c.yaml", "error"), ("d.yaml", "error")], text
    with pytest.raises(SpecError) as caught:
        load_specs([tmp_path])
    assert len(caught.value.problems) == 3


def test_wrong_case_extensions_are_loaded_with_a_warning(tmp_path: Path) -> None:
    (tmp_path / "Client.YAML").write_text(GOOD.format(pid=1))
    (tmp_path / "x.Yml").write_text(GOOD.format(pid=2))
    (tmp_path / "_Base.YAML").write_text("currency: USD\n")  # a base: skipped as always
    (tmp_path / "notes.txt").write_text("not a spec")
    specs, problems, text = _problems([tmp_path])
    assert [s.path.name for s in specs] == ["Client.YAML", "x.Yml"]
    assert [(Path(p.file).name, p.severity) for p in problems] == [
        ("Client.YAML", "warning"), ("x.Yml", "warning")]
    assert problems[0].message == ("the extension `.YAML` is not lowercase; the file is loaded as a "
                                   "spec, but rename it to `Client.yaml`")
    assert specs[0].warnings == (str(problems[0]),)  # plan and apply show it too


def test_limits_answer_fast(tmp_path: Path) -> None:
    """A 20 MB spec, and files just under the size limit, are refused in bounded time."""
    import time
    goal = "  - event: micro_goal_{i}\n    tier: micro\n    value: 1\n"
    head = "client: X\nproperty: 1\ncurrency: USD\ngoals:\n"
    huge = tmp_path / "huge.yaml"
    huge.write_text(head + "".join(goal.format(i=i) for i in range(350_000)))
    started = time.monotonic()
    _, problems, _ = _problems([huge])
    assert time.monotonic() - started < 0.5
    assert [p.message.split(" (")[0] for p in problems] == ["is larger than 256 KiB"]
    near = tmp_path / "near.yaml"
    text, i = head, 0
    while len(text) < 256 * 1024 - 100:
        text, i = text + goal.format(i=i), i + 1
    near.write_text(text)
    flow = tmp_path / "flow.yaml"
    flow.write_text("client: X\nproperties: [" + ",".join(["1"] * 100_000) + "]\n")
    for path in (near, flow):
        assert path.stat().st_size < 256 * 1024
        started = time.monotonic()
        _, problems, text = _problems([path])
        assert time.monotonic() - started < 3  # about 1 s on a busy 2-core machine
        assert [p.message for p in problems] == [
            "more than 10,000 values in one file; a goal spec has at most 500 goals: check that "
            "this is a goal spec"], text


def test_many_goals_are_refused_before_any_goal_is_read(tmp_path: Path) -> None:
    path = tmp_path / "many.yaml"
    path.write_text("client: X\nproperty: 1\ncurrency: USD\ngoals:\n"
                    + "".join(f"  - {{event: 'bad name {i}', tier: x}}\n" for i in range(501)))
    _, problems, _ = _problems([path])
    assert [(p.line, p.column, p.message.split(";")[0]) for p in problems] == [
        (5, 3, "501 goals in one file")]


def test_problems_per_file_are_capped(tmp_path: Path) -> None:
    path = tmp_path / "noisy.yaml"
    path.write_text("client: X\nproperty: 1\ncurrency: USD\ngoals:\n"
                    + "".join(f"  - {{event: 'bad name {i}', tier: x, value: y}}\n" for i in range(300)))
    _, problems, _ = _problems([path])
    assert len(problems) == 101
    assert problems[-1].message.startswith("more than 100 problems in this file; the rest are not "
                                           "listed")


def test_an_alias_bomb_stays_small(tmp_path: Path) -> None:
    levels = ["a: &a [x, x, x, x, x, x, x, x, x]"]
    for n, name in enumerate("bcdefghi"):
        prev = "abcdefghi"[n]
        levels.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(levels) + "\nclient: *i\nproperty: 1\ncurrency: USD\ngoals: *i\n")
    specs, problems, text = _runs_within(5, lambda: _problems([path]))
    assert specs == [] and 0 < len(problems) <= 101
    assert "client must be a name, got a list" in text


@pytest.mark.parametrize(("written", "value"), [("-0.0", 0.0), ("1e12", 1e12), ("0", 0.0),
                                                ("1000000000000", 1e12), ("&v 12.5", 12.5)])
def test_value_edges_that_load(tmp_path: Path, written: str, value: float) -> None:
    path = tmp_path / "v.yaml"
    path.write_text(f"client: V\nproperty: 1\ncurrency: EUR\ngoals:\n"
                    f"  - event: sign_up\n    tier: micro\n    value: {written}\n")
    [goal] = load_spec(path).goals
    assert goal.value == value and str(goal.value) == str(value)  # -0.0 is 0.0


@pytest.mark.parametrize(("written", "says"), [
    ("1000000000000.5", "is more than 1000000000000"),
    ("-.inf", "is not a finite number"),
    ("&t true", "is a yes/no, not an amount"),
    ("!!binary aGVsbG8=", "got binary data"),
    ("2024-01-31", "got `2024-01-31`"),
    ("{a: 1}", "got a mapping"),
    ("!secret sk_live_51HxFAKEsecretFAKEsecret00", "got a value with a custom `!tag`"),
])
def test_value_edges_that_do_not(tmp_path: Path, written: str, says: str) -> None:
    path = tmp_path / "v.yaml"
    path.write_text(f"client: V\nproperty: 1\ncurrency: EUR\ngoals:\n"
                    f"  - event: sign_up\n    tier: micro\n    value: {written}\n")
    _, problems, text = _problems([path])
    assert [(p.line, p.column) for p in problems] == [(7, 12)], text
    assert says in text and "sk_live" not in text


@pytest.mark.parametrize("written", ["0x1F", "0o17", "+5", "1_000", "'１２３'", "'properties/１２３'",
                                     "9223372036854775808", "'9223372036854775808'", "'12 3'",
                                     "' 12x'", "'0'", "-0", "1e3", "'٣'", "'properties/'"])
def test_property_ids_must_be_plain_decimal(tmp_path: Path, written: str) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(f"client: P\nproperty: {written}\ncurrency: USD\n"
                    f"goals: [{{event: purchase, tier: macro, value: event}}]\n")
    _, problems, text = _problems([path])
    assert [(p.line, p.column) for p in problems] == [(2, 11)], text


def test_the_largest_property_id_loads(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(GOOD.format(pid=2 ** 63 - 1) + "rate_basis: users\n")
    assert load_spec(path).properties == (f"properties/{2 ** 63 - 1}",)
    path.write_text(GOOD.format(pid=1).replace("property: 1", "properties: [017, '0018']"))
    assert load_spec(path).properties == ("properties/17", "properties/18")


@pytest.mark.parametrize("raw", ["１２３", "+123", "1_000", "0x1F", 2 ** 63, str(2 ** 63), "0",
                                 "properties/0", 0, "12 3", "123abc", " 123\n4", 10 ** 5000],
                         ids=lambda raw: repr(raw)[:20] if not isinstance(raw, int) or raw < 10 ** 100 else "huge")
def test_property_name_refuses_what_ga_never_has(raw: Any) -> None:
    from ga_sync.model import property_name
    with pytest.raises(ValueError) as caught:
        property_name(raw)
    assert len(str(caught.value)) < 200


@pytest.mark.parametrize(("name", "part"), [
    ("price_per_m²", "(e.g. `price_per_m2`)"),
    ("café_visit", "(e.g. `cafe_visit`)"),
    ("ＳＩＧＮ_ＵＰ", "(e.g. `SIGN_UP`)"),
    ("é", "must start with a letter (A-Z or a-z)"),
    ("a\u200bb", "contains U+200B"),
    ("日本語", "contains `日`, `本`, `語`"),
    ("google_m²", "starts with `google_`"),
    ("x" * 100_000 + "²", "is 100001 characters long"),
])
def test_non_ascii_event_names(name: str, part: str) -> None:
    messages = _runs_within(5, lambda: check_event_name(name))
    assert messages and any(part in m for m in messages), messages
    assert all(len(m) < 300 for m in messages)
