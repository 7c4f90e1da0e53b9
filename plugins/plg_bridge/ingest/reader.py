"""Stream one PostHog export file as slim, typed record batches.

Only the needed columns are read, one record batch at a time (memory follows the batch, not the
file), rows are kept only for the events the models use, and the organization is resolved from
`properties.$group_<index>`, falling back to `properties.$groups[<group type>]`. Rows whose
`properties` cannot be parsed are returned apart, with the file and row number, never dropped.

Extra keys asked for by the person-level models are strings; numbers and booleans under those
keys (`"contract_value": 1200`, `"opt_out": true`) arrive as their JSON text as written ("1200",
"true"): documents Arrow refuses for them are quoted (quote_scalars) and read again. Keys of the export's
`person_properties` column can be extracted too; each distinct document is parsed once, and
one that is not a readable JSON object leaves the event's person properties null and is listed
in `person_quarantine` (the event itself is kept).

Pruning is opt-in per call: given an event-time `window`, whole files whose export interval (when
the key names one) cannot hold events of the window are not opened, and Parquet row groups whose
`timestamp` statistics lie wholly outside it are not read (opaque names: statistics only). A few
events may be needed over all history before the window's end (`history_events`: `$groupidentify`
for organization names, the identity events for persons): files and row groups wholly before the
window are then read for those rows only, a row group's `event` column first, skipped when it holds
none of them. Reads for models that need every event of history (first touch, person profiles,
milestones) must pass no window.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from plg_bridge.ingest import properties as props
from plg_bridge.ingest.formats import OVERSIZED_LINE, QUARANTINE, ROW, ExportReadError, Window, raw_batches
from plg_bridge.ingest.layout import may_hold, parse_key
from plg_bridge.ingest.schema import to_string, to_utc_micros

__all__ = ["ExportReadError", "SlimBatch", "Window", "iter_batches", "slim_schema"]

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

    from plg_bridge.config import ExportSettings
    from plg_bridge.storage import Location

GROUP_IDENTIFY = "$groupidentify"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # the start of "all history" for may_hold


def slim_schema() -> pa.Schema:
    """The columns of SlimBatch.events."""
    import pyarrow as pa

    return pa.schema(
        [("row", pa.int64()), ("uuid", pa.string()), ("timestamp", pa.timestamp("us", tz="UTC"))]
        + [(name, pa.string()) for name in ("event", "distinct_id", "person_id", "org_id")]
        + [("inserted_at", pa.timestamp("us", tz="UTC"))]  # `_inserted_at`; null when the file has none
    )


@dataclass
class SlimBatch:
    """The useful rows of one record batch.

    events: row, uuid, timestamp, event, distinct_id, person_id, org_id (rows of wanted events)
    groups: timestamp, properties (raw text of `$groupidentify` rows, parsed later: they are rare)
    quarantine: row, uuid, event, reason, properties (rows set aside: unreadable `properties`, or a
        JSON Lines line over exports.max_line_bytes, reason `oversized_line`, properties = why)
    rows: rows in the batch before any filtering
    person_quarantine: row, uuid, event, reason, properties: `person_properties` documents that
        are not readable JSON objects (reasons `malformed_person_properties`, ...); their events
        stay in `events` with null person properties. Empty unless person_properties are asked.
    """

    events: pa.Table
    groups: pa.Table
    quarantine: pa.Table
    rows: int
    person_quarantine: pa.Table | None = None


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
    *,
    person_properties: pa.Schema | None = None,
    window: Window | None = None,
    history_events: tuple[str, ...] = (),
    counters: Counter | None = None,
) -> Iterator[SlimBatch]:
    """Yield SlimBatches for one export object; raises ExportReadError / ExportSchemaError naming it.

    `events` limits the rows kept (None keeps all); `properties` names extra keys of the
    properties JSON to extract as columns (strings, or structs of strings), beside org_id.
    `person_properties` names keys of the `person_properties` column, returned as one struct
    column `person_properties` (all null when the file has no such column, or it is unreadable).

    `window` = (start, end), event time, half-open, opts in to pruning: the file is skipped
    unopened when its export interval cannot hold events of the window (layout.may_hold, with
    exports.late_event_margin_hours), and Parquet row groups whose `timestamp` statistics lie
    wholly outside it are not read. The batches then still hold every row of the window, plus
    whatever else the kept row groups hold: callers filter on time as without a window. A window
    also drops the `$groupidentify` rows, identity links and first events outside it, unless they
    are among `history_events` (rows of those events before the window's end are all returned:
    files and row groups wholly before the window yield only them), so reads that need every event
    of history (first touch, person profiles, milestones) pass none. `counters` receives
    files_skipped, files_history (read for the history events only), row_groups_read,
    row_groups_history and row_groups_skipped.
    """
    source = location.uri_of(key)
    counters = counters if counters is not None else Counter()
    history_only = False
    if window is not None:
        margin = timedelta(hours=settings.late_event_margin_hours)
        file = parse_key(key)
        if not may_hold(file, window[0], window[1], margin):
            history_only = bool(history_events) and may_hold(file, EPOCH, window[1], margin)
            if not history_only:
                counters["files_skipped"] += 1
                return
            counters["files_history"] += 1
    yield from _slim_batches(
        raw_batches(
            location,
            key,
            settings.batch_rows,
            ("person_properties",) if person_properties else (),
            window=window,
            history_events=history_events,
            history_only=history_only,
            max_line_bytes=settings.max_line_bytes,
            counters=counters,
        ),
        source,
        settings,
        events,
        properties,
        person_properties=person_properties,
    )


def _scalar_leaves(schema: pa.Schema | None) -> list[str]:
    """Names of the string leaves of `schema` (top-level strings and struct members)."""
    import pyarrow as pa

    names: list[str] = []
    for f in schema or []:
        if pa.types.is_struct(f.type):
            names += [sub.name for sub in f.type]
        else:
            names.append(f.name)
    return sorted(set(names))


def quote_scalars(docs: pa.Array, keys: list[str]) -> pa.Array:
    """Turn `"key": 12.5` / `true` / `false` into `"key": "12.5"` / `"true"` for the given keys.

    Only a JSON number or boolean right after one of the keys is touched, so valid documents stay
    valid and malformed ones stay malformed; a key-like text inside a string value cannot match
    because its quotes are escaped there.
    """
    import re

    import pyarrow.compute as pc

    if not keys or len(docs) == 0:
        return docs
    pattern = '"(' + "|".join(re.escape(k) for k in keys) + r')"\s*:\s*(true|false|-?[0-9][0-9.eE+\-]*)'
    hits = pc.fill_null(pc.match_substring_regex(docs, pattern), False)  # matching is cheap, rewriting is not
    if not pc.any(hits).as_py():
        return docs
    fixed = pc.replace_substring_regex(docs.filter(hits), pattern, r'"\1":"\2"')
    return pc.replace_with_mask(docs, hits, fixed)


def extract(
    docs: pa.Array, schema: pa.Schema, quoted: list[str] | None = None
) -> tuple[pa.Table, np.ndarray]:
    """properties.extract: each row read exactly as `json.loads` reads it, or given a reason; the
    `quoted` keys' numbers and booleans as their JSON text (quote_scalars, on the rows that need it)."""
    quote = (lambda d: quote_scalars(d, quoted)) if quoted else None
    return props.extract(docs, schema, quote=quote)


def _person_struct(sub: pa.RecordBatch, schema: pa.Schema) -> tuple[pa.Array, np.ndarray]:
    """The wanted keys of `person_properties` (parsing each distinct document once) and, per row,
    why its document could not be read (None: read, or no person properties at all)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = pa.struct(list(schema))
    if "person_properties" not in sub.schema.names or sub.num_rows == 0:
        return pa.nulls(sub.num_rows, kind), np.full(sub.num_rows, None, dtype=object)
    encoded = pc.dictionary_encode(to_string(sub.column("person_properties")))
    parsed, reasons = extract(encoded.dictionary, schema, _scalar_leaves(schema))  # bad ones: nulls
    table = parsed.take(encoded.indices)  # null index (no person properties) -> null row
    reasons = np.where(reasons == props.NULL, None, reasons)  # null / "" / `null`: no profile
    indices = encoded.indices.to_numpy(zero_copy_only=False)
    valid = ~np.isnan(indices) if indices.dtype.kind == "f" else np.ones(len(indices), bool)
    per_row = np.full(sub.num_rows, None, dtype=object)
    per_row[valid] = reasons[indices[valid].astype(np.int64)]
    struct = pa.StructArray.from_arrays(
        [table.column(f.name).combine_chunks() for f in schema], fields=list(schema)
    )
    return struct, per_row


def _slim_batches(
    batches: Iterator[pa.RecordBatch],
    source: str,
    settings: ExportSettings,
    events: tuple[str, ...] | None,
    properties: pa.Schema | None,
    *,
    person_properties: pa.Schema | None = None,
) -> Iterator[SlimBatch]:
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    wanted = pa.array(list(events)) if events is not None else None
    schema = _property_schema(settings, properties)
    quoted = _scalar_leaves(pa.schema(list(schema)[2:]))  # the caller's extra keys only

    offset = 0
    while True:
        try:
            batch = next(batches, None)
        except (OSError, pa.ArrowException) as exc:
            raise ExportReadError(f"{source}: cannot read after row {offset}: {exc}") from exc
        if batch is None:
            break
        n = batch.num_rows
        if ROW in batch.schema.names:  # a pruned read: rows or row groups were left out
            rows = batch.column(ROW)
        else:
            rows = pa.array(np.arange(offset, offset + n, dtype=np.int64))
        event = to_string(batch.column("event"))
        keep = (
            pc.fill_null(pc.is_in(event, value_set=wanted), False)
            if wanted is not None
            else pa.array(np.ones(n, bool))
        )
        is_group = pc.fill_null(pc.equal(event, GROUP_IDENTIFY), False)
        unread = _unread(batch, rows)  # JSON Lines lines too long to read
        if unread is not None:
            readable = pc.is_null(batch.column(QUARANTINE))
            keep, is_group = pc.and_(keep, readable), pc.and_(is_group, readable)

        sub = batch.filter(keep)
        docs = to_string(sub.column("properties"))
        extracted, reasons = extract(docs, schema, quoted)
        org = pc.coalesce(
            extracted.column(0).combine_chunks(),
            pc.struct_field(extracted.column(1).combine_chunks(), [0]),
        )
        person = (
            _text(sub.column("person_id"))
            if "person_id" in sub.schema.names
            else pa.nulls(sub.num_rows, pa.string())
        )
        good = pa.array(reasons == None)  # noqa: E711 - elementwise on an object array
        columns = {
            "row": rows.filter(keep),
            "uuid": _text(sub.column("uuid")),
            "timestamp": to_utc_micros(sub.column("timestamp"), source, "timestamp"),
            "event": _text(sub.column("event")),
            "distinct_id": _text(sub.column("distinct_id")),
            "person_id": person,
            "org_id": org,
            "inserted_at": to_utc_micros(sub.column("_inserted_at"), source, "_inserted_at")
            if "_inserted_at" in sub.schema.names
            else pa.nulls(sub.num_rows, pa.timestamp("us", tz="UTC")),
        }
        for name in extracted.column_names[2:]:
            columns[name] = extracted.column(name).combine_chunks()
        person_reasons = np.full(sub.num_rows, None, dtype=object)
        if person_properties is not None:
            columns["person_properties"], person_reasons = _person_struct(sub, person_properties)
        slim = pa.table(columns)
        bad = pc.invert(good)
        quarantine = pa.table(
            {
                "row": slim.column("row").filter(bad),
                "uuid": slim.column("uuid").filter(bad),
                "event": slim.column("event").filter(bad),
                "reason": pa.array(reasons[~np.asarray(good)].tolist(), type=pa.string()),
                "properties": props.printable(docs.filter(bad)),  # invalid UTF-8 as \xNN escapes
            }
        )
        if unread is not None:
            quarantine = pa.concat_tables([quarantine, unread])
        person_bad = pa.array(np.asarray(person_reasons != None) & np.asarray(good))  # noqa: E711
        person_quarantine = pa.table(
            {
                "row": slim.column("row").filter(person_bad),
                "uuid": slim.column("uuid").filter(person_bad),
                "event": slim.column("event").filter(person_bad),
                "reason": pa.array(
                    [
                        r.replace("_properties", "_person_properties")
                        for r in person_reasons[np.asarray(person_bad)]
                    ],
                    type=pa.string(),
                ),
                "properties": props.printable(to_string(sub.column("person_properties")).filter(person_bad))
                if person_properties is not None and "person_properties" in sub.schema.names
                else pa.nulls(0, pa.string()),
            }
        )
        groups_batch = batch.filter(is_group)
        groups = pa.table(
            {
                "timestamp": to_utc_micros(groups_batch.column("timestamp"), source, "timestamp"),
                "properties": _text(groups_batch.column("properties")),
            }
        )
        yield SlimBatch(
            events=slim.filter(good),
            groups=groups,
            quarantine=quarantine,
            rows=n,
            person_quarantine=person_quarantine,
        )
        offset += n


def _unread(batch: pa.RecordBatch, rows: pa.Array) -> pa.Table | None:
    """Quarantine rows for what the format could not read (formats.QUARANTINE), or None."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if QUARANTINE not in batch.schema.names:
        return None
    problem = pc.is_valid(batch.column(QUARANTINE))
    return pa.table(
        {
            "row": rows.filter(problem),
            "uuid": _text(batch.column("uuid")).filter(problem),
            "event": _text(batch.column("event")).filter(problem),
            "reason": pa.array([OVERSIZED_LINE] * int(pc.sum(problem).as_py() or 0), pa.string()),
            "properties": to_string(batch.column(QUARANTINE)).filter(problem),
        }
    )


def _text(values: pa.Array) -> pa.Array:
    """A text column as valid UTF-8 (Parquet does not check it): invalid bytes as `\\xNN` escapes."""
    return props.printable(to_string(values))
