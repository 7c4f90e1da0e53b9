-- Identity stitching in DuckDB, straight from the export files: the independent oracle for
-- models/identity.py (tests compare the two on generated data). Run it first; exclusions.sql,
-- attribution.sql and activation.sql build on the objects it creates.
--
-- Inputs (DuckDB variables; unset ones take the plg-bridge defaults):
--   files            list of export Parquet paths                       (required)
--   as_of            T, TIMESTAMPTZ at 00:00 UTC (exclusive)            (required)
--   placeholder_ids  ids that never name anyone, compared lower-cased and trimmed
--   plg_settings     the model settings of include/config/plg_bridge.yaml, e.g.
--                    SET VARIABLE signup_event = 'user_signed_up'; see the defaults below.
--
-- Creates temporary tables, computed for the variables set when the script runs (set new ones and
-- run the scripts again for another T):
--   plg_settings     one row: every setting with its value
--   plg_events       parsed, usable rows: properties a JSON object, distinct_id not a placeholder;
--                    organization = properties.$group_0 else properties.$groups.organization;
--                    person_properties = the export's person_properties column when it holds a
--                    JSON object, else NULL (absent column, null, blank, malformed: no values,
--                    the row is still used, like plg_bridge.exports.reader)
--   plg_person_keys  (distinct_id, person_key) for every distinct id in plg_events
--
-- Persons follow PostHog's merge rules (plugin-server PersonMergeService), applied in event-time
-- order (ties: $identify, $create_alias, $merge_dangerously, then the ids), only calls before T:
--   * $identify (distinct_id A, $anon_distinct_id B), $create_alias and $merge_dangerously
--     (distinct_id A, alias B) merge B's person into A's, unless B's person is already identified
--     and the call is not $merge_dangerously (then the two persons stay apart);
--   * every such call identifies A's person from its time on; so does any $identify of A, with or
--     without $anon_distinct_id (a server-side identify);
--   * ids on PostHog's illegal list (isDistinctIdIllegal) or among placeholder_ids never merge;
--   * distinct ids sharing an export person_id are one person from the start (PostHog merged them).
-- The key is the smallest distinct id of the person that sent an $identify, else its smallest id.
SET TimeZone = 'UTC';

CREATE OR REPLACE TEMP TABLE plg_settings AS
SELECT
    coalesce(getvariable('placeholder_ids'),
             ['', 'null', 'undefined', 'anonymous', '0', 'none', 'nan']) AS placeholder_ids,
    coalesce(getvariable('signup_event'), '$identify') AS signup_event,
    coalesce(getvariable('milestones'), [
        'first_api_call_completed', 'first_report_generated', 'first_team_member_invited',
        'first_automated_workflow_triggered', 'integration_connected', 'first_successful_deployment'
    ]) AS milestones,
    coalesce(getvariable('conversion_event'), 'subscription_started') AS conversion_event,
    coalesce(getvariable('contract_value_property'), 'contract_value') AS contract_value_property,
    coalesce(getvariable('conversion_horizon_days'), 14) AS conversion_horizon_days,
    coalesce(getvariable('cohort_days'), 90) AS cohort_days,
    coalesce(getvariable('correlation_exclude_events'), []::VARCHAR[]) AS correlation_exclude_events,
    coalesce(getvariable('correlation_window'), 'posthog') AS correlation_window,
    coalesce(getvariable('revenue_window_days'), 90) AS revenue_window_days,
    coalesce(getvariable('paid_mediums'),
             ['cpc', 'ppc', 'cpm', 'paid', 'paid_search', 'paid_social', 'display']) AS paid_mediums,
    coalesce(getvariable('email_property'), 'email') AS email_property,
    coalesce(getvariable('internal_email_domains'), []::VARCHAR[]) AS internal_email_domains,
    coalesce(getvariable('opt_out_property'), 'analytics_opt_out') AS opt_out_property,
    coalesce(getvariable('test_org_ids'), []::VARCHAR[]) AS test_org_ids;

-- An id is usable when not null, not blank, not a placeholder and not the nil UUID.
CREATE OR REPLACE TEMP MACRO plg_valid_id(x) AS
    x IS NOT NULL
    AND NOT list_contains(
        list_concat((SELECT placeholder_ids FROM plg_settings), ['', '00000000-0000-0000-0000-000000000000']),
        lower(trim(x)));

CREATE OR REPLACE TEMP TABLE plg_events AS
SELECT
    uuid, timestamp, event, distinct_id, person_id,
    nullif(coalesce(
        json_extract_string(properties, '$."$group_0"'),
        json_extract_string(properties, '$."$groups".organization')
    ), '') AS org_id,
    properties,
    CASE WHEN json_valid(person_properties) AND json_type(person_properties) = 'OBJECT'
         THEN person_properties END AS person_properties
FROM (
    -- person_id and person_properties are optional columns: NULL in files without them
    SELECT * FROM read_parquet(getvariable('files'), union_by_name = true)
    UNION ALL BY NAME
    SELECT NULL::VARCHAR AS person_id, NULL::VARCHAR AS person_properties WHERE false
)
WHERE json_valid(properties) AND json_type(properties) = 'OBJECT' AND plg_valid_id(distinct_id);

-- PostHog's isDistinctIdIllegal (bare and quoted), compared trimmed and in any case, plus placeholders.
CREATE OR REPLACE TEMP MACRO plg_mergeable_id(x) AS
    plg_valid_id(x)
    AND NOT list_contains(
        list_concat(
            ['anonymous', 'guest', 'distinctid', 'distinct_id', 'id', 'not_authenticated', 'email',
             'undefined', 'true', 'false', '[object object]', 'nan', 'none', 'null', '0'],
            list_transform(['anonymous', 'guest', 'distinctid', 'distinct_id', 'id', 'not_authenticated',
                            'email', 'undefined', 'true', 'false', '[object object]', 'nan', 'none',
                            'null', '0'], lambda i: '''' || i || ''''),
            list_transform(['anonymous', 'guest', 'distinctid', 'distinct_id', 'id', 'not_authenticated',
                            'email', 'undefined', 'true', 'false', '[object object]', 'nan', 'none',
                            'null', '0'], lambda i: '"' || i || '"'),
            list_transform((SELECT placeholder_ids FROM plg_settings), lambda p: lower(trim(p)))),
        lower(trim(x)));

-- The merge calls, in the order PostHog's rules are applied here.
CREATE OR REPLACE TEMP TABLE plg_merge_calls AS
WITH calls AS (
    SELECT distinct_id AS a, json_extract_string(properties, '$."$anon_distinct_id"') AS b,
           0 AS kind, timestamp
    FROM plg_events WHERE event = '$identify'
    UNION ALL
    SELECT distinct_id, json_extract_string(properties, '$.alias'), 1, timestamp
    FROM plg_events WHERE event = '$create_alias'
    UNION ALL
    SELECT distinct_id, json_extract_string(properties, '$.alias'), 2, timestamp
    FROM plg_events WHERE event = '$merge_dangerously'
)
SELECT row_number() OVER (ORDER BY timestamp, kind, a, b) AS i, a, b, kind = 2 AS dangerous, timestamp
FROM calls
WHERE timestamp < getvariable('as_of') AND plg_mergeable_id(a) AND plg_mergeable_id(b) AND a <> b;

-- When each distinct id is identified: its first $identify (any), before T.
CREATE OR REPLACE TEMP TABLE plg_identified AS
SELECT distinct_id, min(timestamp) AS since
FROM plg_events
WHERE event = '$identify' AND timestamp < getvariable('as_of') AND plg_mergeable_id(distinct_id)
GROUP BY distinct_id;

-- Persons as the export's person_id groups them (components of distinct id <-> person_id).
CREATE OR REPLACE TEMP TABLE plg_person_groups AS
WITH RECURSIVE
edges AS (
    SELECT DISTINCT 'd:' || distinct_id AS x, 'p:' || person_id AS y FROM plg_events
    WHERE timestamp < getvariable('as_of') AND plg_mergeable_id(person_id) AND plg_mergeable_id(distinct_id)
),
both_ways AS (SELECT x, y FROM edges UNION SELECT y, x FROM edges),
nodes AS (
    SELECT x AS node FROM both_ways
    UNION SELECT 'd:' || distinct_id FROM plg_events
    UNION SELECT 'd:' || a FROM plg_merge_calls
    UNION SELECT 'd:' || b FROM plg_merge_calls
),
reach(node, other) AS (
    SELECT node, node FROM nodes
    UNION
    SELECT r.node, e.y FROM reach r JOIN both_ways e ON e.x = r.other
)
SELECT substr(node, 3) AS distinct_id, min(other) AS grp
FROM reach WHERE node LIKE 'd:%' GROUP BY node;

-- The merge calls one at a time over the groups: state per group = its root and, on roots, since
-- when the person is identified. A call merges b's person into a's unless it is identified by then.
CREATE OR REPLACE TEMP TABLE plg_person_roots AS
WITH RECURSIVE st(node, root, since, step) USING KEY (node) AS (
    SELECT g.grp, g.grp, coalesce(min(i.since), 'infinity'::TIMESTAMPTZ), NULL::BIGINT
    FROM plg_person_groups g LEFT JOIN plg_identified i USING (distinct_id)
    GROUP BY g.grp
    UNION ALL
    SELECT '#step', NULL, NULL, 0
    UNION
    (
        WITH cur AS (SELECT * FROM recurring.st),
        call AS (
            SELECT c.i, c.timestamp AS ts, c.dangerous,
                   (SELECT s.root FROM cur s JOIN plg_person_groups g ON g.grp = s.node
                    WHERE g.distinct_id = c.a) AS ra,
                   (SELECT s.root FROM cur s JOIN plg_person_groups g ON g.grp = s.node
                    WHERE g.distinct_id = c.b) AS rb
            FROM st w JOIN plg_merge_calls c ON w.node = '#step' AND c.i = w.step + 1
        ),
        d AS (
            SELECT call.*,
                   (SELECT since FROM cur WHERE node = call.ra) AS sa,
                   (SELECT since FROM cur WHERE node = call.rb) AS sb
            FROM call
        ),
        m AS (
            SELECT d.*, ra <> rb AND (dangerous OR sb > ts) AS merged,
                   least(ra, rb) AS low, greatest(ra, rb) AS high
            FROM d
        )
        SELECT '#step', NULL, NULL, i FROM m
        UNION ALL  -- the merged-away person's groups follow the surviving root
        SELECT cur.node, m.low, cur.since, NULL FROM m JOIN cur ON m.merged AND cur.root = m.high
        WHERE cur.node <> m.low
        UNION ALL  -- the surviving (or a's) root: identified from this call on at the latest
        SELECT CASE WHEN merged THEN low ELSE ra END, CASE WHEN merged THEN low ELSE ra END,
               least(sa, CASE WHEN merged THEN sb END, ts), NULL
        FROM m
    )
)
SELECT g.distinct_id, s.root FROM plg_person_groups g JOIN st s ON s.node = g.grp;

CREATE OR REPLACE TEMP TABLE plg_person_keys AS
SELECT r.distinct_id,
       coalesce(min(r2.distinct_id) FILTER (WHERE i.distinct_id IS NOT NULL),
                min(r2.distinct_id)) AS person_key
FROM plg_person_roots r
JOIN plg_person_roots r2 ON r2.root = r.root
LEFT JOIN plg_identified i ON i.distinct_id = r2.distinct_id
GROUP BY r.distinct_id;
