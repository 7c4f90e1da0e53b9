"""Each kind of bad export input has a defined behaviour: a clear error naming the file and
column, or rows set aside and counted. Nothing is dropped silently."""

from __future__ import annotations

import datetime as dt
import re

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from plg_bridge.ingest.reader import ExportReadError
from plg_bridge.ingest.schema import ExportSchemaError
from plg_bridge.pipeline import score_export
from plg_bridge.storage import location
from tests.support.clocks import AS_OF
from tests.support.events import EXPORT_SCHEMA, event, write_export


def test_truncated_parquet_names_the_object(tmp_path, settings):
    path = write_export(tmp_path, [event("core_feature_used", "2026-11-18") for _ in range(50)])
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ExportReadError, match=re.escape(path.name)):
        score_export(location(str(tmp_path)), AS_OF, settings)


def test_not_parquet_at_all_names_the_object(tmp_path, settings):
    (tmp_path / "2026-11-01T00:00:00+00:00-2026-11-02T00:00:00+00:00.parquet.zst").write_text("hello")
    with pytest.raises(ExportReadError, match="2026-11-01T00:00:00"):
        score_export(location(str(tmp_path)), AS_OF, settings)


def test_missing_required_column_is_a_schema_error_naming_it(tmp_path, settings):
    rows = [event("core_feature_used", "2026-11-18")]
    table = pa.Table.from_pylist(rows, schema=EXPORT_SCHEMA).drop_columns(["distinct_id"])
    pq.write_table(table, tmp_path / "x.parquet")
    with pytest.raises(ExportSchemaError, match=r"x\.parquet: missing required column\(s\) distinct_id"):
        score_export(location(str(tmp_path)), AS_OF, settings)


def test_extra_columns_and_any_order_are_fine(tmp_path, settings):
    rows = [event("core_feature_used", "2026-11-18")]
    table = pa.Table.from_pylist(rows, schema=EXPORT_SCHEMA)
    table = table.append_column("team_id", pa.array([2], pa.int64())).append_column("set", pa.array(["{}"]))
    table = table.select(list(reversed(table.column_names)))
    pq.write_table(table, tmp_path / "x.parquet")
    assert score_export(location(str(tmp_path)), AS_OF, settings).scores["events_this_week"].tolist() == [1]


WHEN = [dt.datetime(2026, 11, 18, 10, tzinfo=dt.UTC), dt.datetime(2026, 11, 10, 10, tzinfo=dt.UTC)]
WHEN.append(dt.datetime(2026, 11, 18, 9, tzinfo=dt.UTC))


def _with_timestamps(values: pa.Array) -> pa.Table:
    rows = [event("core_feature_used", "2026-11-18") for _ in range(len(values))]
    table = pa.Table.from_pylist(rows, schema=EXPORT_SCHEMA)
    return table.set_column(table.schema.get_field_index("timestamp"), "timestamp", values)


@pytest.mark.parametrize(
    "values",
    [
        pa.array(["2026-11-18T10:00:00+00:00", "2026-11-10T10:00:00.123456Z", "2026-11-18 09:00:00"]),
        pa.array([int(t.timestamp()) for t in WHEN], pa.int64()),  # epoch seconds
        pa.array([int(t.timestamp() * 1000) for t in WHEN], pa.int64()),  # epoch milliseconds
        pa.array(
            [dt.datetime(2026, 11, 18, 10), dt.datetime(2026, 11, 10, 10), dt.datetime(2026, 11, 18, 9)],
            pa.timestamp("ms"),
        ),  # naive: taken as UTC
    ],
    ids=["iso-text", "epoch-s", "epoch-ms", "naive-ms"],
)
def test_timestamps_in_other_representations_are_converted(tmp_path, settings, values):
    pq.write_table(_with_timestamps(values), tmp_path / "x.parquet")
    scores = score_export(location(str(tmp_path)), AS_OF, settings).scores
    assert (scores["events_this_week"].tolist(), scores["events_last_week"].tolist()) == ([2], [1])


def test_unparseable_timestamp_text_is_refused_naming_file_and_column(tmp_path, settings):
    pq.write_table(
        _with_timestamps(pa.array(["2026-11-18T10:00:00Z", "last tuesday"])), tmp_path / "x.parquet"
    )
    with pytest.raises(ExportSchemaError, match=r"x\.parquet: column timestamp .*'last tuesday'"):
        score_export(location(str(tmp_path)), AS_OF, settings)


def test_timestamp_of_an_unusable_type_is_refused(tmp_path, settings):
    pq.write_table(_with_timestamps(pa.array([1.5])), tmp_path / "x.parquet")
    with pytest.raises(ExportSchemaError, match="column timestamp has type double"):
        score_export(location(str(tmp_path)), AS_OF, settings)


def test_null_and_malformed_properties_are_quarantined_and_counted(tmp_path, settings):
    rows = [
        event("core_feature_used", "2026-11-18"),
        event("core_feature_used", "2026-11-18", raw_properties='{"$group_0": "org_a"'),
        event("core_feature_used", "2026-11-18", raw_properties=""),
        event("core_feature_used", "2026-11-18", raw_properties="[1, 2]"),
    ]
    rows[2]["properties"] = None
    write_export(tmp_path, rows)
    result = score_export(location(str(tmp_path)), AS_OF, settings)
    assert result.quality["quarantined_malformed_properties"] == 2
    assert result.quality["quarantined_null_properties"] == 1
    assert sorted(result.quarantine["row"]) == [1, 2, 3]
    assert result.scores["events_this_week"].tolist() == [1]


def test_empty_export_file_is_a_valid_empty_input(tmp_path, settings):
    write_export(tmp_path, [])
    result = score_export(location(str(tmp_path)), AS_OF, settings)
    assert result.scores.empty
    assert result.quality["rows_read"] == 0


def test_unreadable_object_can_be_quarantined_and_the_run_goes_on(tmp_path, settings):
    import dataclasses

    good = write_export(tmp_path, [event("core_feature_used", "2026-11-18")], name="a.parquet")
    (tmp_path / "b.parquet").write_bytes(b"PAR1 not really")
    cfg = dataclasses.replace(
        settings, exports=dataclasses.replace(settings.exports, on_unreadable="quarantine")
    )
    result = score_export(location(str(tmp_path)), AS_OF, cfg)
    assert good.exists() and result.scores["events_this_week"].tolist() == [1]
    assert result.quality["quarantined_files"] == 1
    row = result.quarantine[result.quarantine["reason"] == "unreadable_file"].iloc[0]
    assert row["file"].endswith("b.parquet") and "cannot read Parquet" in row["properties"]


def test_groupidentify_with_null_properties_is_skipped_not_fatal(tmp_path, settings):
    from tests.support.events import group_identify

    named = group_identify("org_a", "2026-11-02", name="Acme")
    broken = group_identify("org_a", "2026-11-03", name="x")
    broken["properties"] = None
    write_export(tmp_path, [event("core_feature_used", "2026-11-18"), named, broken])
    assert score_export(location(str(tmp_path)), AS_OF, settings).scores["org_name"].tolist() == ["Acme"]


def test_unreadable_person_properties_are_listed_and_the_event_kept(tmp_path, settings):
    from collections import Counter

    from plg_bridge.ingest.people import person_properties
    from plg_bridge.ingest.reader import iter_batches

    rows = [event("core_feature_used", "2026-11-18", uuid=f"u{i}") for i in range(5)]
    for row, doc in zip(rows, ['{"email":"a@b.c"}', "[1]", None, "null", '{"email":"\xff'], strict=True):
        row["person_properties"] = doc
    write_export(tmp_path, rows, name="p.parquet")
    counters: Counter = Counter()
    batches = list(
        iter_batches(
            location(str(tmp_path)),
            "p.parquet",
            settings.exports,
            None,
            person_properties=person_properties(settings.models),
            counters=counters,
        )
    )
    events = pa.concat_tables([b.events for b in batches])
    assert events.column("uuid").to_pylist() == [f"u{i}" for i in range(5)]  # every event kept
    emails = [p and p["email"] for p in events.column("person_properties").to_pylist()]
    assert emails == ["a@b.c", None, None, None, None]
    listed = pa.concat_tables([b.person_quarantine for b in batches]).to_pylist()
    assert [(r["row"], r["uuid"], r["reason"]) for r in listed] == [
        (1, "u1", "malformed_person_properties"),
        (4, "u4", "malformed_person_properties"),
    ]
    assert listed[0]["properties"] == "[1]"
    assert sum(b.quarantine.num_rows for b in batches) == 0


def test_properties_that_are_not_utf8_are_quarantined_with_readable_text(tmp_path, settings):
    rows = [event("core_feature_used", "2026-11-18", uuid=f"u{i}") for i in range(3)]
    table = pa.Table.from_pylist(rows, schema=EXPORT_SCHEMA)
    raw = [r["properties"].encode() for r in rows]
    raw[1] = b'{"$group_0":"org_\xff"}'  # Parquet does not check UTF-8; Arrow's JSON reader would pass it on
    docs = pa.array(raw, pa.binary()).view(pa.string())
    pq.write_table(
        table.set_column(table.schema.get_field_index("properties"), "properties", docs),
        tmp_path / "x.parquet",
    )
    result = score_export(location(str(tmp_path)), AS_OF, settings)
    assert result.scores["events_this_week"].tolist() == [2]
    row = result.quarantine.iloc[0]
    assert (row["row"], row["uuid"], row["reason"]) == (1, "u1", "malformed_properties")
    assert row["properties"] == '{"$group_0":"org_\\xff"}' and row["file"].endswith("x.parquet")


def test_invalid_utf8_in_ids_and_group_properties_and_binary_columns_is_not_fatal(tmp_path, settings):
    from tests.support.events import group_identify

    rows = [event("core_feature_used", "2026-11-18", uuid=f"u{i}") for i in range(3)]
    rows.append(group_identify("org_a", "2026-11-02", name="Acme"))
    rows.append(group_identify("org_a", "2026-11-03", name="later"))
    table = pa.Table.from_pylist(rows, schema=EXPORT_SCHEMA)
    ids = [r["distinct_id"].encode() for r in rows]
    ids[1] = b"user_\xff"
    props = [r["properties"].encode() for r in rows]
    props[4] = props[4].replace(b"later", b"lat\xe9r")  # Latin-1, not UTF-8: the later name is unreadable
    for name, values, kind in (("distinct_id", ids, pa.string()), ("properties", props, pa.binary())):
        array = pa.array(values, pa.binary())
        table = table.set_column(table.schema.get_field_index(name), name, array.view(kind))
    pq.write_table(table, tmp_path / "x.parquet")
    result = score_export(location(str(tmp_path)), AS_OF, settings)
    assert result.scores["events_this_week"].tolist() == [3]  # the odd id is still an event
    assert result.scores["org_name"].tolist() == ["Acme"]  # the unreadable later name is skipped


def test_a_dirty_generated_export_reads_without_a_crash_and_every_bad_row_is_quarantined(tmp_path):
    """Truncated, null, array, scalar and empty `properties` among posthog-js-sized rows (the mix that
    made pyarrow's JSON reader segfault): each row is read or quarantined as json.loads judges it."""
    import json

    from plg_bridge.config import Settings
    from plg_bridge.ingest.reader import iter_batches
    from plg_bridge.synthetic.generate import generate

    summary = generate(
        str(tmp_path), 20_000, dt.date(2026, 11, 21), days=5, payload="realistic", malformed_fraction=0.02,
        dirty_fraction=0.02,
    )  # fmt: skip
    assert summary.dirty > 300
    expected: dict[str, int] = {}
    got: dict[str, int] = {}
    read = 0
    for name in summary.files:
        for text in pq.read_table(tmp_path / name, columns=["properties"]).column(0).to_pylist():
            try:
                value = json.loads(text) if text else None
            except ValueError:
                value = "malformed"
            reason = (
                None
                if isinstance(value, dict)
                else "null_properties"
                if value is None
                else "malformed_properties"
            )
            if reason:
                expected[reason] = expected.get(reason, 0) + 1
        for batch in iter_batches(location(str(tmp_path)), name, Settings().exports, None):
            read += batch.events.num_rows
            for reason in batch.quarantine.column("reason").to_pylist():
                got[reason] = got.get(reason, 0) + 1
    assert got == expected
    assert read + sum(got.values()) == summary.rows
