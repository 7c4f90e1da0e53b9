"""On-call commands end to end: sync, plan, status, dead-letters list|replay against the fake HubSpot."""

from __future__ import annotations

import json

import pytest

from plg_bridge.cli import main
from tests.fakes.hubspot import DEFAULT_COMPANY_PROPERTIES, FakeHubSpot, prop
from tests.support.events import event, group_identify, write_export


@pytest.fixture
def oncall(tmp_path, monkeypatch):
    """An export with three organizations, one of which HubSpot will reject (its name is refused)."""
    rows = [event("core_feature_used", "2026-11-19", org=o) for o in ("org_a", "org_b", "org_c")]
    rows += [group_identify("org_b", "2026-11-01", name="Bad Name Inc")]
    write_export(
        tmp_path / "exports", rows, name="2026-11-19T00:00:00+00:00-2026-11-20T00:00:00+00:00.parquet.zst"
    )
    # `name` as a number property: HubSpot answers 207 with an error for org_b only.
    properties = [p for p in DEFAULT_COMPANY_PROPERTIES if p["name"] != "name"] + [
        prop("name", "Name", "number", "number")
    ]
    with FakeHubSpot(token="tok", company_properties=properties) as hubspot:
        monkeypatch.setenv("PLG_BRIDGE__EXPORTS__LOCATION", str(tmp_path / "exports"))
        monkeypatch.setenv("PLG_BRIDGE__WORK_LOCATION", str(tmp_path / "work"))
        monkeypatch.setenv("PLG_BRIDGE__DELIVERY__MAX_REJECTED_SHARE", "0.5")
        conn = {
            "conn_type": "http",
            "host": "127.0.0.1",
            "port": hubspot.port,
            "schema": "http",
            "password": "tok",
        }
        monkeypatch.setenv("AIRFLOW_CONN_HUBSPOT_DEFAULT", json.dumps(conn))
        yield hubspot, tmp_path / "work"


def upserts(hubspot) -> list[dict]:
    return [i for r in hubspot.calls("POST", "batch/upsert") for i in r.json["inputs"]]


def test_plan_sync_status_and_dead_letters(oncall, capsys):
    hubspot, _work = oncall
    assert main(["plan", "--as-of", "2026-11-20"]) == 0
    assert "hubspot_companies        plan: 3 create" in capsys.readouterr().out
    assert hubspot.calls("POST", "batch/upsert") == []

    assert main(["sync", "--as-of", "2026-11-20"]) == 1  # a rejected row: non-zero exit
    out = capsys.readouterr().out
    assert "sent: 2 created, 0 updated, 1 failed" in out
    assert {c["properties"]["posthog_group_id"] for c in hubspot.objects()} == {"org_a", "org_c"}

    assert main(["dead-letters", "list"]) == 0
    listing = capsys.readouterr().out
    assert "org_b" in listing and "hubspot_companies" in listing

    assert main(["status"]) == 0
    status = capsys.readouterr().out
    assert "as of 2026-11-20" in status and "dead letters waiting: 1" in status

    # The fix lands at the vendor (name becomes a text property), then on-call replays.
    hubspot.add_property("companies", prop("name", "Company name"))
    sent_before = len(upserts(hubspot))
    assert main(["dead-letters", "replay", "--as-of", "2026-11-20"]) == 0
    replayed = upserts(hubspot)[sent_before:]
    assert [i["id"] for i in replayed] == ["org_b"]  # only the dead letter, nothing else
    assert hubspot.find("companies", "posthog_group_id", "org_b")["properties"]["name"] == "Bad Name Inc"
    assert main(["dead-letters", "list"]) == 0
    assert "no dead letters waiting" in capsys.readouterr().out

    calls = len(hubspot.calls("POST", "batch/upsert"))
    assert main(["sync", "--as-of", "2026-11-20"]) == 0  # rerun: everything unchanged, no calls
    assert len(hubspot.calls("POST", "batch/upsert")) == calls


def test_org_subset_and_destination_selection(oncall, capsys):
    hubspot, _ = oncall
    assert main(["sync", "--as-of", "2026-11-20", "--orgs", "org_a"]) == 0
    assert [i["id"] for i in upserts(hubspot)] == ["org_a"]
    assert main(["sync", "--as-of", "2026-11-20", "--destinations", "salesforce"]) == 0
    assert "hubspot_companies        skipped (not selected)" in capsys.readouterr().out
    assert len(upserts(hubspot)) == 1


def test_full_resync_sends_unchanged_rows_again(oncall):
    hubspot, _ = oncall
    main(["sync", "--as-of", "2026-11-20", "--orgs", "org_a,org_c"])
    before = len(upserts(hubspot))
    assert main(["sync", "--as-of", "2026-11-20", "--orgs", "org_a,org_c", "--full-resync"]) == 0
    assert sorted(i["id"] for i in upserts(hubspot)[before:]) == ["org_a", "org_c"]


def test_rejected_share_above_threshold_fails_after_committing(oncall, monkeypatch, capsys):
    hubspot, _ = oncall
    monkeypatch.setenv("PLG_BRIDGE__DELIVERY__MAX_REJECTED_SHARE", "0.1")
    assert main(["sync", "--as-of", "2026-11-20"]) == 1
    assert "1 of 3 rows rejected" in capsys.readouterr().err
    assert len(hubspot.objects()) == 2
    calls = len(hubspot.calls("POST", "batch/upsert"))
    main(["sync", "--as-of", "2026-11-20"])  # the committed rows are not sent again; the dead letter is
    assert [i["id"] for r in hubspot.calls("POST", "batch/upsert")[calls:] for i in r.json["inputs"]] == [
        "org_b"
    ]


def test_conflicting_options_are_refused(oncall, capsys):
    assert main(["sync", "--as-of", "2026-11-20", "--full-resync", "--retry-dead-letters-only"]) == 2
    assert "exclude each other" in capsys.readouterr().err
