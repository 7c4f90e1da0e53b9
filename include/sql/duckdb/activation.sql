-- Activation / time-to-value and PostHog's correlation odds ratios in DuckDB: the oracle for
-- models/activation.py. Needs identity.sql, exclusions.sql and attribution.sql first.
--
-- Creates temporary tables:
--   plg_person_firsts   (person_key, event, timestamp): first time each person sent each event
--   plg_persons         (person_key, signup_at, signup_week, channel, cohort, converted_at,
--                       window_end): persons who signed up in [T - cohort_days, T)
--   plg_cohorts         (breakdown, segment, signed_up, converted, not_converted, pending,
--                       conversion_rate, pre_existing)
--   plg_milestones      (breakdown, segment, cohort, milestone, persons, reached, reach,
--                       median_hours, p75_hours)
--   plg_aha             (breakdown, segment, milestone, reach_converted, reach_not_converted, gap,
--                       median_hours_converted, median_hours_not_converted)
--   plg_correlation     (event, success_count, failure_count, success_total, failure_total,
--                       odds_ratio, correlation_type, significant, skewed)
--
-- Definitions (see models/activation.py and docs/models.md): 'pre_existing' when the first
-- conversion came before the first signup (kept out of every comparison, counted apart), else
-- 'pending' while signup_at + horizon > T, else 'converted' when the first conversion came before
-- signup_at + horizon, else 'not_converted'; a person's window ends at the conversion (converted)
-- or at signup_at + horizon; a milestone counts when its first occurrence is before the window's
-- end (hours clipped at 0). Correlation (PostHog's funnel correlation): an event counts for a
-- person who sent it strictly after signup_at and strictly before window_end, once per person
-- (correlation_window = 'posthog'); with 'first_seen', when its first occurrence is before the
-- window's end.
-- Breakdowns: 'all', 'channel' (paid / organic) and 'signup_week' (Monday, UTC).
-- Odds ratio (PostHog): ((s + 1) * (F - f + 1)) / ((S - s + 1) * (f + 1)); insignificant when
-- s + f < least(25, 0.02 * (S + F)); skewed when S / F or F / S > 10; empty when S or F is 0.
CREATE OR REPLACE TEMP TABLE plg_person_firsts AS
SELECT coalesce(k.person_key, e.distinct_id) AS person_key, e.event, min(e.timestamp) AS timestamp
FROM plg_events e LEFT JOIN plg_person_keys k USING (distinct_id)
WHERE e.timestamp < getvariable('as_of') AND e.event IS NOT NULL
GROUP BY ALL;

CREATE OR REPLACE TEMP TABLE plg_persons AS
WITH s AS (SELECT * FROM plg_settings),
signups AS (
    SELECT f.person_key, f.timestamp AS signup_at, f.timestamp + to_days(s.conversion_horizon_days) AS deadline
    FROM plg_person_firsts f, s
    WHERE f.event = s.signup_event
      AND f.timestamp >= getvariable('as_of') - to_days(s.cohort_days)
      AND f.person_key NOT IN (SELECT person_key FROM plg_excluded)
),
conversions AS (
    SELECT f.person_key, f.timestamp AS converted_at FROM plg_person_firsts f, s WHERE f.event = s.conversion_event
),
judged AS (
    SELECT u.*, c.converted_at,
           CASE WHEN c.converted_at < u.signup_at THEN 'pre_existing'
                WHEN u.deadline > getvariable('as_of') THEN 'pending'
                WHEN c.converted_at < u.deadline THEN 'converted'
                ELSE 'not_converted' END AS cohort
    FROM signups u LEFT JOIN conversions c USING (person_key)
)
SELECT j.person_key, j.signup_at, strftime(date_trunc('week', j.signup_at), '%Y-%m-%d') AS signup_week,
       coalesce(t.channel, 'organic') AS channel, j.cohort, j.converted_at,
       CASE j.cohort WHEN 'converted' THEN j.converted_at WHEN 'not_converted' THEN j.deadline END
           AS window_end
FROM judged j LEFT JOIN plg_first_touch t USING (person_key)
ORDER BY j.person_key;

CREATE OR REPLACE TEMP TABLE plg_segments AS
SELECT 'all' AS breakdown, 'all' AS segment
UNION ALL SELECT 'channel', unnest(['organic', 'paid'])
UNION ALL SELECT DISTINCT 'signup_week', signup_week FROM plg_persons;

CREATE OR REPLACE TEMP TABLE plg_persons_by_segment AS
SELECT 'all' AS breakdown, 'all' AS segment, * FROM plg_persons
UNION ALL SELECT 'channel', channel, * FROM plg_persons
UNION ALL SELECT 'signup_week', signup_week, * FROM plg_persons;

CREATE OR REPLACE TEMP TABLE plg_cohorts AS
SELECT g.breakdown, g.segment,
       count(p.person_key) FILTER (WHERE p.cohort <> 'pre_existing') AS signed_up,
       count(p.person_key) FILTER (WHERE p.cohort = 'converted') AS converted,
       count(p.person_key) FILTER (WHERE p.cohort = 'not_converted') AS not_converted,
       count(p.person_key) FILTER (WHERE p.cohort = 'pending') AS pending,
       (count(p.person_key) FILTER (WHERE p.cohort = 'converted'))::DOUBLE
           / nullif(count(p.person_key) FILTER (WHERE p.cohort IN ('converted', 'not_converted')), 0)
           AS conversion_rate,
       count(p.person_key) FILTER (WHERE p.cohort = 'pre_existing') AS pre_existing
FROM plg_segments g LEFT JOIN plg_persons_by_segment p USING (breakdown, segment)
GROUP BY ALL;

-- (person, event) done inside the person's window, hours from signup clipped at 0
CREATE OR REPLACE TEMP TABLE plg_done AS
SELECT f.person_key, f.event,
       greatest(0.0, (epoch_us(f.timestamp) - epoch_us(p.signup_at)) / 3600e6) AS hours
FROM plg_person_firsts f JOIN plg_persons p USING (person_key)
WHERE p.cohort IN ('converted', 'not_converted') AND f.timestamp < p.window_end;

CREATE OR REPLACE TEMP TABLE plg_milestones AS
WITH s AS (SELECT * FROM plg_settings),
names AS (SELECT unnest(s.milestones) AS milestone, generate_subscripts(s.milestones, 1) AS position FROM s),
grid AS (
    SELECT g.breakdown, g.segment, c.cohort, n.milestone, n.position
    FROM plg_segments g, (SELECT unnest(['converted', 'not_converted']) AS cohort) c, names n
),
sizes AS (
    SELECT breakdown, segment, cohort, count(*) AS persons
    FROM plg_persons_by_segment WHERE cohort IN ('converted', 'not_converted') GROUP BY ALL
),
reached AS (
    SELECT p.breakdown, p.segment, p.cohort, d.event AS milestone, count(*) AS reached,
           quantile_cont(d.hours, 0.5) AS median_hours, quantile_cont(d.hours, 0.75) AS p75_hours
    FROM plg_persons_by_segment p JOIN plg_done d USING (person_key)
    WHERE p.cohort IN ('converted', 'not_converted')
    GROUP BY ALL
)
SELECT g.breakdown, g.segment, g.cohort, g.milestone,
       coalesce(z.persons, 0) AS persons,
       coalesce(r.reached, 0) AS reached,
       coalesce(r.reached, 0)::DOUBLE / nullif(coalesce(z.persons, 0), 0) AS reach,
       r.median_hours, r.p75_hours, g.position
FROM grid g
LEFT JOIN sizes z USING (breakdown, segment, cohort)
LEFT JOIN reached r USING (breakdown, segment, cohort, milestone);

CREATE OR REPLACE TEMP TABLE plg_aha AS
WITH pairs AS (
    SELECT c.breakdown, c.segment, c.milestone, c.position,
           c.reach AS reach_converted, n.reach AS reach_not_converted,
           c.reach - n.reach AS gap,
           c.median_hours AS median_hours_converted, n.median_hours AS median_hours_not_converted
    FROM plg_milestones c JOIN plg_milestones n USING (breakdown, segment, milestone)
    WHERE c.cohort = 'converted' AND n.cohort = 'not_converted'
)
SELECT breakdown, segment, milestone, reach_converted, reach_not_converted, gap,
       median_hours_converted, median_hours_not_converted
FROM pairs
WHERE gap > 0
QUALIFY row_number() OVER (PARTITION BY breakdown, segment ORDER BY gap DESC, position) = 1
ORDER BY breakdown, segment;

CREATE OR REPLACE TEMP TABLE plg_correlation AS
WITH s AS (SELECT * FROM plg_settings),
totals AS (
    SELECT count(*) FILTER (WHERE cohort = 'converted') AS success_total,
           count(*) FILTER (WHERE cohort = 'not_converted') AS failure_total
    FROM plg_persons
),
-- PostHog: events strictly after the first step and before the conversion / end of the window
inside AS (
    SELECT DISTINCT coalesce(k.person_key, e.distinct_id) AS person_key, e.event
    FROM plg_events e LEFT JOIN plg_person_keys k USING (distinct_id)
    JOIN plg_persons p ON p.person_key = coalesce(k.person_key, e.distinct_id)
    WHERE p.cohort IN ('converted', 'not_converted') AND e.event IS NOT NULL
      AND e.timestamp > p.signup_at AND e.timestamp < p.window_end
),
done AS (
    SELECT person_key, event FROM inside, s WHERE s.correlation_window = 'posthog'
    UNION ALL
    SELECT person_key, event FROM plg_done, s WHERE s.correlation_window = 'first_seen'
),
counts AS (
    SELECT d.event,
           count(*) FILTER (WHERE p.cohort = 'converted') AS success_count,
           count(*) FILTER (WHERE p.cohort = 'not_converted') AS failure_count
    FROM done d JOIN plg_persons p USING (person_key), s
    WHERE d.event <> s.signup_event AND d.event <> s.conversion_event
      AND NOT list_contains(s.correlation_exclude_events, d.event)
    GROUP BY d.event
),
ratios AS (
    SELECT c.*, t.*,
           ((c.success_count + 1) * (t.failure_total - c.failure_count + 1))::DOUBLE
               / ((t.success_total - c.success_count + 1) * (c.failure_count + 1)) AS odds_ratio
    FROM counts c, totals t
    WHERE t.success_total > 0 AND t.failure_total > 0
)
SELECT event, success_count, failure_count, success_total, failure_total, odds_ratio,
       CASE WHEN odds_ratio > 1 THEN 'success' ELSE 'failure' END AS correlation_type,
       success_count + failure_count >= least(25, 0.02 * (success_total + failure_total)) AS significant,
       success_total / failure_total > 10 OR failure_total / success_total > 10 AS skewed
FROM ratios
ORDER BY significant DESC, odds_ratio DESC, event;
