-- HogQL: which events predict conversion, with PostHog's own correlation odds ratio, to paste into a
-- PostHog SQL insight. Same numbers as plugins/plg_bridge/models/activation.py `correlation`
-- (tested against include/sql/duckdb/activation.sql).
--
-- The guide says to run Correlation Analysis on a signup -> paid funnel; this is that computation made
-- explicit and reproducible for a fixed T (2026-11-20 00:00 UTC, exclusive; edit it in the places
-- below), with the cohort rules of activation.sql: persons who signed up ($identify) in [T - 90d, T)
-- and whose 14-day horizon is over; converted = subscription_started within it; persons who converted
-- before their first signup (pre-existing customers) are not judged. An event counts for a person as
-- PostHog's funnel correlation counts it: sent strictly after signup (the first step) and strictly
-- before the conversion (converted) or signup + 14 days (not converted); a pre-signup anonymous
-- pageview or an event at the signup instant does not count (models.correlation_window: posthog).
--
--   odds_ratio = ((s + 1) * (F - f + 1)) / ((S - s + 1) * (f + 1))      (PostHog, prior 1)
--   s, f = converted / not-converted persons who did the event; S, F = all converted / not converted
--   significant = s + f >= least(25, 0.02 * (S + F))   (PostHog drops the others; kept here, flagged)
--   skewed = S / F > 10 or F / S > 10;  no rows when S or F is 0.
-- Funnel steps ($identify, subscription_started) are not candidates.
SELECT
    event,
    s AS success_count,
    f AS failure_count,
    s_total AS success_total,
    f_total AS failure_total,
    ((s + 1) * (f_total - f + 1)) / ((s_total - s + 1) * (f + 1)) AS odds_ratio,
    if(odds_ratio > 1, 'success', 'failure') AS correlation_type,
    s + f >= least(25, 0.02 * (s_total + f_total)) AS significant,
    s_total / f_total > 10 OR f_total / s_total > 10 AS skewed
FROM (
    SELECT
        e.event AS event,
        uniqExactIf(e.person_id, p.cohort = 'converted') AS s,
        uniqExactIf(e.person_id, p.cohort = 'not_converted') AS f,
        any(p.success_total) AS s_total,
        any(p.failure_total) AS f_total
    FROM (
        SELECT person_id, event, timestamp
        FROM events
        WHERE timestamp < toDateTime('2026-11-20 00:00:00', 'UTC')
          AND event NOT IN ('$identify', 'subscription_started')
    ) AS e
    INNER JOIN (
        SELECT
            person_id,
            cohort,
            signup_at,
            if(cohort = 'converted', converted_at, signup_at + INTERVAL 14 DAY) AS window_end,
            countIf(cohort = 'converted') OVER () AS success_total,
            countIf(cohort = 'not_converted') OVER () AS failure_total
        FROM (
            SELECT
                person_id,
                minIf(timestamp, event = '$identify') AS signup_at,
                minIf(timestamp, event = 'subscription_started') AS converted_at,
                if(countIf(event = 'subscription_started') > 0
                       AND converted_at < signup_at + INTERVAL 14 DAY, 'converted', 'not_converted') AS cohort
            FROM events
            WHERE timestamp < toDateTime('2026-11-20 00:00:00', 'UTC')
              AND NOT match(lower(ifNull(toString(person.properties.email), '')), '@([^@]*\\.)?(plgapp\\.io)$')
              AND lower(ifNull(toString(person.properties.analytics_opt_out), '')) NOT IN ('true', '1', 'yes', 'y', 'on')
              AND person_id NOT IN (SELECT DISTINCT person_id FROM events WHERE properties.$group_0 IN ('org_test'))
            GROUP BY person_id
            HAVING countIf(event = '$identify') > 0
               AND signup_at >= toDateTime('2026-11-20 00:00:00', 'UTC') - INTERVAL 90 DAY
               AND signup_at + INTERVAL 14 DAY <= toDateTime('2026-11-20 00:00:00', 'UTC')
               -- pre-existing customers (converted before their first signup) are not judged
               AND NOT (countIf(event = 'subscription_started') > 0 AND converted_at < signup_at)
        )
    ) AS p ON p.person_id = e.person_id
    -- PostHog's funnel correlation window: strictly after the first step, strictly before the
    -- conversion (converted) or the end of the conversion window (not converted)
    WHERE e.timestamp > p.signup_at AND e.timestamp < p.window_end
    GROUP BY e.event
)
WHERE s_total > 0 AND f_total > 0
ORDER BY significant DESC, odds_ratio DESC, event
