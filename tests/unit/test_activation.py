"""Time-to-value, the Aha candidate and PostHog's odds ratio on hand-built exports."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest

from plg_bridge.models import activation
from plg_bridge.models.activation import odds_ratio, significant
from tests.support.clocks import AS_OF
from tests.support.events import conversion, event, identify, pageview, partial_of

API, REPORT = "first_api_call_completed", "first_report_generated"


def run(tmp_path, settings, rows, as_of=AS_OF, cfg=None):
    cfg = cfg or settings
    return activation.run(partial_of(tmp_path, [rows], cfg), as_of, cfg)


def person(
    user: str, signup: str, *, milestones: dict[str, str] | None = None, converted: str | None = None
) -> list:
    """An identified user: an anonymous pageview, $identify at `signup`, milestones, a conversion."""
    anon = f"anon-{user}"
    rows = [pageview(anon, signup), identify(user, anon, signup)]
    rows += [event(name, at, distinct_id=user) for name, at in (milestones or {}).items()]
    if converted:
        rows.append(conversion(user, converted))
    return rows


def stat(result, milestone: str, cohort: str, breakdown="all", segment="all") -> dict:
    m = result.milestones
    rows = m[
        (m["breakdown"] == breakdown)
        & (m["segment"] == segment)
        & (m["cohort"] == cohort)
        & (m["milestone"] == milestone)
    ].to_dict("records")
    assert len(rows) == 1, rows
    return rows[0]


def cohort_of(result, user: str) -> str:
    return result.persons.set_index("person_key").loc[user, "cohort"]


def test_cohorts_converted_not_converted_and_pending(tmp_path, settings):
    rows = person("won", "2026-11-01T10:00", converted="2026-11-05T10:00")
    rows += person("lost", "2026-11-01T10:00")
    rows += person(
        "late_win", "2026-11-01T10:00", converted="2026-11-15T10:00"
    )  # exactly the horizon: too late
    rows += person("recent", "2026-11-10T10:00", converted="2026-11-11T10:00")  # horizon not over: pending
    result = run(tmp_path, settings, rows)
    assert [cohort_of(result, u) for u in ("won", "lost", "late_win", "recent")] == [
        "converted",
        "not_converted",
        "not_converted",
        "pending",
    ]
    all_row = result.cohorts[result.cohorts["breakdown"] == "all"].iloc[0]
    assert (all_row["signed_up"], all_row["converted"], all_row["not_converted"], all_row["pending"]) == (
        4,
        1,
        2,
        1,
    )
    assert all_row["conversion_rate"] == pytest.approx(1 / 3)
    assert result.quality["persons_pending"] == 1


def test_hours_to_value_reach_median_and_p75(tmp_path, settings):
    rows = []
    for i, hours in enumerate([1, 2, 3, 10]):
        at = (pd.Timestamp("2026-11-01T00:00", tz="UTC") + pd.Timedelta(hours=hours)).isoformat()
        rows += person(f"u{i}", "2026-11-01T00:00", milestones={API: at})
    rows += person("u9", "2026-11-01T00:00")  # never reaches it
    s = stat(run(tmp_path, settings, rows), API, "not_converted")
    assert (s["persons"], s["reached"], s["reach"]) == (5, 4, 0.8)
    assert s["median_hours"] == pytest.approx(2.5)  # linear interpolation, like numpy and quantile_cont
    assert s["p75_hours"] == pytest.approx(np.quantile([1, 2, 3, 10], 0.75))


def test_milestone_after_conversion_or_horizon_does_not_count(tmp_path, settings):
    rows = person("won", "2026-11-01", milestones={API: "2026-11-03"}, converted="2026-11-02")
    rows += person("lost", "2026-11-01", milestones={API: "2026-11-15T00:00"})  # at signup + 14 days
    result = run(tmp_path, settings, rows)
    assert stat(result, API, "converted")["reached"] == 0
    assert stat(result, API, "not_converted")["reached"] == 0


def test_milestone_before_signup_counts_with_zero_hours(tmp_path, settings):
    rows = person("u1", "2026-11-02", milestones={API: "2026-11-01"})
    s = stat(run(tmp_path, settings, rows), API, "not_converted")
    assert (s["reached"], s["median_hours"]) == (1, 0.0)


def test_milestones_done_on_another_device_before_identify_join_the_person(tmp_path, settings):
    rows = [
        event(API, "2026-11-01T05:00", distinct_id="anon-phone"),
        identify("u1", "anon-phone", "2026-11-01T06:00"),
        identify("u1", "anon-laptop", "2026-11-01T04:00"),  # signup: the first $identify
    ]
    s = stat(run(tmp_path, settings, rows), API, "not_converted")
    assert (s["persons"], s["reached"], s["median_hours"]) == (1, 1, 1.0)


def test_empty_cohorts_give_rows_with_zero_persons(tmp_path, settings):
    result = run(tmp_path, settings, person("lost", "2026-11-01", milestones={API: "2026-11-02"}))
    s = stat(result, API, "converted")
    assert (s["persons"], s["reached"]) == (0, 0)
    assert math.isnan(s["reach"]) and math.isnan(s["median_hours"])
    assert result.aha.empty  # no converted persons: no candidate
    assert result.correlation.empty  # PostHog returns nothing when S or F is 0
    assert list(result.correlation.columns) == activation.CORRELATION


def test_nothing_at_all(tmp_path, settings):
    result = run(tmp_path, settings, [event("core_feature_used", "2026-11-01")])
    assert result.persons.empty and result.aha.empty and result.correlation.empty
    assert set(result.milestones["persons"]) == {0}
    assert len(result.milestones) == 2 * len(settings.models.milestones) * 3  # all + paid + organic


def test_aha_candidate_is_the_largest_reach_gap_and_ties_follow_the_milestone_order(tmp_path, settings):
    rows = person(
        "w1", "2026-11-01", milestones={API: "2026-11-02", REPORT: "2026-11-02"}, converted="2026-11-03"
    )
    rows += person(
        "w2", "2026-11-01", milestones={API: "2026-11-02", REPORT: "2026-11-02"}, converted="2026-11-03"
    )
    rows += person("l1", "2026-11-01", milestones={API: "2026-11-02"})
    rows += person("l2", "2026-11-01")
    result = run(tmp_path, settings, rows)
    aha = result.aha[result.aha["breakdown"] == "all"].iloc[0]
    assert (aha["milestone"], aha["gap"]) == (REPORT, 1.0)  # report: 100% vs 0%; api: 100% vs 50%
    rows = [r for r in rows if r["distinct_id"] != "l1"]  # now both gaps are 100 points: a tie
    tied = run(tmp_path / "tie", settings, rows).aha
    assert tied[tied["breakdown"] == "all"].iloc[0]["milestone"] == API  # listed first in the settings


def test_breakdown_by_channel_and_signup_week(tmp_path, settings):
    rows = [
        pageview("anon-p", "2026-10-27T08:00", utm=("google", "cpc", "brand")),
        identify("paid_user", "anon-p", "2026-10-27T09:00"),
    ]
    rows += person("organic_user", "2026-11-02T09:00")  # a Monday
    result = run(tmp_path, settings, rows)
    people = result.persons.set_index("person_key")
    assert people.loc["paid_user", "channel"] == "paid"
    assert people.loc["organic_user", "channel"] == "organic"
    assert (people.loc["paid_user", "signup_week"], people.loc["organic_user", "signup_week"]) == (
        "2026-10-26",
        "2026-11-02",
    )
    segments = result.cohorts.groupby("breakdown")["segment"].apply(list).to_dict()
    assert segments == {
        "all": ["all"],
        "channel": ["organic", "paid"],
        "signup_week": ["2026-10-26", "2026-11-02"],
    }
    assert stat(result, API, "not_converted", "channel", "paid")["persons"] == 1


def test_signup_can_be_a_named_event(tmp_path, settings):
    cfg = dataclasses.replace(
        settings, models=dataclasses.replace(settings.models, signup_event="user_signed_up")
    )
    rows = [identify("u1", "anon-1", "2026-10-01"), event("user_signed_up", "2026-11-01", distinct_id="u1")]
    rows.append(event(API, "2026-11-01T02:00", distinct_id="u1"))
    result = run(tmp_path, settings, rows, cfg=cfg)
    assert result.persons["signup_at"].tolist() == [pd.Timestamp("2026-11-01", tz="UTC")]
    assert stat(result, API, "not_converted")["median_hours"] == 2.0


def test_signups_before_the_cohort_window_are_out(tmp_path, settings):
    rows = person("old", "2026-08-21T23:00") + person("in", "2026-08-22T00:00")
    assert run(tmp_path, settings, rows).persons["person_key"].tolist() == ["in"]


# -- PostHog's correlation odds ratio ------------------------------------------------------------


def test_odds_ratio_worked_example():
    # PostHog's docstring: watched video 5 converted / 1 not; didn't 2 / 10. S = 7, F = 11.
    # Without the prior the odds ratio is (5 / 1) / (2 / 10) = 25; with PostHog's prior of 1:
    # ((5 + 1) * (11 - 1 + 1)) / ((7 - 5 + 1) * (1 + 1)) = 66 / 6 = 11.
    assert odds_ratio(5, 1, 7, 11) == 11.0
    assert odds_ratio(0, 0, 10, 10) == 1.0  # nobody did it: no evidence either way


@pytest.mark.parametrize(
    ("s", "f", "total_s", "total_f", "kept"),
    [
        (12, 12, 1000, 1000, False),  # 24 < min(25, 40)
        (13, 12, 1000, 1000, True),  # 25 >= 25
        (1, 0, 50, 50, False),  # 1 < min(25, 2)
        (1, 1, 50, 50, True),  # 2 >= 2
        (0, 0, 10, 10, False),  # 0 < 0.4
    ],
)
def test_min_count_rule(s, f, total_s, total_f, kept):
    assert bool(significant(s, f, total_s, total_f)) is kept


def test_correlation_counts_persons_in_their_window_and_flags_skew(tmp_path, settings):
    rows = []
    for i in range(2):  # converted, both did the milestone first
        rows += person(f"w{i}", "2026-11-01", milestones={API: "2026-11-02"}, converted="2026-11-03")
    for i in range(31):  # not converted; 3 of them did it
        rows += person(f"l{i:02d}", "2026-11-01", milestones={API: "2026-11-02"} if i < 3 else None)
    rows += person("w9", "2026-11-01", milestones={API: "2026-11-05"}, converted="2026-11-03")  # after paying
    result = run(tmp_path, settings, rows)
    corr = result.correlation.set_index("event")
    assert "$identify" not in corr.index and "subscription_started" not in corr.index  # funnel steps
    row = corr.loc[API]
    assert (row["success_count"], row["failure_count"], row["success_total"], row["failure_total"]) == (
        2,
        3,
        3,
        31,
    )
    assert row["odds_ratio"] == pytest.approx(odds_ratio(2, 3, 3, 31))
    assert row["correlation_type"] == "success"
    assert bool(row["significant"])  # 5 >= min(25, 0.66)
    assert bool(row["skewed"])  # 31 / 3 > 10
    assert "$pageview" not in corr.index  # only at the signup instant: not strictly after it


def test_correlation_excludes_configured_events(tmp_path, settings):
    cfg = dataclasses.replace(
        settings, models=dataclasses.replace(settings.models, correlation_exclude_events=("$pageview",))
    )
    rows = person("w", "2026-11-01", converted="2026-11-02") + person("l", "2026-11-01")
    rows += [pageview(u, "2026-11-01T12:00") for u in ("w", "l")]
    assert "$pageview" in set(run(tmp_path / "all", settings, rows).correlation["event"])
    result = run(tmp_path, settings, rows, cfg=cfg)
    assert "$pageview" not in set(result.correlation["event"])


def _window_rows() -> list:
    """Two converted and two lost persons, each with a `probe_*` event on one side of a boundary."""
    rows = person("w1", "2026-11-01T10:00", converted="2026-11-03T10:00")
    rows += person("w2", "2026-11-01T10:00", converted="2026-11-01T18:00")  # same-day conversion
    rows += person("l1", "2026-11-01T10:00") + person("l2", "2026-11-01T10:00")
    rows += [
        # before signup (anonymous, stitched in later), never again: not counted
        pageview("anon-w1", "2026-11-01T09:00", org=None),
        event("probe_before", "2026-11-01T09:00", distinct_id="anon-w1"),
        # at the signup instant: not strictly after it
        event("probe_at_signup", "2026-11-01T10:00", distinct_id="w1"),
        # before signup and again inside the window: counted (PostHog looks inside the window)
        event("probe_repeated", "2026-10-31T10:00", distinct_id="l1"),
        event("probe_repeated", "2026-11-05T10:00", distinct_id="l1"),
        # after the conversion: not counted
        event("probe_after_conversion", "2026-11-04T10:00", distinct_id="w1"),
        # same day as signup and conversion: inside, then after
        event("probe_same_day", "2026-11-01T12:00", distinct_id="w2"),
        event("probe_same_day_after", "2026-11-01T19:00", distinct_id="w2"),
        # at the conversion instant: not strictly before it
        event("probe_at_conversion", "2026-11-03T10:00", distinct_id="w1"),
        # lost person: inside the horizon, at its end, after it
        event("probe_inside", "2026-11-14T23:00", distinct_id="l2"),
        event("probe_at_window_end", "2026-11-15T10:00", distinct_id="l2"),
        event("probe_after_window", "2026-11-16T10:00", distinct_id="l2"),
    ]
    return rows


def test_correlation_counts_only_events_strictly_inside_posthogs_window(tmp_path, settings):
    result = run(tmp_path, settings, _window_rows())
    corr = result.correlation.set_index("event")
    counted = {e: (int(r["success_count"]), int(r["failure_count"])) for e, r in corr.iterrows()}
    assert counted.get("probe_repeated") == (0, 1)
    assert counted.get("probe_same_day") == (1, 0)
    assert counted.get("probe_inside") == (0, 1)
    for name in (
        "probe_before",
        "probe_at_signup",
        "probe_after_conversion",
        "probe_same_day_after",
        "probe_at_conversion",
        "probe_at_window_end",
        "probe_after_window",
        "$pageview",
    ):
        assert name not in counted, name


def test_first_seen_variant_counts_first_occurrences_before_the_window_end(tmp_path, settings):
    cfg = dataclasses.replace(
        settings, models=dataclasses.replace(settings.models, correlation_window="first_seen")
    )
    corr = run(tmp_path, settings, _window_rows(), cfg=cfg).correlation.set_index("event")
    assert {"probe_before", "probe_at_signup", "probe_repeated", "$pageview"} <= set(corr.index)
    assert "probe_after_conversion" not in corr.index and "probe_after_window" not in corr.index


def test_customers_who_converted_before_signup_are_pre_existing_and_kept_apart(tmp_path, settings):
    rows = person("old", "2026-11-05T10:00", milestones={API: "2026-11-06"})
    rows.append(conversion("old", "2026-10-20T10:00"))  # a customer older than their first signup seen
    rows += person("won", "2026-11-01T10:00", milestones={API: "2026-11-02"}, converted="2026-11-03T10:00")
    rows += person("lost", "2026-11-01T10:00")
    result = run(tmp_path, settings, rows)
    assert cohort_of(result, "old") == "pre_existing"
    assert pd.isna(result.persons.set_index("person_key").loc["old", "window_end"])
    everyone = result.cohorts.set_index(["breakdown", "segment"]).loc[("all", "all")]
    assert (everyone["signed_up"], everyone["converted"], everyone["not_converted"]) == (2, 1, 1)
    assert everyone["pre_existing"] == 1 and everyone["conversion_rate"] == 0.5
    assert stat(result, API, "converted")["reach"] == 1.0  # "old" would have dragged it to 0.5
    corr = result.correlation.set_index("event")
    assert (corr.loc[API, "success_total"], corr.loc[API, "failure_total"]) == (1, 1)
    assert result.quality["persons_pre_existing"] == 1


# -- PostHog's window on a day holding both the signup and the conversion ------------------------
# Converted persons sign up at 10:00 and pay at 18:00 on 2026-11-01 (a window inside one UTC day);
# each sends one probe event at the listed times, under their own distinct id. Counted exactly when
# a time lies strictly inside (10:00, 18:00), read by hand from the times.
SAME_DAY = {
    "probe_before_and_after": ["09:00", "19:00"],  # two times around the window: not counted
    "probe_many_outside": ["00:05", "08:00", "09:00", "09:59:59.999999", "18:00:00.000001", "23:59"],
    "probe_at_the_edges": ["09:00", "10:00", "18:00", "19:00"],  # at signup and at conversion: strict
    "probe_between": ["09:00", "12:00", "19:00"],  # one time between: counted
    "probe_just_after_signup": ["09:00", "10:00:00.000001", "19:00"],
    "probe_just_before_conversion": ["09:00", "17:59:59.999999", "19:00"],
    "probe_many_one_between": [f"0{h}:{m}0" for h in range(10) for m in range(6)]
    + ["13:30"]
    + [f"2{h}:{m}0" for h in range(4) for m in range(6)],
}
SAME_DAY_COUNTED = {
    "probe_between",
    "probe_just_after_signup",
    "probe_just_before_conversion",
    "probe_many_one_between",
}


def _same_day_rows() -> list:
    rows = person("lost", "2026-11-01T10:00")  # a not-converted person, so both cohorts exist
    for i, (probe, times) in enumerate(SAME_DAY.items()):
        user = f"w{i}"
        rows += person(user, "2026-11-01T10:00", converted="2026-11-01T18:00")
        rows += [event(probe, f"2026-11-01T{t}", distinct_id=user) for t in times]
    return rows


def _counted(result) -> dict[str, tuple[int, int]]:
    corr = result.correlation.set_index("event")
    return {e: (int(r["success_count"]), int(r["failure_count"])) for e, r in corr.iterrows()}


def test_same_day_window_counts_only_times_strictly_between_signup_and_conversion(tmp_path, settings):
    counted = _counted(run(tmp_path, settings, _same_day_rows()))
    assert {e for e in counted if e.startswith("probe_")} == SAME_DAY_COUNTED
    assert all(counted[e] == (1, 0) for e in SAME_DAY_COUNTED)
    # the persons' own anonymous pageview at the signup instant is not inside either
    assert "$pageview" not in counted


def test_same_day_window_with_the_times_split_over_two_export_files(tmp_path, settings):
    """Two export files hold one day's times: the partials merge (both orders) and stay exact."""
    first = person("lost", "2026-11-01T10:00") + person("w", "2026-11-01T10:00", converted="2026-11-01T18:00")
    first += person("v", "2026-11-01T10:00", converted="2026-11-01T18:00")
    first += [event("probe_middle_elsewhere", f"2026-11-01T{t}", distinct_id="w") for t in ("09:00", "19:00")]
    first += [event("probe_outside", f"2026-11-01T{t}", distinct_id="v") for t in ("09:00", "09:30", "19:00")]
    second = [event("probe_middle_elsewhere", "2026-11-01T12:00", distinct_id="w")]  # the only inside time
    second += [
        event("probe_outside", f"2026-11-01T{t}", distinct_id="v") for t in ("08:00", "18:00", "20:00")
    ]
    for reverse in (False, True):
        partial = partial_of(tmp_path / str(reverse), [first, second], settings, reverse=reverse)
        counted = _counted(activation.run(partial, AS_OF, settings))
        assert counted.get("probe_middle_elsewhere") == (1, 0)
        assert "probe_outside" not in counted


def test_windows_across_days_and_distinct_ids(tmp_path, settings):
    # signup late on 11-01, conversion early on 11-02: the window spans two UTC days
    rows = person("w", "2026-11-01T22:00", converted="2026-11-02T02:00") + person("lost", "2026-11-01T22:00")
    rows += [
        event("probe_edges_of_two_days", "2026-11-01T21:00", distinct_id="w"),  # day 1: before
        event("probe_edges_of_two_days", "2026-11-02T03:00", distinct_id="w"),  # day 2: after
        event("probe_late_day_one", "2026-11-01T21:00", distinct_id="w"),
        event("probe_late_day_one", "2026-11-01T23:00", distinct_id="w"),  # inside
        event("probe_early_day_two", "2026-11-02T01:00", distinct_id="w"),  # inside
        event("probe_early_day_two", "2026-11-02T03:00", distinct_id="w"),
        # the anonymous id before signup, the identified id after conversion: two spans, neither inside
        event("probe_two_ids", "2026-11-01T21:30", distinct_id="anon-w"),
        event("probe_two_ids", "2026-11-02T02:30", distinct_id="w"),
        # the not-converted person's window is (signup, signup + 14 days): 11-15T22:00 ends it
        event("probe_lost_horizon", "2026-11-01T21:00", distinct_id="lost"),
        event("probe_lost_horizon", "2026-11-15T22:00", distinct_id="lost"),  # at the end: not inside
        event("probe_lost_horizon", "2026-11-15T23:00", distinct_id="lost"),
        event("probe_lost_inside", "2026-11-01T21:00", distinct_id="lost"),
        event("probe_lost_inside", "2026-11-15T21:59:59", distinct_id="lost"),  # inside
        event("probe_lost_inside", "2026-11-15T23:00", distinct_id="lost"),
    ]
    counted = _counted(run(tmp_path, settings, rows))
    assert {e: c for e, c in counted.items() if e.startswith("probe_")} == {
        "probe_late_day_one": (1, 0),
        "probe_early_day_two": (1, 0),
        "probe_lost_inside": (0, 1),
    }


def test_spans_without_times_have_no_other_times(settings):
    """Spans as an older partial stores them (no `times` column): first and last are all it knows."""
    people = pd.DataFrame(
        {
            "person_key": ["w"],
            "signup_at": pd.to_datetime(["2026-11-01T10:00"], utc=True),
            "window_end": pd.to_datetime(["2026-11-01T18:00"], utc=True),
            "cohort": ["converted"],
        }
    )
    spans = pd.DataFrame(
        {
            "distinct_id": ["w", "w"],
            "event": ["probe_straddle", "probe_inside"],
            "day": pd.to_datetime(["2026-11-01"] * 2, utc=True),
            "first": pd.to_datetime(["2026-11-01T09:00", "2026-11-01T09:00"], utc=True),
            "last": pd.to_datetime(["2026-11-01T19:00", "2026-11-01T11:00"], utc=True),
        }
    )
    keys = pd.DataFrame({"distinct_id": ["w"], "person_key": ["w"]})
    done = activation.inside_windows(people, spans, keys)
    assert done.values.tolist() == [["w", "probe_inside"]]
