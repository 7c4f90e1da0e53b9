"""DuckDB's PQL score over an export folder, written as CSV: the other side of `make bench`.

Run by bench/run.py as its own process so its peak RSS is measured apart from plg-bridge's. Only
duckdb is imported (no pandas): the CSV is written by DuckDB's COPY. Prints one JSON line: query,
threads, query seconds, organizations.

    .venv/bin/python bench/duckdb_pql.py --events DIR --as-of 2026-11-20 --output out.csv \
        [--query tuned|oracle] [--threads N]

`--query tuned` (the default, what the benchmark times) is the query a DuckDB user would write for
speed, giving the same table as the oracle: filter by event and time before any JSON parse, one
JSON parse per row (a multi-path json_extract_string under TRY: malformed or non-object documents
give no organization, so they count nowhere, as in plg-bridge where they are quarantined), the
scoring rows materialized once, and every uuid counted once over all files (the copy with the
earliest `_inserted_at`, then file name, then row). `--query oracle` runs include/sql/duckdb/pql.sql,
the twin the tests compare plg-bridge with; the tests add `oracle_scores`, which counts creators per
PostHog person (identity.sql's merge rules). The tuned query counts raw person_id / distinct_id:
the generator's creators are identified members whose ids PostHog never merged, so the tables
are the same there; with merged creators only oracle_scores is the reference.
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
PLACEHOLDERS = "('', 'null', 'undefined', 'anonymous', '0', 'none', 'nan')"
TUNED = f"""
WITH keyed AS MATERIALIZED (
    SELECT uuid, _inserted_at, filename, file_row_number, timestamp, event,
           coalesce(nullif(person_id, ''), distinct_id) AS user_key,
           TRY(json_extract_string(properties, ['$."$group_0"', '$."$groups".organization'])) AS orgs
    FROM read_parquet(getvariable('files'), filename = true, file_row_number = true)
    WHERE event IN ('core_feature_used', 'creation_event', 'integration_connected')
      AND timestamp >= getvariable('as_of') - INTERVAL 14 DAY AND timestamp < getvariable('as_of')
),
scoring AS (
    SELECT unnest(arg_min(struct_pack(timestamp, event, user_key, orgs),
                          (_inserted_at, filename, file_row_number)))
    FROM keyed
    GROUP BY uuid
),
per_org AS (
    SELECT
        coalesce(orgs[1], orgs[2]) AS org_id,
        count(*) FILTER (WHERE event = 'core_feature_used'
                           AND timestamp >= getvariable('as_of') - INTERVAL 7 DAY) AS events_this_week,
        count(*) FILTER (WHERE event = 'core_feature_used'
                           AND timestamp < getvariable('as_of') - INTERVAL 7 DAY) AS events_last_week,
        count(DISTINCT user_key) FILTER (
            WHERE event = 'creation_event' AND lower(user_key) NOT IN {PLACEHOLDERS}
        ) AS active_creators,
        count(*) FILTER (WHERE event = 'integration_connected') AS integrations_connected
    FROM scoring
    WHERE coalesce(orgs[1], orgs[2]) <> ''
    GROUP BY 1
),
groups AS (
    SELECT DISTINCT ON (uuid) uuid, timestamp, filename, file_row_number, properties
    FROM read_parquet(getvariable('files'), filename = true, file_row_number = true)
    WHERE event = '$groupidentify' AND timestamp < getvariable('as_of')
    ORDER BY uuid, _inserted_at, filename, file_row_number
),
group_sets AS (
    SELECT timestamp, filename, file_row_number,
           TRY(json_extract_string(properties, ['$."$group_type"', '$."$group_key"', '$."$group_set".name']))
               AS g
    FROM groups
),
names AS (
    SELECT g[2] AS org_id, arg_max(g[3], (timestamp, filename, file_row_number)) AS org_name
    FROM group_sets
    WHERE g[1] = 'organization' AND g[2] <> ''
    GROUP BY 1
),
scored AS (
    SELECT p.*,
        (CASE WHEN events_this_week > events_last_week * 1.5 THEN 40 ELSE 0 END)
        + (CASE WHEN active_creators >= 3 THEN 35 ELSE active_creators * 10 END)
        + (CASE WHEN integrations_connected >= 1 THEN 25 ELSE 0 END) AS pql_score
    FROM per_org p
)
SELECT s.org_id, n.org_name, s.events_this_week, s.events_last_week, s.active_creators,
       s.integrations_connected, s.pql_score, s.pql_score >= 75 AS is_pql
FROM scored s LEFT JOIN names n USING (org_id)
ORDER BY pql_score DESC, org_id
"""


IDENTITY_SQL = SQL.parent / "identity.sql"
# Active creators per PostHog person, for the oracle: run after identity.sql (plg_person_keys,
# plg_events, plg_mergeable_id), written from PostHog's rules, not from the pandas code. Creation
# events as pql.sql counts them (one copy per uuid over all files, window [T-14d, T), organization
# set, creator = person_id else distinct_id not a placeholder); each resolved to the person of its
# distinct id, else (an id PostHog never merges, e.g. "guest") to the person of a mergeable
# distinct id seen with its person_id before T, else to its person_id (else distinct id) alone.
PERSON_CREATORS = """
WITH pql_rows AS (
    SELECT uuid, timestamp, event, distinct_id, person_id,
           coalesce(json_extract_string(properties, '$."$group_0"'),
                    json_extract_string(properties, '$."$groups".organization')) AS org_id
    FROM read_parquet(getvariable('files'), filename = true, file_row_number = true)
    WHERE event IN ('core_feature_used', 'creation_event', 'integration_connected')
      AND json_valid(properties) AND json_type(properties) = 'OBJECT'
    QUALIFY row_number() OVER (
        PARTITION BY uuid ORDER BY _inserted_at NULLS LAST, filename, file_row_number) = 1
),
creations AS (
    SELECT org_id, distinct_id, nullif(person_id, '') AS person_id
    FROM pql_rows
    WHERE event = 'creation_event' AND org_id <> ''
      AND timestamp >= getvariable('as_of') - INTERVAL 14 DAY AND timestamp < getvariable('as_of')
      AND coalesce(nullif(person_id, ''), distinct_id) IS NOT NULL
      AND lower(trim(coalesce(nullif(person_id, ''), distinct_id)))
          NOT IN ('', 'null', 'undefined', 'anonymous', '0', 'none', 'nan')
),
by_person AS (
    SELECT e.person_id, min(k.person_key) AS person_key
    FROM plg_events e JOIN plg_person_keys k USING (distinct_id)
    WHERE e.timestamp < getvariable('as_of') AND plg_mergeable_id(e.distinct_id)
      AND plg_mergeable_id(e.person_id)
    GROUP BY 1
)
SELECT c.org_id,
       count(DISTINCT coalesce(k.person_key, p.person_key,
                               'unresolved:' || coalesce(c.person_id, c.distinct_id))) AS active_creators
FROM creations c
LEFT JOIN plg_person_keys k ON k.distinct_id = c.distinct_id AND plg_mergeable_id(c.distinct_id)
LEFT JOIN by_person p ON p.person_id = c.person_id
GROUP BY 1
"""


def oracle_scores(con, placeholder_ids: list[str] | None = None):
    """pql.sql's table with active_creators counted per PostHog person (identity.sql, then
    PERSON_CREATORS) and the score re-applied; `files` and `as_of` must be set on `con`."""
    if placeholder_ids is not None:
        con.execute("SET VARIABLE placeholder_ids = ?", [placeholder_ids])
    con.execute(IDENTITY_SQL.read_text())
    scores = con.execute(query_text("oracle")).df()
    persons = con.execute(PERSON_CREATORS).df().set_index("org_id")["active_creators"]
    made = persons.reindex(scores["org_id"]).fillna(0).astype("int64").to_numpy()
    scores["active_creators"] = made
    velocity = (scores["events_this_week"] > scores["events_last_week"] * 1.5) * 40
    breadth = [35 if n >= 3 else n * 10 for n in made]
    integration = (scores["integrations_connected"] >= 1) * 25
    scores["pql_score"] = (velocity + breadth + integration).astype("int64")
    scores["is_pql"] = scores["pql_score"] >= 75
    return scores


def export_files(folder: str) -> list[str]:
    """Every `*.parquet*` file under the folder, as `plg-bridge score` reads them."""
    files = sorted(glob.glob(os.path.join(folder, "**", "*.parquet*"), recursive=True))
    if not files:
        raise SystemExit(f"no *.parquet* files under {folder}")
    return files


def query_text(query: str = "oracle") -> str:
    """The tuned query, or pql.sql without its comments and final semicolon (to sit in COPY (...))."""
    if query == "tuned":
        return TUNED.strip()
    lines = [line for line in SQL.read_text().splitlines() if not line.lstrip().startswith("--")]
    return "\n".join(lines).strip().rstrip(";")


def main(argv: list[str] | None = None) -> int:
    import duckdb

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", required=True)
    parser.add_argument("--as-of", required=True, help="YYYY-MM-DD (T = 00:00 UTC)")
    parser.add_argument("--output", required=True)
    parser.add_argument("--query", choices=("tuned", "oracle"), default="tuned")
    parser.add_argument("--threads", type=int, help="DuckDB threads (default: DuckDB's own, = cores)")
    args = parser.parse_args(argv)

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    if args.threads:
        con.execute(f"SET threads = {int(args.threads)}")
    con.execute("SET VARIABLE files = ?", [export_files(args.events)])
    con.execute(f"SET VARIABLE as_of = TIMESTAMPTZ '{args.as_of} 00:00:00+00'")
    started = time.perf_counter()
    con.execute(f"COPY ({query_text(args.query)}) TO '{args.output}' (HEADER, DELIMITER ',')")
    seconds = time.perf_counter() - started
    threads = con.execute("SELECT current_setting('threads')").fetchone()[0]
    orgs = con.execute(f"SELECT count(*) FROM read_csv('{args.output}')").fetchone()[0]
    print(
        json.dumps(
            {"query": args.query, "threads": int(threads), "query_seconds": seconds, "organizations": orgs}
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
