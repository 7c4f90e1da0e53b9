"""Pure Salesforce mapping: frames -> Account records, records -> Bulk CSV, answers -> row outcomes."""

from __future__ import annotations

import csv
import io

import numpy as np
import pandas as pd
import pytest
import requests

from plg_bridge.delivery.outcomes import RowOutcome
from plg_bridge.delivery.salesforce.client import normalize_version, parse_limit_info, salesforce_is_fatal
from plg_bridge.delivery.salesforce.mapping import (
    DEFAULT_FIELD_MAP,
    account_records,
    bulk_csv,
    bulk_outcomes,
    collection_outcomes,
    error_of,
    lead_status_outcomes,
    pql_crossed_org_ids,
    resolve_field_map,
)
from tests.support.frames import three_scores


def scores(**overrides) -> pd.DataFrame:
    return three_scores(**{"pql_score": [72.5, 10.0, np.float64(33.0)], **overrides})


def signals() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "signal_key": ["k1", "k2", "k3", "k4", "k5"],
            "signal": ["pql_crossed", "usage_ceiling", "pql_crossed", "aha_reached", "pql_crossed"],
            "org_id": ["org-1", "org-1", "org-1", "org-3", "org-unknown"],
            "detail": ["score 60", None, "score 72.5: velocity, breadth", "first dashboard", "x"],
            "occurred_at": pd.to_datetime(
                ["2026-11-10T08:00Z", "2026-11-18T09:00Z", "2026-11-19T23:30Z", "2026-11-17T00:00Z", None],
                utc=True,
            ),
            "as_of": ["2026-11-20"] * 5,
        }
    )


# -- scores -> Account records -------------------------------------------------------------------


def test_records_map_scores_onto_default_account_fields():
    records = account_records(scores())
    assert [r["record_key"] for r in records] == ["org-1", "org-2", "org-3"]
    assert records[0]["fields"] == {"Name": "Acme", "PLG_Score__c": 72.5, "PQL__c": True}
    assert records[2]["fields"] == {"Name": "Globex", "PLG_Score__c": 33, "PQL__c": True}
    assert type(records[2]["fields"]["PQL__c"]) is bool  # numpy bool made JSON-ready
    assert type(records[2]["fields"]["PLG_Score__c"]) is int


def test_null_org_name_is_left_out_not_blanked():
    records = account_records(scores(org_name=[None, np.nan, "   "]))
    assert all("Name" not in r["fields"] for r in records)
    assert records[1]["fields"] == {"PLG_Score__c": 10, "PQL__c": False}


def test_missing_values_are_left_out_and_booleans_from_text_are_parsed():
    records = account_records(scores(pql_score=[np.nan, 1.5, None], is_pql=["yes", None, "0"]))
    assert records[0]["fields"] == {"Name": "Acme", "PQL__c": True}
    assert records[1]["fields"] == {"PLG_Score__c": 1.5}
    assert records[2]["fields"]["PQL__c"] is False


def test_field_map_adds_renames_and_switches_off_sources():
    records = account_records(
        scores(),
        field_map={
            "events_this_week": "Events_7d__c",
            "events_last_week": "Events_Prior_7d__c",
            "is_pql": None,
        },
    )
    assert records[0]["fields"] == {
        "Name": "Acme",
        "PLG_Score__c": 72.5,
        "Events_7d__c": 120,
        "Events_Prior_7d__c": 80,
    }
    assert "Events_Prior_7d__c" not in records[1]["fields"]  # NaN count left out
    assert type(records[0]["fields"]["Events_Prior_7d__c"]) is int


@pytest.mark.parametrize(
    ("field_map", "error"),
    [
        ({"score": "PLG_Score__c"}, "unknown Salesforce field-map source"),
        ({"pql_score": "PLG Score"}, "not a Salesforce field API name"),
        ({"pql_score": "Name"}, "two sources to one field"),
    ],
)
def test_bad_field_maps_are_refused(field_map, error):
    with pytest.raises(ValueError, match=error):
        resolve_field_map(field_map)


def test_default_field_map_names_fields_the_fake_org_has():
    from tests.fakes.salesforce import DEFAULT_OBJECTS

    assert {t for t in DEFAULT_FIELD_MAP.values() if t} <= set(DEFAULT_OBJECTS["Account"])


def test_scores_need_their_columns_and_org_ids():
    with pytest.raises(ValueError, match="lacks columns: pql_score"):
        account_records(scores().drop(columns=["pql_score"]))
    with pytest.raises(ValueError, match="1 scores rows have no org_id"):
        account_records(scores(org_id=["org-1", None, "org-3"]))


def test_signals_fill_pql_date_reason_and_signal_list():
    records = {r["record_key"]: r["fields"] for r in account_records(scores(), signals())}
    assert records["org-1"]["PQL_Date__c"] == "2026-11-19"  # latest crossing
    assert records["org-1"]["PQL_Reason__c"] == "score 72.5: velocity, breadth"
    assert records["org-1"]["PLG_Signals__c"] == "pql_crossed;usage_ceiling"
    assert records["org-3"]["PLG_Signals__c"] == "aha_reached"
    assert "PQL_Date__c" not in records["org-3"] and "PQL_Reason__c" not in records["org-3"]
    assert records["org-2"] == {"PLG_Score__c": 10, "PQL__c": False}
    assert "org-unknown" not in records  # signals of orgs without scores make no record


def test_signal_timestamps_convert_to_utc_dates_and_long_text_is_cut():
    frame = signals().iloc[[0]].assign(occurred_at=["2026-11-19T23:30:00-05:00"], detail=["x" * 400])
    fields = account_records(scores(), frame)[0]["fields"]
    assert fields["PQL_Date__c"] == "2026-11-20"
    assert len(fields["PQL_Reason__c"]) == 255 and fields["PQL_Reason__c"].endswith("…")


@pytest.mark.parametrize("empty", [None, pd.DataFrame(columns=["signal_key", "signal", "org_id"])])
def test_no_signals_is_fine(empty):
    assert account_records(scores(), empty) == account_records(scores())
    assert pql_crossed_org_ids(empty) == []


def test_pql_crossed_org_ids_in_first_occurrence_order():
    assert pql_crossed_org_ids(signals()) == ["org-1", "org-unknown"]


# -- Bulk CSV ------------------------------------------------------------------------------------


def test_bulk_csv_has_the_external_id_first_lf_lines_and_empty_cells_for_missing_values():
    records = [
        {"record_key": "org-1", "fields": {"Name": 'Acme, "Inc"', "PQL__c": True, "PLG_Score__c": 72.0}},
        {"record_key": "org-2", "fields": {"PLG_Score__c": np.float64(10.5), "PQL__c": np.bool_(False)}},
        {"record_key": "org-3", "fields": {"Name": "two\r\nlines"}},
    ]
    text = bulk_csv(records, "PostHog_Group_Id__c")
    assert "\r" not in text
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows == [
        ["PostHog_Group_Id__c", "Name", "PQL__c", "PLG_Score__c"],
        ["org-1", 'Acme, "Inc"', "true", "72"],
        ["org-2", "", "false", "10.5"],
        ["org-3", "two\nlines", "", ""],
    ]


# -- answers -> outcomes -------------------------------------------------------------------------


def test_collection_results_in_input_order():
    body = [
        {"id": "001A", "success": True, "errors": [], "created": True},
        {"id": "001B", "success": True, "errors": [], "created": False},
        {
            "id": None,
            "success": False,
            "created": False,
            "errors": [{"statusCode": "INVALID_FIELD", "message": "No such column 'X'", "fields": ["X"]}],
        },
    ]
    outcomes = collection_outcomes(["a", "b", "c", "d"], 200, body)
    assert outcomes[:2] == [RowOutcome("a", "created", "001A"), RowOutcome("b", "updated", "001B")]
    assert outcomes[2] == RowOutcome("c", "failed", None, "INVALID_FIELD", "No such column 'X' (fields: X)")
    assert (outcomes[3].status, outcomes[3].error_code) == ("failed", "NO_RESULT")


def test_updates_are_never_reported_created():
    body = [{"id": "00QA", "success": True, "errors": []}]
    assert collection_outcomes(["00QA"], 200, body, upsert=False) == [RowOutcome("00QA", "updated", "00QA")]


def test_a_refused_collection_call_fails_every_row_with_its_error_code():
    body = [{"message": "Provided external ID field does not exist", "errorCode": "NOT_FOUND", "fields": []}]
    outcomes = collection_outcomes(["a", "b"], 404, body)
    assert {(o.status, o.error_code) for o in outcomes} == {("failed", "NOT_FOUND")}
    assert collection_outcomes(["a"], 502, None, "<html>bad gateway</html>")[0].error_code == "HTTP_502"


def test_bulk_results_map_back_to_keys_whatever_their_order():
    successful = (
        '"sf__Id","sf__Created","PostHog_Group_Id__c","Name"\n'
        '"001B","false","org-2","Beta"\n"001A","true","org-1","Acme"\n'
    )
    failed_results = (
        '"sf__Id","sf__Error","PostHog_Group_Id__c","Name"\n'
        '"","REQUIRED_FIELD_MISSING:Required fields are missing: [Name]:Name --","org-4",""\n'
    )
    unprocessed = '"PostHog_Group_Id__c","Name"\n"org-3","Gamma"\n'
    keys = ["org-1", "org-2", "org-3", "org-4", "org-5"]

    outcomes = bulk_outcomes(
        keys, "PostHog_Group_Id__c", successful, failed_results, unprocessed, job_note="job 750X Aborted"
    )

    assert outcomes[0] == RowOutcome("org-1", "created", "001A")
    assert outcomes[1] == RowOutcome("org-2", "updated", "001B")
    assert (outcomes[2].error_code, outcomes[2].status) == ("UNPROCESSED", "failed")
    assert "job 750X Aborted" in outcomes[2].error_message
    assert outcomes[3].error_code == "REQUIRED_FIELD_MISSING"
    assert outcomes[3].error_message == "Required fields are missing: [Name]:Name"
    assert outcomes[4].error_code == "NO_RESULT"
    assert [o.record_key for o in outcomes] == keys


def test_bulk_results_match_the_key_column_case_insensitively_and_survive_missing_csvs():
    successful = "sf__Id,sf__Created,posthog_group_id__c\n001A,true,org-1\n"
    outcomes = bulk_outcomes(["org-1", "org-2"], "PostHog_Group_Id__c", successful, None, "")
    assert outcomes[0].status == "created"
    assert outcomes[1].error_code == "NO_RESULT"


def test_lead_outcomes_per_organization():
    leads_by_org = {"org-a": ["00Q1", "00Q2"], "org-b": ["00Q3"], "org-c": ["00Q4"]}
    lead_results = {
        "00Q1": RowOutcome("00Q1", "updated", "00Q1"),
        "00Q2": RowOutcome("00Q2", "failed", None, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", "bad value"),
        "00Q3": RowOutcome("00Q3", "updated", "00Q3"),
        # 00Q4 was already at the status: no result, no failure
    }
    outcomes = lead_status_outcomes(
        ["org-a", "org-b", "org-c", "org-d", "org-e"],
        leads_by_org,
        lead_results,
        {"org-e": ("INVALID_FIELD", "querying leads: no such column")},
    )
    assert outcomes[0].status == "failed"
    assert outcomes[0].error_code == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    assert outcomes[0].error_message == "1 of 2 leads failed; lead 00Q2: bad value"
    assert outcomes[1] == RowOutcome("org-b", "updated", "00Q3")
    assert outcomes[2] == RowOutcome("org-c", "updated", "00Q4")
    assert outcomes[3] == RowOutcome("org-d", "updated", None)  # no leads: documented success
    assert (outcomes[4].status, outcomes[4].error_code) == ("failed", "INVALID_FIELD")


# -- transport policy ----------------------------------------------------------------------------


def response(status: int, body: str, **headers: str) -> requests.Response:
    reply = requests.Response()
    reply.status_code = status
    reply._content = body.encode()
    reply.headers.update(headers)
    return reply


def test_only_the_daily_limit_is_fatal():
    limit = '[{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]'
    assert salesforce_is_fatal(response(403, limit))
    assert not salesforce_is_fatal(response(403, '[{"errorCode": "INSUFFICIENT_ACCESS"}]'))
    assert not salesforce_is_fatal(response(503, limit.replace("403", "503")[:-1] + "]"))
    assert not salesforce_is_fatal(response(403, "<html>forbidden</html>"))


def test_limit_info_versions_and_error_bodies():
    assert parse_limit_info("api-usage=18/15000") == (18, 15000)
    assert parse_limit_info("per-app-api-usage=1/100(appName=x), api-usage=7/100") == (7, 100)
    assert parse_limit_info(None) is None
    assert [normalize_version(v) for v in ("v67.0", "67.0", "67", " V59.0 ")] == ["v67.0"] * 3 + ["v59.0"]
    with pytest.raises(ValueError):
        normalize_version("latest")
    assert error_of(400, {"error": "invalid_client", "error_description": "invalid client credentials"}) == (
        "OAUTH_INVALID_CLIENT",
        "invalid client credentials",
    )
    assert error_of(400, [{"message": "bad", "errorCode": "MALFORMED_QUERY"}]) == ("MALFORMED_QUERY", "bad")
