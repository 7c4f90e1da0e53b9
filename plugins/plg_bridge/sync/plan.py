"""Desired records vs what was last delivered: which rows to send, and why.

A record is `{record_key, payload}` with the payload as canonical JSON, so its hash changes
exactly when what we would send changes. Actions:
- create    never delivered
- update    delivered, payload changed (or `full_resync`)
- retry     a dead letter of an earlier run, sent again even when its data did not change
- unchanged delivered with the same payload: not sent (an unchanged rerun makes no calls)
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
    desired: pd.DataFrame, state: pd.DataFrame, *, full_resync: bool = False, create_once: bool = False
) -> pd.DataFrame:
    """One row per record to consider: record_key, payload, payload_hash, action, attempts."""
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
    action[(merged["_merge"] == "right_only") & ~failed.fillna(False)] = "gone"

    # A dead letter no longer desired is retried with the payload it failed with.
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
    tally = planned["action"].value_counts()
    return {a: int(tally.get(a, 0)) for a in ("create", "update", "retry", "unchanged")}


def apply_outcomes(
    state: pd.DataFrame, sent: pd.DataFrame, outcomes: pd.DataFrame, as_of: str
) -> pd.DataFrame:
    """The new state: delivered rows take the sent hash; failures become (or stay) dead letters."""
    import pandas as pd

    from plg_bridge.sync.state import STATE_COLUMNS

    joined = sent.merge(outcomes, on="record_key", how="left", validate="one_to_one")
    missing = joined["status"].isna()
    if missing.any():  # a destination that forgot a row: never lose it silently
        joined.loc[missing, ["status", "error_code", "error_message"]] = [
            "failed",
            "NO_OUTCOME",
            "destination reported no outcome",
        ]
    ok = joined["status"] != "failed"
    rows = pd.DataFrame(
        {
            "record_key": joined["record_key"],
            "payload_hash": joined["payload_hash"],
            "status": ok.map({True: "delivered", False: "failed"}),
            "payload": joined["payload"].where(~ok, None),
            "destination_id": joined["destination_id"],
            "error_code": joined["error_code"].where(~ok, None),
            "error_message": joined["error_message"].where(~ok, None),
            "attempts": (joined["attempts"] + 1).where(~ok, 0),
            "as_of": as_of,
        }
    ).astype(STATE_COLUMNS)
    kept = state[~state["record_key"].isin(rows["record_key"])]
    return (
        pd.concat([kept.astype(STATE_COLUMNS), rows], ignore_index=True)
        .sort_values("record_key")
        .reset_index(drop=True)
    )
