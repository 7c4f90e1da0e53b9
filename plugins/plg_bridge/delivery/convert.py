"""Value converters every destination's mapping shares, in one place: what counts as missing, the
scores contract, and frame cells to JSON values (flags, numbers, text, days, unix times).

Missing values are left out of payloads rather than sent blank, so a gap in this week's data never
wipes what a salesperson sees in the CRM. A value that cannot be converted is passed on as text
where the vendor then refuses the row with a clear message (flags), or dropped as missing where
the vendor could not say which value was wrong (numbers in Intercom's custom attributes).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from plg_bridge.models.pql import COLUMNS as SCORE_COLUMNS

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "SCORE_COLUMNS",
    "SCORE_FIELDS",
    "boolean",
    "day",
    "flag",
    "flag_text",
    "integer",
    "missing",
    "number",
    "number_text",
    "real",
    "score_fields",
    "score_rows",
    "text",
    "unix_day",
    "unix_time",
]

_TRUE = frozenset({"true", "t", "yes", "y", "1"})
_FALSE = frozenset({"false", "f", "no", "n", "0"})


def missing(value: Any) -> bool:
    """None, NaN, NaT and pandas NA are missing; list-likes are not."""
    if value is None:
        return True
    try:
        import pandas as pd

        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def score_rows(scores: pd.DataFrame) -> list[dict[str, Any]]:
    """The rows of a scores frame (models/pql.py), refusing a frame that breaks the contract."""
    absent = [c for c in SCORE_COLUMNS if c not in scores.columns]
    if absent:
        raise ValueError(f"scores frame lacks columns: {', '.join(absent)}")
    if scores["org_id"].isna().any():
        raise ValueError(f"{int(scores['org_id'].isna().sum())} scores rows have no org_id")
    return scores[list(SCORE_COLUMNS)].to_dict("records")


# The scores every CRM shows under the same custom-field names (HubSpot properties, Intercom
# company data attributes): field name -> scores column.
SCORE_FIELDS: tuple[tuple[str, str], ...] = (
    ("plg_pql_score", "pql_score"),
    ("plg_is_pql", "is_pql"),
    ("plg_events_this_week", "events_this_week"),
    ("plg_events_last_week", "events_last_week"),
    ("plg_active_creators", "active_creators"),
    ("plg_integrations_connected", "integrations_connected"),
)


def score_fields(
    row: Mapping[str, Any], count: Callable[[Any], Any], yes_no: Callable[[Any], Any]
) -> dict[str, Any]:
    """A scores row as the `plg_*` fields, each count through `count` and `is_pql` through
    `yes_no` (the vendor's value types); missing ones come back as None for the caller to drop."""
    return {name: (yes_no if column == "is_pql" else count)(row[column]) for name, column in SCORE_FIELDS}


def flag(value: Any) -> bool | str | None:
    """A boolean from a bool, number or yes/no text; unrecognised text comes back as it is."""
    if missing(value):
        return None
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        return value
    return bool(value)


def boolean(value: Any) -> bool | None:
    """A JSON boolean, None when missing or not recognisable (Intercom's typed attributes)."""
    parsed = flag(value)
    return parsed if isinstance(parsed, bool) else None


def flag_text(value: Any) -> str | None:
    """A boolean as the texts "true" / "false" (HubSpot bool properties); other text as it is."""
    parsed = flag(value)
    return ("true" if parsed else "false") if isinstance(parsed, bool) else parsed


def real(value: Any) -> float | None:
    """A finite float from a number (not text, not a bool); None otherwise (display code)."""
    if missing(value) or isinstance(value, str | bytes | bool):
        return None
    try:
        as_float = float(value)
    except (TypeError, ValueError):
        return None
    return as_float if math.isfinite(as_float) else None


def number(value: Any) -> Any:
    """A JSON-ready scalar: numpy/pandas scalars to Python, integral floats to int, NaN/inf to None."""
    if missing(value):
        return None
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return int(value) if value.is_integer() and abs(value) < 2**53 else value
    return value


def number_text(value: Any) -> str | None:
    """A number as text (HubSpot properties); integral floats (counts upcast by NA) lose '.0'."""
    if missing(value):
        return None
    try:
        as_float = float(value)
    except (TypeError, ValueError):
        return str(value)  # not ours to fix: the vendor refuses that row with a clear message
    if not math.isfinite(as_float):
        return None
    return str(int(as_float)) if as_float.is_integer() and abs(as_float) < 2**53 else repr(as_float)


def integer(value: Any) -> int | None:
    """A JSON integer (numpy ints and integral floats included); None when missing or not a number."""
    if missing(value) or isinstance(value, str | bytes):
        return None
    try:
        as_float = float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(as_float):
        return None
    return math.floor(as_float + 0.5)


def text(value: Any, limit: int | None = None, *, squash: bool = False, ellipsis: bool = False) -> str | None:
    """Text of a value (mappings and lists as JSON), stripped, None when empty. `squash` folds
    whitespace runs into one space; beyond `limit` the text is cut (ending in "…" with `ellipsis`)."""
    if missing(value):
        return None
    if isinstance(value, Mapping | list):
        value = json.dumps(value, sort_keys=True, default=str)
    out = " ".join(str(value).split()) if squash else str(value).strip()
    if limit is not None and len(out) > limit:
        out = out[: limit - 1] + "…" if ellipsis else out[:limit]
    return out or None


def day(value: Any) -> str | None:
    """ISO date (UTC) of a timestamp, datetime, date or ISO text; None when missing."""
    if missing(value):
        return None
    if isinstance(value, date) and not isinstance(value, datetime):
        return value.isoformat()
    import pandas as pd

    stamp = pd.Timestamp(value)
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC")
    return stamp.date().isoformat()


def unix_time(value: Any) -> int | None:
    """Seconds since the epoch for a timestamp / datetime / date / ISO text (naive = UTC)."""
    if missing(value):
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    import pandas as pd

    try:
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError):
        return None
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize(UTC)
    return int(stamp.timestamp())


def unix_day(value: Any) -> int | None:
    """Midnight UTC of a day, as a unix time (Intercom date attributes)."""
    iso = day(value)
    if iso is None:
        return None
    d = date.fromisoformat(iso)
    return int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp())
