-- HogQL: the seed's signal table for one day, to paste into a PostHog SQL insight. Same model as
-- plugins/plg_bridge/models/signals.py (tested against include/sql/duckdb/signals.sql); the rules are
-- those of docs/models.md, written here from their definition.
--
-- Settings inlined in the WITH block below (edit them there): T = 2026-11-20 00:00 UTC (exclusive),
-- the run's day = [T-1d, T) (run_day, also in signal_key); signals.cooldown_days 7,
-- signals.pql_rearm_below 50, signals.pql_lookback_days 28, pql.threshold 75 (and pql.sql's formula:
-- weeks of 7 days, 40 / 35 or 10 per creator / 25 points); detail placeholders; Aha event
-- first_successful_deployment; usage ceiling hits_80_percent_of_tier_limit; enterprise interest
-- enterprise_feature_clicked (detail feature_name); integration_connected (detail provider); internal
-- domain plgapp.io, opt-out property analytics_opt_out, test organization org_test.
--
-- What this corrects in the guide's signal table (seed-posthog-for-plg: a trigger per signal and where
-- it goes), read as "raise the signal when the trigger happens" for a sales team that acts on it:
-- * A stable signal_key (signal:subject:detail:day): a rerun or a backfill of the same day raises the
--   same key again (plg-bridge's delivery state sends a key once).
-- * usage_ceiling and enterprise_interest: at most one per organization within cooldown_days. The
--   organization's occurrence days (any time before T) are taken greedily: the first, then the first at
--   least cooldown_days later, ...; the signal is raised when the run's day is one of them.
--   enterprise_interest lists the day's feature names (lower case, whitespace collapsed and trimmed,
--   placeholders such as '-' dropped), sorted and joined with ', ' ("SSO" and "sso" are one); its key
--   detail is '-'. integration_connected: the same per organization and normalised provider (no
--   provider: no signal). The row names the person of the day's first occurrence (ties: person key,
--   then distinct_id).
-- * aha_reached is the person's FIRST-EVER Aha event (across all the person's distinct ids), credited
--   to the organization of that Aha event itself (several at that instant: the smallest; none: NULL,
--   still raised: its action is per person). The subject and distinct_id are the person's key: the
--   smallest distinct id that sent an $identify (server-side identifies without $anon_distinct_id
--   count), else its smallest distinct id; placeholder ids (' anonymous ', 'null', ...) never count.
-- * pql_crossed has hysteresis: the PQL score as of every day D in [T - 28d, T] (0 when unscored; an
--   event delivered twice counts once) is walked in order: armed at the first D when below the
--   threshold; at each later D a score below pql_rearm_below re-arms, and an armed score at or above
--   the threshold alerts (and disarms) unless the previous alert is less than cooldown_days before.
--   Raised when D = T alerts; no person, no detail, occurred_at = T - 1 microsecond.
-- * Internal users, opted-out persons and members of test organizations raise nothing, and they are left
--   out BEFORE the day's first occurrence is picked. Test organizations raise nothing at all.
-- * Every row carries the organization's name (PostHog's groups table: $group_set merged per property,
--   so a later call with only `plan` keeps the name) and its PQL score as of T (null when unscored),
--   and as_of = T, as plg-bridge's signal table does.
-- Caveats: person.properties (email, opt-out), person merges and group properties are PostHog's current
-- ones, not as of T; plg-bridge stitches persons from the export (identity.sql).
WITH
    toDateTime('2026-11-20 00:00:00', 'UTC') AS t_end,
    toDate('2026-11-19') AS run_day,
    7 AS cooldown_days,
    50 AS rearm_below,
    28 AS lookback_days,
    75 AS threshold,
    ['-', '--', 'n/a', 'na', 'none', 'null', 'undefined', 'unknown'] AS detail_placeholders,
    ['', 'null', 'undefined', 'anonymous', '0', 'none', 'nan'] AS placeholder_ids,
    arrayMap(k -> t_end - toIntervalDay(lookback_days - k), range(0, lookback_days + 1)) AS pql_dates
SELECT
    concat(x.signal, ':', x.subject, ':', ifNull(x.key_detail, '-'), ':', '2026-11-19') AS signal_key,
    x.signal AS signal,
    x.org_id AS org_id,
    g.properties.name AS org_name,
    x.who AS distinct_id,
    x.who_email AS email,
    x.detail AS detail,
    x.first_at AS occurred_at,
    '2026-11-20' AS as_of,
    o.pql_score AS pql_score,
    o.pql_score >= threshold AS is_pql
FROM (
    -- usage_ceiling, enterprise_interest, integration_connected: cool-down chain per account
    SELECT
        signal,
        org_id,
        org_id AS subject,
        multiIf(signal = 'enterprise_interest', nullIf(names, ''),
                signal = 'integration_connected', chain_key, NULL) AS detail,
        if(signal = 'integration_connected', chain_key, NULL) AS key_detail,
        first_at,
        who,
        who_email
    FROM (
        SELECT
            r.signal AS signal,
            r.org_id AS org_id,
            r.chain_key AS chain_key,
            arraySort(groupUniqArray(r.day)) AS days,
            -- greedy: the first day, then the first at least cooldown_days later, ... (a sentinel
            -- far in the past starts the chain)
            arrayFold((acc, d) -> if(dateDiff('day', acc[-1], d) >= cooldown_days, arrayPushBack(acc, d), acc),
                      days, [toDate('1970-01-01')]) AS raised_days,
            arrayStringConcat(arraySort(groupUniqArrayIf(r.detail, r.day = run_day AND r.detail IS NOT NULL)),
                              ', ') AS names,
            minIf(r.timestamp, r.day = run_day) AS first_at,
            argMinIf(r.person_key, tuple(r.timestamp, r.person_key, r.distinct_id), r.day = run_day) AS who,
            argMinIf(r.email, tuple(r.timestamp, r.person_key, r.distinct_id), r.day = run_day) AS who_email
        FROM (
            SELECT
                e.signal AS signal,
                e.org_id AS org_id,
                if(e.signal = 'integration_connected', e.detail, '-') AS chain_key,
                e.detail AS detail,
                toDate(e.timestamp) AS day,
                e.timestamp AS timestamp,
                e.distinct_id AS distinct_id,
                e.email AS email,
                k.person_key AS person_key
            FROM (
                SELECT
                    multiIf(event = 'hits_80_percent_of_tier_limit', 'usage_ceiling',
                            event = 'enterprise_feature_clicked', 'enterprise_interest',
                            'integration_connected') AS signal,
                    coalesce(nullIf(toString(properties.$group_0), ''),
                             nullIf(toString(properties.$groups.organization), '')) AS org_id,
                    nullIf(trim(replaceRegexpAll(lower(toString(multiIf(
                        event = 'enterprise_feature_clicked', properties.feature_name,
                        event = 'integration_connected', properties.provider, NULL))), '\\s+', ' ')), '')
                        AS clean,
                    if(has(detail_placeholders, clean), NULL, clean) AS detail,
                    timestamp,
                    distinct_id,
                    person_id,
                    toString(person.properties.email) AS email
                FROM events
                WHERE event IN ('hits_80_percent_of_tier_limit', 'enterprise_feature_clicked',
                                'integration_connected')
                  AND timestamp < t_end
                  AND org_id IS NOT NULL
                  AND NOT has(placeholder_ids, lower(trim(distinct_id)))
                  AND NOT match(lower(ifNull(toString(person.properties.email), '')), '@([^@]*\\.)?(plgapp\\.io)$')
                  AND lower(trim(ifNull(toString(person.properties.analytics_opt_out), '')))
                      NOT IN ('true', '1', 'yes', 'y', 'on')
                  AND person_id NOT IN (
                      SELECT DISTINCT person_id FROM events
                      WHERE properties.$group_0 IN ('org_test') AND timestamp < t_end)
            ) AS e
            INNER JOIN (
                -- the person key: the smallest identified distinct id, else the smallest distinct id
                SELECT
                    person_id,
                    if(countIf(event = '$identify') > 0, minIf(distinct_id, event = '$identify'), min(distinct_id))
                        AS person_key
                FROM events
                WHERE timestamp < t_end AND NOT has(placeholder_ids, lower(trim(distinct_id)))
                GROUP BY person_id
            ) AS k ON k.person_id = e.person_id
            WHERE e.signal != 'integration_connected' OR e.detail IS NOT NULL
        ) AS r
        GROUP BY r.signal, r.org_id, r.chain_key
        HAVING has(raised_days, run_day)
    )

    UNION ALL

    -- aha_reached: persons whose first Aha event ever (before T) is on the run's day
    SELECT
        'aha_reached' AS signal,
        nullIf(aha_org, '') AS org_id,
        person_key AS subject,
        'first_successful_deployment' AS detail,
        'first_successful_deployment' AS key_detail,
        first_aha AS first_at,
        person_key AS who,
        email AS who_email
    FROM (
        SELECT
            person_id,
            if(countIf(event = '$identify') > 0, minIf(distinct_id, event = '$identify'), min(distinct_id))
                AS person_key,
            minIf(timestamp, event = 'first_successful_deployment') AS first_aha,
            -- the organization of the first Aha event itself (an organization before none, then the
            -- smallest); '' when it had none
            argMinIf(coalesce(nullIf(toString(properties.$group_0), ''),
                              nullIf(toString(properties.$groups.organization), ''), ''),
                     tuple(timestamp,
                           coalesce(nullIf(toString(properties.$group_0), ''),
                                    nullIf(toString(properties.$groups.organization), ''), '') = '',
                           coalesce(nullIf(toString(properties.$group_0), ''),
                                    nullIf(toString(properties.$groups.organization), ''), '')),
                     event = 'first_successful_deployment') AS aha_org,
            any(toString(person.properties.email)) AS email
        FROM events
        WHERE timestamp < t_end
          AND NOT has(placeholder_ids, lower(trim(distinct_id)))
          AND person_id IN (
              SELECT person_id FROM events
              WHERE event = 'first_successful_deployment'
                AND timestamp >= toDateTime(run_day, 'UTC') AND timestamp < t_end)
          AND NOT match(lower(ifNull(toString(person.properties.email), '')), '@([^@]*\\.)?(plgapp\\.io)$')
          AND lower(trim(ifNull(toString(person.properties.analytics_opt_out), '')))
              NOT IN ('true', '1', 'yes', 'y', 'on')
          AND person_id NOT IN (
              SELECT DISTINCT person_id FROM events
              WHERE properties.$group_0 IN ('org_test') AND timestamp < t_end)
        GROUP BY person_id
        HAVING first_aha >= toDateTime(run_day, 'UTC')
    )

    UNION ALL

    -- pql_crossed: the hysteresis walk over the daily PQL scores as of T - 28d .. T
    SELECT
        'pql_crossed' AS signal,
        org_id,
        org_id AS subject,
        NULL AS detail,
        NULL AS key_detail,
        t_end - toIntervalMicrosecond(1) AS first_at,
        NULL AS who,
        NULL AS who_email
    FROM (
        SELECT
            org_id,
            arrayMap(x -> if(has(ds, x), ss[indexOf(ds, x)], 0), pql_dates) AS series,
            -- state (armed, index of the last alert, alert at this date), from the first date's state
            arrayFold((acc, score, k) -> (
                          if(score < rearm_below, 1,
                             if(score >= rearm_below AND acc.1 = 1 AND score >= threshold
                                AND k - acc.2 >= cooldown_days, 0, acc.1)),
                          if(score >= rearm_below AND acc.1 = 1 AND score >= threshold
                             AND k - acc.2 >= cooldown_days, k, acc.2),
                          if(score >= rearm_below AND acc.1 = 1 AND score >= threshold
                             AND k - acc.2 >= cooldown_days, 1, 0)),
                      arraySlice(series, 2), range(1, lookback_days + 1),
                      (if(series[1] < threshold, 1, 0), -1000, 0)) AS walk
        FROM (
            SELECT org_id, groupArray(d) AS ds, groupArray(pql_score) AS ss
            FROM (
                SELECT
                    d,
                    coalesce(nullIf(toString(properties.$group_0), ''),
                             nullIf(toString(properties.$groups.organization), '')) AS org_id,
                    uniqExactIf(uuid, event = 'core_feature_used' AND timestamp >= d - INTERVAL 7 DAY)
                        AS this_week,
                    uniqExactIf(uuid, event = 'core_feature_used' AND timestamp < d - INTERVAL 7 DAY)
                        AS last_week,
                    uniqExactIf(person_id, event = 'creation_event') AS creators,
                    uniqExactIf(uuid, event = 'integration_connected') AS integrations,
                    if(this_week > last_week * 1.5, 40, 0) + if(creators >= 3, 35, creators * 10)
                        + if(integrations >= 1, 25, 0) AS pql_score
                FROM events
                -- each event belongs to the dates D with D - 14d <= timestamp < D
                ARRAY JOIN arrayFilter(x -> timestamp >= x - INTERVAL 14 DAY AND timestamp < x, pql_dates) AS d
                WHERE event IN ('core_feature_used', 'creation_event', 'integration_connected')
                  AND timestamp >= t_end - toIntervalDay(lookback_days + 14)
                  AND timestamp < t_end
                  AND org_id IS NOT NULL
                GROUP BY d, org_id
            )
            GROUP BY org_id
        )
    )
    WHERE walk.3 = 1
) AS x
LEFT JOIN (SELECT key, properties FROM groups WHERE index = 0) AS g ON g.key = x.org_id
LEFT JOIN (
    -- the organization's PQL score as of T (pql.sql), as plg-bridge adds it to every signal
    SELECT
        properties.$group_0 AS org_id,
        uniqExactIf(uuid, event = 'core_feature_used' AND timestamp >= t_end - INTERVAL 7 DAY) AS this_week,
        uniqExactIf(uuid, event = 'core_feature_used' AND timestamp < t_end - INTERVAL 7 DAY) AS last_week,
        uniqExactIf(person_id, event = 'creation_event') AS creators,
        uniqExactIf(uuid, event = 'integration_connected') AS integrations,
        if(this_week > last_week * 1.5, 40, 0) + if(creators >= 3, 35, creators * 10)
            + if(integrations >= 1, 25, 0) AS pql_score
    FROM events
    WHERE timestamp >= t_end - INTERVAL 14 DAY
      AND timestamp < t_end
      AND event IN ('core_feature_used', 'creation_event', 'integration_connected')
      AND properties.$group_0 IS NOT NULL AND properties.$group_0 != ''
    GROUP BY org_id
) AS o ON o.org_id = x.org_id
WHERE (x.org_id IS NOT NULL OR x.signal = 'aha_reached')
  AND (x.org_id IS NULL OR x.org_id NOT IN ('org_test'))
ORDER BY signal, org_id, signal_key
