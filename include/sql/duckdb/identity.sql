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
-- Persons are the connected components of distinct ids and person ids linked before T by
-- $identify ($anon_distinct_id), $create_alias / $merge_dangerously (alias) and the export's
-- person_id; the key is the smallest identified distinct id (distinct_id of an $identify link),
-- else the smallest distinct id of the component.
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

CREATE OR REPLACE TEMP TABLE plg_links AS
WITH candidates AS (
    SELECT distinct_id AS a, json_extract_string(properties, '$."$anon_distinct_id"') AS b,
           'identify' AS kind, timestamp
    FROM plg_events WHERE event = '$identify'
    UNION ALL
    SELECT distinct_id, json_extract_string(properties, '$.alias'), 'alias', timestamp
    FROM plg_events WHERE event = '$create_alias'
    UNION ALL
    SELECT distinct_id, json_extract_string(properties, '$.alias'), 'merge', timestamp
    FROM plg_events WHERE event = '$merge_dangerously'
)
SELECT a, b, kind FROM candidates
WHERE timestamp < getvariable('as_of') AND plg_valid_id(b) AND a <> b
UNION ALL
SELECT distinct_id, person_id, 'person' FROM plg_events
WHERE timestamp < getvariable('as_of') AND plg_valid_id(person_id);

CREATE OR REPLACE TEMP TABLE plg_person_keys AS
WITH RECURSIVE
edges AS (
    SELECT DISTINCT 'd:' || a AS x, (CASE WHEN kind = 'person' THEN 'p:' ELSE 'd:' END) || b AS y
    FROM plg_links
),
both_ways AS (SELECT x, y FROM edges UNION SELECT y, x FROM edges),
nodes AS (
    SELECT x AS node FROM both_ways
    UNION SELECT 'd:' || distinct_id FROM plg_events
),
reach(node, other) AS (
    SELECT node, node FROM nodes
    UNION
    SELECT r.node, e.y FROM reach r JOIN both_ways e ON e.x = r.other
),
identified AS (SELECT DISTINCT 'd:' || a AS node FROM plg_links WHERE kind = 'identify')
SELECT
    substr(r.node, 3) AS distinct_id,
    substr(coalesce(min(r.other) FILTER (WHERE i.node IS NOT NULL),
                    min(r.other) FILTER (WHERE r.other LIKE 'd:%')), 3) AS person_key
FROM reach r LEFT JOIN identified i ON i.node = r.other
WHERE r.node LIKE 'd:%'
GROUP BY r.node;
