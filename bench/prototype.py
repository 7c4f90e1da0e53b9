"""Prototypes of a faster, flatter `plg-bridge score`, measured outside plugins/ (proposals, not the product).

    .venv/bin/python bench/prototype.py VARIANT --events DIR [--as-of 2026-11-20] [--output CSV]

Each variant scores the folder in this process and prints one JSON line (wall and CPU seconds, peak
RSS of this process). `bench/run.py --prototypes` runs them as separate processes beside the real CLI
and checks their tables against DuckDB's. The changes, cumulative from left to right:

    people        score_export as it was until 2026-11-25 22:30: rollup_file's default people=True,
                    so every event's properties were parsed and the six person tables built, then
                    dropped (kept to show what the switch to people=False gained)
    cli           pipeline.score_export as the CLI calls it now (rollup_file(..., people=False))
    json-fast     + reader.extract tries Arrow's JSON reader on the whole batch first and only
                    screens / chunks when that fails (today it counts "{" and "}" in every document
                    and parses in 16 k-row chunks even when every document is fine), and
                    properties._fast counts line breaks in the joined buffer with numpy instead of
                    a per-row `[\\r\\n]` regex
    row-groups    + formats._parquet_batches reads one row group per iter_batches call: with
                    ParquetFile's default pre_buffer=True, the whole file's column chunks stay
                    cached until the reader closes (apache/arrow#39808), so memory grows with the
                    file; a new iter_batches per row group drops the previous row group's cache
    row-groups-2t row-groups, with two files rolled up at a time on two threads (Parquet decoding,
                    the JSON reader and the Arrow kernels release the GIL), each partial folded
                    into the running merge as it arrives
    stream-32k    row-groups, with a streaming rollup_file and 32 k-row record batches: per batch,
                    drop duplicates (uuids seen earlier in the file kept in one Arrow array), then
                    aggregate counts and creators with Arrow's group_by; only those small
                    aggregates live until the end of the file, so memory follows the record batch,
                    not the file. The prototype's duplicate check (is_in against the growing
                    array) costs CPU that a production version would avoid (see docs/benchmarks.md)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

VARIANTS = ("people", "cli", "json-fast", "row-groups", "row-groups-2t", "stream-32k")
DAY_US = 86_400_000_000


# -- json-fast ------------------------------------------------------------------------------------


def patch_json_fast() -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.json as pj

    from plg_bridge.ingest import properties as props
    from plg_bridge.ingest import reader

    original_fast = props._fast

    def fast(docs: pa.Array, schema: pa.Schema):
        """properties._fast, with the line-break check done on the joined bytes."""
        lines = pc.binary_join_element_wise(docs, "\n", "").cast(pa.large_string())
        offsets = np.frombuffer(lines.buffers()[1], dtype=np.int64)[
            lines.offset : lines.offset + len(lines) + 1
        ]
        data = lines.buffers()[2][int(offsets[0]) : int(offsets[-1])]
        raw = np.frombuffer(data, dtype=np.uint8)
        if np.count_nonzero(raw == 10) != len(docs) or np.count_nonzero(raw == 13):
            return original_fast(docs, schema)  # a raw line break inside a document: rewrite them
        try:
            table = pj.read_json(
                pa.BufferReader(data),
                read_options=pj.ReadOptions(block_size=max(len(data) + 1, 1 << 20), use_threads=False),
                parse_options=pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore"),
            )
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return None
        return table if table.num_rows == len(docs) else None

    props._fast = fast
    original_extract = reader.extract

    def extract(docs: pa.Array, schema: pa.Schema):
        """Whole batch through the C++ reader first; the screening only when that fails."""
        n = len(docs)
        if n:
            missing = pc.or_(pc.is_null(docs), pc.equal(docs, ""))
            if not pc.any(missing).as_py():
                table = fast(docs, schema)
                if table is not None:
                    return table, np.full(n, None, dtype=object)
        return original_extract(docs, schema)

    reader.extract = extract


# -- row-groups -----------------------------------------------------------------------------------


def patch_row_groups() -> None:
    """ParquetFile.iter_batches over all row groups becomes one call per row group (what
    formats._parquet_batches would do), so each row group's pre-buffered bytes are dropped
    before the next is read."""
    import pyarrow.parquet as pq

    original = pq.ParquetFile.iter_batches

    def iter_batches(self, batch_size=65536, row_groups=None, columns=None, **kwargs):
        if row_groups is not None:
            yield from original(self, batch_size, row_groups, columns, **kwargs)
            return
        for group in range(self.num_row_groups):
            yield from original(self, batch_size, [group], columns, **kwargs)

    pq.ParquetFile.iter_batches = iter_batches


# -- stream ---------------------------------------------------------------------------------------


def rollup_stream(location, key: str, settings):
    """rollup.rollup_file(..., people=False) with memory bounded by the record batch."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    from plg_bridge.ingest import reader, rollup

    quality: Counter = Counter(dict.fromkeys(rollup.QUALITY_COUNTERS, 0))
    seen: list[pa.Array] = []  # uuids kept so far in this file
    counts, creators, groups, quarantine = [], [], [], []
    placeholders = pa.array(list(settings.exports.placeholder_ids))
    for batch in reader.iter_batches(location, key, settings.exports, settings.pql.events):
        quality["rows_read"] += batch.rows
        groups.append(batch.groups)
        quarantine.append(batch.quarantine)
        t = batch.events
        if not t.num_rows:
            continue
        uuid = pc.fill_null(t.column("uuid").combine_chunks(), "")  # pandas' duplicated: nulls are equal
        codes = pc.dictionary_encode(uuid).indices.to_numpy()
        first = np.zeros(len(codes), dtype=bool)
        first[np.unique(codes, return_index=True)[1]] = True  # first occurrence within the batch
        if seen:
            earlier = pc.is_in(uuid, value_set=pa.concat_arrays(seen) if len(seen) > 1 else seen[0])
            first &= ~earlier.to_numpy(zero_copy_only=False)
        seen = [pa.concat_arrays([*seen, uuid.filter(pa.array(first))])]
        quality["duplicates"] += int(len(first) - first.sum())
        org = t.column("org_id").combine_chunks()
        has_org = pc.fill_null(pc.not_equal(org, ""), False).to_numpy(zero_copy_only=False)
        quality["missing_org"] += int((first & ~has_org).sum())
        used = first & has_org
        quality["rows_used"] += int(used.sum())
        t = t.filter(pa.array(used))
        micros = t.column("timestamp").combine_chunks().cast(pa.int64()).to_numpy()
        day = pa.array(micros - micros % DAY_US, pa.int64())
        slim = pa.table({"org_id": t.column("org_id"), "day": day, "event": t.column("event")})
        counts.append(slim.group_by(["org_id", "day", "event"]).aggregate([([], "count_all")]))
        made = pc.equal(t.column("event"), settings.pql.breadth_event)
        person = t.column("person_id")
        person = pc.if_else(
            pc.fill_null(pc.not_equal(person, ""), False), person, pa.scalar(None, pa.string())
        )
        user = pc.coalesce(person, t.column("distinct_id"))
        placeholder = pc.or_(pc.is_null(user), pc.is_in(pc.utf8_lower(user), value_set=placeholders))
        keep = pc.fill_null(pc.and_(made, pc.invert(placeholder)), False)
        quality["placeholder_users"] += int(pc.sum(pc.and_(made, placeholder)).as_py() or 0)
        who = pa.table({"org_id": slim.column("org_id"), "day": day, "user": user}).filter(keep)
        creators.append(who.group_by(["org_id", "day", "user"]).aggregate([]))

    ts = pa.timestamp("us", tz="UTC")

    def finish(tables, keys, aggregate, columns):
        if not tables:
            return rollup._empty(columns)
        merged = pa.concat_tables(tables).group_by(keys).aggregate(aggregate)
        frame = merged.to_pandas()
        frame["day"] = pd.to_datetime(frame["day"], unit="us", utc=True).astype("datetime64[us, UTC]")
        return frame.rename(columns={"count_all_sum": "n"})[list(columns)].astype(columns)

    counts_frame = finish(counts, ["org_id", "day", "event"], [("count_all", "sum")], rollup.COUNTS)
    creators_frame = finish(creators, ["org_id", "day", "user"], [], rollup.CREATORS)

    quarantined = pa.concat_tables(quarantine).to_pandas() if quarantine else None
    if quarantined is None:
        quarantined = rollup._empty(rollup.QUARANTINE).drop(columns="file")
    for reason, n in quarantined["reason"].value_counts().items():
        quality[f"quarantined_{reason}"] += int(n)
    quarantined.insert(0, "file", location.uri_of(key))
    group_table = (
        pa.concat_tables(groups)
        if groups
        else pa.table({"timestamp": pa.array([], ts), "properties": pa.array([], pa.string())})
    )
    group_frame = pd.DataFrame(
        {
            "timestamp": group_table.column("timestamp").to_pandas(),
            "properties": pd.Series(group_table.column("properties").to_pylist(), dtype=object),
        }
    )
    return rollup.Partial(
        counts=counts_frame,
        creators=creators_frame,
        groups=rollup._group_rows(group_frame, settings.exports.group_type),
        quarantine=quarantined.astype(rollup.QUARANTINE).reset_index(drop=True),
        quality=quality,
        people=False,
    )


# -- the variants ---------------------------------------------------------------------------------


def score(variant: str, events: str, as_of_text: str):
    from plg_bridge import pipeline
    from plg_bridge.config import load_settings
    from plg_bridge.ingest import rollup
    from plg_bridge.models.pql import as_of_time
    from plg_bridge.storage import location

    settings = load_settings()
    exports = location(events)
    as_of = as_of_time(as_of_text)
    if variant == "cli":
        return pipeline.score_export(exports, as_of, settings)
    if variant != "people":
        patch_json_fast()
    if variant not in ("people", "json-fast"):
        patch_row_groups()
    files = pipeline.discover(exports)

    def one(file):
        if variant.startswith("stream"):
            return rollup_stream(exports, file.key, settings)
        return rollup.rollup_file(exports, file.key, settings, people=variant == "people")

    if variant == "stream-32k":
        settings = dataclasses.replace(
            settings, exports=dataclasses.replace(settings.exports, batch_rows=32_768)
        )
    if variant in ("people", "json-fast", "row-groups"):
        return pipeline.score_partials([one(f) for f in files], as_of, settings)
    parts = ThreadPoolExecutor(2).map(one, files) if variant.endswith("-2t") else map(one, files)
    merged = None
    for part in parts:
        merged = part if merged is None else rollup.merge([merged, part])
    return pipeline.score_partials([merged], as_of, settings)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variant", choices=VARIANTS)
    parser.add_argument("--events", required=True)
    parser.add_argument("--as-of", default="2026-11-20")
    parser.add_argument("--output")
    args = parser.parse_args(argv)
    wall, cpu = time.perf_counter(), time.process_time()
    result = score(args.variant, args.events, args.as_of)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if args.output:
        result.scores.to_csv(args.output, index=False)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "variant": args.variant,
                "seconds": wall,
                "cpu_seconds": cpu,
                "rss_mb": rss,
                "quality": result.quality,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
