"""Every export shape PostHog writes reads into the same scores: Parquet with each codec and
JSON Lines plain or compressed, with nested or string `properties`."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from plg_bridge.ingest.formats import ExportReadError
from plg_bridge.ingest.layout import is_data_file, parse_key
from plg_bridge.pipeline import score_export
from plg_bridge.storage import location
from tests.support.clocks import AS_OF
from tests.support.events import EXPORT_SCHEMA, event, export_name, group_identify

ROWS = [
    event("core_feature_used", "2026-11-18T10:00:00"),
    event("core_feature_used", "2026-11-18T11:00:00", org="org_b", only_groups=True),
    event("creation_event", "2026-11-12", distinct_id="u1"),
    event("integration_connected", "2026-11-12", props={"provider": "stripe"}),
    group_identify("org_a", "2026-11-02", name='Acme "Ltd" \u00e9'),
]
NAME = export_name("2026-11-18", "2026-11-19")


def _expected(settings, tmp_path):
    folder = tmp_path / "reference"
    folder.mkdir()
    pq.write_table(pa.Table.from_pylist(ROWS, schema=EXPORT_SCHEMA), folder / NAME)
    return score_export(location(str(folder)), AS_OF, settings).scores


@pytest.mark.parametrize(
    ("codec", "ext"),
    [("zstd", "zst"), ("snappy", "sz"), ("gzip", "gz"), ("brotli", "br"), ("lz4", "lz4"), ("none", None)],
)
def test_parquet_every_codec(tmp_path, settings, codec, ext):
    name = NAME.replace(".parquet.zst", ".parquet" + (f".{ext}" if ext else ""))
    folder = tmp_path / "exports"
    folder.mkdir()
    pq.write_table(pa.Table.from_pylist(ROWS, schema=EXPORT_SCHEMA), folder / name, compression=codec)
    scores = score_export(location(str(folder)), AS_OF, settings).scores
    assert scores.equals(_expected(settings, tmp_path))


def _jsonl(nested: bool) -> bytes:
    lines = []
    for row in ROWS:
        record = {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in row.items()}
        if nested:
            record["properties"] = json.loads(record["properties"])
        lines.append(json.dumps(record))
    return ("\n".join(lines) + "\n").encode()


@pytest.mark.parametrize("codec", [None, "gzip", "brotli", "zstd", "lz4"])
@pytest.mark.parametrize("nested", [True, False], ids=["object-properties", "string-properties"])
def test_jsonl_plain_and_compressed(tmp_path, settings, codec, nested):
    ext = {None: "", "gzip": ".gz", "brotli": ".br", "zstd": ".zst", "lz4": ".lz4"}[codec]
    folder = tmp_path / "exports"
    folder.mkdir()
    data = _jsonl(nested)
    if codec:
        sink = pa.BufferOutputStream()
        with pa.CompressedOutputStream(sink, codec) as out:
            out.write(data)
        data = sink.getvalue().to_pybytes()
    (folder / NAME.replace(".parquet.zst", f".jsonl{ext}")).write_bytes(data)
    scores = score_export(location(str(folder)), AS_OF, settings).scores
    assert scores.equals(_expected(settings, tmp_path))
    assert scores.loc[scores.org_id == "org_a", "org_name"].item() == 'Acme "Ltd" \u00e9'


def test_jsonl_line_that_is_not_json_names_file_and_line(tmp_path, settings):
    (tmp_path / "a.jsonl").write_bytes(_jsonl(True) + b"{not json\n")
    with pytest.raises(ExportReadError, match=r"a\.jsonl: line 6 is not JSON"):
        score_export(location(str(tmp_path)), AS_OF, settings)


def test_key_names_parse_with_split_parts_and_skip_manifests():
    f = parse_key("events/2026/11/18/2026-11-18T00:00:00+00:00-2026-11-18T01:00:00+00:00-3.parquet.zst")
    assert (f.start.hour, f.end.hour, f.part) == (0, 1, 3)
    assert not is_data_file("2026-11-18T00:00:00+00:00-2026-11-18T01:00:00+00:00_manifest.json")
    assert is_data_file("x/2026-11-18T00:00:00+00:00-2026-11-18T01:00:00+00:00.jsonl.br")


# -- reading only what a window needs -------------------------------------------------------------

DAY = dt.timedelta(days=1)
WINDOW = (dt.datetime(2026, 11, 10, tzinfo=dt.UTC), dt.datetime(2026, 11, 12, tzinfo=dt.UTC))


def _days_file(path, timestamps: pa.Array, rows_per_group: int, **options) -> None:
    """One row group per `rows_per_group` rows; the timestamp column as given."""
    n = len(timestamps)
    rows = [event("core_feature_used", "2026-11-01", uuid=f"u{i}") for i in range(n)]
    table = pa.Table.from_pylist(rows, schema=EXPORT_SCHEMA)
    table = table.set_column(table.schema.get_field_index("timestamp"), "timestamp", timestamps)
    pq.write_table(table, path, row_group_size=rows_per_group, **options)


def _read(folder, key, settings, window=None):
    from collections import Counter

    from plg_bridge.ingest.reader import iter_batches

    counters: Counter = Counter()
    batches = list(
        iter_batches(location(str(folder)), key, settings.exports, None, window=window, counters=counters)
    )
    events = pa.concat_tables([b.events for b in batches]) if batches else None
    return events, counters


def _in_window(events) -> list[str]:
    if events is None:
        return []
    ts = events.column("timestamp").to_pylist()
    return sorted(
        u for u, t in zip(events.column("uuid").to_pylist(), ts, strict=True) if WINDOW[0] <= t < WINDOW[1]
    )


# ten row groups of 4 rows, one calendar day each: 2026-11-05 .. 2026-11-14
MOMENTS = [
    dt.datetime(2026, 11, 5, tzinfo=dt.UTC) + DAY * (i // 4) + dt.timedelta(hours=5 * (i % 4))
    for i in range(40)
]


@pytest.mark.parametrize(
    "timestamps",
    [
        pa.array(MOMENTS, pa.timestamp("us", tz="UTC")),
        pa.array([m.replace(tzinfo=None) for m in MOMENTS], pa.timestamp("ms")),  # naive: UTC
        pa.array([int(m.timestamp() * 1000) for m in MOMENTS], pa.int64()),  # epoch milliseconds
        pa.array([int(m.timestamp()) for m in MOMENTS], pa.int64()),  # epoch seconds
        pa.array([m.isoformat() for m in MOMENTS]),  # ISO text: only dates trusted, a day of slack
    ],
    ids=["timestamp-us-utc", "naive-ms", "epoch-ms", "epoch-s", "iso-text"],
)
def test_row_groups_outside_the_window_are_skipped_by_statistics(tmp_path, settings, timestamps):
    key = "opaque-name.parquet"  # no interval in the name: statistics only
    _days_file(tmp_path / key, timestamps, rows_per_group=4)
    everything, full = _read(tmp_path, key, settings)
    pruned, counters = _read(tmp_path, key, settings, window=WINDOW)
    assert full == {"row_groups_read": 10}
    assert _in_window(pruned) == _in_window(everything) and len(_in_window(pruned)) == 8
    skipped = 5 if pa.types.is_string(timestamps.type) else 8  # text: a day of slack on each side
    assert counters == {"row_groups_read": 10 - skipped, "row_groups_skipped": skipped}
    assert pruned.num_rows == 4 * (10 - skipped)  # kept row groups come whole


def test_row_groups_without_statistics_are_all_read(tmp_path, settings):
    _days_file(
        tmp_path / "x.parquet", pa.array(MOMENTS, pa.timestamp("us", tz="UTC")), 4, write_statistics=False
    )
    pruned, counters = _read(tmp_path, "x.parquet", settings, window=WINDOW)
    assert counters["row_groups_read"] == 10 and counters["row_groups_skipped"] == 0
    assert pruned.num_rows == 40


def test_a_row_group_straddling_the_window_edge_is_read(tmp_path, settings):
    moments = [
        WINDOW[0] - dt.timedelta(microseconds=1),
        WINDOW[0],
        WINDOW[1] - dt.timedelta(microseconds=1),
        WINDOW[1],
    ]
    _days_file(tmp_path / "x.parquet", pa.array(moments, pa.timestamp("us", tz="UTC")), 1)
    pruned, counters = _read(tmp_path, "x.parquet", settings, window=WINDOW)
    assert counters["row_groups_skipped"] == 2  # the one just before start and the one at end (half-open)
    assert sorted(pruned.column("timestamp").to_pylist()) == moments[1:3]


def test_whole_files_are_skipped_by_their_export_interval(tmp_path, settings):
    names = []
    for day in range(5, 15):  # daily files 2026-11-05 .. 2026-11-14, events inside each
        start = dt.datetime(2026, 11, day, tzinfo=dt.UTC)
        name = f"{start.isoformat()}-{(start + DAY).isoformat()}.parquet.zst"
        _days_file(
            tmp_path / name, pa.array([start + dt.timedelta(hours=3)], pa.timestamp("us", tz="UTC")), 1
        )
        names.append(name)
    cfg = dataclasses.replace(
        settings, exports=dataclasses.replace(settings.exports, late_event_margin_hours=48)
    )
    skipped = []
    for name in names:
        events, counters = _read(tmp_path, name, cfg, window=WINDOW)
        if counters["files_skipped"]:
            assert events is None and counters["row_groups_read"] == 0  # not even opened
            skipped.append(name[:10])
    # before: files ending 23 h (PostHog's future cutoff) or more before the start (11-05..11-08);
    # after: files starting 48 h (the margin) or more after the end (11-14)
    assert skipped == ["2026-11-05", "2026-11-06", "2026-11-07", "2026-11-08", "2026-11-14"]


def test_history_events_are_read_from_row_groups_before_the_window_with_their_row_numbers(tmp_path, settings):
    """Row groups of 2 rows: [old core x2] skipped after reading only its event column,
    [old $groupidentify + old core] read for the $groupidentify alone, [malformed core, core in
    the window] read whole, [after the window] skipped. Rows keep their numbers in the file."""
    from collections import Counter

    from plg_bridge.ingest.reader import iter_batches

    rows = [
        event("core_feature_used", "2026-11-01T01:00"),
        event("core_feature_used", "2026-11-01T02:00"),
        group_identify("org_a", "2026-11-02T01:00", name="Acme"),
        event("core_feature_used", "2026-11-02T02:00"),
        event("core_feature_used", "2026-11-10T01:00", raw_properties="{broken"),
        event("core_feature_used", "2026-11-11T01:00", uuid="u-in"),
        event("core_feature_used", "2026-11-12T00:00"),
        event("$identify", "2026-11-12T01:00"),
    ]
    pq.write_table(pa.Table.from_pylist(rows, schema=EXPORT_SCHEMA), tmp_path / "x.parquet", row_group_size=2)
    counters: Counter = Counter()
    batches = list(
        iter_batches(
            location(str(tmp_path)),
            "x.parquet",
            settings.exports,
            ("core_feature_used", "$identify"),
            window=WINDOW,
            history_events=("$groupidentify", "$identify"),
            counters=counters,
        )
    )
    events = pa.concat_tables([b.events for b in batches])
    assert events.column("uuid").to_pylist() == ["u-in"] and events.column("row").to_pylist() == [5]
    quarantine = pa.concat_tables([b.quarantine for b in batches])
    assert quarantine.column("row").to_pylist() == [4]  # its row in the file, after a skipped group
    groups = pa.concat_tables([b.groups for b in batches])
    assert groups.num_rows == 1 and "Acme" in groups.column("properties")[0].as_py()
    assert sum(b.rows for b in batches) == 1 + 2  # the history row, the window's row group
    assert dict(counters) == {"row_groups_skipped": 2, "row_groups_history": 1, "row_groups_read": 1}


def test_may_hold_margins():
    from plg_bridge.ingest.layout import FUTURE_CUTOFF, may_hold

    start, end = WINDOW
    hour = dt.timedelta(hours=1)
    assert not may_hold(
        parse_key(
            f"{(start - DAY - FUTURE_CUTOFF).isoformat()}-{(start - FUTURE_CUTOFF).isoformat()}.parquet"
        ),
        start,
        end,
        DAY,
    )
    assert may_hold(
        parse_key(f"{(start - DAY).isoformat()}-{(start - FUTURE_CUTOFF + hour).isoformat()}.parquet"),
        start,
        end,
        DAY,
    )
    assert may_hold(
        parse_key(f"{(end + DAY - hour).isoformat()}-{(end + 2 * DAY).isoformat()}.parquet"), start, end, DAY
    )
    assert not may_hold(
        parse_key(f"{(end + DAY).isoformat()}-{(end + 2 * DAY).isoformat()}.parquet"), start, end, DAY
    )
    assert may_hold(parse_key("opaque.parquet"), start, end, DAY)


# -- JSON Lines with an over-long line ------------------------------------------------------------


def _jsonl_with_long_line(size: int) -> bytes:
    lines = _jsonl(True).decode().splitlines()
    record = json.loads(lines[0])
    long = {
        "uuid": "u-long",
        "event": "core_feature_used",
        "properties": {"$group_0": "org_a", "blob": "x" * size},
    }
    long.update({k: v for k, v in record.items() if k not in long})
    return ("\n".join([lines[0], json.dumps(long), *lines[1:]]) + "\n").encode()


def test_an_over_long_jsonl_line_is_quarantined_with_file_and_line(tmp_path, settings):
    cfg = dataclasses.replace(
        settings, exports=dataclasses.replace(settings.exports, max_line_bytes=64 << 10)
    )
    (tmp_path / "a.jsonl").write_bytes(_jsonl_with_long_line(200_000))
    from plg_bridge.ingest.reader import iter_batches

    batches = list(iter_batches(location(str(tmp_path)), "a.jsonl", cfg.exports, None))
    quarantine = pa.concat_tables([b.quarantine for b in batches]).to_pylist()
    assert len(quarantine) == 1
    row = quarantine[0]
    assert (row["row"], row["uuid"], row["event"], row["reason"]) == (
        1,
        "u-long",
        "core_feature_used",
        "oversized_line",
    )
    assert (
        row["properties"].startswith("line 2: ")
        and "over exports.max_line_bytes (65536)" in row["properties"]
    )
    assert sum(b.events.num_rows for b in batches) == len(ROWS)  # every other row is read
    assert sum(b.groups.num_rows for b in batches) == 1 and sum(b.rows for b in batches) == len(ROWS) + 1


_LONG_LINE = """
import gzip, resource, sys
from plg_bridge.config import ExportSettings
from plg_bridge.ingest.reader import iter_batches
from plg_bridge.storage import location
list(iter_batches(location(sys.argv[1]), "small.jsonl.gz", ExportSettings(), None))  # imports, pools
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
batches = list(iter_batches(location(sys.argv[1]), "big.jsonl.gz", ExportSettings(), None))
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(sum(b.quarantine.num_rows for b in batches), sum(b.rows for b in batches), (after - before) // 1024)
"""


def test_a_200_mb_jsonl_line_costs_bounded_memory(tmp_path):
    import gzip
    import subprocess
    import sys

    head = b'{"uuid":"u1","event":"core_feature_used","timestamp":"2026-11-18T10:00:00Z","distinct_id":"d",'
    with gzip.open(tmp_path / "big.jsonl.gz", "wb", compresslevel=1) as out:
        out.write(head + b'"properties":{"$group_0":"org_a"}}\n')
        out.write(head + b'"properties":{"blob":"')
        chunk = b"y" * (1 << 20)
        for _ in range(200):
            out.write(chunk)
        out.write(b'"}}\n' + head + b'"properties":{"$group_0":"org_b"}}\n')
    with gzip.open(tmp_path / "small.jsonl.gz", "wb") as out:
        out.write(head + b'"properties":{"$group_0":"org_a"}}\n' + head + b'"properties":[1]}\n')
    done = subprocess.run(
        [sys.executable, "-c", _LONG_LINE, str(tmp_path)], capture_output=True, text=True, check=True
    )
    quarantined, rows, grown_mb = (int(x) for x in done.stdout.split())
    assert (quarantined, rows) == (1, 3)
    assert grown_mb < 40, f"reading a 200 MB line grew the peak RSS by {grown_mb} MB"


def test_wide_rows_come_in_smaller_batches_so_memory_follows_bytes(tmp_path, monkeypatch):
    from plg_bridge.ingest import formats

    rows = [
        event("core_feature_used", "2026-11-18", uuid=f"u{i}", props={"pad": f"{i:06d}" * 170})
        for i in range(6_000)
    ]
    pq.write_table(
        pa.Table.from_pylist(rows, schema=EXPORT_SCHEMA), tmp_path / "wide.parquet", compression="zstd"
    )
    monkeypatch.setattr(formats, "BATCH_BYTES", 1 << 20)  # about 1,000 rows of ~1 KB
    sizes = [b.num_rows for b in formats.raw_batches(location(str(tmp_path)), "wide.parquet", 131_072)]
    assert sum(sizes) == 6_000
    assert 800 <= max(sizes) <= 1_100, sizes
    monkeypatch.setattr(formats, "BATCH_BYTES", 1 << 30)  # narrow enough: batch_rows decides
    assert [b.num_rows for b in formats.raw_batches(location(str(tmp_path)), "wide.parquet", 4_000)] == [
        4_000,
        2_000,
    ]
