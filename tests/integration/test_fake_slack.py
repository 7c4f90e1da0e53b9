"""The fake Slack workspace, exercised over real HTTP with `requests`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.fakes.server import Fault, Response
from tests.fakes.slack import FakeSlack, channel_id

REPO = Path(__file__).resolve().parents[2]
TOKEN = "xoxb-plg-test-token"
HOOK = "/services/T000/B000/XXXX"


@pytest.fixture
def slack():
    with FakeSlack(channels=["plg-alerts", "plg-digest"], per_channel_limit=100) as server:
        yield server


def post(server: FakeSlack, token: str | None = TOKEN, **args) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.post(f"{server.url}/api/chat.postMessage", json=args, headers=headers, timeout=5)


def section(text: str) -> dict:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


# -- auth ----------------------------------------------------------------------------------------


def test_bad_or_missing_token_is_200_ok_false(slack):
    bad = post(slack, token="xoxb-wrong", channel="plg-alerts", text="hi")
    assert (bad.status_code, bad.json()) == (200, {"ok": False, "error": "invalid_auth"})
    missing = post(slack, token=None, channel="plg-alerts", text="hi")
    assert missing.json() == {"ok": False, "error": "not_authed"}
    assert slack.posted == []


def test_token_as_form_field_with_form_body(slack):
    form = {"token": TOKEN, "channel": "#plg-alerts", "text": "form", "blocks": json.dumps([section("*hi*")])}
    reply = requests.post(f"{slack.url}/api/chat.postMessage", data=form, timeout=5)
    assert reply.json()["ok"] is True
    assert slack.messages("plg-alerts")[0]["blocks"] == [section("*hi*")]


# -- posting -------------------------------------------------------------------------------------


def test_post_message_stores_and_answers_like_slack(slack):
    reply = post(slack, channel="plg-alerts", text="Acme became a PQL", blocks=[section("*Acme* is a PQL")])
    body = reply.json()
    assert reply.status_code == 200 and body["ok"] is True
    assert body["channel"] == channel_id("plg-alerts")
    assert body["message"]["text"] == "Acme became a PQL"
    assert body["message"]["blocks"] == [section("*Acme* is a PQL")]
    second = post(slack, channel=channel_id("plg-alerts"), text="again").json()
    assert second["ts"] != body["ts"]
    assert [m["text"] for m in slack.messages("#plg-alerts")] == ["Acme became a PQL", "again"]
    assert slack.messages("plg-digest") == []
    assert slack.spec_violations == []


def test_unknown_channel_and_missing_arguments(slack):
    assert post(slack, channel="random", text="hi").json() == {"ok": False, "error": "channel_not_found"}
    missing = post(slack, text="hi").json()
    assert missing["error"] == "invalid_arguments"
    assert "channel" in missing["response_metadata"]["messages"][0]
    wrong_type = post(slack, channel="plg-alerts", text="hi", unfurl_links="sometimes").json()
    assert wrong_type["error"] == "invalid_arguments"
    assert post(slack, channel="plg-alerts").json()["error"] == "no_text"
    assert slack.posted == []


def test_block_kit_limits(slack):
    too_many = post(slack, channel="plg-alerts", text="x", blocks=[section("b")] * 51).json()
    assert too_many["ok"] is False and too_many["error"] == "invalid_blocks"
    assert "50" in too_many["errors"][0]
    too_long = post(slack, channel="plg-alerts", text="x", blocks=[section("a" * 3001)]).json()
    assert too_long["error"] == "invalid_blocks"
    assert "/blocks/0/text/text" in too_long["errors"][0]
    fields = {"type": "section", "fields": [{"type": "mrkdwn", "text": "f"}] * 11}
    assert post(slack, channel="plg-alerts", blocks=[fields]).json()["error"] == "invalid_blocks"
    untyped = post(slack, channel="plg-alerts", blocks=[{"text": "no type"}]).json()
    assert untyped["error"] == "invalid_blocks"
    assert post(slack, channel="plg-alerts", blocks="not json").json()["error"] == "invalid_blocks_format"
    assert slack.posted == []

    at_limit = post(slack, channel="plg-alerts", text="x", blocks=[section("a" * 3000)] * 50).json()
    assert at_limit["ok"] is True
    assert len(slack.messages("plg-alerts")[0]["blocks"]) == 50


def test_broadcast_mentions_are_visible_to_tests(slack):
    post(slack, channel="plg-alerts", text="org &lt;!channel&gt; is a PQL")
    post(slack, channel="plg-alerts", text="x", blocks=[section("org <!here> is a PQL")])
    assert [m["blocks"] is not None for m in slack.broadcasts()] == [True]


def test_per_channel_rate_limit_with_retry_after():
    now = [100.0]
    with FakeSlack(channels=["plg-alerts", "plg-digest"], clock=lambda: now[0]) as slack:
        assert post(slack, channel="plg-alerts", text="1").json()["ok"] is True
        limited = post(slack, channel="plg-alerts", text="2")
        assert limited.status_code == 429
        assert limited.headers["Retry-After"] == "1"
        assert limited.json() == {"ok": False, "error": "ratelimited"}
        assert post(slack, channel="plg-digest", text="other channel").json()["ok"] is True
        now[0] += 1.0
        assert post(slack, channel="plg-alerts", text="2").json()["ok"] is True
        assert [m["text"] for m in slack.messages("plg-alerts")] == ["1", "2"]  # nothing duplicated


# -- incoming webhook ----------------------------------------------------------------------------


def test_webhook_posts_to_its_channel(slack):
    reply = requests.post(
        f"{slack.url}{HOOK}", json={"text": "from hook", "blocks": [section("hi")]}, timeout=5
    )
    assert (reply.status_code, reply.text) == (200, "ok")
    assert reply.headers["Content-Type"] == "text/plain"
    assert slack.messages("plg-alerts") == [
        {
            "channel": channel_id("plg-alerts"),
            "channel_name": "plg-alerts",
            "text": "from hook",
            "blocks": [section("hi")],
            "ts": slack.posted[0]["ts"],
            "via": "webhook",
        }
    ]


def test_webhook_errors(slack):
    unknown = requests.post(f"{slack.url}/services/T000/B000/WRONG", json={"text": "x"}, timeout=5)
    assert (unknown.status_code, unknown.text) == (404, "no_service")
    blocks = requests.post(f"{slack.url}{HOOK}", json={"blocks": [section("x")] * 51}, timeout=5)
    assert (blocks.status_code, blocks.text) == (400, "invalid_blocks")
    empty = requests.post(f"{slack.url}{HOOK}", json={}, timeout=5)
    assert (empty.status_code, empty.text) == (400, "no_text")
    garbage = requests.post(f"{slack.url}{HOOK}", data=b"{", headers={"Content-Type": "application/json"})
    assert (garbage.status_code, garbage.text) == (400, "invalid_payload")
    assert slack.posted == []


def test_webhook_rate_limit():
    now = [5.0]
    with FakeSlack(
        webhook_path="/services/TA/BB/secret", clock=lambda: now[0], per_channel_seconds=3
    ) as slack:
        url = f"{slack.url}/services/TA/BB/secret"
        assert requests.post(url, json={"text": "1"}, timeout=5).text == "ok"
        now[0] += 1
        limited = requests.post(url, json={"text": "2"}, timeout=5)
        assert limited.status_code == 429 and limited.headers["Retry-After"] == "2"
        assert len(slack.posted) == 1


# -- faults and the entry point ------------------------------------------------------------------


def test_fault_injection_reset_and_503(slack):
    slack.inject(Fault(path="chat.postMessage", reset=True))
    with pytest.raises(requests.ConnectionError):
        post(slack, channel="plg-alerts", text="lost")
    slack.inject(
        Fault(path="chat.postMessage", response=Response(503, "upstream down", content_type="text/plain"))
    )
    assert post(slack, channel="plg-alerts", text="down").status_code == 503
    assert slack.posted == []
    assert post(slack, channel="plg-alerts", text="up").json()["ok"] is True
    assert len(slack.calls("POST", "chat.postMessage")) == 3


def test_module_entry_point_serves_and_prints_its_url():
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.slack", "--port", "0", "--channel", "ops"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        reply = requests.post(f"{url}{HOOK}", json={"text": "hello"}, timeout=5)
        assert (reply.status_code, reply.text) == (200, "ok")
    finally:
        proc.kill()
        proc.wait(timeout=5)
