"""What was delivered to each target, kept as one small Parquet per target, committed atomically.

One row per record key: the hash of the payload last delivered (or attempted), whether it is
delivered, waiting as a dead letter (then with its payload, error and attempt count) or
unconfirmed (a create-once row sent without a known outcome, with when it was sent), and the run
that wrote it. Because delivered rows and dead letters live in one object, a commit is one
conditional write: S3 `If-Match` on the ETag read at the start (`If-None-Match: *` for the first
commit), or on a local folder an exclusive lock plus a content-hash check. Two runs of the same
window cannot both commit; the loser gets ConflictError naming the object.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from plg_bridge.storage import ConflictError, Location

if TYPE_CHECKING:
    import pandas as pd

STATE_COLUMNS = {
    "record_key": "string",
    "payload_hash": "string",
    "status": "string",  # delivered | failed | unconfirmed (create-once: sent, outcome unknown)
    "payload": "string",  # kept for failed / unconfirmed rows so they can be resent as they were
    "destination_id": "string",
    "error_code": "string",
    "error_message": "string",
    "attempts": "int64",
    "as_of": "string",  # the window that last wrote the row (never the wall clock)
    # When an unconfirmed row's request left (UTC, ISO): operational, not an output. A lookup that
    # misses such a row resends it only once no live run can still be sending it (journal.py).
    "sent_at": "string",
}


@dataclass(frozen=True)
class Snapshot:
    """The state as read, plus the version a commit must still find in place."""

    frame: pd.DataFrame
    version: str | None  # None: no state yet


def empty_state() -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in STATE_COLUMNS.items()})


def state_key(target: str) -> str:
    return f"state/{target}.parquet"


def _to_bytes(frame: pd.DataFrame) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    ordered = frame[list(STATE_COLUMNS)].sort_values("record_key", kind="stable").astype(STATE_COLUMNS)
    pq.write_table(pa.Table.from_pandas(ordered, preserve_index=False), sink, compression="zstd")
    return sink.getvalue().to_pybytes()


def _from_bytes(data: bytes) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.parquet as pq

    frame = pq.read_table(pa.BufferReader(data)).to_pandas()
    for column in STATE_COLUMNS:  # a state written before a column existed reads it as null
        if column not in frame:
            frame[column] = None
    return frame[list(STATE_COLUMNS)].astype(STATE_COLUMNS)


def load(work: Location, target: str) -> Snapshot:
    """Read a target's state and remember its version for the conditional commit."""
    key = state_key(target)
    if work.is_s3:
        from botocore.exceptions import ClientError

        try:
            obj = work.s3_client.get_object(Bucket=work.bucket, Key=_s3_key(work, key))
        except ClientError as exc:
            if exc.response["Error"]["Code"] in ("NoSuchKey", "404"):
                return Snapshot(empty_state(), None)
            raise
        return Snapshot(_from_bytes(obj["Body"].read()), obj["ETag"])
    if not work.exists(key):
        return Snapshot(empty_state(), None)
    data = work.read_bytes(key)
    return Snapshot(_from_bytes(data), hashlib.sha256(data).hexdigest())


def commit(work: Location, target: str, frame: pd.DataFrame, expected: str | None) -> str:
    """Write the new state only if nobody changed it since `expected` was read; returns the new version."""
    key = state_key(target)
    data = _to_bytes(frame)
    if work.is_s3:
        from botocore.exceptions import ClientError

        condition = {"IfMatch": expected} if expected else {"IfNoneMatch": "*"}
        try:
            out = work.s3_client.put_object(
                Bucket=work.bucket, Key=_s3_key(work, key), Body=data, **condition
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                raise ConflictError(_lost(work, key)) from exc
            raise
        return out["ETag"]
    return _commit_local(work, key, data, expected)


def _lost(work: Location, key: str) -> str:
    return (
        f"state {work.uri_of(key)} changed since this run read it: another run of this DAG committed first. "
        "Nothing was committed by this run; rerun it to deliver against the new state."
    )


def _s3_key(work: Location, key: str) -> str:
    return work.path(key).split("/", 1)[1]


def _commit_local(work: Location, key: str, data: bytes, expected: str | None) -> str:
    import fcntl
    import os
    from pathlib import Path

    path = Path(work.path(key))
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{path}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        current = hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None
        if current != expected:
            raise ConflictError(_lost(work, key))
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    return hashlib.sha256(data).hexdigest()
