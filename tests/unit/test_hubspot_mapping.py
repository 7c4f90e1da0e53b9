"""Pure HubSpot mapping: scores -> upsert inputs, batch answers -> row outcomes, rate-limit policy."""

from __future__ import annotations

import json
import random
from datetime import date

import pandas as pd
import pytest
import requests

from plg_bridge.delivery.hubspot.client import hubspot_is_fatal, hubspot_wait_hint
from plg_bridge.delivery.hubspot.mapping import (
    COMPANY_ID_PROPERTY,
    COMPANY_PROPERTIES,
    batch_outcomes,
    company_inputs,
)
from plg_bridge.delivery.outcomes import RowOutcome
from tests.support.frames import three_scores as scores


def test_inputs_carry_id_property_and_typed_properties():
    inputs = company_inputs(scores(), as_of="2026-11-20")
    assert [i["id"] for i in inputs] == ["org-1", "org-2", "org-3"]
    assert {i["idProperty"] for i in inputs} == {COMPANY_ID_PROPERTY}
    assert inputs[0]["properties"] == {
        "name": "Acme",
        "plg_pql_score": "72.5",
        "plg_is_pql": "true",
        "plg_events_this_week": "120",
        "plg_events_last_week": "80",
        "plg_active_creators": "4",
        "plg_integrations_connected": "2",
        "plg_scored_at": "2026-11-20",
    }
    assert inputs[2]["properties"]["name"] == "Globex"
    assert inputs[2]["properties"]["plg_pql_score"] == "33.333"
    assert inputs[2]["properties"]["plg_is_pql"] == "true"


def test_null_name_and_missing_values_are_left_out_not_blanked():
    props = company_inputs(scores())[1]["properties"]
    assert "name" not in props
    assert "plg_events_last_week" not in props  # NaN
    assert "plg_scored_at" not in props  # no as_of given
    assert props["plg_is_pql"] == "false"
    assert props["plg_pql_score"] == "10"


def test_pandas_nullable_dtypes_and_string_flags():
    frame = scores(
        org_name=pd.array(["A", pd.NA, ""], dtype="string"),
        is_pql=pd.array([True, pd.NA, False], dtype="boolean"),
        active_creators=pd.array([1, pd.NA, 3], dtype="Int64"),
    )
    inputs = company_inputs(frame, id_property="custom_key", as_of=date(2026, 1, 2))
    assert inputs[0]["idProperty"] == "custom_key"
    assert "name" not in inputs[1]["properties"] and "name" not in inputs[2]["properties"]
    assert "plg_is_pql" not in inputs[1]["properties"]
    assert inputs[2]["properties"]["plg_is_pql"] == "false"
    assert "plg_active_creators" not in inputs[1]["properties"]
    assert inputs[2]["properties"]["plg_active_creators"] == "3"
    assert inputs[0]["properties"]["plg_scored_at"] == "2026-01-02"
    flags = company_inputs(scores(is_pql=["TRUE", "no", "maybe"]))
    assert [f["properties"]["plg_is_pql"] for f in flags] == ["true", "false", "maybe"]


def test_numeric_org_ids_become_strings_and_timestamps_become_dates():
    inputs = company_inputs(scores(org_id=[1, 2, 3]), as_of=pd.Timestamp("2026-11-20T23:59:00Z"))
    assert [i["id"] for i in inputs] == ["1", "2", "3"]
    assert inputs[0]["properties"]["plg_scored_at"] == "2026-11-20"


def test_bad_frames_are_refused_loudly():
    with pytest.raises(ValueError, match="pql_score"):
        company_inputs(scores().drop(columns=["pql_score"]))
    with pytest.raises(ValueError, match="org_id"):
        company_inputs(scores(org_id=["a", None, "c"]))
    assert company_inputs(scores().iloc[0:0]) == []


def test_property_definitions_cover_every_mapped_property():
    by_name = {d["name"]: d for d in COMPANY_PROPERTIES}
    mapped = set(company_inputs(scores(), as_of="2026-11-20")[0]["properties"]) - {"name"}
    assert mapped <= set(by_name)
    for definition in COMPANY_PROPERTIES:
        assert {"name", "label", "type", "fieldType", "groupName"} <= set(definition)
    assert by_name[COMPANY_ID_PROPERTY]["hasUniqueValue"] is True
    assert by_name["plg_is_pql"]["type"] == "bool"
    assert by_name["plg_pql_score"]["type"] == "number"
    assert by_name["plg_scored_at"]["type"] == "date"


# -- batch answers -> outcomes ----------------------------------------------------------------


def traced(keys: list[str]) -> list[dict]:
    return [
        {"id": k, "idProperty": COMPANY_ID_PROPERTY, "objectWriteTraceId": k, "properties": {}} for k in keys
    ]


def result(key: str, hs_id: str, new: bool, trace: bool = True) -> dict:
    out = {"id": hs_id, "new": new, "properties": {COMPANY_ID_PROPERTY: key}}
    if trace:
        out["objectWriteTraceId"] = key
    return out


def validation_error(trace: str, code: str = "INVALID_INTEGER") -> dict:
    detail = {
        "isValid": False,
        "message": "abc was not a valid number.",
        "error": code,
        "name": "plg_pql_score",
    }
    return {
        "status": "error",
        "category": "VALIDATION_ERROR",
        "message": "Property values were not valid: " + json.dumps([detail]),
        "context": {"objectWriteTraceId": [trace]},
        "errors": [
            {"message": detail["message"], "code": code, "context": {"propertyName": ["plg_pql_score"]}}
        ],
    }


def test_results_are_matched_by_trace_id_whatever_their_order():
    keys = [f"k{n}" for n in range(6)]
    results = [result(k, str(100 + n), new=n % 2 == 0) for n, k in enumerate(keys)]
    random.Random(4).shuffle(results)
    outcomes = batch_outcomes(traced(keys), 200, {"status": "COMPLETE", "results": results})
    assert [o.record_key for o in outcomes] == keys
    assert [o.destination_id for o in outcomes] == [str(100 + n) for n in range(6)]
    assert [o.status for o in outcomes] == ["created", "updated"] * 3


def test_results_without_trace_ids_match_on_the_id_property():
    outcomes = batch_outcomes(
        traced(["a", "b"]),
        200,
        {"results": [result("b", "2", False, trace=False), result("a", "1", True, trace=False)]},
    )
    assert [(o.record_key, o.status, o.destination_id) for o in outcomes] == [
        ("a", "created", "1"),
        ("b", "updated", "2"),
    ]


def test_207_fails_only_the_rows_its_errors_name():
    body = {
        "results": [result("a", "1", True), result("c", "3", True)],
        "numErrors": 1,
        "errors": [validation_error("b")],
    }
    a, b, c = batch_outcomes(traced(["a", "b", "c"]), 207, body)
    assert a.status == c.status == "created"
    assert b == RowOutcome(
        "b", "failed", None, "INVALID_INTEGER", "plg_pql_score: abc was not a valid number."
    )


def test_error_code_is_read_from_the_embedded_message_when_no_details():
    error = validation_error("a", code="INVALID_OPTION")
    del error["errors"]
    (outcome,) = batch_outcomes(traced(["a"]), 207, {"results": [], "errors": [error]})
    assert outcome.error_code == "INVALID_OPTION"
    assert outcome.error_message.startswith("Property values were not valid")


def test_error_naming_the_input_in_context_ids_or_quoted_message():
    by_ids = {"status": "error", "category": "VALIDATION_ERROR", "message": "dup", "context": {"ids": ["b"]}}
    by_message = {"status": "error", "category": "CONFLICT", "message": 'Object "c" is locked'}
    outcomes = batch_outcomes(
        traced(["a", "b", "c"]), 207, {"results": [result("a", "1", True)], "errors": [by_ids, by_message]}
    )
    assert [o.status for o in outcomes] == ["created", "failed", "failed"]
    assert [o.error_code for o in outcomes[1:]] == ["VALIDATION_ERROR", "CONFLICT"]


def test_unattributable_errors_fail_the_unaccounted_rows_with_their_message():
    error = {"status": "error", "category": "VALIDATION_ERROR", "message": "something about the batch"}
    outcomes = batch_outcomes(
        traced(["a", "b", "c"]), 207, {"results": [result("a", "1", False)], "errors": [error]}
    )
    assert outcomes[0].status == "updated"
    assert [o.status for o in outcomes[1:]] == ["failed", "failed"]
    assert all(
        o.error_code == "VALIDATION_ERROR" and "something about the batch" in o.error_message
        for o in outcomes[1:]
    )


def test_rows_with_no_result_and_no_error_are_never_dropped():
    outcomes = batch_outcomes(
        traced(["a", "b", "c"]), 200, {"results": [result("a", "1", True), result("zzz", "9", True)]}
    )
    assert len(outcomes) == 3
    assert [o.error_code for o in outcomes] == [None, "NO_RESULT", "NO_RESULT"]


def test_non_2xx_answers_fail_every_row_with_the_http_code():
    body = {
        "status": "error",
        "message": "The access token provided is invalid",
        "category": "INVALID_AUTHENTICATION",
    }
    outcomes = batch_outcomes(traced(["a", "b"]), 401, body)
    assert {o.error_code for o in outcomes} == {"HTTP_401"}
    assert outcomes[0].error_message == "INVALID_AUTHENTICATION: The access token provided is invalid"
    (html,) = batch_outcomes(traced(["a"]), 502, None, "<html>Bad gateway</html>")
    assert (html.status, html.error_code, html.error_message) == (
        "failed",
        "HTTP_502",
        "<html>Bad gateway</html>",
    )


# -- HubSpot rate-limit policy ----------------------------------------------------------------


def answer(status: int, body: dict | None = None, **headers: str) -> requests.Response:
    r = requests.Response()
    r.status_code = status
    r._content = json.dumps(body or {}).encode()
    r.headers.update({k.replace("_", "-"): v for k, v in headers.items()})
    return r


def test_wait_hint_uses_the_interval_when_the_budget_is_spent():
    spent = answer(429, X_HubSpot_RateLimit_Remaining="0", X_HubSpot_RateLimit_Interval_Milliseconds="10000")
    assert hubspot_wait_hint(spent) == 10.0
    assert hubspot_wait_hint(answer(429, X_HubSpot_RateLimit_Interval_Milliseconds="250")) == 0.25
    assert hubspot_wait_hint(answer(429)) is None  # no headers: generic backoff
    assert hubspot_wait_hint(answer(423)) == 2.0  # Locked: HubSpot asks for >= 2 s
    assert hubspot_wait_hint(answer(200, X_HubSpot_RateLimit_Remaining="0")) is None


def test_only_the_daily_policy_is_fatal():
    assert hubspot_is_fatal(answer(429, {"errorType": "RATE_LIMIT", "policyName": "DAILY"}))
    assert not hubspot_is_fatal(
        answer(429, {"errorType": "RATE_LIMIT", "policyName": "TEN_SECONDLY_ROLLING"})
    )
    assert not hubspot_is_fatal(answer(500, {"policyName": "DAILY"}))
    broken = answer(429)
    broken._content = b"not json"
    assert not hubspot_is_fatal(broken)
