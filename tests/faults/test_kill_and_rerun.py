"""`plg-bridge sync` killed with SIGKILL in the middle of delivery, then run again to completion:
every desired record is at its vendor and no task, event or message is there twice.

The worker runs as a real subprocess against the fakes (in this process, over HTTP). One vendor
endpoint is made slow, the test watches the fake's request log until some but not all of that
target's calls have arrived and kills the process while a call is in flight: the vendor still
completes that call after the worker is gone (the fake finishes a delayed request), which is the
window between "the vendor created it" and "the state recorded it".
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.fakes.server import Fault
from tests.faults.conftest import Vendors

PLG_BRIDGE = str(Path(sys.executable).parent / "plg-bridge")
SYNC = [PLG_BRIDGE, "sync", "--as-of", "2026-11-20"]


@dataclass(frozen=True)
class KillPoint:
    target: str
    vendor: str  # attribute of Vendors
    path: str  # the slow endpoint (regex)
    delay: float  # seconds each of its calls takes
    calls: int  # how many of its calls have arrived when the worker is killed (the last in flight)
    rerun_calls: int  # calls to it the rerun makes
    unconfirmed: int  # records left unconfirmed: in flight at the kill, never sent again
    env: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.target


KILL_POINTS = [
    # Tasks in three journaled batches of two: killed while the second is in flight. The first
    # stays delivered; the second, in flight at the kill, is found by the rerun's lookup (HubSpot
    # made it: search on plg_signal_key) and delivered with its id; the rerun sends the third.
    KillPoint(
        "hubspot_tasks",
        "hubspot",
        r"^/crm/v3/objects/tasks/batch/create$",
        delay=1.5,
        calls=2,
        rerun_calls=1,
        unconfirmed=0,
        env={"PLG_BRIDGE__HUBSPOT__BATCH_SIZE": "2"},
    ),
    # The digest's only message, in flight: Slack posts it; the rerun finds it in the channel's
    # history by its metadata and posts nothing.
    KillPoint(
        "slack_digest", "slack", r"^/api/chat\.postMessage$", delay=2.0, calls=1, rerun_calls=0, unconfirmed=0
    ),
    # One call per event, killed while the third of five is in flight. Intercom ignores an
    # event with the same user, name and created_at, so the target is not journaled: the rerun
    # sends all five and Intercom keeps one of each.
    KillPoint("intercom_events", "intercom", r"^/events$", delay=0.8, calls=3, rerun_calls=5, unconfirmed=0),
]


def arrived(vendors: Vendors, point: KillPoint) -> int:
    return len(getattr(vendors, point.vendor).calls("POST", point.path))


def sync() -> subprocess.CompletedProcess:
    return subprocess.run(
        SYNC, check=False, env=dict(os.environ), capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("point", KILL_POINTS, ids=str)
def test_killed_mid_delivery_then_rerun_delivers_everything_once(point, subprocess_vendors, monkeypatch):
    vendors = subprocess_vendors
    for name, value in point.env.items():
        monkeypatch.setenv(name, value)
    fake = getattr(vendors, point.vendor)
    fake.inject(Fault(point.path, delay=point.delay, times=100))

    worker = subprocess.Popen(
        SYNC, env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 90
        while arrived(vendors, point) < point.calls:
            assert worker.poll() is None, f"the worker finished before {point.calls} calls to {point.path}"
            assert time.monotonic() < deadline, "the worker never reached the slow endpoint"
            time.sleep(0.02)
        time.sleep(min(0.2, point.delay / 4))  # the last call is in flight, not yet answered
        at_kill = arrived(vendors, point)  # >= point.calls: a target may keep several in flight
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(10)
    assert worker.returncode == -signal.SIGKILL
    assert arrived(vendors, point) == at_kill
    time.sleep(point.delay + 0.3)  # the vendor completes the call nobody waits for any more
    fake.faults.clear()

    rerun = sync()
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr[-3000:]
    assert arrived(vendors, point) - at_kill == point.rerun_calls
    assert vendors.problems() == []  # everything there, nothing twice
    assert vendors.intercom_event_replays() == (at_kill if point.target == "intercom_events" else 0)

    held = vendors.waiting()
    assert len(held) == point.unconfirmed, held
    if point.unconfirmed:  # on-call checks the vendor, finds them, confirms
        assert set(held["status"]) == {"unconfirmed"} and set(held["error_code"]) == {"IN_FLIGHT"}
        assert set(held["target"]) == {point.target}
        listed = subprocess.run(
            [PLG_BRIDGE, "dead-letters", "list"],
            check=False,
            env=dict(os.environ),
            capture_output=True,
            text=True,
        )
        assert "unconfirmed" in listed.stdout and "IN_FLIGHT" in listed.stdout, listed.stdout
        confirmed = subprocess.run(
            [PLG_BRIDGE, "dead-letters", "confirm", "--targets", point.target],
            check=False,
            env=dict(os.environ),
            capture_output=True,
            text=True,
        )
        assert confirmed.returncode == 0 and f"{point.unconfirmed} unconfirmed" in confirmed.stdout
        assert vendors.waiting().empty

    calls = vendors.calls()
    again = sync()
    assert again.returncode == 0, again.stdout + again.stderr[-3000:]
    assert vendors.calls() == calls  # a third run has nothing left to send
    assert vendors.problems() == []
