"""Hand-built PostHog export rows and files for tests (the generator makes realistic bulk data).

Every builder takes times as `clocks.ts` text ('2026-11-13' or '2026-11-13T05:00', UTC)."""

from __future__ import annotations

import json
import uuid as uuidlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from tests.support.clocks import ts

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


# -- person-level rows (identity, attribution, activation) ------------------------------------


def pageview(
    distinct_id: str,
    at: str,
    *,
    utm: tuple[str | None, str | None, str | None] | None = None,
    referring_domain: str | None = None,
    org: str | None = None,
    **props,
) -> dict:
    """A `$pageview`, anonymous by default (no organization); `utm` = (source, medium, campaign)."""
    properties = dict(props)
    if utm is not None:
        properties.update(zip(("utm_source", "utm_medium", "utm_campaign"), utm, strict=True))
    if referring_domain is not None:
        properties["$referring_domain"] = referring_domain
    return event("$pageview", at, org, distinct_id=distinct_id, props=properties)


def identify(
    distinct_id: str,
    anon_id: str | None,
    at: str,
    *,
    set_props: dict | None = None,
    set_once: dict | None = None,
    person_id: str | None = None,
) -> dict:
    """`$identify`: `distinct_id` becomes the identified id of `anon_id` (None: no anonymous id)."""
    properties: dict = {}
    if anon_id is not None:
        properties["$anon_distinct_id"] = anon_id
    if set_props is not None:
        properties["$set"] = set_props
    if set_once is not None:
        properties["$set_once"] = set_once
    return event("$identify", at, None, distinct_id=distinct_id, person_id=person_id, props=properties)


def alias(distinct_id: str, other: str, at: str, *, name: str = "$create_alias") -> dict:
    """`$create_alias` (or `$merge_dangerously` with name=...) joining `other` to `distinct_id`."""
    return event(name, at, None, distinct_id=distinct_id, props={"alias": other})


def initial(
    source: str | None, medium: str | None, campaign: str | None, referring_domain: str | None = None
) -> dict:
    """The `$set_once` $initial_* values posthog-js records for a first visit."""
    values = {
        "$initial_utm_source": source,
        "$initial_utm_medium": medium,
        "$initial_utm_campaign": campaign,
        "$initial_referring_domain": referring_domain,
    }
    return {k: v for k, v in values.items() if v is not None}


def conversion(
    distinct_id: str, at: str, value: object = 1000, *, org: str = "org_a", uuid: str | None = None
) -> dict:
    """`subscription_started` with a `contract_value` (any JSON value)."""
    return event(
        "subscription_started", at, org, distinct_id=distinct_id, uuid=uuid, props={"contract_value": value}
    )


def partial_of(folder: Path, files: list[list[dict]], settings, *, reverse: bool = False):
    """Write each row list as one export file (consecutive days from 2026-11-01), roll each up with the
    person tables and merge the partials (in reverse file order with `reverse`)."""
    from datetime import timedelta

    from plg_bridge.ingest import rollup
    from plg_bridge.storage import location

    loc = location(str(folder))
    parts = []
    for i, rows in enumerate(files):
        start = ts("2026-11-01") + timedelta(days=i)
        name = f"{start.isoformat()}-{(start + timedelta(days=1)).isoformat()}.parquet.zst"
        write_export(folder, rows, name)
        parts.append(rollup.rollup_file(loc, name, settings))
    return rollup.merge(reversed(parts) if reverse else parts)
