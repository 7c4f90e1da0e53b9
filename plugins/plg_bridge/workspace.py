"""The settings of a run plus the two places it works with: the export and the work location.

Tasks, the CLI and tests build one `Workspace` instead of re-deriving locations from settings.
A workspace refuses a work location that would split or lose the delivery state (see
`check_work_location`), so no run can start on one.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import PurePath
from typing import TYPE_CHECKING

from plg_bridge.config import ConfigError, Settings, env_name, load_settings
from plg_bridge.storage import Location, location

if TYPE_CHECKING:
    from pathlib import Path

DEMO_FOLDER = ".demo"  # make demo's scratch folder: deleted and rebuilt by every `make demo`


def check_work_location(settings: Settings) -> None:
    """Refuse a relative or demo work location unless `demo` is set (make demo, tests).

    The delivery state lives under the work location. A relative folder resolves against the
    current directory, so the same sync started from two directories keeps two states and sends
    every create-once record (HubSpot tasks, Slack messages) again; a folder under `.demo/` is
    wiped by the next `make demo`. Production needs s3://bucket/prefix or an absolute folder.
    """
    where = settings.work_location
    if settings.demo or where.startswith("s3://"):
        return
    path = PurePath(where)
    if path.is_absolute() and DEMO_FOLDER not in path.parts:
        return
    why = (
        "is a relative path: each working directory would keep its own delivery state and resend "
        "create-once records"
        if not path.is_absolute()
        else f"is under {DEMO_FOLDER}/, the demo's scratch folder (make demo deletes it)"
    )
    raise ConfigError(
        f"invalid setting work_location: {where!r} {why}. Set s3://bucket/prefix or an absolute folder "
        f"(work_location in the YAML file or {env_name('work_location')}); only the demo and tests set "
        f"demo: true ({env_name('demo')}) to allow it ({settings.source('work_location')})",
        "work_location",
    )


@dataclass(frozen=True)
class Workspace:
    settings: Settings

    def __post_init__(self) -> None:
        check_work_location(self.settings)

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
