"""What the simulated product is made of: event codes and names, acquisition channels, plans, pages,
names. Plain data, shared by the world model and the payload builders."""

from __future__ import annotations

ROWS_PER_ORG = 3_000
MIN_ROWS = 1_000
GROUPS_ONLY_FRACTION = 0.03  # identified events with `$groups` but no `$group_0`
GROWING_SHARE = 0.2
ESTABLISHED_SHARE = 0.4  # organizations whose members all signed up before the window
ORG_GROUP_TYPE = "organization"

SITE = "www.plgapp.io"
APP = "app.plgapp.io"

# Event codes: index into EVENT_NAMES. The first three are anonymous (pre-identify) page views.
(
    E_LANDING,
    E_ANON_PV,
    E_RETURN_PV,
    E_IDENTIFY,
    E_GROUPIDENTIFY,
    E_PV,
    E_CORE,
    E_CREATE,
    E_INTEGRATION,
    E_SUBSCRIPTION,
    E_MS_API,
    E_MS_REPORT,
    E_MS_INVITE,
    E_MS_WORKFLOW,
    E_MS_DEPLOY,
    E_LIMIT,
    E_ENTERPRISE,
) = range(17)
EVENT_NAMES = [
    "$pageview",
    "$pageview",
    "$pageview",
    "$identify",
    "$groupidentify",
    "$pageview",
    "core_feature_used",
    "creation_event",
    "integration_connected",
    "subscription_started",
    "first_api_call_completed",
    "first_report_generated",
    "first_team_member_invited",
    "first_automated_workflow_triggered",
    "first_successful_deployment",
    "hits_80_percent_of_tier_limit",
    "enterprise_feature_clicked",
]
ANON_CODES = (E_LANDING, E_ANON_PV, E_RETURN_PV)
# milestone code -> (probability for a member, mean hours after identify)
MILESTONES = {
    E_MS_API: (0.6, 6.0),
    E_MS_REPORT: (0.55, 18.0),
    E_MS_INVITE: (0.2, 30.0),  # 0.85 for the first member of an org
    E_MS_WORKFLOW: (0.3, 72.0),
    E_MS_DEPLOY: (0.4, 48.0),
}

# (utm_source, utm_medium, utm_campaign, referring_domain, weight); None = no utm on the landing URL
CHANNELS: list[tuple[str | None, str | None, str | None, str, float]] = [
    ("google", "cpc", "brand_search", "www.google.com", 0.17),
    ("google", "cpc", "competitor_keywords", "www.google.com", 0.06),
    ("linkedin", "paid_social", "abm_enterprise_q4", "www.linkedin.com", 0.13),
    ("facebook", "paid_social", "retargeting", "l.facebook.com", 0.04),
    ("newsletter", "email", "weekly_digest", "$direct", 0.06),
    ("zapier", "referral", "zapier_marketplace", "zapier.com", 0.05),
    (None, None, None, "www.google.com", 0.2),
    (None, None, None, "news.ycombinator.com", 0.05),
    (None, None, None, "github.com", 0.06),
    (None, None, None, "$direct", 0.18),
]
PAID_MEDIUMS = {"cpc", "paid_social"}
PLANS = ["free", "starter", "pro", "enterprise"]
PLAN_WEIGHTS = [0.35, 0.3, 0.25, 0.1]
SEATS = {"free": (1, 4), "starter": (3, 11), "pro": (10, 51), "enterprise": (50, 501)}
PRICE_PER_SEAT = {"free": 0.0, "starter": 15.0, "pro": 39.0, "enterprise": 89.0}
PROVIDERS = ["stripe", "salesforce", "zapier", "slack"]
FEATURES = ["dashboards", "reports", "workflows", "api", "alerts", "exports", "sql_editor", "notebooks"]
CREATED_OBJECTS = ["dashboard", "report", "workflow", "alert"]
ENTERPRISE_FEATURES = ["sso", "audit_logs", "rbac", "scim", "data_residency"]
LIMITS = ["events", "seats", "api_calls"]
MARKETING_PAGES = ["/", "/pricing", "/docs", "/blog/plg-metrics", "/customers", "/signup"]
APP_PAGES = ["/home", "/dashboards", "/reports", "/workflows", "/settings/billing", "/integrations", "/team"]
ELEMENT_CHAINS = [
    'button.btn.btn-primary:attr__class="btn btn-primary"nth-child="2"nth-of-type="1"text="Save"',
    'a:attr__href="/reports/new"href="/reports/new"nth-child="1"nth-of-type="1"text="New report"',
    'button:attr__data-attr="run-query"nth-child="3"nth-of-type="2"text="Run"',
]
ORG_WORDS = [
    "Acme", "Globex", "Initech", "Umbrella", "Hooli", "Vandelay", "Stark", "Wayne", "Soylent", "Cyberdyne",
    "Tyrell", "Wonka", "Pied Piper", "Aperture", "Monarch", "Oceanic", "Zürich", "O'Hare", "Nakatomi",
    "Bluth", "Sterling", "Prestige", "Massive", "Gekko", "Dunder", "Kramerica", "Sirius", "Ollivander",
]  # fmt: skip
ORG_SUFFIXES = [
    "Labs", "Analytics", "Systems", "Health", "Logistics", "Cloud", "Studio", "Foods", "Capital",
    "Robotics", '& "Sons"', "Café & Co", "GmbH", "Inc.",
]  # fmt: skip
FIRST_NAMES = [
    "ana", "ben", "chen", "dara", "eli", "fatima", "gus", "hana", "ivan", "jo", "kofi", "lena", "mateo",
    "nia", "omar", "priya", "quinn", "rosa", "sven", "tariq", "uma", "vik", "wen", "yara", "zoe",
]  # fmt: skip
LAST_NAMES = [
    "silva", "nguyen", "okafor", "smith", "kowalski", "tanaka", "garcia", "muller", "haddad", "obrien",
    "rossi", "singh", "larsen", "moreau", "kim", "novak", "duarte", "ibrahim", "costa", "weber",
]  # fmt: skip
BROWSERS = [("Chrome", "Mac OS X", "Desktop"), ("Chrome", "Windows", "Desktop"), ("Safari", "Mac OS X", "Desktop"),
            ("Firefox", "Linux", "Desktop"), ("Microsoft Edge", "Windows", "Desktop"),
            ("Mobile Safari", "iOS", "Mobile"), ("Chrome", "Android", "Mobile")]  # fmt: skip
