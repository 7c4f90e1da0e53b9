"""The DAG path's daily increment, for `make bench`: run by bench/run.py as its own process.

    prepare   --events DIR --work DIR   roll up every export file but the newest into the work
                                        folder (pipeline.rollup_to, as the mapped tasks do), from
                                        scratch; prints per-file seconds and rows
    increment --events DIR --work DIR --as-of DATE
                                        forget the newest file's partial if present, then time what a
                                        daily run does when the earlier partials are in place:
                                        pipeline.pending + rollup_to(newest) + score_from_work
                                        then, as a prototype (not the product): the same scores from the
                                        same partials reading only their four PQL tables (rollup.read
                                        also loads and merges the six person tables, which the PQL
                                        score never uses)

Each prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path


def _newest(files):
    return max(files, key=lambda f: (f.end is not None, f.end, f.key))


def _rows(path: Path) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).metadata.num_rows


def _read_pql_tables(work, prefix: str):
    """rollup.read without the person tables (prototype of a PQL-only score_from_work)."""
    from collections import Counter

    from plg_bridge.ingest import rollup

    types = (rollup.COUNTS, rollup.CREATORS, rollup.GROUPS, rollup.QUARANTINE)
    tables = {
        name: work.read_frame(f"{prefix}/{name}.parquet").astype(columns)
        for name, columns in zip(rollup.Partial.TABLES, types, strict=True)
    }
    quality = Counter(json.loads(work.read_bytes(f"{prefix}/quality.json")))
    return rollup.Partial(**tables, quality=quality, people=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("prepare", "increment"))
    parser.add_argument("--events", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("--as-of", default="2026-11-20")
    parser.add_argument("--output", help="increment: also write the scores here (CSV)")
    args = parser.parse_args(argv)

    from plg_bridge import pipeline
    from plg_bridge.config import load_settings
    from plg_bridge.models.pql import as_of_time
    from plg_bridge.storage import location

    settings = load_settings()
    exports, work = location(args.events), location(args.work)
    as_of = as_of_time(args.as_of)
    files = pipeline.discover(exports, as_of)
    newest = _newest(files)
    out: dict = {
        "files": len(files),
        "newest": newest.label,
        "newest_rows": _rows(Path(args.events) / newest.key),
    }

    if args.mode == "prepare":
        shutil.rmtree(args.work, ignore_errors=True)
        Path(args.work).mkdir(parents=True)
        todo = [f for f in files if f is not newest]
        started = time.perf_counter()
        per_file = []
        for f in todo:
            t0 = time.perf_counter()
            q = pipeline.rollup_to(exports, work, f, settings)
            per_file.append({"file": f.label, "rows": q["rows_read"], "seconds": time.perf_counter() - t0})
        out["rollup_seconds"] = time.perf_counter() - started
        out["rolled_up"] = per_file
    else:
        shutil.rmtree(Path(args.work) / pipeline.partial_prefix(newest), ignore_errors=True)
        started = time.perf_counter()
        todo = pipeline.pending(work, files)
        out["pending"] = [f.label for f in todo]
        out["pending_seconds"] = time.perf_counter() - started
        t0 = time.perf_counter()
        for f in todo:
            pipeline.rollup_to(exports, work, f, settings)
        out["rollup_seconds"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        result = pipeline.score_from_work(work, files, as_of, settings)
        out["score_seconds"] = time.perf_counter() - t0
        out["seconds"] = time.perf_counter() - started
        out["organizations"] = len(result.scores)
        if args.output:
            result.scores.to_csv(args.output, index=False)
        t0 = time.perf_counter()
        slim = pipeline.score_partials(
            [_read_pql_tables(work, pipeline.partial_prefix(f)) for f in files], as_of, settings
        )
        out["score_pql_tables_seconds"] = time.perf_counter() - t0
        out["score_pql_tables_equal"] = bool(slim.scores.equals(result.scores))
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
