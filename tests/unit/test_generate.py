"""The sample-data generator: PostHog's file layout and schema, its quirks, and PLG-shaped content."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from plg_bridge.synthetic.generate import generate
from tests.support.events import EXPORT_SCHEMA as EXPECTED_SCHEMA  # the columns the PostHog reference lists

END = dt.date(2026, 11, 21)
END_TS = pd.Timestamp("2026-11-21", tz="UTC")
ROWS = 30_000


@dataclass
class Export:
    folder: Path
    summary: object
    rows: pd.DataFrame  # every row, with `file` = index of its file in name order
    unique: pd.DataFrame  # one row per uuid, with parsed `props` and the resolved `org`


def load(folder: Path) -> pd.DataFrame:
    frames = []
    for i, path in enumerate(sorted(folder.iterdir())):
        frame = pq.read_table(path).to_pandas()
        frame["file"] = i
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def org_of(props: dict) -> str | None:
    return props.get("$group_0") or (props.get("$groups") or {}).get("organization")


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Export:
    folder = tmp_path_factory.mktemp("export")
    summary = generate(str(folder), ROWS, END)
    rows = load(folder)
    unique = rows.drop_duplicates("uuid").reset_index(drop=True)
    unique["props"] = unique["properties"].map(json.loads)
    unique["org"] = unique["props"].map(org_of)
    return Export(folder, summary, rows, unique)


def test_one_file_per_day_named_like_posthog(export: Export) -> None:
    names = sorted(p.name for p in export.folder.iterdir())
    days = [END - dt.timedelta(days=28 - i) for i in range(29)]
    expected = [
        f"{a.isoformat()}T00:00:00+00:00-{b.isoformat()}T00:00:00+00:00.parquet.zst"
        for a, b in itertools.pairwise(days)
    ]
    assert names == expected
    assert names[-1] == "2026-11-20T00:00:00+00:00-2026-11-21T00:00:00+00:00.parquet.zst"
    assert export.summary.files == expected


def test_hourly_intervals(tmp_path: Path) -> None:
    summary = generate(str(tmp_path), 2_000, END, days=2, interval="hour")
    names = sorted(p.name for p in tmp_path.iterdir())
    assert len(names) == 48 == len(summary.files)
    assert names[0] == "2026-11-19T00:00:00+00:00-2026-11-19T01:00:00+00:00.parquet.zst"
    assert names[-1] == "2026-11-20T23:00:00+00:00-2026-11-21T00:00:00+00:00.parquet.zst"
    rows = load(tmp_path)
    assert len(rows) == summary.rows == 2_000 + summary.redeliveries
    hour = (rows["_inserted_at"] - pd.Timestamp("2026-11-19", tz="UTC")) // pd.Timedelta(hours=1)
    assert (hour == rows["file"]).all()  # every row sits in the file of its _inserted_at hour


def test_schema_is_exactly_posthogs_and_pages_are_zstd(export: Export) -> None:
    for path in export.folder.iterdir():
        assert path.read_bytes()[:4] == b"PAR1"  # not a zstd stream around the Parquet file
        parquet = pq.ParquetFile(path)
        assert parquet.schema_arrow.equals(EXPECTED_SCHEMA), path.name
        meta = parquet.metadata
        for g in range(meta.num_row_groups):
            assert {meta.row_group(g).column(c).compression for c in range(meta.num_columns)} == {"ZSTD"}


def test_row_count_includes_duplicates(export: Export) -> None:
    summary = export.summary
    assert len(export.rows) == summary.rows == ROWS + summary.redeliveries  # re-deliveries come on top
    assert summary.duplicates == ROWS // 200
    assert len(export.rows) - export.rows["uuid"].nunique() == summary.duplicates + summary.redeliveries
    assert export.summary.orgs == export.unique["org"].nunique() == 10
    users = export.unique.loc[export.unique["distinct_id"].str.startswith("user_"), "distinct_id"].nunique()
    assert 0.9 * export.summary.persons <= users <= export.summary.persons


def test_same_arguments_give_identical_rows(tmp_path: Path, export: Export) -> None:
    generate(str(tmp_path / "again"), ROWS, END)
    assert sorted(p.name for p in (tmp_path / "again").iterdir()) == export.summary.files
    for name in export.summary.files:
        assert pq.read_table(tmp_path / "again" / name).equals(pq.read_table(export.folder / name)), name
    generate(str(tmp_path / "other"), ROWS, END, seed=8)
    assert not load(tmp_path / "other")["uuid"].equals(export.rows["uuid"])


def test_duplicates_repeat_the_whole_row_in_the_same_file(export: Export) -> None:
    repeated = export.rows[export.rows.duplicated(["uuid", "file"], keep=False)]
    assert repeated["uuid"].nunique() >= ROWS // 250
    columns = [c for c in export.rows.columns]
    for _, group in repeated.groupby(["uuid", "file"]):
        assert len(group.astype(str).drop_duplicates(subset=columns)) == 1  # same content, same file


def test_redeliveries_come_again_later_in_later_files(export: Export) -> None:
    rows = export.rows
    first = rows.groupby("uuid")["file"].transform("min")
    again = rows[rows["file"] > first]  # copies in a later file than the uuid's first one
    assert len(again) == export.summary.redeliveries
    assert 0.003 < len(again) / ROWS < 0.008  # ~0.5 %
    original = rows[rows["file"] == first].drop_duplicates("uuid").set_index("uuid").loc[again["uuid"]]
    assert (again["_inserted_at"].to_numpy() > original["_inserted_at"].to_numpy()).all()
    same = [c for c in rows.columns if c not in ("_inserted_at", "created_at", "file")]
    assert again[same].reset_index(drop=True).equals(original.reset_index()[same])
    hops = again["file"].to_numpy() - original["file"].to_numpy()
    assert (hops == 1).sum() > 0.4 * len(hops)  # across the next interval boundary
    assert (hops >= 2).sum() > 0.2 * len(hops)  # and days apart
    assert (again["created_at"] <= again["_inserted_at"]).all()


def test_late_arrivals_land_in_later_files(export: Export) -> None:
    rows = export.unique
    start = END_TS - pd.Timedelta(days=28)
    assert (rows["timestamp"] >= start).all() and (rows["timestamp"] < END_TS).all()
    assert (rows["_inserted_at"] >= rows["timestamp"]).all()
    lag = rows["_inserted_at"] - rows["created_at"]
    assert (lag >= pd.Timedelta(0)).all() and (lag < pd.Timedelta(seconds=1)).all()
    event_day = (rows["timestamp"] - start) // pd.Timedelta(days=1)
    insert_day = (rows["_inserted_at"] - start) // pd.Timedelta(days=1)
    assert (insert_day == rows["file"]).all()  # files are cut by _inserted_at
    late = rows["file"] - event_day
    assert 0.01 < (late > 0).mean() < 0.035
    assert (late >= 2).sum() >= 5  # some arrive days later


def test_properties_are_json_objects_when_not_malformed(export: Export) -> None:
    assert export.rows["properties"].notna().all()
    assert all(isinstance(json.loads(p), dict) for p in export.rows["properties"])
    people = export.rows["person_properties"].dropna().map(json.loads)
    assert all(isinstance(p, dict) for p in people)
    assert export.rows["person_properties"].isna().any()  # some anonymous events have no person profile


def test_malformed_fraction_breaks_that_share_of_properties(tmp_path: Path) -> None:
    generate(str(tmp_path), 20_000, END, malformed_fraction=0.05)
    rows = load(tmp_path)

    def parses(text: str | None) -> bool:
        try:
            return isinstance(json.loads(text), dict)
        except (TypeError, ValueError):
            return False

    ok = rows["properties"].map(parses)
    assert 0.045 < (~ok).mean() < 0.055
    assert rows["properties"].isna().any()  # some are null, the others truncated text
    assert rows.loc[~ok, "properties"].dropna().str.startswith("{").all()


def test_some_events_carry_groups_without_group_index(export: Export) -> None:
    rows = export.unique
    grouped = rows[rows["org"].notna()]
    only_groups = grouped["props"].map(lambda p: "$groups" in p and "$group_0" not in p)
    assert 0.015 < only_groups.mean() < 0.05
    both = grouped.loc[~only_groups, "props"]
    assert all(p["$group_0"] == p["$groups"]["organization"] for p in both)
    anonymous = rows[~rows["distinct_id"].str.startswith("user_")]
    assert set(anonymous["event"]) == {"$pageview"}
    assert anonymous["org"].isna().all()


def test_identify_links_the_earlier_anonymous_id(export: Export) -> None:
    rows = export.unique
    identify = rows[rows["event"] == "$identify"]
    assert len(identify) >= 10
    first_anonymous = (
        rows[~rows["distinct_id"].str.startswith("user_")].groupby("distinct_id")["timestamp"].min()
    )
    for _, row in identify.iterrows():
        props = row["props"]
        anon = props["$anon_distinct_id"]
        assert anon in first_anonymous.index
        assert first_anonymous[anon] < row["timestamp"]
        assert props["$set"]["email"] == json.loads(row["person_properties"])["email"]
        assert "$initial_referring_domain" in props["$set_once"]
    campaigns = {p["$set_once"].get("$initial_utm_medium") for p in identify["props"]}
    assert {"cpc", None} <= campaigns  # paid and organic first touches
    # the landing page views carry the raw utm parameters of the campaign
    landing = rows[(rows["event"] == "$pageview") & rows["props"].map(lambda p: "utm_source" in p)]
    assert {"google", "linkedin"} <= set(landing["props"].map(lambda p: p["utm_source"]))


def test_organizations_identify_with_group_properties(export: Export) -> None:
    rows = export.unique
    group_identify = rows[rows["event"] == "$groupidentify"]["props"]
    assert all(p["$group_type"] == "organization" for p in group_identify)
    assert all({"name", "plan", "seat_count", "mrr"} <= set(p["$group_set"]) for p in group_identify)
    named = {p["$group_key"] for p in group_identify}
    assert 0 < len(set(rows["org"].dropna()) - named) < len(named)  # a few orgs never send one
    providers = rows.loc[rows["event"] == "integration_connected", "props"].map(lambda p: p["provider"])
    assert set(providers) <= {"stripe", "salesforce", "zapier", "slack"} and len(providers) > 0
    values = rows.loc[rows["event"] == "subscription_started", "props"].map(lambda p: p["contract_value"])
    assert all(isinstance(v, int | float) and v > 0 for v in values)


def test_pql_signals_vary_across_organizations(export: Export) -> None:
    rows = export.unique[export.unique["org"].notna()]
    last = rows["timestamp"] >= END_TS - pd.Timedelta(days=7)
    previous = ~last & (rows["timestamp"] >= END_TS - pd.Timedelta(days=14))
    core = rows["event"] == "core_feature_used"
    this_week = rows[core & last].groupby("org").size()
    last_week = rows[core & previous].groupby("org").size()
    growing = this_week.gt(last_week.reindex(this_week.index, fill_value=0) * 1.5)
    recent = rows["timestamp"] >= END_TS - pd.Timedelta(days=14)
    creators = rows[recent & (rows["event"] == "creation_event")].groupby("org")["distinct_id"].nunique()
    integrated = rows[recent & (rows["event"] == "integration_connected")].groupby("org").size() > 0
    orgs = sorted(rows["org"].unique())
    score = pd.Series(
        {
            o: 40 * bool(growing.get(o, False))
            + (35 if creators.get(o, 0) >= 3 else 10 * creators.get(o, 0))
            + 25 * bool(integrated.get(o, False))
            for o in orgs
        }
    )
    assert 1 <= growing.sum() < len(orgs) / 2
    assert (creators >= 3).sum() >= 1
    assert 1 <= (score >= 75).sum() < len(orgs)
    assert score.nunique() >= 3


@pytest.mark.parametrize("payload", ["compact", "realistic"])
def test_streaming_keeps_memory_flat(tmp_path: Path, payload: str) -> None:
    """Peak Arrow memory with 4x the rows (same chunk size) stays about the same."""
    script = (
        "import datetime, sys, pyarrow as pa\n"
        "from plg_bridge.synthetic.generate import generate\n"
        "generate(sys.argv[1], int(sys.argv[2]), datetime.date(2026, 11, 21), chunk_rows=4000, payload=sys.argv[3])\n"
        "print(pa.default_memory_pool().max_memory())\n"
    )
    peaks = []
    for rows in (50_000, 200_000):
        out = subprocess.run(
            [sys.executable, "-c", script, str(tmp_path / str(rows)), str(rows), payload],
            capture_output=True,
            text=True,
            check=True,
        )
        peaks.append(int(out.stdout.split()[-1]))
    assert peaks[1] < 1.6 * peaks[0], peaks
    row_groups = [pq.ParquetFile(p).metadata.num_row_groups for p in (tmp_path / "200000").iterdir()]
    assert max(row_groups) > 1  # a day's file is written in several row groups


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rows": 10}, "rows must be at least"),
        ({"interval": "week"}, "interval must be one of"),
        ({"days": 0}, "days must be at least"),
        ({"malformed_fraction": 1.5}, "malformed_fraction"),
        ({"payload": "huge"}, "payload must be one of compact, realistic"),
        ({"naming": "random"}, "naming must be one of interval, opaque"),
        ({"redelivery_fraction": 1.0}, "redelivery_fraction"),
        ({"dirty_fraction": -0.1}, "dirty_fraction"),
    ],
)
def test_bad_arguments_are_refused(tmp_path: Path, kwargs: dict, message: str) -> None:
    args = {"rows": 5_000, **kwargs}
    rows = args.pop("rows")
    with pytest.raises(ValueError, match=message):
        generate(str(tmp_path), rows, END, **args)
    assert not any(tmp_path.iterdir())


# -- posthog-js-sized payloads, opaque names, dirty rows -------------------------------------------


def _no_duplicate_keys(pairs: list[tuple[str, object]]) -> dict:
    keys = [k for k, _ in pairs]
    assert len(keys) == len(set(keys)), keys
    return dict(pairs)


@pytest.fixture(scope="module")
def realistic(tmp_path_factory: pytest.TempPathFactory, export: Export) -> pd.DataFrame:
    folder = tmp_path_factory.mktemp("realistic")
    summary = generate(str(folder), ROWS, END, payload="realistic", naming="opaque")
    assert summary.redeliveries == export.summary.redeliveries  # the payload does not move the copies
    return load(folder)


def test_realistic_payloads_are_posthog_js_sized_objects(realistic: pd.DataFrame) -> None:
    sizes = realistic["properties"].str.len()
    assert 1_000 <= sizes.mean() <= 2_000 and sizes.min() >= 500
    props = realistic["properties"].map(lambda p: json.loads(p, object_pairs_hook=_no_duplicate_keys))
    every = set.intersection(*(set(p) for p in props))
    assert {
        "$browser",
        "$os",
        "$raw_user_agent",
        "$geoip_country_code",
        "$geoip_city_name",
        "$insert_id",
    } <= every
    assert {"$current_url", "$referrer", "$session_id", "$pageview_id"} <= every
    core = props[realistic["event"] == "core_feature_used"]
    assert 0.3 < core.map(lambda p: "$elements_chain" in p).mean() < 0.7  # autocaptured clicks
    anonymous = props[realistic["event"] == "$pageview"]
    assert anonymous.map(lambda p: "$initial_os" in p["$set_once"] and "$os" in p["$set"]).all()


def test_realistic_payloads_keep_every_compact_key_and_row(export: Export, realistic: pd.DataFrame) -> None:
    """The same events (ids, times, files), and every compact key with its value: the models read the same."""
    compact = export.rows
    columns = ["uuid", "timestamp", "_inserted_at", "event", "distinct_id", "person_id", "file"]
    assert realistic[columns].equals(compact[columns])
    for small, big in zip(
        compact["properties"].head(3_000), realistic["properties"].head(3_000), strict=True
    ):
        small_obj, big_obj = json.loads(small), json.loads(big)
        assert {k: big_obj[k] for k in small_obj} == small_obj


def test_opaque_names_carry_no_interval(realistic: pd.DataFrame, tmp_path: Path) -> None:
    from plg_bridge.ingest.layout import parse_key

    summary = generate(str(tmp_path), 2_000, END, days=3, naming="opaque")
    assert summary.files == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    assert all(parse_key(name).start is None for name in summary.files)
    assert realistic["file"].nunique() == 28


def test_dirty_fraction_puts_non_objects_in_that_share(tmp_path: Path) -> None:
    from plg_bridge.synthetic.damage import DIRTY_VALUES

    summary = generate(str(tmp_path), 20_000, END, dirty_fraction=0.02)
    rows = load(tmp_path)
    dirty = ~rows["properties"].map(lambda p: isinstance(p, str) and p.startswith("{"))
    assert dirty.sum() == summary.dirty
    assert 0.015 < dirty.mean() < 0.025
    values = {p if isinstance(p, str) else None for p in rows.loc[dirty, "properties"].tolist()}
    assert values == set(DIRTY_VALUES)
    assert rows.loc[dirty, "properties"].isna().any()  # SQL null as well as JSON null, arrays, scalars


def test_realistic_output_is_deterministic(tmp_path: Path) -> None:
    a = generate(str(tmp_path / "a"), 5_000, END, days=3, payload="realistic", dirty_fraction=0.01)
    b = generate(str(tmp_path / "b"), 5_000, END, days=3, payload="realistic", dirty_fraction=0.01)
    assert a == b
    for name in a.files:
        assert pq.read_table(tmp_path / "a" / name).equals(pq.read_table(tmp_path / "b" / name)), name
