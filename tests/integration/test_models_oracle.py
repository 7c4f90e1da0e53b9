"""The person-level models against their DuckDB twins on generated exports, row by row.

The pandas path (per-file partials, merged, then models as of T) and the SQL in include/sql/duckdb
(straight from the export files) are written independently; on the generator's data (anonymous
UTM-tagged visits that later `$identify`, `$set_once` $initial_* values, late and duplicated rows,
conversions with contract values, milestones) they must agree exactly on keys and counts and
within float tolerance on sums, rates and quantiles.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from plg_bridge.ingest import rollup
from plg_bridge.models import activation, attribution, groups, identity
from plg_bridge.pipeline import discover
from plg_bridge.storage import location
from plg_bridge.synthetic.generate import generate

SQL = Path(__file__).resolve().parents[2] / "include" / "sql" / "duckdb"
END = dt.date(2026, 11, 20)
TABLES = {  # DuckDB table -> sort keys (also the row identity)
    "plg_person_keys": ["distinct_id"],
    "plg_first_touch": ["person_key"],
    "plg_revenue": ["source", "campaign"],
    "plg_persons": ["person_key"],
    "plg_cohorts": ["breakdown", "segment"],
    "plg_milestones": ["breakdown", "segment", "cohort", "milestone"],
    "plg_aha": ["breakdown", "segment"],
    "plg_correlation": ["event"],
    "plg_organizations": ["org_id"],
}


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("oracle") / "exports"
    generate(str(out), 300_000, END, days=42, malformed_fraction=0.005)
    return out


def internal_domain(files: list[str]) -> str:
    """The email domain of the organization with the most identified members (a made-up 'us')."""
    con = duckdb.connect()
    return con.execute(
        """
        SELECT split_part(json_extract_string(properties, '$."$set".email'), '@', 2) AS domain
        FROM read_parquet(?) WHERE event = '$identify' AND json_valid(properties) AND domain <> ''
        GROUP BY domain ORDER BY count(*) DESC, domain LIMIT 1
        """,
        [files],
    ).fetchone()[0]


@pytest.fixture(scope="module")
def partials(exports) -> dict[str, rollup.Partial]:
    """Each export file rolled up once (rollup-time settings are the defaults in every test)."""
    from plg_bridge.config import load_settings

    loc = location(str(exports))
    return {f.key: rollup.rollup_file(loc, f.key, load_settings(env={})) for f in discover(loc)}


def merged(exports: Path, partials: dict[str, rollup.Partial], as_of: dt.datetime) -> rollup.Partial:
    """The partials of the files a run as of T may see: intervals that ended by T."""
    return rollup.merge(partials[f.key] for f in discover(location(str(exports)), as_of))


def pandas_models(partial: rollup.Partial, as_of: dt.datetime, settings) -> dict[str, pd.DataFrame]:
    attr = attribution.run(partial, as_of, settings)
    act = activation.run(partial, as_of, settings)
    return {
        "plg_person_keys": identity.stitch(
            partial.links, as_of, settings.exports.placeholder_ids, firsts=partial.firsts
        ),
        "plg_first_touch": attr.first_touch,
        "plg_revenue": attr.revenue,
        "plg_persons": act.persons,
        "plg_cohorts": act.cohorts,
        "plg_milestones": act.milestones,
        "plg_aha": act.aha,
        "plg_correlation": act.correlation,
        "plg_organizations": groups.organizations(partial, as_of, settings.models.test_org_ids),
    }


def duckdb_models(exports: Path, as_of: dt.datetime, settings) -> dict[str, pd.DataFrame]:
    files = [str(exports / f.key) for f in discover(location(str(exports)), as_of)]
    con = duckdb.connect()
    con.execute("SET VARIABLE files = ?", [files])
    con.execute("SET VARIABLE as_of = ?::TIMESTAMPTZ", [as_of])
    con.execute("SET VARIABLE placeholder_ids = ?", [list(settings.exports.placeholder_ids)])
    for name, value in dataclasses.asdict(settings.models).items():
        con.execute(f"SET VARIABLE {name} = ?", [list(value) if isinstance(value, tuple) else value])
    for script in ("identity", "exclusions", "attribution", "activation", "groups"):
        con.execute((SQL / f"{script}.sql").read_text())
    return {name: con.execute(f"SELECT * FROM {name}").df() for name in TABLES}


def assert_same(name: str, ours: pd.DataFrame, theirs: pd.DataFrame) -> None:
    keys = TABLES[name]
    theirs = theirs[list(ours.columns)]
    ours = ours.sort_values(keys, na_position="last").reset_index(drop=True)
    theirs = theirs.sort_values(keys, na_position="last").reset_index(drop=True)
    assert len(ours) == len(theirs), f"{name}: {len(ours)} rows here, {len(theirs)} in DuckDB"
    for column in ours.columns:
        a, b = ours[column], theirs[column]
        if pd.api.types.is_float_dtype(a.dtype):
            same = np.isclose(a.to_numpy(float), b.to_numpy(float), rtol=1e-9, atol=1e-6, equal_nan=True)
        else:
            left, right = a.astype(object), b.astype(object)
            same = (left == right).fillna(False).to_numpy(bool) | (a.isna() & b.isna()).to_numpy(bool)
        bad = np.flatnonzero(~same)
        assert not len(bad), (
            f"{name}.{column}: {len(bad)} rows differ, first {ours.iloc[bad[0]].to_dict()} vs {b.iloc[bad[0]]}"
        )


@pytest.mark.parametrize(
    "as_of", [dt.datetime(2026, 11, 20, tzinfo=dt.UTC), dt.datetime(2026, 11, 13, tzinfo=dt.UTC)]
)
def test_models_match_their_duckdb_twins(exports, partials, settings, as_of):
    files = sorted(str(p) for p in exports.iterdir())
    models = dataclasses.replace(  # non-default settings reach the SQL too
        settings.models,
        internal_email_domains=(internal_domain(files),),
        test_org_ids=("org_0003",),
        conversion_horizon_days=21,
        correlation_exclude_events=("$groupidentify",),
    )
    cfg = dataclasses.replace(settings, models=models)
    ours = pandas_models(merged(exports, partials, as_of), as_of, cfg)
    theirs = duckdb_models(exports, as_of, cfg)
    for name in TABLES:
        assert_same(name, ours[name], theirs[name])
    # the comparison is only worth something if the data exercises the models
    assert ours["plg_first_touch"]["channel"].nunique() == 2
    assert set(ours["plg_persons"]["cohort"]) == {"converted", "not_converted", "pending"}
    assert len(ours["plg_correlation"]) > 5 and len(ours["plg_aha"]) > 0
    assert ours["plg_revenue"]["conversions"].sum() > 5


def test_exclusions_bite_on_generated_data(exports, partials, settings):
    files = sorted(str(p) for p in exports.iterdir())
    as_of = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)
    partial = merged(exports, partials, as_of)
    models = dataclasses.replace(
        settings.models, internal_email_domains=(internal_domain(files),), test_org_ids=("org_0003",)
    )
    result = attribution.run(partial, as_of, dataclasses.replace(settings, models=models))
    assert result.quality["excluded_internal_email"] > 0
    assert result.quality["excluded_test_organization"] > 0
    plain = attribution.run(partial, as_of, settings)
    assert len(plain.first_touch) > len(result.first_touch)


# -- the CLI against DuckDB on a world built to exercise PostHog's rules ---------------------------

CLI = str(Path(sys.executable).parent / "plg-bridge")
WORLD_T = dt.datetime(2026, 11, 30, tzinfo=dt.UTC)


def world() -> dict[str, list[dict]]:
    """Export files (name -> rows) with pre-signup events, a shared machine, a late alias, a
    server-side identify, partial group updates and a customer older than their first signup."""
    from tests.support.events import alias, conversion, event, export_name, group_identify, identify, pageview

    early, late = [], []
    # paid visitor A: pre-signup pages and docs (anonymous), signs up, docs again, converts
    early += [
        pageview("anon-a", "2026-11-02T08:00", utm=("google", "cpc", "brand")),
        event("docs_viewed", "2026-11-02T08:10", None, distinct_id="anon-a"),
        identify("usr_a", "anon-a", "2026-11-02T09:00", set_props={"email": "a@acme.io"}),
        event("docs_viewed", "2026-11-03T10:00", "org_a", distinct_id="usr_a"),
        event("first_api_call_completed", "2026-11-04T10:00", "org_a", distinct_id="usr_a"),
        conversion("usr_a", "2026-11-05T10:00", 1000, org="org_a"),
        event("docs_viewed", "2026-11-06T10:00", "org_a", distinct_id="usr_a"),  # after conversion
    ]
    # user B logs in on A's machine: $identify(usr_b, $anon_distinct_id=usr_a) must not merge
    early += [
        identify("usr_b", "usr_a", "2026-11-07T09:00", set_props={"email": "b@beta.io"}),
        event("$pageview", "2026-11-07T09:30", "org_b", distinct_id="usr_b"),
        conversion("usr_b", "2026-11-08T10:00", 24000, org="org_b"),
    ]
    # organic persons who do not convert; one only at the signup instant, one after the window
    for i, (docs_at, org) in enumerate((("2026-11-03T09:00", "org_c"), ("2026-11-01T12:00", "org_c"))):
        early += [
            pageview(f"anon-l{i}", "2026-11-01T08:00"),
            identify(f"usr_l{i}", f"anon-l{i}", "2026-11-01T12:00"),
            event("docs_viewed", docs_at, org, distinct_id=f"usr_l{i}"),
            event("$pageview", "2026-11-20T12:00", org, distinct_id=f"usr_l{i}"),  # after the window
        ]
    # server-side identify (no $anon_distinct_id), the device tied by the export's person_id
    early += [
        event("$pageview", "2026-11-09T08:00", "org_d", distinct_id="0e-device", person_id="p-srv"),
        identify("usr_srv", None, "2026-11-09T09:00", person_id="p-srv"),
        event("docs_viewed", "2026-11-10T09:00", "org_d", distinct_id="0e-device", person_id="p-srv"),
    ]
    # a customer older than their first signup seen
    early += [
        conversion("usr_old", "2026-10-20T10:00", 5000, org="org_e"),
        identify("usr_old", None, "2026-11-03T10:00"),
        event("docs_viewed", "2026-11-04T10:00", "org_e", distinct_id="usr_old"),
    ]
    # partial group updates: a later $groupidentify with only plan keeps the name
    early += [
        group_identify("org_a", "2026-11-01T00:00", name="Acme", plan="free"),
        group_identify("org_a", "2026-11-20T00:00", plan="pro"),
        group_identify("org_b", "2026-11-01T00:00", name="Beta"),
    ]
    # the day before T: signals
    day = "2026-11-29"
    late += [
        event(
            "first_successful_deployment", f"{day}T05:00", "org_d", distinct_id="0e-device", person_id="p-srv"
        ),
        event(
            "enterprise_feature_clicked",
            f"{day}T06:00",
            "org_a",
            distinct_id="usr_a",
            props={"feature_name": "SSO"},
        ),
        event(
            "enterprise_feature_clicked",
            f"{day}T07:00",
            "org_a",
            distinct_id="usr_a",
            props={"feature_name": " sso "},
        ),
        event(
            "enterprise_feature_clicked",
            f"{day}T08:00",
            "org_a",
            distinct_id="usr_a",
            props={"feature_name": "-"},
        ),
        event("hits_80_percent_of_tier_limit", f"{day}T09:00", "org_a", distinct_id="usr_a"),
        event("hits_80_percent_of_tier_limit", "2026-11-26T09:00", "org_b", distinct_id="usr_b"),
        event("hits_80_percent_of_tier_limit", f"{day}T09:00", "org_b", distinct_id="usr_b"),  # cooled
    ]
    # a late alias: sent 11-10, exported with the last day's file
    late += [
        alias("usr_l0", "crm-l0", "2026-11-10T00:00"),
        event("docs_viewed", "2026-11-11T00:00", "org_c", distinct_id="crm-l0"),
    ]
    return {export_name("2026-10-20", "2026-11-28"): early, export_name("2026-11-28", "2026-11-30"): late}


def test_cli_tables_equal_duckdb_on_posthogs_rules(tmp_path, settings):
    from tests.support.events import write_export

    folder = tmp_path / "exports"
    for name, rows in world().items():
        write_export(folder, rows, name)
    files = [str(folder / f.key) for f in discover(location(str(folder)), WORLD_T)]
    assert len(files) == 2

    def cli(*args: str) -> pd.DataFrame:
        out = tmp_path / "out.csv"
        done = subprocess.run(
            [CLI, *args, "--events", str(folder), "--as-of", "2026-11-30", "--output", str(out)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return pd.read_csv(out, keep_default_na=False, na_values=[""])

    con = duckdb.connect()
    con.execute("SET VARIABLE files = ?", [files])
    con.execute("SET VARIABLE as_of = ?::TIMESTAMPTZ", [WORLD_T])
    for prefix, section in (("", settings.models), ("pql_", settings.pql), ("signals_", settings.signals)):
        for name, value in dataclasses.asdict(section).items():
            con.execute(
                f"SET VARIABLE {prefix}{name} = ?", [list(value) if isinstance(value, tuple) else value]
            )
    for script in ("identity", "exclusions", "attribution", "activation", "signals"):
        con.execute((SQL / f"{script}.sql").read_text())

    def duck(table: str, like: pd.DataFrame) -> pd.DataFrame:
        frame = con.execute(f"SELECT * FROM {table}").df()[list(like.columns)]
        return pd.read_csv(io.StringIO(frame.to_csv(index=False)), keep_default_na=False, na_values=[""])

    keys = {"correlation": ["event"], "persons": ["person_key"], "cohorts": ["breakdown", "segment"]}
    for table, key in keys.items():
        ours = cli("activation", "--table", table)
        theirs = duck(f"plg_{table}", ours)
        pd.testing.assert_frame_equal(
            ours.sort_values(key).reset_index(drop=True), theirs.sort_values(key).reset_index(drop=True)
        )
    revenue = cli("attribution", "--table", "revenue")
    pd.testing.assert_frame_equal(
        revenue.sort_values(["source", "campaign"]).reset_index(drop=True),
        duck("plg_revenue", revenue).sort_values(["source", "campaign"]).reset_index(drop=True),
    )
    raised = cli("signals")
    theirs = duck("plg_signals", raised)
    for frame in (raised, theirs):
        frame["occurred_at"] = pd.to_datetime(frame["occurred_at"], utc=True)
    pd.testing.assert_frame_equal(
        raised.sort_values("signal_key").reset_index(drop=True),
        theirs.sort_values("signal_key").reset_index(drop=True),
        check_dtype=False,
    )

    # the rules bite on this world (what PostHog would show)
    persons = cli("activation", "--table", "persons").set_index("person_key")
    assert "usr_b" in persons.index and persons.loc["usr_b", "cohort"] == "converted"  # not merged into A
    assert persons.loc["usr_old", "cohort"] == "pre_existing"
    corr = cli("activation", "--table", "correlation").set_index("event")
    assert corr.loc["docs_viewed", ["success_count", "failure_count"]].tolist() == [1, 2]
    assert revenue.set_index("source").loc["google", "total_revenue"] == 1000  # B's 24,000 is not A's ad
    signals_by_key = raised.set_index("signal_key")
    aha = signals_by_key.loc["aha_reached:usr_srv:first_successful_deployment:2026-11-29"]
    assert aha["distinct_id"] == "usr_srv" and aha["org_id"] == "org_d"
    ent = signals_by_key.loc["enterprise_interest:org_a:-:2026-11-29"]
    assert (ent["detail"], ent["org_name"]) == ("sso", "Acme")
    assert "usage_ceiling:org_b:-:2026-11-29" not in signals_by_key.index  # inside the cool-down


# -- PostHog's correlation window on days holding both the signup and the conversion ---------------

SAME_DAY_T = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)
# probe -> the times (on 2026-11-01) a converted person signed up at 10:00 and paid at 18:00 sends it
SAME_DAY_PROBES = {
    "probe_before_and_after": ["09:00", "19:00"],
    "probe_many_outside": ["00:05", "08:00", "09:59:59.999999", "18:00:00.000001", "23:59"],
    "probe_at_the_edges": ["09:00", "10:00", "18:00", "19:00"],
    "probe_between": ["09:00", "12:00", "19:00"],
    "probe_just_after_signup": ["08:00", "10:00:00.000001", "20:00"],
    "probe_many_one_between": [f"0{h}:{m}0" for h in range(10) for m in range(6)]
    + ["13:30"]
    + [f"2{h}:{m}0" for h in range(4) for m in range(6)],
}


def same_day_world() -> dict[str, list[dict]]:
    """Two export files of 2026-11-01 (a morning and an afternoon file) and one after it: each
    converted person's probe times are split between the files at noon."""
    from tests.support.events import conversion, event, export_name, identify, pageview

    morning, afternoon, later = [], [], []

    def at(name: str, when: str, user: str) -> None:
        row = event(name, f"2026-11-01T{when}", distinct_id=user)
        (morning if when < "12:00" else afternoon).append(row)

    for round_ in range(2):  # every probe done by two converted persons
        for i, (probe, times) in enumerate(SAME_DAY_PROBES.items()):
            user = f"w{round_}{i}"
            morning += [
                pageview(f"anon-{user}", "2026-11-01T09:30"),
                identify(user, f"anon-{user}", "2026-11-01T10:00"),
            ]
            afternoon.append(conversion(user, "2026-11-01T18:00"))
            for when in times:
                at(probe, when, user)
    for j in range(3):  # not converted: windows (10:00, 11-15T10:00)
        user = f"l{j}"
        morning += [
            pageview(f"anon-{user}", "2026-11-01T09:30"),
            identify(user, f"anon-{user}", "2026-11-01T10:00"),
        ]
        at("probe_between", "09:00", user)
        later.append(event("probe_between", "2026-11-15T10:00", distinct_id=user))  # at the window's end
        if j == 0:
            later.append(event("probe_between", "2026-11-15T09:59:59", distinct_id=user))  # inside
    return {
        export_name("2026-11-01T00:00", "2026-11-01T12:00"): morning,
        export_name("2026-11-01T12:00", "2026-11-02T00:00"): afternoon,
        export_name("2026-11-02T00:00", "2026-11-19T00:00"): later,
    }


def test_correlation_on_same_day_windows_equals_duckdb(tmp_path, settings):
    from tests.support.events import write_export

    folder = tmp_path / "exports"
    for name, rows in same_day_world().items():
        write_export(folder, rows, name)
    loc = location(str(folder))
    parts = {f.key: rollup.rollup_file(loc, f.key, settings) for f in discover(loc)}
    assert len(parts) == 3
    ours = pandas_models(merged(folder, parts, SAME_DAY_T), SAME_DAY_T, settings)
    theirs = duckdb_models(folder, SAME_DAY_T, settings)
    for name in ("plg_persons", "plg_correlation"):
        assert_same(name, ours[name], theirs[name])
    # by hand: a probe counts for the converted persons only with a time strictly inside (10:00, 18:00)
    counted = ours["plg_correlation"].set_index("event")[["success_count", "failure_count"]]
    probes = {e: tuple(int(v) for v in counted.loc[e]) for e in counted.index if e.startswith("probe_")}
    assert probes == {
        "probe_between": (2, 1),
        "probe_just_after_signup": (2, 0),
        "probe_many_one_between": (2, 0),
    }
