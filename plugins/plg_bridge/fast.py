"""The fast path: create-once alerts minutes after an export interval lands.

The daily run scores as of a midnight T with everything exported by then. The fast path answers the
same question early: at an instant t (the end of the newest export interval that has landed) it
evaluates the window the *next* daily run will evaluate, T = the first UTC midnight at or after t,
on the export intervals that ended by t. So, as of t:

    this week  = [T - 7d, T)   of which [T - 7d, t) has happened: the events seen so far
    last week  = [T - 14d, T - 7d)
    run's day  = [T - 1d, T)   (usage ceiling, enterprise interest, Aha, PQL crossing vs T - 1d)

Every count can only grow as t moves towards T (more of this week and of the day is seen), so a
signal the fast path raises at t is the signal the daily run raises at T, with the same
`signal_key` (signal:subject:detail:day). Both paths deliver through the same targets and the same
delivery state, so whichever sees a signal first alerts, and the other finds it delivered: one
signal, one alert, under reruns and backfills of either. At t = T (an interval ending at midnight)
the fast window *is* the daily window. The fast path delivers only the create-once alerts
(`FAST_TARGETS`); the CRM fields (scores, contacts, accounts) stay the daily run's.

Late or missing intervals do not block it: a run uses the intervals that ended by t and are there;
one landing late is read by the next run, and its signals dedupe against what was sent.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from plg_bridge.ingest.layout import ExportFile, is_data_file, parse_key

if TYPE_CHECKING:
    from plg_bridge.config import Settings
    from plg_bridge.controls import RunOptions
    from plg_bridge.storage import Location
    from plg_bridge.workspace import Workspace

log = logging.getLogger(__name__)

# Create-once alerts a sales team wants within minutes; the daily run delivers these too.
FAST_TARGETS = ("slack_digest", "hubspot_tasks", "intercom_events", "salesforce_lead_status")


class FastPathError(ValueError):
    """The run has no usable instant (no export interval landed, or a bad `at` param)."""


class FastPathPaused(RuntimeError):
    """`fast.paused` is set: the run evaluates and delivers nothing."""


def _utc(value: datetime | str) -> datetime:
    moment = datetime.fromisoformat(value.replace("Z", "+00:00")) if isinstance(value, str) else value
    if moment.tzinfo is None:
        raise FastPathError(f"instant {value!r} has no time zone; give it in UTC, e.g. 2026-11-20T10:05:00Z")
    return moment.astimezone(UTC)


def window_end(instant: datetime | str) -> datetime:
    """T for an instant: the first UTC midnight at or after it (the next daily run's window end)."""
    moment = _utc(instant)
    midnight = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight if midnight == moment else midnight + timedelta(days=1)


def fast_prefix(instant: datetime | str) -> str:
    """Where a fast run's outputs live: one folder per instant, so a rerun overwrites its own."""
    return f"runs/fast/at={_utc(instant):%Y-%m-%dT%H%M%SZ}"


@dataclass(frozen=True)
class Landing:
    """The newest export data seen: its interval end (the instant a run evaluates) and when it landed."""

    instant: datetime
    landed_at: datetime  # the object's last-modified time: where the latency of an alert starts
    key: str
    files: int

    def to_payload(self) -> dict:
        return {
            "instant": self.instant.isoformat(),
            "landed_at": self.landed_at.isoformat(),
            "key": self.key,
            "files": self.files,
        }


def newest_landing(exports: Location, since: float | None = None, seen: int | None = None) -> Landing | None:
    """What landed after `since` (epoch seconds; None: ever) when `seen` objects were there: None if
    nothing, else the newest export interval end now present (the instant to evaluate) and the newest
    object's landing time. The count catches an object landing in the same second as the last one
    announced (S3's LastModified has whole seconds).

    Only interval-named objects (PostHog's default key names) carry the instant they cover; an
    opaque name tells nothing about its interval, so it moves no instant (the daily run reads it).
    A late object of an earlier interval still makes a landing: its rows are read by that run.
    """
    newest_end: tuple[datetime, str] | None = None
    landed, files = 0.0, 0
    for obj in exports.list():
        if not is_data_file(obj.key):
            continue
        end = parse_key(obj.key).end
        if end is None:
            continue
        files += 1
        landed = max(landed, obj.mtime or 0.0)
        if newest_end is None or end > newest_end[0]:
            newest_end = (end.astimezone(UTC), obj.key)
    if newest_end is None or (since is not None and landed <= since and seen in (None, files)):
        return None
    return Landing(newest_end[0], datetime.fromtimestamp(landed, UTC), newest_end[1], files)


def instant_of(payloads: list[dict], at: str | None = None) -> tuple[datetime, datetime | None]:
    """(instant, landed_at) of a run: the `at` param (on-call override) or the newest landing among
    the triggering events. A rerun of a run sees the same events, hence the same instant."""
    if at:
        try:
            return _utc(at), None
        except ValueError as exc:
            raise FastPathError(f"param at: {exc}") from None
    landings = [p for p in payloads if p and p.get("instant")]
    if not landings:
        raise FastPathError(
            "no export landing in this run's triggering events: trigger it with conf "
            '{"at": "YYYY-MM-DDTHH:MM:SSZ"} (an export interval end)'
        )
    newest = max(landings, key=lambda p: (_utc(p["instant"]), p.get("landed_at") or ""))
    landed = newest.get("landed_at")
    return _utc(newest["instant"]), _utc(landed) if landed else None


def resolve_run(payloads: list[dict], params: dict | None, settings: Settings | None = None) -> dict:
    """The fast run's instant and landing time (XCom), after its switches: `fast.paused`, param `at`."""
    from plg_bridge.config import load_settings
    from plg_bridge.controls import RunOptions

    settings = settings or load_settings()
    if settings.fast.paused:
        raise FastPathPaused("fast.paused is set: this run delivers nothing (the daily run still alerts)")
    RunOptions.from_params(params)  # a bad option fails here, before any work
    instant, landed = instant_of(payloads, (params or {}).get("at"))
    return {"instant": instant.isoformat(), "landed_at": landed.isoformat() if landed else None}


def asset_uri(export_location: str) -> str:
    """The watched asset's URI: the export location itself (a local folder as a file:// URI)."""
    from pathlib import Path

    return export_location if "://" in export_location else Path(export_location).resolve().as_uri()


def files_at(exports: Location, instant: datetime) -> list[ExportFile]:
    """The interval-named export files that ended by the instant (what a run as of t may read)."""
    from plg_bridge.pipeline import discover

    return [f for f in discover(exports, instant) if f.end is not None]


def score_at(ws: Workspace, files: list[ExportFile], instant: datetime) -> dict:
    """Score the next daily window on the files that ended by the instant; only the fast signals are
    kept for delivery. Returns the outputs' URIs and counts (XCom)."""
    from plg_bridge.pipeline import score_from_work, write_outputs

    cfg = ws.settings.fast
    result = score_from_work(ws.work, files, window_end(instant), ws.settings)
    if result.signals is not None:
        kept = result.signals[result.signals["signal"].isin(cfg.signals)].reset_index(drop=True)
        result = dataclasses.replace(result, signals=kept)
    outputs = write_outputs(result, ws.work, fast_prefix(instant))
    signals = 0 if result.signals is None else len(result.signals)
    return {"outputs": outputs, "signals": signals, "window_end": window_end(instant).isoformat()}


def deliver_at(target: str, instant: datetime, options: RunOptions, ws: Workspace | None = None) -> dict:
    """One fast target: the daily engine and state, reading this instant's outputs. Rejected rows do
    not fail a fast run: they wait as dead letters for the next run (see below)."""
    from plg_bridge.delivery.deliver import RejectedRowsError, deliver_run

    if target not in FAST_TARGETS:
        raise FastPathError(f"{target} is not a fast-path target (those are {', '.join(FAST_TARGETS)})")
    try:
        return deliver_run(target, window_end(instant), options, ws, prefix=fast_prefix(instant))
    except RejectedRowsError as exc:
        # Rejected rows are committed as dead letters, which every later run (fast or daily) retries;
        # e.g. a task for a company the daily run has not synced yet. The daily run holds the line on
        # the rejected share; the fast run reports them and lets the other alerts go on.
        log.warning("%s: %s", target, exc)
        return {"target": target, "deferred": str(exc)}


def write_report(
    ws: Workspace,
    instant: datetime,
    landed_at: datetime | None,
    scored: dict,
    deliveries: list[dict],
    *,
    finished_at: datetime,
) -> dict:
    """The fast run's report beside its outputs, with the landing-to-alert latency.

    The latency is a measurement (wall clock at the end of the run minus the object's landing), kept
    in the report only: nothing a run delivers depends on it.
    """
    latency = (finished_at - landed_at).total_seconds() if landed_at else None
    report = {
        "instant": instant.isoformat(),
        "window_end": window_end(instant).isoformat(),
        "landed_at": landed_at.isoformat() if landed_at else None,
        "finished_at": finished_at.isoformat(),
        "latency_seconds": latency,
        "signals": scored.get("signals", 0),
        "deliveries": deliveries,
    }
    ws.work.write_bytes(
        f"{fast_prefix(instant)}/report.json", json.dumps(report, indent=2, default=str).encode()
    )
    log.info(
        "fast run at %s: %s signals, latency %s",
        instant.isoformat(),
        report["signals"],
        f"{latency:.0f}s" if latency is not None else "n/a",
    )
    return report
