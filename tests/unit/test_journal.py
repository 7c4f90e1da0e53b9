"""The create-once journal (delivery/journal.py) on a local state, with stand-in targets: rows are
in flight only once their request leaves, lost answers are looked up, earlier runs' unconfirmed
rows are settled before planning, and a commit that loses to a concurrent run keeps its ids."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from plg_bridge.delivery import journal, state
from plg_bridge.delivery.base import Target
from plg_bridge.delivery.deliver import _send_journaled
from plg_bridge.delivery.outcomes import RowOutcome, outcomes_frame
from plg_bridge.delivery.plan import plan, records_frame
from plg_bridge.storage import location

AS_OF = "2026-11-20"


@pytest.fixture
def work(tmp_path):
    return location(str(tmp_path / "work"))


@pytest.fixture(autouse=True)
def quick(monkeypatch):
    monkeypatch.setattr(journal, "SETTLE_WAITS", (0.01, 0.01))


def _planned(keys):
    desired = records_frame([{"record_key": k, "payload": {"n": k}} for k in keys])
    return plan(desired, state.empty_state(), create_once=True)


def _send(work, target, keys, snapshot=None):
    to_send = _planned(keys)
    records = [{"record_key": k, "payload": {"n": k}} for k in to_send["record_key"]]
    snapshot = snapshot or state.load(work, target.name)
    return _send_journaled(
        None, target, work=work, to_send=to_send, records=records, snapshot=snapshot, as_of=AS_OF
    )


def _target(send, lookup=None, batch=2):
    return Target(
        "t", "hubspot", build=None, send=send, create_once=True, journal=lambda s: batch, lookup=lookup
    )


@pytest.fixture(params=["local", "s3"])
def any_work(request, work):
    """The work location on a local folder and on S3 (moto: If-Match conditional writes)."""
    if request.param == "local":
        return work
    bucket = request.getfixturevalue("s3")
    return location(f"s3://{bucket}/plg")


def test_a_commit_lost_to_a_concurrent_run_keeps_the_vendor_ids(any_work):
    """Another run commits while this run's batch is out: this run re-reads the state and merges
    its created rows (with the vendor's ids) into it instead of losing them."""
    work = any_work

    def send(settings, records):
        keys = [r["record_key"] for r in records]
        journal.departing(keys)
        other = state.load(work, "t")  # a concurrent run commits a row of its own meanwhile
        extra = pd.DataFrame(
            [
                {
                    **{c: None for c in state.STATE_COLUMNS},
                    "record_key": "other",
                    "status": "delivered",
                    "attempts": 0,
                }
            ]
        )
        state.commit(work, "t", pd.concat([other.frame, extra.astype(state.STATE_COLUMNS)]), other.version)
        return outcomes_frame(RowOutcome(k, "created", f"id-{k}") for k in keys)

    _outcomes, _frame = _send(work, _target(send), ["a", "b"])

    final = state.load(work, "t").frame.set_index("record_key")
    assert final.loc["other", "status"] == "delivered"  # theirs kept
    assert final.loc[["a", "b"], "status"].tolist() == ["delivered", "delivered"]
    assert final.loc[["a", "b"], "destination_id"].tolist() == ["id-a", "id-b"]  # ours kept


def test_rows_are_in_flight_only_once_their_request_leaves(work):
    """The destination says which rows left (`departing`); a row refused before any request
    left is a dead letter, never unconfirmed."""
    seen = []

    def send(settings, records):
        seen.append(state.load(work, "t").frame.set_index("record_key")["status"].to_dict())
        journal.departing([records[0]["record_key"]])
        seen.append(state.load(work, "t").frame.set_index("record_key")["status"].to_dict())
        return outcomes_frame(
            [
                RowOutcome(records[0]["record_key"], "created", "1"),
                RowOutcome(records[1]["record_key"], "failed", None, "COMPANY_NOT_SYNCED", "no company"),
            ]
        )

    _send(work, _target(send), ["a", "b"])

    assert seen == [{}, {"a": "unconfirmed"}]  # nothing before, only the row that left after
    final = state.load(work, "t").frame.set_index("record_key")
    assert final["status"].to_dict() == {"a": "delivered", "b": "failed"}


def test_an_exception_before_anything_left_changes_nothing(work):
    def send(settings, records):
        raise KeyError("connection hubspot_default")

    with pytest.raises(KeyError):
        _send(work, _target(send), ["a", "b"])
    assert state.load(work, "t").frame.empty


def test_lost_answers_are_looked_up_found_delivered_missing_held(work):
    def send(settings, records):
        keys = [r["record_key"] for r in records]
        journal.departing(keys)
        return outcomes_frame(RowOutcome(k, "failed", None, "HTTP_504", "gateway timeout") for k in keys)

    asked = []

    def lookup(settings, records):
        asked.append(sorted(r["record_key"] for r in records))
        assert all(r["sent_at"] for r in records)
        return {"a": "task-a"}

    outcomes, _ = _send(work, _target(send, lookup), ["a", "b"])

    assert asked == [["a", "b"], ["b"], ["b"]]  # looked up again after each settle wait
    by_key = outcomes.set_index("record_key")
    assert by_key.loc["a", "status"] == "created" and by_key.loc["a", "destination_id"] == "task-a"
    final = state.load(work, "t").frame.set_index("record_key")
    assert final.loc["a", "status"] == "delivered" and final.loc["a", "destination_id"] == "task-a"
    assert final.loc["b", "status"] == "unconfirmed" and final.loc["b", "sent_at"]
    assert "not found at the vendor" in final.loc["b", "error_message"]


def test_without_a_lookup_the_row_waits_for_oncall(work):
    def send(settings, records):
        journal.departing([r["record_key"] for r in records])
        raise ConnectionResetError("reset by peer")  # a transport error the client did not map

    _send(work, _target(send, lambda settings, records: None), ["a"])
    final = state.load(work, "t").frame.set_index("record_key")
    assert final.loc["a", "status"] == "unconfirmed"
    assert "cannot be looked up" in final.loc["a", "error_message"]


def _unconfirmed(work, rows):
    frame = state.empty_state()
    new = pd.DataFrame(
        [
            {
                **{c: None for c in state.STATE_COLUMNS},
                "record_key": k,
                "payload_hash": "h",
                "payload": '{"n": 1}',
                "status": "unconfirmed",
                "error_code": "IN_FLIGHT",
                "attempts": 0,
                "as_of": AS_OF,
                "sent_at": sent_at,
            }
            for k, sent_at in rows.items()
        ]
    ).astype(state.STATE_COLUMNS)
    frame = pd.concat([frame, new])
    state.commit(work, "t", frame, None)
    return state.load(work, "t")


def test_earlier_unconfirmed_rows_found_delivered_old_misses_resent_young_misses_held(work):
    now = datetime(2026, 11, 20, 12, tzinfo=UTC)
    old = (now - timedelta(seconds=journal.RESEND_AFTER + 1)).isoformat()
    young = (now - timedelta(seconds=5)).isoformat()
    snapshot = _unconfirmed(work, {"found": young, "old": old, "young": young})
    target = _target(None, lambda settings, records: {"found": "id-1"})

    settled = journal.resolve_unconfirmed(
        target, None, work, snapshot, AS_OF, clock=now.timestamp, sleep=lambda s: None
    )

    rows = settled.frame.set_index("record_key")
    assert rows.loc["found", "status"] == "delivered" and rows.loc["found", "destination_id"] == "id-1"
    assert rows.loc["old", "status"] == "failed" and rows.loc["old", "error_code"] == "NOT_CREATED"
    assert rows.loc["young", "status"] == "unconfirmed"  # a live run may still be sending it
    assert state.load(work, "t").version == settled.version  # committed
    planned = plan(records_frame([]), settled.frame, create_once=True).set_index("record_key")["action"]
    assert planned.to_dict() == {"old": "retry", "young": "unconfirmed"}  # "found" is done


def test_a_failing_lookup_decides_nothing(work):
    snapshot = _unconfirmed(work, {"a": None})

    def broken(settings, records):
        raise TimeoutError("search timed out")

    settled = journal.resolve_unconfirmed(
        _target(None, broken), None, work, snapshot, AS_OF, sleep=lambda s: None
    )
    assert settled.frame.set_index("record_key").loc["a", "status"] == "unconfirmed"


def test_a_state_written_before_sent_at_existed_still_loads(work):
    import os

    import pyarrow as pa
    import pyarrow.parquet as pq

    old = {c: t for c, t in state.STATE_COLUMNS.items() if c != "sent_at"}
    frame = pd.DataFrame([{"record_key": "a", "status": "unconfirmed", "attempts": 0}]).reindex(
        columns=list(old)
    )
    path = work.path(state.state_key("t"))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    pq.write_table(pa.Table.from_pandas(frame.astype(old), preserve_index=False), path)

    loaded = state.load(work, "t").frame
    assert list(loaded.columns) == list(state.STATE_COLUMNS)
    assert loaded["sent_at"].isna().all() and loaded["status"].tolist() == ["unconfirmed"]
