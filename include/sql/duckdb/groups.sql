-- Organization properties as of T in DuckDB: the oracle for models/groups.py. Needs identity.sql
-- first (plg_events, plg_settings; same variables).
--
-- Creates plg_organizations (org_id, name, plan, seat_count, mrr, updated_at): every organization
-- that acted or sent `$groupidentify` (group type 'organization') before T, minus test_org_ids.
-- Like the rollup, only the latest `$group_set` of each organization and day is kept; then each
-- field takes its latest non-blank value (PostHog merges `$group_set` into the group's properties,
-- so a call without `mrr` keeps the earlier MRR). seat_count is an integer (null when not one),
-- mrr a double (null when not a number).
CREATE OR REPLACE TEMP TABLE plg_organizations AS
WITH raw AS (
    SELECT filename, file_row_number, timestamp, properties
    FROM read_parquet(getvariable('files'), filename = true, file_row_number = true)
    WHERE event = '$groupidentify' AND json_valid(properties)
      AND json_extract_string(properties, '$."$group_type"') = 'organization'
      AND nullif(json_extract_string(properties, '$."$group_key"'), '') IS NOT NULL
      AND timestamp < getvariable('as_of')
),
daily AS (
    SELECT json_extract_string(properties, '$."$group_key"') AS org_id, timestamp,
           json_extract_string(properties, '$."$group_set".name') AS name,
           json_extract_string(properties, '$."$group_set".plan') AS plan,
           json_extract_string(properties, '$."$group_set".seat_count') AS seat_count,
           json_extract_string(properties, '$."$group_set".mrr') AS mrr
    FROM raw
    QUALIFY row_number() OVER (
        PARTITION BY org_id, date_trunc('day', timestamp)
        ORDER BY timestamp DESC, filename DESC, file_row_number DESC) = 1
),
latest AS (
    SELECT org_id,
           arg_max(name, timestamp) FILTER (WHERE trim(name) <> '') AS name,
           arg_max(plan, timestamp) FILTER (WHERE trim(plan) <> '') AS plan,
           arg_max(seat_count, timestamp) FILTER (WHERE trim(seat_count) <> '') AS seat_count,
           arg_max(mrr, timestamp) FILTER (WHERE trim(mrr) <> '') AS mrr,
           max(timestamp) AS updated_at
    FROM daily GROUP BY org_id
),
seen AS (
    SELECT org_id FROM plg_events WHERE org_id IS NOT NULL AND timestamp < getvariable('as_of')
    UNION SELECT org_id FROM latest
)
SELECT s.org_id, l.name, l.plan,
       CASE WHEN TRY_CAST(l.seat_count AS DOUBLE) = round(TRY_CAST(l.seat_count AS DOUBLE))
            THEN TRY_CAST(TRY_CAST(l.seat_count AS DOUBLE) AS BIGINT) END AS seat_count,
       TRY_CAST(l.mrr AS DOUBLE) AS mrr,
       l.updated_at
FROM seen s LEFT JOIN latest l USING (org_id)
WHERE NOT list_contains((SELECT test_org_ids FROM plg_settings), s.org_id)
ORDER BY s.org_id;
