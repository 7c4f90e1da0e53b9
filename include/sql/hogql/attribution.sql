-- HogQL: revenue by ORIGINAL acquisition source and campaign, to paste into a PostHog SQL insight.
-- Same model as plugins/plg_bridge/models/attribution.py (tested against include/sql/duckdb/attribution.sql).
--
-- What this corrects in the guide's query (seed-posthog-for-plg, "Revenue by original acquisition channel"):
-- * It read properties.$initial_utm_source from the subscription_started EVENT. PostHog writes $initial_*
--   to the PERSON ($set_once); later events do not carry them, so every conversion fell into a null source.
--   Here: person.properties.$initial_utm_*, and when the person has none (projects with
--   person_profiles: 'identified_only' record nothing for anonymous visits) the earliest UTM-tagged event
--   of the same person: events' person_id follows $identify merges, so the anonymous paid click belongs to
--   the person who later converted. A later direct visit carries no UTM values and never replaces it.
-- * `toDate(timestamp) >= today() - interval 90 day` moves with the clock and counts today's partial day.
--   Here T is fixed (edit it in the three places below, or use toStartOfDay(now())) and the window is
--   half-open: [T - 90 days, T).
-- * At-least-once delivery can repeat an event: each conversion counts once (GROUP BY uuid).
-- * Internal users, opted-out persons and test organizations are left out (edit the lists; the seed only
--   suggested a dashboard filter).
-- * avg_contract_value keeps the guide's definition (revenue per converting person) but is not rounded.
-- Caveat: person.properties are the current ones, not as of T; $initial_* are written once, so they only
-- differ for persons created after T, who have no conversion before T.
SELECT
    source,
    campaign,
    count(DISTINCT person_id) AS paid_conversions,
    count() AS conversions,
    sum(contract_value) AS total_revenue,
    total_revenue / paid_conversions AS avg_contract_value
FROM (
    SELECT
        c.person_id AS person_id,
        c.contract_value AS contract_value,
        if(c.initial_tagged, c.initial_source, t.source) AS source,
        if(c.initial_tagged, c.initial_campaign, t.campaign) AS campaign
    FROM (
        SELECT
            uuid,
            any(person_id) AS person_id,
            any(toFloat64OrZero(toString(properties.contract_value))) AS contract_value,
            any(person.properties.$initial_utm_source) AS initial_source,
            any(person.properties.$initial_utm_campaign) AS initial_campaign,
            any(concat(ifNull(toString(person.properties.$initial_utm_source), ''),
                       ifNull(toString(person.properties.$initial_utm_medium), ''),
                       ifNull(toString(person.properties.$initial_utm_campaign), '')) != '') AS initial_tagged
        FROM events
        WHERE event = 'subscription_started'
          AND timestamp >= toDateTime('2026-11-20 00:00:00', 'UTC') - INTERVAL 90 DAY
          AND timestamp < toDateTime('2026-11-20 00:00:00', 'UTC')
          -- exclusions: internal email domains, opted-out persons, test organizations
          AND NOT match(lower(ifNull(toString(person.properties.email), '')), '@([^@]*\\.)?(plgapp\\.io)$')
          AND lower(ifNull(toString(person.properties.analytics_opt_out), '')) NOT IN ('true', '1', 'yes', 'y', 'on')
          AND ifNull(toString(properties.$group_0), '') NOT IN ('org_test')
        GROUP BY uuid
    ) AS c
    LEFT JOIN (
        -- earliest UTM-tagged event per person (source, medium and campaign from the same event)
        SELECT
            person_id,
            argMin(properties.utm_source, timestamp) AS source,
            argMin(properties.utm_campaign, timestamp) AS campaign
        FROM events
        WHERE timestamp < toDateTime('2026-11-20 00:00:00', 'UTC')
          AND concat(ifNull(toString(properties.utm_source), ''), ifNull(toString(properties.utm_medium), ''),
                     ifNull(toString(properties.utm_campaign), '')) != ''
        GROUP BY person_id
    ) AS t ON t.person_id = c.person_id
    -- persons who ever acted in a test organization
    WHERE c.person_id NOT IN (
        SELECT DISTINCT person_id FROM events WHERE properties.$group_0 IN ('org_test')
    )
)
GROUP BY source, campaign
ORDER BY total_revenue DESC, source, campaign
