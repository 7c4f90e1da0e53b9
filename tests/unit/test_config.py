"""Settings load from defaults, YAML and environment, and bad values fail naming the key."""

from __future__ import annotations

import dataclasses

import pytest

from plg_bridge.config import ConfigError, Settings, load_settings
from tests.support import REPO


def test_shipped_yaml_documents_exactly_the_defaults():
    assert load_settings(REPO / "include/config/plg_bridge.yaml", env={}) == Settings()
    shipped = load_settings(REPO / "include/config/plg_bridge.yaml", env={})
    assert shipped.pql.threshold == 75
    assert shipped.hubspot.batch_size == 100


def test_environment_overrides_yaml(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("pql:\n  threshold: 80\nexports:\n  location: s3://a/b\n")
    s = load_settings(path, env={"PLG_BRIDGE__PQL__THRESHOLD": "60", "PLG_BRIDGE__EXPORTS__GROUP_INDEX": "2"})
    assert (s.pql.threshold, s.exports.location, s.exports.group_index) == (60, "s3://a/b", 2)


def test_list_setting_from_environment():
    s = load_settings(env={"PLG_BRIDGE__EXPORTS__PLACEHOLDER_IDS": "null,guest"})
    assert s.exports.placeholder_ids == ("null", "guest")


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("pql:\n  treshold: 70\n", "unknown setting pql.treshold"),
        ("pql:\n  threshold: high\n", "invalid setting pql.threshold: expected int"),
        ("pql:\n  threshold: 101\n", "invalid setting pql.threshold"),
        ("hubspot:\n  batch_size: 500\n", "invalid setting hubspot.batch_size"),
        ("exports:\n  group_index: 7\n", "invalid setting exports.group_index"),
        ("alerts:\n  enabled: maybe\n", "invalid setting alerts.enabled"),
        ("delivery:\n  destinations: [hubspot, zendesk]\n", "unknown destination .zendesk."),
        ("pql: 3\n", "invalid setting pql: expected a mapping"),
        ("models:\n  milestones: [$identify]\n", "invalid setting models.milestones"),
        ("models:\n  milestones: []\n", "invalid setting models.milestones"),
        ("models:\n  cohort_days: 14\n", "invalid setting models.cohort_days"),
        (
            "models:\n  internal_email_domains: ['@acme.com']\n",
            "invalid setting models.internal_email_domains",
        ),
        ("models:\n  paid_mediums: [CPC]\n", "invalid setting models.paid_mediums"),
        ("models:\n  opt_out_property: email\n", "invalid setting models.opt_out_property"),
        ("models:\n  conversion_event: $identify\n", "invalid setting models.conversion_event"),
        ("- a\n", "must hold a mapping"),
    ],
)
def test_bad_settings_name_the_key_and_file(tmp_path, yaml_text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError, match=message) as err:
        load_settings(path, env={})
    assert "bad.yaml" in str(err.value)


# One or more bad values per section, each named with its key; every section is validated at load.
SECTION_CASES = [
    ("exports", "location", "''", "exports.location: must not be empty"),
    ("exports", "endpoint_url", "localhost:9000", "exports.endpoint_url: must be an http"),
    ("exports", "key_template", "'{table}/{yaer}'", "exports.key_template: invalid export key template"),
    ("exports", "interval", "month", "exports.interval: must be one of"),
    ("exports", "batch_rows", "0", "exports.batch_rows: must be positive"),
    ("exports", "check_hours", "-1", "exports.check_hours"),
    ("pql", "breadth_event", "core_feature_used", "pql.breadth_event: must differ from pql.velocity_event"),
    ("pql", "integration_event", "''", "pql.integration_event: must not be empty"),
    ("pql", "velocity_points", "-5", "pql.velocity_points: must not be negative"),
    ("pql", "velocity_ratio", "0", "pql.velocity_ratio: must be positive"),
    ("calibration", "min_lift", "0.5", "calibration.min_lift"),
    ("calibration", "horizon_days", "0", "calibration.horizon_days"),
    ("models", "correlation_exclude_events", "['a', 'a']", "models.correlation_exclude_events: lists"),
    ("models", "test_org_ids", "['']", "models.test_org_ids: must not contain empty names"),
    ("hubspot", "company_id_property", "'PostHog Group'", "hubspot.company_id_property"),
    ("hubspot", "calls_per_10s", "1000", "hubspot.calls_per_10s: must be 1..250"),
    ("hubspot", "conn_id", "''", "hubspot.conn_id: must not be empty"),
    ("salesforce", "api_version", "'67'", "salesforce.api_version: must look like v67.0"),
    ("salesforce", "external_id_field", "'PostHog Id'", "salesforce.external_id_field"),
    ("salesforce", "bulk_threshold", "0", "salesforce.bulk_threshold"),
    ("signals", "enabled", "[pql_crosed]", "signals.enabled: unknown signal 'pql_crosed'"),
    ("signals", "enabled", "[pql_crossed, pql_crossed]", "signals.enabled: lists"),
    (
        "signals",
        "usage_ceiling_to",
        "[hubspot, zendesk]",
        "signals.usage_ceiling_to: unknown destination 'zendesk'",
    ),
    ("signals", "aha_event", "''", "signals.aha_event: must not be empty"),
    ("intercom", "aha_event_name", "''", "intercom.aha_event_name: must not be empty"),
    ("intercom", "aha_event_name", "'   '", "intercom.aha_event_name: must not be empty"),
    ("intercom", "aha_event_name", "' aha '", "intercom.aha_event_name: must have no leading"),
    ("slack", "channel", "nochannel", "slack.channel: 'nochannel' is not a Slack channel"),
    ("slack", "channel", "'#PLG Alerts'", "slack.channel"),
    ("delivery", "paused", "[zendesk]", "delivery.paused: unknown destination 'zendesk'"),
    ("delivery", "destinations", "[hubspot, hubspot]", "delivery.destinations: lists"),
    ("delivery", "max_rejected_share", "1.5", "delivery.max_rejected_share"),
    ("alerts", "channel", "alerts", "alerts.channel: 'alerts' is not a Slack channel"),
    ("alerts", "trailing_runs", "2", "alerts.trailing_runs"),
    ("alerts", "slack_conn_id", "''", "alerts.slack_conn_id: must not be empty"),
]


@pytest.mark.parametrize(("section", "key", "value", "message"), SECTION_CASES)
def test_every_section_is_validated_naming_file_and_key(tmp_path, section, key, value, message):
    path = tmp_path / "deploy.yaml"
    path.write_text(f"{section}:\n  {key}: {value}\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path, env={})
    assert message in str(err.value)
    assert str(err.value).endswith(f"(from {path}, key {section}.{key})")


@pytest.mark.parametrize(("section", "key", "value", "message"), SECTION_CASES)
def test_errors_from_the_environment_name_the_variable(tmp_path, section, key, value, message):
    import yaml

    good = getattr(getattr(Settings(), section), key)  # the file sets the key, to a good value
    path = tmp_path / "deploy.yaml"
    path.write_text(yaml.safe_dump({section: {key: list(good) if isinstance(good, tuple) else good}}))

    raw = yaml.safe_load(f"v: {value}")["v"]
    text = ",".join(raw) if isinstance(raw, list) else str(raw)
    variable = f"PLG_BRIDGE__{section.upper()}__{key.upper()}"
    with pytest.raises(ConfigError) as err:
        load_settings(path, env={variable: text})
    assert message.split(":")[0] in str(err.value)
    assert str(err.value).endswith(f"(from environment variable {variable})")
    assert str(path) not in str(err.value), "the file holds a good value: it is not the source"


def test_shipped_defaults_of_every_section_pass_validation():
    settings = Settings()
    assert settings.validate() is settings
    sections = [
        f.name for f in dataclasses.fields(Settings) if dataclasses.is_dataclass(getattr(settings, f.name))
    ]
    assert {"signals", "intercom", "slack"} <= set(sections)  # the three sections that were never validated


def test_coercion_errors_from_the_environment_name_the_variable():
    with pytest.raises(
        ConfigError, match=r"expected int.*\(from environment variable PLG_BRIDGE__PQL__THRESHOLD\)"
    ):
        load_settings(REPO / "include/config/plg_bridge.yaml", env={"PLG_BRIDGE__PQL__THRESHOLD": "high"})
    with pytest.raises(ConfigError, match=r"unknown setting pql.treshold.*PLG_BRIDGE__PQL__TRESHOLD"):
        load_settings(env={"PLG_BRIDGE__PQL__TRESHOLD": "70"})


def test_settings_remember_where_each_value_came_from(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("slack:\n  channel: '#sales'\npql:\n  threshold: 80\n")
    s = load_settings(path, env={"PLG_BRIDGE__PQL__THRESHOLD": "60"})
    assert s.source("slack.channel") == f"from {path}, key slack.channel"
    assert s.source("pql.threshold") == "from environment variable PLG_BRIDGE__PQL__THRESHOLD"
    assert s.source("hubspot.batch_size") == "the default value"
    assert "sources" not in {row.split("`")[1] for row in _config_doc().rows()[2:]}


def test_missing_config_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.yaml", env={})


def _config_doc():
    import importlib.util

    spec = importlib.util.spec_from_file_location("config_doc", REPO / "scripts" / "config_doc.py")
    config_doc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(config_doc)
    return config_doc


def test_configuration_doc_lists_every_setting_with_its_default():
    doc = (REPO / "docs" / "configuration.md").read_text()
    missing = [row for row in _config_doc().rows() if row not in doc]
    assert missing == [], "docs/configuration.md is stale: run python scripts/config_doc.py"
