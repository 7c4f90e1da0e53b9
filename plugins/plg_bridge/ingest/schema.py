"""The columns of a PostHog `events` export we rely on, and their normalisation.

Columns are read by name, never position; extra columns are ignored. Timestamps are normalised
to UTC microseconds whatever the writer chose (another unit, ISO strings, epoch integers), or
refused with an error naming the file and column.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

REQUIRED = ("uuid", "timestamp", "event", "distinct_id", "properties")
OPTIONAL = ("person_id", "_inserted_at")


class ExportSchemaError(ValueError):
    """A file lacks a column we need, or a column has a type we cannot use."""


def columns_to_read(schema: pa.Schema, source: str, optional: tuple[str, ...] = OPTIONAL) -> list[str]:
    """The required columns plus the `optional` ones present; raises naming what is missing."""
    names = set(schema.names)
    missing = [c for c in REQUIRED if c not in names]
    if missing:
        raise ExportSchemaError(
            f"{source}: missing required column(s) {', '.join(missing)} (found: {', '.join(schema.names)})"
        )
    return list(REQUIRED) + [c for c in optional if c in names]


def _epoch_unit(values: pa.Array) -> str:
    """Guess the unit of epoch integers from their magnitude (PostHog writes s, ms or us)."""
    import pyarrow.compute as pc

    biggest = pc.max(pc.abs(values)).as_py() or 0
    for unit, limit in (("s", 1e11), ("ms", 1e14), ("us", 1e17)):
        if biggest < limit:
            return unit
    return "ns"


def to_utc_micros(values: pa.Array, source: str, column: str) -> pa.Array:
    """Any timestamp representation -> timestamp[us, UTC]."""
    import pyarrow as pa
    import pyarrow.compute as pc

    target = pa.timestamp("us", tz="UTC")
    kind = values.type
    try:
        if pa.types.is_timestamp(kind):
            if kind.tz is None:
                values = pc.assume_timezone(values, "UTC")
            return values.cast(target)
        if pa.types.is_integer(kind):
            unit = _epoch_unit(values)
            return values.cast(pa.int64()).cast(pa.timestamp(unit)).cast(pa.timestamp("us")).cast(target)
        if pa.types.is_string(kind) or pa.types.is_large_string(kind):
            return _parse_text(values, source, column)
    except pa.ArrowInvalid as exc:
        raise ExportSchemaError(f"{source}: column {column} cannot be read as a timestamp: {exc}") from exc
    raise ExportSchemaError(f"{source}: column {column} has type {kind}, expected a timestamp")


def to_string(values: pa.Array) -> pa.Array:
    """Ids can arrive as integers or dictionary-encoded; make them plain strings.

    Binary columns are taken as text without checking their UTF-8 here (properties.printable and
    properties.extract deal with invalid bytes row by row instead of failing the whole batch)."""
    import pyarrow as pa

    if pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    if pa.types.is_binary(values.type):
        return values.view(pa.string())
    if pa.types.is_large_binary(values.type):
        values = values.view(pa.large_string())
    return values if pa.types.is_string(values.type) else values.cast(pa.string())


_ISO = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})$"


def _parse_text(values: pa.Array, source: str, column: str) -> pa.Array:
    """ISO-8601 text (with or without zone, 'T' or space, any fraction) -> timestamp[us, UTC]."""
    import pyarrow as pa
    import pyarrow.compute as pc

    text = pc.replace_substring_regex(values, r"^(\S{10}) ", r"\1T")
    text = pc.replace_substring_regex(text, r"(\.\d{6})\d+", r"\1")  # Arrow parses up to microseconds
    zoned = pc.match_substring_regex(text, r"(Z|[+-]\d{2}:?\d{2})$")
    text = pc.if_else(zoned, text, pc.binary_join_element_wise(text, "+00:00", ""))  # no zone: UTC
    bad = pc.and_(pc.invert(pc.fill_null(pc.match_substring_regex(text, _ISO), True)), pc.is_valid(text))
    if pc.any(bad).as_py():
        first = values.filter(bad)[0].as_py()
        raise ExportSchemaError(f"{source}: column {column} holds unparseable timestamp text {first!r}")
    try:
        return text.cast(pa.timestamp("us", tz="UTC"))
    except pa.ArrowInvalid as exc:
        raise ExportSchemaError(f"{source}: column {column} holds an invalid timestamp: {exc}") from exc
