"""Answers lost AFTER the vendor acted, for every create-once target: a proxy between plg-bridge and
the fake vendor (tests/fakes/proxy.py) forwards the create, the vendor makes the task / message /
event, then the answer is cut mid-body, the connection reset, a gateway answers 502/504, a 207
refuses one row, or the answer is held while the worker is SIGKILLed.

The contract (issue 11): 0 duplicates and nothing silently lost. A create-once row whose answer
was lost is looked up at the vendor by its key (HubSpot: task search on `plg_signal_key`; Slack:
channel history by message metadata); Intercom dedupes a replayed event itself. Only what no
lookup can decide (a Slack webhook) waits for on-call, listed as unconfirmed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from plg_bridge.cli import main
from tests.fakes.proxy import LosingProxy
from tests.fakes.server import Fault
from tests.faults.conftest import HUBSPOT_TOKEN, INTERCOM_TOKEN, SLACK_TOKEN, Vendors

HS_TASKS = r"^/crm/v3/objects/tasks/batch/create$"
SLACK_POST = r"^/api/chat\.postMessage$"
SLACK_WEBHOOK = r"^/services/"
IC_EVENTS = r"^/events$"
PLG_BRIDGE = str(Path(sys.executable).parent / "plg-bridge")

CREATE_ONCE = {  # destination -> (vendor attribute, create path, target)
    "hubspot": ("hubspot", HS_TASKS, "hubspot_tasks"),
    "slack": ("slack", SLACK_POST, "slack_digest"),
    "intercom": ("intercom", IC_EVENTS, "intercom_events"),
}


def _through(proxy: LosingProxy, destination: str) -> dict[str, str]:
    """Connections that reach `destination`'s fake through the proxy."""
    port = proxy.port
    if destination == "hubspot":
        return {"AIRFLOW_CONN_HUBSPOT_DEFAULT": _conn(port, HUBSPOT_TOKEN)}
    if destination == "intercom":
        return {"AIRFLOW_CONN_INTERCOM_DEFAULT": _conn(port, INTERCOM_TOKEN)}
    extra = {"base_url": f"{proxy.url}/api/"}
    return {
        "AIRFLOW_CONN_SLACK_DEFAULT": json.dumps(
            {"conn_type": "slack", "password": SLACK_TOKEN, "extra": extra}
        )
    }


def _conn(port: int, token: str) -> str:
    return json.dumps(
        {"conn_type": "http", "host": "127.0.0.1", "port": port, "schema": "http", "password": token}
    )


@pytest.fixture
def proxied(vendors, monkeypatch):
    """(vendors, start(destination) -> proxy): the destination's fake behind a LosingProxy."""
    started: list[LosingProxy] = []

    def start(destination: str) -> LosingProxy:
        fake = getattr(vendors, CREATE_ONCE[destination][0])
        proxy = LosingProxy(fake.url).start()
        started.append(proxy)
        for name, value in _through(proxy, destination).items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("PLG_BRIDGE__DELIVERY__DESTINATIONS", destination)
        return proxy

    yield vendors, start
    for proxy in started:
        proxy.stop()


def creates(vendors: Vendors, destination: str) -> int:
    vendor, path, _ = CREATE_ONCE[destination]
    return len(getattr(vendors, vendor).calls("POST", path))


LOSSES = [(d, how) for d in ("hubspot", "slack", "intercom") for how in ("cut", "reset", "502", "504")]


@pytest.mark.parametrize(("destination", "how"), LOSSES, ids=[f"{d}-{h}" for d, h in LOSSES])
def test_answer_lost_after_the_vendor_acted_creates_nothing_twice(destination, how, proxied):
    vendors, start = proxied
    proxy = start(destination)
    proxy.lose(CREATE_ONCE[destination][1], how)

    vendors.run()

    assert [h for _m, _p, h in proxy.lost] == [how], "the fault never struck: the case tests nothing"
    assert vendors.problems((destination,)) == []  # every record there, none twice
    held = vendors.waiting()
    assert held.empty, held  # settled by the lookup (or the vendor's dedupe) within the run
    if destination == "intercom":  # replayed on the wire, absorbed by Intercom's dedupe
        assert vendors.intercom_event_replays() >= 1
    else:
        assert vendors.intercom_event_replays() == 0
    target = CREATE_ONCE[destination][2]
    if destination != "intercom":  # the journal kept the vendor's id the lookup found
        assert _state(target)["destination_id"].notna().all()

    sent = creates(vendors, destination)
    vendors.run()  # an unchanged rerun creates nothing
    assert creates(vendors, destination) == sent
    assert vendors.problems((destination,)) == []


def _state(target: str):
    from plg_bridge.delivery import state
    from plg_bridge.workspace import Workspace

    return state.load(Workspace.load().work, target).frame


def test_hubspot_207_marks_exactly_the_refused_row(proxied):
    """The vendor created all but the withheld task and said so in a 207: only that row is a dead
    letter; the others are delivered with their ids; the rerun creates only the refused one."""
    vendors, start = proxied
    proxy = start("hubspot")
    proxy.lose(HS_TASKS, "207")

    vendors.run()

    tasks = _state("hubspot_tasks")
    failed = tasks[tasks["status"] == "failed"]
    assert len(failed) == 1 and set(failed["error_code"]) == {"INVALID_OPTION"}, tasks
    delivered = tasks[tasks["status"] == "delivered"]
    assert len(delivered) == len(tasks) - 1 >= 1 and delivered["destination_id"].notna().all()
    made = {t["id"] for t in vendors.hubspot.tasks}
    assert set(delivered["destination_id"]) == made  # the ids are the vendor's own
    assert [p for p in vendors.problems(("hubspot",)) if "missing" not in p] == []

    vendors.run()
    assert vendors.problems(("hubspot",)) == []  # the refused task now, and nothing twice
    assert vendors.waiting().empty


def test_lookup_waits_for_hubspot_search_to_catch_up(proxied):
    """HubSpot's search shows a new task only after a moment: the lookup asks again before it
    decides, so a task that exists is found, not resent."""
    vendors, start = proxied
    proxy = start("hubspot")
    vendors.hubspot.search_lag = 0.8
    proxy.lose(HS_TASKS, "504")

    vendors.run()

    searches = vendors.hubspot.calls("POST", r"/crm/v3/objects/tasks/search$")
    assert len(searches) >= 2  # the first search missed the fresh tasks
    assert vendors.problems(("hubspot",)) == []
    assert vendors.waiting().empty


def test_task_the_vendor_never_made_is_resent_only_after_the_lookup_misses(proxied, monkeypatch):
    """A reset before HubSpot acted: the lookup finds nothing, the row stays unconfirmed while a
    live run could still be sending it (RESEND_AFTER), then the next run resends it once."""
    from plg_bridge.delivery import journal

    vendors, start = proxied
    start("hubspot")
    vendors.hubspot.inject(Fault(HS_TASKS, reset=True))  # the fake's own fault: before acting
    monkeypatch.setattr(journal, "RESEND_AFTER", 3600.0)

    vendors.run()
    held = vendors.waiting()
    assert set(held["status"]) == {"unconfirmed"} and len(held) >= 1
    assert held["error_message"].str.contains("not found at the vendor").all(), held["error_message"]
    before = creates(vendors, "hubspot")
    vendors.run()  # too soon: still held, nothing resent
    assert creates(vendors, "hubspot") == before and len(vendors.waiting()) == len(held)

    monkeypatch.setattr(journal, "RESEND_AFTER", 0.0)
    vendors.run()
    assert creates(vendors, "hubspot") == before + 1
    assert vendors.problems(("hubspot",)) == []
    assert vendors.waiting().empty


def test_slack_webhook_cannot_be_looked_up_so_the_message_waits_for_oncall(proxied, monkeypatch):
    """An incoming webhook answers nothing to match and cannot read history: after a 504 the
    message is unconfirmed (never reposted by a normal run) until on-call confirms it."""
    vendors, start = proxied
    proxy = start("slack")
    url = f"{proxy.url}{vendors.slack.webhook_path}"
    monkeypatch.setenv(
        "AIRFLOW_CONN_SLACK_DEFAULT", json.dumps({"conn_type": "slackwebhook", "password": url})
    )
    proxy.lose(SLACK_WEBHOOK, "504")

    vendors.run()
    vendors.run()

    held = vendors.waiting()  # every signal of the one message (a Slack record is a signal)
    assert len(held) >= 1 and set(held["status"]) == {"unconfirmed"}, held
    assert "cannot be looked up" in held["error_message"].iloc[0]
    assert len(vendors.slack.messages("plg-alerts")) == 1  # posted once, not twice
    assert main(["dead-letters", "confirm", "--targets", "slack_digest"]) == 0
    assert vendors.waiting().empty


# -- kill -9 while the answer is held ---------------------------------------------------------


@pytest.mark.parametrize("destination", ["hubspot", "slack", "intercom"])
def test_killed_while_the_answer_is_held_then_rerun_creates_nothing_twice(
    destination, subprocess_vendors, monkeypatch
):
    vendors = subprocess_vendors
    fake = getattr(vendors, CREATE_ONCE[destination][0])
    with LosingProxy(fake.url, hold_seconds=60) as proxy:
        for name, value in _through(proxy, destination).items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("PLG_BRIDGE__DELIVERY__DESTINATIONS", destination)
        proxy.lose(CREATE_ONCE[destination][1], "hold")
        sync = [PLG_BRIDGE, "sync", "--as-of", "2026-11-20"]
        worker = subprocess.Popen(
            sync, env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            assert proxy.holding.wait(90), "the worker never sent a create"
            worker.send_signal(signal.SIGKILL)
            worker.wait(10)
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait(10)
        assert worker.returncode == -signal.SIGKILL
        made = creates(vendors, destination)
        assert made >= 1  # the vendor acted on the held call
        proxy.release()

        rerun = subprocess.run(
            sync, env=dict(os.environ), capture_output=True, text=True, timeout=180, check=False
        )
        assert rerun.returncode == 0, rerun.stdout + rerun.stderr[-3000:]
    assert vendors.problems((destination,)) == []  # found by the lookup, not created again
    assert vendors.waiting().empty


def test_killed_while_waiting_for_the_rate_limiter_leaves_nothing_unconfirmed(vendors, monkeypatch):
    """A batch is in flight only once its request is about to leave: a run that dies while the
    limiter holds the tasks' request back leaves every task planned, none unconfirmed."""
    from plg_bridge.delivery import state, transport
    from plg_bridge.workspace import Workspace

    monkeypatch.setenv("PLG_BRIDGE__DELIVERY__DESTINATIONS", "hubspot")
    monkeypatch.setenv("PLG_BRIDGE__HUBSPOT__BATCH_SIZE", "2")

    class Killed(BaseException):
        pass

    acquire = transport.RateLimiter.acquire

    def dies_on_the_tasks_wait(self):
        if vendors.hubspot.calls("POST", HS_TASKS):
            raise Killed  # the worker dies in the limiter's wait before the second task batch
        return acquire(self)

    monkeypatch.setattr(transport.RateLimiter, "acquire", dies_on_the_tasks_wait)
    with pytest.raises(Killed):
        vendors.run()

    frame = state.load(Workspace.load().work, "hubspot_tasks").frame
    sent = {
        i["properties"]["plg_signal_key"]
        for c in vendors.hubspot.calls("POST", HS_TASKS)
        for i in c.json["inputs"]
    }
    assert len(sent) == 2  # one batch left, then the run died
    assert set(frame.loc[frame["status"] != "delivered", "record_key"]) == set()  # no row stranded
    assert set(frame["record_key"]) == sent  # only what left is recorded at all

    monkeypatch.setattr(transport.RateLimiter, "acquire", acquire)
    vendors.run()
    assert vendors.problems(("hubspot",)) == []
    assert vendors.waiting().empty


# -- kill -9 at random points -----------------------------------------------------------------


def _keys_that_left(vendors: Vendors) -> set[str]:
    """Record keys of every create request that reached a vendor (tasks and digest messages)."""
    keys = {
        item["properties"].get("plg_signal_key")
        for call in vendors.hubspot.calls("POST", HS_TASKS)
        for item in call.json.get("inputs", [])
    }
    for call in vendors.slack.calls("POST", SLACK_POST):
        payload = (call.json.get("metadata") or {}).get("event_payload") or {}
        keys.update(payload.get("keys") or [payload.get("key")])  # every signal in the message
    return keys - {None}


def test_kill_at_random_points_leaves_unconfirmed_only_what_left(subprocess_vendors, monkeypatch):
    """SIGKILL the worker at random moments (seeded) of successive runs, from when the tasks' turn
    comes, some while HubSpot's limiter holds calls back: after each kill, every unconfirmed row is one whose request reached
    the vendor; a final run leaves every task and message there once and nothing waiting."""
    import random

    from plg_bridge.delivery import state
    from plg_bridge.workspace import Workspace

    vendors = subprocess_vendors
    monkeypatch.setenv("PLG_BRIDGE__DELIVERY__DESTINATIONS", "hubspot,slack")
    # one call per record: ~30 company and contact calls come first, so with 25 calls per 10 s the
    # tasks' calls (one journaled batch each) wait in the limiter in the first runs
    monkeypatch.setenv("PLG_BRIDGE__HUBSPOT__BATCH_SIZE", "1")
    monkeypatch.setenv("PLG_BRIDGE__HUBSPOT__CALLS_PER_10S", "25")
    vendors.hubspot.inject(Fault(HS_TASKS, delay=0.3, times=1000))
    vendors.slack.inject(Fault(SLACK_POST, delay=0.3, times=1000))
    sync = [PLG_BRIDGE, "sync", "--as-of", "2026-11-20"]
    chance = random.Random(20261120)
    progress = []  # keys that had reached a vendor at each kill
    for _ in range(6):
        worker = subprocess.Popen(
            sync, env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        seen = len(vendors.hubspot.calls(path="/tasks"))
        deadline = time.monotonic() + 90
        while len(vendors.hubspot.calls(path="/tasks")) == seen and worker.poll() is None:
            assert time.monotonic() < deadline, "the worker never reached the tasks"
            time.sleep(0.02)
        time.sleep(chance.uniform(0.0, 4.0))  # a random moment once the tasks' turn has come
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
        time.sleep(0.5)  # calls the vendor was still serving complete
        work = Workspace.load().work
        for target in ("hubspot_tasks", "slack_digest"):
            frame = state.load(work, target).frame
            held = set(frame.loc[frame["status"] == "unconfirmed", "record_key"])
            assert held <= _keys_that_left(vendors), (target, held - _keys_that_left(vendors))
        progress.append(len(_keys_that_left(vendors)))
    vendors.hubspot.faults.clear()
    vendors.slack.faults.clear()
    final = subprocess.run(
        sync, env=dict(os.environ), capture_output=True, text=True, timeout=300, check=False
    )
    assert final.returncode == 0, final.stdout + final.stderr[-3000:]
    assert vendors.problems(("hubspot", "slack")) == []
    assert vendors.waiting().empty
    total = len(_keys_that_left(vendors))
    assert any(0 < n < total for n in progress), (progress, total)  # some kill struck mid-delivery


@pytest.mark.parametrize("how", ["cut", "504"])
def test_salesforce_lead_status_is_an_update_so_a_lost_answer_is_simply_resent(how, vendors, monkeypatch):
    """Salesforce lead status is not create-once (Status = PQL on existing leads): a lost answer
    is retried on the wire and the second write changes nothing; every lead ends as desired."""
    from tests.faults.conftest import SF_CLIENT

    monkeypatch.setenv("PLG_BRIDGE__DELIVERY__DESTINATIONS", "salesforce")
    with LosingProxy(vendors.salesforce.url) as proxy:
        conn = {"conn_type": "http", "host": "127.0.0.1", "port": proxy.port, "schema": "http"}
        conn.update(login=SF_CLIENT[0], password=SF_CLIENT[1], extra={"timeout": 5})
        monkeypatch.setenv("AIRFLOW_CONN_SALESFORCE_DEFAULT", json.dumps(conn))
        # the token answer's instance_url sends every later call through the proxy too
        monkeypatch.setattr(type(vendors.salesforce), "url", property(lambda self: proxy.url))
        proxy.lose(r"/composite/sobjects/?$", how, method="PATCH")
        vendors.run()
        assert [h for _m, _p, h in proxy.lost] == [how]
    assert vendors.problems(("salesforce",)) == []
    assert vendors.waiting().empty
