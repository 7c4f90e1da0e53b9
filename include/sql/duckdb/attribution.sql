-- First-touch attribution and revenue by original source in DuckDB: the oracle for
-- models/attribution.py. Needs identity.sql and exclusions.sql first (same variables).
--
-- Creates:
--   plg_first_touch  (person_key, source, medium, campaign, referring_domain, channel, origin,
--                    touched_at): one row per non-excluded person with an acquisition record before T
--   plg_revenue      (source, campaign, paid_conversions, conversions, total_revenue,
--                    avg_contract_value): conversions in [T - revenue_window_days, T)
--
-- First touch = the best record of the stitched identity, ranked: recorded $initial_utm_* (0), an
-- event's own utm_* (1), recorded $initial_referring_domain only (2), an event's $referring_domain
-- only (3); then earliest; then smallest values. Blank values are null. "Recorded" (origin
-- 'set_once') = the event's properties.$set_once or its person_properties column, each a record
-- of its own at the event's timestamp (the four values always come from one of the two).
-- channel = 'paid' when lower(trim(medium)) is a paid medium, else 'organic'.
CREATE OR REPLACE TEMP TABLE plg_touch_candidates AS
WITH raw AS (
    SELECT distinct_id, timestamp, 'set_once' AS origin,
           json_extract_string(properties, '$."$set_once"."$initial_utm_source"') AS s,
           json_extract_string(properties, '$."$set_once"."$initial_utm_medium"') AS m,
           json_extract_string(properties, '$."$set_once"."$initial_utm_campaign"') AS c,
           json_extract_string(properties, '$."$set_once"."$initial_referring_domain"') AS r
    FROM plg_events
    UNION ALL
    SELECT distinct_id, timestamp, 'set_once',
           json_extract_string(person_properties, '$."$initial_utm_source"'),
           json_extract_string(person_properties, '$."$initial_utm_medium"'),
           json_extract_string(person_properties, '$."$initial_utm_campaign"'),
           json_extract_string(person_properties, '$."$initial_referring_domain"')
    FROM plg_events
    WHERE person_properties IS NOT NULL
    UNION ALL
    SELECT distinct_id, timestamp, 'event',
           json_extract_string(properties, '$.utm_source'),
           json_extract_string(properties, '$.utm_medium'),
           json_extract_string(properties, '$.utm_campaign'),
           json_extract_string(properties, '$."$referring_domain"')
    FROM plg_events
),
cleaned AS (
    SELECT distinct_id, timestamp, origin,
           CASE WHEN trim(s) = '' THEN NULL ELSE s END AS utm_source,
           CASE WHEN trim(m) = '' THEN NULL ELSE m END AS utm_medium,
           CASE WHEN trim(c) = '' THEN NULL ELSE c END AS utm_campaign,
           CASE WHEN trim(r) = '' THEN NULL ELSE r END AS referring_domain
    FROM raw
    WHERE timestamp < getvariable('as_of')
)
SELECT *, (utm_source IS NOT NULL OR utm_medium IS NOT NULL OR utm_campaign IS NOT NULL) AS tagged
FROM cleaned
WHERE utm_source IS NOT NULL OR utm_medium IS NOT NULL OR utm_campaign IS NOT NULL
   OR referring_domain IS NOT NULL;

CREATE OR REPLACE TEMP TABLE plg_first_touch AS
WITH ranked AS (
    SELECT coalesce(k.person_key, t.distinct_id) AS person_key, t.*,
           (CASE WHEN t.tagged THEN 0 ELSE 2 END) + (CASE WHEN t.origin = 'set_once' THEN 0 ELSE 1 END) AS rank
    FROM plg_touch_candidates t LEFT JOIN plg_person_keys k USING (distinct_id)
),
best AS (
    SELECT * FROM ranked
    QUALIFY row_number() OVER (
        PARTITION BY person_key
        ORDER BY rank, timestamp, utm_source NULLS LAST, utm_medium NULLS LAST,
                 utm_campaign NULLS LAST, referring_domain NULLS LAST) = 1
)
SELECT b.person_key, b.utm_source AS source, b.utm_medium AS medium, b.utm_campaign AS campaign,
       b.referring_domain,
       CASE WHEN list_contains(s.paid_mediums, lower(trim(b.utm_medium))) THEN 'paid' ELSE 'organic' END
           AS channel,
       b.origin, b.timestamp AS touched_at
FROM best b, plg_settings s
WHERE b.person_key NOT IN (SELECT person_key FROM plg_excluded)
ORDER BY b.person_key;

-- Conversions: one row per uuid (PostHog delivers at least once), contract value as a number
-- (unparseable: 0, like ClickHouse toFloat64OrZero).
CREATE OR REPLACE TEMP TABLE plg_conversions AS
WITH s AS (SELECT * FROM plg_settings),
once AS (
    SELECT e.uuid, e.distinct_id, e.org_id, e.timestamp,
           TRY_CAST(trim(json_extract_string(e.properties, '$."' || s.contract_value_property || '"')) AS DOUBLE)
               AS contract_value
    FROM plg_events e, s
    WHERE e.event = s.conversion_event
    QUALIFY row_number() OVER (PARTITION BY e.uuid ORDER BY e.timestamp, e.distinct_id) = 1
),
keyed AS (
    SELECT o.*, coalesce(k.person_key, o.distinct_id) AS person_key
    FROM once o LEFT JOIN plg_person_keys k USING (distinct_id)
    WHERE o.timestamp < getvariable('as_of')
)
SELECT keyed.* FROM keyed, s
WHERE keyed.person_key NOT IN (SELECT person_key FROM plg_excluded)
  AND (keyed.org_id IS NULL OR NOT list_contains(s.test_org_ids, keyed.org_id));

CREATE OR REPLACE TEMP TABLE plg_revenue AS
SELECT f.source, f.campaign,
       count(DISTINCT c.person_key) AS paid_conversions,
       count(*) AS conversions,
       sum(coalesce(c.contract_value, 0)) AS total_revenue,
       sum(coalesce(c.contract_value, 0)) / count(DISTINCT c.person_key) AS avg_contract_value
FROM plg_conversions c
LEFT JOIN plg_first_touch f USING (person_key)
WHERE c.timestamp >= getvariable('as_of') - to_days((SELECT revenue_window_days FROM plg_settings))
GROUP BY ALL
ORDER BY total_revenue DESC, source NULLS LAST, campaign NULLS LAST;
