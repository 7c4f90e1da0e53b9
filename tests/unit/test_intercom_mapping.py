"""Pure Intercom mapping: frames -> company / tag / event records, error.list answers -> codes,
and the rate-limit policy (X-RateLimit-Reset / -Remaining)."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
import requests

from plg_bridge.delivery.intercom.client import IntercomRateLimiter, intercom_wait_hint, region_url
from plg_bridge.delivery.intercom.mapping import (
    ATTRIBUTE_TYPES,
    COMPANY_ATTRIBUTES,
    company_records,
    error_detail,
    event_records,
    tag_records,
    tag_slug,
    unix_time,
)
from tests.fakes.intercom import _TYPE_CHECKS
from tests.support.frames import three_scores

T_AHA = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)


def scores(**overrides) -> pd.DataFrame:
    return three_scores(
        **{
            "org_name": ["Acme", None, "  Globex \n Corp "],
            "active_creators": np.array([4, 1, 0], dtype="int64"),
            "pql_score": np.array([80, 10, 33], dtype="int64"),
            **overrides,
        }
    )


def signals(rows: list[dict]) -> pd.DataFrame:
    base = {
        "signal_key": None,
        "signal": None,
        "org_id": None,
        "org_name": None,
        "distinct_id": None,
        "email": None,
        "detail": None,
        "occurred_at": pd.Timestamp(T_AHA),
        "as_of": datetime(2026, 11, 20).date(),
        "pql_score": 50,
        "is_pql": False,
    }
    out = [{**base, **row} for row in rows]
    for n, row in enumerate(out):
        row["signal_key"] = row["signal_key"] or f"{row['signal']}:{row['org_id']}:{n}"
    return pd.DataFrame(out)


# -- companies ---------------------------------------------------------------------------------


def test_company_records_carry_typed_custom_attributes():
    records = company_records(scores())
    assert [r["record_key"] for r in records] == ["org-1", "org-2", "org-3"]
    assert [r["org_id"] for r in records] == ["org-1", "org-2", "org-3"]
    assert records[0]["payload"] == {
        "company_id": "org-1",
        "name": "Acme",
        "custom_attributes": {
            "plg_pql_score": 80,
            "plg_is_pql": True,
            "plg_events_this_week": 120,
            "plg_events_last_week": 80,
            "plg_active_creators": 4,
            "plg_integrations_connected": 2,
        },
    }
    # null name and NaN count are left out (null would clear them in Intercom), names are tidied
    assert "name" not in records[1]["payload"]
    assert "plg_events_last_week" not in records[1]["payload"]["custom_attributes"]
    assert records[2]["payload"]["name"] == "Globex Corp"
    # plain JSON types, not numpy (requests could not encode them) and as the data attributes say
    for record in records:
        for name, value in record["payload"]["custom_attributes"].items():
            assert type(value) in (int, bool, str), (name, type(value))
            assert _TYPE_CHECKS[ATTRIBUTE_TYPES[name]](value), (name, value)


def test_scored_at_only_when_as_of_is_given():
    assert "plg_scored_at" not in company_records(scores())[0]["payload"]["custom_attributes"]
    stamped = company_records(scores(), as_of="2026-11-20")[0]["payload"]["custom_attributes"]
    assert stamped["plg_scored_at"] == int(datetime(2026, 11, 20, tzinfo=UTC).timestamp())


def test_float_scores_round_to_the_integer_attribute():
    attrs = company_records(scores(pql_score=[72.5, 10.2, np.inf]))
    assert [r["payload"]["custom_attributes"].get("plg_pql_score") for r in attrs] == [73, 10, None]


def test_signals_add_the_latest_signal_and_signal_only_organizations():
    frame = signals(
        [
            {"signal": "integration_connected", "org_id": "org-1", "detail": "Slack"},
            {
                "signal": "usage_ceiling",
                "org_id": "org-1",
                "occurred_at": pd.Timestamp("2026-11-20T11:00Z"),
            },
            {"signal": "enterprise_interest", "org_id": "org-9", "org_name": "Initech"},
        ]
    )
    records = {r["record_key"]: r["payload"] for r in company_records(scores(), frame)}
    assert list(records) == ["org-1", "org-2", "org-3", "org-9"]
    assert records["org-1"]["custom_attributes"]["plg_last_signal"] == "usage_ceiling"
    assert records["org-1"]["custom_attributes"]["plg_last_signal_at"] == unix_time("2026-11-20T11:00Z")
    assert "plg_last_signal" not in records["org-2"]["custom_attributes"]
    assert records["org-9"] == {
        "company_id": "org-9",
        "name": "Initech",
        "custom_attributes": {
            "plg_last_signal": "enterprise_interest",
            "plg_last_signal_at": int(T_AHA.timestamp()),
        },
    }


def test_company_records_refuse_frames_they_cannot_map():
    with pytest.raises(ValueError, match="pql_score"):
        company_records(scores().drop(columns="pql_score"))
    with pytest.raises(ValueError, match="no org_id"):
        company_records(scores(org_id=["a", None, "c"]))


def test_every_attribute_is_declared_with_an_intercom_type():
    assert {a["data_type"] for a in COMPANY_ATTRIBUTES} <= {"string", "integer", "boolean", "date", "float"}
    assert all(a["model"] == "company" for a in COMPANY_ATTRIBUTES)
    assert len({a["name"] for a in COMPANY_ATTRIBUTES}) == len(COMPANY_ATTRIBUTES)


# -- tags --------------------------------------------------------------------------------------


def test_tag_records_per_provider_and_for_enterprise_interest():
    frame = signals(
        [
            {
                "signal_key": "integration_connected:org-1:a",
                "signal": "integration_connected",
                "org_id": "org-1",
                "detail": "Google Sheets",
            },
            {
                "signal_key": "integration_connected:org-2:b",
                "signal": "integration_connected",
                "org_id": "org-2",
                "detail": "slack",
            },
            {
                "signal_key": "enterprise_interest:org-1:c",
                "signal": "enterprise_interest",
                "org_id": "org-1",
                "detail": "sso",
            },
            {
                "signal_key": "integration_connected:org-3:d",
                "signal": "integration_connected",
                "org_id": "org-3",
            },
            {"signal_key": "aha_reached:org-1:e", "signal": "aha_reached", "org_id": "org-1"},
        ]
    )
    records = tag_records(frame)
    assert [(r["record_key"], r["org_id"], r["payload"]) for r in records] == [
        (
            "enterprise_interest:org-1:c",
            "org-1",
            {"name": "enterprise-interest", "companies": [{"company_id": "org-1"}]},
        ),
        (
            "integration_connected:org-1:a",
            "org-1",
            {"name": "integration:google-sheets", "companies": [{"company_id": "org-1"}]},
        ),
        (
            "integration_connected:org-2:b",
            "org-2",
            {"name": "integration:slack", "companies": [{"company_id": "org-2"}]},
        ),
    ]  # no provider -> no tag (logged); aha_reached is not a tag


def test_tag_templates_are_configurable():
    frame = signals([{"signal": "pql_crossed", "org_id": "org-1"}])
    assert tag_records(frame) == []
    records = tag_records(frame, tags={"pql_crossed": "pql"})
    assert records[0]["payload"]["name"] == "pql"


@pytest.mark.parametrize(
    ("raw", "slug"),
    [
        ("Google Sheets", "google-sheets"),
        ("  HubSpot  ", "hubspot"),
        ("a/b\nc", "a-b-c"),
        ("", None),
        (None, None),
    ],
)
def test_tag_slug(raw, slug):
    assert tag_slug(raw) == slug


# -- events ------------------------------------------------------------------------------------


def test_event_records_name_the_person_and_carry_metadata():
    frame = signals(
        [
            {
                "signal_key": "aha_reached:org-1:u1",
                "signal": "aha_reached",
                "org_id": "org-1",
                "org_name": "Acme",
                "distinct_id": "u1",
                "email": "u1@acme.test",
                "detail": "first_report_generated",
                "pql_score": np.int64(80),
                "is_pql": np.bool_(True),
            },
            {
                "signal_key": "aha_reached:org-2:u2",
                "signal": "aha_reached",
                "org_id": "org-2",
                "email": "u2@b.test",
            },
            {"signal_key": "aha_reached:org-3:nobody", "signal": "aha_reached", "org_id": "org-3"},
            {
                "signal_key": "usage_ceiling:org-1",
                "signal": "usage_ceiling",
                "org_id": "org-1",
                "distinct_id": "u1",
            },
        ]
    )
    records = event_records(frame)
    assert [r["record_key"] for r in records] == ["aha_reached:org-1:u1", "aha_reached:org-2:u2"]
    assert records[0]["payload"] == {
        "event_name": "aha-moment-reached",
        "created_at": int(T_AHA.timestamp()),
        "user_id": "u1",
        "metadata": {
            "signal_key": "aha_reached:org-1:u1",
            "milestone": "first_report_generated",
            "org_id": "org-1",
            "org_name": "Acme",
            "pql_score": 80,
            "is_pql": True,
        },
    }
    assert records[1]["payload"]["email"] == "u2@b.test" and "user_id" not in records[1]["payload"]
    assert "milestone" not in records[1]["payload"]["metadata"]  # nothing null is sent
    assert all(len(r["payload"]["metadata"]) <= 10 for r in records)


def test_event_identity_order_and_name_are_configurable():
    frame = signals([{"signal": "aha_reached", "org_id": "o", "distinct_id": "u1", "email": "u1@x.test"}])
    record = event_records(frame, events={"aha_reached": "aha"}, identify_by=("email", "user_id"))[0]
    assert (record["payload"]["event_name"], record["payload"]["email"]) == ("aha", "u1@x.test")
    with pytest.raises(ValueError, match="identify_by"):
        event_records(frame, identify_by=("phone",))


def test_naive_timestamps_are_utc_and_created_at_is_stable():
    assert unix_time(pd.Timestamp("2026-11-20 09:30")) == int(T_AHA.timestamp())
    assert unix_time(T_AHA) == unix_time("2026-11-20T09:30:00+00:00") == unix_time(pd.Timestamp(T_AHA))
    assert unix_time(None) is None and unix_time(pd.NaT) is None


def test_empty_or_missing_signals_map_to_nothing():
    assert tag_records(None) == [] and event_records(pd.DataFrame()) == []
    with pytest.raises(ValueError, match="signal_key"):
        tag_records(pd.DataFrame({"signal": ["x"]}))


# -- answers and rate limits -------------------------------------------------------------------


def test_error_detail_reads_error_lists():
    body = {
        "type": "error.list",
        "request_id": "r1",
        "errors": [
            {
                "code": "parameter_invalid",
                "message": "must be integer",
                "field": "custom_attributes.plg_pql_score",
            },
            {"code": "parameter_invalid", "message": "second"},
        ],
    }
    code, message = error_detail(400, body)
    assert code == "parameter_invalid"
    assert message == "HTTP 400: custom_attributes.plg_pql_score: must be integer; second"
    assert error_detail(502, None, "<html>Bad Gateway</html>") == (
        "HTTP_502",
        "HTTP 502: <html>Bad Gateway</html>",
    )
    assert error_detail(500, {"type": "error.list", "errors": []})[0] == "HTTP_500"


def response(status: int, **headers: str) -> requests.Response:
    r = requests.Response()
    r.status_code = status
    r.headers.update(headers)
    return r


def test_wait_hint_follows_the_reset_header():
    clock = lambda: 1_000_003.5  # noqa: E731
    assert intercom_wait_hint(response(429, **{"X-RateLimit-Reset": "1000010"}), clock) == 6.5
    assert intercom_wait_hint(response(429), clock) is None  # -> Retry-After / backoff
    assert intercom_wait_hint(response(429, **{"X-RateLimit-Reset": "999"}), clock) is None  # skewed: backoff
    assert intercom_wait_hint(response(503, **{"X-RateLimit-Reset": "1000010"}), clock) is None


def test_limiter_pauses_until_the_reset_when_the_window_is_spent():
    now = [100.0]
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    limiter = IntercomRateLimiter(None, clock=lambda: now[0], sleep=sleep)
    limiter.observe(response(200, **{"X-RateLimit-Remaining": "5", "X-RateLimit-Reset": "110"}))
    assert limiter.acquire() == 0 and waits == []
    limiter.observe(response(200, **{"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "110"}))
    assert limiter.acquire() == 10.0 and now[0] == 110.0
    assert limiter.acquire() == 0  # the window reset: no second wait
    limiter.observe(response(200, **{"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1000"}))
    assert limiter.acquire() == limiter.max_pause  # a far-off reset (clock skew) is capped


def test_limiter_window_keeps_under_the_app_limit():
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    limiter = IntercomRateLimiter(3, period=10.0, clock=lambda: now[0], sleep=sleep)
    assert [limiter.acquire() for _ in range(4)] == [0, 0, 0, pytest.approx(10.05)]  # 50 ms margin


def test_regions_map_to_hosts():
    assert region_url("eu") == "https://api.eu.intercom.io"
    assert region_url(" AU ") == "https://api.au.intercom.io"
    assert region_url("us") == "https://api.intercom.io"
    with pytest.raises(ValueError, match="region"):
        region_url("mars")


def test_importing_the_module_does_not_import_airflow():
    code = "import sys, plg_bridge.delivery.intercom; print('airflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
