"""Pull a few keys out of PostHog's `properties` JSON text without a Python loop per row.

The batch's documents are laid end to end as newline-delimited JSON and handed to Arrow's C++
JSON reader with an explicit schema of just the wanted top-level keys: exact JSON semantics
(escapes, `\\u` sequences, nested objects that reuse a key name, any key order) at C++ speed.
Only when that block fails (a malformed document, a value of an unexpected type) does the batch
fall back to `json.loads` row by row, which also tells exactly which rows are bad.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

NULL = "null_properties"
MALFORMED = "malformed_properties"


def _joined(docs: pa.Array) -> pa.Buffer:
    """The documents laid end to end, one per line."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    lines = pc.binary_join_element_wise(docs, "\n", "").cast(pa.large_string())
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int64)[lines.offset : lines.offset + len(lines) + 1]
    return lines.buffers()[2][int(offsets[0]) : int(offsets[-1])]


def parse_block(docs: pa.Array, schema: pa.Schema) -> pa.Table | None:
    """All documents through Arrow's C++ JSON reader at once, or None when any of them fails."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.json as pj

    data = _joined(docs)
    raw = np.frombuffer(data, dtype=np.uint8)
    if np.count_nonzero(raw == 10) != len(docs) or np.count_nonzero(raw == 13):
        # A raw line break can only be whitespace between JSON tokens: make it a space so one
        # document stays one line (rare: PostHog writes compact JSON).
        data = _joined(pc.replace_substring_regex(docs, "[\r\n]", " "))
    try:
        table = pj.read_json(
            pa.BufferReader(data),
            read_options=pj.ReadOptions(block_size=max(len(data) + 1, 1 << 20), use_threads=False),
            parse_options=pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore"),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    return table if table.num_rows == len(docs) else None


def _as_text(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value) if isinstance(value, dict | list) else str(value)


def _slow(docs: list[str | None], schema: pa.Schema) -> tuple[dict[str, list], list[str | None]]:
    """Row-by-row parse; returns columns (string leaves) and a reason per row (None = fine)."""
    import pyarrow as pa

    out: dict[str, list] = {f.name: [] for f in schema}
    reasons: list[str | None] = []
    for doc in docs:
        try:
            obj = json.loads(doc) if doc else None
        except ValueError:
            obj = None
        ok = isinstance(obj, dict)
        reasons.append(None if ok else (NULL if doc in (None, "", "null") else MALFORMED))
        obj = obj if ok else {}
        for f in schema:
            value = obj.get(f.name)
            if pa.types.is_struct(f.type):
                value = value if isinstance(value, dict) else {}
                out[f.name].append({sub.name: _as_text(value.get(sub.name)) for sub in f.type})
            else:
                out[f.name].append(_as_text(value))
    return out, reasons


def extract(docs: pa.Array, schema: pa.Schema) -> tuple[pa.Table, np.ndarray]:
    """Columns for `schema`'s keys (strings, or structs of strings) and a per-row problem code.

    The code array holds None for good rows, else NULL or MALFORMED; bad rows get null values.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    n = len(docs)
    reasons = np.full(n, None, dtype=object)
    missing = pc.or_(pc.is_null(docs), pc.equal(pc.utf8_length(pc.fill_null(docs, "")), 0))
    missing_np = missing.to_numpy(zero_copy_only=False)
    reasons[missing_np] = NULL
    table = parse_block(pc.if_else(missing, "{}", docs), schema) if n else schema.empty_table()
    if table is None:
        columns, slow_reasons = _slow(docs.to_pylist(), schema)
        table = pa.table({f.name: pa.array(columns[f.name], type=f.type) for f in schema})
        reasons = np.array(slow_reasons, dtype=object)
    if missing_np.any():
        keep = pa.array(~np.asarray(reasons != None))  # noqa: E711 - elementwise on an object array
        table = pa.table(
            {
                name: pc.if_else(keep, col, pa.nulls(n, col.type))
                for name, col in zip(table.column_names, table.columns, strict=True)
            }
        )
    return table, reasons
