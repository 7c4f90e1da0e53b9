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


# -- creators counted per PostHog person (issue 12): both paths, rules written from PostHog's -----


def creators_both_paths(tmp_path, settings, rows: list[dict], org: str = "org_a") -> int:
    """active_creators of `org` by the CLI (`score_export`: identity events only) and by the DAG
    path (person tables, `score_merged`); they must agree."""
    from plg_bridge.pipeline import score_export, score_merged
    from plg_bridge.storage import location
    from tests.support.clocks import AS_OF
    from tests.support.events import partial_of, write_export

    write_export(tmp_path / "cli", rows)
    cli = row_of(score_export(location(str(tmp_path / "cli")), AS_OF, settings), org)["active_creators"]
    merged = partial_of(tmp_path / "dag", [rows], settings)
    dag = row_of(score_merged(merged, AS_OF, settings), org)["active_creators"]
    assert cli == dag, f"CLI {cli} creators, DAG path {dag}"
    return cli


def test_two_persons_merged_dangerously_count_once(tmp_path, settings):
    """Both identified, different person_ids; `$merge_dangerously` merges identified persons."""
    from tests.support.events import alias, identify

    rows = [
        identify("usr_a", None, "2026-11-01"),
        identify("usr_b", None, "2026-11-01"),
        event("creation_event", "2026-11-10", distinct_id="usr_a", person_id="pa"),
        event("creation_event", "2026-11-11", distinct_id="usr_b", person_id="pb"),
    ]
    assert creators_both_paths(tmp_path / "apart", settings, rows) == 2
    merged = [*rows, alias("usr_a", "usr_b", "2026-11-15", name="$merge_dangerously")]
    assert creators_both_paths(tmp_path / "merged", settings, merged) == 1
    # a merge at T or later is not known as of T
    late = [*rows, alias("usr_a", "usr_b", "2026-11-20T00:00", name="$merge_dangerously")]
    assert creators_both_paths(tmp_path / "late", settings, late) == 2


def test_anonymous_person_identified_into_an_identified_one_counts_once(tmp_path, settings):
    """usr_1 is identified; anon_x (its own person) creates, then `$identify(usr_1, anon_x)`:
    PostHog merges the anonymous person into usr_1's."""
    from tests.support.events import identify

    rows = [
        identify("usr_1", None, "2026-11-01", person_id="p1"),
        event("creation_event", "2026-11-10", distinct_id="anon_x", person_id="px"),
        event("creation_event", "2026-11-11", distinct_id="usr_1", person_id="p1"),
        identify("usr_1", "anon_x", "2026-11-12", person_id="p1"),
    ]
    assert creators_both_paths(tmp_path, settings, rows) == 1


def test_identify_between_two_identified_persons_is_refused_and_counts_twice(tmp_path, settings):
    """User B logs in on A's machine without a reset: `$identify(usr_b, $anon_distinct_id=usr_a)`
    with usr_a already identified; PostHog refuses the merge (cannot_merge_already_identified)."""
    from tests.support.events import identify

    rows = [
        identify("usr_a", None, "2026-11-01", person_id="pa"),
        identify("usr_b", None, "2026-11-02", person_id="pb"),
        event("creation_event", "2026-11-10", distinct_id="usr_a", person_id="pa"),
        event("creation_event", "2026-11-11", distinct_id="usr_b", person_id="pb"),
        identify("usr_b", "usr_a", "2026-11-12", person_id="pb"),
    ]
    assert creators_both_paths(tmp_path, settings, rows) == 2


def test_placeholder_ids_merge_no_one_and_are_no_creators(tmp_path, settings):
    """Two users each `$identify` with `$anon_distinct_id` "anonymous" (PostHog's illegal list):
    not one person through it. A padded placeholder without person_id is no creator; "guest"
    (illegal, never merged) sharing usr_1's person_id is usr_1's person."""
    from tests.support.events import identify

    rows = [
        identify("usr_1", "anonymous", "2026-11-01", person_id="p1"),
        identify("usr_2", "anonymous", "2026-11-01", person_id="p2"),
        event("creation_event", "2026-11-10", distinct_id="usr_1", person_id="p1"),
        event("creation_event", "2026-11-10", distinct_id="usr_2", person_id="p2"),
        event("creation_event", "2026-11-11", distinct_id=" anonymous ", person_id=""),
        event("creation_event", "2026-11-12", distinct_id="guest", person_id="p1"),
    ]
    assert creators_both_paths(tmp_path, settings, rows) == 2


def test_ids_sharing_a_person_id_count_once_across_days(tmp_path, settings):
    """PostHog's own merge, as the export's person_id shows it: two distinct ids, one person."""
    rows = [
        event("creation_event", "2026-11-08", distinct_id="laptop", person_id="p9"),
        event("creation_event", "2026-11-18", distinct_id="phone", person_id="p9"),
        event("creation_event", "2026-11-18", distinct_id="other", person_id="p8"),
    ]
    assert creators_both_paths(tmp_path, settings, rows) == 2
