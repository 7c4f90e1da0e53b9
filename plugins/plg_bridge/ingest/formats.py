"""Raw record batches from an export object, whatever format PostHog wrote.

Parquet (any codec: the compression is inside the file, the extension only follows it) is read
with column projection, one row group and record batch at a time; given an event-time window, row
groups whose `timestamp` statistics lie wholly outside it are skipped unread. JSON Lines (PostHog's
default format, plain or compressed as the extension says) is streamed in fixed-size reads; its
nested `properties` objects are turned back into JSON text so both formats leave here with the same
columns and types. A line longer than `max_line_bytes` is never held in memory: it is skipped to
its end and comes out as a row with only `_quarantine` set (file line, size), plus its `uuid` and
`event` when they stand at the head of the line, for the reader to quarantine.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from plg_bridge.ingest.schema import OPTIONAL, REQUIRED, ExportSchemaError, columns_to_read

if TYPE_CHECKING:
    import pyarrow as pa

    from plg_bridge.storage import Location

# PostHog's extension -> pyarrow codec name, for JSON Lines streams.
JSONL_CODECS = {"gz": "gzip", "br": "brotli", "zst": "zstd", "lz4": "lz4"}
MAX_LINE_BYTES = 16 << 20  # default of exports.max_line_bytes
BATCH_BYTES = 64 << 20  # Parquet: uncompressed bytes of the read columns per record batch, about
MIN_BATCH_ROWS = 1_024
READ_BYTES = 1 << 20  # JSON Lines are read this much at a time
HEAD_BYTES = 64 << 10  # of an over-long line, kept to find its uuid and event
QUARANTINE = "_quarantine"  # column of rows the format could not read (JSON Lines only)
ROW = "_row"  # the rows' numbers in the file, when a pruned read left rows or row groups out
OVERSIZED_LINE = "oversized_line"
Window = tuple[datetime, datetime]  # event time, [start, end)


class ExportReadError(RuntimeError):
    """An object could not be read (corrupt, truncated, unsupported); names the object."""


def is_jsonl(key: str) -> bool:
    return ".jsonl" in key.rsplit("/", 1)[-1]


def raw_batches(
    location: Location,
    key: str,
    batch_rows: int,
    extra: tuple[str, ...] = (),
    *,
    window: Window | None = None,
    history_events: tuple[str, ...] = (),
    history_only: bool = False,
    max_line_bytes: int = MAX_LINE_BYTES,
    counters: Counter | None = None,
) -> Iterator[pa.RecordBatch]:
    """Record batches with the required columns, plus the optional and `extra` ones present.

    Batches hold at most `batch_rows` rows and about BATCH_BYTES (Parquet: rows_per_batch; JSON
    Lines: the lines' bytes).
    `window` (event time, [start, end)) lets Parquet skip row groups whose `timestamp` statistics
    show every row outside it; the batches are then a superset of the window's rows, never a
    filtered set (rows of the kept row groups come whole). `counters` receives row_groups_read and
    row_groups_skipped.

    `history_events` are the events read over all history before the window's end (group names,
    identity links): a row group wholly before the window is then read only when its `event`
    column holds one of them, and only those rows come out. `history_only` says the file's export
    interval ended before the window could start: JSON Lines then yield only the history events'
    rows (filtered after reading), Parquet row groups without usable statistics are treated as
    wholly before (with statistics, the statistics decide). Row groups wholly at or after the
    window's end are skipped. With a window or `history_only`, batches carry ROW, the rows'
    numbers in the file.
    """
    counters = counters if counters is not None else Counter()
    if is_jsonl(key):
        batches = _jsonl_batches(location, key, batch_rows, OPTIONAL + extra, max_line_bytes)
        if not history_only:
            yield from batches
            return
        offset = 0
        for batch in batches:
            rows = pa_arange(offset, batch.num_rows)
            offset += batch.num_rows
            keep = _is_history(batch, history_events)
            yield batch.append_column(ROW, rows).filter(keep)
    else:
        yield from _parquet_batches(
            location,
            key,
            batch_rows,
            OPTIONAL + extra,
            window=window,
            history_events=history_events,
            history_only=history_only,
            counters=counters,
        )


def pa_arange(start: int, n: int) -> pa.Array:
    """int64 row numbers start .. start + n - 1."""
    import numpy as np
    import pyarrow as pa

    return pa.array(np.arange(start, start + n, dtype=np.int64))


def _is_history(batch: pa.RecordBatch | pa.Table, events: tuple[str, ...]) -> pa.Array:
    import pyarrow as pa
    import pyarrow.compute as pc

    event = batch.column("event")
    if not pa.types.is_string(event.type) and not pa.types.is_large_string(event.type):
        event = event.cast(pa.string())
    return pc.fill_null(pc.is_in(event, value_set=pa.array(list(events), pa.string())), False)


def _parquet_batches(
    location: Location,
    key: str,
    batch_rows: int,
    optional: tuple[str, ...],
    *,
    window: Window | None,
    history_events: tuple[str, ...] = (),
    history_only: bool = False,
    counters: Counter,
) -> Iterator[pa.RecordBatch]:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    source = location.uri_of(key)
    with location.open(key) as handle:
        try:
            parquet = pq.ParquetFile(handle)
        except (OSError, pa.ArrowException) as exc:
            raise ExportReadError(f"{source}: cannot read Parquet: {exc}") from exc
        columns = columns_to_read(parquet.schema_arrow, source, optional)
        rows = rows_per_batch(parquet, columns, batch_rows)
        pruned = window is not None or history_only
        start = 0
        for group in range(parquet.num_row_groups):  # one row group at a time bounds the buffered bytes
            size = parquet.metadata.row_group(group).num_rows
            first, start = start, start + size
            read = "all" if not pruned else _reading(parquet, group, window, history_only, history_events)
            if (
                read == "history"
                and not pc.any(
                    _is_history(parquet.read_row_group(group, columns=["event"]), history_events)
                ).as_py()
            ):
                read = "none"  # only the event column was read
            if read == "none":
                counters["row_groups_skipped"] += 1
                continue
            counters["row_groups_read" if read == "all" else "row_groups_history"] += 1
            offset = first
            for batch in parquet.iter_batches(batch_size=rows, columns=columns, row_groups=[group]):
                if not pruned:
                    yield batch
                    continue
                numbered = batch.append_column(ROW, pa_arange(offset, batch.num_rows))
                offset += batch.num_rows
                yield (
                    numbered.filter(_is_history(numbered, history_events)) if read == "history" else numbered
                )


def _reading(
    parquet: Any, group: int, window: Window | None, history_only: bool, history_events: tuple[str, ...]
) -> str:
    """How much of a row group a pruned read takes: "all", "history" (the rows of the history
    events, if its event column holds any) or "none". Its `timestamp` statistics decide (they are
    the data's own); without them `history_only` (the file's export interval ended before the
    window could start) does."""
    bounds = timestamp_bounds(parquet, group)
    rest = "history" if history_events else "none"
    if bounds is None:
        return rest if history_only else "all"
    if window is None:
        return "all"
    if bounds[0] >= _utc(window[1]):
        return "none"  # wholly at or after the window's end: nothing anyone reads
    return "all" if bounds[1] >= _utc(window[0]) else rest


def rows_per_batch(parquet: Any, columns: list[str], batch_rows: int) -> int:
    """`batch_rows`, or fewer when the file's rows are wide: a record batch holds about BATCH_BYTES
    of the read columns (from the footer's uncompressed sizes), so memory follows the bytes, not the
    row count (posthog-js-sized `properties` make a row ~2 KB; 131,072 of them would be 260 MB)."""
    meta = parquet.metadata
    if not meta.num_rows:
        return batch_rows
    wanted = set(columns)
    size = sum(
        meta.row_group(g).column(c).total_uncompressed_size
        for g in range(meta.num_row_groups)
        for c in range(meta.num_columns)
        if meta.row_group(g).column(c).path_in_schema.split(".")[0] in wanted
    )
    return max(MIN_BATCH_ROWS, min(batch_rows, BATCH_BYTES * meta.num_rows // max(size, 1)))


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def timestamp_bounds(parquet: Any, group: int) -> tuple[datetime, datetime] | None:
    """[lowest, highest] event time a row group may hold, from its `timestamp` statistics.

    None when unknown (no statistics, a type we cannot bound). Timestamps: naive ones are UTC,
    as schema.to_utc_micros reads them. Epoch integers: the unit follows the magnitude, as in
    to_utc_micros. ISO text: min / max are compared as text, so only their dates are trusted and
    the bounds are widened by a day on each side (zone offsets, 'T' or ' ').
    """
    meta = parquet.metadata
    index = next((i for i in range(meta.num_columns) if meta.schema.column(i).path == "timestamp"), None)
    if index is None:
        return None
    stats = meta.row_group(group).column(index).statistics
    if stats is None or not stats.has_min_max:
        return None
    low, high = stats.min, stats.max
    try:
        if isinstance(low, datetime) and isinstance(high, datetime):
            return _utc(low), _utc(high)
        if isinstance(low, int) and isinstance(high, int) and not isinstance(low, bool):
            biggest = max(abs(low), abs(high))
            scale = next((f for limit, f in ((1e11, 1), (1e14, 1e3), (1e17, 1e6)) if biggest < limit), 1e9)
            epoch = datetime(1970, 1, 1, tzinfo=UTC)
            return epoch + timedelta(seconds=low / scale), epoch + timedelta(seconds=high / scale)
        if isinstance(low, bytes | str) and isinstance(high, bytes | str):
            low, high = (v.decode() if isinstance(v, bytes) else v for v in (low, high))
            if not (_DATE.match(low) and _DATE.match(high)):
                return None
            first = datetime.fromisoformat(low[:10]).replace(tzinfo=UTC) - timedelta(days=1)
            last = datetime.fromisoformat(high[:10]).replace(tzinfo=UTC) + timedelta(days=2)
            return first, last
    except (ValueError, OverflowError, UnicodeDecodeError):
        return None
    return None


_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")


def _as_text(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


_SURROGATE = re.compile("[\ud800-\udfff]")


def _encodable(values: list[str | None]) -> list[str | None]:
    """Lone surrogates (valid in JSON escapes, not in UTF-8) back as `\\uXXXX` escapes."""
    return [
        _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", v) if isinstance(v, str) else v for v in values
    ]


def _lines(stream: Any, max_line_bytes: int) -> Iterator[tuple[int, bytes | None, int, bytes]]:
    """(line number, line or None when over max_line_bytes, its size, its head when over)."""
    pending = bytearray()
    number = size = 0
    over = False
    head = b""
    while True:
        chunk = stream.read(READ_BYTES)
        if not chunk:
            break
        at = 0
        while True:
            end = chunk.find(b"\n", at)
            piece = chunk[at : end if end >= 0 else len(chunk)]
            if over:
                size += len(piece)
            else:
                pending += piece
                if len(pending) > max_line_bytes:
                    over, size, head = True, len(pending), bytes(pending[:HEAD_BYTES])
                    pending = bytearray()
            if end < 0:
                break
            number += 1
            yield number, None if over else bytes(pending), size if over else len(pending), head
            pending, over, size, head = bytearray(), False, 0, b""
            at = end + 1
    if pending or over:
        yield number + 1, None if over else bytes(pending), size if over else len(pending), head


_HEAD_FIELD = {
    name: re.compile(rb'^\s*\{[^{\[]*?"' + name.encode() + rb'"\s*:\s*"([^"\\]*)"')
    for name in ("uuid", "event")
}


def _oversized(number: int, size: int, head: bytes, limit: int) -> dict[str, str | None]:
    """The row standing for an over-long line: its uuid / event when they lead the line."""
    row: dict[str, str | None] = {}
    for name, pattern in _HEAD_FIELD.items():
        match = pattern.match(head)
        row[name] = match.group(1).decode("utf-8", "replace") if match else None
    row[QUARANTINE] = f"line {number}: {size} bytes, over exports.max_line_bytes ({limit}); not read"
    return row


def _jsonl_batches(
    location: Location, key: str, batch_rows: int, optional: tuple[str, ...], max_line_bytes: int
) -> Iterator[pa.RecordBatch]:
    import pyarrow as pa

    source = location.uri_of(key)
    extension = key.rsplit(".", 1)[-1]
    if extension == "sz":
        raise ExportReadError(
            f"{source}: snappy-compressed JSON Lines are not supported; export Parquet instead"
        )
    names = [*REQUIRED, *optional, QUARANTINE]
    with location.open(key) as raw:
        stream = pa.CompressedInputStream(raw, JSONL_CODECS[extension]) if extension in JSONL_CODECS else raw
        columns: dict[str, list] = {n: [] for n in names}
        present: set[str] = set()
        number = held = 0
        try:
            for number, line, size, head in _lines(stream, max_line_bytes):
                if line is None:
                    record: dict = _oversized(number, size, head, max_line_bytes)
                else:
                    if not line.strip():
                        continue
                    record = _record(line, number, source)
                    present.update(record)
                for name in names:
                    columns[name].append(_as_text(record.get(name)))
                held += size if line is not None else 0
                if len(columns["uuid"]) >= batch_rows or held >= BATCH_BYTES:  # rows or bytes, as Parquet
                    yield _batch(columns, present, source)
                    columns, held = {n: [] for n in names}, 0
        except (OSError, EOFError, pa.ArrowException) as exc:
            raise ExportReadError(f"{source}: cannot read JSON Lines after line {number}: {exc}") from exc
        if columns["uuid"] or not present:
            yield _batch(columns, present, source)


def _record(line: bytes, number: int, source: str) -> dict:
    try:
        record = json.loads(line.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ExportReadError(f"{source}: line {number} is not UTF-8: {exc}") from exc
    except RecursionError as exc:
        raise ExportReadError(f"{source}: line {number} is nested too deep to read") from exc
    except ValueError as exc:
        raise ExportReadError(f"{source}: line {number} is not JSON: {exc}") from exc
    if not isinstance(record, dict):
        raise ExportReadError(f"{source}: line {number} is not a JSON object")
    return record


def _batch(columns: dict[str, list], present: set[str], source: str) -> pa.RecordBatch:
    import pyarrow as pa

    if present:
        missing = [c for c in REQUIRED if c not in present]
        if missing:
            raise ExportSchemaError(f"{source}: missing required field(s) {', '.join(missing)}")
    problems = any(v is not None for v in columns[QUARANTINE])
    keep = [c for c in columns if c in REQUIRED or c in present or (c == QUARANTINE and problems)]
    arrays = {}
    for c in keep:
        try:
            arrays[c] = pa.array(columns[c], pa.string())
        except UnicodeEncodeError:
            arrays[c] = pa.array(_encodable(columns[c]), pa.string())
    return pa.record_batch(arrays)
