"""First touch over stitched identities and revenue by original source, on hand-built exports."""

from __future__ import annotations

import dataclasses
import math

import pytest

from plg_bridge.models import attribution
from tests.support.clocks import AS_OF
from tests.support.events import conversion, event, identify, initial, pageview, partial_of


def touch_of(result, person: str = "user_1") -> dict:
    rows = result.first_touch[result.first_touch["person_key"] == person].to_dict("records")
    assert len(rows) == 1, f"expected one first touch for {person}, got {rows}"
    return rows[0]


def run(tmp_path, settings, files, as_of=AS_OF, reverse=False):
    return attribution.run(partial_of(tmp_path, files, settings, reverse=reverse), as_of, settings)


def test_direct_return_visit_after_a_paid_click_keeps_the_paid_first_touch(tmp_path, settings):
    rows = [
        pageview(
            "anon-1",
            "2026-11-01T09:00",
            utm=("linkedin", "paid_social", "abm_q4"),
            referring_domain="www.linkedin.com",
        ),
        pageview("anon-1", "2026-11-04T09:00", referring_domain="$direct"),  # three days later, direct
        identify("user_1", "anon-1", "2026-11-04T09:05"),  # identified_only: nothing recorded
        pageview("user_1", "2026-11-06T09:00", referring_domain="$direct"),
    ]
    t = touch_of(run(tmp_path, settings, [rows]))
    assert (t["source"], t["medium"], t["campaign"], t["channel"]) == (
        "linkedin",
        "paid_social",
        "abm_q4",
        "paid",
    )
    assert (t["referring_domain"], t["origin"]) == ("www.linkedin.com", "event")


@pytest.mark.parametrize("reverse", [False, True], ids=["files-in-order", "files-reversed"])
def test_paid_click_and_identify_in_different_files(tmp_path, settings, reverse):
    files = [
        [pageview("anon-1", "2026-11-01T09:00", utm=("google", "cpc", "brand"))],
        [pageview("anon-1", "2026-11-02T09:00", referring_domain="$direct")],
        [identify("user_1", "anon-1", "2026-11-03T09:00")],
    ]
    t = touch_of(run(tmp_path, settings, files, reverse=reverse))
    assert (t["source"], t["channel"]) == ("google", "paid")


def test_recorded_initial_values_win_over_event_utms(tmp_path, settings):
    rows = [
        pageview("anon-1", "2026-11-02T09:00", utm=("google", "cpc", "brand")),
        # PostHog recorded an earlier first visit (before the exported history): it is the truth
        identify(
            "user_1",
            "anon-1",
            "2026-11-02T09:05",
            set_once=initial("newsletter", "email", "digest", "$direct"),
        ),
    ]
    t = touch_of(run(tmp_path, settings, [rows]))
    assert (t["source"], t["medium"], t["channel"], t["origin"]) == (
        "newsletter",
        "email",
        "organic",
        "set_once",
    )


def test_a_tagged_visit_beats_an_earlier_organic_record(tmp_path, settings):
    rows = [
        identify(
            "user_1", "anon-1", "2026-11-01T09:00", set_once=initial(None, None, None, "www.google.com")
        ),
        pageview("user_1", "2026-11-05T09:00", utm=("facebook", "paid_social", "retargeting")),
    ]
    assert touch_of(run(tmp_path, settings, [rows]))["source"] == "facebook"


def test_organic_only_person_has_referring_domain_and_no_source(tmp_path, settings):
    rows = [pageview("anon-1", "2026-11-01T09:00", referring_domain="news.ycombinator.com")]
    rows.append(identify("user_1", "anon-1", "2026-11-01T09:10"))
    t = touch_of(run(tmp_path, settings, [rows]))
    assert t["source"] is None or (isinstance(t["source"], float) and math.isnan(t["source"]))
    assert (t["referring_domain"], t["channel"]) == ("news.ycombinator.com", "organic")


def test_earliest_tagged_event_wins_and_ties_take_the_smaller_values(tmp_path, settings):
    rows = [
        pageview("anon-1", "2026-11-02T09:00", utm=("zeta", "cpc", "b")),
        pageview("anon-1", "2026-11-02T09:00", utm=("alpha", "cpc", "a")),  # same instant: tie
        pageview("anon-1", "2026-11-03T09:00", utm=("aaa", "cpc", "a")),  # later
        identify("user_1", "anon-1", "2026-11-04T09:00"),
    ]
    assert touch_of(run(tmp_path, settings, [rows]))["source"] == "alpha"


def test_touch_after_as_of_is_ignored(tmp_path, settings):
    rows = [pageview("anon-1", "2026-11-20T00:00", utm=("google", "cpc", "brand"))]
    assert run(tmp_path, settings, [rows]).first_touch.empty


def test_paid_medium_is_case_insensitive_and_configurable(tmp_path, settings):
    rows = [
        pageview("anon-1", "2026-11-01", utm=("google", " CPC ", "brand")),
        pageview("anon-2", "2026-11-01", utm=("x", "sponsor", "y")),
    ]
    result = run(tmp_path, settings, [rows])
    assert touch_of(result, "anon-1")["channel"] == "paid"
    assert touch_of(result, "anon-2")["channel"] == "organic"
    cfg = dataclasses.replace(
        settings, models=dataclasses.replace(settings.models, paid_mediums=("sponsor",))
    )
    assert (
        touch_of(attribution.run(partial_of(tmp_path / "b", [rows], cfg), AS_OF, cfg), "anon-2")["channel"]
        == "paid"
    )


def revenue_rows(result) -> list[tuple]:
    frame = result.revenue.astype(object).where(result.revenue.notna(), None)
    return [
        tuple(r)
        for r in frame[["source", "campaign", "paid_conversions", "conversions", "total_revenue"]].values
    ]


def test_revenue_by_original_source_after_a_direct_return(tmp_path, settings):
    rows = [
        pageview("anon-1", "2026-10-20T09:00", utm=("linkedin", "paid_social", "abm_q4")),
        pageview("anon-1", "2026-10-23T09:00", referring_domain="$direct"),
        identify("user_1", "anon-1", "2026-10-23T09:05"),
        conversion("user_1", "2026-11-10", 1200),
        conversion("user_2", "2026-11-11", "300.5"),  # no touch at all, value as text
        pageview("anon-3", "2026-10-01", utm=("google", "cpc", "brand")),
        identify("user_3", "anon-3", "2026-10-02"),
        conversion("user_3", "2026-11-12", 500),
        conversion("user_3", "2026-11-13", 100),  # the same person converting twice
    ]
    result = run(tmp_path, settings, [rows])
    assert revenue_rows(result) == [
        ("linkedin", "abm_q4", 1, 1, 1200.0),
        ("google", "brand", 1, 2, 600.0),
        (None, None, 1, 1, 300.5),
    ]
    google = result.revenue[result.revenue["source"] == "google"].iloc[0]
    assert google["avg_contract_value"] == 600.0  # per converting person, as the seed defines it


def test_revenue_window_is_half_open_and_duplicates_count_once(tmp_path, settings):
    dup = conversion("u1", "2026-11-15", 10, uuid="11111111-1111-1111-1111-111111111111")
    files = [
        [
            conversion("u2", "2026-08-22T00:00", 1),  # exactly T - 90 days: in
            conversion("u3", "2026-08-21T23:59:59", 2),  # just before: out
            conversion("u4", "2026-11-20T00:00", 4),  # at T: out
            dup,
        ],
        [dict(dup)],  # delivered again in a later file
    ]
    result = run(tmp_path, settings, files)
    assert revenue_rows(result) == [(None, None, 2, 2, 11.0)]


def test_unparseable_contract_value_counts_as_zero(tmp_path, settings):
    rows = [
        conversion("u1", "2026-11-10", "n/a"),
        conversion("u2", "2026-11-10", None),
        conversion("u3", "2026-11-10", 5),
    ]
    assert revenue_rows(run(tmp_path, settings, [rows])) == [(None, None, 3, 3, 5.0)]


def test_revenue_window_is_a_setting(tmp_path, settings):
    cfg = dataclasses.replace(settings, models=dataclasses.replace(settings.models, revenue_window_days=7))
    rows = [conversion("u1", "2026-11-13", 1), conversion("u2", "2026-11-12T23:00", 2)]
    result = attribution.run(partial_of(tmp_path, [rows], cfg), AS_OF, cfg)
    assert revenue_rows(result) == [(None, None, 1, 1, 1.0)]


def test_no_conversions_gives_an_empty_table(tmp_path, settings):
    result = run(tmp_path, settings, [[event("core_feature_used", "2026-11-10")]])
    assert result.revenue.empty
    assert list(result.revenue.columns) == attribution.REVENUE
