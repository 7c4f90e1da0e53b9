"""Which data window a run works on.

Scheduled runs and backfills use their data interval end. A manual trigger in Airflow 3 may
have no logical date and so no data interval: it must name its window in the `as_of` param, or
it is refused, because guessing from the wall clock would make reruns irreproducible.
"""

from __future__ import annotations

from datetime import datetime

from plg_bridge.models.pql import as_of_time


class WindowError(ValueError):
    """The run has no usable window."""


def resolve_as_of(data_interval_end: datetime | None, params: dict | None) -> datetime:
    """The run's T: the `as_of` param when given (an override), else the data interval end."""
    override = (params or {}).get("as_of")
    if override:
        try:
            return as_of_time(str(override))
        except ValueError as exc:
            raise WindowError(f"param as_of: {exc}") from None
    if data_interval_end is None:
        raise WindowError(
            "this run has no data interval (manual trigger without a logical date): "
            'trigger it with a logical date, or pass the window as conf {"as_of": "YYYY-MM-DD"}'
        )
    try:
        return as_of_time(data_interval_end)
    except ValueError as exc:
        raise WindowError(f"data interval end: {exc}; plg_reverse_etl works on whole UTC days") from None


def run_prefix(as_of: datetime) -> str:
    """Where a window's outputs live under the work location: one folder per T, so a rerun overwrites."""
    return f"runs/as_of={as_of:%Y-%m-%d}"
