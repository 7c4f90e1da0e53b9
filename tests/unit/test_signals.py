"""The seed's signal table on hand-built exports: each signal, its key, its window, exclusions."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools

from plg_bridge.models import pql
from plg_bridge.models.signals import pql_alerts, raise_signals
from tests.support.clocks import AS_OF as T
from tests.support.events import alias, event, group_identify, identify, partial_of


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
            "enterprise_feature_clicked",
            "2026-11-19T23:59",
            distinct_id="u2",
            props={"feature_name": " SCIM "},
        ),
        event(
            "enterprise_feature_clicked", "2026-11-19T23:00", distinct_id="u1", props={"feature_name": "-"}
        ),
        event("integration_connected", "2026-11-19T12:00", distinct_id="u2", props={"provider": "stripe"}),
        event(
            "integration_connected", "2026-11-20T00:00", distinct_id="u2", props={"provider": "zapier"}
        ),  # at T
        group_identify("org_a", "2026-11-01", name="Acme"),
    ]
    out = signals_of(tmp_path, settings, [rows])
    enterprise = by_signal(out, "enterprise_interest")
    # one row per account: the day's first click, every feature normalised and listed
    assert [(r["detail"], r["distinct_id"]) for r in enterprise] == [("scim, sso", "u2")]
    assert enterprise[0]["signal_key"] == "enterprise_interest:org_a:-:2026-11-19"
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


def run_days(tmp_path, settings, files, first: dt.datetime, days: int):
    """signals of `days` daily runs as of first, first + 1d, ... on one partial (what each run sees)."""
    partial = partial_of(tmp_path, files, settings)
    out = []
    for k in range(days):
        as_of = first + dt.timedelta(days=k)
        out.append(raise_signals(partial, pql.score(partial, as_of, settings.pql), as_of, settings))
    return out


def test_server_side_identify_makes_the_aha_person_the_identified_id(tmp_path, settings):
    rows = [
        event("core_feature_used", "2026-11-18T08:00", distinct_id="0b9c-device", person_id="p-7"),
        identify("usr_7", None, "2026-11-18T09:00", person_id="p-7"),  # server side, no $anon_distinct_id
        alias("usr_7", "backend-7", "2026-11-18T09:01"),
        event("first_successful_deployment", "2026-11-19T05:00", distinct_id="0b9c-device", person_id="p-7"),
        event(
            "enterprise_feature_clicked",
            "2026-11-19T06:00",
            distinct_id="backend-7",
            props={"feature_name": "sso"},
        ),
    ]
    out = signals_of(tmp_path, settings, [rows])
    assert [r["distinct_id"] for r in by_signal(out, "aha_reached")] == ["usr_7"]
    assert [r["distinct_id"] for r in by_signal(out, "enterprise_interest")] == ["usr_7"]


def test_a_later_groupidentify_with_only_plan_keeps_the_name(tmp_path, settings):
    rows = [
        group_identify("org_a", "2026-11-10T08:00", name="Acme", plan="free"),
        group_identify("org_a", "2026-11-18T08:00", plan="pro"),  # another day
        group_identify("org_b", "2026-11-18T08:00", name="Beta"),
        group_identify("org_b", "2026-11-18T09:00", plan="pro"),  # the same day
        event("hits_80_percent_of_tier_limit", "2026-11-19T10:00", org="org_a"),
        event("hits_80_percent_of_tier_limit", "2026-11-19T10:00", org="org_b"),
        event("core_feature_used", "2026-11-19T10:00", org="org_a"),
        event("core_feature_used", "2026-11-19T10:00", org="org_b"),
    ]
    partial = partial_of(tmp_path, [rows], settings)
    scores = pql.score(partial, T, settings.pql).set_index("org_id")
    assert scores.loc["org_a", "org_name"] == "Acme" and scores.loc["org_b", "org_name"] == "Beta"
    out = raise_signals(partial, pql.score(partial, T, settings.pql), T, settings)
    assert {r["org_id"]: r["org_name"] for r in by_signal(out, "usage_ceiling")} == {
        "org_a": "Acme",
        "org_b": "Beta",
    }


def test_one_ae_task_per_account_within_the_cooldown(tmp_path, settings):
    click = "enterprise_feature_clicked"
    rows = [
        event(click, "2026-11-12T10:00", props={"feature_name": "SSO"}),  # raised on 11-12
        event(click, "2026-11-15T10:00", props={"feature_name": "scim"}),  # 3 days later: cooled
        event(click, "2026-11-19T10:00", props={"feature_name": "sso"}),  # 7 days later: raised
        event(click, "2026-11-19T11:00", props={"feature_name": "Audit   Logs"}),
        event("hits_80_percent_of_tier_limit", "2026-11-13T10:00"),
        event("hits_80_percent_of_tier_limit", "2026-11-19T10:00"),  # 6 days later: cooled
    ]
    daily = run_days(tmp_path, settings, [rows], dt.datetime(2026, 11, 13, tzinfo=dt.UTC), 8)
    raised = [(r["signal"], r["as_of"], r["detail"]) for out in daily for r in out.to_dict("records")]
    assert raised == [
        ("enterprise_interest", "2026-11-13", "sso"),
        ("usage_ceiling", "2026-11-14", None),
        ("enterprise_interest", "2026-11-20", "audit logs, sso"),
    ]
    longer = dataclasses.replace(settings, signals=dataclasses.replace(settings.signals, cooldown_days=8))
    out = signals_of(tmp_path / "longer", longer, [rows])
    assert by_signal(out, "enterprise_interest") == []


def test_placeholder_feature_names_still_raise_but_are_not_listed(tmp_path, settings):
    rows = [
        event("enterprise_feature_clicked", "2026-11-19T10:00", props={"feature_name": " - "}),
        event("enterprise_feature_clicked", "2026-11-19T10:05", props={"feature_name": "N/A"}),
        event("integration_connected", "2026-11-19T10:00", props={"provider": " Stripe"}),
        event("integration_connected", "2026-11-19T11:00", props={"provider": "stripe "}),
        event("integration_connected", "2026-11-19T12:00", props={"provider": "-"}),
    ]
    out = signals_of(tmp_path, settings, [rows])
    assert [r["detail"] for r in by_signal(out, "enterprise_interest")] == [None]
    assert [(r["detail"], r["signal_key"]) for r in by_signal(out, "integration_connected")] == [
        ("stripe", "integration_connected:org_a:stripe:2026-11-19")
    ]


def _hovering_rows() -> list:
    """Daily PQL scores as of 11-02 .. 11-30: 60 60 | 100 x7 | 60 60 | 100 100 100 | 75 x4 | 35 x5 | 75 x6.

    3 creators a day (35), an integration on 11-01 (25 until 11-15), core bursts (velocity 40).
    """
    rows = []
    for d in range(1, 31):
        rows += [event("creation_event", f"2026-11-{d:02d}T08:00", distinct_id=f"c{i}") for i in range(3)]
    rows += [event("integration_connected", "2026-11-01T08:00", props={"provider": "stripe"})]
    for day, n in (("2026-11-03", 2), ("2026-11-12", 4), ("2026-11-24", 12)):
        rows += [event("core_feature_used", f"{day}T09:00") for _ in range(n)]
    return rows


def _alert_days(partial, cfg, as_of=dt.datetime(2026, 11, 30, tzinfo=dt.UTC)) -> list[str]:
    alerts = pql_alerts(partial, pql.score(partial, as_of, cfg.pql), as_of, cfg)
    return [d.strftime("%m-%d") for d in alerts["day"]]


def test_pql_alert_rearms_only_after_the_score_was_below_the_lower_mark(tmp_path, settings):
    partial = partial_of(tmp_path, [_hovering_rows()], settings)
    scores = [
        int(pql.score(partial, dt.datetime(2026, 11, d, tzinfo=dt.UTC), settings.pql)["pql_score"].iloc[0])
        for d in (3, 4, 11, 13, 16, 20, 25)
    ]
    assert scores == [60, 100, 60, 100, 75, 35, 75]
    # 60 -> 100 on 11-13 is a crossing, but 60 never went below the mark (50): no second alert
    assert _alert_days(partial, settings) == ["11-04", "11-25"]
    on = {
        d: by_signal(
            signals_of(
                tmp_path / str(d), settings, [_hovering_rows()], as_of=dt.datetime(2026, 11, d, tzinfo=dt.UTC)
            ),
            "pql_crossed",
        )
        for d in (4, 13, 25)
    }
    assert [len(on[d]) for d in (4, 13, 25)] == [1, 0, 1]
    assert on[25][0]["signal_key"] == "pql_crossed:org_a:-:2026-11-24"
    higher = dataclasses.replace(settings, signals=dataclasses.replace(settings.signals, pql_rearm_below=70))
    assert _alert_days(partial, higher) == ["11-04", "11-13", "11-25"]  # 60 re-armed it
    slow = dataclasses.replace(higher, signals=dataclasses.replace(higher.signals, cooldown_days=10))
    assert _alert_days(partial, slow) == ["11-04", "11-14", "11-25"]  # 11-13 inside the cool-down


def test_aha_is_credited_to_its_own_organization_and_raised_without_one(tmp_path, settings):
    rows = [
        event("core_feature_used", "2026-11-02T08:00", distinct_id="usr_1", org="org_first"),
        event("first_successful_deployment", "2026-11-19T05:00", distinct_id="usr_1", org="org_second"),
        identify("usr_2", None, "2026-11-10T08:00"),
        event("first_successful_deployment", "2026-11-19T06:00", distinct_id="usr_2", org=None),
    ]
    aha = by_signal(signals_of(tmp_path, settings, [rows]), "aha_reached")
    assert [(r["distinct_id"], r["org_id"]) for r in aha] == [("usr_1", "org_second"), ("usr_2", None)]


def test_padded_placeholder_ids_are_nobody(tmp_path, settings):
    ids = ("u1", "u2", " anonymous ", " NULL")  # no person_id: the creator is the distinct id
    rows = [event("creation_event", "2026-11-18T08:00", distinct_id=d, person_id="") for d in ids]
    rows += [
        event("hits_80_percent_of_tier_limit", "2026-11-19T08:00", distinct_id=" anonymous ", person_id="")
    ]
    partial = partial_of(tmp_path, [rows], settings)
    assert pql.score(partial, T, settings.pql).set_index("org_id").loc["org_a", "active_creators"] == 2
    out = raise_signals(partial, pql.score(partial, T, settings.pql), T, settings)
    assert by_signal(out, "usage_ceiling") == []


def test_a_week_of_daily_runs_on_noisy_data_repeats_no_task_or_alert_within_the_cooldown(tmp_path, settings):
    import random

    rng = random.Random(12)
    features = ["SSO", "sso", " sso ", "SCIM", "scim", "-", "", "Audit Logs", "audit  logs"]
    rows = []
    for day in range(1, 20):
        for org in ("org_a", "org_b", "org_c"):
            at = f"2026-11-{day:02d}T"
            rows += [
                event("creation_event", f"{at}08:00", org, distinct_id=f"{org}-c{i}")
                for i in range(rng.randint(1, 4))
            ]
            rows += [event("core_feature_used", f"{at}09:00", org) for _ in range(rng.randint(0, 6))]
            if rng.random() < 0.3:
                rows.append(event("integration_connected", f"{at}10:00", org, props={"provider": "stripe"}))
            for k in range(rng.randint(0, 4)):
                name = rng.choice(features)
                rows.append(
                    event("enterprise_feature_clicked", f"{at}1{k}:00", org, props={"feature_name": name})
                )
            if rng.random() < 0.6:
                rows.append(event("hits_80_percent_of_tier_limit", f"{at}12:00", org))
    daily = run_days(tmp_path, settings, [rows], dt.datetime(2026, 11, 14, tzinfo=dt.UTC), 7)
    seen: dict[tuple[str, str], list[dt.date]] = {}
    for out in daily:
        for r in out.to_dict("records"):
            if r["signal"] in ("usage_ceiling", "enterprise_interest", "pql_crossed"):
                seen.setdefault((r["signal"], r["org_id"]), []).append(dt.date.fromisoformat(r["as_of"]))
    assert sum(len(v) for v in seen.values()) >= 3  # the data raises some
    for days in seen.values():
        assert all((b - a).days >= settings.signals.cooldown_days for a, b in itertools.pairwise(days))
    # every raised day, every run the same key (deterministic): a rerun raises exactly the same rows
    again = run_days(tmp_path / "again", settings, [rows], dt.datetime(2026, 11, 14, tzinfo=dt.UTC), 7)
    assert [list(o["signal_key"]) for o in again] == [list(o["signal_key"]) for o in daily]
