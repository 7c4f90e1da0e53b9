"""Pull a few keys out of PostHog's `properties` JSON text, exactly as `json.loads` reads it.

The contract, per row and whatever its neighbours: a document is the value's text (strict UTF-8);
`json.loads` of that text must be a JSON object, else the row is set aside with a reason (NULL for
a missing value, "" or the literal `null`; MALFORMED for anything else that is not an object:
invalid UTF-8, truncated text, arrays, scalars, a BOM, raw control characters in a string, extra
data after the object). Duplicate keys: the last one wins. A wanted value that is a string arrives
as itself, null as null, a number / boolean / object / array as its JSON text. A wanted value
holding a lone surrogate (`"\\ud800"`, valid for `json.loads`, not representable in Arrow) sets the
row aside as UNENCODABLE; a document nested too deep for `json.loads` (RecursionError) is read by
Arrow when Arrow can read it, else set aside as TOO_DEEP.

Speed: documents that pass a cheap, vectorised screen (not null, starts with `{` and ends with `}`,
valid UTF-8, no byte below 0x20, at most FAST_MAX_BYTES) are laid end to end as newline-delimited
JSON and handed to Arrow's C++ reader with an explicit schema of just the wanted keys, CHUNK rows at
a time. Nothing else ever reaches Arrow: pyarrow 26 segfaults on a `null` document at the head of a
block, reads a `null` row elsewhere as an empty object, accepts a BOM only on the first line and
re-reads "a\\nb" across a raw line break. A chunk that fails is split at the row Arrow names (or in
halves) and the failing rows go to `json.loads` one by one. Arrow's reading of a row does not depend
on the other rows of its block, and where both read a row they agree (tests/unit/test_json_documents),
so which path a row takes changes only the time it costs, never its outcome.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

NULL = "null_properties"
MALFORMED = "malformed_properties"
TOO_DEEP = "too_deep_properties"
UNENCODABLE = "unencodable_properties"

CHUNK = 16_384  # rows per Arrow call: bounds the joined copy and what a failing row costs
FAST_MAX_BYTES = 4 << 20  # longer documents are read by json.loads (one Arrow block each is no faster)
MAX_FAILURES = 16  # failing Arrow calls per chunk before the rest of the chunk goes to json.loads
RETRY_ROWS = 1_024  # after a failure, the rows after the blamed one are retried in pieces this big
_SCAN_BYTES = 16 << 20  # control-byte scan window (bounds the temporary mask)
_ROW_IN_ERROR = re.compile(r"in row (\d+)")


def _layout(docs: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The values buffer as bytes and each row's [start, end) in it."""
    import numpy as np
    import pyarrow as pa

    n = len(docs)
    width = np.int64 if pa.types.is_large_string(docs.type) else np.int32
    offsets = np.frombuffer(docs.buffers()[1], dtype=width)[docs.offset : docs.offset + n + 1].astype(
        np.int64
    )
    values = docs.buffers()[2]
    data = np.frombuffer(values, dtype=np.uint8) if values is not None else np.zeros(0, np.uint8)
    return data, offsets[:-1], offsets[1:]


def _invalid_utf8(docs: pa.Array, lo: int, hi: int, out: list[int]) -> None:
    """Rows of docs[lo:hi] that are not valid UTF-8 (Arrow's full validation, bisected)."""
    import pyarrow as pa

    try:
        docs.slice(lo, hi - lo).validate(full=True)
        return
    except pa.ArrowInvalid:
        if hi - lo == 1:
            out.append(lo)
            return
    mid = (lo + hi) // 2
    _invalid_utf8(docs, lo, mid, out)
    _invalid_utf8(docs, mid, hi, out)


def screen(docs: pa.Array) -> np.ndarray:
    """True where a document may be handed to Arrow's JSON reader (see the module docstring)."""
    import numpy as np

    n = len(docs)
    data, starts, ends = _layout(docs)
    length = ends - starts
    ok = np.asarray(docs.is_valid(), dtype=bool) & (length >= 2) & (length <= FAST_MAX_BYTES)
    if not ok.any():
        return ok
    first = np.where(ok, starts, 0)
    last = np.where(ok, ends - 1, 0)
    ok &= (data[first] == ord("{")) & (data[last] == ord("}"))
    lo, hi = int(starts[0]), int(ends[-1])
    for a in range(lo, hi, _SCAN_BYTES):  # raw control bytes (NUL, line breaks, tabs): rare
        hits = np.flatnonzero(data[a : min(a + _SCAN_BYTES, hi)] < 0x20) + a
        if len(hits):
            rows = np.searchsorted(ends, hits, side="right")
            rows = rows[rows < n]
            ok[rows[starts[rows] <= hits[: len(rows)]]] = False
    bad: list[int] = []
    _invalid_utf8(docs, 0, n, bad)
    ok[bad] = False
    return ok


def _joined(docs: pa.Array) -> pa.Buffer:
    """The documents laid end to end, one per line."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    lines = pc.binary_join_element_wise(docs, "\n", "").cast(pa.large_string())
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int64)[lines.offset : lines.offset + len(lines) + 1]
    return lines.buffers()[2][int(offsets[0]) : int(offsets[-1])]


def _arrow(docs: pa.Array, schema: pa.Schema) -> tuple[pa.Table | None, int | None]:
    """Screened documents through Arrow's C++ reader: (table, None), or (None, row Arrow blamed)."""
    import pyarrow as pa
    import pyarrow.json as pj

    data = _joined(docs)
    try:
        table = pj.read_json(
            pa.BufferReader(data),
            read_options=pj.ReadOptions(block_size=max(len(data) + 1, 1 << 20), use_threads=False),
            parse_options=pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore"),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        match = _ROW_IN_ERROR.search(str(exc))
        return None, int(match.group(1)) if match else None
    if table.num_rows != len(docs):  # a document holding more than one JSON value
        return None, None
    return table, None


def parse_block(docs: pa.Array, schema: pa.Schema) -> pa.Table | None:
    """Screened documents through Arrow at once, or None when any of them fails.

    Only for documents that passed `screen` (anything else may crash the reader).
    """
    return _arrow(docs, schema)[0]


def _fast(docs: pa.Array, rows: np.ndarray, schema: pa.Schema) -> tuple[list, list[int]]:
    """Arrow's reading of screened `rows`: ([(rows, table)...], rows left for json.loads)."""
    import pyarrow as pa

    done: list[tuple[np.ndarray, pa.Table]] = []
    left: list[int] = []
    failures = 0
    todo = [rows]
    while todo:
        part = todo.pop()
        if failures >= MAX_FAILURES:  # many bad rows: json.loads reads them all the same, just slower
            left += part.tolist()
            continue
        contiguous = int(part[-1]) - int(part[0]) + 1 == len(part)
        chunk = docs.slice(int(part[0]), len(part)) if contiguous else docs.take(pa.array(part))
        table, blamed = _arrow(chunk, schema)
        if table is not None:
            done.append((part, table))
            continue
        failures += 1
        if len(part) == 1:
            left.append(int(part[0]))
        elif blamed is not None and blamed < len(part):
            # the rows before the blamed one read once more; the rest in small pieces, so each further
            # bad row costs a re-read of its piece only
            rest = part[blamed + 1 :]
            todo += [rest[i : i + RETRY_ROWS] for i in range(0, len(rest), RETRY_ROWS)][::-1]
            todo += [p for p in (part[blamed : blamed + 1], part[:blamed]) if len(p)]
        else:
            half = len(part) // 2
            todo += [part[half:], part[:half]]
    return done, left


def _as_text(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=True)


def read_document(raw: bytes | None) -> tuple[dict | None, str | None]:
    """One document as `json.loads` reads it: (object, None) or (None, reason)."""
    if raw is None or raw == b"":
        return None, NULL
    try:
        obj = json.loads(raw.decode("utf-8"))
    except RecursionError:
        return None, TOO_DEEP
    except ValueError:  # includes UnicodeDecodeError
        return None, MALFORMED
    if obj is None:
        return None, NULL
    return (obj, None) if isinstance(obj, dict) else (None, MALFORMED)


def _encodable(text: str | None) -> bool:
    if text is None or text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _slow(raws: list[bytes | None], schema: pa.Schema) -> tuple[dict[str, list], list[str | None]]:
    """Row-by-row `json.loads`; returns columns (string leaves) and a reason per row (None = fine)."""
    import pyarrow as pa

    out: dict[str, list] = {f.name: [] for f in schema}
    reasons: list[str | None] = []
    for raw in raws:
        obj, reason = read_document(raw)
        row: dict[str, object] = {}
        if obj is not None:
            for f in schema:
                value = obj.get(f.name)
                if pa.types.is_struct(f.type):
                    row[f.name] = (
                        {sub.name: _as_text(value.get(sub.name)) for sub in f.type}
                        if isinstance(value, dict)
                        else None
                    )
                else:
                    row[f.name] = _as_text(value)
            texts = [v for v in row.values() if not isinstance(v, dict)]
            texts += [t for v in row.values() if isinstance(v, dict) for t in v.values()]
            if not all(_encodable(t) for t in texts):
                reason = UNENCODABLE
        if reason is not None:
            row = dict.fromkeys(out)
        for name, column in out.items():
            column.append(row[name])
        reasons.append(reason)
    return out, reasons


def _plain(docs: pa.Array | pa.ChunkedArray) -> pa.Array:
    import pyarrow as pa

    if isinstance(docs, pa.ChunkedArray):
        docs = docs.combine_chunks()
    if pa.types.is_dictionary(docs.type):
        docs = docs.dictionary_decode()
    if pa.types.is_binary(docs.type) or pa.types.is_large_binary(docs.type):
        docs = docs.view(pa.large_string() if pa.types.is_large_binary(docs.type) else pa.string())
    return docs


def extract(
    docs: pa.Array, schema: pa.Schema, quote: Callable[[pa.Array], pa.Array] | None = None
) -> tuple[pa.Table, np.ndarray]:
    """Columns for `schema`'s keys (strings, or structs of strings) and a per-row problem code.

    The code array holds None for good rows, else NULL, MALFORMED, TOO_DEEP or UNENCODABLE; rows
    with a code get null values. `docs` may hold invalid UTF-8 (Parquet does not check it).

    `quote` (reader.quote_scalars) rewrites documents before they are read; it is applied only to
    those Arrow cannot read as they are. The outcome is that of reading every rewritten document,
    as long as `quote` changes a document only where a wanted key holds a non-string (which Arrow
    refuses) or where nothing wanted is read; the rewrite costs a regex pass, so it is kept off
    the documents that do not need it.
    """
    import numpy as np
    import pyarrow as pa

    docs = _plain(docs)
    n = len(docs)
    reasons = np.full(n, None, dtype=object)
    if n == 0:
        return schema.empty_table(), reasons
    fast = screen(docs)
    pieces: list[tuple[np.ndarray, pa.Table]] = []
    left = np.flatnonzero(~fast).tolist()
    for start in range(0, n, CHUNK):
        rows = np.flatnonzero(fast[start : start + CHUNK]) + start
        if len(rows):
            done, rest = _fast(docs, rows, schema)
            pieces += done
            left += rest
    left_rows = np.array(sorted(left), dtype=np.int64)
    if quote is not None and len(left_rows):
        table, quoted_reasons = extract(quote(docs.take(pa.array(left_rows))), schema)
        reasons[left_rows] = quoted_reasons
        pieces.append((left_rows, table))
        left_rows = left_rows[:0]
    for at in range(0, len(left_rows), CHUNK):  # CHUNK documents as Python bytes at a time
        slow_rows = left_rows[at : at + CHUNK]
        raws = docs.take(pa.array(slow_rows)).cast(pa.binary()).to_pylist()
        columns, slow_reasons = _slow(raws, schema)
        deep = [i for i, r in enumerate(slow_reasons) if r == TOO_DEEP and fast[slow_rows[i]]]
        table = pa.table({f.name: pa.array(columns[f.name], type=f.type) for f in schema})
        if deep:  # json.loads cannot nest that deep; Arrow can, when it reads the row alone
            table, slow_reasons = _deep_rows(docs, slow_rows[deep], deep, table, slow_reasons, schema)
        reasons[slow_rows] = slow_reasons
        pieces.append((slow_rows, table))
    if len(pieces) == 1 and len(pieces[0][0]) == n and (pieces[0][0] == np.arange(n)).all():
        return pieces[0][1].select(schema.names), reasons
    order = np.concatenate([rows for rows, _ in pieces])
    back = np.empty(n, dtype=np.int64)
    back[order] = np.arange(n)
    table = pa.concat_tables([t.select(schema.names).cast(schema) for _, t in pieces])
    return table.take(pa.array(back)), reasons


def _deep_rows(  # noqa: PLR0917 - one private call site
    docs: pa.Array,
    positions: np.ndarray,
    deep: list[int],
    table: pa.Table,
    reasons: list[str | None],
    schema: pa.Schema,
) -> tuple[pa.Table, list[str | None]]:
    """Rows json.loads found too deep, read by Arrow alone where it can (positions: in `docs`)."""
    import pyarrow as pa

    rows = table.to_pylist()
    for i, at in zip(deep, positions.tolist(), strict=True):
        alone, _ = _arrow(docs.slice(at, 1), schema)
        if alone is not None:
            rows[i] = alone.to_pylist()[0]
            reasons[i] = None
    return pa.Table.from_pylist(rows, schema=schema), reasons


def printable(docs: pa.Array) -> pa.Array:
    """Documents as valid UTF-8 text for the quarantine: invalid bytes become `\\xNN` escapes."""
    import pyarrow as pa

    docs = _plain(docs)
    bad: list[int] = []
    if len(docs):
        _invalid_utf8(docs, 0, len(docs), bad)
    if not bad:
        return docs
    values = docs.cast(pa.binary()).to_pylist()
    for i in bad:
        values[i] = values[i].decode("utf-8", "backslashreplace")
    return pa.array([v.decode("utf-8") if isinstance(v, bytes) else v for v in values], pa.string())
