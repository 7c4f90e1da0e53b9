"""Is the export complete for a run as of T?

PostHog exports one interval at a time, 15-30 minutes after it ends, under a prefix rendered
from a `str.format` template with the interval end's {year} {month} {day} {hour} {minute}
{second}, {data_interval_start} {data_interval_end} and {table}. An interval is complete when
its manifest exists and every file it lists is present (exports with a max file size), or
otherwise when a data file of that interval exists. The check covers the intervals that ended
in (T - check_hours, T]: older ones were checked by earlier runs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from plg_bridge.ingest.layout import is_data_file, parse_key

if TYPE_CHECKING:
    from plg_bridge.config import ExportSettings
    from plg_bridge.storage import Location

INTERVALS = {
    "5min": timedelta(minutes=5),
    "15min": timedelta(minutes=15),
    "hour": timedelta(hours=1),
    "day": timedelta(days=1),
    "week": timedelta(weeks=1),
}


@dataclass(frozen=True)
class Completeness:
    expected: int
    missing: list[str]  # keys (or key patterns) that are not there yet

    @property
    def complete(self) -> bool:
        return not self.missing


def expected_intervals(as_of: datetime, check: timedelta, interval: str) -> list[tuple[datetime, datetime]]:
    """Export intervals ending in (as_of - check, as_of], oldest first (aligned to the epoch, as PostHog does)."""
    step = INTERVALS[interval]
    epoch = datetime(1970, 1, 5, tzinfo=as_of.tzinfo)  # a Monday: weekly intervals start on Mondays
    end = as_of - (as_of - epoch) % step
    out = []
    while end > as_of - check:
        out.append((end - step, end))
        end -= step
    return list(reversed(out))


def interval_prefix(template: str, start: datetime, end: datetime, table: str) -> str:
    """Render PostHog's key prefix template for one interval."""
    if not template:
        return ""
    try:
        return template.format(
            year=f"{end:%Y}",
            month=f"{end:%m}",
            day=f"{end:%d}",
            hour=f"{end:%H}",
            minute=f"{end:%M}",
            second=f"{end:%S}",
            data_interval_start=start.isoformat(),
            data_interval_end=end.isoformat(),
            table=table,
        ).strip("/")
    except (KeyError, IndexError, ValueError) as exc:
        raise ValueError(f"invalid export key template {template!r}: {exc}") from None


def check(location: Location, as_of: datetime, settings: ExportSettings) -> Completeness:
    """Which export intervals a run as of T still lacks (by key)."""
    intervals = expected_intervals(as_of, timedelta(hours=settings.check_hours), settings.interval)
    objects = location.list()
    keys = {o.key for o in objects}
    present = {(f.start, f.end) for f in (parse_key(o.key) for o in objects if is_data_file(o.key))}
    missing: list[str] = []
    for start, end in intervals:
        prefix = interval_prefix(settings.key_template, start, end, settings.table)
        stem = f"{prefix}/{start.isoformat()}-{end.isoformat()}".lstrip("/")
        if settings.manifests:
            manifest = f"{stem}_manifest.json"
            if manifest not in keys:
                missing.append(manifest)
                continue
            listed = json.loads(location.read_bytes(manifest)).get("files", [])
            missing += [k for k in (_relative(location, key) for key in listed) if k not in keys]
        elif (start, end) not in present:
            missing.append(f"{stem}.*")
    return Completeness(len(intervals), missing)


def _relative(location: Location, key: str) -> str:
    """Manifest entries are bucket keys; compare them relative to the location."""
    root_prefix = location.root.split("/", 1)[1] + "/" if location.is_s3 and "/" in location.root else ""
    return key[len(root_prefix) :] if root_prefix and key.startswith(root_prefix) else key


class IncompleteExportError(RuntimeError):
    """The export is still incomplete after the configured wait; names the missing keys."""


def ready(location: Location, as_of: datetime, settings: ExportSettings, now: datetime) -> bool:
    """One sensor poke: True when complete, False to wait, IncompleteExportError past the deadline.

    The deadline is T + wait_minutes, so a backfill of an old window with a gap fails at once
    instead of waiting for files that will never come.
    """
    import logging

    result = check(location, as_of, settings)
    if result.complete:
        return True
    shown = ", ".join(result.missing[:10]) + (
        f" and {len(result.missing) - 10} more" if len(result.missing) > 10 else ""
    )
    deadline = as_of + timedelta(minutes=settings.wait_minutes)
    if now >= deadline:
        raise IncompleteExportError(
            f"export under {location.uri} is incomplete for the run as of {as_of:%Y-%m-%d %H:%M}Z after waiting "
            f"until {deadline:%Y-%m-%d %H:%M}Z: missing {shown}"
        )
    logging.getLogger(__name__).info(
        "waiting for %d of %d export intervals: %s", len(result.missing), result.expected, shown
    )
    return False
