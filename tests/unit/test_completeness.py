"""Which export intervals a run needs, how PostHog's key templates render, and what is missing."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import pytest

from plg_bridge.ingest.completeness import check, expected_intervals, interval_prefix
from plg_bridge.storage import location
from tests.support.clocks import AS_OF as T
from tests.support.events import event, write_export


def iso(h: int) -> str:
    return (T - dt.timedelta(hours=h)).isoformat()


@pytest.mark.parametrize(
    ("interval", "hours", "count", "first_start"),
    [
        ("day", 24, 1, "2026-11-19T00:00:00+00:00"),
        ("hour", 24, 24, "2026-11-19T00:00:00+00:00"),
        ("15min", 1, 4, "2026-11-19T23:00:00+00:00"),
        ("5min", 1, 12, "2026-11-19T23:00:00+00:00"),
        ("week", 24 * 7, 1, "2026-11-09T00:00:00+00:00"),
    ],
)
def test_expected_intervals(interval, hours, count, first_start):
    got = expected_intervals(T, dt.timedelta(hours=hours), interval)
    assert len(got) == count
    assert got[0][0].isoformat() == first_start
    assert all(end - start == got[0][1] - got[0][0] for start, end in got)


def test_posthog_key_template_renders_from_the_interval_end():
    start, end = T - dt.timedelta(hours=1), T
    assert (
        interval_prefix("{table}/{year}/{month}/{day}/{hour}", start, end, "events") == "events/2026/11/20/00"
    )
    assert interval_prefix("x/{data_interval_end}", start, end, "events") == "x/2026-11-20T00:00:00+00:00"
    with pytest.raises(ValueError, match="invalid export key template"):
        interval_prefix("{nope}", start, end, "events")


def test_missing_daily_file_is_named(tmp_path, settings):
    result = check(location(str(tmp_path)), T, settings.exports)
    assert result.missing == ["2026-11-19T00:00:00+00:00-2026-11-20T00:00:00+00:00.*"]
    write_export(tmp_path, [], name="2026-11-19T00:00:00+00:00-2026-11-20T00:00:00+00:00.parquet.zst")
    assert check(location(str(tmp_path)), T, settings.exports).complete  # empty interval: complete


def test_hourly_with_template_and_split_files_with_manifest(tmp_path, settings):
    cfg = dataclasses.replace(
        settings.exports,
        interval="hour",
        check_hours=2,
        key_template="{table}/{year}/{month}/{day}",
        manifests=True,
    )
    folder = tmp_path / "events" / "2026" / "11" / "20"
    stem = f"{iso(1)}-{iso(0)}"
    write_export(folder, [event("core_feature_used", "2026-11-19T23:30")], name=f"{stem}-0.parquet.zst")
    manifest = {
        "files": [f"events/2026/11/20/{stem}-0.parquet.zst", f"events/2026/11/20/{stem}-1.parquet.zst"]
    }
    (folder / f"{stem}_manifest.json").write_text(json.dumps(manifest))
    result = check(location(str(tmp_path)), T, cfg)
    assert result.expected == 2
    assert result.missing == [
        f"events/2026/11/19/{iso(2)}-{iso(1)}_manifest.json",
        f"events/2026/11/20/{stem}-1.parquet.zst",
    ]


def test_ready_waits_then_fails_naming_the_missing_keys(tmp_path, settings):
    from plg_bridge.ingest.completeness import IncompleteExportError, ready

    loc = location(str(tmp_path))
    assert ready(loc, T, settings.exports, now=T + dt.timedelta(minutes=10)) is False
    with pytest.raises(
        IncompleteExportError, match=r"missing 2026-11-19T00:00:00\+00:00-2026-11-20T00:00:00\+00:00"
    ):
        ready(loc, T, settings.exports, now=T + dt.timedelta(minutes=settings.exports.wait_minutes))
    write_export(tmp_path, [], name="2026-11-19T00:00:00+00:00-2026-11-20T00:00:00+00:00.parquet.zst")
    assert ready(loc, T, settings.exports, now=T + dt.timedelta(days=30)) is True
