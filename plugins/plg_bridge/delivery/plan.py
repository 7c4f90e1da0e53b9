"""Desired records vs what was last delivered: which rows to send, and why.

A record is `{record_key, payload}` with the payload as canonical JSON, so its hash changes
exactly when what we would send changes. Actions:
- create    never delivered
- update    delivered, payload changed (or `full_resync`)
- retry     a dead letter of an earlier run, sent again even when its data did not change
- unchanged delivered with the same payload: not sent (an unchanged rerun makes no calls)
- unconfirmed a create-once row whose delivery may have happened (sent, no answer; or in flight
            when its run died) and that a lookup at the vendor could not settle yet (journal.py):
            not sent again by a normal run, not even on a full resync, only by an on-call replay
            that names its target (see delivery/deliver.py)
Create-once targets (HubSpot tasks, Intercom events, Slack messages: no upsert in the API) never
resend a delivered key, not even on a full resync: their record key is the dedupe key.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

SEND = ("create", "update", "retry")
# Outcome codes meaning "sent, but whether the vendor applied it is unknown" (a timeout or reset
# after the request left): for a create-once target the row becomes unconfirmed, not a dead letter.
UNKNOWN_OUTCOME = frozenset({"DELIVERY_UNKNOWN"})
IN_FLIGHT = "IN_FLIGHT"
# A lookup by key found nothing at the vendor long after the request left: it was not created,
# so the row is a dead letter the next run resends.
NOT_CREATED = "NOT_CREATED"


def unknown_outcome(codes: pd.Series) -> pd.Series:
    """Which failure codes leave a create's fate unknown once its request left: no answer
    (DELIVERY_UNKNOWN: timeout, reset, body cut), no outcome for the row, or a 5xx (a gateway can
    answer 502/504 after the vendor acted)."""
    codes = codes.astype("string")
    server = codes.str.fullmatch(r"HTTP_5\d\d").fillna(False).astype(bool)
    return (codes.isin(UNKNOWN_OUTCOME | {"NO_OUTCOME"}).fillna(False).astype(bool)) | server


def canonical(payload: Any) -> str:
    """The JSON text whose hash identifies a payload (sorted keys, no whitespace)."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=False)


def payload_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def records_frame(records: list[dict]) -> pd.DataFrame:
    """[{record_key, payload}] -> frame with canonical payload text and its hash; keys must be unique."""
    import pandas as pd

    frame = pd.DataFrame(
        {
            "record_key": [str(r["record_key"]) for r in records],
            "payload": [canonical(r["payload"]) for r in records],
        },
        dtype="string",
    )
    dupes = frame["record_key"][frame["record_key"].duplicated()]
    if len(dupes):
        raise ValueError(f"duplicate record keys in desired records: {sorted(set(dupes))[:5]}")
    frame["payload_hash"] = frame["payload"].map(payload_hash).astype("string")
    return frame


def plan(
    desired: pd.DataFrame,
    state: pd.DataFrame,
    *,
    full_resync: bool = False,
    create_once: bool = False,
    resend_unconfirmed: bool = False,
) -> pd.DataFrame:
    """One row per record to consider: record_key, payload, payload_hash, action, attempts.

    Unconfirmed rows are planned as "unconfirmed" (not sent), or as "retry" with
    `resend_unconfirmed` (an on-call decision after checking the vendor).
    """
    import pandas as pd

    merged = desired.merge(
        state[["record_key", "payload_hash", "status", "payload", "attempts"]],
        on="record_key",
        how="outer",
        suffixes=("", "_state"),
        indicator=True,
    )
    wanted = merged["_merge"] != "right_only"
    failed = merged["status"] == "failed"
    delivered = merged["status"] == "delivered"
    same = merged["payload_hash"] == merged["payload_hash_state"]

    action = pd.Series("create", index=merged.index, dtype="object")
    action[delivered & wanted] = "update"
    action[delivered & wanted & same.fillna(False) & (not full_resync)] = "unchanged"
    if create_once:
        action[delivered] = "unchanged"
    action[failed.fillna(False)] = "retry"
    unconfirmed = (merged["status"] == "unconfirmed").fillna(False)
    action[unconfirmed] = "retry" if resend_unconfirmed else "unconfirmed"
    action[(merged["_merge"] == "right_only") & ~failed.fillna(False) & ~unconfirmed] = "gone"

    # A dead letter (or unconfirmed row) no longer desired keeps the payload it was sent with.
    stale = merged["_merge"] == "right_only"
    merged.loc[stale, "payload"] = merged.loc[stale, "payload_state"]
    merged.loc[stale, "payload_hash"] = merged.loc[stale, "payload_hash_state"]
    out = merged.assign(action=action, attempts=merged["attempts"].fillna(0).astype("int64"))
    out = out[out["action"] != "gone"]
    return (
        out[["record_key", "payload", "payload_hash", "action", "attempts"]]
        .sort_values("record_key")
        .reset_index(drop=True)
    )


def counts(planned: pd.DataFrame) -> dict[str, int]:
    """Rows per action; "unconfirmed" only when there are any."""
    tally = planned["action"].value_counts()
    out = {a: int(tally.get(a, 0)) for a in ("create", "update", "retry", "unchanged")}
    if tally.get("unconfirmed", 0):
        out["unconfirmed"] = int(tally["unconfirmed"])
    return out


def apply_outcomes(
    state: pd.DataFrame,
    sent: pd.DataFrame,
    outcomes: pd.DataFrame,
    as_of: str,
    *,
    unknown_unconfirmed: bool = False,
) -> pd.DataFrame:
    """The new state: delivered rows take the sent hash; failures become (or stay) dead letters.

    With `unknown_unconfirmed` (create-once targets the vendor cannot dedupe) a failure whose
    outcome is unknown (UNKNOWN_OUTCOME: the request left, no answer came) becomes unconfirmed:
    the vendor may have created it, so no normal run sends it again.
    """
    import pandas as pd

    from plg_bridge.delivery.state import STATE_COLUMNS

    joined = sent.merge(outcomes, on="record_key", how="left", validate="one_to_one")
    missing = joined["status"].isna()
    if missing.any():  # a destination that forgot a row: never lose it silently
        joined.loc[missing, ["status", "error_code", "error_message"]] = [
            "failed",
            "NO_OUTCOME",
            "destination reported no outcome",
        ]
    ok = joined["status"] != "failed"
    status = ok.map({True: "delivered", False: "failed"})
    if unknown_unconfirmed:
        status = status.mask(~ok & unknown_outcome(joined["error_code"]), "unconfirmed")
    sent_at = joined["record_key"].map(state.set_index("record_key")["sent_at"]) if len(state) else None
    rows = pd.DataFrame(
        {
            "record_key": joined["record_key"],
            "payload_hash": joined["payload_hash"],
            "status": status,
            "payload": joined["payload"].where(~ok, None),
            "destination_id": joined["destination_id"],
            "error_code": joined["error_code"].where(~ok, None),
            "error_message": joined["error_message"].where(~ok, None),
            "attempts": (joined["attempts"] + 1).where(~ok, 0),
            "as_of": as_of,
            "sent_at": sent_at,
        }
    ).astype(STATE_COLUMNS)
    rows["sent_at"] = rows["sent_at"].where(rows["status"] == "unconfirmed", None)
    return _replace_rows(state, rows)


def _replace_rows(state: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    import pandas as pd

    from plg_bridge.delivery.state import STATE_COLUMNS

    kept = state[~state["record_key"].isin(rows["record_key"])]
    return (
        pd.concat([kept.astype(STATE_COLUMNS), rows.astype(STATE_COLUMNS)], ignore_index=True)
        .sort_values("record_key")
        .reset_index(drop=True)
    )


def in_flight(
    state: pd.DataFrame, sent: pd.DataFrame, as_of: str, sent_at: str | None = None
) -> pd.DataFrame:
    """The state with `sent` marked unconfirmed (IN_FLIGHT) as their request is about to leave: if
    the run dies before it records the vendor's answer, the next run knows they may exist there
    (and since when, `sent_at`)."""
    import pandas as pd

    from plg_bridge.delivery.state import STATE_COLUMNS

    rows = pd.DataFrame(
        {
            "record_key": sent["record_key"],
            "payload_hash": sent["payload_hash"],
            "status": "unconfirmed",
            "payload": sent["payload"],
            "destination_id": None,
            "error_code": IN_FLIGHT,
            "error_message": (
                "sent by a run that stopped before the vendor answered: it may exist at the vendor; "
                "check, then `plg-bridge dead-letters confirm` or `replay` this target"
            ),
            "attempts": sent["attempts"].astype("int64"),
            "as_of": as_of,
            "sent_at": sent_at,
        }
    ).astype(STATE_COLUMNS)
    return _replace_rows(state, rows)


def settled(
    state: pd.DataFrame, found: dict[str, str | None], absent: dict[str, str], as_of: str
) -> pd.DataFrame:
    """Unconfirmed rows a lookup at the vendor settled: `found` {key: vendor id} are delivered;
    `absent` {key: why} were not created and become dead letters (NOT_CREATED) the next send
    retries with the payload they were sent with. Other rows are untouched."""
    frame = state.copy()
    hit = frame["record_key"].isin(list(found))
    frame.loc[hit, "status"] = "delivered"
    frame.loc[hit, "destination_id"] = frame.loc[hit, "record_key"].map(found)
    frame.loc[hit, ["payload", "error_code", "error_message", "sent_at"]] = None
    frame.loc[hit, "attempts"] = 0
    miss = frame["record_key"].isin(list(absent))
    frame.loc[miss, "status"] = "failed"
    frame.loc[miss, "error_code"] = NOT_CREATED
    frame.loc[miss, "error_message"] = frame.loc[miss, "record_key"].map(absent)
    frame.loc[miss, "sent_at"] = None
    frame.loc[hit | miss, "as_of"] = as_of
    from plg_bridge.delivery.state import STATE_COLUMNS

    return frame.astype(STATE_COLUMNS)
