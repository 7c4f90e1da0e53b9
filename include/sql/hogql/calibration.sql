-- HogQL: PQL threshold calibration, to paste into a PostHog SQL insight. Same model as
-- plugins/plg_bridge/models/calibration.py (tested against include/sql/duckdb/calibration.sql).
--
-- The guide says to "calibrate the threshold after 30 days" but never says how. This backtests the
-- PQL flag: for every day D in [T - 30d - 90d, T - 30d] (T = 2026-11-20 00:00 UTC, exclusive; edit it
-- and the numbers below together), score each organization as of D with pql.sql's formula, and check
-- whether it converted (subscription_started with its $group_0) in [D, D + 30 days). Per threshold:
-- flagged organization-days, precision, recall, lift = precision / base rate, and F1.
--
-- What it corrects or makes explicit, compared with the guide:
-- * the score as of D uses half-open weeks [D-7d, D) and [D-14d, D-7d), not today() (see pql.sql);
-- * organizations that already converted before D are left out: customers are not leads;
-- * only organizations scored as of D (a PQL event in [D-14d, D)) are judged;
-- * qualifies = flagged >= 20 and lift >= 1.5; recommended = the qualifying threshold with the
--   highest f1 (ties go to the higher threshold), as models/calibration.py marks them.
-- plg-bridge also skips dates before the first PQL event + 14 days; here, start the data with the
-- events table's history, or raise the earliest D below.
WITH
    toDateTime('2026-11-20 00:00:00', 'UTC') AS as_of,
    30 AS horizon_days,
    90 AS lookback_days,
    arrayMap(i -> as_of - toIntervalDay(horizon_days + i), range(0, lookback_days + 1)) AS calibration_dates
SELECT
    threshold,
    count() AS observations,
    countIf(converted) AS positives,
    countIf(pql_score >= threshold) AS flagged,
    uniqIf(org_id, pql_score >= threshold) AS flagged_orgs,
    countIf(pql_score >= threshold AND converted) AS true_positives,
    true_positives / nullIf(flagged, 0) AS precision,
    true_positives / nullIf(positives, 0) AS recall,
    positives / nullIf(observations, 0) AS base_rate,
    precision / nullIf(base_rate, 0) AS lift,
    2 * true_positives / nullIf(flagged + positives, 0) AS f1,
    flagged >= 20 AND ifNull(lift, 0) >= 1.5 AS qualifies,
    -- the qualifying threshold with the highest F1, ties to the higher threshold (none: all false)
    qualifies AND threshold = argMax(threshold, tuple(qualifies, ifNull(f1, -1), threshold)) OVER () AS recommended,
    threshold = 75 AS current
FROM (
    SELECT
        s.d AS d,
        s.org_id AS org_id,
        if(s.events_this_week > s.events_last_week * 1.5, 40, 0)
            + if(s.active_creators >= 3, 35, s.active_creators * 10)
            + if(s.integrations_connected >= 1, 25, 0) AS pql_score,
        arrayExists(t -> t >= s.d AND t < s.d + toIntervalDay(horizon_days), c.converted_at) AS converted,
        arrayExists(t -> t < s.d, c.converted_at) AS already_converted
    FROM (
        SELECT
            d,
            properties.$group_0 AS org_id,
            countIf(event = 'core_feature_used' AND timestamp >= d - INTERVAL 7 DAY) AS events_this_week,
            countIf(event = 'core_feature_used' AND timestamp < d - INTERVAL 7 DAY) AS events_last_week,
            uniqIf(person_id, event = 'creation_event') AS active_creators,
            countIf(event = 'integration_connected') AS integrations_connected
        FROM events
        -- each event belongs to the dates D with D - 14d <= timestamp < D
        ARRAY JOIN arrayFilter(x -> timestamp >= x - INTERVAL 14 DAY AND timestamp < x, calibration_dates) AS d
        WHERE timestamp >= as_of - toIntervalDay(horizon_days + lookback_days + 14)
          AND timestamp < as_of - toIntervalDay(horizon_days)
          AND event IN ('core_feature_used', 'creation_event', 'integration_connected')
          AND properties.$group_0 IS NOT NULL AND properties.$group_0 != ''
        GROUP BY d, org_id
    ) AS s
    LEFT JOIN (
        SELECT properties.$group_0 AS org_id, groupArray(timestamp) AS converted_at
        FROM events
        WHERE event = 'subscription_started'
          AND timestamp < as_of
          AND properties.$group_0 IS NOT NULL AND properties.$group_0 != ''
        GROUP BY org_id
    ) AS c ON c.org_id = s.org_id
    WHERE NOT already_converted
)
ARRAY JOIN range(0, 101, 5) AS threshold
GROUP BY threshold
ORDER BY threshold
