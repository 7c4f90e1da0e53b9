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
from plg_bridge.exports.schema import columns_to_read, to_string, to_utc_micros

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


class ExportReadError(RuntimeError):
    """A file could not be read (corrupt, truncated, unreachable); names the object."""


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


def _property_schema(settings: ExportSettings) -> pa.Schema:
    import pyarrow as pa

    return pa.schema(
        [
            (f"$group_{settings.group_index}", pa.string()),
            ("$groups", pa.struct([(settings.group_type, pa.string())])),
        ]
    )


def iter_batches(
    location: Location, key: str, settings: ExportSettings, events: tuple[str, ...]
) -> Iterator[SlimBatch]:
    """Yield SlimBatches for one export object; raises ExportReadError / ExportSchemaError naming it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    source = location.uri_of(key)
    with location.open(key) as handle:
        try:
            parquet = pq.ParquetFile(handle)
        except (OSError, pa.ArrowException) as exc:
            raise ExportReadError(f"{source}: cannot read Parquet: {exc}") from exc
        columns = columns_to_read(parquet.schema_arrow, source)
        batches = parquet.iter_batches(batch_size=settings.batch_rows, columns=columns)
        yield from _slim_batches(batches, source, settings, events)


def _slim_batches(
    batches, source: str, settings: ExportSettings, events: tuple[str, ...]
) -> Iterator[SlimBatch]:
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    wanted = pa.array(list(events))
    schema = _property_schema(settings)

    offset = 0
    while True:
        try:
            batch = next(batches, None)
        except (OSError, pa.ArrowException) as exc:
            raise ExportReadError(f"{source}: cannot read Parquet after row {offset}: {exc}") from exc
        if batch is None:
            break
        n = batch.num_rows
        rows = pa.array(np.arange(offset, offset + n, dtype=np.int64))
        event = to_string(batch.column("event"))
        keep = pc.fill_null(pc.is_in(event, value_set=wanted), False)
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
        slim = pa.table(
            {
                "row": rows.filter(keep),
                "uuid": to_string(sub.column("uuid")),
                "timestamp": to_utc_micros(sub.column("timestamp"), source, "timestamp"),
                "event": to_string(sub.column("event")),
                "distinct_id": to_string(sub.column("distinct_id")),
                "person_id": person,
                "org_id": org,
            }
        )
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
