-- The seed's signal table in DuckDB, straight from the export files: the independent oracle for
-- models/signals.py (tests/integration/test_signals_oracle.py compares the two row by row).
-- Needs identity.sql (plg_settings, plg_events, plg_person_keys) and exclusions.sql (plg_profiles,
-- plg_excluded) run first, for the same variables.
--
-- Inputs (DuckDB variables; unset ones take the plg-bridge defaults):
--   files, as_of, placeholder_ids and the model settings   as for identity.sql
--   pql_<field>       the PQL settings (pql_velocity_event, pql_breadth_event, pql_integration_event,
--                     pql_velocity_ratio, pql_velocity_points, pql_breadth_min_creators,
--                     pql_breadth_points, pql_points_per_creator, pql_integration_points,
--                     pql_threshold, pql_week_days)
--   signals_<field>   the signal settings (signals_enabled, signals_aha_event,
--                     signals_usage_ceiling_event, signals_enterprise_event,
--                     signals_enterprise_detail, signals_integration_detail)
--
-- Creates temporary tables:
--   plg_signal_settings  one row: the PQL and signal settings with their values
--   plg_pql_rows         the PQL-event rows, duplicates (same uuid in one file) dropped
--   plg_signals          one row per signal key raised for the run's day [T-1d, T), the columns of
--                        models/signals.py: signal_key, signal, org_id, org_name, distinct_id, email,
--                        detail, occurred_at, as_of, pql_score, is_pql
-- and the table macro plg_pql_scores(t): org_id, org_name, pql_score, is_pql as of t (the logic of
-- pql.sql, with the PQL settings), called for T and for T-1d.
--
-- The signals (one row per signal key = signal:subject:detail:day, day = T-1d; detail '-' when none):
--   aha_reached            subject = person: the stitched person's first-ever <aha_event> before T
--                          falls in [T-1d, T); distinct_id = the person key, detail = the event name,
--                          occurred_at = that first time, org = the person's first organization
--                          (earliest event with an organization before T; ties: smallest org_id)
--   usage_ceiling          subject = organization: <usage_ceiling_event> in [T-1d, T); no detail
--   enterprise_interest    idem for <enterprise_event>, detail = properties.<enterprise_detail>
--   integration_connected  idem for <pql_integration_event>, detail = properties.<integration_detail>
--                          (for these three: one row per organization x detail, the day's first
--                          occurrence by a person who is not excluded, ties: smallest distinct_id;
--                          detail trimmed, blank = none)
--   pql_crossed            subject = organization: is a PQL at T, and its score as of T-1d (0 when
--                          not scored then) was below the threshold; no detail, no person,
--                          occurred_at = T - 1 microsecond
-- Left out: signals not in <enabled>, rows without an organization, test organizations, and rows
-- naming an excluded person (plg_excluded). email = the latest email (before T) across the
-- person's distinct ids (ties: the larger value). org_name, pql_score, is_pql: the organization's
-- PQL row as of T (NULL when it has no scoring event in the 14-day window).
SET TimeZone = 'UTC';

CREATE OR REPLACE TEMP TABLE plg_signal_settings AS
SELECT
    coalesce(getvariable('pql_velocity_event'), 'core_feature_used') AS velocity_event,
    coalesce(getvariable('pql_breadth_event'), 'creation_event') AS breadth_event,
    coalesce(getvariable('pql_integration_event'), 'integration_connected') AS integration_event,
    coalesce(getvariable('pql_velocity_ratio'), 1.5)::DOUBLE AS velocity_ratio,
    coalesce(getvariable('pql_velocity_points'), 40) AS velocity_points,
    coalesce(getvariable('pql_breadth_min_creators'), 3) AS breadth_min_creators,
    coalesce(getvariable('pql_breadth_points'), 35) AS breadth_points,
    coalesce(getvariable('pql_points_per_creator'), 10) AS points_per_creator,
    coalesce(getvariable('pql_integration_points'), 25) AS integration_points,
    coalesce(getvariable('pql_threshold'), 75) AS threshold,
    coalesce(getvariable('pql_week_days'), 7) AS week_days,
    coalesce(getvariable('signals_enabled'), ['aha_reached', 'usage_ceiling', 'enterprise_interest',
                                              'pql_crossed', 'integration_connected']) AS enabled,
    coalesce(getvariable('signals_aha_event'), 'first_successful_deployment') AS aha_event,
    coalesce(getvariable('signals_usage_ceiling_event'), 'hits_80_percent_of_tier_limit')
        AS usage_ceiling_event,
    coalesce(getvariable('signals_enterprise_event'), 'enterprise_feature_clicked') AS enterprise_event,
    coalesce(getvariable('signals_enterprise_detail'), 'feature_name') AS enterprise_detail,
    coalesce(getvariable('signals_integration_detail'), 'provider') AS integration_detail;

-- PQL rows as pql.sql reads them: any distinct_id (placeholders are only left out of the creators),
-- properties a JSON object, one row per uuid across all files (earliest _inserted_at, then file).
CREATE OR REPLACE TEMP TABLE plg_pql_rows AS
WITH s AS (SELECT * FROM plg_signal_settings),
raw AS (
    SELECT filename, file_row_number, uuid, timestamp, _inserted_at, event, distinct_id, person_id, properties
    FROM (
        SELECT * FROM read_parquet(getvariable('files'), filename = true, file_row_number = true,
                                   union_by_name = true)
        UNION ALL BY NAME
        SELECT NULL::VARCHAR AS person_id, NULL::TIMESTAMPTZ AS _inserted_at WHERE false  -- optional
    )
)
SELECT
    r.filename, r.uuid, r.timestamp, r.event, r.distinct_id, r.person_id,
    coalesce(json_extract_string(r.properties, '$."$group_0"'),
             json_extract_string(r.properties, '$."$groups".organization')) AS org_id
FROM raw r, s
WHERE r.event IN (s.velocity_event, s.breadth_event, s.integration_event)
  AND json_valid(r.properties) AND json_type(r.properties) = 'OBJECT'
QUALIFY row_number() OVER (
    PARTITION BY r.uuid ORDER BY r._inserted_at NULLS LAST, r.filename, r.file_row_number) = 1;

CREATE OR REPLACE TEMP MACRO plg_pql_scores(t) AS TABLE
WITH s AS (SELECT * FROM plg_signal_settings),
windowed AS (
    SELECT p.*, coalesce(nullif(p.person_id, ''), p.distinct_id) AS user_key
    FROM plg_pql_rows p, s
    WHERE p.org_id IS NOT NULL AND p.org_id <> ''
      AND p.timestamp >= t - to_days((2 * s.week_days)::INTEGER) AND p.timestamp < t
),
per_org AS (
    SELECT
        w.org_id,
        count(*) FILTER (WHERE w.event = s.velocity_event
                           AND w.timestamp >= t - to_days(s.week_days::INTEGER)) AS events_this_week,
        count(*) FILTER (WHERE w.event = s.velocity_event
                           AND w.timestamp < t - to_days(s.week_days::INTEGER)) AS events_last_week,
        count(DISTINCT w.user_key) FILTER (
            WHERE w.event = s.breadth_event AND w.user_key IS NOT NULL
              AND NOT list_contains((SELECT placeholder_ids FROM plg_settings), lower(w.user_key))
        ) AS active_creators,
        count(*) FILTER (WHERE w.event = s.integration_event) AS integrations_connected
    FROM windowed w, s
    GROUP BY w.org_id
),
names AS (
    SELECT
        json_extract_string(properties, '$."$group_key"') AS org_id,
        arg_max(json_extract_string(properties, '$."$group_set".name'),
                (timestamp, filename, file_row_number)) AS org_name
    FROM read_parquet(getvariable('files'), filename = true, file_row_number = true, union_by_name = true)
    WHERE event = '$groupidentify' AND json_valid(properties)
      AND json_extract_string(properties, '$."$group_type"') = 'organization'
      AND timestamp < t
    GROUP BY 1
),
scored AS (
    SELECT
        p.org_id,
        (CASE WHEN p.events_this_week > p.events_last_week * s.velocity_ratio
              THEN s.velocity_points ELSE 0 END)
        + (CASE WHEN p.active_creators >= s.breadth_min_creators
                THEN s.breadth_points ELSE p.active_creators * s.points_per_creator END)
        + (CASE WHEN p.integrations_connected >= 1 THEN s.integration_points ELSE 0 END) AS pql_score
    FROM per_org p, s
)
SELECT c.org_id, n.org_name, c.pql_score, c.pql_score >= s.threshold AS is_pql
FROM scored c LEFT JOIN names n USING (org_id), s;

CREATE OR REPLACE TEMP TABLE plg_signals AS
WITH s AS (SELECT * FROM plg_signal_settings),
day AS (
    SELECT getvariable('as_of') - INTERVAL 1 DAY AS start, getvariable('as_of') AS stop
),
stitched AS (  -- plg_events with the person key of each row
    SELECT e.*, coalesce(k.person_key, e.distinct_id) AS person_key
    FROM plg_events e LEFT JOIN plg_person_keys k USING (distinct_id)
),
scores AS (SELECT * FROM plg_pql_scores(getvariable('as_of'))),
crossed AS (
    SELECT 0 AS part, 'pql_crossed' AS signal, cur.org_id, cur.org_id AS subject,
           NULL::VARCHAR AS detail, (SELECT stop FROM day) - INTERVAL 1 MICROSECOND AS occurred_at,
           NULL::VARCHAR AS distinct_id
    FROM scores cur
    LEFT JOIN plg_pql_scores(getvariable('as_of') - INTERVAL 1 DAY) prev USING (org_id), s
    WHERE cur.is_pql AND coalesce(prev.pql_score, 0) < s.threshold
),
first_org AS (  -- the organization a person first acted in, before T
    SELECT person_key, arg_min(org_id, (timestamp, org_id)) AS org_id
    FROM stitched
    WHERE org_id IS NOT NULL AND timestamp < getvariable('as_of')
    GROUP BY person_key
),
aha AS (
    SELECT 1 AS part, 'aha_reached' AS signal, o.org_id, f.person_key AS subject, s.aha_event AS detail,
           f.first_at AS occurred_at, f.person_key AS distinct_id
    FROM (
        SELECT st.person_key, min(st.timestamp) AS first_at
        FROM stitched st, s
        WHERE st.event = s.aha_event AND st.timestamp < getvariable('as_of')
        GROUP BY st.person_key
    ) f
    LEFT JOIN first_org o USING (person_key), s, day
    WHERE f.first_at >= day.start
),
org_events AS (
    SELECT 2 AS part, signal, org_id, org_id AS subject, detail, timestamp AS occurred_at, distinct_id
    FROM (
        SELECT
            st.org_id, st.timestamp, st.distinct_id,
            CASE st.event WHEN s.usage_ceiling_event THEN 'usage_ceiling'
                          WHEN s.enterprise_event THEN 'enterprise_interest'
                          ELSE 'integration_connected' END AS signal,
            CASE st.event WHEN s.usage_ceiling_event THEN NULL
                          WHEN s.enterprise_event THEN s.enterprise_detail
                          ELSE s.integration_detail END AS detail_property,
            nullif(regexp_replace(
                json_extract_string(st.properties, '$."' || detail_property || '"'),
                '^\s+|\s+$', '', 'g'), '') AS detail
        FROM stitched st, s, day
        WHERE st.event IN (s.usage_ceiling_event, s.enterprise_event, s.integration_event)
          AND st.org_id IS NOT NULL
          AND st.timestamp >= day.start AND st.timestamp < day.stop
          AND st.person_key NOT IN (SELECT person_key FROM plg_excluded)
    )
    QUALIFY row_number() OVER (PARTITION BY org_id, signal, detail ORDER BY timestamp, distinct_id) = 1
),
raised AS (
    SELECT r.*
    FROM (SELECT * FROM crossed UNION ALL SELECT * FROM aha UNION ALL SELECT * FROM org_events) r,
         s, plg_settings g
    WHERE list_contains(s.enabled, r.signal)
      AND r.org_id IS NOT NULL
      AND NOT list_contains(g.test_org_ids, r.org_id)
),
persons AS (  -- the person key of each row naming someone
    SELECT r.*, coalesce(k.person_key, r.distinct_id) AS person_key
    FROM raised r LEFT JOIN plg_person_keys k USING (distinct_id)
),
emails AS (
    SELECT person_key, arg_max(value, (timestamp, value)) AS email
    FROM plg_profiles WHERE key = 'email'
    GROUP BY person_key
)
SELECT
    p.signal || ':' || p.subject || ':' || coalesce(p.detail, '-') || ':'
        || strftime((SELECT start FROM day), '%Y-%m-%d') AS signal_key,
    p.signal,
    p.org_id,
    c.org_name,
    p.distinct_id,
    CASE WHEN p.distinct_id IS NOT NULL THEN m.email END AS email,
    p.detail,
    p.occurred_at,
    strftime(getvariable('as_of'), '%Y-%m-%d') AS as_of,
    c.pql_score,
    c.is_pql
FROM persons p
LEFT JOIN emails m ON m.person_key = p.person_key
LEFT JOIN scores c ON c.org_id = p.org_id
WHERE p.distinct_id IS NULL OR p.person_key NOT IN (SELECT person_key FROM plg_excluded)
QUALIFY row_number() OVER (PARTITION BY signal_key ORDER BY p.part, p.org_id) = 1
ORDER BY p.signal, p.org_id, signal_key;
