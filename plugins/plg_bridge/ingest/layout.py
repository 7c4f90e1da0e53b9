"""Which objects of an export location are data files, and which export interval each covers.

PostHog names a file `{data_interval_start}-{data_interval_end}[-{n}].{parquet|jsonl}[.{codec}]`;
the interval end tells whether a run as of T may use the file (only those that ended by T, so a
rerun reproduces its output after newer exports arrived), and which event times it can hold.

An export run selects rows by `_inserted_at` (backfills by `timestamp`), and PostHog's ingestion
keeps an event's timestamp at most FUTURE_CUTOFF after its ingestion (later ones are clamped to
the ingestion time), so a file of [start, end) holds no event at or after end + FUTURE_CUTOFF.
Events can arrive long after their timestamp (offline clients, mobile apps sending batches,
retries): `late_margin` is how late an event may be and still be found when a file is skipped for
starting after a window; events later than that would be missed by a pruned read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

_STAMP = r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?"
_NAME = re.compile(
    rf"(?P<start>{_STAMP})-(?P<end>{_STAMP})(?:-(?P<part>\d+))?\.(?P<format>parquet|jsonl)(?:\.(?P<codec>\w+))?$"
)


@dataclass(frozen=True)
class ExportFile:
    key: str
    size: int
    start: datetime | None
    end: datetime | None
    part: int | None
    fingerprint: str = ""  # of the object's size and mtime; empty when unknown

    def to_xcom(self) -> dict:
        """What a DAG task needs to find the file again: small, JSON-serialisable."""
        return {"key": self.key, "size": self.size, "fingerprint": self.fingerprint, "label": self.label}

    @classmethod
    def from_xcom(cls, data: dict) -> ExportFile:
        return parse_key(data["key"], data.get("size", 0), data.get("fingerprint", ""))

    @property
    def label(self) -> str:
        """Short name for task maps and logs."""
        return self.key.rsplit("/", 1)[-1]


def _parse_stamp(text: str) -> datetime:
    text = text.replace("Z", "+00:00").replace(" ", "T")
    return datetime.fromisoformat(text)


def parse_key(key: str, size: int = 0, fingerprint: str = "") -> ExportFile:
    match = _NAME.search(key.rsplit("/", 1)[-1])
    if not match:
        return ExportFile(key, size, None, None, None, fingerprint)
    part = match.group("part")
    return ExportFile(
        key,
        size,
        _parse_stamp(match.group("start")),
        _parse_stamp(match.group("end")),
        int(part) if part else None,
        fingerprint,
    )


FUTURE_CUTOFF = timedelta(hours=23)  # PostHog plugin-server: FutureEventHoursCutoffMillis


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def may_hold(file: ExportFile, start: datetime, end: datetime, late_margin: timedelta) -> bool:
    """Whether `file` may hold events with a timestamp in [start, end) (True when its key names no
    interval). False when it ended FUTURE_CUTOFF or more before `start` (exact: no event of it can
    be that far past its ingestion) or starts `late_margin` or more after `end` (events arriving
    later than the margin after their timestamp are the ones a skipped file could still hide)."""
    if file.start is None or file.end is None:
        return True
    if _utc(file.end) + FUTURE_CUTOFF <= _utc(start):
        return False
    return _utc(file.start) - late_margin < _utc(end)


def is_data_file(key: str) -> bool:
    """Parquet or JSON Lines data (any codec extension); manifests and partials are not."""
    name = key.rsplit("/", 1)[-1]
    return (".parquet" in name or ".jsonl" in name) and not name.endswith("_manifest.json")
