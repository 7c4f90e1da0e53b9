"""Fixed clocks: the instants tests run "as of". Outputs depend on T and the inputs, never on the
wall clock, so tests name their T here instead of calling now()."""

from __future__ import annotations

import datetime as dt

AS_OF = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)  # the default T: window [T-1d, T), weeks before T
DAY = dt.timedelta(days=1)


def ts(text: str) -> dt.datetime:
    """'2026-11-13' or '2026-11-13T05:00' -> aware UTC datetime."""
    value = dt.datetime.fromisoformat(text)
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value
