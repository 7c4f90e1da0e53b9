"""The settings of a run plus the two places it works with: the export and the work location.

Tasks, the CLI and tests build one `Workspace` instead of re-deriving locations from settings.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from plg_bridge.config import Settings, load_settings
from plg_bridge.storage import Location, location

if TYPE_CHECKING:
    from pathlib import Path


@dataclass(frozen=True)
class Workspace:
    settings: Settings

    @classmethod
    def load(cls, config: str | Path | None = None) -> Workspace:
        return cls(load_settings(config))

    @cached_property
    def exports(self) -> Location:
        """Where PostHog writes its batch export."""
        return location(self.settings.exports.location, self.settings.exports.endpoint_url)

    @cached_property
    def work(self) -> Location:
        """Partials, run outputs, reports and delivery state."""
        return location(self.settings.work_location, self.settings.exports.endpoint_url)
