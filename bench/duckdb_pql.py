"""Run include/sql/duckdb/pql.sql over an export folder and write the scores as CSV.

The DuckDB side of `make bench`, run by bench/run.py as its own process so its peak RSS is
measured apart from plg-bridge's. Only duckdb is imported (no pandas): the CSV is written by
DuckDB's COPY. Prints one JSON line: threads, query seconds, organizations.

    .venv/bin/python bench/duckdb_pql.py --events DIR --as-of 2026-11-20 --output out.csv [--threads N]
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import time
from pathlib import Path

SQL = Path(__file__).resolve().parents[1] / "include" / "sql" / "duckdb" / "pql.sql"


def export_files(folder: str) -> list[str]:
    """Every `*.parquet*` file under the folder, as `plg-bridge score` reads them."""
    files = sorted(glob.glob(os.path.join(folder, "**", "*.parquet*"), recursive=True))
    if not files:
        raise SystemExit(f"no *.parquet* files under {folder}")
    return files


def query_text() -> str:
    """pql.sql without its comments and final semicolon, so it can sit inside COPY (...)."""
    lines = [line for line in SQL.read_text().splitlines() if not line.lstrip().startswith("--")]
    return "\n".join(lines).strip().rstrip(";")


def main(argv: list[str] | None = None) -> int:
    import duckdb

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", required=True)
    parser.add_argument("--as-of", required=True, help="YYYY-MM-DD (T = 00:00 UTC)")
    parser.add_argument("--output", required=True)
    parser.add_argument("--threads", type=int, help="DuckDB threads (default: DuckDB's own, = cores)")
    args = parser.parse_args(argv)

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    if args.threads:
        con.execute(f"SET threads = {int(args.threads)}")
    con.execute("SET VARIABLE files = ?", [export_files(args.events)])
    con.execute(f"SET VARIABLE as_of = TIMESTAMPTZ '{args.as_of} 00:00:00+00'")
    started = time.perf_counter()
    con.execute(f"COPY ({query_text()}) TO '{args.output}' (HEADER, DELIMITER ',')")
    seconds = time.perf_counter() - started
    threads = con.execute("SELECT current_setting('threads')").fetchone()[0]
    orgs = con.execute(f"SELECT count(*) FROM read_csv('{args.output}')").fetchone()[0]
    print(json.dumps({"threads": int(threads), "query_seconds": seconds, "organizations": orgs}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
