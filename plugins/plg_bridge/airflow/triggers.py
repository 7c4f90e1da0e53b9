"""The export watcher: an event trigger in Airflow's triggerer that announces new export data.

`ExportLandedTrigger` lists the export location every `poll_seconds` in the triggerer (an asyncio
loop shared by many triggers, not a worker slot) and yields one event whenever a data object newer
than the last one announced has landed; an `AssetWatcher` turns each event into an asset event, which
schedules `plg_fast_signals`. The event carries the newest export interval end (the instant the run
evaluates) and when that object landed (where alert latency is measured from).

Which landing was announced last is kept in the asset's state store, so a restarted triggerer does not
announce old data again (announcing it twice would be harmless anyway: a run for an instant already
done finds every alert delivered). The listing itself is `plg_bridge.fast.newest_landing`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

WATERMARK = "announced_mtime"
SEEN = "announced_files"


class ExportLandedTrigger(BaseEventTrigger):
    def __init__(self, *, location: str, endpoint_url: str | None = None, poll_seconds: float = 30.0) -> None:
        super().__init__()
        self.location = location
        self.endpoint_url = endpoint_url
        self.poll_seconds = float(poll_seconds)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {"location": self.location, "endpoint_url": self.endpoint_url, "poll_seconds": self.poll_seconds},
        )

    async def _watermark(self) -> tuple[float | None, int | None]:
        if self.asset_state_store is None:
            return None, None
        mtime = await self.asset_state_store.aget(WATERMARK)
        files = await self.asset_state_store.aget(SEEN)
        return (float(mtime) if mtime is not None else None), (int(files) if files is not None else None)

    async def _remember(self, mtime: float, files: int) -> None:
        if self.asset_state_store is not None:
            await self.asset_state_store.aset(WATERMARK, mtime)
            await self.asset_state_store.aset(SEEN, files)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from plg_bridge.fast import newest_landing
        from plg_bridge.storage import location

        exports = location(self.location, self.endpoint_url)
        since, seen = await self._watermark()
        while True:
            try:
                landing = await asyncio.to_thread(newest_landing, exports, since, seen)
            except Exception as exc:  # a storage hiccup must not end the watch: log, try again
                self.log.warning("listing %s failed: %s", self.location, exc)
                landing = None
            if landing is not None:
                since, seen = landing.landed_at.timestamp(), landing.files
                await self._remember(since, seen)
                yield TriggerEvent(landing.to_payload())
            await asyncio.sleep(self.poll_seconds)
