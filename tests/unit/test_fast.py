"""The fast path's window, its instant, and the export watcher (hand-built cases)."""

from __future__ import annotations

import asyncio
import datetime as dt
import os

import pytest

from plg_bridge.fast import (
    FastPathError,
    FastPathPaused,
    Landing,
    fast_prefix,
    instant_of,
    newest_landing,
    resolve_run,
    window_end,
)
from plg_bridge.storage import location

UTC = dt.UTC


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("instant", "expected"),
    [
        ("2026-11-20T10:05:00", "2026-11-21T00:00:00"),  # mid-day: the next daily run's T
        ("2026-11-20T23:55:00", "2026-11-21T00:00:00"),
        ("2026-11-20T00:00:00.000001", "2026-11-21T00:00:00"),  # just after midnight: next one
        ("2026-11-21T00:00:00", "2026-11-21T00:00:00"),  # at midnight: the daily window itself
    ],
)
def test_window_end_is_the_next_daily_window(instant, expected):
    assert window_end(at(instant)) == at(expected)


def test_window_end_converts_other_zones_and_refuses_naive_times():
    # 01:30 at +02:00 is 23:30 UTC the day before: T is that day's following midnight
    assert window_end(dt.datetime.fromisoformat("2026-11-21T01:30:00+02:00")) == at("2026-11-21T00:00:00")
    with pytest.raises(FastPathError, match="no time zone"):
        window_end(dt.datetime(2026, 11, 20, 10, 5))


def test_prefix_names_the_instant_to_the_second():
    assert fast_prefix(at("2026-11-20T10:05:00")) == "runs/fast/at=2026-11-20T100500Z"
    assert fast_prefix("2026-11-20T10:05:07Z") == "runs/fast/at=2026-11-20T100507Z"


def _land(folder, name: str, mtime: float) -> None:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    os.utime(path, (mtime, mtime))


def test_newest_landing_takes_the_newest_interval_and_the_newest_landing(tmp_path):
    exports = location(str(tmp_path))
    assert newest_landing(exports) is None  # nothing landed yet
    base = at("2026-11-20T10:00:00").timestamp()
    _land(tmp_path, "events/2026-11-20T10:00:00Z-2026-11-20T10:05:00Z.parquet", base + 400)
    _land(tmp_path, "events/2026-11-20T10:05:00Z-2026-11-20T10:10:00Z.parquet", base + 700)
    _land(tmp_path, "events/opaque-0001.parquet", base + 900)  # no interval: moves no instant
    _land(tmp_path, "events/2026-11-20T10:05:00Z-2026-11-20T10:10:00Z_manifest.json", base + 950)
    got = newest_landing(exports)
    assert got == Landing(at("2026-11-20T10:10:00"), dt.datetime.fromtimestamp(base + 700, UTC), got.key, 2)
    assert got.key.endswith("2026-11-20T10:10:00Z.parquet")
    # nothing new since that landing: no event
    assert newest_landing(exports, since=base + 700) is None
    # a late part of an earlier interval lands: a new landing, same instant (its rows are read then)
    _land(tmp_path, "events/2026-11-20T10:00:00Z-2026-11-20T10:05:00Z-1.parquet", base + 1000)
    late = newest_landing(exports, since=base + 700)
    assert late.instant == at("2026-11-20T10:10:00")
    assert late.landed_at.timestamp() == base + 1000
    assert late.files == 3
    # another object lands within the same second as the last announced one (LastModified has
    # whole seconds): the object count still tells
    assert newest_landing(exports, since=base + 1000, seen=3) is None
    _land(tmp_path, "events/2026-11-20T10:10:00Z-2026-11-20T10:15:00Z.parquet", base + 1000)
    same_second = newest_landing(exports, since=base + 1000, seen=3)
    assert same_second.instant == at("2026-11-20T10:15:00") and same_second.files == 4


def test_instant_of_takes_the_newest_event_or_the_on_call_override():
    events = [
        {"instant": "2026-11-20T10:05:00+00:00", "landed_at": "2026-11-20T10:06:10+00:00"},
        {"instant": "2026-11-20T10:10:00+00:00", "landed_at": "2026-11-20T10:11:30+00:00"},
        {},  # an event of another kind carries no instant
    ]
    assert instant_of(events) == (at("2026-11-20T10:10:00"), at("2026-11-20T10:11:30"))
    assert instant_of(events, "2026-11-19T23:00:00Z") == (at("2026-11-19T23:00:00"), None)
    with pytest.raises(FastPathError, match="no export landing"):
        instant_of([{}])
    with pytest.raises(FastPathError, match="param at"):
        instant_of(events, "yesterday")


def test_resolve_run_honours_the_pause_switch_and_checks_options():
    from plg_bridge.config import load_settings

    events = [{"instant": "2026-11-20T10:10:00+00:00", "landed_at": "2026-11-20T10:11:00+00:00"}]
    paused = load_settings(env={"PLG_BRIDGE__FAST__PAUSED": "true"})
    with pytest.raises(FastPathPaused):
        resolve_run(events, {}, paused)
    running = load_settings(env={})
    assert resolve_run(events, {"dry_run": False}, running) == {
        "instant": "2026-11-20T10:10:00+00:00",
        "landed_at": "2026-11-20T10:11:00+00:00",
    }
    from plg_bridge.controls import ControlError

    with pytest.raises(ControlError):
        resolve_run(events, {"dry_run": "yes"}, running)


def test_the_watcher_announces_each_landing_once(tmp_path):
    from plg_bridge.airflow.triggers import ExportLandedTrigger

    class Store:  # the asset state store the triggerer injects
        def __init__(self):
            self.values = {}

        async def aget(self, key, default=None):
            return self.values.get(key, default)

        async def aset(self, key, value):
            self.values[key] = value

    base = at("2026-11-20T10:00:00").timestamp()
    _land(tmp_path, "2026-11-20T10:00:00Z-2026-11-20T10:05:00Z.parquet", base + 400)
    trigger = ExportLandedTrigger(location=str(tmp_path), poll_seconds=0.05)
    trigger.asset_state_store = Store()
    classpath, kwargs = trigger.serialize()
    assert classpath == "plg_bridge.airflow.triggers.ExportLandedTrigger"
    assert kwargs == {"location": str(tmp_path), "endpoint_url": None, "poll_seconds": 0.05}

    async def watch():
        events = trigger.run()
        first = await asyncio.wait_for(anext(events), 5)
        pending = asyncio.ensure_future(anext(events))
        await asyncio.sleep(0.3)  # several polls, nothing new: no event
        quiet = not pending.done()
        _land(tmp_path, "2026-11-20T10:05:00Z-2026-11-20T10:10:00Z.parquet", base + 700)
        second = await asyncio.wait_for(pending, 5)
        await events.aclose()
        return first, quiet, second

    first, quiet, second = asyncio.run(watch())
    assert first.payload["instant"] == "2026-11-20T10:05:00+00:00"
    assert quiet
    assert second.payload["instant"] == "2026-11-20T10:10:00+00:00"
    assert trigger.asset_state_store.values["announced_mtime"] == base + 700

    # a restarted triggerer remembers what it announced: no event for old data
    again = ExportLandedTrigger(location=str(tmp_path), poll_seconds=0.05)
    again.asset_state_store = trigger.asset_state_store

    async def restarted():
        events = again.run()
        try:
            await asyncio.wait_for(anext(events), 0.3)
        except TimeoutError:
            return None
        finally:
            await events.aclose()
        return "announced again"

    assert asyncio.run(restarted()) is None
