"""Slack's create-once unit is the signal: one record per alerted signal, packed into digest
messages that each answer for the whole records they hold, and found again by any of their keys."""

from __future__ import annotations

import pandas as pd

from plg_bridge.delivery.slack import lookup
from plg_bridge.delivery.slack.mapping import alert_messages, alert_records


def signal(key: str, kind: str, org: str, **extra) -> dict:
    return {
        "signal_key": key,
        "signal": kind,
        "org_id": org,
        "org_name": extra.pop("name", org.upper()),
        "detail": extra.pop("detail", None),
        "pql_score": extra.pop("score", 80),
        "occurred_at": pd.Timestamp("2026-11-19T10:00:00Z"),
        **extra,
    }


SIGNALS = pd.DataFrame(
    [
        signal("pql_crossed:org_a:-:2026-11-19", "pql_crossed", "org_a"),
        signal("usage_ceiling:org_b:-:2026-11-19", "usage_ceiling", "org_b"),
        signal("enterprise_interest:org_c:sso:2026-11-19", "enterprise_interest", "org_c", detail="SSO"),
        signal("aha_reached:usr_1:-:2026-11-19", "aha_reached", "org_a"),  # not a Slack alert
    ]
)
SCORES = pd.DataFrame(
    {
        "org_id": ["org_a", "org_b"],
        "pql_score": [80, 20],
        "events_this_week": [120, 3],
        "events_last_week": [40, 9],
    }
)


def test_one_record_per_alerted_signal_keyed_by_its_signal_key():
    records = alert_records(SCORES, SIGNALS, "2026-11-20")
    assert [r["record_key"] for r in records] == list(SIGNALS["signal_key"][:3])
    crossed = records[0]["payload"]
    assert crossed["events_this_week"] == 120 and crossed["day"] == "2026-11-20"  # score details
    assert "events_this_week" not in records[1]["payload"]  # only crossings carry them
    assert records[0]["payload"]["occurred_at"] == "2026-11-19T10:00:00+00:00"  # JSON-safe
    assert alert_records(SCORES, SIGNALS.iloc[0:0], "2026-11-20") == []


def test_messages_hold_whole_records_and_every_record_once():
    records = alert_records(SCORES, SIGNALS, "2026-11-20")
    (message,) = alert_messages(records)
    assert message["record_keys"] == [r["record_key"] for r in records]
    text = "\n".join(b["text"]["text"] for b in message["payload"]["blocks"] if b.get("type") == "section")
    assert "crossed the PQL threshold" in text and "ORG_C" in text and "SSO" in text

    many = pd.DataFrame(
        [signal(f"usage_ceiling:org_{n:02d}:-:2026-11-19", "usage_ceiling", f"org_{n:02d}") for n in range(9)]
    )
    small = alert_messages(alert_records(SCORES, many, "2026-11-20"), max_blocks=6)
    assert len(small) > 1
    keys = [k for m in small for k in m["record_keys"]]
    assert keys == list(many["signal_key"])  # each record in exactly one message, in order
    for m in small:
        assert len(m["payload"]["blocks"]) <= 6
        assert m["record_key"] == m["record_keys"][0]


class History:
    """conversations.history / conversations.list of a channel holding one digest message."""

    def __init__(self, messages):
        self.messages = messages

    def conversations_list(self, **_):
        return {"channels": [{"id": "C0123456789", "name": "plg-alerts"}]}

    def conversations_history(self, **_):
        return {"messages": self.messages, "has_more": False}


def test_a_message_is_found_again_by_any_signal_in_it():
    meta = lookup.metadata("k1", ["k1", "k2", "k3"])
    assert meta["event_payload"] == {"key": "k1", "keys": ["k1", "k2", "k3"]}
    client = History(
        [{"ts": "1.000100", "metadata": meta}, {"ts": "2.0", "metadata": lookup.metadata("old")}]
    )
    records = [{"record_key": k, "sent_at": None} for k in ("k2", "k3", "k9")]
    assert lookup.find_messages(client, "#plg-alerts", records) == {"k2": "1.000100", "k3": "1.000100"}
