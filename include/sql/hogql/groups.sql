-- HogQL: organization properties (name, plan, seat count, MRR), to paste into a PostHog SQL insight.
-- Same fields as plugins/plg_bridge/models/groups.py (tested against include/sql/duckdb/groups.sql).
--
-- PostHog's `groups` table holds each group's current properties, merged from every `$groupidentify`
-- `$group_set` (a call without `mrr` keeps the earlier MRR), which is what models/groups.py rebuilds from
-- the export as of T. The differences: this is "now", not as of T, and organizations that sent events
-- but never `$groupidentify` are missing here (models/groups.py lists them with empty properties: the
-- LEFT JOIN below adds them back). Test organizations are left out (edit the list). updated_at is
-- PostHog's time of the group's latest update (ingestion time; models/groups.py: the latest
-- `$groupidentify` event's timestamp before T).
SELECT
    o.org_id AS org_id,
    g.properties.name AS name,
    g.properties.plan AS plan,
    toInt64OrNull(toString(g.properties.seat_count)) AS seat_count,
    toFloat64OrNull(toString(g.properties.mrr)) AS mrr,
    g.updated_at AS updated_at
FROM (
    SELECT DISTINCT properties.$group_0 AS org_id
    FROM events
    WHERE timestamp < toDateTime('2026-11-20 00:00:00', 'UTC')
      AND properties.$group_0 IS NOT NULL AND properties.$group_0 != ''
) AS o
LEFT JOIN (SELECT key, properties, updated_at FROM groups WHERE index = 0) AS g ON g.key = o.org_id
WHERE o.org_id NOT IN ('org_test')
ORDER BY org_id
