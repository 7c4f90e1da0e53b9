"""Diffing desired records against delivery state, and committing state exactly once."""

from __future__ import annotations

import threading

import pandas as pd
import pytest

from plg_bridge.delivery import state as st
from plg_bridge.delivery.outcomes import RowOutcome, outcomes_frame
from plg_bridge.delivery.plan import apply_outcomes, counts, plan, records_frame
from plg_bridge.storage import ConflictError, location


def desired(**payloads) -> pd.DataFrame:
    return records_frame([{"record_key": k, "payload": v} for k, v in payloads.items()])


def deliver(state, sent, outcomes, as_of="2026-11-20"):
    return apply_outcomes(state, sent, outcomes_frame(outcomes), as_of)


def test_first_run_creates_everything_and_a_rerun_sends_nothing():
    want = desired(a={"score": 1}, b={"score": 2})
    first = plan(want, st.empty_state())
    assert counts(first) == {"create": 2, "update": 0, "retry": 0, "unchanged": 0}
    state = deliver(
        st.empty_state(), first, [RowOutcome("a", "created", "1"), RowOutcome("b", "created", "2")]
    )
    assert counts(plan(want, state)) == {"create": 0, "update": 0, "retry": 0, "unchanged": 2}


def test_payload_key_order_does_not_count_as_a_change():
    state = deliver(
        st.empty_state(), plan(desired(a={"x": 1, "y": 2}), st.empty_state()), [RowOutcome("a", "updated")]
    )
    assert counts(plan(desired(a={"y": 2, "x": 1}), state))["unchanged"] == 1


def test_changed_payload_is_an_update_and_full_resync_sends_all():
    want = desired(a={"score": 1}, b={"score": 2})
    state = deliver(
        st.empty_state(),
        plan(want, st.empty_state()),
        [RowOutcome("a", "created"), RowOutcome("b", "created")],
    )
    changed = desired(a={"score": 9}, b={"score": 2})
    assert dict(plan(changed, state)[["record_key", "action"]].values) == {"a": "update", "b": "unchanged"}
    assert set(plan(changed, state, full_resync=True)["action"]) == {"update"}


def test_failed_rows_become_dead_letters_and_are_retried_even_if_unchanged():
    want = desired(a={"score": 1}, b={"score": 2})
    sent = plan(want, st.empty_state())
    state = deliver(
        st.empty_state(),
        sent,
        [RowOutcome("a", "created"), RowOutcome("b", "failed", None, "INVALID", "bad value")],
    )
    dead = state[state.status == "failed"].iloc[0]
    assert (dead.record_key, dead.error_code, dead.attempts) == ("b", "INVALID", 1)
    assert dead.payload == '{"score":2}'
    again = plan(want, state)
    assert dict(again[["record_key", "action"]].values) == {"a": "unchanged", "b": "retry"}
    state = deliver(
        state, again[again.action == "retry"], [RowOutcome("b", "failed", None, "INVALID", "bad")]
    )
    assert state.set_index("record_key").loc["b", "attempts"] == 2
    state = deliver(state, plan(want, state).query("action == 'retry'"), [RowOutcome("b", "updated", "9")])
    row = state.set_index("record_key").loc["b"]
    assert (row.status, row.attempts, row.payload is pd.NA or row.payload is None) == ("delivered", 0, True)


def test_dead_letter_no_longer_desired_is_still_retried_with_its_payload():
    state = deliver(
        st.empty_state(),
        plan(desired(a={"v": 1}), st.empty_state()),
        [RowOutcome("a", "failed", None, "X", "y")],
    )
    again = plan(desired(), state)
    assert again[["record_key", "action", "payload"]].values.tolist() == [["a", "retry", '{"v":1}']]


def test_create_once_targets_never_resend_a_delivered_key():
    want = desired(**{"task:org_1:usage_ceiling:2026-11-20": {"subject": "Talk to Acme"}})
    state = deliver(
        st.empty_state(),
        plan(want, st.empty_state(), create_once=True),
        [RowOutcome(want.record_key[0], "created")],
    )
    assert counts(plan(want, state, full_resync=True, create_once=True))["unchanged"] == 1
    edited = desired(**{"task:org_1:usage_ceiling:2026-11-20": {"subject": "renamed"}})
    assert counts(plan(edited, state, create_once=True))["unchanged"] == 1


def test_a_row_without_outcome_is_kept_as_a_dead_letter():
    sent = plan(desired(a={"v": 1}, b={"v": 2}), st.empty_state())
    state = deliver(st.empty_state(), sent, [RowOutcome("a", "created")])
    assert state.set_index("record_key").loc["b", "error_code"] == "NO_OUTCOME"


def test_duplicate_record_keys_are_refused():
    with pytest.raises(ValueError, match="duplicate record keys"):
        records_frame([{"record_key": "a", "payload": {}}, {"record_key": "a", "payload": {}}])


def _state_with(key: str) -> pd.DataFrame:
    sent = plan(desired(**{key: {"v": 1}}), st.empty_state())
    return deliver(st.empty_state(), sent, [RowOutcome(key, "created")])


def test_local_state_round_trip_and_conflict(tmp_path):
    work = location(str(tmp_path))
    snap = st.load(work, "hubspot_companies")
    assert snap.version is None and snap.frame.empty
    version = st.commit(work, "hubspot_companies", _state_with("a"), snap.version)
    loaded = st.load(work, "hubspot_companies")
    assert loaded.version == version and loaded.frame["record_key"].tolist() == ["a"]
    with pytest.raises(ConflictError, match="another run of this DAG committed first"):
        st.commit(work, "hubspot_companies", _state_with("b"), snap.version)  # stale: read before the commit
    assert st.load(work, "hubspot_companies").frame["record_key"].tolist() == ["a"]


def test_two_concurrent_commits_of_one_window_cannot_both_win(tmp_path):
    work = location(str(tmp_path))
    snap = st.load(work, "t")
    results: list[str] = []

    def run(key: str) -> None:
        try:
            st.commit(work, "t", _state_with(key), snap.version)
            results.append("won")
        except ConflictError:
            results.append("lost")

    threads = [threading.Thread(target=run, args=(k,)) for k in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["lost", "won"]


def test_s3_state_uses_conditional_writes(s3):
    work = location(f"s3://{s3}/plg")
    snap = st.load(work, "intercom_companies")
    assert snap.version is None
    st.commit(work, "intercom_companies", _state_with("a"), None)
    with pytest.raises(ConflictError, match=f"s3://{s3}/plg/state/intercom_companies.parquet"):
        st.commit(work, "intercom_companies", _state_with("b"), None)  # If-None-Match: * loses
    fresh = st.load(work, "intercom_companies")
    st.commit(work, "intercom_companies", _state_with("c"), fresh.version)
    with pytest.raises(ConflictError):
        st.commit(work, "intercom_companies", _state_with("d"), fresh.version)  # If-Match on a stale ETag
    assert st.load(work, "intercom_companies").frame["record_key"].tolist() == ["c"]
