"""The kept history (ingest/history.py): a daily run folds only its new partials into the previous
run's merge, and every output equals the cold computation from all partials, across days with late
events, re-delivered events, late identity links, a re-exported interval and backfills."""

from __future__ import annotations

import datetime as dt
import os

import pandas as pd
import pyarrow.parquet as pq
import pytest

from plg_bridge import pipeline
from plg_bridge.config import load_settings
from plg_bridge.ingest import history, rollup
from plg_bridge.storage import location
from plg_bridge.synthetic.generate import generate
from tests.support.events import event, group_identify, identify, pageview, write_export

END = dt.date(2026, 11, 10)
DAYS = 8


def day(n: int) -> dt.datetime:
    """Midnight UTC of day n of the export (day 0 = its first day)."""
    start = dt.datetime.combine(END, dt.time(), tzinfo=dt.UTC) - dt.timedelta(days=DAYS)
    return start + dt.timedelta(days=n)


def name(n: int, part: int) -> str:
    """An extra part file of the export interval [day n, day n+1)."""
    return f"{day(n).isoformat()}-{day(n + 1).isoformat()}-{part}.parquet.zst"


@pytest.fixture
def settings():
    return load_settings(env={})


@pytest.fixture
def export(tmp_path):
    """A generated export plus part files carrying what breaks naive incremental merges."""
    folder = tmp_path / "exports"
    generate(str(folder), 20_000, END, days=DAYS)
    first = sorted(folder.glob("*.parquet*"))[1]
    redelivered = pq.read_table(first).slice(0, 300).to_pylist()  # same uuids, a later file
    for row in redelivered:
        row["_inserted_at"] = row["_inserted_at"] + dt.timedelta(days=3)
    write_export(folder, redelivered, name(4, 1))
    late = [event("core_feature_used", day(2).isoformat(), org="org_0001") for _ in range(40)]
    late += [
        pageview("anon-late", day(3).isoformat(), utm=("google", "cpc", "spring")),
        event("signup_completed", day(3).isoformat(), org="org_0002", distinct_id="anon-late"),
        group_identify("org_0001", day(5).isoformat(), name="Renamed Co"),
    ]
    write_export(folder, late, name(5, 1))  # events of days 2-3 arriving in day 5's export
    link = [
        identify("late-user@example.com", "anon-late", day(6).isoformat(), set_props={"email": "late@ex.com"})
    ]
    write_export(folder, link, name(6, 1))  # the identity link, days after the anonymous events
    return folder


def run(exports, work, as_of, settings):
    """A daily run's ingestion and score: roll up pending files, fold, score (the DAG's path)."""
    files = pipeline.discover(exports, as_of)
    for f in pipeline.pending(work, files):
        pipeline.rollup_to(exports, work, f, settings)
    return files, pipeline.score_from_work(work, files, as_of, settings)


def cold(work, files, as_of, settings):
    return pipeline.score_partials(
        [rollup.read(work, pipeline.partial_prefix(f)) for f in files], as_of, settings
    )


def assert_same(result, expected):
    pd.testing.assert_frame_equal(result.scores, expected.scores)
    pd.testing.assert_frame_equal(result.signals, expected.signals)
    pd.testing.assert_frame_equal(result.contacts, expected.contacts)
    assert result.quality == expected.quality
    key = ["file", "row", "reason"]
    pd.testing.assert_frame_equal(
        result.quarantine.sort_values(key).reset_index(drop=True),
        expected.quarantine.sort_values(key).reset_index(drop=True),
    )


def test_daily_runs_fold_new_files_and_equal_cold(export, tmp_path, settings):
    exports, work = location(str(export)), location(str(tmp_path / "work"))
    seen = 0
    for n in range(3, DAYS + 1):
        files, result = run(exports, work, day(n), settings)
        assert_same(result, cold(work, files, day(n), settings))
        if n == 3:
            assert result.history == {"base": None, "folded": len(files)}
        else:  # started from yesterday's snapshot, merged only today's files, recomputed their persons
            history = result.history
            assert (history["base"], history["folded"]) == (day(n - 1).isoformat(), len(files) - seen)
            assert 0 < history["persons_recomputed"] <= history["persons"]
        seen = len(files)
    # the late events, the re-delivery and the late identity link all reached the last run
    assert result.quality["rows_read"] >= 20_000 + 300 + 43
    late = result.contacts.set_index("email").loc["late@ex.com"]
    assert (late["first_touch_source"], late["first_touch_medium"]) == ("google", "cpc")
    assert result.scores.set_index("org_id").loc["org_0001", "org_name"] == "Renamed Co"


def test_rerun_and_backfill_reproduce_from_snapshots_they_may_use(export, tmp_path, settings):
    exports, work = location(str(export)), location(str(tmp_path / "work"))
    outputs = {n: run(exports, work, day(n), settings)[1] for n in (4, 5, 6)}
    files, again = run(exports, work, day(5), settings)  # rerun: its own snapshot
    assert (again.history["base"], again.history["folded"]) == (day(5).isoformat(), 0)
    assert_same(again, outputs[5])
    # a backfill before every snapshot: none was built only from files it may see -> cold
    files, back = run(exports, work, day(3), settings)
    assert back.history["base"] is None
    assert_same(back, cold(work, files, day(3), settings))
    # a snapshot of a later run is never used by an earlier window
    assert all(s.as_of <= day(6) for s in history.snapshots(work))
    base = history.base_for(work, pipeline.discover(exports, day(4)), day(4), settings)
    assert base.as_of == day(4)


def test_reexported_interval_invalidates_the_snapshots_that_merged_it(export, tmp_path, settings):
    exports, work = location(str(export)), location(str(tmp_path / "work"))
    for n in (5, 6):
        run(exports, work, day(n), settings)
    # PostHog re-exports day 1: the file is rewritten with more rows (a new version)
    old = sorted(export.glob("*.parquet*"))[1]
    rows = pq.read_table(old).to_pylist()
    rows += [event("core_feature_used", day(1).isoformat(), org="org_0003") for _ in range(25)]
    write_export(export, rows, old.name)
    os.utime(old, (old.stat().st_atime, old.stat().st_mtime + 60))

    files, result = run(exports, work, day(7), settings)
    assert result.history == {"base": None, "folded": len(files)}  # both snapshots merged the old version
    assert_same(result, cold(work, files, day(7), settings))
    assert result.scores.set_index("org_id").loc["org_0003", "events_this_week"] >= 25


def test_changed_settings_rebuild_cold(export, tmp_path, settings):
    exports, work = location(str(export)), location(str(tmp_path / "work"))
    run(exports, work, day(5), settings)
    other = load_settings(env={"PLG_BRIDGE__EXPORTS__PLACEHOLDER_IDS": "anonymous,guest"})
    files = pipeline.discover(exports, day(6))
    assert history.base_for(work, files, day(6), settings).as_of == day(5)
    assert history.base_for(work, files, day(6), other) is None


def test_fold_into_equals_the_merge_of_every_partial(export, settings):
    exports = location(str(export))
    files = pipeline.discover(exports, day(DAYS))
    parts = [rollup.rollup_file(exports, f.key, settings) for f in files]
    whole = rollup.merge(parts)
    folded = history.fold_into(rollup.merge(parts[:5]), parts[5:])
    for name in rollup.Partial.PEOPLE_TABLES:
        columns = list(getattr(whole, name).columns)
        expect = getattr(whole, name).sort_values(columns).reset_index(drop=True)
        got = getattr(folded, name).sort_values(columns).reset_index(drop=True)
        pd.testing.assert_frame_equal(got, expect, check_like=False)
    pd.testing.assert_frame_equal(
        folded.counts.sort_values(["org_id", "day", "event"]).reset_index(drop=True),
        whole.counts.sort_values(["org_id", "day", "event"]).reset_index(drop=True),
    )
    assert folded.quality == whole.quality


def test_only_persons_touched_by_new_data_are_recomputed(tmp_path, settings):
    """Three persons; the newest file touches one of them (and, by email, the one sharing it)."""
    folder = tmp_path / "exports"
    first = [
        identify("ann", "anon-ann", day(0).isoformat(), set_props={"email": "ann@ex.com"}),
        pageview("anon-ann", day(0).isoformat(), utm=("google", "cpc", "a")),
        identify("bob", None, day(0).isoformat(), set_props={"email": "bob@ex.com"}),
        identify("cat", None, day(0).isoformat(), set_props={"email": "cat@ex.com"}),
        event("signup_completed", day(0).isoformat(), org="org_1", distinct_id="bob"),
    ]
    write_export(folder, first, name(0, 0))
    write_export(
        folder, [event("core_feature_used", day(1).isoformat(), org="org_1", distinct_id="cat")], name(1, 0)
    )
    later = [
        identify(
            "bob", None, day(2).isoformat(), set_props={"email": "ann@ex.com"}
        ),  # now shares ann's email
        event("signup_completed", day(0).isoformat(), org="org_2", distinct_id="bob"),  # a late event
    ]
    write_export(folder, later, name(2, 0))
    exports, work = location(str(folder)), location(str(tmp_path / "work"))
    run(exports, work, day(2), settings)
    files, result = run(exports, work, day(3), settings)
    assert_same(result, cold(work, files, day(3), settings))
    assert (result.history["persons_recomputed"], result.history["persons"]) == (2, 3)  # ann (email) and bob
    assert result.contacts["email"].tolist() == ["ann@ex.com", "cat@ex.com"]  # one person per email


def test_damaged_snapshot_falls_back_to_merging_every_partial(export, tmp_path, settings):
    exports, work = location(str(export)), location(str(tmp_path / "work"))
    run(exports, work, day(5), settings)
    snapshot = tmp_path / "work" / history.snapshots(work)[0].prefix / "merged" / "counts.parquet"
    snapshot.write_bytes(snapshot.read_bytes()[:100])  # truncated, e.g. by a full disk
    files, result = run(exports, work, day(6), settings)
    assert result.history["base"] is None
    assert_same(result, cold(work, files, day(6), settings))


def test_a_new_file_without_creation_events_folds_in(export, tmp_path, settings):
    """The day's only new file has no creators (nor counts cells of its own kind): the fold's merge
    of the snapshot with it must still renumber the fingerprints (rollup.merge regression)."""
    exports, work = location(str(export)), location(str(tmp_path / "work"))
    run(exports, work, day(DAYS), settings)
    rows = [event("core_feature_used", day(DAYS - 1).isoformat(), org="org_0001") for _ in range(5)]
    write_export(export, rows, name(DAYS, 0))
    files, result = run(exports, work, day(DAYS + 1), settings)
    assert (result.history["base"], result.history["folded"]) == (day(DAYS).isoformat(), 1)
    assert_same(result, cold(work, files, day(DAYS + 1), settings))


def test_old_snapshots_are_pruned_and_a_backfill_behind_them_rebuilds(
    export, tmp_path, settings, monkeypatch
):
    monkeypatch.setattr(history, "KEEP", 2)
    exports, work = location(str(export)), location(str(tmp_path / "work"))
    for n in (4, 5, 6):
        run(exports, work, day(n), settings)
    assert sorted(s.as_of for s in history.snapshots(work)) == [day(5), day(6)]
    files, back = run(exports, work, day(4), settings)
    assert back.history["base"] is None
    assert_same(back, cold(work, files, day(4), settings))


def test_a_quarantined_unreadable_file_keeps_the_person_models(export, tmp_path):
    settings = load_settings(env={"PLG_BRIDGE__EXPORTS__ON_UNREADABLE": "quarantine"})
    (export / name(4, 1)).write_bytes(b"PAR1 not parquet at all")
    exports, work = location(str(export)), location(str(tmp_path / "work"))
    run(exports, work, day(5), settings)
    files, result = run(exports, work, day(6), settings)
    assert result.quality["quarantined_files"] == 1
    assert result.contacts is not None and len(result.contacts) and result.signals is not None
    assert_same(result, cold(work, files, day(6), settings))


def test_within_a_date_only_the_most_complete_snapshots_stay(tmp_path):
    """The fast path writes one snapshot per landing under the next midnight's date: each supersedes
    the one before, so a date keeps its PER_DAY most complete snapshots, not one per landing."""
    import json

    work = location(str(tmp_path))

    def snapshot(day: str, name: str, files: int) -> str:
        prefix = f"{history.ROOT}/as_of={day}/{name}"
        work.write_bytes(f"{prefix}/merged/counts.parquet", b"x")
        manifest = {
            "format": history.FORMAT,
            "as_of": f"{day}T00:00:00+00:00",
            "files": {f"f{i}": "v1" for i in range(files)},
            "settings": "s",
        }
        work.write_bytes(f"{prefix}/manifest.json", json.dumps(manifest).encode())
        return prefix

    landings = [snapshot("2026-11-20", f"landing{n}", 10 + n) for n in range(6)]
    daily = snapshot("2026-11-19", "daily", 9)
    history.prune(work)
    kept = [s.prefix for s in history.snapshots(work)]
    assert kept == [*reversed(landings[-history.PER_DAY :]), daily]
    assert not any(o.key.startswith("as_of=2026-11-20/landing0/") for o in work.child(history.ROOT).list())


def _people(profiles: list[tuple[str, str]], touches: list[tuple[str, str]] = ()):
    """A stand-in Partial with only `profiles` (distinct_id, email) and `spans`-free person tables."""
    from types import SimpleNamespace

    frame = pd.DataFrame(
        {
            "distinct_id": pd.Series([p[0] for p in profiles], dtype="str"),
            "key": "email",
            "value": pd.Series([p[1] for p in profiles], dtype="str"),
            "timestamp": pd.Timestamp("2026-11-01", tz="UTC"),
        }
    )
    seen = pd.DataFrame(
        {
            "distinct_id": pd.Series([t[0] for t in touches], dtype="str"),
            "timestamp": pd.Series(
                [pd.Timestamp(t[1], tz="UTC") for t in touches], dtype="datetime64[ns, UTC]"
            ),
        }
    )
    return SimpleNamespace(PEOPLE_TABLES=("profiles", "touches"), profiles=frame, touches=seen)


def test_touched_ids_follow_a_long_chain_of_shared_emails_and_person_keys():
    """A new event by u0 reaches every person linked to it by a chain of shared emails (u_i and
    u_i+1 share one, case and spaces aside) and person keys, 80 hops long, and nobody else (an
    empty email links no one); the chain used to exceed the closure's round limit (everyone recomputed)."""
    from plg_bridge.ingest import touched

    chain = [(f"u{i}", f"Mail{i}@x.io ") for i in range(80)] + [
        (f"u{i + 1}", f"mail{i}@x.io") for i in range(79)
    ]
    merged = _people([*chain, ("loner", "loner@x.io"), ("blank-1", ""), ("blank-2", "")])
    added = _people([], touches=[("u0", "2026-11-19T10:00")])
    keys = pd.DataFrame(
        {
            "distinct_id": ["u0", "u1", "anon-9", "loner", "blank-1", "blank-2"],
            "person_key": ["u0", "u1", "u1", "loner", "blank-1", "blank-2"],
        },
        dtype="str",
    )
    before = keys.copy()  # the same persons before: only the new event seeds
    since = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)
    found = touched.distinct_ids(merged, added, since, keys, before)
    assert set(found) == {f"u{i}" for i in range(80)} | {"anon-9"}  # not loner, not blank emails
