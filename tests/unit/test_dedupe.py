"""One count per event across files (issue 9 item 1).

PostHog exports at least once: a re-delivered event keeps its uuid, gets a later `_inserted_at` and
lands in a later interval's file. Every model counts a uuid once, keeping the copy with the earliest
`_inserted_at` (ties: earliest export interval, then file order). Checked against the DuckDB twin
(include/sql/duckdb/pql.sql, deduplicating over all files) on generated exports with re-deliveries
hours and days apart across interval boundaries, through the single-process path, the mapped path
(partials written, read back and merged in any order), the DAG's kept history, and a re-export.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from plg_bridge import pipeline
from plg_bridge.ingest import history, rollup
from plg_bridge.ingest.layout import parse_key
from plg_bridge.models import pql
from plg_bridge.storage import location
from plg_bridge.synthetic.generate import generate
from tests.integration.test_pql_oracle import assert_same_table, duckdb_scores
from tests.support.clocks import AS_OF
from tests.support.events import event, export_name, partial_of, write_export

END = dt.date(2026, 11, 20)
PQL_EVENTS = ("core_feature_used", "creation_event", "integration_connected")
DAY = pd.Timedelta(days=1)


def redeliver(folder: Path, share: float, seed: int = 3) -> int:
    """Re-deliver `share` of the rows into later daily files: same row, `_inserted_at` later by
    a few hours (often across the day boundary) to three days; returns the copies added."""
    files = sorted(p for p in folder.iterdir() if ".parquet" in p.name)
    table = pa.concat_tables(pq.read_table(p) for p in files)
    rng = np.random.default_rng(seed)
    picked = np.flatnonzero(rng.random(table.num_rows) < share)
    copies = table.take(pa.array(picked))
    delay = rng.choice([6, 20, 30, 50, 75], size=len(picked)) * 3_600_000_000
    inserted = pc.cast(copies.column("_inserted_at"), pa.int64()).to_numpy() + delay
    index = copies.schema.get_field_index("_inserted_at")
    copies = copies.set_column(
        index, "_inserted_at", pa.array(inserted, pa.int64()).cast(copies.schema.field(index).type)
    )
    everything = pa.concat_tables([table, copies])
    inserted_at = everything.column("_inserted_at").to_pandas()
    added = 0
    for path in files:
        f = parse_key(path.name)
        mask = (inserted_at >= pd.Timestamp(f.start)) & (inserted_at < pd.Timestamp(f.end))
        part = everything.filter(pa.array(mask.to_numpy()))
        pq.write_table(part, path, compression="zstd", row_group_size=20_000)
        added += part.num_rows
    return added - table.num_rows


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> tuple[Path, int]:
    folder = tmp_path_factory.mktemp("dedupe") / "exports"
    generate(str(folder), 60_000, END, days=21, malformed_fraction=0.005)
    return folder, redeliver(folder, 0.02)


def duckdb_duplicates(folder: Path) -> int:
    """PQL-event copies beyond the first per uuid, among rows whose properties are an object."""
    files = sorted(str(p) for p in folder.iterdir() if ".parquet" in p.name)
    return (
        duckdb.connect()
        .execute(
            """SELECT count(*) - count(DISTINCT uuid) FROM read_parquet(?)
           WHERE event IN ? AND json_valid(properties) AND json_type(properties) = 'OBJECT'""",
            [files, list(PQL_EVENTS)],
        )
        .fetchone()[0]
    )


def test_scores_count_each_redelivered_event_once(exports, settings):
    folder, copies = exports
    assert copies > 500
    result = pipeline.score_export(location(str(folder)), AS_OF, settings, prune=False)  # every copy read
    theirs = duckdb_scores(folder, AS_OF)
    assert_same_table(result.scores, theirs)
    assert_same_table(pipeline.score_export(location(str(folder)), AS_OF, settings).scores, theirs)
    q = result.quality
    assert q["duplicates_across_files"] > 0.5 * copies * len(PQL_EVENTS) / 20  # PQL events are a share
    assert q["duplicates"] + q["duplicates_across_files"] == duckdb_duplicates(folder)


def test_a_week_earlier_too(exports, settings):
    folder, _ = exports
    as_of = AS_OF - dt.timedelta(days=7)
    result = pipeline.score_export(location(str(folder)), as_of, settings)
    assert_same_table(result.scores, duckdb_scores(folder, as_of))


def test_mapped_partials_in_any_order_equal_the_single_process(exports, settings, tmp_path):
    folder, _ = exports
    loc, work = location(str(folder)), location(str(tmp_path / "work"))
    files = pipeline.discover(loc)
    for f in files:
        rollup.write(rollup.rollup_file(loc, f.key, settings, people=False), work, pipeline.partial_prefix(f))
    stored = [rollup.read(work, pipeline.partial_prefix(f)) for f in files]
    single = pipeline.score_export(loc, AS_OF, settings, prune=False)  # the same reads, the same counters
    for order in (stored, stored[::-1], stored[1::2] + stored[::2]):
        mapped = pipeline.score_partials(order, AS_OF, settings)
        pd.testing.assert_frame_equal(mapped.scores, single.scores)
        assert mapped.quality == single.quality
    # merging merged partials (the kept history) gives the same as merging all at once
    halves = rollup.merge([rollup.merge(stored[:7]), rollup.merge(stored[7:])])
    pd.testing.assert_frame_equal(pipeline.score_merged(halves, AS_OF, settings).scores, single.scores)


def test_dag_path_and_a_reexport_match_duckdb(exports, settings, tmp_path):
    """The DAG's path (pending -> rollup_to -> kept history) after a re-export that adds
    re-delivered copies to one interval: its partial is replaced and the scores follow."""
    import shutil

    folder = tmp_path / "exports"
    shutil.copytree(exports[0], folder)
    loc, work = location(str(folder)), location(str(tmp_path / "work"))

    def run() -> pd.DataFrame:
        files = pipeline.discover(loc, AS_OF)
        for f in pipeline.pending(work, files):
            pipeline.rollup_to(loc, work, f, settings)
        assert not pipeline.pending(work, files)
        folded = history.fold(work, files, AS_OF, settings)  # the DAG's merge (kept history)
        folded.save()
        return pql.score(folded.partial, AS_OF, settings.pql)

    assert_same_table(run(), duckdb_scores(folder, AS_OF))
    # re-export the interval of 2026-11-15 with extra copies of rows first delivered on 2026-11-12
    name = export_name("2026-11-15", "2026-11-16")
    earlier = pq.read_table(folder / export_name("2026-11-12", "2026-11-13"))
    scoring = earlier.filter(pc.is_in(earlier.column("event"), pa.array(list(PQL_EVENTS))))
    extra = scoring.slice(0, 300)
    moved = pa.array(
        pc.cast(extra.column("_inserted_at"), pa.int64()).to_numpy() + 3 * 86_400_000_000, pa.int64()
    ).cast(extra.schema.field("_inserted_at").type)
    extra = extra.set_column(extra.schema.get_field_index("_inserted_at"), "_inserted_at", moved)
    pq.write_table(pa.concat_tables([pq.read_table(folder / name), extra]), folder / name, compression="zstd")
    assert_same_table(run(), duckdb_scores(folder, AS_OF))


def test_the_earliest_copy_is_the_one_kept(tmp_path, settings):
    """Copies differ on purpose (organization) so the kept one shows: earliest _inserted_at wins even
    from a later file; equal _inserted_at: the earlier export interval; same file: the first row."""
    uid = "11111111-1111-1111-1111-111111111111"

    def copy(org: str, inserted: str, **kw) -> dict:
        row = event("core_feature_used", "2026-11-10T05:00", org, uuid=uid, **kw)
        row["_inserted_at"] = pd.Timestamp(inserted, tz="UTC").to_pydatetime()
        return row

    loc = location(str(tmp_path))
    a = write_export(
        tmp_path, [copy("org_late", "2026-11-11T02:00")], export_name("2026-11-11", "2026-11-12")
    )
    b = write_export(
        tmp_path, [copy("org_early", "2026-11-10T06:00")], export_name("2026-11-12", "2026-11-13")
    )
    parts = [rollup.rollup_file(loc, p.name, settings, people=False) for p in (a, b)]
    for order in (parts, parts[::-1]):
        merged = rollup.merge(order)
        assert merged.counts[["org_id", "n"]].values.tolist() == [["org_early", 1]]
        assert merged.quality["duplicates_across_files"] == 1 and merged.quality["rows_used"] == 1

    tie = "2026-11-10T06:00"
    c = write_export(tmp_path / "t", [copy("org_second", tie)], export_name("2026-11-12", "2026-11-13"))
    d = write_export(tmp_path / "t", [copy("org_first", tie)], export_name("2026-11-11", "2026-11-12"))
    loc_t = location(str(tmp_path / "t"))
    parts = [rollup.rollup_file(loc_t, p.name, settings, people=False) for p in (c, d)]
    assert rollup.merge(parts).counts["org_id"].tolist() == ["org_first"]

    same = write_export(
        tmp_path / "s", [copy("org_row0", tie), copy("org_row1", tie), copy("org_x", "2026-11-10T05:30")]
    )
    one = rollup.rollup_file(location(str(tmp_path / "s")), same.name, settings, people=False)
    assert one.counts["org_id"].tolist() == ["org_x"] and one.quality["duplicates"] == 2


def test_creators_and_person_tables_ignore_redelivered_copies(tmp_path, settings):
    """A creator's re-delivered creation event adds no creator-day twice, and the person tables
    (first / min / latest per key, conversions one per uuid) are the same with or without copies."""
    rows = [
        event(
            "creation_event",
            "2026-11-10T05:00",
            distinct_id=f"u{i}",
            uuid=f"00000000-0000-0000-0000-00000000000{i}",
        )
        for i in range(3)
    ] + [event("core_feature_used", "2026-11-10T06:00", uuid="00000000-0000-0000-0000-000000000009")]

    def later(row: dict, days: int) -> dict:
        return {**row, "_inserted_at": row["_inserted_at"] + dt.timedelta(days=days)}

    clean = partial_of(tmp_path / "clean", [rows, []], settings)
    dirty = partial_of(tmp_path / "dirty", [rows, [later(r, 1) for r in rows[1:]]], settings)
    assert dirty.quality["duplicates_across_files"] == 3
    for name in ("counts", "creators", *rollup.Partial.PEOPLE_TABLES):
        pd.testing.assert_frame_equal(getattr(dirty, name), getattr(clean, name), obj=name)
    assert dirty.creators["n"].tolist() == [1, 1, 1]


def test_threads_give_the_serial_result(exports, settings):
    folder, _ = exports
    loc = location(str(folder))
    keys = [f.key for f in pipeline.discover(loc)][:6]
    serial = [rollup.rollup_file(loc, k, settings, threads=False) for k in keys]
    threaded = list(rollup.rollup_files(loc, keys, lambda k: rollup.rollup_file(loc, k, settings), workers=2))
    for a, b in zip(serial, threaded, strict=True):
        for name in (*rollup.Partial.TABLES, *rollup.Partial.PEOPLE_TABLES):
            pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name), obj=name)
        assert a.quality == b.quality


def test_a_reader_error_in_the_background_thread_reaches_the_caller(tmp_path, settings):
    path = write_export(tmp_path, [event("core_feature_used", "2026-11-10")] * 3)
    path.write_bytes(path.read_bytes()[:-40])  # truncated footer
    from plg_bridge.ingest.reader import ExportReadError

    with pytest.raises(ExportReadError, match=re.escape(path.name)):
        rollup.rollup_file(location(str(tmp_path)), path.name, settings)


def test_hash_is_the_same_whichever_path_a_value_takes():
    uuids = [f"{i:08d}-1111-2222-3333-444455556666" for i in range(5)]
    fixed = rollup.hash_text(pa.array(uuids))
    mixed = rollup.hash_text(
        pa.array(["x", *uuids, None, "a much longer value than a uuid, over sixty-four bytes long..."])
    )
    assert (mixed[1:6] == fixed).all()
    assert len(set(mixed.tolist())) == 8
    sliced = rollup.hash_text(pa.array(["pad", *uuids]).slice(1))
    assert (sliced == fixed).all()


def test_a_big_file_read_in_pieces_gives_the_same_partial(exports, settings, monkeypatch):
    """Per-row arrays are cut every CHUNK_ROWS PQL rows (bounded memory on 5 M-row files); the
    pieces merge in row order, so the partial is the one of an uncut read."""
    folder, _ = exports
    loc = location(str(folder))
    key = pipeline.discover(loc)[-2].key
    whole = rollup.rollup_file(loc, key, settings, people=False)
    monkeypatch.setattr(rollup, "CHUNK_ROWS", 300)
    cut = rollup.rollup_file(loc, key, settings, people=False)
    assert whole.quality["duplicates"] > 0 and cut.quality["rows_used"] > 4 * 300
    for name in rollup.Partial.TABLES:
        pd.testing.assert_frame_equal(getattr(cut, name), getattr(whole, name), obj=name)
    assert cut.quality == whole.quality
