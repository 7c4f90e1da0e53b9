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
-- The signals (one row per signal key = signal:subject:detail:day, day = T-1d; '-' when none). The
-- rules (docs/models.md), written from their definition:
--   aha_reached            subject = person: the stitched person's first-ever <aha_event> before T
--                          falls in [T-1d, T); distinct_id = the person key (the smallest id that
--                          sent an $identify, else the smallest id), detail = the event name,
--                          occurred_at = that first time, org = the organization of that Aha event
--                          itself (several: the smallest org_id; none: NULL, still raised)
--   usage_ceiling          subject = organization, at most one per organization within
--   enterprise_interest    <cooldown_days>: the organization's occurrence days (any time before T,
--                          by persons not excluded) are taken greedily: the first, then the first
--                          at least <cooldown_days> later, ...; raised when [T-1d, T) is one.
--                          enterprise_interest lists the day's feature names (properties.
--                          <enterprise_detail>: lower case, whitespace collapsed and trimmed,
--                          <detail_placeholders> dropped), sorted and joined with ', '; key detail '-'
--   integration_connected  the same per organization and normalised provider (no provider: none)
--                          (organization signals name the person of the day's first occurrence,
--                          ties: person key, then distinct_id; distinct_id = that person's key)
--   pql_crossed            subject = organization: daily scores as of D = T - <pql_lookback_days> ..
--                          T (0 when unscored); armed at the first D when below the threshold; at
--                          each later D a score below <pql_rearm_below> re-arms, an armed score at
--                          or above the threshold alerts (and disarms) unless the previous alert is
--                          less than <cooldown_days> before; raised when D = T alerts; no detail,
--                          no person, occurred_at = T - 1 microsecond
-- Left out: signals not in <enabled>, organization signals without an organization, test
-- organizations, and rows naming an excluded person (plg_excluded). email = the latest email
-- (before T) across the person's distinct ids (ties: the larger value). org_name = the latest
-- non-blank $group_set name before T (group properties merge per property, as in PostHog);
-- pql_score, is_pql: the organization's PQL row as of T (NULL when it has no scoring event).
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
    coalesce(getvariable('signals_integration_detail'), 'provider') AS integration_detail,
    coalesce(getvariable('signals_cooldown_days'), 7) AS cooldown_days,
    coalesce(getvariable('signals_pql_rearm_below'), 50) AS pql_rearm_below,
    coalesce(getvariable('signals_pql_lookback_days'), 28) AS pql_lookback_days,
    coalesce(getvariable('signals_detail_placeholders'),
             ['-', '--', 'n/a', 'na', 'none', 'null', 'undefined', 'unknown']) AS detail_placeholders;

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

-- PQL scores as of each daily date D = T - lookback .. T (the series the hysteresis reads).
CREATE OR REPLACE TEMP TABLE plg_pql_daily AS
WITH s AS (SELECT * FROM plg_signal_settings),
dates AS (
    SELECT getvariable('as_of') - to_days(k::INTEGER) AS t
    FROM s, range(0, s.pql_lookback_days + 1) r(k)
),
windowed AS (
    SELECT d.t, p.*, coalesce(nullif(p.person_id, ''), p.distinct_id) AS user_key
    FROM plg_pql_rows p, s
    JOIN dates d ON p.timestamp >= d.t - to_days((2 * s.week_days)::INTEGER) AND p.timestamp < d.t
    WHERE p.org_id IS NOT NULL AND p.org_id <> ''
),
per_org AS (
    SELECT
        w.t, w.org_id,
        count(*) FILTER (WHERE w.event = s.velocity_event
                           AND w.timestamp >= w.t - to_days(s.week_days::INTEGER)) AS events_this_week,
        count(*) FILTER (WHERE w.event = s.velocity_event
                           AND w.timestamp < w.t - to_days(s.week_days::INTEGER)) AS events_last_week,
        count(DISTINCT w.user_key) FILTER (
            WHERE w.event = s.breadth_event AND w.user_key IS NOT NULL
              AND NOT list_contains((SELECT placeholder_ids FROM plg_settings), lower(trim(w.user_key)))
        ) AS active_creators,
        count(*) FILTER (WHERE w.event = s.integration_event) AS integrations_connected
    FROM windowed w, s
    GROUP BY w.t, w.org_id
)
SELECT
    p.t, p.org_id,
    (CASE WHEN p.events_this_week > p.events_last_week * s.velocity_ratio
          THEN s.velocity_points ELSE 0 END)
    + (CASE WHEN p.active_creators >= s.breadth_min_creators
            THEN s.breadth_points ELSE p.active_creators * s.points_per_creator END)
    + (CASE WHEN p.integrations_connected >= 1 THEN s.integration_points ELSE 0 END) AS pql_score
FROM per_org p, s;

-- Organization names as PostHog merges $group_set: the latest non-blank name before T.
CREATE OR REPLACE TEMP TABLE plg_org_names AS
SELECT
    json_extract_string(properties, '$."$group_key"') AS org_id,
    arg_max(json_extract_string(properties, '$."$group_set".name'),
            (timestamp, filename, file_row_number)) AS org_name
FROM read_parquet(getvariable('files'), filename = true, file_row_number = true, union_by_name = true)
WHERE event = '$groupidentify' AND json_valid(properties)
  AND json_extract_string(properties, '$."$group_type"') = 'organization'
  AND trim(coalesce(json_extract_string(properties, '$."$group_set".name'), '')) <> ''
  AND timestamp < getvariable('as_of')
GROUP BY 1;

-- Hysteresis over the daily series, one date at a time per organization.
CREATE OR REPLACE TEMP TABLE plg_pql_alerts AS
WITH RECURSIVE
s AS (SELECT * FROM plg_signal_settings),
orgs AS (SELECT DISTINCT org_id FROM plg_pql_daily),
series AS (
    SELECT o.org_id, k, getvariable('as_of') - to_days((s.pql_lookback_days - k)::INTEGER) AS t,
           coalesce(d.pql_score, 0) AS score
    FROM orgs o, s, range(0, s.pql_lookback_days + 1) r(k)
    LEFT JOIN plg_pql_daily d ON d.org_id = o.org_id
        AND d.t = getvariable('as_of') - to_days((s.pql_lookback_days - k)::INTEGER)
),
walk(org_id, k, t, armed, last_alert, alert) AS (
    SELECT x.org_id, x.k, x.t, x.score < s.threshold, NULL::TIMESTAMPTZ, false
    FROM series x, s WHERE x.k = 0
    UNION ALL
    SELECT x.org_id, x.k, x.t,
           CASE WHEN x.score < s.pql_rearm_below THEN true
                WHEN go THEN false ELSE w.armed END,
           CASE WHEN go THEN x.t ELSE w.last_alert END,
           go
    FROM walk w
    JOIN series x ON x.org_id = w.org_id AND x.k = w.k + 1, s,
    LATERAL (SELECT x.score >= s.pql_rearm_below AND w.armed AND x.score >= s.threshold
                    AND (w.last_alert IS NULL OR x.t - w.last_alert >= to_days(s.cooldown_days::INTEGER))
                    AS go)
)
SELECT org_id, t AS day FROM walk WHERE alert;

CREATE OR REPLACE TEMP MACRO plg_pql_scores(t) AS TABLE
SELECT d.org_id, n.org_name, d.pql_score, d.pql_score >= s.threshold AS is_pql
FROM plg_pql_daily d LEFT JOIN plg_org_names n USING (org_id), plg_signal_settings s
WHERE d.t = t;

-- Organization-signal occurrences before T by persons not excluded, details normalised.
CREATE OR REPLACE TEMP TABLE plg_org_occurrences AS
WITH s AS (SELECT * FROM plg_signal_settings),
rows AS (
    SELECT e.org_id, e.timestamp, e.distinct_id, coalesce(k.person_key, e.distinct_id) AS person_key,
           CASE e.event WHEN s.usage_ceiling_event THEN 'usage_ceiling'
                        WHEN s.enterprise_event THEN 'enterprise_interest'
                        ELSE 'integration_connected' END AS signal,
           CASE e.event WHEN s.usage_ceiling_event THEN NULL
                        WHEN s.enterprise_event THEN json_extract_string(e.properties, '$."' || s.enterprise_detail || '"')
                        ELSE json_extract_string(e.properties, '$."' || s.integration_detail || '"') END AS raw_detail
    FROM plg_events e LEFT JOIN plg_person_keys k USING (distinct_id), s
    WHERE e.event IN (s.usage_ceiling_event, s.enterprise_event, s.integration_event)
      AND e.org_id IS NOT NULL AND e.timestamp < getvariable('as_of')
),
normal AS (
    SELECT r.*, nullif(lower(trim(regexp_replace(raw_detail, '\s+', ' ', 'g'))), '') AS clean
    FROM rows r
)
SELECT n.org_id, n.timestamp, n.distinct_id, n.person_key, n.signal,
       CASE WHEN list_contains(list_transform(s.detail_placeholders, lambda p: lower(trim(p))), n.clean)
            THEN NULL ELSE n.clean END AS detail,
       date_trunc('day', n.timestamp) AS day
FROM normal n, s
WHERE n.person_key NOT IN (SELECT person_key FROM plg_excluded);

CREATE OR REPLACE TEMP TABLE plg_org_raised AS
WITH RECURSIVE
s AS (SELECT * FROM plg_signal_settings),
days AS (
    SELECT DISTINCT org_id, signal,
           CASE WHEN signal = 'integration_connected' THEN detail ELSE '-' END AS grp, day
    FROM plg_org_occurrences
    WHERE signal <> 'integration_connected' OR detail IS NOT NULL
),
chain(org_id, signal, grp, day) AS (
    SELECT org_id, signal, grp, min(day) FROM days GROUP BY ALL
    UNION ALL
    SELECT c.org_id, c.signal, c.grp, min(d.day)
    FROM chain c JOIN days d USING (org_id, signal, grp), s
    WHERE d.day >= c.day + to_days(s.cooldown_days::INTEGER)
    GROUP BY ALL
)
SELECT * FROM chain;

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
    SELECT 0 AS part, 'pql_crossed' AS signal, a.org_id, a.org_id AS subject,
           NULL::VARCHAR AS detail, NULL::VARCHAR AS key_detail,
           (SELECT stop FROM day) - INTERVAL 1 MICROSECOND AS occurred_at, NULL::VARCHAR AS distinct_id
    FROM plg_pql_alerts a WHERE a.day = getvariable('as_of')
),
first_aha AS (
    SELECT st.person_key, min(st.timestamp) AS first_at
    FROM stitched st, s
    WHERE st.event = s.aha_event AND st.timestamp < getvariable('as_of')
    GROUP BY st.person_key
),
aha AS (
    SELECT 1 AS part, 'aha_reached' AS signal,
           (SELECT min(st.org_id) FROM stitched st, s
            WHERE st.person_key = f.person_key AND st.event = s.aha_event AND st.timestamp = f.first_at)
               AS org_id,
           f.person_key AS subject, s.aha_event AS detail, s.aha_event AS key_detail,
           f.first_at AS occurred_at, f.person_key AS distinct_id
    FROM first_aha f, s, day
    WHERE f.first_at >= day.start
),
today AS (
    SELECT o.*, CASE WHEN o.signal = 'integration_connected' THEN o.detail ELSE '-' END AS grp
    FROM plg_org_occurrences o, day
    WHERE o.timestamp >= day.start AND o.timestamp < day.stop
      AND (o.signal <> 'integration_connected' OR o.detail IS NOT NULL)
),
org_events AS (
    SELECT 2 AS part, t.signal, t.org_id, t.org_id AS subject,
           (SELECT string_agg(DISTINCT x.detail, ', ' ORDER BY x.detail) FROM today x
            WHERE x.org_id = t.org_id AND x.signal = t.signal AND x.grp = t.grp) AS detail,
           t.grp AS key_detail, t.timestamp AS occurred_at, t.person_key AS distinct_id
    FROM today t
    JOIN plg_org_raised r ON r.org_id = t.org_id AND r.signal = t.signal AND r.grp = t.grp
        AND r.day = (SELECT start FROM day)
    QUALIFY row_number() OVER (PARTITION BY t.org_id, t.signal, t.grp
                               ORDER BY t.timestamp, t.person_key, t.distinct_id) = 1
),
raised AS (
    SELECT r.*
    FROM (SELECT * FROM crossed UNION ALL SELECT * FROM aha UNION ALL SELECT * FROM org_events) r,
         s, plg_settings g
    WHERE list_contains(s.enabled, r.signal)
      AND (r.org_id IS NOT NULL OR r.signal = 'aha_reached')
      AND (r.org_id IS NULL OR NOT list_contains(g.test_org_ids, r.org_id))
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
    p.signal || ':' || p.subject || ':' || coalesce(p.key_detail, '-') || ':'
        || strftime((SELECT start FROM day), '%Y-%m-%d') AS signal_key,
    p.signal,
    p.org_id,
    n.org_name,
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
LEFT JOIN plg_org_names n ON n.org_id = p.org_id
WHERE p.distinct_id IS NULL OR p.person_key NOT IN (SELECT person_key FROM plg_excluded)
QUALIFY row_number() OVER (PARTITION BY signal_key ORDER BY p.part, p.org_id) = 1;
