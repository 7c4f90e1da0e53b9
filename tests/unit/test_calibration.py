"""PQL threshold calibration on hand-built cases: precision, recall, lift, F1 and the recommended
threshold computed by hand; dates, exclusions, empty data, no conversions."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math

import pytest

from plg_bridge.models import calibration
from tests.support.events import conversion, event, partial_of

T = dt.datetime(2026, 11, 30, tzinfo=dt.UTC)  # one calibration date with the settings below: D = 11-23


def configured(settings, **calibration_overrides):
    models = dataclasses.replace(settings.models, test_org_ids=("org_t",))
    cal = dataclasses.replace(
        settings.calibration,
        **{"horizon_days": 7, "lookback_days": 0, "min_flagged": 1, "min_lift": 1.2, **calibration_overrides},
    )
    return dataclasses.replace(settings, models=models, calibration=cal)


def scored_rows(
    org: str, *, velocity: bool = False, creators: int = 0, integration: bool = False
) -> list[dict]:
    rows = [event("core_feature_used", "2026-11-20", org=org) for _ in range(3 if velocity else 0)]
    rows += [
        event("creation_event", "2026-11-18", org=org, distinct_id=f"{org}-u{i}") for i in range(creators)
    ]
    rows += [event("integration_connected", "2026-11-19", org=org)] if integration else []
    return rows


def history() -> list[dict]:
    """Scores as of D = 2026-11-23: a 100, b 75, c 25, d 10, e 75 (converted before D), t 40 (test)."""
    rows = [event("core_feature_used", "2026-11-05", org="org_z")]  # the first day: D - 14d >= it
    rows += scored_rows("org_a", velocity=True, creators=3, integration=True)
    rows += scored_rows("org_b", velocity=True, creators=3)
    rows += scored_rows("org_c", integration=True)
    rows += scored_rows("org_d", creators=1)
    rows += scored_rows("org_e", velocity=True, creators=3)
    rows += scored_rows("org_t", velocity=True)
    return rows


def outcomes() -> list[dict]:
    return [
        conversion("org_a-u0", "2026-11-25", org="org_a"),  # within [D, D + 7d)
        conversion("org_c-u9", "2026-11-29T23:59", org="org_c"),  # last minute of the horizon
        conversion("org_d-u0", "2026-11-30", org="org_d"),  # D + 7d: outside (half-open)
        conversion("org_e-u0", "2026-11-20", org="org_e"),  # before D: already a customer
        conversion("org_t-u0", "2026-11-24", org="org_t"),  # test organization: left out
    ]


def by_threshold(result) -> dict[int, dict]:
    return {int(r["threshold"]): r for r in result.curve.to_dict("records")}


@pytest.mark.parametrize("reverse", [False, True], ids=["in-order", "reversed"])
def test_precision_recall_lift_by_hand(tmp_path, settings, reverse):
    partial = partial_of(tmp_path, [history(), outcomes()], settings, reverse=reverse)
    result = calibration.run(partial, T, configured(settings))

    assert result.dates.to_dict("records") == [
        {"as_of": "2026-11-23", "scored": 5, "already_converted": 1, "observations": 4, "positives": 2}
    ]
    obs = result.observations.set_index("org_id")
    assert obs["pql_score"].to_dict() == {"org_a": 100, "org_b": 75, "org_c": 25, "org_d": 10}
    assert obs["converted"].to_dict() == {"org_a": True, "org_b": False, "org_c": True, "org_d": False}

    rows = by_threshold(result)
    assert list(rows) == list(range(0, 101, 5))
    # (flagged, true positives, precision, recall, lift, f1); base rate 2 / 4
    expected = {
        0: (4, 2, 1 / 2, 1.0, 1.0, 4 / 6),
        10: (4, 2, 1 / 2, 1.0, 1.0, 4 / 6),
        15: (3, 2, 2 / 3, 1.0, 4 / 3, 4 / 5),
        25: (3, 2, 2 / 3, 1.0, 4 / 3, 4 / 5),
        30: (2, 1, 1 / 2, 1 / 2, 1.0, 2 / 4),
        75: (2, 1, 1 / 2, 1 / 2, 1.0, 2 / 4),
        80: (1, 1, 1.0, 1 / 2, 2.0, 2 / 3),
        100: (1, 1, 1.0, 1 / 2, 2.0, 2 / 3),
    }
    for t, (flagged, tp, precision, recall, lift, f1) in expected.items():
        row = rows[t]
        assert (row["flagged"], row["true_positives"], row["observations"], row["positives"]) == (
            flagged,
            tp,
            4,
            2,
        )
        got = (row["precision"], row["recall"], row["lift"], row["f1"], row["base_rate"])
        assert got == pytest.approx((precision, recall, lift, f1, 0.5)), t
    assert rows[15]["flagged_orgs"] == 3
    # qualifying (lift >= 1.2): 15..25 (F1 0.8) and 80..100 (F1 0.67); the tie 15/20/25 goes up
    assert [t for t, r in rows.items() if r["qualifies"]] == [15, 20, 25, 80, 85, 90, 95, 100]
    assert result.recommended == 25
    assert [t for t, r in rows.items() if r["recommended"]] == [25]
    assert [t for t, r in rows.items() if r["current"]] == [75]
    assert result.reason.startswith("threshold 25: best F1 (0.80)")
    assert result.quality == {
        "calibration_dates": 1,
        "calibration_observations": 4,
        "calibration_positives": 2,
        "calibration_already_converted": 1,
    }


def test_a_stricter_lift_and_a_minimum_count_change_the_recommendation(tmp_path, settings):
    partial = partial_of(tmp_path, [history(), outcomes()], settings)
    strict = calibration.run(partial, T, configured(settings, min_lift=1.5))
    assert strict.recommended == 100  # 80..100 tie on F1: the highest threshold
    none = calibration.run(partial, T, configured(settings, min_lift=1.5, min_flagged=2))
    assert none.recommended is None and not none.curve["recommended"].any()
    assert "no threshold flags at least 2 organization-days with lift >= 1.5" in none.reason


def test_dates_step_back_from_t_minus_horizon_and_need_two_weeks_of_history(tmp_path, settings):
    partial = partial_of(tmp_path, [history(), outcomes()], settings)
    cfg = configured(settings, lookback_days=10, date_step_days=3)
    dates = calibration.as_of_dates(partial, T, cfg)
    # 11-23, 11-20, 11-17, 11-14 within the lookback; the first PQL day 11-05 + 14d = 11-19 cuts
    assert [f"{d:%m-%d}" for d in dates] == ["11-20", "11-23"]
    result = calibration.run(partial, T, cfg)
    assert result.dates["as_of"].tolist() == ["2026-11-20", "2026-11-23"]
    # as of 11-20 org_e had not converted yet (its conversion is on 11-20, inside [D, D + 7d))
    first = result.observations[result.observations["as_of"] == "2026-11-20"].set_index("org_id")
    assert first.loc["org_e", "converted"]


def test_no_conversions_gives_no_recommendation(tmp_path, settings):
    partial = partial_of(tmp_path, [history()], settings)
    result = calibration.run(partial, T, configured(settings))
    assert len(result.observations) == 5 and not result.observations["converted"].any()
    rows = by_threshold(result)
    assert rows[0]["positives"] == 0 and math.isnan(rows[0]["recall"]) and math.isnan(rows[0]["lift"])
    assert rows[0]["precision"] == 0.0 and rows[0]["f1"] == 0.0
    assert result.recommended is None
    assert result.reason == "no scored organization converted within 7 days of any calibration date"


def test_empty_data(tmp_path, settings):
    partial = partial_of(tmp_path, [[]], settings)
    result = calibration.run(partial, T, configured(settings))
    assert result.dates.empty and result.observations.empty
    assert list(result.observations.columns) == list(calibration.OBSERVATIONS)
    assert len(result.curve) == 21 and (result.curve["observations"] == 0).all()
    assert result.curve["precision"].isna().all() and result.curve["f1"].isna().all()
    assert result.recommended is None and result.reason.startswith("no as-of dates yet")


def test_history_too_short_for_the_horizon(tmp_path, settings):
    partial = partial_of(tmp_path, [history(), outcomes()], settings)
    result = calibration.run(partial, T, configured(settings, horizon_days=30))
    assert result.dates.empty and result.recommended is None


def test_threshold_grid_includes_the_configured_threshold(settings):
    cfg = dataclasses.replace(
        settings, calibration=dataclasses.replace(settings.calibration, threshold_step=20)
    )
    assert calibration.thresholds(cfg) == [0, 20, 40, 60, 75, 80, 100]


def test_needs_the_person_tables(tmp_path, settings):
    from plg_bridge.ingest import rollup

    partial = partial_of(tmp_path, [history()], settings)
    with pytest.raises(ValueError, match="person tables"):
        calibration.run(dataclasses.replace(partial, people=False), T, settings)
    assert rollup.merge([]).people is False


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("calibration:\n  horizon_days: 0\n", "invalid setting calibration.horizon_days"),
        ("calibration:\n  min_lift: 0.5\n", "invalid setting calibration.min_lift"),
        ("calibration:\n  threshold_step: -5\n", "invalid setting calibration.threshold_step"),
        ("calibration:\n  horizon: 30\n", "unknown setting calibration.horizon"),
    ],
)
def test_bad_calibration_settings_name_the_key(tmp_path, yaml_text, message):
    from plg_bridge.config import ConfigError, load_settings

    path = tmp_path / "bad.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError, match=message):
        load_settings(path, env={})
    assert load_settings(env={"PLG_BRIDGE__CALIBRATION__HORIZON_DAYS": "14"}).calibration.horizon_days == 14
