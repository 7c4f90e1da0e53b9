-- HogQL: the seed's signal table for one day, to paste into a PostHog SQL insight. Same model as
-- plugins/plg_bridge/models/signals.py (tested against include/sql/duckdb/signals.sql).
--
-- Settings inlined below (edit them together): T = 2026-11-20 00:00 UTC (exclusive), the run's day =
-- [T-1d, T); the dates below are T and T minus 1, 7, 8, 14 and 15 days (shift them all, including the
-- day '2026-11-19' in signal_key, or write them as toStartOfDay(now()) - INTERVAL n DAY). Aha event
-- first_successful_deployment; usage ceiling hits_80_percent_of_tier_limit; enterprise interest
-- enterprise_feature_clicked (detail feature_name); integration_connected (detail provider); the PQL
-- formula of pql.sql with threshold 75; internal domain plgapp.io, opt-out property analytics_opt_out,
-- test organization org_test.
--
-- What this corrects in the guide's signal table (seed-posthog-for-plg: a trigger per signal and where
-- it goes), read as "raise the signal when the trigger happens":
-- * One signal per subject, detail and day, with a stable signal_key (signal:subject:detail:day), not
--   one per event: ten limit hits or SSO clicks in a day are one alert, and a rerun or a backfill of the
--   same day raises the same key again (plg-bridge's delivery state sends a key once). The row is the
--   day's first occurrence (ties: smallest distinct_id).
-- * aha_reached is the person's FIRST-EVER Aha event (across all the person's distinct ids: an
--   anonymous deploy counts for the person who identified later), not every deployment; the subject
--   is the person's smallest identified distinct id (the distinct_id of a $identify), else its smallest
--   distinct id, as plg-bridge keys persons; the organization is the first one the person acted in.
-- * pql_crossed is a CROSSING: at or above the threshold as of T and below it as of T-1d (an organization
--   not scored then had 0), not "pql_score >= 75", which would raise it again every day the organization
--   stays a PQL; both scores use pql.sql's half-open weeks, and an event delivered twice counts once
--   (uniqExact on uuid). It names no person and carries no detail (a late event changing the score must
--   not make a second crossing); occurred_at = T - 1 microsecond.
-- * A fixed, whole day [T-1d, T) instead of today() / now(): a day is complete when it is judged, and a
--   signal cannot fall between two runs or into both.
-- * Internal users, opted-out persons and members of test organizations raise nothing, and they are left
--   out BEFORE the day's first occurrence is picked: an internal user clicking "SSO" in a customer's
--   organization must neither raise interest nor hide the customer's own click an hour later. Test
--   organizations raise nothing at all (PQL crossings included).
-- * Details are trimmed; a blank one is no detail ('-' in the key).
-- * Every row carries the organization's name and PQL score as of T (pql.sql; null when the organization
--   was not scored) and as_of = T, as plg-bridge's signal table does.
-- Caveats: person.properties (email, opt-out) and person merges are PostHog's current ones, not as of T;
-- plg-bridge stitches persons from the export (identity.sql) and reads the latest email known before T.
SELECT
    concat(x.signal, ':', x.subject, ':', ifNull(x.detail, '-'), ':', '2026-11-19') AS signal_key,
    x.signal AS signal,
    x.org_id AS org_id,
    o.org_name AS org_name,
    x.who AS distinct_id,
    x.who_email AS email,
    x.detail AS detail,
    x.first_at AS occurred_at,
    '2026-11-20' AS as_of,
    o.pql_score AS pql_score,
    o.pql_score >= 75 AS is_pql
FROM (
    -- usage_ceiling, enterprise_interest, integration_connected
    SELECT
        multiIf(event = 'hits_80_percent_of_tier_limit', 'usage_ceiling',
                event = 'enterprise_feature_clicked', 'enterprise_interest',
                'integration_connected') AS signal,
        coalesce(nullIf(toString(properties.$group_0), ''),
                 nullIf(toString(properties.$groups.organization), '')) AS org_id,
        org_id AS subject,
        nullIf(replaceRegexpAll(
            toString(multiIf(event = 'enterprise_feature_clicked', properties.feature_name,
                             event = 'integration_connected', properties.provider,
                             NULL)),
            '^\\s+|\\s+$', ''), '') AS detail,
        argMin(distinct_id, tuple(timestamp, distinct_id)) AS who,
        argMin(toString(person.properties.email), tuple(timestamp, distinct_id)) AS who_email,
        min(timestamp) AS first_at
    FROM events
    WHERE event IN ('hits_80_percent_of_tier_limit', 'enterprise_feature_clicked', 'integration_connected')
      AND timestamp >= toDateTime('2026-11-19 00:00:00', 'UTC')
      AND timestamp < toDateTime('2026-11-20 00:00:00', 'UTC')
      AND org_id IS NOT NULL
      AND NOT match(lower(ifNull(toString(person.properties.email), '')), '@([^@]*\\.)?(plgapp\\.io)$')
      AND lower(trim(ifNull(toString(person.properties.analytics_opt_out), '')))
          NOT IN ('true', '1', 'yes', 'y', 'on')
      AND person_id NOT IN (
          SELECT DISTINCT person_id FROM events
          WHERE properties.$group_0 IN ('org_test') AND timestamp < toDateTime('2026-11-20 00:00:00', 'UTC'))
    GROUP BY signal, org_id, subject, detail

    UNION ALL

    -- aha_reached: persons whose first Aha event ever (before T) is on the run's day
    SELECT
        'aha_reached' AS signal,
        nullIf(first_org, '') AS org_id,
        person_key AS subject,
        'first_successful_deployment' AS detail,
        person_key AS who,
        email AS who_email,
        first_aha AS first_at
    FROM (
        SELECT
            person_id,
            if(countIf(event = '$identify') > 0, minIf(distinct_id, event = '$identify'), min(distinct_id))
                AS person_key,
            minIf(timestamp, event = 'first_successful_deployment') AS first_aha,
            argMinIf(coalesce(nullIf(toString(properties.$group_0), ''),
                              nullIf(toString(properties.$groups.organization), ''), ''),
                     tuple(timestamp, coalesce(nullIf(toString(properties.$group_0), ''),
                                               nullIf(toString(properties.$groups.organization), ''), '')),
                     coalesce(nullIf(toString(properties.$group_0), ''),
                              nullIf(toString(properties.$groups.organization), ''), '') != '') AS first_org,
            any(toString(person.properties.email)) AS email
        FROM events
        WHERE timestamp < toDateTime('2026-11-20 00:00:00', 'UTC')
          AND person_id IN (
              SELECT person_id FROM events
              WHERE event = 'first_successful_deployment'
                AND timestamp >= toDateTime('2026-11-19 00:00:00', 'UTC')
                AND timestamp < toDateTime('2026-11-20 00:00:00', 'UTC'))
          AND NOT match(lower(ifNull(toString(person.properties.email), '')), '@([^@]*\\.)?(plgapp\\.io)$')
          AND lower(trim(ifNull(toString(person.properties.analytics_opt_out), '')))
              NOT IN ('true', '1', 'yes', 'y', 'on')
          AND person_id NOT IN (
              SELECT DISTINCT person_id FROM events
              WHERE properties.$group_0 IN ('org_test')
                AND timestamp < toDateTime('2026-11-20 00:00:00', 'UTC'))
        GROUP BY person_id
        HAVING first_aha >= toDateTime('2026-11-19 00:00:00', 'UTC') AND first_org != ''
    )

    UNION ALL

    -- pql_crossed: the PQL score (pql.sql) as of T and as of T-1d, in one pass over [T-15d, T)
    SELECT
        'pql_crossed' AS signal,
        org_id,
        org_id AS subject,
        NULL AS detail,
        NULL AS who,
        NULL AS who_email,
        toDateTime('2026-11-19 23:59:59.999999', 'UTC') AS first_at  -- T - 1 microsecond
    FROM (
        SELECT
            org_id,
            if(this_week > last_week * 1.5, 40, 0) + if(creators >= 3, 35, creators * 10)
                + if(integrations >= 1, 25, 0) AS pql_score,
            if(this_week_before > last_week_before * 1.5, 40, 0)
                + if(creators_before >= 3, 35, creators_before * 10)
                + if(integrations_before >= 1, 25, 0) AS pql_score_before
        FROM (
            SELECT
                coalesce(nullIf(toString(properties.$group_0), ''),
                         nullIf(toString(properties.$groups.organization), '')) AS org_id,
                -- as of T: [T-7d, T) and [T-14d, T-7d)
                uniqExactIf(uuid, event = 'core_feature_used'
                    AND timestamp >= toDateTime('2026-11-13 00:00:00', 'UTC')) AS this_week,
                uniqExactIf(uuid, event = 'core_feature_used'
                    AND timestamp >= toDateTime('2026-11-06 00:00:00', 'UTC')
                    AND timestamp < toDateTime('2026-11-13 00:00:00', 'UTC')) AS last_week,
                uniqExactIf(person_id, event = 'creation_event'
                    AND timestamp >= toDateTime('2026-11-06 00:00:00', 'UTC')) AS creators,
                uniqExactIf(uuid, event = 'integration_connected'
                    AND timestamp >= toDateTime('2026-11-06 00:00:00', 'UTC')) AS integrations,
                -- as of T-1d: [T-8d, T-1d) and [T-15d, T-8d)
                uniqExactIf(uuid, event = 'core_feature_used'
                    AND timestamp >= toDateTime('2026-11-12 00:00:00', 'UTC')
                    AND timestamp < toDateTime('2026-11-19 00:00:00', 'UTC')) AS this_week_before,
                uniqExactIf(uuid, event = 'core_feature_used'
                    AND timestamp < toDateTime('2026-11-12 00:00:00', 'UTC')) AS last_week_before,
                uniqExactIf(person_id, event = 'creation_event'
                    AND timestamp < toDateTime('2026-11-19 00:00:00', 'UTC')) AS creators_before,
                uniqExactIf(uuid, event = 'integration_connected'
                    AND timestamp < toDateTime('2026-11-19 00:00:00', 'UTC')) AS integrations_before
            FROM events
            WHERE event IN ('core_feature_used', 'creation_event', 'integration_connected')
              AND timestamp >= toDateTime('2026-11-05 00:00:00', 'UTC')
              AND timestamp < toDateTime('2026-11-20 00:00:00', 'UTC')
              AND org_id IS NOT NULL
            GROUP BY org_id
        )
    )
    WHERE pql_score >= 75 AND pql_score_before < 75
) AS x
LEFT JOIN (
    -- the organization's name and PQL score as of T (pql.sql), as plg-bridge adds them to every signal
    SELECT
        properties.$group_0 AS org_id,
        any(groupProperties.$group_0.name) AS org_name,
        countIf(event = 'core_feature_used' AND timestamp >= toDateTime('2026-11-13 00:00:00', 'UTC'))
            AS this_week,
        countIf(event = 'core_feature_used' AND timestamp < toDateTime('2026-11-13 00:00:00', 'UTC'))
            AS last_week,
        uniqIf(person_id, event = 'creation_event') AS creators,
        countIf(event = 'integration_connected') AS integrations,
        if(this_week > last_week * 1.5, 40, 0) + if(creators >= 3, 35, creators * 10)
            + if(integrations >= 1, 25, 0) AS pql_score
    FROM events
    WHERE timestamp >= toDateTime('2026-11-06 00:00:00', 'UTC')
      AND timestamp < toDateTime('2026-11-20 00:00:00', 'UTC')
      AND event IN ('core_feature_used', 'creation_event', 'integration_connected')
      AND properties.$group_0 IS NOT NULL AND properties.$group_0 != ''
    GROUP BY org_id
) AS o ON o.org_id = x.org_id
WHERE x.org_id IS NOT NULL AND x.org_id NOT IN ('org_test')
ORDER BY signal, org_id, signal_key
