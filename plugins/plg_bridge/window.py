"""Which data window a run works on.

`@daily` is a cron *trigger* timetable in Airflow 3: a scheduled run's logical date is the
midnight it fires at, which is the window end T. Backfills and `airflow dags trigger -l DATE`
carry that date too, while their data interval is derived from the trigger time (the wall
clock), so the logical date is what names the window. A manual trigger may have no logical date:
it must name its window in the `as_of` param, or it is refused, because guessing from the wall
clock would make reruns irreproducible.
"""

from __future__ import annotations

from datetime import datetime

from plg_bridge.models.pql import as_of_time


class WindowError(ValueError):
    """The run has no usable window."""


def run_date(context: dict) -> datetime | None:
    """The date that names a run's window: its logical date, else its data interval end."""
    return context.get("logical_date") or context.get("data_interval_end")


def resolve_as_of(data_interval_end: datetime | None, params: dict | None) -> datetime:
    """The run's T: the `as_of` param when given (an override), else the run's date (run_date)."""
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
