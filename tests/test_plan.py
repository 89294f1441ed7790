"""Pure tests of the diff and the safety guard: plain data in, plain data out."""

import pytest

from ga_sync.errors import UnsafePlan
from ga_sync.model import KeyEventSettings as S, KeyEventState, Plan, property_name
from ga_sync.plan import check_safety, diff, same_settings

P = "properties/123"


def live(event, counting="once_per_event", value=None, currency=None, deletable=True):
    return KeyEventState(event, S(counting, value, currency), name=f"{P}/keyEvents/{abs(hash(event)) % 10**11}",
                         deletable=deletable, custom=deletable)


def test_create_update_and_unmanaged():
    desired = {"sign_up": S("once_per_session", 12.5, "USD"), "generate_lead": S("once_per_event", 40.0, "USD"),
               "purchase": S("once_per_event")}
    existing = [live("generate_lead"), live("purchase", deletable=False), live("test_event_1")]
    p = diff(P, "Acme", desired, existing)
    assert [(c.action, c.event) for c in p.changes] == [("update", "generate_lead"), ("create", "sign_up")]
    upd = p.changes[0]
    assert upd.before == S("once_per_event") and upd.after == S("once_per_event", 40.0, "USD")
    assert upd.name == existing[0].name
    assert p.unmanaged == ("test_event_1",)
    assert p.protected == ()
    assert p.to_json()["changes"][1] == {"action": "create", "event": "sign_up", "before": None,
                                         "after": {"counting": "once_per_session", "value": 12.5, "currency": "USD"},
                                         "resource": "key_event"}


def test_no_changes_when_equal_modulo_float_noise_and_currency_case():
    desired = {"a": S("once_per_event", 0.1 + 0.2, "USD")}
    assert diff(P, "c", desired, [live("a", value=0.3, currency="usd")]).changes == ()


def test_counting_value_and_clearing_value_are_updates():
    assert same_settings(S("once_per_event", 1.0, "USD"), S("once_per_event", 1.0, "USD"))
    assert not same_settings(S("once_per_event"), S("once_per_session"))
    assert not same_settings(S("once_per_event", 1.0, "USD"), S("once_per_event", 1.0, "EUR"))
    assert not same_settings(S("once_per_event", 1.0, "USD"), S("once_per_event"))
    p = diff(P, "c", {"a": S("once_per_event")}, [live("a", value=5.0, currency="USD")])
    assert [c.action for c in p.changes] == ["update"]
    assert p.changes[0].after.value is None


def test_prune_deletes_deletable_and_protects_the_rest():
    existing = [live("old_goal"), live("purchase", deletable=False), live("keep")]
    p = diff(P, "c", {"keep": S("once_per_event")}, existing, prune=True)
    assert [(c.action, c.event) for c in p.changes] == [("delete", "old_goal")]
    assert p.protected == ("purchase",) and p.unmanaged == ()


def test_rename_is_delete_plus_create_and_order_is_fixed():
    existing = [live("signup"), live("b_goal", counting="once_per_session")]
    desired = {"sign_up": S("once_per_event"), "b_goal": S("once_per_event")}
    p = diff(P, "c", desired, existing, prune=True)
    assert [(c.action, c.event) for c in p.changes] == [
        ("delete", "signup"), ("update", "b_goal"), ("create", "sign_up")]


def test_event_names_match_case_sensitively():
    p = diff(P, "c", {"Sign_Up": S("once_per_event")}, [live("sign_up")])
    assert [(c.action, c.event) for c in p.changes] == [("create", "Sign_Up")]
    assert p.unmanaged == ("sign_up",)


def test_plan_json_contract():
    p = diff(P, "Acme", {"x": S("once_per_event")}, [live("y")])
    data = Plan((p,)).to_json()
    assert data == {"version": 1, "properties": [{
        "property": P, "client": "Acme",
        "changes": [{"action": "create", "event": "x", "before": None,
                     "after": {"counting": "once_per_event", "value": None, "currency": None},
                     "resource": "key_event"}],
        "unmanaged": ["y"], "protected": [], "warnings": []}],
        "summary": {"create": 1, "update": 0, "delete": 0}}


@pytest.mark.parametrize("existing,touched,unsafe", [
    (10, 3, False), (10, 4, True), (9, 9, False), (20, 6, False), (20, 7, True)])
def test_safety_threshold(existing, touched, unsafe):
    events = [live(f"e{i}") for i in range(existing)]
    desired = {f"e{i}": S("once_per_session" if i < touched else "once_per_event") for i in range(existing)}
    plan = Plan((diff(P, "c", desired, events),))
    if unsafe:
        with pytest.raises(UnsafePlan, match=f"{touched} of {existing}"):
            check_safety(plan)
    else:
        check_safety(plan)


def test_safety_counts_deletes_but_not_creates():
    events = [live(f"e{i}") for i in range(10)]
    plan = Plan((diff(P, "c", {f"e{i}": S("once_per_event") for i in range(6)}, events, prune=True),))
    with pytest.raises(UnsafePlan):
        check_safety(plan)
    creates = Plan((diff(P, "c", {f"e{i}": S("once_per_event") for i in range(10)}
                         | {f"n{i}": S("once_per_event") for i in range(20)}, events),))
    assert creates.count("create") == 20
    check_safety(creates)


@pytest.mark.parametrize("raw,expected", [(123, "properties/123"), ("123", "properties/123"),
                                          ("properties/0123", "properties/123"), (" 42 ", "properties/42")])
def test_property_name(raw, expected):
    assert property_name(raw) == expected


@pytest.mark.parametrize("raw", ["G-ABC123", "abc", "", True, "properties/x", -5])
def test_property_name_rejects(raw):
    with pytest.raises(ValueError):
        property_name(raw)
