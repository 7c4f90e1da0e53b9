"""Settings load from defaults, YAML and environment, and bad values fail naming the key."""

from __future__ import annotations

import pytest

from plg_bridge.config import ConfigError, Settings, load_settings
from tests.conftest import REPO


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


def test_missing_config_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.yaml", env={})


def test_configuration_doc_lists_every_setting_with_its_default():
    import importlib.util

    spec = importlib.util.spec_from_file_location("config_doc", REPO / "scripts" / "config_doc.py")
    config_doc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(config_doc)
    doc = (REPO / "docs" / "configuration.md").read_text()
    missing = [row for row in config_doc.rows() if row not in doc]
    assert missing == [], "docs/configuration.md is stale: run python scripts/config_doc.py"
