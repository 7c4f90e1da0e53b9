"""The seed's signal table on hand-built exports: each signal, its key, its window, exclusions."""

from __future__ import annotations

import dataclasses
import datetime as dt

from plg_bridge.models import pql
from plg_bridge.models.signals import raise_signals
from tests.builders import event, group_identify, identify, partial_of

T = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)


def signals_of(tmp_path, settings, files, as_of=T):
    partial = partial_of(tmp_path, files, settings)
    scores = pql.score(partial, as_of, settings.pql)
    return raise_signals(partial, scores, as_of, settings)


def by_signal(frame, name):
    return frame[frame["signal"] == name].to_dict("records")


def test_org_events_of_the_run_day_with_their_detail(tmp_path, settings):
    rows = [
        event("hits_80_percent_of_tier_limit", "2026-11-19T10:00", distinct_id="u1"),
        event(
            "enterprise_feature_clicked", "2026-11-19T11:00", distinct_id="u1", props={"feature_name": "sso"}
        ),
        event(
            "enterprise_feature_clicked", "2026-11-19T09:00", distinct_id="u2", props={"feature_name": "sso"}
        ),
        event(
            "enterprise_feature_clicked", "2026-11-18T23:59", distinct_id="u2", props={"feature_name": "scim"}
        ),
        event("integration_connected", "2026-11-19T12:00", distinct_id="u2", props={"provider": "stripe"}),
        event(
            "integration_connected", "2026-11-20T00:00", distinct_id="u2", props={"provider": "zapier"}
        ),  # at T
        group_identify("org_a", "2026-11-01", name="Acme"),
    ]
    out = signals_of(tmp_path, settings, [rows])
    enterprise = by_signal(out, "enterprise_interest")
    assert [(r["detail"], r["distinct_id"]) for r in enterprise] == [("sso", "u2")]  # first click of the day
    assert enterprise[0]["signal_key"] == "enterprise_interest:org_a:sso:2026-11-19"
    assert enterprise[0]["org_name"] == "Acme"
    assert [r["detail"] for r in by_signal(out, "integration_connected")] == ["stripe"]
    assert by_signal(out, "usage_ceiling")[0]["signal_key"] == "usage_ceiling:org_a:-:2026-11-19"


def test_pql_crossed_only_on_the_day_the_threshold_is_crossed(tmp_path, settings):
    base = [event("creation_event", "2026-11-10", distinct_id=f"u{i}") for i in range(3)]  # 35
    base += [event("core_feature_used", "2026-11-10")]
    crossing = [event("integration_connected", "2026-11-19T08:00")]
    crossing += [event("core_feature_used", "2026-11-19") for _ in range(2)]  # 2 > 1 x 1.5: velocity
    out = signals_of(tmp_path, settings, [base + crossing])
    crossed = by_signal(out, "pql_crossed")
    assert [(r["org_id"], r["pql_score"], r["is_pql"]) for r in crossed] == [("org_a", 100, True)]
    assert crossed[0]["signal_key"] == "pql_crossed:org_a:-:2026-11-19"
    # The next day the org is still a PQL but did not cross again.
    later = signals_of(tmp_path / "later", settings, [base + crossing], as_of=T + dt.timedelta(days=1))
    assert by_signal(later, "pql_crossed") == []


def test_aha_reached_once_per_stitched_person_with_email_and_org(tmp_path, settings):
    files = [
        [
            event("first_successful_deployment", "2026-11-02", distinct_id="anon-1", org="org_a"),
            identify("user_1", "anon-1", "2026-11-02T01:00", set_props={"email": "ada@acme.io"}),
        ],
        [event("first_successful_deployment", "2026-11-19T05:00", distinct_id="user_2", org="org_b")],
    ]
    out = signals_of(tmp_path, settings, files)
    aha = by_signal(out, "aha_reached")
    assert [(r["distinct_id"], r["org_id"]) for r in aha] == [("user_2", "org_b")]  # user_1's was weeks ago
    files[0].append(
        event("first_successful_deployment", "2026-11-19T06:00", distinct_id="user_1", org="org_a")
    )
    again = by_signal(signals_of(tmp_path / "b", settings, files), "aha_reached")
    assert [r["distinct_id"] for r in again] == ["user_2"]  # user_1 already had it through anon-1


def test_aha_signal_carries_the_persons_email(tmp_path, settings):
    files = [
        [
            identify("user_9", "anon-9", "2026-11-18", set_props={"email": "eve@corp.io"}),
            event("first_successful_deployment", "2026-11-19T05:00", distinct_id="anon-9", org="org_c"),
        ]
    ]
    aha = by_signal(signals_of(tmp_path, settings, files), "aha_reached")
    assert [(r["distinct_id"], r["email"]) for r in aha] == [("user_9", "eve@corp.io")]


def test_excluded_orgs_and_disabled_signals_raise_nothing(tmp_path, settings):
    rows = [
        event("hits_80_percent_of_tier_limit", "2026-11-19", org="org_test", distinct_id="tester"),
        event("hits_80_percent_of_tier_limit", "2026-11-19", org="org_a"),
        event("integration_connected", "2026-11-19", org="org_a", props={"provider": "slack"}),
    ]
    cfg = dataclasses.replace(
        settings,
        models=dataclasses.replace(settings.models, test_org_ids=("org_test",)),
        signals=dataclasses.replace(settings.signals, enabled=("usage_ceiling",)),
    )
    out = signals_of(tmp_path, cfg, [rows])
    assert out[["signal", "org_id"]].values.tolist() == [["usage_ceiling", "org_a"]]
