"""Organization properties as of T from `$groupidentify`."""

from __future__ import annotations

import pandas as pd

from plg_bridge.models.groups import COLUMNS, organizations
from tests.support.clocks import AS_OF
from tests.support.events import event, group_identify, partial_of


def orgs(tmp_path, settings, rows, as_of=AS_OF) -> dict:
    frame = organizations(partial_of(tmp_path, [rows], settings), as_of)
    assert list(frame.columns) == COLUMNS
    return frame.set_index("org_id").to_dict("index")


def test_latest_group_set_before_t_per_field(tmp_path, settings):
    rows = [
        group_identify("org_a", "2026-11-01", name="Old", plan="free", seat_count=3, mrr=0),
        group_identify("org_a", "2026-11-10", name="New", plan="pro", seat_count=12),  # no mrr: keeps 0
        group_identify("org_a", "2026-11-21", name="Future"),  # after T
    ]
    a = orgs(tmp_path, settings, rows)["org_a"]
    assert (a["name"], a["plan"], a["seat_count"], a["mrr"]) == ("New", "pro", 12, 0.0)
    assert a["updated_at"] == pd.Timestamp("2026-11-10", tz="UTC")


def test_organization_with_no_name(tmp_path, settings):
    rows = [
        event("core_feature_used", "2026-11-02", "org_silent"),
        group_identify("org_b", "2026-11-02", plan="pro"),
    ]
    found = orgs(tmp_path, settings, rows)
    assert pd.isna(found["org_silent"]["name"]) and pd.isna(found["org_silent"]["updated_at"])
    assert pd.isna(found["org_b"]["name"]) and found["org_b"]["plan"] == "pro"


def test_unparseable_numbers_are_null(tmp_path, settings):
    rows = [group_identify("org_a", "2026-11-01", name="A", seat_count="lots", mrr="n/a")]
    a = orgs(tmp_path, settings, rows)["org_a"]
    assert pd.isna(a["seat_count"]) and pd.isna(a["mrr"])
