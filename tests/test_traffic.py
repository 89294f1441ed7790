"""The synthetic traffic model: believable rates, weekly rhythm, determinism, speed."""

from __future__ import annotations

import json
import time
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from ga_sync.sandbox.traffic import (NUMBER_COLUMNS, PII_QUERY, SESSION_COLUMNS, event_log,
                                     make_traffic)
from ga_sync.sandbox.visitors import channel_group

GOALS = [
    ("purchase", "macro", None),
    ("generate_lead", "macro", 150.0),
    ("newsletter_signup", "micro", 5.0),
    ("file_download", "micro", 2.0),
    ("video_start", "micro", 1.0),
    ("contact_click", "micro", None),
]
START = date(2025, 3, 3)  # a Monday
END = START + timedelta(days=27)  # four whole weeks


@pytest.fixture(scope="module")
def profile() -> dict:
    return make_traffic(GOALS, seed=11, daily_sessions=2000, start="2024-01-01",
                        property_id=987)


@pytest.fixture(scope="module")
def log(profile: dict) -> pd.DataFrame:
    return event_log(profile, START, END, "Europe/Warsaw")


def session_share(log: pd.DataFrame, event: str) -> float:
    return log.loc[log.event_name == event, "session_id"].nunique() / log.session_id.nunique()


def test_profile_is_plain_json(profile: dict) -> None:
    assert json.loads(json.dumps(profile)) == profile


def test_columns_and_types(log: pd.DataFrame) -> None:
    assert list(log.columns) == ["date", "user_id", "session_id", "event_name", "value",
                                 "page_path", "page_location", "country", *SESSION_COLUMNS,
                                 *NUMBER_COLUMNS]
    assert (log.groupby("session_id").country.nunique() == 1).all()
    assert log.date.astype(str).str.fullmatch(r"\d{8}").all()
    assert log.date.min() == START.strftime("%Y%m%d") and log.date.max() == END.strftime("%Y%m%d")
    assert log.value.dtype == float
    pairs = log[["page_path", "page_location"]].drop_duplicates().astype(str)
    assert pairs.page_location.str.startswith("https://www.example-987.com/").all()
    paths = pairs.page_location.str.replace("https://www.example-987.com", "")
    assert (paths.str.split("?").str[0] == pairs.page_path).all()


def test_purchase_rate_is_about_two_percent(log: pd.DataFrame) -> None:
    assert 0.015 <= session_share(log, "purchase") <= 0.025


def test_macro_and_micro_rates(log: pd.DataFrame) -> None:
    for event, tier, _ in GOALS:
        share = session_share(log, event)
        if tier == "macro":
            assert 0.012 <= share <= 0.03, (event, share)
        else:
            assert 0.01 <= share <= 0.30, (event, share)


def test_some_goals_fire_more_than_once_per_session(log: pd.DataFrame) -> None:
    goals = log[log.event_name.isin([g[0] for g in GOALS])]
    per_session = goals.groupby(["event_name", "session_id"], observed=True).size()
    assert (per_session > 1).any()
    assert len(goals) > len(per_session)  # once-per-event > once-per-session counts


def test_every_session_has_the_automatic_events(log: pd.DataFrame) -> None:
    sessions = log.session_id.nunique()
    per_event = log.groupby("event_name", observed=True).session_id.nunique()
    assert per_event["session_start"] == sessions
    assert per_event["page_view"] == sessions
    assert (log[log.event_name == "session_start"].groupby("session_id").size() == 1).all()
    assert 0.6 < per_event["user_engagement"] / sessions < 0.95
    assert 0.3 < per_event["scroll"] / sessions < 0.9
    assert 0.2 < per_event["first_visit"] / sessions < 0.8
    # page views outnumber sessions: people look at more than one page
    assert (log.event_name == "page_view").sum() > 1.5 * sessions


def test_first_visit_only_for_new_users(log: pd.DataFrame) -> None:
    first = log[log.event_name == "first_visit"]
    assert first.user_id.is_unique
    # a user's first visit is in its first session
    sessions_of_new = log[log.user_id.isin(first.user_id)].groupby("user_id").session_id.nunique()
    assert (sessions_of_new == 1).all()


def test_values(log: pd.DataFrame) -> None:
    purchases = log[log.event_name == "purchase"].value
    assert purchases.notna().all()
    assert 60 <= purchases.mean() <= 100 and purchases.std() > 10  # lognormal around 80
    assert log[log.event_name == "generate_lead"].value.isna().all()  # fixed-value goal
    assert log[log.event_name == "contact_click"].value.notna().all()  # value: event
    assert log[log.event_name == "page_view"].value.isna().all()


def test_weekends_are_quieter(log: pd.DataFrame) -> None:
    daily = log.groupby("date", observed=True).session_id.nunique()
    weekday = pd.to_datetime(daily.index.astype(str), format="%Y%m%d").day_of_week
    weekend_mean = daily[weekday >= 5].mean()
    weekday_mean = daily[weekday < 5].mean()
    assert weekend_mean < 0.75 * weekday_mean
    assert daily[weekday < 5].std() > 0  # day-to-day noise


def test_weekday_factors_are_configurable() -> None:
    flat = make_traffic(GOALS, seed=1, daily_sessions=1000, start="2024-01-01",
                        weekday_factors=[1.0] * 7, noise=0.0)
    daily = event_log(flat, START, END).groupby("date", observed=True).session_id.nunique()
    assert daily.max() / daily.min() < 1.2  # Poisson only


def test_users_return(log: pd.DataFrame) -> None:
    week = log[log.date <= (START + timedelta(days=6)).strftime("%Y%m%d")]
    ratio = week.user_id.nunique() / week.session_id.nunique()
    assert 0.6 <= ratio <= 0.9
    assert log.user_id.nunique() < log.session_id.nunique()


def test_deterministic_across_calls(profile: dict, log: pd.DataFrame) -> None:
    again = event_log(json.loads(json.dumps(profile)), START, END)
    assert list(again.columns) == list(log.columns)
    for col in log.columns:
        a, b = log[col], again[col]
        if isinstance(a.dtype, pd.CategoricalDtype):
            assert list(a.cat.categories) == list(b.cat.categories)
            a, b = a.cat.codes, b.cat.codes
        np.testing.assert_array_equal(a.to_numpy(), b.to_numpy())
    other = make_traffic(GOALS, seed=12, daily_sessions=2000, start="2024-01-01",
                         property_id=987)
    assert len(event_log(other, START, START)) != len(log[log.date == START.strftime("%Y%m%d")])


def test_days_are_independent(profile: dict, log: pd.DataFrame) -> None:
    middle = event_log(profile, START + timedelta(days=10), START + timedelta(days=12))
    days = [(START + timedelta(days=i)).strftime("%Y%m%d") for i in (10, 11, 12)]
    part = log[log.date.isin(days)].reset_index(drop=True)
    for col in ("user_id", "session_id", "value"):
        np.testing.assert_array_equal(middle[col].to_numpy(), part[col].to_numpy())
    for col in ("date", "event_name", "page_path", "page_location", "country"):
        assert middle[col].astype(str).tolist() == part[col].astype(str).tolist()


def test_no_data_before_start(profile: dict) -> None:
    assert event_log(profile, date(2023, 12, 1), date(2023, 12, 31)).empty
    assert event_log(None, START, END).empty


def test_audit_options() -> None:
    t = make_traffic(GOALS, seed=3, daily_sessions=1500, start="2024-01-01", property_id=5,
                     pii_paths=True, thresholding=True, pageview_like=["virtual_page_view"],
                     extra_events=["click", ("form_start", 0.05), "purchase"])
    assert t["thresholding"] is True
    log = event_log(t, START, START + timedelta(days=6))
    pii = log[log.page_location.astype(str).str.contains(PII_QUERY, regex=False)]
    assert 0 < len(pii) < 0.05 * len(log)
    assert not log.page_path.astype(str).str.contains("@").any()  # pagePath has no query
    views = (log.event_name == "page_view").sum()
    assert 0.8 * views < (log.event_name == "virtual_page_view").sum() <= views
    assert 0.03 < session_share(log, "form_start") < 0.07
    assert session_share(log, "click") > 0
    assert [e["event"] for e in t["extra_events"]] == ["click", "form_start"]  # purchase is a goal


def test_a_goal_can_be_pageview_like() -> None:
    t = make_traffic(GOALS, seed=3, daily_sessions=800, start="2024-01-01",
                     pageview_like=["newsletter_signup"])
    log = event_log(t, START, START + timedelta(days=2))
    assert session_share(log, "newsletter_signup") > 0.8


def test_a_day_of_2000_sessions_takes_milliseconds() -> None:
    t = make_traffic(GOALS, seed=99, daily_sessions=2000, start="2020-01-01")
    began = time.perf_counter()
    for i in range(20):  # uncached days
        event_log(t, date(2021, 1, 1) + timedelta(days=i), date(2021, 1, 1) + timedelta(days=i))
    per_day = (time.perf_counter() - began) / 20
    assert per_day < 0.1, per_day
