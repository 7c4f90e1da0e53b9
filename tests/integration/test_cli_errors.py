"""Configuration problems end the `plg-bridge` command with one line naming the cause, exit 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.events import event, write_export

CLI = str(Path(sys.executable).parent / "plg-bridge")


def _run(tmp_path, **env: str) -> subprocess.CompletedProcess:
    import os

    base = {k: v for k, v in os.environ.items() if not k.startswith(("PLG_BRIDGE__", "AIRFLOW_CONN_"))}
    return subprocess.run(
        [CLI, "sync", "--as-of", "2026-11-20"],
        env={**base, **env},
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        cwd=tmp_path,
    )


def _errors(done: subprocess.CompletedProcess) -> list[str]:
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    return [line for line in done.stderr.splitlines() if line.startswith("plg-bridge:")]


def test_missing_connection_is_one_line_and_exit_2(tmp_path):
    rows = [event("core_feature_used", "2026-11-19", org=o) for o in ("org_a", "org_b")]
    write_export(
        tmp_path / "exports", rows, name="2026-11-19T00:00:00+00:00-2026-11-20T00:00:00+00:00.parquet.zst"
    )
    done = _run(
        tmp_path,
        PLG_BRIDGE__EXPORTS__LOCATION=str(tmp_path / "exports"),
        PLG_BRIDGE__WORK_LOCATION=str(tmp_path / "work"),
    )
    assert done.returncode == 2, done.stderr[-2000:]
    (line,) = _errors(done)
    assert "hubspot_default" in line and "connection" in line.lower()


def test_bad_setting_from_the_environment_names_the_variable(tmp_path):
    done = _run(tmp_path, PLG_BRIDGE__SIGNALS__ENABLED="pql_crosed", PLG_BRIDGE__WORK_LOCATION=str(tmp_path))
    assert done.returncode == 2
    (line,) = _errors(done)
    assert "invalid setting signals.enabled: unknown signal 'pql_crosed'" in line
    assert line.endswith("(from environment variable PLG_BRIDGE__SIGNALS__ENABLED)")
