"""One failing destination never holds back the others (issue 11 item 4): `plg-bridge sync` runs
every target, writes the run report, then exits non-zero naming the failed targets; a destination
that stops answering is cut off after its first failed call (the rest dead-lettered at once as
DESTINATION_UNREACHABLE, retried next run); a missing Airflow connection is one line, exit 2."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
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


class Hangup:
    """A loopback server that accepts each connection and closes it at once: a destination that
    stops answering. Counts the connections (each one an attempt of the client)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.paths: list[str] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            conn.settimeout(2)
            with contextlib.suppress(OSError):
                self.paths.append(conn.recv(200).split(b"\r\n")[0].decode())
            conn.close()


def test_unreachable_destination_is_cut_off_and_the_others_still_deliver(vendors, waits, monkeypatch, capsys):
    from plg_bridge.delivery import state
    from plg_bridge.workspace import Workspace

    hangup = Hangup()
    conn = {"conn_type": "http", "host": "127.0.0.1", "port": hangup.port, "schema": "http"}
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
    # one round of attempts for HubSpot in the whole run (the first call: companies' property
    # check); every later call of every HubSpot target is cut off: without that the property
    # checks, 3 company and 9 contact batches and 3 task batches would each make 6 attempts
    assert hangup.connections == 6, "\n".join(hangup.paths)
    hangup.sock.close()


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


def test_a_create_refused_unsent_is_a_dead_letter_not_unconfirmed(vendors, monkeypatch):
    """Connection refused on every attempt of a task create: nothing reached HubSpot, so the rows
    wait as dead letters (retried next run), not as unconfirmed rows for on-call."""
    from tests.fakes.server import Fault, Response

    monkeypatch.setenv("PLG_BRIDGE__DELIVERY__DESTINATIONS", "hubspot")
    refused = Response(400, {"status": "error", "category": "VALIDATION_ERROR", "message": "try later"})
    vendors.hubspot.inject(Fault(r"^/crm/v3/objects/tasks/batch/create$", refused))
    vendors.run()  # companies and contacts delivered; the tasks refused (dead letters)
    assert set(vendors.waiting()["target"]) == {"hubspot_tasks"}

    conn = {"conn_type": "http", "host": "127.0.0.1", "port": closed_port(), "schema": "http"}
    monkeypatch.setenv("AIRFLOW_CONN_HUBSPOT_DEFAULT", json.dumps({**conn, "password": HUBSPOT_TOKEN}))
    vendors.run()
    held = vendors.waiting()
    assert set(held["status"]) == {"failed"}, held  # never unconfirmed: nothing left
    assert set(held["error_code"]) <= {"NOT_SENT", "DESTINATION_UNREACHABLE"}, held

    monkeypatch.setenv("AIRFLOW_CONN_HUBSPOT_DEFAULT", vendors.env["AIRFLOW_CONN_HUBSPOT_DEFAULT"])
    vendors.run()
    assert vendors.problems(("hubspot",)) == []
    assert vendors.waiting().empty
