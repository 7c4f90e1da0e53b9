-- PQL score per organization as of T, in DuckDB: the independent oracle for models/pql.py
-- (tests compare the two row by row) and the baseline of `make bench`.
--
-- Inputs (DuckDB variables):  files  = list of export Parquet paths
--                             as_of  = T, TIMESTAMPTZ at 00:00 UTC (exclusive)
-- Same semantics as the pandas path: one row per uuid across all files (the copy with the earliest
-- _inserted_at, then the earliest file name: PostHog names start with the interval), organization from
-- properties.$group_0 else properties.$groups.organization, rows with unparseable properties set
-- aside, creators = person_id else distinct_id minus placeholder ids (trimmed, any case), half-open
-- weeks; org_name = the latest non-blank $group_set name (group properties merge per property).
-- active_creators here counts raw ids (person_id else distinct_id), which is what generated data
-- needs; PostHog counts persons, so the oracle (bench/duckdb_pql.py oracle_scores) replaces it with
-- PERSON_CREATORS: each creator resolved to its person by identity.sql's merge rules.
WITH raw AS (
    SELECT filename, file_row_number, uuid, timestamp, _inserted_at, event, distinct_id, person_id, properties
    FROM read_parquet(getvariable('files'), filename = true, file_row_number = true)
),
scoring AS (
    SELECT
        filename, uuid, timestamp, event, distinct_id, person_id,
        coalesce(
            json_extract_string(properties, '$."$group_0"'),
            json_extract_string(properties, '$."$groups".organization')
        ) AS org_id
    FROM raw
    WHERE event IN ('core_feature_used', 'creation_event', 'integration_connected')
      AND json_valid(properties) AND json_type(properties) = 'OBJECT'
    QUALIFY row_number() OVER (
        PARTITION BY uuid ORDER BY _inserted_at NULLS LAST, filename, file_row_number) = 1
),
windowed AS (
    SELECT *, coalesce(nullif(person_id, ''), distinct_id) AS user_key
    FROM scoring
    WHERE org_id IS NOT NULL AND org_id <> ''
      AND timestamp >= getvariable('as_of') - INTERVAL 14 DAY
      AND timestamp < getvariable('as_of')
),
per_org AS (
    SELECT
        org_id,
        count(*) FILTER (WHERE event = 'core_feature_used'
                           AND timestamp >= getvariable('as_of') - INTERVAL 7 DAY) AS events_this_week,
        count(*) FILTER (WHERE event = 'core_feature_used'
                           AND timestamp < getvariable('as_of') - INTERVAL 7 DAY) AS events_last_week,
        count(DISTINCT user_key) FILTER (
            WHERE event = 'creation_event' AND user_key IS NOT NULL
              AND lower(trim(user_key)) NOT IN ('', 'null', 'undefined', 'anonymous', '0', 'none', 'nan')
        ) AS active_creators,
        count(*) FILTER (WHERE event = 'integration_connected') AS integrations_connected
    FROM windowed
    GROUP BY org_id
),
names AS (
    SELECT
        json_extract_string(properties, '$."$group_key"') AS org_id,
        arg_max(json_extract_string(properties, '$."$group_set".name'),
                (timestamp, filename, file_row_number)) AS org_name
    FROM raw
    WHERE event = '$groupidentify' AND json_valid(properties)
      AND json_extract_string(properties, '$."$group_type"') = 'organization'
      AND trim(coalesce(json_extract_string(properties, '$."$group_set".name'), '')) <> ''
      AND timestamp < getvariable('as_of')
    GROUP BY 1
),
scored AS (
    SELECT
        p.*,
        (CASE WHEN events_this_week > events_last_week * 1.5 THEN 40 ELSE 0 END)
        + (CASE WHEN active_creators >= 3 THEN 35 ELSE active_creators * 10 END)
        + (CASE WHEN integrations_connected >= 1 THEN 25 ELSE 0 END) AS pql_score
    FROM per_org p
)
SELECT s.org_id, n.org_name, s.events_this_week, s.events_last_week, s.active_creators,
       s.integrations_connected, s.pql_score, s.pql_score >= 75 AS is_pql
FROM scored s LEFT JOIN names n USING (org_id)
ORDER BY pql_score DESC, org_id;
