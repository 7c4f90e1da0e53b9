"""The delivery state cannot depend on the current directory: production refuses a relative or
demo work location (naming the setting and where it came from); the demo's flag allows it."""

from __future__ import annotations

import json

import pytest

from plg_bridge.cli import main
from plg_bridge.config import ConfigError, Settings, load_settings
from plg_bridge.workspace import Workspace, check_work_location
from tests.fakes.hubspot import FakeHubSpot
from tests.support import REPO
from tests.support.events import event, write_export


@pytest.mark.parametrize(
    ("where", "why"),
    [
        ("plg-state", "is a relative path"),
        ("./state", "is a relative path"),
        (".demo/bucket/plg-bridge", "is a relative path"),
        ("/srv/app/.demo/bucket/plg-bridge", "is under .demo/"),
    ],
)
def test_production_refuses_relative_and_demo_work_locations(where, why):
    settings = load_settings(
        REPO / "include/config/plg_bridge.yaml", env={"PLG_BRIDGE__WORK_LOCATION": where}
    )
    with pytest.raises(ConfigError, match="invalid setting work_location") as err:
        Workspace(settings)
    assert why in str(err.value)
    assert str(err.value).endswith("(from environment variable PLG_BRIDGE__WORK_LOCATION)")
    assert Workspace(load_settings(env={"PLG_BRIDGE__WORK_LOCATION": where, "PLG_BRIDGE__DEMO": "true"}))


def test_the_shipped_default_is_refused_naming_the_file_and_key():
    path = REPO / "include/config/plg_bridge.yaml"
    with pytest.raises(ConfigError) as err:
        Workspace.load(path)
    assert "'.demo/bucket/plg-bridge' is a relative path" in str(err.value)
    assert str(err.value).endswith(f"(from {path}, key work_location)")
    with pytest.raises(ConfigError, match=r"\(the default value\)"):
        check_work_location(Settings())


@pytest.mark.parametrize("where", ["s3://acme/plg-bridge", "/var/lib/plg-bridge"])
def test_s3_and_absolute_folders_are_accepted(where):
    check_work_location(Settings(work_location=where))


@pytest.fixture
def two_directories(tmp_path, monkeypatch):
    rows = [event("core_feature_used", "2026-11-19", org=o) for o in ("org_a", "org_b", "org_c")]
    write_export(
        tmp_path / "exports", rows, name="2026-11-19T00:00:00+00:00-2026-11-20T00:00:00+00:00.parquet.zst"
    )
    with FakeHubSpot(token="tok") as hubspot:
        monkeypatch.setenv("PLG_BRIDGE__EXPORTS__LOCATION", str(tmp_path / "exports"))
        monkeypatch.delenv("PLG_BRIDGE__DEMO", raising=False)
        conn = {"conn_type": "http", "host": "127.0.0.1", "port": hubspot.port, "schema": "http"}
        monkeypatch.setenv("AIRFLOW_CONN_HUBSPOT_DEFAULT", json.dumps({**conn, "password": "tok"}))
        dirs = [tmp_path / "ops-shell", tmp_path / "cron-home"]
        for d in dirs:
            d.mkdir()
        yield hubspot, dirs


def test_same_sync_from_two_directories_keeps_one_state(two_directories, monkeypatch, capsys, tmp_path):
    hubspot, dirs = two_directories
    # the case: a relative work location (the shipped default was one)
    monkeypatch.setenv("PLG_BRIDGE__WORK_LOCATION", "plg-state")
    for d in dirs:
        monkeypatch.chdir(d)
        assert main(["sync", "--as-of", "2026-11-20"]) == 2
        err = capsys.readouterr().err
        assert "invalid setting work_location: 'plg-state' is a relative path" in err
        errors = [line for line in err.splitlines() if line.startswith("plg-bridge:")]
        assert len(errors) == 1 and "PLG_BRIDGE__WORK_LOCATION" in errors[0]  # one line, no traceback
        assert "Traceback" not in err
        assert not (d / "plg-state").exists()
    assert hubspot.calls("POST", "batch/upsert") == []

    # an absolute location: the second directory's run finds the first run's state
    monkeypatch.setenv("PLG_BRIDGE__WORK_LOCATION", str(tmp_path / "state"))
    monkeypatch.chdir(dirs[0])
    assert main(["sync", "--as-of", "2026-11-20"]) == 0
    assert "plan: 3 create" in capsys.readouterr().out
    monkeypatch.chdir(dirs[1])
    assert main(["sync", "--as-of", "2026-11-20"]) == 0
    assert "plan: 0 create, 0 update, 0 retry, 3 unchanged" in capsys.readouterr().out
    assert len(hubspot.objects()) == 3
