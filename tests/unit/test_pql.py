"""The PQL rules on small hand-built exports: every window boundary and every scoring branch."""

from __future__ import annotations

import dataclasses

import pytest

from plg_bridge.models.pql import as_of_time
from tests.support.events import event, group_identify

T = "2026-11-20"


def row_of(result, org: str = "org_a") -> dict:
    rows = result.scores[result.scores["org_id"] == org].to_dict("records")
    assert len(rows) == 1, f"expected one row for {org}, got {rows}"
    return rows[0]


def test_event_exactly_at_t_minus_7d_is_this_week(score_rows):
    r = row_of(score_rows([event("core_feature_used", "2026-11-13T00:00:00")]))
    assert (r["events_this_week"], r["events_last_week"]) == (1, 0)


def test_event_just_before_t_minus_7d_is_last_week(score_rows):
    r = row_of(score_rows([event("core_feature_used", "2026-11-12T23:59:59.999999")]))
    assert (r["events_this_week"], r["events_last_week"]) == (0, 1)


def test_event_exactly_at_t_minus_14d_is_last_week_and_earlier_is_out(score_rows):
    result = score_rows(
        [event("core_feature_used", "2026-11-06T00:00:00"), event("core_feature_used", "2026-11-05T23:59:59")]
    )
    r = row_of(result)
    assert (r["events_this_week"], r["events_last_week"]) == (0, 1)


def test_event_at_t_is_excluded_and_counted(score_rows):
    result = score_rows(
        [event("core_feature_used", "2026-11-20T00:00:00"), event("core_feature_used", "2026-11-19")]
    )
    r = row_of(result)
    assert r["events_this_week"] == 1
    assert result.quality["events_after_as_of"] == 1


def test_org_with_only_events_at_or_after_t_gets_no_row(score_rows):
    result = score_rows([event("core_feature_used", "2026-11-20T00:00:00", org="org_late")])
    assert result.scores.empty


def test_velocity_with_zero_last_week(score_rows):
    r = row_of(score_rows([event("core_feature_used", "2026-11-18")]))
    assert r["pql_score"] == 40


def test_velocity_needs_more_than_one_and_a_half_times(score_rows):
    rows = [event("core_feature_used", "2026-11-18") for _ in range(3)]
    rows += [event("core_feature_used", "2026-11-10") for _ in range(2)]
    r = row_of(score_rows(rows))  # 3 > 2 * 1.5 is false
    assert r["pql_score"] == 0
    rows.append(event("core_feature_used", "2026-11-18"))  # 4 > 3 is true
    assert row_of(score_rows(rows))["pql_score"] == 40


def test_two_creators_give_twenty_points_three_give_thirty_five(score_rows):
    two = [event("creation_event", "2026-11-10", distinct_id=f"u{i}") for i in range(2)]
    assert row_of(score_rows(two))["pql_score"] == 20
    three = [*two, event("creation_event", "2026-11-07", distinct_id="u9")]
    r = row_of(score_rows(three))
    assert (r["active_creators"], r["pql_score"]) == (3, 35)


def test_creator_is_person_id_else_distinct_id(score_rows):
    rows = [
        event("creation_event", "2026-11-10", distinct_id="anon", person_id="p1"),
        event("creation_event", "2026-11-11", distinct_id="user_1", person_id="p1"),  # same person
        event(
            "creation_event", "2026-11-11", distinct_id="user_2", person_id=""
        ),  # falls back to distinct_id
        event(
            "creation_event", "2026-11-11", distinct_id="anonymous", person_id=""
        ),  # placeholder: not a user
    ]
    result = score_rows(rows)
    assert row_of(result)["active_creators"] == 2
    assert result.quality["placeholder_users"] == 1


def test_integration_counts_over_both_weeks(score_rows):
    r = row_of(score_rows([event("integration_connected", "2026-11-06", props={"provider": "zapier"})]))
    assert (r["integrations_connected"], r["pql_score"]) == (1, 25)


def test_full_score_crosses_threshold(score_rows):
    rows = [event("core_feature_used", "2026-11-19")]
    rows += [event("creation_event", "2026-11-15", distinct_id=f"u{i}") for i in range(3)]
    rows += [event("integration_connected", "2026-11-15")]
    r = row_of(score_rows(rows))
    assert (r["pql_score"], r["is_pql"]) == (100, True)


def test_threshold_is_inclusive(score_rows):
    rows = [event("core_feature_used", "2026-11-19")]
    rows += [event("creation_event", "2026-11-15", distinct_id=f"u{i}") for i in range(2)]
    rows += [event("integration_connected", "2026-11-15")]
    r = row_of(score_rows(rows))  # 40 + 20 + 25 = 85
    assert r["is_pql"]
    rows = rows[1:]  # 20 + 25 = 45
    assert not row_of(score_rows(rows))["is_pql"]


def test_duplicate_uuids_count_once(score_rows):
    e = event("core_feature_used", "2026-11-18", uuid="00000000-0000-0000-0000-000000000001")
    result = score_rows([e, dict(e), dict(e)])
    assert row_of(result)["events_this_week"] == 1
    assert result.quality["duplicates"] == 2


def test_org_from_groups_when_group_0_absent(score_rows):
    result = score_rows([event("core_feature_used", "2026-11-18", org="org_g", only_groups=True)])
    assert row_of(result, "org_g")["events_this_week"] == 1


def test_events_without_org_are_counted_not_scored(score_rows):
    result = score_rows([event("core_feature_used", "2026-11-18", org=None)])
    assert result.scores.empty
    assert result.quality["missing_org"] == 1


def test_malformed_properties_are_quarantined_with_file_and_row(score_rows):
    rows = [
        event("core_feature_used", "2026-11-18"),
        event("core_feature_used", "2026-11-18", raw_properties="{oops"),
    ]
    result = score_rows(rows)
    assert row_of(result)["events_this_week"] == 1
    q = result.quarantine.to_dict("records")
    assert [(r["row"], r["reason"]) for r in q] == [(1, "malformed_properties")]
    assert q[0]["file"].endswith(".parquet.zst")


def test_org_name_is_latest_group_set_before_t(score_rows):
    rows = [
        event("core_feature_used", "2026-11-18"),
        group_identify("org_a", "2026-11-01", name="Old"),
        group_identify("org_a", "2026-11-10", name="New"),
        group_identify("org_a", "2026-11-21", name="Future"),
    ]
    assert row_of(score_rows(rows))["org_name"] == "New"


def test_org_without_name_has_null_name(score_rows):
    assert row_of(score_rows([event("core_feature_used", "2026-11-18")]))["org_name"] is None


def test_weights_and_threshold_come_from_settings(score_rows, settings):
    cfg = dataclasses.replace(
        settings, pql=dataclasses.replace(settings.pql, velocity_points=70, threshold=70)
    )
    r = row_of(score_rows([event("core_feature_used", "2026-11-18")], cfg=cfg))
    assert (r["pql_score"], r["is_pql"]) == (70, True)


def test_rows_sorted_best_first(score_rows):
    rows = [event("core_feature_used", "2026-11-18", org="org_low", props=None)]
    rows += [event("integration_connected", "2026-11-18", org="org_high")]
    rows += [event("core_feature_used", "2026-11-18", org="org_high")]
    assert list(score_rows(rows).scores["org_id"]) == ["org_high", "org_low"]


@pytest.mark.parametrize("bad", ["2026-11-20T05:00:00", "yesterday"])
def test_as_of_must_be_a_midnight_date(bad):
    with pytest.raises(ValueError, match="as-of"):
        as_of_time(bad)


def test_daily_scores_equal_score_as_of_each_date(tmp_path, settings):
    """The vectorized series behind the PQL hysteresis is `score` itself, date by date."""
    import datetime as dt
    import random

    from plg_bridge.models.pql import daily_scores, score
    from tests.support.events import partial_of

    rng = random.Random(5)
    rows = []
    for day in range(1, 29):
        for org in ("org_a", "org_b", "org_c", "org_d"):
            at = f"2026-11-{day:02d}T{rng.randint(0, 23):02d}:00"
            for _ in range(rng.randint(0, 5)):
                rows.append(
                    event(
                        rng.choice(["core_feature_used", "creation_event"]),
                        at,
                        org,
                        distinct_id=f"u{rng.randint(0, 6)}",
                    )
                )
            if rng.random() < 0.1:
                rows.append(event("integration_connected", at, org))
    partial = partial_of(tmp_path, [rows], settings)
    dates = [dt.datetime(2026, 11, d, tzinfo=dt.UTC) for d in range(2, 31)]
    series = daily_scores(partial, dates, settings.pql)
    for when in dates:
        expected = score(partial, when, settings.pql).set_index("org_id")["pql_score"]
        got = series[series["day"] == when].set_index("org_id")["pql_score"]
        assert got[got > 0].sort_index().to_dict() == expected[expected > 0].sort_index().to_dict(), when
    assert series["pql_score"].nunique() > 3  # the data moves the score around
