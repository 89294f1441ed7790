"""Funnels and identifying goals in specs: `funnels:` loads into `Spec.funnels`, `identifies:`
into `Goal.identifies`; every rule refuses at file:line:column, all problems at once; steps
that are no goal are warned about; `extends` inherits and replaces funnels by name; dump keeps
them."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ga_sync.dump import spec_to_yaml
from ga_sync.errors import SpecError
from ga_sync.model import Funnel, Spec
from ga_sync.spec import load_spec, load_specs, validate_paths
from ga_sync.spec_rules import (FUNNEL_STEPS_MAX, KNOWN_STEP_EVENTS, WITHIN_MAX, within_text)

SPECS = Path(__file__).resolve().parent / "specs"
JOURNEYS = SPECS / "journeys"
DAY = 86_400

# fixture, (line, column), the message (whole), errors in the file
BAD = [
    ("bad-journey-funnels-not-list", (11, 10), "funnels must be a list, each entry starting "
                                               "with `- name:`, got a text value"),
    ("bad-journey-funnels-empty", (11, 10), "funnels is empty; list at least one funnel (`- "
                                            "name: ...` with `steps:`), or leave out `funnels:`"),
    ("bad-journey-funnel-not-mapping", (12, 5), "funnel `checkout` is not a mapping; write each "
                                                "funnel as `- name: checkout` followed by "
                                                "`steps: [...]`"),
    ("bad-journey-funnel-unknown-key", (14, 5), "unknown funnel key `opne`; did you mean "
                                                "`open`? (funnel keys: name, steps, within, "
                                                "open)"),
    ("bad-journey-name-missing", (12, 5), "funnel is missing `name:`, a short label for the "
                                          "report (e.g. `name: checkout`)"),
    ("bad-journey-name-not-text", (12, 11), "funnel name must be a short label, got a list; "
                                            "e.g. `name: checkout`"),
    ("bad-journey-name-empty", (12, 11), "funnel name is empty; write a short label for the "
                                         "report, e.g. `name: checkout`"),
    ("bad-journey-name-long", (12, 11), "funnel name `From the product page through the cart "
                                        "to the order, all of…` is 62 characters long; at most "
                                        "60 (it labels the report's funnel chart): shorten it"),
    ("bad-journey-name-line-break", (12, 11), "funnel name `check out` holds a line break or "
                                              "control character; write it on one line"),
    ("bad-journey-name-duplicate", (14, 11), "funnel `Checkout` has the same name as the funnel "
                                             "at line 12:11 (`checkout`; names are compared "
                                             "ignoring letter case); give each funnel its own "
                                             "name"),
    ("bad-journey-steps-missing", (12, 5), "funnel `checkout` is missing `steps:`, the events "
                                           "visitors pass through in order (2 to 10), e.g. "
                                           "`steps: [view_item, add_to_cart, purchase]`"),
    ("bad-journey-steps-not-list", (13, 12), "steps must be a list of event names, e.g. `steps: "
                                             "[view_item, add_to_cart, purchase]`, got a text "
                                             "value"),
    ("bad-journey-steps-too-few", (13, 12), "funnel `checkout` has 1 step; a funnel needs 2 to "
                                            "10 steps to show where visitors drop off"),
    ("bad-journey-steps-too-many", (13, 12), "funnel `checkout` has 11 steps; GA's funnel "
                                             "reports take at most 10: drop steps, or split it "
                                             "into two funnels"),
    ("bad-journey-step-invalid", (13, 13), "step `add-to-cart` is not a GA4 event name (a "
                                           "letter first, then ASCII letters, digits and "
                                           "underscores, at most 40 characters); did you mean "
                                           "`add_to_cart`?"),
    ("bad-journey-step-long", (13, 26), "step `completed_the_purchase_on_the_thank_you_pg` is "
                                        "not a GA4 event name (a letter first, then ASCII "
                                        "letters, digits and underscores, at most 40 "
                                        "characters)"),
    ("bad-journey-step-empty", (13, 13), "step is empty; write a GA4 event name, e.g. "
                                         "`add_to_cart`"),
    ("bad-journey-step-not-text", (13, 26), "step must be a GA4 event name, got `5`; e.g. "
                                            "`add_to_cart`"),
    ("bad-journey-step-repeated", (13, 37), "step `add_to_cart` is listed twice in funnel "
                                            "`checkout` (first at line 13:13); one event counts "
                                            "for one step: remove one"),
    ("bad-journey-within-number", (14, 13), "within `30` has no unit; write the number with "
                                            "one: `30d` (days), `30h` (hours), `30m` (minutes) "
                                            "or `30s` (seconds)"),
    ("bad-journey-within-zero", (14, 13), "within `0d` must be more than 0; leave out "
                                          "`within:` for no limit"),
    ("bad-journey-within-too-long", (14, 13), "within `366d` is more than 365 days, the most "
                                              "ga-sync takes (a report covers at most about a "
                                              "year); write at most `365d`, or leave out "
                                              "`within:` for no limit"),
    ("bad-journey-within-unit-word", (14, 13), "within `30 days` is not a duration ga-sync "
                                               "reads; write `30d`"),
    ("bad-journey-within-unit-uppercase", (14, 13), "within `12H` is not a duration ga-sync "
                                                    "reads; write `12h`"),
    ("bad-journey-within-space", (14, 13), "within `30 d`: write the number and its unit "
                                           "together, `30d`"),
    ("bad-journey-within-weeks", (14, 13), "within `2w`: weeks are written in days, `14d`"),
    ("bad-journey-within-months", (14, 13), "within `1 month`: months and years vary in "
                                            "length; write days, e.g. `30d` (`m` is minutes)"),
    ("bad-journey-within-decimal", (14, 13), "within `1.5h` is not a whole number of a unit: "
                                             "write `90m`"),
    ("bad-journey-within-bool", (14, 13), "within `true` is a yes/no, not a duration; write "
                                          "one of `30d` (days), `12h` (hours), `90m` (minutes) "
                                          "or `45s` (seconds), or leave out `within:` for no "
                                          "limit"),
    ("bad-journey-within-not-duration", (14, 13), "within must be a duration such as `30d` "
                                                  "(days), `12h` (hours), `90m` (minutes) or "
                                                  "`45s` (seconds), got `soon`; leave out "
                                                  "`within:` for no limit"),
    ("bad-journey-open-not-bool", (14, 11), "open `yes` is text to YAML 1.2 (which ga-sync "
                                            "reads); write `true`"),
    ("bad-journey-open-not-flag", (14, 11), "open must be `true` or `false`, got `1`; `false` "
                                            "(the default) counts only visitors who enter at "
                                            "the first step, `true` lets them enter at any "
                                            "step"),
    ("bad-journey-identifies-not-bool", (11, 17), "identifies `true` is text; write `true` "
                                                  "without quotes"),
]


@pytest.mark.parametrize(("name", "where", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_fixture_reports_its_problem_at_its_place(name: str, where: tuple[int, int],
                                                      message: str) -> None:
    path = JOURNEYS / f"{name}.yaml"
    with pytest.raises(SpecError) as caught:
        load_specs([path])
    [problem] = caught.value.problems
    assert (problem.severity, problem.message) == ("error", message)
    assert (problem.file, problem.line, problem.column) == (str(path), *where)
    assert f"{path}:{where[0]}:{where[1]}: error: {message}" in str(caught.value)


def test_every_bad_journey_fixture_is_covered() -> None:
    """A new bad-*.yaml in tests/specs/journeys without an expectation would test nothing."""
    assert {b[0] for b in BAD} == {p.stem for p in JOURNEYS.glob("bad-*.yaml")}


def test_every_problem_of_a_funnel_at_once(tmp_path: Path) -> None:
    path = _spec(tmp_path, "funnels:\n"
                           "  - name: checkout\n    steps: [a-b, 5, view_item, view_item]\n"
                           "    within: 30\n    open: maybe\n    extra: 1\n"
                           "  - name: CHECKOUT\n    steps: [purchase]\n", identifies="'yes'")
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    where = [(p.line, p.column) for p in caught.value.problems]
    assert where == [(11, 17), (14, 13), (14, 18), (14, 32), (15, 13), (16, 11), (17, 5),
                     (18, 11), (19, 12)], [str(p) for p in caught.value.problems]
    assert all(p.severity == "error" for p in caught.value.problems)


# --------------------------------------------------------------------------- the good paths


def test_funnels_and_identifies_load() -> None:
    spec = load_spec(JOURNEYS / "journeys.yaml")
    assert spec.funnels == (
        Funnel("checkout", ("view_item", "add_to_cart", "begin_checkout", "purchase"), 30 * DAY),
        Funnel("Lead by phone", ("page_view", "generate_lead"), 90 * 60),
        Funnel("sign-up to order", ("sign_up", "purchase"), None, True),
        Funnel("fast", ("session_start", "add_to_cart"), 45),
        Funnel("same day", ("newsletter_signup", "login_completed"), DAY),
    )
    assert {g.event for g in spec.goals if g.identifies} == {"sign_up", "login_completed"}
    assert spec.warnings == ()  # an identifying macro goal is fine
    assert spec.funnels[0].location is not None and \
        (spec.funnels[0].location.line, spec.funnels[0].location.column) == (28, 11)
    assert spec.funnels[0].to_json() == {"name": "checkout", "steps": [
        "view_item", "add_to_cart", "begin_checkout", "purchase"], "within": 30 * DAY,
        "open": False}


def test_a_spec_without_funnels_has_none(tmp_path: Path) -> None:
    spec = load_spec(_spec(tmp_path, ""))
    assert spec.funnels == () and not any(g.identifies for g in spec.goals)
    for path in sorted(SPECS.glob("*.yaml")):
        if not path.stem.startswith(("bad-", "_", "claim")):
            loaded = load_spec(path)
            assert loaded.funnels == () and not any(g.identifies for g in loaded.goals), path


@pytest.mark.parametrize(("written", "seconds"), [
    ("1s", 1), ("45s", 45), ("90m", 5400), ("1h", 3600), ("24h", DAY), ("30d", 30 * DAY),
    ("365d", WITHIN_MAX), ("8760h", WITHIN_MAX), ("525600m", WITHIN_MAX),
    ("31536000s", WITHIN_MAX), ("007d", 7 * DAY), ("'12h'", 12 * 3600), ('"5m"', 300),
])
def test_within_units(tmp_path: Path, written: str, seconds: int) -> None:
    spec = load_spec(_spec(tmp_path, _funnel(f"within: {written}")))
    assert spec.funnels[0].within == seconds


@pytest.mark.parametrize("written", ["366d", "8761h", "525601m", "31536001s", "0s", "0d",
                                     "-1d", "1y", "P30D", "30", "30.0", "1e3s", "3O d", "d",
                                     "[30d]", "{d: 30}", "null", "''"])
def test_within_refusals(tmp_path: Path, written: str) -> None:
    with pytest.raises(SpecError) as caught:
        load_spec(_spec(tmp_path, _funnel(f"within: {written}")))
    [problem] = caught.value.problems
    assert problem.message.startswith("within") and (problem.line, problem.column) == (14, 13)


def test_step_counts(tmp_path: Path) -> None:
    """2 and GA's 10 pass; 1 and 11 fail (counted independently of the loader)."""
    events = [f"step_{i}" for i in range(FUNNEL_STEPS_MAX + 1)]
    goals = "".join(f"  - {{event: {e}, tier: micro, value: 1}}\n" for e in events)
    for count, ok in ((1, False), (2, True), (10, True), (11, False)):
        path = tmp_path / "s.yaml"
        path.write_text("client: C\nproperty: 1\ncurrency: USD\nservice_level: analytics_360\n"
                        f"goals:\n{goals}funnels:\n  - name: f\n"
                        f"    steps: [{', '.join(events[:count])}]\n")
        if ok:
            assert len(load_spec(path).funnels[0].steps) == count
        else:
            with pytest.raises(SpecError):
                load_spec(path)


def test_open_and_identifies_take_booleans(tmp_path: Path) -> None:
    spec = load_spec(_spec(tmp_path, _funnel("open: true"), identifies="false"))
    assert spec.funnels[0].open is True and not any(g.identifies for g in spec.goals)
    for bad in ("1", "'false'", "null", "[true]"):
        with pytest.raises(SpecError):
            load_spec(_spec(tmp_path, _funnel(f"open: {bad}")))
        with pytest.raises(SpecError):
            load_spec(_spec(tmp_path, "", identifies=bad))


def test_steps_that_are_no_goals_are_warned_about() -> None:
    path = JOURNEYS / "warn-journey-step-not-goal.yaml"
    specs, problems = validate_paths([path])
    assert len(specs) == 1 and all(p.severity == "warning" for p in problems)
    assert [(p.line, p.column) for p in problems] == [(13, 24), (15, 13), (17, 13), (17, 26)]
    tail = ("is not a goal of this spec, nor an event GA collects automatically or recommends "
            "for ecommerce, so it may be a typo")
    said = " (an event the site does send under this name is counted as usual)"
    assert [p.message for p in problems] == [
        f"step `request_qoute` of funnel `quote` {tail}; did you mean `request_quote`?{said}",
        f"step `brochure_download` of funnel `brochure` {tail}{said}",
        f"step `add_to_kart` of funnel `cart` {tail}; did you mean `add_to_cart`?{said}",
        f"step `Purchase` of funnel `cart` {tail}; did you mean `purchase`?{said}",
    ]
    assert specs[0].warnings == tuple(str(p) for p in problems)


@pytest.mark.parametrize("event", sorted(KNOWN_STEP_EVENTS))
def test_ga_events_need_not_be_goals(tmp_path: Path, event: str) -> None:
    other = "purchase" if event != "purchase" else "view_item"
    spec = load_spec(_spec(tmp_path, f"funnels:\n  - name: f\n    steps: [{event}, {other}]\n"))
    assert spec.warnings == ()


def test_known_events_are_the_briefs() -> None:
    for event in ("page_view", "session_start", "first_visit", "view_item", "add_to_cart",
                  "begin_checkout", "purchase", "add_payment_info", "add_shipping_info",
                  "view_cart", "view_item_list", "select_item", "sign_up", "login",
                  "generate_lead"):
        assert event in KNOWN_STEP_EVENTS


# --------------------------------------------------------------------------- extends


def test_funnels_are_inherited_and_replaced_by_name() -> None:
    spec = load_spec(JOURNEYS / "journeys-extends.yaml")
    assert spec.funnels == (
        Funnel("Checkout", ("add_to_cart", "begin_checkout", "purchase"), 7 * DAY),
        Funnel("browse", ("page_view", "view_item")),
        Funnel("return", ("purchase", "add_to_cart"), None, True),
    )
    assert spec.funnels[0].location is not None and \
        spec.funnels[0].location.file.endswith("journeys-extends.yaml")
    assert spec.funnels[1].location is not None and \
        spec.funnels[1].location.file.endswith("_journey-base.yaml")


def test_a_base_step_is_checked_against_the_merged_goals(tmp_path: Path) -> None:
    (tmp_path / "_base.yaml").write_text(
        "currency: USD\ngoals:\n  - {event: purchase, tier: macro, value: event}\n"
        "funnels:\n  - name: lead\n    steps: [brochure, purchase]\n")
    (tmp_path / "a.yaml").write_text("client: A\nproperty: 1\nextends: _base.yaml\ngoals:\n"
                                     "  - {event: brochure, tier: micro, value: 1}\n")
    (tmp_path / "b.yaml").write_text("client: B\nproperty: 2\nextends: _base.yaml\n")
    specs, problems = validate_paths([tmp_path])
    assert [s.client for s in specs] == ["A", "B"]
    assert specs[0].warnings == ()
    [warning] = problems
    assert warning.file.endswith("_base.yaml") and (warning.line, warning.column) == (6, 13)
    assert specs[1].warnings == (str(warning),)


def test_without_funnels_a_file_keeps_the_bases(tmp_path: Path) -> None:
    (tmp_path / "_base.yaml").write_text(
        "currency: USD\ngoals:\n  - {event: purchase, tier: macro, value: event}\n"
        "funnels:\n  - {name: f, steps: [view_item, purchase], within: 1d}\n")
    (tmp_path / "a.yaml").write_text("client: A\nproperty: 1\nextends: _base.yaml\n")
    assert load_spec(tmp_path / "a.yaml").funnels == (Funnel("f", ("view_item", "purchase"),
                                                             DAY),)


# --------------------------------------------------------------------------- dump


def test_load_dump_load_keeps_funnels_and_identifies(tmp_path: Path) -> None:
    for name in ("journeys.yaml", "journeys-extends.yaml"):
        spec = load_spec(JOURNEYS / name)
        text = spec_to_yaml(spec)
        again = _reload(text, tmp_path)
        assert again == spec and again.funnels == spec.funnels and again.goals == spec.goals
        assert spec_to_yaml(again) == text
    text = spec_to_yaml(load_spec(JOURNEYS / "journeys.yaml"))
    assert "    identifies: true\n" in text and "identifies: false" not in text
    assert ("funnels:\n  - name: checkout\n    steps: [view_item, add_to_cart, begin_checkout, "
            "purchase]\n    within: 30d\n  - name: Lead by phone\n") in text
    assert "    within: 1d\n" in text  # 24h is a day
    assert "open: false" not in text and "    open: true\n" in text


_names = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp", "Cf", "Co", "Cn")),
                 min_size=1, max_size=60).map(str.strip).filter(
                     lambda n: n and n.isprintable())
_events = st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,39}", fullmatch=True)
_funnels = st.builds(Funnel, _names,
                     st.lists(_events, min_size=2, max_size=10, unique=True).map(tuple),
                     st.one_of(st.none(), st.integers(1, WITHIN_MAX)), st.booleans())


@settings(max_examples=100, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(funnels=st.lists(_funnels, min_size=1, max_size=4,
                        unique_by=lambda f: f.name.casefold()))
def test_any_funnel_round_trips(tmp_path: Path, funnels: list[Funnel]) -> None:
    spec = load_spec(_spec(tmp_path, ""))
    spec = Spec(spec.client, spec.properties, spec.currency, spec.goals, funnels=tuple(funnels))
    text = spec_to_yaml(spec)
    again = _reload(text, tmp_path)
    assert again.funnels == tuple(funnels), text


@pytest.mark.parametrize("seconds", [1, 59, 60, 61, 3600, 5400, DAY, DAY + 1, WITHIN_MAX])
def test_within_text_reads_back(tmp_path: Path, seconds: int) -> None:
    spec = load_spec(_spec(tmp_path, _funnel(f"within: {within_text(seconds)}")))
    assert spec.funnels[0].within == seconds


# --------------------------------------------------------------------------- helpers


def _funnel(line: str) -> str:
    return f"funnels:\n  - name: checkout\n    steps: [add_to_cart, purchase]\n    {line}\n"


def _spec(tmp_path: Path, funnels: str, identifies: str | None = None) -> Path:
    path = tmp_path / "one.yaml"
    flag = f"\n    identifies: {identifies}" if identifies is not None else ""
    path.write_text("client: C\nproperty: 1\ncurrency: USD\ngoals:\n  - event: purchase\n"
                    "    tier: macro\n    value: event\n  - event: add_to_cart\n    tier: micro\n"
                    f"    value: 2{flag}\n{funnels}")
    return path


def _reload(text: str, tmp_path: Path) -> Spec:
    path = tmp_path / "dumped.yaml"
    path.write_text(text, encoding="utf-8")
    return load_spec(path)


def test_suggestions_are_themselves_valid(tmp_path):
    """`within: 0` is not told to become `0d` (refused too); `Add-To-Cart` is told GA's own
    spelling, `add_to_cart`."""
    from ga_sync.api import validate
    path = tmp_path / "s.yaml"
    path.write_text("client: F\nproperty: 1\ncurrency: USD\nfunnels:\n  - name: a\n"
                    "    steps: [add_to_cart, purchase]\n    within: 0\n  - name: b\n"
                    "    steps: [Add-To-Cart, purchase]\ngoals:\n"
                    "  - {event: purchase, tier: macro, value: event}\n"
                    "  - {event: add_to_cart, tier: micro, value: 1}\n")
    _, problems = validate([path])
    text = "\n".join(str(p) for p in problems)
    assert "`30d` (days)" in text and "`0d`" not in text
    assert "did you mean `add_to_cart`?" in text
