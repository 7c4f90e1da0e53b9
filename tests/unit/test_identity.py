"""Identity stitching on hand-built exports: links in any file order, placeholders, keys, as-of."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from plg_bridge.models.identity import components, person_of, stitch
from tests.support.clocks import AS_OF
from tests.support.events import alias, event, identify, pageview, partial_of


def keys_of(partial, settings, as_of=AS_OF) -> dict[str, str]:
    keys = stitch(partial.links, as_of, settings.exports.placeholder_ids, firsts=partial.firsts)
    return dict(zip(keys["distinct_id"], keys["person_key"], strict=True))


def test_identify_joins_the_anonymous_id_to_the_identified_one(tmp_path, settings):
    rows = [pageview("anon-1", "2026-11-01T09:00"), identify("user_1", "anon-1", "2026-11-01T09:05")]
    keys = keys_of(partial_of(tmp_path, [rows], settings), settings)
    assert keys["anon-1"] == keys["user_1"] == "user_1"


@pytest.mark.parametrize("reverse", [False, True], ids=["files-in-order", "files-reversed"])
def test_link_arriving_in_a_later_file_joins_earlier_anonymous_events(tmp_path, settings, reverse):
    monday = [pageview("anon-1", "2026-11-01T09:00", utm=("google", "cpc", "brand"))]
    wednesday = [
        identify("user_1", "anon-1", "2026-11-03T10:00"),
        event("core_feature_used", "2026-11-03T11:00"),
    ]
    partial = partial_of(tmp_path, [monday, wednesday], settings, reverse=reverse)
    assert keys_of(partial, settings)["anon-1"] == "user_1"


def test_a_link_made_after_as_of_does_not_apply(tmp_path, settings):
    rows = [pageview("anon-1", "2026-11-01T09:00"), identify("user_1", "anon-1", "2026-11-20T00:00")]
    keys = keys_of(partial_of(tmp_path, [rows], settings), settings)
    assert keys.get("anon-1", "anon-1") == "anon-1"


def test_shared_person_id_joins_distinct_ids(tmp_path, settings):
    rows = [
        event("core_feature_used", "2026-11-01", distinct_id="laptop", person_id="p-1"),
        event("core_feature_used", "2026-11-01", distinct_id="phone", person_id="p-1"),
        event("core_feature_used", "2026-11-01", distinct_id="other", person_id="p-2"),
    ]
    keys = keys_of(partial_of(tmp_path, [rows], settings), settings)
    assert keys["laptop"] == keys["phone"] == "laptop"
    assert keys["other"] == "other"


@pytest.mark.parametrize("placeholder", ["anonymous", "null", "undefined", "0", "", "NULL", " Anonymous "])
def test_placeholder_ids_never_merge_two_people(tmp_path, settings, placeholder):
    rows = [
        identify("user_1", placeholder, "2026-11-01T09:00"),
        identify("user_2", placeholder, "2026-11-01T10:00"),
        alias("user_3", placeholder, "2026-11-01T11:00"),
    ]
    keys = keys_of(partial_of(tmp_path, [rows], settings), settings)
    assert len({keys["user_1"], keys["user_2"], keys["user_3"]}) == 3
    assert placeholder.strip().lower() not in {k.lower() for k in keys}


def test_placeholder_person_id_never_merges(tmp_path, settings):
    nil = "00000000-0000-0000-0000-000000000000"
    rows = [event("core_feature_used", "2026-11-01", distinct_id=d, person_id=nil) for d in ("a", "b")]
    rows += [event("core_feature_used", "2026-11-01", distinct_id=d, person_id="null") for d in ("c", "d")]
    keys = keys_of(partial_of(tmp_path, [rows], settings), settings)
    assert [keys.get(d, d) for d in "abcd"] == list("abcd")


def test_placeholder_distinct_id_rows_are_counted_not_used(tmp_path, settings):
    partial = partial_of(
        tmp_path, [[event("core_feature_used", "2026-11-01", distinct_id="anonymous")]], settings
    )
    assert partial.quality["people_placeholder_ids"] == 1
    assert partial.firsts.empty and partial.links.empty


def test_alias_and_merge_dangerously_link_too(tmp_path, settings):
    rows = [
        alias("user_1", "crm-42", "2026-11-01T09:00"),
        alias("user_1", "old-account", "2026-11-01T09:00", name="$merge_dangerously"),
    ]
    keys = keys_of(partial_of(tmp_path, [rows], settings), settings)
    assert keys["crm-42"] == keys["old-account"] == keys["user_1"]


def test_chains_across_devices_and_files_become_one_person(tmp_path, settings):
    files = [
        [pageview("anon-laptop", "2026-11-01T08:00")],
        [identify("user_9", "anon-laptop", "2026-11-02T08:00")],
        [pageview("anon-phone", "2026-11-03T08:00"), identify("user_9", "anon-phone", "2026-11-03T08:10")],
        [alias("user_9", "crm-9", "2026-11-04T08:00")],
    ]
    keys = keys_of(partial_of(tmp_path, files, settings), settings)
    assert {keys[d] for d in ("anon-laptop", "anon-phone", "user_9", "crm-9")} == {"user_9"}


def test_key_is_the_smallest_identified_id_else_the_smallest_id(tmp_path, settings):
    rows = [
        pageview("anon-1", "2026-11-01T08:00"),
        identify("zed", "anon-1", "2026-11-01T09:00"),
        identify("bob", "zed", "2026-11-01T09:01"),  # zed is identified: refused, two persons
        identify("zed", "anon-2", "2026-11-01T09:02"),
        identify("abe", None, "2026-11-01T09:03"),
        alias("abe", "zed", "2026-11-01T09:04", name="$merge_dangerously"),  # merges anything
        alias("xavier", "aaron", "2026-11-01T09:05"),  # no identify: smallest id wins
    ]
    keys = keys_of(partial_of(tmp_path, [rows], settings), settings)
    assert keys["zed"] == keys["anon-1"] == keys["anon-2"] == keys["abe"] == "abe"
    assert keys["bob"] == "bob"
    assert keys["xavier"] == keys["aaron"] == "aaron"


def test_shared_machine_identify_does_not_merge_two_identified_persons(tmp_path, settings):
    """User B logs in on A's machine without a reset: PostHog refuses the merge."""
    rows = [
        pageview("anon-a", "2026-11-01T08:00", utm=("google", "cpc", "brand")),
        identify("usr_a", "anon-a", "2026-11-01T08:05"),
        identify("usr_b", "usr_a", "2026-11-02T10:00"),
        event("subscription_started", "2026-11-02T11:00", distinct_id="usr_b"),
    ]
    keys = keys_of(partial_of(tmp_path, [rows], settings), settings)
    assert keys["usr_a"] == keys["anon-a"] == "usr_a"
    assert keys["usr_b"] == "usr_b"


def test_identify_merges_an_anonymous_person_even_after_its_own_events(tmp_path, settings):
    rows = [
        pageview("anon-1", "2026-11-01T08:00"),
        identify("usr_a", None, "2026-11-01T07:00"),  # usr_a identified before: still takes anon-1
        identify("usr_a", "anon-1", "2026-11-01T09:00"),
    ]
    keys = keys_of(partial_of(tmp_path, [rows], settings), settings)
    assert keys["anon-1"] == keys["usr_a"] == "usr_a"


def test_create_alias_refuses_an_identified_alias_but_takes_an_anonymous_one(tmp_path, settings):
    rows = [
        identify("usr_a", None, "2026-11-01T08:00"),
        identify("usr_b", None, "2026-11-01T08:00"),
        alias("usr_a", "usr_b", "2026-11-01T09:00"),  # usr_b identified: refused
        alias("usr_a", "crm-7", "2026-11-01T09:00"),  # never seen: joins usr_a
        alias("backend-9", "usr_b", "2026-11-01T10:00"),  # the alias side identified: refused
        alias("backend-9", "device-3", "2026-11-01T10:00"),  # either direction, anonymous: joins
    ]
    keys = keys_of(partial_of(tmp_path, [rows], settings), settings)
    assert keys["usr_a"] == keys["crm-7"] == "usr_a"
    assert keys["usr_b"] == "usr_b"
    assert keys["backend-9"] == keys["device-3"] == "backend-9"


def test_merge_dangerously_merges_two_identified_persons(tmp_path, settings):
    rows = [
        identify("usr_a", None, "2026-11-01T08:00"),
        identify("usr_b", None, "2026-11-01T08:00"),
        alias("usr_b", "usr_a", "2026-11-01T09:00", name="$merge_dangerously"),
    ]
    keys = keys_of(partial_of(tmp_path, [rows], settings), settings)
    assert keys["usr_a"] == keys["usr_b"] == "usr_a"


def test_server_side_identify_makes_the_identified_id_the_key(tmp_path, settings):
    rows = [
        event("core_feature_used", "2026-11-01T08:00", distinct_id="0a-device", person_id="p-1"),
        identify("usr_m", None, "2026-11-01T08:02", person_id="p-1"),  # server side: no $anon_distinct_id
        alias("usr_m", "0b-backend", "2026-11-01T08:03"),  # an alias is no identify: never the key
    ]
    keys = keys_of(partial_of(tmp_path, [rows], settings), settings)
    assert {keys[d] for d in ("0a-device", "0b-backend", "usr_m")} == {"usr_m"}


def test_an_alias_call_identifies_its_person_so_a_later_identify_cannot_take_it(tmp_path, settings):
    rows = [
        pageview("device-1", "2026-11-01T08:00"),
        alias("device-1", "backend-1", "2026-11-01T08:01"),  # marks device-1's person identified
        identify("usr_m", "device-1", "2026-11-01T08:02"),  # refused, as in PostHog
    ]
    keys = keys_of(partial_of(tmp_path, [rows], settings), settings)
    assert keys["device-1"] == keys["backend-1"] != keys["usr_m"]


@pytest.mark.parametrize("reverse", [False, True], ids=["files-in-order", "files-reversed"])
def test_links_apply_in_event_time_order_whatever_file_they_arrive_in(tmp_path, settings, reverse):
    """A late file carries the earlier $identify: it wins the anonymous id, the later one is refused."""
    files = [
        [identify("usr_b", "anon-1", "2026-11-01T12:00")],
        [identify("usr_a", "anon-1", "2026-11-01T09:00")],  # arrives a day later, happened first
    ]
    keys = keys_of(partial_of(tmp_path, files, settings, reverse=reverse), settings)
    assert keys["anon-1"] == keys["usr_a"] == "usr_a"
    assert keys["usr_b"] == "usr_b"


@pytest.mark.parametrize(
    "illegal", ["guest", "Distinct_ID", "id", "email", "true", "[object Object]", "'null'"]
)
def test_posthog_illegal_ids_never_merge_even_when_not_configured(tmp_path, settings, illegal):
    rows = [identify("usr_1", illegal, "2026-11-01T09:00"), identify("usr_2", illegal, "2026-11-01T10:00")]
    keys = keys_of(partial_of(tmp_path, [rows], settings), settings)
    assert keys["usr_1"] == "usr_1" and keys["usr_2"] == "usr_2"


def test_person_id_joins_ids_posthog_merged(tmp_path, settings):
    """Rows of one human can carry different person_ids; ids sharing one are one person."""
    rows = [
        event("core_feature_used", "2026-11-01T08:00", distinct_id="anon-9", person_id="p-old"),
        identify("usr_9", "anon-9", "2026-11-01T09:00", person_id="p-new"),
        event("core_feature_used", "2026-11-01T10:00", distinct_id="anon-9", person_id="p-new"),
        identify("usr_8", None, "2026-11-01T08:00", person_id="p-8"),
        identify("usr_8", "usr_9", "2026-11-01T11:00", person_id="p-8"),  # refused
    ]
    keys = keys_of(partial_of(tmp_path, [rows], settings), settings)
    assert keys["anon-9"] == keys["usr_9"] == "usr_9"
    assert keys["usr_8"] == "usr_8"


def test_unlinked_ids_are_their_own_person():
    keys = pd.DataFrame({"distinct_id": ["a"], "person_key": ["b"]}).astype("str")
    assert person_of(pd.Series(["a", "x"], dtype="str"), keys).tolist() == ["b", "x"]
    empty = stitch(
        pd.DataFrame(
            {c: pd.Series(dtype=t) for c, t in {"a": "str", "b": "str", "kind": "str"}.items()}
        ).assign(timestamp=pd.Series(dtype="datetime64[us, UTC]")),
        distinct_ids=["solo"],
    )
    assert empty.to_dict("records") == [{"distinct_id": "solo", "person_key": "solo"}]


def test_components_agree_with_a_plain_union_find():
    rng = np.random.default_rng(3)
    n = 400
    left, right = rng.integers(0, n, 300), rng.integers(0, n, 300)
    parent = list(range(n))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in zip(left, right, strict=True):
        parent[find(a)] = find(b)
    labels = components(left, right, n)
    for i in range(n):
        for j in (0, i // 2, n - 1):
            assert (labels[i] == labels[j]) == (find(i) == find(j))
    assert all(labels[i] <= i for i in range(n))  # the label is the component's smallest node


def test_long_chain_converges():
    n = 5000
    labels = components(np.arange(n - 1), np.arange(1, n), n)
    assert set(labels.tolist()) == {0}


def test_one_set_of_links_stitched_as_of_each_day_follows_the_links_of_that_day(tmp_path, settings):
    """The PQL daily scores stitch the same links as of every day of their lookback (the T-free
    work is kept for those frames): each day sees only the links made before it."""
    rows = [
        pageview("anon-1", "2026-11-01T09:00"),
        pageview("anon-2", "2026-11-01T09:30"),
        identify("user_1", "anon-1", "2026-11-03T10:00"),
        alias("user_1", "anon-2", "2026-11-05T10:00"),
    ]
    partial = partial_of(tmp_path, [rows], settings)
    ids = settings.exports.placeholder_ids

    def keys(day: str, links=partial.links) -> dict[str, str]:
        out = stitch(links, pd.Timestamp(day, tz="UTC"), ids, ["late-id"], partial.firsts)
        assert out["distinct_id"].tolist() == sorted(out["distinct_id"])
        return dict(zip(out["distinct_id"], out["person_key"], strict=True))

    day2, day4, day6 = keys("2026-11-02"), keys("2026-11-04"), keys("2026-11-06")
    assert "user_1" not in day2 and day2["late-id"] == "late-id"
    assert day4["anon-1"] == "user_1" and day4.get("anon-2", "anon-2") == "anon-2"
    assert day6["anon-1"] == day6["anon-2"] == "user_1"
    # another frame with the same rows but without the alias: not the kept work of the first
    fewer = partial.links[partial.links["kind"] != "alias"].reset_index(drop=True)
    assert keys("2026-11-06", fewer).get("anon-2", "anon-2") == "anon-2"
    assert keys("2026-11-02") == day2  # and back to the first frame
