"""Internal users, opted-out persons and test organizations are left out of every model, and counted."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

from plg_bridge.models import activation, attribution, groups, identity
from plg_bridge.models import exclusions as excl
from tests.support.clocks import AS_OF
from tests.support.events import conversion, event, group_identify, identify, pageview, partial_of


@pytest.fixture
def cfg(settings):
    models = dataclasses.replace(
        settings.models,
        internal_email_domains=("plgapp.io",),
        test_org_ids=("org_test",),
    )
    return dataclasses.replace(settings, models=models)


def user(
    name: str, signup: str = "2026-11-01", *, email: str | None = None, org: str = "org_a", **set_props
) -> list:
    props = {"email": email, **set_props} if email else dict(set_props)
    anon = f"anon-{name}"
    return [
        pageview(anon, signup, utm=("google", "cpc", "brand")),
        identify(name, anon, signup, set_props=props or None),
        event("first_api_call_completed", signup, org, distinct_id=name),
        conversion(name, "2026-11-03", 100, org=org),
    ]


def models(partial, cfg):
    return attribution.run(partial, AS_OF, cfg), activation.run(partial, AS_OF, cfg)


def test_internal_opted_out_and_test_org_persons_are_left_out_everywhere(tmp_path, cfg):
    rows = user("customer", email="ana@acme.com")
    rows += user("staff", email="Jo.Smith@PLGAPP.io")
    rows += user("staff_sub", email="qa@eu.plgapp.io")  # a subdomain of an internal domain
    rows += user("private", email="x@y.com", analytics_opt_out=True)
    rows += user("tester", email="t@acme.com", org="org_test")
    partial = partial_of(tmp_path, [rows], cfg)
    attr, act = models(partial, cfg)
    assert attr.first_touch["person_key"].tolist() == ["customer"]
    assert act.persons["person_key"].tolist() == ["customer"]
    assert attr.revenue["conversions"].tolist() == [1]
    counts = {
        "excluded_internal_email": 2,
        "excluded_opted_out": 1,
        "excluded_test_organization": 1,
        "excluded_test_org_ids": 1,
    }
    assert {k: attr.quality[k] for k in counts} == counts
    assert {k: act.quality[k] for k in counts} == counts
    assert attr.quality["conversions_excluded"] == 4


def test_lookalike_domains_are_not_internal():
    emails = pd.Series(
        ["a@plgapp.io", "a@notplgapp.io", "a@plgapp.io.evil.com", None, "a@x.plgapp.io"], dtype="str"
    )
    assert excl.internal_email(emails, ["plgapp.io"]).tolist() == [True, False, False, False, True]
    assert excl.internal_email(emails, []).tolist() == [False] * 5


def test_exclusion_follows_the_stitched_person(tmp_path, cfg):
    rows = [
        pageview("anon-1", "2026-11-01", utm=("google", "cpc", "brand")),
        identify(
            "anon-1", None, "2026-11-01", set_props={"email": "dev@plgapp.io"}
        ),  # email on the anonymous id
        identify("user_1", "anon-1", "2026-11-02"),
    ]
    attr, _ = models(partial_of(tmp_path, [rows], cfg), cfg)
    assert attr.first_touch.empty
    assert attr.quality["excluded_internal_email"] == 1


def test_latest_opt_out_value_wins(tmp_path, cfg):
    rows = user("back", email="b@acme.com", analytics_opt_out="true")
    rows.append(identify("back", None, "2026-11-05", set_props={"analytics_opt_out": False}))  # opted back in
    rows += user("gone", email="g@acme.com", analytics_opt_out="yes")
    attr, _ = models(partial_of(tmp_path, [rows], cfg), cfg)
    assert attr.first_touch["person_key"].tolist() == ["back"]
    assert attr.quality["excluded_opted_out"] == 1


def test_opt_out_known_only_after_as_of_does_not_apply(tmp_path, cfg):
    rows = user("u", email="u@acme.com")
    rows.append(identify("u", None, "2026-11-20", set_props={"analytics_opt_out": True}))
    partial = partial_of(tmp_path, [rows], cfg)
    keys = identity.stitch(partial.links, AS_OF)
    assert excl.find(partial, keys, AS_OF, cfg).persons.empty
    later = pd.Timestamp("2026-11-21", tz="UTC")
    assert excl.find(partial, identity.stitch(partial.links, later), later, cfg).persons[
        "reason"
    ].tolist() == ["opted_out"]


def test_test_organizations_are_dropped_from_organizations(tmp_path, cfg):
    rows = [
        group_identify("org_test", "2026-11-01", name="QA"),
        event("core_feature_used", "2026-11-02", "org_a"),
    ]
    partial = partial_of(tmp_path, [rows], cfg)
    assert groups.organizations(partial, AS_OF, cfg.models.test_org_ids)["org_id"].tolist() == ["org_a"]


def test_nothing_configured_excludes_nobody(tmp_path, settings):
    rows = user("staff", email="jo@plgapp.io")
    attr, act = models(partial_of(tmp_path, [rows], settings), settings)
    assert attr.first_touch["person_key"].tolist() == ["staff"]
    assert act.quality["excluded_internal_email"] == 0
