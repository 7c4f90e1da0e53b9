-- PQL threshold calibration in DuckDB, straight from the export files: the independent oracle for
-- models/calibration.py (tests compare the two row by row on generated data).
--
-- Inputs (DuckDB variables; unset ones take the plg-bridge defaults):
--   files, as_of        export Parquet paths; T, TIMESTAMPTZ at 00:00 UTC (exclusive)    (required)
--   horizon_days, date_step_days, lookback_days, threshold_step, min_flagged, min_lift
--                       the calibration settings (30, 1, 90, 5, 20, 1.5)
--   velocity_event, breadth_event, integration_event, velocity_ratio, velocity_points,
--   breadth_min_creators, breadth_points, points_per_creator, integration_points, threshold,
--   week_days           the PQL settings (see include/config/plg_bridge.yaml)
--   conversion_event, placeholder_ids, test_org_ids     as in identity.sql
--
-- Creates temporary tables:
--   plg_calibration_dates         (as_of, scored, already_converted, observations, positives)
--   plg_calibration_observations  (as_of, org_id, pql_score, converted)
--   plg_calibration               (threshold, observations, positives, flagged, flagged_orgs,
--                                 true_positives, precision, recall, base_rate, lift, f1,
--                                 qualifies, recommended, current)
--
-- Definitions (see models/calibration.py):
-- * as-of dates D = T - horizon, T - horizon - step, ... back to T - horizon - lookback and not before
--   the first day with a PQL event + 2 PQL weeks;
-- * the PQL score as of D is pql.sql's (rows deduplicated by uuid across files, organization from
--   $group_0 else $groups.organization, unparseable properties left out, half-open weeks), per D;
-- * observations: organizations scored as of D, minus test_org_ids, minus those with a conversion
--   before D; converted = a conversion of the organization in [D, D + horizon); conversions are the
--   usable conversion events (JSON object properties, distinct_id not a placeholder), one per uuid
--   (the earliest), with their own organization (none: ignored);
-- * per threshold t (0, step, ... up to the maximum score, plus the PQL threshold): flagged =
--   pql_score >= t over all observations; precision, recall, base rate, lift = precision / base rate,
--   F1 = 2 tp / (flagged + positives), null on a zero denominator;
-- * recommended: the highest F1 among thresholds with flagged >= min_flagged and lift >= min_lift;
--   ties go to the higher threshold.
SET TimeZone = 'UTC';

CREATE OR REPLACE TEMP TABLE plg_calibration_settings AS
SELECT
    coalesce(getvariable('horizon_days'), 30) AS horizon_days,
    coalesce(getvariable('date_step_days'), 1) AS date_step_days,
    coalesce(getvariable('lookback_days'), 90) AS lookback_days,
    coalesce(getvariable('threshold_step'), 5) AS threshold_step,
    coalesce(getvariable('min_flagged'), 20) AS min_flagged,
    coalesce(getvariable('min_lift'), 1.5)::DOUBLE AS min_lift,
    coalesce(getvariable('velocity_event'), 'core_feature_used') AS velocity_event,
    coalesce(getvariable('breadth_event'), 'creation_event') AS breadth_event,
    coalesce(getvariable('integration_event'), 'integration_connected') AS integration_event,
    coalesce(getvariable('velocity_ratio'), 1.5)::DOUBLE AS velocity_ratio,
    coalesce(getvariable('velocity_points'), 40) AS velocity_points,
    coalesce(getvariable('breadth_min_creators'), 3) AS breadth_min_creators,
    coalesce(getvariable('breadth_points'), 35) AS breadth_points,
    coalesce(getvariable('points_per_creator'), 10) AS points_per_creator,
    coalesce(getvariable('integration_points'), 25) AS integration_points,
    coalesce(getvariable('threshold'), 75) AS threshold,
    coalesce(getvariable('week_days'), 7) AS week_days,
    coalesce(getvariable('conversion_event'), 'subscription_started') AS conversion_event,
    coalesce(getvariable('placeholder_ids'),
             ['', 'null', 'undefined', 'anonymous', '0', 'none', 'nan']) AS placeholder_ids,
    coalesce(getvariable('test_org_ids'), []::VARCHAR[]) AS test_org_ids;

CREATE OR REPLACE TEMP TABLE plg_calibration_raw AS
SELECT filename, file_row_number, uuid, timestamp, _inserted_at, event, distinct_id, person_id, properties,
       coalesce(
           json_extract_string(properties, '$."$group_0"'),
           json_extract_string(properties, '$."$groups".organization')
       ) AS org_id
FROM read_parquet(getvariable('files'), filename = true, file_row_number = true)
WHERE json_valid(properties) AND json_type(properties) = 'OBJECT';

-- PQL events per organization and day (the partials' counts and creators)
CREATE OR REPLACE TEMP TABLE plg_calibration_events AS
WITH s AS (SELECT * FROM plg_calibration_settings)
SELECT * EXCLUDE (keep) FROM (  -- one row per uuid across all files: the earliest _inserted_at, then file
    SELECT r.org_id, r.event, date_trunc('day', r.timestamp) AS day,
           coalesce(nullif(r.person_id, ''), r.distinct_id) AS user_key,
           row_number() OVER (PARTITION BY r.uuid
                              ORDER BY r._inserted_at NULLS LAST, r.filename, r.file_row_number) = 1 AS keep
    FROM plg_calibration_raw r, s
    WHERE r.event IN (s.velocity_event, s.breadth_event, s.integration_event)
)
WHERE keep AND org_id IS NOT NULL AND org_id <> '';

CREATE OR REPLACE TEMP TABLE plg_calibration_conversions AS
WITH s AS (SELECT * FROM plg_calibration_settings),
once AS (
    SELECT r.uuid, nullif(r.org_id, '') AS org_id, r.timestamp
    FROM plg_calibration_raw r, s
    WHERE r.event = s.conversion_event
      AND r.distinct_id IS NOT NULL
      AND NOT list_contains(list_concat(s.placeholder_ids, ['', '00000000-0000-0000-0000-000000000000']),
                            lower(trim(r.distinct_id)))
    QUALIFY row_number() OVER (PARTITION BY r.uuid ORDER BY r.timestamp, r.distinct_id) = 1
)
SELECT org_id, timestamp FROM once WHERE org_id IS NOT NULL;

CREATE OR REPLACE TEMP TABLE plg_calibration_as_of AS
WITH s AS (SELECT * FROM plg_calibration_settings),
bounds AS (
    SELECT getvariable('as_of') - to_days(s.horizon_days) AS last,
           greatest(
               (SELECT min(day) FROM plg_calibration_events WHERE day < getvariable('as_of'))
                   + to_days(2 * s.week_days),
               getvariable('as_of') - to_days(s.horizon_days + s.lookback_days)
           ) AS earliest,
           s.date_step_days AS step
    FROM s
)
SELECT last - to_days((k * step)::INTEGER) AS d
FROM bounds
CROSS JOIN range(0, CASE WHEN earliest <= last THEN datediff('day', earliest, last) // step + 1 ELSE 0 END)
    AS r(k);

CREATE OR REPLACE TEMP TABLE plg_calibration_scores AS
WITH s AS (SELECT * FROM plg_calibration_settings),
windowed AS (
    SELECT a.d, e.*
    FROM plg_calibration_as_of a
    CROSS JOIN s
    JOIN plg_calibration_events e
      ON e.day >= a.d - to_days(2 * s.week_days) AND e.day < a.d
),
per_org AS (
    SELECT w.d, w.org_id,
           count(*) FILTER (WHERE w.event = s.velocity_event AND w.day >= w.d - to_days(s.week_days))
               AS events_this_week,
           count(*) FILTER (WHERE w.event = s.velocity_event AND w.day < w.d - to_days(s.week_days))
               AS events_last_week,
           count(DISTINCT w.user_key) FILTER (
               WHERE w.event = s.breadth_event AND w.user_key IS NOT NULL
                 AND NOT list_contains(s.placeholder_ids, lower(w.user_key))
           ) AS active_creators,
           count(*) FILTER (WHERE w.event = s.integration_event) AS integrations_connected
    FROM windowed w, s
    GROUP BY w.d, w.org_id
)
SELECT p.d, p.org_id,
       (CASE WHEN p.events_this_week > p.events_last_week * s.velocity_ratio THEN s.velocity_points ELSE 0 END)
       + (CASE WHEN p.active_creators >= s.breadth_min_creators THEN s.breadth_points
               ELSE p.active_creators * s.points_per_creator END)
       + (CASE WHEN p.integrations_connected >= 1 THEN s.integration_points ELSE 0 END) AS pql_score
FROM per_org p, s
WHERE NOT list_contains(s.test_org_ids, p.org_id);

CREATE OR REPLACE TEMP TABLE plg_calibration_judged AS
WITH s AS (SELECT * FROM plg_calibration_settings)
SELECT c.d, c.org_id, c.pql_score,
       EXISTS (SELECT 1 FROM plg_calibration_conversions v
               WHERE v.org_id = c.org_id AND v.timestamp < c.d) AS already_converted,
       EXISTS (SELECT 1 FROM plg_calibration_conversions v
               WHERE v.org_id = c.org_id AND v.timestamp >= c.d
                 AND v.timestamp < c.d + to_days(s.horizon_days)) AS converted
FROM plg_calibration_scores c, s;

CREATE OR REPLACE TEMP TABLE plg_calibration_observations AS
SELECT strftime(d, '%Y-%m-%d') AS as_of, org_id, pql_score, converted
FROM plg_calibration_judged
WHERE NOT already_converted
ORDER BY as_of, org_id;

CREATE OR REPLACE TEMP TABLE plg_calibration_dates AS
SELECT strftime(a.d, '%Y-%m-%d') AS as_of,
       count(j.org_id) AS scored,
       count(j.org_id) FILTER (WHERE j.already_converted) AS already_converted,
       count(j.org_id) FILTER (WHERE NOT j.already_converted) AS observations,
       count(j.org_id) FILTER (WHERE NOT j.already_converted AND j.converted) AS positives
FROM plg_calibration_as_of a LEFT JOIN plg_calibration_judged j USING (d)
GROUP BY a.d
ORDER BY as_of;

CREATE OR REPLACE TEMP TABLE plg_calibration AS
WITH s AS (SELECT * FROM plg_calibration_settings),
grid AS (
    SELECT DISTINCT unnest(list_concat(
        range(0, s.velocity_points + s.breadth_points + s.integration_points + 1, s.threshold_step),
        [s.threshold])) AS threshold
    FROM s
),
totals AS (
    SELECT count(*) AS observations, count(*) FILTER (WHERE converted) AS positives
    FROM plg_calibration_observations
),
counted AS (
    SELECT g.threshold, t.observations, t.positives,
           count(o.org_id) AS flagged,
           count(DISTINCT o.org_id) AS flagged_orgs,
           count(o.org_id) FILTER (WHERE o.converted) AS true_positives
    FROM grid g CROSS JOIN totals t
    LEFT JOIN plg_calibration_observations o ON o.pql_score >= g.threshold
    GROUP BY ALL
),
rated AS (
    SELECT *,
           true_positives / nullif(flagged, 0)::DOUBLE AS precision,
           true_positives / nullif(positives, 0)::DOUBLE AS recall,
           positives / nullif(observations, 0)::DOUBLE AS base_rate,
           2 * true_positives / nullif(flagged + positives, 0)::DOUBLE AS f1
    FROM counted
),
lifted AS (
    SELECT r.*, r.precision / nullif(r.base_rate, 0) AS lift FROM rated r
),
qualified AS (
    SELECT l.*, coalesce(l.flagged >= s.min_flagged AND l.lift >= s.min_lift, false) AS qualifies,
           l.threshold = s.threshold AS current
    FROM lifted l, s
),
best AS (
    SELECT threshold FROM qualified WHERE qualifies AND f1 IS NOT NULL
    ORDER BY f1 DESC, threshold DESC LIMIT 1
)
SELECT q.threshold, q.observations, q.positives, q.flagged, q.flagged_orgs, q.true_positives,
       q.precision, q.recall, q.base_rate, q.lift, q.f1, q.qualifies,
       q.threshold IN (SELECT threshold FROM best) AS recommended, q.current
FROM qualified q
ORDER BY q.threshold;
