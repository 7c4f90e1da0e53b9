-- HogQL: PQL score per organization, to paste into a PostHog SQL insight.
--
-- Corrects the guide's query (seed-posthog-for-plg): there, "this week" (toDate(timestamp) >= today() - 7)
-- and "last week" (BETWEEN today() - 14 AND today() - 7) both contained day today()-7, and today's partial
-- day counted, so the score moved during the day and one day's events scored twice. Here T is a fixed
-- as-of date (edit it, or use toStartOfDay(now()) for "up to midnight"), weeks are half-open:
-- this week = [T-7d, T), last week = [T-14d, T-7d); integrations are counted in the 14-day window only,
-- and creators are persons (person_id), not raw distinct_ids, so one user on two devices counts once.
-- The guide also ends with HAVING pql_score >= 75; we return every scored organization with is_pql.
-- The organization's name comes from PostHog's groups table, where $groupidentify's $group_set is merged
-- per property (a later call carrying only `plan` keeps the name), as models/pql.py merges it.
WITH toDateTime('2026-11-20 00:00:00', 'UTC') AS as_of
SELECT
    s.org_id AS org_id,
    g.properties.name AS org_name,
    s.events_this_week AS events_this_week,
    s.events_last_week AS events_last_week,
    s.active_creators AS active_creators,
    s.integrations_connected AS integrations_connected,
    if(s.events_this_week > s.events_last_week * 1.5, 40, 0)
        + if(s.active_creators >= 3, 35, s.active_creators * 10)
        + if(s.integrations_connected >= 1, 25, 0) AS pql_score,
    pql_score >= 75 AS is_pql
FROM (
    SELECT
        properties.$group_0 AS org_id,
        countIf(event = 'core_feature_used' AND timestamp >= as_of - INTERVAL 7 DAY) AS events_this_week,
        countIf(event = 'core_feature_used' AND timestamp < as_of - INTERVAL 7 DAY) AS events_last_week,
        uniqIf(person_id, event = 'creation_event') AS active_creators,
        countIf(event = 'integration_connected') AS integrations_connected
    FROM events
    WHERE timestamp >= as_of - INTERVAL 14 DAY
      AND timestamp < as_of
      AND event IN ('core_feature_used', 'creation_event', 'integration_connected')
      AND properties.$group_0 IS NOT NULL AND properties.$group_0 != ''
    GROUP BY org_id
) AS s
LEFT JOIN (SELECT key, properties FROM groups WHERE index = 0) AS g ON g.key = s.org_id
ORDER BY pql_score DESC, org_id
