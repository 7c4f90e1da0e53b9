"""CRM contacts: email, first touch that survives a later direct visit, signup and time to Aha."""

from __future__ import annotations

import dataclasses

from plg_bridge.models.contacts import contacts
from tests.support.clocks import AS_OF as T
from tests.support.events import event, identify, pageview, partial_of


def test_contact_with_first_touch_signup_and_hours_to_aha(tmp_path, settings):
    files = [
        [pageview("anon-1", "2026-11-01T08:00", utm=("linkedin", "paid_social", "q4"))],
        [
            identify("user_1", "anon-1", "2026-11-02T10:00", set_props={"email": "Ada@Acme.io"}),
            pageview("user_1", "2026-11-02T11:00"),  # a later direct visit: first touch stays paid
            event("first_successful_deployment", "2026-11-03T16:00", distinct_id="user_1", org="org_a"),
        ],
    ]
    rows = contacts(partial_of(tmp_path, files, settings), T, settings).to_dict("records")
    assert len(rows) == 1
    c = rows[0]
    assert (c["email"], c["org_id"], c["first_touch_source"], c["first_touch_channel"]) == (
        "ada@acme.io",
        "org_a",
        "linkedin",
        "paid",
    )
    assert c["hours_to_aha"] == 30.0


def test_persons_without_email_or_excluded_are_not_contacts(tmp_path, settings):
    files = [
        [
            identify("user_1", None, "2026-11-02", set_props={"email": "me@plgapp.io"}),
            identify("user_2", None, "2026-11-02"),
            identify("user_3", None, "2026-11-02", set_props={"email": "eve@corp.io"}),
        ]
    ]
    cfg = dataclasses.replace(
        settings, models=dataclasses.replace(settings.models, internal_email_domains=("plgapp.io",))
    )
    out = contacts(partial_of(tmp_path, files, cfg), T, cfg)
    assert out["email"].tolist() == ["eve@corp.io"]
    assert out["aha_reached_at"].isna().all() and out["hours_to_aha"].isna().all()


def test_only_emails_with_an_address_shape_make_contacts(tmp_path, settings):
    # HubSpot refuses these on every run (INVALID_EMAIL); a padded, upper-case address is still one
    files = [
        [
            identify("user_1", None, "2026-11-02", set_props={"email": "bob@localhost"}),
            identify("user_2", None, "2026-11-02", set_props={"email": "a b@corp.io"}),
            identify("user_3", None, "2026-11-02", set_props={"email": "x@@corp.io"}),
            identify("user_4", None, "2026-11-02", set_props={"email": "dot@corp."}),
            identify("user_5", None, "2026-11-02", set_props={"email": "  Ann@Corp.IO "}),
            identify("user_6", None, "2026-11-02", set_props={"email": "c@" + "d" * 250 + ".io"}),
        ]
    ]
    out = contacts(partial_of(tmp_path, files, settings), T, settings)
    assert out["email"].tolist() == ["ann@corp.io"]
