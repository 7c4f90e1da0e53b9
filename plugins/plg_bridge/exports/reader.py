"""Stream one PostHog export file as slim, typed record batches.

Only the needed columns are read, one record batch at a time (memory follows the batch, not the
file), rows are kept only for the events the models use, and the organization is resolved from
`properties.$group_<index>`, falling back to `properties.$groups[<group type>]`. Rows whose
`properties` cannot be parsed are returned apart, with the file and row number, never dropped.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from plg_bridge.exports import properties as props
from plg_bridge.exports.formats import ExportReadError, raw_batches
from plg_bridge.exports.schema import to_string, to_utc_micros

__all__ = ["ExportReadError", "SlimBatch", "iter_batches", "slim_schema"]

if TYPE_CHECKING:
    import pyarrow as pa

    from plg_bridge.config import ExportSettings
    from plg_bridge.storage import Location

GROUP_IDENTIFY = "$groupidentify"


def slim_schema() -> pa.Schema:
    """The columns of SlimBatch.events."""
    import pyarrow as pa

    return pa.schema(
        [("row", pa.int64()), ("uuid", pa.string()), ("timestamp", pa.timestamp("us", tz="UTC"))]
        + [(name, pa.string()) for name in ("event", "distinct_id", "person_id", "org_id")]
    )


@dataclass
class SlimBatch:
    """The useful rows of one record batch.

    events: row, uuid, timestamp, event, distinct_id, person_id, org_id (rows of wanted events)
    groups: timestamp, properties (raw text of `$groupidentify` rows, parsed later: they are rare)
    quarantine: row, uuid, event, reason, properties
    rows: rows in the batch before any filtering
    """

    events: pa.Table
    groups: pa.Table
    quarantine: pa.Table
    rows: int


def _property_schema(settings: ExportSettings, extra: pa.Schema | None) -> pa.Schema:
    import pyarrow as pa

    fields = [
        pa.field(f"$group_{settings.group_index}", pa.string()),
        pa.field("$groups", pa.struct([(settings.group_type, pa.string())])),
    ]
    names = {f.name for f in fields}
    return pa.schema(fields + [f for f in (extra or []) if f.name not in names])


def iter_batches(
    location: Location,
    key: str,
    settings: ExportSettings,
    events: tuple[str, ...] | None,
    properties: pa.Schema | None = None,
) -> Iterator[SlimBatch]:
    """Yield SlimBatches for one export object; raises ExportReadError / ExportSchemaError naming it.

    `events` limits the rows kept (None keeps all); `properties` names extra keys of the
    properties JSON to extract as columns (strings, or structs of strings), beside org_id.
    """
    source = location.uri_of(key)
    yield from _slim_batches(
        raw_batches(location, key, settings.batch_rows), source, settings, events, properties
    )


def _slim_batches(
    batches: Iterator[pa.RecordBatch],
    source: str,
    settings: ExportSettings,
    events: tuple[str, ...] | None,
    properties: pa.Schema | None,
) -> Iterator[SlimBatch]:
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    wanted = pa.array(list(events)) if events is not None else None
    schema = _property_schema(settings, properties)

    offset = 0
    while True:
        try:
            batch = next(batches, None)
        except (OSError, pa.ArrowException) as exc:
            raise ExportReadError(f"{source}: cannot read after row {offset}: {exc}") from exc
        if batch is None:
            break
        n = batch.num_rows
        rows = pa.array(np.arange(offset, offset + n, dtype=np.int64))
        event = to_string(batch.column("event"))
        keep = (
            pc.fill_null(pc.is_in(event, value_set=wanted), False)
            if wanted is not None
            else pa.array(np.ones(n, bool))
        )
        is_group = pc.fill_null(pc.equal(event, GROUP_IDENTIFY), False)

        sub = batch.filter(keep)
        extracted, reasons = props.extract(to_string(sub.column("properties")), schema)
        org = pc.coalesce(
            extracted.column(0).combine_chunks(),
            pc.struct_field(extracted.column(1).combine_chunks(), [0]),
        )
        person = (
            to_string(sub.column("person_id"))
            if "person_id" in sub.schema.names
            else pa.nulls(sub.num_rows, pa.string())
        )
        good = pa.array(reasons == None)  # noqa: E711 - elementwise on an object array
        columns = {
            "row": rows.filter(keep),
            "uuid": to_string(sub.column("uuid")),
            "timestamp": to_utc_micros(sub.column("timestamp"), source, "timestamp"),
            "event": to_string(sub.column("event")),
            "distinct_id": to_string(sub.column("distinct_id")),
            "person_id": person,
            "org_id": org,
        }
        for name in extracted.column_names[2:]:
            columns[name] = extracted.column(name).combine_chunks()
        slim = pa.table(columns)
        bad = pc.invert(good)
        quarantine = pa.table(
            {
                "row": slim.column("row").filter(bad),
                "uuid": slim.column("uuid").filter(bad),
                "event": slim.column("event").filter(bad),
                "reason": pa.array(reasons[~np.asarray(good)].tolist(), type=pa.string()),
                "properties": to_string(sub.column("properties")).filter(bad),
            }
        )
        groups_batch = batch.filter(is_group)
        groups = pa.table(
            {
                "timestamp": to_utc_micros(groups_batch.column("timestamp"), source, "timestamp"),
                "properties": to_string(groups_batch.column("properties")),
            }
        )
        yield SlimBatch(events=slim.filter(good), groups=groups, quarantine=quarantine, rows=n)
        offset += n
