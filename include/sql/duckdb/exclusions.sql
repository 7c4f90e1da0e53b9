-- Exclusions in DuckDB: the oracle for models/exclusions.py. Needs identity.sql first.
--
-- Creates plg_excluded (person_key, reason): persons left out of every model, one reason each,
-- in this order of precedence:
--   internal_email     the latest email (<email_property>, before T) of any of the person's
--                      distinct ids is at one of internal_email_domains or a subdomain of one
--   opted_out          the latest <opt_out_property> across the person's distinct ids is
--                      true / 1 / yes / y / on (any case)
--   test_organization  the person acted in one of test_org_ids before T
-- Both properties are read from the event's properties.$set and from its person_properties
-- column, at the event's timestamp; "latest" = the latest timestamp, ties: the larger value.
CREATE OR REPLACE TEMP TABLE plg_profiles AS
WITH s AS (SELECT * FROM plg_settings),
raw AS (
    SELECT e.distinct_id, 'email' AS key, e.timestamp,
           json_extract_string(e.properties, '$."$set"."' || s.email_property || '"') AS value
    FROM plg_events e, s
    UNION ALL
    SELECT e.distinct_id, 'opt_out', e.timestamp,
           json_extract_string(e.properties, '$."$set"."' || s.opt_out_property || '"')
    FROM plg_events e, s
    UNION ALL
    SELECT e.distinct_id, 'email', e.timestamp,
           json_extract_string(e.person_properties, '$."' || s.email_property || '"')
    FROM plg_events e, s
    WHERE e.person_properties IS NOT NULL
    UNION ALL
    SELECT e.distinct_id, 'opt_out', e.timestamp,
           json_extract_string(e.person_properties, '$."' || s.opt_out_property || '"')
    FROM plg_events e, s
    WHERE e.person_properties IS NOT NULL
)
SELECT r.distinct_id, r.key, r.value, r.timestamp, coalesce(k.person_key, r.distinct_id) AS person_key
FROM raw r LEFT JOIN plg_person_keys k USING (distinct_id)
WHERE r.value IS NOT NULL AND r.timestamp < getvariable('as_of')
QUALIFY row_number() OVER (PARTITION BY r.distinct_id, r.key ORDER BY r.timestamp DESC, r.value DESC) = 1;

CREATE OR REPLACE TEMP TABLE plg_excluded AS
WITH s AS (SELECT * FROM plg_settings),
internal AS (
    SELECT DISTINCT p.person_key, 0 AS priority, 'internal_email' AS reason
    FROM plg_profiles p, s
    WHERE p.key = 'email' AND len(s.internal_email_domains) > 0
      AND regexp_matches(lower(trim(p.value)),
          '@(?:[^@]*\.)?(?:' || array_to_string(
              list_transform(s.internal_email_domains, lambda d: replace(d, '.', '\.')),
              '|') || ')$')
),
opted AS (
    SELECT person_key, 1 AS priority, 'opted_out' AS reason
    FROM plg_profiles WHERE key = 'opt_out'
    QUALIFY row_number() OVER (PARTITION BY person_key ORDER BY timestamp DESC, value DESC) = 1
        AND lower(trim(value)) IN ('true', '1', 'yes', 'y', 'on')
),
tested AS (
    SELECT DISTINCT coalesce(k.person_key, e.distinct_id) AS person_key, 2 AS priority,
           'test_organization' AS reason
    FROM plg_events e LEFT JOIN plg_person_keys k USING (distinct_id), s
    WHERE e.timestamp < getvariable('as_of') AND list_contains(s.test_org_ids, e.org_id)
)
SELECT person_key, arg_min(reason, priority) AS reason
FROM (SELECT * FROM internal UNION ALL SELECT * FROM opted UNION ALL SELECT * FROM tested)
GROUP BY person_key;
