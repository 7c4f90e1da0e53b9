"""`plg-bridge score` reads only the PQL window (issue 9 item 3), with the same scores as a full read.

The window is [T-14d, T); organization names (`$groupidentify`) and persons (identity events) need
all history before T, so files and row groups wholly before the window are read for those rows
only. Hand-built export, T = 2026-11-20: old files holding the only `$groupidentify` and a
`$merge_dangerously` between two creators, old row groups with neither (skipped unread), an opaque
file (statistics only), a JSON Lines file before the window, late events in later files.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from plg_bridge.pipeline import score_export
from plg_bridge.storage import location
from tests.support.clocks import AS_OF
from tests.support.events import EXPORT_SCHEMA, alias, event, export_name, group_identify, identify


def write_parquet(folder: Path, name: str, rows: list[dict], row_group_size: int = 2) -> None:
    """Rows in timestamp order, small row groups so statistics can skip some."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = sorted(rows, key=lambda r: r["timestamp"])
    pq.write_table(
        pa.Table.from_pylist(rows, schema=EXPORT_SCHEMA), folder / name, row_group_size=row_group_size
    )


def write_jsonl(folder: Path, name: str, rows: list[dict]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for row in rows:
        record = {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in row.items()}
        record["properties"] = json.loads(row["properties"])
        lines.append(json.dumps(record))
    (folder / name).write_text("\n".join(lines) + "\n")


def build(folder: Path) -> None:
    # an old interval file: the only name of org_a, a merge of two creators, old product use
    write_parquet(
        folder,
        export_name("2026-11-01", "2026-11-02"),
        [
            group_identify("org_a", "2026-11-01T01:00", name="Acme", plan="pro"),
            identify("usr_1", None, "2026-11-01T02:00", person_id="p1"),
            identify("usr_2", None, "2026-11-01T02:00", person_id="p2"),
            alias("usr_1", "usr_2", "2026-11-01T03:00", name="$merge_dangerously"),
            *[event("core_feature_used", f"2026-11-01T0{h}:00") for h in range(4, 10)],
        ],
    )
    # an old JSON Lines file: org_b's name and an older core event
    write_jsonl(
        folder,
        export_name("2026-11-02", "2026-11-03").replace(".parquet.zst", ".jsonl"),
        [
            group_identify("org_b", "2026-11-02T05:00", name="Beta"),
            event("core_feature_used", "2026-11-02T06:00", "org_b"),
        ],
    )
    # an opaque name (statistics only): row groups before the window with and without history
    # events, and row groups in it
    write_parquet(
        folder,
        "export-opaque-0001.parquet",
        [
            *[event("core_feature_used", f"2026-11-03T0{h}:00", "org_c") for h in range(4)],
            group_identify("org_c", "2026-11-04T01:00", name="Gamma"),
            event("core_feature_used", "2026-11-04T02:00", "org_c"),
            *[event("core_feature_used", f"2026-11-05T0{h}:00", "org_c") for h in range(4)],
            *[event("creation_event", f"2026-11-15T0{h}:00", "org_c", distinct_id=f"c{h}") for h in range(3)],
            event("core_feature_used", "2026-11-18T02:00", "org_c"),
        ],
    )
    # the window: creators usr_1 / usr_2 (one person after the merge), usr_3; velocity; an integration
    write_parquet(
        folder,
        export_name("2026-11-10", "2026-11-11"),
        [
            event("creation_event", "2026-11-10T01:00", distinct_id="usr_1", person_id="p1"),
            event("creation_event", "2026-11-10T02:00", distinct_id="usr_2", person_id="p2"),
            event("creation_event", "2026-11-10T03:00", distinct_id="usr_3", person_id="p3"),
            event("core_feature_used", "2026-11-10T04:00"),
            event("core_feature_used", "2026-11-10T05:00", "org_b"),
        ],
    )
    # late events: ingested after T (within the margin), and one file starting long after
    write_parquet(
        folder,
        export_name("2026-11-22", "2026-11-23"),
        [
            event("core_feature_used", "2026-11-19T23:00"),
            event("integration_connected", "2026-11-19T22:00", "org_b"),
            event("core_feature_used", "2026-11-22T01:00"),  # after T: not scored
        ],
    )
    write_parquet(
        folder,
        export_name("2026-11-28", "2026-11-29"),
        [event("core_feature_used", "2026-11-18T10:00", "org_c")],  # 10 days late: beyond 168 h
    )


def test_pruned_score_equals_the_full_read(tmp_path, settings):
    build(tmp_path / "exports")
    loc = location(str(tmp_path / "exports"))
    wide = dataclasses.replace(
        settings, exports=dataclasses.replace(settings.exports, late_event_margin_hours=24 * 9)
    )
    full = score_export(loc, AS_OF, wide, prune=False)
    pruned = score_export(loc, AS_OF, wide)
    assert pruned.scores.to_dict("records") == full.scores.to_dict("records")

    by_org = pruned.scores.set_index("org_id")
    # by hand: org_a: 1 core this week (the late 11-19 one), 1 last week (11-10), 2 persons
    # (usr_1 + usr_2 merged before T, usr_3): 0 + 20 + 0; name from the old file only
    assert by_org.loc[
        "org_a", ["org_name", "events_this_week", "events_last_week", "active_creators"]
    ].tolist() == [
        "Acme",
        1,
        1,
        2,
    ]
    assert by_org.loc["org_a", "pql_score"] == 20
    # org_b: name from the old JSON Lines file; the late integration counts: 25; 1 core last week
    assert by_org.loc["org_b", ["org_name", "integrations_connected", "pql_score"]].tolist() == [
        "Beta",
        1,
        25,
    ]
    # org_c: name from an opaque file's old row group; 3 creators (35); 11-18 core x2 (one 10 days late) vs 0: 40
    assert by_org.loc["org_c", ["org_name", "active_creators", "events_this_week", "pql_score"]].tolist() == [
        "Gamma",
        3,
        2,
        75,
    ]

    q = pruned.quality
    assert q["files_history"] >= 2  # the old Parquet (statistics say so too) and JSON Lines files
    assert q["row_groups_history"] >= 2  # old row groups holding a $groupidentify / identity event
    assert q["row_groups_skipped"] >= 2  # old row groups with neither: only their event column read
    assert q["files_skipped"] == 0
    assert full.quality["rows_read"] > q["rows_read"]


def test_a_file_starting_beyond_the_margin_is_skipped_unopened(tmp_path, settings):
    """The margin is the trade-off: an event sent more than late_event_margin_hours after its
    timestamp sits in a file the pruned read does not open (its file starts 8 days after T, margin 7 days)."""
    build(tmp_path / "exports")
    loc = location(str(tmp_path / "exports"))
    full = score_export(loc, AS_OF, settings, prune=False).scores.set_index("org_id")
    pruned_result = score_export(loc, AS_OF, settings)
    pruned = pruned_result.scores.set_index("org_id")
    assert pruned_result.quality["files_skipped"] == 1
    assert (full.loc["org_c", "events_this_week"], pruned.loc["org_c", "events_this_week"]) == (2, 1)
    assert pruned.drop(index="org_c").to_dict() == full.drop(index="org_c").to_dict()


@pytest.mark.parametrize("naming", ["interval", "opaque"])
def test_generated_export_scores_the_same_pruned(tmp_path, settings, naming):
    """Generated data (late events in later files, re-deliveries days apart, organizations named
    by `$groupidentify` early on): pruned == full read, by export interval or by statistics alone
    (opaque names; small row groups so statistics can tell)."""
    import datetime as dt

    from plg_bridge.synthetic.generate import generate

    folder = tmp_path / "exports"
    generate(str(folder), 30_000, dt.date(2026, 11, 20), days=28, naming=naming, chunk_rows=2_000)
    loc = location(str(folder))
    for as_of in (AS_OF, AS_OF - dt.timedelta(days=9)):
        full = score_export(loc, as_of, settings, prune=False)
        pruned = score_export(loc, as_of, settings)
        pd.testing.assert_frame_equal(pruned.scores, full.scores)
        assert pruned.scores["org_name"].notna().any() and pruned.scores["active_creators"].gt(0).any()
        q = pruned.quality
        assert q["row_groups_history"] + q["row_groups_skipped"] > 0  # left out or read for history only
        assert q["rows_read"] < full.quality["rows_read"]
