"""One failing destination never holds back the others (issue 11 item 4): `plg-bridge sync` runs
every target, writes the run report, then exits non-zero naming the failed targets; a destination
that stops answering is cut off after its first failed call (the rest dead-lettered at once as
DESTINATION_UNREACHABLE, retried next run); a missing Airflow connection is one line, exit 2."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from plg_bridge.cli import main
from tests.faults.conftest import CHANNEL, HUBSPOT_TOKEN

PLG_BRIDGE = str(Path(sys.executable).parent / "plg-bridge")
SYNC = ["sync", "--as-of", "2026-11-20"]


def closed_port() -> int:
    """A loopback port nothing listens on (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_destination_is_cut_off_and_the_others_still_deliver(vendors, waits, monkeypatch, capsys):
    from plg_bridge.delivery import state
    from plg_bridge.workspace import Workspace

    conn = {"conn_type": "http", "host": "127.0.0.1", "port": closed_port(), "schema": "http"}
    monkeypatch.setenv("AIRFLOW_CONN_HUBSPOT_DEFAULT", json.dumps({**conn, "password": HUBSPOT_TOKEN}))
    monkeypatch.setenv("PLG_BRIDGE__HUBSPOT__BATCH_SIZE", "2")  # companies in 3 batches, contacts in 9
    monkeypatch.setenv("PLG_BRIDGE__DELIVERY__MAX_REJECTED_SHARE", "0.05")

    code = main(SYNC)

    err = capsys.readouterr().err
    assert code == 1
    assert "failed targets: hubspot_companies, hubspot_contacts" in err, err
    assert vendors.problems(("salesforce", "intercom", "slack")) == []  # the others delivered
    assert len(vendors.slack.messages(CHANNEL)) >= 1
    assert (vendors.run_dir / "summary.md").exists()  # the report was written
    work = Workspace.load().work
    for target in ("hubspot_companies", "hubspot_contacts"):
        frame = state.load(work, target).frame
        assert set(frame["status"]) == {"failed"}, frame
        # the first call (the property check) spent its retries; every batch after it was cut off
        assert set(frame["error_code"]) == {"DESTINATION_UNREACHABLE"}, frame[["record_key", "error_code"]]
    # one round of retries per HubSpot client (companies, contacts, tasks' property check), not per batch
    assert len(waits.waits) <= 3 * 5, waits.waits


def test_missing_connection_is_one_line_and_exit_2(subprocess_vendors, monkeypatch):
    vendors = subprocess_vendors
    monkeypatch.delenv("AIRFLOW_CONN_HUBSPOT_DEFAULT")
    run = subprocess.run(
        [PLG_BRIDGE, *SYNC], env=dict(os.environ), capture_output=True, text=True, timeout=300, check=False
    )
    assert run.returncode == 2, run.stdout + run.stderr[-3000:]
    assert "Traceback" not in run.stderr, run.stderr
    named = [line for line in run.stderr.splitlines() if "hubspot_default" in line]
    assert named == [
        "plg-bridge: configuration error: Airflow connection 'hubspot_default' is not defined "
        "(set AIRFLOW_CONN_HUBSPOT_DEFAULT or add it in Airflow)"
    ], run.stderr
    assert vendors.problems(("salesforce", "intercom", "slack")) == []  # every other target ran
    assert (vendors.run_dir / "summary.md").exists()
    assert "hubspot_companies" in run.stdout and "FAILED" in run.stdout
