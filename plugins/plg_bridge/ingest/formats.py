"""Raw record batches from an export object, whatever format PostHog wrote.

Parquet (any codec: the compression is inside the file, the extension only follows it) is read
with column projection, one record batch at a time. JSON Lines (PostHog's default format, plain
or compressed as the extension says) is streamed line by line; its nested `properties` objects
are turned back into JSON text so both formats leave here with the same columns and types.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import TYPE_CHECKING

from plg_bridge.ingest.schema import OPTIONAL, REQUIRED, ExportSchemaError, columns_to_read

if TYPE_CHECKING:
    import pyarrow as pa

    from plg_bridge.storage import Location

# PostHog's extension -> pyarrow codec name, for JSON Lines streams.
JSONL_CODECS = {"gz": "gzip", "br": "brotli", "zst": "zstd", "lz4": "lz4"}


class ExportReadError(RuntimeError):
    """An object could not be read (corrupt, truncated, unsupported); names the object."""


def is_jsonl(key: str) -> bool:
    return ".jsonl" in key.rsplit("/", 1)[-1]


def raw_batches(
    location: Location, key: str, batch_rows: int, extra: tuple[str, ...] = ()
) -> Iterator[pa.RecordBatch]:
    """Record batches with the required columns, plus the optional and `extra` ones present."""
    reader = _jsonl_batches if is_jsonl(key) else _parquet_batches
    yield from reader(location, key, batch_rows, OPTIONAL + extra)


def _parquet_batches(
    location: Location, key: str, batch_rows: int, optional: tuple[str, ...]
) -> Iterator[pa.RecordBatch]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    source = location.uri_of(key)
    with location.open(key) as handle:
        try:
            parquet = pq.ParquetFile(handle)
        except (OSError, pa.ArrowException) as exc:
            raise ExportReadError(f"{source}: cannot read Parquet: {exc}") from exc
        columns = columns_to_read(parquet.schema_arrow, source, optional)
        for group in range(parquet.num_row_groups):  # one row group at a time bounds the buffered bytes
            yield from parquet.iter_batches(batch_size=batch_rows, columns=columns, row_groups=[group])


def _as_text(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _jsonl_batches(
    location: Location, key: str, batch_rows: int, optional: tuple[str, ...]
) -> Iterator[pa.RecordBatch]:
    import pyarrow as pa

    source = location.uri_of(key)
    extension = key.rsplit(".", 1)[-1]
    if extension == "sz":
        raise ExportReadError(
            f"{source}: snappy-compressed JSON Lines are not supported; export Parquet instead"
        )
    names = list(REQUIRED) + list(optional)
    with location.open(key) as raw:
        stream = pa.CompressedInputStream(raw, JSONL_CODECS[extension]) if extension in JSONL_CODECS else raw
        lines = io.TextIOWrapper(io.BufferedReader(stream), encoding="utf-8")
        columns: dict[str, list] = {n: [] for n in names}
        present: set[str] = set()
        line_no = 0
        try:
            for line_no, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except ValueError as exc:
                    raise ExportReadError(f"{source}: line {line_no} is not JSON: {exc}") from exc
                present.update(record)
                for name in names:
                    columns[name].append(_as_text(record.get(name)))
                if len(columns["uuid"]) >= batch_rows:
                    yield _batch(columns, present, source)
                    columns = {n: [] for n in names}
        except (OSError, EOFError, pa.ArrowException) as exc:
            raise ExportReadError(f"{source}: cannot read JSON Lines after line {line_no}: {exc}") from exc
        if columns["uuid"] or not present:
            yield _batch(columns, present, source)


def _batch(columns: dict[str, list], present: set[str], source: str) -> pa.RecordBatch:
    import pyarrow as pa

    if present:
        missing = [c for c in REQUIRED if c not in present]
        if missing:
            raise ExportSchemaError(f"{source}: missing required field(s) {', '.join(missing)}")
    keep = [c for c in columns if c in REQUIRED or c in present]
    return pa.record_batch({c: pa.array(columns[c], pa.string()) for c in keep})
