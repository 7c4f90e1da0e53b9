"""Hand-built PostHog export rows and files for unit tests (the generator makes realistic bulk data)."""

from __future__ import annotations

import json
import uuid as uuidlib
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

EXPORT_SCHEMA = pa.schema(
    [
        ("uuid", pa.string()),
        ("timestamp", pa.timestamp("us", tz="UTC")),
        ("_inserted_at", pa.timestamp("us", tz="UTC")),
        ("created_at", pa.timestamp("us", tz="UTC")),
        ("event", pa.string()),
        ("properties", pa.string()),
        ("distinct_id", pa.string()),
        ("elements_chain", pa.string()),
        ("person_properties", pa.string()),
        ("person_id", pa.string()),
    ]
)


def ts(text: str) -> datetime:
    """'2026-11-13' or '2026-11-13T05:00' -> aware UTC datetime."""
    value = datetime.fromisoformat(text)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def event(
    name: str,
    at: str,
    org: str | None = "org_a",
    *,
    distinct_id: str = "user_1",
    person_id: str | None = None,
    uuid: str | None = None,
    props: dict | None = None,
    raw_properties: str | None = None,
    only_groups: bool = False,
) -> dict:
    properties = dict(props or {})
    if org is not None:
        properties["$groups"] = {"organization": org}
        if not only_groups:
            properties["$group_0"] = org
    when = ts(at)
    return {
        "uuid": uuid or str(uuidlib.uuid4()),
        "timestamp": when,
        "_inserted_at": when,
        "created_at": when,
        "event": name,
        "properties": raw_properties
        if raw_properties is not None or props == "null"
        else json.dumps(properties),
        "distinct_id": distinct_id,
        "elements_chain": "",
        "person_properties": None,
        "person_id": person_id if person_id is not None else f"person-{distinct_id}",
    }


def group_identify(org: str, at: str, **group_set) -> dict:
    return event(
        "$groupidentify",
        at,
        None,
        props={"$group_type": "organization", "$group_key": org, "$group_set": group_set},
    )


def export_name(start: str, end: str) -> str:
    return f"{ts(start).isoformat()}-{ts(end).isoformat()}.parquet.zst"


def write_export(
    folder: Path, rows: list[dict], name: str | None = None, schema: pa.Schema = EXPORT_SCHEMA
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (name or export_name("2026-11-01", "2026-11-02"))
    table = pa.Table.from_pylist(rows, schema=schema) if rows else schema.empty_table()
    pq.write_table(table, path, compression="zstd")
    return path
