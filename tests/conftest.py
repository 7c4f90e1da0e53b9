"""Shared fixtures: settings without any deployment overrides, and the score of hand-built rows."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from plg_bridge.config import Settings, load_settings
from plg_bridge.pipeline import score_export
from plg_bridge.storage import location
from tests.builders import write_export

AS_OF = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)


@pytest.fixture
def settings() -> Settings:
    return load_settings(env={})


@pytest.fixture
def score_rows(tmp_path: Path, settings: Settings):
    """Write rows as one export file and score them as of AS_OF (or `as_of`)."""

    def run(rows: list[dict], as_of: dt.datetime = AS_OF, cfg: Settings | None = None):
        folder = tmp_path / "exports"
        write_export(folder, rows)
        return score_export(location(str(folder)), as_of, cfg or settings)

    return run
