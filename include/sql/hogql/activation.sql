-- HogQL: time-to-value per milestone, converted vs not converted, by acquisition channel, to paste into
-- a PostHog SQL insight. Same model as plugins/plg_bridge/models/activation.py (tested against
-- include/sql/duckdb/activation.sql); odds ratios are in correlation.sql.
--
-- Settings inlined below (edit them together): T = 2026-11-20 00:00 UTC (exclusive; the guide's
-- today() moved with the clock), signup = first $identify, conversion = subscription_started within
-- 14 days of signup, persons who signed up in [T - 90 days, T), the six milestones of the issue.
--
-- Definitions, and what they correct in the guide ("measure the median time from signup to each event
-- across converted versus churned cohorts"):
-- * A person is judged only once their 14 days are over (signup + 14d <= T); persons still inside are
--   'pending' and left out, instead of being counted as churned because they had no time yet.
-- * A person who converted before their first signup (a customer older than the data) is
--   'pre_existing' and left out: their window would end before it began.
-- * A milestone counts when reached before the conversion (converted) or before signup + 14 days (not
--   converted): milestones done only after paying do not look like causes of paying.
-- * reach = persons who reached it / persons of the cohort; median and p75 hours over those who reached it
--   (quantileExactInclusive: exact, interpolated like numpy; ClickHouse's quantile() is sampled).
-- * The Aha candidate is the milestone with the largest reach gap (converted minus not converted), not
--   the largest median-time gap: a milestone two converters reached quickly is not a predictor.
-- * Internal users, opted-out persons and test organizations are left out.
-- The columns are models/activation.py's MILESTONES (breakdown 'channel', segment paid / organic). For
-- the signup-week breakdown write `'signup_week' AS breakdown, signup_week AS segment` in the outer SELECT.
SELECT
    'channel' AS breakdown,
    channel AS segment,
    cohort,
    milestone,
    count() AS persons,
    countIf(in_window) AS reached,
    reached / persons AS reach,
    quantileExactInclusiveIf(0.5)(hours, in_window) AS median_hours,
    quantileExactInclusiveIf(0.75)(hours, in_window) AS p75_hours
FROM (
    SELECT
        person_id,
        channel,
        signup_week,
        cohort,
        milestone,
        seen AND first_at < window_end AS in_window,
        greatest(0, dateDiff('second', signup_at, first_at) / 3600) AS hours
    FROM (
        SELECT
            *,
            multiIf(ever_converted AND converted_at < signup_at, 'pre_existing',
                    signup_at + INTERVAL 14 DAY > toDateTime('2026-11-20 00:00:00', 'UTC'), 'pending',
                    ever_converted AND converted_at < signup_at + INTERVAL 14 DAY, 'converted',
                    'not_converted') AS cohort,
            if(cohort = 'converted', converted_at, signup_at + INTERVAL 14 DAY) AS window_end,
            toString(toStartOfWeek(signup_at, 1)) AS signup_week
        FROM (
            SELECT
                person_id,
                minIf(timestamp, event = '$identify') AS signup_at,
                countIf(event = 'subscription_started') > 0 AS ever_converted,
                minIf(timestamp, event = 'subscription_started') AS converted_at,
                if(lower(coalesce(
                       nullIf(toString(any(person.properties.$initial_utm_medium)), ''),
                       nullIf(argMinIf(toString(properties.utm_medium), timestamp,
                                       ifNull(toString(properties.utm_medium), '') != ''), ''),
                       '')) IN ('cpc', 'ppc', 'cpm', 'paid', 'paid_search', 'paid_social', 'display'),
                   'paid', 'organic') AS channel,
                ['first_api_call_completed', 'first_report_generated', 'first_team_member_invited',
                 'first_automated_workflow_triggered', 'integration_connected',
                 'first_successful_deployment'] AS names,
                -- one entry per milestone, in the order of `names`
                [
                 countIf(event = 'first_api_call_completed') > 0,
                 countIf(event = 'first_report_generated') > 0,
                 countIf(event = 'first_team_member_invited') > 0,
                 countIf(event = 'first_automated_workflow_triggered') > 0,
                 countIf(event = 'integration_connected') > 0,
                 countIf(event = 'first_successful_deployment') > 0
                ] AS seen_list,
                [
                 minIf(timestamp, event = 'first_api_call_completed'),
                 minIf(timestamp, event = 'first_report_generated'),
                 minIf(timestamp, event = 'first_team_member_invited'),
                 minIf(timestamp, event = 'first_automated_workflow_triggered'),
                 minIf(timestamp, event = 'integration_connected'),
                 minIf(timestamp, event = 'first_successful_deployment')
                ] AS first_list
            FROM events
            WHERE timestamp < toDateTime('2026-11-20 00:00:00', 'UTC')
              AND NOT match(lower(ifNull(toString(person.properties.email), '')), '@([^@]*\\.)?(plgapp\\.io)$')
              AND lower(ifNull(toString(person.properties.analytics_opt_out), '')) NOT IN ('true', '1', 'yes', 'y', 'on')
              AND person_id NOT IN (SELECT DISTINCT person_id FROM events WHERE properties.$group_0 IN ('org_test'))
            GROUP BY person_id
            HAVING countIf(event = '$identify') > 0
               AND signup_at >= toDateTime('2026-11-20 00:00:00', 'UTC') - INTERVAL 90 DAY
        )
    )
    ARRAY JOIN names AS milestone, seen_list AS seen, first_list AS first_at
    WHERE cohort IN ('converted', 'not_converted')
)
GROUP BY breakdown, segment, cohort, milestone
ORDER BY segment, milestone, cohort
