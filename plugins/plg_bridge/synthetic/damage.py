"""Broken `properties` values, for bad-input tests and benchmarks: truncated or null JSON (malformed),
and values that parse but are not an object (dirty: JSON null, arrays, scalars, empty text)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

# what a dirty row's `properties` holds instead of an object (None: SQL null)
DIRTY_VALUES: list[str | None] = [
    None,
    "null",
    "[]",
    '[{"$group_0":"org_0001"}]',
    "42",
    '"text"',
    "true",
    "",
    " ",
]


def truncate(
    properties: pa.Array, mask: np.ndarray, rows: np.ndarray, cut: np.ndarray, null: np.ndarray
) -> pa.Array:
    """Malformed rows (`mask`): the text cut at `cut` of its length, or null where `null` says so.

    `rows` maps the batch's positions to the slice's rows `cut` and `null` are drawn for, so a
    row and its re-delivered copy break the same way."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not mask.any():
        return properties
    originals = properties.filter(pa.array(mask)).to_pylist()
    replacement = [
        None if null[r] else text[: max(1, int(len(text) * cut[r]))]
        for r, text in zip(rows[mask], originals, strict=True)
    ]
    return pc.replace_with_mask(properties, pa.array(mask), pa.array(replacement, pa.string()))


def dirty(properties: pa.Array, mask: np.ndarray, kinds: np.ndarray) -> pa.Array:
    """Dirty rows (`mask`): DIRTY_VALUES[kinds] instead of their object."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not mask.any():
        return properties
    values = pa.array(DIRTY_VALUES, pa.string()).take(pa.array(kinds[mask]))
    return pc.replace_with_mask(properties, pa.array(mask), values)
