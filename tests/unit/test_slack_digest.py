"""The pure Slack digest: escaping of untrusted text, Block Kit limits, splitting, determinism."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest

from plg_bridge.delivery.slack.client import fallback_text, post_digest
from plg_bridge.delivery.slack.mapping import alert_messages, alert_records, clip, escape_mrkdwn
from tests.fakes.slack import BROADCAST, block_errors

AS_OF = "2026-11-20"
EVIL = "<!channel> & <https://x|y>"


def crossed(n: int, **overrides: Any) -> pd.DataFrame:
    frame = {
        "org_id": [f"org-{i:03d}" for i in range(n)],
        "org_name": [f"Org {i}" for i in range(n)],
        "events_this_week": [100 + i for i in range(n)],
        "events_last_week": [50 for _ in range(n)],
        "active_creators": [3 for _ in range(n)],
        "integrations_connected": [1 for _ in range(n)],
        "pql_score": [75 + i % 20 for i in range(n)],
        "is_pql": [True] * n,
    }
    frame.update(overrides)
    return pd.DataFrame(frame)


def signals(n: int, signal: str = "usage_ceiling", **overrides: Any) -> pd.DataFrame:
    frame = {
        "signal_key": [f"{signal}:org-{i:03d}:{AS_OF}" for i in range(n)],
        "signal": [signal] * n,
        "org_id": [f"org-{i:03d}" for i in range(n)],
        "org_name": [f"Org {i}" for i in range(n)],
        "distinct_id": [None] * n,
        "email": [None] * n,
        "detail": ["seats"] * n,
        "occurred_at": pd.to_datetime([f"{AS_OF}T10:00:00Z"] * n),
        "as_of": [AS_OF] * n,
        "pql_score": [i for i in range(n)],
        "is_pql": [False] * n,
    }
    frame.update(overrides)
    return pd.DataFrame(frame)


def texts(value: Any) -> Iterator[tuple[str, str]]:
    """(block type, text) of every text object in a message's blocks."""
    if isinstance(value, list):
        for item in value:
            yield from texts(item)
    elif isinstance(value, dict):
        if isinstance(value.get("text"), str):
            yield value["type"], value["text"]
        for key, item in value.items():
            if key != "text" or not isinstance(item, str):
                yield from texts(item)


# -- escaping ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("<!channel>", "&lt;!channel&gt;"),
        ("<!here|here>", "&lt;!here|here&gt;"),
        ("<https://evil.test|click>", "&lt;https://evil.test|click&gt;"),
        ("<@U123> & <#C123>", "&lt;@\u2060U123&gt; &amp; &lt;#C123&gt;"),
        ("AT&T", "AT&amp;T"),
        ("&lt; already", "&amp;lt; already"),  # escaped once more: shows as typed
        ("line\nbreak\t tab", "line break tab"),
        ("mail ops@acme.test", "mail ops@acme.test"),
        (None, ""),
        (42, "42"),
    ],
)
def test_escape_mrkdwn(raw, escaped):
    assert escape_mrkdwn(raw) == escaped


def test_at_mentions_are_neutralised_without_touching_emails():
    for word in ("@channel", "@here", "@everyone", "hi @alice"):
        out = escape_mrkdwn(word)
        assert "@\u2060" in out and not re.search(r"(^|\s)@(channel|here|everyone|alice)", out)
    assert escape_mrkdwn("bob@corp.test") == "bob@corp.test"


def test_clip_never_cuts_an_entity():
    text = "a" * 8 + "&amp;" * 3
    for limit in range(5, len(text)):
        clipped = clip(text, limit)
        assert len(clipped) <= limit
        assert re.fullmatch(r"a*(&amp;)*…", clipped), clipped
    assert clip("short", 10) == "short"


# -- the digest (the production path: alert_records -> alert_messages) ------------------------


def crossings(scores: pd.DataFrame, **overrides: Any) -> pd.DataFrame:
    """The pql_crossed signals of the organizations in `scores` (models/signals.py's shape)."""
    n = len(scores)
    return signals(
        n,
        "pql_crossed",
        org_id=list(scores["org_id"]),
        org_name=list(scores["org_name"]),
        pql_score=list(scores["pql_score"]),
        detail=[None] * n,
        **overrides,
    )


def digest(scores: pd.DataFrame | None, frame: pd.DataFrame | None, **options: Any) -> list[dict[str, Any]]:
    """The messages the slack_digest target posts for these signals (scores give crossings' details)."""
    frames = [
        f for f in (crossings(scores) if scores is not None and len(scores) else None, frame) if f is not None
    ]
    every = pd.concat(frames, ignore_index=True) if frames else None
    alert = {"alert_signals": options["alert_signals"]} if "alert_signals" in options else {}
    records = alert_records(scores, every, AS_OF, **alert)
    return alert_messages(records, **options)


def blocks_of(messages: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    return [m["payload"]["blocks"] for m in messages]


def test_nothing_to_report_means_no_message():
    assert digest(None, None) == []
    assert digest(crossed(0), signals(0)) == []
    assert digest(None, signals(3, "integration_connected")) == []  # not alert-worthy


def test_small_digest_layout():
    messages = digest(crossed(1), signals(2, "enterprise_interest", org_id=["x-1", "x-2"]))
    assert len(messages) == 1
    message = messages[0]["payload"]["blocks"]
    assert message[0] == {
        "type": "header",
        "text": {"type": "plain_text", "text": f"PLG signals · {AS_OF}", "emoji": True},
    }
    assert message[1]["text"]["text"] == "*1* new PQL · *2* other signals"
    assert [b["text"]["text"] for b in message[2:-1]] == [
        "*New PQLs* (1)",
        "*Org 0* (`org-000`) crossed the PQL threshold: score *75* · 100 events this week (+100% w/w)"
        " · 3 active creators · 1 integrations",
        "*Enterprise interest* (2)",
        "*Org 1* (`x-2`) showed enterprise interest: seats · PQL score 1",
        "*Org 0* (`x-1`) showed enterprise interest: seats · PQL score 0",
    ]
    assert message[-1] == {
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": f"As of {AS_OF}", "verbatim": True}],
    }
    assert block_errors(message) == []
    assert messages[0]["record_keys"] == [
        f"pql_crossed:org-000:{AS_OF}",
        f"enterprise_interest:org-000:{AS_OF}",
        f"enterprise_interest:org-001:{AS_OF}",
    ]


def test_sixty_signals_split_within_block_kit_limits():
    messages = digest(crossed(5), signals(60))
    assert len(messages) >= 2
    for message in blocks_of(messages):
        assert len(message) <= 50
        assert block_errors(message) == []  # the fake's Block Kit checks (Slack's published schema)
        for kind, text in texts(message):
            assert len(text) <= (150 if kind == "plain_text" else 3000)
        assert message[0]["text"]["text"] == f"PLG signals · {AS_OF}"  # each message a whole digest
    items = [
        b["text"]["text"]
        for m in blocks_of(messages)
        for b in m
        if "usage ceiling" in b.get("text", {}).get("text", "")
    ]
    assert len(items) == 60 == len(set(items))  # every signal once, none lost at the split
    keys = [k for m in messages for k in m["record_keys"]]
    assert len(keys) == 65 == len(set(keys))  # each record answered for by exactly one message


def test_smaller_block_budget_still_lists_everything():
    messages = blocks_of(digest(crossed(7), signals(9), max_blocks=6))
    assert all(len(m) <= 6 for m in messages)
    items = sum(1 for m in messages for b in m[1:-1] if "(`org-" in b["text"]["text"])
    assert items == 16
    for message in messages:  # no category title is left without its first item
        assert "`org-" in message[-2]["text"]["text"]


def test_untrusted_names_and_details_are_escaped_and_clipped():
    frame = signals(
        3, org_name=[EVIL, "*bold* `code` ~x~ @here", "&" * 5000], detail=["<!everyone>", "x" * 9000, None]
    )
    messages = digest(crossed(1, org_name=["<@U999>"], org_id=["org-x"]), frame)
    for record in messages:
        payload = record["payload"]
        all_text = [payload["text"], *(t for _, t in texts(payload["blocks"]))]
        assert not any(BROADCAST.search(t) for t in all_text)
        assert not any(re.search(r"<(?!https://|http://)", t) for t in all_text)  # only our own links
        assert block_errors(payload["blocks"]) == []
    joined = "\n".join(t for m in blocks_of(messages) for _, t in texts(m))
    assert "&lt;!channel&gt; &amp; &lt;https://x|y&gt;" in joined
    assert "&lt;@\u2060U999&gt;" in joined and "&lt;!everyone&gt;" in joined
    assert "∗bold∗ 'code' ∼x∼ @\u2060here" in joined  # cannot break the surrounding *bold*
    assert "&lt;@\u2060U999&gt;" in messages[0]["payload"]["text"]


def test_a_crossing_without_a_name_shows_its_id():
    frame = signals(1, "pql_crossed", org_id=["org-new"], org_name=[None], pql_score=[99], detail=[None])
    message = digest(crossed(2), frame)[0]["payload"]["blocks"]
    lines = [b["text"]["text"] for b in message[1:-1]]
    assert lines[0] == "*3* new PQLs · *0* other signals"
    assert lines[1] == "*New PQLs* (3)"
    assert lines[2] == "*org-new* crossed the PQL threshold: score *99*"
    assert sum("crossed the PQL threshold" in line for line in lines) == 3


def test_same_signals_same_message_whatever_the_row_order():
    frame = pd.concat([signals(20), signals(12, "enterprise_interest")], ignore_index=True)
    scores = crossed(8)  # 40 items, 3 titles, header, summary, footer: one message of 46 blocks
    first = digest(scores, frame)
    shuffled = digest(scores.sample(frac=1, random_state=3), frame.sample(frac=1, random_state=7))
    assert len(first) == len(shuffled) == 1
    assert first[0]["payload"] == shuffled[0]["payload"]
    assert sorted(first[0]["record_keys"]) == sorted(shuffled[0]["record_keys"])


def test_alert_signals_are_configurable():
    frame = signals(2, "integration_connected", detail=["Slack", None])
    messages = digest(None, frame, alert_signals=("integration_connected",))
    assert messages[0]["record_keys"] == list(frame["signal_key"])
    blocks = messages[0]["payload"]["blocks"]
    assert blocks[3]["text"]["text"] == "*Org 1* (`org-001`) connected an integration · PQL score 1"
    assert messages[0]["payload"]["text"].startswith(f"PLG signals {AS_OF}: 0 new PQLs, 2 other signals.")


def test_fallback_text_for_bare_block_lists():
    blocks = blocks_of(digest(crossed(1), None))[0]
    assert fallback_text(blocks) == f"PLG signals · {AS_OF}"
    with pytest.raises(ValueError, match="max_blocks"):
        digest(crossed(1), None, max_blocks=51)


def test_an_empty_digest_posts_nothing_and_needs_no_connection():
    outcomes = post_digest([], conn_id="no_such_connection")
    assert outcomes.empty and list(outcomes.columns) == [
        "record_key",
        "status",
        "destination_id",
        "error_code",
        "error_message",
    ]


def test_importing_the_module_does_not_import_airflow_or_slack_sdk():
    code = (
        "import sys, plg_bridge.delivery.slack; print('airflow' in sys.modules, 'slack_sdk' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False"
