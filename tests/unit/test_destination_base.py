"""The destination base's field step (ensure_fields) and stop rule (send_batches), on a scripted
vendor and over real HTTP against the fake HubSpot and Intercom servers."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from plg_bridge.delivery.base import (
    FIELD_CACHE_SECONDS,
    FieldError,
    FieldSpec,
    ensure_fields,
    forget_fields,
    send_batches,
)
from plg_bridge.delivery.hubspot.client import HubSpotClient
from plg_bridge.delivery.hubspot.mapping import COMPANY_FIELDS, TASK_FIELDS
from plg_bridge.delivery.intercom.client import IntercomClient
from plg_bridge.delivery.outcomes import RowOutcome
from plg_bridge.delivery.transport import RetryPolicy
from tests.fakes.hubspot import FakeHubSpot
from tests.fakes.intercom import FakeIntercom
from tests.fakes.server import Fault, Response


@pytest.fixture(autouse=True)
def _fresh_field_cache():
    forget_fields()
    yield
    forget_fields()


def spec(name: str, object_: str = "companies") -> FieldSpec:
    return FieldSpec(name, "string", name.title(), object_)


class Vendor:
    """A scripted FieldSource: what exists, what it refuses, and every call made."""

    def __init__(
        self,
        existing: Sequence[str] = (),
        *,
        batch: bool = True,
        refuse: dict | None = None,
        token: str = "t1",
    ) -> None:
        self.existing = set(existing)
        self.batch_create = batch
        self.refuse = refuse or {}
        self.fields_key = ("Scripted", "https://vendor.test", token)
        self.calls: list[tuple] = []

    def list_fields(self, object_: str) -> list[str]:
        self.calls.append(("list", object_))
        return sorted(self.existing)

    def create_fields(self, specs: Sequence[FieldSpec]) -> tuple[list[str], dict[str, str]]:
        self.calls.append(("create", tuple(s.name for s in specs)))
        refused = {s.name: self.refuse[s.name] for s in specs if s.name in self.refuse}
        made = [s.name for s in specs if s.name not in refused]
        self.existing.update(made)
        return made, refused


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


# -- ensure_fields ---------------------------------------------------------------------------------


def test_only_missing_fields_are_created_in_one_batch_call():
    vendor = Vendor(existing=["a", "x"])
    created = ensure_fields(vendor, [spec("a"), spec("b"), spec("c")])
    assert created == ["b", "c"]
    assert vendor.calls == [("list", "companies"), ("create", ("b", "c"))]


def test_nothing_missing_means_no_create_call():
    vendor = Vendor(existing=["a", "b"])
    assert ensure_fields(vendor, [spec("a"), spec("b")]) == []
    assert vendor.calls == [("list", "companies")]


def test_a_vendor_without_batch_create_gets_one_call_per_field():
    vendor = Vendor(existing=["a"], batch=False)
    assert ensure_fields(vendor, [spec("a"), spec("b"), spec("c")]) == ["b", "c"]
    assert vendor.calls == [("list", "companies"), ("create", ("b",)), ("create", ("c",))]


def test_each_object_is_listed_and_created_on_its_own():
    vendor = Vendor()
    ensure_fields(vendor, [spec("a"), spec("t", "tasks"), spec("b")])
    assert vendor.calls == [
        ("list", "companies"),
        ("create", ("a", "b")),
        ("list", "tasks"),
        ("create", ("t",)),
    ]


def test_fields_are_listed_once_per_run_and_credential():
    clock = Clock()
    first = Vendor(existing=["a"])
    ensure_fields(first, [spec("a"), spec("b")], clock=clock)
    # another client of the same app and token (the next journaled batch, another target)
    second = Vendor(existing=["a", "b"])
    clock.now += 60
    assert ensure_fields(second, [spec("a"), spec("b")], clock=clock) == []
    assert second.calls == []
    # another token is another app: listed for itself
    other = Vendor(existing=["a", "b"], token="t2")
    ensure_fields(other, [spec("a"), spec("b")], clock=clock)
    assert other.calls == [("list", "companies")]
    # a later run lists again (a field deleted meanwhile is seen)
    clock.now += FIELD_CACHE_SECONDS + 1
    later = Vendor(existing=["a"])
    assert ensure_fields(later, [spec("a"), spec("b")], clock=clock) == ["b"]
    assert later.calls == [("list", "companies"), ("create", ("b",))]


def test_a_field_asked_for_later_in_the_run_is_listed_then():
    vendor = Vendor(existing=["a"])
    ensure_fields(vendor, [spec("a")])
    ensure_fields(vendor, [spec("a"), spec("b")])
    assert vendor.calls == [("list", "companies"), ("list", "companies"), ("create", ("b",))]


def test_a_refused_field_raises_an_error_naming_it():
    vendor = Vendor(refuse={"plg_bad": "Property name plg_bad is reserved"})
    with pytest.raises(FieldError, match="plg_bad") as caught:
        ensure_fields(vendor, [spec("plg_ok"), spec("plg_bad")])
    assert caught.value.name == "plg_bad" and "reserved" in str(caught.value)
    assert "Scripted" in str(caught.value)
    # the one created is remembered; the refused one is asked for again next time
    again = Vendor(existing=["plg_ok"], refuse={"plg_bad": "reserved"})
    with pytest.raises(FieldError):
        ensure_fields(again, [spec("plg_ok"), spec("plg_bad")])
    assert again.calls == [("list", "companies"), ("create", ("plg_bad",))]


# -- over real HTTP: HubSpot's batch create, Intercom's one by one ---------------------------------


def hubspot(fake: FakeHubSpot, token: str = "test-token") -> HubSpotClient:
    return HubSpotClient(fake.url, token, policy=RetryPolicy(base_delay=0.01), calls_per_10s=None)


def test_hubspot_fresh_portal_one_list_and_one_batch_create_for_two_clients():
    with FakeHubSpot() as fake:
        before = set(fake.properties["companies"])
        created = ensure_fields(hubspot(fake), COMPANY_FIELDS)
        assert created and set(created) == {f.name for f in COMPANY_FIELDS} - before
        assert {f.name for f in COMPANY_FIELDS} <= set(fake.properties["companies"])
        assert ensure_fields(hubspot(fake), COMPANY_FIELDS) == []  # a second client, same run
        assert len(fake.calls("GET", r"^/crm/v3/properties/companies$")) == 1
        assert len(fake.calls("POST", r"^/crm/v3/properties/companies/batch/create$")) == 1
        assert fake.calls("POST", r"^/crm/v3/properties/companies$") == []  # never one by one


def test_hubspot_refusing_a_property_names_it():
    refusal = {
        "status": "COMPLETE",
        "results": [],
        "errors": [
            {"status": "error", "category": "VALIDATION_ERROR", "message": "plg_signal_key: missing scope"}
        ],
    }
    with FakeHubSpot() as fake:
        fake.inject(Fault(r"/crm/v3/properties/tasks/batch/create$", Response(207, refusal)))
        with pytest.raises(FieldError, match="plg_signal_key"):
            ensure_fields(hubspot(fake), TASK_FIELDS)


def test_intercom_creates_data_attributes_one_call_each():
    with FakeIntercom() as fake:
        client = IntercomClient(
            fake.url, "intercom-test-token", policy=RetryPolicy(base_delay=0.01), max_in_flight=1
        )
        fields = [
            FieldSpec("plg_a", "integer", "plg_a", "company"),
            FieldSpec("plg_b", "date", "plg_b", "company"),
        ]
        assert client.ensure_data_attributes(fields) == ["plg_a", "plg_b"]
        assert len(fake.calls("POST", r"^/data_attributes$")) == 2
        assert client.ensure_data_attributes(fields) == []
        assert len(fake.calls("GET", r"^/data_attributes")) == 1


# -- the stop rule through send_batches: Intercom tags, Slack-like paced sends --------------------

UNAUTHORIZED = Response(
    401, {"type": "error.list", "errors": [{"code": "unauthorized", "message": "Access Token Invalid"}]}
)


def tag_record(key: str, name: str, company: str) -> dict:
    return {"record_key": key, "payload": {"name": name, "companies": [{"company_id": company}]}}


def test_a_revoked_token_on_a_tag_call_stops_the_later_tags():
    with FakeIntercom() as fake:
        client = IntercomClient(
            fake.url, "intercom-test-token", policy=RetryPolicy(base_delay=0.01), max_in_flight=1
        )
        for org in ("org-1", "org-2"):
            client.upsert_companies([{"record_key": org, "payload": {"company_id": org, "name": org}}])
        fake.inject(Fault(r"^/tags$", UNAUTHORIZED))
        records = [
            tag_record("k1", "a-tag", "org-1"),
            tag_record("k2", "b-tag", "org-1"),
            tag_record("k3", "b-tag", "org-2"),
            tag_record("k4", "c-tag", "org-2"),
        ]
        outcomes = client.apply_tags(records)
        assert [o.record_key for o in outcomes] == ["k1", "k2", "k3", "k4"]
        assert {o.status for o in outcomes} == {"failed"}
        assert {o.error_code for o in outcomes} == {"unauthorized"}
        assert [o.error_message.startswith("not sent:") for o in outcomes] == [False, True, True, True]
        assert len(fake.calls("POST", r"^/tags$")) == 1  # the later tag names never went out


def test_a_stop_while_tagging_one_by_one_stops_the_rest():
    with FakeIntercom() as fake:
        client = IntercomClient(
            fake.url, "intercom-test-token", policy=RetryPolicy(base_delay=0.01), max_in_flight=1
        )
        client.upsert_companies([{"record_key": "org-1", "payload": {"company_id": "org-1", "name": "x"}}])
        records = [
            tag_record("k1", "a-tag", "org-1"),
            tag_record("k2", "a-tag", "org-404"),
            tag_record("k3", "a-tag", "org-5"),
            tag_record("k4", "z-tag", "org-1"),
        ]
        # the chunk is refused (a company is missing); alone, the first company's call meets a
        # revoked token: the remaining single calls and the later tag are not sent
        fake.inject(
            Fault(
                r"^/tags$",
                Response(
                    404,
                    {
                        "type": "error.list",
                        "errors": [{"code": "company_not_found", "message": "Company Not Found"}],
                    },
                ),
            )
        )
        fake.inject(Fault(r"^/tags$", UNAUTHORIZED))
        outcomes = {o.record_key: o for o in client.apply_tags(records)}
        assert outcomes["k1"].error_code == "unauthorized"
        assert not outcomes["k1"].error_message.startswith("not sent:")
        for key in ("k2", "k3", "k4"):
            assert outcomes[key].error_code == "unauthorized"
            assert outcomes[key].error_message.startswith("not sent:")
        assert len(fake.calls("POST", r"^/tags$")) == 2  # the chunk, then org-1 alone


def test_send_batches_stop_rule_for_a_paced_sequential_sender():
    """post_digest's shape: one message at a time; a fatal answer on the second stops the rest,
    each record of a message answered for."""
    sent: list[int] = []

    def post(n: int) -> tuple[list[RowOutcome], tuple[str, str] | None]:
        sent.append(n)
        keys = [f"m{n}a", f"m{n}b"]
        if n == 1:
            return [RowOutcome(k, "failed", None, "invalid_auth", "bad token") for k in keys], (
                "invalid_auth",
                "bad token",
            )
        return [RowOutcome(k, "created", f"ts{n}") for k in keys], None

    outcomes = send_batches(range(4), post, lambda n: [f"m{n}a", f"m{n}b"], what="digest")
    assert sent == [0, 1]
    assert [o.status for o in outcomes] == ["created"] * 2 + ["failed"] * 6
    assert [o.error_message for o in outcomes[4:]] == ["not sent: bad token"] * 4
    assert {o.error_code for o in outcomes[2:]} == {"invalid_auth"}


def test_a_record_key_twice_is_a_bug_not_a_delivery():
    with pytest.raises(RuntimeError, match="twice"):
        send_batches([["a"], ["a"]], lambda b: ([RowOutcome(k, "created") for k in b], None), lambda b: b)


def test_forgetting_one_credential_makes_only_it_list_again():
    ensure_fields(Vendor(existing=["a"]), [spec("a")])
    ensure_fields(Vendor(existing=["a"], token="t2"), [spec("a")])
    forget_fields(("Scripted", "https://vendor.test", "t1"))  # an answer said a field is gone
    first, second = Vendor(existing=["a"]), Vendor(existing=["a"], token="t2")
    ensure_fields(first, [spec("a")])
    ensure_fields(second, [spec("a")])
    assert first.calls == [("list", "companies")]
    assert second.calls == []


def test_hubspot_property_doesnt_exist_answer_makes_the_next_ensure_list_again():
    with FakeHubSpot() as fake:
        client = hubspot(fake)
        ensure_fields(client, COMPANY_FIELDS)
        del fake.properties["companies"]["plg_pql_score"]  # deleted in the portal mid-run
        inputs = [{"id": "org-1", "idProperty": "posthog_group_id", "properties": {"plg_pql_score": "80"}}]
        (outcome,) = client.upsert("companies", inputs)
        assert outcome.error_code == "PROPERTY_DOESNT_EXIST"
        assert ensure_fields(hubspot(fake), COMPANY_FIELDS) == ["plg_pql_score"]
        assert client.upsert("companies", inputs)[0].status == "created"


def test_a_durable_stop_spans_calls_of_one_scope_only():
    calls: list[str] = []

    def refuse(batch: list[str]) -> tuple[list[RowOutcome], tuple[str, str] | None]:
        calls.extend(batch)
        return [RowOutcome(k, "failed", None, "invalid_auth", "bad token") for k in batch], (
            "invalid_auth",
            "bad token",
        )

    scope = ("Scripted", "conn", "fingerprint-1")
    first = send_batches([["a"], ["b"]], refuse, lambda b: b, stop_scope=scope)
    assert calls == ["a"] and [o.error_message for o in first] == ["bad token", "not sent: bad token"]
    # the journal's next batch of the same target: not tried again
    later = send_batches([["c"]], refuse, lambda b: b, stop_scope=scope)
    assert (
        calls == ["a"]
        and later[0].error_code == "invalid_auth"
        and later[0].error_message.startswith("not sent")
    )
    # another credential is tried
    send_batches([["d"]], refuse, lambda b: b, stop_scope=("Scripted", "conn", "fingerprint-2"))
    assert calls == ["a", "d"]


def test_a_transient_stop_is_not_remembered():
    calls: list[str] = []

    def limited(batch: list[str]) -> tuple[list[RowOutcome], tuple[str, str] | None]:
        calls.extend(batch)
        return [RowOutcome(k, "failed", None, "ratelimited", "429") for k in batch], ("ratelimited", "429")

    scope = ("Scripted", "conn", "fingerprint-3")
    for key in ("a", "b"):
        send_batches([[key]], limited, lambda b: b, stop_scope=scope, durable=lambda s: s[0] != "ratelimited")
    assert calls == ["a", "b"]
