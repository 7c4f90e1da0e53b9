"""Partials are written atomically and a damaged one is named, quarantined and rebuilt (issue 11 item 3).

On a local folder and on S3 (moto server over real HTTP): an empty quality.json and a truncated
Parquet are found by the next run's `pending` (one LIST: sizes against the completion marker),
moved under quarantine/ with the reason naming the object, rolled up again from the export in the
same run, and the rebuilt partial says so (quality `partials_rebuilt`, a quarantine row naming the
damaged object). A partial without its marker (a write that died) is missing, not read.
"""

from __future__ import annotations

import json
import os

import pandas as pd
import pytest

from plg_bridge import pipeline
from plg_bridge.ingest import rollup
from plg_bridge.storage import StorageError, location
from tests.support.events import event, export_name, group_identify, write_export

AS_OF = pd.Timestamp("2026-11-20", tz="UTC").to_pydatetime()


def rows(day: str) -> list[dict]:
    return [
        event("core_feature_used", f"{day}T01:00"),
        event("creation_event", f"{day}T02:00", distinct_id="u2"),
        event("integration_connected", f"{day}T03:00", org="org_b"),
        group_identify("org_a", f"{day}T00:30", name="Acme"),
    ]


@pytest.fixture(params=["local", "s3"])
def places(request, tmp_path):
    """(exports, work) locations: a local folder, or a bucket on the moto server."""
    if request.param == "local":
        folder = tmp_path / "exports"
        for day in ("2026-11-12", "2026-11-13", "2026-11-14"):
            write_export(folder, rows(day), export_name(day, f"{day[:8]}{int(day[8:]) + 1:02d}"))
        return location(str(folder)), location(str(tmp_path / "work"))
    bucket = request.getfixturevalue("s3")
    exports = location(f"s3://{bucket}/exports")
    for day in ("2026-11-12", "2026-11-13", "2026-11-14"):
        path = write_export(tmp_path / day, rows(day), export_name(day, f"{day[:8]}{int(day[8:]) + 1:02d}"))
        exports.write_bytes(path.name, path.read_bytes())
    return exports, location(f"s3://{bucket}/work")


def roll_all(exports, work, settings) -> list:
    files = pipeline.discover(exports, AS_OF)
    todo = pipeline.pending(work, files)
    for f in todo:
        pipeline.rollup_to(exports, work, f, settings)
    return todo


def scores(exports, work, settings) -> pd.DataFrame:
    files = pipeline.discover(exports, AS_OF)
    return pipeline.score_partials(
        [rollup.read(work, pipeline.partial_prefix(f)) for f in files], AS_OF, settings
    )


@pytest.mark.parametrize("damage", ["empty quality.json", "truncated parquet"])
def test_a_damaged_partial_is_named_quarantined_and_rebuilt(places, settings, damage, caplog):
    exports, work = places
    assert len(roll_all(exports, work, settings)) == 3
    before = scores(exports, work, settings)
    files = pipeline.discover(exports, AS_OF)
    victim = pipeline.partial_prefix(files[1])
    if damage == "empty quality.json":
        key = f"{victim}/quality.json"
        work.write_bytes(key, b"")
    else:
        key = f"{victim}/counts.parquet"
        work.write_bytes(key, work.read_bytes(key)[:-25])

    with caplog.at_level("ERROR"):
        rebuilt = roll_all(exports, work, settings)  # the next run, in one go
    assert [f.key for f in rebuilt] == [files[1].key]
    assert work.uri_of(key) in caplog.text  # named in the log
    note = json.loads(work.read_bytes(f"quarantine/{victim}/rebuilt.json"))
    assert work.uri_of(key) in note["reason"]
    assert work.exists(f"quarantine/{key}")  # the damaged object kept for a look, out of the way

    after = scores(exports, work, settings)
    pd.testing.assert_frame_equal(after.scores, before.scores)
    assert after.quality["partials_rebuilt"] == 1
    named = after.quarantine[after.quarantine["reason"] == "damaged_partial"]
    assert named["file"].tolist() == [work.uri_of(victim)] and work.uri_of(key) in named["properties"].iloc[0]
    assert not pipeline.pending(work, files)


def test_damage_that_keeps_the_size_is_caught_on_read(places, settings):
    exports, work = places
    roll_all(exports, work, settings)
    victim = pipeline.partial_prefix(pipeline.discover(exports, AS_OF)[0])
    key = f"{victim}/creators.parquet"
    data = work.read_bytes(key)
    work.write_bytes(key, data[:-4] + b"JUNK")  # same size, the Parquet magic gone
    with pytest.raises(rollup.DamagedPartialError) as caught:
        rollup.read(work, victim)
    assert work.uri_of(key) in str(caught.value) and caught.value.prefix == victim
    assert work.exists(f"quarantine/{key}")
    assert [f.key for f in roll_all(exports, work, settings)] == [pipeline.discover(exports, AS_OF)[0].key]


def test_a_partial_without_its_marker_is_missing(places, settings):
    exports, work = places
    roll_all(exports, work, settings)
    f = pipeline.discover(exports, AS_OF)[2]
    prefix = pipeline.partial_prefix(f)
    marker = next(o.key for o in work.child(prefix).list() if o.key.startswith(rollup.MARKER))
    work.delete(f"{prefix}/{marker}")  # as if the writer died before its last object
    with pytest.raises(rollup.MissingPartialError, match="no completion marker"):
        rollup.read(work, prefix)
    assert [p.key for p in pipeline.pending(work, pipeline.discover(exports, AS_OF))] == [f.key]


def test_a_local_write_is_all_or_nothing(tmp_path, monkeypatch):
    work = location(str(tmp_path))
    work.write_bytes("a/quality.json", b'{"rows_read": 1}')

    def fail(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(StorageError, match=r"quality\.json"):
        work.write_bytes("a/quality.json", b'{"rows_read": 2, "half": ')
    assert work.read_bytes("a/quality.json") == b'{"rows_read": 1}'
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["quality.json"]  # no temporary left
